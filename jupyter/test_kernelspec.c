/* test_kernelspec.c: unit test for kernelspec.c and the name rule of catalog.c (TAP).
 *
 * Why: kernelspecs come from files anyone can edit, so each refusal must name the file and the
 * field, names must not escape their directory, and the search order must match Jupyter's.
 *
 * How: everything happens under a fresh mkdtemp directory in /tmp; JUPYTER_PATH,
 * JUPYTER_DATA_DIR, XDG_DATA_HOME and HOME are set or unset explicitly so the machine's own
 * kernels never decide a result (the system directories may still add specs to a listing, so
 * list checks only what it must). The project's own kernels/python3 is loaded from the source
 * tree (CB_SOURCE_KERNELS_DIR).
 */
#include <errno.h>
#include <libgen.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cb/cleanup.h"
#include "cb/log.h"
#include "cb/tap.h"
#include "cb/util.h"
#include "jupyter/catalog.h"
#include "jupyter/kernelspec.h"

#define cleanup_spec __attribute__((cleanup(jp_kernelspec_destroy)))

static void s_strv_freep(char ***v) { cb_strv_free(*v); }
#define cleanup_strv __attribute__((cleanup(s_strv_freep)))

static size_t s_strv_len(char **v)
{
    size_t n = 0;
    while (v && v[n])
        n++;
    return n;
}

/* Write <root>/<rel> with text, creating its directories. */
static void s_write(const char *root, const char *rel, const char *text)
{
    cleanup_free char *path = cb_strdup_printf("%s/%s", root, rel);
    cleanup_free char *dir = strdup(path);
    cb_error_t err = {0};
    if (cb_mkdir_p(dirname(dir), 0755, &err) < 0 ||
        cb_write_file(path, text, strlen(text), 0644, &err) < 0) {
        CB_DIAG("setup failed: %s", err.msg);
        exit(1);
    }
}

static char *s_spec_json(const char *display_name)
{
    return cb_strdup_printf("{\"argv\": [\"prog\", \"{connection_file}\"], "
                            "\"display_name\": \"%s\", \"language\": \"x\"}",
                            display_name);
}

/* Write <root>/<rel>/kernel.json with a valid spec whose display_name tells where it came from. */
static void s_write_spec(const char *root, const char *rel, const char *display_name)
{
    cleanup_free char *file = cb_strdup_printf("%s/kernel.json", rel);
    cleanup_free char *json = s_spec_json(display_name);
    s_write(root, file, json);
}

static bool s_contains(const char *haystack, const char *needle)
{
    return haystack && strstr(haystack, needle) != NULL;
}

static void test_good_spec(const char *root)
{
    s_write(root, "good/full/kernel.json",
            "{\n"
            "  \"argv\": [\"/usr/bin/prog\", \"-f\", \"{connection_file}\"],\n"
            "  \"display_name\": \"Full Spec\",\n"
            "  \"language\": \"lang\",\n"
            "  \"interrupt_mode\": \"message\",\n"
            "  \"env\": {\"A\": \"1\", \"B\": \"two=2\", \"EMPTY\": \"\"},\n"
            "  \"metadata\": {\"debugger\": true}\n"
            "}\n");
    cleanup_free char *dir = cb_strdup_printf("%s/good/full", root);
    cb_error_t err = {0};
    cleanup_spec jp_kernelspec_t *spec = jp_kernelspec_load(dir, "full", &err);
    if (!CB_OK(spec, "a good spec loads")) {
        CB_DIAG("%s", err.msg);
        return;
    }
    CB_OK(strcmp(spec->name, "full") == 0, "name is kept");
    CB_OK(strcmp(spec->resource_dir, dir) == 0, "resource_dir is the spec's directory");
    CB_OK(strcmp(spec->display_name, "Full Spec") == 0, "display_name is read");
    CB_OK(strcmp(spec->language, "lang") == 0, "language is read");
    CB_OK(spec->interrupt_mode == JP_INTERRUPT_MESSAGE, "interrupt_mode message is read");
    CB_OK(s_strv_len(spec->argv) == 3 && strcmp(spec->argv[0], "/usr/bin/prog") == 0 &&
              strcmp(spec->argv[1], "-f") == 0 && strcmp(spec->argv[2], "{connection_file}") == 0,
          "argv is read unsubstituted");
    CB_OK(s_strv_len(spec->env) == 3 && strcmp(spec->env[0], "A=1") == 0 &&
              strcmp(spec->env[1], "B=two=2") == 0 && strcmp(spec->env[2], "EMPTY=") == 0,
          "env becomes KEY=VALUE entries in file order");

    s_write(root, "good/minimal/kernel.json",
            "{\"argv\": [\"p\"], \"display_name\": \"M\", \"language\": \"l\"}");
    cleanup_free char *mdir = cb_strdup_printf("%s/good/minimal", root);
    cleanup_spec jp_kernelspec_t *min = jp_kernelspec_load(mdir, "minimal", &err);
    CB_OK(min && min->interrupt_mode == JP_INTERRUPT_SIGNAL, "absent interrupt_mode means signal");
    CB_OK(min && min->env && min->env[0] == NULL, "absent env gives an empty array");

    jp_kernelspec_t *p = spec;
    jp_kernelspec_destroy(&spec);
    CB_OK(spec == NULL && p != NULL, "destroy nulls the caller's pointer");
    jp_kernelspec_destroy(&spec); /* a pointer to NULL */
    jp_kernelspec_destroy(NULL);
    CB_OK(spec == NULL, "destroy accepts NULL and a pointer to NULL");
}

