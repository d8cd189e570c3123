/* pump.c: a connection's lifetime (made, watched, answered, closed), the byte pump, and the
 * records and events the proxy keeps.
 *
 * Why apart from proxy.c: everything here is the same for a proxied connection and a forward
 * (egress_forward), and it is where the bytes go. How: each direction has a buffer (the request
 * head, early bytes, replies) and, once pumping, a pipe: bytes move socket -> pipe -> socket with
 * splice(2) and never enter this process; a direction that must count what it passes (a
 * forward's client_bytes_max) keeps the buffer. Interest in epoll is recomputed from the state
 * after every step (level-triggered), and an fd with nothing to wait for is taken out of the set,
 * so a peer that hung up cannot spin the loop. Memory per connection is fixed: the struct and two
 * buffers of EGRESS_BUF bytes, whatever the client sends; records are a fixed ring per sandbox,
 * events a fixed ring per proxy. */
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

const char *const egress_proto_names[] = {"", "connect", "http", "socks5", "forward"};

/* ---- events for the gateway ---- */

void egress_event_push(egress_t *eg, egress_event_type_t type, const egress_sandbox_t *sb,
                       const char *host, uint16_t port, uint64_t ask_id, const char *fmt, ...)
{
    if (eg->ev_len == EGRESS_EVENTS) { /* full: the oldest goes */
        eg->ev_head = (eg->ev_head + 1) % EGRESS_EVENTS;
        eg->ev_len--;
    }
    egress_event_t *e = &eg->events[(eg->ev_head + eg->ev_len++) % EGRESS_EVENTS];
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

egress_record_t *egress_record_find(egress_sandbox_t *sb, uint64_t seq)
{
    if (!sb || !seq || !sb->recs)
        return NULL;
    egress_record_t *r = &sb->recs[seq % EGRESS_RECORDS];
    return r->seq == seq ? r : NULL;
}

/* The connection's record: made at its first verdict, updated after. */
egress_record_t *egress_record_of(egress_conn_t *c)
{
    egress_sandbox_t *sb = c->sb;
    if (!sb || c->proto == EGRESS_P_FORWARD)
        return NULL;
    egress_record_t *r = egress_record_find(sb, c->rec_seq);
    if (r)
        return r;
    if (!sb->recs)
        sb->recs = cb_xcalloc(EGRESS_RECORDS, sizeof *sb->recs);
    c->rec_seq = ++sb->rec_next;
    r = &sb->recs[c->rec_seq % EGRESS_RECORDS];
    memset(r, 0, sizeof *r);
    r->seq = c->rec_seq;
    cb_iso8601_now(r->time);
    r->start_ms = cb_now_ms();
    snprintf(r->host, sizeof r->host, "%s", c->host);
    r->port = c->port;
    r->protocol = egress_proto_names[c->proto == EGRESS_P_NONE ? EGRESS_P_CONNECT : c->proto];
    r->open = true;
    return r;
}

/* ---- connections: buffers, interest, closing ---- */

static void s_arm(egress_t *eg, int fd, egress_src_t *src, uint32_t *cur, uint32_t want)
{
    if (fd < 0 || *cur == want)
        return;
    struct epoll_event ev = {.events = want, .data.ptr = src};
    int op = *cur == 0 ? EPOLL_CTL_ADD : want == 0 ? EPOLL_CTL_DEL : EPOLL_CTL_MOD;
    if (epoll_ctl(eg->epfd, op, fd, &ev) < 0)
        cb_warn("egress: epoll_ctl: %s", strerror(errno));
    *cur = want;
}

static size_t s_room(const egress_dir_t *d) { return d->cap - d->off - d->len; }

/* Whether the direction takes more from its source now. */
static bool s_can_read(const egress_dir_t *d)
{
    if (d->eof)
        return false;
    if (d->pipe[0] >= 0)
        return d->len == 0 && d->plen == 0;
    return s_room(d) || d->off;
}

static void s_pipe_close(egress_dir_t *d)
{
    for (int i = 0; i < 2; i++)
        if (d->pipe[i] >= 0) {
            close(d->pipe[i]);
            d->pipe[i] = -1;
        }
}

/* Pump through a pipe with splice(2): the bytes never cross into this process. A direction
 * that must see its bytes (a forward's client_bytes_max) keeps the buffer. */
void egress_dir_pipe_open(egress_dir_t *d)
{
    if (pipe2(d->pipe, O_NONBLOCK | O_CLOEXEC) < 0) {
        d->pipe[0] = d->pipe[1] = -1;
        return;
    }
    if (fcntl(d->pipe[1], F_SETPIPE_SZ, EGRESS_PIPE) < 0) { /* the default size still works */
    }
}

void egress_conn_update(egress_conn_t *c)
{
    if (c->dead)
        return;
    uint32_t cw = 0, uw = 0;
    switch (c->state) {
    case EGRESS_ST_HEAD:
    case EGRESS_ST_SOCKS_REQ:
        if (c->up.len < EGRESS_HEAD_MAX)
            cw |= EPOLLIN;
        if (c->down.len)
            cw |= EPOLLOUT;
        break;
    case EGRESS_ST_RESOLVING:
    case EGRESS_ST_ASKING:
        if (c->down.len)
            cw |= EPOLLOUT;
        break;
    case EGRESS_ST_CONNECTING: uw = EPOLLOUT; break;
    case EGRESS_ST_PUMP:
        if (s_can_read(&c->up))
            cw |= EPOLLIN;
        if (c->down.len || c->down.plen)
            cw |= EPOLLOUT;
        if (s_can_read(&c->down))
            uw |= EPOLLIN;
        if (c->up.len || c->up.plen)
            uw |= EPOLLOUT;
        break;
    case EGRESS_ST_CLOSING: cw = c->down.len ? EPOLLOUT : EPOLLIN; break;
    }
    s_arm(c->eg, c->cfd, &c->csrc, &c->cmask, cw);
    s_arm(c->eg, c->ufd, &c->usrc, &c->umask, uw);
}

void egress_conn_deadline(egress_conn_t *c, int64_t ms)
{
    c->deadline = cb_now_ms() + ms;
    if (c->deadline < c->eg->next_sweep)
        c->eg->next_sweep = c->deadline;
}

void egress_close_fd(egress_t *eg, int *fd, uint32_t *mask)
{
    if (*fd < 0)
        return;
    if (*mask)
        epoll_ctl(eg->epfd, EPOLL_CTL_DEL, *fd, NULL);
    *mask = 0;
    close(*fd);
    *fd = -1;
}

void egress_conn_kill(egress_conn_t *c)
{
    if (c->dead)
        return;
    egress_t *eg = c->eg;
    c->dead = true;
    egress_close_fd(eg, &c->cfd, &c->cmask);
    egress_close_fd(eg, &c->ufd, &c->umask);
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
    egress_record_t *r = egress_record_find(sb, c->rec_seq);
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

void egress_conn_free(egress_conn_t *c)
{
    free(c->up.data);
    free(c->down.data);
    free(c->fail_response);
    free(c);
}

egress_conn_t *egress_conn_new(egress_t *eg, egress_sandbox_t *sb, int cfd)
{
    egress_conn_t *c = cb_xcalloc(1, sizeof *c);
    c->eg = eg;
    c->sb = sb;
    c->cfd = cfd;
    c->ufd = -1;
    c->csrc = (egress_src_t){EGRESS_SRC_CLIENT, c};
    c->usrc = (egress_src_t){EGRESS_SRC_UPSTREAM, c};
    c->up.cap = c->down.cap = EGRESS_BUF;
    c->client_left = UINT64_MAX;
    c->up.pipe[0] = c->up.pipe[1] = c->down.pipe[0] = c->down.pipe[1] = -1;
    c->up.data = cb_xmalloc(EGRESS_BUF);
    c->down.data = cb_xmalloc(EGRESS_BUF);
    c->next = eg->conns;
    if (eg->conns)
        eg->conns->prev = c;
    eg->conns = c;
    return c;
}

/* Queue bytes for the client (a reply); they fit: replies are small and the buffer is empty. */
void egress_conn_reply_bytes(egress_conn_t *c, const void *data, size_t len)
{
    egress_dir_t *d = &c->down;
    if (len > s_room(d))
        len = s_room(d);
    memcpy(d->data + d->off + d->len, data, len);
    d->len += len;
}

/* Answer and close: the reply is flushed, the write side shut, the client's bytes read and
 * dropped until it closes (closing with unread bytes would reset the connection and could lose
 * the reply), at most EGRESS_CLOSE_LINGER_MS. */
void egress_conn_close_with(egress_conn_t *c, const void *reply, size_t len)
{
    egress_close_fd(c->eg, &c->ufd, &c->umask);
    s_pipe_close(&c->up);
    s_pipe_close(&c->down);
    c->up.plen = c->down.plen = 0;
    c->up.len = c->up.off = 0; /* down keeps what is pending (SOCKS5's method reply) */
    if (len)
        egress_conn_reply_bytes(c, reply, len);
    if (c->down.len == 0) /* nothing to say: the client sees the end at once */
        shutdown(c->cfd, SHUT_WR);
    c->state = EGRESS_ST_CLOSING;
    egress_conn_deadline(c, EGRESS_CLOSE_LINGER_MS);
    egress_conn_update(c);
}

void egress_conn_http_reply(egress_conn_t *c, int status, const char *reason, const char *body)
{
    char buf[2048];
    int n = snprintf(buf, sizeof buf,
                     "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     status, reason, strlen(body), body);
    egress_conn_close_with(c, buf, n < (int)sizeof buf ? (size_t)n : sizeof buf - 1);
}

void egress_conn_socks_reply(egress_conn_t *c, uint8_t code, bool close_after)
{
    uint8_t r[22] = {0x05, code, 0x00, 0x01};
    size_t len = 10;
    if (code == SOCKS_OK && c->ufd >= 0) {
        struct sockaddr_storage ss = {0};
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
        egress_conn_close_with(c, r, len);
    else
        egress_conn_reply_bytes(c, r, len);
}

/* ---- the pump ---- */

static void s_count(egress_conn_t *c, bool to_upstream, size_t n)
{
    egress_sandbox_t *sb = c->sb;
    c->last_io = cb_now_ms();
    if (!sb || c->proto == EGRESS_P_FORWARD)
        return;
    egress_record_t *r = egress_record_find(sb, c->rec_seq);
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

/* How many bytes this connection may still read before its sandbox's byte limit is crossed
 * (one more than what is left, so that crossing it is seen): a connection crosses it by one
 * byte at most (several connections of one sandbox pumping at once, by one pass each). */
static size_t s_budget(const egress_conn_t *c)
{
    const egress_sandbox_t *sb = c->sb;
    if (!sb || c->proto == EGRESS_P_FORWARD || !sb->max_bytes)
        return SIZE_MAX;
    /* counted, and on its way upstream (counted when written) */
    uint64_t used = sb->st.bytes_in + sb->st.bytes_out + c->up.len + c->up.plen;
    if (used > sb->max_bytes)
        return 0; /* crossed: egress_conn_pump closes it */
    uint64_t left = sb->max_bytes - used;
    return left >= SIZE_MAX - 1 ? SIZE_MAX : (size_t)left + 1;
}

/* After a write of n bytes towards dst (send or splice): count them (bytes to upstream are
 * counted when written; the other way, when read) and return 1, or 0 when dst would block, or -1
 * when the connection died (it is killed). */
static int s_wrote(egress_conn_t *c, ssize_t n, bool to_upstream)
{
    if (n < 0) {
        if (errno == EAGAIN || errno == EINTR)
            return 0;
        egress_conn_kill(c);
        return -1;
    }
    if (to_upstream)
        s_count(c, true, (size_t)n);
    else
        c->last_io = cb_now_ms();
    return 1;
}

/* After a read of n bytes from the source (read or splice): 1 when bytes came, 0 when it would
 * block or ended (d->eof set), -1 when the connection died (it is killed). */
static int s_read(egress_conn_t *c, egress_dir_t *d, ssize_t n)
{
    if (n < 0) {
        if (errno == EAGAIN || errno == EINTR)
            return 0;
        egress_conn_kill(c);
        return -1;
    }
    if (n == 0) {
        d->eof = true;
        return 0;
    }
    return 1;
}

/* Move what can move from src to dst through d; false when the connection died. */
bool egress_conn_pump_dir(egress_conn_t *c, egress_dir_t *d, int src, int dst, bool to_upstream)
{
    for (int round = 0; round < 8; round++) {
        if (d->len) {
            ssize_t n = send(dst, d->data + d->off, d->len, MSG_NOSIGNAL);
            int moved = s_wrote(c, n, to_upstream);
            if (moved <= 0) {
                if (moved == 0)
                    break;
                return false;
            }
            d->off += (size_t)n;
            d->len -= (size_t)n;
            if (d->len)
                break; /* the peer is slower: wait for EPOLLOUT */
            d->off = 0;
        }
        if (d->plen) {
            ssize_t n =
                splice(d->pipe[0], NULL, dst, NULL, d->plen, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
            int moved = s_wrote(c, n, to_upstream);
            if (moved <= 0) {
                if (moved == 0)
                    break;
                return false;
            }
            d->plen -= (size_t)n;
            if (d->plen)
                break;
        }
        if (d->eof || src < 0)
            break;
        size_t budget = s_budget(c);
        if (budget == 0)
            break;
        if (d->pipe[0] >= 0) {
            size_t want = budget < EGRESS_PIPE ? budget : EGRESS_PIPE;
            ssize_t n =
                splice(src, NULL, d->pipe[1], NULL, want, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
            int got = s_read(c, d, n);
            if (got <= 0) {
                if (got == 0)
                    break;
                return false;
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
        if (!drop && budget < want)
            want = budget;
        ssize_t n = read(src, d->data + (drop ? 0 : d->off + d->len), want);
        int got = s_read(c, d, n);
        if (got <= 0) {
            if (got == 0)
                break;
            return false;
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

void egress_conn_pump(egress_conn_t *c)
{
    if (!egress_conn_pump_dir(c, &c->up, c->cfd, c->ufd, true) ||
        !egress_conn_pump_dir(c, &c->down, c->ufd, c->cfd, false))
        return;
    if ((c->up.shut || c->client_left == 0) && c->down.shut) {
        egress_conn_kill(c);
        return;
    }
    egress_sandbox_t *sb = c->sb;
    if (sb && c->proto != EGRESS_P_FORWARD && sb->max_bytes &&
        sb->st.bytes_in + sb->st.bytes_out > sb->max_bytes) {
        if (!sb->bytes_logged)
            egress_event_push(
                c->eg, EGRESS_EVENT_LOG, sb, c->host, c->port, 0,
                "network: the sandbox's byte limit (%llu bytes) is reached; connection to "
                "%s port %u closed",
                (unsigned long long)sb->max_bytes, c->host, c->port);
        sb->bytes_logged = true;
        egress_record_t *r = egress_record_find(sb, c->rec_seq);
        if (r)
            snprintf(r->reason, sizeof r->reason, "byte limit reached");
        egress_conn_kill(c);
        return;
    }
    c->deadline = c->last_io + c->eg->cfg.idle_timeout_ms;
    egress_conn_update(c);
}

void egress_conn_closing_event(egress_conn_t *c)
{
    if (c->down.len) {
        ssize_t n = send(c->cfd, c->down.data + c->down.off, c->down.len, MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN && errno != EINTR) {
            egress_conn_kill(c);
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
            egress_conn_kill(c);
            return;
        }
    }
    egress_conn_update(c);
}
