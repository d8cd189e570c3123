/* kernels/kernel/core.c: the Jupyter side of cellblock-kernel, the same for every language.
 *
 * One zloop serves the five channels of the connection file: shell and control (ROUTER), iopub
 * (PUB), stdin (ROUTER) and the heartbeat (REP, echoed). Every message is verified before it is
 * parsed (jp_wire_decode with the signer and a replay guard); a bad one is dropped with a debug
 * line. Signals arrive through a signalfd on the same loop: SIGINT interrupts the running cell,
 * SIGTERM ends the kernel cleanly, SIGCHLD reaps the processes drivers started (proc.c).
 *
 * Shell requests run one at a time in arrival order: while a cell or a driver request runs, the
 * others wait in a queue (s_pump takes the next when the running one finishes). Each runs between
 * status busy and status idle on iopub. kernel_info is answered at once even while a cell runs,
 * and control is never queued behind shell. After a cell fails with stop_on_error, the
 * execute_requests already queued are answered "aborted" (as ipykernel does).
 *
 * The handlers live in one table (s_handlers): the dispatcher does the shared work (queueing,
 * busy/idle) once and each handler holds only its own logic.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "cb/alloc.h"
#include "cb/cleanup.h"
#include "cb/log.h"
#include "kernel.h"

#define S_REPLAY_WINDOW 4096
#define S_QUEUE_CAP 10000 /* shell requests waiting their turn */
#define S_SWEEP_MS 5000

struct kn_cell {
    kn_kernel_t *k;
    jp_msg_t *req;
    bool silent;
    bool allow_stdin;
    bool stop_on_error;
    bool errors_locked; /* the core already reported why the cell failed (stdin refused) */
    bool interrupted;   /* an interrupt was sent to the driver */
    int count;
    char *ename; /* the first error, for execute_reply */
    char *evalue;
    json_t *traceback;
};

struct kn_request {
    kn_kernel_t *k;
    jp_msg_t *req;
};

static inline void s_msg_cleanup(jp_msg_t **p) { jp_msg_destroy(p); }
#define cleanup_msg __attribute__((cleanup(s_msg_cleanup)))

/* ---- sending ------------------------------------------------------------------------------ */

static void s_send(kn_kernel_t *k, jp_channel_t ch, const jp_msg_t *parent, const char *type,
                   json_t *content)
{
    cleanup_msg jp_msg_t *msg =
        jp_msg_new(type, k->session, parent ? parent->header : NULL, content);
    if (!msg)
        return;
    if (parent && ch != JP_CH_IOPUB) {
        zmsg_destroy(&msg->idents);
        msg->idents = zmsg_dup(parent->idents);
    }
    if (jp_wire_send(k->sock[ch], msg, k->signer) < 0)
        cb_debug("kernel: sending %s on %s: %s", type, jp_channel_name(ch), strerror(errno));
}

void kn_publish(kn_kernel_t *k, const char *type, json_t *parent, json_t *content)
{
    cleanup_msg jp_msg_t *msg = jp_msg_new(type, k->session, parent, content);
    if (msg && jp_wire_send(k->sock[JP_CH_IOPUB], msg, k->signer) < 0)
        cb_debug("kernel: publishing %s: %s", type, strerror(errno));
}

static void s_status(kn_kernel_t *k, const jp_msg_t *parent, const char *state)
{
    kn_publish(k, "status", parent->header, json_pack("{s:s}", "execution_state", state));
}

/* The reply type of a request type: "x_request" -> "x_reply". Caller owns return value. */
static char *s_reply_type(const char *type)
{
    size_t n = strlen(type);
    if (n > 8 && strcmp(type + n - 8, "_request") == 0)
        return cb_strdup_printf("%.*s_reply", (int)(n - 8), type);
    return cb_strdup_printf("%s_reply", type);
}

/* ---- the cell ----------------------------------------------------------------------------- */

const char *kn_cell_code(const kn_cell_t *cell)
{
    const char *code = json_string_value(json_object_get(cell->req->content, "code"));
    return code ? code : "";
}
bool kn_cell_silent(const kn_cell_t *cell) { return cell->silent; }
bool kn_cell_allow_stdin(const kn_cell_t *cell) { return cell->allow_stdin; }
int kn_cell_execution_count(const kn_cell_t *cell) { return cell->count; }

