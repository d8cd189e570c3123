/* probe.c: sbx-probe, the half of the sandbox tests that runs inside a sandbox.
 *
 * A test driver copies this binary into a sandbox's workspace and runs it there as an ordinary
 * process. It tries to break each promise the sandbox makes (sbx/sbx.h, docs/security.md) and
 * prints one TAP line per attempt, grouped by promise: inherited fds (checked first, before
 * anything here opens a file), identity and privileges, namespaces, the filesystem, cgroups and
 * mounts, /proc masking, /dev, the environment and the network; then the forbidden syscall
 * classes (probe_syscalls.c). The expected values are fixed facts about every sandbox, never read
 * from the environment under test; the driver passes only what the probe cannot know: a host
 * pid, a host port, host paths, and the environment keys it set.
 *
 * It links libc only (inside a sandbox the host's /usr is there, none of our libraries are).
 * Whatever it manages to create it removes again, it never writes to a file it opened only to
 * prove it could, and it sends nothing to any address but 127.0.0.1. Run on a host, outside any
 * sandbox, it prints mostly "not ok".
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "cb/cleanup.h"
#include "probe.h"

/* Fixed facts of every sandbox (sbx/sbx.h says the same; the probe links no sandbox code). */
#define PROBE_UID 1000
#define PROBE_GID 1000
#define PROBE_HOSTNAME "sandbox"
#define PROBE_HOME "/home/user"
#define PROBE_RUN_DIR "/run/cellblock"
#define PROBE_INIT_COMM "cellblock-init"
#define PROBE_PID_BOUND 1000 /* every pid inside is below this */
#define PROBE_MAX_PROCS 50   /* fewer processes than this inside */
#define PROBE_MAX_PATHS 7    /* --host-path may be given this often (probe_opts_t has 8 slots) */

#define LIST_LEN 512         /* room for the names a failed check lists */
#define FILE_LEN (64 * 1024) /* the most of a small text file (/proc/..., /etc/passwd) read */

extern char **environ;

/* ---- helpers ---------------------------------------------------------------------------- */

/* errno's name ("EROFS"). */
static const char *s_ename(int e)
{
    const char *name = e ? strerrorname_np(e) : "no error";
    return name ? name : "an unknown errno";
}

/* How a call ended: "success" when rc >= 0, else the name of its errno. */
static const char *s_outcome(long rc, int e) { return rc >= 0 ? "success" : s_ename(e); }

/* For messages: the errno's name when a call failed, else the list, or "none" when it is empty. */
static const char *s_got(bool failed, int e, const char *list)
{
    if (failed)
        return s_ename(e);
    return list[0] ? list : "none";
}

/* Append word to a space-separated list in a fixed buffer (cap >= 4), ending it with "..." once
 * full. */
static void s_append(char *list, size_t cap, const char *word)
{
    size_t len = strlen(list);
    int n = snprintf(list + len, cap - len, "%s%s", len ? " " : "", word);
    if (n < 0 || (size_t)n >= cap - len)
        strcpy(list + cap - 4, "...");
}

/* A 0-terminated errno list for EXPECT_FAIL. */
#define ERRNOS(...) ((const int[]){__VA_ARGS__, 0})

/* One TAP line for a call that must fail (rc < 0) with one of errnos: what the call was (fmt),
 * what was expected and what it got. Use through EXPECT_FAIL. */
__attribute__((format(printf, 6, 7))) static void
s_expect_fail(const char *file, int line, long rc, int e, const int *errnos, const char *fmt, ...)
{
    char what[LIST_LEN], want[LIST_LEN] = "";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    bool ok = false;
    for (const int *w = errnos; *w; w++) {
        size_t len = strlen(want);
        const char *sep = w[1] ? ", " : " or ";
        snprintf(want + len, sizeof want - len, "%s%s", w == errnos ? "" : sep, s_ename(*w));
        ok = ok || (rc < 0 && e == *w);
    }
    cb_tap_ok(ok, file, line, "%s fails with %s (got %s)", what, want, s_outcome(rc, e));
}
/* Run call, which must fail with one of errnos (ERRNOS(...)); the rest is printf for the name. */
#define EXPECT_FAIL(call, errnos, ...)                                                             \
    do {                                                                                           \
        long rc_ = (call);                                                                         \
        int e_ = errno;                                                                            \
        s_expect_fail(__FILE__, __LINE__, rc_, e_, (errnos), __VA_ARGS__);                         \
    } while (0)

