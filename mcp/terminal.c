/* terminal.c: terminal sessions, a bash that lives on between session_execute calls.
 *
 * The shell is a gateway command (bash reading its stdin, no tty) kept open. Each input is sent
 * as one `eval` of a quoted here-document, so a syntax error in it is the eval's failure, not
 * the shell's end, and `cd`, variables and functions persist. After it the shell prints a
 * marker line with the exit status on stdout and a marker line on stderr; the output of the
 * input is what came before the markers. The marker holds a fresh random nonce, so no output
 * can fake it.
 *
 * One input runs at a time. A timeout (or a cancellation) kills the shell: the running command
 * could otherwise never be told apart from the next one, so the session ends and says so.
 */
#include <errno.h>
#include <string.h>

#include "cb/cleanup.h"
#include "mcp_private.h"
#include "kg/gateway.h"
#include "kg/command.h"

#define TERMINAL_OUTPUT_MAX (16u << 20) /* bytes kept of each stream of one input */

static void s_end_timer(mcp_repl_t *repl)
{
    kg_timer_stop(repl->sandbox->server->gw, &repl->timer);
}

/* Finish the running call with what the streams hold (cut at the markers when found).
 * exit_code is borrowed (NULL: none). */
static void s_finish(mcp_repl_t *repl, const char *status, json_t *exit_code, const char *note)
{
    mcp_call_t *call = repl->running;
    repl->running = NULL;
    s_end_timer(repl);
    if (!call)
        return;
    call->repl = NULL;
    call->cancel = NULL;
    json_t *structured =
        json_pack("{s:s, s:s, s:s, s:s, s:O, s:f, s:[s*], s:[], s:n}", "session_id", repl->id,
                  "sandbox_id", repl->sandbox->id, "type", "terminal", "status", status,
                  "exit_code", exit_code ? exit_code : json_null(), "duration_ms",
                  (double)(cb_now_ms() - repl->started_ms), "notes", note, "results", "error");
    cleanup_free char *prefix = cb_strdup_printf("%s-%lld", repl->id, (long long)repl->started_ms);
    cleanup_free char *out =
        cb_text_lossy(repl->out.data ? repl->out.data : "", repl->out.len, NULL);
    cleanup_free char *err =
        cb_text_lossy(repl->err.data ? repl->err.data : "", repl->err.len, NULL);
    cleanup_free char *closing =
        json_is_integer(exit_code)
            ? cb_strdup_printf("[exit code %lld]", (long long)json_integer_value(exit_code))
            : cb_strdup_printf("[%s]", status);
    json_t *content = mcp_shell_result(repl->sandbox->server, repl->sandbox, prefix, out, err,
                                       structured, closing);
    cb_buf_clear(&repl->out);
    cb_buf_clear(&repl->err);
    mcp_call_finish(call, content, structured, strcmp(status, "ok") != 0);
}

/* Both markers seen: cut them off and finish. The buffers hold raw bytes (NULs too). */
static void s_check_markers(mcp_repl_t *repl)
{
    char needle[64];
    int n = snprintf(needle, sizeof needle, "\n%s ", repl->marker);
    char *o = repl->out.data ? memmem(repl->out.data, repl->out.len, needle, (size_t)n) : NULL;
    char *end = o ? memchr(o + n, '\n', repl->out.len - (size_t)(o + n - repl->out.data)) : NULL;
    int m = snprintf(needle, sizeof needle, "\n%s\n", repl->marker);
    char *e = repl->err.data ? memmem(repl->err.data, repl->err.len, needle, (size_t)m) : NULL;
    if (!o || !end || !e)
        return;
    long long rc = strtoll(o + n, NULL, 10);
    repl->out.len = (size_t)(o - repl->out.data);
    repl->err.len = (size_t)(e - repl->err.data);
    json_auto_t *code = json_integer(rc);
    s_finish(repl, rc == 0 ? "ok" : "error", code, NULL);
}

static void s_on_output(kg_command_t *c, const char *stream, const char *data, size_t len,
                        void *arg)
{
    mcp_repl_t *repl = arg;
    if (!repl->running)
        return; /* output between inputs (a background job's): dropped */
    cb_buf_t *buf = strcmp(stream, "stderr") == 0 ? &repl->err : &repl->out;
    if (buf->len + len <= TERMINAL_OUTPUT_MAX)
        cb_buf_append(buf, data, len);
    mcp_call_progress(repl->running, data, len);
    s_check_markers(repl);
}

