/* http/server.c: the libwebsockets side of the HTTP module, on its own thread.
 *
 * Debian's libwebsockets has no external-poll support, so it cannot join the caller's zloop:
 * it runs lws_service() in a loop on a thread started here, and that thread touches nothing but
 * libwebsockets, the conn_t records below, and the two message queues (http_private.h).
 *
 * One conn_t per accepted socket, attached to the wsi as its opaque user data (which, unlike
 * lws's per-session data, survives the switch from HTTP to a WebSocket protocol). It carries
 * the id of the request or WebSocket currently on the connection (a fresh id per request, so a
 * late answer to an earlier request on a keep-alive connection is dropped), the request being
 * read, and the FIFO of output the caller's thread sent for that id.
 *
 * Flow of a request: LWS_CALLBACK_HTTP (headers parsed) → checks (checks.c) → the body, if
 * any, through LWS_CALLBACK_HTTP_BODY → an HM_REQUEST to the caller's thread. The answer comes
 * back as HM_HEAD, HM_DATA..., HM_END, picked up in LWS_CALLBACK_EVENT_WAIT_CANCELLED (the
 * caller calls lws_cancel_service after queueing) and written in LWS_CALLBACK_HTTP_WRITEABLE.
 * A WebSocket upgrade is vetted in LWS_CALLBACK_HTTP_CONFIRM_UPGRADE, where an HTTP error can
 * still be answered, and becomes an HM_WS_OPEN at LWS_CALLBACK_ESTABLISHED.
 *
 * libwebsockets behaviours this file relies on (4.1):
 *   - lws percent-decodes the path and the query arguments while parsing ('+' becomes a space
 *     in the query), refuses malformed escapes, and folds "/./", "/../" and "//"; we do not
 *     decode again, but refuse (400) a path or argument with a decoded NUL in it.
 *   - lws does not decode a chunked request body: it passes the framing on as body bytes and
 *     never ends the body. We write no HTTP parser of our own: libhttp-parser decodes those
 *     bytes (chunked.c), after the checks, and the request is dispatched when the decoder finds
 *     the end; since lws would read what follows as more body, the answer says
 *     "Connection: close" and the connection ends with it (a request pipelined behind is sent
 *     again by the client). A chunked body with no byte for the head timeout is closed by
 *     s_peek_waiting (lws's own timeouts do not hold while it reads a body). Transfer-Encoding
 *     other than "chunked" alone is 411; with Content-Length too, 400.
 *   - While an h1 request is open lws does not read its socket, so a client that leaves is
 *     found by s_peek_waiting (a MSG_PEEK five times a second), not by lws.
 *   - Unknown methods never reach us (lws refuses them while parsing); CONNECT is answered 405.
 *   - lws has no public way to chunk a response (its sending_chunked is internal), so a
 *     streamed response is framed here: "Transfer-Encoding: chunked", each write one chunk,
 *     and "0\r\n\r\n" at the end, after which the connection stays open for the next request.
 *   - A WebSocket client offering only subprotocols we do not know is refused by lws (it binds
 *     a protocol by exact name or closes); we answer it with a 400 in CONFIRM_UPGRADE instead of
 *     a bare close. A client offering none gets protocols[0], i.e. no subprotocol.
 *   - Timeouts: while a request waits for its handler, and while a stream is open, the wsi has
 *     no pending timeout (lws_set_timeout(NO_PENDING_TIMEOUT)); h1 has no validity (ping)
 *     timer, so nothing else closes it. WebSockets get lws's validity policy: a PING after 30 s
 *     of silence, and a hangup when nothing came back 15 s later. */
#include <errno.h>
#include <libwebsockets.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "cb/alloc.h"
#include "cb/cleanup.h"
#include "cb/log.h"
#include "http_private.h"

_Static_assert(LWS_PRE + 24 <= HTTP_MSG_HEADROOM, "HTTP_MSG_HEADROOM too small for LWS_PRE");

#define HEADER_MAX 16384
#define KEEPALIVE_SECS 60
#define DISCARD_MAX (1024 * 1024) /* body bytes read and dropped after a 413 before closing */
#define DISCARD_IDLE_US (2 * LWS_US_PER_SEC) /* a refused chunked body: closed after a pause */

typedef enum {
    C_IDLE,    /* between requests */
    C_BODY,    /* reading the body of a request that passed the checks */
    C_DISCARD, /* an error was answered; dropping the body, then closing */
    C_WAIT,    /* dispatched: waiting for the handler's answer, or writing it */
    C_UPGRADE, /* a WebSocket upgrade passed the checks, not yet established */
    C_WS,      /* an open WebSocket */
} conn_state_t;

typedef struct {
    http_server_t *server;
    struct lws *wsi;
    conn_state_t state;
    uint64_t id;
    http_request_t *req; /* being read (C_BODY), or the upgrade request (C_UPGRADE) */
    cb_buf_t body;
    http_chunked_t *dechunk; /* C_BODY of a chunked request: the decoder (chunked.c) */
    bool te_body;            /* the request's body is framed by Transfer-Encoding */
    lws_usec_t body_until;   /* a chunked body (C_BODY) or what is dropped of one after a
                                refusal (C_DISCARD): closed by s_peek_waiting when no byte came
                                by then (lws never ends such a body itself); 0: not watched */
    size_t discarded;
    bool is_head;
    bool chunked;     /* the response is chunked */
    bool close_after; /* close once this response is out */
    http_msg_t *out_head, *out_tail;
    size_t written; /* bytes written since the last HM_WRITTEN */
    cb_buf_t wsmsg;
    bool in_message, ws_binary;
    bool owner_gone; /* the owner closed: no HM_WS_CLOSED */
} conn_t;

static const char s_default_protocol[] = "cellblock-http";

static const char *const s_method_names[] = {
    [LWSHUMETH_GET] = "GET",         [LWSHUMETH_POST] = "POST",   [LWSHUMETH_OPTIONS] = "OPTIONS",
    [LWSHUMETH_PUT] = "PUT",         [LWSHUMETH_PATCH] = "PATCH", [LWSHUMETH_DELETE] = "DELETE",
    [LWSHUMETH_CONNECT] = "CONNECT", [LWSHUMETH_HEAD] = "HEAD",
};

