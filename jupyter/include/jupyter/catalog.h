/* jupyter/catalog.h: named files found along a search path, first of each name winning, and
 * the one rule every such name obeys.
 *
 * Kernelspecs (<dir>/<name>/kernel.json, jupyter/kernelspec.h) and sandbox templates
 * (<dir>/<name>.json, the gateway's templates) are both found this way; each says what an entry
 * of a directory is (a match function), the walk is shared.
 *
 * Blocking: jp_catalog_scan reads directories (and whatever its match function reads); the rest
 * touch no file. Not tied to any event loop.
 *
 * Ownership: a jp_catalog_t's entries and their strings are owned by the catalog (freed by
 * jp_catalog_clear); other strings returned say "Caller owns return value".
 */
#ifndef JP_CATALOG_H
#define JP_CATALOG_H

#include <stdbool.h>
#include <stddef.h>

/* ---- the name rule -------------------------------------------------------------------------- */

/* The longest name, in bytes. */
#define JP_NAME_MAX 64

/* The rule in words, for error messages: "... is not a valid name (" JP_NAME_RULE ")". */
#define JP_NAME_RULE                                                                               \
    "use only letters, digits, '.', '_' and '-', not starting with '.', at most 64 bytes"

/* The one rule for kernelspec and template names: 1 to JP_NAME_MAX bytes of ASCII letters,
 * digits, '.', '_' and '-', the first not a '.'. NULL is not a name.
 *
 * Why this set: a name is a file or directory name inside a search-path directory, so it must
 * not hold '/' nor be "." or ".." (nothing climbs out), and a leading '.' would name hidden files
 * and editors' leftovers; it also travels in URLs (/api/kernelspecs/{name}), tool arguments and
 * log lines, so no spaces, quotes or control bytes, and a length bound keeps messages short.
 * Jupyter's own rule (jupyter_client: letters, digits, '.', '_', '-') is the same set without
 * the leading-dot and length limits: such a kernelspec directory is not listed here. A template
 * names its kernel by the same rule, so every kernel a template can name is one a lookup can
 * find, and the other way round. */
bool jp_catalog_name_is_valid(const char *name);

/* ---- the walk ------------------------------------------------------------------------------- */

typedef struct {
    char *name;
    char *path; /* what the match function made of it: a resource dir, a file */
} jp_catalog_entry_t;

typedef struct {
    jp_catalog_entry_t *v;
    size_t n;
} jp_catalog_t;

/* Is `file` in `dir` an entry? Then return its path (caller owns) and set *name_out (caller
 * owns); else NULL with *name_out NULL. */
typedef char *(jp_catalog_match_fn)(const char *dir, const char *file, char **name_out);

/* Every entry across the directories (NULL-terminated), the first of each name, sorted by
 * name. Unreadable directories are skipped: most of a search path does not exist on most
 * machines (what names the kind, for the debug log). Allocation aborts (cb/alloc.h). */
void jp_catalog_scan(char **dirs, const char *what, jp_catalog_match_fn *match, jp_catalog_t *out);

/* Free every entry and empty c (it may be used again). */
void jp_catalog_clear(jp_catalog_t *c);
#define cleanup_catalog __attribute__((cleanup(jp_catalog_clear)))

/* "a, b, c", or "none". Caller owns return value (never NULL: allocation aborts, cb/alloc.h). */
char *jp_catalog_names(const jp_catalog_t *c);

#endif
