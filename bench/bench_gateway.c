/* bench_gateway.c: the gateway's side of the foundation benchmark.
 *
 * Measures what bench_jupyter_client.py measures for jupyter_client, through the gateway's public
 * API only (the kg/ headers), so the two can be compared line by line:
 *
 *   start_ms   kg_kernel_start() until KG_EVENT_READY, over --kernels kernels started one after
 *              another (kept running, as the reference keeps its kernels).
 *   exec_ms    on the first kernel, after --warmup untimed runs, --n executions of a trivial cell:
 *              kg_execute() until on_done, the moment the gateway has both the execute_reply and
 *              the status idle for it. The loop is driven by kg_gateway_run_until().
 *   outside_execution_ms   per execution, exec_ms minus the result's duration_ms (the gateway's
 *              own time for it: execute_request sent until done): the gateway's dispatch around the
 *              kernel's work, paired call by call; bench_mcp reports the same through MCP.
 *   gateway_cpu_us_per_exec   this process's user+sys CPU (getrusage RUSAGE_SELF: the gateway,
 *              its loop and ZMQ's I/O threads; kernels are children and not counted) over the timed
 *              loop, per execution: an upper bound of what the gateway adds to each execution.
 *   gateway_user_cpu_us_per_exec, gateway_sys_cpu_us_per_exec   the same split into user-space
 *              CPU (the gateway's code, ZMQ's and libc's) and kernel-space CPU (system calls, poll
 *              wakeups, context switches: what any ZMQ client pays). The user part is the closest
 *              measure here of what the gateway's own code adds.
 *
 * Count-bounded and time-bounded (--max-seconds for the timed loop, --timeout per wait). Prints
 * one JSON object on stdout (built with jansson); progress and errors go to stderr. Percentiles
 * are nearest-rank, as in bench_jupyter_client.py. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "cb/util.h"
#include "kg/gateway.h"
#include "kg/kernel.h"
#include "kg/execution.h"
#include "stats.h"

/* Extra kernel environment, the same in bench_jupyter_client.py: only silences debugpy's start-up
 * warning about frozen modules on each ipykernel's stderr. */
static const char *const s_kernel_env[] = {"PYDEVD_DISABLE_FILE_VALIDATION=1", NULL};

typedef struct {
    int kernels;
    int n;
    int warmup;
    const char *code;
    const char *kernel_name;
    const char *kernels_dir;
    double max_seconds;
    int timeout_ms;
} s_args_t;

/* One kernel's start, watched through its event callback. Lives until the gateway is destroyed,
 * since events (STOPPED at the end) keep arriving until then. */
typedef struct {
    volatile int wake;  /* set on READY or on any sign the kernel will never be ready */
    int ready;          /* KG_EVENT_READY seen */
    int64_t started_us; /* just before kg_kernel_start */
    int64_t ready_us;   /* at the first KG_EVENT_READY */
    char why[256];      /* when it will not be ready */
} s_start_t;

/* One execution, filled in by on_done. */
typedef struct {
    volatile int done;
    int64_t done_us;
    double duration_ms; /* the result's duration_ms: execute_request sent until done */
    char status[32];
    char error[256];
} s_exec_t;

/* The kernel will never be ready: remember why and wake the waiting loop. */
static void s_not_ready(s_start_t *st, const char *what, const char *detail)
{
    if (st->ready || st->why[0])
        return;
    snprintf(st->why, sizeof st->why, "kernel %s: %s", what, detail ? detail : "");
    st->wake = 1;
}

static void s_on_event(kg_kernel_t *kernel, kg_kernel_event_t event, const char *detail, void *arg)
{
    s_start_t *st = arg;
    switch (event) {
    case KG_EVENT_READY:
        if (!st->ready) {
            st->ready_us = cb_now_us();
            st->ready = 1;
            st->wake = 1;
        }
        break;
    case KG_EVENT_DIED: s_not_ready(st, "died", detail); break;
    case KG_EVENT_DEAD: s_not_ready(st, "dead (no more restarts)", detail); break;
    case KG_EVENT_STOPPED: s_not_ready(st, "stopped", detail); break;
    case KG_EVENT_STDERR:
        if (detail)
            fprintf(stderr, "bench_gateway: kernel stderr: %s\n", detail);
        break;
    default: break;
    }
}

