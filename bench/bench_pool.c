/* bench_pool.c: sandbox create to first result, cold and warm, and memory per idle sandbox.
 *
 * What a caller of fleet_sandbox_open waits for, through the gateway's public API (the kg/ headers), with
 * real sandboxes:
 *
 *   cold_ms    fleet_sandbox_open(no_pool) of a template, then kg_execute("1+1") on its main kernel,
 *              queued at once (it runs when the kernel is ready), from before the open until
 *              on_done. After one untimed round (page cache), --rounds rounds; each sandbox is
 *              destroyed (kg_sandbox_destroy, timed apart as destroy_ms) before the next.
 *   warm_ms    the same with a warm pool of --pool sandboxes (fleet_set_pool): before each
 *              round the pool is full (fleet_metrics pool.templates.T.ready, polled while
 *              the loop runs) and the loop has run --settle-ms (100) more, so every round is a
 *              real pool hit with nothing else starting. A round that is not served from the pool
 *              (fleet_sandbox_from_pool false) is counted as a miss and left out of warm_ms. The
 *              pool's refill runs on the gateway's tick (every 200 ms) and makes a sandbox on the
 *              loop: when a tick falls inside a round, that round waits for it, as a real
 *              caller's would. Such rounds are counted (kg_gateway_counters' sandboxes_created
 *              grew during the round), and warm_without_refill_ms leaves them out.
 *   open_ms    the fleet_sandbox_open call alone, in both cases.
 *   second_exec_ms   "1+1" once more on the same kernel right after the first result (not part
 *              of the above): a kernel's first execution costs more than the next ones, and this
 *              shows how much of a warm round that is.
 *
 * For the templates "python" and "python-data" (numpy, pandas and matplotlib imported at start:
 * what the pool saves most on). The reference, measured in the same run before the gateway
 * starts: bench_jupyter_client.py --mode start (jupyter_client's KernelManager.start_kernel,
 * wait_for_ready and "1+1" to its reply and idle, on a plain host process, no sandbox), run with
 * /usr/bin/python3 as a child process. E2B's published sandbox start time is printed as a quoted
 * constant for context; it is not measured here.
 *
 *   idle memory   --idle-sandboxes sandboxes opened at once (no pool), "1" run in each, then
 *              S_IDLE_SETTLE_MS with the loop running; per sandbox its cgroup's memory
 *              (kg_sandbox_info usage.memory_bytes, page cache charged to it included) and its
 *              kernel process's RSS and PSS (/proc/PID/smaps_rollup; PSS splits the pages the
 *              kernels share); and this process's VmRSS growth per sandbox (the gateway's own
 *              cost), and what is left of it once they are destroyed.
 *
 * Ratios: warm/cold, cold/jupyter_client, warm/jupyter_client. The goal "warm create + execute
 * under 20 ms at p50" (template python) is printed as PASS or MISS, for information: the exit
 * status is 0 whenever the measurements ran, whatever they show; 1 when one failed, 2 on bad
 * usage. Figures and the verdict go to stderr, the JSON result to stdout (or --json FILE) for
 * bench/report.py. Percentiles are nearest-rank, as in the other benchmarks. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cb/cleanup.h"
#include "cb/util.h"
#include "fleet/fleet.h"
#include "kg/gateway.h"
#include "kg/sandbox.h"
#include "kg/kernel.h"
#include "kg/execution.h"
#include "proc.h"
#include "stats.h"

extern char **environ;

#define S_GOAL_WARM_MS 20.0   /* the goal: warm create + execute under 20 ms at p50 */
#define S_E2B_START_MS 150.0  /* E2B's published sandbox start time: quoted, not measured here */
#define S_IDLE_SETTLE_MS 2000 /* loop time after the idle sandboxes' first results */
#define S_POLL_MS 20          /* loop slice while polling the pool's metrics */
#define S_MiB (1024.0 * 1024.0)

static const char *const s_templates[] = {"python", "python-data"};
#define S_TEMPLATES (sizeof s_templates / sizeof s_templates[0])

typedef struct {
    int rounds;
    int pool;
    int idle;
    int settle_ms; /* loop time after the pool is full, before a warm round */
    const char *json_path;
    const char *python;    /* runs the reference */
    const char *reference; /* bench_jupyter_client.py; "none" skips the reference */
    int timeout_ms;
} s_args_t;

/* One sandbox opened and its first execution, watched through its callbacks. */
typedef struct {
    kg_sandbox_t *sb;  /* NULL once the gateway ended it (on_end) */
    volatile int done; /* on_done ran */
    int64_t done_us;
    char status[32];
    char text[64]; /* the main result's text/plain */
    char ended[256];
    char last_stderr[256];
} s_watch_t;

/* One round's figures, ms. */
typedef struct {
    double total;   /* before fleet_sandbox_open until the first result */
    double open;    /* the fleet_sandbox_open call */
    double second;  /* a second "1+1" on the same kernel, for comparison */
    double destroy; /* kg_sandbox_destroy, after the round */
    bool from_pool;
    bool refilled; /* the gateway made another sandbox (a pool refill) during the round */
} s_sample_t;