void kn_cell_stream(kn_cell_t *cell, const char *name, const char *data, size_t len)
{
    if (!len)
        return;
    size_t n = 0;
    cleanup_free char *text = cb_text_lossy(data, len, &n);
    json_t *content = json_pack("{s:s, s:s%}", "name", name, "text", text, n);
    if (content)
        kn_publish(cell->k, "stream", cell->req->header, content);
}

static void s_cell_output(kn_cell_t *cell, const char *type, json_t *data, json_t *metadata,
                          bool with_count)
{
    if (!json_is_object(data)) {
        json_decref(data);
        json_decref(metadata);
        cb_debug("kernel: %s without a data object dropped", type);
        return;
    }
    if (!json_is_object(metadata)) {
        json_decref(metadata);
        metadata = json_object();
    }
    json_t *content = json_pack("{s:o, s:o, s:o}", "data", data, "metadata", metadata, "transient",
                                json_object());
    if (content && with_count)
        json_object_set_new(content, "execution_count", json_integer(cell->count));
    if (content)
        kn_publish(cell->k, type, cell->req->header, content);
}

void kn_cell_display(kn_cell_t *cell, json_t *data, json_t *metadata)
{
    s_cell_output(cell, "display_data", data, metadata, false);
}

void kn_cell_result(kn_cell_t *cell, json_t *data, json_t *metadata)
{
    if (cell->silent) {
        json_decref(data);
        json_decref(metadata);
        return;
    }
    s_cell_output(cell, "execute_result", data, metadata, true);
}

void kn_cell_error(kn_cell_t *cell, const char *ename, const char *evalue, json_t *traceback)
{
    json_auto_t *tb = traceback;
    if (cell->errors_locked)
        return;
    ename = ename ? ename : "Error";
    evalue = evalue ? evalue : "";
    if (!json_is_array(tb)) {
        json_decref(tb);
        tb = json_pack("[s++]", ename, ": ", evalue);
        if (!tb)
            tb = json_array();
    }
    kn_publish(cell->k, "error", cell->req->header,
               json_pack("{s:s, s:s, s:O}", "ename", ename, "evalue", evalue, "traceback", tb));
    if (!cell->ename) {
        cell->ename = cb_xstrdup(ename);
        cell->evalue = cb_xstrdup(evalue);
        cell->traceback = json_incref(tb);
    }
}

int kn_cell_input_request(kn_cell_t *cell, const char *prompt, bool password)
{
    kn_kernel_t *k = cell->k;
    if (!cell->allow_stdin) {
        kn_cell_error(cell, "StdinNotImplementedError",
                      "this kernel's client does not accept input (allow_stdin is false)", NULL);
        return -1;
    }
    k->input_asker = KN_INPUT_DRIVER;
    s_send(k, JP_CH_STDIN, cell->req, "input_request",
           json_pack("{s:s, s:b}", "prompt", prompt ? prompt : "", "password", password));
    return 0;
}

void kn_stdin_ask(kn_kernel_t *k, kn_proc_t *p)
{
    if (!k->cell || k->input_asker != KN_INPUT_NONE)
        return;
    k->input_asker = KN_INPUT_PIPE;
    k->input_proc = p;
    s_send(k, JP_CH_STDIN, k->cell->req, "input_request",
           json_pack("{s:s, s:b}", "prompt", "", "password", false));
}

void kn_stdin_refuse(kn_kernel_t *k)
{
    kn_cell_t *cell = k->cell;
    if (!cell || cell->errors_locked)
        return;
    kn_cell_error(cell, "StdinNotImplementedError",
                  "the program reads its standard input, but this client does not accept input "
                  "(allow_stdin is false); the cell was interrupted",
                  NULL);
    cell->errors_locked = true;
    cell->interrupted = true;
    k->ops->interrupt(k->driver);
}

bool kn_cell_interrupted(const kn_cell_t *cell) { return cell->interrupted; }

static void s_pump(kn_kernel_t *k);

