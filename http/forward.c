/* http/forward.c: what the front door decides about one request head, as pure functions.
 *
 * The front door (frontdoor.c) peeks at a connection's first bytes and asks http_fwd_plan:
 * is the head complete, is it a request for a port inside a sandbox, may it pass, and what
 * goes upstream. The server's one head reader (cb/http_head.h, libhttp-parser underneath)
 * stops at the end of the headers, so what it read is exactly the head, and the body (if any)
 * stays in the socket for the pump.
 *
 * A forward is asked for by path, /sandboxes/{id}/ports/{port}[/rest] (the prefix is stripped
 * upstream), or by host, {port}-{id}.localhost[:p] (the path goes as it is). Access, in order:
 * the server's token (Authorization: Bearer/token, X-API-Key as E2B's SDKs send it, or
 * ?token=), the sandbox's own token as E2B-Traffic-Access-Token (http_sandbox_token: what E2B's
 * create answers as trafficAccessToken), the port's cookie, or a signed
 * link ?cb_sig=EXPIRES.HMAC, HMAC-SHA256 under the server's secret over "id\nport\nexpires".
 * A valid signed link is answered with a redirect to the clean URL that sets the cookie (same
 * value, scoped to that port's path or host), so the link's capability is a per-port one.
 *
 * Upstream never sees the server's token, the sandbox's, the cb_sig or token parameters or the
 * cookie: the head is rebuilt from the parsed pieces, without Authorization or X-API-Key when
 * it carried the token, without E2B-Traffic-Access-Token, with
 * the Cookie header minus ours, and with Connection: close (Connection: Upgrade for a
 * WebSocket upgrade). One request per client connection: body_max is the request's
 * Content-Length (or no limit after an upgrade); a chunked body is refused (411), since a
 * pump that counts bytes cannot find where a chunked body ends. */
#include <ctype.h>
#include <http_parser.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cb/alloc.h"
#include "cb/cleanup.h"
#include "cb/http_head.h"
#include "http_private.h"

#define FWD_COOKIE "cellblock_port"
#define LOGIN_COOKIE "cellblock_login" /* login.c's: stripped, never a forward's credential */
#define FWD_HEADERS_MAX 128            /* more: not a head we read (-1) */

_Static_assert(FWD_HEADERS_MAX <= CB_HTTP_HEAD_MAX_FIELDS, "the head reader holds them all");

typedef struct {
    const char *at;
    size_t len;
} span_t;

/* A span of the head as a pointer and a length. */
static span_t s_span(const char *buf, cb_http_span_t s) { return (span_t){buf + s.off, s.len}; }

static bool s_span_is(span_t s, const char *name)
{
    size_t n = strlen(name);
    return s.len == n && strncasecmp(s.at, name, n) == 0;
}

/* The value of the first header named name, into *value; false when there is none. */
static bool s_header(const cb_http_head_t *h, const char *buf, const char *name, span_t *value)
{
    const cb_http_field_t *f = cb_http_head_find(h, buf, name);
    if (f)
        *value = s_span(buf, f->value);
    return f != NULL;
}

/* 1..65535 in plain digits, else -1. */
static int s_port(const char *s, size_t len)
{
    if (len == 0 || len > 5)
        return -1;
    int v = 0;
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v >= 1 && v <= 65535 ? v : -1;
}

static bool s_id_ok(const char *s, size_t len)
{
    if (len == 0 || len > 64)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '_')
            return false;
    return true;
}

/* ---- signatures ----------------------------------------------------------------------------- */

static void s_mac_hex(const http_server_t *self, const char *id, int port, int64_t expires,
                      char out[65])
{
    char msg[160];
    int n = snprintf(msg, sizeof(msg), "%s\n%d\n%lld", id, port, (long long)expires);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mlen = 0;
    HMAC(EVP_sha256(), self->secret, sizeof(self->secret), (const unsigned char *)msg, (size_t)n,
         mac, &mlen);
    for (unsigned i = 0; i < 32 && i < mlen; i++)
        snprintf(out + 2 * i, 3, "%02x", mac[i]);
    out[64] = '\0';
}

