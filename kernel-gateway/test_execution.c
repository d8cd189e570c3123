/* test_execution.c: the execute state machine (execution.c) fed message by message, without a
 * kernel, a socket or a loop.
 *
 * The seam is the link: this file is built with execution.c and wire.c alone and defines the
 * few kernel and gateway functions execution.c calls (kg_kernel_send, kg_timer_start, ...) as
 * fakes that record what the execution asked for. A test then plays the kernel: it hands
 * kg_execution_on_message the iopub, shell and stdin messages a kernel would send, in the orders
 * a real one may (the reply and idle travel on different sockets, so either may come first), and
 * fires the timers the execution started when it wants time to pass. */
#include <string.h>

#include "cb/cleanup.h"
#include "cb/log.h"
#include "cb/tap.h"
#include "kg_private.h"

/* ---- the fakes ------------------------------------------------------------------------------ */

typedef struct {
    int id;
    kg_timer_fn *fn;
    void *arg;
} s_timer_t;

static struct {
    jp_msg_t *sent[16]; /* what the execution sent, by channel order of sending */
    jp_channel_t sent_ch[16];
    size_t n_sent;
    s_timer_t timers[16];
    int next_timer;
    int finished; /* kg_kernel_execution_finished calls */
    int restarts; /* kg_kernel_restart_for calls */
} s_fake;

int kg_kernel_send(kg_kernel_t *k, jp_channel_t ch, jp_msg_t **msg_p)
{
    if (s_fake.n_sent == sizeof s_fake.sent / sizeof s_fake.sent[0])
        abort();
    s_fake.sent_ch[s_fake.n_sent] = ch;
    s_fake.sent[s_fake.n_sent++] = *msg_p;
    *msg_p = NULL;
    return 0;
}

int kg_kernel_enqueue(kg_kernel_t *k, kg_execution_t *x, bool front, cb_error_t *err)
{
    k->running = x; /* a ready kernel with an empty queue starts it at once */
    kg_execution_begin(x);
    return 0;
}

void kg_kernel_execution_finished(kg_kernel_t *k, kg_execution_t *x)
{
    s_fake.finished++;
    k->running = NULL;
}

const char *kg_kernel_take_state_lost(kg_kernel_t *k, char **reason_out)
{
    *reason_out = k->state_lost_reason;
    k->state_lost_reason = NULL;
    return *reason_out;
}

int kg_kernel_interrupt(kg_kernel_t *self, cb_error_t *err)
{
    self->interrupts++;
    return 0;
}

void kg_kernel_restart_for(kg_kernel_t *k, const char *reason) { s_fake.restarts++; }

void kg_sandbox_touch(kg_sandbox_t *self) {}
void kg_sandbox_activity(kg_sandbox_t *sb, const char *kind, json_t *record)
{
    json_decref(record);
}
int64_t kg_wall_ms(void) { return 0; }
char *kg_audit_text(const char *text, bool *truncated) { return *truncated = false, strdup(text); }
const char *kg_kernel_id(const kg_kernel_t *self) { return "kernel"; }
const char *kg_kernel_name(const kg_kernel_t *self) { return "python3"; }

int kg_gateway_handler_result(kg_gateway_t *gw) { return 0; }

int kg_timer_start(kg_gateway_t *gw, size_t delay_ms, size_t times, kg_timer_fn *fn, void *arg)
{
    for (size_t i = 0; i < sizeof s_fake.timers / sizeof s_fake.timers[0]; i++)
        if (!s_fake.timers[i].fn) {
            s_fake.timers[i] = (s_timer_t){++s_fake.next_timer, fn, arg};
            return s_fake.timers[i].id;
        }
    abort();
}

void kg_timer_stop(kg_gateway_t *gw, int *timer_id)
{
    for (size_t i = 0; *timer_id >= 0 && i < sizeof s_fake.timers / sizeof s_fake.timers[0]; i++)
        if (s_fake.timers[i].fn && s_fake.timers[i].id == *timer_id)
            s_fake.timers[i] = (s_timer_t){0};
    *timer_id = -1;
}

/* Let time pass until the oldest timer is due, and run it (the execution's are one-shots but
 * the interrupt's resend, which a test never lets come first). Returns whether one ran. */
