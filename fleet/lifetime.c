/* lifetime.c: sandboxes as a product hands them out: fleet_sandbox_open (the cap, the warm pool,
 * templates, persistence), their lifetimes and idle limits, and their ends.
 *
 * A sandbox opened here has a deadline (its lifetime, extendable with fleet_sandbox_set_timeout)
 * and an idle clock (reset by executions, commands and file calls: the engine's used hook). The
 * fleet's tick looks at both every FLEET_TICK_MS and refills the pools. Ending a sandbox frees
 * its kernels, which the callback that found the reason (the tick, the init's death, a kernel's
 * event) may still hold, so the fleet only asks the engine to end it on a fresh loop turn
 * (kg_sandbox_end_later); the engine's ending hook then runs the opener's on_end, and the
 * engine destroys the sandbox.
 *
 * Every end is remembered for a while (tombstones), so a caller asking for a sandbox that is
 * gone hears why: expired, idle, died, deleted.
 */
#include <errno.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "cb/cleanup.h"
#include "cb/log.h"
#include "cb/alloc.h"
#include "cb/util.h"
#include "egress/egress.h"
#include "fleet_private.h"
#include "kg/gateway.h"
#include "kg/sandbox.h"
#include "kg/kernel.h"

#define FLEET_DEFAULT_LIFETIME_S 300
#define FLEET_DEFAULT_MAX_SANDBOXES 100

static const char *const s_end_names[] = {[FLEET_END_EXPIRED] = "expired",
                                          [FLEET_END_IDLE] = "idle",
                                          [FLEET_END_DIED] = "died",
                                          [FLEET_END_FAILED] = "failed"};

/* ---- ends -------------------------------------------------------------------------------- */

void fleet_tombstone(fleet_t *fleet, const char *id, const char *tenant, const char *why)
{
    if (fleet->destroying)
        return;
    char **slot = &fleet->tombstones[fleet->tombstone_next++ % FLEET_TOMBSTONES];
    free(*slot);
    /* "<id> <tenant> <why>": neither an id nor a tenant's name holds a space. */
    *slot = cb_strdup_printf("%s %s %s", id, tenant && *tenant ? tenant : "-", why);
}

const char *fleet_sandbox_gone_for(fleet_t *fleet, const char *id, const cb_principal_t *who)
{
    size_t len = id ? strlen(id) : 0;
    /* Newest first: an id reopened and ended again reports its last end. */
    for (size_t n = 0; len && n < FLEET_TOMBSTONES && n < fleet->tombstone_next; n++) {
        const char *t = fleet->tombstones[(fleet->tombstone_next - 1 - n) % FLEET_TOMBSTONES];
        if (!t || strncmp(t, id, len) != 0 || t[len] != ' ')
            continue;
        const char *tenant = t + len + 1, *why = strchr(tenant, ' ');
        if (!why)
            return NULL;
        char owner[CB_TENANT_NAME_MAX + 1];
        snprintf(owner, sizeof owner, "%.*s", (int)(why - tenant), tenant);
        return cb_principal_may(who, owner) ? why + 1 : NULL;
    }
    return NULL;
}

const char *fleet_sandbox_gone(fleet_t *fleet, const char *id)
{
    return fleet_sandbox_gone_for(fleet, id, &CB_PRINCIPAL_LOCAL);
}

void fleet_end_later(fleet_sandbox_t *fs, fleet_end_t why, const char *detail)
{
    if (kg_sandbox_ending(fs->sb))
        return;
    fs->end_why = why;
    fs->fleet_ended = true;
    kg_sandbox_log(fs->sb, "sandbox", "%s: %s", s_end_names[why], detail);
    kg_sandbox_end_later(fs->sb, detail);
}

