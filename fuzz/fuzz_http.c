/* fuzz_http.c: the HTTP server's checks (http/checks.c: Host, Origin, the token, the route
 * table) and the routes behind them: the Jupyter Kernel Gateway API (jupyter-api/api.c,
 * and the channels WebSocket's opening) and MCP Streamable HTTP (mcp/http.c), called directly,
 * with no socket, on the MCP environment of mcp_env.h (nothing can start a process).
 *
 * libwebsockets parses the request line and headers (its parser is not ours, and not fuzzed
 * here); what it hands over is what the input says:
 *
 *   METHOD '\n' PATH '\n' QUERY '\n' HEADER-LINE* '\n' BODY
 *
 * QUERY is name=value pairs joined by '&' (decoded already, as lws gives them); a header line is
 * "Name: value". The method WS opens a WebSocket at PATH instead of a request; with a BODY, that
 * is then sent on it as one message. Per input the harness makes an HTTP server (not started),
 * the API and the MCP transport on it, as `cellblock serve` does, and destroys them at the end.
 *
 * What must hold, besides no crash or leak: the right token is accepted in each form and an
 * accepted Authorization or ?token= holds the token; an accepted Host or Origin has only the
 * characters a host may have; the route found is a prefix of the path at a segment boundary. */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "cb/alloc.h"
#include "fuzz.h"
#include "http_private.h"
#include "japi/japi.h"
#include "kg/gateway.h"
#include "mcp_env.h"

#define S_TOKEN "f0e1d2c3b4a5968778695a4b3c2d1e0f"
#define S_PORT 8888
#define S_MAX_LINES 48

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_mcp_env(0);
    return 0;
}

static bool s_host_chars(const char *s)
{
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr(".-:[]_", *s))
            return false;
    return true;
}

/* The token check on a C string (the harness's header values hold no NUL). */
static bool s_token_ok(const http_server_t *http, const char *auth, const char *token)
{
    return http_check_token(http, auth, auth ? strlen(auth) : 0, token);
}

/* The checks, with what must hold of their answers. */
static void s_checks(const http_server_t *http, const char *host, const char *origin,
                     const char *auth, const char *token, const char *path)
{
    FUZZ_CHECK(s_token_ok(http, "Bearer " S_TOKEN, NULL));
    FUZZ_CHECK(s_token_ok(http, "token " S_TOKEN, NULL));
    FUZZ_CHECK(s_token_ok(http, NULL, S_TOKEN));
    FUZZ_CHECK(!s_token_ok(http, NULL, NULL));
    if (s_token_ok(http, auth, token))
        FUZZ_CHECK((auth && strstr(auth, S_TOKEN)) || (token && strcmp(token, S_TOKEN) == 0));

    if (http_check_host(http, host))
        FUZZ_CHECK(host && s_host_chars(host));
    if (origin && http_check_origin(http, origin) &&
        strcmp(origin, "https://allowed.example") != 0) {
        const char *rest = strstr(origin, "://");
        FUZZ_CHECK(rest && s_host_chars(rest + 3));
        FUZZ_CHECK(strncasecmp(origin, "http://", 7) == 0 ||
                   strncasecmp(origin, "https://", 8) == 0);
    }
    const http_route_t *r = http_route_find(http, path);
    if (r) {
        FUZZ_CHECK(strncmp(path, r->prefix, r->len) == 0);
        FUZZ_CHECK(path[r->len] == '\0' || path[r->len] == '/' || r->prefix[r->len - 1] == '/');
    }
    FUZZ_CHECK(http_status_reason(400 + (int)strlen(path) % 200) != NULL);
}

static void s_on_files(http_request_t *req, void *arg)
{
    (void)arg;
    http_respond(req, 204, NULL, NULL, NULL, 0);
}

/* A "client went" for whatever is still open, as the server thread would report it. */
static void s_close_open(http_server_t *http)
{
    size_t n = 0;
    uint64_t *ids = http_idmap_ids(&http->reqs, &n);
    for (size_t i = 0; i < n; i++) {
        http_request_t *req = http_idmap_remove(&http->reqs, ids[i]);
        if (!req)
            continue;
        req->closing = true;
        if (req->on_close)
            req->on_close(req, req->close_arg);
        http_request_free(req);
    }
    free(ids);
    ids = http_idmap_ids(&http->wss, &n);
    for (size_t i = 0; i < n; i++) {
        http_ws_t *ws = http_idmap_remove(&http->wss, ids[i]);
        if (!ws)
            continue;
        ws->closing = true;
        if (ws->on_close)
            ws->on_close(ws, ws->arg);
        http_request_free(ws->req);
        free(ws->subprotocol);
        free(ws);
    }
    free(ids);
}

