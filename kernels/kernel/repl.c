/* kernels/kernel/repl.c: the driver for languages with a live interpreter (JavaScript, TypeScript,
 * Ruby, Bash, Java).
 *
 * One interpreter process per kernel runs a small driver script in its own language
 * (kernels/drivers/<dir>/); we talk to it in JSON lines (kernels/drivers/PROTOCOL.md): requests on
 * its fd 3, events from its fd 4. Its stdout and stderr are the cell's streams (proc.c) and its
 * stdin is served (stdin.c). Start waits for {"ev":"ready"} with a deadline; after that each
 * request from the core becomes one line on fd 3 and the events coming back are turned into
 * kn_cell_* calls. Before each event the interpreter's stdout and stderr are drained, so output
 * written before an event is shown before it.
 *
 * An event line longer than S_LINE_CAP is dropped (the cell's stderr says so) and the rest of
 * the stream is read on. The interpreter exiting, or closing fd 4, ends the kernel (status 1):
 * its state is gone, and the gateway restarts it.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cb/alloc.h"
#include "cb/cleanup.h"
#include "cb/log.h"
#include "kernel.h"

#define S_LINE_CAP ((size_t)64 << 20)
#define S_READY_DEADLINE_MS 60000
#define S_READ_BUDGET ((size_t)1 << 20) /* bytes read from fd 4 per loop callback */

typedef struct {
    const char *dir;         /* kernels/drivers/<dir> */
    const char *const *argv; /* "@" stands for <libexec>/drivers/<dir>/<the next word> */
} s_launch_t;

struct kn_driver {
    kn_kernel_t *k;
    const char *name;
    kn_proc_t *proc;
    int req_w;
    int ev_r;
    cb_buf_t buf;    /* fd 4 bytes not yet handled */
    size_t scanned;  /* buf[0..scanned) holds no newline */
    bool discarding; /* inside an over-long line */
    kn_cell_t *cell;
    kn_request_t *req;
};

// clang-format off
static const char *const s_node_argv[] = {"/usr/bin/node", "@driver.js", NULL};
static const char *const s_ruby_argv[] = {"/usr/bin/ruby", "@driver.rb", NULL};
static const char *const s_bash_argv[] = {"/bin/bash", "--noprofile", "--norc", "@driver.sh", NULL};
static const char *const s_java_argv[] = {"/usr/bin/java", "-Xshare:auto", "-XX:TieredStopAtLevel=1",
                                          "-cp", "@cellblock-jshell.jar", "CellblockJShell", NULL};

static kn_driver_t *s_start(kn_kernel_t *k, char **version, cb_error_t *err);
static void s_execute(kn_driver_t *d, kn_cell_t *cell);
static void s_interrupt(kn_driver_t *d);
static void s_request(kn_driver_t *d, kn_request_t *req);
static void s_input_reply(kn_driver_t *d, const char *value);
static void s_destroy(kn_driver_t **d_p);

#define S_OPS(name, lang, ext, mime, lexer, cm)                                                   \
    {name, lang, ext, mime, lexer, cm, s_start, s_execute, s_interrupt, s_request, s_input_reply, \
     s_destroy}

static const struct {
    kn_driver_ops_t ops;
    s_launch_t launch;
    bool lang_arg; /* node's driver takes the language as its argument */
} s_langs[] = {
    {S_OPS("javascript", "javascript", ".js", "text/javascript", "javascript", "javascript"),
     {"node", s_node_argv}, true},
    {S_OPS("typescript", "typescript", ".ts", "text/typescript", "typescript", "typescript"),
     {"node", s_node_argv}, true},
    {S_OPS("ruby", "ruby", ".rb", "text/x-ruby", "ruby", "ruby"), {"ruby", s_ruby_argv}, false},
    {S_OPS("bash", "bash", ".sh", "text/x-sh", "bash", "shell"), {"bash", s_bash_argv}, false},
    {S_OPS("java", "java", ".java", "text/x-java", "java", "text/x-java"), {"java", s_java_argv},
     false},
};
// clang-format on

#define S_N_LANGS (sizeof s_langs / sizeof s_langs[0])

const kn_driver_ops_t *kn_repl_driver(const char *name)
{
    for (size_t i = 0; i < S_N_LANGS; i++)
        if (strcmp(s_langs[i].ops.name, name) == 0)
            return &s_langs[i].ops;
    return NULL;
}

/* ---- requests ----------------------------------------------------------------------------- */

