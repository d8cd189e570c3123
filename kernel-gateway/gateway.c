/* gateway.c: the gateway object: one czmq loop, its timers and deferred calls, the registries
 * of live kernels and sandboxes, the counters.
 *
 * Everything the gateway does happens in handlers on this loop: socket readers, pidfd and
 * pipe pollers, timers. Callers drive it with kg_gateway_run_until(), which runs the loop until
 * a flag that one of their callbacks sets turns nonzero: every handler returns
 * kg_gateway_handler_result(), which is -1 (leave zloop_start) exactly when that flag is set.
 *
 * Timers and deferred calls are ours, not zloop's (kg.h says why and states the two rules).
 * Timers: a table of records keyed by id and one timerfd, armed for the earliest deadline and
 * watched by one poller. That poller runs a pass: it takes the ids due now, then calls each one
 * whose record is still in the table, so a timer stopped earlier in the pass (its record is gone)
 * is skipped, and a timer started in the pass waits for a later one. Deferred calls: a FIFO and
 * one eventfd, watched by a second poller that runs the calls queued before it started; calls
 * queued meanwhile wait for its next turn.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "cb/alloc.h"
#include "cb/cleanup.h"
#include "cb/log.h"
#include "kg_private.h"

/* ---- timers ------------------------------------------------------------------------------ */

typedef struct {
    int id;
    int64_t when_us; /* next deadline, monotonic clock */
    int64_t delay_us;
    size_t times; /* runs left; 0: forever */
    kg_timer_fn *fn;
    void *arg;
} s_timer_t;

static size_t s_id_hash(const void *key) { return (size_t)(uintptr_t)key; }
static int s_id_compare(const void *a, const void *b)
{
    return (uintptr_t)a < (uintptr_t)b ? -1 : (uintptr_t)a > (uintptr_t)b;
}
static void s_timer_destroy(void **item) { free(*item), *item = NULL; }
#define S_KEY(id) ((void *)(uintptr_t)(id))

/* Arm the timerfd for the earliest deadline, or disarm it when there is none. */
static void s_timers_arm(kg_gateway_t *gw)
{
    int64_t first = 0;
    for (s_timer_t *t = zhashx_first(gw->timers); t; t = zhashx_next(gw->timers))
        if (!first || t->when_us < first)
            first = t->when_us;
    if (first == gw->timer_armed_us)
        return;
    struct itimerspec its = {0};
    if (first) { /* an absolute time: one already past fires at once */
        its.it_value.tv_sec = first / 1000000;
        its.it_value.tv_nsec = (first % 1000000) * 1000;
    }
    if (timerfd_settime(gw->timer_fd, TFD_TIMER_ABSTIME, &its, NULL) < 0)
        cb_warn("gateway: arming its timerfd: %s", strerror(errno));
    gw->timer_armed_us = first;
}

int kg_timer_start(kg_gateway_t *gw, size_t delay_ms, size_t times, kg_timer_fn *fn, void *arg)
{
    s_timer_t *t = cb_xcalloc(1, sizeof *t);
    if (++gw->last_timer_id <= 0) /* ids stay positive: a caller's -1 means "none" */
        gw->last_timer_id = 1;
    t->id = gw->last_timer_id;
    t->delay_us = (int64_t)delay_ms * 1000;
    t->when_us = cb_now_us() + t->delay_us;
    t->times = times;
    t->fn = fn;
    t->arg = arg;
    if (zhashx_insert(gw->timers, S_KEY(t->id), t) != 0) {
        free(t);
        return -1;
    }
    if (!gw->in_timer_pass && (!gw->timer_armed_us || t->when_us < gw->timer_armed_us))
        s_timers_arm(gw); /* a pass re-arms when it ends */
    return t->id;
}

void kg_timer_stop(kg_gateway_t *gw, int *timer_id)
{
    if (*timer_id > 0)
        zhashx_delete(gw->timers, S_KEY(*timer_id)); /* a spurious wake-up is harmless */
    *timer_id = -1;
}

typedef struct {
    int64_t when_us;
    int id;
} s_due_t;

