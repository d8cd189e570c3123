/* template.c: finding and parsing sandbox templates (<name>.json).
 *
 * Why: a template names a ready-made sandbox (the kernel to start, its limits, environment, the
 * files it starts with and the code it runs first), so a caller asks for "python-data" instead of
 * spelling all of that out each time. Templates are files anyone may edit, so each one is checked
 * strictly when it is read and every refusal names the file and the field.
 *
 * How: fleet_template_search_path() lists the directories in order ($CELLBLOCK_TEMPLATES_PATH, the
 * user's config dir, the project's templates/). find walks that list and loads the first
 * <dir>/<name>.json that is a regular file; list scans every directory, keeps the first file of
 * each name and sorts by name. fleet_template_load() reads the file with a size cap, refuses unknown
 * fields at every level (a typo such as "memroy_mb" must not silently become "no limit"), checks
 * each value's type and range, and copies everything into the heap so a template outlives its
 * JSON. Names (the one rule of jupyter/catalog.h, kernelspecs' too) can never climb out of a
 * directory; file paths and sources are relative, without ".", ".." or empty components, so
 * neither the workspace path nor the source can leave its root. Sources are read at load time
 * (16 MiB each, 64 MiB for all files together), so a template that loads is complete: nothing
 * about it can fail later for a missing file. An empty startup_code counts as none.
 */
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cb/alloc.h"
#include "cb/cleanup.h"
#include "cb/log.h"
#include "cb/paths.h"
#include "cb/util.h"
#include "fleet/fleet.h"
#include "jupyter/catalog.h"

#define S_MAX_TEMPLATE_BYTES (1024 * 1024)   /* the JSON file itself */
#define S_MAX_FILE_BYTES (16 * 1024 * 1024)  /* each seeded file */
#define S_MAX_FILES_TOTAL (64 * 1024 * 1024) /* all seeded files together */
#define S_MAX_PATH_LEN 255
#define S_DEFAULT_KERNEL "python3"

#define cleanup_template __attribute__((cleanup(fleet_template_destroy)))

/* A relative path of at most 255 bytes whose components are neither empty, "." nor "..".
 * Returns NULL when it is fine, else why not. */
static const char *s_path_problem(const char *path)
{
    size_t len = strlen(path);
    if (len == 0)
        return "is empty";
    if (len > S_MAX_PATH_LEN)
        return "is longer than 255 bytes";
    if (path[0] == '/')
        return "is absolute (it must be relative)";
    for (const char *p = path;;) {
        size_t n = strcspn(p, "/");
        if (n == 0)
            return "has an empty component (\"//\" or a trailing \"/\")";
        if (n == 2 && p[0] == '.' && p[1] == '.')
            return "climbs with \"..\"";
        if (n == 1 && p[0] == '.')
            return "has a \".\" component";
        p += n;
        if (!*p)
            return NULL;
        p++;
    }
}

static const char *s_json_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number with a fraction";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "an unknown JSON value";
}

/* Refuse any key of obj not in known (NULL-terminated); where names the object ("" for the top,
 * "limits.", "files[2]."). The message lists the known fields. */
static int s_check_fields(json_t *obj, const char *const *known, const char *where,
                          const char *path, cb_error_t *err)
{
    const char *key;
    json_t *value; /* borrowed */
    json_object_foreach (obj, key, value) {
        bool ok = false;
        for (const char *const *k = known; *k && !ok; k++)
            ok = strcmp(key, *k) == 0;
        if (ok)
            continue;
        char list[160] = "";
        for (const char *const *k = known; *k; k++)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s",
                     k == known ? "" : ", ", *k);
        return cb_error_fail(err, CB_ERR_INVALID, "%s: unknown field '%s%s' (known: %s)", path,
                             where, key, list);
    }
    return 0;
}

