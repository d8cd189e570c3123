/* egress_private.h: what the files of egress/ share and the tests and fuzz harnesses reach.
 *
 * policy.c owns the policy's insides and the address classes; http_head.c and socks.c are the
 * two request parsers (pure functions over a buffer, no I/O, so they can be fuzzed alone);
 * resolver.c is the pool of getaddrinfo threads; proxy.c is the event loop that uses them all. */
#ifndef EGRESS_PRIVATE_H
#define EGRESS_PRIVATE_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "egress/egress.h"

/* ---- policy.c ---- */

#define EGRESS_MAX_ENTRIES 1024
#define EGRESS_MAX_ENTRY_LEN 253

typedef enum {
    EGRESS_ENTRY_NAME, /* "pypi.org" */
    EGRESS_ENTRY_WILD, /* "*.github.com": name holds "github.com" */
    EGRESS_ENTRY_ANY,  /* "*" */
    EGRESS_ENTRY_NET,  /* an address or CIDR block */
} egress_entry_kind_t;

typedef struct {
    egress_entry_kind_t kind;
    char name[EGRESS_MAX_ENTRY_LEN + 1]; /* lower case, no trailing dot */
    int family;                          /* NET: AF_INET or AF_INET6 */
    uint8_t addr[16];                    /* NET: network bytes, masked */
    unsigned prefix;                     /* NET: prefix length */
    uint16_t port;                       /* 0: any port */
} egress_entry_t;

struct egress_policy {
    bool ask;
    egress_entry_t *allow, *deny;
    size_t n_allow, n_deny;
    unsigned max_connections; /* 0: the proxy's configuration decides */
    uint64_t max_bytes;       /* 0: the proxy's configuration decides */
};

/* Parse one entry ("pypi.org:443", "*.x.com", "10.0.0.0/8", "[::1]:80"). */
int egress_entry_parse(const char *text, egress_entry_t *out, cb_error_t *err);
/* The entry as text (the form describe shows). */
void egress_entry_format(const egress_entry_t *e, char *buf, size_t size);
/* Append an entry to the allow (deny false) or deny list; refuses beyond EGRESS_MAX_ENTRIES. */
int egress_policy_add(egress_policy_t *self, const char *text, bool deny, cb_error_t *err);

/* The refused class an address belongs to ("a loopback address"), or NULL for a public one.
 * IPv4-mapped, IPv4-compatible, NAT64 and 6to4 IPv6 addresses are judged by the IPv4 address
 * inside. addr is a sockaddr_in or sockaddr_in6. */
const char *egress_address_class(const struct sockaddr *addr);
/* The address (without port) as text; the IPv4 inside a mapped IPv6 address is shown as such. */
void egress_address_text(const struct sockaddr *addr, char *buf, size_t size);

/* ---- http_head.c ---- */

#define EGRESS_HEAD_MAX 16384
#define EGRESS_HEAD_MAX_HEADERS 100

typedef struct {
    size_t name_off, name_len, value_off, value_len;
} egress_http_header_t;

typedef struct {
    size_t head_len; /* bytes of the head, terminator included */
    bool is_connect;
    const char *method;
    unsigned major, minor;
    char host[256]; /* without brackets for IPv6 */
    uint16_t port;
    size_t path_off, path_len; /* origin form: path and query, into the buffer (len 0: "/") */
    size_t n_headers;
    egress_http_header_t headers[EGRESS_HEAD_MAX_HEADERS];
} egress_http_req_t;

typedef enum {
    EGRESS_HEAD_MORE = 0,      /* no complete head yet */
    EGRESS_HEAD_DONE = 1,      /* req filled */
    EGRESS_HEAD_BAD = -1,      /* not HTTP, or not a request a proxy takes: 400, why says */
    EGRESS_HEAD_TOO_LARGE = -2 /* head over EGRESS_HEAD_MAX or too many headers: 431 */
} egress_head_status_t;

/* Parse a request head at the start of buf (len bytes, maybe more than the head). */
egress_head_status_t egress_http_head_parse(const char *buf, size_t len, egress_http_req_t *req,
                                            char *why, size_t why_size);
/* The head to send upstream for a plain request: origin form, Proxy-* and Connection-ish
 * headers dropped, Host added when missing, "Connection: close". Returns its length, or 0 when it
 * does not fit in cap. */
size_t egress_http_rewrite(const char *buf, const egress_http_req_t *req, char *out, size_t cap);

/* ---- socks.c ---- */

enum {
    SOCKS_OK = 0x00,
    SOCKS_FAILURE = 0x01,
    SOCKS_NOT_ALLOWED = 0x02,
    SOCKS_NET_UNREACHABLE = 0x03,
    SOCKS_HOST_UNREACHABLE = 0x04,
    SOCKS_REFUSED = 0x05,
    SOCKS_TTL = 0x06,
    SOCKS_BAD_COMMAND = 0x07,
    SOCKS_BAD_ATYP = 0x08,
};

typedef struct {
    char host[256]; /* a domain, or an address as text */
    bool literal;   /* host is an IPv4 or IPv6 address */
    uint16_t port;
} egress_socks_req_t;

/* The greeting (05 n methods...). Returns the bytes it took (> 0), 0 for more, -1 when bad;
 * *noauth tells whether method 00 was offered. */
int egress_socks_greeting(const uint8_t *buf, size_t len, bool *noauth);
/* The request (05 cmd 00 atyp addr port). Returns the bytes it took (> 0), 0 for more, or
 * -(reply code) when it must be refused with that code (SOCKS_BAD_COMMAND, SOCKS_BAD_ATYP,
 * SOCKS_FAILURE for malformed). */
int egress_socks_request(const uint8_t *buf, size_t len, egress_socks_req_t *req);

/* ---- resolver.c ---- */

#define EGRESS_MAX_ADDRS 16

typedef struct egress_resolver egress_resolver_t;
typedef struct egress_job {
    struct egress_job *next;
    void *owner; /* NULL once cancelled */
    char host[256];
    int gai_error; /* 0 or getaddrinfo's code */
    size_t n_addrs;
    struct sockaddr_storage addrs[EGRESS_MAX_ADDRS];
} egress_job_t;

/* Start threads resolver threads. Caller owns return value. */
egress_resolver_t *egress_resolver_new(int threads, cb_error_t *err);
/* The fd that turns readable when jobs are done. */
int egress_resolver_fd(egress_resolver_t *self);
/* Queue a look-up of host for owner. Returns the job (borrowed until it comes back from
 * egress_resolver_done, or forever once cancelled). */
egress_job_t *egress_resolver_submit(egress_resolver_t *self, const char *host, void *owner);
/* Forget the owner: the job's result will be dropped. */
void egress_resolver_cancel(egress_resolver_t *self, egress_job_t *job);
/* The next finished job whose owner still wants it (Caller owns return value: free()), or NULL. */
egress_job_t *egress_resolver_done(egress_resolver_t *self);
/* Stop: the threads finish their current look-up and exit on their own; nothing blocks. */
void egress_resolver_destroy(egress_resolver_t **self_p);

#endif
