/* content.c: an execution's result in MCP form.
 *
 * The gateway's result (kg.h) becomes structuredContent with the same fields plus the ids, and
 * content blocks for the model: stdout as text, stderr as text headed [stderr], each rich
 * result in its best form (PNG/JPEG/GIF/WebP as image blocks; HTML, SVG, Markdown, LaTeX and
 * JSON as embedded resources beside their text/plain), the error with its traceback (ANSI
 * colours stripped), notes, and a closing line when the run did not end cleanly.
 *
 * Output limits keep a model's context in bounds: each text (stdout, stderr, each text-like
 * result) is cut at cfg.output_limit characters in both forms. The whole text is then saved in
 * the workspace under MCP_OUTPUTS_DIR, and a note says where and from which byte to read on.
 */
#include <string.h>

#include "cb/cleanup.h"
#include "mcp_private.h"
#include "kg/sandbox.h"

static const char *const s_image_types[] = {"image/png", "image/jpeg", "image/gif", "image/webp"};
static const struct {
    const char *mime;
    const char *ext;
} s_rich_types[] = {{"text/html", "html"},
                    {"image/svg+xml", "svg"},
                    {"text/markdown", "md"},
                    {"text/latex", "tex"},
                    {"application/json", "json"}};

/* A saved output's URI: the sandbox, then its path under /home/user, then its name. */
#define S_FILES_URI "cellblock://sandbox/%s/files/%s/"

/* A note, then a resource link to the saved output it names, if any (saved names are ids and
 * stream names: nothing to encode). */
static void s_append_note(json_t *content, const char *note)
{
    cleanup_free char *text = cb_strdup_printf("[note] %s", note);
    json_array_append_new(content, mcp_text_block(text));
    const char *uri = strstr(note, "cellblock://sandbox/");
    if (!uri)
        return;
    size_t len = strcspn(uri, " \n");
    if (len && uri[len - 1] == '.')
        len--;
    cleanup_free char *link = cb_xstrndup(uri, len);
    const char *name = strrchr(link, '/') + 1;
    json_array_append_new(content, json_pack("{s:s, s:s, s:s, s:s}", "type", "resource_link", "uri",
                                             link, "name", name, "mimeType", "text/plain"));
}

char *mcp_strip_ansi(const char *text)
{
    size_t n = strlen(text);
    char *out = cb_xmalloc(n + 1), *o = out;
    for (const char *p = text; *p;) {
        if (*p != '\x1b') {
            *o++ = *p++;
            continue;
        }
        p++;
        if (*p == '[') { /* CSI: parameters, then one final byte 0x40-0x7e */
            for (p++; *p && !(*p >= 0x40 && *p <= 0x7e); p++)
                ;
            if (*p)
                p++;
        } else if (*p == ']') { /* OSC: up to BEL or ESC \ */
            for (p++; *p && *p != '\a' && !(p[0] == '\x1b' && p[1] == '\\'); p++)
                ;
            p += *p == '\a' ? 1 : *p ? 2 : 0;
        } else if (*p) {
            p++; /* a two-byte escape */
        }
    }
    *o = '\0';
    return out;
}

/* Byte offset of the limit-th UTF-8 character, or strlen when the text is shorter. */
static size_t s_char_offset(const char *text, size_t limit, size_t *chars_out)
{
    size_t chars = 0, cut = 0;
    bool over = false;
    for (size_t i = 0; text[i]; i++) {
        if (((unsigned char)text[i] & 0xC0) == 0x80)
            continue;
        if (chars == limit && !over) {
            cut = i;
            over = true;
        }
        chars++;
    }
    *chars_out = chars;
    return over ? cut : strlen(text);
}

char *mcp_limit_text(mcp_server_t *srv, mcp_sandbox_t *sb, const char *text, const char *what,
                     const char *name, json_t *notes, bool *cut)
{
    *cut = false;
    if (!text)
        return cb_xstrdup("");
    size_t chars = 0, limit = srv->cfg.output_limit;
    size_t keep = s_char_offset(text, limit, &chars);
    if (keep == strlen(text))
        return cb_xstrdup(text);
    *cut = true;
    cleanup_free char *where = NULL;
    if (sb) {
        cleanup_free char *path = cb_strdup_printf("%s/%s", MCP_OUTPUTS_DIR, name);
        cb_error_t err = {0};
        if (kg_sandbox_file_write(sb->kg, path, text, strlen(text), true, &err) == 0)
            where =
                cb_strdup_printf("The whole of it is in %s; file_download with offset %zu "
                                 "reads on, or resources/read " S_FILES_URI "%s.",
                                 path, keep, sb->id, MCP_OUTPUTS_DIR + strlen("/home/user/"), name);
        else
            where = cb_strdup_printf("It could not be saved in the workspace (%s).", err.msg);
    }
    cleanup_free char *note = cb_strdup_printf("%s was %zu characters; the first %zu are shown. %s",
                                               what, chars, limit, where ? where : "");
    if (notes)
        json_array_append_new(notes, json_string(note));
    return cb_xstrndup(text, keep);
}

