/* test_loop.c: unit test of the gateway loop's two lifetime rules (kg.h, beside kg_gateway_loop;
 * TAP output).
 *
 * Why: czmq 4.2.1's zloop runs a timer that was ended earlier in the same pass, and once
 * zloop_start has returned it frees a timer that ends itself before writing to it. Two server
 * crashes came from that (a stale kernel ready timer; an MCP progress timer firing on a call freed
 * by an interrupt's grace timer in the same pass). The gateway's own timer layer and deferred-call
 * queue must keep libuv's promises whatever zloop does.
 *
 * How: a real gateway (no sandboxes, no kernels) and its loop. Timers that must share one pass
 * are made due before the loop runs (the test blocks for a moment first), so "the same pass" does
 * not depend on timing; every wait is kg_gateway_run_until on a flag with a deadline (a callback
 * returns -1 once it set the flag, as kg_gateway_handler_result does in the engine). The same
 * cancellation is also tried on a bare zloop, and what zloop did is printed as a diagnostic (it
 * is czmq's behaviour, not ours, so it is not a pass/fail point). */
#include <string.h>
#include <unistd.h>

#include "cb/cleanup.h"
#include "cb/tap.h"
#include "cb/util.h"
#include "kg/gateway.h"

#define DEADLINE_MS 10000

static kg_gateway_t *s_gateway(const char *dir)
{
    kg_config_t cfg = {.no_sandbox = true, .runtime_dir = dir};
    cb_error_t err = {0};
    kg_gateway_t *gw = kg_gateway_new(&cfg, &err);
    if (!gw)
        CB_DIAG("kg_gateway_new: %s", err.msg);
    return gw;
}

/* A few milliseconds pass with the loop not running, so that timers due by then share a pass. */
static void s_let_due(int ms) { usleep((useconds_t)ms * 1000); }

/* ---- rule 1: a stopped timer never runs ------------------------------------------------------ */

typedef struct {
    kg_gateway_t *gw;
    int first, second, third; /* timer ids */
    int first_runs, second_runs, third_runs;
    volatile int done;
    char order[16];
} pass_t;

static void s_mark(pass_t *p, char c)
{
    size_t n = strlen(p->order);
    if (n + 1 < sizeof p->order)
        p->order[n] = c;
}

static int s_on_first(zloop_t *loop, int id, void *arg)
{
    pass_t *p = arg;
    p->first_runs++;
    s_mark(p, 'a');
    kg_timer_stop(p->gw, &p->second); /* due in this same pass, later in it */
    return 0;
}

static int s_on_second(zloop_t *loop, int id, void *arg)
{
    pass_t *p = arg;
    p->second_runs++;
    s_mark(p, 'b');
    return 0;
}

static int s_on_third(zloop_t *loop, int id, void *arg)
{
    pass_t *p = arg;
    p->third_runs++;
    s_mark(p, 'c');
    p->done = 1;
    return p->done ? -1 : 0;
}

static void test_stopped_earlier_in_the_pass(kg_gateway_t *gw)
{
    pass_t p = {.gw = gw};
    p.first = kg_timer_start(gw, 5, 1, s_on_first, &p);
    p.second = kg_timer_start(gw, 5, 1, s_on_second, &p);
    p.third = kg_timer_start(gw, 5, 1, s_on_third, &p);
    CB_OK(p.first > 0 && p.second > p.first && p.third > p.second,
          "kg_timer_start gives rising positive ids");
    s_let_due(30);
    CB_OK(kg_gateway_run_until(gw, &p.done, DEADLINE_MS) == 0, "the pass ran");
    CB_OK(p.first_runs == 1 && p.third_runs == 1, "the other timers of the pass ran once each");
    CB_OK(p.second_runs == 0, "a timer stopped by an earlier timer of the same pass did not run");
    CB_OK(strcmp(p.order, "ac") == 0, "due timers run earliest first (ran: %s)", p.order);
    CB_OK(p.second == -1, "kg_timer_stop sets the id to -1");
}

/* The same on a bare zloop, for the record. */
static int s_z_first(zloop_t *loop, int id, void *arg)
{
    pass_t *p = arg;
    p->first_runs++;
    zloop_timer_end(loop, p->second);
    return 0;
}

static int s_z_second(zloop_t *loop, int id, void *arg)
{
    ((pass_t *)arg)->second_runs++;
    return 0;
}

static int s_z_third(zloop_t *loop, int id, void *arg) { return -1; }

static void diag_zloop(void)
{
    zloop_t *loop = zloop_new();
    pass_t p = {0};
    zloop_timer(loop, 5, 1, s_z_first, &p);
    p.second = zloop_timer(loop, 5, 1, s_z_second, &p);
    zloop_timer(loop, 5, 1, s_z_third, &p);
    s_let_due(30);
    zloop_start(loop);
    CB_DIAG("czmq's zloop, for comparison: a timer ended by an earlier timer of its pass ran %d "
            "time(s)",
            p.second_runs);
    zloop_destroy(&loop);
}

