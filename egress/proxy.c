/* proxy.c: the proxy every sandbox's outbound traffic goes through, and the byte pump it shares
 * with port forwards.
 *
 * Why one thread with epoll: thousands of mostly idle connections from sandboxes that may be
 * hostile; a thread each would let one sandbox spend the host's threads. How: one thread owns an
 * epoll set of every listener and connection; every fd is non-blocking; a connection is a small
 * state machine (head -> verdict -> resolving -> [asking] -> connecting -> pump, or -> closing
 * with an answer). Names are looked up on resolver.c's threads, never here.
 *
 * Locking: one mutex guards everything. The proxy thread holds it while it handles a batch of
 * epoll events (never while it waits); the public functions, called from the gateway's thread,
 * take it and act at once (close a sandbox's connections, answer a question). An object closed by
 * either thread is only marked dead and put on a list; the proxy thread frees that list at the end
 * of a batch, so an event already returned by epoll_wait never points at freed memory.
 *
 * Memory per connection is fixed: the struct and two buffers of S_BUF bytes, whatever the client
 * sends (a request head must fit EGRESS_HEAD_MAX of the first one). Records of connections are a
 * fixed ring per sandbox; events for the gateway a fixed ring per proxy. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cb/alloc.h"
#include "cb/error.h"
#include "cb/log.h"
#include "cb/util.h"
#include "egress_private.h"

#define S_BUF (128 * 1024) /* per direction */
#define S_RECORDS 1024     /* records kept per sandbox */
#define S_EVENTS 512       /* events queued for the gateway */
#define S_MAX_REFUSING 64  /* connections over the limit that still get an answer */
#define S_CLOSE_LINGER_MS 2000
#define S_PIPE (256 * 1024) /* the pipe's size asked for; the kernel may give less */

typedef enum { SRC_WAKE, SRC_RESOLVER, SRC_LISTENER, SRC_CLIENT, SRC_UPSTREAM } s_kind_t;

typedef struct {
    s_kind_t kind;
    void *obj;
} s_src_t;

typedef struct {
    char *data;
    size_t cap, off, len;
    int pipe[2]; /* splice(2) through it once pumping, when it could be made; else -1 */
    size_t plen; /* bytes in the pipe */
    bool eof;    /* the reading side ended */
    bool shut;   /* passed on: shutdown(SHUT_WR) of the writing side */
} s_dir_t;

typedef enum {
    ST_HEAD,
    ST_SOCKS_REQ,
    ST_RESOLVING,
    ST_ASKING,
    ST_CONNECTING,
    ST_PUMP,
    ST_CLOSING,
} s_state_t;

typedef enum { P_NONE, P_CONNECT, P_HTTP, P_SOCKS, P_FORWARD } s_proto_t;

static const char *const s_proto_names[] = {"", "connect", "http", "socks5", "forward"};

typedef struct s_conn {
    struct s_conn *next, *prev;
    egress_t *eg;
    egress_sandbox_t *sb;
    s_src_t csrc, usrc;
    int cfd, ufd;
    uint32_t cmask, umask; /* what epoll watches now (0: not registered) */
    s_state_t state;
    s_proto_t proto;
    bool dead, counted, refusing, literal;
    s_dir_t up, down; /* client -> upstream, upstream -> client */
    char host[256];
    uint16_t port;
    struct sockaddr_storage addrs[EGRESS_MAX_ADDRS];
    size_t n_addrs, next_addr;
    int connect_errno;
    egress_job_t *job;
    uint64_t ask_id;
    int64_t deadline, last_io;
    uint64_t rec_seq; /* 0: no record */
    char *fail_response;
    uint64_t client_left; /* forwards: client bytes still passed upstream (UINT64_MAX: all) */
} s_conn_t;

typedef struct {
    uint64_t seq;
    char time[CB_ISO8601_LEN];
    int64_t start_ms, end_ms;
    char host[256];
    uint16_t port;
    char address[80];
    const char *protocol;
    bool allowed, open;
    char reason[240];
    uint64_t bytes_out, bytes_in;
} s_record_t;

struct egress_sandbox {
    egress_sandbox_t *next;
    egress_t *eg;
    s_src_t lsrc;
    char id[64];
    int lfd;
    bool listening, dead, limit_logged, bytes_logged;
    int64_t accept_paused_until;
    egress_policy_t *policy;
    unsigned max_conns;
    uint64_t max_bytes;
    egress_stats_t st;
    unsigned refusing;
    s_record_t *recs; /* S_RECORDS, allocated at the first record */
    uint64_t rec_next;
};

struct egress {
    egress_config_t cfg;
    pthread_t thread;
    bool started, stop;
    pthread_mutex_t mu;
    int epfd, wake_fd, event_fd;
    s_src_t wake_src, res_src;
    egress_resolver_t *res;
    s_conn_t *conns, *dead_conns;
    egress_sandbox_t *sandboxes, *dead_sandboxes;
    egress_event_t events[S_EVENTS];
    size_t ev_head, ev_len;
    uint64_t next_ask;
    int64_t next_sweep;
};

static void s_conn_kill(s_conn_t *c);
static void s_conn_update(s_conn_t *c);

/* ---- events for the gateway ---- */

static void s_event(egress_t *eg, egress_event_type_t type, const egress_sandbox_t *sb,
                    const char *host, uint16_t port, uint64_t ask_id, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));

static void s_event(egress_t *eg, egress_event_type_t type, const egress_sandbox_t *sb,
                    const char *host, uint16_t port, uint64_t ask_id, const char *fmt, ...)
{
    if (eg->ev_len == S_EVENTS) { /* full: the oldest goes */
        eg->ev_head = (eg->ev_head + 1) % S_EVENTS;
        eg->ev_len--;
    }
    egress_event_t *e = &eg->events[(eg->ev_head + eg->ev_len++) % S_EVENTS];
    memset(e, 0, sizeof *e);
    e->type = type;
    snprintf(e->sandbox_id, sizeof e->sandbox_id, "%s", sb ? sb->id : "");
    snprintf(e->host, sizeof e->host, "%s", host ? host : "");
    e->port = port;
    e->ask_id = ask_id;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->text, sizeof e->text, fmt, ap);
    va_end(ap);
    uint64_t one = 1;
    if (write(eg->event_fd, &one, sizeof one) < 0) { /* EAGAIN: already readable */
    }
}

/* ---- records ---- */

