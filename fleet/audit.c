/* audit.c: the audit trail (fleet.h; docs/audit.md): one JSON line per thing that happened, in
 * <state_dir>/audit/<tenant>/audit.jsonl.
 *
 * Why a thread: the gateway loop must never wait for a disk. fleet_audit (loop thread) renders
 * the record to one line and appends it to a bounded in-memory queue; a writer thread takes the
 * whole queue at least once a second (sooner when it grows past a batch), appends each tenant's
 * lines with one write(2), fdatasyncs what it wrote, and rotates a log that passed its size
 * (audit.jsonl -> audit.1.jsonl -> ... -> audit.<keep>.jsonl, the oldest dropped). A full queue
 * drops the new record (counted and logged at warn), never blocks.
 *
 * Hostile directories: the state directory is the operator's, but it is walked the careful way
 * anyway: each directory opened beneath its parent's fd without following links, each log opened
 * O_NOFOLLOW | O_APPEND | O_CLOEXEC (0600; directories 0700) and checked to be a regular file.
 *
 * Crashes: records still in the queue are lost (at most about a second's worth); a line torn by
 * a crash is skipped on read, and the next writer starts a fresh line after it.
 *
 * fleet_audit_read flushes the queue of a writer of the same state directory in this process
 * first (the one process-wide list below, guarded by its mutex), so a caller reads its own
 * records.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cb/alloc.h"
#include "cb/cleanup.h"
#include "cb/log.h"
#include "cb/util.h"
#include "egress/egress.h"
#include "fleet_private.h"
#include "kg/sandbox.h"

#define AUDIT_QUEUE_MAX_BYTES (16u << 20) /* pending lines beyond this are dropped */
#define AUDIT_BATCH_BYTES (256u << 10)    /* a batch this big is written at once */
#define AUDIT_LINE_MAX (1u << 20)         /* a line longer than this is not read back */

typedef struct audit_line {
    struct audit_line *next;
    char *tenant;
    char *text; /* one JSON object and '\n' */
    size_t len;
} audit_line_t;

typedef struct {
    char *tenant;
    int fd;
    uint64_t size;
} audit_file_t;

struct fleet_audit_log {
    char *state_dir;
    fleet_audit_log_opts_t opts;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t wake;    /* the writer: records, a flush asked for, or stop */
    pthread_cond_t flushed; /* flush_done moved */
    audit_line_t *head, *tail;
    size_t queued_bytes;
    uint64_t flush_asked, flush_done;
    uint64_t dropped, failed;
    uint64_t failed_told; /* failures the caller's thread has logged */
    char failure[300];    /* the last one, for that log line */
    bool stop;
    /* the writer thread's own */
    audit_file_t *files;
    size_t file_count;
    struct fleet_audit_log *next_live; /* s_live */
};

/* Every writer of this process, for fleet_audit_read's flush. The one global: a list of
 * borrowed pointers, each removed before its writer is freed. */
static pthread_mutex_t s_live_mu = PTHREAD_MUTEX_INITIALIZER;
static fleet_audit_log_t *s_live;

/* ---- names ----------------------------------------------------------------------------------- */

/* The log's name for rotation n (0: the live one). */
static const char *s_log_name(char buf[48], size_t n)
{
    if (n == 0)
        snprintf(buf, 48, "audit.jsonl");
    else
        snprintf(buf, 48, "audit.%zu.jsonl", n % 1000000);
    return buf;
}

/* ---- time ------------------------------------------------------------------------------------ */

static void s_iso_ms(int64_t ms, char out[40])
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char day[32];
    strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, 40, "%.24s.%03dZ", day, (int)(ms % 1000));
}

