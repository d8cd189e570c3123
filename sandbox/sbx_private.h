/* sbx_private.h: what the sandbox library's files share, and the messages between the library
 * (in the gateway) and cellblock-init (PID 1 inside each sandbox).
 *
 * The two talk over one AF_UNIX SOCK_SEQPACKET socket pair: one message per datagram, fixed
 * headers, strings packed NUL-separated after the header, fds as SCM_RIGHTS. The init's end is
 * fd 3 after exec. The order on the wire:
 *
 *   gateway -> init   CONFIG (sbx_wire_config_t, then, for a persistent workspace, its host
 *                     path) and, from a root gateway, a detached copy of that directory's mount
 *                     (open_tree) to move into place: the sandbox's host uid may not search the
 *                     directories above it.
 *   init -> gateway   READY + fd of the sandbox's root directory, or FAILED (step, errno)
 *   gateway -> init   SPAWN (sbx_wire_spawn_t + argv, env) + 3 stdio fds
 *   init -> gateway   SPAWNED (pid inside, or step and errno) + a pidfd when it worked
 *   init -> gateway   EXITED (pid inside, status) for each process it spawned, once reaped
 *   gateway -> init   OPEN (sbx_wire_open_t): make a socket or a terminal inside
 *   init -> gateway   OPENED (errno or 0) + the fd when it worked
 *
 * When the gateway's end closes, the init kills everything in the sandbox and exits.
 */
#ifndef SBX_PRIVATE_H
#define SBX_PRIVATE_H

#include <limits.h>
#include <stdint.h>
#include <sys/types.h>

#include "sbx/sbx.h"

#define SBX_WIRE_MAGIC 0x63626c6bu /* "cblk" */
#define SBX_WIRE_MAX 65536         /* largest message, header and strings together */
#define SBX_INIT_FD 3              /* the init's end of the control socket after exec */
/* The oom_score_adj of every process the init starts (the init keeps 0). Files in /tmp and
 * /dev/shm are charged to the sandbox and to no process, so by size alone the OOM killer often
 * took the small init, and the sandbox ended with it; raised, any other process goes first.
 * Raising needs no privilege, lowering below 0 does (nobody inside may make itself unkillable);
 * on a host-wide shortage, too, sandboxed processes go before the host's own. */
#define SBX_CHILD_OOM_SCORE_ADJ "500"
/* The least memory no tmpfs of a sandbox may take (an eighth of the limit if that is more). */
#define SBX_MEMORY_RESERVE (32ull * 1024 * 1024)

typedef enum {
    SBX_MSG_CONFIG = 1,
    SBX_MSG_READY,
    SBX_MSG_FAILED,
    SBX_MSG_SPAWN,
    SBX_MSG_SPAWNED,
    SBX_MSG_EXITED,
    SBX_MSG_OPEN,
    SBX_MSG_OPENED,
} sbx_msg_type_t;

/* Setup steps of the init and of a spawned child, reported with errno when one fails. One list
 * makes both the enum and the names. */
#define SBX_STEP_MAP(X)                                                                            \
    X(NONE, "none")                                                                                \
    X(PROTOCOL, "read the configuration")                                                          \
    X(EXEC_INIT, "exec the init")                                                                  \
    X(CGROUP_NS, "enter a cgroup namespace")                                                       \
    X(HOSTNAME, "set the hostname")                                                                \
    X(MOUNT_PRIVATE, "make mounts private")                                                        \
    X(MOUNT_ROOT, "mount the root tmpfs")                                                          \
    X(PIVOT, "pivot_root")                                                                         \
    X(BIND_SYSTEM, "bind the host's /usr and lib links")                                           \
    X(ETC, "write /etc")                                                                           \
    X(PROC, "mount /proc")                                                                         \
    X(PROC_MASK, "mask /proc entries")                                                             \
    X(DEV, "build /dev")                                                                           \
    X(TMP, "mount /tmp and /dev/shm")                                                              \
    X(WORKSPACE, "mount the workspace")                                                            \
    X(RUN_DIR, "mount the run directory")                                                          \
    X(LIBEXEC, "mount cellblock's libexec directory")                                              \
    X(DETACH_OLD_ROOT, "detach the old root")                                                      \
    X(READONLY_ROOT, "make the root read-only")                                                    \
    X(LOOPBACK, "bring up lo")                                                                     \
    X(USERNS, "enter the sandbox user's namespace")                                                \
    X(CAPS, "drop capabilities")                                                                   \
    X(NO_NEW_PRIVS, "set no_new_privs")                                                            \
    X(SECCOMP, "load the seccomp filter")                                                          \
    X(ROOT_FD, "open the root for the gateway")                                                    \
    X(SIGNALS, "set up signal handling")                                                           \
    X(FORK, "fork")                                                                                \
    X(SETSID, "setsid")                                                                            \
    X(STDIO, "set up stdin, stdout and stderr")                                                    \
    X(CHDIR, "change to the working directory")                                                    \
    X(RLIMITS, "set resource limits")                                                              \
    X(CLOSE_FDS, "close inherited fds")                                                            \
    X(EXEC, "exec")                                                                                \
    X(PIDFD, "open a pidfd")

