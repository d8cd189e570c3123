/* test_template.c: unit test for template.c (TAP).
 *
 * Why: templates come from files anyone can edit, so every refusal must name the file and the
 * field, an unknown field must never pass as "not set", no file path may leave the workspace and
 * no source may leave the template's directory, and the search order must be the documented one.
 *
 * How: everything happens under a fresh mkdtemp directory in /tmp; CELLBLOCK_TEMPLATES_PATH,
 * XDG_CONFIG_HOME and HOME are set or unset explicitly so the user's own templates never decide a
 * result. Big source files are made sparse with truncate(2), so the size caps cost no disk. The
 * project's own templates/ is loaded from the source tree (CB_SOURCE_TEMPLATES_DIR).
 */
#include <errno.h>
#include <libgen.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cb/cleanup.h"
#include "cb/log.h"
#include "cb/tap.h"
#include "cb/util.h"
#include "fleet/fleet.h"
#include "jupyter/catalog.h"

#define cleanup_template __attribute__((cleanup(fleet_template_destroy)))

static void s_strv_freep(char ***v) { cb_strv_free(*v); }
#define cleanup_strv __attribute__((cleanup(s_strv_freep)))

static size_t s_strv_len(char **v)
{
    size_t n = 0;
    while (v && v[n])
        n++;
    return n;
}

