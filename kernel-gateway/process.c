/* process.c: starting, signalling and reaping the processes the gateway runs (kernels and
 * commands), whether inside a sandbox or, with no_sandbox, directly on the host.
 *
 * Either way the process leads its own session and process group (so a signal to the group
 * reaches everything it started), dies with the gateway, and is watched through a pidfd that
 * the gateway's loop polls. Inside a sandbox the sandbox's init forks it and reports its exit
 * status; on the host we fork it ourselves and reap it with waitid on the pidfd.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/pidfd.h>
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
    if (opts->sandbox) {
        sbx_spawn_opts_t so = {.argv = (const char *const *)opts->argv,
                               .env = (const char *const *)opts->env,
                               .cwd = opts->cwd,
                               .stdin_fd = opts->stdin_fd,
                               .stdout_fd = opts->stdout_fd,
                               .stderr_fd = opts->stderr_fd};
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
         * nothing it started outlives it. (Inside a sandbox the init does this too, since the
         * host pid of a process that ended at once may be unknown: pid -1.) */
        if (p->pid > 0)
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
