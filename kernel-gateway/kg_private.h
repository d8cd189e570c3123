/* kg_private.h (private): the structures the kernel-gateway's files share.
 *
 * gateway.c owns the loop and the registry of kernels; kernel.c a kernel's process, sockets and
 * lifecycle; execution.c the execute state machine; attach.c the proxy for external clients;
 * connfile.c connection info; wire.c the wire protocol. Only this module includes this header.
 */
#ifndef KG_PRIVATE_H
#define KG_PRIVATE_H

#include <limits.h>

#include "cb/util.h"
#include "kg/kg.h"
#include "sbx/sbx.h"
#include "wire.h"

/* ---- connection info (connfile.c) -------------------------------------------------------- */

typedef enum { KG_CH_SHELL = 0, KG_CH_IOPUB, KG_CH_STDIN, KG_CH_CONTROL, KG_CH_HB, KG_CH_COUNT } kg_channel_t;

#define KG_KEY_HEX_LEN 64 /* 32 random bytes, hex */

typedef struct {
    kg_transport_t transport;
    char ip[PATH_MAX / 2];   /* tcp: "127.0.0.1"; ipc: the socket path prefix */
    char ip_inside[128];     /* ipc in a sandbox: the prefix as the kernel sees it; "" otherwise */
    int ports[KG_CH_COUNT];  /* tcp: port numbers; ipc: suffixes 1..5 */
    char key[KG_KEY_HEX_LEN + 1];
    char kernel_name[128];
} kg_conninfo_t;

const char *kg_channel_name(kg_channel_t ch);

/* A fresh random key: KG_KEY_HEX_LEN hex digits and a NUL into out. */
int kg_conninfo_new_key(char *out, cb_error_t *err);

/* Fill ci for a new kernel: a fresh random key, and ipc paths under run_dir or free loopback
 * TCP ports. inside_run_dir (may be NULL) is run_dir as the kernel sees it from its sandbox; the
 * connection file names that one. */
int kg_conninfo_init(kg_conninfo_t *ci, kg_transport_t transport, const char *run_dir,
                     const char *inside_run_dir, const char *kernel_name, cb_error_t *err);

/* "ipc://<ip>-<port>" or "tcp://<ip>:<port>" into buf. */
void kg_conninfo_endpoint(const kg_conninfo_t *ci, kg_channel_t ch, char *buf, size_t size);

/* Write the Jupyter connection file (mode 0600). */
int kg_conninfo_write(const kg_conninfo_t *ci, const char *path, cb_error_t *err);

/* ---- gateway (gateway.c) ----------------------------------------------------------------- */

/* ---- processes (process.c): plain host processes, or processes inside a sandbox ---------- */

typedef struct kg_proc kg_proc_t;

typedef struct {
    char *const *argv;     /* argv[0]: a path, or a name looked up in env's PATH */
    char *const *env;      /* the whole environment */
    const char *cwd;       /* NULL: inherited (host) or /home/user (sandbox) */
    int stdin_fd, stdout_fd, stderr_fd; /* -1: /dev/null */
    kg_sandbox_t *sandbox; /* NULL: a plain host process */
} kg_proc_opts_t;

typedef struct {
    bool exited; /* true: code holds the exit status; false: signal killed it */
    int code;
    int signal;
    bool oom;    /* killed while the sandbox's memory limit was hit */
} kg_proc_exit_t;

/* Start a process in its own session and process group, dying with the gateway. Caller owns
 * return value. */
kg_proc_t *kg_proc_start(const kg_proc_opts_t *opts, cb_error_t *err);
pid_t kg_proc_pid(const kg_proc_t *p); /* host pid, also its process group id */
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
    zhashx_t *commands;         /* id -> kg_command_t *, owned (command.c) */
    bool for_one_kernel;        /* made by kg_kernel_start; removed with that kernel */
    kg_log_entry_t *log;        /* ring of KG_SANDBOX_LOG_MAX entries */
    size_t log_next;            /* total entries ever written; the slot is log_next % max */
};

/* Free a command whatever its state (sandbox teardown; does not touch sb->commands). */
void kg_command_free_now(kg_command_t *c);

/* The layers as JSON, for info and doctor. Caller owns return value. */
json_t *kg_layers_json(const sbx_layers_t *layers);

/* ---- gateway (gateway.c) ----------------------------------------------------------------- */

struct kg_gateway {
    kg_config_t cfg; /* defaults filled in */
    zhashx_t *sandboxes; /* id -> kg_sandbox_t *, owned */
    char *runtime_dir;
    char *kernels_dir;
    zloop_t *loop;
    zhashx_t *kernels; /* id -> kg_kernel_t *, not owning (kernels free themselves) */
    kg_counters_t counters;
    const volatile int *watch_flag; /* set by kg_gateway_run_until */
    bool layers_noted;              /* missing sandbox layers have been logged once */
    volatile int no_kernels;        /* the registry is empty (awaited by destroy) */
};

