/* http/http_private.h: what the parts of the HTTP module share.
 *
 * The module has three threads (see http.h): the front door (frontdoor.c: the listening socket,
 * request heads, port forwards), the libwebsockets thread (server.c) and the caller's thread
 * (request.c). They share the server struct below, but each field is owned by one thread, as
 * marked (or set before start and read-only after), except the message queues, which are the
 * only thing touched concurrently, under their mutex. Connections are named across the boundary by a
 * 64-bit id, never by pointer, so a message about a connection the other side already
 * forgot is simply dropped. checks.c holds the pure functions the lws thread uses to vet a
 * request (Host, Origin, token, routes), kept apart so they read (and test) on their own. */
#ifndef HTTP_PRIVATE_H
#define HTTP_PRIVATE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cb/util.h"
#include "http/http.h"

/* ---- a map from 64-bit ids to pointers (one per side, never shared) ------------------------- */

typedef struct http_idmap_entry http_idmap_entry_t;
typedef struct {
    http_idmap_entry_t **buckets;
    size_t nbuckets; /* a power of two */
    size_t count;
} http_idmap_t;

void http_idmap_put(http_idmap_t *m, uint64_t id, void *value);
void *http_idmap_get(const http_idmap_t *m, uint64_t id);
void *http_idmap_remove(http_idmap_t *m, uint64_t id); /* the value removed, or NULL */
/* Every id in the map, in a fresh array of *n entries (NULL when empty).
 * Caller owns return value. */
uint64_t *http_idmap_ids(const http_idmap_t *m, size_t *n);
void http_idmap_clear(http_idmap_t *m); /* frees the entries, not the values */

/* ---- messages between the threads ----------------------------------------------------------- */

typedef enum {
    /* server thread → caller's thread */
    HM_REQUEST,    /* req: a request that passed the checks */
    HM_REQ_CLOSED, /* the client went before the response ended */
    HM_WS_OPEN,    /* req: the upgrade request; text: subprotocol or NULL */
    HM_WS_MESSAGE, /* data/len, flag: binary */
    HM_WS_CLOSED,  /* the peer closed, the connection broke, or the queue overflowed */
    HM_WRITTEN,    /* len bytes of this id's output reached the socket */
    HM_LOG,        /* text: a debug line to log on the caller's thread */
    /* caller's thread → server thread */
    HM_HEAD,     /* status, text: content type, headers, flag: chunked, len: content length */
    HM_DATA,     /* data/len */
    HM_END,      /* the response is complete */
    HM_WS_SEND,  /* data/len, flag: binary */
    HM_WS_CLOSE, /* status: close code, text: reason, flag: tell the owner (overflow) */
    HM_ABORT,    /* close the connection now */
    HM_ADOPT,    /* status: a client fd the front door hands to libwebsockets */
    /* front door → caller's thread */
    HM_FORWARD, /* fwd: the forward, with its client fd and the head for upstream */
    /* caller's thread → front door */
    HM_FWD_REFUSE, /* fwd: the forward back (its client fd), status, text: message */
} http_msg_kind_t;

/* Room kept before the payload of an outgoing message: LWS_PRE for libwebsockets, plus the
 * chunk-size line of a chunked response. Kept in sync with server.c by a static assert. */
#define HTTP_MSG_HEADROOM 64

typedef struct http_msg {
    struct http_msg *next;
    http_msg_kind_t kind;
    uint64_t id;
    int status;
    bool flag;
    unsigned char *buf; /* the allocation; data points into it */
    unsigned char
        *data; /* payload: HTTP_MSG_HEADROOM bytes after buf, 2 spare bytes and a NUL after */
    size_t len;
    size_t off; /* server thread: how much of data was written */
    char *text;
    char **headers; /* name, value, ..., NULL */
    http_request_t *req;
    http_forward_t *fwd; /* HM_FORWARD, HM_FWD_REFUSE; freed (its fd closed) if undelivered */
} http_msg_t;

/* A message with room for len payload bytes (copied from data when not NULL). Never NULL. */
http_msg_t *http_msg_new(http_msg_kind_t kind, uint64_t id, const void *data, size_t len);
void http_msg_free(http_msg_t *msg);

typedef struct {
    pthread_mutex_t lock;
    http_msg_t *head, *tail;
} http_msgq_t;

void http_msgq_init(http_msgq_t *q);
void http_msgq_push(http_msgq_t *q, http_msg_t *msg);
http_msg_t *http_msgq_take_all(http_msgq_t *q); /* the whole list, oldest first */
void http_msgq_destroy(http_msgq_t *q);         /* frees what is left */

/* ---- objects and the server ----------------------------------------------------------------- */

typedef struct {
    char *prefix;
    size_t len;
    http_request_fn *on_request;
    http_ws_open_fn *on_ws;
    void *arg;
    bool sandbox_tokens; /* http_server_route_sandbox_tokens */
    bool public;         /* http_server_route_public: no credentials needed */
} http_route_t;

