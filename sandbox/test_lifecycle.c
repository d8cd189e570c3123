/* test_lifecycle.c: what outlives a sandbox, and what a killed gateway leaves, against real
 * sandboxes, in TAP. One group per ctest entry:
 *
 *   test_lifecycle workspace DIR   a persistent workspace (a fresh directory under DIR, best on
 *                                  the filesystem of /usr so the mount id check is what refuses
 *                                  a symlink to /usr) across two sandboxes: contents survive,
 *                                  ownership is the sandbox user's, the file API never leaves it,
 *                                  sbx_usage measures it
 *   test_lifecycle sweep           a stand-in gateway (a forked child) makes a sandbox and is
 *                                  SIGKILLed; sbx_sweep_stale removes its run dir, its cgroups
 *                                  and a mount left below the runtime dir, kills and removes a
 *                                  stale cgroup whose sandbox-like process (own pid namespace)
 *                                  still runs, and leaves alone a live sandbox of this process,
 *                                  a plain process in a stale-looking cgroup, symlinks and other
 *                                  names (the cgroup and mount parts need root)
 *   test_lifecycle init_death      the init's pidfd becomes readable when the init is killed
 *   test_lifecycle reach           sbx_socket and sbx_pty: a socket the init makes, bound by us,
 *                                  is reached from inside and only there; one connected by us
 *                                  reaches a server inside; a terminal of the sandbox's own
 *                                  devpts is a controlling terminal inside
 *
 * Every wait is on an event (pipe EOF, a pidfd, waitpid) with a deadline, except where a
 * process that is not ours must be seen gone: /proc is polled.
 */
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cb/cleanup.h"
#include "cb/log.h"
#include "cb/tap.h"
#include "cb/util.h"
#include "sbx/sbx.h"
#include "sbx_private.h" /* SBX_CHILD_OOM_SCORE_ADJ */

#define MiB (1024ull * 1024ull)
#define RUN_MS 30000  /* the most one command inside may take */
#define GONE_MS 10000 /* the most processes may take to disappear */

static const char *const s_env[] = {"PATH=/usr/bin:/bin", "HOME=/home/user", "LANG=C.UTF-8", NULL};

static void s_sbx_destroyp(sbx_t **p) { sbx_destroy(p); }
#define cleanup_sbx __attribute__((cleanup(s_sbx_destroyp)))

/* ---- harness ----------------------------------------------------------------------------- */

static sbx_t *s_new(const char *run_dir, const char *workspace_dir, uint64_t workspace_bytes)
{
    sbx_policy_t pol = {.run_dir = run_dir,
                        .workspace_dir = workspace_dir,
                        .workspace_bytes = workspace_bytes,
                        .memory_bytes = 256 * MiB,
                        .pids_max = 64};
    cb_error_t err = {0};
    sbx_t *s = sbx_new(&pol, &err);
    if (!s)
        CB_DIAG("sbx_new(%s): %s", run_dir, err.msg);
    return s;
}

/* Run /bin/sh -c script inside; its stdout and stderr go to *out. Returns the exit code, or -1
 * (with a diagnostic) when it could not run, was killed, or overran RUN_MS. */
static int s_sh(sbx_t *s, const char *script, cb_buf_t *out)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return -1;
    cb_error_t err = {0};
    sbx_spawn_opts_t o = {.argv = (const char *const[]){"/bin/sh", "-c", script, NULL},
                          .env = s_env,
                          .stdin_fd = -1,
                          .stdout_fd = p[1],
                          .stderr_fd = p[1]};
    sbx_proc_t *proc = sbx_spawn(s, &o, &err);
    close(p[1]);
    cleanup_close int r = p[0];
    if (!proc) {
        CB_DIAG("spawn '%s': %s", script, err.msg);
        return -1;
    }
    int64_t deadline = cb_now_ms() + RUN_MS;
    for (;;) {
        struct pollfd pf = {.fd = r, .events = POLLIN};
        int left = (int)(deadline - cb_now_ms());
        char chunk[4096];
        ssize_t n = left > 0 && poll(&pf, 1, left) > 0 ? read(r, chunk, sizeof chunk) : -1;
        if (n <= 0)
            break;
        cb_buf_append(out, chunk, (size_t)n);
    }
    sbx_exit_t ex = {0};
    int left = (int)(deadline - cb_now_ms());
    int rc = sbx_proc_wait(proc, &ex, left > 0 ? left : 0, &err);
    sbx_proc_destroy(&proc);
    if (rc < 0 || !ex.exited) {
        CB_DIAG("'%s' did not exit normally (%s); output: %.300s", script,
                rc < 0 ? err.msg : "signal", cb_buf_str(out));
        return -1;
    }
    return ex.code;
}

/* s_sh that must exit 0; returns its output with the trailing newline cut ("" on failure).
 * Borrowed; valid until out changes. */
