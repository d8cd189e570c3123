/* web.c: the page at `/` and its JSON API (web/web.h).
 *
 * Two routes. `/` is public (http_server_route_public) and serves nothing but the page's three
 * files, compiled in (web_assets.c): they hold no data, so a browser that has not logged in can
 * load the login form; every other path under `/` is the JSON 404 the server gave before the
 * page existed. /ui/api is authenticated like every other route (a token, or the login
 * cookie) and acts for the request's principal:
 *
 *   POST /ui/api/login      the token in Authorization; answers the login cookie in Set-Cookie
 *   POST /ui/api/logout     clears it (a public route of its own: clearing needs no credential)
 *   GET  /ui/api/me         {tenant, admin, lab_url}
 *   GET  /ui/api/sandboxes  every sandbox the principal may reach, with its kernels and metrics
 *   GET  /ui/api/sandboxes/{id}             one, with its log and history (the audit trail)
 *   POST /ui/api/kernels/{id}/interrupt     and /restart: the engine's calls
 *
 * A sandbox or kernel the principal may not reach (fleet_sandbox_visible; hidden sandboxes of
 * a warm pool for everyone) is answered exactly as an unknown id: s_sandbox_find and
 * s_kernel_find are the only two lookups. Live output is not here: the page opens the Jupyter
 * API's channels WebSocket (jupyter-api/), which the login cookie authenticates too.
 *
 * Every answer carries the headers of s_headers: a Content-Security-Policy that allows the
 * page's own files only (no inline script or style, no framing), nosniff, no referrer, and
 * no caching of the API's answers. Payloads are bounded: at most WEB_MAX_SANDBOXES sandboxes,
 * WEB_LOG_ENTRIES log lines and WEB_HISTORY_RECORDS audit records per answer.
 */
#include <string.h>

#include "cb/alloc.h"
#include "cb/cleanup.h"
#include "cb/log.h"
#include "fleet/fleet.h"
#include "kg/kernel.h"
#include "kg/sandbox.h"
#include "web/web.h"
#include "web_private.h"

#define WEB_API "/ui/api"
#define WEB_MAX_SANDBOXES 500
#define WEB_LOG_ENTRIES 200
#define WEB_HISTORY_RECORDS 200
#define WEB_MAX_SEGMENTS 4

#define WEB_CSP                                                                                    \
    "default-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'"

struct web {
    kg_gateway_t *gw;
    http_server_t *http;
    char *lab_url; /* NULL: none */
};

/* ---- answers -------------------------------------------------------------------------------- */

/* Headers of every answer; cache is the Cache-Control value, set_cookie NULL for none. */
#define S_HEADERS(cache, set_cookie)                                                               \
    (const char *[])                                                                               \
    {                                                                                              \
        "Content-Security-Policy", WEB_CSP, "X-Content-Type-Options", "nosniff",                   \
            "Referrer-Policy", "no-referrer", "X-Frame-Options", "DENY", "Cache-Control", cache,   \
            set_cookie ? "Set-Cookie" : NULL, set_cookie, NULL                                     \
    }

/* body (Takes ownership) as JSON, with the API's headers. */
static void s_json(http_request_t *req, int status, json_t *body, const char *set_cookie)
{
    http_respond_json(req, status, body, S_HEADERS("no-store", set_cookie));
    json_decref(body);
}

/* {"reason", "message"}, as http_respond_error's, with the API's headers. */
static void s_error(http_request_t *req, int status, const char *message)
{
    s_json(req, status,
           json_pack("{s:s, s:s}", "reason", status == 404   ? "Not Found"
                                             : status == 405 ? "Method Not Allowed"
                                             : status == 400 ? "Bad Request"
                                                             : "Error",
                     "message", message),
           NULL);
}

/* ---- the assets ----------------------------------------------------------------------------- */

static const char *s_content_type(const char *path)
{
    const char *dot = strrchr(path, '.');
    if (dot && strcmp(dot, ".html") == 0)
        return "text/html; charset=utf-8";
    if (dot && strcmp(dot, ".js") == 0)
        return "text/javascript; charset=utf-8";
    if (dot && strcmp(dot, ".css") == 0)
        return "text/css; charset=utf-8";
    return "application/octet-stream";
}

static void s_on_page(http_request_t *req, void *arg)
{
    (void)arg;
    const char *path = http_request_path(req);
    if (strcmp(path, "/") == 0)
        path = "/index.html";
    const web_asset_t *asset = NULL;
    for (const web_asset_t *a = web_assets; a->path && !asset; a++)
        if (strcmp(a->path, path) == 0)
            asset = a;
    if (!asset)
        return s_error(req, 404, "no such path");
    const char *method = http_request_method(req);
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return s_error(req, 405, "the page's files are read with GET");
    http_respond(req, 200, s_content_type(asset->path), S_HEADERS("no-cache", NULL), asset->data,
                 asset->len);
}

/* ---- lookups: the only two ------------------------------------------------------------------ */

