/* mcp_private.h: the MCP server's insides, shared by its files (never installed).
 *
 *   session.c    JSON-RPC and the MCP methods: initialize, ping, logging, tools/list, tools/call,
 *                cancellation; the life of one call (mcp_call_t) and its progress notifications
 *   tools.c      the tool table (names, descriptions, schemas, handlers) and argument checks
 *   sandboxes.c  sandboxes and their REPLs (jupyter kernels, terminals); sandbox_* tools
 *   jobs.c       executions and commands followed by id; code_execute, command_execute, ...
 *   content.c    execution results turned into MCP content blocks, with the output limits
 *   terminal.c   terminal REPLs: a bash fed line by line, its output cut at markers
 *   files.c      the file_* tools
 *   config.c     the environment variables
 *   stdio.c      the stdio transport
 *   http.c       the Streamable HTTP transport (sessions, SSE streams, resumption)
 *
 * Words: a "session" in C (mcp_session_t, call->session) is always an MCP session, one client's
 * JSON-RPC conversation. What the tools call a session (session_create, session_id) is a REPL
 * in C (mcp_repl_t): a jupyter kernel or a terminal in a sandbox. docs/architecture.md's
 * glossary names every kind of session in the code.
 */
#ifndef MCP_PRIVATE_H
#define MCP_PRIVATE_H

#include "cb/alloc.h"
#include "fleet/fleet.h"
#include "mcp/mcp.h"
#include "kg/gateway.h"
#include "kg/command.h"
#include "http/http.h"

#define MCP_PROTOCOL_LATEST "2025-11-25"
#define MCP_SERVER_NAME "cellblock"
#define MCP_JOBS_KEPT 256 /* finished jobs remembered for execution_status */
/* Output kept per stream of a background command: its latest, between this and twice this. */
#define MCP_BACKGROUND_RING_BYTES (256u << 10)
#define MCP_PROGRESS_GAP_MS 50     /* at most one progress notification per call per gap */
#define MCP_PROGRESS_TEXT_MAX 4000 /* bytes of output carried by one progress notification */
#define MCP_OUTPUTS_DIR "/home/user/.cellblock/outputs"
#define MCP_REPLY_MAX (8u << 20) /* largest tools/call reply; bigger ones become an error */

typedef struct mcp_sandbox mcp_sandbox_t;
typedef struct mcp_repl mcp_repl_t;
typedef struct mcp_term mcp_term_t;
typedef struct mcp_call mcp_call_t;
typedef struct mcp_job mcp_job_t;

/* ---- the server ---------------------------------------------------------------------------- */

struct mcp_server {
    kg_gateway_t *gw;
    fleet_t *fleet; /* the gateway's policy: templates, pools, lifetimes (fleet_of) */
    mcp_config_t cfg;
    json_t *tools;       /* the tools/list result, built once */
    zhashx_t *sandboxes; /* id -> mcp_sandbox_t *, owned */
    zhashx_t *repls; /* REPL id (the tools' session_id) -> mcp_repl_t *, owned by their sandboxes */
    zhashx_t *jobs;  /* id -> mcp_job_t *, owned */
    zlistx_t *finished;        /* ids of finished jobs, oldest first (for eviction) */
    zlistx_t *sessions;        /* mcp_session_t *, not owned */
    http_server_t *ports_http; /* where ports are exposed (ports.c); NULL until needed */
    bool ports_own;            /* started by us (stdio mode), destroyed with the server */
};

/* ---- sessions and calls (session.c) -------------------------------------------------------- */

struct mcp_session {
    mcp_server_t *server;
    mcp_send_fn *send;
    void *send_arg;
    bool initialized;          /* initialize answered */
    char protocol[16];         /* negotiated version */
    int log_level;             /* index into the MCP levels; -1: the client asked for none */
    zlistx_t *calls;           /* mcp_call_t * in flight, owned */
    mcp_sandbox_t *default_sb; /* created on first use */
    char *default_gone;        /* why the last default sandbox ended, until the next is made */
    json_t *related;           /* borrowed: the id of the request that what is being sent now
                                  relates to (while it is dispatched, and for its progress), or
                                  NULL; a transport with a stream per request reads it */
    bool server_log;           /* the server's own log lines reach it (after logging/setLevel):
                                  true on stdio, where the one client is the operator; false over
                                  HTTP, where they would show one client's work to another */
    json_t *client_caps;   /* initialize's params.capabilities (an object), owned; NULL before */
    zlistx_t *requests;    /* mcp_request_t *, owned: our requests the client has not answered */
    uint64_t last_request; /* the number in our last request's id */
    cb_principal_t who;    /* who it acts for (mcp_session_set_principal); who.tenant is
                              tenant below */
    char tenant[CB_TENANT_NAME_MAX + 1];
};

