/* fuzz/mcp_env.h: the MCP server the MCP and HTTP harnesses drive.
 *
 * A real gateway and MCP server, built so that no input can start a process: the gateway runs
 * without sandboxes (no sweep of the runtime dir), and its one template, "python", exists while
 * the server starts (mcp_server_new insists on its default template) and is removed right after;
 * $CELLBLOCK_TEMPLATES_PATH and $XDG_CONFIG_HOME name directories that do not exist. Every tool
 * that needs a sandbox therefore gets through the argument checks to fleet_sandbox_open, which
 * fails (no template) before anything is cloned or spawned; nothing forks per input, so the
 * fuzzer runs fast and leaves nothing behind. Kernelspecs are still found (reading them starts
 * nothing). */
#ifndef CB_FUZZ_MCP_ENV_H
#define CB_FUZZ_MCP_ENV_H

#include "fleet/fleet.h"
#include "mcp/mcp.h"
#include "kg/gateway.h"

typedef struct {
    kg_gateway_t *gw;
    mcp_server_t *srv;
    char *template_path; /* the template "python" (absent but while fuzz_mcp_env_template) */
} fuzz_mcp_env_t;

/* Made once per process; aborts on failure. max_message_bytes 0: the default. Borrowed. */
fuzz_mcp_env_t *fuzz_mcp_env(size_t max_message_bytes);

/* Put the template back (present), for a constructor that insists on it (japi_new), or
 * remove it again. */
void fuzz_mcp_env_template(bool present);

/* One turn of the gateway's loop, at once: what was deferred to the loop runs (the API's
 * reaper, zloop's removal of ended timers), so nothing piles up from one input to the next. */
void fuzz_mcp_env_turn(void);

/* Check one message a session sends: a JSON-RPC 2.0 object, a notification (method) or a
 * response (id and exactly one of result and error, the error with an integer code and a string
 * message). Aborts when it is not. */
void fuzz_mcp_check_outgoing(json_t *msg);

#endif
