/* mcp_env.c: see mcp_env.h. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cb/util.h"
#include "fuzz.h"
#include "mcp_env.h"
#include "kg/gateway.h"

fuzz_mcp_env_t *fuzz_mcp_env(size_t max_message_bytes)
{
    static fuzz_mcp_env_t env;
    if (env.srv)
        return &env;
    cb_log_set_level(CB_LOG_OFF);
    const char *tmp = fuzz_tmpdir();
    char *none = cb_strdup_printf("%s/nothing-here", tmp);
    char *run = cb_strdup_printf("%s/run", tmp);
    char *state = cb_strdup_printf("%s/state", tmp);
    char *templates = cb_strdup_printf("%s/templates", tmp);
    char *python = cb_strdup_printf("%s/templates/python.json", tmp);
    FUZZ_CHECK(none && run && state && templates && python);
    setenv("CELLBLOCK_TEMPLATES_PATH", none, 1);
    setenv("XDG_CONFIG_HOME", none, 1);
    setenv("XDG_STATE_HOME", none, 1);
    unsetenv("CELLBLOCK_POOL");
    cb_error_t err = {0};
    FUZZ_CHECK(cb_mkdir_p(run, 0700, &err) == 0);
    FUZZ_CHECK(cb_mkdir_p(templates, 0700, &err) == 0);
    fuzz_write_file(python, (const uint8_t *)"{\"kernel\": \"python3\"}", 21);
    kg_config_t cfg = {.runtime_dir = run, .no_sandbox = true, .heartbeat_ms = -1};
    env.gw = kg_gateway_new(&cfg, &err);
    if (env.gw &&
        !fleet_new(env.gw, &(fleet_config_t){.templates_dir = templates, .state_dir = state}, &err))
        kg_gateway_destroy(&env.gw);
    if (!env.gw) {
        fprintf(stderr, "fuzz: kg_gateway_new: %s\n", err.msg);
        abort();
    }
    mcp_config_t mcfg;
    FUZZ_CHECK(mcp_config_from_env(&mcfg, &err) == 0);
    if (max_message_bytes)
        mcfg.max_message_bytes = max_message_bytes;
    env.srv = mcp_server_new(env.gw, &mcfg, &err);
    if (!env.srv) {
        fprintf(stderr, "fuzz: mcp_server_new: %s\n", err.msg);
        abort();
    }
    /* The server has seen its default template; from now on no sandbox can be opened. */
    env.template_path = python;
    fuzz_mcp_env_template(false);
    free(templates);
    free(none);
    free(run);
    free(state);
    return &env;
}

static int s_end_turn(zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    (void)arg;
    return -1; /* ends zloop_start */
}

void fuzz_mcp_env_turn(void)
{
    fuzz_mcp_env_t *env = fuzz_mcp_env(0);
    zloop_t *loop = kg_gateway_loop(env->gw);
    FUZZ_CHECK(zloop_timer(loop, 0, 1, s_end_turn, NULL) >= 0);
    zloop_start(loop);
}

void fuzz_mcp_env_template(bool present)
{
    static const char python_json[] = "{\"kernel\": \"python3\"}";
    fuzz_mcp_env_t *env = fuzz_mcp_env(0);
    if (present)
        fuzz_write_file(env->template_path, (const uint8_t *)python_json, strlen(python_json));
    else
        FUZZ_CHECK(unlink(env->template_path) == 0);
}

void fuzz_mcp_check_outgoing(json_t *msg)
{
    FUZZ_CHECK(json_is_object(msg));
    const char *version = json_string_value(json_object_get(msg, "jsonrpc"));
    FUZZ_CHECK(version && strcmp(version, "2.0") == 0);
    char *text = json_dumps(msg, JSON_COMPACT);
    FUZZ_CHECK(text);
    if (getenv("FUZZ_VERBOSE")) /* to see what a seed reaches */
        fprintf(stderr, "-> %.300s\n", text);
    free(text);
    if (json_object_get(msg, "method")) {
        FUZZ_CHECK(json_is_string(json_object_get(msg, "method")));
        FUZZ_CHECK(!json_object_get(msg, "id"));
        return;
    }
    json_t *id = json_object_get(msg, "id");
    /* A real only for an integer id beyond 64 bits, echoed as the nearest double (and then
     * only with an error: such a request is refused). */
    FUZZ_CHECK(json_is_string(id) || json_is_integer(id) || json_is_null(id) ||
               (json_is_real(id) && json_object_get(msg, "error")));
    json_t *result = json_object_get(msg, "result"), *error = json_object_get(msg, "error");
    FUZZ_CHECK(!result != !error);
    if (error) {
        FUZZ_CHECK(json_is_integer(json_object_get(error, "code")));
        FUZZ_CHECK(json_is_string(json_object_get(error, "message")));
    } else {
        FUZZ_CHECK(json_is_object(result));
    }
}
