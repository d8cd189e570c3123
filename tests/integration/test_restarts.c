/* test_restarts.c: restarts leave no timer behind (TAP output).
 *
 * Why: every start of a kernel process arms a startup deadline. A process that died before it was
 * ready was restarted with a new deadline while the old one stayed armed; the stale deadlines then
 * killed the healthy kernel later ("did not become ready"), or ran on a kernel already freed. A
 * restart must end every timer of the process generation it replaces.
 *
 * How: real ipykernel kernels (no sandbox: the timers are the same either way) on a gateway whose
 * startup deadline is short. One kernel is killed again and again right after each restart,
 * before it can be ready; another is restarted through kg_kernel_restart several times. Once both
 * are ready again, nothing may kill them: the test waits for a death event for twice the startup
 * deadline (the absence of an event can only be shown by time passing; every stale deadline would
 * have fired within one deadline of its restart), then runs code on both. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cb/cleanup.h"
#include "cb/tap.h"
#include "cb/util.h"
#include "kg/gateway.h"
#include "kg/kernel.h"
#include "kg_run.h"

#define STARTUP_MS 6000
#define DEADLINE_MS 60000
#define KILLS 3
#define RESTARTS 3

typedef struct {
    const char *name;
    int ready, died, restarting;
    volatile int flag;
    kg_kernel_event_t awaited;
    char detail[256];
} events_t;

static volatile int s_any_died;

static void s_on_event(kg_kernel_t *k, kg_kernel_event_t event, const char *detail, void *arg)
{
    events_t *ev = arg;
    if (event == KG_EVENT_READY)
        ev->ready++;
    if (event == KG_EVENT_RESTARTING)
        ev->restarting++;
    if (event == KG_EVENT_DIED || event == KG_EVENT_HUNG || event == KG_EVENT_DEAD) {
        ev->died++;
        s_any_died = 1;
    }
    if (detail && event != KG_EVENT_STDERR)
        snprintf(ev->detail, sizeof ev->detail, "%s", detail);
    if (event == ev->awaited)
        ev->flag = 1;
}

static int s_wait(kg_gateway_t *gw, events_t *ev, kg_kernel_event_t event)
{
    ev->flag = 0;
    ev->awaited = event;
    return kg_gateway_run_until(gw, &ev->flag, DEADLINE_MS);
}

/* The kernel answers code: "print(6 * 7)" gives "42\n". */
static bool s_answers(kg_gateway_t *gw, kg_kernel_t *k)
{
    json_auto_t *result = tst_kg_run(gw, k, "print(6 * 7)", 0, DEADLINE_MS);
    const char *out = json_string_value(json_object_get(result, "stdout"));
    bool ok = out && strcmp(out, "42\n") == 0;
    if (!ok) {
        cleanup_free char *dump = result ? json_dumps(result, JSON_COMPACT) : NULL;
        CB_DIAG("result: %.400s", dump ? dump : "(none)");
    }
    return ok;
}

static kg_kernel_t *s_start(kg_gateway_t *gw, events_t *ev)
{
    cb_error_t err = {0};
    kg_kernel_t *k = kg_kernel_start(
        gw, &(kg_kernel_opts_t){.kernel_name = "python3", .on_event = s_on_event, .arg = ev}, &err);
    if (!k)
        CB_DIAG("kg_kernel_start: %s", err.msg);
    else if (s_wait(gw, ev, KG_EVENT_READY) < 0)
        CB_DIAG("%s: not ready: %s", ev->name, ev->detail);
    return k;
}

int main(void)
{
    if (system("/usr/bin/python3 -c 'import ipykernel' 2>/dev/null") != 0)
        CB_SKIP_ALL("ipykernel is not installed");
    char dir[] = "/tmp/cellblock-test-restarts-XXXXXX";
    if (!mkdtemp(dir))
        CB_SKIP_ALL("cannot make a temporary directory");
    cb_error_t err = {0};
    kg_gateway_t *gw = kg_gateway_new(
        &(kg_config_t){.runtime_dir = dir, .no_sandbox = true, .startup_timeout_ms = STARTUP_MS},
        &err);
    if (!gw) {
        CB_OK(false, "a gateway: %s", err.msg);
        return cb_tap_done();
    }
    events_t killed = {.name = "killed before ready"}, restarted = {.name = "restarted"};
    kg_kernel_t *a = s_start(gw, &killed), *b = s_start(gw, &restarted);
    CB_OK(a && b && killed.ready == 1 && restarted.ready == 1, "two kernels are ready");
    if (!a || !b)
        goto done;

    /* a: its process dies before each restart is ready; the gateway restarts it each time. */
    for (int i = 0; i < KILLS; i++) {
        pid_t pid = kg_kernel_pid(a);
        if (pid <= 0 || kill(pid, SIGKILL) < 0 || s_wait(gw, &killed, KG_EVENT_RESTARTING) < 0)
            break;
        /* The new process was started in the same handler as the event: it is not ready yet. */
    }
    CB_OK(killed.restarting == KILLS && killed.ready == 1,
          "a kernel killed %d times before it was ready was restarted each time", KILLS);
    CB_OK(s_wait(gw, &killed, KG_EVENT_READY) == 0, "it became ready after the last restart");

    /* b: restarted on request, each restart waited for. */
    for (int i = 0; i < RESTARTS; i++)
        if (kg_kernel_restart(b, &err) < 0 || s_wait(gw, &restarted, KG_EVENT_READY) < 0)
            break;
    CB_OK(restarted.ready == 1 + RESTARTS,
          "a kernel restarted %d times through kg_kernel_restart is ready each time", RESTARTS);

    int died_before = killed.died + restarted.died;
    s_any_died = 0;
    int quiet = kg_gateway_run_until(gw, &s_any_died, 2 * STARTUP_MS) < 0;
    CB_OK(quiet, "no kernel died in twice the startup deadline after the restarts (%s: %s; %s: %s)",
          killed.name, killed.died > 0 ? killed.detail : "-", restarted.name,
          restarted.died > 0 ? restarted.detail : "-");
    CB_OK(killed.died + restarted.died == died_before,
          "no death, hang or DEAD event came after they were ready");
    CB_OK(s_answers(gw, a), "the kernel killed before ready answers code");
    CB_OK(s_answers(gw, b), "the kernel restarted on request answers code");
    CB_OK(kg_kernel_state(a) == KG_KERNEL_IDLE && kg_kernel_state(b) == KG_KERNEL_IDLE,
          "both are idle");

done:
    kg_gateway_destroy(&gw);
    cb_rm_rf(dir, NULL);
    return cb_tap_done();
}
