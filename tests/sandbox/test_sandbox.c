/* test_sandbox.c: real sandboxes (sbx/sbx.h) driven from the host, one group per ctest entry.
 *
 *   test_sandbox probe PROBE SRC         sbx-probe (probe.c) copied into a sandbox and run there;
 *                                        every check it makes must pass
 *   test_sandbox isolation PROBE SRC     neighbours cannot see or kill each other; a dead gateway
 *                                        and sbx_destroy leave no process behind
 *   test_sandbox limits PROBE SRC        pids, memory, /tmp and workspace sizes, rlimits
 *   test_sandbox files PROBE SRC         symlinks planted inside never lead host file calls out
 *   test_sandbox unprivileged PROBE SRC  the probe group again as uid 65534 (when run as root)
 *   test_sandbox libexec                 cellblock's libexec dir at /opt/cellblock: there with
 *                                        the init in it, read-only, nosuid, nodev
 *   test_sandbox toolchains              each language's toolchain builds and runs a hello world
 *                                        inside (a SKIP line names the package of a missing one)
 *
 * PROBE is the sbx-probe binary, SRC the source tree (a host path the probe must not see).
 * Every wait is on the event itself (pipe EOF, the pidfd, sbx_proc_wait) with a deadline; the one
 * exception polls /proc for processes that are not ours to wait for.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <grp.h>
#include <limits.h>
#include <linux/magic.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cb/cleanup.h"
#include "cb/paths.h"
#include "cb/tap.h"
#include "cb/util.h"
#include "sbx/sbx.h"

#define MiB (1024ull * 1024ull)
#define RUN_MS 60000  /* the most one command inside may take */
#define GONE_MS 10000 /* the most processes may take to disappear */
#define NOBODY 65534  /* the uid the unprivileged group runs as */

typedef struct {
    const char *tmp;   /* this run's mkdtemp dir; run dirs go inside */
    const char *probe; /* the sbx-probe binary */
    const char *src;   /* the source tree */
} ctx_t;

static const char *const s_env[] = {"PATH=/usr/bin:/bin", "HOME=/home/user", "LANG=C.UTF-8", NULL};

/* ---- harness ----------------------------------------------------------------------------- */

static void s_sbx_destroyp(sbx_t **p) { sbx_destroy(p); }
static void s_proc_destroyp(sbx_proc_t **p) { sbx_proc_destroy(p); }
/* Declare sandboxes before their processes: cleanups run in reverse, processes first. */
#define cleanup_sbx __attribute__((cleanup(s_sbx_destroyp)))
#define cleanup_proc __attribute__((cleanup(s_proc_destroyp)))

/* For messages: the last word of a command (the script of sh -c, the file of cat). */
static const char *s_last_arg(const char *const *argv)
{
    const char *last = argv[0];
    for (; *argv; argv++)
        last = *argv;
    return last;
}

static void s_close(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

static int s_pipe(int *r, int *w)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return -1;
    *r = p[0];
    *w = p[1];
    return 0;
}

/* A sandbox whose run dir is <tmp>/<name> (names must differ: they name the cgroups too). */
static sbx_t *s_new(const ctx_t *c, const char *name, sbx_policy_t pol)
{
    char run[PATH_MAX];
    snprintf(run, sizeof run, "%s/%s", c->tmp, name);
    pol.run_dir = run;
    cb_error_t err = {0};
    sbx_t *s = sbx_new(&pol, &err);
    if (!s)
        CB_DIAG("sbx_new(%s): %s", name, err.msg);
    return s;
}

/* Start argv with the test environment and the given stdio (-1: /dev/null). */
static sbx_proc_t *s_spawn(sbx_t *s, const char *const *argv, int in, int out, int err_fd)
{
    cb_error_t err = {0};
    sbx_spawn_opts_t o = {
        .argv = argv, .env = s_env, .stdin_fd = in, .stdout_fd = out, .stderr_fd = err_fd};
    sbx_proc_t *p = sbx_spawn(s, &o, &err);
    if (!p)
        CB_DIAG("sbx_spawn(%s): %s", argv[0], err.msg);
    return p;
}

/* Read what is there into buf; at EOF or on an error close *fd and set it to -1. */
static void s_drain(int *fd, cb_buf_t *buf)
{
    char chunk[65536];
    ssize_t n = read(*fd, chunk, sizeof chunk);
    if (n > 0) {
        cb_buf_append(buf, chunk, (size_t)n);
        return;
    }
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    s_close(fd);
}

/* Read *fd into buf until buf holds needle (NULL: until EOF, which closes *fd) or timeout_ms
 * pass. Returns whether it got there. */
static bool s_read_until(int *fd, cb_buf_t *buf, const char *needle, int timeout_ms)
{
    int64_t deadline = cb_now_ms() + timeout_ms;
    while (*fd >= 0 && !(needle && strstr(cb_buf_str(buf), needle))) {
        int left = (int)(deadline - cb_now_ms());
        struct pollfd pf = {.fd = *fd, .events = POLLIN};
        if (left <= 0 || poll(&pf, 1, left) < 0)
            return false;
        if (pf.revents)
            s_drain(fd, buf);
    }
    return needle ? strstr(cb_buf_str(buf), needle) != NULL : *fd < 0;
}

/* Run argv in s with stdin_text on its stdin (NULL: /dev/null); collect stdout and stderr until
 * both reach EOF and the process is reaped. Returns 0, or -1 (with a diagnostic) on a spawn
 * failure or when timeout_ms passes first (the process is then killed). */
