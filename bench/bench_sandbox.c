/* bench_sandbox.c: what a sandbox adds to starting a process and a kernel.
 *
 * The goal: the sandbox adds under 10 ms. Four cases, each against its reference measured
 * in the same run, interleaved (host, sandbox, host, sandbox, ...) so machine load hits both:
 *
 *   trivial_host_ms      posix_spawn /bin/true and waitpid: the reference.
 *   trivial_sandbox_ms   sbx_new (a fresh run dir each time, the gateway's default limits) +
 *                        sbx_spawn /bin/true + sbx_proc_wait; of which sandbox_new_ms is sbx_new
 *                        alone. sandbox_destroy_ms (sbx_destroy) is timed apart, not added in.
 *   kernel_host_ms       a gateway with no_sandbox: kg_kernel_start until KG_EVENT_READY.
 *   kernel_sandbox_ms    a gateway with the default config (a sandbox per kernel), the same.
 *
 * Each kernel is shut down (and reaped) before the next starts, so at most one runs at a time.
 * One untimed warm-up of each case comes first (page cache, Python's bytecode cache).
 * added = sandbox p50 - host p50, for the trivial process and for the kernel (the verdict's
 * figure); added_paired = the median of the paired differences sandbox_i - host_i, which load
 * that drifts during the run sways less.
 *
 * Prints one JSON object on stdout (jansson) for bench/report.py; progress, the figures and the
 * verdict go to stderr. Percentiles are nearest-rank, as in the other benchmarks. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "cb/util.h"
#include "kg/gateway.h"
#include "kg/sandbox.h"
#include "kg/kernel.h"
#include "sbx/sbx.h"
#include "stats.h"

#define S_GOAL_MS 10.0
#define S_MiB (1024ull * 1024ull)

static const char *const s_true_argv[] = {"/bin/true", NULL};
static const char *const s_true_env[] = {"PATH=/usr/bin:/bin", NULL};
/* As in bench_gateway.c: only silences debugpy's start-up warning on each kernel's stderr. */
static const char *const s_kernel_env[] = {"PYDEVD_DISABLE_FILE_VALIDATION=1", NULL};

typedef struct {
    int n;       /* trivial runs of each kind */
    int kernels; /* kernel starts of each kind */
    const char *kernel_name;
    const char *kernels_dir;
    int timeout_ms;
} s_args_t;

/* One kernel start, watched through its events. Lives until its gateway is destroyed. */
typedef struct {
    volatile int wake;    /* READY, or a sign it never will be */
    volatile int stopped; /* KG_EVENT_STOPPED seen */
    int ready;
    int64_t ready_us;
    char why[256];
    char last_stderr[256]; /* the kernel's last stderr line, for a failure's message */
} s_watch_t;

/* Median of sbx[i] - host[i] over n pairs; diff holds n. */
static double s_paired_median(const double *host, const double *sbx, double *diff, size_t n)
{
    for (size_t i = 0; i < n; i++)
        diff[i] = sbx[i] - host[i];
    return bench_stats(diff, n).p50;
}

static double s_ms_since(int64_t t0_us) { return (double)(cb_now_us() - t0_us) / 1000.0; }

/* trivial/host: spawn /bin/true and reap it. Returns ms, or -1 with a message on stderr. */
static double s_trivial_host(void)
{
    pid_t pid;
    int status = 0;
    int64_t t0 = cb_now_us();
    int rc = posix_spawn(&pid, s_true_argv[0], NULL, NULL, (char *const *)s_true_argv,
                         (char *const *)s_true_env);
    if (rc != 0) {
        fprintf(stderr, "bench_sandbox: posix_spawn %s: %s\n", s_true_argv[0], strerror(rc));
        return -1;
    }
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            fprintf(stderr, "bench_sandbox: waitpid: %s\n", strerror(errno));
            return -1;
        }
    }
    double ms = s_ms_since(t0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "bench_sandbox: %s on the host failed (status %d)\n", s_true_argv[0],
                status);
        return -1;
    }
    return ms;
}

/* trivial/sandbox in a fresh sandbox at <tmp>/t<i>: fills *total (sbx_new to exit), *create
 * (sbx_new alone), *destroy (sbx_destroy) in ms and *layers. Returns 0, or -1 with a message. */
