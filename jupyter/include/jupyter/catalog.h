/* catalog.h (private): named files found along a search path, first of each name winning.
 * Kernelspecs (<dir>/<name>/kernel.json) and templates (<dir>/<name>.json) are both found this
 * way; each says what an entry of a directory is (a match function), the walk is shared. */
#ifndef KG_CATALOG_H
#define KG_CATALOG_H

#include <stddef.h>

typedef struct {
    char *name;
    char *path; /* what the match function made of it: a resource dir, a file */
} kg_catalog_entry_t;

typedef struct {
    kg_catalog_entry_t *v;
    size_t n;
} kg_catalog_t;

/* Is `file` in `dir` an entry? Then return its path (caller owns) and set *name_out (caller
 * owns); else NULL with *name_out NULL. Out of memory: NULL with *name_out set to NULL and
 * errno ENOMEM. */
typedef char *(kg_catalog_match_fn)(const char *dir, const char *file, char **name_out);

/* Every entry across the directories (NULL-terminated), the first of each name, sorted by
 * name. Unreadable directories are skipped: most of a search path does not exist on most
 * machines (what names the kind, for the debug log). Returns 0, or -1 when out of memory. */
int kg_catalog_scan(char **dirs, const char *what, kg_catalog_match_fn *match, kg_catalog_t *out);

void kg_catalog_clear(kg_catalog_t *c);
#define cleanup_catalog __attribute__((cleanup(kg_catalog_clear)))

/* "a, b, c", or "none". Caller owns return value; NULL when out of memory. */
char *kg_catalog_names(const kg_catalog_t *c);

#endif
