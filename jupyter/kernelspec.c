/* kernelspec.c: finding and parsing Jupyter kernelspecs (kernel.json).
 *
 * Why: the gateway starts kernels the way Jupyter does, from a kernelspec: a directory named after
 * the kernel that holds kernel.json (argv, display_name, language, env, interrupt_mode). Reading
 * the same directories as jupyter_client means a kernel installed with `python -m ipykernel
 * install --user` just works, and the project ships its own specs in kernels/.
 *
 * How: jp_kernelspec_search_path() lists the kernels directories in Jupyter's order, with the
 * project's directory slotted in before the system ones. find walks that list and loads the first
 * <dir>/<name>/kernel.json that is a regular file; list scans every directory, keeps the first
 * spec of each name and sorts by name. jp_kernelspec_load() validates each field strictly and
 * copies it into heap strings, so a spec outlives the JSON it came from; every refusal names the
 * file and the field. Names obey the one name rule of jupyter/catalog.h (templates obey it too),
 * so a name can never climb out of a kernels directory. argv keeps its placeholders until
 * jp_kernelspec_argv() substitutes {connection_file}, {resource_dir} and {cellblock_libexec}
 * wherever they appear.
 *
 * cellblock's own specs may say what they need on the host in metadata.cellblock.requires, a
 * list of {"path", "package"}; jp_kernelspec_missing() names the first one that is not there, so
 * a kernel whose toolchain is not installed is refused with the Debian package that provides it
 * instead of failing inside the sandbox. Directories along the path without a kernel.json (the
 * project's kernels/ also holds the C kernel's sources) are passed over silently; a kernel.json
 * that does not parse is skipped with a warning.
 */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cb/alloc.h"
#include "cb/cleanup.h"
#include "cb/log.h"
#include "cb/paths.h"
#include "cb/util.h"
#include "jupyter/catalog.h"
#include "jupyter/kernelspec.h"

/* kernel.json files are a few hundred bytes; anything near this is not a kernelspec. */
#define S_MAX_SPEC_BYTES (1024 * 1024)
/* A spec needs a handful of programs; more is not a spec of ours. */
#define S_MAX_REQUIRES 16
/* Paths and package names are short; these bound what an error message repeats. */
#define S_MAX_REQUIRE_PATH 256
#define S_MAX_REQUIRE_PACKAGE 64

static const char *s_json_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER:
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "an unknown JSON value";
}

/* A required string field, copied. */
static char *s_get_string(json_t *root, const char *field, const char *path, cb_error_t *err)
{
    json_t *v = json_object_get(root, field); /* borrowed */
    if (!v)
        return cb_error_fail(err, CB_ERR_INVALID, "%s: field '%s' is missing", path, field), NULL;
    if (!json_is_string(v))
        return cb_error_fail(err, CB_ERR_INVALID, "%s: field '%s' must be a string, got %s", path,
                             field, s_json_type_name(v)),
               NULL;
    return cb_xstrdup(json_string_value(v));
}

static char **s_get_argv(json_t *root, const char *path, cb_error_t *err)
{
    json_t *argv = json_object_get(root, "argv"); /* borrowed */
    if (!argv)
        return cb_error_fail(err, CB_ERR_INVALID, "%s: field 'argv' is missing", path), NULL;
    if (!json_is_array(argv) || json_array_size(argv) == 0)
        return cb_error_fail(err, CB_ERR_INVALID,
                             "%s: field 'argv' must be a non-empty array of strings, got %s", path,
                             json_is_array(argv) ? "an empty array" : s_json_type_name(argv)),
               NULL;
    cleanup_strvec cb_strv_t out = {0};
    cb_strv_init(&out);
    size_t i;
    json_t *item; /* borrowed */
    json_array_foreach (argv, i, item) {
        if (!json_is_string(item))
            return cb_error_fail(err, CB_ERR_INVALID,
                                 "%s: field 'argv' must hold only strings, but argv[%zu] is %s",
                                 path, i, s_json_type_name(item)),
                   NULL;
        cb_strv_push(&out, cb_xstrdup(json_string_value(item)));
    }
    if (out.v[0][0] == '\0')
        return cb_error_fail(err, CB_ERR_INVALID, "%s: field 'argv': argv[0] is empty", path), NULL;
    return steal_pointer(&out.v);
}

