/* files.c: the file_* tools, over the gateway's workspace file calls (kg_sandbox_file_*), which
 * resolve every path as the sandbox would and refuse anything outside /home/user. Base64 goes
 * through czmq's zarmour; its decoder accepts anything, so the alphabet is checked here first.
 */
#include <string.h>

#include "cb/cleanup.h"
#include "mcp_private.h"
#include "kg/sandbox.h"

#define DOWNLOAD_DEFAULT (1u << 20)

static const struct {
    const char *ext;
    const char *mime;
} s_mimes[] = {{".png", "image/png"},  {".jpg", "image/jpeg"},   {".jpeg", "image/jpeg"},
               {".gif", "image/gif"},  {".webp", "image/webp"},  {".svg", "image/svg+xml"},
               {".html", "text/html"}, {".csv", "text/csv"},     {".json", "application/json"},
               {".txt", "text/plain"}, {".md", "text/markdown"}, {".py", "text/x-python"}};

const char *mcp_mime_of(const char *path)
{
    const char *dot = strrchr(path, '.');
    for (size_t i = 0; dot && i < sizeof s_mimes / sizeof s_mimes[0]; i++)
        if (strcasecmp(dot, s_mimes[i].ext) == 0)
            return s_mimes[i].mime;
    return "application/octet-stream";
}

static bool s_is_base64(const char *text, size_t *len_out)
{
    size_t n = 0, pad = 0;
    for (const char *p = text; *p; p++) {
        if (*p == '\n' || *p == '\r')
            continue;
        bool alpha = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                     (*p >= '0' && *p <= '9') || *p == '+' || *p == '/';
        if (*p == '=')
            pad++;
        else if (!alpha || pad)
            return false; /* a bad character, or data after padding */
        n++;
    }
    *len_out = n;
    return pad <= 2 && (pad == 0 || n % 4 == 0) && n % 4 != 1;
}

/* Decoded bytes (caller owns); *len is their number (zarmour adds a NUL that its chunk's size
 * counts, left out of *len). */
static zchunk_t *s_base64_decode(const char *text, size_t *len)
{
    size_t n;
    if (!s_is_base64(text, &n))
        return NULL;
    cleanup_free char *compact = cb_xmalloc(n + 1);
    size_t k = 0;
    for (const char *p = text; *p; p++)
        if (*p != '\n' && *p != '\r')
            compact[k++] = *p;
    compact[k] = '\0';
    zarmour_t *armour = zarmour_new();
    zchunk_t *bytes = NULL;
    if (armour) {
        zarmour_set_mode(armour, ZARMOUR_MODE_BASE64_STD);
        zarmour_set_pad(armour, true);
        bytes = k ? zarmour_decode(armour, compact) : zchunk_new("", 1);
    }
    zarmour_destroy(&armour);
    *len = bytes && zchunk_size(bytes) > 0 ? zchunk_size(bytes) - 1 : 0;
    return bytes;
}

static char *s_base64_encode(const void *data, size_t len)
{
    zarmour_t *armour = zarmour_new();
    char *out = NULL;
    if (armour) {
        zarmour_set_mode(armour, ZARMOUR_MODE_BASE64_STD);
        zarmour_set_pad(armour, true);
        zarmour_set_line_breaks(armour, false);
        out = len ? zarmour_encode(armour, data, len) : cb_xstrdup("");
    }
    zarmour_destroy(&armour);
    return out;
}

void mcp_tool_file_upload(mcp_call_t *call, json_t *args)
{
    mcp_sandbox_t *sb = mcp_sandbox_for_call(call, args, true);
    if (!sb)
        return;
    const char *path = mcp_arg_str(args, "path", "");
    json_t *content = json_object_get(args, "content");
    const char *data = json_string_value(content);
    size_t len = json_string_length(content);
    zchunk_t *decoded = NULL;
    if (strcmp(mcp_arg_str(args, "encoding", "text"), "base64") == 0) {
        if (!(decoded = s_base64_decode(data, &len)))
            return mcp_call_fail(call, "file_upload: content is not valid base64 (A-Z a-z 0-9 + /, "
                                       "'=' padding); send text with encoding text");
        data = (const char *)zchunk_data(decoded);
    }
    cb_error_t err = {0};
    int rc = kg_sandbox_file_write(sb->kg, path, data, len, true, &err);
    zchunk_destroy(&decoded);
    if (rc < 0)
        return mcp_call_fail_err(call, &err);
    json_t *out =
        json_pack("{s:s, s:s, s:I}", "path", path, "sandbox_id", sb->id, "bytes", (json_int_t)len);
    cleanup_free char *text = out ? json_dumps(out, JSON_INDENT(1)) : NULL;
    json_t *blocks = json_pack("[o]", mcp_text_block(text ? text : "(uploaded)"));
    if (blocks) /* what was written, readable with resources/read */
        json_array_append_new(blocks, mcp_resource_link(sb, path, NULL));
    mcp_call_finish(call, blocks, out, false);
}

