/* catalog.c: the walk along a search path that kernelspecs and templates share (catalog.h).
 * The first directory that holds a name wins, as in Jupyter's own kernelspec lookup; the result
 * is sorted so listings are stable. */
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "cb/cleanup.h"
#include "cb/log.h"

void kg_catalog_clear(kg_catalog_t *c)
{
    for (size_t i = 0; i < c->n; i++) {
        free(c->v[i].name);
        free(c->v[i].path);
    }
    free(c->v);
    c->v = NULL;
    c->n = 0;
}

static int s_entry_cmp(const void *a, const void *b)
{
    return strcmp(((const kg_catalog_entry_t *)a)->name, ((const kg_catalog_entry_t *)b)->name);
}

static bool s_have(const kg_catalog_t *c, const char *name)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->v[i].name, name) == 0)
            return true;
    return false;
}

static int s_add(kg_catalog_t *c, char *name, char *path)
{
    kg_catalog_entry_t *grown = realloc(c->v, (c->n + 1) * sizeof *grown);
    if (!grown) {
        free(name);
        free(path);
        return -1;
    }
    c->v = grown;
    c->v[c->n++] = (kg_catalog_entry_t){.name = name, .path = path};
    return 0;
}

int kg_catalog_scan(char **dirs, const char *what, kg_catalog_match_fn *match, kg_catalog_t *out)
{
    for (char **dir = dirs; *dir; dir++) {
        cleanup_closedir DIR *d = opendir(*dir);
        if (!d) {
            if (errno != ENOENT && errno != ENOTDIR)
                cb_debug("%s: cannot read '%s': %s", what, *dir, strerror(errno));
            continue;
        }
        struct dirent *de;
        while ((de = readdir(d))) {
            char *name = NULL;
            errno = 0;
            char *path = match(*dir, de->d_name, &name);
            if (!path) {
                free(name);
                if (errno == ENOMEM)
                    return -1;
                continue;
            }
            if (s_have(out, name)) {
                free(name);
                free(path);
                continue;
            }
            if (s_add(out, name, path) < 0)
                return -1;
        }
    }
    if (out->n > 0)
        qsort(out->v, out->n, sizeof *out->v, s_entry_cmp);
    return 0;
}

char *kg_catalog_names(const kg_catalog_t *c)
{
    if (c->n == 0)
        return strdup("none");
    size_t len = 1;
    for (size_t i = 0; i < c->n; i++)
        len += strlen(c->v[i].name) + 2;
    char *out = malloc(len);
    if (!out)
        return NULL;
    char *p = out;
    for (size_t i = 0; i < c->n; i++)
        p = stpcpy(stpcpy(p, i ? ", " : ""), c->v[i].name);
    *p = '\0';
    return out;
}
