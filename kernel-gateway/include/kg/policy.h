/* kg/policy.h: the policy hooks: how a policy layer hears what happens to sandboxes.
 *
 * Blocking: nothing here blocks. A hook must not destroy the sandbox it is told about (end it
 * with kg_sandbox_end_later) nor run the loop.
 *
 * Threads: call every function here from the thread that runs the gateway's loop
 * (kg_gateway_loop), as the callbacks are; nothing here is thread-safe.
 */
#ifndef KG_POLICY_H
#define KG_POLICY_H

#include <jansson.h>

#include "cb/error.h"
#include "kg/types.h"

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
    /* Something a client did in the sandbox, for an audit trail: kind is "execution",
     * "execution_request" (a Jupyter client's own), "command", "file_write", "file_delete",
     * "file_mkdir", "file_rename", "kernel_start", "kernel_dead" or
     * "kernel_stop";
     * record (Borrowed; valid during the call) its fields: never a file's content nor an
     * environment variable's value. Times: "started_ms" is wall-clock ms since the epoch. */
    void (*activity)(kg_sandbox_t *sb, const char *kind, json_t *record, void *arg);
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

#endif
