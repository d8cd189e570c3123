/* http/http.h: cellblock's HTTP and WebSocket server.
 *
 * libwebsockets parses HTTP and frames WebSockets. Debian's libwebsockets is built without
 * external-poll support, so it cannot be driven from the gateway's zloop; it runs its own
 * service loop on a thread of this module, and that thread touches nothing but libwebsockets
 * and this module's queues. Everything this header exposes runs on the caller's thread, from
 * the caller's zloop: a request, a WebSocket message or a closed connection arrives as a
 * callback there, and what the caller answers is queued to the server thread and written as
 * the socket accepts it. A handler therefore may answer at once or much later (an execution
 * that runs for minutes), and never blocks the loop.
 *
 * Checked on the server thread, before anything reaches a handler (so a handler sees only
 * requests that passed):
 *   - the size of headers (16 KiB), of a body (max_body_bytes: 413) and of one WebSocket
 *     message (max_ws_message_bytes: close 1009); a body may come with Content-Length or
 *     Transfer-Encoding: chunked (decoded before the handler sees it; docs/http.md);
 *   - Host and Origin against DNS rebinding (403): Host must be an IP literal, "localhost", or
 *     a name in allowed_hosts; an Origin, when sent, must be this server's own origin (allowed
 *     host and our port) or one listed in allowed_origins;
 *   - the token (401 with WWW-Authenticate), unless no_auth: "Authorization: Bearer T",
 *     "Authorization: token T" or "X-API-Key: T" (E2B's SDKs), and for WebSocket upgrades
 *     also "?token=T"; T the server's own token (the admin's) or a tenant's
 *     (http_config_t.tenants), compared in constant time against all of them. On a route that
 *     takes sandbox tokens (http_server_route_sandbox_tokens), a sandbox's own token passes
 *     as well; on every other route, a login cookie (http_login_cookie). Whose credential it
 *     was is the request's principal (http_request_principal);
 *   - the route: a path with no route gets 404; a WebSocket upgrade on a route without an
 *     on_ws handler gets 404 too.
 * Errors the module writes itself are JSON, {"reason": "...", "message": "..."}, like
 * http_respond_error's.
 */
#ifndef HTTP_HTTP_H
#define HTTP_HTTP_H

#include <czmq.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cb/error.h"
#include "cb/principal.h"
#include "egress/egress.h"

typedef struct http_server http_server_t;
typedef struct http_request http_request_t;
typedef struct http_ws http_ws_t;

/* One tenant's token (a tokens file's line: docs/security.md, "Tenants"). */
typedef struct {
    const char *token;
    const char *tenant; /* cb_tenant_name_ok */
    bool admin;
} http_tenant_token_t;

/* Read a tokens file, or every file of a tokens directory (docs/security.md, "Tenants": the
 * format, and why a file others may read or write, not ours, or a symlink is refused). On
 * failure err names the file and line. *tokens: Caller owns return value (http_tokens_free);
 * none is not an error. */
int http_tokens_load(const char *path, http_tenant_token_t **tokens, size_t *count,
                     cb_error_t *err);
/* Frees (and wipes) what http_tokens_load made. Accepts NULL; nulls the caller's pointer. */
void http_tokens_free(http_tenant_token_t **tokens, size_t count);
/* Whether a token's text is acceptable: 16 to 256 printable ASCII characters, no blanks. */
bool http_token_text_ok(const char *token, size_t len);

typedef struct {
    const char *listen;                 /* "HOST:PORT"; HOST an IP literal (IPv6 in brackets) or
                                           "localhost"; PORT 0 picks a free one. NULL:
                                           "127.0.0.1:8888" */
    const char *token;                  /* NULL or "": generate one (unless no_auth); the admin's
                                           (CB_TENANT_ADMIN) */
    const http_tenant_token_t *tenants; /* more tokens, each naming its tenant (copied) */
    size_t tenant_count;
    bool no_auth;                     /* refused by http_server_new unless HOST is loopback */
    const char *const *allowed_hosts; /* extra Host names accepted (NULL-terminated; may be NULL) */
    const char *const *allowed_origins; /* extra Origins accepted, "scheme://host[:port]" */
    size_t max_body_bytes;              /* 0: 16 MiB */
    size_t max_ws_message_bytes;        /* 0: 16 MiB */
    size_t max_connections;             /* 0: 1024; beyond it new connections are closed */
    size_t max_queued_bytes;            /* 0: 64 MiB: output waiting for one slow client; beyond
                                           it the connection is closed (a WebSocket with 1008) */
    int head_timeout_ms;                /* 0: 10 s: a client must send its request head this
                                           fast, or the front door closes it */
} http_config_t;

