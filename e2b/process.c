/* process.c: envd's process.Process onto the engine's commands (kg/command.h).
 *
 * Why: the SDKs' commands.run/start/connect/list/kill/sendStdin and pty.create/sendInput/resize
 * all speak this one Connect service; each call here is a short translation onto a command the
 * engine runs, so what the engine guarantees (its process group killed on timeout, output read
 * in bounded slices so a flood cannot starve the loop, background jobs left alone, everything
 * checked to belong to the sandbox) holds for E2B's clients too.
 *
 * How:
 *   - Start runs the ProcessConfig as sent (cmd and args, quoted into `exec -- CMD ARGS...` for
 *     the engine's bash -c, so the process keeps the pid it started with), with its envs and
 *     cwd (default the workspace, /home/user), stdin kept open only when asked, on a terminal
 *     when pty is given. Its pid is the process's pid inside the sandbox: what List shows and
 *     what Connect, SendInput, SendSignal, CloseStdin and Update select by (or by tag).
 *   - a process has a record (s_proc_t) in the sandbox's state while it runs, and any number
 *     (up to S_MAX_STREAMS) of open streams: the Start call's own, and one per Connect. Output
 *     goes to every open stream as it comes ({data: {stdout|stderr|pty}}), then the end event
 *     ({end: {exitCode, exited, status, error}}) ends each of them, and the record goes.
 *   - a client that goes away (http_request_on_close) only loses its stream: the process runs
 *     on, as on E2B. A Connect later gets the output from then on, as on E2B: nothing is
 *     replayed. What nobody reads is kept by the engine in a bounded ring (S_RING_BYTES), not
 *     here. A stream whose client does not read is closed by the HTTP server once too much is
 *     queued for it (http_config_t.max_queued_bytes); the process runs on.
 *   - the Start call's Connect-Timeout-Ms (the SDK's timeoutMs) is the process's timeout: the
 *     engine kills its process group when it passes, and the Start stream ends with
 *     deadline_exceeded (which the SDK shows as TimeoutError); other streams get the end event.
 *     A Connect call's timeout ends only its own stream, with deadline_exceeded.
 *   - keepalive events go out on each stream every Keepalive-Ping-Interval seconds (the SDK
 *     asks for 50), so an idle stream is not taken for a dead one by the client.
 *   - the sandbox ends (e2b_process_sandbox_end): every open stream ends with "unavailable"
 *     (the SDK's "sandbox was killed" TimeoutError), the engine's callbacks are dropped, and
 *     the records go; the engine kills the processes with the sandbox.
 * StreamInput is client-streaming, which an HTTP/1.1 fetch client cannot send: unimplemented.
 * The user (Authorization: Basic, "user" or "root") is not read: a sandbox has one uid inside.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "cb/alloc.h"
#include "cb/cleanup.h"
#include "cb/log.h"
#include "e2b_private.h"
#include "kg/command.h"

#define S_MAX_PROCS 256          /* running processes tracked per sandbox */
#define S_MAX_STREAMS 16         /* open streams per process */
#define S_RING_BYTES (64u << 10) /* what the engine keeps of each stream: 64 to 128 KiB */
#define S_MAX_KEEPALIVE_S 300

typedef struct s_proc s_proc_t;
typedef struct s_stream s_stream_t;

/* An open server-streaming response onto a process (Start's or Connect's). */
struct s_stream {
    s_proc_t *proc;
    http_request_t *req;
    bool origin;   /* the Start call's: the process's timeout ends it with deadline_exceeded */
    int deadline;  /* timer: a Connect call's Connect-Timeout-Ms; -1: none */
    int keepalive; /* timer: Keepalive-Ping-Interval; -1: none */
    s_stream_t *prev, *next;
};

/* A process started here, while it runs. */
struct s_proc {
    e2b_procs_t *procs;
    kg_command_t *cmd; /* borrowed from the engine: valid until forgotten or the sandbox goes */
    uint32_t pid;      /* inside the sandbox */
    char *tag;         /* NULL: none */
    json_t *config;    /* the ProcessConfig, as List answers it */
    bool pty;
    bool stdin_open;
    s_stream_t *streams;
    size_t stream_count;
    s_proc_t *prev, *next;
};

