/* kernel.c: one kernel's process, sockets and lifecycle, all driven from the gateway's loop.
 *
 * Start: write the connection file, start the kernelspec's argv (process.c: inside the kernel's
 * sandbox unless the gateway runs without sandboxes; in a new session, so signals reach the
 * whole process group; watched through a pidfd), connect the five channels, and send
 * kernel_info_request. In a sandbox the kernel's directory lives in the sandbox's /run/cellblock,
 * a tmpfs code inside can write, so the gateway touches it only through fds (cb_openat_beneath,
 * sbx_run_mkdir, sbx_run_write, cb_rm_tree_at) and its connection file names the inside paths.
 * The kernel's sockets are reached through fixed fd numbers (see jupyter/connfile.c): after each
 * start a short timer looks for the five sockets beneath the directory's fd, checks each is a
 * socket of the sandbox user on that filesystem, and dup3s it over its channel's fd. The kernel
 * is ready once a kernel_info_reply has come back AND something has arrived on iopub: a SUB
 * socket misses what was published before its subscription took (the slow joiner), so while
 * iopub is silent kernel_info is sent again.
 *
 * Stop: shutdown_request on control, then SIGTERM, then SIGKILL to the process group, each after
 * a grace period. Whatever asked for the stop, the end is the same: the pidfd becomes readable,
 * the group is swept with SIGKILL, the process reaped, and `after_exit` says what comes next:
 * respawn (a restart), the end of the kernel (a shutdown), or the death path (unasked exit:
 * restart automatically within a limit, otherwise the kernel is dead).
 *
 * Callbacks may call back into the gateway (shut the kernel down from an event, queue code from
 * on_done), so the kernel struct itself is only freed from a timer on a fresh loop turn.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cb/alloc.h"
#include "cb/cleanup.h"
#include "cb/log.h"
#include "cb/paths.h"
#include "kg_private.h"

#define KG_NUDGE_MS 50        /* re-send kernel_info while iopub is silent */
#define KG_SOCKET_SEARCH_MS 5 /* look for the kernel's sockets after a start, until found */
#define KG_RESTART_WINDOW_MS (5 * 60 * 1000)
#define KG_OUTPUT_LINE_MAX 4096         /* longer kernel output lines are split */
#define KG_OUTPUT_DRAIN_MAX (64u << 10) /* read from a dead kernel's pipe before closing it */

extern char **environ;

static int s_start_process(kg_kernel_t *k, cb_error_t *err);
static void s_stop_process(kg_kernel_t *k, kg_after_exit_t after, bool graceful);
static void s_run_next(kg_kernel_t *k);

/* ---- small helpers ----------------------------------------------------------------------- */

static void s_set_string(char **slot, char *value)
{
    free(*slot);
    *slot = value;
}

/* Lifecycle events and stderr lines also go to the sandbox's log. */
static void s_log_event(kg_kernel_t *k, kg_kernel_event_t event, const char *detail)
{
    static const char *const what[] = {
        [KG_EVENT_READY] = "ready",
        [KG_EVENT_DIED] = "died",
        [KG_EVENT_RESTARTING] = "restarting",
        [KG_EVENT_HUNG] = "hung (heartbeat missed)",
        [KG_EVENT_DEAD] = "dead, not restarted",
        [KG_EVENT_STOPPED] = "stopped",
    };
    char source[24];
    snprintf(source, sizeof source, "kernel %.8s", k->id);
    if (event == KG_EVENT_STDERR)
        kg_sandbox_log(k->sandbox, source, "%s", detail ? detail : "");
    else
        kg_sandbox_log(k->sandbox, source, "%s (%s)%s%s", what[event], k->spec->name,
                       detail ? ": " : "", detail ? detail : "");
}

/* ---- extra listeners ---------------------------------------------------------------------- */

int kg_kernel_listen(kg_kernel_t *k, const kg_kernel_listener_t *listener, cb_error_t *err)
{
    if (k->n_listeners == k->cap_listeners) {
        size_t cap = k->cap_listeners ? 2 * k->cap_listeners : 4;
        k->listeners = cb_xrealloc(k->listeners, cap * sizeof *k->listeners);
        k->cap_listeners = cap;
    }
    k->listeners[k->n_listeners++] = *listener;
    return 0;
}

/* Drop blanked slots, unless a dispatch is walking the array. */
static void s_listeners_compact(kg_kernel_t *k)
{
    if (k->listeners_busy)
        return;
    size_t kept = 0;
    for (size_t i = 0; i < k->n_listeners; i++)
        if (k->listeners[i].arg)
            k->listeners[kept++] = k->listeners[i];
    k->n_listeners = kept;
}

void kg_kernel_unlisten(kg_kernel_t *k, void *arg)
{
    for (size_t i = 0; i < k->n_listeners; i++)
        if (k->listeners[i].arg == arg)
            k->listeners[i] = (kg_kernel_listener_t){0};
    s_listeners_compact(k);
}

/* Tell every listener of an event (msg NULL) or an iopub message. Indexes, not pointers: a
 * callback may add listeners (the array may move) or blank slots. */
static void s_notify(kg_kernel_t *k, kg_kernel_event_t event, const char *detail,
                     const jp_msg_t *msg)
{
    k->listeners_busy++;
    for (size_t i = 0; i < k->n_listeners; i++) {
        kg_kernel_listener_t l = k->listeners[i];
        if (msg && l.on_iopub)
            l.on_iopub(k, msg, l.arg);
        else if (!msg && l.on_event)
            l.on_event(k, event, detail, l.arg);
    }
    k->listeners_busy--;
    s_listeners_compact(k);
}

void kg_kernel_touch(kg_kernel_t *k)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    k->last_activity_us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void s_emit(kg_kernel_t *k, kg_kernel_event_t event, const char *detail)
{
    if (k->sandbox)
        s_log_event(k, event, detail);
    if (k->sandbox)
        kg_sandbox_kernel_event(k->sandbox, k, event, detail); /* the policy hears it first */
    if (k->sandbox && ((event == KG_EVENT_READY && !k->audited_start) ||
                       (event == KG_EVENT_STOPPED && k->audited_start) || event == KG_EVENT_DEAD))
        kg_sandbox_activity(k->sandbox,
                            event == KG_EVENT_READY     ? "kernel_start"
                            : event == KG_EVENT_STOPPED ? "kernel_stop"
                                                        : "kernel_dead",
                            json_pack("{s:s, s:s, s:s*}", "kernel_id", k->id, "kernel",
                                      kg_kernel_name(k), "detail", detail));
    if (event == KG_EVENT_READY)
        k->audited_start = true;
    if (k->on_event)
        k->on_event(k, event, detail, k->event_arg);
    if (k->n_listeners)
        s_notify(k, event, detail, NULL);
}

static void s_timer_cancel(kg_kernel_t *k, int *timer) { kg_timer_stop(k->gw, timer); }

/* The timers of one process generation end with it: its startup deadline, its kernel_info
 * nudges, its heartbeats and its stop steps. The next start arms its own. */