static void s_on_done(kg_execution_t *x, json_t *result, void *arg)
{
    s_exec_t *ex = arg;
    ex->done_us = cb_now_us();
    ex->duration_ms = json_number_value(json_object_get(result, "duration_ms"));
    const char *status = json_string_value(json_object_get(result, "status"));
    snprintf(ex->status, sizeof ex->status, "%s", status ? status : "(none)");
    json_t *error = json_object_get(result, "error");
    if (json_is_object(error)) {
        const char *ename = json_string_value(json_object_get(error, "ename"));
        const char *evalue = json_string_value(json_object_get(error, "evalue"));
        snprintf(ex->error, sizeof ex->error, "%s: %s", ename ? ename : "?", evalue ? evalue : "");
    }
    ex->done = 1;
}

/* CPU time, split as getrusage reports it: seconds (s_cpu_now) or µs per execution. */
typedef struct {
    double user;
    double sys;
} s_cpu_t;

/* This process's CPU so far (RUSAGE_SELF), NAN in both when getrusage fails. */
static s_cpu_t s_cpu_now(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) < 0)
        return (s_cpu_t){NAN, NAN};
    return (s_cpu_t){(double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6,
                     (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6};
}

/* Run one execution to its end. Returns the round trip in ms, or -1 with a message on stderr;
 * *inside_ms (when not NULL) gets the result's duration_ms. */
static double s_execute_once(kg_gateway_t *gw, kg_kernel_t *kernel, const s_args_t *args,
                             double *inside_ms)
{
    s_exec_t ex = {0};
    kg_execute_opts_t opts = {.code = args->code, .on_done = s_on_done, .arg = &ex};
    cb_error_t err = {0};
    int64_t t0 = cb_now_us();
    if (!kg_execute(kernel, &opts, &err)) {
        fprintf(stderr, "bench_gateway: kg_execute: %s\n", err.msg);
        return -1;
    }
    if (kg_gateway_run_until(gw, &ex.done, args->timeout_ms) < 0 || !ex.done) {
        fprintf(stderr, "bench_gateway: execution not done within %d ms (or interrupted)\n",
                args->timeout_ms);
        return -1;
    }
    if (strcmp(ex.status, "ok") != 0) {
        fprintf(stderr, "bench_gateway: execution of '%s' ended with status '%s' %s\n", args->code,
                ex.status, ex.error);
        return -1;
    }
    if (inside_ms)
        *inside_ms = ex.duration_ms;
    return (double)(ex.done_us - t0) / 1000.0;
}

static void s_usage(FILE *f)
{
    fprintf(f, "usage: bench_gateway [--kernels K] [--n N] [--warmup W] [--code CODE]\n"
               "                     [--kernel-name NAME] [--kernels-dir DIR]\n"
               "                     [--max-seconds S] [--timeout S]\n"
               "Prints one JSON object with start-to-ready and execution round-trip figures.\n");
}

static int s_parse_args(int argc, char **argv, s_args_t *args)
{
    static const struct option longopts[] = {
        {"kernels", required_argument, NULL, 'k'},
        {"n", required_argument, NULL, 'n'},
        {"warmup", required_argument, NULL, 'w'},
        {"code", required_argument, NULL, 'c'},
        {"kernel-name", required_argument, NULL, 'K'},
        {"kernels-dir", required_argument, NULL, 'd'},
        {"max-seconds", required_argument, NULL, 'm'},
        {"timeout", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "k:n:w:c:K:d:m:t:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'k': args->kernels = atoi(optarg); break;
        case 'n': args->n = atoi(optarg); break;
        case 'w': args->warmup = atoi(optarg); break;
        case 'c': args->code = optarg; break;
        case 'K': args->kernel_name = optarg; break;
        case 'd': args->kernels_dir = optarg; break;
        case 'm': args->max_seconds = atof(optarg); break;
        case 't': args->timeout_ms = (int)(atof(optarg) * 1000); break;
        case 'h': s_usage(stdout); exit(0);
        default: s_usage(stderr); return -1;
        }
    }
    if (optind != argc || args->kernels < 1 || args->n < 1 || args->warmup < 0 ||
        args->max_seconds <= 0 || args->timeout_ms <= 0) {
        fprintf(stderr, "bench_gateway: --kernels and --n must be at least 1, --warmup at least 0, "
                        "--max-seconds and --timeout positive\n");
        s_usage(stderr);
        return -1;
    }
    return 0;
}

/* Start args->kernels kernels one after another; fill starts[] and start_ms[]. Returns the first
 * kernel, or NULL with a message on stderr. */
static kg_kernel_t *s_start_kernels(kg_gateway_t *gw, const s_args_t *args, s_start_t *starts,
                                    double *start_ms)
{
    kg_kernel_t *first = NULL;
    for (int i = 0; i < args->kernels; i++) {
        s_start_t *st = &starts[i];
        kg_kernel_opts_t opts = {.kernel_name = args->kernel_name,
                                 .env = s_kernel_env,
                                 .on_event = s_on_event,
                                 .arg = st};
        cb_error_t err = {0};
        st->started_us = cb_now_us();
        kg_kernel_t *kernel = kg_kernel_start(gw, &opts, &err);
        if (!kernel) {
            fprintf(stderr, "bench_gateway: kg_kernel_start: %s\n", err.msg);
            return NULL;
        }
        if (kg_gateway_run_until(gw, &st->wake, args->timeout_ms) < 0 || !st->ready) {
            fprintf(stderr, "bench_gateway: kernel %d not ready within %d ms: %s\n", i + 1,
                    args->timeout_ms, st->why[0] ? st->why : "timed out or interrupted");
            return NULL;
        }
        start_ms[i] = (double)(st->ready_us - st->started_us) / 1000.0;
        fprintf(stderr, "bench_gateway: kernel %d/%d: ready in %.1f ms\n", i + 1, args->kernels,
                start_ms[i]);
        if (!first)
            first = kernel;
    }
    return first;
}

/* Warm up, then time the executions; fill exec_ms[], outside_ms[] (each round trip minus the
 * result's duration_ms) and *cpu_us_per_exec (user and sys, µs per execution). Returns the number
 * timed (stopping early at the time limit, with *note set), or -1. */
static int s_run_executions(kg_gateway_t *gw, kg_kernel_t *kernel, const s_args_t *args,
                            double *exec_ms, double *outside_ms, s_cpu_t *cpu_us_per_exec,
                            const char **note)
{
    for (int i = 0; i < args->warmup; i++)
        if (s_execute_once(gw, kernel, args, NULL) < 0)
            return -1;
    fprintf(stderr, "bench_gateway: %d warm-up executions done; timing %d\n", args->warmup,
            args->n);

    int done = 0;
    int64_t t_end = cb_now_us() + (int64_t)(args->max_seconds * 1e6);
    s_cpu_t cpu0 = s_cpu_now();
    while (done < args->n) {
        if (cb_now_us() > t_end) {
            *note = "time limit reached";
            fprintf(stderr, "bench_gateway: time limit of %g s reached\n", args->max_seconds);
            break;
        }
        double inside_ms = 0;
        double ms = s_execute_once(gw, kernel, args, &inside_ms);
        if (ms < 0)
            return -1;
        outside_ms[done] = ms - inside_ms;
        exec_ms[done++] = ms;
    }
    s_cpu_t cpu1 = s_cpu_now();
    cpu_us_per_exec->user = done ? (cpu1.user - cpu0.user) * 1e6 / done : NAN;
    cpu_us_per_exec->sys = done ? (cpu1.sys - cpu0.sys) * 1e6 / done : NAN;
    return done;
}

/* µs rounded to 0.1 for printing, or null when not measured. Caller owns return value. */
static json_t *s_json_us(double us)
{
    return isnan(us) ? json_null() : json_real(round(us * 10) / 10);
}

static int s_print_result(const s_args_t *args, double *start_ms, double *exec_ms,
                          double *outside_ms, int n_exec, s_cpu_t cpu_us_per_exec, const char *note)
{
    json_t *out = json_pack("{s:s, s:s, s:s, s:s, s:i, s:o, s:o, s:o, s:o, s:o, s:o}", "name",
                            "cellblock-gateway", "transport", "ipc", "kernel_name",
                            args->kernel_name, "code", args->code, "warmup", args->warmup,
                            "start_ms", bench_summary(start_ms, (size_t)args->kernels), "exec_ms",
                            bench_summary(exec_ms, (size_t)n_exec), "outside_execution_ms",
                            bench_summary(outside_ms, (size_t)n_exec), "gateway_cpu_us_per_exec",
                            s_json_us(cpu_us_per_exec.user + cpu_us_per_exec.sys),
                            "gateway_user_cpu_us_per_exec", s_json_us(cpu_us_per_exec.user),
                            "gateway_sys_cpu_us_per_exec", s_json_us(cpu_us_per_exec.sys));
    if (!out) {
        fprintf(stderr, "bench_gateway: building the JSON result failed\n");
        return -1;
    }
    if (note && json_object_set_new(out, "note", json_string(note)) < 0) {
        json_decref(out);
        return -1;
    }
    int rc = json_dumpf(out, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
    json_decref(out);
    if (rc < 0 || fputc('\n', stdout) == EOF || fflush(stdout) == EOF) {
        fprintf(stderr, "bench_gateway: writing the result failed\n");
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    s_args_t args = {.kernels = 5,
                     .n = 500,
                     .warmup = 20,
                     .code = "pass",
                     .kernel_name = "python3",
                     .max_seconds = 120,
                     .timeout_ms = 60000};
    if (s_parse_args(argc, argv, &args) < 0)
        return 2;

    s_start_t *starts = calloc((size_t)args.kernels, sizeof *starts);
    double *start_ms = calloc((size_t)args.kernels, sizeof *start_ms);
    double *exec_ms = calloc((size_t)args.n, sizeof *exec_ms);
    double *outside_ms = calloc((size_t)args.n, sizeof *outside_ms);
    if (!starts || !start_ms || !exec_ms || !outside_ms) {
        fprintf(stderr, "bench_gateway: out of memory\n");
        return 1;
    }

    kg_config_t config = {.kernels_dir = args.kernels_dir,
                          .transport = JP_TRANSPORT_IPC,
                          .startup_timeout_ms = args.timeout_ms};
    cb_error_t err = {0};
    kg_gateway_t *gw = kg_gateway_new(&config, &err);
    int rc = 1;
    if (!gw) {
        fprintf(stderr, "bench_gateway: kg_gateway_new: %s\n", err.msg);
    } else {
        s_cpu_t cpu_us_per_exec = {NAN, NAN};
        const char *note = NULL;
        kg_kernel_t *kernel = s_start_kernels(gw, &args, starts, start_ms);
        int n_exec = kernel ? s_run_executions(gw, kernel, &args, exec_ms, outside_ms,
                                               &cpu_us_per_exec, &note)
                            : -1;
        if (n_exec >= 0 && s_print_result(&args, start_ms, exec_ms, outside_ms, n_exec,
                                          cpu_us_per_exec, note) == 0)
            rc = 0;
        kg_gateway_destroy(&gw); /* shuts every kernel down; their STOPPED events use starts[] */
    }
    free(starts);
    free(start_ms);
    free(exec_ms);
    free(outside_ms);
    return rc;
}
