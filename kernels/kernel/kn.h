/* kernels/kernel/kn.h: the inside of cellblock-kernel, the one C program behind every Jupyter
 * kernel cellblock ships besides Python's ipykernel and R's IRkernel.
 *
 *   cellblock-kernel LANGUAGE -f CONNECTION_FILE
 *
 * The core (core.c) speaks the Jupyter wire protocol on the five channels of the connection file
 * (cb_jupyter does the framing and signing), runs one zloop, and keeps the rules every kernel
 * shares: shell requests one at a time in arrival order, status busy/idle around each, the
 * execution counter, execute_input, interrupt and shutdown on control, the heartbeat. What is
 * particular to a language lives in a driver (kn_driver_t) chosen by LANGUAGE:
 *
 *   repl.c      a live interpreter (node, ruby, bash, jshell) running a small driver script that
 *               speaks JSON lines with us on its fds 3 and 4 (docs/kernels.md, "driver protocol")
 *   compiled.c  C, C++, Rust and Go: every cell is compiled with the definitions of earlier cells
 *               and run (cellsplit.c splits a cell into definitions and statements)
 *
 * A driver gets requests from the core and answers them, possibly later: every request it is given
 * is finished exactly once, with kn_cell_done or kn_request_reply. Processes a driver starts with
 * kn_proc_start have their stdout and stderr forwarded as stream messages of the running cell and
 * their stdin served by the core (input_request when they block reading it).
 *
 * Threads: one. Every function here is called from the loop's thread, and every callback comes on
 * it. Nothing here blocks except kn_proc_start (fork) and the driver's own start.
 */
#ifndef KN_H
#define KN_H
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "cb/error.h"

typedef struct kn_kernel kn_kernel_t;   /* the core: sockets, loop, the current cell */
typedef struct kn_cell kn_cell_t;       /* one execute_request being run */
typedef struct kn_request kn_request_t; /* one complete/inspect/is_complete request */
typedef struct kn_proc kn_proc_t;       /* a process started for a driver */
typedef struct kn_driver kn_driver_t;   /* a language driver's own state (opaque to the core) */

/* ---- what the core asks of a driver ------------------------------------------------------- */

typedef struct {
    const char *name;            /* LANGUAGE on the command line: "javascript", "c", ... */
    const char *language;        /* language_info.name */
    const char *file_extension;  /* language_info.file_extension, ".js" */
    const char *mimetype;        /* language_info.mimetype */
    const char *pygments_lexer;  /* language_info.pygments_lexer */
    const char *codemirror_mode; /* language_info.codemirror_mode */

    /* Start the driver (spawn the interpreter, make the work directory, ...). *version gets the
     * language's version for kernel_info (Caller owns it; may stay NULL). 0, or -1 with err: the
     * kernel then exits with the message on stderr. May block (it runs before the loop). */
    kn_driver_t *(*start)(kn_kernel_t *k, char **version, cb_error_t *err);

    /* Run kn_cell_code(cell). Publish output with kn_cell_* and finish with kn_cell_done, now or
     * later. The core sends execute_input before and execute_reply after. */
    void (*execute)(kn_driver_t *d, kn_cell_t *cell);

    /* Stop the running cell (the core calls this only while one runs; it may be called again
     * while the same cell still runs). The cell still ends with kn_cell_done, with an error. */
    void (*interrupt)(kn_driver_t *d);

    /* complete_request, inspect_request, is_complete_request: content as received; finish with
     * kn_request_reply. NULL: the core answers an empty reply (complete: no matches; inspect:
     * found false; is_complete: "unknown"). */
    void (*request)(kn_driver_t *d, kn_request_t *req);

    /* An input_reply the driver asked for with kn_cell_input_request. */
    void (*input_reply)(kn_driver_t *d, const char *value);

    /* Shut down: kill what was started, remove what was made. Accepts NULL. */
    void (*destroy)(kn_driver_t **d_p);
} kn_driver_ops_t;

/* The drivers there are, by LANGUAGE; NULL when unknown. */
const kn_driver_ops_t *kn_repl_driver(const char *name);     /* repl.c */
const kn_driver_ops_t *kn_compiled_driver(const char *name); /* compiled.c */