/* Each bad kernel.json is refused as invalid with a message naming the file and these words. */
static void test_bad_specs(const char *root)
{
    static const struct {
        const char *label;
        const char *json;
        const char *words[2];
    } cases[] = {
        {"not JSON", "{\"argv\": [\"p\",\n", {"not valid JSON", "line 2"}},
        {"not an object", "[\"p\"]", {"JSON object", "an array"}},
        {"argv missing", "{\"display_name\": \"d\", \"language\": \"l\"}", {"'argv'", "missing"}},
        {"argv empty",
         "{\"argv\": [], \"display_name\": \"d\", \"language\": \"l\"}",
         {"'argv'", "empty array"}},
        {"argv a string",
         "{\"argv\": \"p\", \"display_name\": \"d\", \"language\": \"l\"}",
         {"'argv'", "a string"}},
        {"argv with a number",
         "{\"argv\": [\"p\", 3], \"display_name\": \"d\", \"language\": \"l\"}",
         {"'argv'", "argv[1] is a number"}},
        {"argv[0] empty",
         "{\"argv\": [\"\"], \"display_name\": \"d\", \"language\": \"l\"}",
         {"'argv'", "argv[0] is empty"}},
        {"display_name missing",
         "{\"argv\": [\"p\"], \"language\": \"l\"}",
         {"'display_name'", "missing"}},
        {"display_name a number",
         "{\"argv\": [\"p\"], \"display_name\": 1, \"language\": \"l\"}",
         {"'display_name'", "a number"}},
        {"language missing",
         "{\"argv\": [\"p\"], \"display_name\": \"d\"}",
         {"'language'", "missing"}},
        {"env with a non-string",
         "{\"argv\": [\"p\"], \"display_name\": \"d\", \"language\": \"l\", \"env\": {\"N\": 1}}",
         {"'env'", "'N'"}},
        {"env not an object",
         "{\"argv\": [\"p\"], \"display_name\": \"d\", \"language\": \"l\", \"env\": [\"A=1\"]}",
         {"'env'", "an array"}},
        {"env key with =",
         "{\"argv\": [\"p\"], \"display_name\": \"d\", \"language\": \"l\", \"env\": {\"A=B\": "
         "\"1\"}}",
         {"'env'", "'A=B'"}},
        {"interrupt_mode bogus",
         "{\"argv\": [\"p\"], \"display_name\": \"d\", \"language\": \"l\", "
         "\"interrupt_mode\": \"bogus\"}",
         {"'interrupt_mode'", "bogus"}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cleanup_free char *rel = cb_strdup_printf("bad/case%zu/kernel.json", i);
        s_write(root, rel, cases[i].json);
        cleanup_free char *dir = cb_strdup_printf("%s/bad/case%zu", root, i);
        cleanup_free char *file = cb_strdup_printf("%s/kernel.json", dir);
        cb_error_t err = {0};
        cleanup_spec jp_kernelspec_t *spec = jp_kernelspec_load(dir, "bad", &err);
        CB_OK(!spec && err.kind == CB_ERR_INVALID && s_contains(err.msg, file) &&
                  s_contains(err.msg, cases[i].words[0]) && s_contains(err.msg, cases[i].words[1]),
              "%s is refused naming the file and field", cases[i].label);
        CB_DIAG("%s", err.msg);
    }

    cb_error_t err = {0};
    cleanup_free char *dirdir = cb_strdup_printf("%s/bad/isdir/kernel.json", root);
    if (cb_mkdir_p(dirdir, 0755, &err) < 0)
        CB_DIAG("setup: %s", err.msg);
    cleanup_free char *isdir = cb_strdup_printf("%s/bad/isdir", root);
    cleanup_spec jp_kernelspec_t *a = jp_kernelspec_load(isdir, "isdir", &err);
    CB_OK(!a && err.kind == CB_ERR_INVALID && s_contains(err.msg, dirdir) &&
              s_contains(err.msg, "not a regular file"),
          "kernel.json that is a directory is refused");
    CB_DIAG("%s", err.msg);

    cleanup_free char *absent = cb_strdup_printf("%s/bad/absent", root);
    cleanup_spec jp_kernelspec_t *b = jp_kernelspec_load(absent, "absent", &err);
    CB_OK(!b && err.kind == CB_ERR_NOT_FOUND && err.errnum == ENOENT &&
              s_contains(err.msg, "absent/kernel.json") && s_contains(err.msg, "'absent'"),
          "absent kernel.json is not found with ENOENT");
    CB_DIAG("%s", err.msg);

    /* Over the size cap: refused before parsing. */
    size_t big_len = 1024 * 1024 + 16;
    cleanup_free char *big = malloc(big_len + 1);
    if (!big)
        return;
    memset(big, ' ', big_len);
    big[big_len] = '\0';
    s_write(root, "bad/big/kernel.json", big);
    cleanup_free char *bigdir = cb_strdup_printf("%s/bad/big", root);
    cleanup_spec jp_kernelspec_t *c = jp_kernelspec_load(bigdir, "big", &err);
    CB_OK(!c && err.kind == CB_ERR_LIMIT, "an oversized kernel.json is refused");
}

static void test_search_path(const char *root)
{
    setenv("JUPYTER_PATH", "/jp/a::/jp/b:", 1);
    setenv("JUPYTER_DATA_DIR", "/data", 1);
    setenv("XDG_DATA_HOME", "/xdg", 1);
    setenv("HOME", "/home/u", 1);
    cleanup_strv char **p = jp_kernelspec_search_path("/proj/kernels");
    static const char *want[] = {"/jp/a/kernels",
                                 "/jp/b/kernels",
                                 "/data/kernels",
                                 "/proj/kernels",
                                 "/usr/local/share/jupyter/kernels",
                                 "/usr/share/jupyter/kernels"};
    size_t nwant = sizeof want / sizeof want[0];
    bool same = s_strv_len(p) == nwant;
    for (size_t i = 0; same && i < nwant; i++)
        same = strcmp(p[i], want[i]) == 0;
    CB_OK(same, "search path: JUPYTER_PATH entries, data dir, project dir, then system dirs");
    for (size_t i = 0; p && p[i]; i++)
        CB_DIAG("  %s", p[i]);

    unsetenv("JUPYTER_DATA_DIR");
    cleanup_strv char **q = jp_kernelspec_search_path(NULL);
    CB_OK(s_strv_len(q) == 5 && strcmp(q[2], "/xdg/jupyter/kernels") == 0 &&
              strcmp(q[3], "/usr/local/share/jupyter/kernels") == 0,
          "without JUPYTER_DATA_DIR, XDG_DATA_HOME/jupyter; NULL project dir is left out");

    unsetenv("XDG_DATA_HOME");
    unsetenv("JUPYTER_PATH");
    cleanup_strv char **r = jp_kernelspec_search_path(NULL);
    CB_OK(s_strv_len(r) == 3 && strcmp(r[0], "/home/u/.local/share/jupyter/kernels") == 0,
          "without either, HOME/.local/share/jupyter; no JUPYTER_PATH adds nothing");
    (void)root;
}

static void test_find(const char *root)
{
    cleanup_free char *jp = cb_strdup_printf("%s/f/jp1:%s/f/jp2", root, root);
    cleanup_free char *data = cb_strdup_printf("%s/f/data", root);
    cleanup_free char *proj = cb_strdup_printf("%s/f/proj", root);
    setenv("JUPYTER_PATH", jp, 1);
    setenv("JUPYTER_DATA_DIR", data, 1);
    unsetenv("XDG_DATA_HOME");

    s_write_spec(root, "f/jp2/kernels/dup", "jp2");
    s_write_spec(root, "f/data/kernels/dup", "data");
    s_write_spec(root, "f/proj/dup", "proj");
    s_write_spec(root, "f/proj/projonly", "proj");
    s_write_spec(root, "f/data/kernels/datonly", "data");
    s_write(root, "f/jp1/kernels/dup/README", "no kernel.json here");
    /* What "../x" would reach from jp1/kernels if names were not checked. */
    s_write_spec(root, "f/jp1/x", "escaped");

    cb_error_t err = {0};
    cleanup_spec jp_kernelspec_t *a = jp_kernelspec_find(proj, "dup", &err);
    CB_OK(a && strcmp(a->display_name, "jp2") == 0,
          "find takes the first directory with kernel.json (skipping one without)");
    cleanup_free char *want_dir = cb_strdup_printf("%s/f/jp2/kernels/dup", root);
    CB_OK(a && strcmp(a->resource_dir, want_dir) == 0, "find sets resource_dir");

    s_write_spec(root, "f/jp1/kernels/dup", "jp1");
    cleanup_spec jp_kernelspec_t *b = jp_kernelspec_find(proj, "dup", &err);
    CB_OK(b && strcmp(b->display_name, "jp1") == 0, "earlier JUPYTER_PATH entry wins");

    cleanup_spec jp_kernelspec_t *c = jp_kernelspec_find(proj, "projonly", &err);
    CB_OK(c && strcmp(c->name, "projonly") == 0, "find reaches the project dir");
    cleanup_spec jp_kernelspec_t *d = jp_kernelspec_find(NULL, "projonly", &err);
    CB_OK(!d && err.kind == CB_ERR_NOT_FOUND, "without a project dir its specs are not found");

    cleanup_spec jp_kernelspec_t *e = jp_kernelspec_find(proj, "nosuch", &err);
    CB_OK(!e && err.kind == CB_ERR_NOT_FOUND && s_contains(err.msg, "'nosuch'") &&
              s_contains(err.msg, "available: ") && s_contains(err.msg, "datonly, dup") &&
              s_contains(err.msg, "projonly"),
          "unknown name: not found, listing the available names");
    CB_DIAG("%s", err.msg);

    static const char *bad_names[] = {"../x", "a/b", "..", ".", "", "a b", "x\n"};
    for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++) {
        cleanup_spec jp_kernelspec_t *s = jp_kernelspec_find(proj, bad_names[i], &err);
        CB_OK(!s && err.kind == CB_ERR_INVALID && s_contains(err.msg, "invalid kernelspec name"),
              "name '%s' is refused", strchr(bad_names[i], '\n') ? "x\\n" : bad_names[i]);
    }
    cleanup_spec jp_kernelspec_t *n = jp_kernelspec_find(proj, NULL, &err);
    CB_OK(!n && err.kind == CB_ERR_INVALID, "NULL name is refused");
}

