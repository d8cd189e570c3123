/* execution.c: one execute request as a state machine on the gateway's loop.
 *
 *   queued --begin--> running --(execute_reply and status idle)--> done
 *                        |  timeout or cancel: interrupt, then wait a grace period;
 *                        |  still running after it: restart the kernel and end as "timeout"
 *                        '- kernel death or shutdown: abandoned with a status and a note
 *
 * The kernel (kernel.c) routes every shell, iopub and stdin message whose parent msg_id is this
 * execution's request here. Outputs are collected into the Jupyter-shaped result described in
 * kg.h and also handed to on_output as they arrive, for streaming.
 */
#include <errno.h>
#include <string.h>

#include "cb/alloc.h"
#include "cb/cleanup.h"
#include "cb/log.h"
#include "kg_private.h"

#define KG_STREAM_CAP (16u << 20)  /* per stream; beyond it output is dropped with a note */
#define KG_RESULTS_CAP (64u << 20) /* rich results' data in all; likewise */

typedef enum { KG_X_QUEUED = 0, KG_X_RUNNING, KG_X_DONE } kg_x_state_t;

struct kg_execution {
    kg_kernel_t *kernel;
    char id[37];
    char msg_id[37];
    char *code;
    char *origin;
    char *stdin_text;
    const char *stdin_next; /* the next line to answer with, inside stdin_text */
    kg_execute_opts_t opts; /* callbacks and flags; its strings point at the copies above */
    kg_x_state_t state;

    bool got_reply;
    bool got_idle;
    bool clear_pending;         /* clear_output(wait=True): clear before the next output */
    const char *forced_status;  /* "timeout" or "cancelled" override the reply's status */
    bool executing;             /* execute_input seen: the kernel runs the code and takes SIGINT */
    bool interrupt_deferred;    /* an interrupt waits for execute_input (see s_interrupt) */
    char barrier_id[37];        /* a kernel_info_request sent after an idle without a reply */
    unsigned interrupts_before; /* the kernel's interrupt count when the request went out */
    char *stdin_failure;        /* set when input() asked for more than was supplied */
    int timeout_timer;
    int grace_timer;
    int resend_timer; /* repeats the interrupt until the code shows it took */
    int64_t started_us;
    double duration_ms;

    cb_buf_t streams[2]; /* stdout, stderr */
    bool truncated[2];
    size_t results_bytes; /* string bytes in results' data, against KG_RESULTS_CAP */
    bool results_truncated;
    json_t *results; /* array of {data, metadata, is_main_result[, display_id]} */
    json_t *error;   /* {ename, evalue, traceback} or NULL */
    json_t *execution_count;
    char *reply_status;
    json_t *notes; /* array of strings */
    bool kernel_restarted;
    bool internal; /* the kernel's own startup code: not counted, takes no state-lost note */
};

static const char *s_stream_names[2] = {"stdout", "stderr"};

static void s_note(kg_execution_t *x, const char *text)
{
    if (text && *text)
        json_array_append_new(x->notes, json_string(text));
}

static void s_free(kg_execution_t *x)
{
    free(x->code);
    free(x->origin);
    free(x->stdin_text);
    free(x->stdin_failure);
    free(x->reply_status);
    cb_buf_free(&x->streams[0]);
    cb_buf_free(&x->streams[1]);
    json_decref(x->results);
    json_decref(x->error);
    json_decref(x->execution_count);
    json_decref(x->notes);
    free(x);
}

static void s_cancel_timer(kg_execution_t *x, int *timer) { kg_timer_stop(x->kernel->gw, timer); }

/* ---- the result -------------------------------------------------------------------------- */

