/* kg/gateway.h: the gateway: the loop, its timers and deferred calls, configuration and counters.
 *
 * Blocking: kg_gateway_new (makes the runtime directory), kg_gateway_destroy (shuts every kernel
 * down, bounded by the grace periods) and kg_gateway_run_until (runs the loop) block; nothing
 * else here does. None of these three may be called from a loop callback.
 *
 * Threads: call every function here from the thread that runs the gateway's loop
 * (kg_gateway_loop), as the callbacks are; nothing here is thread-safe.
 */
#ifndef KG_GATEWAY_H
#define KG_GATEWAY_H

#include <czmq.h>
#include <stddef.h>

#include "cb/error.h"
#include "egress/egress.h"
#include "jupyter/connfile.h" /* jp_transport_t in kg_config_t */
#include "kg/types.h"

/* ---------------------------------------------------------------------------------------------
 * The gateway.
 * ------------------------------------------------------------------------------------------- */

typedef struct {
    const char *runtime_dir;  /* parent of per-kernel run dirs; NULL: $XDG_RUNTIME_DIR/cellblock
                                 or /tmp/cellblock-<uid> */
    const char *kernels_dir;  /* the project's kernelspecs; NULL: built-in default */
    jp_transport_t transport; /* kernel sockets; ipc by default, tcp binds 127.0.0.1 only */
    int startup_timeout_ms;   /* start to ready; 0: 60000 */
    int heartbeat_ms;         /* heartbeat period; 0: 3000; < 0 disables */
    int heartbeat_misses;     /* consecutive misses before a kernel counts as hung; 0: 3 */
    int interrupt_grace_ms;   /* after a timeout's interrupt, before restarting; 0: 3000 */
    int shutdown_grace_ms;    /* each shutdown step (request, SIGTERM); 0: 2000 */
    int restart_limit;        /* automatic restarts after deaths per kernel; 0: 5; < 0: none */
    bool no_sandbox;          /* kernels run as plain host processes: development and benchmarks
                                 only, never for untrusted code */
    bool seccomp_log;         /* sandboxes log syscalls outside the allowlist instead of denying */
    kg_sandbox_limits_t limits; /* defaults for every new sandbox */
    int64_t max_message_bytes;  /* largest message the gateway takes from a kernel (or from code in
                                  its sandbox) on any socket; a bigger one is refused unread and
                                  its connection dropped. <= 0: KG_MAX_MESSAGE_BYTES_DEFAULT */
} kg_config_t;

/* 64 MiB: as much as an execution keeps of rich results in all. */
#define KG_MAX_MESSAGE_BYTES_DEFAULT (64ll * 1024 * 1024)

typedef struct {
    uint64_t kernels_started;
    uint64_t kernels_died;
    uint64_t kernels_restarted;
    uint64_t executions;
    uint64_t executions_failed; /* any status other than ok */
    uint64_t bad_signatures;    /* rejected: wrong length or wrong value */
    uint64_t replayed_signatures;
    uint64_t malformed_messages; /* no delimiter, too few frames, invalid JSON after a valid sig */
    uint64_t proxy_dropped;      /* attach-proxy frames dropped for any of the reasons above */
    uint64_t kernels_oom;        /* kernel deaths that were the sandbox's OOM killer */
    uint64_t commands;
    uint64_t sandboxes_created; /* every sandbox made, pooled ones included */
} kg_counters_t;

/* Caller owns return value. config may be NULL (all defaults). */
kg_gateway_t *kg_gateway_new(const kg_config_t *config, cb_error_t *err);

/* Shut every kernel down (request, SIGTERM, SIGKILL; bounded by the grace periods), remove
 * every run dir, free everything. Accepts NULL; nulls the caller's pointer. */
void kg_gateway_destroy(kg_gateway_t **self_p);

/* The event loop. Borrowed; valid until kg_gateway_destroy. Other modules add their own
 * readers and pollers to it, and their timers and deferred calls through the functions below.
 *
 * The loop's two lifetime rules (libuv's promises for uv_timer_stop and uv_close, kept here
 * because czmq 4.2.1's zloop keeps neither: zloop_timer_end only queues the id, removed after
 * the pass's pollers, so a timer ended earlier in a pass still runs in it, and after a pass in
 * which a timer changed the poll set, in the next ones too; once zloop_start has returned,
 * zloop_timer_end frees at once, so a timer ending itself makes zloop write to freed memory):
 *
 *  1. Timers are kg_timer_start/kg_timer_stop, never zloop_timer/zloop_timer_end. Once
 *     kg_timer_stop has returned, that timer's callback never runs again, even when it was due
 *     in the pass now under way. A one-shot timer is over once its callback starts (stopping it
 *     from there is a no-op); a timer started in a pass never runs in that pass, even at 0 ms.
 *  2. A loop-owned object that a registered reader, poller, timer or a caller up the stack may
 *     still reach is freed only through kg_gateway_defer, never in the callback that ends it.
 *     Deferred calls run in the order they were queued, each once, from the queue's own poller:
 *     on a later dispatch than the callback that queued it, after that callback returned to the
 *     loop. Before queueing the free, end the object's readers and pollers and stop its timers:
 *     ending a reader or poller makes zloop rebuild its poll set before it dispatches anything
 *     else, so nothing registered for the object can be called once the free has run.
 *
 * Inside any callback (reader, poller, timer, deferred call, an on_done/on_event) you may: start
 * and stop timers (your own included), queue and cancel deferred calls, add and end readers and
 * pollers. You may not: call zloop_timer or zloop_timer_end; free an object that is still
 * registered or that a caller up the stack holds (queue the free instead); run the loop again
 * (kg_gateway_run_until, zloop_start). A deferred call itself is a fresh turn: it may free.
 * ------------------------------------------------------------------------------------------- */
