/* sandbox.c: creating sandboxes, spawning processes into them, tearing them down.
 *
 * sbx_new clones a child straight into new user, pid, mount, net, ipc and uts namespaces
 * (clone3, with a pidfd). The child only waits: the gateway is multi-threaded, so the child of a
 * raw clone may not allocate or take locks. The parent writes the child's uid/gid maps (the
 * sandbox's root is one host id: ours when unprivileged, SBX_ROOT_HOST_ID when we are root, so
 * nothing inside ever maps to host root), puts it into the sandbox's cgroups, and releases it;
 * the child execs cellblock-init from an fd opened beforehand, with the control socket as fd 3
 * and /dev/null as stdin and stdout (stdout may be an MCP channel). The init builds the sandbox
 * (see init.c) and answers READY with an fd of its root, or FAILED with the step and errno.
 *
 * Processes are spawned by the init (it is their parent and reaps them); we get a pidfd for
 * each, and the init reports each exit status on the control socket. Those reports can arrive
 * while we wait for another reply, so unclaimed ones are queued until their process asks.
 *
 * Teardown is SIGKILL to the init: the kernel then kills every process of the pid namespace
 * before the init can be reaped. The cgroups go next, the host run dir last. When the gateway dies,
 * the init's parent-death signal and the closed control socket each end the sandbox; what that
 * leaves on the host (the run dir, the cgroups) is for sbx_sweep_stale (sweep.c) at the next
 * start. To tell a dead gateway's run dir from a live one, the run dir is made with
 * cb_dir_create_locked and its flock is held until sbx_destroy has removed it. The lock's fd is
 * close-on-exec, so it never reaches the init (nor, through it, anything inside).
 *
 * The host run dir is the gateway's alone (mode 0700, never mounted inside); the sandbox's
 * /run/cellblock is a small tmpfs the init mounts, which the gateway reaches through run_fd, opened
 * beneath the root fd the init sends with READY (sbx_run_fd). So code inside, which writes there,
 * can neither fill the host's disk nor lead the gateway anywhere by a path.
 *
 * A persistent workspace (policy.workspace_dir) reaches the init from a root gateway as a
 * detached mount (its directory handed to the sandbox's host ids first), from an unprivileged
 * one as a path to bind. cellblock's libexec directory (policy.libexec_dir), which the init binds
 * read-only at /opt/cellblock for the kernels, travels the same way (it stays host-owned).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <linux/sched.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cb/alloc.h"
#include "cb/cleanup.h"
#include "cb/log.h"
#include "cb/paths.h"
#include "sbx_private.h"

/* The host uid and gid a root gateway maps each sandbox's users onto: an unprivileged id far
 * above the ranges distributions hand out (subuid ranges start at 100000). */
#define SBX_ROOT_HOST_ID 2000000000u

#define MiB (1024ull * 1024ull)

struct sbx_event {
    sbx_wire_reply_t msg;
    sbx_event_t *next;
};

const char *sbx_default_init_path(void)
{
    const char *env = getenv("CELLBLOCK_INIT");
    if (env && *env)
        return env;
    return cb_path_init(); /* <prefix>/libexec/cellblock, by the rule of cb/paths.h */
}

const sbx_layers_t *sbx_layers(const sbx_t *self) { return &self->layers; }
pid_t sbx_init_pid(const sbx_t *self) { return self->init_pid; }
int sbx_init_pidfd(const sbx_t *self) { return self->init_pidfd; }
const char *sbx_run_dir(const sbx_t *self) { return self->run_dir; }
int sbx_host_dir_fd(const sbx_t *self) { return self->run_dir_lock; }
int sbx_run_fd(const sbx_t *self) { return self->run_fd; }
uid_t sbx_host_uid(const sbx_t *self) { return self->host_uid; }

/* Is name one plain component (what the run-dir calls take)? */
static bool s_one_name(const char *name)
{
    return name && *name && !strchr(name, '/') && strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
}

int sbx_run_mkdir(const sbx_t *self, const char *name, cb_error_t *err)
{
    if (!s_one_name(name))
        return cb_error_fail(err, CB_ERR_INVALID, "'%s' is not a name in the run dir",
                             name ? name : "");
    bool switched = sbx_fs_as_owner(self);
    int rc = mkdirat(self->run_fd, name, 0700);
    sbx_fs_as_self(switched);
    if (rc < 0)
        return cb_error_make(err, errno, "create '%s' in the sandbox's run dir", name);
    cleanup_close int fd =
        cb_openat_beneath(self->run_fd, name, O_RDONLY | O_DIRECTORY | O_NONBLOCK, 0);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0)
        return cb_error_make(err, errno, "open '%s' in the sandbox's run dir", name);
    if (!S_ISDIR(st.st_mode) || st.st_uid != self->host_uid) /* swapped since the mkdir */
        return cb_error_make(err, EEXIST, "open '%s' in the sandbox's run dir", name);
    return cb_steal_fd(&fd);
}

