/* fleet.c: the fleet object and how it hears the engine.
 *
 * The fleet is the gateway's policy layer: fleet_new installs it with kg_gateway_set_policy, so
 * the engine tells it what happens to sandboxes (use, an init's death, a kernel's events, a
 * deferred end, a destruction) without knowing what it is. Each sandbox the fleet makes carries
 * the fleet's record as its policy data; the engine's destroyed hook is the one place that
 * record is freed. The gateway owns the fleet: its closing hook stops the tick before the
 * gateway shuts kernels down, and its closed hook frees the fleet once every sandbox is gone, so
 * a persistent workspace is closed (its lock released) by the destroyed hook on the way.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "cb/alloc.h"
#include "cb/log.h"
#include "cb/util.h"
#include "fleet_private.h"
#include "kg/gateway.h"
#include "kg/sandbox.h"
#include "kg/policy.h"

static const kg_policy_t s_policy;

int64_t fleet_now_ms(const fleet_t *fleet)
{
    return fleet->cfg.now_ms ? fleet->cfg.now_ms() : cb_now_ms();
}

fleet_sandbox_t *fleet_sandbox_of(const kg_sandbox_t *sb)
{
    return sb ? kg_sandbox_policy_data(sb) : NULL;
}

/* ---- the engine's hooks ---------------------------------------------------------------------- */

static void s_used(kg_sandbox_t *sb, void *arg)
{
    fleet_sandbox_t *fs = fleet_sandbox_of(sb);
    if (fs)
        fs->last_active_ms = fleet_now_ms(fs->fleet);
}

static void s_init_died(kg_sandbox_t *sb, void *arg)
{
    fleet_sandbox_t *fs = fleet_sandbox_of(sb);
    if (fs && (fs->opened || fs->in_pool))
        fleet_end_later(fs, FLEET_END_DIED,
                        "it died: its init process ended, and every process in it with it");
}

static void s_kernel_event(kg_sandbox_t *sb, kg_kernel_t *k, kg_kernel_event_t event,
                           const char *detail, void *arg)
{
    fleet_sandbox_t *fs = fleet_sandbox_of(sb);
    if (fs && fs->main_kernel == k)
        fleet_on_kernel_event(fs, k, event, detail);
}

static void s_ending(kg_sandbox_t *sb, const char *detail, void *arg)
{
    fleet_sandbox_t *fs = fleet_sandbox_of(sb);
    if (fs)
        fleet_on_ending(fs, detail);
}

static void s_destroyed(kg_sandbox_t *sb, void *arg)
{
    fleet_sandbox_t *fs = fleet_sandbox_of(sb);
    if (!fs)
        return;
    fleet_t *fleet = fs->fleet;
    fleet_pool_forget(fleet, fs);
    if (fs->persist_dir)
        fleet_persist_close(fs);
    if (fs->opened) {
        static const char *const reasons[] = {[FLEET_END_EXPIRED] = "expired",
                                              [FLEET_END_IDLE] = "idle",
                                              [FLEET_END_DIED] = "died",
                                              [FLEET_END_FAILED] = "failed"};
        const char *reason = fs->fleet_ended     ? reasons[fs->end_why]
                             : fleet->destroying ? "server_stopped"
                                                 : "deleted";
        const char *why = kg_sandbox_end_detail(sb);
        fleet_audit(fleet, sb, fs->tenant, "sandbox_end",
                    json_pack("{s:s, s:s, s:b, s:I}", "reason", reason, "detail",
                              why ? why : reason, "persistent", fs->persist_dir != NULL, "lived_ms",
                              (json_int_t)(fleet_now_ms(fleet) - fs->opened_ms)));
    }
    if (fs->opened) {
        const char *detail = kg_sandbox_end_detail(sb);
        fleet_tombstone(fleet, kg_sandbox_id(sb), fs->tenant, detail ? detail : "it was deleted");
    }
    zhashx_delete(fleet->sandboxes, kg_sandbox_id(sb));
    kg_sandbox_set_policy_data(sb, NULL);
    free(fs->template_name);
    free(fs->tenant);
    json_decref(fs->metadata);
    free(fs->persist_dir);
    free(fs);
}

