/* test_wire.c: unit test for wire.c, the Jupyter wire protocol (TAP output).
 *
 * Why: a forged, replayed or mis-framed message must never reach the JSON parser, and what we
 * sign must be byte-for-byte what Jupyter signs. Each rule of wire.h gets a test here.
 *
 * How: messages are built with jp_msg_new/jp_wire_encode or, for malformed cases, frame by
 * frame; they are then split, verified and decoded, and the status compared. A fixed HMAC
 * vector, computed with the openssl CLI, pins the exact bytes signed. */
#include "jupyter/wire.h"

#include <string.h>

#include "cb/cleanup.h"
#include "cb/tap.h"
#include "cb/util.h"

static const char s_key[] = "cellblock-test-key";

/* A message built frame by frame from strings: [idents..., "<IDS|MSG>", sig, d0, d1, d2, d3]. */
static zmsg_t *s_raw(const char *ident, const char *sig, const char *const dicts[4])
{
    zmsg_t *msg = zmsg_new();
    if (ident)
        zmsg_addstr(msg, ident);
    zmsg_addstr(msg, JP_WIRE_DELIM);
    zmsg_addstr(msg, sig);
    for (int i = 0; i < 4; i++)
        zmsg_addstr(msg, dicts[i]);
    return msg;
}

/* Sign four raw strings (need not be JSON) with signer; out holds 65 bytes. */
static int s_sign_strings(jp_signer_t *signer, const char *const dicts[4], char *out)
{
    zframe_t *parts[4];
    for (int i = 0; i < 4; i++)
        parts[i] = zframe_new(dicts[i], strlen(dicts[i]));
    int rc = jp_signer_sign(signer, parts, out);
    for (int i = 0; i < 4; i++)
        zframe_destroy(&parts[i]);
    return rc;
}

static bool s_frame_is(zframe_t *frame, const void *data, size_t size)
{
    return frame && zframe_size(frame) == size && memcmp(zframe_data(frame), data, size) == 0;
}

static bool s_is_lower_uuid(const char *s)
{
    if (strlen(s) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !strchr("0123456789abcdef", s[i]))
            return false;
    }
    return true;
}

/* A message with two identities (one binary) and two buffers (one binary, one empty). */
static jp_msg_t *s_sample_msg(void)
{
    json_t *content = json_pack("{s:s, s:i, s:{s:[i,i], s:n}, s:s}", "code", "print('héllo')\n",
                                "n", 3, "nested", "list", 1, 2, "none", "unicode", "é✓ \"q\"");
    jp_msg_t *msg = jp_msg_new("execute_request", "session-1", NULL, content);
    if (!msg)
        return NULL;
    json_object_set_new(msg->metadata, "trusted", json_true());
    zmsg_addstr(msg->idents, "client-7");
    zmsg_addmem(msg->idents, "\0\x01\xff", 3);
    unsigned char big[4096];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (unsigned char)(i * 7);
    zmsg_addmem(msg->buffers, big, sizeof big);
    zmsg_addmem(msg->buffers, NULL, 0);
    return msg;
}

static void test_hmac_vector(void)
{
    /* Computed once with:
     *   printf '%s' '{"msg_id":"a1","msg_type":"execute_request"}{}{}{"code":"1+1"}' \
     *     | openssl dgst -sha256 -hmac 'cellblock-test-key'
     * i.e. the HMAC of the plain concatenation of the four frames, nothing in between. */
    static const char expected[] =
        "af5b765ea1e123942593694a2441b8c6b8a862fc97f25a9ccc1a28f0aec7b71c";
    const char *const dicts[4] = {"{\"msg_id\":\"a1\",\"msg_type\":\"execute_request\"}", "{}",
                                  "{}", "{\"code\":\"1+1\"}"};
    jp_signer_t *signer = jp_signer_new(s_key, strlen(s_key), NULL);
    char sig[JP_WIRE_SIG_HEX_LEN + 1];
    CB_OK(s_sign_strings(signer, dicts, sig) == 0 && strcmp(sig, expected) == 0,
          "HMAC-SHA256 test vector (got %s)", sig);
    /* Signing reuses one context: a second, different message, then the first again. */
    const char *const other[4] = {"{}", "{}", "{}", "{}"};
    char sig_other[JP_WIRE_SIG_HEX_LEN + 1];
    s_sign_strings(signer, other, sig_other);
    s_sign_strings(signer, dicts, sig);
    CB_OK(strcmp(sig, expected) == 0 && strcmp(sig_other, expected) != 0,
          "the signer's context resets between messages");
    CB_OK(!jp_signer_is_unsigned(signer), "a keyed signer is signed");
    jp_signer_destroy(&signer);
    CB_OK(signer == NULL, "jp_signer_destroy nulls the pointer");
    jp_signer_destroy(&signer); /* NULL is fine */
}

