/* test_common.c: selftest of common/: errors, log levels, timestamps, file helpers. */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "cb/cleanup.h"
#include "cb/error.h"
#include "cb/log.h"
#include "cb/tap.h"
#include "cb/util.h"

static int s_fails_with_errno(cb_error_t *err) { return cb_error_make(err, ENOENT, "open '%s'", "x"); }

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
    return cb_tap_done();
}
