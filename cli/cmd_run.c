/* cmd_run.c: `cellblock run` runs a file (or stdin) in a fresh kernel and prints its outputs.
 *
 * Streams are printed as they arrive (stdout to stdout, stderr to stderr); rich results print
 * their text/plain; images are written into --outputs DIR (output-1.png, ...) and named on
 * stdout. The kernel runs in a fresh sandbox whose limits are flags (--memory-mb, --pids, ...).
 * The kernel is --kernel's, else --template's, else the one for the file's language by its
 * extension (main.go runs in the go kernel: jp_language_of_file), else python3.
 * Exit status: 0 when the code ran without error, 1 when it raised, timed out, or the kernel
 * failed, 2 on a usage error.
 *
 * A FILE ending in .ipynb is a notebook (run_notebook.c): its code cells run in order in the
 * notebook's kernel and the executed notebook is written to -o/--output (default: FILE's name
 * with .nbconvert.ipynb, as nbconvert names it).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cb/alloc.h"
#include "cb/cleanup.h"
#include "cb/util.h"
#include "cli.h"
#include "kg/gateway.h"
#include "jupyter/catalog.h"
#include "jupyter/kernelspec.h"
#include "kg/kernel.h"
#include "kg/execution.h"

#define CLI_MAX_CODE (16u << 20)

#define CLI_KERNEL_LINES 20 /* the kernel's last output lines, shown when it fails */

typedef struct {
    const char *outputs_dir;
    int verbose;
    char *kernel_lines[CLI_KERNEL_LINES];
    unsigned n_kernel_lines;
    int images_saved;
    volatile int done;
    int exit_code;
    char *kernel_failure;
} run_ctx_t;

static const struct {
    const char *mime;
    const char *ext;
} s_images[] = {{"image/png", "png"}, {"image/jpeg", "jpg"}, {"image/svg+xml", "svg"}};

static int s_save_image(run_ctx_t *ctx, const char *mime, const char *ext, const char *value)
{
    cb_error_t err = {0};
    zchunk_t *bytes = NULL;
    size_t len = 0;
    if (strcmp(mime, "image/svg+xml") == 0) {
        bytes = zchunk_new(value, strlen(value));
        len = strlen(value);
    } else {
        /* Kernels may wrap base64 across lines; the decoder wants one run. */
        cleanup_free char *compact = cb_xmalloc(strlen(value) + 1);
        size_t n = 0;
        for (const char *p = value; *p; p++)
            if (*p != '\n' && *p != '\r')
                compact[n++] = *p;
        compact[n] = '\0';
        zarmour_t *armour = zarmour_new();
        if (armour) {
            zarmour_set_mode(armour, ZARMOUR_MODE_BASE64_STD);
            bytes = zarmour_decode(armour, compact);
            /* zarmour NUL-terminates what it decodes and counts that byte in the size. */
            len = bytes && zchunk_size(bytes) ? zchunk_size(bytes) - 1 : 0;
        }
        zarmour_destroy(&armour);
    }
    if (!bytes) {
        fprintf(stderr, "cellblock run: could not decode a %s output\n", mime);
        return -1;
    }
    cleanup_free char *path =
        cb_strdup_printf("%s/output-%d.%s", ctx->outputs_dir, ctx->images_saved + 1, ext);
    int rc = cb_write_file(path, zchunk_data(bytes), len, 0644, &err);
    zchunk_destroy(&bytes);
    if (rc < 0) {
        fprintf(stderr, "cellblock run: %s\n", err.msg);
        return -1;
    }
    ctx->images_saved++;
    printf("[%s saved to %s]\n", mime, path);
    return 0;
}

static void s_print_rich(run_ctx_t *ctx, json_t *data)
{
    bool image = false;
    for (size_t i = 0; i < sizeof s_images / sizeof s_images[0]; i++) {
        const char *value = json_string_value(json_object_get(data, s_images[i].mime));
        if (!value)
            continue;
        image = true;
        if (ctx->outputs_dir)
            s_save_image(ctx, s_images[i].mime, s_images[i].ext, value);
        else
            printf("[%s output; use --outputs DIR to save it]\n", s_images[i].mime);
        break;
    }
    const char *text = json_string_value(json_object_get(data, "text/plain"));
    if (text && !image)
        printf("%s\n", text);
}

static void s_on_output(kg_execution_t *x, const char *kind, json_t *content, void *arg)
{
    run_ctx_t *ctx = arg;
    if (strcmp(kind, "stream") == 0) {
        const char *name = json_string_value(json_object_get(content, "name"));
        const char *text = json_string_value(json_object_get(content, "text"));
        FILE *out = (name && strcmp(name, "stderr") == 0) ? stderr : stdout;
        if (text)
            fputs(text, out);
    } else if (strcmp(kind, "display_data") == 0 || strcmp(kind, "execute_result") == 0) {
        s_print_rich(ctx, json_object_get(content, "data"));
    } else if (strcmp(kind, "error") == 0) {
        size_t i;
        json_t *line;
        json_array_foreach (json_object_get(content, "traceback"), i, line)
            fprintf(stderr, "%s\n", json_string_value(line) ? json_string_value(line) : "");
    }
    fflush(stdout);
}

