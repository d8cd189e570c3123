/* sandbox.c: the gateway's side of a sandbox: its id, its limits (the gateway's policy turned
 * into an sbx_policy_t), its commands, and the workspace file calls that MCP and the HTTP API
 * reach through kg.h. The isolation itself is sandbox/'s business (sbx.h).
 *
 * Kernels point at their sandbox; destroying a sandbox first frees every kernel in it (their
 * executions end as cancelled) and every command, then the sandbox, which kills whatever else
 * is left inside.
 */
#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "cb/alloc.h"
#include "cb/cleanup.h"
#include "cb/log.h"
#include "kg_private.h"

#define MiB (1024ull * 1024ull)

static void s_fill_limits(kg_sandbox_limits_t *l, const kg_sandbox_limits_t *defaults)
{
    static const kg_sandbox_limits_t builtin = {
        .memory_mb = 2048, .pids_max = 1024, .cpu_millis = 0, .tmp_mb = 256, .workspace_mb = 1024};
    const kg_sandbox_limits_t *layers[2] = {defaults, &builtin};
    for (int i = 0; i < 2; i++) {
        if (!layers[i])
            continue;
        if (!l->memory_mb)
            l->memory_mb = layers[i]->memory_mb;
        if (!l->pids_max)
            l->pids_max = layers[i]->pids_max;
        if (!l->cpu_millis)
            l->cpu_millis = layers[i]->cpu_millis;
        if (!l->tmp_mb)
            l->tmp_mb = layers[i]->tmp_mb;
        if (!l->workspace_mb)
            l->workspace_mb = layers[i]->workspace_mb;
        if (!l->network)
            l->network = layers[i]->network;
    }
}

static int s_on_init_exit(zloop_t *loop, zmq_pollitem_t *item, void *arg);

static void s_free(kg_sandbox_t *sb)
{
    zhashx_destroy(&sb->commands);
    if (sb->log)
        for (size_t i = 0; i < KG_SANDBOX_LOG_MAX; i++)
            free(sb->log[i].text);
    free(sb->log);
    cb_strv_free(sb->env);
    egress_policy_destroy(&sb->network);
    free(sb->end_detail);
    free(sb);
}

kg_sandbox_t *kg_sandbox_new(kg_gateway_t *gw, const kg_sandbox_limits_t *limits, const char *id,
                             const char *workspace_dir, const char *const *env, cb_error_t *err)
{
    kg_sandbox_t *sb = cb_xcalloc(1, sizeof *sb);
    sb->commands = zhashx_new(); /* czmq aborts when memory runs out */
    sb->log = cb_xcalloc(KG_SANDBOX_LOG_MAX, sizeof *sb->log);
    sb->env = cb_strv_copy(env);
    zuuid_t *uuid = id ? NULL : zuuid_new();
    if (uuid)
        snprintf(sb->id, sizeof sb->id, "%s", zuuid_str_canonical(uuid));
    else
        snprintf(sb->id, sizeof sb->id, "%s", id);
    zuuid_destroy(&uuid);
    if (!sb->id[0]) {
        s_free(sb);
        return cb_error_fail(err, CB_ERR_INVALID, "new sandbox: an empty id"), NULL;
    }
    sb->gw = gw;
    sb->created_ms = sb->cpu_sample_ms = cb_now_ms();
    if (limits)
        sb->limits = *limits;
    s_fill_limits(&sb->limits, &gw->cfg.limits);
    if (sb->limits.network)
        sb->network = egress_policy_copy(sb->limits.network);
    sb->limits.network = sb->network; /* its own copy from here on */

    cleanup_free char *run_dir = cb_strdup_printf("%s/s-%.8s", gw->runtime_dir, sb->id);
    sbx_policy_t policy = {
        .run_dir = run_dir,
        .memory_bytes = sb->limits.memory_mb * MiB,
        .pids_max = sb->limits.pids_max,
        .cpu_millis = sb->limits.cpu_millis,
        .tmp_bytes = sb->limits.tmp_mb * MiB,
        .workspace_bytes = sb->limits.workspace_mb * MiB,
        .workspace_dir = workspace_dir,
        .seccomp_log = gw->cfg.seccomp_log,
    };
    sb->sbx = sbx_new(&policy, err);
    if (!sb->sbx || zhashx_insert(gw->sandboxes, sb->id, sb) != 0) {
        if (sb->sbx)
            cb_error_fail(err, CB_ERR_STATE, "a sandbox with id %s exists already", sb->id);
        sbx_destroy(&sb->sbx);
        s_free(sb);
        return NULL;
    }
    if (kg_network_sandbox_add(sb, err) < 0) {
        zhashx_delete(gw->sandboxes, sb->id);
        sbx_destroy(&sb->sbx);
        s_free(sb);
        return NULL;
    }
    zmq_pollitem_t item = {.fd = sbx_init_pidfd(sb->sbx), .events = ZMQ_POLLIN};
    sb->init_watched = zloop_poller(gw->loop, &item, s_on_init_exit, sb) == 0;
    cb_error_t perr = {0};
    if (kg_packages_sandbox_prepare(sb, &perr) < 0)
        kg_sandbox_log(sb, "sandbox", "%s", perr.msg); /* installs still work, imports may lag */
    gw->counters.sandboxes_created++;
    kg_gateway_note_layers(gw, sbx_layers(sb->sbx));
    kg_sandbox_log(
        sb, "sandbox", "created (memory %llu MiB, pids %llu, workspace %llu MiB%s)",
        (unsigned long long)sb->limits.memory_mb, (unsigned long long)sb->limits.pids_max,
        (unsigned long long)sb->limits.workspace_mb, workspace_dir ? ", persistent" : "");
    cb_debug("sandbox %.8s: created (init pid %d)", sb->id, (int)sbx_init_pid(sb->sbx));
    return sb;
}

