/* test_sandboxed.c: the gateway's sandboxes end to end: kernels and shell commands running in real
 * sandboxes (user, pid, mount, net namespaces and a cgroup), and the workspace file calls.
 *
 *   test_sandboxed kernels    identity and environment inside, a sandbox shared by two kernels,
 *                             timeout, out of memory next to a healthy sandbox, rich results,
 *                             destroying a sandbox under a busy kernel
 *   test_sandboxed commands   exit codes, streams, stdin, cwd, env, timeout, background commands,
 *                             kill, background jobs of quick shells, streaming, missing programs,
 *                             invalid UTF-8, out of memory
 *   test_sandboxed files      write, list, mkdir, remove, planted symlinks, paths outside, 2 MiB
 *   test_sandboxed held_pipes a process left behind by a dead kernel or an ended command holds
 *                             (or keeps writing into) the output pipe: the gateway stays quick
 *                             for another sandbox and spends little CPU meanwhile
 *
 * One gateway per run, destroyed by main on every path. Every wait is on the event itself (a
 * callback sets a flag) with a deadline; nothing sleeps. The one poll (how many sleep processes
 * a sandbox holds) asks again until the answer comes or its deadline passes. A timeout is waited
 * for inside one kg_gateway_run_until call, since each call starts the loop's timers afresh.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cb/cleanup.h"
#include "cb/tap.h"
#include "cb/util.h"
#include "kg/gateway.h"
#include "kg/sandbox.h"
#include "kg/kernel.h"
#include "kg/execution.h"
#include "kg/command.h"
#include "kg_run.h"

#define DEADLINE_MS 60000
#define SECRET_VAR "CELLBLOCK_HOST_SECRET"
#define QUICK_RUNS 100 /* tries of a race that loses only sometimes */

/* ---- kernels: events and executions ------------------------------------------------------ */

typedef struct {
    int ready, died, stopped;
    volatile int flag; /* set on the awaited event */
    kg_kernel_event_t awaited;
    char died_detail[512];
} events_t;

static void s_on_event(kg_kernel_t *k, kg_kernel_event_t event, const char *detail, void *arg)
{
    events_t *ev = arg;
    ev->ready += event == KG_EVENT_READY;
    ev->stopped += event == KG_EVENT_STOPPED;
    if (event == KG_EVENT_DIED) {
        ev->died++;
        snprintf(ev->died_detail, sizeof ev->died_detail, "%s", detail ? detail : "");
    }
    if (event == ev->awaited)
        ev->flag = 1;
}

/* Wait for an event in two steps, so an event that may come during a call is not missed:
 * s_expect before the call, s_await after it (returns at once when it came already). */
static void s_expect(events_t *ev, kg_kernel_event_t event)
{
    ev->flag = 0;
    ev->awaited = event;
}

static int s_await(kg_gateway_t *gw, events_t *ev, int timeout_ms)
{
    return kg_gateway_run_until(gw, &ev->flag, timeout_ms);
}

/* Start a kernel (sb NULL: a sandbox of its own) without waiting; READY is expected. */
static kg_kernel_t *s_start(kg_gateway_t *gw, events_t *ev, kg_sandbox_t *sb)
{
    cb_error_t err = {0};
    s_expect(ev, KG_EVENT_READY);
    kg_kernel_t *k = kg_kernel_start(
        gw, &(kg_kernel_opts_t){.sandbox = sb, .on_event = s_on_event, .arg = ev}, &err);
    if (!k)
        CB_DIAG("kg_kernel_start: %s", err.msg);
    return k;
}

static bool s_ready(kg_gateway_t *gw, kg_kernel_t *k, events_t *ev)
{
    return k && s_await(gw, ev, DEADLINE_MS) == 0;
}

static kg_execution_t *s_queue(kg_kernel_t *k, const char *code, int timeout_ms, tst_kg_job_t *job)
{
    return tst_kg_start(k, (kg_execute_opts_t){.code = code, .timeout_ms = timeout_ms}, job);
}

/* Run code to completion inside one run_until. Caller owns return value; NULL on a deadline. */
static json_t *s_run_timeout(kg_gateway_t *gw, kg_kernel_t *k, const char *code, int timeout_ms)
{
    return tst_kg_run(gw, k, code, timeout_ms, DEADLINE_MS);
}

static json_t *s_run(kg_gateway_t *gw, kg_kernel_t *k, const char *code)
{
    return s_run_timeout(gw, k, code, 0);
}

/* ---- results ----------------------------------------------------------------------------- */