static int64_t s_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int fleet_audit_parse_time(const char *text, int64_t now_ms, int64_t *out_ms)
{
    if (!text || !text[0])
        return -1;
    char *end = NULL;
    errno = 0;
    long long n = strtoll(text, &end, 10);
    if (end != text && *end && !end[1] && errno == 0 && n >= 0 && n < 100000000) {
        int64_t unit = 0;
        switch (*end) {
        case 's': unit = 1000; break;
        case 'm': unit = 60 * 1000; break;
        case 'h': unit = 3600 * 1000; break;
        case 'd': unit = 86400 * 1000; break;
        default: break;
        }
        if (unit) {
            *out_ms = now_ms - (int64_t)n * unit;
            return 0;
        }
    }
    /* ISO 8601 in UTC: 2026-12-08, 2026-12-08T02:30, ...T02:30:05, ...T02:30:05.123, with an
     * optional Z or +00:00. */
    struct tm tm = {0};
    int ms = 0;
    const char *p = strptime(text, "%Y-%m-%d", &tm);
    if (!p)
        return -1;
    if (*p == 'T' || *p == ' ') {
        const char *q = strptime(p + 1, "%H:%M", &tm);
        if (!q)
            return -1;
        p = q;
        if (*p == ':') {
            q = strptime(p + 1, "%S", &tm);
            if (!q)
                return -1;
            p = q;
            if (*p == '.') {
                int digits = 0;
                for (p++; *p >= '0' && *p <= '9'; p++, digits++)
                    if (digits < 3)
                        ms = ms * 10 + (*p - '0');
                if (!digits)
                    return -1;
                for (; digits < 3; digits++)
                    ms *= 10;
            }
        }
    }
    if (*p == 'Z')
        p++;
    else if (!strcmp(p, "+00:00"))
        p += 6;
    if (*p)
        return -1;
    time_t secs = timegm(&tm);
    if (secs == (time_t)-1)
        return -1;
    *out_ms = (int64_t)secs * 1000 + ms;
    return 0;
}

/* ---- the writer thread ----------------------------------------------------------------------- */

/* <state>/audit/<tenant>, made 0700 where missing, opened without following links. -1 with
 * errno. */
