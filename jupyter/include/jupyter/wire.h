/* jupyter/wire.h: the Jupyter wire protocol: framing, HMAC-SHA256 signing, replay guard.
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
 * The gateway's attach proxy never parses JSON at all: it splits, verifies with one signer, and
 * re-signs the same frames with another (jp_wire_resign).
 *
 * Blocking: nothing here reads a file or waits, except jp_wire_send, which sends with czmq's
 * zmsg_send and so blocks exactly when the caller's socket would (a DEALER at its high-water
 * mark, say). No event loop is assumed. A signer reuses one OpenSSL context, and a
 * replay guard is plain memory: use each from one thread at a time.
 *
 * Ownership follows the house phrases: "Caller owns return value" (free with the matching
 * _destroy, which accepts a pointer to NULL and nulls the caller's pointer), "Takes ownership",
 * "Borrowed". Allocation does not fail (cb/alloc.h): a NULL return means what each function says.
 */
#ifndef JP_WIRE_H
#define JP_WIRE_H

#include <czmq.h>
#include <jansson.h>
#include <stdbool.h>

#include "cb/error.h"

#define JP_WIRE_DELIM "<IDS|MSG>"
#define JP_WIRE_SIG_HEX_LEN 64 /* hex of a 32-byte SHA-256 HMAC */
#define JP_PROTOCOL_VERSION "5.3"

/* ---- signer ------------------------------------------------------------------------------- */

typedef struct jp_signer jp_signer_t;

/* key may be empty (len 0): the signer then signs with "" and accepts any signature. The key is
 * copied into OpenSSL (which wipes it on free). Caller owns return value; NULL on an OpenSSL
 * failure with err set. */
jp_signer_t *jp_signer_new(const void *key, size_t key_len, cb_error_t *err);
void jp_signer_destroy(jp_signer_t **self_p);
bool jp_signer_is_unsigned(const jp_signer_t *self);

/* Hex HMAC of the four dict frames into out (JP_WIRE_SIG_HEX_LEN + 1 bytes, NUL-terminated;
 * "" when unsigned). Returns 0, or -1 on an OpenSSL failure. */
int jp_signer_sign(jp_signer_t *self, zframe_t *const parts[4], char *out);

/* ---- replay guard ------------------------------------------------------------------------- */

/* Remembers the last `capacity` signatures seen; the oldest is forgotten first. */
typedef struct jp_replay jp_replay_t;

jp_replay_t *jp_replay_new(size_t capacity); /* Caller owns return value */
void jp_replay_destroy(jp_replay_t **self_p);
/* Returns true if sig was seen before (a replay); otherwise remembers it and returns false. */
bool jp_replay_check_and_add(jp_replay_t *self, const char *sig, size_t len);

/* ---- split and verify --------------------------------------------------------------------- */

typedef enum {
    JP_WIRE_OK = 0,
    JP_WIRE_NO_DELIMITER,  /* no "<IDS|MSG>" frame */
    JP_WIRE_TOO_SHORT,     /* fewer than signature + 4 frames after the delimiter */
    JP_WIRE_BAD_SIGNATURE, /* wrong length or wrong value */
    JP_WIRE_REPLAYED,      /* a valid signature seen before */
    JP_WIRE_BAD_JSON,      /* signature fine, but a dict frame is not a JSON object */
    JP_WIRE_TOO_MANY_FRAMES,
} jp_wire_status_t;

const char *jp_wire_status_name(jp_wire_status_t status);

/* Borrowed views of one multipart's frames (they stay owned by the zmsg_t). */
typedef struct {
    zframe_t **idents; /* the frames before the delimiter */
    size_t n_idents;
    zframe_t *signature;
    zframe_t *parts[4]; /* header, parent_header, metadata, content */
    zframe_t **buffers;
    size_t n_buffers;
    zframe_t *frames_storage[64]; /* backing store for idents/buffers; larger messages fail */
} jp_wire_view_t;

/* Split msg into view without copying or parsing. A message of more than 64 frames in all is
 * refused as JP_WIRE_TOO_MANY_FRAMES. */
jp_wire_status_t jp_wire_split(zmsg_t *msg, jp_wire_view_t *view);

/* Verify a split message's signature: length first, then a constant-time compare, then the
 * replay guard (guard may be NULL to skip it). Only a verified signature enters the guard. */
jp_wire_status_t jp_wire_verify(jp_signer_t *signer, jp_replay_t *guard,
                                const jp_wire_view_t *view);

/* ---- parsed messages ---------------------------------------------------------------------- */

typedef struct {
    zmsg_t *idents; /* identity frames, possibly empty; owned */
    json_t *header; /* owned references */
    json_t *parent_header;
    json_t *metadata;
    json_t *content;
    zmsg_t *buffers; /* binary buffers, possibly empty; owned */
} jp_msg_t;

/* A new message with a fresh header (msg_id uuid, session, username "cellblock", ISO-8601 UTC
 * date, msg_type, version JP_PROTOCOL_VERSION). parent may be NULL (empty parent header);
 * it is copied. Takes ownership of content (NULL means {}). Caller owns return value. */
jp_msg_t *jp_msg_new(const char *msg_type, const char *session, json_t *parent, json_t *content);
void jp_msg_destroy(jp_msg_t **self_p);

/* Borrowed string fields of the header / parent header, or "" when missing. */
const char *jp_msg_type(const jp_msg_t *self);
const char *jp_msg_id(const jp_msg_t *self);
const char *jp_msg_parent_id(const jp_msg_t *self);

/* Split, verify (as jp_wire_verify), then parse. On success returns the message and destroys
 * *raw_p; on failure returns NULL, sets *status, and leaves *raw_p to the caller. Caller owns
 * return value. */
jp_msg_t *jp_wire_decode(zmsg_t **raw_p, jp_signer_t *signer, jp_replay_t *guard,
                         jp_wire_status_t *status);

/* Serialize (compact JSON) and sign. The identities and buffers are copied. Caller owns return
 * value; NULL on failure. */
zmsg_t *jp_wire_encode(const jp_msg_t *msg, jp_signer_t *signer);

/* Replace the signature frame of a verified, split message with one made by `to`. The frames
 * themselves are not touched otherwise. Returns 0 or -1. */
int jp_wire_resign(jp_wire_view_t *view, jp_signer_t *to);

/* Encode and send on sock; returns 0 or -1 (errno from zmq). */
int jp_wire_send(void *sock, const jp_msg_t *msg, jp_signer_t *signer);

#endif
