/* util.c: clocks, timestamps and small file-system helpers used across modules.
 *
 * Directories owned by a lock (cb_dir_create_locked and friends) exist because a process killed
 * with SIGKILL cleans up nothing, and the next one to start must tell what it left from what a
 * live neighbour still uses. A pid file can lie (pids are reused); an flock cannot: the kernel
 * releases it when the last fd of its open file goes, however the holder died. So the owner
 * keeps an fd holding flock(LOCK_EX) on the directory itself for as long as the directory lives,
 * and a sweeper that can take the lock knows nobody owns it any more.
 */
#include "cb/util.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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
    cleanup_free char *buf = malloc((size_t)st.st_size + 1);
    if (!buf)
        return cb_error_make(err, ENOMEM, "read '%s'", path), NULL;
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

int cb_write_file(const char *path, const void *data, size_t len, int mode, cb_error_t *err)
{
    cleanup_free char *tmp = cb_strdup_printf("%s.tmp%ld", path, (long)getpid());
    if (!tmp)
        return cb_error_make(err, ENOMEM, "write '%s'", path);
    cleanup_close int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0)
        return cb_error_make(err, errno, "create '%s'", tmp);
    if (fchmod(fd, (mode_t)mode) < 0)
        return cb_error_make(err, errno, "chmod '%s'", tmp);
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t n = write(fd, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int saved = errno;
            unlink(tmp);
            return cb_error_make(err, saved, "write '%s'", tmp);
        }
        p += n;
        left -= (size_t)n;
    }
    if (rename(tmp, path) < 0) {
        int saved = errno;
        unlink(tmp);
        return cb_error_make(err, saved, "rename '%s' to '%s'", tmp, path);
    }
    return 0;
}

int cb_mkdir_p(const char *path, int mode, cb_error_t *err)
{
    cleanup_free char *copy = strdup(path);
    if (!copy)
        return cb_error_make(err, ENOMEM, "mkdir '%s'", path);
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

static int s_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    int rc = (flag == FTW_DP) ? rmdir(path) : unlink(path);
    return (rc < 0 && errno != ENOENT) ? -1 : 0;
}

int cb_rm_rf(const char *path, cb_error_t *err)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : cb_error_make(err, errno, "stat '%s'", path);
    if (nftw(path, s_rm_one, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) < 0)
        return cb_error_make(err, errno, "remove '%s'", path);
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
    cleanup_free char *copy = strdup(path);
    if (!copy)
        return cb_error_make(err, ENOMEM, "create '%s'", path);
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
        cleanup_free char *path = cb_strdup_printf("%s/%s", parent, e->d_name);
        cb_error_t err = {0};
        if (lock < 0 || !path)
            continue; /* its owner lives (or it vanished meanwhile) */
        if (cb_rm_rf(path, &err) == 0 && fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
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
    return n < 0 ? NULL : out;
}

int cb_buf_append(cb_buf_t *buf, const char *bytes, size_t n)
{
    if (buf->len + n + 1 > buf->cap) {
        size_t cap = buf->cap ? buf->cap : 256;
        while (cap < buf->len + n + 1)
            cap *= 2;
        char *grown = realloc(buf->data, cap);
        if (!grown)
            return -1;
        buf->data = grown;
        buf->cap = cap;
    }
    memcpy(buf->data + buf->len, bytes, n);
    buf->len += n;
    buf->data[buf->len] = '\0';
    return 0;
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

void cb_strv_free(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

int cb_strv_init(cb_strv_t *sv)
{
    sv->n = 0;
    sv->v = calloc(1, sizeof *sv->v);
    return sv->v ? 0 : -1;
}

int cb_strv_push(cb_strv_t *sv, char *s)
{
    if (!s)
        return -1;
    char **grown = realloc(sv->v, (sv->n + 2) * sizeof *grown);
    if (!grown) {
        free(s);
        return -1;
    }
    grown[sv->n++] = s;
    grown[sv->n] = NULL;
    sv->v = grown;
    return 0;
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
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'))
            return false;
    }
    return true;
}

char **cb_strv_copy(const char *const *v)
{
    size_t n = 0;
    while (v && v[n])
        n++;
    char **out = calloc(n + 1, sizeof *out);
    for (size_t i = 0; out && i < n; i++) {
        if (!(out[i] = strdup(v[i]))) {
            cb_strv_free(out);
            return NULL;
        }
    }
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
    size_t run = 0; /* start of the good bytes not yet copied */
    int rc = cb_buf_append(&out, "", 0);
    for (size_t i = 0; i < len && rc == 0;) {
        size_t n = u[i] ? s_utf8_len(u + i, len - i) : 0;
        if (n) {
            i += n;
            continue;
        }
        rc = cb_buf_append(&out, data + run, i - run);
        if (rc == 0)
            rc = cb_buf_append(&out, "\xEF\xBF\xBD", 3);
        run = ++i;
    }
    if (rc == 0 && len > run)
        rc = cb_buf_append(&out, data + run, len - run);
    if (rc < 0) {
        cb_buf_free(&out);
        return NULL;
    }
    if (len_out)
        *len_out = out.len;
    return out.data ? out.data : strdup("");
}
