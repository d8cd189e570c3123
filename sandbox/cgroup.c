/* cgroup.c: the sandbox's resource limits, on cgroup v2 or v1.
 *
 * Each sandbox gets its own cgroup under the gateway's own one ("cellblock-<gateway pid>-<run
 * dir name>"): on v2 one directory with memory, pids and cpu enabled by the parent; on v1 one
 * directory in each of the memory, pids, cpu and cpuacct hierarchies. The init is put in before
 * it starts building the sandbox, so everything inside is charged and limited from the first
 * byte. Memory has swap off (memsw / memory.swap.max). OOM kills are counted from the memory
 * controller's own counter, so a process killed by SIGKILL can be told apart as an OOM victim.
 *
 * A controller we cannot have (not mounted, not delegated, no write access) is recorded in the
 * layers with the reason, never an error: the gateway says so once at start, and doctor prints
 * it. At destroy every process left is killed and the directories removed. What a killed gateway
 * could not remove, the next one does at start (sbx_cgroup_sweep_stale, below): the name carries
 * the gateway's pid, so a cgroup whose gateway is gone is known stale.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include <linux/magic.h>

#include "cb/alloc.h"
#include "cb/cleanup.h"
#include "cb/log.h"
#include "sbx_private.h"

enum { CG_MEMORY, CG_PIDS, CG_CPU, CG_CPUACCT, CG_COUNT };
static const char *const s_names[CG_COUNT] = {"memory", "pids", "cpu", "cpuacct"};

struct sbx_cgroup {
    sbx_cgroup_version_t version;
    char *dir[CG_COUNT]; /* per controller; NULL: missing. v2: borrowed from v2dir */
    char *v2dir;         /* v2: the one directory */
};

static int s_write(const char *dir, const char *file, const char *value)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    cleanup_close int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t len = strlen(value);
    return write(fd, value, len) == (ssize_t)len ? 0 : -1;
}

static int s_write_u64(const char *dir, const char *file, uint64_t value)
{
    char text[32];
    snprintf(text, sizeof text, "%" PRIu64, value);
    return s_write(dir, file, text);
}

/* The number after "key " in a flat keyed file (memory.events, cpu.stat), or the whole file's
 * number when key is NULL. 0 when absent. */
