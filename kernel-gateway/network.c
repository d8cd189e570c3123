/* network.c: the gateway's side of the network plane (egress/): one egress_t per gateway, every
 * sandbox registered with it, the proxy's socket inside a sandbox whose policy allows egress,
 * the environment that points tools inside at that proxy, and the proxy's events on the loop.
 *
 * Why every sandbox is registered, even one with no egress: port forwards into a sandbox are
 * tied to its registration (egress_forward's sb), so removing the sandbox closes them.
 *
 * How: the egress_t is made on first use (the first sandbox), so a gateway that never makes one
 * starts no proxy thread. Its event fd is a poller on the loop; a LOG event becomes a line in the
 * sandbox's log (source "network"), an ASK event goes to the hook a surface registered
 * (kg_gateway_set_network_ask), or is refused at once when none did. For a policy other than
 * none, the sandbox's init makes a TCP socket in the sandbox's network namespace; the gateway
 * binds it to 127.0.0.1:EGRESS_INSIDE_PORT there, listens, and hands it to the proxy. Nothing
 * else of the host's network reaches inside: the sandbox keeps loopback only.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cb/alloc.h"
#include "cb/cleanup.h"
#include "cb/log.h"
#include "kg_private.h"

#define PROXY_URL "http://127.0.0.1:3128"
#define SOCKS_URL "socks5h://127.0.0.1:3128"
#define NO_PROXY_LIST "localhost,127.0.0.1,::1"

_Static_assert(EGRESS_INSIDE_PORT == 3128, "the proxy URLs below name the port");

/* What processes inside a sandbox with egress see. Most tools read the *_PROXY variables
 * (curl, wget, pip through requests, Python's urllib, go, cargo and git through libcurl, npm);
 * the tool-specific ones cover those that prefer their own (npm's config, cargo's, git's
 * http.proxy through GIT_CONFIG_*). curl reads only the lower-case http_proxy for http:// URLs.
 * Node's built-in fetch reads none of them before Node 24 (NODE_USE_ENV_PROXY). Nothing for
 * Java: JAVA_TOOL_OPTIONS makes every JVM print a warning. */
static const char *const s_proxy_env[] = {
    "HTTP_PROXY=" PROXY_URL,
    "http_proxy=" PROXY_URL,
    "HTTPS_PROXY=" PROXY_URL,
    "https_proxy=" PROXY_URL,
    "ALL_PROXY=" SOCKS_URL,
    "all_proxy=" SOCKS_URL,
    "NO_PROXY=" NO_PROXY_LIST,
    "no_proxy=" NO_PROXY_LIST,
    "npm_config_proxy=" PROXY_URL,
    "npm_config_https_proxy=" PROXY_URL,
    "npm_config_noproxy=" NO_PROXY_LIST,
    "CARGO_HTTP_PROXY=" PROXY_URL,
    "GIT_CONFIG_COUNT=1",
    "GIT_CONFIG_KEY_0=http.proxy",
    "GIT_CONFIG_VALUE_0=" PROXY_URL,
    "NODE_USE_ENV_PROXY=1",
    NULL,
};

const char *const *kg_network_proxy_env(void) { return s_proxy_env; }

/* ---- events ------------------------------------------------------------------------------ */

static void s_handle_event(kg_gateway_t *gw, const egress_event_t *ev)
{
    kg_sandbox_t *sb = kg_gateway_sandbox(gw, ev->sandbox_id);
    if (ev->type == EGRESS_EVENT_LOG) {
        if (sb)
            kg_sandbox_log(sb, "network", "%s", ev->text);
        return;
    }
    /* EGRESS_EVENT_ASK: whoever registered the hook answers, now or later; nobody: a refusal. */
    if (sb && !sb->end_pending && gw->network_ask) {
        kg_sandbox_log(sb, "network", "asking the client whether to allow %s:%u", ev->host,
                       (unsigned)ev->port);
        gw->network_ask(sb, ev->ask_id, ev->host, ev->port, gw->network_ask_arg);
        return;
    }
    if (sb)
        kg_sandbox_log(sb, "network", "%s:%u refused: no client to ask", ev->host,
                       (unsigned)ev->port);
    egress_answer(gw->egress, ev->ask_id, false, false);
}

static int s_on_events(zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    (void)loop;
    (void)item;
    kg_gateway_t *gw = arg;
    egress_event_t ev;
    /* A bounded batch per turn: a flood of events from one sandbox must not starve the loop;
     * the fd stays readable for the rest. */
    for (int n = 0; n < 256 && egress_next_event(gw->egress, &ev); n++)
        s_handle_event(gw, &ev);
    return kg_gateway_handler_result(gw);
}

/* ---- the gateway's egress_t --------------------------------------------------------------- */

