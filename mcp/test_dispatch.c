/* test_dispatch.c: MCP's JSON-RPC dispatch (session.c), its requests to the client
 * (mcp_session_request) and the tool table's argument checks (tools.c), driven through
 * mcp_session_handle with an in-memory transport: no kernel, no sandbox, no process is ever
 * started.
 *
 * The server is real, on a real gateway that has no kernels: the gateway runs without
 * sandboxes, and the server's one template exists only while mcp_server_new reads it, so a
 * tool that gets past its argument check fails at kg_sandbox_open instead of starting
 * anything. Every message the session sends is kept, and each case checks the whole answer:
 * its envelope, its id, its code. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cb/cleanup.h"
#include "cb/tap.h"
#include "cb/util.h"
#include "mcp_private.h"
#include "kg/gateway.h"

/* The in-memory transport: what the session sent, in order. */
typedef struct {
    json_t *sent; /* array of messages */
} s_wire_t;

static int s_send(json_t *message, void *arg)
{
    s_wire_t *wire = arg;
    json_array_append(wire->sent, message);
    return 0;
}

/* Hand one line to the session; returns what it sent for it (caller owns it). */
static json_t *s_handle(mcp_session_t *s, s_wire_t *wire, const char *text)
{
    json_array_clear(wire->sent);
    mcp_session_handle(s, text, strlen(text));
    return json_deep_copy(wire->sent);
}

/* The one message sent for a request, or NULL when there was not exactly one. Borrowed. */
static json_t *s_only(json_t *sent)
{
    return json_array_size(sent) == 1 ? json_array_get(sent, 0) : NULL;
}

static int s_code(json_t *msg)
{
    return (int)json_integer_value(json_object_get(json_object_get(msg, "error"), "code"));
}

static const char *s_text_of(json_t *result)
{
    return json_string_value(
        json_object_get(json_array_get(json_object_get(result, "content"), 0), "text"));
}

/* A JSON-RPC error with code and id (NULL: id null). */
static void s_expect_error(mcp_session_t *s, s_wire_t *wire, const char *text, int code, json_t *id,
                           const char *name)
{
    json_auto_t *sent = s_handle(s, wire, text);
    json_t *m = s_only(sent);
    char line[160];
    snprintf(line, sizeof line, "%s: one answer", name);
    CB_EQ_SIZE(json_array_size(sent), 1, line);
    snprintf(line, sizeof line, "%s: JSON-RPC 2.0", name);
    CB_EQ_STR(json_string_value(json_object_get(m, "jsonrpc")), "2.0", line);
    snprintf(line, sizeof line, "%s: error code", name);
    CB_EQ_INT(s_code(m), code, line);
    snprintf(line, sizeof line, "%s: a message says why", name);
    CB_OK(json_is_string(json_object_get(json_object_get(m, "error"), "message")), "%s", line);
    snprintf(line, sizeof line, "%s: id echoed", name);
    json_t *null = json_null();
    CB_OK(json_equal(json_object_get(m, "id"), id ? id : null), "%s", line);
    json_decref(null);
    CB_EQ_SIZE(zlistx_size(s->calls), 0, "nothing stays in flight");
}

/* A result (not an error) with this id. Borrowed from sent. */
static json_t *s_expect_result(json_t *sent, json_t *id, const char *name)
{
    json_t *m = s_only(sent);
    char line[160];
    snprintf(line, sizeof line, "%s: one result", name);
    CB_OK(m && json_is_object(json_object_get(m, "result")) && !json_object_get(m, "error"), "%s",
          line);
    snprintf(line, sizeof line, "%s: id echoed", name);
    CB_OK(json_equal(json_object_get(m, "id"), id), "%s", line);
    return json_object_get(m, "result");
}

/* A tools/call that fails its argument check: a result with isError and a message naming the
 * tool and the argument (tool errors are results, so a model can read them). */
static void s_expect_tool_error(mcp_session_t *s, s_wire_t *wire, const char *text,
                                const char *mentions, const char *name)
{
    json_auto_t *sent = s_handle(s, wire, text);
    json_auto_t *id = json_integer(40);
    json_t *result = s_expect_result(sent, id, name);
    char line[160];
    snprintf(line, sizeof line, "%s: isError", name);
    CB_OK(json_is_true(json_object_get(result, "isError")), "%s", line);
    const char *why = s_text_of(result);
    snprintf(line, sizeof line, "%s: the message names '%s'", name, mentions);
    CB_OK(why && strstr(why, mentions), "%s (got: %s)", line, why ? why : "(none)");
    CB_EQ_SIZE(zlistx_size(s->calls), 0, "the call is finished");
}