static void test_list(const char *root)
{
    cleanup_free char *jp = cb_strdup_printf("%s/l/jp1:%s/l/jp2", root, root);
    cleanup_free char *data = cb_strdup_printf("%s/l/data", root);
    cleanup_free char *proj = cb_strdup_printf("%s/l/proj", root);
    setenv("JUPYTER_PATH", jp, 1);
    setenv("JUPYTER_DATA_DIR", data, 1);

    s_write_spec(root, "l/jp1/kernels/zeta", "jp1");
    s_write_spec(root, "l/jp1/kernels/same", "jp1");
    s_write_spec(root, "l/jp2/kernels/same", "jp2");
    s_write_spec(root, "l/jp2/kernels/alpha", "jp2");
    s_write(root, "l/jp2/kernels/broken/kernel.json", "{nope");
    s_write_spec(root, "l/data/kernels/bad name", "data");
    s_write(root, "l/data/kernels/empty/README", "no spec");
    s_write_spec(root, "l/proj/mid", "proj");
    s_write_spec(root, "l/proj/same", "proj");

    FILE *sink = tmpfile();
    cb_log_set_sink(sink);
    size_t count = 99;
    jp_kernelspec_t **specs = jp_kernelspec_list(proj, &count);
    cb_log_set_sink(NULL);

    CB_OK(specs != NULL, "list returns an array");
    bool sorted = true;
    int alpha = -1, mid = -1, same = -1, zeta = -1, other = 0;
    for (size_t i = 0; specs && i < count; i++) {
        if (i > 0 && strcmp(specs[i - 1]->name, specs[i]->name) >= 0)
            sorted = false;
        const char *nm = specs[i]->name;
        if (strcmp(nm, "alpha") == 0)
            alpha = (int)i;
        else if (strcmp(nm, "mid") == 0)
            mid = (int)i;
        else if (strcmp(nm, "same") == 0)
            same = (int)i;
        else if (strcmp(nm, "zeta") == 0)
            zeta = (int)i;
        else if (strcmp(nm, "broken") == 0 || strcmp(nm, "bad name") == 0 ||
                 strcmp(nm, "empty") == 0)
            other++;
    }
    CB_OK(sorted, "list is sorted by name with no duplicates (%zu specs)", count);
    CB_OK(alpha >= 0 && mid > alpha && same > mid && zeta > same,
          "list has alpha, mid, same, zeta in order");
    CB_OK(same >= 0 && strcmp(specs[same]->display_name, "jp1") == 0,
          "the first directory's spec of a name wins in list");
    CB_OK(other == 0, "broken, badly named and kernel.json-less directories are left out");
    CB_OK(specs && specs[count] == NULL, "list's array is NULL-terminated too");

    char logbuf[4096] = {0};
    rewind(sink);
    size_t got = fread(logbuf, 1, sizeof logbuf - 1, sink);
    logbuf[got] = '\0';
    fclose(sink);
    CB_OK(s_contains(logbuf, "warn") && s_contains(logbuf, "'broken'") &&
              s_contains(logbuf, "not valid JSON"),
          "a broken spec is skipped with a warning");

    for (size_t i = 0; specs && i < count; i++)
        jp_kernelspec_destroy(&specs[i]);
    free(specs);
}

