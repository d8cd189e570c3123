/* fleet_private.h (private): the structures fleet/'s files share.
 *
 * fleet.c is the object and the engine's policy hooks; lifetime.c opening, lifetimes, idle
 * limits, ends and metrics; pool.c warm pools; persist.c persistent workspaces; template.c
 * templates. Only this module includes this header.
 */
#ifndef FLEET_PRIVATE_H
#define FLEET_PRIVATE_H

#include <czmq.h>

#include "fleet/fleet.h"
#include "kg/gateway.h"

#define FLEET_TOMBSTONES 256 /* ended sandboxes whose reason is remembered */

typedef struct fleet_pool fleet_pool_t;
typedef struct fleet_audit_log fleet_audit_log_t;

struct fleet {
    kg_gateway_t *gw;
    fleet_config_t cfg; /* templates_dir and state_dir point at the copies below */
    char *templates_dir;
    char *state_dir;
    int64_t started_ms;
    int tick_timer;
    bool destroying;                    /* the gateway is going: no tombstones, ticks or refills */
    zhashx_t *sandboxes;                /* id -> fleet_sandbox_t *, not owning (see below) */
    char *tombstones[FLEET_TOMBSTONES]; /* "<id> <tenant> <reason>", a ring */
    size_t tombstone_next;
    zhashx_t *pools; /* template name -> fleet_pool_t *, owned (pool.c) */
    fleet_counters_t counters;
    fleet_audit_log_t *audit; /* audit.c; freed by the closed hook, after every sandbox */
};

/* The fleet's record of one of its sandboxes: the engine's policy data of that sandbox
 * (kg_sandbox_set_policy_data). Made when the fleet makes the sandbox, freed by the engine's
 * destroyed hook. */
typedef struct {
    fleet_t *fleet;
    kg_sandbox_t *sb;
    int64_t created_ms;
    int64_t last_active_ms; /* the fleet's clock: the last use (kg_sandbox_touch) */
    bool opened;            /* handed out by fleet_sandbox_open: lifetimes apply */
    char *template_name;
    char *tenant;             /* fleet_sandbox_opts_t.tenant; NULL until opened */
    kg_kernel_t *main_kernel; /* NULL once it stopped */
    json_t *metadata;         /* object, never NULL once opened */
    int64_t opened_ms;        /* when it was handed out (its lifetime starts then) */
    int64_t expires_ms;       /* the fleet's clock; 0: no lifetime limit */
    int lifetime_s;           /* the last lifetime set, for messages */
    bool extend_on_use;       /* the deadline is lifetime_s after the last use */
    bool in_pool;             /* waiting in a warm pool; not handed out */
    bool from_pool;
    fleet_end_t end_why;  /* set when the fleet asked the engine to end it */
    bool fleet_ended;     /* ... and whether it did */
    uint64_t net_audited; /* connections of it already in the audit trail */
    fleet_end_fn *on_end;
    void *end_arg;
    char *persist_dir; /* <state>/sandboxes/<id>: a persistent workspace's home */
    int persist_lock;  /* flock on persist_dir while open; -1 */
} fleet_sandbox_t;

/* The fleet's record of sb, or NULL for a sandbox the fleet did not make. */
fleet_sandbox_t *fleet_sandbox_of(const kg_sandbox_t *sb);

/* Where state lives unless told: $XDG_STATE_HOME/cellblock, else ~/.local/state/cellblock.
 * Caller owns return value. */
char *fleet_default_state_dir(void);

/* The fleet's clock (fleet_config_t.now_ms). */
int64_t fleet_now_ms(const fleet_t *fleet);

/* Ask the engine to end the sandbox (kg_sandbox_end_later), remembering why. */
void fleet_end_later(fleet_sandbox_t *fs, fleet_end_t why, const char *detail);

/* The engine's hooks, in lifetime.c. */
void fleet_on_ending(fleet_sandbox_t *fs, const char *detail);
void fleet_on_kernel_event(fleet_sandbox_t *fs, kg_kernel_t *k, kg_kernel_event_t event,
                           const char *detail);
void fleet_describe(fleet_sandbox_t *fs, json_t *info);

/* Make the fleet's record of an engine sandbox (its policy data, freed with it). Not opened:
 * no lifetime yet. */
fleet_sandbox_t *fleet_sandbox_adopt(fleet_t *fleet, kg_sandbox_t *sb, const char *template_name);

/* A sandbox with its main kernel, from a template (lifetime.c; used by the pool too). */
kg_sandbox_t *fleet_sandbox_prepare(fleet_t *fleet, const fleet_template_t *t,
                                    const fleet_sandbox_opts_t *opts, const char *id,
                                    const char *workspace_dir, cb_error_t *err);

/* Remember why a sandbox went (fleet_sandbox_gone). */
void fleet_tombstone(fleet_t *fleet, const char *id, const char *tenant, const char *why);

