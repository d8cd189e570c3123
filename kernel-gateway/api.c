/* api.c: the Jupyter Kernel Gateway API's REST routes, what `jupyter_server --gateway-url` (and
 * so JupyterLab) speaks: GET /api; GET /api/kernelspecs[/{name}]; GET and POST /api/kernels;
 * GET and DELETE /api/kernels/{id}; POST /api/kernels/{id}/interrupt and /restart. The
 * WebSocket /api/kernels/{id}/channels is channels.c's.
 *
 * Every kernel of the gateway is listed and reachable, MCP sessions' kernels included, so a
 * person can watch and drive the kernel an assistant uses; but only kernels this API started
 * (each in a sandbox of its own, opened by the policy layer through kg_api_opener_t) may be
 * deleted here. A request is routed through one table of {path shape, method, handler}: a shape
 * that matches with no row for the method is 405, no shape at all is 404. Kernel ids are looked
 * up once, in the dispatcher.
 *
 * The API follows a kernel through a record (api_private.h) that listens to its events: READY
 * answers restarts waiting for it, RESTARTING and DEAD become iopub status messages on its
 * channels, STOPPED closes them and forgets the record. Doomed sessions and sandboxes are
 * freed by one deferred call of the gateway (the reap), on a fresh loop turn (kg.h's rule 2).
 */
#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api_private.h"
#include "cb/cleanup.h"
#include "cb/log.h"

#ifndef CB_VERSION
#define CB_VERSION "0"
#endif

#define KG_API_PREFIX "/api"
#define KG_API_SUBPROTOCOL "v1.kernel.websocket.jupyter.org"
#define KG_API_DEFAULT_REPLAY 1000
#define KG_API_DEFAULT_KEEP_S 60
#define KG_API_MAX_SEGMENTS 4

/* ---- records of kernels ------------------------------------------------------------------- */

static void s_on_kernel_event(kg_kernel_t *kernel, kg_kernel_event_t event, const char *detail, void *arg);
static void s_on_kernel_iopub(kg_kernel_t *kernel, const kg_msg_t *msg, void *arg);

kg_api_kernel_t *kg_api_kernel_get(kg_api_t *api, kg_kernel_t *kernel, bool create)
{
    kg_api_kernel_t *ak = zhashx_lookup(api->kernels, kernel->id);
    if (ak || !create)
        return ak;
    ak = calloc(1, sizeof *ak);
    if (!ak)
        return NULL;
    ak->api = api;
    ak->kernel = kernel;
    snprintf(ak->id, sizeof ak->id, "%s", kernel->id);
    ak->sessions = zlistx_new();
    ak->restarts = zlistx_new();
    kg_kernel_listener_t listener = {.on_event = s_on_kernel_event, .on_iopub = s_on_kernel_iopub, .arg = ak};
    if (!ak->sessions || !ak->restarts || zhashx_insert(api->kernels, ak->id, ak) != 0) {
        zlistx_destroy(&ak->sessions);
        zlistx_destroy(&ak->restarts);
        free(ak);
        return NULL;
    }
    if (kg_kernel_listen(kernel, &listener, NULL) < 0) {
        zhashx_delete(api->kernels, ak->id);
        zlistx_destroy(&ak->sessions);
        zlistx_destroy(&ak->restarts);
        free(ak);
        return NULL;
    }
    return ak;
}

/* Forget a record: the kernel is stopping (or the API is going). Its channels are closed and
 * their sessions doomed first; restarts still waiting hear status and message. */
static void s_kernel_forget(kg_api_kernel_t *ak, int status, const char *why)
{
    kg_api_t *api = ak->api;
    kg_channels_close_all(ak, 1001, why);
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
    free(ak);
}

/* ---- deferred frees ------------------------------------------------------------------------- */

static void s_reap_deferred(kg_gateway_t *gw, void *arg);

void kg_api_wake(kg_api_t *api)
{
    if (!api->reap_pending) {
        api->reap_pending = true;
        kg_gateway_defer(api->gw, s_reap_deferred, api);
    }
}

static void s_reap(kg_api_t *api)
{
    kg_chan_session_t *sess;
    while ((sess = zlistx_detach(api->doomed, NULL)))
        kg_channels_session_free(sess);
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
    kg_api_t *api = arg;
    api->reap_pending = false;
    s_reap(api);
}

/* ---- why kernels went ---------------------------------------------------------------------- */

