/* japi/japi.h: the Jupyter Kernel Gateway API over HTTP, what `jupyter_server --gateway-url`
 * (and so JupyterLab) speaks, served on an HTTP server (http/http.h) under /api:
 *
 *   GET /api; GET /api/kernelspecs and /api/kernelspecs/{name}; GET and POST /api/kernels;
 *   GET and DELETE /api/kernels/{id}; POST /api/kernels/{id}/interrupt and /restart;
 *   the WebSocket /api/kernels/{id}/channels (JSON messages, or the
 *   v1.kernel.websocket.jupyter.org binary format when that subprotocol is agreed).
 *
 * Every kernel of a sandbox the request's principal may reach (http_request_principal,
 * fleet_sandbox_visible) is listed and reachable, including those MCP sessions and E2B's API
 * started, so a person can watch and drive the kernel an assistant uses; another tenant's
 * kernel is answered as an unknown id. A kernel made by POST runs in a sandbox of its own,
 * opened through the fleet for the principal's tenant, and only those may be deleted here. The
 * routes are in docs/http.md.
 *
 * It sits above the engine (the kg/ headers) and the HTTP server, and uses only their public headers.
 * Every call comes from the gateway's loop thread.
 */
#ifndef JAPI_JAPI_H
#define JAPI_JAPI_H

#include <stddef.h>

#include "cb/error.h"
#include "http/http.h"
#include "kg/gateway.h"
#include "kg/sandbox.h"

typedef struct japi japi_t;

typedef struct {
    const char *template_name; /* of the sandboxes POST /api/kernels opens (NULL: "python") */
    int kernel_timeout_s;      /* their lifetime (kg_sandbox_opts_t.timeout_s; 0: the gateway's
                                  default, -1: none) */
    size_t replay_messages;    /* messages kept for a channels session_id that reconnects (0: 1000;
                                  32 MiB at most whatever the count) */
    int replay_keep_s;         /* how long a disconnected session_id's buffer is kept (0: 60) */
} japi_opts_t;

/* Route /api on http (borrowed; must outlive the API object; before http_server_start). gw is
 * borrowed and must outlive it too. Caller owns return value. */
japi_t *japi_new(kg_gateway_t *gw, http_server_t *http, const japi_opts_t *opts, cb_error_t *err);

/* Close the API's WebSockets and shut down the kernels it started (their sandboxes are
 * destroyed). Accepts NULL; nulls the caller's pointer. */
void japi_destroy(japi_t **self_p);

#endif
