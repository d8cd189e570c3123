/* notebooks.c: notebooks over MCP: the cell history every jupyter REPL keeps, session_export
 * (that history as a notebook in the workspace) and notebook_run (a notebook run in a sandbox).
 *
 * History: jobs.c hands every finished code execution of a REPL to mcp_repl_history_add, which
 * keeps the code, execution_count and outputs as an nbformat code cell (nb/notebook.h), in the
 * order they ran. It is bounded: the last MCP_HISTORY_CELLS cells and MCP_HISTORY_BYTES of
 * them; the oldest go first, and the notebook's metadata.cellblock says how many went. A cell
 * whose outputs alone pass MCP_HISTORY_CELL_OUTPUTS keeps a note in their place.
 *
 * notebook_run: the notebook (a workspace file, or given inline) runs in a REPL of its own in
 * the sandbox, for the notebook's kernel (nb_pick_kernel), with nbclient's rules (nb_run_*),
 * asynchronously: the call waits while the server keeps serving. At the end the executed
 * notebook is written to the workspace (output_path, default next to the input) through the
 * engine's file API (a temporary name, then a rename), the REPL is closed and the call answered
 * with a summary and a resource link. The sandbox or the REPL may go meanwhile (sandbox_delete,
 * session_close): the end looks both up again by id and never touches a freed one. A cancelled
 * call (the client's, or its session ending) ends the run at once, in the cancel itself.
 */
#include <string.h>

#include "cb/cleanup.h"
#include "cb/util.h"
#include "kg/kernel.h"
#include "kg/sandbox.h"
#include "mcp_private.h"
#include "nb/notebook.h"

#define MCP_HISTORY_CELLS 1000
#define MCP_HISTORY_BYTES (16u << 20)
#define MCP_HISTORY_CELL_OUTPUTS (4u << 20)
#define MCP_NOTEBOOK_EMBED_MAX (1u << 20) /* larger exports come as a link, not embedded */
#define MCP_NOTEBOOK_MIME "application/x-ipynb+json"

/* ---- the cell history ------------------------------------------------------------------- */

static size_t s_json_size(const json_t *v) { return json_dumpb(v, NULL, 0, JSON_COMPACT); }

void mcp_repl_history_add(mcp_repl_t *repl, const char *code, const json_t *result)
{
    if (repl->type != MCP_REPL_JUPYTER)
        return;
    if (!repl->cells)
        repl->cells = json_array();
    json_t *outputs = nb_outputs_from_result(result);
    size_t out_size = s_json_size(outputs);
    if (out_size > MCP_HISTORY_CELL_OUTPUTS) {
        json_decref(outputs);
        cleanup_free char *note = cb_strdup_printf(
            "[cellblock: %zu bytes of outputs were not kept in the session's history]\n", out_size);
        outputs =
            json_pack("[{s:s, s:s, s:s}]", "output_type", "stream", "name", "stderr", "text", note);
    }
    json_t *count = json_object_get(result, "execution_count");
    json_t *cell =
        nb_code_cell(code, outputs, json_is_integer(count) ? json_integer_value(count) : -1);
    repl->cells_bytes += s_json_size(cell);
    json_array_append_new(repl->cells, cell);
    while (json_array_size(repl->cells) > 1 && (json_array_size(repl->cells) > MCP_HISTORY_CELLS ||
                                                repl->cells_bytes > MCP_HISTORY_BYTES)) {
        size_t first = s_json_size(json_array_get(repl->cells, 0));
        repl->cells_bytes -= first < repl->cells_bytes ? first : repl->cells_bytes;
        json_array_remove(repl->cells, 0);
        repl->cells_dropped++;
    }
}

void mcp_repl_history_free(mcp_repl_t *repl)
{
    json_decref(repl->cells);
    repl->cells = NULL;
    repl->cells_bytes = 0;
}