/* What the handlers answered (queued for the server thread): each response well-formed. */
static void s_drain(http_server_t *http)
{
    for (http_msg_t *m = http_msgq_take_all(&http->to_lws), *next; m; m = next) {
        next = m->next;
        if (m->kind == HM_HEAD)
            FUZZ_CHECK(m->status >= 100 && m->status <= 599 && m->text && m->headers);
        if (getenv("FUZZ_VERBOSE")) /* to see what a seed reaches */
            fprintf(stderr, "-> %d %d %.200s\n", m->kind, m->status,
                    m->kind == HM_DATA ? (char *)m->data : "");
        http_msg_free(m);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_mcp_env_t *env = fuzz_mcp_env(0);
    const uint8_t *starts[S_MAX_LINES];
    size_t lens[S_MAX_LINES];
    size_t n = fuzz_split(data, size, '\n', starts, lens, S_MAX_LINES);
    if (n < 3)
        return 0;

    static const char *const hosts[] = {"cellblock.example", NULL};
    static const char *const origins[] = {"https://allowed.example", NULL};
    http_config_t hcfg = {.listen = "127.0.0.1:8888",
                          .token = S_TOKEN,
                          .allowed_hosts = hosts,
                          .allowed_origins = origins};
    cb_error_t err = {0};
    http_server_t *http = http_server_new(kg_gateway_loop(env->gw), &hcfg, &err);
    FUZZ_CHECK(http && http->port == S_PORT);
    fuzz_mcp_env_template(true);
    japi_t *api = japi_new(env->gw, http, &(japi_opts_t){.kernel_timeout_s = -1}, &err);
    fuzz_mcp_env_template(false);
    mcp_http_t *mh = mcp_http_new(env->srv, http, &(mcp_http_opts_t){.path = "/mcp"}, &err);
    FUZZ_CHECK(api && mh);
    /* A route ending in a slash, for the table's other rule. */
    FUZZ_CHECK(http_server_route(http, "/files/", s_on_files, NULL, NULL, NULL) == 0);

    http_request_t *req = calloc(1, sizeof *req);
    FUZZ_CHECK(req);
    req->server = http;
    req->id = 1;
    req->method = fuzz_strndup(starts[0], lens[0]);
    req->path = fuzz_strndup(starts[1], lens[1]);
    cb_strv_t q = {0}, h = {0};
    cb_strv_init(&q);
    cb_strv_init(&h);
    char *query = fuzz_strndup(starts[2], lens[2]);
    for (char *save = NULL, *pair = strtok_r(query, "&", &save); pair;
         pair = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(pair, '=');
        cb_strv_push(&q, eq ? cb_xstrndup(pair, (size_t)(eq - pair)) : cb_xstrdup(pair));
        cb_strv_push(&q, cb_xstrdup(eq ? eq + 1 : ""));
    }
    free(query);
    size_t i = 3;
    char *auth = NULL;
    for (; i < n && lens[i] > 0; i++) {
        char *line = fuzz_strndup(starts[i], lens[i]);
        char *colon = strchr(line, ':');
        if (colon) {
            *colon = '\0';
            const char *value = colon + 1 + (colon[1] == ' ');
            if (strcasecmp(line, "Authorization") == 0) {
                free(auth);
                auth = strdup(value);
            } else {
                cb_strv_push(&h, cb_xstrdup(line));
                cb_strv_push(&h, cb_xstrdup(value));
            }
        }
        free(line);
    }
    req->query = q.v;
    req->headers = h.v;
    q.v = h.v = NULL;
    const uint8_t *body = i + 1 < n ? starts[i + 1] : NULL;
    size_t body_len = body ? (size_t)(data + size - body) : 0;
    req->body = fuzz_strndup(body ? body : (const uint8_t *)"", body_len);
    req->body_len = body_len;

    s_checks(http, http_request_header(req, "Host"), http_request_header(req, "Origin"), auth,
             http_request_query(req, "token"), req->path);
    free(auth);

    /* What passed (or would pass) the checks goes to its route's handler. */
    bool ws = strcmp(req->method, "WS") == 0;
    req->route = http_route_find(http, req->path);
    if (!req->route || (ws && !req->route->on_ws)) {
        http_request_free(req);
    } else if (ws) {
        http_ws_t *w = calloc(1, sizeof *w);
        FUZZ_CHECK(w);
        http_idmap_put(&http->wss, 2, w);
        w->server = http;
        w->id = 2;
        w->req = req;
        const char *proto = http_request_header(req, "Sec-WebSocket-Protocol");
        w->subprotocol = proto ? strdup(proto) : NULL;
        req->route->on_ws(w, req->route->arg);
        w = http_idmap_get(&http->wss, 2);
        if (w && body && w->on_message && !w->closing)
            w->on_message(w, body, body_len, body_len && body[0] == 0, w->arg);
    } else {
        http_idmap_put(&http->reqs, req->id, req);
        req->route->on_request(req, req->route->arg);
    }
    s_drain(http);
    s_close_open(http);
    http_server_destroy(&http);
    japi_destroy(&api);
    mcp_http_destroy(&mh);
    fuzz_mcp_env_turn();
    return 0;
}
