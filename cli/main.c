/* main.c: the cellblock CLI, a thin layer over the libraries: a table of subcommands, each in
 * its own cmd_*.c file. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cb/log.h"
#include "cli.h"

static const cli_command_t s_commands[] = {
    {"run", cli_cmd_run, "run code in a fresh kernel and print its outputs",
     "cellblock run [--template NAME] [--kernel NAME] [--timeout S] [--outputs DIR] [--stdin TEXT] "
     "[sandbox options] FILE|-\n"
     "  cellblock run [-o OUT.ipynb] [--allow-errors] [--kernel NAME] [--timeout S] "
     "[sandbox options] NOTEBOOK.ipynb"},
    {"kernels", cli_cmd_kernels, "list the kernelspecs found", "cellblock kernels"},
    {"templates", cli_cmd_templates, "list the sandbox templates found",
     "cellblock templates [--json]"},
    {"kernel", cli_cmd_kernel, "start a kernel and serve it to Jupyter clients until stopped",
     "cellblock kernel [--kernel NAME] [--run CODE] [--connection-file PATH] [sandbox options]"},
    {"mcp", cli_cmd_mcp, "serve MCP (Model Context Protocol) over stdio for AI assistants",
     "cellblock mcp [--verbose] [sandbox options]   (settings: CELLBLOCK_* variables, "
     "docs/mcp-tools.md)"},
    {"serve", cli_cmd_serve,
     "serve MCP (Streamable HTTP, /mcp) and the Jupyter Kernel Gateway API (/api) over HTTP",
     "cellblock serve [--listen HOST:PORT] [--no-auth] [--allow-origin URL] [--allow-host NAME] "
     "[--tokens FILE|DIR] [--lab-url URL] [--verbose] [sandbox options]"},
    {"lab", cli_cmd_lab,
     "JupyterLab (or jupyter_server) on a running cellblock, assistants' kernels included",
     "cellblock lab [--url URL] [--listen HOST:PORT] [--root DIR] [--server-only] [-- ARGS]"},
    {"audit", cli_cmd_audit,
     "print the audit trail: what ran in sandboxes, who ran it, files written, lifecycle",
     "cellblock audit [--sandbox ID] [--since T] [--tenant T] [--limit N] [--json]"},
    {"doctor", cli_cmd_doctor, "show which isolation layers this host gives sandboxes, and try one",
     "cellblock doctor"},
};
#define N_COMMANDS (sizeof s_commands / sizeof s_commands[0])

static void s_help(FILE *out)
{
    fprintf(out, "cellblock %s: self-hosted sandboxes for running code, with Jupyter kernels\n\n",
            CB_VERSION);
    fprintf(out, "usage:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(out, "  %-72s\n      %s\n", s_commands[i].usage, s_commands[i].summary);
    fprintf(out, "\nsandbox options: %s\n", CLI_SANDBOX_USAGE);
    fprintf(out, "\nenvironment: CELLBLOCK_LOG_LEVEL=debug|info|warn|error (logs go to stderr)\n");
}

int cli_usage_error(const char *name, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "cellblock %s: ", name);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(s_commands[i].name, name) == 0)
            fprintf(stderr, "usage: %s\n", s_commands[i].usage);
    return CLI_USAGE;
}

int cli_parse_seconds(const char *text)
{
    char *end = NULL;
    double s = strtod(text, &end);
    if (!text[0] || *end || !(s > 0) || s > 24 * 3600)
        return -1;
    return (int)(s * 1000.0 + 0.5);
}

void cli_setup_logging(int verbose)
{
    cb_log_level_t level = CB_LOG_WARN;
    const char *env = getenv("CELLBLOCK_LOG_LEVEL");
    if (env && cb_log_level_parse(env, &level) < 0)
        fprintf(stderr,
                "cellblock: ignoring CELLBLOCK_LOG_LEVEL='%s' (use debug, info, warn, "
                "error or off)\n",
                env);
    if (verbose)
        level = CB_LOG_DEBUG;
    cb_log_set_level(level);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        s_help(stderr);
        return CLI_USAGE;
    }
    if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "-h") == 0) {
        s_help(stdout);
        return CLI_OK;
    }
    if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
        printf("cellblock %s\n", CB_VERSION);
        return CLI_OK;
    }
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(argv[1], s_commands[i].name) == 0)
            return s_commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "cellblock: unknown command '%s'\n\n", argv[1]);
    s_help(stderr);
    return CLI_USAGE;
}
