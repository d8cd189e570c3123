/* kernels/kernel/compiled.c: the driver for C, C++, Rust and Go (kn_compiled_driver).
 *
 * These languages have no interpreter to keep alive, so a cell is a program: cellsplit.c cuts
 * the cell into definitions and statements and renders it after the definitions kept from
 * earlier cells (cellsplit.h has the rules: what persists, what replaces what, where the line
 * numbers come from). Each cell then goes through two processes, one at a time:
 *
 *   compile  the compiler, in the kernel's private work directory (kn_work_dir), with its stdout
 *            and stderr sent to a file there by a /bin/sh wrapper (exec "$@" >compile.out 2>&1),
 *            so nothing of it reaches the user while it runs. A failure becomes the cell's error:
 *            ename CompileError, evalue the first error line, traceback the whole output (for
 *            Rust rewritten to the cells' lines), warnings included, except Rust's (-A warnings:
 *            rustc warns about much that is normal in a cell). A successful compile shows
 *            nothing. The definitions are kept from here on, whatever the run does.
 *   run      the program, in the kernel's own working directory and environment, its output
 *            streamed live by the core and its stdin served (a read becomes an input_request).
 *            Exit status 0 is success; another is an error ExitCode; a signal is an error Signal.
 *            C and C++ programs have stdout line-buffered (cellsplit's prelude), so prompts and
 *            progress show before the program ends.
 *
 * Interrupt kills the process group of whichever runs (SIGKILL) and ends the cell with an error
 * Interrupted; definitions kept so far stay. Go builds with GO111MODULE=off, GOPROXY=off,
 * GOTOOLCHAIN=local and its cache under the work directory. is_complete answers from the
 * brackets (cs_is_complete); complete and inspect answer empty.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cb/alloc.h"
#include "cb/cleanup.h"
#include "cb/log.h"
#include "cb/util.h"
#include "cellsplit.h"
#include "kernel.h" /* kn_proc_detach */
#include "kn.h"

#define S_OUTPUT_MAX (256 * 1024) /* compiler output read back; the rest is cut */

extern char **environ;

/* What differs between the languages. */
typedef struct {
    cs_lang_t lang;
    const char *source;      /* the file name the program is written to */
    const char *compiler;    /* absolute: what the sandbox sees under /usr */
    const char *package;     /* the Debian package that provides it */
    const char *version_cmd; /* a shell command printing the version */
    const char *const *args; /* after the compiler, before the source; -o prog is added */
    const char *const *libs; /* after the source */
} s_lang_t;

/* No -w: a failed compile shows the compiler's whole output, warnings included (a successful
 * one shows nothing). Calling an undeclared function is an error in C, as since C99 (and by
 * default in gcc 14), not a link error that cannot name the cell's line. */
static const char *const s_c_args[] = {"-std=gnu17",
                                       "-O0",
                                       "-Werror=implicit-function-declaration",
                                       "-fmax-errors=30",
                                       "-fdiagnostics-color=never",
                                       NULL};
static const char *const s_cpp_args[] = {"-std=gnu++17", "-O0", "-fmax-errors=30",
                                         "-fdiagnostics-color=never", NULL};
static const char *const s_rust_args[] = {"--edition", "2021",        "-C", "opt-level=0",
                                          "-C",        "debuginfo=0", "-A", "warnings",
                                          "--color",   "never",       NULL};
static const char *const s_go_args[] = {"build", NULL};
static const char *const s_c_libs[] = {"-lm", NULL};
static const char *const s_none[] = {NULL};

static const s_lang_t s_langs[] = {
    {CS_C, "main.c", "/usr/bin/gcc", "gcc", "/usr/bin/gcc -dumpversion", s_c_args, s_c_libs},
    {CS_CPP, "main.cpp", "/usr/bin/g++", "g++", "/usr/bin/g++ -dumpversion", s_cpp_args, s_c_libs},
    {CS_RUST, CS_RUST_FILE, "/usr/bin/rustc", "rustc", "/usr/bin/rustc --version", s_rust_args,
     s_none},
    {CS_GO, "main.go", "/usr/bin/go", "golang-go", "GOTOOLCHAIN=local /usr/bin/go env GOVERSION",
     s_go_args, s_none},
};

struct kn_driver {
    kn_kernel_t *k;
    const s_lang_t *lang;
    char *dir;          /* kn_work_dir: ours alone */
    char **build_env;   /* the compiler's environment (Go's settings); NULL: the kernel's */
    cs_program_t *prog; /* the definitions kept */
    /* the running cell */
    kn_cell_t *cell;
    cs_cell_t *split;
    cs_source_t *src;
    kn_proc_t *proc;
    bool interrupted;
};

