/* cb/tap.h: a minimal TAP producer for cellblock's C tests (header-only, test code only).
 *
 *     CB_OK(cond, "name %d", i);      prints "ok N - name" or "not ok N - name" with the location
 *     CB_SKIP_ALL("no ipykernel");    prints "1..0 # SKIP reason" and exits 0
 *     return cb_tap_done();           prints the plan; exit status 1 if anything failed
 */
#ifndef CB_TAP_H
#define CB_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/* Weak, not static: a test built from several files shares one count. */
__attribute__((weak)) int cb_tap_count = 0;
__attribute__((weak)) int cb_tap_failed = 0;

__attribute__((format(printf, 4, 5))) static inline int
cb_tap_ok(int cond, const char *file, int line, const char *fmt, ...)
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
