/* cb/alloc.h: cellblock's one out-of-memory policy.
 *
 * An allocation either succeeds or ends the process: cb_oom logs how many bytes were asked for
 * and aborts. So no caller checks for NULL, and no failed append can be silently dropped. This is
 * the choice of crun (xmalloc) and redis (zmalloc): a server out of memory cannot answer well
 * anyway, and a hundred hand-written recovery branches were a hundred untested paths.
 *
 * jansson allocates through cb_xmalloc too: every target that uses jansson links cb_json
 * (common/CMakeLists.txt), whose constructor installs the hooks before main.
 *
 * Where an allocation's size comes from outside (a message, a file), bound the size first and
 * refuse with a clear error; these functions are for sizes the program has already accepted.
 */
#ifndef CB_ALLOC_H
#define CB_ALLOC_H

#include <stdarg.h>
#include <stddef.h>

/* Log "out of memory (N bytes)" on stderr and abort. */
void cb_oom(size_t bytes) __attribute__((noreturn, cold));

void *cb_xmalloc(size_t n) __attribute__((malloc, returns_nonnull));
void *cb_xcalloc(size_t count, size_t size) __attribute__((malloc, returns_nonnull));
void *cb_xrealloc(void *p, size_t n) __attribute__((returns_nonnull));
char *cb_xstrdup(const char *s) __attribute__((malloc, returns_nonnull));
char *cb_xstrndup(const char *s, size_t n) __attribute__((malloc, returns_nonnull));
/* A copy of s, or NULL when s is NULL. */
char *cb_xstrdup_or_null(const char *s) __attribute__((malloc));

#endif
