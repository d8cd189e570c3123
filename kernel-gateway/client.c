/* client.c: a client of one kernel's shell, control and stdin channels (kg_kernel_client_t), for
 * the surfaces above the engine that relay a remote client's requests (the Jupyter API's
 * channels WebSocket), so they never touch the kernel's key, replay guard or endpoints.
 *
 * Three DEALERs share one routing id: the kernel sends input_request to the identity that made
 * the execute_request, so stdin must answer as the shell did. They connect to the kernel's
 * endpoints (jp_conninfo_endpoint: the fixed fd numbers of the run directory's rules), which
 * stay the same across restarts while ZMQ reconnects by itself. iopub is not here: the kernel's
 * own SUB has been subscribed since the start, and listeners (kg_kernel_listen) get every
 * verified iopub message from it.
 *
 * The client listens to its kernel for one thing: STOPPED. It then disconnects at once, because
 * the endpoints name the kernel's fd numbers, which are closed (and may be reused by anything)
 * once the kernel is freed right after that event; a socket still reconnecting to one would
 * connect somewhere else. The object itself is freed by kg_kernel_client_destroy, whose caller
 * may be up the stack of our own reader: the sockets go on a deferred turn (kg.h's rule 2).
 */
#include <errno.h>

#include "cb/alloc.h"
#include "cb/log.h"
#include "kg_private.h"

/* The channels a client has a socket for, in socket order. */
static const jp_channel_t s_sock_channel[3] = {JP_CH_SHELL, JP_CH_CONTROL, JP_CH_STDIN};

struct kg_kernel_client {
    kg_gateway_t *gw;
    kg_kernel_t *kernel; /* NULL once the kernel stopped (or the client was destroyed) */
    kg_kernel_client_fn *on_message;
    void *arg;
    zsock_t *socks[3];
    char endpoints[3][64]; /* what each connected to, for the disconnect */
};

static void s_on_kernel_event(kg_kernel_t *kernel, kg_kernel_event_t event, const char *detail,
                              void *arg);

/* Quiet: no reader, no connection, no listener. The sockets themselves stay until the free. */
static void s_quiet(kg_kernel_client_t *self)
{
    for (int i = 0; i < 3; i++) {
        if (!self->socks[i])
            continue;
        zloop_reader_end(self->gw->loop, self->socks[i]);
        if (self->endpoints[i][0])
            zsock_disconnect(self->socks[i], "%s", self->endpoints[i]);
        self->endpoints[i][0] = '\0';
    }
    if (self->kernel)
        kg_kernel_unlisten(self->kernel, self);
    self->kernel = NULL;
}

static void s_on_kernel_event(kg_kernel_t *kernel, kg_kernel_event_t event, const char *detail,
                              void *arg)
{
    if (event == KG_EVENT_STOPPED)
        s_quiet(arg);
}

static int s_on_reader(zloop_t *loop, zsock_t *sock, void *arg)
{
    kg_kernel_client_t *self = arg;
    kg_gateway_t *gw = self->gw;
    int i = 0;
    while (i < 3 && self->socks[i] != sock)
        i++;
    /* Drain what is waiting (bounded, for fairness between kernels); on_message may quiet or
     * destroy the client, which ends this reader: check the kernel before each message. */
    for (int budget = 64; budget > 0 && i < 3 && self->kernel; budget--) {
        if (!(zsock_events(sock) & ZMQ_POLLIN))
            break;
        zmsg_t *raw = zmsg_recv(sock);
        if (!raw)
            break;
        kg_kernel_t *k = self->kernel;
        jp_wire_status_t status;
        jp_msg_t *msg = jp_wire_decode(&raw, k->signer, k->replay, &status);
        if (!msg) {
            kg_gateway_count_rejected(gw, status, false);
            cb_debug("kernel %.8s: a client dropped a %s frame: %s", k->id,
                     jp_channel_name(s_sock_channel[i]), jp_wire_status_name(status));
            zmsg_destroy(&raw);
            continue;
        }
        kg_kernel_touch(k);
        self->on_message(self, s_sock_channel[i], msg, self->arg);
        jp_msg_destroy(&msg);
    }
    return kg_gateway_handler_result(gw);
}

