/* test_policy.c: the policy's verdicts and the two request parsers, without sockets.
 *
 * Each promise of docs/network.md's "Policy" section is tried here with the inputs that would
 * break it: names in other cases and with a trailing dot, wildcards against their own apex,
 * deny against allow, ports, every refused address class (and the same addresses hidden in
 * IPv6 forms), bad specs of every kind naming the bad entry, the presets and E2B's keys. */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "cb/tap.h"
#include "egress_private.h"

static egress_policy_t *s_pol(const char *json)
{
    json_error_t je;
    json_t *spec = json_loads(json, JSON_DECODE_ANY, &je);
    cb_error_t err = {0};
    egress_policy_t *p = spec ? egress_policy_from_json(spec, &err) : NULL;
    if (!p)
        CB_DIAG("policy %s: %s", json, spec ? err.msg : je.text);
    json_decref(spec);
    return p;
}

/* The verdict for an address given as text (port 443). */
static egress_verdict_t s_addr(const egress_policy_t *p, const char *text, uint16_t port, char *why,
                               size_t why_size)
{
    struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_port = htons(port)};
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_port = htons(port)};
    if (inet_pton(AF_INET, text, &a4.sin_addr) == 1)
        return egress_policy_check_address(p, &a4, why, why_size);
    if (inet_pton(AF_INET6, text, &a6.sin6_addr) == 1)
        return egress_policy_check_address(p, &a6, why, why_size);
    return (egress_verdict_t)-1;
}

static void s_bad(const char *json, const char *needle)
{
    json_t *spec = json_loads(json, JSON_DECODE_ANY, NULL);
    cb_error_t err = {0};
    egress_policy_t *p = egress_policy_from_json(spec, &err);
    char name[300];
    snprintf(name, sizeof name, "refused: %.200s", json);
    CB_OK(!p && err.kind == CB_ERR_INVALID && strstr(err.msg, needle), "%s", name);
    if (p || !strstr(err.msg, needle))
        CB_DIAG("message: %s (wanted '%s')", err.msg, needle);
    egress_policy_destroy(&p);
    json_decref(spec);
}

