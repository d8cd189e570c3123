/* run.c: a notebook's code cells run in order on a kernel, with nbclient's rules (nb_run_*).
 *
 * Why: `cellblock run x.ipynb` and MCP's notebook_run both execute notebooks; this is the one
 * executor, asynchronous on the gateway's loop so that the MCP server keeps serving meanwhile.
 * How: one cell is queued at a time; its outputs are recorded as they arrive (clear_output
 * honoured, streams merged, update_display_data applied to every output of that display id); its on_done records execution_count and timing, decides whether
 * to go on (nbclient: stop at an error unless errors are allowed or the cell is tagged
 * "raises-exception"; always stop when the kernel died, the cell timed out or was cancelled)
 * and queues the next cell from there. The end is reported from a deferred call, so on_done
 * never runs inside nb_run_start or nb_run_cancel.
 *
 * Lifetime: an execution's on_done always comes, so a run abandoned (nb_run_destroy) while a
 * cell runs marks that cell cancelled in the notebook, cancels it, and frees itself in the
 * cell's on_done without touching the notebook again.
 */
#include <string.h>

#include "cb/alloc.h"
#include "cb/cleanup.h"
#include "cb/log.h"
#include "cb/util.h"
#include "kg/gateway.h"
#include "kg/kernel.h"
#include "nb/notebook.h"

struct nb_run {
    kg_gateway_t *gw;
    kg_kernel_t *kernel;
    json_t *nb; /* borrowed */
    nb_run_opts_t opts;
    size_t next;         /* the next cell to look at */
    size_t current;      /* the cell running */
    kg_execution_t *x;   /* its execution, while it runs */
    bool clear_pending;  /* clear_output(wait=True): clear at the next output */
    char started[CB_ISO8601_LEN];
    int cells_run;
    int errors;
    long failed_cell; /* -1: none */
    char status[16];  /* "running", then the end's */
    json_t *stop_error;
    json_t *displays; /* display_id -> [outputs shown with it] (references into the notebook) */
    bool cancelled;
    bool abandoned;
    bool ended;
};

static void s_next(nb_run_t *run);

static void s_deferred_done(kg_gateway_t *gw, void *arg)
{
    nb_run_t *run = arg;
    if (run->opts.on_done)
        run->opts.on_done(run, run->opts.arg);
}

static void s_end(nb_run_t *run, const char *status)
{
    snprintf(run->status, sizeof run->status, "%s", status);
    run->ended = true;
    kg_gateway_defer(run->gw, s_deferred_done, run);
}

static json_t *s_cell(nb_run_t *run)
{
    return json_array_get(json_object_get(run->nb, "cells"), run->current);
}

static bool s_has_tag(json_t *cell, const char *tag)
{
    size_t i;
    json_t *t;
    json_array_foreach (json_object_get(json_object_get(cell, "metadata"), "tags"), i, t)
        if (json_is_string(t) && strcmp(json_string_value(t), tag) == 0)
            return true;
    return false;
}

static void s_on_output(kg_execution_t *x, const char *kind, json_t *content, void *arg)
{
    nb_run_t *run = arg;
    if (run->abandoned)
        return;
    json_t *outputs = json_object_get(s_cell(run), "outputs");
    const char *display_id =
        json_string_value(json_object_get(json_object_get(content, "transient"), "display_id"));
    if (strcmp(kind, "clear_output") == 0) {
        if (json_is_true(json_object_get(content, "wait")))
            run->clear_pending = true;
        else
            json_array_clear(outputs);
    } else if (strcmp(kind, "update_display_data") == 0) {
        /* nbclient: every output shown with that display id, in any cell, takes the new data;
         * no output is added. An output cleared since is updated out of sight, harmlessly. */
        size_t i;
        json_t *shown;
        json_array_foreach (json_object_get(run->displays, display_id ? display_id : ""), i,
                            shown) {
            json_auto_t *fresh = nb_output_from_message("display_data", content, -1);
            json_object_set(shown, "data", json_object_get(fresh, "data"));
            json_object_set(shown, "metadata", json_object_get(fresh, "metadata"));
        }
    } else {
        json_t *out = nb_output_from_message(kind, content, -1);
        if (out && run->clear_pending) {
            json_array_clear(outputs);
            run->clear_pending = false;
        }
        bool rich = out && strcmp(kind, "stream") != 0 && strcmp(kind, "error") != 0;
        if (rich && display_id) {
            json_t *list = json_object_get(run->displays, display_id);
            if (!list)
                json_object_set_new(run->displays, display_id, list = json_array());
            json_array_append(list, out);
        }
        nb_outputs_append(outputs, out); /* a rich output is appended as it is, never merged */
    }
    if (run->opts.on_output)
        run->opts.on_output(x, kind, content, run->opts.arg);
}