static void s_free(kg_gateway_t *gw, void *arg)
{
    kg_kernel_client_t *self = arg;
    for (int i = 0; i < 3; i++)
        zsock_destroy(&self->socks[i]);
    free(self);
}

kg_kernel_client_t *kg_kernel_client_new(kg_kernel_t *kernel, kg_kernel_client_fn *on_message,
                                         void *arg, cb_error_t *err)
{
    if (kernel->stopping || kernel->state == KG_KERNEL_STOPPED)
        return cb_error_fail(err, CB_ERR_STATE, "kernel %.8s is stopping", kernel->id), NULL;
    kg_kernel_client_t *self = cb_xcalloc(1, sizeof *self);
    self->gw = kernel->gw;
    self->on_message = on_message;
    self->arg = arg;
    char routing_id[37];
    zuuid_t *uuid = zuuid_new();
    snprintf(routing_id, sizeof routing_id, "%s", zuuid_str_canonical(uuid));
    zuuid_destroy(&uuid);
    int rc = 0;
    for (int i = 0; i < 3 && rc == 0; i++) {
        jp_channel_t ch = s_sock_channel[i];
        zsock_t *s = self->socks[i] = zsock_new(ZMQ_DEALER);
        if (!s) {
            rc = cb_error_fail(err, CB_ERR_SYSTEM, "create a %s socket", jp_channel_name(ch));
            break;
        }
        zsock_set_linger(s, 0);
        zsock_set_sndtimeo(s, 0); /* never block the loop: a full queue fails the send instead */
        zsock_set_reconnect_ivl(s, 10);
        kg_socket_limits(s, self->gw->cfg.max_message_bytes);
        zsock_set_identity(s, routing_id);
        jp_conninfo_endpoint(&kernel->ci, ch, self->endpoints[i], sizeof self->endpoints[i]);
        if (zsock_connect(s, "%s", self->endpoints[i]) < 0) {
            self->endpoints[i][0] = '\0';
            rc = cb_error_fail(err, CB_ERR_SYSTEM, "connect %s to the kernel", jp_channel_name(ch));
        }
    }
    for (int i = 0; i < 3 && rc == 0; i++) {
        if (zloop_reader(self->gw->loop, self->socks[i], s_on_reader, self) < 0)
            rc = cb_error_fail(err, CB_ERR_SYSTEM, "watch a kernel client's sockets");
        else
            zloop_reader_set_tolerant(self->gw->loop, self->socks[i]);
    }
    if (rc == 0) {
        kg_kernel_listener_t listener = {.on_event = s_on_kernel_event, .arg = self};
        rc = kg_kernel_listen(kernel, &listener, err);
    }
    if (rc < 0) {
        s_quiet(self);          /* kernel still NULL: there is no listener to remove */
        s_free(self->gw, self); /* nothing registered can reach it any more */
        return NULL;
    }
    self->kernel = kernel;
    return self;
}

int kg_kernel_client_send(kg_kernel_client_t *self, jp_channel_t ch, const jp_msg_t *msg,
                          cb_error_t *err)
{
    kg_kernel_t *k = self->kernel;
    if (!k)
        return cb_error_fail(err, CB_ERR_STATE, "the kernel has stopped");
    int i = 0;
    while (i < 3 && s_sock_channel[i] != ch)
        i++;
    if (i == 3)
        return cb_error_fail(err, CB_ERR_INVALID,
                             "a kernel client sends on shell, control or stdin, not %s",
                             jp_channel_name(ch));
    if (jp_wire_send(self->socks[i], msg, k->signer) < 0)
        return cb_error_make(err, errno, "send a %s to kernel %.8s", jp_msg_type(msg), k->id);
    kg_kernel_touch(k);
    if (k->sandbox)
        kg_sandbox_touch(k->sandbox); /* a client's request is use (lifetime.c) */
    if (k->sandbox && ch == JP_CH_SHELL && strcmp(jp_msg_type(msg), "execute_request") == 0)
        kg_kernel_audit_request(k, "jupyter", msg->content,
                                json_string_value(json_object_get(msg->header, "msg_id")));
    return 0;
}

void kg_kernel_client_destroy(kg_kernel_client_t **self_p)
{
    kg_kernel_client_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    *self_p = NULL;
    s_quiet(self);
    kg_gateway_defer(self->gw, s_free, self);
}
