/* sandboxes.c: the server object, sandboxes as MCP sees them, and their sessions.
 *
 * An mcp_sandbox_t wraps a gateway sandbox (fleet_sandbox_open: template, cap, warm pool, lifetime,
 * persistence) with what MCP adds: labels, an environment for everything started in it, a
 * default time limit per execution, and sessions
 * (mcp_repl_t): jupyter sessions are gateway kernels in the sandbox, terminal sessions are bash
 * commands fed line by line (terminal.c). Every sandbox starts with its main jupyter session,
 * where code_execute runs: the gateway's main kernel of the sandbox, adopted. Calls that need a
 * session to be ready wait on it (mcp_repl_when_ready) and are finished from the kernel's ready
 * or dead event. When the gateway ends a sandbox on its own (its lifetime ran out, it idled, its
 * init died), s_on_sandbox_end lets go of it before the gateway frees it, and a session that
 * loses its default sandbox says so on the first result from the next one.
 */
#include <errno.h>
#include <string.h>

#include "cb/cleanup.h"
#include "mcp_private.h"
#include "kg/gateway.h"
#include "kg/sandbox.h"
#include "kg/kernel.h"

#define MiB (1024ull * 1024ull)

static const char *s_repl_type_name(mcp_repl_type_t t)
{
    return t == MCP_REPL_JUPYTER ? "jupyter" : "terminal";
}

/* ---- the server ---------------------------------------------------------------------------- */

/* sandbox_create's template argument lists the templates found at start; the default one must
 * be among them. */
static int s_offer_templates(mcp_server_t *srv, cb_error_t *err)
{
    json_auto_t *templates = fleet_templates(srv->fleet);
    json_t *names = json_array();
    bool found = false;
    size_t i;
    json_t *t;
    json_array_foreach (templates, i, t) {
        const char *name = json_string_value(json_object_get(t, "name"));
        found |= name && strcmp(name, srv->cfg.template_name) == 0;
        json_array_append(names, json_object_get(t, "name"));
    }
    json_t *tools = json_object_get(srv->tools, "tools");
    json_t *tool = json_array_get(tools, mcp_tool_index(mcp_tool_find("sandbox_create")));
    json_t *prop = json_object_get(
        json_object_get(json_object_get(tool, "inputSchema"), "properties"), "template");
    if (!names || !prop || json_object_set_new(prop, "enum", names) < 0)
        return cb_error_make(err, ENOMEM, "list templates");
    if (!found)
        return cb_error_fail(err, CB_ERR_NOT_FOUND,
                             "the default template '%s' was not found (see `cellblock templates`)",
                             srv->cfg.template_name);
    return 0;
}

mcp_server_t *mcp_server_new(kg_gateway_t *gw, const mcp_config_t *cfg, cb_error_t *err)
{
    mcp_server_t *srv = cb_xcalloc(1, sizeof *srv);
    srv->gw = gw;
    srv->fleet = fleet_of(gw);
    if (!srv->fleet) {
        free(srv);
        return cb_error_fail(err, CB_ERR_INVALID,
                             "the MCP server needs the gateway's fleet (fleet_new)"),
               NULL;
    }
    if (cfg)
        srv->cfg = *cfg;
    else if (mcp_config_from_env(&srv->cfg, err) < 0) {
        free(srv);
        return NULL;
    }
    srv->sandboxes = zhashx_new(); /* czmq aborts when memory runs out */
    srv->repls = zhashx_new();
    srv->jobs = zhashx_new();
    srv->finished = zlistx_new();
    srv->sessions = zlistx_new();
    srv->tools = mcp_tools_list(err);
    if (!srv->tools) {
        mcp_server_destroy(&srv);
        return NULL;
    }
    zlistx_set_destructor(srv->finished, (zlistx_destructor_fn *)zstr_free);
    zlistx_set_duplicator(srv->finished, (zlistx_duplicator_fn *)strdup);
    if (s_offer_templates(srv, err) < 0) {
        mcp_server_destroy(&srv);
        return NULL;
    }
    mcp_network_init(srv);
    return srv;
}

void mcp_server_destroy(mcp_server_t **self_p)
{
    mcp_server_t *srv = self_p ? *self_p : NULL;
    if (!srv)
        return;
    *self_p = NULL;
    while (srv->sessions && zlistx_size(srv->sessions) > 0) {
        mcp_session_t *s = zlistx_first(srv->sessions);
        mcp_session_destroy(&s);
    }
    while (srv->sandboxes && zhashx_size(srv->sandboxes) > 0) {
        mcp_sandbox_t *sb = zhashx_first(srv->sandboxes);
        mcp_sandbox_delete(&sb);
    }
    if (srv->jobs)
        mcp_jobs_destroy_all(srv);
    mcp_server_ports_destroy(srv);
    cb_log_set_hook(NULL, NULL, CB_LOG_OFF);
    if (srv->gw)
        mcp_network_fini(srv);
    zhashx_destroy(&srv->sandboxes);
    zhashx_destroy(&srv->repls);
    zhashx_destroy(&srv->jobs);
    zlistx_destroy(&srv->finished);
    zlistx_destroy(&srv->sessions);
    json_decref(srv->tools);
    free(srv);
}

json_t *mcp_server_tools(mcp_server_t *self) { return json_deep_copy(self->tools); }

/* ---- sessions inside a sandbox ------------------------------------------------------------- */

