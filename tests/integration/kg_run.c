/* kg_run.c: run code on a gateway's kernel and wait for the result, for the C integration tests. */
#include "kg_run.h"

#include <stdlib.h>

#include "cb/tap.h"
#include "kg/gateway.h"
#include "kg/execution.h"

typedef struct {
    volatile int done;
    json_t *result;
} s_run_t;

static void s_on_done(kg_execution_t *x, json_t *result, void *arg)
{
    s_run_t *r = arg;
    r->result = json_incref(result);
    r->done = 1;
}

json_t *tst_kg_run(kg_gateway_t *gw, kg_kernel_t *k, const char *code, int timeout_ms,
                   int deadline_ms)
{
    /* On the heap: an execution that misses the deadline still calls s_on_done later, so its
     * record is left to it (a leak only in a run that already failed). */
    s_run_t *r = calloc(1, sizeof *r);
    cb_error_t err = {0};
    if (!r)
        return CB_DIAG("out of memory"), NULL;
    kg_execute_opts_t opts = {
        .code = code, .timeout_ms = timeout_ms, .on_done = s_on_done, .arg = r};
    if (!k || !kg_execute(k, &opts, &err)) {
        CB_DIAG("kg_execute(%.80s): %s", code, k ? err.msg : "no kernel");
        free(r);
        return NULL;
    }
    if (kg_gateway_run_until(gw, &r->done, deadline_ms) < 0) {
        CB_DIAG("no result for '%.80s' within %d ms", code, deadline_ms);
        return NULL;
    }
    json_t *result = r->result;
    free(r);
    return result;
}
