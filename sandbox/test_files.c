/* test_files.c: workspace file access (files.c) against a fake sandbox root, in TAP.
 *
 * Needs none of the rest of the sandbox. In a private mount namespace of its own (as root, or
 * else as root of a fresh user namespace) it builds <tmp>/root with an etc/passwd marker and a
 * 1 MiB tmpfs at home/user, and fills a struct sbx by hand: root_fd is <tmp>/root,
 * workspace_dev and workspace_mnt_id the tmpfs's. A host "secret" lives at <tmp>/secret, outside
 * the fake root. Then it plants the symlinks hostile code in a sandbox would, and checks that
 * nothing outside the workspace is ever read or changed; the marker and the secret are compared
 * byte for byte at the end. A second mount of the workspace's own filesystem (same st_dev, as
 * /usr can be for a persistent workspace) checks that the mount id is compared too.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cb/cleanup.h"
#include "cb/tap.h"
#include "cb/util.h"
#include "sbx_private.h"

#define S_MARKER "root:x:0:0:fake-root-marker:/root:/bin/sh\n"
#define S_SECRET "host secret, never to be read\n"
#define S_OWNER 4242

typedef struct {
    char tmp[256];    /* <tmp> */
    char root[300];   /* <tmp>/root: the sandbox's "/" */
    char ws[300];     /* <tmp>/root/home/user */
    char proc[300];   /* <tmp>/root/proc */
    char secret[300]; /* <tmp>/secret, on the host, outside the fake root */
    bool real_root;   /* files get chowned to S_OWNER */
    bool have_proc;   /* the host's /proc is bound at <root>/proc */
    sbx_t sbx;
} s_env_t;

/* ------------------------------------------------------------------------------------------ */
/* Host-side helpers. */

static char *s_host(const s_env_t *env, const char *ws_rel)
{
    return cb_strdup_printf("%s/%s", env->ws, ws_rel);
}

static bool s_host_equals(const char *path, const char *want, size_t want_len)
{
    size_t len = 0;
    cleanup_free char *got = cb_read_file(path, 16 << 20, &len, NULL);
    return got && len == want_len && memcmp(got, want, len) == 0;
}

static bool s_host_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static void s_host_symlink(const s_env_t *env, const char *target, const char *ws_rel)
{
    cleanup_free char *at = s_host(env, ws_rel);
    if (symlink(target, at) < 0)
        CB_DIAG("symlink %s -> %s: %s", at, target, strerror(errno));
}

/* err, emptied, so that a message printed after a success is never a stale one. */
static cb_error_t *s_fresh(cb_error_t *err)
{
    cb_error_clear(err);
    return err;
}

/* The call failed with this kind and its message names the path as given. */
static void s_refused(int rc, const cb_error_t *err, cb_error_kind_t kind, const char *path,
                      const char *what)
{
    CB_OK(rc < 0 && err->kind == kind && strstr(err->msg, path), "%s is refused as %s (%s: %s)",
          what, cb_error_kind_name(kind), rc < 0 ? cb_error_kind_name(err->kind) : "succeeded",
          rc < 0 ? err->msg : "");
}

/* ------------------------------------------------------------------------------------------ */
/* Set-up. */

static int s_write_proc(const char *path, const char *text)
{
    cleanup_close int fd = open(path, O_WRONLY | O_CLOEXEC);
    return fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text) ? -1 : 0;
}

/* A private mount namespace: as root directly, else as root of a new user namespace. */
static void s_enter_namespace(s_env_t *env)
{
    if (unshare(CLONE_NEWNS) == 0) {
        env->real_root = getuid() == 0;
    } else {
        int first = errno;
        uid_t uid = getuid();
        gid_t gid = getgid();
        if (unshare(CLONE_NEWUSER | CLONE_NEWNS) < 0)
            CB_SKIP_ALL("no mount namespace (unshare: %s; with a user namespace: %s)",
                        strerror(first), strerror(errno));
        char map[64];
        snprintf(map, sizeof map, "0 %u 1", (unsigned)uid);
        if (s_write_proc("/proc/self/uid_map", map) < 0)
            CB_SKIP_ALL("cannot write uid_map: %s", strerror(errno));
        snprintf(map, sizeof map, "0 %u 1", (unsigned)gid);
        if (s_write_proc("/proc/self/setgroups", "deny") < 0 ||
            s_write_proc("/proc/self/gid_map", map) < 0)
            CB_SKIP_ALL("cannot write gid_map: %s", strerror(errno));
        CB_DIAG("running in a user namespace (unshare(CLONE_NEWNS): %s)", strerror(first));
    }
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        CB_SKIP_ALL("cannot make mounts private: %s", strerror(errno));
}

