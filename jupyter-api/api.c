/* api.c: the Jupyter Kernel Gateway API's REST routes, what `jupyter_server --gateway-url` (and
 * so JupyterLab) speaks: GET /api; GET /api/kernelspecs[/{name}]; GET and POST /api/kernels;
 * GET and DELETE /api/kernels/{id}; POST /api/kernels/{id}/interrupt and /restart. The
 * WebSocket /api/kernels/{id}/channels is channels.c's.
 *
 * Every request acts for a principal (http_request_principal: a tenant, maybe an admin). Every
 * kernel of a sandbox the principal may reach is listed and reachable, MCP sessions' and E2B's
 * included, so a person can watch and drive the kernel an assistant uses; another tenant's
 * kernel is answered exactly as an unknown id (japi_kernel_find is the one test). Only kernels
 * this API started (each in a sandbox of its own, opened through the fleet for the principal's
 * tenant) may be deleted here. A request is routed through one table of {path shape, method, handler}: a shape
 * that matches with no row for the method is 405, no shape at all is 404. Kernel ids are looked
 * up once, in the dispatcher.
 *
 * The API follows a kernel through a record (api_private.h) that listens to its events: READY
 * answers restarts waiting for it, RESTARTING and DEAD become iopub status messages on its
 * channels, STOPPED closes them and forgets the record. Doomed sessions and sandboxes are
 * freed by one deferred call of the gateway (the reap), on a fresh loop turn (kg.h's rule 2).
 *
 * Everything here goes through the engine's public header (the kg/ headers) and the HTTP server's
 * (http/http.h); allocations that cannot fail (cb/alloc.h, and jansson through cb_json) need
 * no recovery branch.
 */
#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api_private.h"
#include "cb/alloc.h"
#include "cb/cleanup.h"
#include "cb/log.h"
#include "fleet/fleet.h"
#include "jupyter/kernelspec.h"
#include "kg/gateway.h"
#include "kg/sandbox.h"
#include "kg/kernel.h"

#ifndef CB_VERSION
#define CB_VERSION "0"
#endif

#define JAPI_PREFIX "/api"
#define JAPI_SUBPROTOCOL "v1.kernel.websocket.jupyter.org"
#define JAPI_DEFAULT_REPLAY 1000
#define JAPI_DEFAULT_KEEP_S 60
#define JAPI_MAX_SEGMENTS 4

/* ---- records of kernels ------------------------------------------------------------------- */

static void s_on_kernel_event(kg_kernel_t *kernel, kg_kernel_event_t event, const char *detail,
                              void *arg);
static void s_on_kernel_iopub(kg_kernel_t *kernel, const jp_msg_t *msg, void *arg);

japi_kernel_t *japi_kernel_get(japi_t *api, kg_kernel_t *kernel, bool create)
{
    japi_kernel_t *ak = zhashx_lookup(api->kernels, kg_kernel_id(kernel));
    if (ak || !create)
        return ak;
    ak = cb_xcalloc(1, sizeof *ak);
    ak->api = api;
    ak->kernel = kernel;
    snprintf(ak->id, sizeof ak->id, "%s", kg_kernel_id(kernel));
    const char *tenant = japi_kernel_tenant(kernel);
    ak->tenant = tenant ? cb_xstrdup(tenant) : NULL;
    kg_kernel_listener_t listener = {
        .on_event = s_on_kernel_event, .on_iopub = s_on_kernel_iopub, .arg = ak};
    if (kg_kernel_listen(kernel, &listener, NULL) < 0) {
        free(ak->tenant);
        free(ak);
        return NULL;
    }
    ak->sessions = zlistx_new(); /* czmq's constructors abort when memory runs out */
    ak->restarts = zlistx_new();
    zhashx_insert(api->kernels, ak->id, ak); /* not there: looked up above */
    return ak;
}