/* Answer every execute_request still queued "aborted", with busy/idle around each. */
static void s_abort_queued(kn_kernel_t *k)
{
    zlist_t *keep = zlist_new();
    jp_msg_t *msg;
    while ((msg = zlist_pop(k->queue))) {
        if (strcmp(jp_msg_type(msg), "execute_request") != 0) {
            zlist_append(keep, msg);
            continue;
        }
        s_status(k, msg, "busy");
        s_send(k, JP_CH_SHELL, msg, "execute_reply",
               json_pack("{s:s, s:i, s:{}, s:[]}", "status", "aborted", "execution_count",
                         k->execution_count, "user_expressions", "payload"));
        s_status(k, msg, "idle");
        jp_msg_destroy(&msg);
    }
    zlist_destroy(&k->queue);
    k->queue = keep;
}

static void s_cell_free(kn_cell_t *cell)
{
    jp_msg_destroy(&cell->req);
    free(cell->ename);
    free(cell->evalue);
    json_decref(cell->traceback);
    free(cell);
}

void kn_cell_done(kn_cell_t **cell_p)
{
    kn_cell_t *cell = *cell_p;
    if (!cell)
        return;
    *cell_p = NULL;
    kn_kernel_t *k = cell->k;
    kn_stdin_stop(k);
    k->input_asker = KN_INPUT_NONE;
    k->input_proc = NULL;

    json_t *reply;
    if (cell->ename)
        reply =
            json_pack("{s:s, s:i, s:s, s:s, s:O, s:{}, s:[]}", "status", "error", "execution_count",
                      cell->count, "ename", cell->ename, "evalue", cell->evalue, "traceback",
                      cell->traceback, "user_expressions", "payload");
    else
        reply = json_pack("{s:s, s:i, s:{}, s:[]}", "status", "ok", "execution_count", cell->count,
                          "user_expressions", "payload");
    s_send(k, JP_CH_SHELL, cell->req, "execute_reply", reply);
    if (cell->ename && cell->stop_on_error)
        s_abort_queued(k);
    s_status(k, cell->req, "idle");

    if (k->cell == cell)
        k->cell = NULL;
    s_cell_free(cell);
    k->busy = false;
    s_pump(k);
}

/* ---- driver requests ---------------------------------------------------------------------- */

const char *kn_request_type(const kn_request_t *req) { return jp_msg_type(req->req); }
json_t *kn_request_content(const kn_request_t *req) { return req->req->content; }

void kn_request_reply(kn_request_t **req_p, json_t *content)
{
    kn_request_t *req = *req_p;
    if (!req) {
        json_decref(content);
        return;
    }
    *req_p = NULL;
    kn_kernel_t *k = req->k;
    if (!json_is_object(content)) {
        json_decref(content);
        content = json_object();
    }
    if (!json_object_get(content, "status"))
        json_object_set_new(content, "status", json_string("ok"));
    cleanup_free char *type = s_reply_type(jp_msg_type(req->req));
    s_send(k, JP_CH_SHELL, req->req, type, content);
    s_status(k, req->req, "idle");
    if (k->request == req)
        k->request = NULL;
    jp_msg_destroy(&req->req);
    free(req);
    k->busy = false;
    s_pump(k);
}

/* The answer when a driver has no request op. Caller owns return value. */
static json_t *s_empty_answer(const jp_msg_t *msg)
{
    const char *type = jp_msg_type(msg);
    if (strcmp(type, "complete_request") == 0) {
        json_int_t pos = json_integer_value(json_object_get(msg->content, "cursor_pos"));
        return json_pack("{s:[], s:I, s:I, s:{}}", "matches", "cursor_start", pos, "cursor_end",
                         pos, "metadata");
    }
    if (strcmp(type, "inspect_request") == 0)
        return json_pack("{s:b, s:{}, s:{}}", "found", false, "data", "metadata");
    return json_pack("{s:s}", "status", "unknown");
}

/* ---- shell handlers ----------------------------------------------------------------------- */

/* A handler either answers at once (returns false) or started work that finishes later with
 * kn_cell_done / kn_request_reply (returns true: the kernel stays busy). Takes ownership of msg. */
typedef bool (*s_handler_fn)(kn_kernel_t *k, jp_msg_t *msg);

static json_t *s_kernel_info(kn_kernel_t *k)
{
    const kn_driver_ops_t *o = k->ops;
    cleanup_free char *banner =
        cb_strdup_printf("cellblock-kernel %s%s%s", o->language, k->version ? " " : "",
                         k->version ? k->version : "");
    return json_pack("{s:s, s:s, s:s, s:s, s:{s:s, s:s, s:s, s:s, s:s, s:s}, s:s, s:[]}", "status",
                     "ok", "protocol_version", JP_PROTOCOL_VERSION, "implementation", "cellblock",
                     "implementation_version", "0.1.0", "language_info", "name", o->language,
                     "version", k->version ? k->version : "", "mimetype", o->mimetype,
                     "file_extension", o->file_extension, "pygments_lexer", o->pygments_lexer,
                     "codemirror_mode", o->codemirror_mode, "banner", banner, "help_links");
}