static bool s_fire_oldest(void)
{
    s_timer_t *oldest = NULL;
    for (size_t i = 0; i < sizeof s_fake.timers / sizeof s_fake.timers[0]; i++)
        if (s_fake.timers[i].fn && (!oldest || s_fake.timers[i].id < oldest->id))
            oldest = &s_fake.timers[i];
    if (!oldest)
        return false;
    s_timer_t t = *oldest;
    *oldest = (s_timer_t){0};
    t.fn(NULL, t.id, t.arg);
    return true;
}

static size_t s_live_timers(void)
{
    size_t n = 0;
    for (size_t i = 0; i < sizeof s_fake.timers / sizeof s_fake.timers[0]; i++)
        n += s_fake.timers[i].fn != NULL;
    return n;
}

/* ---- playing the kernel --------------------------------------------------------------------- */

static kg_gateway_t s_gw;
static kg_kernel_t s_kernel;

typedef struct {
    json_t *result;  /* the final result, once on_done ran */
    int done;        /* on_done calls */
    int outputs;     /* on_output calls */
    char kinds[256]; /* the output kinds, in order, space-separated */
} s_seen_t;

static void s_on_output(kg_execution_t *x, const char *kind, json_t *content, void *arg)
{
    s_seen_t *seen = arg;
    seen->outputs++;
    size_t used = strlen(seen->kinds);
    snprintf(seen->kinds + used, sizeof seen->kinds - used, "%s%s", used ? " " : "", kind);
}

static void s_on_done(kg_execution_t *x, json_t *result, void *arg)
{
    s_seen_t *seen = arg;
    seen->done++;
    json_decref(seen->result);
    seen->result = json_incref(result);
}

static void s_reset(void)
{
    for (size_t i = 0; i < s_fake.n_sent; i++)
        jp_msg_destroy(&s_fake.sent[i]);
    memset(&s_fake, 0, sizeof s_fake);
    memset(&s_kernel, 0, sizeof s_kernel);
    memset(&s_gw, 0, sizeof s_gw);
    s_gw.cfg.interrupt_grace_ms = 3000;
    s_kernel.gw = &s_gw;
    snprintf(s_kernel.session, sizeof s_kernel.session, "test-session");
}

/* Start code (with stdin_text, may be NULL) the way kg_execute does; the request is sent[0]. */
static kg_execution_t *s_start(s_seen_t *seen, const char *code, const char *stdin_text,
                               int timeout_ms)
{
    s_reset();
    *seen = (s_seen_t){0};
    kg_execute_opts_t opts = {.code = code,
                              .stdin_text = stdin_text,
                              .timeout_ms = timeout_ms,
                              .on_output = s_on_output,
                              .on_done = s_on_done,
                              .arg = seen};
    cb_error_t err = {0};
    kg_execution_t *x = kg_execute(&s_kernel, &opts, &err);
    CB_OK(x && s_fake.n_sent == 1 && strcmp(jp_msg_type(s_fake.sent[0]), "execute_request") == 0,
          "kg_execute sends one execute_request");
    return x;
}

/* A message from the kernel whose parent is the request that sent[which] is. */
static void s_deliver(kg_execution_t *x, jp_channel_t ch, const char *type,
                      const char *content_json, size_t which)
{
    json_error_t jerr;
    json_t *content = json_loads(content_json, JSON_ALLOW_NUL, &jerr);
    if (!content) {
        printf("# bad JSON in the test: %s\n", jerr.text);
        abort();
    }
    jp_msg_t *msg = jp_msg_new(type, "kernel-session", s_fake.sent[which]->header, content);
    kg_execution_on_message(x, ch, msg);
    jp_msg_destroy(&msg);
}

#define IOPUB(x, type, json) s_deliver((x), JP_CH_IOPUB, (type), (json), 0)
#define SHELL(x, type, json) s_deliver((x), JP_CH_SHELL, (type), (json), 0)
#define BUSY(x) IOPUB((x), "status", "{\"execution_state\": \"busy\"}")
#define IDLE(x) IOPUB((x), "status", "{\"execution_state\": \"idle\"}")
#define INPUT(x) IOPUB((x), "execute_input", "{\"code\": \"c\", \"execution_count\": 3}")
#define REPLY_OK(x) SHELL((x), "execute_reply", "{\"status\": \"ok\", \"execution_count\": 3}")