static uint64_t s_read_u64(const char *dir, const char *file, const char *key)
{
    char path[PATH_MAX], buf[4096];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    if (!key)
        return strtoull(buf, NULL, 10);
    size_t klen = strlen(key);
    for (char *line = buf; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
        if (strncmp(line, key, klen) == 0 && line[klen] == ' ')
            return strtoull(line + klen + 1, NULL, 10);
    return 0;
}

/* Our own cgroup path in the hierarchy holding controller (v1), or the v2 path (controller
 * NULL), from /proc/self/cgroup. Caller owns return value. */
static char *s_own_path(const char *controller)
{
    cleanup_fclose FILE *f = fopen("/proc/self/cgroup", "re");
    char line[1024];
    while (f && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        char *list = strchr(line, ':'), *path = list ? strchr(list + 1, ':') : NULL;
        if (!path)
            continue;
        *path++ = '\0';
        list++;
        if (!controller) {
            if (*list == '\0')
                return cb_xstrdup(path);
            continue;
        }
        for (char *save = NULL, *c = strtok_r(list, ",", &save); c; c = strtok_r(NULL, ",", &save))
            if (strcmp(c, controller) == 0)
                return cb_xstrdup(path);
    }
    return NULL;
}

/* Where the v1 hierarchy holding controller is mounted, from /proc/self/mountinfo.
 * Caller owns return value. */
static char *s_v1_mount(const char *controller)
{
    cleanup_fclose FILE *f = fopen("/proc/self/mountinfo", "re");
    char line[4096];
    while (f && fgets(line, sizeof line, f)) {
        /* id parent maj:min root mountpoint opts [optional...] - fstype source superopts */
        char *sep = strstr(line, " - ");
        char mnt[PATH_MAX], fstype[32], superopts[1024];
        if (!sep || sscanf(line, "%*s %*s %*s %*s %4095s", mnt) != 1 ||
            sscanf(sep + 3, "%31s %*s %1023s", fstype, superopts) != 2 ||
            strcmp(fstype, "cgroup") != 0)
            continue;
        for (char *save = NULL, *o = strtok_r(superopts, ",", &save); o;
             o = strtok_r(NULL, ",", &save))
            if (strcmp(o, controller) == 0)
                return cb_xstrdup(mnt);
    }
    return NULL;
}

__attribute__((format(printf, 2, 3))) static void s_note(sbx_layers_t *layers, const char *fmt, ...)
{
    size_t used = strlen(layers->cgroup_why);
    snprintf(layers->cgroup_why + used, sizeof layers->cgroup_why - used, "%s", used ? "; " : "");
    used = strlen(layers->cgroup_why);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(layers->cgroup_why + used, sizeof layers->cgroup_why - used, fmt, ap);
    va_end(ap);
}

/* Each limit asked for is written to its controller; a controller that is there but refuses the
 * write is a failure for this sandbox (-1, noted in the layers), not a silent sandbox without
 * that limit. A controller that is not there at all was noted by the setup. */
static int s_apply_v1(sbx_cgroup_t *cg, const sbx_policy_t *p, sbx_layers_t *layers)
{
    int rc = 0;
    if (cg->dir[CG_MEMORY] && p->memory_bytes) {
        const char *d = cg->dir[CG_MEMORY];
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/memory.memsw.limit_in_bytes", d);
        bool memsw = access(path, F_OK) == 0;
        if (s_write_u64(d, "memory.limit_in_bytes", p->memory_bytes) < 0 ||
            (memsw && s_write_u64(d, "memory.memsw.limit_in_bytes", p->memory_bytes) < 0)) {
            s_note(layers, "memory limit not writable in %s: %s", d, strerror(errno));
            layers->cgroup_memory = false;
            rc = -1;
        }
        s_write(d, "memory.swappiness", "0"); /* best effort where swap accounting is off */
    }
    if (cg->dir[CG_PIDS] && p->pids_max &&
        s_write_u64(cg->dir[CG_PIDS], "pids.max", p->pids_max) < 0) {
        s_note(layers, "pids limit not writable in %s: %s", cg->dir[CG_PIDS], strerror(errno));
        layers->cgroup_pids = false;
        rc = -1;
    }
    /* The cpu controller (not cpuacct) holds the CFS quota; every process of the sandbox is in
     * its directory, as the init is put there before it runs and everything inherits it. */
    if (cg->dir[CG_CPU] && p->cpu_millis &&
        (s_write_u64(cg->dir[CG_CPU], "cpu.cfs_period_us", 100000) < 0 ||
         s_write_u64(cg->dir[CG_CPU], "cpu.cfs_quota_us", (uint64_t)p->cpu_millis * 100) < 0)) {
        s_note(layers, "cpu quota not writable in %s: %s", cg->dir[CG_CPU], strerror(errno));
        layers->cgroup_cpu = false;
        rc = -1;
    }
    return rc;
}

static int s_apply_v2(sbx_cgroup_t *cg, const sbx_policy_t *p, sbx_layers_t *layers)
{
    const char *d = cg->v2dir;
    int rc = 0;
    if (cg->dir[CG_MEMORY] && p->memory_bytes) {
        if (s_write_u64(d, "memory.max", p->memory_bytes) < 0) {
            s_note(layers, "memory.max not writable in %s: %s", d, strerror(errno));
            layers->cgroup_memory = false;
            rc = -1;
        }
        s_write(d, "memory.swap.max", "0"); /* absent when swap accounting is off */
    }
    if (cg->dir[CG_PIDS] && p->pids_max && s_write_u64(d, "pids.max", p->pids_max) < 0) {
        s_note(layers, "pids.max not writable in %s: %s", d, strerror(errno));
        layers->cgroup_pids = false;
        rc = -1;
    }
    if (cg->dir[CG_CPU] && p->cpu_millis) {
        char quota[48];
        snprintf(quota, sizeof quota, "%" PRIu64 " 100000", (uint64_t)p->cpu_millis * 100);
        if (s_write(d, "cpu.max", quota) < 0) {
            s_note(layers, "cpu.max not writable in %s: %s", d, strerror(errno));
            layers->cgroup_cpu = false;
            rc = -1;
        }
    }
    return rc;
}

static char *s_leaf_name(const sbx_policy_t *p)
{
    char copy[PATH_MAX];
    snprintf(copy, sizeof copy, "%s", p->run_dir ? p->run_dir : "probe");
    return cb_strdup_printf("cellblock-%d-%s", (int)getpid(), basename(copy));
}

static void s_setup_v2(sbx_cgroup_t *cg, const char *leaf, sbx_layers_t *layers)
{
    cleanup_free char *own = s_own_path(NULL);
    if (!own) {
        s_note(layers, "no cgroup v2 entry in /proc/self/cgroup");
        return;
    }
    cleanup_free char *parent = cb_strdup_printf("/sys/fs/cgroup%s", strcmp(own, "/") ? own : "");
    /* Controllers must be enabled in the parent's subtree; v2 refuses that while the parent
     * itself holds processes (other than in the root), so a gateway sharing its cgroup with
     * others gets no limits, and says why. */
    bool want[CG_COUNT] = {true, true, true, false};
    char *dir = cb_strdup_printf("%s/%s", parent, leaf);
    if (mkdir(dir, 0755) < 0) {
        s_note(layers, "cannot create a cgroup under %s: %s", parent, strerror(errno));
        free(dir);
        return;
    }
    for (int c = 0; c < CG_COUNT; c++) {
        if (!want[c])
            continue;
        char op[16];
        snprintf(op, sizeof op, "+%s", s_names[c]);
        if (s_write(parent, "cgroup.subtree_control", op) < 0) {
            s_note(layers, "cannot enable %s in %s", s_names[c], parent);
            continue;
        }
        cg->dir[c] = dir;
    }
    layers->cgroup_memory = cg->dir[CG_MEMORY] != NULL;
    layers->cgroup_pids = cg->dir[CG_PIDS] != NULL;
    layers->cgroup_cpu = cg->dir[CG_CPU] != NULL;
    cg->dir[CG_CPUACCT] = dir; /* cpu.stat exists in every v2 cgroup */
    cg->v2dir = dir;
}

static void s_setup_v1(sbx_cgroup_t *cg, const char *leaf, sbx_layers_t *layers)
{
    for (int c = 0; c < CG_COUNT; c++) {
        cleanup_free char *mnt = s_v1_mount(s_names[c]);
        cleanup_free char *own = s_own_path(s_names[c]);
        if (!mnt || !own) {
            s_note(layers, "the %s controller is not mounted", s_names[c]);
            continue;
        }
        char *dir = cb_strdup_printf("%s%s/%s", mnt, strcmp(own, "/") ? own : "", leaf);
        /* Controllers mounted together (cpu,cpuacct on most v1 hosts) share one directory,
         * made for the first of them. */
        bool made = false;
        for (int e = 0; e < c; e++)
            made |= cg->dir[e] && strcmp(cg->dir[e], dir) == 0;
        if (!made && mkdir(dir, 0755) < 0) {
            s_note(layers, "cannot create %s: %s", dir, strerror(errno));
            free(dir);
            continue;
        }
        cg->dir[c] = dir;
    }
    layers->cgroup_memory = cg->dir[CG_MEMORY] != NULL;
    layers->cgroup_pids = cg->dir[CG_PIDS] != NULL;
    layers->cgroup_cpu = cg->dir[CG_CPU] != NULL;
}

sbx_cgroup_t *sbx_cgroup_new(const sbx_policy_t *policy, sbx_layers_t *layers, cb_error_t *err)
{
    sbx_cgroup_t *cg = cb_xcalloc(1, sizeof *cg);
    cleanup_free char *leaf = s_leaf_name(policy);
    layers->cgroup_why[0] = '\0';
    struct statfs fs;
    int rc;
    if (statfs("/sys/fs/cgroup", &fs) == 0 && fs.f_type == CGROUP2_SUPER_MAGIC) {
        cg->version = SBX_CGROUP_V2;
        s_setup_v2(cg, leaf, layers);
        rc = s_apply_v2(cg, policy, layers);
    } else {
        cg->version = SBX_CGROUP_V1;
        s_setup_v1(cg, leaf, layers);
        rc = s_apply_v1(cg, policy, layers);
    }
    bool any = layers->cgroup_memory || layers->cgroup_pids || layers->cgroup_cpu;
    layers->cgroup = any ? cg->version : SBX_CGROUP_NONE;
    if (rc < 0) {
        cb_error_fail(err, CB_ERR_LIMIT, "the sandbox's cgroup limits could not be set: %s",
                      layers->cgroup_why);
        sbx_cgroup_destroy(&cg);
        return NULL;
    }
    return cg;
}

int sbx_cgroup_add(sbx_cgroup_t *cg, pid_t pid, cb_error_t *err)
{
    char text[32];
    snprintf(text, sizeof text, "%d", (int)pid);
    if (cg->v2dir && s_write(cg->v2dir, "cgroup.procs", text) < 0)
        return cb_error_make(err, errno, "add the sandbox to cgroup '%s'", cg->v2dir);
    for (int c = 0; c < CG_COUNT && !cg->v2dir; c++) {
        if (!cg->dir[c])
            continue;
        if (s_write(cg->dir[c], "cgroup.procs", text) < 0)
            return cb_error_make(err, errno, "add the sandbox to cgroup '%s'", cg->dir[c]);
    }
    return 0;
}

uint64_t sbx_cgroup_oom_kills(const sbx_cgroup_t *cg)
{
    const char *d = cg->dir[CG_MEMORY];
    if (!d)
        return 0;
    return cg->version == SBX_CGROUP_V2 ? s_read_u64(d, "memory.events", "oom_kill")
                                        : s_read_u64(d, "memory.oom_control", "oom_kill");
}

int sbx_cgroup_usage(const sbx_cgroup_t *cg, sbx_usage_t *out)
{
    memset(out, 0, sizeof *out);
    const char *mem = cg->dir[CG_MEMORY], *pids = cg->dir[CG_PIDS], *acct = cg->dir[CG_CPUACCT];
    bool v2 = cg->version == SBX_CGROUP_V2;
    if (mem) {
        out->memory_bytes = s_read_u64(mem, v2 ? "memory.current" : "memory.usage_in_bytes", NULL);
        out->memory_peak_bytes =
            s_read_u64(mem, v2 ? "memory.peak" : "memory.max_usage_in_bytes", NULL);
        out->memory_limit_bytes =
            s_read_u64(mem, v2 ? "memory.max" : "memory.limit_in_bytes", NULL);
        out->oom_kills = sbx_cgroup_oom_kills(cg);
    }
    if (pids)
        out->pids = s_read_u64(pids, "pids.current", NULL);
    if (acct)
        out->cpu_usage_us = v2 ? s_read_u64(acct, "cpu.stat", "usage_usec")
                               : s_read_u64(acct, "cpuacct.usage", NULL) / 1000;
    return 0;
}

/* SIGKILL whatever is listed in dir's cgroup.procs; returns how many were listed. */
static int s_kill_listed(const char *dir)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/cgroup.procs", dir);
    cleanup_fclose FILE *f = fopen(path, "re");
    int pid, count = 0;
    while (f && fscanf(f, "%d", &pid) == 1) {
        kill(pid, SIGKILL);
        count++;
    }
    return count;
}

