/* processes.c: the process_* tools: every process in a sandbox, signals to one of them, and the
 * output of a background command read later (E2B's commands.list, kill and connect).
 *
 * The gateway does the work (kg/command.h): it lists a sandbox's processes from the host side
 * through the pid namespace of its init, translates a pid inside to the host process and holds
 * it by a pidfd before signalling it, so no pid outside the sandbox can be hit. A command id
 * names a command the server started (command_execute); its process group is signalled, which
 * reaches its background jobs too. Output is read by byte offset from the command's bounded
 * buffers: a background command keeps its latest output, up to MCP_BACKGROUND_RING_BYTES per
 * stream (twice that at most), and an offset older than what is kept reads from the oldest byte
 * still there. A foreground command whose `&` jobs still hold its stdout or stderr when it
 * returns is kept the same way (jobs.c): their later output is read under its id.
 */
#include <signal.h>
#include <string.h>
#include <strings.h>

#include "cb/cleanup.h"
#include "mcp_private.h"
#include "kg/command.h"

#define OUTPUT_READ_DEFAULT (64u << 10)

static const struct {
    const char *name;
    int sig;
} s_signals[] = {{"KILL", SIGKILL}, {"TERM", SIGTERM}, {"INT", SIGINT},    {"HUP", SIGHUP},
                 {"QUIT", SIGQUIT}, {"USR1", SIGUSR1}, {"USR2", SIGUSR2},  {"STOP", SIGSTOP},
                 {"CONT", SIGCONT}, {"ALRM", SIGALRM}, {"WINCH", SIGWINCH}};

/* "SIGTERM", "TERM", "sigterm": the signal; 0 when unknown. */
static int s_signal_of(const char *name)
{
    if (strncasecmp(name, "SIG", 3) == 0)
        name += 3;
    for (size_t i = 0; i < sizeof s_signals / sizeof s_signals[0]; i++)
        if (strcasecmp(name, s_signals[i].name) == 0)
            return s_signals[i].sig;
    return 0;
}

/* The command with this id: in the sandbox the call names, else in any sandbox of the server
 * the session may reach. *sb_out is its sandbox. NULL (the call failed) when there is none. */
static kg_command_t *s_find_command(mcp_call_t *call, json_t *args, const char *id,
                                    mcp_sandbox_t **sb_out)
{
    mcp_server_t *srv = call->session->server;
    if (json_object_get(args, "sandbox_id")) {
        mcp_sandbox_t *sb = mcp_sandbox_for_call(call, args, false);
        if (!sb)
            return NULL;
        kg_command_t *c = kg_sandbox_command(sb->kg, id);
        if (!c)
            mcp_call_fail(call, "no command '%.60s' in sandbox %s", id, sb->id);
        *sb_out = sb;
        return c;
    }
    for (mcp_sandbox_t *sb = zhashx_first(srv->sandboxes); sb; sb = zhashx_next(srv->sandboxes)) {
        if (!fleet_sandbox_visible(sb->kg, &call->session->who))
            continue; /* another tenant's commands are unknown ids */
        kg_command_t *c = kg_sandbox_command(sb->kg, id);
        if (c) {
            *sb_out = sb;
            return c;
        }
    }
    mcp_call_fail(call,
                  "no command '%.60s' (ids come from command_execute; a finished foreground "
                  "command is kept only when its background jobs held its output open, a "
                  "background one is kept with its last results)",
                  id);
    return NULL;
}

void mcp_tool_process_list(mcp_call_t *call, json_t *args)
{
    mcp_sandbox_t *sb = mcp_sandbox_for_call(call, args, false);
    if (!sb)
        return;
    cb_error_t err = {0};
    json_t *list = kg_sandbox_processes(sb->kg, &err);
    if (!list)
        return mcp_call_fail_err(call, &err);
    cb_buf_t text = {0};
    cb_buf_printf(&text, "%zu processes in sandbox %s:\n  PID  PPID S COMMAND\n",
                  json_array_size(list), sb->id);
    size_t i;
    json_t *p;
    json_array_foreach (list, i, p) {
        const char *cmd = json_string_value(json_object_get(p, "command"));
        const char *id = json_string_value(json_object_get(p, "command_id"));
        cb_buf_printf(&text, "%5lld %5lld %s %.200s%s%s\n",
                      (long long)json_integer_value(json_object_get(p, "pid")),
                      (long long)json_integer_value(json_object_get(p, "ppid")),
                      json_string_value(json_object_get(p, "state")), cmd ? cmd : "",
                      id ? "  [command " : "", id ? id : "");
        if (id)
            cb_buf_append(&text, "]", 1);
    }
    cleanup_free char *shown = cb_buf_take(&text);
    mcp_call_finish(call, json_pack("[o]", mcp_text_block(shown)),
                    json_pack("{s:s, s:o}", "sandbox_id", sb->id, "processes", list), false);
}