static int s_run_in(sbx_t *s, const char *const *argv, const char *stdin_text, cb_buf_t *out,
                    cb_buf_t *errb, int timeout_ms, sbx_exit_t *ex)
{
    cleanup_close int in_r = -1, in_w = -1, out_r = -1, out_w = -1, err_r = -1, err_w = -1;
    if ((stdin_text && s_pipe(&in_r, &in_w) < 0) || s_pipe(&out_r, &out_w) < 0 ||
        s_pipe(&err_r, &err_w) < 0) {
        CB_DIAG("pipe: %s", strerror(errno));
        return -1;
    }
    cleanup_proc sbx_proc_t *p = s_spawn(s, argv, in_r, out_w, err_w);
    s_close(&in_r);
    s_close(&out_w);
    s_close(&err_w);
    if (!p)
        return -1;
    size_t sent = 0, todo = stdin_text ? strlen(stdin_text) : 0;
    if (in_w >= 0)
        fcntl(in_w, F_SETFL, O_NONBLOCK);
    bool reaped = false;
    int64_t deadline = cb_now_ms() + timeout_ms;
    while (out_r >= 0 || err_r >= 0 || !reaped) {
        int left = (int)(deadline - cb_now_ms());
        if (left <= 0) {
            CB_DIAG("'%s' did not finish within %d ms", s_last_arg(argv), timeout_ms);
            return -1;
        }
        if (in_w >= 0 && sent == todo)
            s_close(&in_w);
        struct pollfd pf[4] = {{.fd = out_r, .events = POLLIN},
                               {.fd = err_r, .events = POLLIN},
                               {.fd = in_w, .events = POLLOUT},
                               {.fd = reaped ? -1 : sbx_proc_pidfd(p), .events = POLLIN}};
        if (poll(pf, 4, left) < 0 && errno != EINTR) {
            CB_DIAG("poll: %s", strerror(errno));
            return -1;
        }
        if (pf[0].revents)
            s_drain(&out_r, out);
        if (pf[1].revents)
            s_drain(&err_r, errb);
        if (pf[2].revents) {
            ssize_t n = write(in_w, stdin_text + sent, todo - sent);
            if (n > 0)
                sent += (size_t)n;
            else if (n < 0 && errno != EAGAIN && errno != EINTR)
                s_close(&in_w);
        }
        if (pf[3].revents) {
            cb_error_t err = {0};
            if (sbx_proc_wait(p, ex, left, &err) < 0) {
                CB_DIAG("sbx_proc_wait(%s): %s", argv[0], err.msg);
                return -1;
            }
            reaped = true;
        }
    }
    return 0;
}

/* For one-line messages: drop b's trailing newlines, turn the others into '|'. Returns b's text. */
static const char *s_flat(cb_buf_t *b)
{
    while (b->len && b->data[b->len - 1] == '\n')
        b->data[--b->len] = '\0';
    for (size_t i = 0; i < b->len; i++)
        b->data[i] = b->data[i] == '\n' ? '|' : b->data[i];
    return cb_buf_str(b);
}

/* s_run_in for commands expected to exit 0: stdout into *out; stderr shown when they do not. */
static bool s_run_ok(sbx_t *s, const char *const *argv, const char *stdin_text, cb_buf_t *out)
{
    cleanup_buf cb_buf_t errb = {0};
    sbx_exit_t ex = {0};
    if (s_run_in(s, argv, stdin_text, out, &errb, RUN_MS, &ex) < 0)
        return false;
    if (ex.exited && ex.code == 0)
        return true;
    cleanup_free char *how = sbx_exit_describe(&ex);
    CB_DIAG("'%s' ended with %s; stderr: %.500s", s_last_arg(argv), how, s_flat(&errb));
    return false;
}

/* Print each line of text as "# <prefix>: <line>"; count TAP "ok" and "not ok" lines. */
static void s_relay(const char *prefix, const char *text, int *oks, int *not_oks)
{
    for (const char *line = text; *line;) {
        size_t n = strcspn(line, "\n");
        /* fwrite, not "%.*s": gcc's format check under ASan takes line for NULL */
        printf("# %s: ", prefix);
        fwrite(line, 1, n, stdout);
        printf("\n");
        fflush(stdout);
        if (oks && strncmp(line, "ok ", 3) == 0)
            (*oks)++;
        if (not_oks && strncmp(line, "not ok", 6) == 0)
            (*not_oks)++;
        line += n + (line[n] == '\n');
    }
}

/* Read a small /proc file (cb_read_file trusts st_size, which is 0 there) NUL-terminated into
 * buf. Returns false when it cannot be read. */
static bool s_read_proc(const char *path, char *buf, size_t cap)
{
    cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd < 0 ? -1 : read(fd, buf, cap - 1);
    buf[n > 0 ? n : 0] = '\0';
    return n >= 0;
}

