/* seccomp.c: the syscall filter every process in a sandbox runs under.
 *
 * Why: namespaces and a missing capability set keep most of the kernel out of reach, but every
 * syscall the kernel has is still an entry point, and the worst container escapes came through
 * ones a notebook never needs (user namespaces, io_uring, bpf, keyrings, TIOCSTI). The filter
 * cuts the kernel down to what ipykernel, numpy/pandas/matplotlib, bash, coreutils, the C
 * toolchain, make and git use.
 *
 * How: cellblock-init calls sbx_seccomp_load() once, after setting no_new_privs and before it
 * serves, so every process in the sandbox inherits the filter (it cannot be removed). It is
 * built with libseccomp from three tables and a few argument rules:
 *
 *   s_allowed     an allowlist. Everything not listed fails with ENOSYS (mode 0), which
 *                 programs treat as "this kernel is too old" and work around, or is allowed and
 *                 logged to the audit log (mode 1, discovery: find what a workload is missing).
 *   s_forbidden   fails with EPERM in both modes, never just logged.
 *   argument rules (s_add_arg_rules), the same in both modes:
 *     clone       allowed unless a namespace flag is set (then EPERM); clone3 is ENOSYS always,
 *                 since its flags sit behind a pointer the filter cannot read, and glibc then
 *                 falls back to clone.
 *     socket,     AF_UNIX, AF_INET, AF_INET6, AF_NETLINK only; other families EAFNOSUPPORT.
 *     socketpair
 *     ioctl       everything but TIOCSTI and TIOCLINUX (EPERM).
 *     personality only the query (0xffffffff) and PER_LINUX (0); anything else EPERM.
 *   The family, ioctl request and persona are 32-bit in the kernel, so those rules look at the
 *   low 32 bits of the argument only: setting a high bit cannot slip past them.
 *
 * Architectures: only x86_64 (the native one) is in the filter and the bad-arch action kills
 * the process, so an i386 syscall (int $0x80) kills it. x32 syscalls (nr | 0x40000000) carry the
 * x86_64 audit arch, but libseccomp (2.5.4 checked, by exporting the BPF) emits "nr >= 0x40000000
 * and nr != -1: bad-arch action" for an x86_64 filter that has no x32 in it, so they are killed
 * too. test_seccomp checks both.
 *
 * Names libseccomp does not know (newer syscalls), or that do not exist on this architecture,
 * are skipped: such a syscall then takes the default action.
 */
#include <errno.h>
#include <linux/sched.h>
#include <seccomp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/personality.h>
#include <sys/socket.h>

#include "sbx_private.h"

/* ---------------------------------------------------------------------------------------------
 * The allowlist, by purpose. clone, clone3, socket, socketpair, ioctl and personality are not
 * here: they have argument rules of their own.
 * ------------------------------------------------------------------------------------------- */

