/* kernels/kernel/proc.c: the processes drivers start (kn_proc_start), their output and their end.
 *
 * A process gets its own process group (so an interrupt reaches everything it started), pipes for
 * stdout and stderr that the loop reads and forwards to the running cell as stream messages (at
 * most KN_STREAM_CHUNK bytes each, a UTF-8 sequence split by a read kept for the next one), and
 * on stdin either a pipe the core serves (stdin.c watches who reads it) or /dev/null. The fds a
 * driver passes go in as 3, 4, ...; every other fd is closed at exec.
 *
 * The child allocates nothing between fork and exec: a failed exec is reported through a
 * close-on-exec pipe as an errno. Children are reaped on SIGCHLD (core.c's signalfd); on_exit runs
 * once both output pipes reached end of file and the process was reaped, so every byte it wrote
 * is forwarded before the driver hears it ended (or S_LINGER_MS after it was reaped, when a
 * process it left behind keeps the pipes open).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cb/alloc.h"
#include "cb/log.h"
#include "kernel.h"

#define S_MAX_EXTRA_FDS 16
#define S_HIGH_FD 64 /* where the child parks its fds before placing them */
#define S_LINGER_MS 500

extern char **environ;

struct kn_proc {
    kn_kernel_t *k;
    pid_t pid;
    int out_fd[2]; /* [0] stdout, [1] stderr: the parent's read ends, -1 after EOF */
    char carry[2][4];
    size_t carry_len[2];
    int in_w;             /* served stdin: our write end, or -1 */
    int in_r;             /* served stdin: our copy of the read end (FIONREAD), or -1 */
    unsigned long in_ino; /* the served pipe's inode */
    bool reaped;
    int64_t reaped_ms; /* when it was reaped (cb_now_ms) */
    int status;
    void (*on_exit)(kn_proc_t *p, int status, void *arg);
    void *arg;
    kn_proc_t *next;
};

pid_t kn_proc_pid(const kn_proc_t *p) { return p->pid; }
kn_proc_t *kn_proc_next(const kn_proc_t *p) { return p->next; }
void kn_proc_detach(kn_proc_t *p) { p->on_exit = NULL; }
int kn_proc_stderr_fd(const kn_proc_t *p) { return p->out_fd[1]; }
bool kn_proc_stdin_served(const kn_proc_t *p) { return p->in_w >= 0; }
unsigned long kn_proc_stdin_inode(const kn_proc_t *p) { return p->in_ino; }

void kn_proc_signal(kn_proc_t *p, int sig)
{
    if (!p->reaped && kill(-p->pid, sig) < 0 && errno == ESRCH)
        kill(p->pid, sig);
}

int kn_proc_stdin_pending(const kn_proc_t *p)
{
    int n = 0;
    if (p->in_r < 0 || ioctl(p->in_r, FIONREAD, &n) < 0)
        return -1;
    return n;
}