static void test_argv(const char *root)
{
    s_write(root, "a/sub/kernel.json",
            "{\"argv\": [\"{resource_dir}/run\", \"-f\", \"{connection_file}\", "
            "\"--cf={connection_file},{connection_file}\", \"x{resource_dir}y\", "
            "\"{connection_file\", \"{other}\", \"plain\", \"{cellblock_libexec}/k\"], "
            "\"display_name\": \"d\", \"language\": \"l\"}");
    cleanup_free char *dir = cb_strdup_printf("%s/a/sub", root);
    cb_error_t err = {0};
    cleanup_spec jp_kernelspec_t *spec = jp_kernelspec_load(dir, "sub", &err);
    if (!CB_OK(spec, "spec for argv loads")) {
        CB_DIAG("%s", err.msg);
        return;
    }
    /* The connection file's own text holds a placeholder: it must not be substituted again. */
    cleanup_strv char **argv =
        jp_kernelspec_argv(spec, "/run/k{resource_dir}.json", "/opt/{connection_file}");
    cleanup_free char *w0 = cb_strdup_printf("%s/run", dir);
    cleanup_free char *w4 = cb_strdup_printf("x%sy", dir);
    const char *want[] = {w0,
                          "-f",
                          "/run/k{resource_dir}.json",
                          "--cf=/run/k{resource_dir}.json,/run/k{resource_dir}.json",
                          w4,
                          "{connection_file",
                          "{other}",
                          "plain",
                          "/opt/{connection_file}/k"};
    size_t nwant = sizeof want / sizeof want[0];
    bool same = s_strv_len(argv) == nwant;
    for (size_t i = 0; same && i < nwant; i++)
        same = strcmp(argv[i], want[i]) == 0;
    CB_OK(same, "argv substitutes the three placeholders everywhere, inside arguments too");
    for (size_t i = 0; argv && argv[i]; i++)
        CB_DIAG("  %s", argv[i]);
    CB_OK(strcmp(spec->argv[2], "{connection_file}") == 0, "the spec's own argv is unchanged");
    cleanup_strv char **kept = jp_kernelspec_argv(spec, "/c.json", NULL);
    CB_OK(kept && strcmp(kept[8], "{cellblock_libexec}/k") == 0,
          "a NULL libexec dir leaves its placeholder (%s)", kept ? kept[8] : "NULL");
}

