/* wire.c: the Jupyter wire protocol, for everything that talks to a kernel (the gateway) or is
 * one (the C kernels to come).
 *
 * Why: every message to or from a kernel crosses this file. It is the one place that knows the
 * framing, signs, and refuses forged or replayed messages, so no other module parses an
 * unverified byte (house rule: no parsing before the HMAC is verified).
 *
 * How:
 *   - A signer holds one EVP_MAC_CTX (OpenSSL 3, HMAC-SHA256) initialised with the key once. Each
 *     signature re-initialises that context with a NULL key, which resets it to the keyed state
 *     without re-deriving the pads or allocating, then feeds the four dict frames' raw bytes in
 *     order. The key lives only inside OpenSSL (which wipes it on free) and is never logged.
 *   - jp_wire_split only records pointers to the zmsg_t's frames (no copy, no parse).
 *     jp_wire_verify checks the signature frame's length, then compares in constant time
 *     (CRYPTO_memcmp), and only then asks the replay guard.
 *   - The replay guard is a ring of the last `capacity` signatures (owned copies) plus a zhashx
 *     that indexes the same copies: membership and FIFO eviction are both O(1).
 *   - jp_wire_decode parses the four dicts only after verification. On success it keeps the
 *     received zmsg_t itself as the message's buffers (the leading frames are popped off), so
 *     large binary buffers are never copied; the small identity frames are duplicated.
 *   - jp_wire_encode dumps the dicts compactly, signs the resulting frames, and copies the
 *     identities and buffers (the message is const). jp_wire_resign rewrites only the
 *     signature frame, which is what the attach proxy needs.
 *
 * A signer is not thread-safe (its context is reused): use one per thread. */
#include "jupyter/wire.h"

#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "cb/alloc.h"
#include "cb/cleanup.h"
#include "cb/log.h"
#include "cb/util.h"

#define S_MAX_FRAMES 64 /* == the size of jp_wire_view_t.frames_storage */
#define S_HMAC_LEN 32   /* SHA-256 output */

/* ---- scope-bound cleanup for the czmq and local types used below -------------------------- */

static inline void s_zmsg_cleanup(zmsg_t **p) { zmsg_destroy(p); }
static inline void s_zframe_cleanup(zframe_t **p) { zframe_destroy(p); }
static inline void s_zuuid_cleanup(zuuid_t **p) { zuuid_destroy(p); }
static inline void s_msg_cleanup(jp_msg_t **p) { jp_msg_destroy(p); }
static inline void s_signer_cleanup(jp_signer_t **p) { jp_signer_destroy(p); }
static inline void s_replay_cleanup(jp_replay_t **p) { jp_replay_destroy(p); }
static inline void s_parts_cleanup(zframe_t *(*parts)[4])
{
    for (size_t i = 0; i < 4; i++)
        zframe_destroy(&(*parts)[i]);
}

#define cleanup_zmsg __attribute__((cleanup(s_zmsg_cleanup)))
#define cleanup_zframe __attribute__((cleanup(s_zframe_cleanup)))
#define cleanup_zuuid __attribute__((cleanup(s_zuuid_cleanup)))
#define cleanup_msg __attribute__((cleanup(s_msg_cleanup)))
#define cleanup_signer __attribute__((cleanup(s_signer_cleanup)))
#define cleanup_replay __attribute__((cleanup(s_replay_cleanup)))
#define cleanup_parts __attribute__((cleanup(s_parts_cleanup)))

/* ---- signer ------------------------------------------------------------------------------- */

struct jp_signer {
    EVP_MAC_CTX *ctx; /* keyed HMAC-SHA256; NULL when unsigned */
};

/* Record the oldest queued OpenSSL error (never key material) and empty the queue. */
static int s_openssl_fail(cb_error_t *err, const char *what)
{
    char detail[256] = "no detail";
    unsigned long code = ERR_get_error();
    if (code)
        ERR_error_string_n(code, detail, sizeof detail);
    ERR_clear_error();
    return cb_error_fail(err, CB_ERR_INTERNAL, "OpenSSL %s: %s", what, detail);
}

