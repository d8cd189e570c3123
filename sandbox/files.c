/* files.c: reading and writing a sandbox's workspace from the host (the gateway).
 *
 * Why: the assistant uploads and downloads files without running code in the sandbox, but code in
 * the sandbox owns the workspace and can plant any symlink there. The gateway runs with far more
 * rights than the sandbox user, so a path must never lead it to a file outside the workspace.
 *
 * How: every path is first checked lexically (it must name /home/user or something below it, and
 * its ".." components may never climb above /home/user), then opened with openat2() on the
 * sandbox's root fd with RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS. The kernel then resolves it
 * exactly as a process inside the sandbox would: absolute symlinks and ".." stop at the sandbox's
 * "/", never the host's, and /proc magic links are refused. Whatever comes out must lie on the
 * workspace: on its filesystem and on its very mount (st_dev == workspace_dev and statx's mount
 * id == workspace_mnt_id); a symlink to the sandbox's own /etc/passwd resolves onto the root
 * tmpfs and is refused. Everything after that works on fds: a parent directory is
 * opened this way and the final name is handled with *at() calls that do not follow it
 * (RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS, AT_SYMLINK_NOFOLLOW, unlinkat, renameat), so a symlink
 * swapped in mid-way can at worst be replaced or removed itself, never followed.
 *
 * That check is what keeps a planted symlink away from the host files a sandbox can see: the
 * read-only /usr binds and the sandbox's own /run/cellblock tmpfs (connection files). A tmpfs workspace
 * is a filesystem of its own, so st_dev alone told them apart; a persistent workspace is a bind
 * of a host directory, which may well share a filesystem (and so st_dev) with /usr, so the
 * mount id is compared too: /usr is another mount even on the same disk. Hard links cannot
 * cross mounts (link(2) refuses EXDEV even within one filesystem), so code inside cannot bring
 * those files into the workspace that way either.
 *
 * Stat and rename (E2B's Stat and Move) take their final components by name under a parent
 * opened this way (fstatat AT_SYMLINK_NOFOLLOW, renameat), so a symlink is described or moved as
 * itself. sbx_file_open_dir hands out an O_PATH fd of a workspace directory, opened by the same
 * rules, for a watcher (inotify through /proc/self/fd/N) that code inside cannot redirect.
 *
 * Writes go to a temp name in the same directory and are renamed into place, so a failure (the
 * workspace full: CB_ERR_LIMIT, errno ENOSPC) leaves the old file intact; the price is that a
 * rewrite needs room for both copies for a moment. A final-component symlink is refused rather
 * than replaced. mkdir with parents makes one directory at a time, each step resolved afresh the
 * same way, as `mkdir -p` run inside would. When the gateway runs as root, what it creates is
 * created as the host ids the sandbox user maps to (sbx_fs_as_owner).
 *
 * sbx_workspace_usage reads a tmpfs workspace's figures from the filesystem; a persistent
 * workspace shares its filesystem with the host, so its use is measured instead: a walk of its
 * tree on fds (s_du), by the same rules as a recursive remove (cb_rm_tree_at, common's one way to
 * remove a tree), adding up st_blocks.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cb/alloc.h"
#include "cb/cleanup.h"
#include "cb/log.h"
#include "sbx_private.h"

#define S_WS SBX_INSIDE_WORKSPACE
#define S_WS_LEN (sizeof S_WS - 1)
#define S_TMP_PREFIX ".cellblock-write-"
#define S_DU_MAX_ENTRIES 200000 /* most entries a persistent workspace's measure looks at */
#define S_DU_MAX_DEPTH 128      /* deepest directory it descends into */

/* A path as the caller gave it, made into an inside path and split at its last component. */
typedef struct {
    const char *given;                    /* for messages */
    char inside[PATH_MAX + S_WS_LEN + 2]; /* "/home/user/a/b", no "." or empty components */
    char parent[PATH_MAX + S_WS_LEN + 2]; /* "/home/user/a" */
    const char *name;                     /* "b", inside `inside`; "" for the workspace itself */
    bool dir_syntax;                      /* "a/b/" or "a/b/.": can only name a directory */
} s_path_t;

