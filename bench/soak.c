/* soak.c (bench_soak): many sandboxes executing cells for a long time, every result checked.
 *
 * Not a benchmark with a reference and not a test: a run that finds what only shows after
 * thousands of executions on many kernels at once (leaks in the gateway, kernels that die or
 * restart, wrong or lost results, memory that creeps up). Neither ctest nor bench/run's default
 * set runs it; `bench/run --soak` does, or run it by hand.
 *
 * --sandboxes sandboxes (template python, real sandboxes, lifetime unlimited) are opened, at
 * most --start-concurrency starting at a time (kernel starts are CPU-bound), each running a first
 * cell as it comes up. Then, for --duration-s, exactly one execution is in flight per sandbox:
 * each on_done checks the result (status ok, the expected stdout, no restart), records the
 * latency (kg_execute to on_done) and queues the next cell. Cells take turns: a tiny arithmetic
 * cell, a cell that builds a 1 MB string and prints its length, and every 10th a cell that
 * allocates 50 MB (bytes written, so the pages are real) and frees it.
 *
 * Every --progress-s a line: executions so far, errors, p50/p99 latency over the interval, the
 * cgroup memory of all sandboxes (kg_sandbox_info usage.memory_bytes) and the mean per sandbox,
 * and this process's RSS (the gateway's). At the end: executions, errors by kind, memory per
 * sandbox, latency p50/p90/p99/max, the gateway's CPU and RSS growth, fleet_metrics; on
 * stderr, and as one JSON object on stdout (or in --json FILE).
 *
 * Exit status: 0 when nothing went wrong, 1 when anything did (any error kind counted), 2 on bad
 * usage. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "cb/cleanup.h"
#include "cb/util.h"
#include "fleet/fleet.h"
#include "kg/gateway.h"
#include "kg/sandbox.h"
#include "kg/kernel.h"
#include "kg/execution.h"
#include "proc.h"
#include "stats.h"

#define S_MiB (1024.0 * 1024.0)
#define S_DRAIN_MS 120000 /* for the executions in flight when the time is up */
#define S_ERRORS_SHOWN 20 /* error messages printed in full; the rest are only counted */

/* The cells, and what each must print. */
typedef enum { S_CELL_SMALL = 0, S_CELL_STRING, S_CELL_ALLOC, S_CELLS } s_cell_t;
static const struct {
    const char *name;
    const char *code;
    const char *stdout_;
} s_cells[S_CELLS] = {
    [S_CELL_SMALL] = {"arithmetic", "print(6 * 7)", "42\n"},
    [S_CELL_STRING] = {"1 MB string", "s = 'x' * (1 << 20)\nprint(len(s))", "1048576\n"},
    [S_CELL_ALLOC] = {"50 MB allocation", "b = b'x' * (50 << 20)\nprint(len(b))\ndel b",
                      "52428800\n"},
};

/* What can go wrong, one counter each; any nonzero makes the exit status 1. */
#define S_ERROR_MAP(X)                                                                             \
    X(STATUS, "non_ok_status", "executions whose status was not ok")                               \
    X(OUTPUT, "wrong_output", "executions with status ok but the wrong stdout")                    \
    X(RESTARTED, "result_kernel_restarted", "results that say the kernel restarted")               \
    X(RESTART, "kernel_restarts", "kernel restarts (KG_EVENT_RESTARTING)")                         \
    X(DIED, "kernel_deaths", "kernel deaths (KG_EVENT_DIED)")                                      \
    X(HUNG, "kernel_hangs", "kernels that missed heartbeats (KG_EVENT_HUNG)")                      \
    X(DEAD, "kernels_dead", "kernels given up for good (KG_EVENT_DEAD)")                           \
    X(ENDED, "sandboxes_ended", "sandboxes the gateway ended on its own (died, failed, ...)")      \
    X(QUEUE, "queue_failures", "kg_execute calls that failed")                                     \
    X(START, "start_failures", "sandboxes that could not open or run their first cell")            \
    X(LOST, "not_finished", "executions still in flight when the drain time ran out")

