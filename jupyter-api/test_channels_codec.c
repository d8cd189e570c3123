/* test_channels_codec.c: unit test of the channels WebSocket's two formats (channels_codec.c),
 * with no kernel, no socket and no loop: jupyter_server's JSON text frames and its binary frames
 * with buffers, and v1.kernel.websocket.jupyter.org.
 *
 * Round trips: what the encoder writes the decoder reads back to the same channel, dicts and
 * buffers, and the bytes of a frame are where the format says. Malformed frames, built byte by
 * byte: each is refused with its reason (truncated offsets, offsets out of order or out of the
 * frame, counts from zero to huge, bad JSON, a channel a client may not use). Every comparison
 * prints both values when it fails. */
#include <stdint.h>
#include <string.h>

#include "cb/tap.h"
#include "channels_codec.h"

/* ---- assertions that say what they saw -------------------------------------------------------- */

#define EXPECT_EQ_INT(actual, expected, ...)                                                       \
    do {                                                                                           \
        long long a_ = (long long)(actual), e_ = (long long)(expected);                            \
        if (!CB_OK(a_ == e_, __VA_ARGS__))                                                         \
            CB_DIAG("  %s is %lld, expected %s = %lld", #actual, a_, #expected, e_);               \
    } while (0)

#define EXPECT_STR_EQ(actual, expected, ...)                                                       \
    do {                                                                                           \
        const char *a_ = (actual), *e_ = (expected);                                               \
        if (!CB_OK(a_ && e_ && strcmp(a_, e_) == 0, __VA_ARGS__))                                  \
            CB_DIAG("  %s is \"%s\", expected \"%s\"", #actual, a_ ? a_ : "(null)",                \
                    e_ ? e_ : "(null)");                                                           \
    } while (0)

#define EXPECT_JSON_EQ(actual, expected, ...)                                                      \
    do {                                                                                           \
        json_t *a_ = (actual), *e_ = (expected);                                                   \
        if (!CB_OK(a_ && e_ && json_equal(a_, e_), __VA_ARGS__)) {                                 \
            char *as_ = a_ ? json_dumps(a_, JSON_COMPACT | JSON_SORT_KEYS) : NULL;                 \
            char *es_ = e_ ? json_dumps(e_, JSON_COMPACT | JSON_SORT_KEYS) : NULL;                 \
            CB_DIAG("  %s is %s, expected %s", #actual, as_ ? as_ : "(null)",                      \
                    es_ ? es_ : "(null)");                                                         \
            free(as_);                                                                             \
            free(es_);                                                                             \
        }                                                                                          \
    } while (0)

/* ---- building messages and frames ------------------------------------------------------------- */

static jp_msg_t *s_msg(const char *type, int nbuf, const char *const bufs[])
{
    json_t *content =
        json_pack("{s:s, s:b, s:[i, s]}", "code", "print('é')", "silent", 0, "list", 1, "two");
    jp_msg_t *m = jp_msg_new(type, "test-session", NULL, content);
    json_object_set_new(m->metadata, "deletedCells", json_array());
    for (int i = 0; i < nbuf; i++)
        zmsg_addmem(m->buffers, bufs[i], strlen(bufs[i]));
    return m;
}

static void s_same(const jp_msg_t *got, const jp_msg_t *sent, const char *what)
{
    EXPECT_JSON_EQ(got->header, sent->header, "%s: header", what);
    EXPECT_JSON_EQ(got->parent_header, sent->parent_header, "%s: parent_header", what);
    EXPECT_JSON_EQ(got->metadata, sent->metadata, "%s: metadata", what);
    EXPECT_JSON_EQ(got->content, sent->content, "%s: content", what);
    EXPECT_EQ_INT(zmsg_size(got->buffers), zmsg_size(sent->buffers), "%s: buffer count", what);
    int i = 0;
    for (zframe_t *x = zmsg_first(got->buffers), *y = zmsg_first(sent->buffers); x && y;
         x = zmsg_next(got->buffers), y = zmsg_next(sent->buffers), i++) {
        char *xs = zframe_strdup(x), *ys = zframe_strdup(y);
        EXPECT_STR_EQ(xs, ys, "%s: buffer %d", what, i);
        free(xs);
        free(ys);
    }
}

/* A frame built byte by byte. */
typedef struct {
    unsigned char b[1024];
    size_t len;
} s_frame_t;

static void s_u32be(s_frame_t *f, uint32_t v)
{
    for (int i = 3; i >= 0; i--)
        f->b[f->len++] = (unsigned char)(v >> (8 * i));
}

static void s_u64le(s_frame_t *f, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        f->b[f->len++] = (unsigned char)(v >> (8 * i));
}

static void s_bytes(s_frame_t *f, const char *s)
{
    memcpy(f->b + f->len, s, strlen(s));
    f->len += strlen(s);
}

/* Decode a frame that must be refused, and check the reason given. */
static void s_refused(const void *data, size_t len, bool binary, bool v1, const char *reason,
                      const char *what)
{
    jp_channel_t ch = JP_CH_COUNT;
    const char *why = NULL;
    jp_msg_t *m = japi_channels_decode(data, len, binary, v1, &ch, &why);
    CB_OK(m == NULL, "%s: refused", what);
    EXPECT_STR_EQ(why, reason, "%s: the reason", what);
    jp_msg_destroy(&m);
}

static const char s_header[] = "{\"msg_id\":\"m1\",\"msg_type\":\"execute_request\"}";

/* A valid v1 frame's body parts, and its offsets from the header's end, for mutations. */
static void s_v1_frame(s_frame_t *f, const char *channel, const char *content)
{
    const char *parts[5] = {channel, s_header, "{}", "{}", content};
    uint64_t count = 6, offset = 8 * (count + 1);
    f->len = 0;
    s_u64le(f, count);
    for (int i = 0; i < 5; i++) {
        s_u64le(f, offset);
        offset += strlen(parts[i]);
    }
    s_u64le(f, offset);
    for (int i = 0; i < 5; i++)
        s_bytes(f, parts[i]);
}

/* ---- round trips ------------------------------------------------------------------------------ */

static void s_test_default_text(void)
{
    jp_msg_t *sent = s_msg("execute_request", 0, NULL);
    cb_buf_t out = {0};
    bool binary = true;
    EXPECT_EQ_INT(japi_channels_encode(sent, "shell", false, &out, &binary), 0,
                  "default: encode without buffers");
    CB_OK(!binary, "default: a message without buffers is a text frame");
    json_t *whole = json_loadb(out.data, out.len, 0, NULL);
    json_t *empty = json_array();
    EXPECT_STR_EQ(json_string_value(json_object_get(whole, "channel")), "shell",
                  "default: the frame names its channel");
    EXPECT_STR_EQ(json_string_value(json_object_get(whole, "msg_type")), "execute_request",
                  "default: and its msg_type");
    EXPECT_JSON_EQ(json_object_get(whole, "buffers"), empty, "default: and an empty buffers list");
    json_decref(empty);
    json_decref(whole);
    jp_channel_t ch = JP_CH_COUNT;
    const char *why = NULL;
    jp_msg_t *got = japi_channels_decode(out.data, out.len, false, false, &ch, &why);
    CB_OK(got != NULL, "default: the text frame decodes (%s)", why ? why : "ok");
    EXPECT_EQ_INT(ch, JP_CH_SHELL, "default: on shell");
    if (got)
        s_same(got, sent, "default text");
    jp_msg_destroy(&got);
    jp_msg_destroy(&sent);
    cb_buf_free(&out);
}

static void s_test_default_binary(void)
{
    static const char *const bufs[] = {"first buffer", "", "\x01\xff third"};
    jp_msg_t *sent = s_msg("comm_msg", 3, bufs);
    cb_buf_t out = {0};
    bool binary = false;
    EXPECT_EQ_INT(japi_channels_encode(sent, "control", false, &out, &binary), 0,
                  "binary: encode with buffers");
    CB_OK(binary, "binary: a message with buffers is a binary frame");
    const unsigned char *p = (const unsigned char *)out.data;
    uint32_t n = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    EXPECT_EQ_INT(n, 4, "binary: the part count is 1 + the buffers");
    uint32_t first = (uint32_t)p[4] << 24 | (uint32_t)p[5] << 16 | (uint32_t)p[6] << 8 | p[7];
    EXPECT_EQ_INT(first, 4 * (n + 1), "binary: the JSON starts right after the offsets");
    CB_OK(out.len > first && out.data[first] == '{', "binary: where a JSON object starts");
    jp_channel_t ch = JP_CH_COUNT;
    const char *why = NULL;
    jp_msg_t *got = japi_channels_decode(out.data, out.len, true, false, &ch, &why);
    CB_OK(got != NULL, "binary: the frame decodes (%s)", why ? why : "ok");
    EXPECT_EQ_INT(ch, JP_CH_CONTROL, "binary: on control");
    if (got)
        s_same(got, sent, "default binary");
    jp_msg_destroy(&got);
    jp_msg_destroy(&sent);
    cb_buf_free(&out);
}

static void s_test_v1(int nbuf)
{
    static const char *const bufs[] = {"one", "", "three"};
    jp_msg_t *sent = s_msg("input_reply", nbuf, bufs);
    cb_buf_t out = {0};
    bool binary = false;
    EXPECT_EQ_INT(japi_channels_encode(sent, "stdin", true, &out, &binary), 0,
                  "v1 (%d buffers): encode", nbuf);
    CB_OK(binary, "v1 (%d buffers): always a binary frame", nbuf);
    uint64_t count = 0, last = 0;
    for (int i = 7; i >= 0; i--)
        count = count << 8 | (unsigned char)out.data[i];
    EXPECT_EQ_INT(count, 6 + nbuf,
                  "v1 (%d buffers): count is channel, four dicts, buffers, the end", nbuf);
    for (int i = 7; i >= 0; i--)
        last = last << 8 | (unsigned char)out.data[8 * count + i];
    EXPECT_EQ_INT(last, out.len, "v1 (%d buffers): the last offset is the frame's end", nbuf);
    jp_channel_t ch = JP_CH_COUNT;
    const char *why = NULL;
    jp_msg_t *got = japi_channels_decode(out.data, out.len, true, true, &ch, &why);
    CB_OK(got != NULL, "v1 (%d buffers): the frame decodes (%s)", nbuf, why ? why : "ok");
    EXPECT_EQ_INT(ch, JP_CH_STDIN, "v1 (%d buffers): on stdin", nbuf);
    if (got)
        s_same(got, sent, nbuf ? "v1 with buffers" : "v1");
    jp_msg_destroy(&got);
    jp_msg_destroy(&sent);
    cb_buf_free(&out);
}

/* A message missing a dict cannot be encoded, and leaves what out held untouched. */
static void s_test_encode_refuses(void)
{
    jp_msg_t *m = s_msg("status", 0, NULL);
    json_decref(m->content);
    m->content = NULL;
    for (int v1 = 0; v1 < 2; v1++) {
        cb_buf_t out = {0};
        cb_buf_append(&out, "kept", 4);
        bool binary = false;
        EXPECT_EQ_INT(japi_channels_encode(m, "iopub", v1, &out, &binary), -1,
                      "%s: a message without content is refused", v1 ? "v1" : "default");
        EXPECT_EQ_INT(out.len, 4, "%s: and out is unchanged", v1 ? "v1" : "default");
        cb_buf_free(&out);
    }
    jp_msg_destroy(&m);
}

/* Text frames: defaults and refusals. */
static void s_test_text_rules(void)
{
    const char *lean =
        "{\"header\":{\"msg_id\":\"a\",\"msg_type\":\"kernel_info_request\"},\"content\":{}}";
    jp_channel_t ch = JP_CH_COUNT;
    const char *why = NULL;
    jp_msg_t *m = japi_channels_decode(lean, strlen(lean), false, false, &ch, &why);
    CB_OK(m != NULL, "text: header and content alone decode (%s)", why ? why : "ok");
    EXPECT_EQ_INT(ch, JP_CH_SHELL, "text: no channel means shell, as jupyter_server assumes");
    CB_OK(m && json_is_object(m->parent_header) && json_object_size(m->parent_header) == 0 &&
              json_is_object(m->metadata) && json_object_size(m->metadata) == 0,
          "text: absent parent_header and metadata are {}");
    jp_msg_destroy(&m);

    s_refused("{\"header\":", 10, false, false, "it is not valid JSON", "text: truncated JSON");
    s_refused("[1,2]", 5, false, false, "it is not a JSON object", "text: an array");
    const char *bad_ch =
        "{\"channel\":7,\"header\":{\"msg_id\":\"a\",\"msg_type\":\"x\"},\"content\":{}}";
    s_refused(bad_ch, strlen(bad_ch), false, false, "its channel is not a string",
              "text: channel 7");
    const char *iopub =
        "{\"channel\":\"iopub\",\"header\":{\"msg_id\":\"a\",\"msg_type\":\"x\"},\"content\":{}}";
    s_refused(iopub, strlen(iopub), false, false, "its channel is not shell, control or stdin",
              "text: a client may not send on iopub");
    const char *no_type = "{\"header\":{\"msg_id\":\"a\"},\"content\":{}}";
    s_refused(no_type, strlen(no_type), false, false, "its header lacks msg_id or msg_type",
              "text: no msg_type");
    const char *no_content = "{\"header\":{\"msg_id\":\"a\",\"msg_type\":\"x\"}}";
    s_refused(no_content, strlen(no_content), false, false,
              "its content is missing or not an object", "text: no content");
    const char *bad_meta =
        "{\"header\":{\"msg_id\":\"a\",\"msg_type\":\"x\"},\"metadata\":[],\"content\":{}}";
    s_refused(bad_meta, strlen(bad_meta), false, false,
              "parent_header and metadata must be objects", "text: metadata an array");
}

/* ---- malformed binary frames (jupyter_server's format) ---------------------------------------- */

static void s_test_binary_malformed(void)
{
    static const char count_err[] = "a binary message with a bad part count";
    static const char offset_err[] = "a binary message with bad offsets";
    const char *json = "{\"header\":{\"msg_id\":\"a\",\"msg_type\":\"x\"},\"content\":{}}";
    s_frame_t f = {.len = 0};

    s_refused("\x00\x00\x00", 3, true, false, "a binary message too short for its header",
              "binary: 3 bytes");
    f.len = 0, s_u32be(&f, 0), s_u32be(&f, 8);
    s_refused(f.b, f.len, true, false, count_err, "binary: a part count of 0");
    f.len = 0, s_u32be(&f, UINT32_MAX), s_u32be(&f, 8);
    s_refused(f.b, f.len, true, false, count_err, "binary: a huge part count");
    f.len = 0, s_u32be(&f, JAPI_MAX_BUFFERS + 2);
    for (int i = 0; i < JAPI_MAX_BUFFERS + 2; i++)
        s_u32be(&f, 4 * (JAPI_MAX_BUFFERS + 3));
    s_refused(f.b, f.len, true, false, count_err, "binary: one buffer more than the wire allows");
    /* three parts promised, the offsets cut after the first */
    f.len = 0, s_u32be(&f, 3), s_u32be(&f, 16);
    s_refused(f.b, f.len, true, false, count_err, "binary: truncated offsets");

    /* two parts: the JSON and one buffer "xy" */
    size_t jl = strlen(json);
    f.len = 0, s_u32be(&f, 2), s_u32be(&f, 12), s_u32be(&f, (uint32_t)(12 + jl)), s_bytes(&f, json),
    s_bytes(&f, "xy");
    jp_channel_t ch = JP_CH_COUNT;
    const char *why = NULL;
    jp_msg_t *m = japi_channels_decode(f.b, f.len, true, false, &ch, &why);
    CB_OK(m != NULL, "binary: the hand-made frame decodes (%s)", why ? why : "ok");
    EXPECT_EQ_INT(m ? zmsg_size(m->buffers) : 0, 1, "binary: with its one buffer");
    jp_msg_destroy(&m);

    s_frame_t g = f;
    g.len = 0, s_u32be(&g, 2), s_u32be(&g, (uint32_t)(12 + jl)), s_u32be(&g, 12), g.len = f.len;
    s_refused(g.b, g.len, true, false, offset_err, "binary: offsets out of order");
    g = f, g.len = 0, s_u32be(&g, 2), s_u32be(&g, 4), g.len = f.len;
    s_refused(g.b, g.len, true, false, offset_err, "binary: an offset inside the offsets");
    g = f, g.len = 0, s_u32be(&g, 2), s_u32be(&g, 12), s_u32be(&g, (uint32_t)f.len + 1),
    g.len = f.len;
    s_refused(g.b, g.len, true, false, offset_err, "binary: an offset past the frame's end");
    g = f, g.len = 0, s_u32be(&g, 2), s_u32be(&g, 12), s_u32be(&g, UINT32_MAX), g.len = f.len;
    s_refused(g.b, g.len, true, false, offset_err, "binary: an offset of 4 GiB");
    g = f, g.len = 0, s_u32be(&g, 2), s_u32be(&g, 12), s_u32be(&g, 14), g.len = f.len;
    s_refused(g.b, g.len, true, false, "it is not a JSON object",
              "binary: the JSON part cut short");
}

/* ---- malformed v1 frames ---------------------------------------------------------------------- */

static void s_test_v1_malformed(void)
{
    static const char count_err[] = "a v1 message with a bad offset count";
    static const char offset_err[] = "a v1 message with bad offsets";
    s_frame_t f = {.len = 0}, g;

    s_v1_frame(&f, "shell", "{}");
    jp_channel_t ch = JP_CH_COUNT;
    const char *why = NULL;
    jp_msg_t *m = japi_channels_decode(f.b, f.len, true, true, &ch, &why);
    CB_OK(m != NULL, "v1: the hand-made frame decodes (%s)", why ? why : "ok");
    jp_msg_destroy(&m);

    s_refused(f.b, 7, true, true, "a v1 message too short for its header", "v1: 7 bytes");
    g = f, g.len = 0, s_u64le(&g, 5), g.len = f.len;
    s_refused(g.b, g.len, true, true, count_err, "v1: a count of 5 (a dict missing)");
    g = f, g.len = 0, s_u64le(&g, 0), g.len = f.len;
    s_refused(g.b, g.len, true, true, count_err, "v1: a count of 0");
    g = f, g.len = 0, s_u64le(&g, UINT64_MAX), g.len = f.len;
    s_refused(g.b, g.len, true, true, count_err, "v1: a count of 2^64 - 1");
    g = f, g.len = 0, s_u64le(&g, (UINT64_MAX / 8) + 1), g.len = f.len;
    s_refused(g.b, g.len, true, true, count_err, "v1: a count whose size wraps around");
    g = f, g.len = 0, s_u64le(&g, 6 + JAPI_MAX_BUFFERS + 1), g.len = f.len;
    s_refused(g.b, g.len, true, true, count_err, "v1: one buffer more than the wire allows");
    s_refused(f.b, 8 * 4, true, true, count_err, "v1: truncated offsets");

    /* offset i sits at byte 8 * (i + 1) */
    g = f, g.len = 8 * 3, s_u64le(&g, 8 * 7 + 1), g.len = f.len; /* before offset 1 (56 + 5) */
    s_refused(g.b, g.len, true, true, offset_err, "v1: offsets out of order");
    g = f, g.len = 8, s_u64le(&g, 0), g.len = f.len;
    s_refused(g.b, g.len, true, true, offset_err, "v1: an offset inside the offsets");
    g = f, g.len = 8 * 6, s_u64le(&g, f.len + 1), g.len = f.len;
    s_refused(g.b, g.len, true, true, offset_err, "v1: an offset past the frame's end");
    g = f, g.len = 8 * 6, s_u64le(&g, UINT64_MAX), g.len = f.len;
    s_refused(g.b, g.len, true, true, offset_err, "v1: an offset of 2^64 - 1");

    s_v1_frame(&g, "iopub", "{}");
    s_refused(g.b, g.len, true, true, "its channel is not shell, control or stdin",
              "v1: a client may not send on iopub");
    s_v1_frame(&g, "shell", "[]");
    s_refused(g.b, g.len, true, true, "its content is missing or not an object",
              "v1: content an array");
    s_v1_frame(&g, "shell", "{");
    s_refused(g.b, g.len, true, true, "its content is missing or not an object",
              "v1: content cut short");
}

int main(void)
{
    s_test_default_text();
    s_test_default_binary();
    s_test_v1(0);
    s_test_v1(3);
    s_test_encode_refuses();
    s_test_text_rules();
    s_test_binary_malformed();
    s_test_v1_malformed();
    return cb_tap_done();
}
