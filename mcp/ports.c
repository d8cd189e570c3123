/* ports.c: servers you can open: sandbox_expose_port, sandbox_unexpose_port, and the forward
 * handler the HTTP server asks for each request to a sandbox's port.
 *
 * A port is private until exposed. The HTTP server (http/, its front door) checks the request
 * itself (the token, or the port's signed link or cookie) and then asks s_on_forward, on the
 * gateway's loop: is the sandbox ours and the port exposed? If so, a TCP socket made inside the
 * sandbox's network namespace by its init (kg_sandbox_socket) connects, non-blocking, to
 * 127.0.0.1:PORT there, and the HTTP server hands it, with the client's connection, to the
 * network plane's pump (egress_forward, tied to the sandbox's registration, tagged with the
 * port). The sandbox gains no
 * other network: the socket is the gateway's, and reaches only the sandbox's own loopback.
 *
 * Which HTTP server: `cellblock serve` hands its own (mcp_server_ports_on, before it starts).
 * `cellblock mcp` (stdio) has none; the first expose starts one of our own on 127.0.0.1:0
 * (forwards only; its token is never shown, so its signed links are the way in).
 *
 * Unexposing a port, or the sandbox going, closes its forwarded connections at once
 * (egress_forward_close; removing the sandbox's registration closes them too). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cb/cleanup.h"
#include "cb/log.h"
#include "http/http.h"
#include "mcp_private.h"

#define PORT_LINK_DEFAULT_S (24 * 3600)

/* Making a socket inside a sandbox is a round trip to its init; an exposed port keeps a
 * couple made ahead, so a request does not wait for one. Index 0 and 1; -1 is none (a zeroed
 * sandbox has fd 0 there, which is never ours: ports.c sets them when a port is exposed). */
static int s_take_spare(mcp_sandbox_t *sb)
{
    for (int i = 0; i < 2; i++)
        if (sb->ports && sb->spare_fds[i] > 0) {
            int fd = sb->spare_fds[i];
            sb->spare_fds[i] = -1;
            return fd;
        }
    return -1;
}

static void s_refill_spares(mcp_sandbox_t *sb)
{
    for (int i = 0; i < 2; i++) {
        if (sb->spare_fds[i] > 0)
            continue;
        cb_error_t err = {0};
        int fd = kg_sandbox_socket(sb->kg, AF_INET, &err);
        sb->spare_fds[i] = fd >= 0 ? fd : -1;
    }
}

static void s_close_spares(mcp_sandbox_t *sb)
{
    for (int i = 0; i < 2; i++) {
        if (sb->spare_fds[i] > 0)
            close(sb->spare_fds[i]);
        sb->spare_fds[i] = -1;
    }
}

/* Whether the forward may reach the sandbox: a token's principal must be its tenant's (or an
 * admin); a signed link, its cookie or the sandbox's own token is a capability already. */
static bool s_forward_may(http_forward_t *fwd, kg_sandbox_t *kg)
{
    const cb_principal_t *who = http_forward_principal(fwd);
    return !who || fleet_sandbox_visible(kg, who);
}

static void s_on_forward(http_forward_t *fwd, void *arg)
{
    mcp_server_t *srv = arg;
    const char *id = http_forward_sandbox(fwd);
    int port = http_forward_port(fwd);
    char key[8];
    snprintf(key, sizeof key, "%d", port);
    mcp_sandbox_t *sb = zhashx_lookup(srv->sandboxes, id);
    /* Another tenant's sandbox is answered as one that exposes nothing, as an unknown id. */
    if (!sb || !s_forward_may(fwd, sb->kg) || !sb->ports || !json_object_get(sb->ports, key) ||
        kg_sandbox_dead(sb->kg)) {
        cleanup_free char *msg = cb_strdup_printf(
            "port %d of sandbox %s is not exposed (sandbox_expose_port)", port, id);
        return http_forward_refuse(fwd, 404, msg);
    }
    cb_error_t err = {0};
    int fd = s_take_spare(sb);
    if (fd < 0)
        fd = kg_sandbox_socket(sb->kg, AF_INET, &err);
    if (fd < 0) {
        cb_warn("forward to port %d of sandbox %.8s: %s", port, id, err.msg);
        return http_forward_refuse(fwd, 502, "no socket into the sandbox");
    }
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        cleanup_free char *msg = cb_strdup_printf("nothing listens on port %d in sandbox %s (%s)",
                                                  port, id, strerror(e));
        return http_forward_refuse(fwd, 502, msg);
    }
    kg_sandbox_touch(sb->kg);
    egress_t *eg = kg_gateway_egress(srv->gw);
    egress_sandbox_t *reg = kg_sandbox_egress(sb->kg);
    if (!eg || !reg) { /* a forward must end with its sandbox: none without the registration */
        close(fd);
        return http_forward_refuse(fwd, 502, "the sandbox has no network registration");
    }
    if (http_forward_connect(fwd, eg, reg, fd, &err) < 0)
        cb_warn("forward to port %d of sandbox %.8s: %s", port, id, err.msg);
    s_refill_spares(sb); /* after the hand-over: off the request's path */
}