char *http_forward_sign(const http_server_t *self, const char *sandbox_id, int port,
                        int64_t expires_at)
{
    char hex[65];
    s_mac_hex(self, sandbox_id, port, expires_at, hex);
    return cb_strdup_printf("%lld.%s", (long long)expires_at, hex);
}

static void s_sandbox_mac_hex(const http_server_t *self, const char *id, char out[65])
{
    char msg[96];
    int n = snprintf(msg, sizeof(msg), "sandbox-token\n%s", id);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mlen = 0;
    HMAC(EVP_sha256(), self->secret, sizeof(self->secret), (const unsigned char *)msg,
         (size_t)(n < (int)sizeof(msg) ? n : (int)sizeof(msg) - 1), mac, &mlen);
    for (unsigned i = 0; i < 32 && i < mlen; i++)
        snprintf(out + 2 * i, 3, "%02x", mac[i]);
    out[64] = '\0';
}

char *http_sandbox_token(const http_server_t *self, const char *sandbox_id)
{
    char hex[65];
    s_sandbox_mac_hex(self, sandbox_id, hex);
    char *out = cb_xstrdup(hex);
    OPENSSL_cleanse(hex, sizeof(hex));
    return out;
}

bool http_sandbox_token_ok(const http_server_t *self, const char *sandbox_id, const char *value,
                           size_t len)
{
    if (len != 64 || !s_id_ok(sandbox_id, strlen(sandbox_id)))
        return false;
    char hex[65];
    s_sandbox_mac_hex(self, sandbox_id, hex);
    bool eq = CRYPTO_memcmp(hex, value, 64) == 0;
    OPENSSL_cleanse(hex, sizeof(hex));
    return eq;
}

/* "EXPIRES.HEX" valid for (id, port) now. The MAC is compared before anything else of the
 * value is trusted, in constant time. */
static bool s_sig_ok(const http_server_t *self, const char *id, int port, const char *v, size_t len)
{
    const char *dot = memchr(v, '.', len);
    if (!dot || dot == v || (size_t)(v + len - dot - 1) != 64 || dot - v > 18)
        return false;
    long long expires = 0;
    for (const char *p = v; p < dot; p++) {
        if (!isdigit((unsigned char)*p))
            return false;
        expires = expires * 10 + (*p - '0');
    }
    char hex[65];
    s_mac_hex(self, id, port, expires, hex);
    bool eq = CRYPTO_memcmp(hex, dot + 1, 64) == 0;
    OPENSSL_cleanse(hex, sizeof(hex));
    return eq && expires >= (long long)time(NULL);
}

/* ---- the query and the cookie --------------------------------------------------------------- */

/* The query without token= and cb_sig= (raw, still encoded), and their values. */
static void s_query_split(const char *q, size_t qlen, cb_buf_t *kept, cb_buf_t *token,
                          cb_buf_t *sig)
{
    const char *p = q, *end = q + qlen;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *e = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(e - p));
        size_t nlen = (size_t)((eq ? eq : e) - p);
        const char *val = eq ? eq + 1 : e;
        cb_buf_t *into = NULL;
        if (nlen == 5 && strncmp(p, "token", 5) == 0)
            into = token;
        else if (nlen == 6 && strncmp(p, "cb_sig", 6) == 0)
            into = sig;
        if (into) {
            cb_buf_clear(into);
            cb_buf_append(into, val, (size_t)(e - val));
        } else if (e > p) {
            if (kept->len)
                cb_buf_append(kept, "&", 1);
            cb_buf_append(kept, p, (size_t)(e - p));
        }
        p = amp ? amp + 1 : end;
    }
}

/* The Cookie header minus our cookies (the port's and the page's login), the port cookie's
 * value (the last one sent), and whether the page's login came with it. */
static void s_cookie_split(span_t c, cb_buf_t *kept, cb_buf_t *ours, bool *login)
{
    const char *p = c.at, *end = c.at + c.len;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == ';'))
            p++;
        const char *semi = memchr(p, ';', (size_t)(end - p));
        const char *e = semi ? semi : end;
        size_t n = strlen(FWD_COOKIE), ln = strlen(LOGIN_COOKIE);
        if ((size_t)(e - p) > n && strncmp(p, FWD_COOKIE, n) == 0 && p[n] == '=') {
            cb_buf_clear(ours);
            cb_buf_append(ours, p + n + 1, (size_t)(e - p - (ptrdiff_t)n - 1));
        } else if ((size_t)(e - p) >= ln && strncmp(p, LOGIN_COOKIE, ln) == 0 &&
                   (p[ln] == '=' || p + ln == e)) {
            *login = true; /* the page's login (login.c): never for a sandbox's port */
        } else if (e > p) {
            if (kept->len)
                cb_buf_append(kept, "; ", 2);
            cb_buf_append(kept, p, (size_t)(e - p));
        }
        p = e;
    }
}