static void s_setup(s_env_t *env)
{
    snprintf(env->tmp, sizeof env->tmp, "/tmp/cb-test-files-XXXXXX");
    if (!mkdtemp(env->tmp))
        CB_SKIP_ALL("mkdtemp: %s", strerror(errno));
    s_enter_namespace(env);
    snprintf(env->root, sizeof env->root, "%s/root", env->tmp);
    snprintf(env->ws, sizeof env->ws, "%s/root/home/user", env->tmp);
    snprintf(env->proc, sizeof env->proc, "%s/root/proc", env->tmp);
    snprintf(env->secret, sizeof env->secret, "%s/secret", env->tmp);
    cleanup_free char *etc = cb_strdup_printf("%s/etc", env->root);
    cleanup_free char *passwd = cb_strdup_printf("%s/etc/passwd", env->root);
    cb_error_t err = {0};
    if (cb_mkdir_p(env->ws, 0755, &err) < 0 || cb_mkdir_p(etc, 0755, &err) < 0 ||
        cb_write_file(passwd, S_MARKER, strlen(S_MARKER), 0644, &err) < 0 ||
        cb_write_file(env->secret, S_SECRET, strlen(S_SECRET), 0600, &err) < 0)
        CB_SKIP_ALL("building the fake root: %s", err.msg);
    /* Owned by the sandbox user, as a real sandbox's workspace is. */
    char opts[64];
    snprintf(opts, sizeof opts, "size=1m,mode=0755,uid=%d,gid=%d", env->real_root ? S_OWNER : 0,
             env->real_root ? S_OWNER : 0);
    if (mount("cb-test-ws", env->ws, "tmpfs", MS_NOSUID | MS_NODEV, opts) < 0)
        CB_SKIP_ALL("cannot mount a tmpfs: %s", strerror(errno));
    /* A procfs inside the fake root, so that /proc/self/root really is a magic link there. */
    env->have_proc =
        mkdir(env->proc, 0755) == 0 && mount("/proc", env->proc, NULL, MS_BIND | MS_REC, NULL) == 0;
    if (!env->have_proc)
        CB_DIAG("no /proc in the fake root (%s): magic links are tested as missing files",
                strerror(errno));

    struct stat st;
    struct statx stx;
    env->sbx.root_fd = open(env->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (env->sbx.root_fd < 0 || stat(env->ws, &st) < 0 ||
        statx(AT_FDCWD, env->ws, 0, STATX_MNT_ID, &stx) < 0)
        CB_SKIP_ALL("open the fake root: %s", strerror(errno));
    if (!(stx.stx_mask & STATX_MNT_ID))
        CB_SKIP_ALL("statx reports no mount ids here");
    env->sbx.workspace_dev = st.st_dev;
    env->sbx.workspace_mnt_id = stx.stx_mnt_id;
    env->sbx.host_uid = env->real_root ? S_OWNER : 0;
    env->sbx.host_gid = env->real_root ? S_OWNER : 0;
}

static void s_teardown(s_env_t *env)
{
    close(env->sbx.root_fd);
    bool unmounted = umount2(env->ws, MNT_DETACH) == 0 &&
                     (!env->have_proc || umount2(env->proc, MNT_DETACH) == 0);
    cb_error_t err = {0};
    if (!unmounted || cb_rm_rf(env->tmp, &err) < 0)
        CB_DIAG("left %s behind (%s)", env->tmp, unmounted ? err.msg : strerror(errno));
}

/* ------------------------------------------------------------------------------------------ */
/* Cases. */

static void s_test_round_trip(s_env_t *env)
{
    sbx_t *sbx = &env->sbx;
    cb_error_t err = {0};
    cb_buf_t buf = {0};
    int rc = sbx_file_write(sbx, "hello.txt", "hello\n", 6, false, s_fresh(&err));
    CB_OK(rc == 0, "write a relative path (%s)", err.msg);
    rc = sbx_file_read(sbx, "/home/user/hello.txt", 100, &buf, s_fresh(&err));
    CB_OK(rc == 0 && buf.len == 6 && !memcmp(buf.data, "hello\n", 6),
          "read it back by its absolute path (%s)", err.msg);
    cleanup_free char *host = s_host(env, "hello.txt");
    CB_OK(s_host_equals(host, "hello\n", 6), "the file is in the workspace tmpfs");
    struct stat st;
    CB_OK(stat(host, &st) == 0 && (st.st_mode & 0777) == 0644, "new files are 0644");
    if (env->real_root)
        CB_OK(st.st_uid == S_OWNER && st.st_gid == S_OWNER, "owned by the sandbox user (%u:%u)",
              (unsigned)st.st_uid, (unsigned)st.st_gid);

    char bin[300];
    for (size_t i = 0; i < sizeof bin; i++)
        bin[i] = (char)(i % 7 == 0 ? 0 : i);
    rc = sbx_file_write(sbx, "/home/user/bin.dat", bin, sizeof bin, false, s_fresh(&err));
    rc = rc < 0 ? rc : sbx_file_read(sbx, "./bin.dat", sizeof bin, &buf, s_fresh(&err));
    CB_OK(rc == 0 && buf.len == sizeof bin && !memcmp(buf.data, bin, sizeof bin),
          "binary data with NULs round-trips (%s)", err.msg);

    chmod(host, 0755);
    rc = sbx_file_write(sbx, "hello.txt", "again", 5, false, s_fresh(&err));
    CB_OK(rc == 0 && s_host_equals(host, "again", 5) && stat(host, &st) == 0 &&
              (st.st_mode & 0777) == 0755,
          "a rewrite replaces the contents and keeps the mode");
    rc = sbx_file_write(sbx, "empty", "", 0, false, s_fresh(&err));
    rc = rc < 0 ? rc : sbx_file_read(sbx, "empty", 10, &buf, s_fresh(&err));
    CB_OK(rc == 0 && buf.len == 0 && buf.data && !buf.data[0], "an empty file round-trips");

    rc = sbx_file_write(sbx, "a/b/c.txt", "x", 1, false, s_fresh(&err));
    s_refused(rc, &err, CB_ERR_NOT_FOUND, "a/b/c.txt", "write without make_parents");
    rc = sbx_file_write(sbx, "a/b/c.txt", "x", 1, true, s_fresh(&err));
    cleanup_free char *c = s_host(env, "a/b/c.txt");
    CB_OK(rc == 0 && s_host_equals(c, "x", 1), "write with make_parents (%s)", err.msg);
    cleanup_free char *ab = s_host(env, "a/b");
    if (env->real_root)
        CB_OK(stat(ab, &st) == 0 && st.st_uid == S_OWNER, "made parents belong to the user");

    s_refused(sbx_file_write(sbx, "a", "x", 1, false, s_fresh(&err)), &err, CB_ERR_INVALID, "a",
              "write over a directory");
    s_refused(sbx_file_write(sbx, "new/", "x", 1, true, s_fresh(&err)), &err, CB_ERR_INVALID,
              "new/", "write to a path ending in /");
    s_refused(sbx_file_write(sbx, "/home/user", "x", 1, false, s_fresh(&err)), &err, CB_ERR_INVALID,
              "/home/user", "write to the workspace itself");
    s_refused(sbx_file_read(sbx, "a", 100, &buf, s_fresh(&err)), &err, CB_ERR_INVALID, "a",
              "read of a directory");
    s_refused(sbx_file_read(sbx, "nope.txt", 100, &buf, s_fresh(&err)), &err, CB_ERR_NOT_FOUND,
              "nope.txt", "read of a missing file");
    cleanup_free char *fifo = s_host(env, "fifo");
    if (mkfifo(fifo, 0644) == 0)
        s_refused(sbx_file_read(sbx, "fifo", 100, &buf, s_fresh(&err)), &err, CB_ERR_INVALID,
                  "fifo", "read of a FIFO (without hanging)");

    rc = sbx_file_write(sbx, "hundred", bin, 100, false, s_fresh(&err));
    rc = sbx_file_read(sbx, "hundred", 99, &buf, s_fresh(&err));
    CB_OK(rc < 0 && err.kind == CB_ERR_LIMIT && strstr(err.msg, "100") && strstr(err.msg, "99"),
          "read over max_bytes is CB_ERR_LIMIT naming both sizes (%s)", err.msg);
    CB_OK(sbx_file_read(sbx, "hundred", 100, &buf, s_fresh(&err)) == 0 && buf.len == 100,
          "read of exactly max_bytes works");
    cb_buf_free(&buf);
}

static sbx_dirent_t *s_find(sbx_dirent_t *list, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(list[i].name, name))
            return &list[i];
    return NULL;
}

