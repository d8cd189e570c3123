/* filesystem.c: envd's filesystem.Filesystem and /files. (Being written: issue 17.) */
#include <string.h>

#include "e2b_private.h"

void e2b_fs_handle(e2b_sandbox_t *sb, http_request_t *req, const char *method)
{
    (void)sb;
    (void)method;
    const char *ct = http_request_header(req, "Content-Type");
    e2b_rpc_fail(req, ct && strstr(ct, "connect") ? E2B_RPC_STREAM : E2B_RPC_UNARY,
                 "unimplemented", "filesystem.Filesystem is not written yet");
}

void e2b_files_handle(e2b_sandbox_t *sb, http_request_t *req)
{
    (void)sb;
    e2b_respond_error(req, 501, "/files is not written yet");
}

void e2b_fs_sandbox_end(e2b_sandbox_t *sb) { (void)sb; }
