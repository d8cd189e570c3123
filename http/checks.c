/* http/checks.c: the checks a request must pass before it reaches a handler.
 *
 * These run on the server thread (server.c calls them from the libwebsockets callback) and
 * read only the server's configuration, which is fixed once the server starts. They are pure
 * functions of their input, so each rule reads here in one place:
 *   - Host: an IP literal (IPv6 in brackets), "localhost", or a name in allowed_hosts, with an
 *     optional ":port". Anything else could be a DNS-rebinding page talking to us by name.
 *   - Origin: absent, or our own origin (the scheme http, since we serve plain HTTP, a
 *     Host-valid host and our port), or an exact entry of allowed_origins. "null", https and
 *     everything else are refused.
 *   - Token: "Bearer T" or "token T" in Authorization, or ?token=T (WebSockets only, decided by
 *     the caller). T is every byte to the end of the header's value (a NUL too: the caller
 *     passes the length lws reports, not strlen). T is hashed with SHA-256 and the digest
 *     compared with CRYPTO_memcmp against every known token's (the server's and the tenants'),
 *     all of them, whatever matched, so neither the content, the length, nor which token it
 *     was leaks through timing. The answer is the principal the token belongs to.
 *   - Routes: the longest prefix that matches at a path-segment boundary. */
#include <arpa/inet.h>
#include <ctype.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http_private.h"

static bool s_port_valid(const char *s, size_t len, int *port)
{
    if (len == 0 || len > 5)
        return false;
    int v = 0;
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char)s[i]))
            return false;
        v = v * 10 + (s[i] - '0');
    }
    if (v > 65535)
        return false;
    if (port)
        *port = v;
    return true;
}

/* Split "host[:port]" / "[v6][:port]" into the host part (without brackets) and the port
 * (-1 when absent). */
static bool s_split_host_port(const char *s, size_t len, const char **host, size_t *hlen,
                              bool *bracketed, int *port)
{
    *port = -1;
    *bracketed = false;
    if (len == 0)
        return false;
    if (s[0] == '[') {
        const char *close = memchr(s, ']', len);
        if (!close)
            return false;
        *host = s + 1;
        *hlen = (size_t)(close - s - 1);
        *bracketed = true;
        size_t rest = len - (size_t)(close - s) - 1;
        if (rest == 0)
            return true;
        if (close[1] != ':')
            return false;
        return s_port_valid(close + 2, rest - 1, port);
    }
    const char *colon = memchr(s, ':', len);
    *host = s;
    if (!colon) {
        *hlen = len;
        return true;
    }
    *hlen = (size_t)(colon - s);
    return s_port_valid(colon + 1, len - *hlen - 1, port);
}

static bool s_host_name_allowed(const http_server_t *self, const char *host, size_t hlen,
                                bool bracketed)
{
    if (hlen == 0)
        return false;
    if (bracketed) {
        /* Only an IPv6 literal goes in brackets. */
        char buf[INET6_ADDRSTRLEN + 1];
        unsigned char addr[sizeof(struct in6_addr)];
        if (hlen >= sizeof(buf))
            return false;
        memcpy(buf, host, hlen);
        buf[hlen] = '\0';
        return inet_pton(AF_INET6, buf, addr) == 1;
    }
    if (memchr(host, ':', hlen))
        return false;
    char buf[INET_ADDRSTRLEN + 1];
    unsigned char addr[sizeof(struct in_addr)];
    if (hlen < sizeof(buf)) {
        memcpy(buf, host, hlen);
        buf[hlen] = '\0';
        if (inet_pton(AF_INET, buf, addr) == 1)
            return true;
    }
    if (hlen == 9 && strncasecmp(host, "localhost", 9) == 0)
        return true;
    for (char **h = self->allowed_hosts; h && *h; h++)
        if (strlen(*h) == hlen && strncasecmp(*h, host, hlen) == 0)
            return true;
    return false;
}

bool http_check_host(const http_server_t *self, const char *host)
{
    if (!host)
        return false;
    const char *h;
    size_t hlen;
    bool bracketed;
    int port;
    if (!s_split_host_port(host, strlen(host), &h, &hlen, &bracketed, &port))
        return false;
    return s_host_name_allowed(self, h, hlen, bracketed);
}