static void s_test_list(s_env_t *env)
{
    sbx_t *sbx = &env->sbx;
    cb_error_t err = {0};
    sbx_file_mkdir(sbx, "ls/c", true, s_fresh(&err));
    sbx_file_write(sbx, "ls/b.txt", "bbb", 3, false, s_fresh(&err));
    sbx_file_write(sbx, "ls/a.txt", "a", 1, false, s_fresh(&err));
    s_host_symlink(env, "a.txt", "ls/d");
    size_t n = 0;
    sbx_dirent_t *list = sbx_file_list(sbx, "ls", &n, s_fresh(&err));
    CB_OK(list && n == 4, "list gives the four entries (%s)", err.msg);
    if (list && n == 4) {
        CB_OK(!strcmp(list[0].name, "a.txt") && !strcmp(list[1].name, "b.txt") &&
                  !strcmp(list[2].name, "c") && !strcmp(list[3].name, "d"),
              "sorted by name");
        CB_OK(list[0].type == SBX_FILE_REGULAR && list[0].size == 1 && list[1].size == 3,
              "regular files with their sizes");
        CB_OK(list[2].type == SBX_FILE_DIR, "a directory");
        CB_OK(list[3].type == SBX_FILE_SYMLINK && list[3].size == 5,
              "a symlink is a symlink (lstat, not followed)");
        CB_OK(list[0].mtime_ms > 1600000000000LL, "mtime in ms (%lld)",
              (long long)list[0].mtime_ms);
    }
    sbx_dirents_free(list, n);

    list = sbx_file_list(sbx, "/home/user", &n, s_fresh(&err));
    CB_OK(list && s_find(list, n, "ls") && !s_find(list, n, ".") && !s_find(list, n, ".."),
          "the workspace lists without . and ..");
    sbx_dirents_free(list, n);
    list = sbx_file_list(sbx, "ls/a.txt", &n, s_fresh(&err));
    s_refused(list ? 0 : -1, &err, CB_ERR_INVALID, "ls/a.txt", "list of a file");
    list = sbx_file_list(sbx, "nodir", &n, s_fresh(&err));
    s_refused(list ? 0 : -1, &err, CB_ERR_NOT_FOUND, "nodir", "list of a missing dir");
}

