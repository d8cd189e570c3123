/* process.c: starting, signalling and reaping the processes the gateway runs (kernels and
 * commands), whether inside a sandbox or, with no_sandbox, directly on the host.
 *
 * Either way the process leads its own session and process group (so a signal to the group
 * reaches everything it started), dies with the gateway, and is watched through a pidfd that
 * the gateway's loop polls. Inside a sandbox the sandbox's init forks it and reports its exit
 * status; on the host we fork it ourselves and reap it with waitid on the pidfd.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <time.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cb/alloc.h"
#include "cb/cleanup.h"
#include "cb/log.h"
#include "kg_private.h"

struct kg_proc {
    sbx_proc_t *sbx_proc; /* inside a sandbox; else the fields below */
    pid_t pid;
    int pidfd;
    bool reaped;
    bool keep_group; /* see kg_proc_opts_t */
    kg_proc_exit_t exit;
};

const char *const kg_sandbox_base_env[] = {"PATH=/usr/local/bin:/usr/bin:/bin",
                                           "HOME=/home/user",
                                           "USER=user",
                                           "LOGNAME=user",
                                           "SHELL=/bin/bash",
                                           "LANG=C.UTF-8",
                                           "TMPDIR=/tmp",
                                           "TERM=xterm-256color",
                                           NULL};

char **kg_env_merge(const char *const *const *lists, size_t n)
{
    size_t total = 0;
    for (size_t l = 0; l < n; l++)
        for (size_t i = 0; lists[l] && lists[l][i]; i++)
            total++;
    char **env = cb_xcalloc(total + 1, sizeof *env);
    size_t count = 0;
    for (size_t l = 0; l < n; l++) {
        for (size_t i = 0; lists[l] && lists[l][i]; i++) {
            const char *entry = lists[l][i];
            const char *eq = strchr(entry, '=');
            size_t keylen = eq ? (size_t)(eq - entry) : strlen(entry);
            size_t j = 0;
            while (j < count && !(strncmp(env[j], entry, keylen) == 0 && env[j][keylen] == '='))
                j++;
            char *copy = cb_xstrdup(entry);
            if (j < count) {
                free(env[j]);
                env[j] = copy;
            } else {
                env[count++] = copy;
            }
        }
    }
    return env;
}

/* ---- on the host ------------------------------------------------------------------------- */

/* argv[0] as a path: as given when it holds a '/', else the first executable match in PATH. */
static char *s_resolve_program(const char *prog, char *const *env)
{
    if (strchr(prog, '/'))
        return cb_xstrdup(prog);
    const char *path = "/usr/local/bin:/usr/bin:/bin";
    for (size_t i = 0; env[i]; i++)
        if (strncmp(env[i], "PATH=", 5) == 0)
            path = env[i] + 5;
    cleanup_free char *copy = cb_xstrdup(path);
    for (char *save = NULL, *dir = strtok_r(copy, ":", &save); dir;
         dir = strtok_r(NULL, ":", &save)) {
        char *candidate = cb_strdup_printf("%s/%s", *dir ? dir : ".", prog);
        if (access(candidate, X_OK) == 0)
            return candidate;
        free(candidate);
    }
    return NULL;
}

/* In the child between fork and exec only async-signal-safe calls are made and nothing is
 * allocated; a failure writes {step, errno} to the error pipe and exits. */
enum { KG_STEP_SESSION = 1, KG_STEP_PDEATHSIG, KG_STEP_STDIO, KG_STEP_CHDIR, KG_STEP_EXEC };
static const char *s_step_names[] = {"",      "setsid", "set parent-death signal", "redirect stdio",
                                     "chdir", "exec"};

__attribute__((noreturn)) static void s_child_fail(int fd, int step)
{
    int report[2] = {step, errno};
    ssize_t ignored = write(fd, report, sizeof report);
    (void)ignored;
    _exit(127);
}