int sbx_run_write(const sbx_t *self, int dirfd, const char *name, const void *data, size_t len,
                  cb_error_t *err)
{
    if (!s_one_name(name))
        return cb_error_fail(err, CB_ERR_INVALID, "'%s' is not a name in the run dir",
                             name ? name : "");
    bool switched = sbx_fs_as_owner(self);
    int rc = cb_write_new_at(dirfd, name, data, len, 0600, err);
    sbx_fs_as_self(switched);
    return rc;
}

/* Open /run/cellblock beneath the sandbox's root and check it is the tmpfs the init mounted:
 * a tmpfs, a mount of its own (not the root's), owned by the sandbox user. */
static int s_open_run_fd(sbx_t *s, cb_error_t *err)
{
    struct open_how how = {.flags = O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC,
                           .resolve =
                               RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS};
    cleanup_close int fd =
        (int)syscall(SYS_openat2, s->root_fd, SBX_INSIDE_RUN_DIR + 1, &how, sizeof how);
    struct statfs fs;
    struct stat st;
    struct statx here, root;
    if (fd < 0 || fstatfs(fd, &fs) < 0 || fstat(fd, &st) < 0 ||
        statx(fd, "", AT_EMPTY_PATH, STATX_MNT_ID, &here) < 0 ||
        statx(s->root_fd, "", AT_EMPTY_PATH, STATX_MNT_ID, &root) < 0)
        return cb_error_make(err, errno, "open the sandbox's run dir");
    if (fs.f_type != TMPFS_MAGIC || st.st_uid != s->host_uid || here.stx_mnt_id == root.stx_mnt_id)
        return cb_error_fail(err, CB_ERR_STATE,
                             "the sandbox's run dir is not the tmpfs its init made");
    s->run_fd = cb_steal_fd(&fd);
    return 0;
}

int sbx_usage(const sbx_t *self, sbx_usage_t *out, cb_error_t *err)
{
    memset(out, 0, sizeof *out);
    if (self->cgroup)
        sbx_cgroup_usage(self->cgroup, out);
    sbx_tmp_usage(self, &out->tmp_bytes, &out->shm_bytes, &out->tmp_limit_bytes);
    return sbx_workspace_usage(self, &out->workspace_bytes, &out->workspace_limit_bytes, err);
}

/* ---------------------------------------------------------------------------------------------
 * The control socket.
 * ------------------------------------------------------------------------------------------- */

static int s_wait_readable(int fd, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int64_t deadline = timeout_ms < 0 ? -1 : cb_now_ms() + timeout_ms;
    for (;;) {
        int left = deadline < 0 ? -1 : (int)(deadline - cb_now_ms());
        if (deadline >= 0 && left < 0)
            left = 0;
        int n = poll(&p, 1, left);
        if (n > 0)
            return 1;
        if (n == 0)
            return 0;
        if (errno != EINTR)
            return -1;
    }
}

static void s_queue_event(sbx_t *s, const sbx_wire_reply_t *msg)
{
    sbx_event_t *e = cb_xcalloc(1, sizeof *e);
    e->msg = *msg;
    sbx_event_t **tail = &s->events;
    while (*tail)
        tail = &(*tail)->next;
    *tail = e;
}

/* Take the queued EXITED report for inside pid, if any. */
static bool s_take_event(sbx_t *s, pid_t pid, sbx_wire_reply_t *out)
{
    for (sbx_event_t **p = &s->events; *p; p = &(*p)->next) {
        if ((*p)->msg.pid != pid)
            continue;
        sbx_event_t *e = *p;
        *p = e->next;
        if (out)
            *out = e->msg;
        free(e);
        return true;
    }
    return false;
}

/* Read one message within timeout_ms. EXITED reports are queued and 1 is returned with nothing
 * in *msg ("look again"); any other reply fills *msg and its fd. Returns 1 for a queued report,
 * 2 for a reply, 0 on timeout, -1 on error or EOF (err says which). */
static int s_read_message(sbx_t *s, int timeout_ms, sbx_wire_reply_t *msg, int *fd, cb_error_t *err)
{
    int ready = s_wait_readable(s->ctl, timeout_ms);
    if (ready <= 0)
        return ready == 0 ? 0 : cb_error_make(err, errno, "wait for the sandbox init");
    char buf[sizeof(sbx_wire_reply_t)];
    int fds[1];
    ssize_t n = sbx_wire_recv(s->ctl, buf, sizeof buf, fds, 1);
    if (n == 0)
        return cb_error_fail(err, CB_ERR_STATE, "the sandbox's init has exited");
    if (n < 0)
        return cb_error_make(err, errno, "read from the sandbox init");
    sbx_wire_reply_t r;
    if ((size_t)n != sizeof r) {
        if (fds[0] >= 0)
            close(fds[0]);
        return cb_error_fail(err, CB_ERR_PROTOCOL, "the sandbox init sent a %zd-byte message", n);
    }
    memcpy(&r, buf, sizeof r);
    if (r.h.magic != SBX_WIRE_MAGIC) {
        if (fds[0] >= 0)
            close(fds[0]);
        return cb_error_fail(err, CB_ERR_PROTOCOL, "the sandbox init sent a message without magic");
    }
    if (r.h.type == SBX_MSG_EXITED) {
        if (fds[0] >= 0)
            close(fds[0]);
        s_queue_event(s, &r);
        return 1;
    }
    *msg = r;
    *fd = fds[0];
    return 2;
}