/* Attempts that undo themselves should they succeed, keeping the errno of a failure. Only
 * with O_CREAT|O_EXCL does s_try_open remove the file, which then is its own. */
static int s_try_open(const char *path, int flags)
{
    int fd = open(path, flags | O_CLOEXEC, 0600);
    int e = errno;
    if (fd >= 0 && (flags & (O_CREAT | O_EXCL)) == (O_CREAT | O_EXCL))
        unlink(path);
    if (fd >= 0)
        close(fd);
    errno = e;
    return fd;
}

static int s_try_mkdir(const char *path)
{
    int rc = mkdir(path, 0700);
    if (rc == 0)
        rmdir(path);
    return rc;
}

static int s_try_mount(const char *target)
{
    int rc = mount("none", target, "tmpfs", 0, NULL);
    int e = errno;
    if (rc == 0)
        umount2(target, MNT_DETACH);
    errno = e;
    return rc;
}

static bool s_in(const char *s, const char *const *set)
{
    for (; *set; set++)
        if (strcmp(s, *set) == 0)
            return true;
    return false;
}

/* One TAP line: dir holds no entry outside allowed (NULL-terminated), naming any it holds;
 * absent_ok: or dir does not exist. */
static void s_expect_dir(const char *file, int line, const char *dir, const char *const *allowed,
                         bool absent_ok)
{
    char extras[LIST_LEN] = "";
    DIR *d = opendir(dir);
    int e = errno;
    for (struct dirent *de; d && (de = readdir(d));)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0 &&
            !s_in(de->d_name, allowed))
            s_append(extras, sizeof extras, de->d_name);
    cb_tap_ok((d && !extras[0]) || (!d && absent_ok && e == ENOENT), file, line,
              "%s holds %s%s (extra: %s)", dir, allowed[0] ? "only its allow-list" : "nothing",
              absent_ok ? " or does not exist" : "", s_got(!d, e, extras));
    if (d)
        closedir(d);
}
#define EXPECT_DIR(dir, allowed, absent_ok)                                                        \
    s_expect_dir(__FILE__, __LINE__, dir, allowed, absent_ok)

static const char *const s_nothing[] = {NULL};

/* Read at most cap - 1 bytes of path into buf, NUL-terminated. Returns the length, or -1 with
 * errno. */
static ssize_t s_read_file(const char *path, char *buf, size_t cap)
{
    cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t len = 0;
    for (ssize_t n = 1; n != 0 && len + 1 < cap;) {
        n = read(fd, buf + len, cap - 1 - len);
        if (n < 0 && errno != EINTR)
            return -1;
        len += n > 0 ? (size_t)n : 0;
    }
    buf[len] = '\0';
    return (ssize_t)len;
}

/* The value of the "key:" line of a /proc/.../status text, copied into out; NULL when there is
 * no such line. */
static const char *s_status_field(const char *status, const char *key, char *out, size_t cap)
{
    size_t klen = strlen(key);
    for (const char *p = status; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, key, klen) != 0 || p[klen] != ':')
            continue;
        p += klen + 1 + strspn(p + klen + 1, " \t");
        size_t n = strcspn(p, "\n");
        snprintf(out, cap, "%.*s", (int)(n < cap ? n : cap - 1), p);
        return out;
    }
    return NULL;
}

/* ---- fds: only stdin, stdout and stderr cross into the sandbox ---------------------------- */

static void s_check_fds(void)
{
    char extras[LIST_LEN] = "";
    DIR *d = opendir("/proc/self/fd");
    int e = errno;
    for (struct dirent *de; d && (de = readdir(d));) {
        if (de->d_name[0] == '.' || atoi(de->d_name) <= 2 || atoi(de->d_name) == dirfd(d))
            continue;
        char target[128] = "", word[sizeof de->d_name + sizeof target + 1];
        ssize_t n = readlinkat(dirfd(d), de->d_name, target, sizeof target - 1);
        target[n > 0 ? n : 0] = '\0';
        snprintf(word, sizeof word, "%s=%s", de->d_name, target);
        s_append(extras, sizeof extras, word);
    }
    CB_OK(d && !extras[0], "fds: only 0, 1, 2 open at start (extra: %s)", s_got(!d, e, extras));
    if (d)
        closedir(d);
}