static void s_finish_waiters(mcp_repl_t *repl)
{
    mcp_call_t *call;
    while (repl->waiters && (call = zlistx_detach(repl->waiters, NULL))) {
        mcp_ready_fn *reply = call->on_ready;
        call->repl = NULL;
        call->on_ready = NULL;
        call->cancel = NULL;
        const char *failure = mcp_repl_failure(repl);
        if (failure)
            mcp_call_fail(call, "session %s cannot run: %s", repl->id, failure);
        else
            reply(call, repl);
    }
}

static void s_on_kernel_event(kg_kernel_t *k, kg_kernel_event_t event, const char *detail,
                              void *arg)
{
    mcp_repl_t *repl = arg;
    switch (event) {
    case KG_EVENT_READY: /* also after a restart from any route (kernel_restart, the Jupyter API) */
        repl->ready = true;
        s_finish_waiters(repl);
        break;
    case KG_EVENT_RESTARTING:
        repl->ready = false; /* calls that wait for ready wait for this restart */
        break;
    case KG_EVENT_DEAD:
        /* Not a failure of the session: a restart from any route revives the kernel, so whether
         * it is dead is read from the kernel itself (mcp_repl_failure); this only says why. */
        free(repl->dead_detail);
        free(repl->dead_note);
        repl->dead_detail = cb_xstrdup(detail ? detail : "no detail");
        repl->dead_note = NULL; /* made again, from this detail, when asked */
        s_finish_waiters(repl);
        break;
    case KG_EVENT_STOPPED:
        repl->kernel = NULL;
        if (!repl->failure)
            repl->failure = cb_xstrdup("its kernel was stopped");
        s_finish_waiters(repl);
        break;
    case KG_EVENT_DIED:
        cb_info("session %.8s: kernel died: %s", repl->id, detail ? detail : "");
        break;
    default: break;
    }
}

/* A waiting call, given up by its client: it leaves the waiters and ends (silently). */
static void s_cancel_waiter(mcp_call_t *call)
{
    void *h = zlistx_find(call->repl->waiters, call);
    if (h)
        zlistx_detach(call->repl->waiters, h);
    call->repl = NULL;
    mcp_call_finish(call, NULL, NULL, false);
}

const char *mcp_repl_failure(mcp_repl_t *repl)
{
    if (repl->failure)
        return repl->failure;
    if (repl->type != MCP_REPL_JUPYTER || !repl->kernel ||
        kg_kernel_state(repl->kernel) != KG_KERNEL_DEAD)
        return NULL;
    if (!repl->dead_note)
        repl->dead_note =
            cb_strdup_printf("its kernel died and was not restarted (%s); kernel_restart "
                             "starts it again (its variables are lost, its files kept)",
                             repl->dead_detail ? repl->dead_detail : "no detail");
    return repl->dead_note;
}

void mcp_repl_when_ready(mcp_repl_t *repl, mcp_call_t *call, mcp_ready_fn *reply)
{
    const char *failure = mcp_repl_failure(repl);
    if (failure)
        return mcp_call_fail(call, "session %s cannot run: %s", repl->id, failure);
    if (repl->ready || repl->type == MCP_REPL_TERMINAL)
        return reply(call, repl);
    call->repl = repl;
    call->on_ready = reply;
    call->cancel = s_cancel_waiter;
    zlistx_add_end(repl->waiters, call); /* czmq aborts when memory runs out */
}

static mcp_repl_t *s_repl_alloc(mcp_sandbox_t *sb, mcp_repl_type_t type)
{
    mcp_repl_t *repl = cb_xcalloc(1, sizeof *repl);
    zuuid_t *uuid = zuuid_new(); /* czmq aborts when memory runs out */
    repl->waiters = zlistx_new();
    snprintf(repl->id, sizeof repl->id, "%s", zuuid_str_canonical(uuid));
    zuuid_destroy(&uuid);
    repl->sandbox = sb;
    repl->type = type;
    repl->timer = -1;
    return repl;
}

/* Register a session whose kernel or shell is running; on failure stop them and free it. */
static mcp_repl_t *s_repl_register(mcp_repl_t *repl, int rc, cb_error_t *err)
{
    mcp_sandbox_t *sb = repl->sandbox;
    if (rc == 0)
        zlistx_add_end(sb->repls, repl);
    if (rc < 0 || zhashx_insert(sb->server->repls, repl->id, repl) != 0) {
        if (rc == 0) /* a uuid already taken: cannot happen, but must not overwrite */
            cb_error_fail(err, CB_ERR_INTERNAL, "new session: id %s is taken", repl->id);
        if (repl->kernel) {
            kg_kernel_set_events(repl->kernel, NULL, NULL);
            kg_kernel_shutdown(repl->kernel);
        }
        mcp_terminal_stop(repl);
        void *h = zlistx_find(sb->repls, repl);
        if (h)
            zlistx_detach(sb->repls, h);
        free(repl->kernel_name);
        zlistx_destroy(&repl->waiters);
        free(repl);
        return NULL;
    }
    kg_sandbox_log(sb->kg, "session", "%s session %.8s opened%s%s", s_repl_type_name(repl->type),
                   repl->id, repl->kernel_name ? " with kernel " : "",
                   repl->kernel_name ? repl->kernel_name : "");
    return repl;
}

mcp_repl_t *mcp_repl_new(mcp_sandbox_t *sb, mcp_repl_type_t type, const char *kernel_name,
                         cb_error_t *err)
{
    return mcp_repl_new_sized(sb, type, kernel_name, 0, 0, err);
}