/* A failure of `kind` that still records errnum. Returns -1. */
__attribute__((format(printf, 4, 5))) static int s_fail(cb_error_t *err, cb_error_kind_t kind,
                                                        int errnum, const char *fmt, ...)
{
    if (!err)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    err->kind = kind;
    err->errnum = errnum;
    return -1;
}

/* Turn errno from an operation on `given` into an error a client can act on. Returns -1. */
static int s_errno(cb_error_t *err, int e, const char *what, const char *given)
{
    switch (e) {
    case ENOENT: return s_fail(err, CB_ERR_NOT_FOUND, e, "%s '%s': not found", what, given);
    case ENOTDIR: return s_fail(err, CB_ERR_INVALID, e, "%s '%s': not a directory", what, given);
    case EISDIR: return s_fail(err, CB_ERR_INVALID, e, "%s '%s': is a directory", what, given);
    case EXDEV: return s_fail(err, CB_ERR_INVALID, e, "'%s' resolves outside the workspace", given);
    case ELOOP:
        return s_fail(err, CB_ERR_INVALID, e,
                      "%s '%s': goes through a symlink that cannot be followed (a loop, or a "
                      "/proc magic link)",
                      what, given);
    case ENAMETOOLONG:
        return s_fail(err, CB_ERR_INVALID, e, "%s '%s': a name is too long", what, given);
    case ENOSPC:
    case EDQUOT: return s_fail(err, CB_ERR_LIMIT, e, "%s '%s': the workspace is full", what, given);
    default: return cb_error_make(err, e, "%s '%s'", what, given);
    }
}

static int s_parse(const char *given, s_path_t *p, cb_error_t *err)
{
    if (!given)
        return cb_error_fail(err, CB_ERR_INVALID, "no path given");
    p->given = given;
    size_t n = strnlen(given, PATH_MAX);
    if (n >= PATH_MAX)
        return cb_error_fail(err, CB_ERR_INVALID, "path '%.60s...' is longer than %d bytes", given,
                             PATH_MAX - 1);
    const char *rel = given;
    if (given[0] == '/') {
        if (strncmp(given, S_WS, S_WS_LEN) != 0 || (given[S_WS_LEN] && given[S_WS_LEN] != '/'))
            return cb_error_fail(err, CB_ERR_INVALID, "path '%s' is outside the workspace " S_WS,
                                 given);
        rel = given + S_WS_LEN;
    }
    memcpy(p->inside, S_WS, S_WS_LEN + 1);
    size_t len = S_WS_LEN;
    int depth = 0;
    for (const char *c = rel; *c;) {
        size_t clen = strcspn(c, "/");
        bool dotdot = clen == 2 && c[0] == '.' && c[1] == '.';
        if (clen > 0 && !(clen == 1 && c[0] == '.')) { /* skip "" and "." */
            depth += dotdot ? -1 : 1;
            if (depth < 0) /* ".." above /home/user; symlinks are the kernel's business */
                return cb_error_fail(err, CB_ERR_INVALID,
                                     "path '%s' is outside the workspace " S_WS, given);
            p->inside[len++] = '/';
            memcpy(p->inside + len, c, clen);
            len += clen;
        }
        c += clen + strspn(c + clen, "/");
    }
    p->inside[len] = '\0';
    p->dir_syntax =
        (n > 0 && given[n - 1] == '/') || (n > 1 && given[n - 2] == '/' && given[n - 1] == '.');
    if (len == S_WS_LEN) {
        p->name = "";
        memcpy(p->parent, S_WS, S_WS_LEN + 1);
    } else {
        char *slash = strrchr(p->inside, '/');
        p->name = slash + 1;
        memcpy(p->parent, p->inside, (size_t)(slash - p->inside));
        p->parent[slash - p->inside] = '\0';
    }
    return 0;
}

