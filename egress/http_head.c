/* http_head.c: the request head a client sends the proxy: what it asks for, and the head that
 * goes upstream.
 *
 * Why a file of its own: it is one of the two parsers of attacker bytes in the proxy, and is
 * fuzzed alone (fuzz/fuzz_egress.c). How: the proxy keeps a client's first bytes in a fixed
 * buffer (EGRESS_HEAD_MAX) and calls egress_http_head_parse with everything it has: on the first
 * bytes (so bytes that cannot be HTTP are refused at once), when a blank line has come, and when
 * the buffer is full (proxy.c's s_head_ended), never once per read, so a client trickling bytes
 * costs no more than one that sends its head at once. The server's one head reader
 * (cb/http_head.h, libhttp-parser underneath) finds the head and the spans of its parts in the
 * caller's buffer; here the proxy judges the request line (an absolute http:// URI, or CONNECT
 * host:port) and rewrites the head for upstream. Nothing is copied or allocated but the host
 * name. */
#include <http_parser.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "egress_private.h"

_Static_assert(EGRESS_HEAD_MAX_HEADERS <= CB_HTTP_HEAD_MAX_FIELDS,
               "the head reader holds them all");

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
    cb_http_head_t *head = &req->head;
    switch (cb_http_head_parse(buf, len, EGRESS_HEAD_MAX, EGRESS_HEAD_MAX_HEADERS, head)) {
    case CB_HTTP_HEAD_DONE: break;
    case CB_HTTP_HEAD_MORE: return EGRESS_HEAD_MORE;
    case CB_HTTP_HEAD_TOO_LARGE: return EGRESS_HEAD_TOO_LARGE;
    case CB_HTTP_HEAD_BAD:
    default: return s_bad(why, why_size, "not an HTTP request");
    }
    req->head_len = head->head_len;
    req->is_connect = head->is_connect;
    if (head->major != 1)
        return s_bad(why, why_size, "only HTTP/1.x is spoken here");
    /* A folded value would go upstream with its line break (RFC 9112 5.2: refuse it). */
    for (size_t i = 0; i < head->n_fields; i++)
        if (cb_http_head_has_break(buf, head->fields[i].value))
            return s_bad(why, why_size, "a folded header line");

    struct http_parser_url u;
    http_parser_url_init(&u);
    const char *url = buf + head->url.off;
    if (head->url.len == 0 || http_parser_parse_url(url, head->url.len, req->is_connect, &u) != 0)
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
        req->path_off = head->url.off + off;
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
    bool ok = s_put(out, cap, &at, req->head.method, strlen(req->head.method)) &&
              s_put(out, cap, &at, " ", 1);
    if (req->path_len)
        ok = ok && s_put(out, cap, &at, buf + req->path_off, req->path_len);
    else
        ok = ok && s_put(out, cap, &at, "/", 1);
    int n = snprintf(line, sizeof line, " HTTP/1.%u\r\n", req->head.minor ? 1u : 0u);
    ok = ok && s_put(out, cap, &at, line, (size_t)n);
    bool has_host = false;
    for (size_t i = 0; ok && i < req->head.n_fields; i++) {
        const cb_http_field_t *f = &req->head.fields[i];
        const char *name = buf + f->name.off;
        if (s_dropped(name, f->name.len))
            continue;
        if (f->name.len == 4 && strncasecmp(name, "host", 4) == 0)
            has_host = true;
        ok = s_put(out, cap, &at, name, f->name.len) && s_put(out, cap, &at, ": ", 2) &&
             s_put(out, cap, &at, buf + f->value.off, f->value.len) &&
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
