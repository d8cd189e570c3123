/* test_common.c: selftest of common/: errors, log levels, timestamps, file helpers, directories
 * owned by a lock (a forked child stands in for another process). */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cb/cleanup.h"
#include "cb/error.h"
#include "cb/log.h"
#include "cb/tap.h"
#include "cb/util.h"

static int s_fails_with_errno(cb_error_t *err) { return cb_error_make(err, ENOENT, "open '%s'", "x"); }

static bool s_is_dir(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The exit status of a forked child that tries cb_dir_lock(path): 0 when it was refused with
 * CB_ERR_STATE, 1 when it got the lock, 2 on any other failure. */
static int s_child_lock(const char *path)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        cb_error_t err = {0};
        int fd = cb_dir_lock(path, &err);
        _exit(fd >= 0 ? 1 : err.kind == CB_ERR_STATE ? 0 : 2);
    }
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
        return -1;
    return WEXITSTATUS(status);
}

static void s_test_locked_dirs(void)
{
    char dir[] = "/tmp/cb-test-lock-XXXXXX";
    if (!CB_OK(mkdtemp(dir) != NULL, "temp dir for locks"))
        return;
    cb_error_t err = {0};
    cleanup_free char *held = cb_strdup_printf("%s/p-held", dir);
    cleanup_free char *freed = cb_strdup_printf("%s/p-free", dir);
    cleanup_close int fd = cb_dir_create_locked(held, 0700, &err);
    struct stat st;
    CB_OK(fd >= 0 && stat(held, &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 0777) == 0700,
          "cb_dir_create_locked makes a 0700 directory (%s)", fd < 0 ? err.msg : "ok");
    CB_OK(fd >= 0 && (fcntl(fd, F_GETFD) & FD_CLOEXEC), "its fd is close-on-exec");
    cb_error_clear(&err);
    int again = cb_dir_create_locked(held, 0700, &err);
    CB_OK(again < 0 && err.errnum == EEXIST,
          "a second create of the same path fails with EEXIST (%s)", err.msg);
    CB_OK(s_child_lock(held) == 0, "cb_dir_lock in another process: CB_ERR_STATE while it is held");
    cb_error_clear(&err);
    int mine = cb_dir_lock(held, &err);
    CB_OK(mine < 0 && err.kind == CB_ERR_STATE && strstr(err.msg, "in use by another process"),
          "cb_dir_lock through a second fd of the holder fails too (%s)", err.msg);
    CB_OK(cb_dir_lock(freed, &err) < 0 && err.errnum == ENOENT, "cb_dir_lock of a missing dir");

    int f = cb_dir_create_locked(freed, 0755, &err);
    if (f >= 0)
        close(f); /* its owner is gone */
    CB_OK(f >= 0 && s_child_lock(freed) == 1, "once its fd is closed another process may lock it");
    cleanup_free char *temp = cb_strdup_printf("%s/.p-x.new-0123456789abcdef", dir);
    cleanup_free char *other = cb_strdup_printf("%s/q-other", dir);
    cleanup_free char *outside = cb_strdup_printf("%s/q-other/keep", dir);
    cleanup_free char *link = cb_strdup_printf("%s/p-link", dir);
    cleanup_free char *file = cb_strdup_printf("%s/p-file", dir);
    cleanup_free char *inner = cb_strdup_printf("%s/p-free/sub/f", dir);
    cb_mkdir_p(temp, 0700, &err);
    cb_mkdir_p(outside, 0700, &err);
    cb_write_file(file, "x", 1, 0600, &err);
    cb_mkdir_p(inner, 0700, &err); /* something inside to remove */
    if (symlink(other, link) < 0)
        CB_DIAG("symlink: %s", strerror(errno));
    size_t n = cb_sweep_unlocked_dirs(dir, "p-");
    CB_OK(n == 2, "the sweep removed 2 (the free one and the stale temporary; got %zu)", n);
    CB_OK(s_is_dir(held) && !s_is_dir(freed) && !s_is_dir(temp),
          "the held directory stays; the free one and the temporary are gone");
    CB_OK(lstat(link, &st) == 0 && S_ISLNK(st.st_mode) && s_is_dir(outside),
          "a symlink with the prefix is neither followed nor removed");
    CB_OK(lstat(file, &st) == 0 && s_is_dir(other), "a file with the prefix and other names stay");
    CB_OK(cb_sweep_unlocked_dirs("/nonexistent-cb-dir", "p-") == 0, "a missing parent sweeps 0");
    close(fd);
    fd = -1;
    CB_OK(cb_sweep_unlocked_dirs(dir, "p-") == 1 && !s_is_dir(held),
          "after its owner closes the lock, the next sweep removes it");
    CB_OK(cb_rm_rf(dir, &err) == 0, "clean up");
}