/* Write one request line (blocking: the driver reads a whole request before it acts on it). */
static int s_send(kn_driver_t *d, json_t *req)
{
    json_auto_t *owned = req;
    if (d->req_w < 0 || !req)
        return -1;
    cleanup_free char *text = json_dumps(req, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!text)
        return -1;
    size_t len = strlen(text);
    text[len] = '\n'; /* replaces the NUL: written with its length */
    const char *p = text;
    size_t left = len + 1;
    while (left > 0) {
        ssize_t n = write(d->req_w, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            cb_err("kernel: writing to the %s interpreter: %s", d->name, strerror(errno));
            return -1;
        }
        p += n;
        left -= (size_t)n;
    }
    return 0;
}

static void s_execute(kn_driver_t *d, kn_cell_t *cell)
{
    d->cell = cell;
    /* "code" last: a driver may take the rest of the line as the code string. */
    json_t *req =
        json_pack("{s:s, s:b, s:b, s:i, s:s}", "op", "execute", "silent", kn_cell_silent(cell),
                  "allow_stdin", kn_cell_allow_stdin(cell), "execution_count",
                  kn_cell_execution_count(cell), "code", kn_cell_code(cell));
    if (s_send(d, req) < 0) {
        kn_cell_error(cell, "KernelError", "the interpreter is gone", NULL);
        d->cell = NULL;
        kn_cell_done(&cell);
    }
}

static void s_interrupt(kn_driver_t *d)
{
    if (d->proc)
        kn_proc_signal(d->proc, SIGINT);
}

static void s_request(kn_driver_t *d, kn_request_t *req)
{
    const char *type = kn_request_type(req);
    json_t *c = kn_request_content(req);
    json_t *code = json_object_get(c, "code");
    json_int_t pos = json_integer_value(json_object_get(c, "cursor_pos"));
    json_t *line = NULL;
    if (!json_is_string(code))
        line = NULL;
    else if (strcmp(type, "complete_request") == 0)
        line = json_pack("{s:s, s:I, s:O}", "op", "complete", "cursor_pos", pos, "code", code);
    else if (strcmp(type, "inspect_request") == 0)
        line = json_pack("{s:s, s:I, s:I, s:O}", "op", "inspect", "cursor_pos", pos, "detail_level",
                         json_integer_value(json_object_get(c, "detail_level")), "code", code);
    else if (strcmp(type, "is_complete_request") == 0)
        line = json_pack("{s:s, s:O}", "op", "is_complete", "code", code);
    d->req = req;
    if (!line || s_send(d, line) < 0) {
        d->req = NULL;
        kn_request_reply(&req, json_pack("{s:s, s:s, s:s}", "status", "error", "ename",
                                         "BadRequest", "evalue", "cannot ask the interpreter"));
    }
}

static void s_input_reply(kn_driver_t *d, const char *value)
{
    s_send(d, json_pack("{s:s, s:s}", "op", "input_reply", "value", value ? value : ""));
}

/* ---- events ------------------------------------------------------------------------------- */

static void s_handle_event(kn_driver_t *d, json_t *ev)
{
    const char *kind = json_string_value(json_object_get(ev, "ev"));
    if (!kind) {
        cb_debug("kernel: an event without \"ev\" from the %s interpreter", d->name);
        return;
    }
    json_t *data = json_object_get(ev, "data"), *meta = json_object_get(ev, "metadata");
    if (strcmp(kind, "display") == 0 && d->cell) {
        kn_cell_display(d->cell, json_incref(data), json_incref(meta));
    } else if (strcmp(kind, "result") == 0 && d->cell) {
        kn_cell_result(d->cell, json_incref(data), json_incref(meta));
    } else if (strcmp(kind, "error") == 0 && d->cell) {
        json_t *tb = json_object_get(ev, "traceback");
        kn_cell_error(d->cell, json_string_value(json_object_get(ev, "ename")),
                      json_string_value(json_object_get(ev, "evalue")),
                      json_is_array(tb) ? json_incref(tb) : NULL);
    } else if (strcmp(kind, "input_request") == 0 && d->cell) {
        const char *prompt = json_string_value(json_object_get(ev, "prompt"));
        bool password = json_is_true(json_object_get(ev, "password"));
        if (kn_cell_input_request(d->cell, prompt, password) < 0)
            s_send(d, json_pack("{s:s, s:n}", "op", "input_reply", "value"));
    } else if (strcmp(kind, "done") == 0 && d->cell) {
        kn_cell_t *cell = d->cell;
        d->cell = NULL;
        kn_cell_done(&cell); /* may start the next request, setting d->cell again */
    } else if (d->req && strlen(kind) > 6 && strcmp(kind + strlen(kind) - 6, "_reply") == 0) {
        json_t *content = json_deep_copy(ev);
        json_object_del(content, "ev");
        kn_request_t *req = d->req;
        d->req = NULL;
        kn_request_reply(&req, content);
    } else {
        cb_debug("kernel: event \"%s\" from the %s interpreter ignored", kind, d->name);
    }
}

