/* test_fleet.c: the fleet's lifetimes, idle culling, ends and pool back-off, on a clock the
 * test moves (fleet_config_t.now_ms), without a kernel.
 *
 * The sandboxes are real (the engine's kg_sandbox_new: namespaces, an init) but run nothing;
 * the test adopts them into the fleet by hand (fleet_sandbox_adopt) and sets their lifetimes
 * as fleet_sandbox_open would, so every decision the tick makes is seen from inside: the
 * verdict, the deferred end through the engine, the tombstone, the counters. A pool whose
 * template names a kernel that does not exist fails every refill, which shows its back-off.
 * Skips when this host cannot make sandboxes.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cb/cleanup.h"
#include "cb/log.h"
#include "cb/tap.h"
#include "cb/util.h"
#include "fleet_private.h"
#include "kg/gateway.h"
#include "kg/sandbox.h"

/* Assertions that print both sides when they differ. */
#define EXPECT_INT(got, want, ...)                                                                 \
    do {                                                                                           \
        int64_t g_ = (int64_t)(got), w_ = (int64_t)(want);                                         \
        if (!CB_OK(g_ == w_, __VA_ARGS__))                                                         \
            CB_DIAG("  %s is %" PRId64 ", expected %s = %" PRId64, #got, g_, #want, w_);           \
    } while (0)
#define EXPECT_STR(got, want, ...)                                                                 \
    do {                                                                                           \
        const char *g_ = (got), *w_ = (want);                                                      \
        if (!CB_OK(g_ && strstr(g_, w_), __VA_ARGS__))                                             \
            CB_DIAG("  %s is \"%s\", expected it to hold \"%s\"", #got, g_ ? g_ : "(null)", w_);   \
    } while (0)

static int64_t s_clock_ms = 1000000;
static int64_t s_now(void) { return s_clock_ms; }

/* Run the loop long enough for deferred calls (the engine's ends) to run. */
static void s_spin(kg_gateway_t *gw)
{
    static const volatile int never = 0;
    kg_gateway_run_until(gw, &never, 50);
}

/* A sandbox the fleet holds as opened, with a lifetime as fleet_sandbox_open gives it. */
static fleet_sandbox_t *s_opened(fleet_t *fleet, int lifetime_s, bool extend_on_use)
{
    cb_error_t err = {0};
    kg_sandbox_t *sb = kg_sandbox_new(fleet_gateway(fleet), NULL, NULL, NULL, NULL, &err);
    if (!sb) {
        CB_DIAG("kg_sandbox_new: %s", err.msg);
        return NULL;
    }
    fleet_sandbox_t *fs = fleet_sandbox_adopt(fleet, sb, "test");
    fs->opened = true;
    fs->opened_ms = fs->last_active_ms = s_clock_ms;
    fs->lifetime_s = lifetime_s;
    fs->expires_ms = lifetime_s > 0 ? s_clock_ms + (int64_t)lifetime_s * 1000 : 0;
    fs->extend_on_use = extend_on_use;
    fs->metadata = json_object();
    return fs;
}

static void test_fixed_lifetime(fleet_t *fleet)
{
    kg_gateway_t *gw = fleet_gateway(fleet);
    fleet_sandbox_t *fs = s_opened(fleet, 10, false);
    if (!CB_OK(fs, "a sandbox for the fixed lifetime"))
        return;
    char id[37];
    snprintf(id, sizeof id, "%s", kg_sandbox_id(fs->sb));
    uint64_t expired = fleet_counters(fleet)->sandboxes_expired;

    s_clock_ms += 5000;
    kg_sandbox_touch(fs->sb); /* use does not move a fixed deadline */
    s_clock_ms += 4999;
    fleet_tick(fleet);
    CB_OK(!kg_sandbox_ending(fs->sb), "1 ms before its deadline the tick keeps it");
    s_clock_ms += 1;
    fleet_tick(fleet);
    CB_OK(kg_sandbox_ending(fs->sb), "at its deadline the tick ends it");
    EXPECT_STR(kg_sandbox_end_detail(fs->sb), "its lifetime of 10 s ran out", "the end says why");
    CB_OK(kg_gateway_sandbox(gw, id) != NULL, "the end waits for a fresh loop turn");
    s_spin(gw);
    CB_OK(kg_gateway_sandbox(gw, id) == NULL, "the deferred turn destroyed it");
    EXPECT_STR(fleet_sandbox_gone(fleet, id), "it expired", "its tombstone says it expired");
    EXPECT_INT(fleet_counters(fleet)->sandboxes_expired, expired + 1, "counted as expired");
}

static void test_extend_on_use(fleet_t *fleet)
{
    kg_gateway_t *gw = fleet_gateway(fleet);
    fleet_sandbox_t *fs = s_opened(fleet, 10, true);
    if (!CB_OK(fs, "a sandbox whose lifetime runs from its last use"))
        return;
    char id[37];
    snprintf(id, sizeof id, "%s", kg_sandbox_id(fs->sb));
    kg_sandbox_t *sb = fs->sb;
    int64_t opened = s_clock_ms;

    s_clock_ms += 8000;
    kg_sandbox_touch(sb); /* the engine's used hook, on the fleet's clock */
    EXPECT_INT(fs->last_active_ms, s_clock_ms, "kg_sandbox_touch reaches the fleet (used hook)");
    s_clock_ms += 9000; /* 17 s after opening: past the first deadline, 9 s after the use */
    fleet_tick(fleet);
    CB_OK(!kg_sandbox_ending(sb), "a use extends the lifetime (17 s after opening, 9 s after use)");
    int64_t expires = fleet_sandbox_expires_ms(sb);
    CB_OK(expires > 0, "fleet_sandbox_expires_ms gives a date");
    s_clock_ms = opened + 8000 + 10000;
    fleet_tick(fleet);
    CB_OK(kg_sandbox_ending(sb), "10 s after the last use it expires");
    EXPECT_STR(kg_sandbox_end_detail(sb), "nothing used it for 10 s", "the end says it was unused");
    s_spin(gw);
    CB_OK(kg_gateway_sandbox(gw, id) == NULL, "and is gone");
}

static void test_set_timeout(fleet_t *fleet)
{
    kg_gateway_t *gw = fleet_gateway(fleet);
    fleet_sandbox_t *fs = s_opened(fleet, 10, true);
    if (!CB_OK(fs, "a sandbox to set the lifetime of"))
        return;
    kg_sandbox_t *sb = fs->sb;
    cb_error_t err = {0};
    CB_OK(fleet_sandbox_set_timeout(sb, 0, &err) < 0 && err.kind == CB_ERR_INVALID,
          "a lifetime of 0 is refused");
    CB_OK(fleet_sandbox_set_timeout(sb, -1, &err) == 0, "no lifetime");
    EXPECT_INT(fleet_sandbox_expires_ms(sb), 0, "no lifetime: expires_ms is 0");
    s_clock_ms += 3600 * 1000;
    fleet_tick(fleet);
    CB_OK(!kg_sandbox_ending(sb), "without a lifetime an hour changes nothing");
    CB_OK(fleet_sandbox_set_timeout(sb, 2, &err) == 0, "a lifetime of 2 s");
    CB_OK(!fs->extend_on_use, "set_timeout makes the deadline fixed");
    s_clock_ms += 2000;
    fleet_tick(fleet);
    CB_OK(kg_sandbox_ending(sb), "it ends 2 s later");
    CB_OK(fleet_sandbox_set_timeout(sb, 5, &err) < 0 && err.kind == CB_ERR_STATE,
          "a sandbox already ending refuses a new lifetime");
    s_spin(gw);
}

static void test_idle(kg_gateway_t *gw)
{
    fleet_t *fleet = fleet_of(gw);
    fleet->cfg.idle_timeout_s = 30;
    fleet_sandbox_t *fs = s_opened(fleet, -1, false);
    if (!CB_OK(fs, "a sandbox without a lifetime, for the idle limit"))
        return;
    char id[37];
    snprintf(id, sizeof id, "%s", kg_sandbox_id(fs->sb));
    uint64_t culled = fleet_counters(fleet)->sandboxes_culled;

    s_clock_ms += 20000;
    kg_sandbox_touch(fs->sb);
    s_clock_ms += 29999;
    fleet_tick(fleet);
    CB_OK(!kg_sandbox_ending(fs->sb), "idle 29.999 s (after a use): kept");
    json_auto_t *info = kg_sandbox_info(fs->sb);
    EXPECT_INT(json_integer_value(json_object_get(info, "idle_ms")), 29999,
               "kg_sandbox_info's idle_ms comes from the fleet (describe hook)");
    CB_OK(json_is_null(json_object_get(info, "expires_ms")), "no lifetime: expires_ms is null");
    s_clock_ms += 1;
    fleet_tick(fleet);
    CB_OK(kg_sandbox_ending(fs->sb), "idle 30 s: culled");
    EXPECT_STR(kg_sandbox_end_detail(fs->sb), "idle for 30 s", "the end says it was idle");
    s_spin(gw);
    EXPECT_STR(fleet_sandbox_gone(fleet, id), "idle", "its tombstone says it was idle");
    EXPECT_INT(fleet_counters(fleet)->sandboxes_culled, culled + 1, "counted as culled");

    /* A sandbox deleted by its owner leaves its own tombstone, and is not counted as an end. */
    fs = s_opened(fleet, -1, false);
    if (!CB_OK(fs, "a sandbox to delete"))
        return;
    snprintf(id, sizeof id, "%s", kg_sandbox_id(fs->sb));
    kg_sandbox_t *sb = fs->sb;
    kg_sandbox_destroy(&sb);
    EXPECT_STR(fleet_sandbox_gone(fleet, id), "it was deleted", "a deleted sandbox's tombstone");
    fleet->cfg.idle_timeout_s = 0;
}

static void test_pool_back_off(kg_gateway_t *gw)
{
    fleet_t *fleet = fleet_of(gw);
    cb_error_t err = {0};
    if (!CB_OK(fleet_set_pool(fleet, "broken", 1, &err) == 0,
               "a pool of a template whose kernel is missing"))
        CB_DIAG("fleet_set_pool: %s", err.msg);
    const kg_counters_t *c = kg_gateway_counters(gw);
    /* Each try makes a sandbox, whose kernel then fails to start: the attempts are sandboxes made. */
    uint64_t made = c->sandboxes_created;
    int expect_wait[] = {1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000};
    fleet_tick(fleet);
    EXPECT_INT(c->sandboxes_created, made + 1, "the first refill tries at once");
    for (size_t i = 0; i < sizeof expect_wait / sizeof *expect_wait; i++) {
        made = c->sandboxes_created;
        s_clock_ms += expect_wait[i] - 1;
        fleet_tick(fleet);
        EXPECT_INT(c->sandboxes_created, made, "after failure %zu, no try 1 ms before %d ms", i + 1,
                   expect_wait[i]);
        s_clock_ms += 1;
        fleet_tick(fleet);
        EXPECT_INT(c->sandboxes_created, made + 1, "after failure %zu, the next try comes at %d ms",
                   i + 1, expect_wait[i]);
    }
    json_auto_t *m = fleet_metrics(fleet);
    json_t *pool =
        json_object_get(json_object_get(json_object_get(m, "pool"), "templates"), "broken");
    EXPECT_INT(json_integer_value(json_object_get(pool, "size")), 1, "metrics: the pool's size");
    EXPECT_INT(json_integer_value(json_object_get(pool, "ready")), 0, "metrics: none ready");
    EXPECT_INT(json_integer_value(json_object_get(json_object_get(m, "sandboxes"), "pooled")), 0,
               "metrics: nothing pooled");
    CB_OK(fleet_set_pool(fleet, "broken", 0, &err) == 0, "the pool is emptied");
}

/* The err of fn for an id, with the id replaced by "ID": what an unknown id is told is
 * compared with what another tenant is told. */
static char *s_msg_without(const char *msg, const char *id)
{
    cb_buf_t out = {0};
    const char *at;
    while ((at = strstr(msg, id))) {
        cb_buf_append(&out, msg, (size_t)(at - msg));
        cb_buf_append(&out, "ID", 2);
        msg = at + strlen(id);
    }
    cb_buf_append(&out, msg, strlen(msg));
    return cb_buf_take(&out);
}

static bool s_listed(json_t *list, const char *id)
{
    size_t i;
    json_t *p;
    json_array_foreach (list, i, p)
        if (strcmp(json_string_value(json_object_get(p, "sandbox_id")) ?: "", id) == 0)
            return true;
    return false;
}

/* A persisted sandbox keeps its tenant on disk; listing and reopening it are its tenant's (and
 * an admin's); another tenant is told exactly what an unknown id is told. */
static void test_tenants(kg_gateway_t *gw, const char *state)
{
    fleet_t *fleet = fleet_of(gw);
    cb_error_t err = {0};
    const cb_principal_t alice = {"alice", false}, bob = {"bob", false},
                         admin = {CB_TENANT_ADMIN, true}, nobody = {"", false};
    fleet_sandbox_t *fs = s_opened(fleet, 60, false);
    if (!fs)
        return;
    char id[37];
    snprintf(id, sizeof id, "%s", kg_sandbox_id(fs->sb));
    fs->tenant = strdup("alice");
    CB_OK(fleet_sandbox_visible(fs->sb, &alice) && !fleet_sandbox_visible(fs->sb, &bob) &&
              fleet_sandbox_visible(fs->sb, &admin) && !fleet_sandbox_visible(fs->sb, &nobody),
          "an open sandbox is visible to its tenant and an admin only");
    EXPECT_STR(fleet_sandbox_tenant(fs->sb), "alice", "fleet_sandbox_tenant");
    /* Persist it by hand, as fleet_sandbox_open does for persist. */
    fs->persist_dir = cb_strdup_printf("%s/sandboxes/%s", state, id);
    cleanup_free char *ws = cb_strdup_printf("%s/workspace", fs->persist_dir);
    fs->persist_lock = -1;
    CB_OK(cb_mkdir_p(ws, 0700, &err) == 0 && fleet_persist_save(fs, "python3", &err) == 0,
          "a persisted sandbox's description is written (%s)", err.msg);
    cleanup_free char *path = cb_strdup_printf("%s/sandbox.json", fs->persist_dir);
    json_auto_t *saved = json_load_file(path, 0, NULL);
    EXPECT_STR(json_string_value(json_object_get(saved, "tenant")), "alice",
               "sandbox.json keeps the tenant");

    /* While open: bob is told what an unknown id is told, not "is open". */
    const char *unknown = "00000000-0000-4000-8000-000000000000";
    json_t *d = fleet_persist_describe(fleet, unknown, &bob, &err);
    cleanup_free char *want = s_msg_without(err.msg, unknown);
    cb_error_kind_t want_kind = err.kind;
    CB_OK(!d && want_kind == CB_ERR_NOT_FOUND, "an unknown id: not found (%s)", err.msg);
    d = fleet_persist_describe(fleet, id, &bob, &err);
    cleanup_free char *got_open = s_msg_without(err.msg, id);
    CB_OK(!d && err.kind == want_kind && strcmp(got_open, want) == 0,
          "bob reopening alice's open sandbox: exactly as an unknown id (%s)", err.msg);
    d = fleet_persist_describe(fleet, id, &alice, &err);
    CB_OK(!d && err.kind == CB_ERR_STATE, "alice is told it is open (%s)", err.msg);

    /* Closed. */
    kg_sandbox_t *sb = fs->sb;
    kg_sandbox_destroy(&sb);
    s_spin(gw);
    CB_OK(fleet_sandbox_gone_for(fleet, id, &alice) && fleet_sandbox_gone_for(fleet, id, &admin) &&
              fleet_sandbox_gone(fleet, id),
          "its tombstone: alice and an admin are told why it went");
    CB_OK(!fleet_sandbox_gone_for(fleet, id, &bob) && !fleet_sandbox_gone_for(fleet, id, &nobody),
          "bob is not: to him it is an unknown id");
    json_auto_t *as_alice = fleet_persist_describe(fleet, id, &alice, &err);
    CB_OK(as_alice != NULL, "alice may reopen hers (%s)", as_alice ? "ok" : err.msg);
    json_auto_t *as_admin = fleet_persist_describe(fleet, id, &admin, &err);
    CB_OK(as_admin != NULL, "an admin may too");
    d = fleet_persist_describe(fleet, id, &bob, &err);
    cleanup_free char *got = s_msg_without(err.msg, id);
    CB_OK(!d && err.kind == want_kind && strcmp(got, want) == 0,
          "bob reopening alice's closed sandbox: exactly as an unknown id (%s)", err.msg);
    d = fleet_persist_describe(fleet, id, &nobody, &err);
    CB_OK(!d && err.kind == want_kind, "a sandbox token's principal cannot reopen it");
    kg_sandbox_t *r =
        fleet_sandbox_open(fleet, &(fleet_sandbox_opts_t){.reopen_id = id, .tenant = "bob"}, &err);
    cleanup_free char *got2 = s_msg_without(err.msg, id);
    CB_OK(!r && err.kind == want_kind && strcmp(got2, want) == 0,
          "fleet_sandbox_open(reopen_id) for bob: not found (%s)", err.msg);

    json_auto_t *l_alice = fleet_persisted(fleet, &alice);
    json_auto_t *l_bob = fleet_persisted(fleet, &bob);
    json_auto_t *l_admin = fleet_persisted(fleet, &admin);
    json_auto_t *l_none = fleet_persisted(fleet, NULL);
    CB_OK(s_listed(l_alice, id) && s_listed(l_admin, id) && !s_listed(l_bob, id) &&
              !s_listed(l_none, id),
          "fleet_persisted: alice's workspace listed for alice and the admin, not for bob");

    /* One saved before tenants were kept: the admin's alone. */
    json_object_del(saved, "tenant");
    CB_OK(json_dump_file(saved, path, 0) == 0, "a description without a tenant");
    json_auto_t *old = fleet_persist_describe(fleet, id, &alice, &err);
    CB_OK(!old && err.kind == want_kind, "… is not alice's");
    json_auto_t *old_admin = fleet_persist_describe(fleet, id, &admin, &err);
    CB_OK(old_admin != NULL, "… but an admin's");
}

int main(void)
{
    cb_log_set_level(CB_LOG_ERROR); /* the pool's failures are expected here */
    char tmp[] = "/tmp/cb-test-fleet-XXXXXX";
    if (!mkdtemp(tmp))
        CB_SKIP_ALL("mkdtemp failed");
    cleanup_free char *run = cb_strdup_printf("%s/run", tmp);
    cleanup_free char *templates = cb_strdup_printf("%s/templates", tmp);
    cleanup_free char *state = cb_strdup_printf("%s/state", tmp);
    cleanup_free char *broken = cb_strdup_printf("%s/broken.json", templates);
    cb_error_t err = {0};
    setenv("CELLBLOCK_TEMPLATES_PATH", "", 1);
    if (cb_mkdir_p(run, 0700, &err) < 0 || cb_mkdir_p(templates, 0700, &err) < 0 ||
        cb_write_file(broken, "{\"kernel\": \"no-such-kernel\"}", 28, 0600, &err) < 0)
        CB_SKIP_ALL("test files: %s", err.msg);
    kg_gateway_t *gw = kg_gateway_new(&(kg_config_t){.runtime_dir = run, .heartbeat_ms = -1}, &err);
    if (!gw)
        CB_SKIP_ALL("kg_gateway_new: %s", err.msg);
    fleet_t *fleet = fleet_new(
        gw, &(fleet_config_t){.templates_dir = templates, .state_dir = state, .now_ms = s_now},
        &err);
    CB_OK(fleet && fleet_of(gw) == fleet, "fleet_new installs the fleet as the gateway's policy");
    CB_OK(fleet_new(gw, NULL, &err) == NULL && err.kind == CB_ERR_STATE,
          "a second policy is refused");
    kg_sandbox_t *probe = fleet ? kg_sandbox_create(gw, NULL, &err) : NULL;
    if (!probe) {
        kg_gateway_destroy(&gw);
        cb_rm_rf(tmp, NULL);
        CB_SKIP_ALL("this host cannot make sandboxes: %s", err.msg);
    }
    CB_OK(fleet_sandbox_template(probe) == NULL && !fleet_sandbox_main_kernel(probe),
          "a sandbox the fleet did not make has no fleet fields");
    kg_sandbox_destroy(&probe);

    test_fixed_lifetime(fleet);
    test_extend_on_use(fleet);
    test_set_timeout(fleet);
    test_idle(gw);
    test_pool_back_off(gw);
    test_tenants(gw, state);

    kg_gateway_destroy(&gw); /* frees the fleet (its closed hook) */
    cb_rm_rf(tmp, NULL);
    return cb_tap_done();
}