static int s_trivial_sandbox(const char *tmp, int i, const s_args_t *args, double *total,
                             double *create, double *destroy, sbx_layers_t *layers)
{
    char run[PATH_MAX];
    snprintf(run, sizeof run, "%s/t%d", tmp, i);
    /* The limits kg_sandbox_create gives a sandbox by default, so the cgroups are set up too. */
    sbx_policy_t policy = {.run_dir = run, .memory_bytes = 2048 * S_MiB, .pids_max = 1024};
    sbx_spawn_opts_t opts = {
        .argv = s_true_argv, .env = s_true_env, .stdin_fd = -1, .stdout_fd = -1, .stderr_fd = -1};
    cb_error_t err = {0};
    sbx_exit_t ex = {0};
    int64_t t0 = cb_now_us();
    sbx_t *s = sbx_new(&policy, &err);
    if (!s) {
        fprintf(stderr, "bench_sandbox: sbx_new: %s\n", err.msg);
        return -1;
    }
    *create = s_ms_since(t0);
    sbx_proc_t *p = sbx_spawn(s, &opts, &err);
    int ok = p && sbx_proc_wait(p, &ex, args->timeout_ms, &err) == 0;
    *total = s_ms_since(t0);
    sbx_proc_destroy(&p);
    *layers = *sbx_layers(s);
    int64_t t1 = cb_now_us();
    sbx_destroy(&s);
    *destroy = s_ms_since(t1);
    if (!ok) {
        fprintf(stderr, "bench_sandbox: %s in a sandbox: %s\n", s_true_argv[0], err.msg);
        return -1;
    }
    if (!ex.exited || ex.code != 0) {
        char *how = sbx_exit_describe(&ex);
        fprintf(stderr, "bench_sandbox: %s in a sandbox ended with %s\n", s_true_argv[0],
                how ? how : "a failure");
        free(how);
        return -1;
    }
    return 0;
}

static void s_on_event(kg_kernel_t *kernel, kg_kernel_event_t event, const char *detail, void *arg)
{
    s_watch_t *w = arg;
    if (event == KG_EVENT_READY && !w->ready) {
        w->ready_us = cb_now_us();
        w->ready = 1;
    } else if (event == KG_EVENT_STDERR) {
        snprintf(w->last_stderr, sizeof w->last_stderr, "%s", detail ? detail : "");
        return;
    } else if (event == KG_EVENT_STOPPED) {
        w->stopped = 1;
    } else if (event != KG_EVENT_DIED && event != KG_EVENT_DEAD) {
        return;
    }
    if (!w->ready && !w->why[0])
        snprintf(w->why, sizeof w->why, "kernel %s: %s",
                 event == KG_EVENT_STOPPED ? "stopped" : "died", detail ? detail : "");
    w->wake = 1;
}

/* Start a kernel, time it to READY, shut it down and wait until it has stopped. Returns ms, or
 * -1 with a message on stderr. */
static double s_kernel_once(kg_gateway_t *gw, const char *what, const s_args_t *args, s_watch_t *w)
{
    kg_kernel_opts_t opts = {
        .kernel_name = args->kernel_name, .env = s_kernel_env, .on_event = s_on_event, .arg = w};
    cb_error_t err = {0};
    int64_t t0 = cb_now_us();
    kg_kernel_t *kernel = kg_kernel_start(gw, &opts, &err);
    if (!kernel) {
        fprintf(stderr, "bench_sandbox: kernel/%s: kg_kernel_start: %s\n", what, err.msg);
        return -1;
    }
    if (kg_gateway_run_until(gw, &w->wake, args->timeout_ms) < 0 || !w->ready) {
        fprintf(stderr,
                "bench_sandbox: kernel/%s not ready within %d ms: %s (its last stderr "
                "line: %s)\n",
                what, args->timeout_ms, w->why[0] ? w->why : "timed out or interrupted",
                w->last_stderr);
        return -1;
    }
    double ms = (double)(w->ready_us - t0) / 1000.0;
    kg_kernel_shutdown(kernel);
    if (kg_gateway_run_until(gw, &w->stopped, args->timeout_ms) < 0) {
        fprintf(stderr, "bench_sandbox: kernel/%s did not stop within %d ms\n", what,
                args->timeout_ms);
        return -1;
    }
    return ms;
}