struct e2b_procs {
    e2b_sandbox_t *sb;
    s_proc_t *procs;
    size_t count;
};

static kg_gateway_t *s_gw(const s_proc_t *p) { return p->procs->sb->api->gw; }

/* ---- base64 (protobuf JSON's bytes) --------------------------------------------------------- */

static const char s_b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Caller owns return value. */
static char *s_b64_encode(const void *data, size_t len)
{
    const unsigned char *in = data;
    char *out = cb_xmalloc((len + 2) / 3 * 4 + 1);
    char *o = out;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < len)
            v |= in[i + 2];
        *o++ = s_b64[v >> 18 & 63];
        *o++ = s_b64[v >> 12 & 63];
        *o++ = i + 1 < len ? s_b64[v >> 6 & 63] : '=';
        *o++ = i + 2 < len ? s_b64[v & 63] : '=';
    }
    *o = '\0';
    return out;
}

static int s_b64_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || c == '-') /* protobuf JSON accepts the URL alphabet too */
        return 62;
    if (c == '/' || c == '_')
        return 63;
    return -1;
}

/* Decode standard or URL base64, padded or not, into out. false when it is not base64. */
static bool s_b64_decode(const char *text, size_t len, cb_buf_t *out)
{
    while (len > 0 && text[len - 1] == '=')
        len--;
    if (len % 4 == 1)
        return false;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = s_b64_value(text[i]);
        if (v < 0)
            return false;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            unsigned char byte = (unsigned char)(acc >> bits);
            cb_buf_append(out, &byte, 1);
        }
    }
    return true;
}

/* ---- the sandbox's state -------------------------------------------------------------------- */

static e2b_procs_t *s_procs(e2b_sandbox_t *sb)
{
    if (!sb->procs) {
        sb->procs = cb_xcalloc(1, sizeof *sb->procs);
        sb->procs->sb = sb;
    }
    return sb->procs;
}

/* ---- streams -------------------------------------------------------------------------------- */

static void s_stream_free(s_stream_t *s)
{
    s_proc_t *p = s->proc;
    kg_timer_stop(s_gw(p), &s->deadline);
    kg_timer_stop(s_gw(p), &s->keepalive);
    if (s->prev)
        s->prev->next = s->next;
    else
        p->streams = s->next;
    if (s->next)
        s->next->prev = s->prev;
    p->stream_count--;
    free(s);
}

/* End the response (with an error when code is set) and free the stream. */
static void s_stream_finish(s_stream_t *s, const char *code, const char *message)
{
    http_request_t *req = s->req;
    s->req = NULL;
    s_stream_free(s);
    e2b_rpc_stream_end(req, code, message);
}

/* Send one message; a client that is gone ends the stream (freed: do not use s after -1). */
static int s_stream_send(s_stream_t *s, json_t *msg)
{
    if (msg && e2b_rpc_stream_send(s->req, msg) == 0)
        return 0;
    s_stream_finish(s, NULL, NULL); /* the HTTP server closes it: nothing more is written */
    return -1;
}

static void s_on_stream_close(http_request_t *req, void *arg)
{
    (void)req;
    s_stream_t *s = arg;
    s->req = NULL;
    s_stream_free(s);
}

static int s_on_deadline(zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    s_stream_t *s = arg;
    kg_gateway_t *gw = s_gw(s->proc);
    s->deadline = -1; /* a one-shot timer is over once it runs */
    s_stream_finish(s, "deadline_exceeded",
                    "the call's timeout (Connect-Timeout-Ms) passed; the process runs on");
    return kg_gateway_handler_result(gw);
}

static int s_on_keepalive(zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    s_stream_t *s = arg;
    kg_gateway_t *gw = s_gw(s->proc);
    json_auto_t *msg = json_pack("{s:{s:{}}}", "event", "keepalive");
    s_stream_send(s, msg);
    return kg_gateway_handler_result(gw);
}

