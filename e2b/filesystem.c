/* filesystem.c: envd's filesystem.Filesystem (Stat, MakeDir, Move, ListDir, Remove, WatchDir and
 * the polling watchers CreateWatcher / GetWatcherEvents / RemoveWatcher) onto the engine's
 * workspace file calls (kg_sandbox_file_*), which resolve every path as the sandbox would and
 * refuse whatever lies outside /home/user. /files is files.c's.
 *
 * Paths: E2B sends absolute inside paths ("/home/user/x") or paths relative to the user's home
 * ("x"); both reach the engine as given, so its rules (a lexical check, then openat2 with
 * RESOLVE_IN_ROOT, the result on the workspace's mount, final components not followed) are the
 * only ones that decide. What we answer as an entry's path is the lexical absolute form.
 *
 * Watches are kept on the host, not inside the sandbox: one inotify instance per watch, each
 * watched directory added through /proc/self/fd/N of an O_PATH fd the engine opened by its
 * rules (kg_sandbox_file_open_dir). inotify then holds the inode itself, so code inside that
 * swaps a directory for a symlink afterwards changes nothing we watch; and nothing runs inside
 * the sandbox that its code could kill, starve or feed lies. The price: a rename of a watched
 * subdirectory leaves its events under the old name. A sandbox can flood us: the engine's http
 * queue bounds a stream (a client too slow is cut off), a polling watcher keeps at most
 * S_MAX_QUEUED events and reports the loss, and a kernel queue overflow (IN_Q_OVERFLOW) ends a
 * stream with resource_exhausted. The gateway's own temp files for writes (.cellblock-write-*)
 * are not reported: a write shows as the create of its final name (a rename into place).
 *
 * Lifetimes: a stream lives until its client goes (http_request_on_close), its directory goes
 * ("not_found"), or the sandbox ends (e2b_fs_sandbox_end ends it with "unavailable"); a polling watcher until
 * RemoveWatcher or the sandbox ends. A watch is stopped at once (poller, timer, fd) and freed
 * on a fresh loop turn (kg_gateway_defer), since it may be stopped from its own callbacks.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cb/alloc.h"
#include "cb/cleanup.h"
#include "cb/log.h"
#include "e2b_private.h"

#define S_WS "/home/user"
#define S_MAX_WATCHES 32      /* streams and polling watchers of one sandbox, together */
#define S_MAX_WATCH_DIRS 1024 /* directories one recursive watch follows */
#define S_MAX_QUEUED 1024     /* events a polling watcher keeps between two polls */
#define S_MAX_LIST 20000      /* entries one ListDir answers */
#define S_MAX_DEPTH 64        /* deepest ListDir */
#define S_TMP_PREFIX ".cellblock-write-"
#define S_MASK                                                                                     \
    (IN_CREATE | IN_MODIFY | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_ATTRIB | IN_ONLYDIR)

typedef struct {
    int wd;
    char *rel; /* the directory under the watch's root: "" for the root, "a/b" */
} s_dir_t;

typedef struct {
    e2b_fs_t *fs;
    char *id;            /* a polling watcher's; NULL for a stream */
    http_request_t *req; /* a stream's, until it ends or its client goes */
    char *root;          /* the watched directory, as given */
    char *root_abs;      /* its lexical absolute form, for entries' paths */
    bool recursive, include_entry;
    int ifd; /* inotify, -1 once stopped */
    s_dir_t *dirs;
    size_t ndirs;
    json_t *queue;   /* a polling watcher's events not yet fetched */
    size_t lost;     /* ... and how many did not fit since the last fetch */
    bool overflowed; /* the kernel's queue overflowed */
    bool unmounted;  /* the workspace's mount went (the sandbox is ending) */
    int keepalive;   /* a stream's keepalive timer, -1 when none */
} s_watch_t;

struct e2b_fs {
    e2b_sandbox_t *sb;
    zlistx_t *watches; /* s_watch_t *, running */
    uint64_t next_id;
};

/* ---- paths and entries ---------------------------------------------------------------------- */

