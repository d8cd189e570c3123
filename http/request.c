/* http/request.c: the HTTP module on the caller's thread.
 *
 * Everything in http.h is implemented here and runs on the caller's thread: configuration,
 * the route table, and the request and WebSocket objects handlers hold. The server thread
 * (server.c) hands over finished requests and WebSocket events through the to_main queue and
 * wakes us through an eventfd that the caller's zloop polls (s_on_events); answers go back as
 * messages on to_lws followed by lws_cancel_service. Each side looks an id up in its own map
 * and drops messages for ids it no longer knows, so neither side ever follows a pointer that
 * the other may have freed. Request and WebSocket objects are created on the server thread,
 * owned by this thread from the moment they are dequeued, and freed only here.
 *
 * Output accounting: a stream or WebSocket counts the bytes it queued; the server thread
 * reports them back (HM_WRITTEN) once written. Queuing more than max_queued_bytes closes the
 * connection (a WebSocket with 1008) and the owner gets its on_close. */
#include <arpa/inet.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "cb/alloc.h"
#include "cb/cleanup.h"
#include "cb/log.h"
#include "http_private.h"

#define DEFAULT_LISTEN "127.0.0.1:8888"
#define MIB ((size_t)1024 * 1024)

/* ---- configuration -------------------------------------------------------------------------- */

/* Parse "HOST:PORT" into the address to bind; HOST an IP literal ("[v6]") or localhost. */
static int s_parse_listen(http_server_t *self, const char *listen, cb_error_t *err)
{
    const char *colon = strrchr(listen, ':');
    if (!colon || colon == listen)
        return cb_error_fail(err, CB_ERR_INVALID, "listen address '%s' is not HOST:PORT", listen);
    char *endp = NULL;
    errno = 0;
    long port = strtol(colon + 1, &endp, 10);
    if (errno || !endp || *endp || colon[1] == '\0' || port < 0 || port > 65535)
        return cb_error_fail(err, CB_ERR_INVALID, "listen address '%s' has a bad port", listen);
    const char *h = listen;
    size_t hlen = (size_t)(colon - listen);
    bool bracketed = false;
    if (h[0] == '[') {
        if (hlen < 2 || h[hlen - 1] != ']')
            return cb_error_fail(err, CB_ERR_INVALID, "listen address '%s': unbalanced brackets",
                                 listen);
        h++;
        hlen -= 2;
        bracketed = true;
    }
    cleanup_free char *host = cb_xstrndup(h, hlen);
    unsigned char addr[sizeof(struct in6_addr)];
    if (!bracketed && strcasecmp(host, "localhost") == 0) {
        free(host);
        host = cb_xstrdup("127.0.0.1");
    } else if (bracketed ? inet_pton(AF_INET6, host, addr) != 1
                         : inet_pton(AF_INET, host, addr) != 1) {
        return cb_error_fail(
            err, CB_ERR_INVALID,
            "listen address '%s': HOST must be an IP literal (IPv6 in brackets) or localhost",
            listen);
    }
    self->bind_v6 = bracketed;
    self->port = (int)port;
    self->bind_host = steal_pointer(&host);
    return 0;
}

static bool s_host_is_loopback(const http_server_t *self)
{
    unsigned char addr[sizeof(struct in6_addr)];
    if (self->bind_v6)
        return inet_pton(AF_INET6, self->bind_host, addr) == 1 &&
               memcmp(addr, &in6addr_loopback, sizeof(struct in6_addr)) == 0;
    return inet_pton(AF_INET, self->bind_host, addr) == 1 && addr[0] == 127;
}

static char *s_generate_token(void)
{
    unsigned char raw[32];
    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return NULL;
    char *hex = cb_xmalloc(sizeof(raw) * 2 + 1);
    for (size_t i = 0; i < sizeof(raw); i++)
        sprintf(hex + 2 * i, "%02x", raw[i]);
    OPENSSL_cleanse(raw, sizeof(raw));
    return hex;
}