typedef struct {
    kg_gateway_t *gw;
    int repeat, once;
    int repeat_runs, once_runs, later_runs;
    volatile int done;
} self_t;

static int s_on_repeat(zloop_t *loop, int id, void *arg)
{
    self_t *s = arg;
    s->repeat_runs++;
    CB_OK(id == s->repeat, "the callback is given its own id");
    kg_timer_stop(s->gw, &s->repeat); /* stop itself, inside its own callback */
    return 0;
}

static int s_on_once(zloop_t *loop, int id, void *arg)
{
    self_t *s = arg;
    s->once_runs++;
    int mine = id;
    kg_timer_stop(s->gw, &mine); /* a one-shot is over once it runs: a no-op */
    kg_timer_stop(s->gw, &s->once);
    return 0;
}

static int s_on_later(zloop_t *loop, int id, void *arg)
{
    self_t *s = arg;
    /* Several periods of the repeating timer have gone by: it must not have run again. */
    if (++s->later_runs == 1)
        s->done = 1;
    return s->done ? -1 : 0;
}

static void test_stopped_in_its_own_callback(kg_gateway_t *gw)
{
    self_t s = {.gw = gw};
    s.repeat = kg_timer_start(gw, 2, 0, s_on_repeat, &s);
    s.once = kg_timer_start(gw, 2, 1, s_on_once, &s);
    int later = kg_timer_start(gw, 100, 1, s_on_later, &s); /* 50 periods of the repeating one */
    CB_OK(kg_gateway_run_until(gw, &s.done, DEADLINE_MS) == 0,
          "the loop ran past the repeating timer's periods");
    CB_OK(s.repeat_runs == 1, "a repeating timer that stopped itself ran once (ran %d)",
          s.repeat_runs);
    CB_OK(s.once_runs == 1, "a one-shot timer that stopped itself ran once");
    kg_timer_stop(gw, &later); /* already over: a no-op */
    CB_OK(later == -1, "stopping a timer that is over is harmless");
}

/* A timer started inside a pass, even at 0 ms, waits for a later pass. */
typedef struct {
    kg_gateway_t *gw;
    int started_in_pass, zero_runs;
    bool zero_ran_in_pass;
    bool in_pass;
    volatile int done;
} zero_t;

static int s_on_zero(zloop_t *loop, int id, void *arg)
{
    zero_t *z = arg;
    z->zero_runs++;
    z->zero_ran_in_pass = z->in_pass;
    z->done = 1;
    return z->done ? -1 : 0;
}

static int s_on_starter(zloop_t *loop, int id, void *arg)
{
    zero_t *z = arg;
    z->in_pass = true;
    z->started_in_pass = kg_timer_start(z->gw, 0, 1, s_on_zero, z);
    return 0;
}

static int s_on_starter_after(zloop_t *loop, int id, void *arg)
{
    ((zero_t *)arg)->in_pass = false; /* the last timer of the starter's pass */
    return 0;
}

static void test_started_in_a_pass(kg_gateway_t *gw)
{
    zero_t z = {.gw = gw};
    kg_timer_start(gw, 1, 1, s_on_starter, &z);
    kg_timer_start(gw, 1, 1, s_on_starter_after, &z);
    s_let_due(20);
    CB_OK(kg_gateway_run_until(gw, &z.done, DEADLINE_MS) == 0 && z.zero_runs == 1,
          "a 0 ms timer started in a pass ran");
    CB_OK(!z.zero_ran_in_pass, "a timer started in a pass ran in a later pass, not in that one");
}

/* ---- rule 2: deferred calls --------------------------------------------------------------- */

typedef struct {
    kg_gateway_t *gw;
    char log[32];
    bool seen_in_pass; /* a deferred call ran while the pass that queued it was under way */
    bool in_pass;
    volatile int done;
} defer_t;

static void s_log(defer_t *d, char c)
{
    size_t n = strlen(d->log);
    if (n + 1 < sizeof d->log)
        d->log[n] = c;
}

static void s_deferred_last(kg_gateway_t *gw, void *arg)
{
    defer_t *d = arg;
    s_log(d, '4');
    d->done = 1;
}

static void s_deferred(kg_gateway_t *gw, void *arg);
static void s_deferred_dropped(kg_gateway_t *gw, void *arg) { s_log(arg, 'X'); }

typedef struct {
    defer_t *d;
    char mark;
} step_t;

static void s_deferred(kg_gateway_t *gw, void *arg)
{
    step_t *st = arg;
    defer_t *d = st->d;
    if (d->in_pass)
        d->seen_in_pass = true;
    s_log(d, st->mark);
    if (st->mark == '3')
        kg_gateway_defer(gw, s_deferred_last, d); /* queued by a drain: runs on the next one */
    else if (st->mark == '1')
        CB_OK(strchr(d->log, '4') == NULL, "a call queued during a drain waits for the next drain");
}

static step_t s_steps[3];

