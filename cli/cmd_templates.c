/* cmd_templates.c: `cellblock templates` lists the sandbox templates that can be opened.
 *
 * Mirrors `cellblock kernels`: a table of name, kernel and description, first file of each name
 * in the search path (fleet_template_list; broken files are skipped with a warning on stderr). With
 * --json it prints a JSON array of fleet_template_json objects instead, for scripts. Exit status: 0
 * when at least one template was found, 1 when none, 2 on a usage error.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cb/cleanup.h"
#include "cb/util.h"
#include "cli.h"

static void s_templates_free(fleet_template_t **list, size_t n)
{
    for (size_t i = 0; list && i < n; i++)
        fleet_template_destroy(&list[i]);
    free(list);
}

/* Print the list as a JSON array. Returns CLI_OK, or CLI_FAILED when memory runs out. */
static int s_print_json(fleet_template_t **list, size_t n)
{
    json_auto_t *array = json_array();
    if (!array)
        return CLI_FAILED;
    for (size_t i = 0; i < n; i++)
        if (json_array_append_new(array, fleet_template_json(list[i])) < 0)
            return CLI_FAILED;
    if (json_dumpf(array, stdout, JSON_INDENT(2)) < 0)
        return CLI_FAILED;
    printf("\n");
    return CLI_OK;
}

/* Say where templates were looked for, so an empty list can be acted on. */
static void s_print_searched(const char *project_dir)
{
    char **path = fleet_template_search_path(project_dir);
    fprintf(stderr, "cellblock templates: no templates found; searched:\n");
    for (size_t i = 0; path && path[i]; i++)
        fprintf(stderr, "  %s\n", path[i]);
    cb_strv_free(path);
}

int cli_cmd_templates(int argc, char **argv)
{
    bool as_json = false;
    if (argc == 2 && strcmp(argv[1], "--json") == 0)
        as_json = true;
    else if (argc > 1)
        return cli_usage_error("templates", "unknown argument '%s'", argv[1]);
    cli_setup_logging(0);
    cleanup_free char *project_dir = fleet_template_project_dir();
    size_t n = 0;
    fleet_template_t **list = fleet_template_list(project_dir, &n);
    if (!list) {
        fprintf(stderr, "cellblock templates: out of memory\n");
        return CLI_FAILED;
    }
    int rc = CLI_OK;
    if (as_json) {
        rc = s_print_json(list, n);
        if (rc != CLI_OK)
            fprintf(stderr, "cellblock templates: out of memory\n");
    } else {
        printf("%-16s %-10s %s\n", "NAME", "KERNEL", "DESCRIPTION");
        for (size_t i = 0; i < n; i++)
            printf("%-16s %-10s %s\n", list[i]->name, list[i]->kernel_name, list[i]->description);
    }
    s_templates_free(list, n);
    if (rc == CLI_OK && n == 0) {
        s_print_searched(project_dir);
        rc = CLI_FAILED;
    }
    return rc;
}