/* Syscall names, packed by purpose: clang-format would put one on a line. */
// clang-format off
static const char *const s_allowed[] = {
    /* Processes and threads (pthread_create, fork, posix_spawn, wait) */
    "fork", "vfork", "execve", "execveat", "exit", "exit_group", "wait4", "waitid",
    "set_tid_address", "set_robust_list", "rseq", "arch_prctl", "prctl", "futex", "futex_waitv",
    "membarrier", "pidfd_open", "pidfd_send_signal",
    /* Scheduling (BLAS and Python size their thread pools from the affinity mask); raising a
     * priority needs CAP_SYS_NICE, which nothing in a sandbox has */
    "sched_yield", "sched_getaffinity", "sched_setaffinity", "sched_getparam", "sched_setparam",
    "sched_getscheduler", "sched_setscheduler", "sched_getattr", "sched_setattr",
    "sched_get_priority_min", "sched_get_priority_max", "sched_rr_get_interval", "getcpu",
    "getpriority", "setpriority", "ioprio_get", "ioprio_set",
    /* More filters and Landlock rules can only take rights away */
    "seccomp", "landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self",
    /* Identity, sessions, limits. Without capabilities the set* calls only shuffle ids the
     * process already has. */
    "getpid", "getppid", "gettid", "getuid", "geteuid", "getgid", "getegid", "getresuid",
    "getresgid", "getgroups", "setuid", "setgid", "setreuid", "setregid", "setresuid",
    "setresgid", "setfsuid", "setfsgid", "setgroups", "capget", "capset", "getpgid", "getpgrp",
    "setpgid", "getsid", "setsid", "getrlimit", "setrlimit", "prlimit64", "getrusage", "times",
    "sysinfo", "uname", "umask",
    /* Memory (NUMA policy calls act on the caller's own memory) */
    "brk", "mmap", "munmap", "mremap", "mprotect", "madvise", "msync", "mincore", "mlock",
    "mlock2", "munlock", "mlockall", "munlockall", "pkey_mprotect", "pkey_alloc", "pkey_free",
    "memfd_create", "get_mempolicy", "set_mempolicy", "mbind",
    /* Signals (kill reaches only the sandbox's own pid namespace) */
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigsuspend", "rt_sigpending",
    "rt_sigtimedwait", "rt_sigqueueinfo", "rt_tgsigqueueinfo", "sigaltstack", "kill", "tgkill",
    "tkill", "pause", "restart_syscall", "signalfd", "signalfd4",
    /* Time and timers (reading only: setting clocks is forbidden) */
    "clock_gettime", "clock_getres", "clock_nanosleep", "nanosleep", "gettimeofday", "time",
    "alarm", "getitimer", "setitimer", "timer_create", "timer_settime", "timer_gettime",
    "timer_getoverrun", "timer_delete", "timerfd_create", "timerfd_settime", "timerfd_gettime",
    /* Reading, writing and managing file descriptors */
    "read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev", "preadv2",
    "pwritev2", "lseek", "close", "close_range", "dup", "dup2", "dup3", "fcntl", "flock", "pipe",
    "pipe2", "sendfile", "copy_file_range", "splice", "tee", "fsync", "fdatasync", "sync",
    "syncfs", "sync_file_range", "fadvise64", "readahead", "fallocate", "ftruncate", "truncate",
    /* Waiting on many descriptors (zmq, tornado/asyncio, make -j) */
    "poll", "ppoll", "select", "pselect6", "epoll_create", "epoll_create1", "epoll_ctl",
    "epoll_wait", "epoll_pwait", "epoll_pwait2", "eventfd", "eventfd2",
    /* Files and directories, metadata, extended attributes (cp -a), change notification */
    "open", "openat", "openat2", "creat", "stat", "fstat", "lstat", "newfstatat", "statx",
    "statfs", "fstatfs", "access", "faccessat", "faccessat2", "readlink", "readlinkat",
    "getdents", "getdents64", "getcwd", "chdir", "fchdir", "mkdir", "mkdirat", "rmdir", "rename",
    "renameat", "renameat2", "link", "linkat", "symlink", "symlinkat", "unlink", "unlinkat",
    "chmod", "fchmod", "fchmodat", "fchmodat2", "chown", "fchown", "fchownat", "lchown", "utime",
    "utimes", "utimensat", "futimesat", "mknod", "mknodat", "getxattr", "lgetxattr", "fgetxattr",
    "listxattr", "llistxattr", "flistxattr", "setxattr", "lsetxattr", "fsetxattr", "removexattr",
    "lremovexattr", "fremovexattr", "inotify_init", "inotify_init1", "inotify_add_watch",
    "inotify_rm_watch",
    /* Sockets once made (socket and socketpair have rules below) */
    "bind", "listen", "accept", "accept4", "connect", "getsockname", "getpeername", "getsockopt",
    "setsockopt", "sendto", "recvfrom", "sendmsg", "recvmsg", "sendmmsg", "recvmmsg", "shutdown",
    /* System V IPC, private to the sandbox's IPC namespace */
    "shmget", "shmat", "shmdt", "shmctl", "semget", "semop", "semtimedop", "semctl", "msgget",
    "msgsnd", "msgrcv", "msgctl",
    /* Randomness */
    "getrandom",
};
// clang-format on

/* ---------------------------------------------------------------------------------------------
 * Forbidden: EPERM in both modes. The classes from docs/security.md, each with the siblings
 * that reach the same thing by another door.
 * ------------------------------------------------------------------------------------------- */

