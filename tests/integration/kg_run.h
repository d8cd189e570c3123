/* kg_run.h: what the C integration tests share to run code on a gateway's kernel. */
#ifndef CB_TESTS_KG_RUN_H
#define CB_TESTS_KG_RUN_H

#include <jansson.h>
#include <stdbool.h>

#include "kg/execution.h"
#include "kg/gateway.h"

/* Run code on kernel k (timeout_ms: the execution's own limit, 0: none) and drive gw's loop until
 * it ends, at most deadline_ms. Caller owns return value: the execution's result; NULL, with a
 * diagnostic, when it could not be queued or did not end in time. */
json_t *tst_kg_run(kg_gateway_t *gw, kg_kernel_t *k, const char *code, int timeout_ms,
                   int deadline_ms);

/* Skip the whole test (CB_SKIP_ALL, with the reason) unless sandboxes can be made here (user
 * namespaces) and Debian's /usr/bin/python3 is there for their kernels. */
void tst_kg_require_sandboxed_python(void);

/* One execution a test follows itself (several at once, or with a look in between): the record
 * its callbacks fill. Zero it; it must outlive the execution (a test that gives up on a deadline
 * leaves it to the execution). */
typedef struct {
    volatile int done;    /* on_done came: result is set */
    volatile int printed; /* a stream output came */
    int outputs;          /* outputs of any kind so far */
    bool cancel_on_print; /* cancel the execution at its first stream output */
    json_t *result;       /* the final result; owned (json_decref it, or take it by tst_kg_wait) */
} tst_kg_job_t;

/* Queue opts->code on k with job as the callbacks' record (opts' own callbacks and arg are
 * replaced). Returns the execution, or NULL with a diagnostic. */
kg_execution_t *tst_kg_start(kg_kernel_t *k, kg_execute_opts_t opts, tst_kg_job_t *job);

/* Drive gw's loop until job is done or deadline_ms passes. Caller owns return value: the
 * result, taken from job; NULL, with a diagnostic, on the deadline. */
json_t *tst_kg_wait(kg_gateway_t *gw, tst_kg_job_t *job, int deadline_ms);

#endif