kg_sandbox_t *kg_sandbox_create(kg_gateway_t *gw, const kg_sandbox_limits_t *limits,
                                cb_error_t *err)
{
    return kg_sandbox_new(gw, limits, NULL, NULL, NULL, err);
}

/* The init died, and with it every process of the sandbox (PID 1 of its pid namespace). */
static int s_on_init_exit(zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    kg_sandbox_t *sb = arg;
    zloop_poller_end(loop, item);
    sb->init_watched = false;
    sb->dead = true;
    cb_warn("sandbox %.8s: its init process died; every process in it is gone", sb->id);
    kg_sandbox_log(sb, "sandbox", "died: its init process ended, and every process in it with it");
    kg_gateway_t *gw = sb->gw;
    if (gw->policy && gw->policy->init_died)
        gw->policy->init_died(sb, gw->policy_arg); /* may end it (later, never now) */
    return kg_gateway_handler_result(gw);
}

void kg_sandbox_destroy(kg_sandbox_t **self_p)
{
    kg_sandbox_t *sb = self_p ? *self_p : NULL;
    if (!sb)
        return;
    *self_p = NULL;
    kg_gateway_t *gw = sb->gw;
    if (sb->init_watched) {
        zmq_pollitem_t item = {.fd = sbx_init_pidfd(sb->sbx), .events = ZMQ_POLLIN};
        zloop_poller_end(gw->loop, &item);
    }
    /* Kernels first: each is freed at once (no graceful shutdown: the sandbox is going). */
    zlistx_t *kernels = zhashx_values(gw->kernels);
    for (kg_kernel_t *k = kernels ? zlistx_first(kernels) : NULL; k; k = zlistx_next(kernels))
        if (k->sandbox == sb) {
            kg_kernel_abandon_for_sandbox(k);
            k->sandbox = NULL; /* so its free does not come back here */
            kg_kernel_free_now(k);
        }
    zlistx_destroy(&kernels);
    for (kg_command_t *c = zhashx_first(sb->commands); c; c = zhashx_next(sb->commands))
        kg_command_free_now(c);
    zhashx_delete(gw->sandboxes, sb->id);
    kg_network_sandbox_remove(sb); /* its proxy connections and forwards end with it */
    sbx_destroy(&sb->sbx);
    /* After sbx_destroy: a policy that releases something (a persistent workspace's lock) does
     * so only once no process of the sandbox can touch it. */
    if (gw->policy && gw->policy->destroyed)
        gw->policy->destroyed(sb, gw->policy_arg);
    cb_debug("sandbox %.8s: destroyed", sb->id);
    s_free(sb);
}