/* A header of digits, at most max_digits of them, as a number; -1 when absent, -2 malformed. */
static long long s_header_number(http_request_t *req, const char *name, int max_digits)
{
    const char *v = http_request_header(req, name);
    if (!v)
        return -1;
    size_t n = strlen(v);
    if (n == 0 || n > (size_t)max_digits)
        return -2;
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)v[i]))
            return -2;
    return strtoll(v, NULL, 10);
}

/* Open a stream on p for req (already begun): registered for the client's going, with its
 * keepalive and (deadline_ms > 0) its deadline. */
static s_stream_t *s_stream_new(s_proc_t *p, http_request_t *req, bool origin,
                                long long deadline_ms)
{
    s_stream_t *s = cb_xcalloc(1, sizeof *s);
    s->proc = p;
    s->req = req;
    s->origin = origin;
    s->deadline = s->keepalive = -1;
    s->next = p->streams;
    if (p->streams)
        p->streams->prev = s;
    p->streams = s;
    p->stream_count++;
    http_request_on_close(req, s_on_stream_close, s);
    long long every_s = s_header_number(req, "Keepalive-Ping-Interval", 6);
    if (every_s > 0)
        s->keepalive = kg_timer_start(
            s_gw(p), (size_t)(every_s < S_MAX_KEEPALIVE_S ? every_s : S_MAX_KEEPALIVE_S) * 1000, 0,
            s_on_keepalive, s);
    if (deadline_ms > 0)
        s->deadline = kg_timer_start(s_gw(p), (size_t)deadline_ms, 1, s_on_deadline, s);
    return s;
}

/* Send msg to every open stream of p. */
static void s_broadcast(s_proc_t *p, json_t *msg)
{
    for (s_stream_t *s = p->streams, *next; s; s = next) {
        next = s->next;
        s_stream_send(s, msg);
    }
}

/* ---- processes ------------------------------------------------------------------------------ */

/* Unlink and free the record; the engine's command is the caller's business. Callers have
 * ended its streams already; one left would be ended here, never left to a freed record. */
static void s_proc_free(s_proc_t *p)
{
    e2b_procs_t *procs = p->procs;
    while (p->streams)
        s_stream_finish(p->streams, "internal", "the process's record went first");
    if (p->prev)
        p->prev->next = p->next;
    else
        procs->procs = p->next;
    if (p->next)
        p->next->prev = p->prev;
    procs->count--;
    free(p->tag);
    json_decref(p->config);
    free(p);
}

static void s_on_output(kg_command_t *c, const char *stream, const char *data, size_t len,
                        void *arg)
{
    (void)c;
    s_proc_t *p = arg;
    if (!p->streams || len == 0)
        return;
    const char *key = p->pty ? "pty" : strcmp(stream, "stderr") == 0 ? "stderr" : "stdout";
    cleanup_free char *b64 = s_b64_encode(data, len);
    json_auto_t *msg = json_pack("{s:{s:{s:s}}}", "event", "data", key, b64);
    s_broadcast(p, msg);
}

/* The number of a signal named "SIGKILL"; 0 when not known. */
static int s_signal_number(const char *name)
{
    for (int sig = 1; name && strncmp(name, "SIG", 3) == 0 && sig < NSIG; sig++) {
        const char *abbrev = sigabbrev_np(sig);
        if (abbrev && strcmp(abbrev, name + 3) == 0)
            return sig;
    }
    return 0;
}

/* The end event as envd writes it (Go's os.ProcessState: "exit status 1", "signal: killed"),
 * from the engine's result. Caller owns return value. */