static const char *s_sh_ok(sbx_t *s, const char *script, cb_buf_t *out)
{
    cb_buf_clear(out);
    int code = s_sh(s, script, out);
    if (code != 0) {
        CB_DIAG("'%s' exited %d: %.300s", script, code, cb_buf_str(out));
        cb_buf_clear(out);
        return "";
    }
    while (out->len && out->data[out->len - 1] == '\n')
        out->data[--out->len] = '\0';
    return cb_buf_str(out);
}

static bool s_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* Is pid gone (no such process, or a zombie nobody reaped yet)? */
static bool s_gone(pid_t pid)
{
    char path[64], stat[512] = "";
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd < 0 ? -1 : read(fd, stat, sizeof stat - 1);
    const char *paren = n > 0 ? strrchr(stat, ')') : NULL;
    return !paren || paren[2] == 'Z' || paren[2] == 'X';
}

static bool s_wait_gone(pid_t pid)
{
    for (int64_t deadline = cb_now_ms() + GONE_MS; !s_gone(pid);) {
        if (cb_now_ms() > deadline)
            return false;
        poll(NULL, 0, 20);
    }
    return true;
}

/* ---- workspace: a persistent workspace across two sandboxes ------------------------------- */

static void s_ws_first(const char *runtime, const char *ws)
{
    char run[PATH_MAX];
    snprintf(run, sizeof run, "%s/s-ws-a", runtime);
    cleanup_sbx sbx_t *a = s_new(run, ws, 64 * MiB);
    if (!CB_OK(a, "sandbox A on the persistent workspace %s", ws))
        return;
    cleanup_buf cb_buf_t out = {0};
    const char *owner = s_sh_ok(a,
                                "echo hi > /home/user/a.txt; ln -s /usr/bin/env /home/user/esc; "
                                "ln -s /usr/bin /home/user/usrdir; stat -c %u /home/user",
                                &out);
    CB_OK(!strcmp(owner, "1000"), "inside, /home/user belongs to uid 1000 (got '%s')", owner);
}

static void s_ws_host_view(const char *ws)
{
    cleanup_free char *a = cb_strdup_printf("%s/a.txt", ws);
    cleanup_free char *esc = cb_strdup_printf("%s/esc", ws);
    size_t len = 0;
    cleanup_free char *text = cb_read_file(a, 100, &len, NULL);
    CB_OK(text && !strcmp(text, "hi\n"), "after A is destroyed the host dir still has a.txt");
    struct stat st, dir;
    CB_OK(lstat(esc, &st) == 0 && S_ISLNK(st.st_mode), "... and the symlink esc A planted");
    bool stated = stat(a, &st) == 0 && stat(ws, &dir) == 0;
    CB_OK(stated && st.st_uid == dir.st_uid && (geteuid() != 0 || dir.st_uid != 0),
          "a.txt belongs to the workspace dir's owner, the sandbox user's host uid (%u)",
          (unsigned)dir.st_uid);
}

/* Symlinks A planted to /usr, on the same filesystem as the workspace or not: refused. */
static void s_ws_escapes(sbx_t *b)
{
    static const char *const reads[] = {"esc", "/home/user/esc", "usrdir/env", NULL};
    cb_buf_t got = {0};
    for (const char *const *r = reads; *r; r++) {
        cb_error_t err = {0};
        int rc = sbx_file_read(b, *r, 16 * MiB, &got, &err);
        CB_OK(rc < 0 && err.kind == CB_ERR_INVALID && strstr(err.msg, "outside the workspace"),
              "sbx_file_read(\"%s\") is refused: outside the workspace (%s)", *r,
              rc < 0 ? err.msg : "it read");
    }
    cb_buf_free(&got);
    cb_error_t err = {0};
    size_t n = 0;
    sbx_dirent_t *list = sbx_file_list(b, "usrdir", &n, &err);
    CB_OK(!list, "sbx_file_list(\"usrdir\") is refused (%s)", list ? "it listed" : err.msg);
    sbx_dirents_free(list, n);
    cb_error_clear(&err);
    int rc = sbx_file_write(b, "usrdir/planted", "x", 1, false, &err);
    CB_OK(rc < 0, "sbx_file_write(\"usrdir/planted\") is refused (%s)",
          rc < 0 ? err.msg : "it wrote");
    CB_OK(!s_exists("/usr/bin/planted"), "nothing was written to the host's /usr/bin");
}

static void s_ws_ownership(sbx_t *b)
{
    cb_error_t err = {0};
    int rc = sbx_file_write(b, "w.txt", "from the host\n", 14, false, &err);
    rc = rc < 0 ? rc : sbx_file_mkdir(b, "made/deeper", true, &err);
    CB_OK(rc == 0, "sbx_file_write and sbx_file_mkdir in the persistent workspace (%s)",
          rc < 0 ? err.msg : "ok");
    cleanup_buf cb_buf_t out = {0};
    const char *ids =
        s_sh_ok(b, "stat -c %u:%g /home/user/w.txt /home/user/made/deeper | tr '\\n' ' '", &out);
    CB_OK(!strcmp(ids, "1000:1000 1000:1000 "),
          "inside, what the host wrote belongs to 1000:1000 (%s)", ids);
    const char *back =
        s_sh_ok(b, "cat /home/user/w.txt && echo more >> /home/user/w.txt && echo ok", &out);
    CB_OK(strstr(back, "from the host") && strstr(back, "ok"),
          "... and the user can read and append to it");
}