/* metadata.cellblock.requires: parsed, validated, and the first missing one named. */
static void test_requires(const char *root)
{
    s_write(root, "req/ok/kernel.json",
            "{\"argv\": [\"p\"], \"display_name\": \"d\", \"language\": \"go\", "
            "\"metadata\": {\"cellblock\": {\"requires\": ["
            "{\"path\": \"/bin/sh\", \"package\": \"dash\"}, "
            "{\"path\": \"/etc/passwd\", \"package\": \"base-files\"}, "
            "{\"path\": \"/usr/bin/no-such-cellblock-tool\", \"package\": \"no-such-pkg\"}, "
            "{\"path\": \"/usr/bin/also-missing\", \"package\": \"second\"}]}}}");
    cleanup_free char *dir = cb_strdup_printf("%s/req/ok", root);
    cb_error_t err = {0};
    cleanup_spec jp_kernelspec_t *spec = jp_kernelspec_load(dir, "ok", &err);
    if (!CB_OK(spec && spec->requires, "a spec with requirements loads (%s)", err.msg))
        return;
    CB_OK(strcmp(spec->requires[0].path, "/bin/sh") == 0 &&
              strcmp(spec->requires[0].package, "dash") == 0 && spec->requires[4].path == NULL,
          "its four requirements are kept in order, NULL-terminated");
    const jp_requirement_t *m = jp_kernelspec_missing(spec);
    CB_OK(m && strcmp(m->package, "no-such-pkg") == 0,
          "the first missing requirement is named (a plain file that exists counts as there): %s",
          m ? m->package : "none");

    s_write(root, "req/none/kernel.json",
            "{\"argv\": [\"p\"], \"display_name\": \"d\", "
            "\"language\": \"x\", \"metadata\": {\"a\": 1}}");
    cleanup_free char *ndir = cb_strdup_printf("%s/req/none", root);
    cleanup_spec jp_kernelspec_t *none = jp_kernelspec_load(ndir, "none", &err);
    CB_OK(none && !none->requires && !jp_kernelspec_missing(none),
          "a spec without requirements misses nothing");

    static const struct {
        const char *requires;
        const char *says;
    } bad[] = {
        {"\"x\"", "must be an array"},
        {"[1]", "requires[0] must be an object"},
        {"[{\"path\": \"/bin/sh\"}]", "requires[0] must be an object"},
        {"[{\"path\": \"bin/sh\", \"package\": \"dash\"}]", "requires[0].path"},
        {"[{\"path\": \"/usr/../etc/shadow\", \"package\": \"dash\"}]", "requires[0].path"},
        {"[{\"path\": \"/bin/sh\", \"package\": \"Dash; rm -rf\"}]", "requires[0].package"},
        {"[{\"path\": \"/bin/sh\", \"package\": \"\"}]", "requires[0].package"},
        {"[{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}]", "at most 16"},
    };
    cleanup_free char *bdir = cb_strdup_printf("%s/req/bad", root);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cleanup_free char *json =
            cb_strdup_printf("{\"argv\": [\"p\"], \"display_name\": \"d\", \"language\": \"x\", "
                             "\"metadata\": {\"cellblock\": {\"requires\": %s}}}",
                             bad[i].requires);
        s_write(root, "req/bad/kernel.json", json);
        cleanup_spec jp_kernelspec_t *b = jp_kernelspec_load(bdir, "bad", &err);
        CB_OK(!b && s_contains(err.msg, bad[i].says), "requires %s is refused: %s", bad[i].requires,
              err.msg);
    }
}