static int s_parse_args(int argc, char **argv, s_args_t *args)
{
    static const struct option longopts[] = {{"n", required_argument, NULL, 'n'},
                                             {"kernels", required_argument, NULL, 'k'},
                                             {"kernel-name", required_argument, NULL, 'K'},
                                             {"kernels-dir", required_argument, NULL, 'd'},
                                             {"timeout", required_argument, NULL, 't'},
                                             {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "n:k:K:d:t:", longopts, NULL)) != -1) {
        if (c == 'n')
            args->n = atoi(optarg);
        else if (c == 'k')
            args->kernels = atoi(optarg);
        else if (c == 'K')
            args->kernel_name = optarg;
        else if (c == 'd')
            args->kernels_dir = optarg;
        else if (c == 't')
            args->timeout_ms = (int)(atof(optarg) * 1000);
        else
            break;
    }
    if (c != -1 || optind != argc || args->n < 1 || args->kernels < 1 || args->timeout_ms <= 0) {
        fprintf(stderr,
                "usage: bench_sandbox [--n N (50)] [--kernels K (10)] [--kernel-name NAME]\n"
                "                     [--kernels-dir DIR] [--timeout S (60)]\n"
                "N and K at least 1, the timeout positive.\n");
        return -1;
    }
    return 0;
}

/* Print one case's figures, and for a sandbox case what it adds over its host case. */
static void s_print_case(const char *name, const bench_stats_t *s, const bench_stats_t *host,
                         double paired)
{
    fprintf(stderr, "bench_sandbox: %-16s p50 %8.2f  p90 %8.2f  min %8.2f ms (n %zu)", name, s->p50,
            s->p90, s->min, s->n);
    if (host)
        fprintf(stderr, "  adds %.2f ms at p50 (%s 10 ms; paired median %.2f)", s->p50 - host->p50,
                s->p50 - host->p50 < S_GOAL_MS ? "under" : "NOT under", paired);
    fputc('\n', stderr);
}