/* One credential more; refused when its token is one we already have. */
static int s_cred_add(http_server_t *self, const char *token, const char *tenant, bool admin,
                      cb_error_t *err)
{
    if (!token || !*token || !cb_tenant_name_ok(tenant))
        return cb_error_fail(err, CB_ERR_INVALID,
                             "a tenant's token needs a token and a valid "
                             "tenant name");
    http_cred_t c = {.who.admin = admin};
    http_token_digest(token, strlen(token), c.digest);
    for (size_t i = 0; i < self->ncreds; i++)
        if (memcmp(self->creds[i].digest, c.digest, sizeof(c.digest)) == 0)
            return cb_error_fail(err, CB_ERR_INVALID, "tenant '%s' has the same token as %s '%s'",
                                 tenant,
                                 i == 0 && self->token ? "the server's own token," : "tenant",
                                 self->creds[i].tenant);
    self->creds = cb_xrealloc(self->creds, (self->ncreds + 1) * sizeof(*self->creds));
    http_cred_t *slot = &self->creds[self->ncreds++];
    *slot = c;
    snprintf(slot->tenant, sizeof(slot->tenant), "%s", tenant);
    OPENSSL_cleanse(&c, sizeof(c));
    return 0;
}

/* The token check's table: the server's token (the admin), then the tenants'. who.tenant is
 * set once the table stops moving. */
static int s_creds_make(http_server_t *self, const http_config_t *cfg, cb_error_t *err)
{
    if (self->token && s_cred_add(self, self->token, CB_TENANT_ADMIN, true, err) < 0)
        return -1;
    for (size_t i = 0; i < cfg->tenant_count; i++) {
        const http_tenant_token_t *t = &cfg->tenants[i];
        if (s_cred_add(self, t->token, t->tenant, t->admin, err) < 0)
            return -1;
    }
    for (size_t i = 0; i < self->ncreds; i++)
        self->creds[i].who.tenant = self->creds[i].tenant;
    return 0;
}

http_server_t *http_server_new(zloop_t *loop, const http_config_t *cfg, cb_error_t *err)
{
    http_config_t none = {0};
    if (!cfg)
        cfg = &none;
    if (!loop)
        return cb_error_fail(err, CB_ERR_INVALID, "http_server_new needs a zloop"), NULL;
    http_server_t *self = cb_xcalloc(1, sizeof(*self));
    self->loop = loop;
    self->event_fd = -1;
    self->door_fd = -1;
    self->listen_fd = -1;
    http_msgq_init(&self->to_door);
    http_msgq_init(&self->to_lws);
    http_msgq_init(&self->to_main);
    atomic_init(&self->stop, false);
    cb_strv_init(&self->subprotocols);
    if (s_parse_listen(self, cfg->listen ? cfg->listen : DEFAULT_LISTEN, err) < 0) {
        http_server_destroy(&self);
        return NULL;
    }
    self->no_auth = cfg->no_auth;
    if (self->no_auth && !s_host_is_loopback(self)) {
        cb_error_fail(err, CB_ERR_INVALID,
                      "refusing to serve without a token on %s: no_auth is only allowed on a "
                      "loopback address "
                      "(127.0.0.0/8, ::1, localhost)",
                      self->bind_host);
        http_server_destroy(&self);
        return NULL;
    }
    self->max_body = cfg->max_body_bytes ? cfg->max_body_bytes : 16 * MIB;
    self->max_ws = cfg->max_ws_message_bytes ? cfg->max_ws_message_bytes : 16 * MIB;
    self->max_conns = cfg->max_connections ? cfg->max_connections : 1024;
    self->max_queued = cfg->max_queued_bytes ? cfg->max_queued_bytes : 64 * MIB;
    self->allowed_hosts = cb_strv_copy(cfg->allowed_hosts);
    self->allowed_origins = cb_strv_copy(cfg->allowed_origins);
    if (!self->no_auth)
        self->token = cfg->token && *cfg->token ? cb_xstrdup(cfg->token) : s_generate_token();
    if (!self->no_auth && !self->token) { /* RAND_bytes failed */
        cb_error_fail(err, CB_ERR_SYSTEM, "new HTTP server: no random bytes for a token");
        http_server_destroy(&self);
        return NULL;
    }
    self->head_timeout_ms = cfg->head_timeout_ms > 0 ? cfg->head_timeout_ms : 10000;
    self->event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    self->door_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (self->event_fd < 0 || self->door_fd < 0 || RAND_bytes(self->secret, 32) != 1 ||
        RAND_bytes(self->login_key, 32) != 1) {
        cb_error_make(err, errno, "new HTTP server");
        http_server_destroy(&self);
        return NULL;
    }
    if (s_creds_make(self, cfg, err) < 0) {
        http_server_destroy(&self);
        return NULL;
    }
    return self;
}