static void s_ws_usage(sbx_t *b)
{
    sbx_usage_t before = {0}, after = {0};
    cb_error_t err = {0};
    int rc = sbx_usage(b, &before, &err);
    cleanup_buf cb_buf_t out = {0};
    const char *done = s_sh_ok(
        b, "dd if=/dev/zero of=/home/user/big bs=1M count=1 2>/dev/null && echo done", &out);
    rc = rc < 0 ? rc : sbx_usage(b, &after, &err);
    CB_OK(rc == 0 && !strcmp(done, "done"), "sbx_usage around a 1 MiB write inside (%s)",
          rc < 0 ? err.msg : "ok");
    CB_OK(after.workspace_bytes >= before.workspace_bytes + MiB,
          "workspace_bytes grows by at least 1 MiB (%llu -> %llu)",
          (unsigned long long)before.workspace_bytes, (unsigned long long)after.workspace_bytes);
    CB_OK(after.workspace_limit_bytes == 64 * MiB,
          "workspace_limit_bytes is the policy's 64 MiB (%llu)",
          (unsigned long long)after.workspace_limit_bytes);
}

static void s_ws_second(const char *runtime, const char *ws)
{
    char run[PATH_MAX];
    snprintf(run, sizeof run, "%s/s-ws-b", runtime);
    cleanup_sbx sbx_t *b = s_new(run, ws, 64 * MiB);
    if (!CB_OK(b, "sandbox B on the same workspace"))
        return;
    cleanup_buf cb_buf_t out = {0};
    const char *cat = s_sh_ok(b, "cat /home/user/a.txt", &out);
    CB_OK(!strcmp(cat, "hi"), "B sees a.txt inside (got '%s')", cat);
    cleanup_buf cb_buf_t got = {0};
    cb_error_t err = {0};
    int rc = sbx_file_read(b, "a.txt", 100, &got, &err);
    CB_OK(rc == 0 && !strcmp(cb_buf_str(&got), "hi\n"), "B reads a.txt through sbx_file_read (%s)",
          rc < 0 ? err.msg : "ok");
    s_ws_escapes(b);
    s_ws_ownership(b);
    s_ws_usage(b);
}

static void s_workspace(const char *runtime, const char *parent)
{
    cleanup_free char *ws = cb_strdup_printf("%s/cb-ws-XXXXXX", parent ? parent : "/var/tmp");
    if (!ws || !mkdtemp(ws))
        CB_SKIP_ALL("cannot make a workspace dir under %s: %s", parent, strerror(errno));
    struct stat w, usr;
    if (stat(ws, &w) == 0 && stat("/usr", &usr) == 0)
        CB_DIAG("the workspace %s the filesystem of /usr%s",
                w.st_dev == usr.st_dev ? "shares" : "is not on",
                w.st_dev == usr.st_dev ? ": st_dev cannot tell them apart, the mount id must" : "");
    s_ws_first(runtime, ws);
    s_ws_host_view(ws);
    s_ws_second(runtime, ws);
    cb_error_t err = {0};
    struct stat st;
    cleanup_free char *a = cb_strdup_printf("%s/a.txt", ws);
    CB_OK(stat(a, &st) == 0, "the workspace outlives B too");
    cleanup_sbx sbx_t *bad = s_new("/nonexistent-cb/s-x", "/nonexistent-cb-ws", 0);
    CB_OK(!bad, "a missing workspace dir is an error");
    if (cb_rm_rf(ws, &err) < 0)
        CB_DIAG("remove %s: %s", ws, err.msg);
}

/* ---- sweep: what a SIGKILLed gateway leaves ----------------------------------------------- */

/* How many directories named cellblock-<pid>-<name> exist in the cgroup hierarchies we are in;
 * the first found goes to first (may be NULL). */
