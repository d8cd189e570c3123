/* http/frontdoor.c: the listening socket, and the hand-over of forwards into sandboxes.
 *
 * Why: libwebsockets 4.1 cannot forward an HTTP request (no proxy support, and no way to list
 * a request's headers), so port forwards happen below it. The front door owns the listening
 * socket. For each connection it peeks (MSG_PEEK) at the request head until it is complete, with
 * a deadline (head_timeout_ms: a slow or silent client is closed; the API on other
 * connections is unaffected, since this thread never blocks), and asks forward.c what it is.
 * Anything that is not a forward (also garbage, which libwebsockets answers) is handed, bytes
 * untouched in the socket, to the libwebsockets thread (HM_ADOPT: lws_adopt_socket_vhost).
 *
 * A forward's head is read off the socket (it was peeked whole, so it is all there) and the
 * connection goes to the caller's thread (HM_FORWARD, with the head rewritten for upstream) for
 * the decision that needs the gateway (the sandbox, exposed or not, a socket inside it). There
 * http_forward_connect hands both sockets to the network plane's pump (egress_forward: the
 * head first, at most body_max bytes of the client's, the answer back, half-close, 502 on a
 * failed or slow connect, idle close, closed with the sandbox or its port); a refusal comes back
 * here (HM_FWD_REFUSE, with the connection) to be answered.
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
#define DRAIN_CHUNK 65536
#define DRAIN_MS 2000 /* after our answer, read what the client still sends */
#define RETRY_MS 5    /* an incomplete head is peeked at again after this */

typedef enum {
    D_HEAD,  /* reading the request head */
    D_REPLY, /* writing an answer of ours */
    D_DRAIN, /* answered and shut down: reading until the client closes */
} dstate_t;

typedef struct {
    uint64_t id;
    int fd;
    dstate_t state;
    int64_t deadline, retry_at;
    http_fwd_plan_t plan;
    cb_buf_t to_client;
    size_t to_client_off;
    bool dead;
    int pi_fd; /* index into the pollfd array, -1: not polled */
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
    c->deadline = deadline;
    c->pi_fd = -1;
    d->v[d->n++] = c;
    return c;
}

static void s_conn_free(dconn_t *c)
{
    if (c->fd >= 0)
        close(c->fd);
    http_fwd_plan_clear(&c->plan);
    cb_buf_free(&c->to_client);
    free(c);
}

/* Answer with text (taken) and close after it, gracefully. */
static void s_reply(dconn_t *c, char *text)
{
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

/* Read the peeked head off the socket: the client's bytes after it are the body. */
static bool s_consume_head(dconn_t *c)
{
    char buf[HEAD_MAX];
    size_t left = c->plan.head_len;
    while (left) {
        ssize_t n = recv(c->fd, buf, left < sizeof(buf) ? left : sizeof(buf), MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false; /* peeked bytes are always there to read: the connection broke */
        left -= (size_t)n;
    }
    return true;
}

/* Hand the connection to the caller's thread, which decides and connects (request.c). */
static void s_forward(http_server_t *self, dconn_t *c)
{
    http_forward_t *fwd = cb_xcalloc(1, sizeof(*fwd));
    fwd->id = c->id;
    fwd->fd = c->fd;
    fwd->sandbox = steal_pointer(&c->plan.sandbox);
    fwd->port = c->plan.port;
    fwd->websocket = c->plan.websocket;
    fwd->head = steal_pointer(&c->plan.head);
    fwd->body_max = c->plan.body_max;
    fwd->who = c->plan.who;
    c->fd = -1;
    c->dead = true;
    http_msg_t *m = http_msg_new(HM_FORWARD, fwd->id, NULL, 0);
    m->fwd = fwd;
    http_post_main(self, m);
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
    if (!self->on_forward && !self->claim_forward) {
        s_reply_error(c, 404, "this server forwards no ports");
        return;
    }
    if (!s_consume_head(c)) {
        c->dead = true;
        return;
    }
    s_forward(self, c);
}

/* ---- answers of ours ------------------------------------------------------------------------ */

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
    shutdown(c->fd, SHUT_WR);
    c->state = D_DRAIN;
    c->deadline = cb_now_ms() + DRAIN_MS;
}

/* ---- messages from the caller's thread ------------------------------------------------------ */

static void s_on_message(door_t *d, http_msg_t *m)
{
    if (m->kind != HM_FWD_REFUSE || !m->fwd || m->fwd->fd < 0)
        return;
    dconn_t *c = s_conn_add(d, m->fwd->fd, 0);
    m->fwd->fd = -1;
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
        if (pcap < 2 + d->n) {
            pcap = 2 + d->n + 64;
            pfd = cb_xrealloc(pfd, pcap * sizeof(*pfd));
        }
        size_t np = 0;
        pfd[np++] = (struct pollfd){.fd = self->listen_fd, .events = POLLIN};
        pfd[np++] = (struct pollfd){.fd = self->door_fd, .events = POLLIN};
        int64_t wake = now + 1000;
        for (size_t i = 0; i < d->n; i++) {
            dconn_t *c = d->v[i];
            c->pi_fd = -1;
            short ev = 0;
            switch (c->state) {
            case D_HEAD:
                if (now >= c->retry_at)
                    ev = POLLIN;
                else if (c->retry_at < wake)
                    wake = c->retry_at;
                break;
            case D_REPLY: ev = POLLOUT; break;
            case D_DRAIN: ev = POLLIN; break;
            }
            if (c->deadline && c->deadline < wake)
                wake = c->deadline;
            if (ev) {
                c->pi_fd = (int)np;
                pfd[np++] = (struct pollfd){.fd = c->fd, .events = ev};
            }
        }
        int timeout = wake > now ? (int)(wake - now) : 0;
        if (poll(pfd, np, timeout) < 0 && errno != EINTR)
            break;
        now = cb_now_ms();
        size_t n = d->n; /* connections added below are polled next round */
        for (size_t i = 0; i < n; i++) {
            dconn_t *c = d->v[i];
            if (c->dead)
                continue;
            short rf = c->pi_fd >= 0 ? pfd[c->pi_fd].revents : 0;
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
                    char buf[DRAIN_CHUNK];
                    ssize_t r = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
                    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
                        c->dead = true;
                }
                break;
            }
            if (!c->dead && c->deadline && now >= c->deadline)
                c->dead = true; /* a head too slow, an answer not taken, drained */
        }
        if (pfd[1].revents) { /* after the loop above: a refusal's connection is new */
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
