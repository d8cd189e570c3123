/* config.c: the MCP server's settings from the environment.
 *
 * One table: each row is a variable, the setting it feeds, its range and unit. E2B's MCP server
 * names are accepted as aliases with E2B's own ranges; a CELLBLOCK_ variable wins over its alias.
 * A malformed or out-of-range value stops the start with a message naming the variable and its
 * range: a server silently running with a default the user did not ask for is worse.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "egress/egress.h"
#include "mcp_private.h"

typedef enum {
    SET_TIMEOUT,
    SET_MEMORY,
    SET_CPU,
    SET_DISK,
    SET_OUTPUT,
    SET_MESSAGE,
    SET_LIFETIME,
    SET_IDLE,
    SET_MAX_SANDBOXES,
    SET_SESSION_TIMEOUT,
    SET_MAX_SESSIONS,
    SET_HTTP_SERVER_LOG,
    SET_KERNEL_STARTUP,
    SET_COUNT
} s_setting_t;

static const struct {
    const char *name;
    s_setting_t setting;
    double min, max;
    const char *unit;
} s_numbers[] = {
    /* CELLBLOCK_ names first: the first variable set for a setting wins. */
    {"CELLBLOCK_TIMEOUT", SET_TIMEOUT, 1, 3600, "seconds"},
    {"E2B_TIMEOUT", SET_TIMEOUT, 1, 3600, "seconds"},
    {"CELLBLOCK_MEMORY_LIMIT", SET_MEMORY, 128, 65536, "MB"},
    {"E2B_MEMORY_LIMIT", SET_MEMORY, 128, 4096, "MB"},
    {"CELLBLOCK_CPU_LIMIT", SET_CPU, 0.1, 64, "cores"},
    {"E2B_CPU_LIMIT", SET_CPU, 0.1, 64, "cores"},
    {"CELLBLOCK_DISK_LIMIT", SET_DISK, 16, 1048576, "MB"},
    {"E2B_DISK_LIMIT", SET_DISK, 16, 1048576, "MB"},
    {"CELLBLOCK_OUTPUT_LIMIT", SET_OUTPUT, 1000, 10000000, "characters"},
    {"CELLBLOCK_MAX_MESSAGE_MB", SET_MESSAGE, 1, 1024, "MB"},
    {"CELLBLOCK_SANDBOX_TIMEOUT", SET_LIFETIME, -1, 604800, "seconds; 0 or -1: no limit"},
    {"E2B_SESSION_TIMEOUT", SET_LIFETIME, 1, 86400, "seconds"},
    {"CELLBLOCK_IDLE_TIMEOUT", SET_IDLE, 0, 604800, "seconds, 0: never"},
    {"CELLBLOCK_MAX_SANDBOXES", SET_MAX_SANDBOXES, 1, 100000, "sandboxes"},
    {"CELLBLOCK_MCP_SESSION_TIMEOUT", SET_SESSION_TIMEOUT, 2, 86400, "seconds"},
    {"CELLBLOCK_MCP_MAX_SESSIONS", SET_MAX_SESSIONS, 1, 100000, "sessions"},
    {"CELLBLOCK_MCP_HTTP_SERVER_LOG", SET_HTTP_SERVER_LOG, 0, 1, "0 or 1"},
    {"CELLBLOCK_KERNEL_STARTUP_TIMEOUT", SET_KERNEL_STARTUP, 1, 3600, "seconds"},
};

static int s_number(const char *name, const char *text, double min, double max, const char *unit,
                    bool integer, double *out, cb_error_t *err)
{
    char *end = NULL;
    double v = strtod(text, &end);
    if (!text[0] || *end || !isfinite(v) || v < min || v > max || (integer && v != floor(v)))
        return cb_error_fail(err, CB_ERR_INVALID, "%s must be %s from %g to %g (%s); got '%.40s'",
                             name, integer ? "a whole number" : "a number", min, max, unit, text);
    *out = v;
    return 0;
}

static int s_log_level(mcp_config_t *cfg, cb_error_t *err)
{
    static const char *const names[] = {"CELLBLOCK_LOG_LEVEL", "E2B_LOG_LEVEL"};
    for (size_t i = 0; i < 2; i++) {
        const char *v = getenv(names[i]);
        if (!v || !v[0])
            continue;
        if (cb_log_level_parse(v, &cfg->log_level) < 0)
            return cb_error_fail(err, CB_ERR_INVALID,
                                 "%s must be debug, info, warn, error or off; got '%.40s'",
                                 names[i], v);
        cfg->log_level_set = true;
        return 0;
    }
    const char *debug = getenv("E2B_DEBUG");
    if (!debug || !debug[0])
        return 0;
    bool on = strcmp(debug, "1") == 0 || strcasecmp(debug, "true") == 0;
    if (!on && strcmp(debug, "0") != 0 && strcasecmp(debug, "false") != 0)
        return cb_error_fail(err, CB_ERR_INVALID,
                             "E2B_DEBUG must be 0, 1, true or false; got '%.40s'", debug);
    if (on) {
        cfg->log_level = CB_LOG_DEBUG;
        cfg->log_level_set = true;
    }
    return 0;
}

