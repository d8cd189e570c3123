/* connfile.c: Jupyter connection info: the five channels' endpoints and the signing key.
 *
 * A kernel gets a fresh 32-byte random key (hex) and, by default, ipc:// sockets in its own
 * directory ("<dir>/k-1" ... "k-5", named as the kernel sees them): no TCP port, nothing
 * reachable from the network, no port race. With tcp the ports are chosen free on 127.0.0.1.
 *
 * The gateway never connects to those paths: code in the sandbox can replace a socket file by a
 * symlink, and a unix-socket connect follows every link (an absolute one against the gateway's
 * root). Each channel has instead one fd number for the kernel's whole life (sock_fd, owned by
 * the caller: the gateway's kernel.c), and every ZMQ socket that talks to the kernel connects to
 * "ipc:///proc/self/fd/N". N holds a placeholder until the caller has found and checked the
 * socket the kernel bound, then an O_PATH fd of that socket's inode: the magic link leads to that
 * inode and nowhere else, and a restart only puts another inode behind the same N, so endpoints
 * never change. jp_conninfo_endpoint is the one place endpoints are made.
 *
 * Which socket options a connection gets (message size, high-water marks) is the caller's policy,
 * not the protocol's: the gateway's kg_socket_limits.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <netinet/in.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "cb/cleanup.h"
#include "jupyter/connfile.h"

static const char *s_channel_names[JP_CH_COUNT] = {"shell", "iopub", "stdin", "control", "hb"};

const char *jp_channel_name(jp_channel_t ch)
{
    return ch < JP_CH_COUNT ? s_channel_names[ch] : "?";
}

/* Ask the kernel for a free loopback port. The kernel binds it moments later; the same small
 * window jupyter_client accepts. ipc (the default) has no such window. */
static int s_free_tcp_port(cb_error_t *err)
{
    cleanup_close int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return cb_error_make(err, errno, "socket");
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof addr;
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0 ||
        getsockname(fd, (struct sockaddr *)&addr, &len) < 0)
        return cb_error_make(err, errno, "find a free loopback port");
    return ntohs(addr.sin_port);
}

int jp_conninfo_new_key(char *out, cb_error_t *err)
{
    unsigned char raw[JP_KEY_HEX_LEN / 2];
    if (RAND_bytes(raw, sizeof raw) != 1)
        return cb_error_fail(err, CB_ERR_INTERNAL, "no randomness for a signing key");
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(out + 2 * i, 3, "%02x", raw[i]);
    return 0;
}

int jp_conninfo_init(jp_conninfo_t *ci, jp_transport_t transport, const char *kernel_dir,
                     const char *kernel_name, cb_error_t *err)
{
    memset(ci, 0, sizeof *ci);
    ci->transport = transport;
    snprintf(ci->kernel_name, sizeof ci->kernel_name, "%s", kernel_name);
    for (int ch = 0; ch < JP_CH_COUNT; ch++)
        ci->sock_fd[ch] = -1;

    if (jp_conninfo_new_key(ci->key, err) < 0)
        return -1;

    if (transport == JP_TRANSPORT_IPC) {
        int n = snprintf(ci->ip, sizeof ci->ip, "%s/k", kernel_dir);
        /* sun_path holds 108 bytes: "<ip>-N" must fit. */
        if (n < 0 || (size_t)n + 3 > sizeof(((struct sockaddr_un *)0)->sun_path))
            return cb_error_fail(err, CB_ERR_INVALID,
                                 "run dir '%s' is too long for ipc socket paths; set a shorter "
                                 "runtime directory",
                                 kernel_dir);
        for (int ch = 0; ch < JP_CH_COUNT; ch++)
            ci->ports[ch] = ch + 1;
        return 0;
    }
    snprintf(ci->ip, sizeof ci->ip, "127.0.0.1");
    for (int ch = 0; ch < JP_CH_COUNT; ch++) {
        int port = s_free_tcp_port(err);
        if (port < 0)
            return -1;
        ci->ports[ch] = port;
    }
    return 0;
}

void jp_conninfo_endpoint(const jp_conninfo_t *ci, jp_channel_t ch, char *buf, size_t size)
{
    if (ci->transport == JP_TRANSPORT_IPC)
        snprintf(buf, size, "ipc:///proc/self/fd/%d", ci->sock_fd[ch]);
    else
        snprintf(buf, size, "tcp://%s:%d", ci->ip, ci->ports[ch]);
}

void jp_conninfo_socket_name(const jp_conninfo_t *ci, jp_channel_t ch, char *buf, size_t size)
{
    snprintf(buf, size, "k-%d", ci->ports[ch]);
}

char *jp_conninfo_json(const jp_conninfo_t *ci, cb_error_t *err)
{
    /* One key and its value per line, as in the file it makes. */
    /* clang-format off */
    json_auto_t *doc = json_pack("{s:i, s:i, s:i, s:i, s:i, s:s, s:s, s:s, s:s, s:s}",
                                 "shell_port", ci->ports[JP_CH_SHELL],
                                 "iopub_port", ci->ports[JP_CH_IOPUB],
                                 "stdin_port", ci->ports[JP_CH_STDIN],
                                 "control_port", ci->ports[JP_CH_CONTROL],
                                 "hb_port", ci->ports[JP_CH_HB],
                                 "ip", ci->ip, "key", ci->key,
                                 "transport", ci->transport == JP_TRANSPORT_IPC ? "ipc" : "tcp",
                                 "signature_scheme", "hmac-sha256",
                                 "kernel_name", ci->kernel_name);
    /* clang-format on */
    char *text = doc ? json_dumps(doc, JSON_INDENT(1) | JSON_SORT_KEYS) : NULL;
    if (!text)
        cb_error_fail(err, CB_ERR_INTERNAL, "build connection info");
    return text;
}
