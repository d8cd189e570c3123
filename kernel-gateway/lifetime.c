/* lifetime.c: sandboxes as a product hands them out: kg_sandbox_open (the cap, the warm pool,
 * templates, persistence), their lifetimes and idle limits, and their ends.
 *
 * A sandbox opened here has a deadline (its lifetime, extendable with kg_sandbox_set_timeout)
 * and an idle clock (reset by executions, commands and file calls). A tick timer looks at both
 * every KG_TICK_MS and refills the pools. Ending a sandbox frees its kernels, which the callback
 * that found the reason (the tick, the init's pidfd poller, a kernel's event) may still hold, so
 * it only marks the sandbox (kg_sandbox_end_later) and the marked ends run from one deferred call
 * on a fresh loop turn (kg_gateway_defer, kg.h's rule 2). That call looks the marked sandboxes up
 * when it runs, so a sandbox destroyed meanwhile by another path is simply not there.
 *
 * Every end is remembered for a while (tombstones), so a caller asking for a sandbox that is
 * gone hears why: expired, idle, died, deleted.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "cb/cleanup.h"
#include "cb/log.h"
#include "kg_private.h"

#define KG_DEFAULT_LIFETIME_S 300
#define KG_DEFAULT_MAX_SANDBOXES 100

static const char *const s_end_names[] = {
    [KG_SANDBOX_END_EXPIRED] = "expired", [KG_SANDBOX_END_IDLE] = "idle",
    [KG_SANDBOX_END_DIED] = "died", [KG_SANDBOX_END_FAILED] = "failed"};

/* ---- ends -------------------------------------------------------------------------------- */

void kg_gateway_tombstone(kg_gateway_t *gw, const char *id, const char *why)
{
    if (gw->destroying)
        return;
    char **slot = &gw->tombstones[gw->tombstone_next++ % KG_TOMBSTONES];
    free(*slot);
    *slot = cb_strdup_printf("%s %s", id, why);
}

const char *kg_gateway_sandbox_gone(kg_gateway_t *gw, const char *id)
{
    size_t len = id ? strlen(id) : 0;
    /* Newest first: an id reopened and ended again reports its last end. */
    for (size_t n = 0; len && n < KG_TOMBSTONES && n < gw->tombstone_next; n++) {
        const char *t = gw->tombstones[(gw->tombstone_next - 1 - n) % KG_TOMBSTONES];
        if (t && strncmp(t, id, len) == 0 && t[len] == ' ')
            return t + len + 1;
    }
    return NULL;
}

static void s_run_ends(kg_gateway_t *gw, void *arg);

static void s_wake(kg_gateway_t *gw)
{
    if (!gw->ends_queued && !gw->destroying) {
        gw->ends_queued = true;
        kg_gateway_defer(gw, s_run_ends, NULL);
    }
}

void kg_sandbox_end_later(kg_sandbox_t *sb, kg_sandbox_end_t why, const char *detail)
{
    if (sb->end_pending)
        return;
    sb->end_pending = true;
    sb->end_why = why;
    sb->end_detail = strdup(detail);
    kg_sandbox_log(sb, "sandbox", "%s: %s", s_end_names[why], detail);
    s_wake(sb->gw);
}

static void s_end(kg_sandbox_t *sb)
{
    kg_gateway_t *gw = sb->gw;
    switch (sb->end_why) {
    case KG_SANDBOX_END_EXPIRED: gw->counters.sandboxes_expired++; break;
    case KG_SANDBOX_END_IDLE: gw->counters.sandboxes_culled++; break;
    case KG_SANDBOX_END_DIED: gw->counters.sandboxes_died++; break;
    case KG_SANDBOX_END_FAILED: break;
    }
    cb_info("sandbox %.8s ended (%s): %s", sb->id, s_end_names[sb->end_why],
            sb->end_detail ? sb->end_detail : "");
    if (sb->on_end)
        sb->on_end(sb, sb->end_why, sb->end_detail ? sb->end_detail : s_end_names[sb->end_why], sb->end_arg);
    kg_sandbox_destroy(&sb);
}