static void s_end_generation_timers(kg_kernel_t *k)
{
    s_timer_cancel(k, &k->ready_timer);
    s_timer_cancel(k, &k->nudge_timer);
    s_timer_cancel(k, &k->hb_timer);
    s_timer_cancel(k, &k->stop_timer);
}

static bool s_is_ready_state(kg_kernel_state_t s)
{
    return s == KG_KERNEL_IDLE || s == KG_KERNEL_BUSY;
}

/* ---- environment ------------------------------------------------------------------------ */

/* Outside a sandbox: the host's environment, then the spec's env, then the caller's. Inside: a
 * fixed base with nothing from the host, then the spec's, the sandbox's, and the caller's. JPY_PARENT_PID=1 tells ipykernel its
 * parent is an init (ours, PID 1 inside): without it, it exits on finding its parent is PID 1,
 * and prints a banner. Caller owns return value. */
static char **s_build_env(const kg_kernel_t *k)
{
    static const char *const sandboxed[] = {"JPY_PARENT_PID=1", NULL};
    const char *const *lists[] = {k->sandbox ? kg_sandbox_base_env : (const char *const *)environ,
                                  k->sandbox ? sandboxed : NULL, (const char *const *)k->spec->env,
                                  k->sandbox ? (const char *const *)k->sandbox->env : NULL,
                                  (const char *const *)k->extra_env};
    return kg_env_merge(lists, sizeof lists / sizeof *lists);
}

/* ---- sockets ----------------------------------------------------------------------------- */

static int s_on_socket(zloop_t *loop, zsock_t *sock, void *arg);

static void s_close_sockets(kg_kernel_t *k)
{
    s_timer_cancel(k, &k->search_timer);
    for (int ch = 0; ch < JP_CH_COUNT; ch++) {
        if (k->socks[ch]) {
            zloop_reader_end(k->gw->loop, k->socks[ch]);
            zsock_destroy(&k->socks[ch]);
        }
    }
}

/* Put a placeholder behind the channel's fixed fd number: connects to it are refused (it is no
 * socket) and ZMQ retries. Creates the number on the first call. */
static int s_sock_fd_reset(kg_kernel_t *k, jp_channel_t ch)
{
    cleanup_close int null = open("/dev/null", O_PATH | O_CLOEXEC);
    if (null < 0)
        return -1;
    if (k->ci.sock_fd[ch] < 0) {
        k->ci.sock_fd[ch] = cb_steal_fd(&null);
        return 0;
    }
    return dup3(null, k->ci.sock_fd[ch], O_CLOEXEC) < 0 ? -1 : 0;
}

/* Look for the kernel's sockets beneath its directory: each must be a socket (never followed
 * through a link), on the directory's filesystem, owned by the sandbox user (our own uid without
 * a sandbox). One that passes goes behind its channel's fd; every ZMQ socket's next reconnect
 * reaches it. */
static void s_find_sockets(kg_kernel_t *k)
{
    for (int ch = 0; ch < JP_CH_COUNT; ch++) {
        if (k->socks_found & (1u << ch))
            continue;
        char name[16];
        jp_conninfo_socket_name(&k->ci, (jp_channel_t)ch, name, sizeof name);
        cleanup_close int fd = cb_openat_beneath(k->dir_fd, name, O_PATH, 0);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode) || st.st_dev != k->dir_dev ||
            st.st_uid != k->sock_owner)
            continue;
        if (dup3(fd, k->ci.sock_fd[ch], O_CLOEXEC) == 0)
            k->socks_found |= 1u << ch;
    }
}

static int s_on_socket_search(zloop_t *loop, int timer_id, void *arg)
{
    kg_kernel_t *k = arg;
    s_find_sockets(k);
    if (k->socks_found == (1u << JP_CH_COUNT) - 1)
        s_timer_cancel(k, &k->search_timer);
    return kg_gateway_handler_result(k->gw);
}

/* Before a (re)start: every channel's fd back to a placeholder, the last process's socket files
 * gone (the search must find only what the new process binds), and the search on. */
static int s_sockets_await(kg_kernel_t *k, cb_error_t *err)
{
    if (k->ci.transport != JP_TRANSPORT_IPC)
        return 0;
    k->socks_found = 0;
    for (int ch = 0; ch < JP_CH_COUNT; ch++) {
        char name[16];
        jp_conninfo_socket_name(&k->ci, (jp_channel_t)ch, name, sizeof name);
        if (s_sock_fd_reset(k, (jp_channel_t)ch) < 0)
            return cb_error_make(err, errno, "prepare the %s socket", jp_channel_name(ch));
        unlinkat(k->dir_fd, name, 0); /* never follows; what is there is the sandbox's own */
    }
    s_timer_cancel(k, &k->search_timer);
    k->search_timer = kg_timer_start(k->gw, KG_SOCKET_SEARCH_MS, 0, s_on_socket_search, k);
    if (k->search_timer < 0)
        return cb_error_make(err, ENOMEM, "watch for the kernel's sockets");
    return 0;
}

/* The gateway's policy for sockets that talk to a kernel (kg_private.h), not the protocol's:
 * it lives here rather than in jupyter/connfile.c, beside the sockets it is set on. */
void kg_socket_limits(zsock_t *sock, int64_t max_msg_bytes)
{
    if (max_msg_bytes <= 0)
        max_msg_bytes = KG_MAX_MESSAGE_BYTES_DEFAULT;
    /* ZMQ_MAXMSGSIZE is an int64 option; czmq's setter takes an int, enough for 2 GiB - 1. */
    zsock_set_maxmsgsize(sock, (int)(max_msg_bytes > INT_MAX ? INT_MAX : max_msg_bytes));
    zsock_set_rcvhwm(sock, KG_KERNEL_RCVHWM);
}

static int s_open_sockets(kg_kernel_t *k, cb_error_t *err)
{
    static const int types[JP_CH_COUNT] = {ZMQ_DEALER, ZMQ_SUB, ZMQ_DEALER, ZMQ_DEALER, ZMQ_DEALER};
    if (s_sockets_await(k, err) < 0)
        return -1;
    for (int ch = 0; ch < JP_CH_COUNT; ch++) {
        zsock_t *s = zsock_new(types[ch]);
        if (!s) {
            s_close_sockets(k);
            return cb_error_fail(err, CB_ERR_SYSTEM, "create %s socket", jp_channel_name(ch));
        }
        k->socks[ch] = s;
        zsock_set_linger(s, 0);
        zsock_set_reconnect_ivl(s, 10); /* the kernel binds moments after we connect */
        kg_socket_limits(s, k->gw->cfg.max_message_bytes);
        if (ch == JP_CH_SHELL || ch == JP_CH_STDIN)
            zsock_set_identity(s, k->session); /* stdin must share shell's identity */
        if (ch == JP_CH_IOPUB)
            zsock_set_subscribe(s, "");
        char endpoint[PATH_MAX];
        jp_conninfo_endpoint(&k->ci, ch, endpoint, sizeof endpoint);
        if (zsock_connect(s, "%s", endpoint) < 0 ||
            zloop_reader(k->gw->loop, s, s_on_socket, k) < 0) {
            s_close_sockets(k);
            return cb_error_fail(err, CB_ERR_SYSTEM, "connect %s to %s", jp_channel_name(ch),
                                 endpoint);
        }
        zloop_reader_set_tolerant(k->gw->loop, s);
    }
    return 0;
}

