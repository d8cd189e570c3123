/* terminal.c: terminal sessions: an interactive bash on a real terminal (a PTY of the
 * sandbox's own devpts), whose directory and variables persist between calls, and the
 * terminal_* tools that type into it, read its screen and resize it.
 *
 * Why a PTY: REPLs, prompts (`read -p`) and full-screen programs need isatty, a line
 * discipline (ctrl-c is SIGINT to the foreground group) and a size. So the shell is a gateway
 * command with pty set (kg/command.h): bash -i is its controlling terminal's session leader,
 * TERM=xterm-256color.
 *
 * How session_execute knows where an input's output starts and ends: the shell is prepared
 * (through a one-time PROMPT_COMMAND taken from its environment, so nothing is typed or shown)
 * with a function __cb_s that prints an invisible OSC sequence ESC ] 6973 ; s ; NONCE BEL, and
 * a PROMPT_COMMAND that, after such an input, prints ESC ] 6973 ; d ; NONCE ; STATUS BEL. An
 * input is typed as one line, ` __cb_s NONCE; eval $'...'` (the input quoted byte by byte, so
 * no history expansion or quoting can touch it, and the leading space keeps it out of
 * history), with a fresh random NONCE each time. What the terminal shows before the start
 * sequence (the echo of the typed line, which holds the nonce) is dropped; what it shows until
 * the end sequence is the input's output.
 *
 * Every byte the terminal shows goes through one filter first (s_filter), which removes every
 * sequence of ours, ESC ] 6973 ; ... BEL, whatever its nonce, and holds back the bytes at the
 * end of a chunk that could still be the start of one until the next chunk says. So no marker
 * or part of one reaches anything: not the result, not a progress notification, not the screen,
 * not the raw output. A sequence longer than any of ours, or with a byte ours never has, is
 * passed on as the program's.
 *
 * The screen is libvterm's model of the terminal, fed with the filtered bytes; terminal_read
 * gives its rows and cursor, and the raw bytes since an offset from a bounded ring.
 *
 * A time limit (or a cancellation) interrupts the foreground program (SIGINT to the terminal's
 * foreground group, through the master: TIOCSIG) and reports "timeout"; the shell comes back
 * with a prompt and the session goes on. Only when no end sequence arrives within
 * TERMINAL_GRACE_MS is the shell killed, and the session ends.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <strings.h>
#include <vterm.h>

#include "cb/cleanup.h"
#include "mcp_private.h"
#include "kg/gateway.h"
#include "kg/command.h"

#define TERMINAL_OUTPUT_MAX (16u << 20) /* bytes kept of one input's output */
#define TERMINAL_RAW_RING (256u << 10)  /* raw output kept: the latest, up to twice this */
#define TERMINAL_GRACE_MS 3000          /* for the shell to come back after an interrupt */
#define TERMINAL_COLS_MAX 1000
#define TERMINAL_ROWS_MAX 500
#define TERMINAL_READ_MAX (1u << 20)
#define TERMINAL_INPUT_MAX (256u << 10) /* typed at roughly 30 KB/s through readline */

#define MARK_PREFIX "\033]6973;"
#define MARK_PREFIX_LEN (sizeof MARK_PREFIX - 1)
#define MARK_MAX 96 /* longer than any sequence of ours: "d;" 32 hex ";" status */

/* The shell's one-time setup, run by its first PROMPT_COMMAND (from the environment) and then
 * forgotten: nothing of it is exported to what the shell runs. */
static const char s_setup[] =
    "unset CELLBLOCK_TERMINAL_SETUP; export -n PROMPT_COMMAND; "
    "__cb_s() { __cb_n=$1; printf '\\033]6973;s;%s\\007' \"$1\"; }; "
    "PROMPT_COMMAND='__cb_rc=$?; if [ -n \"$__cb_n\" ]; then "
    "printf \"\\033]6973;d;%s;%s\\007\" \"$__cb_n\" \"$__cb_rc\"; __cb_n=; fi'; "
    "HISTCONTROL=ignorespace; PS1='\\w\\$ '; bind 'set enable-bracketed-paste off' 2>/dev/null";