typedef enum {
#define X(name, text) SBX_STEP_##name,
    SBX_STEP_MAP(X)
#undef X
        SBX_STEP_COUNT
} sbx_step_t;

const char *sbx_step_name(uint32_t step);

typedef struct {
    uint32_t magic;
    uint32_t type;
} sbx_wire_header_t;

/* CONFIG; followed, when workspace_bind, by the workspace's host path, then, when libexec_bind,
 * by cellblock's libexec directory's host path, each NUL-terminated; with the mount fds fd_mask
 * names, in that order. */
#define SBX_CONFIG_WORKSPACE_TREE 2u /* fd_mask: a detached mount of the workspace dir */
#define SBX_CONFIG_LIBEXEC_TREE 4u   /* fd_mask: a detached mount of the libexec dir */
typedef struct {
    sbx_wire_header_t h;
    uint64_t tmp_bytes;
    uint64_t workspace_bytes;
    uint32_t workspace_bind; /* 1: bind a host dir at /home/user; 0: a tmpfs */
    uint32_t fd_mask;        /* SBX_CONFIG_*_TREE: which mount fds come with the message */
    uint64_t nofile;
    uint64_t fsize_bytes;
    uint64_t nproc;        /* RLIMIT_NPROC fallback when there is no pids cgroup; 0: none */
    uint32_t seccomp_mode; /* 0 deny, 1 log, 2 off */
    uint32_t libexec_bind; /* 1: bind a host dir read-only at SBX_INSIDE_LIBEXEC; 0: none */
    char hostname[64];
} sbx_wire_config_t;

/* READY / FAILED / SPAWNED / EXITED share one shape. */
typedef struct {
    sbx_wire_header_t h;
    uint32_t id;    /* SPAWN's id, echoed */
    int32_t pid;    /* pid inside the sandbox */
    uint32_t step;  /* FAILED and failed SPAWNED: sbx_step_t */
    int32_t error;  /* errno of that step */
    int32_t code;   /* EXITED: CLD_EXITED, CLD_KILLED, CLD_DUMPED */
    int32_t status; /* EXITED: exit code or signal */
} sbx_wire_reply_t;

/* SPAWN; followed by argc strings, then envc strings, then the cwd, all NUL-terminated. */
typedef struct {
    sbx_wire_header_t h;
    uint32_t id;
    uint32_t argc;
    uint32_t envc;
    uint32_t fd_mask; /* bit i set: the i-th stdio fd (0 stdin, 1 stdout, 2 stderr) is attached,
                           in that order; unset ones get /dev/null */
    uint32_t flags;   /* SBX_SPAWN_* */
} sbx_wire_spawn_t;

#define SBX_SPAWN_TTY 1u /* stdin is a terminal: make it the controlling terminal */

/* OPEN: what the init makes in its namespaces and sends back. Only these: the gateway uses them
 * to reach into the sandbox's network (a socket it then binds or connects from the host side)
 * and to give a process a terminal of the sandbox's own devpts. */
typedef enum {
    SBX_OPEN_TCP4 = 1, /* socket(AF_INET, SOCK_STREAM) */
    SBX_OPEN_TCP6,     /* socket(AF_INET6, SOCK_STREAM) */
    SBX_OPEN_PTY,      /* a pseudo-terminal's master, from /dev/pts/ptmx, still locked */
} sbx_open_what_t;

typedef struct {
    sbx_wire_header_t h;
    uint32_t id;
    uint32_t what; /* sbx_open_what_t */
} sbx_wire_open_t;

/* Send one message with up to 3 fds (nfds may be 0). Returns 0 or -1 with errno. */
int sbx_wire_send(int sock, const void *msg, size_t len, const int *fds, int nfds);

/* Receive one message into buf (SBX_WIRE_MAX); received fds go to fds[] (up to max_fds, the
 * rest closed; unused slots -1). Returns the length, 0 on EOF, -1 with errno. */
ssize_t sbx_wire_recv(int sock, void *buf, size_t size, int *fds, int max_fds);

/* The host directories CONFIG names: paths point into the message's buffer (NULL: none), trees
 * are detached mounts (-1: none; the init closes them once placed). */
typedef struct {
    const char *workspace_dir;
    int workspace_tree;
    const char *libexec_dir;
    int libexec_tree;
} sbx_wire_host_dirs_t;

/* The init's reading of CONFIG: n bytes in buf (n >= sizeof(sbx_wire_config_t)), with a NUL at
 * buf[n]. Copies the fixed part to *cfg (its hostname NUL-terminated); with workspace_bind and
 * libexec_bind points dirs->workspace_dir and dirs->libexec_dir (else NULL) at the strings after
 * it in buf, in that order; takes the mount fds fd_mask names from fds[] in order into
 * dirs->workspace_tree and dirs->libexec_tree (-1 when not named) and closes the rest. Returns 0,
 * or -1 when the message is malformed (an fd_mask bit it does not know included, a path missing
 * or not absolute, a named fd that did not come). */
