/* cb/error.h: one error type for every cellblock module.
 *
 * Fallible functions take a `cb_error_t *err` out-parameter (NULL allowed) and return 0/-1 or
 * pointer/NULL. On failure the error carries a kind, the errno if any, and a message with context,
 * made in one line:
 *
 *     return cb_error_make(err, errno, "open workspace '%s'", path);
 *     return cb_error_fail(err, CB_ERR_INVALID, "timeout must be positive, got %d", t);
 *
 * CB_ERROR_MAP is the single table of error kinds, and the one place an edge looks up how a kind
 * reaches a client: it generates the enum, the names, the JSON-RPC code (MCP) and the HTTP status
 * (the Jupyter API, MCP over HTTP), as libuv's UV_ERRNO_MAP generates its enum and strings. No
 * module keeps a switch of its own from kinds to codes. */
#ifndef CB_ERROR_H
#define CB_ERROR_H

#include <stdarg.h>

/*  X(kind,         JSON-RPC code, HTTP status, short name)
 *
 * The first kinds are failures of work (what cb_error_make and cb_error_fail record); the rest
 * are refusals at an edge, before any work: JSON-RPC's own errors and what a transport refuses.
 * Over MCP's Streamable HTTP a JSON-RPC error that answers a request it accepted rides in a 200
 * response; only a message refused as a whole (PARSE, BAD_REQUEST, and the transport's
 * refusals) takes the kind's status (mcp/http.c). */
#define CB_ERROR_MAP(X)                                                                            \
    X(OK, 0, 200, "ok")                                                                            \
    X(SYSTEM, -32603, 500, "system error")                                                         \
    X(INVALID, -32602, 400, "invalid argument")                                                    \
    X(NOT_FOUND, -32602, 404, "not found")                                                         \
    X(PROTOCOL, -32603, 500, "protocol error")                                                     \
    X(TIMEOUT, -32603, 500, "timed out")                                                           \
    X(LIMIT, -32603, 503, "limit reached")                                                         \
    X(KERNEL_DEAD, -32603, 409, "kernel died")                                                     \
    X(STATE, -32603, 409, "wrong state")                                                           \
    X(INTERNAL, -32603, 500, "internal error")                                                     \
    /* something optional this host lacks (a language's toolchain): the message says what to */    \
    /* install */                                                                                  \
    X(UNAVAILABLE, -32603, 501, "not available here")                                              \
    /* JSON-RPC 2.0's own errors */                                                                \
    X(PARSE, -32700, 400, "parse error")                                                           \
    X(BAD_REQUEST, -32600, 400, "invalid request")                                                 \
    X(NO_METHOD, -32601, 404, "method not found")                                                  \
    /* a transport's refusals (JSON-RPC's server-defined range, -32000 to -32099) */               \
    X(TRANSPORT, -32000, 400, "refused by the transport")                                          \
    X(NO_SESSION, -32001, 404, "no such session")                                                  \
    X(UNAUTHORIZED, -32000, 401, "unauthorized")                                                   \
    X(FORBIDDEN, -32000, 403, "forbidden")                                                         \
    X(BAD_METHOD, -32000, 405, "method not allowed")                                               \
    X(NOT_ACCEPTABLE, -32000, 406, "not acceptable")                                               \
    X(CONFLICT, -32000, 409, "conflict")                                                           \
    X(TOO_LARGE, -32600, 413, "too large")                                                         \
    X(MEDIA_TYPE, -32000, 415, "unsupported media type")                                           \
    X(BUSY, -32000, 503, "busy")

typedef enum {
#define CB_ERR_ENUM(kind, code, status, name) CB_ERR_##kind,
    CB_ERROR_MAP(CB_ERR_ENUM)
#undef CB_ERR_ENUM
} cb_error_kind_t;

typedef struct {
    cb_error_kind_t kind;
    int errnum;    /* errno at the failure, or 0 */
    char msg[512]; /* human-readable, with context; never holds keys or user code */
} cb_error_t;

/* Record a system failure (kind SYSTEM) with errnum; appends strerror(errnum) when nonzero.
 * Returns -1 so callers can `return cb_error_make(...)`. err may be NULL. */
int cb_error_make(cb_error_t *err, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Record a failure of the given kind (no errno). Returns -1. err may be NULL. */
int cb_error_fail(cb_error_t *err, cb_error_kind_t kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prepend context ("starting kernel: ") to an error already set. Returns -1. */
int cb_error_prefix(cb_error_t *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Reset to CB_ERR_OK with an empty message. */
void cb_error_clear(cb_error_t *err);

/* Table look-ups generated from CB_ERROR_MAP. A kind outside the table reads as INTERNAL's. */
const char *cb_error_kind_name(cb_error_kind_t kind);
int cb_error_kind_jsonrpc_code(cb_error_kind_t kind);
int cb_error_kind_http_status(cb_error_kind_t kind);

/* The same for an error (NULL, or one still OK after a failure, reads as INTERNAL: a failure
 * that forgot to say what it was is still a failure). */
int cb_error_jsonrpc_code(const cb_error_t *err);
int cb_error_http_status(const cb_error_t *err);

#endif