static const char *s_str(json_t *result, const char *key)
{
    return json_string_value(json_object_get(result, key));
}

/* ---- the cases ------------------------------------------------------------------------------ */

static void s_in_order(void)
{
    s_seen_t seen;
    kg_execution_t *x = s_start(&seen, "print('hi'); 42", NULL, 0);
    json_auto_t *req = json_deep_copy(s_fake.sent[0]->content);
    CB_EQ_STR(json_string_value(json_object_get(req, "code")), "print('hi'); 42",
              "the request carries the code");
    CB_OK(json_is_false(json_object_get(req, "stop_on_error")), "stop_on_error is off");
    CB_OK(json_is_false(json_object_get(req, "allow_stdin")),
          "no stdin offered: allow_stdin false");
    BUSY(x);
    INPUT(x);
    IOPUB(x, "stream", "{\"name\": \"stdout\", \"text\": \"hi\\n\"}");
    json_auto_t *snap = kg_execution_snapshot(x);
    CB_EQ_STR(s_str(snap, "status"), "running", "a snapshot while it runs");
    CB_EQ_STR(s_str(snap, "stdout"), "hi\n", "... holds the output so far");
    IOPUB(x, "execute_result",
          "{\"data\": {\"text/plain\": \"42\"}, \"metadata\": {}, \"execution_count\": 3}");
    REPLY_OK(x);
    CB_EQ_INT(seen.done, 0, "the reply alone does not end it");
    IDLE(x);
    CB_EQ_INT(seen.done, 1, "reply and idle end it, once");
    CB_EQ_INT(s_fake.finished, 1, "the kernel is told, once");
    CB_EQ_STR(s_str(seen.result, "status"), "ok", "status ok");
    CB_EQ_STR(s_str(seen.result, "stdout"), "hi\n", "stdout");
    CB_EQ_STR(s_str(seen.result, "stderr"), "", "stderr empty");
    CB_EQ_INT(json_integer_value(json_object_get(seen.result, "execution_count")), 3,
              "execution_count");
    json_t *results = json_object_get(seen.result, "results");
    CB_EQ_SIZE(json_array_size(results), 1, "one result");
    CB_OK(json_is_true(json_object_get(json_array_get(results, 0), "is_main_result")),
          "the main result");
    CB_EQ_STR(s_str(json_object_get(json_array_get(results, 0), "data"), "text/plain"), "42",
              "its data");
    CB_OK(json_is_null(json_object_get(seen.result, "error")), "no error");
    CB_EQ_STR(seen.kinds, "stream execute_result", "outputs streamed as they came");
    CB_EQ_SIZE(s_fake.n_sent, 1, "nothing else was sent");
    CB_EQ_SIZE(s_live_timers(), 0, "no timer left");
    json_decref(seen.result);
}

/* The reply first, outputs after it (iopub lags shell), then idle: nothing is lost. */
static void s_reply_before_outputs(void)
{
    s_seen_t seen;
    kg_execution_t *x = s_start(&seen, "x", NULL, 0);
    REPLY_OK(x);
    IOPUB(x, "stream", "{\"name\": \"stderr\", \"text\": \"late\"}");
    IOPUB(x, "display_data", "{\"data\": {\"text/plain\": \"d\"}, \"metadata\": {}}");
    CB_EQ_INT(seen.done, 0, "still running until idle");
    BUSY(x); /* out of order: busy after the reply */
    INPUT(x);
    IDLE(x);
    CB_EQ_INT(seen.done, 1, "ended by idle");
    CB_EQ_STR(s_str(seen.result, "stderr"), "late", "a stream after the reply is kept");
    CB_EQ_SIZE(json_array_size(json_object_get(seen.result, "results")), 1,
               "so is a display after it");
    CB_OK(json_is_false(json_object_get(json_array_get(json_object_get(seen.result, "results"), 0),
                                        "is_main_result")),
          "display_data is not the main result");
    json_decref(seen.result);
}

/* Idle first: not proof that no reply will come (another socket). A barrier goes out on shell,
 * once, however many idles come; the reply still ends it as ok. */