/* Syscall names, packed by purpose: clang-format would put one on a line. */
// clang-format off
static const char *const s_forbidden[] = {
    /* Reaching into other processes */
    "ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd", "process_madvise", "kcmp",
    /* Kernel keyrings */
    "keyctl", "add_key", "request_key",
    /* Large kernel attack surfaces */
    "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter",
    "io_uring_register",
    /* Mounts, old API and new */
    "mount", "umount2", "pivot_root", "move_mount", "open_tree", "fsopen", "fsconfig", "fsmount",
    "fspick", "mount_setattr",
    /* Namespaces (clone with namespace flags is refused by its rule) */
    "unshare", "setns",
    /* Kernel code, power and swap */
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot",
    "swapon", "swapoff",
    /* The clocks */
    "clock_settime", "clock_adjtime", "settimeofday", "adjtimex",
    /* Host-wide state: accounting, file handles (they bypass path checks), quotas, the kernel
     * log, terminals, I/O ports, obsolete interfaces */
    "acct", "open_by_handle_at", "name_to_handle_at", "quotactl", "quotactl_fd",
    "lookup_dcookie", "syslog", "vhangup", "iopl", "ioperm", "nfsservctl", "uselib", "_sysctl",
};
// clang-format on

#define S_NS_FLAGS                                                                                 \
    (CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET |     \
     CLONE_NEWCGROUP | CLONE_NEWTIME)

#define S_LOW32 0xffffffffull

static const uint32_t s_families[] = {AF_UNIX, AF_INET, AF_INET6, AF_NETLINK};
static const uint32_t s_bad_ioctls[] = {TIOCSTI, TIOCLINUX};
static const uint32_t s_personas[] = {PER_LINUX, 0xffffffffu};

#define S_COUNT(a) (sizeof(a) / sizeof((a)[0]))

static void s_releasep(scmp_filter_ctx *ctx)
{
    if (*ctx)
        seccomp_release(*ctx);
}
#define cleanup_seccomp __attribute__((cleanup(s_releasep)))

/* Add one rule for a syscall named in a table. A name this libseccomp does not know, or that is
 * not a syscall on this architecture (negative pseudo numbers), is skipped. */
static int s_rule(scmp_filter_ctx ctx, uint32_t action, const char *name, unsigned int count,
                  const struct scmp_arg_cmp *cmp)
{
    int nr = seccomp_syscall_resolve_name(name);
    if (nr < 0)
        return 0;
    return seccomp_rule_add_array(ctx, action, nr, count, cmp);
}

