/* http_head.c: the request head a client sends the proxy, parsed with libhttp-parser.
 *
 * Why a file of its own: it is one of the two parsers of attacker bytes in the proxy, and is
 * fuzzed alone (fuzz/fuzz_egress.c). How: the proxy keeps a client's first bytes in a fixed
 * buffer (EGRESS_HEAD_MAX) and calls egress_http_head_parse with everything it has: on the first
 * bytes (so bytes that cannot be HTTP are refused at once), when a blank line has come, and when
 * the buffer is full (proxy.c's s_head_ended), never once per read, so a client trickling bytes
 * costs no more than one that sends its head at once. A fresh parser runs over the buffer and
 * pauses at the end of the headers. The callbacks only record offsets into the caller's buffer:
 * nothing is copied or allocated but the host name. */
#include <http_parser.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "egress_private.h"

typedef struct {
    const char *base;
    egress_http_req_t *req;
    size_t url_off, url_len;
    bool in_value; /* the last callback was a header value */
    bool too_many;
    bool done;
} s_state_t;

static int s_on_url(http_parser *p, const char *at, size_t len)
{
    s_state_t *st = p->data;
    if (st->url_len == 0)
        st->url_off = (size_t)(at - st->base);
    st->url_len += len;
    return 0;
}

static int s_on_field(http_parser *p, const char *at, size_t len)
{
    s_state_t *st = p->data;
    egress_http_req_t *r = st->req;
    if (r->n_headers == 0 || st->in_value) { /* a new header */
        if (r->n_headers == EGRESS_HEAD_MAX_HEADERS) {
            st->too_many = true;
            return 1;
        }
        egress_http_header_t *h = &r->headers[r->n_headers++];
        h->name_off = (size_t)(at - st->base);
        h->name_len = 0;
        h->value_off = h->value_len = 0;
        st->in_value = false;
    }
    r->headers[r->n_headers - 1].name_len += len;
    return 0;
}

static int s_on_value(http_parser *p, const char *at, size_t len)
{
    s_state_t *st = p->data;
    egress_http_header_t *h = &st->req->headers[st->req->n_headers - 1];
    if (!st->in_value)
        h->value_off = (size_t)(at - st->base);
    h->value_len += len;
    st->in_value = true;
    return 0;
}

static int s_on_headers_complete(http_parser *p)
{
    s_state_t *st = p->data;
    st->done = true;
    http_parser_pause(p, 1);
    return 0;
}

static egress_head_status_t s_bad(char *why, size_t why_size, const char *msg)
{
    if (why)
        snprintf(why, why_size, "%s", msg);
    return EGRESS_HEAD_BAD;
}

egress_head_status_t egress_http_head_parse(const char *buf, size_t len, egress_http_req_t *req,
                                            char *why, size_t why_size)
{
    memset(req, 0, sizeof *req);
    size_t n = len < EGRESS_HEAD_MAX ? len : EGRESS_HEAD_MAX;
    s_state_t st = {.base = buf, .req = req};
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
        return EGRESS_HEAD_TOO_LARGE;
    if (!st.done) {
        if (e != HPE_OK)
            return s_bad(why, why_size, "not an HTTP request");
        return len >= EGRESS_HEAD_MAX ? EGRESS_HEAD_TOO_LARGE : EGRESS_HEAD_MORE;
    }
    /* Paused at the end of the headers, on the head's last byte ('\n'), which used leaves out. */
    if (used < n && buf[used] == '\n')
        used++;
    req->head_len = used;
    req->major = parser.http_major;
    req->minor = parser.http_minor;
    req->method = http_method_str(parser.method);
    req->is_connect = parser.method == HTTP_CONNECT;
    if (req->major != 1)
        return s_bad(why, why_size, "only HTTP/1.x is spoken here");

    struct http_parser_url u;
    http_parser_url_init(&u);
    const char *url = buf + st.url_off;
    if (st.url_len == 0 || http_parser_parse_url(url, st.url_len, req->is_connect, &u) != 0)
        return s_bad(why, why_size,
                     req->is_connect ? "CONNECT needs host:port"
                                     : "the request needs an "
                                       "absolute http:// URI");
    if (!(u.field_set & (1 << UF_HOST)))
        return s_bad(why, why_size, "the request names no host");
    if (!req->is_connect) {
        if (!(u.field_set & (1 << UF_SCHEMA)))
            return s_bad(why, why_size, "the request needs an absolute http:// URI");
        const char *scheme = url + u.field_data[UF_SCHEMA].off;
        if (u.field_data[UF_SCHEMA].len != 4 || strncasecmp(scheme, "http", 4) != 0)
            return s_bad(why, why_size,
                         "only http:// URIs are forwarded (use CONNECT for "
                         "https)");
    }
    size_t hl = u.field_data[UF_HOST].len;
    if (hl == 0 || hl >= sizeof req->host)
        return s_bad(why, why_size, "the host name is empty or too long");
    memcpy(req->host, url + u.field_data[UF_HOST].off, hl);
    req->host[hl] = '\0';
    if (memchr(req->host, '\0', hl))
        return s_bad(why, why_size, "the host name holds a NUL byte");
    if (u.field_set & (1 << UF_PORT)) {
        if (u.port == 0)
            return s_bad(why, why_size, "port 0");
        req->port = u.port;
    } else if (req->is_connect) {
        return s_bad(why, why_size, "CONNECT needs host:port");
    } else {
        req->port = 80;
    }
    if (!req->is_connect && (u.field_set & (1 << UF_PATH))) {
        /* path, query: everything from the path on, but no fragment */
        size_t off = u.field_data[UF_PATH].off;
        size_t end = off + u.field_data[UF_PATH].len;
        if (u.field_set & (1 << UF_QUERY))
            end = u.field_data[UF_QUERY].off + u.field_data[UF_QUERY].len;
        req->path_off = st.url_off + off;
        req->path_len = end - off;
    }
    return EGRESS_HEAD_DONE;
}

