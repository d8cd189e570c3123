/* test_history.c: a REPL's cell history (notebooks.c) stays within its bounds: the last 1000
 * cells, 16 MiB of them, a cell's oversized outputs replaced by a note; what was let go is
 * counted in the exported notebook's metadata. No kernel: a REPL record made by hand. */
#include <string.h>

#include "cb/cleanup.h"
#include "cb/tap.h"
#include "mcp_private.h"

static json_t *s_result(int count, size_t stdout_bytes)
{
    char *text = cb_xmalloc(stdout_bytes + 1);
    memset(text, 'x', stdout_bytes);
    text[stdout_bytes] = '\0';
    json_t *r = json_pack("{s:s, s:i, s:s, s:s, s:[], s:n}", "status", "ok", "execution_count",
                          count, "stdout", text, "stderr", "", "results", "error");
    free(text);
    return r;
}

int main(void)
{
    mcp_sandbox_t sb = {.id = "sandbox-1"};
    mcp_repl_t repl = {.sandbox = &sb, .id = "repl-1", .type = MCP_REPL_JUPYTER};

    for (int i = 1; i <= 1005; i++) {
        json_auto_t *r = s_result(i, 3);
        mcp_repl_history_add(&repl, "print('xxx')", r);
    }
    cb_error_t err = {0};
    json_auto_t *nb = mcp_repl_notebook(&repl, &err);
    json_t *cells = json_object_get(nb, "cells");
    json_t *mine = json_object_get(json_object_get(nb, "metadata"), "cellblock");
    CB_EQ_SIZE(json_array_size(cells), 1000, "the last 1000 cells are kept");
    CB_EQ_INT(json_integer_value(json_object_get(json_array_get(cells, 0), "execution_count")), 6,
              "the oldest went first");
    CB_EQ_INT(json_integer_value(json_object_get(mine, "cells_dropped")), 5,
              "metadata.cellblock.cells_dropped counts them");
    CB_OK(json_is_string(json_object_get(mine, "note")), "and a note says why");
    mcp_repl_history_free(&repl);
    repl.cells_dropped = 0;

    json_auto_t *huge = s_result(1, 5u << 20);
    mcp_repl_history_add(&repl, "print('x' * 5 * 2**20)", huge);
    json_t *out = json_array_get(json_object_get(json_array_get(repl.cells, 0), "outputs"), 0);
    CB_OK(strstr(json_string_value(json_object_get(out, "text")) ?: "", "were not kept"),
          "a cell's 5 MiB of outputs become a note");
    for (int i = 2; i <= 8; i++) {
        json_auto_t *r = s_result(i, 3u << 20);
        mcp_repl_history_add(&repl, "print('x' * 3 * 2**20)", r);
    }
    CB_OK(repl.cells_bytes <= (16u << 20), "the history stays within 16 MiB (%zu bytes)",
          repl.cells_bytes);
    CB_OK(repl.cells_dropped >= 2 && json_array_size(repl.cells) == 8 - repl.cells_dropped,
          "older cells went to make room (%zu dropped)", repl.cells_dropped);
    CB_EQ_INT(json_integer_value(json_object_get(
                  json_array_get(repl.cells, json_array_size(repl.cells) - 1), "execution_count")),
              8, "the newest is kept");
    mcp_repl_history_free(&repl);

    mcp_repl_t term = {.sandbox = &sb, .id = "repl-2", .type = MCP_REPL_TERMINAL};
    json_t *none = mcp_repl_notebook(&term, &err);
    CB_OK(!none && strstr(err.msg, "terminal"), "a terminal has no notebook");
    return cb_tap_done();
}
