/* sbx/sbx.h: sandboxes, cellblock's isolation layer.
 *
 * A sandbox is a process tree in fresh user, pid, mount, net, ipc, uts and cgroup namespaces.
 * Its PID 1 is our own init (cellblock-init): it builds the filesystem (a tmpfs root, read-only
 * binds of /usr and the lib/bin links, a minimal /etc, fresh /proc with the dangerous entries
 * masked, a minimal /dev, size-limited /tmp, a workspace), brings up lo, moves into an inner
 * user namespace where the sandbox user is uid 1000 with no capabilities, loads the seccomp
 * filter, and then spawns processes on request over an inherited socket and reaps everything.
 *
 * This module enforces a policy; it does not decide one. It depends on no JSON or ZMQ library.
 * The gateway (kernel-gateway/) decides the numbers and calls in here.
 *
 * Paths seen inside a sandbox:
 *   /home/user       the workspace, the default working dir: a tmpfs of policy.workspace_bytes,
 *                    or a bind of the host's policy.workspace_dir (a persistent workspace)
 *   /tmp, /dev/shm   tmpfs of policy.tmp_bytes each
 *   /run/cellblock   a tmpfs of its own (SBX_RUN_DIR_BYTES, SBX_RUN_DIR_INODES), owned by the
 *                    sandbox user: kernel connection files and ipc sockets. No host path is bound
 *                    there; the gateway reaches it only through sbx_run_fd
 *
 * Ownership follows the fixed phrases: "Caller owns return value", "Takes ownership",
 * "Borrowed; valid until ...".
 */
#ifndef SBX_SBX_H
#define SBX_SBX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cb/error.h"
#include "cb/util.h"

typedef struct sbx sbx_t;
typedef struct sbx_proc sbx_proc_t;

#define SBX_INSIDE_RUN_DIR "/run/cellblock"
#define SBX_INSIDE_WORKSPACE "/home/user"
/* cellblock's libexec directory (the init, the language kernels and their drivers), bound
 * read-only, so a kernelspec can name "{cellblock_libexec}/cellblock-kernel" inside. */
#define SBX_INSIDE_LIBEXEC "/opt/cellblock"
/* The run dir's tmpfs: room for the connection files and sockets of many kernels (a kernel
 * needs a directory, a connection file and five sockets: 7 inodes and a few KiB), and a cap on
 * what code inside can put there, which fills this tmpfs, never the host's disk. */
#define SBX_RUN_DIR_BYTES (1024u * 1024u)
#define SBX_RUN_DIR_INODES 1024u
#define SBX_INSIDE_UID 1000
#define SBX_INSIDE_GID 1000

/* ---------------------------------------------------------------------------------------------
 * Layers: what this host lets us enforce. A layer that cannot be had is reported once, with the
 * reason, never skipped silently.
 * ------------------------------------------------------------------------------------------- */

typedef enum { SBX_CGROUP_NONE = 0, SBX_CGROUP_V1, SBX_CGROUP_V2 } sbx_cgroup_version_t;

typedef struct {
    bool userns;                 /* user namespaces can be created */
    char userns_why[160];        /* why not, when not */
    sbx_cgroup_version_t cgroup; /* the hierarchy limits go into */
    bool cgroup_memory, cgroup_pids, cgroup_cpu;
    char cgroup_why[256]; /* why a controller is missing, when one is */
    bool seccomp;         /* the kernel filters syscalls */
    bool seccomp_log;     /* the kernel has the log action (for discovery mode) */
    char seccomp_why[160];
} sbx_layers_t;

/* Probe the host. Cheap (reads /proc and /sys, creates and removes one cgroup directory). */
void sbx_layers_probe(sbx_layers_t *out);