char *e2b_fs_abs_path(const char *given)
{
    cb_buf_t out = {0};
    const char *p = given ? given : "";
    if (*p != '/')
        cb_buf_append(&out, S_WS, strlen(S_WS));
    while (*p) {
        while (*p == '/')
            p++;
        size_t n = strcspn(p, "/");
        if (n == 0)
            break;
        if (n == 2 && p[0] == '.' && p[1] == '.') {
            char *slash = out.len ? memrchr(out.data, '/', out.len) : NULL;
            out.len = slash ? (size_t)(slash - (char *)out.data) : 0;
        } else if (!(n == 1 && p[0] == '.')) {
            cb_buf_append(&out, "/", 1);
            cb_buf_append(&out, p, n);
        }
        p += n;
    }
    if (out.len == 0)
        cb_buf_append(&out, "/", 1);
    return cb_buf_take(&out);
}

static const char *s_base(const char *abs)
{
    const char *slash = strrchr(abs, '/');
    return slash && slash[1] ? slash + 1 : abs;
}

/* "-rw-r--r--", as ls shows a mode. */
static void s_permissions(uint32_t mode, char out[11])
{
    out[0] = S_ISDIR(mode)    ? 'd'
             : S_ISLNK(mode)  ? 'l'
             : S_ISFIFO(mode) ? 'p'
             : S_ISSOCK(mode) ? 's'
             : S_ISCHR(mode)  ? 'c'
             : S_ISBLK(mode)  ? 'b'
                              : '-';
    const char *rwx = "rwxrwxrwx";
    for (int i = 0; i < 9; i++)
        out[1 + i] = (mode & (1u << (8 - i))) ? rwx[i] : '-';
    if (mode & S_ISUID)
        out[3] = out[3] == 'x' ? 's' : 'S';
    if (mode & S_ISGID)
        out[6] = out[6] == 'x' ? 's' : 'S';
    if (mode & S_ISVTX)
        out[9] = out[9] == 'x' ? 't' : 'T';
    out[10] = '\0';
}

/* RFC 3339 in UTC with milliseconds. */
static void s_rfc3339(int64_t ms, char out[32])
{
    time_t sec = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&sec, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03dZ", (int)(ms % 1000));
}

json_t *e2b_fs_entry_info(json_t *st, const char *abs)
{
    const char *type = json_string_value(json_object_get(st, "type"));
    const char *ftype = !type                          ? "FILE_TYPE_UNSPECIFIED"
                        : strcmp(type, "file") == 0    ? "FILE_TYPE_FILE"
                        : strcmp(type, "dir") == 0     ? "FILE_TYPE_DIRECTORY"
                        : strcmp(type, "symlink") == 0 ? "FILE_TYPE_SYMLINK"
                                                       : "FILE_TYPE_UNSPECIFIED";
    uint32_t mode = (uint32_t)json_integer_value(json_object_get(st, "mode"));
    char perms[11], when[32], size[24];
    s_permissions(mode, perms);
    s_rfc3339(json_integer_value(json_object_get(st, "mtime_ms")), when);
    snprintf(size, sizeof size, "%lld", (long long)json_integer_value(json_object_get(st, "size")));
    const char *owner = json_is_true(json_object_get(st, "owned")) ? "user" : "root";
    json_t *out =
        json_pack("{s:s, s:s, s:s, s:s, s:I, s:s, s:s, s:s, s:s}", "name", s_base(abs), "type",
                  ftype, "path", abs, "size", size, "mode", (json_int_t)(mode & 07777),
                  "permissions", perms, "owner", owner, "group", owner, "modifiedTime", when);
    const char *target = json_string_value(json_object_get(st, "symlink_target"));
    if (out && target) {
        /* A relative target is relative to the link's directory; shown absolute, as envd does. */
        cleanup_free char *dir = cb_xstrdup(abs);
        char *slash = strrchr(dir, '/');
        if (slash)
            *slash = '\0';
        cleanup_free char *joined =
            target[0] == '/' ? cb_xstrdup(target) : cb_strdup_printf("%s/%s", dir, target);
        cleanup_free char *shown = e2b_fs_abs_path(joined);
        json_object_set_new(out, "symlinkTarget", json_string(shown));
    }
    return out;
}