typedef enum {
#define S_ENUM(id, key, what) S_ERR_##id,
    S_ERROR_MAP(S_ENUM)
#undef S_ENUM
        S_ERRORS
} s_error_t;

static const struct {
    const char *key;
    const char *what;
} s_errors[S_ERRORS] = {
#define S_ROW(id, key, what) [S_ERR_##id] = {key, what},
    S_ERROR_MAP(S_ROW)
#undef S_ROW
};

typedef struct {
    int sandboxes;
    int duration_s;
    int start_concurrency;
    int progress_s;
    int pool;
    int exec_timeout_ms;
    const char *json_path;
} s_args_t;

typedef struct s_soak s_soak_t;

/* The statuses other than ok a result may have; "other" last, for anything else. */
static const char *const s_statuses[] = {"error",       "timeout", "cancelled",
                                         "kernel_died", "aborted", "other"};
#define S_STATUSES (sizeof s_statuses / sizeof s_statuses[0])

/* One sandbox and its one execution in flight. */
typedef struct {
    s_soak_t *soak;
    int index;
    kg_sandbox_t *sb;    /* NULL once the gateway ended it */
    kg_kernel_t *kernel; /* its main kernel; NULL once it stopped or was given up */
    bool ready;          /* its first cell came back right */
    bool start_failed;
    bool inflight;
    uint64_t count;     /* executions queued on it */
    s_cell_t cell;      /* of the one in flight */
    int64_t started_us; /* when the one in flight was queued */
    int64_t opened_us;
    double max_memory_mib;
    char last_stderr[256];
} s_slot_t;

/* A growable array of latencies in ms. */
typedef struct {
    double *v;
    size_t n, cap;
} s_vec_t;

struct s_soak {
    const s_args_t *args;
    kg_gateway_t *gw;
    s_slot_t *slots;
    bool cycling;      /* queue the next cell after each result */
    volatile int wake; /* a first result came in (the opening phase waits on it) */
    int inflight;
    uint64_t executions; /* results of the soak phase */
    uint64_t interval_executions;
    uint64_t errors[S_ERRORS];
    uint64_t statuses_not_ok[S_STATUSES];
    int errors_shown;
    s_vec_t all, interval;
    s_vec_t start_ms; /* open to the first cell's result */
};

static int s_vec_push(s_vec_t *v, double x)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 4096;
        double *p = realloc(v->v, cap * sizeof *p);
        if (!p)
            return -1;
        v->v = p;
        v->cap = cap;
    }
    v->v[v->n++] = x;
    return 0;
}

static double s_ms(int64_t from_us, int64_t to_us) { return (double)(to_us - from_us) / 1000.0; }