/* openat2, retried on the spurious EAGAIN a concurrent rename can cause. fd, or -1 with errno. */
static int s_openat2(int dirfd, const char *path, int flags, mode_t mode, uint64_t resolve)
{
    struct open_how how = {.flags = (uint64_t)(flags | O_CLOEXEC),
                           .mode = (flags & O_CREAT) ? mode : 0,
                           .resolve = resolve};
    for (int i = 0;; i++) {
        int fd = (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);
        if (fd >= 0 || errno != EAGAIN || i == 16)
            return fd;
    }
}

/* Does the open fd (st its fstat) lie on the workspace: its filesystem and its mount? */
static bool s_on_ws(const sbx_t *self, int fd, const struct stat *st)
{
    struct statx stx;
    if (st->st_dev != self->workspace_dev)
        return false;
    if (statx(fd, "", AT_EMPTY_PATH, STATX_MNT_ID, &stx) < 0 || !(stx.stx_mask & STATX_MNT_ID))
        return false; /* cannot tell: refuse */
    return stx.stx_mnt_id == self->workspace_mnt_id;
}

/* openat2 and check that what was opened lies on the workspace. fd (st filled), or -1 with
 * errno (EXDEV: it is somewhere else). */
static int s_open_on_ws(const sbx_t *self, int dirfd, const char *path, int flags, uint64_t resolve,
                        struct stat *st)
{
    cleanup_close int fd = s_openat2(dirfd, path, flags, 0, resolve);
    if (fd < 0 || fstat(fd, st) < 0)
        return -1;
    if (!s_on_ws(self, fd, st)) {
        errno = EXDEV;
        return -1;
    }
    return cb_steal_fd(&fd);
}

/* Open an inside path as the sandbox would resolve it, on the workspace. */
static int s_resolve(const sbx_t *self, const char *inside, int flags, struct stat *st)
{
    return s_open_on_ws(self, self->root_fd, inside, flags, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
                        st);
}

/* Open name right under dirfd, following no symlink at all, on the workspace. */
static int s_beneath(const sbx_t *self, int dirfd, const char *name, int flags, struct stat *st)
{
    return s_open_on_ws(self, dirfd, name, flags,
                        RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV, st);
}

/* New files and directories must belong to the sandbox user. The workspace tmpfs (owned by the
 * sandbox's user namespace) even refuses to create an inode for an fsuid that namespace cannot
 * map, which root's is not (EOVERFLOW); a persistent workspace (a host filesystem) would take
 * one, owned by host root and unusable inside. So a root gateway creates with this thread's
 * fsuid and fsgid switched to the sandbox user's host ids: raw system calls, which act on the
 * calling thread only. Unprivileged, they already are ours. Returns whether it switched. */
bool sbx_fs_as_owner(const sbx_t *self)
{
    if (geteuid() != 0)
        return false;
    syscall(SYS_setfsgid, self->host_gid);
    syscall(SYS_setfsuid, self->host_uid);
    return true;
}

void sbx_fs_as_self(bool switched)
{
    if (!switched)
        return;
    int saved = errno;
    syscall(SYS_setfsuid, 0);
    syscall(SYS_setfsgid, 0);
    errno = saved;
}

/* Open the directory holding p's final component. */
static int s_open_parent(const sbx_t *self, const s_path_t *p, const char *what, cb_error_t *err)
{
    struct stat st;
    int fd = s_resolve(self, p->parent, O_PATH | O_DIRECTORY, &st);
    if (fd < 0 && errno == ENOENT)
        return s_fail(err, CB_ERR_NOT_FOUND, ENOENT, "%s '%s': its directory does not exist", what,
                      p->given);
    return fd < 0 ? s_errno(err, errno, what, p->given) : fd;
}

static bool s_is_dots(const char *name) { return !strcmp(name, ".") || !strcmp(name, ".."); }

