/* e2b.c: the E2B layer's object, its two routes, the registry of its sandboxes, and the sandbox
 * plane's dispatch.
 *
 * Every call an SDK makes to a sandbox goes to one base URL (E2B_SANDBOX_URL, our
 * E2B_SANDBOX_PREFIX) and names the sandbox and the port inside it in two headers. The
 * dispatcher checks them once, in this order: the sandbox id is present; the token that let the
 * request in was the server's or this very sandbox's (the HTTP server checked the sandbox token
 * against the same header, so a mismatch cannot pass, but we say so rather than assume); the
 * sandbox is ours and the request's principal may reach it (e2b_sandbox_for: another tenant's
 * is answered exactly as an unknown id); the port is envd's or the code interpreter's; the path is a route of that
 * port. Only then does a service see the request, with the record in hand. A refusal is written
 * in the shape the caller's client reads: a Connect error for the RPC paths, E2B's
 * {"code", "message"} for the rest.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cb/alloc.h"
#include "cb/cleanup.h"
#include "cb/log.h"
#include "e2b_private.h"

/* ---- errors --------------------------------------------------------------------------------- */

json_t *e2b_json_message(const char *message)
{
    json_t *m = json_string(message ? message : "");
    if (m)
        return m;
    cleanup_free char *text = cb_text_lossy(message, strlen(message), NULL);
    return json_string(text);
}

void e2b_respond_error(http_request_t *req, int status, const char *message)
{
    json_auto_t *body =
        json_pack("{s:i, s:o}", "code", status, "message", e2b_json_message(message));
    http_respond_json(req, status, body, NULL);
}

/* Whether the request acts for the sandbox of id by its sandbox token (a capability for it). */
static bool s_token_for(http_request_t *req, const char *id)
{
    const char *auth = http_request_sandbox(req);
    return auth && id && strcmp(auth, id) == 0;
}

/* "sandbox ID not found", with why it went when the fleet remembers and the request may know
 * (another tenant's is an unknown id). Caller owns return value. */
static char *s_not_found_message(e2b_t *api, http_request_t *req, const char *id, bool *gone_out)
{
    const char *gone = fleet_sandbox_gone_for(
        api->fleet, id, s_token_for(req, id) ? &CB_PRINCIPAL_LOCAL : http_request_principal(req));
    if (gone_out)
        *gone_out = gone != NULL;
    return gone ? cb_strdup_printf("sandbox %s not found: it is gone (%s)", id, gone)
                : cb_strdup_printf("sandbox %s not found", id);
}

void e2b_not_found(e2b_t *api, http_request_t *req, const char *id)
{
    cleanup_free char *msg = s_not_found_message(api, req, id, NULL);
    e2b_respond_error(req, 404, msg);
}

int64_t e2b_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the registry --------------------------------------------------------------------------- */

static void s_sandbox_free(e2b_sandbox_t **sb_p)
{
    e2b_sandbox_t *sb = *sb_p;
    if (!sb)
        return;
    *sb_p = NULL;
    free(sb->id);
    free(sb->template_id);
    free(sb->template_name);
    free(sb->alias);
    json_decref(sb->metadata);
    free(sb);
}

e2b_sandbox_t *e2b_sandbox_add(e2b_t *api, kg_sandbox_t *kg, const char *template_id,
                               const char *template_name, json_t *metadata)
{
    e2b_sandbox_t *sb = cb_xcalloc(1, sizeof *sb);
    sb->api = api;
    sb->kg = kg;
    sb->id = cb_xstrdup(kg_sandbox_id(kg));
    sb->template_id = cb_xstrdup(template_id);
    sb->template_name = cb_xstrdup(template_name);
    sb->alias = cb_xstrdup(template_id);
    sb->metadata = metadata && json_is_object(metadata) ? json_deep_copy(metadata) : json_object();
    sb->started_at_ms = e2b_wall_ms();
    zhashx_update(api->sandboxes, sb->id, sb);
    return sb;
}

e2b_sandbox_t *e2b_sandbox_find(e2b_t *api, const char *id)
{
    return id ? zhashx_lookup(api->sandboxes, id) : NULL;
}

bool e2b_sandbox_may(http_request_t *req, const e2b_sandbox_t *sb)
{
    if (http_request_sandbox(req))
        return s_token_for(req, sb->id);
    return fleet_sandbox_visible(sb->kg, http_request_principal(req));
}