static const char *s_str(json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

static bool s_str_is(json_t *obj, const char *key, const char *want)
{
    const char *got = s_str(obj, key);
    if (got && strcmp(got, want) == 0)
        return true;
    char *dump = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    CB_DIAG("%s: want '%s', result: %.800s", key, want, dump ? dump : "(none)");
    free(dump);
    return false;
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

/* data of results[i], or NULL. Borrowed; valid with result. */
static json_t *s_data(json_t *result, size_t i)
{
    return json_object_get(json_array_get(json_object_get(result, "results"), i), "data");
}

static bool s_is_png(const char *b64)
{
    if (!b64)
        return false;
    cleanup_free char *compact = strdup(b64);
    char *w = compact;
    for (const char *p = b64; *p; p++)
        if (*p != '\n')
            *w++ = *p;
    *w = '\0';
    zarmour_t *armour = zarmour_new();
    zarmour_set_mode(armour, ZARMOUR_MODE_BASE64_STD);
    zchunk_t *bytes = zarmour_decode(armour, compact);
    zarmour_destroy(&armour);
    bool ok = bytes && zchunk_size(bytes) > 1000 &&
              memcmp(zchunk_data(bytes), "\x89PNG\r\n\x1a\n", 8) == 0;
    zchunk_destroy(&bytes);
    return ok;
}

/* rc of a call that should succeed; its error goes to the TAP output when it did not. */
static bool s_fine(int rc, const cb_error_t *err)
{
    if (rc < 0)
        CB_DIAG("failed: %s", err->msg);
    return rc == 0;
}

static bool s_gone(pid_t pid) { return pid > 1 && kill(pid, 0) < 0 && errno == ESRCH; }

static kg_sandbox_t *s_sandbox(kg_gateway_t *gw, uint64_t memory_mb)
{
    cb_error_t err = {0};
    kg_sandbox_t *sb = kg_sandbox_create(gw, &(kg_sandbox_limits_t){.memory_mb = memory_mb}, &err);
    if (!sb)
        CB_DIAG("kg_sandbox_create: %s", err.msg);
    return sb;
}

/* ---- kernels ----------------------------------------------------------------------------- */

/* A kernel that outlives the test function stops reporting to its events_t on that stack (the
 * gateway's teardown would otherwise write its STOPPED event into a frame that is gone). */
static void s_unhook(kg_kernel_t *k)
{
    if (k)
        kg_kernel_set_events(k, NULL, NULL);
}

static void s_kernels(kg_gateway_t *gw)
{
    /* Four kernels start side by side: one in a sandbox of its own, two sharing one, one in a
     * sandbox with 300 MiB of memory. */
    kg_sandbox_t *shared = s_sandbox(gw, 0), *small = s_sandbox(gw, 300);
    /* Static: k1 and k4 live on after this function, until the gateway is destroyed, and report
     * their STOPPED events here then (ASan saw them written to a dead stack frame). */
    static events_t ev1, ev2, ev3, ev4;
    kg_kernel_t *k1 = s_start(gw, &ev1, NULL);
    kg_kernel_t *k2 = shared ? s_start(gw, &ev2, shared) : NULL;
    kg_kernel_t *k3 = shared ? s_start(gw, &ev3, shared) : NULL;
    kg_kernel_t *k4 = small ? s_start(gw, &ev4, small) : NULL;
    bool up1 = s_ready(gw, k1, &ev1), up2 = s_ready(gw, k2, &ev2), up3 = s_ready(gw, k3, &ev3),
         up4 = s_ready(gw, k4, &ev4);
    if (!CB_OK(up1 && up2 && up3 && up4, "four sandboxed kernels become ready (%d %d %d %d)", up1,
               up2, up3, up4)) {
        s_unhook(k1), s_unhook(k2), s_unhook(k3), s_unhook(k4);
        return;
    }

    /* (a) A kernel with no sandbox option runs sandboxed. */
    json_auto_t *who = s_run(gw, k1,
                             "import os, socket; print(os.getuid(), socket.gethostname(), "
                             "os.getcwd(), sorted(os.environ))\nprint(os.environ.get('HOME'))");
    const char *out = s_str(who, "stdout");
    CB_OK(s_str_is(who, "status", "ok") && out &&
              strncmp(out, "1000 sandbox /home/user [", 25) == 0,
          "uid 1000, hostname sandbox, cwd /home/user: %.120s", out ? out : "(none)");
    CB_OK(out && strstr(out, "'HOME'") && !strstr(out, SECRET_VAR),
          "no host variable reaches the kernel");
    CB_OK(out && strstr(out, "]\n/home/user\n"), "HOME=/home/user");

    /* (b) Two kernels in one sandbox share its workspace. */
    json_auto_t *wrote =
        s_run(gw, k2, "with open('/home/user/shared.txt', 'w') as f: f.write('from k2')");
    json_auto_t *read = s_run(gw, k3, "print(open('/home/user/shared.txt').read())");
    CB_OK(s_str_is(wrote, "status", "ok") && s_str_is(read, "stdout", "from k2\n"),
          "a file one kernel writes is read by the other");
    cb_buf_t buf = {0};
    cb_error_t err = {0};
    int rc = kg_sandbox_file_read(shared, "/home/user/shared.txt", 1 << 20, &buf, &err);
    CB_OK(rc == 0 && strcmp(cb_buf_str(&buf), "from k2") == 0, "the host reads it too (%s)",
          rc ? err.msg : cb_buf_str(&buf));
    cb_buf_free(&buf);
    json_auto_t *info = kg_sandbox_info(shared);
    json_t *ids = json_object_get(info, "kernels");
    bool has2 = false, has3 = false;
    size_t i;
    json_t *id;
    json_array_foreach (ids, i, id) {
        has2 |= json_is_string(id) && strcmp(json_string_value(id), kg_kernel_id(k2)) == 0;
        has3 |= json_is_string(id) && strcmp(json_string_value(id), kg_kernel_id(k3)) == 0;
    }
    CB_OK(has2 && has3 && json_array_size(ids) == 2, "kg_sandbox_info lists both kernels");

    /* (c) An execution timeout stops a busy loop. */
    int64_t t0 = cb_now_ms();
    json_auto_t *loop = s_run_timeout(gw, k1, "while True: pass", 2000);
    int64_t took = cb_now_ms() - t0;
    CB_OK(s_str_is(loop, "status", "timeout"), "a busy loop times out after 2 s");
    CB_DIAG("the timeout returned after %lld ms", (long long)took); /* a timing: never pass/fail */
    CB_DIAG("the timed-out kernel was %s",
            json_is_true(json_object_get(loop, "kernel_restarted")) ? "restarted" : "interrupted");
    json_auto_t *next = s_run(gw, k1, "print(1+1)");
    CB_OK(s_str_is(next, "stdout", "2\n"), "the next execution works");

    /* (d) Out of memory kills the kernel of the small sandbox, and nothing else. */
    int restarts1 = kg_kernel_restart_count(k1);
    s_expect(&ev4, KG_EVENT_DIED);
    json_auto_t *oom = s_run(gw, k4, "b = b'x' * (20 * 1024**3)");
    if (!ev4.flag)
        s_await(gw, &ev4, 10000);
    CB_OK(s_str_is(oom, "status", "kernel_died"), "filling 300 MiB kills the kernel");
    CB_OK(s_notes_mention(oom, "out of memory") || strstr(ev4.died_detail, "out of memory"),
          "and says it ran out of memory (DIED: '%s')", ev4.died_detail);
    json_auto_t *usage = kg_sandbox_info(small);
    json_int_t kills =
        json_integer_value(json_object_get(json_object_get(usage, "usage"), "oom_kills"));
    CB_OK(kills >= 1, "the sandbox counts the OOM kill (%lld)", (long long)kills);
    json_auto_t *two = s_run(gw, k1, "print(2)");
    CB_OK(s_str_is(two, "stdout", "2\n") && kg_kernel_restart_count(k1) == restarts1,
          "a kernel in another sandbox keeps working");

    /* (e) Rich results in a sandbox. */
    json_auto_t *plot =
        s_run(gw, k1, "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.show()");
    CB_OK(s_is_png(s_str(s_data(plot, 0), "image/png")),
          "a matplotlib figure arrives as image/png");
    json_auto_t *df =
        s_run(gw, k1, "import pandas as pd\npd.DataFrame({'a': [1, 2], 'b': [3, 4]})");
    const char *html = s_str(s_data(df, 0), "text/html");
    CB_OK(html && strstr(html, "<table"), "a pandas DataFrame arrives as text/html");

    /* (f) Destroying a sandbox under a busy kernel cancels its work and leaves no process. */
    pid_t pid2 = kg_kernel_pid(k2), pid3 = kg_kernel_pid(k3);
    char id2[64];
    snprintf(id2, sizeof id2, "%s", kg_kernel_id(k2));
    tst_kg_job_t busy = {0}, queued = {0};
    s_queue(k2, "import time\nprint('sleeping', flush=True)\ntime.sleep(600)", 0, &busy);
    s_queue(k2, "print('never')", 0, &queued);
    CB_OK(kg_gateway_run_until(gw, &busy.printed, DEADLINE_MS) == 0,
          "the kernel is busy in the sandbox");
    s_expect(&ev2, KG_EVENT_STOPPED);
    s_expect(&ev3, KG_EVENT_STOPPED);
    kg_sandbox_destroy(&shared);
    bool gone = s_gone(pid2) && s_gone(pid3); /* right after destroy returns */
    CB_OK(!shared, "kg_sandbox_destroy nulls the pointer");
    CB_OK(gone, "the kernels' processes are gone when destroy returns (pids %d %d)", (int)pid2,
          (int)pid3);
    bool stopped =
        (ev2.flag || s_await(gw, &ev2, 10000) == 0) && (ev3.flag || s_await(gw, &ev3, 10000) == 0);
    CB_OK(stopped && ev2.stopped == 1 && ev3.stopped == 1, "each kernel's STOPPED event fires");
    bool ended = (busy.done || kg_gateway_run_until(gw, &busy.done, 10000) == 0) &&
                 (queued.done || kg_gateway_run_until(gw, &queued.done, 10000) == 0);
    CB_OK(ended && s_str_is(busy.result, "status", "cancelled") &&
              s_str_is(queued.result, "status", "cancelled"),
          "the running and the queued execution end as cancelled");
    CB_OK(!kg_gateway_kernel(gw, id2), "the gateway no longer knows the kernel");
    json_decref(busy.result);
    json_decref(queued.result);
    s_unhook(k1), s_unhook(k4); /* k2 and k3 went with their sandbox */
}

/* ---- commands ---------------------------------------------------------------------------- */

typedef struct {
    volatile int done;
    volatile int got_output;
    json_t *result;
    int calls[2];        /* on_output calls per stream: stdout, stderr */
    cb_buf_t streams[2]; /* what on_output delivered */
    int calls_at_done;
    int64_t first_output_ms, done_ms;
} cmd_t;

static void s_cmd_clear(cmd_t *c)
{
    json_decref(c->result);
    cb_buf_free(&c->streams[0]);
    cb_buf_free(&c->streams[1]);
}
#define cmd_auto __attribute__((cleanup(s_cmd_clear)))

static void s_cmd_on_output(kg_command_t *cmd, const char *stream, const char *data, size_t len,
                            void *arg)
{
    cmd_t *c = arg;
    int which = strcmp(stream, "stderr") == 0;
    if (strcmp(stream, "stdout") != 0 && !which) {
        CB_DIAG("on_output with unknown stream '%s'", stream);
        return;
    }
    if (!c->calls[0] && !c->calls[1])
        c->first_output_ms = cb_now_ms();
    c->calls[which]++;
    cb_buf_append(&c->streams[which], data, len);
    c->got_output = 1;
}

static void s_cmd_on_done(kg_command_t *cmd, json_t *result, void *arg)
{
    cmd_t *c = arg;
    c->result = json_incref(result);
    c->calls_at_done = c->calls[0] + c->calls[1];
    c->done_ms = cb_now_ms();
    c->done = 1;
}

static kg_command_t *s_cmd_start(kg_sandbox_t *sb, kg_command_opts_t opts, cmd_t *c)
{
    cb_error_t err = {0};
    opts.on_output = s_cmd_on_output;
    opts.on_done = s_cmd_on_done;
    opts.arg = c;
    kg_command_t *cmd = sb ? kg_command_start(sb, &opts, &err) : NULL;
    if (sb && !cmd)
        CB_DIAG("kg_command_start '%s': %s", opts.command, err.msg);
    return cmd;
}

/* Run a command to its end inside one run_until; the result is in c->result (NULL on a
 * deadline). Returns the command. Borrowed; valid until its sandbox goes. */
static kg_command_t *s_cmd(kg_gateway_t *gw, kg_sandbox_t *sb, kg_command_opts_t opts, cmd_t *c)
{
    kg_command_t *cmd = s_cmd_start(sb, opts, c);
    if (cmd && kg_gateway_run_until(gw, &c->done, DEADLINE_MS) < 0)
        CB_DIAG("command did not end in time: %s", opts.command);
    return cmd;
}

/* Ask the sandbox how many sleep processes live (a zombie is dead already; init reaps it) until
 * the answer is want or ms pass: bash may not have exec'd a new sleep yet, and a killed one may
 * not have finished dying. Every sleep here sleeps 100 s, so a deadline of a few seconds keeps
 * both checks able to fail. */
static bool s_sleeps_are(kg_gateway_t *gw, kg_sandbox_t *sb, const char *want, int ms)
{
    char last[32] = "(none)";
    for (int64_t end = cb_now_ms() + ms; cb_now_ms() < end;) {
        cmd_auto cmd_t c = {0};
        s_cmd(gw, sb, (kg_command_opts_t){.command = "pgrep -c -r R,S,D,T,t sleep"}, &c);
        const char *n = s_str(c.result, "stdout");
        if (n && strcmp(n, want) == 0)
            return true;
        snprintf(last, sizeof last, "%s", n ? n : "(none)");
    }
    CB_DIAG("sleep processes in the sandbox: want %.*s, last answer %.*s", (int)strcspn(want, "\n"),
            want, (int)strcspn(last, "\n"), last);
    return false;
}

static json_int_t s_int(json_t *obj, const char *key)
{
    return json_integer_value(json_object_get(obj, key));
}

static void s_commands(kg_gateway_t *gw)
{
    kg_sandbox_t *sb = s_sandbox(gw, 0);
    if (!CB_OK(sb, "a sandbox for commands"))
        return;

    /* (a) Exit code and both streams. */
    cmd_auto cmd_t a = {0};
    s_cmd(gw, sb, (kg_command_opts_t){.command = "echo out; echo err >&2; exit 3"}, &a);
    CB_OK(s_str_is(a.result, "status", "exited") && s_int(a.result, "exit_code") == 3 &&
              s_str_is(a.result, "stdout", "out\n") && s_str_is(a.result, "stderr", "err\n"),
          "exit code 3, stdout and stderr apart");
    CB_OK(a.calls[0] && a.calls[1] && strcmp(cb_buf_str(&a.streams[0]), "out\n") == 0 &&
              strcmp(cb_buf_str(&a.streams[1]), "err\n") == 0,
          "on_output delivered both streams");

    /* (b) stdin, (c) cwd and env. */
    cmd_auto cmd_t b = {0}, cwd = {0}, env = {0};
    s_cmd(gw, sb, (kg_command_opts_t){.command = "wc -l", .stdin_text = "a\nb\n"}, &b);
    CB_OK(s_str_is(b.result, "stdout", "2\n"), "stdin_text reaches the command");
    s_cmd(gw, sb, (kg_command_opts_t){.command = "pwd", .cwd = "/tmp"}, &cwd);
    CB_OK(s_str_is(cwd.result, "stdout", "/tmp\n"), "cwd is honoured");
    s_cmd(
        gw, sb,
        (kg_command_opts_t){.command = "echo $FOO", .env = (const char *const[]){"FOO=bar", NULL}},
        &env);
    CB_OK(s_str_is(env.result, "stdout", "bar\n"), "env is honoured");

    /* (d) A timeout kills the whole group, background jobs too. */
    cmd_auto cmd_t t = {0};
    int64_t t0 = cb_now_ms();
    s_cmd(gw, sb, (kg_command_opts_t){.command = "sleep 100 & sleep 100", .timeout_ms = 500}, &t);
    int64_t took = cb_now_ms() - t0;
    CB_OK(s_str_is(t.result, "status", "timeout"), "a 500 ms timeout ends the command");
    CB_DIAG("the command ended after %lld ms", (long long)took); /* a timing: never pass/fail */
    CB_OK(s_sleeps_are(gw, sb, "0\n", 10000), "no sleep is left in the sandbox");

    /* (e) A background command fed through stdin, a kill, and stdin to an ended command. */
    cmd_auto cmd_t cat = {0}, sleeper = {0};
    cb_error_t err = {0};
    kg_command_t *cc =
        s_cmd_start(sb, (kg_command_opts_t){.command = "cat", .keep_stdin_open = true}, &cat);
    CB_OK(cc && s_fine(kg_command_write_stdin(cc, "hello\n", 6, false, &err), &err),
          "write to a running command's stdin");
    for (int64_t end = cb_now_ms() + DEADLINE_MS;
         cc && cat.streams[0].len < 6 && cb_now_ms() < end;) {
        cat.got_output = 0; /* output may come in pieces: wait for all six bytes */
        kg_gateway_run_until(gw, &cat.got_output, (int)(end - cb_now_ms()));
    }
    bool echoed = cat.streams[0].len == 6;
    json_auto_t *snap = cc ? kg_command_snapshot(cc) : NULL;
    CB_OK(echoed && s_str_is(snap, "status", "running") && s_str_is(snap, "stdout", "hello\n"),
          "cat echoes it while still running");
    CB_OK(cc && s_fine(kg_command_write_stdin(cc, NULL, 0, true, &err), &err) &&
              kg_gateway_run_until(gw, &cat.done, DEADLINE_MS) == 0,
          "closing stdin ends cat");
    CB_OK(s_str_is(cat.result, "status", "exited") && s_int(cat.result, "exit_code") == 0,
          "cat exits 0");
    cb_error_clear(&err);
    CB_OK(cc && kg_command_write_stdin(cc, "late\n", 5, false, &err) < 0 &&
              err.kind == CB_ERR_STATE,
          "stdin to an ended command is refused: %s", err.msg);
    kg_command_t *sc = s_cmd_start(sb, (kg_command_opts_t){.command = "sleep 100"}, &sleeper);
    CB_OK(sc && s_sleeps_are(gw, sb, "1\n", 5000),
          "the control for (d): a running sleep is counted");
    CB_OK(sc && kg_command_running(sc) && s_fine(kg_command_kill(sc, &err), &err) &&
              kg_gateway_run_until(gw, &sleeper.done, DEADLINE_MS) == 0,
          "kg_command_kill ends a sleep");
    CB_OK(s_str_is(sleeper.result, "status", "killed") &&
              s_str_is(sleeper.result, "signal", "SIGKILL"),
          "status killed by SIGKILL");
    CB_OK(sc && kg_sandbox_command(sb, kg_command_id(sc)) == sc,
          "an ended command stays known to its sandbox");
    kg_command_forget(&sc);
    CB_OK(!sc, "kg_command_forget nulls the pointer");

    /* A command whose shell exits at once leaves its background jobs running (they live until
     * the sandbox ends or they are killed), and its pid is the host pid, or null when the
     * command ended before the gateway could learn it (kg.h). Racy by nature, so it is tried
     * many times. */
    int bad_pid = 0, null_pid = 0;
    for (int i = 0; i < QUICK_RUNS; i++) {
        cmd_auto cmd_t quick = {0};
        s_cmd(gw, sb, (kg_command_opts_t){.command = "sleep 100 & exit 0"}, &quick);
        json_t *pid = json_object_get(quick.result, "pid");
        null_pid += json_is_null(pid);
        bad_pid += !json_is_null(pid) && !(json_is_integer(pid) && json_integer_value(pid) > 0);
    }
    CB_OK(bad_pid == 0, "a quick command's pid is positive or null (%d of %d bad, %d null)",
          bad_pid, QUICK_RUNS, null_pid);
    char want[16];
    snprintf(want, sizeof want, "%d\n", QUICK_RUNS);
    CB_OK(s_sleeps_are(gw, sb, want, 10000), "background jobs outlive a shell that exits at once");
    cmd_auto cmd_t reap = {0};
    s_cmd(gw, sb, (kg_command_opts_t){.command = "pkill -x sleep"}, &reap);
    CB_OK(s_sleeps_are(gw, sb, "0\n", 10000), "and they can be killed");

    /* (f) Output is streamed as it comes. */
    cmd_auto cmd_t s = {0};
    s_cmd(gw, sb, (kg_command_opts_t){.command = "for i in 1 2 3; do echo $i; sleep 0.2; done"},
          &s);
    CB_OK(s_str_is(s.result, "stdout", "1\n2\n3\n") && s.calls_at_done >= 2 &&
              s.done_ms - s.first_output_ms >= 200,
          "on_output was called %d times, the first %lld ms before the end", s.calls_at_done,
          (long long)(s.done_ms - s.first_output_ms));

    /* (g) A missing program, (h) invalid UTF-8. */
    cmd_auto cmd_t missing = {0}, bad = {0};
    s_cmd(gw, sb, (kg_command_opts_t){.command = "nonexistent-cmd-xyz"}, &missing);
    const char *stderr_text = s_str(missing.result, "stderr");
    CB_OK(s_int(missing.result, "exit_code") == 127 && stderr_text &&
              strstr(stderr_text, "not found"),
          "a missing program exits 127 and says not found: %.*s",
          stderr_text ? (int)strcspn(stderr_text, "\n") : 6, stderr_text ? stderr_text : "(none)");
    kg_command_t *bc =
        s_cmd(gw, sb, (kg_command_opts_t){.command = "printf '\\xff\\xfe ok'"}, &bad);
    json_auto_t *bad_snap = bc && bad.done ? kg_command_snapshot(bc) : NULL;
    cleanup_free char *dumped = bad_snap ? json_dumps(bad_snap, JSON_COMPACT) : NULL;
    json_auto_t *reparsed = dumped ? json_loads(dumped, 0, NULL) : NULL;
    const char *bad_out = s_str(reparsed, "stdout");
    CB_OK(bad_out && strstr(bad_out, "ok"), "invalid UTF-8 gives a valid JSON snapshot: %.200s",
          dumped ? dumped : "(none)");

    /* (i) Out of memory in a 256 MiB sandbox. */
    kg_sandbox_t *small = s_sandbox(gw, 256);
    cmd_auto cmd_t oom = {0};
    s_cmd(gw, small,
          (kg_command_opts_t){.command = "/usr/bin/python3 -c \"b = b'x' * (20 * 1024**3)\""},
          &oom);
    CB_OK(s_str_is(oom.result, "status", "killed") &&
              json_is_true(json_object_get(oom.result, "oom")),
          "a command past the memory limit is killed with oom true");
    kg_sandbox_destroy(&small);
    kg_sandbox_destroy(&sb);
}

/* ---- files ------------------------------------------------------------------------------- */

/* The entry called name in a listing. Borrowed; valid with list. */
static json_t *s_entry(json_t *list, const char *name)
{
    size_t i;
    json_t *e;
    json_array_foreach (list, i, e)
        if (json_is_string(json_object_get(e, "name")) && strcmp(s_str(e, "name"), name) == 0)
            return e;
    return NULL;
}

static void s_files(kg_gateway_t *gw)
{
    kg_sandbox_t *sb = s_sandbox(gw, 0);
    if (!CB_OK(sb, "a sandbox for files"))
        return;
    cb_error_t err = {0};

    /* The sandbox's log stays readable whatever a line holds: a kernel's stderr is any bytes,
     * and a line cut at the length limit may end inside a character. */
    kg_sandbox_log(sb, "test", "bad \xff\xfe bytes, then a cut \xe2\x82");
    json_auto_t *logs = kg_sandbox_logs(sb, 1);
    const char *text = json_string_value(json_object_get(json_array_get(logs, 0), "text"));
    CB_OK(text && strstr(text, "bad \xef\xbf\xbd\xef\xbf\xbd bytes") && strstr(text, "cut "),
          "a log line that is not UTF-8 is kept, its bad bytes as U+FFFD: %s",
          text ? text : "(no log)");

    CB_OK(s_fine(kg_sandbox_file_write(sb, "hello.txt", "hi there", 8, false, &err), &err),
          "write a file");
    json_auto_t *list = kg_sandbox_file_list(sb, "/home/user", &err);
    if (!list)
        CB_DIAG("list: %s", err.msg);
    json_t *hello = s_entry(list, "hello.txt");
    CB_OK(hello && s_str_is(hello, "type", "file") && s_int(hello, "size") == 8,
          "the listing shows name, type file and size");

    CB_OK(s_fine(kg_sandbox_file_mkdir(sb, "/home/user/d/e", true, &err), &err) &&
              s_fine(kg_sandbox_file_write(sb, "d/e/f.txt", "x", 1, false, &err), &err),
          "mkdir with parents, and a file inside");
    json_auto_t *dlist = kg_sandbox_file_list(sb, "d", &err);
    json_t *e = s_entry(dlist, "e");
    CB_OK(e && s_str_is(e, "type", "dir"), "the new directory lists as dir");
    cb_error_clear(&err);
    CB_OK(kg_sandbox_file_remove(sb, "d", false, &err) < 0,
          "a non-empty directory needs recursive: %s", err.msg);
    CB_OK(s_fine(kg_sandbox_file_remove(sb, "d", true, &err), &err), "recursive remove");
    json_auto_t *after = kg_sandbox_file_list(sb, ".", &err);
    CB_OK(after && !s_entry(after, "d") && s_entry(after, "hello.txt"),
          "the directory is gone, the file stays");

    /* A symlink planted from inside never leads the host out of the workspace. */
    size_t passwd_len = 0, passwd_len2 = 0;
    cleanup_free char *passwd = cb_read_file("/etc/passwd", 1 << 20, &passwd_len, NULL);
    cmd_auto cmd_t ln = {0};
    s_cmd(gw, sb, (kg_command_opts_t){.command = "ln -s /etc/passwd /home/user/evil"}, &ln);
    CB_OK(s_str_is(ln.result, "status", "exited") && s_int(ln.result, "exit_code") == 0,
          "a command plants a symlink");
    json_auto_t *with_evil = kg_sandbox_file_list(sb, ".", &err);
    json_t *evil = s_entry(with_evil, "evil");
    CB_OK(evil && s_str_is(evil, "type", "symlink"), "it lists as symlink");
    cb_buf_t buf = {0};
    cb_error_clear(&err);
    CB_OK(kg_sandbox_file_read(sb, "evil", 1 << 20, &buf, &err) < 0 && err.msg[0] &&
              (strstr(err.msg, "outside") || strstr(err.msg, "symlink")),
          "reading through it is refused: %s", err.msg);
    cb_buf_free(&buf);
    cb_error_clear(&err);
    CB_OK(kg_sandbox_file_write(sb, "evil", "pwned\n", 6, false, &err) < 0 && err.msg[0] &&
              (strstr(err.msg, "outside") || strstr(err.msg, "symlink")),
          "writing through it is refused: %s", err.msg);
    cleanup_free char *passwd2 = cb_read_file("/etc/passwd", 1 << 20, &passwd_len2, NULL);
    CB_OK(passwd && passwd2 && passwd_len == passwd_len2 &&
              memcmp(passwd, passwd2, passwd_len) == 0,
          "the host's /etc/passwd is unchanged");

    cb_error_clear(&err);
    CB_OK(kg_sandbox_file_read(sb, "/etc/hostname", 4096, &buf, &err) < 0 &&
              err.kind == CB_ERR_INVALID,
          "a path outside the workspace is refused: %s", err.msg);
    cb_buf_free(&buf);

    /* 2 MiB of random bytes round-trip exactly, and the sandbox sees the same size. */
    size_t big_len = 2u << 20;
    cleanup_free char *big = malloc(big_len);
    size_t filled = 0;
    while (big && filled < big_len) {
        ssize_t n = getrandom(big + filled, big_len - filled, 0);
        if (n <= 0)
            break;
        filled += (size_t)n;
    }
    CB_OK(big && filled == big_len &&
              s_fine(kg_sandbox_file_write(sb, "big.bin", big, big_len, false, &err), &err),
          "write 2 MiB");
    CB_OK(s_fine(kg_sandbox_file_read(sb, "/home/user/big.bin", 4u << 20, &buf, &err), &err) &&
              big && buf.len == big_len && memcmp(buf.data, big, big_len) == 0,
          "read back byte-exact (%zu bytes)", buf.len);
    cb_buf_free(&buf);
    cmd_auto cmd_t size = {0};
    s_cmd(gw, sb, (kg_command_opts_t){.command = "stat -c %s big.bin"}, &size);
    CB_OK(s_str_is(size.result, "stdout", "2097152\n"), "the sandbox sees the same file");
    kg_sandbox_destroy(&sb);
}

/* ---- held pipes -------------------------------------------------------------------------- */

#define HOLD_S "6" /* how long a left-behind process holds the pipe, at most */

/* CPU time (user + system) of this process, which is the gateway: ms. */
static double s_own_cpu_ms(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) < 0)
        return 0;
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000.0 +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000.0;
}