static void s_test_mkdir_remove(s_env_t *env)
{
    sbx_t *sbx = &env->sbx;
    cb_error_t err = {0};
    cleanup_free char *d1 = s_host(env, "d1");
    struct stat st;
    CB_OK(sbx_file_mkdir(sbx, "d1", false, s_fresh(&err)) == 0 && stat(d1, &st) == 0 &&
              S_ISDIR(st.st_mode),
          "mkdir (%s)", err.msg);
    if (env->real_root)
        CB_OK(st.st_uid == S_OWNER, "a made directory belongs to the sandbox user");
    CB_OK(sbx_file_mkdir(sbx, "/home/user/d1", false, s_fresh(&err)) == 0,
          "mkdir of an existing dir");
    s_refused(sbx_file_mkdir(sbx, "p/q/r", false, s_fresh(&err)), &err, CB_ERR_NOT_FOUND, "p/q/r",
              "mkdir of a missing parent without parents");
    cleanup_free char *pqr = s_host(env, "p/q/r");
    CB_OK(sbx_file_mkdir(sbx, "p/q/r", true, s_fresh(&err)) == 0 && stat(pqr, &st) == 0 &&
              S_ISDIR(st.st_mode),
          "mkdir with parents (%s)", err.msg);
    CB_OK(sbx_file_mkdir(sbx, "p//q/./r/", true, s_fresh(&err)) == 0, "mkdir -p of existing dirs");
    s_refused(sbx_file_mkdir(sbx, "hello.txt", false, s_fresh(&err)), &err, CB_ERR_INVALID,
              "hello.txt", "mkdir over a file");
    s_refused(sbx_file_mkdir(sbx, "hello.txt/sub", true, s_fresh(&err)), &err, CB_ERR_INVALID,
              "hello.txt/sub", "mkdir under a file");

    sbx_file_write(sbx, "rm/f", "x", 1, true, s_fresh(&err));
    sbx_file_mkdir(sbx, "rm/empty", false, s_fresh(&err));
    sbx_file_write(sbx, "rm/full/deep/er/f", "x", 1, true, s_fresh(&err));
    s_host_symlink(env, "/etc", "rm/full/etclink");
    cleanup_free char *f = s_host(env, "rm/f");
    cleanup_free char *empty = s_host(env, "rm/empty");
    cleanup_free char *full = s_host(env, "rm/full");
    CB_OK(sbx_file_remove(sbx, "rm/f", false, s_fresh(&err)) == 0 && !s_host_exists(f),
          "remove a file");
    CB_OK(sbx_file_remove(sbx, "rm/empty", false, s_fresh(&err)) == 0 && !s_host_exists(empty),
          "remove an empty directory");
    s_refused(sbx_file_remove(sbx, "rm/full", false, s_fresh(&err)), &err, CB_ERR_INVALID,
              "rm/full", "remove of a non-empty directory without recursive");
    CB_OK(s_host_exists(full), "... and it is still there");
    CB_OK(sbx_file_remove(sbx, "/home/user/rm/full", true, s_fresh(&err)) == 0 &&
              !s_host_exists(full),
          "recursive remove (it held a symlink to /etc) (%s)", err.msg);
    s_refused(sbx_file_remove(sbx, "rm/f", false, s_fresh(&err)), &err, CB_ERR_NOT_FOUND, "rm/f",
              "remove of a missing file");
    const char *ws_names[] = {"/home/user", "", ".", "/home/user/", "rm/.."};
    for (size_t i = 0; i < sizeof ws_names / sizeof *ws_names; i++)
        s_refused(sbx_file_remove(sbx, ws_names[i], true, s_fresh(&err)), &err, CB_ERR_INVALID,
                  ws_names[i], "remove of the workspace itself");

    /* Removing a symlink removes the link, never what it points to. */
    s_host_symlink(env, "/etc", "etcdir2");
    cleanup_free char *link = s_host(env, "etcdir2");
    CB_OK(sbx_file_remove(sbx, "etcdir2", true, s_fresh(&err)) == 0 && !s_host_exists(link),
          "remove of a symlink to a directory removes the link (%s)", err.msg);
}