/* /proc/<pid>/stat's state letter, or 0 when there is no such process. */
static char s_state(pid_t pid)
{
    char path[64], stat[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    const char *paren = s_read_proc(path, stat, sizeof stat) ? strrchr(stat, ')') : NULL;
    return paren && paren[1] == ' ' ? paren[2] : 0;
}

static bool s_gone(pid_t pid)
{
    char st = s_state(pid);
    return st == 0 || st == 'Z' || st == 'X';
}

/* Wait up to GONE_MS until every pid is gone. These are not our children and give no event to
 * wait on, so /proc is looked at every 20 ms. */
static bool s_wait_gone(const pid_t *pids, int n)
{
    int64_t deadline = cb_now_ms() + GONE_MS;
    for (;;) {
        int left = 0;
        for (int i = 0; i < n; i++)
            left += !s_gone(pids[i]);
        if (left == 0)
            return true;
        if (cb_now_ms() > deadline)
            return false;
        poll(NULL, 0, 20);
    }
}

/* The host pids of every live process in the pid namespace named by ns (a readlink of
 * /proc/<pid>/ns/pid, "pid:[...]"); at most max. Returns the count. */
static int s_ns_members(const char *ns, pid_t *pids, int max)
{
    DIR *d = opendir("/proc");
    int n = 0;
    for (struct dirent *de; d && (de = readdir(d));) {
        char path[300], link[64] = "";
        pid_t pid = (pid_t)atoi(de->d_name);
        snprintf(path, sizeof path, "/proc/%s/ns/pid", de->d_name);
        if (pid <= 0 || readlink(path, link, sizeof link - 1) < 0 || strcmp(link, ns) != 0 ||
            s_gone(pid))
            continue;
        if (n < max)
            pids[n] = pid;
        n++;
    }
    if (d)
        closedir(d);
    return n;
}

/* ---- probe: sbx-probe run inside ---------------------------------------------------------- */

static void s_probe(const ctx_t *c)
{
    if (!c->probe || !c->src) {
        CB_OK(0, "usage: test_sandbox probe SBX-PROBE SOURCE-DIR");
        return;
    }
    setenv("CELLBLOCK_HOST_SECRET", "must-not-reach-the-sandbox", 1);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof addr;
    cleanup_close int lis = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lis < 0 || bind(lis, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(lis, 8) < 0 ||
        getsockname(lis, (struct sockaddr *)&addr, &alen) < 0) {
        CB_OK(0, "a listener on the host's 127.0.0.1: %s", strerror(errno));
        return;
    }
    cb_error_t err = {0};
    size_t len = 0;
    cleanup_free char *bin = cb_read_file(c->probe, 64 * MiB, &len, &err);
    if (!CB_OK(bin, "read the probe binary: %s", bin ? "done" : err.msg))
        return;

    cleanup_sbx sbx_t *s =
        s_new(c, "probe", (sbx_policy_t){.memory_bytes = 512 * MiB, .pids_max = 256});
    if (!CB_OK(s, "a sandbox for the probe"))
        return;
    int rc = sbx_file_write(s, "sbx-probe", bin, len, false, &err);
    CB_OK(rc == 0, "copy sbx-probe into the workspace%s%s", rc ? ": " : "", rc ? err.msg : "");
    cleanup_buf cb_buf_t out = {0};
    cleanup_buf cb_buf_t errb = {0};
    CB_OK(s_run_ok(s, (const char *const[]){"/bin/chmod", "755", "/home/user/sbx-probe", NULL},
                   NULL, &out),
          "chmod 755 the probe inside");

    char port[16], pid[16];
    snprintf(port, sizeof port, "%d", ntohs(addr.sin_port));
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    /* clang-format off */
    const char *const argv[] = {"/home/user/sbx-probe", "--env-keys", "PATH,HOME,LANG",
                                "--host-port", port, "--host-pid", pid,
                                "--host-path", "/root", "--host-path", c->tmp,
                                "--host-path", c->src, "--host-path", "/etc/shadow", NULL};
    /* clang-format on */
    sbx_exit_t ex = {0};
    rc = s_run_in(s, argv, NULL, &out, &errb, RUN_MS, &ex);
    int oks = 0, not_oks = 0;
    s_relay("probe", cb_buf_str(&out), &oks, &not_oks);
    s_relay("probe stderr", cb_buf_str(&errb), NULL, NULL);
    cleanup_free char *how = sbx_exit_describe(&ex);
    CB_OK(rc == 0 && ex.exited && ex.code == 0, "the probe exits 0 (got %s)", rc ? "no exit" : how);
    CB_OK(oks >= 60, "the probe passes at least 60 checks (got %d)", oks);
    CB_OK(not_oks == 0, "the probe fails none (got %d)", not_oks);
    struct pollfd pf = {.fd = lis, .events = POLLIN};
    CB_OK(poll(&pf, 1, 0) == 0, "the host listener on port %s never got a connection", port);
}

/* ---- isolation ---------------------------------------------------------------------------- */

/* Neighbours: B cannot see A's processes nor kill them. */
static void s_neighbours(const ctx_t *c)
{
    cleanup_sbx sbx_t *a = s_new(c, "iso-a", (sbx_policy_t){0});
    cleanup_sbx sbx_t *b = s_new(c, "iso-b", (sbx_policy_t){0});
    if (!CB_OK(a && b, "two sandboxes"))
        return;
    cleanup_proc sbx_proc_t *sleeper =
        s_spawn(a, (const char *const[]){"/bin/sleep", "31337", NULL}, -1, -1, -1);
    if (!CB_OK(sleeper, "sleep 31337 runs in A"))
        return;
    cleanup_buf cb_buf_t out = {0};
    bool ran = s_run_ok(b,
                        (const char *const[]){"/bin/sh", "-c",
                                              "cat /proc/[0-9]*/cmdline | tr \"\\0\" \" \"; "
                                              "kill -9 -1; true",
                                              NULL},
                        NULL, &out);
    bool listed = ran && strstr(cb_buf_str(&out), "/bin/sh");
    CB_OK(listed, "B lists its own processes (saw: %.200s)", s_flat(&out));
    CB_OK(ran && !strstr(cb_buf_str(&out), "31337"), "B does not see A's sleep 31337");
    cb_error_t err = {0};
    int rc = sbx_proc_wait(sleeper, NULL, 300, &err);
    CB_OK(rc < 0 && err.kind == CB_ERR_TIMEOUT, "A's sleep survives B's kill -9 -1 (%s)",
          rc < 0 ? err.msg : "it exited");
}

/* The gateway killed with SIGKILL: its sandboxes end with it. */
static void s_gateway_death(const ctx_t *c)
{
    cleanup_close int r = -1, w = -1;
    if (s_pipe(&r, &w) < 0) {
        CB_OK(0, "pipe: %s", strerror(errno));
        return;
    }
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        /* A stand-in gateway: no TAP output from here, and never outlive the test. */
        prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
        char run[PATH_MAX];
        snprintf(run, sizeof run, "%s/gw", c->tmp);
        sbx_t *s = sbx_new(&(sbx_policy_t){.run_dir = run}, NULL);
        sbx_spawn_opts_t o = {.argv = (const char *const[]){"/bin/sleep", "1000", NULL},
                              .env = s_env,
                              .stdin_fd = -1,
                              .stdout_fd = -1,
                              .stderr_fd = -1};
        sbx_proc_t *p = s ? sbx_spawn(s, &o, NULL) : NULL;
        pid_t pids[2] = {s ? sbx_init_pid(s) : 0, p ? sbx_proc_pid(p) : 0};
        if (write(w, pids, sizeof pids) != sizeof pids)
            _exit(1);
        for (;;)
            pause();
    }
    s_close(&w);
    pid_t pids[2] = {0, 0};
    struct pollfd pf = {.fd = r, .events = POLLIN};
    bool got = child > 0 && poll(&pf, 1, GONE_MS) == 1 && read(r, pids, sizeof pids) == sizeof pids;
    if (child > 0) {
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
    }
    if (!CB_OK(got && pids[0] > 0 && pids[1] > 0, "a stand-in gateway made a sandbox with a sleep"))
        return;
    bool gone = s_wait_gone(pids, 2);
    CB_OK(gone, "the gateway SIGKILLed, its init %d and sleep %d go within %d ms (now: %c, %c)",
          (int)pids[0], (int)pids[1], GONE_MS, s_state(pids[0]) ?: '-', s_state(pids[1]) ?: '-');

    /* Nobody is left to remove the dead gateway's cgroups: remove them here, and say so. */
    cleanup_fclose FILE *f = fopen("/proc/self/cgroup", "re");
    char line[1024];
    int left = 0;
    while (f && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        char *path = strchr(line, ':') ? strchr(strchr(line, ':') + 1, ':') : NULL;
        for (int v1 = 0; path && v1 < 2; v1++) {
            char pattern[PATH_MAX];
            snprintf(pattern, sizeof pattern, "/sys/fs/cgroup%s%s/cellblock-%d-*", v1 ? "/*" : "",
                     strcmp(path + 1, "/") ? path + 1 : "", (int)child);
            glob_t g = {0};
            if (glob(pattern, GLOB_ONLYDIR, NULL, &g) == 0)
                for (size_t i = 0; i < g.gl_pathc; i++)
                    left += rmdir(g.gl_pathv[i]) == 0;
            globfree(&g);
        }
    }
    if (left)
        CB_DIAG("removed %d cgroup directories the dead gateway left behind", left);
}

