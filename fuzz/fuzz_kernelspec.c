/* fuzz_kernelspec.c: the kernelspec loader (jupyter/kernelspec.c): a kernel.json, as
 * anyone who can write to a Jupyter data directory on the search path may write it.
 *
 * Input: the text of kernel.json. The loader takes a directory, so the input is written to
 * <tmp>/spec/kernel.json first. What must hold: the file loads into a spec whose argv is not
 * empty and whose env entries are all KEY=VALUE, or fails with a message; its argv, with the
 * connection file and libexec dir substituted, has as many entries as the spec's; every
 * requirement it keeps has an absolute path and a package. */
#include <string.h>

#include "cb/log.h"
#include "cb/util.h"
#include "fuzz.h"
#include "jupyter/kernelspec.h"

static char *s_dir, *s_file;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    cb_log_set_level(CB_LOG_OFF);
    s_dir = cb_strdup_printf("%s/spec", fuzz_tmpdir());
    s_file = cb_strdup_printf("%s/spec/kernel.json", fuzz_tmpdir());
    FUZZ_CHECK(s_dir && s_file && cb_mkdir_p(s_dir, 0700, NULL) == 0);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_write_file(s_file, data, size);
    cb_error_t err = {0};
    jp_kernelspec_t *spec = jp_kernelspec_load(s_dir, "fuzz", &err);
    if (!spec) {
        FUZZ_CHECK(err.msg[0] != '\0');
        return 0;
    }
    FUZZ_CHECK(spec->argv && spec->argv[0] && spec->display_name && spec->language && spec->env);
    FUZZ_CHECK(strcmp(spec->name, "fuzz") == 0 && strcmp(spec->resource_dir, s_dir) == 0);
    for (char **e = spec->env; *e; e++)
        FUZZ_CHECK(strchr(*e, '=') && **e != '=');
    FUZZ_CHECK(spec->interrupt_mode == JP_INTERRUPT_SIGNAL ||
               spec->interrupt_mode == JP_INTERRUPT_MESSAGE);

    size_t n = 0;
    while (spec->argv[n])
        n++;
    for (jp_requirement_t *r = spec->requires; r && r->path; r++)
        FUZZ_CHECK(r->path[0] == '/' && r->package && r->package[0]);
    (void)jp_kernelspec_missing(spec);
    char **argv = jp_kernelspec_argv(spec, "/run/cellblock/kernel-1.json", "/opt/cellblock");
    FUZZ_CHECK(argv);
    size_t m = 0;
    while (argv[m])
        m++;
    FUZZ_CHECK(m == n);
    cb_strv_free(argv);
    jp_kernelspec_destroy(&spec);
    FUZZ_CHECK(!spec);
    return 0;
}