int main(int argc, char **argv)
{
    s_args_t args = {.n = 50, .kernels = 10, .kernel_name = "python3", .timeout_ms = 60000};
    if (s_parse_args(argc, argv, &args) < 0)
        return 2;
    sbx_layers_t layers;
    sbx_layers_probe(&layers);
    if (!layers.userns) {
        fprintf(stderr, "bench_sandbox: no user namespaces: %s\n", layers.userns_why);
        json_t *skip = json_pack("{s:s, s:s+}", "name", "sandbox", "skipped",
                                 "no user namespaces: ", layers.userns_why);
        int rc = skip && json_dumpf(skip, stdout, JSON_INDENT(2)) == 0 && puts("") != EOF;
        json_decref(skip);
        return rc ? 0 : 1;
    }
    char tmp[] = "/tmp/cb-bench-sandbox.XXXXXX";
    size_t n = (size_t)args.n, k = (size_t)args.kernels;
    double *v = calloc(5 * (n + 1) + 3 * (k + 1), sizeof *v); /* +1: the warm-up's slot */
    s_watch_t *watches = calloc(2 * (k + 1), sizeof *watches);
    if (!v || !watches || !mkdtemp(tmp)) {
        fprintf(stderr, "bench_sandbox: setting up: %s\n", strerror(errno));
        return 1;
    }
    double *t_host = v, *t_sbx = t_host + n + 1, *t_new = t_sbx + n + 1, *t_del = t_new + n + 1;
    double *t_diff = t_del + n + 1, *k_host = t_diff + n + 1, *k_sbx = k_host + k + 1;
    double *k_diff = k_sbx + k + 1;

    /* Slot 0 is the warm-up; the figures use slots 1..n. */
    int ok = 1;
    fprintf(stderr, "bench_sandbox: %d trivial runs of each kind\n", args.n);
    for (size_t i = 0; ok && i <= n; i++) {
        t_host[i] = s_trivial_host();
        ok = t_host[i] >= 0 &&
             s_trivial_sandbox(tmp, (int)i, &args, &t_sbx[i], &t_new[i], &t_del[i], &layers) == 0;
    }
    cb_error_t err = {0};
    kg_config_t host_cfg = {
        .kernels_dir = args.kernels_dir, .no_sandbox = true, .startup_timeout_ms = args.timeout_ms};
    kg_config_t sbx_cfg = {.kernels_dir = args.kernels_dir, .startup_timeout_ms = args.timeout_ms};
    kg_gateway_t *host_gw = ok ? kg_gateway_new(&host_cfg, &err) : NULL;
    kg_gateway_t *sbx_gw = host_gw ? kg_gateway_new(&sbx_cfg, &err) : NULL;
    if (ok && !sbx_gw) {
        fprintf(stderr, "bench_sandbox: kg_gateway_new: %s\n", err.msg);
        ok = 0;
    }
    fprintf(stderr, "bench_sandbox: %d kernel starts of each kind\n", args.kernels);
    for (size_t i = 0; ok && i <= k; i++) {
        k_host[i] = s_kernel_once(host_gw, "host", &args, &watches[2 * i]);
        k_sbx[i] =
            k_host[i] < 0 ? -1 : s_kernel_once(sbx_gw, "sandbox", &args, &watches[2 * i + 1]);
        ok = k_sbx[i] >= 0;
        if (ok && i > 0)
            fprintf(stderr, "bench_sandbox: kernel %zu/%zu: host %.1f ms, sandbox %.1f ms\n", i, k,
                    k_host[i], k_sbx[i]);
    }
    kg_gateway_destroy(&sbx_gw); /* after this no event reaches watches[] */
    kg_gateway_destroy(&host_gw);
    cb_rm_rf(tmp, NULL);
    free(watches);
    if (!ok) {
        free(v);
        return 1;
    }
    double t_paired = s_paired_median(t_host + 1, t_sbx + 1, t_diff, n);
    double k_paired = s_paired_median(k_host + 1, k_sbx + 1, k_diff, k);
    bench_stats_t th = bench_stats(t_host + 1, n), ts = bench_stats(t_sbx + 1, n);
    bench_stats_t tn = bench_stats(t_new + 1, n), td = bench_stats(t_del + 1, n);
    bench_stats_t kh = bench_stats(k_host + 1, k), ks = bench_stats(k_sbx + 1, k);
    free(v);
    double t_added = ts.p50 - th.p50, k_added = ks.p50 - kh.p50;
    bool met = t_added < S_GOAL_MS && k_added < S_GOAL_MS;
    s_print_case("trivial/host", &th, NULL, 0);
    s_print_case("trivial/sandbox", &ts, &th, t_paired);
    s_print_case(" of it sbx_new", &tn, NULL, 0);
    s_print_case("sbx_destroy", &td, NULL, 0);
    s_print_case("kernel/host", &kh, NULL, 0);
    s_print_case("kernel/sandbox", &ks, &kh, k_paired);
    fprintf(stderr, "bench_sandbox: adds < 10 ms: %s\n", met ? "met" : "not met");

    static const char *const cgroups[] = {"none", "v1", "v2"};
    json_t *out = json_pack(
        "{s:s, s:f, s:s, s:i, s:{s:b, s:s, s:b, s:b, s:b, s:b}, s:o, s:o, s:o, s:o, s:o, s:o, "
        "s:f, s:f, s:f, s:f, s:b, s:b, s:b}",
        "name", "sandbox", "goal_ms", S_GOAL_MS, "kernel_name", args.kernel_name, "warmup", 1,
        "layers", "userns", layers.userns, "cgroup", cgroups[layers.cgroup], "cgroup_memory",
        layers.cgroup_memory, "cgroup_pids", layers.cgroup_pids, "cgroup_cpu", layers.cgroup_cpu,
        "seccomp", layers.seccomp, "trivial_host_ms", bench_stats_json(&th), "trivial_sandbox_ms",
        bench_stats_json(&ts), "sandbox_new_ms", bench_stats_json(&tn), "sandbox_destroy_ms",
        bench_stats_json(&td), "kernel_host_ms", bench_stats_json(&kh), "kernel_sandbox_ms",
        bench_stats_json(&ks), "trivial_added_ms", bench_round4(t_added), "kernel_added_ms",
        bench_round4(k_added), "trivial_added_paired_ms", bench_round4(t_paired),
        "kernel_added_paired_ms", bench_round4(k_paired), "trivial_goal_met", t_added < S_GOAL_MS,
        "kernel_goal_met", k_added < S_GOAL_MS, "goal_met", met);
    int rc = out ? json_dumpf(out, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(10)) : -1;
    json_decref(out);
    if (rc < 0 || fputc('\n', stdout) == EOF || fflush(stdout) == EOF) {
        fprintf(stderr, "bench_sandbox: writing the result failed\n");
        return 1;
    }
    return 0;
}