mcp_repl_t *mcp_repl_new_sized(mcp_sandbox_t *sb, mcp_repl_type_t type, const char *kernel_name,
                               unsigned short cols, unsigned short rows, cb_error_t *err)
{
    mcp_repl_t *repl = s_repl_alloc(sb, type);
    int rc;
    if (type == MCP_REPL_JUPYTER) {
        repl->kernel_name = cb_xstrdup_or_null(kernel_name ? kernel_name : sb->kernel_name);
        kg_kernel_opts_t opts = {.kernel_name = repl->kernel_name,
                                 .env = (const char *const *)sb->env_list,
                                 .sandbox = sb->kg,
                                 .on_event = s_on_kernel_event,
                                 .arg = repl};
        repl->kernel = repl->kernel_name ? kg_kernel_start(sb->server->gw, &opts, err) : NULL;
        rc = repl->kernel ? 0 : -1;
    } else {
        rc = mcp_terminal_start(repl, cols, rows, err);
    }
    return s_repl_register(repl, rc, err);
}

/* The sandbox's main kernel, started by the gateway (ready already when it came from the pool),
 * as a jupyter session. */
static mcp_repl_t *s_repl_adopt(mcp_sandbox_t *sb, kg_kernel_t *kernel, cb_error_t *err)
{
    mcp_repl_t *repl = s_repl_alloc(sb, MCP_REPL_JUPYTER);
    repl->kernel = kernel;
    repl->kernel_name = cb_xstrdup(kg_kernel_name(kernel));
    repl->ready = kg_kernel_is_ready(kernel);
    kg_kernel_set_events(kernel, s_on_kernel_event, repl);
    return s_repl_register(repl, 0, err);
}

/* Free a session's own memory; its kernel or shell is already stopped or going. */
static void s_repl_free(mcp_repl_t *repl)
{
    free(repl->failure);
    repl->failure = cb_xstrdup("the session was closed");
    s_finish_waiters(repl);
    zlistx_destroy(&repl->waiters);
    zhashx_delete(repl->sandbox->server->repls, repl->id);
    free(repl->kernel_name);
    free(repl->failure);
    free(repl->dead_detail);
    free(repl->dead_note);
    mcp_repl_history_free(repl);
    free(repl);
}

void mcp_repl_close(mcp_repl_t **repl_p)
{
    mcp_repl_t *repl = *repl_p;
    *repl_p = NULL;
    mcp_sandbox_t *sb = repl->sandbox;
    void *h = zlistx_find(sb->repls, repl);
    if (h)
        zlistx_detach(sb->repls, h);
    if (repl->kernel) {
        kg_kernel_t *k = repl->kernel;
        repl->kernel = NULL;
        /* It shuts down on its own; its events must not reach a freed session. Executions on
         * it end as cancelled. */
        kg_kernel_set_events(k, NULL, NULL);
        kg_kernel_shutdown(k);
    }
    mcp_terminal_stop(repl);
    kg_sandbox_log(sb->kg, "session", "%s session %.8s closed", s_repl_type_name(repl->type),
                   repl->id);
    s_repl_free(repl);
}

mcp_repl_t *mcp_repl_find(mcp_server_t *srv, mcp_session_t *s, const char *id, cb_error_t *err)
{
    mcp_repl_t *repl = id ? zhashx_lookup(srv->repls, id) : NULL;
    if (repl && s && !fleet_sandbox_visible(repl->sandbox->kg, &s->who))
        repl = NULL; /* another tenant's: answered as an unknown id */
    if (!repl)
        cb_error_fail(err, CB_ERR_NOT_FOUND,
                      "no session '%.60s' (it was closed, its sandbox was deleted, or the id is "
                      "wrong; session_create makes one)",
                      id ? id : "");
    return repl;
}

mcp_repl_t *mcp_sandbox_kernel_repl(mcp_sandbox_t *sb, const char *kernel_name, cb_error_t *err)
{
    if (!kernel_name || (sb->main && strcmp(kernel_name, sb->main->kernel_name) == 0))
        return sb->main;
    for (mcp_repl_t *r = zlistx_first(sb->repls); r; r = zlistx_next(sb->repls))
        if (r->type == MCP_REPL_JUPYTER && r->by_kernel && !mcp_repl_failure(r) &&
            strcmp(r->kernel_name, kernel_name) == 0)
            return r;
    mcp_repl_t *repl = mcp_repl_new(sb, MCP_REPL_JUPYTER, kernel_name, err);
    if (repl)
        repl->by_kernel = true;
    return repl;
}

/* ---- sandboxes ----------------------------------------------------------------------------- */

static char **s_env_list(json_t *env)
{
    char **list = cb_xcalloc(json_object_size(env) + 1, sizeof *list);
    size_t n = 0;
    const char *key;
    json_t *value;
    json_object_foreach (env, key, value)
        list[n++] = cb_strdup_printf("%s=%s", key, json_string_value(value));
    return list;
}

static void s_sandbox_release(mcp_sandbox_t *sb, const char *why, bool destroy_kg);

/* The gateway ends the sandbox (expired, idle, died, failed to start) and frees it after this. */
static void s_on_sandbox_end(kg_sandbox_t *kg, fleet_end_t end, const char *detail, void *arg)
{
    mcp_sandbox_t *sb = arg;
    cb_info("sandbox %.8s ended: %s", sb->id, detail);
    for (mcp_session_t *s = zlistx_first(sb->server->sessions); s;
         s = zlistx_next(sb->server->sessions))
        if (s->default_sb == sb) {
            free(s->default_gone);
            s->default_gone = cb_strdup_printf(
                "This session's previous default sandbox %s ended (%s). This is a new sandbox: "
                "variables, imports and files from before are gone.",
                sb->id, detail);
        }
    cleanup_free char *why = cb_strdup_printf("its sandbox ended: %s", detail);
    s_sandbox_release(sb, why, false);
}