static json_t *s_end_event(json_t *result)
{
    const char *status = json_string_value(json_object_get(result, "status"));
    json_t *code = json_object_get(result, "exit_code");
    if (status && strcmp(status, "exited") == 0 && json_is_integer(code)) {
        int rc = (int)json_integer_value(code);
        cleanup_free char *text = cb_strdup_printf("exit status %d", rc);
        json_t *end = json_pack("{s:i, s:b, s:s}", "exitCode", rc, "exited", 1, "status", text);
        if (end && rc != 0)
            json_object_set_new(end, "error", json_string(text));
        return json_pack("{s:{s:o*}}", "event", "end", end);
    }
    int sig = s_signal_number(json_string_value(json_object_get(result, "signal")));
    cleanup_free char *text = NULL;
    if (sig) {
        text = cb_xstrdup(strsignal(sig)); /* "Killed": Go writes it "signal: killed" */
        text[0] = (char)tolower((unsigned char)text[0]);
        char *full = cb_strdup_printf("signal: %s", text);
        free(text);
        text = full;
    } else {
        json_t *notes = json_object_get(result, "notes");
        const char *note = json_string_value(json_array_get(notes, json_array_size(notes) - 1));
        text = cb_strdup_printf("the process could not be followed to its end%s%s",
                                note ? ": " : "", note ? note : "");
    }
    return json_pack("{s:{s:{s:i, s:b, s:s, s:s}}}", "event", "end", "exitCode", -1, "exited", 0,
                     "status", text, "error", text);
}

static void s_on_done(kg_command_t *c, json_t *result, void *arg)
{
    (void)c;
    s_proc_t *p = arg;
    const char *status = json_string_value(json_object_get(result, "status"));
    bool timed_out = status && strcmp(status, "timeout") == 0;
    json_auto_t *end = s_end_event(result);
    for (s_stream_t *s = p->streams, *next; s; s = next) {
        next = s->next;
        if (s->origin && timed_out) {
            s_stream_finish(s, "deadline_exceeded",
                            "the process ran past the call's timeout (timeoutMs) and was killed");
            continue;
        }
        if (s_stream_send(s, end) == 0)
            s_stream_finish(s, NULL, NULL);
    }
    kg_command_forget(&p->cmd); /* from on_done: allowed */
    s_proc_free(p);
}

/* The process a ProcessSelector ({pid} or {tag}) names; NULL after answering not_found or
 * invalid_argument. */
static s_proc_t *s_select(e2b_sandbox_t *sb, http_request_t *req, e2b_rpc_kind_t kind, json_t *msg)
{
    json_t *sel = json_object_get(msg, "process");
    json_t *pid = json_object_get(sel, "pid");
    const char *tag = json_string_value(json_object_get(sel, "tag"));
    long long want = -1;
    if (json_is_integer(pid))
        want = json_integer_value(pid);
    else if (json_is_string(pid)) /* uint32 may arrive quoted */
        want = strtoll(json_string_value(pid), NULL, 10);
    if (want <= 0 && !tag) {
        e2b_rpc_fail(req, kind, "invalid_argument",
                     "process must select a process by pid (a positive number) or by tag");
        return NULL;
    }
    for (s_proc_t *p = sb->procs ? sb->procs->procs : NULL; p; p = p->next)
        if (want > 0 ? p->pid == want : p->tag && strcmp(p->tag, tag) == 0)
            return p;
    cleanup_free char *why = want > 0 ? cb_strdup_printf("process with pid %lld not found", want)
                                      : cb_strdup_printf("process with tag %s not found", tag);
    e2b_rpc_fail(req, kind, "not_found", why);
    return NULL;
}

/* ---- Start ---------------------------------------------------------------------------------- */

/* Append s as one shell word. */
static void s_shell_word(cb_buf_t *out, const char *s)
{
    cb_buf_append(out, " '", 2);
    for (const char *q; (q = strchr(s, '\'')); s = q + 1) {
        cb_buf_append(out, s, (size_t)(q - s));
        cb_buf_append(out, "'\\''", 4);
    }
    cb_buf_printf(out, "%s'", s);
}

/* What Start was asked, checked. */
typedef struct {
    cb_buf_t command; /* exec -- 'cmd' 'arg'... */
    char **env;       /* "KEY=VALUE", NULL-terminated */
    size_t env_count;
    const char *cwd; /* borrowed from the message */
    const char *tag;
    bool stdin_open;
    bool pty;
    unsigned short cols, rows;
} s_start_t;