static bool s_contains(const char *haystack, const char *needle)
{
    return haystack && strstr(haystack, needle) != NULL;
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

/* A sparse file of size bytes at <root>/<rel>. */
static void s_write_sized(const char *root, const char *rel, off_t size)
{
    s_write(root, rel, "");
    cleanup_free char *path = cb_strdup_printf("%s/%s", root, rel);
    if (truncate(path, size) < 0) {
        CB_DIAG("setup failed: truncate '%s': %s", path, strerror(errno));
        exit(1);
    }
}

/* A valid template whose description tells where it came from. */
static void s_write_template(const char *root, const char *rel, const char *description)
{
    cleanup_free char *json = cb_strdup_printf("{\"description\": \"%s\"}", description);
    s_write(root, rel, json);
}

static void test_good(const char *root)
{
    s_write(root, "good/data/x.csv", "a,b\n1,2\n");
    s_write(root, "good/full.json",
            "{\n"
            "  \"description\": \"Everything set\",\n"
            "  \"kernel\": \"my-kernel_1.0\",\n"
            "  \"limits\": {\"memory_mb\": 2048, \"cpu\": 1.5, \"pids\": 1024, \"disk_mb\": 512,\n"
            "             \"tmp_mb\": 64},\n"
            "  \"env\": {\"MPLBACKEND\": \"agg\", \"_X1\": \"a=b\", \"EMPTY\": \"\"},\n"
            "  \"files\": [{\"path\": \"README.md\", \"content\": \"hello\\n\"},\n"
            "            {\"path\": \"data/x.csv\", \"source\": \"data/x.csv\"},\n"
            "            {\"path\": \"empty\", \"content\": \"\"},\n"
            "            {\"path\": \"data/sub/y\", \"content\": \"y\"}],\n"
            "  \"startup_code\": \"import os\",\n"
            "  \"timeout_s\": 300\n"
            "}\n");
    cleanup_free char *path = cb_strdup_printf("%s/good/full.json", root);
    cb_error_t err = {0};
    cleanup_template fleet_template_t *t = fleet_template_load(path, "full", &err);
    if (!CB_OK(t, "a template with every field loads")) {
        CB_DIAG("%s", err.msg);
        return;
    }
    CB_OK(strcmp(t->name, "full") == 0, "name is kept");
    CB_OK(strcmp(t->source, path) == 0, "source is the file it was read from");
    CB_OK(strcmp(t->description, "Everything set") == 0, "description is read");
    CB_OK(strcmp(t->kernel_name, "my-kernel_1.0") == 0, "kernel is read");
    CB_OK(t->limits.memory_mb == 2048 && t->limits.pids_max == 1024 &&
              t->limits.workspace_mb == 512 && t->limits.tmp_mb == 64,
          "memory_mb, pids, disk_mb (workspace) and tmp_mb are read");
    CB_OK(t->limits.cpu_millis == 1500, "cpu 1.5 cores becomes 1500 millis");
    CB_OK(s_strv_len(t->env) == 3 && strcmp(t->env[0], "MPLBACKEND=agg") == 0 &&
              strcmp(t->env[1], "_X1=a=b") == 0 && strcmp(t->env[2], "EMPTY=") == 0,
          "env becomes KEY=VALUE entries in file order");
    CB_OK(t->file_count == 4, "four files (two sharing the directory data)");
    if (t->file_count == 4) {
        CB_OK(strcmp(t->files[0].path, "README.md") == 0 && t->files[0].len == 6 &&
                  strcmp(t->files[0].data, "hello\n") == 0,
              "a content file holds its text");
        CB_OK(strcmp(t->files[1].path, "data/x.csv") == 0 && t->files[1].len == 8 &&
                  memcmp(t->files[1].data, "a,b\n1,2\n", 9) == 0,
              "a source file is read relative to the template's directory (NUL-terminated)");
        CB_OK(t->files[2].len == 0 && t->files[2].data && t->files[2].data[0] == '\0',
              "an empty content file has empty data");
    }
    CB_OK(t->startup_code && strcmp(t->startup_code, "import os") == 0, "startup_code is read");
    CB_OK(t->timeout_s == 300, "timeout_s is read");

    s_write(root, "good/empty.json", "{}");
    cleanup_free char *epath = cb_strdup_printf("%s/good/empty.json", root);
    cleanup_template fleet_template_t *e = fleet_template_load(epath, "empty", &err);
    CB_OK(e && strcmp(e->description, "") == 0 && strcmp(e->kernel_name, "python3") == 0 &&
              e->env && e->env[0] == NULL && e->file_count == 0 && e->startup_code == NULL &&
              e->timeout_s == 0 && e->limits.memory_mb == 0 && e->limits.cpu_millis == 0 &&
              e->limits.pids_max == 0 && e->limits.workspace_mb == 0 && e->limits.tmp_mb == 0,
          "{} gives the defaults: no description, python3, empty env, no files, no code, zeros");

    s_write(root, "good/edges.json",
            "{\"limits\": {\"memory_mb\": 16, \"cpu\": 0.01, \"pids\": 1000000, \"disk_mb\": 1, "
            "\"tmp_mb\": 1048576}, \"timeout_s\": -1, \"startup_code\": \"\", \"cpu\": null}");
    cleanup_free char *gpath = cb_strdup_printf("%s/good/edges.json", root);
    cleanup_template fleet_template_t *g = fleet_template_load(gpath, "edges", &err);
    CB_OK(!g && s_contains(err.msg, "unknown field 'cpu'"), "(cpu at the top is unknown)");
    s_write(root, "good/edges.json",
            "{\"limits\": {\"memory_mb\": 16, \"cpu\": 256, \"pids\": 1000000, \"disk_mb\": 1, "
            "\"tmp_mb\": 1048576}, \"timeout_s\": -1, \"startup_code\": \"\"}");
    cleanup_template fleet_template_t *h = fleet_template_load(gpath, "edges", &err);
    if (!h)
        CB_DIAG("%s", err.msg);
    CB_OK(h && h->limits.memory_mb == 16 && h->limits.cpu_millis == 256000 &&
              h->limits.pids_max == 1000000 && h->limits.workspace_mb == 1 &&
              h->limits.tmp_mb == 1048576,
          "limits at the edges of their ranges load (an integer cpu too)");
    CB_OK(h && h->timeout_s == -1, "timeout_s -1 (no lifetime limit) is stored as -1");
    CB_OK(h && h->startup_code == NULL, "an empty startup_code counts as none");

    s_write(root, "good/small_cpu.json", "{\"limits\": {\"cpu\": 0.01}}");
    cleanup_free char *spath = cb_strdup_printf("%s/good/small_cpu.json", root);
    cleanup_template fleet_template_t *s = fleet_template_load(spath, "small_cpu", &err);
    CB_OK(s && s->limits.cpu_millis == 10, "cpu 0.01 becomes 10 millis");

    fleet_template_t *p = t;
    fleet_template_destroy(&t);
    CB_OK(t == NULL && p != NULL, "destroy nulls the caller's pointer");
    fleet_template_destroy(&t); /* a pointer to NULL */
    fleet_template_destroy(NULL);
    CB_OK(t == NULL, "destroy accepts NULL and a pointer to NULL");
}

/* Each bad template is refused with the kind given, and a message naming the file and holding
 * these words. */
static void test_bad(const char *root)
{
    s_write(root, "bad/src/ok.txt", "ok");
    s_write(root, "outside.txt", "outside the template's directory");
    s_write_sized(root, "bad/src/big17", 17 * 1024 * 1024);
    s_write_sized(root, "bad/src/big15", 15 * 1024 * 1024);
    char long_path[300];
    memset(long_path, 'a', 256);
    long_path[256] = '\0';
    cleanup_free char *too_long =
        cb_strdup_printf("{\"files\": [{\"path\": \"%s\", \"content\": \"\"}]}", long_path);
    static const char *over_total = "{\"files\": [{\"path\": \"a\", \"source\": \"src/big15\"}, "
                                    "{\"path\": \"b\", \"source\": \"src/big15\"}, {\"path\": "
                                    "\"c\", \"source\": \"src/big15\"}, "
                                    "{\"path\": \"d\", \"source\": \"src/big15\"}, {\"path\": "
                                    "\"e\", \"source\": \"src/big15\"}]}";

    const struct {
        const char *label;
        const char *json;
        const char *words[2];
        cb_error_kind_t kind;
    } cases[] = {
        {"invalid JSON",
         "{\n  \"description\": \"x\",\n  \"kernel\": \n}\n",
         {"not valid JSON", "line 4"},
         CB_ERR_INVALID},
        {"not an object", "[1]", {"JSON object", "an array"}, CB_ERR_INVALID},
        {"duplicate key",
         "{\"kernel\": \"a\", \"kernel\": \"b\"}",
         {"not valid JSON", "duplicate"},
         CB_ERR_INVALID},
        {"unknown top-level field",
         "{\"kernal\": \"python3\"}",
         {"unknown field 'kernal'", "known:"},
         CB_ERR_INVALID},
        {"description a number",
         "{\"description\": 1}",
         {"'description'", "must be a string"},
         CB_ERR_INVALID},
        {"kernel an array",
         "{\"kernel\": [\"python3\"]}",
         {"'kernel'", "an array"},
         CB_ERR_INVALID},
        {"kernel a bad name",
         "{\"kernel\": \"../python3\"}",
         {"'kernel'", "'../python3'"},
         CB_ERR_INVALID},
        {"kernel hidden",
         "{\"kernel\": \".k\"}",
         {"'kernel'", "not a valid kernelspec name"},
         CB_ERR_INVALID},
        {"limits an array", "{\"limits\": [1]}", {"'limits'", "an array"}, CB_ERR_INVALID},
        {"unknown field in limits",
         "{\"limits\": {\"memroy_mb\": 1}}",
         {"'limits.memroy_mb'", "unknown"},
         CB_ERR_INVALID},
        {"memory_mb a string",
         "{\"limits\": {\"memory_mb\": \"2G\"}}",
         {"'limits.memory_mb'", "a string"},
         CB_ERR_INVALID},
        {"memory_mb a fraction",
         "{\"limits\": {\"memory_mb\": 20.5}}",
         {"'limits.memory_mb'", "fraction"},
         CB_ERR_INVALID},
        {"memory_mb too small",
         "{\"limits\": {\"memory_mb\": 15}}",
         {"'limits.memory_mb'", "got 15"},
         CB_ERR_INVALID},
        {"memory_mb too big",
         "{\"limits\": {\"memory_mb\": 1048577}}",
         {"'limits.memory_mb'", "1048577"},
         CB_ERR_INVALID},
        {"cpu a string",
         "{\"limits\": {\"cpu\": \"1\"}}",
         {"'limits.cpu'", "a string"},
         CB_ERR_INVALID},
        {"cpu too small",
         "{\"limits\": {\"cpu\": 0.001}}",
         {"'limits.cpu'", "0.001"},
         CB_ERR_INVALID},
        {"cpu too big", "{\"limits\": {\"cpu\": 257}}", {"'limits.cpu'", "257"}, CB_ERR_INVALID},
        {"pids a boolean",
         "{\"limits\": {\"pids\": true}}",
         {"'limits.pids'", "a boolean"},
         CB_ERR_INVALID},
        {"pids zero", "{\"limits\": {\"pids\": 0}}", {"'limits.pids'", "got 0"}, CB_ERR_INVALID},
        {"pids too many",
         "{\"limits\": {\"pids\": 1000001}}",
         {"'limits.pids'", "1000001"},
         CB_ERR_INVALID},
        {"disk_mb null",
         "{\"limits\": {\"disk_mb\": null}}",
         {"'limits.disk_mb'", "null"},
         CB_ERR_INVALID},
        {"disk_mb zero",
         "{\"limits\": {\"disk_mb\": 0}}",
         {"'limits.disk_mb'", "got 0"},
         CB_ERR_INVALID},
        {"tmp_mb an object",
         "{\"limits\": {\"tmp_mb\": {}}}",
         {"'limits.tmp_mb'", "an object"},
         CB_ERR_INVALID},
        {"tmp_mb too big",
         "{\"limits\": {\"tmp_mb\": 1048577}}",
         {"'limits.tmp_mb'", "1048577"},
         CB_ERR_INVALID},
        {"env an array", "{\"env\": [\"A=1\"]}", {"'env'", "an array"}, CB_ERR_INVALID},
        {"env value a number", "{\"env\": {\"N\": 1}}", {"'env.N'", "an integer"}, CB_ERR_INVALID},
        {"env name with a digit first",
         "{\"env\": {\"1A\": \"x\"}}",
         {"'env'", "'1A'"},
         CB_ERR_INVALID},
        {"env name with '-'", "{\"env\": {\"A-B\": \"x\"}}", {"'env'", "'A-B'"}, CB_ERR_INVALID},
        {"env name with '='", "{\"env\": {\"A=B\": \"x\"}}", {"'env'", "'A=B'"}, CB_ERR_INVALID},
        {"env name empty",
         "{\"env\": {\"\": \"x\"}}",
         {"'env'", "not a valid variable name"},
         CB_ERR_INVALID},
        {"files an object",
         "{\"files\": {\"path\": \"a\"}}",
         {"'files'", "an object"},
         CB_ERR_INVALID},
        {"files entry a string",
         "{\"files\": [\"a\"]}",
         {"'files[0]'", "a string"},
         CB_ERR_INVALID},
        {"unknown field in files",
         "{\"files\": [{\"path\": \"a\", \"content\": \"\", \"mode\": 420}]}",
         {"'files[0].mode'", "unknown"},
         CB_ERR_INVALID},
        {"file path missing",
         "{\"files\": [{\"content\": \"x\"}]}",
         {"'files[0].path'", "missing"},
         CB_ERR_INVALID},
        {"file path a number",
         "{\"files\": [{\"path\": 1, \"content\": \"x\"}]}",
         {"'files[0].path'", "an integer"},
         CB_ERR_INVALID},
        {"file path absolute",
         "{\"files\": [{\"path\": \"/etc/passwd\", \"content\": \"x\"}]}",
         {"'files[0].path'", "absolute"},
         CB_ERR_INVALID},
        {"file path with ..",
         "{\"files\": [{\"path\": \"a/../../b\", \"content\": \"x\"}]}",
         {"'files[0].path'", "\"..\""},
         CB_ERR_INVALID},
        {"file path just ..",
         "{\"files\": [{\"path\": \"..\", \"content\": \"x\"}]}",
         {"'files[0].path'", "\"..\""},
         CB_ERR_INVALID},
        {"file path with //",
         "{\"files\": [{\"path\": \"a//b\", \"content\": \"x\"}]}",
         {"'files[0].path'", "empty component"},
         CB_ERR_INVALID},
        {"file path with trailing /",
         "{\"files\": [{\"path\": \"a/\", \"content\": \"x\"}]}",
         {"'files[0].path'", "empty component"},
         CB_ERR_INVALID},
        {"file path .",
         "{\"files\": [{\"path\": \".\", \"content\": \"x\"}]}",
         {"'files[0].path'", "\".\" component"},
         CB_ERR_INVALID},
        {"file path empty",
         "{\"files\": [{\"path\": \"\", \"content\": \"x\"}]}",
         {"'files[0].path'", "empty"},
         CB_ERR_INVALID},
        {"file path over 255 bytes", too_long, {"'files[0].path'", "255"}, CB_ERR_INVALID},
        {"duplicate file paths",
         "{\"files\": [{\"path\": \"a\", \"content\": \"1\"}, {\"path\": \"b\", \"content\": "
         "\"\"}, "
         "{\"path\": \"a\", \"content\": \"2\"}]}",
         {"'files[2].path'", "repeats files[0]"},
         CB_ERR_INVALID},
        {"a file under another file",
         "{\"files\": [{\"path\": \"a/b\", \"content\": \"1\"}, {\"path\": \"a\", \"content\": "
         "\"2\"}]}",
         {"'files[1].path'", "'a' is needed as a directory by files[0] ('a/b')"},
         CB_ERR_INVALID},
        {"a file under another file, the other way",
         "{\"files\": [{\"path\": \"x\", \"content\": \"1\"}, {\"path\": \"y\", \"content\": "
         "\"2\"}, "
         "{\"path\": \"x/y/z\", \"content\": \"3\"}]}",
         {"'files[2].path'", "'x/y/z' needs a directory where there is files[0] ('x')"},
         CB_ERR_INVALID},
        {"both content and source",
         "{\"files\": [{\"path\": \"a\", \"content\": \"x\", \"source\": \"src/ok.txt\"}]}",
         {"'files[0]'", "both 'content' and 'source'"},
         CB_ERR_INVALID},
        {"neither content nor source",
         "{\"files\": [{\"path\": \"a\"}]}",
         {"'files[0]'", "needs 'content' or 'source'"},
         CB_ERR_INVALID},
        {"content a number",
         "{\"files\": [{\"path\": \"a\", \"content\": 5}]}",
         {"'files[0].content'", "an integer"},
         CB_ERR_INVALID},
        {"source an array",
         "{\"files\": [{\"path\": \"a\", \"source\": []}]}",
         {"'files[0].source'", "an array"},
         CB_ERR_INVALID},
        {"source with ..",
         "{\"files\": [{\"path\": \"a\", \"source\": \"../outside.txt\"}]}",
         {"'files[0].source'", "\"..\""},
         CB_ERR_INVALID},
        {"source absolute",
         "{\"files\": [{\"path\": \"a\", \"source\": \"/etc/hostname\"}]}",
         {"'files[0].source'", "absolute"},
         CB_ERR_INVALID},
        {"source missing",
         "{\"files\": [{\"path\": \"a\", \"source\": \"src/nope.txt\"}]}",
         {"'files[0].source'", "src/nope.txt"},
         CB_ERR_INVALID},
        {"source a directory",
         "{\"files\": [{\"path\": \"a\", \"source\": \"src\"}]}",
         {"'files[0].source'", "not a regular file"},
         CB_ERR_INVALID},
        {"source over 16 MiB",
         "{\"files\": [{\"path\": \"big\", \"source\": \"src/big17\"}]}",
         {"'files[0].source'", "more than the 16777216"},
         CB_ERR_LIMIT},
        {"files over 64 MiB in all", over_total, {"'files'", "files[4] 'e'"}, CB_ERR_LIMIT},
        {"startup_code an array",
         "{\"startup_code\": [\"import os\"]}",
         {"'startup_code'", "an array"},
         CB_ERR_INVALID},
        {"timeout_s a string",
         "{\"timeout_s\": \"300\"}",
         {"'timeout_s'", "a string"},
         CB_ERR_INVALID},
        {"timeout_s a fraction",
         "{\"timeout_s\": 1.5}",
         {"'timeout_s'", "fraction"},
         CB_ERR_INVALID},
        {"timeout_s zero", "{\"timeout_s\": 0}", {"'timeout_s'", "got 0"}, CB_ERR_INVALID},
        {"timeout_s -2", "{\"timeout_s\": -2}", {"'timeout_s'", "got -2"}, CB_ERR_INVALID},
        {"timeout_s over a day",
         "{\"timeout_s\": 86401}",
         {"'timeout_s'", "86401"},
         CB_ERR_INVALID},
        {"network a bad preset",
         "{\"network\": \"no-such-preset\"}",
         {"'network'", "no-such-preset"},
         CB_ERR_INVALID},
        {"network a number", "{\"network\": 5}", {"'network'", ""}, CB_ERR_INVALID},
        {"network a bad entry",
         "{\"network\": {\"allow\": [\"a b\"]}}",
         {"'network'", "a b"},
         CB_ERR_INVALID},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cleanup_free char *rel = cb_strdup_printf("bad/case%zu.json", i);
        s_write(root, rel, cases[i].json);
        cleanup_free char *file = cb_strdup_printf("%s/%s", root, rel);
        cb_error_t err = {0};
        cleanup_template fleet_template_t *t = fleet_template_load(file, "bad", &err);
        cb_error_kind_t kind = cases[i].kind;
        CB_OK(!t && err.kind == kind && s_contains(err.msg, "template 'bad': ") &&
                  s_contains(err.msg, file) && s_contains(err.msg, cases[i].words[0]) &&
                  s_contains(err.msg, cases[i].words[1]),
              "%s is refused naming the file and field", cases[i].label);
        CB_DIAG("%s", err.msg);
    }

    cb_error_t err = {0};
    cleanup_free char *absent = cb_strdup_printf("%s/bad/absent.json", root);
    cleanup_template fleet_template_t *a = fleet_template_load(absent, "absent", &err);
    CB_OK(!a && err.kind == CB_ERR_NOT_FOUND && err.errnum == ENOENT &&
              s_contains(err.msg, "absent.json") && s_contains(err.msg, "'absent'"),
          "an absent file is not found with ENOENT");

    /* Over the JSON file's own cap: refused before parsing. */
    s_write_sized(root, "bad/huge.json", 1024 * 1024 + 1);
    cleanup_free char *huge = cb_strdup_printf("%s/bad/huge.json", root);
    cleanup_template fleet_template_t *b = fleet_template_load(huge, "huge", &err);
    CB_OK(!b && err.kind == CB_ERR_LIMIT && s_contains(err.msg, "huge.json"),
          "a template file over 1 MiB is refused");
    CB_DIAG("%s", err.msg);

    cleanup_free char *good = cb_strdup_printf("%s/bad/src/ok.txt", root);
    cleanup_template fleet_template_t *c = fleet_template_load(good, "../x", &err);
    CB_OK(!c && err.kind == CB_ERR_INVALID, "load refuses a bad name too");
    cleanup_template fleet_template_t *d = fleet_template_load(NULL, "x", &err);
    CB_OK(!d && err.kind == CB_ERR_INVALID, "load refuses a NULL path");
}

static void test_search_path(void)
{
    setenv("CELLBLOCK_TEMPLATES_PATH", "/tp/a::/tp/b:", 1);
    setenv("XDG_CONFIG_HOME", "/xdg", 1);
    setenv("HOME", "/home/u", 1);
    cleanup_strv char **p = fleet_template_search_path("/proj/templates");
    static const char *want[] = {"/tp/a", "/tp/b", "/xdg/cellblock/templates", "/proj/templates"};
    size_t nwant = sizeof want / sizeof want[0];
    bool same = s_strv_len(p) == nwant;
    for (size_t i = 0; same && i < nwant; i++)
        same = strcmp(p[i], want[i]) == 0;
    CB_OK(same, "search path: CELLBLOCK_TEMPLATES_PATH entries (empty ones ignored), "
                "XDG_CONFIG_HOME, the project dir");
    for (size_t i = 0; p && p[i]; i++)
        CB_DIAG("  %s", p[i]);

    unsetenv("XDG_CONFIG_HOME");
    unsetenv("CELLBLOCK_TEMPLATES_PATH");
    cleanup_strv char **q = fleet_template_search_path(NULL);
    CB_OK(s_strv_len(q) == 1 && strcmp(q[0], "/home/u/.config/cellblock/templates") == 0,
          "without XDG_CONFIG_HOME, HOME/.config; a NULL project dir is left out");

    setenv("XDG_CONFIG_HOME", "", 1);
    unsetenv("HOME");
    cleanup_strv char **r = fleet_template_search_path("/proj");
    CB_OK(s_strv_len(r) == 1 && strcmp(r[0], "/proj") == 0,
          "with neither (an empty XDG_CONFIG_HOME is unset) only the project dir is left");
}

static void test_find(const char *root)
{
    cleanup_free char *tp = cb_strdup_printf("%s/f/tp1::%s/f/tp2", root, root);
    cleanup_free char *xdg = cb_strdup_printf("%s/f/xdg", root);
    cleanup_free char *proj = cb_strdup_printf("%s/f/proj", root);
    setenv("CELLBLOCK_TEMPLATES_PATH", tp, 1);
    setenv("XDG_CONFIG_HOME", xdg, 1);

    s_write_template(root, "f/proj/dup.json", "proj");
    s_write_template(root, "f/xdg/cellblock/templates/dup.json", "xdg");
    s_write_template(root, "f/proj/projonly.json", "proj");
    s_write_template(root, "f/xdg/cellblock/templates/xdgonly.json", "xdg");
    cb_error_t err = {0};
    cleanup_free char *isdir = cb_strdup_printf("%s/f/tp1/dup.json", root);
    if (cb_mkdir_p(isdir, 0755, &err) < 0)
        CB_DIAG("setup: %s", err.msg);
    /* What "../x" would reach from tp1 if names were not checked. */
    s_write_template(root, "f/x.json", "escaped");

    cleanup_template fleet_template_t *a = fleet_template_find(proj, "dup", &err);
    CB_OK(a && strcmp(a->description, "xdg") == 0,
          "the user's config dir beats the project dir (a directory named dup.json is skipped)");
    s_write_template(root, "f/tp2/dup.json", "tp2");
    cleanup_template fleet_template_t *b = fleet_template_find(proj, "dup", &err);
    CB_OK(b && strcmp(b->description, "tp2") == 0,
          "CELLBLOCK_TEMPLATES_PATH beats the config and project dirs");
    cleanup_free char *want_src = cb_strdup_printf("%s/f/tp2/dup.json", root);
    CB_OK(b && strcmp(b->source, want_src) == 0, "find sets source to the file found");
    s_write_template(root, "f/tp1/dup2.json", "tp1");
    s_write_template(root, "f/tp2/dup2.json", "tp2");
    cleanup_template fleet_template_t *c = fleet_template_find(proj, "dup2", &err);
    CB_OK(c && strcmp(c->description, "tp1") == 0,
          "an earlier CELLBLOCK_TEMPLATES_PATH entry wins");

    cleanup_template fleet_template_t *d = fleet_template_find(proj, "projonly", &err);
    CB_OK(d && strcmp(d->name, "projonly") == 0, "find reaches the project dir");
    cleanup_template fleet_template_t *e = fleet_template_find(NULL, "projonly", &err);
    CB_OK(!e && err.kind == CB_ERR_NOT_FOUND, "without a project dir its templates are not found");

    cleanup_template fleet_template_t *f = fleet_template_find(proj, "nosuch", &err);
    CB_OK(!f && err.kind == CB_ERR_NOT_FOUND &&
              s_contains(err.msg, "no template 'nosuch' (available: dup, dup2, projonly, xdgonly)"),
          "an unknown name is not found, and the message lists the available names");
    CB_DIAG("%s", err.msg);

    unsetenv("CELLBLOCK_TEMPLATES_PATH");
    cleanup_free char *none = cb_strdup_printf("%s/f/none", root);
    setenv("XDG_CONFIG_HOME", none, 1);
    cleanup_template fleet_template_t *g = fleet_template_find(NULL, "nosuch", &err);
    CB_OK(!g && err.kind == CB_ERR_NOT_FOUND && s_contains(err.msg, "(available: none)"),
          "with no templates anywhere the message says none are available");
    setenv("CELLBLOCK_TEMPLATES_PATH", tp, 1);
    setenv("XDG_CONFIG_HOME", xdg, 1);

    char sixty_five[66];
    memset(sixty_five, 'a', 65);
    sixty_five[65] = '\0';
    const char *bad_names[] = {"../x", "a/b", "..",  ".", ".hidden",
                               "",     "a b", "x\n", "é", sixty_five};
    for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++) {
        cleanup_template fleet_template_t *s = fleet_template_find(proj, bad_names[i], &err);
        CB_OK(!s && err.kind == CB_ERR_INVALID && s_contains(err.msg, "invalid template name"),
              "name '%s' is refused",
              strchr(bad_names[i], '\n') ? "x\\n"
              : i == 9                   ? "a x 65"
                                         : bad_names[i]);
    }
    cleanup_template fleet_template_t *n = fleet_template_find(proj, NULL, &err);
    CB_OK(!n && err.kind == CB_ERR_INVALID, "a NULL name is refused");

    char sixty_four[65];
    memset(sixty_four, 'b', 64);
    sixty_four[64] = '\0';
    cleanup_free char *rel = cb_strdup_printf("f/proj/%s.json", sixty_four);
    s_write_template(root, rel, "long");
    cleanup_template fleet_template_t *l = fleet_template_find(proj, sixty_four, &err);
    CB_OK(l && strcmp(l->description, "long") == 0, "a 64-byte name is allowed");
}

