/* error.c: cb_error_t construction and the tables generated from CB_ERROR_MAP. */
#include "cb/error.h"

#include <stdio.h>
#include <string.h>

static void s_vformat(cb_error_t *err, const char *fmt, va_list ap)
{
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
}

int cb_error_make(cb_error_t *err, int errnum, const char *fmt, ...)
{
    if (!err)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    s_vformat(err, fmt, ap);
    va_end(ap);
    err->kind = CB_ERR_SYSTEM;
    err->errnum = errnum;
    if (errnum) {
        size_t used = strlen(err->msg);
        snprintf(err->msg + used, sizeof err->msg - used, ": %s", strerror(errnum));
    }
    return -1;
}

int cb_error_fail(cb_error_t *err, cb_error_kind_t kind, const char *fmt, ...)
{
    if (!err)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    s_vformat(err, fmt, ap);
    va_end(ap);
    err->kind = kind;
    err->errnum = 0;
    return -1;
}

int cb_error_prefix(cb_error_t *err, const char *fmt, ...)
{
    if (!err)
        return -1;
    char prefix[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    /* Shift the message right and put the prefix in front; the tail is cut if it must be. */
    size_t plen = strlen(prefix); /* < sizeof prefix <= sizeof err->msg - 1 */
    size_t mlen = strnlen(err->msg, sizeof err->msg - 1);
    if (plen + mlen > sizeof err->msg - 1)
        mlen = sizeof err->msg - 1 - plen;
    memmove(err->msg + plen, err->msg, mlen);
    memcpy(err->msg, prefix, plen);
    err->msg[plen + mlen] = '\0';
    return -1;
}

void cb_error_clear(cb_error_t *err)
{
    if (!err)
        return;
    err->kind = CB_ERR_OK;
    err->errnum = 0;
    err->msg[0] = '\0';
}

const char *cb_error_kind_name(cb_error_kind_t kind)
{
    switch (kind) {
#define CB_ERR_NAME(k, code, status, name)                                                         \
    case CB_ERR_##k: return name;
        CB_ERROR_MAP(CB_ERR_NAME)
#undef CB_ERR_NAME
    }
    return "unknown error";
}

int cb_error_kind_jsonrpc_code(cb_error_kind_t kind)
{
    switch (kind) {
#define CB_ERR_CODE(k, code, status, name)                                                         \
    case CB_ERR_##k: return code;
        CB_ERROR_MAP(CB_ERR_CODE)
#undef CB_ERR_CODE
    }
    return cb_error_kind_jsonrpc_code(CB_ERR_INTERNAL);
}

int cb_error_kind_http_status(cb_error_kind_t kind)
{
    switch (kind) {
#define CB_ERR_STATUS(k, code, status, name)                                                       \
    case CB_ERR_##k: return status;
        CB_ERROR_MAP(CB_ERR_STATUS)
#undef CB_ERR_STATUS
    }
    return cb_error_kind_http_status(CB_ERR_INTERNAL);
}

static cb_error_kind_t s_failed_kind(const cb_error_t *err)
{
    return err && err->kind != CB_ERR_OK ? err->kind : CB_ERR_INTERNAL;
}

int cb_error_jsonrpc_code(const cb_error_t *err)
{
    return cb_error_kind_jsonrpc_code(s_failed_kind(err));
}

int cb_error_http_status(const cb_error_t *err)
{
    return cb_error_kind_http_status(s_failed_kind(err));
}