static bool s_on_kernel_info(kn_kernel_t *k, jp_msg_t *msg)
{
    s_send(k, JP_CH_SHELL, msg, "kernel_info_reply", s_kernel_info(k));
    jp_msg_destroy(&msg);
    return false;
}

static bool s_on_comm_info(kn_kernel_t *k, jp_msg_t *msg)
{
    s_send(k, JP_CH_SHELL, msg, "comm_info_reply",
           json_pack("{s:s, s:{}}", "status", "ok", "comms"));
    jp_msg_destroy(&msg);
    return false;
}

static bool s_on_history(kn_kernel_t *k, jp_msg_t *msg)
{
    s_send(k, JP_CH_SHELL, msg, "history_reply",
           json_pack("{s:s, s:[]}", "status", "ok", "history"));
    jp_msg_destroy(&msg);
    return false;
}

static bool s_on_execute(kn_kernel_t *k, jp_msg_t *msg)
{
    json_t *c = msg->content;
    if (!json_is_string(json_object_get(c, "code"))) {
        s_send(k, JP_CH_SHELL, msg, "execute_reply",
               json_pack("{s:s, s:i, s:s, s:s, s:[s], s:{}, s:[]}", "status", "error",
                         "execution_count", k->execution_count, "ename", "BadRequest", "evalue",
                         "execute_request without a code string", "traceback",
                         "BadRequest: execute_request without a code string", "user_expressions",
                         "payload"));
        jp_msg_destroy(&msg);
        return false;
    }
    kn_cell_t *cell = cb_xcalloc(1, sizeof *cell);
    cell->k = k;
    cell->req = msg;
    cell->silent = json_is_true(json_object_get(c, "silent"));
    json_t *store = json_object_get(c, "store_history");
    bool store_history = store ? json_is_true(store) : !cell->silent;
    json_t *allow = json_object_get(c, "allow_stdin");
    cell->allow_stdin = allow ? json_is_true(allow) : true;
    json_t *stop = json_object_get(c, "stop_on_error");
    cell->stop_on_error = stop ? json_is_true(stop) : true;
    if (!cell->silent && store_history)
        k->execution_count++;
    cell->count = k->execution_count;
    if (!cell->silent)
        kn_publish(k, "execute_input", msg->header,
                   json_pack("{s:O, s:i}", "code", json_object_get(c, "code"), "execution_count",
                             cell->count));
    k->cell = cell;
    kn_stdin_start(k);
    k->ops->execute(k->driver, cell);
    return true;
}

static bool s_on_driver_request(kn_kernel_t *k, jp_msg_t *msg)
{
    if (!k->ops->request) {
        cleanup_free char *type = s_reply_type(jp_msg_type(msg));
        json_t *content = s_empty_answer(msg);
        json_object_set_new(content, "status", json_string("ok"));
        s_send(k, JP_CH_SHELL, msg, type, content);
        jp_msg_destroy(&msg);
        return false;
    }
    kn_request_t *req = cb_xcalloc(1, sizeof *req);
    req->k = k;
    req->req = msg;
    k->request = req;
    k->ops->request(k->driver, req);
    return true;
}

// clang-format off
static const struct {
    const char *type;
    s_handler_fn fn;
} s_handlers[] = {
    {"kernel_info_request",  s_on_kernel_info},
    {"comm_info_request",    s_on_comm_info},
    {"history_request",      s_on_history},
    {"execute_request",      s_on_execute},
    {"complete_request",     s_on_driver_request},
    {"inspect_request",      s_on_driver_request},
    {"is_complete_request",  s_on_driver_request},
};
// clang-format on

static s_handler_fn s_handler(const char *type)
{
    for (size_t i = 0; i < sizeof s_handlers / sizeof s_handlers[0]; i++)
        if (strcmp(s_handlers[i].type, type) == 0)
            return s_handlers[i].fn;
    return NULL;
}