static void test_list(const char *root)
{
    cleanup_free char *tp = cb_strdup_printf("%s/l/tp1:%s/l/tp2", root, root);
    cleanup_free char *xdg = cb_strdup_printf("%s/l/xdg", root);
    cleanup_free char *proj = cb_strdup_printf("%s/l/proj", root);
    setenv("CELLBLOCK_TEMPLATES_PATH", tp, 1);
    setenv("XDG_CONFIG_HOME", xdg, 1);

    s_write_template(root, "l/tp1/zeta.json", "tp1");
    s_write_template(root, "l/tp1/same.json", "tp1");
    s_write_template(root, "l/tp2/same.json", "tp2");
    s_write_template(root, "l/tp2/alpha.json", "tp2");
    s_write(root, "l/tp2/broken.json", "{\"limits\": {\"memory_mb\": \"lots\"}}");
    s_write(root, "l/tp2/notjson.json", "{nope");
    s_write_template(root, "l/xdg/cellblock/templates/bad name.json", "xdg");
    s_write_template(root, "l/xdg/cellblock/templates/.hidden.json", "xdg");
    s_write_template(root, "l/xdg/cellblock/templates/README.md", "xdg");
    s_write_template(root, "l/xdg/cellblock/templates/.json", "xdg");
    s_write_template(root, "l/proj/mid.json", "proj");
    s_write_template(root, "l/proj/same.json", "proj");

    FILE *sink = tmpfile();
    cb_log_set_sink(sink);
    size_t count = 99;
    fleet_template_t **list = fleet_template_list(proj, &count);
    cb_log_set_sink(NULL);

    CB_OK(list != NULL, "list returns an array");
    CB_OK(count == 4, "list has 4 templates (got %zu)", count);
    const char *want[] = {"alpha", "mid", "same", "zeta"};
    bool same = count == 4;
    for (size_t i = 0; same && i < 4; i++)
        same = strcmp(list[i]->name, want[i]) == 0;
    CB_OK(same, "list is alpha, mid, same, zeta: sorted, broken and badly named files left out");
    CB_OK(count == 4 && strcmp(list[2]->description, "tp1") == 0,
          "the first directory's template of a name wins in list");
    CB_OK(list && list[count] == NULL, "list's array is NULL-terminated too");

    char logbuf[4096] = {0};
    rewind(sink);
    size_t got = fread(logbuf, 1, sizeof logbuf - 1, sink);
    logbuf[got] = '\0';
    fclose(sink);
    CB_OK(s_contains(logbuf, "warn") && s_contains(logbuf, "'broken'") &&
              s_contains(logbuf, "'limits.memory_mb'") && s_contains(logbuf, "'notjson'") &&
              s_contains(logbuf, "not valid JSON"),
          "broken templates are skipped with a warning naming them");

    for (size_t i = 0; list && i < count; i++)
        fleet_template_destroy(&list[i]);
    free(list);

    unsetenv("CELLBLOCK_TEMPLATES_PATH");
    cleanup_free char *none = cb_strdup_printf("%s/l/none", root);
    setenv("XDG_CONFIG_HOME", none, 1);
    size_t zero = 99;
    fleet_template_t **empty = fleet_template_list(NULL, &zero);
    CB_OK(empty && zero == 0 && empty[0] == NULL, "with no templates list is empty, not NULL");
    free(empty);
}