static int s_on_queue(zloop_t *loop, int id, void *arg)
{
    defer_t *d = arg;
    d->in_pass = true;
    for (int i = 0; i < 3; i++) {
        s_steps[i] = (step_t){d, (char)('1' + i)};
        kg_gateway_defer(d->gw, s_deferred, &s_steps[i]);
    }
    kg_gateway_defer(d->gw, s_deferred_dropped, d);
    kg_gateway_defer_cancel(d->gw, s_deferred_dropped, d); /* its owner went first */
    return 0;
}

static int s_on_check(zloop_t *loop, int id, void *arg)
{
    defer_t *d = arg;
    CB_OK(d->log[0] == '\0', "no deferred call ran inside the timer pass that queued it");
    d->in_pass = false;
    return 0;
}

static void test_deferred_calls(kg_gateway_t *gw)
{
    defer_t d = {.gw = gw};
    kg_timer_start(gw, 1, 1, s_on_queue, &d);
    kg_timer_start(gw, 1, 1, s_on_check, &d);
    s_let_due(20);
    CB_OK(kg_gateway_run_until(gw, &d.done, DEADLINE_MS) == 0, "the deferred calls ran");
    CB_OK(strcmp(d.log, "1234") == 0,
          "in the order they were queued, a cancelled one dropped (ran: %s)", d.log);
    CB_OK(!d.seen_in_pass, "after the pass that queued them");
}

/* ---- freeing from a reader callback ---------------------------------------------------------- */

typedef struct obj obj_t;
typedef struct {
    kg_gateway_t *gw;
    obj_t *objs[2];
    int reads, freed;
    volatile int done;
} readers_t;

struct obj {
    readers_t *r;
    zsock_t *in, *out;
    int timer; /* would run on the object if it were still due */
    int reads;
};

static void s_obj_free(kg_gateway_t *gw, void *arg)
{
    obj_t *o = arg;
    o->r->freed++;
    o->r->done = 1;
    zsock_destroy(&o->in);
    zsock_destroy(&o->out);
    free(o);
}

/* End the object's registrations now, free it on a fresh turn. */
static void s_obj_end(obj_t *o)
{
    zloop_reader_end(kg_gateway_loop(o->r->gw), o->in);
    kg_timer_stop(o->r->gw, &o->timer);
    kg_gateway_defer(o->r->gw, s_obj_free, o);
}

static int s_on_obj_timer(zloop_t *loop, int id, void *arg)
{
    obj_t *o = arg;
    o->reads += 100; /* a freed object here is ASan's heap-use-after-free */
    return 0;
}

static int s_on_obj_read(zloop_t *loop, zsock_t *sock, void *arg)
{
    obj_t *o = arg;
    readers_t *r = o->r;
    char *text = zstr_recv(sock);
    zstr_free(&text);
    o->reads++;
    r->reads++;
    /* Whichever reader runs first ends both objects, its own included, from inside its callback. */
    obj_t *mine = o, *other = r->objs[0] == o ? r->objs[1] : r->objs[0];
    r->objs[0] = r->objs[1] = NULL;
    if (other)
        s_obj_end(other);
    if (mine && other)
        s_obj_end(mine);
    CB_OK(r->freed == 0, "nothing is freed inside the reader callback that ended it");
    return r->done ? -1 : 0;
}

static obj_t *s_obj_new(readers_t *r, int n)
{
    obj_t *o = calloc(1, sizeof *o);
    char bind[64], connect[64];
    snprintf(bind, sizeof bind, "@inproc://test-loop-%d", n);
    snprintf(connect, sizeof connect, ">inproc://test-loop-%d", n);
    o->r = r;
    o->in = zsock_new_pair(bind);
    o->out = zsock_new_pair(connect);
    zloop_reader(kg_gateway_loop(r->gw), o->in, s_on_obj_read, o);
    o->timer = kg_timer_start(r->gw, 5, 0, s_on_obj_timer, o);
    zstr_send(o->out, "ping");
    return o;
}

static void test_free_from_a_reader(kg_gateway_t *gw)
{
    readers_t r = {.gw = gw};
    r.objs[0] = s_obj_new(&r, 1);
    r.objs[1] = s_obj_new(&r, 2);
    s_let_due(30); /* both sockets readable and both objects' timers due before the loop runs */
    CB_OK(kg_gateway_run_until(gw, &r.done, DEADLINE_MS) == 0, "the deferred frees ran");
    CB_OK(r.reads == 1,
          "a reader ended by another reader of the same pass was not called (reads: %d)", r.reads);
    CB_OK(r.freed == 2, "both objects were freed, on a later turn");
}

int main(void)
{
    char dir[] = "/tmp/cellblock-test-loop-XXXXXX";
    if (!mkdtemp(dir))
        CB_SKIP_ALL("cannot make a temporary directory");
    kg_gateway_t *gw = s_gateway(dir);
    CB_OK(gw != NULL, "a gateway");
    if (gw) {
        test_stopped_earlier_in_the_pass(gw);
        test_stopped_in_its_own_callback(gw);
        test_started_in_a_pass(gw);
        test_deferred_calls(gw);
        test_free_from_a_reader(gw);
        kg_gateway_destroy(&gw);
    }
    diag_zloop();
    cb_rm_rf(dir, NULL);
    return cb_tap_done();
}