void mcp_tool_process_kill(mcp_call_t *call, json_t *args)
{
    const char *id = mcp_arg_str(args, "command_id", NULL);
    json_t *pid = json_object_get(args, "pid");
    if (!id == !pid)
        return mcp_call_fail(call, "give either command_id or pid (a pid inside the sandbox, as "
                                   "process_list shows)");
    const char *name = mcp_arg_str(args, "signal", "SIGKILL");
    int sig = s_signal_of(name);
    if (!sig)
        return mcp_call_fail(call,
                             "unknown signal '%.20s' (one of SIGKILL, SIGTERM, SIGINT, SIGHUP, "
                             "SIGQUIT, SIGUSR1, SIGUSR2, SIGSTOP, SIGCONT, SIGALRM, SIGWINCH)",
                             name);
    cb_error_t err = {0};
    mcp_sandbox_t *sb = NULL;
    int rc;
    if (id) {
        kg_command_t *c = s_find_command(call, args, id, &sb);
        if (!c)
            return;
        rc = kg_command_signal(c, sig, &err);
    } else {
        sb = mcp_sandbox_for_call(call, args, false);
        if (!sb)
            return;
        rc = kg_sandbox_signal_pid(sb->kg, (pid_t)json_integer_value(pid), sig, &err);
    }
    if (rc < 0)
        return mcp_call_fail_err(call, &err);
    char sigtext[24];
    snprintf(sigtext, sizeof sigtext, "SIG%s", sigabbrev_np(sig));
    json_t *out = json_pack("{s:s, s:s, s:b}", "sandbox_id", sb->id, "signal", sigtext, "sent", 1);
    if (id)
        json_object_set_new(out, "command_id", json_string(id));
    else
        json_object_set(out, "pid", pid);
    cleanup_free char *text =
        id ? cb_strdup_printf("Sent %s to command %s (its process group).", sigtext, id)
           : cb_strdup_printf("Sent %s to process %lld.", sigtext,
                              (long long)json_integer_value(pid));
    mcp_call_finish(call, json_pack("[o]", mcp_text_block(text)), out, false);
}

/* Read one stream into out as {stream: text, stream_offset: where it starts, stream_next}. */
static int s_read_stream(kg_command_t *c, const char *stream, json_t *args, size_t max, json_t *out,
                         cb_error_t *err)
{
    char key[32];
    snprintf(key, sizeof key, "%s_offset", stream);
    double want = mcp_arg_num(args, key, 0);
    cb_buf_t buf = {0};
    uint64_t start = 0, total = 0;
    if (kg_command_read(c, stream, want > 0 ? (uint64_t)want : 0, max, &buf, &start, &total, err) <
        0) {
        cb_buf_free(&buf);
        return -1;
    }
    size_t len = 0;
    cleanup_free char *text = cb_text_lossy(buf.data ? buf.data : "", buf.len, &len);
    uint64_t next = start + buf.len;
    cb_buf_free(&buf);
    char next_key[32];
    snprintf(next_key, sizeof next_key, "%s_next", stream);
    if (json_object_set_new(out, stream, json_stringn(text, len)) < 0 ||
        json_object_set_new(out, key, json_integer((json_int_t)start)) < 0 ||
        json_object_set_new(out, next_key, json_integer((json_int_t)next)) < 0)
        return cb_error_fail(err, CB_ERR_INTERNAL, "out of memory");
    if (start > (uint64_t)(want > 0 ? want : 0)) {
        snprintf(key, sizeof key, "%s_skipped", stream);
        json_object_set_new(out, key, json_integer((json_int_t)(start - (uint64_t)want)));
    }
    return 0;
}

void mcp_tool_process_output(mcp_call_t *call, json_t *args)
{
    const char *id = mcp_arg_str(args, "command_id", "");
    mcp_sandbox_t *sb = NULL;
    kg_command_t *c = s_find_command(call, args, id, &sb);
    if (!c)
        return;
    size_t max = (size_t)mcp_arg_num(args, "max_bytes", OUTPUT_READ_DEFAULT);
    json_auto_t *snap = kg_command_snapshot(c);
    json_t *out = json_pack(
        "{s:s, s:s, s:b, s:O, s:O, s:O}", "command_id", id, "sandbox_id", sb->id, "running",
        kg_command_running(c), "status", json_object_get(snap, "status"), "exit_code",
        json_object_get(snap, "exit_code"), "pid", json_object_get(snap, "inside_pid"));
    cb_error_t err = {0};
    if (!out || s_read_stream(c, "stdout", args, max, out, &err) < 0 ||
        s_read_stream(c, "stderr", args, max, out, &err) < 0) {
        json_decref(out);
        return mcp_call_fail_err(call, &err);
    }
    const char *o = json_string_value(json_object_get(out, "stdout"));
    const char *e = json_string_value(json_object_get(out, "stderr"));
    cleanup_free char *text =
        cb_strdup_printf("%s%s%s[command %s: %s]", o, *e ? "\n[stderr]\n" : "", e, id,
                         json_string_value(json_object_get(snap, "status")));
    mcp_call_finish(call, json_pack("[o]", mcp_text_block(text)), out, false);
}