/* The request headers handed on, with how lws stores each (a token, or a custom name). */
static const struct {
    const char *name;
    int token;          /* WSI_TOKEN_*, or -1 */
    const char *custom; /* lowercase "name:" for lws_hdr_custom_* */
} s_kept_headers[] = {
    {"Host", WSI_TOKEN_HOST, NULL},
    {"Origin", WSI_TOKEN_ORIGIN, NULL},
    {"Accept", WSI_TOKEN_HTTP_ACCEPT, NULL},
    {"Accept-Encoding", WSI_TOKEN_HTTP_ACCEPT_ENCODING, NULL},
    {"Content-Type", WSI_TOKEN_HTTP_CONTENT_TYPE, NULL},
    {"Content-Encoding", WSI_TOKEN_HTTP_CONTENT_ENCODING, NULL}, /* lws knows it: not custom */
    {"Content-Length", WSI_TOKEN_HTTP_CONTENT_LENGTH, NULL},
    {"User-Agent", WSI_TOKEN_HTTP_USER_AGENT, NULL},
    {"Sec-WebSocket-Protocol", WSI_TOKEN_PROTOCOL, NULL},
    {"Mcp-Session-Id", -1, "mcp-session-id:"},
    {"MCP-Protocol-Version", -1, "mcp-protocol-version:"},
    {"Last-Event-ID", -1, "last-event-id:"},
    {"E2b-Sandbox-Id", -1, "e2b-sandbox-id:"},
    {"E2b-Sandbox-Port", -1, "e2b-sandbox-port:"},
    {"Connect-Protocol-Version", -1, "connect-protocol-version:"},
    {"Connect-Timeout-Ms", -1, "connect-timeout-ms:"},
    {"Keepalive-Ping-Interval", -1, "keepalive-ping-interval:"},
};

/* ---- messages to the caller's thread -------------------------------------------------------- */

static void s_post(http_server_t *self, http_msg_t *msg) { http_post_main(self, msg); }

static void s_post_simple(http_server_t *self, http_msg_kind_t kind, uint64_t id)
{
    s_post(self, http_msg_new(kind, id, NULL, 0));
}

static void s_post_log(http_server_t *self, const char *method, const char *path, int status,
                       const char *why)
{
    if (cb_log_level_current > CB_LOG_DEBUG)
        return;
    http_msg_t *msg = http_msg_new(HM_LOG, 0, NULL, 0);
    msg->text =
        cb_strdup_printf("%s %s -> %d (%s)", method ? method : "?", path ? path : "?", status, why);
    s_post(self, msg);
}

static void s_flush_written(conn_t *c)
{
    if (c->written && c->id) {
        http_msg_t *msg = http_msg_new(HM_WRITTEN, c->id, NULL, 0);
        msg->len = c->written;
        s_post(c->server, msg);
    }
    c->written = 0;
}

/* ---- connections ---------------------------------------------------------------------------- */

static conn_t *s_conn_get(http_server_t *self, struct lws *wsi)
{
    conn_t *c = lws_get_opaque_user_data(wsi);
    if (c)
        return c;
    c = cb_xcalloc(1, sizeof(*c));
    c->server = self;
    c->wsi = wsi;
    lws_set_opaque_user_data(wsi, c);
    self->nconns++;
    return c;
}

static void s_out_clear(conn_t *c)
{
    while (c->out_head) {
        http_msg_t *m = c->out_head;
        c->out_head = m->next;
        http_msg_free(m);
    }
    c->out_tail = NULL;
}

static void s_conn_forget_id(conn_t *c)
{
    if (c->id)
        http_idmap_remove(&c->server->conns, c->id);
    c->id = 0;
}

static void s_conn_assign_id(conn_t *c)
{
    http_server_t *self = c->server;
    s_conn_forget_id(c);
    c->id = ++self->next_id;
    http_idmap_put(&self->conns, c->id, c);
}

static void s_conn_destroy(conn_t *c)
{
    http_server_t *self = c->server;
    if (c->id) {
        if (c->state == C_WAIT)
            s_post_simple(self, HM_REQ_CLOSED, c->id);
        else if (c->state == C_WS && !c->owner_gone)
            s_post_simple(self, HM_WS_CLOSED, c->id);
    }
    s_conn_forget_id(c);
    s_out_clear(c);
    cb_buf_free(&c->body);
    http_chunked_destroy(&c->dechunk);
    cb_buf_free(&c->wsmsg);
    http_request_free(c->req);
    lws_set_opaque_user_data(c->wsi, NULL);
    self->nconns--;
    free(c);
}

/* ---- reading a request ---------------------------------------------------------------------- */

/* A header's value, NUL-terminated; *len_out: its length in bytes, which is more than strlen()
 * when the value holds a NUL. NULL when absent. Caller owns return value. */
static char *s_hdr_dup(struct lws *wsi, int token, size_t *len_out)
{
    int len = lws_hdr_total_length(wsi, (enum lws_token_indexes)token);
    if (len <= 0)
        return NULL;
    char *s = cb_xmalloc((size_t)len + 1);
    if (lws_hdr_copy(wsi, s, len + 1, (enum lws_token_indexes)token) < 0) {
        free(s);
        return NULL;
    }
    *len_out = (size_t)len;
    return s;
}

static char *s_custom_dup(struct lws *wsi, const char *name, size_t *len_out)
{
    int nlen = (int)strlen(name);
    int len = lws_hdr_custom_length(wsi, name, nlen);
    if (len < 0)
        return NULL;
    char *s = cb_xmalloc((size_t)len + 1);
    if (lws_hdr_custom_copy(wsi, s, len + 1, name, nlen) < 0) {
        free(s);
        return NULL;
    }
    *len_out = (size_t)len;
    return s;
}

