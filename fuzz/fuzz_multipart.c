/* fuzz_multipart.c: the multipart/form-data reader of envd's /files upload (e2b/files.c,
 * e2b_multipart_parse), which takes a whole request body from a client.
 *
 * Input: the Content-Type header's value up to the first newline, the body after it. What must
 * hold: the parse succeeds or fails with a message; every part it hands on lies inside the body
 * (parts in order, not overlapping), its name is a string and its filename NULL or a string;
 * there are at most 1000 parts. */
#include <string.h>

#include "cb/log.h"
#include "e2b_private.h"
#include "fuzz.h"

typedef struct {
    const char *body;
    size_t len;
    const char *last_end; /* where the previous part's data ended */
    size_t parts;
} s_seen_t;

static int s_on_part(const char *name, const char *filename, const char *data, size_t len,
                     void *arg, cb_error_t *err)
{
    (void)err;
    s_seen_t *seen = arg;
    FUZZ_CHECK(name != NULL);
    FUZZ_CHECK(strlen(name) < seen->len + 1);
    FUZZ_CHECK(!filename || strlen(filename) < seen->len + 1);
    FUZZ_CHECK(data >= seen->last_end && data + len <= seen->body + seen->len);
    seen->last_end = data + len;
    seen->parts++;
    FUZZ_CHECK(seen->parts <= 1000);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cb_log_set_level(CB_LOG_OFF);
    const uint8_t *starts[2];
    size_t lens[2];
    size_t n = fuzz_split(data, size, '\n', starts, lens, 2);
    char *content_type = fuzz_strndup(starts[0], lens[0]);
    /* The body in a buffer of exactly its size, so a read past its end is seen. */
    size_t blen = n > 1 ? lens[1] : 0;
    char *body = malloc(blen ? blen : 1);
    FUZZ_CHECK(body);
    if (blen)
        memcpy(body, starts[1], blen);
    s_seen_t seen = {.body = body, .len = blen, .last_end = body};
    cb_error_t err = {0};
    if (e2b_multipart_parse(content_type, body, blen, s_on_part, &seen, &err) < 0)
        FUZZ_CHECK(err.msg[0] != '\0');
    free(body);
    free(content_type);
    return 0;
}
