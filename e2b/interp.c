/* interp.c: the code interpreter's /execute and /contexts (port 49999 in E2B) onto the
 * engine's kernels and executions.
 *
 * E2B's code interpreter is a small server next to a Jupyter server inside their sandbox: a
 * context is a kernel, /execute runs a cell in one and streams what it prints as JSON lines.
 * Here a context is a kernel of the engine in the same sandbox, and a cell is an execution
 * (kg/execution.h) whose outputs are turned into those lines as they arrive:
 *
 *   {"type":"stdout"|"stderr", "text", "timestamp"}
 *   {"type":"result", "text", "html", "png", ..., <other MIME types as they are>, "is_main_result"}
 *   {"type":"error", "name", "value", "traceback"}     (the traceback one string)
 *   {"type":"number_of_executions", "execution_count"}
 * and the end of the response ends the execution, as E2B's does.
 *
 * Contexts. The sandbox's main kernel (the fleet started it with the template's startup code)
 * is the default context of its language, python for the interpreter's template. A cell that
 * names another language and no context runs in that language's default context, a kernel
 * started in the sandbox on first use. POST /contexts starts a new kernel every time. The main
 * kernel is listened to (kg_kernel_listen) and never stopped here: it is the fleet's; the
 * others are ours, stopped when their context is removed, and all of them go with the sandbox.
 *
 * Lifetimes. A run (one /execute) holds its request until the execution's on_done, or until
 * the client goes (then the execution is cancelled: the kernel is interrupted, and the
 * context stays usable: what the SDK's timeoutMs does). A run outlives its context and its
 * request: when either goes first the run is detached (pointer set to NULL) and is freed by
 * on_done, which the engine always calls (an execution of a stopping kernel ends cancelled).
 *
 * env_vars hold for one execution, as in E2B: a silent execution before the cell sets them
 * and one after it puts back what was there; both are queued with the cell, so no other cell
 * of ours runs between. Done for python, javascript/typescript, bash, ruby and r; other
 * languages are refused with a sentence saying so. The values travel as hex or byte codes, so
 * the client's text is never quoted into code.
 */
#include <ctype.h>
#include <string.h>

#include "cb/alloc.h"
#include "cb/cleanup.h"
#include "cb/log.h"
#include "e2b_private.h"
#include "jupyter/catalog.h"
#include "jupyter/kernelspec.h"
#include "kg/execution.h"
#include "kg/kernel.h"

#define S_WORKSPACE "/home/user" /* the workspace inside a sandbox, E2B's default cwd */
#define S_MAX_CWD 4096
#define S_MAX_CONTEXTS 32 /* kernels a client may start in one sandbox through here */

typedef struct s_context s_context_t;
typedef struct s_run s_run_t;

struct e2b_contexts {
    e2b_sandbox_t *sb;
    zlistx_t *list; /* s_context_t *, owned, oldest first */
};

struct s_context {
    e2b_contexts_t *owner;
    char *id;            /* the kernel's id */
    char *language;      /* canonical (jupyter/catalog.h): "python", "javascript", ... */
    char *cwd;           /* inside path */
    kg_kernel_t *kernel; /* NULL once it stopped */
    bool main;           /* the sandbox's main kernel: listened to, never stopped here */
    bool is_default;     /* the one /execute uses for its language when no context is named */
    zlistx_t *runs;      /* s_run_t *, borrowed: the runs whose response is still open */
};

struct s_run {
    s_context_t *ctx;    /* NULL once detached */
    http_request_t *req; /* NULL once the response ended or the client went */
    kg_execution_t *x;   /* valid until on_done */
    bool errored;        /* an error line was sent (E2B sends one per execution) */
};

/* ---- lines ---------------------------------------------------------------------------------- */

/* E2B's error answer. Messages quote the client's text, cut to a length that may split a UTF-8
 * sequence: they are made valid text first (JSON takes nothing else). */
static void s_refuse(http_request_t *req, int status, const char *message)
{
    cleanup_free char *text = cb_text_lossy(message, strlen(message), NULL);
    e2b_respond_error(req, status, text);
}

/* One JSON line on the run's response. */
static void s_send(s_run_t *run, json_t *line)
{
    if (!run->req || !line)
        return;
    cleanup_free char *text = json_dumps(line, JSON_COMPACT);
    if (!text)
        return;
    cb_buf_t buf = {0};
    cb_buf_append(&buf, text, strlen(text));
    cb_buf_append(&buf, "\n", 1);
    http_stream_write(run->req, buf.data, buf.len);
    cb_buf_free(&buf);
}