static void s_push_pair(cb_strv_t *sv, const char *name, char *value)
{
    if (!value)
        return;
    cb_strv_push(sv, cb_xstrdup(name));
    cb_strv_push(sv, value);
}

/* The request as the handler will see it: method, path, query and kept headers. */
static http_request_t *s_request_build(http_server_t *self, struct lws *wsi, const char *method)
{
    http_request_t *req = cb_xcalloc(1, sizeof(*req));
    req->server = self;
    req->method = cb_xstrdup(method);
    char *uri = NULL;
    int urilen = 0;
    if (lws_http_get_uri_and_method(wsi, &uri, &urilen) >= 0 && uri) {
        /* lws decodes %00 too: a NUL inside the path is refused by the caller. */
        if (strnlen(uri, (size_t)urilen) != (size_t)urilen)
            req->bad = true;
        req->path = cb_xstrndup(uri, (size_t)urilen);
    } else {
        req->path = cb_xstrdup("/");
    }
    cleanup_strvec cb_strv_t q = {0}, h = {0};
    cb_strv_init(&q);
    cb_strv_init(&h);
    /* Query arguments: lws splits them at '&' and has already percent-decoded them. */
    for (int i = 0;; i++) {
        char frag[HEADER_MAX];
        int n = lws_hdr_copy_fragment(wsi, frag, sizeof(frag), WSI_TOKEN_HTTP_URI_ARGS, i);
        if (n < 0)
            break;
        if (n == 0)
            continue;
        if (strlen(frag) != (size_t)n)
            req->bad = true;
        char *eq = strchr(frag, '=');
        cb_strv_push(&q, eq ? cb_xstrndup(frag, (size_t)(eq - frag)) : cb_xstrdup(frag));
        cb_strv_push(&q, cb_xstrdup(eq ? eq + 1 : ""));
    }
    for (size_t i = 0; i < sizeof(s_kept_headers) / sizeof(s_kept_headers[0]); i++) {
        size_t len = 0;
        char *v = s_kept_headers[i].token >= 0 ? s_hdr_dup(wsi, s_kept_headers[i].token, &len)
                                               : s_custom_dup(wsi, s_kept_headers[i].custom, &len);
        /* A check reading the value as a C string would see only what comes before a NUL. */
        if (v && strlen(v) != len)
            req->bad = true;
        s_push_pair(&h, s_kept_headers[i].name, v);
    }
    req->query = steal_pointer(&q.v);
    req->headers = steal_pointer(&h.v);
    q.n = h.n = 0;
    return req;
}

static const char *s_req_header(const http_request_t *req, const char *name)
{
    for (char **p = req->headers; p && p[0]; p += 2)
        if (strcasecmp(p[0], name) == 0)
            return p[1];
    return NULL;
}

static const char *s_req_query(const http_request_t *req, const char *name)
{
    for (char **p = req->query; p && p[0]; p += 2)
        if (strcmp(p[0], name) == 0)
            return p[1];
    return NULL;
}

/* A secret header's value checked by ok(self, arg, value, len), then wiped. */
static bool s_secret_header_ok(http_server_t *self, struct lws *wsi, const char *custom,
                               bool (*ok)(const http_server_t *, const char *, const char *,
                                          size_t),
                               const char *arg)
{
    size_t len = 0;
    char *v = s_custom_dup(wsi, custom, &len);
    if (!v)
        return false;
    bool pass = ok(self, arg, v, len);
    OPENSSL_cleanse(v, len);
    free(v);
    return pass;
}

/* The principal of the X-API-Key header's token, or NULL; the value is wiped after. */
static const cb_principal_t *s_api_key_principal(http_server_t *self, struct lws *wsi)
{
    size_t len = 0;
    char *v = s_custom_dup(wsi, "x-api-key:", &len);
    if (!v)
        return NULL;
    const cb_principal_t *who = http_check_api_key(self, v, len);
    OPENSSL_cleanse(v, len);
    free(v);
    return who;
}

/* The principal of a valid login cookie (login.c), copied into req. */
static bool s_login_cookie(http_server_t *self, struct lws *wsi, http_request_t *req)
{
    size_t len = 0;
    char *v = s_hdr_dup(wsi, WSI_TOKEN_HTTP_COOKIE, &len);
    if (!v)
        return false;
    bool ok = strlen(v) == len && http_login_cookie_ok(self, v, &req->who, req->tenant);
    OPENSSL_cleanse(v, len);
    free(v);
    return ok;
}

static void s_set_principal(http_request_t *req, const cb_principal_t *who)
{
    snprintf(req->tenant, sizeof(req->tenant), "%s", who->tenant);
    req->who = (cb_principal_t){req->tenant, who->admin};
}

/* The credentials http.h lists, and whom they name (req->who). A sandbox token sets
 * req->sandbox and a principal that owns nothing; a login cookie counts on every route but
 * the sandbox-token ones. A public route lets a request without credentials in as that
 * nobody too. */
static bool s_authorized(http_server_t *self, struct lws *wsi, http_request_t *req, bool ws,
                         const http_route_t *route)
{
    size_t auth_len = 0;
    char *auth = s_hdr_dup(wsi, WSI_TOKEN_HTTP_AUTHORIZATION, &auth_len);
    const cb_principal_t *who =
        http_check_token(self, auth, auth_len, ws ? s_req_query(req, "token") : NULL);
    if (auth) {
        OPENSSL_cleanse(auth, auth_len);
        free(auth);
    }
    if (!who || (self->no_auth && who == &http_principal_admin)) {
        /* A tenant's X-API-Key names its tenant even under no_auth. */
        const cb_principal_t *key = s_api_key_principal(self, wsi);
        if (key)
            who = key;
    }
    if (who) {
        s_set_principal(req, who);
        return true;
    }
    const char *sandbox = s_req_header(req, "E2b-Sandbox-Id");
    if (route && route->sandbox_tokens && sandbox && *sandbox &&
        (s_secret_header_ok(self, wsi, "x-access-token:", http_sandbox_token_ok, sandbox) ||
         s_secret_header_ok(self, wsi, "e2b-traffic-access-token:", http_sandbox_token_ok,
                            sandbox))) {
        req->sandbox = cb_xstrdup(sandbox);
        s_set_principal(req, &http_principal_nobody);
        return true;
    }
    if (!(route && route->sandbox_tokens) && s_login_cookie(self, wsi, req))
        return true;
    if (route && route->public) {
        s_set_principal(req, &http_principal_nobody);
        return true;
    }
    return false;
}