/* Headers a proxy must not pass on (hop-by-hop, or for the proxy). */
static bool s_dropped(const char *name, size_t len)
{
    static const char *const drop[] = {
        "connection",         "keep-alive", "proxy-connection", "proxy-authorization",
        "proxy-authenticate", "te",         "upgrade",          NULL};
    if (len >= 6 && strncasecmp(name, "proxy-", 6) == 0)
        return true;
    for (const char *const *d = drop; *d; d++)
        if (strlen(*d) == len && strncasecmp(name, *d, len) == 0)
            return true;
    return false;
}

static bool s_put(char *out, size_t cap, size_t *at, const char *s, size_t n)
{
    if (*at + n > cap)
        return false;
    memcpy(out + *at, s, n);
    *at += n;
    return true;
}

size_t egress_http_rewrite(const char *buf, const egress_http_req_t *req, char *out, size_t cap)
{
    size_t at = 0;
    char line[64];
    bool ok =
        s_put(out, cap, &at, req->method, strlen(req->method)) && s_put(out, cap, &at, " ", 1);
    if (req->path_len)
        ok = ok && s_put(out, cap, &at, buf + req->path_off, req->path_len);
    else
        ok = ok && s_put(out, cap, &at, "/", 1);
    int n = snprintf(line, sizeof line, " HTTP/1.%u\r\n", req->minor ? 1u : 0u);
    ok = ok && s_put(out, cap, &at, line, (size_t)n);
    bool has_host = false;
    for (size_t i = 0; ok && i < req->n_headers; i++) {
        const egress_http_header_t *h = &req->headers[i];
        const char *name = buf + h->name_off;
        if (s_dropped(name, h->name_len))
            continue;
        if (h->name_len == 4 && strncasecmp(name, "host", 4) == 0)
            has_host = true;
        ok = s_put(out, cap, &at, name, h->name_len) && s_put(out, cap, &at, ": ", 2) &&
             s_put(out, cap, &at, buf + h->value_off, h->value_len) &&
             s_put(out, cap, &at, "\r\n", 2);
    }
    if (ok && !has_host) {
        bool v6 = strchr(req->host, ':') != NULL;
        ok = s_put(out, cap, &at, "Host: ", 6) && s_put(out, cap, &at, "[", v6 ? 1 : 0) &&
             s_put(out, cap, &at, req->host, strlen(req->host)) &&
             s_put(out, cap, &at, "]", v6 ? 1 : 0);
        if (ok && req->port != 80) {
            n = snprintf(line, sizeof line, ":%u", req->port);
            ok = s_put(out, cap, &at, line, (size_t)n);
        }
        ok = ok && s_put(out, cap, &at, "\r\n", 2);
    }
    ok = ok && s_put(out, cap, &at, "Connection: close\r\n\r\n", 21);
    return ok ? at : 0;
}
