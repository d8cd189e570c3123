/* cmd_mcp.c: `cellblock mcp` serves MCP over stdio: JSON-RPC on stdin and stdout, one message
 * per line, logs on stderr. Settings come from the environment (docs/mcp-tools.md); flags
 * only add the sandbox escape hatches and --verbose. cli_mcp_open, the setup from those
 * settings to a gateway with an MCP server on it, is shared with `cellblock serve`. */
#include <getopt.h>
#include <stdio.h>
#include <unistd.h>

#include "cli.h"
#include "kg/gateway.h"

static int s_set_pool(const char *template_name, int count, void *arg, cb_error_t *err)
{
    if (fleet_set_pool(fleet_of(arg), template_name, count, err) < 0)
        return cb_error_prefix(err, "CELLBLOCK_POOL: ");
    return 0;
}

int cli_mcp_open(const char *cmd, kg_config_t *cfg, int verbose, mcp_config_t *mcfg,
                 kg_gateway_t **gw_out, mcp_server_t **srv_out)
{
    cb_error_t err = {0};
    if (mcp_config_from_env(mcfg, &err) < 0) {
        cli_sandbox_flags_free(cfg);
        fprintf(stderr, "cellblock %s: %s\n", cmd, err.msg);
        return CLI_USAGE;
    }
    cli_setup_logging(verbose);
    if (mcfg->log_level_set && !verbose)
        cb_log_set_level(mcfg->log_level);
    /* The sandboxes' limits come from the MCP settings unless a flag set them. */
    if (!cfg->limits.memory_mb)
        cfg->limits.memory_mb = mcfg->memory_mb;
    if (!cfg->limits.cpu_millis)
        cfg->limits.cpu_millis = mcfg->cpu_millis;
    if (!cfg->limits.workspace_mb)
        cfg->limits.workspace_mb = mcfg->disk_mb;
    mcfg->memory_mb = cfg->limits.memory_mb;
    mcfg->cpu_millis = cfg->limits.cpu_millis;
    mcfg->disk_mb = cfg->limits.workspace_mb;

    fleet_config_t fcfg = {.sandbox_timeout_s = mcfg->sandbox_timeout_s,
                           .idle_timeout_s = mcfg->idle_timeout_s,
                           .max_sandboxes = mcfg->max_sandboxes,
                           .state_dir = mcfg->state_dir};
    if (mcfg->kernel_startup_timeout_s > 0)
        cfg->startup_timeout_ms = mcfg->kernel_startup_timeout_s * 1000;

    if (!cfg->limits.network && mcfg->network) { /* --network wins over CELLBLOCK_NETWORK */
        cfg->limits.network = egress_policy_from_string(mcfg->network, &err);
        if (!cfg->limits.network) {
            fprintf(stderr, "cellblock %s: CELLBLOCK_NETWORK: %s\n", cmd, err.msg);
            return CLI_USAGE;
        }
    }
    kg_gateway_t *gw = kg_gateway_new(cfg, &err);
    cli_sandbox_flags_free(cfg); /* the gateway holds its own copy of the policy */
    fleet_t *fleet = gw ? fleet_new(gw, &fcfg, &err) : NULL; /* the gateway owns it */
    mcp_server_t *srv = fleet ? mcp_server_new(gw, mcfg, &err) : NULL;
    if (srv && mcp_config_pool_each(mcfg->pool, s_set_pool, gw, &err) < 0)
        mcp_server_destroy(&srv);
    if (!srv) {
        fprintf(stderr, "cellblock %s: %s\n", cmd, err.msg);
        kg_gateway_destroy(&gw);
        return CLI_FAILED;
    }
    *gw_out = gw;
    *srv_out = srv;
    return CLI_OK;
}

int cli_cmd_mcp(int argc, char **argv)
{
    char self_path[4096];
    ssize_t n = readlink("/proc/self/exe", self_path, sizeof self_path - 1);
    self_path[n > 0 ? n : 0] = '\0';
    static const struct option options[] = {{"verbose", no_argument, NULL, 'v'},
                                            {"help", no_argument, NULL, 'h'},
                                            CLI_SANDBOX_OPTIONS,
                                            {NULL, 0, NULL, 0}};
    kg_config_t cfg = {0};
    int verbose = 0, opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "vh", options, NULL)) != -1) {
        switch (opt) {
        case 'v': verbose = 1; break;
        case 'h': return cli_usage_error("mcp", "serves MCP over stdio (see docs/mcp-tools.md)");
        default:
            if (cli_sandbox_flag("mcp", opt, optarg, &cfg) != 0)
                return CLI_USAGE;
        }
    }
    if (optind != argc)
        return cli_usage_error("mcp", "takes no arguments");
    mcp_config_t mcfg;
    kg_gateway_t *gw = NULL;
    mcp_server_t *srv = NULL;
    int rc = cli_mcp_open("mcp", &cfg, verbose, &mcfg, &gw, &srv);
    if (rc != CLI_OK)
        return rc;
    if (isatty(STDIN_FILENO))
        fprintf(stderr,
                "cellblock mcp: serving MCP on stdin/stdout (JSON-RPC, one message per line).\n"
                "An MCP client starts this itself; configure it with\n"
                "  {\"mcpServers\": {\"cellblock\": {\"command\": \"%s\", \"args\": [\"mcp\"]}}}\n"
                "Ctrl-D or Ctrl-C stops it.\n",
                self_path);
    cb_info("MCP server ready on stdio");
    cb_error_t err = {0};
    rc = mcp_stdio_serve(srv, STDIN_FILENO, STDOUT_FILENO, &err);
    if (rc < 0)
        fprintf(stderr, "cellblock mcp: %s\n", err.msg);
    mcp_server_destroy(&srv);
    kg_gateway_destroy(&gw);
    return rc < 0 ? CLI_FAILED : CLI_OK;
}