static void s_test_outside(s_env_t *env)
{
    sbx_t *sbx = &env->sbx;
    cb_error_t err = {0};
    cb_buf_t buf = {0};
    const char *outside[] = {"/etc/passwd", "../etc/passwd", "/home/user/../../etc/passwd",
                             "/home/userx", "/home/userx/f", "a/../../etc/passwd",
                             "/",           "//home/user/f"};
    for (size_t i = 0; i < sizeof outside / sizeof *outside; i++) {
        s_refused(sbx_file_read(sbx, outside[i], 4096, &buf, s_fresh(&err)), &err, CB_ERR_INVALID,
                  outside[i], "read of an outside path");
        s_refused(sbx_file_write(sbx, outside[i], "pwned", 5, true, s_fresh(&err)), &err,
                  CB_ERR_INVALID, outside[i], "write to an outside path");
    }
    CB_OK(strstr(err.msg, "outside the workspace /home/user"), "the message says why (%s)",
          err.msg);
    s_refused(sbx_file_mkdir(sbx, "/tmp/x", true, s_fresh(&err)), &err, CB_ERR_INVALID, "/tmp/x",
              "mkdir outside");
    s_refused(sbx_file_remove(sbx, "../../etc", true, s_fresh(&err)), &err, CB_ERR_INVALID,
              "../../etc", "remove outside");
    size_t n = 0;
    sbx_dirent_t *list = sbx_file_list(sbx, "/etc", &n, s_fresh(&err));
    s_refused(list ? 0 : -1, &err, CB_ERR_INVALID, "/etc", "list outside");

    char *longp = malloc(PATH_MAX + 10);
    memset(longp, 'a', PATH_MAX + 9);
    longp[PATH_MAX + 9] = '\0';
    CB_OK(sbx_file_read(sbx, longp, 10, &buf, s_fresh(&err)) < 0 && err.kind == CB_ERR_INVALID,
          "a path over PATH_MAX is refused (%s)", err.msg);
    free(longp);
    CB_OK(sbx_file_read(sbx, NULL, 10, &buf, s_fresh(&err)) < 0 && err.kind == CB_ERR_INVALID,
          "a NULL path is refused");
    cb_buf_free(&buf);
}