static void s_idle_before_reply(void)
{
    s_seen_t seen;
    kg_execution_t *x = s_start(&seen, "x", NULL, 0);
    BUSY(x);
    INPUT(x);
    IDLE(x);
    IDLE(x); /* a duplicate */
    CB_EQ_INT(seen.done, 0, "idle alone does not end it");
    CB_EQ_SIZE(s_fake.n_sent, 2, "one barrier for two idles");
    CB_EQ_STR(jp_msg_type(s_fake.sent[1]), "kernel_info_request",
              "the barrier is a kernel_info_request");
    CB_EQ_INT(s_fake.sent_ch[1], JP_CH_SHELL, "... on shell, behind the execute_request");
    CB_OK(kg_execution_owns(x, jp_msg_id(s_fake.sent[1])),
          "the execution owns the barrier's reply");
    REPLY_OK(x);
    CB_EQ_INT(seen.done, 1, "the reply ends it");
    CB_EQ_STR(s_str(seen.result, "status"), "ok", "status ok");
    json_decref(seen.result);
}

/* Idle, then the barrier's reply with no execute_reply before it: the kernel dropped the
 * request (an interrupt caught in its own code). Ended with the state kept. */
static void s_dropped_request(void)
{
    s_seen_t seen;
    kg_execution_t *x = s_start(&seen, "x", NULL, 0);
    BUSY(x);
    IDLE(x);
    CB_EQ_SIZE(s_fake.n_sent, 2, "a barrier was sent");
    s_deliver(x, JP_CH_SHELL, "kernel_info_reply", "{\"status\": \"ok\"}", 1);
    CB_EQ_INT(seen.done, 1, "the barrier's reply ends it");
    CB_EQ_STR(s_str(seen.result, "status"), "error", "status error (no reply says otherwise)");
    json_t *notes = json_object_get(seen.result, "notes");
    const char *note = json_string_value(json_array_get(notes, json_array_size(notes) - 1));
    CB_OK(note && strstr(note, "without a reply"),
          "a note says the kernel ended it without a reply");
    CB_EQ_INT(s_fake.restarts, 0, "no restart");
    json_decref(seen.result);
}

static void s_errors(void)
{
    s_seen_t seen;
    kg_execution_t *x = s_start(&seen, "1/0", NULL, 0);
    BUSY(x);
    INPUT(x);
    IOPUB(x, "error",
          "{\"ename\": \"ZeroDivisionError\", \"evalue\": \"division by zero\", \"traceback\": "
          "[\"tb\"]}");
    SHELL(x, "execute_reply",
          "{\"status\": \"error\", \"execution_count\": 4, \"ename\": \"Other\", "
          "\"evalue\": \"ignored\", \"traceback\": []}");
    IDLE(x);
    CB_EQ_STR(s_str(seen.result, "status"), "error", "status error");
    json_t *error = json_object_get(seen.result, "error");
    CB_EQ_STR(s_str(error, "ename"), "ZeroDivisionError", "the iopub error wins over the reply's");
    CB_EQ_STR(s_str(error, "evalue"), "division by zero", "its value");
    CB_EQ_INT(json_integer_value(json_object_get(seen.result, "execution_count")), 4,
              "count from the reply");
    json_decref(seen.result);

    /* Only the reply says error: its fields make the error. */
    x = s_start(&seen, "1/0", NULL, 0);
    IDLE(x);
    SHELL(x, "execute_reply",
          "{\"status\": \"error\", \"ename\": \"E\", \"evalue\": \"v\", \"traceback\": []}");
    CB_EQ_STR(s_str(json_object_get(seen.result, "error"), "ename"), "E",
              "an error from the reply alone");
    json_decref(seen.result);

    /* A reply without a status reads as error. */
    x = s_start(&seen, "x", NULL, 0);
    SHELL(x, "execute_reply", "{}");
    IDLE(x);
    CB_EQ_STR(s_str(seen.result, "status"), "error", "a reply without a status is an error");
    json_decref(seen.result);
}

