/* kg/sandbox.h: sandboxes: isolated process trees holding kernels and commands.
 *
 * Blocking: kg_sandbox_create and kg_sandbox_new (clone the sandbox and wait for its init to be
 * set up, bounded by the setup timeout), kg_sandbox_destroy (kills and reaps what is left),
 * kg_sandbox_info (reads the cgroup's files) and the kg_sandbox_file_* calls (workspace files
 * on the host, bounded by their sizes) do short blocking I/O; none waits on code inside. Do not
 * destroy a sandbox from a callback of one of its kernels or commands: end it with
 * kg_sandbox_end_later.
 *
 * Threads: call every function here from the thread that runs the gateway's loop
 * (kg_gateway_loop), as the callbacks are; nothing here is thread-safe.
 */
#ifndef KG_SANDBOX_H
#define KG_SANDBOX_H

#include <jansson.h>
#include <sys/types.h>

#include "cb/error.h"
#include "cb/util.h"
#include "egress/egress.h"
#include "kg/types.h"

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

/* Every live sandbox, hidden ones too, in no particular order. Caller owns return value (the
 * list; the sandboxes are borrowed, valid until destroyed). */
zlistx_t *kg_gateway_sandboxes(kg_gateway_t *gw);

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

/* A TCP socket in the sandbox's network namespace (sbx_socket: non-blocking; bound or connected
 * from here it reaches only the sandbox's loopback), and a terminal of its devpts (sbx_pty:
 * the master, non-blocking; its peer in *peer_fd). Caller owns the fds; -1 with err. */
int kg_sandbox_socket(kg_sandbox_t *self, int domain, cb_error_t *err);
int kg_sandbox_pty(kg_sandbox_t *self, int *peer_fd, cb_error_t *err);

/* Its registration with the gateway's proxy (kg_gateway_egress): every sandbox has one, with
 * or without egress, so that port forwards can be tied to it (egress_forward's sb); removed when
 * the sandbox is destroyed. Borrowed; valid with the sandbox. */
egress_sandbox_t *kg_sandbox_egress(kg_sandbox_t *self);

/* Its network policy; NULL: none. Borrowed; valid with the sandbox. */
const egress_policy_t *kg_sandbox_network(const kg_sandbox_t *self);
/* The policy as egress_policy_describe shows it ({mode: "none"} for none). Caller owns return
 * value. */
json_t *kg_sandbox_network_info(kg_sandbox_t *self);
/* {connections, allowed, denied, bytes_out, bytes_in, open, records: the last max_records
 * connection records (0: all kept), oldest first (egress_sandbox_connections)}. Caller owns
 * return value. */
json_t *kg_sandbox_network_metrics(kg_sandbox_t *self, size_t max_records);

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
/* What path names, a symlink not followed (sbx_file_stat): {name ("" for the workspace), type
 * (as kg_sandbox_file_list's), size, mtime_ms, mode (st_mode: type and permission bits),
 * owned (by the sandbox user), symlink_target (a symlink's, as stored; absent otherwise)}.
 * Caller owns return value; NULL with err. */
json_t *kg_sandbox_file_stat(kg_sandbox_t *self, const char *path, cb_error_t *err);
/* A directory's entries, sorted by name, each as kg_sandbox_file_stat's. Caller owns return
 * value; NULL with err. */
json_t *kg_sandbox_file_entries(kg_sandbox_t *self, const char *path, cb_error_t *err);
/* Rename (sbx_file_rename: neither final component followed; both ends in the workspace). */
int kg_sandbox_file_rename(kg_sandbox_t *self, const char *from, const char *to, cb_error_t *err);
/* An O_PATH | O_DIRECTORY fd of a workspace directory (sbx_file_open_dir), for watching it.
 * Caller owns return value; -1 with err. */
int kg_sandbox_file_open_dir(kg_sandbox_t *self, const char *path, cb_error_t *err);

#endif
