/* sandboxes.c: the proxy's public functions on sandboxes, events, questions and forwards.
 *
 * Why apart: these run on the caller's thread (the gateway's loop), not the proxy's. How: each
 * takes egress_t.mu and acts at once (registers a listener, closes a sandbox's connections,
 * answers a question, starts a forward); what it closes is only marked dead, and the proxy
 * thread frees it after its current batch of epoll events (proxy.c), then wakes the thread when
 * its deadlines may have changed. */
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
    sb->lsrc = (egress_src_t){EGRESS_SRC_LISTENER, sb};
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
    for (egress_conn_t *c = self->conns, *n; c; c = n) {
        n = c->next;
        if (c->sb == sb)
            egress_conn_kill(c);
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
    egress_wake(self);
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
    uint64_t kept = last < EGRESS_RECORDS ? last : EGRESS_RECORDS - 1;
    if (max && max < kept)
        kept = max;
    int64_t now = cb_now_ms();
    for (uint64_t seq = last - kept + 1; sb->recs && seq <= last; seq++) {
        const egress_record_t *r = egress_record_find(sb, seq);
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
        self->ev_head = (self->ev_head + 1) % EGRESS_EVENTS;
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
    egress_conn_t *c = self->conns;
    while (c && !(c->state == EGRESS_ST_ASKING && c->ask_id == ask_id))
        c = c->next;
    if (c) {
        if (!allow) {
            egress_conn_refuse(c, "the question was answered no");
        } else {
            if (remember) {
                char entry[300];
                snprintf(entry, sizeof entry, strchr(c->host, ':') ? "[%s]:%u" : "%s:%u", c->host,
                         c->port);
                cb_error_t e;
                if (egress_policy_add(c->sb->policy, entry, false, &e) < 0)
                    cb_warn("egress: remember %s: %s", entry, e.msg);
            }
            egress_conn_after_name(c);
        }
    }
    pthread_mutex_unlock(&self->mu);
    egress_wake(self);
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
    egress_conn_t *c = egress_conn_new(self, sb, client_fd);
    c->proto = EGRESS_P_FORWARD;
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
    c->state = EGRESS_ST_CONNECTING;
    c->next_addr = 1; /* s_connected's record lookup: none for forwards */
    egress_conn_deadline(c, self->cfg.connect_timeout_ms);
    egress_conn_update(c);
    pthread_mutex_unlock(&self->mu);
    egress_wake(self);
    return 0;
}
