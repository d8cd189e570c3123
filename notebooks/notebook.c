/* notebook.c: nbformat 4 notebooks read, checked, written and built (nb/notebook.h).
 *
 * Why: `cellblock run x.ipynb`, MCP's notebook_run and session_export read and write notebooks
 * that Jupyter's own tools must accept. How: a notebook stays a jansson object in nbformat's
 * shape from end to end; nb_check looks at what running relies on and fills in what nbformat 4.5
 * requires but older writers leave out, so that what we write validates with nbformat. Outputs
 * are made from a kernel's iopub messages (nb_output_from_message) or from a finished
 * execution's result (nb_outputs_from_result), in nbformat's output types only: no transient
 * field, which the schema refuses.
 */
#include <czmq.h>
#include <string.h>

#include "cb/alloc.h"
#include "cb/cleanup.h"
#include "cb/util.h"
#include "jupyter/catalog.h"
#include "jupyter/kernelspec.h"
#include "nb/notebook.h"

/* ---- reading and writing ----------------------------------------------------------------- */

json_t *nb_parse(const char *text, size_t len, cb_error_t *err)
{
    if (len > NB_MAX_BYTES)
        return cb_error_fail(err, CB_ERR_LIMIT, "the notebook is larger than %u MiB",
                             NB_MAX_BYTES >> 20),
               NULL;
    json_error_t jerr;
    json_t *nb = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!nb)
        return cb_error_fail(err, CB_ERR_INVALID, "not a notebook: invalid JSON at line %d: %s",
                             jerr.line, jerr.text),
               NULL;
    if (nb_check(nb, err) < 0) {
        json_decref(nb);
        return NULL;
    }
    return nb;
}

static bool s_is_source(const json_t *source)
{
    if (json_is_string(source))
        return true;
    if (!json_is_array(source))
        return false;
    size_t i;
    json_t *line;
    json_array_foreach (source, i, line)
        if (!json_is_string(line))
            return false;
    return true;
}

static void s_set_default(json_t *obj, const char *key, json_t *value)
{
    if (!json_object_get(obj, key))
        json_object_set_new(obj, key, value);
    else
        json_decref(value);
}

static char *s_new_id(void)
{
    zuuid_t *uuid = zuuid_new();
    char *id = cb_xstrdup(zuuid_str_canonical(uuid));
    zuuid_destroy(&uuid);
    return id;
}

int nb_check(json_t *nb, cb_error_t *err)
{
    if (!json_is_object(nb))
        return cb_error_fail(err, CB_ERR_INVALID, "not a notebook: the top level is not an object");
    json_t *major = json_object_get(nb, "nbformat");
    if (!json_is_integer(major))
        return cb_error_fail(err, CB_ERR_INVALID, "not a notebook: no integer \"nbformat\" field");
    if (json_integer_value(major) != 4)
        return cb_error_fail(err, CB_ERR_INVALID,
                             "nbformat %lld is not supported (only nbformat 4; convert it with "
                             "`jupyter nbconvert --to notebook`)",
                             (long long)json_integer_value(major));
    json_t *minor = json_object_get(nb, "nbformat_minor");
    if (minor && !json_is_integer(minor))
        return cb_error_fail(err, CB_ERR_INVALID, "\"nbformat_minor\" is not an integer");
    if (!minor)
        json_object_set_new(nb, "nbformat_minor", minor = json_integer(5));
    bool ids = json_integer_value(minor) >= 5;
    json_t *meta = json_object_get(nb, "metadata");
    if (meta && !json_is_object(meta))
        return cb_error_fail(err, CB_ERR_INVALID, "\"metadata\" is not an object");
    s_set_default(nb, "metadata", json_object());
    json_t *cells = json_object_get(nb, "cells");
    if (!json_is_array(cells))
        return cb_error_fail(err, CB_ERR_INVALID, "not a notebook: no \"cells\" array");
    size_t i;
    json_t *cell;
    json_array_foreach (cells, i, cell) {
        if (!json_is_object(cell))
            return cb_error_fail(err, CB_ERR_INVALID, "cell %zu is not an object", i + 1);
        const char *type = json_string_value(json_object_get(cell, "cell_type"));
        if (!type || (strcmp(type, "code") != 0 && strcmp(type, "markdown") != 0 &&
                      strcmp(type, "raw") != 0))
            return cb_error_fail(err, CB_ERR_INVALID,
                                 "cell %zu: cell_type must be \"code\", \"markdown\" or \"raw\"",
                                 i + 1);
        if (!s_is_source(json_object_get(cell, "source")))
            return cb_error_fail(err, CB_ERR_INVALID,
                                 "cell %zu: source must be a string or a list of strings", i + 1);
        json_t *cmeta = json_object_get(cell, "metadata");
        if (cmeta && !json_is_object(cmeta))
            return cb_error_fail(err, CB_ERR_INVALID, "cell %zu: metadata is not an object",
                                 i + 1);
        s_set_default(cell, "metadata", json_object());
        json_t *id = json_object_get(cell, "id");
        if (id && !json_is_string(id))
            return cb_error_fail(err, CB_ERR_INVALID, "cell %zu: id is not a string", i + 1);
        if (ids && !id) {
            cleanup_free char *fresh = s_new_id();
            json_object_set_new(cell, "id", json_string(fresh));
        }
        if (strcmp(type, "code") != 0)
            continue;
        json_t *outputs = json_object_get(cell, "outputs");
        if (outputs && !json_is_array(outputs))
            return cb_error_fail(err, CB_ERR_INVALID, "cell %zu: outputs is not a list", i + 1);
        s_set_default(cell, "outputs", json_array());
        json_t *count = json_object_get(cell, "execution_count");
        if (count && !json_is_integer(count) && !json_is_null(count))
            return cb_error_fail(err, CB_ERR_INVALID,
                                 "cell %zu: execution_count is not an integer or null", i + 1);
        s_set_default(cell, "execution_count", json_null());
    }
    return 0;
}

