/* seccomp_probes.h: one table of syscall probes, shared by the filter's unit test
 * (sandbox/test_seccomp.c) and the in-sandbox probe (tests/sandbox/probe_syscalls.c), so the two
 * try the same calls and expect the same answers. Test code only; include it from one file per
 * program.
 *
 * Each probe makes one call the filter (seccomp.c) rules on, with arguments the kernel would
 * reject anyway (bubblewrap's try-syscall trick): if the filter ever let a forbidden call
 * through, it would still change nothing. Where arguments cannot make a call harmless, the
 * probe runs it in a throwaway child in a fresh session (unshare, personality, vhangup, clone
 * with a namespace flag, the foreign-architecture calls).
 *
 * A probe's result is 0 when the call succeeded, an errno when it failed, or -sig when the
 * child it ran in was killed by signal sig. sbx_probe_describe() spells a result out.
 */
#ifndef SBX_SECCOMP_PROBES_H
#define SBX_SECCOMP_PROBES_H

#include <errno.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

typedef enum {
    SBX_PROBE_DENIED,   /* the filter answers `expect` in both modes */
    SBX_PROBE_PASSES,   /* reaches the kernel in both modes; `expect` is the kernel's answer */
    SBX_PROBE_UNLISTED, /* not in the allowlist: ENOSYS in deny mode, reaches the kernel in log
                           mode (anything but ENOSYS) */
    SBX_PROBE_KILLS,    /* foreign architecture: the process is killed (-SIGSYS) in both modes */
} sbx_probe_kind_t;

typedef struct {
    const char *name;      /* the call, for the TAP line */
    int (*call)(long arg); /* makes the call; returns the result (see above) */
    long arg;
    int expect; /* the result the filter must produce */
    sbx_probe_kind_t kind;
} sbx_probe_t;

static inline int s_probe_result(long rc) { return rc < 0 ? errno : 0; }

/* Run fn(arg) in a child in a new session (so it has no controlling terminal); the child's exit
 * code is the result. */