static void test_new_header(void)
{
    jp_msg_t *msg = jp_msg_new("kernel_info_request", "sess-abc", NULL, NULL);
    CB_OK(msg != NULL, "jp_msg_new");
    if (!msg)
        return;
    const char *id = jp_msg_id(msg);
    CB_OK(s_is_lower_uuid(id), "msg_id is a 36-char lowercase uuid (%s)", id);
    CB_OK(strcmp(jp_msg_type(msg), "kernel_info_request") == 0, "msg_type");
    CB_OK(strcmp(json_string_value(json_object_get(msg->header, "version")), "5.3") == 0,
          "version 5.3");
    CB_OK(strcmp(json_string_value(json_object_get(msg->header, "username")), "cellblock") == 0,
          "username cellblock");
    CB_OK(strcmp(json_string_value(json_object_get(msg->header, "session")), "sess-abc") == 0,
          "session");
    const char *date = json_string_value(json_object_get(msg->header, "date"));
    CB_OK(date && strlen(date) == 27 && date[26] == 'Z' && date[10] == 'T' && date[19] == '.',
          "date is ISO 8601 UTC with microseconds (%s)", date ? date : "(null)");
    CB_OK(json_is_object(msg->parent_header) && json_object_size(msg->parent_header) == 0,
          "parent_header {} when NULL");
    CB_OK(json_is_object(msg->metadata) && json_object_size(msg->metadata) == 0, "metadata {}");
    CB_OK(json_is_object(msg->content) && json_object_size(msg->content) == 0,
          "content {} when NULL");
    CB_OK(msg->idents && zmsg_size(msg->idents) == 0 && msg->buffers &&
              zmsg_size(msg->buffers) == 0,
          "idents and buffers empty");
    CB_OK(strcmp(jp_msg_parent_id(msg), "") == 0, "no parent id");

    json_t *parent = json_deep_copy(msg->header);
    jp_msg_t *reply =
        jp_msg_new("kernel_info_reply", "sess-abc", parent, json_pack("{s:s}", "status", "ok"));
    json_object_set_new(parent, "msg_id", json_string("changed"));
    CB_OK(reply && strcmp(jp_msg_parent_id(reply), id) == 0,
          "parent header is copied (later changes to the original do not show)");
    CB_OK(reply && strcmp(jp_msg_id(reply), id) != 0, "fresh msg_id per message");
    CB_OK(reply && strcmp(json_string_value(json_object_get(reply->content, "status")), "ok") == 0,
          "content is taken");
    json_decref(parent);

    json_object_set_new(reply->header, "msg_type", json_integer(3));
    json_object_del(reply->header, "msg_id");
    CB_OK(strcmp(jp_msg_type(reply), "") == 0 && strcmp(jp_msg_id(reply), "") == 0 &&
              strcmp(jp_msg_type(NULL), "") == 0,
          "accessors give \"\" for non-string or missing fields");
    jp_msg_destroy(&reply);
    jp_msg_destroy(&msg);
    CB_OK(msg == NULL, "jp_msg_destroy nulls the pointer");
    jp_msg_destroy(&msg);
    CB_OK(jp_msg_new(NULL, "s", NULL, json_object()) == NULL, "jp_msg_new refuses a NULL type");
}