/* ---- identity: uid/gid 1000, no capabilities, no new privileges, seccomp filter ------------ */

static void s_check_identity(const probe_opts_t *opts)
{
    uid_t ru = 0, eu = 0, su = 0;
    gid_t rg = 0, eg = 0, sg = 0;
    getresuid(&ru, &eu, &su);
    getresgid(&rg, &eg, &sg);
    CB_OK(ru == PROBE_UID && eu == PROBE_UID && su == PROBE_UID,
          "identity: real, effective, saved uid all %d (got %u %u %u)", PROBE_UID, ru, eu, su);
    CB_OK(rg == PROBE_GID && eg == PROBE_GID && sg == PROBE_GID,
          "identity: real, effective, saved gid all %d (got %u %u %u)", PROBE_GID, rg, eg, sg);

    gid_t groups[256];
    int n = getgroups(256, groups);
    int e = errno;
    char seen[LIST_LEN] = "";
    bool only_ours = n >= 0;
    for (int i = 0; i < n; i++) {
        char word[16];
        snprintf(word, sizeof word, "%u", groups[i]);
        s_append(seen, sizeof seen, word);
        only_ours = only_ours && groups[i] == PROBE_GID;
    }
    CB_OK(only_ours, "identity: supplementary groups none or only %d (got %s)", PROBE_GID,
          s_got(n < 0, e, seen));

    char status[8192]; /* about 1.5 KiB in practice; a missing line fails below */
    if (s_read_file("/proc/self/status", status, sizeof status) < 0) {
        CB_DIAG("identity: reading /proc/self/status: %s", s_ename(errno));
        status[0] = '\0';
    }
    static const char *const caps[] = {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", NULL};
    char bad[LIST_LEN] = "", v_buf[64];
    for (const char *const *cap = caps; *cap; cap++) {
        const char *v = s_status_field(status, *cap, v_buf, sizeof v_buf);
        char word[160];
        snprintf(word, sizeof word, "%s=%s", *cap, v ? v : "missing");
        if (!v || !*v || strspn(v, "0") != strlen(v))
            s_append(bad, sizeof bad, word);
    }
    CB_OK(!bad[0], "identity: CapInh, CapPrm, CapEff, CapBnd, CapAmb all 0 (not 0: %s)",
          bad[0] ? bad : "none");

    const char *v = s_status_field(status, "NoNewPrivs", v_buf, sizeof v_buf);
    CB_OK(v && strcmp(v, "1") == 0, "identity: NoNewPrivs is 1 (got %s)", v ? v : "no such line");
    v = s_status_field(status, "Seccomp", v_buf, sizeof v_buf);
    if (opts->seccomp)
        CB_OK(v && strcmp(v, "2") == 0, "identity: Seccomp is 2, filter mode (got %s)",
              v ? v : "no such line");
    else
        CB_DIAG("identity: Seccomp is %s (not checked: --no-seccomp)", v ? v : "missing");

    /* gid first: should it succeed, setuid(0) below is still tried from uid 1000 */
    /* EINVAL: uid and gid 0 do not exist in the sandbox user's namespace; EPERM: no privilege */
    EXPECT_FAIL(setgid(0), ERRNOS(EPERM, EINVAL), "identity: setgid(0)");
    EXPECT_FAIL(setuid(0), ERRNOS(EPERM, EINVAL), "identity: setuid(0)");
}

/* ---- namespaces: own hostname, own pids, the host's processes out of reach ---------------- */

static void s_check_namespaces(const probe_opts_t *opts)
{
    struct utsname u;
    int rc = uname(&u);
    CB_OK(rc == 0 && strcmp(u.nodename, PROBE_HOSTNAME) == 0,
          "namespaces: hostname is \"%s\" (got \"%s\")", PROBE_HOSTNAME,
          rc == 0 ? u.nodename : s_ename(errno));

    char comm[64] = "";
    ssize_t n = s_read_file("/proc/1/comm", comm, sizeof comm);
    int e = errno;
    comm[strcspn(comm, "\n")] = '\0';
    CB_OK(n >= 0 && strcmp(comm, PROBE_INIT_COMM) == 0, "namespaces: pid 1 is %s (got %s)",
          PROBE_INIT_COMM, n >= 0 ? comm : s_ename(e));
    /* The init runs as our uid: only its being non-dumpable keeps its memory and its control
     * socket out of reach (seccomp stops ptrace, not these opens). */
    EXPECT_FAIL(open("/proc/1/mem", O_RDWR | O_CLOEXEC), ERRNOS(EACCES, EPERM),
                "namespaces: open /proc/1/mem (the init's memory)");
    EXPECT_FAIL(open("/proc/1/fd/3", O_RDWR | O_CLOEXEC), ERRNOS(EACCES, EPERM),
                "namespaces: open /proc/1/fd/3 (the init's control socket)");

    char big[LIST_LEN] = "";
    int procs = 0;
    DIR *d = opendir("/proc");
    e = errno;
    for (struct dirent *de; d && (de = readdir(d));) {
        if (!de->d_name[0] || strspn(de->d_name, "0123456789") != strlen(de->d_name))
            continue;
        procs++;
        if (atol(de->d_name) >= PROBE_PID_BOUND)
            s_append(big, sizeof big, de->d_name);
    }
    CB_OK(d && !big[0], "namespaces: every pid in /proc is below %d (not below: %s)",
          PROBE_PID_BOUND, s_got(!d, e, big));
    CB_OK(d && procs < PROBE_MAX_PROCS, "namespaces: fewer than %d processes (got %d)",
          PROBE_MAX_PROCS, procs);
    if (d)
        closedir(d);

    if (opts->host_pid <= PROBE_PID_BOUND) {
        CB_DIAG("namespaces: host pid checks skipped (%s)",
                opts->host_pid ? "--host-pid is too small to tell apart" : "no --host-pid");
        return;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/%d", opts->host_pid);
    struct stat st;
    EXPECT_FAIL(lstat(path, &st), ERRNOS(ENOENT), "namespaces: lstat(\"%s\"), the host pid", path);
    EXPECT_FAIL(kill(opts->host_pid, 0), ERRNOS(ESRCH), "namespaces: kill(%d, 0), the host pid",
                opts->host_pid);
}

/* ---- filesystem: a read-only root, a minimal /etc, nothing of the host's ------------------ */

static void s_check_readonly(void)
{
    EXPECT_FAIL(s_try_mkdir("/x"), ERRNOS(EROFS), "fs: mkdir(\"/x\")");
    EXPECT_FAIL(s_try_open("/usr/probe-x", O_CREAT | O_EXCL | O_WRONLY), ERRNOS(EROFS),
                "fs: open(\"/usr/probe-x\", O_CREAT|O_EXCL|O_WRONLY)");

    static const char *const etc_allowed[] = {"passwd",
                                              "group",
                                              "hosts",
                                              "hostname",
                                              "nsswitch.conf",
                                              "ld.so.cache",
                                              "ld.so.conf",
                                              "ld.so.conf.d",
                                              "alternatives",
                                              "localtime",
                                              "mime.types",
                                              "fonts",
                                              "ssl",
                                              "python3",
                                              "python3.11",
                                              "matplotlibrc",
                                              "bash.bashrc",
                                              "profile",
                                              "inputrc",
                                              "debian_version",
                                              "os-release",
                                              "timezone",
                                              "R",
                                              "java-17-openjdk",
                                              NULL};
    EXPECT_DIR("/etc", etc_allowed, false);
    EXPECT_FAIL(s_try_open("/etc/shadow", O_RDONLY), ERRNOS(ENOENT), "fs: open(\"/etc/shadow\")");

    cleanup_free char *passwd = malloc(FILE_LEN);
    ssize_t len = passwd ? s_read_file("/etc/passwd", passwd, FILE_LEN) : -1;
    int e = errno;
    static const char *const users[] = {"root", "nobody", "user", NULL};
    bool has_user = false;
    char extras[LIST_LEN] = "";
    for (char *save = NULL, *line = len >= 0 ? strtok_r(passwd, "\n", &save) : NULL; line;
         line = strtok_r(NULL, "\n", &save)) {
        has_user = has_user || strncmp(line, "user:x:1000:1000:", 17) == 0;
        line[strcspn(line, ":")] = '\0';
        if (!s_in(line, users))
            s_append(extras, sizeof extras, line);
    }
    CB_OK(has_user, "fs: /etc/passwd has a line \"user:x:1000:1000:...\" (got %s)",
          s_got(len < 0, e, has_user ? "one" : ""));
    CB_OK(len >= 0 && !extras[0], "fs: /etc/passwd names only root, nobody, user (extra: %s)",
          s_got(len < 0, e, extras));

    EXPECT_DIR("/root", s_nothing, true);
}

/* Create, write, read back and unlink a file in dir. */
static void s_check_writable(const char *dir)
{
    char path[PATH_MAX], back[8] = "";
    snprintf(path, sizeof path, "%s/.sbx-probe.%d", dir, (int)getpid());
    const char *step = NULL;
    cleanup_close int fd = open(path, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0)
        step = "create";
    else if (write(fd, "probe\n", 6) != 6)
        step = "write";
    else if (pread(fd, back, 6, 0) != 6 || memcmp(back, "probe\n", 6) != 0)
        step = "read back";
    int e = errno;
    if (fd >= 0 && unlink(path) < 0 && !step) {
        step = "unlink";
        e = errno;
    }
    CB_OK(!step, "fs: %s is writable: create, write, read back, unlink (%s%s%s)", dir,
          step ? step : "all done", step ? ": " : "", step ? s_ename(e) : "");
}

static void s_check_paths(const probe_opts_t *opts)
{
    struct stat st;
    for (int i = 0; opts->host_paths[i]; i++)
        EXPECT_FAIL(lstat(opts->host_paths[i], &st), ERRNOS(ENOENT),
                    "fs: lstat(\"%s\"), a host path", opts->host_paths[i]);

    char cwd[PATH_MAX];
    const char *got = getcwd(cwd, sizeof cwd);
    CB_OK(got && strcmp(cwd, PROBE_HOME) == 0, "fs: cwd at start is %s (got %s)", PROBE_HOME,
          got ? cwd : s_ename(errno));
    s_check_writable(PROBE_HOME);
    s_check_writable("/tmp");

    int rc = stat(PROBE_RUN_DIR, &st);
    int e = errno;
    bool dir = rc == 0 && S_ISDIR(st.st_mode);
    CB_OK(dir, "fs: %s is a directory (got %s)", PROBE_RUN_DIR,
          s_got(rc < 0, e, dir ? "a directory" : "another kind of file"));
    s_check_writable(PROBE_RUN_DIR);

    /* The mount table names no host path: neither a host path given nor its last component
     * (a bind from a filesystem mounted at /tmp shows the path below that mount). One mount is
     * let off: cellblock's libexec dir at /opt/cellblock, a read-only bind of a host directory,
     * whose root field is where it lies on the host (in a build tree, below the source tree; in
     * an install, /usr/libexec/cellblock). A bind mount cannot hide its source's path. */
    FILE *f = fopen("/proc/self/mountinfo", "re");
    char line[4096];
    const char *seen = NULL;
    while (f && !seen && fgets(line, sizeof line, f)) {
        char point[4096] = "";
        if (sscanf(line, "%*s %*s %*s %*s %4095s", point) == 1 &&
            strcmp(point, "/opt/cellblock") == 0)
            continue;
        for (int i = 0; opts->host_paths[i] && !seen; i++) {
            const char *path = opts->host_paths[i];
            const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
            if ((strlen(path) > 5 && strstr(line, path)) ||
                (strlen(base) >= 8 && strstr(line, base)))
                seen = path;
        }
    }
    CB_OK(f && !seen, "fs: /proc/self/mountinfo names no host path (%s%s)", f ? "" : "unreadable ",
          seen ? seen : "none named");
    if (f)
        fclose(f);
}

/* ---- cgroups and mounts: limits cannot be changed from inside, nothing can be mounted ----- */

static void s_check_cgroup_and_mount(void)
{
    /* v2 at the top, v1 one directory down; opened for writing, never written to */
    static const char *const files[] = {
        "memory.max",   "memory.high",   "memory.swap.max",        "pids.max",
        "cpu.max",      "cgroup.procs",  "cgroup.subtree_control", "memory/memory.limit_in_bytes",
        "memory/tasks", "pids/pids.max", "cpu/cpu.cfs_quota_us",   NULL};
    char path[PATH_MAX];
    for (const char *const *f = files; *f; f++) {
        snprintf(path, sizeof path, "/sys/fs/cgroup/%s", *f);
        EXPECT_FAIL(s_try_open(path, O_WRONLY), ERRNOS(ENOENT, EROFS, EACCES, EPERM),
                    "cgroup: open(\"%s\", O_WRONLY)", path);
    }
    EXPECT_FAIL(s_try_mkdir("/sys/fs/cgroup/sbx-probe"), ERRNOS(ENOENT, EROFS, EACCES, EPERM),
                "cgroup: mkdir(\"/sys/fs/cgroup/sbx-probe\")");

    /* On an empty directory of our own, so a run on a host as root cannot hide the host's /tmp
     * even for a moment. Where the mount would land does not change the EPERM. */
    char target[64];
    snprintf(target, sizeof target, "/tmp/.sbx-probe-mnt.%d", (int)getpid());
    bool made = mkdir(target, 0700) == 0;
    if (!made)
        strcpy(target, "/tmp");
    EXPECT_FAIL(s_try_mount(target), ERRNOS(EPERM), "fs: mount(\"none\", \"%s\", \"tmpfs\")",
                target);
    if (made)
        rmdir(target);
}

/* ---- /proc: the entries that leak the host or reach the kernel are masked ----------------- */

static void s_check_proc(void)
{
    static const char *const unreadable[] = {
        "kcore", "keys", "timer_list", "sched_debug", "latency_stats", "timer_stats", NULL};
    for (const char *const *f = unreadable; *f; f++) {
        char path[64], buf[64], got[64];
        snprintf(path, sizeof path, "/proc/%s", *f);
        cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
        int e = errno;
        ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf) : -1;
        e = fd >= 0 ? errno : e;
        if (n >= 0)
            snprintf(got, sizeof got, "%zd bytes read", n);
        else
            snprintf(got, sizeof got, "%s: %s", fd < 0 ? "open" : "read", s_ename(e));
        CB_OK(n == 0 || (n < 0 && (e == EACCES || e == EPERM || (fd < 0 && e == ENOENT))),
              "proc: %s reads 0 bytes or fails with EACCES, EPERM or ENOENT (got %s)", path, got);
    }

    static const char *const unwritable[] = {"/proc/sysrq-trigger", "/proc/sys/kernel/hostname",
                                             NULL};
    for (const char *const *f = unwritable; *f; f++)
        EXPECT_FAIL(s_try_open(*f, O_WRONLY), ERRNOS(EROFS, EACCES, EPERM, ENOENT),
                    "proc: open(\"%s\", O_WRONLY)", *f);
    EXPECT_DIR("/proc/acpi", s_nothing, true);
    EXPECT_DIR("/proc/scsi", s_nothing, true);
}

/* ---- /dev: only the harmless devices ------------------------------------------------------ */

/* Open the char device path (major:minor) and read (or, when buf is NULL, write) len bytes.
 * Returns the count, or -1; got says what happened. */
static ssize_t s_use_dev(const char *path, unsigned maj, unsigned min, unsigned char *buf,
                         size_t len, char *got, size_t cap)
{
    struct stat st;
    if (stat(path, &st) < 0 || !S_ISCHR(st.st_mode) || major(st.st_rdev) != maj ||
        minor(st.st_rdev) != min) {
        snprintf(got, cap, "not char device %u:%u", maj, min);
        return -1;
    }
    cleanup_close int fd = open(path, (buf ? O_RDONLY : O_WRONLY) | O_CLOEXEC);
    ssize_t n = -1;
    if (fd >= 0)
        n = buf ? read(fd, buf, len) : write(fd, "probe", len);
    if (n < 0)
        snprintf(got, cap, "%s", s_ename(errno));
    else
        snprintf(got, cap, "%zd bytes", n);
    return n;
}

static void s_check_dev(void)
{
    static const char *const allowed[] = {"null",  "zero",   "full",   "random", "urandom",
                                          "tty",   "pts",    "ptmx",   "shm",    "fd",
                                          "stdin", "stdout", "stderr", NULL};
    EXPECT_DIR("/dev", allowed, false);

    char got[64];
    ssize_t n = s_use_dev("/dev/null", 1, 3, NULL, 5, got, sizeof got);
    CB_OK(n == 5, "dev: /dev/null is char device 1:3 and takes 5 bytes (got %s)", got);

    unsigned char buf[64];
    n = s_use_dev("/dev/zero", 1, 5, buf, sizeof buf, got, sizeof got);
    size_t zeros = 0;
    for (ssize_t i = 0; i < n; i++)
        zeros += buf[i] == 0;
    CB_OK(n == (ssize_t)sizeof buf && zeros == sizeof buf,
          "dev: /dev/zero is char device 1:5 and reads %zu zeros (got %s, %zu zeros)", sizeof buf,
          got, zeros);

    n = s_use_dev("/dev/urandom", 1, 9, buf, 16, got, sizeof got);
    zeros = 0;
    for (ssize_t i = 0; i < n; i++)
        zeros += buf[i] == 0;
    CB_OK(n == 16 && zeros < 16,
          "dev: /dev/urandom is char device 1:9 and gives 16 bytes, not all 0 (got %s, "
          "%zu zeros)",
          got, zeros);

    static const char *const absent[] = {"/dev/mem", "/dev/kmsg", "/dev/sda", NULL};
    struct stat st;
    for (const char *const *p = absent; *p; p++)
        EXPECT_FAIL(lstat(*p, &st), ERRNOS(ENOENT), "dev: lstat(\"%s\")", *p);
}

/* ---- environment: exactly what the driver set --------------------------------------------- */

/* Is key (klen bytes) one of the comma-separated keys? */
static bool s_key_listed(const char *keys, const char *key, size_t klen)
{
    for (const char *p = keys; *p; p += strcspn(p, ","), p += *p == ',')
        if (strcspn(p, ",") == klen && strncmp(p, key, klen) == 0)
            return true;
    return false;
}

static void s_check_env(const char *keys)
{
    char extras[LIST_LEN] = "", missing[LIST_LEN] = "", word[128];
    for (char **env = environ; env && *env; env++) {
        size_t klen = strcspn(*env, "=");
        snprintf(word, sizeof word, "%.*s", (int)(klen < 100 ? klen : 100), *env);
        if (!s_key_listed(keys, *env, klen))
            s_append(extras, sizeof extras, word);
    }
    for (const char *p = keys; *p; p += strcspn(p, ","), p += *p == ',') {
        snprintf(word, sizeof word, "%.*s", (int)strcspn(p, ","), p);
        if (word[0] && !getenv(word))
            s_append(missing, sizeof missing, word);
    }
    CB_OK(!extras[0] && !missing[0],
          "env: exactly the keys the driver set (extra: %s; missing: %s)", s_got(false, 0, extras),
          s_got(false, 0, missing));
    CB_OK(!getenv("CELLBLOCK_HOST_SECRET"), "env: CELLBLOCK_HOST_SECRET is unset (got %s)",
          getenv("CELLBLOCK_HOST_SECRET") ? "set" : "unset");
}

/* ---- network: only a loopback of its own -------------------------------------------------- */

/* The interface names in a /proc/net file, one per line after skip header lines: the text
 * before the first ':' (name_last false) or the last field (true). Returns -1 with errno when
 * the file cannot be read, else how many lines named something other than lo. */
static int s_net_names(const char *path, int skip, bool name_last, char *names, size_t cap)
{
    char text[FILE_LEN / 4];
    names[0] = '\0';
    if (s_read_file(path, text, sizeof text) < 0)
        return -1;
    int others = 0;
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        if (skip-- > 0)
            continue;
        char *name =
            name_last && strrchr(line, ' ') ? strrchr(line, ' ') + 1 : line + strspn(line, " ");
        name[strcspn(name, ": \t")] = '\0';
        s_append(names, cap, name);
        others += strcmp(name, "lo") != 0;
    }
    return others;
}

