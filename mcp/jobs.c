/* jobs.c: executions and commands followed by id, and the tools that start and watch them.
 *
 * Every code execution and every command the MCP server starts is a job, registered by its id
 * (the gateway's execution or command id). A call that wants a job's end (code_execute,
 * command_execute, execution_status with wait_s) waits on the job; the gateway's on_done
 * callback turns the result into MCP form (content.c) and finishes every waiting call. Output
 * arriving meanwhile goes to the waiting calls' progress notifications. Finished jobs are kept
 * for execution_status, the last MCP_JOBS_KEPT of them.
 *
 * Cancelling a waiting code_execute interrupts the cell (the kernel keeps its state); a waiting
 * command_execute kills the command; a waiting execution_status just stops waiting.
 */
#include <errno.h>
#include <string.h>

#include "cb/cleanup.h"
#include "jupyter/catalog.h"
#include "jupyter/kernelspec.h"
#include "mcp_private.h"
#include "kg/gateway.h"
#include "kg/kernel.h"
#include "kg/execution.h"
#include "kg/command.h"

typedef enum { MCP_JOB_CODE = 0, MCP_JOB_COMMAND } mcp_job_kind_t;

struct mcp_job {
    char id[37];
    mcp_job_kind_t kind;
    mcp_server_t *server;
    mcp_sandbox_t *sandbox; /* NULL once it is gone */
    char sandbox_id[37];
    char repl_id[37];                    /* code: the REPL it runs in (the tools' session_id) */
    char tenant[CB_TENANT_NAME_MAX + 1]; /* its sandbox's (for s_find_job's test) */
    kg_execution_t *x;                   /* code, while it runs */
    kg_command_t *cmd;                   /* command, while it runs */
    json_t *final;                       /* structured result, once done */
    json_t *content;                     /* content blocks, once done */
    bool is_error;
    zlistx_t *waiters;  /* mcp_call_t * finished when it ends */
    bool forget_queued; /* command: s_forget is deferred, to forget it after its on_done */
    bool background;    /* command: kept (its output for process_output) until evicted */
    char *note;         /* code: a line for its result's notes (what ran before it), or NULL */
    char *code;         /* code: what ran, for the REPL's cell history (notebooks.c) */
    bool kept; /* command: ended and kept until evicted (background, or its jobs hold its pipes) */
};

static const char *s_kind_name(mcp_job_kind_t k) { return k == MCP_JOB_CODE ? "code" : "command"; }

/* ---- the registry -------------------------------------------------------------------------- */

static mcp_job_t *s_job_new(mcp_sandbox_t *sb, mcp_job_kind_t kind)
{
    mcp_job_t *job = cb_xcalloc(1, sizeof *job);
    job->waiters = zlistx_new(); /* czmq aborts when memory runs out */
    job->kind = kind;
    job->server = sb->server;
    job->sandbox = sb;
    snprintf(job->sandbox_id, sizeof job->sandbox_id, "%s", sb->id);
    const char *tenant = fleet_sandbox_tenant(sb->kg);
    snprintf(job->tenant, sizeof job->tenant, "%s", tenant ? tenant : "");
    return job;
}

static void s_forget(kg_gateway_t *gw, void *arg);

static void s_job_free(mcp_job_t *job)
{
    if (job->forget_queued)
        kg_gateway_defer_cancel(job->server->gw, s_forget, job);
    if (job->kept && job->final && job->sandbox) { /* an ended command kept for process_output */
        kg_command_t *c = kg_sandbox_command(job->sandbox->kg, job->id);
        kg_command_forget(&c);
    }
    zlistx_destroy(&job->waiters);
    free(job->note);
    free(job->code);
    json_decref(job->final);
    json_decref(job->content);
    free(job);
}

/* Register a started job under its id (a fresh uuid from the gateway, so never taken). */
static void s_job_register(mcp_job_t *job, const char *id)
{
    snprintf(job->id, sizeof job->id, "%s", id);
    if (zhashx_insert(job->server->jobs, job->id, job) != 0)
        cb_err("job id %s registered twice", job->id);
}

