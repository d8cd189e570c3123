/* packages.c: code_execute's and run_code's `packages`: install them in the sandbox, then run
 * the code.
 *
 * Why here: the product's own examples pass the packages a cell needs with the cell, so a model
 * does not have to issue a separate install and read its noise. The install must fail closed:
 * when it fails, the code is not run and the result's error says what the installer said.
 *
 * How: the names are checked first (strings, no leading '-', no whitespace or control bytes, a
 * bounded count and length), so that no "name" can be an option of the installer. The installer
 * follows the kernel's language: pip (the user scheme, into /home/user/.local; see
 * kernel-gateway/packages.c) for Python, npm (into /home/user/node_modules) for JavaScript and
 * TypeScript. It runs as a sandbox command: a fixed bash script reads the names, one a line,
 * from the variable CELLBLOCK_PACKAGES into an array and execs the installer with them as its
 * argv after "--". The shell never parses a name (it is expanded once, quoted: no splitting,
 * no globbing, no substitution), so no name can be code either.
 *
 * The install runs under the call's time limit; the code gets what is left. Its output goes to
 * the call's progress notifications only, never into the code's stdout. A cancelled call kills
 * the install. The REPL is looked up again by id when the install ends: it may have been closed
 * meanwhile.
 */
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "cb/cleanup.h"
#include "jupyter/catalog.h"
#include "kg/command.h"
#include "kg/gateway.h"
#include "kg/kernel.h"
#include "kg/sandbox.h"
#include "mcp_private.h"

#define PACKAGES_MAX 64
#define PACKAGE_NAME_MAX 256
#define OUTPUT_TAIL_MAX 6000 /* bytes of the installer's output kept in the error */

/* The scripts: the names come from CELLBLOCK_PACKAGES, never from the script's text. */
#define READ_NAMES "mapfile -t names <<<\"$CELLBLOCK_PACKAGES\" && "
static const char s_pip_script[] =
    READ_NAMES "exec /usr/bin/python3 -m pip install --no-input --progress-bar off -- "
               "\"${names[@]}\"";
static const char s_npm_script[] =
    READ_NAMES "exec npm install --prefix /home/user --no-progress -- \"${names[@]}\"";

typedef struct {
    kg_gateway_t *gw;
    mcp_server_t *server;
    mcp_call_t *call; /* NULL once finished (cancelled) */
    json_t *args;     /* the call's arguments, owned */
    const char *installer;
    char sandbox_id[37];
    char repl_id[37];
    char command_id[37];
    int64_t started_ms;
    char started_at[32]; /* the wall clock as the sandbox's log writes it, to find its lines */
    int total_ms;        /* the call's time limit, install and code together */
} s_install_t;

/* ---- checks -------------------------------------------------------------------------------- */

int mcp_packages_check(json_t *args, char *msg, size_t size)
{
    json_t *list = json_object_get(args, "packages");
    if (!list)
        return 0;
    if (!json_is_array(list)) {
        snprintf(msg, size, "argument 'packages' must be an array of package names");
        return -1;
    }
    if (json_array_size(list) > PACKAGES_MAX) {
        snprintf(msg, size, "argument 'packages' names %zu packages; at most %d at once",
                 json_array_size(list), PACKAGES_MAX);
        return -1;
    }
    size_t i;
    json_t *item;
    json_array_foreach (list, i, item) {
        const char *name = json_string_value(item);
        if (!name) {
            snprintf(msg, size, "packages[%zu] must be a string (a package name)", i);
            return -1;
        }
        size_t len = json_string_length(item);
        if (len == 0 || len > PACKAGE_NAME_MAX) {
            snprintf(msg, size, "packages[%zu] must be 1 to %d bytes long", i, PACKAGE_NAME_MAX);
            return -1;
        }
        if (name[0] == '-') {
            snprintf(msg, size,
                     "packages[%zu] '%.60s' starts with '-': options are not package names "
                     "(to use another index, set PIP_INDEX_URL or npm_config_registry in "
                     "sandbox_create's env)",
                     i, name);
            return -1;
        }
        for (size_t j = 0; j < len; j++) {
            unsigned char c = (unsigned char)name[j];
            if (c <= ' ' || c == 0x7f) {
                snprintf(msg, size,
                         "packages[%zu] holds whitespace or a control character: one name "
                         "(with an optional version, such as 'requests==2.31') per entry",
                         i);
                return -1;
            }
        }
    }
    return 0;
}