/* Forget a record: the kernel is stopping (or the API is going). Its channels are closed and
 * their sessions doomed first; restarts still waiting hear status and message. */
static void s_kernel_forget(japi_kernel_t *ak, int status, const char *why)
{
    japi_t *api = ak->api;
    japi_channels_close_all(ak, 1001, why);
    http_request_t *req;
    while ((req = zlistx_detach(ak->restarts, NULL))) {
        http_request_on_close(req, NULL, NULL);
        http_respond_error(req, status, why);
    }
    if (ak->kernel)
        kg_kernel_unlisten(ak->kernel, ak);
    zlistx_destroy(&ak->sessions);
    zlistx_destroy(&ak->restarts);
    zhashx_delete(api->kernels, ak->id);
    free(ak->tenant);
    free(ak);
}

/* ---- deferred frees ------------------------------------------------------------------------- */

static void s_reap_deferred(kg_gateway_t *gw, void *arg);

void japi_wake(japi_t *api)
{
    if (!api->reap_pending) {
        api->reap_pending = true;
        kg_gateway_defer(api->gw, s_reap_deferred, api);
    }
}

static void s_reap(japi_t *api)
{
    japi_session_t *sess;
    while ((sess = zlistx_detach(api->doomed, NULL)))
        japi_session_free(sess);
    char *id;
    while ((id = zlistx_detach(api->doomed_sandboxes, NULL))) {
        kg_sandbox_t *sb = kg_gateway_sandbox(api->gw, id);
        if (sb) {
            cb_info("jupyter api: sandbox %.8s (a kernel the API started) closed", id);
            kg_sandbox_destroy(&sb); /* its kernel's STOPPED forgets the record */
        }
        free(id);
    }
}

/* The gateway's deferred call: a fresh loop turn for the doomed sessions and sandboxes. */
static void s_reap_deferred(kg_gateway_t *gw, void *arg)
{
    japi_t *api = arg;
    api->reap_pending = false;
    s_reap(api);
}

/* ---- why kernels went ---------------------------------------------------------------------- */

static void s_remember_gone(japi_kernel_t *ak, const char *why)
{
    japi_t *api = ak->api;
    if (japi_gone(api, ak->id, NULL))
        return; /* the first reason is the real one ("deleted" before "stopped") */
    japi_gone_t *slot = &api->gone[api->gone_next++ % JAPI_GONE_MAX];
    free(slot->kernel_id);
    free(slot->tenant);
    free(slot->why);
    slot->kernel_id = cb_xstrdup(ak->id);
    slot->tenant = ak->tenant ? cb_xstrdup(ak->tenant) : NULL;
    slot->why = cb_xstrdup(why);
}

const char *japi_gone(japi_t *api, const char *kernel_id, const cb_principal_t *who)
{
    for (size_t n = 0; n < JAPI_GONE_MAX && n < api->gone_next; n++) {
        const japi_gone_t *g = &api->gone[(api->gone_next - 1 - n) % JAPI_GONE_MAX];
        if (g->kernel_id && strcmp(g->kernel_id, kernel_id) == 0)
            return !who || cb_principal_may(who, g->tenant) ? g->why : NULL;
    }
    return NULL;
}

char *japi_not_found_message(japi_t *api, const char *kernel_id, const cb_principal_t *who)
{
    const char *why = japi_gone(api, kernel_id, who);
    return why ? cb_strdup_printf("kernel %s is gone: %s", kernel_id, why)
               : cb_strdup_printf("no kernel with id '%s'", kernel_id);
}

void japi_kernel_delete(japi_kernel_t *ak, const char *why)
{
    japi_t *api = ak->api;
    if (ak->deleting)
        return;
    ak->deleting = true;
    s_remember_gone(ak, why);
    japi_channels_close_all(ak, 1000, "the kernel was deleted");
    zlistx_add_end(api->doomed_sandboxes, cb_xstrdup(ak->sandbox_id));
    japi_wake(api);
}