json_t *mcp_repl_notebook(mcp_repl_t *repl, cb_error_t *err)
{
    if (repl->type != MCP_REPL_JUPYTER)
        return cb_error_fail(err, CB_ERR_INVALID, "session %s is a terminal, not a notebook",
                             repl->id),
               NULL;
    const char *language = repl->kernel ? kg_kernel_language(repl->kernel) : NULL;
    json_t *nb = nb_new(repl->kernel_name ? repl->kernel_name : "python3", language);
    json_t *meta = json_object_get(nb, "metadata");
    json_t *mine = json_pack("{s:s, s:s, s:I}", "session_id", repl->id, "sandbox_id",
                             repl->sandbox->id, "cells_dropped", (json_int_t)repl->cells_dropped);
    if (repl->cells_dropped)
        json_object_set_new(
            mine, "note",
            json_sprintf("the oldest %zu cells are not here: a session keeps its last %u cells "
                         "and %u MiB of them",
                         repl->cells_dropped, MCP_HISTORY_CELLS, MCP_HISTORY_BYTES >> 20));
    json_object_set_new(meta, "cellblock", mine);
    if (repl->cells)
        json_object_set_new(nb, "cells", json_deep_copy(repl->cells));
    return nb;
}

/* ---- writing into the workspace ----------------------------------------------------------- */

/* Write text to path in the sandbox's workspace: a temporary name beside it, then a rename, so
 * a reader never sees half a notebook. */
static int s_write_workspace(mcp_sandbox_t *sb, const char *path, const char *text, cb_error_t *err)
{
    cleanup_free char *tmp = cb_strdup_printf("%s.cellblock-tmp", path);
    if (kg_sandbox_file_write(sb->kg, tmp, text, strlen(text), true, err) < 0)
        return -1;
    if (kg_sandbox_file_rename(sb->kg, tmp, path, err) < 0) {
        cb_error_t ignored = {0};
        kg_sandbox_file_remove(sb->kg, tmp, false, &ignored);
        return -1;
    }
    return 0;
}

/* ---- session_export ------------------------------------------------------------------------ */

void mcp_tool_session_export(mcp_call_t *call, json_t *args)
{
    mcp_server_t *srv = call->session->server;
    cb_error_t err = {0};
    mcp_repl_t *repl = NULL;
    const char *session_id = mcp_arg_str(args, "session_id", NULL);
    if (session_id) {
        if (!(repl = mcp_repl_find(srv, call->session, session_id, &err)))
            return mcp_call_fail_err(call, &err);
    } else {
        mcp_sandbox_t *sb = mcp_sandbox_for_call(call, args, false);
        if (!sb)
            return;
        if (!(repl = sb->main))
            return mcp_call_fail(call, "sandbox %s has no main session", sb->id);
    }
    mcp_sandbox_t *sb = repl->sandbox;
    json_auto_t *nb = mcp_repl_notebook(repl, &err);
    if (!nb)
        return mcp_call_fail_err(call, &err);
    cleanup_free char *dflt = cb_strdup_printf("notebooks/session-%s.ipynb", repl->id);
    const char *path = mcp_arg_str(args, "path", dflt);
    cleanup_free char *text = nb_dump(nb);
    if (s_write_workspace(sb, path, text, &err) < 0)
        return mcp_call_fail(call, "session_export: write %.200s: %s", path, err.msg);
    cleanup_free char *uri =
        cb_strdup_printf("cellblock://sandbox/%s/session/%s/notebook.ipynb", sb->id, repl->id);
    size_t cells = json_array_size(json_object_get(nb, "cells"));
    cleanup_free char *line =
        cb_strdup_printf("Session %s: %zu cells written to %s (as a notebook)%s", repl->id, cells,
                         path, repl->cells_dropped ? "; its oldest cells were not kept" : "");
    json_t *content =
        json_pack("[o, o]", mcp_text_block(line), mcp_resource_link(sb, path, MCP_NOTEBOOK_MIME));
    if (strlen(text) <= MCP_NOTEBOOK_EMBED_MAX)
        json_array_append_new(content,
                              json_pack("{s:s, s:{s:s, s:s, s:s}}", "type", "resource", "resource",
                                        "uri", uri, "mimeType", MCP_NOTEBOOK_MIME, "text", text));
    json_t *out = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I}", "sandbox_id", sb->id, "session_id",
                            repl->id, "path", path, "uri", uri, "cells", (json_int_t)cells,
                            "cells_dropped", (json_int_t)repl->cells_dropped);
    mcp_call_finish(call, content, out, false);
}

/* ---- notebook_run -------------------------------------------------------------------------- */

typedef struct {
    mcp_server_t *server;
    mcp_call_t *call;
    char sandbox_id[37];
    char repl_id[37];
    json_t *nb;
    nb_run_t *run;
    char *output_path;
} nb_job_t;

static void s_job_free(nb_job_t *job)
{
    nb_run_destroy(&job->run);
    json_decref(job->nb);
    free(job->output_path);
    free(job);
}