static int s_cgroup_dirs(pid_t pid, const char *name, char *first, size_t size)
{
    cleanup_fclose FILE *f = fopen("/proc/self/cgroup", "re");
    char line[1024], seen[16][PATH_MAX];
    int n = 0;
    while (f && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        char *path = strchr(line, ':') ? strchr(strchr(line, ':') + 1, ':') : NULL;
        for (int v1 = 0; path && v1 < 2; v1++) {
            char pattern[PATH_MAX];
            snprintf(pattern, sizeof pattern, "/sys/fs/cgroup%s%s/cellblock-%d-%s", v1 ? "/*" : "",
                     strcmp(path + 1, "/") ? path + 1 : "", (int)pid, name);
            glob_t g = {0};
            size_t found = glob(pattern, GLOB_ONLYDIR, NULL, &g) == 0 ? g.gl_pathc : 0;
            for (size_t i = 0; i < found; i++) {
                bool dup = false;
                for (int k = 0; k < n; k++)
                    dup |= !strcmp(seen[k], g.gl_pathv[i]);
                if (!dup && n < 16)
                    snprintf(seen[n++], PATH_MAX, "%s", g.gl_pathv[i]);
            }
            globfree(&g);
        }
    }
    if (first && n > 0)
        snprintf(first, size, "%s", seen[0]);
    return n;
}

/* A stand-in gateway: makes a sandbox at <runtime>/s-dead with a sleep in it, reports
 * {its pid, the init's, the sleep's} on w, and waits to be killed. Never returns. */
static void __attribute__((noreturn)) s_doomed_gateway(const char *runtime, int w)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    char run[PATH_MAX];
    snprintf(run, sizeof run, "%s/s-dead", runtime);
    sbx_t *s = sbx_new(&(sbx_policy_t){.run_dir = run, .memory_bytes = 256 * MiB}, NULL);
    sbx_spawn_opts_t o = {.argv = (const char *const[]){"/bin/sleep", "1000", NULL},
                          .env = s_env,
                          .stdin_fd = -1,
                          .stdout_fd = -1,
                          .stderr_fd = -1};
    sbx_proc_t *p = s ? sbx_spawn(s, &o, NULL) : NULL;
    pid_t pids[3] = {getpid(), s ? sbx_init_pid(s) : 0, p ? sbx_proc_pid(p) : 0};
    if (write(w, pids, sizeof pids) != sizeof pids)
        _exit(1);
    for (;;)
        pause();
}

/* A made-up stale cgroup, "<parent>/cellblock-<dead>-<name>", holding a live sleep: in a pid
 * namespace of its own (as a sandbox's processes are) when own_ns, else in ours. */
typedef struct {
    char dir[PATH_MAX];
    pid_t keeper; /* our child, the sleep's parent */
    pid_t sleeper;
} s_busy_t;

static bool s_busy_cgroup(const char *parent, pid_t dead, const char *name, bool own_ns,
                          s_busy_t *b)
{
    int p[2];
    snprintf(b->dir, sizeof b->dir, "%s/cellblock-%d-%s", parent, (int)dead, name);
    if (mkdir(b->dir, 0755) < 0 || pipe2(p, O_CLOEXEC) < 0)
        return false;
    fflush(stdout);
    b->keeper = fork();
    if (b->keeper == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
        if (own_ns && unshare(CLONE_NEWPID) < 0)
            _exit(1);
        pid_t pid = fork();
        if (pid == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
            execl("/bin/sleep", "sleep", "1000", (char *)NULL);
            _exit(127);
        }
        if (write(p[1], &pid, sizeof pid) != sizeof pid)
            _exit(1);
        waitpid(pid, NULL, 0);
        _exit(0);
    }
    close(p[1]);
    struct pollfd pf = {.fd = p[0], .events = POLLIN};
    bool got = b->keeper > 0 && poll(&pf, 1, GONE_MS) == 1 &&
               read(p[0], &b->sleeper, sizeof b->sleeper) == sizeof b->sleeper && b->sleeper > 0;
    close(p[0]);
    char procs[PATH_MAX + 16], text[32];
    snprintf(procs, sizeof procs, "%s/cgroup.procs", b->dir);
    snprintf(text, sizeof text, "%d", (int)b->sleeper);
    cleanup_close int fd = got ? open(procs, O_WRONLY | O_CLOEXEC) : -1;
    return fd >= 0 && write(fd, text, strlen(text)) == (ssize_t)strlen(text);
}

/* Kill and reap what s_busy_cgroup started, and remove its cgroup if still there. */
static void s_busy_end(s_busy_t *b)
{
    if (b->keeper > 0 && b->sleeper <= 0)
        kill(b->keeper, SIGKILL);
    if (b->sleeper > 0)
        kill(b->sleeper, SIGKILL);
    if (b->keeper > 0)
        waitpid(b->keeper, NULL, 0);
    for (int64_t deadline = cb_now_ms() + GONE_MS;
         b->dir[0] && rmdir(b->dir) < 0 && errno == EBUSY;) {
        if (cb_now_ms() > deadline)
            break;
        poll(NULL, 0, 20);
    }
}

/* Does any fd of pid refer to the directory dir? */
static bool s_holds_dir(pid_t pid, const char *dir)
{
    struct stat want, st;
    if (stat(dir, &want) < 0)
        return false;
    char path[64];
    bool found = false;
    for (int fd = 0; fd < 64; fd++) {
        snprintf(path, sizeof path, "/proc/%d/fd/%d", (int)pid, fd);
        found |= stat(path, &st) == 0 && st.st_dev == want.st_dev && st.st_ino == want.st_ino;
    }
    return found;
}

