/* kg_private.h (private): the structures the kernel-gateway's files share.
 *
 * gateway.c owns the loop and the registry of kernels; kernel.c a kernel's process, sockets and
 * lifecycle; execution.c the execute state machine; attach.c the proxy for external clients.
 * Connection info and the wire protocol are jupyter/'s. Only this module includes this header.
 */
#ifndef KG_PRIVATE_H
#define KG_PRIVATE_H

#include <limits.h>

#include "cb/util.h"
#include "jupyter/connfile.h"
#include "jupyter/kernelspec.h"
#include "jupyter/wire.h"
#include "kg/gateway.h"
#include "kg/sandbox.h"
#include "kg/kernel.h"
#include "kg/execution.h"
#include "kg/command.h"
#include "kg/client.h"
#include "kg/policy.h"
#include "sbx/sbx.h"
#include "egress/egress.h"

/* ---- socket limits (kernel.c) ---------------------------------------------------------- */

/* What one kernel may make the gateway hold: every ZMQ socket that talks to a kernel gets a
 * maximum message size (kg_config_t.max_message_bytes, <= 0: the default; ZMQ refuses a bigger
 * message from its length prefix, before reading it, and drops the connection, which then
 * reconnects) and a receive high-water mark of KG_KERNEL_RCVHWM messages: the most its queue
 * holds before ZMQ stops reading that connection (what comes next waits in the kernel's socket
 * buffers and send queue, where a PUB drops, as it would at our side). So a socket holds at most
 * KG_KERNEL_RCVHWM * max_message_bytes, and the loop drains it far sooner. */
#define KG_KERNEL_RCVHWM 16
void kg_socket_limits(zsock_t *sock, int64_t max_msg_bytes);

/* ---- gateway (gateway.c) ----------------------------------------------------------------- */

/* ---- processes (process.c): plain host processes, or processes inside a sandbox ---------- */

typedef struct kg_proc kg_proc_t;

typedef struct {
    char *const *argv;                  /* argv[0]: a path, or a name looked up in env's PATH */
    char *const *env;                   /* the whole environment */
    const char *cwd;                    /* NULL: inherited (host) or /home/user (sandbox) */
    int stdin_fd, stdout_fd, stderr_fd; /* -1: /dev/null */
    kg_sandbox_t *sandbox;              /* NULL: a plain host process */
    bool controlling_tty; /* stdin_fd is a terminal's peer (kg_sandbox_pty): it becomes the
                             process's controlling terminal (sandbox only) */
    bool keep_group;      /* its process group outlives it: what it started in the background
                             lives on when it exits (commands); else the group is killed then */
} kg_proc_opts_t;

typedef struct {
    bool exited; /* true: code holds the exit status; false: signal killed it */
    int code;
    int signal;
    bool oom; /* killed while the sandbox's memory limit was hit */
} kg_proc_exit_t;

/* Start a process in its own session and process group, dying with the gateway. Caller owns
 * return value. */
kg_proc_t *kg_proc_start(const kg_proc_opts_t *opts, cb_error_t *err);
pid_t kg_proc_pid(const kg_proc_t *p); /* host pid, also its process group id */
/* Its pid (and process group id) inside its sandbox, from the init; a host process's own pid. */
pid_t kg_proc_inside_pid(const kg_proc_t *p);
int kg_proc_pidfd(const kg_proc_t *p); /* readable once the process has exited */
/* Signal the whole process group. */
int kg_proc_signal(kg_proc_t *p, int sig);
/* Once the pidfd is readable: reap and say how it ended. */
int kg_proc_reap(kg_proc_t *p, kg_proc_exit_t *out, cb_error_t *err);
/* "exited with code 3", "killed by SIGKILL (out of memory)". Caller owns return value. */
char *kg_proc_exit_describe(const kg_proc_exit_t *ex);
/* Kill the group if still running, reap, free. Accepts NULL; nulls the pointer. */
void kg_proc_destroy(kg_proc_t **p_p);

