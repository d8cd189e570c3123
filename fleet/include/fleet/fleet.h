/* fleet/fleet.h: the policy layer over the engine's sandboxes (kernel-gateway/, the kg/ headers).
 *
 * The engine makes sandboxes and kernels and runs them; the fleet decides which sandboxes exist
 * and for how long: templates (what a sandbox starts with), the cap on live sandboxes, warm
 * pools of ready ones, lifetimes and idle culling, persistent workspaces, and the memory of why
 * a sandbox went (tombstones). It wraps engine sandboxes (kg_sandbox_t stays the handle) and
 * hears what happens to them through the engine's policy hooks (kg_policy_t); the engine never
 * calls it by name.
 *
 * Threads: every call comes from the gateway loop's thread. None blocks for long, but opening a
 * sandbox makes it (about 10 ms of setup) and a template is read from disk.
 */
#ifndef FLEET_H
#define FLEET_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "cb/error.h"
#include "cb/principal.h"
#include "kg/gateway.h"
#include "kg/sandbox.h"
#include "kg/kernel.h"
#include "kg/policy.h"

typedef struct fleet fleet_t;

/* ---------------------------------------------------------------------------------------------
 * Templates: named sandbox configurations, one JSON file each (<name>.json). Search order (the
 * first file of a name wins): each entry of $CELLBLOCK_TEMPLATES_PATH (colon-separated),
 * $XDG_CONFIG_HOME/cellblock/templates or ~/.config/cellblock/templates, the project's
 * templates directory. A file looks like
 *
 *   { "description": "Python with numpy, pandas and matplotlib imported",
 *     "kernel": "python3",
 *     "limits": {"memory_mb": 2048, "cpu": 1.5, "pids": 1024, "disk_mb": 1024, "tmp_mb": 256},
 *     "env": {"MPLBACKEND": "agg"},
 *     "files": [{"path": "README.md", "content": "text"},
 *               {"path": "data/x.csv", "source": "python-data/x.csv"}],
 *     "startup_code": "import numpy as np",
 *     "timeout_s": 300,
 *     "network": {"allow": ["pypi.org", "*.pythonhosted.org"]} }
 *
 * Every field is optional; a field of the wrong type, an unknown field, a file path that is
 * absolute or climbs with "..", or a source that cannot be read is an error naming the file and
 * the field. A source is relative to the template file's directory (use one for binary files:
 * content cannot hold NUL). Files are at most 16 MiB each and 64 MiB in all. timeout_s is the
 * sandbox's lifetime in seconds: -1 for none; absent or 0 for the fleet's default. network is a
 * network policy in any JSON form egress_policy_from_json takes ("none", "all", "ask", a preset
 * name, or an object); absent: the server's default.
 * ------------------------------------------------------------------------------------------- */

typedef struct {
    char *path; /* relative to the workspace, e.g. "data/x.csv" */
    char *data; /* its bytes (NUL-terminated for convenience; len excludes the NUL) */
    size_t len;
} fleet_template_file_t;

typedef struct {
    char *name;                 /* the file's name without .json */
    char *description;          /* "" when none */
    char *kernel_name;          /* "python3" when none */
    kg_sandbox_limits_t limits; /* zero fields: the engine's defaults; limits.network is
                                   network below */
    egress_policy_t *network;   /* the "network" key (egress_policy_from_json); NULL: none given */
    char **env;                 /* "KEY=VALUE", NULL-terminated; never NULL */
    fleet_template_file_t *files;
    size_t file_count;
    char *startup_code; /* run in the main kernel before it counts as ready; NULL: none */
    int timeout_s;      /* sandbox lifetime; 0: the fleet's */
    char *source;       /* the JSON file it was read from */
} fleet_template_t;

/* The project's templates directory: the source tree's templates/ while developing, the
 * installed share/cellblock/templates otherwise. Caller owns return value. */
char *fleet_template_project_dir(void);

/* The directories searched, in order, NULL-terminated. project_dir may be NULL. Caller owns
 * return value (free each string and the array). */
char **fleet_template_search_path(const char *project_dir);

/* Parse one template file; name is the template's name. Caller owns return value. */
fleet_template_t *fleet_template_load(const char *path, const char *name, cb_error_t *err);

/* Find a template by name in the search path. A name that is not [A-Za-z0-9._-]+ is refused.
 * Caller owns return value. */