/* ---- start and stop ----------------------------------------------------------------------- */

/* The first line a shell command prints, trimmed; NULL when it prints nothing. Caller owns
 * return value. */
static char *s_command_line(const char *cmd)
{
    FILE *f = popen(cmd, "r");
    if (!f)
        return NULL;
    char line[256] = "";
    char *got = fgets(line, sizeof line, f);
    pclose(f);
    if (!got)
        return NULL;
    line[strcspn(line, "\r\n")] = '\0';
    return line[0] ? cb_xstrdup(line) : NULL;
}

/* "12" (gcc -dumpversion), "rustc 1.63.0 (...)" -> "1.63.0", "go1.19.8" -> "1.19.8". */
static char *s_version(const s_lang_t *lang)
{
    cleanup_free char *line = s_command_line(lang->version_cmd);
    if (!line)
        return NULL;
    const char *v = line;
    if (strncmp(v, "rustc ", 6) == 0) {
        v += 6;
        return cb_xstrndup(v, strcspn(v, " "));
    }
    if (strncmp(v, "go", 2) == 0)
        v += 2;
    return cb_xstrdup(v);
}

static void s_strv_free(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

/* The kernel's environment with Go's settings over it. Caller owns return value. */
static char **s_go_env(const char *dir)
{
    static const char *const set[] = {"GOCACHE=",     "GOPATH=",  "GO111MODULE=", "GOPROXY=",
                                      "GOTOOLCHAIN=", "GOFLAGS=", "GOENV=",       NULL};
    size_t n = 0;
    while (environ && environ[n])
        n++;
    char **env = cb_xcalloc(n + 8, sizeof *env);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        bool ours = false;
        for (size_t j = 0; set[j]; j++)
            if (strncmp(environ[i], set[j], strlen(set[j])) == 0)
                ours = true;
        if (!ours)
            env[m++] = cb_xstrdup(environ[i]);
    }
    char buf[4096];
    snprintf(buf, sizeof buf, "GOCACHE=%s/gocache", dir);
    env[m++] = cb_xstrdup(buf);
    snprintf(buf, sizeof buf, "GOPATH=%s/gopath", dir);
    env[m++] = cb_xstrdup(buf);
    env[m++] = cb_xstrdup("GO111MODULE=off");
    env[m++] = cb_xstrdup("GOPROXY=off");
    env[m++] = cb_xstrdup("GOTOOLCHAIN=local");
    env[m++] = cb_xstrdup("GOENV=off");
    env[m] = NULL;
    return env;
}

static kn_driver_t *s_start(kn_kernel_t *k, cs_lang_t which, char **version, cb_error_t *err)
{
    const s_lang_t *lang = NULL;
    for (size_t i = 0; i < sizeof s_langs / sizeof *s_langs; i++)
        if (s_langs[i].lang == which)
            lang = &s_langs[i];
    if (!lang)
        return cb_error_fail(err, CB_ERR_INTERNAL, "no such compiled language"), NULL;
    if (access(lang->compiler, X_OK) < 0)
        return cb_error_make(err, errno, "%s is missing (Debian package %s)", lang->compiler,
                             lang->package),
               NULL;
    kn_driver_t *d = cb_xcalloc(1, sizeof *d);
    d->k = k;
    d->lang = lang;
    d->dir = cb_xstrdup(kn_work_dir(k));
    d->prog = cs_program_new(lang->lang);
    if (lang->lang == CS_GO)
        d->build_env = s_go_env(d->dir);
    *version = s_version(lang);
    return d;
}

static kn_driver_t *s_start_c(kn_kernel_t *k, char **version, cb_error_t *err)
{
    return s_start(k, CS_C, version, err);
}
static kn_driver_t *s_start_cpp(kn_kernel_t *k, char **version, cb_error_t *err)
{
    return s_start(k, CS_CPP, version, err);
}
static kn_driver_t *s_start_rust(kn_kernel_t *k, char **version, cb_error_t *err)
{
    return s_start(k, CS_RUST, version, err);
}
static kn_driver_t *s_start_go(kn_kernel_t *k, char **version, cb_error_t *err)
{
    return s_start(k, CS_GO, version, err);
}

static void s_destroy(kn_driver_t **d_p)
{
    if (!d_p || !*d_p)
        return;
    kn_driver_t *d = *d_p;
    if (d->proc) {
        kn_proc_detach(d->proc); /* its on_exit must not see d again */
        kn_proc_signal(d->proc, SIGKILL);
    }
    cs_cell_destroy(&d->split);
    cs_source_destroy(&d->src);
    cs_program_destroy(&d->prog);
    s_strv_free(d->build_env);
    free(d->dir);
    free(d);
    *d_p = NULL;
}