typedef enum { RUN_NONE = 0, RUN_TYPED, RUN_OUTPUT } run_phase_t;

struct mcp_term {
    kg_command_t *shell; /* NULL once it has ended */
    VTerm *vt;
    VTermScreen *screen;
    unsigned short cols, rows;
    char hold[MARK_MAX + MARK_PREFIX_LEN]; /* bytes that may start a sequence of ours */
    size_t hold_len;
    cb_buf_t raw;         /* the latest filtered output */
    uint64_t raw_dropped; /* bytes cut from raw's front */
    /* the running input */
    run_phase_t phase;
    char nonce[33];
    cb_buf_t out;
    bool out_cut;
    const char *stop_status; /* "timeout" or "cancelled" once interrupted, else NULL */
    bool killed_foreground;  /* the interrupt was ignored: the foreground group got SIGKILL */
    int64_t started_ms;
};

/* ---- the running input --------------------------------------------------------------------- */

static void s_timer_stop(mcp_repl_t *repl)
{
    kg_timer_stop(repl->sandbox->server->gw, &repl->timer);
}

/* \r\n -> \n, in place: a terminal ends lines with both. */
static void s_crlf(cb_buf_t *b)
{
    size_t w = 0;
    for (size_t r = 0; r < b->len; r++)
        if (!(b->data[r] == '\r' && r + 1 < b->len && b->data[r + 1] == '\n'))
            b->data[w++] = b->data[r];
    b->len = w;
    if (b->data)
        b->data[w] = '\0';
}

/* Finish the running call. exit_code is borrowed (NULL: none). */
static void s_finish(mcp_repl_t *repl, const char *status, json_t *exit_code, const char *note)
{
    mcp_term_t *t = repl->term;
    mcp_call_t *call = repl->running;
    repl->running = NULL;
    s_timer_stop(repl);
    t->phase = RUN_NONE;
    t->stop_status = NULL;
    t->killed_foreground = false;
    if (!call) {
        cb_buf_clear(&t->out);
        return;
    }
    call->repl = NULL;
    call->cancel = NULL;
    s_crlf(&t->out);
    json_t *structured =
        json_pack("{s:s, s:s, s:s, s:s, s:O, s:f, s:[s*], s:[], s:n}", "session_id", repl->id,
                  "sandbox_id", repl->sandbox->id, "type", "terminal", "status", status,
                  "exit_code", exit_code ? exit_code : json_null(), "duration_ms",
                  (double)(cb_now_ms() - t->started_ms), "notes", note, "results", "error");
    if (t->out_cut)
        json_array_append_new(json_object_get(structured, "notes"),
                              json_string("The output was longer than 16 MiB; the rest was "
                                          "dropped (terminal_read shows the screen)."));
    cleanup_free char *prefix = cb_strdup_printf("%s-%lld", repl->id, (long long)t->started_ms);
    cleanup_free char *out = cb_text_lossy(t->out.data ? t->out.data : "", t->out.len, NULL);
    cleanup_free char *closing =
        json_is_integer(exit_code)
            ? cb_strdup_printf("[exit code %lld]", (long long)json_integer_value(exit_code))
            : cb_strdup_printf("[%s]", status);
    json_t *content = mcp_shell_result(repl->sandbox->server, repl->sandbox, prefix, out, "",
                                       structured, closing);
    cb_buf_clear(&t->out);
    t->out_cut = false;
    mcp_call_finish(call, content, structured, strcmp(status, "ok") != 0);
}