static void s_handle_line(kn_driver_t *d, const char *line, size_t len)
{
    kn_proc_drain(d->proc);
    json_error_t jerr;
    json_auto_t *ev = json_loadb(line, len, 0, &jerr);
    if (!json_is_object(ev)) {
        cb_debug("kernel: a malformed event line from the %s interpreter: %s", d->name, jerr.text);
        return;
    }
    s_handle_event(d, ev);
}

static void s_gone(kn_driver_t *d, const char *why)
{
    cb_err("kernel: the %s interpreter %s; the kernel ends", d->name, why);
    kn_kernel_stop(d->k, 1);
}

/* Handle every complete line in d->buf; keep the rest. */
static void s_handle_lines(kn_driver_t *d)
{
    size_t start = 0;
    for (;;) {
        char *nl = memchr(d->buf.data + d->scanned, '\n', d->buf.len - d->scanned);
        if (!nl)
            break;
        size_t end = (size_t)(nl - d->buf.data);
        if (d->discarding) {
            d->discarding = false;
            if (d->cell) {
                static const char msg[] = "cellblock-kernel: an output event of more than 64 MiB "
                                          "from the interpreter was dropped\n";
                kn_cell_stream(d->cell, "stderr", msg, sizeof msg - 1);
            }
        } else {
            s_handle_line(d, d->buf.data + start, end - start);
        }
        start = end + 1;
        d->scanned = start;
        if (d->k->stopping)
            break;
    }
    size_t rest = d->buf.len - start;
    memmove(d->buf.data, d->buf.data + start, rest);
    d->buf.len = rest;
    d->scanned -= start;
    if (d->buf.len > S_LINE_CAP) {
        d->discarding = true;
        cb_buf_clear(&d->buf);
        d->scanned = 0;
    }
    if (d->buf.cap > 2 * S_READ_BUDGET && d->buf.len < S_READ_BUDGET / 4) {
        cb_buf_t small = {0};
        cb_buf_append(&small, d->buf.data, d->buf.len);
        cb_buf_free(&d->buf);
        d->buf = small;
    }
}

static int s_on_events(kn_kernel_t *k, int fd, void *arg)
{
    kn_driver_t *d = arg;
    char chunk[65536];
    size_t budget = S_READ_BUDGET;
    while (budget > 0) {
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            break;
        if (n <= 0) {
            s_handle_lines(d);
            s_gone(d, "closed its event pipe");
            return -1;
        }
        d->scanned = d->scanned < d->buf.len ? d->scanned : d->buf.len;
        cb_buf_append(&d->buf, chunk, (size_t)n);
        budget -= (size_t)n < budget ? (size_t)n : budget;
        s_handle_lines(d);
        if (k->stopping)
            break;
    }
    return 0;
}

static void s_on_exit(kn_proc_t *p, int status, void *arg)
{
    kn_driver_t *d = arg;
    d->proc = NULL;
    kill(-kn_proc_pid(p), SIGKILL); /* what the interpreter left running in its group */
    char why[64];
    if (WIFSIGNALED(status))
        snprintf(why, sizeof why, "was killed by signal %d", WTERMSIG(status));
    else
        snprintf(why, sizeof why, "exited with status %d", WEXITSTATUS(status));
    s_gone(d, why);
}

/* ---- start and stop ----------------------------------------------------------------------- */

