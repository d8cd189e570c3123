/* command.c: shell commands in a sandbox (kg.h, "Commands"), run as `/bin/bash -c COMMAND`.
 *
 * Why: besides Jupyter kernels, an assistant needs plain shell commands with their output
 * streamed, an exit code, stdin, a working directory, an environment and a timeout, without
 * ever blocking the gateway's single-threaded loop.
 *
 * How: kg_proc_start runs bash in its own process group with three pipes; the gateway's ends
 * are non-blocking and watched by zloop pollers, and so is the process's pidfd.
 *   - stdout and stderr are read as they arrive (at most KG_CMD_READ_BUDGET per wake-up, so a
 *     flood cannot starve the loop), kept up to 16 MiB each and handed to on_output.
 *   - stdin is a queue: what the pipe takes now is written at once, the rest when a ZMQ_POLLOUT
 *     poller says the pipe has room. The gateway ignores SIGPIPE (gateway.c), so a command
 *     that closed its stdin shows as EPIPE: the queue is dropped with a note.
 *   - the end: the pidfd turns readable; kg_proc_reap says how the process ended. Its process
 *     group is left alone (kg_proc_opts_t.keep_group): background jobs (`&`, nohup, setsid)
 *     live on until the sandbox ends or they are killed. Then each output pipe is read of what
 *     it holds right now (FIONREAD), not to EOF (a background job may hold it forever), and
 *     on_done follows with that result.
 *   - after the end: a background job that inherited stdout or stderr may go on writing (a
 *     server logging each request). Closing our ends would make every later write of it fail
 *     with EPIPE (or SIGPIPE kill it), so they stay open and watched: what arrives is kept in
 *     the command's ring (ring_bytes, or KG_CMD_LATE_RING for a command that had none), read
 *     with kg_command_read, never passed to a callback. A flooding job is read at most
 *     KG_CMD_LATE_RATE bytes a second: past that the pollers pause until the second is over
 *     (a timer), and the job waits in write() on a full pipe, like a program on a slow
 *     terminal; so it costs the loop a bounded share of its time, never a spin. A stream is
 *     closed at its end of file (no holder is left) or with the sandbox. kg_command_forget of
 *     such a command hides it (no longer found by id) and frees it after that end of file (on
 *     a fresh turn, kg_gateway_defer). A sandbox keeps at most KG_CMD_DRAINING_MAX such ended
 *     commands: past that, the oldest one's pipes are closed (its jobs then get EPIPE), so fds
 *     and memory stay bounded.
 *   - output is kept per stream: the first 16 MiB, or with ring_bytes the latest output, which
 *     grows to twice ring_bytes and is then cut back to ring_bytes (one memmove per ring_bytes
 *     of output, not one per read), so a flooding background job costs bounded memory.
 *   - with pty, the process runs on a terminal of the sandbox's own devpts (kg_sandbox_pty):
 *     our ends of stdin and stdout are the terminal's master (two fds of it, one per poller),
 *     stderr is unused. A master reads EIO once no process holds the terminal: its end of file.
 *   - timeout and kg_command_kill SIGKILL the group; the pidfd then ends the command as above.
 * An ended command keeps its output until kg_command_forget or the sandbox's removal.
 *
 * Callbacks: on_done runs last, so it may forget the command or remove the sandbox. on_output
 * may kill the command or feed its stdin, but must not forget it (refused with an error log)
 * nor remove its sandbox. kg_command_forget never calls on_done; removing the sandbox ends a
 * running command as "killed" and does call on_done.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "cb/alloc.h"
#include "cb/cleanup.h"
#include "cb/log.h"
#include "kg_private.h"

#define KG_CMD_STREAM_CAP (16u << 20)   /* kept per output stream */
#define KG_CMD_STDIN_CAP (16u << 20)    /* stdin queued and not yet written */
#define KG_CMD_READ_BUDGET (1u << 20)   /* bytes read per stream per wake-up */
#define KG_CMD_LATE_RING (64u << 10)    /* after the end, without ring_bytes: latest output kept */
#define KG_CMD_LATE_BUDGET (256u << 10) /* after the end: bytes read per stream per wake-up */
#define KG_CMD_LATE_RATE (4u << 20)     /* after the end: bytes read per second, both streams */
#define KG_CMD_DRAINING_MAX 64          /* ended commands per sandbox whose pipes stay open */