/* Count an error; the first S_ERRORS_SHOWN are printed with their detail. */
__attribute__((format(printf, 4, 5))) static void
s_error(s_soak_t *soak, s_error_t kind, const s_slot_t *slot, const char *fmt, ...)
{
    soak->errors[kind]++;
    if (soak->errors_shown++ >= S_ERRORS_SHOWN) {
        if (soak->errors_shown == S_ERRORS_SHOWN + 1)
            fprintf(stderr, "bench_soak: more errors follow; only counted from now on\n");
        return;
    }
    char text[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    fprintf(stderr, "bench_soak: ERROR %s: sandbox %d: %s%s%s\n", s_errors[kind].key,
            slot ? slot->index : -1, text,
            slot && slot->last_stderr[0] ? " (its kernel's last stderr line: " : "",
            slot && slot->last_stderr[0] ? slot->last_stderr : "");
}

/* ---- callbacks ---------------------------------------------------------------------------- */

static void s_on_done(kg_execution_t *x, json_t *result, void *arg);

/* Queue the slot's next cell. */
static void s_queue(s_slot_t *slot)
{
    s_soak_t *soak = slot->soak;
    slot->cell = slot->count % 10 == 9 ? S_CELL_ALLOC : (s_cell_t)(slot->count % 2);
    kg_execute_opts_t opts = {.code = s_cells[slot->cell].code,
                              .timeout_ms = soak->args->exec_timeout_ms,
                              .on_done = s_on_done,
                              .arg = slot};
    cb_error_t err = {0};
    slot->started_us = cb_now_us();
    if (!kg_execute(slot->kernel, &opts, &err)) {
        s_error(soak, slot->ready ? S_ERR_QUEUE : S_ERR_START, slot, "kg_execute: %s", err.msg);
        slot->start_failed |= !slot->ready;
        return;
    }
    slot->count++;
    slot->inflight = true;
    soak->inflight++;
}

static void s_on_done(kg_execution_t *x, json_t *result, void *arg)
{
    s_slot_t *slot = arg;
    s_soak_t *soak = slot->soak;
    int64_t now = cb_now_us();
    double ms = s_ms(slot->started_us, now);
    slot->inflight = false;
    soak->inflight--;
    const char *status = json_string_value(json_object_get(result, "status"));
    const char *out = json_string_value(json_object_get(result, "stdout"));
    const char *expect = s_cells[slot->cell].stdout_;
    bool ok = status && strcmp(status, "ok") == 0;
    bool right = ok && out && strcmp(out, expect) == 0;
    if (!slot->ready) {
        /* The first cell: opening a sandbox until this result. */
        soak->wake = 1;
        if (!right) {
            s_error(soak, S_ERR_START, slot, "first cell: status %s, stdout '%.80s'",
                    status ? status : "(none)", out ? out : "");
            slot->start_failed = true;
            return;
        }
        slot->ready = true;
        s_vec_push(&soak->start_ms, s_ms(slot->opened_us, now));
        return;
    }
    soak->executions++;
    soak->interval_executions++;
    if (s_vec_push(&soak->all, ms) < 0 || s_vec_push(&soak->interval, ms) < 0)
        fprintf(stderr, "bench_soak: out of memory for latencies\n");
    if (!ok) {
        size_t i = 0;
        while (i < S_STATUSES - 1 && strcmp(s_statuses[i], status ? status : "") != 0)
            i++;
        soak->statuses_not_ok[i]++;
        json_t *error = json_object_get(result, "error");
        json_t *notes = json_object_get(result, "notes");
        s_error(soak, S_ERR_STATUS, slot, "%s cell: status %s: %s: %s; notes: %s",
                s_cells[slot->cell].name, status ? status : "(none)",
                json_string_value(json_object_get(error, "ename")) ?: "-",
                json_string_value(json_object_get(error, "evalue")) ?: "-",
                json_string_value(json_array_get(notes, 0)) ?: "-");
    } else if (!right) {
        s_error(soak, S_ERR_OUTPUT, slot, "%s cell: stdout '%.80s', expected '%.80s'",
                s_cells[slot->cell].name, out ? out : "(none)", expect);
    }
    if (json_is_true(json_object_get(result, "kernel_restarted")))
        s_error(soak, S_ERR_RESTARTED, slot, "result says the kernel restarted");
    if (soak->cycling && slot->sb && slot->kernel)
        s_queue(slot);
}

static void s_on_event(kg_kernel_t *kernel, kg_kernel_event_t event, const char *detail, void *arg)
{
    s_slot_t *slot = arg;
    s_soak_t *soak = slot->soak;
    const char *d = detail ? detail : "";
    switch (event) {
    case KG_EVENT_STDERR: snprintf(slot->last_stderr, sizeof slot->last_stderr, "%s", d); break;
    case KG_EVENT_RESTARTING: s_error(soak, S_ERR_RESTART, slot, "kernel restarting: %s", d); break;
    case KG_EVENT_DIED: s_error(soak, S_ERR_DIED, slot, "kernel died: %s", d); break;
    case KG_EVENT_HUNG: s_error(soak, S_ERR_HUNG, slot, "kernel hung: %s", d); break;
    case KG_EVENT_DEAD:
        s_error(soak, S_ERR_DEAD, slot, "kernel given up: %s", d);
        slot->kernel = NULL;
        break;
    case KG_EVENT_STOPPED: slot->kernel = NULL; break;
    default: break;
    }
}

static void s_on_end(kg_sandbox_t *sb, fleet_end_t why, const char *detail, void *arg)
{
    s_slot_t *slot = arg;
    s_error(slot->soak, S_ERR_ENDED, slot, "the gateway ended the sandbox: %s", detail);
    slot->sb = NULL; /* freed right after this returns, its kernel with it */
    slot->kernel = NULL;
    slot->soak->wake = 1;
}

/* ---- memory ------------------------------------------------------------------------------- */

typedef struct {
    double total_mib, mean_mib, max_mib, peak_max_mib;
    uint64_t oom_kills;
    int live;
} s_memory_t;

/* The cgroup memory of every live sandbox now; each slot's max_memory_mib is updated. */
static s_memory_t s_memory(s_soak_t *soak)
{
    s_memory_t m = {0};
    for (int i = 0; i < soak->args->sandboxes; i++) {
        s_slot_t *slot = &soak->slots[i];
        if (!slot->sb)
            continue;
        json_auto_t *info = kg_sandbox_info(slot->sb);
        json_t *usage = json_object_get(info, "usage");
        double mib = (double)json_integer_value(json_object_get(usage, "memory_bytes")) / S_MiB;
        double peak =
            (double)json_integer_value(json_object_get(usage, "memory_peak_bytes")) / S_MiB;
        m.oom_kills += (uint64_t)json_integer_value(json_object_get(usage, "oom_kills"));
        m.total_mib += mib;
        m.max_mib = mib > m.max_mib ? mib : m.max_mib;
        m.peak_max_mib = peak > m.peak_max_mib ? peak : m.peak_max_mib;
        slot->max_memory_mib = mib > slot->max_memory_mib ? mib : slot->max_memory_mib;
        m.live++;
    }
    m.mean_mib = m.live ? m.total_mib / m.live : 0;
    return m;
}

static uint64_t s_error_total(const s_soak_t *soak)
{
    uint64_t n = 0;
    for (int i = 0; i < S_ERRORS; i++)
        n += soak->errors[i];
    return n;
}

static double s_cpu_seconds(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) < 0)
        return NAN;
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

