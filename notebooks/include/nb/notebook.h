/* nb/notebook.h: Jupyter notebooks (nbformat 4) read, checked, built and run on a kernel.
 *
 * A notebook is a jansson object in nbformat 4's shape. nb_parse reads one and checks what
 * running it relies on (nbformat 4, a cells array of objects with a known cell_type and a
 * string or list-of-strings source); it does not check every rule of the JSON schema, but every
 * notebook this module writes validates with nbformat.
 *
 * nb_run runs a notebook's code cells in order on a kernel with nbclient's rules: outputs are
 * replaced, consecutive stream outputs of the same name are merged, a display update replaces
 * the outputs shown with its display id, an empty cell is skipped,
 * the run stops at the first error unless errors are allowed (or the cell has the tag
 * "raises-exception"); cells after the failing one keep no outputs and no execution_count.
 *
 * Threads: nb_run's functions are called from the gateway's loop thread, as its callbacks are.
 */
#ifndef NB_NOTEBOOK_H
#define NB_NOTEBOOK_H

#include <jansson.h>
#include <stdbool.h>

#include "cb/error.h"
#include "kg/execution.h"
#include "kg/types.h"

#define NB_MAX_BYTES (64u << 20) /* the largest notebook read */

/* ---- reading and writing ----------------------------------------------------------------- */

/* Parse text as an nbformat 4 notebook and check it (nb_check). Caller owns return value; NULL
 * with err (CB_ERR_INVALID) saying what is wrong and where. */
json_t *nb_parse(const char *text, size_t len, cb_error_t *err);

/* Check a notebook object and fill what nbformat 4.5 requires and may be missing (metadata,
 * a cell's metadata, outputs and execution_count of code cells, cell ids when nbformat_minor
 * is 5 or more). 0, or -1 with err. */
int nb_check(json_t *nb, cb_error_t *err);

/* The notebook as text (one-space indent, sorted keys, a final newline, as nbformat writes).
 * Caller owns return value. */
char *nb_dump(const json_t *nb);

/* A cell's source as one string (nbformat allows a list of lines). Caller owns return value. */
char *nb_cell_source(const json_t *cell);

/* The kernel to run it with: explicit when given, else metadata.kernelspec.name when that
 * kernelspec is found here, else the kernel for metadata.language_info.name (or
 * kernelspec.language) by the catalog of languages, else "python3". project_dir as
 * jp_kernelspec_find's. Caller owns return value; NULL with err when the notebook names a
 * language no kernel here runs. */
char *nb_pick_kernel(const json_t *nb, const char *explicit_name, const char *project_dir,
                     cb_error_t *err);

/* ---- building ---------------------------------------------------------------------------- */

/* An empty notebook (nbformat 4.5) for a kernel and its language. Caller owns return value. */
json_t *nb_new(const char *kernel_name, const char *language);

/* A code cell (nbformat 4.5, with a fresh id). outputs stolen (NULL: none); execution_count
 * < 0: null. Caller owns return value. */
json_t *nb_code_cell(const char *source, json_t *outputs, long long execution_count);

/* One kernel output message (kind and content as kg_output_fn's) as an nbformat output; NULL
 * for kinds that are not outputs (clear_output, update_display_data, input_request).
 * execution_count is put on an execute_result. Caller owns return value. */
json_t *nb_output_from_message(const char *kind, const json_t *content, long long execution_count);

/* Append output (stolen) to outputs, merging it into the last one when both are streams of the
 * same name, as nbclient does. */
void nb_outputs_append(json_t *outputs, json_t *output);

/* A finished execution's result (kg/execution.h's shape) as nbformat outputs: stdout, stderr,
 * rich results, then the error. Caller owns return value. */
json_t *nb_outputs_from_result(const json_t *result);

/* ---- running ----------------------------------------------------------------------------- */

typedef struct nb_run nb_run_t;

/* Called once when the run ends (every cell ran, one failed, or it was cancelled). The notebook
 * holds what ran. */
typedef void(nb_run_done_fn)(nb_run_t *run, void *arg);
/* Called before a code cell runs (index into cells), for progress. May be NULL. */
typedef void(nb_run_cell_fn)(nb_run_t *run, size_t index, void *arg);

typedef struct {
    bool allow_errors;    /* run on after a cell's error */
    int cell_timeout_ms;  /* per cell; 0: no limit */
    nb_run_done_fn *on_done;
    nb_run_cell_fn *on_cell;
    kg_output_fn *on_output; /* every output as it arrives, after it is recorded; may be NULL */
    void *arg;
} nb_run_opts_t;

/* Run nb's code cells on kernel, a kernel of gw (nb borrowed; modified in place; it must outlive the run); the kernel's
 * name and language go into the notebook's metadata. on_done is called later, never from
 * within this call. Caller owns return value (destroy it after on_done, or to abandon the run:
 * the running cell then gets an error output CellExecutionCancelled and is cancelled, on_done
 * is not called, and the notebook is not touched again). NULL with err. */
nb_run_t *nb_run_start(kg_gateway_t *gw, kg_kernel_t *kernel, json_t *nb,
                       const nb_run_opts_t *opts, cb_error_t *err);

/* Stop: the running cell is cancelled; on_done follows. */
void nb_run_cancel(nb_run_t *self);

/* Accepts NULL and a pointer to NULL; nulls the caller's pointer. */
void nb_run_destroy(nb_run_t **self_p);

/* {cells: code cells run, errors: cells that raised, failed_cell: index of the cell that
 * stopped the run or null, status: "ok" | "error" | "cancelled" | "kernel_died" | "timeout",
 * error: {ename, evalue} of the stopping cell or null}. Caller owns return value. */
json_t *nb_run_summary(const nb_run_t *self);

/* Did the run stop at a failure (or was it cancelled)? */
bool nb_run_failed(const nb_run_t *self);

#endif
