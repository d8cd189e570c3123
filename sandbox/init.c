/* init.c: cellblock-init, PID 1 of every sandbox.
 *
 * The sandbox library clones a child into new user, pid, mount, net, ipc and uts namespaces,
 * writes its uid/gid maps (the sandbox's uid 0 is one unprivileged host uid), puts it in the
 * sandbox's cgroups and then lets it exec this program with the control socket as fd 3. We are
 * uid 0 of that outer user namespace, with every capability in it, and single-threaded, so the
 * setup below may allocate and fail with care. In order:
 *
 *   1. a cgroup namespace (rooted at the sandbox's cgroup), the hostname;
 *   2. the filesystem: a tmpfs becomes the root (pivot_root with the old root kept at /oldroot
 *      until the end), then read-only binds of /usr and the bin/lib links, a minimal /etc, a fresh
 *      /proc with the dangerous entries masked, a minimal /dev, tmpfs /tmp and /dev/shm, the
 *      workspace at /home/user (a tmpfs, or a persistent host directory), /run/cellblock (a
 *      small tmpfs of its own, for the kernels' connection files and sockets: no host path is
 *      bound there), cellblock's libexec directory read-only at /opt/cellblock (the kernels
 *      and their drivers); the old root detached; the root read-only. A persistent workspace comes as
 *      a detached mount from a root gateway (moved into place), else as a path to bind;
 *   3. lo up (the new network namespace has nothing else);
 *   4. an inner user namespace in which we are uid 1000, so every process we start is an
 *      ordinary user with no capabilities anywhere that matters; bounding and ambient sets
 *      emptied, no_new_privs, rlimits, and the seccomp filter, all inherited by our children.
 *
 * Then READY goes back to the gateway with an O_PATH fd of our root (for workspace files), and we
 * serve: SPAWN requests fork a child that takes its stdio from the passed fds, gets its own
 * session, and execs; every child we spawned is reported once reaped (EXITED), after its process
 * group has been killed (nothing it started outlives it). Orphans are
 * reaped silently. Signals sent to us are forwarded to the process groups we spawned. When the
 * gateway's end of the socket closes (the gateway died or destroyed the sandbox) we SIGKILL
 * every process in the namespace and exit, which ends the namespace.
 *
 * A failed step is reported as FAILED {step, errno}; the library turns it into an error message.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/close_range.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sbx_private.h"

#define OLD "/oldroot"

typedef struct {
    sbx_wire_config_t cfg;
    sbx_wire_host_dirs_t dirs; /* the workspace (NULL: a tmpfs) and the libexec dir (NULL: none),
                                  as host paths or detached mounts from a root gateway */
    pid_t *spawned;            /* children we spawned and have not reaped */
    size_t nspawned, capspawned;
} init_t;

/* A failed step: what it was and its errno. Functions return -1 after s_fail. */
static uint32_t s_failed_step;
static int s_failed_errno;

static int s_fail(sbx_step_t step)
{
    s_failed_step = step;
    s_failed_errno = errno ? errno : EINVAL;
    return -1;
}

static int s_write_file(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0)
        return -1;
    size_t len = strlen(text);
    ssize_t n = write(fd, text, len);
    int saved = errno;
    close(fd);
    errno = saved;
    return n == (ssize_t)len ? 0 : -1;
}

/* mkdir -p for paths on our own tmpfs. */
static int s_mkdirs(const char *path, mode_t mode)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;
            *p = '\0';
            if (mkdir(buf, mode) < 0 && errno != EEXIST)
                return -1;
            *p = saved;
            if (saved == '\0')
                return 0;
        }
    }
}

/* Remount a bind mount nosuid, nodev and with extra (MS_RDONLY, MS_NOEXEC). A remount inside a
 * user namespace must keep the flags the host mount has locked, so read them back first. */
static int s_remount(const char *path, unsigned long extra)
{
    struct statvfs sv;
    if (statvfs(path, &sv) < 0)
        return -1;
    unsigned long flags = MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV | extra;
    if (sv.f_flag & ST_RDONLY)
        flags |= MS_RDONLY;
    if (sv.f_flag & ST_NOEXEC)
        flags |= MS_NOEXEC;
    if (sv.f_flag & ST_NOATIME)
        flags |= MS_NOATIME;
    if (sv.f_flag & ST_NODIRATIME)
        flags |= MS_NODIRATIME;
    if (sv.f_flag & ST_RELATIME)
        flags |= MS_RELATIME;
    return mount(NULL, path, NULL, flags, NULL);
}