static void test_round_trip(void)
{
    jp_signer_t *signer = jp_signer_new(s_key, strlen(s_key), NULL);
    jp_msg_t *msg = s_sample_msg();
    zmsg_t *raw = jp_wire_encode(msg, signer);
    CB_OK(raw && zmsg_size(raw) == 2 + 1 + 1 + 4 + 2, "encode gives idents + 6 + buffers frames");

    jp_wire_view_t view;
    CB_OK(jp_wire_split(raw, &view) == JP_WIRE_OK, "split");
    CB_OK(view.n_idents == 2 && view.n_buffers == 2, "split: 2 identities and 2 buffers");
    CB_OK(zframe_size(view.signature) == JP_WIRE_SIG_HEX_LEN, "signature is 64 hex chars");
    CB_OK(zmsg_first(raw) == view.idents[0] && zmsg_last(raw) == view.buffers[1],
          "views borrow the message's own frames");
    CB_OK(zframe_size(view.parts[3]) > 8 &&
              memcmp(zframe_data(view.parts[3]), "{\"code\":\"", 9) == 0 &&
              s_frame_is(view.parts[1], "{}", 2),
          "dicts are compact JSON in insertion order");

    jp_wire_status_t status = JP_WIRE_TOO_SHORT;
    jp_msg_t *back = jp_wire_decode(&raw, signer, NULL, &status);
    CB_OK(back && status == JP_WIRE_OK && raw == NULL, "decode: OK and the raw message consumed");
    if (back) {
        CB_OK(json_equal(back->header, msg->header), "header survives");
        CB_OK(json_equal(back->parent_header, msg->parent_header), "parent_header survives");
        CB_OK(json_equal(back->metadata, msg->metadata), "metadata survives");
        CB_OK(json_equal(back->content, msg->content), "content survives (unicode, nesting)");
        CB_OK(zmsg_size(back->idents) == 2 && s_frame_is(zmsg_first(back->idents), "client-7", 8) &&
                  s_frame_is(zmsg_next(back->idents), "\0\x01\xff", 3),
              "identities survive, binary included");
        zframe_t *b0 = zmsg_first(back->buffers);
        zframe_t *b1 = zmsg_next(back->buffers);
        zframe_t *o0 = zmsg_first(msg->buffers);
        CB_OK(zmsg_size(back->buffers) == 2 && b0 && o0 &&
                  s_frame_is(b0, zframe_data(o0), zframe_size(o0)) && b1 && zframe_size(b1) == 0,
              "buffers survive, empty one included");
        CB_OK(strcmp(jp_msg_id(back), jp_msg_id(msg)) == 0, "jp_msg_id after decode");
    }
    jp_msg_destroy(&back);
    zmsg_destroy(&raw);
    jp_msg_destroy(&msg);
    jp_signer_destroy(&signer);
}

static void test_send(void)
{
    jp_signer_t *signer = jp_signer_new(s_key, strlen(s_key), NULL);
    zsock_t *a = zsock_new_pair("@inproc://test-wire-send");
    zsock_t *b = zsock_new_pair(">inproc://test-wire-send");
    jp_msg_t *msg = s_sample_msg();
    CB_OK(a && b && jp_wire_send(a, msg, signer) == 0, "jp_wire_send");
    zsock_set_rcvtimeo(b, 2000);
    zmsg_t *raw = b ? zmsg_recv(b) : NULL;
    jp_wire_status_t status = JP_WIRE_TOO_SHORT;
    jp_msg_t *got = raw ? jp_wire_decode(&raw, signer, NULL, &status) : NULL;
    CB_OK(got && status == JP_WIRE_OK && json_equal(got->content, msg->content),
          "what was sent decodes");
    jp_msg_destroy(&got);
    zmsg_destroy(&raw);
    jp_msg_destroy(&msg);
    zsock_destroy(&b);
    zsock_destroy(&a);
    jp_signer_destroy(&signer);
}

/* Encode a sample, apply `mutate` to its view, and return the verify status with `verifier`. */
typedef void (*s_mutate_fn)(jp_wire_view_t *view);

