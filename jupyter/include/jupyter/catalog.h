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

/* ---- language names ------------------------------------------------------------------------- */

/* The one table of the languages cellblock knows and how people spell them: the canonical name
 * first, then its aliases, compared case-insensitively.
 *
 *     python (py, python3)          javascript (js, node, nodejs)   typescript (ts)
 *     bash (sh, shell)              r                               java
 *     ruby (rb)                     c                               c++ (cpp, cxx)
 *     rust (rs)                     go (golang)
 *
 * A canonical name is what a kernelspec's "language" says (jupyter_client's convention; IRkernel
 * says "R", hence the case-insensitive compare). */

/* The canonical name for name (any spelling above), or NULL for a language not in the table.
 * Borrowed; static. */
const char *jp_language_canonical(const char *name);

/* Whether a kernelspec's language field (any spelling) is the language canonical names. */
bool jp_language_is(const char *spec_language, const char *canonical);

/* Every language and its aliases, for messages and tool descriptions. Spelt out rather than
 * built, so it can sit in static text; test_kernelspec checks that it names every entry of the
 * table. */
#define JP_LANGUAGE_NAMES                                                                          \
    "python (py, python3), javascript (js, node, nodejs), typescript (ts), bash (sh, shell), r, "  \
    "java, ruby (rb), c, c++ (cpp, cxx), rust (rs), go (golang)"
/* JP_LANGUAGE_NAMES. Borrowed; static. */
const char *jp_language_names(void);

/* The canonical names, in the table's order, NULL-terminated. Borrowed; static. */
const char *const *jp_languages(void);

/* The usual file extension of a canonical language's source files (".go"), or NULL. Borrowed. */
const char *jp_language_extension(const char *canonical);

/* The canonical language of a source file by its extension (".mjs" -> javascript, ".R" -> r),
 * or NULL. Borrowed; static. */
const char *jp_language_of_file(const char *path);

#endif
