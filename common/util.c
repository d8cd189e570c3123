/* util.c: clocks, timestamps and small file-system helpers used across modules.
 *
 * Directories owned by a lock (cb_dir_create_locked and friends) exist because a process killed
 * with SIGKILL cleans up nothing, and the next one to start must tell what it left from what a
 * live neighbour still uses. A pid file can lie (pids are reused); an flock cannot: the kernel
 * releases it when the last fd of its open file goes, however the holder died. So the owner
 * keeps an fd holding flock(LOCK_EX) on the directory itself for as long as the directory lives,
 * and a sweeper that can take the lock knows nobody owns it any more.
 *
 * Directories that sandboxed code can write are the attacker's ground, and the gateway (often
 * root) must never be led out of them. So writing and removing go through directory fds:
 * cb_openat_beneath resolves one name with openat2 (RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
 * RESOLVE_NO_MAGICLINKS, O_NOFOLLOW), files are created with O_EXCL | O_NONBLOCK (a planted
 * FIFO or symlink fails the create instead of blocking or redirecting it), and cb_rm_tree_at is
 * the one way to remove a tree: it never removes by path and never follows a link (see there).
 * cb_rm_rf and cb_write_file are those, for a path whose parent the caller trusts.
 */
#include "cb/util.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "cb/alloc.h"
#include "cb/cleanup.h"

int64_t cb_now_ms(void) { return cb_now_us() / 1000; }

int64_t cb_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

char *cb_iso8601_now(char *buf)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(buf, CB_ISO8601_LEN, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, CB_ISO8601_LEN - n, ".%06ldZ", ts.tv_nsec / 1000);
    return buf;
}

char *cb_read_file(const char *path, size_t max_bytes, size_t *len_out, cb_error_t *err)
{
    cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return cb_error_make(err, errno, "open '%s'", path), NULL;
    struct stat st;
    if (fstat(fd, &st) < 0)
        return cb_error_make(err, errno, "stat '%s'", path), NULL;
    if (!S_ISREG(st.st_mode))
        return cb_error_fail(err, CB_ERR_INVALID, "'%s' is not a regular file", path), NULL;
    if ((size_t)st.st_size > max_bytes)
        return cb_error_fail(err, CB_ERR_LIMIT, "'%s' is %lld bytes, more than the %zu allowed",
                             path, (long long)st.st_size, max_bytes),
               NULL;
    cleanup_free char *buf = cb_xmalloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return cb_error_make(err, errno, "read '%s'", path), NULL;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    buf[got] = '\0';
    if (len_out)
        *len_out = got;
    return steal_pointer(&buf);
}

/* ---------------------------------------------------------------------------------------------
 * Files and trees under directory fds: nothing here follows a symlink or blocks on what it finds.
 * ------------------------------------------------------------------------------------------- */

static int s_openat2(int dirfd, const char *name, int flags, int mode, uint64_t resolve)
{
    struct open_how how = {.flags = (uint64_t)(flags | O_NOFOLLOW | O_CLOEXEC),
                           .mode = (flags & O_CREAT) ? (uint64_t)mode : 0,
                           .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
                                      RESOLVE_NO_MAGICLINKS | resolve};
    if (flags & O_PATH)
        how.flags &= ~(uint64_t)O_NONBLOCK; /* openat2 refuses flags O_PATH ignores */
    for (int i = 0;; i++) {
        int fd = (int)syscall(SYS_openat2, dirfd, name, &how, sizeof how);
        if (fd >= 0 || errno != EAGAIN || i == 16) /* EAGAIN: a rename raced the lookup */
            return fd;
    }
}

int cb_openat_beneath(int dirfd, const char *name, int flags, int mode)
{
    return s_openat2(dirfd, name, flags, mode, 0);
}

/* Create name under dirfd as a new regular file (never an existing one, never through a link,
 * never blocking), write data and set mode. Returns 0, or -1 with err (the file removed). */