static json_t *s_result(const kg_execution_t *x, const char *status)
{
    json_t *error = x->error ? json_incref(x->error) : json_null();
    if (x->stdin_failure) {
        json_decref(error);
        error = json_pack("{s:s, s:s, s:[]}", "ename", "StdinNotProvided", "evalue",
                          x->stdin_failure, "traceback");
    }
    double duration = x->state == KG_X_DONE ? x->duration_ms
                      : x->started_us       ? (double)(cb_now_us() - x->started_us) / 1000.0
                                            : 0.0;
    return json_pack("{s:s, s:s, s:O, s:s, s:s, s:o, s:o*, s:f, s:b, s:o}", "id", x->id, "status",
                     status, "execution_count", x->execution_count, "stdout",
                     cb_buf_str(&x->streams[0]), "stderr", cb_buf_str(&x->streams[1]), "results",
                     json_deep_copy(x->results), "error", error, "duration_ms", duration,
                     "kernel_restarted", x->kernel_restarted, "notes", json_deep_copy(x->notes));
}

json_t *kg_execution_snapshot(const kg_execution_t *self)
{
    return s_result(self, self->state == KG_X_QUEUED ? "queued" : "running");
}

/* The execution for the audit trail (kg_policy_t.activity): what ran, never its output. */
static void s_audit(const kg_execution_t *x, const char *status)
{
    bool truncated = false;
    cleanup_free char *code = kg_audit_text(x->code, &truncated);
    const char *ename = x->stdin_failure ? "StdinNotProvided"
                                         : json_string_value(json_object_get(x->error, "ename"));
    int64_t started_ms = kg_wall_ms() - (int64_t)x->duration_ms;
    kg_sandbox_activity(x->kernel->sandbox, "execution",
                        json_pack("{s:s, s:s, s:s, s:s, s:s, s:b, s:I, s:f, s:s, s:s*}",
                                  "execution_id", x->id, "kernel_id", kg_kernel_id(x->kernel),
                                  "kernel", kg_kernel_name(x->kernel), "origin", x->origin, "code",
                                  code, "code_truncated", truncated, "started_ms",
                                  (json_int_t)started_ms, "duration_ms", x->duration_ms, "status",
                                  status, "ename", ename));
}

/* Report the final result and free the execution. The kernel must already have let go of it. */
static void s_complete(kg_execution_t *x, const char *status)
{
    kg_kernel_t *k = x->kernel;
    s_cancel_timer(x, &x->timeout_timer);
    s_cancel_timer(x, &x->grace_timer);
    s_cancel_timer(x, &x->resend_timer);
    if (x->started_us)
        x->duration_ms = (double)(cb_now_us() - x->started_us) / 1000.0;
    x->state = KG_X_DONE;
    if (strcmp(status, "ok") != 0 && !x->internal)
        k->gw->counters.executions_failed++;
    if (k->sandbox)
        kg_sandbox_touch(k->sandbox); /* the idle clock runs from the end of the work */
    json_t *result = s_result(x, status);
    if (k->sandbox && !x->internal)
        s_audit(x, status);
    if (x->opts.on_done)
        x->opts.on_done(x, result ? result : json_null(), x->opts.arg);
    json_decref(result);
    s_free(x);
}

static void s_finish(kg_execution_t *x)
{
    /* The kernel refuses input() itself when no stdin was offered; say how to supply it. */
    const char *ename = json_string_value(json_object_get(x->error, "ename"));
    if (!x->stdin_text && ename && strcmp(ename, "StdinNotImplementedError") == 0)
        s_note(x, "The code called input() but no stdin was supplied; pass the answers as stdin, "
                  "one line per input() call.");
    const char *status = x->forced_status   ? x->forced_status
                         : x->stdin_failure ? "error"
                         : x->reply_status  ? x->reply_status
                                            : "error";
    kg_kernel_t *k = x->kernel;
    kg_kernel_execution_finished(k, x); /* the next execution may start now */
    s_complete(x, status);
}

void kg_execution_abandon(kg_execution_t *x, const char *status, const char *note)
{
    s_note(x, note);
    s_complete(x, status);
}

/* ---- outputs ----------------------------------------------------------------------------- */

static void s_clear_outputs(kg_execution_t *x)
{
    cb_buf_clear(&x->streams[0]);
    cb_buf_clear(&x->streams[1]);
    json_array_clear(x->results);
    x->results_bytes = 0;
    x->clear_pending = false;
}