/* ---- the plan ------------------------------------------------------------------------------- */

void http_fwd_plan_clear(http_fwd_plan_t *plan)
{
    free(plan->sandbox);
    free(plan->location);
    free(plan->set_cookie);
    free(plan->head);
    memset(plan, 0, sizeof(*plan));
}

static int s_refuse(http_fwd_plan_t *plan, int status, const char *why)
{
    plan->status = status;
    plan->why = why;
    return 1;
}

/* Which sandbox and port the head asks for: by path (prefix_len: the bytes of the path to
 * strip) or by host. 0: not a forward; 1: one (port -1 when it is not a valid port). */
static int s_target(const cb_http_head_t *h, const char *buf, span_t path, http_fwd_plan_t *plan,
                    size_t *prefix_len)
{
    static const char pre[] = "/sandboxes/";
    size_t plen = sizeof(pre) - 1;
    *prefix_len = 0;
    if (path.len > plen && strncmp(path.at, pre, plen) == 0) {
        const char *id = path.at + plen, *end = path.at + path.len;
        const char *slash = memchr(id, '/', (size_t)(end - id));
        if (slash && (size_t)(end - slash) >= 7 && strncmp(slash, "/ports/", 7) == 0) {
            const char *port = slash + 7;
            const char *pend = memchr(port, '/', (size_t)(end - port));
            if (!pend)
                pend = end;
            plan->is_forward = true;
            plan->sandbox = cb_xstrndup(id, (size_t)(slash - id));
            plan->port =
                s_id_ok(id, (size_t)(slash - id)) ? s_port(port, (size_t)(pend - port)) : -1;
            *prefix_len = (size_t)(pend - path.at);
            return 1;
        }
    }
    span_t host;
    if (!s_header(h, buf, "Host", &host))
        return 0;
    static const char suffix[] = ".localhost";
    size_t slen = sizeof(suffix) - 1;
    size_t hlen = host.len;
    const char *colon = memchr(host.at, ':', hlen);
    if (colon)
        hlen = (size_t)(colon - host.at);
    if (hlen <= slen || strncasecmp(host.at + hlen - slen, suffix, slen) != 0)
        return 0;
    const char *dash = memchr(host.at, '-', hlen - slen);
    if (!dash)
        return 0;
    size_t nlen = (size_t)(dash - host.at);
    for (size_t i = 0; i < nlen; i++)
        if (!isdigit((unsigned char)host.at[i]))
            return 0; /* not {port}-...: libwebsockets refuses the Host */
    const char *id = dash + 1;
    size_t idlen = (size_t)(host.at + hlen - slen - id);
    plan->is_forward = true;
    plan->sandbox = cb_xstrndup(id, idlen);
    plan->port = s_id_ok(id, idlen) ? s_port(host.at, nlen) : -1;
    return 1;
}

