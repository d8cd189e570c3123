/* egress/egress.h: the network plane the gateway owns: a policy of allowed and denied
 * destinations, the proxy every sandbox's outbound traffic goes through, and the byte pump
 * that carries forwarded ports into a sandbox.
 *
 * A sandbox has its own network namespace with loopback only; it never gets a route. When its
 * policy allows any egress, the gateway has the sandbox's init create a TCP socket in that
 * namespace, binds it to 127.0.0.1:EGRESS_INSIDE_PORT, listens, and hands it to
 * egress_sandbox_add. Processes inside connect there and speak HTTP (CONNECT, or a plain
 * request with an absolute URI) or SOCKS5 (told apart by the first byte). The proxy resolves
 * names on the host, checks the policy against the requested name and every address it
 * resolved to, and only then connects.
 *
 * Threads: the proxy runs on one thread of its own (egress_new starts it). Every function here
 * may be called from any one thread (the gateway's loop); none blocks on the network. Events for
 * that thread (log lines, questions for `ask` policies) are queued and signalled on
 * egress_event_fd.
 */
#ifndef EGRESS_EGRESS_H
#define EGRESS_EGRESS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cb/error.h"

/* The port inside every sandbox where the proxy listens (HTTP and SOCKS5 on one port). */
#define EGRESS_INSIDE_PORT 3128

/* ---------------------------------------------------------------------------------------------
 * Policies.
 *
 * A policy is "none" (no egress: the default), or an allow list and a deny list of entries,
 * where the deny list wins. An entry is a host name ("pypi.org"), a wildcard ("*.github.com":
 * any name under github.com, not github.com itself), "*" (any public address), an IPv4 or IPv6
 * address or CIDR block ("10.0.0.0/8", "[::1]"), each with an optional port (":443"; default:
 * any port). Preset names expand to entries ("packages": the usual registries of pip, npm,
 * cargo, go and git hosts).
 *
 * Loopback, private (RFC 1918, ULA), link-local, CGNAT, multicast, unspecified and cloud
 * metadata addresses (169.254.169.254, fd00:ec2::254, ...) are refused, whatever name led to
 * them, unless an allow entry names that address or a block containing it explicitly (a name
 * or "*" never does).
 *
 * JSON forms accepted (egress_policy_from_json): the strings "none", "all" (allow "*"), "ask",
 * a preset name; or an object {allow: [entries], deny: [entries], presets: [names], ask: bool,
 * max_connections: N, max_bytes: N}, with E2B's keys accepted as well (allowedDomains,
 * blockedDomains, allowHTTP, allowHTTPS, allowInternetAccess). String form
 * (egress_policy_from_string, for CELLBLOCK_NETWORK and flags): "none", "all", "ask", a preset,
 * or "allow=a,b;deny=c;presets=packages;ask=1".
 * ------------------------------------------------------------------------------------------- */

typedef struct egress_policy egress_policy_t;

/* Caller owns return value. NULL with err (CB_ERR_INVALID, naming the bad entry) on bad input. */
egress_policy_t *egress_policy_from_json(const json_t *spec, cb_error_t *err);
egress_policy_t *egress_policy_from_string(const char *spec, cb_error_t *err);
egress_policy_t *egress_policy_copy(const egress_policy_t *self); /* Caller owns return value */
void egress_policy_destroy(egress_policy_t **self_p);

/* No egress at all: the gateway then creates no proxy socket for the sandbox. */
bool egress_policy_is_none(const egress_policy_t *self);
/* {mode: "none"|"allow"|"ask", allow: [...], deny: [...], max_connections, max_bytes}, presets
 * expanded. Caller owns return value. */
json_t *egress_policy_describe(const egress_policy_t *self);

typedef enum {
    EGRESS_ALLOW,
    EGRESS_DENY, /* denied by an entry, or by no entry with a plain allow policy */
    EGRESS_ASK,  /* not allowed, and the policy asks */
} egress_verdict_t;

/* The verdict for a name (NULL when only an address was asked for) and port; then, for each
 * address it resolved to, egress_policy_check_address. why (may be NULL) gets a sentence for the
 * refusal, such as "example.com is not in the sandbox's allow list". */
egress_verdict_t egress_policy_check_name(const egress_policy_t *self, const char *host,
                                          uint16_t port, char *why, size_t why_size);
/* addr is a struct sockaddr_in or sockaddr_in6. */
egress_verdict_t egress_policy_check_address(const egress_policy_t *self, const void *addr,
                                             char *why, size_t why_size);

/* ---------------------------------------------------------------------------------------------
 * The proxy.
 * ------------------------------------------------------------------------------------------- */

typedef struct egress egress_t;
typedef struct egress_sandbox egress_sandbox_t;