/* The deferred call: run the ends marked since the last turn. */
static void s_run_ends(kg_gateway_t *gw, void *arg)
{
    gw->ends_queued = false;
    if (gw->destroying)
        return; /* kg_gateway_destroy destroys what is left */
    zlistx_t *ids = zhashx_keys(gw->sandboxes); /* by id: an owner's on_end may end others */
    for (const char *id = ids ? zlistx_first(ids) : NULL; id; id = zlistx_next(ids)) {
        kg_sandbox_t *sb = zhashx_lookup(gw->sandboxes, id);
        if (sb && sb->end_pending)
            s_end(sb);
    }
    zlistx_destroy(&ids);
}

/* ---- the tick ------------------------------------------------------------------------------ */

/* A sandbox whose main kernel has never been ready is starting, not idle: its idle clock runs
 * from the moment it can be used (kg_sandbox_main_event touches it then). */
static bool s_starting(const kg_sandbox_t *sb) { return sb->main_kernel && !sb->main_kernel->ever_ready; }

/* Use is what clients do: executions, commands and file calls, and requests that Jupyter
 * clients (the attach proxy's, the Jupyter API's) send to its kernels, all of which touch the
 * sandbox's activity clock. What the sandbox's own code does (a thread printing for ever) is
 * not use, or code could keep its sandbox for ever. */
int64_t kg_sandbox_deadline_ms(kg_sandbox_t *sb)
{
    if (!sb->expires_ms || !sb->extend_on_use)
        return sb->expires_ms;
    /* In use now (a cell or command running, or its kernel starting while its opener waits):
     * its whole lifetime from now. */
    int64_t from = kg_sandbox_busy(sb) || s_starting(sb) ? cb_now_ms() : sb->last_active_ms;
    int64_t slid = from + (int64_t)sb->lifetime_s * 1000;
    return slid > sb->expires_ms ? slid : sb->expires_ms;
}

static int s_on_tick(zloop_t *loop, int timer_id, void *arg)
{
    kg_gateway_t *gw = arg;
    int64_t now = cb_now_ms();
    int idle_s = gw->cfg.idle_timeout_s;
    for (kg_sandbox_t *sb = zhashx_first(gw->sandboxes); sb; sb = zhashx_next(gw->sandboxes)) {
        if (!sb->opened || sb->end_pending)
            continue;
        int64_t deadline = kg_sandbox_deadline_ms(sb);
        if (deadline && now >= deadline) {
            cleanup_free char *why = sb->extend_on_use
                ? cb_strdup_printf("it expired: nothing used it for %d s, its lifetime "
                                   "(each use extends it; sandbox_set_timeout sets another)", sb->lifetime_s)
                : cb_strdup_printf("it expired: its lifetime of %d s ran out (sandbox_set_timeout extends it)",
                                   sb->lifetime_s);
            kg_sandbox_end_later(sb, KG_SANDBOX_END_EXPIRED, why ? why : "it expired");
        } else if (idle_s > 0 && now - sb->last_active_ms >= (int64_t)idle_s * 1000 && !s_starting(sb) &&
                   !kg_sandbox_busy(sb)) {
            cleanup_free char *why = cb_strdup_printf("it was idle for %d s, the idle limit", idle_s);
            kg_sandbox_end_later(sb, KG_SANDBOX_END_IDLE, why ? why : "it was idle");
        }
    }
    if (!gw->destroying)
        kg_pool_refill(gw);
    return kg_gateway_handler_result(gw);
}

int kg_lifetime_init(kg_gateway_t *gw, cb_error_t *err)
{
    gw->tick_timer = kg_timer_start(gw, KG_TICK_MS, 0, s_on_tick, gw);
    if (gw->tick_timer < 0)
        return cb_error_make(err, errno, "gateway tick timer");
    return 0;
}

void kg_lifetime_fini(kg_gateway_t *gw)
{
    gw->destroying = true;
    kg_timer_stop(gw, &gw->tick_timer);
    for (size_t i = 0; i < KG_TOMBSTONES; i++)
        free(gw->tombstones[i]);
    memset(gw->tombstones, 0, sizeof gw->tombstones);
}

/* ---- opening ------------------------------------------------------------------------------- */

