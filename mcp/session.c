/* session.c: one MCP session: JSON-RPC messages in, replies and notifications out.
 *
 * Each received message is parsed (jansson), checked as a JSON-RPC 2.0 envelope, and routed by
 * method through one table. Requests before initialize get an error; notifications never get a
 * reply. tools/call creates an mcp_call_t that the tool's handler finishes now or later (from a
 * loop callback); many calls can be in flight at once, so a running cell never delays ping or
 * another tool. notifications/cancelled marks a call cancelled and runs its cancel function
 * (a running cell is interrupted); the call's later finish sends nothing, as the spec asks.
 *
 * Progress: a call whose request carried _meta.progressToken gets notifications/progress with
 * output as it arrives, merged so that at most one goes out per MCP_PROGRESS_GAP_MS, and the
 * last of them always before the result.
 *
 * While a message is dispatched, and while a call's progress is sent, mcp_session_t.related
 * names the request it belongs to, so a transport with a stream per request (HTTP) can send
 * what relates to a request with it.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>

#include "cb/cleanup.h"
#include "mcp_private.h"
#include "kg/gateway.h"

/* Every released revision: a client gets the one it asks for, and what that one has (see
 * mcp_session_speaks). Unknown ones get the latest, as the specification says. */
static const char *const s_versions[] = {"2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"};

/* MCP's syslog-style levels, lowest first. */
static const char *const s_levels[] = {"debug", "info",     "notice", "warning",
                                       "error", "critical", "alert",  "emergency"};
#define N_LEVELS (int)(sizeof s_levels / sizeof s_levels[0])

/* ---- sending ------------------------------------------------------------------------------- */

static void s_send(mcp_session_t *s, json_t *msg)
{
    if (msg)
        s->send(msg, s->send_arg);
    json_decref(msg);
}

