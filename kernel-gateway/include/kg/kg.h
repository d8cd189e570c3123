/* kg/kg.h: the kernel gateway, cellblock's Jupyter client side.
 *
 * One gateway owns one czmq event loop (zloop) and every kernel socket on it. Kernels are started
 * from Jupyter kernelspecs, talk to the gateway over ZMQ (ipc:// by default) with every message
 * signed with HMAC-SHA256, and are watched through a pidfd (death) and the heartbeat channel
 * (hangs). An execution is a small state machine fed by the kernel's shell, iopub and stdin
 * messages routed by parent msg_id; nothing here blocks the loop.
 *
 * Results follow the Jupyter model (close to E2B's Execution object) and are jansson objects:
 *
 *   { "id": "<execution id>",
 *     "status": "ok" | "error" | "timeout" | "cancelled" | "kernel_died" | "aborted",
 *     "execution_count": 3 | null,
 *     "stdout": "...", "stderr": "...",
 *     "results": [ { "data": {"text/plain": "...", "image/png": "<base64>", ...},
 *                    "metadata": {...}, "is_main_result": true|false,
 *                    "display_id": "..." (only when the kernel gave one) } ],
 *     "error": null | { "ename": "...", "evalue": "...", "traceback": ["...", ...] },
 *     "duration_ms": 12.5,
 *     "kernel_restarted": false,     true when state was lost (a restart before or during it)
 *     "notes": [ "..." ] }           plain sentences a person or a model can act on
 *
 * Memory is bounded per execution: each of stdout and stderr keeps 16 MiB, and rich results
 * keep 64 MiB of data in all; what comes beyond is dropped and a note says so.
 *
 * Ownership follows fixed phrases: "Caller owns return value", "Takes ownership", "Borrowed;
 * valid until ...". Kernels and executions belong to the gateway; callers hold borrowed pointers
 * whose lifetime each function states, or look kernels up again by id.
 */
#ifndef KG_KG_H
#define KG_KG_H

#include <czmq.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "cb/error.h"
#include "cb/util.h"
#include "jupyter/connfile.h" /* jp_transport_t in kg_config_t */
#include "jupyter/wire.h"     /* jp_msg_t, jp_channel_t in the surfaces' calls */

typedef struct kg_gateway kg_gateway_t;
typedef struct kg_sandbox kg_sandbox_t;
typedef struct kg_kernel kg_kernel_t;
typedef struct kg_execution kg_execution_t;
typedef struct kg_command kg_command_t;

/* ---------------------------------------------------------------------------------------------
 * The gateway.
 * ------------------------------------------------------------------------------------------- */

/* Limits of one sandbox. Zero fields take the gateway's defaults (kg_config_t.limits), whose
 * own zero fields mean: memory 2048 MiB, 1024 pids, no CPU quota, /tmp 256 MiB, workspace
 * 1024 MiB. */
typedef struct {
    uint64_t memory_mb;
    uint64_t pids_max;
    uint32_t cpu_millis; /* thousandths of a core: 500 is half a core */
    uint64_t tmp_mb;
    uint64_t workspace_mb;
} kg_sandbox_limits_t;

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

/* ---------------------------------------------------------------------------------------------
 * Sandboxes: isolated process trees (see sandbox/ and docs/security.md) holding kernels and
 * commands that share one workspace (/home/user inside).
 * ------------------------------------------------------------------------------------------- */

/* Create a sandbox. limits may be NULL (the gateway's defaults). The gateway owns it.
 * Borrowed; valid until kg_sandbox_destroy (or kg_gateway_destroy). */
kg_sandbox_t *kg_sandbox_create(kg_gateway_t *gw, const kg_sandbox_limits_t *limits,
                                cb_error_t *err);

/* Kill every kernel and command in the sandbox (their executions end as "cancelled"), then every
 * process left, and remove it; a persistent workspace stays on disk. Accepts NULL; nulls the
 * caller's pointer. */
void kg_sandbox_destroy(kg_sandbox_t **self_p);

/* Create a sandbox with a given id (NULL: a fresh one), its workspace bound from a host directory
 * (workspace_dir; NULL: a tmpfs), and env ("KEY=VALUE", NULL-terminated, may be NULL; copied)
 * for every kernel and command in it. Otherwise as kg_sandbox_create. */