mcp_sandbox_t *mcp_sandbox_new(mcp_server_t *srv, const cb_principal_t *who, json_t *args,
                               cb_error_t *err)
{
    const mcp_config_t *cfg = &srv->cfg;
    json_t *env = json_object_get(args, "env");
    const char *key;
    json_t *value;
    json_object_foreach (env, key, value)
        if (!cb_env_name_valid(key))
            return cb_error_fail(
                       err, CB_ERR_INVALID,
                       "env name '%.60s' is not a valid variable name (letters, digits, _)", key),
                   NULL;
    /* The network policy: this argument, else the template's, else the server's default. A bad
     * one creates nothing. */
    egress_policy_t *network = NULL;
    if (mcp_network_policy(args, &network, err) < 0)
        return NULL;
    /* Limits not given come from the template, then the server's settings (the gateway's). */
    kg_sandbox_limits_t limits = {
        .memory_mb = (uint64_t)mcp_arg_num(args, "memory_mb", 0),
        .cpu_millis = (uint32_t)(mcp_arg_num(args, "cpu", 0) * 1000.0 + 0.5),
        .workspace_mb = (uint64_t)mcp_arg_num(args, "disk_mb", 0),
        .network = network,
    };
    mcp_sandbox_t *sb = cb_xcalloc(1, sizeof *sb);
    sb->server = srv;
    json_t *metadata = json_object_get(args, "metadata");
    sb->env = env ? json_deep_copy(env) : json_object();
    sb->env_list = s_env_list(sb->env);
    sb->timeout_s = (int)mcp_arg_num(args, "timeout_s", cfg->timeout_s);
    sb->repls = zlistx_new(); /* czmq aborts when memory runs out */
    cb_iso8601_now(sb->created_at);
    fleet_sandbox_opts_t opts = {
        .template_name = mcp_arg_str(
            args, "template", json_object_get(args, "sandbox_id") ? NULL : cfg->template_name),
        .kernel_name = mcp_arg_str(args, "kernel", NULL),
        .limits = limits,
        .env = (const char *const *)sb->env_list,
        .timeout_s = (int)mcp_arg_num(args, "lifetime_s", 0),
        .persist = mcp_arg_bool(args, "persist", false),
        .reopen_id = mcp_arg_str(args, "sandbox_id", NULL),
        .metadata = metadata,
        /* A lifetime not asked for runs from the last use: a sandbox in use never expires
         * under its user (the default sandbox always; see docs/mcp-tools.md). */
        .extend_on_use = !json_object_get(args, "lifetime_s"),
        .tenant = who ? who->tenant : NULL,
        .admin = who ? who->admin : true,
        .on_end = s_on_sandbox_end,
        .arg = sb,
    };
    sb->kg = fleet_sandbox_open(srv->fleet, &opts, err);
    egress_policy_destroy(&network); /* the sandbox has its own copy */
    if (!sb->kg) {
        mcp_sandbox_delete(&sb);
        return NULL;
    }
    snprintf(sb->id, sizeof sb->id, "%s", kg_sandbox_id(sb->kg));
    json_auto_t *info = kg_sandbox_info(sb->kg);
    sb->metadata = json_incref(json_object_get(info, "metadata"));
    sb->cpu_millis = (uint32_t)json_integer_value(
        json_object_get(json_object_get(info, "limits"), "cpu_millis"));
    kg_kernel_t *main = fleet_sandbox_main_kernel(sb->kg);
    sb->kernel_name = main ? cb_xstrdup(kg_kernel_name(main)) : NULL;
    if (!sb->metadata || !sb->kernel_name || zhashx_insert(srv->sandboxes, sb->id, sb) != 0 ||
        !(sb->main = s_repl_adopt(sb, main, err))) {
        if (err && !err->msg[0])
            cb_error_fail(err, CB_ERR_INTERNAL,
                          "new sandbox %s: no main kernel, no metadata, or its id is taken",
                          sb->id);
        mcp_sandbox_delete(&sb);
        return NULL;
    }
    cb_info("sandbox %.8s opened (template %s, kernel %s%s)", sb->id,
            fleet_sandbox_template(sb->kg), sb->kernel_name,
            fleet_sandbox_from_pool(sb->kg) ? ", from the warm pool" : "");
    return sb;
}

/* Let go of a sandbox: sessions that used it by default forget it, its jobs and sessions hear
 * why, its kernels' events stop reaching us; then (destroy_kg) the gateway sandbox goes too, or
 * the gateway frees it itself after s_on_sandbox_end. */
static void s_sandbox_release(mcp_sandbox_t *sb, const char *why, bool destroy_kg)
{
    mcp_server_t *srv = sb->server;
    for (mcp_session_t *s = zlistx_first(srv->sessions); s; s = zlistx_next(srv->sessions))
        if (s->default_sb == sb)
            s->default_sb = NULL;
    if (sb->id[0] && zhashx_lookup(srv->sandboxes, sb->id) == sb)
        zhashx_delete(srv->sandboxes, sb->id);
    mcp_jobs_sandbox_gone(srv, sb);
    mcp_ports_sandbox_gone(sb);
    for (mcp_repl_t *r = sb->repls ? zlistx_first(sb->repls) : NULL; r;
         r = zlistx_next(sb->repls)) {
        if (r->kernel)
            kg_kernel_set_events(r->kernel, NULL, NULL);
        r->kernel = NULL; /* freed with the gateway sandbox */
        if (!r->failure)
            r->failure = cb_xstrdup(why);
        s_finish_waiters(r);
        mcp_terminal_stop(r);
    }
    if (destroy_kg)
        kg_sandbox_destroy(&sb->kg); /* ends executions (cancelled) and commands (killed) */
    mcp_repl_t *r;
    while (sb->repls && (r = zlistx_detach(sb->repls, NULL)))
        s_repl_free(r);
    zlistx_destroy(&sb->repls);
    free(sb->kernel_name);
    free(sb->notice);
    json_decref(sb->metadata);
    json_decref(sb->env);
    cb_strv_free(sb->env_list);
    free(sb);
}