/* The figures of one case, ms per round. */
typedef struct {
    double *total, *open, *second, *destroy;
    double *quiet; /* total of the rounds without a refill */
    int n, n_quiet;
} s_case_t;

typedef struct {
    s_case_t cold, warm;
    int misses;                /* warm rounds not served from the pool */
    json_int_t metrics_misses; /* pool.misses counted by the gateway over the warm rounds */
} s_template_result_t;

static double s_ms(int64_t from_us, int64_t to_us) { return (double)(to_us - from_us) / 1000.0; }

/* ---- callbacks ---------------------------------------------------------------------------- */

static void s_on_event(kg_kernel_t *kernel, kg_kernel_event_t event, const char *detail, void *arg)
{
    s_watch_t *w = arg;
    if (event == KG_EVENT_STDERR)
        snprintf(w->last_stderr, sizeof w->last_stderr, "%s", detail ? detail : "");
}

static void s_on_end(kg_sandbox_t *sb, fleet_end_t why, const char *detail, void *arg)
{
    s_watch_t *w = arg;
    snprintf(w->ended, sizeof w->ended, "%s", detail);
    w->sb = NULL; /* freed right after this returns */
}

/* The text/plain of the result marked is_main_result, or "". Borrowed; valid with result. */
static const char *s_main_text(json_t *result)
{
    size_t i;
    json_t *r;
    json_array_foreach (json_object_get(result, "results"), i, r) {
        if (json_is_true(json_object_get(r, "is_main_result"))) {
            const char *t =
                json_string_value(json_object_get(json_object_get(r, "data"), "text/plain"));
            return t ? t : "";
        }
    }
    return "";
}

static void s_on_done(kg_execution_t *x, json_t *result, void *arg)
{
    s_watch_t *w = arg;
    w->done_us = cb_now_us();
    const char *status = json_string_value(json_object_get(result, "status"));
    snprintf(w->status, sizeof w->status, "%s", status ? status : "(none)");
    snprintf(w->text, sizeof w->text, "%s", s_main_text(result));
    w->done = 1;
}

/* ---- one round ---------------------------------------------------------------------------- */

/* Open a sandbox of template name and queue code on its main kernel. Returns 0, or -1 with a
 * message on stderr. w->sb is the sandbox. */
static int s_open_and_execute(kg_gateway_t *gw, const char *name, bool no_pool, const char *code,
                              s_watch_t *w, const s_args_t *args)
{
    fleet_sandbox_opts_t opts = {
        .template_name = name, .timeout_s = -1, .no_pool = no_pool, .on_end = s_on_end, .arg = w};
    cb_error_t err = {0};
    w->sb = fleet_sandbox_open(fleet_of(gw), &opts, &err);
    if (!w->sb) {
        fprintf(stderr, "bench_pool: fleet_sandbox_open(%s): %s\n", name, err.msg);
        return -1;
    }
    kg_kernel_t *kernel = fleet_sandbox_main_kernel(w->sb);
    if (!kernel) {
        fprintf(stderr, "bench_pool: sandbox of %s has no main kernel\n", name);
        return -1;
    }
    kg_kernel_set_events(kernel, s_on_event, w);
    kg_execute_opts_t xo = {
        .code = code, .timeout_ms = args->timeout_ms, .on_done = s_on_done, .arg = w};
    if (!kg_execute(kernel, &xo, &err)) {
        fprintf(stderr, "bench_pool: kg_execute: %s\n", err.msg);
        return -1;
    }
    return 0;
}

/* The execution ended well: status ok and the expected main result. Else a message. */
static int s_check(const s_watch_t *w, const char *what, const char *expect)
{
    if (w->done && strcmp(w->status, "ok") == 0 && strcmp(w->text, expect) == 0)
        return 0;
    fprintf(stderr, "bench_pool: %s: %s (status %s, result '%s', expected '%s')%s%s%s%s\n", what,
            w->done ? "the execution failed" : "no result in time", w->status[0] ? w->status : "-",
            w->text, expect, w->ended[0] ? "; the sandbox ended: " : "", w->ended,
            w->last_stderr[0] ? "; the kernel's last stderr line: " : "", w->last_stderr);
    return -1;
}

/* Stop listening and destroy the sandbox, when the gateway has not ended it already. Returns
 * the ms kg_sandbox_destroy took (0 when there was nothing to destroy). */
static double s_destroy(s_watch_t *w)
{
    if (!w->sb)
        return 0;
    kg_kernel_t *kernel = fleet_sandbox_main_kernel(w->sb);
    if (kernel)
        kg_kernel_set_events(kernel, NULL, NULL);
    int64_t t0 = cb_now_us();
    kg_sandbox_destroy(&w->sb);
    return s_ms(t0, cb_now_us());
}