/* ---- one cell ----------------------------------------------------------------------------- */

static void s_finish(kn_driver_t *d)
{
    cs_cell_destroy(&d->split);
    cs_source_destroy(&d->src);
    d->proc = NULL;
    d->interrupted = false;
    /* kn_cell_done may start the next cell at once (s_execute again): d is ready for it */
    kn_cell_t *cell = d->cell;
    d->cell = NULL;
    if (cell)
        kn_cell_done(&cell);
}

static void s_fail(kn_driver_t *d, const char *ename, const char *evalue)
{
    kn_cell_error(d->cell, ename, evalue, NULL);
    s_finish(d);
}

/* "the program was killed by SIGSEGV (Segmentation fault)" */
static void s_signal_text(char *buf, size_t size, const char *who, int sig)
{
    const char *abbrev = sigabbrev_np(sig);
    const char *desc = sigdescr_np(sig);
    if (abbrev)
        snprintf(buf, size, "%s was killed by SIG%s (%s)", who, abbrev, desc ? desc : "?");
    else
        snprintf(buf, size, "%s was killed by signal %d", who, sig);
}

/* At most S_OUTPUT_MAX bytes of name in the work directory. Caller owns return value. */
static char *s_read_output(const kn_driver_t *d, const char *name, size_t *len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", d->dir, name);
    cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    char *buf = cb_xmalloc(S_OUTPUT_MAX + 64);
    size_t got = 0;
    while (fd >= 0 && got < S_OUTPUT_MAX) {
        ssize_t n = read(fd, buf + got, S_OUTPUT_MAX - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    if (got == S_OUTPUT_MAX) {
        static const char cut[] = "\n[the rest of the compiler's output was cut]\n";
        memcpy(buf + got, cut, sizeof cut - 1);
        got += sizeof cut - 1;
    }
    buf[got] = '\0';
    *len = got;
    return buf;
}

/* The compiler's output as traceback lines (no trailing empty line). */
static json_t *s_lines(const char *text, size_t len)
{
    json_t *lines = json_array();
    const char *end = text + len;
    for (const char *p = text; p < end;) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *le = eol ? eol : end;
        json_array_append_new(lines, json_stringn_nocheck(p, (size_t)(le - p)));
        p = eol ? eol + 1 : end;
    }
    return lines;
}

static void s_ran(kn_proc_t *p, int status, void *arg)
{
    kn_driver_t *d = arg;
    char msg[160];
    d->proc = NULL;
    if (d->interrupted) {
        s_fail(d, "Interrupted", "the program was interrupted");
    } else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        s_finish(d);
    } else if (WIFEXITED(status)) {
        snprintf(msg, sizeof msg, "the program exited with status %d", WEXITSTATUS(status));
        s_fail(d, "ExitCode", msg);
    } else if (WIFSIGNALED(status)) {
        s_signal_text(msg, sizeof msg, "the program", WTERMSIG(status));
        s_fail(d, "Signal", msg);
    } else {
        s_fail(d, "ExitCode", "the program ended without an exit status");
    }
}

static void s_run(kn_driver_t *d)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/prog", d->dir);
    char *argv[] = {path, NULL};
    kn_proc_opts_t opts = {
        .argv = argv,
        .stdin_served = true,
        .on_exit = s_ran,
        .arg = d,
    };
    cb_error_t err = {0};
    d->proc = kn_proc_start(d->k, &opts, &err);
    if (!d->proc) {
        s_fail(d, "OSError", err.msg);
        return;
    }
}