const char *kg_sandbox_id(const kg_sandbox_t *self) { return self->id; }
const kg_sandbox_limits_t *kg_sandbox_limits(const kg_sandbox_t *self) { return &self->limits; }
bool kg_sandbox_dead(const kg_sandbox_t *self) { return self->dead; }
bool kg_sandbox_ending(const kg_sandbox_t *self) { return self->end_pending; }
const char *kg_sandbox_end_detail(const kg_sandbox_t *self) { return self->end_detail; }
void kg_sandbox_set_policy_data(kg_sandbox_t *self, void *data) { self->policy_data = data; }
void *kg_sandbox_policy_data(const kg_sandbox_t *self) { return self->policy_data; }
void kg_sandbox_set_hidden(kg_sandbox_t *self, bool hidden) { self->hidden = hidden; }
bool kg_sandbox_hidden(const kg_sandbox_t *self) { return self->hidden; }

void kg_sandbox_touch(kg_sandbox_t *self)
{
    kg_gateway_t *gw = self->gw;
    if (gw->policy && gw->policy->used)
        gw->policy->used(self, gw->policy_arg);
}

void kg_sandbox_activity(kg_sandbox_t *sb, const char *kind, json_t *record)
{
    kg_gateway_t *gw = sb->gw;
    if (record && gw->policy && gw->policy->activity)
        gw->policy->activity(sb, kind, record, gw->policy_arg);
    json_decref(record);
}

void kg_kernel_audit_request(kg_kernel_t *k, const char *origin, json_t *content,
                             const char *msg_id)
{
    const char *code = json_string_value(json_object_get(content, "code"));
    if (!k->sandbox || !code)
        return;
    bool truncated = false;
    cleanup_free char *text = kg_audit_text(code, &truncated);
    kg_sandbox_activity(k->sandbox, "execution_request",
                        json_pack("{s:s, s:s, s:s, s:s, s:b, s:s*, s:b}", "kernel_id",
                                  kg_kernel_id(k), "kernel", kg_kernel_name(k), "origin", origin,
                                  "code", text, "code_truncated", truncated, "msg_id", msg_id,
                                  "silent", json_is_true(json_object_get(content, "silent"))));
    if (!msg_id || strlen(msg_id) >= sizeof k->audit_open[0].msg_id)
        return;
    kg_audit_open_t *slot = &k->audit_open[k->audit_next];
    k->audit_next = (k->audit_next + 1) % KG_AUDIT_OPEN;
    free(slot->ename);
    *slot =
        (kg_audit_open_t){.origin = origin, .started_ms = kg_wall_ms(), .started_us = cb_now_us()};
    snprintf(slot->msg_id, sizeof slot->msg_id, "%s", msg_id);
}

void kg_kernel_audit_iopub(kg_kernel_t *k, const jp_msg_t *msg)
{
    const char *parent = jp_msg_parent_id(msg);
    if (!parent || !parent[0] || !k->sandbox)
        return;
    kg_audit_open_t *slot = NULL;
    for (size_t i = 0; i < KG_AUDIT_OPEN && !slot; i++)
        if (strcmp(k->audit_open[i].msg_id, parent) == 0)
            slot = &k->audit_open[i];
    if (!slot)
        return;
    const char *type = jp_msg_type(msg);
    if (strcmp(type, "error") == 0 && !slot->ename) {
        const char *ename = json_string_value(json_object_get(msg->content, "ename"));
        slot->ename = cb_xstrdup(ename ? ename : "Error");
        return;
    }
    const char *state = strcmp(type, "status") == 0
                            ? json_string_value(json_object_get(msg->content, "execution_state"))
                            : NULL;
    if (!state || strcmp(state, "idle") != 0)
        return;
    kg_sandbox_activity(k->sandbox, "execution_end",
                        json_pack("{s:s, s:s, s:s, s:s, s:I, s:f, s:s, s:s*}", "kernel_id",
                                  kg_kernel_id(k), "kernel", kg_kernel_name(k), "origin",
                                  slot->origin, "msg_id", slot->msg_id, "started_ms",
                                  (json_int_t)slot->started_ms, "duration_ms",
                                  (double)(cb_now_us() - slot->started_us) / 1000.0, "status",
                                  slot->ename ? "error" : "ok", "ename", slot->ename));
    free(slot->ename);
    *slot = (kg_audit_open_t){0};
}