static void s_evict(mcp_server_t *srv)
{
    while (zlistx_size(srv->finished) > MCP_JOBS_KEPT) {
        char *id = zlistx_detach(srv->finished, NULL);
        mcp_job_t *job = zhashx_lookup(srv->jobs, id);
        if (job && zlistx_size(job->waiters) == 0) {
            zhashx_delete(srv->jobs, id);
            s_job_free(job);
        }
        free(id);
    }
}

json_t *mcp_job_resource(mcp_server_t *srv, mcp_sandbox_t *sb, const char *uri)
{
    for (mcp_job_t *job = zhashx_first(srv->jobs); job; job = zhashx_next(srv->jobs)) {
        if (strcmp(job->sandbox_id, sb->id) != 0)
            continue;
        size_t i;
        json_t *block;
        json_array_foreach (job->content, i, block) {
            json_t *res = json_object_get(block, "resource");
            const char *u = json_string_value(json_object_get(res, "uri"));
            if (u && strcmp(u, uri) == 0)
                return json_deep_copy(res);
        }
    }
    return NULL;
}

/* ---- answers ------------------------------------------------------------------------------- */

static json_t *s_snapshot(mcp_job_t *job)
{
    if (job->final)
        return json_incref(job->final);
    if (job->kind == MCP_JOB_CODE) {
        json_auto_t *raw = job->x ? kg_execution_snapshot(job->x) : NULL;
        return raw ? mcp_execution_structured(job->server, job->sandbox, job->repl_id, raw, NULL)
                   : json_object();
    }
    json_t *snap = job->cmd ? kg_command_snapshot(job->cmd) : json_object();
    if (snap) {
        json_object_set(snap, "command_id", json_object_get(snap, "id"));
        json_object_del(snap, "id");
        json_object_set_new(snap, "sandbox_id", json_string(job->sandbox_id));
    }
    return snap;
}

static void s_answer_status(mcp_call_t *call, mcp_job_t *job)
{
    json_auto_t *snap = s_snapshot(job);
    const char *state =
        job->final ? "done"
        : strcmp(json_string_value(json_object_get(snap, "status")) ?: "", "queued") == 0
            ? "queued"
            : "running";
    json_t *out = json_pack("{s:s, s:s, s:s, s:O}", "execution_id", job->id, "kind",
                            s_kind_name(job->kind), "state", state, "result", snap);
    json_t *content = NULL;
    if (job->final && job->content) { /* the result's own blocks, after a status line */
        content = json_deep_copy(job->content);
        cleanup_free char *line = cb_strdup_printf("[execution %s: done]", job->id);
        json_array_insert_new(content, 0, mcp_text_block(line));
    }
    mcp_call_finish(call, content, out, false);
}

/* Finish a call waiting on the job, in the form its tool answers with. */
static void s_answer(mcp_call_t *call, mcp_job_t *job)
{
    call->job = NULL;
    call->cancel = NULL;
    kg_timer_stop(job->server->gw, &call->timer);
    if (strcmp(call->tool, "execution_status") == 0)
        return s_answer_status(call, job);
    mcp_call_finish(call, json_incref(job->content), json_incref(job->final), job->is_error);
}

static void s_job_done(mcp_job_t *job, json_t *structured, json_t *content, bool is_error)
{
    job->final = structured;
    job->content = content ? content : json_pack("[o]", mcp_text_block("(no output)"));
    job->is_error = is_error;
    job->x = NULL;
    job->cmd = NULL;
    mcp_call_t *call;
    while ((call = zlistx_detach(job->waiters, NULL)))
        s_answer(call, job);
    zlistx_add_end(job->server->finished, job->id);
    s_evict(job->server);
}

/* ---- waiting ------------------------------------------------------------------------------- */

static void s_unwait(mcp_call_t *call)
{
    mcp_job_t *job = call->job;
    void *h = job ? zlistx_find(job->waiters, call) : NULL;
    if (h)
        zlistx_detach(job->waiters, h);
    call->job = NULL;
    if (call->timer >= 0)
        kg_timer_stop(job->server->gw, &call->timer);
}

/* A client gave up on a code_execute or command_execute: stop the work; the call stays a
 * waiter and ends (silently) with the job. */
