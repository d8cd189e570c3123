/* fuzz_http_chunked.c: the decoding of a chunked request body (http/chunked.c), as server.c
 * feeds it the bytes libwebsockets passes on after the head. The input's first byte (when the
 * input is longer than one byte) sets the size of the pieces the rest is fed in, so splits are
 * fuzzed too; the rest is the body's framing as a client sent it.
 *
 * What must hold, besides no crash or leak: the answer does not depend on how the bytes were
 * split (fed whole and fed in pieces give the same status, the same body and the same count of
 * bytes taken); a body is never over the limit; a refusal is 400 or 413 and stays. */
#include <string.h>

#include "cb/cleanup.h"
#include "fuzz.h"
#include "http_private.h"

#define S_MAX_BODY 4096

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

/* Feed data in pieces of step bytes: the status, the body (when complete), the bytes taken. */
static int s_run(const char *data, size_t len, size_t step, char **body, size_t *body_len,
                 size_t *taken)
{
    http_chunked_t *ch = http_chunked_new(S_MAX_BODY);
    int rc = 0;
    size_t off = 0;
    while (rc == 0 && off < len) {
        size_t n = len - off < step ? len - off : step;
        size_t used = 0;
        rc = http_chunked_feed(ch, data + off, n, &used);
        FUZZ_CHECK(used <= n);
        FUZZ_CHECK(rc != 0 || used == n);
        off += used;
        FUZZ_CHECK(http_chunked_body_len(ch) <= S_MAX_BODY);
    }
    FUZZ_CHECK(rc == 0 || rc == 1 || rc == 400 || rc == 413);
    if (rc != 0) {
        size_t used = 1;
        FUZZ_CHECK(http_chunked_feed(ch, "0", 1, &used) == rc && used == 0); /* it stays */
    }
    *taken = off;
    *body = NULL;
    *body_len = 0;
    if (rc == 1)
        *body = http_chunked_take_body(ch, body_len);
    http_chunked_destroy(&ch);
    FUZZ_CHECK(ch == NULL);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t step = 1;
    if (size > 1) {
        step = 1 + data[0] % 23;
        data++;
        size--;
    }
    const char *buf = (const char *)data;
    cleanup_free char *whole = NULL, *pieces = NULL;
    size_t whole_len = 0, pieces_len = 0, whole_taken = 0, pieces_taken = 0;
    int a = s_run(buf, size, size ? size : 1, &whole, &whole_len, &whole_taken);
    int b = s_run(buf, size, step, &pieces, &pieces_len, &pieces_taken);
    FUZZ_CHECK(a == b);
    FUZZ_CHECK(whole_len == pieces_len && whole_len <= S_MAX_BODY);
    FUZZ_CHECK(!whole_len || memcmp(whole, pieces, whole_len) == 0);
    if (a == 1)
        FUZZ_CHECK(whole_taken == pieces_taken);
    return 0;
}