static bool s_json_keys_are(json_t *obj, const char *const *keys, size_t n)
{
    if (!json_is_object(obj) || json_object_size(obj) != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!json_object_get(obj, keys[i]))
            return false;
    return true;
}

static void test_json(const char *root)
{
    s_write(root, "j/t.json",
            "{\"description\": \"D\", \"kernel\": \"k\", \"limits\": {\"cpu\": 0.5, \"memory_mb\": "
            "512}, \"env\": {\"B\": \"2\", \"A\": \"x=y\"}, \"files\": [{\"path\": \"x/y\", "
            "\"content\": \"c\"}, {\"path\": \"z\", \"content\": \"\"}], \"startup_code\": \"1\", "
            "\"timeout_s\": 60}");
    cleanup_free char *path = cb_strdup_printf("%s/j/t.json", root);
    cb_error_t err = {0};
    cleanup_template fleet_template_t *t = fleet_template_load(path, "t", &err);
    if (!CB_OK(t, "template for json loads")) {
        CB_DIAG("%s", err.msg);
        return;
    }
    json_auto_t *j = fleet_template_json(t);
    static const char *const top[] = {"name",     "description", "kernel",       "limits",
                                      "env_keys", "files",       "startup_code", "timeout_s"};
    CB_OK(s_json_keys_are(j, top, sizeof top / sizeof top[0]),
          "json has exactly name, description, kernel, limits, env_keys, files, startup_code, "
          "timeout_s");
    json_auto_t *want =
        json_pack("{s:s, s:s, s:s, s:{s:f, s:i}, s:[s, s], s:[s, s], s:b, s:i}", "name", "t",
                  "description", "D", "kernel", "k", "limits", "cpu", 0.5, "memory_mb", 512,
                  "env_keys", "B", "A", "files", "x/y", "z", "startup_code", 1, "timeout_s", 60);
    CB_OK(want && json_equal(j, want),
          "json: limits only those set, cpu in cores, env keys without values, file paths");
    cleanup_free char *dump = j ? json_dumps(j, JSON_COMPACT) : NULL;
    CB_DIAG("%s", dump ? dump : "(null)");
    CB_OK(j && !s_contains(dump, "x=y"), "json never holds env values");

    s_write(root, "j/e.json", "{}");
    cleanup_free char *epath = cb_strdup_printf("%s/j/e.json", root);
    cleanup_template fleet_template_t *e = fleet_template_load(epath, "e", &err);
    json_auto_t *ej = e ? fleet_template_json(e) : NULL;
    json_auto_t *ewant = json_pack("{s:s, s:s, s:s, s:{}, s:[], s:[], s:b, s:i}", "name", "e",
                                   "description", "", "kernel", "python3", "limits", "env_keys",
                                   "files", "startup_code", 0, "timeout_s", 0);
    CB_OK(ej && ewant && json_equal(ej, ewant),
          "json of {}: empty limits, env_keys and files, startup_code false, timeout_s 0");
    CB_OK(fleet_template_json(NULL) == NULL, "json of NULL is NULL");
}