int mcp_server_ports_on(mcp_server_t *srv, http_server_t *http, cb_error_t *err)
{
    if (http && http_server_forwards(http, s_on_forward, srv, err) < 0)
        return -1;
    srv->ports_http = http;
    return 0;
}

/* The HTTP server ports are exposed on: serve's, or one of our own on loopback. */
static http_server_t *s_ports_http(mcp_server_t *srv, cb_error_t *err)
{
    if (srv->ports_http)
        return srv->ports_http;
    http_server_t *http =
        http_server_new(kg_gateway_loop(srv->gw), &(http_config_t){.listen = "127.0.0.1:0"}, err);
    if (!http)
        return NULL;
    if (http_server_forwards(http, s_on_forward, srv, err) < 0 ||
        http_server_start(http, err) < 0) {
        http_server_destroy(&http);
        return NULL;
    }
    cb_info("ports are exposed on %s", http_server_url(http));
    srv->ports_http = http;
    srv->ports_own = true;
    return http;
}

void mcp_server_ports_destroy(mcp_server_t *srv)
{
    if (srv->ports_own)
        http_server_destroy(&srv->ports_http);
    srv->ports_http = NULL;
    srv->ports_own = false;
}

void mcp_ports_sandbox_gone(mcp_sandbox_t *sb)
{
    mcp_server_t *srv = sb->server;
    if (srv->ports_http && sb->ports && json_object_size(sb->ports) && sb->kg)
        egress_forward_close(kg_gateway_egress(srv->gw), kg_sandbox_egress(sb->kg), 0);
    if (sb->ports)
        s_close_spares(sb);
    json_decref(sb->ports);
    sb->ports = NULL;
}

json_t *mcp_ports_list(mcp_sandbox_t *sb)
{
    json_t *list = json_array();
    const char *key;
    json_t *v;
    json_object_foreach (sb->ports, key, v)
        json_array_append(list, v);
    return list;
}

void mcp_tool_sandbox_expose_port(mcp_call_t *call, json_t *args)
{
    mcp_server_t *srv = call->session->server;
    mcp_sandbox_t *sb = mcp_sandbox_for_call(call, args, true);
    if (!sb)
        return;
    int port = (int)mcp_arg_num(args, "port", 0);
    double ttl = mcp_arg_num(args, "link_lifetime_s", PORT_LINK_DEFAULT_S);
    cb_error_t err = {0};
    http_server_t *http = s_ports_http(srv, &err);
    if (!http)
        return mcp_call_fail_err(call, &err);
    int64_t expires = (int64_t)time(NULL) + (int64_t)ttl;
    cleanup_free char *sig = http_forward_sign(http, sb->id, port, expires);
    const char *base = http_server_url(http);
    const char *colon = strrchr(http_server_address(http), ':');
    cleanup_free char *url = cb_strdup_printf("%s/sandboxes/%s/ports/%d/", base, sb->id, port);
    cleanup_free char *host =
        cb_strdup_printf("%d-%s.localhost%s", port, sb->id, colon ? colon : "");
    cleanup_free char *host_url = cb_strdup_printf("http://%s/", host);
    cleanup_free char *signed_url = cb_strdup_printf("%s?cb_sig=%s", url, sig);
    cleanup_free char *signed_host_url = cb_strdup_printf("%s?cb_sig=%s", host_url, sig);
    char stamp[40];
    time_t secs = (time_t)expires;
    struct tm tm;
    gmtime_r(&secs, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (!sb->ports) {
        sb->ports = json_object();
        sb->spare_fds[0] = sb->spare_fds[1] = -1;
        s_refill_spares(sb);
    }
    char key[8];
    snprintf(key, sizeof key, "%d", port);
    json_object_set_new(sb->ports, key,
                        json_pack("{s:i, s:s, s:s, s:s}", "port", port, "url", url, "host_url",
                                  host_url, "host", host));
    kg_sandbox_log(sb->kg, "ports", "port %d exposed", port);
    mcp_call_finish(call, NULL,
                    json_pack("{s:s, s:i, s:s, s:s, s:s, s:s, s:s, s:s}", "sandbox_id", sb->id,
                              "port", port, "url", url, "host_url", host_url, "host", host,
                              "signed_url", signed_url, "signed_host_url", signed_host_url,
                              "expires_at", stamp),
                    false);
}

void mcp_tool_sandbox_unexpose_port(mcp_call_t *call, json_t *args)
{
    mcp_server_t *srv = call->session->server;
    mcp_sandbox_t *sb = mcp_sandbox_for_call(call, args, false);
    if (!sb)
        return;
    int port = (int)mcp_arg_num(args, "port", 0);
    char key[8];
    snprintf(key, sizeof key, "%d", port);
    bool was = sb->ports && json_object_get(sb->ports, key);
    if (was) {
        json_object_del(sb->ports, key);
        if (srv->ports_http)
            egress_forward_close(kg_gateway_egress(srv->gw), kg_sandbox_egress(sb->kg),
                                 (uint16_t)port);
        kg_sandbox_log(sb->kg, "ports", "port %d unexposed", port);
    }
    mcp_call_finish(
        call, NULL,
        json_pack("{s:s, s:i, s:b}", "sandbox_id", sb->id, "port", port, "was_exposed", was),
        false);
}