static void test_names(void)
{
    egress_policy_t *p = s_pol("{\"allow\": [\"Example.COM\", \"*.x.com\", \"only443.org:443\", "
                               "\"*.test\"], \"deny\": [\"bad.test\", \"*.evil.x.com\"]}");
    char why[256];
    CB_EQ_INT(egress_policy_check_name(p, "example.com", 80, NULL, 0), EGRESS_ALLOW, "exact name");
    CB_EQ_INT(egress_policy_check_name(p, "EXAMPLE.com.", 80, NULL, 0), EGRESS_ALLOW,
              "case and trailing dot ignored");
    CB_EQ_INT(egress_policy_check_name(p, "www.example.com", 80, NULL, 0), EGRESS_DENY,
              "a name does not cover its subdomains");
    CB_EQ_INT(egress_policy_check_name(p, "a.x.com", 80, NULL, 0), EGRESS_ALLOW,
              "*.x.com: a.x.com");
    CB_EQ_INT(egress_policy_check_name(p, "a.b.x.com", 80, NULL, 0), EGRESS_ALLOW,
              "*.x.com: a.b.x.com");
    CB_EQ_INT(egress_policy_check_name(p, "x.com", 80, NULL, 0), EGRESS_DENY,
              "*.x.com does not cover x.com");
    CB_EQ_INT(egress_policy_check_name(p, "ax.com", 80, NULL, 0), EGRESS_DENY,
              "*.x.com does not cover ax.com");
    CB_EQ_INT(egress_policy_check_name(p, "only443.org", 443, NULL, 0), EGRESS_ALLOW,
              "entry with a port: that port");
    CB_EQ_INT(egress_policy_check_name(p, "only443.org", 80, why, sizeof why), EGRESS_DENY,
              "entry with a port: not another");
    CB_OK(strstr(why, "only443.org:80 is not in the sandbox's allow list") != NULL,
          "why names host, port and the list: %s", why);
    CB_EQ_INT(egress_policy_check_name(p, "bad.test", 80, why, sizeof why), EGRESS_DENY,
              "deny beats *.test");
    CB_OK(strstr(why, "deny list") && strstr(why, "bad.test"), "why names the deny entry: %s", why);
    CB_EQ_INT(egress_policy_check_name(p, "BAD.TEST.", 80, NULL, 0), EGRESS_DENY,
              "deny matches case-insensitively");
    CB_EQ_INT(egress_policy_check_name(p, "a.evil.x.com", 80, NULL, 0), EGRESS_DENY,
              "deny wildcard beats allow wildcard");
    CB_EQ_INT(egress_policy_check_name(p, "a..x.com", 80, NULL, 0), EGRESS_DENY,
              "empty label refused");
    CB_EQ_INT(egress_policy_check_name(p, "a x.com", 80, NULL, 0), EGRESS_DENY,
              "space in a name refused");
    CB_EQ_INT(egress_policy_check_name(p, "93.184.216.34", 80, NULL, 0), EGRESS_DENY,
              "an address is not covered by name entries");
    egress_policy_destroy(&p);

    p = s_pol("\"all\"");
    CB_EQ_INT(egress_policy_check_name(p, "anything.example", 443, NULL, 0), EGRESS_ALLOW,
              "all: names");
    CB_EQ_INT(egress_policy_check_name(p, "1.1.1.1", 443, NULL, 0), EGRESS_ALLOW, "all: literals");
    CB_EQ_INT(s_addr(p, "1.1.1.1", 443, NULL, 0), EGRESS_ALLOW, "all: a public address");
    CB_EQ_INT(s_addr(p, "127.0.0.1", 443, why, sizeof why), EGRESS_DENY,
              "all: loopback still refused");
    CB_OK(strstr(why, "a loopback address") != NULL, "why names the class: %s", why);
    egress_policy_destroy(&p);

    p = s_pol("\"none\"");
    CB_OK(egress_policy_is_none(p), "none is none");
    CB_EQ_INT(egress_policy_check_name(p, "example.com", 443, NULL, 0), EGRESS_DENY,
              "none: nothing");
    egress_policy_destroy(&p);

    p = s_pol("\"ask\"");
    CB_OK(!egress_policy_is_none(p), "ask is not none");
    CB_EQ_INT(egress_policy_check_name(p, "example.com", 443, NULL, 0), EGRESS_ASK,
              "ask: an unknown name asks");
    egress_policy_destroy(&p);
}