/* A server, not yet listening. Caller owns return value. The loop is borrowed and must outlive
 * the server; every callback runs on it. */
http_server_t *http_server_new(zloop_t *loop, const http_config_t *cfg, cb_error_t *err);

/* Close every connection (the owners of open requests and WebSockets get their on_close first),
 * stop the server thread, free everything. Not from inside one of the server's callbacks.
 * Accepts NULL; nulls the caller's pointer. */
void http_server_destroy(http_server_t **self_p);

/* ---- routes --------------------------------------------------------------------------------- */

/* A request that passed the checks above. req is the handler's until it answers (http_respond*,
 * or http_stream_end after http_stream_begin), or until its on_close runs. */
typedef void(http_request_fn)(http_request_t *req, void *arg);

/* A WebSocket that passed the checks and is open. ws is the handler's until it calls
 * http_ws_close or its on_close runs; a handler that wants nothing of it closes it at once
 * (with a code and reason: an unknown kernel, say). */
typedef void(http_ws_open_fn)(http_ws_t *ws, void *arg);

/* Route paths equal to prefix or under it ("/api" takes "/api" and "/api/kernels", not
 * "/apix") to on_request, and WebSocket upgrades to on_ws (NULL: no WebSockets there). The
 * longest matching prefix wins. Only before http_server_start. */
int http_server_route(http_server_t *self, const char *prefix, http_request_fn *on_request,
                      http_ws_open_fn *on_ws, void *arg, cb_error_t *err);

/* Let requests under the route prefix (registered already) pass the token check with a
 * sandbox token instead of the server's: "X-Access-Token: S" or "E2B-Traffic-Access-Token: S"
 * where S is http_sandbox_token of the sandbox named by the request's "E2b-Sandbox-Id"
 * header. The handler reads which sandbox that was with http_request_sandbox and must serve
 * nothing but that sandbox. Only before http_server_start. */
int http_server_route_sandbox_tokens(http_server_t *self, const char *prefix, cb_error_t *err);

/* A sandbox's token: a capability for that sandbox alone, what E2B calls the envd access token
 * and the traffic access token. 64 hex digits of HMAC-SHA256 under a key made when the server
 * was, so it is valid while this server runs and names no other sandbox. Caller owns return
 * value. */
char *http_sandbox_token(const http_server_t *self, const char *sandbox_id);

/* Serve requests under the route prefix (registered already) without any credentials: the
 * page's own assets, which hold no data. Host and Origin are still checked. Only before
 * http_server_start. */
int http_server_route_public(http_server_t *self, const char *prefix, cb_error_t *err);

/* Accept the WebSocket subprotocol name (e.g. "v1.kernel.websocket.jupyter.org") when a client
 * offers it. A client that offers none is accepted with none; one that offers only names not
 * registered here is refused with 400 (libwebsockets 4.1 cannot accept it without one). Only
 * before http_server_start. */
int http_server_subprotocol(http_server_t *self, const char *name, cb_error_t *err);

/* Bind and start serving. */
int http_server_start(http_server_t *self, cb_error_t *err);

/* The address bound ("127.0.0.1:8888", the real port when 0 was asked); the base URL
 * ("http://127.0.0.1:8888"); the token (NULL with no_auth). Borrowed; valid with the server. */
const char *http_server_address(const http_server_t *self);
const char *http_server_url(const http_server_t *self);
const char *http_server_token(const http_server_t *self);

/* ---- requests ------------------------------------------------------------------------------- */