static void s_append_stream(kg_execution_t *x, int which, const char *text)
{
    cb_buf_t *buf = &x->streams[which];
    size_t n = strlen(text);
    if (buf->len + n > KG_STREAM_CAP) {
        if (!x->truncated[which]) {
            x->truncated[which] = true;
            cleanup_free char *note =
                cb_strdup_printf("%s was cut at %u MiB; the rest was dropped.",
                                 s_stream_names[which], KG_STREAM_CAP >> 20);
            s_note(x, note);
        }
        n = KG_STREAM_CAP > buf->len ? KG_STREAM_CAP - buf->len : 0;
    }
    cb_buf_append(buf, text, n);
}

/* The string bytes of a MIME bundle (what a result costs to keep; nested JSON counts 0). */
static size_t s_bundle_bytes(json_t *data)
{
    size_t total = 0;
    const char *mime;
    json_t *value;
    json_object_foreach (data, mime, value)
        total += json_string_length(value);
    return total;
}

static void s_add_result(kg_execution_t *x, json_t *content, bool main_result)
{
    size_t bytes = s_bundle_bytes(json_object_get(content, "data"));
    if (x->results_bytes + bytes > KG_RESULTS_CAP) {
        if (!x->results_truncated) {
            x->results_truncated = true;
            cleanup_free char *note =
                cb_strdup_printf("Rich outputs past %u MiB were dropped.", KG_RESULTS_CAP >> 20);
            s_note(x, note);
        }
        return;
    }
    x->results_bytes += bytes;
    json_t *item =
        json_pack("{s:O, s:O, s:b}", "data", json_object_get(content, "data"), "metadata",
                  json_object_get(content, "metadata"), "is_main_result", main_result);
    if (!item)
        return; /* data or metadata missing: not a valid output */
    json_t *display_id = json_object_get(json_object_get(content, "transient"), "display_id");
    if (json_is_string(display_id))
        json_object_set(item, "display_id", display_id);
    json_array_append_new(x->results, item);
}

static void s_update_display(kg_execution_t *x, json_t *content)
{
    const char *id =
        json_string_value(json_object_get(json_object_get(content, "transient"), "display_id"));
    size_t i;
    json_t *item;
    json_array_foreach (x->results, i, item) {
        const char *have = json_string_value(json_object_get(item, "display_id"));
        if (id && have && strcmp(id, have) == 0) {
            json_object_set(item, "data", json_object_get(content, "data"));
            json_object_set(item, "metadata", json_object_get(content, "metadata"));
        }
    }
}

static void s_answer_input(kg_execution_t *x, const jp_msg_t *request)
{
    kg_kernel_t *k = x->kernel;
    if (!x->stdin_next || !*x->stdin_next) {
        const char *prompt = json_string_value(json_object_get(request->content, "prompt"));
        free(x->stdin_failure);
        x->stdin_failure = cb_strdup_printf(
            "the code asked for input (prompt %s%s%s) but no %sstdin was supplied; pass the "
            "answers as stdin, one line per input() call",
            prompt ? "'" : "", prompt ? prompt : "none", prompt ? "'" : "",
            x->stdin_text ? "more " : "");
        cb_error_t err = {0};
        if (kg_kernel_interrupt(k, &err) < 0)
            cb_warn("execution %.8s: %s", x->id, err.msg);
        return;
    }
    const char *end = strchr(x->stdin_next, '\n');
    size_t len = end ? (size_t)(end - x->stdin_next) : strlen(x->stdin_next);
    json_t *value = json_stringn(x->stdin_next, len);
    x->stdin_next += len + (end ? 1 : 0);
    jp_msg_t *reply = jp_msg_new("input_reply", k->session, request->header,
                                 json_pack("{s:o}", "value", value ? value : json_string("")));
    if (reply) { /* echo the request's routing frames: stdin is a ROUTER on the kernel's side */
        zmsg_destroy(&reply->idents);
        reply->idents = zmsg_dup(request->idents);
    }
    kg_kernel_send(k, JP_CH_STDIN, &reply);
}

