/* test_audit.c: the audit trail's writer and reader (audit.c) on a scratch state directory:
 * records come back in order, batches reach the disk within a second without a flush, logs
 * rotate by size and keep a bounded number, a torn last line is skipped and the next record
 * starts its own line, a symlink planted as a log or as a tenant's directory is never followed,
 * filters (sandbox, since, limit, tenant) and time parsing. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cb/tap.h"
#include "cb/util.h"
#include "fleet_private.h"

static char s_dir[256];

static json_t *s_rec(const char *tenant, const char *sid, int n)
{
    json_t *fields = json_pack("{s:i, s:s}", "n", n, "code", "print('hello')");
    return fleet_audit_record(tenant, "execution", sid, fields);
}

static size_t s_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = 0;
    int c;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

static void s_order_and_filters(void)
{
    fleet_audit_log_t *log =
        fleet_audit_log_new(s_dir, &(fleet_audit_log_opts_t){.interval_ms = 50});
    for (int i = 0; i < 5; i++)
        fleet_audit_log_append(log, "alice", s_rec("alice", i % 2 ? "sb-odd" : "sb-even", i));
    fleet_audit_log_append(log, "bob", s_rec("bob", "sb-bob", 100));
    fleet_audit_log_flush(log);

    json_t *all = fleet_audit_read(s_dir, &(fleet_audit_query_t){.tenant = "alice"}, NULL);
    CB_EQ_SIZE(json_array_size(all), 5, "alice's five records");
    for (size_t i = 0; i < json_array_size(all); i++)
        CB_EQ_INT(json_integer_value(json_object_get(json_array_get(all, i), "n")), (long long)i,
                  "in the order written");
    json_t *r0 = json_array_get(all, 0);
    CB_EQ_STR(json_string_value(json_object_get(r0, "tenant")), "alice", "tenant field");
    CB_EQ_STR(json_string_value(json_object_get(r0, "event")), "execution", "event field");
    const char *t = json_string_value(json_object_get(r0, "time"));
    CB_OK(t && strlen(t) == 24 && t[10] == 'T' && t[19] == '.' && t[23] == 'Z',
          "time is ISO 8601 with ms (%s)", t ? t : "none");
    json_decref(all);

    json_t *odd = fleet_audit_read(s_dir, &(fleet_audit_query_t){.sandbox_id = "sb-odd"}, NULL);
    CB_EQ_SIZE(json_array_size(odd), 2, "the sandbox filter");
    json_decref(odd);
    json_t *last =
        fleet_audit_read(s_dir, &(fleet_audit_query_t){.tenant = "alice", .limit = 2}, NULL);
    CB_EQ_SIZE(json_array_size(last), 2, "limit keeps two");
    CB_EQ_INT(json_integer_value(json_object_get(json_array_get(last, 1), "n")), 4,
              "... the latest ones");
    json_decref(last);
    json_t *every = fleet_audit_read(s_dir, NULL, NULL);
    CB_EQ_SIZE(json_array_size(every), 6, "every tenant's, merged");
    json_decref(every);
    json_t *future =
        fleet_audit_read(s_dir, &(fleet_audit_query_t){.since_ms = 4102444800000LL}, NULL);
    CB_EQ_SIZE(json_array_size(future), 0, "since in 2100: nothing");
    json_decref(future);
    cb_error_t err = {0};
    CB_OK(!fleet_audit_read(s_dir, &(fleet_audit_query_t){.tenant = "../x"}, &err),
          "a tenant name that climbs is refused");

    char path[512];
    snprintf(path, sizeof path, "%s/audit/alice", s_dir);
    struct stat st;
    CB_OK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0700, "the tenant's directory is 0700");
    snprintf(path, sizeof path, "%s/audit/alice/audit.jsonl", s_dir);
    CB_OK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600, "the log is 0600");
    fleet_audit_log_destroy(&log);
}

/* Without a flush, a record reaches the disk within the interval (1 s at most). */
static void s_batches_reach_disk(void)
{
    fleet_audit_log_t *log = fleet_audit_log_new(s_dir, NULL); /* the real interval: 1 s */
    fleet_audit_log_append(log, "carol", s_rec("carol", "sb-c", 1));
    char path[512];
    snprintf(path, sizeof path, "%s/audit/carol/audit.jsonl", s_dir);
    int64_t deadline = cb_now_ms() + 5000;
    while (s_lines(path) < 1 && cb_now_ms() < deadline)
        usleep(20 * 1000);
    CB_EQ_SIZE(s_lines(path), 1, "written without anyone asking");
    fleet_audit_log_append(log, "carol", s_rec("carol", "sb-c", 2));
    fleet_audit_log_destroy(&log); /* shutdown writes what is queued */
    CB_EQ_SIZE(s_lines(path), 2, "shutdown wrote the queued record");
}