jp_signer_t *jp_signer_new(const void *key, size_t key_len, cb_error_t *err)
{
    cleanup_signer jp_signer_t *self = cb_xcalloc(1, sizeof *self);
    if (key_len == 0)
        return steal_pointer(&self); /* unsigned: sign with "", accept anything */

    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (!mac)
        return s_openssl_fail(err, "fetch HMAC"), NULL;
    self->ctx = EVP_MAC_CTX_new(mac); /* holds its own reference to mac */
    EVP_MAC_free(mac);
    if (!self->ctx)
        return s_openssl_fail(err, "create HMAC context"), NULL;

    char digest[] = "SHA256";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_end(),
    };
    if (!EVP_MAC_init(self->ctx, key, key_len, params))
        return s_openssl_fail(err, "initialise HMAC-SHA256"), NULL;
    return steal_pointer(&self);
}

void jp_signer_destroy(jp_signer_t **self_p)
{
    assert(self_p);
    jp_signer_t *self = *self_p;
    if (!self)
        return;
    EVP_MAC_CTX_free(self->ctx); /* wipes the key */
    free(self);
    *self_p = NULL;
}

bool jp_signer_is_unsigned(const jp_signer_t *self)
{
    assert(self);
    return self->ctx == NULL;
}

int jp_signer_sign(jp_signer_t *self, zframe_t *const parts[4], char *out)
{
    static const char hex[] = "0123456789abcdef";
    assert(self && parts && out);
    out[0] = '\0';
    if (!self->ctx)
        return 0;

    /* A NULL key re-initialises with the key already set: no allocation, no key schedule. */
    if (!EVP_MAC_init(self->ctx, NULL, 0, NULL))
        return s_openssl_fail(NULL, "reset HMAC"), -1;
    for (size_t i = 0; i < 4; i++) {
        assert(parts[i]);
        if (!EVP_MAC_update(self->ctx, zframe_data(parts[i]), zframe_size(parts[i]))) {
            ERR_clear_error();
            return -1;
        }
    }
    unsigned char mac[S_HMAC_LEN];
    size_t mac_len = 0;
    if (!EVP_MAC_final(self->ctx, mac, &mac_len, sizeof mac) || mac_len != S_HMAC_LEN) {
        ERR_clear_error();
        return -1;
    }
    for (size_t i = 0; i < S_HMAC_LEN; i++) {
        out[2 * i] = hex[mac[i] >> 4];
        out[2 * i + 1] = hex[mac[i] & 0x0f];
    }
    out[JP_WIRE_SIG_HEX_LEN] = '\0';
    return 0;
}

/* ---- replay guard ------------------------------------------------------------------------- */

/* A remembered signature. Keys in the hash table are these structs; lookups use a stack one
 * whose data points at the caller's bytes, so a check costs no allocation unless it inserts. */
typedef struct {
    size_t len;
    const char *data;
} s_sig_key_t;

struct jp_replay {
    zhashx_t *seen;     /* s_sig_key_t * -> same pointer; the ring owns the keys */
    s_sig_key_t **ring; /* `capacity` slots; `count` used from `next` (the oldest) on */
    size_t capacity;
    size_t count;
    size_t next;
};

/* FNV-1a over the bytes. */
static size_t s_sig_key_hash(const void *key)
{
    const s_sig_key_t *k = key;
    uint64_t h = 14695981039346656037ULL;
    for (size_t i = 0; i < k->len; i++) {
        h ^= (unsigned char)k->data[i];
        h *= 1099511628211ULL;
    }
    return (size_t)h;
}

static int s_sig_key_compare(const void *a, const void *b)
{
    const s_sig_key_t *x = a, *y = b;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return memcmp(x->data, y->data, x->len);
}

/* One allocation: the struct followed by a copy of the bytes. */
static s_sig_key_t *s_sig_key_new(const char *sig, size_t len)
{
    s_sig_key_t *key = cb_xmalloc(sizeof *key + len);
    char *copy = (char *)(key + 1);
    memcpy(copy, sig, len);
    key->len = len;
    key->data = copy;
    return key;
}

