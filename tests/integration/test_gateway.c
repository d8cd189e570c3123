/* test_gateway.c: the kernel gateway against real ipykernel kernels (Debian's python3-ipykernel).
 *
 *   test_gateway basics   outputs, rich results, errors, stdin, timeout, cancel, transports
 *   test_gateway faults   kernel death, restarts and their limit, hangs, interrupts that fail,
 *                         shutdown leaving nothing behind
 *   test_gateway many     twenty kernels at once
 *
 * Every wait is on the event itself (a callback sets a flag) with a deadline; nothing sleeps.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cb/cleanup.h"
#include "cb/tap.h"
#include "cb/util.h"
#include "kg/gateway.h"
#include "kg/kernel.h"
#include "kg/execution.h"
#include "kg_run.h"

#define DEADLINE_MS 60000

/* ---- harness ----------------------------------------------------------------------------- */

typedef struct {
    int ready, died, restarting, hung, dead, stopped;
    volatile int flag; /* set on the event a test waits for */
    kg_kernel_event_t awaited;
    char last_detail[512];
} events_t;

static void s_on_event(kg_kernel_t *k, kg_kernel_event_t event, const char *detail, void *arg)
{
    events_t *ev = arg;
    int *counters[] = {[KG_EVENT_READY] = &ev->ready,
                       [KG_EVENT_DIED] = &ev->died,
                       [KG_EVENT_RESTARTING] = &ev->restarting,
                       [KG_EVENT_HUNG] = &ev->hung,
                       [KG_EVENT_DEAD] = &ev->dead,
                       [KG_EVENT_STOPPED] = &ev->stopped,
                       [KG_EVENT_STDERR] = NULL};
    if (counters[event])
        (*counters[event])++;
    if (detail && event != KG_EVENT_STDERR)
        snprintf(ev->last_detail, sizeof ev->last_detail, "%s", detail);
    if (event == ev->awaited)
        ev->flag = 1;
}

static int s_wait_event(kg_gateway_t *gw, events_t *ev, kg_kernel_event_t event)
{
    ev->flag = 0;
    ev->awaited = event;
    return kg_gateway_run_until(gw, &ev->flag, DEADLINE_MS);
}

/* Run code to completion; returns the result (caller owns) or NULL on a deadline. cancel: cancel
 * it when it first prints. */
static json_t *s_run_opts(kg_gateway_t *gw, kg_kernel_t *k, kg_execute_opts_t opts, bool cancel)
{
    tst_kg_job_t *job = calloc(1, sizeof *job); /* left to the execution on a deadline */
    job->cancel_on_print = cancel;
    if (!tst_kg_start(k, opts, job)) {
        free(job);
        return NULL;
    }
    json_t *result = tst_kg_wait(gw, job, DEADLINE_MS);
    if (result)
        free(job);
    else
        CB_DIAG("execution did not finish in time: %s", opts.code);
    return result;
}

static json_t *s_run(kg_gateway_t *gw, kg_kernel_t *k, const char *code)
{
    return s_run_opts(gw, k, (kg_execute_opts_t){.code = code}, false);
}

