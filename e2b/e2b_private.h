/* e2b_private.h (private): what the files of the E2B layer share.
 *
 *   e2b.c        the object, the two routes, the registry of sandboxes, and the sandbox plane's
 *                dispatch: which sandbox (E2b-Sandbox-Id, checked against the token that let
 *                the request in), which port (E2b-Sandbox-Port), which service;
 *   connect.c    the Connect protocol (JSON codec) for envd's RPC services: unary and
 *                server-streaming calls over HTTP/1.1, envelopes, error codes;
 *   api.c        the control plane (E2B's REST API) onto the fleet;
 *   process.c    envd's process.Process onto the engine's commands (kg/command.h);
 *   filesystem.c envd's filesystem.Filesystem and its watches;
 *   files.c      envd's /files (download, upload: multipart/form-data or a raw body);
 *   interp.c     the code interpreter's /execute and /contexts onto kernels and executions;
 *   ports.c      E2B's ports (getHost): every port of our sandboxes forwarded (e2b_ports_on).
 *
 * A sandbox created here has a record (e2b_sandbox_t) in the registry, until it is killed, its
 * lifetime runs out, or it dies. Each service keeps its own state in the record (an opaque
 * pointer it defines), and ends it in its *_sandbox_end: before the engine's sandbox goes, every
 * stream a service still has open on it is ended, and nothing of it is used again.
 *
 * Names: e2b_ for the module; e2b_rpc_* for connect.c, e2b_api_* for api.c, e2b_process_*,
 * e2b_fs_* (filesystem.c), e2b_interp_*.
 */
#ifndef E2B_E2B_PRIVATE_H
#define E2B_E2B_PRIVATE_H

#include <stdbool.h>
#include <stdint.h>

#include <czmq.h>
#include <jansson.h>

#include "cb/error.h"
#include "cb/util.h"
#include "e2b/e2b.h"
#include "fleet/fleet.h"
#include "http/http.h"
#include "kg/gateway.h"
#include "kg/sandbox.h"

#define E2B_PREFIX "/e2b"                 /* the control plane: E2B_API_URL */
#define E2B_SANDBOX_PREFIX "/e2b/sandbox" /* every sandbox call: E2B_SANDBOX_URL */
#define E2B_ENVD_PORT 49983               /* envd's port, as the SDKs send it */
#define E2B_JUPYTER_PORT 49999            /* the code interpreter's */
#define E2B_ENVD_VERSION                                                                           \
    "0.6.4"                                    /* what we answer as envdVersion: the SDKs switch
                                              features on by it, and we serve all of 0.6.4's */
#define E2B_BASE_TEMPLATE "python"             /* "base" opens this */
#define E2B_INTERPRETER_TEMPLATE "python-data" /* "code-interpreter-v1" opens this */

typedef struct e2b_procs e2b_procs_t;       /* process.c */
typedef struct e2b_fs e2b_fs_t;             /* filesystem.c */
typedef struct e2b_contexts e2b_contexts_t; /* interp.c */

typedef struct e2b_sandbox {
    e2b_t *api;
    kg_sandbox_t *kg; /* borrowed from the fleet; valid while the record is in the registry */
    char *id;
    char *template_id;        /* the name the client asked for ("base", "python-data", ...) */
    char *template_name;      /* ours, that it opened */
    char *alias;              /* E2B's alias: the template's name as asked */
    json_t *metadata;         /* object of strings, owned */
    int64_t started_at_ms;    /* since the epoch */
    e2b_procs_t *procs;       /* process.c's, NULL until used */
    e2b_fs_t *fs;             /* filesystem.c's, NULL until used */
    e2b_contexts_t *contexts; /* interp.c's, NULL until used */
} e2b_sandbox_t;

struct e2b {
    kg_gateway_t *gw;
    fleet_t *fleet;
    http_server_t *http;
    char *base_template;        /* "base" opens it */
    char *interpreter_template; /* "code-interpreter-v1" opens it */
    zhashx_t *sandboxes;        /* id -> e2b_sandbox_t *, owned */
};

