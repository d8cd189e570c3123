/* catalog.c: the walk along a search path that kernelspecs and templates share, the one name
 * rule both obey, and the one table of language names (jupyter/catalog.h). The first directory
 * that holds a name wins, as in Jupyter's own kernelspec lookup; the result is sorted so
 * listings are stable. Every surface that takes a language (MCP's `language`, the CLI's file
 * extensions) reads the same table, so an alias added here works everywhere. */
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cb/alloc.h"
#include "cb/cleanup.h"
#include "cb/log.h"
#include "jupyter/catalog.h"

bool jp_catalog_name_is_valid(const char *name)
{
    /* The first byte is checked apart: a leading '.' also rules out "." and "..". */
    if (!name || !*name || name[0] == '.')
        return false;
    size_t len = 0;
    for (const char *p = name; *p; p++, len++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        if (!ok || len >= JP_NAME_MAX)
            return false;
    }
    return true;
}

void jp_catalog_clear(jp_catalog_t *c)
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
    return strcmp(((const jp_catalog_entry_t *)a)->name, ((const jp_catalog_entry_t *)b)->name);
}

static bool s_have(const jp_catalog_t *c, const char *name)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->v[i].name, name) == 0)
            return true;
    return false;
}

/* Takes ownership of name and path. */
static void s_add(jp_catalog_t *c, char *name, char *path)
{
    c->v = cb_xrealloc(c->v, (c->n + 1) * sizeof *c->v);
    c->v[c->n++] = (jp_catalog_entry_t){.name = name, .path = path};
}

void jp_catalog_scan(char **dirs, const char *what, jp_catalog_match_fn *match, jp_catalog_t *out)
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
            char *path = match(*dir, de->d_name, &name);
            if (!path) {
                free(name);
                continue;
            }
            if (s_have(out, name)) {
                free(name);
                free(path);
                continue;
            }
            s_add(out, name, path);
        }
    }
    if (out->n > 0)
        qsort(out->v, out->n, sizeof *out->v, s_entry_cmp);
}

char *jp_catalog_names(const jp_catalog_t *c)
{
    if (c->n == 0)
        return cb_xstrdup("none");
    size_t len = 1;
    for (size_t i = 0; i < c->n; i++)
        len += strlen(c->v[i].name) + 2;
    char *out = cb_xmalloc(len);
    char *p = out;
    for (size_t i = 0; i < c->n; i++)
        p = stpcpy(stpcpy(p, i ? ", " : ""), c->v[i].name);
    *p = '\0';
    return out;
}

/* ---- language names ------------------------------------------------------------------------- */

typedef struct {
    const char *canonical;
    const char *aliases[4];    /* NULL-terminated */
    const char *extensions[5]; /* the first is the usual one; NULL-terminated */
} s_language_t;

static const s_language_t s_languages[] = {
    {"python", {"py", "python3", NULL}, {".py", NULL}},
    {"javascript", {"js", "node", "nodejs"}, {".js", ".mjs", ".cjs", NULL}},
    {"typescript", {"ts", NULL}, {".ts", ".mts", NULL}},
    {"bash", {"sh", "shell", NULL}, {".sh", ".bash", NULL}},
    {"r", {NULL}, {".r", NULL}},
    {"java", {NULL}, {".java", NULL}},
    {"ruby", {"rb", NULL}, {".rb", NULL}},
    {"c", {NULL}, {".c", NULL}},
    {"c++", {"cpp", "cxx", NULL}, {".cpp", ".cc", ".cxx", ".c++", NULL}},
    {"rust", {"rs", NULL}, {".rs", NULL}},
    {"go", {"golang", NULL}, {".go", NULL}},
};
#define S_NLANG (sizeof s_languages / sizeof *s_languages)

static const s_language_t *s_language(const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < S_NLANG; i++) {
        if (strcasecmp(name, s_languages[i].canonical) == 0)
            return &s_languages[i];
        for (const char *const *a = s_languages[i].aliases; *a; a++)
            if (strcasecmp(name, *a) == 0)
                return &s_languages[i];
    }
    return NULL;
}

const char *jp_language_canonical(const char *name)
{
    const s_language_t *l = s_language(name);
    return l ? l->canonical : NULL;
}

bool jp_language_is(const char *spec_language, const char *canonical)
{
    const s_language_t *l = s_language(spec_language);
    return l && canonical && strcasecmp(l->canonical, canonical) == 0;
}

const char *jp_language_names(void) { return JP_LANGUAGE_NAMES; }

const char *const *jp_languages(void)
{
    /* The table's canonical names again, as a constant (test_kernelspec checks they agree). */
    static const char *const names[] = {"python", "javascript", "typescript", "bash", "r",  "java",
                                        "ruby",   "c",          "c++",        "rust", "go", NULL};
    _Static_assert(sizeof names / sizeof *names == S_NLANG + 1, "one name per language");
    return names;
}

const char *jp_language_extension(const char *canonical)
{
    const s_language_t *l = s_language(canonical);
    return l ? l->extensions[0] : NULL;
}

const char *jp_language_of_file(const char *path)
{
    const char *dot = path ? strrchr(path, '.') : NULL;
    if (!dot || strchr(dot, '/'))
        return NULL;
    for (size_t i = 0; i < S_NLANG; i++)
        for (const char *const *e = s_languages[i].extensions; *e; e++)
            if (strcasecmp(dot, *e) == 0)
                return s_languages[i].canonical;
    return NULL;
}