/* Run one shell request between busy and idle. */
static void s_run(kn_kernel_t *k, jp_msg_t *msg)
{
    s_handler_fn fn = s_handler(jp_msg_type(msg));
    if (!fn) {
        cb_debug("kernel: ignoring shell message %s", jp_msg_type(msg));
        jp_msg_destroy(&msg);
        return;
    }
    /* The handler may free msg; keep the header for the idle status. */
    json_auto_t *parent = json_incref(msg->header);
    kn_publish(k, "status", parent, json_pack("{s:s}", "execution_state", "busy"));
    k->busy = true;
    if (fn(k, msg))
        return; /* kn_cell_done / kn_request_reply publish idle and pump */
    k->busy = false;
    kn_publish(k, "status", parent, json_pack("{s:s}", "execution_state", "idle"));
}

/* Start queued requests while nothing runs. Re-entrant calls (a driver that finishes a cell
 * inside execute) return at once: the outer call goes on. */
static void s_pump(kn_kernel_t *k)
{
    if (k->pumping)
        return;
    k->pumping = true;
    while (!k->busy && !k->stopping && zlist_size(k->queue) > 0)
        s_run(k, zlist_pop(k->queue));
    k->pumping = false;
}

/* ---- channels ----------------------------------------------------------------------------- */

/* One verified, parsed message from sock, or NULL (dropped with a debug line). */
static jp_msg_t *s_recv(kn_kernel_t *k, jp_channel_t ch)
{
    zmsg_t *raw = zmsg_recv(k->sock[ch]);
    if (!raw)
        return NULL;
    jp_wire_status_t status;
    jp_msg_t *msg = jp_wire_decode(&raw, k->signer, k->replay, &status);
    if (!msg) {
        cb_debug("kernel: dropped a message on %s: %s", jp_channel_name(ch),
                 jp_wire_status_name(status));
        zmsg_destroy(&raw);
        return NULL;
    }
    if (!json_is_object(msg->content)) {
        jp_msg_destroy(&msg);
        return NULL;
    }
    return msg;
}

static int s_on_shell(zloop_t *loop, zsock_t *sock, void *arg)
{
    kn_kernel_t *k = arg;
    jp_msg_t *msg = s_recv(k, JP_CH_SHELL);
    if (msg) {
        if (k->busy && strcmp(jp_msg_type(msg), "kernel_info_request") == 0) {
            s_on_kernel_info(k, msg); /* at once, without a status: a cell is running */
        } else if (zlist_size(k->queue) >= S_QUEUE_CAP) {
            cb_warn("kernel: %d shell requests wait already; %s dropped", S_QUEUE_CAP,
                    jp_msg_type(msg));
            jp_msg_destroy(&msg);
        } else {
            zlist_append(k->queue, msg);
            s_pump(k);
        }
    }
    return k->stopping ? -1 : 0;
}

static void s_interrupt(kn_kernel_t *k)
{
    if (!k->cell)
        return;
    k->cell->interrupted = true;
    if (k->input_asker == KN_INPUT_PIPE) { /* the question is void; stdin.c unblocks the reader */
        k->input_asker = KN_INPUT_NONE;
        k->input_proc = NULL;
    }
    k->ops->interrupt(k->driver);
}

static int s_on_control(zloop_t *loop, zsock_t *sock, void *arg)
{
    kn_kernel_t *k = arg;
    cleanup_msg jp_msg_t *msg = s_recv(k, JP_CH_CONTROL);
    if (!msg)
        return k->stopping ? -1 : 0;
    const char *type = jp_msg_type(msg);
    if (strcmp(type, "interrupt_request") == 0) {
        s_interrupt(k);
        s_send(k, JP_CH_CONTROL, msg, "interrupt_reply", json_pack("{s:s}", "status", "ok"));
    } else if (strcmp(type, "shutdown_request") == 0) {
        bool restart = json_is_true(json_object_get(msg->content, "restart"));
        json_t *content = json_pack("{s:s, s:b}", "status", "ok", "restart", restart);
        kn_publish(k, "shutdown_reply", msg->header, json_incref(content));
        s_send(k, JP_CH_CONTROL, msg, "shutdown_reply", content);
        kn_kernel_stop(k, 0);
    } else if (strcmp(type, "kernel_info_request") == 0) {
        s_send(k, JP_CH_CONTROL, msg, "kernel_info_reply", s_kernel_info(k));
    } else {
        cb_debug("kernel: ignoring control message %s", type);
    }
    return k->stopping ? -1 : 0;
}

