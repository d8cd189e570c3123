/* cmd_kernels.c: `cellblock kernels` lists the kernelspecs the gateway can start. */
#include <stdio.h>
#include <stdlib.h>

#include "cb/cleanup.h"
#include "cli.h"
#include "jupyter/kernelspec.h"

int cli_cmd_kernels(int argc, char **argv)
{
    if (argc > 1)
        return cli_usage_error("kernels", "takes no arguments");
    cli_setup_logging(0);
    cleanup_free char *project_dir = jp_kernelspec_project_dir();
    size_t n = 0;
    jp_kernelspec_t **specs = jp_kernelspec_list(project_dir, &n);
    printf("%-16s %-10s %-28s %s\n", "NAME", "LANGUAGE", "DISPLAY NAME", "PATH");
    for (size_t i = 0; i < n; i++) {
        printf("%-16s %-10s %-28s %s\n", specs[i]->name, specs[i]->language, specs[i]->display_name,
               specs[i]->resource_dir);
        jp_kernelspec_destroy(&specs[i]);
    }
    free(specs);
    return n > 0 ? CLI_OK : CLI_FAILED;
}