void mcp_sandbox_delete(mcp_sandbox_t **sb_p)
{
    mcp_sandbox_t *sb = sb_p ? *sb_p : NULL;
    if (!sb)
        return;
    *sb_p = NULL;
    if (sb->id[0])
        cb_info("sandbox %.8s deleted", sb->id);
    s_sandbox_release(sb, "its sandbox was deleted", true);
}

mcp_sandbox_t *mcp_sandbox_get(mcp_session_t *s, const char *id)
{
    mcp_sandbox_t *sb = id ? zhashx_lookup(s->server->sandboxes, id) : NULL;
    return sb && fleet_sandbox_visible(sb->kg, &s->who) ? sb : NULL;
}

mcp_sandbox_t *mcp_sandbox_for_call(mcp_call_t *call, json_t *args, bool create)
{
    const char *id = mcp_arg_str(args, "sandbox_id", NULL);
    if (id) {
        mcp_server_t *srv = call->session->server;
        mcp_sandbox_t *sb = mcp_sandbox_get(call->session, id);
        /* Why a sandbox ended is told only to whom it belonged (and admins). */
        const char *gone = sb || zhashx_lookup(srv->sandboxes, id)
                               ? NULL
                               : fleet_sandbox_gone_for(srv->fleet, id, &call->session->who);
        if (gone)
            mcp_call_fail(call, "sandbox %.60s is gone: %s%s", id, gone,
                          strstr(gone, "persistent") ? "" : " (sandbox_create makes a new one)");
        else if (!sb)
            mcp_call_fail(call,
                          "no sandbox '%.60s': it was deleted or never existed "
                          "(sandbox_list shows the live ones; leave sandbox_id out to use "
                          "the default sandbox)",
                          id);
        return sb;
    }
    cb_error_t err = {0};
    mcp_sandbox_t *sb = mcp_session_default_sandbox(call->session, create, &err);
    if (!sb)
        mcp_call_fail_err(call, &err);
    return sb;
}

mcp_sandbox_t *mcp_session_default_sandbox(mcp_session_t *s, bool create, cb_error_t *err)
{
    if (s->default_sb || !create) {
        if (!s->default_sb)
            cb_error_fail(err, CB_ERR_NOT_FOUND,
                          "this session has no default sandbox yet (code_execute or "
                          "command_execute makes it; or pass a sandbox_id)");
        return s->default_sb;
    }
    s->default_sb = mcp_sandbox_new(s->server, &s->who, NULL, err);
    if (s->default_sb) {
        s->default_sb->owner = s->default_sb->creator = s;
        s->default_sb->notice = steal_pointer(&s->default_gone);
    }
    return s->default_sb;
}

/* ---- tools --------------------------------------------------------------------------------- */

static json_t *s_time_json(int64_t ms);

json_t *mcp_sandbox_expires_json(mcp_server_t *srv, const char *id)
{
    mcp_sandbox_t *sb = id ? zhashx_lookup(srv->sandboxes, id) : NULL;
    return sb ? s_time_json(fleet_sandbox_expires_ms(sb->kg)) : NULL;
}

static json_t *s_limits_json(mcp_sandbox_t *sb)
{
    json_auto_t *info = kg_sandbox_info(sb->kg);
    json_t *l = json_object_get(info, "limits");
    return json_pack("{s:O, s:o, s:O, s:O, s:i}", "memory_mb", json_object_get(l, "memory_mb"),
                     "cpu", sb->cpu_millis ? json_real(sb->cpu_millis / 1000.0) : json_null(),
                     "disk_mb", json_object_get(l, "workspace_mb"), "pids",
                     json_object_get(l, "pids_max"), "timeout_s", sb->timeout_s);
}