/* Wait for the next reply that is not an exit report. */
static int s_read_reply(sbx_t *s, int timeout_ms, sbx_wire_reply_t *msg, int *fd, cb_error_t *err)
{
    int64_t deadline = cb_now_ms() + timeout_ms;
    for (;;) {
        int left = (int)(deadline - cb_now_ms());
        int rc = s_read_message(s, left > 0 ? left : 0, msg, fd, err);
        if (rc == 2)
            return 0;
        if (rc == 0)
            return cb_error_fail(err, CB_ERR_TIMEOUT,
                                 "the sandbox init did not answer within %d ms", timeout_ms);
        if (rc < 0)
            return -1;
    }
}

/* ---------------------------------------------------------------------------------------------
 * Creating.
 * ------------------------------------------------------------------------------------------- */

/* The clone child. No allocation, no locks: only system calls until exec. */
static void __attribute__((noreturn)) s_clone_child(int ctl, int sync_fd, int init_fd, int devnull)
{
    char c;
    sbx_wire_reply_t r = {.h = {SBX_WIRE_MAGIC, SBX_MSG_FAILED}, .step = SBX_STEP_EXEC_INIT};
    char *const argv[] = {"cellblock-init", NULL};
    char *const envp[] = {NULL};

    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 || read(sync_fd, &c, 1) != 1)
        _exit(126);
    /* Become the namespace's uid 0 (the one host id the maps name). Raw system calls: glibc's
     * wrappers would try to synchronise threads this copy of the gateway does not have. */
    if (syscall(SYS_setresgid, 0, 0, 0) < 0 || syscall(SYS_setresuid, 0, 0, 0) < 0 ||
        dup2(devnull, 0) < 0 || dup2(devnull, 1) < 0 ||
        (ctl == SBX_INIT_FD ? fcntl(ctl, F_SETFD, 0) : dup2(ctl, SBX_INIT_FD)) < 0 ||
        syscall(SYS_close_range, SBX_INIT_FD + 1, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
        r.error = errno;
        sbx_wire_send(ctl, &r, sizeof r, NULL, 0);
        _exit(126);
    }
    syscall(SYS_execveat, init_fd, "", argv, envp, AT_EMPTY_PATH);
    r.error = errno;
    sbx_wire_send(SBX_INIT_FD, &r, sizeof r, NULL, 0);
    _exit(127);
}

static int s_write_proc(pid_t pid, const char *file, const char *text, cb_error_t *err)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, file);
    cleanup_close int fd = open(path, O_WRONLY | O_CLOEXEC);
    size_t len = strlen(text);
    if (fd < 0 || write(fd, text, len) != (ssize_t)len)
        return cb_error_make(err, errno, "write %s for the sandbox", file);
    return 0;
}

static int s_write_id_maps(const sbx_t *s, cb_error_t *err)
{
    char map[64];
    if (s_write_proc(s->init_pid, "setgroups", "deny", err) < 0)
        return -1;
    snprintf(map, sizeof map, "0 %u 1\n", (unsigned)s->host_uid);
    if (s_write_proc(s->init_pid, "uid_map", map, err) < 0)
        return -1;
    snprintf(map, sizeof map, "0 %u 1\n", (unsigned)s->host_gid);
    return s_write_proc(s->init_pid, "gid_map", map, err);
}

/* Append path and its NUL to buf at *len (buf holds size bytes). */
static int s_pack_path(char *buf, size_t size, size_t *len, const char *path, cb_error_t *err)
{
    size_t n = strlen(path) + 1;
    if (*len + n > size)
        return cb_error_fail(err, CB_ERR_INVALID, "path '%.80s' is too long", path);
    memcpy(buf + *len, path, n);
    *len += n;
    return 0;
}

/* A root gateway's sandboxes run as a host uid that may not search the directories above the
 * workspace, so it hands over a detached copy of its mount instead of a path.
 * An unprivileged gateway owns every directory on the way, and may not clone mounts: *tree is
 * then -1. */
static int s_clone_mount(const char *path, const char *what, int *tree, cb_error_t *err)
{
    *tree = geteuid() == 0 ? open_tree(AT_FDCWD, path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC) : -1;
    if (geteuid() == 0 && *tree < 0)
        return cb_error_make(err, errno, "clone the mount of the %s '%s'", what, path);
    return 0;
}