static void s_check_net_files(void)
{
    char names[LIST_LEN];
    int others = s_net_names("/proc/net/dev", 2, false, names, sizeof names);
    int e = errno;
    CB_OK(others == 0 && strcmp(names, "lo") == 0, "net: /proc/net/dev lists only lo (got %s)",
          s_got(others < 0, e, names));
    /* every line after the header is a route, and each names its interface first */
    others = s_net_names("/proc/net/route", 1, false, names, sizeof names);
    e = errno;
    CB_OK(others >= 0 && !names[0], "net: /proc/net/route has no routes (got routes via: %s)",
          s_got(others < 0, e, names));
    others = s_net_names("/proc/net/if_inet6", 0, true, names, sizeof names);
    e = errno;
    CB_OK(others == 0 || (others < 0 && e == ENOENT),
          "net: /proc/net/if_inet6 is absent or mentions only lo (got %s)",
          s_got(others < 0, e, names));
}

static void s_check_loopback(const probe_opts_t *opts)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof addr;
    char sent = 'p', got = 0;
    const char *step = NULL;
    cleanup_close int srv = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cleanup_close int cli = -1;
    cleanup_close int conn = -1;
    if (srv < 0)
        step = "socket";
    else if (bind(srv, (struct sockaddr *)&addr, sizeof addr) < 0)
        step = "bind 127.0.0.1:0";
    else if (listen(srv, 1) < 0 || getsockname(srv, (struct sockaddr *)&addr, &alen) < 0)
        step = "listen";
    else if ((cli = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
        step = "socket";
    else if (connect(cli, (struct sockaddr *)&addr, sizeof addr) < 0)
        step = "connect";
    else if ((conn = accept4(srv, NULL, NULL, SOCK_CLOEXEC)) < 0)
        step = "accept";
    else if (send(cli, &sent, 1, MSG_NOSIGNAL) != 1)
        step = "send";
    else if (recv(conn, &got, 1, 0) != 1 || got != sent)
        step = "receive";
    int e = errno;
    CB_OK(!step, "net: lo is up: listen on 127.0.0.1, connect, send and receive a byte (%s%s%s)",
          step ? step : "all done", step ? ": " : "", step ? s_ename(e) : "");

    if (!opts->host_port) {
        CB_DIAG("net: host port check skipped (no --host-port)");
        return;
    }
    cleanup_close int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    addr.sin_port = htons((uint16_t)opts->host_port);
    EXPECT_FAIL(s < 0 ? -1 : connect(s, (struct sockaddr *)&addr, sizeof addr),
                ERRNOS(ECONNREFUSED), "net: connect(127.0.0.1:%d), a port on the host's lo",
                opts->host_port);
}

/* ---- main --------------------------------------------------------------------------------- */

static void s_usage(void)
{
    fprintf(stderr,
            "usage: sbx-probe [--no-seccomp] [--host-port N] [--host-pid N]\n"
            "                 [--host-path P]... (at most %d) [--env-keys K1,K2,...]\n",
            PROBE_MAX_PATHS);
    exit(2);
}

/* A decimal in [1, max], or usage. */
static int s_number(const char *s, long max)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 1 || v > max)
        s_usage();
    return (int)v;
}