/* ---------------------------------------------------------------------------------------------
 * Stale cgroups: what gateways killed before their teardown left.
 * ------------------------------------------------------------------------------------------- */

#define S_SWEEP_MS 2000 /* the most the sweep waits for dying processes, over all cgroups */

typedef struct {
    char **dirs; /* NULL once removed */
    size_t n, cap;
} s_stale_t;

static void s_stale_add(s_stale_t *st, char *dir)
{
    for (size_t i = 0; dir && i < st->n; i++) {
        if (strcmp(st->dirs[i], dir) == 0) { /* co-mounted controllers: one directory */
            free(dir);
            return;
        }
    }
    if (dir && st->n == st->cap) {
        size_t cap = st->cap ? st->cap * 2 : 16;
        st->dirs = cb_xrealloc(st->dirs, cap * sizeof *st->dirs);
        st->cap = cap;
    }
    if (dir)
        st->dirs[st->n++] = dir;
}

/* Collect the cgroups under parent named "cellblock-<pid>-..." whose pid is gone. */
static void s_collect_stale(const char *parent, s_stale_t *st)
{
    cleanup_closedir DIR *d = opendir(parent);
    for (struct dirent *e = d ? readdir(d) : NULL; e; e = readdir(d)) {
        int pid;
        if (e->d_type != DT_DIR && e->d_type != DT_UNKNOWN)
            continue;
        if (sscanf(e->d_name, "cellblock-%d-", &pid) != 1 || pid <= 0 || kill(pid, 0) == 0 ||
            errno != ESRCH)
            continue;
        s_stale_add(st, cb_strdup_printf("%s/%s", parent, e->d_name));
    }
}