static void s_cancel_work(mcp_call_t *call)
{
    mcp_job_t *job = call->job;
    cb_error_t err = {0};
    if (job && job->x && kg_execution_cancel(job->x, &err) < 0)
        cb_warn("cancel execution %.8s: %s", job->id, err.msg);
    if (job && job->cmd && kg_command_kill(job->cmd, &err) < 0)
        cb_warn("cancel command %.8s: %s", job->id, err.msg);
}

/* A client gave up on an execution_status wait: just stop waiting. */
static void s_cancel_wait(mcp_call_t *call)
{
    s_unwait(call);
    mcp_call_finish(call, NULL, NULL, false);
}

static int s_on_wait_timer(zloop_t *loop, int timer_id, void *arg)
{
    mcp_call_t *call = arg;
    mcp_job_t *job = call->job;
    call->timer = -1;
    s_unwait(call);
    call->cancel = NULL;
    s_answer_status(call, job);
    return 0;
}

static void s_wait(mcp_call_t *call, mcp_job_t *job, mcp_call_cancel_fn *cancel)
{
    if (job->final)
        return s_answer(call, job);
    zlistx_add_end(job->waiters, call);
    call->job = job;
    call->cancel = cancel;
}

/* ---- code ---------------------------------------------------------------------------------- */

static void s_progress_all(mcp_job_t *job, const char *text, size_t len)
{
    for (mcp_call_t *c = zlistx_first(job->waiters); c; c = zlistx_next(job->waiters))
        mcp_call_progress(c, text, len);
}

static void s_on_code_output(kg_execution_t *x, const char *kind, json_t *content, void *arg)
{
    mcp_job_t *job = arg;
    const char *text = NULL;
    char note[120];
    if (strcmp(kind, "stream") == 0) {
        text = json_string_value(json_object_get(content, "text"));
    } else if (strcmp(kind, "error") == 0) {
        snprintf(note, sizeof note, "%.50s: %.60s\n",
                 json_string_value(json_object_get(content, "ename")) ?: "Error",
                 json_string_value(json_object_get(content, "evalue")) ?: "");
        text = note;
    } else if (strcmp(kind, "display_data") == 0 || strcmp(kind, "execute_result") == 0) {
        const char *mime = NULL;
        json_t *v;
        json_object_foreach (json_object_get(content, "data"), mime, v)
            if (strncmp(mime, "image/", 6) == 0)
                break;
        snprintf(note, sizeof note, "[%s output]\n", mime ? mime : "rich");
        text = note;
    }
    if (text)
        s_progress_all(job, text, strlen(text));
}

static void s_on_code_done(kg_execution_t *x, json_t *result, void *arg)
{
    mcp_job_t *job = arg;
    mcp_repl_t *repl = zhashx_lookup(job->server->repls, job->repl_id);
    if (repl && job->code) /* the cell history (session_export), from the whole result */
        mcp_repl_history_add(repl, job->code, result);
    json_auto_t *noted = job->note ? json_deep_copy(result) : NULL;
    if (noted) { /* the job's own note first, among the result's */
        json_t *notes = json_object_get(noted, "notes");
        if (!json_is_array(notes))
            json_object_set_new(noted, "notes", notes = json_array());
        json_array_insert_new(notes, 0, json_string(job->note));
        result = noted;
    }
    json_t *content = NULL;
    json_t *structured =
        mcp_execution_structured(job->server, job->sandbox, job->repl_id, result, &content);
    const char *status = json_string_value(json_object_get(structured, "status"));
    s_job_done(job, structured, content, !status || strcmp(status, "ok") != 0);
}

/* Queue code on a jupyter session. The job is registered; NULL with err. */
static mcp_job_t *s_start_code(mcp_repl_t *repl, json_t *args, const char *code, cb_error_t *err)
{
    mcp_sandbox_t *sb = repl->sandbox;
    const char *failure = mcp_repl_failure(repl);
    if (failure)
        return cb_error_fail(err, CB_ERR_STATE, "session %s cannot run code: %s", repl->id,
                             failure),
               NULL;
    mcp_job_t *job = s_job_new(sb, MCP_JOB_CODE);
    snprintf(job->repl_id, sizeof job->repl_id, "%s", repl->id);
    double timeout_s = mcp_arg_num(args, "timeout_s", sb->timeout_s);
    kg_execute_opts_t opts = {.origin = "mcp",
                              .code = code,
                              .timeout_ms = (int)(timeout_s * 1000.0 + 0.5),
                              .stdin_text = mcp_arg_str(args, "stdin", NULL),
                              .on_output = s_on_code_output,
                              .on_done = s_on_code_done,
                              .arg = job};
    job->x = kg_execute(repl->kernel, &opts, err);
    if (!job->x) {
        s_job_free(job);
        return NULL;
    }
    s_job_register(job, kg_execution_id(job->x));
    job->code = cb_xstrdup(code);
    return job;
}