int http_fwd_plan(const http_server_t *self, const char *buf, size_t len, http_fwd_plan_t *plan)
{
    memset(plan, 0, sizeof(*plan));
    cb_http_head_t h;
    switch (cb_http_head_parse(buf, len, SIZE_MAX, FWD_HEADERS_MAX, &h)) {
    case CB_HTTP_HEAD_DONE: break;
    case CB_HTTP_HEAD_MORE: return 0;
    default: /* not HTTP, or too many headers */ return -1;
    }
    plan->head_len = h.head_len;

    struct http_parser_url u;
    http_parser_url_init(&u);
    span_t url = s_span(buf, h.url);
    if (!url.len || http_parser_parse_url(url.at, url.len, h.is_connect, &u))
        return 1; /* not origin-form: libwebsockets' business */
    if (!(u.field_set & (1 << UF_PATH)) || (u.field_set & (1 << UF_HOST)))
        return 1;
    span_t path = {url.at + u.field_data[UF_PATH].off, u.field_data[UF_PATH].len};
    span_t query = {"", 0};
    if (u.field_set & (1 << UF_QUERY))
        query = (span_t){url.at + u.field_data[UF_QUERY].off, u.field_data[UF_QUERY].len};
    size_t prefix_len = 0;
    if (!s_target(&h, buf, path, plan, &prefix_len))
        return 1;
    if (plan->port < 0)
        return s_refuse(plan, 400, "a port is a number from 1 to 65535, after a sandbox id");
    if (memchr(buf, '\0', plan->head_len)) /* the head upstream is a C string: none inside */
        return s_refuse(plan, 400, "NUL in the request head");
    for (size_t i = 0; i < h.n_fields; i++) {
        if (cb_http_head_has_break(buf, h.fields[i].name) ||
            cb_http_head_has_break(buf, h.fields[i].value))
            return s_refuse(plan, 400, "a folded or broken header line");
    }
    if (prefix_len) { /* the path form is on our own host: the API's Host rule holds */
        span_t host;
        cleanup_free char *hs =
            s_header(&h, buf, "Host", &host) ? cb_xstrndup(host.at, host.len) : NULL;
        if (!hs || strlen(hs) != host.len || !http_check_host(self, hs))
            return s_refuse(plan, 403, "this Host is not allowed");
    }

    cleanup_buf cb_buf_t kept_q = {0}, token = {0}, sig = {0}, kept_c = {0}, cookie = {0};
    s_query_split(query.at, query.len, &kept_q, &token, &sig);
    span_t ck;
    bool login = false;
    if (s_header(&h, buf, "Cookie", &ck))
        s_cookie_split(ck, &kept_c, &cookie, &login);
    /* A page a sandbox serves by the path form is on the page's own origin, where its scripts
     * could act with the browser's login (docs/security.md, "The page"): a browser that is
     * logged in gets the host form, another origin, instead. */
    if (prefix_len && login)
        return s_refuse(plan, 403,
                        "this browser is logged in to cellblock's page, which shares this "
                        "origin: open the port by its host form, {port}-{sandbox id}.localhost");

    /* Access: a token names its principal (the handler checks the sandbox is theirs); the
     * sandbox's token, the port's link and its cookie are capabilities (no principal). */
    span_t auth, key, traffic;
    const cb_principal_t *who = NULL;
    if (s_header(&h, buf, "Authorization", &auth))
        who = http_check_token(self, auth.at, auth.len, NULL);
    if ((!who || who == &http_principal_admin) && s_header(&h, buf, "X-API-Key", &key)) {
        const cb_principal_t *by_key = http_check_api_key(self, key.at, key.len);
        who = by_key ? by_key : who;
    }
    if ((!who || who == &http_principal_admin) && token.len) {
        const cb_principal_t *by_query = http_check_token(self, NULL, 0, cb_buf_str(&token));
        who = by_query ? by_query : who;
    }
    if (!who && self->no_auth)
        who = &http_principal_admin;
    plan->who = who;
    /* E2B's getHost traffic: the sandbox's own token (http_sandbox_token), for its ports. */
    bool has_traffic = s_header(&h, buf, "E2B-Traffic-Access-Token", &traffic);
    bool ok =
        who || (has_traffic && http_sandbox_token_ok(self, plan->sandbox, traffic.at, traffic.len));
    if (!ok && cookie.len)
        ok = s_sig_ok(self, plan->sandbox, plan->port, cookie.data, cookie.len);
    if (sig.len) {
        if (!s_sig_ok(self, plan->sandbox, plan->port, sig.data, sig.len))
            return s_refuse(plan, 401, "this signed link is not valid (or has expired)");
        long long expires = strtoll(sig.data, NULL, 10);
        long long age = expires - (long long)time(NULL);
        plan->redirect = true;
        cb_buf_t loc = {0};
        cb_buf_append(&loc, path.at, path.len);
        if (kept_q.len) {
            cb_buf_append(&loc, "?", 1);
            cb_buf_append(&loc, kept_q.data, kept_q.len);
        }
        plan->location = cb_buf_take(&loc);
        /* Path form: scoped to that port's path; host form: a host-only cookie. */
        cleanup_free char *scope =
            prefix_len ? cb_strdup_printf("/sandboxes/%s/ports/%d", plan->sandbox, plan->port)
                       : cb_xstrdup("/");
        plan->set_cookie = cb_strdup_printf("%s=%s; Path=%s; Max-Age=%lld; HttpOnly; SameSite=Lax",
                                            FWD_COOKIE, cb_buf_str(&sig), scope, age);
        return 1;
    }
    if (!ok)
        return s_refuse(plan, 401, "a valid token, or a signed link for this port, is required");

    /* The body: one request per connection. */
    if (h.chunked)
        return s_refuse(plan, 411, "a request body must have a Content-Length here");
    span_t upgrade;
    plan->websocket = h.upgrade && s_header(&h, buf, "Upgrade", &upgrade);
    plan->body_max = plan->websocket ? UINT64_MAX : h.has_length ? h.content_length : 0;

    /* The head upstream. */
    cb_buf_t out = {0};
    cb_buf_printf(&out, "%s ", h.method);
    span_t rest = {path.at + prefix_len, path.len - prefix_len};
    if (rest.len == 0)
        cb_buf_append(&out, "/", 1);
    else
        cb_buf_append(&out, rest.at, rest.len);
    if (kept_q.len) {
        cb_buf_append(&out, "?", 1);
        cb_buf_append(&out, kept_q.data, kept_q.len);
    }
    cb_buf_printf(&out, " HTTP/%u.%u\r\n", h.major, h.minor);
    for (size_t i = 0; i < h.n_fields; i++) {
        span_t n = s_span(buf, h.fields[i].name), v = s_span(buf, h.fields[i].value);
        if (s_span_is(n, "Connection") || s_span_is(n, "Keep-Alive") ||
            s_span_is(n, "Proxy-Connection") || s_span_is(n, "Cookie") ||
            (s_span_is(n, "Upgrade") && !plan->websocket) ||
            s_span_is(n, "E2B-Traffic-Access-Token") ||
            (s_span_is(n, "X-API-Key") && http_check_api_key(self, v.at, v.len)) ||
            (s_span_is(n, "Authorization") && http_check_token(self, v.at, v.len, NULL)))
            continue;
        cb_buf_append(&out, n.at, n.len);
        cb_buf_append(&out, ": ", 2);
        cb_buf_append(&out, v.at, v.len);
        cb_buf_append(&out, "\r\n", 2);
    }
    if (kept_c.len)
        cb_buf_printf(&out, "Cookie: %s\r\n", cb_buf_str(&kept_c));
    if (prefix_len)
        cb_buf_printf(&out, "X-Forwarded-Prefix: /sandboxes/%s/ports/%d\r\n", plan->sandbox,
                      plan->port);
    cb_buf_printf(&out, "Connection: %s\r\n\r\n", plan->websocket ? "Upgrade" : "close");
    plan->head = cb_buf_take(&out);
    return 1;
}

bool http_fwd_shaped(const char *path, const char *host)
{
    static const char pre[] = "/sandboxes/";
    if (path && strncmp(path, pre, sizeof(pre) - 1) == 0) {
        const char *slash = strchr(path + sizeof(pre) - 1, '/');
        if (slash && strncmp(slash, "/ports/", 7) == 0)
            return true;
    }
    if (!host)
        return false;
    size_t hlen = strcspn(host, ":");
    static const char suffix[] = ".localhost";
    size_t slen = sizeof(suffix) - 1, digits = strspn(host, "0123456789");
    return hlen > slen && strncasecmp(host + hlen - slen, suffix, slen) == 0 && digits > 0 &&
           host[digits] == '-';
}

char *http_fwd_response(int status, const char *message, const char *extra_headers)
{
    json_t *j = json_pack("{s:s, s:s}", "reason", http_status_reason(status), "message",
                          message ? message : "");
    cleanup_free char *body = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!body)
        body = cb_xstrdup("{}");
    return cb_strdup_printf("HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                            "Content-Length: %zu\r\nConnection: close\r\n%s\r\n%s",
                            status, http_status_reason(status), strlen(body),
                            extra_headers ? extra_headers : "", body);
}