/* The engine's deferred end is about to destroy the sandbox. */
void fleet_on_ending(fleet_sandbox_t *fs, const char *detail)
{
    fleet_t *fleet = fs->fleet;
    switch (fs->end_why) {
    case FLEET_END_EXPIRED: fleet->counters.sandboxes_expired++; break;
    case FLEET_END_IDLE: fleet->counters.sandboxes_culled++; break;
    case FLEET_END_DIED: fleet->counters.sandboxes_died++; break;
    case FLEET_END_FAILED: break;
    }
    cb_info("sandbox %.8s ended (%s): %s", kg_sandbox_id(fs->sb), s_end_names[fs->end_why],
            detail ? detail : "");
    if (fs->on_end)
        fs->on_end(fs->sb, fs->end_why, detail ? detail : s_end_names[fs->end_why], fs->end_arg);
}

/* ---- the tick ------------------------------------------------------------------------------ */

/* A sandbox whose main kernel has never been ready is starting, not idle: its idle clock runs
 * from the moment it can be used (fleet_on_kernel_event touches it then). */
static bool s_starting(const fleet_sandbox_t *fs)
{
    return fs->main_kernel && !kg_kernel_ever_ready(fs->main_kernel);
}

/* When the sandbox's lifetime ends, on the fleet's clock; 0: never.
 *
 * Use is what clients do: executions, commands and file calls, and requests that Jupyter
 * clients (the attach proxy's, the Jupyter API's) send to its kernels, all of which reach the
 * engine's used hook. What the sandbox's own code does (a thread printing for ever) is not use,
 * or code could keep its sandbox for ever. */
static int64_t s_deadline_ms(fleet_sandbox_t *fs)
{
    if (!fs->expires_ms || !fs->extend_on_use)
        return fs->expires_ms;
    /* In use now (a cell or command running, or its kernel starting while its opener waits):
     * its whole lifetime from now. */
    int64_t from =
        kg_sandbox_busy(fs->sb) || s_starting(fs) ? fleet_now_ms(fs->fleet) : fs->last_active_ms;
    int64_t slid = from + (int64_t)fs->lifetime_s * 1000;
    return slid > fs->expires_ms ? slid : fs->expires_ms;
}

void fleet_tick(fleet_t *fleet)
{
    int64_t now = fleet_now_ms(fleet);
    int idle_s = fleet->cfg.idle_timeout_s;
    for (fleet_sandbox_t *fs = zhashx_first(fleet->sandboxes); fs;
         fs = zhashx_next(fleet->sandboxes)) {
        if (!fs->opened || kg_sandbox_ending(fs->sb))
            continue;
        fleet_audit_network(fs);
        int64_t deadline = s_deadline_ms(fs);
        if (deadline && now >= deadline) {
            cleanup_free char *why =
                fs->extend_on_use
                    ? cb_strdup_printf("it expired: nothing used it for %d s, its lifetime "
                                       "(each use extends it; sandbox_set_timeout sets another)",
                                       fs->lifetime_s)
                    : cb_strdup_printf("it expired: its lifetime of %d s ran out "
                                       "(sandbox_set_timeout extends it)",
                                       fs->lifetime_s);
            fleet_end_later(fs, FLEET_END_EXPIRED, why ? why : "it expired");
        } else if (idle_s > 0 && now - fs->last_active_ms >= (int64_t)idle_s * 1000 &&
                   !s_starting(fs) && !kg_sandbox_busy(fs->sb)) {
            cleanup_free char *why =
                cb_strdup_printf("it was idle for %d s, the idle limit", idle_s);
            fleet_end_later(fs, FLEET_END_IDLE, why ? why : "it was idle");
        }
    }
    if (!fleet->destroying)
        fleet_pool_refill(fleet);
}

/* ---- opening ------------------------------------------------------------------------------- */