/* env is optional; absent gives an empty array. */
static char **s_get_env(json_t *root, const char *path, cb_error_t *err)
{
    cleanup_strvec cb_strv_t out = {0};
    cb_strv_init(&out);
    json_t *env = json_object_get(root, "env"); /* borrowed */
    if (!env)
        return steal_pointer(&out.v);
    if (!json_is_object(env))
        return cb_error_fail(err, CB_ERR_INVALID,
                             "%s: field 'env' must be an object of strings, got %s", path,
                             s_json_type_name(env)),
               NULL;
    const char *key;
    json_t *value; /* borrowed */
    json_object_foreach (env, key, value) {
        if (!*key || strchr(key, '='))
            return cb_error_fail(err, CB_ERR_INVALID,
                                 "%s: field 'env': '%s' is not a valid variable name", path, key),
                   NULL;
        if (!json_is_string(value))
            return cb_error_fail(err, CB_ERR_INVALID,
                                 "%s: field 'env': value of '%s' must be a string, got %s", path,
                                 key, s_json_type_name(value)),
                   NULL;
        cb_strv_push(&out, cb_strdup_printf("%s=%s", key, json_string_value(value)));
    }
    return steal_pointer(&out.v);
}

/* interrupt_mode is optional; absent means signal, as in Jupyter. */
static int s_get_interrupt_mode(json_t *root, const char *path, jp_interrupt_mode_t *mode,
                                cb_error_t *err)
{
    json_t *v = json_object_get(root, "interrupt_mode"); /* borrowed */
    *mode = JP_INTERRUPT_SIGNAL;
    if (!v)
        return 0;
    if (!json_is_string(v))
        return cb_error_fail(err, CB_ERR_INVALID,
                             "%s: field 'interrupt_mode' must be \"signal\" or \"message\", got %s",
                             path, s_json_type_name(v));
    const char *s = json_string_value(v);
    if (strcmp(s, "signal") == 0)
        return 0;
    if (strcmp(s, "message") == 0) {
        *mode = JP_INTERRUPT_MESSAGE;
        return 0;
    }
    return cb_error_fail(err, CB_ERR_INVALID,
                         "%s: field 'interrupt_mode' must be \"signal\" or \"message\", got \"%s\"",
                         path, s);
}

/* A package name as Debian spells them (policy 5.6.1): lower-case letters, digits, '+', '-',
 * '.'; it appears in messages, so nothing else. */
static bool s_package_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 2 || n > S_MAX_REQUIRE_PACKAGE)
        return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '+' || *p == '-' ||
              *p == '.'))
            return false;
    return true;
}

/* An absolute path without "..", control bytes or doubled slashes: it is checked on the host
 * and shown in messages. */
static bool s_require_path_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 2 || n > S_MAX_REQUIRE_PATH || s[0] != '/' || strstr(s, "//") || strstr(s, "/../") ||
        (n >= 3 && strcmp(s + n - 3, "/..") == 0))
        return false;
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return false;
    return true;
}

/* metadata.cellblock.requires is optional: [{"path": "/usr/bin/node", "package": "nodejs"}]. */
static int s_get_requires(json_t *root, const char *path, jp_kernelspec_t *spec, cb_error_t *err)
{
    json_t *meta = json_object_get(root, "metadata"); /* borrowed */
    json_t *cb = json_is_object(meta) ? json_object_get(meta, "cellblock") : NULL;
    json_t *req = json_is_object(cb) ? json_object_get(cb, "requires") : NULL;
    if (!req)
        return 0;
    if (!json_is_array(req) || json_array_size(req) > S_MAX_REQUIRES)
        return cb_error_fail(err, CB_ERR_INVALID,
                             "%s: field 'metadata.cellblock.requires' must be an array of at most "
                             "%d objects, got %s",
                             path, S_MAX_REQUIRES, s_json_type_name(req));
    spec->requires = cb_xcalloc(json_array_size(req) + 1, sizeof *spec->requires);
    size_t i;
    json_t *item; /* borrowed */
    json_array_foreach (req, i, item) {
        json_t *p = json_object_get(item, "path");      /* borrowed; NULL for a non-object */
        json_t *pkg = json_object_get(item, "package"); /* borrowed */
        if (!json_is_string(p) || !json_is_string(pkg))
            return cb_error_fail(err, CB_ERR_INVALID,
                                 "%s: metadata.cellblock.requires[%zu] must be an object with "
                                 "string fields 'path' and 'package'",
                                 path, i);
        if (!s_require_path_ok(json_string_value(p)))
            return cb_error_fail(err, CB_ERR_INVALID,
                                 "%s: metadata.cellblock.requires[%zu].path must be an absolute "
                                 "path of at most %d bytes, without '..' or control bytes",
                                 path, i, S_MAX_REQUIRE_PATH);
        if (!s_package_name_ok(json_string_value(pkg)))
            return cb_error_fail(err, CB_ERR_INVALID,
                                 "%s: metadata.cellblock.requires[%zu].package is not a Debian "
                                 "package name (a-z, 0-9, '+', '-', '.'; 2 to %d bytes)",
                                 path, i, S_MAX_REQUIRE_PACKAGE);
        spec->requires[i].path = cb_xstrdup(json_string_value(p));
        spec->requires[i].package = cb_xstrdup(json_string_value(pkg));
    }
    return 0;
}