/* Requests from the server to the client (elicitation/create, ...). fn runs exactly once, on the
 * loop: with the response's result (or error; both borrowed, valid during the call), or with
 * both NULL when the client did not answer within the timeout or the session ended (s is then
 * NULL). */
typedef void(mcp_response_fn)(mcp_session_t *s, json_t *result, json_t *error, void *arg);
/* Send method with params (stolen) to the client. Returns 0, or -1 (fn not called) when the
 * session has too many unanswered requests or the message could not be sent. */
int mcp_session_request(mcp_session_t *s, const char *method, json_t *params, int timeout_ms,
                        mcp_response_fn *fn, void *arg);
/* The client declared this capability at initialize (params.capabilities has the key). */
bool mcp_session_client_can(const mcp_session_t *s, const char *capability);

/* Handle one parsed message (borrowed), as mcp_session_handle does with text. */
void mcp_session_dispatch(mcp_session_t *self, json_t *msg);

/* The id of a message that jansson refused (a string holding \u0000 or a lone surrogate, an
 * integer beyond 64 bits), read by a second, lenient pass, so that the error answer carries it.
 * NULL when no id can be read exactly: none, not a string or integer, a string that itself holds
 * a lone surrogate (jansson writes only UTF-8). An integer id beyond 64 bits comes back as the
 * nearest double (a JSON number of that value) and sets *rounded. Caller owns return value. */
json_t *mcp_rpc_salvage_id(const char *text, size_t len, bool *rounded);
/* jansson's reason for refusing a message, in the client's terms. Borrowed. */
const char *mcp_rpc_parse_error_text(const json_error_t *jerr);
#define MCP_RPC_ROUNDED_ID_NOTE                                                                    \
    "; the id is an integer beyond 64 bits: it is echoed as the nearest double-precision number"

/* Is this a protocol version the server speaks ("2025-11-25", "2025-06-18", "2025-03-26",
 * "2024-11-05")? */
bool mcp_protocol_supported(const char *version);

/* Whether the session's negotiated revision is version or later (what it may be sent:
 * structuredContent, outputSchema, titles and resource_link from "2025-06-18" on). */
bool mcp_session_speaks(const mcp_session_t *s, const char *version);

/* Answer a request with a result (stolen), or with a JSON-RPC error (data stolen; may be NULL). */
void mcp_session_reply(mcp_session_t *s, json_t *id, json_t *result);
void mcp_session_error_data(mcp_session_t *s, json_t *id, int code, const char *message,
                            json_t *data);

/* The MIME type of a file by its name's extension (application/octet-stream when unknown).
 * files.c. */
const char *mcp_mime_of(const char *path);

/* The embedded resource (a content block's "resource") with this uri in the result of a job of
 * sb still remembered, or NULL. jobs.c. Caller owns return value. */
json_t *mcp_job_resource(mcp_server_t *srv, mcp_sandbox_t *sb, const char *uri);

/* ---- resources (resources.c) ---------------------------------------------------------------- */

/* resources/list, resources/read and resources/templates/list (params borrowed). */
void mcp_resources_list(mcp_session_t *s, json_t *id, json_t *params);
void mcp_resources_read(mcp_session_t *s, json_t *id, json_t *params);
void mcp_resources_templates(mcp_session_t *s, json_t *id, json_t *params);

/* A resource_link content block for a workspace file of sb (path absolute, under /home/user, or
 * relative to it). Sessions before 2025-06-18 get it as text (mcp_call_finish). Caller owns
 * return value. */
json_t *mcp_resource_link(mcp_sandbox_t *sb, const char *path, const char *mime);

/* Stops a call's work. call->session may be NULL (the session is ending); the function may
 * finish the call itself. */
typedef void(mcp_call_cancel_fn)(mcp_call_t *call);
typedef void(mcp_ready_fn)(mcp_call_t *call, mcp_repl_t *repl);

