/* kg/kernel.h: kernels: a kernelspec's process, its five channels, readiness, heartbeat, restarts,
 * and the attach proxy for external Jupyter clients.
 *
 * Blocking: kg_kernel_start reads the kernelspec and asks the sandbox's init to start the process
 * (a short exchange on its control socket); kg_kernel_attach writes the connection file and
 * binds loopback ports. Nothing else blocks: a kernel's progress comes as events on the loop.
 * From a kernel's own on_event, kg_kernel_shutdown is fine; the kernel is freed only after its
 * KG_EVENT_STOPPED callback returns.
 *
 * Threads: call every function here from the thread that runs the gateway's loop
 * (kg_gateway_loop), as the callbacks are; nothing here is thread-safe.
 */
#ifndef KG_KERNEL_H
#define KG_KERNEL_H

#include <sys/types.h>

#include "cb/error.h"
#include "jupyter/wire.h" /* jp_msg_t in a listener's iopub */
#include "kg/types.h"

/* ---------------------------------------------------------------------------------------------
 * Kernels.
 * ------------------------------------------------------------------------------------------- */

typedef struct {
    const char *kernel_name;  /* kernelspec name; NULL: "python3" */
    const char *const *env;   /* extra "KEY=VALUE" entries, NULL-terminated; borrowed */
    const char *cwd;          /* working directory of the kernel; NULL: the workspace (in a
                                  sandbox) or inherited */
    kg_sandbox_t *sandbox;    /* run inside this sandbox; NULL: a sandbox of its own, removed
                                  with the kernel (or none with kg_config_t.no_sandbox) */
    const char *startup_code; /* run silently after each start and restart, before READY is
                                  reported and before any queued execution; NULL: none */
    kg_kernel_event_fn *on_event;
    void *arg;
} kg_kernel_opts_t;

/* Start a kernel. Returns at once; the kernel reports KG_EVENT_READY through on_event when it
 * answers kernel_info and its iopub is flowing. Executions may be queued before that. The
 * gateway owns the kernel. Borrowed; valid until the KG_EVENT_STOPPED callback returns (or
 * kg_gateway_destroy). */
kg_kernel_t *kg_kernel_start(kg_gateway_t *gw, const kg_kernel_opts_t *opts, cb_error_t *err);

/* Replace the kernel's event callback (fn NULL: no more events), e.g. before the object that
 * listened goes away while the kernel shuts down. */
void kg_kernel_set_events(kg_kernel_t *self, kg_kernel_event_fn *fn, void *arg);

/* Shut down asynchronously: shutdown_request on control, then SIGTERM, then SIGKILL to the
 * kernel's process group; the process is reaped and its run dir removed; queued and running
 * executions end with status "cancelled". KG_EVENT_STOPPED follows. */
void kg_kernel_shutdown(kg_kernel_t *self);

/* Interrupt the running cell (SIGINT to the process group, or interrupt_request on control,
 * as the spec's interrupt_mode says). */
int kg_kernel_interrupt(kg_kernel_t *self, cb_error_t *err);

/* Restart: stop the process and start it again with the same connection info and key. The
 * running execution ends as "kernel_died" with a note; queued ones run after the restart, and
 * the first of them reports kernel_restarted. */
int kg_kernel_restart(kg_kernel_t *self, cb_error_t *err);

const char *kg_kernel_id(const kg_kernel_t *self);       /* Borrowed; valid with the kernel */
const char *kg_kernel_name(const kg_kernel_t *self);     /* Borrowed; valid with the kernel */
const char *kg_kernel_language(const kg_kernel_t *self); /* Borrowed; valid with the kernel */
kg_kernel_state_t kg_kernel_state(const kg_kernel_t *self);
/* Ready for work: idle or busy, and its startup code done (READY has been reported). */
bool kg_kernel_is_ready(const kg_kernel_t *self);
/* An execution is running or queued. */
bool kg_kernel_is_busy(const kg_kernel_t *self);
/* It has been ready at least once (one that never was is starting, and is not restarted). */
bool kg_kernel_ever_ready(const kg_kernel_t *self);
const char *kg_kernel_state_name(kg_kernel_state_t state);
pid_t kg_kernel_pid(const kg_kernel_t *self); /* 0 when no process runs */
int kg_kernel_restart_count(const kg_kernel_t *self);

/* Directory holding the kernel's connection file and ipc sockets, as a host path for tests and
 * diagnosis: without a sandbox "<runtime_dir>/k-<id8>"; in a sandbox, whose /run/cellblock is
 * a tmpfs only its own mount namespace has, "/proc/<init pid>/root/run/cellblock/k-<id8>"
 * (readable by root; the sandbox's init is not dumpable). The gateway itself works there only
 * through fds. Borrowed; valid with the kernel. */
const char *kg_kernel_run_dir(const kg_kernel_t *self);

/* ---------------------------------------------------------------------------------------------
 * Attach: a connection file for external Jupyter clients (jupyter console --existing FILE,
 * jupyter_client's BlockingKernelClient). It names loopback TCP ports proxied by the gateway
 * with a key of its own; frames are verified and re-signed both ways, and frames that fail
 * verification are dropped and counted, never forwarded.
 * ------------------------------------------------------------------------------------------- */

/* Start the kernel's attach proxy if needed and write its connection file (mode 0600), named
 * "k-<id8>.attach.json", where code in sandboxes cannot write: the sandbox's host run dir (the
 * gateway's own, 0700, never mounted inside), or the runtime dir without a sandbox. Returns the
 * file's path. Borrowed; valid with the kernel. */
const char *kg_kernel_attach(kg_kernel_t *self, cb_error_t *err);

/* ---------------------------------------------------------------------------------------------
 * Listeners and what the surfaces above the engine read of a kernel.
 * ------------------------------------------------------------------------------------------- */

/* Listeners besides a kernel's one on_event (kg_kernel_set_events stays the owner's): they hear
 * the kernel's lifecycle events and every verified iopub message. */
typedef void(kg_iopub_fn)(kg_kernel_t *kernel, const jp_msg_t *msg, void *arg);
typedef struct {
    kg_kernel_event_fn *on_event; /* may be NULL */
    kg_iopub_fn *on_iopub;        /* may be NULL; msg borrowed for the call */
    void *arg;                    /* names the listener (kg_kernel_unlisten) */
} kg_kernel_listener_t;

/* Add a listener (copied); it hears events after the owner's on_event, and iopub messages as
 * they are dispatched. Remove it (by arg) before arg goes away; a listener may remove itself
 * (or another) from its callback, a STOPPED one included. */
int kg_kernel_listen(kg_kernel_t *self, const kg_kernel_listener_t *listener, cb_error_t *err);
void kg_kernel_unlisten(kg_kernel_t *self, void *arg);

/* Something went to or came from the kernel: its last activity is now. */
void kg_kernel_touch(kg_kernel_t *self);

/* The last activity, wall clock, µs since the epoch (a message either way, or a touch). */
int64_t kg_kernel_last_activity_us(const kg_kernel_t *self);

/* kg_kernel_shutdown was called, or the kernel stopped: it will not be ready again. */
bool kg_kernel_is_stopping(const kg_kernel_t *self);

/* The sandbox the kernel runs in; NULL without one. Borrowed; valid with the kernel. */
kg_sandbox_t *kg_kernel_sandbox(const kg_kernel_t *self);

/* The session id in the headers of the gateway's own messages to and about this kernel.
 * Borrowed; valid with the kernel. */
const char *kg_kernel_session(const kg_kernel_t *self);

#endif
