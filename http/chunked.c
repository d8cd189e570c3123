/* http/chunked.c: a request with a chunked body, read whole and rewritten with a
 * Content-Length, for the front door.
 *
 * Why: libwebsockets 4.1 does not decode a chunked request body (it passes the framing on as
 * body bytes), and clients such as E2B's SDK (fetch with a stream body) send every body
 * chunked. The front door (frontdoor.c) sees the head first; for a request that asks for a
 * chunked body and carries a valid credential (so a stranger cannot make us hold max_body
 * bytes), it reads the body here and hands libwebsockets the same request with the decoded body
 * and a Content-Length, which lws reads like any other.
 *
 * How: libhttp-parser decodes. A fresh parser is fed the head, then the bytes as they arrive
 * (any split, one byte at a time included); on_body appends the decoded bytes, and
 * on_message_complete pauses the parser, so the bytes after the body (a pipelined request) are
 * left alone. Chunk extensions and trailers are read and dropped by the parser. A chunk whose
 * announced size would take the body over the limit is refused at its size line (413), before
 * any of it is read; broken framing is refused (400). The rewritten head keeps the request
 * line and every header but Transfer-Encoding, Content-Length, Connection, Keep-Alive and
 * Expect, and ends with "Content-Length: N" and "Connection: close": the connection ends after
 * this response, so a request the client pipelined behind it is never read by lws (which
 * would not decode it) and the client sends it again on a new connection. */
#include <http_parser.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cb/alloc.h"
#include "cb/cleanup.h"
#include "cb/http_head.h"
#include "http_private.h"

#define CHUNKED_HEADERS_MAX 128