static const char *s_str(json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

static bool s_status_is(json_t *result, const char *status)
{
    const char *got = s_str(result, "status");
    if (!got || strcmp(got, status) != 0) {
        char *dump = result ? json_dumps(result, JSON_COMPACT) : NULL;
        CB_DIAG("expected status %s, result: %.600s", status, dump ? dump : "(none)");
        free(dump);
        return false;
    }
    return true;
}

static bool s_stdout_is(json_t *result, const char *text)
{
    const char *got = s_str(result, "stdout");
    if (!got || strcmp(got, text) != 0) {
        CB_DIAG("stdout: got '%s', want '%s'", got ? got : "(none)", text);
        return false;
    }
    return true;
}

static bool s_notes_mention(json_t *result, const char *word)
{
    size_t i;
    json_t *note;
    json_array_foreach (json_object_get(result, "notes"), i, note)
        if (strstr(json_string_value(note), word))
            return true;
    return false;
}

static kg_gateway_t *s_gateway(const char *runtime_dir, kg_config_t cfg)
{
    cfg.runtime_dir = runtime_dir;
    cb_error_t err = {0};
    kg_gateway_t *gw = kg_gateway_new(&cfg, &err);
    if (!gw)
        CB_DIAG("kg_gateway_new: %s", err.msg);
    return gw;
}

static kg_kernel_t *s_start(kg_gateway_t *gw, events_t *ev, const char *name)
{
    cb_error_t err = {0};
    kg_kernel_opts_t opts = {.kernel_name = name, .on_event = s_on_event, .arg = ev};
    kg_kernel_t *k = kg_kernel_start(gw, &opts, &err);
    if (!k) {
        CB_DIAG("kg_kernel_start: %s", err.msg);
        return NULL;
    }
    if (s_wait_event(gw, ev, KG_EVENT_READY) < 0) {
        CB_DIAG("kernel did not become ready: %s", ev->last_detail);
        return NULL;
    }
    return k;
}

static bool s_dir_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static bool s_dir_empty(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return true;
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n == 0;
}

/* Live processes whose process group is pgid (the kernel and anything it started). A zombie
 * is dead already; it only waits for its new parent to reap it. */
static int s_count_group(pid_t pgid)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    int n = 0;
    while (d && (e = readdir(d))) {
        char path[300], buf[1024];
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t len = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[len] = '\0';
        char *close_paren = strrchr(buf, ')');
        char state;
        int ppid, pgrp;
        if (close_paren && sscanf(close_paren + 2, "%c %d %d", &state, &ppid, &pgrp) == 3 &&
            pgrp == pgid && state != 'Z')
            n++;
    }
    if (d)
        closedir(d);
    return n;
}

/* Signal one process. Never pid 0 or -1 (the whole group, everything): a kernel without a
 * process is a test failure, not a reason to stop the test runner. */
static bool s_signal(pid_t pid, int sig)
{
    if (pid <= 1) {
        CB_DIAG("refusing to send signal %d to pid %ld", sig, (long)pid);
        return false;
    }
    return kill(pid, sig) == 0;
}

/* Write <dir>/kernels/<name>/kernel.json under a fresh temp dir (returned in dir, which must
 * hold "/tmp/cb-test-specs-XXXXXX") and point JUPYTER_PATH at it. */
static bool s_temp_spec(char *dir, const char *name, const char *json)
{
    if (!mkdtemp(dir))
        return false;
    cleanup_free char *spec_dir = cb_strdup_printf("%s/kernels/%s", dir, name);
    cleanup_free char *spec_file = cb_strdup_printf("%s/kernel.json", spec_dir);
    if (cb_mkdir_p(spec_dir, 0700, NULL) < 0 ||
        cb_write_file(spec_file, json, strlen(json), 0600, NULL) < 0)
        return false;
    setenv("JUPYTER_PATH", dir, 1);
    return true;
}

/* ---- basics ------------------------------------------------------------------------------ */