fleet_template_t *fleet_template_find(const char *project_dir, const char *name, cb_error_t *err);

/* Every loadable template, first of each name, sorted by name; *count set. Templates that fail
 * to load are skipped with a warning. Caller owns return value (destroy each, free the array). */
fleet_template_t **fleet_template_list(const char *project_dir, size_t *count);

void fleet_template_destroy(fleet_template_t **self_p);

/* {name, description, kernel, limits: {memory_mb, cpu, pids, disk_mb, tmp_mb} (only those set),
 * env_keys: [...], files: [paths], startup_code: bool, timeout_s}. Caller owns return value. */
json_t *fleet_template_json(const fleet_template_t *self);

/* ---------------------------------------------------------------------------------------------
 * The fleet
 * ------------------------------------------------------------------------------------------- */

typedef struct {
    const char *templates_dir; /* the project's templates; NULL: built-in default */
    const char *state_dir;     /* persistent workspaces; NULL: $XDG_STATE_HOME/cellblock or
                                  ~/.local/state/cellblock */
    int sandbox_timeout_s;     /* lifetime of an opened sandbox; 0: 300; < 0: none */
    int idle_timeout_s;        /* ended after this long without activity; 0: never */
    int max_sandboxes;         /* cap on live sandboxes (starting, pooled or in use); 0: 100;
                                  < 0: none */
    int64_t (*now_ms)(void);   /* the clock lifetimes, idle limits and pool back-offs read
                                  (monotonic ms); NULL: cb_now_ms. A seam for unit tests. */
} fleet_config_t;

typedef struct {
    uint64_t sandboxes_opened;  /* fleet_sandbox_open calls that succeeded */
    uint64_t sandboxes_refused; /* fleet_sandbox_open calls refused at the cap */
    uint64_t sandboxes_expired; /* ended by their lifetime */
    uint64_t sandboxes_culled;  /* ended for being idle */
    uint64_t sandboxes_died;    /* ended because their init died */
    uint64_t pool_hits;         /* opens served from the warm pool */
    uint64_t pool_misses;       /* opens of a pooled template that found the pool empty */
} fleet_counters_t;

/* The fleet of a gateway: installs itself as the gateway's policy (kg_gateway_set_policy) and
 * starts its tick (lifetimes, idle limits, pool refills, every FLEET_TICK_MS). The gateway owns
 * it: kg_gateway_destroy frees it, after its sandboxes. Borrowed; valid until
 * kg_gateway_destroy. Fails when the gateway has a policy already. */
fleet_t *fleet_new(kg_gateway_t *gw, const fleet_config_t *config, cb_error_t *err);

/* The gateway's fleet, or NULL when it has none. Borrowed; valid until kg_gateway_destroy. */
fleet_t *fleet_of(kg_gateway_t *gw);

kg_gateway_t *fleet_gateway(fleet_t *self);            /* Borrowed */
const fleet_counters_t *fleet_counters(fleet_t *self); /* Borrowed; valid with the fleet */

#define FLEET_TICK_MS 200 /* how often lifetimes and pools are looked at */

/* Look at lifetimes, idle limits and pools now, as the tick does (unit tests, with a clock of
 * their own in fleet_config_t.now_ms). */
void fleet_tick(fleet_t *self);

/* ---------------------------------------------------------------------------------------------
 * Opening sandboxes
 * ------------------------------------------------------------------------------------------- */

/* Why the fleet ended a sandbox on its own. */
typedef enum {
    FLEET_END_EXPIRED = 0, /* its lifetime ran out */
    FLEET_END_IDLE,        /* nothing ran in it for idle_timeout_s */
    FLEET_END_DIED,        /* its init died, and every process with it */
    FLEET_END_FAILED,      /* its main kernel could not start or died for good while starting */
} fleet_end_t;

/* Called just before the fleet destroys a sandbox it ends on its own; detail is a sentence.
 * The sandbox and its kernels are still valid during the call, and freed right after it: drop
 * every pointer to them. Never called from kg_sandbox_destroy or kg_gateway_destroy. */
typedef void(fleet_end_fn)(kg_sandbox_t *sb, fleet_end_t why, const char *detail, void *arg);