static void s_send_error(s_run_t *run, const char *name, const char *value, const char *traceback)
{
    if (run->errored)
        return;
    run->errored = true;
    cleanup_free char *text = value ? cb_text_lossy(value, strlen(value), NULL) : NULL;
    json_auto_t *line = json_pack("{s:s, s:s, s:s, s:s}", "type", "error", "name", name, "value",
                                  text ? text : "", "traceback", traceback ? traceback : "");
    s_send(run, line);
}

/* End the response (after an error line when why is given) and let go of the request. */
static void s_end(s_run_t *run, const char *name, const char *why)
{
    if (!run->req)
        return;
    if (why)
        s_send_error(run, name, why, NULL);
    http_request_t *req = run->req;
    run->req = NULL;
    http_request_on_close(req, NULL, NULL);
    http_stream_end(req);
}

/* Jupyter's MIME bundle keys and the names E2B's Result gives them. */
static const struct {
    const char *mime, *key;
} s_mime_keys[] = {
    {"text/plain", "text"},        {"text/html", "html"},
    {"text/markdown", "markdown"}, {"image/svg+xml", "svg"},
    {"image/png", "png"},          {"image/jpeg", "jpeg"},
    {"application/pdf", "pdf"},    {"text/latex", "latex"},
    {"application/json", "json"},  {"application/javascript", "javascript"},
    {"e2b/data", "data"},          {"e2b/chart", "chart"},
};

/* A bundle's value as E2B sends it: a string (some kernels send text as a list of lines), or
 * the JSON value itself for JSON types. New reference. */
static json_t *s_mime_value(json_t *v)
{
    if (!json_is_array(v))
        return json_incref(v);
    cb_buf_t buf = {0};
    size_t i;
    json_t *part;
    json_array_foreach (v, i, part) {
        if (!json_is_string(part)) {
            cb_buf_free(&buf);
            return json_incref(v);
        }
        cb_buf_append(&buf, json_string_value(part), json_string_length(part));
    }
    json_t *out = json_stringn(buf.data ? buf.data : "", buf.len);
    cb_buf_free(&buf);
    return out;
}

/* {"type":"result", ...} from a display_data or execute_result content. Keys E2B names get
 * its names; other MIME types (they have a '/') are kept as they are, which the SDK puts in
 * Result.extra; anything else is dropped, so a kernel cannot overwrite "type". New reference. */
static json_t *s_result_line(json_t *content, bool is_main)
{
    json_t *line = json_pack("{s:s, s:b}", "type", "result", "is_main_result", is_main);
    json_t *data = json_object_get(content, "data");
    const char *mime;
    json_t *v;
    json_object_foreach (data, mime, v) {
        const char *key = NULL;
        for (size_t i = 0; i < sizeof s_mime_keys / sizeof s_mime_keys[0] && !key; i++)
            if (strcmp(mime, s_mime_keys[i].mime) == 0)
                key = s_mime_keys[i].key;
        if (!key && !strchr(mime, '/'))
            continue;
        json_t *value = s_mime_value(v);
        const char *s = json_string_value(value);
        size_t n = json_string_length(value);
        /* E2B's server strips the quotes of a str's repr: 'hi' -> hi. */
        if (key && strcmp(key, "text") == 0 && s && n >= 2 && s[0] == '\'' && s[n - 1] == '\'') {
            json_t *bare = json_stringn(s + 1, n - 2);
            json_decref(value);
            value = bare;
        }
        json_object_set_new(line, key ? key : mime, value);
    }
    return line;
}

/* Jupyter's traceback (a list of lines) as the one string E2B sends. */
static char *s_traceback(json_t *tb)
{
    cb_buf_t buf = {0};
    size_t i;
    json_t *part;
    json_array_foreach (tb, i, part) {
        if (!json_is_string(part))
            continue;
        if (buf.len)
            cb_buf_append(&buf, "\n", 1);
        cb_buf_append(&buf, json_string_value(part), json_string_length(part));
    }
    return cb_buf_take(&buf);
}

/* ---- runs ----------------------------------------------------------------------------------- */

static void s_detach(s_run_t *run)
{
    s_context_t *ctx = run->ctx;
    if (!ctx)
        return;
    run->ctx = NULL;
    void *handle = zlistx_find(ctx->runs, run);
    if (handle)
        zlistx_delete(ctx->runs, handle);
}