/* Merge environment lists ("KEY=VALUE"; a later KEY replaces an earlier one). n lists, each
 * NULL-terminated or NULL. Caller owns return value. */
char **kg_env_merge(const char *const *const *lists, size_t n);

/* The environment a sandboxed process starts from: nothing from the host. */
extern const char *const kg_sandbox_base_env[];

/* ---- packages at run time (packages.c) ---------------------------------------------------- */

/* Put pip's and npm's settings for installs into the workspace in front of sb->env (the
 * sandbox's own env still wins), and make the user site-packages directories, so that a kernel
 * started afterwards sees packages installed while it runs. -1 with err when a directory could
 * not be made (the settings are in place all the same). */
int kg_packages_sandbox_prepare(kg_sandbox_t *sb, cb_error_t *err);

/* ---- sandboxes (sandbox.c) --------------------------------------------------------------- */

#define KG_SANDBOX_LOG_MAX 1000
#define KG_SANDBOX_LOG_TEXT_MAX 2000 /* bytes kept of one entry's text */

typedef struct {
    int64_t time_ms; /* wall clock, ms since the epoch */
    char source[24];
    char *text;
} kg_log_entry_t;

struct kg_sandbox {
    kg_gateway_t *gw;
    char id[37];
    sbx_t *sbx;
    kg_sandbox_limits_t limits; /* defaults filled in */
    int64_t created_ms;
    zhashx_t *commands;  /* id -> kg_command_t *, owned (command.c) */
    bool for_one_kernel; /* made by kg_kernel_start; removed with that kernel */
    kg_log_entry_t *log; /* ring of KG_SANDBOX_LOG_MAX entries */
    size_t log_next;     /* total entries ever written; the slot is log_next % max */
    char **env;          /* "KEY=VALUE" for every kernel and command in it (never NULL) */
    uint64_t executions, commands_run;
    int64_t cpu_sample_ms; /* the last cpu_share sample (kg_sandbox_info) */
    uint64_t cpu_sample_us;
    double cpu_share;
    bool init_watched; /* its init's pidfd is on the loop */
    bool dead;         /* its init died: nothing runs in it any more */
    bool end_pending;  /* kg_sandbox_end_later: ended on the next deferred turn */
    char *end_detail;
    bool hidden;              /* a policy's spare: not listed to clients */
    void *policy_data;        /* the policy's record (kg_sandbox_set_policy_data) */
    egress_policy_t *network; /* its network policy, owned; NULL: none (network.c) */
    egress_sandbox_t *egress; /* its registration with the gateway's proxy (network.c) */
};

/* A kernel in sb had a lifecycle event: tell the policy (kernel.c calls it). */
/* Tell the policy's activity hook (kg_policy_t.activity). record: Takes ownership. */
void kg_sandbox_activity(kg_sandbox_t *sb, const char *kind, json_t *record);
/* An execute_request a Jupyter client sent to the kernel itself (the Jupyter API's WebSocket,
 * an attached console), for the audit trail: event "execution_request" (its code, the route),
 * then, when iopub shows it ended (status idle for it), event "execution_end" (status, ename,
 * duration_ms; kg_kernel_audit_iopub). content: the request's content, borrowed. origin: a
 * string constant. */
void kg_kernel_audit_request(kg_kernel_t *k, const char *origin, json_t *content,
                             const char *msg_id);
/* Follow one iopub message for the requests kg_kernel_audit_request keeps open. */
void kg_kernel_audit_iopub(kg_kernel_t *k, const jp_msg_t *msg);
/* Forget them all (the kernel is going). */
void kg_kernel_audit_forget(kg_kernel_t *k);
/* Wall-clock ms since the epoch, for activity records. */
int64_t kg_wall_ms(void);
/* At most KG_AUDIT_TEXT_MAX bytes of text (cut at a character), for activity records. Caller
 * owns return value; *truncated set when it was cut. */
#define KG_AUDIT_TEXT_MAX (64u << 10)
char *kg_audit_text(const char *text, bool *truncated);

