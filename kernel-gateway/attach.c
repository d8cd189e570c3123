/* attach.c: the attach proxy, so external Jupyter clients can join a live kernel.
 *
 * A person runs `jupyter console --existing FILE` (or jupyter_client's BlockingKernelClient) on
 * a connection file the gateway wrote: loopback TCP ports the gateway binds, and a key of its
 * own. The kernel's key never leaves the gateway.
 *
 *   client ── ROUTER (front, our key) ──▶ verify, re-sign ──▶ DEALER (back, kernel key) ── kernel
 *   client ◀── ROUTER / PUB (front) ◀── verify, re-sign ◀── DEALER / SUB (back) ◀────────── kernel
 *
 * Shell, control and stdin are ROUTER-DEALER pairs: the kernel sees the client's identity
 * stacked under the proxy's, and its replies come back with that identity first, which the
 * front ROUTER routes on. The back shell and stdin DEALERs share one routing id, because the
 * kernel sends input_request to the identity that made the shell request. iopub is SUB to PUB.
 * Heartbeat bytes pass through untouched. Frames are split, their signature verified (length,
 * constant-time compare, replay), and the same frames re-signed. What a client sends must also
 * have four dict frames that are JSON objects, checked only after the signature verified (the
 * kernel's own output is trusted and not parsed). A frame that fails is dropped and counted,
 * never forwarded. A client's shutdown_request is answered by the proxy with a refusal: the
 * kernel belongs to the gateway, and a person detaching must not end an assistant's session.
 *
 * The file goes where no sandbox can write: "k-<id8>.attach.json" in the sandbox's host run dir
 * (the gateway's private directory, never mounted inside) or in the runtime dir without a
 * sandbox, written through that directory's fd under a fresh temporary name (O_EXCL | O_NOFOLLOW
 * | O_NONBLOCK) and renamed into place, and unlinked through the same fd.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>

#include "cb/alloc.h"
#include "cb/cleanup.h"
#include "cb/log.h"
#include "kg_private.h"

struct kg_attach {
    kg_kernel_t *kernel;
    jp_conninfo_t front_ci;
    char *path;    /* for people: the file's host path */
    char name[32]; /* "k-<id8>.attach.json" */
    int dir_fd;    /* the directory it is in (owned) */
    jp_signer_t *front_signer;
    jp_replay_t *front_replay; /* what clients send */
    jp_replay_t *back_replay;  /* what the kernel sends to the proxy (its own window) */
    zsock_t *front[JP_CH_COUNT];
    zsock_t *back[JP_CH_COUNT];
};

static int s_on_front(zloop_t *loop, zsock_t *sock, void *arg);
static int s_on_back(zloop_t *loop, zsock_t *sock, void *arg);

static jp_channel_t s_channel_of(zsock_t *const socks[JP_CH_COUNT], zsock_t *sock)
{
    for (int ch = 0; ch < JP_CH_COUNT; ch++)
        if (socks[ch] == sock)
            return (jp_channel_t)ch;
    return JP_CH_COUNT;
}

/* JP_WIRE_BAD_JSON unless each of a verified message's four dict frames is a JSON object. On
 * success *header_out holds the parsed header (caller owns it). */
static jp_wire_status_t s_check_dicts(const jp_wire_view_t *view, json_t **header_out)
{
    for (size_t i = 0; i < 4; i++) {
        json_t *dict = json_loadb((const char *)zframe_data(view->parts[i]),
                                  zframe_size(view->parts[i]), JSON_ALLOW_NUL, NULL);
        if (!json_is_object(dict)) {
            json_decref(dict);
            json_decref(*header_out);
            *header_out = NULL;
            return JP_WIRE_BAD_JSON;
        }
        if (i == 0)
            *header_out = dict;
        else
            json_decref(dict);
    }
    return JP_WIRE_OK;
}

/* The kernel belongs to the gateway (and, through it, to an assistant's session): an attached
 * client may use it but not end it. Answer its shutdown_request here, with a reason. */
static void s_refuse_shutdown(kg_attach_t *self, const jp_wire_view_t *view, json_t *header,
                              zsock_t *front)
{
    jp_msg_t *reply = jp_msg_new(
        "shutdown_reply", self->kernel->session, header,
        json_pack("{s:s, s:s, s:s, s:[]}", "status", "error", "ename", "ShutdownRefused", "evalue",
                  "this kernel is managed by cellblock; detach with Ctrl-D and stop "
                  "it from cellblock",
                  "traceback"));
    for (size_t i = 0; reply && i < view->n_idents; i++) {
        zframe_t *ident = zframe_dup(view->idents[i]);
        zmsg_append(reply->idents, &ident);
    }
    if (!reply || jp_wire_send(front, reply, self->front_signer) < 0)
        cb_warn("attach %.8s: could not answer a shutdown_request", self->kernel->id);
    cb_info("attach %.8s: refused a shutdown_request from an attached client", self->kernel->id);
    jp_msg_destroy(&reply);
}

