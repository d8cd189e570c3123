/* api.c: E2B's control plane (E2B_API_URL: REST, the API key in X-API-Key) onto the fleet.
 *
 * Why: a program written for E2B creates, lists, inspects, extends, connects to and kills its
 * sandboxes here before it sends a single command, and the SDKs (SandboxApi and
 * SandboxPaginator in npm e2b 2.51) read E2B's shapes, statuses and headers: a 404 whose body
 * says code 404 is SandboxNotFoundError, the X-Next-Token header is the list's next page, the
 * create call's `domain` is what getHost(port) builds a port's host name from.
 *
 * How: one table of routes ({method, pattern, handler}). The dispatcher matches the path (a
 * "{sandbox}" segment must name a sandbox of the registry: 404 in E2B's shape otherwise, with
 * why it went when the fleet remembers) and calls the handler with the record in hand. The HTTP
 * server checked the server's token before any of this, so every route is the API key's. A body
 * is parsed once, and every field is checked for type and range before anything changes: a bad
 * request is a 400 with a sentence and changes nothing. Lifetimes are E2B's: they run from the
 * creation (or the last setTimeout), not from the last use. What cellblock cannot do (pause,
 * fork, snapshots, volumes, E2B's MCP gateway, changing a running sandbox's network) is refused
 * with a sentence saying so, never accepted and ignored. docs/e2b.md lists the routes.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "cb/alloc.h"
#include "cb/cleanup.h"
#include "cb/log.h"
#include "e2b_private.h"

#define S_CLIENT_ID "cellblock"       /* E2B's (deprecated) clientID: ours is constant */
#define S_DEFAULT_TIMEOUT_S 300       /* E2B's default lifetime when the call gives none */
#define S_MAX_TIMEOUT_S (366 * 86400) /* a lifetime longer than a year is a mistake */
#define S_LIST_LIMIT 100              /* E2B's page size, and its largest */
#define S_LOGS_LIMIT 1000             /* log entries per answer, by default and at most */
#define S_TIME_LEN 32                 /* "2026-12-07T22:50:50.123Z" and its NUL */

typedef struct {
    e2b_t *api;
    http_request_t *req;
    e2b_sandbox_t *sb; /* the {sandbox} of the path; NULL for routes without one */
    const char *name;  /* the {name} of the path (a template alias); NULL without one */
} s_call_t;

/* ---- small things: times, numbers, bodies ---------------------------------------------------- */

/* ms since the epoch as RFC 3339 in UTC with milliseconds. */
static char *s_rfc3339(int64_t ms, char out[S_TIME_LEN])
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t len = strftime(out, S_TIME_LEN, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + len, S_TIME_LEN - len, ".%03dZ", (int)(ms % 1000));
    return out;
}

