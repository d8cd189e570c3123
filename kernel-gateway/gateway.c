/* gateway.c: the gateway object: one czmq loop, the registries of live kernels and sandboxes,
 * the counters.
 *
 * Everything the gateway does happens in handlers on this loop: socket readers, pidfd and
 * pipe pollers, timers. Callers drive it with kg_gateway_run_until(), which runs the loop until
 * a flag that one of their callbacks sets turns nonzero: every handler returns
 * kg_gateway_handler_result(), which is -1 (leave zloop_start) exactly when that flag is set.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cb/cleanup.h"
#include "cb/log.h"
#include "kg_private.h"

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

/* Persistent workspaces: $XDG_STATE_HOME/cellblock, else ~/.local/state/cellblock. */
static char *s_default_state_dir(void)
{
    const char *xdg = getenv("XDG_STATE_HOME");
    if (xdg && xdg[0] == '/')
        return cb_strdup_printf("%s/cellblock", xdg);
    const char *home = getenv("HOME");
    return cb_strdup_printf("%s/.local/state/cellblock", home && home[0] == '/' ? home : "/tmp");
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
    kg_gateway_t *self = calloc(1, sizeof *self);
    if (!self)
        return cb_error_make(err, ENOMEM, "new gateway"), NULL;
    if (config)
        self->cfg = *config;
    s_fill_defaults(&self->cfg);
    self->runtime_dir = self->cfg.runtime_dir ? strdup(self->cfg.runtime_dir)
                                              : s_default_runtime_dir();
    self->kernels_dir = self->cfg.kernels_dir ? strdup(self->cfg.kernels_dir)
                                              : kg_kernelspec_project_dir();
    self->templates_dir = self->cfg.templates_dir ? strdup(self->cfg.templates_dir)
                                                  : kg_template_project_dir();
    self->state_dir = self->cfg.state_dir ? strdup(self->cfg.state_dir) : s_default_state_dir();
    self->cfg.runtime_dir = self->runtime_dir;
    self->cfg.kernels_dir = self->kernels_dir;
    self->cfg.templates_dir = self->templates_dir;
    self->cfg.state_dir = self->state_dir;
    self->no_kernels = 1;
    self->started_ms = cb_now_ms();
    self->tick_timer = self->wake_fd = -1;
    self->loop = zloop_new();
    self->kernels = zhashx_new();
    self->sandboxes = zhashx_new();
    if (!self->runtime_dir || !self->kernels_dir || !self->templates_dir || !self->state_dir || !self->loop ||
        !self->kernels || !self->sandboxes) {
        cb_error_make(err, ENOMEM, "new gateway");
        kg_gateway_destroy(&self);
        return NULL;
    }
    if (!self->cfg.no_sandbox && self->cfg.transport == KG_TRANSPORT_TCP) {
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
    if (kg_lifetime_init(self, err) < 0) {
        kg_gateway_destroy(&self);
        return NULL;
    }
    /* A kernel's pipes may close under us; that must be an error return, not a signal. */
    signal(SIGPIPE, SIG_IGN);
    return self;
}

void kg_gateway_destroy(kg_gateway_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    kg_gateway_t *self = *self_p;
    if (self->loop)
        kg_lifetime_fini(self); /* no more ticks, ends or refills */
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
    kg_pool_destroy_all(self);
    if (self->sandboxes) {
        zlistx_t *left = zhashx_values(self->sandboxes);
        for (kg_sandbox_t *sb = left ? zlistx_first(left) : NULL; sb; sb = zlistx_next(left))
            kg_sandbox_destroy(&sb);
        zlistx_destroy(&left);
    }
    zhashx_destroy(&self->sandboxes);
    zhashx_destroy(&self->kernels);
    zloop_destroy(&self->loop);
    free(self->runtime_dir);
    free(self->kernels_dir);
    free(self->templates_dir);
    free(self->state_dir);
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
        timer = zloop_timer(self->loop, (size_t)(timeout_ms > 0 ? timeout_ms : 1), 1,
                            s_on_deadline, &timed_out);
    const volatile int *outer = self->watch_flag; /* nested runs restore the outer flag */
    self->watch_flag = flag;
    while (!*flag && !timed_out && !zsys_interrupted) {
        if (zloop_start(self->loop) != 0 && !*flag && !timed_out)
            break; /* interrupted, or a handler failed */
    }
    self->watch_flag = outer;
    if (timer >= 0 && !timed_out)
        zloop_timer_end(self->loop, timer);
    return *flag ? 0 : -1;
}

kg_kernel_t *kg_gateway_kernel(kg_gateway_t *self, const char *kernel_id)
{
    return kernel_id ? zhashx_lookup(self->kernels, kernel_id) : NULL;
}

size_t kg_gateway_kernel_count(kg_gateway_t *self) { return zhashx_size(self->kernels); }

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

void kg_gateway_count_rejected(kg_gateway_t *gw, kg_wire_status_t status, bool from_proxy)
{
    if (from_proxy)
        gw->counters.proxy_dropped++;
    switch (status) {
    case KG_WIRE_BAD_SIGNATURE:
        gw->counters.bad_signatures++;
        break;
    case KG_WIRE_REPLAYED:
        gw->counters.replayed_signatures++;
        break;
    default:
        gw->counters.malformed_messages++;
        break;
    }
}