static jp_wire_status_t s_verify_mutated(jp_signer_t *signer, jp_signer_t *verifier,
                                         s_mutate_fn mutate)
{
    jp_msg_t *msg = s_sample_msg();
    zmsg_t *raw = jp_wire_encode(msg, signer);
    jp_wire_view_t view;
    jp_wire_status_t status = jp_wire_split(raw, &view);
    if (status == JP_WIRE_OK) {
        if (mutate)
            mutate(&view);
        status = jp_wire_verify(verifier, NULL, &view);
    }
    zmsg_destroy(&raw);
    jp_msg_destroy(&msg);
    return status;
}

static void s_tamper_header(jp_wire_view_t *v) { ((char *)zframe_data(v->parts[0]))[5] ^= 1; }
static void s_tamper_parent(jp_wire_view_t *v) { ((char *)zframe_data(v->parts[1]))[0] ^= 1; }
static void s_tamper_metadata(jp_wire_view_t *v) { ((char *)zframe_data(v->parts[2]))[3] ^= 1; }
static void s_tamper_content(jp_wire_view_t *v)
{
    char *d = (char *)zframe_data(v->parts[3]);
    d[zframe_size(v->parts[3]) - 2] ^= 1;
}

static void s_truncate_sig(jp_wire_view_t *v)
{
    char sig[JP_WIRE_SIG_HEX_LEN];
    memcpy(sig, zframe_data(v->signature), sizeof sig);
    zframe_reset(v->signature, sig, JP_WIRE_SIG_HEX_LEN - 1);
}

static void s_extend_sig(jp_wire_view_t *v)
{
    char sig[JP_WIRE_SIG_HEX_LEN + 1];
    memcpy(sig, zframe_data(v->signature), JP_WIRE_SIG_HEX_LEN);
    sig[JP_WIRE_SIG_HEX_LEN] = '0';
    zframe_reset(v->signature, sig, sizeof sig);
}

static void s_wrong_sig_value(jp_wire_view_t *v)
{
    char *d = (char *)zframe_data(v->signature);
    d[JP_WIRE_SIG_HEX_LEN - 1] = d[JP_WIRE_SIG_HEX_LEN - 1] == '0' ? '1' : '0';
}