/* A mount below the runtime dir, in a mount namespace private to this test. */
static bool s_mount_below(const char *dir)
{
    if (geteuid() != 0) {
        CB_DIAG("not root: the unmount part is not tried");
        return false;
    }
    if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
        CB_DIAG("no private mount namespace (%s): the unmount part is not tried", strerror(errno));
        return false;
    }
    return mkdir(dir, 0700) == 0 && mount("cb-test", dir, "tmpfs", 0, "size=64k") == 0;
}

/* Is dir mentioned in /proc/self/mountinfo? (stdio: a proc file reports size 0.) */
static bool s_mounted_below(const char *dir)
{
    cleanup_fclose FILE *f = fopen("/proc/self/mountinfo", "re");
    char line[8192];
    while (f && fgets(line, sizeof line, f))
        if (strstr(line, dir))
            return true;
    return false;
}

static void s_sweep_checks(const char *runtime, sbx_t *live, pid_t child, const pid_t *pids,
                           bool have_cgroups, const char *mnt, s_busy_t *busy)
{
    cleanup_free char *dead = cb_strdup_printf("%s/s-dead", runtime);
    cleanup_free char *temp = cb_strdup_printf("%s/.s-x.new-0123456789abcdef", runtime);
    cleanup_free char *link = cb_strdup_printf("%s/s-link", runtime);
    cleanup_free char *keep = cb_strdup_printf("%s/k-keep/f", runtime);
    cb_error_t err = {0};
    cb_mkdir_p(temp, 0700, &err);
    cb_mkdir_p(keep, 0700, &err);
    cleanup_free char *target = cb_strdup_printf("%s/k-keep", runtime);
    if (symlink(target, link) < 0)
        CB_DIAG("symlink: %s", strerror(errno));
    CB_OK(s_exists(dead), "the killed gateway's run dir is still there before the sweep");

    sbx_sweep_stale(runtime);
    CB_OK(!s_exists(dead), "sbx_sweep_stale removed the killed gateway's run dir");
    if (mnt)
        CB_OK(!s_mounted_below(mnt), "... after unmounting what was mounted in it");
    CB_OK(!s_exists(temp), "... and a stale temporary .s-*.new-* dir");
    CB_OK(s_exists(sbx_run_dir(live)), "the live sandbox's run dir %s stays", sbx_run_dir(live));
    struct stat st;
    CB_OK(lstat(link, &st) == 0 && S_ISLNK(st.st_mode) && s_exists(keep),
          "a symlink named s-* is not followed nor removed; k-keep stays");
    if (have_cgroups) {
        CB_OK(s_cgroup_dirs(child, "s-dead", NULL, 0) == 0,
              "the killed gateway's cgroups are gone (%d left)",
              s_cgroup_dirs(child, "s-dead", NULL, 0));
        CB_OK(s_cgroup_dirs(getpid(), "s-live", NULL, 0) > 0, "the live sandbox's cgroups stay");
    }
    if (busy) {
        CB_OK(s_wait_gone(busy[0].sleeper) && !s_exists(busy[0].dir),
              "a stale cgroup whose sandbox process still ran: the process killed, the cgroup "
              "removed");
        CB_OK(!s_gone(busy[1].sleeper) && s_exists(busy[1].dir),
              "a process of our own pid namespace in a stale-looking cgroup is not killed");
    }
    CB_OK(s_wait_gone(pids[1]) && s_wait_gone(pids[2]),
          "the dead sandbox's init and sleep are gone");
    cleanup_buf cb_buf_t out = {0};
    CB_OK(!strcmp(s_sh_ok(live, "echo alive", &out), "alive"),
          "the live sandbox still runs commands");
}