/* A sequence of ours: s;NONCE, d;NONCE;STATUS. Others (stale nonces, forgeries) only vanish. */
static void s_on_mark(mcp_repl_t *repl, const char *body, size_t len)
{
    mcp_term_t *t = repl->term;
    if (!repl->running || t->phase == RUN_NONE)
        return;
    char text[MARK_MAX + 1];
    snprintf(text, sizeof text, "%.*s", (int)len, body);
    size_t nlen = strlen(t->nonce);
    if (t->phase == RUN_TYPED && text[0] == 's' && text[1] == ';' &&
        strcmp(text + 2, t->nonce) == 0) {
        t->phase = RUN_OUTPUT;
        return;
    }
    if (text[0] != 'd' || text[1] != ';' || strncmp(text + 2, t->nonce, nlen) != 0 ||
        text[2 + nlen] != ';')
        return;
    char *end = NULL;
    long long rc = strtoll(text + 3 + nlen, &end, 10);
    if (!end || *end)
        return;
    json_auto_t *code = json_integer(rc);
    if (t->stop_status)
        s_finish(repl, t->stop_status, code,
                 strcmp(t->stop_status, "timeout") == 0
                     ? (t->killed_foreground
                            ? "The input ran past its time limit and ignored the interrupt "
                              "(SIGINT), so its foreground programs were killed (SIGKILL); "
                              "the session goes on."
                            : "The input ran past its time limit and was interrupted (SIGINT "
                              "to the terminal's foreground programs); the session goes on.")
                     : "The input was cancelled and interrupted; the session goes on.");
    else
        s_finish(repl, rc == 0 ? "ok" : "error", code, NULL);
}

/* ---- the filter ---------------------------------------------------------------------------- */

/* Filtered output: to the raw ring, the screen, and the running input. */
static void s_on_plain(mcp_repl_t *repl, const char *data, size_t len)
{
    mcp_term_t *t = repl->term;
    if (!len)
        return;
    cb_buf_append(&t->raw, data, len);
    if (t->raw.len > 2 * TERMINAL_RAW_RING) {
        size_t cut = t->raw.len - TERMINAL_RAW_RING;
        memmove(t->raw.data, t->raw.data + cut, TERMINAL_RAW_RING);
        t->raw.len = TERMINAL_RAW_RING;
        t->raw.data[t->raw.len] = '\0';
        t->raw_dropped += cut;
    }
    vterm_input_write(t->vt, data, len);
    char answers[256]; /* what the terminal would answer (cursor reports...): not sent */
    while (vterm_output_read(t->vt, answers, sizeof answers) > 0)
        ;
    if (repl->running && t->phase == RUN_OUTPUT) {
        size_t room = TERMINAL_OUTPUT_MAX - t->out.len;
        if (len > room)
            t->out_cut = true;
        cb_buf_append(&t->out, data, len < room ? len : room);
        mcp_call_progress(repl->running, data, len);
    }
}

/* Can bytes p[0..n) (n < prefix) still grow into our prefix? */
static bool s_prefix_of_mark(const char *p, size_t n)
{
    return n < MARK_PREFIX_LEN && memcmp(p, MARK_PREFIX, n) == 0;
}

/* A sequence body holds only what ours do: letters, digits, ';'. */
static bool s_mark_byte(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || c == ';' || c == '-';
}

static void s_filter(mcp_repl_t *repl, const char *data, size_t len)
{
    mcp_term_t *t = repl->term;
    cb_buf_t work = {0};
    cb_buf_append(&work, t->hold, t->hold_len);
    cb_buf_append(&work, data, len);
    t->hold_len = 0;
    const char *p = work.data, *end = work.data + work.len, *plain = p;
    while (p < end) {
        const char *esc = memchr(p, '\033', (size_t)(end - p));
        if (!esc)
            break;
        size_t left = (size_t)(end - esc);
        if (left < MARK_PREFIX_LEN) {
            if (s_prefix_of_mark(esc, left)) { /* may be ours: wait for more */
                s_on_plain(repl, plain, (size_t)(esc - plain));
                memcpy(t->hold, esc, left);
                t->hold_len = left;
                plain = p = end;
                break;
            }
            p = esc + 1;
            continue;
        }
        if (memcmp(esc, MARK_PREFIX, MARK_PREFIX_LEN) != 0) {
            p = esc + 1;
            continue;
        }
        const char *body = esc + MARK_PREFIX_LEN, *q = body;
        while (q < end && q - body <= MARK_MAX && s_mark_byte(*q))
            q++;
        if (q < end && *q == '\007' && q - body <= MARK_MAX) { /* one of ours */
            s_on_plain(repl, plain, (size_t)(esc - plain));
            plain = p = q + 1;
            s_on_mark(repl, body, (size_t)(q - body));
            continue;
        }
        if (q == end && q - body <= MARK_MAX) { /* unfinished: wait for more */
            s_on_plain(repl, plain, (size_t)(esc - plain));
            memcpy(t->hold, esc, left);
            t->hold_len = left;
            plain = p = end;
            break;
        }
        p = esc + 1; /* not ours after all: the program's bytes */
    }
    s_on_plain(repl, plain, (size_t)(end - plain));
    cb_buf_free(&work);
}

