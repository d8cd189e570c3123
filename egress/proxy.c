/* proxy.c: the proxy every sandbox's outbound traffic goes through: its thread, and each
 * connection's way from its first byte to a verdict and a connected destination.
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
 * This file: the thread, accepting, and each connection's way from its first byte to its verdict
 * and its connect; pump.c moves the bytes after that, sandboxes.c holds the public functions on
 * sandboxes, events, questions and forwards. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
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

/* ---- verdicts ---- */

/* A refusal by the policy (or a limit): the answer the protocol has, a record, a log line. */
void egress_conn_refuse(egress_conn_t *c, const char *why)
{
    egress_sandbox_t *sb = c->sb;
    sb->st.denied++;
    egress_record_t *r = egress_record_of(c);
    if (r) {
        r->allowed = false;
        snprintf(r->reason, sizeof r->reason, "%s", why);
    }
    char hp[300];
    snprintf(hp, sizeof hp, strchr(c->host, ':') ? "[%s]:%u" : "%s:%u", c->host, c->port);
    if (!c->refusing)
        egress_event_push(c->eg, EGRESS_EVENT_LOG, sb, c->host, c->port, 0,
                          "network: %s refused (%s): %s", hp, egress_proto_names[c->proto], why);
    if (c->proto == EGRESS_P_SOCKS) {
        egress_conn_socks_reply(c, SOCKS_NOT_ALLOWED, true);
        return;
    }
    char body[700];
    snprintf(body, sizeof body, "cellblock: %s refused by this sandbox's network policy: %s\n", hp,
             why);
    if (c->refusing)
        egress_conn_http_reply(c, 503, "Service Unavailable", body);
    else
        egress_conn_http_reply(c, 403, "Forbidden", body);
}

/* Not a refusal: the destination could not be reached (no such name, connect failed). */
static void s_unreachable(egress_conn_t *c, int err, const char *what)
{
    egress_record_t *r = egress_record_of(c);
    if (r)
        snprintf(r->reason, sizeof r->reason, "%s", what);
    if (c->proto == EGRESS_P_FORWARD) {
        const char *resp = c->fail_response ? c->fail_response : "";
        egress_conn_close_with(c, resp, strlen(resp));
        return;
    }
    if (c->proto == EGRESS_P_SOCKS) {
        uint8_t code = err == ECONNREFUSED  ? SOCKS_REFUSED
                       : err == ENETUNREACH ? SOCKS_NET_UNREACHABLE
                                            : SOCKS_HOST_UNREACHABLE; /* a timeout too */
        egress_conn_socks_reply(c, code, true);
        return;
    }
    char body[600];
    snprintf(body, sizeof body, "cellblock: %s\n", what);
    if (err == ETIMEDOUT)
        egress_conn_http_reply(c, 504, "Gateway Timeout", body);
    else
        egress_conn_http_reply(c, 502, "Bad Gateway", body);
}

static void s_connect_next(egress_conn_t *c);

/* Every address checked; connect to those that pass. */
static void s_check_addresses(egress_conn_t *c)
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
        egress_conn_refuse(c, first_why[0] ? first_why : "no address to connect to");
        return;
    }
    sb->st.allowed++;
    egress_record_t *r = egress_record_of(c);
    if (r)
        r->allowed = true;
    c->next_addr = 0;
    c->connect_errno = 0;
    s_connect_next(c);
}

/* The name passed (or the question was answered yes): look it up, or use the literal. */
void egress_conn_after_name(egress_conn_t *c)
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
    c->state = EGRESS_ST_RESOLVING;
    c->job = egress_resolver_submit(c->eg->res, c->host, c);
    egress_conn_deadline(c, c->eg->cfg.connect_timeout_ms);
    egress_conn_update(c);
}