static void s_sweep(const char *runtime)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        CB_SKIP_ALL("pipe: %s", strerror(errno));
    fflush(stdout);
    pid_t child = fork();
    if (child == 0)
        s_doomed_gateway(runtime, p[1]);
    close(p[1]);
    pid_t pids[3] = {0, 0, 0};
    struct pollfd pf = {.fd = p[0], .events = POLLIN};
    bool got =
        child > 0 && poll(&pf, 1, GONE_MS) == 1 && read(p[0], pids, sizeof pids) == sizeof pids;
    close(p[0]);
    if (!CB_OK(got && pids[1] > 0 && pids[2] > 0,
               "a stand-in gateway made a sandbox with a sleep")) {
        if (child > 0 && kill(child, SIGKILL) == 0)
            waitpid(child, NULL, 0);
        return;
    }
    char live_run[PATH_MAX];
    snprintf(live_run, sizeof live_run, "%s/s-live", runtime);
    cleanup_sbx sbx_t *live = s_new(live_run, NULL, 0);
    if (!CB_OK(live, "a live sandbox of this process in the same runtime dir"))
        return;
    cb_error_t err = {0};
    int fd = cb_dir_lock(live_run, &err);
    CB_OK(fd < 0 && err.kind == CB_ERR_STATE, "its run dir is locked: %s",
          fd < 0 ? err.msg : "it was free");
    CB_OK(!s_holds_dir(sbx_init_pid(live), live_run),
          "the run dir's lock fd did not reach the init");
    bool have_cgroups = sbx_layers(live)->cgroup != SBX_CGROUP_NONE;
    if (have_cgroups)
        CB_OK(s_cgroup_dirs(child, "s-dead", NULL, 0) > 0,
              "the stand-in's sandbox has cgroups (%d)", s_cgroup_dirs(child, "s-dead", NULL, 0));
    cleanup_free char *mnt = cb_strdup_printf("%s/s-dead/mnt", runtime);
    bool mounted = s_mount_below(mnt);

    kill(child, SIGKILL);
    int status = 0;
    CB_OK(waitpid(child, &status, 0) == child && WIFSIGNALED(status),
          "the stand-in gateway is SIGKILLed");
    /* Beside it, stale cgroups of the (now dead) stand-in's pid whose processes still run. */
    s_busy_t busy[2] = {{.sleeper = 0}, {.sleeper = 0}};
    char first[PATH_MAX] = "";
    if (have_cgroups && geteuid() == 0 &&
        s_cgroup_dirs(getpid(), "s-live", first, sizeof first) > 0) {
        *strrchr(first, '/') = '\0';
        if (!s_busy_cgroup(first, child, "busy", true, &busy[0]) ||
            !s_busy_cgroup(first, child, "plain", false, &busy[1])) {
            CB_DIAG("could not make the busy stale cgroups under %s: %s", first, strerror(errno));
        }
    }
    bool busy_made = busy[0].sleeper > 0 && busy[1].sleeper > 0;
    s_sweep_checks(runtime, live, child, pids, have_cgroups, mounted ? mnt : NULL,
                   busy_made ? busy : NULL);
    s_busy_end(&busy[0]);
    s_busy_end(&busy[1]);
}

/* ---- init_death --------------------------------------------------------------------------- */

static void s_init_death(const char *runtime)
{
    char run[PATH_MAX];
    snprintf(run, sizeof run, "%s/s-init", runtime);
    sbx_t *s = s_new(run, NULL, 0);
    if (!CB_OK(s, "a sandbox"))
        return;
    struct pollfd pf = {.fd = sbx_init_pidfd(s), .events = POLLIN};
    CB_OK(pf.fd >= 0 && poll(&pf, 1, 0) == 0, "its init's pidfd is not readable while it lives");
    CB_OK(kill(sbx_init_pid(s), SIGKILL) == 0, "SIGKILL to the init (host pid %d)",
          (int)sbx_init_pid(s));
    int64_t t0 = cb_now_ms();
    int n = poll(&pf, 1, 5000);
    CB_OK(n == 1 && (pf.revents & POLLIN), "the pidfd becomes readable (after %lld ms)",
          (long long)(cb_now_ms() - t0));
    cb_error_t err = {0};
    sbx_spawn_opts_t o = {.argv = (const char *const[]){"/bin/true", NULL},
                          .env = s_env,
                          .stdin_fd = -1,
                          .stdout_fd = -1,
                          .stderr_fd = -1};
    sbx_proc_t *p = sbx_spawn(s, &o, &err);
    CB_OK(!p, "spawning into the dead sandbox fails (%s)", p ? "it worked" : err.msg);
    sbx_proc_destroy(&p);
    sbx_destroy(&s);
    CB_OK(!s_exists(run), "sbx_destroy still removes its run dir");
}

/* ---- oom: the OOM killer takes the sandbox's processes, never its init first ---------------- */

static int s_read_proc_int(pid_t pid, const char *file)
{
    char path[64], text[32] = "";
    snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, file);
    cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd < 0 ? -1 : read(fd, text, sizeof text - 1);
    return n > 0 ? atoi(text) : INT32_MIN;
}