/* A credential the token check knows: the server's own token (first; the admin) and the
 * tenants' (http_config_t.tenants). Read-only once the server is made. */
typedef struct {
    unsigned char digest[32]; /* SHA-256 of the token */
    cb_principal_t who;       /* who.tenant is tenant below */
    char tenant[CB_TENANT_NAME_MAX + 1];
} http_cred_t;

/* The principals that are not a credential's: no_auth's (the admin) and a sandbox token's (a
 * principal that owns nothing; cb_principal_may never matches its empty tenant). */
extern const cb_principal_t http_principal_admin;
extern const cb_principal_t http_principal_nobody;

struct http_request {
    http_server_t *server;
    uint64_t id;
    const http_route_t *route;
    char *method;
    char *path;
    char **query;   /* name, value, ..., NULL */
    char **headers; /* name, value, ..., NULL */
    char *body;
    size_t body_len;
    char *sandbox;      /* the sandbox whose token let it in (http_request_sandbox), or NULL */
    cb_principal_t who; /* http_request_principal; who.tenant is tenant below */
    char tenant[CB_TENANT_NAME_MAX + 1];
    bool bad; /* server thread: a NUL in the decoded path or query */
    /* caller's thread only */
    http_close_fn *on_close;
    void *close_arg;
    bool streaming;
    bool closing; /* in on_close or being destroyed: answers are refused */
    int status;
    size_t queued; /* stream bytes handed to the server thread and not yet written */
};

struct http_ws {
    http_server_t *server;
    uint64_t id;
    http_request_t *req;
    char *subprotocol;
    http_ws_message_fn *on_message;
    http_ws_close_fn *on_close;
    void *arg;
    bool closing; /* overflowed: on_close follows */
    size_t queued;
};

struct http_server {
    /* set before start, read-only after */
    zloop_t *loop;
    char *bind_host; /* the IP literal to bind ("localhost" becomes 127.0.0.1) */
    bool bind_v6;
    int port; /* asked, then bound */
    char *address, *url, *token;
    bool no_auth;
    http_cred_t *creds; /* the tokens: the server's first (when it has one), then tenants' */
    size_t ncreds;
    unsigned char login_key[32]; /* keys the login cookies (never the same as secret) */
    char **allowed_hosts, **allowed_origins;
    size_t max_body, max_ws, max_conns, max_queued;
    http_route_t *routes;
    size_t nroutes;
    cb_strv_t subprotocols;
    void *protocols; /* struct lws_protocols[] */
    void *retry;     /* lws_retry_bo_t */
    bool started;
    int head_timeout_ms;
    unsigned char secret[32]; /* keys the signed links */
    http_forward_fn *on_forward;
    void *forward_arg;
    http_forward_claim_fn *claim_forward; /* asked before on_forward */
    void *claim_arg;

    /* front door thread (frontdoor.c) */
    int listen_fd;
    pthread_t door_thread;
    bool door_running;
    void *door; /* door_t */

    /* server thread */
    void *ctx;  /* struct lws_context */
    void *peek; /* the timer that looks for clients gone while their request waits */
    pthread_t thread;
    bool thread_running;
    atomic_bool stop;
    http_idmap_t conns; /* id → conn */
    size_t nconns;
    uint64_t next_id;

    /* shared, each under its lock */
    http_msgq_t to_lws;
    http_msgq_t to_main;
    int event_fd; /* written by the server thread after pushing to to_main */
    http_msgq_t to_door;
    int door_fd; /* an eventfd, written after pushing to to_door */

    /* caller's thread */
    http_idmap_t reqs; /* id → http_request_t */
    http_idmap_t wss;  /* id → http_ws_t */
    http_idmap_t fwds; /* id → http_forward_t */
    bool polling;
};

struct http_forward {
    http_server_t *server;
    uint64_t id;
    char *sandbox;
    int port;
    bool websocket;
    int fd;                    /* the client's connection, its head already read; -1: handed on */
    char *head;                /* the head that goes upstream */
    uint64_t body_max;         /* the client's bytes after the head that go upstream */
    const cb_principal_t *who; /* http_forward_principal: a credential's (the server's), or NULL */
};

/* request.c: closes fwd->fd if it still has it. Accepts NULL. */
void http_forward_free(http_forward_t *fwd);

/* frontdoor.c: binds the listening socket (the port bound into self->port) and starts the
 * front door thread; the stop joins it and closes every connection it holds. */
int http_door_bind(http_server_t *self, cb_error_t *err);
int http_door_start(http_server_t *self, cb_error_t *err);
void http_door_stop(http_server_t *self);
void http_door_post(http_server_t *self, http_msg_t *msg); /* from the caller's thread */
/* The same thread (server.c) posts to the caller's thread with this. */
void http_post_main(http_server_t *self, http_msg_t *msg);