int kg_kernel_send(kg_kernel_t *k, jp_channel_t ch, jp_msg_t **msg_p)
{
    int rc = -1;
    if (*msg_p && k->socks[ch])
        rc = jp_wire_send(k->socks[ch], *msg_p, k->signer);
    if (rc == 0)
        kg_kernel_touch(k);
    jp_msg_destroy(msg_p);
    return rc;
}

static void s_send_request(kg_kernel_t *k, jp_channel_t ch, const char *type, json_t *content)
{
    jp_msg_t *msg = jp_msg_new(type, k->session, NULL, content);
    if (kg_kernel_send(k, ch, &msg) < 0)
        cb_debug("kernel %.8s: could not send %s", k->id, type);
}

/* ---- readiness --------------------------------------------------------------------------- */

static void s_send_kernel_info(kg_kernel_t *k)
{
    s_send_request(k, JP_CH_SHELL, "kernel_info_request", NULL);
}

static int s_on_nudge(zloop_t *loop, int timer_id, void *arg)
{
    kg_kernel_t *k = arg;
    k->nudge_timer = -1;
    if (!k->iopub_seen) {
        k->info_replied = false;
        s_send_kernel_info(k);
    }
    return kg_gateway_handler_result(k->gw);
}

static int s_on_heartbeat(zloop_t *loop, int timer_id, void *arg);

static void s_announce_ready(kg_kernel_t *k)
{
    cb_debug("kernel %.8s ready (pid %ld)", k->id, (long)kg_kernel_pid(k));
    s_emit(k, KG_EVENT_READY, NULL);
    s_run_next(k);
}

/* The startup code ended. Only a run the kernel completed (ok, an error in the code, a timeout)
 * makes the kernel ready; one cut short by a restart or a shutdown is run again or dropped. */
static void s_on_startup_done(kg_execution_t *x, json_t *result, void *arg)
{
    kg_kernel_t *k = arg;
    const char *status = json_string_value(json_object_get(result, "status"));
    k->starting_up = false;
    if (!status || (strcmp(status, "ok") != 0 && strcmp(status, "error") != 0 &&
                    strcmp(status, "timeout") != 0))
        return;
    if (strcmp(status, "ok") != 0) {
        json_t *e = json_object_get(result, "error");
        const char *ename = e ? json_string_value(json_object_get(e, "ename")) : NULL;
        const char *evalue = e ? json_string_value(json_object_get(e, "evalue")) : NULL;
        cb_warn("kernel %.8s: its startup code failed: %s", k->id, evalue ? evalue : status);
        if (k->sandbox)
            kg_sandbox_log(k->sandbox, "sandbox", "the startup code failed (%s): %s",
                           ename ? ename : status, evalue ? evalue : "");
    }
    if (s_is_ready_state(k->state))
        s_announce_ready(k);
}

static void s_became_ready(kg_kernel_t *k)
{
    s_timer_cancel(k, &k->ready_timer);
    s_timer_cancel(k, &k->nudge_timer);
    k->state = KG_KERNEL_IDLE;
    k->ever_ready = true;
    k->hb_waiting = false;
    k->hb_misses = 0;
    if (k->gw->cfg.heartbeat_ms > 0 && k->hb_timer < 0)
        k->hb_timer = kg_timer_start(k->gw, (size_t)k->gw->cfg.heartbeat_ms, 0, s_on_heartbeat, k);
    if (k->startup_code) {
        cb_error_t err = {0};
        k->starting_up = kg_execution_internal(k, k->startup_code, k->gw->cfg.startup_timeout_ms,
                                               s_on_startup_done, k, &err) != NULL;
        if (k->starting_up) {
            s_run_next(k);
            return;
        }
        cb_warn("kernel %.8s: cannot run its startup code: %s", k->id, err.msg);
    }
    s_announce_ready(k);
}

static void s_check_ready(kg_kernel_t *k)
{
    if (k->state != KG_KERNEL_STARTING && k->state != KG_KERNEL_RESTARTING)
        return;
    /* A restart sets RESTARTING while the old process is still on its way out: its own replies
     * and iopub must not make the kernel look ready (s_start_process starts readiness anew). */
    if (k->stop_step)
        return;
    if (k->info_replied && k->iopub_seen)
        s_became_ready(k);
    else if (k->info_replied && k->nudge_timer < 0)
        k->nudge_timer = kg_timer_start(k->gw, KG_NUDGE_MS, 1, s_on_nudge, k);
}

static int s_on_ready_timeout(zloop_t *loop, int timer_id, void *arg)
{
    kg_kernel_t *k = arg;
    k->ready_timer = -1;
    s_set_string(&k->exit_detail, cb_strdup_printf("did not become ready within %d ms",
                                                   k->gw->cfg.startup_timeout_ms));
    cb_warn("kernel %.8s %s", k->id, k->exit_detail);
    s_stop_process(k, KG_AFTER_EXIT_DIED, false);
    return kg_gateway_handler_result(k->gw);
}

/* ---- heartbeat --------------------------------------------------------------------------- */

static int s_on_heartbeat(zloop_t *loop, int timer_id, void *arg)
{
    kg_kernel_t *k = arg;
    /* Busy, a kernel may answer only between cells (IRkernel beats in its main loop): silence
     * then is not a hang. A cell that never ends is its execution's business (the timeout
     * interrupts it, the grace after that restarts the kernel). */
    if (k->hb_waiting && k->state == KG_KERNEL_BUSY) {
        k->hb_misses = 0;
        return kg_gateway_handler_result(k->gw);
    }
    if (k->hb_waiting && ++k->hb_misses >= k->gw->cfg.heartbeat_misses) {
        s_timer_cancel(k, &k->hb_timer);
        s_set_string(&k->exit_detail, cb_strdup_printf("stopped answering heartbeats for %d ms",
                                                       k->hb_misses * k->gw->cfg.heartbeat_ms));
        cb_warn("kernel %.8s %s; killing it", k->id, k->exit_detail);
        s_emit(k, KG_EVENT_HUNG, k->exit_detail);
        if (!k->stop_step)
            s_stop_process(k, KG_AFTER_EXIT_DIED, false);
        return kg_gateway_handler_result(k->gw);
    }
    if (!k->hb_waiting && k->socks[JP_CH_HB]) {
        /* An empty delimiter first, so both REP and ROUTER-echo heartbeats answer. */
        zstr_sendm(k->socks[JP_CH_HB], "");
        zstr_send(k->socks[JP_CH_HB], "ping");
        k->hb_waiting = true;
    }
    return kg_gateway_handler_result(k->gw);
}

