/* test_seccomp.c: the seccomp filter (seccomp.c) on its own, without a sandbox around it.
 *
 * Every case forks a child that starts a new session, sets no_new_privs, loads the filter with
 * sbx_seccomp_load() and then does something; its output comes back through a pipe and its exit
 * status through waitpid. The cases:
 *   - the filter loads, and the kernel then reports the process as filtered;
 *   - the real programs a sandbox serves work under it: Python with numpy, pandas and
 *     matplotlib (Agg), Python with zmq, ipykernel's imports, threads and asyncio, bash, cc,
 *     make, git. A program that fails under the filter is run again without it: failing there
 *     too means it cannot run on this host (SKIP), not that the filter broke it;
 *   - the probe table shared with the in-sandbox probe (seccomp_probes.h): every forbidden
 *     class fails with its errno, the argument rules let the allowed cases through, an unlisted
 *     syscall gets ENOSYS, and i386 and x32 syscalls kill the process;
 *   - log mode (mode 1): the unlisted syscall gets through, everything else answers as in deny
 *     mode. Skipped when the kernel has no log action.
 * TAP on stdout.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cb/cleanup.h"
#include "cb/tap.h"
#include "cb/util.h"
#include "sbx_private.h"
#include "seccomp_probes.h"

#define S_NO_FILTER (-1)    /* mode for a control run */
#define S_EXIT_LOAD 99      /* the child could not load the filter */
#define S_PROGRAM_MS 180000 /* per program (matplotlib's first import builds a font cache) */
#define S_PROBES_MS 60000

#define S_PYTHON "/usr/bin/python3"

static const char s_py_data[] = "import numpy, pandas, matplotlib\n"
                                "matplotlib.use('Agg')\n"
                                "import matplotlib.pyplot as plt\n"
                                "numpy.ones((400, 400)) @ numpy.ones((400, 400))\n"
                                "plt.plot([1, 2]); plt.savefig('x.png')\n"
                                "print(pandas.DataFrame({'a': [1, 2]}).sum().iloc[0])\n";

static const char s_py_kernel[] =
    "import zmq, ipykernel.kernelapp, threading, asyncio, tornado.ioloop\n"
    "ctx = zmq.Context()\n"
    "r = ctx.socket(zmq.ROUTER); port = r.bind_to_random_port('tcp://127.0.0.1')\n"
    "d = ctx.socket(zmq.DEALER); d.connect('tcp://127.0.0.1:%d' % port)\n"
    "a = ctx.socket(zmq.PAIR); a.bind('ipc://kernel.ipc')\n"
    "b = ctx.socket(zmq.PAIR); b.connect('ipc://kernel.ipc')\n"
    "def echo():\n"
    "    ident, msg = r.recv_multipart(); r.send_multipart([ident, msg + b'!'])\n"
    "    b.send(b.recv())\n"
    "t = threading.Thread(target=echo); t.start(); d.send(b'ping'); a.send(b'ipc'); t.join()\n"
    "async def main():\n"
    "    return await asyncio.get_running_loop().run_in_executor(None, d.recv)\n"
    "pong = asyncio.run(main()).decode()\n"
    "loop = tornado.ioloop.IOLoop(make_current=False)\n"
    "print(pong, a.recv().decode(), loop.run_sync(lambda: asyncio.sleep(0, 'tornado')))\n";

static const char s_hello_c[] = "#include <stdio.h>\nint main(void) { puts(\"42\"); return 0; }\n";

static const char s_makefile[] = "hello2: hello.c\n\t$(CC) -O2 -o $@ hello.c\n"
                                 "run: hello2\n\t@./hello2\n";

typedef struct {
    const char *const *argv; /* exec'd through PATH */
    const char *cwd;
} s_exec_t;

/* ---------------------------------------------------------------------------------------------
 * Running a child under the filter.
 * ------------------------------------------------------------------------------------------- */

/* In the child: the filter (unless mode is S_NO_FILTER), then the work. stdout (and stderr
 * when merge) go to out_fd; stdin is /dev/null. Never returns. */