/* ---- the phases --------------------------------------------------------------------------- */

/* Open one sandbox and queue its first cell. */
static void s_open(s_soak_t *soak, s_slot_t *slot)
{
    fleet_sandbox_opts_t opts = {.template_name = "python",
                                 .timeout_s = -1, /* lifetimes must not end the soak */
                                 .no_pool = soak->args->pool == 0,
                                 .on_end = s_on_end,
                                 .arg = slot};
    cb_error_t err = {0};
    slot->opened_us = cb_now_us();
    slot->sb = fleet_sandbox_open(fleet_of(soak->gw), &opts, &err);
    if (!slot->sb) {
        s_error(soak, S_ERR_START, slot, "fleet_sandbox_open: %s", err.msg);
        slot->start_failed = true;
        return;
    }
    slot->kernel = fleet_sandbox_main_kernel(slot->sb);
    if (!slot->kernel) {
        s_error(soak, S_ERR_START, slot, "the sandbox has no main kernel");
        slot->start_failed = true;
        return;
    }
    kg_kernel_set_events(slot->kernel, s_on_event, slot);
    s_queue(slot);
}

/* Open every sandbox, at most start_concurrency starting at a time. Returns how many are
 * ready. */
static int s_open_all(s_soak_t *soak)
{
    const s_args_t *args = soak->args;
    int opened = 0, ready = 0, failed = 0;
    int64_t t0 = cb_now_ms(), next_progress = t0 + (int64_t)args->progress_s * 1000;
    while (ready + failed < args->sandboxes && !zsys_interrupted) {
        while (opened < args->sandboxes && opened - ready - failed < args->start_concurrency) {
            s_open(soak, &soak->slots[opened++]);
            soak->wake = 1; /* count it at once when it failed */
        }
        if (!soak->wake)
            kg_gateway_run_until(soak->gw, &soak->wake, 1000);
        soak->wake = 0;
        ready = failed = 0;
        for (int i = 0; i < opened; i++) {
            s_slot_t *slot = &soak->slots[i];
            ready += slot->ready && slot->sb && slot->kernel;
            failed += slot->start_failed || (!slot->ready && (!slot->sb || !slot->kernel));
        }
        if (cb_now_ms() >= next_progress) {
            next_progress += (int64_t)args->progress_s * 1000;
            fprintf(stderr,
                    "bench_soak: [%5.0f s] opening: %d of %d ready, %d failed, RSS %.1f MiB\n",
                    (double)(cb_now_ms() - t0) / 1000.0, ready, args->sandboxes, failed,
                    (double)bench_self_rss_bytes() / S_MiB);
        }
    }
    fprintf(stderr, "bench_soak: %d of %d sandboxes ready after %.1f s (%d failed)\n", ready,
            args->sandboxes, (double)(cb_now_ms() - t0) / 1000.0, failed);
    return ready;
}

