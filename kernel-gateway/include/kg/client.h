/* kg/client.h: a kernel client: a surface above the engine talking to one kernel.
 *
 * Blocking: nothing here blocks (sends queue, or fail with EAGAIN). A client may be destroyed
 * from its own on_message.
 *
 * Threads: call every function here from the thread that runs the gateway's loop
 * (kg_gateway_loop), as the callbacks are; nothing here is thread-safe.
 */
#ifndef KG_CLIENT_H
#define KG_CLIENT_H

#include "cb/error.h"
#include "jupyter/connfile.h" /* jp_channel_t */
#include "jupyter/wire.h"
#include "kg/types.h"

/* ---------------------------------------------------------------------------------------------
 * Kernel clients.
 * ------------------------------------------------------------------------------------------- */

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