char *mcp_kernel_for_language(const char *kernels_dir, const char *language,
                              const char *main_kernel, const char *main_language, cb_error_t *err)
{
    const char *canonical = jp_language_canonical(language);
    if (main_kernel && canonical && jp_language_is(main_language, canonical))
        return cb_xstrdup(main_kernel);
    return jp_kernelspec_for_language(kernels_dir, language, err);
}

/* The jupyter session code runs in: by kernel or language in a sandbox (default: its main
 * session). Each language has its own session, started on its first use and kept
 * (mcp_sandbox_kernel_repl finds it again by its kernel's name). On failure the call is finished
 * and NULL returned. */
static mcp_repl_t *s_code_repl(mcp_call_t *call, json_t *args)
{
    mcp_sandbox_t *sb = mcp_sandbox_for_call(call, args, true);
    if (!sb)
        return NULL;
    const char *language = mcp_arg_str(args, "language", NULL);
    cb_error_t err = {0};
    cleanup_free char *kernel = NULL;
    if (json_object_get(args, "kernel")) {
        kernel = cb_xstrdup(mcp_arg_str(args, "kernel", ""));
    } else if (language) {
        bool main_up = sb->main && sb->main->kernel;
        kernel =
            mcp_kernel_for_language(kg_gateway_kernels_dir(sb->server->gw), language,
                                    main_up ? sb->main->kernel_name : NULL,
                                    main_up ? kg_kernel_language(sb->main->kernel) : NULL, &err);
        if (!kernel) {
            mcp_call_fail_err(call, &err);
            return NULL;
        }
    }
    mcp_repl_t *repl = mcp_sandbox_kernel_repl(sb, kernel, &err);
    if (!repl)
        mcp_call_fail_err(call, &err);
    return repl;
}

/* Start code and have the call wait for its end (code_execute, run_code, session_execute). */
void mcp_code_run_and_wait(mcp_call_t *call, mcp_repl_t *repl, json_t *args, const char *code,
                           const char *note)
{
    cb_error_t err = {0};
    mcp_job_t *job = s_start_code(repl, args, code, &err);
    if (!job)
        return mcp_call_fail_err(call, &err);
    job->note = cb_xstrdup_or_null(note);
    s_wait(call, job, s_cancel_work);
}

void mcp_tool_code_execute(mcp_call_t *call, json_t *args)
{
    char msg[512];
    if (mcp_packages_check(args, msg, sizeof msg) < 0)
        return mcp_call_fail(call, "%s", msg); /* before a default sandbox is made for it */
    mcp_repl_t *repl = s_code_repl(call, args);
    if (repl && json_array_size(json_object_get(args, "packages")) > 0)
        mcp_packages_install_then_run(call, repl, args);
    else if (repl)
        mcp_code_run_and_wait(call, repl, args, mcp_arg_str(args, "code", ""), NULL);
}

void mcp_tool_run_code(mcp_call_t *call, json_t *args) { mcp_tool_code_execute(call, args); }

void mcp_tool_code_execute_async(mcp_call_t *call, json_t *args)
{
    mcp_repl_t *repl = s_code_repl(call, args);
    if (!repl)
        return;
    cb_error_t err = {0};
    mcp_job_t *job = s_start_code(repl, args, mcp_arg_str(args, "code", ""), &err);
    if (!job)
        return mcp_call_fail_err(call, &err);
    json_auto_t *snap = kg_execution_snapshot(job->x);
    mcp_call_finish(call, NULL,
                    json_pack("{s:s, s:s, s:s, s:s}", "execution_id", job->id, "sandbox_id",
                              job->sandbox_id, "session_id", job->repl_id, "state",
                              json_string_value(json_object_get(snap, "status")) ?: "queued"),
                    false);
}