e2b_sandbox_t *e2b_sandbox_for(e2b_t *api, http_request_t *req, const char *id)
{
    e2b_sandbox_t *sb = e2b_sandbox_find(api, id);
    return sb && e2b_sandbox_may(req, sb) ? sb : NULL;
}

/* Every service lets go of the sandbox, then the record leaves the registry. The engine's
 * sandbox is the caller's to end. */
static void s_sandbox_forget(e2b_sandbox_t *sb)
{
    e2b_interp_sandbox_end(sb);
    e2b_process_sandbox_end(sb);
    e2b_fs_sandbox_end(sb);
    e2b_t *api = sb->api;
    zhashx_delete(api->sandboxes, sb->id); /* no destructor: freed below */
    s_sandbox_free(&sb);
}

void e2b_sandbox_kill(e2b_sandbox_t *sb, const char *why)
{
    kg_sandbox_t *kg = sb->kg;
    kg_sandbox_log(kg, "sandbox", "%s", why);
    s_sandbox_forget(sb);
    kg_sandbox_end_later(kg, why);
}

void e2b_sandbox_on_end(kg_sandbox_t *kg, fleet_end_t why, const char *detail, void *arg)
{
    (void)why;
    (void)detail;
    e2b_sandbox_t *sb = e2b_sandbox_find(arg, kg_sandbox_id(kg));
    if (sb && sb->kg == kg)
        s_sandbox_forget(sb);
}

/* ---- the sandbox plane ---------------------------------------------------------------------- */

#define S_PROCESS "/process.Process/"
#define S_FILESYSTEM "/filesystem.Filesystem/"

static bool s_is_rpc(const char *path)
{
    return strncmp(path, S_PROCESS, strlen(S_PROCESS)) == 0 ||
           strncmp(path, S_FILESYSTEM, strlen(S_FILESYSTEM)) == 0;
}

/* A refusal in the shape the client of that path reads. */
static void s_refuse(http_request_t *req, const char *path, int status, const char *message)
{
    if (!s_is_rpc(path))
        return e2b_respond_error(req, status, message);
    e2b_rpc_kind_t kind = e2b_rpc_kind_of(req);
    const char *code = status == 401   ? "unauthenticated"
                       : status == 404 ? "not_found"
                       : status == 400 ? "invalid_argument"
                                       : "unavailable";
    e2b_rpc_fail(req, kind, code, message);
}

static int s_port(const char *s)
{
    char *end = NULL;
    long v = s && *s ? strtol(s, &end, 10) : -1;
    return end && !*end && v >= 1 && v <= 65535 ? (int)v : -1;
}

static void s_envd(e2b_sandbox_t *sb, http_request_t *req, const char *path)
{
    const char *method = http_request_method(req);
    if (strncmp(path, S_PROCESS, strlen(S_PROCESS)) == 0)
        return e2b_process_handle(sb, req, path + strlen(S_PROCESS));
    if (strncmp(path, S_FILESYSTEM, strlen(S_FILESYSTEM)) == 0)
        return e2b_fs_handle(sb, req, path + strlen(S_FILESYSTEM));
    if (strcmp(path, "/files") == 0)
        return e2b_files_handle(sb, req);
    if (strcmp(path, "/health") == 0 && strcmp(method, "GET") == 0) {
        http_respond(req, 204, NULL, NULL, NULL, 0);
        return;
    }
    cleanup_free char *msg = cb_strdup_printf(
        "%s %s: not a route of envd (port %d) here; see docs/e2b.md for the routes cellblock "
        "implements",
        method, path, E2B_ENVD_PORT);
    s_refuse(req, path, 404, msg);
}

static void s_interpreter(e2b_sandbox_t *sb, http_request_t *req, const char *path)
{
    if (strcmp(path, "/execute") == 0 || strcmp(path, "/contexts") == 0 ||
        strncmp(path, "/contexts/", 10) == 0)
        return e2b_interp_handle(sb, req, path);
    if (strcmp(path, "/health") == 0 && strcmp(http_request_method(req), "GET") == 0) {
        http_respond(req, 200, "application/json", NULL, "\"OK\"", 4);
        return;
    }
    cleanup_free char *msg = cb_strdup_printf(
        "%s %s: not a route of the code interpreter (port %d) here; see docs/e2b.md",
        http_request_method(req), path, E2B_JUPYTER_PORT);
    e2b_respond_error(req, 404, msg);
}

