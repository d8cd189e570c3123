/* kg/types.h: the engine's classes, by name, and what they share.
 *
 * The engine is cellblock's Jupyter client side. One gateway (kg/gateway.h) owns one czmq event
 * loop and every kernel socket on it; sandboxes (kg/sandbox.h) hold kernels (kg/kernel.h) and
 * commands (kg/command.h); an execution (kg/execution.h) is a small state machine fed by its
 * kernel's shell, iopub and stdin messages routed by parent msg_id; a kernel client
 * (kg/client.h) lets a surface above the engine talk to a kernel; a policy (kg/policy.h) hears
 * what happens to sandboxes. Each class has its header; this one names them so that each can
 * mention the others. The Jupyter protocol itself (messages, channels, kernelspecs, connection
 * files) is the protocol library's: jupyter/.
 *
 * Ownership follows fixed phrases: "Caller owns return value", "Takes ownership", "Borrowed;
 * valid until ...". Kernels and executions belong to the gateway; callers hold borrowed pointers
 * whose lifetime each function states, or look kernels up again by id.
 *
 * Callbacks (on_done, on_event, on_output, hooks, timers) run on the loop. What a callback may
 * and may not do is the loop's rule, stated once beside kg_gateway_loop in kg/gateway.h: above
 * all, never run the loop again from one, and never free an object a caller up the stack holds.
 */
#ifndef KG_TYPES_H
#define KG_TYPES_H

#include <stdbool.h>
#include <stdint.h>

typedef struct kg_gateway kg_gateway_t;
typedef struct kg_sandbox kg_sandbox_t;
typedef struct kg_kernel kg_kernel_t;
typedef struct kg_execution kg_execution_t;
typedef struct kg_command kg_command_t;

/* Limits of one sandbox. Zero fields take the gateway's defaults (kg_config_t.limits), whose
 * own zero fields mean: memory 2048 MiB, 1024 pids, no CPU quota, /tmp 256 MiB, workspace
 * 1024 MiB, no network. */
typedef struct {
    uint64_t memory_mb;
    uint64_t pids_max;
    uint32_t cpu_millis; /* thousandths of a core: 500 is half a core */
    uint64_t tmp_mb;
    uint64_t workspace_mb;
    /* Its network policy (egress/egress.h); NULL: the gateway's default, and none when that is
     * NULL too. Borrowed: kg_sandbox_new copies it. */
    const struct egress_policy *network;
} kg_sandbox_limits_t;

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

typedef void(kg_kernel_event_fn)(kg_kernel_t *kernel, kg_kernel_event_t event, const char *detail,
                                 void *arg);

#endif
