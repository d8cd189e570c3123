/* cmd_serve.c: `cellblock serve`, the main job: one HTTP server (http/) on the gateway's loop
 * carrying MCP Streamable HTTP at /mcp (mcp/) and the Jupyter Kernel Gateway API at /api
 * (jupyter-api/) and E2B's API at /e2b (e2b/), and the page at / (web/), so assistants, JupyterLab and programs written
 * for E2B reach the same kernels. Listens on loopback
 * unless told otherwise; every request needs the token (CELLBLOCK_TOKEN, or one generated and
 * printed at start) unless --no-auth, which only a loopback address may use; --tokens names
 * more tokens, each a tenant's (docs/security.md, "Tenants"). The MCP settings
 * are the same CELLBLOCK_* variables `cellblock mcp` reads. Runs until SIGINT or SIGTERM. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "e2b/e2b.h"
#include "http/http.h"
#include "japi/japi.h"
#include "kg/gateway.h"
#include "web/web.h"

#define S_MAX_ALLOWED 16

enum {
    S_OPT_LISTEN = 512,
    S_OPT_NO_AUTH,
    S_OPT_ALLOW_ORIGIN,
    S_OPT_ALLOW_HOST,
    S_OPT_TOKENS,
    S_OPT_LAB_URL
};

typedef struct {
    http_config_t http;
    const char *origins[S_MAX_ALLOWED + 1];
    const char *hosts[S_MAX_ALLOWED + 1];
    size_t n_origins, n_hosts;
    const char *lab_url;          /* --lab-url or CELLBLOCK_LAB_URL: the page links kernels there */
    const char *tokens_path;      /* --tokens, or CELLBLOCK_TOKENS_FILE */
    http_tenant_token_t *tenants; /* read from tokens_path (http_tokens_load); owned */
} s_options_t;

static int s_add_allowed(const char **list, size_t *n, const char *value, const char *flag)
{
    if (*n == S_MAX_ALLOWED)
        return cli_usage_error("serve", "%s may be given at most %d times", flag, S_MAX_ALLOWED);
    list[(*n)++] = value;
    return 0;
}

static int s_parse(int argc, char **argv, s_options_t *o, kg_config_t *cfg, int *verbose)
{
    static const struct option options[] = {
        {"listen", required_argument, NULL, S_OPT_LISTEN},
        {"no-auth", no_argument, NULL, S_OPT_NO_AUTH},
        {"allow-origin", required_argument, NULL, S_OPT_ALLOW_ORIGIN},
        {"allow-host", required_argument, NULL, S_OPT_ALLOW_HOST},
        {"lab-url", required_argument, NULL, S_OPT_LAB_URL},
        {"tokens", required_argument, NULL, S_OPT_TOKENS},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        CLI_SANDBOX_OPTIONS,
        {NULL, 0, NULL, 0}};
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "vh", options, NULL)) != -1) {
        switch (opt) {
        case S_OPT_LISTEN: o->http.listen = optarg; break;
        case S_OPT_NO_AUTH: o->http.no_auth = true; break;
        case S_OPT_TOKENS: o->tokens_path = optarg; break;
        case S_OPT_ALLOW_ORIGIN:
            if (s_add_allowed(o->origins, &o->n_origins, optarg, "--allow-origin") != 0)
                return CLI_USAGE;
            break;
        case S_OPT_ALLOW_HOST:
            if (s_add_allowed(o->hosts, &o->n_hosts, optarg, "--allow-host") != 0)
                return CLI_USAGE;
            break;
        case S_OPT_LAB_URL: o->lab_url = optarg; break;
        case 'v': *verbose = 1; break;
        case 'h':
            return cli_usage_error("serve",
                                   "serves MCP and the Jupyter API over HTTP (see docs/http.md)\n"
                                   "  --tokens FILE|DIR  tenants' tokens, 'TENANT TOKEN [admin]' "
                                   "per line, mode 0600\n"
                                   "                     (also CELLBLOCK_TOKENS_FILE; "
                                   "docs/security.md, \"Tenants\")");
        default:
            if (cli_sandbox_flag("serve", opt, optarg, cfg) != 0)
                return CLI_USAGE;
        }
    }
    if (optind != argc)
        return cli_usage_error("serve", "takes no arguments");
    const char *token = getenv("CELLBLOCK_TOKEN");
    if (token && token[0] && !http_token_text_ok(token, strlen(token)))
        return cli_usage_error("serve", "CELLBLOCK_TOKEN must be 16 to 256 printable characters "
                                        "without spaces");
    o->http.token = token;
    if (!o->lab_url)
        o->lab_url = getenv("CELLBLOCK_LAB_URL");
    if (o->lab_url && o->lab_url[0] && strncmp(o->lab_url, "http://", 7) != 0 &&
        strncmp(o->lab_url, "https://", 8) != 0)
        return cli_usage_error("serve", "--lab-url (CELLBLOCK_LAB_URL) must be an http:// or "
                                        "https:// URL");
    if (!o->tokens_path) {
        const char *tokens_file = getenv("CELLBLOCK_TOKENS_FILE");
        o->tokens_path = tokens_file && *tokens_file ? tokens_file : NULL;
    }
    if (o->tokens_path) {
        cb_error_t err = {0};
        if (http_tokens_load(o->tokens_path, &o->tenants, &o->http.tenant_count, &err) < 0) {
            fprintf(stderr, "cellblock serve: %s\n", err.msg);
            return CLI_FAILED;
        }
        o->http.tenants = o->tenants;
    }
    /* How fast a client must send its request head (tests shorten it). */
    const char *head_ms = getenv("CELLBLOCK_HTTP_HEAD_TIMEOUT_MS");
    if (head_ms && *head_ms)
        o->http.head_timeout_ms = atoi(head_ms);
    o->http.allowed_origins = o->origins;
    o->http.allowed_hosts = o->hosts;
    return CLI_OK;
}