/* The main kernel's events, whoever else listens (kernel.c calls this for the main kernel). */
void kg_sandbox_main_event(kg_sandbox_t *sb, kg_kernel_event_t event, const char *detail)
{
    if (event == KG_EVENT_STOPPED) {
        sb->main_kernel = NULL;
    } else if (event == KG_EVENT_READY) {
        kg_sandbox_touch(sb); /* the idle clock starts when the sandbox can be used */
    } else if (event == KG_EVENT_DEAD && (sb->in_pool || (sb->opened && !sb->main_kernel->ever_ready))) {
        /* A sandbox whose kernel never started is of no use; a pooled one whose kernel gave up
         * would hold its place in the pool for ever. */
        cleanup_free char *why = cb_strdup_printf("its %s kernel could not start (%s)", sb->main_kernel->spec->name,
                                                  detail ? detail : "no detail");
        kg_sandbox_end_later(sb, KG_SANDBOX_END_FAILED, why ? why : "its kernel could not start");
    }
}

static void s_merge_limits(kg_sandbox_limits_t *l, const kg_sandbox_limits_t *under)
{
    if (!l->memory_mb)
        l->memory_mb = under->memory_mb;
    if (!l->pids_max)
        l->pids_max = under->pids_max;
    if (!l->cpu_millis)
        l->cpu_millis = under->cpu_millis;
    if (!l->tmp_mb)
        l->tmp_mb = under->tmp_mb;
    if (!l->workspace_mb)
        l->workspace_mb = under->workspace_mb;
}

kg_sandbox_t *kg_sandbox_prepare(kg_gateway_t *gw, const kg_template_t *t, const kg_sandbox_opts_t *opts,
                                 const char *id, const char *workspace_dir, cb_error_t *err)
{
    kg_sandbox_limits_t limits = opts->limits;
    s_merge_limits(&limits, &t->limits);
    const char *const *lists[] = {(const char *const *)t->env, opts->env};
    char **env = kg_env_merge(lists, 2);
    if (!env)
        return cb_error_make(err, ENOMEM, "sandbox environment"), NULL;
    kg_sandbox_t *sb = kg_sandbox_new(gw, &limits, id, workspace_dir, (const char *const *)env, err);
    cb_strv_free(env);
    if (!sb)
        return NULL;
    sb->template_name = strdup(t->name);
    /* Seed the workspace; a reopened one keeps what it has. */
    for (size_t i = 0; i < t->file_count && !opts->reopen_id; i++)
        if (kg_sandbox_file_write(sb, t->files[i].path, t->files[i].data, t->files[i].len, true, err) < 0) {
            cb_error_prefix(err, "template '%s': seeding '%s': ", t->name, t->files[i].path);
            kg_sandbox_destroy(&sb);
            return NULL;
        }
    kg_kernel_opts_t kopts = {.kernel_name = opts->kernel_name ? opts->kernel_name : t->kernel_name,
                              .sandbox = sb,
                              .startup_code = t->startup_code};
    sb->main_kernel = sb->template_name ? kg_kernel_start(gw, &kopts, err) : NULL;
    if (!sb->main_kernel) {
        if (!sb->template_name)
            cb_error_make(err, ENOMEM, "new sandbox");
        kg_sandbox_destroy(&sb);
        return NULL;
    }
    return sb;
}

/* The pool serves requests for exactly what it keeps: the template as it is. */
static bool s_poolable(const kg_template_t *t, const kg_sandbox_opts_t *o)
{
    static const kg_sandbox_limits_t none = {0};
    return !o->no_pool && !o->persist && !o->reopen_id && (!o->env || !o->env[0]) &&
           memcmp(&o->limits, &none, sizeof none) == 0 &&
           (!o->kernel_name || strcmp(o->kernel_name, t->kernel_name) == 0);
}

/* Room for one more under the cap, giving up pooled sandboxes if need be. */
static int s_make_room(kg_gateway_t *gw, const char *template_name, cb_error_t *err)
{
    int max = gw->cfg.max_sandboxes ? gw->cfg.max_sandboxes : KG_DEFAULT_MAX_SANDBOXES;
    if (max < 0)
        return 0;
    while (zhashx_size(gw->sandboxes) >= (size_t)max)
        if (!kg_pool_evict_one(gw, template_name)) {
            gw->counters.sandboxes_refused++;
            return cb_error_fail(err, CB_ERR_LIMIT,
                                 "the server is at its limit of %d live sandboxes (those starting "
                                 "count too); delete one you no longer need (sandbox_delete), or "
                                 "wait for one to expire", max);
        }
    return 0;
}