/* ---- the shell ----------------------------------------------------------------------------- */

static void s_on_output(kg_command_t *c, const char *stream, const char *data, size_t len,
                        void *arg)
{
    mcp_repl_t *repl = arg;
    if (repl->term)
        s_filter(repl, data, len);
}

static void s_on_done(kg_command_t *c, json_t *result, void *arg)
{
    mcp_repl_t *repl = arg;
    mcp_term_t *t = repl->term;
    if (t)
        t->shell = NULL; /* the gateway frees it (sandbox removal) or we forget it below */
    if (!repl->failure)
        repl->failure = cb_xstrdup("the shell exited");
    if (repl->running)
        s_finish(repl, t && t->stop_status ? t->stop_status : "error",
                 json_object_get(result, "exit_code"),
                 t && t->stop_status
                     ? "The input was interrupted but the shell did not come back in time, so "
                       "it was killed; the session has ended (session_create opens a new one)."
                     : "The shell ended; the session is over (session_create opens a new one).");
}

/* The grace period after an interrupt ran out. A program that ignored SIGINT still holds the
 * terminal's foreground: SIGKILL its group and wait once more. Else the shell itself is stuck. */
static int s_on_grace(zloop_t *loop, int timer_id, void *arg)
{
    mcp_repl_t *repl = arg;
    repl->timer = -1;
    mcp_term_t *t = repl->term;
    if (t && t->shell && !t->killed_foreground && kg_command_foreground_is_own(t->shell) == 0) {
        t->killed_foreground = true;
        cb_error_t err = {0};
        if (kg_command_signal_foreground(t->shell, SIGKILL, &err) < 0)
            cb_warn("terminal %.8s: kill the foreground: %s", repl->id, err.msg);
        repl->timer =
            kg_timer_start(repl->sandbox->server->gw, TERMINAL_GRACE_MS, 1, s_on_grace, repl);
        return 0;
    }
    free(repl->failure);
    repl->failure = cb_xstrdup("an input was interrupted and the shell did not come back");
    cb_error_t err = {0};
    if (repl->term && repl->term->shell && kg_command_kill(repl->term->shell, &err) < 0)
        cb_warn("terminal %.8s: kill: %s", repl->id, err.msg);
    return 0;
}

/* Interrupt the running input (a timeout or a cancellation) and give the shell a grace period
 * to come back. */
static void s_interrupt(mcp_repl_t *repl, const char *status)
{
    mcp_term_t *t = repl->term;
    if (!t || !t->shell || t->stop_status)
        return;
    t->stop_status = status;
    cb_error_t err = {0};
    if (kg_command_interrupt(t->shell, &err) < 0)
        cb_warn("terminal %.8s: interrupt: %s", repl->id, err.msg);
    s_timer_stop(repl);
    repl->timer = kg_timer_start(repl->sandbox->server->gw, TERMINAL_GRACE_MS, 1, s_on_grace, repl);
}

static int s_on_timeout(zloop_t *loop, int timer_id, void *arg)
{
    mcp_repl_t *repl = arg;
    repl->timer = -1;
    s_interrupt(repl, "timeout");
    return 0;
}