static void s_banner(const http_server_t *http, bool token_from_env, size_t tenant_count,
                     const char *tokens_path)
{
    const char *url = http_server_url(http);
    const char *token = http_server_token(http);
    fprintf(stderr, "cellblock serve: listening on %s\n", url);
    fprintf(stderr, "  page: %s/\n", url);
    if (tenant_count)
        fprintf(stderr, "  tenants: %zu token%s from %s\n", tenant_count,
                tenant_count == 1 ? "" : "s", tokens_path);
    if (token)
        fprintf(stderr, "  token: %s  (%s)\n", token,
                token_from_env ? "from CELLBLOCK_TOKEN"
                               : "generated for this run; set CELLBLOCK_TOKEN to keep one");
    else
        fprintf(stderr, "  no token: --no-auth (development only)\n");
    const char *auth = token ? token : "";
    fprintf(stderr,
            "\n  MCP (Streamable HTTP): %s/mcp\n"
            "    in an MCP client's configuration:\n"
            "      {\"mcpServers\": {\"cellblock\": {\"type\": \"http\", \"url\": "
            "\"%s/mcp\"%s%s%s}}}\n",
            url, url, token ? ", \"headers\": {\"Authorization\": \"Bearer " : "", auth,
            token ? "\"}" : "");
    fprintf(stderr,
            "\n  JupyterLab, on the same kernels:\n"
            "      jupyter lab --gateway-url=%s%s%s\n"
            "    (Jupyter Kernel Gateway API at %s/api; WebSockets take ?token= as well)\n",
            url, token ? " --GatewayClient.auth_token=" : "", auth, url);
    fprintf(stderr,
            "\n  E2B's SDKs (docs/e2b.md), unchanged:\n"
            "      E2B_API_URL=%s/e2b E2B_SANDBOX_URL=%s/e2b/sandbox E2B_API_KEY=%s\n"
            "\nCtrl-C stops it.\n",
            url, url, token ? auth : "anything");
}

static int s_serve(s_options_t *o, kg_config_t *cfg, int verbose);

int cli_cmd_serve(int argc, char **argv)
{
    s_options_t o = {0};
    kg_config_t cfg = {0};
    int verbose = 0;
    int rc = s_parse(argc, argv, &o, &cfg, &verbose);
    if (rc != CLI_OK)
        return rc;
    rc = s_serve(&o, &cfg, verbose);
    http_tokens_free(&o.tenants, o.http.tenant_count);
    return rc;
}

static int s_serve(s_options_t *o, kg_config_t *cfg, int verbose)
{
    int rc;
    mcp_config_t mcfg;
    kg_gateway_t *gw = NULL;
    mcp_server_t *srv = NULL;
    rc = cli_mcp_open("serve", cfg, verbose, &mcfg, &gw, &srv);
    if (rc != CLI_OK)
        return rc;
    signal(SIGPIPE, SIG_IGN); /* a client gone mid-write is an error return, not a death */
    /* czmq installs the SIGINT/SIGTERM handler that sets zsys_interrupted (which ends the run
     * below) only when it first makes a socket, i.e. with the first kernel. Until then a
     * SIGTERM (systemctl stop just after a start, with no pool) killed the server outright. */
    zsys_init();

    cb_error_t err = {0};
    mcp_http_t *mcp_http = NULL;
    japi_t *api = NULL;
    e2b_t *e2b = NULL;
    web_t *web = NULL;
    http_server_t *http = http_server_new(kg_gateway_loop(gw), &o->http, &err);
    if (http)
        mcp_http = mcp_http_new(srv, http, &(mcp_http_opts_t){.path = "/mcp"}, &err);
    if (mcp_http)
        api = japi_new(gw, http,
                       &(japi_opts_t){.template_name = mcfg.template_name, .kernel_timeout_s = -1},
                       &err);
    if (api)
        e2b = e2b_new(gw, http, NULL, &err);
    if (e2b)
        web = web_new(gw, http, &(web_opts_t){.lab_url = o->lab_url}, &err);
    /* Forwards: E2B's sandboxes (every port) first, then MCP's (exposed ports). */
    if (web && e2b_ports_on(e2b, &err) == 0 && mcp_server_ports_on(srv, http, &err) == 0 &&
        http_server_start(http, &err) == 0) {
        s_banner(http, o->http.token && o->http.token[0], o->http.tenant_count, o->tokens_path);
        cb_info("serving on %s", http_server_url(http));
        static const volatile int never = 0;
        kg_gateway_run_until(gw, &never, -1); /* until SIGINT or SIGTERM (zsys_interrupted) */
        rc = CLI_OK;
    } else {
        fprintf(stderr, "cellblock serve: %s\n", err.msg);
        rc = CLI_FAILED;
    }
    /* Connections first, so nothing arrives for the objects freed next. */
    mcp_server_ports_on(srv, NULL, NULL);
    http_server_destroy(&http);
    e2b_destroy(&e2b);
    web_destroy(&web);
    japi_destroy(&api);
    mcp_http_destroy(&mcp_http);
    mcp_server_destroy(&srv);
    kg_gateway_destroy(&gw);
    return rc;
}