static void s_child(int mode, int out_fd, bool merge, void (*work)(const void *), const void *ctx)
{
    setsid();
    int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null_fd < 0 || dup2(null_fd, 0) < 0 || dup2(out_fd, 1) < 0 ||
        (merge && dup2(out_fd, 2) < 0))
        _exit(S_EXIT_LOAD);
    if (mode != S_NO_FILTER) {
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
            _exit(S_EXIT_LOAD);
        int rc = sbx_seccomp_load(mode);
        if (rc < 0) {
            dprintf(2, "sbx_seccomp_load(%d): %s\n", mode, strerror(-rc));
            _exit(S_EXIT_LOAD);
        }
    }
    work(ctx);
    _exit(0);
}

/* Fork a child running work under the filter, collect its output into out (until EOF, or
 * timeout_ms, when the child's session is killed) and return its wait status (-1 when the
 * fork failed). */
static int s_run(int mode, bool merge, void (*work)(const void *), const void *ctx, int timeout_ms,
                 cb_buf_t *out)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0)
        return -1;
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        close(fds[0]);
        s_child(mode, fds[1], merge, work, ctx);
    }
    close(fds[1]);
    cleanup_close int rd = fds[0];
    int64_t deadline = cb_now_ms() + timeout_ms;
    for (;;) {
        int64_t left = deadline - cb_now_ms();
        struct pollfd p = {.fd = rd, .events = POLLIN};
        int n = left > 0 ? poll(&p, 1, (int)left) : 0;
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            const char *note = "\n[timed out: killed]\n";
            cb_buf_append(out, note, strlen(note));
            kill(-pid, SIGKILL);
            kill(pid, SIGKILL);
            break;
        }
        char chunk[4096];
        ssize_t got = read(rd, chunk, sizeof chunk);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        cb_buf_append(out, chunk, (size_t)got);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return status;
}

static void s_exec(const void *ctx)
{
    const s_exec_t *e = ctx;
    if (e->cwd && chdir(e->cwd) < 0)
        _exit(126);
    execvp(e->argv[0], (char *const *)e->argv);
    dprintf(2, "exec %s: %s\n", e->argv[0], strerror(errno));
    _exit(127);
}

static const char *s_status_text(int status, char *buf, size_t size)
{
    if (status == -1)
        snprintf(buf, size, "could not fork");
    else if (WIFEXITED(status))
        snprintf(buf, size, "exit %d", WEXITSTATUS(status));
    else
        snprintf(buf, size, "killed by SIG%s", sigabbrev_np(WTERMSIG(status)) ?: "?");
    return buf;
}

static bool s_has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = strstr(text, line); p; p = strstr(p + 1, line))
        if ((p == text || p[-1] == '\n') && (p[n] == '\n' || p[n] == '\0'))
            return true;
    return false;
}

static void s_diag_output(const char *text)
{
    char *copy = strdup(text);
    for (char *save = NULL, *l = copy ? strtok_r(copy, "\n", &save) : NULL; l;
         l = strtok_r(NULL, "\n", &save))
        CB_DIAG("  | %s", l);
    free(copy);
}

/* Run argv in cwd under the filter (mode) and check it exits 0 printing the line expect (NULL:
 * any output). When it fails, run it again without the filter: failing there too is a SKIP (it
 * cannot run on this host), working there is a failure of the filter. Returns 1 when it
 * worked, 0 when it failed, -1 when skipped. */
static int s_check_program(int mode, const char *name, const char *const *argv, const char *cwd,
                           const char *expect)
{
    s_exec_t e = {argv, cwd};
    cb_buf_t out = {0};
    int status = s_run(mode, true, s_exec, &e, S_PROGRAM_MS, &out);
    bool ok = status == 0 && (!expect || s_has_line(cb_buf_str(&out), expect));
    if (!ok) {
        cb_buf_t control = {0};
        int cstatus = s_run(S_NO_FILTER, true, s_exec, &e, S_PROGRAM_MS, &control);
        if (cstatus != 0 || (expect && !s_has_line(cb_buf_str(&control), expect))) {
            CB_OK(1, "mode %d: %s # SKIP fails without the filter too", mode, name);
            s_diag_output(cb_buf_str(&control));
            cb_buf_free(&control);
            cb_buf_free(&out);
            return -1;
        }
        cb_buf_free(&control);
    }
    char st[64];
    CB_OK(ok, "mode %d: %s works under the filter (%s)", mode, name,
          s_status_text(status, st, sizeof st));
    if (!ok)
        s_diag_output(cb_buf_str(&out));
    cb_buf_free(&out);
    return ok;
}

