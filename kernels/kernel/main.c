/* kernels/kernel/main.c: cellblock-kernel's command line.
 *
 *   cellblock-kernel LANGUAGE -f CONNECTION_FILE
 *
 * LANGUAGE picks the driver: the interpreted languages first (repl.c), then the compiled ones
 * (compiled.c). The log level comes from $CELLBLOCK_KERNEL_LOG (debug, info, warn, error).
 */
#include <stdio.h>
#include <string.h>

#include "cb/log.h"
#include "cb/util.h"
#include "kernel.h"

static int s_usage(void)
{
    fprintf(stderr, "usage: cellblock-kernel LANGUAGE -f CONNECTION_FILE\n");
    return 2;
}

int main(int argc, char **argv)
{
    if (argc != 4 || strcmp(argv[2], "-f") != 0)
        return s_usage();
    cb_log_level_t level;
    const char *env = cb_getenv("CELLBLOCK_KERNEL_LOG");
    if (env && cb_log_level_parse(env, &level) == 0)
        cb_log_set_level(level);

    const char *lang = argv[1];
    const kn_driver_ops_t *ops = kn_repl_driver(lang);
    if (!ops)
        ops = kn_compiled_driver(lang);
    if (!ops) {
        fprintf(stderr, "cellblock-kernel: unknown language '%s'\n", lang);
        return 2;
    }
    return kn_kernel_run(ops, argv[3]);
}
