/* fuzz_http_forward.c: the front door's reading of a request head (http/forward.c): whether it
 * is complete, whether it asks for a sandbox's port, access by token, signed link or cookie,
 * and the head rebuilt for upstream. The input is the bytes a client sent first, as the front
 * door peeks them.
 *
 * What must hold, besides no crash or leak: a head that passes is rebuilt into one head (a
 * request line, header lines, the blank line) with a port from 1 to 65535 and none of ours in
 * it: no token or cb_sig parameter, no cellblock_port cookie, no Authorization that holds the
 * token, no X-API-Key that holds it, no E2B-Traffic-Access-Token; a WebSocket upgrade and only
 * it has no body limit; the head's length is within the input; a redirect only comes from a
 * signed link that verifies. */
#include <string.h>
#include <strings.h>

#include "cb/alloc.h"
#include "cb/cleanup.h"
#include "fuzz.h"
#include "http_private.h"

#define S_TOKEN "f0e1d2c3b4a5968778695a4b3c2d1e0f"

static zloop_t *s_loop;
static http_server_t *s_http;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    zsys_init();
    zsys_set_logstream(NULL);
    s_loop = zloop_new();
    cb_error_t err = {0};
    s_http = http_server_new(s_loop, &(http_config_t){.listen = "127.0.0.1:8888", .token = S_TOKEN},
                             &err);
    FUZZ_CHECK(s_http);
    return 0;
}

/* The query of the request line holds no parameter named name. */
static bool s_no_param(const char *line, size_t len, const char *name)
{
    const char *q = memchr(line, '?', len);
    if (!q)
        return true;
    const char *end = line + len, *p = q + 1;
    size_t n = strlen(name);
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *e = amp ? amp : end;
        if ((size_t)(e - p) >= n && strncmp(p, name, n) == 0 && (p + n == e || p[n] == '='))
            return false;
        p = amp ? amp + 1 : end;
    }
    return true;
}

static void s_check_head(const char *head)
{
    size_t len = strlen(head);
    FUZZ_CHECK(len >= 4 && strcmp(head + len - 4, "\r\n\r\n") == 0);
    const char *eol = strstr(head, "\r\n");
    FUZZ_CHECK(eol);
    const char *sp = memchr(head, ' ', (size_t)(eol - head));
    FUZZ_CHECK(sp);
    const char *sp2 = memchr(sp + 1, ' ', (size_t)(eol - sp - 1));
    FUZZ_CHECK(sp2);
    FUZZ_CHECK(s_no_param(sp + 1, (size_t)(sp2 - sp - 1), "token"));
    FUZZ_CHECK(s_no_param(sp + 1, (size_t)(sp2 - sp - 1), "cb_sig"));
    for (const char *line = eol + 2; *line && strncmp(line, "\r\n", 2) != 0;) {
        const char *end = strstr(line, "\r\n");
        FUZZ_CHECK(end);
        if (strncasecmp(line, "Cookie: ", 8) == 0) {
            for (const char *p = line + 8; p < end;) {
                while (p < end && (*p == ' ' || *p == ';'))
                    p++;
                FUZZ_CHECK(!(end - p >= 15 && strncmp(p, "cellblock_port=", 15) == 0));
                const char *semi = memchr(p, ';', (size_t)(end - p));
                p = semi ? semi : end;
            }
        }
        if (strncasecmp(line, "Authorization:", 14) == 0) {
            const char *v = line + 14;
            while (*v == ' ')
                v++;
            FUZZ_CHECK(!http_check_token(s_http, v, (size_t)(end - v), NULL));
        }
        if (strncasecmp(line, "X-API-Key:", 10) == 0) {
            const char *v = line + 10;
            FUZZ_CHECK(!http_check_api_key(s_http, v, (size_t)(end - v)));
        }
        FUZZ_CHECK(strncasecmp(line, "E2B-Traffic-Access-Token:", 25) != 0);
        line = end + 2;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    http_fwd_plan_t p;
    int rc = http_fwd_plan(s_http, (const char *)data, size, &p);
    FUZZ_CHECK(rc >= -1 && rc <= 1);
    if (rc == 1) {
        FUZZ_CHECK(p.head_len <= size);
        if (p.is_forward && p.status == 0) {
            FUZZ_CHECK(p.port >= 1 && p.port <= 65535 && p.sandbox);
            if (p.redirect) {
                FUZZ_CHECK(p.location && p.set_cookie && !p.head);
            } else {
                FUZZ_CHECK(p.head);
                FUZZ_CHECK((p.body_max == UINT64_MAX) == p.websocket);
                s_check_head(p.head);
            }
        }
        if (p.status)
            FUZZ_CHECK(p.status >= 400 && p.status < 500 && p.why && !p.head);
    }
    http_fwd_plan_clear(&p);
    return 0;
}