/* ---------------------------------------------------------------------------------------------
 * The cases.
 * ------------------------------------------------------------------------------------------- */

static void s_report_seccomp(const void *unused)
{
    (void)unused;
    _exit(prctl(PR_GET_SECCOMP, 0, 0, 0, 0) == 2 ? 0 : 1); /* 2: SECCOMP_MODE_FILTER */
}

static void s_test_load(bool log_mode)
{
    CB_OK(sbx_seccomp_load(2) == -EINVAL, "an unknown mode is refused with EINVAL");
    for (int mode = 0; mode <= (log_mode ? 1 : 0); mode++) {
        cb_buf_t out = {0};
        char st[64];
        int status = s_run(mode, true, s_report_seccomp, NULL, S_PROBES_MS, &out);
        CB_OK(status == 0, "mode %d: the filter loads and the process is filtered (%s)", mode,
              s_status_text(status, st, sizeof st));
        if (status != 0)
            s_diag_output(cb_buf_str(&out));
        cb_buf_free(&out);
    }
}

static void s_test_programs(const char *dir)
{
    const char *py_data[] = {S_PYTHON, "-c", s_py_data, NULL};
    if (s_check_program(0, "python3 with numpy, pandas, matplotlib (Agg)", py_data, dir, "3") >=
        0) {
        cleanup_free char *png = cb_strdup_printf("%s/x.png", dir);
        struct stat st;
        CB_OK(png && stat(png, &st) == 0 && st.st_size > 0, "matplotlib wrote its figure");
    }

    const char *py_kernel[] = {S_PYTHON, "-c", s_py_kernel, NULL};
    s_check_program(0, "python3 with zmq (tcp and ipc), ipykernel, threads, asyncio, tornado",
                    py_kernel, dir, "ping! ipc tornado");

    const char *bash[] = {"bash", "-c", "echo hi | wc -c", NULL};
    s_check_program(0, "bash -c 'echo hi | wc -c'", bash, dir, "3");

    const char *cc[] = {"cc", "-O2", "-o", "hello", "hello.c", NULL};
    s_check_program(0, "cc -O2 -o hello hello.c", cc, dir, NULL);
    const char *hello[] = {"./hello", NULL};
    s_check_program(0, "./hello (built under the filter)", hello, dir, "42");

    const char *make[] = {"make", "-s", "run", NULL};
    s_check_program(0, "make -s run (cc, then the result)", make, dir, "42");

    const char *git[] = {"bash", "-c",
                         "h=$(git hash-object hello.c) || exit 3; test ${#h} = 40 || exit 4; "
                         "git --no-pager diff --no-index --quiet hello.c Makefile; "
                         "echo \"git diff=$?\"",
                         NULL};
    s_check_program(0, "git hash-object, git diff --no-index", git, dir, "git diff=1");
}

/* In the child: run every probe, writing each result as an int as soon as it is known, so a
 * probe that kills the child leaves the earlier results readable. */
static void s_run_probes(const void *unused)
{
    (void)unused;
    for (size_t i = 0; i < SBX_PROBE_COUNT; i++) {
        int result = sbx_probes[i].call(sbx_probes[i].arg);
        if (write(1, &result, sizeof result) != (ssize_t)sizeof result)
            _exit(1);
    }
}

/* The probe table under the filter in mode. control[i] is the unfiltered result of the KILLS
 * probes (run here, in throwaway children): a kernel that kills without the filter (no i386
 * entry) makes that check meaningless, so it is skipped. */