int mcp_config_from_env(mcp_config_t *cfg, cb_error_t *err)
{
    *cfg = (mcp_config_t){.timeout_s = 300,
                          .memory_mb = 512,
                          .cpu_millis = 0,
                          .disk_mb = 1024,
                          .output_limit = 20000,
                          .max_message_bytes = 32u << 20,
                          .log_level = CB_LOG_WARN,
                          .template_name = "python",
                          .sandbox_timeout_s = 300,
                          .max_sandboxes = 100,
                          .pool = "python=1",
                          .session_timeout_s = 3600,
                          .max_sessions = 256};
    bool seen[SET_COUNT] = {false};
    for (size_t i = 0; i < sizeof s_numbers / sizeof s_numbers[0]; i++) {
        const char *text = getenv(s_numbers[i].name);
        if (!text || seen[s_numbers[i].setting])
            continue;
        double v = 0;
        if (s_number(s_numbers[i].name, text, s_numbers[i].min, s_numbers[i].max, s_numbers[i].unit,
                     s_numbers[i].setting != SET_CPU, &v, err) < 0)
            return -1;
        seen[s_numbers[i].setting] = true;
        switch (s_numbers[i].setting) {
        case SET_TIMEOUT: cfg->timeout_s = (int)v; break;
        case SET_MEMORY: cfg->memory_mb = (uint64_t)v; break;
        case SET_CPU: cfg->cpu_millis = (uint32_t)(v * 1000.0 + 0.5); break;
        case SET_DISK: cfg->disk_mb = (uint64_t)v; break;
        case SET_OUTPUT: cfg->output_limit = (size_t)v; break;
        case SET_MESSAGE: cfg->max_message_bytes = (size_t)v << 20; break;
        case SET_LIFETIME: cfg->sandbox_timeout_s = v == 0 ? -1 : (int)v; break;
        case SET_IDLE: cfg->idle_timeout_s = (int)v; break;
        case SET_MAX_SANDBOXES: cfg->max_sandboxes = (int)v; break;
        case SET_SESSION_TIMEOUT: cfg->session_timeout_s = (int)v; break;
        case SET_MAX_SESSIONS: cfg->max_sessions = (size_t)v; break;
        case SET_HTTP_SERVER_LOG: cfg->http_server_log = v != 0; break;
        case SET_KERNEL_STARTUP: cfg->kernel_startup_timeout_s = (int)v; break;
        case SET_COUNT: break;
        }
    }
    static const char *const templates[] = {"CELLBLOCK_TEMPLATE", "E2B_TEMPLATE"};
    for (size_t i = 0; i < 2; i++)
        if (getenv(templates[i]) && getenv(templates[i])[0]) {
            cfg->template_name = getenv(templates[i]);
            break;
        }
    const char *pool = getenv("CELLBLOCK_POOL");
    if (pool) {
        if (mcp_config_pool_each(pool, NULL, NULL, err) < 0)
            return cb_error_prefix(err, "CELLBLOCK_POOL: ");
        cfg->pool = pool;
    }
    const char *state = getenv("CELLBLOCK_STATE_DIR");
    if (state && state[0]) {
        if (state[0] != '/')
            return cb_error_fail(err, CB_ERR_INVALID,
                                 "CELLBLOCK_STATE_DIR must be an absolute path; got '%.60s'",
                                 state);
        cfg->state_dir = state;
    }
    const char *net = getenv("CELLBLOCK_NETWORK");
    if (net && net[0] && strcasecmp(net, "off") != 0) {
        /* Checked here, so that a bad value stops the start; the gateway gets its own copy. */
        egress_policy_t *policy = egress_policy_from_string(net, err);
        if (!policy)
            return cb_error_prefix(err, "CELLBLOCK_NETWORK: ");
        egress_policy_destroy(&policy);
        cfg->network = net;
    }
    return s_log_level(cfg, err);
}

int mcp_config_pool_each(const char *spec, mcp_pool_fn *fn, void *arg, cb_error_t *err)
{
    /* "name=N,name=N"; empty: no pools. */
    const char *p = spec;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char item[128];
        if (len == 0 || len >= sizeof item)
            return cb_error_fail(err, CB_ERR_INVALID,
                                 "expected template=count[,template=count...], got '%.60s'", spec);
        memcpy(item, p, len);
        item[len] = '\0';
        char *eq = strchr(item, '=');
        char *end = NULL;
        long n = eq ? strtol(eq + 1, &end, 10) : -1;
        if (!eq || eq == item || !end || *end || end == eq + 1 || n < 0 || n > 64)
            return cb_error_fail(err, CB_ERR_INVALID,
                                 "'%s' is not template=count with a count from 0 to 64", item);
        *eq = '\0';
        if (fn && fn(item, (int)n, arg, err) < 0)
            return -1;
        p += len + (comma ? 1 : 0);
    }
    return 0;
}