static int s_send_config(const sbx_t *s, cb_error_t *err)
{
    char buf[sizeof(sbx_wire_config_t) + 2 * PATH_MAX];
    sbx_wire_config_t cfg = {
        .h = {SBX_WIRE_MAGIC, SBX_MSG_CONFIG},
        .tmp_bytes = s->policy.tmp_bytes,
        .workspace_bytes = s->policy.workspace_bytes,
        .workspace_bind = s->workspace_dir != NULL,
        .nofile = s->policy.nofile,
        .fsize_bytes = s->policy.fsize_bytes,
        .nproc = s->layers.cgroup_pids ? 0 : s->policy.pids_max,
        .seccomp_mode = s->policy.no_seccomp    ? 2
                        : s->policy.seccomp_log ? 1
                                                : 0,
    };
    snprintf(cfg.hostname, sizeof cfg.hostname, "%s", s->hostname);
    cfg.libexec_bind = s->libexec_dir != NULL;
    cleanup_close int ws_tree = -1;
    cleanup_close int libexec_tree = -1;
    if (s->workspace_dir && s_clone_mount(s->workspace_dir, "workspace", &ws_tree, err) < 0)
        return -1;
    if (s->libexec_dir && s_clone_mount(s->libexec_dir, "libexec dir", &libexec_tree, err) < 0)
        return -1;
    int fds[2], nfds = 0;
    if (ws_tree >= 0) {
        cfg.fd_mask |= SBX_CONFIG_WORKSPACE_TREE;
        fds[nfds++] = ws_tree;
    }
    if (libexec_tree >= 0) {
        cfg.fd_mask |= SBX_CONFIG_LIBEXEC_TREE;
        fds[nfds++] = libexec_tree;
    }
    size_t len = sizeof cfg;
    memcpy(buf, &cfg, sizeof cfg);
    if (s->workspace_dir && s_pack_path(buf, sizeof buf, &len, s->workspace_dir, err) < 0)
        return -1;
    if (s->libexec_dir && s_pack_path(buf, sizeof buf, &len, s->libexec_dir, err) < 0)
        return -1;
    if (sbx_wire_send(s->ctl, buf, len, fds, nfds) < 0)
        return cb_error_make(err, errno, "send the sandbox its configuration");
    return 0;
}

static int s_wait_ready(sbx_t *s, cb_error_t *err)
{
    sbx_wire_reply_t r;
    int fd = -1;
    if (s_read_reply(s, s->policy.setup_timeout_ms, &r, &fd, err) < 0)
        return cb_error_prefix(err, "sandbox setup");
    if (r.h.type == SBX_MSG_FAILED) {
        errno = r.error;
        return cb_error_make(err, r.error, "sandbox setup failed at '%s'", sbx_step_name(r.step));
    }
    if (r.h.type != SBX_MSG_READY || fd < 0) {
        if (fd >= 0)
            close(fd);
        return cb_error_fail(err, CB_ERR_PROTOCOL, "sandbox setup: unexpected answer %u", r.h.type);
    }
    s->root_fd = fd;
    struct stat st;
    struct statx stx;
    if (fstatat(fd, "home/user", &st, AT_SYMLINK_NOFOLLOW) < 0 ||
        statx(fd, "home/user", AT_SYMLINK_NOFOLLOW, STATX_MNT_ID, &stx) < 0)
        return cb_error_make(err, errno, "stat the sandbox's workspace");
    if (!(stx.stx_mask & STATX_MNT_ID))
        return cb_error_fail(err, CB_ERR_STATE,
                             "this kernel does not report mount ids (statx "
                             "STATX_MNT_ID needs Linux 5.8)");
    s->workspace_dev = st.st_dev;
    s->workspace_mnt_id = stx.stx_mnt_id;
    return s_open_run_fd(s, err);
}

static int s_start_init(sbx_t *s, cb_error_t *err)
{
    cleanup_close int opened = open(s->init_path, O_RDONLY | O_CLOEXEC);
    /* Above the fds the child rearranges (0, 1, 3), so its dup2 calls cannot clobber it. */
    cleanup_close int init_fd = opened < 0 ? -1 : fcntl(opened, F_DUPFD_CLOEXEC, 10);
    if (init_fd < 0)
        return cb_error_make(err, errno, "open the sandbox init '%s'", s->init_path);
    cleanup_close int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    int sp[2], sync_pipe[2];
    if (devnull < 0 || socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0)
        return cb_error_make(err, errno, "sandbox control socket");
    if (pipe2(sync_pipe, O_CLOEXEC) < 0) {
        int e = errno;
        close(sp[0]);
        close(sp[1]);
        return cb_error_make(err, e, "sandbox sync pipe");
    }
    int pidfd = -1;
    struct clone_args args = {
        .flags = CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC |
                 CLONE_NEWUTS | CLONE_PIDFD,
        .pidfd = (uint64_t)(uintptr_t)&pidfd,
        .exit_signal = SIGCHLD,
    };
    pid_t pid = (pid_t)syscall(SYS_clone3, &args, sizeof args);
    if (pid == 0)
        s_clone_child(sp[1], sync_pipe[0], init_fd, devnull);
    int clone_errno = errno;
    close(sp[1]);
    close(sync_pipe[0]);
    s->ctl = sp[0];
    if (pid < 0) {
        close(sync_pipe[1]);
        return cb_error_make(err, clone_errno,
                             "create the sandbox's namespaces (user namespaces may be disabled: "
                             "see `cellblock doctor`)");
    }
    s->init_pid = pid;
    s->init_pidfd = pidfd;

    int rc = s_write_id_maps(s, err);
    if (rc == 0 && s->cgroup)
        rc = sbx_cgroup_add(s->cgroup, pid, err);
    if (rc == 0 && write(sync_pipe[1], "go", 1) != 1)
        rc = cb_error_make(err, errno, "release the sandbox init");
    close(sync_pipe[1]);
    if (rc == 0)
        rc = s_send_config(s, err);
    return rc < 0 ? -1 : s_wait_ready(s, err);
}

