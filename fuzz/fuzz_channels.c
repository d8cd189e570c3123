/* fuzz_channels.c: the channels WebSocket's message formats (jupyter-api/channels_codec.c
 * through channels_codec.h): jupyter_server's JSON text frames and its binary frames with
 * buffers, and v1.kernel.websocket.jupyter.org.
 *
 * Input: one flags byte (bit 0: a binary frame; bit 1: the v1 subprotocol), then the frame.
 * What must hold: a frame decodes to a message on shell, control or stdin whose four dicts are
 * objects and whose header names msg_id and msg_type, or it is refused with a reason; a decoded
 * message encoded again in the same format decodes to the same channel, dicts and buffers. */
#include <string.h>

#include "channels_codec.h"
#include "fuzz.h"

static void s_same(const jp_msg_t *a, const jp_msg_t *b)
{
    FUZZ_CHECK(json_equal(a->header, b->header));
    FUZZ_CHECK(json_equal(a->parent_header, b->parent_header));
    FUZZ_CHECK(json_equal(a->metadata, b->metadata));
    FUZZ_CHECK(json_equal(a->content, b->content));
    FUZZ_CHECK(zmsg_size(a->buffers) == zmsg_size(b->buffers));
    for (zframe_t *x = zmsg_first(a->buffers), *y = zmsg_first(b->buffers); x && y;
         x = zmsg_next(a->buffers), y = zmsg_next(b->buffers))
        FUZZ_CHECK(zframe_eq(x, y));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    bool binary = data[0] & 1, v1 = data[0] & 2;
    /* A copy of exactly the frame: a read past its end is a finding. */
    size_t len = size - 1;
    uint8_t *frame = malloc(len ? len : 1);
    FUZZ_CHECK(frame);
    memcpy(frame, data + 1, len);

    jp_channel_t ch = JP_CH_COUNT;
    const char *why = NULL;
    jp_msg_t *msg = japi_channels_decode(frame, len, binary, v1, &ch, &why);
    free(frame);
    if (!msg) {
        FUZZ_CHECK(why && *why);
        return 0;
    }
    FUZZ_CHECK(ch == JP_CH_SHELL || ch == JP_CH_CONTROL || ch == JP_CH_STDIN);
    FUZZ_CHECK(json_is_object(msg->header) && json_is_object(msg->parent_header) &&
               json_is_object(msg->metadata) && json_is_object(msg->content));
    FUZZ_CHECK(json_is_string(json_object_get(msg->header, "msg_id")));
    FUZZ_CHECK(json_is_string(json_object_get(msg->header, "msg_type")));
    FUZZ_CHECK(v1 || binary || zmsg_size(msg->buffers) == 0);

    cb_buf_t out = {0};
    bool out_binary = false;
    FUZZ_CHECK(japi_channels_encode(msg, jp_channel_name(ch), v1, &out, &out_binary) == 0);
    FUZZ_CHECK(v1 ? out_binary : out_binary == (zmsg_size(msg->buffers) > 0));
    jp_channel_t ch2 = JP_CH_COUNT;
    jp_msg_t *again = japi_channels_decode(out.data, out.len, out_binary, v1, &ch2, &why);
    if (!again)
        fprintf(stderr, "fuzz_channels: the encoded message does not decode: %s\n", why);
    FUZZ_CHECK(again && ch2 == ch);
    s_same(msg, again);
    jp_msg_destroy(&again);
    jp_msg_destroy(&msg);
    cb_buf_free(&out);
    return 0;
}
