/* egress_private.h: what the files of egress/ share and the tests and fuzz harnesses reach.
 *
 * policy.c owns the policy's insides and the address classes; http_head.c and socks.c are the
 * two request parsers (pure functions over a buffer, no I/O, so they can be fuzzed alone);
 * resolver.c is the pool of getaddrinfo threads; proxy.c is the event loop that uses them all. */
#ifndef EGRESS_PRIVATE_H
#define EGRESS_PRIVATE_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "cb/http_head.h"
#include "cb/util.h"
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

/* A request head the proxy takes: what cb/http_head.h read, and what the proxy makes of it. */
typedef struct {
    cb_http_head_t head; /* method, version, URL and header spans into the buffer */
    size_t head_len;     /* bytes of the head, terminator included (head.head_len) */
    bool is_connect;     /* head.is_connect */
    char host[256];      /* without brackets for IPv6 */
    uint16_t port;
    size_t path_off, path_len; /* origin form: path and query, into the buffer (len 0: "/") */
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

/* ---- the proxy's insides (proxy.c: the thread and each connection's way to its verdict;
 * pump.c: connections' lifetime, replies and the byte pump, records and events; sandboxes.c:
 * the public functions on sandboxes, events, questions and forwards). Everything below is
 * guarded by egress_t.mu. ---- */

#define EGRESS_BUF (128 * 1024) /* per direction */
#define EGRESS_RECORDS 1024     /* records kept per sandbox */
#define EGRESS_EVENTS 512       /* events queued for the gateway */
#define EGRESS_MAX_REFUSING 64  /* connections over the limit that still get an answer */
#define EGRESS_CLOSE_LINGER_MS 2000
#define EGRESS_PIPE (256 * 1024) /* the pipe's size asked for; the kernel may give less */

typedef enum {
    EGRESS_SRC_WAKE,
    EGRESS_SRC_RESOLVER,
    EGRESS_SRC_LISTENER,
    EGRESS_SRC_CLIENT,
    EGRESS_SRC_UPSTREAM
} egress_src_kind_t;

typedef struct {
    egress_src_kind_t kind;
    void *obj;
} egress_src_t;

typedef struct {
    char *data;
    size_t cap, off, len;
    int pipe[2]; /* splice(2) through it once pumping, when it could be made; else -1 */
    size_t plen; /* bytes in the pipe */
    bool eof;    /* the reading side ended */
    bool shut;   /* passed on: shutdown(SHUT_WR) of the writing side */
} egress_dir_t;

typedef enum {
    EGRESS_ST_HEAD,
    EGRESS_ST_SOCKS_REQ,
    EGRESS_ST_RESOLVING,
    EGRESS_ST_ASKING,
    EGRESS_ST_CONNECTING,
    EGRESS_ST_PUMP,
    EGRESS_ST_CLOSING,
} egress_state_t;

typedef enum {
    EGRESS_P_NONE,
    EGRESS_P_CONNECT,
    EGRESS_P_HTTP,
    EGRESS_P_SOCKS,
    EGRESS_P_FORWARD
} egress_proto_t;

typedef struct egress_conn {
    struct egress_conn *next, *prev;
    egress_t *eg;
    egress_sandbox_t *sb;
    egress_src_t csrc, usrc;
    int cfd, ufd;
    uint32_t cmask, umask; /* what epoll watches now (0: not registered) */
    egress_state_t state;
    egress_proto_t proto;
    bool dead, counted, refusing, literal;
    egress_dir_t up, down; /* client -> upstream, upstream -> client */
    char host[256];
    uint16_t port;
    struct sockaddr_storage addrs[EGRESS_MAX_ADDRS];
    size_t n_addrs, next_addr;
    int connect_errno;
    egress_job_t *job;
    uint64_t ask_id;
    int64_t deadline, last_io;
    uint64_t rec_seq; /* 0: no record */
    char *fail_response;
    uint64_t client_left; /* forwards: client bytes still passed upstream (UINT64_MAX: all) */
    uint16_t tag;         /* forwards: egress_forward's tag */
} egress_conn_t;

typedef struct {
    uint64_t seq;
    char time[CB_ISO8601_LEN];
    int64_t start_ms, end_ms;
    char host[256];
    uint16_t port;
    char address[80];
    const char *protocol;
    bool allowed, open;
    char reason[240];
    uint64_t bytes_out, bytes_in;
} egress_record_t;

struct egress_sandbox {
    egress_sandbox_t *next;
    egress_t *eg;
    egress_src_t lsrc;
    char id[64];
    int lfd;
    bool listening, dead, limit_logged, bytes_logged;
    int64_t accept_paused_until;
    egress_policy_t *policy;
    unsigned max_conns;
    uint64_t max_bytes;
    egress_stats_t st;
    unsigned refusing;
    egress_record_t *recs; /* EGRESS_RECORDS, allocated at the first record */
    uint64_t rec_next;
};

struct egress {
    egress_config_t cfg;
    pthread_t thread;
    bool started, stop;
    pthread_mutex_t mu;
    int epfd, wake_fd, event_fd;
    egress_src_t wake_src, res_src;
    egress_resolver_t *res;
    egress_conn_t *conns, *dead_conns;
    egress_sandbox_t *sandboxes, *dead_sandboxes;
    egress_event_t events[EGRESS_EVENTS];
    size_t ev_head, ev_len;
    uint64_t next_ask;
    int64_t next_sweep;
};

/* pump.c */
extern const char *const egress_proto_names[];
/* Queue an event for the gateway and signal egress_t.event_fd (the oldest goes when full). */
void egress_event_push(egress_t *eg, egress_event_type_t type, const egress_sandbox_t *sb,
                       const char *host, uint16_t port, uint64_t ask_id, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));