struct kg_command {
    kg_sandbox_t *sb;
    char id[37];
    char *command;
    char *origin;           /* kg_command_opts_t.origin, for the audit trail */
    json_t *env_keys;       /* the names of the extra environment variables (never their values) */
    kg_command_opts_t opts; /* callbacks, arg, timeout; its borrowed strings are not kept */
    kg_proc_t *proc;        /* NULL once ended (or never started) */
    pid_t pid;
    int pidfd;         /* kg_proc's (not ours to close); -1 once unwatched */
    int out_fd[2];     /* our ends of stdout, stderr; -1 once closed */
    int in_fd;         /* our end of stdin; -1 once closed */
    cb_buf_t in_queue; /* stdin not yet written: the bytes from in_off on */
    size_t in_off;
    bool in_close_after; /* close stdin once the queue is written */
    bool in_watched;     /* a ZMQ_POLLOUT poller waits on in_fd */
    int timer;           /* the timeout; -1 when none */
    bool timed_out, ended, dying, in_output;
    bool late;              /* the result is out: what arrives now is a background job's */
    bool hidden;            /* forgotten while its pipes stay open: freed at their end of file */
    int64_t late_window_us; /* the current second of KG_CMD_LATE_RATE, and bytes read in it */
    size_t late_bytes;
    int late_timer; /* the pollers pause until it runs; -1 when they do not */
    const char *status;
    kg_proc_exit_t exit; /* valid once ended (zero if the reap failed) */
    char signal[24];     /* "SIGKILL" when a signal ended it, else "" */
    int64_t started_us, ended_us;
    cb_buf_t streams[2];
    uint64_t dropped[2]; /* bytes cut from the front of streams[i] (ring_bytes) */
    bool truncated[2];
    pid_t inside_pid; /* its pid inside the sandbox, from the init (kg_command_inside_pid) */
    json_t *notes;
};

static const char *const s_stream_names[2] = {"stdout", "stderr"};

static zloop_t *s_loop(const kg_command_t *c) { return c->sb->gw->loop; }

__attribute__((format(printf, 2, 3))) static void s_note(kg_command_t *c, const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (json_array_append_new(c->notes, json_string(text)) < 0)
        cb_warn("command %.8s: could not add a note: %s", c->id, text);
}

/* ---- fds and pollers --------------------------------------------------------------------- */

/* Tolerant: a pipe whose other end closed polls as an error, which must reach the handler
 * (it reads EOF or writes EPIPE and closes the fd) instead of silently ending the poller. */
static int s_watch(kg_command_t *c, int fd, short events, zloop_fn *handler)
{
    zmq_pollitem_t item = {.fd = fd, .events = events};
    if (zloop_poller(s_loop(c), &item, handler, c) < 0)
        return -1;
    zloop_poller_set_tolerant(s_loop(c), &item);
    return 0;
}

static void s_unwatch(kg_command_t *c, int fd)
{
    zmq_pollitem_t item = {.fd = fd};
    zloop_poller_end(s_loop(c), &item);
}

static void s_close(kg_command_t *c, int *fd)
{
    if (*fd < 0)
        return;
    s_unwatch(c, *fd);
    close(*fd);
    *fd = -1;
}

/* A pipe whose child end is *child and whose non-blocking end *ours (the write end when
 * ours_writes). Both close-on-exec; the child's end is dup'ed onto 0, 1 or 2 by the start. */
static int s_pipe(int *child, int *ours, bool ours_writes, cb_error_t *err)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return cb_error_make(err, errno, "command pipe");
    *ours = p[ours_writes ? 1 : 0];
    *child = p[ours_writes ? 0 : 1];
    if (fcntl(*ours, F_SETFL, O_NONBLOCK) < 0)
        return cb_error_make(err, errno, "command pipe: non-blocking");
    return 0;
}

/* ---- output ------------------------------------------------------------------------------ */

/* Keep the latest output only: past twice ring_bytes, cut the buffer back to ring_bytes. */
static void s_ring_keep(kg_command_t *c, int which)
{
    cb_buf_t *buf = &c->streams[which];
    size_t ring = c->opts.ring_bytes;
    if (buf->len <= 2 * ring)
        return;
    size_t cut = buf->len - ring;
    memmove(buf->data, buf->data + cut, ring);
    buf->len = ring;
    buf->data[ring] = '\0';
    c->dropped[which] += cut;
    if (!c->truncated[which]) {
        c->truncated[which] = true;
        s_note(c, "%s is long; only its latest output is kept (see its offset)",
               s_stream_names[which]);
    }
}

static void s_take_output(kg_command_t *c, int which, const char *data, size_t n)
{
    cb_buf_t *buf = &c->streams[which];
    if (c->opts.ring_bytes) {
        cb_buf_append(buf, data, n);
        s_ring_keep(c, which);
        if (c->late)
            c->late_bytes += n;
        else if (c->opts.on_output) {
            c->in_output = true;
            c->opts.on_output(c, s_stream_names[which], data, n, c->opts.arg);
            c->in_output = false;
        }
        return;
    }
    size_t keep = buf->len + n > KG_CMD_STREAM_CAP ? KG_CMD_STREAM_CAP - buf->len : n;
    if (keep < n && !c->truncated[which]) {
        c->truncated[which] = true;
        s_note(c, "%s was longer than %u MiB; the rest was dropped", s_stream_names[which],
               KG_CMD_STREAM_CAP >> 20);
    }
    if (keep == 0)
        return;
    cb_buf_append(buf, data, keep);
    if (c->opts.on_output) {
        c->in_output = true;
        c->opts.on_output(c, s_stream_names[which], data, keep, c->opts.arg);
        c->in_output = false;
    }
}