static void s_remember_gone(kg_api_t *api, const char *kernel_id, const char *why)
{
    if (kg_api_gone(api, kernel_id))
        return; /* the first reason is the real one ("deleted" before "stopped") */
    char **slot = &api->gone[api->gone_next++ % KG_API_GONE_MAX];
    free(*slot);
    *slot = cb_strdup_printf("%s %s", kernel_id, why);
}

const char *kg_api_gone(kg_api_t *api, const char *kernel_id)
{
    size_t len = strlen(kernel_id);
    for (size_t n = 0; len && n < KG_API_GONE_MAX && n < api->gone_next; n++) {
        const char *g = api->gone[(api->gone_next - 1 - n) % KG_API_GONE_MAX];
        if (g && strncmp(g, kernel_id, len) == 0 && g[len] == ' ')
            return g + len + 1;
    }
    return NULL;
}

void kg_api_delete_kernel(kg_api_kernel_t *ak, const char *why)
{
    kg_api_t *api = ak->api;
    if (ak->deleting)
        return;
    ak->deleting = true;
    s_remember_gone(api, ak->id, why);
    kg_channels_close_all(ak, 1000, "the kernel was deleted");
    char *id = strdup(ak->sandbox_id);
    if (id && zlistx_add_end(api->doomed_sandboxes, id))
        kg_api_wake(api);
    else
        free(id);
}

/* ---- the kernel's events ------------------------------------------------------------------- */

static json_t *s_model(kg_api_t *api, kg_kernel_t *k);

static void s_answer_restarts(kg_api_kernel_t *ak, const char *failure)
{
    http_request_t *req;
    while ((req = zlistx_detach(ak->restarts, NULL))) {
        http_request_on_close(req, NULL, NULL);
        if (failure) {
            http_respond_error(req, 500, failure);
        } else {
            json_auto_t *model = s_model(ak->api, ak->kernel);
            if (model)
                http_respond_json(req, 200, model, NULL);
            else
                http_respond_error(req, 500, "out of memory");
        }
    }
}

static void s_on_kernel_event(kg_kernel_t *kernel, kg_kernel_event_t event, const char *detail, void *arg)
{
    kg_api_kernel_t *ak = arg;
    kg_api_t *api = ak->api;
    switch (event) {
    case KG_EVENT_READY:
        kg_channels_on_event(ak, event, detail);
        s_answer_restarts(ak, NULL);
        break;
    case KG_EVENT_DEAD: {
        cleanup_free char *why = cb_strdup_printf("the kernel is dead: %s", detail ? detail : "it gave up restarting");
        s_answer_restarts(ak, why ? why : "the kernel is dead");
        kg_channels_on_event(ak, event, detail);
        break;
    }
    case KG_EVENT_RESTARTING:
        kg_channels_on_event(ak, event, detail);
        break;
    case KG_EVENT_STOPPED: {
        kg_channels_on_event(ak, event, detail);
        s_remember_gone(api, ak->id, "it was shut down");
        /* A kernel of ours that stopped without its sandbox ending: close the sandbox too. */
        if (ak->owned && !ak->deleting && kg_gateway_sandbox(api->gw, ak->sandbox_id)) {
            char *id = strdup(ak->sandbox_id);
            if (id && zlistx_add_end(api->doomed_sandboxes, id))
                kg_api_wake(api);
            else
                free(id);
        }
        const char *why = kg_api_gone(api, ak->id);
        cleanup_free char *reason = cb_strdup_printf("the kernel stopped (%s)", why ? why : "shut down");
        ak->kernel = NULL; /* freed right after this event */
        kg_kernel_unlisten(kernel, ak);
        s_kernel_forget(ak, 404, reason ? reason : "the kernel stopped");
        break;
    }
    default:
        break;
    }
}

static void s_on_kernel_iopub(kg_kernel_t *kernel, const kg_msg_t *msg, void *arg)
{
    kg_channels_on_iopub(arg, msg);
}

/* An opened sandbox of ours ends on its own (lifetime, its init died): remember why. Its kernel
 * is freed right after this; its STOPPED event forgets the record. */
static void s_on_sandbox_end(kg_sandbox_t *sb, const char *detail, void *arg)
{
    kg_api_t *api = arg;
    for (kg_api_kernel_t *ak = zhashx_first(api->kernels); ak; ak = zhashx_next(api->kernels))
        if (ak->owned && strcmp(ak->sandbox_id, sb->id) == 0)
            s_remember_gone(api, ak->id, detail);
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
    switch (k->state) {
    case KG_KERNEL_STARTING: return "starting";
    case KG_KERNEL_IDLE:
    case KG_KERNEL_BUSY:
        if (k->starting_up)
            return k->restart_count ? "restarting" : "starting";
        return k->state == KG_KERNEL_IDLE ? "idle" : "busy";
    case KG_KERNEL_RESTARTING: return "restarting";
    default: return "dead";
    }
}

