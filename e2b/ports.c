/* ports.c: E2B's ports (sandbox.getHost(port)): every port of an E2B sandbox is reachable
 * through the HTTP server's port forwards.
 *
 * Why: in E2B's model a sandbox's ports are public to whoever holds its traffic token (or the
 * API key): getHost(port) answers "PORT-ID.DOMAIN", and the control plane answers our domain so
 * that this is the host form of our forwards, PORT-ID.localhost:SERVERPORT (http/forward.c).
 * MCP's ports (mcp/ports.c) must be exposed first; E2B's need not.
 *
 * How: the front door checks the request (the server's token as Authorization or X-API-Key, or
 * E2B-Traffic-Access-Token with this sandbox's token, http_sandbox_token; all stripped upstream)
 * and the HTTP server asks the handler here first (http_server_forwards_first). A sandbox of
 * the E2B registry is ours: a TCP socket made inside its network namespace by its init
 * (kg_sandbox_socket) connects, non-blocking, to 127.0.0.1:PORT there, and goes with the
 * client's connection to the network plane's pump (http_forward_connect), tied to the sandbox's
 * registration: when the sandbox ends, its registration goes and its forwards close with it,
 * so nothing here outlives it. Any other id, and a sandbox of another tenant than the token's,
 * is left to MCP's handler (which answers both as an unknown id). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cb/cleanup.h"
#include "cb/log.h"
#include "e2b_private.h"

static bool s_claim(http_forward_t *fwd, void *arg)
{
    e2b_t *api = arg;
    const char *id = http_forward_sandbox(fwd);
    int port = http_forward_port(fwd);
    e2b_sandbox_t *sb = e2b_sandbox_find(api, id);
    /* A token's principal must be the sandbox's tenant's (or an admin); the traffic token, a
     * signed link or its cookie is a capability for this sandbox already. Another tenant's is
     * left to MCP's handler, which answers it as an unknown id. */
    const cb_principal_t *who = http_forward_principal(fwd);
    if (!sb || (who && !fleet_sandbox_visible(sb->kg, who)))
        return false; /* not ours: MCP's, or nobody's */
    if (!sb->kg || kg_sandbox_dead(sb->kg)) {
        http_forward_refuse(fwd, 502, "the sandbox is ending");
        return true;
    }
    cb_error_t err = {0};
    int fd = kg_sandbox_socket(sb->kg, AF_INET, &err);
    if (fd < 0) {
        cb_warn("e2b: forward to port %d of sandbox %.8s: %s", port, id, err.msg);
        http_forward_refuse(fwd, 502, "no socket into the sandbox");
        return true;
    }
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        cleanup_free char *msg = cb_strdup_printf(
            "The sandbox is running but port is not open: nothing listens on port %d in "
            "sandbox %s (%s)",
            port, id, strerror(e));
        http_forward_refuse(fwd, 502, msg);
        return true;
    }
    egress_t *eg = kg_gateway_egress(api->gw);
    egress_sandbox_t *reg = kg_sandbox_egress(sb->kg);
    if (!eg || !reg) { /* a forward must end with its sandbox: none without the registration */
        close(fd);
        http_forward_refuse(fwd, 502, "the sandbox has no network registration");
        return true;
    }
    if (http_forward_connect(fwd, eg, reg, fd, &err) < 0)
        cb_warn("e2b: forward to port %d of sandbox %.8s: %s", port, id, err.msg);
    return true;
}

int e2b_ports_on(e2b_t *api, cb_error_t *err)
{
    return http_server_forwards_first(api->http, s_claim, api, err);
}