static int s_remount_ro(const char *path, unsigned long extra)
{
    return s_remount(path, MS_RDONLY | extra);
}

/* Mirror a host path (under /oldroot) at the same place in the new root, read-only: symlinks are
 * recreated, directories and files bind-mounted. A missing host path is skipped. */
static int s_bind_ro(const char *path)
{
    char src[PATH_MAX], target[PATH_MAX];
    struct stat st;
    snprintf(src, sizeof src, OLD "%s", path);
    if (lstat(src, &st) < 0)
        return errno == ENOENT ? 0 : -1;
    char parent[PATH_MAX];
    snprintf(parent, sizeof parent, "%s", path);
    char *slash = strrchr(parent, '/');
    if (slash && slash != parent) {
        *slash = '\0';
        if (s_mkdirs(parent, 0755) < 0)
            return -1;
    }
    if (S_ISLNK(st.st_mode)) {
        ssize_t n = readlink(src, target, sizeof target - 1);
        if (n < 0)
            return -1;
        target[n] = '\0';
        return symlink(target, path) < 0 && errno != EEXIST ? -1 : 0;
    }
    if (S_ISDIR(st.st_mode)) {
        if (mkdir(path, 0755) < 0 && errno != EEXIST)
            return -1;
    } else {
        int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0)
            return -1;
        close(fd);
    }
    if (mount(src, path, NULL, MS_BIND | MS_REC, NULL) < 0)
        return -1;
    return s_remount_ro(path, 0);
}

static int s_mount_tmpfs(const char *path, const char *mode, uint64_t size, unsigned long flags)
{
    char opts[96];
    snprintf(opts, sizeof opts, "mode=%s,size=%llu", mode, (unsigned long long)size);
    if (strcmp(path, SBX_INSIDE_RUN_DIR) == 0) /* what code inside may put there is capped */
        snprintf(opts, sizeof opts, "mode=%s,size=%llu,nr_inodes=%u", mode,
                 (unsigned long long)size, SBX_RUN_DIR_INODES);
    if (s_mkdirs(path, 0755) < 0)
        return -1;
    return mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV | flags, opts);
}