/* Pools (pool.c). */
void fleet_pool_destroy_all(fleet_t *fleet);
/* Take a ready sandbox of the template from its pool, or NULL. */
kg_sandbox_t *fleet_pool_take(fleet_t *fleet, const char *template_name);
/* The pool size asked for a template (0: no pool). */
int fleet_pool_size(fleet_t *fleet, const char *template_name);
/* Give up one pooled sandbox to make room at the cap: of another template than keep if there is
 * one, else any. false when the pools are empty. */
bool fleet_pool_evict_one(fleet_t *fleet, const char *keep);
/* Refill pools (from the tick): at most one new sandbox per pool per call. */
void fleet_pool_refill(fleet_t *fleet);
/* The sandbox is going: forget it if a pool holds it. */
void fleet_pool_forget(fleet_t *fleet, fleet_sandbox_t *fs);
/* {hits, misses, templates: {name: {size, ready, starting}}}. Caller owns return value. */
json_t *fleet_pool_metrics(fleet_t *fleet);
/* Sandboxes in the pools; *starting: of them, those whose kernel is not ready yet. */
size_t fleet_pool_count(fleet_t *fleet, size_t *starting);

/* Persistence (persist.c): <state_dir>/sandboxes/<id>/ holds sandbox.json (what the sandbox
 * was: template, kernel, limits, metadata, times) and workspace/ (bound at /home/user). */
/* The saved description of a persisted sandbox that is not open, when who may reach it (its
 * saved tenant); one it may not is answered exactly as an unknown id. Caller owns return
 * value. */
json_t *fleet_persist_describe(fleet_t *fleet, const char *id, const cb_principal_t *who,
                               cb_error_t *err);
/* The limits saved in a description. */
void fleet_persist_limits(json_t *saved, kg_sandbox_limits_t *out);
/* The network policy saved with a persistent sandbox: Caller owns return value; NULL when none
 * was saved (err untouched) or when it does not parse (err set). */
struct egress_policy *fleet_persist_network(json_t *saved, cb_error_t *err);
/* Make a new persistent home (reopen_id NULL; its id into id_out) or lock an existing one. On
 * success *dir_out is the home (caller owns) and *lock_out its lock fd (caller owns). */
int fleet_persist_open(fleet_t *fleet, const char *reopen_id, char *id_out, char **dir_out,
                       int *lock_out, cb_error_t *err);
/* Write the sandbox's description into its home. */
int fleet_persist_save(fleet_sandbox_t *fs, const char *kernel_name, cb_error_t *err);
/* The sandbox is going: note when, release the lock (the workspace stays). */
void fleet_persist_close(fleet_sandbox_t *fs);

/* The audit trail's writer (audit.c): a thread that appends each tenant's records to
 * <state_dir>/audit/<tenant>/audit.jsonl in batches. Unit tests make one directly. */
#define FLEET_AUDIT_MAX_BYTES (16u << 20) /* a log is rotated past this size */
#define FLEET_AUDIT_KEEP 4                /* rotated logs kept: audit.1.jsonl .. audit.4.jsonl */
typedef struct {
    uint64_t max_bytes; /* 0: FLEET_AUDIT_MAX_BYTES */
    size_t keep;        /* 0: FLEET_AUDIT_KEEP */
    int interval_ms;    /* longest a record waits in memory; 0 or > 1000: 1000 */
} fleet_audit_log_opts_t;
/* state_dir NULL: the default. opts may be NULL. Caller owns return value. */
fleet_audit_log_t *fleet_audit_log_new(const char *state_dir, const fleet_audit_log_opts_t *opts);
/* Writes what is queued, then frees it. */
void fleet_audit_log_destroy(fleet_audit_log_t **self_p);
/* Queue a record (Takes ownership) for the tenant (a valid name). Never blocks on the disk. */
void fleet_audit_log_append(fleet_audit_log_t *self, const char *tenant, json_t *record);
/* Wait until everything queued so far is written and synced. */
void fleet_audit_log_flush(fleet_audit_log_t *self);
/* Records dropped (queue full) or not written (disk errors) so far. */
uint64_t fleet_audit_log_dropped(fleet_audit_log_t *self);
/* A record: {time, tenant, event, sandbox_id, ...fields} (fields: Takes ownership; may be NULL). */
/* Record the sandbox's network connections made since the last call (the tick's). */
void fleet_audit_network(fleet_sandbox_t *fs);
/* The engine's activity record as audit fields: a copy, with started_ms (wall-clock ms) turned
 * into "started" (ISO 8601). Caller owns return value. */
json_t *fleet_audit_fields(json_t *record);
json_t *fleet_audit_record(const char *tenant, const char *event, const char *sandbox_id,
                           json_t *fields);

#endif