/* One tools/call in flight. It belongs to its session until it is finished; a handler that
 * finishes later keeps the pointer in what it waits on (a job, a REPL's waiters) and must
 * finish it exactly once. When the client cancels, or the session ends, the call is marked
 * cancelled, its cancel function runs, and its eventual finish sends nothing. */
struct mcp_call {
    mcp_session_t *session;
    json_t *id;             /* the request id */
    json_t *progress_token; /* NULL: no progress wanted */
    const char *tool;       /* borrowed from the tool table */
    bool cancelled;
    mcp_call_cancel_fn *cancel; /* set by a handler that can stop its work */
    /* progress */
    double progress;
    cb_buf_t pending;
    int64_t last_progress_ms;
    int progress_timer;
    /* what the call waits on (set by the handler) */
    mcp_job_t *job;
    mcp_repl_t *repl; /* a REPL to be ready (with on_ready), or a terminal's input */
    mcp_ready_fn *on_ready;
    int timer;
    void *install;  /* packages.c: the package install it waits on, before its code runs */
    void *notebook; /* notebooks.c: the notebook run it waits on */
};

/* Finish a call with a result (structured: the structuredContent; content: the blocks). Both
 * stolen; content NULL: one text block with the structured value as JSON. Sends nothing when
 * the call was cancelled. Frees the call. */
void mcp_call_finish(mcp_call_t *call, json_t *content, json_t *structured, bool is_error);

/* Finish with isError and one text block (printf-style). */
void mcp_call_fail(mcp_call_t *call, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Output for the call's progress notifications (sent at once, or merged and sent within
 * MCP_PROGRESS_GAP_MS). No-op without a progress token. */
void mcp_call_progress(mcp_call_t *call, const char *text, size_t len);

/* The session's default sandbox, created on first use when create is set. NULL with err set. */
mcp_sandbox_t *mcp_session_default_sandbox(mcp_session_t *s, bool create, cb_error_t *err);

/* Log a line to the session's client as notifications/message when its level allows. */
void mcp_session_log(mcp_session_t *s, cb_log_level_t level, const char *text);

/* ---- tools (tools.c) ----------------------------------------------------------------------- */

typedef void(mcp_tool_fn)(mcp_call_t *call, json_t *args);

typedef struct {
    const char *name;
    const char *title;
    const char *description;
    const char *input_schema;  /* JSON text */
    const char *output_schema; /* JSON text, or NULL */
    unsigned hints;            /* MCP_HINT_* */
    mcp_tool_fn *run;
} mcp_tool_t;

enum { MCP_HINT_READ_ONLY = 1, MCP_HINT_DESTRUCTIVE = 2, MCP_HINT_IDEMPOTENT = 4 };

/* Look a tool up. NULL when unknown. */
const mcp_tool_t *mcp_tool_find(const char *name);

/* The tool's place in the table, which is also its place in mcp_tools_list's array. */
size_t mcp_tool_index(const mcp_tool_t *tool);

/* {tools: [...]} with every schema parsed. Caller owns return value. */
json_t *mcp_tools_list(cb_error_t *err);

/* Check arguments against a tool's parsed inputSchema (the subset the table uses: object
 * properties, types, enum, minimum, maximum, required, additionalProperties). Fills msg with
 * what is wrong, naming the argument. Returns 0 when they fit. */
int mcp_tool_check_args(json_t *schema, json_t *args, char *msg, size_t msg_size);

/* Typed argument access after the check (absent: the default). */
const char *mcp_arg_str(json_t *args, const char *key, const char *dflt);
double mcp_arg_num(json_t *args, const char *key, double dflt);
bool mcp_arg_bool(json_t *args, const char *key, bool dflt);

/* ports.c: the sandbox's forwards closed and its exposed ports forgotten; the exposed ports as
 * an array (Caller owns return value); the HTTP server of our own, if any, destroyed. */
void mcp_ports_sandbox_gone(mcp_sandbox_t *sb);
json_t *mcp_ports_list(mcp_sandbox_t *sb);
void mcp_server_ports_destroy(mcp_server_t *srv);