/* The checks of http.h, in order. Returns CB_ERR_OK (and the route), or the kind of the
 * refusal (its HTTP status comes from cb/error.h's table) and a message. */
static cb_error_kind_t s_vet_kind(http_server_t *self, struct lws *wsi, http_request_t *req,
                                  bool ws, const http_route_t **route, const char **message)
{
    if (!http_check_host(self, s_req_header(req, "Host"))) {
        *message = "this Host is not allowed";
        return CB_ERR_FORBIDDEN;
    }
    if (!http_check_origin(self, s_req_header(req, "Origin"))) {
        *message = "this Origin is not allowed";
        return CB_ERR_FORBIDDEN;
    }
    *route = http_route_find(self, req->path);
    if (!s_authorized(self, wsi, req, ws, *route)) {
        *message = "a valid token is required";
        return CB_ERR_UNAUTHORIZED;
    }
    if (!*route || (ws && !(*route)->on_ws)) {
        *message = ws ? "no WebSocket endpoint at this path" : "no such path";
        return CB_ERR_NOT_FOUND;
    }
    return CB_ERR_OK;
}

/* s_vet_kind as an HTTP status: 0 when the request passes. */
static int s_vet(http_server_t *self, struct lws *wsi, http_request_t *req, bool ws,
                 const http_route_t **route, const char **message)
{
    cb_error_kind_t kind = s_vet_kind(self, wsi, req, ws, route, message);
    return kind == CB_ERR_OK ? 0 : cb_error_kind_http_status(kind);
}

/* Write a JSON error straight from the HTTP (or upgrade) callback. close: announce
 * "Connection: close" (the caller then closes). Returns 0, or -1 when the write failed. */
static int s_write_error(conn_t *c, int status, const char *message, bool close)
{
    struct lws *wsi = c->wsi;
    json_auto_t *j =
        json_pack("{s:s, s:s}", "reason", http_status_reason(status), "message", message);
    cleanup_free char *body = j ? json_dumps(j, JSON_COMPACT) : NULL;
    if (!body)
        return -1;
    size_t blen = strlen(body);
    unsigned char buf[LWS_PRE + 1024 + 512];
    unsigned char *start = buf + LWS_PRE, *p = start, *end = buf + sizeof(buf) - 1;
    if (lws_add_http_header_status(wsi, (unsigned int)status, &p, end) ||
        lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE,
                                     (const unsigned char *)"application/json", 16, &p, end) ||
        (status == 401 &&
         lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_WWW_AUTHENTICATE,
                                      (const unsigned char *)"Bearer", 6, &p, end)) ||
        (close && lws_add_http_header_by_token(wsi, WSI_TOKEN_CONNECTION,
                                               (const unsigned char *)"close", 5, &p, end)) ||
        lws_add_http_header_content_length(wsi, blen, &p, end) ||
        lws_finalize_write_http_header(wsi, start, &p, end))
        return -1;
    if (!c->is_head && blen > sizeof(buf) - LWS_PRE)
        return -1;
    if (!c->is_head) {
        memcpy(start, body, blen);
        if (lws_write(wsi, start, blen, LWS_WRITE_HTTP_FINAL) != (int)blen)
            return -1;
    }
    return 0;
}

/* Answer an error for a plain HTTP request, then either wait for the next request or, when a
 * body is still coming, drop it and close. Returns the callback's result. */
static int s_http_fail(conn_t *c, const http_request_t *req, int status, const char *message,
                       bool body_pending)
{
    s_post_log(c->server, req ? req->method : NULL, req ? req->path : NULL, status, message);
    if (s_write_error(c, status, message, body_pending || c->close_after) < 0)
        return -1;
    http_request_free(c->req);
    c->req = NULL;
    cb_buf_free(&c->body);
    http_chunked_destroy(&c->dechunk);
    if (body_pending) {
        c->state = C_DISCARD;
        c->discarded = 0;
        lws_set_timeout(c->wsi, PENDING_TIMEOUT_HTTP_CONTENT, 5);
        if (c->te_body) { /* no end lws would find: dropped until the client pauses */
            c->body_until = lws_now_usecs() + DISCARD_IDLE_US;
            if (!c->id)
                s_conn_assign_id(c); /* so that s_peek_waiting sees it */
        }
        return 0;
    }
    c->state = C_IDLE;
    return lws_http_transaction_completed(c->wsi) ? -1 : 0;
}

static int s_dispatch(conn_t *c, http_msg_kind_t kind)
{
    http_server_t *self = c->server;
    s_conn_assign_id(c);
    http_msg_t *msg = http_msg_new(kind, c->id, NULL, 0);
    c->req->id = c->id;
    msg->req = steal_pointer(&c->req);
    if (kind == HM_WS_OPEN) {
        /* lws binds its own copy of the protocol table: compare names, not pointers. */
        const struct lws_protocols *p = lws_get_protocol(c->wsi);
        if (p && p->name && strcmp(p->name, s_default_protocol) != 0)
            msg->text = cb_xstrdup(p->name);
        c->state = C_WS;
    } else {
        c->state = C_WAIT;
    }
    /* The handler may take minutes; lws must not time the request out meanwhile. */
    lws_set_timeout(c->wsi, NO_PENDING_TIMEOUT, 0);
    s_post(self, msg);
    return 0;
}

/* A request for a sandbox's port on a keep-alive connection we hold: the front door forwards
 * only a connection's first request. Closing without an answer is what a client sees when a
 * server drops an idle keep-alive connection, and browsers and HTTP libraries then send the
 * request again on a new connection, which the front door forwards. */
static bool s_wants_front_door(const http_request_t *req)
{
    return http_fwd_shaped(req->path, s_req_header(req, "Host"));
}