bool http_check_origin(const http_server_t *self, const char *origin)
{
    if (!origin)
        return true;
    for (char **o = self->allowed_origins; o && *o; o++)
        if (strcmp(*o, origin) == 0)
            return true;
    const char *sep = strstr(origin, "://");
    if (!sep)
        return false; /* "null" and anything without a scheme */
    /* The server speaks plain HTTP, so its own origin's scheme is http: https://host:ourport
     * is another origin (RFC 6454), whatever would answer there. */
    size_t slen = (size_t)(sep - origin);
    if (!(slen == 4 && strncasecmp(origin, "http", 4) == 0))
        return false;
    const char *rest = sep + 3;
    const char *h;
    size_t hlen;
    bool bracketed;
    int port;
    if (!s_split_host_port(rest, strlen(rest), &h, &hlen, &bracketed, &port))
        return false;
    if (!s_host_name_allowed(self, h, hlen, bracketed))
        return false;
    return (port < 0 ? 80 : port) == self->port;
}

void http_token_digest(const char *token, size_t len, unsigned char out[32])
{
    SHA256((const unsigned char *)token, len, out);
}

const cb_principal_t http_principal_admin = {CB_TENANT_ADMIN, true};
const cb_principal_t http_principal_nobody = {"", false};

/* 1 when x is 0, else 0, without a branch on x (x >= 0: CRYPTO_memcmp's result). */
static size_t s_is_zero(int x)
{
    unsigned u = (unsigned)x;
    return (size_t)(1u ^ ((u | (0u - u)) >> (sizeof(u) * 8 - 1)));
}

const http_cred_t *http_cred_find(const http_server_t *self, const char *given, size_t len)
{
    unsigned char d[32];
    http_token_digest(given ? given : "", given ? len : 0, d);
    /* Tokens are unique (http_server_new), so at most one matches: found is its index + 1.
     * Every digest is compared, whatever matched before. */
    size_t found = 0;
    for (size_t i = 0; i < self->ncreds; i++)
        found |= s_is_zero(CRYPTO_memcmp(d, self->creds[i].digest, sizeof(d))) * (i + 1);
    OPENSSL_cleanse(d, sizeof(d));
    return found && len > 0 ? &self->creds[found - 1] : NULL;
}

/* The principal of the token given (every one of the len bytes counts, a NUL among them
 * too), or NULL. */
static const cb_principal_t *s_token_principal(const http_server_t *self, const char *given,
                                               size_t len)
{
    const http_cred_t *cred = http_cred_find(self, given, len);
    return cred ? &cred->who : NULL;
}

static size_t s_skip_spaces(const char *p, size_t len)
{
    size_t i = 0;
    while (i < len && p[i] == ' ')
        i++;
    return i;
}

const cb_principal_t *http_check_token(const http_server_t *self, const char *authorization,
                                       size_t auth_len, const char *query_token)
{
    const cb_principal_t *who = NULL;
    if (authorization) {
        const char *p = authorization;
        size_t n = auth_len;
        size_t i = s_skip_spaces(p, n);
        p += i;
        n -= i;
        size_t skip = 0;
        if (n >= 7 && strncasecmp(p, "bearer ", 7) == 0)
            skip = 7;
        else if (n >= 6 && strncasecmp(p, "token ", 6) == 0)
            skip = 6;
        if (skip) {
            p += skip;
            n -= skip;
            i = s_skip_spaces(p, n);
            p += i;
            n -= i;
            /* Trailing spaces are not part of the token; everything else up to the end of the
             * header's value is. */
            while (n > 0 && p[n - 1] == ' ')
                n--;
            who = s_token_principal(self, p, n);
        }
    }
    if (!who && query_token)
        who = s_token_principal(self, query_token, strlen(query_token));
    if (!who && self->no_auth)
        who = &http_principal_admin;
    return who;
}

const cb_principal_t *http_check_api_key(const http_server_t *self, const char *value, size_t len)
{
    size_t i = s_skip_spaces(value, len);
    value += i;
    len -= i;
    while (len > 0 && value[len - 1] == ' ')
        len--;
    const cb_principal_t *who = s_token_principal(self, value, len);
    return who || !self->no_auth ? who : &http_principal_admin;
}

const http_route_t *http_route_find(const http_server_t *self, const char *path)
{
    const http_route_t *best = NULL;
    for (size_t i = 0; i < self->nroutes; i++) {
        const http_route_t *r = &self->routes[i];
        if (strncmp(path, r->prefix, r->len) != 0)
            continue;
        /* "/api" takes "/api" and "/api/x", not "/apix"; "/" and "/a/" end in a slash. */
        if (path[r->len] != '\0' && path[r->len] != '/' && r->prefix[r->len - 1] != '/')
            continue;
        if (!best || r->len > best->len)
            best = r;
    }
    return best;
}

const char *http_status_reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: break;
    }
    if (status >= 200 && status < 300)
        return "Success";
    if (status >= 400 && status < 500)
        return "Client Error";
    return "Error";
}