static int s_create_new_at(int dirfd, const char *name, const void *data, size_t len, int mode,
                           cb_error_t *err)
{
    cleanup_close int fd =
        cb_openat_beneath(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NONBLOCK, mode & 0777);
    struct stat st;
    if (fd < 0)
        return cb_error_make(err, errno, "create '%s'", name);
    if (fstat(fd, &st) < 0 ||
        !S_ISREG(st.st_mode)) { /* O_EXCL made it; a check that costs nothing */
        unlinkat(dirfd, name, 0);
        return cb_error_make(err, errno ? errno : EINVAL, "create '%s'", name);
    }
    const char *p = data;
    for (size_t left = len; left > 0;) {
        ssize_t n = write(fd, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int saved = errno;
            unlinkat(dirfd, name, 0);
            return cb_error_make(err, saved, "write '%s'", name);
        }
        p += n;
        left -= (size_t)n;
    }
    if (fchmod(fd, (mode_t)(mode & 0777)) < 0) {
        int saved = errno;
        unlinkat(dirfd, name, 0);
        return cb_error_make(err, saved, "chmod '%s'", name);
    }
    return 0;
}

int cb_write_new_at(int dirfd, const char *name, const void *data, size_t len, int mode,
                    cb_error_t *err)
{
    if (unlinkat(dirfd, name, 0) < 0 && errno != ENOENT)
        return cb_error_make(err, errno, "replace '%s'", name);
    return s_create_new_at(dirfd, name, data, len, mode, err);
}

int cb_write_file_at(int dirfd, const char *name, const void *data, size_t len, int mode,
                     cb_error_t *err)
{
    char tmp[300];
    for (int tries = 0;; tries++) {
        uint64_t r = 0;
        if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r)
            r = ((uint64_t)getpid() << 32) ^ (uint64_t)cb_now_us() ^ (uint64_t)tries;
        if (snprintf(tmp, sizeof tmp, ".%.200s.tmp-%016llx", name, (unsigned long long)r) >=
            (int)sizeof tmp)
            return cb_error_make(err, ENAMETOOLONG, "write '%s'", name);
        cb_error_t local = {0};
        if (s_create_new_at(dirfd, tmp, data, len, mode, &local) == 0)
            break;
        if (local.errnum != EEXIST || tries == 8) {
            if (err)
                *err = local;
            return -1;
        }
    }
    if (renameat(dirfd, tmp, dirfd, name) < 0) {
        int saved = errno;
        unlinkat(dirfd, tmp, 0);
        return cb_error_make(err, saved, "rename '%s' to '%s'", tmp, name);
    }
    return 0;
}

/* Open the parent directory of path (O_PATH) and copy its last component into base. */
static int s_open_parent(const char *path, char *base, size_t size, cb_error_t *err);

int cb_write_file(const char *path, const void *data, size_t len, int mode, cb_error_t *err)
{
    char base[256];
    cleanup_close int dirfd = s_open_parent(path, base, sizeof base, err);
    if (dirfd < 0)
        return -1;
    if (cb_write_file_at(dirfd, base, data, len, mode, err) < 0)
        return cb_error_prefix(err, "write '%s': ", path);
    return 0;
}

int cb_mkdir_p(const char *path, int mode, cb_error_t *err)
{
    cleanup_free char *copy = cb_xstrdup(path);
    for (char *p = copy + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;
            *p = '\0';
            if (mkdir(copy, (mode_t)mode) < 0 && errno != EEXIST)
                return cb_error_make(err, errno, "mkdir '%s'", copy);
            *p = saved;
            if (saved == '\0')
                break;
        }
    }
    return 0;
}