/* Transfer-Encoding's value says chunked, and nothing else. */
static bool s_te_chunked(const char *te)
{
    while (*te == ' ' || *te == '\t')
        te++;
    size_t n = strlen(te);
    while (n && (te[n - 1] == ' ' || te[n - 1] == '\t'))
        n--;
    return n == 7 && strncasecmp(te, "chunked", 7) == 0;
}

/* How long a chunked body may go without a byte: the head's deadline. */
static lws_usec_t s_body_idle_us(const http_server_t *self)
{
    return (lws_usec_t)self->head_timeout_ms * 1000;
}

static int s_on_http(http_server_t *self, conn_t *c)
{
    struct lws *wsi = c->wsi;
    char *uri = NULL;
    int urilen = 0;
    int meth = lws_http_get_uri_and_method(wsi, &uri, &urilen);
    c->is_head = meth == LWSHUMETH_HEAD;
    c->chunked = false;
    /* A client that says it closes after this request is told so in the answer (a chunked
     * request the front door rewrote always says it). */
    char conn_s[16] = "";
    c->close_after = lws_hdr_copy(wsi, conn_s, sizeof(conn_s), WSI_TOKEN_CONNECTION) > 0 &&
                     strcasecmp(conn_s, "close") == 0;

    /* Present is decided by length, so that a value too long to copy still counts (and is
     * then refused as malformed, or as not "chunked"). */
    char clen_s[32] = "";
    bool has_clen = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0;
    if (has_clen && lws_hdr_copy(wsi, clen_s, sizeof(clen_s), WSI_TOKEN_HTTP_CONTENT_LENGTH) < 0)
        clen_s[0] = '-';
    char *end = NULL;
    unsigned long long clen = has_clen ? strtoull(clen_s, &end, 10) : 0;
    char te[64] = "";
    bool has_te = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0;
    if (has_te && lws_hdr_copy(wsi, te, sizeof(te), WSI_TOKEN_HTTP_TRANSFER_ENCODING) < 0)
        te[0] = '\0';
    c->te_body = has_te;
    c->body_until = 0;
    bool body_pending = clen > 0 || has_te;

    if (meth < 0 || meth >= (int)(sizeof(s_method_names) / sizeof(s_method_names[0])) ||
        meth == LWSHUMETH_CONNECT)
        return s_http_fail(c, NULL, 405, "method not allowed", body_pending);
    if (has_clen && has_te) /* two framings: a smuggling attempt, or a broken client */
        return s_http_fail(c, NULL, 400, "both Content-Length and Transfer-Encoding", true);
    if (has_clen && (!end || *end || clen_s[0] == '-'))
        return s_http_fail(c, NULL, 400, "malformed Content-Length", true);
    c->req = s_request_build(self, wsi, s_method_names[meth]);
    if (s_wants_front_door(c->req))
        return -1;
    if (c->req->bad)
        return s_http_fail(c, c->req, 400, "NUL in the path, the query or a header", body_pending);
    const http_route_t *route = NULL;
    const char *message = NULL;
    int status = s_vet(self, wsi, c->req, false, &route, &message);
    if (status)
        return s_http_fail(c, c->req, status, message, body_pending);
    if (has_te && !s_te_chunked(te))
        return s_http_fail(c, c->req, 411,
                           "a request body needs Content-Length or Transfer-Encoding: chunked "
                           "alone",
                           true);
    if (clen > self->max_body)
        return s_http_fail(c, c->req, 413, "request body too large", body_pending);
    c->req->route = route;
    cb_buf_clear(&c->body);
    if (has_te) {
        /* lws passes the framing on as the body and never ends it: the decoder finds the end,
         * and what the client sent after it is not read, so the connection closes after the
         * answer (which says so). A client that stops sending is closed by the timeout. */
        http_chunked_destroy(&c->dechunk);
        c->dechunk = http_chunked_new(self->max_body);
        c->close_after = true;
        c->state = C_BODY;
        c->body_until = lws_now_usecs() + s_body_idle_us(self);
        s_conn_assign_id(c); /* s_peek_waiting looks at it while the body comes */
        return 0;
    }
    if (body_pending) {
        c->state = C_BODY;
        return 0;
    }
    return s_dispatch(c, HM_REQUEST);
}

static int s_on_body_done(conn_t *c);

static int s_on_body(http_server_t *self, conn_t *c, const void *in, size_t len)
{
    if (c->state == C_DISCARD) {
        if (c->body_until)
            c->body_until = lws_now_usecs() + DISCARD_IDLE_US;
        c->discarded += len;
        return c->discarded > DISCARD_MAX ? -1 : 0;
    }
    if (c->state != C_BODY)
        return 0;
    if (c->dechunk) {
        size_t used = 0;
        int rc = http_chunked_feed(c->dechunk, in, len, &used);
        if (rc == 413)
            return s_http_fail(c, c->req, 413, "request body too large", true);
        if (rc != 0 && rc != 1)
            return s_http_fail(c, c->req, 400, "a malformed chunked request body", true);
        if (rc == 0) {
            c->body_until = lws_now_usecs() + s_body_idle_us(self);
            return 0;
        }
        cb_buf_free(&c->body);
        c->body.data = http_chunked_take_body(c->dechunk, &c->body.len);
        c->body.cap = c->body.len;
        http_chunked_destroy(&c->dechunk);
        return s_on_body_done(c);
    }
    if (c->body.len + len > self->max_body)
        return s_http_fail(c, c->req, 413, "request body too large", true);
    cb_buf_append(&c->body, in, len);
    return 0;
}

static int s_on_body_done(conn_t *c)
{
    if (c->state == C_DISCARD)
        return -1; /* we said "Connection: close" */
    if (c->state != C_BODY)
        return 0;
    if (c->dechunk) /* lws ended the body before the chunked framing did */
        return s_http_fail(c, c->req, 400, "a chunked request body cut short", true);
    http_request_t *req = c->req;
    if (c->body.data) {
        req->body = steal_pointer(&c->body.data);
        req->body_len = c->body.len;
    }
    c->body = (cb_buf_t){0};
    return s_dispatch(c, HM_REQUEST);
}