/* ---- the kernel's events ------------------------------------------------------------------- */

static json_t *s_model(japi_t *api, kg_kernel_t *k);

static void s_answer_restarts(japi_kernel_t *ak, const char *failure)
{
    http_request_t *req;
    while ((req = zlistx_detach(ak->restarts, NULL))) {
        http_request_on_close(req, NULL, NULL);
        if (failure) {
            http_respond_error(req, 500, failure);
        } else {
            json_auto_t *model = s_model(ak->api, ak->kernel);
            http_respond_json(req, 200, model, NULL);
        }
    }
}

static void s_on_kernel_event(kg_kernel_t *kernel, kg_kernel_event_t event, const char *detail,
                              void *arg)
{
    japi_kernel_t *ak = arg;
    japi_t *api = ak->api;
    switch (event) {
    case KG_EVENT_READY:
        japi_channels_on_event(ak, event, detail);
        s_answer_restarts(ak, NULL);
        break;
    case KG_EVENT_DEAD: {
        cleanup_free char *why =
            cb_strdup_printf("the kernel is dead: %s", detail ? detail : "it gave up restarting");
        s_answer_restarts(ak, why ? why : "the kernel is dead");
        japi_channels_on_event(ak, event, detail);
        break;
    }
    case KG_EVENT_RESTARTING: japi_channels_on_event(ak, event, detail); break;
    case KG_EVENT_STOPPED: {
        japi_channels_on_event(ak, event, detail);
        s_remember_gone(ak, "it was shut down");
        /* A kernel of ours that stopped without its sandbox ending: close the sandbox too. */
        if (ak->owned && !ak->deleting && kg_gateway_sandbox(api->gw, ak->sandbox_id)) {
            zlistx_add_end(api->doomed_sandboxes, cb_xstrdup(ak->sandbox_id));
            japi_wake(api);
        }
        const char *why = japi_gone(api, ak->id, NULL);
        cleanup_free char *reason =
            cb_strdup_printf("the kernel stopped (%s)", why ? why : "shut down");
        ak->kernel = NULL; /* freed right after this event */
        kg_kernel_unlisten(kernel, ak);
        s_kernel_forget(ak, 404, reason ? reason : "the kernel stopped");
        break;
    }
    default: break;
    }
}

static void s_on_kernel_iopub(kg_kernel_t *kernel, const jp_msg_t *msg, void *arg)
{
    japi_channels_on_iopub(arg, msg);
}

/* An opened sandbox of ours ends on its own (lifetime, its init died): remember why. Its kernel
 * is freed right after this; its STOPPED event forgets the record. */
static void s_on_sandbox_end(kg_sandbox_t *sb, fleet_end_t why, const char *detail, void *arg)
{
    japi_t *api = arg;
    for (japi_kernel_t *ak = zhashx_first(api->kernels); ak; ak = zhashx_next(api->kernels))
        if (ak->owned && strcmp(ak->sandbox_id, kg_sandbox_id(sb)) == 0)
            s_remember_gone(ak, detail ? detail : "its sandbox ended");
}

/* ---- models -------------------------------------------------------------------------------- */