/* How a tree is removed (cb_rm_tree_at): depth first, one directory fd per level. Each entry is
 * looked at with fstatat(AT_SYMLINK_NOFOLLOW); a directory is opened with openat2 beneath its
 * parent's fd, following no link and crossing no mount (RESOLVE_NO_XDEV), and read through a
 * dup of that fd (fdopendir takes the fd it is given); everything else is unlinked by name under
 * its parent's fd, never opened. Whatever was swapped between the look and the open (a directory
 * turned into a symlink, a FIFO, a mount) fails that open and is at most unlinked itself. A tree
 * deeper than S_RM_DEPTH has its deep directories moved up under the top one (a rename within
 * the same directory fds) and removed from there, so a deep tree costs no more fds. Entries that
 * keep appearing while we remove (code still running) get S_RM_PASSES passes, then ENOTEMPTY. */
#define S_RM_DEPTH 64
#define S_RM_PASSES 8

typedef struct {
    int top;      /* the directory being emptied at depth 0 (borrowed) */
    int errnum;   /* the first error worth reporting */
    uint64_t seq; /* names for directories moved up */
} s_rm_t;

static int s_rm_dir_contents(s_rm_t *rm, int fd, int depth);

static void s_rm_note(s_rm_t *rm, int e)
{
    if (!rm->errnum && e != ENOENT)
        rm->errnum = e;
}

/* Remove name under dirfd (at depth: dirfd is that many levels below rm->top). */
static void s_rm_entry(s_rm_t *rm, int dirfd, const char *name, int depth)
{
    struct stat st;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return s_rm_note(rm, errno);
    if (!S_ISDIR(st.st_mode)) {
        if (unlinkat(dirfd, name, 0) < 0)
            s_rm_note(rm, errno);
        return;
    }
    if (depth >= S_RM_DEPTH) { /* move it up under the top, where the next pass finds it */
        char moved[64];
        snprintf(moved, sizeof moved, ".cb-rm-%d-%llu", (int)getpid(),
                 (unsigned long long)++rm->seq);
        if (renameat2(dirfd, name, rm->top, moved, RENAME_NOREPLACE) < 0)
            s_rm_note(rm, errno);
        return;
    }
    int sub = s_openat2(dirfd, name, O_RDONLY | O_DIRECTORY | O_NONBLOCK, 0, RESOLVE_NO_XDEV);
    if (sub < 0) {
        /* Swapped since the look (a symlink, a file, a FIFO), or a mount: remove what is there
         * now if it is no directory, never follow it. */
        if (unlinkat(dirfd, name, 0) < 0 && errno != EISDIR)
            s_rm_note(rm, errno);
        return;
    }
    struct stat opened;
    if (fstat(sub, &opened) < 0 || opened.st_dev != st.st_dev) {
        close(sub);
        return s_rm_note(rm, EXDEV);
    }
    if (s_rm_dir_contents(rm, sub, depth + 1) < 0)
        return;
    if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0)
        s_rm_note(rm, errno);
}

/* Empty the directory fd (taken: closed here). Returns 0, or -1 when it could not be read. */
static int s_rm_dir_contents(s_rm_t *rm, int fd, int depth)
{
    cleanup_close int owned = fd;
    int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    DIR *d = copy < 0 ? NULL : fdopendir(copy);
    if (!d) {
        s_rm_note(rm, errno);
        if (copy >= 0)
            close(copy);
        return -1;
    }
    for (int pass = 0; pass < (depth == 0 ? S_RM_PASSES : 1); pass++) {
        bool any = false;
        rewinddir(d);
        for (struct dirent *e; (e = readdir(d));) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            any = true;
            s_rm_entry(rm, fd, e->d_name, depth);
        }
        if (!any)
            break;
    }
    closedir(d);
    return 0;
}