/* Run code on a ready kernel to its result. Returns 0, or -1 with a message on stderr. */
static int s_execute(kg_gateway_t *gw, kg_kernel_t *kernel, const char *code, s_watch_t *w,
                     const s_args_t *args)
{
    kg_execute_opts_t xo = {
        .code = code, .timeout_ms = args->timeout_ms, .on_done = s_on_done, .arg = w};
    cb_error_t err = {0};
    if (!kg_execute(kernel, &xo, &err)) {
        fprintf(stderr, "bench_pool: kg_execute: %s\n", err.msg);
        return -1;
    }
    kg_gateway_run_until(gw, &w->done, args->timeout_ms);
    return 0;
}

/* One round: open (from the pool or not), "1+1" to its result, "1+1" again (timed apart), then
 * destroy. Returns 0, or -1 with a message on stderr. */
static int s_round(kg_gateway_t *gw, const char *name, bool no_pool, const s_args_t *args,
                   s_sample_t *out)
{
    s_watch_t w = {0};
    uint64_t made = kg_gateway_counters(gw)->sandboxes_created;
    int64_t t0 = cb_now_us();
    int rc = s_open_and_execute(gw, name, no_pool, "1+1", &w, args);
    int64_t t_open = cb_now_us();
    out->from_pool = w.sb && fleet_sandbox_from_pool(w.sb);
    if (rc == 0)
        kg_gateway_run_until(gw, &w.done, args->timeout_ms);
    made = kg_gateway_counters(gw)->sandboxes_created - made;
    out->refilled = made > (out->from_pool ? 0u : 1u);
    if (rc == 0)
        rc = s_check(&w, name, "2");
    out->total = s_ms(t0, w.done_us);
    out->open = s_ms(t0, t_open);
    s_watch_t w2 = {0};
    kg_kernel_t *kernel = rc == 0 && w.sb ? fleet_sandbox_main_kernel(w.sb) : NULL;
    int64_t t1 = cb_now_us();
    if (rc == 0 &&
        (!kernel || s_execute(gw, kernel, "1+1", &w2, args) < 0 || s_check(&w2, name, "2") < 0))
        rc = -1;
    out->second = s_ms(t1, w2.done_us);
    out->destroy = s_destroy(&w);
    return rc;
}

static void s_case_add(s_case_t *c, const s_sample_t *x)
{
    c->total[c->n] = x->total;
    c->open[c->n] = x->open;
    c->second[c->n] = x->second;
    c->destroy[c->n++] = x->destroy;
    if (!x->refilled)
        c->quiet[c->n_quiet++] = x->total;
}

/* ---- the pool ----------------------------------------------------------------------------- */

/* pool.templates.<name>.ready from fleet_metrics, or -1. */
static int s_pool_ready(kg_gateway_t *gw, const char *name)
{
    json_auto_t *m = fleet_metrics(fleet_of(gw));
    json_t *t = json_object_get(json_object_get(json_object_get(m, "pool"), "templates"), name);
    json_t *ready = json_object_get(t, "ready");
    return json_is_integer(ready) ? (int)json_integer_value(ready) : -1;
}

static json_int_t s_pool_misses(kg_gateway_t *gw)
{
    json_auto_t *m = fleet_metrics(fleet_of(gw));
    return json_integer_value(json_object_get(json_object_get(m, "pool"), "misses"));
}

/* Run the loop for ms. */
static void s_run_for(kg_gateway_t *gw, int ms)
{
    volatile int never = 0;
    kg_gateway_run_until(gw, &never, ms);
}

/* Run the loop until the pool of name holds size ready sandboxes, then settle_ms more.
 * Returns 0, or -1 with a message when it takes longer than timeout_ms. */
static int s_wait_pool_full(kg_gateway_t *gw, const char *name, int size, int settle_ms,
                            int timeout_ms)
{
    int64_t deadline = cb_now_ms() + timeout_ms;
    int ready;
    while ((ready = s_pool_ready(gw, name)) < size) {
        if (cb_now_ms() > deadline) {
            fprintf(stderr,
                    "bench_pool: the pool of %s holds %d ready sandbox(es) of %d after %d ms\n",
                    name, ready, size, timeout_ms);
            return -1;
        }
        s_run_for(gw, S_POLL_MS);
    }
    s_run_for(gw, settle_ms);
    return 0;
}

/* ---- the cases ---------------------------------------------------------------------------- */

static int s_case_alloc(s_case_t *c, int rounds)
{
    c->total = calloc((size_t)rounds, sizeof *c->total);
    c->open = calloc((size_t)rounds, sizeof *c->open);
    c->second = calloc((size_t)rounds, sizeof *c->second);
    c->destroy = calloc((size_t)rounds, sizeof *c->destroy);
    c->quiet = calloc((size_t)rounds, sizeof *c->quiet);
    return c->total && c->open && c->second && c->destroy && c->quiet ? 0 : -1;
}