static s_record_t *s_record(egress_sandbox_t *sb, uint64_t seq)
{
    if (!sb || !seq || !sb->recs)
        return NULL;
    s_record_t *r = &sb->recs[seq % S_RECORDS];
    return r->seq == seq ? r : NULL;
}

/* The connection's record: made at its first verdict, updated after. */
static s_record_t *s_record_of(s_conn_t *c)
{
    egress_sandbox_t *sb = c->sb;
    if (!sb || c->proto == P_FORWARD)
        return NULL;
    s_record_t *r = s_record(sb, c->rec_seq);
    if (r)
        return r;
    if (!sb->recs)
        sb->recs = cb_xcalloc(S_RECORDS, sizeof *sb->recs);
    c->rec_seq = ++sb->rec_next;
    r = &sb->recs[c->rec_seq % S_RECORDS];
    memset(r, 0, sizeof *r);
    r->seq = c->rec_seq;
    cb_iso8601_now(r->time);
    r->start_ms = cb_now_ms();
    snprintf(r->host, sizeof r->host, "%s", c->host);
    r->port = c->port;
    r->protocol = s_proto_names[c->proto == P_NONE ? P_CONNECT : c->proto];
    r->open = true;
    return r;
}

/* ---- connections: buffers, interest, closing ---- */

static void s_arm(egress_t *eg, int fd, s_src_t *src, uint32_t *cur, uint32_t want)
{
    if (fd < 0 || *cur == want)
        return;
    struct epoll_event ev = {.events = want, .data.ptr = src};
    int op = *cur == 0 ? EPOLL_CTL_ADD : want == 0 ? EPOLL_CTL_DEL : EPOLL_CTL_MOD;
    if (epoll_ctl(eg->epfd, op, fd, &ev) < 0)
        cb_warn("egress: epoll_ctl: %s", strerror(errno));
    *cur = want;
}

static size_t s_room(const s_dir_t *d) { return d->cap - d->off - d->len; }

/* Whether the direction takes more from its source now. */
static bool s_can_read(const s_dir_t *d)
{
    if (d->eof)
        return false;
    if (d->pipe[0] >= 0)
        return d->len == 0 && d->plen == 0;
    return s_room(d) || d->off;
}

static void s_pipe_close(s_dir_t *d)
{
    for (int i = 0; i < 2; i++)
        if (d->pipe[i] >= 0) {
            close(d->pipe[i]);
            d->pipe[i] = -1;
        }
}

/* Pump through a pipe with splice(2): the bytes never cross into this process. A direction
 * that must see its bytes (a forward's client_bytes_max) keeps the buffer. */
static void s_pipe_open(s_dir_t *d)
{
    if (pipe2(d->pipe, O_NONBLOCK | O_CLOEXEC) < 0) {
        d->pipe[0] = d->pipe[1] = -1;
        return;
    }
    if (fcntl(d->pipe[1], F_SETPIPE_SZ, S_PIPE) < 0) { /* the default size still works */
    }
}

static void s_conn_update(s_conn_t *c)
{
    if (c->dead)
        return;
    uint32_t cw = 0, uw = 0;
    switch (c->state) {
    case ST_HEAD:
    case ST_SOCKS_REQ:
        if (c->up.len < EGRESS_HEAD_MAX)
            cw |= EPOLLIN;
        if (c->down.len)
            cw |= EPOLLOUT;
        break;
    case ST_RESOLVING:
    case ST_ASKING:
        if (c->down.len)
            cw |= EPOLLOUT;
        break;
    case ST_CONNECTING: uw = EPOLLOUT; break;
    case ST_PUMP:
        if (s_can_read(&c->up))
            cw |= EPOLLIN;
        if (c->down.len || c->down.plen)
            cw |= EPOLLOUT;
        if (s_can_read(&c->down))
            uw |= EPOLLIN;
        if (c->up.len || c->up.plen)
            uw |= EPOLLOUT;
        break;
    case ST_CLOSING: cw = c->down.len ? EPOLLOUT : EPOLLIN; break;
    }
    s_arm(c->eg, c->cfd, &c->csrc, &c->cmask, cw);
    s_arm(c->eg, c->ufd, &c->usrc, &c->umask, uw);
}

static void s_set_deadline(s_conn_t *c, int64_t ms)
{
    c->deadline = cb_now_ms() + ms;
    if (c->deadline < c->eg->next_sweep)
        c->eg->next_sweep = c->deadline;
}

static void s_close_fd(egress_t *eg, int *fd, uint32_t *mask)
{
    if (*fd < 0)
        return;
    if (*mask)
        epoll_ctl(eg->epfd, EPOLL_CTL_DEL, *fd, NULL);
    *mask = 0;
    close(*fd);
    *fd = -1;
}

static void s_conn_kill(s_conn_t *c)
{
    if (c->dead)
        return;
    egress_t *eg = c->eg;
    c->dead = true;
    s_close_fd(eg, &c->cfd, &c->cmask);
    s_close_fd(eg, &c->ufd, &c->umask);
    s_pipe_close(&c->up);
    s_pipe_close(&c->down);
    if (c->job) {
        egress_resolver_cancel(eg->res, c->job);
        c->job = NULL;
    }
    egress_sandbox_t *sb = c->sb;
    if (sb && c->counted) {
        sb->st.open--;
        if (c->refusing)
            sb->refusing--;
        if (sb->st.open - sb->refusing < sb->max_conns)
            sb->limit_logged = false;
    }
    s_record_t *r = s_record(sb, c->rec_seq);
    if (r) {
        r->open = false;
        r->end_ms = cb_now_ms();
    }
    /* off the live list, onto the dead one (freed by the proxy thread after its batch) */
    if (c->prev)
        c->prev->next = c->next;
    else
        eg->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = NULL;
    c->next = eg->dead_conns;
    eg->dead_conns = c;
}

static void s_conn_free(s_conn_t *c)
{
    free(c->up.data);
    free(c->down.data);
    free(c->fail_response);
    free(c);
}

static s_conn_t *s_conn_new(egress_t *eg, egress_sandbox_t *sb, int cfd)
{
    s_conn_t *c = cb_xcalloc(1, sizeof *c);
    c->eg = eg;
    c->sb = sb;
    c->cfd = cfd;
    c->ufd = -1;
    c->csrc = (s_src_t){SRC_CLIENT, c};
    c->usrc = (s_src_t){SRC_UPSTREAM, c};
    c->up.cap = c->down.cap = S_BUF;
    c->client_left = UINT64_MAX;
    c->up.pipe[0] = c->up.pipe[1] = c->down.pipe[0] = c->down.pipe[1] = -1;
    c->up.data = cb_xmalloc(S_BUF);
    c->down.data = cb_xmalloc(S_BUF);
    c->next = eg->conns;
    if (eg->conns)
        eg->conns->prev = c;
    eg->conns = c;
    return c;
}