/* sbx_destroy: no process of the sandbox is left, nor its run dir. */
static void s_destroy_clean(const ctx_t *c)
{
    sbx_t *s = s_new(c, "iso-c", (sbx_policy_t){0});
    if (!CB_OK(s, "a sandbox to destroy"))
        return;
    char run_dir[PATH_MAX], ns[64] = "", path[64];
    snprintf(run_dir, sizeof run_dir, "%s", sbx_run_dir(s));
    snprintf(path, sizeof path, "/proc/%d/ns/pid", (int)sbx_init_pid(s));
    if (readlink(path, ns, sizeof ns - 1) < 0)
        CB_DIAG("readlink %s: %s", path, strerror(errno));
    /* An orphan in a session of its own (so it outlives its shell's group): the init inherits
     * it, and no sbx_proc_t holds it. */
    cleanup_buf cb_buf_t out = {0};
    bool ran = s_run_ok(
        s,
        (const char *const[]){"/bin/sh", "-c",
                              "/usr/bin/setsid -f /bin/sleep 1000 >/dev/null 2>&1; until grep -qx "
                              "sleep /proc/[0-9]*/comm 2>/dev/null; do :; done; echo started",
                              NULL},
        NULL, &out);
    CB_OK(ran && strstr(cb_buf_str(&out), "started"), "the orphaned sleep was started inside");
    pid_t members[16], sleeper = 0;
    int n = ns[0] ? s_ns_members(ns, members, 16) : 0;
    for (int i = 0; i < n && i < 16; i++) {
        char comm_path[64], comm[64];
        snprintf(comm_path, sizeof comm_path, "/proc/%d/comm", (int)members[i]);
        if (s_read_proc(comm_path, comm, sizeof comm) && strcmp(comm, "sleep\n") == 0)
            sleeper = members[i];
    }
    CB_OK(ran && sleeper > 0, "an orphaned sleep runs in the sandbox (host pid %d, %d processes)",
          (int)sleeper, n);
    int64_t t0 = cb_now_ms();
    sbx_destroy(&s);
    CB_DIAG("sbx_destroy took %lld ms", (long long)(cb_now_ms() - t0));
    CB_OK(sleeper > 0 && s_gone(sleeper), "after sbx_destroy the sleep (%d) is gone", (int)sleeper);
    CB_OK(ns[0] && s_ns_members(ns, members, 16) == 0, "no process is left in its pid namespace");
    struct stat st;
    CB_OK(stat(run_dir, &st) < 0 && errno == ENOENT, "its run dir %s is removed", run_dir);
}

static void s_isolation(const ctx_t *c)
{
    s_neighbours(c);
    s_gateway_death(c);
    s_destroy_clean(c);
}

/* ---- limits ------------------------------------------------------------------------------- */

static void s_limit_pids(const ctx_t *c)
{
    sbx_t *bomb = s_new(c, "pids-bomb", (sbx_policy_t){.pids_max = 64});
    cleanup_sbx sbx_t *other = s_new(c, "pids-other", (sbx_policy_t){0});
    if (!CB_OK(bomb && other, "a sandbox with pids_max 64 and a neighbour")) {
        sbx_destroy(&bomb);
        return;
    }
    if (!sbx_layers(bomb)->cgroup_pids)
        CB_DIAG("no pids controller (%s): RLIMIT_NPROC instead, usage not checked",
                sbx_layers(bomb)->cgroup_why);
    cleanup_close int err_r = -1, err_w = -1;
    sbx_proc_t *p = s_pipe(&err_r, &err_w) < 0
                        ? NULL
                        : s_spawn(bomb,
                                  (const char *const[]){
                                      "/bin/bash", "-c",
                                      "for i in $(seq 1 200); do sleep 30 & done; wait", NULL},
                                  -1, -1, err_w);
    s_close(&err_w);
    cleanup_buf cb_buf_t errb = {0};
    bool refused = p && s_read_until(&err_r, &errb, "Resource temporarily unavailable", RUN_MS);
    CB_OK(refused, "forks past the limit are refused (stderr: %.200s)", s_flat(&errb));
    sbx_usage_t u = {0};
    uint64_t most = 0;
    for (int i = 0; i < 5; i++) {
        s_read_until(&err_r, &errb, "\x01", 50); /* sample every 50 ms, the pipe kept drained */
        if (sbx_usage(bomb, &u, NULL) == 0 && u.pids > most)
            most = u.pids;
    }
    if (sbx_layers(bomb)->cgroup_pids)
        CB_OK(most >= 48 && most <= 64, "sbx_usage().pids is in [48, 64]: full (most seen %llu)",
              (unsigned long long)most);
    cleanup_buf cb_buf_t out = {0};
    CB_OK(s_run_ok(other, (const char *const[]){"/bin/true", NULL}, NULL, &out),
          "meanwhile /bin/true in a second sandbox starts and exits 0");
    /* Teardown ends every process of the bomb: its init (and with it the pid namespace) is gone
     * when sbx_destroy returns. The time is a figure, not a verdict. */
    pid_t init = sbx_init_pid(bomb);
    int64_t t0 = cb_now_ms();
    sbx_proc_destroy(&p);
    sbx_destroy(&bomb);
    CB_DIAG("tearing down the fork-bombed sandbox took %lld ms", (long long)(cb_now_ms() - t0));
    CB_OK(s_gone(init), "after teardown the fork-bombed sandbox's init (pid %d) is gone",
          (int)init);
}