/* A WebSocket upgrade, while an HTTP answer is still possible. >0: answered (lws closes). */
static int s_on_upgrade(http_server_t *self, conn_t *c)
{
    struct lws *wsi = c->wsi;
    c->is_head = false;
    http_request_t *req = s_request_build(self, wsi, "GET");
    if (!req || s_wants_front_door(req)) {
        http_request_free(req);
        return -1;
    }
    const http_route_t *route = NULL;
    const char *message = "NUL in the path, the query or a header";
    int status = req->bad ? 400 : s_vet(self, wsi, req, true, &route, &message);
    const char *offered = s_req_header(req, "Sec-WebSocket-Protocol");
    if (!status && offered && *offered) {
        /* lws binds a subprotocol by exact name and hangs up when none matches: say why. */
        bool known = false;
        cleanup_free char *list = cb_xstrdup(offered);
        char *save = NULL;
        for (char *t = strtok_r(list, ", \t", &save); t && !known;
             t = strtok_r(NULL, ", \t", &save))
            for (size_t i = 0; i < self->subprotocols.n; i++)
                if (strcmp(t, self->subprotocols.v[i]) == 0)
                    known = true;
        if (!known) {
            status = 400;
            message = "none of the offered WebSocket subprotocols is supported";
        }
    }
    if (status) {
        s_post_log(self, "GET(ws)", req->path, status, message);
        http_request_free(req);
        if (s_write_error(c, status, message, true) < 0)
            return -1;
        return 1;
    }
    req->route = route;
    http_request_free(c->req);
    c->req = req;
    c->state = C_UPGRADE;
    return 0;
}

static int s_on_receive(http_server_t *self, conn_t *c, const void *in, size_t len)
{
    if (c->state != C_WS)
        return 0;
    if (!c->in_message) {
        c->in_message = true;
        c->ws_binary = lws_frame_is_binary(c->wsi);
        cb_buf_clear(&c->wsmsg);
    }
    if (c->wsmsg.len + len > self->max_ws) {
        static const char why[] = "message too large";
        lws_close_reason(c->wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, (unsigned char *)why,
                         sizeof(why) - 1);
        return -1;
    }
    if (len)
        cb_buf_append(&c->wsmsg, in, len);
    if (!lws_is_final_fragment(c->wsi))
        return 0;
    c->in_message = false;
    http_msg_t *msg = cb_xcalloc(1, sizeof(*msg));
    msg->kind = HM_WS_MESSAGE;
    msg->id = c->id;
    msg->flag = c->ws_binary;
    /* Hand the buffer over rather than copy it; "" for an empty message. */
    if (c->wsmsg.data) {
        msg->buf = msg->data = (unsigned char *)steal_pointer(&c->wsmsg.data);
        msg->len = c->wsmsg.len;
        c->wsmsg = (cb_buf_t){0};
    } else {
        msg->buf = msg->data = cb_xcalloc(1, 1);
    }
    s_post(self, msg);
    return 0;
}

/* ---- writing -------------------------------------------------------------------------------- */

static http_msg_t *s_out_pop(conn_t *c)
{
    http_msg_t *m = c->out_head;
    if (m) {
        c->out_head = m->next;
        if (!c->out_head)
            c->out_tail = NULL;
    }
    return m;
}

static int s_write_head(conn_t *c, http_msg_t *m)
{
    struct lws *wsi = c->wsi;
    size_t need = 512 + (m->text ? strlen(m->text) : 0);
    for (char **h = m->headers; h && *h; h++)
        need += strlen(*h) + 8;
    cleanup_free unsigned char *buf = cb_xmalloc(LWS_PRE + need);
    unsigned char *start = buf + LWS_PRE, *p = start, *end = start + need - 1;
    int status = m->status;
    bool bodyless = status < 200 || status == 204 || status == 304;
    c->chunked = m->flag && !bodyless;
    if (lws_add_http_header_status(wsi, (unsigned int)status, &p, end))
        return -1;
    if (m->text && *m->text && !bodyless &&
        lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE, (unsigned char *)m->text,
                                     (int)strlen(m->text), &p, end))
        return -1;
    for (char **h = m->headers; h && h[0] && h[1]; h += 2) {
        cleanup_free char *name = cb_strdup_printf("%s:", h[0]);
        if (lws_add_http_header_by_name(wsi, (unsigned char *)name, (unsigned char *)h[1],
                                        (int)strlen(h[1]), &p, end))
            return -1;
    }
    if (c->chunked) {
        if (lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING,
                                         (unsigned char *)"chunked", 7, &p, end))
            return -1;
    } else if (!bodyless && lws_add_http_header_content_length(wsi, m->len, &p, end)) {
        return -1;
    }
    if (c->close_after && lws_add_http_header_by_token(wsi, WSI_TOKEN_CONNECTION,
                                                       (unsigned char *)"close", 5, &p, end))
        return -1;
    if (lws_finalize_write_http_header(wsi, start, &p, end))
        return -1;
    return 0;
}

static int s_write_data(conn_t *c, http_msg_t *m)
{
    if (c->is_head || m->len == 0)
        return 0;
    unsigned char *p = m->data;
    size_t n = m->len;
    if (c->chunked) {
        char line[24];
        int hl = snprintf(line, sizeof(line), "%zx\r\n", m->len);
        p -= hl;
        memcpy(p, line, (size_t)hl);
        memcpy(m->data + m->len, "\r\n", 2);
        n += (size_t)hl + 2;
    }
    /* lws keeps whatever the socket does not take and holds WRITEABLE back until it is out. */
    if (lws_write(c->wsi, p, n, LWS_WRITE_HTTP) < 0)
        return -1;
    c->written += m->len;
    return 0;
}