/* ---- e2b.c ---------------------------------------------------------------------------------- */

/* Add a sandbox the fleet opened (with e2b_sandbox_on_end as its fleet_sandbox_opts_t.on_end and
 * the API as its arg) to the registry. Borrowed; valid until it ends. */
e2b_sandbox_t *e2b_sandbox_add(e2b_t *api, kg_sandbox_t *kg, const char *template_id,
                               const char *template_name, json_t *metadata);

/* A sandbox of the registry, or NULL. Borrowed. */
e2b_sandbox_t *e2b_sandbox_find(e2b_t *api, const char *id);
/* The sandbox of the registry with this id that the request may reach: its principal's
 * tenant's (or any, for an admin), or the one its sandbox token names. NULL otherwise, and
 * the caller answers exactly as for an unknown id (e2b_not_found). The one tenant check of
 * the E2B layer. Borrowed. */
e2b_sandbox_t *e2b_sandbox_for(e2b_t *api, http_request_t *req, const char *id);
/* Whether the request may reach sb (as above; no lookup, so safe inside a walk of the
 * registry). */
bool e2b_sandbox_may(http_request_t *req, const e2b_sandbox_t *sb);

/* End the services' state, destroy the engine's sandbox, and forget the record; why is what
 * the fleet remembers (fleet_sandbox_gone). */
void e2b_sandbox_kill(e2b_sandbox_t *sb, const char *why);

/* The fleet's fleet_end_fn for our sandboxes (arg: the API). */
void e2b_sandbox_on_end(kg_sandbox_t *kg, fleet_end_t why, const char *detail, void *arg);

/* 404 for a sandbox id that is not (or no longer) here, with why it went when known; in E2B's
 * error shape ({"code": 404, "message": ...}). */
void e2b_not_found(e2b_t *api, http_request_t *req, const char *id);

/* The wall clock in ms since the epoch (what E2B's timestamps count). */
int64_t e2b_wall_ms(void);

/* An error message as a JSON string: one that is not UTF-8 (it may quote a client's bytes)
 * gets U+FFFD for each bad byte (cb_text_lossy), rather than failing the answer. Caller owns
 * return value. */
json_t *e2b_json_message(const char *message);

/* E2B's REST error shape: {"code": status, "message": message}. */
void e2b_respond_error(http_request_t *req, int status, const char *message);

/* ---- connect.c ------------------------------------------------------------------------------ */

typedef enum {
    E2B_RPC_UNARY,  /* application/json in, application/json out */
    E2B_RPC_STREAM, /* server streaming: one enveloped message in (application/connect+json),
                       enveloped messages out, then the end-of-stream message */
} e2b_rpc_kind_t;

#define E2B_RPC_FLAG_END 0x02 /* an envelope's flag: the end-of-stream message */
#define E2B_RPC_FLAG_COMPRESSED 0x01

/* One envelope at the start of data: flags, and the payload (pointing into data). Returns the
 * envelope's whole size, 0 when data holds no whole envelope yet, -1 when it is malformed
 * (payload longer than max_payload, or a flag bit Connect does not define). Pure, for the unit test and the fuzz harness. */
long e2b_rpc_envelope_parse(const void *data, size_t len, size_t max_payload, uint8_t *flags,
                            const char **payload, size_t *payload_len);
/* Append one envelope to out. */
void e2b_rpc_envelope_write(cb_buf_t *out, uint8_t flags, const void *payload, size_t len);

/* Connect's error codes ("not_found", ...) and their HTTP statuses; the code for a cb_error_t. */
int e2b_rpc_code_status(const char *code);
const char *e2b_rpc_code_of(const cb_error_t *err);

/* The kind a request's Content-Type says it is (application/connect...: a stream), for
 * answering a call whose method is not known. */
e2b_rpc_kind_t e2b_rpc_kind_of(http_request_t *req);

