/* cb/tap.h: a minimal TAP producer for cellblock's C tests (header-only, test code only).
 *
 *     CB_OK(cond, "name %d", i);      prints "ok N - name" or "not ok N - name" with the location
 *     CB_EQ_INT(got, want, "name");   the same for a comparison; a failure also prints both
 *     CB_EQ_SIZE(got, want, "name");  sides, as source text and as values (libuv's ASSERT_EQ)
 *     CB_EQ_STR(got, want, "name");   strings compared with strcmp; NULL prints as (null)
 *     CB_SKIP_ALL("no ipykernel");    prints "1..0 # SKIP reason" and exits 0
 *     return cb_tap_done();           prints the plan; exit status 1 if anything failed
 */
#ifndef CB_TAP_H
#define CB_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Weak, not static: a test built from several files shares one count. */
__attribute__((weak)) int cb_tap_count = 0;
__attribute__((weak)) int cb_tap_failed = 0;

__attribute__((format(printf, 4, 5))) static inline int cb_tap_ok(int cond, const char *file,
                                                                  int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("%sok %d - ", cond ? "" : "not ", ++cb_tap_count);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    if (!cond) {
        cb_tap_failed++;
        printf("#   failed at %s:%d\n", file, line);
    }
    fflush(stdout);
    return cond;
}

#define CB_OK(cond, ...) cb_tap_ok(!!(cond), __FILE__, __LINE__, __VA_ARGS__)

/* The test line of a comparison; on failure, what each side was. */
__attribute__((format(printf, 6, 7))) static inline int cb_tap_eq(int cond, const char *sides,
                                                                  const char *got, const char *want,
                                                                  const char *where,
                                                                  const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("%sok %d - ", cond ? "" : "not ", ++cb_tap_count);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    if (!cond) {
        cb_tap_failed++;
        printf("#   failed at %s: %s\n#        got: %s\n#   expected: %s\n", where, sides, got,
               want);
    }
    fflush(stdout);
    return cond;
}

#define CB_TAP_STR2(x) #x
#define CB_TAP_STR(x) CB_TAP_STR2(x)
#define CB_TAP_WHERE __FILE__ ":" CB_TAP_STR(__LINE__)

static inline int cb_tap_eq_int(long long got, long long want, const char *sides, const char *where,
                                const char *name)
{
    char g[32], w[32];
    snprintf(g, sizeof g, "%lld", got);
    snprintf(w, sizeof w, "%lld", want);
    return cb_tap_eq(got == want, sides, g, w, where, "%s", name);
}

static inline int cb_tap_eq_size(size_t got, size_t want, const char *sides, const char *where,
                                 const char *name)
{
    char g[32], w[32];
    snprintf(g, sizeof g, "%zu", got);
    snprintf(w, sizeof w, "%zu", want);
    return cb_tap_eq(got == want, sides, g, w, where, "%s", name);
}

static inline int cb_tap_eq_str(const char *got, const char *want, const char *sides,
                                const char *where, const char *name)
{
    int same = got && want ? strcmp(got, want) == 0 : got == want;
    char g[512], w[512]; /* quoted, cut to fit: enough to see where they part */
    snprintf(g, sizeof g, got ? "\"%s\"" : "%s", got ? got : "(null)");
    snprintf(w, sizeof w, want ? "\"%s\"" : "%s", want ? want : "(null)");
    return cb_tap_eq(same, sides, g, w, where, "%s", name);
}

/* name: the test line's name, one string (build it with snprintf when it needs values). */
#define CB_EQ_INT(got, want, name)                                                                 \
    cb_tap_eq_int((long long)(got), (long long)(want), #got " == " #want, CB_TAP_WHERE, name)
#define CB_EQ_SIZE(got, want, name)                                                                \
    cb_tap_eq_size((size_t)(got), (size_t)(want), #got " == " #want, CB_TAP_WHERE, name)
#define CB_EQ_STR(got, want, name)                                                                 \
    cb_tap_eq_str((got), (want), #got " == " #want, CB_TAP_WHERE, name)
#define CB_DIAG(...) (printf("# "), printf(__VA_ARGS__), printf("\n"), fflush(stdout))
#define CB_SKIP_ALL(...)                                                                           \
    do {                                                                                           \
        printf("1..0 # SKIP ");                                                                    \
        printf(__VA_ARGS__);                                                                       \
        printf("\n");                                                                              \
        exit(0);                                                                                   \
    } while (0)

static inline int cb_tap_done(void)
{
    printf("1..%d\n", cb_tap_count);
    if (cb_tap_failed)
        printf("# %d of %d failed\n", cb_tap_failed, cb_tap_count);
    return cb_tap_failed ? 1 : 0;
}

#endif