/* An ISO 8601 UTC time from ms since the epoch (0: JSON null). Caller owns return value. */
static json_t *s_time_json(int64_t ms)
{
    if (!ms)
        return json_null();
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    char stamp[40];
    gmtime_r(&secs, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return json_string(stamp);
}

static json_t *s_summary(mcp_sandbox_t *sb, mcp_session_t *asking)
{
    return json_pack("{s:s, s:s?, s:s, s:b, s:i, s:s, s:o, s:b, s:b, s:O}", "sandbox_id", sb->id,
                     "template", fleet_sandbox_template(sb->kg), "kernel", sb->kernel_name,
                     "default", asking && asking->default_sb == sb, "sessions",
                     (int)zlistx_size(sb->repls), "created_at", sb->created_at, "expires_at",
                     s_time_json(fleet_sandbox_expires_ms(sb->kg)), "persistent",
                     fleet_sandbox_persistent(sb->kg), "pooled", fleet_sandbox_from_pool(sb->kg),
                     "metadata", sb->metadata);
}

static void s_reply_created(mcp_call_t *call, mcp_repl_t *repl)
{
    mcp_sandbox_t *sb = repl->sandbox;
    json_t *keys = json_array();
    const char *key;
    json_t *value;
    json_object_foreach (sb->env, key, value)
        json_array_append_new(keys, json_string(key));
    json_t *out = s_summary(sb, call->session);
    json_object_set_new(out, "session_id", json_string(repl->id));
    json_object_set_new(out, "limits", s_limits_json(sb));
    json_object_set_new(out, "env_keys", keys);
    mcp_call_finish(call, NULL, out, false);
}

void mcp_tool_sandbox_create(mcp_call_t *call, json_t *args)
{
    cb_error_t err = {0};
    mcp_sandbox_t *sb = mcp_sandbox_new(call->session->server, &call->session->who, args, &err);
    if (!sb)
        return mcp_call_fail_err(call, &err);
    sb->creator = call->session; /* asked by an `ask` policy */
    kg_sandbox_log(sb->kg, "sandbox", "created by sandbox_create");
    mcp_repl_when_ready(sb->main, call, s_reply_created);
}

void mcp_tool_sandbox_list(mcp_call_t *call, json_t *args)
{
    json_t *list = json_array();
    mcp_server_t *srv = call->session->server;
    for (mcp_sandbox_t *sb = zhashx_first(srv->sandboxes); sb && list;
         sb = zhashx_next(srv->sandboxes))
        if (fleet_sandbox_visible(sb->kg, &call->session->who))
            json_array_append_new(list, s_summary(sb, call->session));
    /* Persistent workspaces that are closed: sandbox_create with their id reopens them. */
    json_t *closed = json_array();
    json_auto_t *persisted = fleet_persisted(srv->fleet, &call->session->who);
    size_t i;
    json_t *p;
    json_array_foreach (persisted, i, p)
        if (!json_is_true(json_object_get(p, "open")) && closed)
            json_array_append(closed, p);
    mcp_call_finish(call, NULL,
                    json_pack("{s:o, s:o}", "sandboxes", list, "closed_persistent", closed), false);
}

void mcp_tool_sandbox_info(mcp_call_t *call, json_t *args)
{
    mcp_sandbox_t *sb = mcp_sandbox_for_call(call, args, false);
    if (!sb)
        return;
    json_auto_t *info = kg_sandbox_info(sb->kg);
    json_t *out = s_summary(sb, call->session);
    json_t *sessions = json_array();
    for (mcp_repl_t *r = zlistx_first(sb->repls); r; r = zlistx_next(sb->repls)) {
        const char *state = mcp_repl_failure(r)            ? "dead"
                            : r->type == MCP_REPL_TERMINAL ? (r->running ? "busy" : "idle")
                            : r->kernel ? kg_kernel_state_name(kg_kernel_state(r->kernel))
                                        : "stopped";
        json_array_append_new(sessions,
                              json_pack("{s:s, s:s, s:s*, s:s, s:b}", "session_id", r->id, "type",
                                        s_repl_type_name(r->type), "kernel", r->kernel_name,
                                        "state", state, "main", r == sb->main));
    }
    json_object_set_new(out, "limits", s_limits_json(sb));
    json_object_set(out, "idle_ms", json_object_get(info, "idle_ms"));
    json_object_set(out, "init_pid", json_object_get(info, "init_pid"));
    json_object_set(out, "layers", json_object_get(info, "layers"));
    json_object_set(out, "usage", json_object_get(info, "usage"));
    json_object_set(out, "network", json_object_get(info, "network"));
    json_object_set_new(out, "session_list", sessions);
    json_object_set_new(out, "ports", mcp_ports_list(sb));
    mcp_call_finish(call, NULL, out, false);
}

/* Whether a persistent workspace (open or closed) is one the session may reach. */
static bool s_persisted_visible(mcp_session_t *s, const char *id)
{
    json_auto_t *persisted = fleet_persisted(s->server->fleet, &s->who);
    size_t i;
    json_t *p;
    json_array_foreach (persisted, i, p)
        if (id && json_is_string(json_object_get(p, "sandbox_id")) &&
            strcmp(json_string_value(json_object_get(p, "sandbox_id")), id) == 0)
            return true;
    return false;
}

void mcp_tool_sandbox_delete(mcp_call_t *call, json_t *args)
{
    mcp_server_t *srv = call->session->server;
    const char *id = mcp_arg_str(args, "sandbox_id", NULL);
    bool discard = mcp_arg_bool(args, "discard_workspace", false);
    mcp_sandbox_t *sb = mcp_sandbox_get(call->session, id);
    cb_error_t err = {0};
    if (!sb && !discard) {
        if (!(sb = mcp_sandbox_for_call(call, args, false)))
            return;
    }
    if (!sb && discard && !s_persisted_visible(call->session, id))
        /* another tenant's closed workspace: the fleet's answer for an unknown one */
        return mcp_call_fail(call, "no persistent workspace for sandbox %.60s", id);
    bool persistent = sb ? fleet_sandbox_persistent(sb->kg) : true;
    mcp_sandbox_delete(&sb);
    /* A persistent workspace stays unless asked; a closed one can be discarded by id. */
    if (discard && persistent && fleet_discard_workspace(srv->fleet, id, &err) < 0)
        return mcp_call_fail_err(call, &err);
    mcp_call_finish(call, NULL,
                    json_pack("{s:s, s:b, s:b}", "sandbox_id", id, "deleted", 1, "workspace_kept",
                              persistent && !discard),
                    false);
}

void mcp_tool_sandbox_set_timeout(mcp_call_t *call, json_t *args)
{
    mcp_sandbox_t *sb = mcp_sandbox_for_call(call, args, false);
    if (!sb)
        return;
    cb_error_t err = {0};
    int lifetime = (int)mcp_arg_num(args, "lifetime_s", 0);
    if (fleet_sandbox_set_timeout(sb->kg, lifetime, &err) < 0)
        return mcp_call_fail_err(call, &err);
    mcp_call_finish(call, NULL,
                    json_pack("{s:s, s:o}", "sandbox_id", sb->id, "expires_at",
                              s_time_json(fleet_sandbox_expires_ms(sb->kg))),
                    false);
}

void mcp_tool_server_metrics(mcp_call_t *call, json_t *args)
{
    json_t *m = fleet_metrics(call->session->server->fleet);
    if (!m)
        return mcp_call_fail(call, "out of memory");
    mcp_call_finish(call, NULL, m, false);
}

void mcp_tool_sandbox_logs(mcp_call_t *call, json_t *args)
{
    mcp_sandbox_t *sb = mcp_sandbox_for_call(call, args, false);
    if (!sb)
        return;
    json_t *entries = kg_sandbox_logs(sb->kg, (size_t)mcp_arg_num(args, "lines", 100));
    json_t *out =
        json_pack("{s:s, s:o}", "sandbox_id", sb->id, "entries", entries ? entries : json_array());
    /* For the model: one line per entry, not JSON. */
    cb_buf_t text = {0};
    size_t i;
    json_t *e;
    json_array_foreach (json_object_get(out, "entries"), i, e) {
        cleanup_free char *line =
            cb_strdup_printf("%s [%s] %s\n", json_string_value(json_object_get(e, "time")),
                             json_string_value(json_object_get(e, "source")),
                             json_string_value(json_object_get(e, "text")));
        cb_buf_append(&text, line, strlen(line));
    }
    json_t *content = json_pack("[o]", mcp_text_block(text.len ? text.data : "(the log is empty)"));
    cb_buf_free(&text);
    mcp_call_finish(call, content, out, false);
}

void mcp_tool_sandbox_metrics(mcp_call_t *call, json_t *args)
{
    mcp_sandbox_t *sb = mcp_sandbox_for_call(call, args, false);
    if (!sb)
        return;
    json_auto_t *info = kg_sandbox_info(sb->kg);
    json_t *u = json_object_get(info, "usage"), *l = json_object_get(info, "limits");
    json_int_t cpu_us = json_integer_value(json_object_get(u, "cpu_usage_us"));
    json_t *out = json_pack(
        "{s:s, s:f, s:O, s:O, s:O, s:O, s:I, s:O, s:O, s:O, s:O, s:O, s:f, s:O, s:O, s:o, s:o}",
        "sandbox_id", sb->id, "cpu_time_s", cpu_us / 1e6, "cpu_share",
        json_object_get(u, "cpu_share"), "cpu_share_avg", json_object_get(u, "cpu_share_avg"),
        "memory_bytes", json_object_get(u, "memory_bytes"), "memory_peak_bytes",
        json_object_get(u, "memory_peak_bytes"), "memory_limit_bytes",
        (json_int_t)(json_integer_value(json_object_get(l, "memory_mb")) * (json_int_t)MiB), "pids",
        json_object_get(u, "pids"), "pids_limit", json_object_get(l, "pids_max"), "disk_used_bytes",
        json_object_get(u, "workspace_bytes"), "disk_limit_bytes",
        json_object_get(u, "workspace_limit_bytes"), "oom_kills", json_object_get(u, "oom_kills"),
        "uptime_s", json_real_value(json_object_get(info, "uptime_s")), "executions",
        json_object_get(info, "executions"), "commands", json_object_get(info, "commands"),
        "idle_s", json_real(json_integer_value(json_object_get(info, "idle_ms")) / 1000.0),
        "expires_at", s_time_json(fleet_sandbox_expires_ms(sb->kg)));
    /* Files in /tmp and /dev/shm live in memory: their pages count against memory_limit_bytes. */
    if (out &&
        json_object_update_new(out, json_pack("{s:O, s:O, s:O}", "tmp_used_bytes",
                                              json_object_get(u, "tmp_bytes"), "shm_used_bytes",
                                              json_object_get(u, "shm_bytes"), "tmp_limit_bytes",
                                              json_object_get(u, "tmp_limit_bytes"))) < 0) {
        json_decref(out);
        out = NULL;
    }
    /* Network totals and the last connection records (all kept with network: true). */
    json_t *net = kg_sandbox_network_metrics(sb->kg, mcp_arg_bool(args, "network", false) ? 0 : 20);
    if (out && (!net || json_object_set_new(out, "network", net) < 0)) {
        json_decref(out);
        out = NULL;
    }
    if (!out)
        return mcp_call_fail(call, "out of memory");
    mcp_call_finish(call, NULL, out, false);
}

static void s_reply_repl(mcp_call_t *call, mcp_repl_t *repl)
{
    mcp_call_finish(call, NULL,
                    json_pack("{s:s, s:s, s:s, s:s?}", "session_id", repl->id, "sandbox_id",
                              repl->sandbox->id, "type", s_repl_type_name(repl->type), "kernel",
                              repl->kernel_name),
                    false);
}

void mcp_tool_session_create(mcp_call_t *call, json_t *args)
{
    mcp_sandbox_t *sb = mcp_sandbox_for_call(call, args, true);
    if (!sb)
        return;
    bool terminal = strcmp(mcp_arg_str(args, "type", "jupyter"), "terminal") == 0;
    if (terminal && (json_object_get(args, "kernel") || json_object_get(args, "language")))
        return mcp_call_fail(call, "a terminal session takes no kernel or language");
    cb_error_t err = {0};
    const char *language = mcp_arg_str(args, "language", NULL);
    cleanup_free char *kernel = cb_xstrdup_or_null(mcp_arg_str(args, "kernel", NULL));
    if (!kernel && language && !terminal) {
        /* A new session of its own: the main kernel is not taken for it. */
        kernel = mcp_kernel_for_language(kg_gateway_kernels_dir(sb->server->gw), language, NULL,
                                         NULL, &err);
        if (!kernel)
            return mcp_call_fail_err(call, &err);
    }
    if (!terminal && (json_object_get(args, "cols") || json_object_get(args, "rows")))
        return mcp_call_fail(call, "cols and rows are for a terminal session");
    mcp_repl_t *repl = mcp_repl_new_sized(sb, terminal ? MCP_REPL_TERMINAL : MCP_REPL_JUPYTER,
                                          kernel, (unsigned short)mcp_arg_num(args, "cols", 0),
                                          (unsigned short)mcp_arg_num(args, "rows", 0), &err);
    if (!repl)
        return mcp_call_fail_err(call, &err);
    mcp_repl_when_ready(repl, call, s_reply_repl);
}

void mcp_tool_session_close(mcp_call_t *call, json_t *args)
{
    cb_error_t err = {0};
    mcp_repl_t *repl = mcp_repl_find(call->session->server, call->session,
                                     mcp_arg_str(args, "session_id", NULL), &err);
    if (!repl)
        return mcp_call_fail_err(call, &err);
    if (repl == repl->sandbox->main)
        return mcp_call_fail(call,
                             "session %s is the main session of sandbox %s and closes with it "
                             "(sandbox_delete)",
                             repl->id, repl->sandbox->id);
    json_t *out = json_pack("{s:s, s:b}", "session_id", repl->id, "closed", 1);
    mcp_repl_close(&repl);
    mcp_call_finish(call, NULL, out, false);
}

static void s_reply_connect(mcp_call_t *call, mcp_repl_t *repl)
{
    cb_error_t err = {0};
    const char *path = repl->kernel ? kg_kernel_attach(repl->kernel, &err) : NULL;
    if (!path)
        return err.msg[0] ? mcp_call_fail_err(call, &err)
                          : mcp_call_fail(call, "the session has no kernel");
    cleanup_free char *command = cb_strdup_printf("jupyter console --existing %s", path);
    mcp_call_finish(call, NULL,
                    json_pack("{s:s, s:s, s:s, s:s, s:s}", "session_id", repl->id, "sandbox_id",
                              repl->sandbox->id, "kernel_id", kg_kernel_id(repl->kernel),
                              "connection_file", path, "command", command),
                    false);
}

/* The jupyter session a call names: session_id, else the sandbox's main session (the default
 * sandbox made when create). On failure the call is finished and NULL returned. */
static mcp_repl_t *s_jupyter_repl_for_call(mcp_call_t *call, json_t *args, bool create,
                                           const char *doing)
{
    cb_error_t err = {0};
    mcp_repl_t *repl;
    if (json_object_get(args, "session_id")) {
        repl = mcp_repl_find(call->session->server, call->session,
                             mcp_arg_str(args, "session_id", NULL), &err);
        if (!repl)
            return mcp_call_fail_err(call, &err), NULL;
    } else {
        mcp_sandbox_t *sb = mcp_sandbox_for_call(call, args, create);
        if (!sb)
            return NULL;
        repl = sb->main;
    }
    if (repl->type != MCP_REPL_JUPYTER)
        return mcp_call_fail(call, "session %s is a terminal; only jupyter sessions can be %s",
                             repl->id, doing),
               NULL;
    return repl;
}

void mcp_tool_session_connect(mcp_call_t *call, json_t *args)
{
    mcp_repl_t *repl = s_jupyter_repl_for_call(call, args, true, "connected");
    if (repl)
        mcp_repl_when_ready(repl, call, s_reply_connect);
}

static void s_reply_restarted(mcp_call_t *call, mcp_repl_t *repl)
{
    json_t *out = json_pack("{s:s, s:s, s:s, s:s, s:s, s:b, s:i, s:o}", "session_id", repl->id,
                            "sandbox_id", repl->sandbox->id, "kernel", repl->kernel_name,
                            "kernel_id", kg_kernel_id(repl->kernel), "state",
                            kg_kernel_state_name(kg_kernel_state(repl->kernel)), "state_lost", 1,
                            "restart_count", kg_kernel_restart_count(repl->kernel), "expires_at",
                            s_time_json(fleet_sandbox_expires_ms(repl->sandbox->kg)));
    cleanup_free char *text = cb_strdup_printf(
        "The kernel of session %s (sandbox %s) was restarted and is ready. Its state is lost: "
        "variables, imports and definitions are gone and must be set up again. Files in "
        "/home/user are kept.",
        repl->id, repl->sandbox->id);
    mcp_call_finish(call, json_pack("[o]", mcp_text_block(text)), out, false);
}

void mcp_tool_kernel_restart(mcp_call_t *call, json_t *args)
{
    mcp_repl_t *repl = s_jupyter_repl_for_call(call, args, false, "restarted");
    if (!repl)
        return;
    if (repl->failure || !repl->kernel)
        return mcp_call_fail(call, "session %s cannot be restarted: %s", repl->id,
                             repl->failure ? repl->failure : "it has no kernel");
    cb_error_t err = {0};
    if (kg_kernel_restart(repl->kernel, &err) < 0)
        return mcp_call_fail_err(call, &err);
    kg_sandbox_log(repl->sandbox->kg, "session",
                   "kernel of session %.8s restarted by kernel_restart", repl->id);
    repl->ready = false; /* the restart is under way: wait for its READY (or DEAD) */
    mcp_repl_when_ready(repl, call, s_reply_restarted);
}