void kg_kernel_audit_forget(kg_kernel_t *k)
{
    for (size_t i = 0; i < KG_AUDIT_OPEN; i++) {
        free(k->audit_open[i].ename);
        k->audit_open[i] = (kg_audit_open_t){0};
    }
}

int64_t kg_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

char *kg_audit_text(const char *text, bool *truncated)
{
    size_t len = strlen(text);
    *truncated = len > KG_AUDIT_TEXT_MAX;
    if (*truncated)
        len = KG_AUDIT_TEXT_MAX;
    return cb_text_lossy(text, len, NULL); /* a character cut in two becomes U+FFFD */
}

void kg_sandbox_kernel_event(kg_sandbox_t *sb, kg_kernel_t *k, kg_kernel_event_t event,
                             const char *detail)
{
    kg_gateway_t *gw = sb->gw;
    if (gw->policy && gw->policy->kernel_event)
        gw->policy->kernel_event(sb, k, event, detail, gw->policy_arg);
}

/* ---- ends ---------------------------------------------------------------------------------- */

static void s_run_ends(kg_gateway_t *gw, void *arg);

void kg_sandbox_end_later(kg_sandbox_t *self, const char *detail)
{
    if (self->end_pending)
        return;
    kg_gateway_t *gw = self->gw;
    self->end_pending = true;
    self->end_detail = cb_xstrdup(detail);
    if (!gw->ends_queued && !gw->destroying) {
        gw->ends_queued = true;
        kg_gateway_defer(gw, s_run_ends, NULL);
    }
}

/* The deferred call: end the sandboxes marked since the last turn. */
static void s_run_ends(kg_gateway_t *gw, void *arg)
{
    gw->ends_queued = false;
    if (gw->destroying)
        return;                                 /* kg_gateway_destroy destroys what is left */
    zlistx_t *ids = zhashx_keys(gw->sandboxes); /* by id: an ending hook may end others */
    for (const char *id = ids ? zlistx_first(ids) : NULL; id; id = zlistx_next(ids)) {
        kg_sandbox_t *sb = zhashx_lookup(gw->sandboxes, id);
        if (!sb || !sb->end_pending)
            continue;
        if (gw->policy && gw->policy->ending)
            gw->policy->ending(sb, sb->end_detail, gw->policy_arg);
        kg_sandbox_destroy(&sb);
    }
    zlistx_destroy(&ids);
}

bool kg_sandbox_busy(kg_sandbox_t *sb)
{
    for (kg_command_t *c = zhashx_first(sb->commands); c; c = zhashx_next(sb->commands))
        if (kg_command_running(c))
            return true;
    bool busy = false;
    zlistx_t *kernels = zhashx_values(sb->gw->kernels);
    for (kg_kernel_t *k = kernels ? zlistx_first(kernels) : NULL; k && !busy;
         k = zlistx_next(kernels))
        busy = k->sandbox == sb && kg_kernel_is_busy(k);
    zlistx_destroy(&kernels);
    return busy;
}
size_t kg_gateway_sandbox_count(kg_gateway_t *gw) { return zhashx_size(gw->sandboxes); }
zlistx_t *kg_gateway_sandboxes(kg_gateway_t *gw) { return zhashx_values(gw->sandboxes); }
pid_t kg_sandbox_init_pid(const kg_sandbox_t *self) { return sbx_init_pid(self->sbx); }

int kg_sandbox_socket(kg_sandbox_t *self, int domain, cb_error_t *err)
{
    return sbx_socket(self->sbx, domain, err);
}

int kg_sandbox_pty(kg_sandbox_t *self, int *peer_fd, cb_error_t *err)
{
    return sbx_pty(self->sbx, peer_fd, err);
}