/* Give `action` to `name` when the low 32 bits of argument `arg` are one of vals. */
static int s_rule_in(scmp_filter_ctx ctx, uint32_t action, const char *name, unsigned int arg,
                     const uint32_t *vals, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct scmp_arg_cmp cmp = SCMP_CMP(arg, SCMP_CMP_MASKED_EQ, S_LOW32, vals[i]);
        int rc = s_rule(ctx, action, name, 1, &cmp);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Give `action` to `name` when the low 32 bits of argument `arg` are none of vals.
 *
 * libseccomp has no "not in", allows one comparison per argument in a rule, and drops
 * conditional rules for a syscall that also has an unconditional one, so the complement is cut
 * into masked-equality rules along the binary trie of vals: walking from bit 31 down below
 * `prefix`, a branch that holds none of vals becomes one rule fixing bits 31..bit; a branch that
 * holds some is walked further. The rules are disjoint from each other and from vals, and there
 * are at most 32 per value. Start with bit 31, prefix 0. */
static int s_rule_not_in(scmp_filter_ctx ctx, uint32_t action, const char *name, unsigned int arg,
                         const uint32_t *vals, size_t n, int bit, uint32_t prefix)
{
    if (bit < 0)
        return 0; /* all 32 bits fixed: this is one of vals */
    uint32_t mask = UINT32_MAX << bit;
    for (uint32_t side = 0; side < 2; side++) {
        uint32_t want = prefix | side << bit;
        bool held = false;
        for (size_t i = 0; i < n; i++)
            held = held || (vals[i] & mask) == want;
        int rc;
        if (held) {
            rc = s_rule_not_in(ctx, action, name, arg, vals, n, bit - 1, want);
        } else {
            struct scmp_arg_cmp cmp = SCMP_CMP(arg, SCMP_CMP_MASKED_EQ, mask, want);
            rc = s_rule(ctx, action, name, 1, &cmp);
        }
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* The rules that look at arguments: identical in both modes. */
static int s_add_arg_rules(scmp_filter_ctx ctx, uint32_t act_default)
{
    const uint32_t eperm = SCMP_ACT_ERRNO(EPERM);
    int rc = 0;

    /* clone: flags are argument 0 and the kernel reads the low 32 bits (the mask keeps the
     * high half out). Any namespace flag is refused; CLONE_NEWTIME shares its bit with the exit
     * signal in clone(), where it could only mean an invalid signal above 127. */
    struct scmp_arg_cmp no_ns = SCMP_A0(SCMP_CMP_MASKED_EQ, S_NS_FLAGS, 0);
    rc = s_rule(ctx, SCMP_ACT_ALLOW, "clone", 1, &no_ns);
    for (int bit = 0; bit < 32 && rc == 0; bit++) {
        uint64_t flag = 1ull << bit;
        if (S_NS_FLAGS & flag) {
            struct scmp_arg_cmp has = SCMP_A0(SCMP_CMP_MASKED_EQ, flag, flag);
            rc = s_rule(ctx, eperm, "clone", 1, &has);
        }
    }
    /* clone3: ENOSYS already is the default in mode 0 (libseccomp refuses a rule that repeats
     * the default action) */
    if (rc == 0 && act_default != SCMP_ACT_ERRNO(ENOSYS))
        rc = s_rule(ctx, SCMP_ACT_ERRNO(ENOSYS), "clone3", 0, NULL);

    /* socket and socketpair: the family is argument 0 */
    const char *const sockets[] = {"socket", "socketpair"};
    for (size_t i = 0; i < S_COUNT(sockets) && rc == 0; i++) {
        rc = s_rule_in(ctx, SCMP_ACT_ALLOW, sockets[i], 0, s_families, S_COUNT(s_families));
        if (rc == 0)
            rc = s_rule_not_in(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT), sockets[i], 0, s_families,
                               S_COUNT(s_families), 31, 0);
    }

    /* ioctl: the request is argument 1 */
    if (rc == 0)
        rc = s_rule_in(ctx, eperm, "ioctl", 1, s_bad_ioctls, S_COUNT(s_bad_ioctls));
    if (rc == 0)
        rc = s_rule_not_in(ctx, SCMP_ACT_ALLOW, "ioctl", 1, s_bad_ioctls, S_COUNT(s_bad_ioctls), 31,
                           0);

    /* personality: the persona is argument 0 */
    if (rc == 0)
        rc = s_rule_in(ctx, SCMP_ACT_ALLOW, "personality", 0, s_personas, S_COUNT(s_personas));
    if (rc == 0)
        rc = s_rule_not_in(ctx, eperm, "personality", 0, s_personas, S_COUNT(s_personas), 31, 0);
    return rc;
}

int sbx_seccomp_load(int mode)
{
    if (mode != 0 && mode != 1)
        return -EINVAL;
    uint32_t act_default = mode == 0 ? SCMP_ACT_ERRNO(ENOSYS) : SCMP_ACT_LOG;
    cleanup_seccomp scmp_filter_ctx ctx = seccomp_init(act_default);
    if (!ctx)
        return mode == 0 ? -ENOMEM : -EOPNOTSUPP; /* no log action in this kernel */

    int rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
    if (rc == 0) /* report the kernel's errno from seccomp_load, not -ECANCELED */
        rc = seccomp_attr_set(ctx, SCMP_FLTATR_API_SYSRAWRC, 1);
    if (rc == 0) /* a binary search over ~250 syscalls instead of a linear walk */
        rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
    if (rc == 0 && mode == 1) /* discovery: log the EPERM and ENOSYS answers too */
        rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_LOG, 1);

    for (size_t i = 0; i < S_COUNT(s_allowed) && rc == 0; i++)
        rc = s_rule(ctx, SCMP_ACT_ALLOW, s_allowed[i], 0, NULL);
    for (size_t i = 0; i < S_COUNT(s_forbidden) && rc == 0; i++)
        rc = s_rule(ctx, SCMP_ACT_ERRNO(EPERM), s_forbidden[i], 0, NULL);
    if (rc == 0)
        rc = s_add_arg_rules(ctx, act_default);
    if (rc == 0)
        rc = seccomp_load(ctx);
    return rc < 0 ? rc : 0;
}
