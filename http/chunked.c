/* http/chunked.c: a chunked request body decoded, for the libwebsockets side.
 *
 * Why: libwebsockets 4.1 does not decode a chunked request body: it passes the framing on as
 * body bytes (LWS_CALLBACK_HTTP_BODY) and never says where the body ends, on the first request
 * of a connection as on a later one. Clients such as E2B's SDK (fetch with a stream body) send
 * every body chunked, so server.c feeds those bytes here and dispatches the request when the
 * decoder says the body is complete.
 *
 * How: libhttp-parser decodes, not a parser of ours. A fresh parser is fed a fixed head that
 * says "Transfer-Encoding: chunked" (the real head was read and checked by lws), then the body
 * bytes as they arrive, in any split (one byte at a time included); on_body appends the
 * decoded bytes, and on_message_complete pauses the parser, so the bytes after the body (a
 * pipelined request) are left alone. Chunk extensions and trailers are read and dropped by the
 * parser. A chunk whose announced size would take the body over the limit is refused at its
 * size line (413), before any of it is read; broken framing is refused (400). */
#include <http_parser.h>
#include <stdlib.h>
#include <string.h>

#include "cb/alloc.h"
#include "http_private.h"

struct http_chunked {
    http_parser parser;
    http_parser_settings settings;
    size_t max_body;
    cb_buf_t body; /* decoded so far */
    int status;    /* 0, or the refusal (400, 413) */
    bool done;
};

static int s_on_chunk_header(http_parser *p)
{
    http_chunked_t *self = p->data;
    /* content_length holds the size this chunk announced. */
    if (p->content_length > self->max_body - self->body.len) {
        self->status = 413;
        return 1;
    }
    return 0;
}

static int s_on_body(http_parser *p, const char *at, size_t len)
{
    http_chunked_t *self = p->data;
    if (len > self->max_body - self->body.len) {
        self->status = 413;
        return 1;
    }
    cb_buf_append(&self->body, at, len);
    return 0;
}

static int s_on_complete(http_parser *p)
{
    http_chunked_t *self = p->data;
    self->done = true;
    http_parser_pause(p, 1);
    return 0;
}

http_chunked_t *http_chunked_new(size_t max_body)
{
    static const char head[] = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
    http_chunked_t *self = cb_xcalloc(1, sizeof(*self));
    self->max_body = max_body;
    http_parser_settings_init(&self->settings);
    self->settings.on_chunk_header = s_on_chunk_header;
    self->settings.on_body = s_on_body;
    self->settings.on_message_complete = s_on_complete;
    http_parser_init(&self->parser, HTTP_REQUEST);
    self->parser.data = self;
    /* A fixed head the parser takes whole (were it refused, every feed would say 400). */
    http_parser_execute(&self->parser, &self->settings, head, sizeof(head) - 1);
    return self;
}

int http_chunked_feed(http_chunked_t *self, const char *data, size_t len, size_t *used)
{
    *used = 0;
    if (self->status)
        return self->status;
    if (self->done)
        return 1;
    *used = http_parser_execute(&self->parser, &self->settings, data, len);
    if (self->status)
        return self->status;
    if (self->done)
        return 1; /* paused on the body's last byte: *used counts it */
    if (HTTP_PARSER_ERRNO(&self->parser) != HPE_OK) {
        self->status = 400;
        return 400;
    }
    return 0;
}

size_t http_chunked_body_len(const http_chunked_t *self) { return self->body.len; }

char *http_chunked_take_body(http_chunked_t *self, size_t *len)
{
    *len = self->body.len;
    char *out = self->body.data;
    self->body = (cb_buf_t){0};
    return out;
}

void http_chunked_destroy(http_chunked_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    http_chunked_t *self = *self_p;
    cb_buf_free(&self->body);
    free(self);
    *self_p = NULL;
}