/* Queue bytes for the client (a reply); they fit: replies are small and the buffer is empty. */
static void s_to_client(s_conn_t *c, const void *data, size_t len)
{
    s_dir_t *d = &c->down;
    if (len > s_room(d))
        len = s_room(d);
    memcpy(d->data + d->off + d->len, data, len);
    d->len += len;
}

/* Answer and close: the reply is flushed, the write side shut, the client's bytes read and
 * dropped until it closes (closing with unread bytes would reset the connection and could lose
 * the reply), at most S_CLOSE_LINGER_MS. */
static void s_close_with(s_conn_t *c, const void *reply, size_t len)
{
    s_close_fd(c->eg, &c->ufd, &c->umask);
    s_pipe_close(&c->up);
    s_pipe_close(&c->down);
    c->up.plen = c->down.plen = 0;
    c->up.len = c->up.off = 0;
    c->down.len = c->down.off = 0;
    if (len)
        s_to_client(c, reply, len);
    c->state = ST_CLOSING;
    s_set_deadline(c, S_CLOSE_LINGER_MS);
    s_conn_update(c);
}

static void s_http_reply(s_conn_t *c, int status, const char *reason, const char *body)
{
    char buf[1024];
    int n = snprintf(buf, sizeof buf,
                     "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     status, reason, strlen(body), body);
    s_close_with(c, buf, n < (int)sizeof buf ? (size_t)n : sizeof buf - 1);
}

static void s_socks_reply(s_conn_t *c, uint8_t code, bool close_after)
{
    uint8_t r[22] = {0x05, code, 0x00, 0x01};
    size_t len = 10;
    if (code == SOCKS_OK && c->ufd >= 0) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        if (getsockname(c->ufd, (struct sockaddr *)&ss, &sl) == 0 && ss.ss_family == AF_INET6) {
            const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
            r[3] = 0x04;
            memcpy(r + 4, &a->sin6_addr, 16);
            memcpy(r + 20, &a->sin6_port, 2);
            len = 22;
        } else if (ss.ss_family == AF_INET) {
            const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
            memcpy(r + 4, &a->sin_addr, 4);
            memcpy(r + 8, &a->sin_port, 2);
        }
    }
    if (close_after)
        s_close_with(c, r, len);
    else
        s_to_client(c, r, len);
}

/* ---- verdicts ---- */

/* A refusal by the policy (or a limit): the answer the protocol has, a record, a log line. */
static void s_refuse(s_conn_t *c, const char *why)
{
    egress_sandbox_t *sb = c->sb;
    sb->st.denied++;
    s_record_t *r = s_record_of(c);
    if (r) {
        r->allowed = false;
        snprintf(r->reason, sizeof r->reason, "%s", why);
    }
    char hp[300];
    snprintf(hp, sizeof hp, strchr(c->host, ':') ? "[%s]:%u" : "%s:%u", c->host, c->port);
    if (!c->refusing)
        s_event(c->eg, EGRESS_EVENT_LOG, sb, c->host, c->port, 0, "network: %s refused (%s): %s",
                hp, s_proto_names[c->proto], why);
    if (c->proto == P_SOCKS) {
        s_socks_reply(c, SOCKS_NOT_ALLOWED, true);
        return;
    }
    char body[700];
    snprintf(body, sizeof body, "cellblock: %s refused by this sandbox's network policy: %s\n", hp,
             why);
    if (c->refusing)
        s_http_reply(c, 503, "Service Unavailable", body);
    else
        s_http_reply(c, 403, "Forbidden", body);
}

/* Not a refusal: the destination could not be reached (no such name, connect failed). */
static void s_unreachable(s_conn_t *c, int err, const char *what)
{
    s_record_t *r = s_record_of(c);
    if (r)
        snprintf(r->reason, sizeof r->reason, "%s", what);
    if (c->proto == P_FORWARD) {
        const char *resp = c->fail_response ? c->fail_response : "";
        s_close_with(c, resp, strlen(resp));
        return;
    }
    if (c->proto == P_SOCKS) {
        uint8_t code = err == ECONNREFUSED  ? SOCKS_REFUSED
                       : err == ENETUNREACH ? SOCKS_NET_UNREACHABLE
                       : err == ETIMEDOUT   ? SOCKS_TTL
                                            : SOCKS_HOST_UNREACHABLE;
        s_socks_reply(c, code, true);
        return;
    }
    char body[600];
    snprintf(body, sizeof body, "cellblock: %s\n", what);
    if (err == ETIMEDOUT)
        s_http_reply(c, 504, "Gateway Timeout", body);
    else
        s_http_reply(c, 502, "Bad Gateway", body);
}

static void s_connect_next(s_conn_t *c);

/* Every address checked; connect to those that pass. */
static void s_check_addresses(s_conn_t *c)
{
    egress_sandbox_t *sb = c->sb;
    size_t kept = 0;
    char first_why[700] = "";
    for (size_t i = 0; i < c->n_addrs; i++) {
        struct sockaddr *sa = (struct sockaddr *)&c->addrs[i];
        if (sa->sa_family == AF_INET)
            ((struct sockaddr_in *)sa)->sin_port = htons(c->port);
        else
            ((struct sockaddr_in6 *)sa)->sin6_port = htons(c->port);
        char why[256];
        if (egress_policy_check_address(sb->policy, sa, why, sizeof why) == EGRESS_ALLOW) {
            c->addrs[kept++] = c->addrs[i];
            continue;
        }
        if (first_why[0])
            continue;
        const char *cls = egress_address_class(sa);
        char text[80];
        egress_address_text(sa, text, sizeof text);
        if (c->literal || !cls)
            snprintf(first_why, sizeof first_why, "%s", why);
        else
            snprintf(first_why, sizeof first_why, "%s resolves to %s, %s", c->host, text, cls);
    }
    c->n_addrs = kept;
    if (kept == 0) {
        s_refuse(c, first_why[0] ? first_why : "no address to connect to");
        return;
    }
    sb->st.allowed++;
    s_record_t *r = s_record_of(c);
    if (r)
        r->allowed = true;
    c->next_addr = 0;
    c->connect_errno = 0;
    s_connect_next(c);
}