/* The names of args' packages joined by sep. Caller owns return value. */
static char *s_names(json_t *args, const char *sep)
{
    cb_buf_t buf = {0};
    size_t i;
    json_t *item;
    json_array_foreach (json_object_get(args, "packages"), i, item)
        cb_buf_printf(&buf, "%s%s", i ? sep : "", json_string_value(item));
    return cb_buf_take(&buf);
}

/* ---- the result of a failed install -------------------------------------------------------- */

/* The last OUTPUT_TAIL_MAX bytes of s, starting at a line. Caller owns return value. */
static char *s_tail(const char *s)
{
    size_t len = strlen(s);
    if (len <= OUTPUT_TAIL_MAX)
        return mcp_strip_ansi(s);
    const char *from = s + len - OUTPUT_TAIL_MAX;
    const char *nl = strchr(from, '\n');
    return mcp_strip_ansi(nl ? nl + 1 : from);
}

/* The wall clock now, as kg_sandbox_logs stamps entries (ISO 8601 UTC with milliseconds). */
static void s_stamp(char *out, size_t size)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    time_t secs = tv.tv_sec;
    gmtime_r(&secs, &tm);
    size_t len = strftime(out, size, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + len, size - len, ".%03dZ", (int)(tv.tv_usec / 1000));
}

/* What the sandbox's network log said while the install ran (a refusal by its policy names the
 * registry, where pip only says it found no version), one entry a line; NULL when nothing.
 * Caller owns return value. */
static char *s_network_lines(s_install_t *in)
{
    kg_sandbox_t *sb = kg_gateway_sandbox(in->gw, in->sandbox_id);
    json_auto_t *logs = sb ? kg_sandbox_logs(sb, 100) : NULL;
    cb_buf_t buf = {0};
    size_t i;
    json_t *entry;
    json_array_foreach (logs, i, entry) {
        const char *source = json_string_value(json_object_get(entry, "source"));
        const char *time = json_string_value(json_object_get(entry, "time"));
        const char *text = json_string_value(json_object_get(entry, "text"));
        if (!source || !time || !text || strcmp(source, "network") != 0 ||
            strcmp(time, in->started_at) < 0)
            continue;
        if (strncmp(text, "network: ", 9) == 0) /* the proxy's own prefix: said already */
            text += 9;
        cb_buf_printf(&buf, "%s%s", buf.len ? "; " : "", text);
    }
    return buf.len ? cb_buf_take(&buf) : (cb_buf_free(&buf), NULL);
}

/* Finish the call with an execution-shaped result whose error is the install's failure. */
static void s_fail_install(s_install_t *in, const char *status, const char *evalue,
                           const char *output)
{
    cleanup_free char *tail = s_tail(output ? output : "");
    json_t *traceback = json_array();
    for (char *line = tail, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        json_array_append_new(traceback, json_string(line));
    }
    json_t *structured =
        json_pack("{s:s, s:s, s:s, s:s, s:n, s:s, s:s, s:[], s:{s:s, s:s, s:o}, s:[s]}",
                  "sandbox_id", in->sandbox_id, "session_id", in->repl_id, "execution_id",
                  in->command_id, "status", status, "execution_count", "stdout", "", "stderr", "",
                  "results", "error", "ename", "PackageInstallError", "evalue", evalue, "traceback",
                  traceback, "notes", "the code was not run: its packages could not be installed");
    cleanup_free char *text = cb_strdup_printf("PackageInstallError: %s\nThe code was not run.%s%s",
                                               evalue, tail[0] ? "\n\n" : "", tail);
    mcp_call_t *call = in->call;
    in->call = NULL;
    call->install = NULL;
    call->cancel = NULL;
    mcp_call_finish(call, json_pack("[o]", mcp_text_block(text)), structured, true);
}