static void s_case_free(s_case_t *c)
{
    free(c->total);
    free(c->open);
    free(c->second);
    free(c->destroy);
    free(c->quiet);
}

/* One untimed round, then args->rounds timed ones, without the pool. */
static int s_cold(kg_gateway_t *gw, const char *name, const s_args_t *args, s_case_t *c)
{
    for (int i = -1; i < args->rounds; i++) {
        s_sample_t x = {0};
        if (s_round(gw, name, true, args, &x) < 0)
            return -1;
        if (i < 0) {
            fprintf(stderr, "bench_pool: %s cold, untimed round: %.1f ms\n", name, x.total);
            continue;
        }
        s_case_add(c, &x);
        fprintf(stderr,
                "bench_pool: %s cold %d/%d: %.1f ms (open %.1f ms; then 1+1 again %.1f ms)\n", name,
                i + 1, args->rounds, x.total, x.open, x.second);
    }
    return 0;
}

/* args->rounds rounds from a full pool of args->pool; the pool is emptied again after. */
static int s_warm(kg_gateway_t *gw, const char *name, const s_args_t *args, s_case_t *c,
                  s_template_result_t *res)
{
    cb_error_t err = {0};
    if (fleet_set_pool(fleet_of(gw), name, args->pool, &err) < 0) {
        fprintf(stderr, "bench_pool: fleet_set_pool(%s, %d): %s\n", name, args->pool, err.msg);
        return -1;
    }
    json_int_t misses0 = s_pool_misses(gw);
    int rc = 0;
    for (int i = 0; rc == 0 && i < args->rounds; i++) {
        s_sample_t x = {0};
        rc = s_wait_pool_full(gw, name, args->pool, args->settle_ms, args->timeout_ms);
        if (rc == 0)
            rc = s_round(gw, name, false, args, &x);
        if (rc < 0)
            break;
        fprintf(stderr,
                "bench_pool: %s warm %d/%d: %.1f ms (open %.2f ms; then 1+1 again %.1f ms)%s%s\n",
                name, i + 1, args->rounds, x.total, x.open, x.second,
                x.refilled ? " (the pool refilled during it)" : "",
                x.from_pool ? "" : " NOT from the pool: left out");
        if (!x.from_pool) {
            res->misses++;
            continue;
        }
        s_case_add(c, &x);
    }
    res->metrics_misses = s_pool_misses(gw) - misses0;
    if (fleet_set_pool(fleet_of(gw), name, 0, &err) < 0)
        fprintf(stderr, "bench_pool: emptying the pool of %s: %s\n", name, err.msg);
    return rc;
}

/* ---- memory per idle sandbox -------------------------------------------------------------- */

typedef struct {
    double *cgroup_mib, *rss_mib, *pss_mib;  /* per sandbox */
    int n, n_proc;                           /* sandboxes; kernels whose /proc could be read */
    int64_t rss_before, rss_with, rss_after; /* this process's VmRSS, bytes */
    json_t *layers;                          /* from the first sandbox's info; owned */
} s_idle_t;

static int s_idle(kg_gateway_t *gw, const s_args_t *args, s_idle_t *res)
{
    size_t k = (size_t)args->idle;
    s_watch_t *w = calloc(k, sizeof *w);
    res->cgroup_mib = calloc(k, sizeof *res->cgroup_mib);
    res->rss_mib = calloc(k, sizeof *res->rss_mib);
    res->pss_mib = calloc(k, sizeof *res->pss_mib);
    if (!w || !res->cgroup_mib || !res->rss_mib || !res->pss_mib) {
        free(w);
        fprintf(stderr, "bench_pool: out of memory\n");
        return -1;
    }
    res->rss_before = bench_self_rss_bytes();
    int rc = 0;
    int64_t t0 = cb_now_us();
    for (size_t i = 0; rc == 0 && i < k; i++)
        rc = s_open_and_execute(gw, "python", true, "1", &w[i], args);
    int64_t deadline = cb_now_ms() + (int64_t)args->timeout_ms + 5000 * (int64_t)k;
    size_t done = 0;
    while (rc == 0 && done < k) {
        done = 0;
        for (size_t i = 0; i < k; i++)
            done += w[i].done;
        if (done < k && cb_now_ms() > deadline) {
            fprintf(stderr, "bench_pool: idle sandboxes: %zu of %zu results in time\n", done, k);
            rc = -1;
        }
        s_run_for(gw, 100);
    }
    for (size_t i = 0; rc == 0 && i < k; i++)
        rc = s_check(&w[i], "idle sandbox", "1");
    if (rc == 0) {
        fprintf(stderr, "bench_pool: %zu sandboxes opened and ran a cell in %.1f s; idling %d ms\n",
                k, s_ms(t0, cb_now_us()) / 1000.0, S_IDLE_SETTLE_MS);
        s_run_for(gw, S_IDLE_SETTLE_MS);
    }
    for (size_t i = 0; rc == 0 && i < k; i++) {
        if (!w[i].sb) {
            fprintf(stderr, "bench_pool: idle sandbox %zu ended: %s\n", i, w[i].ended);
            rc = -1;
            break;
        }
        json_auto_t *info = kg_sandbox_info(w[i].sb);
        json_t *mem = json_object_get(json_object_get(info, "usage"), "memory_bytes");
        res->cgroup_mib[res->n++] = (double)json_integer_value(mem) / S_MiB;
        if (!res->layers)
            res->layers = json_incref(json_object_get(info, "layers"));
        kg_kernel_t *kernel = fleet_sandbox_main_kernel(w[i].sb);
        int64_t rss, pss;
        if (kernel && bench_proc_rss_pss(kg_kernel_pid(kernel), &rss, &pss) == 0) {
            res->rss_mib[res->n_proc] = (double)rss / S_MiB;
            res->pss_mib[res->n_proc++] = (double)pss / S_MiB;
        }
    }
    res->rss_with = bench_self_rss_bytes();
    for (size_t i = 0; i < k; i++)
        s_destroy(&w[i]);
    s_run_for(gw, 200);
    res->rss_after = bench_self_rss_bytes();
    free(w);
    return rc;
}

