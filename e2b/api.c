/* api.c: E2B's control plane (REST, E2B_API_URL) onto the fleet.
 *
 * (A first cut: POST /v2/sandboxes only. The rest of the control plane is being written.)
 */
#include <string.h>

#include "cb/alloc.h"
#include "cb/cleanup.h"
#include "e2b_private.h"

/* The template our fleet opens for an E2B template name. */
static const char *s_template(e2b_t *api, const char *asked)
{
    if (!asked || !*asked || strcmp(asked, "base") == 0)
        return api->base_template;
    if (strcmp(asked, "code-interpreter-v1") == 0 || strcmp(asked, "code-interpreter") == 0)
        return api->interpreter_template;
    return asked;
}

/* What create and connect answer: E2B's Sandbox. */
static json_t *s_sandbox_json(e2b_sandbox_t *sb)
{
    cleanup_free char *token = http_sandbox_token(sb->api->http, sb->id);
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:n}", "sandboxID", sb->id, "templateID",
                     sb->template_id, "clientID", "cellblock", "envdVersion", E2B_ENVD_VERSION,
                     "envdAccessToken", token, "trafficAccessToken", token, "domain");
}

static void s_create(e2b_t *api, http_request_t *req)
{
    size_t len = 0;
    const char *body = http_request_body(req, &len);
    json_error_t jerr;
    json_auto_t *in = json_loadb(body, len, 0, &jerr);
    if (!json_is_object(in))
        return e2b_respond_error(req, 400, "the body must be a JSON object");
    const char *asked = json_string_value(json_object_get(in, "templateID"));
    const char *tpl = s_template(api, asked);
    cb_error_t err = {0};
    fleet_sandbox_opts_t opts = {
        .template_name = tpl,
        .metadata = json_object_get(in, "metadata"),
        .on_end = e2b_sandbox_on_end,
        .arg = api,
    };
    kg_sandbox_t *kg = fleet_sandbox_open(api->fleet, &opts, &err);
    if (!kg)
        return e2b_respond_error(req, cb_error_kind_http_status(err.kind), err.msg);
    e2b_sandbox_t *sb = e2b_sandbox_add(api, kg, asked ? asked : "base", tpl, opts.metadata);
    json_auto_t *out = s_sandbox_json(sb);
    http_respond_json(req, 201, out, NULL);
}

void e2b_api_handle(e2b_t *api, http_request_t *req, const char *path)
{
    if (strcmp(path, "/v2/sandboxes") == 0 && strcmp(http_request_method(req), "POST") == 0)
        return s_create(api, req);
    cleanup_free char *msg = cb_strdup_printf("%s %s%s: not a route of the E2B API here (see "
                                              "docs/e2b.md)",
                                              http_request_method(req), E2B_PREFIX, path);
    e2b_respond_error(req, 404, msg);
}
