/* channels_codec.c: the channels WebSocket's two message formats (the layouts are in
 * channels_codec.h), kept apart from channels.c's sessions so they can be tested and fuzzed
 * without a kernel.
 *
 * Decoding takes what a client sends, so every length and offset is checked against the frame
 * before it is used: counts are bounded before anything is read at them, every offset lies
 * within the frame and after the header, and offsets never go backwards. Encoding appends
 * through s_append, which cannot fail quietly: an append either succeeds or the process ends
 * (cb/alloc.h's policy), so a frame whose offsets promise bytes it lacks cannot be sent.
 */
#include <string.h>

#include "cb/alloc.h"
#include "cb/cleanup.h"
#include "channels_codec.h"

/* ---- bytes ---------------------------------------------------------------------------------- */

static void s_put_u32be(cb_buf_t *out, uint32_t v)
{
    unsigned char b[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 8), (unsigned char)v};
    cb_buf_append(out, b, 4);
}

static void s_put_u64le(cb_buf_t *out, uint64_t v)
{
    unsigned char b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(v >> (8 * i));
    cb_buf_append(out, b, 8);
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

/* ---- encoding ------------------------------------------------------------------------------- */

/* The default format. */
static int s_encode_default(const jp_msg_t *msg, const char *channel, cb_buf_t *out, bool *binary)
{
    size_t nbuf = zmsg_size(msg->buffers);
    json_auto_t *whole =
        json_pack("{s:O, s:O, s:O, s:O, s:s, s:s, s:s}", "header", msg->header, "parent_header",
                  msg->parent_header, "metadata", msg->metadata, "content", msg->content, "channel",
                  channel, "msg_id", jp_msg_id(msg), "msg_type", jp_msg_type(msg));
    if (!whole)
        return -1; /* a dict is missing */
    if (nbuf == 0)
        json_object_set_new(whole, "buffers", json_array());
    cleanup_free char *text = json_dumps(whole, JSON_COMPACT);
    if (!text)
        return -1;
    size_t len = strlen(text);
    *binary = nbuf > 0;
    if (nbuf == 0) {
        cb_buf_append(out, text, len);
        return 0;
    }
    /* n parts (the JSON, then each buffer), each one's offset: where it starts. The offsets are
     * 32 bits wide: a frame they cannot describe is refused, not wrapped. */
    uint32_t n = (uint32_t)nbuf + 1;
    uint64_t total = 4 * ((uint64_t)n + 1) + len;
    for (zframe_t *f = zmsg_first(msg->buffers); f; f = zmsg_next(msg->buffers))
        total += zframe_size(f);
    if (total > UINT32_MAX)
        return -1;
    uint32_t offset = 4 * (n + 1);
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
        cb_buf_append(out, zframe_data(f), zframe_size(f));
    return 0;
}

/* v1.kernel.websocket.jupyter.org. */
static int s_encode_v1(const jp_msg_t *msg, const char *channel, cb_buf_t *out)
{
    const json_t *dicts[4] = {msg->header, msg->parent_header, msg->metadata, msg->content};
    char *texts[4] = {NULL, NULL, NULL, NULL};
    int rc = 0;
    for (int i = 0; i < 4 && rc == 0; i++)
        if (!dicts[i] || !(texts[i] = json_dumps(dicts[i], JSON_COMPACT)))
            rc = -1; /* a dict is missing */
    if (rc == 0) {
        size_t nbuf = zmsg_size(msg->buffers);
        uint64_t count = 1 + 4 + nbuf + 1; /* channel, the dicts, buffers, and the end */
        uint64_t offset = 8 * (1 + count);
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
            cb_buf_append(out, zframe_data(f), zframe_size(f));
    }
    for (int i = 0; i < 4; i++)
        free(texts[i]);
    return rc;
}

int japi_channels_encode(const jp_msg_t *msg, const char *channel, bool v1, cb_buf_t *out,
                         bool *binary)
{
    *binary = true;
    return v1 ? s_encode_v1(msg, channel, out) : s_encode_default(msg, channel, out, binary);
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
    jp_msg_t *m = cb_xcalloc(1, sizeof *m);
    m->idents = zmsg_new(); /* czmq's constructors abort when memory runs out */
    m->buffers = zmsg_new();
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
    m->header = s_take_dict(whole, "header", false);
    m->parent_header = s_take_dict(whole, "parent_header", true);
    m->metadata = s_take_dict(whole, "metadata", true);
    m->content = s_take_dict(whole, "content", false);
    if (!s_check_dicts(m, why))
        jp_msg_destroy(&m);
    return m;
}

/* Append the bytes [from, to) of p to m's buffers; false (m destroyed, *why set) when libzmq
 * has no memory for the frame. */
static bool s_add_buffer(jp_msg_t **m_p, const unsigned char *p, uint64_t from, uint64_t to,
                         const char **why)
{
    if (zmsg_addmem((*m_p)->buffers, p + from, (size_t)(to - from)) == 0)
        return true;
    jp_msg_destroy(m_p);
    *why = "out of memory";
    return false;
}

/* jupyter_server's binary format (the default format's messages with buffers). */
static jp_msg_t *s_decode_binary(const unsigned char *p, size_t len, jp_channel_t *ch,
                                 const char **why)
{
    if (len < 8)
        return *why = "a binary message too short for its header", NULL;
    uint32_t n = s_get_u32be(p);
    if (n < 1 || n > JAPI_MAX_BUFFERS + 1 || len < 4 * ((size_t)n + 1))
        return *why = "a binary message with a bad part count", NULL;
    size_t offsets[JAPI_MAX_BUFFERS + 2];
    for (uint32_t i = 0; i < n; i++)
        offsets[i] = s_get_u32be(p + 4 * (i + 1));
    offsets[n] = len;
    for (uint32_t i = 0; i < n; i++)
        if (offsets[i] < 4 * ((size_t)n + 1) || offsets[i] > offsets[i + 1])
            return *why = "a binary message with bad offsets", NULL;
    json_auto_t *whole = json_loadb((const char *)p + offsets[0], offsets[1] - offsets[0], 0, NULL);
    jp_msg_t *m = s_from_object(whole, ch, why);
    for (uint32_t i = 1; m && i < n; i++)
        s_add_buffer(&m, p, offsets[i], offsets[i + 1], why);
    return m;
}

static jp_msg_t *s_decode_v1(const unsigned char *p, size_t len, jp_channel_t *ch, const char **why)
{
    if (len < 8)
        return *why = "a v1 message too short for its header", NULL;
    uint64_t count = s_get_u64le(p);
    /* channel, four dicts, buffers, the end */
    if (count < 6 || count > 6 + JAPI_MAX_BUFFERS || len < 8 * (count + 1))
        return *why = "a v1 message with a bad offset count", NULL;
    uint64_t offsets[6 + JAPI_MAX_BUFFERS];
    for (uint64_t i = 0; i < count; i++) {
        offsets[i] = s_get_u64le(p + 8 * (i + 1));
        if (offsets[i] < 8 * (count + 1) || offsets[i] > len || (i && offsets[i] < offsets[i - 1]))
            return *why = "a v1 message with bad offsets", NULL;
    }
    if ((*ch = s_client_channel((const char *)p + offsets[0], offsets[1] - offsets[0])) ==
        JP_CH_COUNT)
        return *why = "its channel is not shell, control or stdin", NULL;
    jp_msg_t *m = s_msg_empty();
    json_t **dicts[4] = {&m->header, &m->parent_header, &m->metadata, &m->content};
    for (int i = 0; i < 4; i++)
        *dicts[i] =
            json_loadb((const char *)p + offsets[1 + i], offsets[2 + i] - offsets[1 + i], 0, NULL);
    if (!s_check_dicts(m, why)) {
        jp_msg_destroy(&m);
        return NULL;
    }
    for (uint64_t i = 5; m && i + 1 < count; i++)
        s_add_buffer(&m, p, offsets[i], offsets[i + 1], why);
    return m;
}

jp_msg_t *japi_channels_decode(const void *data, size_t len, bool binary, bool v1, jp_channel_t *ch,
                               const char **why)
{
    if (binary)
        return v1 ? s_decode_v1(data, len, ch, why) : s_decode_binary(data, len, ch, why);
    json_auto_t *whole = json_loadb(data, len, 0, NULL);
    if (!whole)
        return *why = "it is not valid JSON", NULL;
    return s_from_object(whole, ch, why);
}

/* ---- copies --------------------------------------------------------------------------------- */

jp_msg_t *japi_msg_share(const jp_msg_t *msg)
{
    jp_msg_t *m = s_msg_empty();
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
