/* test_connect.c: unit test of the Connect codec's pure functions (connect.c), with no server,
 * no socket and no sandbox.
 *
 * Envelopes (a flags byte, a 32-bit big-endian length, the message) built byte by byte: too
 * short to say anything, exact, followed by the next envelope's bytes, a length over the
 * maximum (and the maximum itself), flag bits Connect does not define, the compressed and the
 * end-of-stream flags; what e2b_rpc_envelope_write writes parses back to the same flags and
 * bytes, for lengths whose bytes exercise each byte of the length field.
 *
 * Codes: every Connect code maps to the HTTP status of Connect's table (connectrpc.com/docs/
 * protocol#error-codes, also @connectrpc/connect's codeToHttpStatus); an unknown or NULL code is
 * 500; every cb_error_t kind maps to a code of that table, and the kinds the E2B SDK turns into
 * its own error classes (NotFoundError, InvalidArgumentError, ...) map to the codes it looks for. */
#include <stdint.h>
#include <string.h>

#include "cb/tap.h"
#include "e2b_private.h"

#define S_MAX 1024

/* ---- envelopes ---------------------------------------------------------------------------- */

/* An envelope's five header bytes, then payload, into buf; returns its size. */
static size_t s_frame(uint8_t *buf, uint8_t flags, uint32_t len, const char *payload)
{
    buf[0] = flags;
    buf[1] = (uint8_t)(len >> 24);
    buf[2] = (uint8_t)(len >> 16);
    buf[3] = (uint8_t)(len >> 8);
    buf[4] = (uint8_t)len;
    size_t n = payload ? strlen(payload) : 0;
    memcpy(buf + 5, payload ? payload : "", n);
    return 5 + n;
}

typedef struct {
    long rc;
    uint8_t flags;
    const char *payload;
    size_t len;
} s_parsed_t;

static s_parsed_t s_parse(const void *data, size_t len, size_t max)
{
    /* Sentinels: a parse that says 0 or -1 leaves its out-parameters alone. */
    s_parsed_t p = {.flags = 0xee, .payload = NULL, .len = 12345};
    p.rc = e2b_rpc_envelope_parse(data, len, max, &p.flags, &p.payload, &p.len);
    return p;
}

static void s_test_short(void)
{
    uint8_t buf[64];
    size_t n = s_frame(buf, 0, 2, "{}");
    for (size_t cut = 0; cut < n; cut++) {
        s_parsed_t p = s_parse(buf, cut, S_MAX);
        char name[96];
        snprintf(name, sizeof name, "%zu of the %zu bytes: no whole envelope yet", cut, n);
        CB_EQ_INT(p.rc, 0, name);
        if (p.rc == 0)
            CB_OK(p.flags == 0xee && p.payload == NULL && p.len == 12345,
                  "  and the out-parameters are untouched");
    }
    /* A length field promising more than is there, however much is. */
    n = s_frame(buf, 0, 40, "{\"a\":1}");
    CB_EQ_INT(s_parse(buf, n, S_MAX).rc, 0, "a length of 40 with 7 bytes: not whole yet");
}

static void s_test_exact(void)
{
    uint8_t buf[64];
    size_t n = s_frame(buf, 0, 7, "{\"a\":1}");
    s_parsed_t p = s_parse(buf, n, S_MAX);
    CB_EQ_INT(p.rc, 12, "an exact envelope: its whole size");
    CB_EQ_INT(p.flags, 0, "  flags 0");
    CB_OK(p.payload == (const char *)buf + 5, "  the payload points into the data, after the head");
    CB_EQ_SIZE(p.len, 7, "  the payload's length");

    n = s_frame(buf, 0, 0, NULL);
    p = s_parse(buf, n, S_MAX);
    CB_EQ_INT(p.rc, 5, "an empty message: the head alone");
    CB_EQ_SIZE(p.len, 0, "  an empty payload");
    CB_OK(p.payload == (const char *)buf + 5, "  pointing just past the head");
}