/* EntryInfo of what path names (a symlink not followed). Caller owns return value; NULL with
 * err. */
static json_t *s_stat(e2b_sandbox_t *sb, const char *path, cb_error_t *err)
{
    json_auto_t *st = kg_sandbox_file_stat(sb->kg, path, err);
    if (!st)
        return NULL;
    cleanup_free char *abs = e2b_fs_abs_path(path);
    return e2b_fs_entry_info(st, abs);
}

/* The request's string field (unset: ""), as the JSON codec leaves out empty strings. */
static const char *s_str(json_t *msg, const char *name)
{
    const char *v = json_string_value(json_object_get(msg, name));
    return v ? v : "";
}

/* ---- unary calls ---------------------------------------------------------------------------- */

static void s_rpc_stat(e2b_sandbox_t *sb, http_request_t *req, json_t *msg)
{
    cb_error_t err = {0};
    json_auto_t *entry = s_stat(sb, s_str(msg, "path"), &err);
    if (!entry)
        return e2b_rpc_fail_err(req, E2B_RPC_UNARY, &err);
    json_auto_t *out = json_pack("{s:O}", "entry", entry);
    e2b_rpc_reply(req, out);
}

static void s_rpc_make_dir(e2b_sandbox_t *sb, http_request_t *req, json_t *msg)
{
    const char *path = s_str(msg, "path");
    cb_error_t err = {0};
    json_auto_t *st = kg_sandbox_file_stat(sb->kg, path, &err);
    if (st) { /* the SDK's makeDir answers false for already_exists */
        const char *type = json_string_value(json_object_get(st, "type"));
        cleanup_free char *msg_text = cb_strdup_printf(
            strcmp(type, "dir") == 0 ? "directory '%s' already exists"
                                     : "'%s' already exists and is not a directory",
            path);
        return e2b_rpc_fail(req, E2B_RPC_UNARY,
                            strcmp(type, "dir") == 0 ? "already_exists" : "invalid_argument",
                            msg_text);
    }
    err = (cb_error_t){0};
    if (kg_sandbox_file_mkdir(sb->kg, path, true, &err) < 0)
        return e2b_rpc_fail_err(req, E2B_RPC_UNARY, &err);
    json_auto_t *entry = s_stat(sb, path, &err);
    if (!entry)
        return e2b_rpc_fail_err(req, E2B_RPC_UNARY, &err);
    json_auto_t *out = json_pack("{s:O}", "entry", entry);
    e2b_rpc_reply(req, out);
}

static void s_rpc_move(e2b_sandbox_t *sb, http_request_t *req, json_t *msg)
{
    const char *from = s_str(msg, "source"), *to = s_str(msg, "destination");
    cb_error_t err = {0};
    /* envd makes the destination's directory first; so do we, by the engine's rules. */
    cleanup_free char *to_abs = e2b_fs_abs_path(to);
    char *slash = strrchr(to_abs, '/');
    if (slash && slash != to_abs) {
        *slash = '\0';
        if (strncmp(to_abs, S_WS, strlen(S_WS)) == 0 &&
            kg_sandbox_file_mkdir(sb->kg, to_abs, true, &err) < 0)
            return e2b_rpc_fail_err(req, E2B_RPC_UNARY, &err);
    }
    if (kg_sandbox_file_rename(sb->kg, from, to, &err) < 0)
        return e2b_rpc_fail_err(req, E2B_RPC_UNARY, &err);
    json_auto_t *entry = s_stat(sb, to, &err);
    if (!entry)
        return e2b_rpc_fail_err(req, E2B_RPC_UNARY, &err);
    json_auto_t *out = json_pack("{s:O}", "entry", entry);
    e2b_rpc_reply(req, out);
}

/* Append the entries of the directory path (shown as abs), and below it down to depth levels,
 * to out. Each level is resolved afresh by the engine's rules. */
