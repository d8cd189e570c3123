/* wire.c: the control messages between the sandbox library and cellblock-init (see
 * sbx_private.h for the conversation). One datagram per message on a SOCK_SEQPACKET pair, fds as
 * SCM_RIGHTS. Shared by both sides; no allocation, so it is safe anywhere. The init's unpacking
 * of CONFIG and SPAWN lives here too, apart from its setup, so the fuzz harness
 * (fuzz/fuzz_sandbox_wire.c) can reach it.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sbx_private.h"

static const char *s_step_names[SBX_STEP_COUNT] = {
#define X(name, text) text,
    SBX_STEP_MAP(X)
#undef X
};

const char *sbx_step_name(uint32_t step)
{
    return step < SBX_STEP_COUNT ? s_step_names[step] : "an unknown step";
}

int sbx_wire_send(int sock, const void *msg, size_t len, const int *fds, int nfds)
{
    struct iovec iov = {.iov_base = (void *)msg, .iov_len = len};
    union {
        char buf[CMSG_SPACE(3 * sizeof(int))];
        struct cmsghdr align;
    } control;
    memset(&control, 0, sizeof control);
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    if (nfds > 0) {
        if (nfds > 3) {
            errno = EINVAL;
            return -1;
        }
        mh.msg_control = control.buf;
        mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
        memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
    }
    ssize_t n;
    do
        n = sendmsg(sock, &mh, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    return n < 0 ? -1 : 0;
}

ssize_t sbx_wire_recv(int sock, void *buf, size_t size, int *fds, int max_fds)
{
    for (int i = 0; i < max_fds; i++)
        fds[i] = -1;
    struct iovec iov = {.iov_base = buf, .iov_len = size};
    union {
        char buf[CMSG_SPACE(8 * sizeof(int))];
        struct cmsghdr align;
    } control;
    struct msghdr mh = {.msg_iov = &iov,
                        .msg_iovlen = 1,
                        .msg_control = control.buf,
                        .msg_controllen = sizeof control.buf};
    ssize_t n;
    do
        n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -1;
    int got = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < count; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
            if (got < max_fds)
                fds[got++] = fd;
            else
                close(fd);
        }
    }
    if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
        for (int i = 0; i < got; i++) {
            close(fds[i]);
            fds[i] = -1;
        }
        errno = EMSGSIZE;
        return -1;
    }
    return n;
}

int sbx_wire_unpack_config(char *buf, size_t n, const int fds[2], sbx_wire_config_t *cfg,
                           sbx_wire_host_dirs_t *dirs)
{
    *dirs = (sbx_wire_host_dirs_t){.workspace_tree = -1, .libexec_tree = -1};
    memcpy(cfg, buf, sizeof *cfg);
    cfg->hostname[sizeof cfg->hostname - 1] = '\0';
    /* buf[n] is NUL, so each strlen below stops inside the message or at its end. */
    const char *end = buf + n, *next = buf + sizeof *cfg;
    if (cfg->workspace_bind && next < end) {
        dirs->workspace_dir = next;
        next += strlen(next) + 1;
    }
    if (cfg->libexec_bind && next < end)
        dirs->libexec_dir = next;
    int k = 0;
    if (cfg->fd_mask & SBX_CONFIG_WORKSPACE_TREE)
        dirs->workspace_tree = fds[k++];
    if (cfg->fd_mask & SBX_CONFIG_LIBEXEC_TREE)
        dirs->libexec_tree = fds[k++];
    for (int i = k; i < 2; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    if (cfg->h.magic != SBX_WIRE_MAGIC || cfg->h.type != SBX_MSG_CONFIG ||
        (cfg->fd_mask & ~(SBX_CONFIG_WORKSPACE_TREE | SBX_CONFIG_LIBEXEC_TREE)))
        return -1;
    if (cfg->workspace_bind && (!dirs->workspace_dir || dirs->workspace_dir[0] != '/'))
        return -1;
    if (cfg->libexec_bind && (!dirs->libexec_dir || dirs->libexec_dir[0] != '/'))
        return -1;
    if ((cfg->fd_mask & SBX_CONFIG_WORKSPACE_TREE) && dirs->workspace_tree < 0)
        return -1;
    return (cfg->fd_mask & SBX_CONFIG_LIBEXEC_TREE) && dirs->libexec_tree < 0 ? -1 : 0;
}

int sbx_wire_unpack_spawn(char *buf, size_t len, const sbx_wire_spawn_t *sp, char **vec, size_t cap,
                          char ***argv, char ***env, const char **cwd)
{
    size_t need = (size_t)sp->argc + sp->envc + 2;
    if (sp->argc == 0 || need > cap)
        return -1;
    char *p = buf + sizeof *sp, *end = buf + len;
    size_t k = 0;
    for (uint32_t i = 0; i < sp->argc + sp->envc + 1; i++) {
        char *nul = memchr(p, '\0', (size_t)(end - p));
        if (!nul)
            return -1;
        if (i == sp->argc) /* end of argv */
            vec[k++] = NULL;
        if (i < sp->argc + sp->envc)
            vec[k++] = p;
        else
            *cwd = p;
        p = nul + 1;
    }
    vec[k] = NULL;
    *argv = vec;
    *env = vec + sp->argc + 1;
    return 0;
}