jp_replay_t *jp_replay_new(size_t capacity)
{
    cleanup_replay jp_replay_t *self = cb_xcalloc(1, sizeof *self);
    self->capacity = capacity;
    if (capacity > 0)
        self->ring = cb_xcalloc(capacity, sizeof *self->ring);
    self->seen = zhashx_new();
    if (!self->seen)
        return NULL;
    zhashx_set_key_hasher(self->seen, s_sig_key_hash);
    zhashx_set_key_comparator(self->seen, s_sig_key_compare);
    zhashx_set_key_duplicator(self->seen, NULL);
    zhashx_set_key_destructor(self->seen, NULL);
    return steal_pointer(&self);
}

void jp_replay_destroy(jp_replay_t **self_p)
{
    assert(self_p);
    jp_replay_t *self = *self_p;
    if (!self)
        return;
    zhashx_destroy(&self->seen); /* frees only its items: keys belong to the ring */
    for (size_t i = 0; i < self->count; i++)
        free(self->ring[(self->next + i) % self->capacity]);
    free(self->ring);
    free(self);
    *self_p = NULL;
}

bool jp_replay_check_and_add(jp_replay_t *self, const char *sig, size_t len)
{
    assert(self && (sig || len == 0));
    s_sig_key_t probe = {.len = len, .data = len ? sig : ""};
    if (zhashx_lookup(self->seen, &probe))
        return true;
    if (self->capacity == 0)
        return false; /* a window of nothing remembers nothing */

    s_sig_key_t *key = s_sig_key_new(probe.data, len);
    if (self->count == self->capacity) { /* full: forget the oldest */
        s_sig_key_t *oldest = self->ring[self->next];
        zhashx_delete(self->seen, oldest);
        free(oldest);
        self->ring[self->next] = NULL;
        self->next = (self->next + 1) % self->capacity;
        self->count--;
    }
    if (zhashx_insert(self->seen, key, key) != 0) {
        free(key);
        cb_warn("replay guard: out of memory, signature not remembered");
        return false;
    }
    self->ring[(self->next + self->count) % self->capacity] = key;
    self->count++;
    return false;
}

/* ---- split and verify --------------------------------------------------------------------- */

const char *jp_wire_status_name(jp_wire_status_t status)
{
    switch (status) {
    case JP_WIRE_OK: return "ok";
    case JP_WIRE_NO_DELIMITER: return "no delimiter";
    case JP_WIRE_TOO_SHORT: return "too short";
    case JP_WIRE_BAD_SIGNATURE: return "bad signature";
    case JP_WIRE_REPLAYED: return "replayed";
    case JP_WIRE_BAD_JSON: return "bad json";
    case JP_WIRE_TOO_MANY_FRAMES: return "too many frames";
    }
    return "unknown";
}

jp_wire_status_t jp_wire_split(zmsg_t *msg, jp_wire_view_t *view)
{
    assert(msg && view);
    view->idents = view->frames_storage;
    view->n_idents = 0;
    view->signature = NULL;
    memset(view->parts, 0, sizeof view->parts);
    view->buffers = NULL;
    view->n_buffers = 0;

    size_t n = zmsg_size(msg);
    if (n > S_MAX_FRAMES)
        return JP_WIRE_TOO_MANY_FRAMES;

    size_t delim = n; /* index of the first delimiter; n while not found */
    size_t i = 0;
    for (zframe_t *f = zmsg_first(msg); f; f = zmsg_next(msg), i++) {
        view->frames_storage[i] = f;
        if (delim == n && zframe_streq(f, JP_WIRE_DELIM))
            delim = i;
    }
    if (delim == n)
        return JP_WIRE_NO_DELIMITER;
    if (n - delim - 1 < 5)
        return JP_WIRE_TOO_SHORT;

    view->n_idents = delim;
    view->signature = view->frames_storage[delim + 1];
    for (size_t k = 0; k < 4; k++)
        view->parts[k] = view->frames_storage[delim + 2 + k];
    view->buffers = view->frames_storage + delim + 6;
    view->n_buffers = n - delim - 6;
    return JP_WIRE_OK;
}