/* An optional string field, copied; *out stays NULL when absent. */
static int s_get_string(json_t *obj, const char *field, const char *where, const char *path,
                        char **out, cb_error_t *err)
{
    json_t *v = json_object_get(obj, field); /* borrowed */
    if (!v)
        return 0;
    if (!json_is_string(v))
        return cb_error_fail(err, CB_ERR_INVALID, "%s: field '%s%s' must be a string, got %s", path,
                             where, field, s_json_type_name(v));
    *out = cb_xstrdup(json_string_value(v));
    return 0;
}

/* An optional integer field in [min, max]; *out is left alone when absent. */
static int s_get_int(json_t *obj, const char *field, const char *where, json_int_t min,
                     json_int_t max, const char *path, json_int_t *out, cb_error_t *err)
{
    json_t *v = json_object_get(obj, field); /* borrowed */
    if (!v)
        return 0;
    if (!json_is_integer(v))
        return cb_error_fail(err, CB_ERR_INVALID,
                             "%s: field '%s%s' must be an integer from %lld to %lld, got %s", path,
                             where, field, (long long)min, (long long)max, s_json_type_name(v));
    json_int_t n = json_integer_value(v);
    if (n < min || n > max)
        return cb_error_fail(err, CB_ERR_INVALID,
                             "%s: field '%s%s' must be from %lld to %lld, got %lld", path, where,
                             field, (long long)min, (long long)max, (long long)n);
    *out = n;
    return 0;
}

static int s_get_limits(json_t *root, const char *path, kg_sandbox_limits_t *limits,
                        cb_error_t *err)
{
    static const char *const known[] = {"memory_mb", "cpu", "pids", "disk_mb", "tmp_mb", NULL};
    json_t *obj = json_object_get(root, "limits"); /* borrowed */
    if (!obj)
        return 0;
    if (!json_is_object(obj))
        return cb_error_fail(err, CB_ERR_INVALID, "%s: field 'limits' must be an object, got %s",
                             path, s_json_type_name(obj));
    if (s_check_fields(obj, known, "limits.", path, err) < 0)
        return -1;

    json_int_t memory = 0, pids = 0, disk = 0, tmp = 0;
    if (s_get_int(obj, "memory_mb", "limits.", 16, 1048576, path, &memory, err) < 0 ||
        s_get_int(obj, "pids", "limits.", 1, 1000000, path, &pids, err) < 0 ||
        s_get_int(obj, "disk_mb", "limits.", 1, 1048576, path, &disk, err) < 0 ||
        s_get_int(obj, "tmp_mb", "limits.", 1, 1048576, path, &tmp, err) < 0)
        return -1;
    limits->memory_mb = (uint64_t)memory;
    limits->pids_max = (uint64_t)pids;
    limits->workspace_mb = (uint64_t)disk;
    limits->tmp_mb = (uint64_t)tmp;

    json_t *cpu = json_object_get(obj, "cpu"); /* borrowed */
    if (!cpu)
        return 0;
    if (!json_is_number(cpu))
        return cb_error_fail(err, CB_ERR_INVALID,
                             "%s: field 'limits.cpu' must be a number of cores from 0.01 to 256, "
                             "got %s",
                             path, s_json_type_name(cpu));
    double cores = json_number_value(cpu);
    if (!(cores >= 0.01 && cores <= 256))
        return cb_error_fail(err, CB_ERR_INVALID,
                             "%s: field 'limits.cpu' must be from 0.01 to 256 cores, got %g", path,
                             cores);
    limits->cpu_millis = (uint32_t)(cores * 1000.0 + 0.5);
    return 0;
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
        if (!cb_env_name_valid(key))
            return cb_error_fail(err, CB_ERR_INVALID,
                                 "%s: field 'env': '%s' is not a valid variable name (use "
                                 "letters, digits and '_', not starting with a digit)",
                                 path, key),
                   NULL;
        if (!json_is_string(value))
            return cb_error_fail(err, CB_ERR_INVALID, "%s: field 'env.%s' must be a string, got %s",
                                 path, key, s_json_type_name(value)),
                   NULL;
        cb_strv_push(&out, cb_strdup_printf("%s=%s", key, json_string_value(value)));
    }
    return steal_pointer(&out.v);
}

