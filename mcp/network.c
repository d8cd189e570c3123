/* network.c: the MCP side of sandbox network policies: the `network` argument of sandbox_create,
 * and the questions of an `ask` policy put to the client.
 *
 * Why: with `network: "ask"`, a connection from inside to a destination outside the allow list
 * waits while a person decides. MCP's elicitation (2025-06-18) lets a server ask its client's
 * user for a small form; the session that created the sandbox is the one asked, and only when
 * its client declared the elicitation capability. No such session, no capability, a decline, a
 * cancel, an error or no answer in time: the connection is refused (the proxy refuses on its
 * own after its ask timeout too).
 *
 * How: the gateway calls s_on_ask for each question (kg_gateway_set_network_ask); we find the
 * sandbox's creator, send elicitation/create through mcp_session_request, and answer the proxy
 * from the response with kg_gateway_network_answer (an answer for a sandbox gone meanwhile is
 * ignored by the proxy).
 */
#include <string.h>

#include "cb/cleanup.h"
#include "cb/log.h"
#include "egress/egress.h"
#include "mcp_private.h"

#define S_ASK_TIMEOUT_MS 60000 /* the proxy's own default (egress_config_t.ask_timeout_ms) */

int mcp_network_policy(json_t *args, egress_policy_t **out, cb_error_t *err)
{
    *out = NULL;
    json_t *spec = json_object_get(args, "network"); /* borrowed */
    if (!spec || json_is_null(spec))
        return 0;
    if (!json_is_string(spec) && !json_is_object(spec))
        return cb_error_fail(err, CB_ERR_INVALID,
                             "network must be a string (\"none\", \"all\", \"ask\", a preset) "
                             "or an object ({allow: [...], deny: [...], ...})");
    *out = egress_policy_from_json(spec, err);
    return *out ? 0 : cb_error_prefix(err, "network: ");
}

typedef struct {
    kg_gateway_t *gw;
    uint64_t ask_id;
    char sandbox_id[37];
    char host[256];
    uint16_t port;
} s_question_t;

/* The client's answer (or none: result and error NULL). */
static void s_on_answer(mcp_session_t *s, json_t *result, json_t *error, void *arg)
{
    (void)s;
    cleanup_free s_question_t *q = arg;
    const char *action = json_string_value(json_object_get(result, "action"));
    json_t *content = json_object_get(result, "content");
    const char *decision = json_string_value(json_object_get(content, "decision"));
    bool allow =
        action && strcmp(action, "accept") == 0 && decision && strcmp(decision, "allow") == 0;
    bool remember = allow && json_is_true(json_object_get(content, "remember"));
    kg_sandbox_t *sb = kg_gateway_sandbox(q->gw, q->sandbox_id);
    if (sb)
        kg_sandbox_log(sb, "network", "%s:%u %s by the client%s", q->host, (unsigned)q->port,
                       allow ? "allowed" : "refused",
                       allow     ? (remember ? " (remembered for this sandbox)" : "")
                       : error   ? " (its answer was an error)"
                       : !result ? " (no answer in time, or the session ended)"
                       : !action ? " (an answer without an action)"
                       : strcmp(action, "accept") == 0 ? ""
                                                       : " (declined)");
    kg_gateway_network_answer(q->gw, q->ask_id, allow, remember);
}

/* The gateway's hook: a connection from inside sandbox kg waits for a yes or no. */
static void s_on_ask(kg_sandbox_t *kg, uint64_t ask_id, const char *host, uint16_t port, void *arg)
{
    mcp_server_t *srv = arg;
    mcp_sandbox_t *sb = zhashx_lookup(srv->sandboxes, kg_sandbox_id(kg));
    mcp_session_t *s = sb ? sb->creator : NULL;
    const char *why = !sb  ? "the sandbox was not made by an MCP session"
                      : !s ? "the MCP session that created the sandbox has ended"
                      : !mcp_session_client_can(s, "elicitation")
                          ? "the MCP client cannot be asked (it did not declare the elicitation "
                            "capability)"
                          : NULL;
    if (!why) {
        s_question_t *q = cb_xcalloc(1, sizeof *q);
        q->gw = srv->gw;
        q->ask_id = ask_id;
        q->port = port;
        snprintf(q->sandbox_id, sizeof q->sandbox_id, "%s", kg_sandbox_id(kg));
        snprintf(q->host, sizeof q->host, "%s", host);
        cleanup_free char *message = cb_strdup_printf(
            "Code in sandbox %.8s wants to connect to %s port %u, which its network policy does "
            "not allow. Allow this connection?",
            q->sandbox_id, q->host, (unsigned)port);
        /* A flat form (all elicitation allows): the decision, and whether to keep it. */
        json_t *params = json_pack(
            "{s:s, s:{s:s, s:{s:{s:s, s:s, s:s, s:[ss], s:[ss]}, s:{s:s, s:s, s:s, s:b}}, "
            "s:[s]}}",
            "message", message, "requestedSchema", "type", "object", "properties", "decision",
            "type", "string", "title", "Decision", "description", "allow or deny this connection",
            "enum", "allow", "deny", "enumNames", "Allow", "Deny", "remember", "type", "boolean",
            "title", "Remember for this sandbox", "description",
            "allow this host and port again without asking", "default", 0, "required", "decision");
        if (params && mcp_session_request(s, "elicitation/create", params, S_ASK_TIMEOUT_MS,
                                          s_on_answer, q) == 0)
            return;
        free(q);
        why = "the question could not be sent to the MCP client";
    }
    kg_sandbox_log(kg, "network", "%s:%u refused: %s", host, (unsigned)port, why);
    kg_gateway_network_answer(srv->gw, ask_id, false, false);
}

void mcp_network_init(mcp_server_t *srv) { kg_gateway_set_network_ask(srv->gw, s_on_ask, srv); }

void mcp_network_fini(mcp_server_t *srv) { kg_gateway_set_network_ask(srv->gw, NULL, NULL); }

void mcp_sandboxes_session_gone(mcp_server_t *srv, mcp_session_t *s)
{
    for (mcp_sandbox_t *sb = zhashx_first(srv->sandboxes); sb; sb = zhashx_next(srv->sandboxes))
        if (sb->creator == s)
            sb->creator = NULL;
}