static pid_t s_fork_exec(const char *path, const kg_proc_opts_t *o, cb_error_t *err)
{
    int errpipe[2];
    if (pipe2(errpipe, O_CLOEXEC) < 0)
        return cb_error_make(err, errno, "pipe");
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        int saved = errno;
        close(errpipe[0]);
        close(errpipe[1]);
        return cb_error_make(err, saved, "fork");
    }
    if (pid == 0) {
        int fd = errpipe[1];
        sigset_t all;
        sigemptyset(&all);
        sigprocmask(SIG_SETMASK, &all, NULL);
        signal(SIGPIPE, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        if (setsid() < 0)
            s_child_fail(fd, KG_STEP_SESSION);
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
            s_child_fail(fd, KG_STEP_PDEATHSIG);
        if (getppid() != parent)
            _exit(127); /* the gateway is already gone */
        const int stdio[3] = {o->stdin_fd, o->stdout_fd, o->stderr_fd};
        for (int i = 0; i < 3; i++) {
            int src = stdio[i] >= 0 ? stdio[i] : open("/dev/null", i == 0 ? O_RDONLY : O_WRONLY);
            if (src < 0 || dup2(src, i) < 0)
                s_child_fail(fd, KG_STEP_STDIO);
        }
        if (o->cwd && chdir(o->cwd) < 0)
            s_child_fail(fd, KG_STEP_CHDIR);
        closefrom(3); /* the error pipe is close-on-exec and stays open until exec */
        execve(path, o->argv, o->env);
        s_child_fail(fd, KG_STEP_EXEC);
    }
    close(errpipe[1]);
    int report[2];
    ssize_t n;
    do
        n = read(errpipe[0], report, sizeof report);
    while (n < 0 && errno == EINTR);
    close(errpipe[0]);
    if (n == (ssize_t)sizeof report) {
        waitpid(pid, NULL, 0);
        int step = report[0] > 0 && report[0] <= KG_STEP_EXEC ? report[0] : KG_STEP_EXEC;
        return cb_error_make(err, report[1], "start '%s': %s", path, s_step_names[step]);
    }
    return pid;
}

static kg_proc_t *s_start_host(kg_proc_t *p, const kg_proc_opts_t *o, cb_error_t *err)
{
    cleanup_free char *path = s_resolve_program(o->argv[0], o->env);
    if (!path) {
        cb_error_fail(err, CB_ERR_NOT_FOUND, "program '%s' not found in PATH", o->argv[0]);
        return NULL;
    }
    p->pid = s_fork_exec(path, o, err);
    if (p->pid < 0)
        return NULL;
    p->pidfd = pidfd_open(p->pid, 0);
    if (p->pidfd < 0) {
        cb_error_make(err, errno, "pidfd_open");
        kill(p->pid, SIGKILL);
        waitpid(p->pid, NULL, 0);
        return NULL;
    }
    return p;
}

/* ---- both -------------------------------------------------------------------------------- */

kg_proc_t *kg_proc_start(const kg_proc_opts_t *opts, cb_error_t *err)
{
    kg_proc_t *p = cb_xcalloc(1, sizeof *p);
    p->pidfd = -1;
    p->keep_group = opts->keep_group;
    if (opts->sandbox) {
        sbx_spawn_opts_t so = {.argv = (const char *const *)opts->argv,
                               .env = (const char *const *)opts->env,
                               .cwd = opts->cwd,
                               .stdin_fd = opts->stdin_fd,
                               .stdout_fd = opts->stdout_fd,
                               .stderr_fd = opts->stderr_fd,
                               .controlling_tty = opts->controlling_tty};
        p->sbx_proc = sbx_spawn(opts->sandbox->sbx, &so, err);
        if (p->sbx_proc) {
            p->pid = sbx_proc_pid(p->sbx_proc);
            return p;
        }
    } else if (s_start_host(p, opts, err)) {
        return p;
    }
    free(p);
    return NULL;
}

