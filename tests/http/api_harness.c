/* api_harness.c: a gateway serving only the Jupyter API (japi_new on an http/ server), plus
 * one kernel in a sandbox opened the way the MCP server opens them, so the API's tests can check
 * what a person may and may not do to a kernel someone else owns.
 *
 *     CELLBLOCK_TOKEN=... CELLBLOCK_STATE_DIR=... api_harness
 *
 * Prints "foreign kernel: <id>" and then "listening on <url>" on stderr, serves until SIGTERM
 * or SIGINT, then tears everything down in cellblock serve's order. */
#include <stdio.h>
#include <stdlib.h>

#include "cb/log.h"
#include "http/http.h"
#include "fleet/fleet.h"
#include "japi/japi.h"
#include "kg/gateway.h"
#include "kg/kernel.h"

int main(void)
{
    cb_log_set_level(CB_LOG_DEBUG); /* stderr goes to the test's log file */
    cb_error_t err = {0};
    kg_gateway_t *gw = kg_gateway_new(NULL, &err);
    fleet_config_t fcfg = {.state_dir = getenv("CELLBLOCK_STATE_DIR"), .sandbox_timeout_s = -1};
    if (gw && !fleet_new(gw, &fcfg, &err))
        kg_gateway_destroy(&gw);
    http_server_t *http = NULL;
    japi_t *api = NULL;
    kg_sandbox_t *foreign = NULL;
    if (gw)
        http = http_server_new(
            kg_gateway_loop(gw),
            &(http_config_t){.listen = "127.0.0.1:0", .token = getenv("CELLBLOCK_TOKEN")}, &err);
    if (http)
        api = japi_new(gw, http, &(japi_opts_t){.kernel_timeout_s = -1}, &err);
    if (api)
        foreign = fleet_sandbox_open(fleet_of(gw), &(fleet_sandbox_opts_t){.timeout_s = -1}, &err);
    int rc = 1;
    if (foreign && http_server_start(http, &err) == 0) {
        fprintf(stderr, "foreign kernel: %s\n", kg_kernel_id(fleet_sandbox_main_kernel(foreign)));
        fprintf(stderr, "listening on %s\n", http_server_url(http));
        static const volatile int never = 0;
        kg_gateway_run_until(gw, &never, -1); /* until SIGTERM or SIGINT */
        rc = 0;
    } else {
        fprintf(stderr, "api_harness: %s\n", err.msg);
    }
    http_server_destroy(&http);
    japi_destroy(&api);
    kg_gateway_destroy(&gw);
    return rc;
}
