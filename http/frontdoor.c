/* http/frontdoor.c: the listening socket, and the forwards into sandboxes.
 *
 * Why: libwebsockets 4.1 cannot forward an HTTP request (no proxy support, and no way to list
 * a request's headers), so port forwards happen below it. The front door owns the listening
 * socket. For each connection it peeks (MSG_PEEK) at the request head until it is complete, with
 * a deadline (head_timeout_ms: a slow or silent client is closed; the API on other
 * connections is unaffected, since this thread never blocks), and asks forward.c what it is.
 * Anything that is not a forward (also garbage, which libwebsockets answers) is handed, bytes
 * untouched in the socket, to the libwebsockets thread (HM_ADOPT: lws_adopt_socket_vhost).
 *
 * A forward goes to the caller's thread (HM_FORWARD) for the decision that needs the gateway
 * (the sandbox, exposed or not, a socket inside it); the answer comes back as HM_FWD_GO with a
 * socket connecting into the sandbox, or HM_FWD_REFUSE. The pump then runs here, on this
 * thread's poll loop: the rewritten head first, then at most body_max bytes of the client's
 * (more is read and dropped: a keep-alive client's next request never reaches the sandbox),
 * the answer back as it comes (a streamed response arrives in pieces), half-close passed on.
 * When the upstream's direction ends, the client's connection is closed (one request per
 * connection). A connect not done in 10 s answers 502; a forward idle for 10 minutes (no byte
 * either way) is closed. A connect that fails answers 502 naming the port. HM_FWD_CLOSE closes the
 * forwards of a sandbox (or one port of it) at once: unexposing or deleting it.
 *
 * Every answer the door writes itself (400, 401, 411, 302, 404, 502) ends with shutting down
 * our side and reading what the client still sends, for a while, before closing, so the
 * client reads the answer instead of a reset. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cb/alloc.h"
#include "cb/cleanup.h"
#include "cb/log.h"
#include "http_private.h"

#define HEAD_MAX 16384
#define PUMP_CHUNK 65536
#define PUMP_HIGH (256 * 1024)   /* stop reading a side while this much waits for the other */
#define WAIT_MS 30000            /* the caller's thread answers a forward this fast */
#define DRAIN_MS 2000            /* after our answer, read what the client still sends */
#define RETRY_MS 5               /* an incomplete head is peeked at again after this */
#define CONNECT_MS 10000         /* the sandbox's server must accept this fast, or 502 */
#define IDLE_MS (10 * 60 * 1000) /* a forward with no byte either way this long is closed */

typedef enum {
    D_HEAD,  /* reading the request head */
    D_WAIT,  /* a forward: waiting for the caller's thread */
    D_PUMP,  /* forwarding */
    D_REPLY, /* writing an answer of ours */
    D_DRAIN, /* answered and shut down: reading until the client closes */
} dstate_t;

typedef struct {
    uint64_t id;
    int fd, up;
    dstate_t state;
    int64_t deadline, retry_at;
    http_fwd_plan_t plan;
    cb_buf_t to_up, to_client;
    size_t to_up_off, to_client_off;
    size_t skip; /* head bytes still to drop from the client's stream */
    uint64_t client_left;
    bool connecting, client_eof, up_eof, up_shut, dead;
    int pi_fd, pi_up; /* indexes into the pollfd array, -1: not polled */
} dconn_t;

typedef struct {
    dconn_t **v;
    size_t n, cap;
    uint64_t next_id;
    atomic_bool stop;
} door_t;

/* ---- connections ---------------------------------------------------------------------------- */

static dconn_t *s_conn_add(door_t *d, int fd, int64_t deadline)
{
    if (d->n == d->cap) {
        d->cap = d->cap ? 2 * d->cap : 64;
        d->v = cb_xrealloc(d->v, d->cap * sizeof(*d->v));
    }
    dconn_t *c = cb_xcalloc(1, sizeof(*c));
    c->id = ++d->next_id;
    c->fd = fd;
    c->up = -1;
    c->deadline = deadline;
    d->v[d->n++] = c;
    return c;
}

static void s_conn_free(dconn_t *c)
{
    if (c->fd >= 0)
        close(c->fd);
    if (c->up >= 0)
        close(c->up);
    http_fwd_plan_clear(&c->plan);
    cb_buf_free(&c->to_up);
    cb_buf_free(&c->to_client);
    free(c);
}

static dconn_t *s_conn_find(door_t *d, uint64_t id)
{
    for (size_t i = 0; i < d->n; i++)
        if (d->v[i]->id == id && !d->v[i]->dead)
            return d->v[i];
    return NULL;
}