static void test_classes(void)
{
    egress_policy_t *p = s_pol("{\"allow\": [\"*\"]}");
    static const char *const refused[] = {
        "127.0.0.1",
        "127.255.0.1",
        "0.0.0.0",
        "0.1.2.3",
        "10.1.2.3",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.1.1",
        "100.64.0.1",
        "100.127.255.254",
        "169.254.1.1",
        "169.254.169.254",
        "224.0.0.1",
        "239.255.255.250",
        "255.255.255.255",
        "::1",
        "::",
        "fc00::1",
        "fd12:3456::1",
        "fe80::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "::127.0.0.1",
        "64:ff9b::7f00:1",
        "64:ff9b::a9fe:a9fe",
        "fd00:ec2::254",
        "2002:7f00:1::",
        "192.0.2.1",
        "2001:db8::1",
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        char name[128];
        snprintf(name, sizeof name, "refused under \"*\": %s", refused[i]);
        CB_EQ_INT(s_addr(p, refused[i], 443, NULL, 0), EGRESS_DENY, name);
    }
    static const char *const public[] = {"1.1.1.1",         "8.8.8.8",         "172.32.0.1",
                                         "100.128.0.1",     "2606:4700::1111", "::ffff:8.8.8.8",
                                         "64:ff9b::808:808"};
    for (size_t i = 0; i < sizeof public / sizeof public[0]; i++) {
        char name[128];
        snprintf(name, sizeof name, "public: %s", public[i]);
        CB_EQ_INT(s_addr(p, public[i], 443, NULL, 0), EGRESS_ALLOW, name);
    }
    char why[256];
    s_addr(p, "::ffff:127.0.0.1", 443, why, sizeof why);
    CB_OK(strstr(why, "127.0.0.1") && strstr(why, "loopback"),
          "a mapped address is judged as its IPv4 one: %s", why);
    s_addr(p, "169.254.169.254", 80, why, sizeof why);
    CB_OK(strstr(why, "metadata") != NULL, "the metadata address is named so: %s", why);
    egress_policy_destroy(&p);

    /* explicit entries reach refused classes, names never do */
    p = s_pol("{\"allow\": [\"127.0.0.1:8080\", \"10.0.0.0/8\", \"[::1]:9000\", \"*.test\"], "
              "\"deny\": [\"10.9.0.0/16\"]}");
    CB_EQ_INT(s_addr(p, "127.0.0.1", 8080, NULL, 0), EGRESS_ALLOW, "explicit 127.0.0.1:8080");
    CB_EQ_INT(s_addr(p, "127.0.0.1", 8081, NULL, 0), EGRESS_DENY, "not on another port");
    CB_EQ_INT(s_addr(p, "::ffff:127.0.0.1", 8080, NULL, 0), EGRESS_ALLOW,
              "the mapped form is the same address");
    CB_EQ_INT(s_addr(p, "10.200.0.1", 443, NULL, 0), EGRESS_ALLOW, "inside an allowed block");
    CB_EQ_INT(s_addr(p, "10.9.1.1", 443, NULL, 0), EGRESS_DENY, "deny block beats allow block");
    CB_EQ_INT(s_addr(p, "::1", 9000, NULL, 0), EGRESS_ALLOW, "explicit [::1]:9000");
    CB_EQ_INT(s_addr(p, "192.168.0.1", 443, NULL, 0), EGRESS_DENY, "other private: refused");
    CB_EQ_INT(egress_policy_check_name(p, "api.test", 8080, NULL, 0), EGRESS_ALLOW,
              "the name passes ...");
    CB_EQ_INT(s_addr(p, "127.0.0.2", 8080, NULL, 0), EGRESS_DENY,
              "... but a loopback address it resolves to does not");
    CB_EQ_INT(egress_policy_check_name(p, "127.0.0.1", 8080, NULL, 0), EGRESS_ALLOW,
              "a literal in an address entry");
    CB_EQ_INT(egress_policy_check_name(p, "127.0.0.1", 22, NULL, 0), EGRESS_DENY,
              "a literal on another port");
    egress_policy_destroy(&p);
}