static void s_limit_memory(const ctx_t *c)
{
    cleanup_sbx sbx_t *s = s_new(c, "mem", (sbx_policy_t){.memory_bytes = 256 * MiB});
    cleanup_sbx sbx_t *n = s_new(c, "mem-neighbour", (sbx_policy_t){0});
    if (!CB_OK(s && n, "a sandbox with 256 MiB and a neighbour"))
        return;
    if (!sbx_layers(s)->cgroup_memory || access("/usr/bin/python3", X_OK) < 0) {
        CB_DIAG("memory part skipped: %s (%s)",
                sbx_layers(s)->cgroup_memory ? "no /usr/bin/python3" : "no memory controller",
                sbx_layers(s)->cgroup_why);
        return;
    }
    cleanup_proc sbx_proc_t *sleeper =
        s_spawn(n, (const char *const[]){"/bin/sleep", "30", NULL}, -1, -1, -1);
    cleanup_buf cb_buf_t out = {0};
    cleanup_buf cb_buf_t errb = {0};
    sbx_exit_t ex = {0};
    int rc = s_run_in(
        s, (const char *const[]){"/usr/bin/python3", "-c", "b = b'x' * (20 * 1024**3)", NULL}, NULL,
        &out, &errb, RUN_MS, &ex);
    cleanup_free char *how = sbx_exit_describe(&ex);
    CB_OK(rc == 0 && !ex.exited && ex.signal == SIGKILL && ex.oom,
          "20 GiB in python3 is killed by SIGKILL for OOM (got %s; stderr %.200s)",
          rc ? "no exit" : how, s_flat(&errb));
    sbx_usage_t u = {0};
    rc = sbx_usage(s, &u, NULL);
    CB_OK(rc == 0 && u.oom_kills >= 1, "sbx_usage().oom_kills >= 1 (got %llu)",
          (unsigned long long)u.oom_kills);
    cb_error_t err = {0};
    rc = sleeper ? sbx_proc_wait(sleeper, NULL, 300, &err) : 0;
    CB_OK(sleeper && rc < 0 && err.kind == CB_ERR_TIMEOUT, "the neighbour's sleep 30 lives on");
}

static void s_limit_space(const ctx_t *c)
{
    cleanup_sbx sbx_t *s =
        s_new(c, "space", (sbx_policy_t){.tmp_bytes = 16 * MiB, .workspace_bytes = 16 * MiB});
    if (!CB_OK(s, "a sandbox with 16 MiB /tmp and workspace"))
        return;
    static const char *const fills[2][2] = {
        {"/tmp", "dd if=/dev/zero of=/tmp/fill bs=1M count=64; echo rc=$?; stat -c %s /tmp/fill"},
        {"/home/user", "dd if=/dev/zero of=/home/user/fill bs=1M count=64; echo rc=$?"}};
    for (int i = 0; i < 2; i++) {
        cleanup_buf cb_buf_t out = {0};
        cleanup_buf cb_buf_t errb = {0};
        sbx_exit_t ex = {0};
        int rc = s_run_in(s, (const char *const[]){"/bin/sh", "-c", fills[i][1], NULL}, NULL, &out,
                          &errb, RUN_MS, &ex);
        CB_OK(rc == 0 && strstr(cb_buf_str(&errb), "No space left on device"),
              "filling %s: No space left on device (stdout %.100s; stderr %.300s)", fills[i][0],
              s_flat(&out), s_flat(&errb));
        long long size = -1;
        sscanf(cb_buf_str(&out), "rc=%*d|%lld", &size);
        if (i == 1) {
            size_t count = 0;
            sbx_dirent_t *list = sbx_file_list(s, "/home/user", &count, NULL);
            size = -1;
            for (size_t k = 0; k < count; k++)
                if (strcmp(list[k].name, "fill") == 0)
                    size = (long long)list[k].size;
            sbx_dirents_free(list, count);
        }
        CB_OK(size >= (long long)(15 * MiB) && size <= (long long)(16 * MiB),
              "%s/fill is between 15 and 16 MiB (got %lld bytes)", fills[i][0], size);
    }

    /* RLIMIT_NOFILE: 4096 by default. */
    cleanup_buf cb_buf_t out = {0};
    bool ran = s_run_ok(s, (const char *const[]){"/bin/sh", "-c", "ulimit -n", NULL}, NULL, &out);
    ran = ran && strcmp(cb_buf_str(&out), "4096\n") == 0;
    CB_OK(ran, "ulimit -n is 4096 inside (got %s)", s_flat(&out));
}

static void s_limit_host_write(const ctx_t *c)
{
    cleanup_sbx sbx_t *s = s_new(c, "space-host", (sbx_policy_t){.workspace_bytes = 16 * MiB});
    if (!CB_OK(s, "a sandbox with a 16 MiB workspace"))
        return;
    static const char keep[] = "written before the workspace filled up\n";
    cb_error_t err = {0};
    int rc = sbx_file_write(s, "keep.txt", keep, sizeof keep - 1, false, &err);
    CB_OK(rc == 0, "a small file is written from the host%s%s", rc ? ": " : "", rc ? err.msg : "");
    cleanup_free char *big = calloc(1, 32 * MiB);
    cb_error_clear(&err);
    rc = big ? sbx_file_write(s, "big.bin", big, 32 * MiB, false, &err) : 0;
    CB_OK(big && rc < 0 && err.errnum == ENOSPC,
          "a 32 MiB write from the host fails with ENOSPC (got %s)", rc < 0 ? err.msg : "success");
    cleanup_buf cb_buf_t back = {0};
    rc = sbx_file_read(s, "keep.txt", 4096, &back, &err);
    CB_OK(rc == 0 && strcmp(cb_buf_str(&back), keep) == 0, "the small file is intact");
    size_t count = 0;
    sbx_dirent_t *list = sbx_file_list(s, "", &count, &err);
    CB_OK(list && count == 1 && strcmp(list[0].name, "keep.txt") == 0,
          "nothing else is left in the workspace (%zu entries, first %s)", count,
          count ? list[0].name : "none");
    sbx_dirents_free(list, count);
}