static void s_on_done(kg_execution_t *x, json_t *result, void *arg)
{
    run_ctx_t *ctx = arg;
    const char *status = json_string_value(json_object_get(result, "status"));
    size_t i;
    json_t *note;
    json_array_foreach (json_object_get(result, "notes"), i, note)
        fprintf(stderr, "cellblock run: %s\n", json_string_value(note));
    if (!status || strcmp(status, "ok") != 0) {
        json_t *error = json_object_get(result, "error");
        if (json_is_object(error) && json_array_size(json_object_get(error, "traceback")) == 0)
            fprintf(stderr, "%s: %s\n", json_string_value(json_object_get(error, "ename")),
                    json_string_value(json_object_get(error, "evalue")));
        fprintf(stderr, "cellblock run: status %s\n", status ? status : "unknown");
        ctx->exit_code = CLI_FAILED;
    }
    ctx->done = 1;
}

static void s_on_event(kg_kernel_t *k, kg_kernel_event_t event, const char *detail, void *arg)
{
    run_ctx_t *ctx = arg;
    if (event == KG_EVENT_STDERR && ctx->verbose) {
        fprintf(stderr, "[kernel] %s\n", detail);
    } else if (event == KG_EVENT_STDERR) {
        char **slot = &ctx->kernel_lines[ctx->n_kernel_lines++ % CLI_KERNEL_LINES];
        free(*slot);
        *slot = cb_xstrdup_or_null(detail);
    } else if (event == KG_EVENT_DEAD) {
        free(ctx->kernel_failure);
        ctx->kernel_failure = cb_xstrdup(detail ? detail : "the kernel died");
        ctx->exit_code = CLI_FAILED;
        ctx->done = 1;
    }
}

/* What the kernel's events left in ctx; only after kg_gateway_destroy, which may emit more. */
static void s_ctx_free(run_ctx_t *ctx)
{
    free(ctx->kernel_failure);
    ctx->kernel_failure = NULL;
    for (unsigned i = 0; i < CLI_KERNEL_LINES; i++) {
        free(ctx->kernel_lines[i]);
        ctx->kernel_lines[i] = NULL;
    }
}

static char *s_read_code(const char *source, cb_error_t *err)
{
    if (strcmp(source, "-") != 0)
        return cb_read_file(source, CLI_MAX_CODE, NULL, err);
    cb_buf_t buf = {0};
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0) {
        if (buf.len + n > CLI_MAX_CODE) {
            cb_buf_free(&buf);
            cb_error_fail(err, CB_ERR_LIMIT, "code on stdin is larger than %u MiB",
                          CLI_MAX_CODE >> 20);
            return NULL;
        }
        cb_buf_append(&buf, chunk, n);
    }
    return buf.data ? buf.data : cb_xstrdup("");
}