/* The record seq of sb, or NULL when it is gone from the ring. */
egress_record_t *egress_record_find(egress_sandbox_t *sb, uint64_t seq);
/* The connection's record, made at the first call (NULL for forwards). */
egress_record_t *egress_record_of(egress_conn_t *c);
/* A new connection on the live list, client fd cfd (Takes ownership). */
egress_conn_t *egress_conn_new(egress_t *eg, egress_sandbox_t *sb, int cfd);
/* Close its fds, cancel its look-up, update its sandbox; onto the dead list (freed later by
 * egress_free_dead). Accepts a dead one. */
void egress_conn_kill(egress_conn_t *c);
void egress_conn_free(egress_conn_t *c);
/* What epoll watches for it, from its state and buffers. */
void egress_conn_update(egress_conn_t *c);
void egress_conn_deadline(egress_conn_t *c, int64_t ms);
void egress_close_fd(egress_t *eg, int *fd, uint32_t *mask);
/* Replies: queue bytes for the client; answer and close (flush, shut, drain, close). */
void egress_conn_reply_bytes(egress_conn_t *c, const void *data, size_t len);
void egress_conn_close_with(egress_conn_t *c, const void *reply, size_t len);
void egress_conn_http_reply(egress_conn_t *c, int status, const char *reason, const char *body);
void egress_conn_socks_reply(egress_conn_t *c, uint8_t code, bool close_after);
/* Move what can move one way (false when the connection died), both ways, or while closing. */
bool egress_conn_pump_dir(egress_conn_t *c, egress_dir_t *d, int src, int dst, bool to_upstream);
void egress_conn_pump(egress_conn_t *c);
void egress_conn_closing_event(egress_conn_t *c);
/* Pump this direction through a pipe with splice(2) (the buffer when no pipe can be made). */
void egress_dir_pipe_open(egress_dir_t *d);

/* proxy.c */
/* Refused by the policy or a limit: the protocol's answer, a record, a LOG event. */
void egress_conn_refuse(egress_conn_t *c, const char *why);
/* The name passed (or a question was answered yes): the literal, or a look-up. */
void egress_conn_after_name(egress_conn_t *c);
void egress_wake(egress_t *eg);
void egress_free_dead(egress_t *eg);

#endif