jp_kernelspec_t *jp_kernelspec_load(const char *resource_dir, const char *name, cb_error_t *err)
{
    if (!resource_dir || !name)
        return cb_error_fail(err, CB_ERR_INVALID, "kernelspec: resource_dir and name are required"),
               NULL;
    cleanup_free char *path = cb_strdup_printf("%s/kernel.json", resource_dir);
    size_t len = 0;
    cleanup_free char *text = cb_read_file(path, S_MAX_SPEC_BYTES, &len, err);
    if (!text) {
        if (err && err->errnum == ENOENT)
            err->kind = CB_ERR_NOT_FOUND;
        cb_error_prefix(err, "kernelspec '%s': ", name);
        return NULL;
    }
    json_error_t jerr;
    json_auto_t *root = json_loadb(text, len, 0, &jerr);
    if (!root)
        return cb_error_fail(err, CB_ERR_INVALID,
                             "kernelspec '%s': %s is not valid JSON (line %d, column %d): %s", name,
                             path, jerr.line, jerr.column, jerr.text),
               NULL;
    if (!json_is_object(root))
        return cb_error_fail(err, CB_ERR_INVALID,
                             "kernelspec '%s': %s must hold a JSON object, got %s", name, path,
                             s_json_type_name(root)),
               NULL;

    __attribute__((cleanup(jp_kernelspec_destroy))) jp_kernelspec_t *spec =
        cb_xcalloc(1, sizeof *spec);
    spec->name = cb_xstrdup(name);
    spec->resource_dir = cb_xstrdup(resource_dir);
    if (!(spec->argv = s_get_argv(root, path, err)) ||
        !(spec->display_name = s_get_string(root, "display_name", path, err)) ||
        !(spec->language = s_get_string(root, "language", path, err)) ||
        !(spec->env = s_get_env(root, path, err)) ||
        s_get_interrupt_mode(root, path, &spec->interrupt_mode, err) < 0 ||
        s_get_requires(root, path, spec, err) < 0) {
        cb_error_prefix(err, "kernelspec '%s': ", name);
        return NULL;
    }
    return steal_pointer(&spec);
}

void jp_kernelspec_destroy(jp_kernelspec_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    jp_kernelspec_t *self = *self_p;
    free(self->name);
    free(self->display_name);
    free(self->language);
    free(self->resource_dir);
    cb_strv_free(self->argv);
    cb_strv_free(self->env);
    for (jp_requirement_t *r = self->requires; r && r->path; r++) {
        free(r->path);
        free(r->package);
    }
    free(self->requires);
    free(self);
    *self_p = NULL;
}

char **jp_kernelspec_search_path(const char *project_dir)
{
    cleanup_strvec cb_strv_t out = {0};
    cb_strv_init(&out);

    cb_strv_push_path_list(&out, cb_getenv("JUPYTER_PATH"), "/kernels");

    /* The user's data dir; with none of these set (a bare service environment) there is none. */
    const char *data = cb_getenv("JUPYTER_DATA_DIR");
    const char *xdg = cb_getenv("XDG_DATA_HOME");
    const char *home = cb_getenv("HOME");
    if (data || xdg || home) {
        char *user = data  ? cb_strdup_printf("%s/kernels", data)
                     : xdg ? cb_strdup_printf("%s/jupyter/kernels", xdg)
                           : cb_strdup_printf("%s/.local/share/jupyter/kernels", home);
        cb_strv_push(&out, user);
    }

    if (project_dir)
        cb_strv_push(&out, cb_xstrdup(project_dir));
    cb_strv_push(&out, cb_xstrdup("/usr/local/share/jupyter/kernels"));
    cb_strv_push(&out, cb_xstrdup("/usr/share/jupyter/kernels"));
    return steal_pointer(&out.v);
}