/* The network key: a policy the sandbox gets (limits.network), shown by fleet_template_json. */
static void test_network(const char *root)
{
    s_write(root, "n/t.json", "{\"network\": {\"allow\": [\"pypi.org:443\"]}}");
    s_write(root, "n/none.json", "{}");
    cleanup_free char *path = cb_strdup_printf("%s/n/t.json", root);
    cleanup_free char *none_path = cb_strdup_printf("%s/n/none.json", root);
    cb_error_t err = {0};
    cleanup_template fleet_template_t *t = fleet_template_load(path, "t", &err);
    if (!CB_OK(t && t->network, "a template with a network policy loads")) {
        CB_DIAG("%s", err.msg);
        return;
    }
    CB_OK(t->limits.network == t->network && !egress_policy_is_none(t->network),
          "its policy is what its sandboxes get (limits.network)");
    json_auto_t *j = fleet_template_json(t);
    json_t *net = json_object_get(j, "network");
    const char *mode = json_string_value(json_object_get(net, "mode"));
    cleanup_free char *allow = json_dumps(json_object_get(net, "allow"), JSON_COMPACT);
    CB_OK(mode && strcmp(mode, "allow") == 0 && allow && s_contains(allow, "pypi.org"),
          "fleet_template_json shows the policy (mode allow, its entries)");
    cleanup_template fleet_template_t *n = fleet_template_load(none_path, "none", &err);
    json_auto_t *nj = n ? fleet_template_json(n) : NULL;
    CB_OK(n && !n->network && !n->limits.network && nj && !json_object_get(nj, "network"),
          "without the key: no policy (the server's default applies), none in the json");
}

