/* resolver.c: host names looked up on a few threads of their own, so that a slow DNS server
 * never stalls the proxy's loop.
 *
 * How: a queue of jobs under a mutex and a condition variable; each thread takes a job, calls
 * getaddrinfo without the lock, puts the job on the done list and signals an eventfd the proxy
 * polls. The proxy cancels a job whose connection went away by clearing its owner; the result is
 * then dropped. The pool is reference-counted (one reference per thread, one for the proxy):
 * egress_resolver_destroy joins the threads that are idle (so their resolver state is freed
 * before it returns) and detaches those inside a look-up, never waiting for one that hangs; the
 * last thread out frees the pool and its eventfd. */
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "cb/alloc.h"
#include "cb/error.h"
#include "egress_private.h"

#define S_MAX_THREADS 8

struct egress_resolver {
    pthread_t threads[S_MAX_THREADS];
    bool busy[S_MAX_THREADS]; /* inside getaddrinfo */
    int n_threads;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    egress_job_t *queue, *queue_tail;
    egress_job_t *done, *done_tail;
    int refs;
    bool stopping;
    int efd;
};

static void s_unref_locked(egress_resolver_t *self)
{
    if (--self->refs > 0) {
        pthread_mutex_unlock(&self->mu);
        return;
    }
    for (egress_job_t *j = self->queue, *next; j; j = next)
        next = j->next, free(j);
    for (egress_job_t *j = self->done, *next; j; j = next)
        next = j->next, free(j);
    close(self->efd);
    pthread_mutex_unlock(&self->mu);
    pthread_mutex_destroy(&self->mu);
    pthread_cond_destroy(&self->cond);
    free(self);
}

static void s_lookup(egress_job_t *job)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    job->gai_error = getaddrinfo(job->host, NULL, &hints, &res);
    for (struct addrinfo *ai = res; ai && job->n_addrs < EGRESS_MAX_ADDRS; ai = ai->ai_next) {
        if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
            ai->ai_addrlen > sizeof job->addrs[0])
            continue;
        memcpy(&job->addrs[job->n_addrs++], ai->ai_addr, ai->ai_addrlen);
    }
    if (res)
        freeaddrinfo(res);
}

typedef struct {
    egress_resolver_t *pool;
    int index;
} s_arg_t;

static void *s_thread(void *arg)
{
    s_arg_t a = *(s_arg_t *)arg;
    free(arg);
    egress_resolver_t *self = a.pool;
    pthread_mutex_lock(&self->mu);
    for (;;) {
        while (!self->queue && !self->stopping)
            pthread_cond_wait(&self->cond, &self->mu);
        if (self->stopping)
            break;
        egress_job_t *job = self->queue;
        self->queue = job->next;
        if (!self->queue)
            self->queue_tail = NULL;
        job->next = NULL;
        bool wanted = job->owner != NULL;
        self->busy[a.index] = true;
        pthread_mutex_unlock(&self->mu);
        if (wanted)
            s_lookup(job);
        pthread_mutex_lock(&self->mu);
        self->busy[a.index] = false;
        if (self->done_tail)
            self->done_tail->next = job;
        else
            self->done = job;
        self->done_tail = job;
        uint64_t one = 1;
        if (write(self->efd, &one, sizeof one) < 0 && errno != EAGAIN)
            break;
    }
    s_unref_locked(self);
    return NULL;
}

egress_resolver_t *egress_resolver_new(int threads, cb_error_t *err)
{
    egress_resolver_t *self = cb_xcalloc(1, sizeof *self);
    self->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (self->efd < 0) {
        cb_error_make(err, errno, "eventfd");
        free(self);
        return NULL;
    }
    pthread_mutex_init(&self->mu, NULL);
    pthread_cond_init(&self->cond, NULL);
    self->refs = 1;
    if (threads > S_MAX_THREADS)
        threads = S_MAX_THREADS;
    for (int i = 0; i < threads; i++) {
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, 256 * 1024);
        s_arg_t *arg = cb_xmalloc(sizeof *arg);
        *arg = (s_arg_t){self, i};
        pthread_mutex_lock(&self->mu);
        self->refs++;
        int rc = pthread_create(&self->threads[i], &attr, s_thread, arg);
        if (rc == 0)
            self->n_threads++;
        else
            self->refs--;
        pthread_mutex_unlock(&self->mu);
        pthread_attr_destroy(&attr);
        if (rc != 0) {
            free(arg);
            if (i == 0) {
                egress_resolver_destroy(&self);
                cb_error_make(err, rc, "start a resolver thread");
                return NULL;
            }
            break; /* fewer threads still work */
        }
    }
    return self;
}

int egress_resolver_fd(egress_resolver_t *self) { return self->efd; }

egress_job_t *egress_resolver_submit(egress_resolver_t *self, const char *host, void *owner)
{
    egress_job_t *job = cb_xcalloc(1, sizeof *job);
    snprintf(job->host, sizeof job->host, "%s", host);
    job->owner = owner;
    pthread_mutex_lock(&self->mu);
    if (self->queue_tail)
        self->queue_tail->next = job;
    else
        self->queue = job;
    self->queue_tail = job;
    pthread_cond_signal(&self->cond);
    pthread_mutex_unlock(&self->mu);
    return job;
}

void egress_resolver_cancel(egress_resolver_t *self, egress_job_t *job)
{
    pthread_mutex_lock(&self->mu);
    job->owner = NULL;
    pthread_mutex_unlock(&self->mu);
}

egress_job_t *egress_resolver_done(egress_resolver_t *self)
{
    uint64_t v;
    pthread_mutex_lock(&self->mu);
    if (read(self->efd, &v, sizeof v) < 0) { /* EAGAIN: nothing signalled; the list decides */
    }
    egress_job_t *job;
    while ((job = self->done)) {
        self->done = job->next;
        if (!self->done)
            self->done_tail = NULL;
        job->next = NULL;
        if (job->owner)
            break;
        free(job);
    }
    pthread_mutex_unlock(&self->mu);
    return job;
}

void egress_resolver_destroy(egress_resolver_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    egress_resolver_t *self = *self_p;
    *self_p = NULL;
    pthread_mutex_lock(&self->mu);
    self->stopping = true;
    for (egress_job_t *j = self->queue; j; j = j->next)
        j->owner = NULL;
    pthread_cond_broadcast(&self->cond);
    bool busy[S_MAX_THREADS];
    memcpy(busy, self->busy, sizeof busy);
    int n = self->n_threads;
    pthread_mutex_unlock(&self->mu);
    /* An idle thread exits at once: join it. One inside getaddrinfo may hang: let it go. */
    for (int i = 0; i < n; i++) {
        if (busy[i])
            pthread_detach(self->threads[i]);
        else
            pthread_join(self->threads[i], NULL);
    }
    pthread_mutex_lock(&self->mu);
    s_unref_locked(self);
}
