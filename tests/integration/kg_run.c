/* kg_run.c: run code on a gateway's kernel and wait for the result, for the C integration tests. */
#include "kg_run.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cb/cleanup.h"
#include "cb/tap.h"

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

static void s_job_done(kg_execution_t *x, json_t *result, void *arg)
{
    tst_kg_job_t *job = arg;
    job->result = json_incref(result);
    job->done = 1;
}

static void s_job_output(kg_execution_t *x, const char *kind, json_t *content, void *arg)
{
    tst_kg_job_t *job = arg;
    job->outputs++;
    if (strcmp(kind, "stream") != 0)
        return;
    job->printed = 1;
    if (job->cancel_on_print) {
        job->cancel_on_print = false;
        kg_execution_cancel(x, NULL);
    }
}

kg_execution_t *tst_kg_start(kg_kernel_t *k, kg_execute_opts_t opts, tst_kg_job_t *job)
{
    opts.on_done = s_job_done;
    opts.on_output = s_job_output;
    opts.arg = job;
    cb_error_t err = {0};
    kg_execution_t *x = k ? kg_execute(k, &opts, &err) : NULL;
    if (!x)
        CB_DIAG("kg_execute(%.80s): %s", opts.code, k ? err.msg : "no kernel");
    return x;
}

json_t *tst_kg_wait(kg_gateway_t *gw, tst_kg_job_t *job, int deadline_ms)
{
    if (!job->done && kg_gateway_run_until(gw, &job->done, deadline_ms) < 0) {
        CB_DIAG("no result within %d ms", deadline_ms);
        return NULL;
    }
    json_t *result = job->result;
    job->result = NULL;
    return result;
}

void tst_kg_require_sandboxed_python(void)
{
    cleanup_fclose FILE *userns = fopen("/proc/sys/user/max_user_namespaces", "r");
    int max_userns = 0;
    if (!userns || fscanf(userns, "%d", &max_userns) != 1 || max_userns <= 0)
        CB_SKIP_ALL("no user namespaces (/proc/sys/user/max_user_namespaces)");
    if (access("/usr/bin/python3", X_OK) < 0)
        CB_SKIP_ALL("no /usr/bin/python3");
}