static void s_before_initialize(mcp_session_t *s, s_wire_t *wire)
{
    json_auto_t *seven = json_integer(7);
    s_expect_error(s, wire, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/list\"}", -32600,
                   seven, "tools/list before initialize");
    json_auto_t *sent = s_handle(s, wire, "{\"jsonrpc\":\"2.0\",\"id\":\"p\",\"method\":\"ping\"}");
    json_auto_t *p = json_string("p");
    json_t *result = s_expect_result(sent, p, "ping before initialize");
    CB_EQ_SIZE(json_object_size(result), 0, "ping answers {}");
    json_auto_t *one = json_integer(1);
    s_expect_error(s, wire,
                   "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{}}", -32602,
                   one, "initialize without protocolVersion");
}

static void s_initialize(mcp_session_t *s, s_wire_t *wire)
{
    json_auto_t *sent =
        s_handle(s, wire,
                 "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"initialize\",\"params\":"
                 "{\"protocolVersion\":\"2025-06-18\",\"capabilities\":{},"
                 "\"clientInfo\":{\"name\":\"t\",\"version\":\"0\"}}}");
    json_auto_t *two = json_integer(2);
    json_t *result = s_expect_result(sent, two, "initialize");
    CB_EQ_STR(json_string_value(json_object_get(result, "protocolVersion")), "2025-06-18",
              "a version the server speaks is kept");
    CB_EQ_STR(json_string_value(json_object_get(json_object_get(result, "serverInfo"), "name")),
              MCP_SERVER_NAME, "serverInfo names the server");
    CB_OK(json_is_object(json_object_get(json_object_get(result, "capabilities"), "tools")),
          "tools capability");

    json_auto_t *again =
        s_handle(s, wire,
                 "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"initialize\",\"params\":"
                 "{\"protocolVersion\":\"1999-01-01\"}}");
    json_auto_t *three = json_integer(3);
    result = s_expect_result(again, three, "initialize with an unknown version");
    CB_EQ_STR(json_string_value(json_object_get(result, "protocolVersion")), MCP_PROTOCOL_LATEST,
              "an unknown version gets the latest");

    json_auto_t *none =
        s_handle(s, wire, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}");
    CB_EQ_SIZE(json_array_size(none), 0, "notifications/initialized gets no answer");
}

/* A new session of revision version (initialized), acting for who. */
static mcp_session_t *s_session_at(mcp_server_t *srv, s_wire_t *wire, const char *version,
                                   const cb_principal_t *who)
{
    mcp_session_t *s = mcp_session_new(srv, s_send, wire);
    mcp_session_set_principal(s, who);
    cleanup_free char *init =
        cb_strdup_printf("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":"
                         "{\"protocolVersion\":\"%s\",\"capabilities\":{}}}",
                         version);
    json_auto_t *sent = s_handle(s, wire, init);
    json_auto_t *one = json_integer(1);
    json_t *result = s_expect_result(sent, one, version);
    CB_EQ_STR(json_string_value(json_object_get(result, "protocolVersion")), version,
              "initialize negotiates the revision asked for");
    CB_OK(json_is_object(json_object_get(json_object_get(result, "capabilities"), "resources")),
          "%s: the resources capability", version);
    CB_OK(!json_object_get(json_object_get(result, "serverInfo"), "title") ==
              (strcmp(version, "2025-06-18") < 0),
          "%s: serverInfo.title only from 2025-06-18", version);
    return s;
}

/* Every released revision, and what each leaves out of tools/list. */
static void s_versions(mcp_server_t *srv, s_wire_t *wire)
{
    static const char *const versions[] = {"2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"};
    for (size_t i = 0; i < 4; i++) {
        mcp_session_t *s = s_session_at(srv, wire, versions[i], &CB_PRINCIPAL_LOCAL);
        json_auto_t *sent =
            s_handle(s, wire, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\"}");
        json_auto_t *two = json_integer(2);
        json_t *tools = json_object_get(s_expect_result(sent, two, "tools/list"), "tools");
        size_t outputs = 0, annotations = 0, titles = 0, k;
        json_t *t;
        json_array_foreach (tools, k, t) {
            outputs += json_object_get(t, "outputSchema") != NULL;
            annotations += json_object_get(t, "annotations") != NULL;
            titles += json_object_get(t, "title") != NULL;
        }
        bool modern = i >= 2;
        CB_OK(json_array_size(tools) > 0 && (outputs > 0) == modern && (titles > 0) == modern,
              "%s: outputSchema and title %s", versions[i], modern ? "listed" : "left out");
        CB_OK((annotations > 0) == (i >= 1), "%s: annotations %s", versions[i],
              i >= 1 ? "listed" : "left out");
        CB_OK(mcp_protocol_supported(versions[i]), "%s is supported over HTTP", versions[i]);
        mcp_session_destroy(&s);
    }
    CB_OK(!mcp_protocol_supported("2025-03-27") && !mcp_protocol_supported(""),
          "other versions are not");
}

