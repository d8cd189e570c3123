/* cb/error.h: one error type for every cellblock module.
 *
 * Fallible functions take a `cb_error_t *err` out-parameter (NULL allowed) and return 0/-1 or
 * pointer/NULL. On failure the error carries a kind, the errno if any, and a message with context,
 * made in one line:
 *
 *     return cb_error_make(err, errno, "open workspace '%s'", path);
 *     return cb_error_fail(err, CB_ERR_INVALID, "timeout must be positive, got %d", t);
 *
 * CB_ERROR_MAP is the single table of error kinds: it generates the enum, the names, and the
 * JSON-RPC code each kind maps to when it reaches an MCP or HTTP client. */
#ifndef CB_ERROR_H
#define CB_ERROR_H

#include <stdarg.h>

/*  X(kind,       json-rpc code, short name) */
#define CB_ERROR_MAP(X)                                                                            \
    X(OK, 0, "ok")                                                                                 \
    X(SYSTEM, -32603, "system error")                                                              \
    X(INVALID, -32602, "invalid argument")                                                         \
    X(NOT_FOUND, -32602, "not found")                                                              \
    X(PROTOCOL, -32603, "protocol error")                                                          \
    X(TIMEOUT, -32603, "timed out")                                                                \
    X(LIMIT, -32603, "limit reached")                                                              \
    X(KERNEL_DEAD, -32603, "kernel died")                                                          \
    X(STATE, -32603, "wrong state")                                                                \
    X(INTERNAL, -32603, "internal error")

typedef enum {
#define CB_ERR_ENUM(kind, code, name) CB_ERR_##kind,
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

/* Table look-ups generated from CB_ERROR_MAP. */
const char *cb_error_kind_name(cb_error_kind_t kind);
int cb_error_kind_jsonrpc_code(cb_error_kind_t kind);

#endif