/* ---- message routing --------------------------------------------------------------------- */

static void s_dispatch(kg_kernel_t *k, jp_channel_t ch, const jp_msg_t *msg)
{
    const char *type = jp_msg_type(msg);
    if (ch == JP_CH_IOPUB) {
        k->iopub_seen = true;
        if (strcmp(type, "status") == 0 && s_is_ready_state(k->state)) {
            const char *st = json_string_value(json_object_get(msg->content, "execution_state"));
            if (st && strcmp(st, "busy") == 0)
                k->state = KG_KERNEL_BUSY;
            else if (st && strcmp(st, "idle") == 0)
                k->state = KG_KERNEL_IDLE;
        }
        kg_kernel_audit_iopub(k, msg);
        if (k->n_listeners)
            s_notify(k, KG_EVENT_READY, NULL, msg);
        s_check_ready(k);
    } else if (ch == JP_CH_SHELL && strcmp(type, "kernel_info_reply") == 0) {
        k->info_replied = true;
        s_check_ready(k);
        if (!k->running || !kg_execution_owns(k->running, jp_msg_parent_id(msg)))
            return; /* else the running execution's barrier (execution.c) */
    } else if (ch == JP_CH_CONTROL) {
        cb_debug("kernel %.8s: %s on control", k->id, type);
        return;
    }
    if (k->running && kg_execution_owns(k->running, jp_msg_parent_id(msg)))
        kg_execution_on_message(k->running, ch, msg);
}

static int s_on_socket(zloop_t *loop, zsock_t *sock, void *arg)
{
    kg_kernel_t *k = arg;
    kg_gateway_t *gw = k->gw;
    jp_channel_t ch = JP_CH_COUNT;
    for (int i = 0; i < JP_CH_COUNT; i++)
        if (k->socks[i] == sock)
            ch = (jp_channel_t)i;
    /* Drain what is waiting (bounded, for fairness between kernels). */
    for (int budget = 64; budget > 0 && ch < JP_CH_COUNT && k->socks[ch] == sock; budget--) {
        if (!(zsock_events(sock) & ZMQ_POLLIN))
            break;
        zmsg_t *raw = zmsg_recv(sock);
        if (!raw)
            break;
        if (ch == JP_CH_HB) {
            k->hb_waiting = false;
            k->hb_misses = 0;
            zmsg_destroy(&raw);
            continue;
        }
        jp_wire_status_t status;
        jp_msg_t *msg = jp_wire_decode(&raw, k->signer, k->replay, &status);
        if (!msg) {
            kg_gateway_count_rejected(gw, status, false);
            cb_debug("kernel %.8s: dropped a %s frame: %s", k->id, jp_channel_name(ch),
                     jp_wire_status_name(status));
            zmsg_destroy(&raw);
            continue;
        }
        kg_kernel_touch(k);
        s_dispatch(k, ch, msg);
        jp_msg_destroy(&msg);
    }
    return kg_gateway_handler_result(gw);
}

/* ---- the kernel's own output (stdout and stderr of the process) ------------------------- */

static void s_flush_output_line(kg_kernel_t *k)
{
    if (k->output_line.len == 0)
        return;
    cb_debug("kernel %.8s: %s", k->id, cb_buf_str(&k->output_line));
    s_emit(k, KG_EVENT_STDERR, cb_buf_str(&k->output_line));
    cb_buf_clear(&k->output_line);
}

static void s_close_output(kg_kernel_t *k)
{
    if (k->output_fd < 0)
        return;
    zmq_pollitem_t item = {.fd = k->output_fd, .events = ZMQ_POLLIN};
    zloop_poller_end(k->gw->loop, &item);
    close(k->output_fd);
    k->output_fd = -1;
    s_flush_output_line(k);
}

/* One read of at most 4 KiB: the bytes read, 0 when the pipe is empty for now, -1 at end of
 * file or on an error. */
static ssize_t s_read_output(kg_kernel_t *k)
{
    char chunk[4096];
    ssize_t n = read(k->output_fd, chunk, sizeof chunk);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    if (n <= 0)
        return -1;
    for (ssize_t i = 0; i < n; i++) {
        if (chunk[i] == '\n' || k->output_line.len >= KG_OUTPUT_LINE_MAX)
            s_flush_output_line(k);
        if (chunk[i] != '\n')
            cb_buf_append(&k->output_line, &chunk[i], 1);
    }
    return n;
}

/* The loop reads the pipe as it fills: one read per wake-up, so a flood cannot starve the loop. */
static int s_on_output(zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    kg_kernel_t *k = arg;
    if (s_read_output(k) < 0)
        s_close_output(k);
    return kg_gateway_handler_result(k->gw);
}

/* The kernel has exited: take what its pipe holds now (at most KG_OUTPUT_DRAIN_MAX) and close
 * our end. Never read to end of file: a process the kernel left behind may hold the write end
 * open for ever, or keep writing; from here on it gets EPIPE. */
static void s_drain_output(kg_kernel_t *k)
{
    for (size_t taken = 0; k->output_fd >= 0 && taken < KG_OUTPUT_DRAIN_MAX;) {
        ssize_t n = s_read_output(k);
        if (n <= 0)
            break;
        taken += (size_t)n;
    }
    s_close_output(k);
}

/* ---- executions -------------------------------------------------------------------------- */

static void s_run_next(kg_kernel_t *k)
{
    if (k->running || !s_is_ready_state(k->state) || k->stop_step || zlistx_size(k->queue) == 0)
        return;
    k->running = zlistx_first(k->queue);
    zlistx_delete(k->queue, zlistx_cursor(k->queue));
    kg_execution_begin(k->running);
}

int kg_kernel_enqueue(kg_kernel_t *k, kg_execution_t *x, bool front, cb_error_t *err)
{
    if (k->state == KG_KERNEL_DEAD)
        return cb_error_fail(err, CB_ERR_KERNEL_DEAD,
                             "kernel %.8s is dead (%s); start a new kernel", k->id,
                             k->exit_detail ? k->exit_detail : "gave up restarting");
    if (k->state == KG_KERNEL_SHUTTING_DOWN || k->state == KG_KERNEL_STOPPED)
        return cb_error_fail(err, CB_ERR_STATE, "kernel %.8s is shutting down", k->id);
    if (front) /* czmq aborts when memory runs out */
        zlistx_add_start(k->queue, x);
    else
        zlistx_add_end(k->queue, x);
    s_run_next(k);
    return 0;
}

void kg_kernel_execution_finished(kg_kernel_t *k, kg_execution_t *x)
{
    if (k->running == x)
        k->running = NULL;
    s_run_next(k);
}

const char *kg_kernel_take_state_lost(kg_kernel_t *k, char **reason_out)
{
    *reason_out = k->state_lost_reason;
    k->state_lost_reason = NULL;
    return *reason_out;
}

