/* cli.h (private to the CLI): the subcommand table's entries and shared helpers.
 *
 * Exit codes shared by every subcommand: 0 success, 1 the code or the operation failed, 2 a
 * usage error. */
#ifndef CB_CLI_H
#define CB_CLI_H

#include "fleet/fleet.h"
#include "kg/gateway.h"
#include "mcp/mcp.h"

enum { CLI_OK = 0, CLI_FAILED = 1, CLI_USAGE = 2 };

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
    const char *usage;
} cli_command_t;

/* Sandbox options shared by `run` and `kernel`: long options only, codes above any letter. */
enum {
    CLI_OPT_MEMORY = 256,
    CLI_OPT_PIDS,
    CLI_OPT_CPUS,
    CLI_OPT_TMP,
    CLI_OPT_WORKSPACE,
    CLI_OPT_NO_SANDBOX,
    CLI_OPT_SECCOMP_LOG,
    CLI_OPT_NETWORK,
};
#define CLI_SANDBOX_OPTIONS                                                                        \
    {"memory-mb", required_argument, NULL, CLI_OPT_MEMORY},                                        \
        {"pids", required_argument, NULL, CLI_OPT_PIDS},                                           \
        {"cpus", required_argument, NULL, CLI_OPT_CPUS},                                           \
        {"tmp-mb", required_argument, NULL, CLI_OPT_TMP},                                          \
        {"workspace-mb", required_argument, NULL, CLI_OPT_WORKSPACE},                              \
        {"no-sandbox", no_argument, NULL, CLI_OPT_NO_SANDBOX},                                     \
        {"network", required_argument, NULL, CLI_OPT_NETWORK},                                     \
    {                                                                                              \
        "seccomp-log", no_argument, NULL, CLI_OPT_SECCOMP_LOG                                      \
    }
#define CLI_SANDBOX_USAGE                                                                          \
    "[--memory-mb N] [--pids N] [--cpus X] [--tmp-mb N] [--workspace-mb N] [--network SPEC] "      \
    "[--no-sandbox] [--seccomp-log]"

/* Apply one sandbox option to cfg. Returns 0, or CLI_USAGE after printing the problem.
 * --network SPEC (egress_policy_from_string's forms) makes cfg->limits.network, which the caller
 * frees with cli_sandbox_flags_free once kg_gateway_new has copied it. */
int cli_sandbox_flag(const char *cmd, int opt, const char *arg, kg_config_t *cfg);
void cli_sandbox_flags_free(kg_config_t *cfg);

int cli_cmd_run(int argc, char **argv);
int cli_cmd_doctor(int argc, char **argv);
int cli_cmd_kernels(int argc, char **argv);
int cli_cmd_templates(int argc, char **argv);
int cli_cmd_kernel(int argc, char **argv);
int cli_cmd_mcp(int argc, char **argv);
int cli_cmd_serve(int argc, char **argv);
int cli_cmd_lab(int argc, char **argv);
int cli_cmd_audit(int argc, char **argv);

/* The MCP settings from the environment (into mcfg), logging, and a gateway (cfg: flags already
 * applied) with an MCP server on it and its warm pools set: what `mcp` and `serve` share. On
 * failure prints "cellblock CMD: ..." and returns CLI_USAGE or CLI_FAILED. */
int cli_mcp_open(const char *cmd, kg_config_t *cfg, int verbose, mcp_config_t *mcfg,
                 kg_gateway_t **gw_out, mcp_server_t **srv_out);

/* `cellblock run x.ipynb` (run_notebook.c): what the flags said. */
typedef struct {
    const char *path;
    const char *output; /* NULL: path's name with .nbconvert.ipynb */
    const char *kernel_name;
    const char *template_name;
    bool allow_errors;
    int timeout_ms; /* per cell; 0: none */
    int verbose;
} cli_notebook_run_t;

/* Does path name a notebook (ends in .ipynb)? */
bool cli_is_notebook(const char *path);
/* Run it; cfg holds the sandbox flags (freed here). Returns the exit code. */
int cli_run_notebook(const cli_notebook_run_t *nr, kg_config_t *cfg);

/* Print "cellblock NAME: message" and the usage line to stderr; returns CLI_USAGE. */
int cli_usage_error(const char *name, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Parse a positive number of seconds (fractions allowed) into milliseconds; -1 if invalid. */
int cli_parse_seconds(const char *text);

/* Apply CELLBLOCK_LOG_LEVEL (and --verbose) to the logger. */
void cli_setup_logging(int verbose);

#endif