typedef struct {
    int connect_timeout_ms; /* to the destination; 0: 10 s */
    int idle_timeout_ms; /* a connection with no bytes either way this long is closed; 0: 10 min */
    int head_timeout_ms; /* a client must finish its request head this fast; 0: 10 s */
    unsigned max_connections; /* per sandbox, when its policy sets none; 0: 256 */
    uint64_t max_bytes;       /* per sandbox, both ways, when its policy sets none; 0: no limit */
    int ask_timeout_ms;       /* an unanswered question is a refusal after this; 0: 60 s */
} egress_config_t;

/* Start the proxy thread. cfg may be NULL. Caller owns return value. */
egress_t *egress_new(const egress_config_t *cfg, cb_error_t *err);
/* Stop the thread, close every connection and listener. Accepts NULL; nulls the pointer. */
void egress_destroy(egress_t **self_p);

/* Serve a sandbox: listen_fd is a listening TCP socket (Takes ownership, also on failure), or -1
 * when the sandbox has no egress (the registration then only ties forwards to it); id names the
 * sandbox in events (copied), policy is copied (may be NULL with listen_fd -1). Borrowed; valid until
 * egress_sandbox_remove. */
egress_sandbox_t *egress_sandbox_add(egress_t *self, const char *id, int listen_fd,
                                     const egress_policy_t *policy, cb_error_t *err);
/* Close its listener and every connection of it at once. Accepts NULL; nulls the pointer. */
void egress_sandbox_remove(egress_t *self, egress_sandbox_t **sb_p);
/* Extend the sandbox's allow list by one entry (an `ask` answered yes, or an operator's call). */
int egress_sandbox_allow(egress_sandbox_t *sb, const char *entry, cb_error_t *err);

typedef struct {
    uint64_t connections;     /* accepted from inside */
    uint64_t allowed, denied; /* of those, by verdict (a refusal asked and answered no: denied) */
    uint64_t bytes_out, bytes_in; /* to the destination, from it */
    unsigned open;                /* open now */
} egress_stats_t;

void egress_sandbox_stats(egress_sandbox_t *sb, egress_stats_t *out);
/* The last max (0: all kept; at least the last 1000 are kept) connection records, oldest first:
 * [{time: ISO 8601 UTC, host, port, address, protocol: "connect"|"http"|"socks5", allowed,
 * reason, bytes_out, bytes_in, duration_ms, open}]. Caller owns return value. */
json_t *egress_sandbox_connections(egress_sandbox_t *sb, size_t max);

/* Events for the caller's thread. The fd becomes readable when events are queued; drain with
 * egress_next_event until it returns false. */
typedef enum {
    EGRESS_EVENT_LOG, /* text: one line for the sandbox's log (a refusal, a limit reached) */
    EGRESS_EVENT_ASK, /* a connection waits for egress_answer(ask_id, ...): host and port */
} egress_event_type_t;

typedef struct {
    egress_event_type_t type;
    char sandbox_id[64];
    uint64_t ask_id;
    char host[256];
    uint16_t port;
    char text[512];
} egress_event_t;

int egress_event_fd(egress_t *self);
bool egress_next_event(egress_t *self, egress_event_t *out);
/* Answer a question: allow lets that connection through (and, with remember, adds "host:port"
 * to the sandbox's allow list); otherwise it is refused. An unknown or late id is ignored. */
void egress_answer(egress_t *self, uint64_t ask_id, bool allow, bool remember);

/* ---------------------------------------------------------------------------------------------
 * Forwarding: pump bytes both ways between a client connection and a connection into a
 * sandbox, on the proxy's thread.
 * ------------------------------------------------------------------------------------------- */

/* Pump between client_fd and upstream_fd (Takes ownership of both, also on failure) until both
 * directions have ended or either errs; upstream_fd may still be connecting (non-blocking
 * connect in progress): a failed connect closes client_fd after writing fail_response (may be
 * NULL; e.g. a 502 page). prefix (may be NULL) is written to upstream first (a rewritten request
 * head). At most client_bytes_max bytes the client sends after that are passed upstream
 * (UINT64_MAX: no limit, as for a WebSocket); later ones are read and dropped, so a keep-alive
 * client's next request (which may carry credentials) never reaches the sandbox, and the client
 * connection is closed once the upstream's direction has ended. Half-close is passed on
 * (shutdown SHUT_WR). sb (may be NULL) is the sandbox whose removal closes the pump too. */
int egress_forward(egress_t *self, egress_sandbox_t *sb, int client_fd, int upstream_fd,
                   const void *prefix, size_t prefix_len, uint64_t client_bytes_max,
                   const char *fail_response, cb_error_t *err);

#endif