static kg_sandbox_t *s_open_fresh(kg_gateway_t *gw, const kg_template_t *t, const kg_sandbox_opts_t *opts,
                                  json_t *saved, cb_error_t *err)
{
    if (!opts->persist && !opts->reopen_id)
        return kg_sandbox_prepare(gw, t, opts, NULL, NULL, err);
    char id[37];
    cleanup_free char *home = NULL;
    int lock = -1;
    if (kg_persist_open(gw, opts->reopen_id, id, &home, &lock, err) < 0)
        return NULL;
    cleanup_free char *workspace = cb_strdup_printf("%s/workspace", home);
    kg_sandbox_opts_t o = *opts;
    const char *saved_kernel = json_string_value(json_object_get(saved, "kernel"));
    if (!o.kernel_name)
        o.kernel_name = saved_kernel;
    kg_sandbox_t *sb = workspace ? kg_sandbox_prepare(gw, t, &o, id, workspace, err) : NULL;
    if (!sb) {
        if (!workspace)
            cb_error_make(err, ENOMEM, "new sandbox");
        close(lock);
        return NULL;
    }
    sb->persist_dir = steal_pointer(&home);
    sb->persist_lock = lock;
    return sb;
}

kg_sandbox_t *kg_sandbox_open(kg_gateway_t *gw, const kg_sandbox_opts_t *opts, cb_error_t *err)
{
    static const kg_sandbox_opts_t defaults = {0};
    if (!opts)
        opts = &defaults;
    if (opts->persist && opts->reopen_id)
        return cb_error_fail(err, CB_ERR_INVALID, "persist and reopen_id exclude each other: a reopened "
                                                  "sandbox is persistent already"), NULL;
    json_auto_t *saved = opts->reopen_id ? kg_persist_describe(gw, opts->reopen_id, err) : NULL;
    if (opts->reopen_id && !saved)
        return NULL;
    const char *name = opts->template_name ? opts->template_name
                       : saved ? json_string_value(json_object_get(saved, "template")) : NULL;
    kg_template_t *t = kg_template_find(gw->templates_dir, name ? name : "python", err);
    if (!t)
        return NULL;
    kg_sandbox_t *sb = s_poolable(t, opts) ? kg_pool_take(gw, t->name) : NULL;
    if (sb)
        gw->counters.pool_hits++;
    else if (s_poolable(t, opts) && kg_pool_size(gw, t->name) > 0)
        gw->counters.pool_misses++;
    if (!sb && s_make_room(gw, t->name, err) == 0) {
        kg_sandbox_opts_t o = *opts;
        if (saved && !memcmp(&o.limits, &(kg_sandbox_limits_t){0}, sizeof o.limits))
            kg_persist_limits(saved, &o.limits);
        sb = s_open_fresh(gw, t, &o, saved, err);
    }
    int timeout_s = opts->timeout_s ? opts->timeout_s : t->timeout_s;
    kg_template_destroy(&t);
    if (!sb)
        return NULL;
    int64_t now = cb_now_ms();
    if (!timeout_s)
        timeout_s = gw->cfg.sandbox_timeout_s ? gw->cfg.sandbox_timeout_s : KG_DEFAULT_LIFETIME_S;
    sb->opened = true;
    sb->opened_ms = sb->last_active_ms = now;
    sb->expires_ms = timeout_s > 0 ? now + (int64_t)timeout_s * 1000 : 0;
    sb->lifetime_s = timeout_s;
    sb->extend_on_use = opts->extend_on_use && timeout_s > 0;
    sb->on_end = opts->on_end;
    sb->end_arg = opts->arg;
    json_t *metadata = opts->metadata ? opts->metadata : json_object_get(saved, "metadata");
    sb->metadata = metadata ? json_deep_copy(metadata) : json_object();
    gw->counters.sandboxes_opened++;
    if (sb->persist_dir && kg_persist_save(sb, kg_kernel_name(sb->main_kernel), err) < 0)
        cb_warn("sandbox %.8s: %s", sb->id, err->msg);
    kg_sandbox_log(sb, "sandbox", "opened: template %s, %s%s, lifetime %s%d s%s", sb->template_name,
                   sb->from_pool ? "from the warm pool" : "started fresh",
                   opts->reopen_id ? ", its persistent workspace reopened" : sb->persist_dir ? ", persistent" : "",
                   timeout_s > 0 ? "" : "unlimited, ", timeout_s > 0 ? timeout_s : 0,
                   sb->extend_on_use ? " after its last use" : "");
    return sb;
}