/* A persistent workspace must be an existing directory; from a root gateway it is handed to
 * the sandbox user's host ids, so that uid 1000 inside owns /home/user. Its contents were made
 * by that same user before, so nothing below it is touched. */
static int s_prepare_workspace(const sbx_t *s, cb_error_t *err)
{
    cleanup_close int fd = open(s->workspace_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 && (errno == ENOENT || errno == ENOTDIR))
        return cb_error_fail(err, errno == ENOENT ? CB_ERR_NOT_FOUND : CB_ERR_INVALID,
                             "workspace dir '%s': %s", s->workspace_dir,
                             errno == ENOENT ? "does not exist" : "not a directory");
    if (fd < 0)
        return cb_error_make(err, errno, "open the workspace dir '%s'", s->workspace_dir);
    if (geteuid() == 0 && fchownat(fd, "", s->host_uid, s->host_gid, AT_EMPTY_PATH) < 0)
        return cb_error_make(err, errno, "hand the workspace dir '%s' to the sandbox user",
                             s->workspace_dir);
    return 0;
}

/* The libexec dir to bind into *out (caller owns; NULL for none): the policy's ("" for none;
 * given, it must be a directory), or cellblock's own when it exists. Returns 0 or -1. */
static int s_libexec_dir(const sbx_policy_t *policy, char **out, cb_error_t *err)
{
    *out = NULL;
    const char *dir = policy->libexec_dir ? policy->libexec_dir : cb_path_libexecdir();
    if (!dir || !*dir)
        return 0;
    struct stat st;
    if (dir[0] == '/' && stat(dir, &st) == 0 && S_ISDIR(st.st_mode)) {
        *out = cb_xstrdup(dir);
        return 0;
    }
    if (policy->libexec_dir)
        return cb_error_fail(err, CB_ERR_INVALID,
                             "the libexec dir '%s' is not an absolute path to a directory", dir);
    cb_debug("sandbox: no libexec dir at '%s': nothing at " SBX_INSIDE_LIBEXEC, dir);
    return 0;
}

sbx_t *sbx_new(const sbx_policy_t *policy, cb_error_t *err)
{
    if (!policy || !policy->run_dir || policy->run_dir[0] != '/') {
        cb_error_fail(err, CB_ERR_INVALID, "a sandbox needs an absolute run dir");
        return NULL;
    }
    if (policy->workspace_dir && policy->workspace_dir[0] != '/') {
        cb_error_fail(err, CB_ERR_INVALID, "a workspace dir must be an absolute path");
        return NULL;
    }
    sbx_t *s = cb_xcalloc(1, sizeof *s);
    s->policy = *policy;
    s->ctl = s->root_fd = s->run_fd = s->init_pidfd = s->run_dir_lock = -1;
    s->run_dir = cb_xstrdup(policy->run_dir);
    s->workspace_dir = cb_xstrdup_or_null(policy->workspace_dir);
    if (s_libexec_dir(policy, &s->libexec_dir, err) < 0) {
        free(s->workspace_dir);
        free(s->run_dir);
        free(s);
        return NULL;
    }
    s->init_path = cb_xstrdup(policy->init_path ? policy->init_path : sbx_default_init_path());
    s->policy.run_dir = s->run_dir;
    s->policy.workspace_dir = s->workspace_dir;
    s->policy.libexec_dir = s->libexec_dir ? s->libexec_dir : "";
    s->policy.init_path = s->init_path;
    s->policy.hostname = s->hostname;
    sbx_policy_t *p = &s->policy;
    if (!p->tmp_bytes)
        p->tmp_bytes = 256 * MiB;
    /* Files in /tmp and /dev/shm are memory charged to no process: were one of them to fill the
     * whole limit, killing every process would free nothing, and the OOM killer would end with
     * the init (and the sandbox). Each holds at most the limit less a reserve. */
    uint64_t reserve =
        p->memory_bytes / 8 > SBX_MEMORY_RESERVE ? p->memory_bytes / 8 : SBX_MEMORY_RESERVE;
    if (p->memory_bytes > reserve && p->tmp_bytes > p->memory_bytes - reserve)
        p->tmp_bytes = p->memory_bytes - reserve;
    if (!p->workspace_bytes)
        p->workspace_bytes = 1024 * MiB;
    if (!p->nofile)
        p->nofile = 4096;
    if (!p->fsize_bytes) /* a backstop above both tmpfs sizes, so a full one says ENOSPC */
        p->fsize_bytes =
            2 * (p->workspace_bytes > p->tmp_bytes ? p->workspace_bytes : p->tmp_bytes);
    if (!p->setup_timeout_ms)
        p->setup_timeout_ms = 10000;
    bool root = geteuid() == 0;
    s->host_uid = root ? SBX_ROOT_HOST_ID : geteuid();
    s->host_gid = root ? SBX_ROOT_HOST_ID : getegid();
    s->layers.userns = true;
    s->layers.seccomp = !p->no_seccomp;
    s->layers.seccomp_log = p->seccomp_log;

    int rc = 0;
    if (s->workspace_dir)
        rc = s_prepare_workspace(s, err);
    if (rc == 0) {
        s->run_dir_lock = cb_dir_create_locked(s->run_dir, 0700, err);
        rc = s->run_dir_lock < 0 ? cb_error_prefix(err, "the sandbox run dir: ") : 0;
    }
    if (rc == 0) {
        s->cgroup = sbx_cgroup_new(p, &s->layers, err);
        rc = s->cgroup ? 0 : -1;
    }
    if (rc == 0) {
        snprintf(s->hostname, sizeof s->hostname, "%s",
                 policy->hostname ? policy->hostname : "sandbox");
        rc = s_start_init(s, err);
    }
    if (rc < 0) {
        if (s->run_dir_lock < 0) {
            free(s->run_dir);
            s->run_dir = NULL; /* not ours to remove */
        }
        sbx_destroy(&s);
        return NULL;
    }
    return s;
}