static void s_on_output(kg_execution_t *x, const char *kind, json_t *content, void *arg)
{
    (void)x;
    s_run_t *run = arg;
    if (!run->req)
        return;
    if (strcmp(kind, "stream") == 0) {
        const char *name = json_string_value(json_object_get(content, "name"));
        const char *text = json_string_value(json_object_get(content, "text"));
        if (!text || !name || (strcmp(name, "stdout") != 0 && strcmp(name, "stderr") != 0))
            return;
        char now[CB_ISO8601_LEN];
        json_auto_t *line = json_pack("{s:s, s:s, s:s}", "type", name, "text", text, "timestamp",
                                      cb_iso8601_now(now));
        s_send(run, line);
    } else if (strcmp(kind, "execute_result") == 0 || strcmp(kind, "display_data") == 0) {
        json_auto_t *line = s_result_line(content, strcmp(kind, "execute_result") == 0);
        s_send(run, line);
    } else if (strcmp(kind, "error") == 0) {
        const char *ename = json_string_value(json_object_get(content, "ename"));
        const char *evalue = json_string_value(json_object_get(content, "evalue"));
        cleanup_free char *tb = s_traceback(json_object_get(content, "traceback"));
        s_send_error(run, ename ? ename : "Error", evalue, tb);
    }
}

/* The execution's notes, one sentence after another ("" when none). Caller owns return value. */
static char *s_notes(json_t *result)
{
    cb_buf_t buf = {0};
    size_t i;
    json_t *note;
    json_array_foreach (json_object_get(result, "notes"), i, note) {
        if (!json_is_string(note))
            continue;
        if (buf.len)
            cb_buf_append(&buf, " ", 1);
        cb_buf_append(&buf, json_string_value(note), json_string_length(note));
    }
    return cb_buf_take(&buf);
}

static void s_on_done(kg_execution_t *x, json_t *result, void *arg)
{
    (void)x;
    s_run_t *run = arg;
    run->x = NULL;
    if (run->req) {
        const char *status = json_string_value(json_object_get(result, "status"));
        status = status ? status : "error";
        cleanup_free char *notes = s_notes(result);
        if (strcmp(status, "ok") != 0 && strcmp(status, "error") != 0) {
            /* The cell did not finish on its own: say why, as E2B does on a restart. */
            const char *name = strcmp(status, "kernel_died") == 0 ? "ContextRestarting"
                               : strcmp(status, "cancelled") == 0 ? "ExecutionCancelled"
                                                                  : "ExecutionAborted";
            cleanup_free char *why = cb_strdup_printf("the execution ended as %s%s%s", status,
                                                      *notes ? ": " : "", notes);
            s_send_error(run, name, why, NULL);
        }
        json_t *count = json_object_get(result, "execution_count");
        if (json_is_integer(count)) {
            json_auto_t *line =
                json_pack("{s:s, s:O}", "type", "number_of_executions", "execution_count", count);
            s_send(run, line);
        }
        s_end(run, NULL, NULL);
    }
    s_detach(run);
    free(run);
}

/* The client went (the SDK's timeoutMs aborts the request, or it disconnected): stop the cell;
 * the kernel is interrupted and keeps its state. */
static void s_on_client_gone(http_request_t *req, void *arg)
{
    (void)req;
    s_run_t *run = arg;
    run->req = NULL;
    kg_execution_t *x = run->x;
    if (x)
        kg_execution_cancel(x, NULL); /* may run on_done, which frees run */
}

/* ---- contexts ------------------------------------------------------------------------------- */

static void s_context_free(s_context_t *ctx)
{
    free(ctx->id);
    free(ctx->language);
    free(ctx->cwd);
    zlistx_destroy(&ctx->runs);
    free(ctx);
}

/* Take the context out of its list and free it: end its open responses (why: the error line
 * they get), let go of its kernel (stop it when stop and it is ours). */
static void s_context_remove(s_context_t *ctx, const char *name, const char *why, bool stop)
{
    s_run_t *run;
    while ((run = zlistx_first(ctx->runs))) {
        s_end(run, name, why);
        s_detach(run);
    }
    kg_kernel_t *kernel = ctx->kernel;
    ctx->kernel = NULL;
    if (kernel && ctx->main) {
        kg_kernel_unlisten(kernel, ctx);
    } else if (kernel) {
        kg_kernel_set_events(kernel, NULL, NULL);
        if (stop)
            kg_kernel_shutdown(kernel);
    }
    void *handle = zlistx_find(ctx->owner->list, ctx);
    if (handle)
        zlistx_detach(ctx->owner->list, handle);
    s_context_free(ctx);
}

