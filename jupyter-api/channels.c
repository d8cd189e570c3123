/* channels.c: the WebSocket /api/kernels/{id}/channels of the Jupyter Kernel Gateway API.
 *
 * A "channels session" belongs to one kernel and one client session_id (a connection without
 * session_id gets a fresh one of its own, freed when it closes). It owns a client of the
 * kernel's shell, control and stdin channels (kg_kernel_client_t: DEALERs with one routing id,
 * connected to endpoints that stay the same across restarts). iopub has no socket here: the
 * kernel's own SUB has been subscribed since the start (no slow joiner), and the engine hands
 * every verified iopub message to the API's listener, which fans it out to every session of the
 * kernel.
 *
 * Client to kernel: the message is decoded (channels_codec.c: text JSON, jupyter_server's
 * binary format for messages with buffers, or the v1.kernel.websocket.jupyter.org format), the
 * four dicts must be objects, the header must name msg_id and msg_type, the channel must be
 * shell, control or stdin; then the engine signs it with the kernel's key and sends it.
 * Anything else is dropped, logged and counted, and the connection stays up. A shutdown_request
 * is never forwarded: on a kernel the API started it deletes (or, with restart, restarts) the
 * kernel and is answered here; on anyone else's kernel it is refused with a shutdown_reply
 * error, as the attach proxy does.
 *
 * Kernel to client: replies reach the session verified (signature and replay guard) and parsed
 * by the engine. Each message goes to the session's WebSocket in the format that WebSocket
 * agreed; while a session_id has no WebSocket its messages are kept, at most replay_messages of
 * them (oldest dropped first), for replay_keep_s; a new WebSocket with the same session_id gets
 * them first, then live ones. A second WebSocket with a session_id already connected replaces
 * the first, which is closed with a reason.
 */
#include <string.h>

#include "api_private.h"
#include "cb/alloc.h"
#include "cb/cleanup.h"
#include "cb/log.h"
#include "channels_codec.h"
#include "kg/gateway.h"
#include "kg/kernel.h"
#include "kg/client.h"

#define S_SUBPROTOCOL_V1 "v1.kernel.websocket.jupyter.org"
#define S_SESSION_ID_MAX 256
#define S_CLOSE_REASON_MAX 120 /* a close frame's reason is at most 123 bytes */

typedef struct {
    jp_channel_t ch;
    jp_msg_t *msg; /* dicts shared with the kernel's message, buffers copied */
    size_t bytes;  /* its size as JSON plus buffers, against S_KEPT_MAX_BYTES */
} s_item_t;

/* A disconnected session_id keeps at most this much, whatever replay_messages allows: a
 * thousand 10 MB outputs must not sit in the gateway. */
#define S_KEPT_MAX_BYTES (32u << 20)

struct japi_session {
    japi_t *api;
    japi_kernel_t *ak; /* NULL once doomed */
    char *session_id;  /* the client's; NULL: anonymous (freed when its WebSocket closes) */
    http_ws_t *ws;     /* NULL while disconnected */
    bool ws_failed;    /* a send failed: the WebSocket is closing, keep messages instead */
    bool v1;
    kg_kernel_client_t *client; /* shell, control and stdin; destroyed when doomed */
    zlistx_t *kept;             /* s_item_t * while disconnected */
    size_t dropped;             /* kept messages dropped at the cap */
    size_t kept_bytes;          /* the sizes of the kept items */
    zlistx_t *held;             /* s_item_t *: what the client sent before the kernel was ready */
    int keep_timer;
    bool doomed;
};

/* One message, encoded once per format while it is fanned out. */
typedef struct {
    cb_buf_t data[2];
    bool binary[2];
    bool done[2];
    bool failed[2];
} s_encoded_t;

/* ---- delivery ------------------------------------------------------------------------------- */

static void s_item_free(s_item_t **item_p)
{
    if (*item_p) {
        jp_msg_destroy(&(*item_p)->msg);
        free(*item_p);
        *item_p = NULL;
    }
}

/* The size a message takes as JSON (json_dumpb with no buffer measures) plus its buffers. */
static size_t s_msg_bytes(const jp_msg_t *msg)
{
    size_t n = json_dumpb(msg->header, NULL, 0, JSON_COMPACT) +
               json_dumpb(msg->parent_header, NULL, 0, JSON_COMPACT) +
               json_dumpb(msg->metadata, NULL, 0, JSON_COMPACT) +
               json_dumpb(msg->content, NULL, 0, JSON_COMPACT);
    for (zframe_t *f = zmsg_first(msg->buffers); f; f = zmsg_next(msg->buffers))
        n += zframe_size(f);
    return n;
}