/* End the running execution and, unless keep_queue, every queued one. */
static void s_abandon_executions(kg_kernel_t *k, const char *status, const char *note,
                                 bool keep_queue)
{
    if (k->running) {
        kg_execution_t *x = k->running;
        k->running = NULL;
        kg_execution_abandon(x, status, note);
    }
    kg_execution_t *x;
    while (!keep_queue && (x = zlistx_first(k->queue))) {
        zlistx_delete(k->queue, zlistx_cursor(k->queue));
        kg_execution_abandon(x, status, note);
    }
}

/* ---- stopping, death and restart --------------------------------------------------------- */

static int s_on_stop_timer(zloop_t *loop, int timer_id, void *arg)
{
    kg_kernel_t *k = arg;
    k->stop_timer = -1;
    if (k->proc && k->stop_step == 1) {
        cb_debug("kernel %.8s: no exit after shutdown_request; SIGTERM", k->id);
        kg_proc_signal(k->proc, SIGTERM);
        k->stop_step = 2;
        k->stop_timer =
            kg_timer_start(k->gw, (size_t)k->gw->cfg.shutdown_grace_ms, 1, s_on_stop_timer, k);
    } else if (k->proc && k->stop_step == 2) {
        cb_debug("kernel %.8s: no exit after SIGTERM; SIGKILL", k->id);
        kg_proc_signal(k->proc, SIGKILL);
        k->stop_step = 3;
    }
    return kg_gateway_handler_result(k->gw);
}

static void s_after_exit(kg_kernel_t *k);

/* Start ending the process; s_after_exit runs once it has been reaped. A stronger `after`
 * (stop over respawn over died) replaces a weaker one already under way. */
static void s_stop_process(kg_kernel_t *k, kg_after_exit_t after, bool graceful)
{
    if (after > k->after_exit)
        k->after_exit = after;
    s_timer_cancel(k, &k->hb_timer);
    s_timer_cancel(k, &k->ready_timer);
    s_timer_cancel(k, &k->nudge_timer);
    if (!k->proc) {
        s_after_exit(k);
        return;
    }
    if (k->stop_step == 3 || (k->stop_step && graceful))
        return; /* already on its way out */
    s_timer_cancel(k, &k->stop_timer);
    if (graceful && k->socks[JP_CH_CONTROL]) {
        s_send_request(k, JP_CH_CONTROL, "shutdown_request",
                       json_pack("{s:b}", "restart", after == KG_AFTER_EXIT_RESPAWN));
        k->stop_step = 1;
        k->stop_timer =
            kg_timer_start(k->gw, (size_t)k->gw->cfg.shutdown_grace_ms, 1, s_on_stop_timer, k);
    } else {
        kg_proc_signal(k->proc, SIGKILL);
        k->stop_step = 3;
    }
}

static int s_on_pidfd(zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    kg_kernel_t *k = arg;
    kg_gateway_t *gw = k->gw;
    kg_proc_exit_t ex;
    cb_error_t err = {0};
    if (kg_proc_reap(k->proc, &ex, &err) < 0) {
        cb_warn("kernel %.8s: %s", k->id, err.msg);
        return kg_gateway_handler_result(gw);
    }
    zloop_poller_end(loop, item);
    kg_proc_destroy(&k->proc);
    k->stop_step = 0;
    s_end_generation_timers(k);
    /* Keep an explanation set earlier (heartbeat, startup timeout); else say how it ended. */
    if (!k->exit_detail)
        k->exit_detail = kg_proc_exit_describe(&ex);
    if (ex.oom && k->after_exit == KG_AFTER_EXIT_DIED) {
        gw->counters.kernels_oom++;
        /* Files in /tmp and /dev/shm are memory too: say so when they hold much of it. */
        cleanup_free char *tmp = kg_sandbox_tmp_note(k->sandbox);
        if (tmp && k->exit_detail)
            s_set_string(&k->exit_detail, cb_strdup_printf("%s; %s", k->exit_detail, tmp));
        if (k->sandbox)
            kg_sandbox_log(k->sandbox, "sandbox",
                           "OOM: kernel %.8s was killed for using all of the "
                           "sandbox's memory (%llu MiB)%s%s",
                           k->id, (unsigned long long)k->sandbox->limits.memory_mb, tmp ? "; " : "",
                           tmp ? tmp : "");
    }
    s_drain_output(k);
    s_close_sockets(k);
    s_after_exit(k);
    return kg_gateway_handler_result(gw);
}

/* The deferred free (kg.h's rule 2): callbacks that stopped the kernel have all returned. */
static void s_free(kg_gateway_t *gw, void *arg)
{
    kg_kernel_t *k = arg;
    s_emit(k, KG_EVENT_STOPPED, NULL);
    kg_gateway_remove_kernel(gw, k);
    kg_attach_destroy(&k->attach);
    if (k->sandbox && k->sandbox->for_one_kernel)
        kg_sandbox_destroy(&k->sandbox);
    free(k->conn_path_inside);
    jp_kernelspec_destroy(&k->spec);
    cb_strv_free(k->extra_env);
    free(k->cwd);
    free(k->run_dir);
    /* Every ZMQ socket naming them is closed by now (ours, the attach proxy's, and those of
     * channels sessions, disconnected when they were doomed): the numbers may be reused. */
    for (int ch = 0; ch < JP_CH_COUNT; ch++)
        if (k->ci.sock_fd[ch] >= 0)
            close(k->ci.sock_fd[ch]);
    if (k->dir_fd >= 0)
        close(k->dir_fd);
    if (k->run_parent_fd >= 0)
        close(k->run_parent_fd);
    free(k->exit_detail);
    free(k->state_lost_reason);
    free(k->startup_code);
    kg_kernel_audit_forget(k);
    cb_buf_free(&k->output_line);
    jp_signer_destroy(&k->signer);
    jp_replay_destroy(&k->replay);
    zlistx_destroy(&k->queue);
    free(k->listeners);
    free(k);
}

static void s_restart_now(kg_kernel_t *k)
{
    k->after_exit = KG_AFTER_EXIT_DIED;
    k->state = KG_KERNEL_RESTARTING;
    k->restart_count++;
    k->gw->counters.kernels_restarted++;
    s_emit(k, KG_EVENT_RESTARTING, k->state_lost_reason);
    cb_error_t err = {0};
    if (s_start_process(k, &err) < 0) {
        cb_warn("kernel %.8s: restart failed: %s", k->id, err.msg);
        s_set_string(&k->exit_detail, cb_xstrdup(err.msg));
        k->state = KG_KERNEL_DEAD;
        s_emit(k, KG_EVENT_DEAD, k->exit_detail);
        s_abandon_executions(k, "kernel_died", "The kernel could not be restarted.", false);
    }
}

static bool s_may_restart(kg_kernel_t *k)
{
    int limit = k->gw->cfg.restart_limit;
    if (limit < 0 || !k->ever_ready)
        return false;
    int64_t now = cb_now_ms();
    if (now - k->restart_window_start_ms > KG_RESTART_WINDOW_MS) {
        k->restart_window_start_ms = now;
        k->restarts_in_window = 0;
    }
    return k->restarts_in_window++ < limit;
}

