/* cb/cleanup.h: scope-bound cleanup with __attribute__((cleanup)).
 *
 *     cleanup_free char *path = NULL;     freed at scope exit
 *     cleanup_close int fd = -1;          closed at scope exit when >= 0
 *     return steal_pointer(&path);        hand ownership out; the cleanup then sees NULL
 *
 * For jansson use json_auto_t (from jansson.h) on owned references only, never on borrowed ones.
 * Do not mix these with goto cleanup ladders in one function. */
#ifndef CB_CLEANUP_H
#define CB_CLEANUP_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static inline void cb_freep(void *p) { free(*(void **)p); }
static inline void cb_closep(int *fd)
{
    if (*fd >= 0)
        close(*fd);
}
static inline void cb_fclosep(FILE **f)
{
    if (*f)
        fclose(*f);
}

#define cleanup_free __attribute__((cleanup(cb_freep)))
#define cleanup_close __attribute__((cleanup(cb_closep)))
static inline void cb_closedirp(DIR **d)
{
    if (*d)
        closedir(*d);
}

#define cleanup_fclose __attribute__((cleanup(cb_fclosep)))
#define cleanup_closedir __attribute__((cleanup(cb_closedirp)))

static inline void *cb_steal_pointer(void *pp)
{
    void **p = (void **)pp;
    void *v = *p;
    *p = NULL;
    return v;
}
#define steal_pointer(pp) cb_steal_pointer(pp)

static inline int cb_steal_fd(int *fd)
{
    int v = *fd;
    *fd = -1;
    return v;
}

#endif