/* The files so far, owned; freed together on failure. */
typedef struct {
    fleet_template_file_t *v;
    size_t n;
    size_t total; /* bytes of every file's data */
} s_files_t;

static void s_files_free(fleet_template_file_t *files, size_t n)
{
    for (size_t i = 0; files && i < n; i++) {
        free(files[i].path);
        free(files[i].data);
    }
    free(files);
}

static void s_files_clear(s_files_t *fs)
{
    s_files_free(fs->v, fs->n);
    *fs = (s_files_t){0};
}

#define cleanup_files __attribute__((cleanup(s_files_clear)))

/* The paths taken so far, to refuse a path that repeats one ("a" twice) or clashes with one
 * (file "a" and file "a/b" cannot both exist) without comparing every pair. Keys map to the
 * index + 1 of the file that took them. */
typedef struct {
    zhash_t *files; /* every file's path */
    zhash_t *dirs;  /* every directory some file needs ("a" for "a/b") */
} s_taken_t;

static void s_taken_clear(s_taken_t *t)
{
    zhash_destroy(&t->files);
    zhash_destroy(&t->dirs);
}

#define cleanup_taken __attribute__((cleanup(s_taken_clear)))

static void *s_index_item(size_t i) { return (void *)(uintptr_t)(i + 1); }
static size_t s_item_index(void *item) { return (size_t)(uintptr_t)item - 1; }

/* Take files[i]'s path (valid: relative, at most 255 bytes). Returns 0, or -1 naming the earlier
 * file it repeats or clashes with. */
static int s_take_path(s_taken_t *t, const char *rel, size_t i, const s_files_t *fs,
                       const char *path, cb_error_t *err)
{
    void *item = zhash_lookup(t->files, rel);
    const char *how = "repeats";
    if (!item) {
        item = zhash_lookup(t->dirs, rel);
        how = "is needed as a directory by";
    }
    char buf[S_MAX_PATH_LEN + 1];
    snprintf(buf, sizeof buf, "%s", rel);
    for (char *slash = strchr(buf, '/'); slash && !item; slash = strchr(slash + 1, '/')) {
        *slash = '\0';
        item = zhash_lookup(t->files, buf);
        how = "needs a directory where there is";
        *slash = '/';
    }
    if (item) {
        size_t j = s_item_index(item);
        return cb_error_fail(err, CB_ERR_INVALID,
                             "%s: field 'files[%zu].path': '%s' %s files[%zu] ('%s')", path, i, rel,
                             how, j, fs->v[j].path);
    }
    /* zhash_insert fails only for a key already there (czmq aborts when memory runs out): a
     * directory keeps the first file that needed it, and rel is new, as looked up above. */
    for (char *slash = strchr(buf, '/'); slash; slash = strchr(slash + 1, '/')) {
        *slash = '\0';
        (void)zhash_insert(t->dirs, buf, s_index_item(i));
        *slash = '/';
    }
    (void)zhash_insert(t->files, rel, s_index_item(i));
    return 0;
}

/* The directory holding path ("." for a bare name). Caller owns return value. */
static char *s_dirname(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return cb_xstrdup(".");
    return cb_xstrndup(path, slash == path ? 1 : (size_t)(slash - path));
}