static json_t *s_model(kg_api_t *api, kg_kernel_t *k)
{
    char when[CB_ISO8601_LEN];
    s_iso8601(k->last_activity_us, when);
    kg_api_kernel_t *ak = kg_api_kernel_get(api, k, false);
    return json_pack("{s:s, s:s, s:s, s:s, s:I}", "id", k->id, "name", k->spec->name, "last_activity", when,
                     "execution_state", s_execution_state(k), "connections",
                     (json_int_t)(ak ? kg_channels_connections(ak) : 0));
}

static json_t *s_kernelspec_model(const kg_kernelspec_t *spec)
{
    json_auto_t *argv = json_array();
    json_auto_t *env = json_object();
    if (!argv || !env)
        return NULL;
    for (char **a = spec->argv; a && *a; a++)
        if (json_array_append_new(argv, json_string(*a)) < 0)
            return NULL;
    for (char **e = spec->env; e && *e; e++) {
        const char *eq = strchr(*e, '=');
        if (!eq)
            continue;
        cleanup_free char *key = strndup(*e, (size_t)(eq - *e));
        if (!key || json_object_set_new(env, key, json_string(eq + 1)) < 0)
            return NULL;
    }
    return json_pack("{s:s, s:{s:O, s:s, s:s, s:s, s:O, s:{}}, s:{}}", "name", spec->name, "spec", "argv", argv,
                     "display_name", spec->display_name ? spec->display_name : spec->name, "language",
                     spec->language ? spec->language : "", "interrupt_mode",
                     spec->interrupt_mode == KG_INTERRUPT_MESSAGE ? "message" : "signal", "env", env,
                     "metadata", "resources");
}

/* ---- handlers ------------------------------------------------------------------------------ */

typedef struct {
    kg_api_t *api;
    http_request_t *req;
    const char *arg;     /* the path's one variable segment (a kernelspec name or kernel id) */
    kg_kernel_t *kernel; /* set for routes on a kernel id */
} s_call_t;

static void s_respond_model(s_call_t *c, int status, kg_kernel_t *k, const char *const *headers)
{
    json_auto_t *model = s_model(c->api, k);
    if (!model)
        http_respond_error(c->req, 500, "out of memory");
    else
        http_respond_json(c->req, status, model, headers);
}

static int s_status_of(const cb_error_t *err)
{
    switch (err->kind) {
    case CB_ERR_INVALID: return 400;
    case CB_ERR_NOT_FOUND: return 404;
    case CB_ERR_LIMIT: return 503;
    case CB_ERR_STATE:
    case CB_ERR_KERNEL_DEAD: return 409;
    default: return 500;
    }
}

static void s_get_root(s_call_t *c)
{
    json_auto_t *body = json_pack("{s:s, s:s}", "version", CB_VERSION, "server", "cellblock");
    if (body)
        http_respond_json(c->req, 200, body, NULL);
    else
        http_respond_error(c->req, 500, "out of memory");
}

static void s_get_kernelspecs(s_call_t *c)
{
    size_t count = 0;
    kg_kernelspec_t **specs = kg_kernelspec_list(c->api->gw->kernels_dir, &count);
    json_auto_t *all = json_object();
    bool ok = all != NULL;
    for (size_t i = 0; i < count; i++) {
        if (ok && (!c->arg || strcmp(c->arg, specs[i]->name) == 0))
            ok = json_object_set_new(all, specs[i]->name, s_kernelspec_model(specs[i])) == 0;
        kg_kernelspec_destroy(&specs[i]);
    }
    free(specs);
    if (!ok)
        return (void)http_respond_error(c->req, 500, "out of memory");
    if (c->arg) {
        json_t *one = json_object_get(all, c->arg);
        if (!one) {
            cleanup_free char *msg = cb_strdup_printf("no kernelspec named '%s'", c->arg);
            return (void)http_respond_error(c->req, 404, msg ? msg : "no such kernelspec");
        }
        return (void)http_respond_json(c->req, 200, one, NULL);
    }
    json_auto_t *body = json_pack("{s:s, s:O}", "default", c->api->default_kernel, "kernelspecs", all);
    if (body)
        http_respond_json(c->req, 200, body, NULL);
    else
        http_respond_error(c->req, 500, "out of memory");
}

