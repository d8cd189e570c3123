/* channels_codec.h (private): the channels WebSocket's two message formats (channels.c), named
 * outside that file for the fuzz harness (fuzz/fuzz_channels.c), which checks that what a client
 * sends either decodes or is refused with a reason, and that encode and decode agree.
 * channels.c's header comment describes the formats. */
#ifndef KG_CHANNELS_CODEC_H
#define KG_CHANNELS_CODEC_H

#include <stdbool.h>

#include "cb/util.h"
#include "kg_private.h"

/* A message from a client: text JSON (binary false), jupyter_server's binary format (binary,
 * !v1) or v1.kernel.websocket.jupyter.org (binary, v1). Sets *ch to shell, control or stdin.
 * NULL with *why (static text) when it is refused. Caller owns return value. */
jp_msg_t *kg_channels_decode(const void *data, size_t len, bool binary, bool v1, jp_channel_t *ch,
                             const char **why);

/* A message to a client in the default format (*binary: whether it is a binary frame) or v1,
 * appended to out. Returns 0 or -1. */
int kg_channels_encode(const jp_msg_t *msg, const char *channel, bool v1, cb_buf_t *out, bool *binary);

#endif