static void s_basics(const char *runtime_dir)
{
    kg_gateway_t *gw = s_gateway(runtime_dir, (kg_config_t){0});
    events_t ev = {0};
    kg_kernel_t *k = gw ? s_start(gw, &ev, NULL) : NULL;
    if (!CB_OK(k, "python3 kernel starts and becomes ready"))
        return;
    CB_OK(kg_kernel_state(k) == KG_KERNEL_IDLE, "ready kernel is idle");
    CB_OK(strcmp(kg_kernel_language(k), "python") == 0, "language from the kernelspec");

    json_auto_t *hello = s_run(gw, k, "print('hello, world')");
    CB_OK(s_status_is(hello, "ok") && s_stdout_is(hello, "hello, world\n"), "hello world");
    CB_OK(json_is_integer(json_object_get(hello, "execution_count")), "execution_count is set");
    CB_OK(json_is_null(json_object_get(hello, "error")), "no error on success");

    json_auto_t *streams = s_run(gw, k, "import sys\nprint('out')\nprint('err', file=sys.stderr)");
    CB_OK(s_stdout_is(streams, "out\n") && strcmp(s_str(streams, "stderr"), "err\n") == 0,
          "stdout and stderr arrive apart");

    json_auto_t *rich =
        s_run(gw, k, "from IPython.display import display\ndisplay('shown')\n40 + 2");
    json_t *results = json_object_get(rich, "results");
    json_t *r0 = json_array_get(results, 0), *r1 = json_array_get(results, 1);
    CB_OK(json_array_size(results) == 2, "display_data and execute_result both collected");
    CB_OK(r0 && json_is_false(json_object_get(r0, "is_main_result")) &&
              strcmp(s_str(json_object_get(r0, "data"), "text/plain"), "'shown'") == 0,
          "display_data is not the main result");
    CB_OK(r1 && json_is_true(json_object_get(r1, "is_main_result")) &&
              strcmp(s_str(json_object_get(r1, "data"), "text/plain"), "42") == 0,
          "execute_result is the main result");

    json_auto_t *plot = s_run(
        gw, k, "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.title('t')\nplt.show()");
    const char *png = s_str(
        json_object_get(json_array_get(json_object_get(plot, "results"), 0), "data"), "image/png");
    zchunk_t *bytes = NULL;
    if (png) {
        zarmour_t *armour = zarmour_new();
        zarmour_set_mode(armour, ZARMOUR_MODE_BASE64_STD);
        cleanup_free char *compact = strdup(png);
        char *w = compact;
        for (const char *p = png; *p; p++)
            if (*p != '\n')
                *w++ = *p;
        *w = '\0';
        bytes = zarmour_decode(armour, compact);
        zarmour_destroy(&armour);
    }
    CB_OK(bytes && zchunk_size(bytes) > 1000 &&
              memcmp(zchunk_data(bytes), "\x89PNG\r\n\x1a\n", 8) == 0,
          "a matplotlib plot arrives as image/png that decodes to a PNG");
    zchunk_destroy(&bytes);

    json_auto_t *upd = s_run(gw, k, "h = display('first', display_id=True)\nh.update('second')");
    json_t *u0 = json_array_get(json_object_get(upd, "results"), 0);
    CB_OK(u0 && strcmp(s_str(json_object_get(u0, "data"), "text/plain"), "'second'") == 0 &&
              json_is_string(json_object_get(u0, "display_id")),
          "update_display_data replaces the output with the same display_id");

    json_auto_t *cleared = s_run(gw, k,
                                 "from IPython.display import clear_output\nprint('gone')\n"
                                 "clear_output()\nprint('kept')");
    CB_OK(s_stdout_is(cleared, "kept\n"), "clear_output clears what came before");
    json_auto_t *waited = s_run(gw, k, "print('old')\nclear_output(wait=True)\nprint('new')");
    CB_OK(s_stdout_is(waited, "new\n"), "clear_output(wait=True) clears at the next output");

    /* Output beyond the caps is dropped, with a note, and the kernel carries on. */
    json_auto_t *flood = s_run(gw, k,
                               "from IPython.display import display\nblob = 'x' * (8 << 20)\n"
                               "for _ in range(10): display({'text/plain': blob}, raw=True)\n"
                               "print('y' * (20 << 20))");
    CB_OK(s_status_is(flood, "ok") && json_array_size(json_object_get(flood, "results")) == 8 &&
              strlen(s_str(flood, "stdout")) == (16u << 20) && s_notes_mention(flood, "dropped"),
          "rich results stop at 64 MiB and stdout at 16 MiB, with notes");

    json_auto_t *err = s_run(gw, k, "x = 1\n1 / 0");
    json_t *e = json_object_get(err, "error");
    CB_OK(s_status_is(err, "error"), "an exception gives status error");
    CB_OK(e && strcmp(s_str(e, "ename"), "ZeroDivisionError") == 0 &&
              strcmp(s_str(e, "evalue"), "division by zero") == 0 &&
              json_array_size(json_object_get(e, "traceback")) > 0,
          "the error has name, value and traceback");

    json_auto_t *in = s_run_opts(
        gw, k,
        (kg_execute_opts_t){.code = "n = input('who? ')\nprint('hi', n)", .stdin_text = "ada\n"},
        false);
    CB_OK(s_status_is(in, "ok") && s_stdout_is(in, "hi ada\n"),
          "input() answered from the supplied stdin");
    json_auto_t *two = s_run_opts(
        gw, k,
        (kg_execute_opts_t){.code = "a = input()\nb = input()\nprint(a + b)", .stdin_text = "1\n2"},
        false);
    CB_OK(s_status_is(two, "ok") && s_stdout_is(two, "12\n"), "each input() takes the next line");
    json_auto_t *none = s_run(gw, k, "input('name? ')");
    CB_OK(s_status_is(none, "error") &&
              strcmp(s_str(json_object_get(none, "error"), "ename"), "StdinNotImplementedError") ==
                  0 &&
              s_notes_mention(none, "stdin"),
          "input() without a supplied value fails clearly");
    json_auto_t *short_in = s_run_opts(
        gw, k, (kg_execute_opts_t){.code = "a = input()\nb = input()", .stdin_text = "only one"},
        false);
    CB_OK(s_status_is(short_in, "error") &&
              strcmp(s_str(json_object_get(short_in, "error"), "ename"), "StdinNotProvided") == 0,
          "asking for more input than supplied fails clearly");
    json_auto_t *after_in = s_run(gw, k, "print(x)");
    CB_OK(s_stdout_is(after_in, "1\n"), "the kernel keeps working after stdin failures");

    int64_t t0 = cb_now_ms();
    json_auto_t *loop = s_run_opts(
        gw, k, (kg_execute_opts_t){.code = "while True: pass", .timeout_ms = 2000}, false);
    int64_t took = cb_now_ms() - t0;
    CB_OK(s_status_is(loop, "timeout") && s_notes_mention(loop, "timed out"),
          "a busy loop times out");
    CB_OK(json_is_false(json_object_get(loop, "kernel_restarted")),
          "the interrupt took: no restart");
    CB_DIAG("timeout returned after %lld ms", (long long)took);
    json_auto_t *kept = s_run(gw, k, "print(x, n)");
    CB_OK(s_stdout_is(kept, "1 ada\n"), "the kernel keeps its variables after the timeout");

    json_auto_t *cancelled = s_run_opts(
        gw, k,
        (kg_execute_opts_t){
            .code =
                "import time\nprint('started', flush=True)\nfor _ in range(600): time.sleep(0.1)"},
        true);
    CB_OK(s_status_is(cancelled, "cancelled"), "cancelling a running execution interrupts it");
    json_auto_t *kept2 = s_run(gw, k, "print(x)");
    CB_OK(s_status_is(kept2, "ok") && s_stdout_is(kept2, "1\n"),
          "the kernel keeps its variables after a cancel");

    /* Executions queue in order; a queued one can be cancelled before it starts. */
    tst_kg_job_t a = {0}, b = {0}, c = {0};
    tst_kg_start(k, (kg_execute_opts_t){.code = "import time; time.sleep(0.3); q = [1]"}, &a);
    kg_execution_t *xb = tst_kg_start(k, (kg_execute_opts_t){.code = "q.append(2)"}, &b);
    tst_kg_start(k, (kg_execute_opts_t){.code = "q.append(3); print(q)"}, &c);
    json_auto_t *snap = xb ? kg_execution_snapshot(xb) : NULL;
    CB_OK(snap && strcmp(s_str(snap, "status"), "queued") == 0,
          "a waiting execution reports queued");
    CB_OK(xb && kg_execution_cancel(xb, NULL) == 0 && b.done && s_status_is(b.result, "cancelled"),
          "a queued execution cancels at once");
    kg_gateway_run_until(gw, &c.done, DEADLINE_MS);
    CB_OK(a.done && s_status_is(c.result, "ok") && s_stdout_is(c.result, "[1, 3]\n"),
          "queued executions run in order, without the cancelled one");
    json_decref(a.result);
    json_decref(b.result);
    json_decref(c.result);

    const char *run_dir = kg_kernel_run_dir(k);
    cleanup_free char *conn = cb_strdup_printf("%s/connection.json", run_dir);
    struct stat st;
    CB_OK(stat(conn, &st) == 0 && (st.st_mode & 0777) == 0600, "connection file is mode 0600");
    cleanup_free char *conn_text = cb_read_file(conn, 1 << 16, NULL, NULL);
    CB_OK(conn_text && strstr(conn_text, "\"transport\": \"ipc\""), "ipc transport by default");
    kg_gateway_destroy(&gw);
    CB_OK(s_dir_empty(runtime_dir), "destroying the gateway leaves no run dir");

    /* tcp on loopback, and interrupt_mode "message" (a kernelspec made for the test). */
    char specs[] = "/tmp/cb-test-specs-XXXXXX";
    CB_OK(
        s_temp_spec(specs, "py-msg",
                    "{\"argv\": [\"/usr/bin/python3\", \"-m\", \"ipykernel_launcher\", \"-f\", "
                    "\"{connection_file}\"], \"display_name\": \"msg\", \"language\": \"python\", "
                    "\"interrupt_mode\": \"message\", \"env\": {\"CB_TEST_MARK\": \"from-spec\"}}"),
        "temp kernelspec dir");
    /* tcp cannot reach into a sandbox (its own loopback): this kernel runs unsandboxed. */
    gw = s_gateway(runtime_dir, (kg_config_t){.transport = JP_TRANSPORT_TCP, .no_sandbox = true});
    events_t ev2 = {0};
    k = gw ? s_start(gw, &ev2, "py-msg") : NULL;
    CB_OK(k, "a kernel starts over tcp with interrupt_mode message");
    if (k) {
        cleanup_free char *tcp_conn_path =
            cb_strdup_printf("%s/connection.json", kg_kernel_run_dir(k));
        cleanup_free char *tcp_conn = cb_read_file(tcp_conn_path, 1 << 16, NULL, NULL);
        CB_OK(tcp_conn && strstr(tcp_conn, "\"transport\": \"tcp\"") &&
                  strstr(tcp_conn, "127.0.0.1"),
              "tcp transport binds loopback");
        json_auto_t *env = s_run(gw, k, "import os\ny = 5\nprint(os.environ['CB_TEST_MARK'])");
        CB_OK(s_stdout_is(env, "from-spec\n"), "the kernelspec's env reaches the kernel");
        json_auto_t *t = s_run_opts(
            gw, k, (kg_execute_opts_t){.code = "while True: pass", .timeout_ms = 1000}, false);
        CB_OK(s_status_is(t, "timeout") && json_is_false(json_object_get(t, "kernel_restarted")),
              "interrupt_request on control stops a busy loop");
        json_auto_t *y = s_run(gw, k, "print(y)");
        CB_OK(s_stdout_is(y, "5\n"), "state kept after a message-mode interrupt");
    }
    kg_gateway_destroy(&gw);
    unsetenv("JUPYTER_PATH");
    cb_rm_rf(specs, NULL);
}