/* Whether who may see sb: not a pool's spare, not on its way out, and its tenant's. */
static bool s_sandbox_ok(kg_sandbox_t *sb, const cb_principal_t *who)
{
    return sb && !kg_sandbox_hidden(sb) && !kg_sandbox_ending(sb) &&
           fleet_sandbox_visible(sb, who);
}

static kg_sandbox_t *s_sandbox_find(web_t *self, const char *id, const cb_principal_t *who)
{
    kg_sandbox_t *sb = kg_gateway_sandbox(self->gw, id);
    return s_sandbox_ok(sb, who) ? sb : NULL;
}

static kg_kernel_t *s_kernel_find(web_t *self, const char *id, const cb_principal_t *who)
{
    kg_kernel_t *k = kg_gateway_kernel(self->gw, id);
    if (!k || kg_kernel_is_stopping(k))
        return NULL;
    kg_sandbox_t *sb = kg_kernel_sandbox(k);
    bool ok = sb ? s_sandbox_ok(sb, who) : cb_principal_may(who, NULL);
    return ok ? k : NULL;
}

/* ---- sandboxes ------------------------------------------------------------------------------ */

static json_t *s_kernel_json(const kg_kernel_t *k)
{
    return json_pack("{s:s, s:s?, s:s, s:s, s:b, s:i}", "id", kg_kernel_id(k), "name",
                     kg_kernel_name(k), "language", kg_kernel_language(k) ? kg_kernel_language(k) : "",
                     "state", kg_kernel_state_name(kg_kernel_state(k)), "busy", kg_kernel_is_busy(k),
                     "restarts", kg_kernel_restart_count(k));
}

/* kg_sandbox_info (with the fleet's template, tenant, lifetime), its kernels described, and
 * without the host's pid of its init, which is nobody's business on the page. Caller owns
 * return value. */
static json_t *s_sandbox_json(web_t *self, kg_sandbox_t *sb)
{
    json_t *info = kg_sandbox_info(sb);
    json_object_del(info, "init_pid");
    json_t *kernels = json_array();
    size_t i;
    json_t *kid;
    json_array_foreach(json_object_get(info, "kernels"), i, kid)
    {
        kg_kernel_t *k = kg_gateway_kernel(self->gw, json_string_value(kid));
        if (k && !kg_kernel_is_stopping(k))
            json_array_append_new(kernels, s_kernel_json(k));
    }
    json_object_set_new(info, "kernels", kernels);
    return info;
}

static int s_by_created(const void *a, const void *b)
{
    json_int_t x = json_integer_value(json_object_get(*(json_t *const *)a, "created_ms"));
    json_int_t y = json_integer_value(json_object_get(*(json_t *const *)b, "created_ms"));
    return x < y ? -1 : x > y;
}

static void s_get_sandboxes(web_t *self, http_request_t *req, const cb_principal_t *who)
{
    zlistx_t *all = kg_gateway_sandboxes(self->gw);
    size_t n = 0;
    json_t **items = cb_xmalloc((zlistx_size(all) + 1) * sizeof(*items));
    bool truncated = false;
    for (kg_sandbox_t *sb = zlistx_first(all); sb; sb = zlistx_next(all)) {
        if (!s_sandbox_ok(sb, who))
            continue;
        if (n == WEB_MAX_SANDBOXES) {
            truncated = true;
            break;
        }
        items[n++] = s_sandbox_json(self, sb);
    }
    zlistx_destroy(&all);
    qsort(items, n, sizeof(*items), s_by_created);
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(list, items[i]);
    free(items);
    s_json(req, 200, json_pack("{s:o, s:b}", "sandboxes", list, "truncated", truncated), NULL);
}

static void s_get_sandbox(web_t *self, http_request_t *req, const cb_principal_t *who,
                          const char *id)
{
    kg_sandbox_t *sb = s_sandbox_find(self, id, who);
    if (!sb)
        return s_error(req, 404, "no such sandbox");
    json_t *body = s_sandbox_json(self, sb);
    json_t *logs = kg_sandbox_logs(sb, WEB_LOG_ENTRIES);
    json_object_set_new(body, "logs", logs ? logs : json_array());
    /* The history: the audit trail's records of this sandbox, the principal's own tenant's
     * log unless an admin asks. */
    fleet_t *fleet = fleet_of(self->gw);
    cb_error_t err = {0};
    fleet_audit_query_t q = {.tenant = who->admin ? NULL : who->tenant,
                             .sandbox_id = kg_sandbox_id(sb),
                             .limit = WEB_HISTORY_RECORDS};
    json_t *history = fleet ? fleet_audit_read(fleet_state_dir(fleet), &q, &err) : json_array();
    if (!history) {
        cb_warn("page: the history of %s: %s", kg_sandbox_id(sb), err.msg);
        history = json_array();
    }
    json_object_set_new(body, "history", history);
    s_json(req, 200, body, NULL);
}

/* ---- kernels -------------------------------------------------------------------------------- */