int http_server_route(http_server_t *self, const char *prefix, http_request_fn *on_request,
                      http_ws_open_fn *on_ws, void *arg, cb_error_t *err)
{
    if (!self || !prefix || prefix[0] != '/' || !on_request)
        return cb_error_fail(err, CB_ERR_INVALID,
                             "a route needs a prefix starting with '/' and a handler");
    if (self->started)
        return cb_error_fail(err, CB_ERR_STATE, "routes must be added before http_server_start");
    for (size_t i = 0; i < self->nroutes; i++)
        if (strcmp(self->routes[i].prefix, prefix) == 0)
            return cb_error_fail(err, CB_ERR_INVALID, "route '%s' is already registered", prefix);
    self->routes = cb_xrealloc(self->routes, (self->nroutes + 1) * sizeof(*self->routes));
    char *p = cb_xstrdup(prefix);
    self->routes[self->nroutes++] = (http_route_t){
        .prefix = p, .len = strlen(p), .on_request = on_request, .on_ws = on_ws, .arg = arg};
    return 0;
}

/* The route registered for prefix, or NULL with err. */
static http_route_t *s_route_to_mark(http_server_t *self, const char *prefix, cb_error_t *err)
{
    if (self->started)
        return cb_error_fail(err, CB_ERR_STATE, "routes must be changed before http_server_start"),
               NULL;
    for (size_t i = 0; i < self->nroutes; i++)
        if (prefix && strcmp(self->routes[i].prefix, prefix) == 0)
            return &self->routes[i];
    return cb_error_fail(err, CB_ERR_INVALID, "no route '%s'", prefix ? prefix : "(null)"), NULL;
}

int http_server_route_sandbox_tokens(http_server_t *self, const char *prefix, cb_error_t *err)
{
    http_route_t *route = s_route_to_mark(self, prefix, err);
    if (!route)
        return -1;
    route->sandbox_tokens = true;
    return 0;
}

int http_server_route_public(http_server_t *self, const char *prefix, cb_error_t *err)
{
    http_route_t *route = s_route_to_mark(self, prefix, err);
    if (!route)
        return -1;
    route->public = true;
    return 0;
}

int http_server_subprotocol(http_server_t *self, const char *name, cb_error_t *err)
{
    if (!self || !name || !*name || strpbrk(name, ", \t"))
        return cb_error_fail(err, CB_ERR_INVALID, "a subprotocol is one token");
    if (self->started)
        return cb_error_fail(err, CB_ERR_STATE,
                             "subprotocols must be added before http_server_start");
    cb_strv_push(&self->subprotocols, cb_xstrdup(name));
    return 0;
}

static int s_on_events(zloop_t *loop, zmq_pollitem_t *item, void *arg);

