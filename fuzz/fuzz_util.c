/* fuzz_util.c: the helpers of fuzz.h. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "cb/util.h"
#include "fuzz.h"

size_t fuzz_split(const uint8_t *data, size_t size, uint8_t sep, const uint8_t **starts,
                  size_t *lens, size_t max)
{
    size_t n = 0;
    const uint8_t *p = data, *end = data + size;
    while (n + 1 < max) {
        const uint8_t *hit = memchr(p, sep, (size_t)(end - p));
        if (!hit)
            break;
        starts[n] = p;
        lens[n++] = (size_t)(hit - p);
        p = hit + 1;
    }
    starts[n] = p;
    lens[n++] = (size_t)(end - p);
    return n;
}

char *fuzz_strndup(const uint8_t *data, size_t len)
{
    char *s = malloc(len + 1);
    if (!s)
        abort();
    if (len)
        memcpy(s, data, len);
    s[len] = '\0';
    return s;
}

static char s_tmpdir[4096];

static void s_remove_tmpdir(void)
{
    if (s_tmpdir[0])
        cb_rm_rf(s_tmpdir, NULL);
}

const char *fuzz_tmpdir(void)
{
    if (s_tmpdir[0])
        return s_tmpdir;
    /* In memory when possible: the loaders' harnesses write a file per input. */
    const char *base = getenv("TMPDIR");
    if (!base || !*base)
        base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(s_tmpdir, sizeof s_tmpdir, "%s/cellblock-fuzz-XXXXXX", base);
    if (!mkdtemp(s_tmpdir)) {
        fprintf(stderr, "fuzz: mkdtemp %s: %s\n", s_tmpdir, strerror(errno));
        abort();
    }
    atexit(s_remove_tmpdir);
    return s_tmpdir;
}

void fuzz_write_file(const char *path, const uint8_t *data, size_t size)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        fprintf(stderr, "fuzz: open %s: %s\n", path, strerror(errno));
        abort();
    }
    size_t done = 0;
    while (done < size) {
        ssize_t n = write(fd, data + done, size - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            fprintf(stderr, "fuzz: write %s: %s\n", path, strerror(errno));
            abort();
        }
        done += (size_t)n;
    }
    close(fd);
}