/* The name passed (or the question was answered yes): look it up, or use the literal. */
static void s_after_name(s_conn_t *c)
{
    struct sockaddr_in *a4 = (struct sockaddr_in *)&c->addrs[0];
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&c->addrs[0];
    memset(&c->addrs[0], 0, sizeof c->addrs[0]);
    if (inet_pton(AF_INET, c->host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        c->n_addrs = 1;
    } else if (inet_pton(AF_INET6, c->host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        c->n_addrs = 1;
    }
    if (c->n_addrs) {
        c->literal = true;
        s_check_addresses(c);
        return;
    }
    c->state = ST_RESOLVING;
    c->job = egress_resolver_submit(c->eg->res, c->host, c);
    s_set_deadline(c, c->eg->cfg.connect_timeout_ms);
    s_conn_update(c);
}

static void s_resolved(s_conn_t *c, egress_job_t *job)
{
    if (job->gai_error || job->n_addrs == 0) {
        char what[400];
        snprintf(what, sizeof what, "cannot resolve %s: %s", c->host,
                 job->gai_error ? gai_strerror(job->gai_error) : "no address");
        s_unreachable(c, EHOSTUNREACH, what);
        return;
    }
    memcpy(c->addrs, job->addrs, job->n_addrs * sizeof job->addrs[0]);
    c->n_addrs = job->n_addrs;
    s_check_addresses(c);
}

/* The destination is known (host, port, proto): judge the name. */
static void s_decide(s_conn_t *c)
{
    egress_sandbox_t *sb = c->sb;
    char why[300];
    if (c->refusing) {
        snprintf(why, sizeof why, "too many connections from this sandbox (limit %u)",
                 sb->max_conns);
        s_refuse(c, why);
        return;
    }
    if (sb->max_bytes && sb->st.bytes_in + sb->st.bytes_out >= sb->max_bytes) {
        snprintf(why, sizeof why, "the sandbox's byte limit (%llu) is reached",
                 (unsigned long long)sb->max_bytes);
        s_refuse(c, why);
        return;
    }
    egress_verdict_t v = egress_policy_check_name(sb->policy, c->host, c->port, why, sizeof why);
    if (v == EGRESS_DENY) {
        s_refuse(c, why);
        return;
    }
    if (v == EGRESS_ASK) {
        egress_t *eg = c->eg;
        c->ask_id = ++eg->next_ask;
        c->state = ST_ASKING;
        s_set_deadline(c, eg->cfg.ask_timeout_ms);
        s_event(eg, EGRESS_EVENT_ASK, sb, c->host, c->port, c->ask_id,
                "sandbox %s asks to connect to %s port %u", sb->id, c->host, c->port);
        s_conn_update(c);
        return;
    }
    s_after_name(c);
}

/* ---- connecting ---- */

static void s_connected(s_conn_t *c)
{
    c->state = ST_PUMP;
    if (c->client_left == UINT64_MAX)
        s_pipe_open(&c->up);
    s_pipe_open(&c->down);
    c->last_io = cb_now_ms();
    s_set_deadline(c, c->eg->cfg.idle_timeout_ms);
    s_record_t *r = s_record_of(c);
    if (r) {
        char text[80];
        egress_address_text((struct sockaddr *)&c->addrs[c->next_addr - 1], text, sizeof text);
        snprintf(r->address, sizeof r->address, "%s", text);
    }
    if (c->proto == P_CONNECT) {
        static const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";
        s_to_client(c, ok, sizeof ok - 1);
    } else if (c->proto == P_SOCKS) {
        s_socks_reply(c, SOCKS_OK, false);
    }
    s_conn_update(c);
}

static void s_connect_next(s_conn_t *c)
{
    while (c->next_addr < c->n_addrs) {
        const struct sockaddr *sa = (const struct sockaddr *)&c->addrs[c->next_addr++];
        int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            c->connect_errno = errno;
            continue;
        }
        socklen_t len =
            sa->sa_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
        if (connect(fd, sa, len) == 0 || errno == EINPROGRESS) {
            c->ufd = fd;
            c->state = ST_CONNECTING;
            s_set_deadline(c, c->eg->cfg.connect_timeout_ms);
            s_conn_update(c);
            return;
        }
        c->connect_errno = errno;
        close(fd);
    }
    int err = c->connect_errno ? c->connect_errno : EHOSTUNREACH;
    char what[400];
    snprintf(what, sizeof what, "could not connect to %s port %u: %s", c->host, c->port,
             strerror(err));
    s_unreachable(c, err, what);
}

static void s_connect_result(s_conn_t *c, int err)
{
    if (err == 0) {
        s_connected(c);
        return;
    }
    s_close_fd(c->eg, &c->ufd, &c->umask);
    c->connect_errno = err;
    if (c->proto == P_FORWARD) {
        s_unreachable(c, err, "forward: connect failed");
        return;
    }
    s_connect_next(c);
}

/* ---- the request head ---- */

static void s_consume(s_dir_t *d, size_t n)
{
    d->len -= n;
    memmove(d->data + d->off, d->data + d->off + n, d->len);
}

static const char s_usage[] =
    "cellblock's egress proxy accepts CONNECT host:port, a request with an absolute http:// "
    "URI (GET http://host/path), or SOCKS5 (no authentication, CONNECT).\n";

static void s_head_http(s_conn_t *c)
{
    egress_http_req_t *req = cb_xmalloc(sizeof *req);
    char why[200];
    egress_head_status_t st =
        egress_http_head_parse(c->up.data + c->up.off, c->up.len, req, why, sizeof why);
    if (st == EGRESS_HEAD_MORE) {
        free(req);
        return;
    }
    if (st == EGRESS_HEAD_TOO_LARGE) {
        free(req);
        s_http_reply(c, 431, "Request Header Fields Too Large",
                     "cellblock: the request head is too large (16 KiB at most)\n");
        return;
    }
    if (st == EGRESS_HEAD_BAD) {
        char body[sizeof s_usage + 256];
        snprintf(body, sizeof body, "cellblock: bad request: %s.\n%s", why, s_usage);
        free(req);
        s_http_reply(c, 400, "Bad Request", body);
        return;
    }
    snprintf(c->host, sizeof c->host, "%s", req->host);
    c->port = req->port;
    if (req->is_connect) {
        c->proto = P_CONNECT;
        s_consume(&c->up, req->head_len); /* early bytes stay */
    } else {
        c->proto = P_HTTP;
        char *out = cb_xmalloc(S_BUF);
        const char *base = c->up.data + c->up.off;
        size_t n = egress_http_rewrite(base, req, out, S_BUF);
        size_t rest = c->up.len - req->head_len;
        if (n == 0 || n + rest > S_BUF) {
            free(out);
            free(req);
            s_http_reply(c, 431, "Request Header Fields Too Large",
                         "cellblock: the request head is too large\n");
            return;
        }
        memcpy(out + n, base + req->head_len, rest);
        free(c->up.data);
        c->up.data = out;
        c->up.off = 0;
        c->up.len = n + rest;
    }
    free(req);
    s_decide(c);
}

static void s_head_socks(s_conn_t *c)
{
    const uint8_t *p = (const uint8_t *)c->up.data + c->up.off;
    if (c->state == ST_HEAD) {
        bool noauth;
        int n = egress_socks_greeting(p, c->up.len, &noauth);
        if (n == 0)
            return;
        if (n < 0 || !noauth) {
            static const uint8_t no[2] = {0x05, 0xff};
            s_close_with(c, no, n < 0 ? 0 : 2);
            return;
        }
        static const uint8_t yes[2] = {0x05, 0x00};
        s_to_client(c, yes, 2);
        s_consume(&c->up, (size_t)n);
        c->state = ST_SOCKS_REQ;
    }
    egress_socks_req_t req;
    int n = egress_socks_request(p, c->up.len, &req);
    if (n == 0) {
        s_conn_update(c);
        return;
    }
    if (n < 0) {
        s_socks_reply(c, (uint8_t)-n, true);
        return;
    }
    s_consume(&c->up, (size_t)n);
    snprintf(c->host, sizeof c->host, "%s", req.host);
    c->port = req.port;
    s_decide(c);
}

static void s_head_read(s_conn_t *c)
{
    s_dir_t *d = &c->up;
    size_t want = EGRESS_HEAD_MAX - d->len;
    if (want == 0)
        return;
    ssize_t n = read(c->cfd, d->data + d->off + d->len, want);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        s_conn_kill(c); /* gone before saying what it wanted */
        return;
    }
    if (n < 0)
        return;
    d->len += (size_t)n;
    if (c->proto == P_NONE)
        c->proto = (uint8_t)d->data[d->off] == 0x05 ? P_SOCKS : P_HTTP;
    if (c->proto == P_SOCKS)
        s_head_socks(c);
    else
        s_head_http(c);
}

