/* cb/util.h: small helpers shared by every module: clocks, timestamps, files, directories. */
#ifndef CB_UTIL_H
#define CB_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cb/error.h"

/* Monotonic clock in milliseconds / microseconds. */
int64_t cb_now_ms(void);
int64_t cb_now_us(void);

/* Current UTC time as ISO 8601 with microseconds, "2026-11-22T17:30:00.123456Z".
 * buf must hold CB_ISO8601_LEN bytes. Returns buf. */
#define CB_ISO8601_LEN 32
char *cb_iso8601_now(char *buf);

/* Read a whole file (at most max_bytes) into a NUL-terminated buffer. Caller owns return value. */
char *cb_read_file(const char *path, size_t max_bytes, size_t *len_out, cb_error_t *err);

/* Write data to path atomically (cb_write_file_at in path's parent directory). */
int cb_write_file(const char *path, const void *data, size_t len, int mode, cb_error_t *err);

/* ---- Under a directory fd, in directories others may write --------------------------------
 * name is one component under dirfd; none of these follows a symlink (not even one in name),
 * opens a FIFO or device in a way that blocks, or writes into a file it did not just create. */

/* openat2(dirfd, name, flags | O_NOFOLLOW | O_CLOEXEC) with RESOLVE_BENEATH |
 * RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS (retried on a rename's spurious EAGAIN). Add
 * O_NONBLOCK (or use O_PATH) for anything but a directory you know. fd, or -1 with errno. */
int cb_openat_beneath(int dirfd, const char *name, int flags, int mode);

/* Replace name with a new regular file holding data: whatever has the name is unlinked (never
 * followed), then the file is created O_EXCL | O_NOFOLLOW | O_NONBLOCK, written, and given mode.
 * Readers may see it missing or short for a moment; use cb_write_file_at when they must not. */
int cb_write_new_at(int dirfd, const char *name, const void *data, size_t len, int mode,
                    cb_error_t *err);

/* Write data atomically as name: a new temporary ".<name>.tmp-<random>" created as above, then
 * renamed over name (renameat replaces a symlink or FIFO there; it never follows one). */
int cb_write_file_at(int dirfd, const char *name, const void *data, size_t len, int mode,
                     cb_error_t *err);

/* Remove name under dirfd, and everything below it when it is a directory. Never by path, never
 * following a link, never leaving the filesystem, never opening anything but directories (opened
 * beneath their parent's fd with cb_openat_beneath's rules); what is swapped meanwhile is at most
 * unlinked itself. Deep trees are flattened as they are removed, so the fds used stay bounded.
 * Missing is success; what could not be removed is an error (the rest is removed anyway). */
int cb_rm_tree_at(int dirfd, const char *name, cb_error_t *err);

/* mkdir -p with the given mode for every directory created. */
int cb_mkdir_p(const char *path, int mode, cb_error_t *err);

/* Remove a directory tree: cb_rm_tree_at on path's last component, in its parent (which the
 * caller trusts; that part of path is resolved as usual). Missing path is success. */
int cb_rm_rf(const char *path, cb_error_t *err);

/* Directories owned by a lock: whoever holds flock(LOCK_EX) on a directory owns it, and the
 * kernel drops the lock when the holder dies, however it dies. So a directory whose lock can be
 * taken is one whose owner is gone, and cb_sweep_unlocked_dirs may remove it.
 *
 * Create directory path (it must not exist: EEXIST otherwise) with exactly mode, and return an
 * O_RDONLY | O_DIRECTORY | O_CLOEXEC fd on it that holds flock(LOCK_EX). The directory never
 * exists under its final name unlocked: it is made as ".<basename>.new-<random>" in the same
 * parent, locked there, and renamed into place (RENAME_NOREPLACE). Caller owns return value
 * (close it only after removing the directory). */
int cb_dir_create_locked(const char *path, int mode, cb_error_t *err);