pid_t kg_proc_pid(const kg_proc_t *p) { return p->pid; }
pid_t kg_proc_inside_pid(const kg_proc_t *p)
{
    return p->sbx_proc ? sbx_proc_inside_pid(p->sbx_proc) : p->pid;
}
int kg_proc_pidfd(const kg_proc_t *p)
{
    return p->sbx_proc ? sbx_proc_pidfd(p->sbx_proc) : p->pidfd;
}

int kg_proc_signal(kg_proc_t *p, int sig)
{
    if (p->reaped)
        return 0;
    if (p->sbx_proc) {
        cb_error_t err = {0};
        int rc = sbx_proc_signal(p->sbx_proc, sig, true, &err);
        errno = rc < 0 ? err.errnum : 0;
        return rc;
    }
    return killpg(p->pid, sig) < 0 && errno != ESRCH ? -1 : 0;
}

int kg_proc_reap(kg_proc_t *p, kg_proc_exit_t *out, cb_error_t *err)
{
    if (!p->reaped) {
        /* The leader is a zombie until reaped, so its pid still names the group: sweep it, so
         * nothing it started outlives it, unless the group is meant to (a command's background
         * jobs live on until the sandbox ends or they are killed: see command.c). */
        if (p->pid > 0 && !p->keep_group)
            killpg(p->pid, SIGKILL);
        if (p->sbx_proc) {
            sbx_exit_t ex;
            if (sbx_proc_wait(p->sbx_proc, &ex, 5000, err) < 0)
                return -1;
            p->exit = (kg_proc_exit_t){ex.exited, ex.code, ex.signal, ex.oom};
        } else {
            siginfo_t info = {0};
            int rc;
            do
                rc = waitid(P_PIDFD, (id_t)p->pidfd, &info, WEXITED);
            while (rc < 0 && errno == EINTR);
            if (rc < 0)
                return cb_error_make(err, errno, "reap process %d", (int)p->pid);
            bool exited = info.si_code == CLD_EXITED;
            p->exit = (kg_proc_exit_t){exited, exited ? info.si_status : 0,
                                       exited ? 0 : info.si_status, false};
        }
        p->reaped = true;
    }
    if (out)
        *out = p->exit;
    return 0;
}

char *kg_proc_exit_describe(const kg_proc_exit_t *ex)
{
    if (ex->exited)
        return cb_strdup_printf("exited with code %d", ex->code);
    const char *name = sigabbrev_np(ex->signal);
    return cb_strdup_printf("killed by SIG%s%s", name ? name : "?",
                            ex->oom ? " (out of memory: the sandbox's memory limit was reached)"
                                    : "");
}

void kg_proc_destroy(kg_proc_t **p_p)
{
    kg_proc_t *p = p_p ? *p_p : NULL;
    if (!p)
        return;
    *p_p = NULL;
    if (!p->reaped) {
        kg_proc_signal(p, SIGKILL);
        pidfd_send_signal(kg_proc_pidfd(p), SIGKILL, NULL, 0); /* the leader, even off its group */
        cb_error_t err = {0};
        if (kg_proc_reap(p, NULL, &err) < 0)
            cb_warn("process %d: %s", (int)p->pid, err.msg);
    }
    sbx_proc_destroy(&p->sbx_proc);
    if (p->pidfd >= 0)
        close(p->pidfd);
    free(p);
}

/* ---- every process of a sandbox (kg/command.h) --------------------------------------------
 *
 * The sandbox's processes are the host processes in the pid namespace of its init. They are
 * found by walking the host's /proc and comparing each process's ns/pid (device and inode)
 * with the init's; a process's pid inside is the last field of NSpid in its status. All of it
 * is written by the kernel: the only text a process controls is its argv (cmdline) and its
 * name, which are shown (cut, made valid UTF-8) and never parsed for anything. A process may
 * end or be replaced while we read: each one is read through a directory fd of /proc/<pid>,
 * and one that vanishes midway is skipped. */

typedef struct {
    pid_t host, inside, host_ppid, host_pgrp, inside_pgrp;
    char state;
    unsigned long long start_ticks;
    char name[64];
} s_ps_entry_t;