static void s_cancel(mcp_call_t *call)
{
    mcp_repl_t *repl = call->repl;
    if (repl && repl->running == call)
        s_interrupt(repl, "cancelled");
}

int mcp_terminal_start(mcp_repl_t *repl, unsigned short cols, unsigned short rows, cb_error_t *err)
{
    mcp_sandbox_t *sb = repl->sandbox;
    if (cols > TERMINAL_COLS_MAX || rows > TERMINAL_ROWS_MAX)
        return cb_error_fail(err, CB_ERR_INVALID, "a terminal is at most %d x %d",
                             TERMINAL_COLS_MAX, TERMINAL_ROWS_MAX);
    mcp_term_t *t = cb_xcalloc(1, sizeof *t);
    t->cols = cols ? cols : 80;
    t->rows = rows ? rows : 24;
    t->vt = vterm_new(t->rows, t->cols);
    if (!t->vt) {
        free(t);
        return cb_error_fail(err, CB_ERR_INTERNAL, "no memory for a terminal screen");
    }
    vterm_set_utf8(t->vt, 1);
    t->screen = vterm_obtain_screen(t->vt);
    vterm_screen_reset(t->screen, 1);
    repl->term = t;
    cleanup_free char *setup = cb_strdup_printf("CELLBLOCK_TERMINAL_SETUP=%s", s_setup);
    const char *mine[] = {setup, "PROMPT_COMMAND=eval \"$CELLBLOCK_TERMINAL_SETUP\"",
                          "TERM=xterm-256color", NULL};
    size_t n = 0;
    while (sb->env_list && sb->env_list[n])
        n++;
    cleanup_free const char **env = cb_xcalloc(n + 4, sizeof *env);
    for (size_t i = 0; i < n; i++)
        env[i] = sb->env_list[i];
    for (size_t i = 0; mine[i]; i++)
        env[n + i] = mine[i];
    kg_command_opts_t opts = {.origin = "mcp terminal",
                              .command = "exec /bin/bash --noprofile --norc -i",
                              .env = env,
                              .pty = true,
                              .cols = t->cols,
                              .rows = t->rows,
                              .ring_bytes = 4096, /* its raw output is kept here, filtered */
                              .on_output = s_on_output,
                              .on_done = s_on_done,
                              .arg = repl};
    t->shell = kg_command_start(sb->kg, &opts, err);
    return t->shell ? 0 : -1;
}

/* The input as one line of bash: $'...' with every byte that is not plainly safe as \xHH. */
static char *s_quote(const char *input)
{
    cb_buf_t b = {0};
    cb_buf_append(&b, "$'", 2);
    for (const unsigned char *p = (const unsigned char *)input; *p; p++) {
        bool safe = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                    (*p >= '0' && *p <= '9') || (*p && strchr(" _-./,:=+%@", *p));
        if (safe)
            cb_buf_append(&b, p, 1);
        else
            cb_buf_printf(&b, "\\x%02x", *p);
    }
    cb_buf_append(&b, "'", 1);
    return cb_buf_take(&b);
}