static void s_keep(japi_session_t *sess, jp_channel_t ch, const jp_msg_t *msg)
{
    jp_msg_t *copy = japi_msg_share(msg);
    if (!copy) { /* libzmq had no memory for a buffer */
        sess->dropped++;
        return;
    }
    s_item_t *item = cb_xcalloc(1, sizeof *item);
    item->ch = ch;
    item->msg = copy;
    item->bytes = s_msg_bytes(msg);
    sess->kept_bytes += item->bytes;
    zlistx_add_end(sess->kept, item);
    while (zlistx_size(sess->kept) > sess->api->replay_messages ||
           (sess->kept_bytes > S_KEPT_MAX_BYTES && zlistx_size(sess->kept) > 0)) {
        s_item_t *old = zlistx_detach(sess->kept, NULL);
        sess->kept_bytes -= old->bytes;
        s_item_free(&old);
        sess->dropped++;
    }
}

/* Send to the session's WebSocket, or keep it while there is none. enc caches the encodings of
 * one message across the sessions it is fanned out to (may be NULL). */
static void s_deliver(japi_session_t *sess, jp_channel_t ch, const jp_msg_t *msg, s_encoded_t *enc)
{
    if (sess->doomed)
        return;
    if (!sess->ws || sess->ws_failed) {
        if (sess->session_id)
            s_keep(sess, ch, msg);
        return;
    }
    s_encoded_t own = {0};
    s_encoded_t *e = enc ? enc : &own;
    int f = sess->v1 ? 1 : 0;
    if (!e->done[f]) {
        e->done[f] = true;
        e->failed[f] = japi_channels_encode(msg, jp_channel_name(ch), sess->v1, &e->data[f],
                                            &e->binary[f]) < 0;
    }
    if (e->failed[f]) {
        cb_warn("jupyter api: could not encode a %s message for a WebSocket", jp_msg_type(msg));
    } else if (http_ws_send(sess->ws, e->data[f].data, e->data[f].len, e->binary[f]) < 0) {
        /* The connection is closing (on_close follows): keep what comes meanwhile. */
        sess->ws_failed = true;
    }
    if (!enc) {
        cb_buf_free(&own.data[0]);
        cb_buf_free(&own.data[1]);
    }
}

static void s_encoded_free(s_encoded_t *e)
{
    cb_buf_free(&e->data[0]);
    cb_buf_free(&e->data[1]);
}

/* What was kept for a session_id, first, to its new WebSocket. */
static void s_replay(japi_session_t *sess)
{
    if (sess->dropped)
        cb_info(
            "jupyter api: session %.36s reconnected; %zu message(s) were dropped while it was away "
            "(the buffer keeps %zu, up to %u MiB)",
            sess->session_id, sess->dropped, sess->api->replay_messages, S_KEPT_MAX_BYTES >> 20);
    sess->dropped = 0;
    s_item_t *item;
    while (sess->ws && !sess->ws_failed && (item = zlistx_detach(sess->kept, NULL))) {
        sess->kept_bytes -= item->bytes;
        s_deliver(sess, item->ch, item->msg, NULL);
        s_item_free(&item);
    }
}

/* ---- sessions ------------------------------------------------------------------------------- */

/* A close frame's reason is short: cut it (reasons here are ASCII). */
static void s_cut_reason(char out[S_CLOSE_REASON_MAX + 1], const char *reason)
{
    size_t len = reason ? strlen(reason) : 0;
    if (len > S_CLOSE_REASON_MAX)
        len = S_CLOSE_REASON_MAX;
    if (len)
        memcpy(out, reason, len);
    out[len] = '\0';
}

static void s_close_ws(japi_session_t *sess, int code, const char *reason)
{
    if (!sess->ws)
        return;
    char cut[S_CLOSE_REASON_MAX + 1];
    s_cut_reason(cut, reason);
    http_ws_close(sess->ws, code, cut);
    sess->ws = NULL;
    sess->ws_failed = false;
}

/* No more traffic: close its WebSocket (code, reason), stop reading, leave the kernel's list;
 * the API's deferred reap frees it on a fresh loop turn (kg.h's rule 2). */
static void s_doom(japi_session_t *sess, int code, const char *reason)
{
    if (sess->doomed)
        return;
    sess->doomed = true;
    japi_t *api = sess->api;
    s_close_ws(sess, code, reason);
    kg_timer_stop(api->gw, &sess->keep_timer);
    /* Stop reading and reconnecting now: the client's endpoints name the kernel's fixed fd
     * numbers, closed (and maybe reused) once the kernel is freed, maybe before the reap. */
    kg_kernel_client_destroy(&sess->client);
    if (sess->ak) {
        void *handle = zlistx_find(sess->ak->sessions, sess);
        if (handle)
            zlistx_detach(sess->ak->sessions, handle);
        sess->ak = NULL;
    }
    zlistx_add_end(api->doomed, sess);
    japi_wake(api);
}