static void s_rotation(void)
{
    fleet_audit_log_t *log =
        fleet_audit_log_new(s_dir, &(fleet_audit_log_opts_t){.max_bytes = 2048, .keep = 2});
    for (int i = 0; i < 120; i++) {
        fleet_audit_log_append(log, "dave", s_rec("dave", "sb-d", i));
        if (i % 10 == 9)
            fleet_audit_log_flush(log); /* batches of ten, ~1.2 KiB each */
    }
    fleet_audit_log_flush(log);
    char path[512];
    struct stat st;
    snprintf(path, sizeof path, "%s/audit/dave/audit.1.jsonl", s_dir);
    CB_OK(stat(path, &st) == 0 && st.st_size <= 2048, "audit.1.jsonl, at most max_bytes");
    snprintf(path, sizeof path, "%s/audit/dave/audit.2.jsonl", s_dir);
    CB_OK(stat(path, &st) == 0, "audit.2.jsonl");
    snprintf(path, sizeof path, "%s/audit/dave/audit.3.jsonl", s_dir);
    CB_OK(stat(path, &st) < 0 && errno == ENOENT, "no audit.3.jsonl: keep is 2");
    json_t *all =
        fleet_audit_read(s_dir, &(fleet_audit_query_t){.tenant = "dave", .limit = 10000}, NULL);
    size_t n = json_array_size(all);
    CB_OK(n > 10 && n < 120, "the kept logs hold the latest records (%zu)", n);
    bool ordered = true;
    for (size_t i = 0; i < n; i++)
        ordered &= json_integer_value(json_object_get(json_array_get(all, i), "n")) ==
                   (json_int_t)(120 - n + i);
    CB_OK(ordered, "oldest rotation first, then the live log: in order, none missing");
    json_decref(all);
    fleet_audit_log_destroy(&log);
}

static void s_torn_line(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/audit/erin", s_dir);
    cb_mkdir_p(path, 0700, NULL);
    snprintf(path, sizeof path, "%s/audit/erin/audit.jsonl", s_dir);
    FILE *f = fopen(path, "w");
    fputs("{\"time\":\"2026-12-08T01:00:00.000Z\",\"tenant\":\"erin\",\"event\":\"x\","
          "\"sandbox_id\":\"s\",\"n\":-1}\n{\"time\":\"2026-12-08T01:00:0",
          f); /* a crash in mid-line */
    fclose(f);
    fleet_audit_log_t *log = fleet_audit_log_new(s_dir, NULL);
    fleet_audit_log_append(log, "erin", s_rec("erin", "s", 7));
    fleet_audit_log_destroy(&log);
    json_t *all = fleet_audit_read(s_dir, &(fleet_audit_query_t){.tenant = "erin"}, NULL);
    CB_EQ_SIZE(json_array_size(all), 2, "the torn line is skipped, both whole records read");
    CB_EQ_INT(json_integer_value(json_object_get(json_array_get(all, 1), "n")), 7,
              "the new record survived on a line of its own");
    json_decref(all);
    CB_EQ_SIZE(s_lines(path), 3, "the torn line was ended, not joined");
}