int main(int argc, char **argv)
{
    probe_opts_t opts = {.seccomp = true};
    const char *env_keys = ""; /* none given: the environment must be empty */
    int n_paths = 0;
    static const struct option longopts[] = {
        {"no-seccomp", no_argument, NULL, 's'},     {"host-port", required_argument, NULL, 'p'},
        {"host-pid", required_argument, NULL, 'i'}, {"host-path", required_argument, NULL, 'f'},
        {"env-keys", required_argument, NULL, 'e'}, {NULL, 0, NULL, 0}};
    for (int c; (c = getopt_long(argc, argv, "", longopts, NULL)) != -1;) {
        if (c == 's')
            opts.seccomp = false;
        else if (c == 'p')
            opts.host_port = s_number(optarg, 65535);
        else if (c == 'i')
            opts.host_pid = s_number(optarg, INT_MAX);
        else if (c == 'e')
            env_keys = optarg;
        else if (c == 'f' && n_paths < PROBE_MAX_PATHS)
            opts.host_paths[n_paths++] = optarg;
        else
            s_usage();
    }
    if (optind < argc)
        s_usage();

    s_check_fds(); /* first: before anything below opens a file */
    s_check_identity(&opts);
    s_check_namespaces(&opts);
    s_check_readonly();
    s_check_paths(&opts);
    s_check_cgroup_and_mount();
    s_check_proc();
    s_check_dev();
    s_check_env(env_keys);
    s_check_net_files();
    s_check_loopback(&opts);
    probe_syscalls(&opts);
    return cb_tap_done();
}