/* ---- faults ------------------------------------------------------------------------------ */

static void s_faults(const char *runtime_dir)
{
    /* A short heartbeat so a hang is found in seconds, with enough misses allowed (10 s) that a
     * heavily loaded test machine rarely looks hung. Should it anyway, nothing below depends on
     * it: events are counted from what came before each step, and the restart limit is found
     * by killing the kernel until it is dead, whatever deaths came first. */
    enum { RESTART_LIMIT = 4 };
    kg_gateway_t *gw = s_gateway(runtime_dir, (kg_config_t){.interrupt_grace_ms = 1000,
                                                            .heartbeat_ms = 250,
                                                            .heartbeat_misses = 40,
                                                            .restart_limit = RESTART_LIMIT});
    events_t ev = {0};
    kg_kernel_t *k = gw ? s_start(gw, &ev, NULL) : NULL;
    if (!CB_OK(k, "kernel ready"))
        return;
    json_auto_t *set = s_run(gw, k, "kept = 7");
    pid_t first_pid = kg_kernel_pid(k);
    int died_before = ev.died, restarts_before = kg_kernel_restart_count(k);

    /* Death: os._exit(1). READY is expected from before the call: the restart may be quick. */
    ev.flag = 0;
    ev.awaited = KG_EVENT_READY;
    json_auto_t *died = s_run(gw, k, "import os\nos._exit(1)");
    CB_OK(s_status_is(died, "kernel_died") && s_notes_mention(died, "exited with code 1"),
          "os._exit(1) is reported as kernel death with the exit code");
    CB_OK(ev.died == died_before + 1, "a DIED event was sent");
    CB_OK(ev.flag || kg_gateway_run_until(gw, &ev.flag, DEADLINE_MS) == 0,
          "the kernel is restarted automatically");
    CB_OK(kg_kernel_pid(k) != first_pid && kg_kernel_restart_count(k) == restarts_before + 1,
          "a new process, one restart");
    CB_OK(first_pid > 1 && kill(first_pid, 0) < 0 && errno == ESRCH, "the dead process was reaped");
    json_auto_t *after = s_run(gw, k, "print('kept' in globals())");
    CB_OK(s_status_is(after, "ok") && s_stdout_is(after, "False\n"), "the next execution works");
    CB_OK(json_is_true(json_object_get(after, "kernel_restarted")) &&
              s_notes_mention(after, "died"),
          "and says the state was lost, and why");

    /* An interrupt that does not take: the kernel is restarted after the grace period. The
     * interrupt (a cancel, which takes the same path as a timeout) is sent once the cell says
     * it ignores SIGINT: a timer could fire before the cell got that far on a busy machine,
     * and the interrupt would then take. */
    json_auto_t *stubborn = s_run_opts(
        gw, k,
        (kg_execute_opts_t){.code = "import signal\nsignal.signal(signal.SIGINT, "
                                    "signal.SIG_IGN)\nprint('ignoring SIGINT', flush=True)\n"
                                    "while True: pass"},
        true);
    CB_OK(s_status_is(stubborn, "cancelled") &&
              json_is_true(json_object_get(stubborn, "kernel_restarted")) &&
              s_notes_mention(stubborn, "restarted"),
          "an interrupt that does not take ends in a restart, and says so");
    json_auto_t *fresh = s_run(gw, k, "print('fresh')");
    CB_OK(s_status_is(fresh, "ok") && s_stdout_is(fresh, "fresh\n") &&
              json_is_true(json_object_get(fresh, "kernel_restarted")),
          "the kernel works after that restart");

    /* A manual restart. */
    json_auto_t *set2 = s_run(gw, k, "z = 1");
    CB_OK(kg_kernel_restart(k, NULL) == 0 && s_wait_event(gw, &ev, KG_EVENT_READY) == 0,
          "kg_kernel_restart restarts the kernel");
    json_auto_t *gone = s_run(gw, k, "print('z' in globals())");
    CB_OK(s_stdout_is(gone, "False\n") && json_is_true(json_object_get(gone, "kernel_restarted")) &&
              s_notes_mention(gone, "on request"),
          "after a manual restart the state is gone and the result says so");

    /* A hung kernel (stopped by SIGSTOP) misses heartbeats and is killed and restarted. */
    int hung_before = ev.hung;
    CB_OK(s_signal(kg_kernel_pid(k), SIGSTOP) && s_wait_event(gw, &ev, KG_EVENT_READY) == 0 &&
              ev.hung > hung_before,
          "a kernel that stops answering heartbeats is restarted");
    json_auto_t *alive = s_run(gw, k, "print('alive')");
    CB_OK(s_stdout_is(alive, "alive\n"), "and works again");

    /* The restart limit: every death in the window so far (os._exit, the hang, any false hang)
     * took one restart; SIGKILL it until it is dead. The death past the limit is the last. */
    pid_t pid = 0;
    for (int kills = 0; kills <= RESTART_LIMIT && kg_kernel_state(k) != KG_KERNEL_DEAD; kills++) {
        pid = kg_kernel_pid(k);
        ev.flag = 0;
        ev.awaited = KG_EVENT_DIED;
        if (!s_signal(pid, SIGKILL) ||
            (!ev.flag && kg_gateway_run_until(gw, &ev.flag, DEADLINE_MS) < 0))
            break;
        if (kg_kernel_state(k) != KG_KERNEL_DEAD && !kg_kernel_is_ready(k))
            s_wait_event(gw, &ev, KG_EVENT_READY);
    }
    CB_OK(kg_kernel_state(k) == KG_KERNEL_DEAD && ev.dead == 1 && ev.died == RESTART_LIMIT + 1,
          "past the restart limit the kernel is dead: %d deaths, %d restarted (%s)", ev.died,
          RESTART_LIMIT, ev.last_detail);
    cb_error_t err = {0};
    CB_OK(!kg_execute(k, &(kg_execute_opts_t){.code = "1"}, &err) && err.kind == CB_ERR_KERNEL_DEAD,
          "executing on a dead kernel fails clearly: %s", err.msg);
    CB_OK(kg_kernel_restart(k, &err) == 0 && s_wait_event(gw, &ev, KG_EVENT_READY) == 0,
          "a dead kernel can still be restarted by hand");

    /* Shutdown leaves no process, no zombie and no file. */
    pid = kg_kernel_pid(k);
    json_auto_t *child =
        s_run(gw, k, "import subprocess\np = subprocess.Popen(['sleep', '600'])\nprint(p.pid)");
    pid_t grandchild = child ? (pid_t)atoi(s_str(child, "stdout")) : 0;
    cleanup_free char *run_dir = strdup(kg_kernel_run_dir(k));
    CB_OK(pid > 1 && s_count_group(pid) >= 2, "kernel and its child share a process group");
    kg_kernel_shutdown(k);
    CB_OK(s_wait_event(gw, &ev, KG_EVENT_STOPPED) == 0, "shutdown completes");
    CB_OK(pid > 1 && kill(pid, 0) < 0 && errno == ESRCH, "the kernel process is gone and reaped");
    CB_OK(grandchild > 0 && s_count_group(pid) == 0, "processes the kernel started are gone too");
    CB_OK(!s_dir_exists(run_dir), "the run dir (connection file, sockets) is removed");
    CB_OK(kg_gateway_kernel_count(gw) == 0, "the gateway holds no kernel");
    const kg_counters_t *c = kg_gateway_counters(gw);
    CB_OK(c->bad_signatures == 0 && c->malformed_messages == 0,
          "a real kernel sends only valid frames");
    kg_gateway_destroy(&gw);

    /* A kernel that cannot start is reported, not retried forever. */
    char specs[] = "/tmp/cb-test-specs-XXXXXX";
    CB_OK(s_temp_spec(specs, "broken",
                      "{\"argv\": [\"/usr/bin/python3\", \"-c\", \"import sys; print('no kernel "
                      "here', file=sys.stderr); sys.exit(3)\", \"{connection_file}\"], "
                      "\"display_name\": \"broken\", \"language\": \"python\"}"),
          "temp kernelspec dir");
    gw = s_gateway(runtime_dir, (kg_config_t){0});
    events_t ev2 = {0};
    kg_kernel_t *broken = kg_kernel_start(
        gw, &(kg_kernel_opts_t){.kernel_name = "broken", .on_event = s_on_event, .arg = &ev2},
        NULL);
    CB_OK(broken && s_wait_event(gw, &ev2, KG_EVENT_DEAD) == 0 && ev2.restarting == 0 &&
              strstr(ev2.last_detail, "exited with code 3"),
          "a kernel that exits during startup is dead at once: %s", ev2.last_detail);
    CB_OK(!kg_kernel_start(gw, &(kg_kernel_opts_t){.kernel_name = "nonexistent"}, &err) &&
              err.kind == CB_ERR_NOT_FOUND && strstr(err.msg, "available"),
          "an unknown kernel name is refused with the names available: %s", err.msg);
    kg_gateway_destroy(&gw);
    unsetenv("JUPYTER_PATH");
    cb_rm_rf(specs, NULL);
    CB_OK(s_dir_empty(runtime_dir), "nothing left in the runtime dir");
}