static bool s_is_type(json_t *header, const char *type)
{
    const char *have = json_string_value(json_object_get(header, "msg_type"));
    return have && strcmp(have, type) == 0;
}

/* Verify with `from`, re-sign with `to`, send on `out`. Frames from clients (`from_client`) must
 * also hold JSON objects, and their shutdown requests are answered here rather than forwarded.
 * Takes ownership of *raw_p. */
static void s_relay(kg_attach_t *self, zmsg_t **raw_p, jp_signer_t *from, jp_replay_t *guard,
                    jp_signer_t *to, zsock_t *in, zsock_t *out, bool from_client)
{
    jp_wire_view_t view;
    json_t *header = NULL;
    jp_wire_status_t status = jp_wire_split(*raw_p, &view);
    if (status == JP_WIRE_OK)
        status = jp_wire_verify(from, guard, &view);
    if (status == JP_WIRE_OK && from_client)
        status = s_check_dicts(&view, &header);
    if (status != JP_WIRE_OK || jp_wire_resign(&view, to) < 0) {
        kg_gateway_count_rejected(self->kernel->gw, status, true);
        cb_debug("attach %.8s: dropped a frame from %s: %s", self->kernel->id,
                 from_client ? "a client" : "the kernel", jp_wire_status_name(status));
        zmsg_destroy(raw_p);
    } else if (from_client && s_is_type(header, "shutdown_request")) {
        s_refuse_shutdown(self, &view, header, in);
        zmsg_destroy(raw_p);
    } else {
        /* An attached person's code goes to the audit trail; read before the frames go. */
        json_t *content = from_client && s_is_type(header, "execute_request")
                              ? json_loadb((const char *)zframe_data(view.parts[3]),
                                           zframe_size(view.parts[3]), JSON_ALLOW_NUL, NULL)
                              : NULL;
        if (zmsg_send(raw_p, out) < 0) {
            zmsg_destroy(raw_p);
        } else if (from_client && self->kernel->sandbox) {
            kg_sandbox_touch(self->kernel->sandbox); /* a person's request is use (lifetime.c) */
            if (content)
                kg_kernel_audit_request(self->kernel, "attach", content,
                                        json_string_value(json_object_get(header, "msg_id")));
        }
        json_decref(content);
    }
    json_decref(header);
}

static int s_on_front(zloop_t *loop, zsock_t *sock, void *arg)
{
    kg_attach_t *self = arg;
    jp_channel_t ch = s_channel_of(self->front, sock);
    zmsg_t *raw = zmsg_recv(sock);
    if (!raw || ch == JP_CH_COUNT || !self->back[ch]) {
        zmsg_destroy(&raw);
    } else if (ch == JP_CH_HB) {
        if (zmsg_send(&raw, self->back[ch]) < 0)
            zmsg_destroy(&raw);
    } else {
        s_relay(self, &raw, self->front_signer, self->front_replay, self->kernel->signer, sock,
                self->back[ch], true);
    }
    return kg_gateway_handler_result(self->kernel->gw);
}

static int s_on_back(zloop_t *loop, zsock_t *sock, void *arg)
{
    kg_attach_t *self = arg;
    jp_channel_t ch = s_channel_of(self->back, sock);
    zmsg_t *raw = zmsg_recv(sock);
    if (!raw || ch == JP_CH_COUNT) {
        zmsg_destroy(&raw);
    } else if (ch == JP_CH_HB) {
        if (zmsg_send(&raw, self->front[ch]) < 0)
            zmsg_destroy(&raw);
    } else {
        s_relay(self, &raw, self->kernel->signer, self->back_replay, self->front_signer, sock,
                self->front[ch], false);
    }
    return kg_gateway_handler_result(self->kernel->gw);
}

void kg_attach_destroy(kg_attach_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    kg_attach_t *self = *self_p;
    zloop_t *loop = self->kernel->gw->loop;
    for (int ch = 0; ch < JP_CH_COUNT; ch++) {
        zsock_t **pair[2] = {&self->front[ch], &self->back[ch]};
        for (int i = 0; i < 2; i++) {
            if (*pair[i]) {
                zloop_reader_end(loop, *pair[i]);
                zsock_destroy(pair[i]);
            }
        }
    }
    if (self->dir_fd >= 0) {
        if (self->name[0])
            unlinkat(self->dir_fd, self->name, 0);
        close(self->dir_fd);
    }
    free(self->path);
    jp_signer_destroy(&self->front_signer);
    jp_replay_destroy(&self->front_replay);
    jp_replay_destroy(&self->back_replay);
    free(self);
    *self_p = NULL;
}