static void s_on_kernel_event(kg_kernel_t *kernel, kg_kernel_event_t event, const char *detail,
                              void *arg)
{
    (void)kernel;
    (void)detail;
    s_context_t *ctx = arg;
    if (event == KG_EVENT_STOPPED)
        s_context_remove(ctx, "ContextRemoved", "the context's kernel stopped", false);
}

static s_context_t *s_context_add(e2b_contexts_t *cs, kg_kernel_t *kernel, const char *language,
                                  const char *cwd)
{
    s_context_t *ctx = cb_xcalloc(1, sizeof *ctx);
    ctx->owner = cs;
    ctx->id = cb_xstrdup(kg_kernel_id(kernel));
    ctx->language = cb_xstrdup(language);
    ctx->cwd = cb_xstrdup(cwd ? cwd : S_WORKSPACE);
    ctx->kernel = kernel;
    ctx->runs = zlistx_new();
    zlistx_add_end(cs->list, ctx);
    return ctx;
}

/* The sandbox's contexts, made on first use with the main kernel as the default context of
 * its language. */
static e2b_contexts_t *s_contexts(e2b_sandbox_t *sb)
{
    if (sb->contexts)
        return sb->contexts;
    e2b_contexts_t *cs = cb_xcalloc(1, sizeof *cs);
    cs->sb = sb;
    cs->list = zlistx_new();
    sb->contexts = cs;
    kg_kernel_t *main = fleet_sandbox_main_kernel(sb->kg);
    if (main && !kg_kernel_is_stopping(main)) {
        const char *lang = jp_language_canonical(kg_kernel_language(main));
        s_context_t *ctx = s_context_add(cs, main, lang ? lang : kg_kernel_language(main), NULL);
        ctx->main = true;
        ctx->is_default = true;
        kg_kernel_listener_t listener = {.on_event = s_on_kernel_event, .arg = ctx};
        cb_error_t err = {0};
        if (kg_kernel_listen(main, &listener, &err) < 0) {
            cb_warn("e2b: sandbox %s: cannot follow the main kernel: %s", sb->id, err.msg);
            ctx->kernel = NULL; /* not listened to: never touched again */
            s_context_remove(ctx, NULL, NULL, false);
        }
    }
    return cs;
}

static s_context_t *s_context_find(e2b_contexts_t *cs, const char *id)
{
    for (s_context_t *ctx = zlistx_first(cs->list); ctx; ctx = zlistx_next(cs->list))
        if (strcmp(ctx->id, id) == 0)
            return ctx;
    return NULL;
}

/* A new kernel for language (canonical) in the sandbox, working in cwd (NULL: the workspace). */
static s_context_t *s_context_start(e2b_contexts_t *cs, const char *language, const char *cwd,
                                    cb_error_t *err)
{
    kg_gateway_t *gw = cs->sb->api->gw;
    if (zlistx_size(cs->list) >= S_MAX_CONTEXTS) {
        cb_error_fail(err, CB_ERR_LIMIT,
                      "a sandbox holds at most %d contexts here: remove one (removeCodeContext) "
                      "first",
                      S_MAX_CONTEXTS);
        return NULL;
    }
    cleanup_free char *spec = jp_kernelspec_for_language(kg_gateway_kernels_dir(gw), language, err);
    if (!spec)
        return NULL;
    kg_kernel_opts_t opts = {.kernel_name = spec, .cwd = cwd, .sandbox = cs->sb->kg};
    kg_kernel_t *kernel = kg_kernel_start(gw, &opts, err);
    if (!kernel)
        return NULL;
    s_context_t *ctx = s_context_add(cs, kernel, language, cwd);
    kg_kernel_set_events(kernel, s_on_kernel_event, ctx);
    return ctx;
}

/* The default context of language (canonical), started on first use; one whose kernel gave
 * up is replaced. */
static s_context_t *s_context_default(e2b_contexts_t *cs, const char *language, cb_error_t *err)
{
    for (s_context_t *ctx = zlistx_first(cs->list); ctx; ctx = zlistx_next(cs->list)) {
        if (!ctx->is_default || strcmp(ctx->language, language) != 0)
            continue;
        if (ctx->kernel && kg_kernel_state(ctx->kernel) != KG_KERNEL_DEAD)
            return ctx;
        s_context_remove(ctx, "ContextRestarting", "the context's kernel died", true);
        break;
    }
    s_context_t *ctx = s_context_start(cs, language, NULL, err);
    if (ctx)
        ctx->is_default = true;
    return ctx;
}

static json_t *s_context_json(const s_context_t *ctx)
{
    return json_pack("{s:s, s:s, s:s}", "id", ctx->id, "language", ctx->language, "cwd", ctx->cwd);
}

