/* test_common.c: selftest of common/: errors, log levels, timestamps, file helpers, directories
 * owned by a lock (a forked child stands in for another process). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
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

static int s_fails_with_errno(cb_error_t *err)
{
    return cb_error_make(err, ENOENT, "open '%s'", "x");
}

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

/* A canary directory with files, outside every tree we remove. */
static bool s_canary_whole(const char *canary, int files)
{
    for (int i = 0; i < files; i++) {
        char path[PATH_MAX];
        struct stat st;
        snprintf(path, sizeof path, "%s/f%d", canary, i);
        if (stat(path, &st) < 0)
            return false;
    }
    return true;
}

static void s_make_canary(const char *canary, int files)
{
    cb_error_t err = {0};
    cb_mkdir_p(canary, 0700, &err);
    for (int i = 0; i < files; i++) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/f%d", canary, i);
        cb_write_file(path, "keep", 4, 0600, &err);
    }
}

/* A tree under root: dirs a/b/c with files, symlinks to the canary (a directory link, a file
 * link, a relative ../ link), a FIFO, a socket-like name. */
static void s_make_tree(const char *root, const char *canary)
{
    cb_error_t err = {0};
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/a/b/c", root);
    cb_mkdir_p(path, 0700, &err);
    for (int i = 0; i < 50; i++) { /* the canary's names: a removal by path hits them */
        snprintf(path, sizeof path, "%s/a/b/f%d", root, i);
        cb_write_file(path, "x", 1, 0600, &err);
    }
    snprintf(path, sizeof path, "%s/a/to-canary", root);
    if (symlink(canary, path) < 0)
        CB_DIAG("symlink: %s", strerror(errno));
    snprintf(path, sizeof path, "%s/a/b/c/file-link", root);
    char target[PATH_MAX];
    snprintf(target, sizeof target, "%s/f0", canary);
    if (symlink(target, path) < 0)
        CB_DIAG("symlink: %s", strerror(errno));
    snprintf(path, sizeof path, "%s/a/b/up", root);
    if (symlink("../../..", path) < 0)
        CB_DIAG("symlink: %s", strerror(errno));
    snprintf(path, sizeof path, "%s/a/fifo", root);
    if (mkfifo(path, 0600) < 0)
        CB_DIAG("mkfifo: %s", strerror(errno));
}

/* Keep swapping root/a/b: a real directory one moment, a symlink to the canary the next, until
 * the stop file appears. Runs in a forked child. */
static void __attribute__((noreturn)) s_swapper(const char *root, const char *canary)
{
    char b[PATH_MAX], aside[PATH_MAX], stop[PATH_MAX];
    snprintf(b, sizeof b, "%s/a/b", root);
    snprintf(aside, sizeof aside, "%s/a/b-aside", root);
    snprintf(stop, sizeof stop, "%s.stop", root);
    for (long i = 0; access(stop, F_OK) < 0 && i < 50000000; i++) {
        if (rename(b, aside) == 0) {
            if (symlink(canary, b) == 0) {
                for (volatile int spin = 0; spin < 2000; spin++) {
                }
                unlink(b);
            }
            rename(aside, b);
        } else {
            mkdir(aside, 0700);
            symlink(canary, b);
            unlink(b);
        }
    }
    _exit(0);
}