static void test_specs(void)
{
    s_bad("{\"allow\": [\"\"]}", "empty entry");
    s_bad("{\"allow\": [\"10.0.0.0/33\"]}", "10.0.0.0/33");
    s_bad("{\"allow\": [\"10.0.0.0/x\"]}", "10.0.0.0/x");
    s_bad("{\"allow\": [\"300.1.1.1\"]}", "300.1.1.1");
    s_bad("{\"allow\": [\"a.com:0\"]}", "a.com:0");
    s_bad("{\"allow\": [\"a.com:65536\"]}", "a.com:65536");
    s_bad("{\"allow\": [\"a.com:\"]}", "a.com:");
    s_bad("{\"allow\": [\"*.\"]}", "*.");
    s_bad("{\"allow\": [\"a.*.com\"]}", "a.*.com");
    s_bad("{\"allow\": [\"a b.com\"]}", "a b.com");
    s_bad("{\"allow\": [42]}", "entry 0 of 'allow' is not a string");
    s_bad("{\"allow\": \"a.com\"}", "'allow' must be a list");
    s_bad("{\"colour\": 1}", "unknown key 'colour'");
    s_bad("{\"presets\": [\"everything\"]}", "unknown preset 'everything'");
    s_bad("\"sometimes\"", "unknown policy 'sometimes'");
    s_bad("{\"max_connections\": -1}", "max_connections");
    s_bad("[1]", "must be a string or an object");
    char *longname = malloc(300);
    memset(longname, 'a', 254);
    longname[254] = '\0';
    char spec[400];
    snprintf(spec, sizeof spec, "{\"allow\": [\"%s\"]}", longname);
    s_bad(spec, "longer than 253");
    free(longname);
    json_t *many = json_array();
    for (int i = 0; i < 1025; i++)
        json_array_append_new(many, json_sprintf("h%d.example", i));
    json_t *o = json_pack("{s:o}", "allow", many);
    cb_error_t err = {0};
    egress_policy_t *p = egress_policy_from_json(o, &err);
    CB_OK(!p && strstr(err.msg, "1024"), "more than 1024 entries refused: %s", err.msg);
    json_decref(o);

    /* the string form */
    p = egress_policy_from_string("allow=a.com,*.b.com:443;deny=c.b.com;ask=1;max_connections=7",
                                  &err);
    CB_OK(p != NULL, "string form parses");
    json_t *d = egress_policy_describe(p);
    char *text = json_dumps(d, JSON_COMPACT);
    CB_EQ_STR(text,
              "{\"mode\":\"ask\",\"allow\":[\"a.com\",\"*.b.com:443\"],\"deny\":[\"c.b.com\"],"
              "\"max_connections\":7,\"max_bytes\":0}",
              "describe of the string form");
    free(text);
    json_decref(d);
    egress_policy_destroy(&p);
    p = egress_policy_from_string("allow=a.com,,b.com", &err);
    CB_OK(!p && strstr(err.msg, "empty entry"), "string form: empty item refused: %s", err.msg);
    p = egress_policy_from_string("allow=[::1]:80,10.0.0.0/8:22,[fd00::]/8", &err);
    d = p ? egress_policy_describe(p) : NULL;
    text = d ? json_dumps(json_object_get(d, "allow"), JSON_COMPACT) : NULL;
    CB_EQ_STR(text, "[\"[::1]:80\",\"10.0.0.0/8:22\",\"fd00::/8\"]", "addresses round-trip");
    free(text);
    json_decref(d);
    egress_policy_destroy(&p);

    /* presets */
    p = egress_policy_from_string("packages", &err);
    CB_EQ_INT(egress_policy_check_name(p, "pypi.org", 443, NULL, 0), EGRESS_ALLOW,
              "packages: pypi");
    CB_EQ_INT(egress_policy_check_name(p, "registry.npmjs.org", 80, NULL, 0), EGRESS_ALLOW,
              "packages: npm on 80");
    CB_EQ_INT(egress_policy_check_name(p, "objects.githubusercontent.com", 443, NULL, 0),
              EGRESS_ALLOW, "packages: *.githubusercontent.com");
    CB_EQ_INT(egress_policy_check_name(p, "pypi.org", 22, NULL, 0), EGRESS_DENY,
              "packages: not port 22");
    CB_EQ_INT(egress_policy_check_name(p, "example.com", 443, NULL, 0), EGRESS_DENY,
              "packages: not elsewhere");
    CB_EQ_INT(egress_policy_check_name(p, "storage.googleapis.com", 443, NULL, 0), EGRESS_DENY,
              "packages: no general storage hosts");
    egress_policy_destroy(&p);

    /* E2B's keys */
    p = s_pol("{\"allowedDomains\": [\"api.example\"], \"allowHTTPS\": true, "
              "\"blockedDomains\": [\"x.example\"]}");
    CB_EQ_INT(egress_policy_check_name(p, "api.example", 443, NULL, 0), EGRESS_ALLOW,
              "allowedDomains with allowHTTPS: 443");
    CB_EQ_INT(egress_policy_check_name(p, "api.example", 80, NULL, 0), EGRESS_DENY,
              "allowedDomains with allowHTTPS only: not 80");
    CB_EQ_INT(egress_policy_check_name(p, "x.example", 443, NULL, 0), EGRESS_DENY,
              "blockedDomains");
    egress_policy_destroy(&p);
    p = s_pol(
        "{\"allowedDomains\": [\"api.example\"], \"allowHTTP\": false, \"allowHTTPS\": false}");
    CB_EQ_INT(egress_policy_check_name(p, "api.example", 443, NULL, 0), EGRESS_DENY,
              "allowHTTP and allowHTTPS false: the domains allow nothing");
    egress_policy_destroy(&p);
    s_bad("{\"allowedDomains\": [\"a..b\"], \"allowHTTP\": false}", "a..b");
    p = s_pol("{\"network\": {\"allowOut\": [\"1.1.1.1\"], \"denyOut\": [\"0.0.0.0/0\"]}}");
    CB_EQ_INT(egress_policy_check_name(p, "1.1.1.1", 443, NULL, 0), EGRESS_ALLOW,
              "network.allowOut with denyOut all-traffic");
    CB_EQ_INT(egress_policy_check_name(p, "8.8.8.8", 443, NULL, 0), EGRESS_DENY,
              "network.denyOut: the rest");
    egress_policy_destroy(&p);
    p = s_pol("{\"allowInternetAccess\": false, \"allow\": [\"a.com\"]}");
    CB_OK(p && egress_policy_is_none(p), "allowInternetAccess false: none");
    egress_policy_destroy(&p);
    p = s_pol("{\"allowInternetAccess\": true}");
    CB_EQ_INT(egress_policy_check_name(p, "a.com", 443, NULL, 0), EGRESS_ALLOW,
              "allowInternetAccess true: all");

    egress_policy_t *c = egress_policy_copy(p);
    CB_OK(egress_policy_add(c, "b.com", true, &err) == 0 &&
              egress_policy_check_name(c, "b.com", 1, NULL, 0) == EGRESS_DENY &&
              egress_policy_check_name(p, "b.com", 1, NULL, 0) == EGRESS_ALLOW,
          "a copy is independent");
    egress_policy_destroy(&c);
    egress_policy_destroy(&p);
}