static void s_test_symlinks(s_env_t *env)
{
    sbx_t *sbx = &env->sbx;
    cb_error_t err = {0};
    cb_buf_t buf = {0};
    cleanup_free char *etc_x = cb_strdup_printf("%s/etc/x", env->root);
    cleanup_free char *etc_y = cb_strdup_printf("%s/etc/y", env->root);
    cleanup_free char *pw = s_host(env, "pw");

    /* To the sandbox's own /etc/passwd: on the root tmpfs, not the workspace. */
    s_host_symlink(env, "/etc/passwd", "pw");
    int rc = sbx_file_read(sbx, "pw", 4096, &buf, s_fresh(&err));
    s_refused(rc, &err, CB_ERR_INVALID, "pw", "read through a symlink to /etc/passwd");
    CB_OK(strstr(err.msg, "resolves outside the workspace") &&
              !strstr(cb_buf_str(&buf), "fake-root-marker"),
          "... by the st_dev check, and no content comes back");
    s_refused(sbx_file_write(sbx, "pw", "pwned", 5, false, s_fresh(&err)), &err, CB_ERR_INVALID,
              "pw", "write through a symlink to /etc/passwd");
    CB_OK(strstr(err.msg, "symlink"), "... saying it is a symlink (%s)", err.msg);
    struct stat st;
    CB_OK(lstat(pw, &st) == 0 && S_ISLNK(st.st_mode), "... and the link is left alone");

    /* To the host's secret, relative and absolute: inside the sandbox's root these lead
     * nowhere. */
    s_host_symlink(env, "../../../secret", "s1"); /* from root/home/user: <tmp>/secret */
    s_host_symlink(env, env->secret, "s2");
    const char *secrets[] = {"s1", "s2"};
    for (size_t i = 0; i < 2; i++) {
        rc = sbx_file_read(sbx, secrets[i], 4096, &buf, s_fresh(&err));
        s_refused(rc, &err, CB_ERR_NOT_FOUND, secrets[i],
                  "read through a symlink to the host secret finds nothing");
        s_refused(sbx_file_write(sbx, secrets[i], "pwned", 5, false, s_fresh(&err)), &err,
                  CB_ERR_INVALID, secrets[i], "write through a symlink to the host secret");
    }

    /* A magic link: with a procfs in the root, /proc/self/root is refused by
     * RESOLVE_NO_MAGICLINKS (ELOOP); without one (as in a real sandbox, whose procfs does not
     * know the gateway's pid, so "self" is missing) the path simply does not exist. */
    s_host_symlink(env, "/proc/self/root/etc/passwd", "magic");
    rc = sbx_file_read(sbx, "magic", 4096, &buf, s_fresh(&err));
    if (env->have_proc)
        CB_OK(rc < 0 && err.kind == CB_ERR_INVALID && err.errnum == ELOOP,
              "a magic link is refused with ELOOP (%s)", err.msg);
    else
        s_refused(rc, &err, CB_ERR_NOT_FOUND, "magic", "a magic link without /proc");
    CB_OK(!strstr(cb_buf_str(&buf), "root:"), "... and no passwd content comes back");

    /* Symlinks that stay inside are followed, relative and absolute. */
    s_host_symlink(env, "hello.txt", "rel");
    s_host_symlink(env, "/home/user/hello.txt", "absin");
    CB_OK(sbx_file_read(sbx, "rel", 100, &buf, s_fresh(&err)) == 0 &&
              !strcmp(cb_buf_str(&buf), "again"),
          "a relative in-workspace symlink is readable (%s)", err.msg);
    CB_OK(sbx_file_read(sbx, "absin", 100, &buf, s_fresh(&err)) == 0 &&
              !strcmp(cb_buf_str(&buf), "again"),
          "an absolute in-workspace symlink is readable (%s)", err.msg);
    s_host_symlink(env, "a", "alink");
    CB_OK(sbx_file_write(sbx, "alink/via.txt", "v", 1, true, s_fresh(&err)) == 0 &&
              sbx_file_read(sbx, "a/via.txt", 10, &buf, s_fresh(&err)) == 0,
          "writing through an in-workspace directory symlink works (%s)", err.msg);

    /* A directory component pointing outside. */
    s_host_symlink(env, "/etc", "etcdir");
    s_refused(sbx_file_write(sbx, "etcdir/x", "pwned", 5, false, s_fresh(&err)), &err,
              CB_ERR_INVALID, "etcdir/x", "write under a symlink to /etc");
    s_refused(sbx_file_write(sbx, "etcdir/x", "pwned", 5, true, s_fresh(&err)), &err,
              CB_ERR_INVALID, "etcdir/x", "write with make_parents under a symlink to /etc");
    s_refused(sbx_file_mkdir(sbx, "etcdir/y", false, s_fresh(&err)), &err, CB_ERR_INVALID,
              "etcdir/y", "mkdir under a symlink to /etc");
    s_refused(sbx_file_mkdir(sbx, "etcdir/y/z", true, s_fresh(&err)), &err, CB_ERR_INVALID,
              "etcdir/y/z", "mkdir -p under a symlink to /etc");
    s_refused(sbx_file_read(sbx, "etcdir/passwd", 4096, &buf, s_fresh(&err)), &err, CB_ERR_INVALID,
              "etcdir/passwd", "read under a symlink to /etc");
    s_refused(sbx_file_remove(sbx, "etcdir/passwd", false, s_fresh(&err)), &err, CB_ERR_INVALID,
              "etcdir/passwd", "remove under a symlink to /etc");
    size_t n = 0;
    sbx_dirent_t *list = sbx_file_list(sbx, "etcdir", &n, s_fresh(&err));
    s_refused(list ? 0 : -1, &err, CB_ERR_INVALID, "etcdir", "list of a symlink to /etc");
    CB_OK(!s_host_exists(etc_x) && !s_host_exists(etc_y), "nothing was made in the root's /etc");

    /* ".." that passes the lexical check but climbs out through a symlink. */
    s_host_symlink(env, "..", "up");
    s_host_symlink(env, "/", "rootlink");
    s_refused(sbx_file_read(sbx, "up/../etc/passwd", 4096, &buf, s_fresh(&err)), &err,
              CB_ERR_INVALID, "up/../etc/passwd", "read out through a symlink to ..");
    s_refused(sbx_file_read(sbx, "rootlink/etc/passwd", 4096, &buf, s_fresh(&err)), &err,
              CB_ERR_INVALID, "rootlink/etc/passwd", "read through a symlink to /");
    s_refused(sbx_file_write(sbx, "rootlink/etc/passwd", "pwned", 5, false, s_fresh(&err)), &err,
              CB_ERR_INVALID, "rootlink/etc/passwd", "write through a symlink to /");
    s_refused(sbx_file_remove(sbx, "up/../etc/passwd", false, s_fresh(&err)), &err, CB_ERR_INVALID,
              "up/../etc/passwd", "remove out through a symlink to ..");
    cb_buf_free(&buf);
}

/* The workspace's own filesystem mounted a second time at <root>/mirror: same st_dev, another
 * mount, as the host's /usr can be beside a persistent workspace. A symlink there is refused. */