static void s_compiled(kn_proc_t *p, int status, void *arg)
{
    kn_driver_t *d = arg;
    d->proc = NULL;
    if (d->interrupted) {
        s_fail(d, "Interrupted", "the compile was interrupted");
        return;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        size_t len = 0;
        cleanup_free char *out = s_read_output(d, "compile.out", &len);
        if (d->lang->lang == CS_RUST) {
            char *mapped = cs_map_rust_output(d->src, out, len);
            free(out);
            out = mapped;
            len = strlen(out);
        }
        cleanup_free char *first = cs_first_error(d->lang->lang, out, len);
        char msg[160];
        if (WIFSIGNALED(status))
            s_signal_text(msg, sizeof msg, "the compiler", WTERMSIG(status));
        else
            snprintf(msg, sizeof msg, "the compiler failed with status %d",
                     WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        kn_cell_error(d->cell, "CompileError", first[0] ? first : msg,
                      len ? s_lines(out, len) : NULL);
        s_finish(d);
        return;
    }
    cs_program_commit(d->prog, d->split);
    s_run(d);
}

static void s_execute(kn_driver_t *d, kn_cell_t *cell)
{
    d->cell = cell;
    d->interrupted = false;
    const char *code = kn_cell_code(cell);
    d->split = cs_cell_split(d->lang->lang, code, strlen(code), kn_cell_execution_count(cell));
    if (cs_cell_count(d->split) == 0) {
        s_finish(d); /* nothing but blanks and comments */
        return;
    }
    d->src = cs_render(d->prog, d->split);

    char path[4096];
    cb_error_t err = {0};
    snprintf(path, sizeof path, "%s/prog", d->dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/%s", d->dir, d->lang->source);
    if (cb_write_file(path, cs_source_text(d->src), cs_source_len(d->src), 0600, &err) < 0) {
        s_fail(d, "OSError", err.msg);
        return;
    }

    /* sh -c 'exec "$@" >compile.out 2>&1' sh COMPILER ARGS... -o prog SOURCE LIBS... */
    const char *argv[40];
    size_t n = 0;
    argv[n++] = "/bin/sh";
    argv[n++] = "-c";
    argv[n++] = "exec \"$@\" >compile.out 2>&1";
    argv[n++] = "sh";
    argv[n++] = d->lang->compiler;
    for (size_t i = 0; d->lang->args[i]; i++)
        argv[n++] = d->lang->args[i];
    argv[n++] = "-o";
    argv[n++] = "prog";
    argv[n++] = d->lang->source;
    for (size_t i = 0; d->lang->libs[i]; i++)
        argv[n++] = d->lang->libs[i];
    argv[n] = NULL;
    kn_proc_opts_t opts = {
        .argv = (char *const *)argv,
        .env = d->build_env,
        .cwd = d->dir,
        .stdin_served = false,
        .on_exit = s_compiled,
        .arg = d,
    };
    d->proc = kn_proc_start(d->k, &opts, &err);
    if (!d->proc) {
        s_fail(d, "OSError", err.msg);
        return;
    }
}

static void s_interrupt(kn_driver_t *d)
{
    if (!d->proc)
        return;
    d->interrupted = true;
    kn_proc_signal(d->proc, SIGKILL);
}

static void s_request(kn_driver_t *d, kn_request_t *req)
{
    const char *type = kn_request_type(req);
    json_t *content = kn_request_content(req);
    if (strcmp(type, "is_complete_request") == 0) {
        const char *code = json_string_value(json_object_get(content, "code"));
        const char *status = code ? cs_is_complete(d->lang->lang, code, strlen(code)) : "unknown";
        kn_request_reply(&req, json_pack("{s:s}", "status", status));
    } else if (strcmp(type, "complete_request") == 0) {
        json_int_t pos = json_integer_value(json_object_get(content, "cursor_pos"));
        kn_request_reply(&req, json_pack("{s:[],s:I,s:I,s:{}}", "matches", "cursor_start", pos,
                                         "cursor_end", pos, "metadata"));
    } else {
        kn_request_reply(&req, json_pack("{s:b,s:{},s:{}}", "found", 0, "data", "metadata"));
    }
}

static void s_input_reply(kn_driver_t *d, const char *value)
{
    (void)d; /* the core serves the program's stdin itself; we never ask */
    (void)value;
}

/* ---- the table ---------------------------------------------------------------------------- */

#define S_OPS(NAME, LANGUAGE, EXT, MIME, LEXER, CM, START)                                         \
    {                                                                                              \
        .name = NAME, .language = LANGUAGE, .file_extension = EXT, .mimetype = MIME,               \
        .pygments_lexer = LEXER, .codemirror_mode = CM, .start = START, .execute = s_execute,      \
        .interrupt = s_interrupt, .request = s_request, .input_reply = s_input_reply,              \
        .destroy = s_destroy,                                                                      \
    }

static const kn_driver_ops_t s_ops[] = {
    S_OPS("c", "c", ".c", "text/x-csrc", "c", "text/x-csrc", s_start_c),
    S_OPS("cpp", "c++", ".cpp", "text/x-c++src", "cpp", "text/x-c++src", s_start_cpp),
    S_OPS("rust", "rust", ".rs", "text/rust", "rust", "rust", s_start_rust),
    S_OPS("go", "go", ".go", "text/x-go", "go", "go", s_start_go),
};

const kn_driver_ops_t *kn_compiled_driver(const char *name)
{
    if (name && strcmp(name, "c++") == 0)
        name = "cpp";
    for (size_t i = 0; name && i < sizeof s_ops / sizeof *s_ops; i++)
        if (strcmp(name, s_ops[i].name) == 0)
            return &s_ops[i];
    return NULL;
}