void mcp_tool_file_download(mcp_call_t *call, json_t *args)
{
    mcp_sandbox_t *sb = mcp_sandbox_for_call(call, args, true);
    if (!sb)
        return;
    const char *path = mcp_arg_str(args, "path", "");
    const char *encoding = mcp_arg_str(args, "encoding", "auto");
    uint64_t offset = (uint64_t)mcp_arg_num(args, "offset", 0);
    size_t max = (size_t)mcp_arg_num(args, "max_bytes", DOWNLOAD_DEFAULT);
    cb_buf_t buf = {0};
    uint64_t size = 0;
    cb_error_t err = {0};
    if (kg_sandbox_file_read_range(sb->kg, path, offset, max, &buf, &size, &err) < 0) {
        cb_buf_free(&buf);
        return mcp_call_fail_err(call, &err);
    }
    const char *mime = mcp_mime_of(path);
    json_t *probe = json_stringn(buf.data, buf.len); /* NULL when the bytes are not UTF-8 */
    bool text_ok = probe && !memchr(buf.data, '\0', buf.len);
    json_decref(probe);
    if (strcmp(encoding, "auto") == 0)
        encoding = text_ok && strncmp(mime, "image/", 6) != 0 ? "text" : "base64";
    if (strcmp(encoding, "text") == 0 && !text_ok) {
        cb_buf_free(&buf);
        return mcp_call_fail(
            call, "'%s' is not UTF-8 text%s; ask for encoding base64", path,
            offset ? " at that offset (it may cut a character: move offset a byte or two)" : "");
    }
    bool base64 = strcmp(encoding, "base64") == 0;
    cleanup_free char *b64 = base64 ? s_base64_encode(buf.data, buf.len) : NULL;
    bool truncated = offset + buf.len < size;
    json_t *out = json_pack(
        "{s:s, s:s, s:I, s:I, s:I, s:s, s:s%, s:b, s:s}", "path", path, "sandbox_id", sb->id,
        "size", (json_int_t)size, "offset", (json_int_t)offset, "bytes", (json_int_t)buf.len,
        "encoding", encoding, "content", base64 ? (b64 ? b64 : "") : buf.data,
        base64 ? (b64 ? strlen(b64) : 0) : buf.len, "truncated", truncated, "mime_type", mime);
    cb_buf_free(&buf);
    if (!out)
        return mcp_call_fail(call, "out of memory reading '%s'", path);
    json_t *content = json_array();
    bool image = base64 && b64 && !truncated && offset == 0 && strncmp(mime, "image/", 6) == 0 &&
                 strcmp(mime, "image/svg+xml") != 0;
    if (image)
        json_array_append_new(
            content, json_pack("{s:s, s:s, s:s}", "type", "image", "data", b64, "mimeType", mime));
    cleanup_free char *head = cb_strdup_printf(
        "%s: %lld bytes from offset %llu of %llu (%s)%s%s", path,
        (long long)json_integer_value(json_object_get(out, "bytes")), (unsigned long long)offset,
        (unsigned long long)size, encoding,
        truncated ? "; more remains: call again with a larger offset" : "", image ? "" : ":");
    json_array_append_new(content, mcp_text_block(head));
    if (!image)
        json_array_append_new(content,
                              mcp_text_block(json_string_value(json_object_get(out, "content"))));
    mcp_call_finish(call, content, out, false);
}

void mcp_tool_file_list(mcp_call_t *call, json_t *args)
{
    mcp_sandbox_t *sb = mcp_sandbox_for_call(call, args, true);
    if (!sb)
        return;
    const char *path = mcp_arg_str(args, "path", "/home/user");
    cb_error_t err = {0};
    json_t *entries = kg_sandbox_file_list(sb->kg, path, &err);
    if (!entries)
        return mcp_call_fail_err(call, &err);
    mcp_call_finish(
        call, NULL,
        json_pack("{s:s, s:s, s:o}", "path", path, "sandbox_id", sb->id, "entries", entries),
        false);
}

void mcp_tool_file_delete(mcp_call_t *call, json_t *args)
{
    mcp_sandbox_t *sb = mcp_sandbox_for_call(call, args, true);
    if (!sb)
        return;
    const char *path = mcp_arg_str(args, "path", "");
    cb_error_t err = {0};
    if (kg_sandbox_file_remove(sb->kg, path, mcp_arg_bool(args, "recursive", false), &err) < 0)
        return mcp_call_fail_err(call, &err);
    mcp_call_finish(call, NULL,
                    json_pack("{s:s, s:s, s:b}", "path", path, "sandbox_id", sb->id, "deleted", 1),
                    false);
}