static void s_oom(const char *runtime)
{
    char run[PATH_MAX];
    snprintf(run, sizeof run, "%s/s-oom", runtime);
    sbx_policy_t pol = {.run_dir = run, .memory_bytes = 64 * MiB, .pids_max = 64};
    cb_error_t err = {0};
    sbx_t *s = sbx_new(&pol, &err);
    if (!CB_OK(s, "a sandbox with 64 MiB (%s)", s ? "made" : err.msg))
        return;
    cleanup_sbx sbx_t *owned = s;
    cleanup_buf cb_buf_t out = {0};
    int init_adj = s_read_proc_int(sbx_init_pid(s), "oom_score_adj");
    CB_OK(init_adj == 0, "the init's oom_score_adj is 0 (read %d)", init_adj);
    const char *child = s_sh_ok(s, "cat /proc/self/oom_score_adj", &out);
    CB_OK(!strcmp(child, SBX_CHILD_OOM_SCORE_ADJ),
          "a process it starts has oom_score_adj %s (read '%s')", SBX_CHILD_OOM_SCORE_ADJ, child);
    /* Lowering below 0 needs a privilege nobody inside has. */
    cb_buf_clear(&out);
    int rc = s_sh(s, "echo -1000 > /proc/self/oom_score_adj", &out);
    CB_OK(rc != 0, "a process inside cannot make itself unkillable (exit %d: %.200s)", rc,
          cb_buf_str(&out));
    /* Files in /tmp are charged to the sandbox and to no process. /tmp holds at most the limit
     * less a reserve, so the fill ends in ENOSPC; then a shell takes more memory than is left:
     * the OOM killer takes it, not the init. (Before, /tmp held more than the limit, and the
     * init, by size the biggest process left, was taken during the fill.) */
    cb_buf_clear(&out);
    int fill = s_sh(s, "head -c 100000000 /dev/zero > /tmp/fill; echo $?", &out);
    CB_OK(fill == 0 && strstr(cb_buf_str(&out), "No space left"),
          "filling /tmp ends in ENOSPC, within the memory limit (exit %d: %.200s)", fill,
          cb_buf_str(&out));
    for (int i = 0; i < 3; i++) {
        cb_buf_clear(&out);
        s_sh(s, "x=$(head -c 40000000 /dev/zero | tr '\\0' a); echo ${#x}", &out);
    }
    struct pollfd pf = {.fd = sbx_init_pidfd(s), .events = POLLIN};
    CB_OK(pf.fd >= 0 && poll(&pf, 1, 0) == 0 && !s_gone(sbx_init_pid(s)),
          "the init lives after three processes ran out of memory");
    cb_buf_clear(&out);
    int code = s_sh(s, "rm -f /tmp/fill; echo alive", &out);
    CB_OK(code == 0 && strstr(cb_buf_str(&out), "alive"),
          "the sandbox still runs commands (exit %d: %.200s)", code, cb_buf_str(&out));
}

/* ---- reach: sockets and terminals made inside ------------------------------------------- */

/* Wait for fd to become ready for events within GONE_MS. */
static bool s_ready(int fd, short events)
{
    struct pollfd pf = {.fd = fd, .events = events};
    return poll(&pf, 1, GONE_MS) == 1 && (pf.revents & (events | POLLHUP | POLLERR));
}

/* Read from fd until EOF (or EIO, a terminal's end) or GONE_MS. */
static void s_read_all(int fd, cb_buf_t *out)
{
    int64_t deadline = cb_now_ms() + GONE_MS;
    for (;;) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        int left = (int)(deadline - cb_now_ms());
        char chunk[4096];
        if (left <= 0 || poll(&pf, 1, left) <= 0)
            return;
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EAGAIN)
            continue;
        if (n <= 0)
            return;
        cb_buf_append(out, chunk, (size_t)n);
    }
}

