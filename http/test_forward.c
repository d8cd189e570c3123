/* test_forward.c: the front door's decisions about a request head (forward.c), on their own:
 * incomplete heads, what is a forward and what is libwebsockets', bad ports, access by token,
 * link and cookie, E2B's X-API-Key and traffic token, and the head that goes upstream (nothing
 * of ours in it). TAP output. */
#include <czmq.h>
#include <string.h>
#include <time.h>

#include "cb/alloc.h"
#include "cb/cleanup.h"
#include "cb/tap.h"
#include "http_private.h"

#define TOKEN "test-token-0123456789abcdef"
#define SB "4f1c2d3e-0000-4000-8000-123456789abc"

static int s_plan(http_server_t *srv, const char *head, http_fwd_plan_t *plan)
{
    return http_fwd_plan(srv, head, strlen(head), plan);
}

int main(void)
{
    zsys_init();
    zsys_set_logstream(NULL);
    zloop_t *loop = zloop_new();
    cb_error_t err = {0};
    http_server_t *srv =
        http_server_new(loop, &(http_config_t){.listen = "127.0.0.1:0", .token = TOKEN}, &err);
    CB_OK(srv, "a server (not started) to decide with: %s", err.msg);
    http_fwd_plan_t p;

    CB_EQ_INT(s_plan(srv, "GET /x HTTP/1.1\r\nHost: a", &p), 0, "an incomplete head: wait");
    http_fwd_plan_clear(&p);
    CB_EQ_INT(s_plan(srv, "\x16\x03\x01garbage\r\n\r\n", &p), -1, "garbage: libwebsockets'");
    http_fwd_plan_clear(&p);
    CB_EQ_INT(s_plan(srv, "GET /api/kernels HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", &p), 1,
              "an API request is complete");
    CB_OK(!p.is_forward, "… and not a forward");
    http_fwd_plan_clear(&p);

    /* Ports. */
    const char *bad[] = {"0", "70000", "abc", "-1", "8000x", "", "000000008000"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cleanup_free char *h =
            cb_strdup_printf("GET /sandboxes/" SB "/ports/%s/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                             "Authorization: Bearer " TOKEN "\r\n\r\n",
                             bad[i]);
        s_plan(srv, h, &p);
        CB_OK(p.is_forward && p.status == 400, "port '%s': 400 (got %d)", bad[i], p.status);
        http_fwd_plan_clear(&p);
    }
    s_plan(srv, "GET / HTTP/1.1\r\nHost: 0-" SB ".localhost:1\r\n\r\n", &p);
    CB_OK(p.is_forward && p.status == 400, "host form port 0: 400");
    http_fwd_plan_clear(&p);
    s_plan(srv, "GET / HTTP/1.1\r\nHost: x-" SB ".localhost\r\n\r\n", &p);
    CB_OK(!p.is_forward, "a host that is not {port}-{id}.localhost is not a forward");
    http_fwd_plan_clear(&p);
    s_plan(srv, "GET /sandboxes/a%2fb/ports/80/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", &p);
    CB_OK(p.is_forward && p.status == 400, "an id with other characters: 400");
    http_fwd_plan_clear(&p);

    /* Access and the head upstream. */
    s_plan(srv, "GET /sandboxes/" SB "/ports/8000/a HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", &p);
    CB_EQ_INT(p.status, 401, "no credentials: 401");
    http_fwd_plan_clear(&p);
    s_plan(srv,
           "GET /sandboxes/" SB "/ports/8000/a HTTP/1.1\r\nHost: evil.example\r\n"
           "Authorization: Bearer " TOKEN "\r\n\r\n",
           &p);
    CB_EQ_INT(p.status, 403, "path form on a foreign Host: 403");
    http_fwd_plan_clear(&p);
    const char *h1 = "POST /sandboxes/" SB "/ports/8000/a/b?x=1&token=" TOKEN "&y=2 HTTP/1.1\r\n"
                     "Host: 127.0.0.1:9\r\nAuthorization: Bearer " TOKEN "\r\n"
                     "Cookie: a=1; cellblock_port=zzz; b=2\r\nConnection: keep-alive\r\n"
                     "Content-Length: 5\r\nX-Mine: yes\r\n\r\nhello";
    CB_EQ_INT(s_plan(srv, h1, &p), 1, "a forward with the token");
    CB_OK(p.is_forward && p.status == 0 && p.port == 8000 && strcmp(p.sandbox, SB) == 0,
          "… to port 8000 of the sandbox");
    CB_EQ_SIZE(p.head_len, strlen(h1) - 5, "… its head ends before the body");
    CB_OK(p.body_max == 5 && !p.websocket, "… one body of 5 bytes");
    CB_OK(p.head && strncmp(p.head, "POST /a/b?x=1&y=2 HTTP/1.1\r\n", 28) == 0,
          "… the prefix and the token parameter are gone");
    CB_OK(p.head && !strstr(p.head, TOKEN) && !strstr(p.head, "cellblock_port") &&
              !strstr(p.head, "keep-alive") && strstr(p.head, "Cookie: a=1; b=2\r\n") &&
              strstr(p.head, "X-Mine: yes\r\n") && strstr(p.head, "Connection: close\r\n\r\n"),
          "… no token, no cookie of ours, the app's headers, Connection: close");
    http_fwd_plan_clear(&p);
    s_plan(srv,
           "POST /sandboxes/" SB "/ports/8000/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
           "Authorization: token " TOKEN "\r\nTransfer-Encoding: chunked\r\n\r\n",
           &p);
    CB_EQ_INT(p.status, 411, "a chunked body: 411");
    http_fwd_plan_clear(&p);
    s_plan(srv,
           "GET /ws HTTP/1.1\r\nHost: 8000-" SB ".localhost:1\r\nUpgrade: websocket\r\n"
           "Connection: Upgrade\r\nAuthorization: Bearer " TOKEN "\r\nSec-WebSocket-Key: k\r\n\r\n",
           &p);
    CB_OK(p.websocket && p.body_max == UINT64_MAX && p.head &&
              strstr(p.head, "Upgrade: websocket\r\n") &&
              strstr(p.head, "Connection: Upgrade\r\n\r\n") && strncmp(p.head, "GET /ws ", 8) == 0,
          "a WebSocket upgrade by host: no body limit, Upgrade kept");
    http_fwd_plan_clear(&p);
    s_plan(srv,
           "GET /sandboxes/" SB "/ports/8000/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
           "Authorization: Bearer theirs\r\n\r\n",
           &p);
    CB_EQ_INT(p.status, 401, "another Authorization is not the token");
    http_fwd_plan_clear(&p);

    /* A header with an empty value has no value callback: the next name must not merge into
     * it (fuzz.http_forward found the token reaching upstream that way). */
    s_plan(srv,
           "GET /sandboxes/" SB "/ports/8000/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Empty:\r\n"
           "Authorization: Bearer " TOKEN "\r\nX-After: 1\r\n\r\n",
           &p);
    CB_OK(p.status == 0 && p.head && !strstr(p.head, TOKEN) && strstr(p.head, "X-Empty: \r\n") &&
              strstr(p.head, "X-After: 1\r\n"),
          "an empty header value, then the token: the token still stays with us");
    http_fwd_plan_clear(&p);
    s_plan(srv,
           "GET /sandboxes/" SB "/ports/8000/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
           "Authorization: Bearer " TOKEN "\r\nX-Fold: a\r\n b\r\n\r\n",
           &p);
    CB_OK(p.status == 400 || (p.head && !strstr(p.head, "\r\n b")),
          "a folded header line is not passed on as one (status %d)", p.status);
    http_fwd_plan_clear(&p);

    /* Signed links. */
    int64_t later = (int64_t)time(NULL) + 600;
    cleanup_free char *sig = http_forward_sign(srv, SB, 8000, later);
    cleanup_free char *h2 = cb_strdup_printf(
        "GET /sandboxes/" SB "/ports/8000/p?q=1&cb_sig=%s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        sig);
    s_plan(srv, h2, &p);
    CB_OK(p.redirect && strcmp(p.location, "/sandboxes/" SB "/ports/8000/p?q=1") == 0,
          "a signed link redirects to the clean URL");
    CB_OK(p.set_cookie && strstr(p.set_cookie, sig) &&
              strstr(p.set_cookie, "Path=/sandboxes/" SB "/ports/8000;") &&
              strstr(p.set_cookie, "HttpOnly"),
          "… setting the port's cookie: %s", p.set_cookie);
    http_fwd_plan_clear(&p);
    cleanup_free char *h3 =
        cb_strdup_printf("GET /sandboxes/" SB "/ports/8001/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         "Cookie: cellblock_port=%s\r\n\r\n",
                         sig);
    s_plan(srv, h3, &p);
    CB_EQ_INT(p.status, 401, "the cookie of port 8000 does not open 8001");
    http_fwd_plan_clear(&p);
    cleanup_free char *h4 =
        cb_strdup_printf("GET /sandboxes/" SB "/ports/8000/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         "Cookie: cellblock_port=%s\r\n\r\n",
                         sig);
    s_plan(srv, h4, &p);
    CB_OK(p.status == 0 && p.head && !strstr(p.head, sig), "it opens 8000, and stays with us");
    http_fwd_plan_clear(&p);
    cleanup_free char *old = http_forward_sign(srv, SB, 8000, (int64_t)time(NULL) - 1);
    cleanup_free char *h5 = cb_strdup_printf(
        "GET /sandboxes/" SB "/ports/8000/?cb_sig=%s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", old);
    s_plan(srv, h5, &p);
    CB_EQ_INT(p.status, 401, "an expired link: 401");
    http_fwd_plan_clear(&p);
    const char *forms[] = {"", ".", "1.", "x.00", "99999999999999999999.00"};
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        cleanup_free char *h = cb_strdup_printf(
            "GET /sandboxes/" SB "/ports/8000/?cb_sig=%s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
            forms[i]);
        s_plan(srv, h, &p);
        CB_OK(p.status == 401, "a malformed signature '%s': 401", forms[i]);
        http_fwd_plan_clear(&p);
    }

    /* E2B's credentials: X-API-Key with the token, E2B-Traffic-Access-Token with the sandbox's
     * own token (for its ports only); neither goes upstream. */
    cleanup_free char *sbt = http_sandbox_token(srv, SB);
    cleanup_free char *other = http_sandbox_token(srv, "another-sandbox");
    cleanup_free char *traffic_head = cb_strdup_printf(
        "GET /a HTTP/1.1\r\nHost: 8000-" SB ".localhost:1\r\nE2B-Traffic-Access-Token: %s\r\n"
        "X-Other: kept\r\n\r\n",
        sbt);
    s_plan(srv, traffic_head, &p);
    CB_OK(p.is_forward && p.status == 0 && p.head && !strstr(p.head, sbt) &&
              !strstr(p.head, "E2B-Traffic") && strstr(p.head, "X-Other: kept"),
          "the sandbox's traffic token opens its port, and is not sent upstream");
    http_fwd_plan_clear(&p);
    cleanup_free char *other_head = cb_strdup_printf(
        "GET /a HTTP/1.1\r\nHost: 8000-" SB ".localhost:1\r\nE2B-Traffic-Access-Token: %s\r\n\r\n",
        other);
    s_plan(srv, other_head, &p);
    CB_OK(p.is_forward && p.status == 401, "another sandbox's traffic token: 401 (got %d)",
          p.status);
    http_fwd_plan_clear(&p);
    s_plan(srv,
           "GET /a HTTP/1.1\r\nHost: 8000-" SB ".localhost:1\r\nE2B-Traffic-Access-Token: " TOKEN
           "\r\n\r\n",
           &p);
    CB_OK(p.is_forward && p.status == 401, "the server token as a traffic token: 401");
    http_fwd_plan_clear(&p);
    s_plan(srv,
           "GET /sandboxes/" SB "/ports/80/a HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: " TOKEN
           "\r\n\r\n",
           &p);
    CB_OK(p.is_forward && p.status == 0 && p.head && !strstr(p.head, TOKEN) &&
              !strstr(p.head, "X-API-Key"),
          "X-API-Key with the token opens a port, and is not sent upstream");
    http_fwd_plan_clear(&p);
    s_plan(srv,
           "GET /sandboxes/" SB "/ports/80/a HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: nope"
           "\r\n\r\n",
           &p);
    CB_OK(p.is_forward && p.status == 401, "a wrong X-API-Key: 401");
    http_fwd_plan_clear(&p);

    http_server_destroy(&srv);
    zloop_destroy(&loop);
    return cb_tap_done();
}