int main(void)
{
    cb_error_t err = {0};
    CB_OK(s_fails_with_errno(&err) == -1, "cb_error_make returns -1");
    CB_OK(err.kind == CB_ERR_SYSTEM && err.errnum == ENOENT, "kind and errno recorded");
    CB_OK(strstr(err.msg, "open 'x'") && strstr(err.msg, strerror(ENOENT)), "message: %s", err.msg);
    cb_error_prefix(&err, "loading spec: ");
    CB_OK(strncmp(err.msg, "loading spec: open 'x'", 22) == 0, "prefix prepends: %s", err.msg);
    cb_error_fail(&err, CB_ERR_INVALID, "bad %d", 7);
    CB_OK(err.kind == CB_ERR_INVALID && err.errnum == 0 && strcmp(err.msg, "bad 7") == 0,
          "cb_error_fail sets kind without errno");
    CB_OK(cb_error_kind_jsonrpc_code(CB_ERR_INVALID) == -32602, "INVALID maps to -32602");
    CB_OK(strcmp(cb_error_kind_name(CB_ERR_TIMEOUT), "timed out") == 0, "kind names from the map");
    CB_OK(cb_error_make(NULL, EINVAL, "no error object") == -1, "NULL err is allowed");

    cb_log_level_t level;
    CB_OK(cb_log_level_parse("WARNING", &level) == 0 && level == CB_LOG_WARN, "parse WARNING");
    CB_OK(cb_log_level_parse("loud", &level) == -1, "reject unknown level");

    char when[CB_ISO8601_LEN];
    cb_iso8601_now(when);
    CB_OK(strlen(when) == 27 && when[10] == 'T' && when[26] == 'Z', "ISO 8601 time: %s", when);
    int64_t a = cb_now_us(), b = cb_now_us();
    CB_OK(b >= a, "monotonic clock does not go back");

    char dir[] = "/tmp/cb-test-common-XXXXXX";
    CB_OK(mkdtemp(dir) != NULL, "temp dir");
    cleanup_free char *nested = cb_strdup_printf("%s/a/b/c", dir);
    CB_OK(cb_mkdir_p(nested, 0700, &err) == 0, "mkdir -p");
    cleanup_free char *file = cb_strdup_printf("%s/f.txt", nested);
    CB_OK(cb_write_file(file, "hello", 5, 0600, &err) == 0, "write file");
    struct stat st;
    CB_OK(stat(file, &st) == 0 && (st.st_mode & 0777) == 0600, "file mode is 0600");
    size_t len = 0;
    cleanup_free char *back = cb_read_file(file, 100, &len, &err);
    CB_OK(back && len == 5 && strcmp(back, "hello") == 0, "read back");
    CB_OK(cb_read_file(file, 3, NULL, &err) == NULL && err.kind == CB_ERR_LIMIT,
          "size limit enforced: %s", err.msg);
    CB_OK(cb_rm_rf(dir, &err) == 0 && stat(dir, &st) < 0, "rm -rf removes the tree");
    CB_OK(cb_rm_rf(dir, &err) == 0, "rm -rf of a missing path succeeds");

    const char *words[] = {"a", "bc", NULL};
    char **copy = cb_strv_copy(words);
    CB_OK(copy && strcmp(copy[0], "a") == 0 && strcmp(copy[1], "bc") == 0 && !copy[2],
          "string vector copy");
    cb_strv_free(copy);
    char **empty = cb_strv_copy(NULL);
    CB_OK(empty && !empty[0], "copy of NULL is an empty vector");
    cb_strv_free(empty);
    cb_strv_free(NULL);

    cb_buf_t buf = {0};
    CB_OK(strcmp(cb_buf_str(&buf), "") == 0, "empty buffer reads as \"\"");
    for (int i = 0; i < 1000; i++)
        cb_buf_append(&buf, "abc", 3);
    CB_OK(buf.len == 3000 && strlen(cb_buf_str(&buf)) == 3000, "buffer grows and stays terminated");
    cb_buf_clear(&buf);
    CB_OK(buf.len == 0 && strcmp(cb_buf_str(&buf), "") == 0, "clear empties");
    cb_buf_free(&buf);

    s_test_locked_dirs();
    return cb_tap_done();
}