/* Borrowed; valid with the request. */
const char *http_request_method(const http_request_t *req); /* "GET", "POST", ... */
const char *http_request_path(const http_request_t *req);   /* percent-decoded, no query */
/* A query parameter's decoded value, or NULL. */
const char *http_request_query(const http_request_t *req, const char *name);
/* The n-th value (from 0) of a parameter the query repeats (?state=a&state=b), or NULL. */
const char *http_request_query_nth(const http_request_t *req, const char *name, size_t n);
/* A request header's value, or NULL. name is case-insensitive; the headers kept are Host,
 * Origin, Accept, Accept-Encoding, Content-Type, Content-Encoding, Content-Length, User-Agent,
 * Mcp-Session-Id, MCP-Protocol-Version, Last-Event-ID, Sec-WebSocket-Protocol, and E2B's
 * E2b-Sandbox-Id, E2b-Sandbox-Port, Connect-Protocol-Version, Connect-Timeout-Ms and
 * Keepalive-Ping-Interval (Authorization, X-API-Key and the sandbox tokens are checked on the
 * server thread and not passed on). */
const char *http_request_header(const http_request_t *req, const char *name);
/* The sandbox whose token let the request in (http_server_route_sandbox_tokens), or NULL when
 * the server's token did (or no_auth). Borrowed; valid with the request. */
const char *http_request_sandbox(const http_request_t *req);
/* Who the request acts for: the tenant whose token (or login cookie) let it in. The server's
 * own token, and no_auth, give CB_TENANT_ADMIN as an admin. A sandbox token
 * (http_request_sandbox) gives a principal that owns nothing: the handler serves that sandbox
 * alone. Never NULL for a request a handler sees. Borrowed; valid with the request. */
const cb_principal_t *http_request_principal(const http_request_t *req);
/* The body (NUL-terminated after len bytes, so text can be read in place); "" when none. */
const char *http_request_body(const http_request_t *req, size_t *len);

/* Response headers are a NULL-terminated list of name, value pairs (NULL for none):
 *   (const char *[]){"Mcp-Session-Id", id, "Location", url, NULL} */

/* Answer the whole response at once; req is gone after the call (even when it fails). */
int http_respond(http_request_t *req, int status, const char *content_type,
                 const char *const *headers, const void *body, size_t len);
/* body (borrowed) as application/json. */
int http_respond_json(http_request_t *req, int status, json_t *body, const char *const *headers);
/* {"reason": <status's reason phrase>, "message": message} as application/json. */
int http_respond_error(http_request_t *req, int status, const char *message);
/* A failure as http_respond_error: the status its kind has in cb/error.h's table, its message.
 * The one way a route turns a cb_error_t into a response. */
int http_respond_cb_error(http_request_t *req, const cb_error_t *err);

/* A response written piece by piece (Server-Sent Events): status and headers now, the body in
 * as many writes as wanted (each sent as soon as the socket takes it), then the end. The
 * connection's idle timeout is off while a stream is open. */
int http_stream_begin(http_request_t *req, int status, const char *content_type,
                      const char *const *headers);
int http_stream_write(http_request_t *req, const void *data, size_t len);
/* End the response; req is gone after the call. */
void http_stream_end(http_request_t *req);

/* Called at most once, if the client goes before the response ended; req is freed right
 * after fn returns. */
typedef void(http_close_fn)(http_request_t *req, void *arg);
void http_request_on_close(http_request_t *req, http_close_fn *fn, void *arg);

/* ---- login cookies (the page) --------------------------------------------------------------- */

/* A login cookie for the principal req acts for: the whole value of a Set-Cookie header
 * ("cellblock_login=...; Path=/; HttpOnly; SameSite=Strict; Max-Age=N"), valid for max_age_s
 * (0: 12 hours) while this server runs. A request that carries it passes the token check as
 * that principal on every route but the sandbox-token and forward ones (which keep their own
 * credentials). Its value is the tenant, the role and the expiry under an HMAC keyed with a
 * secret made when the server was; nothing else. Caller owns return value. */
char *http_login_cookie(const http_server_t *self, const http_request_t *req, int max_age_s);
/* The Set-Cookie value that clears the login cookie. Borrowed (a constant). */
const char *http_logout_cookie(void);

/* ---- WebSockets ----------------------------------------------------------------------------- */

/* The upgrade request (path, query, headers). Borrowed; valid with ws. */
const http_request_t *http_ws_request(const http_ws_t *ws);
/* The subprotocol agreed, or NULL. Borrowed; valid with ws. */
const char *http_ws_subprotocol(const http_ws_t *ws);

/* One whole message (fragments joined); data borrowed for the call. */
typedef void(http_ws_message_fn)(http_ws_t *ws, const void *data, size_t len, bool binary,
                                 void *arg);