static void s_send_interrupt(kg_execution_t *x);

/* ipykernel takes an interrupt that lands in its own code around the cell (after execute_input,
 * before or after the user's code) as "KeyboardInterrupt caught in kernel", and a handler that
 * fails as "Exception in message handler": either way the request ends with status idle and no
 * execute_reply at all, and the kernel and its state are fine. Waiting for the reply would hang
 * the caller, or end in a needless restart. The reply and idle travel on different sockets,
 * though, so idle first is no proof. Proof is a kernel_info_request sent after idle on the same
 * shell socket: the kernel answers shell requests in order on one connection, so when its reply
 * comes and no execute_reply came before it, none will. Whoever sent the interrupt (a cancel, a
 * timeout, the Jupyter API, an attached client's interrupt_request goes to control and is not
 * counted), the result reads as an interrupted cell. */
static void s_send_barrier(kg_execution_t *x)
{
    if (x->barrier_id[0])
        return;
    jp_msg_t *msg = jp_msg_new("kernel_info_request", x->kernel->session, NULL, NULL);
    if (!msg)
        return; /* the grace timer still ends it */
    snprintf(x->barrier_id, sizeof x->barrier_id, "%s", jp_msg_id(msg));
    if (kg_kernel_send(x->kernel, JP_CH_SHELL, &msg) < 0)
        x->barrier_id[0] = '\0';
}

static void s_dropped_by_kernel(kg_execution_t *x)
{
    bool interrupted = x->kernel->interrupts != x->interrupts_before;
    if (interrupted && !x->error && !x->forced_status)
        x->error =
            json_pack("{s:s, s:s, s:[]}", "ename", "KeyboardInterrupt", "evalue", "", "traceback");
    s_note(x,
           interrupted
               ? "The interrupt stopped the request in the kernel's own code, before or after the "
                 "cell's; the kernel and its state are kept."
               : "The kernel ended the request without a reply (it was interrupted or its handler "
                 "failed); the "
                 "kernel and its state are kept.");
    s_finish(x);
}