void mcp_tool_session_execute(mcp_call_t *call, json_t *args)
{
    cb_error_t err = {0};
    mcp_repl_t *repl = mcp_repl_find(call->session->server, call->session,
                                     mcp_arg_str(args, "session_id", NULL), &err);
    if (!repl)
        return mcp_call_fail_err(call, &err);
    const char *input = mcp_arg_str(args, "input", "");
    if (repl->type == MCP_REPL_JUPYTER)
        return mcp_code_run_and_wait(call, repl, args, input, NULL);
    double timeout_s = mcp_arg_num(args, "timeout_s", repl->sandbox->timeout_s);
    mcp_terminal_execute(repl, call, input, (int)(timeout_s * 1000.0 + 0.5));
}

/* ---- status and cancel --------------------------------------------------------------------- */

static mcp_job_t *s_find_job(mcp_call_t *call, json_t *args)
{
    const char *id = mcp_arg_str(args, "execution_id", "");
    mcp_job_t *job = zhashx_lookup(call->session->server->jobs, id);
    if (job && !cb_principal_may(&call->session->who, job->tenant[0] ? job->tenant : NULL))
        job = NULL; /* another tenant's: answered as an unknown id */
    if (!job)
        mcp_call_fail(call,
                      "no execution '%.60s' (ids come from code_execute_async or a background "
                      "command_execute; only the last %d finished ones are kept)",
                      id, MCP_JOBS_KEPT);
    return job;
}

void mcp_tool_execution_status(mcp_call_t *call, json_t *args)
{
    mcp_job_t *job = s_find_job(call, args);
    if (!job)
        return;
    double wait_s = mcp_arg_num(args, "wait_s", 0);
    if (job->final || wait_s <= 0)
        return s_answer_status(call, job);
    s_wait(call, job, s_cancel_wait);
    call->timer =
        kg_timer_start(job->server->gw, (size_t)(wait_s * 1000.0 + 0.5), 1, s_on_wait_timer, call);
}

void mcp_tool_execution_cancel(mcp_call_t *call, json_t *args)
{
    mcp_job_t *job = s_find_job(call, args);
    if (!job)
        return;
    cb_error_t err = {0};
    int rc = 0;
    if (job->x)
        rc = kg_execution_cancel(job->x, &err);
    else if (job->cmd)
        rc = kg_command_kill(job->cmd, &err);
    if (rc < 0)
        return mcp_call_fail_err(call, &err);
    mcp_call_finish(call, NULL,
                    json_pack("{s:s, s:s}", "execution_id", job->id, "state",
                              job->final ? "already finished" : "stopping"),
                    false);
}

/* ---- commands ------------------------------------------------------------------------------ */

static void s_on_command_output(kg_command_t *c, const char *stream, const char *data, size_t len,
                                void *arg)
{
    s_progress_all(arg, data, len);
}

/* A deferred call: the command is forgotten (freed) on a fresh turn, after its on_done. */
static void s_forget(kg_gateway_t *gw, void *arg)
{
    mcp_job_t *job = arg;
    job->forget_queued = false;
    mcp_sandbox_t *sb = zhashx_lookup(job->server->sandboxes, job->sandbox_id);
    kg_command_t *c = sb ? kg_sandbox_command(sb->kg, job->id) : NULL;
    kg_command_forget(&c);
}

