/* test_http_head.c: selftest of cb/http_head.h: spans, the head's length, the caps, an empty
 * header value (which libhttp-parser gives no callback), a folded one. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cb/http_head.h"
#include "cb/tap.h"

static cb_http_head_t s_head;

static cb_http_head_status_t s_parse(const char *h)
{
    return cb_http_head_parse(h, strlen(h), SIZE_MAX, CB_HTTP_HEAD_MAX_FIELDS, &s_head);
}

static bool s_is(const char *buf, cb_http_span_t s, const char *want)
{
    return s.len == strlen(want) && memcmp(buf + s.off, want, s.len) == 0;
}

static void test_spans(void)
{
    const char *h = "POST /p?q=1 HTTP/1.1\r\nHost: a.test\r\nContent-Length: 4\r\n\r\nBODY";
    CB_EQ_INT(s_parse(h), CB_HTTP_HEAD_DONE, "a head with a body after it");
    CB_EQ_SIZE(s_head.head_len, strlen(h) - 4, "the head ends before the body");
    CB_EQ_STR(s_head.method, "POST", "method");
    CB_OK(s_head.major == 1 && s_head.minor == 1 && !s_head.is_connect, "version");
    CB_OK(s_is(h, s_head.url, "/p?q=1"), "url span");
    CB_EQ_SIZE(s_head.n_fields, 2, "two headers");
    CB_OK(s_is(h, s_head.fields[0].name, "Host") && s_is(h, s_head.fields[0].value, "a.test"),
          "first header's spans");
    CB_OK(s_head.has_length && s_head.content_length == 4 && !s_head.chunked, "Content-Length");
    const cb_http_field_t *f = cb_http_head_find(&s_head, h, "content-length");
    CB_OK(f == &s_head.fields[1], "find is case-insensitive");
    CB_OK(cb_http_head_find(&s_head, h, "Cookie") == NULL, "find: absent");

    h = "CONNECT a.test:443 HTTP/1.1\r\n\r\nEARLY";
    CB_EQ_INT(s_parse(h), CB_HTTP_HEAD_DONE, "CONNECT");
    CB_OK(s_head.is_connect && s_head.head_len == strlen(h) - 5 && s_head.n_fields == 0,
          "CONNECT: no headers, early bytes left out");
}

static void test_empty_and_folded(void)
{
    const char *h = "GET / HTTP/1.1\r\nX-Empty:\r\nAuthorization: t\r\nX-Sp: \r\n\r\n";
    CB_EQ_INT(s_parse(h), CB_HTTP_HEAD_DONE, "empty values");
    CB_EQ_SIZE(s_head.n_fields, 3, "the name after an empty value is a header of its own");
    CB_OK(s_is(h, s_head.fields[0].name, "X-Empty") && s_head.fields[0].value.len == 0,
          "the empty value is a span of length 0");
    CB_OK(s_is(h, s_head.fields[1].name, "Authorization") && s_is(h, s_head.fields[1].value, "t"),
          "the next header is whole");
    CB_OK(s_is(h, s_head.fields[2].name, "X-Sp") && s_head.fields[2].value.len == 0,
          "a value of blanks is empty");

    h = "GET / HTTP/1.1\r\nX-Fold: a\r\n b\r\nY: 1\r\n\r\n";
    CB_EQ_INT(s_parse(h), CB_HTTP_HEAD_DONE, "a folded value parses");
    CB_OK(s_head.n_fields == 2 && cb_http_head_has_break(h, s_head.fields[0].value) &&
              !cb_http_head_has_break(h, s_head.fields[1].value),
          "its span holds the line break, the next one does not");
}

static void test_limits(void)
{
    CB_EQ_INT(s_parse("GET http://a.te"), CB_HTTP_HEAD_MORE, "a partial head waits");
    CB_EQ_INT(s_parse("\x16\x03\x01\x02\x00garbage"), CB_HTTP_HEAD_BAD, "not HTTP");
    const char *h = "GET / HTTP/1.1\r\nX: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    CB_EQ_INT(cb_http_head_parse(h, strlen(h), 20, 10, &s_head), CB_HTTP_HEAD_TOO_LARGE,
              "no head within max_len");
    CB_EQ_INT(cb_http_head_parse(h, 19, 20, 10, &s_head), CB_HTTP_HEAD_MORE,
              "under max_len, it waits");
    h = "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    CB_EQ_INT(cb_http_head_parse(h, strlen(h), SIZE_MAX, 3, &s_head), CB_HTTP_HEAD_DONE,
              "max_fields headers pass");
    CB_EQ_INT(cb_http_head_parse(h, strlen(h), SIZE_MAX, 2, &s_head), CB_HTTP_HEAD_TOO_LARGE,
              "one more is too many");
    static char many[CB_HTTP_HEAD_MAX_FIELDS * 8 + 64];
    size_t n = (size_t)snprintf(many, sizeof many, "GET / HTTP/1.1\r\n");
    for (int i = 0; i <= CB_HTTP_HEAD_MAX_FIELDS; i++)
        n += (size_t)snprintf(many + n, sizeof many - n, "X: 1\r\n");
    n += (size_t)snprintf(many + n, sizeof many - n, "\r\n");
    CB_EQ_INT(cb_http_head_parse(many, n, SIZE_MAX, SIZE_MAX, &s_head), CB_HTTP_HEAD_TOO_LARGE,
              "max_fields is clamped to CB_HTTP_HEAD_MAX_FIELDS");
}

int main(void)
{
    test_spans();
    test_empty_and_folded();
    test_limits();
    return cb_tap_done();
}