/* Kernels a client may see: not stopping, not a pooled spare, not being deleted. */
static bool s_visible(kg_api_t *api, const kg_kernel_t *k)
{
    if (k->stopping || k->state == KG_KERNEL_STOPPED || (k->sandbox && k->sandbox->hidden))
        return false;
    kg_api_kernel_t *ak = zhashx_lookup(api->kernels, k->id);
    return !ak || !ak->deleting;
}

static void s_get_kernels(s_call_t *c)
{
    json_auto_t *list = json_array();
    zlistx_t *all = zhashx_values(c->api->gw->kernels);
    bool ok = list && all;
    for (kg_kernel_t *k = all ? zlistx_first(all) : NULL; ok && k; k = zlistx_next(all))
        if (s_visible(c->api, k))
            ok = json_array_append_new(list, s_model(c->api, k)) == 0;
    zlistx_destroy(&all);
    if (ok)
        http_respond_json(c->req, 200, list, NULL);
    else
        http_respond_error(c->req, 500, "out of memory");
}

/* The env a client asks for: only KERNEL_* names that are shell names, with string values, as
 * Jupyter Kernel Gateway does; the rest is ignored. */
static int s_collect_env(json_t *env, cb_strv_t *out, cb_error_t *err)
{
    const char *key;
    json_t *value;
    json_object_foreach(env, key, value) {
        if (strncmp(key, "KERNEL_", 7) != 0 || !cb_env_name_valid(key) || !json_is_string(value)) {
            cb_debug("jupyter api: env entry '%.64s' ignored (only KERNEL_* strings pass)", key);
            continue;
        }
        if (cb_strv_push(out, cb_strdup_printf("%s=%s", key, json_string_value(value))) < 0)
            return cb_error_make(err, ENOMEM, "kernel environment");
    }
    return 0;
}

static void s_post_kernels(s_call_t *c)
{
    kg_api_t *api = c->api;
    size_t len = 0;
    const char *text = http_request_body(c->req, &len);
    json_error_t jerr;
    json_auto_t *body = len ? json_loadb(text, len, 0, &jerr) : json_object();
    if (!json_is_object(body))
        return (void)http_respond_error(c->req, 400, body ? "the body must be a JSON object"
                                                          : "the body is not valid JSON");
    json_t *jname = json_object_get(body, "name");
    json_t *jenv = json_object_get(body, "env");
    if (jname && !json_is_null(jname) && !json_is_string(jname))
        return (void)http_respond_error(c->req, 400, "'name' must be a string (a kernelspec name)");
    if (jenv && !json_is_null(jenv) && !json_is_object(jenv))
        return (void)http_respond_error(c->req, 400, "'env' must be an object of strings");
    const char *name = json_is_string(jname) && json_string_value(jname)[0] ? json_string_value(jname)
                                                                             : api->default_kernel;
    cb_error_t err = {0};
    kg_kernelspec_t *spec = kg_kernelspec_find(api->gw->kernels_dir, name, &err);
    if (!spec)
        return (void)http_respond_error(c->req, s_status_of(&err), err.msg);
    kg_kernelspec_destroy(&spec);
    cleanup_strvec cb_strv_t env = {0};
    if (cb_strv_init(&env) < 0 || (json_is_object(jenv) && s_collect_env(jenv, &env, &err) < 0))
        return (void)http_respond_error(c->req, 500, "out of memory");

    json_auto_t *labels = json_pack("{s:s}", "started_by", "jupyter api");
    kg_api_open_t req = {.template_name = api->template_name,
                         .kernel_name = strcmp(name, api->default_kernel) != 0 ? name : NULL,
                         .env = (const char *const *)env.v,
                         .timeout_s = api->kernel_timeout_s,
                         .metadata = labels,
                         .on_end = s_on_sandbox_end,
                         .arg = api};
    kg_kernel_t *k = api->opener->open(api->opener_arg, &req, &err);
    if (!k)
        return (void)http_respond_error(c->req, s_status_of(&err), err.msg);
    kg_sandbox_t *sb = k->sandbox;
    kg_api_kernel_t *ak = kg_api_kernel_get(api, k, true);
    if (!ak) {
        kg_sandbox_destroy(&sb);
        return (void)http_respond_error(c->req, 500, "could not start the kernel (out of memory)");
    }
    ak->owned = true;
    snprintf(ak->sandbox_id, sizeof ak->sandbox_id, "%s", sb->id);
    kg_sandbox_log(sb, "jupyter-api", "kernel %.8s started for a Jupyter client", k->id);
    cb_info("jupyter api: kernel %.8s (%s) started in sandbox %.8s", k->id, name, sb->id);
    cleanup_free char *location = cb_strdup_printf(KG_API_PREFIX "/kernels/%s", k->id);
    s_respond_model(c, 201, k, (const char *[]){"Location", location ? location : "", NULL});
}