void kg_sandbox_kernel_event(kg_sandbox_t *sb, kg_kernel_t *k, kg_kernel_event_t event,
                             const char *detail);

/* A sentence for an out-of-memory note when files in the sandbox's /tmp and /dev/shm (tmpfs,
 * charged to its memory) hold a large share of its memory limit; NULL otherwise. Caller owns
 * return value. */
char *kg_sandbox_tmp_note(kg_sandbox_t *sb);

/* Free a command whatever its state (sandbox teardown; does not touch sb->commands). */
void kg_command_free_now(kg_command_t *c);

/* Signal every process of sb in the process group host_pgid (host numbering), each held by a
 * pidfd and checked to be the sandbox's before it is hit; the init never. Returns how many were
 * signalled, or -1 with err (process.c). */
int kg_sandbox_signal_group(kg_sandbox_t *sb, pid_t host_pgid, int sig, cb_error_t *err);
/* The same for a group named by its id inside the sandbox. */
int kg_sandbox_signal_group_inside(kg_sandbox_t *sb, pid_t pgid, int sig, cb_error_t *err);

/* The host pid of a command's main process; 0 when not known. */
pid_t kg_command_host_pid(const kg_command_t *c);

/* The layers as JSON, for info and doctor. Caller owns return value. */
json_t *kg_layers_json(const sbx_layers_t *layers);

/* ---- gateway (gateway.c) ----------------------------------------------------------------- */

struct kg_gateway {
    kg_config_t cfg;     /* defaults filled in */
    zhashx_t *sandboxes; /* id -> kg_sandbox_t *, owned */
    char *runtime_dir;
    char *kernels_dir;
    zloop_t *loop;
    zhashx_t *kernels; /* id -> kg_kernel_t *, not owning (kernels free themselves) */
    kg_counters_t counters;
    const volatile int *watch_flag; /* set by kg_gateway_run_until */
    bool layers_noted;              /* missing sandbox layers have been logged once */
    volatile int no_kernels;        /* the registry is empty (awaited by destroy) */
    int64_t started_ms;
    /* the loop's timers and deferred calls (gateway.c; the rules are in kg.h) */
    zhashx_t *timers; /* timer id -> record, owned; a stopped timer has none */
    int last_timer_id;
    int timer_fd;           /* timerfd armed for the earliest deadline */
    int64_t timer_armed_us; /* its deadline; 0: disarmed */
    bool in_timer_pass;
    zlistx_t *deferred; /* calls for the next drain, in order */
    zlistx_t *draining; /* the calls of the drain under way */
    int defer_fd;       /* eventfd: readable while calls wait */
    bool defer_signalled;
    /* sandbox.c: ends (kg_sandbox_end_later) */
    bool ends_queued; /* a deferred call will run the marked ends */
    bool destroying;  /* kg_gateway_destroy is under way: no more ends */
    /* the policy layer (kg_gateway_set_policy) */
    const kg_policy_t *policy;
    void *policy_arg;
    /* network.c: the proxy (made on first use) and the hook that answers `ask` policies */
    egress_t *egress;
    egress_policy_t *default_network; /* cfg.limits.network's copy, owned; NULL: none */
    bool egress_watched;              /* its event fd is a poller on the loop */
    kg_network_ask_fn *network_ask;
    void *network_ask_arg;
};

/* Registry, used by kernel.c as kernels come and go. */
void kg_gateway_add_kernel(kg_gateway_t *gw, kg_kernel_t *kernel);
void kg_gateway_remove_kernel(kg_gateway_t *gw, kg_kernel_t *kernel);

/* Say once per gateway which sandbox layers this host cannot give, and why. */
void kg_gateway_note_layers(kg_gateway_t *gw, const sbx_layers_t *layers);

/* Count a rejected frame in the counters under the right heading. */
void kg_gateway_count_rejected(kg_gateway_t *gw, jp_wire_status_t status, bool from_proxy);

/* ---- network (network.c) ----------------------------------------------------------------- */