static void s_test_rm_tree(void)
{
    char dir[] = "/tmp/cb-test-rm-XXXXXX";
    if (!CB_OK(mkdtemp(dir) != NULL, "temp dir for removals"))
        return;
    cb_error_t err = {0};
    cleanup_free char *canary = cb_strdup_printf("%s/canary", dir);
    cleanup_free char *root = cb_strdup_printf("%s/tree", dir);
    s_make_canary(canary, 50);

    /* Symlinks (to a directory, a file, upwards) and a FIFO: removed themselves, never followed,
     * never opened. */
    s_make_tree(root, canary);
    CB_OK(cb_rm_rf(root, &err) == 0,
          "cb_rm_rf removes a tree of dirs, files, symlinks and a FIFO (%s)", err.msg);
    struct stat st;
    CB_OK(lstat(root, &st) < 0 && errno == ENOENT, "the tree is gone");
    CB_OK(s_canary_whole(canary, 50), "nothing a symlink in it pointed at was touched");

    /* The top itself a symlink: it goes, its target stays. */
    if (symlink(canary, root) < 0)
        CB_DIAG("symlink: %s", strerror(errno));
    CB_OK(cb_rm_rf(root, &err) == 0 && lstat(root, &st) < 0 && s_canary_whole(canary, 50),
          "a symlink given as the tree is unlinked, its target kept");
    if (mkfifo(root, 0600) < 0)
        CB_DIAG("mkfifo: %s", strerror(errno));
    cleanup_close int dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    CB_OK(cb_rm_tree_at(dirfd, "tree", &err) == 0 && lstat(root, &st) < 0,
          "a FIFO given as the tree is unlinked without blocking");

    /* Deeper than the fds a walk may hold: 400 levels. */
    if (mkdir(root, 0700) == 0) {
        cleanup_close int at = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        for (int i = 0; i < 400 && at >= 0; i++) {
            int next = -1;
            if (mkdirat(at, "d", 0700) == 0)
                next = openat(at, "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            int f = openat(at, "f", O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
            if (f >= 0)
                close(f);
            close(at);
            at = next;
        }
    }
    cb_error_clear(&err);
    CB_OK(cb_rm_rf(root, &err) == 0 && lstat(root, &st) < 0,
          "a tree 400 levels deep is removed (%s)", err.msg);

    /* Another process swaps a subdirectory for a symlink to the canary while we remove. */
    int survived = 1;
    for (int round = 0; round < 20; round++) {
        s_make_tree(root, canary);
        cleanup_free char *stop = cb_strdup_printf("%s.stop", root);
        unlink(stop);
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0)
            s_swapper(root, canary);
        for (int i = 0; i < 3; i++) /* a few removals while it swaps: each may leave some */
            cb_rm_rf(root, NULL);
        cb_write_file(stop, "", 0, 0600, NULL);
        waitpid(pid, NULL, 0);
        cb_rm_rf(root, NULL);
        unlink(stop);
        survived &= s_canary_whole(canary, 50);
    }
    CB_OK(survived, "20 rounds of removal under a swapping process left the canary whole");
    CB_OK(lstat(root, &st) < 0, "and the tree is gone once the swapping stops");

    /* Writing beside what another process planted. */
    cleanup_free char *target = cb_strdup_printf("%s/f1", canary);
    cleanup_free char *link = cb_strdup_printf("%s/conn.json", dir);
    if (symlink(target, link) < 0)
        CB_DIAG("symlink: %s", strerror(errno));
    CB_OK(cb_write_new_at(dirfd, "conn.json", "new", 3, 0600, &err) == 0 && lstat(link, &st) == 0 &&
              S_ISREG(st.st_mode) && st.st_size == 3,
          "cb_write_new_at replaces a planted symlink by a new file (%s)", err.msg);
    cleanup_free char *kept = cb_read_file(target, 100, NULL, &err);
    CB_OK(kept && strcmp(kept, "keep") == 0, "and its target keeps its content");
    unlink(link);
    if (mkfifo(link, 0600) < 0)
        CB_DIAG("mkfifo: %s", strerror(errno));
    CB_OK(cb_write_new_at(dirfd, "conn.json", "new", 3, 0600, &err) == 0 && lstat(link, &st) == 0 &&
              S_ISREG(st.st_mode),
          "a planted FIFO is replaced without blocking");
    unlink(link);
    if (symlink(target, link) < 0)
        CB_DIAG("symlink: %s", strerror(errno));
    CB_OK(cb_write_file_at(dirfd, "conn.json", "atomic", 6, 0600, &err) == 0 &&
              lstat(link, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 6,
          "cb_write_file_at renames over a planted symlink (%s)", err.msg);
    cleanup_free char *kept2 = cb_read_file(target, 100, NULL, &err);
    CB_OK(kept2 && strcmp(kept2, "keep") == 0, "its target is untouched");
    unlink(link);
    if (symlink(canary, link) < 0)
        CB_DIAG("symlink: %s", strerror(errno));
    errno = 0;
    int through = cb_openat_beneath(dirfd, "conn.json/f2", O_RDONLY, 0);
    CB_OK(through < 0 && errno == ELOOP,
          "cb_openat_beneath refuses a path through a symlink (errno %d)", errno);
    if (through >= 0)
        close(through);
    CB_OK(cb_rm_rf(dir, &err) == 0, "clean up");
}

/* The one table every edge reads (cb/error.h): the codes and statuses clients already see. */
static void s_error_table(void)
{
    static const struct {
        cb_error_kind_t kind;
        int code, status;
    } want[] = {
        {CB_ERR_INVALID, -32602, 400},      {CB_ERR_NOT_FOUND, -32602, 404},
        {CB_ERR_LIMIT, -32603, 503},        {CB_ERR_STATE, -32603, 409},
        {CB_ERR_KERNEL_DEAD, -32603, 409},  {CB_ERR_SYSTEM, -32603, 500},
        {CB_ERR_TIMEOUT, -32603, 500},      {CB_ERR_PARSE, -32700, 400},
        {CB_ERR_BAD_REQUEST, -32600, 400},  {CB_ERR_NO_METHOD, -32601, 404},
        {CB_ERR_TRANSPORT, -32000, 400},    {CB_ERR_NO_SESSION, -32001, 404},
        {CB_ERR_TOO_LARGE, -32600, 413},    {CB_ERR_BAD_METHOD, -32000, 405},
        {CB_ERR_UNAUTHORIZED, -32000, 401}, {CB_ERR_FORBIDDEN, -32000, 403},
        {CB_ERR_UNAVAILABLE, -32603, 501},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        char name[80];
        snprintf(name, sizeof name, "%s: JSON-RPC code", cb_error_kind_name(want[i].kind));
        CB_EQ_INT(cb_error_kind_jsonrpc_code(want[i].kind), want[i].code, name);
        snprintf(name, sizeof name, "%s: HTTP status", cb_error_kind_name(want[i].kind));
        CB_EQ_INT(cb_error_kind_http_status(want[i].kind), want[i].status, name);
    }
    cb_error_t none = {0};
    CB_EQ_INT(cb_error_http_status(&none), 500, "a failure left at OK reads as internal (HTTP)");
    CB_EQ_INT(cb_error_jsonrpc_code(NULL), -32603, "no error object reads as internal (JSON-RPC)");
    CB_EQ_STR(cb_error_kind_name((cb_error_kind_t)999), "unknown error",
              "a kind outside the table");
    CB_EQ_INT(cb_error_kind_http_status((cb_error_kind_t)999), 500, "... is internal over HTTP");
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
    s_error_table();

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
    cb_buf_printf(&buf, "%s-%d", "x", 42);
    char wide[600];
    memset(wide, 'w', sizeof wide - 1);
    wide[sizeof wide - 1] = '\0';
    cb_buf_printf(&buf, "[%s]", wide); /* longer than the first allocation */
    CB_EQ_SIZE(buf.len, 4 + 601, "printf appends, however long");
    CB_OK(strncmp(cb_buf_str(&buf), "x-42[www", 8) == 0 && buf.data[buf.len - 1] == ']',
          "... the formatted text, in order");
    char *taken = cb_buf_take(&buf);
    CB_OK(strlen(taken) == 605 && buf.len == 0 && !buf.data, "take hands the text out and empties");
    free(taken);
    taken = cb_buf_take(&buf);
    CB_EQ_STR(taken, "", "take of an empty buffer is \"\", never NULL");
    free(taken);
    cb_buf_free(&buf);

    cleanup_strvec cb_strv_t sv = {0};
    cb_strv_init(&sv);
    CB_EQ_SIZE(sv.n, 0, "a new string vector is empty");
    CB_OK(sv.v && !sv.v[0], "... and NULL-terminated");
    for (int i = 0; i < 100; i++)
        cb_strv_push(&sv, cb_strdup_printf("s%d", i));
    CB_EQ_SIZE(sv.n, 100, "pushes grow it");
    CB_EQ_STR(sv.v[99], "s99", "the last push is last");
    CB_OK(!sv.v[100], "still NULL-terminated");

    size_t lossy_len = 0;
    cleanup_free char *lossy = cb_text_lossy("a\0b\xff", 4, &lossy_len);
    CB_EQ_STR(lossy,
              "a\xEF\xBF\xBD"
              "b\xEF\xBF\xBD",
              "NUL and a stray byte become U+FFFD");
    CB_EQ_SIZE(lossy_len, 8, "its length");
    cleanup_free char *lossy_empty = cb_text_lossy(NULL, 0, NULL);
    CB_EQ_STR(lossy_empty, "", "nothing is \"\", never NULL");

    s_test_locked_dirs();
    s_test_rm_tree();
    return cb_tap_done();
}