static void s_reach(const char *runtime)
{
    char run[PATH_MAX];
    snprintf(run, sizeof run, "%s/s-reach", runtime);
    cleanup_sbx sbx_t *s = s_new(run, NULL, 0);
    if (!CB_OK(s != NULL, "a sandbox"))
        return;
    cleanup_buf cb_buf_t out = {0};
    cb_error_t err = {0};

    /* A listener of ours inside: code inside reaches it on its own loopback. */
    cleanup_close int lst = sbx_socket(s, AF_INET, &err);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    bool listening = lst >= 0 && bind(lst, (struct sockaddr *)&a, sizeof a) == 0 &&
                     listen(lst, 4) == 0 && getsockname(lst, (struct sockaddr *)&a, &alen) == 0;
    CB_OK(listening, "a socket made inside is bound and listening (%s)",
          listening ? "ok"
          : lst < 0 ? err.msg
                    : strerror(errno));
    char script[256];
    snprintf(script, sizeof script, "bash -c 'echo hello-from-inside >/dev/tcp/127.0.0.1/%d'",
             ntohs(a.sin_port));
    s_sh_ok(s, script, &out);
    cleanup_close int conn = listening && s_ready(lst, POLLIN) ? accept4(lst, NULL, NULL, 0) : -1;
    cb_buf_t got = {0};
    if (conn >= 0)
        s_read_all(conn, &got);
    CB_OK(strstr(cb_buf_str(&got), "hello-from-inside") != NULL,
          "a process inside connected to it (read '%s')", cb_buf_str(&got));
    cb_buf_free(&got);
    /* The same port on the host's loopback is not that listener. */
    cleanup_close int host = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (connect(host, (struct sockaddr *)&a, sizeof a) == 0) {
        struct pollfd pf = {.fd = lst, .events = POLLIN};
        CB_OK(poll(&pf, 1, 0) == 0, "a host connection to that port did not reach the sandbox");
    } else {
        CB_OK(errno == ECONNREFUSED, "the host's loopback has nothing on that port (%s)",
              strerror(errno));
    }

    /* A server inside, reached by a socket of ours connected from the host side. */
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return;
    sbx_spawn_opts_t o = {
        .argv =
            (const char *const[]){"python3", "-c",
                                  "import socket\n"
                                  "s = socket.socket(); s.bind(('127.0.0.1', 7777)); s.listen()\n"
                                  "print('ready', flush=True)\n"
                                  "c, _ = s.accept(); c.sendall(b'served-inside'); c.close()",
                                  NULL},
        .env = s_env,
        .stdin_fd = -1,
        .stdout_fd = p[1],
        .stderr_fd = p[1]};
    sbx_proc_t *server = sbx_spawn(s, &o, &err);
    close(p[1]);
    cleanup_close int server_out = p[0];
    char ready[64] = "";
    if (server && s_ready(server_out, POLLIN)) {
        ssize_t n = read(server_out, ready, sizeof ready - 1);
        ready[n > 0 ? n : 0] = '\0';
    }
    CB_OK(strstr(ready, "ready") != NULL, "a server runs inside ('%s'%s%s)", ready,
          server ? "" : ": ", server ? "" : err.msg);
    cleanup_close int up = sbx_socket(s, AF_INET, &err);
    struct sockaddr_in in = {
        .sin_family = AF_INET, .sin_port = htons(7777), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int rc = up < 0 ? -1 : connect(up, (struct sockaddr *)&in, sizeof in);
    bool connected = up >= 0 && (rc == 0 || (errno == EINPROGRESS && s_ready(up, POLLOUT)));
    cb_buf_t served = {0};
    if (connected)
        s_read_all(up, &served);
    CB_OK(!strcmp(cb_buf_str(&served), "served-inside"),
          "a socket of ours connected inside reaches it (read '%s')", cb_buf_str(&served));
    cb_buf_free(&served);
    sbx_proc_destroy(&server);

    /* A terminal: isatty inside, and it is the controlling terminal. */
    int peer = -1;
    cleanup_close int master = sbx_pty(s, &peer, &err);
    CB_OK(master >= 0 && peer >= 0, "a terminal is made inside (%s)", master < 0 ? err.msg : "ok");
    if (master >= 0) {
        sbx_spawn_opts_t t = {
            .argv =
                (const char *const[]){"/bin/sh", "-c",
                                      "test -t 0 && tty && ps -o tty= -p $$ && echo tty-ok", NULL},
            .env = s_env,
            .stdin_fd = peer,
            .stdout_fd = peer,
            .stderr_fd = peer,
            .controlling_tty = true};
        sbx_proc_t *sh = sbx_spawn(s, &t, &err);
        close(peer);
        cb_buf_t screen = {0};
        if (sh)
            s_read_all(master, &screen);
        CB_OK(sh && strstr(cb_buf_str(&screen), "/dev/pts/0") &&
                  strstr(cb_buf_str(&screen), "pts/0") && strstr(cb_buf_str(&screen), "tty-ok"),
              "a shell on it sees a terminal, /dev/pts/0, as its controlling one (read '%s'%s%s)",
              cb_buf_str(&screen), sh ? "" : ": ", sh ? "" : err.msg);
        cb_buf_free(&screen);
        sbx_proc_destroy(&sh);
    }
    CB_OK(sbx_socket(s, AF_UNIX, &err) < 0 && err.kind == CB_ERR_INVALID,
          "only TCP sockets are made (%s)", err.msg);
}

/* ---- main --------------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    cb_log_set_level(CB_LOG_INFO); /* what the sweep says it removed, on stderr */
    const char *group = argc > 1 ? argv[1] : "";
    sbx_layers_t layers;
    sbx_layers_probe(&layers);
    if (!layers.userns)
        CB_SKIP_ALL("no user namespaces: %s", layers.userns_why);
    char runtime[] = "/tmp/cb-lifecycle-XXXXXX";
    if (!mkdtemp(runtime))
        CB_SKIP_ALL("cannot make a temp dir: %s", strerror(errno));
    if (!strcmp(group, "workspace"))
        s_workspace(runtime, argc > 2 ? argv[2] : NULL);
    else if (!strcmp(group, "sweep"))
        s_sweep(runtime);
    else if (!strcmp(group, "init_death"))
        s_init_death(runtime);
    else if (!strcmp(group, "oom"))
        s_oom(runtime);
    else if (!strcmp(group, "reach"))
        s_reach(runtime);
    else
        CB_OK(0, "unknown group '%s' (workspace DIR, sweep, init_death, oom, reach)", group);
    cb_error_t err = {0};
    if (cb_rm_rf(runtime, &err) < 0)
        CB_DIAG("remove %s: %s", runtime, err.msg);
    return cb_tap_done();
}
