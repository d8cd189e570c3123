/* api_private.h (private): what api.c (the REST routes) and channels.c (the WebSocket channels)
 * of the Jupyter Kernel Gateway API share.
 *
 * The API keeps a record (japi_kernel_t) for each kernel it has a reason to follow: one it
 * started (it owns that kernel's sandbox), one with WebSocket channels, one whose restart it is
 * answering. The record listens to its kernel (kg_kernel_listen) and is freed when the kernel
 * stops. Sessions and sandboxes are freed by the reap, a deferred call of the gateway
 * (kg_gateway_defer), never from a timer handler nor from the middle of a kernel's event: the
 * callers up the stack may still hold them.
 *
 * Names: japi_ for the module; japi_kernel_* for the records, japi_channels_* for channels.c's
 * side, japi_session_t for one channels session.
 */
#ifndef JAPI_API_PRIVATE_H
#define JAPI_API_PRIVATE_H

#include "fleet/fleet.h"
#include "japi/japi.h"
#include "kg/gateway.h"

#define JAPI_GONE_MAX 256 /* kernels whose end is remembered for 404 messages */

typedef struct japi_session japi_session_t;

/* A kernel that went, and why: remembered for the 404s of its tenant (and admins). */
typedef struct {
    char *kernel_id;
    char *tenant; /* NULL: only admins hear why */
    char *why;
} japi_gone_t;

typedef struct japi_kernel {
    japi_t *api;
    kg_kernel_t *kernel; /* borrowed; the record goes when the kernel stops */
    char id[37];
    char *tenant;        /* its sandbox's (fleet_sandbox_tenant) when the record was made; NULL:
                            only an admin may reach it */
    bool owned;          /* started by POST /api/kernels: its sandbox is ours */
    char sandbox_id[37]; /* owned: the sandbox opened for it */
    bool deleting;       /* DELETE (or a shutdown_request) is under way */
    zlistx_t *sessions;  /* japi_session_t *, owned (until doomed) */
    zlistx_t *restarts;  /* http_request_t * waiting for READY after a restart */
} japi_kernel_t;

struct japi {
    kg_gateway_t *gw;
    http_server_t *http;
    char *template_name;
    char *default_kernel; /* the template's kernel: what POST starts without a name */
    fleet_t *fleet;       /* the gateway's (fleet_of): POST's sandboxes come from it */
    int kernel_timeout_s;
    size_t replay_messages;
    int replay_keep_s;
    zhashx_t *kernels;               /* kernel id -> japi_kernel_t *, owned */
    bool reap_pending;               /* the reap is queued (kg_gateway_defer) */
    zlistx_t *doomed;                /* japi_session_t * to free on the reap's turn */
    zlistx_t *doomed_sandboxes;      /* sandbox ids (char *) to destroy on the reap's turn */
    japi_gone_t gone[JAPI_GONE_MAX]; /* a ring */
    size_t gone_next;
};

/* ---- api.c --------------------------------------------------------------------------------- */

/* The record of a kernel, made (and listening) on first use when create. NULL when (without
 * create) unknown, or when the kernel refuses a listener. */
japi_kernel_t *japi_kernel_get(japi_t *api, kg_kernel_t *kernel, bool create);

/* The tenant a kernel belongs to: its sandbox's (fleet_sandbox_tenant), NULL when none (only an
 * admin may reach it). Borrowed; valid with the kernel. */
const char *japi_kernel_tenant(const kg_kernel_t *k);

/* A kernel who may address, or NULL (unknown, stopping, a pooled spare, being deleted, or
 * another tenant's: all answered alike). The one test every route and the WebSocket make.
 * Borrowed; see kg_kernel_start. */
kg_kernel_t *japi_kernel_find(japi_t *api, const char *id, const cb_principal_t *who);

/* Queue the reap (once) for a fresh loop turn. */
void japi_wake(japi_t *api);

/* End a kernel the API started: close its channels, forget it, and destroy its sandbox on the
 * reap's turn. why is remembered for later 404s. */
void japi_kernel_delete(japi_kernel_t *ak, const char *why);

/* Why a kernel that is gone went, or NULL; NULL too when who may not reach what the kernel's
 * tenant owned (who NULL: the API itself asks, for the kernel's own connections). Borrowed;
 * valid until the next end. */
const char *japi_gone(japi_t *api, const char *kernel_id, const cb_principal_t *who);

/* The 404 body for a kernel id who cannot address (unknown, or gone, as japi_gone says):
 * "no kernel with id '...'" or "kernel ... is gone: why". Caller owns return value. */
char *japi_not_found_message(japi_t *api, const char *kernel_id, const cb_principal_t *who);

/* ---- channels.c ---------------------------------------------------------------------------- */

/* The http_ws_open_fn for /api/kernels/{id}/channels (arg: the API). */
void japi_channels_on_ws(http_ws_t *ws, void *arg);

/* Open WebSockets on the kernel. */
size_t japi_channels_connections(const japi_kernel_t *ak);

/* The kernel's events and iopub messages, fanned out to its sessions (listener callbacks). */
void japi_channels_on_event(japi_kernel_t *ak, kg_kernel_event_t event, const char *detail);
void japi_channels_on_iopub(japi_kernel_t *ak, const jp_msg_t *msg);

/* Close every WebSocket of the kernel (code, reason) and doom its sessions. */
void japi_channels_close_all(japi_kernel_t *ak, int code, const char *reason);

/* Free a doomed session: its kernel client, its buffers. */
void japi_session_free(japi_session_t *sess);

#endif