/* ---- the install's end --------------------------------------------------------------------- */

static void s_free(s_install_t *in)
{
    json_decref(in->args);
    free(in);
}

/* On a fresh turn after on_done: forget the command (its sandbox may be gone), free the rest. */
static void s_forget(kg_gateway_t *gw, void *arg)
{
    s_install_t *in = arg;
    kg_sandbox_t *sb = kg_gateway_sandbox(gw, in->sandbox_id);
    kg_command_t *c = sb ? kg_sandbox_command(sb, in->command_id) : NULL;
    kg_command_forget(&c);
    s_free(in);
}

/* The installer succeeded: run the code in what is left of the time limit. */
static void s_run_code(s_install_t *in)
{
    mcp_call_t *call = in->call;
    in->call = NULL;
    call->install = NULL;
    call->cancel = NULL;
    cb_error_t err = {0};
    mcp_repl_t *repl = mcp_repl_find(in->server, NULL, in->repl_id, &err);
    if (!repl)
        return mcp_call_fail(call, "the packages were installed, but the code was not run: %s",
                             err.msg);
    int64_t left_ms = in->total_ms - (cb_now_ms() - in->started_ms);
    if (left_ms < 1)
        return mcp_call_fail(call,
                             "the packages were installed, but the time limit (%.3f s) ran "
                             "out before the code could run; give a larger timeout_s",
                             in->total_ms / 1000.0);
    json_auto_t *args = json_copy(in->args);
    json_object_set_new(args, "timeout_s", json_real((double)left_ms / 1000.0));
    cleanup_free char *names = s_names(in->args, " ");
    cleanup_free char *note =
        cb_strdup_printf("installed with %s first (%.1f s; its output went to progress "
                         "notifications): %s",
                         in->installer, (double)(cb_now_ms() - in->started_ms) / 1000.0, names);
    mcp_code_run_and_wait(call, repl, args, mcp_arg_str(args, "code", ""), note);
}

static void s_on_output(kg_command_t *c, const char *stream, const char *data, size_t len,
                        void *arg)
{
    s_install_t *in = arg;
    if (in->call)
        mcp_call_progress(in->call, data, len);
}

static void s_on_done(kg_command_t *c, json_t *result, void *arg)
{
    s_install_t *in = arg;
    kg_gateway_defer(in->gw, s_forget, in);
    if (!in->call)
        return; /* cancelled: the call is finished already */
    const char *status = json_string_value(json_object_get(result, "status")) ?: "failed";
    json_t *code = json_object_get(result, "exit_code");
    if (strcmp(status, "exited") == 0 && json_integer_value(code) == 0 && json_is_integer(code))
        return s_run_code(in);
    cleanup_free char *output =
        cb_strdup_printf("%s%s", json_string_value(json_object_get(result, "stdout")) ?: "",
                         json_string_value(json_object_get(result, "stderr")) ?: "");
    cleanup_free char *names = s_names(in->args, " ");
    cleanup_free char *evalue = NULL;
    if (strcmp(status, "timeout") == 0)
        evalue = cb_strdup_printf("%s install %s did not finish within the time limit "
                                  "(%.3f s)",
                                  in->installer, names, in->total_ms / 1000.0);
    else if (json_integer_value(code) == 127) /* bash: the installer is not there */
        evalue = cb_strdup_printf("%s is not installed on this server (scripts/install-deps.sh "
                                  "installs it)",
                                  in->installer);
    else if (json_is_integer(code))
        evalue = cb_strdup_printf("%s install %s failed with exit code %lld", in->installer, names,
                                  (long long)json_integer_value(code));
    else
        evalue = cb_strdup_printf(
            "%s install %s ended: %s%s%s", in->installer, names, status,
            json_array_size(json_object_get(result, "notes")) ? ": " : "",
            json_string_value(json_array_get(json_object_get(result, "notes"), 0)) ?: "");
    cleanup_free char *network = s_network_lines(in);
    if (network) { /* the policy's refusal is the reason: say it first */
        char *both =
            cb_strdup_printf("%s; the sandbox's network policy refused: %s", evalue, network);
        free(evalue);
        evalue = both;
    }
    s_fail_install(in, strcmp(status, "timeout") == 0 ? "timeout" : "error", evalue, output);
}

