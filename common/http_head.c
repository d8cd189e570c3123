/* http_head.c: the request-head reader behind cb/http_head.h.
 *
 * Why here: the egress proxy and the port-forwarding front door both read attacker-sent request
 * heads; one reader means one set of callbacks to get right (and to fuzz: fuzz.egress and
 * fuzz.http_forward both run through it). How: a fresh libhttp-parser runs over the buffer and
 * pauses in on_headers_complete, so it stops on the head's last byte. The callbacks record
 * offsets into the buffer. Since the whole buffer goes in one http_parser_execute call, a name
 * or URL arrives in one callback once the head is complete; a value arrives in more than one
 * only when it is folded, and then its span runs from the first piece to the end of the last.
 * An empty value may get no callback at all (libhttp-parser 2.9 skips it), so every name starts
 * a new header whose value is empty until a value callback says otherwise: a name that follows
 * an empty value never merges into the one before. */
#include "cb/http_head.h"

#include <http_parser.h>
#include <string.h>
#include <strings.h>

typedef struct {
    const char *base;
    cb_http_head_t *head;
    size_t max_fields;
    bool has_value; /* the current header's value has had a callback */
    bool too_many;
    bool done;
} s_state_t;

/* Extend span s (empty: start it) to cover [at, at + len). */
static void s_extend(cb_http_span_t *s, bool started, const char *base, const char *at, size_t len)
{
    size_t off = (size_t)(at - base);
    if (!started)
        s->off = off;
    s->len = off + len - s->off;
}

static int s_on_url(http_parser *p, const char *at, size_t len)
{
    s_state_t *st = p->data;
    s_extend(&st->head->url, st->head->url.len > 0, st->base, at, len);
    return 0;
}

static int s_on_field(http_parser *p, const char *at, size_t len)
{
    s_state_t *st = p->data;
    cb_http_head_t *h = st->head;
    if (h->n_fields == st->max_fields) {
        st->too_many = true;
        return 1;
    }
    size_t off = (size_t)(at - st->base);
    h->fields[h->n_fields++] = (cb_http_field_t){
        .name = {off, len}, .value = {off + len, 0}, /* empty until a value callback */
    };
    st->has_value = false;
    return 0;
}

static int s_on_value(http_parser *p, const char *at, size_t len)
{
    s_state_t *st = p->data;
    cb_http_head_t *h = st->head;
    if (h->n_fields == 0)
        return 1;
    s_extend(&h->fields[h->n_fields - 1].value, st->has_value, st->base, at, len);
    st->has_value = true;
    return 0;
}

static int s_on_headers_complete(http_parser *p)
{
    s_state_t *st = p->data;
    st->done = true;
    http_parser_pause(p, 1);
    return 0;
}

cb_http_head_status_t cb_http_head_parse(const char *buf, size_t len, size_t max_len,
                                         size_t max_fields, cb_http_head_t *head)
{
    memset(head, 0, sizeof *head);
    size_t n = len < max_len ? len : max_len;
    s_state_t st = {
        .base = buf,
        .head = head,
        .max_fields = max_fields < CB_HTTP_HEAD_MAX_FIELDS ? max_fields : CB_HTTP_HEAD_MAX_FIELDS,
    };
    http_parser_settings settings;
    http_parser_settings_init(&settings);
    settings.on_url = s_on_url;
    settings.on_header_field = s_on_field;
    settings.on_header_value = s_on_value;
    settings.on_headers_complete = s_on_headers_complete;
    http_parser parser;
    http_parser_init(&parser, HTTP_REQUEST);
    parser.data = &st;
    size_t used = http_parser_execute(&parser, &settings, buf, n);
    enum http_errno e = HTTP_PARSER_ERRNO(&parser);
    if (st.too_many)
        return CB_HTTP_HEAD_TOO_LARGE;
    if (!st.done) {
        if (e != HPE_OK)
            return CB_HTTP_HEAD_BAD;
        return len >= max_len ? CB_HTTP_HEAD_TOO_LARGE : CB_HTTP_HEAD_MORE;
    }
    if (e != HPE_PAUSED && e != HPE_OK)
        return CB_HTTP_HEAD_BAD;
    /* Paused at the end of the headers, on the head's last byte ('\n'), which used leaves out. */
    if (used < n && buf[used] == '\n')
        used++;
    head->head_len = used;
    head->method = http_method_str((enum http_method)parser.method);
    head->is_connect = parser.method == HTTP_CONNECT;
    head->major = parser.http_major;
    head->minor = parser.http_minor;
    head->chunked = (parser.flags & F_CHUNKED) != 0;
    head->has_length = (parser.flags & F_CONTENTLENGTH) != 0;
    head->content_length = head->has_length ? parser.content_length : 0;
    head->upgrade = parser.upgrade != 0;
    return CB_HTTP_HEAD_DONE;
}

const cb_http_field_t *cb_http_head_find(const cb_http_head_t *head, const char *buf,
                                         const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < head->n_fields; i++) {
        const cb_http_field_t *f = &head->fields[i];
        if (f->name.len == n && strncasecmp(buf + f->name.off, name, n) == 0)
            return f;
    }
    return NULL;
}

bool cb_http_head_has_break(const char *buf, cb_http_span_t s)
{
    return memchr(buf + s.off, '\r', s.len) || memchr(buf + s.off, '\n', s.len);
}
