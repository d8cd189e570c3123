/* history.c: the sandbox_history tool: a sandbox's audit records (fleet/audit.c, docs/audit.md)
 * for the session's tenant: what ran in it, who ran it, files written, sessions and lifecycle.
 *
 * A live sandbox is looked up as every tool does (mcp_sandbox_get: only those the session's
 * principal may reach); any other id is answered from the records of the session's tenant alone
 * (a sandbox that ended, a persistent one not open), and when there are none, exactly as an
 * unknown id: another tenant's sandbox, live or gone, reads the same.
 */
#include <string.h>
#include <time.h>

#include "cb/cleanup.h"
#include "cb/util.h"
#include "mcp_private.h"
#include "kg/sandbox.h"

/* mcp_sandbox_for_call's words for an unknown id, so another tenant's id reads the same. */
static void s_unknown(mcp_call_t *call, const char *id)
{
    mcp_call_fail(call,
                  "no sandbox '%.60s': it was deleted or never existed "
                  "(sandbox_list shows the live ones; leave sandbox_id out to use "
                  "the default sandbox)",
                  id);
}

/* One line per record for the model. */
static char *s_text(json_t *records)
{
    cb_buf_t text = {0};
    size_t i;
    json_t *r;
    json_array_foreach (records, i, r) {
        const char *event = json_string_value(json_object_get(r, "event"));
        json_t *what = json_object_get(r, "code");
        if (!what)
            what = json_object_get(r, "command");
        if (!what)
            what = json_object_get(r, "path");
        if (!what)
            what = json_object_get(r, "reason");
        cleanup_free char *shown = NULL;
        if (json_is_string(what)) {
            const char *s = json_string_value(what);
            size_t n = strcspn(s, "\n");
            shown = cb_strdup_printf("%.*s%s", (int)(n > 80 ? 80 : n), s,
                                     n > 80 || (s[n] && s[n + 1]) ? " ..." : "");
        }
        const char *status = json_string_value(json_object_get(r, "status"));
        cb_buf_printf(&text, "%s %s%s%s%s%s\n", json_string_value(json_object_get(r, "time")),
                      event ? event : "?", shown ? " " : "", shown ? shown : "",
                      status ? " -> " : "", status ? status : "");
    }
    return cb_buf_take(&text);
}

void mcp_tool_sandbox_history(mcp_call_t *call, json_t *args)
{
    mcp_session_t *s = call->session;
    mcp_server_t *srv = s->server;
    const char *id = mcp_arg_str(args, "sandbox_id", NULL);
    mcp_sandbox_t *sb = NULL;
    if (id) {
        sb = mcp_sandbox_get(s, id); /* NULL as well for another tenant's */
    } else if (!(sb = mcp_sandbox_for_call(call, args, false))) {
        return;
    }
    fleet_audit_query_t q = {.tenant = s->who.admin ? NULL : s->who.tenant,
                             .sandbox_id = sb ? sb->id : id,
                             .limit = (size_t)mcp_arg_num(args, "limit", 100)};
    const char *since = mcp_arg_str(args, "since", NULL);
    if (since && fleet_audit_parse_time(since, (int64_t)time(NULL) * 1000, &q.since_ms) < 0)
        return mcp_call_fail(call,
                             "since '%.60s' is neither an ISO 8601 time (2026-12-08T02:30:00Z) "
                             "nor an age (30s, 10m, 2h, 1d)",
                             since);
    cb_error_t err = {0};
    json_t *records = fleet_audit_read(fleet_state_dir(srv->fleet), &q, &err);
    if (!records)
        return mcp_call_fail_err(call, &err);
    if (!sb && json_array_size(records) == 0) {
        json_decref(records);
        return s_unknown(call, id); /* not live, nothing of it recorded for this tenant */
    }
    cleanup_free char *text = s_text(records);
    json_t *out = json_pack("{s:s, s:o}", "sandbox_id", q.sandbox_id, "records", records);
    json_t *content = json_pack("[o]", mcp_text_block(text[0] ? text : "(no records)"));
    mcp_call_finish(call, content, out, false);
}
