/* test_attach.c: the attach proxy against a real ipykernel and a real jupyter_client.
 *
 * The gateway starts a kernel and sets `secret = 6 * 7`, then writes an attach connection file.
 * A child, attach_client.py, joins through the proxy with jupyter_client: it reads `secret`,
 * sets `from_client`, answers an input() on the stdin channel, and throws bad frames straight
 * at the proxy's shell port (garbage, no delimiter, wrong key, truncated signature, non-JSON
 * under a valid signature, a replay). It prints `SENT_BAD=N` and exits 0 when everything it
 * saw was right. The gateway loop keeps running while the child runs: the child's pidfd and
 * stdout pipe are pollers on the gateway's zloop, and every wait is on an event with a deadline.
 *
 * From the gateway side we then check that the client's variable is visible, that the forged
 * code never ran, that the proxy counted at least N dropped frames (bad signatures and replays
 * among them), and that destroying the gateway removes the run dir and the attach file.
 *
 * argv[1]: the directory holding attach_client.py.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cb/cleanup.h"
#include "cb/tap.h"
#include "cb/util.h"
#include "kg/gateway.h"
#include "kg/kernel.h"
#include "kg_run.h"

#define PYTHON "/usr/bin/python3"
#define READY_DEADLINE_MS 60000
#define EXEC_DEADLINE_MS 60000
#define CHILD_DEADLINE_MS 120000

/* ---- kernel events and executions -------------------------------------------------------- */

typedef struct {
    volatile int ready;
    volatile int gone; /* died, dead or stopped */
} kernel_ctx_t;

static void s_on_event(kg_kernel_t *k, kg_kernel_event_t event, const char *detail, void *arg)
{
    kernel_ctx_t *ctx = arg;
    if (event == KG_EVENT_READY)
        ctx->ready = 1;
    if (event == KG_EVENT_DIED || event == KG_EVENT_DEAD || event == KG_EVENT_STOPPED)
        ctx->gone = 1;
    if (event == KG_EVENT_STDERR)
        CB_DIAG("kernel stderr: %s", detail ? detail : "");
    else if (event != KG_EVENT_READY)
        CB_DIAG("kernel event %d%s%s", (int)event, detail ? ": " : "", detail ? detail : "");
}

/* Run code to completion. Caller owns return value; NULL on a queueing error or the deadline. */
static json_t *s_run(kg_gateway_t *gw, kg_kernel_t *k, const char *code)
{
    return tst_kg_run(gw, k, code, 0, EXEC_DEADLINE_MS);
}

static const char *s_field(json_t *result, const char *key)
{
    const char *value = json_string_value(json_object_get(result, key));
    return value ? value : "(missing)";
}

/* Run code and return its stdout when the status is ok. Caller owns return value; NULL else. */
static char *s_run_stdout(kg_gateway_t *gw, kg_kernel_t *k, const char *code)
{
    json_auto_t *result = s_run(gw, k, code);
    if (!result)
        return NULL;
    if (strcmp(s_field(result, "status"), "ok") != 0) {
        json_t *error = json_object_get(result, "error");
        CB_DIAG("'%s' ended %s: %s: %s", code, s_field(result, "status"),
                json_string_value(json_object_get(error, "ename")),
                json_string_value(json_object_get(error, "evalue")));
        return NULL;
    }
    return strdup(s_field(result, "stdout"));
}

/* ---- the child, watched from the gateway's loop ------------------------------------------ */

typedef struct {
    pid_t pid;
    int pidfd;
    int out_fd; /* read end of the child's stdout */
    bool out_eof;
    volatile int exited;
    cb_buf_t out;
} child_t;

static int s_on_child_exit(zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    child_t *c = arg;
    c->exited = 1;
    zloop_poller_end(loop, item); /* the pidfd stays readable: stop watching it */
    return -1;                    /* leave zloop_start: kg_gateway_run_until sees the flag */
}

/* Drain what the child wrote so far. Returns false at end of file. */
static bool s_read_child(child_t *c)
{
    char chunk[4096];
    for (;;) {
        ssize_t n = read(c->out_fd, chunk, sizeof chunk);
        if (n > 0) {
            cb_buf_append(&c->out, chunk, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        return n < 0; /* EAGAIN: more later; 0: end of file */
    }
}

static int s_on_child_output(zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    child_t *c = arg;
    if (!s_read_child(c)) {
        c->out_eof = true;
        zloop_poller_end(loop, item);
    }
    return 0;
}

/* fork/exec argv with stdout into a pipe; stderr and stdin are inherited. */
static int s_spawn(child_t *c, char *const argv[])
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        if (dup2(fds[1], STDOUT_FILENO) < 0)
            _exit(126);
        execv(argv[0], argv);
        _exit(127);
    }
    close(fds[1]);
    c->pid = pid;
    c->out_fd = fds[0];
    fcntl(c->out_fd, F_SETFL, O_NONBLOCK);
    c->pidfd = pidfd_open(pid, 0);
    return c->pidfd < 0 ? -1 : 0;
}