int cb_rm_tree_at(int dirfd, const char *name, cb_error_t *err)
{
    struct stat st;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return errno == ENOENT ? 0 : cb_error_make(err, errno, "stat '%s'", name);
    if (!S_ISDIR(st.st_mode)) {
        if (unlinkat(dirfd, name, 0) < 0 && errno != ENOENT)
            return cb_error_make(err, errno, "remove '%s'", name);
        return 0;
    }
    int top = s_openat2(dirfd, name, O_RDONLY | O_DIRECTORY | O_NONBLOCK, 0, RESOLVE_NO_XDEV);
    if (top < 0) {
        if (errno == ENOENT)
            return 0;
        if ((errno == ELOOP || errno == ENOTDIR) && unlinkat(dirfd, name, 0) == 0)
            return 0; /* swapped for a symlink or a file: that is what goes */
        return cb_error_make(err, errno, "open '%s' to remove it", name);
    }
    s_rm_t rm = {.top = top};
    s_rm_dir_contents(&rm, top, 0);
    if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
        return cb_error_make(err, rm.errnum ? rm.errnum : errno, "remove '%s'", name);
    return 0;
}

int cb_rm_rf(const char *path, cb_error_t *err)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : cb_error_make(err, errno, "stat '%s'", path);
    char base[256];
    cleanup_close int dirfd = s_open_parent(path, base, sizeof base, err);
    if (dirfd < 0)
        return -1;
    if (cb_rm_tree_at(dirfd, base, err) < 0)
        return cb_error_prefix(err, "remove '%s': ", path);
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Directories owned by a lock.
 * ------------------------------------------------------------------------------------------- */

#define S_LOCK_TRIES 8 /* fresh temporary names tried when a sweeper races us */

/* Open name under dirfd (not following a final symlink) and take flock(LOCK_EX | LOCK_NB).
 * Returns the fd, or -1 with errno (EWOULDBLOCK: somebody holds it). */
static int s_lock_at(int dirfd, const char *name)
{
    cleanup_close int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) < 0)
        return -1;
    return cb_steal_fd(&fd);
}

/* Open the parent directory of path (O_PATH) and copy its last component into base. */
static int s_open_parent(const char *path, char *base, size_t size, cb_error_t *err)
{
    cleanup_free char *copy = cb_xstrdup(path);
    size_t len = strlen(copy);
    while (len > 1 && copy[len - 1] == '/')
        copy[--len] = '\0';
    char *slash = strrchr(copy, '/');
    const char *name = slash ? slash + 1 : copy;
    if (!*name || !strcmp(name, ".") || !strcmp(name, ".."))
        return cb_error_fail(err, CB_ERR_INVALID, "'%s' does not name a new directory", path);
    if (snprintf(base, size, "%s", name) >= (int)size)
        return cb_error_make(err, ENAMETOOLONG, "create '%s'", path);
    const char *parent = !slash ? "." : slash == copy ? "/" : copy;
    if (slash && slash != copy)
        *slash = '\0';
    int fd = open(parent, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return cb_error_make(err, errno, "open the parent directory of '%s'", path);
    return fd;
}

/* Make a temporary ".<base>.new-<random>" under dirfd, locked, with mode. Its name goes to tmp.
 * Returns the fd, or -1 with errno; EAGAIN: a sweeper took it first, try another name. */
static int s_make_locked_temp(int dirfd, const char *base, int mode, char *tmp, size_t size)
{
    uint64_t r = 0;
    if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r)
        r = ((uint64_t)getpid() << 32) ^ (uint64_t)cb_now_us();
    if (snprintf(tmp, size, ".%s.new-%016llx", base, (unsigned long long)r) >= (int)size) {
        errno = ENAMETOOLONG;
        return -1;
    }
    if (mkdirat(dirfd, tmp, 0700) < 0)
        return errno == EEXIST ? (errno = EAGAIN, -1) : -1;
    /* Between mkdirat and flock a sweeper may lock the new directory and remove it: then the
     * lock or the open fails, or the rename below finds nothing. Each means "again". */
    cleanup_close int fd = s_lock_at(dirfd, tmp);
    if (fd < 0)
        return errno == EWOULDBLOCK || errno == ENOENT ? (errno = EAGAIN, -1) : -1;
    if (fchmod(fd, (mode_t)mode) < 0) {
        int saved = errno;
        unlinkat(dirfd, tmp, AT_REMOVEDIR);
        errno = saved;
        return -1;
    }
    return cb_steal_fd(&fd);
}