/* The one table of language names (jupyter/catalog.h). */
static void test_languages(void)
{
    static const struct {
        const char *name, *canonical;
    } cases[] = {
        {"python", "python"},
        {"PY", "python"},
        {"python3", "python"},
        {"js", "javascript"},
        {"Node", "javascript"},
        {"nodejs", "javascript"},
        {"TS", "typescript"},
        {"sh", "bash"},
        {"shell", "bash"},
        {"R", "r"},
        {"r", "r"},
        {"Java", "java"},
        {"rb", "ruby"},
        {"c", "c"},
        {"cpp", "c++"},
        {"C++", "c++"},
        {"cxx", "c++"},
        {"rs", "rust"},
        {"golang", "go"},
        {"GO", "go"},
    };
    bool all = true;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *got = jp_language_canonical(cases[i].name);
        if (!got || strcmp(got, cases[i].canonical) != 0) {
            CB_DIAG("%s -> %s, want %s", cases[i].name, got ? got : "NULL", cases[i].canonical);
            all = false;
        }
    }
    CB_OK(all, "every alias maps to its canonical language, case-insensitively");
    CB_OK(!jp_language_canonical("cobol") && !jp_language_canonical("") &&
              !jp_language_canonical(NULL) && !jp_language_canonical("c+"),
          "unknown names (and NULL) have no canonical language");
    CB_OK(jp_language_is("R", "r") && jp_language_is("c++", "c++") &&
              jp_language_is("python", "python") && !jp_language_is("python", "r") &&
              !jp_language_is(NULL, "r"),
          "a kernelspec's language compares by canonical name (IRkernel says \"R\")");
    static const char *const names[] = {
        "python", "py",   "python3", "javascript", "js",   "node", "nodejs", "typescript",
        "ts",     "bash", "sh",      "shell",      "r",    "java", "ruby",   "rb",
        "c",      "c++",  "cpp",     "cxx",        "rust", "rs",   "go",     "golang"};
    bool listed = true;
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        listed =
            listed && jp_language_canonical(names[i]) && s_contains(jp_language_names(), names[i]);
    }
    CB_OK(listed, "jp_language_names lists every name of the table: %s", jp_language_names());
    size_t nlang = 0;
    bool canon = true;
    for (const char *const *l = jp_languages(); *l; l++, nlang++)
        canon = canon && jp_language_canonical(*l) && strcmp(jp_language_canonical(*l), *l) == 0;
    CB_OK(canon && nlang == 11, "jp_languages gives the 11 canonical names (%zu)", nlang);
    CB_OK(strcmp(jp_language_of_file("a/b.go"), "go") == 0 &&
              strcmp(jp_language_of_file("x.mjs"), "javascript") == 0 &&
              strcmp(jp_language_of_file("plot.R"), "r") == 0 &&
              strcmp(jp_language_of_file("m.cc"), "c++") == 0 &&
              strcmp(jp_language_of_file("s.bash"), "bash") == 0 &&
              !jp_language_of_file("Makefile") && !jp_language_of_file("dir.go/file") &&
              !jp_language_of_file(NULL),
          "a file's language by its extension");
    CB_OK(strcmp(jp_language_extension("rust"), ".rs") == 0 &&
              strcmp(jp_language_extension("cpp"), ".cpp") == 0 && !jp_language_extension("cobol"),
          "each language's usual extension");
}

