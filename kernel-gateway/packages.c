/* packages.c: where packages installed at run time go inside a sandbox, and the settings that
 * send pip and npm there.
 *
 * Why: /usr inside is the host's, read-only, and Debian's Python refuses `pip install` into it
 * anyway (PEP 668). Installs must land in the workspace, so that they need no privilege and a
 * persistent sandbox keeps them, and a running kernel must see them at once.
 *
 * How: every process in a sandbox gets pip's user scheme in the workspace (PYTHONUSERBASE=
 * /home/user/.local) and PIP_BREAK_SYSTEM_PACKAGES=1 (only the user site can be written anyway).
 * Not PIP_USER=1: pip falls back to the user scheme by itself when the system's site-packages
 * cannot be written (always, here), while PIP_USER=1 would make pip refuse to install into any
 * venv made inside ("User site-packages are not visible in this virtualenv"). npm gets its
 * local folder, /home/user/node_modules, which the JS kernel resolves from its cwd (NODE_PATH
 * names it and the global prefix for other working directories).
 *
 * CPython puts the user site-packages directory on sys.path only if it exists when the
 * interpreter starts, so kg_packages_sandbox_prepare makes it, for every Python 3 of the host's
 * /usr/lib, before any kernel starts: then a package that `!pip install` or a command adds is
 * importable in the running kernel without a restart. It does so through the sandbox's file
 * calls (openat2 beneath the workspace), so a reopened persistent workspace with planted links
 * is harmless.
 *
 * A venv (--system-site-packages) would do too but costs a directory tree and a different
 * interpreter path per sandbox; the user scheme costs two mkdirs.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cb/alloc.h"
#include "cb/cleanup.h"
#include "cb/log.h"
#include "kg_private.h"

#define USER_BASE SBX_INSIDE_WORKSPACE "/.local"
#define NODE_MODULES SBX_INSIDE_WORKSPACE "/node_modules"

/* Before the sandbox's own env (which may override any of them). PATH: the base one with the
 * user scheme's and npm's bin folders first. */
static const char *const s_packages_env[] = {
    "PYTHONUSERBASE=" USER_BASE,
    "PIP_BREAK_SYSTEM_PACKAGES=1",
    "PIP_DISABLE_PIP_VERSION_CHECK=1",
    "PIP_NO_CACHE_DIR=1",
    "npm_config_prefix=" USER_BASE,
    "npm_config_cache=/tmp/.npm",
    "npm_config_update_notifier=false",
    "npm_config_fund=false",
    "npm_config_audit=false",
    "NODE_PATH=" NODE_MODULES ":" USER_BASE "/lib/node_modules",
    "PATH=" USER_BASE "/bin:" NODE_MODULES "/.bin:/usr/local/bin:/usr/bin:/bin",
    NULL,
};

/* Is name "python3.N" (N digits only)? */
static bool s_is_python_dir(const char *name)
{
    if (strncmp(name, "python3.", 8) != 0 || !name[8])
        return false;
    for (const char *p = name + 8; *p; p++)
        if (*p < '0' || *p > '9')
            return false;
    return true;
}

/* The user site-packages directory of each Python 3 under the host's /usr/lib (the sandbox's
 * /usr is the host's): "lib/python3.N/site-packages" under the user base. */
static int s_make_user_sites(kg_sandbox_t *sb, cb_error_t *err)
{
    DIR *dir = opendir("/usr/lib");
    if (!dir)
        return 0; /* no Python here: nothing to prepare */
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(dir))) {
        if (!s_is_python_dir(de->d_name))
            continue;
        cleanup_free char *probe = cb_strdup_printf("/usr/lib/%s/os.py", de->d_name);
        if (access(probe, F_OK) != 0)
            continue; /* a leftover directory, not an interpreter's library */
        cleanup_free char *site = cb_strdup_printf(USER_BASE "/lib/%s/site-packages", de->d_name);
        rc = sbx_file_mkdir(sb->sbx, site, true, err);
    }
    closedir(dir);
    return rc;
}

int kg_packages_sandbox_prepare(kg_sandbox_t *sb, cb_error_t *err)
{
    const char *const *lists[2] = {s_packages_env, (const char *const *)sb->env};
    char **env = kg_env_merge(lists, 2);
    cb_strv_free(sb->env);
    sb->env = env;
    if (s_make_user_sites(sb, err) < 0 || sbx_file_mkdir(sb->sbx, USER_BASE "/bin", true, err) < 0)
        return cb_error_prefix(err, "prepare the workspace for packages: ");
    return 0;
}