static int s_list(e2b_sandbox_t *sb, const char *path, const char *abs, unsigned depth, json_t *out,
                  cb_error_t *err)
{
    json_auto_t *entries = kg_sandbox_file_entries(sb->kg, path, err);
    if (!entries)
        return -1;
    size_t i;
    json_t *st;
    json_array_foreach (entries, i, st) {
        if (json_array_size(out) >= S_MAX_LIST)
            return cb_error_fail(err, CB_ERR_LIMIT,
                                 "more than %d entries: list a smaller tree, or less deep",
                                 S_MAX_LIST);
        const char *name = json_string_value(json_object_get(st, "name"));
        cleanup_free char *child = cb_strdup_printf("%s/%s", strcmp(abs, "/") ? abs : "", name);
        json_array_append_new(out, e2b_fs_entry_info(st, child));
        const char *type = json_string_value(json_object_get(st, "type"));
        if (depth <= 1 || strcmp(type, "dir") != 0)
            continue;
        cb_error_t sub = {0};
        /* A directory removed since it was listed is simply not descended into. */
        if (s_list(sb, child, child, depth - 1, out, &sub) < 0 && sub.kind != CB_ERR_NOT_FOUND) {
            *err = sub;
            return -1;
        }
    }
    return 0;
}

static void s_rpc_list_dir(e2b_sandbox_t *sb, http_request_t *req, json_t *msg)
{
    const char *path = s_str(msg, "path");
    json_int_t depth = json_integer_value(json_object_get(msg, "depth"));
    if (depth < 1)
        depth = 1;
    if (depth > S_MAX_DEPTH)
        depth = S_MAX_DEPTH;
    cb_error_t err = {0};
    json_auto_t *entries = json_array();
    cleanup_free char *abs = e2b_fs_abs_path(path);
    if (s_list(sb, path, abs, (unsigned)depth, entries, &err) < 0)
        return e2b_rpc_fail_err(req, E2B_RPC_UNARY, &err);
    json_auto_t *out = json_pack("{s:O}", "entries", entries);
    e2b_rpc_reply(req, out);
}

static void s_rpc_remove(e2b_sandbox_t *sb, http_request_t *req, json_t *msg)
{
    cb_error_t err = {0};
    /* envd removes with os.RemoveAll: what is not there is removed already. */
    if (kg_sandbox_file_remove(sb->kg, s_str(msg, "path"), true, &err) < 0 &&
        err.kind != CB_ERR_NOT_FOUND)
        return e2b_rpc_fail_err(req, E2B_RPC_UNARY, &err);
    e2b_rpc_reply_empty(req);
}

/* ---- watches -------------------------------------------------------------------------------- */

static kg_gateway_t *s_gw(s_watch_t *w) { return w->fs->sb->api->gw; }

static void s_watch_free(kg_gateway_t *gw, void *arg)
{
    (void)gw;
    s_watch_t *w = arg;
    for (size_t i = 0; i < w->ndirs; i++)
        free(w->dirs[i].rel);
    free(w->dirs);
    free(w->id);
    free(w->root);
    free(w->root_abs);
    json_decref(w->queue);
    free(w);
}

/* Stop everything the watch has registered and queue its free. A stream still open is ended
 * first: with code NULL a success, else that error. */
static void s_watch_stop(s_watch_t *w, const char *code, const char *message)
{
    if (w->req) {
        http_request_t *req = w->req;
        w->req = NULL;
        http_request_on_close(req, NULL, NULL);
        e2b_rpc_stream_end(req, code, message);
    }
    kg_timer_stop(s_gw(w), &w->keepalive);
    if (w->ifd >= 0) {
        zmq_pollitem_t item = {.fd = w->ifd};
        zloop_poller_end(kg_gateway_loop(s_gw(w)), &item);
        close(w->ifd);
        w->ifd = -1;
    }
    void *handle = zlistx_find(w->fs->watches, w);
    if (handle)
        zlistx_delete(w->fs->watches, handle);
    kg_gateway_defer(s_gw(w), s_watch_free, w);
}

static s_dir_t *s_dir_of(s_watch_t *w, int wd)
{
    for (size_t i = 0; i < w->ndirs; i++)
        if (w->dirs[i].wd == wd)
            return &w->dirs[i];
    return NULL;
}

