/* test_proxy.c: the egress proxy over real sockets, on loopback only.
 *
 * The test first moves into a mount namespace of its own (unshare, / made private) and binds
 * files over /etc/hosts, /etc/resolv.conf and /etc/nsswitch.conf there (and hides nscd's socket):
 * the names it asks for (api.test, meta.test, both.test...) resolve from that hosts file, and a
 * name it does not list is asked of a DNS server at 127.0.0.1, where nothing listens, so no
 * query ever leaves the machine. It does this before any thread starts, in its own process (the
 * same as re-executing itself there). Then it runs an echo server and a one-shot HTTP server on
 * loopback and drives the proxy as sandboxes would: CONNECT, plain HTTP, SOCKS5, garbage, slow
 * and many clients, limits, questions, forwards, removal; and compares the proxy's stats and
 * records with what it did.
 *
 * Every wait has a deadline (sockets have a receive timeout, events are polled with one); no
 * check depends on how fast anything is. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cb/tap.h"
#include "cb/util.h"
#include "egress/egress.h"

static uint16_t s_echo_port, s_echo6_port, s_http_port, s_closed_port;
static pthread_mutex_t s_http_mu = PTHREAD_MUTEX_INITIALIZER;
static char s_http_seen[4096]; /* the last request head the HTTP server got */

/* ---- loopback servers ---- */

static int s_listen(int family, uint16_t *port)
{
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_storage ss = {0};
    socklen_t len;
    if (family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = sizeof *a;
    } else {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_addr = in6addr_loopback;
        len = sizeof *a;
    }
    if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 4096) < 0) {
        close(fd);
        return -1;
    }
    getsockname(fd, (struct sockaddr *)&ss, &len);
    *port = ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                    : ((struct sockaddr_in6 *)&ss)->sin6_port);
    return fd;
}

static void *s_echo_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[65536];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0)
        if (send(fd, buf, (size_t)n, MSG_NOSIGNAL) != n)
            break;
    shutdown(fd, SHUT_WR); /* half-close passed back */
    while (read(fd, buf, sizeof buf) > 0) {
    }
    close(fd);
    return NULL;
}

static void *s_http_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[4096];
    size_t len = 0;
    while (len < sizeof buf - 1) {
        ssize_t n = read(fd, buf + len, sizeof buf - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
        buf[len] = '\0';
        if (strstr(buf, "\r\n\r\n"))
            break;
    }
    buf[len] = '\0';
    pthread_mutex_lock(&s_http_mu);
    snprintf(s_http_seen, sizeof s_http_seen, "%s", buf);
    pthread_mutex_unlock(&s_http_mu);
    static const char r[] = "HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello";
    if (send(fd, r, sizeof r - 1, MSG_NOSIGNAL) < 0) {
    }
    close(fd);
    return NULL;
}

typedef struct {
    int fd;
    void *(*fn)(void *);
} s_server_t;

static void *s_server(void *arg)
{
    s_server_t *s = arg;
    for (;;) {
        int c = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return NULL;
        }
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&attr, 256 * 1024);
        if (pthread_create(&t, &attr, s->fn, (void *)(intptr_t)c) != 0)
            close(c);
        pthread_attr_destroy(&attr);
    }
}

static void s_serve(int fd, void *(*fn)(void *))
{
    s_server_t *s = malloc(sizeof *s);
    s->fd = fd;
    s->fn = fn;
    pthread_t t;
    pthread_create(&t, NULL, s_server, s);
    pthread_detach(t);
}

/* ---- clients ---- */

static int s_connect(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static bool s_send(int fd, const void *data, size_t len)
{
    return send(fd, data, len, MSG_NOSIGNAL) == (ssize_t)len;
}

static bool s_sends(int fd, const char *s) { return s_send(fd, s, strlen(s)); }

/* Read until the head ends ("\r\n\r\n"), EOF or the timeout; NUL-terminated. */
static size_t s_read_head(int fd, char *buf, size_t cap)
{
    size_t len = 0;
    buf[0] = '\0';
    while (len < cap - 1) {
        ssize_t n = read(fd, buf + len, 1);
        if (n <= 0)
            break;
        len++;
        buf[len] = '\0';
        if (len >= 4 && memcmp(buf + len - 4, "\r\n\r\n", 4) == 0)
            break;
    }
    return len;
}

/* Read until EOF (or the timeout); NUL-terminated. Returns the length, or -1 on a timeout. */
static ssize_t s_read_all(int fd, char *buf, size_t cap)
{
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n == 0 || (n < 0 && errno == ECONNRESET))
            break;
        if (n < 0) {
            buf[len] = '\0';
            return -1;
        }
        len += (size_t)n;
        if (len == cap - 1)
            break;
    }
    buf[len] = '\0';
    return (ssize_t)len;
}

static bool s_read_n(int fd, void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, (char *)buf + got, n - got);
        if (r <= 0)
            return false;
        got += (size_t)r;
    }
    return true;
}

/* CONNECT through the proxy; returns the fd when the answer is 200, else -1 and the answer. */
static int s_tunnel(uint16_t proxy, const char *target, char *answer, size_t cap)
{
    int fd = s_connect(proxy);
    char req[512];
    snprintf(req, sizeof req, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target);
    if (fd < 0 || !s_sends(fd, req)) {
        snprintf(answer, cap, "cannot talk to the proxy");
        if (fd >= 0)
            close(fd);
        return -1;
    }
    s_read_head(fd, answer, cap);
    if (strncmp(answer, "HTTP/1.1 200 ", 13) == 0)
        return fd;
    size_t len = strlen(answer);
    s_read_all(fd, answer + len, cap - len); /* the body says why */
    close(fd);
    return -1;
}

