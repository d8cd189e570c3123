/* fuzz_sandbox_wire.c: cellblock-init's reading of its control messages (sandbox/wire.c:
 * sbx_wire_unpack_config and sbx_wire_unpack_spawn), byte for byte as the init receives them.
 *
 * The gateway is the only writer of the init's socket, but the init is PID 1 of a sandbox and
 * parses with no allocation, so a malformed message must be refused, never read past.
 *
 * Input: one byte (bit 0: CONFIG, else SPAWN; bits 1 and 2: whether a first and a second fd came
 * with it), then the message. The harness calls the unpacker as init.c does: CONFIG only when it
 * is at least the fixed part long, with a NUL after the message; SPAWN only when it is at least
 * the fixed part long, its last byte (in a full buffer) or the one after it made NUL. What must
 * hold: every string handed back lies inside the message; argv and env have argc and envc
 * entries; an fd received is either handed back or closed, never leaked. */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"
#include "sbx_private.h"

/* The message in a buffer of exactly its size plus the NUL the init puts after it, so a read
 * past it is a finding (the init's own buffer is 64 KiB, where such a read would quietly see
 * stale bytes of an earlier message). */
static char *s_buf;
static char *s_vec[SBX_WIRE_MAX / 2];

static bool s_inside(const char *s, const char *buf, size_t n)
{
    return s >= buf && s < buf + n && memchr(s, '\0', (size_t)(buf + n - s) + 1);
}

static void s_config(size_t n, bool fd0, bool fd1)
{
    if (n < sizeof(sbx_wire_config_t))
        return; /* main() refuses it before unpacking */
    s_buf[n] = '\0';
    int fds[2] = {fd0 ? open("/dev/null", O_RDONLY | O_CLOEXEC) : -1, -1};
    if (fd1)
        fds[fd0 ? 1 : 0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
    sbx_wire_config_t cfg;
    sbx_wire_host_dirs_t dirs = {.workspace_tree = -2, .libexec_tree = -2};
    int rc = sbx_wire_unpack_config(s_buf, n, fds, &cfg, &dirs);
    FUZZ_CHECK(memchr(cfg.hostname, '\0', sizeof cfg.hostname));
    if (dirs.workspace_dir)
        FUZZ_CHECK(cfg.workspace_bind && s_inside(dirs.workspace_dir, s_buf, n));
    if (dirs.libexec_dir)
        FUZZ_CHECK(cfg.libexec_bind && s_inside(dirs.libexec_dir, s_buf, n));
    if (rc == 0) {
        FUZZ_CHECK(cfg.h.magic == SBX_WIRE_MAGIC && cfg.h.type == SBX_MSG_CONFIG);
        FUZZ_CHECK(!cfg.workspace_bind || (dirs.workspace_dir && dirs.workspace_dir[0] == '/'));
        FUZZ_CHECK(!cfg.libexec_bind || (dirs.libexec_dir && dirs.libexec_dir[0] == '/'));
    }
    /* Each fd that came is handed back or closed. */
    for (int i = 0; i < 2; i++) {
        if (fds[i] < 0)
            continue;
        bool kept = fds[i] == dirs.workspace_tree || fds[i] == dirs.libexec_tree;
        FUZZ_CHECK(kept == (fcntl(fds[i], F_GETFD) >= 0));
        if (kept)
            close(fds[i]);
    }
}

static void s_spawn(size_t n)
{
    if (n < sizeof(sbx_wire_spawn_t))
        return; /* s_serve ignores it */
    s_buf[n < SBX_WIRE_MAX ? n : n - 1] = '\0';
    sbx_wire_spawn_t sp;
    memcpy(&sp, s_buf, sizeof sp);
    char **argv = NULL, **env = NULL;
    const char *cwd = "/home/user";
    if (sbx_wire_unpack_spawn(s_buf, n, &sp, s_vec, sizeof s_vec / sizeof *s_vec, &argv, &env,
                              &cwd) < 0)
        return;
    size_t argc = 0, envc = 0;
    for (; argv[argc]; argc++)
        FUZZ_CHECK(s_inside(argv[argc], s_buf, n));
    for (; env[envc]; envc++)
        FUZZ_CHECK(s_inside(env[envc], s_buf, n));
    FUZZ_CHECK(argc == sp.argc && argc > 0 && envc == sp.envc);
    FUZZ_CHECK(s_inside(cwd, s_buf, n));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size - 1 > SBX_WIRE_MAX)
        return 0; /* a datagram is at most SBX_WIRE_MAX */
    size_t n = size - 1;
    s_buf = malloc(n + 1);
    FUZZ_CHECK(s_buf);
    memcpy(s_buf, data + 1, n);
    if (data[0] & 1) {
        if (n < SBX_WIRE_MAX) /* the init reads CONFIG into all but the last byte */
            s_config(n, data[0] & 2, data[0] & 4);
    } else {
        s_spawn(n);
    }
    free(s_buf);
    s_buf = NULL;
    return 0;
}