char *nb_dump(const json_t *nb)
{
    char *text = json_dumps(nb, JSON_INDENT(1) | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
    if (!text)
        cb_oom(0);
    size_t len = strlen(text);
    char *out = cb_xmalloc(len + 2);
    memcpy(out, text, len);
    out[len] = '\n';
    out[len + 1] = '\0';
    free(text);
    return out;
}

char *nb_cell_source(const json_t *cell)
{
    json_t *source = json_object_get(cell, "source");
    if (json_is_string(source))
        return cb_xstrdup(json_string_value(source));
    cb_buf_t buf = {0};
    size_t i;
    json_t *line;
    json_array_foreach (source, i, line)
        if (json_is_string(line))
            cb_buf_append(&buf, json_string_value(line), json_string_length(line));
    return buf.data ? buf.data : cb_xstrdup("");
}

char *nb_pick_kernel(const json_t *nb, const char *explicit_name, const char *project_dir,
                     cb_error_t *err)
{
    if (explicit_name)
        return cb_xstrdup(explicit_name);
    json_t *meta = json_object_get(nb, "metadata");
    json_t *spec = json_object_get(meta, "kernelspec");
    const char *name = json_string_value(json_object_get(spec, "name"));
    if (name && jp_catalog_name_is_valid(name)) {
        cb_error_t ignored = {0};
        jp_kernelspec_t *found = jp_kernelspec_find(project_dir, name, &ignored);
        if (found) {
            jp_kernelspec_destroy(&found);
            return cb_xstrdup(name);
        }
    }
    const char *language =
        json_string_value(json_object_get(json_object_get(meta, "language_info"), "name"));
    if (!language)
        language = json_string_value(json_object_get(spec, "language"));
    if (language) {
        char *kernel = jp_kernelspec_for_language(project_dir, language, err);
        if (!kernel && name) { /* say both; the message is rewritten from a copy */
            cleanup_free char *why = cb_xstrdup(err->msg);
            cb_error_fail(err, err->kind, "the notebook's kernel %s is not installed here, and %s",
                          name, why);
        }
        return kernel;
    }
    if (name)
        return cb_error_fail(err, CB_ERR_NOT_FOUND,
                             "the notebook's kernel %s is not installed here (see `cellblock "
                             "kernels`; --kernel picks another)",
                             name),
               NULL;
    return cb_xstrdup("python3");
}

/* ---- building ---------------------------------------------------------------------------- */

json_t *nb_new(const char *kernel_name, const char *language)
{
    json_t *nb = json_pack("{s:i, s:i, s:{s:{s:s, s:s, s:s}, s:{s:s}}, s:[]}", "nbformat", 4,
                           "nbformat_minor", 5, "metadata", "kernelspec", "name", kernel_name,
                           "display_name", kernel_name, "language", language ? language : "",
                           "language_info", "name", language ? language : "", "cells");
    if (!nb)
        cb_oom(0);
    return nb;
}

json_t *nb_code_cell(const char *source, json_t *outputs, long long execution_count)
{
    cleanup_free char *id = s_new_id();
    json_t *cell = json_pack("{s:s, s:s, s:{}, s:s, s:o, s:o}", "id", id, "cell_type", "code",
                             "metadata", "source", source ? source : "", "outputs",
                             outputs ? outputs : json_array(), "execution_count",
                             execution_count < 0 ? json_null() : json_integer(execution_count));
    if (!cell)
        cb_oom(0);
    return cell;
}

json_t *nb_output_from_message(const char *kind, const json_t *content, long long execution_count)
{
    if (strcmp(kind, "stream") == 0) {
        const char *name = json_string_value(json_object_get(content, "name"));
        const char *text = json_string_value(json_object_get(content, "text"));
        return json_pack("{s:s, s:s, s:s}", "output_type", "stream", "name",
                         name && strcmp(name, "stderr") == 0 ? "stderr" : "stdout", "text",
                         text ? text : "");
    }
    if (strcmp(kind, "display_data") == 0 || strcmp(kind, "execute_result") == 0) {
        json_auto_t *empty = json_object();
        json_t *data = json_object_get(content, "data");
        json_t *meta = json_object_get(content, "metadata");
        json_t *out = json_pack("{s:s, s:O, s:O}", "output_type", kind, "data",
                                json_is_object(data) ? data : empty, "metadata",
                                json_is_object(meta) ? meta : empty);
        if (out && strcmp(kind, "execute_result") == 0) {
            json_t *count = json_object_get(content, "execution_count");
            json_object_set_new(out, "execution_count",
                                json_is_integer(count) ? json_integer(json_integer_value(count))
                                : execution_count >= 0 ? json_integer(execution_count)
                                                       : json_null());
        }
        return out;
    }
    if (strcmp(kind, "error") == 0) {
        json_t *tb = json_object_get(content, "traceback");
        json_t *lines = json_array();
        size_t i;
        json_t *line;
        json_array_foreach (tb, i, line)
            if (json_is_string(line))
                json_array_append(lines, line);
        const char *ename = json_string_value(json_object_get(content, "ename"));
        const char *evalue = json_string_value(json_object_get(content, "evalue"));
        return json_pack("{s:s, s:s, s:s, s:o}", "output_type", "error", "ename",
                         ename ? ename : "Error", "evalue", evalue ? evalue : "", "traceback",
                         lines);
    }
    return NULL;
}

void nb_outputs_append(json_t *outputs, json_t *output)
{
    if (!output)
        return;
    json_t *last = json_array_get(outputs, json_array_size(outputs) - 1);
    const char *type = json_string_value(json_object_get(output, "output_type"));
    if (last && type && strcmp(type, "stream") == 0 &&
        json_equal(json_object_get(last, "output_type"), json_object_get(output, "output_type")) &&
        json_equal(json_object_get(last, "name"), json_object_get(output, "name"))) {
        const char *a = json_string_value(json_object_get(last, "text"));
        const char *b = json_string_value(json_object_get(output, "text"));
        cleanup_free char *both = cb_strdup_printf("%s%s", a ? a : "", b ? b : "");
        json_object_set_new(last, "text", json_string(both));
        json_decref(output);
        return;
    }
    json_array_append_new(outputs, output);
}

json_t *nb_outputs_from_result(const json_t *result)
{
    json_t *outputs = json_array();
    long long count = json_is_integer(json_object_get(result, "execution_count"))
                          ? json_integer_value(json_object_get(result, "execution_count"))
                          : -1;
    static const char *const streams[] = {"stdout", "stderr"};
    for (size_t i = 0; i < 2; i++) {
        const char *text = json_string_value(json_object_get(result, streams[i]));
        if (text && *text) {
            json_auto_t *content = json_pack("{s:s, s:s}", "name", streams[i], "text", text);
            nb_outputs_append(outputs, nb_output_from_message("stream", content, count));
        }
    }
    size_t i;
    json_t *rich;
    json_array_foreach (json_object_get(result, "results"), i, rich) {
        bool main = json_is_true(json_object_get(rich, "is_main_result"));
        nb_outputs_append(outputs, nb_output_from_message(main ? "execute_result" : "display_data",
                                                          rich, count));
    }
    json_t *error = json_object_get(result, "error");
    if (json_is_object(error))
        nb_outputs_append(outputs, nb_output_from_message("error", error, count));
    return outputs;
}