/* resources/list, /read, /templates/list: the shapes and the errors, without a sandbox. */
static void s_resources(mcp_server_t *srv, s_wire_t *wire)
{
    const cb_principal_t bob = {"bob", false};
    mcp_session_t *s = s_session_at(srv, wire, "2025-11-25", &bob);
    static const char *const bad[] = {
        "file:///etc/passwd",
        "cellblock://",
        "cellblock://sandbox/",
        "cellblock://sandbox/00000000-0000-0000-0000-000000000000/files/x",
        "cellblock://sandbox/00000000-0000-0000-0000-000000000000123456789/files/x",
        "cellblock://sandbox/x/session/y/notebook.ipynb",
        "cellblock://sandbox/x/execution/y/result-1.html",
        "cellblock://audit/more",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cleanup_free char *req = cb_strdup_printf(
            "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"resources/read\",\"params\":"
            "{\"uri\":\"%s\"}}",
            bad[i]);
        json_auto_t *sent = s_handle(s, wire, req);
        json_t *error = json_object_get(s_only(sent), "error");
        CB_OK(json_integer_value(json_object_get(error, "code")) == -32002 &&
                  json_is_string(json_object_get(error, "message")) &&
                  strcmp(json_string_value(json_object_get(json_object_get(error, "data"), "uri")),
                         bad[i]) == 0,
              "resources/read %s: -32002 with the uri in data", bad[i]);
    }
    json_auto_t *five = json_integer(5);
    s_expect_error(s, wire,
                   "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"resources/read\","
                   "\"params\":{}}",
                   -32602, five, "resources/read without a uri");
    s_expect_error(s, wire,
                   "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"resources/list\","
                   "\"params\":{\"cursor\":\"x\"}}",
                   -32602, five, "resources/list with a cursor it never gave");
    json_auto_t *list =
        s_handle(s, wire, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"resources/list\"}");
    json_t *resources = json_object_get(s_expect_result(list, five, "resources/list"), "resources");
    CB_OK(json_array_size(resources) == 1 &&
              strcmp(json_string_value(json_object_get(json_array_get(resources, 0), "uri")),
                     "cellblock://audit") == 0,
          "resources/list with no sandbox: cellblock://audit alone");
    json_auto_t *audit = s_handle(s, wire,
                                  "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"resources/"
                                  "read\",\"params\":{\"uri\":\"cellblock://audit\"}}");
    json_t *contents = json_object_get(s_expect_result(audit, five, "the audit"), "contents");
    json_auto_t *records = json_loads(
        json_string_value(json_object_get(json_array_get(contents, 0), "text")) ?: "", 0, NULL);
    CB_OK(json_is_array(records), "cellblock://audit reads as a JSON array");
    json_auto_t *templates =
        s_handle(s, wire, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"resources/templates/list\"}");
    CB_EQ_SIZE(
        json_array_size(json_object_get(
            s_expect_result(templates, five, "resources/templates/list"), "resourceTemplates")),
        5, "five URI templates");
    mcp_session_destroy(&s);
}