int cli_cmd_run(int argc, char **argv)
{
    static const struct option options[] = {{"kernel", required_argument, NULL, 'k'},
                                            {"timeout", required_argument, NULL, 't'},
                                            {"outputs", required_argument, NULL, 'D'},
                                            {"output", required_argument, NULL, 'o'},
                                            {"allow-errors", no_argument, NULL, 'A'},
                                            {"stdin", required_argument, NULL, 'i'},
                                            {"template", required_argument, NULL, 'T'},
                                            {"verbose", no_argument, NULL, 'v'},
                                            {"help", no_argument, NULL, 'h'},
                                            CLI_SANDBOX_OPTIONS,
                                            {NULL, 0, NULL, 0}};
    const char *kernel_name = NULL, *stdin_text = NULL, *template_name = NULL;
    run_ctx_t ctx = {.exit_code = CLI_OK};
    kg_config_t cfg = {0};
    const char *output = NULL;
    int timeout_ms = 0, verbose = 0, allow_errors = 0, opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "k:t:o:i:T:vh", options, NULL)) != -1) {
        switch (opt) {
        case 'k': kernel_name = optarg; break;
        case 'T': template_name = optarg; break;
        case 't':
            if ((timeout_ms = cli_parse_seconds(optarg)) < 0)
                return cli_usage_error(
                    "run", "--timeout takes a positive number of seconds, got '%s'", optarg);
            break;
        case 'D': ctx.outputs_dir = optarg; break;
        case 'o': output = optarg; break;
        case 'A': allow_errors = 1; break;
        case 'i': stdin_text = optarg; break;
        case 'v': verbose = 1; break;
        case 'h':
            return cli_usage_error("run", "runs FILE (or - for stdin) in a fresh kernel; a .ipynb "
                                          "FILE runs as a notebook");
        default:
            if (cli_sandbox_flag("run", opt, optarg, &cfg) != 0)
                return CLI_USAGE;
        }
    }
    if (optind != argc - 1)
        return cli_usage_error("run", "expected exactly one FILE or -");
    if (template_name && cfg.no_sandbox)
        return cli_usage_error("run",
                               "--template needs sandboxes (a template is a sandbox's setup)");
    cli_setup_logging(verbose);
    ctx.verbose = verbose;
    if (cli_is_notebook(argv[optind])) {
        if (ctx.outputs_dir)
            return cli_usage_error("run", "--outputs is for code files; a notebook keeps its "
                                          "images in the executed notebook (-o FILE)");
        if (stdin_text)
            return cli_usage_error("run", "--stdin is for code files, not notebooks");
        cli_notebook_run_t nr = {.path = argv[optind],
                                 .output = output,
                                 .kernel_name = kernel_name,
                                 .template_name = template_name,
                                 .allow_errors = allow_errors,
                                 .timeout_ms = timeout_ms,
                                 .verbose = verbose};
        return cli_run_notebook(&nr, &cfg);
    }
    if (!ctx.outputs_dir)
        ctx.outputs_dir = output; /* -o DIR: --outputs, as before notebooks */
    if (allow_errors)
        return cli_usage_error("run", "--allow-errors is for notebooks (.ipynb)");

    cb_error_t err = {0};
    cleanup_free char *code = s_read_code(argv[optind], &err);
    if (!code) {
        fprintf(stderr, "cellblock run: %s\n", err.msg);
        return CLI_USAGE;
    }
    if (ctx.outputs_dir && cb_mkdir_p(ctx.outputs_dir, 0755, &err) < 0) {
        fprintf(stderr, "cellblock run: %s\n", err.msg);
        return CLI_USAGE;
    }
    /* Without --kernel or --template, a file's extension picks its language's kernel (.py, and
     * stdin, keep the default: python3). */
    cleanup_free char *by_extension = NULL;
    const char *lang = kernel_name || template_name ? NULL : jp_language_of_file(argv[optind]);
    if (lang && strcmp(lang, "python") != 0) {
        cleanup_free char *project_dir = jp_kernelspec_project_dir();
        by_extension = jp_kernelspec_for_language(project_dir, lang, &err);
        if (!by_extension) {
            fprintf(stderr, "cellblock run: %s: %s\n", argv[optind], err.msg);
            return err.kind == CB_ERR_UNAVAILABLE ? CLI_FAILED : CLI_USAGE;
        }
        kernel_name = by_extension;
    }
    kg_gateway_t *gw = kg_gateway_new(&cfg, &err);
    kg_kernel_t *kernel = NULL;
    if (gw && template_name) {
        /* The template's sandbox: its files, environment, startup code; the limit flags win. */
        fleet_sandbox_opts_t sopts = {.template_name = template_name,
                                      .kernel_name = kernel_name,
                                      .limits = cfg.limits,
                                      .timeout_s = -1,
                                      .no_pool = true};
        fleet_t *fleet = fleet_new(gw, NULL, &err); /* the gateway owns it */
        kg_sandbox_t *sb = fleet ? fleet_sandbox_open(fleet, &sopts, &err) : NULL;
        if ((kernel = sb ? fleet_sandbox_main_kernel(sb) : NULL))
            kg_kernel_set_events(kernel, s_on_event, &ctx);
    } else if (gw) {
        kg_kernel_opts_t kopts = {.kernel_name = kernel_name, .on_event = s_on_event, .arg = &ctx};
        kernel = kg_kernel_start(gw, &kopts, &err);
    }
    cli_sandbox_flags_free(&cfg); /* the sandbox holds its own copy of --network */
    kg_execute_opts_t xopts = {.origin = "cli",
                               .code = code,
                               .timeout_ms = timeout_ms,
                               .stdin_text = stdin_text,
                               .on_output = s_on_output,
                               .on_done = s_on_done,
                               .arg = &ctx};
    if (!kernel || !kg_execute(kernel, &xopts, &err)) {
        fprintf(stderr, "cellblock run: %s\n", err.msg);
        kg_gateway_destroy(&gw);
        s_ctx_free(&ctx);
        /* An unknown kernel name is the caller's mistake; anything else (a missing toolchain
         * too) is a failure. */
        return err.kind == CB_ERR_NOT_FOUND || err.kind == CB_ERR_INVALID ? CLI_USAGE : CLI_FAILED;
    }
    if (kg_gateway_run_until(gw, &ctx.done, -1) < 0) {
        fprintf(stderr, "cellblock run: interrupted\n");
        ctx.exit_code = CLI_FAILED;
    }
    if (ctx.kernel_failure) {
        fprintf(stderr, "cellblock run: kernel failed: %s\n", ctx.kernel_failure);
        unsigned first =
            ctx.n_kernel_lines > CLI_KERNEL_LINES ? ctx.n_kernel_lines - CLI_KERNEL_LINES : 0;
        for (unsigned i = first; i < ctx.n_kernel_lines; i++)
            fprintf(stderr, "[kernel] %s\n", ctx.kernel_lines[i % CLI_KERNEL_LINES]);
    }
    fflush(stdout);
    kg_gateway_destroy(&gw); /* the kernel's last events (stderr lines, DEAD) still reach ctx */
    s_ctx_free(&ctx);
    return ctx.exit_code;
}