static void test_rejections(void)
{
    jp_signer_t *signer = jp_signer_new(s_key, strlen(s_key), NULL);
    jp_signer_t *other = jp_signer_new("other-key", 9, NULL);

    CB_OK(s_verify_mutated(signer, signer, NULL) == JP_WIRE_OK, "an untouched message verifies");
    CB_OK(s_verify_mutated(signer, signer, s_tamper_header) == JP_WIRE_BAD_SIGNATURE,
          "one byte changed in header: bad signature");
    CB_OK(s_verify_mutated(signer, signer, s_tamper_parent) == JP_WIRE_BAD_SIGNATURE,
          "one byte changed in parent_header: bad signature");
    CB_OK(s_verify_mutated(signer, signer, s_tamper_metadata) == JP_WIRE_BAD_SIGNATURE,
          "one byte changed in metadata: bad signature");
    CB_OK(s_verify_mutated(signer, signer, s_tamper_content) == JP_WIRE_BAD_SIGNATURE,
          "one byte changed in content: bad signature");
    CB_OK(s_verify_mutated(signer, other, NULL) == JP_WIRE_BAD_SIGNATURE, "wrong key");
    CB_OK(s_verify_mutated(signer, signer, s_truncate_sig) == JP_WIRE_BAD_SIGNATURE,
          "truncated signature (63 chars)");
    CB_OK(s_verify_mutated(signer, signer, s_extend_sig) == JP_WIRE_BAD_SIGNATURE,
          "overlong signature (65 chars)");
    CB_OK(s_verify_mutated(signer, signer, s_wrong_sig_value) == JP_WIRE_BAD_SIGNATURE,
          "right length, wrong value");

    /* decode reports the same and hands the raw message back */
    jp_msg_t *msg = s_sample_msg();
    zmsg_t *raw = jp_wire_encode(msg, signer);
    jp_wire_status_t status = JP_WIRE_OK;
    jp_msg_t *got = jp_wire_decode(&raw, other, NULL, &status);
    CB_OK(!got && status == JP_WIRE_BAD_SIGNATURE && raw && zmsg_size(raw) == 10,
          "decode with the wrong key: NULL, status set, raw left intact");
    zmsg_destroy(&raw);
    jp_msg_destroy(&msg);

    const char *const dicts[4] = {"{}", "{}", "{}", "{}"};
    char sig[JP_WIRE_SIG_HEX_LEN + 1];
    s_sign_strings(signer, dicts, sig);

    raw = zmsg_new();
    zmsg_addstr(raw, "id");
    zmsg_addstr(raw, sig);
    for (int i = 0; i < 4; i++)
        zmsg_addstr(raw, dicts[i]);
    got = jp_wire_decode(&raw, signer, NULL, &status);
    CB_OK(!got && status == JP_WIRE_NO_DELIMITER && raw, "missing delimiter");
    zmsg_destroy(&raw);

    raw = zmsg_new();
    zmsg_addstr(raw, JP_WIRE_DELIM);
    zmsg_addstr(raw, sig);
    for (int i = 0; i < 3; i++)
        zmsg_addstr(raw, dicts[i]);
    got = jp_wire_decode(&raw, signer, NULL, &status);
    CB_OK(!got && status == JP_WIRE_TOO_SHORT && raw, "too few frames after the delimiter");
    zmsg_destroy(&raw);

    /* 64 frames in all is the limit: delimiter + 5 + 58 buffers passes, one more fails */
    raw = s_raw(NULL, sig, dicts);
    for (int i = 0; i < 58; i++)
        zmsg_addstr(raw, "buf");
    jp_wire_view_t view;
    CB_OK(zmsg_size(raw) == 64 && jp_wire_split(raw, &view) == JP_WIRE_OK && view.n_buffers == 58,
          "64 frames split");
    zmsg_addstr(raw, "buf");
    got = jp_wire_decode(&raw, signer, NULL, &status);
    CB_OK(!got && status == JP_WIRE_TOO_MANY_FRAMES && raw, "65 frames: too many frames");
    zmsg_destroy(&raw);

    /* Only the first delimiter counts: a buffer that reads "<IDS|MSG>" is just a buffer. */
    raw = s_raw("peer", sig, dicts);
    zmsg_addstr(raw, JP_WIRE_DELIM);
    got = jp_wire_decode(&raw, signer, NULL, &status);
    CB_OK(got && status == JP_WIRE_OK && zmsg_size(got->buffers) == 1 &&
              zmsg_size(got->idents) == 1,
          "the first delimiter splits; a later one is a buffer");
    jp_msg_destroy(&got);
    zmsg_destroy(&raw);

    jp_signer_destroy(&other);
    jp_signer_destroy(&signer);
}

static void test_bad_json(void)
{
    jp_signer_t *signer = jp_signer_new(s_key, strlen(s_key), NULL);
    jp_replay_t *guard = jp_replay_new(16);
    const char *const cases[][4] = {
        {"{}", "{}", "{}", "{\"code\": 1+}"}, /* not JSON */
        {"[]", "{}", "{}", "{}"},             /* JSON, not an object */
        {"{}", "{}", "\"text\"", "{}"},       /* a bare string */
        {"{}", "{} {}", "{}", "{}"},          /* trailing data */
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char sig[JP_WIRE_SIG_HEX_LEN + 1];
        s_sign_strings(signer, cases[c], sig);
        zmsg_t *raw = s_raw(NULL, sig, cases[c]);
        jp_wire_status_t status = JP_WIRE_OK;
        jp_msg_t *got = jp_wire_decode(&raw, signer, guard, &status);
        CB_OK(!got && status == JP_WIRE_BAD_JSON && raw,
              "validly signed, dict frame not a JSON object (case %zu): bad json", c);
        zmsg_destroy(&raw);
    }

    /* "\u0000" inside a string is valid JSON (a kernel may print it) */
    const char *const nul[4] = {"{}", "{}", "{}", "{\"text\":\"a\\u0000b\"}"};
    char sig[JP_WIRE_SIG_HEX_LEN + 1];
    s_sign_strings(signer, nul, sig);
    zmsg_t *raw = s_raw(NULL, sig, nul);
    jp_wire_status_t status = JP_WIRE_BAD_JSON;
    jp_msg_t *got = jp_wire_decode(&raw, signer, NULL, &status);
    CB_OK(got && status == JP_WIRE_OK &&
              json_string_length(json_object_get(got->content, "text")) == 3,
          "an escaped NUL in a string is accepted");
    jp_msg_destroy(&got);
    zmsg_destroy(&raw);

    jp_replay_destroy(&guard);
    jp_signer_destroy(&signer);
}