/* The identity (st_dev, st_ino) of a pid namespace, from a /proc/<pid> directory fd. */
static int s_pidns_at(int dirfd, dev_t *dev, ino_t *ino)
{
    struct stat st;
    if (fstatat(dirfd, "ns/pid", &st, 0) < 0)
        return -1;
    *dev = st.st_dev;
    *ino = st.st_ino;
    return 0;
}

/* Read a small /proc file under dirfd, NUL-terminated, at most cap - 1 bytes. */
static ssize_t s_read_small(int dirfd, const char *name, char *buf, size_t cap)
{
    cleanup_close int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0)
        return -1;
    size_t len = 0;
    while (len + 1 < cap) {
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    return (ssize_t)len;
}

/* Fill e from stat and status under dirfd. The name in stat sits in parentheses and may hold
 * anything, ')' too: the fields after it start after the last ')'. */
static int s_ps_read(int dirfd, s_ps_entry_t *e)
{
    char buf[4096];
    if (s_read_small(dirfd, "stat", buf, sizeof buf) <= 0)
        return -1;
    char *open = strchr(buf, '('), *close_paren = strrchr(buf, ')');
    if (!open || !close_paren || close_paren < open)
        return -1;
    snprintf(e->name, sizeof e->name, "%.*s", (int)(close_paren - open - 1), open + 1);
    /* fields 3.. : state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt
     * utime stime cutime cstime priority nice num_threads itrealvalue starttime */
    char state = 0;
    int ppid = 0, pgrp = 0;
    unsigned long long start = 0;
    if (sscanf(close_paren + 1,
               " %c %d %d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu",
               &state, &ppid, &pgrp, &start) != 4)
        return -1;
    e->state = state;
    e->host_ppid = ppid;
    e->host_pgrp = pgrp;
    e->start_ticks = start;
    if (s_read_small(dirfd, "status", buf, sizeof buf) <= 0)
        return -1;
    /* NSpid and NSpgid: the last field of each is the number inside the sandbox. */
    e->inside = e->inside_pgrp = 0;
    for (char *line = buf; line && *line;) {
        char *eol = strchr(line, '\n');
        if (eol)
            *eol = '\0';
        pid_t *field = strncmp(line, "NSpid:", 6) == 0    ? &e->inside
                       : strncmp(line, "NSpgid:", 7) == 0 ? &e->inside_pgrp
                                                          : NULL;
        const char *last = field ? strrchr(line, '\t') : NULL;
        if (last)
            *field = (pid_t)strtol(last + 1, NULL, 10);
        line = eol ? eol + 1 : NULL;
    }
    return e->inside > 0 ? 0 : -1;
}

/* Walk the host's /proc for the processes in sb's pid namespace. Caller owns return value
 * (free); *count set. */
static s_ps_entry_t *s_ps_scan(kg_sandbox_t *sb, size_t *count, cb_error_t *err)
{
    *count = 0;
    char path[64];
    snprintf(path, sizeof path, "/proc/%d", (int)sbx_init_pid(sb->sbx));
    cleanup_close int initfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    dev_t ns_dev;
    ino_t ns_ino;
    if (initfd < 0 || s_pidns_at(initfd, &ns_dev, &ns_ino) < 0)
        return cb_error_make(err, errno, "the pid namespace of sandbox %.8s", sb->id), NULL;
    cleanup_closedir DIR *proc = opendir("/proc");
    if (!proc)
        return cb_error_make(err, errno, "open /proc"), NULL;
    size_t cap = 64, n = 0;
    s_ps_entry_t *list = cb_xcalloc(cap, sizeof *list);
    for (struct dirent *d; (d = readdir(proc));) {
        char *end = NULL;
        long pid = strtol(d->d_name, &end, 10);
        if (pid <= 0 || *end)
            continue;
        cleanup_close int fd = openat(dirfd(proc), d->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        dev_t dev;
        ino_t ino;
        if (fd < 0 || s_pidns_at(fd, &dev, &ino) < 0 || dev != ns_dev || ino != ns_ino)
            continue;
        s_ps_entry_t e = {.host = (pid_t)pid};
        if (s_ps_read(fd, &e) < 0)
            continue;
        if (n == cap)
            list = cb_xrealloc(list, (cap *= 2) * sizeof *list);
        list[n++] = e;
    }
    *count = n;
    return list;
}

static int s_ps_cmp(const void *a, const void *b)
{
    const s_ps_entry_t *x = a, *y = b;
    return (x->inside > y->inside) - (x->inside < y->inside);
}

/* The boot time, seconds since the epoch (btime in /proc/stat). */
static long long s_boot_time(void)
{
    cleanup_fclose FILE *f = fopen("/proc/stat", "re");
    char line[256];
    long long btime = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "btime %lld", &btime) == 1)
            break;
    return btime;
}