/* Wait for {"ev":"ready"}; keep the tail of the interpreter's stderr for the error. */
static int s_wait_ready(kn_driver_t *d, char **version, cb_error_t *err)
{
    char tail[2048] = "";
    size_t tail_len = 0;
    int64_t deadline = cb_now_ms() + S_READY_DEADLINE_MS;
    for (;;) {
        char *nl = d->buf.len ? memchr(d->buf.data, '\n', d->buf.len) : NULL;
        if (nl) {
            json_auto_t *ev = json_loadb(d->buf.data, (size_t)(nl - d->buf.data), 0, NULL);
            size_t rest = d->buf.len - (size_t)(nl + 1 - d->buf.data);
            memmove(d->buf.data, nl + 1, rest);
            d->buf.len = rest;
            const char *kind = json_string_value(json_object_get(ev, "ev"));
            if (kind && strcmp(kind, "ready") == 0) {
                *version = cb_xstrdup_or_null(json_string_value(json_object_get(ev, "version")));
                return 0;
            }
            continue;
        }
        int64_t left = deadline - cb_now_ms();
        if (left <= 0)
            return cb_error_fail(err, CB_ERR_TIMEOUT,
                                 "the %s interpreter did not say it was ready within %d s: %.*s",
                                 d->name, S_READY_DEADLINE_MS / 1000, (int)tail_len, tail);
        int errfd = d->proc ? kn_proc_stderr_fd(d->proc) : -1;
        struct pollfd pfd[2] = {{.fd = d->ev_r, .events = POLLIN}, {.fd = errfd, .events = POLLIN}};
        if (poll(pfd, 2, (int)left) < 0 && errno != EINTR)
            return cb_error_make(err, errno, "poll");
        if (pfd[1].revents) {
            char b[1024];
            ssize_t n = read(errfd, b, sizeof b);
            for (ssize_t i = 0; i < n; i++) {
                if (tail_len == sizeof tail - 1) {
                    memmove(tail, tail + 1, tail_len - 1);
                    tail_len--;
                }
                tail[tail_len++] = b[i];
            }
            if (n <= 0)
                pfd[1].fd = -1;
        }
        if (pfd[0].revents) {
            char b[4096];
            ssize_t n = read(d->ev_r, b, sizeof b);
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
                /* Gone: collect what it still said on stderr. */
                for (int i = 0; i < 20 && errfd >= 0; i++) {
                    struct pollfd e = {.fd = errfd, .events = POLLIN};
                    if (poll(&e, 1, 50) <= 0)
                        break;
                    ssize_t m = read(errfd, tail + tail_len, sizeof tail - 1 - tail_len);
                    if (m <= 0)
                        break;
                    tail_len += (size_t)m;
                }
                while (tail_len > 0 && (tail[tail_len - 1] == '\n'))
                    tail_len--;
                return cb_error_fail(err, CB_ERR_KERNEL_DEAD,
                                     "the %s interpreter ended before it was ready: %.*s", d->name,
                                     (int)tail_len, tail);
            }
            if (n > 0) {
                if (d->buf.len + (size_t)n > 1 << 20)
                    return cb_error_fail(err, CB_ERR_PROTOCOL,
                                         "the %s interpreter sent no ready line", d->name);
                cb_buf_append(&d->buf, b, (size_t)n);
            }
        }
    }
}

static kn_driver_t *s_start(kn_kernel_t *k, char **version, cb_error_t *err)
{
    size_t li = 0;
    while (li < S_N_LANGS && &s_langs[li].ops != k->ops)
        li++;
    if (li == S_N_LANGS) {
        cb_error_fail(err, CB_ERR_INTERNAL, "not a repl language");
        return NULL;
    }
    const s_launch_t *launch = &s_langs[li].launch;

    cleanup_strvec cb_strv_t argv;
    cb_strv_init(&argv);
    for (const char *const *a = launch->argv; *a; a++)
        cb_strv_push(&argv, (*a)[0] == '@' ? cb_strdup_printf("%s/drivers/%s/%s", k->libexec_dir,
                                                              launch->dir, *a + 1)
                                           : cb_xstrdup(*a));
    if (s_langs[li].lang_arg)
        cb_strv_push(&argv, cb_xstrdup(k->ops->name));

    int req[2], ev[2];
    if (pipe2(req, O_CLOEXEC) < 0) {
        cb_error_make(err, errno, "pipe");
        return NULL;
    }
    if (pipe2(ev, O_CLOEXEC) < 0) {
        cb_error_make(err, errno, "pipe");
        close(req[0]);
        close(req[1]);
        return NULL;
    }
    kn_driver_t *d = cb_xcalloc(1, sizeof *d);
    d->k = k;
    d->name = k->ops->name;
    d->req_w = req[1];
    d->ev_r = ev[0];
    int extra[] = {req[0], ev[1], -1};
    kn_proc_opts_t opts = {
        .argv = argv.v, .stdin_served = true, .extra_fds = extra, .on_exit = s_on_exit, .arg = d};
    d->proc = kn_proc_start(k, &opts, err);
    close(req[0]);
    close(ev[1]);
    if (!d->proc || s_wait_ready(d, version, err) < 0) {
        if (d->proc)
            cb_error_prefix(err, "%s: ", argv.v[0]);
        s_destroy(&d);
        return NULL;
    }
    fcntl(d->ev_r, F_SETFL, O_NONBLOCK);
    kn_watch_fd(k, d->ev_r, s_on_events, d);
    return d;
}

static void s_destroy(kn_driver_t **d_p)
{
    kn_driver_t *d = *d_p;
    if (!d)
        return;
    *d_p = NULL;
    if (d->proc) {
        kn_proc_detach(d->proc);          /* on_exit must not see d again */
        kn_proc_signal(d->proc, SIGKILL); /* proc.c reaps and frees it */
    }
    if (d->ev_r >= 0) {
        kn_unwatch_fd(d->k, d->ev_r);
        close(d->ev_r);
    }
    if (d->req_w >= 0)
        close(d->req_w);
    cb_buf_free(&d->buf);
    free(d);
}