static void test_project_templates(void)
{
    /* The build tree is laid out like a prefix: build/share/cellblock/templates links to the
     * source tree's templates/, and the binary finds it beside itself, not by a baked-in path. */
    cleanup_free char *dir = fleet_template_project_dir();
    cleanup_free char *real = dir ? realpath(dir, NULL) : NULL;
    cleanup_free char *want = realpath(CB_SOURCE_TEMPLATES_DIR, NULL);
    CB_OK(real && want && strcmp(real, want) == 0 && strstr(dir, "/share/cellblock/templates"),
          "the project dir is <prefix>/share/cellblock/templates (the build tree's links to the "
          "source's templates/): %s",
          dir ? dir : "(null)");

    cb_error_t err = {0};
    cleanup_free char *py_path = cb_strdup_printf("%s/python.json", CB_SOURCE_TEMPLATES_DIR);
    cleanup_template fleet_template_t *py = fleet_template_load(py_path, "python", &err);
    if (!CB_OK(py, "templates/python.json loads"))
        CB_DIAG("%s", err.msg);
    CB_OK(py && strcmp(py->kernel_name, "python3") == 0 && py->startup_code == NULL &&
              py->file_count == 0 && py->limits.memory_mb == 0 && py->limits.cpu_millis == 0 &&
              py->timeout_s == 0 && *py->description,
          "python: python3, described, no limits, no startup code, no files");

    cleanup_free char *pd_path = cb_strdup_printf("%s/python-data.json", CB_SOURCE_TEMPLATES_DIR);
    cleanup_template fleet_template_t *pd = fleet_template_load(pd_path, "python-data", &err);
    if (!CB_OK(pd, "templates/python-data.json loads"))
        CB_DIAG("%s", err.msg);
    CB_OK(pd && strcmp(pd->kernel_name, "python3") == 0 && s_contains(pd->description, "numpy") &&
              s_contains(pd->description, "pandas") && s_contains(pd->description, "matplotlib"),
          "python-data: python3, its description names numpy, pandas and matplotlib");
    CB_OK(pd && s_strv_len(pd->env) == 1 &&
              strcmp(pd->env[0], "MPLBACKEND=module://matplotlib_inline.backend_inline") == 0,
          "python-data: MPLBACKEND is the inline backend");
    CB_OK(pd && s_contains(pd->startup_code, "import numpy as np") &&
              s_contains(pd->startup_code, "import pandas as pd") &&
              s_contains(pd->startup_code, "import matplotlib.pyplot as plt"),
          "python-data: its startup code imports np, pd and plt");
    CB_OK(pd && pd->file_count == 1 && strcmp(pd->files[0].path, "README.md") == 0 &&
              s_contains(pd->files[0].data, "python-data"),
          "python-data: seeds README.md naming the template");

    unsetenv("CELLBLOCK_TEMPLATES_PATH");
    size_t n = 0;
    fleet_template_t **list = fleet_template_list(CB_SOURCE_TEMPLATES_DIR, &n);
    /* One template per language the product promises, each naming its kernel. */
    static const struct {
        const char *name, *kernel;
    } want_list[] = {{"bash", "bash"},      {"c", "c"},
                     {"cpp", "cpp"},        {"go", "go"},
                     {"java", "java"},      {"node", "javascript"},
                     {"python", "python3"}, {"python-data", "python3"},
                     {"r", "ir"},           {"ruby", "ruby"},
                     {"rust", "rust"},      {"typescript", "typescript"}};
    size_t nwant = sizeof want_list / sizeof *want_list;
    bool all = n == nwant;
    for (size_t i = 0; all && i < n; i++)
        all = strcmp(list[i]->name, want_list[i].name) == 0 &&
              strcmp(list[i]->kernel_name, want_list[i].kernel) == 0 && *list[i]->description;
    CB_OK(all,
          "the project lists a described template per language, each naming its kernel "
          "(got %zu)",
          n);
    for (size_t i = 0; list && i < n; i++)
        fleet_template_destroy(&list[i]);
    free(list);
    cleanup_template fleet_template_t *found =
        fleet_template_find(CB_SOURCE_TEMPLATES_DIR, "python-data", &err);
    CB_OK(found && strcmp(found->source, pd_path) == 0, "find reaches the project's python-data");
}