/* Open a regular file for reading, as the sandbox would resolve it. fd, or -1 with err. */
static int s_open_regular(sbx_t *self, const char *path, struct stat *st, cb_error_t *err)
{
    s_path_t p;
    if (s_parse(path, &p, err) < 0)
        return -1;
    /* O_NONBLOCK: a FIFO planted in the workspace must not hang us; it is refused below. */
    cleanup_close int fd = s_resolve(self, p.inside, O_RDONLY | O_NONBLOCK | O_NOCTTY, st);
    if (fd < 0)
        return s_errno(err, errno, "read", path);
    if (S_ISDIR(st->st_mode))
        return cb_error_fail(err, CB_ERR_INVALID, "read '%s': is a directory", path);
    if (!S_ISREG(st->st_mode))
        return cb_error_fail(err, CB_ERR_INVALID, "read '%s': not a regular file", path);
    return cb_steal_fd(&fd);
}

/* Read up to max_bytes from offset into out (emptied first). */
static int s_read_into(int fd, const char *path, uint64_t offset, size_t max_bytes, cb_buf_t *out,
                       cb_error_t *err)
{
    cb_buf_clear(out);
    char chunk[65536];
    while (out->len < max_bytes) {
        size_t want = max_bytes - out->len < sizeof chunk ? max_bytes - out->len : sizeof chunk;
        ssize_t n = pread(fd, chunk, want, (off_t)(offset + out->len));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return cb_buf_clear(out), s_errno(err, errno, "read", path);
        if (n == 0)
            break;
        cb_buf_append(out, chunk, (size_t)n);
    }
    if (out->len == 0) /* data is "" rather than NULL */
        cb_buf_append(out, "", 0);
    return 0;
}

int sbx_file_read(sbx_t *self, const char *path, size_t max_bytes, cb_buf_t *out, cb_error_t *err)
{
    struct stat st;
    cleanup_close int fd = s_open_regular(self, path, &st, err);
    if (fd < 0)
        return -1;
    if ((uint64_t)st.st_size > max_bytes)
        return cb_error_fail(err, CB_ERR_LIMIT, "'%s' is %lld bytes, more than the %zu allowed",
                             path, (long long)st.st_size, max_bytes);
    /* One byte more than allowed tells a file that grew while we read. */
    if (s_read_into(fd, path, 0, max_bytes < SIZE_MAX ? max_bytes + 1 : max_bytes, out, err) < 0)
        return -1;
    if (out->len > max_bytes)
        return cb_buf_clear(out),
               cb_error_fail(err, CB_ERR_LIMIT, "'%s' is more than the %zu bytes allowed", path,
                             max_bytes);
    return 0;
}

int sbx_file_read_range(sbx_t *self, const char *path, uint64_t offset, size_t max_bytes,
                        cb_buf_t *out, uint64_t *size, cb_error_t *err)
{
    struct stat st;
    cleanup_close int fd = s_open_regular(self, path, &st, err);
    if (fd < 0)
        return -1;
    *size = (uint64_t)st.st_size;
    return s_read_into(fd, path, offset, max_bytes, out, err);
}

/* Make one directory, its parent existing. An existing directory is fine. last: p is the
 * directory asked for, not one of its parents. */
static int s_mkdir_one(const sbx_t *self, const s_path_t *p, bool last, cb_error_t *err)
{
    cleanup_close int pfd = s_open_parent(self, p, "mkdir", err);
    if (pfd < 0)
        return -1;
    struct stat st;
    if (mkdirat(pfd, p->name, 0755) == 0)
        return 0;
    if (errno != EEXIST)
        return s_errno(err, errno, "mkdir", p->given);
    /* It exists: fine if it is (or is an in-workspace symlink to) a directory. */
    cleanup_close int fd = s_resolve(self, p->inside, O_PATH, &st);
    if (fd < 0)
        return s_errno(err, errno, "mkdir", p->given);
    if (!S_ISDIR(st.st_mode) && last)
        return s_fail(err, CB_ERR_INVALID, EEXIST, "mkdir '%s': exists and is not a directory",
                      p->given);
    if (!S_ISDIR(st.st_mode))
        return s_fail(err, CB_ERR_INVALID, ENOTDIR, "mkdir for '%s': %s is not a directory",
                      p->given, p->inside);
    return 0;
}

/* Make p's directory, or with parents every missing directory on the way to it (and to its own
 * parent only when only_parents). Each step resolves afresh, like mkdir -p inside would. */