static void s_get_kernel(s_call_t *c) { s_respond_model(c, 200, c->kernel, NULL); }

static void s_delete_kernel(s_call_t *c)
{
    kg_api_kernel_t *ak = kg_api_kernel_get(c->api, c->kernel, false);
    if (!ak || !ak->owned) {
        cleanup_free char *msg = cb_strdup_printf(
            "kernel %s was not started through this API (it belongs to an MCP session%s%s); you may "
            "watch and use it here, but only its owner can end it",
            c->kernel->id, c->kernel->sandbox ? " in sandbox " : "",
            c->kernel->sandbox ? c->kernel->sandbox->id : "");
        return (void)http_respond_error(c->req, 403, msg ? msg : "this kernel is not yours to delete");
    }
    cb_info("jupyter api: kernel %.8s deleted", ak->id);
    kg_api_delete_kernel(ak, "it was deleted");
    http_respond(c->req, 204, NULL, NULL, NULL, 0);
}

static void s_post_interrupt(s_call_t *c)
{
    cb_error_t err = {0};
    if (kg_kernel_interrupt(c->kernel, &err) < 0)
        return (void)http_respond_error(c->req, s_status_of(&err), err.msg);
    kg_kernel_touch(c->kernel);
    http_respond(c->req, 204, NULL, NULL, NULL, 0);
}

static void s_on_restart_gone(http_request_t *req, void *arg)
{
    kg_api_kernel_t *ak = arg;
    void *handle = zlistx_find(ak->restarts, req);
    if (handle)
        zlistx_detach(ak->restarts, handle);
}

/* Answered once the kernel is ready again (or dead), as jupyter_server does. */
static void s_post_restart(s_call_t *c)
{
    kg_api_kernel_t *ak = kg_api_kernel_get(c->api, c->kernel, true);
    if (!ak)
        return (void)http_respond_error(c->req, 500, "out of memory");
    cb_error_t err = {0};
    if (kg_kernel_restart(c->kernel, &err) < 0)
        return (void)http_respond_error(c->req, s_status_of(&err), err.msg);
    kg_kernel_touch(c->kernel);
    if (!zlistx_add_end(ak->restarts, c->req))
        return (void)http_respond_error(c->req, 500, "out of memory");
    http_request_on_close(c->req, s_on_restart_gone, ak);
}

static void s_channels_not_upgraded(s_call_t *c)
{
    http_respond_error(c->req, 400, "this is a WebSocket endpoint: connect with an Upgrade: websocket request");
}

/* ---- the route table ------------------------------------------------------------------------ */