/* The kernel forks a child into a session of its own (so the sweep of the kernel's process group
 * misses it), the child keeps the kernel's output pipe (the gateway's end of stdout and stderr:
 * ipykernel keeps a copy of the original fd 1), and the kernel exits. holder: what the child
 * does with the pipe: sleep holding it, or write into it until EPIPE (then it notes "epipe" in
 * holder.epipe). Either way it ends after HOLD_S seconds at most, and its pid is in holder.pid.
 * The kernel exits only once the child has left its process group, which the init sweeps. */
static const char *const s_holders[] = {
    "time.sleep(" HOLD_S ")",
    "end = time.time() + " HOLD_S "\n"
    "        try:\n"
    "            while time.time() < end:\n"
    "                os.write(fd, b'x' * 4095 + b'\\n')\n"
    "        except BrokenPipeError:\n"
    "            open('/home/user/holder.epipe', 'w').write('epipe')",
};

static void s_held_kernel_pipe(kg_gateway_t *gw, kg_sandbox_t *other, int variant)
{
    const char *what = variant ? "writes into" : "holds";
    kg_sandbox_t *sb = s_sandbox(gw, 0);
    events_t ev = {0};
    kg_kernel_t *k = sb ? s_start(gw, &ev, sb) : NULL;
    if (!CB_OK(s_ready(gw, k, &ev), "a kernel for the held pipe (%s)", what))
        return;
    cleanup_free char *code =
        cb_strdup_printf("import os, sys, time\n"
                         "fd = getattr(sys.stdout, '_original_stdstream_copy', None) or 1\n"
                         "r, w = os.pipe()\n"
                         "pid = os.fork()\n"
                         "if pid == 0:\n"
                         "    try:\n"
                         "        os.setsid()\n"
                         "        os.write(w, b'!')\n"
                         "        %s\n"
                         "    finally:\n"
                         "        os._exit(0)\n"
                         "open('/home/user/holder.pid', 'w').write(str(pid))\n"
                         "os.read(r, 1)  # the child has left the kernel's process group\n"
                         "os._exit(1)\n",
                         s_holders[variant]);
    double cpu0 = s_own_cpu_ms();
    int64_t t0 = cb_now_ms();
    s_expect(&ev, KG_EVENT_READY);
    tst_kg_job_t r = {0};
    CB_OK(code && s_queue(k, code, 0, &r) && kg_gateway_run_until(gw, &r.done, DEADLINE_MS) == 0,
          "the kernel forks a child that %s its output pipe, and exits", what);
    json_decref(r.result);

    /* Another sandbox is served at once; the first one's kernel restarts. */
    cmd_auto cmd_t echo = {0};
    int64_t c0 = cb_now_ms();
    s_cmd(gw, other, (kg_command_opts_t){.command = "echo fine"}, &echo);
    CB_OK(s_str_is(echo.result, "stdout", "fine\n"), "a command in another sandbox completes");
    CB_DIAG("it took %lld ms", (long long)(cb_now_ms() - c0));
    CB_OK(ev.flag || s_await(gw, &ev, DEADLINE_MS) == 0, "the kernel is restarted and ready");

    /* The phase lasts until the left-behind process is gone (at most HOLD_S s). */
    cmd_auto cmd_t wait = {0};
    s_cmd(gw, sb,
          (kg_command_opts_t){.command =
                                  "p=$(cat /home/user/holder.pid) && while kill -0 $p 2>/dev/null; "
                                  "do sleep 0.1; done && echo gone",
                              .timeout_ms = 30000},
          &wait);
    CB_OK(s_str_is(wait.result, "stdout", "gone\n"), "the left-behind process ends");
    double cpu = s_own_cpu_ms() - cpu0;
    CB_OK(cpu < 1000.0,
          "the gateway used %.0f ms of CPU in the %lld ms the pipe was %s (want < 1000)", cpu,
          (long long)(cb_now_ms() - t0), variant ? "written into" : "held");
    if (variant) {
        cmd_auto cmd_t epipe = {0};
        s_cmd(gw, sb, (kg_command_opts_t){.command = "cat /home/user/holder.epipe"}, &epipe);
        CB_OK(s_str_is(epipe.result, "stdout", "epipe"),
              "the writer got EPIPE: the gateway closed its end of the dead kernel's pipe");
    }
    kg_sandbox_destroy(&sb);
}

