/* api.c: E2B's control plane (REST) onto the fleet. (Being written: issue 17.) */
#include "e2b_private.h"

void e2b_api_handle(e2b_t *api, http_request_t *req, const char *path)
{
    (void)api;
    (void)path;
    e2b_respond_error(req, 501, "the E2B control plane is not written yet");
}