/* Watch the directory rel under the root. */
static int s_add_dir(s_watch_t *w, const char *rel, cb_error_t *err)
{
    if (w->ndirs >= S_MAX_WATCH_DIRS)
        return cb_error_fail(err, CB_ERR_LIMIT,
                             "watch '%s': more than %d directories to watch; watch a smaller tree",
                             w->root, S_MAX_WATCH_DIRS);
    cleanup_free char *path =
        rel[0] ? cb_strdup_printf("%s/%s", w->root_abs, rel) : cb_xstrdup(w->root);
    cleanup_close int fd = kg_sandbox_file_open_dir(w->fs->sb->kg, path, err);
    if (fd < 0)
        return -1;
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    int wd = inotify_add_watch(w->ifd, proc, S_MASK);
    if (wd < 0 && errno == ENOSPC)
        return cb_error_fail(err, CB_ERR_LIMIT,
                             "watch '%s': the host's inotify watch limit is reached", path);
    if (wd < 0)
        return cb_error_make(err, errno, "watch '%s'", path);
    s_dir_t *known = s_dir_of(w, wd);
    if (known) { /* the same directory again (a move back): keep the newer name */
        free(known->rel);
        known->rel = cb_xstrdup(rel);
        return 0;
    }
    w->dirs = cb_xrealloc(w->dirs, (w->ndirs + 1) * sizeof *w->dirs);
    w->dirs[w->ndirs++] = (s_dir_t){.wd = wd, .rel = cb_xstrdup(rel)};
    return 0;
}

/* Watch every directory below rel too (a symlink is not a directory here). */
static int s_add_tree(s_watch_t *w, const char *rel, cb_error_t *err)
{
    cleanup_free char *path =
        rel[0] ? cb_strdup_printf("%s/%s", w->root_abs, rel) : cb_xstrdup(w->root_abs);
    cb_error_t lerr = {0};
    json_auto_t *entries = kg_sandbox_file_entries(w->fs->sb->kg, path, &lerr);
    if (!entries) /* gone meanwhile: nothing to watch there */
        return lerr.kind == CB_ERR_NOT_FOUND || lerr.kind == CB_ERR_INVALID ? 0 : (*err = lerr, -1);
    size_t i;
    json_t *e;
    json_array_foreach (entries, i, e) {
        if (strcmp(json_string_value(json_object_get(e, "type")), "dir") != 0)
            continue;
        const char *name = json_string_value(json_object_get(e, "name"));
        cleanup_free char *sub = rel[0] ? cb_strdup_printf("%s/%s", rel, name) : cb_xstrdup(name);
        if (s_add_dir(w, sub, err) < 0 || s_add_tree(w, sub, err) < 0)
            return -1;
    }
    return 0;
}

/* Hand one event on: to the stream, or to the polling queue. */
static void s_emit(s_watch_t *w, json_t *event)
{
    if (w->req) {
        json_auto_t *msg = json_pack("{s:O}", "filesystem", event);
        if (e2b_rpc_stream_send(w->req, msg) < 0) {
            /* The client is gone or too slow: the http module closed it. */
            http_request_t *req = w->req;
            w->req = NULL;
            http_request_on_close(req, NULL, NULL);
            http_stream_end(req);
            s_watch_stop(w, NULL, NULL);
        }
        return;
    }
    if (json_array_size(w->queue) >= S_MAX_QUEUED)
        w->lost++;
    else
        json_array_append(w->queue, event);
}