void kg_execution_on_message(kg_execution_t *x, jp_channel_t ch, const jp_msg_t *msg)
{
    const char *type = jp_msg_type(msg);
    json_t *content = msg->content;
    const char *output_kind = NULL;

    if (ch == JP_CH_SHELL) {
        if (strcmp(type, "kernel_info_reply") == 0 && x->barrier_id[0] && !x->got_reply &&
            strcmp(jp_msg_parent_id(msg), x->barrier_id) == 0) {
            s_dropped_by_kernel(x);
            return;
        }
        if (strcmp(type, "execute_reply") != 0)
            return;
        x->got_reply = true;
        const char *status = json_string_value(json_object_get(content, "status"));
        free(x->reply_status);
        x->reply_status = cb_xstrdup(status ? status : "error");
        json_t *count = json_object_get(content, "execution_count");
        if (json_is_integer(count)) {
            json_decref(x->execution_count);
            x->execution_count = json_incref(count);
        }
        if (status && strcmp(status, "error") == 0 && !x->error)
            x->error = json_pack("{s:O*, s:O*, s:O*}", "ename", json_object_get(content, "ename"),
                                 "evalue", json_object_get(content, "evalue"), "traceback",
                                 json_object_get(content, "traceback"));
    } else if (ch == JP_CH_STDIN) {
        if (strcmp(type, "input_request") != 0)
            return;
        output_kind = "input_request";
        s_answer_input(x, msg);
    } else if (strcmp(type, "execute_input") == 0) {
        x->executing = true;
        if (x->interrupt_deferred) {
            x->interrupt_deferred = false;
            s_send_interrupt(x);
        }
    } else if (strcmp(type, "status") == 0) {
        const char *state = json_string_value(json_object_get(content, "execution_state"));
        if (state && strcmp(state, "idle") == 0) {
            x->got_idle = true;
            if (!x->got_reply)
                s_send_barrier(x);
        }
    } else if (strcmp(type, "clear_output") == 0) {
        output_kind = type;
        if (json_is_true(json_object_get(content, "wait")))
            x->clear_pending = true;
        else
            s_clear_outputs(x);
    } else if (strcmp(type, "stream") == 0 || strcmp(type, "display_data") == 0 ||
               strcmp(type, "execute_result") == 0 || strcmp(type, "update_display_data") == 0 ||
               strcmp(type, "error") == 0) {
        output_kind = type;
        if (x->clear_pending && strcmp(type, "update_display_data") != 0)
            s_clear_outputs(x);
        if (strcmp(type, "stream") == 0) {
            const char *name = json_string_value(json_object_get(content, "name"));
            json_t *jtext = json_object_get(content, "text");
            /* A NUL in the text (JSON allows \u0000) would cut the stream short: made U+FFFD. */
            if (json_is_string(jtext)) {
                cleanup_free char *text =
                    cb_text_lossy(json_string_value(jtext), json_string_length(jtext), NULL);
                s_append_stream(x, name && strcmp(name, "stderr") == 0, text);
            }
        } else if (strcmp(type, "display_data") == 0) {
            s_add_result(x, content, false);
        } else if (strcmp(type, "execute_result") == 0) {
            s_add_result(x, content, true);
            json_t *count = json_object_get(content, "execution_count");
            if (json_is_integer(count)) {
                json_decref(x->execution_count);
                x->execution_count = json_incref(count);
            }
        } else if (strcmp(type, "update_display_data") == 0) {
            s_update_display(x, content);
        } else {
            json_decref(x->error);
            x->error = json_pack("{s:O*, s:O*, s:O*}", "ename", json_object_get(content, "ename"),
                                 "evalue", json_object_get(content, "evalue"), "traceback",
                                 json_object_get(content, "traceback"));
        }
    }
    if (output_kind && x->opts.on_output)
        x->opts.on_output(x, output_kind, content, x->opts.arg);
    if (x->got_reply && x->got_idle && x->state == KG_X_RUNNING)
        s_finish(x);
}

/* ---- timeout, cancel --------------------------------------------------------------------- */

static int s_on_grace(zloop_t *loop, int timer_id, void *arg)
{
    kg_execution_t *x = arg;
    kg_kernel_t *k = x->kernel;
    kg_gateway_t *gw = k->gw;
    x->grace_timer = -1;
    cleanup_free char *note = cb_strdup_printf(
        "The interrupt did not stop the code within %.1f s, so the kernel was restarted; its "
        "variables and imports are lost.",
        gw->cfg.interrupt_grace_ms / 1000.0);
    s_note(x, note);
    x->kernel_restarted = true;
    kg_kernel_restart_for(k, "the kernel was restarted because an interrupt did not take");
    s_finish(x);
    return kg_gateway_handler_result(gw);
}

/* Even once execute_input has come, ipykernel may still be in its own code before the cell's:
 * a SIGINT there is caught and reported on the kernel's stderr ("KeyboardInterrupt caught in
 * kernel"), and the cell then runs on. So the interrupt is sent again every S_RESEND_MS while
 * the execution runs and shows no error, until the grace period ends. */
#define S_RESEND_MS 500

static int s_on_resend(zloop_t *loop, int timer_id, void *arg)
{
    kg_execution_t *x = arg;
    cb_error_t err = {0};
    if (!x->error && kg_kernel_interrupt(x->kernel, &err) < 0)
        cb_debug("execution %.8s: %s", x->id, err.msg);
    return kg_gateway_handler_result(x->kernel->gw);
}