static void s_test_trailing(void)
{
    uint8_t buf[64];
    size_t n = s_frame(buf, 0, 2, "{}");
    n += s_frame(buf + n, E2B_RPC_FLAG_END, 2, "{}");
    s_parsed_t p = s_parse(buf, n, S_MAX);
    CB_EQ_INT(p.rc, 7, "two envelopes: the first one's size");
    CB_EQ_SIZE(p.len, 2, "  the first one's payload only");
    CB_OK(p.len == 2 && memcmp(p.payload, "{}", 2) == 0, "  its bytes");
    p = s_parse(buf + 7, n - 7, S_MAX);
    CB_EQ_INT(p.rc, 7, "then the second one");
    CB_EQ_INT(p.flags, E2B_RPC_FLAG_END, "  with its end flag");
    p = s_parse(buf, 7 + 3, S_MAX);
    CB_EQ_INT(p.rc, 7, "a whole envelope then a piece of the next: the whole one");
}

static void s_test_max(void)
{
    uint8_t buf[64];
    s_frame(buf, 0, S_MAX + 1, NULL);
    CB_EQ_INT(s_parse(buf, 5, S_MAX).rc, -1, "a length one over the maximum: malformed at once");
    s_frame(buf, 0, UINT32_MAX, NULL);
    CB_EQ_INT(s_parse(buf, 5, S_MAX).rc, -1, "a length of 2^32-1: malformed");
    s_frame(buf, 0, 0x80000000u, NULL);
    CB_EQ_INT(s_parse(buf, 5, SIZE_MAX).rc, 0,
              "a length of 2^31 under a maximum of SIZE_MAX: not whole yet (no overflow)");
    s_frame(buf, 0, S_MAX, NULL);
    CB_EQ_INT(s_parse(buf, 5, S_MAX).rc, 0, "a length equal to the maximum: allowed, not whole");
    size_t n = s_frame(buf, 0, 2, "{}");
    CB_EQ_INT(s_parse(buf, n, 2).rc, 7, "a payload exactly the maximum long: accepted");
    CB_EQ_INT(s_parse(buf, n, 1).rc, -1, "one byte over a maximum of 1: refused");
    CB_EQ_INT(s_parse(buf, n, 0).rc, -1, "any payload under a maximum of 0: refused");
}

static void s_test_flags(void)
{
    uint8_t buf[64];
    int undefined_ok = 0, known_bad = 0;
    for (unsigned f = 0; f < 256; f++) {
        size_t n = s_frame(buf, (uint8_t)f, 2, "{}");
        s_parsed_t p = s_parse(buf, n, S_MAX);
        bool known = (f & ~(unsigned)(E2B_RPC_FLAG_END | E2B_RPC_FLAG_COMPRESSED)) == 0;
        if (known && (p.rc != 7 || p.flags != f)) {
            CB_DIAG("  flags 0x%02x: rc %ld, flags 0x%02x", f, p.rc, p.flags);
            known_bad++;
        } else if (!known && p.rc != -1) {
            CB_DIAG("  flags 0x%02x (undefined bits): rc %ld", f, p.rc);
            undefined_ok++;
        }
    }
    CB_EQ_INT(known_bad, 0, "flags 0x00-0x03 parse and come back as they were");
    CB_EQ_INT(undefined_ok, 0, "each of the 252 flags bytes with an undefined bit is malformed");
    /* A bad flags byte is refused before the rest of the envelope arrives. */
    s_frame(buf, 0x80, 2, NULL);
    CB_EQ_INT(s_parse(buf, 5, S_MAX).rc, -1, "flags 0x80 with only the head: malformed already");
    size_t n = s_frame(buf, E2B_RPC_FLAG_COMPRESSED, 2, "{}");
    s_parsed_t p = s_parse(buf, n, S_MAX);
    CB_OK(p.rc == 7 && (p.flags & E2B_RPC_FLAG_COMPRESSED),
          "the compressed flag is reported (refusing it is e2b_rpc_request's call)");
    n = s_frame(buf, E2B_RPC_FLAG_END, 0, NULL);
    p = s_parse(buf, n, S_MAX);
    CB_OK(p.rc == 5 && p.flags == E2B_RPC_FLAG_END, "an empty end-of-stream envelope");
}