/* Read one stream until it would block, or max bytes. Returns false once it is finished (end
 * of file or an error): the caller closes it. */
static bool s_read(kg_command_t *c, int which, size_t max)
{
    char chunk[65536];
    for (size_t total = 0; total < max && c->out_fd[which] >= 0;) {
        size_t want = max - total < sizeof chunk ? max - total : sizeof chunk;
        ssize_t n = read(c->out_fd[which], chunk, want);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return true;
        if (n < 0 && errno == EIO && c->opts.pty)
            return false; /* a terminal nobody holds any more: its end of file */
        if (n <= 0) {
            if (n < 0)
                cb_warn("command %.8s: read %s: %s", c->id, s_stream_names[which], strerror(errno));
            return false;
        }
        total += (size_t)n;
        s_take_output(c, which, chunk, (size_t)n);
    }
    return true;
}

static void s_drop_hidden(kg_command_t *c);
static int s_on_output(zloop_t *loop, zmq_pollitem_t *item, void *arg);

/* After the end: what may still be read in the current second (see KG_CMD_LATE_RATE). */
static size_t s_late_allowance(kg_command_t *c)
{
    int64_t now = cb_now_us();
    if (now - c->late_window_us >= 1000000) {
        c->late_window_us = now;
        c->late_bytes = 0;
    }
    return c->late_bytes < KG_CMD_LATE_RATE ? KG_CMD_LATE_RATE - c->late_bytes : 0;
}

static int s_on_late_resume(zloop_t *loop, int timer_id, void *arg)
{
    kg_command_t *c = arg;
    c->late_timer = -1; /* one-shot: over once it runs */
    for (int i = 0; i < 2; i++)
        if (c->out_fd[i] >= 0 && s_watch(c, c->out_fd[i], ZMQ_POLLIN, s_on_output) < 0)
            cb_warn("command %.8s: cannot watch its %s again", c->id, s_stream_names[i]);
    return kg_gateway_handler_result(c->sb->gw);
}

/* The second's allowance is spent: stop watching the pipes until it is over. */
static void s_late_pause(kg_command_t *c)
{
    if (c->late_timer > 0)
        return;
    int64_t left_us = c->late_window_us + 1000000 - cb_now_us();
    size_t ms = left_us > 0 ? (size_t)(left_us / 1000) + 1 : 1;
    c->late_timer = kg_timer_start(c->sb->gw, ms, 1, s_on_late_resume, c);
    if (c->late_timer < 0)
        return; /* out of memory: go on reading rather than never again */
    for (int i = 0; i < 2; i++)
        if (c->out_fd[i] >= 0)
            s_unwatch(c, c->out_fd[i]);
}

static int s_on_output(zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    kg_command_t *c = arg;
    kg_gateway_t *gw = c->sb->gw;
    int which = item->fd == c->out_fd[1];
    size_t budget = KG_CMD_READ_BUDGET;
    if (c->late) {
        size_t allowed = s_late_allowance(c);
        budget = allowed < KG_CMD_LATE_BUDGET ? allowed : KG_CMD_LATE_BUDGET;
    }
    if (budget && !s_read(c, which, budget))
        s_close(c, &c->out_fd[which]);
    if (c->late && c->out_fd[0] < 0 && c->out_fd[1] < 0) {
        kg_timer_stop(gw, &c->late_timer);
        if (c->hidden)
            s_drop_hidden(c); /* forgotten earlier: its last holder is gone */
    } else if (c->late && s_late_allowance(c) == 0) {
        s_late_pause(c);
    }
    return kg_gateway_handler_result(gw);
}

/* ---- stdin ------------------------------------------------------------------------------- */

/* Close stdin (EOF for the command). why: why bytes still queued are dropped; NULL when none
 * can be. */
static void s_stdin_close(kg_command_t *c, const char *why)
{
    if (c->in_fd < 0)
        return;
    size_t left = c->in_queue.len - c->in_off;
    if (left && why)
        s_note(c, "%zu bytes of stdin were not delivered: %s.", left, why);
    s_close(c, &c->in_fd);
    cb_buf_free(&c->in_queue);
    c->in_off = 0;
    c->in_watched = false;
}

static int s_on_stdin(zloop_t *loop, zmq_pollitem_t *item, void *arg);

/* Write what the pipe takes now; wait for room for the rest. Returns -1 when stdin had to be
 * closed with bytes undelivered (a note says why), else 0. */
static int s_stdin_pump(kg_command_t *c)
{
    while (c->in_fd >= 0 && c->in_off < c->in_queue.len) {
        ssize_t n = write(c->in_fd, c->in_queue.data + c->in_off, c->in_queue.len - c->in_off);
        if (n > 0) {
            c->in_off += (size_t)n;
        } else if (n < 0 && errno == EAGAIN &&
                   (c->in_watched || s_watch(c, c->in_fd, ZMQ_POLLOUT, s_on_stdin) == 0)) {
            c->in_watched = true;
            return 0;
        } else if (!(n < 0 && errno == EINTR)) {
            s_stdin_close(c, errno == EPIPE    ? "the command closed its stdin"
                             : errno == EAGAIN ? "the gateway could not watch the pipe"
                                               : strerror(errno));
            return -1;
        }
    }
    if (c->in_fd < 0)
        return 0;
    cb_buf_clear(&c->in_queue);
    c->in_off = 0;
    if (c->in_watched)
        s_unwatch(c, c->in_fd);
    c->in_watched = false;
    if (c->in_close_after)
        s_stdin_close(c, NULL);
    return 0;
}