/* Is pid a process of a sandbox that a gateway in our own pid namespace made: its pid
 * namespace a child of ours (/proc/<pid>/status "NSpid:" has exactly two entries)? Only for
 * those does a gone gateway pid in the cgroup's name mean what it says: a gateway in a nested
 * pid namespace names its cgroups with pids we cannot check. */
static bool s_sandbox_of_ours(int pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    cleanup_fclose FILE *f = fopen(path, "re");
    while (f && fgets(line, sizeof line, f)) {
        if (strncmp(line, "NSpid:", 6) != 0)
            continue;
        int a, b, c;
        return sscanf(line + 6, "%d %d %d", &a, &b, &c) == 2;
    }
    return false;
}

/* SIGKILL what a stale cgroup's cgroup.procs lists (see s_sandbox_of_ours). */
static void s_kill_stale_members(const char *dir)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/cgroup.procs", dir);
    cleanup_fclose FILE *f = fopen(path, "re");
    int pid;
    while (f && fscanf(f, "%d", &pid) == 1)
        if (s_sandbox_of_ours(pid))
            kill(pid, SIGKILL);
}

/* Every stale cgroup of every hierarchy we are in. */
static void s_collect_all_stale(s_stale_t *st)
{
    struct statfs fs;
    if (statfs("/sys/fs/cgroup", &fs) == 0 && fs.f_type == CGROUP2_SUPER_MAGIC) {
        cleanup_free char *own = s_own_path(NULL);
        if (own) {
            cleanup_free char *dir =
                cb_strdup_printf("/sys/fs/cgroup%s", strcmp(own, "/") ? own : "");
            s_collect_stale(dir, st);
        }
        return;
    }
    for (int c = 0; c < CG_COUNT; c++) {
        cleanup_free char *mnt = s_v1_mount(s_names[c]);
        cleanup_free char *own = s_own_path(s_names[c]);
        if (mnt && own) {
            cleanup_free char *dir = cb_strdup_printf("%s%s", mnt, strcmp(own, "/") ? own : "");
            s_collect_stale(dir, st);
        }
    }
}