/* Register a new sandbox with the gateway's proxy (making the proxy on first use); for a policy
 * other than none (sb->network), the proxy's socket inside and the proxy settings in sb->env. */
int kg_network_sandbox_add(kg_sandbox_t *sb, cb_error_t *err);
/* Close its registration: its proxy connections and forwards end. */
void kg_network_sandbox_remove(kg_sandbox_t *sb);
/* After every sandbox is gone: stop the proxy. */
void kg_network_gateway_fini(kg_gateway_t *gw);
/* The proxy settings a sandbox with egress gets ("KEY=VALUE", NULL-terminated; static). */
const char *const *kg_network_proxy_env(void);

/* ---- kernels (kernel.c) ------------------------------------------------------------------ */

typedef struct kg_attach kg_attach_t;

/* What happens once the kernel's process has exited and been reaped. */
typedef enum {
    KG_AFTER_EXIT_DIED = 0, /* unexpected: maybe restart automatically */
    KG_AFTER_EXIT_RESPAWN,  /* a restart we asked for */
    KG_AFTER_EXIT_STOP,     /* a shutdown */
} kg_after_exit_t;

/* An execute_request a Jupyter client sent itself, waiting for its end on iopub (the
 * kernel's status going idle for it) so the audit trail can say how it ended. */
typedef struct {
    char msg_id[80]; /* "": a free slot */
    const char *origin;
    int64_t started_ms; /* wall clock */
    int64_t started_us; /* monotonic */
    char *ename;        /* its iopub error's name, or NULL */
} kg_audit_open_t;

#define KG_AUDIT_OPEN 32 /* clients' requests followed at once, per kernel (the oldest gives way) */

struct kg_kernel {
    bool audited_start; /* its first READY went to the audit trail (kg_policy_t.activity) */
    kg_gateway_t *gw;
    char id[37];
    char session[37];
    jp_kernelspec_t *spec;
    char **extra_env; /* NULL-terminated copy of opts->env */
    char *cwd;
    kg_kernel_event_fn *on_event;
    void *event_arg;

    kg_sandbox_t *sandbox; /* borrowed, or owned when sandbox->for_one_kernel; NULL: none */
    char *run_dir;         /* kg_kernel_run_dir's host view (tests, diagnosis); never used here */
    char dir_name[16];     /* "k-<id8>", its directory in the run dir */
    int run_parent_fd;     /* the run dir holding dir_name: the sandbox's /run/cellblock (a dup of
                              sbx_run_fd) or the runtime dir without a sandbox; owned */
    int dir_fd;            /* dir_name itself, opened beneath run_parent_fd; owned */
    dev_t dir_dev;         /* its filesystem: the sockets must lie on it */
    uid_t sock_owner;      /* the uid the kernel's sockets must belong to */
    int search_timer;      /* looks for the kernel's sockets after each (re)start, until found */
    unsigned socks_found;  /* bit ch: ci.sock_fd[ch] holds this start's socket */
    char
        *conn_path_inside; /* the path the kernel is given (its view of dir_name/connection.json) */
    jp_conninfo_t ci;
    jp_signer_t *signer;
    jp_replay_t *replay;
    zsock_t *socks[JP_CH_COUNT];

    kg_kernel_state_t state;
    kg_proc_t *proc; /* NULL when no process runs */
    int output_fd;   /* the kernel's stdout+stderr, read line by line */
    cb_buf_t output_line;

    /* readiness */
    bool info_replied;
    unsigned interrupts; /* interrupts sent so far (an execution tells whether it was hit) */
    bool iopub_seen;
    kg_audit_open_t audit_open[KG_AUDIT_OPEN]; /* clients' requests (kg_kernel_audit_request) */
    size_t audit_next;                         /* the slot the next one takes */
    int ready_timer;                           /* startup deadline */
    int nudge_timer;                           /* re-send kernel_info while iopub is silent */

    /* heartbeat */
    int hb_timer;
    bool hb_waiting;
    int hb_misses;

