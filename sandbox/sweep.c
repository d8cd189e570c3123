/* sweep.c: removing what gateways killed before their teardown left on the host.
 *
 * Why: a gateway killed with SIGKILL (the OOM killer, a container runtime, kill -9) runs no
 * sbx_destroy. Its sandboxes still end (each init has a parent-death signal, and its control
 * socket closes), but their host run directories under the runtime dir (attach files), their
 * cgroup directories, and anything mounted under the runtime dir stay behind. The next
 * gateway to start calls sbx_sweep_stale once, before it makes sandboxes of its own.
 *
 * How each is told stale from live, so that a neighbour gateway sharing the runtime dir loses
 * nothing:
 *   - a run dir is owned by the flock its sandbox holds on it from creation to removal
 *     (cb_dir_create_locked in sbx_new); the kernel drops that lock when the holder dies, so a
 *     run dir whose lock we can take is abandoned (cb_sweep_unlocked_dirs);
 *   - a cgroup carries its gateway's pid in its name (cgroup.c, sbx_cgroup_sweep_stale);
 *   - mounts: sandboxes mount only in their own mount namespaces, so nothing of a live sandbox
 *     is ever mounted in ours below the runtime dir; whatever is there is detached first, since a
 *     mount point inside a run dir would stop its removal.
 * Removal is cb_rm_tree_at, by fds, never following a link.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>

#include "cb/alloc.h"
#include "cb/cleanup.h"
#include "cb/log.h"
#include "sbx_private.h"

/* Undo mountinfo's octal escapes ("\040" for a space) in place. */
static void s_unescape(char *s)
{
    char *out = s;
    for (char *in = s; *in; out++) {
        if (in[0] == '\\' && in[1] >= '0' && in[1] <= '3' && in[2] >= '0' && in[2] <= '7' &&
            in[3] >= '0' && in[3] <= '7') {
            *out = (char)((in[1] - '0') * 64 + (in[2] - '0') * 8 + (in[3] - '0'));
            in += 4;
        } else {
            *out = *in++;
        }
    }
    *out = '\0';
}

/* The mount points strictly below dir in our mount namespace, in mountinfo order (parents
 * before what is mounted on them). Caller owns return value (cb_strv_free); NULL when none. */
static char **s_mounts_below(const char *dir)
{
    cleanup_fclose FILE *f = fopen("/proc/self/mountinfo", "re");
    size_t dlen = strlen(dir), n = 0;
    char **list = NULL;
    char line[PATH_MAX * 4], mnt[PATH_MAX * 4];
    while (f && fgets(line, sizeof line, f)) {
        /* id parent maj:min root mountpoint opts ... */
        if (sscanf(line, "%*s %*s %*s %*s %16383s", mnt) != 1)
            continue;
        s_unescape(mnt);
        if (strncmp(mnt, dir, dlen) != 0 || mnt[dlen] != '/' || !mnt[dlen + 1])
            continue;
        list = cb_xrealloc(list, (n + 2) * sizeof *list);
        list[n++] = cb_xstrdup(mnt);
        list[n] = NULL;
    }
    return list;
}

/* Detach every mount below runtime_dir, the last mounted first. */
static void s_unmount_below(const char *runtime_dir)
{
    char real[PATH_MAX];
    const char *dir = realpath(runtime_dir, real) ? real : runtime_dir;
    char **list = s_mounts_below(dir);
    size_t n = 0, done = 0;
    while (list && list[n])
        n++;
    for (size_t i = n; i-- > 0;) {
        if (umount2(list[i], MNT_DETACH | UMOUNT_NOFOLLOW) == 0)
            done++;
        else if (errno != EINVAL && errno != ENOENT) /* EINVAL: gone with its parent already */
            cb_warn("could not unmount '%s' left in the runtime dir: %s", list[i], strerror(errno));
    }
    if (done)
        cb_info("unmounted %zu mounts left in the runtime dir %s", done, runtime_dir);
    cb_strv_free(list);
}

void sbx_sweep_stale(const char *runtime_dir)
{
    if (runtime_dir) {
        s_unmount_below(runtime_dir);
        size_t removed = cb_sweep_unlocked_dirs(runtime_dir, "s-");
        if (removed)
            cb_info("removed %zu sandbox run dirs left in %s by gateways that died", removed,
                    runtime_dir);
    }
    sbx_cgroup_sweep_stale();
}