static void s_on_cell(nb_run_t *run, size_t index, void *arg)
{
    nb_job_t *job = arg;
    char line[64];
    snprintf(line, sizeof line, "[cell %zu]\n", index + 1);
    mcp_call_progress(job->call, line, strlen(line));
}

static void s_on_output(kg_execution_t *x, const char *kind, json_t *content, void *arg)
{
    nb_job_t *job = arg;
    const char *text =
        strcmp(kind, "stream") == 0 ? json_string_value(json_object_get(content, "text")) : NULL;
    if (text)
        mcp_call_progress(job->call, text, strlen(text));
}

/* The client gave up, or its session is ending (and the server may be going): stop at once.
 * What ran is written (the running cell marked cancelled), the kernel closed and the call
 * finished (silently) here, so nothing of the run outlives this. */
static void s_cancel(mcp_call_t *call)
{
    nb_job_t *job = call->notebook;
    call->notebook = NULL;
    call->cancel = NULL;
    nb_run_destroy(&job->run);
    mcp_sandbox_t *sb = zhashx_lookup(job->server->sandboxes, job->sandbox_id);
    mcp_repl_t *repl = zhashx_lookup(job->server->repls, job->repl_id);
    if (repl)
        mcp_repl_close(&repl);
    cb_error_t err = {0};
    cleanup_free char *text = sb ? nb_dump(job->nb) : NULL;
    if (sb && s_write_workspace(sb, job->output_path, text, &err) < 0)
        cb_info("notebook_run cancelled: write %.200s: %s", job->output_path, err.msg);
    s_job_free(job);
    mcp_call_finish(call, NULL, NULL, false);
}

static void s_on_done(nb_run_t *run, void *arg)
{
    nb_job_t *job = arg;
    mcp_server_t *srv = job->server;
    mcp_call_t *call = job->call;
    call->notebook = NULL;
    call->cancel = NULL;
    mcp_sandbox_t *sb = zhashx_lookup(srv->sandboxes, job->sandbox_id);
    mcp_repl_t *repl = zhashx_lookup(srv->repls, job->repl_id);
    if (repl)
        mcp_repl_close(&repl);
    json_t *summary = nb_run_summary(run);
    if (!sb) {
        json_decref(summary);
        mcp_call_fail(call, "sandbox %s ended while the notebook ran", job->sandbox_id);
        return s_job_free(job);
    }
    cb_error_t err = {0};
    cleanup_free char *text = nb_dump(job->nb);
    if (s_write_workspace(sb, job->output_path, text, &err) < 0) {
        json_decref(summary);
        mcp_call_fail(call, "notebook_run: write %.200s: %s", job->output_path, err.msg);
        return s_job_free(job);
    }
    json_object_set_new(summary, "sandbox_id", json_string(sb->id));
    json_object_set_new(summary, "output_path", json_string(job->output_path));
    json_object_set_new(
        summary, "kernel",
        json_incref(json_object_get(
            json_object_get(json_object_get(job->nb, "metadata"), "kernelspec"), "name")));
    bool failed = nb_run_failed(run);
    json_t *failed_cell = json_object_get(summary, "failed_cell");
    json_t *error = json_object_get(summary, "error");
    cleanup_free char *line =
        failed ? cb_strdup_printf(
                     "The notebook stopped at cell %lld (%s): %s: %s. %lld code cells ran; the "
                     "cells after it were not run. The executed notebook is at %s.",
                     (long long)json_integer_value(failed_cell) + 1,
                     json_string_value(json_object_get(summary, "status")),
                     json_string_value(json_object_get(error, "ename")) ?: "Error",
                     json_string_value(json_object_get(error, "evalue")) ?: "",
                     (long long)json_integer_value(json_object_get(summary, "cells")),
                     job->output_path)
               : cb_strdup_printf(
                     "The notebook ran: %lld code cells, %lld with errors. The executed notebook "
                     "is at %s.",
                     (long long)json_integer_value(json_object_get(summary, "cells")),
                     (long long)json_integer_value(json_object_get(summary, "errors")),
                     job->output_path);
    json_t *content = json_pack("[o, o]", mcp_text_block(line),
                                mcp_resource_link(sb, job->output_path, MCP_NOTEBOOK_MIME));
    mcp_call_finish(call, content, summary, failed);
    s_job_free(job);
}

/* The notebook named by args (path or notebook), checked. Caller owns return value; NULL with
 * the call finished. */