static int s_on_stdin(zloop_t *loop, zsock_t *sock, void *arg)
{
    kn_kernel_t *k = arg;
    cleanup_msg jp_msg_t *msg = s_recv(k, JP_CH_STDIN);
    if (!msg || strcmp(jp_msg_type(msg), "input_reply") != 0)
        return k->stopping ? -1 : 0;
    kn_input_asker_t asker = k->input_asker;
    k->input_asker = KN_INPUT_NONE;
    const char *value = json_string_value(json_object_get(msg->content, "value"));
    value = value ? value : "";
    if (asker == KN_INPUT_DRIVER && k->cell) {
        k->ops->input_reply(k->driver, value);
    } else if (asker == KN_INPUT_PIPE && k->cell && k->input_proc) {
        cleanup_free char *line = cb_strdup_printf("%s\n", value);
        if (kn_proc_stdin_write(k->input_proc, line, strlen(line)) < 0)
            cb_debug("kernel: writing the input reply: %s", strerror(errno));
    } else {
        cb_debug("kernel: an input_reply nobody asked for");
    }
    k->input_proc = NULL;
    return k->stopping ? -1 : 0;
}

static int s_on_hb(zloop_t *loop, zsock_t *sock, void *arg)
{
    zmsg_t *m = zmsg_recv(sock);
    if (m && zmsg_send(&m, sock) < 0)
        zmsg_destroy(&m);
    return 0;
}

static int s_on_signal(zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    kn_kernel_t *k = arg;
    struct signalfd_siginfo si;
    while (read(k->signal_fd, &si, sizeof si) == (ssize_t)sizeof si) {
        if (si.ssi_signo == SIGINT)
            s_interrupt(k);
        else if (si.ssi_signo == SIGTERM)
            kn_kernel_stop(k, 0);
        else if (si.ssi_signo == SIGCHLD)
            kn_procs_reap(k);
    }
    return k->stopping ? -1 : 0;
}

/* ---- fd watches --------------------------------------------------------------------------- */

static int s_on_watch(zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    kn_watch_t *w = arg;
    kn_kernel_t *k = w->k;
    if (!w->dead && w->cb(k, w->fd, w->arg) < 0)
        kn_unwatch_fd(k, w->fd);
    return k->stopping ? -1 : 0;
}

int kn_watch_fd(kn_kernel_t *k, int fd, kn_fd_fn cb, void *arg)
{
    kn_watch_t *w = cb_xcalloc(1, sizeof *w);
    *w = (kn_watch_t){.k = k, .fd = fd, .cb = cb, .arg = arg, .next = k->watches};
    k->watches = w;
    zmq_pollitem_t item = {.socket = NULL, .fd = fd, .events = ZMQ_POLLIN};
    if (zloop_poller(k->loop, &item, s_on_watch, w) < 0) {
        w->dead = true;
        return -1;
    }
    zloop_poller_set_tolerant(k->loop, &item); /* EOF shows as POLLHUP: still call back */
    return 0;
}

/* Free the records of fds unwatched before the previous sweep: no zloop pass holds them now. */
static int s_on_sweep(zloop_t *loop, int timer_id, void *arg)
{
    kn_kernel_t *k = arg;
    for (kn_watch_t **wp = &k->watches; *wp;) {
        kn_watch_t *w = *wp;
        if (w->dead && w->swept) {
            *wp = w->next;
            free(w);
            continue;
        }
        w->swept = w->dead;
        wp = &w->next;
    }
    return k->stopping ? -1 : 0;
}

void kn_unwatch_fd(kn_kernel_t *k, int fd)
{
    for (kn_watch_t *w = k->watches; w; w = w->next)
        if (w->fd == fd && !w->dead) {
            w->dead = true;
            zmq_pollitem_t item = {.socket = NULL, .fd = fd, .events = ZMQ_POLLIN};
            zloop_poller_end(k->loop, &item);
        }
}

/* ---- the kernel --------------------------------------------------------------------------- */

const char *kn_libexec_dir(const kn_kernel_t *k) { return k->libexec_dir; }
const char *kn_work_dir(const kn_kernel_t *k) { return k->work_dir; }

