/* mcp/mcp.h: cellblock's MCP server (Model Context Protocol 2025-11-25, also 2025-06-18).
 *
 * The server turns MCP tool calls into gateway work: sandboxes, kernels, executions, commands
 * and workspace files (the kg/ headers). It is transport-agnostic: a transport (stdio here; Streamable
 * HTTP later) creates one mcp_session_t per MCP session, feeds it each JSON-RPC message it
 * receives, and writes out each message the session hands to its send function. Everything runs
 * on the gateway's event loop; a tool call that waits (an execution, a kernel start) finishes
 * later from a loop callback, so requests are handled concurrently and nothing blocks.
 *
 * The tools are documented in docs/mcp-tools.md.
 */
#ifndef MCP_MCP_H
#define MCP_MCP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "cb/error.h"
#include "cb/log.h"
#include "http/http.h"
#include "kg/gateway.h"

typedef struct mcp_server mcp_server_t;
typedef struct mcp_session mcp_session_t;

/* Defaults for the sandboxes the server makes, and its own limits. Read from the environment
 * by mcp_config_from_env (see docs/mcp-tools.md, "Configuration"). */
typedef struct {
    int timeout_s;            /* default time limit of each execution and command */
    uint64_t memory_mb;       /* per sandbox */
    uint32_t cpu_millis;      /* per sandbox; 0: no quota */
    uint64_t disk_mb;         /* workspace size per sandbox */
    size_t output_limit;      /* characters of each output kept in a result */
    size_t max_message_bytes; /* largest JSON-RPC message accepted */
    bool log_level_set;       /* log_level came from the environment */
    cb_log_level_t log_level;
    /* Sandbox lifetimes, the cap and the warm pool: for the gateway (kg_config_t), which
     * enforces them. Strings are borrowed from the environment. */
    const char *template_name; /* the default template */
    int sandbox_timeout_s;     /* lifetime of a sandbox; -1: none */
    int idle_timeout_s;        /* 0: no idle culling */
    int max_sandboxes;
    const char *pool;      /* "template=count,..." */
    const char *state_dir; /* NULL: the gateway's default */
    /* MCP over HTTP (mcp_http_opts_t): sessions idle this long end; at most this many. */
    int session_timeout_s;
    size_t max_sessions;
    bool http_server_log;         /* the server's log lines reach MCP sessions over HTTP too (they
                                   always do over stdio): only for a server with one user */
    int kernel_startup_timeout_s; /* a kernel (re)start that is not ready by then is killed; 0:
                                     the gateway's default (60 s) */
    const char *network;          /* CELLBLOCK_NETWORK, checked (egress_policy_from_string); NULL:
                                     none. For the gateway's default (kg_config_t.limits.network) */
} mcp_config_t;

/* Call fn for each template=count of a pool spec ("python=2,python-data=1"); fn NULL only
 * checks the spec. A malformed spec or fn's failure stops it with err set. */
typedef int(mcp_pool_fn)(const char *template_name, int count, void *arg, cb_error_t *err);
int mcp_config_pool_each(const char *spec, mcp_pool_fn *fn, void *arg, cb_error_t *err);

/* Fill cfg with the defaults, then apply the CELLBLOCK_* variables and their E2B_* aliases.
 * A value that is malformed or out of range fails with a message naming the variable and its
 * range (kind CB_ERR_INVALID). */
int mcp_config_from_env(mcp_config_t *cfg, cb_error_t *err);

/* Caller owns return value. gw is borrowed and must outlive the server. cfg NULL: defaults. */
mcp_server_t *mcp_server_new(kg_gateway_t *gw, const mcp_config_t *cfg, cb_error_t *err);

/* End every session, delete every sandbox the server made, free everything. Accepts NULL;
 * nulls the caller's pointer. */
void mcp_server_destroy(mcp_server_t **self_p);

/* The tool list as tools/list returns it ({tools: [...]}). Caller owns return value. */
json_t *mcp_server_tools(mcp_server_t *self);

/* A transport's sink for outgoing messages: one JSON-RPC message (borrowed; valid during the
 * call). Returns 0, or -1 when the message could not be queued (the session is then closing). */
typedef int(mcp_send_fn)(json_t *message, void *arg);

/* A new MCP session on the server. Caller owns return value. */
mcp_session_t *mcp_session_new(mcp_server_t *server, mcp_send_fn *send, void *arg);

/* Who the session acts for (copied): what it may reach, and the tenant of what it makes. A new
 * session acts for CB_PRINCIPAL_LOCAL (stdio's); Streamable HTTP sets the principal of the
 * request that initialized it, and refuses the session to any other tenant's requests. */
void mcp_session_set_principal(mcp_session_t *s, const cb_principal_t *who);

/* End a session: its running calls are cancelled and forgotten (no reply is sent), its default
 * sandbox is deleted. Accepts NULL; nulls the caller's pointer. */
void mcp_session_destroy(mcp_session_t **self_p);

/* Handle one received message: its text (len bytes, need not be NUL-terminated). Replies, now or
 * later, go through the session's send function. Never fails: bad input gets a JSON-RPC error. */
void mcp_session_handle(mcp_session_t *self, const char *text, size_t len);

/* A message the transport could not even read (too large): answered with a JSON-RPC error of
 * the kind's code (cb/error.h), id null. */
void mcp_session_reject(mcp_session_t *self, cb_error_kind_t kind, const char *message);

/* Serve one session over a pair of file descriptors, one JSON-RPC message per line (the stdio
 * transport), until the input ends or the process is interrupted (SIGINT, SIGTERM). Runs the
 * gateway's loop. Returns 0 on a clean end. */
int mcp_stdio_serve(mcp_server_t *server, int in_fd, int out_fd, cb_error_t *err);

/* Serve MCP Streamable HTTP (2025-11-25, also 2025-06-18) at opts->path on an HTTP server
 * (http/http.h): POST carries one JSON-RPC message and is answered with JSON or an SSE stream;
 * GET opens the session's stream of server messages; DELETE ends the session. Mcp-Session-Id
 * is issued with the initialize result and required afterwards; each HTTP session is an
 * mcp_session_t with its own default sandbox; SSE events carry ids, and a stream can be resumed
 * with Last-Event-ID. Sessions that see no request for idle_timeout_s end. Caller owns return
 * value; server and http are borrowed and must outlive it (before http_server_start). */
typedef struct mcp_http mcp_http_t;

typedef struct {
    const char *path;     /* NULL: "/mcp" */
    int idle_timeout_s;   /* a session with no request for this long ends; 0: the server's
                                cfg.session_timeout_s (CELLBLOCK_MCP_SESSION_TIMEOUT, 3600) */
    size_t replay_events; /* events kept per session for Last-Event-ID (0: 1000) */
    size_t max_sessions;  /* initialize beyond it is refused (503); 0: the server's
                                cfg.max_sessions (CELLBLOCK_MCP_MAX_SESSIONS, 256) */
} mcp_http_opts_t;

mcp_http_t *mcp_http_new(mcp_server_t *server, http_server_t *http, const mcp_http_opts_t *opts,
                         cb_error_t *err);

/* Expose sandboxes' ports (sandbox_expose_port) on http (borrowed; before http_server_start),
 * or, with NULL, forget it (before destroying it). Without one, the first expose starts an HTTP
 * server of the MCP server's own on 127.0.0.1:0. */
int mcp_server_ports_on(mcp_server_t *srv, http_server_t *http, cb_error_t *err);

/* End every HTTP session (their default sandboxes with them). Accepts NULL; nulls the caller's
 * pointer. */
void mcp_http_destroy(mcp_http_t **self_p);

#endif