/* The bytes of files[i]: its content, or its source read relative to the template's directory. */
static int s_file_data(json_t *entry, size_t i, const char *path, const char *dir,
                       fleet_template_file_t *file, cb_error_t *err)
{
    json_t *content = json_object_get(entry, "content"); /* borrowed */
    json_t *source = json_object_get(entry, "source");   /* borrowed */
    if (content && source)
        return cb_error_fail(err, CB_ERR_INVALID,
                             "%s: field 'files[%zu]' has both 'content' and 'source' (give one)",
                             path, i);
    if (!content && !source)
        return cb_error_fail(err, CB_ERR_INVALID,
                             "%s: field 'files[%zu]' needs 'content' or 'source'", path, i);
    if (content) {
        if (!json_is_string(content))
            return cb_error_fail(err, CB_ERR_INVALID,
                                 "%s: field 'files[%zu].content' must be a string, got %s", path, i,
                                 s_json_type_name(content));
        file->len = json_string_length(content);
        file->data = cb_xmalloc(file->len + 1);
        memcpy(file->data, json_string_value(content), file->len);
        file->data[file->len] = '\0';
        return 0;
    }
    if (!json_is_string(source))
        return cb_error_fail(err, CB_ERR_INVALID,
                             "%s: field 'files[%zu].source' must be a string, got %s", path, i,
                             s_json_type_name(source));
    const char *rel = json_string_value(source);
    const char *why = s_path_problem(rel);
    if (why)
        return cb_error_fail(err, CB_ERR_INVALID, "%s: field 'files[%zu].source': '%s' %s", path, i,
                             rel, why);
    cleanup_free char *full = cb_strdup_printf("%s/%s", dir, rel);
    if (!(file->data = cb_read_file(full, S_MAX_FILE_BYTES, &file->len, err))) {
        /* A missing source makes the template broken, not absent. */
        if (err && err->kind == CB_ERR_SYSTEM)
            err->kind = CB_ERR_INVALID;
        return cb_error_prefix(err, "%s: field 'files[%zu].source': ", path, i);
    }
    return 0;
}

static int s_get_files(json_t *root, const char *path, s_files_t *out, cb_error_t *err)
{
    static const char *const known[] = {"path", "content", "source", NULL};
    json_t *files = json_object_get(root, "files"); /* borrowed */
    if (!files)
        return 0;
    if (!json_is_array(files))
        return cb_error_fail(err, CB_ERR_INVALID,
                             "%s: field 'files' must be an array of objects, got %s", path,
                             s_json_type_name(files));
    size_t count = json_array_size(files);
    if (count == 0)
        return 0;
    out->v = cb_xcalloc(count, sizeof *out->v);

    cleanup_free char *dir = s_dirname(path);
    cleanup_taken s_taken_t taken = {.files = zhash_new(), .dirs = zhash_new()}; /* czmq aborts */

    size_t i;
    json_t *entry; /* borrowed */
    json_array_foreach (files, i, entry) {
        if (!json_is_object(entry))
            return cb_error_fail(err, CB_ERR_INVALID,
                                 "%s: field 'files[%zu]' must be an object, got %s", path, i,
                                 s_json_type_name(entry));
        char where[32];
        snprintf(where, sizeof where, "files[%zu].", i);
        if (s_check_fields(entry, known, where, path, err) < 0)
            return -1;
        json_t *p = json_object_get(entry, "path"); /* borrowed */
        if (!p)
            return cb_error_fail(err, CB_ERR_INVALID, "%s: field 'files[%zu].path' is missing",
                                 path, i);
        if (!json_is_string(p))
            return cb_error_fail(err, CB_ERR_INVALID,
                                 "%s: field 'files[%zu].path' must be a string, got %s", path, i,
                                 s_json_type_name(p));
        const char *rel = json_string_value(p);
        const char *why = s_path_problem(rel);
        if (why)
            return cb_error_fail(err, CB_ERR_INVALID, "%s: field 'files[%zu].path': '%s' %s", path,
                                 i, rel, why);
        if (s_take_path(&taken, rel, i, out, path, err) < 0)
            return -1;

        fleet_template_file_t *file = &out->v[out->n];
        file->path = cb_xstrdup(rel);
        out->n++; /* counted now, so its path and data are freed with the rest */
        if (s_file_data(entry, i, path, dir, file, err) < 0)
            return -1;
        out->total += file->len;
        if (out->total > S_MAX_FILES_TOTAL)
            return cb_error_fail(err, CB_ERR_LIMIT,
                                 "%s: field 'files': the files come to more than the %d bytes "
                                 "allowed in all (files[%zu] '%s' brings them to %zu)",
                                 path, S_MAX_FILES_TOTAL, i, rel, out->total);
    }
    return 0;
}