/* Wait (bounded) for the rest of the child's stdout once it has exited. */
static void s_drain_child(child_t *c)
{
    int64_t deadline = cb_now_ms() + 5000;
    while (!c->out_eof && cb_now_ms() < deadline) {
        struct pollfd pfd = {.fd = c->out_fd, .events = POLLIN};
        if (poll(&pfd, 1, 100) > 0 && !s_read_child(c))
            c->out_eof = true;
    }
}

/* The N of the child's "SENT_BAD=N" line, or -1. */
static long s_sent_bad(const char *out)
{
    for (const char *p = out; (p = strstr(p, "SENT_BAD=")); p++)
        if (p == out || p[-1] == '\n')
            return strtol(p + strlen("SENT_BAD="), NULL, 10);
    return -1;
}

static void s_diag_lines(const char *prefix, const char *text)
{
    while (*text) {
        const char *nl = strchr(text, '\n');
        int len = nl ? (int)(nl - text) : (int)strlen(text);
        CB_DIAG("%s%.*s", prefix, len, text);
        text += len + (nl ? 1 : 0);
    }
}

static bool s_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0 || errno != ENOENT;
}

/* ---- the test ---------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: test_attach <directory of attach_client.py>\n");
        return 2;
    }
    cleanup_free char *client_script = cb_strdup_printf("%s/attach_client.py", argv[1]);
    if (access(PYTHON, X_OK) != 0)
        CB_SKIP_ALL("%s not found", PYTHON);
    if (system(PYTHON " -c 'import ipykernel, jupyter_client, zmq' 2>/dev/null") != 0)
        CB_SKIP_ALL("%s lacks ipykernel, jupyter_client or pyzmq", PYTHON);

    cb_error_t err = {0};
    kg_gateway_t *gw = kg_gateway_new(NULL, &err);
    if (!CB_OK(gw, "gateway created (%s)", gw ? "ok" : err.msg))
        return cb_tap_done();
    zloop_t *loop = kg_gateway_loop(gw);

    kernel_ctx_t kctx = {0};
    kg_kernel_opts_t kopts = {.kernel_name = "python3", .on_event = s_on_event, .arg = &kctx};
    kg_kernel_t *k = kg_kernel_start(gw, &kopts, &err);
    if (!CB_OK(k, "kernel started (%s)", k ? "ok" : err.msg)) {
        kg_gateway_destroy(&gw);
        return cb_tap_done();
    }
    int rc = kg_gateway_run_until(gw, &kctx.ready, READY_DEADLINE_MS);
    if (!CB_OK(rc == 0 && !kctx.gone, "kernel ready within %d ms", READY_DEADLINE_MS)) {
        kg_gateway_destroy(&gw);
        return cb_tap_done();
    }
    cleanup_free char *run_dir = strdup(kg_kernel_run_dir(k));

    json_auto_t *setup = s_run(gw, k, "secret = 6 * 7");
    CB_OK(setup && strcmp(s_field(setup, "status"), "ok") == 0,
          "gateway sets secret = 6 * 7 (status %s)", setup ? s_field(setup, "status") : "none");

    const char *attach = kg_kernel_attach(k, &err);
    if (!CB_OK(attach, "attach connection file written (%s)", attach ? attach : err.msg)) {
        kg_gateway_destroy(&gw);
        return cb_tap_done();
    }
    cleanup_free char *attach_path = strdup(attach);
    struct stat st;
    CB_OK(stat(attach_path, &st) == 0 && (st.st_mode & 0777) == 0600,
          "attach file exists with mode 0600 (mode %o)",
          stat(attach_path, &st) == 0 ? st.st_mode & 0777 : 0);
    CB_OK(strncmp(attach_path, run_dir, strlen(run_dir)) != 0,
          "attach file is not in the kernel's run dir, where sandboxed code writes");
    cleanup_free char *attach_dir = strdup(attach_path);
    if (attach_dir && strrchr(attach_dir, '/'))
        *strrchr(attach_dir, '/') = '\0';
    struct stat dst;
    CB_OK(attach_dir && stat(attach_dir, &dst) == 0 && dst.st_uid == geteuid() &&
              (dst.st_mode & 0077) == 0,
          "its directory is the gateway's own, closed to others (%s)",
          attach_dir ? attach_dir : "?");
    const char *again = kg_kernel_attach(k, NULL);
    CB_OK(again && strcmp(again, attach_path) == 0,
          "a second kg_kernel_attach returns the same file");

    kg_counters_t before = *kg_gateway_counters(gw);

    /* The client runs while the gateway's loop serves the proxy. */
    child_t child = {.pid = -1, .pidfd = -1, .out_fd = -1};
    char *child_argv[] = {PYTHON, client_script, attach_path, NULL};
    int spawned = s_spawn(&child, child_argv);
    zmq_pollitem_t pid_item = {.fd = child.pidfd, .events = ZMQ_POLLIN};
    zmq_pollitem_t out_item = {.fd = child.out_fd, .events = ZMQ_POLLIN};
    bool watched = spawned == 0 && zloop_poller(loop, &pid_item, s_on_child_exit, &child) == 0 &&
                   zloop_poller(loop, &out_item, s_on_child_output, &child) == 0;
    if (!CB_OK(watched, "attach_client.py spawned and watched%s%s", watched ? "" : ": ",
               watched ? "" : strerror(errno))) {
        if (child.pid > 0) {
            kill(child.pid, SIGKILL);
            waitpid(child.pid, NULL, 0);
        }
        kg_gateway_destroy(&gw);
        return cb_tap_done();
    }
    int64_t t0 = cb_now_ms();
    rc = kg_gateway_run_until(gw, &child.exited, CHILD_DEADLINE_MS);
    CB_OK(rc == 0, "attach_client.py finished within %d ms (took %lld ms)", CHILD_DEADLINE_MS,
          (long long)(cb_now_ms() - t0));
    if (!child.exited) {
        zloop_poller_end(loop, &pid_item);
        kill(child.pid, SIGKILL);
    }
    siginfo_t info = {0};
    int waited = waitid(P_PIDFD, (id_t)child.pidfd, &info, WEXITED);
    if (!child.out_eof)
        zloop_poller_end(loop, &out_item);
    s_drain_child(&child);
    close(child.pidfd);
    close(child.out_fd);
    s_diag_lines("client: ", cb_buf_str(&child.out));
    CB_OK(waited == 0 && info.si_code == CLD_EXITED && info.si_status == 0,
          "attach_client.py exited with status 0 (si_code %d, status %d)", info.si_code,
          info.si_status);
    long sent_bad = s_sent_bad(cb_buf_str(&child.out));
    CB_OK(sent_bad >= 6, "client reported the bad frames it sent (SENT_BAD=%ld)", sent_bad);
    cb_buf_free(&child.out);

    /* The gateway sees what the client did, and nothing the forged frames asked for. */
    cleanup_free char *from_client = s_run_stdout(gw, k, "print(from_client)");
    CB_OK(from_client && strcmp(from_client, "set via attach\n") == 0,
          "gateway sees from_client set through the proxy (stdout '%s')",
          from_client ? from_client : "none");
    cleanup_free char *forged = s_run_stdout(gw, k, "print('pwned' in globals(), counter)");
    CB_OK(forged && strcmp(forged, "False 1\n") == 0,
          "forged code never ran and the replay ran once (stdout '%s')", forged ? forged : "none");

    const kg_counters_t *after = kg_gateway_counters(gw);
    uint64_t dropped = after->proxy_dropped - before.proxy_dropped;
    uint64_t bad_sigs = after->bad_signatures - before.bad_signatures;
    uint64_t replays = after->replayed_signatures - before.replayed_signatures;
    uint64_t malformed = after->malformed_messages - before.malformed_messages;
    CB_DIAG("proxy counters: dropped %llu, bad signatures %llu, replays %llu, malformed %llu",
            (unsigned long long)dropped, (unsigned long long)bad_sigs, (unsigned long long)replays,
            (unsigned long long)malformed);
    CB_OK(sent_bad > 0 && dropped >= (uint64_t)sent_bad,
          "proxy_dropped grew by at least SENT_BAD (%llu >= %ld)", (unsigned long long)dropped,
          sent_bad);
    CB_OK(bad_sigs >= 2, "bad_signatures grew by the wrong key and the truncated one (%llu >= 2)",
          (unsigned long long)bad_sigs);
    CB_OK(replays >= 1, "replayed_signatures grew by the replayed copy (%llu >= 1)",
          (unsigned long long)replays);
    CB_OK(malformed >= 3, "malformed_messages grew by garbage, no delimiter, non-JSON (%llu >= 3)",
          (unsigned long long)malformed);
    CB_OK(!kctx.gone && kg_kernel_state(k) == KG_KERNEL_IDLE && kg_kernel_restart_count(k) == 0,
          "the kernel stayed up throughout (state %s, restarts %d)",
          kg_kernel_state_name(kg_kernel_state(k)), kg_kernel_restart_count(k));

    kg_gateway_destroy(&gw);
    CB_OK(gw == NULL, "gateway destroyed");
    CB_OK(!s_exists(run_dir), "kernel run dir removed (%s)", run_dir);
    CB_OK(!s_exists(attach_path), "attach file removed");
    return cb_tap_done();
}
