/* cmd_lab.c: `cellblock lab`, JupyterLab (or jupyter_server alone) on a running cellblock, in one
 * command, with the kernels assistants use one click away.
 *
 * Why: jupyter_server in gateway mode only knows kernels it started; cellblock ships a small
 * jupyter_server extension (share/cellblock/lab/cellblock_lab.py) that adopts the gateway's
 * other kernels and serves /cellblock/open/{kernel_id}. Starting it by hand takes a PYTHONPATH,
 * two --ServerApp settings, the gateway's URL and its token; this command does all of it.
 *
 * How: it works out the settings, says where to go, and replaces itself (execv) with
 * `python3 -m cellblock_lab` (JupyterLab when it is installed, jupyter_server otherwise), so
 * signals and the exit status are jupyter's own. The token travels in the environment
 * (JUPYTER_GATEWAY_AUTH_TOKEN, jupyter_server's own variable), never on a command line that
 * `ps` shows. Arguments after `--` go to jupyter as they are.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cb/alloc.h"
#include "cb/cleanup.h"
#include "cb/paths.h"
#include "cb/util.h"
#include "cli.h"

#define LAB_DEFAULT_URL "http://127.0.0.1:8888"
#define LAB_DEFAULT_LISTEN "127.0.0.1:8890"
#define LAB_DEFAULT_PYTHON "/usr/bin/python3"

static const char s_usage[] =
    "usage: cellblock lab [--url URL] [--listen HOST:PORT] [--root DIR] [--server-only] "
    "[-- JUPYTER_ARGS...]\n"
    "  --url URL          the cellblock serve to use (default $CELLBLOCK_URL, else " LAB_DEFAULT_URL
    ")\n"
    "  --listen HOST:PORT where JupyterLab listens (default " LAB_DEFAULT_LISTEN ")\n"
    "  --root DIR         the notebooks' directory (default: the current one)\n"
    "  --server-only      jupyter_server alone even when JupyterLab is installed\n"
    "environment: CELLBLOCK_TOKEN (cellblock's token, passed to jupyter in its environment),\n"
    "  CELLBLOCK_PYTHON (default " LAB_DEFAULT_PYTHON ")\n"
    "Open an assistant's kernel at http://HOST:PORT/cellblock/open/KERNEL_ID "
    "(docs/jupyterlab.md).\n";

/* Split "HOST:PORT" (HOST may be "[v6]") into host (Caller owns return value) and port. */
static char *s_split_listen(const char *listen, int *port)
{
    const char *colon = strrchr(listen, ':');
    if (!colon || colon == listen || !colon[1])
        return NULL;
    char *end = NULL;
    errno = 0;
    long p = strtol(colon + 1, &end, 10);
    if (errno || *end || p < 1 || p > 65535)
        return NULL;
    const char *host = listen;
    size_t len = (size_t)(colon - listen);
    if (host[0] == '[' && len >= 2 && host[len - 1] == ']') {
        host++;
        len -= 2;
    }
    if (len == 0 || memchr(host, '[', len) || memchr(host, ']', len))
        return NULL;
    *port = (int)p;
    return cb_xstrndup(host, len);
}

int cli_cmd_lab(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"url", required_argument, NULL, 'u'},  {"listen", required_argument, NULL, 'l'},
        {"root", required_argument, NULL, 'r'}, {"server-only", no_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},       {NULL, 0, NULL, 0},
    };
    const char *url = getenv("CELLBLOCK_URL");
    const char *listen = LAB_DEFAULT_LISTEN;
    const char *root = NULL;
    bool server_only = false;
    int opt;
    while ((opt = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'u': url = optarg; break;
        case 'l': listen = optarg; break;
        case 'r': root = optarg; break;
        case 's': server_only = true; break;
        case 'h': fputs(s_usage, stdout); return CLI_OK;
        default: fputs(s_usage, stderr); return CLI_USAGE;
        }
    }
    if (!url || !*url)
        url = LAB_DEFAULT_URL;
    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
        return cli_usage_error("lab", "--url must be an http:// or https:// URL, not '%s'", url);
    int port = 0;
    cleanup_free char *host = s_split_listen(listen, &port);
    if (!host)
        return cli_usage_error("lab", "--listen wants HOST:PORT (PORT 1-65535), not '%s'", listen);
    struct stat st;
    if (root && (stat(root, &st) < 0 || !S_ISDIR(st.st_mode)))
        return cli_usage_error("lab", "--root '%s' is not a directory", root);

    cleanup_free char *libdir = cb_strdup_printf("%s/lab", cb_path_datadir());
    cleanup_free char *module = cb_strdup_printf("%s/cellblock_lab.py", libdir);
    if (access(module, R_OK) < 0) {
        fprintf(stderr,
                "cellblock lab: %s: %s (the jupyter_server extension cellblock ships; is "
                "cellblock installed whole?)\n",
                module, strerror(errno));
        return CLI_FAILED;
    }
    const char *python = getenv("CELLBLOCK_PYTHON");
    if (!python || !*python)
        python = LAB_DEFAULT_PYTHON;

    /* The environment: our module importable, the gateway's token where jupyter_server reads
     * it (an explicit JUPYTER_GATEWAY_AUTH_TOKEN wins). */
    const char *old_path = getenv("PYTHONPATH");
    cleanup_free char *pythonpath =
        old_path && *old_path ? cb_strdup_printf("%s:%s", libdir, old_path) : cb_xstrdup(libdir);
    const char *token = getenv("CELLBLOCK_TOKEN");
    if (setenv("PYTHONPATH", pythonpath, 1) < 0 ||
        (token && *token && setenv("JUPYTER_GATEWAY_AUTH_TOKEN", token, 0) < 0)) {
        perror("cellblock lab: setenv");
        return CLI_FAILED;
    }
    if (!token || !*token)
        fprintf(stderr, "cellblock lab: CELLBLOCK_TOKEN is not set: cellblock will refuse "
                        "jupyter_server unless it runs with --no-auth\n");

    cleanup_strvec cb_strv_t args = {0};
    cb_strv_init(&args);
    cb_strv_push(&args, cb_xstrdup(python));
    cb_strv_push(&args, cb_xstrdup("-m"));
    cb_strv_push(&args, cb_xstrdup("cellblock_lab"));
    cb_strv_push(&args, cb_strdup_printf("--gateway-url=%s", url));
    cb_strv_push(&args, cb_strdup_printf("--ServerApp.ip=%s", host));
    cb_strv_push(&args, cb_strdup_printf("--ServerApp.port=%d", port));
    if (root)
        cb_strv_push(&args, cb_strdup_printf("--ServerApp.root_dir=%s", root));
    if (server_only)
        cb_strv_push(&args, cb_xstrdup("--server-only"));
    if (geteuid() == 0) /* jupyter refuses root without it; cellblock itself runs as root */
        cb_strv_push(&args, cb_xstrdup("--allow-root"));
    for (int i = optind; i < argc; i++)
        cb_strv_push(&args, cb_xstrdup(argv[i]));

    const char *bracket = strchr(host, ':') ? "[" : "";
    fprintf(stderr,
            "cellblock lab: Jupyter on http://%s%s%s:%d/ with kernels from %s\n"
            "cellblock lab: open an assistant's kernel at http://%s%s%s:%d/cellblock/open/"
            "KERNEL_ID\n",
            bracket, host, *bracket ? "]" : "", port, url, bracket, host, *bracket ? "]" : "",
            port);
    fflush(stderr);
    execv(python, args.v);
    fprintf(stderr, "cellblock lab: cannot run %s: %s\n", python, strerror(errno));
    return CLI_FAILED;
}