/* A language as the client spells it, canonical; NULL with err naming the known ones. */
static const char *s_language(const char *asked, cb_error_t *err)
{
    const char *lang = jp_language_canonical(asked && *asked ? asked : "python");
    if (!lang)
        cb_error_fail(err, CB_ERR_NOT_FOUND, "language '%.64s' is not one cellblock knows: %s",
                      asked, JP_LANGUAGE_NAMES);
    return lang;
}

/* cwd as the kernel gets it: inside the workspace, a directory there. Caller owns return value;
 * NULL with err. */
static char *s_cwd(e2b_sandbox_t *sb, const char *asked, cb_error_t *err)
{
    if (!asked || !*asked)
        return cb_xstrdup(S_WORKSPACE);
    if (strlen(asked) > S_MAX_CWD) {
        cb_error_fail(err, CB_ERR_INVALID, "cwd is longer than %d bytes", S_MAX_CWD);
        return NULL;
    }
    cleanup_free char *path =
        asked[0] == '/' ? cb_xstrdup(asked) : cb_strdup_printf(S_WORKSPACE "/%s", asked);
    size_t ws = strlen(S_WORKSPACE);
    bool inside = strncmp(path, S_WORKSPACE, ws) == 0 && (path[ws] == '\0' || path[ws] == '/');
    bool dotdot =
        strstr(path, "/../") || (strlen(path) >= 3 && !strcmp(path + strlen(path) - 3, "/.."));
    if (!inside || dotdot) {
        cb_error_fail(err, CB_ERR_INVALID,
                      "cwd '%.200s' must be a directory inside the workspace, " S_WORKSPACE, asked);
        return NULL;
    }
    json_auto_t *listing = kg_sandbox_file_list(sb->kg, path, err);
    if (!listing) {
        cb_error_prefix(err, "cwd '%.200s'", asked);
        return NULL;
    }
    return steal_pointer(&path);
}

/* ---- env_vars --------------------------------------------------------------------------------- */

static bool s_env_name_ok(const char *k)
{
    if (!*k || isdigit((unsigned char)*k))
        return false;
    for (; *k; k++)
        if (!isalnum((unsigned char)*k) && *k != '_')
            return false;
    return true;
}

static void s_hex(cb_buf_t *out, const char *s, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char pair[2] = {digits[c >> 4], digits[c & 15]};
        cb_buf_append(out, pair, 2);
    }
}

/* The silent cells that set env (an object of strings, checked) before the cell and put back
 * what was there after it, for language; -1 with err for a language we do not do it for. */
