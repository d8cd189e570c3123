/* fuzz_http_chunked.c: the front door's reading of a chunked request body (http/chunked.c):
 * the head checked, the body decoded from bytes arriving in any split, the request rewritten.
 * The input is what a client sends: a head, then the body's framing. Its first byte (when the
 * input is long enough) sets the size of the pieces the rest is fed in, so splits are fuzzed too.
 *
 * What must hold, besides no crash or leak: the answer does not depend on how the bytes were
 * split (fed whole and fed in pieces give the same status and the same request); a body is never
 * over the limit; a complete request is rewritten into one head our own head reader takes, with
 * a Content-Length equal to the body's length, no Transfer-Encoding and Connection: close, and
 * exactly that many bytes after it. */
#include <string.h>
#include <strings.h>

#include "cb/alloc.h"
#include "cb/cleanup.h"
#include "cb/http_head.h"
#include "fuzz.h"
#include "http_private.h"

#define S_MAX_BODY 4096

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

/* Feed body in pieces of step bytes; the status, and the request when complete. */
static int s_run(const char *head, size_t head_len, const char *body, size_t len, size_t step,
                 char **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    int status = 0;
    http_chunked_t *ch = http_chunked_new(head, head_len, S_MAX_BODY, &status);
    if (!ch) {
        FUZZ_CHECK(status == 400);
        return status;
    }
    int rc = 0;
    size_t off = 0;
    while (rc == 0 && off < len) {
        size_t n = len - off < step ? len - off : step;
        size_t used = 0;
        rc = http_chunked_feed(ch, body + off, n, &used);
        FUZZ_CHECK(used <= n);
        FUZZ_CHECK(rc != 0 || used == n);
        off += used;
        FUZZ_CHECK(http_chunked_body_len(ch) <= S_MAX_BODY);
    }
    FUZZ_CHECK(rc == 0 || rc == 1 || rc == 400 || rc == 413);
    if (rc == 1)
        *out = http_chunked_request(ch, out_len);
    http_chunked_destroy(&ch);
    FUZZ_CHECK(ch == NULL);
    return rc;
}

static void s_check_request(const char *req, size_t len)
{
    cb_http_head_t h;
    FUZZ_CHECK(cb_http_head_parse(req, len, len, CB_HTTP_HEAD_MAX_FIELDS, &h) == CB_HTTP_HEAD_DONE);
    FUZZ_CHECK(h.has_length && !h.chunked);
    FUZZ_CHECK(h.content_length <= S_MAX_BODY);
    FUZZ_CHECK(h.head_len + h.content_length == len);
    FUZZ_CHECK(!cb_http_head_find(&h, req, "Transfer-Encoding"));
    const cb_http_field_t *c = cb_http_head_find(&h, req, "Connection");
    FUZZ_CHECK(c && c->value.len == 5 && strncasecmp(req + c->value.off, "close", 5) == 0);
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
    cb_http_head_t h;
    if (cb_http_head_parse(buf, size, 16384, CB_HTTP_HEAD_MAX_FIELDS, &h) != CB_HTTP_HEAD_DONE ||
        !http_chunked_wanted(buf, &h))
        return 0;
    cleanup_free char *whole = NULL, *pieces = NULL;
    size_t whole_len = 0, pieces_len = 0;
    int a = s_run(buf, h.head_len, buf + h.head_len, size - h.head_len, size, &whole, &whole_len);
    int b = s_run(buf, h.head_len, buf + h.head_len, size - h.head_len, step, &pieces, &pieces_len);
    FUZZ_CHECK(a == b);
    FUZZ_CHECK(whole_len == pieces_len);
    FUZZ_CHECK(!whole_len || memcmp(whole, pieces, whole_len) == 0);
    if (a == 1)
        s_check_request(whole, whole_len);
    return 0;
}
