/* fuzz_mcp.c: MCP JSON-RPC parsing and dispatch (mcp/session.c), down to every tool's argument
 * checks, on a real MCP server (mcp_env.h: no process is ever started).
 *
 * Input: lines, each one message handed to mcp_session_handle, all to one fresh session (so an
 * initialize on the first line opens the tools to the next ones). What must hold: every message
 * the session sends is well-formed JSON-RPC (fuzz_mcp_check_outgoing); a request never gets more
 * than one response; a notification, never one; nothing stays in flight past the input (every
 * call fails or finishes at once when no sandbox can be made), and the session ends cleanly. */
#include <string.h>

#include "fuzz.h"
#include "mcp_env.h"
#include "mcp_private.h"

#define S_MAX_LINES 64

typedef struct {
    size_t responses;
} s_out_t;

static int s_send(json_t *msg, void *arg)
{
    s_out_t *out = arg;
    fuzz_mcp_check_outgoing(msg);
    if (!json_object_get(msg, "method"))
        out->responses++;
    return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_mcp_env(0);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_mcp_env_t *env = fuzz_mcp_env(0);
    const uint8_t *starts[S_MAX_LINES];
    size_t lens[S_MAX_LINES];
    size_t n = fuzz_split(data, size, '\n', starts, lens, S_MAX_LINES);

    s_out_t out = {0};
    mcp_session_t *s = mcp_session_new(env->srv, s_send, &out);
    FUZZ_CHECK(s);
    for (size_t i = 0; i < n; i++) {
        if (lens[i] == 0)
            continue; /* a blank line is not a message (the stdio transport skips them too) */
        size_t before = out.responses;
        /* A copy of exactly the line: a read past its end is a finding. */
        char *line = fuzz_strndup(starts[i], lens[i]);
        mcp_session_handle(s, line, lens[i]);
        free(line);
        FUZZ_CHECK(out.responses - before <= 1);
        FUZZ_CHECK(zlistx_size(s->calls) == 0);
    }
    mcp_session_destroy(&s);
    FUZZ_CHECK(!s);
    fuzz_mcp_env_turn();
    return 0;
}