static void s_on_done(kg_command_t *c, json_t *result, void *arg)
{
    mcp_repl_t *repl = arg;
    repl->shell = NULL; /* the gateway frees it (sandbox removal) or we forget it below */
    const char *why = repl->failure ? repl->failure : "the shell exited";
    if (!repl->failure)
        repl->failure = cb_xstrdup(why);
    if (repl->running) {
        bool timed_out = repl->timed_out;
        s_finish(repl, timed_out ? "timeout" : "error", json_object_get(result, "exit_code"),
                 timed_out
                     ? "The input ran past its time limit; the shell was killed and the "
                       "session has ended (session_create opens a new one)."
                     : "The shell ended; the session is over (session_create opens a new one).");
    }
}

static int s_on_timeout(zloop_t *loop, int timer_id, void *arg)
{
    mcp_repl_t *repl = arg;
    repl->timer = -1;
    repl->timed_out = true;
    free(repl->failure);
    repl->failure = cb_xstrdup("an input ran past its time limit and the shell was killed");
    cb_error_t err = {0};
    if (repl->shell && kg_command_kill(repl->shell, &err) < 0)
        cb_warn("terminal %.8s: kill: %s", repl->id, err.msg);
    return 0;
}

static void s_cancel(mcp_call_t *call)
{
    mcp_repl_t *repl = call->repl;
    if (!repl || repl->running != call)
        return;
    free(repl->failure);
    repl->failure = cb_xstrdup("an input was cancelled and the shell was killed");
    cb_error_t err = {0};
    if (repl->shell && kg_command_kill(repl->shell, &err) < 0)
        cb_warn("terminal %.8s: kill: %s", repl->id, err.msg);
}

int mcp_terminal_start(mcp_repl_t *repl, cb_error_t *err)
{
    mcp_sandbox_t *sb = repl->sandbox;
    kg_command_opts_t opts = {.command = "exec /bin/bash --noprofile --norc",
                              .env = (const char *const *)sb->env_list,
                              .keep_stdin_open = true,
                              .on_output = s_on_output,
                              .on_done = s_on_done,
                              .arg = repl};
    repl->shell = kg_command_start(sb->kg, &opts, err);
    return repl->shell ? 0 : -1;
}

void mcp_terminal_execute(mcp_repl_t *repl, mcp_call_t *call, const char *input, int timeout_ms)
{
    if (repl->failure || !repl->shell)
        return mcp_call_fail(call, "session %s cannot run: %s", repl->id,
                             repl->failure ? repl->failure : "no shell");
    if (repl->running)
        return mcp_call_fail(call,
                             "session %s is still running an input; wait for it, or use "
                             "another session",
                             repl->id);
    char nonce[17];
    zuuid_t *uuid = zuuid_new();
    snprintf(nonce, sizeof nonce, "%.16s", uuid ? zuuid_str(uuid) : "0000000000000000");
    zuuid_destroy(&uuid);
    snprintf(repl->marker, sizeof repl->marker, "__cellblock_done_%s", nonce);
    cleanup_free char *script = cb_strdup_printf(
        "eval \"$(cat <<'__cellblock_input_%s'\n%s\n__cellblock_input_%s\n)\"\n"
        "__cellblock_rc=$?; printf '\\n%s %%d\\n' \"$__cellblock_rc\"; printf '\\n%s\\n' >&2\n",
        nonce, input, nonce, repl->marker, repl->marker);
    cb_error_t err = {0};
    if (kg_command_write_stdin(repl->shell, script, strlen(script), false, &err) < 0)
        return mcp_call_fail_err(call, &err);
    cb_buf_clear(&repl->out);
    cb_buf_clear(&repl->err);
    repl->running = call;
    repl->started_ms = cb_now_ms();
    call->repl = repl;
    call->cancel = s_cancel;
    if (timeout_ms > 0)
        repl->timer =
            kg_timer_start(repl->sandbox->server->gw, (size_t)timeout_ms, 1, s_on_timeout, repl);
}

void mcp_terminal_stop(mcp_repl_t *repl)
{
    s_end_timer(repl);
    if (repl->running) {
        if (!repl->failure)
            repl->failure = cb_xstrdup("the session was closed");
        s_finish(repl, "cancelled", NULL, "The session was closed while this input ran.");
    }
    if (repl->shell) {
        kg_command_t *shell = repl->shell;
        repl->shell = NULL;
        kg_command_forget(&shell);
    }
    cb_buf_free(&repl->out);
    cb_buf_free(&repl->err);
}