/* Answer with text (taken) and close after it, gracefully. */
static void s_reply(dconn_t *c, char *text)
{
    if (c->up >= 0) {
        close(c->up);
        c->up = -1;
    }
    cb_buf_clear(&c->to_client);
    c->to_client_off = 0;
    cb_buf_append(&c->to_client, text, strlen(text));
    free(text);
    c->state = D_REPLY;
    c->deadline = cb_now_ms() + DRAIN_MS;
}

static void s_reply_error(dconn_t *c, int status, const char *why)
{
    s_reply(c, http_fwd_response(status, why, NULL));
}

/* ---- the head ------------------------------------------------------------------------------- */

static void s_adopt(http_server_t *self, dconn_t *c)
{
    http_msg_t *m = http_msg_new(HM_ADOPT, 0, NULL, 0);
    m->status = c->fd;
    c->fd = -1;
    c->dead = true;
    http_msgq_push(&self->to_lws, m);
    http_lws_wake(self);
}

static void s_on_head(http_server_t *self, dconn_t *c)
{
    char buf[HEAD_MAX];
    ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_PEEK | MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        c->dead = true;
        return;
    }
    if (n < 0)
        return;
    http_fwd_plan_clear(&c->plan);
    int rc = http_fwd_plan(self, buf, (size_t)n, &c->plan);
    if (rc == 0 && (size_t)n < sizeof(buf)) {
        c->retry_at = cb_now_ms() + RETRY_MS; /* the peeked bytes stay readable: no busy poll */
        return;
    }
    if (rc <= 0 || !c->plan.is_forward) {
        s_adopt(self, c);
        return;
    }
    c->skip = c->plan.head_len;
    if (c->plan.status) {
        s_reply_error(c, c->plan.status, c->plan.why);
        return;
    }
    if (c->plan.redirect) {
        cleanup_free char *extra = cb_strdup_printf("Location: %s\r\nSet-Cookie: %s\r\n",
                                                    c->plan.location, c->plan.set_cookie);
        s_reply(c, http_fwd_response(302, "to the port, with its cookie", extra));
        return;
    }
    if (!self->on_forward) {
        s_reply_error(c, 404, "this server forwards no ports");
        return;
    }
    c->state = D_WAIT;
    c->deadline = cb_now_ms() + WAIT_MS;
    http_msg_t *m = http_msg_new(HM_FORWARD, c->id, NULL, 0);
    m->text = cb_xstrdup(c->plan.sandbox);
    m->status = c->plan.port;
    m->flag = c->plan.websocket;
    http_post_main(self, m);
}

/* ---- the pump ------------------------------------------------------------------------------- */

static bool s_flush(int fd, cb_buf_t *b, size_t *off)
{
    while (*off < b->len) {
        ssize_t w = send(fd, b->data + *off, b->len - *off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0)
            return errno == EAGAIN || errno == EINTR;
        *off += (size_t)w;
    }
    cb_buf_clear(b);
    *off = 0;
    return true;
}

static void s_finish(dconn_t *c)
{
    /* The answer is out: shut our side, read the client's leftovers, then close. */
    if (c->up >= 0) {
        close(c->up);
        c->up = -1;
    }
    shutdown(c->fd, SHUT_WR);
    c->state = D_DRAIN;
    c->deadline = cb_now_ms() + DRAIN_MS;
}

static void s_client_read(dconn_t *c)
{
    char buf[PUMP_CHUNK];
    ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (n == 0) {
        c->client_eof = true;
        return;
    }
    if (n < 0) {
        if (errno != EAGAIN && errno != EINTR)
            c->dead = true;
        return;
    }
    size_t off = 0;
    if (c->skip) {
        off = (size_t)n < c->skip ? (size_t)n : c->skip;
        c->skip -= off;
    }
    if (c->state != D_PUMP)
        return; /* draining: dropped */
    size_t take = (size_t)n - off;
    if ((uint64_t)take > c->client_left)
        take = (size_t)c->client_left;
    if (take) {
        cb_buf_append(&c->to_up, buf + off, take);
        if (c->client_left != UINT64_MAX)
            c->client_left -= take;
    }
}

static void s_up_read(dconn_t *c)
{
    char buf[PUMP_CHUNK];
    ssize_t n = recv(c->up, buf, sizeof(buf), MSG_DONTWAIT);
    if (n == 0) {
        c->up_eof = true;
        return;
    }
    if (n < 0) {
        if (errno != EAGAIN && errno != EINTR)
            c->up_eof = true; /* what came is passed on, then the client is closed */
        return;
    }
    cb_buf_append(&c->to_client, buf, (size_t)n);
}