/* Clean up after gateways that were killed (SIGKILL) before they could destroy their sandboxes.
 * Their sandboxes' processes die with them; what stays behind is removed here:
 *   - every mount point below runtime_dir in our mount namespace is detached (umount2 MNT_DETACH);
 *   - run dirs "<runtime_dir>/s-*" whose lock is free (sbx_new holds an flock on each run dir for
 *     the sandbox's life, so a free lock means its owner is gone; cb_sweep_unlocked_dirs);
 *   - the stale cgroups, as sbx_cgroup_sweep_stale.
 * Each kind removed is logged (cb_info) with a count. Live sandboxes, of this process or of any
 * other gateway, are left alone. Call once at start, before creating sandboxes. */
void sbx_sweep_stale(const char *runtime_dir);

/* The cgroup part of sbx_sweep_stale: cgroups "cellblock-<pid>-..." under our own whose gateway
 * pid is gone. A gateway killed a moment ago may still have sandbox processes dying in them, so
 * what each one's cgroup.procs lists is killed (only processes of sandboxes a gateway in our own
 * pid namespace made) and the removal is retried, for at most 2 s over all of them. */
void sbx_cgroup_sweep_stale(void);

/* ---------------------------------------------------------------------------------------------
 * Sandboxes.
 * ------------------------------------------------------------------------------------------- */

typedef struct {
    const char *run_dir;       /* host directory to create (mode 0700, the gateway's own, never
                                  seen inside: see sbx_host_dir_fd); removed by sbx_destroy.
                                  Required; must not exist yet. The sandbox holds an flock on it
                                  for its whole life (see cb_dir_create_locked), which is how
                                  sbx_sweep_stale tells a killed gateway's run dir from a live
                                  one. */
    const char *hostname;      /* NULL: "sandbox" */
    uint64_t memory_bytes;     /* cgroup memory limit, swap off; 0: no limit */
    uint64_t pids_max;         /* cgroup pids limit; 0: no limit */
    uint32_t cpu_millis;       /* CPU quota in thousandths of a core; 0: no limit */
    uint64_t tmp_bytes;        /* size of /tmp and of /dev/shm; 0: 256 MiB */
    uint64_t workspace_bytes;  /* size of /home/user; 0: 1 GiB. For a persistent workspace this is
                                  what sbx_usage reports as the limit: its size is measured, not
                                  enforced by the filesystem (RLIMIT_FSIZE, from fsize_bytes,
                                  still caps each single file) */
    const char *workspace_dir; /* NULL: /home/user is a fresh tmpfs, gone with the sandbox.
                                  Else an existing host directory bound read-write (nosuid,
                                  nodev) at /home/user, a persistent workspace: it outlives the
                                  sandbox and a later sandbox may use it again. When the gateway
                                  is root the directory itself is handed to the sandbox user's
                                  host ids (its contents are not touched); unprivileged, it
                                  should be the gateway user's own. Nothing here stops two live
                                  sandboxes from sharing one directory; the caller does. */
    uint64_t nofile;           /* RLIMIT_NOFILE; 0: 4096 */
    uint64_t fsize_bytes;      /* RLIMIT_FSIZE; 0: twice the larger of /tmp and the workspace */
    bool seccomp_log;          /* discovery mode: log syscalls outside the allowlist instead of
                                  denying them (the forbidden classes stay denied) */
    bool no_seccomp;           /* run without the filter (tests and diagnosis only) */
    const char *init_path;     /* NULL: sbx_default_init_path() */
    const char *libexec_dir;   /* host directory bound read-only (nosuid, nodev) at
                                  SBX_INSIDE_LIBEXEC. NULL: cellblock's libexec directory
                                  (cb_path_libexecdir, cb/paths.h), when it exists (else none,
                                  said in the debug log); "" for none. Given, it must exist.
                                  Host-owned: nothing inside can write it. */
    int setup_timeout_ms;      /* 0: 10000 */
} sbx_policy_t;

/* The init binary: $CELLBLOCK_INIT, else <prefix>/libexec/cellblock/cellblock-init beside the
 * running binary (cb_path_init, cb/paths.h). Borrowed; static. */
const char *sbx_default_init_path(void);