static int s_on_stdin(zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    kg_command_t *c = arg;
    s_stdin_pump(c);
    return kg_gateway_handler_result(c->sb->gw);
}

/* Queue bytes for stdin (the caller pumps). */
static int s_stdin_queue(kg_command_t *c, const char *data, size_t len, bool close_after,
                         cb_error_t *err)
{
    if (c->in_fd < 0 || c->in_close_after)
        return cb_error_fail(err, CB_ERR_STATE, "the stdin of command %.8s is closed", c->id);
    size_t pending = c->in_queue.len - c->in_off;
    if (len > KG_CMD_STDIN_CAP - pending)
        return cb_error_fail(err, CB_ERR_LIMIT,
                             "command %.8s: more than %u MiB of stdin would wait to be read", c->id,
                             KG_CMD_STDIN_CAP >> 20);
    if (c->in_off) { /* keep only what is unwritten, so the buffer stays within the cap */
        memmove(c->in_queue.data, c->in_queue.data + c->in_off, pending);
        c->in_queue.len = pending;
        c->in_queue.data[pending] = '\0';
        c->in_off = 0;
    }
    if (len) /* data may be NULL then */
        cb_buf_append(&c->in_queue, data, len);
    c->in_close_after = close_after;
    return 0;
}

/* ---- the end ----------------------------------------------------------------------------- */

/* Let go of the process, its timer and stdin; the output pipes stay (see "after the end").
 * Idempotent; kills and reaps a process still running. */
static void s_release_process(kg_command_t *c)
{
    kg_timer_stop(c->sb->gw, &c->timer);
    kg_timer_stop(c->sb->gw, &c->late_timer);
    if (c->pidfd >= 0) {
        s_unwatch(c, c->pidfd);
        c->pidfd = -1;
    }
    s_stdin_close(c, "the command ended");
    kg_proc_destroy(&c->proc);
}

/* Let go of everything tied to the loop and the sandbox. Idempotent. */
static void s_release(kg_command_t *c)
{
    s_release_process(c);
    s_close(c, &c->out_fd[0]);
    s_close(c, &c->out_fd[1]);
}

static bool s_draining(const kg_command_t *c)
{
    return c->ended && (c->out_fd[0] >= 0 || c->out_fd[1] >= 0);
}

/* c has just ended with its pipes still held: keep the sandbox's ended commands with open pipes
 * within KG_CMD_DRAINING_MAX by closing the oldest one's (its jobs get EPIPE from then on). */
static void s_draining_limit(kg_command_t *c)
{
    size_t count = 0;
    kg_command_t *oldest = NULL;
    for (kg_command_t *o = zhashx_first(c->sb->commands); o; o = zhashx_next(c->sb->commands))
        if (o != c && s_draining(o)) {
            count++;
            if (!oldest || o->ended_us < oldest->ended_us)
                oldest = o;
        }
    if (count < KG_CMD_DRAINING_MAX || !oldest)
        return;
    cb_info("sandbox %.8s: more than %d ended commands have output still held open; closing "
            "the pipes of command %.8s (its background jobs get EPIPE from now on)",
            c->sb->id, KG_CMD_DRAINING_MAX, oldest->id);
    s_note(oldest,
           "Its pipes were closed: the sandbox had more than %d ended commands whose "
           "background jobs held their output open.",
           KG_CMD_DRAINING_MAX);
    s_close(oldest, &oldest->out_fd[0]);
    s_close(oldest, &oldest->out_fd[1]);
    kg_timer_stop(c->sb->gw, &oldest->late_timer);
    if (oldest->hidden)
        s_drop_hidden(oldest);
}

/* The process has exited, or has just been SIGKILLed: reap it, collect the output it left,
 * settle the status and notes, report through on_done. why: a note for an end forced by the
 * gateway, else NULL. on_done is the last thing that touches c. */
/* The command for the audit trail (kg_policy_t.activity): what ran and how it ended, never
 * its output nor its environment's values. */
static void s_audit(const kg_command_t *c)
{
    bool truncated = false;
    cleanup_free char *line = kg_audit_text(c->command, &truncated);
    double duration_ms = (double)(c->ended_us - c->started_us) / 1000.0;
    json_t *rec =
        json_pack("{s:s, s:s, s:s, s:b, s:O, s:I, s:f, s:s}", "command_id", c->id, "origin",
                  c->origin, "command", line, "command_truncated", truncated, "env_keys",
                  c->env_keys, "started_ms", (json_int_t)(kg_wall_ms() - (int64_t)duration_ms),
                  "duration_ms", duration_ms, "status", c->status);
    if (rec && c->exit.exited)
        json_object_set_new(rec, "exit_code", json_integer(c->exit.code));
    if (rec && c->signal[0])
        json_object_set_new(rec, "signal", json_string(c->signal));
    kg_sandbox_activity(c->sb, "command", rec);
}

