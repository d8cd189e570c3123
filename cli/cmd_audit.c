/* cmd_audit.c: `cellblock audit` prints the audit trail (fleet/audit.c, docs/audit.md): what
 * ran in sandboxes, who ran it, files written, sessions and sandbox lifecycle.
 *
 * It reads the logs on disk under the state directory ($CELLBLOCK_STATE_DIR, else the default),
 * so it works while a server runs (it sees what that server has written: at most a second
 * behind) and after it stopped. One line per record by default; --json prints the records
 * themselves, one JSON object per line. Exit status: 0, also when nothing matched; 1 when the
 * logs cannot be read; 2 on a usage error.
 */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cb/cleanup.h"
#include "cb/util.h"
#include "cli.h"

/* What a record is about, in a few words: its code's first line, its command, its path... */
static void s_print_line(json_t *r)
{
    const char *event = json_string_value(json_object_get(r, "event"));
    const char *sid = json_string_value(json_object_get(r, "sandbox_id"));
    printf("%s %-8s %-8.8s %-17s", json_string_value(json_object_get(r, "time")),
           json_string_value(json_object_get(r, "tenant")), sid ? sid : "-", event ? event : "?");
    static const char *const subjects[] = {"code",   "command",  "path",
                                           "reason", "template", "kernel"};
    for (size_t i = 0; i < sizeof subjects / sizeof subjects[0]; i++) {
        const char *s = json_string_value(json_object_get(r, subjects[i]));
        if (!s)
            continue;
        size_t n = strcspn(s, "\n");
        bool more = n > 100 || (s[n] && s[n + 1]); /* a last newline alone is not more */
        printf(" %.*s%s", (int)(n > 100 ? 100 : n), s, more ? " ..." : "");
        break;
    }
    const char *to = json_string_value(json_object_get(r, "to"));
    if (to)
        printf(" -> %s", to);
    json_t *size = json_object_get(r, "size");
    if (json_is_integer(size))
        printf(" (%lld bytes)", (long long)json_integer_value(size));
    const char *status = json_string_value(json_object_get(r, "status"));
    if (status)
        printf(" [%s", status);
    json_t *code = json_object_get(r, "exit_code");
    if (status && json_is_integer(code))
        printf(" %lld", (long long)json_integer_value(code));
    const char *sig = json_string_value(json_object_get(r, "signal"));
    if (status && sig)
        printf(" %s", sig);
    const char *ename = json_string_value(json_object_get(r, "ename"));
    if (status && ename)
        printf(" %s", ename);
    json_t *ms = json_object_get(r, "duration_ms");
    if (status && json_is_number(ms))
        printf(", %.0f ms", json_number_value(ms));
    if (status)
        printf("]");
    const char *origin = json_string_value(json_object_get(r, "origin"));
    if (origin)
        printf(" via %s", origin);
    printf("\n");
}

int cli_cmd_audit(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"sandbox", required_argument, NULL, 's'}, {"since", required_argument, NULL, 'S'},
        {"tenant", required_argument, NULL, 't'},  {"limit", required_argument, NULL, 'n'},
        {"json", no_argument, NULL, 'j'},          {NULL, 0, NULL, 0}};
    fleet_audit_query_t q = {.limit = 100};
    bool as_json = false;
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (opt) {
        case 's': q.sandbox_id = optarg; break;
        case 't':
            if (!cb_tenant_name_ok(optarg))
                return cli_usage_error("audit", "'%s' is not a tenant name", optarg);
            q.tenant = optarg;
            break;
        case 'S':
            if (fleet_audit_parse_time(optarg, (int64_t)time(NULL) * 1000, &q.since_ms) < 0)
                return cli_usage_error("audit",
                                       "--since '%s' is neither ISO 8601 (2026-12-08T02:30:00Z) "
                                       "nor an age (30s, 10m, 2h, 1d)",
                                       optarg);
            break;
        case 'n': {
            char *end = NULL;
            long n = strtol(optarg, &end, 10);
            if (!*optarg || *end || n < 1 || n > 1000000)
                return cli_usage_error("audit", "--limit wants a number from 1 to 1000000");
            q.limit = (size_t)n;
            break;
        }
        case 'j': as_json = true; break;
        default: return cli_usage_error("audit", "unknown option");
        }
    }
    if (optind < argc)
        return cli_usage_error("audit", "unknown argument '%s'", argv[optind]);
    cli_setup_logging(0);
    const char *state_dir = getenv("CELLBLOCK_STATE_DIR");
    if (state_dir && state_dir[0] != '/')
        return cli_usage_error("audit", "CELLBLOCK_STATE_DIR must be an absolute path");
    cb_error_t err = {0};
    json_auto_t *records = fleet_audit_read(state_dir && *state_dir ? state_dir : NULL, &q, &err);
    if (!records) {
        fprintf(stderr, "cellblock audit: %s\n", err.msg);
        return CLI_FAILED;
    }
    size_t i;
    json_t *r;
    json_array_foreach (records, i, r) {
        if (as_json) {
            cleanup_free char *line = json_dumps(r, JSON_COMPACT);
            if (line)
                printf("%s\n", line);
        } else {
            s_print_line(r);
        }
    }
    return fflush(stdout) == 0 ? CLI_OK : CLI_FAILED;
}