int http_server_start(http_server_t *self, cb_error_t *err)
{
    if (!self)
        return cb_error_fail(err, CB_ERR_INVALID, "no server");
    if (self->started)
        return cb_error_fail(err, CB_ERR_STATE, "the HTTP server is already started");
    zmq_pollitem_t item = {.fd = self->event_fd, .events = ZMQ_POLLIN};
    if (zloop_poller(self->loop, &item, s_on_events, self) < 0)
        return cb_error_make(err, errno, "watch the HTTP server's eventfd");
    zloop_poller_set_tolerant(self->loop, &item); /* never dropped by zloop on a poll error */
    self->polling = true;
    /* Bound first, so the port is known to the checks; served by lws, then the door. */
    if (http_door_bind(self, err) < 0 || http_lws_start(self, err) < 0 ||
        http_door_start(self, err) < 0) {
        http_door_stop(self);
        http_lws_stop(self);
        zloop_poller_end(self->loop, &item);
        self->polling = false;
        return -1;
    }
    self->started = true;
    self->address = self->bind_v6 ? cb_strdup_printf("[%s]:%d", self->bind_host, self->port)
                                  : cb_strdup_printf("%s:%d", self->bind_host, self->port);
    self->url = cb_strdup_printf("http://%s", self->address);
    cb_debug("http: listening on %s", self->address);
    return 0;
}

const char *http_server_address(const http_server_t *self) { return self ? self->address : NULL; }
const char *http_server_url(const http_server_t *self) { return self ? self->url : NULL; }
const char *http_server_token(const http_server_t *self) { return self ? self->token : NULL; }

/* ---- objects -------------------------------------------------------------------------------- */

void http_request_free(http_request_t *req)
{
    if (!req)
        return;
    free(req->method);
    free(req->path);
    cb_strv_free(req->query);
    cb_strv_free(req->headers);
    free(req->body);
    free(req->sandbox);
    free(req);
}

static void s_ws_free(http_ws_t *ws)
{
    if (!ws)
        return;
    http_request_free(ws->req);
    free(ws->subprotocol);
    free(ws);
}

/* Forget a request: out of the map, freed. */
static void s_request_drop(http_request_t *req)
{
    http_idmap_remove(&req->server->reqs, req->id);
    http_request_free(req);
}

static void s_request_closed(http_request_t *req)
{
    req->closing = true;
    if (req->on_close)
        req->on_close(req, req->close_arg);
    s_request_drop(req);
}

static void s_ws_closed(http_ws_t *ws)
{
    http_idmap_remove(&ws->server->wss, ws->id);
    ws->closing = true;
    if (ws->on_close)
        ws->on_close(ws, ws->arg);
    s_ws_free(ws);
}

/* ---- forwards ------------------------------------------------------------------------------- */

void http_forward_free(http_forward_t *fwd)
{
    if (!fwd)
        return;
    if (fwd->fd >= 0)
        close(fwd->fd);
    free(fwd->sandbox);
    free(fwd->head);
    free(fwd);
}

int http_server_forwards(http_server_t *self, http_forward_fn *fn, void *arg, cb_error_t *err)
{
    if (!self || !fn)
        return cb_error_fail(err, CB_ERR_INVALID, "a forward handler is needed");
    if (self->started)
        return cb_error_fail(err, CB_ERR_STATE,
                             "the forward handler must be set before http_server_start");
    self->on_forward = fn;
    self->forward_arg = arg;
    return 0;
}

int http_server_forwards_first(http_server_t *self, http_forward_claim_fn *fn, void *arg,
                               cb_error_t *err)
{
    if (!self || !fn)
        return cb_error_fail(err, CB_ERR_INVALID, "a forward handler is needed");
    if (self->started)
        return cb_error_fail(err, CB_ERR_STATE,
                             "the forward handler must be set before http_server_start");
    self->claim_forward = fn;
    self->claim_arg = arg;
    return 0;
}

const char *http_forward_sandbox(const http_forward_t *fwd) { return fwd->sandbox; }
int http_forward_port(const http_forward_t *fwd) { return fwd->port; }
bool http_forward_is_websocket(const http_forward_t *fwd) { return fwd->websocket; }