/* The request's message, a JSON object (Caller owns return value); NULL after the error was
 * answered (wrong content type, malformed envelope or JSON, a compressed message). */
json_t *e2b_rpc_request(http_request_t *req, e2b_rpc_kind_t kind);

/* Unary: answer msg (borrowed), or an error (code: Connect's, message: a sentence). req is gone
 * after the call. */
void e2b_rpc_reply(http_request_t *req, json_t *msg);
/* The same with the empty message, {} (most of envd's answers). */
void e2b_rpc_reply_empty(http_request_t *req);
/* An error before any response was begun, for either kind (a stream: 200, then the end of
 * stream carrying the error, which is where Connect clients read it). req is gone after. */
void e2b_rpc_fail(http_request_t *req, e2b_rpc_kind_t kind, const char *code, const char *message);
void e2b_rpc_fail_err(http_request_t *req, e2b_rpc_kind_t kind, const cb_error_t *err);

/* Server streaming: begin (200, application/connect+json), send messages (borrowed), end with
 * success (code NULL) or an error. -1 when the client is gone. req is gone after _end. */
int e2b_rpc_stream_begin(http_request_t *req);
int e2b_rpc_stream_send(http_request_t *req, json_t *msg);
void e2b_rpc_stream_end(http_request_t *req, const char *code, const char *message);

/* ---- api.c ---------------------------------------------------------------------------------- */

/* A request on the control plane; path is what follows E2B_PREFIX ("/v2/sandboxes", ...). */
void e2b_api_handle(e2b_t *api, http_request_t *req, const char *path);

/* ---- process.c ------------------------------------------------------------------------------ */

/* process.Process/<method>. */
void e2b_process_handle(e2b_sandbox_t *sb, http_request_t *req, const char *method);
void e2b_process_sandbox_end(e2b_sandbox_t *sb);

/* ---- filesystem.c --------------------------------------------------------------------------- */

/* filesystem.Filesystem/<method>. */
void e2b_fs_handle(e2b_sandbox_t *sb, http_request_t *req, const char *method);
/* GET and POST /files. */
void e2b_files_handle(e2b_sandbox_t *sb, http_request_t *req);
void e2b_fs_sandbox_end(e2b_sandbox_t *sb);
/* A path as E2B sends it ("/home/user/x", or "x" relative to /home/user) in its lexical absolute
 * form, for showing ("." and ".." and repeated slashes resolved as text). Caller owns return
 * value. */
char *e2b_fs_abs_path(const char *given);
/* envd's EntryInfo from kg_sandbox_file_stat's st (borrowed) for the path abs. Caller owns return
 * value. */
json_t *e2b_fs_entry_info(json_t *st, const char *abs);

/* ---- files.c -------------------------------------------------------------------------------- */

/* One part of a multipart/form-data body: its form name and filename (NUL-terminated, with
 * %22, %0D, %0A decoded as browsers encode them; NULL when absent) and its data, all borrowed
 * for the call. Returns 0 to go on, -1 to stop (the parse then fails with the err fn set). */
typedef int(e2b_part_fn)(const char *name, const char *filename, const char *data, size_t len,
                         void *arg, cb_error_t *err);
/* Parse a whole multipart/form-data body (content_type: its Content-Type, for the boundary),
 * calling fn for each part in order. 0, or -1 with err (malformed: CB_ERR_BAD_REQUEST). Pure
 * and bounded (at most 1000 parts, 8 KiB of headers each), for the fuzz harness. */
int e2b_multipart_parse(const char *content_type, const char *body, size_t len, e2b_part_fn *fn,
                        void *arg, cb_error_t *err);

/* ---- interp.c ------------------------------------------------------------------------------- */

/* /execute, /contexts, /contexts/{id}, /contexts/{id}/restart (path: from "/execute" on). */
void e2b_interp_handle(e2b_sandbox_t *sb, http_request_t *req, const char *path);
void e2b_interp_sandbox_end(e2b_sandbox_t *sb);

#endif