int cb_dir_create_locked(const char *path, int mode, cb_error_t *err)
{
    char base[256], tmp[320];
    cleanup_close int dirfd = s_open_parent(path, base, sizeof base, err);
    if (dirfd < 0)
        return -1;
    struct stat st;
    if (fstatat(dirfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0)
        return cb_error_make(err, EEXIST, "create '%s'", path);
    for (int tries = 0;; tries++) {
        cleanup_close int fd = s_make_locked_temp(dirfd, base, mode, tmp, sizeof tmp);
        if (fd < 0 && (errno != EAGAIN || tries == S_LOCK_TRIES))
            return cb_error_make(err, errno, "create '%s'", path);
        if (fd < 0)
            continue;
        if (renameat2(dirfd, tmp, dirfd, base, RENAME_NOREPLACE) == 0)
            return cb_steal_fd(&fd);
        int saved = errno;
        if (saved == ENOENT && tries < S_LOCK_TRIES)
            continue; /* swept between our lock and the rename: it is gone already */
        unlinkat(dirfd, tmp, AT_REMOVEDIR);
        return cb_error_make(err, saved, "create '%s'", path);
    }
}

int cb_dir_lock(const char *path, cb_error_t *err)
{
    int fd = s_lock_at(AT_FDCWD, path);
    if (fd >= 0)
        return fd;
    if (errno != EWOULDBLOCK)
        return cb_error_make(err, errno, "lock '%s'", path);
    cb_error_fail(err, CB_ERR_STATE, "'%s' is in use by another process", path);
    if (err)
        err->errnum = EWOULDBLOCK;
    return -1;
}

/* A name the sweep looks at: "<prefix>..." or a temporary ".<prefix>....new-...". */
static bool s_sweepable(const char *name, const char *prefix)
{
    size_t n = strlen(prefix);
    if (!strcmp(name, ".") || !strcmp(name, ".."))
        return false;
    if (!strncmp(name, prefix, n))
        return true;
    return name[0] == '.' && !strncmp(name + 1, prefix, n) && strstr(name + 1 + n, ".new-");
}

size_t cb_sweep_unlocked_dirs(const char *parent, const char *prefix)
{
    cleanup_closedir DIR *d = opendir(parent);
    size_t removed = 0;
    for (struct dirent *e = d ? readdir(d) : NULL; e; e = readdir(d)) {
        struct stat st;
        if (!s_sweepable(e->d_name, prefix) ||
            fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
            continue;
        cleanup_close int lock = s_lock_at(dirfd(d), e->d_name);
        cb_error_t err = {0};
        if (lock < 0)
            continue; /* its owner lives (or it vanished meanwhile) */
        if (cb_rm_tree_at(dirfd(d), e->d_name, &err) == 0 &&
            fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            removed++;
    }
    return removed;
}

char *cb_strdup_printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *out = NULL;
    int n = vasprintf(&out, fmt, ap);
    va_end(ap);
    /* vasprintf fails only for want of memory (or a format error, which -Wformat rules out). */
    if (n < 0)
        cb_oom(strlen(fmt));
    return out;
}

/* Room for n more bytes and a NUL. */
static void s_buf_reserve(cb_buf_t *buf, size_t n)
{
    if (buf->len + n + 1 > buf->cap) {
        size_t cap = buf->cap ? buf->cap : 256;
        while (cap < buf->len + n + 1)
            cap *= 2;
        buf->data = cb_xrealloc(buf->data, cap);
        buf->cap = cap;
    }
}

void cb_buf_append(cb_buf_t *buf, const void *bytes, size_t n)
{
    s_buf_reserve(buf, n);
    memcpy(buf->data + buf->len, bytes, n);
    buf->len += n;
    buf->data[buf->len] = '\0';
}

void cb_buf_clear(cb_buf_t *buf)
{
    buf->len = 0;
    if (buf->data)
        buf->data[0] = '\0';
}

void cb_buf_free(cb_buf_t *buf)
{
    free(buf->data);
    *buf = (cb_buf_t){0};
}

const char *cb_buf_str(const cb_buf_t *buf) { return buf->len ? buf->data : ""; }

void cb_buf_printf(cb_buf_t *buf, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n <= 0)
        return;
    s_buf_reserve(buf, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(buf->data + buf->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    buf->len += (size_t)n;
}

char *cb_buf_take(cb_buf_t *buf)
{
    char *s = buf->data ? buf->data : cb_xstrdup("");
    *buf = (cb_buf_t){0};
    return s;
}

void cb_strv_free(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

void cb_strv_init(cb_strv_t *sv)
{
    sv->n = 0;
    sv->v = cb_xcalloc(1, sizeof *sv->v);
}

void cb_strv_push(cb_strv_t *sv, char *s)
{
    if (!s)
        cb_oom(0);
    sv->v = cb_xrealloc(sv->v, (sv->n + 2) * sizeof *sv->v);
    sv->v[sv->n++] = s;
    sv->v[sv->n] = NULL;
}

void cb_strv_clear(cb_strv_t *sv)
{
    cb_strv_free(sv->v);
    sv->v = NULL;
    sv->n = 0;
}

bool cb_env_name_valid(const char *name)
{
    if (!name || !*name || (name[0] >= '0' && name[0] <= '9'))
        return false;
    for (const char *p = name; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return false;
    }
    return true;
}

char **cb_strv_copy(const char *const *v)
{
    size_t n = 0;
    while (v && v[n])
        n++;
    char **out = cb_xcalloc(n + 1, sizeof *out);
    for (size_t i = 0; i < n; i++)
        out[i] = cb_xstrdup(v[i]);
    return out;
}

/* Length of the valid UTF-8 sequence at s (n > 0 bytes left), or 0 when it is not one. */
static size_t s_utf8_len(const unsigned char *s, size_t n)
{
    if (s[0] < 0x80)
        return 1;
    size_t len = s[0] >= 0xF0 ? 4 : s[0] >= 0xE0 ? 3 : s[0] >= 0xC2 ? 2 : 0;
    if (!len || len > n || s[0] > 0xF4)
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    /* overlong 3- and 4-byte forms, UTF-16 surrogates, beyond U+10FFFF */
    if ((s[0] == 0xE0 && s[1] < 0xA0) || (s[0] == 0xED && s[1] > 0x9F) ||
        (s[0] == 0xF0 && s[1] < 0x90) || (s[0] == 0xF4 && s[1] > 0x8F))
        return 0;
    return len;
}

char *cb_text_lossy(const char *data, size_t len, size_t *len_out)
{
    cb_buf_t out = {0};
    const unsigned char *u = (const unsigned char *)data;
    size_t run = 0;             /* start of the good bytes not yet copied */
    cb_buf_append(&out, "", 0); /* so out.data is never NULL */
    for (size_t i = 0; i < len;) {
        size_t n = u[i] ? s_utf8_len(u + i, len - i) : 0;
        if (n) {
            i += n;
            continue;
        }
        cb_buf_append(&out, data + run, i - run);
        cb_buf_append(&out, "\xEF\xBF\xBD", 3);
        run = ++i;
    }
    if (len > run)
        cb_buf_append(&out, data + run, len - run);
    if (len_out)
        *len_out = out.len;
    return out.data;
}

const char *cb_getenv(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

void cb_strv_push_path_list(cb_strv_t *sv, const char *list, const char *suffix)
{
    for (const char *p = list; p && *p;) {
        size_t n = strcspn(p, ":");
        if (n > 0)
            cb_strv_push(sv, cb_strdup_printf("%.*s%s", (int)n, p, suffix));
        p += n + (p[n] == ':');
    }
}