static int s_env_code(const char *language, json_t *env, char **set, char **restore,
                      cb_error_t *err)
{
    cleanup_free char *json = json_dumps(env, JSON_COMPACT);
    cleanup_buf cb_buf_t hex = {0};
    s_hex(&hex, json, strlen(json));
    if (strcmp(language, "python") == 0) {
        *set = cb_strdup_printf(
            "import os as _cb_os, json as _cb_json\n"
            "_cb_env = _cb_json.loads(bytes.fromhex('%s'))\n"
            "_cb_os._cellblock_env_saved = {k: _cb_os.environ.get(k) for k in _cb_env}\n"
            "_cb_os.environ.update(_cb_env)\n"
            "del _cb_os, _cb_json, _cb_env\n",
            cb_buf_str(&hex));
        *restore = cb_xstrdup("import os as _cb_os\n"
                              "for _cb_k, _cb_v in getattr(_cb_os, '_cellblock_env_saved', "
                              "{}).items():\n"
                              "    if _cb_v is None: _cb_os.environ.pop(_cb_k, None)\n"
                              "    else: _cb_os.environ[_cb_k] = _cb_v\n"
                              "_cb_os._cellblock_env_saved = {}\n"
                              "del _cb_os\n"
                              "try: del _cb_k, _cb_v\n"
                              "except NameError: pass\n");
        return 0;
    }
    if (strcmp(language, "javascript") == 0 || strcmp(language, "typescript") == 0) {
        *set = cb_strdup_printf(
            "(() => { const e = JSON.parse(Buffer.from('%s', 'hex').toString('utf8')); "
            "const s = {}; for (const k of Object.keys(e)) { s[k] = process.env[k]; "
            "process.env[k] = e[k]; } globalThis.__cellblockEnvSaved = s; })();",
            cb_buf_str(&hex));
        *restore = cb_xstrdup(
            "(() => { const s = globalThis.__cellblockEnvSaved || {}; "
            "for (const k of Object.keys(s)) { if (s[k] === undefined) delete process.env[k]; "
            "else process.env[k] = s[k]; } delete globalThis.__cellblockEnvSaved; })();");
        return 0;
    }
    if (strcmp(language, "bash") == 0) {
        cb_buf_t s = {0}, r = {0};
        const char *k;
        json_t *v;
        json_object_foreach (env, k, v) {
            /* Names were checked ([A-Za-z_][A-Za-z0-9_]*); the value goes in as $'\xHH...'. */
            cb_buf_printf(&s, "__cb_had_%s=${%s+x}; __cb_old_%s=\"$%s\"; export %s=$'", k, k, k, k,
                          k);
            const char *val = json_string_value(v);
            for (size_t i = 0; i < json_string_length(v); i++)
                cb_buf_printf(&s, "\\x%02x", (unsigned char)val[i]);
            cb_buf_append(&s, "'\n", 2);
            cb_buf_printf(&r,
                          "if [ -n \"$__cb_had_%s\" ]; then export %s=\"$__cb_old_%s\"; else "
                          "unset %s; fi; unset __cb_had_%s __cb_old_%s\n",
                          k, k, k, k, k, k);
        }
        *set = cb_buf_take(&s);
        *restore = cb_buf_take(&r);
        return 0;
    }
    if (strcmp(language, "ruby") == 0) {
        *set = cb_strdup_printf(
            "require 'json'\n"
            "$__cb_env_saved = {}\n"
            "JSON.parse(['%s'].pack('H*').force_encoding('UTF-8')).each do |k, v|\n"
            "  $__cb_env_saved[k] = ENV[k]; ENV[k] = v\n"
            "end\n"
            "nil\n",
            cb_buf_str(&hex));
        *restore = cb_xstrdup("($__cb_env_saved || {}).each { |k, v| v.nil? ? ENV.delete(k) : "
                              "ENV[k] = v }\n"
                              "$__cb_env_saved = nil\n");
        return 0;
    }
    if (strcmp(language, "r") == 0) {
        /* R has no JSON reader of its own: each value goes in as its bytes. */
        cb_buf_t names = {0}, values = {0};
        const char *k;
        json_t *v;
        json_object_foreach (env, k, v) {
            cb_buf_printf(&names, "%s\"%s\"", names.len ? ", " : "", k);
            cb_buf_printf(&values, "%s%s = rawToChar(as.raw(c(", values.len ? ", " : "", k);
            const char *val = json_string_value(v);
            for (size_t i = 0; i < json_string_length(v); i++)
                cb_buf_printf(&values, "%s0x%02x", i ? "," : "", (unsigned char)val[i]);
            cb_buf_append(&values, ")))", 3);
        }
        *set = cb_strdup_printf(".cb_env_saved <- Sys.getenv(c(%s), unset = NA, names = TRUE)\n"
                                "Sys.setenv(%s)\n"
                                "invisible(NULL)\n",
                                cb_buf_str(&names), cb_buf_str(&values));
        cb_buf_free(&names);
        cb_buf_free(&values);
        *restore = cb_xstrdup(
            "if (exists(\".cb_env_saved\")) {\n"
            "  for (.cb_k in names(.cb_env_saved)) {\n"
            "    if (is.na(.cb_env_saved[[.cb_k]])) Sys.unsetenv(.cb_k)\n"
            "    else do.call(Sys.setenv, setNames(list(.cb_env_saved[[.cb_k]]), .cb_k))\n"
            "  }\n"
            "  rm(list = intersect(c(\".cb_env_saved\", \".cb_k\"), ls(all.names = TRUE)))\n"
            "}\n"
            "invisible(NULL)\n");
        return 0;
    }
    return cb_error_fail(err, CB_ERR_INVALID,
                         "env_vars are implemented here for python, javascript, typescript, bash, "
                         "ruby and r contexts, not for %s; set them in the code instead",
                         language);
}

static int s_env_check(json_t *env, cb_error_t *err)
{
    if (!json_is_object(env))
        return cb_error_fail(err, CB_ERR_INVALID, "env_vars must be an object of strings");
    const char *k;
    json_t *v;
    json_object_foreach (env, k, v) {
        if (!s_env_name_ok(k))
            return cb_error_fail(
                err, CB_ERR_INVALID,
                "env_vars: '%.64s' is not a variable name ([A-Za-z_][A-Za-z0-9_]*)", k);
        if (!json_is_string(v))
            return cb_error_fail(err, CB_ERR_INVALID, "env_vars: %s must be a string", k);
    }
    return 0;
}

/* ---- /execute ------------------------------------------------------------------------------- */