/* Handlers, by file. */
mcp_tool_fn mcp_tool_sandbox_expose_port, mcp_tool_sandbox_unexpose_port;
mcp_tool_fn mcp_tool_sandbox_create, mcp_tool_sandbox_list, mcp_tool_sandbox_info,
    mcp_tool_sandbox_delete, mcp_tool_sandbox_set_timeout, mcp_tool_sandbox_logs,
    mcp_tool_sandbox_metrics, mcp_tool_server_metrics, mcp_tool_session_create,
    mcp_tool_session_close, mcp_tool_session_connect, mcp_tool_kernel_restart;
mcp_tool_fn mcp_tool_code_execute, mcp_tool_run_code, mcp_tool_code_execute_async,
    mcp_tool_execution_status, mcp_tool_execution_cancel, mcp_tool_command_execute,
    mcp_tool_session_execute;
mcp_tool_fn mcp_tool_sandbox_history; /* history.c */
mcp_tool_fn mcp_tool_file_upload, mcp_tool_file_download, mcp_tool_file_list, mcp_tool_file_delete;
mcp_tool_fn mcp_tool_process_list, mcp_tool_process_kill, mcp_tool_process_output;
mcp_tool_fn mcp_tool_terminal_send, mcp_tool_terminal_read, mcp_tool_terminal_resize;

/* ---- sandboxes and their REPLs (sandboxes.c) ----------------------------------------------- */

typedef enum { MCP_REPL_JUPYTER = 0, MCP_REPL_TERMINAL } mcp_repl_type_t;

struct mcp_sandbox {
    mcp_server_t *server;
    kg_sandbox_t *kg; /* from fleet_sandbox_open; the gateway may end it (s_on_sandbox_end) */
    char id[37];
    char *kernel_name; /* of the main REPL */
    char *notice;      /* said once, on the first result from it; NULL: nothing */
    json_t *metadata;  /* object of strings */
    json_t *env;       /* object of strings */
    char **env_list;   /* the same as "KEY=VALUE", NULL-terminated */
    int timeout_s;
    uint32_t cpu_millis;
    mcp_session_t *owner;   /* the session whose default sandbox this is, or NULL */
    mcp_session_t *creator; /* the session that made it (asked by `ask` policies), or NULL */
    mcp_repl_t *main;       /* the main jupyter REPL */
    zlistx_t *repls;        /* mcp_repl_t *, owned */
    char created_at[40];
    json_t *ports;    /* exposed ports: "PORT" -> {port, url, host_url, host}; NULL: none */
    int spare_fds[2]; /* sockets made inside ahead of the next forwards (-1: none; ports.c) */
};

/* A REPL: what the tools call a session (session_create, session_execute, session_id), a
 * jupyter kernel or a terminal in a sandbox. Not an MCP session (mcp_session_t). */
struct mcp_repl {
    mcp_sandbox_t *sandbox;
    char id[37];
    mcp_repl_type_t type;
    /* jupyter */
    kg_kernel_t *kernel; /* NULL once stopped */
    char *kernel_name;
    bool by_kernel; /* started by code_execute's language or kernel without a session id: the
                       sandbox's kernel for that name, found again by the next such call
                       (mcp_sandbox_kernel_repl); a session_create session is never shared */
    bool ready;
    char *failure;     /* why it cannot be used, once it never can again (closed, stopped) */
    char *dead_detail; /* why its kernel was last given up (KG_EVENT_DEAD); whether it is dead
                           now is the kernel's state: a restart from any route revives it */
    char *dead_note;   /* the sentence mcp_repl_failure made from dead_detail, or NULL */
    zlistx_t *waiters; /* mcp_call_t * waiting for ready */
    /* terminal (terminal.c) */
    mcp_term_t *term;    /* its terminal, screen and markers; NULL when none */
    mcp_call_t *running; /* the call whose input the shell is running */
    int timer;           /* that input's time limit, then its grace period */
    /* jupyter: the cell history (notebooks.c), code cells in the order they ran */
    json_t *cells;        /* nbformat code cells, or NULL before the first */
    size_t cells_bytes;   /* their size as JSON */
    size_t cells_dropped; /* the oldest ones let go to stay within the bounds */
};

/* The live sandbox with this id when s may reach it (fleet_sandbox_visible), else NULL: the one
 * test every tool's sandbox_id goes through. */
mcp_sandbox_t *mcp_sandbox_get(mcp_session_t *s, const char *id);