static void test_replay(void)
{
    jp_signer_t *signer = jp_signer_new(s_key, strlen(s_key), NULL);
    jp_replay_t *guard = jp_replay_new(8);
    jp_msg_t *msg = s_sample_msg();
    zmsg_t *raw = jp_wire_encode(msg, signer);
    zmsg_t *copy1 = zmsg_dup(raw);
    zmsg_t *copy2 = zmsg_dup(raw);

    jp_wire_status_t status = JP_WIRE_BAD_JSON;
    jp_msg_t *got = jp_wire_decode(&raw, signer, guard, &status);
    CB_OK(got && status == JP_WIRE_OK, "first delivery accepted with a guard");
    jp_msg_destroy(&got);
    got = jp_wire_decode(&copy1, signer, guard, &status);
    CB_OK(!got && status == JP_WIRE_REPLAYED && copy1, "second delivery: replayed");

    got = jp_wire_decode(&copy1, signer, NULL, &status);
    CB_OK(got && status == JP_WIRE_OK, "without a guard: accepted once");
    jp_msg_destroy(&got);
    got = jp_wire_decode(&copy2, signer, NULL, &status);
    CB_OK(got && status == JP_WIRE_OK, "without a guard: accepted twice");
    jp_msg_destroy(&got);

    /* A forged signature must not enter the guard (else it could block the real one). */
    jp_replay_t *fresh = jp_replay_new(8);
    raw = jp_wire_encode(msg, signer);
    jp_wire_view_t view;
    jp_wire_split(raw, &view);
    char sig[JP_WIRE_SIG_HEX_LEN];
    memcpy(sig, zframe_data(view.signature), sizeof sig);
    s_tamper_content(&view);
    CB_OK(jp_wire_verify(signer, fresh, &view) == JP_WIRE_BAD_SIGNATURE, "tampered: bad signature");
    CB_OK(!jp_replay_check_and_add(fresh, sig, sizeof sig),
          "a rejected message's signature was not remembered");
    zmsg_destroy(&raw);
    jp_replay_destroy(&fresh);

    zmsg_destroy(&copy1);
    zmsg_destroy(&copy2);
    jp_msg_destroy(&msg);
    jp_replay_destroy(&guard);
    CB_OK(guard == NULL, "jp_replay_destroy nulls the pointer");
    jp_replay_destroy(&guard);
    jp_signer_destroy(&signer);
}