static int s_open_dir(const char *state_dir, const char *tenant, bool create)
{
    cleanup_close int state = open(state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (state < 0 && create && errno == ENOENT) {
        if (cb_mkdir_p(state_dir, 0700, NULL) < 0)
            return -1;
        state = open(state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    }
    if (state < 0)
        return -1;
    if (create && mkdirat(state, "audit", 0700) < 0 && errno != EEXIST)
        return -1;
    cleanup_close int audit = cb_openat_beneath(state, "audit", O_RDONLY | O_DIRECTORY, 0);
    if (audit < 0 || !tenant)
        return audit < 0 ? -1 : cb_steal_fd(&audit);
    if (create && mkdirat(audit, tenant, 0700) < 0 && errno != EEXIST)
        return -1;
    return cb_openat_beneath(audit, tenant, O_RDONLY | O_DIRECTORY, 0);
}

/* A log file for appending: never a link, never anything but a regular file; a torn last line
 * (a crash mid-write) is ended, so the next record starts a line of its own. */
static int s_open_log(int dir, uint64_t *size_out)
{
    int fd = openat(dir, "audit.jsonl",
                    O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0600);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        errno = EINVAL;
        return -1;
    }
    *size_out = (uint64_t)st.st_size;
    if (st.st_size == 0)
        fsync(dir); /* a new (or rotated) log's name outlives a crash too */
    if (st.st_size > 0) {
        char last = '\n';
        cleanup_close int rd =
            openat(dir, "audit.jsonl", O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
        if (rd >= 0 && pread(rd, &last, 1, st.st_size - 1) == 1 && last != '\n' &&
            write(fd, "\n", 1) == 1)
            *size_out += 1;
    }
    return fd;
}

static audit_file_t *s_file(fleet_audit_log_t *self, const char *tenant)
{
    for (size_t i = 0; i < self->file_count; i++)
        if (!strcmp(self->files[i].tenant, tenant))
            return &self->files[i];
    self->files = cb_xrealloc(self->files, (self->file_count + 1) * sizeof *self->files);
    audit_file_t *f = &self->files[self->file_count++];
    f->tenant = cb_xstrdup(tenant);
    f->fd = -1;
    f->size = 0;
    return f;
}

/* audit.jsonl -> audit.1.jsonl -> ... ; the oldest beyond keep is removed. */
static void s_rotate(fleet_audit_log_t *self, audit_file_t *f)
{
    cleanup_close int dir = s_open_dir(self->state_dir, f->tenant, true);
    if (f->fd >= 0)
        close(f->fd);
    f->fd = -1;
    if (dir < 0)
        return;
    char from[48], to[48];
    unlinkat(dir, s_log_name(to, self->opts.keep), 0);
    for (size_t n = self->opts.keep; n > 0; n--)
        renameat(dir, s_log_name(from, n - 1), dir, s_log_name(to, n));
    f->size = 0;
}

/* The tenant's live log, opened (and rotated first when incoming would overflow it). */
static void s_ensure_open(fleet_audit_log_t *self, audit_file_t *f, size_t incoming)
{
    if (f->fd >= 0 && f->size > 0 && f->size + incoming > self->opts.max_bytes)
        s_rotate(self, f);
    for (int attempt = 0; f->fd < 0 && attempt < 2; attempt++) {
        cleanup_close int dir = s_open_dir(self->state_dir, f->tenant, true);
        uint64_t size = 0;
        f->fd = dir < 0 ? -1 : s_open_log(dir, &size);
        f->size = size;
        if (f->fd >= 0 && f->size > 0 && f->size + incoming > self->opts.max_bytes)
            s_rotate(self, f); /* closes it: the next attempt opens a fresh one */
    }
}

static void s_write_tenant(fleet_audit_log_t *self, audit_file_t *f, cb_buf_t *buf)
{
    s_ensure_open(self, f, buf->len);
    const char *p = buf->data;
    size_t left = buf->len;
    while (f->fd >= 0 && left > 0) {
        ssize_t n = write(f->fd, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        p += n, left -= (size_t)n, f->size += (uint64_t)n;
    }
    if (f->fd < 0 || left > 0 || fdatasync(f->fd) < 0) {
        /* Not logged from here: a log hook (MCP's notifications) belongs to the loop's thread;
         * the next fleet_audit_log_append there tells it. */
        int e = errno;
        pthread_mutex_lock(&self->mu);
        snprintf(self->failure, sizeof self->failure,
                 "could not write %.64s's log under %.160s/audit: %s", f->tenant, self->state_dir,
                 strerror(e));
        self->failed++;
        pthread_mutex_unlock(&self->mu);
        if (f->fd >= 0)
            close(f->fd);
        f->fd = -1; /* try again next batch */
    }
}

/* Write a batch (a list of lines, oldest first), grouped by tenant, in order within each. */
static void s_write_batch(fleet_audit_log_t *self, audit_line_t *batch)
{
    while (batch) {
        const char *tenant = batch->tenant;
        cb_buf_t buf = {0};
        audit_line_t *rest = NULL, **rest_tail = &rest;
        audit_file_t *f = s_file(self, tenant);
        for (audit_line_t *l = batch, *next; l; l = next) {
            next = l->next;
            if (strcmp(l->tenant, tenant) != 0) {
                l->next = NULL;
                *rest_tail = l;
                rest_tail = &l->next;
                continue;
            }
            cb_buf_append(&buf, l->text, l->len);
            if (l != batch) {
                free(l->tenant);
                free(l->text);
                free(l);
            }
        }
        s_write_tenant(self, f, &buf);
        cb_buf_free(&buf);
        free(batch->tenant);
        free(batch->text);
        free(batch);
        batch = rest;
    }
}

static void *s_writer(void *arg)
{
    fleet_audit_log_t *self = arg;
    pthread_mutex_lock(&self->mu);
    for (;;) {
        while (!self->stop && !self->head && self->flush_done == self->flush_asked)
            pthread_cond_wait(&self->wake, &self->mu);
        /* Let a batch gather: until the interval passes, it grows big, or someone waits. */
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        int64_t ns = until.tv_nsec + (int64_t)self->opts.interval_ms * 1000000;
        until.tv_sec += ns / 1000000000;
        until.tv_nsec = ns % 1000000000;
        while (!self->stop && self->flush_done == self->flush_asked &&
               self->queued_bytes < AUDIT_BATCH_BYTES &&
               pthread_cond_timedwait(&self->wake, &self->mu, &until) == 0) {
        }
        audit_line_t *batch = self->head;
        uint64_t asked = self->flush_asked;
        bool stop = self->stop;
        self->head = self->tail = NULL;
        self->queued_bytes = 0;
        pthread_mutex_unlock(&self->mu);
        s_write_batch(self, batch);
        pthread_mutex_lock(&self->mu);
        self->flush_done = asked;
        pthread_cond_broadcast(&self->flushed);
        if (stop && !self->head)
            break;
    }
    pthread_mutex_unlock(&self->mu);
    return NULL;
}

/* ---- the log object -------------------------------------------------------------------------- */

fleet_audit_log_t *fleet_audit_log_new(const char *state_dir, const fleet_audit_log_opts_t *opts)
{
    fleet_audit_log_t *self = cb_xcalloc(1, sizeof *self);
    self->state_dir = state_dir ? cb_xstrdup(state_dir) : fleet_default_state_dir();
    if (opts)
        self->opts = *opts;
    if (!self->opts.max_bytes)
        self->opts.max_bytes = FLEET_AUDIT_MAX_BYTES;
    if (!self->opts.keep)
        self->opts.keep = FLEET_AUDIT_KEEP;
    if (self->opts.interval_ms <= 0 || self->opts.interval_ms > 1000)
        self->opts.interval_ms = 1000;
    pthread_mutex_init(&self->mu, NULL);
    pthread_cond_init(&self->wake, NULL);
    pthread_cond_init(&self->flushed, NULL);
    int rc = pthread_create(&self->thread, NULL, s_writer, self);
    if (rc != 0) {
        cb_warn("audit: no writer thread (%s): nothing will be recorded", strerror(rc));
        self->stop = true;
    }
    pthread_mutex_lock(&s_live_mu);
    self->next_live = s_live;
    s_live = self;
    pthread_mutex_unlock(&s_live_mu);
    return self;
}

void fleet_audit_log_destroy(fleet_audit_log_t **self_p)
{
    fleet_audit_log_t *self = *self_p;
    if (!self)
        return;
    *self_p = NULL;
    pthread_mutex_lock(&s_live_mu);
    for (fleet_audit_log_t **p = &s_live; *p; p = &(*p)->next_live)
        if (*p == self) {
            *p = self->next_live;
            break;
        }
    pthread_mutex_unlock(&s_live_mu);
    pthread_mutex_lock(&self->mu);
    bool running = !self->stop;
    self->stop = true;
    pthread_cond_signal(&self->wake);
    pthread_mutex_unlock(&self->mu);
    if (running)
        pthread_join(self->thread, NULL); /* writes what is queued, then ends */
    for (audit_line_t *l = self->head, *next; l; l = next) {
        next = l->next;
        free(l->tenant);
        free(l->text);
        free(l);
    }
    for (size_t i = 0; i < self->file_count; i++) {
        if (self->files[i].fd >= 0)
            close(self->files[i].fd);
        free(self->files[i].tenant);
    }
    free(self->files);
    pthread_cond_destroy(&self->wake);
    pthread_cond_destroy(&self->flushed);
    pthread_mutex_destroy(&self->mu);
    free(self->state_dir);
    free(self);
}

void fleet_audit_log_append(fleet_audit_log_t *self, const char *tenant, json_t *record)
{
    char *text = json_dumps(record, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(9));
    json_decref(record);
    if (!text)
        cb_oom(0);
    size_t len = strlen(text);
    char failure[sizeof self->failure] = "";
    pthread_mutex_lock(&self->mu);
    if (self->failed != self->failed_told) {
        self->failed_told = self->failed;
        memcpy(failure, self->failure, sizeof failure);
    }
    if (failure[0]) {
        pthread_mutex_unlock(&self->mu);
        cb_warn("audit: %s (%llu records not written so far)", failure,
                (unsigned long long)self->failed_told);
        pthread_mutex_lock(&self->mu);
    }
    if (self->stop || self->queued_bytes + len > AUDIT_QUEUE_MAX_BYTES) {
        if (self->dropped++ % 1000 == 0)
            cb_warn("audit: a record for %s was dropped (the writer is behind or stopped)", tenant);
        pthread_mutex_unlock(&self->mu);
        free(text);
        return;
    }
    audit_line_t *l = cb_xcalloc(1, sizeof *l);
    l->tenant = cb_xstrdup(tenant);
    l->text = cb_xrealloc(text, len + 2);
    l->text[len] = '\n';
    l->text[len + 1] = 0;
    l->len = len + 1;
    if (self->tail)
        self->tail->next = l;
    else
        self->head = l;
    self->tail = l;
    self->queued_bytes += l->len;
    if (self->queued_bytes >= AUDIT_BATCH_BYTES)
        pthread_cond_signal(&self->wake);
    else if (self->head == l)
        pthread_cond_signal(&self->wake); /* the first of a batch starts its interval */
    pthread_mutex_unlock(&self->mu);
}

void fleet_audit_log_flush(fleet_audit_log_t *self)
{
    pthread_mutex_lock(&self->mu);
    if (!self->stop) {
        uint64_t want = ++self->flush_asked;
        pthread_cond_signal(&self->wake);
        while (self->flush_done < want && !self->stop)
            pthread_cond_wait(&self->flushed, &self->mu);
    }
    pthread_mutex_unlock(&self->mu);
}

uint64_t fleet_audit_log_dropped(fleet_audit_log_t *self)
{
    pthread_mutex_lock(&self->mu);
    uint64_t n = self->dropped + self->failed;
    pthread_mutex_unlock(&self->mu);
    return n;
}

/* ---- recording ------------------------------------------------------------------------------- */

json_t *fleet_audit_record(const char *tenant, const char *event, const char *sandbox_id,
                           json_t *fields)
{
    json_t *rec = json_object();
    char when[40];
    s_iso_ms(s_wall_ms(), when);
    json_object_set_new(rec, "time", json_string(when));
    json_object_set_new(rec, "tenant", json_string(tenant));
    json_object_set_new(rec, "event", json_string(event));
    json_t *sid = fields ? json_object_get(fields, "sandbox_id") : NULL;
    if (sid)
        json_object_set(rec, "sandbox_id", sid);
    else
        json_object_set_new(rec, "sandbox_id", sandbox_id ? json_string(sandbox_id) : json_null());
    if (fields) {
        const char *key;
        json_t *value;
        json_object_foreach (fields, key, value) {
            if (!json_object_get(rec, key))
                json_object_set(rec, key, value);
        }
    }
    json_decref(fields);
    return rec;
}

json_t *fleet_audit_fields(json_t *record)
{
    json_t *fields = json_deep_copy(record);
    json_t *started = json_object_get(fields, "started_ms");
    if (json_is_integer(started)) {
        char iso[40];
        s_iso_ms(json_integer_value(started), iso);
        json_object_set_new(fields, "started", json_string(iso));
        json_object_del(fields, "started_ms");
    }
    return fields;
}

void fleet_audit_network(fleet_sandbox_t *fs)
{
    const egress_policy_t *policy = kg_sandbox_network(fs->sb);
    if (!fs->fleet->audit || !policy || egress_policy_is_none(policy))
        return; /* no egress: no connection can be made */
    json_auto_t *probe = kg_sandbox_network_metrics(fs->sb, 1);
    uint64_t total = (uint64_t)json_integer_value(json_object_get(probe, "connections"));
    if (total <= fs->net_audited)
        return;
    uint64_t fresh = total - fs->net_audited;
    fs->net_audited = total;
    json_auto_t *m = kg_sandbox_network_metrics(fs->sb, fresh > 1000 ? 1000 : (size_t)fresh);
    size_t i;
    json_t *r;
    json_array_foreach (json_object_get(m, "records"), i, r) {
        json_t *fields = json_deep_copy(r);
        json_object_set(fields, "connected", json_object_get(fields, "time"));
        json_object_del(fields, "time");
        fleet_audit(fs->fleet, fs->sb, fs->tenant, "network_connection", fields);
    }
    if (fresh > 1000)
        fleet_audit(fs->fleet, fs->sb, fs->tenant, "network_connections_skipped",
                    json_pack("{s:I}", "count", (json_int_t)(fresh - 1000)));
}

void fleet_audit(fleet_t *fleet, kg_sandbox_t *sb, const char *tenant, const char *event,
                 json_t *fields)
{
    if (!fleet || !fleet->audit) {
        json_decref(fields);
        return;
    }
    if (!tenant)
        tenant = sb ? fleet_sandbox_tenant(sb) : NULL;
    if (!tenant)
        tenant = CB_TENANT_LOCAL;
    if (!cb_tenant_name_ok(tenant)) {
        cb_warn("audit: tenant name not usable as a directory; record kept under \"_invalid\"");
        tenant = "_invalid";
    }
    json_t *rec = fleet_audit_record(tenant, event, sb ? kg_sandbox_id(sb) : NULL, fields);
    fleet_audit_log_append(fleet->audit, tenant, rec);
}

/* ---- reading --------------------------------------------------------------------------------- */

typedef struct {
    const fleet_audit_query_t *q;
    size_t limit;
    json_t *out; /* the latest matches so far, oldest first, at most limit */
} audit_reader_t;

static void s_consider(audit_reader_t *r, const char *line, size_t len)
{
    /* Most lines of a big log are about other sandboxes: skip them without parsing. */
    if (r->q->sandbox_id && !memmem(line, len, r->q->sandbox_id, strlen(r->q->sandbox_id)))
        return;
    json_t *rec = json_loadb(line, len, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(rec)) { /* a torn or foreign line */
        json_decref(rec);
        return;
    }
    const char *sid = json_string_value(json_object_get(rec, "sandbox_id"));
    const char *when = json_string_value(json_object_get(rec, "time"));
    int64_t ms = 0;
    if (!when || fleet_audit_parse_time(when, 0, &ms) < 0 ||
        (r->q->sandbox_id && (!sid || strcmp(sid, r->q->sandbox_id) != 0)) ||
        (r->q->since_ms && ms < r->q->since_ms)) {
        json_decref(rec);
        return;
    }
    if (json_array_size(r->out) >= r->limit)
        json_array_remove(r->out, 0);
    json_array_append_new(r->out, rec);
}

static void s_read_file(audit_reader_t *r, int dir, const char *name)
{
    cleanup_close int fd = openat(dir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
        return;
    cleanup_fclose FILE *f = fdopen(fd, "r");
    if (!f)
        return;
    fd = -1;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0) {
        if (line[n - 1] != '\n' || (size_t)n > AUDIT_LINE_MAX)
            continue; /* torn (a crash mid-write) or absurd */
        s_consider(r, line, (size_t)n - 1);
    }
    free(line);
}

/* One tenant's logs, oldest rotation first. */
static void s_read_tenant(audit_reader_t *r, int audit_dir, const char *tenant)
{
    cleanup_close int dir = cb_openat_beneath(audit_dir, tenant, O_RDONLY | O_DIRECTORY, 0);
    if (dir < 0)
        return;
    char name[48];
    for (size_t n = 64; n > 0; n--) /* whatever keep a writer had */
        s_read_file(r, dir, s_log_name(name, n));
    s_read_file(r, dir, s_log_name(name, 0));
}

typedef struct {
    json_t *rec;
    size_t order; /* as read: keeps one log's records of the same millisecond in order */
} audit_item_t;

static int s_by_time(const void *a, const void *b)
{
    const audit_item_t *x = a, *y = b;
    const char *tx = json_string_value(json_object_get(x->rec, "time"));
    const char *ty = json_string_value(json_object_get(y->rec, "time"));
    int c = strcmp(tx ? tx : "", ty ? ty : ""); /* one format everywhere: sorts as time does */
    return c ? c : (x->order < y->order ? -1 : x->order > y->order);
}

json_t *fleet_audit_read(const char *state_dir, const fleet_audit_query_t *q, cb_error_t *err)
{
    fleet_audit_query_t none = {0};
    if (!q)
        q = &none;
    if (q->tenant && !cb_tenant_name_ok(q->tenant)) {
        cb_error_fail(err, CB_ERR_INVALID, "'%s' is not a tenant name", q->tenant);
        return NULL;
    }
    cleanup_free char *dir_path = state_dir ? cb_xstrdup(state_dir) : fleet_default_state_dir();
    pthread_mutex_lock(&s_live_mu);
    for (fleet_audit_log_t *l = s_live; l; l = l->next_live)
        if (!strcmp(l->state_dir, dir_path))
            fleet_audit_log_flush(l);
    pthread_mutex_unlock(&s_live_mu);

    cleanup_close int audit_dir = s_open_dir(dir_path, NULL, false);
    if (audit_dir < 0)
        return json_array(); /* nothing recorded yet */
    size_t limit = q->limit ? q->limit : 1000;
    if (q->tenant) {
        audit_reader_t r = {.q = q, .limit = limit, .out = json_array()};
        s_read_tenant(&r, audit_dir, q->tenant);
        return r.out;
    }
    /* Every tenant: each one's latest, merged by time, the latest overall kept. */
    json_t *all = json_array();
    cleanup_closedir DIR *d = fdopendir(dup(audit_dir));
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.' || !cb_tenant_name_ok(e->d_name))
            continue;
        audit_reader_t r = {.q = q, .limit = limit, .out = json_array()};
        s_read_tenant(&r, audit_dir, e->d_name);
        json_array_extend(all, r.out);
        json_decref(r.out);
    }
    size_t n = json_array_size(all);
    audit_item_t *items = cb_xcalloc(n ? n : 1, sizeof *items);
    for (size_t i = 0; i < n; i++)
        items[i] = (audit_item_t){json_incref(json_array_get(all, i)), i};
    json_decref(all);
    qsort(items, n, sizeof *items, s_by_time);
    json_t *out = json_array();
    for (size_t i = 0; i < n; i++) {
        if (i + limit >= n)
            json_array_append(out, items[i].rec);
        json_decref(items[i].rec);
    }
    free(items);
    return out;
}

const char *fleet_state_dir(fleet_t *fleet) { return fleet->state_dir; }