/* <dir>/<name>/kernel.json exists and is a regular file (symlinks followed). */
static bool s_has_spec(const char *dir, const char *name)
{
    cleanup_free char *path = cb_strdup_printf("%s/%s/kernel.json", dir, name);
    struct stat st;
    return path && stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* A catalog entry: <dir>/<file>/kernel.json with a valid name. */
static char *s_match(const char *dir, const char *file, char **name_out)
{
    *name_out = NULL;
    if (!jp_catalog_name_is_valid(file)) {
        if (file[0] != '.')
            cb_debug("kernelspec: ignoring '%s/%s': not a valid kernelspec name", dir, file);
        return NULL;
    }
    if (!s_has_spec(dir, file))
        return NULL;
    char *path = cb_strdup_printf("%s/%s", dir, file);
    *name_out = cb_xstrdup(file);
    return path;
}

jp_kernelspec_t *jp_kernelspec_find(const char *project_dir, const char *name, cb_error_t *err)
{
    if (!jp_catalog_name_is_valid(name))
        return cb_error_fail(err, CB_ERR_INVALID, "invalid kernelspec name '%s': " JP_NAME_RULE,
                             name ? name : "(null)"),
               NULL;
    cleanup_strvec cb_strv_t path = {.v = jp_kernelspec_search_path(project_dir)};
    for (char **dir = path.v; *dir; dir++) {
        if (!s_has_spec(*dir, name))
            continue;
        cleanup_free char *resource_dir = cb_strdup_printf("%s/%s", *dir, name);
        return jp_kernelspec_load(resource_dir, name, err);
    }

    cleanup_catalog jp_catalog_t found = {0};
    jp_catalog_scan(path.v, "kernelspec", s_match, &found);
    cleanup_free char *names = jp_catalog_names(&found);
    return cb_error_fail(err, CB_ERR_NOT_FOUND, "no kernelspec named '%s' (available: %s)", name,
                         names),
           NULL;
}

static void s_specs_free(jp_kernelspec_t **specs)
{
    if (!specs)
        return;
    for (jp_kernelspec_t **p = specs; *p; p++)
        jp_kernelspec_destroy(p);
    free(specs);
}

static void s_specs_freep(jp_kernelspec_t ***specs_p) { s_specs_free(*specs_p); }

jp_kernelspec_t **jp_kernelspec_list(const char *project_dir, size_t *count)
{
    *count = 0;
    cleanup_strvec cb_strv_t path = {.v = jp_kernelspec_search_path(project_dir)};
    cleanup_catalog jp_catalog_t found = {0};
    jp_catalog_scan(path.v, "kernelspec", s_match, &found);

    /* NULL-terminated as well as counted, so a partial array is always safe to free. */
    __attribute__((cleanup(s_specs_freep))) jp_kernelspec_t **specs =
        cb_xcalloc(found.n + 1, sizeof *specs);
    size_t n = 0;
    for (size_t i = 0; i < found.n; i++) {
        cb_error_t err = {0};
        jp_kernelspec_t *spec = jp_kernelspec_load(found.v[i].path, found.v[i].name, &err);
        if (!spec) {
            cb_warn("skipping %s", err.msg);
            continue;
        }
        specs[n++] = spec;
    }
    *count = n;
    return steal_pointer(&specs);
}

/* The placeholders of argv and what each becomes (NULL: left as it is). */
typedef struct {
    const char *placeholder;
    const char *value;
} s_subst_t;

/* Walk in, replacing every placeholder of subs (n of them); replacements are not rescanned.
 * Writes into out when it is not NULL (it must hold the returned length plus one); returns the
 * length of the result. */
static size_t s_substitute_into(char *out, const char *in, const s_subst_t *subs, size_t n_subs)
{
    size_t len = 0;
    for (const char *p = in; *p;) {
        const char *from = p;
        size_t n = 1, skip = 1;
        for (size_t i = 0; *p == '{' && i < n_subs; i++) {
            size_t plen = strlen(subs[i].placeholder);
            if (subs[i].value && strncmp(p, subs[i].placeholder, plen) == 0) {
                from = subs[i].value;
                n = strlen(from);
                skip = plen;
                break;
            }
        }
        if (out)
            memcpy(out + len, from, n);
        len += n;
        p += skip;
    }
    if (out)
        out[len] = '\0';
    return len;
}

/* Caller owns return value. */
static char *s_substitute(const char *in, const s_subst_t *subs, size_t n_subs)
{
    char *out = cb_xmalloc(s_substitute_into(NULL, in, subs, n_subs) + 1);
    s_substitute_into(out, in, subs, n_subs);
    return out;
}

char **jp_kernelspec_argv(const jp_kernelspec_t *spec, const char *connection_file,
                          const char *libexec_dir)
{
    cleanup_strvec cb_strv_t out = {0};
    if (!spec || !spec->argv)
        return NULL;
    const s_subst_t subs[] = {{"{connection_file}", connection_file},
                              {"{resource_dir}", spec->resource_dir},
                              {"{cellblock_libexec}", libexec_dir}};
    cb_strv_init(&out);
    for (char **arg = spec->argv; *arg; arg++)
        cb_strv_push(&out, s_substitute(*arg, subs, sizeof subs / sizeof *subs));
    return steal_pointer(&out.v);
}

const jp_requirement_t *jp_kernelspec_missing(const jp_kernelspec_t *spec)
{
    for (const jp_requirement_t *r = spec ? spec->requires : NULL; r && r->path; r++) {
        struct stat st;
        /* A program must be executable; a file that is not (a package.json) must be there. */
        if (stat(r->path, &st) < 0 ||
            (S_ISREG(st.st_mode) && (st.st_mode & 0111) && access(r->path, X_OK) < 0))
            return r;
    }
    return NULL;
}

/* ---- by language ----------------------------------------------------------------------------
 * A language (any spelling of jupyter/catalog.h's table) to the first spec by name whose
 * language it is and whose requirements are met. One walk over the specs remembers the first
 * available match, the first unavailable one, and the languages that can run, for the errors. */

/* Append the canonical language of spec to the list in buf ("a, b"), once. */
static void s_add_language(cb_buf_t *buf, const jp_kernelspec_t *spec)
{
    const char *lang = jp_language_canonical(spec->language);
    if (!lang)
        lang = spec->language;
    /* Whole-word search: ", c," must not match inside ", c++,". */
    cleanup_free char *word = cb_strdup_printf(", %s,", lang);
    cleanup_free char *have = cb_strdup_printf(", %s,", cb_buf_str(buf));
    if (strstr(have, word))
        return;
    if (buf->len)
        cb_buf_append(buf, ", ", 2);
    cb_buf_append(buf, lang, strlen(lang));
}

char *jp_kernelspec_for_language(const char *project_dir, const char *language, cb_error_t *err)
{
    const char *canonical = jp_language_canonical(language);
    size_t n = 0;
    jp_kernelspec_t **specs = jp_kernelspec_list(project_dir, &n);
    const jp_kernelspec_t *found = NULL, *unavailable = NULL;
    const jp_requirement_t *missing = NULL;
    cb_buf_t available = {0};
    for (size_t i = 0; i < n; i++) {
        const jp_requirement_t *m = jp_kernelspec_missing(specs[i]);
        if (!m)
            s_add_language(&available, specs[i]);
        if (!canonical || !jp_language_is(specs[i]->language, canonical))
            continue;
        if (!m && !found)
            found = specs[i];
        if (m && !unavailable) {
            unavailable = specs[i];
            missing = m;
        }
    }
    char *name = found ? cb_xstrdup(found->name) : NULL;
    const char *can_run = available.len ? cb_buf_str(&available) : "none";
    if (!canonical)
        cb_error_fail(err, CB_ERR_INVALID,
                      "unknown language '%.40s'; languages that run here: %s (all names cellblock "
                      "knows: " JP_LANGUAGE_NAMES ")",
                      language ? language : "", can_run);
    else if (!found && unavailable)
        cb_error_fail(err, CB_ERR_UNAVAILABLE,
                      "%s is not available here: its kernel (%s) needs %s from the Debian package "
                      "%s (scripts/install-deps.sh installs it); languages that run here: %s",
                      canonical, unavailable->name, missing->path, missing->package, can_run);
    else if (!found)
        cb_error_fail(err, CB_ERR_NOT_FOUND,
                      "no kernel for %s is installed; languages that run here: %s", canonical,
                      can_run);
    cb_buf_free(&available);
    s_specs_free(specs);
    return name;
}

/* <datadir>/kernels, by the one rule of cb/paths.h (never a build or source tree). */
char *jp_kernelspec_project_dir(void) { return cb_strdup_printf("%s/kernels", cb_path_datadir()); }