static inline int s_probe_in_child(int (*fn)(long), long arg)
{
    pid_t pid = fork();
    if (pid < 0)
        return errno;
    if (pid == 0) {
        setsid();
        _exit(fn(arg) & 0xff);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return errno;
    return WIFSIGNALED(status) ? -WTERMSIG(status) : WEXITSTATUS(status);
}

/* Raw clone, fork-like (no new stack): the child leaves at once. */
static int s_probe_clone(long flags)
{
    long pid = syscall(SYS_clone, flags | SIGCHLD, 0L, 0L, 0L, 0L);
    if (pid == 0)
        _exit(0);
    if (pid < 0)
        return errno;
    waitpid((pid_t)pid, NULL, 0);
    return 0;
}

/* In the child of s_probe_in_child. */
static int s_child_unshare(long flags) { return s_probe_result(syscall(SYS_unshare, flags)); }
static int s_child_personality(long p) { return s_probe_result(personality((unsigned long)p)); }
static int s_child_vhangup(long unused)
{
    (void)unused;
    return s_probe_result(syscall(SYS_vhangup));
}
static int s_child_x32(long nr) { return s_probe_result(syscall(nr | 0x40000000L)); }
static int s_child_i386(long nr)
{
#if defined(__x86_64__)
    /* A kernel without ia32 emulation answers int $0x80 with SIGSEGV; let it kill us as it
     * would anywhere (a sanitizer's SEGV handler would otherwise report it and exit 1). */
    signal(SIGSEGV, SIG_DFL);
    long rc = nr;
    __asm__ volatile("int $0x80" : "+a"(rc) : : "memory", "r8", "r9", "r10", "r11");
    return rc < 0 ? (int)-rc : 0;
#else
    return ENOSYS;
#endif
}

static int s_probe_unshare(long flags) { return s_probe_in_child(s_child_unshare, flags); }
static int s_probe_personality(long p) { return s_probe_in_child(s_child_personality, p); }
static int s_probe_vhangup(long arg) { return s_probe_in_child(s_child_vhangup, arg); }
static int s_probe_x32(long nr) { return s_probe_in_child(s_child_x32, nr); }
static int s_probe_i386(long nr) { return s_probe_in_child(s_child_i386, nr); }

static int s_probe_socket(long family)
{
    long fd = syscall(SYS_socket, family, (long)SOCK_STREAM, 0L);
    if (fd >= 0)
        close((int)fd);
    return s_probe_result(fd);
}

static int s_probe_socket_raw(long family)
{
    long fd = syscall(SYS_socket, family, (long)SOCK_RAW, 0L);
    if (fd >= 0)
        close((int)fd);
    return s_probe_result(fd);
}

static int s_probe_socketpair(long family)
{
    int sv[2];
    long rc = syscall(SYS_socketpair, family, (long)SOCK_STREAM, 0L, sv);
    if (rc == 0) {
        close(sv[0]);
        close(sv[1]);
    }
    return s_probe_result(rc);
}

/* The request goes in whole, high bits and all; NULL as the argument means that even an
 * unfiltered TIOCSTI has no byte to push. */
static int s_probe_ioctl_stdin(long req) { return s_probe_result(syscall(SYS_ioctl, 0L, req, 0L)); }
static int s_probe_ioctl_badfd(long req)
{
    return s_probe_result(syscall(SYS_ioctl, -1L, req, 0L));
}

static int s_probe_ptrace(long pid)
{
    return s_probe_result(syscall(SYS_ptrace, (long)PTRACE_ATTACH, pid, 0L, 0L));
}

static int s_probe_settimeofday(long unused)
{
    (void)unused;
    struct {
        long sec, usec;
    } tv = {0, 2000000}; /* usec out of range: EINVAL before any clock is touched */
    return s_probe_result(syscall(SYS_settimeofday, &tv, NULL));
}

/* Calls whose bad arguments fit in one line: syscall number in arg, arguments fixed below. */
#define S_PROBE_RAW(fn, ...)                                                                       \
    static int fn(long nr) { return s_probe_result(syscall(nr, __VA_ARGS__)); }
S_PROBE_RAW(s_probe_0, 0L, 0L, 0L, 0L, 0L, 0L)              /* all zero / NULL */
S_PROBE_RAW(s_probe_bad_fd, -1L, 0L, 0L, 0L, 0L, 0L)        /* fd -1 */
S_PROBE_RAW(s_probe_bad_op, -1L, -1L, 0L, 0L, 0L, 0L)       /* op or level out of range */
S_PROBE_RAW(s_probe_bad_flags_1, -1L, ~0L, ~0L, 0L, 0L, 0L) /* flags (second arg) invalid */
S_PROBE_RAW(s_probe_bad_flags_2, -1L, 0L, ~0L, 0L, 0L, 0L)  /* flags (third arg) invalid */
S_PROBE_RAW(s_probe_bad_flags_3, 0L, 0L, 0L, ~0L, 0L, 0L)   /* flags (fourth arg) invalid */
S_PROBE_RAW(s_probe_bad_flags_4, -1L, 0L, -1L, 0L, ~0L, 0L) /* flags (fifth arg) invalid */
S_PROBE_RAW(s_probe_bad_flags_5, 0L, 0L, 0L, 0L, 0L, ~0L)   /* flags (sixth arg) invalid */
S_PROBE_RAW(s_probe_empty_path, "", 0L, 0L, 0L, 0L, 0L)     /* path "" */
#undef S_PROBE_RAW

#define S_DENY(call, fn, arg)                                                                      \
    {                                                                                              \
        call, fn, (long)(arg), EPERM, SBX_PROBE_DENIED                                             \
    }

static const sbx_probe_t sbx_probes[] = {
    /* Reaching into other processes */
    S_DENY("ptrace(PTRACE_ATTACH, -1)", s_probe_ptrace, -1),
    S_DENY("ptrace(PTRACE_ATTACH, 0)", s_probe_ptrace, 0),
    S_DENY("process_vm_readv(bad flags)", s_probe_bad_flags_5, SYS_process_vm_readv),
    S_DENY("process_vm_writev(bad flags)", s_probe_bad_flags_5, SYS_process_vm_writev),
    S_DENY("pidfd_getfd(-1, bad flags)", s_probe_bad_flags_2, SYS_pidfd_getfd),
    S_DENY("process_madvise(-1)", s_probe_bad_fd, SYS_process_madvise),
    S_DENY("kcmp(0, 0)", s_probe_0, SYS_kcmp),
    /* Kernel keyrings */
    S_DENY("keyctl(-1)", s_probe_bad_op, SYS_keyctl),
    S_DENY("add_key(NULL)", s_probe_0, SYS_add_key),
    S_DENY("request_key(NULL)", s_probe_0, SYS_request_key),
    /* Large kernel attack surfaces */
    S_DENY("bpf(-1)", s_probe_bad_op, SYS_bpf),
    S_DENY("perf_event_open(NULL)", s_probe_0, SYS_perf_event_open),
    S_DENY("userfaultfd(bad flags)", s_probe_bad_op, SYS_userfaultfd),
    S_DENY("io_uring_setup(0, NULL)", s_probe_0, SYS_io_uring_setup),
    S_DENY("io_uring_enter(-1)", s_probe_bad_fd, SYS_io_uring_enter),
    S_DENY("io_uring_register(-1)", s_probe_bad_fd, SYS_io_uring_register),
    /* Mounts */
    S_DENY("mount(NULL, NULL, NULL)", s_probe_0, SYS_mount),
    S_DENY("umount2(NULL)", s_probe_0, SYS_umount2),
    S_DENY("pivot_root(NULL, NULL)", s_probe_0, SYS_pivot_root),
    S_DENY("move_mount(-1, bad flags)", s_probe_bad_flags_4, SYS_move_mount),
    S_DENY("open_tree(-1, bad flags)", s_probe_bad_flags_2, SYS_open_tree),
    S_DENY("fsopen(bad flags)", s_probe_bad_flags_1, SYS_fsopen),
    S_DENY("fsconfig(-1)", s_probe_bad_op, SYS_fsconfig),
    S_DENY("fsmount(-1, bad flags)", s_probe_bad_flags_1, SYS_fsmount),
    S_DENY("fspick(-1, bad flags)", s_probe_bad_flags_2, SYS_fspick),
    S_DENY("mount_setattr(-1, bad flags)", s_probe_bad_flags_2, SYS_mount_setattr),
    /* Namespaces */
    S_DENY("unshare(CLONE_NEWUSER)", s_probe_unshare, CLONE_NEWUSER),
    S_DENY("unshare(CLONE_NEWNET)", s_probe_unshare, CLONE_NEWNET),
    S_DENY("setns(-1, 0)", s_probe_bad_fd, SYS_setns),
    S_DENY("clone(CLONE_NEWUSER)", s_probe_clone, CLONE_NEWUSER),
    S_DENY("clone(CLONE_NEWNS)", s_probe_clone, CLONE_NEWNS),
    S_DENY("clone(CLONE_NEWUTS)", s_probe_clone, CLONE_NEWUTS),
    S_DENY("clone(CLONE_NEWIPC)", s_probe_clone, CLONE_NEWIPC),
    S_DENY("clone(CLONE_NEWPID)", s_probe_clone, CLONE_NEWPID),
    S_DENY("clone(CLONE_NEWNET)", s_probe_clone, CLONE_NEWNET),
    S_DENY("clone(CLONE_NEWCGROUP)", s_probe_clone, CLONE_NEWCGROUP),
    S_DENY("clone(CLONE_NEWUSER, high bits set)", s_probe_clone, CLONE_NEWUSER | (1L << 40)),
    {"clone3(NULL, 0)", s_probe_0, SYS_clone3, ENOSYS, SBX_PROBE_DENIED},
    /* Kernel code, power, swap */
    S_DENY("kexec_load(bad flags)", s_probe_bad_flags_3, SYS_kexec_load),
    S_DENY("kexec_file_load(bad flags)", s_probe_bad_flags_4, SYS_kexec_file_load),
    S_DENY("init_module(NULL, 0)", s_probe_0, SYS_init_module),
    S_DENY("finit_module(-1)", s_probe_bad_fd, SYS_finit_module),
    S_DENY("delete_module(NULL)", s_probe_0, SYS_delete_module),
    S_DENY("reboot(bad magic)", s_probe_0, SYS_reboot),
    S_DENY("swapon(NULL, bad flags)", s_probe_bad_flags_1, SYS_swapon),
    S_DENY("swapoff(NULL)", s_probe_0, SYS_swapoff),
    /* Clocks (CLOCK_REALTIME is 0: a NULL time faults before anything is set) */
    S_DENY("clock_settime(CLOCK_REALTIME, NULL)", s_probe_0, SYS_clock_settime),
    S_DENY("clock_adjtime(CLOCK_REALTIME, NULL)", s_probe_0, SYS_clock_adjtime),
    S_DENY("settimeofday(bad usec)", s_probe_settimeofday, 0),
    S_DENY("adjtimex(NULL)", s_probe_0, SYS_adjtimex),
    /* Host-wide state */
    S_DENY("acct(\"\")", s_probe_empty_path, SYS_acct),
    S_DENY("open_by_handle_at(-1)", s_probe_bad_fd, SYS_open_by_handle_at),
    S_DENY("name_to_handle_at(-1, bad flags)", s_probe_bad_flags_4, SYS_name_to_handle_at),
    S_DENY("quotactl(bad command)", s_probe_bad_op, SYS_quotactl),
    S_DENY("quotactl_fd(-1)", s_probe_bad_fd, SYS_quotactl_fd),
    S_DENY("lookup_dcookie(0)", s_probe_0, SYS_lookup_dcookie),
    S_DENY("personality(PER_LINUX32)", s_probe_personality, PER_LINUX32),
    S_DENY("personality(ADDR_NO_RANDOMIZE)", s_probe_personality, ADDR_NO_RANDOMIZE),
    S_DENY("syslog(-1)", s_probe_bad_op, SYS_syslog),
    S_DENY("vhangup() without a terminal", s_probe_vhangup, 0),
    S_DENY("iopl(-1)", s_probe_bad_op, SYS_iopl),
    S_DENY("ioperm(0, 0)", s_probe_0, SYS_ioperm),
    S_DENY("nfsservctl(0)", s_probe_0, SYS_nfsservctl),
    S_DENY("uselib(\"\")", s_probe_empty_path, SYS_uselib),
    S_DENY("_sysctl(NULL)", s_probe_0, SYS__sysctl),
    /* Terminals */
    S_DENY("ioctl(0, TIOCSTI)", s_probe_ioctl_stdin, TIOCSTI),
    S_DENY("ioctl(0, TIOCSTI | 1 << 32)", s_probe_ioctl_stdin, TIOCSTI | (1L << 32)),
    S_DENY("ioctl(0, TIOCLINUX)", s_probe_ioctl_stdin, TIOCLINUX),
    /* Socket families */
    {"socket(AF_ALG)", s_probe_socket, AF_ALG, EAFNOSUPPORT, SBX_PROBE_DENIED},
    {"socket(AF_VSOCK)", s_probe_socket, AF_VSOCK, EAFNOSUPPORT, SBX_PROBE_DENIED},
    {"socket(AF_PACKET)", s_probe_socket_raw, AF_PACKET, EAFNOSUPPORT, SBX_PROBE_DENIED},
    {"socket(AF_ALG | 1 << 32)", s_probe_socket, AF_ALG | (1L << 32), EAFNOSUPPORT,
     SBX_PROBE_DENIED},
    {"socketpair(AF_VSOCK)", s_probe_socketpair, AF_VSOCK, EAFNOSUPPORT, SBX_PROBE_DENIED},
    {"socketpair(AF_ALG)", s_probe_socketpair, AF_ALG, EAFNOSUPPORT, SBX_PROBE_DENIED},
    /* What the argument rules must still let through */
    {"clone() without namespace flags", s_probe_clone, 0, 0, SBX_PROBE_PASSES},
    {"socket(AF_UNIX)", s_probe_socket, AF_UNIX, 0, SBX_PROBE_PASSES},
    {"socket(AF_INET)", s_probe_socket, AF_INET, 0, SBX_PROBE_PASSES},
    {"socket(AF_NETLINK)", s_probe_socket_raw, AF_NETLINK, 0, SBX_PROBE_PASSES},
    {"socketpair(AF_UNIX)", s_probe_socketpair, AF_UNIX, 0, SBX_PROBE_PASSES},
    {"ioctl(-1, FIONREAD) reaches the kernel", s_probe_ioctl_badfd, FIONREAD, EBADF,
     SBX_PROBE_PASSES},
    {"personality(query)", s_probe_personality, 0xffffffffL, 0, SBX_PROBE_PASSES},
    {"personality(PER_LINUX)", s_probe_personality, PER_LINUX, 0, SBX_PROBE_PASSES},
    /* Not in the allowlist */
    {"chroot(\"\") (unlisted)", s_probe_empty_path, SYS_chroot, ENOSYS, SBX_PROBE_UNLISTED},
    /* Foreign architectures: getpid as i386 (20) and as x32 (39 | 0x40000000) */
    {"i386 syscall (int $0x80)", s_probe_i386, 20, -SIGSYS, SBX_PROBE_KILLS},
    {"x32 syscall", s_probe_x32, SYS_getpid, -SIGSYS, SBX_PROBE_KILLS},
};

#undef S_DENY

#define SBX_PROBE_COUNT (sizeof(sbx_probes) / sizeof(sbx_probes[0]))

/* "EPERM", "success", "killed by SIGSYS". Returns buf. */
static inline const char *sbx_probe_describe(int result, char *buf, size_t size)
{
    if (result == 0)
        snprintf(buf, size, "success");
    else if (result < 0)
        snprintf(buf, size, "killed by SIG%s", sigabbrev_np(-result) ? sigabbrev_np(-result) : "?");
    else
        snprintf(buf, size, "%s", strerrorname_np(result) ? strerrorname_np(result) : "errno?");
    return buf;
}

#endif
