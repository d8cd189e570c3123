/* files.c: envd's /files, the SDKs' files.read and files.write, onto the engine's workspace file
 * calls (kg_sandbox_file_read / _write: paths as the sandbox resolves them, nothing outside
 * /home/user, no final symlink followed, no FIFO opened blocking).
 *
 *   GET  /files?path=P[&username=U]   the file's bytes, application/octet-stream, with its
 *                                     Content-Length; 404 in E2B's error shape when missing;
 *   POST /files[?path=P]              multipart/form-data, one or more "file" parts (each to P,
 *                                     or when P is absent to the part's filename: what the SDK
 *                                     sends for several files), or any other body as the bytes
 *                                     of P (application/octet-stream, envd >= 0.5.7); answers
 *                                     [{name, type: "file", path}] for what was written.
 *
 * Bodies are whole when we see them (the HTTP server holds them, up to its max_body_bytes, and
 * answers 413 above that), so the multipart reader works on memory. Why our own reader: no
 * well-kept multipart library for C is in Debian, and libwebsockets' (lws_spa) parses on the
 * server thread as the body arrives, against a live wsi that this side of the server never
 * has. It is small and bounded (parts, header sizes; memmem over the body, so linear), and
 * fuzzed (fuzz/fuzz_multipart.c). A gzip Content-Encoding is refused (415): we link no zlib.
 *
 * Signed URLs (the SDKs' downloadUrl / uploadUrl: ?signature=&signature_expiration=) are not
 * accepted in place of a token: the HTTP server checks the token before any handler runs.
 */
#include <string.h>

#include "cb/alloc.h"
#include "cb/cleanup.h"
#include "e2b_private.h"

#define S_MAX_PARTS 1000
#define S_MAX_PART_HEAD 8192
#define S_MAX_BOUNDARY 200
#define S_MAX_DOWNLOAD (128u * 1024 * 1024) /* held whole in memory, twice over for a moment */

/* ---- multipart/form-data -------------------------------------------------------------------- */

/* The value of parameter name in a header value ("form-data; name=\"file\"; filename=x"),
 * unquoted and with the escapes browsers use in filenames decoded; NULL when absent or when it
 * holds a NUL byte. Caller owns return value. */
static char *s_param(const char *value, size_t len, const char *name)
{
    size_t nlen = strlen(name);
    const char *end = value + len;
    for (const char *p = value; p < end;) {
        const char *semi = memchr(p, ';', (size_t)(end - p));
        if (!semi)
            return NULL;
        p = semi + 1;
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        if ((size_t)(end - p) <= nlen || strncasecmp(p, name, nlen) != 0 || p[nlen] != '=')
            continue;
        p += nlen + 1;
        cb_buf_t out = {0};
        bool quoted = p < end && *p == '"';
        if (quoted)
            p++;
        for (; p < end; p++) {
            if (quoted ? *p == '"' : (*p == ';' || *p == ' ' || *p == '\t'))
                break;
            if (quoted && *p == '\\' && p + 1 < end)
                p++;
            if (*p == '%' && end - p >= 3 &&
                (!strncasecmp(p, "%22", 3) || !strncasecmp(p, "%0D", 3) ||
                 !strncasecmp(p, "%0A", 3))) {
                char c = p[2] == '2' ? '"' : (p[2] == 'D' || p[2] == 'd') ? '\r' : '\n';
                cb_buf_append(&out, &c, 1);
                p += 2;
                continue;
            }
            if (*p == '\0') { /* a value holding a NUL would be cut short: it is no value */
                cb_buf_free(&out);
                return NULL;
            }
            cb_buf_append(&out, p, 1);
        }
        return cb_buf_take(&out);
    }
    return NULL;
}

/* The Content-Disposition header of a part's head (head..end), or NULL; *vlen its length. */
static const char *s_disposition(const char *head, const char *end, size_t *vlen)
{
    static const char key[] = "content-disposition:";
    for (const char *line = head; line < end;) {
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        const char *next = eol ? eol + 1 : end;
        size_t n = (size_t)((eol ? eol : end) - line);
        if (n && line[n - 1] == '\r')
            n--;
        if (n > sizeof key - 1 && strncasecmp(line, key, sizeof key - 1) == 0) {
            const char *v = line + sizeof key - 1;
            *vlen = n - (sizeof key - 1);
            return v;
        }
        line = next;
    }
    return NULL;
}