/* Fill t from root; path names the file in every message. */
static int s_parse(json_t *root, const char *path, fleet_template_t *t, cb_error_t *err)
{
    static const char *const known[] = {"description",  "kernel",    "limits",  "env", "files",
                                        "startup_code", "timeout_s", "network", NULL};
    if (s_check_fields(root, known, "", path, err) < 0)
        return -1;

    if (s_get_string(root, "description", "", path, &t->description, err) < 0 ||
        s_get_string(root, "kernel", "", path, &t->kernel_name, err) < 0 ||
        s_get_string(root, "startup_code", "", path, &t->startup_code, err) < 0)
        return -1;
    if (!t->description)
        t->description = cb_xstrdup("");
    if (t->kernel_name && !jp_catalog_name_is_valid(t->kernel_name))
        return cb_error_fail(err, CB_ERR_INVALID,
                             "%s: field 'kernel': '%s' is not a valid kernelspec name (use only "
                             "letters, digits, '.', '_' and '-', not starting with '.', at most "
                             "64)",
                             path, t->kernel_name);
    if (!t->kernel_name)
        t->kernel_name = cb_xstrdup(S_DEFAULT_KERNEL);
    if (t->startup_code && !*t->startup_code) {
        free(t->startup_code);
        t->startup_code = NULL;
    }

    if (s_get_limits(root, path, &t->limits, err) < 0 || !(t->env = s_get_env(root, path, err)))
        return -1;

    json_t *network = json_object_get(root, "network"); /* borrowed */
    if (network) {
        t->network = egress_policy_from_json(network, err);
        if (!t->network)
            return cb_error_prefix(err, "%s: field 'network': ", path);
        t->limits.network = t->network;
    }

    json_t *timeout = json_object_get(root, "timeout_s"); /* borrowed */
    if (timeout) {
        if (!json_is_integer(timeout))
            return cb_error_fail(err, CB_ERR_INVALID,
                                 "%s: field 'timeout_s' must be an integer (seconds from 1 to "
                                 "86400, or -1 for no limit), got %s",
                                 path, s_json_type_name(timeout));
        json_int_t s = json_integer_value(timeout);
        if (s != -1 && (s < 1 || s > 86400))
            return cb_error_fail(err, CB_ERR_INVALID,
                                 "%s: field 'timeout_s' must be from 1 to 86400 seconds, or -1 "
                                 "for no limit, got %lld",
                                 path, (long long)s);
        t->timeout_s = (int)s;
    }

    cleanup_files s_files_t files = {0};
    if (s_get_files(root, path, &files, err) < 0)
        return -1;
    t->file_count = files.n;
    t->files = steal_pointer(&files.v);
    files.n = 0;
    return 0;
}

fleet_template_t *fleet_template_load(const char *path, const char *name, cb_error_t *err)
{
    if (!path || !name)
        return cb_error_fail(err, CB_ERR_INVALID, "template: path and name are required"), NULL;
    if (!jp_catalog_name_is_valid(name))
        return cb_error_fail(err, CB_ERR_INVALID, "invalid template name '%s'", name), NULL;
    size_t len = 0;
    cleanup_free char *text = cb_read_file(path, S_MAX_TEMPLATE_BYTES, &len, err);
    if (!text) {
        if (err && err->errnum == ENOENT)
            err->kind = CB_ERR_NOT_FOUND;
        cb_error_prefix(err, "template '%s': ", name);
        return NULL;
    }
    json_error_t jerr;
    json_auto_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return cb_error_fail(err, CB_ERR_INVALID,
                             "template '%s': %s is not valid JSON (line %d, column %d): %s", name,
                             path, jerr.line, jerr.column, jerr.text),
               NULL;
    if (!json_is_object(root))
        return cb_error_fail(err, CB_ERR_INVALID,
                             "template '%s': %s must hold a JSON object, got %s", name, path,
                             s_json_type_name(root)),
               NULL;

    cleanup_template fleet_template_t *t = cb_xcalloc(1, sizeof *t);
    t->name = cb_xstrdup(name);
    t->source = cb_xstrdup(path);
    if (s_parse(root, path, t, err) < 0) {
        cb_error_prefix(err, "template '%s': ", name);
        return NULL;
    }
    return steal_pointer(&t);
}