/* The project's own specs for every language: they load, say their language, take
 * {cellblock_libexec} and message interrupts, and name a Debian package for each requirement. */
static void test_project_languages(void)
{
    static const struct {
        const char *name, *language;
    } specs[] = {{"javascript", "javascript"},
                 {"typescript", "typescript"},
                 {"bash", "bash"},
                 {"java", "java"},
                 {"ruby", "ruby"},
                 {"c", "c"},
                 {"cpp", "c++"},
                 {"rust", "rust"},
                 {"go", "go"}};
    for (size_t i = 0; i < sizeof specs / sizeof *specs; i++) {
        cleanup_free char *dir = cb_strdup_printf("%s/%s", CB_SOURCE_KERNELS_DIR, specs[i].name);
        cb_error_t err = {0};
        cleanup_spec jp_kernelspec_t *spec = jp_kernelspec_load(dir, specs[i].name, &err);
        if (!CB_OK(spec, "kernels/%s loads (%s)", specs[i].name, err.msg))
            continue;
        cleanup_strv char **argv = jp_kernelspec_argv(spec, "/run/cellblock/k.json", "/opt/cb");
        CB_OK(jp_language_is(spec->language, specs[i].language) &&
                  spec->interrupt_mode == JP_INTERRUPT_MESSAGE && argv &&
                  strcmp(argv[0], "/opt/cb/cellblock-kernel") == 0 &&
                  jp_language_canonical(argv[1]) &&
                  strcmp(jp_language_canonical(argv[1]), specs[i].language) == 0 &&
                  spec->requires && spec->requires[0].path,
              "kernels/%s: language %s, cellblock-kernel %s, message interrupts, requirements",
              specs[i].name, spec->language, argv && argv[1] ? argv[1] : "?");
    }

    /* kernels/ also holds the C kernel's sources (kernels/kernel, kernels/drivers): directories
     * without a kernel.json, passed over. */
    size_t n = 0;
    jp_kernelspec_t **all = jp_kernelspec_list(CB_SOURCE_KERNELS_DIR, &n);
    bool sources = false, js = false;
    for (size_t i = 0; i < n; i++) {
        sources =
            sources || strcmp(all[i]->name, "kernel") == 0 || strcmp(all[i]->name, "drivers") == 0;
        js = js || strcmp(all[i]->name, "javascript") == 0;
        jp_kernelspec_destroy(&all[i]);
    }
    free(all);
    CB_OK(js && !sources, "the project's list has its specs and not the kernel's source dirs");
}

static void test_project_spec(void)
{
    cleanup_free char *dir = cb_strdup_printf("%s/python3", CB_SOURCE_KERNELS_DIR);
    cb_error_t err = {0};
    cleanup_spec jp_kernelspec_t *spec = jp_kernelspec_load(dir, "python3", &err);
    if (!CB_OK(spec, "the project's kernels/python3 loads")) {
        CB_DIAG("%s", err.msg);
        return;
    }
    CB_OK(strcmp(spec->argv[0], "/usr/bin/python3") == 0, "its argv[0] is /usr/bin/python3");
    bool has_cf = false;
    for (char **a = spec->argv; *a; a++)
        has_cf = has_cf || strcmp(*a, "{connection_file}") == 0;
    CB_OK(has_cf, "its argv passes {connection_file}");
    CB_OK(strcmp(spec->language, "python") == 0 && spec->interrupt_mode == JP_INTERRUPT_SIGNAL,
          "it is python with signal interrupts");

    unsetenv("JUPYTER_PATH");
    cleanup_spec jp_kernelspec_t *found =
        jp_kernelspec_find(CB_SOURCE_KERNELS_DIR, "python3", &err);
    CB_OK(found && strcmp(found->resource_dir, dir) == 0,
          "find prefers the project's python3 over the system's");
}

/* The one name rule (jupyter/catalog.h), as kernelspecs see it. Templates obey the same function
 * (kernel-gateway's test_template checks their side with the same names). Before the rule was
 * one, kernelspecs took ".hidden" and names longer than 64 bytes that templates refused, so a
 * spec could be listed that no template could name; those are the cases marked "used to differ". */