/* ---- what the core gives a driver --------------------------------------------------------- */

const char *kn_cell_code(const kn_cell_t *cell); /* Borrowed; valid until kn_cell_done */
bool kn_cell_silent(const kn_cell_t *cell);
bool kn_cell_allow_stdin(const kn_cell_t *cell);
int kn_cell_execution_count(const kn_cell_t *cell); /* this cell's number (In [n]) */

/* stream: name is "stdout" or "stderr"; data need not be NUL-terminated or valid UTF-8 (invalid
 * bytes become U+FFFD). */
void kn_cell_stream(kn_cell_t *cell, const char *name, const char *data, size_t len);
/* display_data and execute_result. Takes ownership of data and metadata (metadata may be NULL). */
void kn_cell_display(kn_cell_t *cell, json_t *data, json_t *metadata);
void kn_cell_result(kn_cell_t *cell, json_t *data, json_t *metadata);
/* The error message; the reply's status becomes "error". Takes ownership of traceback (an array
 * of strings; NULL: one line "ename: evalue"). */
void kn_cell_error(kn_cell_t *cell, const char *ename, const char *evalue, json_t *traceback);
/* Ask the client for a line (input_request on the stdin channel); the answer comes to the
 * driver's input_reply. When the request does not allow stdin, this publishes an error instead
 * (StdinNotImplementedError) and returns -1: the driver should end the cell. */
int kn_cell_input_request(kn_cell_t *cell, const char *prompt, bool password);
/* The end of the cell: execute_reply (ok, or error when kn_cell_error was called), status idle,
 * and the next queued request. The cell is freed. */
void kn_cell_done(kn_cell_t **cell_p);

const char *kn_request_type(const kn_request_t *req); /* "complete_request", ... Borrowed */
json_t *kn_request_content(const kn_request_t *req);  /* Borrowed */
/* Send the reply with this content (Takes ownership; "status": "ok" is added when missing) and
 * free the request. */
void kn_request_reply(kn_request_t **req_p, json_t *content);

/* Start a process in its own process group. Its stdout and stderr are forwarded to the running
 * cell as streams (dropped when no cell runs). With stdin_served its stdin is a pipe the core
 * serves: when a process whose fd 0 is that pipe blocks reading it while a cell runs, the core
 * sends an input_request (prompt "": what the program printed as one is in its output) and writes the answer
 * and a newline into the pipe; without it, stdin is /dev/null. extra_fds: fds to pass as 3, 4,
 * ... (-1 ends the list; they are closed in the parent after the fork by the caller). on_exit is
 * called once, from the loop, after stdout and stderr reached end of file and the process was
 * reaped; status as from waitpid. The proc is freed after on_exit returns. */
typedef struct {
    char *const *argv;
    char *const *env; /* NULL: the kernel's own environment */
    const char *cwd;  /* NULL: the kernel's */
    bool stdin_served;
    const int *extra_fds;
    void (*on_exit)(kn_proc_t *p, int status, void *arg);
    void *arg;
} kn_proc_opts_t;
kn_proc_t *kn_proc_start(kn_kernel_t *k, const kn_proc_opts_t *opts, cb_error_t *err);
pid_t kn_proc_pid(const kn_proc_t *p);
/* kill(-pgid, sig): the process and everything it started in its group. */
void kn_proc_signal(kn_proc_t *p, int sig);

/* Watch an fd for reading: cb runs on the loop when it is readable (or at EOF/error); return -1
 * from cb to stop watching. */
typedef int (*kn_fd_fn)(kn_kernel_t *k, int fd, void *arg);
int kn_watch_fd(kn_kernel_t *k, int fd, kn_fd_fn cb, void *arg);
void kn_unwatch_fd(kn_kernel_t *k, int fd);

/* The directory the kernel's own files live in (the driver scripts: <dir>/drivers/...), found
 * from /proc/self/exe. Borrowed. */
const char *kn_libexec_dir(const kn_kernel_t *k);
/* A private directory for this kernel's files, made at start (mode 0700 under $TMPDIR) and
 * removed at exit. Borrowed. */
const char *kn_work_dir(const kn_kernel_t *k);

#endif
