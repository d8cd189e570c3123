/* fuzz_e2b_connect.c: the Connect codec of E2B's envd services (e2b/connect.c): the envelope
 * parser on its own, and a whole request's message as e2b_rpc_request reads it, on a request
 * made by hand (no socket, the HTTP server not started), its answers taken from the queue the
 * server thread would write from.
 *
 * Input: one byte of options, then the body.
 *   bit 0      a server-streaming call (else unary);
 *   bits 1-2   Content-Type: 0 the kind's own, 1 the other kind's, 2 the kind's own with
 *              "; charset=utf-8", 3 none;
 *   bit 3      method GET (else POST);
 *   bits 4-7   the envelope parser's maximum for the bare parse: 2^(bits) - 1 (0 to 32767).
 *
 * What must hold, besides no crash or leak:
 *   - the bare parse: 0 only while fewer bytes than the envelope says are there (or fewer than
 *     five), -1 only for undefined flag bits or a length over the maximum, else the whole
 *     envelope's size with the payload inside the data; each accepted envelope written again is
 *     the same bytes; walking envelopes one after the other ends exactly at the input's end or
 *     at a 0 or -1;
 *   - e2b_rpc_request accepts only a POST with its kind's type whose message (for a stream:
 *     exactly one uncompressed envelope without the end flag) is a JSON object, and gives back
 *     that object (an empty unary body reads as {}); otherwise it has answered: a unary call
 *     with a status matching the {code, message} of its body, a streaming call with 200 and one
 *     end-of-stream envelope carrying {"error": {code, message}}, code one of Connect's. */
#include <string.h>

#include "cb/alloc.h"
#include "e2b_private.h"
#include "fuzz.h"
#include "http_private.h"

static http_server_t *s_server(void)
{
    static http_server_t *http;
    if (!http) {
        static zloop_t *loop;
        loop = zloop_new();
        http_config_t cfg = {.listen = "127.0.0.1:8888",
                             .token = "f0e1d2c3b4a5968778695a4b3c2d1e0f"};
        cb_error_t err = {0};
        http = http_server_new(loop, &cfg, &err);
        FUZZ_CHECK(http);
    }
    return http;
}

/* ---- the bare parser ------------------------------------------------------------------------ */

static void s_parse_all(const uint8_t *data, size_t size, size_t max)
{
    size_t off = 0;
    for (int guard = 0; guard < 1 << 16; guard++) {
        const uint8_t *p = data + off;
        size_t left = size - off;
        uint8_t flags = 0xee;
        const char *payload = NULL;
        size_t len = 0;
        long n = e2b_rpc_envelope_parse(p, left, max, &flags, &payload, &len);
        if (n == 0) {
            FUZZ_CHECK(left < 5 || ((size_t)p[1] << 24 | (size_t)p[2] << 16 | (size_t)p[3] << 8 |
                                    p[4]) > left - 5);
            FUZZ_CHECK(payload == NULL);
            return;
        }
        if (n < 0) {
            size_t promised =
                (size_t)p[1] << 24 | (size_t)p[2] << 16 | (size_t)p[3] << 8 | (size_t)p[4];
            FUZZ_CHECK(left >= 5 && ((p[0] & ~3u) || promised > max));
            FUZZ_CHECK(payload == NULL);
            return;
        }
        FUZZ_CHECK((size_t)n == len + 5 && (size_t)n <= left && len <= max);
        FUZZ_CHECK(flags == p[0] && (flags & ~3u) == 0);
        FUZZ_CHECK(payload == (const char *)p + 5);
        cleanup_buf cb_buf_t again = {0};
        e2b_rpc_envelope_write(&again, flags, payload, len);
        FUZZ_CHECK(again.len == (size_t)n && memcmp(again.data, p, again.len) == 0);
        off += (size_t)n;
        if (off == size)
            return;
    }
}

/* ---- a request ------------------------------------------------------------------------------ */

typedef struct {
    int status;
    char *type;
    cb_buf_t body;
    int heads, ends, aborts;
} s_answer_t;

/* What the handler queued for the server thread about request id. */
static void s_take(http_server_t *http, uint64_t id, s_answer_t *a)
{
    for (http_msg_t *m = http_msgq_take_all(&http->to_lws), *next; m; m = next) {
        next = m->next;
        FUZZ_CHECK(m->id == id);
        if (m->kind == HM_HEAD) {
            a->heads++;
            a->status = m->status;
            a->type = cb_xstrdup(m->text ? m->text : "");
        } else if (m->kind == HM_DATA) {
            cb_buf_append(&a->body, m->data, m->len);
        } else if (m->kind == HM_END) {
            a->ends++;
        } else if (m->kind == HM_ABORT) {
            a->aborts++;
        }
        http_msg_free(m);
    }
}

static void s_check_error(json_t *e)
{
    const char *code = json_string_value(json_object_get(e, "code"));
    FUZZ_CHECK(code && json_is_string(json_object_get(e, "message")));
    /* One of Connect's codes: "unknown" is the only 500 besides internal and data_loss. */
    FUZZ_CHECK(e2b_rpc_code_status(code) != 500 || strcmp(code, "internal") == 0 ||
               strcmp(code, "unknown") == 0 || strcmp(code, "data_loss") == 0);
}