int e2b_multipart_parse(const char *content_type, const char *body, size_t len, e2b_part_fn *fn,
                        void *arg, cb_error_t *err)
{
    cleanup_free char *boundary =
        content_type ? s_param(content_type, strlen(content_type), "boundary") : NULL;
    size_t blen = boundary ? strlen(boundary) : 0;
    if (blen == 0 || blen > S_MAX_BOUNDARY)
        return cb_error_fail(err, CB_ERR_BAD_REQUEST,
                             "multipart/form-data needs a boundary parameter of 1 to %d bytes",
                             S_MAX_BOUNDARY);
    /* Every delimiter but the first is CRLF "--" boundary; the first may start the body. */
    cleanup_free char *delim = cb_strdup_printf("\r\n--%s", boundary);
    size_t dlen = blen + 4;
    const char *end = body + len;
    const char *p = NULL;
    if (len >= dlen - 2 && memcmp(body, delim + 2, dlen - 2) == 0)
        p = body + dlen - 2;
    else {
        const char *d = memmem(body, len, delim, dlen);
        if (d)
            p = d + dlen;
    }
    if (!p)
        return cb_error_fail(err, CB_ERR_BAD_REQUEST, "multipart body: no boundary line");
    for (int parts = 0;; parts++) {
        /* After a delimiter: "--" ends the body; else optional spaces, then CRLF. */
        if (end - p >= 2 && p[0] == '-' && p[1] == '-')
            return 0;
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        if (end - p < 2 || p[0] != '\r' || p[1] != '\n')
            return cb_error_fail(err, CB_ERR_BAD_REQUEST,
                                 "multipart body: a boundary line does not end in CRLF (or the "
                                 "body ends before its closing boundary)");
        p += 2;
        if (parts == S_MAX_PARTS)
            return cb_error_fail(err, CB_ERR_BAD_REQUEST, "multipart body: more than %d parts",
                                 S_MAX_PARTS);
        size_t room = (size_t)(end - p);
        const char *head_end =
            memmem(p, room < S_MAX_PART_HEAD ? room : S_MAX_PART_HEAD, "\r\n\r\n", 4);
        const char *data;
        if (room >= 2 && p[0] == '\r' && p[1] == '\n') { /* a part with no headers */
            head_end = p;
            data = p + 2;
        } else if (!head_end) {
            return cb_error_fail(err, CB_ERR_BAD_REQUEST,
                                 "multipart body: a part's headers do not end within %d bytes",
                                 S_MAX_PART_HEAD);
        } else {
            data = head_end + 4;
        }
        const char *next = memmem(data, (size_t)(end - data), delim, dlen);
        if (!next)
            return cb_error_fail(err, CB_ERR_BAD_REQUEST,
                                 "multipart body: a part has no closing boundary (cut short?)");
        size_t vlen = 0;
        const char *disp = s_disposition(p, head_end, &vlen);
        cleanup_free char *name = disp ? s_param(disp, vlen, "name") : NULL;
        cleanup_free char *filename = disp ? s_param(disp, vlen, "filename") : NULL;
        if (fn(name ? name : "", filename, data, (size_t)(next - data), arg, err) < 0)
            return -1;
        p = next + dlen;
    }
}

/* ---- GET ------------------------------------------------------------------------------------ */

static bool s_user_ok(http_request_t *req)
{
    const char *user = http_request_query(req, "username");
    return !user || !*user || strcmp(user, "user") == 0 || strcmp(user, "root") == 0;
}

/* A failure as envd answers one: 404 for not found, 400 for the rest that is the caller's. */
static void s_fail(http_request_t *req, const cb_error_t *err)
{
    int status = err->kind == CB_ERR_NOT_FOUND                                    ? 404
                 : err->kind == CB_ERR_INVALID || err->kind == CB_ERR_BAD_REQUEST ? 400
                 : err->kind == CB_ERR_LIMIT                                      ? 507
                 : err->kind == CB_ERR_TOO_LARGE                                  ? 413
                                                                                  : 500;
    e2b_respond_error(req, status, err->msg);
}