static void s_after_exit(kg_kernel_t *k)
{
    kg_after_exit_t after = k->after_exit;
    cleanup_free char *detail = steal_pointer(&k->exit_detail);
    if (after == KG_AFTER_EXIT_STOP) {
        k->state = KG_KERNEL_STOPPED;
        s_abandon_executions(k, "cancelled", "The kernel was shut down.", false);
        kg_attach_destroy(&k->attach);
        cb_error_t err = {0};
        if (k->run_parent_fd >= 0 && cb_rm_tree_at(k->run_parent_fd, k->dir_name, &err) < 0)
            cb_warn("kernel %.8s: %s", k->id, err.msg);
        s_timer_cancel(k, &k->stop_timer);
        kg_gateway_defer_cancel(k->gw, s_free, k); /* queued once, however often we get here */
        kg_gateway_defer(k->gw, s_free, k);        /* kg_kernel_free_now takes it back */
        return;
    }
    if (after == KG_AFTER_EXIT_RESPAWN) {
        s_abandon_executions(k, "kernel_died", "The kernel was restarted while running this code.",
                             true);
        s_restart_now(k);
        return;
    }
    /* Died unasked. */
    k->gw->counters.kernels_died++;
    cb_warn("kernel %.8s %s", k->id, detail ? detail : "died");
    s_emit(k, KG_EVENT_DIED, detail);
    if (k->stopping)
        return; /* the callback shut it down; that path has taken over */
    cleanup_free char *note = cb_strdup_printf(
        "The kernel died (%s) while running this code; its variables and imports are lost.",
        detail ? detail : "unknown cause");
    /* Not ready while the running execution's on_done runs: code queued from it waits for the
     * restart (or ends with the kernel below) instead of being sent to a dead process. */
    k->state = KG_KERNEL_RESTARTING;
    s_abandon_executions(k, "kernel_died", note, true);
    if (k->stopping)
        return;
    if (k->sandbox && (k->sandbox->dead || k->sandbox->end_pending)) {
        /* Its sandbox is going (its init died, say): no restart; the sandbox's end says why. */
        k->state = KG_KERNEL_DEAD;
        s_set_string(&k->exit_detail, cb_xstrdup(k->sandbox->end_detail ? k->sandbox->end_detail
                                                                        : "its sandbox ended"));
        return;
    }
    if (s_may_restart(k)) {
        s_set_string(&k->state_lost_reason,
                     cb_strdup_printf("the kernel died (%s) and was restarted",
                                      detail ? detail : "unknown cause"));
        s_restart_now(k);
        return;
    }
    k->state = KG_KERNEL_DEAD;
    s_set_string(&k->exit_detail, cb_strdup_printf("%s; %s", detail ? detail : "died",
                                                   k->ever_ready ? "restart limit reached"
                                                                 : "it never became ready"));
    s_emit(k, KG_EVENT_DEAD, k->exit_detail);
    if (!k->stopping)
        s_abandon_executions(k, "kernel_died", "The kernel is dead and will not be restarted.",
                             false);
}

/* ---- start ------------------------------------------------------------------------------- */

static int s_write_connection_file(kg_kernel_t *k, cb_error_t *err);

/* The gateway owns a kernel's life: a client's `exit` or `quit()` must not end it (a person in an
 * attached console would end the assistant's session). ipykernel ends itself on them (ask_exit
 * sets exit_now) unless keepkernel_on_exit is set, which `exit` resets to False on each call; so
 * an ipykernel started by the gateway gets an exec line that makes its shell's ask_exit keep the
 * kernel: the client that asked leaves (jupyter console prints "keeping kernel alive"), the
 * kernel and its state stay. A proxy cannot do this: code reaches ask_exit in too many ways. The
 * gateway's own shutdown_request (do_shutdown) still ends it; code that ends the process
 * anyway (os._exit) is a death like any other. Takes ownership of argv; NULL only when argv is. */
#define KG_IPYKERNEL_KEEP_ON_EXIT                                                                  \
    "--IPKernelApp.exec_lines=get_ipython().ask_exit = (lambda ip=get_ipython(), "                 \
    "ask=get_ipython().ask_exit: (setattr(ip, 'keepkernel_on_exit', True), ask())[1])"
static char **s_keep_on_exit(char **argv)
{
    size_t n = 0, at = 0; /* the argument goes right after the module, so the spec's own
                             arguments (the connection file last, as usual) stay as they are */
    for (; argv && argv[n]; n++)
        if (!at && n > 0 && strcmp(argv[n - 1], "-m") == 0 &&
            (strcmp(argv[n], "ipykernel_launcher") == 0 || strcmp(argv[n], "ipykernel") == 0))
            at = n + 1;
    if (!at)
        return argv;
    cb_strv_t v = {.v = argv, .n = n};
    cb_strv_push(&v, cb_xstrdup(KG_IPYKERNEL_KEEP_ON_EXIT));
    char *added = v.v[n];
    memmove(&v.v[at + 1], &v.v[at], (n - at) * sizeof *v.v);
    v.v[at] = added;
    return v.v;
}

static int s_start_process(kg_kernel_t *k, cb_error_t *err)
{
    k->info_replied = false;
    k->iopub_seen = false;
    if (s_write_connection_file(k, err) < 0 || s_open_sockets(k, err) < 0)
        return -1;
    /* The kernel finds cellblock's own programs where its sandbox shows them, or on the host. */
    char **argv = jp_kernelspec_argv(k->spec, k->conn_path_inside,
                                     k->sandbox ? SBX_INSIDE_LIBEXEC : cb_path_libexecdir());
    argv = s_keep_on_exit(argv);
    char **env = s_build_env(k);
    int out[2] = {-1, -1};
    if (!argv) /* the spec has no argv (kernelspec.c also says NULL when strdup fails) */
        cb_error_fail(err, CB_ERR_INVALID, "kernelspec '%s' gives no command", k->spec->name);
    else if (pipe2(out, O_CLOEXEC) < 0)
        cb_error_make(err, errno, "pipe");
    else
        k->proc = kg_proc_start(&(kg_proc_opts_t){.argv = argv,
                                                  .env = env,
                                                  .cwd = k->cwd,
                                                  .stdin_fd = -1,
                                                  .stdout_fd = out[1],
                                                  .stderr_fd = out[1],
                                                  .sandbox = k->sandbox},
                                err);
    cb_strv_free(argv);
    cb_strv_free(env);
    if (out[1] >= 0)
        close(out[1]);
    if (!k->proc) {
        if (out[0] >= 0)
            close(out[0]);
        s_close_sockets(k);
        return -1;
    }
    k->output_fd = out[0];
    fcntl(k->output_fd, F_SETFL, O_NONBLOCK);
    zmq_pollitem_t pid_item = {.fd = kg_proc_pidfd(k->proc), .events = ZMQ_POLLIN};
    zmq_pollitem_t out_item = {.fd = k->output_fd, .events = ZMQ_POLLIN};
    if (zloop_poller(k->gw->loop, &pid_item, s_on_pidfd, k) < 0 ||
        zloop_poller(k->gw->loop, &out_item, s_on_output, k) < 0) {
        int saved = errno;
        zloop_poller_end(k->gw->loop, &pid_item);
        kg_proc_destroy(&k->proc);
        s_close_output(k);
        s_close_sockets(k);
        return cb_error_make(err, saved, "watch kernel process");
    }
    k->gw->counters.kernels_started++;
    s_end_generation_timers(k); /* a restart's new deadline replaces, never joins, the old one */
    k->ready_timer =
        kg_timer_start(k->gw, (size_t)k->gw->cfg.startup_timeout_ms, 1, s_on_ready_timeout, k);
    s_send_kernel_info(k);
    cb_debug("kernel %.8s: started %s (pid %ld%s)", k->id, k->spec->name, (long)kg_kernel_pid(k),
             k->sandbox ? ", sandboxed" : "");
    return 0;
}