int http_forward_connect(http_forward_t *fwd, egress_t *eg, egress_sandbox_t *sb, int upstream_fd,
                         cb_error_t *err)
{
    http_server_t *self = fwd->server;
    http_idmap_remove(&self->fwds, fwd->id);
    cleanup_free char *why = cb_strdup_printf(
        "nothing listens on port %d in sandbox %s, or it did not accept the connection in time",
        fwd->port, fwd->sandbox);
    cleanup_free char *fail = http_fwd_response(502, why, NULL);
    int client = fwd->fd;
    fwd->fd = -1;
    int rc = egress_forward(eg, sb, (uint16_t)fwd->port, client, upstream_fd, fwd->head,
                            strlen(fwd->head), fwd->body_max, fail, err);
    http_forward_free(fwd);
    return rc;
}

void http_forward_refuse(http_forward_t *fwd, int status, const char *message)
{
    http_server_t *self = fwd->server;
    http_idmap_remove(&self->fwds, fwd->id);
    http_msg_t *m = http_msg_new(HM_FWD_REFUSE, fwd->id, NULL, 0);
    m->status = status;
    m->text = cb_xstrdup(message ? message : "");
    m->fwd = fwd;
    http_door_post(self, m);
}

void http_post_main(http_server_t *self, http_msg_t *msg)
{
    if (!msg)
        return;
    http_msgq_push(&self->to_main, msg);
    uint64_t one = 1;
    ssize_t n = write(self->event_fd, &one, sizeof(one));
    (void)n; /* EAGAIN: the counter is already nonzero, the reader wakes anyway */
}

/* ---- events from the server thread ---------------------------------------------------------- */

static void s_handle(http_server_t *self, http_msg_t *m)
{
    switch (m->kind) {
    case HM_REQUEST: {
        http_request_t *req = steal_pointer(&m->req);
        req->server = self;
        http_idmap_put(&self->reqs, req->id, req);
        req->route->on_request(req, req->route->arg);
        return;
    }
    case HM_WS_OPEN: {
        http_ws_t *ws = cb_xcalloc(1, sizeof(*ws));
        http_idmap_put(&self->wss, m->id, ws);
        ws->server = self;
        ws->id = m->id;
        ws->req = steal_pointer(&m->req);
        ws->req->server = self;
        ws->subprotocol = steal_pointer(&m->text);
        cb_debug("http: %s %s -> 101 (WebSocket%s%s)", ws->req->method, ws->req->path,
                 ws->subprotocol ? " " : "", ws->subprotocol ? ws->subprotocol : "");
        ws->req->route->on_ws(ws, ws->req->route->arg);
        return;
    }
    case HM_REQ_CLOSED: {
        http_request_t *req = http_idmap_get(&self->reqs, m->id);
        if (req) {
            cb_debug("http: %s %s: client went before the response ended", req->method, req->path);
            s_request_closed(req);
        }
        return;
    }
    case HM_WS_MESSAGE: {
        http_ws_t *ws = http_idmap_get(&self->wss, m->id);
        if (ws && !ws->closing && ws->on_message)
            ws->on_message(ws, m->data, m->len, m->flag, ws->arg);
        return;
    }
    case HM_WS_CLOSED: {
        http_ws_t *ws = http_idmap_get(&self->wss, m->id);
        if (ws)
            s_ws_closed(ws);
        return;
    }
    case HM_WRITTEN: {
        http_request_t *req = http_idmap_get(&self->reqs, m->id);
        http_ws_t *ws = http_idmap_get(&self->wss, m->id);
        size_t *q = req ? &req->queued : ws ? &ws->queued : NULL;
        if (q)
            *q = *q > m->len ? *q - m->len : 0;
        return;
    }
    case HM_FORWARD: {
        http_forward_t *fwd = steal_pointer(&m->fwd);
        fwd->server = self;
        http_idmap_put(&self->fwds, fwd->id, fwd);
        cb_debug("http: forward to port %d of sandbox %s%s", fwd->port, fwd->sandbox,
                 fwd->websocket ? " (WebSocket)" : "");
        if (self->claim_forward && self->claim_forward(fwd, self->claim_arg))
            return;
        if (self->on_forward)
            self->on_forward(fwd, self->forward_arg);
        else
            http_forward_refuse(fwd, 404, "no sandbox of this server has this id");
        return;
    }
    case HM_LOG:
        if (m->text)
            cb_debug("http: %s", m->text);
        return;
    default: return;
    }
}