/* What every loop handler returns: -1 to leave zloop_start once the awaited flag is set. */
int kg_gateway_handler_result(kg_gateway_t *gw);

/* Registry, used by kernel.c as kernels come and go. */
void kg_gateway_add_kernel(kg_gateway_t *gw, kg_kernel_t *kernel);
void kg_gateway_remove_kernel(kg_gateway_t *gw, kg_kernel_t *kernel);

/* Say once per gateway which sandbox layers this host cannot give, and why. */
void kg_gateway_note_layers(kg_gateway_t *gw, const sbx_layers_t *layers);

/* Count a rejected frame in the counters under the right heading. */
void kg_gateway_count_rejected(kg_gateway_t *gw, kg_wire_status_t status, bool from_proxy);

/* ---- kernels (kernel.c) ------------------------------------------------------------------ */

typedef struct kg_attach kg_attach_t;

/* What happens once the kernel's process has exited and been reaped. */
typedef enum {
    KG_AFTER_EXIT_DIED = 0, /* unexpected: maybe restart automatically */
    KG_AFTER_EXIT_RESPAWN,  /* a restart we asked for */
    KG_AFTER_EXIT_STOP,     /* a shutdown */
} kg_after_exit_t;

struct kg_kernel {
    kg_gateway_t *gw;
    char id[37];
    char session[37];
    kg_kernelspec_t *spec;
    char **extra_env; /* NULL-terminated copy of opts->env */
    char *cwd;
    kg_kernel_event_fn *on_event;
    void *event_arg;

    kg_sandbox_t *sandbox; /* borrowed, or owned when sandbox->for_one_kernel; NULL: none */
    char *run_dir;         /* host path */
    char *conn_path;       /* host path */
    char *conn_path_inside;/* the path the kernel is given (differs inside a sandbox) */
    kg_conninfo_t ci;
    kg_signer_t *signer;
    kg_replay_t *replay;
    zsock_t *socks[KG_CH_COUNT];

    kg_kernel_state_t state;
    kg_proc_t *proc; /* NULL when no process runs */
    int output_fd; /* the kernel's stdout+stderr, read line by line */
    cb_buf_t output_line;

    /* readiness */
    bool info_replied;
    bool iopub_seen;
    int ready_timer;   /* startup deadline */
    int nudge_timer;   /* re-send kernel_info while iopub is silent */

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

    /* executions: one runs at a time, the rest wait in order */
    zlistx_t *queue;
    kg_execution_t *running;

    kg_attach_t *attach;
};

/* Send a message on one of the kernel's channels. Takes ownership of *msg_p. */
int kg_kernel_send(kg_kernel_t *k, kg_channel_t ch, kg_msg_t **msg_p);

/* Queue an execution (kg_execute); it starts when the kernel is ready and free. */
int kg_kernel_enqueue(kg_kernel_t *k, kg_execution_t *x, cb_error_t *err);

/* Hand the reason state was lost (a restart) to the execution that starts next, and forget it.
 * *reason_out becomes the caller's (free it); NULL when nothing was lost. Returns it too. */
const char *kg_kernel_take_state_lost(kg_kernel_t *k, char **reason_out);

/* Kill, reap and free at once, without the loop (kg_gateway_destroy's last resort). */
void kg_kernel_free_now(kg_kernel_t *k);

/* Called by execution.c when the running execution finished, so the next may start. */
void kg_kernel_execution_finished(kg_kernel_t *k, kg_execution_t *x);

/* Restart after a timeout whose interrupt did not take (execution.c). */
void kg_kernel_restart_for(kg_kernel_t *k, const char *reason);

/* ---- executions (execution.c) ------------------------------------------------------------ */

/* Send the execute_request; called by the kernel when it is idle and x is next. */
void kg_execution_begin(kg_execution_t *x);

/* Route a message whose parent is this execution. ch is the channel it arrived on. */
void kg_execution_on_message(kg_execution_t *x, kg_channel_t ch, const kg_msg_t *msg);

/* End the execution without its reply: status ("cancelled", "kernel_died") and a note.
 * Calls on_done, then frees x. */
void kg_execution_abandon(kg_execution_t *x, const char *status, const char *note);

const char *kg_execution_msg_id(const kg_execution_t *x);

/* ---- attach proxy (attach.c) -------------------------------------------------------------- */

kg_attach_t *kg_attach_new(kg_kernel_t *k, cb_error_t *err);
void kg_attach_destroy(kg_attach_t **self_p);
const char *kg_attach_path(const kg_attach_t *self);

#endif