    /* stopping */
    bool stopping;   /* kg_kernel_shutdown was called; final */
    bool ever_ready; /* became ready at least once (a kernel that never does is not restarted) */
    kg_after_exit_t after_exit;
    int stop_step; /* 0 none, 1 request sent, 2 SIGTERM sent, 3 SIGKILL sent */
    int stop_timer;
    char *exit_detail; /* how the process ended, for events and notes */

    /* restarts */
    int restart_count;
    int64_t restart_window_start_ms;
    int restarts_in_window;
    char *state_lost_reason; /* set by a restart; the next execution reports it */
    char *startup_code;      /* run after each start before READY; NULL: none */
    bool starting_up;        /* the startup code is queued or running */

    /* executions: one runs at a time, the rest wait in order */
    zlistx_t *queue;
    kg_execution_t *running;

    kg_attach_t *attach;

    /* extra listeners (kg_kernel_listen); removal during a dispatch blanks a slot */
    kg_kernel_listener_t *listeners;
    size_t n_listeners, cap_listeners;
    int listeners_busy;
    int64_t last_activity_us; /* wall clock, µs since the epoch: the last message either way */
};

/* Send a message on one of the kernel's channels. Takes ownership of *msg_p. */
int kg_kernel_send(kg_kernel_t *k, jp_channel_t ch, jp_msg_t **msg_p);

/* Queue an execution (kg_execute), last or (front) first; it starts when the kernel is ready
 * and free. */
int kg_kernel_enqueue(kg_kernel_t *k, kg_execution_t *x, bool front, cb_error_t *err);

/* Hand the reason state was lost (a restart) to the execution that starts next, and forget it.
 * *reason_out becomes the caller's (free it); NULL when nothing was lost. Returns it too. */
const char *kg_kernel_take_state_lost(kg_kernel_t *k, char **reason_out);

/* Kill, reap and free at once, without the loop (kg_gateway_destroy's last resort). */
void kg_kernel_free_now(kg_kernel_t *k);
/* If k's sandbox is ending (its init died, say), end what k runs and queues as kernel_died with
 * a note naming the sandbox's end, and return true; otherwise do nothing. */
bool kg_kernel_abandon_for_sandbox(kg_kernel_t *k);

/* Called by execution.c when the running execution finished, so the next may start. */
void kg_kernel_execution_finished(kg_kernel_t *k, kg_execution_t *x);

/* Restart after a timeout whose interrupt did not take (execution.c). */
void kg_kernel_restart_for(kg_kernel_t *k, const char *reason);

/* ---- executions (execution.c) ------------------------------------------------------------ */

/* Send the execute_request; called by the kernel when it is idle and x is next. */
void kg_execution_begin(kg_execution_t *x);

/* Route a message whose parent is this execution. ch is the channel it arrived on. */
void kg_execution_on_message(kg_execution_t *x, jp_channel_t ch, const jp_msg_t *msg);

/* The kernel's own startup code: silent, first in the queue, not counted, and it leaves the
 * state-lost note to the next real execution. Borrowed; valid until on_done returns. */
kg_execution_t *kg_execution_internal(kg_kernel_t *kernel, const char *code, int timeout_ms,
                                      kg_done_fn *on_done, void *arg, cb_error_t *err);

/* End the execution without its reply: status ("cancelled", "kernel_died") and a note.
 * Calls on_done, then frees x. */
void kg_execution_abandon(kg_execution_t *x, const char *status, const char *note);

/* Whether a message whose parent msg_id is parent_id belongs to this execution: its request, or
 * the kernel_info_request it sent to learn that the kernel dropped the request. */
bool kg_execution_owns(const kg_execution_t *x, const char *parent_id);

/* ---- attach proxy (attach.c) -------------------------------------------------------------- */

kg_attach_t *kg_attach_new(kg_kernel_t *k, cb_error_t *err);
void kg_attach_destroy(kg_attach_t **self_p);
const char *kg_attach_path(const kg_attach_t *self);

#endif