int kg_sandbox_set_timeout(kg_sandbox_t *self, int timeout_s, cb_error_t *err)
{
    if (timeout_s == 0)
        return cb_error_fail(err, CB_ERR_INVALID, "a lifetime must be positive (or negative for none)");
    if (self->end_pending)
        return cb_error_fail(err, CB_ERR_STATE, "sandbox %.8s is ending already: %s", self->id,
                             self->end_detail ? self->end_detail : "");
    int64_t now = cb_now_ms();
    self->lifetime_s = timeout_s;
    self->expires_ms = timeout_s > 0 ? now + (int64_t)timeout_s * 1000 : 0;
    self->extend_on_use = false; /* asked for: a fixed deadline */
    if (timeout_s > 0)
        kg_sandbox_log(self, "sandbox", "lifetime set: it ends %d s from now", timeout_s);
    else
        kg_sandbox_log(self, "sandbox", "lifetime set: none (it ends only when deleted)");
    return 0;
}

/* ---- metrics ------------------------------------------------------------------------------- */

json_t *kg_gateway_metrics(kg_gateway_t *gw)
{
    const kg_counters_t *c = &gw->counters;
    size_t pool_starting = 0;
    size_t pooled = kg_pool_count(gw, &pool_starting);
    size_t in_use = 0, starting = 0;
    for (kg_sandbox_t *sb = zhashx_first(gw->sandboxes); sb; sb = zhashx_next(gw->sandboxes)) {
        if (sb->in_pool)
            continue;
        in_use++;
        if (sb->main_kernel && !kg_kernel_is_ready(sb->main_kernel) && !sb->main_kernel->ever_ready)
            starting++;
    }
    int max = gw->cfg.max_sandboxes ? gw->cfg.max_sandboxes : KG_DEFAULT_MAX_SANDBOXES;
    return json_pack(
        "{s:f, s:{s:I, s:I, s:I, s:I, s:o, s:I, s:I, s:I, s:I, s:I, s:I}, s:o*,"
        " s:{s:I, s:I, s:I, s:I, s:I}, s:{s:I, s:I}, s:I, s:{s:I, s:I, s:I, s:I}}",
        "uptime_s", (double)(cb_now_ms() - gw->started_ms) / 1000.0,
        "sandboxes", "live", (json_int_t)zhashx_size(gw->sandboxes), "in_use", (json_int_t)in_use,
        "pooled", (json_int_t)pooled, "starting", (json_int_t)(starting + pool_starting),
        "max", max < 0 ? json_null() : json_integer(max),
        "created", (json_int_t)c->sandboxes_created, "opened", (json_int_t)c->sandboxes_opened,
        "refused", (json_int_t)c->sandboxes_refused, "expired", (json_int_t)c->sandboxes_expired,
        "culled", (json_int_t)c->sandboxes_culled, "died", (json_int_t)c->sandboxes_died,
        "pool", kg_pool_metrics(gw),
        "kernels", "live", (json_int_t)zhashx_size(gw->kernels), "started", (json_int_t)c->kernels_started,
        "died", (json_int_t)c->kernels_died, "restarted", (json_int_t)c->kernels_restarted,
        "oom", (json_int_t)c->kernels_oom,
        "executions", "total", (json_int_t)c->executions, "failed", (json_int_t)c->executions_failed,
        "commands", (json_int_t)c->commands,
        "messages", "bad_signatures", (json_int_t)c->bad_signatures, "replayed_signatures",
        (json_int_t)c->replayed_signatures, "malformed", (json_int_t)c->malformed_messages,
        "proxy_dropped", (json_int_t)c->proxy_dropped);
}

json_t *kg_gateway_templates(kg_gateway_t *gw)
{
    size_t count = 0;
    kg_template_t **list = kg_template_list(gw->templates_dir, &count);
    json_t *out = json_array();
    for (size_t i = 0; i < count; i++) {
        if (out)
            json_array_append_new(out, kg_template_json(list[i]));
        kg_template_destroy(&list[i]);
    }
    free(list);
    return out;
}