static void s_test_same_fs_mount(s_env_t *env)
{
    sbx_t *sbx = &env->sbx;
    cb_error_t err = {0};
    cb_buf_t buf = {0};
    cleanup_free char *src = s_host(env, "mirror-src");
    cleanup_free char *file = s_host(env, "mirror-src/f");
    cleanup_free char *mirror = cb_strdup_printf("%s/mirror", env->root);
    if (mkdir(src, 0755) < 0 || cb_write_file(file, "same fs", 7, 0644, &err) < 0 ||
        mkdir(mirror, 0755) < 0 || mount(src, mirror, NULL, MS_BIND, NULL) < 0) {
        CB_DIAG("no second mount of the workspace (%s): skipping the mount id check",
                strerror(errno));
        rmdir(mirror);
        cb_rm_rf(src, NULL);
        return;
    }
    struct stat st;
    CB_OK(stat(mirror, &st) == 0 && st.st_dev == sbx->workspace_dev,
          "the mirror shares the workspace's st_dev");
    s_host_symlink(env, "/mirror/f", "via-mirror");
    s_refused(sbx_file_read(sbx, "via-mirror", 100, &buf, s_fresh(&err)), &err, CB_ERR_INVALID,
              "via-mirror", "read through a symlink onto another mount of the same filesystem");
    CB_OK(strstr(err.msg, "resolves outside the workspace"), "... by the mount id check (%s)",
          err.msg);
    s_host_symlink(env, "/mirror", "mirror-dir");
    s_refused(sbx_file_write(sbx, "mirror-dir/g", "x", 1, false, s_fresh(&err)), &err,
              CB_ERR_INVALID, "mirror-dir/g", "write under a symlink to that mount");
    CB_OK(sbx_file_read(sbx, "mirror-src/f", 100, &buf, s_fresh(&err)) == 0 &&
              !strcmp(cb_buf_str(&buf), "same fs"),
          "the same file by its path in the workspace reads (%s)", err.msg);
    umount2(mirror, MNT_DETACH);
    rmdir(mirror);
    cb_rm_rf(src, NULL);
    cleanup_free char *l1 = s_host(env, "via-mirror");
    cleanup_free char *l2 = s_host(env, "mirror-dir");
    unlink(l1);
    unlink(l2);
    cb_buf_free(&buf);
}

static void s_test_full(s_env_t *env)
{
    sbx_t *sbx = &env->sbx;
    cb_error_t err = {0};
    cb_buf_t buf = {0};
    size_t big_len = 2u << 20;
    cleanup_free char *big = calloc(1, big_len);
    sbx_file_write(sbx, "keep.txt", "precious", 8, false, s_fresh(&err));
    int rc = sbx_file_write(sbx, "keep.txt", big, big_len, false, s_fresh(&err));
    CB_OK(rc < 0 && err.errnum == ENOSPC && strstr(err.msg, "workspace is full") &&
              strstr(err.msg, "keep.txt"),
          "filling the workspace fails with ENOSPC (%s)", err.msg);
    CB_OK(sbx_file_read(sbx, "keep.txt", 100, &buf, s_fresh(&err)) == 0 &&
              !strcmp(cb_buf_str(&buf), "precious"),
          "... and the old contents survive");
    rc = sbx_file_write(sbx, "big.bin", big, big_len, false, s_fresh(&err));
    cleanup_free char *host_big = s_host(env, "big.bin");
    CB_OK(rc < 0 && err.errnum == ENOSPC && !s_host_exists(host_big),
          "a new file that does not fit is not left behind");
    size_t n = 0;
    sbx_dirent_t *list = sbx_file_list(sbx, "", &n, s_fresh(&err));
    bool temp_left = false;
    for (size_t i = 0; list && i < n; i++)
        temp_left |= !strncmp(list[i].name, ".cellblock-write-", 17);
    CB_OK(list && !temp_left, "no temp file is left behind");
    sbx_dirents_free(list, n);
    cb_buf_free(&buf);
}

/* Nothing outside the workspace changed: the marker, the secret, and the fake root's tree. */
static void s_test_untouched(s_env_t *env)
{
    cleanup_free char *passwd = cb_strdup_printf("%s/etc/passwd", env->root);
    CB_OK(s_host_equals(passwd, S_MARKER, strlen(S_MARKER)),
          "the fake root's etc/passwd is byte-identical");
    CB_OK(s_host_equals(env->secret, S_SECRET, strlen(S_SECRET)),
          "the host secret is byte-identical");
    const char *dirs[] = {env->root, "etc", "home"};
    size_t want[] = {env->have_proc ? 3u : 2u, 1, 1};
    for (size_t i = 0; i < 3; i++) {
        cleanup_free char *path = i ? cb_strdup_printf("%s/%s", env->root, dirs[i]) : NULL;
        DIR *d = opendir(path ? path : env->root);
        size_t count = 0;
        for (struct dirent *e; d && (e = readdir(d));)
            count += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
        if (d)
            closedir(d);
        CB_OK(count == want[i], "nothing new in the fake root's %s (%zu entries)",
              i ? dirs[i] : "/", count);
    }
}

/* stat, rename and open_dir (E2B's Stat, Move and watches) by the same rules: a final symlink
 * is described or moved as itself, never followed; a parent through a link out is refused. */
