/* persist.c: persistent workspaces: a sandbox opened with persist keeps its workspace on disk
 * after it ends, however it ends (deleted, expired, the server stopped or killed), and can be
 * reopened by its id with its files.
 *
 *   <state_dir>/sandboxes/<id>/sandbox.json   tenant, template, kernel, limits, network
 *                                             policy, metadata, times
 *   <state_dir>/sandboxes/<id>/workspace/     bind-mounted at /home/user inside
 *
 * While a sandbox is open its home directory is locked (flock), so two cellblock processes
 * sharing a state dir never open one workspace twice, and a listing can tell open from closed.
 * The lock dies with the process that held it: a workspace whose server was killed is simply
 * closed at the next start.
 *
 * A workspace belongs to the tenant saved with it: only that tenant (or an admin) lists or
 * reopens it, and any other is told exactly what an unknown id is told.
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cb/cleanup.h"
#include "cb/log.h"
#include "cb/alloc.h"
#include "cb/util.h"
#include "egress/egress.h"
#include "fleet_private.h"
#include "kg/gateway.h"
#include "kg/sandbox.h"

#define FLEET_DESCRIPTION_MAX (1u << 20)

/* A sandbox id as this gateway makes them: a canonical UUID. Anything else never names a home,
 * so a crafted id cannot climb out of the state dir. */