static void s_test_probes(int mode, const int *control)
{
    cb_buf_t out = {0};
    int status = s_run(mode, false, s_run_probes, NULL, S_PROBES_MS, &out);
    size_t got = out.len / sizeof(int);
    char st[64], have[64], want[64];
    CB_OK(status == 0 && got == SBX_PROBE_COUNT, "mode %d: the probing child ran every probe (%s)",
          mode, s_status_text(status, st, sizeof st));
    for (size_t i = 0; i < SBX_PROBE_COUNT; i++) {
        const sbx_probe_t *p = &sbx_probes[i];
        if (i >= got) {
            CB_OK(0, "mode %d: %s: no result, the probing child died first", mode, p->name);
            continue;
        }
        int result;
        memcpy(&result, out.data + i * sizeof(int), sizeof result);
        sbx_probe_describe(result, have, sizeof have);
        sbx_probe_describe(p->expect, want, sizeof want);
        if (p->kind == SBX_PROBE_KILLS && control[i] < 0) {
            CB_OK(1, "mode %d: %s # SKIP killed even without the filter (%s)", mode, p->name,
                  sbx_probe_describe(control[i], st, sizeof st));
        } else if (p->kind == SBX_PROBE_UNLISTED && mode == 1) {
            CB_OK(result != ENOSYS, "mode 1: %s gets through, logged (got %s)", p->name, have);
        } else {
            CB_OK(result == p->expect, "mode %d: %s -> %s (got %s)", mode, p->name, want, have);
        }
    }
    cb_buf_free(&out);
}

static bool s_log_action_available(void)
{
    char actions[512] = "";
    cleanup_close int fd = open("/proc/sys/kernel/seccomp/actions_avail", O_RDONLY | O_CLOEXEC);
    ssize_t n = fd < 0 ? -1 : read(fd, actions, sizeof actions - 1);
    actions[n > 0 ? n : 0] = '\0';
    char *save = NULL;
    for (char *w = strtok_r(actions, " \n", &save); w; w = strtok_r(NULL, " \n", &save))
        if (strcmp(w, "log") == 0)
            return true;
    return false;
}

int main(void)
{
    if (prctl(PR_GET_SECCOMP, 0, 0, 0, 0) < 0 && errno == EINVAL)
        CB_SKIP_ALL("this kernel has no seccomp");
    if (prctl(PR_GET_SECCOMP, 0, 0, 0, 0) != 0) /* a container's: ours stacks under it */
        CB_DIAG("already under a seccomp filter; where it is stricter, its answers show here");

    const char *tmp = getenv("TMPDIR");
    cleanup_free char *dir = cb_strdup_printf("%s/cb-seccomp-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!dir || !mkdtemp(dir))
        CB_SKIP_ALL("cannot make a temporary directory: %s", strerror(errno));
    cleanup_free char *hello = cb_strdup_printf("%s/hello.c", dir);
    cleanup_free char *makefile = cb_strdup_printf("%s/Makefile", dir);
    cb_error_t err = {0};
    if (!hello || !makefile || cb_write_file(hello, s_hello_c, strlen(s_hello_c), 0644, &err) < 0 ||
        cb_write_file(makefile, s_makefile, strlen(s_makefile), 0644, &err) < 0)
        CB_SKIP_ALL("cannot write the test sources: %s", err.msg);

    int control[SBX_PROBE_COUNT] = {0};
    for (size_t i = 0; i < SBX_PROBE_COUNT; i++)
        if (sbx_probes[i].kind == SBX_PROBE_KILLS)
            control[i] = sbx_probes[i].call(sbx_probes[i].arg);

    bool log_mode = s_log_action_available();
    s_test_load(log_mode);
    s_test_probes(0, control);
    s_test_programs(dir);

    if (log_mode) {
        s_test_probes(1, control);
        const char *bash[] = {"bash", "-c", "echo hi | wc -c", NULL};
        s_check_program(1, "bash -c 'echo hi | wc -c'", bash, dir, "3");
    } else {
        CB_DIAG("log mode not tested: /proc/sys/kernel/seccomp/actions_avail has no \"log\"");
    }

    if (cb_rm_rf(dir, &err) < 0)
        CB_DIAG("could not remove %s: %s", dir, err.msg);
    return cb_tap_done();
}
