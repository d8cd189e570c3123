/* bench/proc.h: what /proc says about a process's memory, for the benchmarks that report memory
 * per sandbox (bench_pool, bench_soak): this process's resident set (the gateway's own growth)
 * and a kernel process's RSS and PSS (its own share of pages shared with other kernels). */
#ifndef BENCH_PROC_H
#define BENCH_PROC_H

#include <stdint.h>
#include <sys/types.h>

/* This process's VmRSS from /proc/self/status, in bytes; -1 when unreadable. */
int64_t bench_self_rss_bytes(void);

/* Rss and Pss of process pid from /proc/PID/smaps_rollup, in bytes. Returns 0, or -1 (both set
 * to -1) when it cannot be read, e.g. the process is gone or pid is 0. */
int bench_proc_rss_pss(pid_t pid, int64_t *rss, int64_t *pss);

#endif