void mcp_terminal_execute(mcp_repl_t *repl, mcp_call_t *call, const char *input, int timeout_ms)
{
    mcp_term_t *t = repl->term;
    if (repl->failure || !t || !t->shell)
        return mcp_call_fail(call, "session %s cannot run: %s", repl->id,
                             repl->failure ? repl->failure : "no shell");
    if (repl->running)
        return mcp_call_fail(call,
                             "session %s is still running an input; wait for it, answer it with "
                             "terminal_send, or use another session",
                             repl->id);
    if (strlen(input) > TERMINAL_INPUT_MAX)
        return mcp_call_fail(call,
                             "the input is %zu bytes, more than the %u a terminal takes at once "
                             "(it is typed through the line editor): write it to a file with "
                             "file_upload and run `bash FILE`, or use command_execute",
                             strlen(input), TERMINAL_INPUT_MAX);
    if (kg_command_foreground_is_own(t->shell) == 0)
        return mcp_call_fail(call,
                             "a program holds the terminal of session %s (a REPL, an editor...): "
                             "drive it with terminal_send and terminal_read, or end it (keys "
                             "ctrl-c, ctrl-d) before session_execute",
                             repl->id);
    zuuid_t *uuid = zuuid_new();
    snprintf(t->nonce, sizeof t->nonce, "%s", zuuid_str(uuid)); /* 32 hex digits, lower case */
    zuuid_destroy(&uuid);
    for (char *c = t->nonce; *c; c++)
        *c = (char)(*c >= 'A' && *c <= 'F' ? *c - 'A' + 'a' : *c);
    cleanup_free char *quoted = s_quote(input);
    cleanup_free char *line = cb_strdup_printf(" __cb_s %s; eval %s\r", t->nonce, quoted);
    cb_error_t err = {0};
    if (kg_command_write_stdin(t->shell, line, strlen(line), false, &err) < 0)
        return mcp_call_fail_err(call, &err);
    cb_buf_clear(&t->out);
    t->out_cut = false;
    t->phase = RUN_TYPED;
    t->stop_status = NULL;
    t->started_ms = cb_now_ms();
    repl->running = call;
    call->repl = repl;
    call->cancel = s_cancel;
    if (timeout_ms > 0)
        repl->timer =
            kg_timer_start(repl->sandbox->server->gw, (size_t)timeout_ms, 1, s_on_timeout, repl);
}

void mcp_terminal_stop(mcp_repl_t *repl)
{
    s_timer_stop(repl);
    mcp_term_t *t = repl->term;
    if (!t)
        return;
    if (repl->running) {
        if (!repl->failure)
            repl->failure = cb_xstrdup("the session was closed");
        s_finish(repl, "cancelled", NULL, "The session was closed while this input ran.");
    }
    repl->term = NULL;
    if (t->shell)
        kg_command_forget(&t->shell);
    vterm_free(t->vt);
    cb_buf_free(&t->raw);
    cb_buf_free(&t->out);
    free(t);
}

/* ---- the terminal_* tools ------------------------------------------------------------------ */

/* The terminal session the call names; NULL (the call failed) when there is none. */
static mcp_repl_t *s_terminal_for_call(mcp_call_t *call, json_t *args)
{
    cb_error_t err = {0};
    mcp_repl_t *repl = mcp_repl_find(call->session->server, call->session,
                                     mcp_arg_str(args, "session_id", NULL), &err);
    if (!repl)
        return mcp_call_fail_err(call, &err), NULL;
    if (repl->type != MCP_REPL_TERMINAL || !repl->term)
        return mcp_call_fail(call, "session %s is not a terminal session", repl->id), NULL;
    if (!repl->term->shell)
        return mcp_call_fail(call, "session %s has ended: %s", repl->id,
                             repl->failure ? repl->failure : "its shell exited"),
               NULL;
    return repl;
}

static const struct {
    const char *name;
    const char *bytes;
} s_keys[] = {{"enter", "\r"},         {"return", "\r"},      {"tab", "\t"},
              {"escape", "\033"},      {"esc", "\033"},       {"backspace", "\177"},
              {"up", "\033[A"},        {"down", "\033[B"},    {"right", "\033[C"},
              {"left", "\033[D"},      {"home", "\033[H"},    {"end", "\033[F"},
              {"delete", "\033[3~"},   {"insert", "\033[2~"}, {"pageup", "\033[5~"},
              {"pagedown", "\033[6~"}, {"space", " "},        {"f1", "\033OP"},
              {"f2", "\033OQ"},        {"f3", "\033OR"},      {"f4", "\033OS"}};