struct http_chunked {
    http_parser parser;
    http_parser_settings settings;
    size_t max_body;
    cb_buf_t head; /* the rewritten head, without its Content-Length line and blank line */
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

static bool s_name_is(const char *buf, cb_http_span_t s, const char *name)
{
    size_t n = strlen(name);
    return s.len == n && strncasecmp(buf + s.off, name, n) == 0;
}

bool http_chunked_wanted(const char *buf, const cb_http_head_t *h)
{
    if (!h->chunked || h->has_length || h->upgrade || h->is_connect)
        return false;
    /* One Transfer-Encoding header, exactly "chunked": no other coding we would pass on. */
    const cb_http_field_t *te = NULL;
    for (size_t i = 0; i < h->n_fields; i++) {
        if (!s_name_is(buf, h->fields[i].name, "Transfer-Encoding"))
            continue;
        if (te)
            return false;
        te = &h->fields[i];
    }
    if (!te)
        return false;
    const char *v = buf + te->value.off;
    size_t n = te->value.len;
    while (n && (*v == ' ' || *v == '\t')) {
        v++;
        n--;
    }
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    return n == 7 && strncasecmp(v, "chunked", 7) == 0;
}

/* A field's value without the spaces and tabs around it. */
static cb_http_span_t s_trimmed(const char *buf, cb_http_span_t v)
{
    while (v.len && (buf[v.off] == ' ' || buf[v.off] == '\t')) {
        v.off++;
        v.len--;
    }
    while (v.len && (buf[v.off + v.len - 1] == ' ' || buf[v.off + v.len - 1] == '\t'))
        v.len--;
    return v;
}

bool http_chunked_allowed(const http_server_t *self, const char *buf, const cb_http_head_t *h)
{
    if (self->no_auth)
        return true;
    const cb_http_field_t *f = cb_http_head_find(h, buf, "Authorization");
    if (f && http_check_token(self, buf + f->value.off, f->value.len, NULL))
        return true;
    f = cb_http_head_find(h, buf, "X-API-Key");
    if (f && http_check_api_key(self, buf + f->value.off, f->value.len))
        return true;
    /* A sandbox's token for the sandbox named: lws checks again that the route takes it. */
    const cb_http_field_t *id = cb_http_head_find(h, buf, "E2b-Sandbox-Id");
    if (!id)
        return false;
    cb_http_span_t idv = s_trimmed(buf, id->value);
    cleanup_free char *sandbox = cb_xstrndup(buf + idv.off, idv.len);
    static const char *const names[] = {"X-Access-Token", "E2B-Traffic-Access-Token"};
    for (size_t i = 0; i < 2; i++) {
        f = cb_http_head_find(h, buf, names[i]);
        cb_http_span_t v = f ? s_trimmed(buf, f->value) : (cb_http_span_t){0, 0};
        if (f && http_sandbox_token_ok(self, sandbox, buf + v.off, v.len))
            return true;
    }
    return false;
}

http_chunked_t *http_chunked_new(const char *head, size_t head_len, size_t max_body, int *status)
{
    *status = 0;
    cb_http_head_t h;
    if (cb_http_head_parse(head, head_len, head_len, CHUNKED_HEADERS_MAX, &h) !=
            CB_HTTP_HEAD_DONE ||
        h.head_len != head_len || !http_chunked_wanted(head, &h)) {
        *status = 400;
        return NULL;
    }
    if (memchr(head, '\0', head_len)) {
        *status = 400;
        return NULL;
    }
    for (size_t i = 0; i < h.n_fields; i++) {
        if (cb_http_head_has_break(head, h.fields[i].name) ||
            cb_http_head_has_break(head, h.fields[i].value)) {
            *status = 400; /* a folded line would not survive the rewrite */
            return NULL;
        }
    }

    http_chunked_t *self = cb_xcalloc(1, sizeof(*self));
    self->max_body = max_body;
    cb_buf_printf(&self->head, "%s %.*s HTTP/%u.%u\r\n", h.method, (int)h.url.len, head + h.url.off,
                  h.major, h.minor);
    static const char *const dropped[] = {"Transfer-Encoding", "Content-Length", "Connection",
                                          "Keep-Alive", "Expect"};
    for (size_t i = 0; i < h.n_fields; i++) {
        bool drop = false;
        for (size_t k = 0; k < sizeof(dropped) / sizeof(dropped[0]) && !drop; k++)
            drop = s_name_is(head, h.fields[i].name, dropped[k]);
        if (drop)
            continue;
        cb_buf_append(&self->head, head + h.fields[i].name.off, h.fields[i].name.len);
        cb_buf_append(&self->head, ": ", 2);
        cb_buf_append(&self->head, head + h.fields[i].value.off, h.fields[i].value.len);
        cb_buf_append(&self->head, "\r\n", 2);
    }

    http_parser_settings_init(&self->settings);
    self->settings.on_chunk_header = s_on_chunk_header;
    self->settings.on_body = s_on_body;
    self->settings.on_message_complete = s_on_complete;
    http_parser_init(&self->parser, HTTP_REQUEST);
    self->parser.data = self;
    size_t used = http_parser_execute(&self->parser, &self->settings, head, head_len);
    if (used != head_len || HTTP_PARSER_ERRNO(&self->parser) != HPE_OK || self->done) {
        *status = 400;
        http_chunked_destroy(&self);
    }
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

char *http_chunked_request(http_chunked_t *self, size_t *len)
{
    cb_buf_t out = {0};
    cb_buf_append(&out, self->head.data, self->head.len);
    cb_buf_printf(&out, "Content-Length: %zu\r\nConnection: close\r\n\r\n", self->body.len);
    if (self->body.len)
        cb_buf_append(&out, self->body.data, self->body.len);
    *len = out.len;
    return cb_buf_take(&out);
}

size_t http_chunked_body_len(const http_chunked_t *self) { return self->body.len; }

void http_chunked_destroy(http_chunked_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    http_chunked_t *self = *self_p;
    cb_buf_free(&self->head);
    cb_buf_free(&self->body);
    free(self);
    *self_p = NULL;
}