/* Find a sandbox: by id, or this session's default (created when create). On failure the call
 * is finished with a message and NULL returned. */
mcp_sandbox_t *mcp_sandbox_for_call(mcp_call_t *call, json_t *args, bool create);

/* The sandbox's expires_at (an ISO 8601 string, or JSON null for no limit); NULL when no live
 * sandbox has that id. Caller owns return value. */
json_t *mcp_sandbox_expires_json(mcp_server_t *srv, const char *id);

/* Make a sandbox with its main jupyter REPL, belonging to who's tenant (NULL: CB_TENANT_LOCAL).
 * args: sandbox_create's (NULL: defaults). */
mcp_sandbox_t *mcp_sandbox_new(mcp_server_t *srv, const cb_principal_t *who, json_t *args,
                               cb_error_t *err);
void mcp_sandbox_delete(mcp_sandbox_t **sb_p);

/* The sandbox's jupyter REPL for kernel_name (NULL: the main one): the main one when it runs
 * that kernel, else the one an earlier call started for it, else a new one (kept for the next
 * call: one per kernel, so one per language). Sessions from session_create are not taken. */
mcp_repl_t *mcp_sandbox_kernel_repl(mcp_sandbox_t *sb, const char *kernel_name, cb_error_t *err);

/* The kernelspec that runs language (any spelling of jupyter/catalog.h's table): main_kernel
 * when main_language is that language, else jp_kernelspec_for_language with kernels_dir as the
 * project's directory (its errors name what runs here and a missing toolchain's package).
 * Caller owns return value. Blocks: reads the kernelspecs (jobs.c). */
char *mcp_kernel_for_language(const char *kernels_dir, const char *language,
                              const char *main_kernel, const char *main_language, cb_error_t *err);

/* Look a REPL up by id (the tools' session_id; NULL with err). s: the MCP session asking (NULL:
 * the server itself); a REPL in a sandbox of a tenant it may not reach is answered exactly as
 * an unknown id. */
mcp_repl_t *mcp_repl_find(mcp_server_t *srv, mcp_session_t *s, const char *id, cb_error_t *err);

/* A new REPL in the sandbox. */
mcp_repl_t *mcp_repl_new(mcp_sandbox_t *sb, mcp_repl_type_t type, const char *kernel_name,
                         cb_error_t *err);
/* The same, a terminal of cols x rows (0: 80 x 24). */
mcp_repl_t *mcp_repl_new_sized(mcp_sandbox_t *sb, mcp_repl_type_t type, const char *kernel_name,
                               unsigned short cols, unsigned short rows, cb_error_t *err);
void mcp_repl_close(mcp_repl_t **repl_p);

/* Why the REPL cannot run code now, or NULL: its failure, or its kernel being dead (read
 * from the kernel, so a restart through any route serves every route). Borrowed; valid until
 * the REPL's kernel is given up again or the REPL is freed. */
const char *mcp_repl_failure(mcp_repl_t *repl);

/* Finish the call once the REPL is ready (now if it is): reply is called then, or the call
 * fails with the REPL's failure. */
void mcp_repl_when_ready(mcp_repl_t *repl, mcp_call_t *call, mcp_ready_fn *reply);

/* ---- notebooks (notebooks.c) ---------------------------------------------------------------- */

/* The REPL's executed cells and their outputs as an nbformat 4 notebook (what session_export
 * writes, and what cellblock://sandbox/{id}/session/{session_id}/notebook.ipynb reads).
 * Caller owns return value; NULL with err for a terminal REPL. */
json_t *mcp_repl_notebook(mcp_repl_t *repl, cb_error_t *err);
/* Keep a finished execution (code, its kg result; both borrowed) in the REPL's cell history. */
void mcp_repl_history_add(mcp_repl_t *repl, const char *code, const json_t *result);
/* Free the history (the REPL is being freed). */
void mcp_repl_history_free(mcp_repl_t *repl);
mcp_tool_fn mcp_tool_notebook_run, mcp_tool_session_export;

/* Turn an error message from the gateway into a call failure. */
void mcp_call_fail_err(mcp_call_t *call, const cb_error_t *err);

/* ---- terminals (terminal.c) ---------------------------------------------------------------- */