/* The main kernel's events, whoever else listens (the engine's kernel_event hook). */
void fleet_on_kernel_event(fleet_sandbox_t *fs, kg_kernel_t *k, kg_kernel_event_t event,
                           const char *detail)
{
    if (event == KG_EVENT_STOPPED) {
        fs->main_kernel = NULL;
    } else if (event == KG_EVENT_READY) {
        kg_sandbox_touch(fs->sb); /* the idle clock starts when the sandbox can be used */
    } else if (event == KG_EVENT_DEAD &&
               (fs->in_pool || (fs->opened && !kg_kernel_ever_ready(k)))) {
        /* A sandbox whose kernel never started is of no use; a pooled one whose kernel gave up
         * would hold its place in the pool for ever. */
        cleanup_free char *why = cb_strdup_printf("its %s kernel could not start (%s)",
                                                  kg_kernel_name(k), detail ? detail : "no detail");
        fleet_end_later(fs, FLEET_END_FAILED, why ? why : "its kernel could not start");
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
    if (!l->network)
        l->network = under->network;
}

/* The template's environment with the opener's over it ("KEY=VALUE"; a later KEY replaces an
 * earlier one), NULL-terminated. Caller owns return value. */
static char **s_env_merge(char *const *under, const char *const *over)
{
    size_t n = 0, cap = 0;
    for (size_t i = 0; under && under[i]; i++)
        cap++;
    for (size_t i = 0; over && over[i]; i++)
        cap++;
    char **out = cb_xcalloc(cap + 1, sizeof *out);
    const char *const *lists[2] = {(const char *const *)under, over};
    for (int l = 0; l < 2; l++)
        for (size_t i = 0; lists[l] && lists[l][i]; i++) {
            const char *entry = lists[l][i], *eq = strchr(entry, '=');
            size_t key = eq ? (size_t)(eq - entry) : strlen(entry);
            size_t at = n;
            for (size_t j = 0; j < n; j++)
                if (strncmp(out[j], entry, key) == 0 && out[j][key] == '=')
                    at = j;
            if (at < n)
                free(out[at]);
            else
                n++;
            out[at] = cb_xstrdup(entry);
        }
    return out;
}

fleet_sandbox_t *fleet_sandbox_adopt(fleet_t *fleet, kg_sandbox_t *sb, const char *template_name)
{
    fleet_sandbox_t *fs = cb_xcalloc(1, sizeof *fs);
    fs->fleet = fleet;
    fs->sb = sb;
    fs->persist_lock = -1;
    fs->created_ms = fs->last_active_ms = fleet_now_ms(fleet);
    fs->template_name = cb_xstrdup_or_null(template_name);
    kg_sandbox_set_policy_data(sb, fs);
    zhashx_insert(fleet->sandboxes, kg_sandbox_id(sb), fs);
    return fs;
}

kg_sandbox_t *fleet_sandbox_prepare(fleet_t *fleet, const fleet_template_t *t,
                                    const fleet_sandbox_opts_t *opts, const char *id,
                                    const char *workspace_dir, cb_error_t *err)
{
    kg_sandbox_limits_t limits = opts->limits;
    s_merge_limits(&limits, &t->limits);
    char **env = s_env_merge(t->env, opts->env);
    kg_sandbox_t *sb =
        kg_sandbox_new(fleet->gw, &limits, id, workspace_dir, (const char *const *)env, err);
    cb_strv_free(env);
    if (!sb)
        return NULL;
    /* The record first: from here on the engine's hooks reach it, and destroying the sandbox
     * frees it. */
    fleet_sandbox_t *fs = fleet_sandbox_adopt(fleet, sb, t->name);
    /* Seed the workspace; a reopened one keeps what it has. */
    for (size_t i = 0; i < t->file_count && !opts->reopen_id; i++)
        if (kg_sandbox_file_write(sb, t->files[i].path, t->files[i].data, t->files[i].len, true,
                                  err) < 0) {
            cb_error_prefix(err, "template '%s': seeding '%s': ", t->name, t->files[i].path);
            kg_sandbox_destroy(&sb);
            return NULL;
        }
    kg_kernel_opts_t kopts = {.kernel_name = opts->kernel_name ? opts->kernel_name : t->kernel_name,
                              .sandbox = sb,
                              .startup_code = t->startup_code};
    fs->main_kernel = kg_kernel_start(fleet->gw, &kopts, err);
    if (!fs->main_kernel) {
        kg_sandbox_destroy(&sb);
        return NULL;
    }
    return sb;
}

/* The pool serves requests for exactly what it keeps: the template as it is. */
static bool s_poolable(const fleet_template_t *t, const fleet_sandbox_opts_t *o)
{
    static const kg_sandbox_limits_t none = {0};
    return !o->no_pool && !o->persist && !o->reopen_id && (!o->env || !o->env[0]) &&
           memcmp(&o->limits, &none, sizeof none) == 0 &&
           (!o->kernel_name || strcmp(o->kernel_name, t->kernel_name) == 0);
}

static int s_max_sandboxes(const fleet_t *fleet)
{
    return fleet->cfg.max_sandboxes ? fleet->cfg.max_sandboxes : FLEET_DEFAULT_MAX_SANDBOXES;
}

/* Room for one more under the cap, giving up pooled sandboxes if need be. */
static int s_make_room(fleet_t *fleet, const char *template_name, cb_error_t *err)
{
    int max = s_max_sandboxes(fleet);
    if (max < 0)
        return 0;
    while (kg_gateway_sandbox_count(fleet->gw) >= (size_t)max)
        if (!fleet_pool_evict_one(fleet, template_name)) {
            fleet->counters.sandboxes_refused++;
            return cb_error_fail(err, CB_ERR_LIMIT,
                                 "the server is at its limit of %d live sandboxes (those starting "
                                 "count too); delete one you no longer need (sandbox_delete), or "
                                 "wait for one to expire",
                                 max);
        }
    return 0;
}

static kg_sandbox_t *s_open_fresh(fleet_t *fleet, const fleet_template_t *t,
                                  const fleet_sandbox_opts_t *opts, json_t *saved, cb_error_t *err)
{
    if (!opts->persist && !opts->reopen_id)
        return fleet_sandbox_prepare(fleet, t, opts, NULL, NULL, err);
    char id[37];
    cleanup_free char *home = NULL;
    int lock = -1;
    if (fleet_persist_open(fleet, opts->reopen_id, id, &home, &lock, err) < 0)
        return NULL;
    cleanup_free char *workspace = cb_strdup_printf("%s/workspace", home);
    if (!workspace)
        cb_oom(strlen(home) + 11);
    fleet_sandbox_opts_t o = *opts;
    const char *saved_kernel = json_string_value(json_object_get(saved, "kernel"));
    if (!o.kernel_name)
        o.kernel_name = saved_kernel;
    kg_sandbox_t *sb = fleet_sandbox_prepare(fleet, t, &o, id, workspace, err);
    if (!sb) {
        close(lock);
        return NULL;
    }
    fleet_sandbox_t *fs = fleet_sandbox_of(sb);
    fs->persist_dir = steal_pointer(&home);
    fs->persist_lock = lock;
    return sb;
}

kg_sandbox_t *fleet_sandbox_open(fleet_t *fleet, const fleet_sandbox_opts_t *opts, cb_error_t *err)
{
    static const fleet_sandbox_opts_t defaults = {0};
    if (!opts)
        opts = &defaults;
    if (opts->persist && opts->reopen_id)
        return cb_error_fail(err, CB_ERR_INVALID,
                             "persist and reopen_id exclude each other: a reopened "
                             "sandbox is persistent already"),
               NULL;
    cb_principal_t who =
        opts->tenant ? (cb_principal_t){opts->tenant, opts->admin} : CB_PRINCIPAL_LOCAL;
    json_auto_t *saved =
        opts->reopen_id ? fleet_persist_describe(fleet, opts->reopen_id, &who, err) : NULL;
    if (opts->reopen_id && !saved)
        return NULL;
    const char *name = opts->template_name ? opts->template_name
                       : saved             ? json_string_value(json_object_get(saved, "template"))
                                           : NULL;
    fleet_template_t *t = fleet_template_find(fleet->templates_dir, name ? name : "python", err);
    if (!t)
        return NULL;
    kg_sandbox_t *sb = s_poolable(t, opts) ? fleet_pool_take(fleet, t->name) : NULL;
    if (sb)
        fleet->counters.pool_hits++;
    else if (s_poolable(t, opts) && fleet_pool_size(fleet, t->name) > 0)
        fleet->counters.pool_misses++;
    if (!sb && s_make_room(fleet, t->name, err) == 0) {
        fleet_sandbox_opts_t o = *opts;
        kg_sandbox_limits_t sized = o.limits;
        sized.network = NULL; /* a network policy given on reopening keeps the saved sizes */
        if (saved && !memcmp(&sized, &(kg_sandbox_limits_t){0}, sizeof sized))
            fleet_persist_limits(saved, &o.limits);
        /* Nor does it lose its network policy: the saved one, unless this call gives one. */
        egress_policy_t *network = NULL;
        if (saved && !o.limits.network) {
            cb_error_t perr = {0};
            network = fleet_persist_network(saved, &perr);
            if (!network && perr.kind) {
                *err = perr;
                fleet_template_destroy(&t);
                return NULL;
            }
            o.limits.network = network;
        }
        sb = s_open_fresh(fleet, t, &o, saved, err);
        egress_policy_destroy(&network);
    }
    int timeout_s = opts->timeout_s ? opts->timeout_s : t->timeout_s;
    fleet_template_destroy(&t);
    if (!sb)
        return NULL;
    fleet_sandbox_t *fs = fleet_sandbox_of(sb);
    int64_t now = fleet_now_ms(fleet);
    if (!timeout_s)
        timeout_s =
            fleet->cfg.sandbox_timeout_s ? fleet->cfg.sandbox_timeout_s : FLEET_DEFAULT_LIFETIME_S;
    fs->opened = true;
    fs->opened_ms = fs->last_active_ms = now;
    fs->expires_ms = timeout_s > 0 ? now + (int64_t)timeout_s * 1000 : 0;
    fs->lifetime_s = timeout_s;
    fs->extend_on_use = opts->extend_on_use && timeout_s > 0;
    fs->on_end = opts->on_end;
    fs->end_arg = opts->arg;
    /* A reopened sandbox stays its tenant's (an admin may reopen it). */
    const char *saved_tenant = json_string_value(json_object_get(saved, "tenant"));
    free(fs->tenant);
    fs->tenant = cb_xstrdup(saved_tenant ? saved_tenant : who.tenant);
    json_t *metadata = opts->metadata ? opts->metadata : json_object_get(saved, "metadata");
    fs->metadata = metadata ? json_deep_copy(metadata) : json_object();
    fleet->counters.sandboxes_opened++;
    if (fs->persist_dir && fleet_persist_save(fs, kg_kernel_name(fs->main_kernel), err) < 0)
        cb_warn("sandbox %.8s: %s", kg_sandbox_id(sb), err->msg);
    const kg_sandbox_limits_t *l = kg_sandbox_limits(sb);
    fleet_audit(fleet, sb, fs->tenant, opts->reopen_id ? "sandbox_reopen" : "sandbox_open",
                json_pack("{s:s, s:s, s:b, s:b, s:i, s:b, s:{s:I, s:f, s:I, s:I}}", "template",
                          fs->template_name, "kernel",
                          fs->main_kernel ? kg_kernel_name(fs->main_kernel) : "", "persistent",
                          fs->persist_dir != NULL, "from_pool", fs->from_pool, "lifetime_s",
                          timeout_s > 0 ? timeout_s : -1, "extend_on_use", fs->extend_on_use,
                          "limits", "memory_mb", (json_int_t)l->memory_mb, "cpu",
                          l->cpu_millis / 1000.0, "pids", (json_int_t)l->pids_max, "disk_mb",
                          (json_int_t)l->workspace_mb));
    kg_sandbox_log(sb, "sandbox", "opened: template %s, %s%s, lifetime %s%d s%s", fs->template_name,
                   fs->from_pool ? "from the warm pool" : "started fresh",
                   opts->reopen_id   ? ", its persistent workspace reopened"
                   : fs->persist_dir ? ", persistent"
                                     : "",
                   timeout_s > 0 ? "" : "unlimited, ", timeout_s > 0 ? timeout_s : 0,
                   fs->extend_on_use ? " after its last use" : "");
    return sb;
}

int fleet_sandbox_set_timeout(kg_sandbox_t *self, int timeout_s, cb_error_t *err)
{
    fleet_sandbox_t *fs = fleet_sandbox_of(self);
    if (!fs)
        return cb_error_fail(err, CB_ERR_STATE, "sandbox %.8s was not opened by the fleet",
                             kg_sandbox_id(self));
    if (timeout_s == 0)
        return cb_error_fail(err, CB_ERR_INVALID,
                             "a lifetime must be positive (or negative for none)");
    if (kg_sandbox_ending(self))
        return cb_error_fail(err, CB_ERR_STATE, "sandbox %.8s is ending already: %s",
                             kg_sandbox_id(self),
                             kg_sandbox_end_detail(self) ? kg_sandbox_end_detail(self) : "");
    int64_t now = fleet_now_ms(fs->fleet);
    fs->lifetime_s = timeout_s;
    fs->expires_ms = timeout_s > 0 ? now + (int64_t)timeout_s * 1000 : 0;
    fs->extend_on_use = false; /* asked for: a fixed deadline */
    fleet_audit(fs->fleet, self, NULL, "sandbox_timeout",
                json_pack("{s:i}", "lifetime_s", timeout_s > 0 ? timeout_s : -1));
    if (timeout_s > 0)
        kg_sandbox_log(self, "sandbox", "lifetime set: it ends %d s from now", timeout_s);
    else
        kg_sandbox_log(self, "sandbox", "lifetime set: none (it ends only when deleted)");
    return 0;
}

kg_kernel_t *fleet_sandbox_main_kernel(kg_sandbox_t *self)
{
    fleet_sandbox_t *fs = fleet_sandbox_of(self);
    return fs ? fs->main_kernel : NULL;
}

const char *fleet_sandbox_template(const kg_sandbox_t *self)
{
    fleet_sandbox_t *fs = fleet_sandbox_of(self);
    return fs ? fs->template_name : NULL;
}

const char *fleet_sandbox_tenant(const kg_sandbox_t *self)
{
    fleet_sandbox_t *fs = fleet_sandbox_of(self);
    return fs ? fs->tenant : NULL;
}

bool fleet_sandbox_visible(const kg_sandbox_t *self, const cb_principal_t *who)
{
    return self && cb_principal_may(who, fleet_sandbox_tenant(self));
}

bool fleet_sandbox_from_pool(const kg_sandbox_t *self)
{
    fleet_sandbox_t *fs = fleet_sandbox_of(self);
    return fs && fs->from_pool;
}

bool fleet_sandbox_persistent(const kg_sandbox_t *self)
{
    fleet_sandbox_t *fs = fleet_sandbox_of(self);
    return fs && fs->persist_dir;
}

int64_t fleet_sandbox_expires_ms(const kg_sandbox_t *self)
{
    fleet_sandbox_t *fs = fleet_sandbox_of(self);
    int64_t deadline = fs ? s_deadline_ms(fs) : 0;
    if (!deadline)
        return 0;
    struct timeval tv; /* the deadline runs on the monotonic clock; callers want a date */
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000 + (deadline - fleet_now_ms(fs->fleet));
}

/* The fleet's fields of kg_sandbox_info. */
void fleet_describe(fleet_sandbox_t *fs, json_t *info)
{
    int64_t now = fleet_now_ms(fs->fleet);
    json_object_update_new(
        info,
        json_pack("{s:s?, s:s?, s:b, s:b, s:o, s:I, s:f, s:O?}", "template", fs->template_name,
                  "tenant", fs->tenant, "persistent", fs->persist_dir != NULL, "pooled",
                  fs->from_pool, "expires_ms",
                  fs->expires_ms ? json_integer(fleet_sandbox_expires_ms(fs->sb)) : json_null(),
                  "idle_ms", (json_int_t)(now - fs->last_active_ms), "uptime_s",
                  (double)(now - (fs->opened ? fs->opened_ms : fs->created_ms)) / 1000.0,
                  "metadata", fs->metadata));
}

/* ---- what a template starts ------------------------------------------------------------------ */

char *fleet_template_kernel(fleet_t *fleet, const char *template_name, cb_error_t *err)
{
    fleet_template_t *t = fleet_template_find(fleet->templates_dir, template_name, err);
    char *name = t ? cb_xstrdup(t->kernel_name) : NULL;
    fleet_template_destroy(&t);
    return name;
}

/* ---- metrics ------------------------------------------------------------------------------- */

json_t *fleet_metrics(fleet_t *fleet)
{
    const kg_counters_t *c = kg_gateway_counters(fleet->gw);
    const fleet_counters_t *f = &fleet->counters;
    size_t pool_starting = 0;
    size_t pooled = fleet_pool_count(fleet, &pool_starting);
    size_t live = kg_gateway_sandbox_count(fleet->gw);
    size_t starting = 0;
    for (fleet_sandbox_t *fs = zhashx_first(fleet->sandboxes); fs;
         fs = zhashx_next(fleet->sandboxes))
        if (!fs->in_pool && fs->main_kernel && !kg_kernel_is_ready(fs->main_kernel) &&
            !kg_kernel_ever_ready(fs->main_kernel))
            starting++;
    int max = s_max_sandboxes(fleet);
    return json_pack(
        "{s:f, s:{s:I, s:I, s:I, s:I, s:o, s:I, s:I, s:I, s:I, s:I, s:I}, s:o*,"
        " s:{s:I, s:I, s:I, s:I, s:I}, s:{s:I, s:I}, s:I, s:{s:I, s:I, s:I, s:I}}",
        "uptime_s", (double)(cb_now_ms() - fleet->started_ms) / 1000.0, "sandboxes", "live",
        (json_int_t)live, "in_use", (json_int_t)(live - pooled), "pooled", (json_int_t)pooled,
        "starting", (json_int_t)(starting + pool_starting), "max",
        max < 0 ? json_null() : json_integer(max), "created", (json_int_t)c->sandboxes_created,
        "opened", (json_int_t)f->sandboxes_opened, "refused", (json_int_t)f->sandboxes_refused,
        "expired", (json_int_t)f->sandboxes_expired, "culled", (json_int_t)f->sandboxes_culled,
        "died", (json_int_t)f->sandboxes_died, "pool", fleet_pool_metrics(fleet), "kernels", "live",
        (json_int_t)kg_gateway_kernel_count(fleet->gw), "started", (json_int_t)c->kernels_started,
        "died", (json_int_t)c->kernels_died, "restarted", (json_int_t)c->kernels_restarted, "oom",
        (json_int_t)c->kernels_oom, "executions", "total", (json_int_t)c->executions, "failed",
        (json_int_t)c->executions_failed, "commands", (json_int_t)c->commands, "messages",
        "bad_signatures", (json_int_t)c->bad_signatures, "replayed_signatures",
        (json_int_t)c->replayed_signatures, "malformed", (json_int_t)c->malformed_messages,
        "proxy_dropped", (json_int_t)c->proxy_dropped);
}

json_t *fleet_templates(fleet_t *fleet)
{
    size_t count = 0;
    fleet_template_t **list = fleet_template_list(fleet->templates_dir, &count);
    json_t *out = json_array();
    for (size_t i = 0; i < count; i++) {
        json_array_append_new(out, fleet_template_json(list[i]));
        fleet_template_destroy(&list[i]);
    }
    free(list);
    return out;
}