static void s_download(e2b_sandbox_t *sb, http_request_t *req)
{
    const char *path = http_request_query(req, "path");
    if (!path || !*path)
        return e2b_respond_error(req, 400, "the path query parameter names the file to read");
    cleanup_buf cb_buf_t buf = {0};
    cb_error_t err = {0};
    if (kg_sandbox_file_read(sb->kg, path, S_MAX_DOWNLOAD, &buf, &err) < 0)
        return s_fail(req, &err);
    cleanup_free char *abs = e2b_fs_abs_path(path);
    const char *base = strrchr(abs, '/') ? strrchr(abs, '/') + 1 : abs;
    /* The filename shown for a download; characters that would break the header are left out. */
    cb_buf_t name = {0};
    for (const char *c = base; *c; c++)
        if (*c != '"' && *c != '\\' && (unsigned char)*c >= 0x20 && *c != 0x7f)
            cb_buf_append(&name, c, 1);
    cleanup_free char *shown = cb_buf_take(&name);
    cleanup_free char *disposition = cb_strdup_printf("inline; filename=\"%s\"", shown);
    http_respond(req, 200, "application/octet-stream",
                 (const char *[]){"Content-Disposition", disposition, NULL}, buf.data, buf.len);
}

/* ---- POST ----------------------------------------------------------------------------------- */

typedef struct {
    e2b_sandbox_t *sb;
    const char *path; /* the query's, or NULL */
    json_t *written;
} s_upload_t;

static int s_write_one(s_upload_t *up, const char *path, const char *data, size_t len,
                       cb_error_t *err)
{
    if (!path || !*path)
        return cb_error_fail(err, CB_ERR_INVALID,
                             "no path for a file: give ?path= or the part's filename");
    if (kg_sandbox_file_write(up->sb->kg, path, data, len, true, err) < 0)
        return -1;
    cleanup_free char *abs = e2b_fs_abs_path(path);
    const char *base = strrchr(abs, '/') ? strrchr(abs, '/') + 1 : abs;
    json_t *entry = json_pack("{s:s, s:s, s:s}", "name", base, "type", "file", "path", abs);
    if (entry)
        json_array_append_new(up->written, entry);
    return 0;
}

static int s_on_part(const char *name, const char *filename, const char *data, size_t len,
                     void *arg, cb_error_t *err)
{
    if (strcmp(name, "file") != 0)
        return 0; /* envd reads "file" parts only */
    s_upload_t *up = arg;
    return s_write_one(up, up->path ? up->path : filename, data, len, err);
}

static void s_upload(e2b_sandbox_t *sb, http_request_t *req)
{
    const char *enc = http_request_header(req, "Content-Encoding");
    if (enc && *enc && strcasecmp(enc, "identity") != 0)
        return e2b_respond_error(req, 415,
                                 "Content-Encoding is not supported here (cellblock takes "
                                 "uncompressed uploads): write without gzip");
    const char *path = http_request_query(req, "path");
    json_auto_t *written = json_array();
    s_upload_t up = {.sb = sb, .path = path && *path ? path : NULL, .written = written};
    size_t len = 0;
    const char *body = http_request_body(req, &len);
    const char *ct = http_request_header(req, "Content-Type");
    cb_error_t err = {0};
    int rc;
    if (ct && strncasecmp(ct, "multipart/form-data", 19) == 0) {
        rc = e2b_multipart_parse(ct, body, len, s_on_part, &up, &err);
        if (rc == 0 && json_array_size(written) == 0)
            rc = cb_error_fail(&err, CB_ERR_BAD_REQUEST,
                               "the multipart body has no part named \"file\"");
    } else {
        rc = s_write_one(&up, up.path, body, len, &err);
    }
    if (rc < 0)
        return s_fail(req, &err);
    http_respond_json(req, 200, written, NULL);
}

void e2b_files_handle(e2b_sandbox_t *sb, http_request_t *req)
{
    const char *method = http_request_method(req);
    if (!s_user_ok(req))
        return e2b_respond_error(req, 400,
                                 "username: the sandbox has one user here, \"user\" (its home and "
                                 "workspace is /home/user)");
    if (strcmp(method, "GET") == 0)
        return s_download(sb, req);
    if (strcmp(method, "POST") == 0)
        return s_upload(sb, req);
    e2b_respond_error(req, 405, "/files takes GET (read a file) and POST (write files)");
}