/* p50 and p99 of v (sorted in place). */
static bench_stats_t s_stats(s_vec_t *v) { return bench_stats(v->v, v->n); }

static void s_progress(s_soak_t *soak, int64_t t0_ms)
{
    bench_stats_t s = s_stats(&soak->interval);
    s_memory_t m = s_memory(soak);
    fprintf(stderr,
            "bench_soak: [%5.0f s] executions %llu (+%llu, %.0f/s), errors %llu, interval "
            "latency p50 %.2f p99 %.2f ms, sandboxes %d, memory %.0f MiB (%.1f MiB each), "
            "gateway RSS %.1f MiB\n",
            (double)(cb_now_ms() - t0_ms) / 1000.0, (unsigned long long)soak->executions,
            (unsigned long long)soak->interval_executions,
            (double)soak->interval_executions / soak->args->progress_s,
            (unsigned long long)s_error_total(soak), s.p50, s.p99, m.live, m.total_mib, m.mean_mib,
            (double)bench_self_rss_bytes() / S_MiB);
    soak->interval.n = 0;
    soak->interval_executions = 0;
}

/* Keep one execution in flight per ready sandbox for the duration, then let the last ones
 * finish. */
static void s_cycle(s_soak_t *soak)
{
    const s_args_t *args = soak->args;
    volatile int never = 0;
    int64_t t0 = cb_now_ms(), t_end = t0 + (int64_t)args->duration_s * 1000;
    int64_t next_progress = t0 + (int64_t)args->progress_s * 1000;
    soak->cycling = true;
    for (int i = 0; i < args->sandboxes; i++)
        if (soak->slots[i].ready && soak->slots[i].kernel)
            s_queue(&soak->slots[i]);
    while (cb_now_ms() < t_end && !zsys_interrupted) {
        int64_t left = t_end - cb_now_ms();
        kg_gateway_run_until(soak->gw, &never, left < 500 ? (int)left + 1 : 500);
        if (cb_now_ms() >= next_progress) {
            next_progress += (int64_t)args->progress_s * 1000;
            s_progress(soak, t0);
        }
    }
    soak->cycling = false;
    int64_t drain_end = cb_now_ms() + S_DRAIN_MS;
    while (soak->inflight > 0 && cb_now_ms() < drain_end && !zsys_interrupted)
        kg_gateway_run_until(soak->gw, &never, 200);
    if (soak->inflight > 0)
        for (int i = 0; i < args->sandboxes; i++)
            if (soak->slots[i].inflight)
                s_error(soak, S_ERR_LOST, &soak->slots[i], "%s cell queued %.1f s ago, no result",
                        s_cells[soak->slots[i].cell].name,
                        s_ms(soak->slots[i].started_us, cb_now_us()) / 1000.0);
}

/* ---- the result --------------------------------------------------------------------------- */

static json_t *s_ms_json(double v) { return isnan(v) ? json_null() : json_real(bench_round4(v)); }