static void s_start_clear(s_start_t *st)
{
    cb_buf_free(&st->command);
    for (size_t i = 0; i < st->env_count; i++)
        free(st->env[i]);
    free(st->env);
}

static bool s_size_field(json_t *size, const char *name, unsigned short *out)
{
    json_t *v = json_object_get(size, name);
    long long n = json_is_integer(v)  ? json_integer_value(v)
                  : json_is_string(v) ? strtoll(json_string_value(v), NULL, 10)
                                      : -1;
    if (n < 1 || n > USHRT_MAX)
        return false;
    *out = (unsigned short)n;
    return true;
}

/* NULL when msg is a good StartRequest, else why not. */
static const char *s_start_parse(json_t *msg, s_start_t *st)
{
    json_t *proc = json_object_get(msg, "process");
    const char *cmd = json_string_value(json_object_get(proc, "cmd"));
    if (!json_is_object(proc) || !cmd || !*cmd)
        return "process.cmd (a non-empty string) is required";
    cb_buf_append(&st->command, "exec --", 7); /* a cmd that begins with "-" is a name too */
    s_shell_word(&st->command, cmd);
    json_t *args = json_object_get(proc, "args");
    if (args && !json_is_array(args))
        return "process.args must be an array of strings";
    size_t i;
    json_t *v;
    json_array_foreach (args, i, v) {
        if (!json_is_string(v))
            return "process.args must be an array of strings";
        s_shell_word(&st->command, json_string_value(v));
    }
    json_t *envs = json_object_get(proc, "envs");
    if (envs && !json_is_object(envs))
        return "process.envs must be an object of strings";
    st->env = cb_xcalloc(json_object_size(envs) + 1, sizeof *st->env);
    const char *key;
    json_object_foreach (envs, key, v) {
        if (!json_is_string(v))
            return "process.envs must be an object of strings";
        if (!*key || strchr(key, '='))
            return "an environment variable's name must be non-empty and hold no '='";
        st->env[st->env_count++] = cb_strdup_printf("%s=%s", key, json_string_value(v));
    }
    json_t *cwd = json_object_get(proc, "cwd");
    if (cwd && !json_is_null(cwd) && !json_is_string(cwd))
        return "process.cwd must be a string";
    st->cwd = json_string_value(cwd) && *json_string_value(cwd) ? json_string_value(cwd) : NULL;
    json_t *tag = json_object_get(msg, "tag");
    if (tag && !json_is_null(tag) && !json_is_string(tag))
        return "tag must be a string";
    st->tag = json_string_value(tag);
    json_t *in = json_object_get(msg, "stdin");
    if (in && !json_is_null(in) && !json_is_boolean(in))
        return "stdin must be true or false";
    st->stdin_open = json_is_true(in);
    json_t *pty = json_object_get(msg, "pty");
    if (pty && !json_is_null(pty)) {
        json_t *size = json_object_get(pty, "size");
        if (!json_is_object(pty) || !json_is_object(size) ||
            !s_size_field(size, "cols", &st->cols) || !s_size_field(size, "rows", &st->rows))
            return "pty.size needs cols and rows, each 1 to 65535";
        st->pty = true;
        st->stdin_open = true; /* a terminal's input is always open */
    }
    return NULL;
}

/* The ProcessConfig as List shows it. Caller owns return value. */
static json_t *s_config_json(json_t *msg)
{
    json_t *proc = json_object_get(msg, "process");
    json_t *args = json_object_get(proc, "args");
    json_t *envs = json_object_get(proc, "envs");
    json_t *config = json_pack("{s:O, s:o, s:o}", "cmd", json_object_get(proc, "cmd"), "args",
                               args ? json_deep_copy(args) : json_array(), "envs",
                               envs ? json_deep_copy(envs) : json_object());
    const char *cwd = json_string_value(json_object_get(proc, "cwd"));
    if (config && cwd && *cwd)
        json_object_set_new(config, "cwd", json_string(cwd));
    return config;
}