egress_t *kg_gateway_egress(kg_gateway_t *gw)
{
    if (gw->egress)
        return gw->egress;
    cb_error_t err = {0};
    gw->egress = egress_new(NULL, &err);
    if (!gw->egress) {
        cb_warn("network: the proxy did not start: %s", err.msg);
        return NULL;
    }
    zmq_pollitem_t item = {.fd = egress_event_fd(gw->egress), .events = ZMQ_POLLIN};
    gw->egress_watched = zloop_poller(gw->loop, &item, s_on_events, gw) == 0;
    if (!gw->egress_watched)
        cb_warn("network: cannot watch the proxy's events; refusals will not reach the logs");
    return gw->egress;
}

void kg_gateway_set_network_ask(kg_gateway_t *gw, kg_network_ask_fn *fn, void *arg)
{
    gw->network_ask = fn;
    gw->network_ask_arg = arg;
}

void kg_gateway_network_answer(kg_gateway_t *gw, uint64_t ask_id, bool allow, bool remember)
{
    if (gw->egress)
        egress_answer(gw->egress, ask_id, allow, remember);
}

void kg_network_gateway_fini(kg_gateway_t *gw)
{
    if (!gw->egress)
        return;
    if (gw->egress_watched) {
        zmq_pollitem_t item = {.fd = egress_event_fd(gw->egress), .events = ZMQ_POLLIN};
        zloop_poller_end(gw->loop, &item);
        gw->egress_watched = false;
    }
    egress_destroy(&gw->egress);
}

/* ---- a sandbox's registration ------------------------------------------------------------ */

/* The proxy's listening socket inside the sandbox: 127.0.0.1:EGRESS_INSIDE_PORT. */
static int s_inside_listener(kg_sandbox_t *sb, cb_error_t *err)
{
    cleanup_close int fd = kg_sandbox_socket(sb, AF_INET, err);
    if (fd < 0)
        return cb_error_prefix(err, "the proxy's socket inside the sandbox: ");
    int one = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(EGRESS_INSIDE_PORT)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0)
        return cb_error_make(err, errno, "bind the proxy's socket to 127.0.0.1:%d inside",
                             EGRESS_INSIDE_PORT);
    if (listen(fd, 128) < 0)
        return cb_error_make(err, errno, "listen on the proxy's socket inside");
    return cb_steal_fd(&fd);
}

int kg_network_sandbox_add(kg_sandbox_t *sb, cb_error_t *err)
{
    kg_gateway_t *gw = sb->gw;
    egress_t *eg = kg_gateway_egress(gw);
    if (!eg)
        return cb_error_fail(err, CB_ERR_SYSTEM, "the network proxy is not running");
    const egress_policy_t *policy = sb->network;
    int listen_fd = -1;
    if (policy && !egress_policy_is_none(policy)) {
        listen_fd = s_inside_listener(sb, err);
        if (listen_fd < 0)
            return -1;
    }
    sb->egress = egress_sandbox_add(eg, sb->id, listen_fd, policy, err); /* takes listen_fd */
    if (!sb->egress)
        return cb_error_prefix(err, "register the sandbox with the network proxy: ");
    if (listen_fd >= 0) {
        /* Proxy settings first, so that the sandbox's own env may override them. */
        const char *const *lists[2] = {s_proxy_env, (const char *const *)sb->env};
        char **env = kg_env_merge(lists, 2);
        cb_strv_free(sb->env);
        sb->env = env;
    }
    return 0;
}

void kg_network_sandbox_remove(kg_sandbox_t *sb)
{
    if (sb->egress && sb->gw->egress)
        egress_sandbox_remove(sb->gw->egress, &sb->egress);
    sb->egress = NULL;
}

egress_sandbox_t *kg_sandbox_egress(kg_sandbox_t *self) { return self->egress; }

const egress_policy_t *kg_sandbox_network(const kg_sandbox_t *self) { return self->network; }

json_t *kg_sandbox_network_info(kg_sandbox_t *self)
{
    if (self->network)
        return egress_policy_describe(self->network);
    return json_pack("{s:s}", "mode", "none");
}

json_t *kg_sandbox_network_metrics(kg_sandbox_t *self, size_t max_records)
{
    egress_stats_t st = {0};
    json_t *records = NULL;
    if (self->egress) {
        egress_sandbox_stats(self->egress, &st);
        records = egress_sandbox_connections(self->egress, max_records);
    }
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:o}", "connections",
                     (json_int_t)st.connections, "allowed", (json_int_t)st.allowed, "denied",
                     (json_int_t)st.denied, "bytes_out", (json_int_t)st.bytes_out, "bytes_in",
                     (json_int_t)st.bytes_in, "open", (json_int_t)st.open, "records",
                     records ? records : json_array());
}