static void test_http_head(void)
{
    egress_http_req_t req;
    char why[200];
    const char *h = "CONNECT api.test:443 HTTP/1.1\r\nHost: api.test:443\r\n\r\nEARLY";
    CB_EQ_INT(egress_http_head_parse(h, strlen(h), &req, why, sizeof why), EGRESS_HEAD_DONE,
              "CONNECT parsed");
    CB_OK(req.is_connect && strcmp(req.host, "api.test") == 0 && req.port == 443 &&
              req.head_len == strlen(h) - 5,
          "CONNECT host, port, head length");
    h = "CONNECT [::1]:8443 HTTP/1.1\r\n\r\n";
    CB_EQ_INT(egress_http_head_parse(h, strlen(h), &req, why, sizeof why), EGRESS_HEAD_DONE,
              "CONNECT to an IPv6 literal");
    CB_EQ_STR(req.host, "::1", "brackets dropped");
    h = "CONNECT api.test HTTP/1.1\r\n\r\n";
    CB_EQ_INT(egress_http_head_parse(h, strlen(h), &req, why, sizeof why), EGRESS_HEAD_BAD,
              "CONNECT without a port");
    h = "GET /path HTTP/1.1\r\nHost: a\r\n\r\n";
    CB_EQ_INT(egress_http_head_parse(h, strlen(h), &req, why, sizeof why), EGRESS_HEAD_BAD,
              "origin form refused");
    h = "GET https://a/ HTTP/1.1\r\n\r\n";
    CB_EQ_INT(egress_http_head_parse(h, strlen(h), &req, why, sizeof why), EGRESS_HEAD_BAD,
              "https:// refused");
    h = "\x16\x03\x01\x02\x00garbage";
    CB_EQ_INT(egress_http_head_parse(h, strlen(h), &req, why, sizeof why), EGRESS_HEAD_BAD,
              "TLS bytes refused at once");
    h = "GET http://a.test";
    CB_EQ_INT(egress_http_head_parse(h, strlen(h), &req, why, sizeof why), EGRESS_HEAD_MORE,
              "a partial head waits");
    h = "GET http://User:pw@a.test:8080/p/q?x=1#frag HTTP/1.0\r\nProxy-Authorization: x\r\n"
        "Proxy-Connection: keep-alive\r\nConnection: keep-alive\r\nAccept: */*\r\n\r\nBODY";
    CB_EQ_INT(egress_http_head_parse(h, strlen(h), &req, why, sizeof why), EGRESS_HEAD_DONE,
              "absolute URI parsed");
    char out[1024];
    size_t n = egress_http_rewrite(h, &req, out, sizeof out);
    out[n] = '\0';
    CB_EQ_STR(out,
              "GET /p/q?x=1 HTTP/1.0\r\nAccept: */*\r\nHost: a.test:8080\r\n"
              "Connection: close\r\n\r\n",
              "rewritten: origin form, Proxy-* and Connection dropped, Host added");
    /* An empty value gets no callback from libhttp-parser: the next name stays whole, so a
     * Proxy-Authorization after it is still dropped. */
    h = "GET http://a.test/ HTTP/1.1\r\nX-Empty:\r\nProxy-Authorization: secret\r\n\r\n";
    CB_EQ_INT(egress_http_head_parse(h, strlen(h), &req, why, sizeof why), EGRESS_HEAD_DONE,
              "an empty header value parses");
    n = egress_http_rewrite(h, &req, out, sizeof out);
    out[n] = '\0';
    CB_EQ_STR(out, "GET / HTTP/1.1\r\nX-Empty: \r\nHost: a.test\r\nConnection: close\r\n\r\n",
              "the empty header passes on, the Proxy-Authorization after it does not");
    h = "GET http://a.test/ HTTP/1.1\r\nX-Fold: a\r\n b\r\n\r\n";
    CB_EQ_INT(egress_http_head_parse(h, strlen(h), &req, why, sizeof why), EGRESS_HEAD_BAD,
              "a folded header line is refused");
    static char many[64 + 8 * (EGRESS_HEAD_MAX_HEADERS + 1)];
    size_t m = (size_t)snprintf(many, sizeof many, "GET http://a.test/ HTTP/1.1\r\n");
    for (int i = 0; i <= EGRESS_HEAD_MAX_HEADERS; i++)
        m += (size_t)snprintf(many + m, sizeof many - m, "X: 1\r\n");
    m += (size_t)snprintf(many + m, sizeof many - m, "\r\n");
    CB_EQ_INT(egress_http_head_parse(many, m, &req, why, sizeof why), EGRESS_HEAD_TOO_LARGE,
              "over 100 headers is too large");
    static char big[EGRESS_HEAD_MAX + 100];
    memset(big, 'a', sizeof big);
    memcpy(big, "GET http://a/ HTTP/1.1\r\nX: ", 27);
    CB_EQ_INT(egress_http_head_parse(big, sizeof big, &req, why, sizeof why), EGRESS_HEAD_TOO_LARGE,
              "a head over 16 KiB is too large");
}