jp_wire_status_t jp_wire_verify(jp_signer_t *signer, jp_replay_t *guard, const jp_wire_view_t *view)
{
    assert(signer && view && view->signature);
    if (jp_signer_is_unsigned(signer))
        return JP_WIRE_OK; /* the spec: an empty key disables signing and checking */

    zframe_t *sig = view->signature;
    if (zframe_size(sig) != JP_WIRE_SIG_HEX_LEN)
        return JP_WIRE_BAD_SIGNATURE;

    char expected[JP_WIRE_SIG_HEX_LEN + 1];
    if (jp_signer_sign(signer, view->parts, expected) < 0) {
        cb_err("HMAC computation failed; refusing the message");
        return JP_WIRE_BAD_SIGNATURE; /* fail closed */
    }
    if (CRYPTO_memcmp(expected, zframe_data(sig), JP_WIRE_SIG_HEX_LEN) != 0)
        return JP_WIRE_BAD_SIGNATURE;

    if (guard &&
        jp_replay_check_and_add(guard, (const char *)zframe_data(sig), JP_WIRE_SIG_HEX_LEN))
        return JP_WIRE_REPLAYED;
    return JP_WIRE_OK;
}

/* ---- parsed messages ---------------------------------------------------------------------- */

jp_msg_t *jp_msg_new(const char *msg_type, const char *session, json_t *parent, json_t *content)
{
    json_auto_t *owned_content = content; /* taken even when we fail */
    if (!msg_type || !session)
        return NULL;

    cleanup_zuuid zuuid_t *uuid = zuuid_new();
    if (!uuid)
        return NULL;
    char date[CB_ISO8601_LEN];
    cb_iso8601_now(date);

    cleanup_msg jp_msg_t *self = cb_xcalloc(1, sizeof *self);
    self->header = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "msg_id", zuuid_str_canonical(uuid),
                             "session", session, "username", "cellblock", "date", date, "msg_type",
                             msg_type, "version", JP_PROTOCOL_VERSION);
    if (!self->header)
        return NULL;
    /* Allocation cannot fail (cb/alloc.h is jansson's allocator); the copy fails only for a
     * parent jansson refuses to copy (one that contains itself). */
    self->parent_header = parent ? json_deep_copy(parent) : json_object();
    if (!self->parent_header)
        return NULL;
    self->metadata = json_object();
    self->content = owned_content ? steal_pointer(&owned_content) : json_object();
    self->idents = zmsg_new();
    self->buffers = zmsg_new();
    if (!self->idents || !self->buffers)
        return NULL;
    return steal_pointer(&self);
}

void jp_msg_destroy(jp_msg_t **self_p)
{
    assert(self_p);
    jp_msg_t *self = *self_p;
    if (!self)
        return;
    zmsg_destroy(&self->idents);
    json_decref(self->header);
    json_decref(self->parent_header);
    json_decref(self->metadata);
    json_decref(self->content);
    zmsg_destroy(&self->buffers);
    free(self);
    *self_p = NULL;
}

static const char *s_string_field(const json_t *object, const char *key)
{
    const char *value = json_string_value(json_object_get(object, key));
    return value ? value : "";
}

const char *jp_msg_type(const jp_msg_t *self)
{
    return self ? s_string_field(self->header, "msg_type") : "";
}

const char *jp_msg_id(const jp_msg_t *self)
{
    return self ? s_string_field(self->header, "msg_id") : "";
}

const char *jp_msg_parent_id(const jp_msg_t *self)
{
    return self ? s_string_field(self->parent_header, "msg_id") : "";
}

/* ---- decode and encode -------------------------------------------------------------------- */

/* Append a copy of every frame of src (may be NULL) to out. Returns 0 or -1. */
static int s_append_copies(zmsg_t *out, zmsg_t *src)
{
    if (!src)
        return 0;
    for (zframe_t *f = zmsg_first(src); f; f = zmsg_next(src)) {
        zframe_t *copy = zframe_dup(f);
        if (!copy || zmsg_append(out, &copy) != 0) {
            zframe_destroy(&copy);
            return -1;
        }
    }
    return 0;
}

