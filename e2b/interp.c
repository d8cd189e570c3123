/* interp.c: the code interpreter's /execute and /contexts. (Being written: issue 17.) */
#include "e2b_private.h"

void e2b_interp_handle(e2b_sandbox_t *sb, http_request_t *req, const char *path)
{
    (void)sb;
    (void)path;
    e2b_respond_error(req, 501, "the code interpreter is not written yet");
}

void e2b_interp_sandbox_end(e2b_sandbox_t *sb) { (void)sb; }