/* The echo round trip through an open tunnel, and the half-close passed both ways. */
static bool s_echo_ok(int fd)
{
    char buf[16];
    if (!s_sends(fd, "ping") || !s_read_n(fd, buf, 4) || memcmp(buf, "ping", 4) != 0)
        return false;
    shutdown(fd, SHUT_WR);
    return read(fd, buf, sizeof buf) == 0;
}

/* ---- the proxy under test ---- */

static egress_t *s_eg;

static egress_sandbox_t *s_sandbox(const char *id, const char *policy, uint16_t *port)
{
    cb_error_t err = {0};
    egress_policy_t *p = egress_policy_from_string(policy, &err);
    if (!p) {
        CB_DIAG("policy '%s': %s", policy, err.msg);
        return NULL;
    }
    int lfd = s_listen(AF_INET, port);
    egress_sandbox_t *sb = egress_sandbox_add(s_eg, id, lfd, p, &err);
    egress_policy_destroy(&p);
    if (!sb)
        CB_DIAG("sandbox %s: %s", id, err.msg);
    return sb;
}

/* The next event (waiting up to ms), or false. */
static bool s_next_event(egress_event_t *ev, int ms)
{
    int64_t end = cb_now_ms() + ms;
    for (;;) {
        if (egress_next_event(s_eg, ev))
            return true;
        int64_t left = end - cb_now_ms();
        if (left <= 0)
            return false;
        struct pollfd pfd = {.fd = egress_event_fd(s_eg), .events = POLLIN};
        poll(&pfd, 1, (int)left);
    }
}

/* The next event of the type, skipping others. */
static bool s_wait_event(egress_event_type_t type, const char *needle, egress_event_t *ev)
{
    while (s_next_event(ev, 3000))
        if (ev->type == type && (!needle || strstr(ev->text, needle)))
            return true;
    return false;
}

static bool s_wait_open(egress_sandbox_t *sb, unsigned open)
{
    int64_t end = cb_now_ms() + 5000;
    egress_stats_t st;
    do {
        egress_sandbox_stats(sb, &st);
        if (st.open == open)
            return true;
        usleep(10000);
    } while (cb_now_ms() < end);
    CB_DIAG("open: %u, wanted %u", st.open, open);
    return false;
}

/* ---- the tests ---- */

/* Record i has this protocol and verdict. */
static bool s_rec_is(const json_t *recs, size_t i, const char *protocol, bool allowed)
{
    const json_t *r = json_array_get(recs, i);
    const char *p = json_string_value(json_object_get(r, "protocol"));
    return p && strcmp(p, protocol) == 0 && json_is_true(json_object_get(r, "allowed")) == allowed;
}

static void test_connect_and_http(void)
{
    char pol[256], target[64], answer[2048];
    uint16_t port;
    snprintf(pol, sizeof pol, "allow=127.0.0.1:%u,127.0.0.1:%u", s_echo_port, s_http_port);
    egress_sandbox_t *sb = s_sandbox("plain", pol, &port);

    snprintf(target, sizeof target, "127.0.0.1:%u", s_echo_port);
    int fd = s_tunnel(port, target, answer, sizeof answer);
    CB_OK(fd >= 0, "CONNECT to an allowed loopback address: 200 (%s)", fd < 0 ? answer : "");
    CB_OK(fd >= 0 && s_echo_ok(fd), "bytes both ways, half-close passed on");
    if (fd >= 0)
        close(fd);

    fd = s_connect(port);
    char req[512];
    snprintf(req, sizeof req,
             "GET http://127.0.0.1:%u/x?y=1 HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nProxy-Authorization: "
             "Basic c2VjcmV0\r\nProxy-Connection: keep-alive\r\nAccept: */*\r\n\r\n",
             s_http_port, s_http_port);
    s_sends(fd, req);
    s_read_all(fd, answer, sizeof answer);
    close(fd);
    CB_OK(strstr(answer, "200 OK") && strstr(answer, "hello"), "plain HTTP: the answer comes back");
    pthread_mutex_lock(&s_http_mu);
    CB_OK(strncmp(s_http_seen, "GET /x?y=1 HTTP/1.1\r\n", 21) == 0,
          "plain HTTP: forwarded in origin form");
    CB_OK(!strstr(s_http_seen, "Proxy-") && !strstr(s_http_seen, "c2VjcmV0"),
          "plain HTTP: Proxy-* headers removed");
    CB_OK(strstr(s_http_seen, "Connection: close\r\n") && strstr(s_http_seen, "Accept: */*"),
          "plain HTTP: Connection: close forced, other headers kept");
    pthread_mutex_unlock(&s_http_mu);

    /* HTTP to a port not in the list */
    fd = s_connect(port);
    snprintf(req, sizeof req, "GET http://127.0.0.1:%u/ HTTP/1.1\r\n\r\n", s_closed_port);
    s_sends(fd, req);
    s_read_all(fd, answer, sizeof answer);
    close(fd);
    CB_OK(strstr(answer, "403 Forbidden") && strstr(answer, "network policy"),
          "plain HTTP to another port: 403");
    CB_OK(s_wait_open(sb, 0), "all three closed");
    json_t *recs = egress_sandbox_connections(sb, 0);
    CB_OK(json_array_size(recs) == 3 && s_rec_is(recs, 0, "connect", true) &&
              s_rec_is(recs, 1, "http", true) && s_rec_is(recs, 2, "http", false),
          "records: connect, http, http refused");
    json_decref(recs);
    egress_sandbox_remove(s_eg, &sb);
}