/* Create a sandbox and wait until its init has finished building it. Errors name the setup step
 * that failed and its errno. Caller owns return value. */
sbx_t *sbx_new(const sbx_policy_t *policy, cb_error_t *err);

/* Kill every process of the sandbox, wait for them, remove its cgroups and its host run dir
 * (cb_rm_tree_at). /run/cellblock inside goes with the sandbox's mount namespace. Accepts NULL;
 * nulls the caller's pointer. Processes from sbx_spawn must be destroyed first. */
void sbx_destroy(sbx_t **self_p);

/* Host pid of the sandbox's init (PID 1 inside). */
pid_t sbx_init_pid(const sbx_t *self);

/* A pidfd of the sandbox's init: readable (POLLIN) once the init has exited, which means the
 * whole sandbox is dead (every process in it is killed with it). Borrowed; valid with the
 * sandbox. */
int sbx_init_pidfd(const sbx_t *self);

/* The layers this sandbox actually got. Borrowed; valid with the sandbox. */
const sbx_layers_t *sbx_layers(const sbx_t *self);

/* Host path of the host run dir (policy.run_dir). Borrowed; valid with the sandbox. */
const char *sbx_run_dir(const sbx_t *self);

/* The host run dir as an O_RDONLY | O_DIRECTORY fd: the gateway's private directory for this
 * sandbox (mode 0700, owned by the gateway, not mounted inside), where it keeps what code inside
 * must not touch (attach files). Borrowed; valid with the sandbox. */
int sbx_host_dir_fd(const sbx_t *self);

/* ---------------------------------------------------------------------------------------------
 * /run/cellblock from the host. Code inside writes there, so it is the attacker's ground: the
 * gateway touches it only through this fd and fds below it, with cb_openat_beneath's rules (no
 * symlink, no magic link, nothing outside, O_NONBLOCK or O_PATH), and never by a path.
 * ------------------------------------------------------------------------------------------- */

/* An O_PATH | O_DIRECTORY fd of the sandbox's /run/cellblock, opened beneath its root with no
 * symlinks, and checked to be a tmpfs owned by the sandbox user. Borrowed; valid with the
 * sandbox. */
int sbx_run_fd(const sbx_t *self);

/* The host uid that owns what the sandbox user creates (the owner sockets must have). */
uid_t sbx_host_uid(const sbx_t *self);

/* Make the directory name (one component) in /run/cellblock as the sandbox user (mode 0700) and
 * open it (O_RDONLY | O_DIRECTORY, beneath, no links). EEXIST when the name is taken (code inside
 * may take any name). Caller owns return value. */
int sbx_run_mkdir(const sbx_t *self, const char *name, cb_error_t *err);

/* Put a new file name (mode 0600) holding data under dirfd, a directory below /run/cellblock, as
 * the sandbox user, so the kernel can read it: whatever had that name is unlinked first, and the
 * file is created O_EXCL | O_NOFOLLOW | O_NONBLOCK (cb_write_new_at). */
int sbx_run_write(const sbx_t *self, int dirfd, const char *name, const void *data, size_t len,
                  cb_error_t *err);

/* Resource figures read from the sandbox's cgroups (0 where a controller is missing) and from
 * its workspace. A tmpfs workspace reports its filesystem's figures. A persistent workspace's
 * size is measured, not enforced: workspace_bytes adds up the allocated bytes (st_blocks) of
 * everything under it, walked without following symlinks and stopping after 200000 entries or
 * 128 levels (then it is what was counted; a hard-linked file counts once per link), and
 * workspace_limit_bytes is policy.workspace_bytes. */