jp_msg_t *jp_wire_decode(zmsg_t **raw_p, jp_signer_t *signer, jp_replay_t *guard,
                         jp_wire_status_t *status)
{
    assert(raw_p && *raw_p && signer);
    jp_wire_status_t ignored;
    if (!status)
        status = &ignored;

    jp_wire_view_t view;
    *status = jp_wire_split(*raw_p, &view);
    if (*status != JP_WIRE_OK)
        return NULL;
    *status = jp_wire_verify(signer, guard, &view);
    if (*status != JP_WIRE_OK)
        return NULL;

    /* Everything that can fail happens before *raw_p is touched: the caller keeps it intact.
     * Allocations abort instead of failing (cb/alloc.h; czmq aborts too), so what fails here is
     * the JSON itself. */
    *status = JP_WIRE_BAD_JSON;
    cleanup_msg jp_msg_t *msg = cb_xcalloc(1, sizeof *msg);
    json_t **dicts[4] = {&msg->header, &msg->parent_header, &msg->metadata, &msg->content};
    for (size_t i = 0; i < 4; i++) {
        json_error_t jerr;
        /* JSON_ALLOW_NUL: a kernel may legitimately print "\u0000"; refusing it would drop
         * the output. */
        *dicts[i] = json_loadb((const char *)zframe_data(view.parts[i]), zframe_size(view.parts[i]),
                               JSON_ALLOW_NUL, &jerr);
        if (!json_is_object(*dicts[i])) {
            /* jerr.text may quote the input (user data): debug level only */
            cb_debug("dict frame %zu is not a JSON object: %s", i,
                     *dicts[i] ? "not an object" : jerr.text);
            return NULL;
        }
    }
    msg->idents = zmsg_new();
    if (!msg->idents)
        return NULL;
    for (size_t i = 0; i < view.n_idents; i++) {
        zframe_t *copy = zframe_dup(view.idents[i]);
        if (!copy || zmsg_append(msg->idents, &copy) != 0) {
            zframe_destroy(&copy);
            return NULL;
        }
    }

    /* Nothing below can fail. Pop identities, delimiter, signature and dicts off the front;
     * what remains of the received message is exactly the buffers, kept without a copy. */
    zmsg_t *raw = steal_pointer(raw_p);
    for (size_t i = 0; i < view.n_idents + 6; i++) {
        zframe_t *frame = zmsg_pop(raw);
        zframe_destroy(&frame);
    }
    msg->buffers = raw;
    *status = JP_WIRE_OK;
    return steal_pointer(&msg);
}

zmsg_t *jp_wire_encode(const jp_msg_t *msg, jp_signer_t *signer)
{
    assert(msg && signer);
    const json_t *dicts[4] = {msg->header, msg->parent_header, msg->metadata, msg->content};
    cleanup_parts zframe_t *parts[4] = {NULL, NULL, NULL, NULL};
    for (size_t i = 0; i < 4; i++) {
        cleanup_free char *text = json_dumps(dicts[i], JSON_COMPACT);
        if (!text)
            return NULL;
        parts[i] = zframe_new(text, strlen(text));
        if (!parts[i])
            return NULL;
    }
    char sig[JP_WIRE_SIG_HEX_LEN + 1];
    if (jp_signer_sign(signer, parts, sig) < 0)
        return NULL;

    cleanup_zmsg zmsg_t *out = zmsg_new();
    if (!out)
        return NULL;
    if (s_append_copies(out, msg->idents) < 0)
        return NULL;
    if (zmsg_addmem(out, JP_WIRE_DELIM, strlen(JP_WIRE_DELIM)) != 0 ||
        zmsg_addmem(out, sig, strlen(sig)) != 0)
        return NULL;
    for (size_t i = 0; i < 4; i++)
        if (zmsg_append(out, &parts[i]) != 0)
            return NULL;
    if (s_append_copies(out, msg->buffers) < 0)
        return NULL;
    return steal_pointer(&out);
}

int jp_wire_resign(jp_wire_view_t *view, jp_signer_t *to)
{
    assert(view && view->signature && to);
    char sig[JP_WIRE_SIG_HEX_LEN + 1];
    if (jp_signer_sign(to, view->parts, sig) < 0)
        return -1;
    zframe_reset(view->signature, sig, strlen(sig));
    return 0;
}

int jp_wire_send(void *sock, const jp_msg_t *msg, jp_signer_t *signer)
{
    assert(sock);
    zmsg_t *out = jp_wire_encode(msg, signer);
    if (!out) {
        errno = ENOMEM;
        return -1;
    }
    int rc = zmsg_send(&out, sock);
    if (out) { /* some czmq versions keep the message when the send fails */
        int saved = errno;
        zmsg_destroy(&out);
        errno = saved;
    }
    return rc;
}
