/* e2b/e2b.h: E2B's API, so that programs written for E2B's SDKs (npm `e2b`, `@e2b/code-interpreter`
 * and their Python twins) run against `cellblock serve` unchanged, by setting
 *
 *   E2B_API_URL=http://HOST:PORT/e2b   E2B_SANDBOX_URL=http://HOST:PORT/e2b/sandbox
 *   E2B_API_KEY=<the server's token>
 *
 * Two routes on the HTTP server (http/http.h):
 *   - /e2b: the control plane (E2B's REST API: create, list, info, kill, timeout, connect,
 *     metrics, logs), authenticated with the server's token (X-API-Key, as the SDKs send it);
 *   - /e2b/sandbox: everything the SDKs send to a sandbox, which names it with the headers
 *     E2b-Sandbox-Id and E2b-Sandbox-Port: envd's Connect RPC services process.Process and
 *     filesystem.Filesystem, envd's /files and /health (port 49983), and the code interpreter's
 *     /execute and /contexts (port 49999). These take the server's token or the sandbox's own
 *     (http_sandbox_token: what the create call returns as envdAccessToken and
 *     trafficAccessToken), which reaches that sandbox and no other.
 *
 * A thin translation onto the fleet (fleet/fleet.h) and the engine (the kg/ headers); routes and
 * what differs from E2B are in docs/e2b.md. Every call comes from the gateway's loop thread.
 */
#ifndef E2B_E2B_H
#define E2B_E2B_H

#include "cb/error.h"
#include "http/http.h"
#include "kg/gateway.h"

typedef struct e2b e2b_t;

typedef struct {
    const char *template_name; /* what E2B's default templates ("base", "code-interpreter-v1")
                                  open; NULL: "python" for base, "python-data" for the code
                                  interpreter */
} e2b_opts_t;

/* Route /e2b and /e2b/sandbox on http (borrowed; must outlive the object; before
 * http_server_start). gw (borrowed, with a fleet: fleet_of) must outlive it too. Caller owns
 * return value. */
e2b_t *e2b_new(kg_gateway_t *gw, http_server_t *http, const e2b_opts_t *opts, cb_error_t *err);

/* End every stream still open and kill the sandboxes created through this API. Accepts NULL;
 * nulls the caller's pointer. */
void e2b_destroy(e2b_t **self_p);

/* E2B's ports (e2b/ports.c): every port of an E2B sandbox forwarded by the HTTP server
 * (sandbox.getHost), asked before any other forward handler. Before http_server_start. */
int e2b_ports_on(e2b_t *self, cb_error_t *err);

#endif
