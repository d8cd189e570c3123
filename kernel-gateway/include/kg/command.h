/* kg/command.h: commands: shell commands in a sandbox, output streamed as it comes.
 *
 * Blocking: kg_command_start asks the sandbox's init to start bash (a short exchange on its
 * control socket); nothing else blocks. Do not kg_command_forget a command from its own
 * on_output; from on_done it is fine.
 *
 * Threads: call every function here from the thread that runs the gateway's loop
 * (kg_gateway_loop), as the callbacks are; nothing here is thread-safe.
 */
#ifndef KG_COMMAND_H
#define KG_COMMAND_H

#include <jansson.h>
#include <stddef.h>

#include "cb/error.h"
#include "kg/types.h"

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

#endif