/* Step 2a: a tmpfs root, the host's root kept at /oldroot while we build. */
static int s_new_root(void)
{
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        return s_fail(SBX_STEP_MOUNT_PRIVATE);
    /* Any existing directory serves as the mount point: pivot_root moves the tmpfs off it, so
     * the host's /tmp is whole again under /oldroot/tmp. */
    if (mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=4m") < 0)
        return s_fail(SBX_STEP_MOUNT_ROOT);
    if (chdir("/tmp") < 0 || mkdir("oldroot", 0700) < 0)
        return s_fail(SBX_STEP_MOUNT_ROOT);
    if (syscall(SYS_pivot_root, ".", "oldroot") < 0 || chdir("/") < 0)
        return s_fail(SBX_STEP_PIVOT);
    return 0;
}

static int s_system_binds(void)
{
    static const char *const system[] = {"/usr",   "/bin",   "/sbin",  "/lib",
                                         "/lib32", "/lib64", "/libx32"};
    for (size_t i = 0; i < sizeof system / sizeof *system; i++)
        if (s_bind_ro(system[i]) < 0)
            return s_fail(SBX_STEP_BIND_SYSTEM);
    return 0;
}

/* Step 2b: /etc holds only what programs need to run, nothing about the host's users, no keys. */
static int s_etc(const init_t *in)
{
    static const char *const from_host[] = {
        "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/alternatives",
        "/etc/localtime", "/etc/mime.types", "/etc/fonts", "/etc/ssl/certs", "/etc/python3",
        "/etc/python3.11", "/etc/matplotlibrc", "/etc/bash.bashrc", "/etc/profile", "/etc/inputrc",
        "/etc/debian_version", "/etc/os-release", "/etc/timezone",
        /* the language toolchains' own configuration (no keys: Java's trust store is
         * /etc/ssl/certs/java, already above); R reads its Renviron and ldpaths there */
        "/etc/java-17-openjdk", "/etc/R"};
    char hosts[256], hostname[80];
    snprintf(hosts, sizeof hosts, "127.0.0.1\tlocalhost %s\n::1\tlocalhost ip6-localhost\n",
             in->cfg.hostname);
    snprintf(hostname, sizeof hostname, "%s\n", in->cfg.hostname);
    if (mkdir("/etc", 0755) < 0 ||
        s_write_file("/etc/passwd",
                     "root:x:0:0:root:/root:/usr/sbin/nologin\n"
                     "user:x:1000:1000:sandbox user:/home/user:/bin/bash\n"
                     "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
                     0644) < 0 ||
        s_write_file("/etc/group", "root:x:0:\nuser:x:1000:\nnogroup:x:65534:\n", 0644) < 0 ||
        s_write_file("/etc/nsswitch.conf", "passwd: files\ngroup: files\nhosts: files\n", 0644) <
            0 ||
        s_write_file("/etc/hosts", hosts, 0644) < 0 ||
        s_write_file("/etc/hostname", hostname, 0644) < 0)
        return s_fail(SBX_STEP_ETC);
    for (size_t i = 0; i < sizeof from_host / sizeof *from_host; i++)
        if (s_bind_ro(from_host[i]) < 0)
            return s_fail(SBX_STEP_ETC);
    return 0;
}

/* Step 2c: a fresh /proc for our pid namespace, with the entries that describe or poke the host
 * kernel hidden (files get /dev/null bound over them, directories an empty read-only tmpfs) and
 * the tunables read-only. Must run while the host's /proc is still visible under /oldroot: the
 * kernel only lets a user namespace mount proc when a full one is already in sight. */
static int s_proc(void)
{
    static const char *const hide_files[] = {
        "kcore", "keys",       "timer_list", "sched_debug", "latency_stats", "timer_stats",
        "kmsg",  "kpagecount", "kpageflags", "kpagecgroup", "config.gz"};
    static const char *const hide_dirs[] = {"acpi", "scsi", "asound", "driver"};
    static const char *const read_only[] = {"sys", "sysrq-trigger", "irq", "bus", "fs"};
    char path[64];
    if (mkdir("/proc", 0555) < 0 ||
        mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
        return s_fail(SBX_STEP_PROC);
    for (size_t i = 0; i < sizeof hide_files / sizeof *hide_files; i++) {
        snprintf(path, sizeof path, "/proc/%s", hide_files[i]);
        if (access(path, F_OK) == 0 && mount(OLD "/dev/null", path, NULL, MS_BIND, NULL) < 0)
            return s_fail(SBX_STEP_PROC_MASK);
    }
    for (size_t i = 0; i < sizeof hide_dirs / sizeof *hide_dirs; i++) {
        snprintf(path, sizeof path, "/proc/%s", hide_dirs[i]);
        if (access(path, F_OK) == 0 &&
            mount("tmpfs", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k") <
                0)
            return s_fail(SBX_STEP_PROC_MASK);
    }
    for (size_t i = 0; i < sizeof read_only / sizeof *read_only; i++) {
        snprintf(path, sizeof path, "/proc/%s", read_only[i]);
        if (access(path, F_OK) == 0 && (mount(path, path, NULL, MS_BIND | MS_REC, NULL) < 0 ||
                                        s_remount_ro(path, MS_NOEXEC) < 0))
            return s_fail(SBX_STEP_PROC_MASK);
    }
    return 0;
}

/* Step 2d: /dev with the harmless character devices (bound from the host: a user namespace
 * cannot mknod), a private devpts instance for terminals, and /dev/shm. */
static int s_dev(const init_t *in)
{
    static const char *const nodes[] = {"null", "zero", "full", "random", "urandom", "tty"};
    static const char *const links[][2] = {{"fd", "/proc/self/fd"},
                                           {"stdin", "/proc/self/fd/0"},
                                           {"stdout", "/proc/self/fd/1"},
                                           {"stderr", "/proc/self/fd/2"},
                                           {"ptmx", "pts/ptmx"}};
    char src[64], dst[64];
    if (s_mount_tmpfs("/dev", "0755", 64 * 1024, MS_NOEXEC) < 0)
        return s_fail(SBX_STEP_DEV);
    for (size_t i = 0; i < sizeof nodes / sizeof *nodes; i++) {
        snprintf(src, sizeof src, OLD "/dev/%s", nodes[i]);
        snprintf(dst, sizeof dst, "/dev/%s", nodes[i]);
        int fd = open(dst, O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
        if (fd < 0)
            return s_fail(SBX_STEP_DEV);
        close(fd);
        if (mount(src, dst, NULL, MS_BIND, NULL) < 0)
            return s_fail(SBX_STEP_DEV);
    }
    for (size_t i = 0; i < sizeof links / sizeof *links; i++) {
        snprintf(dst, sizeof dst, "/dev/%s", links[i][0]);
        if (symlink(links[i][1], dst) < 0)
            return s_fail(SBX_STEP_DEV);
    }
    if (mkdir("/dev/pts", 0755) < 0 || mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
                                             "newinstance,ptmxmode=0666,mode=0620") < 0)
        return s_fail(SBX_STEP_DEV);
    if (s_mount_tmpfs("/dev/shm", "1777", in->cfg.tmp_bytes, 0) < 0)
        return s_fail(SBX_STEP_TMP);
    if (mount(NULL, "/dev", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NOEXEC, NULL) <
        0)
        return s_fail(SBX_STEP_DEV);
    return 0;
}

/* Put a host directory at target, nosuid, nodev, and with extra (MS_RDONLY): move the detached
 * mount the gateway sent (tree), or bind host_path as seen under /oldroot. -1 with errno. */
static int s_attach_host_dir(int tree, const char *host_path, const char *target,
                             unsigned long extra)
{
    char src[PATH_MAX];
    if (snprintf(src, sizeof src, OLD "%s", host_path) >= (int)sizeof src) {
        errno = ENAMETOOLONG;
        return -1;
    }
    if (s_mkdirs(target, 0755) < 0)
        return -1;
    int rc = tree >= 0 ? move_mount(tree, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH)
                       : mount(src, target, NULL, MS_BIND, NULL);
    return rc < 0 ? -1 : s_remount(target, extra);
}

static int s_build_filesystem(const init_t *in)
{
    if (s_new_root() < 0 || s_system_binds() < 0 || s_etc(in) < 0 || s_proc() < 0 || s_dev(in) < 0)
        return -1;
    if (s_mount_tmpfs("/tmp", "1777", in->cfg.tmp_bytes, 0) < 0)
        return s_fail(SBX_STEP_TMP);
    if (in->dirs.workspace_dir
            ? s_attach_host_dir(in->dirs.workspace_tree, in->dirs.workspace_dir,
                                SBX_INSIDE_WORKSPACE, 0) < 0
            : s_mount_tmpfs(SBX_INSIDE_WORKSPACE, "0755", in->cfg.workspace_bytes, 0) < 0)
        return s_fail(SBX_STEP_WORKSPACE);
    /* cellblock's own programs (the kernels, their drivers), host-owned: read-only. */
    if (in->dirs.libexec_dir && s_attach_host_dir(in->dirs.libexec_tree, in->dirs.libexec_dir,
                                                  SBX_INSIDE_LIBEXEC, MS_RDONLY) < 0)
        return s_fail(SBX_STEP_LIBEXEC);
    if (s_mount_tmpfs(SBX_INSIDE_RUN_DIR, "0700", SBX_RUN_DIR_BYTES, MS_NOEXEC) < 0)
        return s_fail(SBX_STEP_RUN_DIR);
    if (umount2(OLD, MNT_DETACH) < 0 || rmdir(OLD) < 0)
        return s_fail(SBX_STEP_DETACH_OLD_ROOT);
    if (mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) < 0)
        return s_fail(SBX_STEP_READONLY_ROOT);
    if (chdir(SBX_INSIDE_WORKSPACE) < 0)
        return s_fail(SBX_STEP_WORKSPACE);
    return 0;
}

static int s_loopback_up(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct ifreq ifr = {0};
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "lo");
    int rc = fd < 0 ? -1 : ioctl(fd, SIOCGIFFLAGS, &ifr);
    if (rc == 0) {
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        rc = ioctl(fd, SIOCSIFFLAGS, &ifr);
    }
    int saved = errno;
    if (fd >= 0)
        close(fd);
    errno = saved;
    return rc < 0 ? s_fail(SBX_STEP_LOOPBACK) : 0;
}

/* Step 4: uid 1000 in an inner user namespace. The outer namespace owns every other namespace
 * of the sandbox; the inner one owns nothing, so its capabilities are worth nothing, and we drop
 * them anyway. */
static int s_become_user(void)
{
    char map[32];
    if (unshare(CLONE_NEWUSER) < 0)
        return s_fail(SBX_STEP_USERNS);
    snprintf(map, sizeof map, "%d 0 1\n", SBX_INSIDE_UID);
    if (s_write_file("/proc/self/setgroups", "deny", 0) < 0 ||
        s_write_file("/proc/self/uid_map", map, 0) < 0)
        return s_fail(SBX_STEP_USERNS);
    snprintf(map, sizeof map, "%d 0 1\n", SBX_INSIDE_GID);
    if (s_write_file("/proc/self/gid_map", map, 0) < 0)
        return s_fail(SBX_STEP_USERNS);

    for (int cap = 0; cap <= 63; cap++)
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
            return s_fail(SBX_STEP_CAPS);
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
        return s_fail(SBX_STEP_CAPS);
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
    struct __user_cap_data_struct data[2] = {{0}};
    if (syscall(SYS_capset, &hdr, data) < 0)
        return s_fail(SBX_STEP_CAPS);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return s_fail(SBX_STEP_NO_NEW_PRIVS);
    /* Not dumpable: processes inside run as the same uid, and must not reach our memory (and
     * the control socket) through /proc/1/mem; seccomp only stops ptrace itself. */
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
        return s_fail(SBX_STEP_CAPS);
    /* Death with the parent again: credential changes can clear it. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
        return s_fail(SBX_STEP_CAPS);
    return 0;
}

static int s_rlimits(const init_t *in)
{
    struct rlimit nofile = {in->cfg.nofile, in->cfg.nofile};
    struct rlimit core = {0, 0};
    struct rlimit fsize = {in->cfg.fsize_bytes, in->cfg.fsize_bytes};
    if (setrlimit(RLIMIT_NOFILE, &nofile) < 0 || setrlimit(RLIMIT_CORE, &core) < 0 ||
        setrlimit(RLIMIT_FSIZE, &fsize) < 0)
        return s_fail(SBX_STEP_RLIMITS);
    if (in->cfg.nproc) {
        struct rlimit nproc = {in->cfg.nproc, in->cfg.nproc};
        if (setrlimit(RLIMIT_NPROC, &nproc) < 0)
            return s_fail(SBX_STEP_RLIMITS);
    }
    return 0;
}

static int s_setup(const init_t *in)
{
    if (unshare(CLONE_NEWCGROUP) < 0)
        return s_fail(SBX_STEP_CGROUP_NS);
    if (sethostname(in->cfg.hostname, strlen(in->cfg.hostname)) < 0)
        return s_fail(SBX_STEP_HOSTNAME);
    if (s_build_filesystem(in) < 0 || s_loopback_up() < 0 || s_become_user() < 0 ||
        s_rlimits(in) < 0)
        return -1;
    if (in->cfg.seccomp_mode != 2) {
        int rc = sbx_seccomp_load((int)in->cfg.seccomp_mode);
        if (rc < 0) {
            errno = -rc;
            return s_fail(SBX_STEP_SECCOMP);
        }
    }
    return 0;
}

static void s_reply(uint32_t type, uint32_t id, pid_t pid, uint32_t step, int error, const int *fds,
                    int nfds)
{
    sbx_wire_reply_t r = {
        .h = {SBX_WIRE_MAGIC, type}, .id = id, .pid = pid, .step = step, .error = error};
    if (sbx_wire_send(SBX_INIT_FD, &r, sizeof r, fds, nfds) < 0 && errno != EPIPE)
        fprintf(stderr, "cellblock-init: send: %s\n", strerror(errno));
}

/* ---------------------------------------------------------------------------------------------
 * Serving.
 * ------------------------------------------------------------------------------------------- */

typedef struct {
    uint32_t step;
    int32_t error;
} child_failure_t;

/* Make this child the OOM killer's choice before the init (SBX_CHILD_OOM_SCORE_ADJ). Our own
 * /proc entry is ours to write (while we are not dumpable its owner is the namespace's root,
 * the sandbox user). Best effort: at 0 the child is still killable, and usually bigger. */
static void s_oom_first(void)
{
    int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    if (write(fd, SBX_CHILD_OOM_SCORE_ADJ, strlen(SBX_CHILD_OOM_SCORE_ADJ)) < 0) {
        /* stays at 0 */
    }
    close(fd);
}

/* In the forked child: never returns. Reports the failing step on errpipe (close-on-exec, so
 * EOF there means the exec worked). */
static void __attribute__((noreturn))
s_child(const char *path, char **argv, char **env, const char *cwd, const int *stdio, bool tty,
        int errpipe)
{
    child_failure_t f = {SBX_STEP_NONE, 0};
    sigset_t all;
    sigfillset(&all);
    for (int sig = 1; sig < NSIG; sig++)
        signal(sig, SIG_DFL);
    sigprocmask(SIG_UNBLOCK, &all, NULL);

    s_oom_first();
    if (setsid() < 0)
        f.step = SBX_STEP_SETSID;
    else if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
        f.step = SBX_STEP_SETSID;
    for (int i = 0; i < 3 && f.step == SBX_STEP_NONE; i++) {
        int fd = stdio[i] >= 0 ? stdio[i] : open("/dev/null", i == 0 ? O_RDONLY : O_WRONLY);
        if (fd < 0 || dup2(fd, i) < 0)
            f.step = SBX_STEP_STDIO;
    }
    /* A terminal on stdin becomes ours: we lead a new session, so we are its foreground group. */
    if (f.step == SBX_STEP_NONE && tty && ioctl(0, TIOCSCTTY, 0) < 0)
        f.step = SBX_STEP_STDIO;
    if (f.step == SBX_STEP_NONE && chdir(cwd) < 0)
        f.step = SBX_STEP_CHDIR;
    /* Everything past stdio goes at exec; the error pipe is already close-on-exec. */
    if (f.step == SBX_STEP_NONE && syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
        f.step = SBX_STEP_CLOSE_FDS;
    if (f.step == SBX_STEP_NONE) {
        execve(path, argv, env);
        f.step = SBX_STEP_EXEC;
    }
    f.error = errno;
    if (write(errpipe, &f, sizeof f) < 0) {
        /* nothing more to say */
    }
    _exit(127);
}

/* Find argv[0] through PATH from the process's own environment, as execvpe would. */
static int s_resolve(const char *name, char **env, char *out, size_t size)
{
    if (strchr(name, '/'))
        return snprintf(out, size, "%s", name) < (int)size ? 0 : (errno = ENAMETOOLONG, -1);
    const char *path = "/usr/local/bin:/usr/bin:/bin";
    for (char **e = env; *e; e++)
        if (strncmp(*e, "PATH=", 5) == 0)
            path = *e + 5;
    int saw_eacces = 0;
    while (*path) {
        size_t len = strcspn(path, ":");
        if (snprintf(out, size, "%.*s/%s", (int)len, path, name) < (int)size) {
            if (access(out, X_OK) == 0)
                return 0;
            saw_eacces |= errno == EACCES;
        }
        path += len + (path[len] == ':');
    }
    errno = saw_eacces ? EACCES : ENOENT;
    return -1;
}

static void s_track(init_t *in, pid_t pid)
{
    if (in->nspawned == in->capspawned) {
        size_t cap = in->capspawned ? in->capspawned * 2 : 16;
        pid_t *grown = realloc(in->spawned, cap * sizeof *grown);
        if (!grown)
            return; /* it still gets reaped, just not reported */
        in->spawned = grown;
        in->capspawned = cap;
    }
    in->spawned[in->nspawned++] = pid;
}

static void s_spawn(init_t *in, char *buf, size_t len, const int *fds)
{
    const sbx_wire_spawn_t *sp = (const sbx_wire_spawn_t *)buf;
    static char *vec[SBX_WIRE_MAX / 2];
    char **argv = NULL, **env = NULL;
    const char *cwd = SBX_INSIDE_WORKSPACE;
    char path[PATH_MAX];
    int stdio[3] = {-1, -1, -1};
    for (int i = 0, next = 0; i < 3; i++)
        if (sp->fd_mask & (1u << i))
            stdio[i] = fds[next++];

    if (sbx_wire_unpack_spawn(buf, len, sp, vec, sizeof vec / sizeof *vec, &argv, &env, &cwd) < 0) {
        s_reply(SBX_MSG_SPAWNED, sp->id, 0, SBX_STEP_PROTOCOL, EINVAL, NULL, 0);
        return;
    }
    if (!*cwd)
        cwd = SBX_INSIDE_WORKSPACE;
    if (s_resolve(argv[0], env, path, sizeof path) < 0) {
        s_reply(SBX_MSG_SPAWNED, sp->id, 0, SBX_STEP_EXEC, errno, NULL, 0);
        return;
    }
    int errpipe[2];
    if (pipe2(errpipe, O_CLOEXEC) < 0) {
        s_reply(SBX_MSG_SPAWNED, sp->id, 0, SBX_STEP_FORK, errno, NULL, 0);
        return;
    }
    pid_t pid = fork();
    if (pid == 0) {
        close(errpipe[0]);
        s_child(path, argv, env, cwd, stdio, (sp->flags & SBX_SPAWN_TTY) != 0, errpipe[1]);
    }
    int fork_errno = errno;
    close(errpipe[1]);
    if (pid < 0) {
        close(errpipe[0]);
        s_reply(SBX_MSG_SPAWNED, sp->id, 0, SBX_STEP_FORK, fork_errno, NULL, 0);
        return;
    }
    child_failure_t f = {SBX_STEP_NONE, 0};
    ssize_t n;
    do
        n = read(errpipe[0], &f, sizeof f);
    while (n < 0 && errno == EINTR);
    close(errpipe[0]);
    if (n == (ssize_t)sizeof f) {
        waitpid(pid, NULL, 0);
        s_reply(SBX_MSG_SPAWNED, sp->id, 0, f.step, f.error, NULL, 0);
        return;
    }
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pidfd < 0) {
        int e = errno;
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        s_reply(SBX_MSG_SPAWNED, sp->id, 0, SBX_STEP_PIDFD, e, NULL, 0);
        return;
    }
    s_track(in, pid);
    s_reply(SBX_MSG_SPAWNED, sp->id, pid, SBX_STEP_NONE, 0, &pidfd, 1);
    close(pidfd);
}

/* OPEN: make what the gateway asked for in our namespaces and send it back. */
static void s_open(const sbx_wire_open_t *req)
{
    int fd = -1;
    switch (req->what) {
    case SBX_OPEN_TCP4:
    case SBX_OPEN_TCP6:
        fd = socket(req->what == SBX_OPEN_TCP4 ? AF_INET : AF_INET6,
                    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        break;
    case SBX_OPEN_PTY: fd = open("/dev/pts/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC); break;
    default: errno = EINVAL; break;
    }
    sbx_wire_reply_t r = {.h = {SBX_WIRE_MAGIC, SBX_MSG_OPENED},
                          .id = req->id,
                          .error = fd < 0 ? (errno ? errno : EINVAL) : 0};
    if (sbx_wire_send(SBX_INIT_FD, &r, sizeof r, fd >= 0 ? &fd : NULL, fd >= 0 ? 1 : 0) < 0 &&
        errno != EPIPE)
        fprintf(stderr, "cellblock-init: send: %s\n", strerror(errno));
    if (fd >= 0)
        close(fd);
}

static void s_reap(init_t *in)
{
    for (;;) {
        siginfo_t info = {0};
        if (waitid(P_ALL, 0, &info, WEXITED | WNOHANG) < 0 || info.si_pid == 0)
            return;
        for (size_t i = 0; i < in->nspawned; i++) {
            if (in->spawned[i] != info.si_pid)
                continue;
            in->spawned[i] = in->spawned[--in->nspawned];
            /* Its process group is left alone: a command's background jobs (`&`, nohup,
             * setsid) outlive it until the sandbox ends or they are killed. The gateway kills
             * the group where that is wanted (a kernel's end, a timeout, a kill). */
            sbx_wire_reply_t r = {.h = {SBX_WIRE_MAGIC, SBX_MSG_EXITED},
                                  .pid = info.si_pid,
                                  .code = info.si_code,
                                  .status = info.si_status};
            sbx_wire_send(SBX_INIT_FD, &r, sizeof r, NULL, 0);
            break;
        }
    }
}

static int s_serve(init_t *in, int sigfd)
{
    static char buf[SBX_WIRE_MAX];
    struct pollfd pfd[2] = {{.fd = SBX_INIT_FD, .events = POLLIN}, {.fd = sigfd, .events = POLLIN}};
    for (;;) {
        if (poll(pfd, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (pfd[1].revents & POLLIN) {
            struct signalfd_siginfo si;
            while (read(sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
                if (si.ssi_signo == SIGCHLD)
                    continue;
                for (size_t i = 0; i < in->nspawned; i++)
                    kill(-in->spawned[i], (int)si.ssi_signo);
            }
            s_reap(in);
        }
        if (pfd[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            int fds[3];
            ssize_t n = sbx_wire_recv(SBX_INIT_FD, buf, sizeof buf, fds, 3);
            if (n <= 0)
                return 0; /* the gateway is gone */
            const sbx_wire_header_t *h = (const sbx_wire_header_t *)buf;
            if ((size_t)n >= sizeof(sbx_wire_spawn_t) && h->magic == SBX_WIRE_MAGIC &&
                h->type == SBX_MSG_SPAWN) {
                buf[n < (ssize_t)sizeof buf ? n : n - 1] = '\0';
                s_spawn(in, buf, (size_t)n, fds);
            } else if (n == (ssize_t)sizeof(sbx_wire_open_t) && h->magic == SBX_WIRE_MAGIC &&
                       h->type == SBX_MSG_OPEN) {
                sbx_wire_open_t req;
                memcpy(&req, buf, sizeof req);
                s_open(&req);
            } else {
                fprintf(stderr, "cellblock-init: ignoring an unexpected message\n");
            }
            for (int i = 0; i < 3; i++)
                if (fds[i] >= 0)
                    close(fds[i]);
        }
    }
}

/* Split CONFIG (n bytes in buf, NUL-terminated at buf[n]) into in (sbx_wire_unpack_config).
 * Returns 0, or -1 when the message is malformed. */
static int s_unpack_config(char *buf, ssize_t n, const int *fds, init_t *in)
{
    return sbx_wire_unpack_config(buf, (size_t)n, fds, &in->cfg, &in->dirs);
}

int main(void)
{
    static char buf[SBX_WIRE_MAX];
    init_t in = {0};
    int fds[2];

    ssize_t n = sbx_wire_recv(SBX_INIT_FD, buf, sizeof buf - 1, fds, 2);
    if (n < (ssize_t)sizeof in.cfg) {
        fprintf(stderr,
                "cellblock-init: no configuration on fd %d (run by the sandbox library only)\n",
                SBX_INIT_FD);
        return 2;
    }
    buf[n] = '\0';
    if (s_unpack_config(buf, n, fds, &in) < 0) {
        errno = EPROTO;
        s_fail(SBX_STEP_PROTOCOL);
        s_reply(SBX_MSG_FAILED, 0, 0, s_failed_step, s_failed_errno, NULL, 0);
        return 2;
    }

    sigset_t mask;
    sigemptyset(&mask);
    int forwarded[] = {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
    for (size_t i = 0; i < sizeof forwarded / sizeof *forwarded; i++)
        sigaddset(&mask, forwarded[i]);
    int sigfd = -1;
    if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0 ||
        (sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK)) < 0) {
        s_fail(SBX_STEP_SIGNALS);
    } else if (s_setup(&in) == 0) {
        if (in.dirs.workspace_tree >= 0)
            close(in.dirs.workspace_tree);
        if (in.dirs.libexec_tree >= 0)
            close(in.dirs.libexec_tree);
        int root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (root < 0) {
            s_fail(SBX_STEP_ROOT_FD);
        } else {
            s_reply(SBX_MSG_READY, 0, 1, SBX_STEP_NONE, 0, &root, 1);
            close(root);
            s_serve(&in, sigfd);
            kill(-1, SIGKILL);
            return 0;
        }
    }
    s_reply(SBX_MSG_FAILED, 0, 0, s_failed_step, s_failed_errno, NULL, 0);
    return 1;
}