static void s_finish(kg_command_t *c, const char *why)
{
    cb_error_t err = {0};
    bool reaped = kg_proc_reap(c->proc, &c->exit, &err) == 0;
    c->ended = true;
    c->ended_us = cb_now_us();
    kg_sandbox_touch(c->sb);
    if (!reaped) {
        c->status = "failed";
        s_note(c, "Could not learn how the command ended: %s", err.msg);
    } else if (c->exit.exited) {
        c->status = "exited";
    } else {
        c->status = c->timed_out ? "timeout" : "killed";
        const char *abbrev = sigabbrev_np(c->exit.signal);
        if (abbrev)
            snprintf(c->signal, sizeof c->signal, "SIG%s", abbrev);
        else
            snprintf(c->signal, sizeof c->signal, "signal %d", c->exit.signal);
    }
    if (strcmp(c->status, "timeout") == 0)
        s_note(c, "The command ran longer than %d ms and was killed (its whole process group).",
               c->opts.timeout_ms);
    if (c->exit.oom) {
        cleanup_free char *tmp = kg_sandbox_tmp_note(c->sb);
        s_note(c,
               "The command was killed because the sandbox ran out of memory (limit %llu MiB)%s%s.",
               (unsigned long long)c->sb->limits.memory_mb, tmp ? ": " : "", tmp ? tmp : "");
    }
    if (why)
        s_note(c, "%s", why);
    for (int i = 0; i < 2; i++) {
        int avail = 0;
        if (c->out_fd[i] >= 0 && ioctl(c->out_fd[i], FIONREAD, &avail) == 0 && avail > 0)
            s_read(c, i, (size_t)avail);
    }
    s_release_process(c);
    json_t *result = kg_command_snapshot(c);
    s_audit(c);
    c->late = true;
    c->late_window_us = cb_now_us();
    if (!c->opts.ring_bytes) { /* from now on only the latest output is kept */
        c->opts.ring_bytes = KG_CMD_LATE_RING;
        s_ring_keep(c, 0); /* the result has it all; what stays is bounded at once */
        s_ring_keep(c, 1);
    }
    if (!c->dying && s_draining(c)) /* dying: s_dispose closes them next */
        s_draining_limit(c);
    if (c->opts.on_done)
        c->opts.on_done(c, result ? result : json_null(), c->opts.arg);
    json_decref(result);
}

static int s_on_pidfd(zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    kg_command_t *c = arg;
    kg_gateway_t *gw = c->sb->gw;
    s_finish(c, NULL);
    return kg_gateway_handler_result(gw);
}

static int s_on_timeout(zloop_t *loop, int timer_id, void *arg)
{
    kg_command_t *c = arg;
    c->timer = -1; /* a one-shot timer: over once it runs */
    c->timed_out = true;
    if (kg_proc_signal(c->proc, SIGKILL) < 0)
        cb_warn("command %.8s: kill after timeout: %s", c->id, strerror(errno));
    return kg_gateway_handler_result(c->sb->gw);
}

static void s_free(kg_command_t *c)
{
    free(c->command);
    free(c->origin);
    json_decref(c->env_keys);
    cb_buf_free(&c->in_queue);
    cb_buf_free(&c->streams[0]);
    cb_buf_free(&c->streams[1]);
    json_decref(c->notes);
    free(c);
}

/* Kill, release and free. why: end a running command with this note and on_done; NULL: end
 * it without a word. */
static void s_dispose(kg_command_t *c, const char *why)
{
    c->dying = true; /* from here on kg_command_forget and kg_command_free_now do nothing */
    if (why && !c->ended) {
        if (kg_proc_signal(c->proc, SIGKILL) < 0)
            cb_warn("command %.8s: kill: %s", c->id, strerror(errno));
        s_finish(c, why); /* the reap waits for the SIGKILL to land: a moment */
    }
    s_release(c);
    s_free(c);
}

static void s_free_deferred(kg_gateway_t *gw, void *arg) { s_free(arg); }

/* A hidden command whose pipes are closed: out of the sandbox and the loop now, freed on a
 * fresh turn (it may be the poller's own object: gateway.h, rule 2). */
static void s_drop_hidden(kg_command_t *c)
{
    c->dying = true;
    zhashx_delete(c->sb->commands, c->id);
    s_release(c);
    kg_gateway_defer(c->sb->gw, s_free_deferred, c);
}

/* ---- the API ----------------------------------------------------------------------------- */

