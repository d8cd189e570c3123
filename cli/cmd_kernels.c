/* cmd_kernels.c: `cellblock kernels` lists the kernelspecs the gateway can start, each with its
 * language and whether it can run here: "available", or "unavailable: needs <package>" when a
 * requirement of its kernel.json (metadata.cellblock.requires) is missing on this host. */
#include <stdio.h>
#include <stdlib.h>

#include "cb/cleanup.h"
#include "cb/alloc.h"
#include "cb/util.h"
#include "cli.h"
#include "jupyter/catalog.h"
#include "jupyter/kernelspec.h"

int cli_cmd_kernels(int argc, char **argv)
{
    if (argc > 1)
        return cli_usage_error("kernels", "takes no arguments");
    cli_setup_logging(0);
    cleanup_free char *project_dir = jp_kernelspec_project_dir();
    size_t n = 0;
    jp_kernelspec_t **specs = jp_kernelspec_list(project_dir, &n);
    printf("%-16s %-12s %-28s %-40s %s\n", "NAME", "LANGUAGE", "DISPLAY NAME", "AVAILABILITY",
           "PATH");
    for (size_t i = 0; i < n; i++) {
        const jp_requirement_t *missing = jp_kernelspec_missing(specs[i]);
        cleanup_free char *availability =
            missing ? cb_strdup_printf("unavailable: needs %s", missing->package)
                    : cb_xstrdup("available");
        const char *lang = jp_language_canonical(specs[i]->language);
        printf("%-16s %-12s %-28s %-40s %s\n", specs[i]->name, lang ? lang : specs[i]->language,
               specs[i]->display_name, availability, specs[i]->resource_dir);
        jp_kernelspec_destroy(&specs[i]);
    }
    free(specs);
    return n > 0 ? CLI_OK : CLI_FAILED;
}