zloop_t *kg_gateway_loop(kg_gateway_t *self);

/* A timer callback: zloop's shape (loop, the timer's id, arg). Returns 0, or -1 to leave the
 * loop (kg_gateway_handler_result says which while a run_until waits). */
typedef int(kg_timer_fn)(zloop_t *loop, int timer_id, void *arg);

/* Run fn(loop, id, arg) after delay_ms, then every delay_ms, times times in all (0: until
 * stopped). Returns the timer's id (> 0), or -1 when out of memory. arg is borrowed until the
 * timer is stopped or has run its times. */
int kg_timer_start(kg_gateway_t *gw, size_t delay_ms, size_t times, kg_timer_fn *fn, void *arg);

/* Stop the timer *timer_id (<= 0, or one already over: nothing) and set *timer_id to -1. From
 * here on its callback never runs, whatever the loop is doing. */
void kg_timer_stop(kg_gateway_t *gw, int *timer_id);

/* A deferred call: runs on a fresh loop turn (rule 2). */
typedef void(kg_defer_fn)(kg_gateway_t *gw, void *arg);

/* Queue fn(gw, arg) for a fresh loop turn. arg is borrowed until fn runs; an owner that goes
 * first takes its calls back with kg_gateway_defer_cancel. Calls still queued when
 * kg_gateway_destroy has ended every kernel and sandbox run then, outside the loop. */
void kg_gateway_defer(kg_gateway_t *gw, kg_defer_fn *fn, void *arg);

/* Drop every queued call of fn with arg (also those of a drain under way that have not run). */
void kg_gateway_defer_cancel(kg_gateway_t *gw, kg_defer_fn *fn, void *arg);

/* Run the loop until *flag becomes nonzero (set by a callback), timeout_ms passes (< 0: no
 * limit), or the process is interrupted. Returns 0 when the flag was set, -1 otherwise. */
int kg_gateway_run_until(kg_gateway_t *self, const volatile int *flag, int timeout_ms);

/* Borrowed; valid until kg_gateway_destroy. */
const kg_counters_t *kg_gateway_counters(kg_gateway_t *self);

/* Look a live kernel up by id. Borrowed; see kg_kernel_start for the lifetime. */
kg_kernel_t *kg_gateway_kernel(kg_gateway_t *self, const char *kernel_id);

/* Number of kernels the gateway holds (any state but stopped). */
size_t kg_gateway_kernel_count(kg_gateway_t *self);

/* Number of live sandboxes (any made by kg_sandbox_create or kg_sandbox_new). */
size_t kg_gateway_sandbox_count(kg_gateway_t *self);

/* The project's kernelspecs directory the gateway searches (the project_dir of
 * jp_kernelspec_find). Borrowed; valid until kg_gateway_destroy. */
const char *kg_gateway_kernels_dir(kg_gateway_t *self);

/* Every kernel the gateway holds, in no particular order. Caller owns return value (the list;
 * the kernels are borrowed, see kg_kernel_start). */
zlistx_t *kg_gateway_kernels(kg_gateway_t *self);

/* Count a message a client of the gateway sent that was refused as malformed (in
 * kg_counters_t.malformed_messages). */
void kg_gateway_count_malformed(kg_gateway_t *self);

/* The network plane (egress/egress.h): the gateway's one proxy, made on first use (the first
 * sandbox makes it); NULL when it could not start (logged). Every sandbox is registered with it
 * (kg_sandbox_egress). Borrowed; valid until kg_gateway_destroy. */
egress_t *kg_gateway_egress(kg_gateway_t *self);

/* A connection from inside sandbox sb waits for a yes or no (its policy is `ask`): answer it,
 * now or later, with kg_gateway_network_answer(ask_id, ...); an answer never given is a refusal
 * after the proxy's ask timeout. Runs on the loop. */
typedef void(kg_network_ask_fn)(kg_sandbox_t *sb, uint64_t ask_id, const char *host, uint16_t port,
                                void *arg);
/* Register the hook (NULL: every question is refused at once). arg is borrowed until it is
 * replaced or the gateway is destroyed. */
void kg_gateway_set_network_ask(kg_gateway_t *self, kg_network_ask_fn *fn, void *arg);
/* allow lets that connection through; remember also adds host:port to the sandbox's allow list.
 * An unknown or late id is ignored. */
void kg_gateway_network_answer(kg_gateway_t *self, uint64_t ask_id, bool allow, bool remember);

/* What every loop callback returns: -1 to leave the loop when the flag a kg_gateway_run_until
 * waits for is set, else 0. */
int kg_gateway_handler_result(kg_gateway_t *self);

#endif
