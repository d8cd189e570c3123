/* fuzz_mcp_stdio.c: the stdio transport's reading (mcp/stdio.c): its cutting of the input into
 * lines, the trimming, the lines that are too long (the limit is set to 4 KiB here so the fuzzer
 * reaches it), a last line without its newline; then the session behind it as in fuzz_mcp.
 *
 * The input is the whole of stdin: it is put in a memfd (a regular file, so the loop always
 * finds it readable and reads it to its end) and mcp_stdio_serve runs until it has answered
 * everything. Its output goes to a second memfd, which must then hold only whole JSON-RPC
 * messages, one per line (stdout carries MCP messages and nothing else). */
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"
#include "mcp_env.h"

#define S_MAX_MESSAGE 4096

static int s_memfd(const char *name)
{
    int fd = memfd_create(name, MFD_CLOEXEC);
    FUZZ_CHECK(fd >= 0);
    return fd;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_mcp_env(S_MAX_MESSAGE);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_mcp_env_t *env = fuzz_mcp_env(S_MAX_MESSAGE);
    int in = s_memfd("fuzz-stdin"), out = s_memfd("fuzz-stdout");
    for (size_t done = 0; done < size;) {
        ssize_t n = write(in, data + done, size - done);
        FUZZ_CHECK(n > 0);
        done += (size_t)n;
    }
    FUZZ_CHECK(lseek(in, 0, SEEK_SET) == 0);

    cb_error_t err = {0};
    FUZZ_CHECK(mcp_stdio_serve(env->srv, in, out, &err) == 0);

    /* What was written: whole lines, each one JSON-RPC message. */
    off_t len = lseek(out, 0, SEEK_END);
    FUZZ_CHECK(len >= 0);
    char *text = malloc((size_t)len + 1);
    FUZZ_CHECK(text);
    FUZZ_CHECK(pread(out, text, (size_t)len, 0) == len);
    text[len] = '\0';
    FUZZ_CHECK(len == 0 || text[len - 1] == '\n');
    for (char *line = text, *nl; (nl = strchr(line, '\n')); line = nl + 1) {
        json_error_t jerr;
        json_t *msg = json_loadb(line, (size_t)(nl - line), JSON_ALLOW_NUL, &jerr);
        FUZZ_CHECK(msg);
        fuzz_mcp_check_outgoing(msg);
        json_decref(msg);
    }
    free(text);
    close(in);
    close(out);
    return 0;
}