static void s_symlinks(void)
{
    char path[512], target[512];
    snprintf(target, sizeof target, "%s/target", s_dir);
    FILE *f = fopen(target, "w");
    fclose(f);
    snprintf(path, sizeof path, "%s/audit/frank", s_dir);
    cb_mkdir_p(path, 0700, NULL);
    snprintf(path, sizeof path, "%s/audit/frank/audit.jsonl", s_dir);
    CB_OK(symlink(target, path) == 0, "planted audit.jsonl -> a file outside");
    snprintf(path, sizeof path, "%s/elsewhere", s_dir);
    cb_mkdir_p(path, 0700, NULL);
    char link[600];
    snprintf(link, sizeof link, "%s/audit/gina", s_dir);
    CB_OK(symlink(path, link) == 0, "planted the tenant directory audit/gina -> elsewhere");

    fleet_audit_log_t *log =
        fleet_audit_log_new(s_dir, &(fleet_audit_log_opts_t){.interval_ms = 10});
    uint64_t before = fleet_audit_log_dropped(log);
    fleet_audit_log_append(log, "frank", s_rec("frank", "s", 1));
    fleet_audit_log_append(log, "gina", s_rec("gina", "s", 1));
    fleet_audit_log_flush(log);
    struct stat st;
    CB_OK(stat(target, &st) == 0 && st.st_size == 0, "the link's target was not written");
    snprintf(link, sizeof link, "%s/audit.jsonl", path);
    CB_OK(stat(link, &st) < 0, "nothing written through the linked directory");
    CB_EQ_INT((long long)(fleet_audit_log_dropped(log) - before), 2,
              "both records counted as not written");
    fleet_audit_log_destroy(&log);
    json_t *read = fleet_audit_read(s_dir, &(fleet_audit_query_t){.tenant = "gina"}, NULL);
    CB_EQ_SIZE(json_array_size(read), 0, "reading does not follow the linked directory either");
    json_decref(read);
}

/* What fleet_audit costs the gateway loop: render and queue, no disk (a diagnostic, not a
 * pass/fail check: timings never are). */
static void s_cost(void)
{
    fleet_audit_log_t *log = fleet_audit_log_new(s_dir, NULL);
    int64_t t0 = cb_now_us();
    for (int i = 0; i < 10000; i++)
        fleet_audit_log_append(log, "henry", s_rec("henry", "sb-h", i));
    int64_t t1 = cb_now_us();
    fleet_audit_log_flush(log);
    int64_t t2 = cb_now_us();
    CB_DIAG("10000 records: %.2f us each on the caller's thread; the writer took %.1f ms to write "
            "and sync them",
            (double)(t1 - t0) / 10000.0, (double)(t2 - t1) / 1000.0);
    json_t *all =
        fleet_audit_read(s_dir, &(fleet_audit_query_t){.tenant = "henry", .limit = 20000}, NULL);
    CB_EQ_SIZE(json_array_size(all), 10000, "all 10000 written, none dropped");
    json_decref(all);
    fleet_audit_log_destroy(&log);
}

static void s_times(void)
{
    int64_t ms = 0, now = 1765161000000LL;
    CB_OK(fleet_audit_parse_time("30s", now, &ms) == 0 && ms == now - 30000, "30s");
    CB_OK(fleet_audit_parse_time("2h", now, &ms) == 0 && ms == now - 7200000, "2h");
    CB_OK(fleet_audit_parse_time("1d", now, &ms) == 0 && ms == now - 86400000, "1d");
    CB_OK(fleet_audit_parse_time("2026-12-08T02:30:05.123Z", 0, &ms) == 0 && ms == 1796697005123LL,
          "ISO 8601 with ms");
    CB_OK(fleet_audit_parse_time("2026-12-08", 0, &ms) == 0 && ms == 1796688000000LL, "a date");
    CB_OK(fleet_audit_parse_time("yesterday", 0, &ms) < 0, "nonsense refused");
    CB_OK(fleet_audit_parse_time("5w", 0, &ms) < 0, "an unknown unit refused");
    CB_OK(fleet_audit_parse_time("2026-12-08T02:30:05+02:00", 0, &ms) < 0,
          "an offset other than UTC refused");
}

int main(void)
{
    snprintf(s_dir, sizeof s_dir, "/tmp/cb-test-audit-XXXXXX");
    if (!mkdtemp(s_dir))
        CB_SKIP_ALL("no scratch directory");
    s_order_and_filters();
    s_batches_reach_disk();
    s_rotation();
    s_torn_line();
    s_symlinks();
    s_cost();
    s_times();
    cb_rm_rf(s_dir, NULL);
    return cb_tap_done();
}