static void s_resolved(egress_conn_t *c, egress_job_t *job)
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
static void s_decide(egress_conn_t *c)
{
    egress_sandbox_t *sb = c->sb;
    char why[300];
    if (c->refusing) {
        snprintf(why, sizeof why, "too many connections from this sandbox (limit %u)",
                 sb->max_conns);
        egress_conn_refuse(c, why);
        return;
    }
    if (sb->max_bytes && sb->st.bytes_in + sb->st.bytes_out >= sb->max_bytes) {
        snprintf(why, sizeof why, "the sandbox's byte limit (%llu) is reached",
                 (unsigned long long)sb->max_bytes);
        egress_conn_refuse(c, why);
        return;
    }
    egress_verdict_t v = egress_policy_check_name(sb->policy, c->host, c->port, why, sizeof why);
    if (v == EGRESS_DENY) {
        egress_conn_refuse(c, why);
        return;
    }
    if (v == EGRESS_ASK) {
        egress_t *eg = c->eg;
        c->ask_id = ++eg->next_ask;
        c->state = EGRESS_ST_ASKING;
        egress_conn_deadline(c, eg->cfg.ask_timeout_ms);
        egress_event_push(eg, EGRESS_EVENT_ASK, sb, c->host, c->port, c->ask_id,
                          "sandbox %s asks to connect to %s port %u", sb->id, c->host, c->port);
        egress_conn_update(c);
        return;
    }
    egress_conn_after_name(c);
}

/* ---- connecting ---- */

static void s_connected(egress_conn_t *c)
{
    c->state = EGRESS_ST_PUMP;
    if (c->client_left == UINT64_MAX)
        egress_dir_pipe_open(&c->up);
    egress_dir_pipe_open(&c->down);
    c->last_io = cb_now_ms();
    egress_conn_deadline(c, c->eg->cfg.idle_timeout_ms);
    egress_record_t *r = egress_record_of(c);
    if (r) {
        char text[80];
        egress_address_text((struct sockaddr *)&c->addrs[c->next_addr - 1], text, sizeof text);
        snprintf(r->address, sizeof r->address, "%s", text);
    }
    if (c->proto == EGRESS_P_CONNECT) {
        static const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";
        egress_conn_reply_bytes(c, ok, sizeof ok - 1);
    } else if (c->proto == EGRESS_P_SOCKS) {
        egress_conn_socks_reply(c, SOCKS_OK, false);
    }
    egress_conn_update(c);
}

static void s_connect_next(egress_conn_t *c)
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
            c->state = EGRESS_ST_CONNECTING;
            egress_conn_deadline(c, c->eg->cfg.connect_timeout_ms);
            egress_conn_update(c);
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

static void s_connect_result(egress_conn_t *c, int err)
{
    if (err == 0) {
        s_connected(c);
        return;
    }
    egress_close_fd(c->eg, &c->ufd, &c->umask);
    c->connect_errno = err;
    if (c->proto == EGRESS_P_FORWARD) {
        s_unreachable(c, err, "forward: connect failed");
        return;
    }
    s_connect_next(c);
}

/* ---- the request head ---- */

static void s_consume(egress_dir_t *d, size_t n)
{
    d->len -= n;
    memmove(d->data + d->off, d->data + d->off + n, d->len);
}

static const char s_usage[] =
    "cellblock's egress proxy accepts CONNECT host:port, a request with an absolute http:// "
    "URI (GET http://host/path), or SOCKS5 (no authentication, CONNECT).\n";