void japi_session_free(japi_session_t *sess)
{
    kg_kernel_client_destroy(&sess->client);
    s_item_t *item;
    while (sess->kept && (item = zlistx_detach(sess->kept, NULL)))
        s_item_free(&item);
    zlistx_destroy(&sess->kept);
    while (sess->held && (item = zlistx_detach(sess->held, NULL)))
        s_item_free(&item);
    zlistx_destroy(&sess->held);
    free(sess->session_id);
    free(sess);
}

static int s_on_keep_expired(zloop_t *loop, int timer_id, void *arg)
{
    japi_session_t *sess = arg;
    kg_gateway_t *gw = sess->api->gw;
    sess->keep_timer = -1;
    cb_debug("jupyter api: session %.36s did not come back; %zu kept message(s) dropped",
             sess->session_id, zlistx_size(sess->kept));
    s_doom(sess, 1000, NULL);
    return kg_gateway_handler_result(gw);
}

static void s_client_message(japi_session_t *sess, const void *data, size_t len, bool binary);

static void s_on_ws_message(http_ws_t *ws, const void *data, size_t len, bool binary, void *arg)
{
    japi_session_t *sess = arg;
    if (!sess->doomed && sess->ws == ws)
        s_client_message(sess, data, len, binary);
}

static void s_on_ws_close(http_ws_t *ws, void *arg)
{
    japi_session_t *sess = arg;
    if (sess->ws != ws)
        return;
    sess->ws = NULL;
    sess->ws_failed = false;
    if (sess->doomed)
        return;
    if (!sess->session_id) {
        s_doom(sess, 1000, NULL);
        return;
    }
    /* Keep its sockets and what arrives for a while: the client may come back. */
    sess->keep_timer = kg_timer_start(sess->api->gw, (size_t)sess->api->replay_keep_s * 1000, 1,
                                      s_on_keep_expired, sess);
    if (sess->keep_timer < 0)
        s_doom(sess, 1000, NULL);
}

static void s_on_kernel_message(kg_kernel_client_t *client, jp_channel_t ch, const jp_msg_t *msg,
                                void *arg);

static japi_session_t *s_session_new(japi_kernel_t *ak, const char *session_id, cb_error_t *err)
{
    japi_session_t *sess = cb_xcalloc(1, sizeof *sess);
    sess->api = ak->api;
    sess->keep_timer = -1;
    sess->kept = zlistx_new();
    sess->held = zlistx_new();
    sess->session_id = cb_xstrdup_or_null(session_id);
    if (!(sess->client = kg_kernel_client_new(ak->kernel, s_on_kernel_message, sess, err))) {
        japi_session_free(sess);
        return NULL;
    }
    zlistx_add_end(ak->sessions, sess);
    sess->ak = ak;
    return sess;
}

/* ---- kernel to client ----------------------------------------------------------------------- */

/* A reply on shell, control or stdin, verified by the engine: to this session's WebSocket. */
static void s_on_kernel_message(kg_kernel_client_t *client, jp_channel_t ch, const jp_msg_t *msg,
                                void *arg)
{
    japi_session_t *sess = arg;
    if (!sess->doomed && sess->ak && sess->ak->kernel)
        s_deliver(sess, ch, msg, NULL);
}

void japi_channels_on_iopub(japi_kernel_t *ak, const jp_msg_t *msg)
{
    if (zlistx_size(ak->sessions) == 0)
        return;
    s_encoded_t enc = {0};
    for (japi_session_t *sess = zlistx_first(ak->sessions); sess; sess = zlistx_next(ak->sessions))
        s_deliver(sess, JP_CH_IOPUB, msg, &enc);
    s_encoded_free(&enc);
}

/* An iopub status message of our own, as jupyter_server sends for restarts and deaths. */
static void s_send_status(japi_kernel_t *ak, const char *state)
{
    jp_msg_t *msg = jp_msg_new("status", kg_kernel_session(ak->kernel), NULL,
                               json_pack("{s:s}", "execution_state", state));
    if (msg) /* jp_msg_new may still fail for want of memory */
        japi_channels_on_iopub(ak, msg);
    jp_msg_destroy(&msg);
}

static void s_release_held(japi_kernel_t *ak);