/* A command's background job in a session of its own keeps stdout (sleeping, or writing as
 * fast as it can with yes for HOLD_S seconds) after the shell has exited. The gateway keeps
 * reading the pipe (at a bounded rate, command.c), so the writer is never killed by SIGPIPE:
 * timeout(1) reports 124 (it timed out), not 141 (yes died of SIGPIPE). */
static void s_held_command_pipe(kg_gateway_t *gw, kg_sandbox_t *other, bool writes)
{
    kg_sandbox_t *sb = s_sandbox(gw, 0);
    if (!CB_OK(sb, "a sandbox for the held command pipe"))
        return;
    double cpu0 = s_own_cpu_ms();
    cmd_auto cmd_t bg = {0};
    s_cmd(gw, sb,
          (kg_command_opts_t){.command = writes ? "rm -f /home/user/yes.rc; setsid sh -c "
                                                  "'timeout " HOLD_S " yes held; "
                                                  "echo $? > /home/user/yes.rc' & echo started"
                                                : "setsid sleep " HOLD_S " & echo started"},
          &bg);
    CB_OK(s_str_is(bg.result, "status", "exited"), "a command whose background job %s stdout ends",
          writes ? "writes into" : "holds");
    cmd_auto cmd_t echo = {0};
    s_cmd(gw, other, (kg_command_opts_t){.command = "echo fine"}, &echo);
    CB_OK(s_str_is(echo.result, "stdout", "fine\n"), "a command in another sandbox completes");
    cmd_auto cmd_t wait = {0};
    s_cmd(gw, sb,
          (kg_command_opts_t){
              .command = writes ? "while [ ! -e /home/user/yes.rc ]; do sleep 0.1; done; "
                                  "cat /home/user/yes.rc; echo gone"
                                : "while pgrep -x sleep >/dev/null; do sleep 0.1; done; echo gone",
              .timeout_ms = 30000},
          &wait);
    CB_OK(s_str_is(wait.result, "stdout", writes ? "124\ngone\n" : "gone\n"),
          "the background job ends%s",
          writes ? " after its " HOLD_S " s, not killed by SIGPIPE (timeout says 124)" : "");
    double cpu = s_own_cpu_ms() - cpu0;
    CB_OK(cpu < 1000.0, "the gateway used %.0f ms of CPU meanwhile (want < 1000)", cpu);
    kg_sandbox_destroy(&sb);
}