/* What a client did in a sandbox goes to the audit trail of the tenant that owns it. */
static void s_activity(kg_sandbox_t *sb, const char *kind, json_t *record, void *arg)
{
    fleet_t *fleet = arg;
    fleet_sandbox_t *fs = fleet_sandbox_of(sb);
    if (fs && (fs->in_pool || !fs->opened))
        return; /* its own making (a template's files, a pooled start): nobody's doing yet */
    fleet_audit(fleet, sb, fs ? fs->tenant : NULL, kind, fleet_audit_fields(record));
}

static void s_describe(kg_sandbox_t *sb, json_t *info, void *arg)
{
    fleet_sandbox_t *fs = fleet_sandbox_of(sb);
    if (fs)
        fleet_describe(fs, info);
}

static int s_on_tick(zloop_t *loop, int timer_id, void *arg);

static void s_closing(kg_gateway_t *gw, void *arg)
{
    fleet_t *fleet = arg;
    fleet->destroying = true;
    kg_timer_stop(gw, &fleet->tick_timer);
    for (size_t i = 0; i < FLEET_TOMBSTONES; i++)
        free(fleet->tombstones[i]);
    memset(fleet->tombstones, 0, sizeof fleet->tombstones);
}

static void s_closed(kg_gateway_t *gw, void *arg)
{
    fleet_t *fleet = arg;
    fleet_pool_destroy_all(fleet);          /* empty by now: the gateway destroyed every sandbox */
    fleet_audit_log_destroy(&fleet->audit); /* after every sandbox's end was recorded */
    zhashx_destroy(&fleet->sandboxes);
    free(fleet->templates_dir);
    free(fleet->state_dir);
    free(fleet);
}

static const kg_policy_t s_policy = {
    .used = s_used,
    .init_died = s_init_died,
    .kernel_event = s_kernel_event,
    .ending = s_ending,
    .destroyed = s_destroyed,
    .activity = s_activity,
    .describe = s_describe,
    .closing = s_closing,
    .closed = s_closed,
};

/* ---- the object ------------------------------------------------------------------------------ */

char *fleet_default_state_dir(void)
{
    const char *xdg = getenv("XDG_STATE_HOME");
    if (xdg && xdg[0] == '/')
        return cb_strdup_printf("%s/cellblock", xdg);
    const char *home = getenv("HOME");
    return cb_strdup_printf("%s/.local/state/cellblock", home && home[0] == '/' ? home : "/tmp");
}

static int s_on_tick(zloop_t *loop, int timer_id, void *arg)
{
    fleet_t *fleet = arg;
    fleet_tick(fleet);
    return 0; /* the timer pass itself tells a waiting run_until (kg_timer_fn) */
}

fleet_t *fleet_new(kg_gateway_t *gw, const fleet_config_t *config, cb_error_t *err)
{
    fleet_t *fleet = cb_xcalloc(1, sizeof *fleet);
    if (config)
        fleet->cfg = *config;
    fleet->gw = gw;
    fleet->tick_timer = -1;
    fleet->templates_dir = fleet->cfg.templates_dir ? cb_xstrdup(fleet->cfg.templates_dir)
                                                    : fleet_template_project_dir();
    fleet->state_dir =
        fleet->cfg.state_dir ? cb_xstrdup(fleet->cfg.state_dir) : fleet_default_state_dir();
    fleet->cfg.templates_dir = fleet->templates_dir;
    fleet->cfg.state_dir = fleet->state_dir;
    fleet->started_ms = cb_now_ms();
    fleet->audit = fleet_audit_log_new(fleet->state_dir, NULL);
    fleet->sandboxes = zhashx_new();
    if (!fleet->sandboxes)
        cb_oom(sizeof(zhashx_t *));
    if (kg_gateway_set_policy(gw, &s_policy, fleet, err) < 0) {
        s_closed(gw, fleet);
        return NULL;
    }
    fleet->tick_timer = kg_timer_start(gw, FLEET_TICK_MS, 0, s_on_tick, fleet);
    if (fleet->tick_timer < 0) {
        /* The gateway frees the fleet (closed hook) when it goes. */
        cb_error_make(err, errno ? errno : ENOMEM, "the fleet's tick timer");
        return NULL;
    }
    return fleet;
}

fleet_t *fleet_of(kg_gateway_t *gw) { return kg_gateway_policy(gw, &s_policy); }
kg_gateway_t *fleet_gateway(fleet_t *self) { return self->gw; }
const fleet_counters_t *fleet_counters(fleet_t *self) { return &self->counters; }