kg_sandbox_t *kg_sandbox_new(kg_gateway_t *gw, const kg_sandbox_limits_t *limits, const char *id,
                             const char *workspace_dir, const char *const *env, cb_error_t *err);

/* The limits it runs under, defaults filled in. Borrowed; valid with the sandbox. */
const kg_sandbox_limits_t *kg_sandbox_limits(const kg_sandbox_t *self);

/* Activity: executions, commands and file calls count on their own; callers may add theirs.
 * Tells the policy (kg_policy_t.used). */
void kg_sandbox_touch(kg_sandbox_t *self);

/* Work is running in the sandbox (an execution or a command). */
bool kg_sandbox_busy(kg_sandbox_t *self);

/* Its init died: nothing runs in it any more. */
bool kg_sandbox_dead(const kg_sandbox_t *self);

/* End the sandbox on a fresh loop turn (kg_gateway_defer): the policy's ending hook, then
 * kg_sandbox_destroy. detail is a sentence saying why (copied); executions its kernels run or
 * queue meanwhile end as kernel_died with it in their note. Only the first call counts. Why
 * deferred: the callback that found the reason (a timer, the init's poller, a kernel's event)
 * may hold its kernels. The deferred call looks the sandbox up by id, so one destroyed meanwhile
 * by another path is simply not there. */
void kg_sandbox_end_later(kg_sandbox_t *self, const char *detail);

/* Whether kg_sandbox_end_later was called; its detail (Borrowed; valid with the sandbox). */
bool kg_sandbox_ending(const kg_sandbox_t *self);
const char *kg_sandbox_end_detail(const kg_sandbox_t *self);

/* The policy's own record of the sandbox (kg_gateway_set_policy); NULL until set. The policy
 * owns it and frees it from its destroyed hook. */
void kg_sandbox_set_policy_data(kg_sandbox_t *self, void *data);
void *kg_sandbox_policy_data(const kg_sandbox_t *self);

/* A hidden sandbox (a policy's spare, such as a warm pool's) is not for clients yet: surfaces in
 * the engine (the Jupyter API) do not list its kernels. */
void kg_sandbox_set_hidden(kg_sandbox_t *self, bool hidden);
bool kg_sandbox_hidden(const kg_sandbox_t *self);

const char *kg_sandbox_id(const kg_sandbox_t *self); /* Borrowed; valid with the sandbox */

/* Look a sandbox up by id. Borrowed; valid until it is destroyed. */
kg_sandbox_t *kg_gateway_sandbox(kg_gateway_t *gw, const char *id);

/* {id, limits: {...}, layers: {...}, usage: {memory_bytes, memory_peak_bytes,
 * memory_limit_bytes, pids, cpu_usage_us, cpu_share, cpu_share_avg, oom_kills, workspace_bytes,
 * workspace_limit_bytes}, kernels: [ids], created_ms, init_pid (host pid of its init),
 * executions, commands, and what the policy adds (kg_policy_t.describe)}. cpu_share is the cores used
 * over the last window of at least a second (since the previous info call a second or more
 * before; a call sooner repeats that figure; 0 in the first second); cpu_share_avg over the
 * sandbox's life (0 in the first second). Caller owns return value. */
json_t *kg_sandbox_info(kg_sandbox_t *self);

/* The sandbox's log: a bounded ring (the last 1000 entries) of timestamped lines from its
 * kernels' stderr and of lifecycle events (created, kernel ready/died/restarting/dead/stopped);
 * other modules add their own events. text is cut at 2000 bytes. */