static int s_due_compare(const void *a, const void *b)
{
    const s_due_t *x = a, *y = b;
    if (x->when_us != y->when_us)
        return x->when_us < y->when_us ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* The timerfd's poller: one pass over the timers due now, earliest first. */
static int s_on_timers(zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    kg_gateway_t *gw = arg;
    uint64_t expirations;
    if (read(gw->timer_fd, &expirations, sizeof expirations) < 0 && errno != EAGAIN)
        cb_warn("gateway: reading its timerfd: %s", strerror(errno));
    gw->timer_armed_us = 0; /* fired: s_timers_arm must arm it again */
    int64_t now = cb_now_us();
    size_t n = 0, size = zhashx_size(gw->timers);
    cleanup_free s_due_t *due = size ? cb_xcalloc(size, sizeof *due) : NULL;
    for (s_timer_t *t = due ? zhashx_first(gw->timers) : NULL; t && n < size;
         t = zhashx_next(gw->timers))
        if (t->when_us <= now)
            due[n++] = (s_due_t){t->when_us, t->id};
    qsort(due, n, sizeof *due, s_due_compare);
    int rc = 0;
    gw->in_timer_pass = true;
    for (size_t i = 0; i < n; i++) {
        s_timer_t *t = zhashx_lookup(gw->timers, S_KEY(due[i].id));
        if (!t)
            continue; /* stopped by a callback earlier in this pass */
        kg_timer_fn *fn = t->fn;
        void *fn_arg = t->arg;
        if (t->times && --t->times == 0) /* gone before it runs: stopping it is a no-op */
            zhashx_delete(gw->timers, S_KEY(due[i].id));
        else
            t->when_us = now + t->delay_us;
        if (fn(loop, due[i].id, fn_arg) == -1)
            rc = -1;
    }
    gw->in_timer_pass = false;
    s_timers_arm(gw);
    return rc == -1 ? -1 : kg_gateway_handler_result(gw);
}

/* ---- deferred calls ----------------------------------------------------------------------- */

typedef struct {
    kg_defer_fn *fn;
    void *arg;
} s_deferred_t;

static void s_deferred_destroy(void **item) { free(*item), *item = NULL; }

static zlistx_t *s_deferred_list(void)
{
    zlistx_t *list = zlistx_new(); /* czmq aborts when memory runs out */
    zlistx_set_destructor(list, s_deferred_destroy);
    return list;
}

static void s_defer_signal(kg_gateway_t *gw)
{
    uint64_t one = 1;
    if (!gw->defer_signalled && write(gw->defer_fd, &one, sizeof one) == sizeof one)
        gw->defer_signalled = true;
}

void kg_gateway_defer(kg_gateway_t *gw, kg_defer_fn *fn, void *arg)
{
    s_deferred_t *d = cb_xmalloc(sizeof *d);
    *d = (s_deferred_t){fn, arg};
    zlistx_add_end(gw->deferred, d);
    s_defer_signal(gw);
}

static void s_deferred_cancel_in(zlistx_t *list, kg_defer_fn *fn, void *arg)
{
    for (s_deferred_t *d = list ? zlistx_first(list) : NULL; d; d = zlistx_next(list))
        if (d->fn == fn && d->arg == arg)
            zlistx_delete(list, zlistx_cursor(list)); /* the cursor steps back; next goes on */
}

void kg_gateway_defer_cancel(kg_gateway_t *gw, kg_defer_fn *fn, void *arg)
{
    s_deferred_cancel_in(gw->deferred, fn, arg);
    s_deferred_cancel_in(gw->draining, fn, arg);
}

/* Run the calls queued so far, in order; calls they queue wait for the next drain. */
static void s_drain_once(kg_gateway_t *gw)
{
    gw->draining = gw->deferred;
    gw->deferred = s_deferred_list();
    s_deferred_t *d;
    while ((d = zlistx_detach(gw->draining, NULL))) {
        s_deferred_t call = *d;
        free(d);
        call.fn(gw, call.arg);
    }
    zlistx_destroy(&gw->draining);
}

/* The eventfd's poller: a fresh loop turn for the calls deferred before it. */
static int s_on_deferred(zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    kg_gateway_t *gw = arg;
    uint64_t count;
    if (read(gw->defer_fd, &count, sizeof count) < 0 && errno != EAGAIN)
        cb_warn("gateway: reading its deferred-call eventfd: %s", strerror(errno));
    gw->defer_signalled = false;
    s_drain_once(gw);
    return kg_gateway_handler_result(gw);
}

static int s_loop_init(kg_gateway_t *gw, cb_error_t *err)
{
    gw->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (gw->timer_fd < 0)
        return cb_error_make(err, errno, "gateway timerfd");
    gw->defer_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (gw->defer_fd < 0)
        return cb_error_make(err, errno, "gateway eventfd");
    zmq_pollitem_t timers = {.fd = gw->timer_fd, .events = ZMQ_POLLIN};
    zmq_pollitem_t deferred = {.fd = gw->defer_fd, .events = ZMQ_POLLIN};
    if (zloop_poller(gw->loop, &timers, s_on_timers, gw) < 0 ||
        zloop_poller(gw->loop, &deferred, s_on_deferred, gw) < 0)
        return cb_error_make(err, errno, "watch the gateway's timerfd and eventfd");
    zloop_poller_set_tolerant(gw->loop, &timers);
    zloop_poller_set_tolerant(gw->loop, &deferred);
    return 0;
}

/* At the very end, outside every callback: run what is still queued, then close the fds. */
static void s_loop_fini(kg_gateway_t *gw)
{
    for (int round = 0; gw->deferred && zlistx_size(gw->deferred) && round < 100; round++)
        s_drain_once(gw);
    if (gw->loop) {
        for (int i = 0; i < 2; i++) {
            zmq_pollitem_t item = {.fd = i ? gw->defer_fd : gw->timer_fd};
            if (item.fd >= 0)
                zloop_poller_end(gw->loop, &item);
        }
    }
    if (gw->timer_fd >= 0)
        close(gw->timer_fd);
    if (gw->defer_fd >= 0)
        close(gw->defer_fd);
    gw->timer_fd = gw->defer_fd = -1;
    zhashx_destroy(&gw->timers);
    zlistx_destroy(&gw->deferred);
}

/* ---- the gateway ---------------------------------------------------------------------------- */

static void s_fill_defaults(kg_config_t *c)
{
    if (c->startup_timeout_ms <= 0)
        c->startup_timeout_ms = 60000;
    if (c->heartbeat_ms == 0)
        c->heartbeat_ms = 3000;
    if (c->heartbeat_misses <= 0)
        c->heartbeat_misses = 3;
    if (c->interrupt_grace_ms <= 0)
        c->interrupt_grace_ms = 3000;
    if (c->shutdown_grace_ms <= 0)
        c->shutdown_grace_ms = 2000;
    if (c->restart_limit == 0)
        c->restart_limit = 5;
}

static char *s_default_runtime_dir(void)
{
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    if (xdg && *xdg && access(xdg, W_OK) == 0)
        return cb_strdup_printf("%s/cellblock", xdg);
    return cb_strdup_printf("/tmp/cellblock-%ld", (long)getuid());
}

/* The runtime dir holds every kernel's key and sockets: it must be ours and private. */
static int s_prepare_runtime_dir(const char *dir, cb_error_t *err)
{
    if (cb_mkdir_p(dir, 0700, err) < 0)
        return -1;
    struct stat st;
    if (lstat(dir, &st) < 0)
        return cb_error_make(err, errno, "stat runtime dir '%s'", dir);
    if (!S_ISDIR(st.st_mode) || st.st_uid != getuid())
        return cb_error_fail(err, CB_ERR_INVALID,
                             "runtime dir '%s' is not a directory owned by uid %ld", dir,
                             (long)getuid());
    if ((st.st_mode & 0077) && chmod(dir, 0700) < 0)
        return cb_error_make(err, errno, "make runtime dir '%s' private", dir);
    return 0;
}

kg_gateway_t *kg_gateway_new(const kg_config_t *config, cb_error_t *err)
{
    kg_gateway_t *self = cb_xcalloc(1, sizeof *self);
    if (config)
        self->cfg = *config;
    s_fill_defaults(&self->cfg);
    self->runtime_dir =
        self->cfg.runtime_dir ? cb_xstrdup(self->cfg.runtime_dir) : s_default_runtime_dir();
    self->kernels_dir =
        self->cfg.kernels_dir ? cb_xstrdup(self->cfg.kernels_dir) : jp_kernelspec_project_dir();
    self->cfg.runtime_dir = self->runtime_dir;
    self->cfg.kernels_dir = self->kernels_dir;
    if (self->cfg.limits.network) /* the default network policy: the gateway's own copy */
        self->default_network = egress_policy_copy(self->cfg.limits.network);
    self->cfg.limits.network = self->default_network;
    self->no_kernels = 1;
    self->started_ms = cb_now_ms();
    self->timer_fd = self->defer_fd = -1;
    self->loop = zloop_new();
    self->kernels = zhashx_new();
    self->sandboxes = zhashx_new();
    self->timers = zhashx_new();
    self->deferred = s_deferred_list();
    zhashx_set_key_hasher(self->timers, s_id_hash);
    zhashx_set_key_comparator(self->timers, s_id_compare);
    zhashx_set_key_duplicator(self->timers, NULL);
    zhashx_set_key_destructor(self->timers, NULL);
    zhashx_set_destructor(self->timers, s_timer_destroy);
    if (s_loop_init(self, err) < 0) {
        kg_gateway_destroy(&self);
        return NULL;
    }
    if (!self->cfg.no_sandbox && self->cfg.transport == JP_TRANSPORT_TCP) {
        cb_error_fail(err, CB_ERR_INVALID,
                      "tcp kernel sockets cannot reach into a sandbox (it has its own loopback); "
                      "use ipc, or run without sandboxes");
        kg_gateway_destroy(&self);
        return NULL;
    }
    if (s_prepare_runtime_dir(self->runtime_dir, err) < 0) {
        kg_gateway_destroy(&self);
        return NULL;
    }
    if (!self->cfg.no_sandbox)
        sbx_sweep_stale(self->runtime_dir);
    /* A kernel's pipes may close under us; that must be an error return, not a signal. */
    signal(SIGPIPE, SIG_IGN);
    return self;
}

void kg_gateway_destroy(kg_gateway_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    kg_gateway_t *self = *self_p;
    self->destroying = true; /* no more ends */
    if (self->policy && self->policy->closing)
        self->policy->closing(self, self->policy_arg); /* no more ticks or refills */
    if (self->kernels && zhashx_size(self->kernels) > 0) {
        /* Ask every kernel to stop, then let the loop carry the shutdowns through. Each step is
         * bounded by the grace periods; the bound below is their sum plus a margin. */
        zlistx_t *live = zhashx_values(self->kernels);
        for (kg_kernel_t *k = zlistx_first(live); k; k = zlistx_next(live))
            kg_kernel_shutdown(k);
        zlistx_destroy(&live);
        int bound = 3 * self->cfg.shutdown_grace_ms + 2000;
        zsys_interrupted = 0; /* a Ctrl-C that ended the caller's loop must not end the shutdown */
        int done = kg_gateway_run_until(self, &self->no_kernels, bound) == 0;
        if (!done) {
            cb_warn("%zu kernel(s) did not stop in %d ms; killing them", zhashx_size(self->kernels),
                    bound);
            zlistx_t *left = zhashx_values(self->kernels);
            for (kg_kernel_t *k = zlistx_first(left); k; k = zlistx_next(left))
                kg_kernel_free_now(k);
            zlistx_destroy(&left);
        }
    }
    if (self->sandboxes) {
        zlistx_t *left = zhashx_values(self->sandboxes);
        for (kg_sandbox_t *sb = left ? zlistx_first(left) : NULL; sb; sb = zlistx_next(left))
            kg_sandbox_destroy(&sb);
        zlistx_destroy(&left);
    }
    if (self->policy && self->policy->closed)
        self->policy->closed(self, self->policy_arg);
    kg_network_gateway_fini(self); /* after the sandboxes: each removed its registration */
    s_loop_fini(self);
    egress_policy_destroy(&self->default_network);
    zhashx_destroy(&self->sandboxes);
    zhashx_destroy(&self->kernels);
    zloop_destroy(&self->loop);
    free(self->runtime_dir);
    free(self->kernels_dir);
    free(self);
    *self_p = NULL;
}

zloop_t *kg_gateway_loop(kg_gateway_t *self) { return self->loop; }

void kg_gateway_note_layers(kg_gateway_t *gw, const sbx_layers_t *l)
{
    if (gw->layers_noted)
        return;
    gw->layers_noted = true;
    if (!l->cgroup_memory || !l->cgroup_pids || !l->cgroup_cpu)
        cb_warn("sandboxes run without some cgroup limits (memory %s, pids %s, cpu %s): %s",
                l->cgroup_memory ? "on" : "OFF", l->cgroup_pids ? "on" : "OFF",
                l->cgroup_cpu ? "on" : "OFF", l->cgroup_why[0] ? l->cgroup_why : "unknown reason");
    if (!l->seccomp)
        cb_warn("sandboxes run without the seccomp filter");
    else if (l->seccomp_log)
        cb_warn("seccomp is in log mode: syscalls outside the allowlist are allowed and logged");
}

const kg_counters_t *kg_gateway_counters(kg_gateway_t *self) { return &self->counters; }

int kg_gateway_set_policy(kg_gateway_t *self, const kg_policy_t *hooks, void *arg, cb_error_t *err)
{
    if (self->policy)
        return cb_error_fail(err, CB_ERR_STATE, "the gateway has a policy layer already");
    self->policy = hooks;
    self->policy_arg = arg;
    return 0;
}

void *kg_gateway_policy(kg_gateway_t *self, const kg_policy_t *hooks)
{
    return self->policy == hooks ? self->policy_arg : NULL;
}

int kg_gateway_handler_result(kg_gateway_t *gw)
{
    return (gw->watch_flag && *gw->watch_flag) ? -1 : 0;
}

static int s_on_deadline(zloop_t *loop, int timer_id, void *arg)
{
    *(int *)arg = 1;
    return -1;
}

int kg_gateway_run_until(kg_gateway_t *self, const volatile int *flag, int timeout_ms)
{
    int timed_out = 0;
    int timer = -1;
    if (timeout_ms >= 0)
        timer = kg_timer_start(self, (size_t)(timeout_ms > 0 ? timeout_ms : 1), 1, s_on_deadline,
                               &timed_out);
    const volatile int *outer = self->watch_flag; /* nested runs restore the outer flag */
    self->watch_flag = flag;
    while (!*flag && !timed_out && !zsys_interrupted) {
        if (zloop_start(self->loop) != 0 && !*flag && !timed_out)
            break; /* interrupted, or a handler failed */
    }
    self->watch_flag = outer;
    kg_timer_stop(self, &timer);
    return *flag ? 0 : -1;
}

kg_kernel_t *kg_gateway_kernel(kg_gateway_t *self, const char *kernel_id)
{
    return kernel_id ? zhashx_lookup(self->kernels, kernel_id) : NULL;
}

size_t kg_gateway_kernel_count(kg_gateway_t *self) { return zhashx_size(self->kernels); }

zlistx_t *kg_gateway_kernels(kg_gateway_t *self) { return zhashx_values(self->kernels); }

const char *kg_gateway_kernels_dir(kg_gateway_t *self) { return self->kernels_dir; }

void kg_gateway_count_malformed(kg_gateway_t *self) { self->counters.malformed_messages++; }

void kg_gateway_add_kernel(kg_gateway_t *gw, kg_kernel_t *kernel)
{
    zhashx_insert(gw->kernels, kernel->id, kernel);
    gw->no_kernels = 0;
}

void kg_gateway_remove_kernel(kg_gateway_t *gw, kg_kernel_t *kernel)
{
    zhashx_delete(gw->kernels, kernel->id);
    gw->no_kernels = zhashx_size(gw->kernels) == 0;
}

void kg_gateway_count_rejected(kg_gateway_t *gw, jp_wire_status_t status, bool from_proxy)
{
    if (from_proxy)
        gw->counters.proxy_dropped++;
    switch (status) {
    case JP_WIRE_BAD_SIGNATURE: gw->counters.bad_signatures++; break;
    case JP_WIRE_REPLAYED: gw->counters.replayed_signatures++; break;
    default: gw->counters.malformed_messages++; break;
    }
}
