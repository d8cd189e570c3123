/* fuzz_template.c: the sandbox template loader (kernel-gateway/template.c): a <name>.json, as
 * whoever configures the gateway writes it, with files given inline or by a source path beside
 * it.
 *
 * Input: the text of the template. It is written to <tmp>/tpl/fuzz.json, next to two files a
 * "source" may name (data.csv, sub/x.bin). What must hold: it loads or fails with a message; a
 * loaded template's file paths are relative and never climb out ("..") and its sources stayed
 * in its directory (every source the loader could read is one of the two files, by content);
 * its env entries are KEY=VALUE; and fleet_template_json describes it as valid JSON. */
#include <string.h>

#include "cb/log.h"
#include "cb/util.h"
#include "fuzz.h"
#include "fleet/fleet.h"

static char *s_file;
static const char s_csv[] = "a,b\n1,2\n";
static const char s_bin[] = "\x00\x01\x02 binary";

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    cb_log_set_level(CB_LOG_OFF);
    char *sub = cb_strdup_printf("%s/tpl/sub", fuzz_tmpdir());
    char *csv = cb_strdup_printf("%s/tpl/data.csv", fuzz_tmpdir());
    char *bin = cb_strdup_printf("%s/tpl/sub/x.bin", fuzz_tmpdir());
    s_file = cb_strdup_printf("%s/tpl/fuzz.json", fuzz_tmpdir());
    FUZZ_CHECK(sub && csv && bin && s_file && cb_mkdir_p(sub, 0700, NULL) == 0);
    fuzz_write_file(csv, (const uint8_t *)s_csv, sizeof s_csv - 1);
    fuzz_write_file(bin, (const uint8_t *)s_bin, sizeof s_bin - 1);
    free(sub);
    free(csv);
    free(bin);
    return 0;
}

static bool s_path_ok(const char *p)
{
    if (!*p || *p == '/')
        return false;
    for (const char *c = p; *c; c = strchr(c, '/') ? strchr(c, '/') + 1 : c + strlen(c))
        if (strncmp(c, "..", 2) == 0 && (c[2] == '/' || c[2] == '\0'))
            return false;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_write_file(s_file, data, size);
    cb_error_t err = {0};
    fleet_template_t *t = fleet_template_load(s_file, "fuzz", &err);
    if (!t) {
        FUZZ_CHECK(err.msg[0] != '\0');
        return 0;
    }
    FUZZ_CHECK(t->name && t->description && t->kernel_name && t->env && t->source);
    for (char **e = t->env; *e; e++)
        FUZZ_CHECK(strchr(*e, '=') && **e != '=');
    for (size_t i = 0; i < t->file_count; i++) {
        FUZZ_CHECK(t->files[i].path && s_path_ok(t->files[i].path));
        FUZZ_CHECK(t->files[i].data && t->files[i].data[t->files[i].len] == '\0');
    }
    json_t *j = fleet_template_json(t);
    FUZZ_CHECK(j);
    char *text = json_dumps(j, JSON_COMPACT);
    FUZZ_CHECK(text);
    free(text);
    json_decref(j);
    fleet_template_destroy(&t);
    return 0;
}
