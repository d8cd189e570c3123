/* api_private.h (private): what api.c (the REST routes) and channels.c (the WebSocket channels)
 * of the Jupyter Kernel Gateway API share.
 *
 * The API keeps a record (kg_api_kernel_t) for each kernel it has a reason to follow: one it
 * started (it owns that kernel's sandbox), one with WebSocket channels, one whose restart it is
 * answering. The record listens to its kernel (kg_kernel_listen) and is freed when the kernel
 * stops. Sessions and sandboxes are freed by the reap, a deferred call of the gateway
 * (kg_gateway_defer), never from a timer handler nor from the middle of a kernel's event: the
 * callers up the stack may still hold them.
 */
#ifndef KG_API_PRIVATE_H
#define KG_API_PRIVATE_H

#include "kg_private.h"

#define KG_API_GONE_MAX 256 /* kernels whose end is remembered for 404 messages */

typedef struct kg_chan_session kg_chan_session_t;

typedef struct kg_api_kernel {
    kg_api_t *api;
    kg_kernel_t *kernel;      /* borrowed; the record goes when the kernel stops */
    char id[37];
    bool owned;               /* started by POST /api/kernels: its sandbox is ours */
    char sandbox_id[37];      /* owned: the sandbox opened for it */
    bool deleting;            /* DELETE (or a shutdown_request) is under way */
    zlistx_t *sessions;       /* kg_chan_session_t *, owned (until doomed) */
    zlistx_t *restarts;       /* http_request_t * waiting for READY after a restart */
} kg_api_kernel_t;

struct kg_api {
    kg_gateway_t *gw;
    http_server_t *http;
    char *template_name;
    char *default_kernel;     /* the template's kernel: what POST starts without a name */
    const kg_api_opener_t *opener; /* the policy layer's: POST's sandboxes come from it */
    void *opener_arg;
    int kernel_timeout_s;
    size_t replay_messages;
    int replay_keep_s;
    zhashx_t *kernels;        /* kernel id -> kg_api_kernel_t *, owned */
    bool reap_pending;        /* the reap is queued (kg_gateway_defer) */
    zlistx_t *doomed;         /* kg_chan_session_t * to free on the reap's turn */
    zlistx_t *doomed_sandboxes; /* sandbox ids (char *) to destroy on the reap's turn */
    char *gone[KG_API_GONE_MAX]; /* "<kernel id> <why>", a ring */
    size_t gone_next;
};

/* ---- api.c --------------------------------------------------------------------------------- */

/* The record of a kernel, made (and listening) on first use when create. NULL when out of
 * memory or (without create) unknown. */
kg_api_kernel_t *kg_api_kernel_get(kg_api_t *api, kg_kernel_t *kernel, bool create);

/* A kernel a client may address, or NULL (unknown, stopping, a pooled spare, being deleted).
 * Borrowed; see kg_kernel_start. */
kg_kernel_t *kg_api_find_kernel(kg_api_t *api, const char *id);

/* Queue the reap (once) for a fresh loop turn. */
void kg_api_wake(kg_api_t *api);

/* End a kernel the API started: close its channels, forget it, and destroy its sandbox on the
 * reap's turn. why is remembered for later 404s. */
void kg_api_delete_kernel(kg_api_kernel_t *ak, const char *why);

/* Why a kernel that is gone went, or NULL. Borrowed; valid until the next end. */
const char *kg_api_gone(kg_api_t *api, const char *kernel_id);

/* ---- channels.c ---------------------------------------------------------------------------- */

/* The http_ws_open_fn for /api/kernels/{id}/channels (arg: the API). */
void kg_channels_on_ws(http_ws_t *ws, void *arg);

/* Open WebSockets on the kernel. */
size_t kg_channels_connections(const kg_api_kernel_t *ak);

/* The kernel's events and iopub messages, fanned out to its sessions (listener callbacks). */
void kg_channels_on_event(kg_api_kernel_t *ak, kg_kernel_event_t event, const char *detail);
void kg_channels_on_iopub(kg_api_kernel_t *ak, const kg_msg_t *msg);

/* Close every WebSocket of the kernel (code, reason) and doom its sessions. */
void kg_channels_close_all(kg_api_kernel_t *ak, int code, const char *reason);

/* Free a doomed session: its sockets, its buffer. */
void kg_channels_session_free(kg_chan_session_t *sess);

#endif