static void s_test_write(void)
{
    static const size_t lens[] = {0, 1, 2, 255, 256, 257, 65535, 65536, 65537, 1 << 20};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        size_t len = lens[i];
        char *payload = malloc(len + 1);
        for (size_t j = 0; j < len; j++)
            payload[j] = (char)('a' + j % 26);
        for (uint8_t flags = 0; flags <= 3; flags++) {
            cleanup_buf cb_buf_t out = {0};
            e2b_rpc_envelope_write(&out, flags, payload, len);
            s_parsed_t p = s_parse(out.data, out.len, SIZE_MAX);
            char name[96];
            snprintf(name, sizeof name, "write %zu bytes, flags %u, parse: the whole buffer", len,
                     flags);
            CB_EQ_INT(p.rc, (long)len + 5, name);
            CB_OK(out.len == len + 5 && (uint8_t)out.data[0] == flags &&
                      ((uint32_t)(uint8_t)out.data[1] << 24 | (uint32_t)(uint8_t)out.data[2] << 16 |
                       (uint32_t)(uint8_t)out.data[3] << 8 | (uint8_t)out.data[4]) == len,
                  "  the head is flags then the big-endian length");
            CB_OK(p.rc > 0 && p.flags == flags && p.len == len &&
                      (len == 0 || memcmp(p.payload, payload, len) == 0),
                  "  the same flags and bytes come back");
        }
        free(payload);
    }
    /* Two writes in one buffer parse as two envelopes, in order. */
    cleanup_buf cb_buf_t out = {0};
    e2b_rpc_envelope_write(&out, 0, "{\"n\":1}", 7);
    e2b_rpc_envelope_write(&out, E2B_RPC_FLAG_END, "{}", 2);
    s_parsed_t a = s_parse(out.data, out.len, S_MAX);
    s_parsed_t b =
        a.rc > 0 ? s_parse(out.data + a.rc, out.len - (size_t)a.rc, S_MAX) : (s_parsed_t){.rc = -2};
    CB_OK(a.rc == 12 && a.flags == 0 && b.rc == 7 && b.flags == E2B_RPC_FLAG_END &&
              (size_t)(a.rc + b.rc) == out.len,
          "a message then the end of stream, written back to back, parse in order");
}

/* ---- codes ----------------------------------------------------------------------------------- */

static void s_test_code_status(void)
{
    /* Connect's table, as the spec and @connectrpc/connect's codeToHttpStatus give it. */
    static const struct {
        const char *code;
        int status;
    } table[] = {
        {"canceled", 499},
        {"unknown", 500},
        {"invalid_argument", 400},
        {"deadline_exceeded", 504},
        {"not_found", 404},
        {"already_exists", 409},
        {"permission_denied", 403},
        {"resource_exhausted", 429},
        {"failed_precondition", 400},
        {"aborted", 409},
        {"out_of_range", 400},
        {"unimplemented", 501},
        {"internal", 500},
        {"unavailable", 503},
        {"data_loss", 500},
        {"unauthenticated", 401},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s is HTTP %d", table[i].code, table[i].status);
        CB_EQ_INT(e2b_rpc_code_status(table[i].code), table[i].status, name);
    }
    CB_EQ_INT(e2b_rpc_code_status(NULL), 500, "no code: 500");
    CB_EQ_INT(e2b_rpc_code_status(""), 500, "an empty code: 500");
    CB_EQ_INT(e2b_rpc_code_status("NOT_FOUND"), 500, "codes are lower case: NOT_FOUND is unknown");
    CB_EQ_INT(e2b_rpc_code_status("not_found "), 500, "no prefix matching: 'not_found ' unknown");
    CB_EQ_INT(e2b_rpc_code_status("not_foun"), 500, "no prefix matching: 'not_foun' unknown");
}

/* Whether code is one of Connect's sixteen codes ("unknown" and "internal" are both 500, so a
 * status of 500 alone does not say). */
static bool s_known_code(const char *code)
{
    static const char *const codes[] = {
        "canceled",
        "unknown",
        "invalid_argument",
        "deadline_exceeded",
        "not_found",
        "already_exists",
        "permission_denied",
        "resource_exhausted",
        "failed_precondition",
        "aborted",
        "out_of_range",
        "unimplemented",
        "internal",
        "unavailable",
        "data_loss",
        "unauthenticated",
    };
    for (size_t i = 0; code && i < sizeof codes / sizeof codes[0]; i++)
        if (strcmp(codes[i], code) == 0)
            return true;
    return false;
}

static const char *s_code_of(cb_error_kind_t kind)
{
    cb_error_t err = {.kind = kind};
    return e2b_rpc_code_of(&err);
}

