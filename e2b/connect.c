/* connect.c: the Connect protocol, as envd's services speak it to the SDKs' connect-web clients
 * (JSON codec, HTTP/1.1; https://connectrpc.com/docs/protocol):
 *
 *   - unary: POST /<package.Service>/<Method> with Content-Type application/json and the
 *     request message as the body; the answer is 200 with the response message, or an error
 *     status with {"code": "<connect code>", "message": "..."};
 *   - server streaming: Content-Type application/connect+json; the body is one envelope (a
 *     flags byte, a 32-bit big-endian length, the JSON message); the answer is 200 and a
 *     stream of envelopes, the last with flag 0x02 holding {} or {"error": {code, message}}.
 *
 * Compressed envelopes are refused (we announce no encodings, so a client has no reason to send
 * one). A stream's errors travel in its end message, not in its HTTP status, because that is
 * where Connect clients look for a message to show.
 */
#include <string.h>
#include <strings.h>

#include "cb/alloc.h"
#include "cb/cleanup.h"
#include "e2b_private.h"

#define S_STREAM_TYPE "application/connect+json"
#define S_MAX_MESSAGE (16u * 1024 * 1024)

long e2b_rpc_envelope_parse(const void *data, size_t len, size_t max_payload, uint8_t *flags,
                            const char **payload, size_t *payload_len)
{
    const unsigned char *p = data;
    if (len < 5)
        return 0;
    uint32_t n = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4];
    if (n > max_payload || (p[0] & ~(E2B_RPC_FLAG_END | E2B_RPC_FLAG_COMPRESSED)))
        return -1;
    if (len - 5 < n)
        return 0;
    *flags = p[0];
    *payload = (const char *)p + 5;
    *payload_len = n;
    return (long)n + 5;
}

void e2b_rpc_envelope_write(cb_buf_t *out, uint8_t flags, const void *payload, size_t len)
{
    unsigned char head[5] = {flags, (unsigned char)(len >> 24), (unsigned char)(len >> 16),
                             (unsigned char)(len >> 8), (unsigned char)len};
    cb_buf_append(out, head, sizeof head);
    cb_buf_append(out, payload, len);
}

/* ---- codes ---------------------------------------------------------------------------------- */

static const struct {
    const char *code;
    int status;
} s_codes[] = {
    {"canceled", 499},
    {"unknown", 500},
    {"invalid_argument", 400},
    {"deadline_exceeded", 504},
    {"not_found", 404},
    {"already_exists", 409},
    {"permission_denied", 403},
    {"resource_exhausted", 429},
    {"failed_precondition", 400},
    {"aborted", 409},
    {"out_of_range", 400},
    {"unimplemented", 501},
    {"internal", 500},
    {"unavailable", 503},
    {"data_loss", 500},
    {"unauthenticated", 401},
};

int e2b_rpc_code_status(const char *code)
{
    for (size_t i = 0; code && i < sizeof s_codes / sizeof s_codes[0]; i++)
        if (strcmp(s_codes[i].code, code) == 0)
            return s_codes[i].status;
    return 500;
}

const char *e2b_rpc_code_of(const cb_error_t *err)
{
    switch (err ? err->kind : CB_ERR_INTERNAL) {
    case CB_ERR_INVALID:
    case CB_ERR_PARSE:
    case CB_ERR_BAD_REQUEST:
    case CB_ERR_TRANSPORT:
    case CB_ERR_MEDIA_TYPE:
    case CB_ERR_NOT_ACCEPTABLE: return "invalid_argument";
    case CB_ERR_NOT_FOUND:
    case CB_ERR_NO_SESSION: return "not_found";
    case CB_ERR_TIMEOUT: return "deadline_exceeded";
    case CB_ERR_LIMIT:
    case CB_ERR_TOO_LARGE: return "resource_exhausted";
    case CB_ERR_STATE:
    case CB_ERR_KERNEL_DEAD: return "failed_precondition";
    case CB_ERR_CONFLICT: return "already_exists";
    case CB_ERR_UNAUTHORIZED: return "unauthenticated";
    case CB_ERR_FORBIDDEN: return "permission_denied";
    case CB_ERR_UNAVAILABLE:
    case CB_ERR_BAD_METHOD:
    case CB_ERR_NO_METHOD: return "unimplemented";
    case CB_ERR_BUSY: return "unavailable";
    default: return "internal";
    }
}

/* ---- requests ------------------------------------------------------------------------------- */

static bool s_type_is(const char *ct, const char *want)
{
    size_t n = strlen(want);
    return ct && strncasecmp(ct, want, n) == 0 && (ct[n] == '\0' || ct[n] == ';');
}