void kg_sandbox_log(kg_sandbox_t *self, const char *source, const char *fmt, ...)
{
    char text[KG_SANDBOX_LOG_TEXT_MAX + 1];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    kg_log_entry_t *e = &self->log[self->log_next % KG_SANDBOX_LOG_MAX];
    free(e->text);
    /* Kept as valid UTF-8: a line cut at the limit may end inside a character, and a kernel's
     * stderr is any bytes; one bad entry must not fail kg_sandbox_logs (json_pack refuses it). */
    e->text = cb_text_lossy(text, strlen(text), NULL);
    struct timeval tv;
    gettimeofday(&tv, NULL);
    e->time_ms = (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
    snprintf(e->source, sizeof e->source, "%s", source);
    self->log_next++;
}

json_t *kg_sandbox_logs(kg_sandbox_t *self, size_t max_entries)
{
    size_t kept = self->log_next < KG_SANDBOX_LOG_MAX ? self->log_next : KG_SANDBOX_LOG_MAX;
    if (max_entries == 0 || max_entries > kept)
        max_entries = kept;
    json_t *out = json_array();
    for (size_t n = self->log_next - max_entries; out && n < self->log_next; n++) {
        const kg_log_entry_t *e = &self->log[n % KG_SANDBOX_LOG_MAX];
        time_t secs = (time_t)(e->time_ms / 1000);
        struct tm tm;
        char stamp[40];
        gmtime_r(&secs, &tm);
        size_t len = strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(stamp + len, sizeof stamp - len, ".%03dZ", (int)(e->time_ms % 1000));
        json_t *entry =
            json_pack("{s:s, s:s, s:s}", "time", stamp, "source", e->source, "text", e->text);
        if (!entry || json_array_append_new(out, entry) < 0) {
            json_decref(out);
            out = NULL;
        }
    }
    return out;
}

kg_sandbox_t *kg_gateway_sandbox(kg_gateway_t *gw, const char *id)
{
    return id ? zhashx_lookup(gw->sandboxes, id) : NULL;
}

json_t *kg_layers_json(const sbx_layers_t *l)
{
    static const char *const cgroup_names[] = {"none", "v1", "v2"};
    return json_pack("{s:b, s:s, s:b, s:b, s:b, s:s, s:b, s:b}", "user_namespaces", l->userns,
                     "cgroup", cgroup_names[l->cgroup], "memory_limit", l->cgroup_memory,
                     "pids_limit", l->cgroup_pids, "cpu_limit", l->cgroup_cpu, "cgroup_notes",
                     l->cgroup_why, "seccomp", l->seccomp, "seccomp_log_mode", l->seccomp_log);
}

/* Cores used over a window of at least a second: since the last sample, when that is a second
 * old or more (then a new sample); else the figure of the last window (0 in the first second).
 * Never over a shorter window: a CPU quota is enforced per 100 ms period, and within one period
 * a sandbox with several busy processes may run on every core until its quota is spent, so a
 * few milliseconds' window can read as more cores than the quota allows (1.27 of 0.5 was seen).
 * And on average over the sandbox's life, once it is a second old. */
static void s_cpu_share(kg_sandbox_t *sb, uint64_t cpu_us, double *recent, double *average)
{
    int64_t now = cb_now_ms();
    int64_t span = now - sb->cpu_sample_ms;
    if (span >= 1000) {
        uint64_t used = cpu_us >= sb->cpu_sample_us ? cpu_us - sb->cpu_sample_us : 0;
        sb->cpu_share = (double)used / 1000.0 / (double)span;
        sb->cpu_sample_ms = now;
        sb->cpu_sample_us = cpu_us;
    }
    *recent = sb->cpu_share;
    int64_t life = now - sb->created_ms;
    *average = life >= 1000 ? (double)cpu_us / 1000.0 / (double)life : 0.0;
}

char *kg_sandbox_tmp_note(kg_sandbox_t *sb)
{
    sbx_usage_t u;
    cb_error_t err = {0};
    if (!sb || !sb->sbx || sbx_usage(sb->sbx, &u, &err) < 0)
        return NULL;
    uint64_t limit = sb->limits.memory_mb * 1024 * 1024, held = u.tmp_bytes + u.shm_bytes;
    if (!limit || held < limit / 4) /* a large share: a quarter of the limit or more */
        return NULL;
    const char *where = !u.shm_bytes ? "/tmp" : !u.tmp_bytes ? "/dev/shm" : "/tmp and /dev/shm";
    return cb_strdup_printf(
        "the sandbox's %s %s %llu MiB, which counts against its %llu MiB memory "
        "limit (files there live in memory): delete what is not needed there",
        where, u.tmp_bytes && u.shm_bytes ? "hold" : "holds", (unsigned long long)(held >> 20),
        (unsigned long long)sb->limits.memory_mb);
}

json_t *kg_sandbox_info(kg_sandbox_t *self)
{
    sbx_usage_t u;
    cb_error_t err = {0};
    if (sbx_usage(self->sbx, &u, &err) < 0)
        memset(&u, 0, sizeof u);
    double share, share_avg;
    s_cpu_share(self, u.cpu_usage_us, &share, &share_avg);
    json_t *kernels = json_array();
    zlistx_t *all = zhashx_values(self->gw->kernels);
    for (kg_kernel_t *k = all ? zlistx_first(all) : NULL; k && kernels; k = zlistx_next(all))
        if (k->sandbox == self)
            json_array_append_new(kernels, json_string(k->id));
    zlistx_destroy(&all);
    const kg_sandbox_limits_t *l = &self->limits;
    json_t *info = json_pack(
        "{s:s, s:I, s:{s:I, s:I, s:I, s:I, s:I}, s:o*, s:{s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:I, "
        "s:I, s:I}, s:o*}",
        "id", self->id, "created_ms", (json_int_t)self->created_ms, "limits", "memory_mb",
        (json_int_t)l->memory_mb, "pids_max", (json_int_t)l->pids_max, "cpu_millis",
        (json_int_t)l->cpu_millis, "tmp_mb", (json_int_t)l->tmp_mb, "workspace_mb",
        (json_int_t)l->workspace_mb, "layers", kg_layers_json(sbx_layers(self->sbx)), "usage",
        "memory_bytes", (json_int_t)u.memory_bytes, "memory_peak_bytes",
        (json_int_t)u.memory_peak_bytes, "memory_limit_bytes", (json_int_t)u.memory_limit_bytes,
        "pids", (json_int_t)u.pids, "cpu_usage_us", (json_int_t)u.cpu_usage_us, "cpu_share", share,
        "cpu_share_avg", share_avg, "oom_kills", (json_int_t)u.oom_kills, "workspace_bytes",
        (json_int_t)u.workspace_bytes, "workspace_limit_bytes", (json_int_t)u.workspace_limit_bytes,
        "kernels", kernels);
    json_t *usage = json_object_get(info, "usage");
    if (usage && json_object_update_new(usage, json_pack("{s:I, s:I, s:I}", "tmp_bytes",
                                                         (json_int_t)u.tmp_bytes, "shm_bytes",
                                                         (json_int_t)u.shm_bytes, "tmp_limit_bytes",
                                                         (json_int_t)u.tmp_limit_bytes)) < 0) {
        json_decref(info);
        return NULL;
    }
    if (info &&
        json_object_update_new(info, json_pack("{s:I, s:I, s:I}", "init_pid",
                                               (json_int_t)sbx_init_pid(self->sbx), "executions",
                                               (json_int_t)self->executions, "commands",
                                               (json_int_t)self->commands_run)) < 0) {
        json_decref(info);
        return NULL;
    }
    if (info)
        json_object_set_new(info, "network", kg_sandbox_network_info(self));
    kg_gateway_t *gw = self->gw;
    if (info && gw->policy && gw->policy->describe)
        gw->policy->describe(self, info, gw->policy_arg);
    return info;
}

/* ---- files ------------------------------------------------------------------------------- */

int kg_sandbox_file_read(kg_sandbox_t *self, const char *path, size_t max_bytes, cb_buf_t *out,
                         cb_error_t *err)
{
    kg_sandbox_touch(self);
    return sbx_file_read(self->sbx, path, max_bytes, out, err);
}

int kg_sandbox_file_read_range(kg_sandbox_t *self, const char *path, uint64_t offset,
                               size_t max_bytes, cb_buf_t *out, uint64_t *size, cb_error_t *err)
{
    kg_sandbox_touch(self);
    return sbx_file_read_range(self->sbx, path, offset, max_bytes, out, size, err);
}

int kg_sandbox_file_write(kg_sandbox_t *self, const char *path, const void *data, size_t len,
                          bool make_parents, cb_error_t *err)
{
    kg_sandbox_touch(self);
    int rc = sbx_file_write(self->sbx, path, data, len, make_parents, err);
    if (rc == 0)
        kg_sandbox_activity(self, "file_write",
                            json_pack("{s:s?, s:I}", "path", path, "size", (json_int_t)len));
    return rc;
}

json_t *kg_sandbox_file_list(kg_sandbox_t *self, const char *path, cb_error_t *err)
{
    static const char *const types[] = {"file", "dir", "symlink", "other"};
    kg_sandbox_touch(self);
    size_t count = 0;
    sbx_dirent_t *list = sbx_file_list(self->sbx, path, &count, err);
    if (!list) /* never NULL on success, even for an empty directory */
        return NULL;
    json_t *out = json_array();
    for (size_t i = 0; i < count; i++) {
        /* A name need not be UTF-8; one that is not is shown with U+FFFD (so jansson takes it). */
        cleanup_free char *name = cb_text_lossy(list[i].name, strlen(list[i].name), NULL);
        json_array_append_new(out, json_pack("{s:s, s:s, s:I, s:I}", "name", name, "type",
                                             types[list[i].type], "size", (json_int_t)list[i].size,
                                             "mtime_ms", (json_int_t)list[i].mtime_ms));
    }
    sbx_dirents_free(list, count);
    return out;
}

int kg_sandbox_file_remove(kg_sandbox_t *self, const char *path, bool recursive, cb_error_t *err)
{
    kg_sandbox_touch(self);
    int rc = sbx_file_remove(self->sbx, path, recursive, err);
    if (rc == 0)
        kg_sandbox_activity(self, "file_delete",
                            json_pack("{s:s?, s:b}", "path", path, "recursive", recursive));
    return rc;
}

int kg_sandbox_file_mkdir(kg_sandbox_t *self, const char *path, bool parents, cb_error_t *err)
{
    kg_sandbox_touch(self);
    int rc = sbx_file_mkdir(self->sbx, path, parents, err);
    if (rc == 0)
        kg_sandbox_activity(self, "file_mkdir", json_pack("{s:s?}", "path", path));
    return rc;
}

/* One entry as kg_sandbox_file_stat describes it. */
static json_t *s_entry_json(const sbx_dirent_t *e)
{
    static const char *const types[] = {"file", "dir", "symlink", "other"};
    cleanup_free char *name = cb_text_lossy(e->name, strlen(e->name), NULL);
    json_t *out = json_pack("{s:s, s:s, s:I, s:I, s:I, s:b}", "name", name, "type", types[e->type],
                            "size", (json_int_t)e->size, "mtime_ms", (json_int_t)e->mtime_ms,
                            "mode", (json_int_t)e->mode, "owned", e->owned);
    if (out && e->link) {
        cleanup_free char *link = cb_text_lossy(e->link, strlen(e->link), NULL);
        json_object_set_new(out, "symlink_target", json_string(link));
    }
    return out;
}

json_t *kg_sandbox_file_stat(kg_sandbox_t *self, const char *path, cb_error_t *err)
{
    kg_sandbox_touch(self);
    sbx_dirent_t *e = sbx_file_stat(self->sbx, path, err);
    if (!e)
        return NULL;
    json_t *out = s_entry_json(e);
    sbx_dirents_free(e, 1);
    return out;
}

json_t *kg_sandbox_file_entries(kg_sandbox_t *self, const char *path, cb_error_t *err)
{
    kg_sandbox_touch(self);
    size_t count = 0;
    sbx_dirent_t *list = sbx_file_list(self->sbx, path, &count, err);
    if (!list)
        return NULL;
    json_t *out = json_array();
    for (size_t i = 0; i < count; i++)
        json_array_append_new(out, s_entry_json(&list[i]));
    sbx_dirents_free(list, count);
    return out;
}

int kg_sandbox_file_rename(kg_sandbox_t *self, const char *from, const char *to, cb_error_t *err)
{
    kg_sandbox_touch(self);
    int rc = sbx_file_rename(self->sbx, from, to, err);
    if (rc == 0)
        kg_sandbox_activity(self, "file_rename", json_pack("{s:s?, s:s?}", "path", from, "to", to));
    return rc;
}

int kg_sandbox_file_open_dir(kg_sandbox_t *self, const char *path, cb_error_t *err)
{
    kg_sandbox_touch(self);
    return sbx_file_open_dir(self->sbx, path, err);
}