static void s_held_pipes(kg_gateway_t *gw)
{
    kg_sandbox_t *other = s_sandbox(gw, 0);
    if (!CB_OK(other, "a second sandbox"))
        return;
    s_held_kernel_pipe(gw, other, 0);
    s_held_kernel_pipe(gw, other, 1);
    s_held_command_pipe(gw, other, false);
    s_held_command_pipe(gw, other, true);
    kg_sandbox_destroy(&other);
}

/* ---- main -------------------------------------------------------------------------------- */

static const struct {
    const char *name;
    void (*run)(kg_gateway_t *gw);
} s_groups[] = {{"kernels", s_kernels},
                {"commands", s_commands},
                {"files", s_files},
                {"held_pipes", s_held_pipes}};

int main(int argc, char **argv)
{
    const char *group = argc > 1 ? argv[1] : "kernels";
    size_t g = 0, n = sizeof s_groups / sizeof *s_groups;
    while (g < n && strcmp(s_groups[g].name, group) != 0)
        g++;
    if (g == n) {
        CB_OK(0, "unknown group '%s'", group);
        return cb_tap_done();
    }
    tst_kg_require_sandboxed_python();
    setenv(SECRET_VAR, "x", 1); /* must never reach a sandbox */
    char runtime_dir[] = "/tmp/cb-test-rt-XXXXXX";
    if (!mkdtemp(runtime_dir))
        CB_SKIP_ALL("cannot make a temp dir");

    cb_error_t err = {0};
    kg_gateway_t *gw = kg_gateway_new(&(kg_config_t){.runtime_dir = runtime_dir}, &err);
    if (!gw)
        CB_DIAG("kg_gateway_new: %s", err.msg);
    if (CB_OK(gw, "gateway starts"))
        s_groups[g].run(gw);
    kg_gateway_destroy(&gw);
    cb_rm_rf(runtime_dir, NULL);
    return cb_tap_done();
}
