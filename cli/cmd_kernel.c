/* cmd_kernel.c: `cellblock kernel` starts a kernel through the gateway and keeps it up for
 * Jupyter clients: it prints the path of an attach connection file (loopback ports proxied by
 * the gateway, with a key of their own), so a person can run `jupyter console --existing FILE`
 * on it. --run executes code first (to set up state); the kernel stays until SIGINT or SIGTERM.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cb/cleanup.h"
#include "cb/util.h"
#include "cli.h"
#include "kg/gateway.h"
#include "kg/kernel.h"
#include "kg/execution.h"

typedef struct {
    volatile int ready;
    volatile int setup_done;
    volatile int dead;
    int setup_failed;
} kernel_ctx_t;

static void s_on_event(kg_kernel_t *k, kg_kernel_event_t event, const char *detail, void *arg)
{
    kernel_ctx_t *ctx = arg;
    if (event == KG_EVENT_READY)
        ctx->ready = 1;
    else if (event == KG_EVENT_DEAD || event == KG_EVENT_STOPPED)
        ctx->dead = ctx->ready = ctx->setup_done = 1;
    if (event == KG_EVENT_DIED || event == KG_EVENT_DEAD)
        fprintf(stderr, "cellblock kernel: kernel %s%s%s\n",
                event == KG_EVENT_DIED ? "died" : "is dead", detail ? ": " : "",
                detail ? detail : "");
}

static void s_on_done(kg_execution_t *x, json_t *result, void *arg)
{
    kernel_ctx_t *ctx = arg;
    const char *status = json_string_value(json_object_get(result, "status"));
    if (!status || strcmp(status, "ok") != 0) {
        json_t *error = json_object_get(result, "error");
        fprintf(stderr, "cellblock kernel: --run code failed (%s): %s: %s\n", status,
                json_string_value(json_object_get(error, "ename")),
                json_string_value(json_object_get(error, "evalue")));
        ctx->setup_failed = 1;
    }
    ctx->setup_done = 1;
}

int cli_cmd_kernel(int argc, char **argv)
{
    static const struct option options[] = {{"kernel", required_argument, NULL, 'k'},
                                            {"run", required_argument, NULL, 'r'},
                                            {"connection-file", required_argument, NULL, 'c'},
                                            {"verbose", no_argument, NULL, 'v'},
                                            CLI_SANDBOX_OPTIONS,
                                            {NULL, 0, NULL, 0}};
    kg_config_t cfg = {0};
    const char *kernel_name = NULL, *setup = NULL, *copy_to = NULL;
    int verbose = 0, opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "k:r:c:v", options, NULL)) != -1) {
        switch (opt) {
        case 'k': kernel_name = optarg; break;
        case 'r': setup = optarg; break;
        case 'c': copy_to = optarg; break;
        case 'v': verbose = 1; break;
        default:
            if (cli_sandbox_flag("kernel", opt, optarg, &cfg) != 0)
                return CLI_USAGE;
        }
    }
    if (optind != argc)
        return cli_usage_error("kernel", "unexpected argument '%s'", argv[optind]);
    cli_setup_logging(verbose);

    cb_error_t err = {0};
    kernel_ctx_t ctx = {0};
    kg_gateway_t *gw = kg_gateway_new(&cfg, &err);
    cli_sandbox_flags_free(&cfg); /* the gateway holds its own copy of --network */
    kg_kernel_opts_t kopts = {.kernel_name = kernel_name, .on_event = s_on_event, .arg = &ctx};
    kg_kernel_t *kernel = gw ? kg_kernel_start(gw, &kopts, &err) : NULL;
    int rc = CLI_FAILED;
    if (!kernel) {
        fprintf(stderr, "cellblock kernel: %s\n", err.msg);
        rc = (err.kind == CB_ERR_NOT_FOUND || err.kind == CB_ERR_INVALID) ? CLI_USAGE : CLI_FAILED;
    } else if (kg_gateway_run_until(gw, &ctx.ready, -1) < 0 || ctx.dead) {
        fprintf(stderr, "cellblock kernel: the kernel did not start\n");
    } else if (setup &&
               (!kg_execute(kernel,
                            &(kg_execute_opts_t){.code = setup, .on_done = s_on_done, .arg = &ctx},
                            &err) ||
                kg_gateway_run_until(gw, &ctx.setup_done, -1) < 0 || ctx.setup_failed)) {
        if (err.msg[0])
            fprintf(stderr, "cellblock kernel: %s\n", err.msg);
    } else {
        const char *path = kg_kernel_attach(kernel, &err);
        cleanup_free char *text = path ? cb_read_file(path, 1 << 16, NULL, &err) : NULL;
        if (!text || (copy_to && cb_write_file(copy_to, text, strlen(text), 0600, &err) < 0)) {
            fprintf(stderr, "cellblock kernel: %s\n", err.msg);
        } else {
            printf("%s\n", copy_to ? copy_to : path);
            fflush(stdout);
            fprintf(stderr,
                    "cellblock kernel: serving kernel %s; attach with: jupyter console "
                    "--existing %s (Ctrl-C stops)\n",
                    kg_kernel_id(kernel), copy_to ? copy_to : path);
            kg_gateway_run_until(gw, &ctx.dead, -1); /* until a signal, or the kernel is gone */
            rc = ctx.dead ? CLI_FAILED : CLI_OK;
        }
    }
    if (copy_to)
        unlink(copy_to);
    kg_gateway_destroy(&gw);
    return rc;
}
