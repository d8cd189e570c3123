/* cb_x*: allocate or abort (cb/alloc.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cb/alloc.h"

void cb_oom(size_t bytes)
{
    /* No allocation here: stdio on an unbuffered stream. */
    fprintf(stderr, "cellblock: out of memory (allocating %zu bytes); aborting\n", bytes);
    abort();
}

void *cb_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        cb_oom(n);
    return p;
}

void *cb_xcalloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p)
        cb_oom(count * size);
    return p;
}

void *cb_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        cb_oom(n);
    return q;
}

char *cb_xstrdup(const char *s)
{
    char *p = strdup(s);
    if (!p)
        cb_oom(strlen(s) + 1);
    return p;
}

char *cb_xstrndup(const char *s, size_t n)
{
    /* Not strndup: s is often a span of a buffer with no NUL after it (a request head), and
     * nothing past its n bytes may be read (ASan's strict_string_checks holds strndup to
     * a terminated string). */
    size_t len = strnlen(s, n);
    char *p = cb_xmalloc(len + 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

char *cb_xstrdup_or_null(const char *s) { return s ? cb_xstrdup(s) : NULL; }