static int s_on_http_writeable(conn_t *c)
{
    if (c->state != C_WAIT)
        return 0;
    http_msg_t *m;
    while ((m = s_out_pop(c))) {
        int rc = 0;
        bool done = false;
        switch (m->kind) {
        case HM_HEAD: rc = s_write_head(c, m); break;
        case HM_DATA: rc = s_write_data(c, m); break;
        case HM_END:
            if (c->chunked && !c->is_head) {
                unsigned char buf[LWS_PRE + 8];
                memcpy(buf + LWS_PRE, "0\r\n\r\n", 5);
                rc = lws_write(c->wsi, buf + LWS_PRE, 5, LWS_WRITE_HTTP_FINAL) < 0 ? -1 : 0;
            }
            done = true;
            break;
        default: break;
        }
        http_msg_free(m);
        if (rc < 0)
            return -1;
        if (done) {
            s_flush_written(c);
            s_conn_forget_id(c);
            s_out_clear(c);
            c->state = C_IDLE;
            c->chunked = false;
            if (c->close_after)
                return -1; /* lws flushes what it holds before closing */
            return lws_http_transaction_completed(c->wsi) ? -1 : 0;
        }
        if (lws_send_pipe_choked(c->wsi)) {
            lws_callback_on_writable(c->wsi);
            return 0;
        }
    }
    s_flush_written(c);
    return 0;
}

static int s_on_ws_writeable(conn_t *c)
{
    if (c->state != C_WS)
        return 0;
    http_msg_t *m;
    while ((m = s_out_pop(c))) {
        if (m->kind == HM_WS_CLOSE) {
            c->owner_gone = !m->flag;
            size_t rlen = m->text ? strlen(m->text) : 0;
            lws_close_reason(c->wsi, (enum lws_close_status)m->status, (unsigned char *)m->text,
                             rlen > 123 ? 123 : rlen);
            http_msg_free(m);
            s_flush_written(c);
            return -1;
        }
        if (m->kind == HM_WS_SEND) {
            int r = lws_write(c->wsi, m->data, m->len, m->flag ? LWS_WRITE_BINARY : LWS_WRITE_TEXT);
            c->written += m->len;
            http_msg_free(m);
            if (r < 0)
                return -1;
        } else {
            http_msg_free(m);
        }
        if (lws_send_pipe_choked(c->wsi)) {
            lws_callback_on_writable(c->wsi);
            return 0;
        }
    }
    s_flush_written(c);
    return 0;
}

/* Commands from the caller's thread, for connections we may or may not still have. */
static void s_drain_commands(http_server_t *self)
{
    http_msg_t *m = http_msgq_take_all(&self->to_lws);
    while (m) {
        http_msg_t *next = m->next;
        m->next = NULL;
        if (m->kind == HM_ADOPT) {
            /* A connection the front door read the head of and left untouched. On failure
             * lws closes the fd itself. */
            struct lws_vhost *vh = lws_get_vhost_by_name(self->ctx, "cellblock");
            int fd = m->status;
            m->status = -1;
            if (!vh)
                close(fd);
            if (!vh || !lws_adopt_socket_vhost(vh, fd))
                s_post_log(self, "-", "-", 0, "a connection could not be adopted");
            http_msg_free(m);
            m = next;
            continue;
        }
        conn_t *c = http_idmap_get(&self->conns, m->id);
        if (!c) {
            http_msg_free(m);
        } else if (m->kind == HM_ABORT) {
            http_msg_free(m);
            c->owner_gone = true;
            lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        } else {
            if (m->kind == HM_WS_CLOSE) {
                if (m->flag)
                    s_out_clear(c); /* overflow: what is queued will never go */
                else
                    c->owner_gone = true;
                /* A peer that reads nothing never lets the close frame out: give it a while. */
                lws_set_timeout(c->wsi, PENDING_TIMEOUT_CLOSE_SEND, m->flag ? 5 : 30);
            }
            if (c->out_tail)
                c->out_tail->next = m;
            else
                c->out_head = m;
            c->out_tail = m;
            lws_callback_on_writable(c->wsi);
        }
        m = next;
    }
}

/* ---- the callback --------------------------------------------------------------------------- */

static int s_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                      size_t len)
{
    struct lws_context *ctx = wsi ? lws_get_context(wsi) : NULL;
    http_server_t *self = ctx ? lws_context_user(ctx) : NULL;
    if (!self)
        return 0;
    conn_t *c = NULL;

    switch (reason) {
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED: s_drain_commands(self); return 0;

    case LWS_CALLBACK_SERVER_NEW_CLIENT_INSTANTIATED:
        if (self->nconns >= self->max_conns) {
            s_post_log(self, "-", "-", 0, "connection refused: max_connections reached");
            return -1;
        }
        s_conn_get(self, wsi);
        return 0;

    case LWS_CALLBACK_HTTP:
        c = s_conn_get(self, wsi);
        if (c->state != C_IDLE) /* lws gave us a new request while one is open: refuse */
            return -1;
        return s_on_http(self, c);

    case LWS_CALLBACK_HTTP_BODY:
        if (!(c = lws_get_opaque_user_data(wsi)))
            return -1;
        return s_on_body(self, c, in, len);

    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        if (!(c = lws_get_opaque_user_data(wsi)))
            return -1;
        return s_on_body_done(c);

    case LWS_CALLBACK_HTTP_WRITEABLE:
        if (!(c = lws_get_opaque_user_data(wsi)))
            return 0;
        return s_on_http_writeable(c);

    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        c = s_conn_get(self, wsi);
        if (!in || strcmp((const char *)in, "websocket") != 0) {
            s_write_error(c, 400, "only WebSocket upgrades are supported", true);
            return 1;
        }
        return s_on_upgrade(self, c);

    case LWS_CALLBACK_ESTABLISHED:
        if (!(c = lws_get_opaque_user_data(wsi)) || c->state != C_UPGRADE || !c->req)
            return -1;
        return s_dispatch(c, HM_WS_OPEN);

    case LWS_CALLBACK_RECEIVE:
        if (!(c = lws_get_opaque_user_data(wsi)))
            return -1;
        return s_on_receive(self, c, in, len);

    case LWS_CALLBACK_SERVER_WRITEABLE:
        if (!(c = lws_get_opaque_user_data(wsi)))
            return 0;
        return s_on_ws_writeable(c);

    case LWS_CALLBACK_WSI_DESTROY:
        if ((c = lws_get_opaque_user_data(wsi)))
            s_conn_destroy(c);
        return 0;

    default: return 0;
    }
}