/* n decimal digits at s; -1 when one is not a digit. */
static int s_digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* RFC 3339 ("2026-12-07T22:50:50Z", with an optional fraction and a Z or ±HH:MM offset; what
 * JavaScript's toISOString writes) as ms since the epoch. -1 when s is not one. */
static int s_parse_rfc3339(const char *s, int64_t *ms)
{
    if (strlen(s) < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') ||
        s[13] != ':' || s[16] != ':')
        return -1;
    struct tm tm = {.tm_year = s_digits(s, 4) - 1900,
                    .tm_mon = s_digits(s + 5, 2) - 1,
                    .tm_mday = s_digits(s + 8, 2),
                    .tm_hour = s_digits(s + 11, 2),
                    .tm_min = s_digits(s + 14, 2),
                    .tm_sec = s_digits(s + 17, 2)};
    if (tm.tm_year < 0 || tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
        tm.tm_hour < 0 || tm.tm_hour > 23 || tm.tm_min < 0 || tm.tm_min > 59 || tm.tm_sec < 0 ||
        tm.tm_sec > 60)
        return -1;
    const char *p = s + 19;
    int frac_ms = 0;
    if (*p == '.') {
        int n = 0;
        for (p++; isdigit((unsigned char)*p); p++, n++)
            if (n < 3)
                frac_ms = frac_ms * 10 + (*p - '0');
        if (n == 0)
            return -1;
        for (; n < 3; n++)
            frac_ms *= 10;
    }
    int offset_s = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if ((*p == '+' || *p == '-') && p[3] == ':') {
        int h = s_digits(p + 1, 2), m = s_digits(p + 4, 2);
        if (h < 0 || h > 23 || m < 0 || m > 59)
            return -1;
        offset_s = (*p == '-' ? -1 : 1) * (h * 3600 + m * 60);
        p += 6;
    } else {
        return -1;
    }
    if (*p)
        return -1;
    *ms = ((int64_t)timegm(&tm) - offset_s) * 1000 + frac_ms;
    return 0;
}

/* A whole decimal number from a query string, within [lo, hi]. -1 when it is not one. */
static int s_parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    char *end = NULL;
    errno = 0;
    long long v = s && *s ? strtoll(s, &end, 10) : 0;
    if (!s || !*s || errno || !end || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static const char *s_json_type(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER:
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

/* The body as a JSON object (Caller owns return value); an empty body is {} when empty_ok.
 * NULL after answering 400. */
static json_t *s_body(http_request_t *req, bool empty_ok)
{
    size_t len = 0;
    const char *text = http_request_body(req, &len);
    if (len == 0 && empty_ok)
        return json_object();
    json_error_t jerr;
    json_t *body = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (json_is_object(body))
        return body;
    cleanup_free char *msg =
        body ? cb_strdup_printf("the body must be a JSON object, not %s", s_json_type(body))
             : cb_strdup_printf("the body is not valid JSON: %s (line %d, column %d)", jerr.text,
                                jerr.line, jerr.column);
    json_decref(body);
    e2b_respond_error(req, 400, msg);
    return NULL;
}

/* A field of an object, absent or null as NULL. Borrowed. */
static json_t *s_field(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_null(v) ? NULL : v;
}

/* A lifetime in seconds (E2B's `timeout`): a whole number from 1 to S_MAX_TIMEOUT_S. -1 with
 * err otherwise. */
static int s_seconds(const json_t *v, const char *field, int *out, cb_error_t *err)
{
    json_int_t n = json_is_integer(v) ? json_integer_value(v) : 0;
    if (!json_is_integer(v))
        return cb_error_fail(err, CB_ERR_INVALID, "'%s' must be a whole number of seconds, not %s",
                             field, v ? s_json_type(v) : "missing");
    if (n < 1 || n > S_MAX_TIMEOUT_S)
        return cb_error_fail(err, CB_ERR_INVALID, "'%s' must be from 1 to %d seconds, not %lld",
                             field, S_MAX_TIMEOUT_S, (long long)n);
    *out = (int)n;
    return 0;
}

/* An object whose values are all strings (metadata, envVars). -1 with err otherwise. */
static int s_string_map(const json_t *v, const char *field, cb_error_t *err)
{
    if (!json_is_object(v))
        return cb_error_fail(err, CB_ERR_INVALID, "'%s' must be an object of strings, not %s",
                             field, s_json_type(v));
    const char *key;
    json_t *value;
    json_object_foreach ((json_t *)v, key, value)
        if (!json_is_string(value))
            return cb_error_fail(err, CB_ERR_INVALID,
                                 "'%s.%.60s' must be a string, not %s (E2B's %s are strings)",
                                 field, key, s_json_type(value), field);
    return 0;
}

static void s_fail(http_request_t *req, const cb_error_t *err)
{
    e2b_respond_error(req, cb_error_http_status(err), err->msg);
}

/* ---- what the answers say -------------------------------------------------------------------- */

/* The domain getHost(port) puts after "PORT-ID.": our port forwards' host form,
 * PORT-ID.localhost:SERVERPORT, when the client reached us by an IP literal or localhost (names
 * under .localhost resolve to loopback); the Host it used otherwise (a name of allowed_hosts:
 * wildcard DNS for it is the operator's). Caller owns return value. */
static char *s_domain(e2b_t *api, http_request_t *req)
{
    const char *host = http_request_header(req, "Host");
    const char *server = http_server_address(api->http);
    const char *server_port = server ? strrchr(server, ':') : NULL;
    if (!host || !*host)
        return cb_strdup_printf("localhost%s", server_port ? server_port : "");
    cleanup_free char *name = NULL;
    const char *port = NULL;
    if (host[0] == '[') { /* [v6]:port */
        const char *close = strchr(host, ']');
        if (!close)
            return cb_xstrdup(host);
        name = cb_xstrndup(host + 1, (size_t)(close - host - 1));
        port = close[1] == ':' ? close + 1 : NULL;
    } else {
        port = strrchr(host, ':');
        name = port ? cb_xstrndup(host, (size_t)(port - host)) : cb_xstrdup(host);
    }
    unsigned char addr[16];
    bool loopbackish = strcasecmp(name, "localhost") == 0 || inet_pton(AF_INET, name, addr) == 1 ||
                       inet_pton(AF_INET6, name, addr) == 1;
    if (!loopbackish)
        return cb_xstrdup(host);
    if (!port)
        port = server_port;
    return cb_strdup_printf("localhost%s", port ? port : "");
}

/* The cores a sandbox may use: its CPU quota rounded up, or the machine's without one. */
static int s_cpu_count(e2b_sandbox_t *sb)
{
    uint32_t millis = kg_sandbox_limits(sb->kg)->cpu_millis;
    if (millis)
        return (int)((millis + 999) / 1000);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* E2B's Sandbox: what create and connect answer. Caller owns return value. */
static json_t *s_sandbox_json(e2b_sandbox_t *sb, http_request_t *req)
{
    cleanup_free char *token = http_sandbox_token(sb->api->http, sb->id);
    cleanup_free char *domain = s_domain(sb->api, req);
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "sandboxID", sb->id, "templateID",
                     sb->template_name, "alias", sb->alias, "clientID", S_CLIENT_ID, "envdVersion",
                     E2B_ENVD_VERSION, "envdAccessToken", token, "trafficAccessToken", token,
                     "domain", domain);
}

/* E2B's ListedSandbox: what the lists answer. Caller owns return value. */
static json_t *s_listed_json(e2b_sandbox_t *sb)
{
    const kg_sandbox_limits_t *limits = kg_sandbox_limits(sb->kg);
    int64_t end_ms = fleet_sandbox_expires_ms(sb->kg);
    char started[S_TIME_LEN], end[S_TIME_LEN];
    return json_pack(
        "{s:s, s:s, s:s, s:s, s:i, s:I, s:I, s:s, s:o, s:s, s:s, s:O, s:[]}", "sandboxID", sb->id,
        "templateID", sb->template_name, "alias", sb->alias, "clientID", S_CLIENT_ID, "cpuCount",
        s_cpu_count(sb), "memoryMB", (json_int_t)limits->memory_mb, "diskSizeMB",
        (json_int_t)limits->workspace_mb, "startedAt", s_rfc3339(sb->started_at_ms, started),
        "endAt", end_ms ? json_string(s_rfc3339(end_ms, end)) : json_null(), "envdVersion",
        E2B_ENVD_VERSION, "state", "running", "metadata", sb->metadata, "volumeMounts");
}

/* The sandbox's network policy in E2B's words: {allowOut, denyOut}, and whether it reaches the
 * internet at all (allowInternetAccess). "none" is E2B's denyOut ["0.0.0.0/0"]. */
static void s_network_json(e2b_sandbox_t *sb, json_t *detail)
{
    json_auto_t *policy = kg_sandbox_network_info(sb->kg);
    const char *mode = json_string_value(json_object_get(policy, "mode"));
    json_t *allow = json_object_get(policy, "allow");
    json_t *deny = json_object_get(policy, "deny");
    bool none = !mode || strcmp(mode, "none") == 0;
    bool everything = false;
    size_t i;
    json_t *entry;
    json_array_foreach (allow, i, entry)
        everything = everything || strcmp(json_string_value(entry), "*") == 0;
    json_object_set_new(detail, "allowInternetAccess",
                        none         ? json_false()
                        : everything ? json_true()
                                     : json_null());
    json_object_set_new(detail, "network",
                        none ? json_pack("{s:[], s:[s]}", "allowOut", "denyOut", "0.0.0.0/0")
                             : json_pack("{s:O, s:O}", "allowOut", allow ? allow : json_null(),
                                         "denyOut", deny ? deny : json_null()));
}

/* E2B's SandboxDetail: getInfo. Caller owns return value. */
static json_t *s_detail_json(e2b_sandbox_t *sb, http_request_t *req)
{
    json_t *detail = s_listed_json(sb);
    cleanup_free char *token = http_sandbox_token(sb->api->http, sb->id);
    cleanup_free char *domain = s_domain(sb->api, req);
    json_object_set_new(detail, "envdAccessToken", json_string(token));
    json_object_set_new(detail, "domain", json_string(domain));
    json_object_set_new(detail, "lifecycle",
                        json_pack("{s:s, s:b}", "onTimeout", "kill", "autoResume", false));
    s_network_json(sb, detail);
    return detail;
}

/* E2B's SandboxMetric, now (we keep no history). Caller owns return value. */
static json_t *s_metric_json(e2b_sandbox_t *sb)
{
    json_auto_t *info = kg_sandbox_info(sb->kg);
    const json_t *usage = json_object_get(info, "usage");
    const kg_sandbox_limits_t *limits = kg_sandbox_limits(sb->kg);
    int cpus = s_cpu_count(sb);
    double pct = json_number_value(json_object_get(usage, "cpu_share")) * 100.0 / cpus;
    json_int_t mem_total = json_integer_value(json_object_get(usage, "memory_limit_bytes"));
    json_int_t disk_total = json_integer_value(json_object_get(usage, "workspace_limit_bytes"));
    int64_t now = e2b_wall_ms();
    char stamp[S_TIME_LEN];
    return json_pack("{s:i, s:f, s:I, s:I, s:I, s:I, s:I, s:s, s:I}", "cpuCount", cpus,
                     "cpuUsedPct", pct > 100.0 ? 100.0 : pct, "memUsed",
                     json_integer_value(json_object_get(usage, "memory_bytes")), "memTotal",
                     mem_total ? mem_total : (json_int_t)limits->memory_mb << 20, "memCache",
                     (json_int_t)0, "diskUsed",
                     json_integer_value(json_object_get(usage, "workspace_bytes")), "diskTotal",
                     disk_total ? disk_total : (json_int_t)limits->workspace_mb << 20, "timestamp",
                     s_rfc3339(now, stamp), "timestampUnix", (json_int_t)(now / 1000));
}

/* ---- create ---------------------------------------------------------------------------------- */

/* The template our fleet opens for an E2B template name. */
static const char *s_template(e2b_t *api, const char *asked)
{
    if (!asked || !*asked || strcmp(asked, "base") == 0)
        return api->base_template;
    if (strcmp(asked, "code-interpreter-v1") == 0 || strcmp(asked, "code-interpreter") == 0)
        return api->interpreter_template;
    return asked;
}

/* E2B's network options of a create call (allow_internet_access, network.allowOut/denyOut) as a
 * policy. E2B's sandboxes reach the internet unless told otherwise, so a call that gives any of
 * these is read that way: open ("*": public addresses) plus allowOut, minus denyOut, closed by
 * allow_internet_access false or a denyOut of 0.0.0.0/0. A call that gives none of them gets the
 * server's default (*out NULL). -1 with err (nothing made) on a bad or unsupported option. */
static int s_network_policy(const json_t *body, egress_policy_t **out, cb_error_t *err)
{
    static const struct {
        const char *key, *why;
    } unsupported[] = {
        {"rules", "cellblock's proxy does not rewrite outbound requests"},
        {"egressProxy", "cellblock's proxy does not chain to another proxy"},
        {"maskRequestHost", "port forwards pass the Host header through as sent"},
        {"httpsPorts", "port forwards carry bytes as they are: an HTTPS port works unchanged"},
    };
    *out = NULL;
    json_t *internet = s_field(body, "allow_internet_access");
    json_t *net = s_field(body, "network");
    if (internet && !json_is_boolean(internet))
        return cb_error_fail(err, CB_ERR_INVALID, "'allow_internet_access' must be a boolean");
    if (net && !json_is_object(net))
        return cb_error_fail(err, CB_ERR_INVALID, "'network' must be an object, not %s",
                             s_json_type(net));
    for (size_t i = 0; net && i < sizeof unsupported / sizeof unsupported[0]; i++)
        if (s_field(net, unsupported[i].key))
            return cb_error_fail(err, CB_ERR_INVALID,
                                 "'network.%s' is not supported by cellblock: %s (docs/e2b.md)",
                                 unsupported[i].key, unsupported[i].why);
    json_t *public_traffic = s_field(net, "allowPublicTraffic");
    if (public_traffic && !json_is_boolean(public_traffic))
        return cb_error_fail(err, CB_ERR_INVALID, "'network.allowPublicTraffic' must be a boolean");
    json_t *allow_out = s_field(net, "allowOut");
    json_t *deny_out = s_field(net, "denyOut");
    if (!internet && !allow_out && !deny_out)
        return 0;
    bool open = !internet || json_is_true(internet);
    size_t i;
    json_t *entry;
    json_array_foreach (deny_out, i, entry)
        if (json_is_string(entry) && (strcmp(json_string_value(entry), "0.0.0.0/0") == 0 ||
                                      strcmp(json_string_value(entry), "::/0") == 0))
            open = false;
    json_auto_t *spec = json_pack("{s:{}}", "network");
    json_t *inner = json_object_get(spec, "network");
    if (allow_out)
        json_object_set(inner, "allowOut", allow_out);
    if (deny_out)
        json_object_set(inner, "denyOut", deny_out);
    if (open)
        json_object_set_new(spec, "allow", json_pack("[s]", "*"));
    *out = egress_policy_from_json(spec, err);
    return *out ? 0 : cb_error_prefix(err, "network: ");
}

/* The fields of a create call cellblock cannot honour: an error naming the field, unless it is
 * absent or asks for nothing. */
static int s_refuse_unsupported(const json_t *body, cb_error_t *err)
{
    json_t *v = s_field(body, "autoPause");
    if (v && !json_is_boolean(v))
        return cb_error_fail(err, CB_ERR_INVALID, "'autoPause' must be a boolean");
    if (json_is_true(v))
        return cb_error_fail(err, CB_ERR_INVALID,
                             "'autoPause': cellblock cannot pause a sandbox; it ends when its "
                             "timeout passes (extend it with setTimeout)");
    v = s_field(body, "autoPauseMemory");
    if (v && !json_is_boolean(v))
        return cb_error_fail(err, CB_ERR_INVALID, "'autoPauseMemory' must be a boolean");
    v = s_field(body, "autoResume");
    if (v && (!json_is_object(v) ||
              (json_object_get(v, "enabled") && !json_is_boolean(json_object_get(v, "enabled")))))
        return cb_error_fail(err, CB_ERR_INVALID, "'autoResume' must be {\"enabled\": boolean}");
    if (json_is_true(json_object_get(v, "enabled")))
        return cb_error_fail(err, CB_ERR_INVALID,
                             "'autoResume': cellblock cannot pause a sandbox, so none resumes");
    v = s_field(body, "secure");
    if (v && !json_is_boolean(v))
        return cb_error_fail(err, CB_ERR_INVALID, "'secure' must be a boolean");
    if (s_field(body, "mcp"))
        return cb_error_fail(err, CB_ERR_INVALID,
                             "'mcp': cellblock does not run E2B's MCP gateway inside sandboxes; "
                             "`cellblock serve` is an MCP server itself, at /mcp");
    v = s_field(body, "volumeMounts");
    if (v && (!json_is_array(v) || json_array_size(v) > 0))
        return cb_error_fail(err, CB_ERR_INVALID,
                             "'volumeMounts': cellblock has no volumes; a sandbox's workspace is "
                             "its own (put files in with files.write)");
    v = s_field(body, "iam");
    if (v && (!json_is_object(v) || json_object_size(v) > 0))
        return cb_error_fail(err, CB_ERR_INVALID,
                             "'iam': cellblock issues no workload identity tokens");
    return 0;
}

/* envVars as "KEY=VALUE" strings. -1 with err on a bad name. */
static int s_env_list(const json_t *env, cb_strv_t *out, cb_error_t *err)
{
    const char *key;
    json_t *value;
    json_object_foreach ((json_t *)env, key, value) {
        if (!cb_env_name_valid(key))
            return cb_error_fail(err, CB_ERR_INVALID,
                                 "'envVars': '%.60s' is not a variable name (letters, digits, _; "
                                 "not starting with a digit)",
                                 key);
        cb_strv_push(out, cb_strdup_printf("%s=%s", key, json_string_value(value)));
    }
    return 0;
}

static void s_create(s_call_t *c)
{
    json_auto_t *body = s_body(c->req, false);
    if (!body)
        return;
    cb_error_t err = {0};
    json_t *template_id = s_field(body, "templateID");
    json_t *metadata = s_field(body, "metadata");
    json_t *env = s_field(body, "envVars");
    json_t *timeout = s_field(body, "timeout");
    int timeout_s = S_DEFAULT_TIMEOUT_S;
    cleanup_strvec cb_strv_t env_list = {0};
    cb_strv_init(&env_list);
    egress_policy_t *network = NULL;
    if ((template_id && (!json_is_string(template_id) || !json_string_length(template_id)) &&
         cb_error_fail(&err, CB_ERR_INVALID, "'templateID' must be a template's name")) ||
        (timeout && s_seconds(timeout, "timeout", &timeout_s, &err) < 0) ||
        (metadata && s_string_map(metadata, "metadata", &err) < 0) ||
        (env && (s_string_map(env, "envVars", &err) < 0 || s_env_list(env, &env_list, &err) < 0)) ||
        s_refuse_unsupported(body, &err) < 0 || s_network_policy(body, &network, &err) < 0)
        return s_fail(c->req, &err);

    const char *asked = template_id ? json_string_value(template_id) : "base";
    const char *tpl = s_template(c->api, asked);
    fleet_sandbox_opts_t opts = {
        .template_name = tpl,
        .limits = {.network = network},
        .env = (const char *const *)env_list.v,
        .timeout_s = timeout_s,
        .metadata = metadata,
        .tenant = http_request_principal(c->req)->tenant,
        .admin = http_request_principal(c->req)->admin,
        .on_end = e2b_sandbox_on_end,
        .arg = c->api,
    };
    kg_sandbox_t *kg = fleet_sandbox_open(c->api->fleet, &opts, &err);
    egress_policy_destroy(&network); /* the sandbox has its own copy */
    if (!kg) {
        /* At the cap: E2B's answer to too many sandboxes, which the SDK shows as a
         * RateLimitError. */
        int status = err.kind == CB_ERR_LIMIT ? 429 : cb_error_http_status(&err);
        return e2b_respond_error(c->req, status, err.msg);
    }
    e2b_sandbox_t *sb = e2b_sandbox_add(c->api, kg, asked, tpl, metadata);
    kg_sandbox_log(kg, "e2b", "created through E2B's API (template %s, lifetime %d s)", asked,
                   timeout_s);
    json_auto_t *out = s_sandbox_json(sb, c->req);
    http_respond_json(c->req, 201, out, NULL);
}

/* ---- lists ----------------------------------------------------------------------------------- */

/* One level of URL decoding (%XX; '+' is a space), as Go's url.QueryUnescape. NULL when s is
 * malformed or decodes to a NUL. Caller owns return value. */
static char *s_unescape(const char *s, size_t len)
{
    char *out = cb_xmalloc(len + 1);
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '+') {
            out[n++] = ' ';
        } else if (s[i] != '%') {
            out[n++] = s[i];
        } else if (i + 2 < len && isxdigit((unsigned char)s[i + 1]) &&
                   isxdigit((unsigned char)s[i + 2])) {
            char hex[3] = {s[i + 1], s[i + 2], 0};
            out[n] = (char)strtol(hex, NULL, 16);
            if (!out[n++]) {
                free(out);
                return NULL;
            }
            i += 2;
        } else {
            free(out);
            return NULL;
        }
    }
    out[n] = 0;
    return out;
}

/* The SDK's metadata filter: "k=v&k2=v2", each key and value URL-encoded twice (encodeURIComponent,
 * then URLSearchParams), of which the HTTP server undid the outer query encoding. As an object
 * (Caller owns return value), or NULL with err. */
static json_t *s_metadata_filter(const char *q, cb_error_t *err)
{
    json_auto_t *want = json_object();
    while (*q) {
        size_t len = strcspn(q, "&");
        const char *eq = memchr(q, '=', len);
        size_t klen = eq ? (size_t)(eq - q) : len;
        cleanup_free char *k1 = len ? s_unescape(q, klen) : NULL;
        cleanup_free char *v1 = len ? s_unescape(eq ? eq + 1 : "", eq ? len - klen - 1 : 0) : NULL;
        cleanup_free char *k = k1 ? s_unescape(k1, strlen(k1)) : NULL;
        cleanup_free char *v = v1 ? s_unescape(v1, strlen(v1)) : NULL;
        if (len && (!k || !v))
            return cb_error_fail(err, CB_ERR_INVALID,
                                 "'metadata' must be URL-encoded key=value pairs joined with &"),
                   NULL;
        /* a pair that cannot be kept (not UTF-8) must not widen the filter */
        if (len && *k && json_object_set_new(want, k, json_string(v)) < 0)
            return cb_error_fail(err, CB_ERR_INVALID, "'metadata': keys and values must be UTF-8"),
                   NULL;
        q += len + (q[len] == '&');
    }
    return steal_pointer(&want);
}

/* Whether every pair of want is in the sandbox's metadata. */
static bool s_metadata_matches(const e2b_sandbox_t *sb, const json_t *want)
{
    const char *key;
    json_t *value;
    json_object_foreach ((json_t *)want, key, value) {
        const char *have = json_string_value(json_object_get(sb->metadata, key));
        if (!have || strcmp(have, json_string_value(value)) != 0)
            return false;
    }
    return true;
}

typedef struct {
    json_t *metadata;     /* pairs to match, or NULL */
    bool none;            /* the states asked for exclude "running": nothing matches */
    const char *template; /* a template id or alias, or NULL */
    int64_t after_ms;     /* started after this (0: any) */
    int order;            /* 1: oldest first; -1: newest first (E2B's default) */
    int64_t limit;        /* page size */
    bool cursor;          /* a nextToken was given: */
    int64_t cursor_ms;    /*   the last sandbox of the previous page: when it started */
    char cursor_id[128];  /*   and its id */
} s_list_query_t;

/* The query of a list call. -1 with err on a bad parameter. */
static int s_list_query(http_request_t *req, bool v2, s_list_query_t *q, cb_error_t *err)
{
    *q = (s_list_query_t){.order = -1, .limit = v2 ? S_LIST_LIMIT : INT64_MAX};
    const char *metadata = http_request_query(req, "metadata");
    if (metadata && !(q->metadata = s_metadata_filter(metadata, err)))
        return -1;
    if (!v2)
        return 0;
    /* state: repeated (?state=running&state=paused) or joined with commas */
    bool any_state = false, running = false;
    const char *v;
    for (size_t n = 0; (v = http_request_query_nth(req, "state", n)); n++) {
        cleanup_free char *states = cb_xstrdup(v);
        char *save = NULL;
        for (char *s = strtok_r(states, ",", &save); s; s = strtok_r(NULL, ",", &save)) {
            if (strcmp(s, "running") != 0 && strcmp(s, "paused") != 0)
                return cb_error_fail(err, CB_ERR_INVALID,
                                     "'state' must be running or paused, not '%.40s'", s);
            any_state = true;
            running = running || strcmp(s, "running") == 0;
        }
    }
    q->none = any_state && !running; /* we never pause, so no sandbox here is paused */
    q->template = http_request_query(req, "template");
    if ((v = http_request_query(req, "startedAfter")) && s_parse_rfc3339(v, &q->after_ms) < 0)
        return cb_error_fail(err, CB_ERR_INVALID,
                             "'startedAfter' must be an RFC 3339 time (2026-01-31T12:00:00Z)");
    if ((v = http_request_query(req, "order")) && strcmp(v, "asc") != 0 && strcmp(v, "desc") != 0)
        return cb_error_fail(err, CB_ERR_INVALID, "'order' must be asc or desc");
    if (v && strcmp(v, "asc") == 0)
        q->order = 1;
    if ((v = http_request_query(req, "limit")) && s_parse_int(v, 1, S_LIST_LIMIT, &q->limit) < 0)
        return cb_error_fail(err, CB_ERR_INVALID, "'limit' must be a whole number from 1 to %d",
                             S_LIST_LIMIT);
    if ((v = http_request_query(req, "nextToken"))) {
        const char *dot = strchr(v, '.');
        cleanup_free char *ms = dot ? cb_xstrndup(v, (size_t)(dot - v)) : NULL;
        if (!dot || s_parse_int(ms, 0, INT64_MAX, &q->cursor_ms) < 0 || !dot[1] ||
            strlen(dot + 1) >= sizeof q->cursor_id)
            return cb_error_fail(err, CB_ERR_INVALID,
                                 "'nextToken' is not one this server gave: pass the X-Next-Token "
                                 "header of the previous page back as it is");
        q->cursor = true;
        snprintf(q->cursor_id, sizeof q->cursor_id, "%s", dot + 1);
    }
    return 0;
}

/* Order of sandboxes: when they started, then their ids. */
static int s_key_cmp(int64_t a_ms, const char *a_id, int64_t b_ms, const char *b_id)
{
    return a_ms < b_ms ? -1 : a_ms > b_ms ? 1 : strcmp(a_id, b_id);
}

static int s_oldest_first(const void *a, const void *b)
{
    const e2b_sandbox_t *x = *(e2b_sandbox_t *const *)a, *y = *(e2b_sandbox_t *const *)b;
    return s_key_cmp(x->started_at_ms, x->id, y->started_at_ms, y->id);
}

static bool s_listed(const e2b_sandbox_t *sb, const s_list_query_t *q)
{
    if (q->none || (q->metadata && !s_metadata_matches(sb, q->metadata)) ||
        sb->started_at_ms <= q->after_ms)
        return false;
    if (q->template && strcmp(q->template, sb->template_name) != 0 &&
        strcmp(q->template, sb->alias) != 0 && strcmp(q->template, sb->template_id) != 0)
        return false;
    /* past the cursor in the order asked */
    return !q->cursor ||
           q->order * s_key_cmp(sb->started_at_ms, sb->id, q->cursor_ms, q->cursor_id) > 0;
}

/* GET /v2/sandboxes (v2: filters, order, pages) and GET /sandboxes (metadata only, all). */
static void s_list(s_call_t *c, bool v2)
{
    s_list_query_t q;
    cb_error_t err = {0};
    if (s_list_query(c->req, v2, &q, &err) < 0) {
        json_decref(q.metadata);
        return s_fail(c->req, &err);
    }
    json_auto_t *metadata = q.metadata; /* freed on return */
    size_t size = zhashx_size(c->api->sandboxes), total = 0;
    cleanup_free e2b_sandbox_t **all = cb_xcalloc(size + 1, sizeof *all);
    size_t n = 0;
    /* Only the principal's own (an admin's: all); X-Total-Running counts those alone. */
    for (e2b_sandbox_t *sb = zhashx_first(c->api->sandboxes); sb && n < size;
         sb = zhashx_next(c->api->sandboxes)) {
        if (!e2b_sandbox_may(c->req, sb))
            continue;
        total++;
        if (s_listed(sb, &q))
            all[n++] = sb;
    }
    qsort(all, n, sizeof *all, s_oldest_first);
    json_auto_t *out = json_array();
    e2b_sandbox_t *last = NULL;
    for (size_t i = 0; i < n && (int64_t)i < q.limit; i++) {
        last = all[q.order > 0 ? i : n - 1 - i];
        json_array_append_new(out, s_listed_json(last));
    }
    bool more = (int64_t)n > q.limit;
    cleanup_free char *next =
        more ? cb_strdup_printf("%lld.%s", (long long)last->started_at_ms, last->id) : NULL;
    cleanup_free char *running = cb_strdup_printf("%zu", total);
    http_respond_json(
        c->req, 200, out,
        (const char *[]){"X-Total-Running", running, next ? "X-Next-Token" : NULL, next, NULL});
}

static void s_list_v2(s_call_t *c) { s_list(c, true); }
static void s_list_v1(s_call_t *c) { s_list(c, false); }

/* ---- one sandbox ----------------------------------------------------------------------------- */

static void s_info(s_call_t *c)
{
    json_auto_t *out = s_detail_json(c->sb, c->req);
    http_respond_json(c->req, 200, out, NULL);
}

static void s_kill(s_call_t *c)
{
    e2b_sandbox_kill(c->sb, "killed through E2B's API");
    http_respond(c->req, 204, NULL, NULL, NULL, 0);
}

static void s_set_timeout(s_call_t *c)
{
    json_auto_t *body = s_body(c->req, false);
    if (!body)
        return;
    int timeout_s = 0;
    cb_error_t err = {0};
    if (s_seconds(json_object_get(body, "timeout"), "timeout", &timeout_s, &err) < 0 ||
        fleet_sandbox_set_timeout(c->sb->kg, timeout_s, &err) < 0)
        return s_fail(c->req, &err);
    http_respond(c->req, 204, NULL, NULL, NULL, 0);
}

/* connect and resume, on a sandbox that runs (we never pause one): its lifetime becomes timeout
 * from now when that is later than it was (E2B never shortens one here), then E2B's Sandbox. */
static void s_connect_status(s_call_t *c, int status)
{
    json_auto_t *body = s_body(c->req, true);
    if (!body)
        return;
    json_t *timeout = s_field(body, "timeout");
    json_t *memory = s_field(body, "memory");
    int timeout_s = 0;
    cb_error_t err = {0};
    if ((timeout && s_seconds(timeout, "timeout", &timeout_s, &err) < 0) ||
        (memory && !json_is_boolean(memory) &&
         cb_error_fail(&err, CB_ERR_INVALID, "'memory' must be a boolean")))
        return s_fail(c->req, &err);
    int64_t end_ms = fleet_sandbox_expires_ms(c->sb->kg);
    if (timeout_s && end_ms && e2b_wall_ms() + (int64_t)timeout_s * 1000 > end_ms &&
        fleet_sandbox_set_timeout(c->sb->kg, timeout_s, &err) < 0)
        return s_fail(c->req, &err);
    json_auto_t *out = s_sandbox_json(c->sb, c->req);
    http_respond_json(c->req, status, out, NULL);
}

static void s_connect(s_call_t *c) { s_connect_status(c, 200); }
static void s_resume(s_call_t *c) { s_connect_status(c, 201); }

/* What cellblock cannot do to a sandbox: 501, which the SDK shows as a SandboxError with this
 * sentence (not 409: the SDK reads a 409 from pause as "paused already" and says nothing). */
static void s_pause(s_call_t *c)
{
    e2b_respond_error(c->req, 501,
                      "cellblock cannot pause a sandbox: it keeps no memory snapshots, and its "
                      "sandboxes run until killed or their timeout passes (extend it with "
                      "setTimeout; see docs/e2b.md)");
}

static void s_fork(s_call_t *c)
{
    e2b_respond_error(c->req, 501,
                      "cellblock cannot fork a sandbox: it keeps no memory snapshots (create a "
                      "new sandbox and copy files with files.read/write; see docs/e2b.md)");
}

static void s_snapshot(s_call_t *c)
{
    e2b_respond_error(c->req, 501,
                      "cellblock cannot snapshot a sandbox into a template (templates are JSON "
                      "files: see docs/templates.md)");
}

static void s_update_network(s_call_t *c)
{
    e2b_respond_error(c->req, 501,
                      "cellblock cannot change a running sandbox's network policy: give it when "
                      "creating the sandbox (allowInternetAccess, network.allowOut/denyOut)");
}

static void s_metrics(s_call_t *c)
{
    /* One sample, now: when the window asked for (seconds since the epoch) holds now. */
    const char *start = http_request_query(c->req, "start");
    const char *end = http_request_query(c->req, "end");
    int64_t start_s = 0, end_s = INT64_MAX, now_s = e2b_wall_ms() / 1000;
    if ((start && s_parse_int(start, 0, INT64_MAX, &start_s) < 0) ||
        (end && s_parse_int(end, 0, INT64_MAX, &end_s) < 0))
        return e2b_respond_error(c->req, 400,
                                 "'start' and 'end' must be whole seconds since the epoch");
    json_auto_t *out = json_array();
    if (start_s - 1 <= now_s && now_s - 1 <= end_s)
        json_array_append_new(out, s_metric_json(c->sb));
    http_respond_json(c->req, 200, out, NULL);
}

/* GET /sandboxes/metrics?sandbox_ids=a,b (or repeated): {sandboxes: {id: metric}}, for the
 * ids that are ours and running. */
static void s_metrics_many(s_call_t *c)
{
    json_auto_t *found = json_object();
    const char *v;
    size_t asked = 0;
    for (size_t n = 0; (v = http_request_query_nth(c->req, "sandbox_ids", n)); n++) {
        cleanup_free char *ids = cb_xstrdup(v);
        char *save = NULL;
        for (char *id = strtok_r(ids, ",", &save); id; id = strtok_r(NULL, ",", &save)) {
            if (++asked > S_LIST_LIMIT)
                return e2b_respond_error(c->req, 400, "'sandbox_ids' names at most 100 sandboxes");
            e2b_sandbox_t *sb = e2b_sandbox_for(c->api, c->req, id);
            if (sb && !json_object_get(found, sb->id))
                json_object_set_new(found, sb->id, s_metric_json(sb));
        }
    }
    if (!asked)
        return e2b_respond_error(c->req, 400, "'sandbox_ids' is required (ids joined with commas)");
    json_auto_t *out = json_pack("{s:O}", "sandboxes", found);
    http_respond_json(c->req, 200, out, NULL);
}

/* ---- logs ------------------------------------------------------------------------------------ */

/* One entry of kg_sandbox_logs as E2B's SandboxLogEntry ({timestamp, level, message, fields});
 * *ms set to its time. Every entry is "info": the engine's log has no levels. */
static json_t *s_log_entry(const json_t *e, int64_t *ms)
{
    const char *time = json_string_value(json_object_get(e, "time"));
    if (!time || s_parse_rfc3339(time, ms) < 0)
        *ms = 0;
    return json_pack("{s:s, s:s, s:s, s:{s:s}}", "timestamp", time ? time : "", "level", "info",
                     "message", json_string_value(json_object_get(e, "text")), "fields", "source",
                     json_string_value(json_object_get(e, "source")));
}

/* GET /sandboxes/{id}/logs?start=MS&limit=N: {logs: [{timestamp, line}], logEntries: [...]},
 * oldest first, from start on. */
static void s_logs_v1(s_call_t *c)
{
    const char *v;
    int64_t start = 0, limit = S_LOGS_LIMIT;
    if (((v = http_request_query(c->req, "start")) && s_parse_int(v, 0, INT64_MAX, &start) < 0) ||
        ((v = http_request_query(c->req, "limit")) && s_parse_int(v, 0, S_LOGS_LIMIT, &limit) < 0))
        return e2b_respond_error(c->req, 400,
                                 "'start' must be ms since the epoch and 'limit' a whole number "
                                 "from 0 to 1000");
    json_auto_t *all = kg_sandbox_logs(c->sb->kg, 0);
    json_auto_t *out = json_pack("{s:[], s:[]}", "logs", "logEntries");
    json_t *logs = json_object_get(out, "logs"), *entries = json_object_get(out, "logEntries");
    size_t i;
    json_t *e;
    json_array_foreach (all, i, e) {
        if ((int64_t)json_array_size(logs) >= limit)
            break;
        int64_t ms = 0;
        json_t *entry = s_log_entry(e, &ms);
        if (ms < start) {
            json_decref(entry);
            continue;
        }
        cleanup_free char *line =
            cb_strdup_printf("[%s] %s", json_string_value(json_object_get(e, "source")),
                             json_string_value(json_object_get(e, "text")));
        json_array_append_new(logs, json_pack("{s:O, s:s}", "timestamp",
                                              json_object_get(entry, "timestamp"), "line", line));
        json_array_append_new(entries, entry);
    }
    http_respond_json(c->req, 200, out, NULL);
}

static int s_level_rank(const char *level)
{
    static const char *const levels[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++)
        if (strcmp(level, levels[i]) == 0)
            return i;
    return -1;
}

/* GET /v2/sandboxes/{id}/logs?cursor=MS&direction=forward|backward&limit=N&level=L&search=S:
 * {logs: [SandboxLogEntry]}: forward from the cursor oldest first, or backward from it newest
 * first. */
static void s_logs_v2(s_call_t *c)
{
    const char *v;
    int64_t cursor = -1, limit = S_LOGS_LIMIT;
    bool backward = false;
    int min_level = 0;
    if (((v = http_request_query(c->req, "cursor")) && s_parse_int(v, 0, INT64_MAX, &cursor) < 0) ||
        ((v = http_request_query(c->req, "limit")) && s_parse_int(v, 0, S_LOGS_LIMIT, &limit) < 0))
        return e2b_respond_error(c->req, 400,
                                 "'cursor' must be ms since the epoch and 'limit' a whole number "
                                 "from 0 to 1000");
    if ((v = http_request_query(c->req, "direction"))) {
        if (strcmp(v, "forward") != 0 && strcmp(v, "backward") != 0)
            return e2b_respond_error(c->req, 400, "'direction' must be forward or backward");
        backward = strcmp(v, "backward") == 0;
    }
    if ((v = http_request_query(c->req, "level")) && (min_level = s_level_rank(v)) < 0)
        return e2b_respond_error(c->req, 400, "'level' must be debug, info, warn or error");
    const char *search = http_request_query(c->req, "search");
    json_auto_t *all = kg_sandbox_logs(c->sb->kg, 0);
    json_auto_t *logs = json_array();
    size_t n = json_array_size(all);
    for (size_t k = 0; k < n && (int64_t)json_array_size(logs) < limit; k++) {
        json_t *e = json_array_get(all, backward ? n - 1 - k : k);
        int64_t ms = 0;
        json_t *entry = s_log_entry(e, &ms);
        const char *text = json_string_value(json_object_get(e, "text"));
        bool in_window = cursor < 0 || (backward ? ms <= cursor : ms >= cursor);
        if (in_window && min_level <= s_level_rank("info") &&
            (!search || (text && strstr(text, search))))
            json_array_append_new(logs, entry);
        else
            json_decref(entry);
    }
    json_auto_t *out = json_pack("{s:O}", "logs", logs);
    http_respond_json(c->req, 200, out, NULL);
}

/* ---- templates and health -------------------------------------------------------------------- */

/* E2B's names for a template of ours: its own, and "base" / "code-interpreter-v1" when those
 * open it. */
static json_t *s_template_names(e2b_t *api, const char *name)
{
    json_t *names = json_pack("[s]", name);
    if (strcmp(name, api->base_template) == 0)
        json_array_append_new(names, json_string("base"));
    if (strcmp(name, api->interpreter_template) == 0)
        json_array_append_new(names, json_string("code-interpreter-v1"));
    return names;
}

/* GET /templates: ours, in E2B's Template shape (a template here is a JSON file, never
 * built: one "build", ready). Limits a template does not set show the engine's defaults (2048
 * MiB of memory, a 1024 MiB workspace, every core). */
static void s_templates(s_call_t *c)
{
    json_auto_t *ours = fleet_templates(c->api->fleet);
    json_auto_t *out = json_array();
    char now[S_TIME_LEN];
    s_rfc3339(e2b_wall_ms(), now);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    size_t i;
    json_t *t;
    json_array_foreach (ours, i, t) {
        const char *name = json_string_value(json_object_get(t, "name"));
        const char *description = json_string_value(json_object_get(t, "description"));
        const json_t *limits = json_object_get(t, "limits");
        const json_t *cpu = json_object_get(limits, "cpu");
        json_int_t cpus = cpu         ? (json_int_t)(json_number_value(cpu) + 0.999)
                          : cores > 0 ? cores
                                      : 1;
        json_int_t memory = json_integer_value(json_object_get(limits, "memory_mb"));
        json_int_t disk = json_integer_value(json_object_get(limits, "disk_mb"));
        if (!name)
            continue;
        json_t *names = s_template_names(c->api, name);
        json_t *entry = json_pack(
            "{s:s, s:O, s:o, s:s, s:i, s:s, s:I, s:I, s:I, s:s, s:b, s:s, s:s, s:n, s:I, s:n, s:s}",
            "templateID", name, "aliases", names, "names", names, "buildID", name, "buildCount", 1,
            "buildStatus", "ready", "cpuCount", cpus, "memoryMB", memory ? memory : 2048,
            "diskSizeMB", disk ? disk : 1024, "envdVersion", E2B_ENVD_VERSION, "public", false,
            "createdAt", now, "updatedAt", now, "lastSpawnedAt", "spawnCount", (json_int_t)0,
            "createdBy", "description", description ? description : "");
        json_array_append_new(out, entry);
    }
    http_respond_json(c->req, 200, out, NULL);
}

/* GET /templates/aliases/{name}: whether a template of that name opens here. */
static void s_template_alias(s_call_t *c)
{
    const char *tpl = s_template(c->api, c->name);
    json_auto_t *ours = fleet_templates(c->api->fleet);
    bool found = false;
    size_t i;
    json_t *t;
    json_array_foreach (ours, i, t) {
        const char *name = json_string_value(json_object_get(t, "name"));
        found = found || (name && strcmp(name, tpl) == 0);
    }
    if (!found) {
        cleanup_free char *msg = cb_strdup_printf("template '%s' not found", c->name);
        return e2b_respond_error(c->req, 404, msg);
    }
    json_auto_t *out = json_pack("{s:s, s:b}", "templateID", tpl, "public", false);
    http_respond_json(c->req, 200, out, NULL);
}

static void s_health(s_call_t *c)
{
    json_auto_t *out = json_pack("{s:s}", "message", "Health check successful");
    http_respond_json(c->req, 200, out, NULL);
}

/* ---- dispatch -------------------------------------------------------------------------------- */

typedef struct {
    const char *method;
    const char *pattern; /* "{sandbox}": a sandbox of the registry; "{name}": any segment */
    void (*fn)(s_call_t *c);
} s_route_t;

/* First match wins: /sandboxes/metrics before /sandboxes/{sandbox}. */
static const s_route_t s_routes[] = {
    {"GET", "/health", s_health},
    {"POST", "/v2/sandboxes", s_create},
    {"POST", "/sandboxes", s_create},
    {"GET", "/v2/sandboxes", s_list_v2},
    {"GET", "/sandboxes", s_list_v1},
    {"GET", "/sandboxes/metrics", s_metrics_many},
    {"GET", "/sandboxes/{sandbox}", s_info},
    {"DELETE", "/sandboxes/{sandbox}", s_kill},
    {"POST", "/sandboxes/{sandbox}/timeout", s_set_timeout},
    {"POST", "/v2/sandboxes/{sandbox}/connect", s_connect},
    {"POST", "/sandboxes/{sandbox}/connect", s_connect},
    {"POST", "/sandboxes/{sandbox}/resume", s_resume},
    {"POST", "/sandboxes/{sandbox}/pause", s_pause},
    {"POST", "/sandboxes/{sandbox}/fork", s_fork},
    {"POST", "/sandboxes/{sandbox}/snapshots", s_snapshot},
    {"PUT", "/sandboxes/{sandbox}/network", s_update_network},
    {"GET", "/sandboxes/{sandbox}/metrics", s_metrics},
    {"GET", "/sandboxes/{sandbox}/logs", s_logs_v1},
    {"GET", "/v2/sandboxes/{sandbox}/logs", s_logs_v2},
    {"GET", "/templates", s_templates},
    {"GET", "/templates/aliases/{name}", s_template_alias},
};

/* Whether path fits pattern; the one {placeholder} segment's value in *arg (Caller owns return
 * value; NULL when the pattern has none). */
static bool s_match(const char *pattern, const char *path, char **arg)
{
    *arg = NULL;
    while (*pattern && *path) {
        if (*pattern == '{') {
            size_t len = strcspn(path, "/");
            if (len == 0 || *arg)
                break;
            *arg = cb_xstrndup(path, len);
            path += len;
            pattern = strchr(pattern, '}') + 1;
        } else if (*pattern++ != *path++) {
            break;
        }
    }
    if (!*pattern && !*path)
        return true;
    free(*arg);
    *arg = NULL;
    return false;
}

void e2b_api_handle(e2b_t *api, http_request_t *req, const char *path)
{
    const char *method = http_request_method(req);
    for (size_t i = 0; i < sizeof s_routes / sizeof s_routes[0]; i++) {
        const s_route_t *r = &s_routes[i];
        cleanup_free char *arg = NULL;
        if (strcmp(method, r->method) != 0 || !s_match(r->pattern, path, &arg))
            continue;
        s_call_t c = {.api = api, .req = req};
        if (strstr(r->pattern, "{sandbox}")) {
            c.sb = e2b_sandbox_for(api, req, arg);
            if (!c.sb)
                return e2b_not_found(api, req, arg);
        } else {
            c.name = arg;
        }
        return r->fn(&c);
    }
    cleanup_free char *msg = cb_strdup_printf("%s %s%s: not a route of the E2B API here (see "
                                              "docs/e2b.md)",
                                              method, E2B_PREFIX, path);
    e2b_respond_error(req, 404, msg);
}