/* The one name rule (jupyter/catalog.h), as templates see it: a template's own name and the
 * kernel it names are accepted exactly when jp_catalog_name_is_valid says so, the function
 * kernelspec lookups use too (jupyter's test_kernelspec checks their side with the same names).
 * Kernelspecs used to take ".hidden" and names over 64 bytes, which a template could not name. */
static void test_name_rule(const char *root)
{
    char long64[JP_NAME_MAX + 1], long65[JP_NAME_MAX + 2];
    memset(long64, 'k', JP_NAME_MAX);
    long64[JP_NAME_MAX] = '\0';
    memset(long65, 'k', JP_NAME_MAX + 1);
    long65[JP_NAME_MAX + 1] = '\0';
    const char *names[] = {"python3", "my-kernel_1.0", "A",        "a.",   ".hidden", ".",
                           "..",      "a b",           "\xc3\xa9", long64, long65};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        bool valid = jp_catalog_name_is_valid(names[i]);
        const char *label = names[i] == long64   ? "64 bytes"
                            : names[i] == long65 ? "65 bytes"
                                                 : names[i];

        /* As the kernel a template names. */
        cleanup_free char *json = cb_strdup_printf("{\"kernel\": \"%s\"}", names[i]);
        cleanup_free char *rel = cb_strdup_printf("names/kernel-%zu.json", i);
        s_write(root, rel, json);
        cleanup_free char *path = cb_strdup_printf("%s/%s", root, rel);
        cb_error_t err = {0};
        cleanup_free char *tname = cb_strdup_printf("kernel-%zu", i);
        cleanup_template fleet_template_t *t = fleet_template_load(path, tname, &err);
        CB_OK((t != NULL) == valid, "kernel '%s' is %s in a template, as the rule says", label,
              valid ? "taken" : "refused");

        /* As the template's own name. */
        cleanup_template fleet_template_t *u = fleet_template_load(path, names[i], &err);
        bool refused =
            !u && err.kind == CB_ERR_INVALID && s_contains(err.msg, "invalid template name");
        CB_OK(valid ? u != NULL : refused, "template name '%s' is %s, as the rule says", label,
              valid ? "taken" : "refused");
    }
}

int main(void)
{
    char root[] = "/tmp/test_template-XXXXXX";
    if (!mkdtemp(root))
        CB_SKIP_ALL("mkdtemp: %s", strerror(errno));
    cleanup_free char *home = cb_strdup_printf("%s/home", root);
    cleanup_free char *config = cb_strdup_printf("%s/config", root);
    setenv("HOME", home, 1);
    setenv("XDG_CONFIG_HOME", config, 1);
    unsetenv("CELLBLOCK_TEMPLATES_PATH");

    test_good(root);
    test_bad(root);
    test_search_path();
    setenv("HOME", home, 1);
    test_find(root);
    test_list(root);
    test_json(root);
    test_network(root);
    test_name_rule(root);
    setenv("XDG_CONFIG_HOME", config, 1);
    test_project_templates();

    cb_error_t err = {0};
    if (cb_rm_rf(root, &err) < 0)
        CB_DIAG("cleanup: %s", err.msg);
    return cb_tap_done();
}