/* Send the interrupt (again every S_RESEND_MS) and give the code interrupt_grace_ms to stop. */
static void s_send_interrupt(kg_execution_t *x)
{
    cb_error_t err = {0};
    int grace_ms = x->kernel->gw->cfg.interrupt_grace_ms;
    if (kg_kernel_interrupt(x->kernel, &err) < 0)
        cb_warn("execution %.8s: %s", x->id, err.msg);
    s_cancel_timer(x, &x->grace_timer);
    x->grace_timer = kg_timer_start(x->kernel->gw, (size_t)grace_ms, 1, s_on_grace, x);
    s_cancel_timer(x, &x->resend_timer);
    if (grace_ms > S_RESEND_MS) /* stopped by s_complete: never runs on a finished execution */
        x->resend_timer = kg_timer_start(x->kernel->gw, S_RESEND_MS, 0, s_on_resend, x);
}

/* ipykernel ignores SIGINT between requests and only takes it once the execute handler runs
 * (it announces that with execute_input), so an interrupt that comes earlier would be lost and
 * the grace would end in a restart. It is sent when execute_input arrives instead; the grace
 * timer runs meanwhile all the same, in case the kernel never gets there. */
static void s_interrupt(kg_execution_t *x, const char *status, const char *note)
{
    if (x->forced_status)
        return; /* already interrupting */
    x->forced_status = status;
    s_note(x, note);
    if (x->executing) {
        s_send_interrupt(x);
        return;
    }
    x->interrupt_deferred = true;
    x->grace_timer = kg_timer_start(x->kernel->gw, (size_t)x->kernel->gw->cfg.interrupt_grace_ms, 1,
                                    s_on_grace, x);
}

static int s_on_timeout(zloop_t *loop, int timer_id, void *arg)
{
    kg_execution_t *x = arg;
    x->timeout_timer = -1;
    cleanup_free char *note = cb_strdup_printf(
        "Execution timed out after %.1f s and was interrupted.", x->opts.timeout_ms / 1000.0);
    s_interrupt(x, "timeout", note);
    return kg_gateway_handler_result(x->kernel->gw);
}

int kg_execution_cancel(kg_execution_t *self, cb_error_t *err)
{
    if (self->state == KG_X_QUEUED) {
        void *handle = zlistx_find(self->kernel->queue, self);
        if (handle)
            zlistx_delete(self->kernel->queue, handle);
        kg_execution_abandon(self, "cancelled", "Cancelled before it started.");
        return 0;
    }
    if (self->state != KG_X_RUNNING)
        return cb_error_fail(err, CB_ERR_STATE, "execution %.8s has finished", self->id);
    s_interrupt(self, "cancelled", "Cancelled; the kernel was interrupted.");
    return 0;
}

/* ---- start ------------------------------------------------------------------------------- */

static int s_on_fail_timer(zloop_t *loop, int timer_id, void *arg)
{
    kg_execution_t *x = arg;
    kg_gateway_t *gw = x->kernel->gw;
    x->grace_timer = -1;
    x->forced_status = "error";
    s_finish(x);
    return kg_gateway_handler_result(gw);
}

/* A failure while starting: finish on a later loop pass, so that kg_execute's caller always
 * gets its pointer back before on_done runs. A 0 ms timer, not a deferred call: abandoning
 * the execution meanwhile stops it like any other timer of the execution. */
static void s_fail_soon(kg_execution_t *x, const char *note)
{
    s_note(x, note);
    x->grace_timer = kg_timer_start(x->kernel->gw, 0, 1, s_on_fail_timer, x);
}