static kg_command_t *s_new(kg_sandbox_t *sb, const kg_command_opts_t *opts, cb_error_t *err)
{
    kg_command_t *c = cb_xcalloc(1, sizeof *c);
    c->sb = sb;
    c->opts = *opts;
    c->opts.command = c->opts.cwd = c->opts.stdin_text = NULL;
    c->opts.env = NULL;
    c->pidfd = c->in_fd = c->out_fd[0] = c->out_fd[1] = c->timer = c->late_timer = -1;
    c->status = "running";
    c->command = cb_xstrdup(opts->command);
    c->origin = cb_xstrdup(opts->origin ? opts->origin : "client");
    c->opts.origin = c->origin;
    c->env_keys = json_array();
    for (const char *const *e = opts->env; e && *e; e++) {
        const char *eq = strchr(*e, '=');
        cleanup_free char *key = cb_text_lossy(*e, eq ? (size_t)(eq - *e) : strlen(*e), NULL);
        json_array_append_new(c->env_keys, json_string(key));
    }
    c->notes = json_array();
    zuuid_t *uuid = zuuid_new(); /* czmq aborts when memory runs out */
    snprintf(c->id, sizeof c->id, "%s", zuuid_str_canonical(uuid));
    zuuid_destroy(&uuid);
    return c;
}

/* A terminal of the sandbox for the command: our ends (the master twice) and the child's. */
static int s_open_pty(kg_command_t *c, const kg_command_opts_t *opts, int *child, cb_error_t *err)
{
    c->out_fd[0] = kg_sandbox_pty(c->sb, child, err);
    if (c->out_fd[0] < 0)
        return cb_error_prefix(err, "command terminal: ");
    c->in_fd = fcntl(c->out_fd[0], F_DUPFD_CLOEXEC, 3); /* shares O_NONBLOCK with the master */
    if (c->in_fd < 0)
        return cb_error_make(err, errno, "command terminal: dup");
    struct winsize ws = {.ws_col = opts->cols ? opts->cols : 80,
                         .ws_row = opts->rows ? opts->rows : 24};
    if (ioctl(c->out_fd[0], TIOCSWINSZ, &ws) < 0)
        return cb_error_make(err, errno, "command terminal: set its size");
    return 0;
}

static int s_launch(kg_command_t *c, const kg_command_opts_t *opts, cb_error_t *err)
{
    cleanup_close int child_in = -1;
    cleanup_close int child_out = -1;
    cleanup_close int child_err = -1;
    if (opts->pty) {
        if (s_open_pty(c, opts, &child_in, err) < 0)
            return -1;
    } else if (s_pipe(&child_in, &c->in_fd, true, err) < 0 ||
               s_pipe(&child_out, &c->out_fd[0], false, err) < 0 ||
               s_pipe(&child_err, &c->out_fd[1], false, err) < 0) {
        return -1;
    }
    const char *const *lists[3] = {kg_sandbox_base_env, (const char *const *)c->sb->env, opts->env};
    char **env = kg_env_merge(lists, 3);
    char *const argv[] = {"/bin/bash", "-c", c->command, NULL};
    kg_proc_opts_t po = {.argv = argv,
                         .env = env,
                         .stdin_fd = child_in,
                         .stdout_fd = opts->pty ? child_in : child_out,
                         .stderr_fd = opts->pty ? child_in : child_err,
                         .controlling_tty = opts->pty,
                         .keep_group = true,
                         .sandbox = c->sb,
                         .cwd = opts->cwd ? opts->cwd : SBX_INSIDE_WORKSPACE};
    c->started_us = cb_now_us(); /* the start is part of the command's time */
    c->proc = kg_proc_start(&po, err);
    cb_strv_free(env);
    if (!c->proc)
        return cb_error_prefix(err, "start command: ");
    c->pid = kg_proc_pid(c->proc);
    c->inside_pid = kg_proc_inside_pid(c->proc);
    c->pidfd = kg_proc_pidfd(c->proc);
    if (s_watch(c, c->out_fd[0], ZMQ_POLLIN, s_on_output) < 0 ||
        (c->out_fd[1] >= 0 && s_watch(c, c->out_fd[1], ZMQ_POLLIN, s_on_output) < 0) ||
        s_watch(c, c->pidfd, ZMQ_POLLIN, s_on_pidfd) < 0)
        return cb_error_make(err, ENOMEM, "watch command");
    if (opts->timeout_ms > 0 &&
        (c->timer = kg_timer_start(c->sb->gw, (size_t)opts->timeout_ms, 1, s_on_timeout, c)) < 0)
        return cb_error_make(err, ENOMEM, "command timer");
    return 0;
}

kg_command_t *kg_command_start(kg_sandbox_t *sb, const kg_command_opts_t *opts, cb_error_t *err)
{
    if (!sb || !opts || !opts->command)
        return cb_error_fail(err, CB_ERR_INVALID, "no command to run"), NULL;
    if (opts->timeout_ms < 0)
        return cb_error_fail(err, CB_ERR_INVALID, "timeout must not be negative"), NULL;
    if (opts->pty && opts->stdin_text && *opts->stdin_text)
        return cb_error_fail(err, CB_ERR_INVALID, "a terminal command takes no stdin text"), NULL;
    kg_command_t *c = s_new(sb, opts, err);
    if (!c)
        return NULL;
    const char *text = opts->stdin_text ? opts->stdin_text : "";
    if (s_launch(c, opts, err) < 0 ||
        s_stdin_queue(c, text, strlen(text), !opts->keep_stdin_open && !opts->pty, err) < 0 ||
        (zhashx_insert(sb->commands, c->id, c) != 0 &&
         cb_error_make(err, ENOMEM, "register command") < 0)) {
        s_release(c);
        s_free(c);
        return NULL;
    }
    s_stdin_pump(c); /* a command that already closed its stdin is noted, not a failed start */
    sb->gw->counters.commands++;
    sb->commands_run++;
    kg_sandbox_touch(sb);
    cb_debug("command %.8s: started as pid %d", c->id, (int)c->pid);
    return c;
}

