/* replay_main.c: a harness as a plain program (the normal build, any compiler).
 *
 *   fuzz_<name> PATH...
 *
 * Each PATH is a file (one input) or a directory (every regular file in it, in name order, not
 * recursing). Each input is copied into a buffer of exactly its size, so a sanitizer sees a read
 * past its end, and handed to LLVMFuzzerTestOneInput, as libFuzzer would. Prints one line per
 * path and exits 0 when every input ran (a finding aborts the program). This is what ctest runs
 * on the committed corpora; to fuzz, build with -DCB_FUZZ=ON (bench/fuzz). */
#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "cb/util.h"
#include "fuzz.h"

__attribute__((weak)) int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

static int s_run_file(const char *path)
{
    cb_error_t err = {0};
    size_t len = 0;
    char *text = cb_read_file(path, 64u << 20, &len, &err);
    if (!text) {
        fprintf(stderr, "replay: %s: %s\n", path, err.msg);
        return -1;
    }
    uint8_t *copy = malloc(len ? len : 1); /* exactly its size */
    if (!copy) {
        free(text);
        return -1;
    }
    memcpy(copy, text, len);
    free(text);
    LLVMFuzzerTestOneInput(copy, len);
    free(copy);
    return 0;
}

static int s_by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE_OR_DIR...\n", argv[0]);
        return 2;
    }
    LLVMFuzzerInitialize(&argc, &argv);
    int failed = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) < 0) {
            fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
            failed = 1;
            continue;
        }
        if (!S_ISDIR(st.st_mode)) {
            failed |= s_run_file(argv[i]) < 0;
            printf("replayed %s\n", argv[i]);
            continue;
        }
        struct dirent **names = NULL;
        int n = scandir(argv[i], &names, NULL, s_by_name);
        if (n < 0) {
            fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
            failed = 1;
            continue;
        }
        size_t ran = 0;
        for (int k = 0; k < n; k++) {
            char *path = cb_strdup_printf("%s/%s", argv[i], names[k]->d_name);
            struct stat fst;
            if (path && stat(path, &fst) == 0 && S_ISREG(fst.st_mode)) {
                failed |= s_run_file(path) < 0;
                ran++;
            }
            free(path);
            free(names[k]);
        }
        free(names);
        printf("replayed %zu inputs from %s\n", ran, argv[i]);
        if (ran == 0) {
            fprintf(stderr, "replay: %s holds no inputs\n", argv[i]);
            failed = 1;
        }
    }
    return failed;
}