static void s_outputs(void)
{
    s_seen_t seen;
    kg_execution_t *x = s_start(&seen, "x", NULL, 0);
    IOPUB(x, "stream", "{\"name\": \"stdout\", \"text\": \"a\\u0000b\"}");
    IOPUB(x, "stream", "{\"name\": \"stdout\", \"text\": \"c\"}");
    IOPUB(x, "stream",
          "{\"name\": \"stdout\", \"text\": \"c\"}");          /* a duplicate is just more output */
    IOPUB(x, "stream", "{\"name\": \"stdout\", \"text\": 5}"); /* not text: ignored */
    IOPUB(x, "display_data",
          "{\"data\": {\"text/plain\": \"v1\"}, \"metadata\": {}, "
          "\"transient\": {\"display_id\": \"d1\"}}");
    IOPUB(x, "update_display_data",
          "{\"data\": {\"text/plain\": \"v2\"}, \"metadata\": {}, "
          "\"transient\": {\"display_id\": \"d1\"}}");
    IOPUB(x, "update_display_data",
          "{\"data\": {\"text/plain\": \"other\"}, \"metadata\": {}, "
          "\"transient\": {\"display_id\": \"d2\"}}");
    REPLY_OK(x);
    IDLE(x);
    CB_EQ_STR(s_str(seen.result, "stdout"),
              "a\xEF\xBF\xBD"
              "bcc",
              "a NUL in a stream becomes U+FFFD");
    json_t *results = json_object_get(seen.result, "results");
    CB_EQ_SIZE(json_array_size(results), 1, "updates replace, they do not add");
    CB_EQ_STR(s_str(json_object_get(json_array_get(results, 0), "data"), "text/plain"), "v2",
              "update_display_data rewrites by display_id");
    json_decref(seen.result);

    x = s_start(&seen, "x", NULL, 0);
    IOPUB(x, "stream", "{\"name\": \"stdout\", \"text\": \"old\"}");
    IOPUB(x, "clear_output", "{\"wait\": true}");
    IOPUB(x, "stream", "{\"name\": \"stdout\", \"text\": \"new\"}");
    IOPUB(x, "stream", "{\"name\": \"stderr\", \"text\": \"e\"}");
    IOPUB(x, "clear_output", "{\"wait\": false}");
    IOPUB(x, "stream", "{\"name\": \"stdout\", \"text\": \"last\"}");
    REPLY_OK(x);
    IDLE(x);
    CB_EQ_STR(s_str(seen.result, "stdout"), "last",
              "clear_output clears, wait=True at the next output");
    CB_EQ_STR(s_str(seen.result, "stderr"), "", "both streams");
    CB_EQ_STR(seen.kinds, "stream clear_output stream stream clear_output stream",
              "every output kind streamed");
    json_decref(seen.result);
}

static void s_stdin(void)
{
    s_seen_t seen;
    kg_execution_t *x = s_start(&seen, "input(); input(); input()", "first\nsecond", 0);
    CB_OK(json_is_true(json_object_get(s_fake.sent[0]->content, "allow_stdin")),
          "stdin offered: allow_stdin");
    INPUT(x);
    s_deliver(x, JP_CH_STDIN, "input_request", "{\"prompt\": \"? \"}", 0);
    s_deliver(x, JP_CH_STDIN, "input_request", "{\"prompt\": \"? \"}", 0);
    CB_EQ_SIZE(s_fake.n_sent, 3, "two input_replies");
    CB_EQ_STR(jp_msg_type(s_fake.sent[1]), "input_reply", "an input_reply");
    CB_EQ_INT(s_fake.sent_ch[1], JP_CH_STDIN, "... on stdin");
    CB_EQ_STR(s_str(s_fake.sent[1]->content, "value"), "first", "the first line");
    CB_EQ_STR(s_str(s_fake.sent[2]->content, "value"), "second", "the second line");
    s_deliver(x, JP_CH_STDIN, "input_request", "{\"prompt\": \"more? \"}", 0);
    CB_EQ_SIZE(s_fake.n_sent, 3, "no answer past the last line");
    CB_EQ_INT(s_kernel.interrupts, 1, "the kernel is interrupted instead");
    IOPUB(x, "error", "{\"ename\": \"KeyboardInterrupt\", \"evalue\": \"\", \"traceback\": []}");
    SHELL(x, "execute_reply", "{\"status\": \"error\"}");
    IDLE(x);
    CB_EQ_STR(s_str(seen.result, "status"), "error", "status error");
    CB_EQ_STR(s_str(json_object_get(seen.result, "error"), "ename"), "StdinNotProvided",
              "the error says stdin ran out");
    CB_OK(strstr(s_str(json_object_get(seen.result, "error"), "evalue"), "more? "),
          "naming the prompt");
    CB_EQ_STR(seen.kinds, "input_request input_request input_request error",
              "input requests are outputs too");
    json_decref(seen.result);
}