/* Open the existing directory path and take flock(LOCK_EX | LOCK_NB) on it. Returns the fd
 * (O_CLOEXEC; caller owns return value), or -1 with kind CB_ERR_STATE when another open file
 * holds the lock, or with a system error. Does not follow a symlink at path. */
int cb_dir_lock(const char *path, cb_error_t *err);

/* For every directory in parent whose name starts with prefix, and every left-over temporary
 * ".<prefix>*.new-*" of cb_dir_create_locked: take its lock; when that works its owner is gone,
 * so remove it (cb_rm_tree_at). Symlinks and other non-directories are never followed nor removed.
 * Returns how many were removed. */
size_t cb_sweep_unlocked_dirs(const char *parent, const char *prefix);

/* printf into a fresh heap string (aborts when memory runs out, as cb/alloc.h). Caller owns
 * return value. */
char *cb_strdup_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2), returns_nonnull));

/* Free a NULL-terminated array of heap strings and the array itself. Accepts NULL. */
void cb_strv_free(char **v);

/* Copy a NULL-terminated array of strings (NULL copies as an empty array). Caller owns return
 * value (free with cb_strv_free). */
char **cb_strv_copy(const char *const *v) __attribute__((returns_nonnull));

/* A NULL-terminated array of heap strings grown one entry at a time: v is always a valid
 * (possibly empty) array after cb_strv_init. */
typedef struct {
    char **v;
    size_t n;
} cb_strv_t;

void cb_strv_init(cb_strv_t *sv);
/* Takes ownership of s. s NULL aborts: it can only come from an allocation that failed. */
void cb_strv_push(cb_strv_t *sv, char *s);
void cb_strv_clear(cb_strv_t *sv);
#define cleanup_strvec __attribute__((cleanup(cb_strv_clear)))

/* A shell variable name: [A-Za-z_][A-Za-z0-9_]*. */
bool cb_env_name_valid(const char *name);

/* getenv, with an empty value counted as unset (as the XDG spec and jupyter_core do). Borrowed;
 * valid until the environment changes. */
const char *cb_getenv(const char *name);

/* Push each entry of a colon-separated list (empty entries skipped; list may be NULL) with
 * suffix appended ("" for none) onto sv. */
void cb_strv_push_path_list(cb_strv_t *sv, const char *list, const char *suffix);

/* Bytes as text fit for JSON and C strings: valid UTF-8 with no NUL. Each byte that is not part
 * of a valid UTF-8 sequence, and each NUL, becomes U+FFFD. *len_out (may be NULL) is the result's
 * length. Caller owns return value. */
char *cb_text_lossy(const char *data, size_t len, size_t *len_out) __attribute__((returns_nonnull));

/* A growable byte buffer, always NUL-terminated when non-empty. Zero-initialise to use. */
typedef struct {
    char *data;
    size_t len;
    size_t cap;
} cb_buf_t;

/* Append n bytes. It cannot fail: memory running out aborts (cb/alloc.h), so no append is ever
 * silently lost. */
void cb_buf_append(cb_buf_t *buf, const void *bytes, size_t n);
/* Empty the buffer, keeping its memory. */
void cb_buf_clear(cb_buf_t *buf);
/* Free the memory; the buffer is empty and reusable after. */
void cb_buf_free(cb_buf_t *buf);
/* A cb_buf_t freed when it goes out of scope: `cleanup_buf cb_buf_t out = {0};` */
#define cleanup_buf __attribute__((cleanup(cb_buf_free)))
/* The contents as a C string ("" when empty). Borrowed; valid until the next change. */
const char *cb_buf_str(const cb_buf_t *buf);
/* Append printf-formatted text, however long. */
void cb_buf_printf(cb_buf_t *buf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The contents as a C string, never NULL; the buffer is empty and reusable after. Caller owns
 * return value. */
char *cb_buf_take(cb_buf_t *buf) __attribute__((returns_nonnull));

#endif
