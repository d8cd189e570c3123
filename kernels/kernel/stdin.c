/* kernels/kernel/stdin.c: notice when a process blocks reading the stdin pipe we serve.
 *
 * A program run from a cell (bash's `read`, python's input(), a compiled program's scanf) reads
 * its fd 0, which is a pipe the kernel holds the write end of. Nothing tells us that it waits, so
 * while a cell runs a timer looks every S_PERIOD_MS: for every process whose /proc/<pid>/fd/0 is
 * that pipe ("pipe:[inode]"), it reads /proc/<pid>/task/<tid>/syscall of each thread; a thread
 * blocked in read (0), pread64 (17) or readv (19) on fd 0 while the pipe holds nothing (FIONREAD
 * on our copy of the read end) is waiting for a line. Then the core asks the client for one
 * (input_request; the answer and a newline go into the pipe), or, when the cell does not allow
 * stdin, fails the cell with StdinNotImplementedError and interrupts it. A reader still blocked
 * after the cell was interrupted (bash's `read` resumes after its INT trap ran) is given an empty
 * line, so the interrupted cell can end.
 *
 * /proc/<pid>/task/<tid>/syscall needs ptrace access to the process; where it is unreadable the
 * watcher says so once in the log and finds nothing.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cb/cleanup.h"
#include "cb/log.h"
#include "kernel.h"

#define S_PERIOD_MS 50

static bool s_is_digits(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

/* Whether the thread's current syscall is a read of fd 0. */
static bool s_thread_reads_stdin(kn_kernel_t *k, const char *pid, const char *tid)
{
    char path[600];
    snprintf(path, sizeof path, "/proc/%s/task/%s/syscall", pid, tid);
    cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
    char buf[128];
    ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
    if (n < 0) {
        if ((errno == EACCES || errno == EPERM) && !k->syscall_warned) {
            k->syscall_warned = true;
            cb_warn("kernel: %s is unreadable (%s): programs waiting for stdin cannot be noticed",
                    path, strerror(errno));
        }
        return false;
    }
    buf[n] = '\0';
    char *end;
    long nr = strtol(buf, &end, 10);
    if (end == buf || (nr != 0 && nr != 17 && nr != 19))
        return false;
    return strncmp(end, " 0x0 ", 5) == 0;
}

/* A process reading from p's pipe while it is empty? */
static bool s_someone_waits(kn_kernel_t *k, kn_proc_t *p)
{
    char want[48];
    snprintf(want, sizeof want, "pipe:[%lu]", kn_proc_stdin_inode(p));
    cleanup_closedir DIR *proc = opendir("/proc");
    if (!proc)
        return false;
    struct dirent *de;
    while ((de = readdir(proc))) {
        if (!s_is_digits(de->d_name))
            continue;
        char path[320], link[64];
        snprintf(path, sizeof path, "/proc/%s/fd/0", de->d_name);
        ssize_t n = readlink(path, link, sizeof link - 1);
        if (n <= 0)
            continue;
        link[n] = '\0';
        if (strcmp(link, want) != 0)
            continue;
        snprintf(path, sizeof path, "/proc/%s/task", de->d_name);
        cleanup_closedir DIR *tasks = opendir(path);
        struct dirent *te;
        while (tasks && (te = readdir(tasks)))
            if (s_is_digits(te->d_name) && s_thread_reads_stdin(k, de->d_name, te->d_name))
                return true;
    }
    return false;
}

static int s_on_tick(zloop_t *loop, int timer_id, void *arg)
{
    kn_kernel_t *k = arg;
    if (!k->cell || k->input_asker != KN_INPUT_NONE)
        return k->stopping ? -1 : 0;
    for (kn_proc_t *p = k->procs; p; p = kn_proc_next(p)) {
        if (!kn_proc_stdin_served(p) || kn_proc_stdin_pending(p) != 0)
            continue;
        if (!s_someone_waits(k, p))
            continue;
        if (kn_cell_interrupted(k->cell))
            kn_proc_stdin_write(p, "\n", 1); /* a reader that outlived the interrupt (bash's
                                                read restarts after its trap): end its line */
        else if (kn_cell_allow_stdin(k->cell))
            kn_stdin_ask(k, p);
        else
            kn_stdin_refuse(k);
        break;
    }
    return k->stopping ? -1 : 0;
}

void kn_stdin_start(kn_kernel_t *k)
{
    if (k->stdin_timer >= 0)
        return;
    bool served = false;
    for (kn_proc_t *p = k->procs; p; p = kn_proc_next(p))
        served = served || kn_proc_stdin_served(p);
    if (!served)
        return; /* kn_proc_start calls again for a process started during the cell */
    k->stdin_timer = zloop_timer(k->loop, S_PERIOD_MS, 0, s_on_tick, k);
}

void kn_stdin_stop(kn_kernel_t *k)
{
    if (k->stdin_timer >= 0 && k->loop)
        zloop_timer_end(k->loop, k->stdin_timer);
    k->stdin_timer = -1;
}