static void s_idle_free(s_idle_t *r)
{
    free(r->cgroup_mib);
    free(r->rss_mib);
    free(r->pss_mib);
    json_decref(r->layers);
}

/* ---- the reference ------------------------------------------------------------------------ */

/* Run the reference script (its stderr is ours) and parse the JSON it prints. Caller owns
 * return value; on any failure an object {name, skipped | failed: reason}. */
static json_t *s_reference(const s_args_t *args)
{
    static const char name[] = "jupyter_client-start";
    if (strcmp(args->reference, "none") == 0)
        return json_pack("{s:s, s:s}", "name", name, "skipped", "--reference none");
    if (access(args->python, X_OK) < 0 || access(args->reference, R_OK) < 0)
        return json_pack(
            "{s:s, s:s++}", "name", name, "skipped", "cannot run ",
            access(args->python, X_OK) < 0 ? args->python : args->reference,
            " (scripts/install-deps.sh installs Debian's python3 with jupyter_client)");
    char rounds[16], timeout[16];
    snprintf(rounds, sizeof rounds, "%d", args->rounds);
    snprintf(timeout, sizeof timeout, "%d", args->timeout_ms / 1000);
    char *argv[] = {(char *)args->python,
                    (char *)args->reference,
                    "--mode",
                    "start",
                    "--rounds",
                    rounds,
                    "--timeout",
                    timeout,
                    "--max-seconds",
                    "3600",
                    NULL};
    int out[2];
    if (pipe2(out, O_CLOEXEC) < 0)
        return json_pack("{s:s, s:s}", "name", name, "failed", strerror(errno));
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
    pid_t pid;
    int rc = posix_spawn(&pid, args->python, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(out[1]);
    if (rc != 0) {
        close(out[0]);
        return json_pack("{s:s, s:s}", "name", name, "failed", strerror(rc));
    }
    cb_buf_t buf = {0};
    char chunk[4096];
    ssize_t n;
    while ((n = read(out[0], chunk, sizeof chunk)) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            break;
        cb_buf_append(&buf, chunk, (size_t)n);
    }
    close(out[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    json_error_t jerr;
    json_t *res = WIFEXITED(status) && WEXITSTATUS(status) == 0 && buf.len
                      ? json_loadb(buf.data, buf.len, 0, &jerr)
                      : NULL;
    cb_buf_free(&buf);
    if (!json_is_object(res)) {
        json_decref(res);
        return json_pack("{s:s, s:s}", "name", name, "failed",
                         "bench_jupyter_client.py --mode start failed; see its messages above");
    }
    return res;
}

/* ---- output ------------------------------------------------------------------------------- */

/* p50 of a {p50, ...} summary, NAN when absent. */
static double s_p50(json_t *summary)
{
    json_t *v = json_object_get(summary, "p50");
    return json_is_number(v) ? json_number_value(v) : NAN;
}

/* a / b rounded to 4 decimals (warm/cold is far below 0.01), or null when either is missing.
 * Caller owns return value. */
static json_t *s_ratio(double a, double b)
{
    return isnan(a) || isnan(b) || b == 0 ? json_null() : json_real(bench_round4(a / b));
}

static void s_print_row(const char *label, json_t *s)
{
    if (json_integer_value(json_object_get(s, "n")) == 0) {
        fprintf(stderr, "bench_pool: %-40s (no figures)\n", label);
        return;
    }
    fprintf(stderr, "bench_pool: %-40s p50 %8.2f  p90 %8.2f  p99 %8.2f  mean %8.2f ms (n %lld)\n",
            label, s_p50(s), json_number_value(json_object_get(s, "p90")),
            json_number_value(json_object_get(s, "p99")),
            json_number_value(json_object_get(s, "mean")),
            (long long)json_integer_value(json_object_get(s, "n")));
}

/* The JSON of one template's cases (sorts their arrays). Caller owns return value. */
static json_t *s_template_json(s_template_result_t *r)
{
    json_t *cold = bench_summary(r->cold.total, (size_t)r->cold.n);
    json_t *warm = bench_summary(r->warm.total, (size_t)r->warm.n);
    double cold_p50 = s_p50(cold), warm_p50 = s_p50(warm);
    return json_pack(
        "{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:i, s:i, s:I}", "cold_ms", cold,
        "cold_open_ms", bench_summary(r->cold.open, (size_t)r->cold.n), "cold_second_exec_ms",
        bench_summary(r->cold.second, (size_t)r->cold.n), "cold_destroy_ms",
        bench_summary(r->cold.destroy, (size_t)r->cold.n), "warm_ms", warm, "warm_open_ms",
        bench_summary(r->warm.open, (size_t)r->warm.n), "warm_second_exec_ms",
        bench_summary(r->warm.second, (size_t)r->warm.n), "warm_without_refill_ms",
        bench_summary(r->warm.quiet, (size_t)r->warm.n_quiet), "warm_destroy_ms",
        bench_summary(r->warm.destroy, (size_t)r->warm.n), "warm_cold_p50_ratio",
        s_ratio(warm_p50, cold_p50), "warm_rounds_refilled", r->warm.n - r->warm.n_quiet,
        "warm_rounds_not_from_pool", r->misses, "pool_misses_counted", r->metrics_misses);
}

static json_t *s_idle_json(s_idle_t *r, int k)
{
    double growth = r->rss_before >= 0 && r->rss_with >= 0 && k > 0
                        ? (double)(r->rss_with - r->rss_before) / 1024.0 / k
                        : NAN;
    double left = r->rss_before >= 0 && r->rss_after >= 0 && k > 0
                      ? (double)(r->rss_after - r->rss_before) / 1024.0 / k
                      : NAN;
    return json_pack(
        "{s:i, s:o, s:o, s:o, s:o, s:o, s:f, s:f, s:f, s:O?, s:s}", "sandboxes", k,
        "cgroup_memory_mib", bench_summary(r->cgroup_mib, (size_t)r->n), "kernel_rss_mib",
        bench_summary(r->rss_mib, (size_t)r->n_proc), "kernel_pss_mib",
        bench_summary(r->pss_mib, (size_t)r->n_proc), "gateway_rss_growth_kib_per_sandbox",
        isnan(growth) ? json_null() : json_real(round(growth * 10) / 10),
        "gateway_rss_left_after_destroy_kib_per_sandbox",
        isnan(left) ? json_null() : json_real(round(left * 10) / 10), "gateway_rss_before_mib",
        bench_round4((double)r->rss_before / S_MiB), "gateway_rss_with_mib",
        bench_round4((double)r->rss_with / S_MiB), "gateway_rss_after_mib",
        bench_round4((double)r->rss_after / S_MiB), "layers", r->layers, "note",
        "cgroup memory counts page cache charged to the sandbox (the first to read a file pays "
        "for it); PSS splits the kernels' shared pages between them");
}

/* Print the figures and build the result. Caller owns return value. */
static json_t *s_result(const s_args_t *args, s_template_result_t *res, json_t *ref, s_idle_t *idle)
{
    json_t *templates = json_object();
    for (size_t t = 0; t < S_TEMPLATES && templates; t++)
        json_object_set_new(templates, s_templates[t], s_template_json(&res[t]));
    json_t *py = json_object_get(templates, "python");
    double cold = s_p50(json_object_get(py, "cold_ms"));
    double warm = s_p50(json_object_get(py, "warm_ms"));
    double ref_p50 = s_p50(json_object_get(ref, "start_to_result_ms"));
    double ref_noflush = s_p50(json_object_get(ref, "start_to_result_minus_flush_ms"));
    bool met = !isnan(warm) && warm < S_GOAL_WARM_MS;

    fprintf(stderr,
            "\nbench_pool: sandbox create to first result (\"1+1\"), %d rounds, pool of %d\n",
            args->rounds, args->pool);
    if (json_object_get(ref, "start_to_result_ms")) {
        s_print_row("jupyter_client (no sandbox)", json_object_get(ref, "start_to_result_ms"));
        s_print_row(" minus its 0.2 s iopub flush",
                    json_object_get(ref, "start_to_result_minus_flush_ms"));
    } else {
        fprintf(stderr, "bench_pool: jupyter_client reference: %s\n",
                json_string_value(json_object_get(ref, "skipped"))
                    ?: json_string_value(json_object_get(ref, "failed")) ?: "?");
    }
    for (size_t t = 0; t < S_TEMPLATES; t++) {
        json_t *tj = json_object_get(templates, s_templates[t]);
        char label[64];
        snprintf(label, sizeof label, "%s cold (open + execute)", s_templates[t]);
        s_print_row(label, json_object_get(tj, "cold_ms"));
        snprintf(label, sizeof label, "%s warm (from the pool)", s_templates[t]);
        s_print_row(label, json_object_get(tj, "warm_ms"));
        snprintf(label, sizeof label, "%s warm: the open call", s_templates[t]);
        s_print_row(label, json_object_get(tj, "warm_open_ms"));
        snprintf(label, sizeof label, "%s warm: without a refill in it", s_templates[t]);
        s_print_row(label, json_object_get(tj, "warm_without_refill_ms"));
        snprintf(label, sizeof label, "%s warm: 1+1 again after", s_templates[t]);
        s_print_row(label, json_object_get(tj, "warm_second_exec_ms"));
        fprintf(stderr, "bench_pool: %-40s %.3g (warm rounds not from the pool: %d)\n",
                "  warm/cold p50", json_real_value(json_object_get(tj, "warm_cold_p50_ratio")),
                res[t].misses);
    }
    fprintf(stderr,
            "bench_pool: python cold/jupyter_client p50: %.2f (%.2f against its time "
            "without the flush); warm/jupyter_client p50: %.3f\n",
            cold / ref_p50, cold / ref_noflush, warm / ref_p50);
    fprintf(stderr,
            "bench_pool: E2B publishes ~%.0f ms to start a sandbox (quoted for context, "
            "not measured here)\n",
            S_E2B_START_MS);
    fprintf(stderr,
            "bench_pool: goal, warm create + execute under %.0f ms at p50 (python): %.2f "
            "ms: %s\n",
            S_GOAL_WARM_MS, warm, met ? "PASS" : "MISS");

    json_t *idle_json = s_idle_json(idle, args->idle);
    json_t *cg = json_object_get(idle_json, "cgroup_memory_mib");
    json_t *pss = json_object_get(idle_json, "kernel_pss_mib");
    fprintf(stderr,
            "bench_pool: memory per idle sandbox (%d): cgroup mean %.1f p50 %.1f max %.1f "
            "MiB; kernel PSS mean %.1f p50 %.1f MiB, RSS p50 %.1f MiB; gateway RSS +%.1f KiB per "
            "sandbox (%.1f KiB per sandbox left after destroying them)\n",
            args->idle, json_real_value(json_object_get(cg, "mean")), s_p50(cg),
            json_real_value(json_object_get(cg, "max")),
            json_real_value(json_object_get(pss, "mean")), s_p50(pss),
            s_p50(json_object_get(idle_json, "kernel_rss_mib")),
            json_real_value(json_object_get(idle_json, "gateway_rss_growth_kib_per_sandbox")),
            json_real_value(
                json_object_get(idle_json, "gateway_rss_left_after_destroy_kib_per_sandbox")));

    json_error_t jerr;
    json_t *out = json_pack_ex(
        &jerr, 0,
        "{s:s, s:s, s:i, s:i, s:i, s:i, s:o, s:o, s:{s:o, s:o, s:o, s:o}, s:{s:f, s:o?, s:b, s:s}, "
        "s:{s:f, s:s}, s:o}",
        "name", "pool", "code", "1+1", "rounds", args->rounds, "pool_size", args->pool, "warmup", 1,
        "settle_ms", args->settle_ms, "templates", templates, "reference", json_incref(ref),
        "ratios", "python_warm_cold_p50", s_ratio(warm, cold), "python_cold_jupyter_client_p50",
        s_ratio(cold, ref_p50), "python_cold_jupyter_client_minus_flush_p50",
        s_ratio(cold, ref_noflush), "python_warm_jupyter_client_p50", s_ratio(warm, ref_p50),
        "goal", "warm_p50_ms", S_GOAL_WARM_MS, "python_warm_p50_ms",
        isnan(warm) ? NULL : json_real(bench_round4(warm)), "met", met, "verdict",
        met ? "PASS" : "MISS", "e2b", "quoted_start_ms", S_E2B_START_MS, "note",
        "E2B's published sandbox start time, quoted for context; not measured here", "idle_memory",
        idle_json);
    if (!out)
        fprintf(stderr, "bench_pool: building the JSON result: %s\n", jerr.text);
    return out;
}

/* ---- main --------------------------------------------------------------------------------- */

static void s_usage(FILE *f)
{
    fprintf(f,
            "usage: bench_pool [--rounds N (20)] [--pool P (2)] [--idle-sandboxes K (20)]\n"
            "                  [--json FILE] [--quick] [--python PATH (/usr/bin/python3)]\n"
            "                  [--reference SCRIPT|none] [--timeout S (120)]\n"
            "                  [--settle-ms MS (100)]\n"
            "Sandbox create to first result, cold and from a warm pool, for the templates python\n"
            "and python-data, against jupyter_client starting a kernel (SCRIPT, default\n"
            "bench_jupyter_client.py in the source tree), and memory per idle sandbox. --quick:\n"
            "5 rounds and 5 idle sandboxes. --settle-ms: loop time after the pool is full, before\n"
            "each warm round. Figures on stderr, JSON on stdout or in FILE.\n");
}

static int s_parse_args(int argc, char **argv, s_args_t *args)
{
    static const struct option longopts[] = {{"rounds", required_argument, NULL, 'n'},
                                             {"pool", required_argument, NULL, 'p'},
                                             {"idle-sandboxes", required_argument, NULL, 'k'},
                                             {"json", required_argument, NULL, 'j'},
                                             {"quick", no_argument, NULL, 'q'},
                                             {"python", required_argument, NULL, 'P'},
                                             {"reference", required_argument, NULL, 'r'},
                                             {"timeout", required_argument, NULL, 't'},
                                             {"settle-ms", required_argument, NULL, 's'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    int c, rounds = -1, idle = -1;
    bool quick = false;
    while ((c = getopt_long(argc, argv, "n:p:k:j:qP:r:t:s:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'n': rounds = atoi(optarg); break;
        case 'p': args->pool = atoi(optarg); break;
        case 'k': idle = atoi(optarg); break;
        case 'j': args->json_path = optarg; break;
        case 'q': quick = true; break;
        case 'P': args->python = optarg; break;
        case 'r': args->reference = optarg; break;
        case 't': args->timeout_ms = (int)(atof(optarg) * 1000); break;
        case 's': args->settle_ms = atoi(optarg); break;
        case 'h': s_usage(stdout); exit(0);
        default: s_usage(stderr); return -1;
        }
    }
    args->rounds = rounds >= 0 ? rounds : quick ? 5 : 20;
    args->idle = idle >= 0 ? idle : quick ? 5 : 20;
    if (optind != argc || args->rounds < 1 || args->pool < 1 || args->idle < 1 ||
        args->timeout_ms <= 0 || args->settle_ms < 0) {
        fprintf(stderr, "bench_pool: --rounds, --pool and --idle-sandboxes must be at least 1, "
                        "--timeout positive, --settle-ms at least 0\n");
        s_usage(stderr);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    s_args_t args = {.pool = 2,
                     .settle_ms = 100,
                     .python = "/usr/bin/python3",
                     .reference = BENCH_SOURCE_DIR "/bench_jupyter_client.py",
                     .timeout_ms = 120000};
    if (s_parse_args(argc, argv, &args) < 0)
        return 2;

    /* The reference first, while no gateway, pool or kernel of ours runs. */
    fprintf(stderr, "bench_pool: reference: %s %s --mode start --rounds %d\n", args.python,
            args.reference, args.rounds);
    json_auto_t *ref = s_reference(&args);

    char tmp[] = "/tmp/cb-bench-pool.XXXXXX";
    if (!mkdtemp(tmp)) {
        fprintf(stderr, "bench_pool: mkdtemp: %s\n", strerror(errno));
        return 1;
    }
    char run_dir[PATH_MAX], state_dir[PATH_MAX];
    snprintf(run_dir, sizeof run_dir, "%s/run", tmp);
    snprintf(state_dir, sizeof state_dir, "%s/state", tmp);
    kg_config_t config = {.runtime_dir = run_dir, .startup_timeout_ms = args.timeout_ms};
    fleet_config_t fleet_config = {.state_dir = state_dir,
                                   .max_sandboxes = args.idle + args.pool + 8};
    cb_error_t err = {0};
    kg_gateway_t *gw = kg_gateway_new(&config, &err);
    if (gw && !fleet_new(gw, &fleet_config, &err))
        kg_gateway_destroy(&gw);
    if (!gw) {
        fprintf(stderr, "bench_pool: kg_gateway_new: %s\n", err.msg);
        cb_rm_rf(tmp, NULL);
        return 1;
    }
    s_template_result_t res[S_TEMPLATES] = {0};
    s_idle_t idle = {0};
    int rc = 0;
    for (size_t t = 0; t < S_TEMPLATES && rc == 0; t++) {
        if (s_case_alloc(&res[t].cold, args.rounds) < 0 ||
            s_case_alloc(&res[t].warm, args.rounds) < 0) {
            fprintf(stderr, "bench_pool: out of memory\n");
            rc = -1;
            break;
        }
        rc = s_cold(gw, s_templates[t], &args, &res[t].cold);
        if (rc == 0)
            rc = s_warm(gw, s_templates[t], &args, &res[t].warm, &res[t]);
    }
    if (rc == 0)
        rc = s_idle(gw, &args, &idle);
    json_auto_t *out = rc == 0 ? s_result(&args, res, ref, &idle) : NULL;
    kg_gateway_destroy(&gw);
    cb_rm_rf(tmp, NULL);
    for (size_t t = 0; t < S_TEMPLATES; t++) {
        s_case_free(&res[t].cold);
        s_case_free(&res[t].warm);
    }
    s_idle_free(&idle);
    if (rc < 0)
        return 1;
    return bench_json_write(out, args.json_path, "bench_pool") == 0 ? 0 : 1;
}