static void test_name_rule(const char *root)
{
    char long64[JP_NAME_MAX + 1], long65[JP_NAME_MAX + 2];
    memset(long64, 'k', JP_NAME_MAX);
    long64[JP_NAME_MAX] = '\0';
    memset(long65, 'k', JP_NAME_MAX + 1);
    long65[JP_NAME_MAX + 1] = '\0';
    static const struct {
        const char *name;
        bool valid;
        const char *label;
    } fixed[] = {
        {"python3", true, "python3"},
        {"my-kernel_1.0", true, "letters, digits, '-', '_' and '.'"},
        {"A", true, "one upper-case letter"},
        {"a.", true, "a trailing '.'"},
        {".hidden", false, ".hidden (used to differ)"},
        {".", false, "."},
        {"..", false, ".."},
        {"", false, "empty"},
        {"a/b", false, "a '/'"},
        {"a b", false, "a space"},
        {"x\n", false, "a newline"},
        {"\xc3\xa9", false, "a non-ASCII letter"},
    };
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        CB_OK(jp_catalog_name_is_valid(fixed[i].name) == fixed[i].valid, "name rule: %s is %s",
              fixed[i].label, fixed[i].valid ? "valid" : "invalid");
    CB_OK(jp_catalog_name_is_valid(long64), "name rule: 64 bytes is valid");
    CB_OK(!jp_catalog_name_is_valid(long65), "name rule: 65 bytes is invalid (used to differ)");
    CB_OK(!jp_catalog_name_is_valid(NULL), "name rule: NULL is invalid");

    /* Kernelspecs on disk under each name: find and list follow the rule. */
    cleanup_free char *jp = cb_strdup_printf("%s/n/jp", root);
    setenv("JUPYTER_PATH", jp, 1);
    s_write_spec(root, "n/jp/kernels/.hidden", "hidden");
    cleanup_free char *rel65 = cb_strdup_printf("n/jp/kernels/%s", long65);
    s_write_spec(root, rel65, "long65");
    cleanup_free char *rel64 = cb_strdup_printf("n/jp/kernels/%s", long64);
    s_write_spec(root, rel64, "long64");

    cb_error_t err = {0};
    cleanup_spec jp_kernelspec_t *hidden = jp_kernelspec_find(NULL, ".hidden", &err);
    CB_OK(!hidden && err.kind == CB_ERR_INVALID && s_contains(err.msg, JP_NAME_RULE),
          "find refuses .hidden, quoting the rule (used to find it)");
    cleanup_spec jp_kernelspec_t *too_long = jp_kernelspec_find(NULL, long65, &err);
    CB_OK(!too_long && err.kind == CB_ERR_INVALID, "find refuses a 65-byte name (used to find it)");
    cleanup_spec jp_kernelspec_t *fits = jp_kernelspec_find(NULL, long64, &err);
    CB_OK(fits && strcmp(fits->display_name, "long64") == 0, "find takes a 64-byte name");

    FILE *sink = tmpfile();
    cb_log_set_sink(sink);
    size_t count = 0;
    jp_kernelspec_t **specs = jp_kernelspec_list(NULL, &count);
    cb_log_set_sink(NULL);
    if (sink)
        fclose(sink);
    bool saw64 = false, saw_invalid = false;
    for (size_t i = 0; specs && i < count; i++) {
        saw64 |= strcmp(specs[i]->name, long64) == 0;
        saw_invalid |= !jp_catalog_name_is_valid(specs[i]->name);
        jp_kernelspec_destroy(&specs[i]);
    }
    free(specs);
    CB_OK(saw64 && !saw_invalid,
          "list holds the 64-byte name and no name the rule refuses (.hidden, 65 bytes)");
    unsetenv("JUPYTER_PATH");
}

int main(void)
{
    char root[] = "/tmp/test_kernelspec-XXXXXX";
    if (!mkdtemp(root))
        CB_SKIP_ALL("mkdtemp: %s", strerror(errno));
    cleanup_free char *home = cb_strdup_printf("%s/home", root);
    cleanup_free char *data = cb_strdup_printf("%s/userdata", root);
    setenv("HOME", home, 1);
    setenv("JUPYTER_DATA_DIR", data, 1);
    unsetenv("JUPYTER_PATH");
    unsetenv("XDG_DATA_HOME");

    test_good_spec(root);
    test_bad_specs(root);
    test_search_path(root);
    test_find(root);
    test_list(root);
    test_argv(root);
    test_requires(root);
    test_languages();
    test_name_rule(root);
    setenv("HOME", home, 1);
    setenv("JUPYTER_DATA_DIR", data, 1);
    test_project_spec();
    test_project_languages();

    cb_error_t err = {0};
    if (cb_rm_rf(root, &err) < 0)
        CB_DIAG("cleanup: %s", err.msg);
    return cb_tap_done();
}
