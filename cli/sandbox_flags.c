/* sandbox_flags.c: the sandbox options shared by the subcommands that start kernels
 * (`run`, `kernel`, `mcp`, `serve`): limits, the network policy, and the two escape hatches (no
 * sandbox, seccomp log mode). */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "kg/gateway.h"

static int s_parse_u64(const char *text, uint64_t max, uint64_t *out)
{
    char *end = NULL;
    unsigned long long v = strtoull(text, &end, 10);
    if (!text[0] || *end || text[0] == '-' || v == 0 || v > max)
        return -1;
    *out = v;
    return 0;
}

void cli_sandbox_flags_free(kg_config_t *cfg)
{
    egress_policy_t *policy = (egress_policy_t *)cfg->limits.network; /* ours: made above */
    egress_policy_destroy(&policy);
    cfg->limits.network = NULL;
}

int cli_sandbox_flag(const char *cmd, int opt, const char *arg, kg_config_t *cfg)
{
    kg_sandbox_limits_t *l = &cfg->limits;
    switch (opt) {
    case CLI_OPT_MEMORY:
        if (s_parse_u64(arg, 1u << 22, &l->memory_mb) < 0)
            return cli_usage_error(
                cmd, "--memory-mb takes a number of MiB (1 to 4194304), got '%s'", arg);
        return 0;
    case CLI_OPT_PIDS:
        if (s_parse_u64(arg, 1u << 22, &l->pids_max) < 0)
            return cli_usage_error(cmd, "--pids takes a positive number, got '%s'", arg);
        return 0;
    case CLI_OPT_CPUS: {
        char *end = NULL;
        double cpus = strtod(arg, &end);
        if (!arg[0] || *end || !(cpus > 0) || cpus > 1024)
            return cli_usage_error(
                cmd, "--cpus takes a positive number of cores (0.5, 2), got '%s'", arg);
        l->cpu_millis = (uint32_t)(cpus * 1000.0 + 0.5);
        return 0;
    }
    case CLI_OPT_TMP:
        if (s_parse_u64(arg, 1u << 22, &l->tmp_mb) < 0)
            return cli_usage_error(cmd, "--tmp-mb takes a number of MiB, got '%s'", arg);
        return 0;
    case CLI_OPT_WORKSPACE:
        if (s_parse_u64(arg, 1u << 22, &l->workspace_mb) < 0)
            return cli_usage_error(cmd, "--workspace-mb takes a number of MiB, got '%s'", arg);
        return 0;
    case CLI_OPT_NETWORK: {
        cb_error_t err = {0};
        egress_policy_t *policy = egress_policy_from_string(arg, &err);
        if (!policy)
            return cli_usage_error(cmd, "--network: %s", err.msg);
        cli_sandbox_flags_free(cfg); /* a second --network replaces the first */
        l->network = policy;
        return 0;
    }
    case CLI_OPT_NO_SANDBOX: cfg->no_sandbox = true; return 0;
    case CLI_OPT_SECCOMP_LOG: cfg->seccomp_log = true; return 0;
    default: return cli_usage_error(cmd, "unknown option");
    }
}
