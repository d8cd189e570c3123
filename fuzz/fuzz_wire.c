/* fuzz_wire.c: the Jupyter wire codec and its signature check (jupyter/wire.c).
 *
 * Input: one flags byte, then the frames of one ZMQ multipart separated by '\n'. Flags:
 *   bit 0  the harness signs the frames itself (the right HMAC goes in the frame after the
 *          delimiter), so the fuzzer reaches the JSON behind the signature check, not only the
 *          check; otherwise the signature frame is what the input says
 *   bit 1  decode through a replay guard
 *   bit 2  an unsigned connection (empty key: nothing is checked)
 * What must hold: a message that fails to decode is left to the caller as it was; one that
 * decodes has as many identity and buffer frames as were sent, and re-encoding it gives a
 * message that decodes to the same dicts and buffers, verifies under a second key after
 * jp_wire_resign, and is refused as a replay the second time through a guard. */
#include <string.h>

#include "fuzz.h"
#include "jupyter/wire.h"

#define S_MAX_FRAMES 80 /* more than the codec takes (64): the refusal is fuzzed too */

static jp_signer_t *s_signer, *s_unsigned, *s_other;

int LLVMFuzzerInitialize(int *argc, char **argv[])
{
    (void)argc;
    (void)argv;
    static const char key[] = "6f1c1b0e-4b1d-4c3f-9d2a-fuzz-key-0123456789abcdef";
    static const char other[] = "a-second-key-for-resign";
    s_signer = jp_signer_new(key, strlen(key), NULL);
    s_unsigned = jp_signer_new("", 0, NULL);
    s_other = jp_signer_new(other, strlen(other), NULL);
    if (!s_signer || !s_unsigned || !s_other)
        abort();
    return 0;
}

static bool s_same_frames(zmsg_t *a, zmsg_t *b)
{
    if (zmsg_size(a) != zmsg_size(b))
        return false;
    for (zframe_t *x = zmsg_first(a), *y = zmsg_first(b); x && y;
         x = zmsg_next(a), y = zmsg_next(b))
        if (!zframe_eq(x, y))
            return false;
    return true;
}

/* The round trip of a decoded message. */
static void s_round_trip(const jp_msg_t *msg, jp_signer_t *signer, size_t n_idents,
                         size_t n_buffers)
{
    FUZZ_CHECK(zmsg_size(msg->idents) == n_idents);
    FUZZ_CHECK(zmsg_size(msg->buffers) == n_buffers);
    FUZZ_CHECK(jp_msg_type(msg) && jp_msg_id(msg) && jp_msg_parent_id(msg));

    zmsg_t *out = jp_wire_encode(msg, signer);
    FUZZ_CHECK(out);
    zmsg_t *copy = zmsg_dup(out);
    FUZZ_CHECK(copy);

    jp_replay_t *guard = jp_replay_new(4);
    FUZZ_CHECK(guard);
    jp_wire_status_t st;
    jp_msg_t *again = jp_wire_decode(&out, signer, guard, &st);
    FUZZ_CHECK(again && st == JP_WIRE_OK && !out);
    FUZZ_CHECK(json_equal(msg->header, again->header));
    FUZZ_CHECK(json_equal(msg->parent_header, again->parent_header));
    FUZZ_CHECK(json_equal(msg->metadata, again->metadata));
    FUZZ_CHECK(json_equal(msg->content, again->content));
    FUZZ_CHECK(s_same_frames(msg->idents, again->idents));
    FUZZ_CHECK(s_same_frames(msg->buffers, again->buffers));
    jp_msg_destroy(&again);

    /* The same signature again is a replay (a signed connection only). */
    zmsg_t *replayed = zmsg_dup(copy);
    FUZZ_CHECK(replayed);
    jp_msg_t *twice = jp_wire_decode(&replayed, signer, guard, &st);
    if (jp_signer_is_unsigned(signer)) {
        FUZZ_CHECK(twice && st == JP_WIRE_OK);
    } else {
        FUZZ_CHECK(!twice && st == JP_WIRE_REPLAYED && replayed);
    }
    jp_msg_destroy(&twice);
    zmsg_destroy(&replayed);
    jp_replay_destroy(&guard);

    /* Re-signed with another key (what the attach proxy does), it verifies under that key. */
    jp_wire_view_t view;
    FUZZ_CHECK(jp_wire_split(copy, &view) == JP_WIRE_OK);
    FUZZ_CHECK(jp_wire_resign(&view, s_other) == 0);
    FUZZ_CHECK(jp_wire_verify(s_other, NULL, &view) == JP_WIRE_OK);
    zmsg_destroy(&copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t flags = data[0];
    jp_signer_t *signer = flags & 4 ? s_unsigned : s_signer;
    const uint8_t *starts[S_MAX_FRAMES];
    size_t lens[S_MAX_FRAMES];
    size_t n = fuzz_split(data + 1, size - 1, '\n', starts, lens, S_MAX_FRAMES);

    zmsg_t *raw = zmsg_new();
    FUZZ_CHECK(raw);
    size_t delim = n;
    for (size_t i = 0; i < n; i++) {
        FUZZ_CHECK(zmsg_addmem(raw, starts[i], lens[i]) == 0);
        if (delim == n && lens[i] == strlen(JP_WIRE_DELIM) &&
            memcmp(starts[i], JP_WIRE_DELIM, lens[i]) == 0)
            delim = i;
    }

    /* Sign it ourselves: put the right signature in place of the input's. */
    if ((flags & 1) && delim + 5 < n && n <= 64) {
        jp_wire_view_t view;
        if (jp_wire_split(raw, &view) == JP_WIRE_OK) {
            char sig[JP_WIRE_SIG_HEX_LEN + 1];
            FUZZ_CHECK(jp_signer_sign(signer, view.parts, sig) == 0);
            zframe_reset(view.signature, sig, strlen(sig));
        }
    }

    size_t frames = zmsg_size(raw);
    jp_wire_view_t view;
    jp_wire_status_t split = jp_wire_split(raw, &view);
    size_t n_idents = view.n_idents, n_buffers = view.n_buffers;

    jp_replay_t *guard = flags & 2 ? jp_replay_new(2) : NULL;
    jp_wire_status_t st = JP_WIRE_OK;
    jp_msg_t *msg = jp_wire_decode(&raw, signer, guard, &st);
    if (msg) {
        FUZZ_CHECK(st == JP_WIRE_OK && split == JP_WIRE_OK && !raw);
        s_round_trip(msg, signer, n_idents, n_buffers);
        jp_msg_destroy(&msg);
    } else {
        FUZZ_CHECK(st != JP_WIRE_OK && raw && zmsg_size(raw) == frames);
        FUZZ_CHECK(strcmp(jp_wire_status_name(st), "unknown") != 0);
        if (split != JP_WIRE_OK)
            FUZZ_CHECK(st == split);
    }
    jp_replay_destroy(&guard);
    zmsg_destroy(&raw);
    return 0;
}