/* A failure found before the cell was queued, told the way runCode shows it: a response with
 * one error line (the SDK reads only 404's and 502's bodies). */
static void s_execute_refuse(http_request_t *req, const char *name, const char *why)
{
    if (http_stream_begin(req, 200, "application/x-ndjson", NULL) < 0)
        return;
    s_run_t run = {.req = req};
    s_end(&run, name, why);
}

static void s_queue_silent(kg_kernel_t *kernel, const char *code)
{
    kg_execute_opts_t opts = {.origin = "e2b", .code = code, .silent = true, .no_history = true};
    cb_error_t err = {0};
    if (!kg_execute(kernel, &opts, &err))
        cb_warn("e2b: env_vars: %s", err.msg);
}

static void s_execute(e2b_sandbox_t *sb, http_request_t *req)
{
    size_t len = 0;
    const char *body = http_request_body(req, &len);
    json_error_t jerr;
    json_auto_t *in = json_loadb(body, len, 0, &jerr);
    if (!json_is_object(in))
        return s_refuse(req, 400, "the body must be a JSON object");
    json_t *jcode = json_object_get(in, "code");
    json_t *jctx = json_object_get(in, "context_id");
    json_t *jlang = json_object_get(in, "language");
    json_t *env = json_object_get(in, "env_vars");
    if (!json_is_string(jcode))
        return s_refuse(req, 400, "code must be a string");
    if ((jctx && !json_is_null(jctx) && !json_is_string(jctx)) ||
        (jlang && !json_is_null(jlang) && !json_is_string(jlang)))
        return s_refuse(req, 400, "context_id and language must be strings");
    const char *ctx_id = json_string_value(jctx);
    const char *asked = json_string_value(jlang);
    if (ctx_id && asked)
        return s_refuse(req, 400, "give context_id or language, not both");
    cb_error_t err = {0};
    if (json_is_null(env) || (json_is_object(env) && json_object_size(env) == 0))
        env = NULL;
    if (env && s_env_check(env, &err) < 0)
        return s_refuse(req, 400, err.msg);

    e2b_contexts_t *cs = s_contexts(sb);
    s_context_t *ctx = NULL;
    if (ctx_id) {
        ctx = s_context_find(cs, ctx_id);
        if (!ctx) {
            cleanup_free char *msg = cb_strdup_printf("context %.80s not found", ctx_id);
            return s_refuse(req, 404, msg);
        }
    } else {
        const char *lang = s_language(asked, &err);
        ctx = lang ? s_context_default(cs, lang, &err) : NULL;
        if (!ctx)
            return s_execute_refuse(req, "LanguageNotAvailable", err.msg);
    }
    if (!ctx->kernel)
        return s_execute_refuse(req, "ContextRemoved", "the context's kernel has stopped");

    cleanup_free char *set = NULL;
    cleanup_free char *restore = NULL;
    if (env && s_env_code(ctx->language, env, &set, &restore, &err) < 0)
        return s_execute_refuse(req, "EnvVarsNotSupported", err.msg);
    if (set)
        s_queue_silent(ctx->kernel, set);
    s_run_t *run = cb_xcalloc(1, sizeof *run);
    kg_execute_opts_t opts = {.origin = "e2b",
                              .code = json_string_value(jcode),
                              .on_output = s_on_output,
                              .on_done = s_on_done,
                              .arg = run};
    run->x = kg_execute(ctx->kernel, &opts, &err);
    if (restore)
        s_queue_silent(ctx->kernel, restore);
    if (!run->x) {
        free(run);
        return s_execute_refuse(req, "ExecutionFailed", err.msg);
    }
    run->ctx = ctx;
    zlistx_add_end(ctx->runs, run);
    if (http_stream_begin(req, 200, "application/x-ndjson", NULL) < 0) {
        /* req is gone: nobody to tell; stop the cell (on_done frees run) */
        kg_execution_t *x = run->x;
        kg_execution_cancel(x, NULL);
        return;
    }
    run->req = req;
    http_request_on_close(req, s_on_client_gone, run);
}

/* ---- /contexts ------------------------------------------------------------------------------ */

