/* cli.h (private to the CLI): the subcommand table's entries and shared helpers.
 *
 * Exit codes shared by every subcommand: 0 success, 1 the code or the operation failed, 2 a
 * usage error. */
#ifndef CB_CLI_H
#define CB_CLI_H

#include "kg/kg.h"

enum { CLI_OK = 0, CLI_FAILED = 1, CLI_USAGE = 2 };

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
    const char *usage;
} cli_command_t;

int cli_cmd_run(int argc, char **argv);
int cli_cmd_kernels(int argc, char **argv);
int cli_cmd_kernel(int argc, char **argv);

/* Print "cellblock NAME: message" and the usage line to stderr; returns CLI_USAGE. */
int cli_usage_error(const char *name, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Parse a positive number of seconds (fractions allowed) into milliseconds; -1 if invalid. */
int cli_parse_seconds(const char *text);

/* Apply CELLBLOCK_LOG_LEVEL (and --verbose) to the logger. */
void cli_setup_logging(int verbose);

#endif
