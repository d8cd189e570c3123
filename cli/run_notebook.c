/* run_notebook.c: `cellblock run notebook.ipynb`: a notebook's code cells run in a fresh
 * sandbox and the executed notebook written next to it.
 *
 * The kernel is --kernel's, else the notebook's (metadata.kernelspec.name when installed here,
 * else the kernel for its language), else python3 (nb_pick_kernel). Cells run with nbclient's
 * rules (nb/notebook.h): the first error stops the run unless --allow-errors or the cell is
 * tagged "raises-exception". Streams and tracebacks are printed as they arrive, as for a code
 * file; the
 * executed notebook (outputs, execution counts, errors) is written atomically to -o, or to
 * FILE's name with .nbconvert.ipynb, also when a cell failed or the run was interrupted (the
 * running cell then ends in a CellExecutionCancelled error). Exit status: 0 when every cell
 * ran (allowed errors included), 1 when a cell stopped the run or the kernel failed, 2 when
 * the notebook cannot be read.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "cb/alloc.h"
#include "cb/cleanup.h"
#include "cb/util.h"
#include "cli.h"
#include "jupyter/kernelspec.h"
#include "kg/execution.h"
#include "kg/kernel.h"
#include "nb/notebook.h"

typedef struct {
    volatile int done;
    const char *path;
    json_t *nb; /* borrowed */
} nb_ctx_t;

bool cli_is_notebook(const char *path)
{
    size_t len = strlen(path);
    return len > 6 && strcasecmp(path + len - 6, ".ipynb") == 0;
}

static void s_on_output(kg_execution_t *x, const char *kind, json_t *content, void *arg)
{
    if (strcmp(kind, "error") == 0) { /* the traceback, as for a code file */
        size_t i;
        json_t *line;
        json_array_foreach (json_object_get(content, "traceback"), i, line)
            fprintf(stderr, "%s\n", json_string_value(line) ? json_string_value(line) : "");
        return;
    }
    if (strcmp(kind, "stream") != 0)
        return;
    const char *name = json_string_value(json_object_get(content, "name"));
    const char *text = json_string_value(json_object_get(content, "text"));
    if (text)
        fputs(text, name && strcmp(name, "stderr") == 0 ? stderr : stdout);
    fflush(stdout);
}

static void s_on_cell(nb_run_t *run, size_t index, void *arg)
{
    cb_debug("notebook cell %zu", index + 1);
}

static void s_on_done(nb_run_t *run, void *arg)
{
    nb_ctx_t *ctx = arg;
    ctx->done = 1;
}

/* FILE's name with .nbconvert.ipynb (nbconvert's name for an executed copy). */
static char *s_default_output(const char *path)
{
    size_t len = strlen(path);
    return cb_strdup_printf("%.*s.nbconvert.ipynb", (int)(len - 6), path);
}

static kg_kernel_t *s_kernel(kg_gateway_t *gw, const cli_notebook_run_t *nr, const char *kernel,
                             kg_config_t *cfg, cb_error_t *err)
{
    if (!nr->template_name) {
        kg_kernel_opts_t kopts = {.kernel_name = kernel};
        return kg_kernel_start(gw, &kopts, err);
    }
    fleet_sandbox_opts_t sopts = {.template_name = nr->template_name,
                                  .kernel_name = kernel,
                                  .limits = cfg->limits,
                                  .timeout_s = -1,
                                  .no_pool = true};
    fleet_t *fleet = fleet_new(gw, NULL, err); /* the gateway owns it */
    kg_sandbox_t *sb = fleet ? fleet_sandbox_open(fleet, &sopts, err) : NULL;
    return sb ? fleet_sandbox_main_kernel(sb) : NULL;
}

int cli_run_notebook(const cli_notebook_run_t *nr, kg_config_t *cfg)
{
    cb_error_t err = {0};
    size_t len = 0;
    cleanup_free char *text = cb_read_file(nr->path, NB_MAX_BYTES, &len, &err);
    json_auto_t *nb = text ? nb_parse(text, len, &err) : NULL;
    if (!nb) {
        fprintf(stderr, "cellblock run: %s: %s\n", nr->path, err.msg);
        cli_sandbox_flags_free(cfg);
        return CLI_USAGE;
    }
    cleanup_free char *project_dir = jp_kernelspec_project_dir();
    cleanup_free char *kernel_name = nb_pick_kernel(nb, nr->kernel_name, project_dir, &err);
    if (!kernel_name) {
        fprintf(stderr, "cellblock run: %s: %s\n", nr->path, err.msg);
        cli_sandbox_flags_free(cfg);
        return err.kind == CB_ERR_UNAVAILABLE ? CLI_FAILED : CLI_USAGE;
    }
    cleanup_free char *output = nr->output ? cb_xstrdup(nr->output) : s_default_output(nr->path);

    kg_gateway_t *gw = kg_gateway_new(cfg, &err);
    kg_kernel_t *kernel = gw ? s_kernel(gw, nr, kernel_name, cfg, &err) : NULL;
    cli_sandbox_flags_free(cfg); /* the sandbox holds its own copy of --network */
    nb_ctx_t ctx = {.path = nr->path, .nb = nb};
    nb_run_opts_t ropts = {.allow_errors = nr->allow_errors,
                           .cell_timeout_ms = nr->timeout_ms,
                           .on_done = s_on_done,
                           .on_cell = s_on_cell,
                           .on_output = s_on_output,
                           .arg = &ctx};
    nb_run_t *run = kernel ? nb_run_start(gw, kernel, nb, &ropts, &err) : NULL;
    if (!run) {
        fprintf(stderr, "cellblock run: %s\n", err.msg);
        kg_gateway_destroy(&gw);
        return err.kind == CB_ERR_NOT_FOUND || err.kind == CB_ERR_INVALID ? CLI_USAGE : CLI_FAILED;
    }
    int rc = CLI_OK;
    bool interrupted = kg_gateway_run_until(gw, &ctx.done, -1) < 0;
    json_auto_t *summary = nb_run_summary(run);
    if (interrupted) { /* the running cell is marked cancelled when the run is given up below */
        fprintf(stderr, "cellblock run: interrupted\n");
        rc = CLI_FAILED;
    } else if (nb_run_failed(run)) {
        json_t *error = json_object_get(summary, "error");
        fprintf(stderr, "cellblock run: %s: cell %lld failed (%s): %s: %s\n", nr->path,
                (long long)json_integer_value(json_object_get(summary, "failed_cell")) + 1,
                json_string_value(json_object_get(summary, "status")),
                json_string_value(json_object_get(error, "ename")) ?: "Error",
                json_string_value(json_object_get(error, "evalue")) ?: "");
        rc = CLI_FAILED;
    }
    nb_run_destroy(&run);
    kg_gateway_destroy(&gw);

    cleanup_free char *out_text = nb_dump(nb);
    if (cb_write_file(output, out_text, strlen(out_text), 0644, &err) < 0) {
        fprintf(stderr, "cellblock run: %s\n", err.msg);
        return CLI_FAILED;
    }
    fprintf(stderr, "cellblock run: %d code cells run (%d with errors); wrote %s\n",
            (int)json_integer_value(json_object_get(summary, "cells")),
            (int)json_integer_value(json_object_get(summary, "errors")), output);
    return rc;
}
