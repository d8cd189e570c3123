/* test_notebook.c: nb_parse's refusals, nb_check's fill-ins, outputs from messages and results,
 * and nbclient's stream merging, without a kernel. The executor runs against real kernels in
 * tests/integration/test_notebooks.py and tests/mcp/notebooks.mjs. */
#include <string.h>

#include "cb/cleanup.h"
#include "cb/tap.h"
#include "nb/notebook.h"

static void s_refused(const char *text, const char *why, const char *name)
{
    cb_error_t err = {0};
    json_t *nb = nb_parse(text, strlen(text), &err);
    CB_OK(!nb && strstr(err.msg, why), "refused: %s (%s)", name, err.msg);
    json_decref(nb);
}

int main(void)
{
    s_refused("{\"nbformat\": 4, \"cells\": [", "invalid JSON", "truncated JSON");
    s_refused("[1]", "top level is not an object", "an array");
    s_refused("{\"nbformat\": \"4\", \"cells\": []}", "no integer \"nbformat\"", "a string nbformat");
    s_refused("{\"nbformat\": 3, \"cells\": []}", "nbformat 3 is not supported", "nbformat 3");
    s_refused("{\"nbformat\": 4, \"nbformat\": 4, \"cells\": []}", "invalid JSON", "a duplicate key");
    s_refused("{\"nbformat\": 4, \"cells\": {}}", "no \"cells\" array", "cells not an array");
    s_refused("{\"nbformat\": 4, \"cells\": [{\"cell_type\": \"heading\", \"source\": \"\"}]}",
              "cell 1: cell_type", "a v3 heading cell");
    s_refused("{\"nbformat\": 4, \"cells\": [{\"cell_type\": \"code\", \"source\": [1]}]}",
              "cell 1: source", "a source list holding a number");
    s_refused("{\"nbformat\": 4, \"cells\": [{\"cell_type\": \"code\", \"source\": \"\", "
              "\"outputs\": {}}]}",
              "outputs is not a list", "outputs not a list");
    s_refused("{\"nbformat\": 4, \"metadata\": [], \"cells\": []}", "\"metadata\" is not an object",
              "metadata not an object");

    /* What nbformat 4.5 requires and older writers leave out is filled in. */
    const char *text = "{\"nbformat\": 4, \"nbformat_minor\": 5, \"cells\": [{\"cell_type\": "
                       "\"code\", \"source\": [\"a = 1\\n\", \"a\"]}, {\"cell_type\": "
                       "\"markdown\", \"source\": \"hi\", \"id\": \"keep\"}]}";
    cb_error_t err = {0};
    json_auto_t *nb = nb_parse(text, strlen(text), &err);
    json_t *code = json_array_get(json_object_get(nb, "cells"), 0);
    json_t *md = json_array_get(json_object_get(nb, "cells"), 1);
    CB_OK(nb && json_is_object(json_object_get(nb, "metadata")), "metadata filled in");
    CB_OK(json_is_string(json_object_get(code, "id")) &&
              json_is_array(json_object_get(code, "outputs")) &&
              json_is_null(json_object_get(code, "execution_count")) &&
              json_is_object(json_object_get(code, "metadata")),
          "a code cell gets id, outputs, execution_count and metadata");
    CB_EQ_STR(json_string_value(json_object_get(md, "id")), "keep", "an id is kept");
    CB_OK(!json_object_get(md, "outputs"), "a markdown cell gets no outputs");
    cleanup_free char *source = nb_cell_source(code);
    CB_EQ_STR(source, "a = 1\na", "a list source is joined");
    cleanup_free char *dumped = nb_dump(nb);
    CB_OK(dumped[strlen(dumped) - 1] == '\n', "nb_dump ends with a newline");

    /* Streams merge by name, as nbclient does; other outputs do not. */
    json_auto_t *outputs = json_array();
    json_auto_t *s1 = json_pack("{s:s, s:s}", "name", "stdout", "text", "a\n");
    json_auto_t *s2 = json_pack("{s:s, s:s}", "name", "stdout", "text", "b\n");
    json_auto_t *s3 = json_pack("{s:s, s:s}", "name", "stderr", "text", "e\n");
    json_auto_t *rich = json_pack("{s:{s:s}, s:i}", "data", "text/plain", "42", "execution_count", 7);
    nb_outputs_append(outputs, nb_output_from_message("stream", s1, -1));
    nb_outputs_append(outputs, nb_output_from_message("stream", s2, -1));
    nb_outputs_append(outputs, nb_output_from_message("stream", s3, -1));
    nb_outputs_append(outputs, nb_output_from_message("execute_result", rich, -1));
    nb_outputs_append(outputs, nb_output_from_message("stream", s1, -1));
    nb_outputs_append(outputs, nb_output_from_message("clear_output", s1, -1));
    CB_EQ_SIZE(json_array_size(outputs), 4, "stdout, stderr, the result, stdout again");
    CB_EQ_STR(json_string_value(json_object_get(json_array_get(outputs, 0), "text")), "a\nb\n",
              "consecutive stdout merged");
    CB_EQ_INT(json_integer_value(json_object_get(json_array_get(outputs, 2), "execution_count")),
              7, "execute_result keeps its count");
    CB_OK(json_is_object(json_object_get(json_array_get(outputs, 2), "metadata")),
          "execute_result gets metadata");

    /* A finished execution's result as outputs. */
    json_auto_t *result = json_pack(
        "{s:s, s:i, s:s, s:s, s:[{s:{s:s}, s:b}, {s:{s:s}, s:b}], s:{s:s, s:s, s:[s]}}", "status",
        "error", "execution_count", 3, "stdout", "out\n", "stderr", "", "results", "data",
        "text/plain", "'shown'", "is_main_result", 0, "data", "text/plain", "3",
        "is_main_result", 1, "error", "ename", "ValueError", "evalue", "bad", "traceback", "tb");
    json_auto_t *from = nb_outputs_from_result(result);
    const char *types[] = {"stream", "display_data", "execute_result", "error"};
    CB_EQ_SIZE(json_array_size(from), 4, "stdout, display, result, error (no empty stderr)");
    for (size_t i = 0; i < 4 && i < json_array_size(from); i++)
        CB_OK(strcmp(json_string_value(json_object_get(json_array_get(from, i), "output_type")) ?: "",
                     types[i]) == 0,
              "output %zu is %s", i, types[i]);
    CB_EQ_INT(json_integer_value(json_object_get(json_array_get(from, 2), "execution_count")), 3,
              "the result carries the execution's count");
    return cb_tap_done();
}
