/* cb/http_head.h: one reader of HTTP/1.x request heads, for every part of the server that reads
 * one (the egress proxy, the port-forwarding front door).
 *
 * libhttp-parser reads the bytes; this records where things are: the method, the URL, the version,
 * each header's name and value as spans into the caller's buffer, and the length of the head
 * (the blank line included), so what follows the head stays where it is. Nothing is copied and
 * nothing is allocated. The buffer is parsed from its start, whole, in one call, so a caller
 * reading a socket calls again with everything it has so far (never once per read). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The most headers a head may hold under any caller's cap. */
#define CB_HTTP_HEAD_MAX_FIELDS 128

/* Bytes [off, off + len) of the parsed buffer. */
typedef struct {
    size_t off, len;
} cb_http_span_t;

/* One header line. A value is never "missing": an empty one is a span of length 0 (inside the
 * buffer). A value folded over lines (obs-fold) spans all its lines, line breaks included: a
 * caller that passes values on refuses the CR or LF inside (see cb_http_head_has_break). */
typedef struct {
    cb_http_span_t name, value;
} cb_http_field_t;

typedef struct {
    size_t head_len;    /* bytes of the head, its blank line included */
    const char *method; /* "GET", "CONNECT", ...: a static string */
    bool is_connect;
    unsigned major, minor;
    cb_http_span_t url; /* as sent: origin, absolute or authority form */
    bool chunked;       /* Transfer-Encoding: chunked */
    bool has_length;    /* a Content-Length header, whose value is content_length */
    uint64_t content_length;
    bool upgrade; /* the parser saw an upgrade (Upgrade, or CONNECT) */
    size_t n_fields;
    cb_http_field_t fields[CB_HTTP_HEAD_MAX_FIELDS];
} cb_http_head_t;

typedef enum {
    CB_HTTP_HEAD_MORE = 0,      /* no complete head yet, and nothing wrong so far */
    CB_HTTP_HEAD_DONE = 1,      /* head filled */
    CB_HTTP_HEAD_BAD = -1,      /* not an HTTP/1.x request head */
    CB_HTTP_HEAD_TOO_LARGE = -2 /* no head within max_len bytes, or over max_fields headers */
} cb_http_head_status_t;

/* Parse the request head at the start of buf (len bytes, maybe more than the head). Only the
 * first max_len bytes are read (SIZE_MAX: no cap of our own); max_fields is clamped to
 * CB_HTTP_HEAD_MAX_FIELDS. head is filled in full only on CB_HTTP_HEAD_DONE. */
cb_http_head_status_t cb_http_head_parse(const char *buf, size_t len, size_t max_len,
                                         size_t max_fields, cb_http_head_t *head);

/* The first header named name (ASCII case-insensitive), or NULL. Borrowed; valid while head. */
const cb_http_field_t *cb_http_head_find(const cb_http_head_t *head, const char *buf,
                                         const char *name);

/* True when span s of buf holds a CR or LF (a folded or broken header line). */
bool cb_http_head_has_break(const char *buf, cb_http_span_t s);