void kg_execution_begin(kg_execution_t *x)
{
    kg_kernel_t *k = x->kernel;
    cleanup_free char *lost = NULL;
    if (!x->internal && kg_kernel_take_state_lost(k, &lost)) {
        x->kernel_restarted = true;
        cleanup_free char *note =
            cb_strdup_printf("State from earlier executions is gone: %s.", lost);
        s_note(x, note);
    }
    bool history = !x->opts.no_history && !x->opts.silent;
    /* stop_on_error is off: the gateway keeps its own queue and sends one request at a time, so
     * the kernel never holds queued cells to abort. With it on, ipykernel aborts any request
     * that arrives in the moment after an error, which would be our next, unrelated one. */
    jp_msg_t *msg =
        jp_msg_new("execute_request", k->session, NULL,
                   json_pack("{s:s, s:b, s:b, s:{}, s:b, s:b}", "code", x->code, "silent",
                             x->opts.silent, "store_history", history, "user_expressions",
                             "allow_stdin", x->stdin_text != NULL, "stop_on_error", false));
    x->state = KG_X_RUNNING;
    x->started_us = cb_now_us();
    if (!msg || !msg->content) {
        jp_msg_destroy(&msg);
        s_fail_soon(x, "Could not build the execute request.");
        return;
    }
    snprintf(x->msg_id, sizeof x->msg_id, "%s", jp_msg_id(msg));
    x->interrupts_before = k->interrupts;
    if (kg_kernel_send(k, JP_CH_SHELL, &msg) < 0) {
        s_fail_soon(x, "Could not send the execute request to the kernel.");
        return;
    }
    if (x->opts.timeout_ms > 0)
        x->timeout_timer = kg_timer_start(k->gw, (size_t)x->opts.timeout_ms, 1, s_on_timeout, x);
}

static kg_execution_t *s_new(kg_kernel_t *kernel, const kg_execute_opts_t *opts, cb_error_t *err)
{
    if (!opts || !opts->code)
        return cb_error_fail(err, CB_ERR_INVALID, "no code to execute"), NULL;
    if (opts->timeout_ms < 0)
        return cb_error_fail(err, CB_ERR_INVALID, "timeout must not be negative"), NULL;
    kg_execution_t *x = cb_xcalloc(1, sizeof *x);
    x->kernel = kernel;
    x->opts = *opts;
    x->timeout_timer = x->grace_timer = x->resend_timer = -1;
    x->code = cb_xstrdup(opts->code);
    x->origin = cb_xstrdup(opts->origin ? opts->origin : "kernel client");
    x->opts.origin = x->origin;
    x->stdin_text = cb_xstrdup_or_null(opts->stdin_text);
    x->stdin_next = x->stdin_text;
    x->results = json_array();
    x->notes = json_array();
    x->execution_count = json_null();
    zuuid_t *uuid = zuuid_new(); /* czmq aborts when memory runs out */
    snprintf(x->id, sizeof x->id, "%s", zuuid_str_canonical(uuid));
    zuuid_destroy(&uuid);
    x->opts.code = x->code;
    x->opts.stdin_text = x->stdin_text;
    return x;
}

kg_execution_t *kg_execute(kg_kernel_t *kernel, const kg_execute_opts_t *opts, cb_error_t *err)
{
    kg_execution_t *x = s_new(kernel, opts, err);
    if (!x)
        return NULL;
    if (kg_kernel_enqueue(kernel, x, false, err) < 0) {
        s_free(x);
        return NULL;
    }
    kernel->gw->counters.executions++;
    if (kernel->sandbox) {
        kernel->sandbox->executions++;
        kg_sandbox_touch(kernel->sandbox);
    }
    return x; /* even when it began at once, on_done runs on a later loop turn */
}

kg_execution_t *kg_execution_internal(kg_kernel_t *kernel, const char *code, int timeout_ms,
                                      kg_done_fn *on_done, void *arg, cb_error_t *err)
{
    kg_execute_opts_t opts = {
        .code = code, .timeout_ms = timeout_ms, .silent = true, .on_done = on_done, .arg = arg};
    kg_execution_t *x = s_new(kernel, &opts, err);
    if (!x)
        return NULL;
    x->internal = true;
    if (kg_kernel_enqueue(kernel, x, true, err) < 0) {
        s_free(x);
        return NULL;
    }
    return x;
}

const char *kg_execution_id(const kg_execution_t *self) { return self->id; }
bool kg_execution_owns(const kg_execution_t *x, const char *parent_id)
{
    return strcmp(parent_id, x->msg_id) == 0 ||
           (x->barrier_id[0] && strcmp(parent_id, x->barrier_id) == 0);
}
kg_kernel_t *kg_execution_kernel(const kg_execution_t *self) { return self->kernel; }