static void s_on_command_done(kg_command_t *c, json_t *result, void *arg)
{
    mcp_job_t *job = arg;
    json_t *structured = json_deep_copy(result);
    json_object_set(structured, "command_id", json_object_get(structured, "id"));
    json_object_del(structured, "id");
    json_object_set_new(structured, "sandbox_id", json_string(job->sandbox_id));
    if (!json_is_array(json_object_get(structured, "notes")))
        json_object_set_new(structured, "notes", json_array());
    const char *status = json_string_value(json_object_get(result, "status")) ?: "failed";
    json_t *code = json_object_get(result, "exit_code");
    const char *sig = json_string_value(json_object_get(result, "signal"));
    cleanup_free char *closing =
        json_is_integer(code)
            ? cb_strdup_printf("[%s with exit code %lld]", status,
                               (long long)json_integer_value(code))
            : cb_strdup_printf("[%s%s%s]", status, sig ? " by " : "", sig ? sig : "");
    json_t *content = mcp_shell_result(
        job->server, job->sandbox, job->id, json_string_value(json_object_get(result, "stdout")),
        json_string_value(json_object_get(result, "stderr")), structured, closing);
    bool ok = strcmp(status, "exited") == 0 && json_integer_value(code) == 0;
    /* A foreground command whose background jobs still write to its pipes is kept too: their
     * later output is read with process_output under its id. */
    job->kept = job->background || kg_command_output_open(c);
    if (job->sandbox && !job->forget_queued && !job->kept) {
        job->forget_queued = true;
        kg_gateway_defer(job->server->gw, s_forget, job);
    }
    s_job_done(job, structured, content, !ok);
}

void mcp_tool_command_execute(mcp_call_t *call, json_t *args)
{
    mcp_sandbox_t *sb = mcp_sandbox_for_call(call, args, true);
    if (!sb)
        return;
    json_auto_t *env = json_deep_copy(sb->env);
    json_object_update(env, json_object_get(args, "env"));
    char **env_list = cb_xcalloc(json_object_size(env) + 1, sizeof *env_list);
    size_t n = 0;
    const char *key;
    json_t *value;
    json_object_foreach (env, key, value)
        env_list[n++] = cb_strdup_printf("%s=%s", key, json_string_value(value));
    mcp_job_t *job = s_job_new(sb, MCP_JOB_COMMAND);
    job->background = mcp_arg_bool(args, "background", false);
    /* A background command has no time limit unless one is given. */
    double timeout_s = mcp_arg_num(args, "timeout_s", job->background ? 0 : sb->timeout_s);
    kg_command_opts_t opts = {.origin = "mcp",
                              .command = mcp_arg_str(args, "command", ""),
                              .env = (const char *const *)env_list,
                              .cwd = mcp_arg_str(args, "cwd", NULL),
                              .stdin_text = mcp_arg_str(args, "stdin", NULL),
                              .timeout_ms = (int)(timeout_s * 1000.0 + 0.5),
                              .ring_bytes = job->background ? MCP_BACKGROUND_RING_BYTES : 0,
                              .on_output = s_on_command_output,
                              .on_done = s_on_command_done,
                              .arg = job};
    cb_error_t err = {0};
    job->cmd = kg_command_start(sb->kg, &opts, &err);
    cb_strv_free(env_list);
    if (!job->cmd) {
        s_job_free(job);
        return mcp_call_fail_err(call, &err);
    }
    s_job_register(job, kg_command_id(job->cmd));
    if (!job->background)
        return s_wait(call, job, s_cancel_work);
    json_t *snap = s_snapshot(job);
    json_t *inside = json_object_get(snap, "inside_pid");
    cleanup_free char *text = cb_strdup_printf(
        "Started in the background as %s (pid %lld inside the sandbox); process_output reads "
        "its output so far, execution_status waits for its end, process_kill stops it.",
        job->id, json_is_integer(inside) ? (long long)json_integer_value(inside) : -1LL);
    mcp_call_finish(call, json_pack("[o]", mcp_text_block(text)), snap, false);
}

/* ---- teardown ------------------------------------------------------------------------------ */

void mcp_jobs_sandbox_gone(mcp_server_t *srv, mcp_sandbox_t *sb)
{
    for (mcp_job_t *job = zhashx_first(srv->jobs); job; job = zhashx_next(srv->jobs))
        if (job->sandbox == sb)
            job->sandbox = NULL; /* running ones end as the gateway removes the sandbox */
}

void mcp_jobs_destroy_all(mcp_server_t *srv)
{
    for (mcp_job_t *job = zhashx_first(srv->jobs); job; job = zhashx_next(srv->jobs)) {
        mcp_call_t *call;
        while ((call = zlistx_detach(job->waiters, NULL))) {
            call->job = NULL;
            kg_timer_stop(srv->gw, &call->timer);
            mcp_call_fail(call, "the server is stopping");
        }
        s_job_free(job);
    }
    zhashx_purge(srv->jobs);
}