static void s_head_http(egress_conn_t *c)
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
        egress_conn_http_reply(c, 431, "Request Header Fields Too Large",
                               "cellblock: the request head is too large (16 KiB at most)\n");
        return;
    }
    if (st == EGRESS_HEAD_BAD) {
        char body[sizeof s_usage + 256];
        snprintf(body, sizeof body, "cellblock: bad request: %s.\n%s", why, s_usage);
        free(req);
        egress_conn_http_reply(c, 400, "Bad Request", body);
        return;
    }
    snprintf(c->host, sizeof c->host, "%s", req->host);
    c->port = req->port;
    if (req->is_connect) {
        c->proto = EGRESS_P_CONNECT;
        s_consume(&c->up, req->head_len); /* early bytes stay */
    } else {
        c->proto = EGRESS_P_HTTP;
        char *out = cb_xmalloc(EGRESS_BUF);
        const char *base = c->up.data + c->up.off;
        size_t n = egress_http_rewrite(base, req, out, EGRESS_BUF);
        size_t rest = c->up.len - req->head_len;
        if (n == 0 || n + rest > EGRESS_BUF) {
            free(out);
            free(req);
            egress_conn_http_reply(c, 431, "Request Header Fields Too Large",
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

static void s_head_socks(egress_conn_t *c)
{
    const uint8_t *p = (const uint8_t *)c->up.data + c->up.off;
    if (c->state == EGRESS_ST_HEAD) {
        bool noauth;
        int n = egress_socks_greeting(p, c->up.len, &noauth);
        if (n == 0)
            return;
        if (n < 0 || !noauth) {
            static const uint8_t no[2] = {0x05, 0xff};
            egress_conn_close_with(c, no, n < 0 ? 0 : 2);
            return;
        }
        static const uint8_t yes[2] = {0x05, 0x00};
        egress_conn_reply_bytes(c, yes, 2);
        s_consume(&c->up, (size_t)n);
        c->state = EGRESS_ST_SOCKS_REQ;
    }
    egress_socks_req_t req;
    int n = egress_socks_request(p, c->up.len, &req);
    if (n == 0) {
        egress_conn_update(c);
        return;
    }
    if (n < 0) {
        egress_conn_socks_reply(c, (uint8_t)-n, true);
        return;
    }
    s_consume(&c->up, (size_t)n);
    snprintf(c->host, sizeof c->host, "%s", req.host);
    c->port = req.port;
    s_decide(c);
}

/* Whether the head may have ended in the bytes from old on: a blank line after the first byte
 * that is not CR or LF (-1: more than three CR/LF bytes lead, which no client sends). Once a
 * blank line follows other bytes the parser gives its final answer, so a head is parsed at most
 * three times (its first bytes, its end, a full buffer) however slowly it trickles in, and each
 * read costs work for its own bytes only: never quadratic. */
static int s_head_ended(const char *buf, size_t len, size_t old)
{
    size_t k = 0;
    while (k < len && (buf[k] == '\r' || buf[k] == '\n'))
        if (++k > 3)
            return -1;
    size_t i = old > k + 3 ? old - 3 : k;
    for (; i < len; i++) {
        if (buf[i] != '\n')
            continue;
        size_t j = i + 1;
        if (j < len && buf[j] == '\r')
            j++;
        if (j < len && buf[j] == '\n')
            return 1;
    }
    return 0;
}

static void s_head_read(egress_conn_t *c)
{
    egress_dir_t *d = &c->up;
    size_t old = d->len;
    size_t want = EGRESS_HEAD_MAX - d->len;
    if (want == 0)
        return;
    ssize_t n = read(c->cfd, d->data + d->off + d->len, want);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        egress_conn_kill(c); /* gone before saying what it wanted */
        return;
    }
    if (n < 0)
        return;
    d->len += (size_t)n;
    if (c->proto == EGRESS_P_NONE)
        c->proto = (uint8_t)d->data[d->off] == 0x05 ? EGRESS_P_SOCKS : EGRESS_P_HTTP;
    if (c->proto == EGRESS_P_SOCKS)
        s_head_socks(c);
    else {
        int ended = s_head_ended(d->data + d->off, d->len, old);
        if (ended < 0)
            egress_conn_http_reply(c, 400, "Bad Request",
                                   "cellblock: bad request: not an HTTP request.\n");
        else if (old == 0 || ended || d->len >= EGRESS_HEAD_MAX)
            s_head_http(c);
    }
}

/* ---- events on a connection ---- */

static void s_conn_event(egress_conn_t *c, bool upstream, uint32_t ev)
{
    switch (c->state) {
    case EGRESS_ST_HEAD:
    case EGRESS_ST_SOCKS_REQ:
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
        egress_conn_update(c);
        break;
    case EGRESS_ST_CONNECTING:
        if (upstream) {
            int err = 0;
            socklen_t len = sizeof err;
            if (getsockopt(c->ufd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
                err = errno;
            s_connect_result(c, err);
        }
        break;
    case EGRESS_ST_PUMP: egress_conn_pump(c); break;
    case EGRESS_ST_CLOSING: egress_conn_closing_event(c); break;
    case EGRESS_ST_RESOLVING:
    case EGRESS_ST_ASKING:
        if (ev & (EPOLLHUP | EPOLLERR))
            egress_conn_kill(c);
        else if (ev & EPOLLOUT)
            egress_conn_pump_dir(c, &c->down, -1, c->cfd, false), egress_conn_update(c);
        break;
    }
}

static void s_timeout(egress_conn_t *c, int64_t now)
{
    switch (c->state) {
    case EGRESS_ST_HEAD:
    case EGRESS_ST_SOCKS_REQ:
        if (c->proto == EGRESS_P_HTTP) {
            static const char r[] = "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n"
                                    "Content-Length: 0\r\n\r\n";
            if (send(c->cfd, r, sizeof r - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
            }
        }
        egress_conn_kill(c);
        break;
    case EGRESS_ST_RESOLVING: {
        if (c->job)
            egress_resolver_cancel(c->eg->res, c->job);
        c->job = NULL;
        char what[400];
        snprintf(what, sizeof what, "resolving %s took too long", c->host);
        s_unreachable(c, ETIMEDOUT, what);
        break;
    }
    case EGRESS_ST_ASKING: egress_conn_refuse(c, "the question was not answered in time"); break;
    case EGRESS_ST_CONNECTING: s_connect_result(c, ETIMEDOUT); break;
    case EGRESS_ST_PUMP:
        if (now - c->last_io >= c->eg->cfg.idle_timeout_ms)
            egress_conn_kill(c);
        else
            c->deadline = c->last_io + c->eg->cfg.idle_timeout_ms;
        break;
    case EGRESS_ST_CLOSING: egress_conn_kill(c); break;
    }
}

static void s_sweep(egress_t *eg, int64_t now)
{
    int64_t next = now + 1000;
    for (egress_conn_t *c = eg->conns, *n; c; c = n) {
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
            egress_event_push(
                eg, EGRESS_EVENT_LOG, sb, NULL, 0, 0,
                "network: the sandbox has %u connections open, its limit; more are refused",
                sb->max_conns);
        }
        if (over && sb->refusing >= EGRESS_MAX_REFUSING) { /* no answer for these: just closed */
            sb->st.denied++;
            egress_conn_t tmp = {.sb = sb, .proto = EGRESS_P_CONNECT};
            egress_record_t *r = egress_record_of(&tmp);
            r->open = false;
            r->end_ms = r->start_ms;
            snprintf(r->reason, sizeof r->reason, "too many connections from this sandbox");
            close(fd);
            continue;
        }
        egress_conn_t *c = egress_conn_new(eg, sb, fd);
        c->counted = true;
        sb->st.open++;
        if (over) {
            c->refusing = true;
            sb->refusing++;
        }
        c->state = EGRESS_ST_HEAD;
        egress_conn_deadline(c, eg->cfg.head_timeout_ms);
        egress_conn_update(c);
    }
}

/* ---- the thread ---- */

void egress_free_dead(egress_t *eg)
{
    while (eg->dead_conns) {
        egress_conn_t *c = eg->dead_conns;
        eg->dead_conns = c->next;
        egress_conn_free(c);
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
            egress_src_t *src = evs[i].data.ptr;
            uint64_t v;
            switch (src->kind) {
            case EGRESS_SRC_WAKE:
                if (read(eg->wake_fd, &v, sizeof v) < 0) {
                }
                break;
            case EGRESS_SRC_RESOLVER: {
                egress_job_t *job;
                while ((job = egress_resolver_done(eg->res))) {
                    egress_conn_t *c = job->owner;
                    c->job = NULL;
                    if (!c->dead && c->state == EGRESS_ST_RESOLVING)
                        s_resolved(c, job);
                    free(job);
                }
                break;
            }
            case EGRESS_SRC_LISTENER: {
                egress_sandbox_t *sb = src->obj;
                if (!sb->dead)
                    s_accept(sb);
                break;
            }
            case EGRESS_SRC_CLIENT:
            case EGRESS_SRC_UPSTREAM: {
                egress_conn_t *c = src->obj;
                if (!c->dead)
                    s_conn_event(c, src->kind == EGRESS_SRC_UPSTREAM, evs[i].events);
                break;
            }
            }
        }
        int64_t now = cb_now_ms();
        if (now >= eg->next_sweep)
            s_sweep(eg, now);
        egress_free_dead(eg);
    }
    pthread_mutex_unlock(&eg->mu);
    return NULL;
}

void egress_wake(egress_t *eg)
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
    eg->wake_src = (egress_src_t){EGRESS_SRC_WAKE, eg};
    eg->res_src = (egress_src_t){EGRESS_SRC_RESOLVER, eg};
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
        egress_wake(eg);
        pthread_join(eg->thread, NULL);
    }
    while (eg->conns)
        egress_conn_kill(eg->conns);
    for (egress_sandbox_t *sb = eg->sandboxes, *n; sb; sb = n) {
        n = sb->next;
        if (sb->lfd >= 0)
            close(sb->lfd);
        sb->next = eg->dead_sandboxes;
        eg->dead_sandboxes = sb;
    }
    eg->sandboxes = NULL;
    egress_free_dead(eg);
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