static void s_test_code_of(void)
{
    /* Every kind of the table maps to one of Connect's codes. */
    int bad = 0;
#define S_CHECK_KIND(kind, code, status, name)                                                     \
    if (!s_known_code(s_code_of(CB_ERR_##kind))) {                                                 \
        CB_DIAG("  CB_ERR_%s maps to \"%s\"", #kind, s_code_of(CB_ERR_##kind));                    \
        bad++;                                                                                     \
    }
    CB_ERROR_MAP(S_CHECK_KIND)
#undef S_CHECK_KIND
    CB_EQ_INT(bad, 0, "every cb_error_t kind maps to one of Connect's codes");

    /* The ones the SDK turns into its own classes (handleRpcError's DEFAULT_ERROR_MAP). */
    CB_EQ_STR(s_code_of(CB_ERR_NOT_FOUND), "not_found", "NOT_FOUND: NotFoundError");
    CB_EQ_STR(s_code_of(CB_ERR_INVALID), "invalid_argument", "INVALID: InvalidArgumentError");
    CB_EQ_STR(s_code_of(CB_ERR_PARSE), "invalid_argument", "PARSE: InvalidArgumentError");
    CB_EQ_STR(s_code_of(CB_ERR_BAD_REQUEST), "invalid_argument",
              "BAD_REQUEST: InvalidArgumentError");
    CB_EQ_STR(s_code_of(CB_ERR_TRANSPORT), "invalid_argument", "TRANSPORT: InvalidArgumentError");
    CB_EQ_STR(s_code_of(CB_ERR_MEDIA_TYPE), "invalid_argument", "MEDIA_TYPE: InvalidArgumentError");
    CB_EQ_STR(s_code_of(CB_ERR_UNAUTHORIZED), "unauthenticated",
              "UNAUTHORIZED: AuthenticationError");
    CB_EQ_STR(s_code_of(CB_ERR_TIMEOUT), "deadline_exceeded", "TIMEOUT: TimeoutError");
    CB_EQ_STR(s_code_of(CB_ERR_LIMIT), "resource_exhausted", "LIMIT: RateLimitError");
    CB_EQ_STR(s_code_of(CB_ERR_TOO_LARGE), "resource_exhausted", "TOO_LARGE: RateLimitError");
    /* The rest: a code that says what happened. */
    CB_EQ_STR(s_code_of(CB_ERR_NO_SESSION), "not_found", "NO_SESSION: not_found");
    CB_EQ_STR(s_code_of(CB_ERR_FORBIDDEN), "permission_denied", "FORBIDDEN: permission_denied");
    CB_EQ_STR(s_code_of(CB_ERR_CONFLICT), "already_exists", "CONFLICT: already_exists");
    CB_EQ_STR(s_code_of(CB_ERR_STATE), "failed_precondition", "STATE: failed_precondition");
    CB_EQ_STR(s_code_of(CB_ERR_KERNEL_DEAD), "failed_precondition",
              "KERNEL_DEAD: failed_precondition");
    CB_EQ_STR(s_code_of(CB_ERR_UNAVAILABLE), "unimplemented", "UNAVAILABLE: unimplemented");
    CB_EQ_STR(s_code_of(CB_ERR_BAD_METHOD), "unimplemented", "BAD_METHOD: unimplemented");
    CB_EQ_STR(s_code_of(CB_ERR_NO_METHOD), "unimplemented", "NO_METHOD: unimplemented");
    CB_EQ_STR(s_code_of(CB_ERR_SYSTEM), "internal", "SYSTEM: internal");
    CB_EQ_STR(s_code_of(CB_ERR_INTERNAL), "internal", "INTERNAL: internal");
    /* A failure that forgot to say what it was is still a failure. */
    CB_EQ_STR(s_code_of(CB_ERR_OK), "internal", "OK (a failure that said nothing): internal");
    CB_EQ_STR(e2b_rpc_code_of(NULL), "internal", "no error at all: internal");
    CB_EQ_STR(s_code_of((cb_error_kind_t)9999), "internal", "a kind outside the table: internal");
}

int main(void)
{
    s_test_short();
    s_test_exact();
    s_test_trailing();
    s_test_max();
    s_test_flags();
    s_test_write();
    s_test_code_status();
    s_test_code_of();
    return cb_tap_done();
}