/* Print the summary and build the result. Caller owns return value. */
static json_t *s_result(s_soak_t *soak, int ready, double open_s, double soak_s, s_memory_t *m,
                        double rss_start, double rss_end, double cpu_s)
{
    const s_args_t *args = soak->args;
    /* Memory per sandbox: the last sample, and each sandbox's highest sample. */
    double *max_each = calloc((size_t)args->sandboxes + 1, sizeof *max_each);
    double *pss = calloc((size_t)args->sandboxes + 1, sizeof *pss);
    size_t n_max = 0, n_pss = 0;
    for (int i = 0; max_each && pss && i < args->sandboxes; i++) {
        s_slot_t *slot = &soak->slots[i];
        if (!slot->ready)
            continue;
        max_each[n_max++] = slot->max_memory_mib;
        int64_t r, p;
        if (slot->kernel && bench_proc_rss_pss(kg_kernel_pid(slot->kernel), &r, &p) == 0)
            pss[n_pss++] = (double)p / S_MiB;
    }
    bench_stats_t lat = s_stats(&soak->all);
    bench_stats_t start = s_stats(&soak->start_ms);
    bench_stats_t mx = bench_stats(max_each, n_max);
    bench_stats_t ps = bench_stats(pss, n_pss);
    free(max_each);
    free(pss);
    uint64_t errors = s_error_total(soak);

    fprintf(stderr,
            "\nbench_soak: %d sandboxes (%d ready; opened in %.1f s, open to first result "
            "p50 %.0f ms, max %.0f ms), %.0f s of cells\n",
            args->sandboxes, ready, open_s, start.p50, start.max, soak_s);
    fprintf(stderr, "bench_soak: executions %llu (%.0f/s), errors %llu\n",
            (unsigned long long)soak->executions, soak_s > 0 ? soak->executions / soak_s : 0,
            (unsigned long long)errors);
    for (int i = 0; i < S_ERRORS; i++)
        fprintf(stderr, "bench_soak:   %-24s %8llu  %s\n", s_errors[i].key,
                (unsigned long long)soak->errors[i], s_errors[i].what);
    for (size_t i = 0; i < S_STATUSES; i++)
        if (soak->statuses_not_ok[i])
            fprintf(stderr, "bench_soak:     status %-14s %8llu\n", s_statuses[i],
                    (unsigned long long)soak->statuses_not_ok[i]);
    fprintf(stderr,
            "bench_soak: latency (kg_execute to on_done) p50 %.2f p90 %.2f p99 %.2f max "
            "%.2f mean %.2f ms\n",
            lat.p50, lat.p90, lat.p99, lat.max, lat.mean);
    fprintf(stderr,
            "bench_soak: memory per sandbox (cgroup) at the end: mean %.1f max %.1f MiB "
            "(%d live, %.0f MiB in all); highest sample per sandbox: mean %.1f max %.1f MiB; "
            "peak (max_usage) %.1f MiB; kernel PSS mean %.1f MiB; OOM kills %llu\n",
            m->mean_mib, m->max_mib, m->live, m->total_mib, mx.mean, mx.max, m->peak_max_mib,
            ps.mean, (unsigned long long)m->oom_kills);
    fprintf(stderr,
            "bench_soak: gateway RSS %.1f MiB at the start of the cells, %.1f MiB at the "
            "end (%+.1f MiB); gateway CPU %.1f s (%.0f µs per execution)\n",
            rss_start, rss_end, rss_end - rss_start, cpu_s,
            soak->executions ? cpu_s * 1e6 / soak->executions : 0);

    json_auto_t *metrics = fleet_metrics(fleet_of(soak->gw));
    cleanup_free char *metrics_text = metrics ? json_dumps(metrics, JSON_INDENT(2)) : NULL;
    fprintf(stderr, "bench_soak: fleet_metrics:\n%s\n", metrics_text ? metrics_text : "?");

    json_t *by_kind = json_object();
    for (int i = 0; by_kind && i < S_ERRORS; i++)
        json_object_set_new(by_kind, s_errors[i].key, json_integer((json_int_t)soak->errors[i]));
    json_t *statuses = json_object();
    for (size_t i = 0; statuses && i < S_STATUSES; i++)
        json_object_set_new(statuses, s_statuses[i],
                            json_integer((json_int_t)soak->statuses_not_ok[i]));
    json_error_t jerr;
    json_t *out = json_pack_ex(
        &jerr, 0,
        "{s:s, s:i, s:i, s:i, s:i, s:f, s:f, s:o, s:I, s:f, s:I, s:o, s:o, s:o, "
        "s:{s:f, s:f, s:f, s:f, s:o, s:f, s:I, s:i}, s:{s:f, s:f, s:f, s:f}, s:O}",
        "name", "soak", "sandboxes", args->sandboxes, "ready", ready, "duration_s",
        args->duration_s, "pool", args->pool, "open_s", bench_round4(open_s), "soak_s",
        bench_round4(soak_s), "open_to_first_result_ms", bench_stats_json(&start), "executions",
        (json_int_t)soak->executions, "executions_per_s",
        bench_round4(soak_s > 0 ? soak->executions / soak_s : 0), "errors", (json_int_t)errors,
        "errors_by_kind", by_kind, "non_ok_statuses", statuses, "latency_ms",
        bench_stats_json(&lat), "memory_per_sandbox_mib", "mean", bench_round4(m->mean_mib), "max",
        bench_round4(m->max_mib), "total", bench_round4(m->total_mib), "highest_sample_max",
        bench_round4(mx.max), "kernel_pss_mean", s_ms_json(n_pss ? ps.mean : NAN), "peak_max",
        bench_round4(m->peak_max_mib), "oom_kills", (json_int_t)m->oom_kills, "live", m->live,
        "gateway", "rss_start_mib", bench_round4(rss_start), "rss_end_mib", bench_round4(rss_end),
        "cpu_s", bench_round4(cpu_s), "cpu_us_per_execution",
        bench_round4(soak->executions ? cpu_s * 1e6 / soak->executions : 0), "metrics", metrics);
    if (!out)
        fprintf(stderr, "bench_soak: building the JSON result: %s\n", jerr.text);
    return out;
}