void sbx_destroy(sbx_t **self_p)
{
    sbx_t *s = self_p ? *self_p : NULL;
    if (!s)
        return;
    *self_p = NULL;
    if (s->live_procs)
        cb_warn("sandbox destroyed with %d processes still held", s->live_procs);
    if (s->init_pidfd >= 0) {
        syscall(SYS_pidfd_send_signal, s->init_pidfd, SIGKILL, NULL, 0);
        siginfo_t info;
        while (waitid(P_PIDFD, (id_t)s->init_pidfd, &info, WEXITED) < 0 && errno == EINTR) {
        }
        close(s->init_pidfd);
    }
    if (s->ctl >= 0)
        close(s->ctl);
    if (s->run_fd >= 0) /* /run/cellblock went with the sandbox's mount namespace */
        close(s->run_fd);
    if (s->root_fd >= 0)
        close(s->root_fd);
    sbx_cgroup_destroy(&s->cgroup);
    cb_error_t err = {0};
    if (s->run_dir && cb_rm_rf(s->run_dir, &err) < 0) /* fd-based: never follows a link */
        cb_warn("remove sandbox run dir: %s", err.msg);
    if (s->run_dir_lock >= 0) /* only now: a sweep may take the dir once the lock is free */
        close(s->run_dir_lock);
    while (s->events)
        s_take_event(s, s->events->msg.pid, NULL);
    free(s->run_dir);
    free(s->workspace_dir);
    free(s->libexec_dir);
    free(s->init_path);
    free(s);
}

/* ---------------------------------------------------------------------------------------------
 * Processes.
 * ------------------------------------------------------------------------------------------- */

/* The pid a pidfd refers to, in our pid namespace, from /proc/self/fdinfo. */
static pid_t s_pidfd_pid(int pidfd)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/self/fdinfo/%d", pidfd);
    cleanup_fclose FILE *f = fopen(path, "re");
    while (f && fgets(line, sizeof line, f)) {
        int pid;
        if (sscanf(line, "Pid: %d", &pid) == 1)
            return pid;
    }
    return -1;
}

/* Pack argv, env and cwd after the header. Returns the length, or -1 when it does not fit. */
static ssize_t s_pack_spawn(char *buf, size_t size, sbx_wire_spawn_t *hdr,
                            const sbx_spawn_opts_t *o)
{
    size_t len = sizeof *hdr;
    const char *const *lists[2] = {o->argv, o->env};
    uint32_t counts[2] = {0, 0};
    for (int l = 0; l < 2; l++) {
        for (const char *const *p = lists[l]; p && *p; p++, counts[l]++) {
            size_t n = strlen(*p) + 1;
            if (len + n > size)
                return -1;
            memcpy(buf + len, *p, n);
            len += n;
        }
    }
    const char *cwd = o->cwd ? o->cwd : "";
    size_t n = strlen(cwd) + 1;
    if (len + n > size)
        return -1;
    memcpy(buf + len, cwd, n);
    len += n;
    hdr->argc = counts[0];
    hdr->envc = counts[1];
    memcpy(buf, hdr, sizeof *hdr);
    return (ssize_t)len;
}