static void s_pump(dconn_t *c, short rev_fd, short rev_up)
{
    if (c->connecting && rev_up) {
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        if (getsockopt(c->up, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
            soerr = errno;
        if (soerr) {
            cleanup_free char *msg = cb_strdup_printf("nothing listens on port %d in sandbox %s",
                                                      c->plan.port, c->plan.sandbox);
            s_reply_error(c, 502, msg);
            return;
        }
        c->connecting = false;
        c->deadline = cb_now_ms() + IDLE_MS;
        int one = 1;
        setsockopt(c->up, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    if (!c->connecting)
        c->deadline = cb_now_ms() + IDLE_MS; /* something happened */
    if (rev_fd & (POLLIN | POLLHUP | POLLERR))
        s_client_read(c);
    if (!c->connecting && c->up >= 0 && (rev_up & (POLLIN | POLLHUP | POLLERR)))
        s_up_read(c);
    if (c->dead)
        return;
    if (!c->connecting && !s_flush(c->up, &c->to_up, &c->to_up_off)) {
        c->dead = true;
        return;
    }
    if (!s_flush(c->fd, &c->to_client, &c->to_client_off)) {
        c->dead = true;
        return;
    }
    if (!c->connecting && c->client_eof && !c->up_shut && c->to_up.len == 0) {
        shutdown(c->up, SHUT_WR);
        c->up_shut = true;
    }
    if (c->up_eof && c->to_client.len == 0)
        s_finish(c);
}

/* ---- messages from the caller's thread ------------------------------------------------------ */

static void s_on_message(door_t *d, http_msg_t *m)
{
    if (m->kind == HM_FWD_CLOSE) {
        for (size_t i = 0; i < d->n; i++) {
            dconn_t *c = d->v[i];
            if ((c->state == D_WAIT || c->state == D_PUMP) && c->plan.sandbox && m->text &&
                strcmp(c->plan.sandbox, m->text) == 0 &&
                (m->status == 0 || m->status == c->plan.port))
                c->dead = true;
        }
        return;
    }
    dconn_t *c = s_conn_find(d, m->id);
    if (m->kind == HM_FWD_GO) {
        int up = m->status;
        m->status = -1; /* ours now */
        if (!c || c->state != D_WAIT) {
            close(up);
            return;
        }
        c->up = up;
        c->state = D_PUMP;
        c->connecting = true;
        c->deadline = cb_now_ms() + CONNECT_MS;
        c->client_left = c->plan.body_max;
        cb_buf_append(&c->to_up, c->plan.head, strlen(c->plan.head));
        return;
    }
    if (m->kind == HM_FWD_REFUSE && c && c->state == D_WAIT)
        s_reply_error(c, m->status, m->text);
}

/* ---- the thread ----------------------------------------------------------------------------- */

static void s_accept(http_server_t *self, door_t *d)
{
    for (int i = 0; i < 64; i++) {
        int fd = accept4(self->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        if (d->n >= self->max_conns) {
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        s_conn_add(d, fd, cb_now_ms() + self->head_timeout_ms);
    }
}

static void *s_thread(void *arg)
{
    http_server_t *self = arg;
    door_t *d = self->door;
    struct pollfd *pfd = NULL;
    size_t pcap = 0;
    while (!atomic_load(&d->stop)) {
        int64_t now = cb_now_ms();
        if (pcap < 2 + 2 * d->n) {
            pcap = 2 + 2 * d->n + 64;
            pfd = cb_xrealloc(pfd, pcap * sizeof(*pfd));
        }
        size_t np = 0;
        pfd[np++] = (struct pollfd){.fd = self->listen_fd, .events = POLLIN};
        pfd[np++] = (struct pollfd){.fd = self->door_fd, .events = POLLIN};
        int64_t wake = now + 1000;
        for (size_t i = 0; i < d->n; i++) {
            dconn_t *c = d->v[i];
            c->pi_fd = c->pi_up = -1;
            short ev = 0, evu = 0;
            switch (c->state) {
            case D_HEAD:
                if (now >= c->retry_at)
                    ev = POLLIN;
                else if (c->retry_at < wake)
                    wake = c->retry_at;
                break;
            case D_WAIT: break;
            case D_REPLY: ev = POLLOUT; break;
            case D_DRAIN: ev = POLLIN; break;
            case D_PUMP:
                if (c->to_up.len < PUMP_HIGH && !c->client_eof)
                    ev |= POLLIN;
                if (c->to_client.len)
                    ev |= POLLOUT;
                if (c->connecting)
                    evu = POLLOUT;
                else {
                    if (c->to_client.len < PUMP_HIGH && !c->up_eof)
                        evu |= POLLIN;
                    if (c->to_up.len)
                        evu |= POLLOUT;
                }
                break;
            }
            if (c->deadline && c->deadline < wake)
                wake = c->deadline;
            if (ev) {
                c->pi_fd = (int)np;
                pfd[np++] = (struct pollfd){.fd = c->fd, .events = ev};
            }
            if (evu) {
                c->pi_up = (int)np;
                pfd[np++] = (struct pollfd){.fd = c->up, .events = evu};
            }
        }
        int timeout = wake > now ? (int)(wake - now) : 0;
        if (poll(pfd, np, timeout) < 0 && errno != EINTR)
            break;
        now = cb_now_ms();
        if (pfd[1].revents) {
            uint64_t v;
            ssize_t r = read(self->door_fd, &v, sizeof(v));
            (void)r;
            http_msg_t *m = http_msgq_take_all(&self->to_door);
            while (m) {
                http_msg_t *next = m->next;
                s_on_message(d, m);
                http_msg_free(m);
                m = next;
            }
        }
        size_t n = d->n; /* connections accepted below are polled next round */
        for (size_t i = 0; i < n; i++) {
            dconn_t *c = d->v[i];
            if (c->dead)
                continue;
            short rf = c->pi_fd >= 0 ? pfd[c->pi_fd].revents : 0;
            short ru = c->pi_up >= 0 ? pfd[c->pi_up].revents : 0;
            switch (c->state) {
            case D_HEAD:
                if (rf)
                    s_on_head(self, c);
                break;
            case D_REPLY:
                if (rf && !s_flush(c->fd, &c->to_client, &c->to_client_off))
                    c->dead = true;
                else if (rf && c->to_client.len == 0)
                    s_finish(c);
                break;
            case D_DRAIN:
                if (rf) {
                    char buf[PUMP_CHUNK];
                    ssize_t r = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
                    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
                        c->dead = true;
                }
                break;
            case D_PUMP:
                if (rf || ru)
                    s_pump(c, rf, ru);
                break;
            case D_WAIT: break;
            }
            if (!c->dead && c->deadline && now >= c->deadline) {
                if (c->state == D_PUMP && c->connecting) {
                    cleanup_free char *msg = cb_strdup_printf(
                        "port %d in sandbox %s did not accept the connection in time", c->plan.port,
                        c->plan.sandbox);
                    s_reply_error(c, 502, msg);
                } else {
                    c->dead = true; /* a head too slow, an answer too late, idle, drained */
                }
            }
        }
        if (pfd[0].revents)
            s_accept(self, d);
        size_t w = 0;
        for (size_t i = 0; i < d->n; i++) {
            if (d->v[i]->dead)
                s_conn_free(d->v[i]);
            else
                d->v[w++] = d->v[i];
        }
        d->n = w;
    }
    free(pfd);
    return NULL;
}

/* ---- start and stop ------------------------------------------------------------------------- */

static int s_bind(http_server_t *self, cb_error_t *err)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    socklen_t sl;
    int family = self->bind_v6 ? AF_INET6 : AF_INET;
    if (self->bind_v6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)self->port);
        inet_pton(AF_INET6, self->bind_host, &a->sin6_addr);
        sl = sizeof(*a);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)self->port);
        inet_pton(AF_INET, self->bind_host, &a->sin_addr);
        sl = sizeof(*a);
    }
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return cb_error_make(err, errno, "listen on %s:%d", self->bind_host, self->port);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (self->bind_v6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, 512) < 0) {
        int e = errno;
        close(fd);
        return cb_error_make(err, e, "listen on %s:%d", self->bind_host, self->port);
    }
    sl = sizeof(ss);
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    self->port = ntohs(self->bind_v6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                     : ((struct sockaddr_in *)&ss)->sin_port);
    self->listen_fd = fd;
    return 0;
}