static void s_event(s_watch_t *w, const struct inotify_event *ev)
{
    if (ev->mask & IN_Q_OVERFLOW) {
        if (w->req)
            return s_watch_stop(w, "resource_exhausted",
                                "the sandbox made filesystem events faster than they could be "
                                "read, and some were lost; watch again");
        w->overflowed = true;
        return;
    }
    if (ev->mask & IN_UNMOUNT)
        w->unmounted = true; /* IN_IGNORED follows */
    s_dir_t *dir = s_dir_of(w, ev->wd);
    if (!dir)
        return;
    if (ev->mask & IN_IGNORED) { /* the directory is gone (removed, or its mount with it) */
        bool root = dir->rel[0] == '\0';
        free(dir->rel);
        *dir = w->dirs[--w->ndirs];
        if (!root || !w->req)
            return;
        /* Nothing left to watch: the stream ends, saying why as well as we can tell (the
         * workspace's mount goes when the sandbox dies, maybe before its end is noticed). */
        kg_sandbox_t *kg = w->fs->sb->kg;
        bool ended = kg_sandbox_dead(kg) || kg_sandbox_ending(kg) || w->unmounted;
        cleanup_free char *why =
            ended ? cb_strdup_printf("sandbox %s ended", w->fs->sb->id)
                  : cb_strdup_printf("the watched directory '%s' was removed", w->root);
        return s_watch_stop(w, ended ? "unavailable" : "not_found", why);
    }
    const char *name = ev->len ? ev->name : "";
    if (!name[0] || strncmp(name, S_TMP_PREFIX, strlen(S_TMP_PREFIX)) == 0)
        return;
    const char *type = (ev->mask & (IN_CREATE | IN_MOVED_TO)) ? "EVENT_TYPE_CREATE"
                       : (ev->mask & IN_MODIFY)               ? "EVENT_TYPE_WRITE"
                       : (ev->mask & IN_DELETE)               ? "EVENT_TYPE_REMOVE"
                       : (ev->mask & IN_MOVED_FROM)           ? "EVENT_TYPE_RENAME"
                       : (ev->mask & IN_ATTRIB)               ? "EVENT_TYPE_CHMOD"
                                                              : NULL;
    if (!type)
        return;
    cleanup_free char *rel =
        dir->rel[0] ? cb_strdup_printf("%s/%s", dir->rel, name) : cb_xstrdup(name);
    if (w->recursive && (ev->mask & IN_ISDIR) && (ev->mask & (IN_CREATE | IN_MOVED_TO))) {
        cb_error_t err = {0};
        if (s_add_dir(w, rel, &err) < 0 || s_add_tree(w, rel, &err) < 0)
            cb_debug("e2b: watch %s: %s", w->root, err.msg);
    }
    json_auto_t *event = json_pack("{s:s?, s:s}", "name", rel, "type", type);
    if (!event)
        return; /* a name that is not UTF-8 */
    if (w->include_entry && strcmp(type, "EVENT_TYPE_REMOVE") &&
        strcmp(type, "EVENT_TYPE_RENAME")) {
        cleanup_free char *path = cb_strdup_printf("%s/%s", w->root_abs, rel);
        cb_error_t err = {0};
        json_t *entry = s_stat(w->fs->sb, path, &err);
        if (entry)
            json_object_set_new(event, "entry", entry);
    }
    s_emit(w, event);
}

/* Read one buffer of the watch's events and hand them on. Whether it was full (more may wait). */
static bool s_drain(s_watch_t *w)
{
    char buf[32 * 1024] __attribute__((aligned(__alignof__(struct inotify_event))));
    ssize_t n = read(w->ifd, buf, sizeof buf);
    if (n <= 0)
        return false; /* EAGAIN, or nothing: the next pass tells */
    for (char *p = buf; p + sizeof(struct inotify_event) <= buf + n && w->ifd >= 0;) {
        const struct inotify_event *ev = (const void *)p;
        p += sizeof *ev + ev->len;
        s_event(w, ev);
    }
    return (size_t)n > sizeof buf / 2 && w->ifd >= 0;
}

static int s_on_inotify(zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    (void)loop;
    (void)item;
    s_drain(arg); /* one buffer per pass: a flood does not starve the loop */
    return 0;
}

static int s_on_keepalive(zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    s_watch_t *w = arg;
    if (!w->req)
        return 0;
    json_auto_t *msg = json_pack("{s:{}}", "keepalive");
    if (e2b_rpc_stream_send(w->req, msg) < 0) {
        http_request_t *req = w->req;
        w->req = NULL;
        http_request_on_close(req, NULL, NULL);
        http_stream_end(req);
        s_watch_stop(w, NULL, NULL);
    }
    return 0;
}

static e2b_fs_t *s_fs(e2b_sandbox_t *sb)
{
    if (!sb->fs) {
        sb->fs = cb_xcalloc(1, sizeof *sb->fs);
        sb->fs->sb = sb;
        sb->fs->watches = zlistx_new();
    }
    return sb->fs;
}