/* ---- the pump ---- */

static void s_count(s_conn_t *c, bool to_upstream, size_t n)
{
    egress_sandbox_t *sb = c->sb;
    c->last_io = cb_now_ms();
    if (!sb || c->proto == P_FORWARD)
        return;
    s_record_t *r = s_record(sb, c->rec_seq);
    if (to_upstream) {
        sb->st.bytes_out += n;
        if (r)
            r->bytes_out += n;
    } else {
        sb->st.bytes_in += n;
        if (r)
            r->bytes_in += n;
    }
}

/* Move what can move from src to dst through d; false when the connection died. */
static bool s_pump_dir(s_conn_t *c, s_dir_t *d, int src, int dst, bool to_upstream)
{
    for (int round = 0; round < 8; round++) {
        if (d->len) {
            ssize_t n = send(dst, d->data + d->off, d->len, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EAGAIN || errno == EINTR)
                    break;
                s_conn_kill(c);
                return false;
            }
            if (to_upstream)
                s_count(c, true, (size_t)n);
            else
                c->last_io = cb_now_ms();
            d->off += (size_t)n;
            d->len -= (size_t)n;
            if (d->len)
                break; /* the peer is slower: wait for EPOLLOUT */
            d->off = 0;
        }
        if (d->plen) {
            ssize_t n =
                splice(d->pipe[0], NULL, dst, NULL, d->plen, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
            if (n < 0) {
                if (errno == EAGAIN || errno == EINTR)
                    break;
                s_conn_kill(c);
                return false;
            }
            if (to_upstream)
                s_count(c, true, (size_t)n);
            else
                c->last_io = cb_now_ms();
            d->plen -= (size_t)n;
            if (d->plen)
                break;
        }
        if (d->eof || src < 0)
            break;
        if (d->pipe[0] >= 0) {
            ssize_t n =
                splice(src, NULL, d->pipe[1], NULL, S_PIPE, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
            if (n < 0) {
                if (errno == EAGAIN || errno == EINTR)
                    break;
                s_conn_kill(c);
                return false;
            }
            if (n == 0) {
                d->eof = true;
                break;
            }
            d->plen += (size_t)n;
            if (!to_upstream)
                s_count(c, false, (size_t)n);
            continue;
        }
        size_t want = s_room(d);
        bool drop = to_upstream && c->client_left == 0;
        if (drop)
            want = d->cap; /* read into the buffer, counted as nothing: dropped */
        else if (to_upstream && c->client_left < want)
            want = (size_t)c->client_left;
        ssize_t n = read(src, d->data + (drop ? 0 : d->off + d->len), want);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                break;
            s_conn_kill(c);
            return false;
        }
        if (n == 0) {
            d->eof = true;
            break;
        }
        if (drop)
            continue;
        if (to_upstream && c->client_left != UINT64_MAX)
            c->client_left -= (size_t)n;
        d->len += (size_t)n;
        if (!to_upstream)
            s_count(c, false, (size_t)n);
    }
    if (d->eof && d->len == 0 && d->plen == 0 && !d->shut) {
        shutdown(dst, SHUT_WR);
        d->shut = true;
    }
    return true;
}

static void s_pump(s_conn_t *c)
{
    if (!s_pump_dir(c, &c->up, c->cfd, c->ufd, true) ||
        !s_pump_dir(c, &c->down, c->ufd, c->cfd, false))
        return;
    if ((c->up.shut || c->client_left == 0) && c->down.shut) {
        s_conn_kill(c);
        return;
    }
    egress_sandbox_t *sb = c->sb;
    if (sb && c->proto != P_FORWARD && sb->max_bytes &&
        sb->st.bytes_in + sb->st.bytes_out > sb->max_bytes) {
        if (!sb->bytes_logged)
            s_event(c->eg, EGRESS_EVENT_LOG, sb, c->host, c->port, 0,
                    "network: the sandbox's byte limit (%llu bytes) is reached; connection to "
                    "%s port %u closed",
                    (unsigned long long)sb->max_bytes, c->host, c->port);
        sb->bytes_logged = true;
        s_record_t *r = s_record(sb, c->rec_seq);
        if (r)
            snprintf(r->reason, sizeof r->reason, "byte limit reached");
        s_conn_kill(c);
        return;
    }
    c->deadline = c->last_io + c->eg->cfg.idle_timeout_ms;
    s_conn_update(c);
}

