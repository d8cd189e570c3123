/* fuzz_notebook.c: the notebook reader (notebooks/notebook.c: nb_parse, nb_check), which reads
 * a file from a user or a workspace (`cellblock run x.ipynb`, MCP's notebook_run).
 *
 * Input: the notebook's text. What must hold: it parses or fails with a message; a parsed one
 * is nbformat 4 with a cells array whose cells have a known cell_type and a readable source,
 * code cells with an outputs array and an integer or null execution_count; what nb_dump writes
 * parses again to the same notebook; and outputs built from its cells (as if they were kernel
 * messages or execution results) are well-formed nbformat outputs. */
#include <string.h>

#include "cb/log.h"
#include "fuzz.h"
#include "nb/notebook.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    cb_log_set_level(CB_LOG_OFF);
    return 0;
}

static void s_check_output(json_t *out)
{
    const char *type = json_string_value(json_object_get(out, "output_type"));
    FUZZ_CHECK(type);
    if (strcmp(type, "stream") == 0)
        FUZZ_CHECK(json_is_string(json_object_get(out, "text")));
    else if (strcmp(type, "error") == 0)
        FUZZ_CHECK(json_is_array(json_object_get(out, "traceback")));
    else
        FUZZ_CHECK(json_is_object(json_object_get(out, "data")) &&
                   json_is_object(json_object_get(out, "metadata")));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cb_error_t err = {0};
    json_t *nb = nb_parse((const char *)data, size, &err);
    if (!nb) {
        FUZZ_CHECK(err.msg[0] != '\0');
        return 0;
    }
    FUZZ_CHECK(json_integer_value(json_object_get(nb, "nbformat")) == 4);
    FUZZ_CHECK(json_is_object(json_object_get(nb, "metadata")));
    json_t *outputs = json_array();
    size_t i;
    json_t *cell;
    json_array_foreach (json_object_get(nb, "cells"), i, cell) {
        const char *type = json_string_value(json_object_get(cell, "cell_type"));
        FUZZ_CHECK(type);
        char *source = nb_cell_source(cell);
        FUZZ_CHECK(source);
        free(source);
        if (strcmp(type, "code") == 0) {
            json_t *count = json_object_get(cell, "execution_count");
            FUZZ_CHECK(json_is_array(json_object_get(cell, "outputs")));
            FUZZ_CHECK(json_is_integer(count) || json_is_null(count));
        }
        static const char *const kinds[] = {"stream", "display_data", "execute_result", "error",
                                            "clear_output"};
        for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++)
            nb_outputs_append(outputs, nb_output_from_message(kinds[k], cell, 1));
        json_t *more = nb_outputs_from_result(cell);
        size_t j;
        json_t *o;
        json_array_foreach (more, j, o)
            s_check_output(o);
        json_decref(more);
    }
    json_array_foreach (outputs, i, cell)
        s_check_output(cell);
    json_decref(outputs);
    char *text = nb_dump(nb);
    json_t *again = nb_parse(text, strlen(text), &err);
    FUZZ_CHECK(again && json_equal(again, nb));
    json_decref(again);
    free(text);
    json_decref(nb);
    return 0;
}