static bool s_has_error_output(json_t *outputs)
{
    size_t i;
    json_t *out;
    json_array_foreach (outputs, i, out)
        if (json_is_string(json_object_get(out, "output_type")) &&
            strcmp(json_string_value(json_object_get(out, "output_type")), "error") == 0)
            return true;
    return false;
}

/* The names nbclient gives the ways a cell can end without the kernel's own error. */
static const char *s_ename_of(const char *status)
{
    if (strcmp(status, "timeout") == 0)
        return "CellTimeoutError";
    if (strcmp(status, "kernel_died") == 0)
        return "DeadKernelError";
    if (strcmp(status, "cancelled") == 0)
        return "CellExecutionCancelled";
    return "CellExecutionError";
}

static void s_on_done(kg_execution_t *x, json_t *result, void *arg)
{
    nb_run_t *run = arg;
    run->x = NULL;
    if (run->abandoned) {
        free(run);
        return;
    }
    json_t *cell = s_cell(run);
    json_t *outputs = json_object_get(cell, "outputs");
    json_t *count = json_object_get(result, "execution_count");
    json_object_set_new(cell, "execution_count",
                        json_is_integer(count) ? json_integer(json_integer_value(count))
                                               : json_null());
    /* execute_result outputs carry the cell's count, which only the reply may have said. */
    size_t i;
    json_t *out;
    json_array_foreach (outputs, i, out)
        if (json_is_null(json_object_get(out, "execution_count")) && json_is_integer(count))
            json_object_set_new(out, "execution_count", json_integer(json_integer_value(count)));
    char ended[CB_ISO8601_LEN];
    json_t *meta = json_object_get(cell, "metadata");
    json_object_set_new(meta, "execution",
                        json_pack("{s:s, s:s}", "iopub.execute_input", run->started,
                                  "shell.execute_reply", cb_iso8601_now(ended)));
    run->cells_run++;
    const char *status = json_string_value(json_object_get(result, "status"));
    if (!status)
        status = "error";
    if (strcmp(status, "ok") == 0)
        return s_next(run);

    run->errors++;
    json_t *error = json_object_get(result, "error");
    if (!s_has_error_output(outputs)) { /* a time limit, a dead kernel: say it in the cell */
        const char *note = json_string_value(json_array_get(json_object_get(result, "notes"), 0));
        json_auto_t *content = json_pack(
            "{s:s, s:s, s:[]}", "ename",
            json_is_object(error) && json_string_value(json_object_get(error, "ename"))
                ? json_string_value(json_object_get(error, "ename"))
                : s_ename_of(status),
            "evalue",
            json_is_object(error) && json_string_value(json_object_get(error, "evalue"))
                ? json_string_value(json_object_get(error, "evalue"))
                : note ? note
                       : status,
            "traceback");
        nb_outputs_append(outputs, nb_output_from_message("error", content, -1));
    }
    bool allowed = strcmp(status, "error") == 0 && !run->cancelled &&
                   (run->opts.allow_errors || s_has_tag(cell, "raises-exception"));
    if (allowed)
        return s_next(run);
    run->failed_cell = (long)run->current;
    json_t *last = json_array_get(outputs, json_array_size(outputs) - 1);
    run->stop_error = json_pack("{s:O?, s:O?}", "ename", json_object_get(last, "ename"), "evalue",
                                json_object_get(last, "evalue"));
    s_end(run, run->cancelled ? "cancelled" : status);
}

static bool s_blank(const char *source)
{
    for (const char *p = source; *p; p++)
        if (!strchr(" \t\r\n\f\v", *p))
            return false;
    return true;
}

static void s_next(nb_run_t *run)
{
    json_t *cells = json_object_get(run->nb, "cells");
    if (run->cancelled)
        return s_end(run, "cancelled");
    for (; run->next < json_array_size(cells); run->next++) {
        json_t *cell = json_array_get(cells, run->next);
        if (strcmp(json_string_value(json_object_get(cell, "cell_type")) ?: "", "code") != 0)
            continue;
        cleanup_free char *code = nb_cell_source(cell);
        if (s_blank(code))
            continue;
        run->current = run->next++;
        run->clear_pending = false;
        cb_iso8601_now(run->started);
        if (run->opts.on_cell)
            run->opts.on_cell(run, run->current, run->opts.arg);
        kg_execute_opts_t xopts = {.code = code,
                                   .timeout_ms = run->opts.cell_timeout_ms,
                                   .on_output = s_on_output,
                                   .on_done = s_on_done,
                                   .arg = run};
        cb_error_t err = {0};
        run->x = kg_execute(run->kernel, &xopts, &err);
        if (!run->x) {
            json_auto_t *content =
                json_pack("{s:s, s:s, s:[]}", "ename", "CellExecutionError", "evalue", err.msg,
                          "traceback");
            nb_outputs_append(json_object_get(cell, "outputs"),
                              nb_output_from_message("error", content, -1));
            run->errors++;
            run->failed_cell = (long)run->current;
            run->stop_error = json_pack("{s:s, s:s}", "ename", "CellExecutionError", "evalue",
                                        err.msg);
            return s_end(run, "error");
        }
        return;
    }
    s_end(run, "ok");
}

