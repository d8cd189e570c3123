/* bench/proc.c: see proc.h. */
#include <stdio.h>
#include <string.h>

#include "cb/cleanup.h"
#include "proc.h"

/* The "<key>: <n> kB" line of an open /proc file, in bytes; -1 when absent. */
static int64_t s_kb_field(FILE *f, const char *key)
{
    char line[256];
    size_t len = strlen(key);
    rewind(f);
    while (fgets(line, sizeof line, f)) {
        long long kb;
        if (strncmp(line, key, len) == 0 && line[len] == ':' &&
            sscanf(line + len + 1, "%lld", &kb) == 1)
            return (int64_t)kb * 1024;
    }
    return -1;
}

int64_t bench_self_rss_bytes(void)
{
    cleanup_fclose FILE *f = fopen("/proc/self/status", "re");
    return f ? s_kb_field(f, "VmRSS") : -1;
}

int bench_proc_rss_pss(pid_t pid, int64_t *rss, int64_t *pss)
{
    *rss = *pss = -1;
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/smaps_rollup", (int)pid);
    cleanup_fclose FILE *f = pid > 0 ? fopen(path, "re") : NULL;
    if (!f)
        return -1;
    *rss = s_kb_field(f, "Rss");
    *pss = s_kb_field(f, "Pss");
    return *rss >= 0 && *pss >= 0 ? 0 : -1;
}