typedef struct {
    uint64_t memory_bytes;      /* current usage */
    uint64_t memory_peak_bytes; /* high-water mark (v1 max_usage, v2 memory.peak when present) */
    uint64_t memory_limit_bytes;
    uint64_t pids;
    uint64_t cpu_usage_us; /* total CPU time of every process in the sandbox */
    uint64_t oom_kills;
    uint64_t workspace_bytes;       /* used in the workspace (/home/user) */
    uint64_t workspace_limit_bytes; /* its size (persistent: policy.workspace_bytes) */
    uint64_t tmp_bytes;             /* used in /tmp, a tmpfs whose pages count as the sandbox's
                                       memory (its cgroup is charged for them) */
    uint64_t shm_bytes;             /* used in /dev/shm, likewise */
    uint64_t tmp_limit_bytes;       /* the size of each of /tmp and /dev/shm */
} sbx_usage_t;

int sbx_usage(const sbx_t *self, sbx_usage_t *out, cb_error_t *err);

/* ---------------------------------------------------------------------------------------------
 * Processes inside a sandbox. Each runs as the sandbox user in its own session and process
 * group, with the sandbox's rlimits, no capabilities, no_new_privs and the seccomp filter.
 * ------------------------------------------------------------------------------------------- */

typedef struct {
    const char *const *argv; /* argv[0] is a path inside the sandbox, or a name found through
                                 PATH from env */
    const char *const *env;  /* the whole environment, "KEY=VALUE", NULL-terminated; nothing is
                                 inherited from the host */
    const char *cwd;         /* inside path; NULL: /home/user */
    int stdin_fd, stdout_fd, stderr_fd; /* host fds handed to the process; -1: /dev/null */
    bool controlling_tty; /* stdin_fd is a terminal (sbx_pty's peer): it becomes the process's
                             controlling terminal, the process its foreground group */
} sbx_spawn_opts_t;

/* Start a process. Returns once it has exec'd (an exec failure is an error here, naming the
 * step and errno). Caller owns return value. */
sbx_proc_t *sbx_spawn(sbx_t *self, const sbx_spawn_opts_t *opts, cb_error_t *err);

/* A TCP socket (SOCK_STREAM, non-blocking, close-on-exec) of domain AF_INET or AF_INET6 in the
 * sandbox's network namespace, made by its init: bound or connected from the host side it
 * reaches only the sandbox's own loopback, which is how the gateway serves a proxy inside and
 * forwards ports in without giving the sandbox any route. Caller owns the returned fd; -1 with
 * err on failure. A short exchange with the init, like sbx_spawn. */
int sbx_socket(sbx_t *self, int domain, cb_error_t *err);

/* A pseudo-terminal of the sandbox's own devpts: returns its master (non-blocking,
 * close-on-exec, unlocked) and its peer in *peer_fd (blocking, close-on-exec, O_NOCTTY), to hand
 * to sbx_spawn with controlling_tty. Caller owns both fds; -1 with err on failure. */
int sbx_pty(sbx_t *self, int *peer_fd, cb_error_t *err);

/* Readable (POLLIN) when the process has exited. Borrowed; valid with the process. */
int sbx_proc_pidfd(const sbx_proc_t *self);

/* Host pid of the process, which is also its process group id. -1 when the process ended
 * before the gateway could read it from its pidfd. */
pid_t sbx_proc_pid(const sbx_proc_t *self);

/* Its pid inside the sandbox (also its process group id there), as the init reported it at
 * spawn: known even when the process ended at once. */
pid_t sbx_proc_inside_pid(const sbx_proc_t *self);

/* Send sig to the process, or to its whole process group. */
int sbx_proc_signal(sbx_proc_t *self, int sig, bool group, cb_error_t *err);

typedef struct {
    bool exited; /* true: code is the exit status; false: signal killed it */
    int code;
    int signal;
    bool oom; /* killed by SIGKILL while the sandbox's OOM-kill count went up */
} sbx_exit_t;

/* Wait up to timeout_ms (< 0: forever) for the process to end and report how. Call it when the
 * pidfd is readable and it returns at once. Returns -1 with CB_ERR_TIMEOUT when still running. */
int sbx_proc_wait(sbx_proc_t *self, sbx_exit_t *out, int timeout_ms, cb_error_t *err);

