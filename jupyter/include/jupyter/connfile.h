/* jupyter/connfile.h: Jupyter connection info: the five channels, their endpoints, the signing
 * key, and the connection file's text.
 *
 * A kernel gets a fresh 32-byte random key (hex) and either ipc:// socket paths in its own
 * directory or free loopback TCP ports. Whoever connects to the kernel makes every endpoint with
 * jp_conninfo_endpoint; over ipc that names an fd number ("ipc:///proc/self/fd/N"), never a path
 * in a directory the kernel can write (see connfile.c for why). The caller owns those fds.
 *
 * Ownership: jp_conninfo_t is a plain value the caller owns (no heap inside); strings returned
 * say "Caller owns return value". Nothing here blocks: jp_conninfo_init may bind and close a
 * loopback socket (tcp), and reads no file. Not tied to any event loop.
 */
#ifndef JP_CONNFILE_H
#define JP_CONNFILE_H

#include <limits.h>
#include <stddef.h>

#include "cb/error.h"

/* How a kernel's sockets are reached: ipc (unix sockets, the default) or tcp on 127.0.0.1. */
typedef enum { JP_TRANSPORT_IPC = 0, JP_TRANSPORT_TCP } jp_transport_t;

typedef enum {
    JP_CH_SHELL = 0,
    JP_CH_IOPUB,
    JP_CH_STDIN,
    JP_CH_CONTROL,
    JP_CH_HB,
    JP_CH_COUNT
} jp_channel_t;

#define JP_KEY_HEX_LEN 64 /* 32 random bytes, hex */

typedef struct {
    jp_transport_t transport;
    char ip[PATH_MAX / 2];    /* tcp: "127.0.0.1"; ipc: the socket path prefix as the kernel
                                 sees it (in a sandbox "/run/cellblock/k-<id8>/k") */
    int ports[JP_CH_COUNT];   /* tcp: port numbers; ipc: suffixes 1..5 */
    int sock_fd[JP_CH_COUNT]; /* ipc: the fd number each channel's endpoint names
                                 ("ipc:///proc/self/fd/N"), fixed for the kernel's life: a
                                 placeholder until the kernel's socket is found, then an O_PATH
                                 fd of it (the caller owns them and closes them) */
    char key[JP_KEY_HEX_LEN + 1];
    char kernel_name[128];
} jp_conninfo_t;

/* "shell", "iopub", "stdin", "control", "hb"; "?" for anything else. Borrowed; static. */
const char *jp_channel_name(jp_channel_t ch);

/* A fresh random key: JP_KEY_HEX_LEN hex digits and a NUL into out. Returns 0, or -1 with err
 * when OpenSSL has no randomness. */
int jp_conninfo_new_key(char *out, cb_error_t *err);

/* Fill ci for a new kernel: a fresh random key, and ipc paths in kernel_dir (as the kernel sees
 * it; the connection file names these) or free loopback TCP ports. sock_fd are all -1. Returns
 * 0, or -1 with err (kernel_dir too long for a socket path, no free port, no randomness). */
int jp_conninfo_init(jp_conninfo_t *ci, jp_transport_t transport, const char *kernel_dir,
                     const char *kernel_name, cb_error_t *err);

/* The endpoint a ZMQ socket connects to for channel ch: "ipc:///proc/self/fd/<sock_fd>" or
 * "tcp://<ip>:<port>" into buf. The one place endpoints are made. */
void jp_conninfo_endpoint(const jp_conninfo_t *ci, jp_channel_t ch, char *buf, size_t size);

/* The ipc socket's name in the kernel's directory ("k-<port>") into buf. */
void jp_conninfo_socket_name(const jp_conninfo_t *ci, jp_channel_t ch, char *buf, size_t size);

/* The Jupyter connection file's text (sorted keys, indented). Caller owns return value; NULL
 * with err when a field is not valid UTF-8 (the kernel name, the ipc path). */
char *jp_conninfo_json(const jp_conninfo_t *ci, cb_error_t *err);

#endif