static int s_mkdir(const sbx_t *self, const s_path_t *p, bool parents, bool only_parents,
                   cb_error_t *err)
{
    if (!parents)
        return s_mkdir_one(self, p, true, err);
    size_t end = only_parents ? strlen(p->parent) : strlen(p->inside);
    for (size_t i = S_WS_LEN + 1; i <= end; i++) {
        if (p->inside[i] != '/' && i != end)
            continue;
        s_path_t step = {.given = p->given};
        memcpy(step.inside, p->inside, i);
        step.inside[i] = '\0';
        char *slash = strrchr(step.inside, '/');
        memcpy(step.parent, step.inside, (size_t)(slash - step.inside));
        step.parent[slash - step.inside] = '\0';
        step.name = slash + 1;
        if (s_mkdir_one(self, &step, !only_parents && i == end, err) < 0)
            return -1;
    }
    return 0;
}

int sbx_file_mkdir(sbx_t *self, const char *path, bool parents, cb_error_t *err)
{
    s_path_t p;
    if (s_parse(path, &p, err) < 0)
        return -1;
    if (!p.name[0]) /* the workspace itself: it exists */
        return 0;
    bool switched = sbx_fs_as_owner(self);
    int rc = s_mkdir(self, &p, parents, false, err);
    sbx_fs_as_self(switched);
    return rc;
}