static json_t *s_load(mcp_call_t *call, mcp_sandbox_t *sb, json_t *args)
{
    const char *path = mcp_arg_str(args, "path", NULL);
    json_t *inline_nb = json_object_get(args, "notebook");
    if (!path == !inline_nb) {
        mcp_call_fail(call,
                      "notebook_run takes a notebook: either path (a file in the "
                      "workspace) or notebook (the notebook itself), not %s",
                      path ? "both" : "neither");
        return NULL;
    }
    cb_error_t err = {0};
    json_t *nb = NULL;
    if (path) {
        cb_buf_t buf = {0};
        if (kg_sandbox_file_read(sb->kg, path, NB_MAX_BYTES, &buf, &err) < 0) {
            mcp_call_fail(call, "notebook_run: read %.200s: %s", path, err.msg);
            return NULL;
        }
        nb = nb_parse(buf.data ? buf.data : "", buf.len, &err);
        cb_buf_free(&buf);
    } else if (json_is_string(inline_nb)) {
        nb = nb_parse(json_string_value(inline_nb), json_string_length(inline_nb), &err);
    } else if (json_is_object(inline_nb)) {
        nb = json_deep_copy(inline_nb);
        if (nb_check(nb, &err) < 0)
            json_decref(nb), nb = NULL;
    } else {
        cb_error_fail(&err, CB_ERR_INVALID,
                      "argument 'notebook' must be an object or a string holding one");
    }
    if (!nb)
        mcp_call_fail(call, "notebook_run: %s%s%s", path ? path : "", path ? ": " : "", err.msg);
    return nb;
}

/* Where the executed notebook goes: output_path, else the input's name with .nbconvert.ipynb
 * (nbconvert's name), else notebooks/run-<id>.ipynb. Caller owns return value. */
static char *s_output_path(json_t *args, const char *repl_id)
{
    const char *out = mcp_arg_str(args, "output_path", NULL);
    if (out)
        return cb_xstrdup(out);
    const char *path = mcp_arg_str(args, "path", NULL);
    if (!path)
        return cb_strdup_printf("notebooks/run-%.8s.ipynb", repl_id);
    size_t len = strlen(path);
    if (len > 6 && strcasecmp(path + len - 6, ".ipynb") == 0)
        len -= 6;
    return cb_strdup_printf("%.*s.nbconvert.ipynb", (int)len, path);
}

void mcp_tool_notebook_run(mcp_call_t *call, json_t *args)
{
    mcp_sandbox_t *sb = mcp_sandbox_for_call(call, args, true);
    if (!sb)
        return;
    json_auto_t *nb = s_load(call, sb, args);
    if (!nb)
        return;
    cb_error_t err = {0};
    mcp_server_t *srv = sb->server;
    cleanup_free char *kernel = nb_pick_kernel(nb, mcp_arg_str(args, "kernel", NULL),
                                               kg_gateway_kernels_dir(srv->gw), &err);
    mcp_repl_t *repl = kernel ? mcp_repl_new(sb, MCP_REPL_JUPYTER, kernel, &err) : NULL;
    if (!repl)
        return mcp_call_fail_err(call, &err);
    nb_job_t *job = cb_xcalloc(1, sizeof *job);
    job->server = srv;
    job->call = call;
    snprintf(job->sandbox_id, sizeof job->sandbox_id, "%s", sb->id);
    snprintf(job->repl_id, sizeof job->repl_id, "%s", repl->id);
    job->output_path = s_output_path(args, repl->id);
    job->nb = json_incref(nb);
    double timeout_s = mcp_arg_num(args, "timeout_s", 0);
    nb_run_opts_t opts = {.allow_errors = mcp_arg_bool(args, "allow_errors", false),
                          .cell_timeout_ms = timeout_s > 0 ? (int)(timeout_s * 1000.0 + 0.5) : 0,
                          .on_done = s_on_done,
                          .on_cell = s_on_cell,
                          .on_output = s_on_output,
                          .arg = job};
    /* Cells queue on the kernel before it is ready; a kernel that never starts ends them. */
    job->run = nb_run_start(srv->gw, repl->kernel, job->nb, &opts, &err);
    if (!job->run) {
        mcp_repl_close(&repl);
        s_job_free(job);
        return mcp_call_fail_err(call, &err);
    }
    call->notebook = job;
    call->cancel = s_cancel;
}
