/* resources.c: MCP resources, so that every cellblock:// URI a result mentions can be read.
 *
 * Why: results point at files (saved long outputs, uploads, exported notebooks) and rich
 * results by URI; a client reads them with resources/read instead of another tool call. The
 * URIs (docs/mcp-tools.md, "Resources"):
 *
 *   cellblock://sandbox/{id}/files/{path}                      a workspace file (under /home/user)
 *   cellblock://sandbox/{id}/execution/{xid}/result-{n}.{ext}  a rich result, while its job is kept
 *   cellblock://sandbox/{id}/session/{session_id}/notebook.ipynb  a session's cells (nbformat 4)
 *   cellblock://sandbox/{id}/audit                             that sandbox's audit records
 *   cellblock://audit                                          the caller's tenant's audit records
 *
 * How: every URI is parsed here and goes through the same tests as the tools: a sandbox by
 * mcp_sandbox_get, a session by mcp_repl_find, a job by its sandbox; files only through the
 * engine's file API (kg_sandbox_file_*: no link followed, nothing outside the workspace). An
 * unknown URI, and one of a sandbox the session may not reach, get the same JSON-RPC error:
 * -32002 "Resource not found" with the uri in data. Audit records are read with the caller's
 * tenant as the filter (admins: every tenant's), so a sandbox id of another tenant reads as an
 * empty list, exactly as an unknown one.
 *
 * resources/list is bounded: per visible sandbox, its top-level workspace files, its saved
 * outputs, each jupyter session's notebook and its audit URI (at most S_LIST_PER_SANDBOX), then
 * cellblock://audit; pages of S_PAGE with a cursor (the next index, as text).
 */
#include <stdlib.h>
#include <string.h>

#include "cb/cleanup.h"
#include "mcp_private.h"
#include "kg/sandbox.h"

#define S_PREFIX "cellblock://"
#define S_HOME "/home/user"
#define S_PAGE 100
#define S_LIST_PER_SANDBOX 200
#define S_READ_MAX (4u << 20) /* bytes of a file one resources/read returns */
#define S_NOT_FOUND (-32002)  /* MCP: "Resource not found" */

/* ---- URIs ----------------------------------------------------------------------------------- */

static bool s_unreserved(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

/* Percent-encode a workspace path ('/' kept). Caller owns return value. */
static char *s_encode_path(const char *path)
{
    static const char hex[] = "0123456789ABCDEF";
    char *out = cb_xmalloc(strlen(path) * 3 + 1), *o = out;
    for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
        if (s_unreserved(*p) || *p == '/') {
            *o++ = (char)*p;
        } else {
            *o++ = '%';
            *o++ = hex[*p >> 4];
            *o++ = hex[*p & 15];
        }
    }
    *o = '\0';
    return out;
}

