/* notebooks.c: notebooks over MCP (notebook_run, session_export) and the cell history each
 * REPL keeps for them. A first shape: the export of a REPL with no history yet. */
#include "mcp_private.h"

json_t *mcp_repl_notebook(mcp_repl_t *repl, cb_error_t *err)
{
    if (repl->type != MCP_REPL_JUPYTER)
        return cb_error_fail(err, CB_ERR_INVALID, "session %s is a terminal, not a notebook",
                             repl->id),
               NULL;
    return json_pack("{s:i, s:i, s:{}, s:[]}", "nbformat", 4, "nbformat_minor", 5, "metadata",
                     "cells");
}