static void s_start(e2b_sandbox_t *sb, http_request_t *req, json_t *msg)
{
    long long timeout_ms = s_header_number(req, "Connect-Timeout-Ms", 10);
    if (timeout_ms == -2)
        return e2b_rpc_fail(req, E2B_RPC_STREAM, "invalid_argument",
                            "Connect-Timeout-Ms must be a number of milliseconds (1 to 10 digits)");
    s_start_t st = {0};
    const char *bad = s_start_parse(msg, &st);
    if (bad) {
        s_start_clear(&st);
        return e2b_rpc_fail(req, E2B_RPC_STREAM, "invalid_argument", bad);
    }
    e2b_procs_t *procs = s_procs(sb);
    if (procs->count >= S_MAX_PROCS) {
        s_start_clear(&st);
        cleanup_free char *why = cb_strdup_printf(
            "%d processes started here are running in this sandbox already; end some first",
            S_MAX_PROCS);
        return e2b_rpc_fail(req, E2B_RPC_STREAM, "resource_exhausted", why);
    }
    s_proc_t *p = cb_xcalloc(1, sizeof *p);
    kg_command_opts_t opts = {
        .origin = "e2b",
        .command = cb_buf_str(&st.command),
        .env = (const char *const *)st.env,
        .cwd = st.cwd,
        .keep_stdin_open = st.stdin_open,
        .timeout_ms = timeout_ms > INT_MAX ? INT_MAX
                      : timeout_ms > 0     ? (int)timeout_ms
                                           : 0,
        .ring_bytes = S_RING_BYTES,
        .pty = st.pty,
        .cols = st.cols,
        .rows = st.rows,
        .on_output = s_on_output,
        .on_done = s_on_done,
        .arg = p,
    };
    cb_error_t err = {0};
    kg_command_t *cmd = kg_command_start(sb->kg, &opts, &err);
    s_start_clear(&st);
    if (!cmd) {
        free(p);
        /* A cwd that is missing or no directory is the caller's mistake, not ours. */
        bool theirs = err.kind == CB_ERR_SYSTEM &&
                      (err.errnum == ENOENT || err.errnum == ENOTDIR || err.errnum == EACCES);
        return theirs ? e2b_rpc_fail(req, E2B_RPC_STREAM, "invalid_argument", err.msg)
                      : e2b_rpc_fail_err(req, E2B_RPC_STREAM, &err);
    }
    p->procs = procs;
    p->cmd = cmd;
    p->pid = (uint32_t)kg_command_inside_pid(cmd);
    p->tag = cb_xstrdup_or_null(st.tag);
    p->config = s_config_json(msg);
    p->pty = st.pty;
    p->stdin_open = st.stdin_open;
    p->next = procs->procs;
    if (procs->procs)
        procs->procs->prev = p;
    procs->procs = p;
    procs->count++;
    if (e2b_rpc_stream_begin(req) < 0)
        return; /* the client is gone already: the process runs on, as a background one */
    s_stream_t *s = s_stream_new(p, req, true, 0);
    json_auto_t *start = json_pack("{s:{s:{s:I}}}", "event", "start", "pid", (json_int_t)p->pid);
    s_stream_send(s, start);
}

/* ---- the other calls ------------------------------------------------------------------------ */

static void s_connect(e2b_sandbox_t *sb, http_request_t *req, json_t *msg)
{
    long long timeout_ms = s_header_number(req, "Connect-Timeout-Ms", 10);
    if (timeout_ms == -2)
        return e2b_rpc_fail(req, E2B_RPC_STREAM, "invalid_argument",
                            "Connect-Timeout-Ms must be a number of milliseconds (1 to 10 digits)");
    s_proc_t *p = s_select(sb, req, E2B_RPC_STREAM, msg);
    if (!p)
        return;
    if (p->stream_count >= S_MAX_STREAMS) {
        cleanup_free char *why =
            cb_strdup_printf("process %u has %d open streams already", p->pid, S_MAX_STREAMS);
        return e2b_rpc_fail(req, E2B_RPC_STREAM, "resource_exhausted", why);
    }
    if (e2b_rpc_stream_begin(req) < 0)
        return;
    s_stream_t *s = s_stream_new(p, req, false, timeout_ms);
    json_auto_t *start = json_pack("{s:{s:{s:I}}}", "event", "start", "pid", (json_int_t)p->pid);
    s_stream_send(s, start);
}

