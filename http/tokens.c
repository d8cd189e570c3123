/* http/tokens.c: tenants' tokens from a tokens file (or a directory of them).
 *
 * Why: one token for everyone means any client can reach any other client's sandboxes. A
 * tokens file names a tenant per token (docs/security.md, "Tenants"), so every request acts
 * for someone. The format, one line per token:
 *
 *     # comment (a line whose first non-blank character is '#')
 *     TENANT TOKEN [admin]
 *
 * TENANT per cb_tenant_name_ok (not "admin" or "local", which are CELLBLOCK_TOKEN's and the
 * CLI's); TOKEN 16-256 printable ASCII characters without blanks (the rule CELLBLOCK_TOKEN
 * follows); "admin" gives the role that reaches every tenant. A malformed line, or a token
 * given twice (in any of the files), is an error naming file:line.
 *
 * The file holds secrets, so, like ssh with a private key, it is refused when group or others
 * may read or write it, when someone other than us (or root) owns it, or when it is a symlink
 * (opened with O_NOFOLLOW, then checked with fstat on the descriptor, so the file checked is
 * the file read). A directory is held to the same rules and every regular file in it not
 * starting with '.' is read, in name order. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "cb/alloc.h"
#include "cb/cleanup.h"
#include "http_private.h"

#define TOKENS_FILE_MAX (1024 * 1024) /* bigger is not a tokens file */
#define TOKENS_DIR_MAX 1024           /* files in a tokens directory */

typedef struct {
    http_tenant_token_t *v;
    size_t n;
    char **where; /* "file:line" of each token, for the duplicate's message */
} s_list_t;

bool http_token_text_ok(const char *token, size_t len)
{
    if (len < 16 || len > 256)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)token[i] <= ' ' || (unsigned char)token[i] >= 0x7f)
            return false;
    return true;
}

/* Refuse a file or directory others may read or write, or that is not ours (or root's). */
static int s_check_owner_mode(const struct stat *st, const char *path, cb_error_t *err)
{
    if (st->st_uid != geteuid() && st->st_uid != 0)
        return cb_error_fail(err, CB_ERR_INVALID,
                             "tokens file '%s' is owned by uid %u, not by us (uid %u) or root",
                             path, (unsigned)st->st_uid, (unsigned)geteuid());
    if (st->st_mode & (S_IRGRP | S_IWGRP | S_IROTH | S_IWOTH))
        return cb_error_fail(err, CB_ERR_INVALID,
                             "tokens file '%s' has mode %04o: group or others may read or write "
                             "it; chmod go-rw '%s'",
                             path, (unsigned)(st->st_mode & 07777), path);
    return 0;
}

/* The open that refuses symlinks, with the reason. */
static int s_open(int dirfd, const char *name, const char *path, cb_error_t *err)
{
    int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0 && errno == ELOOP)
        return cb_error_fail(err, CB_ERR_INVALID, "tokens file '%s' is a symlink: refused", path);
    if (fd < 0)
        return cb_error_make(err, errno, "open tokens file '%s'", path);
    return fd;
}

/* One line: "TENANT TOKEN [admin]", or blank, or a comment. */
static int s_parse_line(char *line, const char *where, s_list_t *list, cb_error_t *err)
{
    static const char blanks[] = " \t\r";
    char *save = NULL;
    char *tenant = strtok_r(line, blanks, &save);
    if (!tenant || tenant[0] == '#')
        return 0;
    char *token = strtok_r(NULL, blanks, &save);
    char *role = token ? strtok_r(NULL, blanks, &save) : NULL;
    char *extra = role ? strtok_r(NULL, blanks, &save) : NULL;
    if (!token || extra || (role && strcmp(role, "admin") != 0))
        return cb_error_fail(err, CB_ERR_INVALID, "%s: expected 'TENANT TOKEN [admin]'", where);
    if (!cb_tenant_name_ok(tenant))
        return cb_error_fail(err, CB_ERR_INVALID,
                             "%s: a tenant's name is 1-%d of A-Z a-z 0-9 . _ -, not starting "
                             "with '.'",
                             where, CB_TENANT_NAME_MAX);
    if (strcmp(tenant, CB_TENANT_ADMIN) == 0 || strcmp(tenant, CB_TENANT_LOCAL) == 0)
        return cb_error_fail(err, CB_ERR_INVALID,
                             "%s: the tenant name '%s' is reserved (CELLBLOCK_TOKEN is '%s', "
                             "the CLI and stdio are '%s')",
                             where, tenant, CB_TENANT_ADMIN, CB_TENANT_LOCAL);
    if (!http_token_text_ok(token, strlen(token)))
        return cb_error_fail(err, CB_ERR_INVALID,
                             "%s: a token is 16 to 256 printable characters without blanks", where);
    for (size_t i = 0; i < list->n; i++)
        if (strcmp(list->v[i].token, token) == 0)
            return cb_error_fail(err, CB_ERR_INVALID, "%s: the same token as %s", where,
                                 list->where[i]);
    list->v = cb_xrealloc(list->v, (list->n + 1) * sizeof(*list->v));
    list->where = cb_xrealloc(list->where, (list->n + 1) * sizeof(*list->where));
    list->v[list->n] = (http_tenant_token_t){
        .token = cb_xstrdup(token), .tenant = cb_xstrdup(tenant), .admin = role != NULL};
    list->where[list->n] = cb_xstrdup(where);
    list->n++;
    return 0;
}