static void test_names_and_classes(void)
{
    char pol[256], target[64], answer[2048];
    uint16_t p1, p2, p3;
    egress_sandbox_t *wild = s_sandbox("wild", "allow=*.test;deny=bad.test", &p1);
    snprintf(pol, sizeof pol, "allow=*.test,127.0.0.1:%u;deny=bad.test", s_echo_port);
    egress_sandbox_t *both = s_sandbox("both", pol, &p2);
    egress_sandbox_t *all = s_sandbox("all", "all", &p3);

    snprintf(target, sizeof target, "api.test:%u", s_echo_port);
    int fd = s_tunnel(p1, target, answer, sizeof answer);
    CB_OK(fd < 0 && strstr(answer, "403 Forbidden") &&
              strstr(answer, "api.test resolves to 127.0.0.1, a loopback address"),
          "a listed name resolving to loopback: 403 naming the class");
    egress_event_t ev;
    CB_OK(s_wait_event(EGRESS_EVENT_LOG, "api.test", &ev) && strcmp(ev.sandbox_id, "wild") == 0,
          "a LOG event for the refusal: %s", ev.text);

    fd = s_tunnel(p2, target, answer, sizeof answer);
    CB_OK(fd >= 0 && s_echo_ok(fd), "with the explicit address entry: through");
    if (fd >= 0)
        close(fd);

    snprintf(target, sizeof target, "both.test:%u", s_echo_port);
    fd = s_tunnel(p2, target, answer, sizeof answer);
    CB_OK(fd >= 0 && s_echo_ok(fd),
          "a name with a loopback and a documentation address: only the allowed one is used");
    if (fd >= 0)
        close(fd);

    snprintf(target, sizeof target, "meta.test:80");
    fd = s_tunnel(p1, target, answer, sizeof answer);
    CB_OK(fd < 0 && strstr(answer, "403") && strstr(answer, "metadata"),
          "a name resolving to the metadata address: refused");

    snprintf(target, sizeof target, "[::ffff:127.0.0.1]:%u", s_echo_port);
    fd = s_tunnel(p3, target, answer, sizeof answer);
    CB_OK(fd < 0 && strstr(answer, "403") && strstr(answer, "loopback"),
          "::ffff:127.0.0.1 under \"all\": refused as loopback");

    snprintf(target, sizeof target, "bad.test:%u", s_echo_port);
    fd = s_tunnel(p2, target, answer, sizeof answer);
    CB_OK(fd < 0 && strstr(answer, "403") && strstr(answer, "deny list"), "deny beats *.test");

    snprintf(target, sizeof target, "elsewhere.example:%u", s_echo_port);
    fd = s_tunnel(p1, target, answer, sizeof answer);
    CB_OK(fd < 0 && strstr(answer, "cellblock: elsewhere.example:") &&
              strstr(answer, "refused by this sandbox's network policy: ") &&
              strstr(answer, "not in the sandbox's allow list"),
          "a name not in the list: the refusal says so");

    snprintf(target, sizeof target, "nosuch.test:%u", s_echo_port);
    fd = s_tunnel(p1, target, answer, sizeof answer);
    CB_OK(fd < 0 && strstr(answer, "502") && strstr(answer, "cannot resolve nosuch.test"),
          "an allowed name that does not resolve: 502");

    egress_sandbox_remove(s_eg, &wild);
    egress_sandbox_remove(s_eg, &both);
    egress_sandbox_remove(s_eg, &all);
}