/* Fill the new temp file fd with data and mode. */
static int s_fill(int fd, mode_t mode, const void *data, size_t len, const char *given,
                  cb_error_t *err)
{
    for (const char *at = data; len > 0;) {
        ssize_t n = write(fd, at, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return s_errno(err, errno, "write", given);
        at += n;
        len -= (size_t)n;
    }
    if (fchmod(fd, mode) < 0)
        return cb_error_make(err, errno, "chmod '%s'", given);
    return 0;
}

static int s_write(sbx_t *self, const char *path, const void *data, size_t len, bool make_parents,
                   cb_error_t *err)
{
    s_path_t p;
    if (s_parse(path, &p, err) < 0)
        return -1;
    if (!p.name[0] || p.dir_syntax || s_is_dots(p.name))
        return cb_error_fail(err, CB_ERR_INVALID, "write '%s': names a directory, not a file",
                             path);
    if (make_parents && s_mkdir(self, &p, true, true, err) < 0)
        return -1;
    cleanup_close int dirfd = s_open_parent(self, &p, "write", err);
    if (dirfd < 0)
        return -1;
    /* Keep the mode of a file we replace; refuse to replace anything else. */
    mode_t mode = 0644;
    struct stat st;
    if (fstatat(dirfd, p.name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
        if (S_ISLNK(st.st_mode))
            return cb_error_fail(err, CB_ERR_INVALID,
                                 "write '%s': is a symlink; write to the path it points to", path);
        if (S_ISDIR(st.st_mode))
            return cb_error_fail(err, CB_ERR_INVALID, "write '%s': is a directory", path);
        if (!S_ISREG(st.st_mode))
            return cb_error_fail(err, CB_ERR_INVALID, "write '%s': not a regular file", path);
        mode = st.st_mode & 0777;
    } else if (errno != ENOENT) {
        return s_errno(err, errno, "write", path);
    }
    char tmp[64];
    cleanup_close int fd = -1;
    for (int tries = 0; fd < 0; tries++) {
        uint64_t r = 0;
        if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r)
            r = (uint64_t)getpid() * 1000003u + (uint64_t)tries;
        snprintf(tmp, sizeof tmp, S_TMP_PREFIX "%016llx", (unsigned long long)r);
        fd = s_openat2(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode,
                       RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS);
        if (fd < 0 && (errno != EEXIST || tries == 8))
            return s_errno(err, errno, "write", path);
    }
    if (s_fill(fd, mode, data, len, path, err) < 0) {
        unlinkat(dirfd, tmp, 0);
        return -1;
    }
    if (renameat(dirfd, tmp, dirfd, p.name) < 0) {
        int saved = errno;
        unlinkat(dirfd, tmp, 0);
        return s_errno(err, saved, "write", path);
    }
    return 0;
}

int sbx_file_write(sbx_t *self, const char *path, const void *data, size_t len, bool make_parents,
                   cb_error_t *err)
{
    /* Creating, renaming into and filling the workspace all happen as its owner (sbx_fs_as_owner). */
    bool switched = sbx_fs_as_owner(self);
    int rc = s_write(self, path, data, len, make_parents, err);
    sbx_fs_as_self(switched);
    return rc;
}

static int s_dirent_cmp(const void *a, const void *b)
{
    return strcmp(((const sbx_dirent_t *)a)->name, ((const sbx_dirent_t *)b)->name);
}

static sbx_file_type_t s_type(mode_t mode)
{
    return S_ISREG(mode)   ? SBX_FILE_REGULAR
           : S_ISDIR(mode) ? SBX_FILE_DIR
           : S_ISLNK(mode) ? SBX_FILE_SYMLINK
                           : SBX_FILE_OTHER;
}

/* A symlink's target as stored, read from (dirfd, name); NULL when it is gone or not one. */
static char *s_readlink(int dirfd, const char *name)
{
    char buf[PATH_MAX];
    ssize_t n = readlinkat(dirfd, name, buf, sizeof buf - 1);
    if (n < 0)
        return NULL;
    buf[n] = '\0';
    return cb_xstrdup(buf);
}

/* The entry for name in dirfd, whose lstat is st. */
static void s_fill_dirent(const sbx_t *self, sbx_dirent_t *out, int dirfd, const char *name,
                          const struct stat *st)
{
    *out = (sbx_dirent_t){
        .name = cb_xstrdup(name),
        .type = s_type(st->st_mode),
        .size = (uint64_t)st->st_size,
        .mtime_ms = (int64_t)st->st_mtim.tv_sec * 1000 + st->st_mtim.tv_nsec / 1000000,
        .mode = (uint32_t)st->st_mode,
        .owned = st->st_uid == self->host_uid,
        .link = S_ISLNK(st->st_mode) ? s_readlink(dirfd, name) : NULL,
    };
}

sbx_dirent_t *sbx_file_list(sbx_t *self, const char *path, size_t *count, cb_error_t *err)
{
    *count = 0;
    s_path_t p;
    if (s_parse(path, &p, err) < 0)
        return NULL;
    struct stat st;
    int fd = s_resolve(self, p.inside, O_RDONLY | O_DIRECTORY, &st);
    if (fd < 0)
        return s_errno(err, errno, "list", path), NULL;
    cleanup_closedir DIR *d = fdopendir(fd);
    if (!d) {
        int saved = errno;
        close(fd);
        return cb_error_make(err, saved, "list '%s'", path), NULL;
    }
    sbx_dirent_t *list = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((errno = 0, e = readdir(d))) {
        if (s_is_dots(e->d_name))
            continue;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue; /* removed since readdir saw it */
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 32;
            list = cb_xrealloc(list, ncap * sizeof *list);
            cap = ncap;
        }
        s_fill_dirent(self, &list[n], dirfd(d), e->d_name, &st);
        n++;
    }
    if (errno) {
        int saved = errno;
        sbx_dirents_free(list, n);
        return cb_error_make(err, saved, "list '%s'", path), NULL;
    }
    if (!list) /* never NULL on success */
        list = cb_xcalloc(1, sizeof *list);
    qsort(list, n, sizeof *list, s_dirent_cmp);
    *count = n;
    return list;
}

void sbx_dirents_free(sbx_dirent_t *list, size_t count)
{
    for (size_t i = 0; list && i < count; i++) {
        free(list[i].name);
        free(list[i].link);
    }
    free(list);
}

typedef struct {
    uint64_t bytes;
    size_t entries;
} s_du_t;

/* Add the allocated bytes of everything under the directory fd (owned here) to du: never
 * following a symlink, never leaving the workspace's mount, and stopping at the caps (what was
 * counted by then stands). */
