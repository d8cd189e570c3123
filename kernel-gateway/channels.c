/* channels.c: the WebSocket /api/kernels/{id}/channels of the Jupyter Kernel Gateway API.
 *
 * A "channels session" belongs to one kernel and one client session_id (a connection without
 * session_id gets a fresh one of its own, freed when it closes). It owns DEALER sockets for
 * shell, control and stdin with one routing id (the kernel sends input_request to the identity
 * that made the execute_request), connected to the kernel's endpoints, which stay the same
 * across restarts while ZMQ reconnects by itself. iopub has no socket here: the kernel's own SUB
 * has been subscribed since the start (no slow joiner), and kernel.c hands every verified iopub
 * message to the API's listener, which fans it out to every session of the kernel.
 *
 * Client to kernel: the message is parsed (text JSON, jupyter_server's binary format for
 * messages with buffers, or the v1.kernel.websocket.jupyter.org format), the four dicts must be
 * objects, the header must name msg_id and msg_type, the channel must be shell, control or
 * stdin; then it is signed with the kernel's key and sent. Anything else is dropped, logged and
 * counted, and the connection stays up. A shutdown_request is never forwarded: on a kernel the
 * API started it deletes (or, with restart, restarts) the kernel and is answered here; on
 * anyone else's kernel it is refused with a shutdown_reply error, as the attach proxy does.
 *
 * Kernel to client: replies on the DEALERs are verified (signature and replay guard) before
 * they are parsed and forwarded. Each message goes to the session's WebSocket in the format that
 * WebSocket agreed; while a session_id has no WebSocket its messages are kept, at most
 * replay_messages of them (oldest dropped first), for replay_keep_s; a new WebSocket with the
 * same session_id gets them first, then live ones. A second WebSocket with a session_id already
 * connected replaces the first, which is closed with a reason.
 *
 * Formats (as jupyter_server writes and reads them):
 *   default   one text frame: {"header", "parent_header", "metadata", "content", "buffers": [],
 *             "channel", "msg_id", "msg_type"}; a message with buffers is one binary frame:
 *             uint32 BE n (= 1 + buffers), n uint32 BE offsets from the frame's start, the JSON
 *             (without "buffers"), then the buffers.
 *   v1        one binary frame: uint64 LE count of offsets, the offsets (uint64 LE, from the
 *             frame's start), then channel, header, parent_header, metadata, content, buffers;
 *             the last offset is the frame's end.
 */
#include <errno.h>
#include <string.h>

#include "api_private.h"
#include "cb/cleanup.h"
#include "channels_codec.h"
#include "cb/log.h"

#define S_SUBPROTOCOL_V1 "v1.kernel.websocket.jupyter.org"
#define S_MAX_BUFFERS 60       /* jp_wire_view_t holds 64 frames in all */
#define S_SESSION_ID_MAX 256
#define S_CLOSE_REASON_MAX 120 /* a close frame's reason is at most 123 bytes */

/* The three channels a session has a socket for, in socket order. */
static const jp_channel_t s_sock_channel[3] = {JP_CH_SHELL, JP_CH_CONTROL, JP_CH_STDIN};

typedef struct {
    jp_channel_t ch;
    jp_msg_t *msg; /* dicts shared with the kernel's message, buffers copied */
    size_t bytes;  /* its size as JSON plus buffers, against S_KEPT_MAX_BYTES */
} s_item_t;

/* A disconnected session_id keeps at most this much, whatever replay_messages allows: a
 * thousand 10 MB outputs must not sit in the gateway. */
#define S_KEPT_MAX_BYTES (32u << 20)

struct kg_chan_session {
    kg_api_t *api;
    kg_api_kernel_t *ak;  /* NULL once doomed */
    char *session_id;     /* the client's; NULL: anonymous (freed when its WebSocket closes) */
    http_ws_t *ws;        /* NULL while disconnected */
    bool ws_failed;       /* a send failed: the WebSocket is closing, keep messages instead */
    bool v1;
    zsock_t *socks[3];
    char endpoints[3][64]; /* what each connected to (jp_conninfo_endpoint) */
    zlistx_t *kept;       /* s_item_t * while disconnected */
    size_t dropped;       /* kept messages dropped at the cap */
    size_t kept_bytes;    /* the sizes of the kept items */
    zlistx_t *held;       /* s_item_t *: what the client sent before the kernel was ready */
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

/* ---- encoding ------------------------------------------------------------------------------- */

static void s_put_u32be(cb_buf_t *out, uint32_t v)
{
    unsigned char b[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16), (unsigned char)(v >> 8),
                          (unsigned char)v};
    cb_buf_append(out, (const char *)b, 4);
}