/* A SOCKS5 CONNECT; returns the reply code (or -1) and leaves the fd open on success. */
static int s_socks(uint16_t proxy, const uint8_t *req, size_t len, int *fd_out)
{
    int fd = s_connect(proxy);
    uint8_t r[32];
    *fd_out = -1;
    if (fd < 0 || !s_send(fd, "\x05\x01\x00", 3) || !s_read_n(fd, r, 2) || r[0] != 5 || r[1] != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    if (!s_send(fd, req, len) || !s_read_n(fd, r, 4)) {
        close(fd);
        return -1;
    }
    size_t rest = r[3] == 4 ? 18 : 6;
    uint8_t more[18];
    if (!s_read_n(fd, more, rest)) {
        close(fd);
        return -1;
    }
    if (r[1] == 0)
        *fd_out = fd;
    else
        close(fd);
    return r[1];
}

static void test_socks(void)
{
    char pol[256];
    uint16_t port;
    snprintf(pol, sizeof pol, "allow=*.test,127.0.0.1:%u,[::1]:%u,127.0.0.1:%u", s_echo_port,
             s_echo6_port, s_closed_port);
    egress_sandbox_t *sb = s_sandbox("socks", pol, &port);
    uint8_t req[300];
    int fd;

    size_t n = 0;
    memcpy(req,
           "\x05\x01\x00\x03\x08"
           "api.test",
           13);
    n = 13;
    req[n++] = (uint8_t)(s_echo_port >> 8);
    req[n++] = (uint8_t)s_echo_port;
    CB_EQ_INT(s_socks(port, req, n, &fd), 0, "SOCKS5 domain: granted");
    CB_OK(fd >= 0 && s_echo_ok(fd), "SOCKS5 domain: bytes both ways");
    if (fd >= 0)
        close(fd);
    json_t *recs = egress_sandbox_connections(sb, 0);
    CB_OK(s_rec_is(recs, 0, "socks5", true) &&
              strcmp(json_string_value(json_object_get(json_array_get(recs, 0), "host")),
                     "api.test") == 0,
          "records: socks5, with the domain asked for");
    json_decref(recs);

    uint8_t v4[10] = {5, 1, 0, 1, 127, 0, 0, 1, (uint8_t)(s_echo_port >> 8), (uint8_t)s_echo_port};
    CB_EQ_INT(s_socks(port, v4, sizeof v4, &fd), 0, "SOCKS5 IPv4: granted");
    CB_OK(fd >= 0 && s_echo_ok(fd), "SOCKS5 IPv4: bytes both ways");
    if (fd >= 0)
        close(fd);

    if (s_echo6_port) {
        uint8_t v6[22] = {
            5, 1, 0, 4, [19] = 1, (uint8_t)(s_echo6_port >> 8), (uint8_t)s_echo6_port};
        CB_EQ_INT(s_socks(port, v6, sizeof v6, &fd), 0, "SOCKS5 IPv6 [::1]: granted");
        CB_OK(fd >= 0 && s_echo_ok(fd), "SOCKS5 IPv6: bytes both ways");
        if (fd >= 0)
            close(fd);
    }
    uint8_t mapped[22] = {5, 1, 0, 4, [14] = 0xff, 0xff, 169, 254, 169, 254, 0, 80};
    CB_EQ_INT(s_socks(port, mapped, sizeof mapped, &fd), 0x02,
              "SOCKS5 ::ffff:169.254.169.254: 0x02 not allowed by ruleset");
    memcpy(req + 5, "meta", 4);
    CB_EQ_INT(s_socks(port, (const uint8_t *)"\x05\x01\x00\x03\x09meta.test\x00\x50", 16, &fd),
              0x02, "SOCKS5 metadata name: 0x02");
    uint8_t closed[10] = {
        5, 1, 0, 1, 127, 0, 0, 1, (uint8_t)(s_closed_port >> 8), (uint8_t)s_closed_port};
    CB_EQ_INT(s_socks(port, closed, sizeof closed, &fd), 0x05, "SOCKS5 refused port: 0x05");
    CB_EQ_INT(s_socks(port, (const uint8_t *)"\x05\x01\x00\x03\x0bnosuch.test\x00\x50", 18, &fd),
              0x04, "SOCKS5 unresolvable name: 0x04");
    uint8_t bind[10] = {5, 2, 0, 1, 127, 0, 0, 1, 0, 80};
    CB_EQ_INT(s_socks(port, bind, sizeof bind, &fd), 0x07, "SOCKS5 BIND: 0x07");
    uint8_t atyp[10] = {5, 1, 0, 7, 127, 0, 0, 1, 0, 80};
    CB_EQ_INT(s_socks(port, atyp, sizeof atyp, &fd), 0x08, "SOCKS5 unknown ATYP: 0x08");

    /* greeting and a refused request in one write: both replies, in order */
    fd = s_connect(port);
    uint8_t both[15] = {5, 1, 0, 5, 1, 0, 1, 169, 254, 169, 254, 0, 80};
    uint8_t rr[12] = {0};
    s_send(fd, both, 13);
    CB_OK(s_read_n(fd, rr, 12) && rr[0] == 5 && rr[1] == 0 && rr[2] == 5 && rr[3] == 0x02,
          "SOCKS5 greeting and request at once: method reply, then 0x02");
    close(fd);

    fd = s_connect(port);
    uint8_t r[2] = {0};
    s_send(fd, "\x05\x01\x02", 3); /* user/password only */
    CB_OK(s_read_n(fd, r, 2) && r[0] == 5 && r[1] == 0xff, "SOCKS5 without no-auth: 0xFF");
    close(fd);
    egress_sandbox_remove(s_eg, &sb);
}

static void test_garbage(void)
{
    char pol[128], answer[4096], target[64];
    uint16_t port;
    snprintf(pol, sizeof pol, "allow=127.0.0.1:%u", s_echo_port);
    egress_sandbox_t *sb = s_sandbox("garbage", pol, &port);
    static const char *const bad[] = {
        "HELLO\r\n\r\n",
        "CONNECT api.test HTTP/1.1\r\n\r\n",
        "CONNECT :443 HTTP/1.1\r\n\r\n",
        "GET /relative HTTP/1.1\r\nHost: x\r\n\r\n",
        "\x16\x03\x01\x00\xa5\x01\x00\x00",
        "GET http://a.test/ HTTP/2.0\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int fd = s_connect(port);
        s_sends(fd, bad[i]);
        ssize_t n = s_read_all(fd, answer, sizeof answer);
        close(fd);
        CB_OK(n > 0 && strstr(answer, "400 Bad Request") && strstr(answer, "CONNECT host:port"),
              "garbage %zu: 400 saying what the proxy accepts", i);
    }
    /* a head over 16 KiB */
    int fd = s_connect(port);
    static char big[20000];
    memset(big, 'a', sizeof big);
    memcpy(big, "GET http://a.test/ HTTP/1.1\r\nX-Big: ", 36);
    s_send(fd, big, sizeof big);
    s_read_all(fd, answer, sizeof answer);
    close(fd);
    CB_OK(strstr(answer, "431") != NULL, "a head over 16 KiB: 431");
    /* a head trickled in one byte at a time still gets its answer */
    fd = s_connect(port);
    const char *slow = "CONNECT 127.0.0.1:1 HTTP/1.1\r\nX-A: b\r\n\r\n";
    bool sent = true;
    for (const char *p = slow; *p && sent; p++) {
        sent = s_send(fd, p, 1);
        usleep(100); /* separate reads, often; the answer does not depend on it */
    }
    s_read_all(fd, answer, sizeof answer);
    close(fd);
    CB_OK(sent && strstr(answer, "403 Forbidden"), "a head sent byte by byte: answered (403)");
    /* blank lines before the request: refused, never parsed again and again */
    fd = s_connect(port);
    s_sends(fd, "\r\n");
    usleep(1000);
    s_sends(fd, "\r\n\r\n\r\n");
    s_read_all(fd, answer, sizeof answer);
    close(fd);
    CB_OK(strstr(answer, "400 Bad Request") != NULL, "leading blank lines: 400");
    /* truncated, then gone */
    fd = s_connect(port);
    s_sends(fd, "CONNECT 127.0.0.1:");
    close(fd);

    snprintf(target, sizeof target, "127.0.0.1:%u", s_echo_port);
    fd = s_tunnel(port, target, answer, sizeof answer);
    CB_OK(fd >= 0 && s_echo_ok(fd), "after all that, the proxy still serves");
    if (fd >= 0)
        close(fd);
    egress_sandbox_remove(s_eg, &sb);
}

static void test_slow_client(void)
{
    char pol[128], answer[1024], target[64];
    uint16_t port;
    snprintf(pol, sizeof pol, "allow=127.0.0.1:%u", s_echo_port);
    egress_sandbox_t *sb = s_sandbox("slow", pol, &port);
    int slow = s_connect(port);
    s_sends(slow, "C");
    snprintf(target, sizeof target, "127.0.0.1:%u", s_echo_port);
    int fd = s_tunnel(port, target, answer, sizeof answer);
    CB_OK(fd >= 0 && s_echo_ok(fd), "another client is served while one is silent");
    if (fd >= 0)
        close(fd);
    ssize_t n = s_read_all(slow, answer, sizeof answer); /* 5 s receive timeout: -1 */
    CB_OK(n >= 0, "the silent client is closed (head timeout)");
    close(slow);
    egress_sandbox_remove(s_eg, &sb);
}

static void test_many(void)
{
    enum { N = 1000, MAX = 20 };
    char pol[128], answer[1024], target[64];
    uint16_t port, port2;
    snprintf(pol, sizeof pol, "allow=127.0.0.1:%u;max_connections=%d", s_echo_port, MAX);
    egress_sandbox_t *sb = s_sandbox("many", pol, &port);
    snprintf(pol, sizeof pol, "allow=127.0.0.1:%u", s_echo_port);
    egress_sandbox_t *other = s_sandbox("other", pol, &port2);
    static int fds[N];
    snprintf(target, sizeof target, "127.0.0.1:%u", s_echo_port);
    char req[128];
    snprintf(req, sizeof req, "CONNECT %s HTTP/1.1\r\n\r\n", target);
    int opened = 0;
    for (int i = 0; i < N; i++) {
        fds[i] = s_connect(port);
        if (fds[i] >= 0 && s_sends(fds[i], req))
            opened++;
    }
    CB_EQ_INT(opened, N, "1,000 connections opened and asked");
    int fd = s_tunnel(port2, target, answer, sizeof answer);
    CB_OK(fd >= 0 && s_echo_ok(fd), "another sandbox is served meanwhile");
    if (fd >= 0)
        close(fd);
    int ok = 0, limited = 0, closed = 0;
    for (int i = 0; i < N; i++) {
        s_read_head(fds[i], answer, sizeof answer);
        if (strncmp(answer, "HTTP/1.1 200 ", 13) == 0) {
            ok++;
            continue;
        }
        if (strstr(answer, "503"))
            limited++;
        else if (answer[0] == '\0')
            closed++;
        close(fds[i]);
        fds[i] = -1;
    }
    CB_EQ_INT(ok, MAX, "exactly the limit got through");
    CB_EQ_INT(limited + closed, N - MAX, "the rest were answered 503 or closed");
    CB_OK(limited > 0, "some extras got a 503 saying why (%d)", limited);
    CB_OK(s_wait_open(sb, MAX), "open: the limit");
    egress_stats_t st;
    egress_sandbox_stats(sb, &st);
    CB_EQ_INT(st.connections, N, "stats: connections");
    CB_EQ_INT(st.allowed, MAX, "stats: allowed");
    CB_EQ_INT(st.denied, N - MAX, "stats: denied");
    for (int i = 0; i < N; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    CB_OK(s_wait_open(sb, 0), "all closed: open 0");
    egress_sandbox_remove(s_eg, &sb);
    egress_sandbox_remove(s_eg, &other);
}

static void test_byte_limit(void)
{
    char pol[128], answer[1024], target[64];
    uint16_t port;
    snprintf(pol, sizeof pol, "allow=127.0.0.1:%u;max_bytes=100000", s_echo_port);
    egress_sandbox_t *sb = s_sandbox("bytes", pol, &port);
    snprintf(target, sizeof target, "127.0.0.1:%u", s_echo_port);
    int fd = s_tunnel(port, target, answer, sizeof answer);
    CB_OK(fd >= 0, "byte limit: tunnel open");
    static char chunk[16384];
    memset(chunk, 'x', sizeof chunk);
    size_t echoed = 0;
    bool ended = false;
    for (int i = 0; fd >= 0 && i < 40 && !ended; i++) {
        if (!s_send(fd, chunk, sizeof chunk)) {
            ended = true;
            break;
        }
        size_t got = 0;
        while (got < sizeof chunk) {
            ssize_t n = read(fd, chunk, sizeof chunk - got);
            if (n <= 0) {
                ended = n == 0 || errno == ECONNRESET || errno == EPIPE;
                break;
            }
            got += (size_t)n;
        }
        echoed += got;
    }
    CB_OK(ended && echoed <= 100000, "byte limit: the connection was closed (%zu echoed)", echoed);
    egress_stats_t st;
    egress_sandbox_stats(sb, &st);
    CB_OK(st.bytes_in + st.bytes_out == 100001, "byte limit: crossed by one byte, no more (%llu)",
          (unsigned long long)(st.bytes_in + st.bytes_out));
    egress_event_t ev;
    CB_OK(s_wait_event(EGRESS_EVENT_LOG, "byte limit", &ev), "byte limit: a LOG event says so");
    if (fd >= 0)
        close(fd);
    fd = s_tunnel(port, target, answer, sizeof answer);
    CB_OK(fd < 0 && strstr(answer, "byte limit"), "byte limit: new connections refused");
    egress_sandbox_remove(s_eg, &sb);
}

static void test_ask(void)
{
    char pol[128], answer[1024], target[64];
    uint16_t port;
    snprintf(pol, sizeof pol, "ask=1;allow=127.0.0.1:%u", s_echo_port);
    egress_sandbox_t *sb = s_sandbox("asker", pol, &port);
    egress_event_t ev;
    while (egress_next_event(s_eg, &ev)) {
    }

    /* yes, remembered */
    snprintf(target, sizeof target, "api.test:%u", s_echo_port);
    int fd = s_connect(port);
    char req[128];
    snprintf(req, sizeof req, "CONNECT %s HTTP/1.1\r\n\r\n", target);
    s_sends(fd, req);
    CB_OK(s_wait_event(EGRESS_EVENT_ASK, NULL, &ev) && strcmp(ev.host, "api.test") == 0 &&
              ev.port == s_echo_port && strcmp(ev.sandbox_id, "asker") == 0,
          "ask: an ASK event with host and port");
    egress_answer(s_eg, ev.ask_id, true, true);
    s_read_head(fd, answer, sizeof answer);
    CB_OK(strncmp(answer, "HTTP/1.1 200", 12) == 0 && s_echo_ok(fd), "ask: yes lets it through");
    close(fd);
    fd = s_tunnel(port, target, answer, sizeof answer);
    CB_OK(fd >= 0, "ask: remembered, the next one goes through");
    CB_OK(!egress_next_event(s_eg, &ev) || ev.type != EGRESS_EVENT_ASK, "ask: without a question");
    if (fd >= 0)
        close(fd);
    egress_answer(s_eg, 999999, true, true); /* unknown: ignored */

    /* no */
    fd = s_connect(port);
    s_sends(fd, "CONNECT other.example:443 HTTP/1.1\r\n\r\n");
    CB_OK(s_wait_event(EGRESS_EVENT_ASK, NULL, &ev) && strcmp(ev.host, "other.example") == 0,
          "ask: the second question");
    egress_answer(s_eg, ev.ask_id, false, false);
    s_read_all(fd, answer, sizeof answer);
    close(fd);
    CB_OK(strstr(answer, "403") && strstr(answer, "answered no"), "ask: no refuses");

    /* no answer */
    fd = s_connect(port);
    s_sends(fd, "CONNECT late.example:443 HTTP/1.1\r\n\r\n");
    CB_OK(s_wait_event(EGRESS_EVENT_ASK, NULL, &ev), "ask: the third question");
    s_read_all(fd, answer, sizeof answer);
    close(fd);
    CB_OK(strstr(answer, "403") && strstr(answer, "not answered in time"),
          "ask: unanswered is refused after ask_timeout");
    egress_answer(s_eg, ev.ask_id, true, false); /* late: ignored */
    egress_stats_t st;
    egress_sandbox_stats(sb, &st);
    CB_OK(st.allowed == 2 && st.denied == 2, "ask: stats %llu allowed, %llu denied",
          (unsigned long long)st.allowed, (unsigned long long)st.denied);
    egress_sandbox_remove(s_eg, &sb);
}

/* A connected pair of TCP sockets on loopback. */
static void s_pair(int *a, int *b)
{
    uint16_t port;
    int l = s_listen(AF_INET, &port);
    *b = s_connect(port);
    *a = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    close(l);
}

static int s_connecting(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0 && errno != EINPROGRESS) {
    }
    return fd;
}

static void test_forward(void)
{
    cb_error_t err = {0};
    egress_sandbox_t *sb = egress_sandbox_add(s_eg, "fwd", -1, NULL, &err);
    int a, b;
    char buf[256];
    s_pair(&a, &b);
    CB_OK(egress_forward(s_eg, sb, a, s_connecting(s_echo_port), "PREFIX", 6, UINT64_MAX,
                         "HTTP/1.1 502 Bad Gateway\r\n\r\n", &err) == 0,
          "forward started");
    CB_OK(s_read_n(b, buf, 6) && memcmp(buf, "PREFIX", 6) == 0, "forward: the prefix went first");
    CB_OK(s_echo_ok(b), "forward: bytes both ways, half-close passed on");
    close(b);

    s_pair(&a, &b);
    egress_forward(s_eg, sb, a, s_connecting(s_closed_port), NULL, 0, UINT64_MAX,
                   "HTTP/1.1 502 Bad Gateway\r\n\r\n", &err);
    ssize_t n = s_read_all(b, buf, sizeof buf);
    CB_OK(n > 0 && strcmp(buf, "HTTP/1.1 502 Bad Gateway\r\n\r\n") == 0,
          "forward: a failed connect writes fail_response and closes");
    close(b);

    s_pair(&a, &b);
    egress_forward(s_eg, sb, a, s_connecting(s_echo_port), "GET / HTTP/1.1\r\n\r\n", 18, 3, NULL,
                   &err);
    s_sends(b, "abcSECOND REQUEST");
    shutdown(b, SHUT_WR);
    n = s_read_all(b, buf, sizeof buf);
    CB_OK(n >= 0 && strcmp(buf, "GET / HTTP/1.1\r\n\r\nabc") == 0,
          "forward: only client_bytes_max bytes reach upstream");
    close(b);

    /* removal closes a forward too */
    s_pair(&a, &b);
    egress_forward(s_eg, sb, a, s_connecting(s_echo_port), NULL, 0, UINT64_MAX, NULL, &err);
    s_sends(b, "x");
    s_read_n(b, buf, 1);
    egress_sandbox_remove(s_eg, &sb);
    CB_OK(sb == NULL && s_read_all(b, buf, sizeof buf) == 0,
          "forward: removal of its sandbox closes it");
    close(b);
}

static void test_removal_and_records(void)
{
    char pol[128], answer[1024], target[64];
    uint16_t port;
    snprintf(pol, sizeof pol, "allow=127.0.0.1:%u", s_echo_port);
    egress_sandbox_t *sb = s_sandbox("rec", pol, &port);
    snprintf(target, sizeof target, "127.0.0.1:%u", s_echo_port);
    int fd = s_tunnel(port, target, answer, sizeof answer);
    CB_OK(fd >= 0 && s_echo_ok(fd), "records: one allowed connection");
    if (fd >= 0)
        close(fd);
    s_tunnel(port, "denied.example:443", answer, sizeof answer);
    CB_OK(s_wait_open(sb, 0), "records: both closed");
    egress_stats_t st;
    egress_sandbox_stats(sb, &st);
    CB_OK(st.connections == 2 && st.allowed == 1 && st.denied == 1 && st.bytes_out == 4 &&
              st.bytes_in == 4,
          "stats: 2 connections, 1 allowed, 1 denied, 4 bytes each way");
    json_t *recs = egress_sandbox_connections(sb, 0);
    char *text = json_dumps(recs, JSON_COMPACT);
    CB_DIAG("records: %s", text);
    free(text);
    json_t *r0 = json_array_get(recs, 0), *r1 = json_array_get(recs, 1);
    CB_OK(json_array_size(recs) == 2, "records: two");
    CB_OK(r0 && json_is_true(json_object_get(r0, "allowed")) &&
              strcmp(json_string_value(json_object_get(r0, "protocol")), "connect") == 0 &&
              strcmp(json_string_value(json_object_get(r0, "address")), "127.0.0.1") == 0 &&
              json_integer_value(json_object_get(r0, "bytes_out")) == 4 &&
              json_integer_value(json_object_get(r0, "port")) == s_echo_port &&
              json_is_false(json_object_get(r0, "open")),
          "records: the allowed one");
    CB_OK(r1 && json_is_false(json_object_get(r1, "allowed")) &&
              strcmp(json_string_value(json_object_get(r1, "host")), "denied.example") == 0 &&
              strstr(json_string_value(json_object_get(r1, "reason")), "allow list"),
          "records: the refused one, with its reason");
    json_decref(recs);
    recs = egress_sandbox_connections(sb, 1);
    CB_OK(json_array_size(recs) == 1, "records: max 1 gives the last");
    json_decref(recs);

    fd = s_tunnel(port, target, answer, sizeof answer);
    CB_OK(fd >= 0 && s_sends(fd, "a") && s_read_n(fd, answer, 1), "removal: a tunnel is open");
    egress_sandbox_remove(s_eg, &sb);
    CB_OK(s_read_all(fd, answer, sizeof answer) == 0, "removal: its connection is closed");
    close(fd);
    CB_OK(s_connect(port) < 0, "removal: its listener is closed");
}

/* Timeouts, on a second proxy with short ones: a connect that never completes (a loopback
 * listener whose accept queue is full drops the SYN) and an idle tunnel. */
static void test_timeouts(void)
{
    egress_config_t cfg = {.connect_timeout_ms = 300, .idle_timeout_ms = 300};
    cb_error_t err = {0};
    egress_t *saved = s_eg;
    s_eg = egress_new(&cfg, &err);
    CB_OK(s_eg != NULL, "a second proxy: %s", err.msg);
    if (!s_eg) {
        s_eg = saved;
        return;
    }
    uint16_t full_port, port;
    int full = s_listen(AF_INET, &full_port);
    listen(full, 0);
    int fillers[3];
    for (int i = 0; i < 3; i++) { /* the first fills the queue, the others wait in SYN-SENT */
        fillers[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_port = htons(full_port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        if (connect(fillers[i], (struct sockaddr *)&a, sizeof a) < 0) {
        }
    }
    char pol[128], target[64], answer[1024];
    snprintf(pol, sizeof pol, "allow=127.0.0.1:%u,127.0.0.1:%u", full_port, s_echo_port);
    egress_sandbox_t *sb = s_sandbox("timeouts", pol, &port);
    snprintf(target, sizeof target, "127.0.0.1:%u", full_port);
    int fd = s_tunnel(port, target, answer, sizeof answer);
    CB_OK(fd < 0 && strstr(answer, "504 Gateway Timeout") && strstr(answer, "timed out"),
          "a connect that never completes: 504 after the connect timeout");

    snprintf(target, sizeof target, "127.0.0.1:%u", s_echo_port);
    fd = s_tunnel(port, target, answer, sizeof answer);
    char buf[16];
    CB_OK(fd >= 0 && s_sends(fd, "x") && s_read_n(fd, buf, 1), "an idle tunnel: open");
    CB_OK(fd >= 0 && s_read_all(fd, answer, sizeof answer) == 0,
          "an idle tunnel: closed after the idle timeout");
    if (fd >= 0)
        close(fd);
    egress_sandbox_remove(s_eg, &sb);
    egress_destroy(&s_eg);
    s_eg = saved;
    for (int i = 0; i < 3; i++)
        close(fillers[i]);
    close(full);
}

/* Into a mount namespace whose /etc/hosts, /etc/resolv.conf and /etc/nsswitch.conf are the
 * test's: names come from that hosts file, then from a DNS server at 127.0.0.1 (none listens),
 * and from nothing else (no nss-resolve, no mDNS), so no look-up leaves the machine. */
static int s_private_names(void)
{
    if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        return -1;
    char hosts[] = "/tmp/egress-hosts-XXXXXX", resolv[] = "/tmp/egress-resolv-XXXXXX";
    char nss[] = "/tmp/egress-nss-XXXXXX";
    int h = mkstemp(hosts), r = mkstemp(resolv), ns = mkstemp(nss);
    if (h < 0 || r < 0 || ns < 0)
        return -1;
    static const char ht[] = "127.0.0.1 localhost\n127.0.0.1 api.test\n127.0.0.1 bad.test\n"
                             "169.254.169.254 meta.test\n127.0.0.1 both.test\n"
                             "192.0.2.10 both.test\n";
    static const char rt[] = "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n";
    static const char nt[] = "hosts: files dns\n";
    bool ok = write(h, ht, sizeof ht - 1) == (ssize_t)(sizeof ht - 1) &&
              write(r, rt, sizeof rt - 1) == (ssize_t)(sizeof rt - 1) &&
              write(ns, nt, sizeof nt - 1) == (ssize_t)(sizeof nt - 1);
    close(h);
    close(r);
    close(ns);
    ok = ok && mount(hosts, "/etc/hosts", NULL, MS_BIND, NULL) == 0 &&
         mount(resolv, "/etc/resolv.conf", NULL, MS_BIND, NULL) == 0 &&
         mount(nss, "/etc/nsswitch.conf", NULL, MS_BIND, NULL) == 0;
    unlink(hosts);
    unlink(resolv);
    unlink(nss);
    /* nscd would answer from the host's own configuration: hide its socket */
    if (ok && access("/var/run/nscd", F_OK) == 0)
        ok = mount("tmpfs", "/var/run/nscd", "tmpfs", 0, "size=4k") == 0;
    return ok ? 0 : -1;
}

int main(void)
{
    if (geteuid() != 0)
        CB_SKIP_ALL("needs root (a mount namespace with the test's own /etc/hosts)");
    if (s_private_names() < 0)
        CB_SKIP_ALL("cannot make a mount namespace with a private /etc/hosts: %s", strerror(errno));
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < 3000)
        CB_SKIP_ALL("needs 3,000 file descriptors, the limit is %llu",
                    (unsigned long long)rl.rlim_cur);

    int efd = s_listen(AF_INET, &s_echo_port), hfd = s_listen(AF_INET, &s_http_port);
    int e6 = s_listen(AF_INET6, &s_echo6_port);
    int cfd = s_listen(AF_INET, &s_closed_port);
    close(cfd); /* nothing listens there now */
    s_serve(efd, s_echo_conn);
    s_serve(hfd, s_http_conn);
    if (e6 >= 0)
        s_serve(e6, s_echo_conn);
    else
        s_echo6_port = 0;

    egress_config_t cfg = {.connect_timeout_ms = 2000,
                           .idle_timeout_ms = 5000,
                           .head_timeout_ms = 500,
                           .ask_timeout_ms = 500};
    cb_error_t err = {0};
    s_eg = egress_new(&cfg, &err);
    CB_OK(s_eg != NULL, "proxy started: %s", err.msg);
    if (!s_eg)
        return cb_tap_done();
    test_connect_and_http();
    test_names_and_classes();
    test_socks();
    test_garbage();
    test_slow_client();
    test_many();
    test_byte_limit();
    test_ask();
    test_forward();
    test_removal_and_records();
    test_timeouts();
    egress_destroy(&s_eg);
    CB_OK(s_eg == NULL, "destroyed");
    return cb_tap_done();
}