static void s_du(const sbx_t *self, int fd, int depth, s_du_t *du)
{
    cleanup_closedir DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return;
    }
    struct dirent *e;
    while (du->entries < S_DU_MAX_ENTRIES && (e = readdir(d))) {
        struct stat st;
        if (s_is_dots(e->d_name) || fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        du->entries++;
        du->bytes += (uint64_t)st.st_blocks * 512;
        if (!S_ISDIR(st.st_mode) || depth >= S_DU_MAX_DEPTH)
            continue;
        int sub = s_beneath(self, dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY, &st);
        if (sub >= 0)
            s_du(self, sub, depth + 1, du);
    }
}

int sbx_workspace_usage(const sbx_t *self, uint64_t *used, uint64_t *size, cb_error_t *err)
{
    struct stat st;
    struct statvfs vfs;
    if (self->workspace_dir) { /* persistent: measured, see sbx.h */
        int top = s_resolve(self, S_WS, O_RDONLY | O_DIRECTORY, &st);
        if (top < 0)
            return cb_error_make(err, errno, "measure the workspace");
        s_du_t du = {.bytes = (uint64_t)st.st_blocks * 512};
        s_du(self, top, 0, &du);
        if (du.entries >= S_DU_MAX_ENTRIES)
            cb_debug("workspace measure stopped at %d entries", S_DU_MAX_ENTRIES);
        *used = du.bytes;
        *size = self->policy.workspace_bytes;
        return 0;
    }
    cleanup_close int fd = s_resolve(self, S_WS, O_PATH | O_DIRECTORY, &st);
    if (fd < 0 || fstatvfs(fd, &vfs) < 0)
        return cb_error_make(err, errno, "measure the workspace");
    *size = (uint64_t)vfs.f_blocks * vfs.f_frsize;
    *used = (uint64_t)(vfs.f_blocks - vfs.f_bfree) * vfs.f_frsize;
    return 0;
}

/* Used bytes and size of a tmpfs mounted at inside (an absolute path in the sandbox). */
static void s_tmpfs_usage(const sbx_t *self, const char *inside, uint64_t *used, uint64_t *size)
{
    cleanup_close int fd = s_openat2(self->root_fd, inside, O_PATH | O_DIRECTORY, 0,
                                     RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS);
    struct statfs fs;
    if (fd < 0 || fstatfs(fd, &fs) < 0 || fs.f_type != TMPFS_MAGIC)
        return;
    *used = (uint64_t)(fs.f_blocks - fs.f_bfree) * (uint64_t)fs.f_bsize;
    if (size)
        *size = (uint64_t)fs.f_blocks * (uint64_t)fs.f_bsize;
}

void sbx_tmp_usage(const sbx_t *self, uint64_t *tmp, uint64_t *shm, uint64_t *size)
{
    *tmp = *shm = *size = 0;
    if (self->root_fd < 0)
        return;
    s_tmpfs_usage(self, "/tmp", tmp, size);
    s_tmpfs_usage(self, "/dev/shm", shm, NULL);
}