static void s_reply(mcp_session_t *s, json_t *id, json_t *result)
{
    s_send(s, json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", id, "result", result));
}

/* A JSON-RPC error with the kind's code (cb/error.h), id null unless given. */
static void s_error(mcp_session_t *s, json_t *id, cb_error_kind_t kind, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void s_error(mcp_session_t *s, json_t *id, cb_error_kind_t kind, const char *fmt, ...)
{
    int code = cb_error_kind_jsonrpc_code(kind);
    char text[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    s_send(s, json_pack("{s:s, s:O, s:{s:i, s:s}}", "jsonrpc", "2.0", "id", id ? id : json_null(),
                        "error", "code", code, "message", text));
}

void mcp_session_reply(mcp_session_t *s, json_t *id, json_t *result) { s_reply(s, id, result); }

void mcp_session_error_data(mcp_session_t *s, json_t *id, int code, const char *message,
                            json_t *data)
{
    json_t *error = json_pack("{s:i, s:s}", "code", code, "message", message);
    if (error && data)
        json_object_set_new(error, "data", data);
    else
        json_decref(data);
    s_send(s, error ? json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", id ? id : json_null(),
                                "error", error)
                    : NULL);
}

bool mcp_session_speaks(const mcp_session_t *s, const char *version)
{
    /* Revisions are dates: a later one sorts after. */
    return s->protocol[0] && strcmp(s->protocol, version) >= 0;
}

/* Content blocks for a session of an older revision: resource links (2025-06-18) become text
 * naming the URI. Returns content, changed in place. */
static json_t *s_content_for(mcp_session_t *s, json_t *content)
{
    if (mcp_session_speaks(s, "2025-06-18"))
        return content;
    size_t i;
    json_t *block;
    json_array_foreach (content, i, block) {
        const char *type = json_string_value(json_object_get(block, "type"));
        if (!type || strcmp(type, "resource_link") != 0)
            continue;
        const char *name = json_string_value(json_object_get(block, "name"));
        const char *uri = json_string_value(json_object_get(block, "uri"));
        cleanup_free char *text = cb_strdup_printf("%s: %s (resources/read reads it)",
                                                   name ? name : "file", uri ? uri : "");
        json_array_set_new(content, i, mcp_text_block(text));
    }
    return content;
}

static void s_notify(mcp_session_t *s, const char *method, json_t *params)
{
    s_send(s, json_pack("{s:s, s:s, s:o}", "jsonrpc", "2.0", "method", method, "params", params));
}

/* ---- logging to the client ----------------------------------------------------------------- */

void mcp_session_log(mcp_session_t *s, cb_log_level_t level, const char *text)
{
    static const int to_mcp[] = {
        [CB_LOG_DEBUG] = 0, [CB_LOG_INFO] = 1, [CB_LOG_WARN] = 3, [CB_LOG_ERROR] = 4};
    if (!s->initialized || s->log_level < 0 || level > CB_LOG_ERROR || to_mcp[level] < s->log_level)
        return;
    s_notify(s, "notifications/message",
             json_pack("{s:s, s:s, s:s}", "level", s_levels[to_mcp[level]], "logger", "cellblock",
                       "data", text));
}

/* The lowest level any session listens to, for the logger's hook. */
static void s_update_log_hook(mcp_server_t *srv);

static void s_on_log(cb_log_level_t level, const char *text, void *arg)
{
    mcp_server_t *srv = arg;
    for (mcp_session_t *s = zlistx_first(srv->sessions); s; s = zlistx_next(srv->sessions))
        if (s->server_log)
            mcp_session_log(s, level, text);
}

static void s_update_log_hook(mcp_server_t *srv)
{
    int lowest = N_LEVELS;
    for (mcp_session_t *s = zlistx_first(srv->sessions); s; s = zlistx_next(srv->sessions))
        if (s->server_log && s->log_level >= 0 && s->log_level < lowest)
            lowest = s->log_level;
    if (lowest == N_LEVELS)
        cb_log_set_hook(NULL, NULL, CB_LOG_OFF);
    else /* MCP debug, info -> ours; notice and above -> warn; error and above -> error */
        cb_log_set_hook(s_on_log, srv,
                        lowest == 0   ? CB_LOG_DEBUG
                        : lowest == 1 ? CB_LOG_INFO
                        : lowest <= 3 ? CB_LOG_WARN
                                      : CB_LOG_ERROR);
}

/* ---- calls --------------------------------------------------------------------------------- */

static void s_flush_progress(mcp_call_t *call)
{
    if (call->progress_timer >= 0)
        kg_timer_stop(call->session->server->gw, &call->progress_timer);
    if (!call->pending.len)
        return;
    call->progress += 1;
    call->last_progress_ms = cb_now_ms();
    size_t len = 0; /* raw output may cut a character or hold bytes that are not text */
    cleanup_free char *text = cb_text_lossy(call->pending.data, call->pending.len, &len);
    mcp_session_t *s = call->session;
    json_t *outer = s->related; /* the transport sends it with its request (HTTP: its stream) */
    s->related = call->id;
    s_notify(s, "notifications/progress",
             json_pack("{s:O, s:f, s:s%}", "progressToken", call->progress_token, "progress",
                       call->progress, "message", text, len));
    s->related = outer;
    cb_buf_clear(&call->pending);
}

static int s_on_progress_timer(zloop_t *loop, int timer_id, void *arg)
{
    mcp_call_t *call = arg;
    call->progress_timer = -1;
    s_flush_progress(call);
    return 0;
}

void mcp_call_progress(mcp_call_t *call, const char *text, size_t len)
{
    if (!call->progress_token || call->cancelled || !call->session || len == 0)
        return;
    size_t room =
        MCP_PROGRESS_TEXT_MAX > call->pending.len ? MCP_PROGRESS_TEXT_MAX - call->pending.len : 0;
    if (len > room) { /* the result carries everything; progress is a glimpse */
        while (room > 0 && (text[room] & 0xC0) == 0x80)
            room--; /* whole UTF-8 characters only */
        len = room;
    }
    cb_buf_append(&call->pending, text, len);
    int64_t wait = call->last_progress_ms + MCP_PROGRESS_GAP_MS - cb_now_ms();
    if (wait <= 0)
        s_flush_progress(call);
    else if (call->progress_timer < 0)
        call->progress_timer =
            kg_timer_start(call->session->server->gw, (size_t)wait, 1, s_on_progress_timer, call);
}

static void s_call_free(mcp_call_t *call)
{
    if (call->progress_timer >= 0 && call->session)
        kg_timer_stop(call->session->server->gw, &call->progress_timer);
    json_decref(call->id);
    json_decref(call->progress_token);
    cb_buf_free(&call->pending);
    free(call);
}

json_t *mcp_text_block(const char *text)
{
    /* Never NULL, so json_array_append_new never drops a block: text that is not UTF-8 (a
     * system error naming a file, say) is shown with U+FFFD rather than refused by jansson. */
    cleanup_free char *clean = cb_text_lossy(text ? text : "", text ? strlen(text) : 0, NULL);
    return json_pack("{s:s, s:s}", "type", "text", "text", clean);
}

void mcp_call_finish(mcp_call_t *call, json_t *content, json_t *structured, bool is_error)
{
    mcp_session_t *s = call->session;
    if (s) { /* out of the in-flight list first: the transport may count it on the reply */
        void *handle = zlistx_find(s->calls, call);
        if (handle)
            zlistx_detach(s->calls, handle);
    }
    if (s && !call->cancelled) {
        if (call->pending.len)
            s_flush_progress(call);
        /* Every result that names a sandbox says when it expires (use extends most lifetimes). */
        json_t *sandbox_id = json_object_get(structured, "sandbox_id");
        json_t *expires = json_is_string(sandbox_id) && !json_object_get(structured, "expires_at")
                              ? mcp_sandbox_expires_json(s->server, json_string_value(sandbox_id))
                              : NULL;
        json_t *own = expires ? json_copy(structured) : NULL; /* structured may be a job's, kept */
        if (!own)
            json_decref(expires);
        else if (json_object_set_new(own, "expires_at", expires) < 0) /* steals expires */
            json_decref(own);
        else {
            json_decref(structured);
            structured = own;
        }
        if (!content) {
            cleanup_free char *text = structured ? json_dumps(structured, JSON_INDENT(1)) : NULL;
            content = json_pack("[o]", mcp_text_block(text ? text : "(no result)"));
        }
        json_t *result =
            json_pack("{s:o, s:b}", "content", s_content_for(s, content), "isError", is_error);
        content = NULL;
        /* structuredContent came with 2025-06-18 */
        if (result && structured && mcp_session_speaks(s, "2025-06-18"))
            json_object_set(result, "structuredContent", structured);
        size_t size = result ? json_dumpb(result, NULL, 0, JSON_COMPACT) : 0;
        if (size > MCP_REPLY_MAX) { /* clients drop bigger messages (the SDK's stdio: 10 MiB) */
            json_decref(result);
            char text[300];
            snprintf(text, sizeof text,
                     "The result was %zu bytes, more than the %u a reply may carry. "
                     "Ask for less: a smaller max_bytes or an offset for files, fewer or smaller "
                     "images (save them with savefig and download them one by one).",
                     size, MCP_REPLY_MAX);
            result = json_pack("{s:[o], s:b}", "content", mcp_text_block(text), "isError", 1);
        }
        if (result)
            s_reply(s, call->id, result);
        else
            s_error(s, call->id, CB_ERR_INTERNAL, "out of memory building the result");
    }
    json_decref(content);
    json_decref(structured);
    s_call_free(call);
}

void mcp_call_fail(mcp_call_t *call, const char *fmt, ...)
{
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    mcp_call_finish(call, json_pack("[o]", mcp_text_block(text)), NULL, true);
}

void mcp_call_fail_err(mcp_call_t *call, const cb_error_t *err)
{
    mcp_call_fail(call, "%s", err->msg[0] ? err->msg : "failed (no detail)");
}

/* Mark a call cancelled and stop its work; it is finished (silently) by whoever holds it. */
static void s_cancel(mcp_call_t *call)
{
    if (call->cancelled)
        return;
    call->cancelled = true;
    if (call->cancel)
        call->cancel(call);
}

/* ---- methods ------------------------------------------------------------------------------- */

typedef void(s_method_fn)(mcp_session_t *s, json_t *id, json_t *params);

static void s_initialize(mcp_session_t *s, json_t *id, json_t *params)
{
    const char *asked = json_string_value(json_object_get(params, "protocolVersion"));
    if (!asked)
        return s_error(s, id, CB_ERR_INVALID, "initialize needs params.protocolVersion (a string)");
    const char *chosen = MCP_PROTOCOL_LATEST;
    for (size_t i = 0; i < sizeof s_versions / sizeof s_versions[0]; i++)
        if (strcmp(asked, s_versions[i]) == 0)
            chosen = s_versions[i];
    snprintf(s->protocol, sizeof s->protocol, "%s", chosen);
    s->initialized = true;
    json_t *caps = json_object_get(params, "capabilities");
    json_decref(s->client_caps);
    s->client_caps = json_is_object(caps) ? json_deep_copy(caps) : json_object();
    json_t *result = json_pack(
        "{s:s, s:{s:{s:b}, s:{s:b, s:b}, s:{}}, s:{s:s, s:s}, s:s}", "protocolVersion", chosen,
        "capabilities", "tools", "listChanged", 0, "resources", "listChanged", 0, "subscribe", 0,
        "logging", "serverInfo", "name", MCP_SERVER_NAME, "version", CB_VERSION, "instructions",
        "cellblock runs code in isolated local sandboxes with Jupyter kernels. "
        "code_execute keeps state between calls in this session's default sandbox; "
        "files live in /home/user. Results include images as image content; files they name "
        "(cellblock:// URIs) are read with resources/read.");
    if (result && mcp_session_speaks(s, "2025-06-18")) /* titles came with 2025-06-18 */
        json_object_set_new(json_object_get(result, "serverInfo"), "title",
                            json_string("cellblock sandboxes"));
    s_reply(s, id, result);
}

static void s_ping(mcp_session_t *s, json_t *id, json_t *params) { s_reply(s, id, json_object()); }

/* ---- requests to the client ---------------------------------------------------------------- */

#define S_MAX_REQUESTS 32 /* unanswered requests per session */

typedef struct {
    mcp_session_t *session;
    /* "cellblock-N": our ids, a namespace of their own (JSON-RPC's ids are per side) */
    char id[40];
    mcp_response_fn *fn;
    void *arg;
    int timer;
} mcp_request_t;

/* Take r out of the session's list and run its function; frees r. */
static void s_request_end(mcp_request_t *r, json_t *result, json_t *error)
{
    mcp_session_t *s = r->session;
    kg_timer_stop(s->server->gw, &r->timer);
    void *handle = zlistx_find(s->requests, r);
    if (handle)
        zlistx_detach(s->requests, handle);
    mcp_response_fn *fn = r->fn;
    void *arg = r->arg;
    free(r);
    fn(s, result, error, arg);
}

static int s_on_request_timeout(zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    mcp_request_t *r = arg;
    mcp_server_t *srv = r->session->server;
    r->timer = -1; /* a one-shot timer is over once it runs */
    s_request_end(r, NULL, NULL);
    return kg_gateway_handler_result(srv->gw);
}

int mcp_session_request(mcp_session_t *s, const char *method, json_t *params, int timeout_ms,
                        mcp_response_fn *fn, void *arg)
{
    json_auto_t *p = params ? params : json_object();
    if (zlistx_size(s->requests) >= S_MAX_REQUESTS)
        return -1;
    mcp_request_t *r = cb_xcalloc(1, sizeof *r);
    r->session = s;
    r->fn = fn;
    r->arg = arg;
    snprintf(r->id, sizeof r->id, "cellblock-%llu", (unsigned long long)++s->last_request);
    json_t *msg = json_pack("{s:s, s:s, s:s, s:O}", "jsonrpc", "2.0", "id", r->id, "method", method,
                            "params", p);
    r->timer = kg_timer_start(s->server->gw, (size_t)timeout_ms, 1, s_on_request_timeout, r);
    if (!msg || r->timer < 0 || !zlistx_add_end(s->requests, r)) {
        kg_timer_stop(s->server->gw, &r->timer);
        json_decref(msg);
        free(r);
        return -1;
    }
    /* Not s_send: a request relates to no request of the client's (HTTP sends it on the
     * session's own stream). */
    json_t *outer = s->related;
    s->related = NULL;
    int rc = s->send(msg, s->send_arg);
    s->related = outer;
    json_decref(msg);
    if (rc < 0) {
        zlistx_detach(s->requests, zlistx_find(s->requests, r));
        kg_timer_stop(s->server->gw, &r->timer);
        free(r);
        return -1;
    }
    return 0;
}

/* A response from the client: to one of our requests, or to nothing (dropped). */
static void s_response(mcp_session_t *s, json_t *msg)
{
    const char *id = json_string_value(json_object_get(msg, "id"));
    for (mcp_request_t *r = id ? zlistx_first(s->requests) : NULL; r; r = zlistx_next(s->requests))
        if (strcmp(r->id, id) == 0) {
            json_t *result = json_object_get(msg, "result"), *error = json_object_get(msg, "error");
            return s_request_end(r, result, result ? NULL : error ? error : json_null());
        }
}

bool mcp_session_client_can(const mcp_session_t *s, const char *capability)
{
    return json_is_object(json_object_get(s->client_caps, capability));
}

static void s_set_level(mcp_session_t *s, json_t *id, json_t *params)
{
    const char *level = json_string_value(json_object_get(params, "level"));
    for (int i = 0; level && i < N_LEVELS; i++)
        if (strcmp(level, s_levels[i]) == 0) {
            s->log_level = i;
            s_update_log_hook(s->server);
            return s_reply(s, id, json_object());
        }
    s_error(s, id, CB_ERR_INVALID,
            "logging/setLevel: level must be one of debug, info, notice, warning, error, "
            "critical, alert, emergency");
}

static void s_tools_list(mcp_session_t *s, json_t *id, json_t *params)
{
    json_t *list = json_deep_copy(s->server->tools);
    size_t i;
    json_t *tool;
    json_array_foreach (json_object_get(list, "tools"), i, tool) {
        if (!mcp_session_speaks(s, "2025-06-18")) { /* outputSchema and title: 2025-06-18 */
            json_object_del(tool, "outputSchema");
            json_object_del(tool, "title");
        }
        if (!mcp_session_speaks(s, "2025-03-26")) /* annotations: 2025-03-26 */
            json_object_del(tool, "annotations");
    }
    s_reply(s, id, list);
}

static void s_tools_call(mcp_session_t *s, json_t *id, json_t *params)
{
    const char *name = json_string_value(json_object_get(params, "name"));
    json_t *args = json_object_get(params, "arguments");
    if (!name)
        return s_error(s, id, CB_ERR_INVALID, "tools/call needs params.name (a string)");
    const mcp_tool_t *tool = mcp_tool_find(name);
    if (!tool)
        return s_error(s, id, CB_ERR_INVALID, "unknown tool '%.64s' (tools/list names them)", name);
    mcp_call_t *call = cb_xcalloc(1, sizeof *call);
    zlistx_add_end(s->calls, call); /* czmq aborts when memory runs out */
    call->session = s;
    call->id = json_incref(id);
    call->tool = tool->name;
    call->progress_timer = call->timer = -1;
    json_t *token = json_object_get(json_object_get(params, "_meta"), "progressToken");
    if (json_is_string(token) || json_is_integer(token))
        call->progress_token = json_incref(token);
    /* Input problems are tool errors (isError), so a model can read them and try again. */
    json_auto_t *empty = json_object();
    char msg[512];
    if (!args || json_is_null(args))
        args = empty;
    json_t *listed =
        json_array_get(json_object_get(s->server->tools, "tools"), mcp_tool_index(tool));
    if (mcp_tool_check_args(json_object_get(listed, "inputSchema"), args, msg, sizeof msg) != 0)
        return mcp_call_fail(call, "%s: %s", tool->name, msg);
    tool->run(call, args);
}

static const struct {
    const char *method;
    s_method_fn *run;
    bool before_init; /* allowed before initialize */
} s_methods[] = {
    {"initialize", s_initialize, true},
    {"ping", s_ping, true},
    {"logging/setLevel", s_set_level, false},
    {"tools/list", s_tools_list, false},
    {"tools/call", s_tools_call, false},
    {"resources/list", mcp_resources_list, false},
    {"resources/read", mcp_resources_read, false},
    {"resources/templates/list", mcp_resources_templates, false},
};

/* Notifications: no reply, ever. */
static void s_notification(mcp_session_t *s, const char *method, json_t *params)
{
    if (strcmp(method, "notifications/cancelled") != 0)
        return; /* initialized, roots/list_changed, progress...: nothing to do */
    json_t *rid = json_object_get(params, "requestId");
    for (mcp_call_t *c = zlistx_first(s->calls); c && rid; c = zlistx_next(s->calls))
        if (json_equal(c->id, rid)) {
            cb_debug("mcp: call %s cancelled by the client", c->tool);
            s_cancel(c);
            return;
        }
}

/* ---- the entry points ---------------------------------------------------------------------- */

bool mcp_protocol_supported(const char *version)
{
    for (size_t i = 0; version && i < sizeof s_versions / sizeof s_versions[0]; i++)
        if (strcmp(version, s_versions[i]) == 0)
            return true;
    return false;
}

void mcp_session_reject(mcp_session_t *self, cb_error_kind_t kind, const char *message)
{
    s_error(self, NULL, kind, "%s", message);
}

/* ---- the id of a message that does not parse ----------------------------------------------- */

static int s_hex4(const char *t)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = t[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/* Overwrite, inside JSON strings, every \u escape of a lone UTF-16 surrogate with the escape
 * "\u" + with (four hex digits: the same length). Returns how many were replaced. This is a
 * lexical pass over text that failed to parse, so it only has to be right for text that would
 * parse once the surrogates are gone. */
static size_t s_patch_surrogates(char *t, size_t len, const char *with)
{
    size_t patched = 0;
    bool in_string = false;
    for (size_t i = 0; i < len; i++) {
        if (t[i] == '"') {
            in_string = !in_string;
            continue;
        }
        if (!in_string || t[i] != '\\')
            continue;
        if (i + 5 >= len || t[i + 1] != 'u') {
            i++; /* a two-character escape: skip what it escapes */
            continue;
        }
        int v = s_hex4(t + i + 2);
        bool high = v >= 0xD800 && v <= 0xDBFF, low = v >= 0xDC00 && v <= 0xDFFF;
        if (high && i + 11 < len && t[i + 6] == '\\' && t[i + 7] == 'u') {
            int next = s_hex4(t + i + 8);
            if (next >= 0xDC00 && next <= 0xDFFF) {
                i += 11; /* a proper pair */
                continue;
            }
        }
        if (high || low) {
            memcpy(t + i + 2, with, 4);
            patched++;
        }
        i += 5;
    }
    return patched;
}

/* Parse text as leniently as jansson allows: NUL in strings, lone surrogates replaced by
 * \u+with, integers too big for 64 bits as reals (only when they are the reason it failed). */
static json_t *s_parse_lenient(const char *text, size_t len, const char *with, size_t *patched)
{
    cleanup_free char *copy = cb_xmalloc(len ? len : 1);
    memcpy(copy, text, len);
    *patched = s_patch_surrogates(copy, len, with);
    size_t flags = JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL;
    json_error_t jerr;
    json_t *msg = json_loadb(copy, len, flags, &jerr);
    if (!msg && json_error_code(&jerr) == json_error_numeric_overflow)
        msg = json_loadb(copy, len, flags | JSON_DECODE_INT_AS_REAL, &jerr);
    return msg;
}

json_t *mcp_rpc_salvage_id(const char *text, size_t len, bool *rounded)
{
    *rounded = false;
    size_t patched = 0, patched_again = 0;
    json_auto_t *msg = s_parse_lenient(text, len, "fffd", &patched);
    json_t *id = json_object_get(msg, "id");
    if (json_is_string(id) && patched > 0) {
        /* Was a lone surrogate in the id itself? Then it cannot be echoed (jansson writes UTF-8
         * only): parse again with another replacement and see whether the id changes. */
        json_auto_t *again = s_parse_lenient(text, len, "fffe", &patched_again);
        if (!json_equal(id, json_object_get(again, "id")))
            return NULL;
    }
    if (json_is_string(id) || json_is_integer(id))
        return json_incref(id);
    if (!json_is_real(id))
        return NULL;
    /* Every integer was decoded as a real because one (maybe the id) was beyond 64 bits. */
    double v = json_real_value(id);
    if (!isfinite(v) || v != floor(v))
        return NULL;
    if (v >= -0x1p63 && v < 0x1p63)
        return json_integer((json_int_t)v);
    *rounded = true; /* beyond 64 bits: the nearest double, as a JSON number */
    return json_real(v);
}

const char *mcp_rpc_parse_error_text(const json_error_t *jerr)
{
    if (json_error_code(jerr) == json_error_null_character)
        return "a string holds \\u0000 (NUL), which this server does not accept";
    return jerr->text;
}

void mcp_session_handle(mcp_session_t *self, const char *text, size_t len)
{
    json_error_t jerr;
    json_auto_t *msg = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!msg) {
        bool rounded = false;
        json_auto_t *id = mcp_rpc_salvage_id(text, len, &rounded);
        return s_error(self, id, CB_ERR_PARSE, "parse error: %s (at byte %d)%s",
                       mcp_rpc_parse_error_text(&jerr), jerr.position,
                       rounded ? MCP_RPC_ROUNDED_ID_NOTE : "");
    }
    mcp_session_dispatch(self, msg);
}

/* Route one parsed message by method; what it sends while this runs relates to its id. */
static void s_dispatch(mcp_session_t *self, json_t *msg);

void mcp_session_dispatch(mcp_session_t *self, json_t *msg)
{
    json_t *outer = self->related;
    json_t *id = json_object_get(msg, "id");
    self->related = json_is_string(id) || json_is_integer(id) ? id : NULL;
    s_dispatch(self, msg);
    self->related = outer;
}

static void s_dispatch(mcp_session_t *self, json_t *msg)
{
    json_t *id = json_object_get(msg, "id");
    bool id_ok = json_is_string(id) || json_is_integer(id);
    const char *method = json_string_value(json_object_get(msg, "method"));
    json_t *params = json_object_get(msg, "params");
    if (!json_is_object(msg) || !json_is_string(json_object_get(msg, "jsonrpc")) ||
        strcmp(json_string_value(json_object_get(msg, "jsonrpc")), "2.0") != 0)
        return s_error(self, id_ok ? id : NULL, CB_ERR_BAD_REQUEST,
                       "invalid request: expected a JSON-RPC 2.0 object with \"jsonrpc\": \"2.0\"");
    if (!method) {
        if (json_object_get(msg, "result") || json_object_get(msg, "error"))
            return s_response(self, msg); /* to one of our requests, or dropped */
        return s_error(self, id_ok ? id : NULL, CB_ERR_BAD_REQUEST, "invalid request: no method");
    }
    if (params && !json_is_object(params))
        return s_error(self, id_ok ? id : NULL, CB_ERR_BAD_REQUEST,
                       "invalid request: params must be an object");
    if (!id)
        return s_notification(self, method, params);
    if (!id_ok)
        return s_error(self, NULL, CB_ERR_BAD_REQUEST,
                       "invalid request: id must be a string or an integer");
    for (size_t i = 0; i < sizeof s_methods / sizeof s_methods[0]; i++) {
        if (strcmp(method, s_methods[i].method) != 0)
            continue;
        if (!self->initialized && !s_methods[i].before_init)
            return s_error(self, id, CB_ERR_BAD_REQUEST,
                           "the session is not initialized: send initialize first");
        return s_methods[i].run(self, id, params);
    }
    s_error(self, id, CB_ERR_NO_METHOD, "method not found: '%.80s'", method);
}

mcp_session_t *mcp_session_new(mcp_server_t *server, mcp_send_fn *send, void *arg)
{
    mcp_session_t *s = cb_xcalloc(1, sizeof *s);
    s->server = server;
    s->send = send;
    s->send_arg = arg;
    s->log_level = -1;
    s->server_log = true;
    mcp_session_set_principal(s, &CB_PRINCIPAL_LOCAL);
    s->calls = zlistx_new(); /* czmq aborts when memory runs out */
    s->requests = zlistx_new();
    zlistx_add_end(server->sessions, s);
    return s;
}

void mcp_session_set_principal(mcp_session_t *s, const cb_principal_t *who)
{
    snprintf(s->tenant, sizeof s->tenant, "%s", who->tenant);
    s->who = (cb_principal_t){s->tenant, who->admin};
}

void mcp_session_destroy(mcp_session_t **self_p)
{
    mcp_session_t *s = self_p ? *self_p : NULL;
    if (!s)
        return;
    *self_p = NULL;
    /* Running calls: cut loose, then cancelled; whoever holds them frees them (a cancel
     * function may do so at once, so nothing touches a call after its cancel). */
    zlistx_t *loose = zlistx_new();
    for (mcp_call_t *c = zlistx_detach(s->calls, NULL); c; c = zlistx_detach(s->calls, NULL)) {
        kg_timer_stop(s->server->gw, &c->progress_timer);
        c->session = NULL;
        if (!loose || !zlistx_add_end(loose, c))
            s_cancel(c);
    }
    for (mcp_call_t *c = loose ? zlistx_detach(loose, NULL) : NULL; c;
         c = zlistx_detach(loose, NULL))
        s_cancel(c);
    zlistx_destroy(&loose);
    zlistx_destroy(&s->calls);
    /* Our unanswered requests: answered with nothing (a refusal, for a question). */
    for (mcp_request_t *r = zlistx_first(s->requests); r; r = zlistx_first(s->requests)) {
        kg_timer_stop(s->server->gw, &r->timer);
        zlistx_detach_cur(s->requests);
        mcp_response_fn *fn = r->fn;
        void *arg = r->arg;
        free(r);
        fn(NULL, NULL, NULL, arg);
    }
    zlistx_destroy(&s->requests);
    json_decref(s->client_caps);
    mcp_sandboxes_session_gone(s->server, s);
    void *handle = zlistx_find(s->server->sessions, s);
    if (handle)
        zlistx_delete(s->server->sessions, handle);
    s_update_log_hook(s->server);
    if (s->default_sb)
        mcp_sandbox_delete(&s->default_sb);
    free(s->default_gone);
    free(s);
}
