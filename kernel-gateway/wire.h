/* wire.h (private): the Jupyter wire protocol: framing, HMAC-SHA256 signing, replay guard.
 *
 * A message on the wire is a ZMQ multipart:
 *
 *   [identity...] "<IDS|MSG>" signature header parent_header metadata content [buffer...]
 *
 * The signature is the lowercase hex HMAC-SHA256 of the four dict frames, in that order, keyed
 * with the connection's key. Verification works on the raw frames, before any JSON is parsed:
 * the signature's length is checked first, then its value is compared in constant time. A
 * signature seen before (within the guard's window) is a replay and is rejected. An empty key
 * means unsigned: the signature is "" and is not checked (the spec's rule).
 *
 * The attach proxy never parses JSON at all: it splits, verifies with one signer, and re-signs
 * the same frames with another (kg_wire_resign).
 */
#ifndef KG_WIRE_H
#define KG_WIRE_H

#include <czmq.h>
#include <jansson.h>
#include <stdbool.h>

#include "cb/error.h"
#include "kg/kg.h"

#define KG_WIRE_DELIM "<IDS|MSG>"
#define KG_WIRE_SIG_HEX_LEN 64 /* hex of a 32-byte SHA-256 HMAC */
#define KG_PROTOCOL_VERSION "5.3"

/* ---- signer ------------------------------------------------------------------------------- */

typedef struct kg_signer kg_signer_t;

/* key may be empty (len 0): the signer then signs with "" and accepts any signature.
 * Caller owns return value; NULL on allocation/OpenSSL failure with err set. */
kg_signer_t *kg_signer_new(const void *key, size_t key_len, cb_error_t *err);
void kg_signer_destroy(kg_signer_t **self_p);
bool kg_signer_is_unsigned(const kg_signer_t *self);

/* Hex HMAC of the four dict frames into out (KG_WIRE_SIG_HEX_LEN + 1 bytes, NUL-terminated;
 * "" when unsigned). Returns 0, or -1 on an OpenSSL failure. */
int kg_signer_sign(kg_signer_t *self, zframe_t *const parts[4], char *out);

/* ---- replay guard ------------------------------------------------------------------------- */

/* Remembers the last `capacity` signatures seen; the oldest is forgotten first. */
typedef struct kg_replay kg_replay_t;

kg_replay_t *kg_replay_new(size_t capacity); /* Caller owns return value */
void kg_replay_destroy(kg_replay_t **self_p);
/* Returns true if sig was seen before (a replay); otherwise remembers it and returns false. */
bool kg_replay_check_and_add(kg_replay_t *self, const char *sig, size_t len);

/* ---- split and verify --------------------------------------------------------------------- */

typedef enum {
    KG_WIRE_OK = 0,
    KG_WIRE_NO_DELIMITER, /* no "<IDS|MSG>" frame */
    KG_WIRE_TOO_SHORT,    /* fewer than signature + 4 frames after the delimiter */
    KG_WIRE_BAD_SIGNATURE,/* wrong length or wrong value */
    KG_WIRE_REPLAYED,     /* a valid signature seen before */
    KG_WIRE_BAD_JSON,     /* signature fine, but a dict frame is not a JSON object */
    KG_WIRE_TOO_MANY_FRAMES,
} kg_wire_status_t;

const char *kg_wire_status_name(kg_wire_status_t status);

/* Borrowed views of one multipart's frames (they stay owned by the zmsg_t). */
typedef struct {
    zframe_t **idents; /* the frames before the delimiter */
    size_t n_idents;
    zframe_t *signature;
    zframe_t *parts[4]; /* header, parent_header, metadata, content */
    zframe_t **buffers;
    size_t n_buffers;
    zframe_t *frames_storage[64]; /* backing store for idents/buffers; larger messages fail */
} kg_wire_view_t;

/* Split msg into view without copying or parsing. A message of more than 64 frames in all is
 * refused as KG_WIRE_TOO_MANY_FRAMES. */
kg_wire_status_t kg_wire_split(zmsg_t *msg, kg_wire_view_t *view);

/* Verify a split message's signature: length first, then a constant-time compare, then the
 * replay guard (guard may be NULL to skip it). Only a verified signature enters the guard. */
kg_wire_status_t kg_wire_verify(kg_signer_t *signer, kg_replay_t *guard, const kg_wire_view_t *view);

/* ---- parsed messages ---------------------------------------------------------------------- */

/* kg_msg_t, kg_msg_new and its accessors are public (kg/kg.h): the Jupyter API's channels
 * build and read messages too. */

/* Split, verify (as kg_wire_verify), then parse. On success returns the message and destroys
 * *raw_p; on failure returns NULL, sets *status, and leaves *raw_p to the caller. Caller owns
 * return value. */
kg_msg_t *kg_wire_decode(zmsg_t **raw_p, kg_signer_t *signer, kg_replay_t *guard,
                         kg_wire_status_t *status);

/* Serialize (compact JSON) and sign. The identities and buffers are copied. Caller owns return
 * value; NULL on failure. */
zmsg_t *kg_wire_encode(const kg_msg_t *msg, kg_signer_t *signer);

/* Replace the signature frame of a verified, split message with one made by `to`. The frames
 * themselves are not touched otherwise. Returns 0 or -1. */
int kg_wire_resign(kg_wire_view_t *view, kg_signer_t *to);

/* Encode and send on sock; returns 0 or -1 (errno from zmq). */
int kg_wire_send(void *sock, const kg_msg_t *msg, kg_signer_t *signer);

#endif