void japi_channels_on_event(japi_kernel_t *ak, kg_kernel_event_t event, const char *detail)
{
    if (event == KG_EVENT_READY) {
        s_release_held(ak);
    } else if (event == KG_EVENT_RESTARTING) {
        s_send_status(ak, "restarting");
    } else if (event == KG_EVENT_DEAD) {
        s_send_status(ak, "dead");
    } else if (event == KG_EVENT_STOPPED) {
        s_send_status(ak, "dead");
        const char *why = japi_gone(ak->api, ak->id, NULL);
        cleanup_free char *reason =
            cb_strdup_printf("the kernel stopped: %s", why ? why : "it was shut down");
        japi_channels_close_all(ak, 1001, reason ? reason : "the kernel stopped");
    }
}

void japi_channels_close_all(japi_kernel_t *ak, int code, const char *reason)
{
    japi_session_t *sess;
    while (ak->sessions && (sess = zlistx_first(ak->sessions)))
        s_doom(sess, code, reason); /* detaches it from the list */
}

size_t japi_channels_connections(const japi_kernel_t *ak)
{
    size_t n = 0;
    for (japi_session_t *sess = zlistx_first(ak->sessions); sess; sess = zlistx_next(ak->sessions))
        n += sess->ws != NULL;
    return n;
}

/* ---- client to kernel ----------------------------------------------------------------------- */

/* A reply of our own on the session's WebSocket, parented to the client's request. */
static void s_reply(japi_session_t *sess, jp_channel_t ch, json_t *request_header, const char *type,
                    json_t *content)
{
    jp_msg_t *reply =
        jp_msg_new(type, kg_kernel_session(sess->ak->kernel), request_header, content);
    if (reply)
        s_deliver(sess, ch, reply, NULL);
    jp_msg_destroy(&reply);
}

/* A shutdown_request never reaches the kernel: the kernel would exit and the gateway would take
 * it for a death. On a kernel the API started it is done here (delete, or restart); anyone
 * else's kernel is not the client's to end. */
static void s_shutdown_request(japi_session_t *sess, jp_channel_t ch, jp_msg_t *m)
{
    japi_kernel_t *ak = sess->ak;
    bool restart = json_is_true(json_object_get(m->content, "restart"));
    if (!ak->owned) {
        cb_info("jupyter api: refused a shutdown_request on kernel %.8s (not started by the API)",
                ak->id);
        s_reply(sess, ch, m->header, "shutdown_reply",
                json_pack("{s:s, s:s, s:s, s:[], s:b}", "status", "error", "ename",
                          "ShutdownRefused", "evalue",
                          "this kernel belongs to an MCP session; you may use it but not end it",
                          "traceback", "restart", restart));
        return;
    }
    s_reply(sess, ch, m->header, "shutdown_reply",
            json_pack("{s:s, s:b}", "status", "ok", "restart", restart));
    if (restart) {
        cb_error_t err = {0};
        if (kg_kernel_restart(ak->kernel, &err) < 0)
            cb_warn("jupyter api: restart of kernel %.8s: %s", ak->id, err.msg);
    } else {
        cb_info("jupyter api: kernel %.8s shut down by a shutdown_request", ak->id);
        japi_kernel_delete(ak, "it was shut down by a client's shutdown_request");
    }
}

static void s_to_kernel(japi_session_t *sess, jp_channel_t ch, jp_msg_t *m)
{
    /* The engine signs it, and counts it as the kernel's activity and its sandbox's use. */
    cb_error_t err = {0};
    if (kg_kernel_client_send(sess->client, ch, m, &err) < 0)
        cb_warn("jupyter api: could not %s", err.msg);
}

/* A client may send as soon as its WebSocket opens (jupyter_server's gateway client does, right
 * after the 201), while the kernel starts or restarts. Such messages wait here, in order, until
 * the kernel is ready (s_release_held): a kernel still starting may not yet take them, and one
 * restarting would lose them with the old process. At most S_HELD_MAX wait per session. */
#define S_HELD_MAX 1000

static void s_hold(japi_session_t *sess, jp_channel_t ch, jp_msg_t **m_p)
{
    if (zlistx_size(sess->held) >= S_HELD_MAX) {
        cb_warn("jupyter api: dropped a %s for kernel %.8s: %d messages already wait for it to be "
                "ready",
                jp_msg_type(*m_p), sess->ak->id, S_HELD_MAX);
        return;
    }
    s_item_t *item = cb_xcalloc(1, sizeof *item);
    item->ch = ch;
    item->msg = *m_p;
    *m_p = NULL;
    zlistx_add_end(sess->held, item);
}