static kg_kernel_t *s_kernel_alloc(kg_gateway_t *gw, const kg_kernel_opts_t *opts)
{
    kg_kernel_t *k = cb_xcalloc(1, sizeof *k);
    k->gw = gw;
    k->output_fd = -1;
    k->ready_timer = k->nudge_timer = k->hb_timer = k->stop_timer = k->search_timer = -1;
    k->run_parent_fd = k->dir_fd = -1;
    for (int ch = 0; ch < JP_CH_COUNT; ch++)
        k->ci.sock_fd[ch] = -1;
    zuuid_t *id = zuuid_new(), *session = zuuid_new(); /* czmq aborts when memory runs out */
    snprintf(k->id, sizeof k->id, "%s", zuuid_str_canonical(id));
    snprintf(k->session, sizeof k->session, "%s", zuuid_str_canonical(session));
    zuuid_destroy(&id);
    zuuid_destroy(&session);
    k->on_event = opts->on_event;
    k->event_arg = opts->arg;
    k->queue = zlistx_new();
    k->extra_env = cb_strv_copy(opts->env);
    k->cwd = cb_xstrdup_or_null(opts->cwd);
    k->startup_code = cb_xstrdup_or_null(opts->startup_code);
    kg_kernel_touch(k);
    return k;
}

/* The kernel's directory "k-<id8>": in the sandbox's /run/cellblock (made as the sandbox user,
 * through sbx_run_mkdir) or in the runtime dir, opened beneath its parent without links; and its
 * connection info, naming the paths as the kernel sees them. */
