/* kg/command.h: commands: shell commands in a sandbox, output streamed as it comes.
 *
 * Blocking: kg_command_start asks the sandbox's init to start bash (a short exchange on its
 * control socket); kg_sandbox_processes, kg_sandbox_signal_pid and kg_command_signal walk
 * the host's /proc (kernel-made files, which never block, one pass over every host process);
 * nothing else blocks. Do not kg_command_forget a command from its own
 * on_output; from on_done it is fine.
 *
 * Threads: call every function here from the thread that runs the gateway's loop
 * (kg_gateway_loop), as the callbacks are; nothing here is thread-safe.
 */
#ifndef KG_COMMAND_H
#define KG_COMMAND_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cb/error.h"
#include "cb/util.h"
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
 * pid is the host pid, null when the command ended before the gateway could learn it;
 * inside_pid is the same process's pid inside the sandbox (null likewise).
 * Each of stdout and stderr keeps 16 MiB; beyond that output is dropped with a note. With
 * ring_bytes, each keeps instead its latest output (between ring_bytes and twice that), read by
 * offset with kg_command_read; the snapshot then also has "stdout_offset"/"stderr_offset", the
 * offset of the first byte kept.
 *
 * Background jobs: when the command's main process ends, what it started (`&`, nohup, setsid)
 * lives on until the sandbox ends or it is killed (kg_sandbox_signal_pid, or
 * kg_command_signal while the group still has members); the command ends with its main process
 * even though such a job may hold its stdout and stderr open. A timeout or kg_command_kill
 * still kills the whole process group. Such a job's later output is not refused (its writes
 * never fail with EPIPE): the gateway goes on reading the pipes until no holder is left or the
 * sandbox ends, keeping the latest of it (ring_bytes, or 64 KiB per stream for a command that
 * had none), read with kg_command_read; no callback sees it. A command forgotten meanwhile is
 * no longer found by id and its pipes are read (and dropped) until then. At most 64 ended
 * commands per sandbox have their pipes read so; past that, the oldest one's are closed.
 *
 * Terminals: with pty, the command runs on a terminal of the sandbox's devpts as its
 * controlling terminal (isatty is true; the command's group is the foreground group). stdin,
 * stdout and stderr are all the terminal: what is written with kg_command_write_stdin is typed
 * into it, and everything it shows arrives as "stdout".
 * ------------------------------------------------------------------------------------------- */

/* data is not NUL-terminated. Borrowed; valid during the call. */
typedef void(kg_command_output_fn)(kg_command_t *c, const char *stream, const char *data,
                                   size_t len, void *arg);
/* Called once when the command has ended, with its final snapshot. Borrowed; valid during the
 * call. */
typedef void(kg_command_done_fn)(kg_command_t *c, json_t *result, void *arg);

typedef struct {
    const char *command;       /* run as: /bin/bash -c COMMAND */
    const char *origin;        /* who asked, for the audit trail ("mcp", "e2b", ...); NULL:
                                  "client" */
    const char *const *env;    /* extra "KEY=VALUE" entries, NULL-terminated; borrowed */
    const char *cwd;           /* inside path; NULL: /home/user */
    const char *stdin_text;    /* written to stdin first; NULL: nothing */
    bool keep_stdin_open;      /* leave stdin open for kg_command_write_stdin; else it is
                                     closed after stdin_text */
    int timeout_ms;            /* 0: no limit */
    size_t ring_bytes;         /* 0: keep the first 16 MiB of each stream; else the latest output,
                               up to twice this (see above) */
    bool pty;                  /* run on a terminal (see above); stdin stays open */
    unsigned short cols, rows; /* the terminal's size; 0: 80 x 24 */
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

/* Send sig to the command's whole process group (its background jobs too, while the group
 * has members, even after the main process has ended); each member is checked to be a process
 * of the sandbox first. CB_ERR_NOT_FOUND when no process of the group is left. */
int kg_command_signal(kg_command_t *self, int sig, cb_error_t *err);

/* Signal what runs in the foreground: on a terminal, sig to the terminal's foreground process
 * group (TIOCSIG: for SIGINT as ctrl-c would, even when the program turned ctrl-c off); else
 * to the command's process group (kg_command_signal). kg_command_interrupt sends SIGINT. */
int kg_command_signal_foreground(kg_command_t *self, int sig, cb_error_t *err);
int kg_command_interrupt(kg_command_t *self, cb_error_t *err);

/* On a terminal: 1 when the command's own process group holds the terminal's foreground (a
 * shell at its prompt, or running a builtin), 0 when another group does (a program the shell
 * started: a REPL, an editor), -1 when not known (no terminal, or it has ended). */
int kg_command_foreground_is_own(const kg_command_t *self);

/* Set a terminal command's size (TIOCSWINSZ: the foreground program gets SIGWINCH). */
int kg_command_resize(kg_command_t *self, unsigned short cols, unsigned short rows,
                      cb_error_t *err);

/* Read kept output of stream ("stdout" or "stderr") from offset (a count of bytes since the
 * command started) into out (appended), at most max bytes. *start is where what was read
 * begins: offset, or the first byte still kept when offset is older; *total is how many bytes
 * the stream has produced so far. Returns -1 for an unknown stream. */
int kg_command_read(const kg_command_t *self, const char *stream, uint64_t offset, size_t max,
                    cb_buf_t *out, uint64_t *start, uint64_t *total, cb_error_t *err);

/* The main process's pid inside the sandbox; 0 when not known. */
pid_t kg_command_inside_pid(const kg_command_t *self);

/* Replace the command's callbacks and their arg (a surface that connects to a running
 * command later, like E2B's connect, takes its output from now on; what came before is read
 * with kg_command_read). NULL callbacks: none. Not from the command's own on_output. */
void kg_command_set_callbacks(kg_command_t *self, kg_command_output_fn *on_output,
                              kg_command_done_fn *on_done, void *arg);

/* Current state (see above). Caller owns return value. */
json_t *kg_command_snapshot(const kg_command_t *self);

/* Forget a command; a running one is killed first. Nulls the caller's pointer. */
void kg_command_forget(kg_command_t **self_p);

/* True when the command has ended and a background job still holds its stdout or stderr open:
 * its later output is being kept (see "Background jobs"). */
bool kg_command_output_open(const kg_command_t *self);

const char *kg_command_id(const kg_command_t *self); /* Borrowed; valid with the command */
bool kg_command_running(const kg_command_t *self);

/* Look a command up by id in a sandbox. Borrowed; see kg_command_start. */
kg_command_t *kg_sandbox_command(kg_sandbox_t *sb, const char *id);

/* ---------------------------------------------------------------------------------------------
 * Every process in a sandbox, seen from the host: the processes in the pid namespace of the
 * sandbox's init, found through the host's /proc (never through anything the sandbox can
 * write). Pids are pids inside the sandbox; the init is pid 1.
 * ------------------------------------------------------------------------------------------- */

/* [{ "pid": 12, "ppid": 1, "command": "sleep 1000", "name": "sleep", "state": "S",
 *    "started_at": "2026-...Z", "command_id": "..." | null }, ...], sorted by pid.
 * command is the process's own argv (which it can rewrite: shown, never trusted), cut at
 * 4 KiB; command_id names the command whose main process it is. Caller owns return value. */
json_t *kg_sandbox_processes(kg_sandbox_t *sb, cb_error_t *err);

/* Send sig to the process whose pid inside the sandbox is pid. A pid that is not a process of
 * this sandbox, and the init (pid 1), are refused (CB_ERR_NOT_FOUND, CB_ERR_INVALID): the pid
 * is translated and checked through the sandbox's pid namespace and held by a pidfd, so a
 * process elsewhere is never hit. */
int kg_sandbox_signal_pid(kg_sandbox_t *sb, pid_t pid, int sig, cb_error_t *err);

#endif