/* Base64 as kernels send it may be wrapped; image blocks want one run. */
static char *s_compact_base64(const char *text)
{
    char *out = cb_xmalloc(strlen(text) + 1), *o = out;
    for (const char *p = text; *p; p++)
        if (*p != '\n' && *p != '\r' && *p != ' ')
            *o++ = *p;
    *o = '\0';
    return out;
}

static void s_append_text(json_t *content, const char *prefix, const char *text)
{
    cleanup_free char *joined =
        prefix ? cb_strdup_printf("%s%s", prefix, text) : NULL; /* NULL: none */
    json_array_append_new(content, mcp_text_block(joined ? joined : text));
}

/* One rich result: limits applied to its text-like data in place; its blocks appended. */
static bool s_result(mcp_server_t *srv, mcp_sandbox_t *sb, const char *xid, size_t index, json_t *r,
                     json_t *notes, json_t *content)
{
    json_t *data = json_object_get(r, "data");
    bool any_cut = false;
    const char *mime;
    json_t *value;
    void *tmp;
    json_object_foreach_safe (data, tmp, mime, value) {
        const char *text = json_string_value(value);
        if (!text)
            continue;
        bool image = false;
        for (size_t i = 0; i < sizeof s_image_types / sizeof s_image_types[0]; i++)
            image |= strcmp(mime, s_image_types[i]) == 0;
        cleanup_free char *fixed = NULL;
        if (image) {
            fixed = s_compact_base64(text);
        } else {
            bool cut = false;
            cleanup_free char *name =
                cb_strdup_printf("%s-result%zu-%s.txt", xid, index,
                                 strchr(mime, '/') ? strchr(mime, '/') + 1 : mime);
            cleanup_free char *what = cb_strdup_printf("result %zu (%s)", index, mime);
            fixed = mcp_limit_text(srv, sb, text, what, name, notes, &cut);
            any_cut |= cut;
        }
        json_object_set_new(data, mime, json_string(fixed));
    }
    if (!content)
        return any_cut;

    bool shown_image = false;
    for (size_t i = 0; i < sizeof s_image_types / sizeof s_image_types[0]; i++) {
        const char *b64 = json_string_value(json_object_get(data, s_image_types[i]));
        if (b64 && !shown_image) {
            json_array_append_new(content, json_pack("{s:s, s:s, s:s}", "type", "image", "data",
                                                     b64, "mimeType", s_image_types[i]));
            shown_image = true;
        }
    }
    const char *plain = json_string_value(json_object_get(data, "text/plain"));
    if (plain && !shown_image)
        s_append_text(content, NULL, plain);
    for (size_t i = 0; i < sizeof s_rich_types / sizeof s_rich_types[0]; i++) {
        json_t *v = json_object_get(data, s_rich_types[i].mime);
        if (!v)
            continue;
        cleanup_free char *dumped =
            json_is_string(v) ? NULL : json_dumps(v, JSON_INDENT(1) | JSON_ENCODE_ANY);
        cleanup_free char *uri =
            cb_strdup_printf("cellblock://sandbox/%s/execution/%s/result-%zu.%s",
                             sb ? sb->id : "gone", xid, index, s_rich_types[i].ext);
        json_array_append_new(content,
                              json_pack("{s:s, s:{s:s, s:s, s:s}}", "type", "resource", "resource",
                                        "uri", uri, "mimeType", s_rich_types[i].mime, "text",
                                        json_is_string(v) ? json_string_value(v)
                                        : dumped          ? dumped
                                                          : ""));
    }
    return any_cut;
}

