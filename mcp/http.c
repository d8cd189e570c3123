/* http.c: MCP Streamable HTTP (2025-11-25; also 2025-06-18, 2025-03-26 and 2024-11-05)
 * on the HTTP server (http/http.h).
 *
 * One endpoint (opts->path). A POST carries one JSON-RPC message; GET opens the session's own
 * stream of server messages, or resumes a stream that was cut (Last-Event-ID); DELETE ends the
 * session. Everything runs on the gateway's loop: the HTTP module hands requests over there.
 *
 * Sessions. initialize (a POST without Mcp-Session-Id) makes an mcp_session_t whose send
 * function is s_send below, and a session id (32 hex of RAND_bytes) returned in Mcp-Session-Id.
 * Every other request must name a live session (missing: 400; unknown, ended, or started with
 * another tenant's credentials: 404, alike; see s_same_principal). A session
 * that has had no request, no call in flight and no open connection for idle_timeout_s ends,
 * and with it its default sandbox.
 *
 * JSON or SSE. A request is dispatched at once (mcp_session_dispatch); what the session sends
 * meanwhile is held. If the request was answered during dispatch and nothing else came, the
 * answer goes back as application/json (initialize, ping, tools/list, logging/setLevel, and
 * tools/call of the tools that finish at once). Otherwise (a call still running: executions,
 * commands, kernel starts, file transfers) the answer is an SSE stream: a priming event (an id
 * and empty data, with retry:), what was held, then each related message as it comes, and the
 * response, after which the stream ends.
 *
 * Routing of what the session sends (s_send): a response goes to the stream of the request
 * with its id (a response with id null, to the POST being dispatched); a notification goes to
 * the stream of the request it relates to (mcp_session_t.related: the request being
 * dispatched, or the call whose progress it is) while that stream is open; anything else goes
 * to the session's GET stream, written when a GET is connected and buffered otherwise.
 *
 * Resumption. Streams are numbered per session (0 is the GET stream; POST streams count from
 * 1) and every event's id is "<stream>-<seq>". The session keeps its recent events (at most
 * replay_events and S_REPLAY_BYTES; the GET stream's share is bounded so a chatty log cannot
 * push out a response). A GET with Last-Event-ID replays that stream's later events on the
 * new connection, then goes on live; for a POST stream that ends with its response. A dropped
 * connection is not a cancellation: the call goes on and its events wait to be fetched.
 */
#include <errno.h>
#include <inttypes.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cb/cleanup.h"
#include "mcp_private.h"
#include "kg/gateway.h"

#define S_REPLAY_BYTES (8u << 20) /* event bytes kept per session for Last-Event-ID */
#define S_RETRY_MS 1000           /* the SSE retry: a client waits this long to reconnect */
#define S_KEEPALIVE_MS 15000      /* an SSE comment on every open stream this often */

typedef struct s_session s_session_t;
typedef struct s_stream s_stream_t;

typedef enum {
    S_HELD, /* its request is being dispatched: messages wait in held */
    S_OPEN, /* an SSE stream whose response has not come (the GET stream is always open) */
    S_DONE, /* the response was sent, or the request was cancelled */
} s_state_t;

struct s_stream {
    s_session_t *hs;
    unsigned num;       /* 0: the session's GET stream; POST streams from 1 */
    json_t *request_id; /* a POST stream's request id (owned); NULL for GET and notifications */
    s_state_t state;
    bool answered;       /* S_HELD: the response is among held */
    http_request_t *req; /* the connection it is written to now, or NULL */
    uint64_t seq;        /* the last event number given */
    uint64_t written;    /* the last event number written to a connection */
    size_t kept;         /* its events in the session's replay list */
    zlistx_t *held;      /* S_HELD: json_t *, in order, owned */
};

typedef struct {
    s_stream_t *stream;
    uint64_t seq;
    size_t len;
    char text[]; /* "id: N-S\ndata: {...}\n\n" */
} s_event_t;

struct s_session {
    mcp_http_t *owner;
    char id[33];
    mcp_session_t *mcp;
    bool closing;      /* ending: whatever the session still sends is dropped */
    zlistx_t *streams; /* s_stream_t *, owned: the GET stream and the POST streams kept */
    s_stream_t *get;
    unsigned next_stream;
    zlistx_t *events; /* s_event_t *, oldest first, owned */
    size_t event_bytes;
    s_stream_t *dispatching; /* the POST being dispatched, or NULL */
    int64_t active_ms;       /* the last request, or the last moment it was busy */
};