typedef struct {
    const char *template_name;  /* NULL: "python" */
    const char *kernel_name;    /* NULL: the template's */
    kg_sandbox_limits_t limits; /* zero fields: the template's, then the engine's */
    const char *const *env;     /* extra "KEY=VALUE" for every kernel and command; borrowed */
    int timeout_s;              /* lifetime from now; 0: the template's, then the fleet's;
                                   < 0: none */
    bool persist;               /* keep the workspace on disk when the sandbox ends, however it
                                   ends (delete, expiry, server stop or crash) */
    const char *reopen_id;      /* reopen the persisted sandbox of this id, with its files; its
                                   template, kernel, limits and metadata come from disk unless
                                   given here */
    json_t *metadata;           /* labels kept with the sandbox (on disk too when persisted);
                                   borrowed, copied; NULL: none */
    bool no_pool;               /* start a fresh sandbox even when the pool has one */
    bool extend_on_use;         /* the lifetime runs from the last use, not from the opening:
                                   see fleet_sandbox_expires_ms (until fleet_sandbox_set_timeout) */
    const char *tenant;         /* the tenant it belongs to (cb/principal.h); NULL:
                                   CB_TENANT_LOCAL. A persisted sandbox keeps its tenant on disk:
                                   reopening it for another tenant fails as "not found" */
    bool admin;                 /* tenant acts as an admin (NULL tenant: always): it may reopen
                                   any tenant's persisted sandbox, which keeps its own tenant */
    fleet_end_fn *on_end;
    void *arg;
} fleet_sandbox_opts_t;

/* The front door for sandboxes: the cap, the warm pool, templates, lifetimes, persistence.
 * Returns a sandbox whose main kernel (the template's) is started, or ready at once when it
 * came from the pool (see fleet_sandbox_main_kernel). The template's files are in the workspace and
 * its startup code runs in the main kernel before the kernel reports READY. A request the pool
 * can serve (the template's own kernel and limits, no extra env, not persistent) is served from
 * it; a pooled sandbox is handed out once, and its lifetime starts then. At the cap the call
 * fails with CB_ERR_LIMIT; pooled sandboxes of other templates are given up first to make room.
 * Borrowed; valid until kg_sandbox_destroy, or until on_end returns. */
kg_sandbox_t *fleet_sandbox_open(fleet_t *fleet, const fleet_sandbox_opts_t *opts, cb_error_t *err);

/* The kernel fleet_sandbox_open started, until it stops. Its events go nowhere until the caller
 * sets them (kg_kernel_set_events); check kg_kernel_state for READY having passed already.
 * Borrowed; see kg_kernel_start. */
kg_kernel_t *fleet_sandbox_main_kernel(kg_sandbox_t *self);

/* What fleet_sandbox_open made of it. The template's name: Borrowed; valid with the sandbox (NULL
 * for a sandbox from kg_sandbox_create). expires_ms: when its lifetime ends, in ms since the
 * epoch (0: never). For a sandbox opened with extend_on_use that is its lifetime after its last
 * use: the last execution, command or file call, or request a Jupyter client (attached, or
 * through the Jupyter API) sent to one of its kernels; while something runs in it, its lifetime
 * from now; never earlier than the deadline it had when opened. Its own code's output is not
 * use. */
const char *fleet_sandbox_template(const kg_sandbox_t *self);
/* The tenant it belongs to (fleet_sandbox_opts_t.tenant), NULL for a sandbox the fleet did not
 * open (kg_sandbox_create's, or one waiting in the pool). Borrowed; valid with the sandbox. */
const char *fleet_sandbox_tenant(const kg_sandbox_t *self);
/* Whether who may reach the sandbox (cb_principal_may on its tenant): every surface's test
 * before it answers anything about a sandbox, its kernels, commands, files or ports. */
bool fleet_sandbox_visible(const kg_sandbox_t *self, const cb_principal_t *who);
bool fleet_sandbox_from_pool(const kg_sandbox_t *self);
bool fleet_sandbox_persistent(const kg_sandbox_t *self);
int64_t fleet_sandbox_expires_ms(const kg_sandbox_t *self);

/* Set the lifetime: the sandbox ends timeout_s seconds from now (< 0: never). Like E2B's
 * set_timeout; it may shorten as well as extend. A fixed deadline: use no longer extends it. */
int fleet_sandbox_set_timeout(kg_sandbox_t *self, int timeout_s, cb_error_t *err);

