/* process.c: envd's process.Process onto the engine's commands. (Being written: issue 17.) */
#include <string.h>

#include "e2b_private.h"

void e2b_process_handle(e2b_sandbox_t *sb, http_request_t *req, const char *method)
{
    (void)sb;
    (void)method;
    const char *ct = http_request_header(req, "Content-Type");
    e2b_rpc_fail(req, ct && strstr(ct, "connect") ? E2B_RPC_STREAM : E2B_RPC_UNARY,
                 "unimplemented", "process.Process is not written yet");
}

void e2b_process_sandbox_end(e2b_sandbox_t *sb) { (void)sb; }