int kg_command_write_stdin(kg_command_t *self, const char *data, size_t len, bool close_after,
                           cb_error_t *err)
{
    if (self->ended)
        return cb_error_fail(err, CB_ERR_STATE, "command %.8s has ended", self->id);
    if (s_stdin_queue(self, data, data ? len : 0, close_after, err) < 0)
        return -1;
    if (s_stdin_pump(self) < 0)
        return cb_error_fail(err, CB_ERR_STATE,
                             "command %.8s closed its stdin before reading all of it", self->id);
    return 0;
}

int kg_command_signal(kg_command_t *self, int sig, cb_error_t *err)
{
    /* Its process group is named by its main process's pid inside the sandbox (the init
     * reports it at spawn, so it is known even when that process ended at once), and the group
     * may outlive it with background jobs: each member is found in the sandbox's pid namespace
     * and held by a pidfd before it is signalled, so a process outside is never hit. */
    if (self->inside_pid <= 0)
        return cb_error_fail(err, CB_ERR_STATE, "command %.8s has no known process group",
                             self->id);
    int sent = kg_sandbox_signal_group_inside(self->sb, self->inside_pid, sig, err);
    if (sent < 0)
        return -1;
    if (sent == 0)
        return cb_error_fail(err, CB_ERR_NOT_FOUND,
                             "no process of command %.8s is left (it and its background jobs "
                             "have ended, or left its process group)",
                             self->id);
    return 0;
}

int kg_command_signal_foreground(kg_command_t *self, int sig, cb_error_t *err)
{
    if (self->ended)
        return cb_error_fail(err, CB_ERR_STATE, "command %.8s has ended", self->id);
    if (!self->opts.pty || self->out_fd[0] < 0)
        return kg_command_signal(self, sig, err);
    if (sig == SIGINT || sig == SIGQUIT || sig == SIGTSTP) {
        /* The kernel sends it to the terminal's foreground group, which is inside the
         * sandbox: a terminal's session never reaches outside its pid namespace. */
        if (ioctl(self->out_fd[0], TIOCSIG, sig) < 0)
            return cb_error_make(err, errno, "signal the terminal of command %.8s", self->id);
        return 0;
    }
    /* TIOCSIG takes only those three: find the foreground group (in the gateway's numbering)
     * and signal its members, each checked to be the sandbox's. */
    pid_t pgrp = 0;
    if (ioctl(self->out_fd[0], TIOCGPGRP, &pgrp) < 0 || pgrp <= 0)
        return cb_error_make(err, errno ? errno : ESRCH,
                             "the foreground of the terminal of command %.8s", self->id);
    return kg_sandbox_signal_group(self->sb, pgrp, sig, err) < 0 ? -1 : 0;
}

int kg_command_interrupt(kg_command_t *self, cb_error_t *err)
{
    return kg_command_signal_foreground(self, SIGINT, err);
}

int kg_command_foreground_is_own(const kg_command_t *self)
{
    if (!self->opts.pty || self->out_fd[0] < 0 || self->pid <= 0)
        return -1;
    pid_t pgrp = 0; /* in the gateway's pid namespace: the host's numbering, like self->pid */
    if (ioctl(self->out_fd[0], TIOCGPGRP, &pgrp) < 0)
        return -1;
    return pgrp == self->pid;
}

int kg_command_resize(kg_command_t *self, unsigned short cols, unsigned short rows, cb_error_t *err)
{
    if (!self->opts.pty || self->out_fd[0] < 0)
        return cb_error_fail(err, CB_ERR_STATE, "command %.8s has no terminal", self->id);
    if (cols == 0 || rows == 0)
        return cb_error_fail(err, CB_ERR_INVALID, "a terminal needs at least one row and column");
    struct winsize ws = {.ws_col = cols, .ws_row = rows};
    if (ioctl(self->out_fd[0], TIOCSWINSZ, &ws) < 0)
        return cb_error_make(err, errno, "resize the terminal of command %.8s", self->id);
    return 0;
}