/* A watch of msg's path, running (its fd on the loop). Borrowed (the fs's); NULL with err. */
static s_watch_t *s_watch_new(e2b_sandbox_t *sb, json_t *msg, cb_error_t *err)
{
    e2b_fs_t *fs = s_fs(sb);
    if (zlistx_size(fs->watches) >= S_MAX_WATCHES) {
        cb_error_fail(err, CB_ERR_LIMIT,
                      "this sandbox has %d watches already: stop or remove one first",
                      S_MAX_WATCHES);
        return NULL;
    }
    const char *path = s_str(msg, "path");
    json_auto_t *st = kg_sandbox_file_stat(sb->kg, path, err);
    if (!st)
        return NULL;
    s_watch_t *w = cb_xcalloc(1, sizeof *w);
    w->fs = fs;
    w->root = cb_xstrdup(path);
    w->root_abs = e2b_fs_abs_path(path);
    w->recursive = json_is_true(json_object_get(msg, "recursive"));
    w->include_entry = json_is_true(json_object_get(msg, "includeEntry"));
    w->keepalive = -1;
    w->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    zlistx_add_end(fs->watches, w);
    if (w->ifd < 0) {
        cb_error_make(err, errno, "watch '%s': inotify", path);
        s_watch_stop(w, NULL, NULL);
        return NULL;
    }
    zmq_pollitem_t item = {.fd = w->ifd, .events = ZMQ_POLLIN};
    if (s_add_dir(w, "", err) < 0 || (w->recursive && s_add_tree(w, "", err) < 0) ||
        zloop_poller(kg_gateway_loop(sb->api->gw), &item, s_on_inotify, w) < 0) {
        if (!err->msg[0])
            cb_error_fail(err, CB_ERR_INTERNAL, "watch '%s': cannot poll", path);
        s_watch_stop(w, NULL, NULL);
        return NULL;
    }
    return w;
}

static void s_on_stream_close(http_request_t *req, void *arg)
{
    (void)req;
    s_watch_t *w = arg;
    w->req = NULL; /* freed once we return */
    s_watch_stop(w, NULL, NULL);
}

static void s_rpc_watch_dir(e2b_sandbox_t *sb, http_request_t *req, json_t *msg)
{
    cb_error_t err = {0};
    s_watch_t *w = s_watch_new(sb, msg, &err);
    if (!w)
        return e2b_rpc_fail_err(req, E2B_RPC_STREAM, &err);
    if (e2b_rpc_stream_begin(req) < 0)
        return s_watch_stop(w, NULL, NULL);
    json_auto_t *start = json_pack("{s:{}}", "start");
    if (e2b_rpc_stream_send(req, start) < 0) {
        http_stream_end(req);
        return s_watch_stop(w, NULL, NULL);
    }
    w->req = req;
    http_request_on_close(req, s_on_stream_close, w);
    const char *ping = http_request_header(req, "Keepalive-Ping-Interval");
    long secs = ping ? strtol(ping, NULL, 10) : 0;
    if (secs > 0)
        w->keepalive = kg_timer_start(sb->api->gw, (size_t)(secs > 600 ? 600 : secs) * 1000, 0,
                                      s_on_keepalive, w);
}

static s_watch_t *s_watcher(e2b_sandbox_t *sb, const char *id)
{
    if (!sb->fs || !id)
        return NULL;
    for (s_watch_t *w = zlistx_first(sb->fs->watches); w; w = zlistx_next(sb->fs->watches))
        if (w->id && strcmp(w->id, id) == 0)
            return w;
    return NULL;
}

static void s_rpc_create_watcher(e2b_sandbox_t *sb, http_request_t *req, json_t *msg)
{
    cb_error_t err = {0};
    s_watch_t *w = s_watch_new(sb, msg, &err);
    if (!w)
        return e2b_rpc_fail_err(req, E2B_RPC_UNARY, &err);
    w->id = cb_strdup_printf("w%llu", (unsigned long long)++sb->fs->next_id);
    w->queue = json_array();
    json_auto_t *out = json_pack("{s:s}", "watcherId", w->id);
    e2b_rpc_reply(req, out);
}