static void s_check_refusal(const s_answer_t *a, bool stream)
{
    FUZZ_CHECK(a->heads == 1 && a->ends == 1 && a->aborts == 0);
    if (!stream) {
        FUZZ_CHECK(strcmp(a->type, "application/json") == 0);
        json_auto_t *j = json_loadb((const char *)a->body.data, a->body.len, 0, NULL);
        FUZZ_CHECK(json_is_object(j));
        s_check_error(j);
        FUZZ_CHECK(a->status == e2b_rpc_code_status(json_string_value(json_object_get(j, "code"))));
        FUZZ_CHECK(a->status >= 400);
        return;
    }
    FUZZ_CHECK(a->status == 200 && strcmp(a->type, "application/connect+json") == 0);
    uint8_t flags = 0;
    const char *payload = NULL;
    size_t len = 0;
    long n = e2b_rpc_envelope_parse(a->body.data, a->body.len, SIZE_MAX, &flags, &payload, &len);
    FUZZ_CHECK(n > 0 && (size_t)n == a->body.len && flags == E2B_RPC_FLAG_END);
    json_auto_t *end = json_loadb(payload, len, 0, NULL);
    FUZZ_CHECK(json_is_object(end));
    s_check_error(json_object_get(end, "error"));
}

static void s_request(const uint8_t *opts, const uint8_t *body, size_t len)
{
    static uint64_t next_id = 1;
    static const char *const types[2][4] = {
        {"application/json", "application/connect+json", "application/json; charset=utf-8", NULL},
        {"application/connect+json", "application/json", "application/connect+json; charset=utf-8",
         NULL},
    };
    bool stream = opts[0] & 1, get = opts[0] & 8;
    const char *type = types[stream][(opts[0] >> 1) & 3];
    http_server_t *http = s_server();

    http_request_t *req = calloc(1, sizeof *req);
    FUZZ_CHECK(req);
    req->server = http;
    req->id = next_id++;
    req->method = cb_xstrdup(get ? "GET" : "POST");
    req->path = cb_xstrdup("/process.Process/Start");
    cb_strv_t h = {0};
    cb_strv_init(&h);
    if (type) {
        cb_strv_push(&h, cb_xstrdup("Content-Type"));
        cb_strv_push(&h, cb_xstrdup(type));
    }
    req->headers = h.v;
    req->query = calloc(1, sizeof(char *));
    FUZZ_CHECK(req->query);
    /* A copy of exactly the body (plus the NUL the server adds): a read past it is a finding. */
    req->body = fuzz_strndup(body, len);
    req->body_len = len;
    uint64_t id = req->id;
    http_idmap_put(&http->reqs, id, req);

    json_t *msg = e2b_rpc_request(req, stream ? E2B_RPC_STREAM : E2B_RPC_UNARY);
    s_answer_t a = {0};
    s_take(http, id, &a);
    if (getenv("FUZZ_VERBOSE")) /* to see what a seed reaches */
        fprintf(stderr, "-> %s %d %.*s\n", msg ? "accepted" : "refused", a.status,
                (int)(a.body.len > 200 ? 200 : a.body.len), a.body.data ? a.body.data : "");
    if (!msg) {
        s_check_refusal(&a, stream);
        FUZZ_CHECK(!http_idmap_get(&http->reqs, id)); /* answered and dropped */
    } else {
        FUZZ_CHECK(a.heads == 0 && a.ends == 0 && a.aborts == 0 && a.body.len == 0);
        FUZZ_CHECK(!get && type);
        /* The message is the body's JSON (or the one envelope's). */
        const char *text = (const char *)body;
        size_t text_len = len;
        if (stream) {
            uint8_t flags = 0xee;
            long n = e2b_rpc_envelope_parse(body, len, SIZE_MAX, &flags, &text, &text_len);
            FUZZ_CHECK(n > 0 && (size_t)n == len && flags == 0);
        }
        json_auto_t *want = text_len ? json_loadb(text, text_len, 0, NULL) : json_object();
        FUZZ_CHECK(json_is_object(msg) && json_equal(msg, want));
        /* Answer it, as a handler would, and the answer is the message back. */
        e2b_rpc_reply(req, msg);
        json_decref(msg);
        s_answer_t r = {0};
        s_take(http, id, &r);
        FUZZ_CHECK(r.heads == 1 && r.ends == 1 && r.status == 200);
        json_auto_t *back = json_loadb((const char *)r.body.data, r.body.len, 0, NULL);
        FUZZ_CHECK(json_equal(back, want));
        free(r.type);
        cb_buf_free(&r.body);
        FUZZ_CHECK(!http_idmap_get(&http->reqs, id));
    }
    free(a.type);
    cb_buf_free(&a.body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t max = ((size_t)1 << (data[0] >> 4)) - 1;
    /* A copy of exactly the input: a read past its end is a finding. */
    uint8_t *copy = malloc(size - 1 ? size - 1 : 1);
    FUZZ_CHECK(copy);
    memcpy(copy, data + 1, size - 1);
    s_parse_all(copy, size - 1, max);
    free(copy);
    s_request(data, data + 1, size - 1);
    return 0;
}
