/* cmd_doctor.c: `cellblock doctor` prints every isolation layer a sandbox on this host gets,
 * whether it is active, and why not when it is not; then it builds a real sandbox and runs a
 * process in it, and says for each language whether its kernel can run here (and which package
 * it needs when not). Exit status 0 when sandboxes work (possibly without some layers, which are
 * listed), 1 when no sandbox can be made.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "cb/cleanup.h"
#include "cb/paths.h"
#include "cb/util.h"
#include "cli.h"
#include "jupyter/catalog.h"
#include "jupyter/kernelspec.h"
#include "sbx/sbx.h"

static void s_layer(bool on, const char *name, const char *why)
{
    printf("  [%s] %s%s%s\n", on ? " on" : "OFF", name, !on && why && *why ? ": " : "",
           !on && why ? why : "");
}

/* Build a sandbox and run /bin/true in it; prints the outcome. Returns 0 when it worked. */
static int s_try_sandbox(void)
{
    char parent[] = "/tmp/cellblock-doctor-XXXXXX";
    if (!mkdtemp(parent)) {
        perror("cellblock doctor: mkdtemp");
        return -1;
    }
    cleanup_free char *run_dir = cb_strdup_printf("%s/sandbox", parent);
    cb_error_t err = {0};
    int64_t t0 = cb_now_us();
    sbx_t *sbx = sbx_new(
        &(sbx_policy_t){.run_dir = run_dir, .memory_bytes = 256u << 20, .pids_max = 64}, &err);
    int64_t t1 = cb_now_us();
    int rc = -1;
    if (sbx) {
        const char *argv[] = {"/bin/true", NULL}, *env[] = {"PATH=/usr/bin:/bin", NULL};
        sbx_proc_t *p = sbx_spawn(
            sbx,
            &(sbx_spawn_opts_t){
                .argv = argv, .env = env, .stdin_fd = -1, .stdout_fd = -1, .stderr_fd = -1},
            &err);
        sbx_exit_t ex;
        if (p && sbx_proc_wait(p, &ex, 10000, &err) == 0 && ex.exited && ex.code == 0) {
            printf("  sandbox: works (built in %.1f ms, /bin/true ran in %.1f ms)\n",
                   (t1 - t0) / 1000.0, (cb_now_us() - t1) / 1000.0);
            rc = 0;
        } else if (p) {
            cleanup_free char *how = sbx_exit_describe(&ex);
            printf("  sandbox: built, but /bin/true failed: %s\n", err.msg[0] ? err.msg : how);
        } else {
            printf("  sandbox: built, but could not start a process: %s\n", err.msg);
        }
        sbx_proc_destroy(&p);
        sbx_destroy(&sbx);
    } else {
        printf("  sandbox: cannot be built: %s\n", err.msg);
    }
    rmdir(parent);
    return rc;
}

/* One line per language of the table: its kernel, or what is missing. Languages never fail the
 * doctor: each is optional, and the line says what to install. */
static void s_languages(void)
{
    cleanup_free char *project_dir = jp_kernelspec_project_dir();
    size_t n = 0;
    jp_kernelspec_t **specs = jp_kernelspec_list(project_dir, &n);
    printf("cellblock doctor: languages (kernelspecs along the Jupyter path, %s first)\n",
           project_dir);
    for (const char *const *lang = jp_languages(); *lang; lang++) {
        const jp_kernelspec_t *ok = NULL, *not_ok = NULL;
        for (size_t i = 0; i < n && !ok; i++) {
            if (!jp_language_is(specs[i]->language, *lang))
                continue;
            if (!jp_kernelspec_missing(specs[i]))
                ok = specs[i];
            else if (!not_ok)
                not_ok = specs[i];
        }
        if (ok) {
            printf("  [ ok] %-10s available (kernel %s)\n", *lang, ok->name);
        } else if (not_ok) {
            const jp_requirement_t *m = jp_kernelspec_missing(not_ok);
            printf("  [OFF] %-10s unavailable: needs %s (%s is missing; kernel %s; "
                   "scripts/install-deps.sh installs it)\n",
                   *lang, m->package, m->path, not_ok->name);
        } else {
            printf("  [OFF] %-10s unavailable: no kernelspec for it\n", *lang);
        }
    }
    for (size_t i = 0; i < n; i++)
        jp_kernelspec_destroy(&specs[i]);
    free(specs);
}

int cli_cmd_doctor(int argc, char **argv)
{
    if (argc > 1)
        return cli_usage_error("doctor", "takes no arguments");
    cli_setup_logging(0);
    sbx_layers_t l;
    sbx_layers_probe(&l);
    printf("cellblock doctor: sandbox layers on this host (running as %s, uid %d)\n",
           geteuid() == 0 ? "root" : "an unprivileged user", (int)geteuid());
    /* Both found beside this binary (cb/paths.h) unless CELLBLOCK_INIT / CELLBLOCK_DATA_DIR say
     * otherwise; printed so a broken install or a stray override shows here first. */
    printf("  init: %s%s\n", sbx_default_init_path(),
           access(sbx_default_init_path(), X_OK) == 0 ? ""
                                                      : " (MISSING: build or install cellblock)");
    cleanup_free char *kernels = cb_strdup_printf("%s/kernels", cb_path_datadir());
    printf("  data: %s%s\n", cb_path_datadir(),
           access(kernels, R_OK | X_OK) == 0 ? ""
                                             : " (MISSING kernels/: build or install cellblock)");
    s_layer(l.userns, "user, pid, mount, network, ipc, uts and cgroup namespaces", l.userns_why);
    s_layer(l.userns, "filesystem: tmpfs root, read-only /usr, minimal /etc and /dev, masked /proc",
            "needs user namespaces");
    s_layer(l.userns, "network: loopback only", "needs user namespaces");
    s_layer(l.userns,
            "non-root uid 1000, no capabilities, no_new_privs, closed fds, clean environment",
            "needs user namespaces");
    const char *cg = l.cgroup == SBX_CGROUP_V2   ? "cgroup v2"
                     : l.cgroup == SBX_CGROUP_V1 ? "cgroup v1"
                                                 : "cgroup";
    char name[64];
    snprintf(name, sizeof name, "%s memory limit (swap off), OOM reporting", cg);
    s_layer(l.cgroup_memory, name, l.cgroup_why);
    snprintf(name, sizeof name, "%s pids limit", cg);
    s_layer(l.cgroup_pids, name, l.cgroup_why);
    snprintf(name, sizeof name, "%s cpu quota", cg);
    s_layer(l.cgroup_cpu, name, l.cgroup_why);
    s_layer(true, "rlimits: nofile, core 0, fsize", NULL);
    s_layer(l.seccomp, "seccomp allowlist (libseccomp)", l.seccomp_why);
    s_layer(l.seccomp_log, "seccomp log mode available (--seccomp-log)",
            "the kernel lacks the log action");
    int rc = s_try_sandbox() == 0 ? CLI_OK : CLI_FAILED;
    s_languages();
    return rc;
}