void fleet_template_destroy(fleet_template_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    fleet_template_t *self = *self_p;
    free(self->name);
    free(self->description);
    free(self->kernel_name);
    cb_strv_free(self->env);
    egress_policy_destroy(&self->network);
    s_files_free(self->files, self->file_count);
    free(self->startup_code);
    free(self->source);
    free(self);
    *self_p = NULL;
}

char **fleet_template_search_path(const char *project_dir)
{
    cleanup_strvec cb_strv_t out = {0};
    cb_strv_init(&out);

    cb_strv_push_path_list(&out, cb_getenv("CELLBLOCK_TEMPLATES_PATH"), "");

    /* The user's config dir; with neither set (a bare service environment) there is none. */
    const char *xdg = cb_getenv("XDG_CONFIG_HOME");
    const char *home = cb_getenv("HOME");
    if (xdg || home) {
        char *user = xdg ? cb_strdup_printf("%s/cellblock/templates", xdg)
                         : cb_strdup_printf("%s/.config/cellblock/templates", home);
        cb_strv_push(&out, user);
    }

    if (project_dir)
        cb_strv_push(&out, cb_xstrdup(project_dir));
    return steal_pointer(&out.v);
}

/* <dir>/<name>.json exists and is a regular file (symlinks followed). Caller owns return value;
 * NULL when there is none (or memory ran out). */
static char *s_template_file(const char *dir, const char *name)
{
    cleanup_free char *path = cb_strdup_printf("%s/%s.json", dir, name);
    struct stat st;
    if (path && stat(path, &st) == 0 && S_ISREG(st.st_mode))
        return steal_pointer(&path);
    return NULL;
}

/* A catalog entry: <dir>/<name>.json, a regular file with a valid name. */
static char *s_match(const char *dir, const char *file, char **name_out)
{
    *name_out = NULL;
    size_t len = strlen(file);
    if (len <= 5 || strcmp(file + len - 5, ".json") != 0)
        return NULL;
    cleanup_free char *name = cb_xstrndup(file, len - 5);
    if (!jp_catalog_name_is_valid(name)) {
        if (file[0] != '.')
            cb_debug("template: ignoring '%s/%s': not a valid template name", dir, file);
        return NULL;
    }
    char *path = s_template_file(dir, name);
    if (path)
        *name_out = steal_pointer(&name);
    return path;
}

fleet_template_t *fleet_template_find(const char *project_dir, const char *name, cb_error_t *err)
{
    if (!jp_catalog_name_is_valid(name))
        return cb_error_fail(err, CB_ERR_INVALID,
                             "invalid template name '%s': use only letters, digits, '.', '_' and "
                             "'-', not starting with '.', at most 64",
                             name ? name : "(null)"),
               NULL;
    cleanup_strvec cb_strv_t path = {.v = fleet_template_search_path(project_dir)};
    for (char **dir = path.v; *dir; dir++) {
        cleanup_free char *file = s_template_file(*dir, name);
        if (file)
            return fleet_template_load(file, name, err);
    }

    cleanup_catalog jp_catalog_t found = {0};
    jp_catalog_scan(path.v, "template", s_match, &found);
    cleanup_free char *names = jp_catalog_names(&found);
    return cb_error_fail(err, CB_ERR_NOT_FOUND, "no template '%s' (available: %s)", name, names),
           NULL;
}

static void s_templates_freep(fleet_template_t ***list_p)
{
    fleet_template_t **list = *list_p;
    for (size_t i = 0; list && list[i]; i++)
        fleet_template_destroy(&list[i]);
    free(list);
}