/* ---- events on a connection ---- */

static void s_closing_event(s_conn_t *c)
{
    if (c->down.len) {
        ssize_t n = send(c->cfd, c->down.data + c->down.off, c->down.len, MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN && errno != EINTR) {
            s_conn_kill(c);
            return;
        }
        if (n > 0) {
            c->down.off += (size_t)n;
            c->down.len -= (size_t)n;
        }
        if (c->down.len == 0)
            shutdown(c->cfd, SHUT_WR);
    } else {
        char sink[4096];
        ssize_t n = read(c->cfd, sink, sizeof sink);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            s_conn_kill(c);
            return;
        }
    }
    s_conn_update(c);
}

static void s_conn_event(s_conn_t *c, bool upstream, uint32_t ev)
{
    switch (c->state) {
    case ST_HEAD:
    case ST_SOCKS_REQ:
        if (ev & EPOLLOUT) { /* the SOCKS method reply */
            ssize_t n = send(c->cfd, c->down.data + c->down.off, c->down.len, MSG_NOSIGNAL);
            if (n > 0) {
                c->down.off += (size_t)n;
                c->down.len -= (size_t)n;
                if (!c->down.len)
                    c->down.off = 0;
            }
        }
        if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR))
            s_head_read(c);
        s_conn_update(c);
        break;
    case ST_CONNECTING:
        if (upstream) {
            int err = 0;
            socklen_t len = sizeof err;
            if (getsockopt(c->ufd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
                err = errno;
            s_connect_result(c, err);
        }
        break;
    case ST_PUMP: s_pump(c); break;
    case ST_CLOSING: s_closing_event(c); break;
    case ST_RESOLVING:
    case ST_ASKING:
        if (ev & (EPOLLHUP | EPOLLERR))
            s_conn_kill(c);
        else if (ev & EPOLLOUT)
            s_pump_dir(c, &c->down, -1, c->cfd, false), s_conn_update(c);
        break;
    }
}

static void s_timeout(s_conn_t *c, int64_t now)
{
    switch (c->state) {
    case ST_HEAD:
    case ST_SOCKS_REQ:
        if (c->proto == P_HTTP) {
            static const char r[] = "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n"
                                    "Content-Length: 0\r\n\r\n";
            if (send(c->cfd, r, sizeof r - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
            }
        }
        s_conn_kill(c);
        break;
    case ST_RESOLVING: {
        if (c->job)
            egress_resolver_cancel(c->eg->res, c->job);
        c->job = NULL;
        char what[400];
        snprintf(what, sizeof what, "resolving %s took too long", c->host);
        s_unreachable(c, ETIMEDOUT, what);
        break;
    }
    case ST_ASKING: s_refuse(c, "the question was not answered in time"); break;
    case ST_CONNECTING: s_connect_result(c, ETIMEDOUT); break;
    case ST_PUMP:
        if (now - c->last_io >= c->eg->cfg.idle_timeout_ms)
            s_conn_kill(c);
        else
            c->deadline = c->last_io + c->eg->cfg.idle_timeout_ms;
        break;
    case ST_CLOSING: s_conn_kill(c); break;
    }
}

static void s_sweep(egress_t *eg, int64_t now)
{
    int64_t next = now + 1000;
    for (s_conn_t *c = eg->conns, *n; c; c = n) {
        n = c->next;
        if (c->deadline && c->deadline <= now)
            s_timeout(c, now);
        if (!c->dead && c->deadline && c->deadline < next)
            next = c->deadline;
    }
    for (egress_sandbox_t *sb = eg->sandboxes; sb; sb = sb->next)
        if (sb->accept_paused_until && sb->accept_paused_until <= now) {
            sb->accept_paused_until = 0;
            struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &sb->lsrc};
            if (epoll_ctl(eg->epfd, EPOLL_CTL_ADD, sb->lfd, &ev) == 0)
                sb->listening = true;
        } else if (sb->accept_paused_until && sb->accept_paused_until < next) {
            next = sb->accept_paused_until;
        }
    eg->next_sweep = next;
}

/* ---- accepting ---- */

static void s_accept(egress_sandbox_t *sb)
{
    egress_t *eg = sb->eg;
    for (int i = 0; i < 64; i++) {
        int fd = accept4(sb->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                cb_warn("egress: accept for sandbox %s: %s; pausing", sb->id, strerror(errno));
                epoll_ctl(eg->epfd, EPOLL_CTL_DEL, sb->lfd, NULL);
                sb->listening = false;
                sb->accept_paused_until = cb_now_ms() + 100;
                if (sb->accept_paused_until < eg->next_sweep)
                    eg->next_sweep = sb->accept_paused_until;
            }
            return;
        }
        sb->st.connections++;
        bool over = sb->st.open - sb->refusing >= sb->max_conns;
        if (over && !sb->limit_logged) {
            sb->limit_logged = true;
            s_event(eg, EGRESS_EVENT_LOG, sb, NULL, 0, 0,
                    "network: the sandbox has %u connections open, its limit; more are refused",
                    sb->max_conns);
        }
        if (over && sb->refusing >= S_MAX_REFUSING) { /* no answer for these: just closed */
            sb->st.denied++;
            s_conn_t tmp = {.sb = sb, .proto = P_CONNECT};
            s_record_t *r = s_record_of(&tmp);
            r->open = false;
            r->end_ms = r->start_ms;
            snprintf(r->reason, sizeof r->reason, "too many connections from this sandbox");
            close(fd);
            continue;
        }
        s_conn_t *c = s_conn_new(eg, sb, fd);
        c->counted = true;
        sb->st.open++;
        if (over) {
            c->refusing = true;
            sb->refusing++;
        }
        c->state = ST_HEAD;
        s_set_deadline(c, eg->cfg.head_timeout_ms);
        s_conn_update(c);
    }
}

/* ---- the thread ---- */

static void s_free_dead(egress_t *eg)
{
    while (eg->dead_conns) {
        s_conn_t *c = eg->dead_conns;
        eg->dead_conns = c->next;
        s_conn_free(c);
    }
    while (eg->dead_sandboxes) {
        egress_sandbox_t *sb = eg->dead_sandboxes;
        eg->dead_sandboxes = sb->next;
        egress_policy_destroy(&sb->policy);
        free(sb->recs);
        free(sb);
    }
}

