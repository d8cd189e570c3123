/* bench/stats.c: see stats.h. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stats.h"

static int s_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bench_round4(double v) { return round(v * 1e4) / 1e4; }

bench_stats_t bench_stats(double *v, size_t n)
{
    bench_stats_t s = {.n = n};
    if (n == 0)
        return s;
    qsort(v, n, sizeof *v, s_cmp_double);
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += v[i];
    s.mean = sum / (double)n;
    s.min = v[0];
    s.max = v[n - 1];
    const double ps[3] = {50, 90, 99};
    double *out[3] = {&s.p50, &s.p90, &s.p99};
    for (int i = 0; i < 3; i++) {
        double rank = ceil(ps[i] / 100.0 * (double)n);
        *out[i] = v[rank < 1 ? 0 : (size_t)rank - 1];
    }
    return s;
}

json_t *bench_stats_json(const bench_stats_t *s)
{
    if (s->n == 0)
        return json_pack("{s:i}", "n", 0);
    return json_pack("{s:f, s:f, s:f, s:f, s:f, s:f, s:I}", "p50", bench_round4(s->p50), "p90",
                     bench_round4(s->p90), "p99", bench_round4(s->p99), "mean",
                     bench_round4(s->mean), "min", bench_round4(s->min), "max",
                     bench_round4(s->max), "n", (json_int_t)s->n);
}

json_t *bench_summary(double *v, size_t n)
{
    bench_stats_t s = bench_stats(v, n);
    return bench_stats_json(&s);
}

int bench_json_write(const json_t *out, const char *path, const char *prog)
{
    FILE *f = path ? fopen(path, "we") : stdout;
    if (!f) {
        fprintf(stderr, "%s: open '%s': %s\n", prog, path, strerror(errno));
        return -1;
    }
    int rc = out ? json_dumpf(out, f, JSON_INDENT(2) | JSON_REAL_PRECISION(10)) : -1;
    if (rc == 0 && fputc('\n', f) == EOF)
        rc = -1;
    if ((path ? fclose(f) : fflush(f)) == EOF)
        rc = -1;
    if (rc < 0)
        fprintf(stderr, "%s: writing the result to %s failed\n", prog, path ? path : "stdout");
    return rc;
}