e2b_rpc_kind_t e2b_rpc_kind_of(http_request_t *req)
{
    const char *ct = http_request_header(req, "Content-Type");
    return ct && strncasecmp(ct, "application/connect", 19) == 0 ? E2B_RPC_STREAM : E2B_RPC_UNARY;
}

json_t *e2b_rpc_request(http_request_t *req, e2b_rpc_kind_t kind)
{
    if (strcmp(http_request_method(req), "POST") != 0) {
        e2b_rpc_fail(req, kind, "unimplemented", "Connect calls are POST requests");
        return NULL;
    }
    const char *ct = http_request_header(req, "Content-Type");
    size_t len = 0;
    const char *body = http_request_body(req, &len);
    const char *msg = body;
    size_t msg_len = len;
    if (kind == E2B_RPC_STREAM) {
        if (!s_type_is(ct, S_STREAM_TYPE)) {
            e2b_rpc_fail(req, kind, "invalid_argument",
                         "a streaming call's Content-Type is application/connect+json");
            return NULL;
        }
        uint8_t flags = 0;
        long n = e2b_rpc_envelope_parse(body, len, S_MAX_MESSAGE, &flags, &msg, &msg_len);
        if (n <= 0 || (size_t)n != len || flags != 0) {
            e2b_rpc_fail(req, kind, "invalid_argument",
                         n > 0 && (flags & E2B_RPC_FLAG_COMPRESSED)
                             ? "compressed messages are not accepted"
                             : "the body must be exactly one uncompressed Connect envelope");
            return NULL;
        }
    } else if (!s_type_is(ct, "application/json")) {
        e2b_rpc_fail(req, kind, "invalid_argument",
                     "a unary call's Content-Type is application/json (the JSON codec is the one "
                     "served here)");
        return NULL;
    }
    json_error_t jerr;
    json_t *m = msg_len ? json_loadb(msg, msg_len, 0, &jerr) : json_object();
    if (!json_is_object(m)) {
        json_decref(m);
        cleanup_free char *why =
            cb_strdup_printf("the request message is not a JSON object%s%s",
                             msg_len && !m ? ": " : "", msg_len && !m ? jerr.text : "");
        e2b_rpc_fail(req, kind, "invalid_argument", why);
        return NULL;
    }
    return m;
}

/* ---- answers -------------------------------------------------------------------------------- */

void e2b_rpc_reply(http_request_t *req, json_t *msg) { http_respond_json(req, 200, msg, NULL); }

void e2b_rpc_reply_empty(http_request_t *req)
{
    http_respond(req, 200, "application/json", NULL, "{}", 2);
}

static json_t *s_error_json(const char *code, const char *message)
{
    return json_pack("{s:s, s:o}", "code", code ? code : "internal", "message",
                     e2b_json_message(message));
}

void e2b_rpc_fail(http_request_t *req, e2b_rpc_kind_t kind, const char *code, const char *message)
{
    if (kind == E2B_RPC_STREAM) {
        if (e2b_rpc_stream_begin(req) < 0)
            return; /* the client is gone, and req with it */
        e2b_rpc_stream_end(req, code ? code : "internal", message);
        return;
    }
    json_auto_t *body = s_error_json(code, message);
    http_respond_json(req, e2b_rpc_code_status(code), body, NULL);
}

void e2b_rpc_fail_err(http_request_t *req, e2b_rpc_kind_t kind, const cb_error_t *err)
{
    e2b_rpc_fail(req, kind, e2b_rpc_code_of(err), err ? err->msg : "internal error");
}

int e2b_rpc_stream_begin(http_request_t *req)
{
    return http_stream_begin(req, 200, S_STREAM_TYPE, NULL);
}

static int s_send(http_request_t *req, uint8_t flags, json_t *msg)
{
    cleanup_free char *text = json_dumps(msg, JSON_COMPACT);
    if (!text)
        return -1;
    cleanup_buf cb_buf_t out = {0};
    e2b_rpc_envelope_write(&out, flags, text, strlen(text));
    return http_stream_write(req, out.data, out.len);
}

int e2b_rpc_stream_send(http_request_t *req, json_t *msg) { return s_send(req, 0, msg); }

void e2b_rpc_stream_end(http_request_t *req, const char *code, const char *message)
{
    json_auto_t *end =
        code ? json_pack("{s:o}", "error", s_error_json(code, message)) : json_object();
    s_send(req, E2B_RPC_FLAG_END, end);
    http_stream_end(req);
}
