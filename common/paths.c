/* paths.c: the one rule for where cellblock's own files are (see cb/paths.h for the rule and why
 * nothing is baked in from the build).
 *
 * The relative directories come from CMake's GNUInstallDirs at configure time (CB_BINDIR,
 * CB_DATADIR, CB_LIBEXECDIR, e.g. "bin", "share", "libexec"); only these relative names are
 * compiled in, never an absolute path. The prefix is the executable's directory with CB_BINDIR's
 * components taken off, so a bindir of "bin" means one level up.
 */
#include "cb/paths.h"

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cb/alloc.h"
#include "cb/log.h"
#include "cb/util.h"

#ifndef CB_BINDIR
#error "CB_BINDIR, CB_DATADIR and CB_LIBEXECDIR come from common/CMakeLists.txt (GNUInstallDirs)"
#endif

/* Computed once: the executable's location is fixed for the life of the process, and callers
 * hold on to the strings (sbx_default_init_path hands one out as a borrowed reference). These are
 * written only inside pthread_once and never freed. */
static pthread_once_t s_once = PTHREAD_ONCE_INIT;
static char *s_prefix, *s_datadir, *s_libexecdir, *s_init_path;

/* The directory holding the running executable's real file. Caller owns return value; NULL when
 * /proc is not mounted. */
static char *s_exe_dir(void)
{
    char buf[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0)
        return NULL;
    buf[n] = '\0';
    /* A binary replaced on disk while running (a package upgrade) reads "PATH (deleted)"; its
     * files are then the new ones at PATH, which is what it should use. */
    static const char deleted[] = " (deleted)";
    size_t len = (size_t)n, dl = sizeof deleted - 1;
    if (len > dl && strcmp(buf + len - dl, deleted) == 0)
        buf[len - dl] = '\0';
    char *slash = strrchr(buf, '/');
    if (!slash)
        return NULL;
    *slash = '\0';
    return cb_xstrdup(buf[0] ? buf : "/");
}

/* dir with one trailing path component removed per component of rel ("bin" -> one, "a/b" -> two).
 * Modifies dir in place. */
static void s_strip_components(char *dir, const char *rel)
{
    for (const char *p = rel; *p;) {
        size_t n = strcspn(p, "/");
        if (n > 0) {
            char *slash = strrchr(dir, '/');
            if (slash == dir)
                slash[1] = '\0'; /* at the root: stay there */
            else if (slash)
                *slash = '\0';
        }
        p += n;
        if (*p == '/')
            p++;
    }
}

static char *s_join(const char *a, const char *b, const char *c)
{
    size_t la = strlen(a);
    /* "/" + "share" must read "/share", not "//share". */
    if (la == 1 && a[0] == '/')
        la = 0;
    size_t lb = strlen(b), lc = c ? strlen(c) : 0;
    char *out = cb_xmalloc(la + 1 + lb + (c ? 1 + lc : 0) + 1);
    char *p = out;
    memcpy(p, a, la);
    p += la;
    *p++ = '/';
    memcpy(p, b, lb);
    p += lb;
    if (c) {
        *p++ = '/';
        memcpy(p, c, lc);
        p += lc;
    }
    *p = '\0';
    return out;
}

static void s_compute(void)
{
    char *exe_dir = s_exe_dir();
    if (exe_dir) {
        s_strip_components(exe_dir, CB_BINDIR);
        s_prefix = exe_dir;
    } else {
        /* No /proc: the sandboxes could not be built either (they mount a fresh /proc, and the
         * gateway reads its children there). Say so, and take / as the prefix (/share/cellblock,
         * /libexec/cellblock): directories only root makes, never a build tree. */
        cb_warn("paths: cannot read /proc/self/exe; looking for cellblock's files under /");
        s_prefix = cb_xstrdup("/");
    }
    const char *data = cb_getenv("CELLBLOCK_DATA_DIR");
    const char *libexec = cb_getenv("CELLBLOCK_LIBEXEC_DIR");
    s_datadir = data ? cb_xstrdup(data) : s_join(s_prefix, CB_DATADIR, "cellblock");
    s_libexecdir = libexec ? cb_xstrdup(libexec) : s_join(s_prefix, CB_LIBEXECDIR, "cellblock");
    s_init_path = s_join(s_libexecdir, "cellblock-init", NULL);
}

static void s_init_once(void) { pthread_once(&s_once, s_compute); }

const char *cb_path_prefix(void)
{
    s_init_once();
    return s_prefix;
}

const char *cb_path_datadir(void)
{
    s_init_once();
    return s_datadir;
}

const char *cb_path_libexecdir(void)
{
    s_init_once();
    return s_libexecdir;
}

const char *cb_path_init(void)
{
    s_init_once();
    return s_init_path;
}