static json_t *s_ps_cmdline(pid_t host, const char *name)
{
    char path[64], buf[4097];
    snprintf(path, sizeof path, "/proc/%d", (int)host);
    cleanup_close int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? s_read_small(fd, "cmdline", buf, sizeof buf) : -1;
    if (n <= 0) { /* a zombie or a kernel-made process: its name in brackets, as ps does */
        cleanup_free char *shown = cb_strdup_printf("[%s]", name);
        size_t len = 0;
        cleanup_free char *text = cb_text_lossy(shown, strlen(shown), &len);
        return json_stringn(text, len);
    }
    while (n > 0 && buf[n - 1] == '\0')
        n--;
    for (ssize_t i = 0; i < n; i++)
        if (buf[i] == '\0')
            buf[i] = ' ';
    size_t len = 0;
    cleanup_free char *text = cb_text_lossy(buf, (size_t)n, &len);
    return json_stringn(text, len);
}

json_t *kg_sandbox_processes(kg_sandbox_t *sb, cb_error_t *err)
{
    size_t n = 0;
    cleanup_free s_ps_entry_t *list = s_ps_scan(sb, &n, err);
    if (!list)
        return NULL;
    qsort(list, n, sizeof *list, s_ps_cmp);
    long long btime = s_boot_time();
    long ticks = sysconf(_SC_CLK_TCK);
    json_t *out = json_array();
    for (size_t i = 0; out && i < n; i++) {
        const s_ps_entry_t *e = &list[i];
        pid_t ppid = 0; /* the init's parent is outside: 0, as in the sandbox's own /proc */
        for (size_t j = 0; j < n; j++)
            if (list[j].host == e->host_ppid)
                ppid = list[j].inside;
        const char *command_id = NULL;
        for (kg_command_t *c = zhashx_first(sb->commands); c; c = zhashx_next(sb->commands))
            if (kg_command_host_pid(c) == e->host)
                command_id = kg_command_id(c);
        char started[40] = "";
        if (btime > 0 && ticks > 0) {
            time_t t = (time_t)(btime + (long long)(e->start_ticks / (unsigned long long)ticks));
            struct tm tm;
            if (gmtime_r(&t, &tm))
                strftime(started, sizeof started, "%Y-%m-%dT%H:%M:%SZ", &tm);
        }
        char state[2] = {e->state ? e->state : '?', '\0'};
        size_t name_len = 0;
        cleanup_free char *name = cb_text_lossy(e->name, strlen(e->name), &name_len);
        json_t *row = json_pack("{s:i, s:i, s:o, s:s%, s:s, s:s?, s:s?}", "pid", (int)e->inside,
                                "ppid", (int)ppid, "command", s_ps_cmdline(e->host, e->name),
                                "name", name, name_len, "state", state, "started_at",
                                started[0] ? started : NULL, "command_id", command_id);
        if (!row || json_array_append_new(out, row) < 0)
            json_decref(out), out = NULL;
    }
    if (!out)
        cb_error_fail(err, CB_ERR_INTERNAL, "out of memory listing processes");
    return out;
}