static void s_on_sandbox_request(http_request_t *req, void *arg)
{
    e2b_t *api = arg;
    const char *path = http_request_path(req) + strlen(E2B_SANDBOX_PREFIX);
    const char *id = http_request_header(req, "E2b-Sandbox-Id");
    const char *auth = http_request_sandbox(req);
    if (!id || !*id)
        return s_refuse(req, path, 400,
                        "the E2b-Sandbox-Id header is required: E2B_SANDBOX_URL takes calls to a "
                        "sandbox, and this header names it");
    if (auth && strcmp(auth, id) != 0)
        return s_refuse(req, path, 401, "this token is for another sandbox");
    e2b_sandbox_t *sb = e2b_sandbox_for(api, req, id);
    if (!sb) {
        bool gone = false;
        cleanup_free char *msg = s_not_found_message(api, req, id, &gone);
        /* envd's /health of a sandbox that ended (the fleet remembers it): 502, as E2B's proxy
         * answers it, which is what the SDK's isRunning() reads as false */
        bool ended_health = gone && strcmp(path, "/health") == 0;
        return s_refuse(req, path, ended_health ? 502 : 404, msg);
    }
    kg_sandbox_touch(sb->kg);
    int port = s_port(http_request_header(req, "E2b-Sandbox-Port"));
    if (port == E2B_ENVD_PORT)
        return s_envd(sb, req, path);
    if (port == E2B_JUPYTER_PORT)
        return s_interpreter(sb, req, path);
    cleanup_free char *msg =
        port < 0 ? cb_strdup_printf("the E2b-Sandbox-Port header must be a port number "
                                    "(%d for envd, %d for the code interpreter)",
                                    E2B_ENVD_PORT, E2B_JUPYTER_PORT)
                 : cb_strdup_printf("port %d: on E2B_SANDBOX_URL cellblock answers envd (%d) and "
                                    "the code interpreter (%d); reach other ports through "
                                    "getHost(port)",
                                    port, E2B_ENVD_PORT, E2B_JUPYTER_PORT);
    s_refuse(req, path, port < 0 ? 400 : 502, msg);
}

static void s_on_api_request(http_request_t *req, void *arg)
{
    e2b_api_handle(arg, req, http_request_path(req) + strlen(E2B_PREFIX));
}

/* ---- the object ----------------------------------------------------------------------------- */

e2b_t *e2b_new(kg_gateway_t *gw, http_server_t *http, const e2b_opts_t *opts, cb_error_t *err)
{
    fleet_t *fleet = fleet_of(gw);
    if (!fleet) {
        cb_error_fail(err, CB_ERR_STATE, "the E2B API needs the gateway's fleet");
        return NULL;
    }
    e2b_t *api = cb_xcalloc(1, sizeof *api);
    api->gw = gw;
    api->fleet = fleet;
    api->http = http;
    const char *tpl = opts ? opts->template_name : NULL;
    api->base_template = cb_xstrdup(tpl ? tpl : E2B_BASE_TEMPLATE);
    api->interpreter_template = cb_xstrdup(tpl ? tpl : E2B_INTERPRETER_TEMPLATE);
    api->sandboxes = zhashx_new();
    if (http_server_route(http, E2B_PREFIX, s_on_api_request, NULL, api, err) < 0 ||
        http_server_route(http, E2B_SANDBOX_PREFIX, s_on_sandbox_request, NULL, api, err) < 0 ||
        http_server_route_sandbox_tokens(http, E2B_SANDBOX_PREFIX, err) < 0) {
        e2b_destroy(&api);
        return NULL;
    }
    return api;
}

void e2b_destroy(e2b_t **self_p)
{
    e2b_t *api = *self_p;
    if (!api)
        return;
    *self_p = NULL;
    if (api->sandboxes) {
        /* Collect first: killing changes the table. */
        zlistx_t *all = zhashx_values(api->sandboxes);
        for (e2b_sandbox_t *sb = zlistx_first(all); sb; sb = zlistx_next(all)) {
            kg_sandbox_t *kg = sb->kg;
            s_sandbox_forget(sb);
            kg_sandbox_destroy(&kg);
        }
        zlistx_destroy(&all);
        zhashx_destroy(&api->sandboxes);
    }
    free(api->base_template);
    free(api->interpreter_template);
    free(api);
}
