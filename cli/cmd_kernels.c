/* cmd_kernels.c: `cellblock kernels` lists the kernelspecs the gateway can start. */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"


int cli_cmd_kernels(int argc, char **argv)
{
    if (argc > 1)
        return cli_usage_error("kernels", "takes no arguments");
    cli_setup_logging(0);
    cb_error_t err = {0};
    /* The gateway knows where the project's kernels are; ask it rather than guess here. */
    kg_gateway_t *gw = kg_gateway_new(NULL, &err);
    if (!gw) {
        fprintf(stderr, "cellblock kernels: %s\n", err.msg);
        return CLI_FAILED;
    }
    size_t n = 0;
    kg_kernelspec_t **specs = kg_kernelspec_list(kg_gateway_kernels_dir(gw), &n);
    printf("%-16s %-10s %-28s %s\n", "NAME", "LANGUAGE", "DISPLAY NAME", "PATH");
    for (size_t i = 0; i < n; i++) {
        printf("%-16s %-10s %-28s %s\n", specs[i]->name, specs[i]->language,
               specs[i]->display_name, specs[i]->resource_dir);
        kg_kernelspec_destroy(&specs[i]);
    }
    free(specs);
    kg_gateway_destroy(&gw);
    return n > 0 ? CLI_OK : CLI_FAILED;
}