static void s_test_stat_rename(s_env_t *env)
{
    sbx_t *sbx = &env->sbx;
    cb_error_t err = {0};
    cleanup_free char *etc_moved = cb_strdup_printf("%s/etc/moved", env->root);
    CB_OK(sbx_file_write(sbx, "st/f.txt", "12345", 5, true, s_fresh(&err)) == 0,
          "a file to stat (%s)", err.msg);
    sbx_dirent_t *e = sbx_file_stat(sbx, "st/f.txt", s_fresh(&err));
    CB_OK(e && e->type == SBX_FILE_REGULAR && e->size == 5 && (e->mode & 0777) == 0644 &&
              !strcmp(e->name, "f.txt") && !e->link,
          "stat of a file: its type, size, mode and name (%s)", err.msg);
    sbx_dirents_free(e, e ? 1 : 0);
    e = sbx_file_stat(sbx, "/home/user", s_fresh(&err));
    CB_OK(e && e->type == SBX_FILE_DIR, "stat of the workspace itself (%s)", err.msg);
    sbx_dirents_free(e, e ? 1 : 0);
    s_host_symlink(env, "/etc/passwd", "st/pw");
    e = sbx_file_stat(sbx, "st/pw", s_fresh(&err));
    CB_OK(e && e->type == SBX_FILE_SYMLINK && e->link && !strcmp(e->link, "/etc/passwd"),
          "stat of a symlink out describes the link, not its target (%s)", err.msg);
    sbx_dirents_free(e, e ? 1 : 0);
    s_host_symlink(env, "/etc", "st/etc");
    e = sbx_file_stat(sbx, "st/etc/passwd", s_fresh(&err));
    s_refused(e ? 0 : -1, &err, CB_ERR_INVALID, "st/etc/passwd", "stat under a symlink to /etc");
    sbx_dirents_free(e, e ? 1 : 0);
    s_refused(sbx_file_stat(sbx, "../x", s_fresh(&err)) ? 0 : -1, &err, CB_ERR_INVALID, "../x",
              "stat of ../x");

    CB_OK(sbx_file_rename(sbx, "st/f.txt", "st/g.txt", s_fresh(&err)) == 0 &&
              !sbx_file_stat(sbx, "st/f.txt", NULL),
          "rename within the workspace (%s)", err.msg);
    CB_OK(sbx_file_rename(sbx, "st/pw", "st/pw2", s_fresh(&err)) == 0, "rename of a symlink (%s)",
          err.msg);
    e = sbx_file_stat(sbx, "st/pw2", s_fresh(&err));
    CB_OK(e && e->type == SBX_FILE_SYMLINK &&
              s_host_equals(env->secret, S_SECRET, strlen(S_SECRET)),
          "... moves the link itself");
    sbx_dirents_free(e, e ? 1 : 0);
    s_refused(sbx_file_rename(sbx, "st/g.txt", "st/etc/moved", s_fresh(&err)), &err, CB_ERR_INVALID,
              "st/etc/moved", "rename into a symlink to /etc");
    s_refused(sbx_file_rename(sbx, "st/etc/passwd", "st/stolen", s_fresh(&err)), &err,
              CB_ERR_INVALID, "st/etc/passwd", "rename out of a symlink to /etc");
    s_refused(sbx_file_rename(sbx, "st/g.txt", "/tmp/g.txt", s_fresh(&err)), &err, CB_ERR_INVALID,
              "/tmp/g.txt", "rename to /tmp");
    s_refused(sbx_file_rename(sbx, "", "st/ws", s_fresh(&err)), &err, CB_ERR_INVALID, "st/ws",
              "rename of the workspace itself");
    CB_OK(!s_host_exists(etc_moved), "nothing arrived in the root's /etc");

    int fd = sbx_file_open_dir(sbx, "st", s_fresh(&err));
    struct stat st;
    CB_OK(fd >= 0 && fstat(fd, &st) == 0 && S_ISDIR(st.st_mode), "open_dir of a directory (%s)",
          err.msg);
    if (fd >= 0)
        close(fd);
    fd = sbx_file_open_dir(sbx, "st/etc", s_fresh(&err));
    s_refused(fd, &err, CB_ERR_INVALID, "st/etc", "open_dir of a symlink to /etc");
    if (fd >= 0)
        close(fd);
    fd = sbx_file_open_dir(sbx, "st/g.txt", s_fresh(&err));
    s_refused(fd, &err, CB_ERR_INVALID, "st/g.txt", "open_dir of a file");
    if (fd >= 0)
        close(fd);
}

int main(void)
{
    alarm(120); /* a read that blocks (a FIFO opened without O_NONBLOCK) fails the test */
    s_env_t env = {0};
    s_setup(&env);
    s_test_round_trip(&env);
    s_test_list(&env);
    s_test_mkdir_remove(&env);
    s_test_outside(&env);
    s_test_symlinks(&env);
    s_test_same_fs_mount(&env);
    s_test_full(&env);
    s_test_stat_rename(&env);
    s_test_untouched(&env);
    s_teardown(&env);
    return cb_tap_done();
}