nb_run_t *nb_run_start(kg_gateway_t *gw, kg_kernel_t *kernel, json_t *nb,
                       const nb_run_opts_t *opts, cb_error_t *err)
{
    if (nb_check(nb, err) < 0)
        return NULL;
    nb_run_t *run = cb_xcalloc(1, sizeof *run);
    run->gw = gw;
    run->kernel = kernel;
    run->nb = nb;
    run->opts = *opts;
    run->failed_cell = -1;
    run->displays = json_object();
    snprintf(run->status, sizeof run->status, "running");

    /* The kernel it runs on, as nbclient records it (the kernel's language as language_info's
     * name; a language_info of the same language keeps its other fields). */
    json_t *meta = json_object_get(nb, "metadata");
    const char *name = kg_kernel_name(kernel);
    const char *language = kg_kernel_language(kernel);
    json_t *spec = json_object_get(meta, "kernelspec");
    const char *display = json_string_value(json_object_get(spec, "display_name"));
    bool same = display && json_is_string(json_object_get(spec, "name")) &&
                strcmp(json_string_value(json_object_get(spec, "name")), name) == 0;
    json_object_set_new(meta, "kernelspec",
                        json_pack("{s:s, s:s, s:s}", "name", name, "display_name",
                                  same ? display : name, "language", language ? language : ""));
    json_t *info = json_object_get(meta, "language_info");
    const char *info_name = json_string_value(json_object_get(info, "name"));
    if (!json_is_object(info) || !info_name || !language || strcmp(info_name, language) != 0)
        json_object_set_new(meta, "language_info",
                            json_pack("{s:s}", "name", language ? language : ""));

    /* Every code cell starts empty: cells after a failure keep nothing from an earlier run. */
    size_t i;
    json_t *cell;
    json_array_foreach (json_object_get(nb, "cells"), i, cell) {
        if (strcmp(json_string_value(json_object_get(cell, "cell_type")) ?: "", "code") != 0)
            continue;
        json_object_set_new(cell, "outputs", json_array());
        json_object_set_new(cell, "execution_count", json_null());
        json_object_del(json_object_get(cell, "metadata"), "execution");
    }
    s_next(run);
    return run;
}

void nb_run_cancel(nb_run_t *self)
{
    if (!self || self->ended)
        return;
    self->cancelled = true;
    cb_error_t err = {0};
    if (self->x && kg_execution_cancel(self->x, &err) < 0)
        cb_warn("cancel a notebook's cell: %s", err.msg);
}

void nb_run_destroy(nb_run_t **self_p)
{
    nb_run_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    *self_p = NULL;
    kg_gateway_defer_cancel(self->gw, s_deferred_done, self);
    json_decref(self->stop_error);
    self->stop_error = NULL;
    json_decref(self->displays);
    self->displays = NULL;
    if (self->x) { /* its on_done frees the run */
        /* The notebook says the cell did not finish (nothing touches it after this). */
        json_auto_t *content =
            json_pack("{s:s, s:s, s:[]}", "ename", "CellExecutionCancelled", "evalue",
                      "the run was stopped while this cell ran", "traceback");
        nb_outputs_append(json_object_get(s_cell(self), "outputs"),
                          nb_output_from_message("error", content, -1));
        self->abandoned = true;
        cb_error_t err = {0};
        kg_execution_cancel(self->x, &err);
        return;
    }
    free(self);
}

json_t *nb_run_summary(const nb_run_t *self)
{
    return json_pack("{s:i, s:i, s:o, s:s, s:O?}", "cells", self->cells_run, "errors",
                     self->errors,
                     "failed_cell", self->failed_cell < 0 ? json_null() : json_integer(self->failed_cell),
                     "status", self->status, "error", self->stop_error);
}

bool nb_run_failed(const nb_run_t *self) { return self->failed_cell >= 0 || self->cancelled; }
