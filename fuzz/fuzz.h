/* fuzz/fuzz.h: what the fuzz harnesses share.
 *
 * Every harness (fuzz_<name>.c) defines libFuzzer's entry point, LLVMFuzzerTestOneInput, and may
 * define LLVMFuzzerInitialize. Built with -DCB_FUZZ=ON (clang) it links libFuzzer and fuzzes;
 * in the normal build it links replay_main.c instead, a plain program that feeds it every file of
 * its committed corpus (ctest's fuzz.<name>), so the corpus is replayed on every test run, under
 * whatever sanitizers the build has.
 *
 * A harness checks what must hold whatever the input (a round trip gives back what went in, an
 * accepted token is the token...) and calls FUZZ_CHECK, which aborts: libFuzzer reports an abort
 * as a crash and saves the input. */
#ifndef CB_FUZZ_H
#define CB_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* Cut data into at most max parts at each occurrence of the separator byte sep (the last part
 * takes the rest). starts[i] and lens[i] describe part i. Returns the number of parts (>= 1). */
size_t fuzz_split(const uint8_t *data, size_t size, uint8_t sep, const uint8_t **starts,
                  size_t *lens, size_t max);

/* A NUL-terminated copy of len bytes (the caller frees it). Never NULL: aborts when out of
 * memory. */
char *fuzz_strndup(const uint8_t *data, size_t len);

/* A private directory for the process's temporary files ($TMPDIR, else /dev/shm, else /tmp),
 * made on first use and removed at exit. Borrowed. */
const char *fuzz_tmpdir(void);

/* Write data to path (created or truncated, 0600). Aborts on failure: the harness is broken. */
void fuzz_write_file(const char *path, const uint8_t *data, size_t size);

#endif