static void *s_run(void *arg)
{
    egress_t *eg = arg;
    struct epoll_event evs[64];
    pthread_mutex_lock(&eg->mu);
    while (!eg->stop) {
        int64_t wait = eg->next_sweep - cb_now_ms();
        pthread_mutex_unlock(&eg->mu);
        int n = epoll_wait(eg->epfd, evs, 64, wait < 0 ? 0 : wait > 1000 ? 1000 : (int)wait);
        pthread_mutex_lock(&eg->mu);
        if (eg->stop)
            break;
        for (int i = 0; i < n; i++) {
            s_src_t *src = evs[i].data.ptr;
            uint64_t v;
            switch (src->kind) {
            case SRC_WAKE:
                if (read(eg->wake_fd, &v, sizeof v) < 0) {
                }
                break;
            case SRC_RESOLVER: {
                egress_job_t *job;
                while ((job = egress_resolver_done(eg->res))) {
                    s_conn_t *c = job->owner;
                    c->job = NULL;
                    if (!c->dead && c->state == ST_RESOLVING)
                        s_resolved(c, job);
                    free(job);
                }
                break;
            }
            case SRC_LISTENER: {
                egress_sandbox_t *sb = src->obj;
                if (!sb->dead)
                    s_accept(sb);
                break;
            }
            case SRC_CLIENT:
            case SRC_UPSTREAM: {
                s_conn_t *c = src->obj;
                if (!c->dead)
                    s_conn_event(c, src->kind == SRC_UPSTREAM, evs[i].events);
                break;
            }
            }
        }
        int64_t now = cb_now_ms();
        if (now >= eg->next_sweep)
            s_sweep(eg, now);
        s_free_dead(eg);
    }
    pthread_mutex_unlock(&eg->mu);
    return NULL;
}

static void s_wake(egress_t *eg)
{
    uint64_t one = 1;
    if (write(eg->wake_fd, &one, sizeof one) < 0) {
    }
}

/* ---- the public functions ---- */

egress_t *egress_new(const egress_config_t *cfg, cb_error_t *err)
{
    egress_t *eg = cb_xcalloc(1, sizeof *eg);
    if (cfg)
        eg->cfg = *cfg;
    egress_config_t *c = &eg->cfg;
    if (c->connect_timeout_ms <= 0)
        c->connect_timeout_ms = 10000;
    if (c->idle_timeout_ms <= 0)
        c->idle_timeout_ms = 600000;
    if (c->head_timeout_ms <= 0)
        c->head_timeout_ms = 10000;
    if (c->max_connections == 0)
        c->max_connections = 256;
    if (c->ask_timeout_ms <= 0)
        c->ask_timeout_ms = 60000;
    pthread_mutex_init(&eg->mu, NULL);
    eg->wake_src = (s_src_t){SRC_WAKE, eg};
    eg->res_src = (s_src_t){SRC_RESOLVER, eg};
    eg->next_sweep = cb_now_ms() + 1000;
    eg->epfd = epoll_create1(EPOLL_CLOEXEC);
    eg->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    eg->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (eg->epfd < 0 || eg->wake_fd < 0 || eg->event_fd < 0) {
        cb_error_make(err, errno, "egress: epoll/eventfd");
        egress_destroy(&eg);
        return NULL;
    }
    eg->res = egress_resolver_new(4, err);
    if (!eg->res) {
        egress_destroy(&eg);
        return NULL;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &eg->wake_src};
    epoll_ctl(eg->epfd, EPOLL_CTL_ADD, eg->wake_fd, &ev);
    ev.data.ptr = &eg->res_src;
    epoll_ctl(eg->epfd, EPOLL_CTL_ADD, egress_resolver_fd(eg->res), &ev);
    int rc = pthread_create(&eg->thread, NULL, s_run, eg);
    if (rc != 0) {
        cb_error_make(err, rc, "egress: start the proxy thread");
        egress_destroy(&eg);
        return NULL;
    }
    eg->started = true;
    return eg;
}

void egress_destroy(egress_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    egress_t *eg = *self_p;
    *self_p = NULL;
    if (eg->started) {
        pthread_mutex_lock(&eg->mu);
        eg->stop = true;
        pthread_mutex_unlock(&eg->mu);
        s_wake(eg);
        pthread_join(eg->thread, NULL);
    }
    while (eg->conns)
        s_conn_kill(eg->conns);
    for (egress_sandbox_t *sb = eg->sandboxes, *n; sb; sb = n) {
        n = sb->next;
        if (sb->lfd >= 0)
            close(sb->lfd);
        sb->next = eg->dead_sandboxes;
        eg->dead_sandboxes = sb;
    }
    eg->sandboxes = NULL;
    s_free_dead(eg);
    egress_resolver_destroy(&eg->res);
    if (eg->epfd >= 0)
        close(eg->epfd);
    if (eg->wake_fd >= 0)
        close(eg->wake_fd);
    if (eg->event_fd >= 0)
        close(eg->event_fd);
    pthread_mutex_destroy(&eg->mu);
    free(eg);
}

egress_sandbox_t *egress_sandbox_add(egress_t *self, const char *id, int listen_fd,
                                     const egress_policy_t *policy, cb_error_t *err)
{
    if (listen_fd >= 0 && (!policy || fcntl(listen_fd, F_SETFL, O_NONBLOCK) < 0)) {
        if (!policy)
            cb_error_fail(err, CB_ERR_INVALID, "egress: a listener needs a policy");
        else
            cb_error_make(err, errno, "egress: listener of sandbox %s", id);
        close(listen_fd);
        return NULL;
    }
    egress_sandbox_t *sb = cb_xcalloc(1, sizeof *sb);
    sb->eg = self;
    sb->lsrc = (s_src_t){SRC_LISTENER, sb};
    snprintf(sb->id, sizeof sb->id, "%s", id ? id : "");
    sb->lfd = listen_fd;
    sb->policy = policy ? egress_policy_copy(policy) : egress_policy_from_string("none", NULL);
    sb->max_conns =
        sb->policy->max_connections ? sb->policy->max_connections : self->cfg.max_connections;
    sb->max_bytes = sb->policy->max_bytes ? sb->policy->max_bytes : self->cfg.max_bytes;
    pthread_mutex_lock(&self->mu);
    if (listen_fd >= 0) {
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &sb->lsrc};
        if (epoll_ctl(self->epfd, EPOLL_CTL_ADD, listen_fd, &ev) < 0) {
            pthread_mutex_unlock(&self->mu);
            cb_error_make(err, errno, "egress: watch the listener of sandbox %s", sb->id);
            close(listen_fd);
            egress_policy_destroy(&sb->policy);
            free(sb);
            return NULL;
        }
        sb->listening = true;
    }
    sb->next = self->sandboxes;
    self->sandboxes = sb;
    pthread_mutex_unlock(&self->mu);
    return sb;
}