static void s_rpc_get_watcher_events(e2b_sandbox_t *sb, http_request_t *req, json_t *msg)
{
    s_watch_t *w = s_watcher(sb, s_str(msg, "watcherId"));
    if (!w)
        return e2b_rpc_fail(req, E2B_RPC_UNARY, "not_found",
                            "no such watcher in this sandbox (removed, or never created)");
    /* What the kernel has queued already counts: read it now rather than on the loop's next
     * pass, so that a change made before this call is in its answer. */
    for (int i = 0; i < 16 && w->ifd >= 0 && s_drain(w); i++)
        ;
    if (w->overflowed || w->lost) {
        cleanup_free char *why = cb_strdup_printf(
            "events were lost (%s); the watcher goes on from now: list the directory to catch up",
            w->overflowed ? "the kernel's queue overflowed" : "too many between two polls");
        w->overflowed = false;
        w->lost = 0;
        json_array_clear(w->queue);
        return e2b_rpc_fail(req, E2B_RPC_UNARY, "resource_exhausted", why);
    }
    json_auto_t *out = json_pack("{s:O}", "events", w->queue);
    json_decref(w->queue);
    w->queue = json_array();
    e2b_rpc_reply(req, out);
}

static void s_rpc_remove_watcher(e2b_sandbox_t *sb, http_request_t *req, json_t *msg)
{
    s_watch_t *w = s_watcher(sb, s_str(msg, "watcherId"));
    if (!w)
        return e2b_rpc_fail(req, E2B_RPC_UNARY, "not_found",
                            "no such watcher in this sandbox (removed, or never created)");
    s_watch_stop(w, NULL, NULL);
    e2b_rpc_reply_empty(req);
}

/* ---- dispatch ------------------------------------------------------------------------------- */

typedef void(s_rpc_fn)(e2b_sandbox_t *sb, http_request_t *req, json_t *msg);

static const struct {
    const char *name;
    e2b_rpc_kind_t kind;
    s_rpc_fn *fn;
} s_rpcs[] = {
    {"Stat", E2B_RPC_UNARY, s_rpc_stat},
    {"MakeDir", E2B_RPC_UNARY, s_rpc_make_dir},
    {"Move", E2B_RPC_UNARY, s_rpc_move},
    {"ListDir", E2B_RPC_UNARY, s_rpc_list_dir},
    {"Remove", E2B_RPC_UNARY, s_rpc_remove},
    {"WatchDir", E2B_RPC_STREAM, s_rpc_watch_dir},
    {"CreateWatcher", E2B_RPC_UNARY, s_rpc_create_watcher},
    {"GetWatcherEvents", E2B_RPC_UNARY, s_rpc_get_watcher_events},
    {"RemoveWatcher", E2B_RPC_UNARY, s_rpc_remove_watcher},
};

void e2b_fs_handle(e2b_sandbox_t *sb, http_request_t *req, const char *method)
{
    for (size_t i = 0; i < sizeof s_rpcs / sizeof s_rpcs[0]; i++) {
        if (strcmp(s_rpcs[i].name, method) != 0)
            continue;
        json_auto_t *msg = e2b_rpc_request(req, s_rpcs[i].kind);
        if (msg)
            s_rpcs[i].fn(sb, req, msg);
        return;
    }
    cleanup_free char *why =
        cb_strdup_printf("filesystem.Filesystem/%s: no such method here", method);
    e2b_rpc_fail(req, e2b_rpc_kind_of(req), "unimplemented", why);
}

void e2b_fs_sandbox_end(e2b_sandbox_t *sb)
{
    e2b_fs_t *fs = sb->fs;
    if (!fs)
        return;
    sb->fs = NULL;
    cleanup_free char *why = cb_strdup_printf("sandbox %s ended", sb->id);
    s_watch_t *w;
    while ((w = zlistx_first(fs->watches)))
        s_watch_stop(w, "unavailable", why);
    zlistx_destroy(&fs->watches);
    free(fs);
}