static int s_hex(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* Percent-decode; NULL when malformed or when it would hold a NUL. Caller owns return value. */
static char *s_decode(const char *text)
{
    char *out = cb_xmalloc(strlen(text) + 1), *o = out;
    for (const char *p = text; *p; p++) {
        if (*p != '%') {
            *o++ = *p;
            continue;
        }
        int hi = s_hex(p[1]), lo = hi < 0 ? -1 : s_hex(p[2]);
        if (lo < 0 || (hi == 0 && lo == 0)) {
            free(out);
            return NULL;
        }
        *o++ = (char)(hi * 16 + lo);
        p += 2;
    }
    *o = '\0';
    return out;
}

/* A workspace path relative to /home/user ("" for the workspace itself), or NULL for a path
 * elsewhere. Borrowed from path. */
static const char *s_relative(const char *path)
{
    if (path[0] != '/')
        return path;
    size_t n = strlen(S_HOME);
    if (strncmp(path, S_HOME, n) != 0 || (path[n] != '/' && path[n] != '\0'))
        return NULL;
    return path[n] ? path + n + 1 : path + n;
}

static char *s_file_uri(const char *sandbox_id, const char *path)
{
    const char *rel = s_relative(path);
    cleanup_free char *enc = s_encode_path(rel ? rel : path);
    return cb_strdup_printf(S_PREFIX "sandbox/%s/files/%s", sandbox_id, enc);
}

json_t *mcp_resource_link(mcp_sandbox_t *sb, const char *path, const char *mime)
{
    cleanup_free char *uri = s_file_uri(sb->id, path);
    const char *slash = strrchr(path, '/');
    const char *name = slash && slash[1] ? slash + 1 : path;
    return json_pack("{s:s, s:s, s:s, s:s}", "type", "resource_link", "uri", uri, "name", name,
                     "mimeType", mime ? mime : mcp_mime_of(path));
}

/* ---- answers -------------------------------------------------------------------------------- */

static void s_not_found(mcp_session_t *s, json_t *id, const char *uri)
{
    mcp_session_error_data(s, id, S_NOT_FOUND, "Resource not found",
                           json_pack("{s:s}", "uri", uri));
}

/* {contents: [one]} with text, or a base64 blob when the bytes are not UTF-8 text. */
static json_t *s_contents(const char *uri, const char *mime, const char *data, size_t len)
{
    json_t *probe = json_stringn(data, len); /* NULL when not UTF-8 */
    bool text = probe && !memchr(data, '\0', len);
    json_decref(probe);
    json_t *item = json_pack("{s:s, s:s}", "uri", uri, "mimeType", mime);
    if (!item)
        return NULL;
    if (text) {
        json_object_set_new(item, "text", json_stringn(data, len));
    } else {
        zarmour_t *armour = zarmour_new();
        zarmour_set_line_breaks(armour, false);
        char *b64 = len ? zarmour_encode(armour, (const byte *)data, len) : cb_xstrdup("");
        zarmour_destroy(&armour);
        json_object_set_new(item, "blob", json_string(b64 ? b64 : ""));
        free(b64);
    }
    return json_pack("{s:[o]}", "contents", item);
}

static void s_read_file(mcp_session_t *s, json_t *id, const char *uri, mcp_sandbox_t *sb,
                        const char *encoded)
{
    cleanup_free char *rel = s_decode(encoded);
    if (!rel || !rel[0])
        return s_not_found(s, id, uri);
    cb_buf_t buf = {0};
    uint64_t size = 0;
    cb_error_t err = {0};
    cleanup_free char *path = cb_strdup_printf(S_HOME "/%s", rel);
    if (kg_sandbox_file_read_range(sb->kg, path, 0, S_READ_MAX, &buf, &size, &err) < 0) {
        cb_buf_free(&buf);
        /* missing, a directory, a link, a FIFO...: not a resource */
        return mcp_session_error_data(s, id, S_NOT_FOUND, "Resource not found",
                                      json_pack("{s:s, s:s}", "uri", uri, "reason", err.msg));
    }
    if (size > buf.len) {
        cb_buf_free(&buf);
        cleanup_free char *msg = cb_strdup_printf(
            "%s is %llu bytes, more than the %u resources/read returns; file_download reads it "
            "in parts (offset, max_bytes)",
            path, (unsigned long long)size, S_READ_MAX);
        return mcp_session_error_data(s, id, -32603, msg, json_pack("{s:s}", "uri", uri));
    }
    json_t *result = s_contents(uri, mcp_mime_of(path), buf.data ? buf.data : "", buf.len);
    cb_buf_free(&buf);
    if (!result)
        return s_not_found(s, id, uri);
    mcp_session_reply(s, id, result);
}

static void s_read_audit(mcp_session_t *s, json_t *id, const char *uri, const char *sandbox_id)
{
    fleet_audit_query_t q = {
        .tenant = s->who.admin ? NULL : s->who.tenant,
        .sandbox_id = sandbox_id,
    };
    cb_error_t err = {0};
    json_auto_t *records = fleet_audit_read(fleet_state_dir(s->server->fleet), &q, &err);
    cleanup_free char *text = records ? json_dumps(records, JSON_INDENT(1)) : NULL;
    if (!text)
        return mcp_session_error_data(s, id, -32603, err.msg[0] ? err.msg : "no audit records",
                                      json_pack("{s:s}", "uri", uri));
    mcp_session_reply(s, id, s_contents(uri, "application/json", text, strlen(text)));
}

static void s_read_notebook(mcp_session_t *s, json_t *id, const char *uri, mcp_sandbox_t *sb,
                            const char *repl_id)
{
    mcp_repl_t *repl = mcp_repl_find(s->server, s, repl_id, NULL);
    if (!repl || repl->sandbox != sb)
        return s_not_found(s, id, uri);
    cb_error_t err = {0};
    json_auto_t *nb = mcp_repl_notebook(repl, &err);
    cleanup_free char *text = nb ? json_dumps(nb, JSON_INDENT(1)) : NULL;
    if (!text)
        return mcp_session_error_data(s, id, S_NOT_FOUND, "Resource not found",
                                      json_pack("{s:s, s:s}", "uri", uri, "reason", err.msg));
    mcp_session_reply(s, id, s_contents(uri, "application/x-ipynb+json", text, strlen(text)));
}

void mcp_resources_read(mcp_session_t *s, json_t *id, json_t *params)
{
    const char *uri = json_string_value(json_object_get(params, "uri"));
    if (!uri)
        return mcp_session_error_data(s, id, -32602, "resources/read needs params.uri (a string)",
                                      NULL);
    if (strlen(uri) > 8192 || strncmp(uri, S_PREFIX, strlen(S_PREFIX)) != 0)
        return s_not_found(s, id, uri);
    const char *rest = uri + strlen(S_PREFIX);
    if (strcmp(rest, "audit") == 0)
        return s_read_audit(s, id, uri, NULL);
    char sandbox_id[37];
    size_t n = strlen("sandbox/");
    const char *slash = strncmp(rest, "sandbox/", n) == 0 ? strchr(rest + n, '/') : NULL;
    if (!slash || (size_t)(slash - (rest + n)) >= sizeof sandbox_id)
        return s_not_found(s, id, uri);
    snprintf(sandbox_id, sizeof sandbox_id, "%.*s", (int)(slash - (rest + n)), rest + n);
    const char *what = slash + 1;
    if (strcmp(what, "audit") == 0)
        return s_read_audit(s, id, uri, sandbox_id); /* filtered by tenant: no test needed */
    mcp_sandbox_t *sb = mcp_sandbox_get(s, sandbox_id);
    if (!sb)
        return s_not_found(s, id, uri);
    if (strncmp(what, "files/", 6) == 0)
        return s_read_file(s, id, uri, sb, what + 6);
    if (strncmp(what, "session/", 8) == 0) {
        char repl_id[37];
        const char *end = strchr(what + 8, '/');
        if (!end || (size_t)(end - (what + 8)) >= sizeof repl_id ||
            strcmp(end, "/notebook.ipynb") != 0)
            return s_not_found(s, id, uri);
        snprintf(repl_id, sizeof repl_id, "%.*s", (int)(end - (what + 8)), what + 8);
        return s_read_notebook(s, id, uri, sb, repl_id);
    }
    if (strncmp(what, "execution/", 10) == 0) {
        json_auto_t *res = mcp_job_resource(s->server, sb, uri);
        if (!res)
            return s_not_found(s, id, uri);
        return mcp_session_reply(s, id, json_pack("{s:[O]}", "contents", res));
    }
    s_not_found(s, id, uri);
}

/* ---- lists ---------------------------------------------------------------------------------- */

static int s_cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Regular files of a workspace directory as resources, at most room of them. */
static void s_add_files(json_t *out, mcp_sandbox_t *sb, const char *dir, size_t room)
{
    json_auto_t *entries = kg_sandbox_file_list(sb->kg, dir, NULL);
    size_t i;
    json_t *e;
    json_array_foreach (entries, i, e) {
        const char *name = json_string_value(json_object_get(e, "name"));
        const char *type = json_string_value(json_object_get(e, "type"));
        if (!room || !name || !type || strcmp(type, "file") != 0)
            continue;
        cleanup_free char *path = cb_strdup_printf("%s/%s", dir, name);
        cleanup_free char *uri = s_file_uri(sb->id, path);
        json_array_append_new(out, json_pack("{s:s, s:s, s:s, s:I}", "uri", uri, "name", name,
                                             "mimeType", mcp_mime_of(name), "size",
                                             json_integer_value(json_object_get(e, "size"))));
        room--;
    }
}

static void s_add_sandbox(json_t *out, mcp_sandbox_t *sb)
{
    size_t start = json_array_size(out);
    s_add_files(out, sb, S_HOME, S_LIST_PER_SANDBOX / 2);
    s_add_files(out, sb, MCP_OUTPUTS_DIR, S_LIST_PER_SANDBOX / 2);
    for (mcp_repl_t *r = zlistx_first(sb->repls); r; r = zlistx_next(sb->repls)) {
        if (r->type != MCP_REPL_JUPYTER || json_array_size(out) - start >= S_LIST_PER_SANDBOX)
            continue;
        cleanup_free char *uri =
            cb_strdup_printf(S_PREFIX "sandbox/%s/session/%s/notebook.ipynb", sb->id, r->id);
        cleanup_free char *name = cb_strdup_printf("session %.8s notebook", r->id);
        json_array_append_new(out, json_pack("{s:s, s:s, s:s}", "uri", uri, "name", name,
                                             "mimeType", "application/x-ipynb+json"));
    }
    cleanup_free char *uri = cb_strdup_printf(S_PREFIX "sandbox/%s/audit", sb->id);
    cleanup_free char *name = cb_strdup_printf("sandbox %.8s audit trail", sb->id);
    json_array_append_new(out, json_pack("{s:s, s:s, s:s}", "uri", uri, "name", name, "mimeType",
                                         "application/json"));
}

void mcp_resources_list(mcp_session_t *s, json_t *id, json_t *params)
{
    json_t *cursor = json_object_get(params, "cursor");
    size_t from = 0;
    if (cursor) {
        const char *c = json_string_value(cursor);
        char *end = NULL;
        unsigned long v = c && *c >= '0' && *c <= '9' ? strtoul(c, &end, 10) : 0;
        if (!end || *end || v > 1000000)
            return mcp_session_error_data(s, id, -32602, "resources/list: invalid cursor", NULL);
        from = v;
    }
    /* Sandboxes in id order, so that pages follow on. */
    size_t count = zhashx_size(s->server->sandboxes), n = 0;
    const char **ids = cb_xcalloc(count + 1, sizeof *ids);
    for (mcp_sandbox_t *sb = zhashx_first(s->server->sandboxes); sb;
         sb = zhashx_next(s->server->sandboxes))
        if (n < count && fleet_sandbox_visible(sb->kg, &s->who))
            ids[n++] = sb->id;
    qsort(ids, n, sizeof *ids, s_cmp_str);
    json_auto_t *all = json_array();
    for (size_t i = 0; i < n; i++)
        s_add_sandbox(all, zhashx_lookup(s->server->sandboxes, ids[i]));
    free(ids);
    json_array_append_new(all, json_pack("{s:s, s:s, s:s}", "uri", S_PREFIX "audit", "name",
                                         "audit trail", "mimeType", "application/json"));
    json_t *page = json_array();
    for (size_t i = from; i < json_array_size(all) && json_array_size(page) < S_PAGE; i++)
        json_array_append(page, json_array_get(all, i));
    json_t *result = json_pack("{s:o}", "resources", page);
    if (from + S_PAGE < json_array_size(all)) {
        char next[24];
        snprintf(next, sizeof next, "%zu", from + S_PAGE);
        json_object_set_new(result, "nextCursor", json_string(next));
    }
    mcp_session_reply(s, id, result);
}

void mcp_resources_templates(mcp_session_t *s, json_t *id, json_t *params)
{
    (void)params;
    mcp_session_reply(
        s, id,
        json_pack("{s:[{s:s, s:s, s:s}, {s:s, s:s, s:s}, {s:s, s:s, s:s, s:s}, {s:s, s:s, s:s, "
                  "s:s}, {s:s, s:s, s:s, s:s}]}",
                  "resourceTemplates", "uriTemplate", S_PREFIX "sandbox/{sandbox_id}/files/{+path}",
                  "name", "workspace file", "description",
                  "A file of the sandbox's workspace, path relative to /home/user (saved long "
                  "outputs are under .cellblock/outputs/)",
                  "uriTemplate",
                  S_PREFIX "sandbox/{sandbox_id}/execution/{execution_id}/result-{n}.{ext}", "name",
                  "execution result", "description",
                  "A rich result (HTML, SVG, Markdown, LaTeX, JSON) of an execution still "
                  "remembered (execution_status)",
                  "uriTemplate",
                  S_PREFIX "sandbox/{sandbox_id}/session/{session_id}/notebook.ipynb", "name",
                  "session notebook", "description",
                  "A session's executed cells and their outputs as an nbformat 4 notebook",
                  "mimeType", "application/x-ipynb+json", "uriTemplate",
                  S_PREFIX "sandbox/{sandbox_id}/audit", "name", "sandbox audit trail",
                  "description", "The sandbox's audit records (what ran, who ran it)", "mimeType",
                  "application/json", "uriTemplate", S_PREFIX "audit", "name", "audit trail",
                  "description", "Your tenant's audit records", "mimeType", "application/json"));
}