static void s_envelope(mcp_session_t *s, s_wire_t *wire)
{
    s_expect_error(s, wire, "this is not json", -32700, NULL, "not JSON");
    json_auto_t *nine = json_integer(9);
    s_expect_error(s, wire, "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":", -32700, NULL,
                   "cut short (the id cannot be read from a partial object)");
    s_expect_error(s, wire, "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]", -32600, NULL,
                   "a batch");
    s_expect_error(s, wire, "42", -32600, NULL, "a number");
    s_expect_error(s, wire, "{\"jsonrpc\":\"1.0\",\"id\":9,\"method\":\"ping\"}", -32600, nine,
                   "jsonrpc 1.0");
    s_expect_error(s, wire, "{\"id\":9,\"method\":\"ping\"}", -32600, nine, "no jsonrpc member");
    s_expect_error(s, wire, "{\"jsonrpc\":\"2.0\",\"id\":9}", -32600, nine, "no method");
    s_expect_error(s, wire, "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"ping\",\"params\":[1]}",
                   -32600, nine, "params an array");
    s_expect_error(s, wire, "{\"jsonrpc\":\"2.0\",\"id\":{\"a\":1},\"method\":\"ping\"}", -32600,
                   NULL, "id an object (answered with id null)");
    s_expect_error(s, wire, "{\"jsonrpc\":\"2.0\",\"id\":1.5,\"method\":\"ping\"}", -32600, NULL,
                   "id a real");
    json_auto_t *sid = json_string("req-\xc3\xa9");
    s_expect_error(s, wire, "{\"jsonrpc\":\"2.0\",\"id\":\"req-\xc3\xa9\",\"method\":\"no/such\"}",
                   -32601, sid, "unknown method, string id");
    json_auto_t *big = json_integer(9007199254740993LL); /* beyond a double's exact integers */
    s_expect_error(s, wire, "{\"jsonrpc\":\"2.0\",\"id\":9007199254740993,\"method\":\"no/such\"}",
                   -32601, big, "unknown method, a large integer id kept exact");

    json_auto_t *quiet =
        s_handle(s, wire, "{\"jsonrpc\":\"2.0\",\"method\":\"no/such/notification\"}");
    CB_EQ_SIZE(json_array_size(quiet), 0, "an unknown notification gets no answer");
    json_auto_t *cancel = s_handle(s, wire,
                                   "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\","
                                   "\"params\":{\"requestId\":12345}}");
    CB_EQ_SIZE(json_array_size(cancel), 0, "cancelling a call that is not in flight: no answer");
    json_auto_t *response = s_handle(s, wire, "{\"jsonrpc\":\"2.0\",\"id\":5,\"result\":{}}");
    CB_EQ_SIZE(json_array_size(response), 0, "a response from the client gets no answer");
}

static void s_methods(mcp_session_t *s, s_wire_t *wire)
{
    json_auto_t *sent =
        s_handle(s, wire, "{\"jsonrpc\":\"2.0\",\"id\":20,\"method\":\"tools/list\"}");
    json_auto_t *twenty = json_integer(20);
    json_t *result = s_expect_result(sent, twenty, "tools/list");
    json_t *tools = json_object_get(result, "tools");
    CB_EQ_SIZE(json_array_size(tools), json_array_size(json_object_get(s->server->tools, "tools")),
               "tools/list lists the whole table");
    bool shaped = json_array_size(tools) > 0, has_execute = false;
    size_t i;
    json_t *tool;
    json_array_foreach (tools, i, tool) {
        const char *name = json_string_value(json_object_get(tool, "name"));
        shaped &= name && json_is_object(json_object_get(tool, "inputSchema")) &&
                  json_is_string(json_object_get(tool, "description"));
        shaped &= name && mcp_tool_find(name) && mcp_tool_index(mcp_tool_find(name)) == i;
        has_execute |= name && strcmp(name, "code_execute") == 0;
    }
    CB_OK(shaped, "every tool has a name, a description and an inputSchema, in table order");
    CB_OK(has_execute, "code_execute is listed");

    json_auto_t *level = s_handle(s, wire,
                                  "{\"jsonrpc\":\"2.0\",\"id\":21,\"method\":\"logging/setLevel\","
                                  "\"params\":{\"level\":\"warning\"}}");
    json_auto_t *twentyone = json_integer(21);
    s_expect_result(level, twentyone, "logging/setLevel warning");
    json_auto_t *twentytwo = json_integer(22);
    s_expect_error(s, wire,
                   "{\"jsonrpc\":\"2.0\",\"id\":22,\"method\":\"logging/"
                   "setLevel\",\"params\":{\"level\":\"loud\"}}",
                   -32602, twentytwo, "logging/setLevel with an unknown level");
    json_auto_t *quiet = s_handle(s, wire,
                                  "{\"jsonrpc\":\"2.0\",\"id\":23,\"method\":\"logging/setLevel\","
                                  "\"params\":{\"level\":\"emergency\"}}");
    json_auto_t *twentythree = json_integer(23);
    s_expect_result(quiet, twentythree, "logging/setLevel emergency (quiet again)");
}

