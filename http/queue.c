/* http/queue.c: the plumbing between the server thread and the caller's thread.
 *
 * Two small containers: a mutex-protected FIFO of messages (one per direction; the producer
 * pushes and then wakes the consumer: lws_cancel_service one way, an eventfd the other), and a
 * chained hash map from connection ids to pointers, which each side keeps privately to find
 * its own object for an id (and to find nothing, and drop the message, when it is gone). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cb/alloc.h"

#include "http_private.h"

/* ---- messages ------------------------------------------------------------------------------- */

http_msg_t *http_msg_new(http_msg_kind_t kind, uint64_t id, const void *data, size_t len)
{
    http_msg_t *msg = cb_xcalloc(1, sizeof(*msg));
    msg->buf = cb_xmalloc(HTTP_MSG_HEADROOM + len + 3);
    msg->kind = kind;
    msg->id = id;
    msg->data = msg->buf + HTTP_MSG_HEADROOM;
    msg->len = len;
    if (data && len)
        memcpy(msg->data, data, len);
    msg->data[len] = '\0';
    return msg;
}

void http_msg_free(http_msg_t *msg)
{
    if (!msg)
        return;
    /* A hand-over never delivered (the server stopped first): its fd is closed here. */
    if (msg->kind == HM_ADOPT && msg->status >= 0)
        close(msg->status);
    http_forward_free(msg->fwd);
    free(msg->buf);
    free(msg->text);
    cb_strv_free(msg->headers);
    http_request_free(msg->req);
    free(msg);
}

void http_msgq_init(http_msgq_t *q)
{
    pthread_mutex_init(&q->lock, NULL);
    q->head = q->tail = NULL;
}

void http_msgq_push(http_msgq_t *q, http_msg_t *msg)
{
    msg->next = NULL;
    pthread_mutex_lock(&q->lock);
    if (q->tail)
        q->tail->next = msg;
    else
        q->head = msg;
    q->tail = msg;
    pthread_mutex_unlock(&q->lock);
}

http_msg_t *http_msgq_take_all(http_msgq_t *q)
{
    pthread_mutex_lock(&q->lock);
    http_msg_t *list = q->head;
    q->head = q->tail = NULL;
    pthread_mutex_unlock(&q->lock);
    return list;
}

void http_msgq_destroy(http_msgq_t *q)
{
    http_msg_t *m = http_msgq_take_all(q);
    while (m) {
        http_msg_t *next = m->next;
        http_msg_free(m);
        m = next;
    }
    pthread_mutex_destroy(&q->lock);
}

/* ---- id map --------------------------------------------------------------------------------- */

struct http_idmap_entry {
    http_idmap_entry_t *next;
    uint64_t id;
    void *value;
};

static size_t s_bucket(const http_idmap_t *m, uint64_t id)
{
    id ^= id >> 33;
    id *= 0xff51afd7ed558ccdULL;
    id ^= id >> 33;
    return (size_t)id & (m->nbuckets - 1);
}

static void s_grow(http_idmap_t *m)
{
    size_t n = m->nbuckets ? m->nbuckets * 2 : 64;
    http_idmap_entry_t **b = cb_xcalloc(n, sizeof(*b));
    http_idmap_t grown = {.buckets = b, .nbuckets = n, .count = m->count};
    for (size_t i = 0; i < m->nbuckets; i++) {
        http_idmap_entry_t *e = m->buckets[i];
        while (e) {
            http_idmap_entry_t *next = e->next;
            size_t k = s_bucket(&grown, e->id);
            e->next = b[k];
            b[k] = e;
            e = next;
        }
    }
    free(m->buckets);
    *m = grown;
}

void http_idmap_put(http_idmap_t *m, uint64_t id, void *value)
{
    if ((m->count + 1) * 2 > m->nbuckets)
        s_grow(m);
    http_idmap_entry_t *e = cb_xmalloc(sizeof(*e));
    size_t k = s_bucket(m, id);
    e->id = id;
    e->value = value;
    e->next = m->buckets[k];
    m->buckets[k] = e;
    m->count++;
}

void *http_idmap_get(const http_idmap_t *m, uint64_t id)
{
    if (!m->nbuckets)
        return NULL;
    for (http_idmap_entry_t *e = m->buckets[s_bucket(m, id)]; e; e = e->next)
        if (e->id == id)
            return e->value;
    return NULL;
}

void *http_idmap_remove(http_idmap_t *m, uint64_t id)
{
    if (!m->nbuckets)
        return NULL;
    for (http_idmap_entry_t **pe = &m->buckets[s_bucket(m, id)]; *pe; pe = &(*pe)->next) {
        if ((*pe)->id == id) {
            http_idmap_entry_t *e = *pe;
            void *v = e->value;
            *pe = e->next;
            free(e);
            m->count--;
            return v;
        }
    }
    return NULL;
}

uint64_t *http_idmap_ids(const http_idmap_t *m, size_t *n)
{
    *n = 0;
    if (!m->count)
        return NULL;
    uint64_t *ids = cb_xmalloc(m->count * sizeof(*ids));
    for (size_t i = 0; i < m->nbuckets; i++)
        for (http_idmap_entry_t *e = m->buckets[i]; e; e = e->next)
            ids[(*n)++] = e->id;
    return ids;
}

void http_idmap_clear(http_idmap_t *m)
{
    for (size_t i = 0; i < m->nbuckets; i++) {
        http_idmap_entry_t *e = m->buckets[i];
        while (e) {
            http_idmap_entry_t *next = e->next;
            free(e);
            e = next;
        }
    }
    free(m->buckets);
    m->buckets = NULL;
    m->nbuckets = m->count = 0;
}