static void s_iso8601(int64_t us, char out[CB_ISO8601_LEN])
{
    time_t secs = (time_t)(us / 1000000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t n = strftime(out, CB_ISO8601_LEN, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, CB_ISO8601_LEN - n, ".%06dZ", (int)(us % 1000000));
}

/* Jupyter's execution states: starting, idle, busy, restarting, dead. A kernel running its
 * template's startup code is still starting. */
static const char *s_execution_state(const kg_kernel_t *k)
{
    kg_kernel_state_t state = kg_kernel_state(k);
    switch (state) {
    case KG_KERNEL_STARTING: return "starting";
    case KG_KERNEL_IDLE:
    case KG_KERNEL_BUSY:
        if (!kg_kernel_is_ready(k)) /* idle or busy but not ready: its startup code runs */
            return kg_kernel_restart_count(k) ? "restarting" : "starting";
        return state == KG_KERNEL_IDLE ? "idle" : "busy";
    case KG_KERNEL_RESTARTING: return "restarting";
    default: return "dead";
    }
}

static json_t *s_model(japi_t *api, kg_kernel_t *k)
{
    char when[CB_ISO8601_LEN];
    s_iso8601(kg_kernel_last_activity_us(k), when);
    japi_kernel_t *ak = japi_kernel_get(api, k, false);
    return json_pack("{s:s, s:s, s:s, s:s, s:I}", "id", kg_kernel_id(k), "name", kg_kernel_name(k),
                     "last_activity", when, "execution_state", s_execution_state(k), "connections",
                     (json_int_t)(ak ? japi_channels_connections(ak) : 0));
}

static json_t *s_kernelspec_model(const jp_kernelspec_t *spec)
{
    /* Every string here came from kernel.json (so valid UTF-8) or is an ASCII name: no call
     * below can fail. */
    json_auto_t *argv = json_array();
    json_auto_t *env = json_object();
    for (char **a = spec->argv; a && *a; a++)
        json_array_append_new(argv, json_string(*a));
    for (char **e = spec->env; e && *e; e++) {
        const char *eq = strchr(*e, '=');
        if (!eq)
            continue;
        cleanup_free char *key = cb_xstrndup(*e, (size_t)(eq - *e));
        json_object_set_new(env, key, json_string(eq + 1));
    }
    return json_pack("{s:s, s:{s:O, s:s, s:s, s:s, s:O, s:{}}, s:{}}", "name", spec->name, "spec",
                     "argv", argv, "display_name",
                     spec->display_name ? spec->display_name : spec->name, "language",
                     spec->language ? spec->language : "", "interrupt_mode",
                     spec->interrupt_mode == JP_INTERRUPT_MESSAGE ? "message" : "signal", "env",
                     env, "metadata", "resources");
}

/* ---- handlers ------------------------------------------------------------------------------ */

typedef struct {
    japi_t *api;
    http_request_t *req;
    const char *arg;     /* the path's one variable segment (a kernelspec name or kernel id) */
    kg_kernel_t *kernel; /* set for routes on a kernel id */
} s_call_t;

static void s_respond_model(s_call_t *c, int status, kg_kernel_t *k, const char *const *headers)
{
    json_auto_t *model = s_model(c->api, k);
    http_respond_json(c->req, status, model, headers);
}

static void s_get_root(s_call_t *c)
{
    json_auto_t *body = json_pack("{s:s, s:s}", "version", CB_VERSION, "server", "cellblock");
    http_respond_json(c->req, 200, body, NULL);
}

static void s_get_kernelspecs(s_call_t *c)
{
    size_t count = 0;
    jp_kernelspec_t **specs = jp_kernelspec_list(kg_gateway_kernels_dir(c->api->gw), &count);
    json_auto_t *all = json_object();
    for (size_t i = 0; i < count; i++) {
        if (!c->arg || strcmp(c->arg, specs[i]->name) == 0)
            json_object_set_new(all, specs[i]->name, s_kernelspec_model(specs[i]));
        jp_kernelspec_destroy(&specs[i]);
    }
    free(specs);
    if (c->arg) {
        json_t *one = json_object_get(all, c->arg);
        if (!one) {
            cleanup_free char *msg = cb_strdup_printf("no kernelspec named '%s'", c->arg);
            return (void)http_respond_error(c->req, 404, msg ? msg : "no such kernelspec");
        }
        return (void)http_respond_json(c->req, 200, one, NULL);
    }
    json_auto_t *body =
        json_pack("{s:s, s:O}", "default", c->api->default_kernel, "kernelspecs", all);
    http_respond_json(c->req, 200, body, NULL);
}

const char *japi_kernel_tenant(const kg_kernel_t *k)
{
    kg_sandbox_t *sb = kg_kernel_sandbox(k);
    return sb ? fleet_sandbox_tenant(sb) : NULL;
}

/* Kernels who may see: not stopping, not a pooled spare, not being deleted, and of a sandbox
 * who may reach (fleet_sandbox_visible; a kernel of no fleet sandbox: admins only). */
static bool s_visible(japi_t *api, const kg_kernel_t *k, const cb_principal_t *who)
{
    kg_sandbox_t *sb = kg_kernel_sandbox(k);
    if (kg_kernel_is_stopping(k) || (sb && kg_sandbox_hidden(sb)))
        return false;
    if (!cb_principal_may(who, japi_kernel_tenant(k)))
        return false;
    japi_kernel_t *ak = zhashx_lookup(api->kernels, kg_kernel_id(k));
    return !ak || !ak->deleting;
}

static void s_get_kernels(s_call_t *c)
{
    json_auto_t *list = json_array();
    const cb_principal_t *who = http_request_principal(c->req);
    zlistx_t *all = kg_gateway_kernels(c->api->gw);
    for (kg_kernel_t *k = zlistx_first(all); k; k = zlistx_next(all))
        if (s_visible(c->api, k, who))
            json_array_append_new(list, s_model(c->api, k));
    zlistx_destroy(&all);
    http_respond_json(c->req, 200, list, NULL);
}

/* The env a client asks for: only KERNEL_* names that are shell names, with string values, as
 * Jupyter Kernel Gateway does; the rest is ignored. */
static int s_collect_env(json_t *env, cb_strv_t *out, cb_error_t *err)
{
    const char *key;
    json_t *value;
    json_object_foreach (env, key, value) {
        if (strncmp(key, "KERNEL_", 7) != 0 || !cb_env_name_valid(key) || !json_is_string(value)) {
            cb_debug("jupyter api: env entry '%.64s' ignored (only KERNEL_* strings pass)", key);
            continue;
        }
        cb_strv_push(out, cb_strdup_printf("%s=%s", key, json_string_value(value)));
    }
    return 0;
}

static void s_post_kernels(s_call_t *c)
{
    japi_t *api = c->api;
    size_t len = 0;
    const char *text = http_request_body(c->req, &len);
    json_error_t jerr;
    json_auto_t *body = len ? json_loadb(text, len, 0, &jerr) : json_object();
    if (!json_is_object(body))
        return (void)http_respond_error(
            c->req, 400, body ? "the body must be a JSON object" : "the body is not valid JSON");
    json_t *jname = json_object_get(body, "name");
    json_t *jenv = json_object_get(body, "env");
    if (jname && !json_is_null(jname) && !json_is_string(jname))
        return (void)http_respond_error(c->req, 400, "'name' must be a string (a kernelspec name)");
    if (jenv && !json_is_null(jenv) && !json_is_object(jenv))
        return (void)http_respond_error(c->req, 400, "'env' must be an object of strings");
    const char *name = json_is_string(jname) && json_string_value(jname)[0]
                           ? json_string_value(jname)
                           : api->default_kernel;
    cb_error_t err = {0};
    jp_kernelspec_t *spec = jp_kernelspec_find(kg_gateway_kernels_dir(api->gw), name, &err);
    if (!spec)
        return (void)http_respond_error(c->req, cb_error_http_status(&err), err.msg);
    jp_kernelspec_destroy(&spec);
    cleanup_strvec cb_strv_t env = {0};
    cb_strv_init(&env);
    if (json_is_object(jenv) && s_collect_env(jenv, &env, &err) < 0)
        return (void)http_respond_error(c->req, 500, "out of memory");

    json_auto_t *labels = json_pack("{s:s}", "started_by", "jupyter api");
    fleet_sandbox_opts_t opts = {.template_name = api->template_name,
                                 .kernel_name =
                                     strcmp(name, api->default_kernel) != 0 ? name : NULL,
                                 .env = (const char *const *)env.v,
                                 .timeout_s = api->kernel_timeout_s,
                                 .metadata = labels,
                                 .tenant = http_request_principal(c->req)->tenant,
                                 .on_end = s_on_sandbox_end,
                                 .arg = api};
    kg_sandbox_t *sb = fleet_sandbox_open(api->fleet, &opts, &err);
    if (!sb)
        return (void)http_respond_error(c->req, cb_error_http_status(&err), err.msg);
    kg_kernel_t *k = fleet_sandbox_main_kernel(sb);
    japi_kernel_t *ak = k ? japi_kernel_get(api, k, true) : NULL;
    if (!ak) {
        kg_sandbox_destroy(&sb);
        return (void)http_respond_error(c->req, 500, "could not follow the kernel it started");
    }
    ak->owned = true;
    snprintf(ak->sandbox_id, sizeof ak->sandbox_id, "%s", kg_sandbox_id(sb));
    kg_sandbox_log(sb, "jupyter-api", "kernel %.8s started for a Jupyter client", kg_kernel_id(k));
    cb_info("jupyter api: kernel %.8s (%s) started in sandbox %.8s", kg_kernel_id(k), name,
            kg_sandbox_id(sb));
    cleanup_free char *location = cb_strdup_printf(JAPI_PREFIX "/kernels/%s", kg_kernel_id(k));
    s_respond_model(c, 201, k, (const char *[]){"Location", location ? location : "", NULL});
}

static void s_get_kernel(s_call_t *c) { s_respond_model(c, 200, c->kernel, NULL); }

static void s_delete_kernel(s_call_t *c)
{
    japi_kernel_t *ak = japi_kernel_get(c->api, c->kernel, false);
    if (!ak || !ak->owned) {
        kg_sandbox_t *sb = kg_kernel_sandbox(c->kernel);
        cleanup_free char *msg = cb_strdup_printf(
            "kernel %s was not started through this API (it is the kernel of sandbox %s, opened "
            "over MCP or E2B's API): you may watch and use it here, but only the client that "
            "opened the sandbox can end it",
            kg_kernel_id(c->kernel), sb ? kg_sandbox_id(sb) : "(none)");
        return (void)http_respond_error(c->req, 403, msg);
    }
    cb_info("jupyter api: kernel %.8s deleted", ak->id);
    japi_kernel_delete(ak, "it was deleted");
    http_respond(c->req, 204, NULL, NULL, NULL, 0);
}

static void s_post_interrupt(s_call_t *c)
{
    cb_error_t err = {0};
    if (kg_kernel_interrupt(c->kernel, &err) < 0)
        return (void)http_respond_error(c->req, cb_error_http_status(&err), err.msg);
    kg_kernel_touch(c->kernel);
    http_respond(c->req, 204, NULL, NULL, NULL, 0);
}

static void s_on_restart_gone(http_request_t *req, void *arg)
{
    japi_kernel_t *ak = arg;
    void *handle = zlistx_find(ak->restarts, req);
    if (handle)
        zlistx_detach(ak->restarts, handle);
}

/* Answered once the kernel is ready again (or dead), as jupyter_server does. */
static void s_post_restart(s_call_t *c)
{
    japi_kernel_t *ak = japi_kernel_get(c->api, c->kernel, true);
    if (!ak)
        return (void)http_respond_error(c->req, 500, "could not follow the kernel's restart");
    cb_error_t err = {0};
    if (kg_kernel_restart(c->kernel, &err) < 0)
        return (void)http_respond_error(c->req, cb_error_http_status(&err), err.msg);
    kg_kernel_touch(c->kernel);
    zlistx_add_end(ak->restarts, c->req);
    http_request_on_close(c->req, s_on_restart_gone, ak);
}

static void s_channels_not_upgraded(s_call_t *c)
{
    http_respond_error(c->req, 400,
                       "this is a WebSocket endpoint: connect with an Upgrade: websocket request");
}

/* ---- the route table ------------------------------------------------------------------------ */

typedef struct {
    const char *shape; /* segments after /api; "*" is the variable one; "" is /api itself */
    const char *method;
    void (*handler)(s_call_t *c);
    bool on_kernel; /* "*" is a kernel id: look it up first (404 when unknown) */
} s_route_t;

static const s_route_t s_routes[] = {
    {"", "GET", s_get_root, false},
    {"kernelspecs", "GET", s_get_kernelspecs, false},
    {"kernelspecs/*", "GET", s_get_kernelspecs, false},
    {"kernels", "GET", s_get_kernels, false},
    {"kernels", "POST", s_post_kernels, false},
    {"kernels/*", "GET", s_get_kernel, true},
    {"kernels/*", "DELETE", s_delete_kernel, true},
    {"kernels/*/interrupt", "POST", s_post_interrupt, true},
    {"kernels/*/restart", "POST", s_post_restart, true},
    {"kernels/*/channels", "GET", s_channels_not_upgraded, true},
};

/* Split rest ("/kernels/ID/restart", trailing slash allowed) into at most max segments. */
static int s_split(char *rest, char *segs[], int max)
{
    int n = 0;
    for (char *save = NULL, *tok = strtok_r(rest, "/", &save); tok;
         tok = strtok_r(NULL, "/", &save)) {
        if (n == max)
            return -1;
        segs[n++] = tok;
    }
    return n;
}

/* Does the shape match the segments? *var_out gets the "*" segment. */
static bool s_shape_matches(const char *shape, char *const segs[], int n, const char **var_out)
{
    char copy[64];
    snprintf(copy, sizeof copy, "%s", shape);
    char *parts[JAPI_MAX_SEGMENTS];
    int m = s_split(copy, parts, JAPI_MAX_SEGMENTS);
    if (m != n)
        return false;
    for (int i = 0; i < n; i++) {
        if (strcmp(parts[i], "*") == 0)
            *var_out = segs[i];
        else if (strcmp(parts[i], segs[i]) != 0)
            return false;
    }
    return true;
}

static void s_not_found_kernel(http_request_t *req, japi_t *api, const char *id)
{
    cleanup_free char *msg = japi_not_found_message(api, id, http_request_principal(req));
    http_respond_error(req, 404, msg);
}

kg_kernel_t *japi_kernel_find(japi_t *api, const char *id, const cb_principal_t *who)
{
    kg_kernel_t *k = kg_gateway_kernel(api->gw, id);
    return k && s_visible(api, k, who) ? k : NULL;
}

static void s_on_request(http_request_t *req, void *arg)
{
    japi_t *api = arg;
    const char *path = http_request_path(req);
    const char *method = http_request_method(req);
    size_t plen = strlen(JAPI_PREFIX);
    char rest[512];
    if (strncmp(path, JAPI_PREFIX, plen) != 0 || strlen(path + plen) >= sizeof rest)
        return (void)http_respond_error(req, 404, "no such path");
    snprintf(rest, sizeof rest, "%s", path + plen);
    char *segs[JAPI_MAX_SEGMENTS];
    int n = s_split(rest, segs, JAPI_MAX_SEGMENTS);
    bool shape_found = false;
    char allow[64] = "";
    for (size_t i = 0; n >= 0 && i < sizeof s_routes / sizeof *s_routes; i++) {
        const s_route_t *r = &s_routes[i];
        s_call_t c = {.api = api, .req = req};
        if (!s_shape_matches(r->shape, segs, n, &c.arg))
            continue;
        shape_found = true;
        size_t used = strlen(allow);
        snprintf(allow + used, sizeof allow - used, "%s%s", used ? ", " : "", r->method);
        if (strcmp(method, r->method) != 0)
            continue;
        if (r->on_kernel && !(c.kernel = japi_kernel_find(api, c.arg, http_request_principal(req))))
            return s_not_found_kernel(req, api, c.arg);
        return r->handler(&c);
    }
    if (!shape_found)
        return (void)http_respond_error(req, 404, "no such path in the Jupyter API");
    json_auto_t *body = json_pack("{s:s, s:s+++}", "reason", "Method Not Allowed", "message",
                                  method, " is not allowed here; allowed: ", allow);
    if (body) /* NULL only for a method that is not UTF-8 */
        http_respond_json(req, 405, body, (const char *[]){"Allow", allow, NULL});
    else
        http_respond_error(req, 405, "method not allowed");
}

/* ---- the object ----------------------------------------------------------------------------- */

japi_t *japi_new(kg_gateway_t *gw, http_server_t *http, const japi_opts_t *opts, cb_error_t *err)
{
    static const japi_opts_t defaults = {0};
    if (!opts)
        opts = &defaults;
    japi_t *api = cb_xcalloc(1, sizeof *api);
    api->gw = gw;
    api->http = http;
    api->kernel_timeout_s = opts->kernel_timeout_s;
    api->replay_messages = opts->replay_messages ? opts->replay_messages : JAPI_DEFAULT_REPLAY;
    api->replay_keep_s = opts->replay_keep_s > 0 ? opts->replay_keep_s : JAPI_DEFAULT_KEEP_S;
    api->template_name = cb_xstrdup(opts->template_name ? opts->template_name : "python");
    api->fleet = fleet_of(gw);
    if (!api->fleet) {
        cb_error_fail(err, CB_ERR_INVALID, "the Jupyter API needs the gateway's fleet (fleet_new)");
        japi_destroy(&api);
        return NULL;
    }
    api->kernels = zhashx_new();
    api->doomed = zlistx_new();
    api->doomed_sandboxes = zlistx_new();
    /* The template's kernel is the default kernelspec: what POST starts when no name is given. */
    api->default_kernel = fleet_template_kernel(api->fleet, api->template_name, err);
    if (!api->default_kernel) {
        cb_error_prefix(err, "the Jupyter API's template: ");
        japi_destroy(&api);
        return NULL;
    }
    if (http_server_route(http, JAPI_PREFIX, s_on_request, japi_channels_on_ws, api, err) < 0 ||
        http_server_subprotocol(http, JAPI_SUBPROTOCOL, err) < 0) {
        japi_destroy(&api);
        return NULL;
    }
    return api;
}

void japi_destroy(japi_t **self_p)
{
    japi_t *api = self_p ? *self_p : NULL;
    if (!api)
        return;
    *self_p = NULL;
    /* Stop listening and close every channel first, then free the sessions, then close the
     * sandboxes the API opened (their kernels' STOPPED events no longer reach us). */
    zlistx_t *records = zhashx_values(api->kernels);
    for (japi_kernel_t *ak = zlistx_first(records); ak; ak = zlistx_next(records)) {
        if (ak->owned && !ak->deleting)
            zlistx_add_end(api->doomed_sandboxes, cb_xstrdup(ak->sandbox_id));
        s_kernel_forget(ak, 503, "the server is shutting down");
    }
    zlistx_destroy(&records);
    if (api->reap_pending)
        kg_gateway_defer_cancel(api->gw, s_reap_deferred, api);
    s_reap(api);
    zlistx_destroy(&api->doomed);
    zlistx_destroy(&api->doomed_sandboxes);
    zhashx_destroy(&api->kernels);
    for (size_t i = 0; i < JAPI_GONE_MAX; i++) {
        free(api->gone[i].kernel_id);
        free(api->gone[i].tenant);
        free(api->gone[i].why);
    }
    free(api->template_name);
    free(api->default_kernel);
    free(api);
}