static void test_socks(void)
{
    bool noauth;
    const uint8_t g1[] = {5, 2, 2, 0};
    CB_EQ_INT(egress_socks_greeting(g1, sizeof g1, &noauth), 4, "greeting length");
    CB_OK(noauth, "no-auth offered");
    const uint8_t g2[] = {5, 1, 2};
    egress_socks_greeting(g2, sizeof g2, &noauth);
    CB_OK(!noauth, "only user/password offered");
    CB_EQ_INT(egress_socks_greeting(g2, 2, &noauth), 0, "partial greeting");
    const uint8_t g3[] = {4, 1, 0};
    CB_EQ_INT(egress_socks_greeting(g3, sizeof g3, &noauth), -1, "SOCKS4 refused");
    egress_socks_req_t r;
    const uint8_t d[] = {5, 1, 0, 3, 8, 'a', 'p', 'i', '.', 't', 'e', 's', 't', 0x1f, 0x90};
    CB_EQ_INT(egress_socks_request(d, sizeof d, &r), (int)sizeof d, "domain request");
    CB_OK(strcmp(r.host, "api.test") == 0 && r.port == 8080 && !r.literal, "domain and port");
    CB_EQ_INT(egress_socks_request(d, sizeof d - 1, &r), 0, "partial request");
    const uint8_t v6[] = {5, 1, 0, 4,    0,    0,   0, 0, 0, 0, 0,
                          0, 0, 0, 0xff, 0xff, 127, 0, 0, 1, 0, 80};
    CB_EQ_INT(egress_socks_request(v6, sizeof v6, &r), (int)sizeof v6, "IPv6 request");
    CB_EQ_STR(r.host, "::ffff:127.0.0.1", "IPv6 as text");
    const uint8_t bind[] = {5, 2, 0, 1, 1, 2, 3, 4, 0, 80};
    CB_EQ_INT(egress_socks_request(bind, sizeof bind, &r), -SOCKS_BAD_COMMAND, "BIND refused 07");
    const uint8_t atyp[] = {5, 1, 0, 9, 1, 2, 3, 4, 0, 80};
    CB_EQ_INT(egress_socks_request(atyp, sizeof atyp, &r), -SOCKS_BAD_ATYP, "bad ATYP refused 08");
    const uint8_t nul[] = {5, 1, 0, 3, 3, 'a', 0, 'b', 0, 80};
    CB_EQ_INT(egress_socks_request(nul, sizeof nul, &r), -SOCKS_FAILURE, "NUL in a domain");
}

int main(void)
{
    test_names();
    test_classes();
    test_specs();
    test_http_head();
    test_socks();
    return cb_tap_done();
}