/* Why a sandbox that no longer exists ended ("expired: its lifetime of 300 s ran out", "deleted",
 * ...), for the last 256 that ended. NULL when the id is unknown. Borrowed; valid until the next
 * sandbox ends. */
const char *fleet_sandbox_gone(fleet_t *fleet, const char *id);
/* The same for who: NULL too when the sandbox was a tenant's who may not reach, so that its
 * id is answered exactly as an unknown one. Borrowed, as above. */
const char *fleet_sandbox_gone_for(fleet_t *fleet, const char *id, const cb_principal_t *who);

/* The templates this fleet finds (fleet_template_json of each, sorted by name). Caller owns
 * return value. */
json_t *fleet_templates(fleet_t *fleet);

/* Keep up a warm pool of size ready sandboxes of a template (0: none), refilled in the
 * background. Fails when the template cannot be loaded. */
int fleet_set_pool(fleet_t *fleet, const char *template_name, int size, cb_error_t *err);

/* Persistent workspaces on disk, open or not, that who may reach (cb_principal_may on the
 * tenant saved with each; NULL who: none): [{sandbox_id, tenant, template, kernel, created_at,
 * metadata, open}]. Caller owns return value. */
json_t *fleet_persisted(fleet_t *fleet, const cb_principal_t *who);

/* Remove a persistent workspace that is not open (here or in another cellblock process). */
int fleet_discard_workspace(fleet_t *fleet, const char *id, cb_error_t *err);

/* Everything the engine and the fleet count, and what they hold now: {uptime_s, sandboxes: {live,
 * in_use, pooled, starting, max, created, opened, refused, expired, culled, died}, pool: {hits,
 * misses, templates: {name: {size, ready, starting}}}, kernels: {live, started, died, restarted,
 * oom}, executions: {total, failed}, commands, messages: {bad_signatures, replayed_signatures,
 * malformed, proxy_dropped}}. Caller owns return value. */
json_t *fleet_metrics(fleet_t *fleet);

/* The kernelspec a template's sandboxes start (its "kernel"). Caller owns return value; NULL with
 * err when the template cannot be loaded. */
char *fleet_template_kernel(fleet_t *fleet, const char *template_name, cb_error_t *err);

/* ---------------------------------------------------------------------------------------------
 * The audit trail (audit.c; docs/audit.md): what ran, who ran it, and what happened to
 * sandboxes, as JSON lines in <state_dir>/audit/<tenant>/, one log per tenant, written in
 * batches (fsync at least once a second), rotated by size, surviving restarts and crashes.
 * Values of environment variables and file contents are never recorded.
 * ------------------------------------------------------------------------------------------- */

/* Append one record for the tenant (NULL: sb's tenant; CB_TENANT_LOCAL when neither). event
 * names what happened ("execution", "command", "file_write", "file_delete", "session_open",
 * "session_close", "sandbox_create", "sandbox_end", ...); fields (Takes ownership; may be
 * NULL) are its own: the record gets "time", "tenant", "event" and "sandbox_id" (sb's, unless
 * fields has one) added. sb may be NULL. Never fails the caller: a record that cannot be
 * written is counted and logged. */
void fleet_audit(fleet_t *fleet, kg_sandbox_t *sb, const char *tenant, const char *event,
                 json_t *fields);

typedef struct {
    const char *tenant;     /* NULL: every tenant's log */
    const char *sandbox_id; /* NULL: every sandbox */
    int64_t since_ms;       /* records at or after this time (ms since the epoch); 0: all */
    size_t limit;           /* at most this many, the latest; 0: 1000 */
} fleet_audit_query_t;

/* The records that match, oldest first, read from the logs on disk under state_dir (NULL: the
 * default state directory), with what is still being batched flushed first when a fleet of
 * that state directory runs in this process. Caller owns return value (an array). */
json_t *fleet_audit_read(const char *state_dir, const fleet_audit_query_t *q, cb_error_t *err);

/* A time for fleet_audit_query_t.since_ms: ISO 8601 in UTC ("2026-12-08", "2026-12-08T02:30:05",
 * "...T02:30:05.123Z") or an age before now_ms ("30s", "10m", "2h", "1d"). -1 when it is
 * neither. */
int fleet_audit_parse_time(const char *text, int64_t now_ms, int64_t *out_ms);

/* The fleet's state directory (persistent workspaces, audit logs). Borrowed. */
const char *fleet_state_dir(fleet_t *fleet);

#endif