json_t *mcp_shell_result(mcp_server_t *srv, mcp_sandbox_t *sb, const char *prefix, const char *out,
                         const char *err, json_t *structured, const char *closing)
{
    json_t *notes = json_object_get(structured, "notes");
    json_t *content = json_array();
    bool truncated = false;
    const char *const texts[] = {out, err};
    static const char *const streams[] = {"stdout", "stderr"};
    for (size_t i = 0; i < 2; i++) {
        bool cut = false;
        cleanup_free char *name = cb_strdup_printf("%s-%s.txt", prefix, streams[i]);
        cleanup_free char *text = mcp_limit_text(srv, sb, texts[i], streams[i], name, notes, &cut);
        truncated |= cut;
        json_object_set_new(structured, streams[i], json_string(text));
        if (text[0])
            s_append_text(content, i ? "[stderr]\n" : NULL, text);
    }
    json_object_set_new(structured, "truncated", json_boolean(truncated));
    size_t i;
    json_t *note;
    json_array_foreach (notes, i, note)
        s_append_note(content, json_string_value(note) ?: "");
    s_append_text(content, NULL, closing);
    return content;
}

json_t *mcp_execution_structured(mcp_server_t *srv, mcp_sandbox_t *sb, const char *repl_id,
                                 json_t *kg_result, json_t **content_out)
{
    json_t *out = json_deep_copy(kg_result);
    if (!out)
        return json_object();
    json_auto_t *content = content_out ? json_array() : NULL;
    mcp_sandbox_t *save_in = content_out ? sb : NULL; /* a snapshot saves nothing */
    char xid[40];
    snprintf(xid, sizeof xid, "%s", json_string_value(json_object_get(out, "id")) ?: "execution");
    json_object_set(out, "execution_id", json_object_get(out, "id"));
    json_object_del(out, "id");
    if (sb)
        json_object_set_new(out, "sandbox_id", json_string(sb->id));
    if (repl_id && repl_id[0]) /* a REPL is a "session" in the tools' words */
        json_object_set_new(out, "session_id", json_string(repl_id));
    json_t *notes = json_object_get(out, "notes");
    if (!json_is_array(notes)) {
        notes = json_array();
        json_object_set_new(out, "notes", notes);
    }
    if (save_in && save_in->notice) { /* said once, on the first finished result */
        json_array_insert_new(notes, 0, json_string(save_in->notice));
        free(save_in->notice);
        save_in->notice = NULL;
    }
    bool truncated = false;

    static const char *const streams[] = {"stdout", "stderr"};
    for (size_t i = 0; i < 2; i++) {
        bool cut = false;
        cleanup_free char *name = cb_strdup_printf("%s-%s.txt", xid, streams[i]);
        cleanup_free char *text =
            mcp_limit_text(srv, save_in, json_string_value(json_object_get(out, streams[i])),
                           streams[i], name, notes, &cut);
        truncated |= cut;
        json_object_set_new(out, streams[i], json_string(text));
        if (content && text[0])
            s_append_text(content, i ? "[stderr]\n" : NULL, text);
    }

    size_t i;
    json_t *r;
    json_array_foreach (json_object_get(out, "results"), i, r)
        truncated |= s_result(srv, save_in, xid, i, r, notes, content);

    json_t *error = json_object_get(out, "error");
    if (json_is_object(error)) {
        json_t *tb = json_object_get(error, "traceback");
        cb_buf_t joined = {0};
        json_t *line;
        json_array_foreach (tb, i, line) {
            cleanup_free char *clean = mcp_strip_ansi(json_string_value(line) ?: "");
            json_array_set_new(tb, i, json_string(clean));
            cb_buf_append(&joined, clean, strlen(clean));
            cb_buf_append(&joined, "\n", 1);
        }
        if (content) {
            if (!joined.len) {
                cleanup_free char *msg = cb_strdup_printf(
                    "%s: %s", json_string_value(json_object_get(error, "ename")) ?: "Error",
                    json_string_value(json_object_get(error, "evalue")) ?: "");
                s_append_text(content, NULL, msg);
            } else {
                s_append_text(content, NULL, joined.data);
            }
        }
        cb_buf_free(&joined);
    }
    json_object_set_new(out, "truncated", json_boolean(truncated));

    if (content) {
        json_t *note;
        json_array_foreach (notes, i, note)
            s_append_note(content, json_string_value(note) ?: "");
        const char *status = json_string_value(json_object_get(out, "status")) ?: "unknown";
        if (strcmp(status, "ok") != 0 && strcmp(status, "error") != 0) {
            cleanup_free char *line = cb_strdup_printf("[%s]", status);
            s_append_text(content, NULL, line);
        }
        if (json_array_size(content) == 0)
            s_append_text(content, NULL, "(no output)");
        *content_out = steal_pointer(&content);
    }
    return out;
}