int kn_proc_stdin_write(kn_proc_t *p, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(p->in_w, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* How many bytes at the end of buf[0..len) are an incomplete UTF-8 sequence (0..3). */
static size_t s_utf8_tail(const unsigned char *buf, size_t len)
{
    for (size_t back = 1; back <= 3 && back <= len; back++) {
        unsigned char c = buf[len - back];
        if ((c & 0xC0) == 0x80)
            continue; /* a continuation byte: look further back */
        size_t need = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
        return need > back ? back : 0;
    }
    return 0;
}

static void s_forward(kn_proc_t *p, int which, const char *data, size_t len)
{
    if (p->k->cell)
        kn_cell_stream(p->k->cell, which ? "stderr" : "stdout", data, len);
}

static void s_maybe_finish(kn_proc_t *p)
{
    if (p->out_fd[0] >= 0 || p->out_fd[1] >= 0 || !p->reaped)
        return;
    kn_kernel_t *k = p->k;
    for (kn_proc_t **pp = &k->procs; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    if (k->input_proc == p)
        k->input_proc = NULL;
    if (p->on_exit)
        p->on_exit(p, p->status, p->arg);
    if (p->in_w >= 0)
        close(p->in_w);
    if (p->in_r >= 0)
        close(p->in_r);
    free(p);
}

/* Read once from stdout (which 0) or stderr (1). Returns 1 when more may come at once, 0 when
 * the pipe is empty for now (or, when draining, at end of file: the watch handles that), -1 at
 * end of file (the fd is then closed and unwatched). */
static int s_read_once(kn_proc_t *p, int which, bool draining)
{
    int fd = p->out_fd[which];
    if (fd < 0)
        return -1;
    char buf[KN_STREAM_CHUNK];
    size_t have = p->carry_len[which];
    memcpy(buf, p->carry[which], have);
    ssize_t n = read(fd, buf + have, sizeof buf - have);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    if (n <= 0 && draining)
        return 0;
    if (n <= 0) {
        s_forward(p, which, buf, have); /* a truncated sequence: U+FFFD */
        p->carry_len[which] = 0;
        kn_unwatch_fd(p->k, fd);
        close(fd);
        p->out_fd[which] = -1;
        return -1;
    }
    size_t len = have + (size_t)n;
    size_t tail = s_utf8_tail((const unsigned char *)buf, len);
    s_forward(p, which, buf, len - tail);
    memcpy(p->carry[which], buf + len - tail, tail);
    p->carry_len[which] = tail;
    return 1;
}

static int s_on_output(kn_kernel_t *k, int fd, void *arg)
{
    kn_proc_t *p = arg;
    int which = fd == p->out_fd[1];
    if (s_read_once(p, which, false) < 0) {
        s_maybe_finish(p); /* frees p */
        return 0;          /* already unwatched */
    }
    return 0;
}

void kn_proc_drain(kn_proc_t *p)
{
    for (int which = 0; which < 2; which++)
        while (s_read_once(p, which, true) > 0)
            ;
}

/* A process that ended while something it started still holds its stdout or stderr (a
 * background job) would never reach end of file there: S_LINGER_MS after it was reaped, what the
 * pipes hold is forwarded and they are closed, so on_exit comes. */
static int s_on_linger(zloop_t *loop, int timer_id, void *arg)
{
    kn_kernel_t *k = arg;
    int64_t now = cb_now_ms();
    for (kn_proc_t *p = k->procs, *next; p; p = next) {
        next = p->next;
        if (!p->reaped || now - p->reaped_ms < S_LINGER_MS)
            continue;
        kn_proc_drain(p);
        for (int i = 0; i < 2; i++)
            if (p->out_fd[i] >= 0) {
                kn_unwatch_fd(k, p->out_fd[i]);
                close(p->out_fd[i]);
                p->out_fd[i] = -1;
            }
        s_maybe_finish(p); /* frees p */
    }
    return k->stopping ? -1 : 0;
}

void kn_procs_reap(kn_kernel_t *k)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (kn_proc_t *p = k->procs; p; p = p->next)
            if (p->pid == pid) {
                p->reaped = true;
                p->reaped_ms = cb_now_ms();
                p->status = status;
                if (p->out_fd[0] >= 0 || p->out_fd[1] >= 0) /* see s_on_linger */
                    zloop_timer(k->loop, S_LINGER_MS + 10, 1, s_on_linger, k);
                s_maybe_finish(p);
                break;
            }
    }
}

void kn_procs_free_all(kn_kernel_t *k)
{
    while (k->procs) {
        kn_proc_t *p = k->procs;
        k->procs = p->next;
        kn_proc_signal(p, SIGKILL);
        for (int i = 0; i < 2; i++)
            if (p->out_fd[i] >= 0)
                close(p->out_fd[i]);
        if (p->in_w >= 0)
            close(p->in_w);
        if (p->in_r >= 0)
            close(p->in_r);
        if (!p->reaped)
            waitpid(p->pid, NULL, 0);
        free(p);
    }
}

/* In the child: place fds, reset signals, exec. Allocates nothing; reports errno on errfd. */
static void __attribute__((noreturn))
s_child(const kn_proc_opts_t *o, int in_fd, int out_fd, int err_fd, int n_extra, int errfd)
{
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    signal(SIGPIPE, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGCHLD, SIG_DFL);
    setpgid(0, 0);

    int src[3 + S_MAX_EXTRA_FDS];
    src[0] = in_fd;
    src[1] = out_fd;
    src[2] = err_fd;
    for (int i = 0; i < n_extra; i++)
        src[3 + i] = o->extra_fds[i];
    int n = 3 + n_extra;
    int high = fcntl(errfd, F_DUPFD_CLOEXEC, S_HIGH_FD + n);
    int e = errno;
    if (high < 0)
        goto fail;
    errfd = high;
    int parked[3 + S_MAX_EXTRA_FDS];
    for (int i = 0; i < n; i++) {
        parked[i] = fcntl(src[i], F_DUPFD_CLOEXEC, S_HIGH_FD);
        if (parked[i] < 0 || parked[i] >= errfd) {
            e = errno ? errno : EMFILE;
            goto fail;
        }
    }
    for (int i = 0; i < n; i++)
        if (dup2(parked[i], i) < 0) {
            e = errno;
            goto fail;
        }
    close_range((unsigned)n, (unsigned)errfd - 1, 0);
    close_range((unsigned)errfd + 1, ~0U, 0);
    if (o->cwd && chdir(o->cwd) < 0) {
        e = errno;
        goto fail;
    }
    if (strchr(o->argv[0], '/'))
        execve(o->argv[0], o->argv, o->env ? o->env : environ);
    else
        execvpe(o->argv[0], o->argv, o->env ? o->env : environ);
    e = errno;
fail:
    if (write(errfd, &e, sizeof e) < 0) {
        /* nothing more to do: the parent sees the pipe close without a report */
    }
    _exit(127);
}

static void s_close_all(int *fds, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (fds[i] >= 0) {
            close(fds[i]);
            fds[i] = -1;
        }
}

kn_proc_t *kn_proc_start(kn_kernel_t *k, const kn_proc_opts_t *o, cb_error_t *err)
{
    int n_extra = 0;
    while (o->extra_fds && o->extra_fds[n_extra] >= 0)
        n_extra++;
    if (!o->argv || !o->argv[0] || n_extra > S_MAX_EXTRA_FDS) {
        cb_error_fail(err, CB_ERR_INVALID, "kn_proc_start: no argv, or too many fds");
        return NULL;
    }
    /* [0,1] stdout, [2,3] stderr, [4,5] stdin, [6,7] exec report */
    int fds[8] = {-1, -1, -1, -1, -1, -1, -1, -1};
    if (pipe2(fds, O_CLOEXEC) < 0 || pipe2(fds + 2, O_CLOEXEC) < 0 ||
        pipe2(fds + 6, O_CLOEXEC) < 0 ||
        (o->stdin_served ? pipe2(fds + 4, O_CLOEXEC)
                         : (fds[4] = open("/dev/null", O_RDONLY | O_CLOEXEC))) < 0) {
        cb_error_make(err, errno, "pipes for %s", o->argv[0]);
        s_close_all(fds, 8);
        return NULL;
    }
    pid_t pid = fork();
    if (pid < 0) {
        cb_error_make(err, errno, "fork for %s", o->argv[0]);
        s_close_all(fds, 8);
        return NULL;
    }
    if (pid == 0)
        s_child(o, fds[4], fds[1], fds[3], n_extra, fds[7]);
    setpgid(pid, pid); /* also in the parent: no race with a signal sent right away */
    close(fds[1]);
    close(fds[3]);
    close(fds[7]);
    int in_r = fds[4];
    fds[1] = fds[3] = fds[7] = -1;

    int e = 0;
    ssize_t got;
    do
        got = read(fds[6], &e, sizeof e);
    while (got < 0 && errno == EINTR);
    close(fds[6]);
    if (got == (ssize_t)sizeof e) {
        waitpid(pid, NULL, 0);
        cb_error_make(err, e, "start %s", o->argv[0]);
        close(fds[0]);
        close(fds[2]);
        close(in_r);
        if (fds[5] >= 0)
            close(fds[5]);
        return NULL;
    }

    kn_proc_t *p = cb_xcalloc(1, sizeof *p);
    p->k = k;
    p->pid = pid;
    p->out_fd[0] = fds[0];
    p->out_fd[1] = fds[2];
    p->in_w = -1;
    p->in_r = -1;
    if (o->stdin_served) {
        p->in_w = fds[5];
        p->in_r = in_r;
        fcntl(p->in_w, F_SETFL, O_NONBLOCK);
        struct stat st;
        if (fstat(in_r, &st) == 0)
            p->in_ino = (unsigned long)st.st_ino;
    } else {
        close(in_r);
    }
    p->on_exit = o->on_exit;
    p->arg = o->arg;
    p->next = k->procs;
    k->procs = p;
    for (int i = 0; i < 2; i++) {
        fcntl(p->out_fd[i], F_SETFL, O_NONBLOCK);
        kn_watch_fd(k, p->out_fd[i], s_on_output, p);
    }
    if (o->stdin_served && k->cell)
        kn_stdin_start(k); /* started during a cell: watch its stdin from now on */
    return p;
}