void kg_sandbox_log(kg_sandbox_t *self, const char *source, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The last max_entries entries (0: all kept), oldest first: [{time: ISO 8601 UTC, source,
 * text}]. Caller owns return value. */
json_t *kg_sandbox_logs(kg_sandbox_t *self, size_t max_entries);

/* Host pid of the sandbox's init; every process of the sandbox descends from it. */
pid_t kg_sandbox_init_pid(const kg_sandbox_t *self);

/* Workspace files, done from the host (paths as seen inside: "/home/user/x" or "x"; anything
 * that resolves outside the workspace is refused). See sbx_file_* in sandbox/ for the rules. */
int kg_sandbox_file_read(kg_sandbox_t *self, const char *path, size_t max_bytes, cb_buf_t *out,
                         cb_error_t *err);
/* At most max_bytes from offset; *size is the whole file's size. */
int kg_sandbox_file_read_range(kg_sandbox_t *self, const char *path, uint64_t offset,
                               size_t max_bytes, cb_buf_t *out, uint64_t *size, cb_error_t *err);
int kg_sandbox_file_write(kg_sandbox_t *self, const char *path, const void *data, size_t len,
                          bool make_parents, cb_error_t *err);
/* [{name, type: "file"|"dir"|"symlink"|"other", size, mtime_ms}]. Caller owns return value. */
json_t *kg_sandbox_file_list(kg_sandbox_t *self, const char *path, cb_error_t *err);
int kg_sandbox_file_remove(kg_sandbox_t *self, const char *path, bool recursive, cb_error_t *err);
int kg_sandbox_file_mkdir(kg_sandbox_t *self, const char *path, bool parents, cb_error_t *err);

/* ---------------------------------------------------------------------------------------------
 * Kernels.
 * ------------------------------------------------------------------------------------------- */

typedef enum {
    KG_KERNEL_STARTING = 0,
    KG_KERNEL_IDLE,
    KG_KERNEL_BUSY,
    KG_KERNEL_RESTARTING,
    KG_KERNEL_SHUTTING_DOWN,
    KG_KERNEL_DEAD,    /* died and will not be restarted (limit reached, or restart failed) */
    KG_KERNEL_STOPPED, /* shut down; the kernel is freed after this event's callback returns */
} kg_kernel_state_t;

typedef enum {
    KG_EVENT_READY = 0, /* first ready after start, and ready again after each restart */
    KG_EVENT_DIED,      /* the process exited unasked; detail says how */
    KG_EVENT_RESTARTING,
    KG_EVENT_HUNG,    /* heartbeat missed too often */
    KG_EVENT_DEAD,    /* gave up: no more restarts */
    KG_EVENT_STOPPED, /* shutdown finished; last event */
    KG_EVENT_STDERR,  /* a line the kernel process wrote to its stderr (detail) */
} kg_kernel_event_t;

typedef void(kg_kernel_event_fn)(kg_kernel_t *kernel, kg_kernel_event_t event, const char *detail,
                                 void *arg);

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
 * Executions.
 * ------------------------------------------------------------------------------------------- */

/* Called for each output as it arrives: kind is "stream", "display_data", "update_display_data",
 * "execute_result", "clear_output", "error" or "input_request"; content is the message content.
 * Borrowed; valid during the call. */
typedef void(kg_output_fn)(kg_execution_t *x, const char *kind, json_t *content, void *arg);

/* Called once with the final result (see the top of this file). Borrowed; valid during the
 * call (json_incref it to keep it). The execution is freed after this returns. */
typedef void(kg_done_fn)(kg_execution_t *x, json_t *result, void *arg);

typedef struct {
    const char *code;
    int timeout_ms;         /* 0: no limit. On expiry: interrupt, then restart after the grace */
    const char *stdin_text; /* lines answered to input() in turn; NULL: input() raises at once */
    bool silent;            /* Jupyter's silent (no output, no history) */
    bool no_history;        /* store_history = false */
    kg_output_fn *on_output;
    kg_done_fn *on_done;
    void *arg;
} kg_execute_opts_t;

/* Queue code on a kernel. Executions run one after another in the order queued. Borrowed;
 * valid until on_done returns. */
kg_execution_t *kg_execute(kg_kernel_t *kernel, const kg_execute_opts_t *opts, cb_error_t *err);

/* Cancel: a queued execution ends at once, a running one is interrupted; status "cancelled".
 * The kernel keeps its state. */
int kg_execution_cancel(kg_execution_t *self, cb_error_t *err);

const char *kg_execution_id(const kg_execution_t *self); /* Borrowed; valid with the execution */
kg_kernel_t *kg_execution_kernel(const kg_execution_t *self);

/* The result so far (same shape as the final one, status "running" or "queued").
 * Caller owns return value. */
json_t *kg_execution_snapshot(const kg_execution_t *self);

/* ---------------------------------------------------------------------------------------------
 * Commands: shell commands in a sandbox (bash -c), with output streamed as it comes, an exit
 * code, optional stdin, working directory, environment and timeout. On timeout or kill the
 * command's whole process group is killed. A command stays known to its sandbox after it ends,
 * so its final output can still be read, until kg_command_forget or the sandbox goes.
 *
 * Snapshot / result:
 *   { "id": "...", "command": "...", "status": "running" | "exited" | "killed" | "timeout" |
 *     "failed", "exit_code": 0 | null, "signal": "SIGKILL" | null, "oom": false,
 *     "stdout": "...", "stderr": "...", "pid": 123, "duration_ms": 3.2, "notes": [...] }
 * pid is the host pid, null when the command ended before the gateway could learn it.
 * Each of stdout and stderr keeps 16 MiB; beyond that output is dropped with a note.
 * ------------------------------------------------------------------------------------------- */

/* data is not NUL-terminated. Borrowed; valid during the call. */
typedef void(kg_command_output_fn)(kg_command_t *c, const char *stream, const char *data,
                                   size_t len, void *arg);
/* Called once when the command has ended, with its final snapshot. Borrowed; valid during the
 * call. */
typedef void(kg_command_done_fn)(kg_command_t *c, json_t *result, void *arg);

typedef struct {
    const char *command;    /* run as: /bin/bash -c COMMAND */
    const char *const *env; /* extra "KEY=VALUE" entries, NULL-terminated; borrowed */
    const char *cwd;        /* inside path; NULL: /home/user */
    const char *stdin_text; /* written to stdin first; NULL: nothing */
    bool keep_stdin_open;   /* leave stdin open for kg_command_write_stdin; else it is
                                     closed after stdin_text */
    int timeout_ms;         /* 0: no limit */
    kg_command_output_fn *on_output;
    kg_command_done_fn *on_done;
    void *arg;
} kg_command_opts_t;

/* Start a command in a sandbox. Borrowed; valid until kg_command_forget or the sandbox's
 * destruction. */
kg_command_t *kg_command_start(kg_sandbox_t *sb, const kg_command_opts_t *opts, cb_error_t *err);

/* Send bytes to the command's stdin (close_after: then close it, which is EOF). Writes that
 * cannot go at once are queued (up to 16 MiB). */
int kg_command_write_stdin(kg_command_t *self, const char *data, size_t len, bool close_after,
                           cb_error_t *err);

/* Kill the command's process group (SIGKILL); status becomes "killed". */
int kg_command_kill(kg_command_t *self, cb_error_t *err);

/* Current state (see above). Caller owns return value. */
json_t *kg_command_snapshot(const kg_command_t *self);

/* Forget a command; a running one is killed first. Nulls the caller's pointer. */
void kg_command_forget(kg_command_t **self_p);

const char *kg_command_id(const kg_command_t *self); /* Borrowed; valid with the command */
bool kg_command_running(const kg_command_t *self);

/* Look a command up by id in a sandbox. Borrowed; see kg_command_start. */
kg_command_t *kg_sandbox_command(kg_sandbox_t *sb, const char *id);

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
 * The policy hooks: how a policy layer (fleet/: templates, pools, lifetimes, persistence) hears
 * what happens to sandboxes without the engine knowing it. The engine calls these; it never
 * calls the policy by name. One policy per gateway. Every hook is called from the loop's thread;
 * each may be NULL.
 * ------------------------------------------------------------------------------------------- */
typedef struct {
    /* A client used the sandbox: an execution or command began or ended, a file call, a request
     * a Jupyter client sent to one of its kernels (kg_sandbox_touch). Its own code's output is
     * not use. */
    void (*used)(kg_sandbox_t *sb, void *arg);
    /* Its init died, and every process in it with it; kg_sandbox_dead is true from now on. */
    void (*init_died)(kg_sandbox_t *sb, void *arg);
    /* A kernel in the sandbox had a lifecycle event; heard before the kernel's own on_event. */
    void (*kernel_event)(kg_sandbox_t *sb, kg_kernel_t *k, kg_kernel_event_t event,
                         const char *detail, void *arg);
    /* kg_sandbox_end_later's deferred turn is about to destroy the sandbox; it and its kernels
     * are valid during the call and freed right after it. */
    void (*ending)(kg_sandbox_t *sb, const char *detail, void *arg);
    /* The sandbox is being destroyed, however (its processes are gone already): the last call
     * naming it. */
    void (*destroyed)(kg_sandbox_t *sb, void *arg);
    /* kg_sandbox_info is being built: add the policy's fields to info (an object). */
    void (*describe)(kg_sandbox_t *sb, json_t *info, void *arg);
    /* kg_gateway_destroy began: stop timers; no sandbox ends on its own from here on. */
    void (*closing)(kg_gateway_t *gw, void *arg);
    /* kg_gateway_destroy destroyed every sandbox: free the policy (arg). */
    void (*closed)(kg_gateway_t *gw, void *arg);
} kg_policy_t;

/* Install the policy (hooks is borrowed and must outlive the gateway; a static table). Fails
 * when the gateway has one already. */
int kg_gateway_set_policy(kg_gateway_t *self, const kg_policy_t *hooks, void *arg, cb_error_t *err);

/* The policy's arg when hooks is the installed policy, else NULL. Borrowed. */
void *kg_gateway_policy(kg_gateway_t *self, const kg_policy_t *hooks);

/* ---------------------------------------------------------------------------------------------
 * For the surfaces above the engine (jupyter-api/ today): a kernel's listeners, and what such a
 * surface reads of kernels, sandboxes and the gateway.
 * Call every function below from the loop's thread, like every other call in this header; none
 * of them blocks.
 * ------------------------------------------------------------------------------------------- */

/* Jupyter messages and channels (jp_msg_t, jp_channel_t) are the protocol library's:
 * jupyter/wire.h. */

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

/* The project's kernelspecs directory the gateway searches (the project_dir of
 * jp_kernelspec_find). Borrowed; valid until kg_gateway_destroy. */
const char *kg_gateway_kernels_dir(kg_gateway_t *self);

/* Every kernel the gateway holds, in no particular order. Caller owns return value (the list;
 * the kernels are borrowed, see kg_kernel_start). */
zlistx_t *kg_gateway_kernels(kg_gateway_t *self);

/* Count a message a client of the gateway sent that was refused as malformed (in
 * kg_counters_t.malformed_messages). */
void kg_gateway_count_malformed(kg_gateway_t *self);

/* What every loop callback returns: -1 to leave the loop when the flag a kg_gateway_run_until
 * waits for is set, else 0. */
int kg_gateway_handler_result(kg_gateway_t *self);

/* A client of one kernel's shell, control and stdin channels: three DEALER sockets with one
 * routing id (the kernel sends input_request to the identity that made the execute_request),
 * connected to the kernel's endpoints, which stay the same across restarts while ZMQ
 * reconnects by itself. What the kernel sends is verified (signature, replay guard) before it
 * is parsed; a frame that fails is counted and dropped. Sends never block the loop. */
typedef struct kg_kernel_client kg_kernel_client_t;

/* A verified message from the kernel on shell, control or stdin. msg: Borrowed; valid during
 * the call. */
typedef void(kg_kernel_client_fn)(kg_kernel_client_t *client, jp_channel_t ch, const jp_msg_t *msg,
                                  void *arg);

/* Connect a client to the kernel (not one that is stopping: CB_ERR_STATE); on_message(arg) is
 * called from the loop, arg borrowed until kg_kernel_client_destroy. When the kernel stops (its
 * KG_EVENT_STOPPED) the client goes quiet: it disconnects and sends and receives nothing more,
 * but stays valid until destroyed. Caller owns return value. */
kg_kernel_client_t *kg_kernel_client_new(kg_kernel_t *kernel, kg_kernel_client_fn *on_message,
                                         void *arg, cb_error_t *err);

/* Sign msg (borrowed, not kept) with the kernel's key and send it on ch (shell, control or
 * stdin). Counts as the kernel's activity and as use of its sandbox (a client's request keeps a
 * sandbox opened with extend_on_use alive). Never blocks: a full queue fails with EAGAIN.
 * Returns 0, or -1 with err (CB_ERR_STATE once the kernel has stopped). */
int kg_kernel_client_send(kg_kernel_client_t *self, jp_channel_t ch, const jp_msg_t *msg,
                          cb_error_t *err);

/* Disconnect and free. on_message is never called again once this returns, and it may be
 * called from on_message itself: the sockets are freed on a fresh loop turn (rule 2). Accepts
 * NULL; nulls the caller's pointer. */
void kg_kernel_client_destroy(kg_kernel_client_t **self_p);

#endif