static void s_tools_call(mcp_session_t *s, s_wire_t *wire)
{
    json_auto_t *thirty = json_integer(30);
    s_expect_error(s, wire,
                   "{\"jsonrpc\":\"2.0\",\"id\":30,\"method\":\"tools/call\",\"params\":{}}",
                   -32602, thirty, "tools/call without a name");
    s_expect_error(
        s, wire,
        "{\"jsonrpc\":\"2.0\",\"id\":30,\"method\":\"tools/call\",\"params\":{\"name\":7}}", -32602,
        thirty, "tools/call with a name that is not a string");
    s_expect_error(s, wire,
                   "{\"jsonrpc\":\"2.0\",\"id\":30,\"method\":\"tools/"
                   "call\",\"params\":{\"name\":\"no_such_tool\"}}",
                   -32602, thirty, "tools/call of an unknown tool");

    /* Argument checks: each is a tool result with isError, naming what is wrong. */
    s_expect_tool_error(s, wire,
                        "{\"jsonrpc\":\"2.0\",\"id\":40,\"method\":\"tools/call\",\"params\":"
                        "{\"name\":\"code_execute\",\"arguments\":{}}}",
                        "code", "code_execute without its required code");
    s_expect_tool_error(s, wire,
                        "{\"jsonrpc\":\"2.0\",\"id\":40,\"method\":\"tools/call\",\"params\":"
                        "{\"name\":\"code_execute\",\"arguments\":{\"code\":5}}}",
                        "code", "code_execute with a number for code");
    s_expect_tool_error(
        s, wire,
        "{\"jsonrpc\":\"2.0\",\"id\":40,\"method\":\"tools/call\",\"params\":"
        "{\"name\":\"code_execute\",\"arguments\":{\"code\":\"1\",\"no_such_arg\":1}}}",
        "no_such_arg", "code_execute with an argument it does not take");
    s_expect_tool_error(s, wire,
                        "{\"jsonrpc\":\"2.0\",\"id\":40,\"method\":\"tools/call\",\"params\":"
                        "{\"name\":\"code_execute\",\"arguments\":[1]}}",
                        "code_execute", "arguments that are not an object");
    s_expect_tool_error(
        s, wire,
        "{\"jsonrpc\":\"2.0\",\"id\":40,\"method\":\"tools/call\",\"params\":"
        "{\"name\":\"code_execute\",\"arguments\":{\"code\":\"1\",\"timeout_s\":-1}}}",
        "timeout_s", "code_execute with a timeout below its minimum");

    /* Past the check, a tool that needs a sandbox fails at kg_sandbox_open: this server has no
     * template, so nothing starts. Still one result, with isError. */
    s_expect_tool_error(s, wire,
                        "{\"jsonrpc\":\"2.0\",\"id\":40,\"method\":\"tools/call\",\"params\":"
                        "{\"name\":\"code_execute\",\"arguments\":{\"code\":\"1\"}}}",
                        "template", "code_execute with no sandbox to be had");
}

/* code_execute's `packages` (packages.c): what is refused before anything starts, and where the
 * argument is taken. */