static void s_client_message(japi_session_t *sess, const void *data, size_t len, bool binary)
{
    japi_kernel_t *ak = sess->ak;
    kg_kernel_t *k = ak->kernel;
    const char *why = NULL;
    jp_channel_t ch = JP_CH_COUNT;
    jp_msg_t *m = japi_channels_decode(data, len, binary, sess->v1, &ch, &why);
    if (!m) {
        kg_gateway_count_malformed(ak->api->gw);
        cb_info("jupyter api: dropped a message from a WebSocket on kernel %.8s: %s", ak->id, why);
        return;
    }
    cb_debug("jupyter api: %s on %s from a WebSocket on kernel %.8s%s", jp_msg_type(m),
             jp_channel_name(ch), ak->id,
             kg_kernel_is_ready(k) ? "" : " (held until the kernel is ready)");
    if (strcmp(jp_msg_type(m), "shutdown_request") == 0)
        s_shutdown_request(sess, ch, m);
    else if (!kg_kernel_is_ready(k) || zlistx_size(sess->held) > 0)
        s_hold(sess, ch, &m);
    else
        s_to_kernel(sess, ch, m);
    jp_msg_destroy(&m);
}

/* The kernel is ready (again): what its clients sent meanwhile goes now, in order. */
static void s_release_held(japi_kernel_t *ak)
{
    for (japi_session_t *sess = zlistx_first(ak->sessions); sess;
         sess = zlistx_next(ak->sessions)) {
        s_item_t *item;
        while ((item = zlistx_detach(sess->held, NULL))) {
            s_to_kernel(sess, item->ch, item->msg);
            s_item_free(&item);
        }
    }
}

/* ---- opening -------------------------------------------------------------------------------- */

static void s_refuse(http_ws_t *ws, int code, const char *reason)
{
    char cut[S_CLOSE_REASON_MAX + 1];
    s_cut_reason(cut, reason ? reason : "refused");
    cb_info("jupyter api: WebSocket refused: %s", cut);
    http_ws_close(ws, code, cut);
}

void japi_channels_on_ws(http_ws_t *ws, void *arg)
{
    japi_t *api = arg;
    const http_request_t *req = http_ws_request(ws);
    const char *path = http_request_path(req);
    static const char prefix[] = "/api/kernels/";
    char id[64] = "";
    const char *slash = strncmp(path, prefix, sizeof prefix - 1) == 0
                            ? strchr(path + sizeof prefix - 1, '/')
                            : NULL;
    size_t id_len = slash ? (size_t)(slash - path - (sizeof prefix - 1)) : 0;
    if (!slash || id_len == 0 || id_len >= sizeof id ||
        (strcmp(slash, "/channels") != 0 && strcmp(slash, "/channels/") != 0))
        return s_refuse(ws, 1008, "no WebSocket at this path");
    memcpy(id, path + sizeof prefix - 1, id_len);
    const cb_principal_t *who = http_request_principal(req);
    kg_kernel_t *k = japi_kernel_find(api, id, who);
    if (!k) {
        cleanup_free char *reason = japi_not_found_message(api, id, who);
        return s_refuse(ws, 4004, reason);
    }
    const char *session_id = http_request_query(req, "session_id");
    if (session_id && !session_id[0])
        session_id = NULL;
    if (session_id && strlen(session_id) > S_SESSION_ID_MAX)
        return s_refuse(ws, 1008, "session_id is too long");
    japi_kernel_t *ak = japi_kernel_get(api, k, true);
    if (!ak)
        return s_refuse(ws, 1011, "could not follow the kernel");

    japi_session_t *sess = NULL;
    for (japi_session_t *s = session_id ? zlistx_first(ak->sessions) : NULL; s && !sess;
         s = zlistx_next(ak->sessions))
        if (s->session_id && strcmp(s->session_id, session_id) == 0)
            sess = s;
    if (sess) {
        if (sess->ws)
            s_close_ws(sess, 1000, "replaced by a newer connection with the same session_id");
        kg_timer_stop(api->gw, &sess->keep_timer);
    } else {
        cb_error_t err = {0};
        if (!(sess = s_session_new(ak, session_id, &err)))
            return s_refuse(ws, 1011, err.msg);
    }
    const char *proto = http_ws_subprotocol(ws);
    sess->ws = ws;
    sess->ws_failed = false;
    sess->v1 = proto && strcmp(proto, S_SUBPROTOCOL_V1) == 0;
    http_ws_set_handlers(ws, s_on_ws_message, s_on_ws_close, sess);
    cb_debug("jupyter api: channels open on kernel %.8s (%s format, session %s)", ak->id,
             sess->v1 ? "v1" : "default", session_id ? session_id : "anonymous");
    s_replay(sess);
}