/* The peer closed or the connection broke; ws is freed right after fn returns. */
typedef void(http_ws_close_fn)(http_ws_t *ws, void *arg);
void http_ws_set_handlers(http_ws_t *ws, http_ws_message_fn *on_message, http_ws_close_fn *on_close,
                          void *arg);

/* Queue one message (text must be UTF-8). -1 when the connection is closing or its queue is
 * over max_queued_bytes (it is then closed, and on_close follows). */
int http_ws_send(http_ws_t *ws, const void *data, size_t len, bool binary);
/* Close with a code (1000 normal, 1008 policy, 1011 server error, 4000-4999 private) and a
 * reason; queued messages are sent first. ws is gone after the call; on_close is not called. */
void http_ws_close(http_ws_t *ws, int code, const char *reason);

/* ---- port forwards (forward.c, frontdoor.c) ------------------------------------------------ */

/* The front door owns the listening socket: it reads each connection's request head (with the
 * head deadline) and hands it to libwebsockets untouched, unless it asks for a port inside a
 * sandbox, either by path, /sandboxes/{id}/ports/{port}/..., or by host, {port}-{id}.localhost.
 * Such a request is checked there (port 1-65535, else 400; the server's token, the port's
 * signed link or its cookie, E2B's X-API-Key with the token or E2B-Traffic-Access-Token with
 * the sandbox's token (http_sandbox_token), else 401; a chunked body: 411), and then handed to
 * the forward handler on the caller's thread, which decides (the sandbox, whether the port is
 * exposed) and answers with http_forward_connect or http_forward_refuse. One request per
 * client connection; the server's token, the sandbox's, the signed link and its cookie are
 * stripped from the head that goes upstream, and "Connection: close" is forced except for a
 * WebSocket upgrade. */
typedef struct http_forward http_forward_t;

/* fwd is the handler's until it answers (exactly once). */
typedef void(http_forward_fn)(http_forward_t *fwd, void *arg);

/* Only before http_server_start; without it, forward requests get 404. */
int http_server_forwards(http_server_t *self, http_forward_fn *fn, void *arg, cb_error_t *err);

/* A handler asked first, for the sandboxes of another layer (E2B's, e2b/ports.c): true when
 * it took fwd (it then answers it, exactly once, as above); false leaves fwd untouched for the
 * handler of http_server_forwards (or a 404 when there is none). Only before
 * http_server_start. */
typedef bool(http_forward_claim_fn)(http_forward_t *fwd, void *arg);
int http_server_forwards_first(http_server_t *self, http_forward_claim_fn *fn, void *arg,
                               cb_error_t *err);

/* Borrowed; valid with fwd. */
const char *http_forward_sandbox(const http_forward_t *fwd);
int http_forward_port(const http_forward_t *fwd);
bool http_forward_is_websocket(const http_forward_t *fwd);
/* Who the forward acts for: the tenant of the token that came with it, or NULL when the
 * port's signed link, its cookie or the sandbox's own token let it in (a capability for that
 * port or sandbox alone). Borrowed; valid with fwd. */
const cb_principal_t *http_forward_principal(const http_forward_t *fwd);

/* Hand the client's connection and upstream_fd (Takes ownership; a non-blocking TCP socket,
 * its connect may be in progress) to the network plane's pump (egress_forward on eg, tied to
 * the sandbox's registration sb, so that its removal closes the forward, and tagged with the
 * port for egress_forward_close): the head goes upstream first, then the request's body, and
 * the answer comes back. A connect that fails or times out answers 502 naming the port.
 * fwd is gone after the call, also on failure (-1 with err: both sockets closed). */
int http_forward_connect(http_forward_t *fwd, egress_t *eg, egress_sandbox_t *sb, int upstream_fd,
                         cb_error_t *err);
/* Answer status with {"reason", "message"} and close. fwd is gone after the call. */
void http_forward_refuse(http_forward_t *fwd, int status, const char *message);

/* A signed link's capability for (sandbox, port) until expires_at (seconds since the epoch):
 * "EXPIRES.HMAC", the value of ?cb_sig= and of the cookie the first visit sets. Keyed with a
 * secret made when the server was. Caller owns return value. */
char *http_forward_sign(const http_server_t *self, const char *sandbox_id, int port,
                        int64_t expires_at);

#endif