static int s_on_events(zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    http_server_t *self = arg;
    uint64_t n;
    ssize_t r = read(self->event_fd, &n, sizeof(n));
    (void)r; /* EAGAIN: a previous round already took the messages */
    http_msg_t *m = http_msgq_take_all(&self->to_main);
    while (m) {
        http_msg_t *next = m->next;
        s_handle(self, m);
        http_msg_free(m);
        m = next;
    }
    return 0;
}

void http_server_destroy(http_server_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    http_server_t *self = *self_p;
    *self_p = NULL;

    /* Owners first, so they drop their pointers; the server thread is still running, and
     * whatever they answer from on_close is refused (closing). */
    size_t n = 0;
    cleanup_free uint64_t *rids = http_idmap_ids(&self->reqs, &n);
    for (size_t i = 0; i < n; i++) {
        http_request_t *req = http_idmap_get(&self->reqs, rids[i]);
        if (req)
            s_request_closed(req);
    }
    cleanup_free uint64_t *wids = http_idmap_ids(&self->wss, &n);
    for (size_t i = 0; i < n; i++) {
        http_ws_t *ws = http_idmap_get(&self->wss, wids[i]);
        if (ws)
            s_ws_closed(ws);
    }
    cleanup_free uint64_t *fids = http_idmap_ids(&self->fwds, &n);
    for (size_t i = 0; i < n; i++)
        http_forward_free(http_idmap_remove(&self->fwds, fids[i]));
    if (self->polling) {
        zmq_pollitem_t item = {.fd = self->event_fd, .events = ZMQ_POLLIN};
        zloop_poller_end(self->loop, &item);
    }
    http_door_stop(self); /* no new connections for lws */
    http_lws_stop(self);
    http_msgq_destroy(&self->to_door);
    if (self->door_fd >= 0)
        close(self->door_fd);
    OPENSSL_cleanse(self->secret, sizeof(self->secret));
    OPENSSL_cleanse(self->login_key, sizeof(self->login_key));
    if (self->creds)
        OPENSSL_cleanse(self->creds, self->ncreds * sizeof(*self->creds));
    free(self->creds);
    http_msgq_destroy(&self->to_lws);
    http_msgq_destroy(&self->to_main);
    http_idmap_clear(&self->reqs);
    http_idmap_clear(&self->wss);
    http_idmap_clear(&self->fwds);
    if (self->event_fd >= 0)
        close(self->event_fd);
    for (size_t i = 0; i < self->nroutes; i++)
        free(self->routes[i].prefix);
    free(self->routes);
    cb_strv_clear(&self->subprotocols);
    free(self->protocols);
    free(self->retry);
    cb_strv_free(self->allowed_hosts);
    cb_strv_free(self->allowed_origins);
    if (self->token) {
        OPENSSL_cleanse(self->token, strlen(self->token));
        free(self->token);
    }
    free(self->bind_host);
    free(self->address);
    free(self->url);
    free(self);
}

/* ---- requests ------------------------------------------------------------------------------- */

const char *http_request_method(const http_request_t *req) { return req ? req->method : NULL; }
const char *http_request_path(const http_request_t *req) { return req ? req->path : NULL; }

const char *http_request_query(const http_request_t *req, const char *name)
{
    for (char **p = req && name ? req->query : NULL; p && p[0]; p += 2)
        if (strcmp(p[0], name) == 0)
            return p[1];
    return NULL;
}