static void s_contexts_create(e2b_sandbox_t *sb, http_request_t *req)
{
    size_t len = 0;
    const char *body = http_request_body(req, &len);
    json_error_t jerr;
    json_auto_t *in = len ? json_loadb(body, len, 0, &jerr) : json_object();
    if (!json_is_object(in))
        return s_refuse(req, 400, "the body must be a JSON object");
    json_t *jlang = json_object_get(in, "language");
    json_t *jcwd = json_object_get(in, "cwd");
    if ((jlang && !json_is_null(jlang) && !json_is_string(jlang)) ||
        (jcwd && !json_is_null(jcwd) && !json_is_string(jcwd)))
        return s_refuse(req, 400, "language and cwd must be strings");
    cb_error_t err = {0};
    const char *lang = s_language(json_string_value(jlang), &err);
    if (!lang)
        return s_refuse(req, 404, err.msg);
    cleanup_free char *cwd = s_cwd(sb, json_string_value(jcwd), &err);
    if (!cwd)
        return s_refuse(req, cb_error_kind_http_status(err.kind), err.msg);
    s_context_t *ctx = s_context_start(s_contexts(sb), lang, cwd, &err);
    if (!ctx) /* 404 for a language with no kernel here: the SDK shows a 404's text */
        return s_refuse(req,
                        err.kind == CB_ERR_UNAVAILABLE || err.kind == CB_ERR_NOT_FOUND
                            ? 404
                            : cb_error_kind_http_status(err.kind),
                        err.msg);
    json_auto_t *out = s_context_json(ctx);
    http_respond_json(req, 200, out, NULL);
}

static void s_contexts_list(e2b_sandbox_t *sb, http_request_t *req)
{
    e2b_contexts_t *cs = s_contexts(sb);
    json_auto_t *out = json_array();
    for (s_context_t *ctx = zlistx_first(cs->list); ctx; ctx = zlistx_next(cs->list))
        json_array_append_new(out, s_context_json(ctx));
    http_respond_json(req, 200, out, NULL);
}

/* DELETE /contexts/{id} and POST /contexts/{id}/restart. */
static void s_context_call(e2b_sandbox_t *sb, http_request_t *req, const char *rest)
{
    const char *method = http_request_method(req);
    const char *slash = strchr(rest, '/');
    cleanup_free char *id = slash ? cb_xstrndup(rest, (size_t)(slash - rest)) : cb_xstrdup(rest);
    bool restart = slash && strcmp(slash, "/restart") == 0;
    if (!id || (slash && !restart) || !*id)
        return s_refuse(req, 404, "not a route of the code interpreter");
    if (restart ? strcmp(method, "POST") != 0 : strcmp(method, "DELETE") != 0)
        return s_refuse(req, 405,
                        restart ? "POST /contexts/{id}/restart" : "DELETE /contexts/{id}");
    s_context_t *ctx = s_context_find(s_contexts(sb), id);
    if (!ctx) {
        cleanup_free char *msg = cb_strdup_printf("context %.80s not found", id);
        return s_refuse(req, 404, msg);
    }
    if (!restart) {
        if (ctx->main)
            return s_refuse(req, 400,
                            "this is the sandbox's main kernel (the default python "
                            "context): it ends with the sandbox; restart it instead");
        s_context_remove(ctx, "ContextRemoved", "the context was removed", true);
        http_respond(req, 204, NULL, NULL, NULL, 0);
        return;
    }
    cb_error_t err = {0};
    if (!ctx->kernel || kg_kernel_restart(ctx->kernel, &err) < 0)
        return s_refuse(req, 409, ctx->kernel ? err.msg : "the context's kernel stopped");
    http_respond(req, 204, NULL, NULL, NULL, 0);
}

void e2b_interp_handle(e2b_sandbox_t *sb, http_request_t *req, const char *path)
{
    const char *method = http_request_method(req);
    if (strcmp(path, "/execute") == 0) {
        if (strcmp(method, "POST") != 0)
            return s_refuse(req, 405, "POST /execute");
        return s_execute(sb, req);
    }
    if (strcmp(path, "/contexts") == 0) {
        if (strcmp(method, "POST") == 0)
            return s_contexts_create(sb, req);
        if (strcmp(method, "GET") == 0)
            return s_contexts_list(sb, req);
        return s_refuse(req, 405, "GET or POST /contexts");
    }
    if (strncmp(path, "/contexts/", 10) == 0)
        return s_context_call(sb, req, path + 10);
    s_refuse(req, 404, "not a route of the code interpreter");
}

void e2b_interp_sandbox_end(e2b_sandbox_t *sb)
{
    e2b_contexts_t *cs = sb->contexts;
    if (!cs)
        return;
    sb->contexts = NULL;
    s_context_t *ctx;
    while ((ctx = zlistx_first(cs->list)))
        s_context_remove(ctx, "SandboxEnded", "the sandbox ended while the code ran", false);
    zlistx_destroy(&cs->list);
    free(cs);
}