static void s_list(e2b_sandbox_t *sb, http_request_t *req, json_t *msg)
{
    json_auto_t *list = json_array();
    for (s_proc_t *p = sb->procs ? sb->procs->procs : NULL; p; p = p->next) {
        json_t *info = json_pack("{s:O, s:I}", "config", p->config, "pid", (json_int_t)p->pid);
        if (info && p->tag)
            json_object_set_new(info, "tag", json_string(p->tag));
        json_array_append_new(list, info);
    }
    json_auto_t *out = json_pack("{s:O}", "processes", list);
    e2b_rpc_reply(req, out);
}

static void s_send_input(e2b_sandbox_t *sb, http_request_t *req, json_t *msg)
{
    s_proc_t *p = s_select(sb, req, E2B_RPC_UNARY, msg);
    if (!p)
        return;
    json_t *input = json_object_get(msg, "input");
    json_t *data = json_object_get(input, "stdin");
    if (!data)
        data = json_object_get(input, "pty");
    if (!json_is_string(data))
        return e2b_rpc_fail(req, E2B_RPC_UNARY, "invalid_argument",
                            "input needs stdin or pty: bytes, as base64");
    cleanup_buf cb_buf_t bytes = {0};
    if (!s_b64_decode(json_string_value(data), json_string_length(data), &bytes))
        return e2b_rpc_fail(req, E2B_RPC_UNARY, "invalid_argument", "the input is not base64");
    if (!p->stdin_open)
        return e2b_rpc_fail(req, E2B_RPC_UNARY, "failed_precondition",
                            "the process's stdin is closed (start it with stdin: true to send "
                            "input)");
    cb_error_t err = {0};
    if (bytes.len && kg_command_write_stdin(p->cmd, bytes.data, bytes.len, false, &err) < 0)
        return e2b_rpc_fail_err(req, E2B_RPC_UNARY, &err);
    e2b_rpc_reply_empty(req);
}

static void s_close_stdin(e2b_sandbox_t *sb, http_request_t *req, json_t *msg)
{
    s_proc_t *p = s_select(sb, req, E2B_RPC_UNARY, msg);
    if (!p)
        return;
    if (p->pty)
        return e2b_rpc_fail(req, E2B_RPC_UNARY, "failed_precondition",
                            "a terminal's input cannot be closed (send ctrl-d, \\x04, instead)");
    if (p->stdin_open) {
        cb_error_t err = {0};
        if (kg_command_write_stdin(p->cmd, NULL, 0, true, &err) < 0)
            return e2b_rpc_fail_err(req, E2B_RPC_UNARY, &err);
        p->stdin_open = false;
    }
    e2b_rpc_reply_empty(req);
}

static void s_send_signal(e2b_sandbox_t *sb, http_request_t *req, json_t *msg)
{
    json_t *v = json_object_get(msg, "signal");
    const char *name = json_string_value(v);
    long long n = json_is_integer(v) ? json_integer_value(v) : -1;
    int sig = (name && strcmp(name, "SIGNAL_SIGKILL") == 0) || n == SIGKILL   ? SIGKILL
              : (name && strcmp(name, "SIGNAL_SIGTERM") == 0) || n == SIGTERM ? SIGTERM
                                                                              : 0;
    if (!sig)
        return e2b_rpc_fail(req, E2B_RPC_UNARY, "invalid_argument",
                            "signal must be SIGNAL_SIGTERM or SIGNAL_SIGKILL");
    s_proc_t *p = s_select(sb, req, E2B_RPC_UNARY, msg);
    if (!p)
        return;
    cb_error_t err = {0};
    if (kg_command_signal(p->cmd, sig, &err) < 0) /* its whole process group */
        return e2b_rpc_fail_err(req, E2B_RPC_UNARY, &err);
    e2b_rpc_reply_empty(req);
}