int sbx_wire_unpack_config(char *buf, size_t n, const int fds[2], sbx_wire_config_t *cfg,
                           sbx_wire_host_dirs_t *dirs);

/* The init's reading of SPAWN (len bytes in buf, len >= sizeof *sp): argc strings, envc strings
 * and the cwd, each NUL-terminated, after *sp. argv and env become NULL-terminated arrays in vec
 * (cap entries) of pointers into buf; *cwd points into buf. Returns 0, or -1 when the message is
 * malformed (argc 0, more strings than vec holds, a string not terminated within len). */
int sbx_wire_unpack_spawn(char *buf, size_t len, const sbx_wire_spawn_t *sp, char **vec, size_t cap,
                          char ***argv, char ***env, const char **cwd);

/* The seccomp filter (seccomp.c), loaded by the init into itself just before it starts serving,
 * so every process in the sandbox inherits it. mode: 0 deny, 1 log (discovery). Returns 0, or
 * -errno. */
int sbx_seccomp_load(int mode);

/* ---------------------------------------------------------------------------------------------
 * The library side (gateway process).
 * ------------------------------------------------------------------------------------------- */

typedef struct sbx_cgroup sbx_cgroup_t; /* cgroup.c */

/* Create the sandbox's cgroups (names unique per gateway process), apply limits. Missing
 * controllers are recorded in layers with the reason; never an error by themselves. */
sbx_cgroup_t *sbx_cgroup_new(const sbx_policy_t *policy, sbx_layers_t *layers, cb_error_t *err);
int sbx_cgroup_add(sbx_cgroup_t *cg, pid_t pid, cb_error_t *err);
int sbx_cgroup_usage(const sbx_cgroup_t *cg, sbx_usage_t *out);

/* Create files as the sandbox user (files.c): a root gateway switches this thread's fsuid and
 * fsgid to the sandbox user's host ids, which a filesystem owned by the sandbox's user namespace
 * requires. Returns whether it switched; sbx_fs_as_self(switched) switches back, keeping errno. */
bool sbx_fs_as_owner(const sbx_t *self);
void sbx_fs_as_self(bool switched);

/* Bytes used in the workspace and its size (files.c): the tmpfs's figures, or for a persistent
 * workspace a walk of its tree and policy.workspace_bytes. */
int sbx_workspace_usage(const sbx_t *self, uint64_t *used, uint64_t *size, cb_error_t *err);

/* Bytes used on the sandbox's /tmp and /dev/shm tmpfs (statfs through the root fd, following no
 * symlink; 0 for one that is not a tmpfs), and the size of /tmp. Never fails. */
void sbx_tmp_usage(const sbx_t *self, uint64_t *tmp, uint64_t *shm, uint64_t *size);
uint64_t sbx_cgroup_oom_kills(const sbx_cgroup_t *cg);
/* Kill whatever is left, wait (bounded) for the cgroups to empty, remove them. */
void sbx_cgroup_destroy(sbx_cgroup_t **cg_p);

typedef struct sbx_event sbx_event_t; /* an EXITED message not yet claimed by a process */

struct sbx {
    sbx_policy_t policy; /* strings below are the sandbox's own copies */
    char *run_dir;       /* the host run dir: the gateway's, private (not seen inside) */
    char *workspace_dir; /* NULL: a tmpfs workspace */
    char *libexec_dir;   /* NULL: nothing at SBX_INSIDE_LIBEXEC */
    char *init_path;
    int run_dir_lock; /* flock on run_dir (cb_dir_create_locked); closed after removal */
    sbx_layers_t layers;
    sbx_cgroup_t *cgroup;
    pid_t init_pid; /* host pid */
    int init_pidfd;
    int ctl;                   /* control socket */
    int root_fd;               /* the sandbox's "/" (O_PATH), for workspace files */
    int run_fd;                /* its /run/cellblock (O_PATH), a tmpfs of the sandbox user's */
    dev_t workspace_dev;       /* st_dev and mount id of /home/user: what file paths must resolve */
    uint64_t workspace_mnt_id; /* onto (the mount id tells a bind from /usr on the same fs) */
    char hostname[64];
    uid_t host_uid; /* host uid and gid the sandbox user maps to */
    gid_t host_gid;
    uint32_t next_spawn_id;
    sbx_event_t *events; /* unclaimed EXITED messages, oldest first */
    int live_procs;
};

struct sbx_proc {
    sbx_t *sbx;
    pid_t pid; /* host pid */
    pid_t inside_pid;
    int pidfd;
    bool reaped;
    sbx_exit_t exit;
    uint64_t oom_kills_at_start;
};

#endif