static bool s_id_ok(const char *id)
{
    if (!id || strlen(id) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        char c = id[i];
        if (dash ? c != '-' : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
    }
    return true;
}

static char *s_home(fleet_t *fleet, const char *id)
{
    return cb_strdup_printf("%s/sandboxes/%s", fleet->state_dir, id);
}

static int s_check_id(fleet_t *fleet, const char *id, cb_error_t *err)
{
    if (!s_id_ok(id))
        return cb_error_fail(err, CB_ERR_INVALID, "'%.60s' is not a sandbox id", id ? id : "");
    if (kg_gateway_sandbox(fleet->gw, id))
        return cb_error_fail(err, CB_ERR_STATE, "sandbox %s is open (delete it first)", id);
    return 0;
}

static json_t *s_read(const char *home, cb_error_t *err)
{
    cleanup_free char *path = cb_strdup_printf("%s/sandbox.json", home);
    json_error_t jerr;
    json_t *saved = path ? json_load_file(path, JSON_REJECT_DUPLICATES, &jerr) : NULL;
    if (!saved || !json_is_object(saved)) {
        json_decref(saved);
        cb_error_fail(err, CB_ERR_INTERNAL,
                      "the description of persistent sandbox '%s' cannot be read: %s", home,
                      path ? jerr.text : "out of memory");
        return NULL;
    }
    return saved;
}

/* What an unknown id gets, and so also an id the principal may not reach. */
static void s_not_found(const char *id, cb_error_t *err)
{
    cb_error_fail(err, CB_ERR_NOT_FOUND,
                  "no persistent workspace for sandbox %s (only sandboxes created with persist "
                  "keep theirs)",
                  id);
}

json_t *fleet_persist_describe(fleet_t *fleet, const char *id, const cb_principal_t *who,
                               cb_error_t *err)
{
    kg_sandbox_t *open = s_id_ok(id) ? kg_gateway_sandbox(fleet->gw, id) : NULL;
    if (open && !fleet_sandbox_visible(open, who)) {
        s_not_found(id, err); /* another tenant's open sandbox: not "is open" */
        return NULL;
    }
    if (s_check_id(fleet, id, err) < 0)
        return NULL;
    cleanup_free char *home = s_home(fleet, id);
    struct stat st;
    if (!home || stat(home, &st) < 0) {
        s_not_found(id, err);
        return NULL;
    }
    json_t *saved = s_read(home, err);
    /* Saved before tenants were kept: no tenant, so an admin's alone. */
    if (saved && !cb_principal_may(who, json_string_value(json_object_get(saved, "tenant")))) {
        json_decref(saved);
        s_not_found(id, err);
        return NULL;
    }
    return saved;
}

void fleet_persist_limits(json_t *saved, kg_sandbox_limits_t *out)
{
    json_t *l = json_object_get(saved, "limits");
    out->memory_mb = (uint64_t)json_integer_value(json_object_get(l, "memory_mb"));
    out->pids_max = (uint64_t)json_integer_value(json_object_get(l, "pids_max"));
    out->cpu_millis = (uint32_t)json_integer_value(json_object_get(l, "cpu_millis"));
    out->tmp_mb = (uint64_t)json_integer_value(json_object_get(l, "tmp_mb"));
    out->workspace_mb = (uint64_t)json_integer_value(json_object_get(l, "workspace_mb"));
}

/* The sandbox's network policy as egress_policy_from_json reads it back: "none", or its
 * entries (presets expanded), ask and limits. New reference. */
static json_t *s_network_spec(const egress_policy_t *policy)
{
    if (!policy || egress_policy_is_none(policy))
        return json_string("none");
    json_auto_t *d = egress_policy_describe(policy);
    json_t *spec = json_pack("{s:O, s:O, s:b}", "allow", json_object_get(d, "allow"), "deny",
                             json_object_get(d, "deny"), "ask",
                             !strcmp(json_string_value(json_object_get(d, "mode")) ?: "", "ask"));
    const char *limits[] = {"max_connections", "max_bytes"};
    for (size_t i = 0; spec && i < 2; i++)
        if (json_integer_value(json_object_get(d, limits[i])) > 0)
            json_object_set(spec, limits[i], json_object_get(d, limits[i]));
    return spec;
}

egress_policy_t *fleet_persist_network(json_t *saved, cb_error_t *err)
{
    json_t *spec = json_object_get(saved, "network");
    if (!spec)
        return NULL; /* saved before policies were kept */
    egress_policy_t *p = egress_policy_from_json(spec, err);
    if (!p)
        cb_error_prefix(err, "the saved network policy of sandbox %.8s: ",
                        json_string_value(json_object_get(saved, "sandbox_id")));
    return p;
}

int fleet_persist_open(fleet_t *fleet, const char *reopen_id, char *id_out, char **dir_out,
                       int *lock_out, cb_error_t *err)
{
    if (reopen_id) {
        if (s_check_id(fleet, reopen_id, err) < 0)
            return -1;
        snprintf(id_out, 37, "%s", reopen_id);
    } else {
        zuuid_t *uuid = zuuid_new();
        if (!uuid) /* czmq allocates it; it fails only when out of memory */
            cb_oom(sizeof(zuuid_t *));
        snprintf(id_out, 37, "%s", zuuid_str_canonical(uuid));
        zuuid_destroy(&uuid);
    }
    cleanup_free char *parent = cb_strdup_printf("%s/sandboxes", fleet->state_dir);
    cleanup_free char *home = s_home(fleet, id_out);
    cleanup_free char *workspace = home ? cb_strdup_printf("%s/workspace", home) : NULL;
    if (!parent || !workspace)
        return cb_error_make(err, ENOMEM, "persistent workspace");
    int lock;
    if (reopen_id) {
        lock = cb_dir_lock(home, err);
        if (lock < 0)
            return cb_error_prefix(err, "reopen sandbox %s: ", reopen_id);
    } else {
        if (cb_mkdir_p(parent, 0700, err) < 0)
            return cb_error_prefix(err, "the state dir: ");
        lock = cb_dir_create_locked(home, 0700, err);
        if (lock < 0)
            return -1;
        if (mkdir(workspace, 0755) < 0) {
            int saved = errno;
            cb_rm_rf(home, NULL);
            close(lock);
            return cb_error_make(err, saved, "create '%s'", workspace);
        }
    }
    *dir_out = steal_pointer(&home);
    *lock_out = lock;
    return 0;
}

int fleet_persist_save(fleet_sandbox_t *fs, const char *kernel_name, cb_error_t *err)
{
    char now[40];
    cb_iso8601_now(now);
    json_auto_t *old = s_read(fs->persist_dir, NULL);
    const char *created = json_string_value(json_object_get(old, "created_at"));
    const kg_sandbox_limits_t *l = kg_sandbox_limits(fs->sb);
    json_auto_t *desc = json_pack(
        "{s:s, s:s?, s:s?, s:s?, s:{s:I, s:I, s:I, s:I, s:I}, s:o, s:O, s:s, s:s, s:n}",
        "sandbox_id", kg_sandbox_id(fs->sb), "tenant", fs->tenant, "template", fs->template_name,
        "kernel", kernel_name, "limits", "memory_mb", (json_int_t)l->memory_mb, "pids_max",
        (json_int_t)l->pids_max, "cpu_millis", (json_int_t)l->cpu_millis, "tmp_mb",
        (json_int_t)l->tmp_mb, "workspace_mb", (json_int_t)l->workspace_mb, "network",
        s_network_spec(kg_sandbox_network(fs->sb)), "metadata", fs->metadata, "created_at",
        created ? created : now, "opened_at", now, "closed_at");
    cleanup_free char *text = desc ? json_dumps(desc, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
    cleanup_free char *path = cb_strdup_printf("%s/sandbox.json", fs->persist_dir);
    if (!text || !path)
        return cb_error_make(err, ENOMEM, "describe sandbox %.8s", kg_sandbox_id(fs->sb));
    return cb_write_file(path, text, strlen(text), 0600, err);
}

void fleet_persist_close(fleet_sandbox_t *fs)
{
    json_auto_t *desc = s_read(fs->persist_dir, NULL);
    char now[40];
    cb_iso8601_now(now);
    cleanup_free char *text = NULL;
    if (desc && json_object_set_new(desc, "closed_at", json_string(now)) == 0)
        text = json_dumps(desc, JSON_INDENT(2) | JSON_SORT_KEYS);
    cleanup_free char *path = cb_strdup_printf("%s/sandbox.json", fs->persist_dir);
    cb_error_t err = {0};
    if (text && path && cb_write_file(path, text, strlen(text), 0600, &err) < 0)
        cb_warn("sandbox %.8s: %s", kg_sandbox_id(fs->sb), err.msg);
    if (fs->persist_lock >= 0)
        close(fs->persist_lock);
    fs->persist_lock = -1;
    cb_info("sandbox %.8s: its workspace stays in %s", kg_sandbox_id(fs->sb), fs->persist_dir);
}

/* Open here, or locked by another process. */
static bool s_is_open(fleet_t *fleet, const char *id, const char *home)
{
    if (kg_gateway_sandbox(fleet->gw, id))
        return true;
    cb_error_t err = {0};
    int fd = cb_dir_lock(home, &err);
    if (fd >= 0)
        close(fd);
    return fd < 0 && err.kind == CB_ERR_STATE;
}

json_t *fleet_persisted(fleet_t *fleet, const cb_principal_t *who)
{
    json_t *list = json_array();
    cleanup_free char *parent = cb_strdup_printf("%s/sandboxes", fleet->state_dir);
    cleanup_closedir DIR *d = parent ? opendir(parent) : NULL;
    for (struct dirent *e = d ? readdir(d) : NULL; e && list; e = readdir(d)) {
        if (!s_id_ok(e->d_name))
            continue;
        cleanup_free char *home = s_home(fleet, e->d_name);
        json_auto_t *saved = home ? s_read(home, NULL) : NULL;
        json_t *tenant = saved ? json_object_get(saved, "tenant") : NULL;
        if (!saved || !cb_principal_may(who, json_string_value(tenant)))
            continue;
        json_t *item = json_pack(
            "{s:s, s:O?, s:O?, s:O?, s:O?, s:O?, s:O?, s:b}", "sandbox_id", e->d_name, "tenant",
            tenant, "template", json_object_get(saved, "template"), "kernel",
            json_object_get(saved, "kernel"), "created_at", json_object_get(saved, "created_at"),
            "closed_at", json_object_get(saved, "closed_at"), "metadata",
            json_object_get(saved, "metadata"), "open", s_is_open(fleet, e->d_name, home));
        if (item)
            json_array_append_new(list, item);
    }
    return list;
}

int fleet_discard_workspace(fleet_t *fleet, const char *id, cb_error_t *err)
{
    if (s_check_id(fleet, id, err) < 0)
        return -1;
    cleanup_free char *home = s_home(fleet, id);
    struct stat st;
    if (!home || stat(home, &st) < 0)
        return cb_error_fail(err, CB_ERR_NOT_FOUND, "no persistent workspace for sandbox %s", id);
    cleanup_close int lock = cb_dir_lock(home, err);
    if (lock < 0)
        return -1;
    if (cb_rm_rf(home, err) < 0)
        return -1;
    cb_info("sandbox %.8s: its persistent workspace was removed", id);
    return 0;
}