sbx_proc_t *sbx_spawn(sbx_t *self, const sbx_spawn_opts_t *opts, cb_error_t *err)
{
    if (!opts->argv || !opts->argv[0] || !opts->argv[0][0]) {
        cb_error_fail(err, CB_ERR_INVALID, "nothing to run: empty argv");
        return NULL;
    }
    cleanup_free char *buf = cb_xmalloc(SBX_WIRE_MAX);
    sbx_wire_spawn_t hdr = {.h = {SBX_WIRE_MAGIC, SBX_MSG_SPAWN},
                            .id = ++self->next_spawn_id,
                            .flags = opts->controlling_tty ? SBX_SPAWN_TTY : 0};
    int fds[3], nfds = 0;
    const int stdio[3] = {opts->stdin_fd, opts->stdout_fd, opts->stderr_fd};
    for (int i = 0; i < 3; i++) {
        if (stdio[i] >= 0) {
            hdr.fd_mask |= 1u << i;
            fds[nfds++] = stdio[i];
        }
    }
    ssize_t len = s_pack_spawn(buf, SBX_WIRE_MAX, &hdr, opts);
    if (len < 0) {
        cb_error_fail(err, CB_ERR_LIMIT,
                      "command, environment and working directory exceed %d bytes", SBX_WIRE_MAX);
        return NULL;
    }
    if (sbx_wire_send(self->ctl, buf, (size_t)len, fds, nfds) < 0) {
        cb_error_make(err, errno, "ask the sandbox to start '%s'", opts->argv[0]);
        return NULL;
    }
    sbx_wire_reply_t r;
    int pidfd = -1;
    if (s_read_reply(self, self->policy.setup_timeout_ms, &r, &pidfd, err) < 0)
        return NULL;
    if (r.h.type != SBX_MSG_SPAWNED || r.id != hdr.id) {
        if (pidfd >= 0)
            close(pidfd);
        cb_error_fail(err, CB_ERR_PROTOCOL, "the sandbox init answered out of turn");
        return NULL;
    }
    if (r.step != SBX_STEP_NONE) {
        cb_error_make(err, r.error, "start '%s' in the sandbox: %s", opts->argv[0],
                      sbx_step_name(r.step));
        if (r.step == SBX_STEP_EXEC && r.error == ENOENT)
            err->kind = CB_ERR_NOT_FOUND;
        return NULL;
    }
    if (pidfd < 0) {
        cb_error_make(err, EPROTO, "start '%s' in the sandbox", opts->argv[0]);
        return NULL;
    }
    sbx_proc_t *p = cb_xcalloc(1, sizeof *p);
    /* A report still queued for this inside pid belongs to an earlier process that was never
     * waited for: pids are only reused after the init has reaped (and reported) the old one. */
    s_take_event(self, r.pid, NULL);
    p->sbx = self;
    p->pidfd = pidfd;
    p->inside_pid = r.pid;
    p->pid = s_pidfd_pid(pidfd);
    p->oom_kills_at_start = self->cgroup ? sbx_cgroup_oom_kills(self->cgroup) : 0;
    self->live_procs++;
    return p;
}

/* Ask the init to make one thing (SBX_MSG_OPEN) and return its fd. */
static int s_open_inside(sbx_t *self, sbx_open_what_t what, const char *name, cb_error_t *err)
{
    sbx_wire_open_t req = {
        .h = {SBX_WIRE_MAGIC, SBX_MSG_OPEN}, .id = ++self->next_spawn_id, .what = what};
    if (sbx_wire_send(self->ctl, &req, sizeof req, NULL, 0) < 0)
        return cb_error_make(err, errno, "ask the sandbox for %s", name);
    sbx_wire_reply_t r;
    int fd = -1;
    if (s_read_reply(self, self->policy.setup_timeout_ms, &r, &fd, err) < 0)
        return -1;
    if (r.h.type != SBX_MSG_OPENED || r.id != req.id || (r.error == 0) != (fd >= 0)) {
        if (fd >= 0)
            close(fd);
        return cb_error_fail(err, CB_ERR_PROTOCOL, "the sandbox init answered out of turn");
    }
    if (r.error)
        return cb_error_make(err, r.error, "make %s in the sandbox", name);
    return fd;
}

int sbx_socket(sbx_t *self, int domain, cb_error_t *err)
{
    if (domain != AF_INET && domain != AF_INET6)
        return cb_error_fail(err, CB_ERR_INVALID, "a sandbox socket is AF_INET or AF_INET6");
    return s_open_inside(self, domain == AF_INET ? SBX_OPEN_TCP4 : SBX_OPEN_TCP6, "a TCP socket",
                         err);
}

int sbx_pty(sbx_t *self, int *peer_fd, cb_error_t *err)
{
    *peer_fd = -1;
    int master = s_open_inside(self, SBX_OPEN_PTY, "a terminal", err);
    if (master < 0)
        return -1;
    int unlock = 0;
    int peer = -1;
    if (ioctl(master, TIOCSPTLCK, &unlock) < 0 ||
        (peer = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC)) < 0 ||
        fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK) < 0) {
        cb_error_make(err, errno, "open the terminal's peer");
        close(master);
        if (peer >= 0)
            close(peer);
        return -1;
    }
    *peer_fd = peer;
    return master;
}

int sbx_proc_pidfd(const sbx_proc_t *self) { return self->pidfd; }
pid_t sbx_proc_pid(const sbx_proc_t *self) { return self->pid; }
pid_t sbx_proc_inside_pid(const sbx_proc_t *self) { return self->inside_pid; }

int sbx_proc_signal(sbx_proc_t *self, int sig, bool group, cb_error_t *err)
{
    if (self->reaped)
        return cb_error_fail(err, CB_ERR_STATE, "the process has already exited");
    int rc = group && self->pid > 0
                 ? kill(-self->pid, sig)
                 : (int)syscall(SYS_pidfd_send_signal, self->pidfd, sig, NULL, 0);
    if (rc < 0 && errno != ESRCH)
        return cb_error_make(err, errno, "signal %d to sandbox process %d", sig, (int)self->pid);
    return 0;
}