int http_door_start(http_server_t *self, cb_error_t *err)
{
    if (self->listen_fd < 0)
        return cb_error_fail(err, CB_ERR_STATE, "the front door has no listening socket");
    door_t *d = cb_xcalloc(1, sizeof(*d));
    atomic_init(&d->stop, false);
    self->door = d;
    int rc = pthread_create(&self->door_thread, NULL, s_thread, self);
    if (rc != 0)
        return cb_error_make(err, rc, "start the HTTP front door thread");
    self->door_running = true;
    return 0;
}

int http_door_bind(http_server_t *self, cb_error_t *err) { return s_bind(self, err); }

void http_door_post(http_server_t *self, http_msg_t *msg)
{
    http_msgq_push(&self->to_door, msg);
    uint64_t one = 1;
    ssize_t n = write(self->door_fd, &one, sizeof(one));
    (void)n;
}

void http_door_stop(http_server_t *self)
{
    door_t *d = self->door;
    if (self->door_running) {
        atomic_store(&d->stop, true);
        uint64_t one = 1;
        ssize_t n = write(self->door_fd, &one, sizeof(one));
        (void)n;
        pthread_join(self->door_thread, NULL);
        self->door_running = false;
    }
    if (d) {
        for (size_t i = 0; i < d->n; i++)
            s_conn_free(d->v[i]);
        free(d->v);
        free(d);
        self->door = NULL;
    }
    if (self->listen_fd >= 0) {
        close(self->listen_fd);
        self->listen_fd = -1;
    }
}