static void test_replay_guard(void)
{
    jp_replay_t *g = jp_replay_new(2);
    CB_OK(!jp_replay_check_and_add(g, "a", 1), "a: new");
    CB_OK(jp_replay_check_and_add(g, "a", 1), "a again: replay");
    CB_OK(!jp_replay_check_and_add(g, "b", 1), "b: new");
    CB_OK(!jp_replay_check_and_add(g, "c", 1), "c: new (a forgotten)");
    CB_OK(!jp_replay_check_and_add(g, "a", 1), "a after a, b, c with capacity 2: not a replay");
    CB_OK(jp_replay_check_and_add(g, "c", 1), "c still remembered");
    CB_OK(!jp_replay_check_and_add(g, "b", 1), "b forgotten when a came back");
    CB_OK(!jp_replay_check_and_add(g, "x\0y", 3) && !jp_replay_check_and_add(g, "x\0z", 3) &&
              jp_replay_check_and_add(g, "x\0z", 3),
          "keys are bytes with a length, not C strings");
    jp_replay_destroy(&g);

    /* many more signatures than the window: the oldest go, the newest stay */
    g = jp_replay_new(100);
    char sig[32];
    for (int i = 0; i < 10000; i++) {
        int n = snprintf(sig, sizeof sig, "sig-%d", i);
        jp_replay_check_and_add(g, sig, (size_t)n);
    }
    int n = snprintf(sig, sizeof sig, "sig-%d", 9999);
    bool newest = jp_replay_check_and_add(g, sig, (size_t)n);
    n = snprintf(sig, sizeof sig, "sig-%d", 9900);
    bool edge = jp_replay_check_and_add(g, sig, (size_t)n);
    n = snprintf(sig, sizeof sig, "sig-%d", 9899);
    bool old = jp_replay_check_and_add(g, sig, (size_t)n);
    CB_OK(newest && edge && !old, "window of 100 after 10000 signatures");
    jp_replay_destroy(&g);

    g = jp_replay_new(0);
    CB_OK(g && !jp_replay_check_and_add(g, "a", 1) && !jp_replay_check_and_add(g, "a", 1),
          "capacity 0 remembers nothing");
    jp_replay_destroy(&g);
}

static void test_unsigned(void)
{
    jp_signer_t *none = jp_signer_new("", 0, NULL);
    jp_signer_t *keyed = jp_signer_new(s_key, strlen(s_key), NULL);
    jp_replay_t *guard = jp_replay_new(8);
    CB_OK(none && jp_signer_is_unsigned(none), "empty key: unsigned");

    const char *const dicts[4] = {"{}", "{}", "{}", "{}"};
    char sig[JP_WIRE_SIG_HEX_LEN + 1] = "junk";
    CB_OK(s_sign_strings(none, dicts, sig) == 0 && sig[0] == '\0', "unsigned signature is \"\"");

    jp_msg_t *msg = s_sample_msg();
    zmsg_t *raw = jp_wire_encode(msg, none);
    jp_wire_view_t view;
    CB_OK(raw && jp_wire_split(raw, &view) == JP_WIRE_OK && zframe_size(view.signature) == 0,
          "encoded with an empty key: empty signature frame");
    zmsg_destroy(&raw);

    const char *sigs[] = {"", "garbage",
                          "af5b765ea1e123942593694a2441b8c6b8a862fc97f25a9ccc1a28f0aec7b71c"};
    for (size_t i = 0; i < 3; i++) {
        for (int round = 0; round < 2; round++) {
            raw = s_raw(NULL, sigs[i], dicts);
            jp_wire_status_t status = JP_WIRE_BAD_JSON;
            jp_msg_t *got = jp_wire_decode(&raw, none, guard, &status);
            CB_OK(got && status == JP_WIRE_OK,
                  "unsigned accepts signature '%.8s' (round %d, guard not consulted)", sigs[i],
                  round);
            jp_msg_destroy(&got);
            zmsg_destroy(&raw);
        }
    }
    raw = jp_wire_encode(msg, keyed);
    jp_wire_status_t status = JP_WIRE_BAD_JSON;
    jp_msg_t *got = jp_wire_decode(&raw, none, NULL, &status);
    CB_OK(got && status == JP_WIRE_OK, "unsigned accepts a keyed message too");
    jp_msg_destroy(&got);
    zmsg_destroy(&raw);

    jp_msg_destroy(&msg);
    jp_replay_destroy(&guard);
    jp_signer_destroy(&keyed);
    jp_signer_destroy(&none);
}