/* Every line of a file's text (len bytes, NUL-terminated after them; changed in place). */
static int s_parse_text(char *text, size_t len, const char *path, s_list_t *list, cb_error_t *err)
{
    if (memchr(text, '\0', len))
        return cb_error_fail(err, CB_ERR_INVALID, "tokens file '%s' holds a NUL byte", path);
    char *line = text;
    for (size_t no = 1; line && *line; no++) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        cleanup_free char *where = cb_strdup_printf("%s:%zu", path, no);
        if (s_parse_line(line, where, list, err) < 0)
            return -1;
        line = nl ? nl + 1 : NULL;
    }
    return 0;
}

static void s_list_free_where(s_list_t *list)
{
    for (size_t i = 0; i < list->n; i++)
        free(list->where[i]);
    free(list->where);
    list->where = NULL;
}

int http_tokens_parse(const char *text, size_t len, const char *name, http_tenant_token_t **tokens,
                      size_t *count, cb_error_t *err)
{
    *tokens = NULL;
    *count = 0;
    char *copy = cb_xmalloc(len + 1);
    memcpy(copy, text, len);
    copy[len] = '\0';
    s_list_t list = {0};
    int rc = s_parse_text(copy, len, name, &list, err);
    OPENSSL_cleanse(copy, len);
    free(copy);
    s_list_free_where(&list);
    if (rc < 0) {
        http_tokens_free(&list.v, list.n);
        return -1;
    }
    *tokens = list.v;
    *count = list.n;
    return 0;
}

/* Read and parse one open file (fd is ours to close). */
static int s_read_file(int fd_in, const char *path, s_list_t *list, cb_error_t *err)
{
    cleanup_close int fd = fd_in;
    struct stat st;
    if (fstat(fd, &st) < 0)
        return cb_error_make(err, errno, "stat tokens file '%s'", path);
    if (!S_ISREG(st.st_mode))
        return cb_error_fail(err, CB_ERR_INVALID, "tokens file '%s' is not a regular file", path);
    if (s_check_owner_mode(&st, path, err) < 0)
        return -1;
    if (st.st_size > TOKENS_FILE_MAX)
        return cb_error_fail(err, CB_ERR_INVALID, "tokens file '%s' is over %d bytes", path,
                             TOKENS_FILE_MAX);
    cleanup_buf cb_buf_t text = {0};
    char chunk[4096];
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return cb_error_make(err, errno, "read tokens file '%s'", path);
        if (n == 0)
            break;
        if (text.len + (size_t)n > TOKENS_FILE_MAX)
            return cb_error_fail(err, CB_ERR_INVALID, "tokens file '%s' is over %d bytes", path,
                                 TOKENS_FILE_MAX);
        cb_buf_append(&text, chunk, (size_t)n);
    }
    OPENSSL_cleanse(chunk, sizeof(chunk));
    int rc = s_parse_text(text.data ? text.data : "", text.len, path, list, err);
    if (text.data)
        OPENSSL_cleanse(text.data, text.len);
    return rc;
}

static int s_name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every regular file of the directory (fd is ours to close), in name order. */
static int s_read_dir(int fd, const char *path, s_list_t *list, cb_error_t *err)
{
    DIR *d = fdopendir(fd); /* takes fd */
    if (!d) {
        close(fd);
        return cb_error_make(err, errno, "read tokens directory '%s'", path);
    }
    cleanup_closedir DIR *dir = d;
    cleanup_strvec cb_strv_t names = {0};
    cb_strv_init(&names);
    struct dirent *e;
    while ((e = readdir(dir))) {
        if (e->d_name[0] == '.')
            continue;
        if (names.n == TOKENS_DIR_MAX)
            return cb_error_fail(err, CB_ERR_INVALID, "tokens directory '%s' has over %d files",
                                 path, TOKENS_DIR_MAX);
        cb_strv_push(&names, cb_xstrdup(e->d_name));
    }
    if (names.n)
        qsort(names.v, names.n, sizeof(char *), s_name_cmp);
    for (size_t i = 0; i < names.n; i++) {
        cleanup_free char *file = cb_strdup_printf("%s/%s", path, names.v[i]);
        int ffd = s_open(dirfd(dir), names.v[i], file, err);
        if (ffd < 0 || s_read_file(ffd, file, list, err) < 0)
            return -1;
    }
    return 0;
}

int http_tokens_load(const char *path, http_tenant_token_t **tokens, size_t *count, cb_error_t *err)
{
    *tokens = NULL;
    *count = 0;
    if (!path || !*path)
        return cb_error_fail(err, CB_ERR_INVALID, "no tokens file named");
    int fd = s_open(AT_FDCWD, path, path, err);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        close(fd);
        return cb_error_make(err, errno, "stat tokens file '%s'", path);
    }
    s_list_t list = {0};
    int rc;
    if (S_ISDIR(st.st_mode)) {
        rc = s_check_owner_mode(&st, path, err);
        if (rc == 0)
            rc = s_read_dir(fd, path, &list, err);
        else
            close(fd);
    } else {
        rc = s_read_file(fd, path, &list, err);
    }
    s_list_free_where(&list);
    if (rc < 0) {
        http_tokens_free(&list.v, list.n);
        return -1;
    }
    *tokens = list.v;
    *count = list.n;
    return 0;
}

void http_tokens_free(http_tenant_token_t **tokens, size_t count)
{
    http_tenant_token_t *v = tokens ? *tokens : NULL;
    if (!v)
        return;
    for (size_t i = 0; i < count; i++) {
        if (v[i].token)
            OPENSSL_cleanse((char *)v[i].token, strlen(v[i].token));
        free((char *)v[i].token);
        free((char *)v[i].tenant);
    }
    free(v);
    *tokens = NULL;
}
