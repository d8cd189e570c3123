/* bench/stats.h: the summary figures every benchmark prints, kept in one place so that
 * bench_gateway, bench_mcp, bench_sandbox, bench_pool and bench_soak report the same shape, {p50,
 * p90, p99, mean, min, max, n} in ms rounded to 4 decimals, which bench/report.py reads.
 * Percentiles are nearest-rank, as in bench_jupyter_client.py. */
#ifndef BENCH_STATS_H
#define BENCH_STATS_H

#include <stddef.h>

#include <jansson.h>

typedef struct {
    double p50, p90, p99, mean, min, max;
    size_t n;
} bench_stats_t;

/* Nearest-rank figures of n values, unrounded (v is sorted in place). n may be 0: all zeros. */
bench_stats_t bench_stats(double *v, size_t n);

/* {p50, p90, p99, mean, min, max, n}, figures rounded by bench_round4; {n: 0} when s->n is 0.
 * Caller owns return value. */
json_t *bench_stats_json(const bench_stats_t *s);

/* bench_stats_json() of bench_stats(v, n) (v is sorted in place). Caller owns return value. */
json_t *bench_summary(double *v, size_t n);

/* v rounded to 4 decimals, for printing. */
double bench_round4(double v);

/* Write a benchmark's result, indented, to path, or to stdout when path is NULL. Returns 0, or -1
 * with a message on stderr naming prog. */
int bench_json_write(const json_t *out, const char *path, const char *prog);

#endif