static int s_open(kg_attach_t *self, cb_error_t *err)
{
    kg_kernel_t *k = self->kernel;
    zloop_t *loop = k->gw->loop;
    static const int front_types[JP_CH_COUNT] = {ZMQ_ROUTER, ZMQ_PUB, ZMQ_ROUTER, ZMQ_ROUTER,
                                                 ZMQ_ROUTER};
    static const int back_types[JP_CH_COUNT] = {ZMQ_DEALER, ZMQ_SUB, ZMQ_DEALER, ZMQ_DEALER,
                                                ZMQ_DEALER};
    zuuid_t *uuid = zuuid_new(); /* czmq aborts when memory runs out */
    char routing_id[37];
    snprintf(routing_id, sizeof routing_id, "%s", zuuid_str_canonical(uuid));
    zuuid_destroy(&uuid);

    for (int ch = 0; ch < JP_CH_COUNT; ch++) {
        zsock_t *front = self->front[ch] = zsock_new(front_types[ch]);
        zsock_t *back = self->back[ch] = zsock_new(back_types[ch]);
        if (!front || !back)
            return cb_error_fail(err, CB_ERR_SYSTEM, "create attach %s sockets",
                                 jp_channel_name(ch));
        zsock_set_linger(front, 0);
        zsock_set_linger(back, 0);
        kg_socket_limits(back, k->gw->cfg.max_message_bytes);
        if (ch == JP_CH_SHELL || ch == JP_CH_STDIN)
            zsock_set_identity(back, routing_id);
        if (ch == JP_CH_IOPUB)
            zsock_set_subscribe(back, "");
        int port = zsock_bind(front, "tcp://127.0.0.1:*");
        if (port < 0)
            return cb_error_make(err, errno, "bind attach %s port on 127.0.0.1",
                                 jp_channel_name(ch));
        self->front_ci.ports[ch] = port;
        char endpoint[PATH_MAX];
        jp_conninfo_endpoint(&k->ci, ch, endpoint, sizeof endpoint);
        if (zsock_connect(back, "%s", endpoint) < 0)
            return cb_error_fail(err, CB_ERR_SYSTEM, "connect attach %s to the kernel",
                                 jp_channel_name(ch));
        if ((ch != JP_CH_IOPUB && zloop_reader(loop, front, s_on_front, self) < 0) ||
            zloop_reader(loop, back, s_on_back, self) < 0)
            return cb_error_fail(err, CB_ERR_SYSTEM, "watch attach %s sockets",
                                 jp_channel_name(ch));
        if (ch != JP_CH_IOPUB)
            zloop_reader_set_tolerant(loop, front);
        zloop_reader_set_tolerant(loop, back);
    }
    return 0;
}

kg_attach_t *kg_attach_new(kg_kernel_t *k, cb_error_t *err)
{
    kg_attach_t *self = cb_xcalloc(1, sizeof *self);
    self->kernel = k;
    jp_conninfo_t *ci = &self->front_ci;
    ci->transport = JP_TRANSPORT_TCP;
    snprintf(ci->ip, sizeof ci->ip, "127.0.0.1");
    snprintf(ci->kernel_name, sizeof ci->kernel_name, "%s", k->spec->name);
    snprintf(self->name, sizeof self->name, "k-%.8s.attach.json", k->id);
    const char *dir = k->sandbox ? sbx_run_dir(k->sandbox->sbx) : k->gw->runtime_dir;
    self->dir_fd = k->sandbox ? fcntl(sbx_host_dir_fd(k->sandbox->sbx), F_DUPFD_CLOEXEC, 0)
                              : open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    self->path = cb_strdup_printf("%s/%s", dir, self->name);
    self->front_replay = jp_replay_new(4096);
    self->back_replay = jp_replay_new(4096);
    int rc = (self->front_replay && self->back_replay) /* wire.c: NULL when out of memory */
                 ? 0
                 : cb_error_make(err, ENOMEM, "new attach proxy");
    if (rc == 0 && self->dir_fd < 0)
        rc = cb_error_make(err, errno, "open '%s'", dir);
    if (rc == 0)
        rc = jp_conninfo_new_key(ci->key, err);
    if (rc == 0 && !(self->front_signer = jp_signer_new(ci->key, strlen(ci->key), err)))
        rc = -1;
    if (rc == 0)
        rc = s_open(self, err);
    cleanup_free char *text = rc == 0 ? jp_conninfo_json(ci, err) : NULL;
    if (rc == 0 && !text)
        rc = -1;
    if (rc == 0)
        rc = cb_write_file_at(self->dir_fd, self->name, text, strlen(text), 0600, err);
    if (rc < 0) {
        cb_error_prefix(err, "attach to kernel %.8s: ", k->id);
        kg_attach_destroy(&self);
        return NULL;
    }
    cb_info("kernel %.8s: attach proxy on 127.0.0.1 ports %d-%d", k->id, ci->ports[0],
            ci->ports[JP_CH_HB]);
    return self;
}

const char *kg_attach_path(const kg_attach_t *self) { return self->path; }