/* ---- main --------------------------------------------------------------------------------- */

static void s_usage(FILE *f)
{
    fprintf(f,
            "usage: bench_soak [--sandboxes N (100)] [--duration-s S (600)]\n"
            "                  [--start-concurrency C (4)] [--progress-s S (10)] [--pool P (0)]\n"
            "                  [--exec-timeout-s S (120)] [--json FILE]\n"
            "N sandboxes, one execution in flight in each for S seconds, every result checked.\n"
            "Exit status 0 when nothing went wrong, 1 otherwise.\n");
}

static int s_parse_args(int argc, char **argv, s_args_t *args)
{
    static const struct option longopts[] = {{"sandboxes", required_argument, NULL, 'n'},
                                             {"duration-s", required_argument, NULL, 'd'},
                                             {"start-concurrency", required_argument, NULL, 'c'},
                                             {"progress-s", required_argument, NULL, 'p'},
                                             {"pool", required_argument, NULL, 'P'},
                                             {"exec-timeout-s", required_argument, NULL, 't'},
                                             {"json", required_argument, NULL, 'j'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "n:d:c:p:P:t:j:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'n': args->sandboxes = atoi(optarg); break;
        case 'd': args->duration_s = atoi(optarg); break;
        case 'c': args->start_concurrency = atoi(optarg); break;
        case 'p': args->progress_s = atoi(optarg); break;
        case 'P': args->pool = atoi(optarg); break;
        case 't': args->exec_timeout_ms = (int)(atof(optarg) * 1000); break;
        case 'j': args->json_path = optarg; break;
        case 'h': s_usage(stdout); exit(0);
        default: s_usage(stderr); return -1;
        }
    }
    if (optind != argc || args->sandboxes < 1 || args->duration_s < 1 ||
        args->start_concurrency < 1 || args->progress_s < 1 || args->pool < 0 ||
        args->exec_timeout_ms <= 0) {
        fprintf(stderr, "bench_soak: --sandboxes, --duration-s, --start-concurrency and "
                        "--progress-s must be at least 1, --pool at least 0, --exec-timeout-s "
                        "positive\n");
        s_usage(stderr);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    s_args_t args = {.sandboxes = 100,
                     .duration_s = 600,
                     .start_concurrency = 4,
                     .progress_s = 10,
                     .exec_timeout_ms = 120000};
    if (s_parse_args(argc, argv, &args) < 0)
        return 2;
    char tmp[] = "/tmp/cb-bench-soak.XXXXXX";
    if (!mkdtemp(tmp)) {
        fprintf(stderr, "bench_soak: mkdtemp: %s\n", strerror(errno));
        return 1;
    }
    char run_dir[PATH_MAX], state_dir[PATH_MAX];
    snprintf(run_dir, sizeof run_dir, "%s/run", tmp);
    snprintf(state_dir, sizeof state_dir, "%s/state", tmp);
    kg_config_t config = {.runtime_dir = run_dir, .startup_timeout_ms = 300000};
    fleet_config_t fleet_config = {.state_dir = state_dir,
                                   .max_sandboxes = args.sandboxes + args.pool + 8};
    cb_error_t err = {0};
    s_soak_t soak = {.args = &args};
    soak.slots = calloc((size_t)args.sandboxes, sizeof *soak.slots);
    soak.gw = soak.slots ? kg_gateway_new(&config, &err) : NULL;
    if (soak.gw && !fleet_new(soak.gw, &fleet_config, &err))
        kg_gateway_destroy(&soak.gw);
    if (!soak.gw) {
        fprintf(stderr, "bench_soak: kg_gateway_new: %s\n", soak.slots ? err.msg : "out of memory");
        free(soak.slots);
        cb_rm_rf(tmp, NULL);
        return 1;
    }
    for (int i = 0; i < args.sandboxes; i++)
        soak.slots[i] = (s_slot_t){.soak = &soak, .index = i};
    if (args.pool > 0 && fleet_set_pool(fleet_of(soak.gw), "python", args.pool, &err) < 0)
        fprintf(stderr, "bench_soak: fleet_set_pool: %s\n", err.msg);

    fprintf(stderr, "bench_soak: opening %d sandboxes (template python, %d starting at a time)\n",
            args.sandboxes, args.start_concurrency);
    int64_t t_open = cb_now_ms();
    int ready = s_open_all(&soak);
    double open_s = (double)(cb_now_ms() - t_open) / 1000.0;
    double rss_start = (double)bench_self_rss_bytes() / S_MiB;
    double cpu0 = s_cpu_seconds();
    int64_t t_cells = cb_now_ms();
    fprintf(stderr, "bench_soak: running cells for %d s, one in flight per sandbox\n",
            args.duration_s);
    if (ready > 0)
        s_cycle(&soak);
    double soak_s = (double)(cb_now_ms() - t_cells) / 1000.0;
    double cpu_s = s_cpu_seconds() - cpu0;
    s_memory_t m = s_memory(&soak);
    double rss_end = (double)bench_self_rss_bytes() / S_MiB;
    json_auto_t *out = s_result(&soak, ready, open_s, soak_s, &m, rss_start, rss_end, cpu_s);
    uint64_t errors = s_error_total(&soak);

    int64_t t_down = cb_now_ms();
    for (int i = 0; i < args.sandboxes; i++)
        if (soak.slots[i].kernel)
            kg_kernel_set_events(soak.slots[i].kernel, NULL, NULL);
    kg_gateway_destroy(&soak.gw); /* no on_end from here on: it is never called by it */
    fprintf(stderr, "bench_soak: gateway destroyed in %.1f s\n",
            (double)(cb_now_ms() - t_down) / 1000.0);
    cb_rm_rf(tmp, NULL);
    free(soak.slots);
    free(soak.all.v);
    free(soak.interval.v);
    free(soak.start_ms.v);
    int rc = bench_json_write(out, args.json_path, "bench_soak");
    return errors == 0 && rc == 0 && ready == args.sandboxes ? 0 : 1;
}