static void s_put_u64le(cb_buf_t *out, uint64_t v)
{
    unsigned char b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(v >> (8 * i));
    cb_buf_append(out, (const char *)b, 8);
}

static uint32_t s_get_u32be(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t s_get_u64le(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* The default format. */
static int s_encode_default(const jp_msg_t *msg, const char *channel, cb_buf_t *out, bool *binary)
{
    size_t nbuf = zmsg_size(msg->buffers);
    json_auto_t *whole = json_pack("{s:O, s:O, s:O, s:O, s:s, s:s, s:s}", "header", msg->header, "parent_header",
                                   msg->parent_header, "metadata", msg->metadata, "content", msg->content,
                                   "channel", channel, "msg_id", jp_msg_id(msg), "msg_type", jp_msg_type(msg));
    if (!whole || (nbuf == 0 && json_object_set_new(whole, "buffers", json_array()) < 0))
        return -1;
    cleanup_free char *text = json_dumps(whole, JSON_COMPACT);
    if (!text)
        return -1;
    size_t len = strlen(text);
    *binary = nbuf > 0;
    if (nbuf == 0)
        return cb_buf_append(out, text, len), 0;
    /* n parts (the JSON, then each buffer), each one's offset: where it starts */
    uint32_t n = (uint32_t)nbuf + 1, offset = 4 * (n + 1);
    s_put_u32be(out, n);
    s_put_u32be(out, offset);
    offset += (uint32_t)len;
    s_put_u32be(out, offset);
    zframe_t *f = zmsg_first(msg->buffers);
    for (size_t i = 0; i + 1 < nbuf; i++, f = zmsg_next(msg->buffers)) {
        offset += (uint32_t)zframe_size(f);
        s_put_u32be(out, offset);
    }
    cb_buf_append(out, text, len);
    for (f = zmsg_first(msg->buffers); f; f = zmsg_next(msg->buffers))
        cb_buf_append(out, (const char *)zframe_data(f), zframe_size(f));
    return out->len > 0 ? 0 : -1;
}

/* v1.kernel.websocket.jupyter.org. */
static int s_encode_v1(const jp_msg_t *msg, const char *channel, cb_buf_t *out)
{
    const json_t *dicts[4] = {msg->header, msg->parent_header, msg->metadata, msg->content};
    char *texts[4] = {NULL, NULL, NULL, NULL};
    int rc = 0;
    for (int i = 0; i < 4 && rc == 0; i++)
        if (!(texts[i] = json_dumps(dicts[i], JSON_COMPACT)))
            rc = -1;
    size_t nbuf = zmsg_size(msg->buffers);
    uint64_t count = 1 + 4 + nbuf + 1; /* channel, the dicts, buffers, and the end */
    uint64_t offset = 8 * (1 + count);
    if (rc == 0) {
        s_put_u64le(out, count);
        s_put_u64le(out, offset);
        offset += strlen(channel);
        s_put_u64le(out, offset);
        for (int i = 0; i < 4; i++) {
            offset += strlen(texts[i]);
            s_put_u64le(out, offset);
        }
        for (zframe_t *f = zmsg_first(msg->buffers); f; f = zmsg_next(msg->buffers)) {
            offset += zframe_size(f);
            s_put_u64le(out, offset);
        }
        cb_buf_append(out, channel, strlen(channel));
        for (int i = 0; i < 4; i++)
            cb_buf_append(out, texts[i], strlen(texts[i]));
        for (zframe_t *f = zmsg_first(msg->buffers); f; f = zmsg_next(msg->buffers))
            cb_buf_append(out, (const char *)zframe_data(f), zframe_size(f));
        rc = out->len == offset ? 0 : -1; /* an append that ran out of memory shows here */
    }
    for (int i = 0; i < 4; i++)
        free(texts[i]);
    return rc;
}

/* ---- decoding ------------------------------------------------------------------------------- */

static jp_channel_t s_client_channel(const char *name, size_t len)
{
    static const jp_channel_t allowed[] = {JP_CH_SHELL, JP_CH_CONTROL, JP_CH_STDIN};
    for (size_t i = 0; i < 3; i++) {
        const char *n = jp_channel_name(allowed[i]);
        if (strlen(n) == len && memcmp(n, name, len) == 0)
            return allowed[i];
    }
    return JP_CH_COUNT;
}

static jp_msg_t *s_msg_empty(void)
{
    jp_msg_t *m = calloc(1, sizeof *m);
    if (m && (!(m->idents = zmsg_new()) || !(m->buffers = zmsg_new())))
        jp_msg_destroy(&m);
    return m;
}

/* The four dicts of a message from a client; *why says what is wrong. */
static bool s_check_dicts(jp_msg_t *m, const char **why)
{
    if (!json_is_object(m->header))
        return *why = "its header is missing or not an object", false;
    if (!json_is_string(json_object_get(m->header, "msg_id")) ||
        !json_is_string(json_object_get(m->header, "msg_type")))
        return *why = "its header lacks msg_id or msg_type", false;
    if (!json_is_object(m->parent_header) || !json_is_object(m->metadata))
        return *why = "parent_header and metadata must be objects", false;
    if (!json_is_object(m->content))
        return *why = "its content is missing or not an object", false;
    return true;
}

/* A dict of a message given as a whole JSON object: absent parent_header and metadata are {}. */
static json_t *s_take_dict(json_t *whole, const char *key, bool optional)
{
    json_t *v = json_object_get(whole, key);
    if (!v && optional)
        return json_object();
    return json_incref(v);
}

static jp_msg_t *s_from_object(json_t *whole, jp_channel_t *ch, const char **why)
{
    if (!json_is_object(whole))
        return *why = "it is not a JSON object", NULL;
    json_t *channel = json_object_get(whole, "channel");
    if (channel && !json_is_string(channel))
        return *why = "its channel is not a string", NULL;
    /* jupyter_server assumes shell when a message names no channel */
    const char *name = channel ? json_string_value(channel) : "shell";
    if ((*ch = s_client_channel(name, strlen(name))) == JP_CH_COUNT)
        return *why = "its channel is not shell, control or stdin", NULL;
    jp_msg_t *m = s_msg_empty();
    if (!m)
        return *why = "out of memory", NULL;
    m->header = s_take_dict(whole, "header", false);
    m->parent_header = s_take_dict(whole, "parent_header", true);
    m->metadata = s_take_dict(whole, "metadata", true);
    m->content = s_take_dict(whole, "content", false);
    if (!s_check_dicts(m, why))
        jp_msg_destroy(&m);
    return m;
}

/* jupyter_server's binary format (the default format's messages with buffers). */
static jp_msg_t *s_decode_binary(const unsigned char *p, size_t len, jp_channel_t *ch, const char **why)
{
    if (len < 8)
        return *why = "a binary message too short for its header", NULL;
    uint32_t n = s_get_u32be(p);
    if (n < 1 || n > S_MAX_BUFFERS + 1 || len < 4 * ((size_t)n + 1))
        return *why = "a binary message with a bad part count", NULL;
    size_t offsets[S_MAX_BUFFERS + 2];
    for (uint32_t i = 0; i < n; i++)
        offsets[i] = s_get_u32be(p + 4 * (i + 1));
    offsets[n] = len;
    for (uint32_t i = 0; i < n; i++)
        if (offsets[i] < 4 * ((size_t)n + 1) || offsets[i] > offsets[i + 1])
            return *why = "a binary message with bad offsets", NULL;
    json_auto_t *whole = json_loadb((const char *)p + offsets[0], offsets[1] - offsets[0], 0, NULL);
    jp_msg_t *m = s_from_object(whole, ch, why);
    for (uint32_t i = 1; m && i < n; i++)
        if (zmsg_addmem(m->buffers, p + offsets[i], offsets[i + 1] - offsets[i]) != 0) {
            jp_msg_destroy(&m);
            *why = "out of memory";
        }
    return m;
}

static jp_msg_t *s_decode_v1(const unsigned char *p, size_t len, jp_channel_t *ch, const char **why)
{
    if (len < 8)
        return *why = "a v1 message too short for its header", NULL;
    uint64_t count = s_get_u64le(p);
    /* channel, four dicts, buffers, the end */
    if (count < 6 || count > 6 + S_MAX_BUFFERS || len < 8 * (count + 1))
        return *why = "a v1 message with a bad offset count", NULL;
    uint64_t offsets[6 + S_MAX_BUFFERS];
    for (uint64_t i = 0; i < count; i++) {
        offsets[i] = s_get_u64le(p + 8 * (i + 1));
        if (offsets[i] < 8 * (count + 1) || offsets[i] > len || (i && offsets[i] < offsets[i - 1]))
            return *why = "a v1 message with bad offsets", NULL;
    }
    if ((*ch = s_client_channel((const char *)p + offsets[0], offsets[1] - offsets[0])) == JP_CH_COUNT)
        return *why = "its channel is not shell, control or stdin", NULL;
    jp_msg_t *m = s_msg_empty();
    if (!m)
        return *why = "out of memory", NULL;
    json_t **dicts[4] = {&m->header, &m->parent_header, &m->metadata, &m->content};
    for (int i = 0; i < 4; i++)
        *dicts[i] = json_loadb((const char *)p + offsets[1 + i], offsets[2 + i] - offsets[1 + i], 0, NULL);
    if (!s_check_dicts(m, why)) {
        jp_msg_destroy(&m);
        return NULL;
    }
    for (uint64_t i = 5; i + 1 < count; i++)
        if (zmsg_addmem(m->buffers, p + offsets[i], offsets[i + 1] - offsets[i]) != 0) {
            jp_msg_destroy(&m);
            return *why = "out of memory", NULL;
        }
    return m;
}

static jp_msg_t *s_decode(const void *data, size_t len, bool binary, bool v1, jp_channel_t *ch, const char **why)
{
    if (binary)
        return v1 ? s_decode_v1(data, len, ch, why) : s_decode_binary(data, len, ch, why);
    json_auto_t *whole = json_loadb(data, len, 0, NULL);
    if (!whole)
        return *why = "it is not valid JSON", NULL;
    return s_from_object(whole, ch, why);
}

/* ---- delivery ------------------------------------------------------------------------------- */

static void s_item_free(s_item_t **item_p)
{
    if (*item_p) {
        jp_msg_destroy(&(*item_p)->msg);
        free(*item_p);
        *item_p = NULL;
    }
}

/* A copy sharing the (immutable once parsed) dicts, with the buffers copied. */
static jp_msg_t *s_msg_share(const jp_msg_t *msg)
{
    jp_msg_t *m = s_msg_empty();
    if (!m)
        return NULL;
    m->header = json_incref(msg->header);
    m->parent_header = json_incref(msg->parent_header);
    m->metadata = json_incref(msg->metadata);
    m->content = json_incref(msg->content);
    for (zframe_t *f = zmsg_first(msg->buffers); f; f = zmsg_next(msg->buffers))
        if (zmsg_addmem(m->buffers, zframe_data(f), zframe_size(f)) != 0) {
            jp_msg_destroy(&m);
            break;
        }
    return m;
}

/* The size a message takes as JSON (json_dumpb with no buffer measures) plus its buffers. */
static size_t s_msg_bytes(const jp_msg_t *msg)
{
    size_t n = json_dumpb(msg->header, NULL, 0, JSON_COMPACT) + json_dumpb(msg->parent_header, NULL, 0, JSON_COMPACT) +
               json_dumpb(msg->metadata, NULL, 0, JSON_COMPACT) + json_dumpb(msg->content, NULL, 0, JSON_COMPACT);
    for (zframe_t *f = zmsg_first(msg->buffers); f; f = zmsg_next(msg->buffers))
        n += zframe_size(f);
    return n;
}

static void s_keep(kg_chan_session_t *sess, jp_channel_t ch, const jp_msg_t *msg)
{
    s_item_t *item = calloc(1, sizeof *item);
    if (item && (item->msg = s_msg_share(msg)) && zlistx_add_end(sess->kept, item)) {
        item->ch = ch;
        item->bytes = s_msg_bytes(msg);
        sess->kept_bytes += item->bytes;
    } else {
        s_item_free(&item);
        sess->dropped++;
        return;
    }
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
static void s_deliver(kg_chan_session_t *sess, jp_channel_t ch, const jp_msg_t *msg, s_encoded_t *enc)
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
        if (sess->v1) {
            e->binary[f] = true;
            e->failed[f] = s_encode_v1(msg, jp_channel_name(ch), &e->data[f]) < 0;
        } else {
            e->failed[f] = s_encode_default(msg, jp_channel_name(ch), &e->data[f], &e->binary[f]) < 0;
        }
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
static void s_replay(kg_chan_session_t *sess)
{
    if (sess->dropped)
        cb_info("jupyter api: session %.36s reconnected; %zu message(s) were dropped while it was away "
                "(the buffer keeps %zu, up to %u MiB)", sess->session_id, sess->dropped, sess->api->replay_messages,
                S_KEPT_MAX_BYTES >> 20);
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

static void s_close_ws(kg_chan_session_t *sess, int code, const char *reason)
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
static void s_doom(kg_chan_session_t *sess, int code, const char *reason)
{
    if (sess->doomed)
        return;
    sess->doomed = true;
    kg_api_t *api = sess->api;
    s_close_ws(sess, code, reason);
    kg_timer_stop(api->gw, &sess->keep_timer);
    for (int i = 0; i < 3; i++) {
        if (!sess->socks[i])
            continue;
        zloop_reader_end(api->gw->loop, sess->socks[i]);
        /* Stop reconnecting now: the endpoint names the kernel's fixed fd number, which is
         * closed (and may be reused) once the kernel is freed, maybe before the reaper runs. */
        if (sess->endpoints[i][0])
            zsock_disconnect(sess->socks[i], "%s", sess->endpoints[i]);
    }
    if (sess->ak) {
        void *handle = zlistx_find(sess->ak->sessions, sess);
        if (handle)
            zlistx_detach(sess->ak->sessions, handle);
        sess->ak = NULL;
    }
    if (zlistx_add_end(api->doomed, sess))
        kg_api_wake(api);
    else
        cb_warn("jupyter api: out of memory; a channels session leaks");
}

void kg_channels_session_free(kg_chan_session_t *sess)
{
    for (int i = 0; i < 3; i++)
        zsock_destroy(&sess->socks[i]);
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
    kg_chan_session_t *sess = arg;
    kg_gateway_t *gw = sess->api->gw;
    sess->keep_timer = -1;
    cb_debug("jupyter api: session %.36s did not come back; %zu kept message(s) dropped", sess->session_id,
             zlistx_size(sess->kept));
    s_doom(sess, 1000, NULL);
    return kg_gateway_handler_result(gw);
}

static void s_client_message(kg_chan_session_t *sess, const void *data, size_t len, bool binary);

static void s_on_ws_message(http_ws_t *ws, const void *data, size_t len, bool binary, void *arg)
{
    kg_chan_session_t *sess = arg;
    if (!sess->doomed && sess->ws == ws)
        s_client_message(sess, data, len, binary);
}

static void s_on_ws_close(http_ws_t *ws, void *arg)
{
    kg_chan_session_t *sess = arg;
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

static int s_on_dealer(zloop_t *loop, zsock_t *sock, void *arg);

static kg_chan_session_t *s_session_new(kg_api_kernel_t *ak, const char *session_id, cb_error_t *err)
{
    kg_api_t *api = ak->api;
    kg_kernel_t *k = ak->kernel;
    kg_chan_session_t *sess = calloc(1, sizeof *sess);
    if (!sess)
        return cb_error_make(err, ENOMEM, "new channels session"), NULL;
    sess->api = api;
    sess->keep_timer = -1;
    sess->kept = zlistx_new();
    sess->held = zlistx_new();
    sess->session_id = session_id ? strdup(session_id) : NULL;
    zuuid_t *uuid = zuuid_new();
    int rc = (sess->kept && sess->held && uuid && (!session_id || sess->session_id)) ? 0
             : cb_error_make(err, ENOMEM, "new channels session");
    char routing_id[37] = "";
    if (uuid)
        snprintf(routing_id, sizeof routing_id, "%s", zuuid_str_canonical(uuid));
    zuuid_destroy(&uuid);
    for (int i = 0; i < 3 && rc == 0; i++) {
        jp_channel_t ch = s_sock_channel[i];
        zsock_t *s = sess->socks[i] = zsock_new(ZMQ_DEALER);
        if (!s) {
            rc = cb_error_fail(err, CB_ERR_SYSTEM, "create a %s socket", jp_channel_name(ch));
            break;
        }
        zsock_set_linger(s, 0);
        zsock_set_sndtimeo(s, 0); /* never block the loop: a full queue fails the send instead */
        zsock_set_reconnect_ivl(s, 10);
        kg_socket_limits(s, api->gw->cfg.max_message_bytes);
        zsock_set_identity(s, routing_id); /* shared: input_request goes to the shell's identity */
        jp_conninfo_endpoint(&k->ci, ch, sess->endpoints[i], sizeof sess->endpoints[i]);
        if (zsock_connect(s, "%s", sess->endpoints[i]) < 0)
            rc = cb_error_fail(err, CB_ERR_SYSTEM, "connect %s to the kernel", jp_channel_name(ch));
    }
    for (int i = 0; i < 3 && rc == 0; i++) {
        if (zloop_reader(api->gw->loop, sess->socks[i], s_on_dealer, sess) < 0)
            rc = cb_error_fail(err, CB_ERR_SYSTEM, "watch the channels' sockets");
        else
            zloop_reader_set_tolerant(api->gw->loop, sess->socks[i]);
    }
    if (rc == 0 && !zlistx_add_end(ak->sessions, sess))
        rc = cb_error_make(err, ENOMEM, "new channels session");
    if (rc < 0) {
        for (int i = 0; i < 3; i++)
            if (sess->socks[i])
                zloop_reader_end(api->gw->loop, sess->socks[i]);
        kg_channels_session_free(sess);
        return NULL;
    }
    sess->ak = ak;
    return sess;
}

/* ---- kernel to client ----------------------------------------------------------------------- */

static int s_on_dealer(zloop_t *loop, zsock_t *sock, void *arg)
{
    kg_chan_session_t *sess = arg;
    kg_gateway_t *gw = sess->api->gw;
    int i = 0;
    while (i < 3 && sess->socks[i] != sock)
        i++;
    for (int budget = 64; budget > 0 && i < 3 && !sess->doomed && sess->ak && sess->ak->kernel; budget--) {
        if (!(zsock_events(sock) & ZMQ_POLLIN))
            break;
        zmsg_t *raw = zmsg_recv(sock);
        if (!raw)
            break;
        kg_kernel_t *k = sess->ak->kernel;
        jp_wire_status_t status;
        jp_msg_t *msg = jp_wire_decode(&raw, k->signer, k->replay, &status);
        if (!msg) {
            kg_gateway_count_rejected(gw, status, false);
            cb_debug("jupyter api: dropped a %s frame from kernel %.8s: %s", jp_channel_name(s_sock_channel[i]),
                     k->id, jp_wire_status_name(status));
            zmsg_destroy(&raw);
            continue;
        }
        kg_kernel_touch(k);
        s_deliver(sess, s_sock_channel[i], msg, NULL);
        jp_msg_destroy(&msg);
    }
    return kg_gateway_handler_result(gw);
}

void kg_channels_on_iopub(kg_api_kernel_t *ak, const jp_msg_t *msg)
{
    if (zlistx_size(ak->sessions) == 0)
        return;
    s_encoded_t enc = {0};
    for (kg_chan_session_t *sess = zlistx_first(ak->sessions); sess; sess = zlistx_next(ak->sessions))
        s_deliver(sess, JP_CH_IOPUB, msg, &enc);
    s_encoded_free(&enc);
}

/* An iopub status message of our own, as jupyter_server sends for restarts and deaths. */
static void s_send_status(kg_api_kernel_t *ak, const char *state)
{
    jp_msg_t *msg = jp_msg_new("status", ak->kernel->session, NULL, json_pack("{s:s}", "execution_state", state));
    if (msg)
        kg_channels_on_iopub(ak, msg);
    jp_msg_destroy(&msg);
}

static void s_release_held(kg_api_kernel_t *ak);

void kg_channels_on_event(kg_api_kernel_t *ak, kg_kernel_event_t event, const char *detail)
{
    if (event == KG_EVENT_READY) {
        s_release_held(ak);
    } else if (event == KG_EVENT_RESTARTING) {
        s_send_status(ak, "restarting");
    } else if (event == KG_EVENT_DEAD) {
        s_send_status(ak, "dead");
    } else if (event == KG_EVENT_STOPPED) {
        s_send_status(ak, "dead");
        const char *why = kg_api_gone(ak->api, ak->id);
        cleanup_free char *reason = cb_strdup_printf("the kernel stopped: %s", why ? why : "it was shut down");
        kg_channels_close_all(ak, 1001, reason ? reason : "the kernel stopped");
    }
}

void kg_channels_close_all(kg_api_kernel_t *ak, int code, const char *reason)
{
    kg_chan_session_t *sess;
    while (ak->sessions && (sess = zlistx_first(ak->sessions)))
        s_doom(sess, code, reason); /* detaches it from the list */
}

size_t kg_channels_connections(const kg_api_kernel_t *ak)
{
    size_t n = 0;
    for (kg_chan_session_t *sess = zlistx_first(ak->sessions); sess; sess = zlistx_next(ak->sessions))
        n += sess->ws != NULL;
    return n;
}

/* ---- client to kernel ----------------------------------------------------------------------- */

/* A reply of our own on the session's WebSocket, parented to the client's request. */
static void s_reply(kg_chan_session_t *sess, jp_channel_t ch, json_t *request_header, const char *type,
                    json_t *content)
{
    jp_msg_t *reply = jp_msg_new(type, sess->ak->kernel->session, request_header, content);
    if (reply)
        s_deliver(sess, ch, reply, NULL);
    jp_msg_destroy(&reply);
}

/* A shutdown_request never reaches the kernel: the kernel would exit and the gateway would take
 * it for a death. On a kernel the API started it is done here (delete, or restart); anyone
 * else's kernel is not the client's to end. */
static void s_shutdown_request(kg_chan_session_t *sess, jp_channel_t ch, jp_msg_t *m)
{
    kg_api_kernel_t *ak = sess->ak;
    bool restart = json_is_true(json_object_get(m->content, "restart"));
    if (!ak->owned) {
        cb_info("jupyter api: refused a shutdown_request on kernel %.8s (not started by the API)", ak->id);
        s_reply(sess, ch, m->header, "shutdown_reply",
                json_pack("{s:s, s:s, s:s, s:[], s:b}", "status", "error", "ename", "ShutdownRefused", "evalue",
                          "this kernel belongs to an MCP session; you may use it but not end it", "traceback",
                          "restart", restart));
        return;
    }
    s_reply(sess, ch, m->header, "shutdown_reply", json_pack("{s:s, s:b}", "status", "ok", "restart", restart));
    if (restart) {
        cb_error_t err = {0};
        if (kg_kernel_restart(ak->kernel, &err) < 0)
            cb_warn("jupyter api: restart of kernel %.8s: %s", ak->id, err.msg);
    } else {
        cb_info("jupyter api: kernel %.8s shut down by a shutdown_request", ak->id);
        kg_api_delete_kernel(ak, "it was shut down by a client's shutdown_request");
    }
}

static void s_to_kernel(kg_chan_session_t *sess, jp_channel_t ch, jp_msg_t *m)
{
    kg_kernel_t *k = sess->ak->kernel;
    int i = 0;
    while (s_sock_channel[i] != ch)
        i++;
    if (jp_wire_send(sess->socks[i], m, k->signer) < 0)
        cb_warn("jupyter api: could not send a %s to kernel %.8s: %s", jp_msg_type(m), k->id, zmq_strerror(errno));
    else {
        kg_kernel_touch(k);
        if (k->sandbox)
            kg_sandbox_touch(k->sandbox); /* a client's request is use (lifetime.c) */
    }
}

/* A client may send as soon as its WebSocket opens (jupyter_server's gateway client does, right
 * after the 201), while the kernel starts or restarts. Such messages wait here, in order, until
 * the kernel is ready (s_release_held): a kernel still starting may not yet take them, and one
 * restarting would lose them with the old process. At most S_HELD_MAX wait per session. */
#define S_HELD_MAX 1000

static void s_hold(kg_chan_session_t *sess, jp_channel_t ch, jp_msg_t **m_p)
{
    s_item_t *item = zlistx_size(sess->held) < S_HELD_MAX ? calloc(1, sizeof *item) : NULL;
    if (!item || !zlistx_add_end(sess->held, item)) {
        cb_warn("jupyter api: dropped a %s for kernel %.8s: %d messages already wait for it to be ready",
                jp_msg_type(*m_p), sess->ak->id, S_HELD_MAX);
        free(item);
        return;
    }
    item->ch = ch;
    item->msg = *m_p;
    *m_p = NULL;
}

static void s_client_message(kg_chan_session_t *sess, const void *data, size_t len, bool binary)
{
    kg_api_kernel_t *ak = sess->ak;
    kg_kernel_t *k = ak->kernel;
    const char *why = NULL;
    jp_channel_t ch = JP_CH_COUNT;
    jp_msg_t *m = s_decode(data, len, binary, sess->v1, &ch, &why);
    if (!m) {
        ak->api->gw->counters.malformed_messages++;
        cb_info("jupyter api: dropped a message from a WebSocket on kernel %.8s: %s", ak->id, why);
        return;
    }
    cb_debug("jupyter api: %s on %s from a WebSocket on kernel %.8s%s", jp_msg_type(m), jp_channel_name(ch), ak->id,
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
static void s_release_held(kg_api_kernel_t *ak)
{
    for (kg_chan_session_t *sess = zlistx_first(ak->sessions); sess; sess = zlistx_next(ak->sessions)) {
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

void kg_channels_on_ws(http_ws_t *ws, void *arg)
{
    kg_api_t *api = arg;
    const http_request_t *req = http_ws_request(ws);
    const char *path = http_request_path(req);
    static const char prefix[] = "/api/kernels/";
    char id[64] = "";
    const char *slash = strncmp(path, prefix, sizeof prefix - 1) == 0 ? strchr(path + sizeof prefix - 1, '/') : NULL;
    size_t id_len = slash ? (size_t)(slash - path - (sizeof prefix - 1)) : 0;
    if (!slash || id_len == 0 || id_len >= sizeof id ||
        (strcmp(slash, "/channels") != 0 && strcmp(slash, "/channels/") != 0))
        return s_refuse(ws, 1008, "no WebSocket at this path");
    memcpy(id, path + sizeof prefix - 1, id_len);
    kg_kernel_t *k = kg_api_find_kernel(api, id);
    if (!k) {
        const char *why = kg_api_gone(api, id);
        cleanup_free char *reason = why ? cb_strdup_printf("kernel gone: %s", why)
                                        : cb_strdup_printf("no kernel with id %s", id);
        return s_refuse(ws, 4004, reason);
    }
    const char *session_id = http_request_query(req, "session_id");
    if (session_id && !session_id[0])
        session_id = NULL;
    if (session_id && strlen(session_id) > S_SESSION_ID_MAX)
        return s_refuse(ws, 1008, "session_id is too long");
    kg_api_kernel_t *ak = kg_api_kernel_get(api, k, true);
    if (!ak)
        return s_refuse(ws, 1011, "out of memory");

    kg_chan_session_t *sess = NULL;
    for (kg_chan_session_t *s = session_id ? zlistx_first(ak->sessions) : NULL; s && !sess; s = zlistx_next(ak->sessions))
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
    cb_debug("jupyter api: channels open on kernel %.8s (%s format, session %s)", k->id,
             sess->v1 ? "v1" : "default", session_id ? session_id : "anonymous");
    s_replay(sess);
}

/* ---- the codec, named for the fuzz harness (channels_codec.h) ------------------------------ */

jp_msg_t *kg_channels_decode(const void *data, size_t len, bool binary, bool v1, jp_channel_t *ch,
                             const char **why)
{
    return s_decode(data, len, binary, v1, ch, why);
}

int kg_channels_encode(const jp_msg_t *msg, const char *channel, bool v1, cb_buf_t *out, bool *binary)
{
    *binary = true;
    return v1 ? s_encode_v1(msg, channel, out) : s_encode_default(msg, channel, out, binary);
}