/* "exit code 3", "killed by SIGKILL (out of memory)", ... Caller owns return value. */
char *sbx_exit_describe(const sbx_exit_t *ex);

/* Kill the process group if still running, reap, free. Accepts NULL; nulls the pointer. */
void sbx_proc_destroy(sbx_proc_t **self_p);

/* ---------------------------------------------------------------------------------------------
 * Workspace files, done from the host. Paths are inside paths: "/home/user/a.txt" or relative
 * to /home/user ("a.txt"). They are resolved as the sandbox would resolve them
 * (openat2 RESOLVE_IN_ROOT on the sandbox's root, no magic links), and whatever they resolve to
 * must lie in the workspace (its filesystem and its mount): a symlink to /etc/passwd is refused,
 * and so is one to /usr/... when a persistent workspace shares /usr's filesystem; no host file
 * outside the workspace is touched. What the gateway creates belongs to the sandbox user.
 * ------------------------------------------------------------------------------------------- */

typedef enum {
    SBX_FILE_REGULAR = 0,
    SBX_FILE_DIR,
    SBX_FILE_SYMLINK,
    SBX_FILE_OTHER
} sbx_file_type_t;

typedef struct {
    char *name;
    sbx_file_type_t type;
    uint64_t size;
    int64_t mtime_ms;
    uint32_t mode; /* st_mode: the type and permission bits */
    bool owned;    /* owned by the sandbox user (else by someone it cannot be: root, say) */
    char *link;    /* a symlink's target as stored in it (not followed); NULL for the rest */
} sbx_dirent_t;

/* Read a whole regular file; more than max_bytes is an error (CB_ERR_LIMIT). */
int sbx_file_read(sbx_t *self, const char *path, size_t max_bytes, cb_buf_t *out, cb_error_t *err);

/* Read at most max_bytes of a regular file from offset (past the end: nothing); *size is the
 * file's size. */
int sbx_file_read_range(sbx_t *self, const char *path, uint64_t offset, size_t max_bytes,
                        cb_buf_t *out, uint64_t *size, cb_error_t *err);

/* Create or replace a regular file (parents must exist unless make_parents). */
int sbx_file_write(sbx_t *self, const char *path, const void *data, size_t len, bool make_parents,
                   cb_error_t *err);

/* The entries of a directory, sorted by name; *count set. Caller owns return value
 * (sbx_dirents_free). */
sbx_dirent_t *sbx_file_list(sbx_t *self, const char *path, size_t *count, cb_error_t *err);
void sbx_dirents_free(sbx_dirent_t *list, size_t count);

/* Remove a file, or a directory (with its contents when recursive). The workspace itself cannot
 * be removed. */
int sbx_file_remove(sbx_t *self, const char *path, bool recursive, cb_error_t *err);

/* Make a directory (and its parents when parents). Existing directories are fine. */
int sbx_file_mkdir(sbx_t *self, const char *path, bool parents, cb_error_t *err);

/* What path names, not following it when it is a symlink (lstat): its parent is resolved as the
 * sandbox would, its final component is not. The workspace itself has the name "". Caller owns
 * return value (one entry: sbx_dirents_free(entry, 1)). */
sbx_dirent_t *sbx_file_stat(sbx_t *self, const char *path, cb_error_t *err);

/* Rename from to to (rename(2): a file or an empty directory there is replaced). Both parents
 * are resolved as the sandbox would and must lie on the workspace; neither final component is
 * followed, so a symlink is moved as itself. The workspace itself cannot be moved, nor moved
 * onto. */
int sbx_file_rename(sbx_t *self, const char *from, const char *to, cb_error_t *err);

/* An O_PATH | O_DIRECTORY fd of the directory path names, resolved as the sandbox would and
 * checked to lie on the workspace: a handle code inside cannot swap (for inotify through
 * /proc/self/fd/N, say). Caller owns return value; -1 with err. */
int sbx_file_open_dir(sbx_t *self, const char *path, cb_error_t *err);

#endif
