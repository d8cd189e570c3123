/* fuzz_egress.c: the egress proxy's parsers of sandbox bytes (egress/http_head.c, egress/socks.c)
 * and of policies (egress/policy.c), called directly, with no socket.
 *
 * The first byte picks what the rest is: 'H' an HTTP request head (parsed, then rewritten to
 * origin form when complete), 'S' SOCKS5's greeting then request, 'P' a policy string (parsed,
 * described, and asked about a few names and addresses). What must hold, besides no crash or
 * leak: a parsed head lies inside the input, names a host with no NUL and a port > 0; its
 * rewrite starts with the method, ends with "Connection: close" and a blank line, and carries no
 * Proxy-* header; a parsed SOCKS message lies inside the input and names a port > 0; a policy
 * never allows a loopback or metadata address unless an entry names it. */
#include <arpa/inet.h>
#include <string.h>
#include <strings.h>

#include "cb/alloc.h"
#include "egress_private.h"
#include "fuzz.h"

static void s_http(const uint8_t *data, size_t size)
{
    static egress_http_req_t req;
    char why[200];
    egress_head_status_t st =
        egress_http_head_parse((const char *)data, size, &req, why, sizeof why);
    if (st != EGRESS_HEAD_DONE)
        return;
    FUZZ_CHECK(req.head_len > 0 && req.head_len <= size);
    FUZZ_CHECK(req.host[0] && req.port > 0);
    FUZZ_CHECK(req.path_off + req.path_len <= req.head_len);
    if (req.is_connect)
        return;
    static char out[EGRESS_HEAD_MAX + 1024];
    size_t n = egress_http_rewrite((const char *)data, &req, out, sizeof out - 1);
    if (n == 0)
        return;
    out[n] = '\0';
    FUZZ_CHECK(strncmp(out, req.head.method, strlen(req.head.method)) == 0);
    FUZZ_CHECK(n >= 21 && memcmp(out + n - 21, "Connection: close\r\n\r\n", 21) == 0);
    for (size_t i = 0; i < req.head.n_fields; i++) {
        FUZZ_CHECK(req.head.fields[i].name.off + req.head.fields[i].name.len <= req.head_len);
        FUZZ_CHECK(req.head.fields[i].value.off + req.head.fields[i].value.len <= req.head_len);
    }
    for (const char *line = strstr(out, "\r\n"); line; line = strstr(line + 2, "\r\n"))
        FUZZ_CHECK(strncasecmp(line + 2, "proxy-", 6) != 0); /* no Proxy-* header passed on */
}

static void s_socks(const uint8_t *data, size_t size)
{
    bool noauth;
    int n = egress_socks_greeting(data, size, &noauth);
    FUZZ_CHECK(n <= (int)size);
    if (n <= 0)
        return;
    egress_socks_req_t req;
    int m = egress_socks_request(data + n, size - (size_t)n, &req);
    FUZZ_CHECK(m <= (int)(size - (size_t)n));
    if (m > 0) {
        FUZZ_CHECK(req.port > 0);
        FUZZ_CHECK(memchr(req.host, '\0', sizeof req.host) != NULL);
    }
}

static void s_policy(const uint8_t *data, size_t size)
{
    char *spec = fuzz_strndup(data, size);
    cb_error_t err;
    egress_policy_t *p = egress_policy_from_string(spec, &err);
    free(spec);
    if (!p)
        return;
    json_decref(egress_policy_describe(p));
    static const char *const names[] = {"pypi.org", "a.b.example", "127.0.0.1", "::1", "x."};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        (void)egress_policy_check_name(p, names[i], 443, NULL, 0);
    /* A loopback or metadata address passes only when an entry names it (or its block). */
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(443)};
    inet_pton(AF_INET, "169.254.169.254", &a.sin_addr);
    if (egress_policy_check_address(p, &a, NULL, 0) == EGRESS_ALLOW) {
        bool named = false;
        for (size_t i = 0; i < p->n_allow; i++)
            named = named || p->allow[i].kind == EGRESS_ENTRY_NET;
        FUZZ_CHECK(named);
    }
    egress_policy_destroy(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    switch (data[0]) {
    case 'H': s_http(data + 1, size - 1); break;
    case 'S': s_socks(data + 1, size - 1); break;
    case 'P': s_policy(data + 1, size - 1); break;
    }
    return 0;
}
