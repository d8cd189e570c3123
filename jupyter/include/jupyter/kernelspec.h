/* jupyter/kernelspec.h: Jupyter kernelspecs: kernel.json files found along a search path.
 *
 * Search order (first hit of a name wins): each entry of $JUPYTER_PATH, $JUPYTER_DATA_DIR or
 * $XDG_DATA_HOME/jupyter or ~/.local/share/jupyter, the project's kernels directory,
 * /usr/local/share/jupyter, /usr/share/jupyter (each with /kernels appended, except the
 * project's directory). A kernelspec's name is its directory's name and obeys the one name rule
 * (jp_catalog_name_is_valid in jupyter/catalog.h), so a name never climbs out of a directory.
 *
 * Blocking: load, find, list and project_dir read files and directories (local, small: a
 * kernel.json is a few hundred bytes, capped at 1 MiB); the search path and argv substitution
 * touch no file. Not tied to any event loop. The search path reads the environment (getenv),
 * so do not change the environment from another thread meanwhile.
 *
 * Ownership follows the house phrases: "Caller owns return value" (free with the named
 * function), "Borrowed".
 */
#ifndef JP_KERNELSPEC_H
#define JP_KERNELSPEC_H

#include <stddef.h>

#include "cb/error.h"

typedef enum { JP_INTERRUPT_SIGNAL = 0, JP_INTERRUPT_MESSAGE } jp_interrupt_mode_t;

/* Something a kernel needs on the host, from metadata.cellblock.requires: a file and the
 * Debian package that installs it. */
typedef struct {
    char *path;    /* absolute, e.g. "/usr/bin/node" */
    char *package; /* e.g. "nodejs" */
} jp_requirement_t;

typedef struct {
    char *name;         /* directory name, e.g. "python3" */
    char *display_name; /* from kernel.json */
    char *language;     /* from kernel.json */
    char *resource_dir; /* the directory holding kernel.json */
    char **argv;        /* NULL-terminated, unsubstituted */
    char **env;         /* NULL-terminated "KEY=VALUE" entries from kernel.json's env */
    jp_interrupt_mode_t interrupt_mode;
    jp_requirement_t *requires; /* ends with an entry whose path is NULL; NULL when none */
} jp_kernelspec_t;

/* The project's own kernels directory: the source tree's kernels/ while developing, the
 * installed share/cellblock/kernels otherwise. Blocks: one stat. Caller owns return value. */
char *jp_kernelspec_project_dir(void);

/* Parse <resource_dir>/kernel.json; name is the spec's name. Every problem gets a clear error
 * naming the file and the field. Blocks: reads one file. Caller owns return value. */
jp_kernelspec_t *jp_kernelspec_load(const char *resource_dir, const char *name, cb_error_t *err);
/* Accepts NULL and a pointer to NULL; nulls the caller's pointer. */
void jp_kernelspec_destroy(jp_kernelspec_t **self_p);

/* The kernels directories searched, in order, NULL-terminated. project_dir may be NULL.
 * Caller owns return value (free each string and the array). */
char **jp_kernelspec_search_path(const char *project_dir);

/* Find the spec called name in the search path. A name that breaks the name rule is refused
 * (CB_ERR_INVALID); none found is CB_ERR_NOT_FOUND, listing the names there are. Blocks: reads
 * files. Caller owns return value. */
jp_kernelspec_t *jp_kernelspec_find(const char *project_dir, const char *name, cb_error_t *err);

/* Every loadable spec in the search path, first of each name, sorted by name; *count set.
 * Specs that fail to load are skipped with a warning. Caller owns return value (destroy each
 * spec, then free the array). Blocks: reads every directory of the path and each spec. */
jp_kernelspec_t **jp_kernelspec_list(const char *project_dir, size_t *count);

/* The kernelspec that runs language (any spelling of the table in jupyter/catalog.h): the first
 * spec by name along the search path whose language it is (case-insensitive, aliases allowed)
 * and whose requirements are met. NULL with err: INVALID for a language not in the table,
 * UNAVAILABLE when the only specs for it miss a requirement (the message names the path and the
 * Debian package), NOT_FOUND when no spec speaks it; every message lists the languages that can
 * run here. Blocks: reads every spec. Caller owns return value (the spec's name). */
char *jp_kernelspec_for_language(const char *project_dir, const char *language, cb_error_t *err);

/* argv with {connection_file}, {resource_dir} and {cellblock_libexec} substituted.
 * libexec_dir is where cellblock's libexec directory is as the kernel sees it: SBX_INSIDE_LIBEXEC
 * ("/opt/cellblock") inside a sandbox, the host's (cb_path_libexecdir) for a kernel on the host.
 * A NULL connection_file or libexec_dir leaves its placeholder as it is. Caller owns return
 * value (NULL-terminated; free each string and the array). */
char **jp_kernelspec_argv(const jp_kernelspec_t *spec, const char *connection_file,
                          const char *libexec_dir);

/* The first of spec's requirements that is not met on this host: its path does not exist, or is
 * a program we may not execute. The host's /usr is what every sandbox sees, so this holds inside
 * too. NULL when all are met (or there are none). Borrowed; valid with spec. Blocks: a stat per
 * requirement. */
const jp_requirement_t *jp_kernelspec_missing(const jp_kernelspec_t *spec);

#endif