void sbx_cgroup_sweep_stale(void)
{
    s_stale_t st = {0};
    s_collect_all_stale(&st);
    size_t removed = 0, left = st.n;
    int why = 0; /* errno of the last failed rmdir */
    /* Right after a gateway's SIGKILL its sandboxes may still be dying: kill what is listed
     * (v2: cgroup.kill), and try again until every one is gone or the time is up. */
    for (int64_t deadline = cb_now_ms() + S_SWEEP_MS; left > 0;) {
        for (size_t i = 0; i < st.n; i++) {
            if (!st.dirs[i])
                continue;
            s_write(st.dirs[i], "cgroup.kill", "1"); /* v2 only; absent on v1 */
            s_kill_stale_members(st.dirs[i]);
            int rc = rmdir(st.dirs[i]);
            why = rc < 0 ? errno : why;
            if (rc == 0 || errno == ENOENT) {
                removed += rc == 0;
                free(st.dirs[i]);
                st.dirs[i] = NULL;
                left--;
            }
        }
        if (left == 0 || cb_now_ms() >= deadline)
            break;
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    }
    if (removed)
        cb_info("removed %zu stale cgroups left by gateways that died", removed);
    for (size_t i = 0; i < st.n; i++) {
        if (st.dirs[i])
            cb_warn("could not remove the stale cgroup '%s' within %d ms: %s", st.dirs[i],
                    S_SWEEP_MS, strerror(why));
        free(st.dirs[i]);
    }
    free(st.dirs);
}

void sbx_cgroup_destroy(sbx_cgroup_t **cg_p)
{
    sbx_cgroup_t *cg = cg_p ? *cg_p : NULL;
    if (!cg)
        return;
    *cg_p = NULL;
    char **dirs = cg->v2dir ? &cg->v2dir : cg->dir;
    int ndirs = cg->v2dir ? 1 : CG_COUNT;
    for (int c = 0; c < ndirs; c++) {
        const char *d = dirs[c];
        if (!d)
            continue;
        if (cg->v2dir)
            s_write(d, "cgroup.kill", "1");
        /* The sandbox's init is normally dead by now, and with it every process of its pid
         * namespace; this only sweeps stragglers. Bounded: two seconds. */
        for (int tries = 0; tries < 200; tries++) {
            if (s_kill_listed(d) == 0 && rmdir(d) == 0)
                break;
            if (errno == ENOENT)
                break;
            nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
        }
        if (access(d, F_OK) == 0)
            cb_warn("could not remove cgroup '%s': %s", d, strerror(errno));
    }
    for (int c = 0; c < ndirs; c++)
        free(dirs[c]);
    free(cg);
}