typedef struct {
    const char *shape;  /* segments after /api; "*" is the variable one; "" is /api itself */
    const char *method;
    void (*handler)(s_call_t *c);
    bool on_kernel;     /* "*" is a kernel id: look it up first (404 when unknown) */
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
    for (char *save = NULL, *tok = strtok_r(rest, "/", &save); tok; tok = strtok_r(NULL, "/", &save)) {
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
    char *parts[KG_API_MAX_SEGMENTS];
    int m = s_split(copy, parts, KG_API_MAX_SEGMENTS);
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

static void s_not_found_kernel(http_request_t *req, kg_api_t *api, const char *id)
{
    const char *why = kg_api_gone(api, id);
    cleanup_free char *msg = why ? cb_strdup_printf("kernel %s is gone: %s", id, why)
                                 : cb_strdup_printf("no kernel with id '%s'", id);
    http_respond_error(req, 404, msg ? msg : "no such kernel");
}

/* A kernel a client may address, or NULL (unknown, stopping, pooled, being deleted). */
kg_kernel_t *kg_api_find_kernel(kg_api_t *api, const char *id)
{
    kg_kernel_t *k = kg_gateway_kernel(api->gw, id);
    return k && s_visible(api, k) ? k : NULL;
}

static void s_on_request(http_request_t *req, void *arg)
{
    kg_api_t *api = arg;
    const char *path = http_request_path(req);
    const char *method = http_request_method(req);
    size_t plen = strlen(KG_API_PREFIX);
    char rest[512];
    if (strncmp(path, KG_API_PREFIX, plen) != 0 || strlen(path + plen) >= sizeof rest)
        return (void)http_respond_error(req, 404, "no such path");
    snprintf(rest, sizeof rest, "%s", path + plen);
    char *segs[KG_API_MAX_SEGMENTS];
    int n = s_split(rest, segs, KG_API_MAX_SEGMENTS);
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
        if (r->on_kernel && !(c.kernel = kg_api_find_kernel(api, c.arg)))
            return s_not_found_kernel(req, api, c.arg);
        return r->handler(&c);
    }
    if (!shape_found)
        return (void)http_respond_error(req, 404, "no such path in the Jupyter API");
    json_auto_t *body = json_pack("{s:s, s:s+++}", "reason", "Method Not Allowed", "message", method,
                                  " is not allowed here; allowed: ", allow);
    if (body)
        http_respond_json(req, 405, body, (const char *[]){"Allow", allow, NULL});
    else
        http_respond_error(req, 405, "method not allowed");
}

/* ---- the object ----------------------------------------------------------------------------- */

kg_api_t *kg_api_new(kg_gateway_t *gw, http_server_t *http, const kg_api_opts_t *opts, cb_error_t *err)
{
    static const kg_api_opts_t defaults = {0};
    if (!opts)
        opts = &defaults;
    kg_api_t *api = calloc(1, sizeof *api);
    if (!api)
        return cb_error_make(err, ENOMEM, "new Jupyter API"), NULL;
    api->gw = gw;
    api->http = http;
    api->kernel_timeout_s = opts->kernel_timeout_s;
    api->replay_messages = opts->replay_messages ? opts->replay_messages : KG_API_DEFAULT_REPLAY;
    api->replay_keep_s = opts->replay_keep_s > 0 ? opts->replay_keep_s : KG_API_DEFAULT_KEEP_S;
    api->template_name = strdup(opts->template_name ? opts->template_name : "python");
    api->opener = opts->opener;
    api->opener_arg = opts->opener_arg;
    if (!api->opener) {
        cb_error_fail(err, CB_ERR_INVALID, "the Jupyter API needs a sandbox opener");
        kg_api_destroy(&api);
        return NULL;
    }
    api->kernels = zhashx_new();
    api->doomed = zlistx_new();
    api->doomed_sandboxes = zlistx_new();
    if (!api->template_name || !api->kernels || !api->doomed || !api->doomed_sandboxes) {
        cb_error_make(err, ENOMEM, "new Jupyter API");
        kg_api_destroy(&api);
        return NULL;
    }
    /* The template's kernel is the default kernelspec: what POST starts when no name is given. */
    api->default_kernel = api->opener->default_kernel(api->opener_arg, api->template_name, err);
    if (!api->default_kernel) {
        cb_error_prefix(err, "the Jupyter API's template: ");
        kg_api_destroy(&api);
        return NULL;
    }
    if (http_server_route(http, KG_API_PREFIX, s_on_request, kg_channels_on_ws, api, err) < 0 ||
        http_server_subprotocol(http, KG_API_SUBPROTOCOL, err) < 0) {
        kg_api_destroy(&api);
        return NULL;
    }
    return api;
}

void kg_api_destroy(kg_api_t **self_p)
{
    kg_api_t *api = self_p ? *self_p : NULL;
    if (!api)
        return;
    *self_p = NULL;
    /* Stop listening and close every channel first, then free the sessions, then close the
     * sandboxes the API opened (their kernels' STOPPED events no longer reach us). */
    zlistx_t *records = api->kernels ? zhashx_values(api->kernels) : NULL;
    for (kg_api_kernel_t *ak = records ? zlistx_first(records) : NULL; ak; ak = zlistx_next(records)) {
        if (ak->owned && !ak->deleting) {
            char *id = strdup(ak->sandbox_id);
            if (!id || !zlistx_add_end(api->doomed_sandboxes, id))
                free(id);
        }
        s_kernel_forget(ak, 503, "the server is shutting down");
    }
    zlistx_destroy(&records);
    if (api->reap_pending)
        kg_gateway_defer_cancel(api->gw, s_reap_deferred, api);
    if (api->doomed && api->doomed_sandboxes)
        s_reap(api);
    zlistx_destroy(&api->doomed);
    zlistx_destroy(&api->doomed_sandboxes);
    zhashx_destroy(&api->kernels);
    for (size_t i = 0; i < KG_API_GONE_MAX; i++)
        free(api->gone[i]);
    free(api->template_name);
    free(api->default_kernel);
    free(api);
}