const char *http_request_query_nth(const http_request_t *req, const char *name, size_t n)
{
    for (char **p = req && name ? req->query : NULL; p && p[0]; p += 2)
        if (strcmp(p[0], name) == 0 && n-- == 0)
            return p[1];
    return NULL;
}

const char *http_request_sandbox(const http_request_t *req) { return req ? req->sandbox : NULL; }

const cb_principal_t *http_request_principal(const http_request_t *req)
{
    return req && req->who.tenant ? &req->who : &http_principal_nobody;
}

const cb_principal_t *http_forward_principal(const http_forward_t *fwd)
{
    return fwd ? fwd->who : NULL;
}

const char *http_request_header(const http_request_t *req, const char *name)
{
    for (char **p = req && name ? req->headers : NULL; p && p[0]; p += 2)
        if (strcasecmp(p[0], name) == 0)
            return p[1];
    return NULL;
}

const char *http_request_body(const http_request_t *req, size_t *len)
{
    if (len)
        *len = req && req->body ? req->body_len : 0;
    return req && req->body ? req->body : "";
}

void http_request_on_close(http_request_t *req, http_close_fn *fn, void *arg)
{
    if (!req)
        return;
    req->on_close = fn;
    req->close_arg = arg;
}

/* Queue messages for the server thread and wake it. */
static void s_send(http_server_t *self, http_msg_t *m) { http_msgq_push(&self->to_lws, m); }

static http_msg_t *s_head_msg(http_request_t *req, int status, const char *content_type,
                              const char *const *headers, bool chunked, size_t content_length)
{
    http_msg_t *m = http_msg_new(HM_HEAD, req->id, NULL, 0);
    m->status = status;
    m->flag = chunked;
    m->len = content_length;
    m->text = cb_xstrdup(content_type ? content_type : "");
    m->headers = cb_strv_copy(headers);
    return m;
}

/* Abort the connection of a request we cannot answer. */
static void s_abort(http_request_t *req)
{
    s_send(req->server, http_msg_new(HM_ABORT, req->id, NULL, 0));
    http_lws_wake(req->server);
}

int http_respond(http_request_t *req, int status, const char *content_type,
                 const char *const *headers, const void *body, size_t len)
{
    if (!req || req->closing)
        return -1;
    http_server_t *self = req->server;
    int rc = 0;
    if (req->streaming) {
        cb_warn("http: http_respond on a streaming request %s %s", req->method, req->path);
        s_abort(req);
        rc = -1;
    } else {
        http_msg_t *head = s_head_msg(req, status, content_type, headers, false, len);
        http_msg_t *data = len ? http_msg_new(HM_DATA, req->id, body, len) : NULL;
        http_msg_t *end = http_msg_new(HM_END, req->id, NULL, 0);
        s_send(self, head);
        if (data)
            s_send(self, data);
        s_send(self, end);
        http_lws_wake(self);
    }
    cb_debug("http: %s %s -> %d", req->method, req->path, status);
    s_request_drop(req);
    return rc;
}

int http_respond_json(http_request_t *req, int status, json_t *body, const char *const *headers)
{
    if (!req)
        return -1;
    cleanup_free char *text = body ? json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    if (!text) {
        if (req->closing)
            return -1;
        return http_respond_error(req, 500, "the response could not be encoded");
    }
    return http_respond(req, status, "application/json", headers, text, strlen(text));
}

int http_respond_error(http_request_t *req, int status, const char *message)
{
    if (!req)
        return -1;
    json_auto_t *j = json_pack("{s:s, s:s}", "reason", http_status_reason(status), "message",
                               message ? message : "");
    cleanup_free char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    if (!text) {
        if (req->closing)
            return -1;
        s_abort(req);
        s_request_drop(req);
        return -1;
    }
    return http_respond(req, status, "application/json", NULL, text, strlen(text));
}

int http_respond_cb_error(http_request_t *req, const cb_error_t *err)
{
    return http_respond_error(req, cb_error_http_status(err),
                              err && err->msg[0] ? err->msg : "internal error");
}