/* Cancel before execute_input: the interrupt waits for it (ipykernel ignores SIGINT between
 * requests); after it, the cell's own KeyboardInterrupt and the reply end it as cancelled. */
static void s_cancel(void)
{
    s_seen_t seen;
    kg_execution_t *x = s_start(&seen, "while True: pass", NULL, 0);
    cb_error_t err = {0};
    BUSY(x);
    CB_EQ_INT(kg_execution_cancel(x, &err), 0, "cancel while running");
    CB_EQ_INT(s_kernel.interrupts, 0, "no interrupt before execute_input");
    CB_EQ_INT(kg_execution_cancel(x, &err), 0, "a second cancel is harmless");
    INPUT(x);
    CB_EQ_INT(s_kernel.interrupts, 1, "the interrupt goes out with execute_input");
    INPUT(x); /* a duplicate does not interrupt again */
    CB_EQ_INT(s_kernel.interrupts, 1, "once");
    IOPUB(x, "error", "{\"ename\": \"KeyboardInterrupt\", \"evalue\": \"\", \"traceback\": []}");
    SHELL(x, "execute_reply", "{\"status\": \"error\"}");
    IDLE(x);
    CB_EQ_STR(s_str(seen.result, "status"), "cancelled", "the forced status wins over the reply's");
    CB_EQ_SIZE(s_live_timers(), 0, "grace and resend timers stopped");
    CB_EQ_INT(s_fake.restarts, 0, "no restart");
    json_decref(seen.result);
}

/* A timeout whose interrupt never takes: after the grace, a restart, status timeout. Timers
 * are fired oldest first: the timeout (started with the request), then the grace (started
 * before the resend). */
static void s_timeout(void)
{
    s_seen_t seen;
    kg_execution_t *x = s_start(&seen, "while True: pass", NULL, 1000);
    BUSY(x);
    INPUT(x);
    CB_EQ_SIZE(s_live_timers(), 1, "the timeout timer runs");
    CB_OK(s_fire_oldest(), "time passes: the timeout fires");
    CB_EQ_INT(s_kernel.interrupts, 1, "it interrupts");
    CB_EQ_SIZE(s_live_timers(), 2, "a grace timer and a resend timer");
    CB_EQ_INT(seen.done, 0, "still waiting for the code to stop");
    CB_OK(s_fire_oldest(), "the grace period ends");
    CB_EQ_INT(seen.done, 1, "the grace ends it");
    CB_EQ_STR(s_str(seen.result, "status"), "timeout", "status timeout");
    CB_EQ_INT(s_fake.restarts, 1, "the kernel is restarted");
    CB_OK(json_is_true(json_object_get(seen.result, "kernel_restarted")), "the result says so");
    CB_EQ_SIZE(s_live_timers(), 0, "no timer left");
    json_decref(seen.result);
}

static void s_state_lost(void)
{
    s_seen_t seen;
    s_reset();
    s_kernel.state_lost_reason = cb_strdup_printf("the kernel died and was restarted");
    s_kernel.gw = &s_gw;
    seen = (s_seen_t){0};
    kg_execute_opts_t opts = {.code = "x", .on_done = s_on_done, .arg = &seen};
    kg_execution_t *x = kg_execute(&s_kernel, &opts, NULL);
    REPLY_OK(x);
    IDLE(x);
    CB_OK(json_is_true(json_object_get(seen.result, "kernel_restarted")),
          "the next execution after a restart says so");
    const char *note = json_string_value(json_array_get(json_object_get(seen.result, "notes"), 0));
    CB_OK(note && strstr(note, "the kernel died and was restarted"), "with the reason in a note");
    CB_OK(!s_kernel.state_lost_reason, "the reason is taken once");
    json_decref(seen.result);
}

int main(void)
{
    cb_log_set_level(CB_LOG_OFF);
    s_in_order();
    s_reply_before_outputs();
    s_idle_before_reply();
    s_dropped_request();
    s_errors();
    s_outputs();
    s_stdin();
    s_cancel();
    s_timeout();
    s_state_lost();
    s_reset();
    return cb_tap_done();
}