void kn_kernel_stop(kn_kernel_t *k, int status)
{
    if (!k->stopping)
        k->exit_status = status;
    k->stopping = true;
}

/* Read the connection file into ci (transport, ip, ports) and a signer for its key. */
static int s_read_connfile(const char *path, jp_conninfo_t *ci, jp_signer_t **signer,
                           cb_error_t *err)
{
    json_error_t jerr;
    json_auto_t *root = json_load_file(path, 0, &jerr);
    if (!json_is_object(root))
        return cb_error_fail(err, CB_ERR_INVALID, "connection file '%s': %s", path, jerr.text);
    memset(ci, 0, sizeof *ci);
    const char *transport = json_string_value(json_object_get(root, "transport"));
    if (!transport || strcmp(transport, "tcp") == 0)
        ci->transport = JP_TRANSPORT_TCP;
    else if (strcmp(transport, "ipc") == 0)
        ci->transport = JP_TRANSPORT_IPC;
    else
        return cb_error_fail(err, CB_ERR_INVALID, "connection file: unknown transport");
    const char *ip = json_string_value(json_object_get(root, "ip"));
    if (!ip || strlen(ip) >= sizeof ci->ip)
        return cb_error_fail(err, CB_ERR_INVALID, "connection file: no usable ip");
    strcpy(ci->ip, ip);
    static const char *const port_keys[JP_CH_COUNT] = {
        [JP_CH_SHELL] = "shell_port", [JP_CH_IOPUB] = "iopub_port",
        [JP_CH_STDIN] = "stdin_port", [JP_CH_CONTROL] = "control_port",
        [JP_CH_HB] = "hb_port",
    };
    for (int ch = 0; ch < JP_CH_COUNT; ch++) {
        json_t *p = json_object_get(root, port_keys[ch]);
        if (!json_is_integer(p) || json_integer_value(p) < 0 || json_integer_value(p) > 65535)
            return cb_error_fail(err, CB_ERR_INVALID, "connection file: bad %s", port_keys[ch]);
        ci->ports[ch] = (int)json_integer_value(p);
    }
    const char *scheme = json_string_value(json_object_get(root, "signature_scheme"));
    if (scheme && *scheme && strcmp(scheme, "hmac-sha256") != 0)
        return cb_error_fail(err, CB_ERR_INVALID, "connection file: unsupported signature_scheme");
    json_t *key = json_object_get(root, "key");
    if (key && !json_is_string(key))
        return cb_error_fail(err, CB_ERR_INVALID, "connection file: key is not a string");
    *signer =
        jp_signer_new(key ? json_string_value(key) : "", key ? json_string_length(key) : 0, err);
    if (key) /* the key's copy in the parsed file: OpenSSL holds its own */
        explicit_bzero((char *)json_string_value(key), json_string_length(key));
    return *signer ? 0 : -1;
}

static int s_bind(kn_kernel_t *k, const jp_conninfo_t *ci, cb_error_t *err)
{
    static const int types[JP_CH_COUNT] = {
        [JP_CH_SHELL] = ZMQ_ROUTER,   [JP_CH_IOPUB] = ZMQ_PUB, [JP_CH_STDIN] = ZMQ_ROUTER,
        [JP_CH_CONTROL] = ZMQ_ROUTER, [JP_CH_HB] = ZMQ_REP,
    };
    for (int ch = 0; ch < JP_CH_COUNT; ch++) {
        k->sock[ch] = zsock_new(types[ch]);
        if (!k->sock[ch])
            return cb_error_make(err, errno, "zmq socket");
        zsock_set_linger(k->sock[ch], 1000);
        int rc = ci->transport == JP_TRANSPORT_TCP
                     ? zsock_bind(k->sock[ch], "tcp://%s:%d", ci->ip, ci->ports[ch])
                     : zsock_bind(k->sock[ch], "ipc://%s-%d", ci->ip, ci->ports[ch]);
        if (rc < 0)
            return cb_error_make(err, errno, "bind the %s channel", jp_channel_name(ch));
    }
    return 0;
}