static int s_make_dir(kg_kernel_t *k, cb_error_t *err)
{
    kg_gateway_t *gw = k->gw;
    snprintf(k->dir_name, sizeof k->dir_name, "k-%.8s", k->id);
    char seen[PATH_MAX];
    if (k->sandbox) {
        sbx_t *sbx = k->sandbox->sbx;
        k->run_parent_fd = fcntl(sbx_run_fd(sbx), F_DUPFD_CLOEXEC, 0);
        if (k->run_parent_fd < 0)
            return cb_error_make(err, errno, "kernel dir");
        k->dir_fd = sbx_run_mkdir(sbx, k->dir_name, err);
        k->sock_owner = sbx_host_uid(sbx);
        snprintf(seen, sizeof seen, SBX_INSIDE_RUN_DIR "/%s", k->dir_name);
        k->run_dir = cb_strdup_printf("/proc/%d/root%s", (int)sbx_init_pid(sbx), seen);
    } else {
        k->run_parent_fd = open(gw->runtime_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (k->run_parent_fd < 0)
            return cb_error_make(err, errno, "open the runtime dir '%s'", gw->runtime_dir);
        if (mkdirat(k->run_parent_fd, k->dir_name, 0700) < 0)
            return cb_error_make(err, errno, "create '%s' in the runtime dir", k->dir_name);
        k->dir_fd = cb_openat_beneath(k->run_parent_fd, k->dir_name, O_RDONLY | O_DIRECTORY, 0);
        if (k->dir_fd < 0)
            cb_error_make(err, errno, "open '%s' in the runtime dir", k->dir_name);
        k->sock_owner = geteuid();
        snprintf(seen, sizeof seen, "%s/%s", gw->runtime_dir, k->dir_name);
        k->run_dir = cb_xstrdup(seen);
    }
    struct stat st;
    if (k->dir_fd < 0)
        return -1;
    if (fstat(k->dir_fd, &st) < 0)
        return cb_error_make(err, errno, "stat '%s'", k->dir_name);
    k->dir_dev = st.st_dev;
    k->conn_path_inside = cb_strdup_printf("%s/connection.json", seen);
    return jp_conninfo_init(&k->ci, gw->cfg.transport, seen, k->spec->name, err);
}

/* Write connection.json beneath the kernel's directory, anew at every (re)start: whatever code in
 * the sandbox put under that name is unlinked, never followed, and the file is created O_EXCL. */
static int s_write_connection_file(kg_kernel_t *k, cb_error_t *err)
{
    cleanup_free char *text = jp_conninfo_json(&k->ci, err);
    if (!text)
        return -1;
    if (k->sandbox)
        return sbx_run_write(k->sandbox->sbx, k->dir_fd, "connection.json", text, strlen(text),
                             err);
    return cb_write_new_at(k->dir_fd, "connection.json", text, strlen(text), 0600, err);
}

kg_kernel_t *kg_kernel_start(kg_gateway_t *gw, const kg_kernel_opts_t *opts, cb_error_t *err)
{
    static const kg_kernel_opts_t defaults = {0};
    if (!opts)
        opts = &defaults;
    const char *name = opts->kernel_name ? opts->kernel_name : "python3";
    jp_kernelspec_t *spec = jp_kernelspec_find(gw->kernels_dir, name, err);
    if (!spec)
        return NULL;
    const jp_requirement_t *missing = jp_kernelspec_missing(spec);
    if (missing) {
        cb_error_fail(err, CB_ERR_UNAVAILABLE,
                      "the %s kernel needs %s from the Debian package %s; "
                      "scripts/install-deps.sh installs it",
                      spec->name, missing->path, missing->package);
        jp_kernelspec_destroy(&spec);
        return NULL;
    }
    kg_kernel_t *k = s_kernel_alloc(gw, opts);
    k->spec = spec;
    k->state = KG_KERNEL_STARTING;
    k->sandbox = opts->sandbox;
    int rc = 0;
    if (!k->sandbox && !gw->cfg.no_sandbox) {
        k->sandbox = kg_sandbox_create(gw, NULL, err);
        if (k->sandbox)
            k->sandbox->for_one_kernel = true;
        else
            rc = -1;
    }
    k->replay = jp_replay_new(4096);
    if (rc == 0 && !k->replay)
        rc = cb_error_make(err, ENOMEM, "new kernel");
    if (rc == 0)
        rc = s_make_dir(k, err);
    if (rc == 0 && !(k->signer = jp_signer_new(k->ci.key, strlen(k->ci.key), err)))
        rc = -1;
    if (rc == 0)
        rc = s_start_process(k, err);
    if (rc < 0) {
        cb_error_prefix(err, "start kernel '%s': ", name);
        if (k->dir_fd >= 0) /* made by us: remove it again */
            cb_rm_tree_at(k->run_parent_fd, k->dir_name, NULL);
        kg_gateway_add_kernel(gw, k); /* s_free removes it again */
        k->on_event = NULL;           /* the caller hears of the failure from the return */
        s_free(gw, k);                /* never started: nothing can reach it yet */
        return NULL;
    }
    kg_gateway_add_kernel(gw, k);
    return k;
}

/* ---- public control ---------------------------------------------------------------------- */

void kg_kernel_shutdown(kg_kernel_t *self)
{
    if (!self || self->stopping)
        return;
    self->stopping = true;
    self->state = KG_KERNEL_SHUTTING_DOWN;
    if (!kg_kernel_abandon_for_sandbox(self))
        s_abandon_executions(self, "cancelled", "The kernel was shut down.", false);
    s_stop_process(self, KG_AFTER_EXIT_STOP, true);
}

int kg_kernel_interrupt(kg_kernel_t *self, cb_error_t *err)
{
    if (!self->proc || !s_is_ready_state(self->state))
        return cb_error_fail(err, CB_ERR_STATE, "kernel %.8s is %s; nothing to interrupt", self->id,
                             kg_kernel_state_name(self->state));
    self->interrupts++;
    if (self->spec->interrupt_mode == JP_INTERRUPT_MESSAGE) {
        s_send_request(self, JP_CH_CONTROL, "interrupt_request", NULL);
        return 0;
    }
    if (kg_proc_signal(self->proc, SIGINT) < 0)
        return cb_error_make(err, errno, "interrupt kernel %.8s", self->id);
    return 0;
}

void kg_kernel_restart_for(kg_kernel_t *k, const char *reason)
{
    if (k->stopping || k->state == KG_KERNEL_DEAD)
        return;
    s_set_string(&k->state_lost_reason, cb_xstrdup(reason));
    k->state = KG_KERNEL_RESTARTING;
    s_stop_process(k, KG_AFTER_EXIT_RESPAWN, false);
}

int kg_kernel_restart(kg_kernel_t *self, cb_error_t *err)
{
    if (self->stopping)
        return cb_error_fail(err, CB_ERR_STATE, "kernel %.8s is shutting down", self->id);
    if (self->state == KG_KERNEL_RESTARTING)
        return 0;
    s_set_string(&self->state_lost_reason, cb_xstrdup("the kernel was restarted on request"));
    bool graceful = self->state != KG_KERNEL_DEAD;
    if (!graceful)
        self->restarts_in_window = 0; /* revived on request: a fresh budget of automatic restarts */
    self->state = KG_KERNEL_RESTARTING;
    s_stop_process(self, KG_AFTER_EXIT_RESPAWN, graceful);
    return 0;
}

/* Last resort for kg_gateway_destroy: kill, reap and free without the loop. */
bool kg_kernel_abandon_for_sandbox(kg_kernel_t *k)
{
    kg_sandbox_t *sb = k->sandbox;
    if (!sb || !(sb->dead || sb->end_pending))
        return false;
    cleanup_free char *note = cb_strdup_printf(
        "The kernel's sandbox ended (%s) while running this code; its variables and files are "
        "lost.",
        sb->end_detail ? sb->end_detail : "its init process died");
    s_abandon_executions(k, "kernel_died", note, false);
    return true;
}

void kg_kernel_free_now(kg_kernel_t *k)
{
    s_timer_cancel(k, &k->hb_timer);
    s_timer_cancel(k, &k->ready_timer);
    s_timer_cancel(k, &k->nudge_timer);
    s_timer_cancel(k, &k->stop_timer);
    if (k->proc) {
        zmq_pollitem_t item = {.fd = kg_proc_pidfd(k->proc), .events = ZMQ_POLLIN};
        zloop_poller_end(k->gw->loop, &item);
        kg_proc_destroy(&k->proc);
    }
    s_close_output(k);
    s_close_sockets(k);
    k->stopping = true;
    k->after_exit = KG_AFTER_EXIT_STOP;
    s_after_exit(k); /* queues the free; take it back and free now */
    kg_gateway_defer_cancel(k->gw, s_free, k);
    s_free(k->gw, k);
}

void kg_kernel_set_events(kg_kernel_t *self, kg_kernel_event_fn *fn, void *arg)
{
    self->on_event = fn;
    self->event_arg = arg;
}

const char *kg_kernel_id(const kg_kernel_t *self) { return self->id; }
const char *kg_kernel_name(const kg_kernel_t *self) { return self->spec->name; }
const char *kg_kernel_language(const kg_kernel_t *self) { return self->spec->language; }
kg_kernel_state_t kg_kernel_state(const kg_kernel_t *self) { return self->state; }
bool kg_kernel_is_ready(const kg_kernel_t *self)
{
    return s_is_ready_state(self->state) && !self->starting_up;
}
bool kg_kernel_is_busy(const kg_kernel_t *self)
{
    return self->running || zlistx_size(self->queue) > 0;
}
bool kg_kernel_ever_ready(const kg_kernel_t *self) { return self->ever_ready; }
pid_t kg_kernel_pid(const kg_kernel_t *self)
{
    pid_t pid = self->proc ? kg_proc_pid(self->proc) : 0;
    return pid > 0 ? pid : 0;
}
int kg_kernel_restart_count(const kg_kernel_t *self) { return self->restart_count; }
const char *kg_kernel_run_dir(const kg_kernel_t *self) { return self->run_dir; }
int64_t kg_kernel_last_activity_us(const kg_kernel_t *self) { return self->last_activity_us; }
bool kg_kernel_is_stopping(const kg_kernel_t *self)
{
    return self->stopping || self->state == KG_KERNEL_STOPPED;
}
kg_sandbox_t *kg_kernel_sandbox(const kg_kernel_t *self) { return self->sandbox; }
const char *kg_kernel_session(const kg_kernel_t *self) { return self->session; }

const char *kg_kernel_state_name(kg_kernel_state_t state)
{
    static const char *names[] = {"starting",      "idle", "busy",   "restarting",
                                  "shutting_down", "dead", "stopped"};
    return state <= KG_KERNEL_STOPPED ? names[state] : "unknown";
}

const char *kg_kernel_attach(kg_kernel_t *self, cb_error_t *err)
{
    if (self->stopping || self->state == KG_KERNEL_DEAD)
        return cb_error_fail(err, CB_ERR_STATE, "kernel %.8s is %s", self->id,
                             kg_kernel_state_name(self->state)),
               NULL;
    if (!self->attach && !(self->attach = kg_attach_new(self, err)))
        return NULL;
    return kg_attach_path(self->attach);
}