int http_stream_begin(http_request_t *req, int status, const char *content_type,
                      const char *const *headers)
{
    if (!req || req->closing || req->streaming)
        return -1;
    http_msg_t *head = s_head_msg(req, status, content_type, headers, true, 0);
    req->streaming = true;
    req->status = status;
    s_send(req->server, head);
    http_lws_wake(req->server);
    return 0;
}

int http_stream_write(http_request_t *req, const void *data, size_t len)
{
    if (!req || req->closing || !req->streaming)
        return -1;
    if (len == 0)
        return 0; /* an empty chunk would end the response */
    http_server_t *self = req->server;
    if (req->queued + len > self->max_queued) {
        cb_warn("http: %s %s: client too slow, over %zu bytes queued; closing", req->method,
                req->path, self->max_queued);
        s_abort(req);
        req->closing = true; /* on_close follows from the server thread */
        return -1;
    }
    http_msg_t *m = http_msg_new(HM_DATA, req->id, data, len);
    req->queued += len;
    s_send(self, m);
    http_lws_wake(self);
    return 0;
}

void http_stream_end(http_request_t *req)
{
    if (!req)
        return;
    if (req->closing && !req->streaming)
        return;
    if (req->closing) {
        /* Aborted for overflow: on_close is on its way; the owner is done with req now, so
         * the close only needs to free it. */
        req->on_close = NULL;
        return;
    }
    s_send(req->server, http_msg_new(HM_END, req->id, NULL, 0));
    http_lws_wake(req->server);
    cb_debug("http: %s %s -> %d (stream)", req->method, req->path, req->status);
    s_request_drop(req);
}

/* ---- WebSockets ----------------------------------------------------------------------------- */

const http_request_t *http_ws_request(const http_ws_t *ws) { return ws ? ws->req : NULL; }
const char *http_ws_subprotocol(const http_ws_t *ws) { return ws ? ws->subprotocol : NULL; }

void http_ws_set_handlers(http_ws_t *ws, http_ws_message_fn *on_message, http_ws_close_fn *on_close,
                          void *arg)
{
    if (!ws)
        return;
    ws->on_message = on_message;
    ws->on_close = on_close;
    ws->arg = arg;
}

static void s_ws_send_close(http_ws_t *ws, int code, const char *reason, bool notify)
{
    http_msg_t *m = http_msg_new(HM_WS_CLOSE, ws->id, NULL, 0);
    m->status = code;
    m->flag = notify;
    m->text = cb_xstrdup(reason ? reason : "");
    s_send(ws->server, m);
    http_lws_wake(ws->server);
}

int http_ws_send(http_ws_t *ws, const void *data, size_t len, bool binary)
{
    if (!ws || ws->closing)
        return -1;
    http_server_t *self = ws->server;
    if (ws->queued + len > self->max_queued) {
        cb_warn("http: WebSocket %s: client too slow, over %zu bytes queued; closing",
                ws->req->path, self->max_queued);
        ws->closing = true;
        s_ws_send_close(ws, 1008, "output queue full", true);
        return -1;
    }
    http_msg_t *m = http_msg_new(HM_WS_SEND, ws->id, data, len);
    m->flag = binary;
    ws->queued += len;
    s_send(self, m);
    http_lws_wake(self);
    return 0;
}

void http_ws_close(http_ws_t *ws, int code, const char *reason)
{
    if (!ws)
        return;
    if (ws->closing) {
        /* Already closing because of an overflow, or in on_close: the owner lets go; the close
         * in flight will free it without calling back. */
        ws->on_close = NULL;
        ws->on_message = NULL;
        return;
    }
    if (code < 1000 || code > 4999 || code == 1005 || code == 1006 || code == 1015)
        code = 1000;
    s_ws_send_close(ws, code, reason, false);
    http_idmap_remove(&ws->server->wss, ws->id);
    s_ws_free(ws);
}