static void s_update(e2b_sandbox_t *sb, http_request_t *req, json_t *msg)
{
    s_proc_t *p = s_select(sb, req, E2B_RPC_UNARY, msg);
    if (!p)
        return;
    json_t *pty = json_object_get(msg, "pty");
    if (!pty || json_is_null(pty)) { /* nothing to change */
        return e2b_rpc_reply_empty(req);
    }
    unsigned short cols = 0, rows = 0;
    json_t *size = json_object_get(pty, "size");
    if (!s_size_field(size, "cols", &cols) || !s_size_field(size, "rows", &rows))
        return e2b_rpc_fail(req, E2B_RPC_UNARY, "invalid_argument",
                            "pty.size needs cols and rows, each 1 to 65535");
    if (!p->pty)
        return e2b_rpc_fail(req, E2B_RPC_UNARY, "failed_precondition",
                            "the process does not run on a terminal (start it with pty)");
    cb_error_t err = {0};
    if (kg_command_resize(p->cmd, cols, rows, &err) < 0)
        return e2b_rpc_fail_err(req, E2B_RPC_UNARY, &err);
    e2b_rpc_reply_empty(req);
}

/* ---- dispatch ------------------------------------------------------------------------------- */

/* Each method's kind; the dispatcher reads the request's message once, and a handler gets it
 * only when it is one. */
static const struct {
    const char *name;
    e2b_rpc_kind_t kind;
    void (*fn)(e2b_sandbox_t *sb, http_request_t *req, json_t *msg);
} s_methods[] = {
    {"Start", E2B_RPC_STREAM, s_start},
    {"Connect", E2B_RPC_STREAM, s_connect},
    {"List", E2B_RPC_UNARY, s_list},
    {"SendInput", E2B_RPC_UNARY, s_send_input},
    {"SendSignal", E2B_RPC_UNARY, s_send_signal},
    {"CloseStdin", E2B_RPC_UNARY, s_close_stdin},
    {"Update", E2B_RPC_UNARY, s_update},
};

void e2b_process_handle(e2b_sandbox_t *sb, http_request_t *req, const char *method)
{
    for (size_t i = 0; i < sizeof s_methods / sizeof s_methods[0]; i++) {
        if (strcmp(s_methods[i].name, method) != 0)
            continue;
        json_auto_t *msg = e2b_rpc_request(req, s_methods[i].kind);
        if (msg)
            s_methods[i].fn(sb, req, msg);
        return;
    }
    e2b_rpc_kind_t kind = e2b_rpc_kind_of(req);
    if (strcmp(method, "StreamInput") == 0)
        return e2b_rpc_fail(req, kind, "unimplemented",
                            "process.Process/StreamInput is client-streaming, which HTTP/1.1 "
                            "clients cannot send; use SendInput (the SDKs' sendStdin)");
    cleanup_free char *why = cb_strdup_printf("process.Process/%s: no such method", method);
    e2b_rpc_fail(req, kind, "unimplemented", why);
}

void e2b_process_sandbox_end(e2b_sandbox_t *sb)
{
    e2b_procs_t *procs = sb->procs;
    if (!procs)
        return;
    const char *why = kg_sandbox_end_detail(sb->kg);
    cleanup_free char *text =
        cb_strdup_printf("the sandbox ended%s%s", why ? ": " : "", why ? why : "");
    while (procs->procs) {
        s_proc_t *p = procs->procs;
        /* The engine kills its processes with the sandbox; nothing of ours is called again. */
        kg_command_set_callbacks(p->cmd, NULL, NULL, NULL);
        while (p->streams)
            s_stream_finish(p->streams, "unavailable", text);
        s_proc_free(p);
    }
    free(procs);
    sb->procs = NULL;
}