/* ---- finding clients that left while their request waits ---------------------------------- */

typedef struct {
    lws_sorted_usec_list_t sul;
    http_server_t *self;
} peek_timer_t;

#define PEEK_INTERVAL_US (200 * LWS_US_PER_MS)

/* lws 4.1 does not read an h1 connection while a transaction is open, so it never sees the
 * end-of-file of a client that left while its request waits or its stream is open (it even
 * spins on that POLLIN; and lws_rx_flow_control cannot help: a flow-controlled h1 wsi gets no
 * WRITEABLE either). So five times a second we look at those sockets ourselves: end-of-file
 * or an error means the client is gone (one that half-closes after its request counts as gone
 * too), and the connection is closed, which tells the handler. */
static void s_peek_waiting(lws_sorted_usec_list_t *sul)
{
    peek_timer_t *timer = lws_container_of(sul, peek_timer_t, sul);
    http_server_t *self = timer->self;
    size_t n = 0;
    cleanup_free uint64_t *ids = http_idmap_ids(&self->conns, &n);
    for (size_t i = 0; i < n; i++) {
        conn_t *c = http_idmap_get(&self->conns, ids[i]);
        if (c && c->body_until && (c->state == C_BODY || c->state == C_DISCARD) &&
            lws_now_usecs() >= c->body_until) {
            lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
            continue; /* a chunked body that stopped coming, or the rest of a refused one */
        }
        if (!c || c->state != C_WAIT)
            continue;
        char b;
        ssize_t r = recv(lws_get_socket_fd(c->wsi), &b, 1, MSG_PEEK | MSG_DONTWAIT);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
            lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    }
    lws_sul_schedule(self->ctx, 0, sul, s_peek_waiting, PEEK_INTERVAL_US);
}

/* ---- the thread ----------------------------------------------------------------------------- */

static void *s_thread(void *arg)
{
    http_server_t *self = arg;
    struct lws_context *ctx = self->ctx;
    while (!atomic_load(&self->stop))
        if (lws_service(ctx, 0) < 0)
            break;
    return NULL;
}

int http_lws_start(http_server_t *self, cb_error_t *err)
{
    size_t np = 1 + self->subprotocols.n + 1;
    struct lws_protocols *protocols = cb_xcalloc(np, sizeof(*protocols));
    lws_retry_bo_t *retry = cb_xcalloc(1, sizeof(*retry));
    /* protocols[0] serves HTTP and WebSockets that ask for no subprotocol. */
    protocols[0].name = s_default_protocol;
    protocols[0].callback = s_callback;
    for (size_t i = 0; i < self->subprotocols.n; i++) {
        protocols[i + 1].name = self->subprotocols.v[i];
        protocols[i + 1].callback = s_callback;
    }
    retry->secs_since_valid_ping = 30;
    retry->secs_since_valid_hangup = 45;
    self->protocols = protocols;
    self->retry = retry;

    lws_set_log_level(cb_log_level_current <= CB_LOG_DEBUG ? LLL_ERR | LLL_WARN : LLL_ERR, NULL);

    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    /* The front door (frontdoor.c) owns the listening socket and hands connections over. */
    info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
    info.protocols = protocols;
    info.user = self;
    info.vhost_name = "cellblock";
    info.max_http_header_data = HEADER_MAX;
    info.keepalive_timeout = KEEPALIVE_SECS;
    info.timeout_secs = 30;
    info.retry_and_idle_policy = retry;
    /* VALIDATE_UTF8: lws closes a WebSocket with 1007 when a text message is not UTF-8 (RFC
     * 6455 8.1), checked across fragments and at the message's end. */
    info.options = LWS_SERVER_OPTION_FAIL_UPON_UNABLE_TO_BIND |
                   LWS_SERVER_OPTION_DISABLE_OS_CA_CERTS | LWS_SERVER_OPTION_VALIDATE_UTF8;
    if (!self->bind_v6)
        info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
    info.gid = -1;
    info.uid = -1;
    struct lws_context *ctx = lws_create_context(&info);
    if (!ctx)
        return cb_error_make(err, EADDRINUSE, "listen on %s:%d", self->bind_host, self->port);
    if (!lws_get_vhost_by_name(ctx, "cellblock")) {
        lws_context_destroy(ctx);
        return cb_error_make(err, 0, "start the HTTP server: no vhost");
    }
    self->ctx = ctx;
    peek_timer_t *timer = cb_xcalloc(1, sizeof(*timer));
    timer->self = self;
    self->peek = timer;
    lws_sul_schedule(ctx, 0, &timer->sul, s_peek_waiting, PEEK_INTERVAL_US);
    int rc = pthread_create(&self->thread, NULL, s_thread, self);
    if (rc != 0) {
        lws_context_destroy(ctx);
        self->ctx = NULL;
        return cb_error_make(err, rc, "start the HTTP server thread");
    }
    self->thread_running = true;
    return 0;
}

void http_lws_wake(http_server_t *self)
{
    if (self->ctx)
        lws_cancel_service(self->ctx);
}

void http_lws_stop(http_server_t *self)
{
    if (self->thread_running) {
        atomic_store(&self->stop, true);
        lws_cancel_service(self->ctx);
        pthread_join(self->thread, NULL);
        self->thread_running = false;
    }
    if (self->ctx && self->peek)
        lws_sul_cancel(&((peek_timer_t *)self->peek)->sul);
    if (self->ctx) {
        /* Runs the wsi destroy callbacks here, on this thread, now that the server thread is
         * gone; what they post to to_main is freed with the queue. */
        lws_context_destroy(self->ctx);
        self->ctx = NULL;
    }
    http_idmap_clear(&self->conns);
    free(self->peek);
    self->peek = NULL;
}
