/* kg_run.h: what the C integration tests share to run code on a gateway's kernel. */
#ifndef CB_TESTS_KG_RUN_H
#define CB_TESTS_KG_RUN_H

#include <jansson.h>

#include "kg/gateway.h"

/* Run code on kernel k (timeout_ms: the execution's own limit, 0: none) and drive gw's loop until
 * it ends, at most deadline_ms. Caller owns return value: the execution's result; NULL, with a
 * diagnostic, when it could not be queued or did not end in time. */
json_t *tst_kg_run(kg_gateway_t *gw, kg_kernel_t *k, const char *code, int timeout_ms,
                   int deadline_ms);

#endif