int sbx_file_remove(sbx_t *self, const char *path, bool recursive, cb_error_t *err)
{
    s_path_t p;
    if (s_parse(path, &p, err) < 0)
        return -1;
    if (!p.name[0])
        return cb_error_fail(err, CB_ERR_INVALID,
                             "remove '%s': the workspace itself cannot be "
                             "removed",
                             path);
    if (s_is_dots(p.name))
        return cb_error_fail(err, CB_ERR_INVALID,
                             "remove '%s': ends in '..'; name the entry "
                             "itself",
                             path);
    cleanup_close int dirfd = s_open_parent(self, &p, "remove", err);
    if (dirfd < 0)
        return -1;
    struct stat st;
    if (fstatat(dirfd, p.name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return s_errno(err, errno, "remove", path);
    int flags = 0;
    if (S_ISDIR(st.st_mode)) {
        if (recursive) {
            /* The directory must lie on the workspace's mount; cb_rm_tree_at then never leaves
             * that mount nor follows a link below it. */
            cleanup_close int fd = s_beneath(self, dirfd, p.name, O_PATH | O_DIRECTORY, &st);
            if (fd < 0)
                return s_errno(err, errno, "remove", path);
            cb_error_t rm_err = {0};
            if (cb_rm_tree_at(dirfd, p.name, &rm_err) < 0)
                return s_errno(err, rm_err.errnum ? rm_err.errnum : EIO, "remove", path);
            return 0;
        }
        flags = AT_REMOVEDIR;
    }
    if (unlinkat(dirfd, p.name, flags) < 0) {
        if (errno == ENOTEMPTY || errno == EEXIST)
            return s_fail(err, CB_ERR_INVALID, errno,
                          "remove '%s': the directory is not empty "
                          "(remove it recursively)",
                          path);
        return s_errno(err, errno, "remove", path);
    }
    return 0;
}

sbx_dirent_t *sbx_file_stat(sbx_t *self, const char *path, cb_error_t *err)
{
    s_path_t p;
    if (s_parse(path, &p, err) < 0)
        return NULL;
    struct stat st;
    sbx_dirent_t *entry = cb_xcalloc(1, sizeof *entry);
    if (!p.name[0]) { /* the workspace itself: it has no parent on the workspace to look from */
        cleanup_close int fd = s_resolve(self, p.inside, O_PATH | O_DIRECTORY, &st);
        if (fd < 0)
            return free(entry), s_errno(err, errno, "stat", path), NULL;
        s_fill_dirent(self, entry, fd, "", &st);
        return entry;
    }
    cleanup_close int dirfd = s_open_parent(self, &p, "stat", err);
    if (dirfd < 0)
        return free(entry), NULL;
    if (fstatat(dirfd, p.name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return free(entry), s_errno(err, errno, "stat", path), NULL;
    if (p.dir_syntax && !S_ISDIR(st.st_mode))
        return free(entry),
               s_fail(err, CB_ERR_INVALID, ENOTDIR, "stat '%s': not a directory", path), NULL;
    s_fill_dirent(self, entry, dirfd, p.name, &st);
    return entry;
}

static int s_rename(sbx_t *self, const char *from, const char *to, cb_error_t *err)
{
    s_path_t a, b;
    if (s_parse(from, &a, err) < 0 || s_parse(to, &b, err) < 0)
        return -1;
    if (!a.name[0] || !b.name[0])
        return cb_error_fail(err, CB_ERR_INVALID,
                             "move '%s' to '%s': the workspace itself cannot "
                             "be moved or replaced",
                             from, to);
    if (s_is_dots(a.name) || s_is_dots(b.name))
        return cb_error_fail(err, CB_ERR_INVALID,
                             "move '%s' to '%s': a path ends in '..'; name "
                             "the entry itself",
                             from, to);
    cleanup_close int afd = s_open_parent(self, &a, "move", err);
    if (afd < 0)
        return -1;
    cleanup_close int bfd = s_open_parent(self, &b, "move to", err);
    if (bfd < 0)
        return -1;
    if (renameat(afd, a.name, bfd, b.name) < 0) {
        if (errno == ENOTEMPTY || errno == EEXIST)
            return s_fail(err, CB_ERR_CONFLICT, errno,
                          "move '%s': '%s' is a directory that is not empty", from, to);
        if (errno == EINVAL)
            return s_fail(err, CB_ERR_INVALID, errno,
                          "move '%s': cannot move a directory into itself ('%s')", from, to);
        return s_errno(err, errno, "move", from);
    }
    return 0;
}

int sbx_file_rename(sbx_t *self, const char *from, const char *to, cb_error_t *err)
{
    bool switched = sbx_fs_as_owner(self);
    int rc = s_rename(self, from, to, err);
    sbx_fs_as_self(switched);
    return rc;
}

int sbx_file_open_dir(sbx_t *self, const char *path, cb_error_t *err)
{
    s_path_t p;
    if (s_parse(path, &p, err) < 0)
        return -1;
    struct stat st;
    int fd = s_resolve(self, p.inside, O_PATH | O_DIRECTORY, &st);
    return fd < 0 ? s_errno(err, errno, "open directory", path) : fd;
}