void egress_sandbox_remove(egress_t *self, egress_sandbox_t **sb_p)
{
    if (!self || !sb_p || !*sb_p)
        return;
    egress_sandbox_t *sb = *sb_p;
    *sb_p = NULL;
    pthread_mutex_lock(&self->mu);
    for (s_conn_t *c = self->conns, *n; c; c = n) {
        n = c->next;
        if (c->sb == sb)
            s_conn_kill(c);
    }
    if (sb->lfd >= 0) {
        if (sb->listening)
            epoll_ctl(self->epfd, EPOLL_CTL_DEL, sb->lfd, NULL);
        close(sb->lfd);
        sb->lfd = -1;
    }
    sb->dead = true;
    for (egress_sandbox_t **pp = &self->sandboxes; *pp; pp = &(*pp)->next)
        if (*pp == sb) {
            *pp = sb->next;
            break;
        }
    sb->next = self->dead_sandboxes;
    self->dead_sandboxes = sb;
    pthread_mutex_unlock(&self->mu);
    s_wake(self);
}

int egress_sandbox_allow(egress_sandbox_t *sb, const char *entry, cb_error_t *err)
{
    if (!sb || !entry)
        return cb_error_fail(err, CB_ERR_INVALID, "egress: no sandbox or entry");
    pthread_mutex_lock(&sb->eg->mu);
    int rc = egress_policy_add(sb->policy, entry, false, err);
    pthread_mutex_unlock(&sb->eg->mu);
    return rc;
}

void egress_sandbox_stats(egress_sandbox_t *sb, egress_stats_t *out)
{
    memset(out, 0, sizeof *out);
    if (!sb)
        return;
    pthread_mutex_lock(&sb->eg->mu);
    *out = sb->st;
    pthread_mutex_unlock(&sb->eg->mu);
}

json_t *egress_sandbox_connections(egress_sandbox_t *sb, size_t max)
{
    json_t *arr = json_array();
    if (!sb)
        return arr;
    pthread_mutex_lock(&sb->eg->mu);
    uint64_t last = sb->rec_next;
    uint64_t kept = last < S_RECORDS ? last : S_RECORDS - 1;
    if (max && max < kept)
        kept = max;
    int64_t now = cb_now_ms();
    for (uint64_t seq = last - kept + 1; sb->recs && seq <= last; seq++) {
        const s_record_t *r = s_record(sb, seq);
        if (!r)
            continue;
        json_t *o =
            json_pack("{s:s, s:s, s:i, s:s, s:s, s:b, s:s, s:I, s:I, s:I, s:b}", "time", r->time,
                      "host", r->host, "port", (int)r->port, "address", r->address, "protocol",
                      r->protocol, "allowed", r->allowed, "reason", r->reason, "bytes_out",
                      (json_int_t)r->bytes_out, "bytes_in", (json_int_t)r->bytes_in, "duration_ms",
                      (json_int_t)((r->open ? now : r->end_ms) - r->start_ms), "open", r->open);
        if (o)
            json_array_append_new(arr, o);
    }
    pthread_mutex_unlock(&sb->eg->mu);
    return arr;
}

int egress_event_fd(egress_t *self) { return self->event_fd; }

bool egress_next_event(egress_t *self, egress_event_t *out)
{
    pthread_mutex_lock(&self->mu);
    bool got = self->ev_len > 0;
    if (got) {
        *out = self->events[self->ev_head];
        self->ev_head = (self->ev_head + 1) % S_EVENTS;
        self->ev_len--;
    } else {
        uint64_t v;
        if (read(self->event_fd, &v, sizeof v) < 0) { /* EAGAIN: not readable anyway */
        }
    }
    pthread_mutex_unlock(&self->mu);
    return got;
}

void egress_answer(egress_t *self, uint64_t ask_id, bool allow, bool remember)
{
    pthread_mutex_lock(&self->mu);
    s_conn_t *c = self->conns;
    while (c && !(c->state == ST_ASKING && c->ask_id == ask_id))
        c = c->next;
    if (c) {
        if (!allow) {
            s_refuse(c, "the question was answered no");
        } else {
            if (remember) {
                char entry[300];
                snprintf(entry, sizeof entry, strchr(c->host, ':') ? "[%s]:%u" : "%s:%u", c->host,
                         c->port);
                cb_error_t e;
                if (egress_policy_add(c->sb->policy, entry, false, &e) < 0)
                    cb_warn("egress: remember %s: %s", entry, e.msg);
            }
            s_after_name(c);
        }
    }
    pthread_mutex_unlock(&self->mu);
    s_wake(self);
}

int egress_forward(egress_t *self, egress_sandbox_t *sb, int client_fd, int upstream_fd,
                   const void *prefix, size_t prefix_len, uint64_t client_bytes_max,
                   const char *fail_response, cb_error_t *err)
{
    if (fcntl(client_fd, F_SETFL, O_NONBLOCK) < 0 || fcntl(upstream_fd, F_SETFL, O_NONBLOCK) < 0) {
        int e = errno;
        close(client_fd);
        close(upstream_fd);
        return cb_error_make(err, e, "egress: forward");
    }
    pthread_mutex_lock(&self->mu);
    if (sb && sb->dead) {
        pthread_mutex_unlock(&self->mu);
        close(client_fd);
        close(upstream_fd);
        return cb_error_fail(err, CB_ERR_STATE, "egress: the sandbox is gone");
    }
    s_conn_t *c = s_conn_new(self, sb, client_fd);
    c->proto = P_FORWARD;
    c->ufd = upstream_fd;
    c->fail_response = cb_xstrdup_or_null(fail_response);
    if (prefix_len > c->up.cap) {
        c->up.data = cb_xrealloc(c->up.data, prefix_len);
        c->up.cap = prefix_len;
    }
    if (prefix_len)
        memcpy(c->up.data, prefix, prefix_len);
    c->up.len = prefix_len;
    c->client_left = client_bytes_max;
    c->state = ST_CONNECTING;
    c->next_addr = 1; /* s_connected's record lookup: none for forwards */
    s_set_deadline(c, self->cfg.connect_timeout_ms);
    s_conn_update(c);
    pthread_mutex_unlock(&self->mu);
    s_wake(self);
    return 0;
}