/* The client gave up: finish the call now (silently: it is cancelled) and kill the install,
 * whose on_done then only cleans up. */
static void s_cancel(mcp_call_t *call)
{
    s_install_t *in = call->install;
    call->install = NULL;
    in->call = NULL;
    call->cancel = NULL;
    mcp_call_finish(call, NULL, NULL, false);
    cb_error_t err = {0};
    kg_sandbox_t *sb = kg_gateway_sandbox(in->gw, in->sandbox_id);
    kg_command_t *c = sb ? kg_sandbox_command(sb, in->command_id) : NULL;
    if (c && kg_command_running(c) && kg_command_kill(c, &err) < 0)
        cb_warn("cancel package install %.8s: %s", in->command_id, err.msg);
}

/* ---- the start ----------------------------------------------------------------------------- */

void mcp_packages_install_then_run(mcp_call_t *call, mcp_repl_t *repl, json_t *args)
{
    const char *failure = mcp_repl_failure(repl);
    if (failure)
        return mcp_call_fail(call, "session %s cannot run code: %s", repl->id, failure);
    const char *language = repl->kernel ? kg_kernel_language(repl->kernel) : NULL;
    const char *canonical = language ? jp_language_canonical(language) : NULL;
    const char *script = NULL, *installer = NULL;
    if (canonical && strcmp(canonical, "python") == 0)
        script = s_pip_script, installer = "pip";
    else if (canonical &&
             (strcmp(canonical, "javascript") == 0 || strcmp(canonical, "typescript") == 0))
        script = s_npm_script, installer = "npm";
    if (!script)
        return mcp_call_fail(call,
                             "packages can be installed for python (pip) and for javascript "
                             "and typescript (npm), not for %s; install them with "
                             "command_execute instead",
                             language ? language : "this kernel");

    mcp_sandbox_t *sb = repl->sandbox;
    cleanup_free char *lines = s_names(args, "\n");
    cleanup_free char *words = s_names(args, " ");
    cleanup_free char *names_env = cb_strdup_printf("CELLBLOCK_PACKAGES=%s", lines);
    cleanup_free char *progress = cb_strdup_printf("[%s install %s]\n", installer, words);
    const char *const env[] = {names_env, NULL};

    s_install_t *in = cb_xcalloc(1, sizeof *in);
    in->gw = sb->server->gw;
    in->server = sb->server;
    in->args = json_incref(args);
    in->installer = installer;
    snprintf(in->sandbox_id, sizeof in->sandbox_id, "%s", kg_sandbox_id(sb->kg));
    snprintf(in->repl_id, sizeof in->repl_id, "%s", repl->id);
    in->started_ms = cb_now_ms();
    s_stamp(in->started_at, sizeof in->started_at);
    in->total_ms = (int)(mcp_arg_num(args, "timeout_s", sb->timeout_s) * 1000.0 + 0.5);
    if (in->total_ms < 1)
        in->total_ms = 1;
    /* The call waits on the install from here on (set first: nothing may see it half-made). */
    in->call = call;
    call->install = in;
    call->cancel = s_cancel;

    kg_command_opts_t opts = {.origin = "mcp",
                              .command = script,
                              .env = env,
                              .timeout_ms = in->total_ms,
                              .on_output = s_on_output,
                              .on_done = s_on_done,
                              .arg = in};
    cb_error_t err = {0};
    kg_command_t *c = kg_command_start(sb->kg, &opts, &err);
    if (!c) {
        call->install = NULL;
        call->cancel = NULL;
        s_free(in);
        return mcp_call_fail(call, "could not start the package install: %s", err.msg);
    }
    snprintf(in->command_id, sizeof in->command_id, "%s", kg_command_id(c));
    mcp_call_progress(call, progress, strlen(progress));
}