static void test_resign(void)
{
    jp_signer_t *kernel = jp_signer_new("kernel-key", 10, NULL);
    jp_signer_t *client = jp_signer_new("client-key", 10, NULL);
    jp_signer_t *none = jp_signer_new(NULL, 0, NULL);
    jp_msg_t *msg = s_sample_msg();
    zmsg_t *raw = jp_wire_encode(msg, kernel);
    jp_wire_view_t view;
    jp_wire_split(raw, &view);
    CB_OK(jp_wire_verify(kernel, NULL, &view) == JP_WIRE_OK, "verifies with the kernel key");

    zframe_t *before[4];
    size_t sizes[4];
    for (int i = 0; i < 4; i++) {
        before[i] = zframe_dup(view.parts[i]);
        sizes[i] = zframe_size(view.parts[i]);
    }
    size_t n_frames = zmsg_size(raw);
    CB_OK(jp_wire_resign(&view, client) == 0, "resign");
    CB_OK(jp_wire_verify(client, NULL, &view) == JP_WIRE_OK, "resigned: verifies with the new key");
    CB_OK(jp_wire_verify(kernel, NULL, &view) == JP_WIRE_BAD_SIGNATURE,
          "resigned: refused with the old key");
    bool same = zmsg_size(raw) == n_frames;
    for (int i = 0; i < 4; i++) {
        same = same && s_frame_is(view.parts[i], zframe_data(before[i]), sizes[i]);
        zframe_destroy(&before[i]);
    }
    CB_OK(same, "resign leaves the dict frames alone");

    /* the resigned zmsg itself, re-split from scratch, decodes with the new key */
    jp_wire_status_t status = JP_WIRE_BAD_JSON;
    jp_msg_t *got = jp_wire_decode(&raw, client, NULL, &status);
    CB_OK(got && status == JP_WIRE_OK && json_equal(got->content, msg->content),
          "the resigned message decodes with the new key");
    jp_msg_destroy(&got);
    zmsg_destroy(&raw);

    raw = jp_wire_encode(msg, kernel);
    jp_wire_split(raw, &view);
    CB_OK(jp_wire_resign(&view, none) == 0 && zframe_size(view.signature) == 0,
          "resign to an unsigned signer gives an empty signature");
    zmsg_destroy(&raw);

    jp_msg_destroy(&msg);
    jp_signer_destroy(&none);
    jp_signer_destroy(&client);
    jp_signer_destroy(&kernel);
}

static void test_status_names(void)
{
    bool ok = true;
    for (int s = JP_WIRE_OK; s <= JP_WIRE_TOO_MANY_FRAMES; s++) {
        const char *name = jp_wire_status_name((jp_wire_status_t)s);
        ok = ok && name && *name && strcmp(name, "unknown") != 0;
        for (int t = JP_WIRE_OK; t < s; t++)
            ok = ok && strcmp(name, jp_wire_status_name((jp_wire_status_t)t)) != 0;
    }
    CB_OK(ok, "every status has its own name");
    CB_OK(strcmp(jp_wire_status_name(JP_WIRE_BAD_SIGNATURE), "bad signature") == 0,
          "bad signature's name");
}

/* Not a pass/fail test (timing under valgrind means nothing): a figure for the budget. */
static void s_report_speed(void)
{
    jp_signer_t *signer = jp_signer_new(s_key, strlen(s_key), NULL);
    jp_msg_t *msg = jp_msg_new("execute_request", "s", NULL,
                               json_pack("{s:s, s:b}", "code", "print(1)", "silent", 0));
    const int rounds = 2000;
    int64_t start = cb_now_us();
    int ok = 0;
    for (int i = 0; i < rounds; i++) {
        zmsg_t *raw = jp_wire_encode(msg, signer);
        jp_wire_view_t view;
        jp_wire_split(raw, &view);
        jp_wire_resign(&view, signer);
        jp_msg_t *got = jp_wire_decode(&raw, signer, NULL, NULL);
        ok += got != NULL;
        jp_msg_destroy(&got);
        zmsg_destroy(&raw);
    }
    int64_t elapsed = cb_now_us() - start;
    CB_DIAG("encode + split + resign + decode: %.2f us per message (%d/%d ok)",
            (double)elapsed / rounds, ok, rounds);
    jp_msg_destroy(&msg);
    jp_signer_destroy(&signer);
}

int main(void)
{
    test_hmac_vector();
    test_new_header();
    test_round_trip();
    test_send();
    test_rejections();
    test_bad_json();
    test_replay();
    test_replay_guard();
    test_unsigned();
    test_resign();
    test_status_names();
    s_report_speed();
    return cb_tap_done();
}