/* A key's bytes into b; false when the name is unknown. */
static bool s_key(const char *name, cb_buf_t *b)
{
    if (strncasecmp(name, "ctrl-", 5) == 0 && strlen(name) == 6) {
        char c = name[5];
        c = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
        if (c >= 'a' && c <= 'z') {
            char code = (char)(c - 'a' + 1);
            cb_buf_append(b, &code, 1);
            return true;
        }
        static const char extra[] = "[\\]^_";
        const char *at = c ? strchr(extra, c) : NULL;
        if (at) {
            char code = (char)(0x1b + (at - extra));
            cb_buf_append(b, &code, 1);
            return true;
        }
        return false;
    }
    for (size_t i = 0; i < sizeof s_keys / sizeof s_keys[0]; i++)
        if (strcasecmp(name, s_keys[i].name) == 0) {
            cb_buf_append(b, s_keys[i].bytes, strlen(s_keys[i].bytes));
            return true;
        }
    return false;
}

void mcp_tool_terminal_send(mcp_call_t *call, json_t *args)
{
    mcp_repl_t *repl = s_terminal_for_call(call, args);
    if (!repl)
        return;
    cb_buf_t bytes = {0};
    json_t *text = json_object_get(args, "text");
    if (json_is_string(text))
        cb_buf_append(&bytes, json_string_value(text), json_string_length(text));
    json_t *keys = json_object_get(args, "keys");
    size_t i;
    json_t *key;
    json_array_foreach (keys, i, key) {
        const char *name = json_string_value(key);
        if (!name || !s_key(name, &bytes)) {
            cb_buf_free(&bytes);
            return mcp_call_fail(call,
                                 "unknown key '%.30s' (enter, tab, escape, backspace, up, down, "
                                 "left, right, home, end, delete, insert, pageup, pagedown, "
                                 "space, f1-f4, ctrl-a ... ctrl-z)",
                                 name ? name : "");
        }
    }
    cb_error_t err = {0};
    if (bytes.len &&
        kg_command_write_stdin(repl->term->shell, bytes.data, bytes.len, false, &err) < 0) {
        cb_buf_free(&bytes);
        return mcp_call_fail_err(call, &err);
    }
    json_t *out = json_pack("{s:s, s:I}", "session_id", repl->id, "bytes", (json_int_t)bytes.len);
    cb_buf_free(&bytes);
    mcp_call_finish(call, NULL, out, false);
}

