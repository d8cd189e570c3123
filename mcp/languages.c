/* languages.c: which kernel runs code given with a `language` (code_execute, run_code,
 * code_execute_async, session_create).
 *
 * Why: a model asks for "js" or "golang", not for a kernelspec. The names go through the one
 * alias table (jp_language_canonical, jupyter/catalog.h), and the answer is a kernelspec whose
 * language is that one: the sandbox's main kernel when it speaks it, else the first spec by name
 * whose requirements are met on this host. A language we do not know, or know but cannot run
 * here, gets an error that says what can run here, and for a missing toolchain the Debian
 * package that provides it.
 *
 * How: one walk over the kernelspecs (jp_kernelspec_list; a few small files), remembering the
 * first available match, the first unavailable one, and the languages that can run.
 */
#include <string.h>

#include "cb/alloc.h"
#include "cb/cleanup.h"
#include "cb/util.h"
#include "jupyter/catalog.h"
#include "jupyter/kernelspec.h"
#include "mcp_private.h"

static void s_specs_free(jp_kernelspec_t **specs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        jp_kernelspec_destroy(&specs[i]);
    free(specs);
}

/* Append the canonical language of spec to the list in buf ("a, b"), once. */
static void s_add_language(cb_buf_t *buf, const jp_kernelspec_t *spec)
{
    const char *lang = jp_language_canonical(spec->language);
    if (!lang)
        lang = spec->language;
    /* Whole-word search: ", c," must not match inside ", c++,". */
    cleanup_free char *word = cb_strdup_printf(", %s,", lang);
    cleanup_free char *have = cb_strdup_printf(", %s,", cb_buf_str(buf));
    if (strstr(have, word))
        return;
    if (buf->len)
        cb_buf_append(buf, ", ", 2);
    cb_buf_append(buf, lang, strlen(lang));
}

char *mcp_kernel_for_language(const char *kernels_dir, const char *language,
                              const char *main_kernel, const char *main_language, cb_error_t *err)
{
    const char *canonical = jp_language_canonical(language);
    if (main_kernel && canonical && jp_language_is(main_language, canonical))
        return cb_xstrdup(main_kernel);

    size_t n = 0;
    jp_kernelspec_t **specs = jp_kernelspec_list(kernels_dir, &n);
    const jp_kernelspec_t *found = NULL, *unavailable = NULL;
    const jp_requirement_t *missing = NULL;
    cb_buf_t available = {0};
    for (size_t i = 0; i < n; i++) {
        const jp_requirement_t *m = jp_kernelspec_missing(specs[i]);
        if (!m)
            s_add_language(&available, specs[i]);
        if (!canonical || !jp_language_is(specs[i]->language, canonical))
            continue;
        if (!m && !found)
            found = specs[i];
        if (m && !unavailable) {
            unavailable = specs[i];
            missing = m;
        }
    }
    char *name = found ? cb_xstrdup(found->name) : NULL;
    const char *can_run = available.len ? cb_buf_str(&available) : "none";
    if (!canonical)
        cb_error_fail(err, CB_ERR_INVALID,
                      "unknown language '%.40s'; languages that run here: %s (all names cellblock "
                      "knows: " JP_LANGUAGE_NAMES ")",
                      language ? language : "", can_run);
    else if (!found && unavailable)
        cb_error_fail(err, CB_ERR_UNAVAILABLE,
                      "%s is not available here: its kernel (%s) needs %s from the Debian package "
                      "%s (scripts/install-deps.sh installs it); languages that run here: %s",
                      canonical, unavailable->name, missing->path, missing->package, can_run);
    else if (!found)
        cb_error_fail(err, CB_ERR_NOT_FOUND,
                      "no kernel for %s is installed; languages that run here: %s", canonical,
                      can_run);
    cb_buf_free(&available);
    s_specs_free(specs, n);
    return name;
}