struct mcp_http {
    mcp_server_t *server;
    http_server_t *http;
    zloop_t *loop;
    char path[256];
    int64_t idle_ms;
    size_t replay_events;
    size_t max_sessions;
    zhashx_t *sessions; /* id -> s_session_t *, owned */
    int timer;
    bool expire_queued; /* the tick has deferred s_expire (kg_gateway_defer) */
    int64_t keepalive_ms;
};

/* ---- answers that are not the session's ----------------------------------------------------- */

/* A message refused as a whole: a JSON-RPC error (id null unless given) with the kind's code,
 * in a response with the kind's HTTP status (cb/error.h); headers: a header pair or NULL. */
static void s_refuse(http_request_t *req, cb_error_kind_t kind, json_t *id,
                     const char *const *headers, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void s_refuse(http_request_t *req, cb_error_kind_t kind, json_t *id,
                     const char *const *headers, const char *fmt, ...)
{
    int status = cb_error_kind_http_status(kind), code = cb_error_kind_jsonrpc_code(kind);
    char text[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    json_auto_t *body = json_pack("{s:s, s:O, s:{s:i, s:s}}", "jsonrpc", "2.0", "id",
                                  id ? id : json_null(), "error", "code", code, "message", text);
    if (!body || http_respond_json(req, status, body, headers) < 0)
        cb_debug("mcp http: answering %d failed", status);
}

/* ---- events and streams --------------------------------------------------------------------- */

static s_stream_t *s_stream_new(s_session_t *hs, json_t *request_id)
{
    s_stream_t *st = cb_xcalloc(1, sizeof *st);
    st->hs = hs;
    st->request_id = json_incref(request_id);
    st->held = zlistx_new(); /* czmq aborts when memory runs out */
    return st;
}

/* Free a stream that has no connection and no events kept (or whose session is ending). */
static void s_stream_free(s_stream_t *st)
{
    if (!st)
        return;
    for (json_t *m = st->held ? zlistx_detach(st->held, NULL) : NULL; m;
         m = zlistx_detach(st->held, NULL))
        json_decref(m);
    zlistx_destroy(&st->held);
    json_decref(st->request_id);
    free(st);
}

/* Forget a POST stream once nothing of it is left to send or replay. */
static void s_stream_maybe_forget(s_stream_t *st)
{
    s_session_t *hs = st->hs;
    if (st == hs->get || st->state != S_DONE || st->req || st->kept > 0)
        return;
    void *handle = zlistx_find(hs->streams, st);
    if (handle)
        zlistx_detach(hs->streams, handle);
    s_stream_free(st);
}

/* Let go of the stream's connection; end: end the response (no on_close follows). */
static void s_detach(s_stream_t *st, bool end)
{
    http_request_t *req = st->req;
    st->req = NULL;
    st->hs->active_ms = cb_now_ms();
    if (req && end)
        http_stream_end(req);
}

static void s_write(s_stream_t *st, const char *text, size_t len)
{
    if (st->req && http_stream_write(st->req, text, len) < 0) {
        cb_debug("mcp http: writing to stream %u failed; the client can resume it", st->num);
        s_detach(st, true);
    }
}

static void s_write_event(s_stream_t *st, const s_event_t *ev)
{
    if (!st->req)
        return;
    uint64_t seq = ev->seq; /* a failed write logs, and a log line can be sent and trim ev */
    s_write(st, ev->text, ev->len);
    if (st->req)
        st->written = seq;
}

static void s_event_drop(s_session_t *hs, void *handle)
{
    s_event_t *ev = zlistx_detach(hs->events, handle);
    hs->event_bytes -= ev->len;
    ev->stream->kept--;
    s_stream_t *st = ev->stream;
    free(ev);
    s_stream_maybe_forget(st);
}

/* Keep the replay list within its bounds: oldest first, the newest event always stays. */
static void s_trim(s_session_t *hs)
{
    size_t get_share = hs->owner->replay_events / 4 > 16 ? hs->owner->replay_events / 4 : 16;
    if (hs->get->kept > get_share) /* the GET stream's oldest, so logs cannot push out answers */
        for (s_event_t *ev = zlistx_first(hs->events); ev; ev = zlistx_next(hs->events))
            if (ev->stream == hs->get) {
                s_event_drop(hs, zlistx_cursor(hs->events));
                break;
            }
    while (zlistx_size(hs->events) > 1 && (zlistx_size(hs->events) > hs->owner->replay_events ||
                                           hs->event_bytes > S_REPLAY_BYTES)) {
        zlistx_first(hs->events);
        s_event_drop(hs, zlistx_cursor(hs->events));
    }
}

/* The request's response has been sent (or it was cancelled): end the stream's connection. */
static void s_stream_done(s_stream_t *st)
{
    st->state = S_DONE;
    s_detach(st, true);
    s_stream_maybe_forget(st);
}

/* One message onto a stream: held while its request is dispatched, else an event that is kept
 * and written when the stream has a connection. A response ends the stream. */
static int s_put(s_stream_t *st, json_t *msg)
{
    bool response = !json_object_get(msg, "method");
    if (st->state == S_HELD) {
        if (!zlistx_add_end(st->held, json_incref(msg))) {
            json_decref(msg);
            return -1;
        }
        st->answered |= response;
        return 0;
    }
    cleanup_free char *data = json_dumps(msg, JSON_COMPACT);
    if (!data)
        return -1;
    char head[64];
    int hlen = snprintf(head, sizeof head, "id: %u-%" PRIu64 "\ndata: ", st->num, st->seq + 1);
    size_t dlen = strlen(data);
    s_event_t *ev = cb_xmalloc(sizeof *ev + (size_t)hlen + dlen + 3);
    ev->stream = st;
    ev->seq = ++st->seq;
    ev->len = (size_t)hlen + dlen + 2;
    memcpy(ev->text, head, (size_t)hlen);
    memcpy(ev->text + hlen, data, dlen);
    memcpy(ev->text + hlen + dlen, "\n\n", 3);
    s_session_t *hs = st->hs;
    zlistx_add_end(hs->events, ev);
    hs->event_bytes += ev->len;
    st->kept++;
    s_write_event(st, ev);
    if (response && st != hs->get)
        s_stream_done(st);
    s_trim(hs);
    return 0;
}

/* The open (or held) POST stream of the request with this id. */
static s_stream_t *s_stream_of(s_session_t *hs, json_t *id)
{
    if (!id || json_is_null(id))
        return NULL;
    if (hs->dispatching && hs->dispatching->request_id &&
        json_equal(hs->dispatching->request_id, id))
        return hs->dispatching;
    for (s_stream_t *st = zlistx_first(hs->streams); st; st = zlistx_next(hs->streams))
        if (st->state == S_OPEN && st->request_id && json_equal(st->request_id, id))
            return st;
    return NULL;
}

/* The session's send function: route each message (see the top of the file). */
static int s_send(json_t *msg, void *arg)
{
    s_session_t *hs = arg;
    if (hs->closing)
        return -1;
    s_stream_t *to;
    if (!json_object_get(msg, "method")) { /* a response */
        json_t *id = json_object_get(msg, "id");
        to = s_stream_of(hs, id);
        if (!to) /* id null, or a message that was not a request: the POST being dispatched */
            to = hs->dispatching;
        if (!to) {
            cb_debug("mcp http: a response for no open request dropped");
            return 0;
        }
    } else {
        to = hs->mcp ? s_stream_of(hs, hs->mcp->related) : NULL;
        if (!to)
            to = hs->get;
    }
    return s_put(to, msg);
}

/* ---- SSE connections ------------------------------------------------------------------------ */

static void s_on_close(http_request_t *req, void *arg)
{
    s_stream_t *st = arg;
    if (st->req != req)
        return;
    cb_debug("mcp http: the client left stream %u of session %.8s", st->num, st->hs->id);
    s_detach(st, false); /* not a cancellation: the call goes on, its events wait */
}

/* Start an SSE response on req for st (whose old connection, if any, is ended first). */
static int s_attach(s_stream_t *st, http_request_t *req, const char *const *headers)
{
    if (st->req) {
        cb_debug("mcp http: stream %u of session %.8s moves to a new connection", st->num,
                 st->hs->id);
        s_detach(st, true);
    }
    http_request_on_close(req, s_on_close, st);
    st->req = req;
    if (http_stream_begin(req, 200, "text/event-stream", headers) < 0) {
        s_detach(st, true); /* the connection is going; the client can resume */
        return -1;
    }
    return 0;
}

static const char *const s_sse_headers[] = {"Cache-Control", "no-cache", NULL};

/* ---- sessions ------------------------------------------------------------------------------- */

static void s_session_free(s_session_t *hs)
{
    hs->closing = true;
    for (s_stream_t *st = zlistx_first(hs->streams); st; st = zlistx_next(hs->streams))
        if (st->req) { /* what was under way ends here: no more of it will come */
            http_request_t *req = st->req;
            st->req = NULL;
            http_stream_end(req);
        }
    mcp_session_destroy(&hs->mcp); /* its calls are cancelled and send nothing */
    for (s_event_t *ev = hs->events ? zlistx_detach(hs->events, NULL) : NULL; ev;
         ev = zlistx_detach(hs->events, NULL))
        free(ev);
    zlistx_destroy(&hs->events);
    for (s_stream_t *st = hs->streams ? zlistx_detach(hs->streams, NULL) : NULL; st;
         st = zlistx_detach(hs->streams, NULL))
        s_stream_free(st);
    zlistx_destroy(&hs->streams);
    free(hs);
}

static void s_session_end(s_session_t *hs, const char *why)
{
    cb_info("mcp http: session %.8s ends (%s)", hs->id, why);
    zhashx_delete(hs->owner->sessions, hs->id);
    s_session_free(hs);
}

static s_session_t *s_session_new(mcp_http_t *self)
{
    unsigned char raw[16];
    if (RAND_bytes(raw, sizeof raw) != 1)
        return NULL;
    s_session_t *hs = cb_xcalloc(1, sizeof *hs);
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(hs->id + 2 * i, 3, "%02x", raw[i]);
    hs->owner = self;
    hs->next_stream = 1;
    hs->active_ms = cb_now_ms();
    hs->streams = zlistx_new();
    hs->events = zlistx_new();
    hs->get = s_stream_new(hs, NULL);
    hs->get->state = S_OPEN;
    zlistx_add_end(hs->streams, hs->get);
    hs->mcp = mcp_session_new(self->server, s_send, hs);
    hs->mcp->server_log = self->server->cfg.http_server_log;
    return hs;
}

/* ---- POST ----------------------------------------------------------------------------------- */

/* HTTP status of an answer given as JSON: a message that could not be taken at all (a parse
 * error, an invalid request) takes its kind's status; every other answer, errors included,
 * rides in a 200 (cb/error.h). */
static int s_status_of(json_t *reply)
{
    json_int_t code = json_integer_value(json_object_get(json_object_get(reply, "error"), "code"));
    if (code == cb_error_kind_jsonrpc_code(CB_ERR_PARSE))
        return cb_error_kind_http_status(CB_ERR_PARSE);
    if (code == cb_error_kind_jsonrpc_code(CB_ERR_BAD_REQUEST))
        return cb_error_kind_http_status(CB_ERR_BAD_REQUEST);
    return 200;
}

/* A request: answered as JSON when that was done during dispatch with nothing else to say,
 * else as an SSE stream that stays with the session until its response. init: an initialize,
 * whose successful answer carries the session id. */
static void s_post_request(s_session_t *hs, http_request_t *req, json_t *msg, json_t *id, bool init)
{
    s_stream_t *st = s_stream_new(hs, id);
    hs->dispatching = st;
    mcp_session_dispatch(hs->mcp, msg);
    hs->dispatching = NULL;
    const char *const with_id[] = {"Mcp-Session-Id", hs->id, "Cache-Control", "no-cache", NULL};
    const char *const *headers = init && hs->mcp->initialized ? with_id : s_sse_headers;
    if (st->answered && zlistx_size(st->held) == 1) {
        json_t *reply = zlistx_first(st->held);
        if (http_respond_json(req, s_status_of(reply), reply, headers) < 0)
            cb_debug("mcp http: the answer could not be sent; the client left");
        s_stream_free(st);
        return;
    }
    st->num = hs->next_stream++;
    st->state = S_OPEN;
    zlistx_t *held = steal_pointer(&st->held);
    zlistx_add_end(hs->streams, st);
    if (s_attach(st, req, headers) == 0) {
        char prime[80];
        int n =
            snprintf(prime, sizeof prime, "id: %u-0\nretry: %d\ndata:\n\n", st->num, S_RETRY_MS);
        s_write(st, prime, (size_t)n);
    }
    /* What came during dispatch, in order. The response ends the stream (which may then be
     * forgotten): what follows it goes to the GET stream. */
    for (json_t *m = zlistx_detach(held, NULL); m; m = zlistx_detach(held, NULL)) {
        bool response = !json_object_get(m, "method");
        if (st)
            s_put(st, m);
        else if (!response)
            s_put(hs->get, m);
        if (response)
            st = NULL;
        json_decref(m);
    }
    zlistx_destroy(&held);
}

/* A notification or a response from the client: 202, or 400 with the error it earned. */
static void s_post_other(s_session_t *hs, http_request_t *req, json_t *msg)
{
    s_stream_t *cap = s_stream_new(hs, NULL);
    hs->dispatching = cap;
    mcp_session_dispatch(hs->mcp, msg);
    hs->dispatching = NULL;
    json_t *reply = NULL;
    for (json_t *m = zlistx_first(cap->held); m; m = zlistx_next(cap->held)) {
        if (!json_object_get(m, "method") && !reply)
            reply = m;
        else
            s_put(hs->get, m);
    }
    if (reply)
        http_respond_json(req, 400, reply, NULL);
    else
        http_respond(req, 202, NULL, NULL, "", 0);
    s_stream_free(cap);
    /* A cancelled request gets no response, so its stream ends now. */
    const char *method = json_string_value(json_object_get(msg, "method"));
    if (!reply && method && strcmp(method, "notifications/cancelled") == 0) {
        json_t *rid = json_object_get(json_object_get(msg, "params"), "requestId");
        s_stream_t *st = s_stream_of(hs, rid);
        if (st && st->state == S_OPEN)
            s_stream_done(st);
    }
}

/* Does an Accept header take this media type (or a wildcard that covers it)? */
static bool s_accepts(const char *accept, const char *type)
{
    if (!accept)
        return false;
    char major[32];
    const char *slash = strchr(type, '/');
    snprintf(major, sizeof major, "%.*s/*", (int)(slash - type), type);
    return strcasestr(accept, type) || strcasestr(accept, major) || strstr(accept, "*/*");
}

static bool s_content_is_json(const char *ct)
{
    if (!ct)
        return false;
    while (*ct == ' ')
        ct++;
    size_t n = strlen("application/json");
    return strncasecmp(ct, "application/json", n) == 0 &&
           (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

/* Whether a request's credentials are those of the principal a session was started for: the
 * same tenant in the same role (an admin's session is not a tenant's, nor the reverse). */
static bool s_same_principal(const cb_principal_t *a, const cb_principal_t *b)
{
    return a && b && a->admin == b->admin && strcmp(a->tenant, b->tenant) == 0;
}

/* The session a request names, or NULL after answering 400 or 404. */
static s_session_t *s_session_of(mcp_http_t *self, http_request_t *req, json_t *id)
{
    const char *sid = http_request_header(req, "Mcp-Session-Id");
    if (!sid || !sid[0]) {
        s_refuse(
            req, CB_ERR_TRANSPORT, id, NULL,
            "Bad Request: the Mcp-Session-Id header is required (initialize starts a session)");
        return NULL;
    }
    s_session_t *hs = zhashx_lookup(self->sessions, sid);
    if (hs && !s_same_principal(&hs->mcp->who, http_request_principal(req)))
        hs = NULL; /* another tenant's session: answered exactly as an unknown one */
    if (!hs) {
        s_refuse(req, CB_ERR_NO_SESSION, id, NULL,
                 "Session not found: it ended (idle, deleted, or the server restarted); "
                 "initialize a new one");
        return NULL;
    }
    const char *version = http_request_header(req, "MCP-Protocol-Version");
    if (version && !mcp_protocol_supported(version)) {
        s_refuse(req, CB_ERR_TRANSPORT, id, NULL,
                 "Bad Request: unsupported MCP-Protocol-Version '%.40s' (supported: 2025-11-25, "
                 "2025-06-18, 2025-03-26, 2024-11-05)",
                 version);
        return NULL;
    }
    hs->active_ms = cb_now_ms();
    return hs;
}

static void s_post(mcp_http_t *self, http_request_t *req)
{
    const char *accept = http_request_header(req, "Accept");
    if (!s_accepts(accept, "application/json") || !s_accepts(accept, "text/event-stream"))
        return s_refuse(req, CB_ERR_NOT_ACCEPTABLE, NULL, NULL,
                        "Not Acceptable: the Accept header must list both application/json and "
                        "text/event-stream");
    if (!s_content_is_json(http_request_header(req, "Content-Type")))
        return s_refuse(req, CB_ERR_MEDIA_TYPE, NULL, NULL,
                        "Unsupported Media Type: the body must be application/json");
    size_t len = 0;
    const char *body = http_request_body(req, &len);
    if (len > self->server->cfg.max_message_bytes)
        return s_refuse(req, CB_ERR_TOO_LARGE, NULL, NULL,
                        "message too large: %zu bytes, the limit is %zu (CELLBLOCK_MAX_MESSAGE_MB)",
                        len, self->server->cfg.max_message_bytes);
    json_error_t jerr;
    json_auto_t *msg = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!msg) {
        bool rounded = false;
        json_auto_t *id = mcp_rpc_salvage_id(body, len, &rounded);
        return s_refuse(req, CB_ERR_PARSE, id, NULL, "parse error: %s (at byte %d)%s",
                        mcp_rpc_parse_error_text(&jerr), jerr.position,
                        rounded ? MCP_RPC_ROUNDED_ID_NOTE : "");
    }
    if (json_is_array(msg))
        return s_refuse(
            req, CB_ERR_BAD_REQUEST, NULL, NULL,
            "invalid request: batches are not supported; send one JSON-RPC message per POST");
    json_t *id = json_object_get(msg, "id");
    const char *method = json_string_value(json_object_get(msg, "method"));
    bool request = method && id && !json_is_null(id);
    json_t *rid = json_is_string(id) || json_is_integer(id) ? id : NULL;
    if (request && strcmp(method, "initialize") == 0) {
        if (http_request_header(req, "Mcp-Session-Id"))
            return s_refuse(
                req, CB_ERR_BAD_REQUEST, rid, NULL,
                "Bad Request: initialize starts a session and must not carry Mcp-Session-Id");
        if (zhashx_size(self->sessions) >= self->max_sessions)
            return s_refuse(
                req, CB_ERR_BUSY, rid, NULL,
                "Service Unavailable: %zu MCP sessions are open, the most allowed "
                "(CELLBLOCK_MCP_MAX_SESSIONS); end one (DELETE) or wait for one to expire",
                self->max_sessions);
        s_session_t *hs = s_session_new(self);
        if (!hs)
            return s_refuse(req, CB_ERR_INTERNAL, rid, NULL, "no random bytes for a session id");
        zhashx_insert(self->sessions, hs->id, hs);
        mcp_session_set_principal(hs->mcp, http_request_principal(req));
        s_post_request(hs, req, msg, id, true);
        if (!hs->mcp->initialized) { /* refused (a bad protocolVersion): no session */
            zhashx_delete(self->sessions, hs->id);
            s_session_free(hs);
        } else {
            cb_info("mcp http: session %.8s starts (%zu open)", hs->id,
                    zhashx_size(self->sessions));
        }
        return;
    }
    s_session_t *hs = s_session_of(self, req, rid);
    if (!hs)
        return;
    if (request)
        s_post_request(hs, req, msg, id, false);
    else
        s_post_other(hs, req, msg);
}

/* ---- GET and DELETE ------------------------------------------------------------------------- */

/* Resume stream num after event seq on req. */
static void s_resume(s_session_t *hs, http_request_t *req, unsigned num, uint64_t seq)
{
    s_stream_t *st = NULL;
    for (s_stream_t *s = zlistx_first(hs->streams); s; s = zlistx_next(hs->streams))
        if (s->num == num && s->state != S_HELD)
            st = s;
    if (!st) { /* ended and forgotten: nothing more will come on it */
        cb_debug("mcp http: resuming stream %u of session %.8s: it is gone", num, hs->id);
        return (void)http_respond(req, 204, NULL, NULL, "", 0);
    }
    size_t after = 0;
    for (s_event_t *ev = zlistx_first(hs->events); ev; ev = zlistx_next(hs->events))
        after += ev->stream == st && ev->seq > seq;
    if (st->state == S_DONE && after == 0)
        return (void)http_respond(req, 204, NULL, NULL, "", 0);
    if (s_attach(st, req, s_sse_headers) < 0)
        return;
    char retry[32];
    int n = snprintf(retry, sizeof retry, "retry: %d\n\n", S_RETRY_MS);
    s_write(st, retry, (size_t)n);
    for (s_event_t *ev = zlistx_first(hs->events); ev && st->req; ev = zlistx_next(hs->events))
        if (ev->stream == st && ev->seq > seq)
            s_write_event(st, ev);
    cb_debug("mcp http: stream %u of session %.8s resumed after %" PRIu64 " (%zu events replayed)",
             num, hs->id, seq, after);
    if (st->state == S_DONE)
        s_detach(st, true); /* its response was among them */
}

static void s_get(mcp_http_t *self, http_request_t *req)
{
    if (!s_accepts(http_request_header(req, "Accept"), "text/event-stream"))
        return s_refuse(req, CB_ERR_NOT_ACCEPTABLE, NULL, NULL,
                        "Not Acceptable: the Accept header must list text/event-stream");
    s_session_t *hs = s_session_of(self, req, NULL);
    if (!hs)
        return;
    const char *last = http_request_header(req, "Last-Event-ID");
    if (last) {
        unsigned num;
        uint64_t seq;
        int end = 0;
        if (sscanf(last, "%u-%" SCNu64 "%n", &num, &seq, &end) != 2 || last[end] ||
            num >= hs->next_stream)
            return s_refuse(req, CB_ERR_TRANSPORT, NULL, NULL,
                            "Bad Request: Last-Event-ID '%.40s' is not an event id of this session",
                            last);
        return s_resume(hs, req, num, seq);
    }
    s_stream_t *st = hs->get;
    if (st->req)
        return s_refuse(req, CB_ERR_CONFLICT, NULL, NULL,
                        "Conflict: this session's GET stream is already open (resume it with "
                        "Last-Event-ID to move it to this connection)");
    if (s_attach(st, req, s_sse_headers) < 0)
        return;
    char prime[80];
    int n = snprintf(prime, sizeof prime, "id: 0-%" PRIu64 "\nretry: %d\ndata:\n\n", st->written,
                     S_RETRY_MS);
    s_write(st, prime, (size_t)n);
    uint64_t from = st->written; /* what was buffered while no GET was open */
    for (s_event_t *ev = zlistx_first(hs->events); ev && st->req; ev = zlistx_next(hs->events))
        if (ev->stream == st && ev->seq > from)
            s_write_event(st, ev);
}

static void s_delete(mcp_http_t *self, http_request_t *req)
{
    s_session_t *hs = s_session_of(self, req, NULL);
    if (!hs)
        return;
    s_session_end(hs, "the client deleted it");
    http_respond(req, 204, NULL, NULL, "", 0);
}

static void s_on_request(http_request_t *req, void *arg)
{
    mcp_http_t *self = arg;
    const char *method = http_request_method(req);
    if (strcmp(http_request_path(req), self->path) != 0)
        return (void)http_respond_error(req, 404, "no such MCP endpoint");
    if (strcmp(method, "POST") == 0)
        return s_post(self, req);
    if (strcmp(method, "GET") == 0)
        return s_get(self, req);
    if (strcmp(method, "DELETE") == 0)
        return s_delete(self, req);
    static const char *const allow[] = {"Allow", "GET, POST, DELETE", NULL};
    s_refuse(req, CB_ERR_BAD_METHOD, NULL, allow, "Method Not Allowed: %.16s", method);
}

/* ---- expiry and keep-alive ------------------------------------------------------------------ */

static bool s_idle(mcp_http_t *self, s_session_t *hs, int64_t now)
{
    bool busy = zlistx_size(hs->mcp->calls) > 0;
    for (s_stream_t *st = zlistx_first(hs->streams); st && !busy; st = zlistx_next(hs->streams))
        busy = st->req != NULL;
    if (busy)
        hs->active_ms = now;
    return !busy && now - hs->active_ms >= self->idle_ms;
}

/* Idle sessions end here, in a deferred call (a fresh loop turn). Not from the timer: ending a
 * session deletes its sandbox and frees what the tick's callers may hold (kg.h's rule 2). */
static void s_expire(kg_gateway_t *gw, void *arg)
{
    mcp_http_t *self = arg;
    self->expire_queued = false;
    int64_t now = cb_now_ms();
    zlistx_t *idle = zlistx_new();
    for (s_session_t *hs = zhashx_first(self->sessions); hs && idle;
         hs = zhashx_next(self->sessions))
        if (s_idle(self, hs, now))
            zlistx_add_end(idle, hs);
    for (s_session_t *hs = idle ? zlistx_first(idle) : NULL; hs; hs = zlistx_next(idle))
        s_session_end(hs, "idle");
    zlistx_destroy(&idle);
}

static int s_on_tick(zloop_t *loop, int timer_id, void *arg)
{
    mcp_http_t *self = arg;
    int64_t now = cb_now_ms();
    bool keepalive = now - self->keepalive_ms >= S_KEEPALIVE_MS, expire = false;
    if (keepalive)
        self->keepalive_ms = now;
    for (s_session_t *hs = zhashx_first(self->sessions); hs; hs = zhashx_next(self->sessions)) {
        for (s_stream_t *st = zlistx_first(hs->streams); st && keepalive;
             st = zlistx_next(hs->streams))
            if (st->req)
                s_write(st, ":\n\n", 3);
        expire |= s_idle(self, hs, now);
    }
    if (expire && !self->expire_queued) {
        self->expire_queued = true;
        kg_gateway_defer(self->server->gw, s_expire, self);
    }
    return 0;
}

/* ---- the transport -------------------------------------------------------------------------- */

mcp_http_t *mcp_http_new(mcp_server_t *server, http_server_t *http, const mcp_http_opts_t *opts,
                         cb_error_t *err)
{
    const char *path = opts && opts->path ? opts->path : "/mcp";
    if (path[0] != '/' || strlen(path) >= sizeof((mcp_http_t *)0)->path)
        return cb_error_fail(err, CB_ERR_INVALID,
                             "the MCP endpoint must be a path like /mcp; got '%.60s'", path),
               NULL;
    mcp_http_t *self = cb_xcalloc(1, sizeof *self);
    self->server = server;
    self->http = http;
    self->loop = kg_gateway_loop(server->gw);
    snprintf(self->path, sizeof self->path, "%s", path);
    /* Unset options come from the server's configuration (the environment), then defaults. */
    int idle_s =
        opts && opts->idle_timeout_s > 0 ? opts->idle_timeout_s : server->cfg.session_timeout_s;
    size_t max = opts && opts->max_sessions ? opts->max_sessions : server->cfg.max_sessions;
    self->idle_ms = 1000 * (int64_t)(idle_s > 0 ? idle_s : 3600);
    self->max_sessions = max ? max : 256;
    self->replay_events = opts && opts->replay_events ? opts->replay_events : 1000;
    self->keepalive_ms = cb_now_ms();
    self->timer = -1;
    self->sessions = zhashx_new(); /* czmq aborts when memory runs out */
    if (http_server_route(http, self->path, s_on_request, NULL, self, err) < 0) {
        zhashx_destroy(&self->sessions);
        free(self);
        return cb_error_prefix(err, "route %s: ", path), NULL;
    }
    /* Often enough that a session ends within a quarter of its idle time after it. */
    int64_t tick = self->idle_ms / 4;
    tick = tick < 250 ? 250 : tick > 5000 ? 5000 : tick;
    self->timer = kg_timer_start(server->gw, (size_t)tick, 0, s_on_tick, self);
    if (self->timer < 0) {
        int e = errno;
        mcp_http_destroy(&self);
        return cb_error_make(err, e, "MCP HTTP session timer"), NULL;
    }
    return self;
}

void mcp_http_destroy(mcp_http_t **self_p)
{
    mcp_http_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    *self_p = NULL;
    kg_timer_stop(self->server->gw, &self->timer);
    if (self->expire_queued)
        kg_gateway_defer_cancel(self->server->gw, s_expire, self);
    if (zhashx_size(self->sessions))
        cb_info("mcp http: ending %zu session(s)", zhashx_size(self->sessions));
    for (s_session_t *hs = zhashx_first(self->sessions); hs; hs = zhashx_first(self->sessions)) {
        zhashx_delete(self->sessions, hs->id);
        s_session_free(hs);
    }
    zhashx_destroy(&self->sessions);
    free(self);
}