/* /run/cellblock is a tmpfs of its own: filling it stops at SBX_RUN_DIR_BYTES and at
 * SBX_RUN_DIR_INODES, and nothing of it lands on the host's disk (the host run dir stays empty). */
static void s_limit_run_dir(const ctx_t *c)
{
    cleanup_sbx sbx_t *s = s_new(c, "run-fill", (sbx_policy_t){0});
    if (!CB_OK(s, "a sandbox to fill /run/cellblock"))
        return;
    cleanup_buf cb_buf_t out = {0};
    cleanup_buf cb_buf_t errb = {0};
    sbx_exit_t ex = {0};
    const char *bytes = "dd if=/dev/zero of=/run/cellblock/fill bs=64k count=1024 2>/dev/null; "
                        "echo rc=$?; stat -c %s /run/cellblock/fill; rm -f /run/cellblock/fill";
    int rc = s_run_in(s, (const char *const[]){"/bin/sh", "-c", bytes, NULL}, NULL, &out, &errb,
                      RUN_MS, &ex);
    int dd_rc = -1;
    long long size = -1;
    sscanf(cb_buf_str(&out), "rc=%d %lld", &dd_rc, &size);
    CB_OK(rc == 0 && dd_rc != 0 && size >= 0 && size <= (long long)SBX_RUN_DIR_BYTES,
          "writing 64 MiB into /run/cellblock stops at %u bytes (dd rc %d, the file %lld bytes)",
          SBX_RUN_DIR_BYTES, dd_rc, size);
    cb_buf_clear(&out);
    const char *inodes = "i=0; while [ $i -lt 5000 ] && : 2>/dev/null > /run/cellblock/n$i; do "
                         "i=$((i+1)); done; echo $i";
    rc = s_run_in(s, (const char *const[]){"/bin/bash", "-c", inodes, NULL}, NULL, &out, &errb,
                  RUN_MS, &ex);
    long made = strtol(cb_buf_str(&out), NULL, 10);
    CB_OK(rc == 0 && made > 0 && made < (long)SBX_RUN_DIR_INODES,
          "creating 5000 files in /run/cellblock stops below %u inodes (made %ld)",
          SBX_RUN_DIR_INODES, made);
    struct statfs fs;
    CB_OK(fstatfs(sbx_run_fd(s), &fs) == 0 && fs.f_type == TMPFS_MAGIC &&
              (uint64_t)fs.f_blocks * fs.f_bsize <= SBX_RUN_DIR_BYTES,
          "what was made lies on the sandbox's own tmpfs of at most %u bytes", SBX_RUN_DIR_BYTES);
    DIR *d = opendir(sbx_run_dir(s));
    int entries = 0;
    for (struct dirent *e = d ? readdir(d) : NULL; e; e = readdir(d))
        entries += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    if (d)
        closedir(d);
    CB_OK(d && entries == 0, "the host run dir %s holds none of it (%d entries)", sbx_run_dir(s),
          entries);
}

static void s_limits(const ctx_t *c)
{
    s_limit_run_dir(c);
    s_limit_pids(c);
    s_limit_memory(c);
    s_limit_space(c);
    s_limit_host_write(c);
}

/* ---- files: planted symlinks ------------------------------------------------------------- */

static void s_files(const ctx_t *c)
{
    cleanup_sbx sbx_t *s = s_new(c, "files", (sbx_policy_t){0});
    if (!CB_OK(s, "a sandbox for files"))
        return;
    cleanup_buf cb_buf_t out = {0};
    CB_OK(s_run_ok(s,
                   (const char *const[]){"/bin/sh", "-c",
                                         "ln -s /etc/passwd /home/user/evil && "
                                         "ln -s /etc /home/user/etcdir && "
                                         "ln -s ../../.. /home/user/up",
                                         NULL},
                   NULL, &out),
          "symlinks planted from inside");
    size_t passwd_len = 0;
    cleanup_free char *passwd = cb_read_file("/etc/passwd", 16 * MiB, &passwd_len, NULL);

    static const char *const reads[] = {"evil", "etcdir/passwd", "up/etc/passwd", NULL};
    for (const char *const *r = reads; *r; r++) {
        cleanup_buf cb_buf_t got = {0};
        cb_error_t err = {0};
        int rc = sbx_file_read(s, *r, 16 * MiB, &got, &err);
        CB_OK(rc < 0, "sbx_file_read(\"%s\") is refused (%s)", *r, rc < 0 ? err.msg : "it read");
    }
    static const char *const writes[] = {"evil", "etcdir/x", NULL};
    for (const char *const *w = writes; *w; w++) {
        cb_error_t err = {0};
        int rc = sbx_file_write(s, *w, "pwned\n", 6, false, &err);
        CB_OK(rc < 0, "sbx_file_write(\"%s\") is refused (%s)", *w, rc < 0 ? err.msg : "it wrote");
    }
    size_t after_len = 0;
    cleanup_free char *after = cb_read_file("/etc/passwd", 16 * MiB, &after_len, NULL);
    CB_OK(passwd && after && passwd_len == after_len && memcmp(passwd, after, after_len) == 0,
          "the host's /etc/passwd is unchanged");
    struct stat st;
    CB_OK(lstat("/etc/x", &st) < 0 && errno == ENOENT, "no /etc/x on the host");

    static const char hello[] = "from the host\n";
    cb_error_t err = {0};
    int rc = sbx_file_write(s, "hello.txt", hello, sizeof hello - 1, false, &err);
    cb_buf_clear(&out);
    bool ran =
        rc == 0 &&
        s_run_ok(s, (const char *const[]){"/bin/cat", "/home/user/hello.txt", NULL}, NULL, &out);
    ran = ran && strcmp(cb_buf_str(&out), hello) == 0;
    CB_OK(ran, "a file written from the host reads the same inside (%s)",
          rc ? err.msg : s_flat(&out));
    cb_buf_clear(&out);
    ran = s_run_ok(s, (const char *const[]){"/bin/sh", "-c", "cat > /home/user/made.txt", NULL},
                   "made inside\n", &out);
    cleanup_buf cb_buf_t back = {0};
    rc = ran ? sbx_file_read(s, "made.txt", 4096, &back, &err) : -1;
    CB_OK(rc == 0 && strcmp(cb_buf_str(&back), "made inside\n") == 0,
          "a file written inside reads the same from the host");

    size_t count = 0;
    sbx_dirent_t *list = sbx_file_list(s, "/home/user", &count, &err);
    int links = 0;
    for (size_t i = 0; i < count; i++)
        links += list[i].type == SBX_FILE_SYMLINK &&
                 (!strcmp(list[i].name, "evil") || !strcmp(list[i].name, "etcdir") ||
                  !strcmp(list[i].name, "up"));
    CB_OK(list && links == 3, "the listing shows evil, etcdir and up as symlinks (%d of 3%s%s)",
          links, list ? "" : ": ", list ? "" : err.msg);
    sbx_dirents_free(list, count);
}