/* Signal the process at host pid, checked (after a pidfd holds it) to be the process of sb
 * that scan entry e describes. 1: sent; 0: it has ended or is not that process; -1: error. */
static int s_signal_checked(kg_sandbox_t *sb, const s_ps_entry_t *e, int sig, cb_error_t *err)
{
    /* Hold the process by a pidfd, then check again that the host pid is still this sandbox's
     * process: while the pidfd's process is not reaped (the probe with signal 0 says so after
     * the check), the host pid cannot have been reused, so the check was about that process. */
    cleanup_close int pidfd = pidfd_open(e->host, 0);
    if (pidfd < 0)
        return 0;
    char path[64];
    snprintf(path, sizeof path, "/proc/%d", (int)e->host);
    cleanup_close int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    snprintf(path, sizeof path, "/proc/%d", (int)sbx_init_pid(sb->sbx));
    cleanup_close int initfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    dev_t d1, d2;
    ino_t i1, i2;
    s_ps_entry_t again = {.host = e->host};
    bool same = fd >= 0 && initfd >= 0 && s_pidns_at(fd, &d1, &i1) == 0 &&
                s_pidns_at(initfd, &d2, &i2) == 0 && d1 == d2 && i1 == i2 &&
                s_ps_read(fd, &again) == 0 && again.inside == e->inside &&
                again.host_pgrp == e->host_pgrp && pidfd_send_signal(pidfd, 0, NULL, 0) == 0;
    if (!same)
        return 0;
    if (pidfd_send_signal(pidfd, sig, NULL, 0) < 0)
        return errno == ESRCH ? 0
                              : cb_error_make(err, errno, "signal process %d in sandbox %.8s",
                                              (int)e->inside, sb->id);
    return 1;
}

/* Signal every member of a process group of sb, named by its id on the host (inside false) or
 * in the sandbox (inside true). Returns how many were signalled, or -1. */
static int s_signal_group(kg_sandbox_t *sb, pid_t pgid, bool inside, int sig, cb_error_t *err)
{
    size_t n = 0;
    cleanup_free s_ps_entry_t *list = s_ps_scan(sb, &n, err);
    if (!list)
        return -1;
    int sent = 0;
    for (size_t i = 0; i < n; i++) {
        if ((inside ? list[i].inside_pgrp : list[i].host_pgrp) != pgid || list[i].inside == 1)
            continue;
        int rc = s_signal_checked(sb, &list[i], sig, err);
        if (rc < 0)
            return -1;
        sent += rc;
    }
    return sent;
}

int kg_sandbox_signal_group(kg_sandbox_t *sb, pid_t host_pgid, int sig, cb_error_t *err)
{
    return s_signal_group(sb, host_pgid, false, sig, err);
}

int kg_sandbox_signal_group_inside(kg_sandbox_t *sb, pid_t pgid, int sig, cb_error_t *err)
{
    return s_signal_group(sb, pgid, true, sig, err);
}

int kg_sandbox_signal_pid(kg_sandbox_t *sb, pid_t pid, int sig, cb_error_t *err)
{
    if (pid == 1)
        return cb_error_fail(
            err, CB_ERR_INVALID,
            "pid 1 is the sandbox's init; it ends with the sandbox (sandbox_delete)");
    if (pid <= 0)
        return cb_error_fail(err, CB_ERR_INVALID, "no process has pid %d", (int)pid);
    size_t n = 0;
    cleanup_free s_ps_entry_t *list = s_ps_scan(sb, &n, err);
    if (!list)
        return -1;
    const s_ps_entry_t *e = NULL;
    for (size_t i = 0; i < n && !e; i++)
        if (list[i].inside == pid)
            e = &list[i];
    int rc = e ? s_signal_checked(sb, e, sig, err) : 0;
    if (rc == 0)
        return cb_error_fail(err, CB_ERR_NOT_FOUND, "no process with pid %d in sandbox %.8s",
                             (int)pid, sb->id);
    return rc < 0 ? -1 : 0;
}