static int s_setup(kn_kernel_t *k, const char *connfile, cb_error_t *err)
{
    jp_conninfo_t ci;
    if (s_read_connfile(connfile, &ci, &k->signer, err) < 0)
        return -1;
    k->replay = jp_replay_new(S_REPLAY_WINDOW);
    zuuid_t *uuid = zuuid_new();
    snprintf(k->session, sizeof k->session, "%s", zuuid_str_canonical(uuid));
    zuuid_destroy(&uuid);

    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n < 0)
        return cb_error_make(err, errno, "readlink /proc/self/exe");
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash)
        *slash = '\0';
    snprintf(k->libexec_dir, sizeof k->libexec_dir, "%s", exe);

    const char *tmp = cb_getenv("TMPDIR");
    int len =
        snprintf(k->work_dir, sizeof k->work_dir, "%s/cellblock-kernel-XXXXXX", tmp ? tmp : "/tmp");
    if (len < 0 || (size_t)len >= sizeof k->work_dir || !mkdtemp(k->work_dir)) {
        k->work_dir[0] = '\0';
        return cb_error_make(err, errno, "make the kernel's work directory");
    }

    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGCHLD);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);
    k->signal_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (k->signal_fd < 0)
        return cb_error_make(err, errno, "signalfd");

    if (s_bind(k, &ci, err) < 0)
        return -1;
    k->loop = zloop_new();
    zloop_set_nonstop(k->loop, true); /* signals are ours (signalfd), not czmq's */
    zloop_reader(k->loop, k->sock[JP_CH_SHELL], s_on_shell, k);
    zloop_reader(k->loop, k->sock[JP_CH_CONTROL], s_on_control, k);
    zloop_reader(k->loop, k->sock[JP_CH_STDIN], s_on_stdin, k);
    zloop_reader(k->loop, k->sock[JP_CH_HB], s_on_hb, k);
    zmq_pollitem_t sig = {.socket = NULL, .fd = k->signal_fd, .events = ZMQ_POLLIN};
    zloop_poller(k->loop, &sig, s_on_signal, k);
    zloop_timer(k->loop, S_SWEEP_MS, 0, s_on_sweep, k);
    return 0;
}

static void s_kernel_free(kn_kernel_t *k)
{
    if (k->driver)
        k->ops->destroy(&k->driver);
    kn_procs_free_all(k);
    kn_stdin_stop(k);
    if (k->cell) /* the kernel ends in the middle of a cell (its interpreter died) */
        s_cell_free(k->cell);
    if (k->request) {
        jp_msg_destroy(&k->request->req);
        free(k->request);
    }
    jp_msg_t *msg;
    while (k->queue && (msg = zlist_pop(k->queue)))
        jp_msg_destroy(&msg);
    zlist_destroy(&k->queue);
    zloop_destroy(&k->loop);
    for (int ch = 0; ch < JP_CH_COUNT; ch++)
        zsock_destroy(&k->sock[ch]);
    jp_signer_destroy(&k->signer);
    jp_replay_destroy(&k->replay);
    while (k->watches) {
        kn_watch_t *w = k->watches;
        k->watches = w->next;
        free(w);
    }
    if (k->signal_fd >= 0)
        close(k->signal_fd);
    if (k->work_dir[0]) {
        cb_error_t err;
        if (cb_rm_rf(k->work_dir, &err) < 0)
            cb_warn("kernel: %s", err.msg);
    }
    free(k->version);
    free(k);
}

int kn_kernel_run(const kn_driver_ops_t *ops, const char *connfile)
{
    zsys_handler_set(NULL); /* czmq must not take SIGINT and SIGTERM */
    zsys_init();
    kn_kernel_t *k = cb_xcalloc(1, sizeof *k);
    k->ops = ops;
    k->signal_fd = -1;
    k->stdin_timer = -1;
    k->queue = zlist_new();
    cb_error_t err;
    cb_error_clear(&err);
    if (s_setup(k, connfile, &err) < 0) {
        fprintf(stderr, "cellblock-kernel: %s\n", err.msg);
        s_kernel_free(k);
        return 1;
    }
    k->driver = ops->start(k, &k->version, &err);
    if (!k->driver) {
        fprintf(stderr, "cellblock-kernel: %s: %s\n", ops->name, err.msg);
        s_kernel_free(k);
        return 1;
    }
    /* Say we are here: clients wait for the first status (ipykernel sends "starting"). */
    kn_publish(k, "status", NULL, json_pack("{s:s}", "execution_state", "starting"));
    if (!k->stopping)
        zloop_start(k->loop);
    int status = k->exit_status;
    s_kernel_free(k);
    return status;
}