/* Start the session's bash on a terminal of the sandbox (cols x rows; 0: 80 x 24). */
int mcp_terminal_start(mcp_repl_t *repl, unsigned short cols, unsigned short rows, cb_error_t *err);
void mcp_terminal_execute(mcp_repl_t *repl, mcp_call_t *call, const char *input, int timeout_ms);
void mcp_terminal_stop(mcp_repl_t *repl);

/* ---- jobs (jobs.c) ------------------------------------------------------------------------- */

/* Start code on a jupyter REPL and have the call wait for its end (code_execute's path): args
 * are code_execute's (timeout_s, stdin; borrowed). note (may be NULL; copied) goes first in the
 * result's notes. On failure the call is finished. */
void mcp_code_run_and_wait(mcp_call_t *call, mcp_repl_t *repl, json_t *args, const char *code,
                           const char *note);

/* The end of every job still running in a sandbox that is going away. */
void mcp_jobs_sandbox_gone(mcp_server_t *srv, mcp_sandbox_t *sb);
void mcp_jobs_destroy_all(mcp_server_t *srv);

/* ---- packages (packages.c) ----------------------------------------------------------------- */

/* Check code_execute's `packages` (absent is fine): an array of 1 to 64 names, each 1 to 256
 * bytes with no whitespace or control character and no leading '-' (never an installer's
 * option). Fills msg with what is wrong. Returns 0 when they fit. */
int mcp_packages_check(json_t *args, char *msg, size_t msg_size);

/* Install args' packages in repl's sandbox with the installer of its kernel's language (pip,
 * npm; any other language fails the call), then run args' code there as code_execute does,
 * in what is left of the time limit. A failed install finishes the call with an execution
 * result whose error (PackageInstallError) holds the installer's output; the code is not run. */
void mcp_packages_install_then_run(mcp_call_t *call, mcp_repl_t *repl, json_t *args);

/* ---- content (content.c) ------------------------------------------------------------------- */

/* Make an execution's kg result fit for a client: limits applied, tracebacks without ANSI
 * codes, ids added. Returns the structured result (caller owns it) and, through content_out,
 * the content blocks (caller owns them). content_out NULL: a snapshot of a running execution,
 * for which nothing is saved in the workspace (sb may be NULL: the sandbox is gone). */
json_t *mcp_execution_structured(mcp_server_t *srv, mcp_sandbox_t *sb, const char *repl_id,
                                 json_t *kg_result, json_t **content_out);

/* Cut text to the output limit, saving the whole of it in sb's workspace under name when cut
 * (sb NULL: not saved). Returns the text to show (caller owns it); *cut tells whether it was
 * cut; a note saying so is appended to notes. */
char *mcp_limit_text(mcp_server_t *srv, mcp_sandbox_t *sb, const char *text, const char *what,
                     const char *name, json_t *notes, bool *cut);

/* A shell run's output (a command, a terminal input): stdout and stderr cut to the limit (the
 * whole saved as "<prefix>-stdout.txt" and "-stderr.txt" in sb's workspace when cut) and set in
 * structured with "truncated"; notes noted in structured's "notes" array, which must exist.
 * Returns the content blocks: stdout, stderr headed [stderr], the notes, then closing.
 * Caller owns return value. */
json_t *mcp_shell_result(mcp_server_t *srv, mcp_sandbox_t *sb, const char *prefix, const char *out,
                         const char *err, json_t *structured, const char *closing);

/* Remove ANSI escape sequences. Caller owns return value. */
char *mcp_strip_ansi(const char *text);

/* ---- JSON helpers ---------------------------------------------------------------------------- */

/* A text content block. Caller owns return value. */
json_t *mcp_text_block(const char *text);

/* ---- network (network.c) ------------------------------------------------------------------ */

/* sandbox_create's `network` argument (a string or an object; egress_policy_from_json) into
 * *out (NULL when absent; Caller owns it). -1 with err naming the problem when it is bad. */
int mcp_network_policy(json_t *args, struct egress_policy **out, cb_error_t *err);
/* Put the questions of `ask` policies to the session that created the sandbox (elicitation). */
void mcp_network_init(mcp_server_t *srv);
void mcp_network_fini(mcp_server_t *srv);
/* The session ends: sandboxes it created have no one to ask any more. */
void mcp_sandboxes_session_gone(mcp_server_t *srv, mcp_session_t *s);

#endif
