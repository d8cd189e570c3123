/* channels_codec.h (private): the channels WebSocket's two message formats (channels_codec.c),
 * pure functions with no kernel, no socket and no loop, so the unit test
 * (test_channels_codec.c) and the fuzz harness (fuzz/fuzz_channels.c) reach them directly.
 *
 * Formats (as jupyter_server writes and reads them):
 *   default   one text frame: {"header", "parent_header", "metadata", "content", "buffers": [],
 *             "channel", "msg_id", "msg_type"}; a message with buffers is one binary frame:
 *             uint32 BE n (= 1 + buffers), n uint32 BE offsets from the frame's start, the JSON
 *             (without "buffers"), then the buffers.
 *   v1        v1.kernel.websocket.jupyter.org, one binary frame: uint64 LE count of offsets,
 *             the offsets (uint64 LE, from the frame's start), then channel, header,
 *             parent_header, metadata, content, buffers; the last offset is the frame's end.
 */
#ifndef JAPI_CHANNELS_CODEC_H
#define JAPI_CHANNELS_CODEC_H

#include <stdbool.h>

#include "cb/util.h"
#include "jupyter/connfile.h" /* jp_channel_t */
#include "jupyter/wire.h"

/* At most this many buffers in one message from a client: the engine's wire view holds 64
 * frames in all (identities, delimiter, signature, the four dicts, buffers). */
#define JAPI_MAX_BUFFERS 60

/* A message from a client: text JSON (binary false), jupyter_server's binary format (binary,
 * !v1) or v1.kernel.websocket.jupyter.org (binary, v1). Sets *ch to shell, control or stdin.
 * The four dicts are objects and the header names msg_id and msg_type. NULL with *why (static
 * text) when it is refused. Caller owns return value. */
jp_msg_t *japi_channels_decode(const void *data, size_t len, bool binary, bool v1, jp_channel_t *ch,
                               const char **why);

/* A message to a client in the default format (*binary: whether it is a binary frame) or v1
 * (always binary), appended to out. Returns 0, or -1 for a message the format cannot carry
 * (a dict missing, or a default binary frame beyond 4 GiB); out is then unchanged. */
int japi_channels_encode(const jp_msg_t *msg, const char *channel, bool v1, cb_buf_t *out,
                         bool *binary);

/* A copy of msg sharing its dicts (immutable once parsed: references, not copies) with its
 * buffers copied. NULL when libzmq has no memory for a buffer. Caller owns return value. */
jp_msg_t *japi_msg_share(const jp_msg_t *msg);

#endif