static void s_post_kernel(web_t *self, http_request_t *req, const cb_principal_t *who,
                          const char *id, const char *action)
{
    kg_kernel_t *k = s_kernel_find(self, id, who);
    if (!k)
        return s_error(req, 404, "no such kernel");
    cb_error_t err = {0};
    bool interrupt = strcmp(action, "interrupt") == 0;
    int rc = interrupt ? kg_kernel_interrupt(k, &err) : kg_kernel_restart(k, &err);
    if (rc != 0)
        return (void)http_respond_cb_error(req, &err);
    kg_sandbox_t *sb = kg_kernel_sandbox(k);
    if (sb)
        kg_sandbox_log(sb, "page", "%s of kernel %s asked by %s", interrupt ? "interrupt" : "restart",
                       kg_kernel_id(k), who->tenant);
    s_json(req, 200, json_pack("{s:s, s:s}", "kernel_id", kg_kernel_id(k), "action", action), NULL);
}

/* ---- login ---------------------------------------------------------------------------------- */

static json_t *s_me(web_t *self, const cb_principal_t *who)
{
    return json_pack("{s:s, s:b, s:s?}", "tenant", who->tenant, "admin", who->admin, "lab_url",
                     self->lab_url);
}

static void s_login(web_t *self, http_request_t *req, const cb_principal_t *who)
{
    cleanup_free char *cookie = http_login_cookie(self->http, req, 0);
    if (!cookie) /* a principal that is no tenant (a sandbox's own token) cannot log in */
        return s_error(req, 404, "no such path");
    s_json(req, 200, s_me(self, who), cookie);
}

static void s_on_logout(http_request_t *req, void *arg)
{
    (void)arg;
    if (strcmp(http_request_path(req), WEB_API "/logout") != 0)
        return s_error(req, 404, "no such path");
    if (strcmp(http_request_method(req), "POST") != 0)
        return s_error(req, 405, "log out with POST");
    s_json(req, 200, json_pack("{s:b}", "logged_out", true), http_logout_cookie());
}

/* ---- the API's dispatcher ------------------------------------------------------------------- */

/* Split rest ("/a/b/c") in place into at most max segments; -1 when there are more, or an
 * empty one. */
static int s_split(char *rest, char **segs, int max)
{
    int n = 0;
    for (char *p = rest; *p;) {
        if (*p != '/' || p[1] == '\0' || p[1] == '/' || n == max)
            return -1;
        *p++ = '\0';
        segs[n++] = p;
        p += strcspn(p, "/");
    }
    return n;
}

static void s_on_api(http_request_t *req, void *arg)
{
    web_t *self = arg;
    const cb_principal_t *who = http_request_principal(req);
    const char *method = http_request_method(req);
    bool get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;
    const char *path = http_request_path(req) + strlen(WEB_API);
    char rest[512];
    if (strlen(path) >= sizeof rest)
        return s_error(req, 404, "no such path");
    snprintf(rest, sizeof rest, "%s", path);
    char *s[WEB_MAX_SEGMENTS];
    int n = s_split(rest, s, WEB_MAX_SEGMENTS);
    if (n == 1 && strcmp(s[0], "me") == 0)
        return get ? s_json(req, 200, s_me(self, who), NULL) : s_error(req, 405, "use GET");
    if (n == 1 && strcmp(s[0], "login") == 0)
        return post ? s_login(self, req, who) : s_error(req, 405, "log in with POST");
    if (n == 1 && strcmp(s[0], "sandboxes") == 0)
        return get ? s_get_sandboxes(self, req, who) : s_error(req, 405, "use GET");
    if (n == 2 && strcmp(s[0], "sandboxes") == 0)
        return get ? s_get_sandbox(self, req, who, s[1]) : s_error(req, 405, "use GET");
    if (n == 3 && strcmp(s[0], "kernels") == 0 &&
        (strcmp(s[2], "interrupt") == 0 || strcmp(s[2], "restart") == 0))
        return post ? s_post_kernel(self, req, who, s[1], s[2]) : s_error(req, 405, "use POST");
    s_error(req, 404, "no such path");
}

/* ---- the object ----------------------------------------------------------------------------- */

web_t *web_new(kg_gateway_t *gw, http_server_t *http, const web_opts_t *opts, cb_error_t *err)
{
    if (!gw || !http)
        return cb_error_fail(err, CB_ERR_INVALID, "the page needs a gateway and a server"), NULL;
    web_t *self = cb_xcalloc(1, sizeof(*self));
    self->gw = gw;
    self->http = http;
    if (opts && opts->lab_url && opts->lab_url[0]) {
        size_t len = strlen(opts->lab_url);
        while (len > 0 && opts->lab_url[len - 1] == '/')
            len--;
        self->lab_url = cb_xstrndup(opts->lab_url, len);
    }
    if (http_server_route(http, "/", s_on_page, NULL, self, err) != 0 ||
        http_server_route_public(http, "/", err) != 0 ||
        http_server_route(http, WEB_API, s_on_api, NULL, self, err) != 0 ||
        http_server_route(http, WEB_API "/logout", s_on_logout, NULL, self, err) != 0 ||
        http_server_route_public(http, WEB_API "/logout", err) != 0) {
        web_destroy(&self);
        return NULL;
    }
    return self;
}

void web_destroy(web_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    web_t *self = *self_p;
    free(self->lab_url);
    free(self);
    *self_p = NULL;
}