static void s_packages(mcp_session_t *s, s_wire_t *wire)
{
    static const struct {
        const char *packages; /* JSON */
        bool ok;
        const char *mentions;
    } cases[] = {
        {"[]", true, NULL},
        {"[\"requests\", \"numpy==1.26.4\", \"lodash@4\", \"pkg[extra]>=1\"]", true, NULL},
        {"[\"--index-url=https://evil.example/simple\"]", false, "starts with '-'"},
        {"[\"-r\", \"req.txt\"]", false, "starts with '-'"},
        {"[\"a b\"]", false, "whitespace or a control character"},
        {"[\"a\\u0000b\"]", false, "whitespace or a control character"},
        {"[\"a\\u007fb\"]", false, "whitespace or a control character"},
        {"[\"ok\", \"x\\ny\"]", false, "packages[1]"},
        {"[\"\"]", false, "1 to 256 bytes"},
        {"[null]", false, "must be a string"},
        {"\"requests\"", false, "must be an array"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cleanup_free char *text =
            cb_strdup_printf("{\"code\": \"1\", \"packages\": %s}", cases[i].packages);
        json_error_t jerr;
        json_auto_t *args = json_loads(text, JSON_ALLOW_NUL, &jerr);
        char msg[512] = "";
        int rc = args ? mcp_packages_check(args, msg, sizeof msg) : -2;
        if (cases[i].ok)
            CB_OK(rc == 0, "packages %s is taken (%s)", cases[i].packages, msg);
        else
            CB_OK(rc == -1 && strstr(msg, cases[i].mentions), "packages %s is refused: %s",
                  cases[i].packages, msg);
    }
    cleanup_free char *many = cb_xstrdup("[\"p\"");
    for (int i = 0; i < 64; i++) {
        char *more = cb_strdup_printf("%s, \"p\"", many);
        free(many);
        many = more;
    }
    cleanup_free char *text = cb_strdup_printf("{\"packages\": %s]}", many);
    json_auto_t *args = json_loads(text, 0, NULL);
    char msg[512] = "";
    CB_OK(args && mcp_packages_check(args, msg, sizeof msg) == -1 && strstr(msg, "at most 64"),
          "65 packages are refused: %s", msg);

    /* Refused by code_execute and run_code before a sandbox is looked for (this server has
     * none); code_execute_async does not take them. */
    s_expect_tool_error(s, wire,
                        "{\"jsonrpc\":\"2.0\",\"id\":40,\"method\":\"tools/call\",\"params\":"
                        "{\"name\":\"code_execute\",\"arguments\":{\"code\":\"1\",\"packages\":"
                        "[\"--index-url=x\"]}}}",
                        "starts with '-'", "code_execute refuses an option as a package");
    s_expect_tool_error(s, wire,
                        "{\"jsonrpc\":\"2.0\",\"id\":40,\"method\":\"tools/call\",\"params\":"
                        "{\"name\":\"run_code\",\"arguments\":{\"code\":\"1\",\"packages\":"
                        "[\"a b\"]}}}",
                        "whitespace", "run_code refuses a name with whitespace");
    s_expect_tool_error(s, wire,
                        "{\"jsonrpc\":\"2.0\",\"id\":40,\"method\":\"tools/call\",\"params\":"
                        "{\"name\":\"code_execute_async\",\"arguments\":{\"code\":\"1\","
                        "\"packages\":[\"x\"]}}}",
                        "unknown argument 'packages'", "code_execute_async takes no packages");
}

/* Write <dir>/<name>/kernel.json for language, requiring path (package pkg). */
static void s_spec(const char *dir, const char *name, const char *language, const char *path,
                   const char *pkg)
{
    cleanup_free char *sub = cb_strdup_printf("%s/%s", dir, name);
    cleanup_free char *file = cb_strdup_printf("%s/kernel.json", sub);
    cleanup_free char *json = cb_strdup_printf(
        "{\"argv\": [\"p\"], \"display_name\": \"d\", \"language\": \"%s\", "
        "\"metadata\": {\"cellblock\": {\"requires\": [{\"path\": \"%s\", \"package\": \"%s\"}]}}}",
        language, path, pkg);
    cb_error_t err = {0};
    if (cb_mkdir_p(sub, 0700, &err) < 0 || cb_write_file(file, json, strlen(json), 0600, &err) < 0)
        CB_DIAG("writing %s: %s", file, err.msg);
}

/* code_execute's `language`: the alias table, the main kernel first, the requirements, and
 * errors that say what runs here (languages.c). */
static void s_languages(const char *dir)
{
    cleanup_free char *kernels = cb_strdup_printf("%s/kernels", dir);
    s_spec(kernels, "zz-node", "javascript", "/bin/sh", "nodejs");
    s_spec(kernels, "aa-node-broken", "javascript", "/nonexistent/node", "nodejs");
    s_spec(kernels, "zz-go", "go", "/nonexistent/cellblock/go", "golang-go");
    s_spec(kernels, "zz-cpp", "C++", "/bin/sh", "g++");
    cb_error_t err = {0};
    cleanup_free char *js = mcp_kernel_for_language(kernels, "Node", NULL, NULL, &err);
    CB_EQ_STR(js, "zz-node", "'Node' is javascript: the spec whose requirements are met");
    cleanup_free char *cpp = mcp_kernel_for_language(kernels, "cpp", NULL, NULL, &err);
    CB_EQ_STR(cpp, "zz-cpp", "'cpp' is the spec whose language says C++");
    cleanup_free char *main_js =
        mcp_kernel_for_language(kernels, "js", "my-main", "JavaScript", &err);
    CB_EQ_STR(main_js, "my-main", "the main kernel serves its own language");

    cleanup_free char *go = mcp_kernel_for_language(kernels, "golang", NULL, NULL, &err);
    CB_OK(!go && err.kind == CB_ERR_UNAVAILABLE && strstr(err.msg, "golang-go") &&
              strstr(err.msg, "/nonexistent/cellblock/go") && strstr(err.msg, "javascript") &&
              strstr(err.msg, "c++"),
          "a language whose toolchain is missing names the package and what runs: %s", err.msg);
    cleanup_free char *cobol = mcp_kernel_for_language(kernels, "cobol", NULL, NULL, &err);
    CB_OK(!cobol && err.kind == CB_ERR_INVALID && strstr(err.msg, "'cobol'") &&
              strstr(err.msg, "languages that run here: ") && strstr(err.msg, "golang"),
          "an unknown language lists what runs here and every name: %s", err.msg);
    cleanup_free char *ruby = mcp_kernel_for_language(kernels, "rb", NULL, NULL, &err);
    CB_OK(!ruby && err.kind == CB_ERR_NOT_FOUND && strstr(err.msg, "ruby") &&
              strstr(err.msg, "javascript"),
          "a known language without any kernel says so: %s", err.msg);
}

/* ---- requests to the client (mcp_session_request) ---------------------------------------- */

typedef struct {
    int calls;
    bool session_set;
    json_t *result, *error; /* copies of the last ones */
    int done;               /* for kg_gateway_run_until */
} s_answer_t;

static void s_on_response(mcp_session_t *s, json_t *result, json_t *error, void *arg)
{
    s_answer_t *a = arg;
    a->calls++;
    a->session_set = s != NULL;
    json_decref(a->result);
    json_decref(a->error);
    a->result = result ? json_deep_copy(result) : NULL;
    a->error = error ? json_deep_copy(error) : NULL;
    a->done = 1;
}

static void s_requests(mcp_server_t *srv, kg_gateway_t *gw, mcp_session_t *plain)
{
    CB_OK(!mcp_session_client_can(plain, "elicitation"),
          "a client that declared no capabilities cannot be asked");
    s_wire_t wire = {.sent = json_array()};
    mcp_session_t *s = mcp_session_new(srv, s_send, &wire);
    json_auto_t *init =
        s_handle(s, &wire,
                 "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":"
                 "{\"protocolVersion\":\"2025-06-18\",\"capabilities\":{\"elicitation\":{}},"
                 "\"clientInfo\":{\"name\":\"t\",\"version\":\"0\"}}}");
    CB_OK(mcp_session_client_can(s, "elicitation"), "a client that declared elicitation can");
    CB_OK(!mcp_session_client_can(s, "sampling"), "but not what it did not declare");

    s_answer_t a = {0};
    json_array_clear(wire.sent);
    CB_OK(mcp_session_request(s, "elicitation/create", json_pack("{s:s}", "message", "q?"), 60000,
                              s_on_response, &a) == 0,
          "a request is sent");
    json_t *m = s_only(wire.sent);
    CB_EQ_STR(json_string_value(json_object_get(m, "method")), "elicitation/create",
              "with its method");
    CB_EQ_STR(json_string_value(json_object_get(m, "id")), "cellblock-1", "and an id of ours");
    CB_EQ_STR(json_string_value(json_object_get(json_object_get(m, "params"), "message")), "q?",
              "and its params");

    json_auto_t *stray =
        s_handle(s, &wire,
                 "{\"jsonrpc\":\"2.0\",\"id\":\"cellblock-9\",\"result\":{\"action\":\"accept\"}}");
    CB_OK(json_array_size(stray) == 0 && a.calls == 0,
          "a response to no request of ours is dropped, unanswered");
    json_auto_t *numeric =
        s_handle(s, &wire, "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"action\":\"accept\"}}");
    CB_OK(json_array_size(numeric) == 0 && a.calls == 0, "nor does a numeric id match ours");
    json_auto_t *answer =
        s_handle(s, &wire,
                 "{\"jsonrpc\":\"2.0\",\"id\":\"cellblock-1\",\"result\":{\"action\":\"accept\"}}");
    CB_OK(json_array_size(answer) == 0 && a.calls == 1 && a.session_set && !a.error &&
              json_is_string(json_object_get(a.result, "action")),
          "the response reaches the function once, with its result");
    json_auto_t *twice =
        s_handle(s, &wire,
                 "{\"jsonrpc\":\"2.0\",\"id\":\"cellblock-1\",\"result\":{\"action\":\"accept\"}}");
    CB_OK(a.calls == 1, "a second response to it is dropped");
    json_decref(a.result);

    a = (s_answer_t){0};
    mcp_session_request(s, "elicitation/create", NULL, 60000, s_on_response, &a);
    json_auto_t *err =
        s_handle(s, &wire,
                 "{\"jsonrpc\":\"2.0\",\"id\":\"cellblock-2\",\"error\":{\"code\":-1,"
                 "\"message\":\"no\"}}");
    CB_OK(a.calls == 1 && !a.result && json_is_object(a.error), "an error response: its error");
    json_decref(a.error);

    a = (s_answer_t){0};
    mcp_session_request(s, "elicitation/create", NULL, 20, s_on_response, &a);
    kg_gateway_run_until(gw, &a.done, 5000);
    CB_OK(a.calls == 1 && !a.result && !a.error, "no answer in time: the function, with nothing");

    int refused = 0;
    s_answer_t many[40] = {{0}};
    for (int i = 0; i < 40; i++)
        refused += mcp_session_request(s, "x", NULL, 60000, s_on_response, &many[i]) < 0;
    CB_EQ_INT(refused, 8, "at most 32 requests wait for answers; more are refused");

    mcp_session_destroy(&s);
    int ended = 0;
    for (int i = 0; i < 32; i++)
        ended += many[i].calls == 1 && !many[i].session_set && !many[i].result && !many[i].error;
    CB_EQ_INT(ended, 32, "the session ends: every waiting request's function runs, with nothing");
    json_decref(wire.sent);
}

int main(void)
{
    cb_log_set_level(CB_LOG_OFF);
    char dir[] = "/tmp/cb-test-dispatch-XXXXXX";
    if (!mkdtemp(dir))
        CB_SKIP_ALL("no temporary directory");
    cleanup_free char *none = cb_strdup_printf("%s/nothing-here", dir);
    cleanup_free char *run = cb_strdup_printf("%s/run", dir);
    cleanup_free char *state = cb_strdup_printf("%s/state", dir);
    cleanup_free char *templates = cb_strdup_printf("%s/templates", dir);
    cleanup_free char *python = cb_strdup_printf("%s/python.json", templates);
    setenv("CELLBLOCK_TEMPLATES_PATH", none, 1);
    setenv("XDG_CONFIG_HOME", none, 1);
    setenv("XDG_STATE_HOME", none, 1);
    unsetenv("CELLBLOCK_POOL");
    cb_error_t err = {0};
    CB_OK(cb_mkdir_p(run, 0700, &err) == 0 && cb_mkdir_p(templates, 0700, &err) == 0,
          "directories");
    CB_OK(cb_write_file(python, "{\"kernel\": \"python3\"}", 21, 0600, &err) == 0,
          "a template for the start");

    kg_config_t cfg = {.runtime_dir = run, .no_sandbox = true, .heartbeat_ms = -1};
    kg_gateway_t *gw = kg_gateway_new(&cfg, &err);
    CB_OK(gw, "a gateway with no kernels: %s", err.msg);
    CB_OK(!gw || fleet_new(gw, &(fleet_config_t){.templates_dir = templates, .state_dir = state},
                           &err),
          "its fleet: %s", err.msg);
    mcp_config_t mcfg;
    CB_OK(mcp_config_from_env(&mcfg, &err) == 0, "configuration from the environment");
    mcp_server_t *srv = gw ? mcp_server_new(gw, &mcfg, &err) : NULL;
    CB_OK(srv, "an MCP server on it: %s", err.msg);
    if (!srv) {
        kg_gateway_destroy(&gw);
        return cb_tap_done();
    }
    unlink(python); /* from now on no sandbox can be opened */

    s_wire_t wire = {.sent = json_array()};
    mcp_session_t *s = mcp_session_new(srv, s_send, &wire);
    s_before_initialize(s, &wire);
    s_initialize(s, &wire);
    s_envelope(s, &wire);
    s_methods(s, &wire);
    s_tools_call(s, &wire);
    s_packages(s, &wire);
    s_languages(dir);
    s_requests(srv, gw, s);
    s_versions(srv, &wire);
    s_resources(srv, &wire);
    mcp_session_destroy(&s);
    CB_OK(!s, "mcp_session_destroy nulls the pointer");

    json_decref(wire.sent);
    mcp_server_destroy(&srv);
    kg_gateway_destroy(&gw);
    cb_rm_rf(dir, &err);
    return cb_tap_done();
}