/* One UTF-8 encoding of a code point (a bad one as U+FFFD) into b. */
static void s_utf8(cb_buf_t *b, uint32_t c)
{
    char u[4];
    if (c == 0 || (c >= 0xD800 && c <= 0xDFFF) || c > 0x10FFFF)
        c = 0xFFFD;
    if (c < 0x80) {
        u[0] = (char)c;
        cb_buf_append(b, u, 1);
    } else if (c < 0x800) {
        u[0] = (char)(0xC0 | (c >> 6));
        u[1] = (char)(0x80 | (c & 0x3F));
        cb_buf_append(b, u, 2);
    } else if (c < 0x10000) {
        u[0] = (char)(0xE0 | (c >> 12));
        u[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        u[2] = (char)(0x80 | (c & 0x3F));
        cb_buf_append(b, u, 3);
    } else {
        u[0] = (char)(0xF0 | (c >> 18));
        u[1] = (char)(0x80 | ((c >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((c >> 6) & 0x3F));
        u[3] = (char)(0x80 | (c & 0x3F));
        cb_buf_append(b, u, 4);
    }
}

/* The screen's rows as text, trailing blanks cut. Caller owns return value. */
static json_t *s_screen_rows(mcp_term_t *t)
{
    json_t *rows = json_array();
    int nrows, ncols;
    vterm_get_size(t->vt, &nrows, &ncols);
    for (int r = 0; rows && r < nrows; r++) {
        cb_buf_t line = {0};
        size_t kept = 0; /* length up to the last non-blank cell */
        for (int c = 0; c < ncols; c++) {
            VTermScreenCell cell;
            if (!vterm_screen_get_cell(t->screen, (VTermPos){.row = r, .col = c}, &cell))
                continue;
            if (cell.chars[0] == (uint32_t)-1)
                continue; /* the right half of a wide character */
            if (cell.chars[0] == 0) {
                cb_buf_append(&line, " ", 1);
                continue;
            }
            for (int k = 0; k < VTERM_MAX_CHARS_PER_CELL && cell.chars[k]; k++)
                s_utf8(&line, cell.chars[k]);
            kept = line.len;
        }
        if (json_array_append_new(rows, json_stringn(line.data ? line.data : "", kept)) < 0)
            json_decref(rows), rows = NULL;
        cb_buf_free(&line);
    }
    return rows;
}

void mcp_tool_terminal_read(mcp_call_t *call, json_t *args)
{
    mcp_repl_t *repl = s_terminal_for_call(call, args);
    if (!repl)
        return;
    mcp_term_t *t = repl->term;
    VTermPos cursor;
    vterm_state_get_cursorpos(vterm_obtain_state(t->vt), &cursor);
    json_t *rows = s_screen_rows(t);
    uint64_t total = t->raw_dropped + t->raw.len;
    int own = kg_command_foreground_is_own(t->shell);
    json_t *out = json_pack("{s:s, s:o, s:{s:i, s:i}, s:i, s:i, s:b, s:s, s:I}", "session_id",
                            repl->id, "screen", rows ? rows : json_array(), "cursor", "row",
                            cursor.row, "col", cursor.col, "cols", t->cols, "rows", t->rows, "busy",
                            repl->running != NULL, "foreground",
                            own == 1   ? "shell"
                            : own == 0 ? "program"
                                       : "unknown",
                            "raw_next", (json_int_t)total);
    json_t *from = json_object_get(args, "raw_offset");
    if (out && json_is_integer(from)) {
        uint64_t want = (uint64_t)json_integer_value(from);
        uint64_t start = want < t->raw_dropped ? t->raw_dropped : want > total ? total : want;
        size_t max = (size_t)mcp_arg_num(args, "max_bytes", TERMINAL_READ_MAX);
        size_t n = total - start < max ? (size_t)(total - start) : max;
        size_t len = 0;
        cleanup_free char *text =
            cb_text_lossy(t->raw.data ? t->raw.data + (start - t->raw_dropped) : "", n, &len);
        json_object_set_new(out, "raw", json_stringn(text, len));
        json_object_set_new(out, "raw_offset", json_integer((json_int_t)start));
        json_object_set_new(out, "raw_next", json_integer((json_int_t)(start + n)));
    }
    cb_buf_t shown = {0};
    size_t i;
    json_t *row;
    json_array_foreach (json_object_get(out, "screen"), i, row)
        cb_buf_printf(&shown, "%s\n", json_string_value(row));
    cb_buf_printf(&shown, "[cursor at row %d, column %d]", cursor.row, cursor.col);
    cleanup_free char *text = cb_buf_take(&shown);
    mcp_call_finish(call, json_pack("[o]", mcp_text_block(text)), out, false);
}

void mcp_tool_terminal_resize(mcp_call_t *call, json_t *args)
{
    mcp_repl_t *repl = s_terminal_for_call(call, args);
    if (!repl)
        return;
    mcp_term_t *t = repl->term;
    unsigned short cols = (unsigned short)mcp_arg_num(args, "cols", t->cols);
    unsigned short rows = (unsigned short)mcp_arg_num(args, "rows", t->rows);
    if (cols > TERMINAL_COLS_MAX || rows > TERMINAL_ROWS_MAX)
        return mcp_call_fail(call, "a terminal is at most %d x %d", TERMINAL_COLS_MAX,
                             TERMINAL_ROWS_MAX);
    cb_error_t err = {0};
    if (kg_command_resize(t->shell, cols, rows, &err) < 0)
        return mcp_call_fail_err(call, &err);
    vterm_set_size(t->vt, rows, cols);
    t->cols = cols;
    t->rows = rows;
    mcp_call_finish(
        call, NULL,
        json_pack("{s:s, s:i, s:i}", "session_id", repl->id, "cols", cols, "rows", rows), false);
}