/* forward.c: the pure parts of a forward, tested on their own. */
typedef struct {
    bool is_forward; /* the head asks for a sandbox's port (by path or by host) */
    int status;      /* 0, or the refusal: 400, 401, 411 */
    const char *why; /* the refusal's message */
    char *sandbox;
    int port;
    bool websocket;
    bool redirect;    /* a valid signed link: answer 302 to location with set_cookie */
    char *location;   /* the clean URL (path and query without cb_sig) */
    char *set_cookie; /* the Set-Cookie value */
    char *head;       /* the head to send upstream */
    size_t head_len;  /* bytes of the client's head (to consume before pumping) */
    uint64_t body_max;
    const cb_principal_t *who; /* the token's principal (the server's); NULL: a capability */
} http_fwd_plan_t;

/* Read a request head. 1: complete (plan filled; is_forward false: a request for
 * libwebsockets), 0: incomplete, -1: not HTTP we understand (let libwebsockets answer it). */
int http_fwd_plan(const http_server_t *self, const char *buf, size_t len, http_fwd_plan_t *plan);
void http_fwd_plan_clear(http_fwd_plan_t *plan);
/* Does a request that libwebsockets got (a later request on a keep-alive connection the front
 * door handed over) ask for a forward? Then it must go back through the front door. */
bool http_fwd_shaped(const char *path, const char *host);
/* A whole response: status line, Content-Type JSON body {reason, message}, Connection: close,
 * and extra header lines (may be NULL, each ending in CRLF). Caller owns return value. */
char *http_fwd_response(int status, const char *message, const char *extra_headers);

/* chunked.c: a chunked request body decoded (libhttp-parser), for server.c: lws passes the
 * framing on as body bytes and does not find the body's end. */
typedef struct http_chunked http_chunked_t;
/* A decoder for a body of at most max_body bytes. Caller owns return value. */
http_chunked_t *http_chunked_new(size_t max_body);
/* Feed the next body bytes as they came. 0: more needed; 1: the body is complete (*used: the
 * bytes taken; the rest is not this request's); 400 (broken framing) or 413 (over max_body):
 * refused, and every later call says so again. */
int http_chunked_feed(http_chunked_t *self, const char *data, size_t len, size_t *used);
size_t http_chunked_body_len(const http_chunked_t *self);
/* The decoded body (*len bytes; NULL when empty), taken out of the decoder. Caller owns return
 * value. */
char *http_chunked_take_body(http_chunked_t *self, size_t *len);
void http_chunked_destroy(http_chunked_t **self_p);

/* server.c: the libwebsockets side. */
int http_lws_start(http_server_t *self, cb_error_t *err);
void http_lws_stop(http_server_t *self);
void http_lws_wake(http_server_t *self); /* after pushing to to_lws */

/* request.c: frees a request (any thread that owns it). */
void http_request_free(http_request_t *req);

/* tokens.c: a tokens file's text (len bytes; docs/security.md, "Tenants"), parsed as
 * http_tokens_load parses one file; name is what errors call it. *tokens: Caller owns return
 * value (http_tokens_free). */
int http_tokens_parse(const char *text, size_t len, const char *name, http_tenant_token_t **tokens,
                      size_t *count, cb_error_t *err);

/* checks.c */
/* Host header value: IP literal (v6 in brackets), "localhost" or an allowed name, then an
 * optional :port. */
bool http_check_host(const http_server_t *self, const char *host);
/* Origin header value, per http.h. */
bool http_check_origin(const http_server_t *self, const char *origin);
/* Authorization header value (may be NULL) and, for WebSockets, the ?token= value: the
 * principal of the token they carry, or NULL. authorization: the header's value as received,
 * auth_len bytes (a NUL inside is part of it). Constant time over the whole set of tokens.
 * no_auth: a token's principal, else the admin. Borrowed; valid with the server. */
const cb_principal_t *http_check_token(const http_server_t *self, const char *authorization,
                                       size_t auth_len, const char *query_token);
void http_token_digest(const char *token, size_t len, unsigned char out[32]);
/* The principal whose token an X-API-Key header's value is, as http_check_token. */
const cb_principal_t *http_check_api_key(const http_server_t *self, const char *value, size_t len);
/* The credential whose token is exactly the len bytes given, or NULL: every token's digest is
 * compared, without an early exit, so neither which one matched nor the length leaks. */
const http_cred_t *http_cred_find(const http_server_t *self, const char *given, size_t len);
/* The principal a Cookie header's value logs in as (http_login_cookie's, unexpired, under this
 * server's key), copied into who and tenant; false when none does. The MAC is checked, in
 * constant time, before anything else of the value is read. */
bool http_login_cookie_ok(const http_server_t *self, const char *cookie_header, cb_principal_t *who,
                          char tenant[CB_TENANT_NAME_MAX + 1]);
/* Whether value (len bytes) is http_sandbox_token(sandbox_id); constant time. */
bool http_sandbox_token_ok(const http_server_t *self, const char *sandbox_id, const char *value,
                           size_t len);
const http_route_t *http_route_find(const http_server_t *self, const char *path);
const char *http_status_reason(int status);

#endif
