/* kg/execution.h: executions: code queued on a kernel, followed to its result.
 *
 * Results follow the Jupyter model (close to E2B's Execution object) and are jansson objects:
 *
 *   { "id": "<execution id>",
 *     "status": "ok" | "error" | "timeout" | "cancelled" | "kernel_died" | "aborted",
 *     "execution_count": 3 | null,
 *     "stdout": "...", "stderr": "...",
 *     "results": [ { "data": {"text/plain": "...", "image/png": "<base64>", ...},
 *                    "metadata": {...}, "is_main_result": true|false,
 *                    "display_id": "..." (only when the kernel gave one) } ],
 *     "error": null | { "ename": "...", "evalue": "...", "traceback": ["...", ...] },
 *     "duration_ms": 12.5,
 *     "kernel_restarted": false,     true when state was lost (a restart before or during it)
 *     "notes": [ "..." ] }           plain sentences a person or a model can act on
 *
 * Memory is bounded per execution: each of stdout and stderr keeps 16 MiB, and rich results
 * keep 64 MiB of data in all; what comes beyond is dropped and a note says so.
 *
 * Blocking: nothing here blocks. on_done may queue more code on the same kernel.
 *
 * Threads: call every function here from the thread that runs the gateway's loop
 * (kg_gateway_loop), as the callbacks are; nothing here is thread-safe.
 */
#ifndef KG_EXECUTION_H
#define KG_EXECUTION_H

#include <jansson.h>

#include "cb/error.h"
#include "kg/types.h"

/* ---------------------------------------------------------------------------------------------
 * Executions.
 * ------------------------------------------------------------------------------------------- */

/* Called for each output as it arrives: kind is "stream", "display_data", "update_display_data",
 * "execute_result", "clear_output", "error" or "input_request"; content is the message content.
 * Borrowed; valid during the call. */
typedef void(kg_output_fn)(kg_execution_t *x, const char *kind, json_t *content, void *arg);

/* Called once with the final result (see the top of this header). Borrowed; valid during the
 * call (json_incref it to keep it). The execution is freed after this returns. */
typedef void(kg_done_fn)(kg_execution_t *x, json_t *result, void *arg);

typedef struct {
    const char *code;
    int timeout_ms;         /* 0: no limit. On expiry: interrupt, then restart after the grace */
    const char *stdin_text; /* lines answered to input() in turn; NULL: input() raises at once */
    bool silent;            /* Jupyter's silent (no output, no history) */
    bool no_history;        /* store_history = false */
    const char *origin;     /* who asked, for the audit trail: "mcp", "e2b", "cli", ...;
                               NULL: "kernel client" */
    kg_output_fn *on_output;
    kg_done_fn *on_done;
    void *arg;
} kg_execute_opts_t;

/* Queue code on a kernel. Executions run one after another in the order queued. Borrowed;
 * valid until on_done returns. */
kg_execution_t *kg_execute(kg_kernel_t *kernel, const kg_execute_opts_t *opts, cb_error_t *err);

/* Cancel: a queued execution ends at once, a running one is interrupted; status "cancelled".
 * The kernel keeps its state. */
int kg_execution_cancel(kg_execution_t *self, cb_error_t *err);

const char *kg_execution_id(const kg_execution_t *self); /* Borrowed; valid with the execution */
kg_kernel_t *kg_execution_kernel(const kg_execution_t *self);

/* The result so far (same shape as the final one, status "running" or "queued").
 * Caller owns return value. */
json_t *kg_execution_snapshot(const kg_execution_t *self);

#endif