static void s_record_exit(sbx_proc_t *p, const sbx_wire_reply_t *r)
{
    p->reaped = true;
    p->exit.exited = r->code == CLD_EXITED;
    p->exit.code = p->exit.exited ? r->status : 0;
    p->exit.signal = p->exit.exited ? 0 : r->status;
    p->exit.oom = p->exit.signal == SIGKILL && p->sbx->cgroup &&
                  sbx_cgroup_oom_kills(p->sbx->cgroup) > p->oom_kills_at_start;
}

int sbx_proc_wait(sbx_proc_t *self, sbx_exit_t *out, int timeout_ms, cb_error_t *err)
{
    int64_t deadline = timeout_ms < 0 ? -1 : cb_now_ms() + timeout_ms;
    while (!self->reaped) {
        sbx_wire_reply_t r;
        if (s_take_event(self->sbx, self->inside_pid, &r)) {
            s_record_exit(self, &r);
            break;
        }
        int left = deadline < 0 ? -1 : (int)(deadline - cb_now_ms());
        if (deadline >= 0 && left <= 0)
            return cb_error_fail(err, CB_ERR_TIMEOUT, "process %d is still running",
                                 (int)self->pid);
        int fd = -1;
        int rc = s_read_message(self->sbx, left, &r, &fd, err);
        if (fd >= 0)
            close(fd);
        if (rc == 0)
            continue; /* deadline check above */
        if (rc == 2)
            return cb_error_fail(err, CB_ERR_PROTOCOL, "the sandbox init answered out of turn");
        if (rc < 0) {
            /* The init is gone, and with it the whole pid namespace. */
            r = (sbx_wire_reply_t){.code = CLD_KILLED, .status = SIGKILL};
            s_record_exit(self, &r);
        }
    }
    if (out)
        *out = self->exit;
    return 0;
}

char *sbx_exit_describe(const sbx_exit_t *ex)
{
    if (ex->exited)
        return cb_strdup_printf("exit code %d", ex->code);
    return cb_strdup_printf("killed by SIG%s%s",
                            sigabbrev_np(ex->signal) ? sigabbrev_np(ex->signal) : "?",
                            ex->oom ? " (out of memory)" : "");
}

void sbx_proc_destroy(sbx_proc_t **self_p)
{
    sbx_proc_t *p = self_p ? *self_p : NULL;
    if (!p)
        return;
    *self_p = NULL;
    if (!p->reaped) {
        if (p->pid > 0)
            kill(-p->pid, SIGKILL);
        syscall(SYS_pidfd_send_signal, p->pidfd, SIGKILL, NULL, 0);
        cb_error_t err = {0};
        if (sbx_proc_wait(p, NULL, 5000, &err) < 0)
            cb_warn("sandbox process %d: %s", (int)p->pid, err.msg);
    }
    close(p->pidfd);
    p->sbx->live_procs--;
    free(p);
}

/* ---------------------------------------------------------------------------------------------
 * What this host allows.
 * ------------------------------------------------------------------------------------------- */

void sbx_layers_probe(sbx_layers_t *out)
{
    memset(out, 0, sizeof *out);

    /* User namespaces: try one in a throwaway child (the unshare would change us otherwise). */
    pid_t pid = fork();
    if (pid == 0)
        _exit(unshare(CLONE_NEWUSER) == 0 ? 0 : (errno & 0x7f));
    int status = 0;
    if (pid > 0)
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
    out->userns = pid > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (!out->userns) {
        int e = pid < 0 ? errno : WIFEXITED(status) ? WEXITSTATUS(status) : EINTR;
        char max[32] = "";
        cleanup_fclose FILE *f = fopen("/proc/sys/user/max_user_namespaces", "re");
        bool zero = f && fgets(max, sizeof max, f) && strtol(max, NULL, 10) == 0;
        snprintf(out->userns_why, sizeof out->userns_why, "%s%s", strerror(e),
                 zero ? " (user.max_user_namespaces is 0)" : "");
    }

    /* cgroups: create and remove one, exactly as a sandbox would. */
    sbx_policy_t probe = {.memory_bytes = 64 * MiB, .pids_max = 64, .cpu_millis = 1000};
    cb_error_t err = {0};
    sbx_cgroup_t *cg = sbx_cgroup_new(&probe, out, &err);
    if (!cg)
        snprintf(out->cgroup_why, sizeof out->cgroup_why, "%.255s", err.msg);
    sbx_cgroup_destroy(&cg);

    /* seccomp: PR_GET_SECCOMP answers when the kernel has it; the log action is listed. */
    out->seccomp = prctl(PR_GET_SECCOMP, 0, 0, 0, 0) >= 0;
    if (!out->seccomp)
        snprintf(out->seccomp_why, sizeof out->seccomp_why, "%s", strerror(errno));
    /* A proc file reports size 0, so read it with stdio. */
    char actions[256] = "";
    cleanup_fclose FILE *f = fopen("/proc/sys/kernel/seccomp/actions_avail", "re");
    out->seccomp_log = f && fgets(actions, sizeof actions, f) && strstr(actions, " log") != NULL;
}