/* ---- many -------------------------------------------------------------------------------- */

#define N_KERNELS 20

static void s_many(const char *runtime_dir)
{
    kg_gateway_t *gw = s_gateway(runtime_dir, (kg_config_t){0});
    if (!gw)
        return;
    events_t ev[N_KERNELS] = {0};
    kg_kernel_t *k[N_KERNELS] = {0};
    int started = 0;
    for (int i = 0; i < N_KERNELS; i++) {
        k[i] =
            kg_kernel_start(gw, &(kg_kernel_opts_t){.on_event = s_on_event, .arg = &ev[i]}, NULL);
        started += k[i] != NULL;
    }
    CB_OK(started == N_KERNELS, "%d kernels started at once", started);
    /* Queue a cell on every kernel before any is ready; all run concurrently. */
    tst_kg_job_t r[N_KERNELS] = {0};
    char code[N_KERNELS][64];
    for (int i = 0; i < N_KERNELS; i++) {
        snprintf(code[i], sizeof code[i], "import os\nprint(%d, os.getpid())", i);
        if (k[i])
            tst_kg_start(k[i], (kg_execute_opts_t){.code = code[i]}, &r[i]);
    }
    int64_t t0 = cb_now_ms();
    int ok = 0;
    for (int i = 0; i < N_KERNELS; i++) {
        kg_gateway_run_until(gw, &r[i].done, 120000);
        char want[16];
        int n = snprintf(want, sizeof want, "%d ", i);
        const char *out = s_str(r[i].result, "stdout");
        ok += out && strncmp(out, want, (size_t)n) == 0 &&
              strcmp(s_str(r[i].result, "status"), "ok") == 0;
        json_decref(r[i].result);
    }
    CB_OK(ok == N_KERNELS, "all %d kernels ran their cell (%d ok) in %lld ms", N_KERNELS, ok,
          (long long)(cb_now_ms() - t0));
    CB_OK(kg_gateway_kernel_count(gw) == N_KERNELS, "the gateway holds %d kernels", N_KERNELS);
    pid_t pids[N_KERNELS];
    for (int i = 0; i < N_KERNELS; i++)
        pids[i] = k[i] ? kg_kernel_pid(k[i]) : 0;
    kg_gateway_destroy(&gw);
    int alive = 0;
    for (int i = 0; i < N_KERNELS; i++)
        alive += pids[i] > 1 && kill(pids[i], 0) == 0;
    CB_OK(alive == 0, "destroying the gateway stops every kernel (%d left)", alive);
    CB_OK(s_dir_empty(runtime_dir), "and removes every run dir");
}

int main(int argc, char **argv)
{
    const char *group = argc > 1 ? argv[1] : "basics";
    if (access("/usr/bin/python3", X_OK) < 0)
        CB_SKIP_ALL("no /usr/bin/python3");
    char runtime_dir[] = "/tmp/cb-test-rt-XXXXXX";
    if (!mkdtemp(runtime_dir))
        CB_SKIP_ALL("cannot make a temp dir");
    if (strcmp(group, "basics") == 0)
        s_basics(runtime_dir);
    else if (strcmp(group, "faults") == 0)
        s_faults(runtime_dir);
    else if (strcmp(group, "many") == 0)
        s_many(runtime_dir);
    else
        CB_OK(0, "unknown group '%s'", group);
    cb_rm_rf(runtime_dir, NULL);
    return cb_tap_done();
}