int kg_command_read(const kg_command_t *self, const char *stream, uint64_t offset, size_t max,
                    cb_buf_t *out, uint64_t *start, uint64_t *total, cb_error_t *err)
{
    int which = stream && strcmp(stream, "stdout") == 0   ? 0
                : stream && strcmp(stream, "stderr") == 0 ? 1
                                                          : -1;
    if (which < 0)
        return cb_error_fail(err, CB_ERR_INVALID, "no stream '%.20s' (stdout or stderr)",
                             stream ? stream : "");
    const cb_buf_t *buf = &self->streams[which];
    uint64_t first = self->dropped[which], end = first + buf->len;
    uint64_t from = offset < first ? first : offset > end ? end : offset;
    size_t n = end - from < max ? (size_t)(end - from) : max;
    if (n)
        cb_buf_append(out, buf->data + (from - first), n);
    *start = from;
    *total = end;
    return 0;
}

void kg_command_set_callbacks(kg_command_t *self, kg_command_output_fn *on_output,
                              kg_command_done_fn *on_done, void *arg)
{
    if (self->in_output) {
        cb_err("command %.8s: kg_command_set_callbacks from its own on_output; ignored", self->id);
        return;
    }
    self->opts.on_output = on_output;
    self->opts.on_done = on_done;
    self->opts.arg = arg;
}

pid_t kg_command_inside_pid(const kg_command_t *self) { return self->inside_pid; }

int kg_command_kill(kg_command_t *self, cb_error_t *err)
{
    if (self->ended)
        return cb_error_fail(err, CB_ERR_STATE, "command %.8s has ended", self->id);
    if (kg_proc_signal(self->proc, SIGKILL) < 0)
        return cb_error_make(err, errno, "kill command %.8s", self->id);
    return 0;
}

/* Bytes as a JSON string (see cb_text_lossy: valid UTF-8, so jansson cannot refuse it). */
static json_t *s_json_text(const char *data, size_t len)
{
    size_t n = 0;
    cleanup_free char *text = cb_text_lossy(data, len, &n);
    return json_stringn(text, n);
}

json_t *kg_command_snapshot(const kg_command_t *self)
{
    const kg_command_t *c = self;
    double duration_ms = (double)((c->ended ? c->ended_us : cb_now_us()) - c->started_us) / 1000.0;
    json_t *exit_code = c->ended && c->exit.exited ? json_integer(c->exit.code) : json_null();
    json_t *sig = c->signal[0] ? json_string(c->signal) : json_null();
    /* clang-format off */
    pid_t inside = kg_command_inside_pid(c);
    json_t *snap = json_pack("{s:s, s:o, s:s, s:o, s:o, s:b, s:o, s:o, s:o, s:o, s:f, s:o}",
                     "id", c->id,
                     "command", s_json_text(c->command, strlen(c->command)),
                     "status", c->status,
                     "exit_code", exit_code,
                     "signal", sig,
                     "oom", c->exit.oom,
                     "stdout", s_json_text(cb_buf_str(&c->streams[0]), c->streams[0].len),
                     "stderr", s_json_text(cb_buf_str(&c->streams[1]), c->streams[1].len),
                     "pid", c->pid > 0 ? json_integer(c->pid) : json_null(),
                     "inside_pid", inside > 0 ? json_integer(inside) : json_null(),
                     "duration_ms", duration_ms,
                     "notes", json_deep_copy(c->notes));
    /* clang-format on */
    if (snap && c->opts.ring_bytes &&
        (json_object_set_new(snap, "stdout_offset", json_integer((json_int_t)c->dropped[0])) < 0 ||
         json_object_set_new(snap, "stderr_offset", json_integer((json_int_t)c->dropped[1])) < 0))
        json_decref(snap), snap = NULL;
    return snap;
}

void kg_command_forget(kg_command_t **self_p)
{
    kg_command_t *c = self_p ? *self_p : NULL;
    if (!c)
        return;
    *self_p = NULL;
    if (c->dying)
        return; /* called back from its own disposal (on_done during a sandbox's removal) */
    if (c->in_output) {
        cb_err("command %.8s: kg_command_forget from its own on_output is not allowed; ignored",
               c->id);
        return;
    }
    if (s_draining(c)) { /* its jobs still write: keep reading, hidden, until they are gone */
        c->hidden = true;
        kg_command_set_callbacks(c, NULL, NULL, NULL);
        return;
    }
    zhashx_delete(c->sb->commands, c->id);
    s_dispose(c, NULL);
}

/* Does not touch sb->commands: the sandbox's teardown calls this while iterating it. */
void kg_command_free_now(kg_command_t *c)
{
    if (c && !c->dying)
        s_dispose(c, "The sandbox was removed while the command ran, so the command was killed.");
}

const char *kg_command_id(const kg_command_t *self) { return self->id; }
/* Once reaped the main process's pid may be anyone's: 0 then. */
pid_t kg_command_host_pid(const kg_command_t *c) { return c->pid > 0 && !c->ended ? c->pid : 0; }
bool kg_command_running(const kg_command_t *self) { return !self->ended; }

kg_command_t *kg_sandbox_command(kg_sandbox_t *sb, const char *id)
{
    kg_command_t *c = sb && id ? zhashx_lookup(sb->commands, id) : NULL;
    return c && !c->hidden ? c : NULL;
}

bool kg_command_output_open(const kg_command_t *self) { return s_draining(self); }