/* ---- unprivileged: the probe group as uid 65534 ------------------------------------------- */

/* Can uid/gid 65534 read and execute each path, and make a user namespace? NULL when so, else
 * what it cannot do. Checked in a child that becomes 65534 (access() as root says nothing). */
static const char *s_nobody_can(const char *const *paths, int n)
{
    pid_t pid = fork();
    if (pid == 0) {
        if (setgroups(0, NULL) < 0 || setresgid(NOBODY, NOBODY, NOBODY) < 0 ||
            setresuid(NOBODY, NOBODY, NOBODY) < 0)
            _exit(100);
        for (int i = 0; i < n; i++)
            if (access(paths[i], R_OK | X_OK) < 0)
                _exit(i + 1);
        _exit(unshare(CLONE_NEWUSER) < 0 ? 101 : 0);
    }
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status))
        return "the check itself failed";
    int code = WEXITSTATUS(status);
    if (code == 0 || code >= 100)
        return code ? code == 100 ? "cannot become uid 65534"
                                  : "uid 65534 cannot create a user namespace"
                    : NULL;
    static char why[PATH_MAX + 64];
    snprintf(why, sizeof why, "uid 65534 cannot read and execute %s", paths[code - 1]);
    return why;
}

static void s_unprivileged(const ctx_t *c)
{
    if (geteuid() != 0) {
        s_probe(c);
        return;
    }
    if (!c->probe || !c->src) {
        CB_OK(0, "usage: test_sandbox unprivileged SBX-PROBE SOURCE-DIR");
        return;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = '\0';
    const char *const need[] = {exe, c->probe, sbx_default_init_path(), "/usr/bin/setpriv"};
    const char *why = n > 0 ? s_nobody_can(need, 4) : "cannot read /proc/self/exe";
    if (why) {
        rmdir(c->tmp);
        CB_SKIP_ALL("%s", why);
    }

    cleanup_close int r = -1, w = -1;
    if (s_pipe(&r, &w) < 0) {
        CB_OK(0, "pipe: %s", strerror(errno));
        return;
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(w, STDOUT_FILENO);
        execl("/usr/bin/setpriv", "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
              "--reset-env", "/usr/bin/env", "HOME=/tmp", exe, "probe", c->probe, c->src,
              (char *)NULL);
        _exit(127);
    }
    s_close(&w);
    cleanup_buf cb_buf_t out = {0};
    if (!s_read_until(&r, &out, NULL, 2 * RUN_MS) && pid > 0)
        kill(pid, SIGKILL);
    int status = 0;
    bool waited = pid > 0 && waitpid(pid, &status, 0) == pid;
    int oks = 0, not_oks = 0;
    s_relay("as uid 65534", cb_buf_str(&out), &oks, &not_oks);
    CB_OK(waited && WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "the probe group passes as uid 65534 (%d ok, %d not ok, status 0x%x)", oks, not_oks,
          status);
}

/* ---- libexec: cellblock's own programs at /opt/cellblock ---------------------------------- */

static void s_libexec(const ctx_t *c)
{
    cleanup_sbx sbx_t *s = s_new(c, "libexec", (sbx_policy_t){.memory_bytes = 512 * MiB});
    if (!CB_OK(s, "a sandbox starts"))
        return;
    cleanup_buf cb_buf_t out = {0};
    const char *const there[] = {
        "/bin/sh", "-c", "test -x " SBX_INSIDE_LIBEXEC "/cellblock-init && echo there", NULL};
    bool ran = s_run_ok(s, there, NULL, &out);
    CB_OK(ran && strstr(cb_buf_str(&out), "there"),
          SBX_INSIDE_LIBEXEC "/cellblock-init is there and executable");

    /* Read the mount's options from the inside: the line whose mount point is /opt/cellblock. */
    cb_buf_clear(&out);
    const char *const opts[] = {"/bin/sh", "-c",
                                "while read -r id parent dev root point options rest; do "
                                "[ \"$point\" = " SBX_INSIDE_LIBEXEC
                                " ] && echo \"$options\"; done < /proc/self/mountinfo; true",
                                NULL};
    ran = s_run_ok(s, opts, NULL, &out);
    const char *o = s_flat(&out);
    CB_OK(ran && strncmp(o, "ro,", 3) == 0 && strstr(o, "nosuid") && strstr(o, "nodev"),
          SBX_INSIDE_LIBEXEC " is mounted ro, nosuid, nodev (options: '%s')", o);

    cleanup_buf cb_buf_t errb = {0};
    sbx_exit_t ex = {0};
    const char *const write_it[] = {
        "/bin/sh", "-c", "echo x > " SBX_INSIDE_LIBEXEC "/planted || exit 3; exit 0", NULL};
    bool done = s_run_in(s, write_it, NULL, &out, &errb, RUN_MS, &ex) == 0;
    CB_OK(done && ex.exited && ex.code == 3, "code inside cannot write to " SBX_INSIDE_LIBEXEC);
    struct stat st;
    char host[PATH_MAX];
    snprintf(host, sizeof host, "%s/planted", cb_path_libexecdir());
    CB_OK(lstat(host, &st) < 0 && errno == ENOENT, "nothing appeared on the host (%s)", host);
}

/* ---- toolchains: each language's hello world inside ------------------------------------- */

typedef struct {
    const char *lang;
    const char *tool;    /* on the host: missing means SKIP */
    const char *package; /* Debian's package for it */
    const char *script;  /* sh -c, in the workspace; must print "hello from <lang>" */
} toolchain_t;

static const toolchain_t s_toolchains[] = {
    {"javascript", "/usr/bin/node", "nodejs", "node -e 'console.log(\"hello from javascript\")'"},
    {"typescript", "/usr/share/nodejs/typescript/package.json", "node-typescript",
     "printf 'const who: string = \"typescript\";\\nconsole.log(`hello from ${who}`);\\n' > h.ts &&"
     " node -e 'const ts = require(\"/usr/share/nodejs/typescript\");"
     " const src = require(\"fs\").readFileSync(\"h.ts\", \"utf8\");"
     " eval(ts.transpileModule(src, {}).outputText)'"},
    {"bash", "/bin/bash", "bash", "bash -c 'echo \"hello from ${0}\"' bash"},
    {"ruby", "/usr/bin/ruby", "ruby", "ruby -e 'puts \"hello from ruby\"'"},
    {"java", "/usr/bin/java", "openjdk-17-jdk-headless",
     "printf 'class Hello { public static void main(String[] a) {"
     " System.out.println(\"hello from java\"); } }\\n' > Hello.java && java Hello.java"},
    {"jshell", "/usr/bin/jshell", "openjdk-17-jdk-headless",
     "printf 'System.out.println(\"hello from jshell\");\\n/exit\\n' > h.jsh &&"
     " jshell -q -R-Xshare:auto h.jsh"},
    {"c", "/usr/bin/gcc", "gcc",
     "printf '#include <stdio.h>\\nint main(void) { puts(\"hello from c\"); return 0; }\\n' > h.c"
     " && gcc -o h h.c && ./h"},
    {"c++", "/usr/bin/g++", "g++",
     "printf '#include <iostream>\\nint main() { std::cout << \"hello from c++\\\\n\"; }\\n'"
     " > h.cpp && g++ -o hpp h.cpp && ./hpp"},
    {"rust", "/usr/bin/rustc", "rustc",
     "printf 'fn main() { println!(\"hello from rust\"); }\\n' > h.rs && rustc -o hrs h.rs && "
     "./hrs"},
    {"go", "/usr/bin/go", "golang-go",
     "printf 'package main\\nimport \"fmt\"\\nfunc main() { fmt.Println(\"hello from go\") }\\n'"
     " > h.go && GOCACHE=/tmp/.cache/go-build GOPATH=/tmp/go GO111MODULE=off GOPROXY=off"
     " GOTOOLCHAIN=local go build -o hgo h.go && ./hgo"},
};

static void s_toolchains_group(const ctx_t *c)
{
    /* Compilers are hungry: a JVM and rustc each want a few hundred MiB. */
    cleanup_sbx sbx_t *s = s_new(c, "toolchains", (sbx_policy_t){.memory_bytes = 2048 * MiB});
    if (!CB_OK(s, "a sandbox starts"))
        return;
    for (size_t i = 0; i < sizeof s_toolchains / sizeof *s_toolchains; i++) {
        const toolchain_t *t = &s_toolchains[i];
        if (access(t->tool, R_OK) < 0) {
            CB_OK(1, "%s # SKIP %s is not installed (Debian package %s)", t->lang, t->tool,
                  t->package);
            continue;
        }
        cleanup_buf cb_buf_t out = {0};
        const char *const argv[] = {"/bin/sh", "-c", t->script, NULL};
        char want[64];
        snprintf(want, sizeof want, "hello from %s", t->lang);
        int64_t t0 = cb_now_ms();
        bool ran = s_run_ok(s, argv, NULL, &out);
        long long ms = (long long)(cb_now_ms() - t0);
        const char *said = s_flat(&out);
        CB_OK(ran && strstr(said, want), "%s: hello world inside (%lld ms): '%s'", t->lang, ms,
              said);
    }
}

/* ---- main --------------------------------------------------------------------------------- */

static const struct {
    const char *name;
    void (*run)(const ctx_t *c);
} s_groups[] = {{"probe", s_probe},
                {"isolation", s_isolation},
                {"limits", s_limits},
                {"files", s_files},
                {"unprivileged", s_unprivileged},
                {"libexec", s_libexec},
                {"toolchains", s_toolchains_group}};

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    const char *group = argc > 1 ? argv[1] : "probe";
    sbx_layers_t layers;
    sbx_layers_probe(&layers);
    if (!layers.userns)
        CB_SKIP_ALL("no user namespaces: %s", layers.userns_why);
    char tmp[] = "/tmp/cb-sbx-test-XXXXXX";
    if (!mkdtemp(tmp))
        CB_SKIP_ALL("cannot make a temp dir: %s", strerror(errno));
    ctx_t c = {.tmp = tmp, .probe = argc > 2 ? argv[2] : NULL, .src = argc > 3 ? argv[3] : NULL};
    size_t i = 0;
    while (i < sizeof s_groups / sizeof *s_groups && strcmp(s_groups[i].name, group) != 0)
        i++;
    if (i < sizeof s_groups / sizeof *s_groups)
        s_groups[i].run(&c);
    else
        CB_OK(0, "unknown group '%s'", group);
    cb_error_t err = {0};
    if (cb_rm_rf(tmp, &err) < 0)
        CB_DIAG("remove %s: %s", tmp, err.msg);
    return cb_tap_done();
}