fleet_template_t **fleet_template_list(const char *project_dir, size_t *count)
{
    *count = 0;
    cleanup_strvec cb_strv_t path = {.v = fleet_template_search_path(project_dir)};
    cleanup_catalog jp_catalog_t found = {0};
    jp_catalog_scan(path.v, "template", s_match, &found);

    /* NULL-terminated as well as counted, so a partial array is always safe to free. */
    __attribute__((cleanup(s_templates_freep))) fleet_template_t **list =
        cb_xcalloc(found.n + 1, sizeof *list);
    size_t n = 0;
    for (size_t i = 0; i < found.n; i++) {
        cb_error_t err = {0};
        fleet_template_t *t = fleet_template_load(found.v[i].path, found.v[i].name, &err);
        if (!t) {
            cb_warn("skipping %s", err.msg);
            continue;
        }
        list[n++] = t;
    }
    *count = n;
    return steal_pointer(&list);
}

/* obj[key] = value, stealing value (NULL counts as failure). Returns 0 or -1. */
static int s_set(json_t *obj, const char *key, json_t *value)
{
    return value ? json_object_set_new(obj, key, value) : -1;
}

static json_t *s_limits_json(const kg_sandbox_limits_t *l)
{
    json_auto_t *o = json_object();
    if (!o || (l->memory_mb && s_set(o, "memory_mb", json_integer((json_int_t)l->memory_mb)) < 0) ||
        (l->cpu_millis && s_set(o, "cpu", json_real(l->cpu_millis / 1000.0)) < 0) ||
        (l->pids_max && s_set(o, "pids", json_integer((json_int_t)l->pids_max)) < 0) ||
        (l->workspace_mb && s_set(o, "disk_mb", json_integer((json_int_t)l->workspace_mb)) < 0) ||
        (l->tmp_mb && s_set(o, "tmp_mb", json_integer((json_int_t)l->tmp_mb)) < 0))
        return NULL;
    return steal_pointer(&o);
}

/* The keys of "KEY=VALUE" entries. */
static json_t *s_env_keys_json(char **env)
{
    json_auto_t *a = json_array();
    if (!a)
        return NULL;
    for (size_t i = 0; env && env[i]; i++) {
        size_t n = strcspn(env[i], "=");
        if (json_array_append_new(a, json_stringn(env[i], n)) < 0)
            return NULL;
    }
    return steal_pointer(&a);
}

static json_t *s_file_paths_json(const fleet_template_t *t)
{
    json_auto_t *a = json_array();
    if (!a)
        return NULL;
    for (size_t i = 0; i < t->file_count; i++)
        if (json_array_append_new(a, json_string(t->files[i].path)) < 0)
            return NULL;
    return steal_pointer(&a);
}

json_t *fleet_template_json(const fleet_template_t *self)
{
    if (!self)
        return NULL;
    json_auto_t *o = json_object();
    if (!o || s_set(o, "name", json_string(self->name)) < 0 ||
        s_set(o, "description", json_string(self->description ? self->description : "")) < 0 ||
        s_set(o, "kernel", json_string(self->kernel_name ? self->kernel_name : S_DEFAULT_KERNEL)) <
            0 ||
        s_set(o, "limits", s_limits_json(&self->limits)) < 0 ||
        (self->network && s_set(o, "network", egress_policy_describe(self->network)) < 0) ||
        s_set(o, "env_keys", s_env_keys_json(self->env)) < 0 ||
        s_set(o, "files", s_file_paths_json(self)) < 0 ||
        s_set(o, "startup_code", json_boolean(self->startup_code && *self->startup_code)) < 0 ||
        s_set(o, "timeout_s", json_integer(self->timeout_s)) < 0)
        return NULL;
    return steal_pointer(&o);
}

/* <datadir>/templates, by the one rule of cb/paths.h (never a build or source tree). */
char *fleet_template_project_dir(void)
{
    return cb_strdup_printf("%s/templates", cb_path_datadir());
}
