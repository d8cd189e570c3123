/* kernels/kernel/kernel.h: what the files of cellblock-kernel share among themselves and with no
 * one else (kn.h is the interface the drivers see).
 *
 * The kernel's state is one struct, kn_kernel_t, owned by core.c and read by proc.c (the processes
 * it keeps and reaps) and stdin.c (the watcher that serves their stdin). Everything runs on the
 * one loop thread.
 */
#ifndef KN_KERNEL_H
#define KN_KERNEL_H

#include <czmq.h>
#include <stdbool.h>

#include "cb/util.h"
#include "jupyter/connfile.h"
#include "jupyter/wire.h"
#include "kn.h"

#define KN_STREAM_CHUNK (64 * 1024) /* the most bytes one stream message carries */

/* A fd watched for reading (kn_watch_fd). The record of an unwatched fd is freed two sweeps
 * later (core.c, s_on_sweep): zloop may still hold the pointer for the rest of the pass that
 * unwatched it. */
typedef struct kn_watch {
    kn_kernel_t *k;
    int fd;
    kn_fd_fn cb;
    void *arg;
    bool dead;
    bool swept; /* dead at the last sweep already */
    struct kn_watch *next;
} kn_watch_t;

/* Who asked the client for a line: nobody, a driver (kn_cell_input_request) or the stdin watcher
 * on behalf of a process blocked reading its stdin pipe. */
typedef enum { KN_INPUT_NONE = 0, KN_INPUT_DRIVER, KN_INPUT_PIPE } kn_input_asker_t;

struct kn_kernel {
    zloop_t *loop;
    zsock_t *sock[JP_CH_COUNT];
    jp_signer_t *signer;
    jp_replay_t *replay;
    char session[40];

    const kn_driver_ops_t *ops;
    kn_driver_t *driver;
    char *version;

    char libexec_dir[4096];
    char work_dir[4096];

    int execution_count;
    zlist_t *queue;        /* jp_msg_t * shell requests waiting their turn */
    bool busy;             /* a cell or a driver request is running */
    bool pumping;          /* s_pump is on the stack */
    kn_cell_t *cell;       /* the running cell, or NULL */
    kn_request_t *request; /* the running complete/inspect/is_complete, or NULL */

    kn_input_asker_t input_asker; /* an input_request is out and not yet answered */
    kn_proc_t *input_proc;        /* KN_INPUT_PIPE: whose pipe gets the answer */

    kn_proc_t *procs; /* every process started and not yet freed */
    kn_watch_t *watches;
    int signal_fd;
    int stdin_timer; /* zloop timer id of the stdin watcher, or -1 */
    bool syscall_warned;

    bool stopping;   /* the loop ends at the next handler return */
    int exit_status; /* what main returns */
};

/* core.c */
/* Serve the connection file's channels with this driver until shutdown; returns the exit status. */
int kn_kernel_run(const kn_driver_ops_t *ops, const char *connfile);
void kn_kernel_stop(kn_kernel_t *k, int status); /* end the loop; main exits with status */
/* Publish on iopub with this parent header (Borrowed; may be NULL). Takes ownership of content. */
void kn_publish(kn_kernel_t *k, const char *type, json_t *parent, json_t *content);
/* Send an input_request on behalf of the stdin watcher for p. */
void kn_stdin_ask(kn_kernel_t *k, kn_proc_t *p);
/* The stdin watcher found a process reading stdin while the cell does not allow it. */
void kn_stdin_refuse(kn_kernel_t *k);
bool kn_cell_interrupted(const kn_cell_t *cell); /* an interrupt was sent during this cell */

/* proc.c */
void kn_procs_reap(kn_kernel_t *k);        /* on SIGCHLD: waitpid every child that ended */
void kn_procs_free_all(kn_kernel_t *k);    /* at exit: kill and free, no on_exit calls */
void kn_proc_drain(kn_proc_t *p);          /* forward what its stdout/stderr hold now */
int kn_proc_stderr_fd(const kn_proc_t *p); /* the parent's end, or -1 after EOF */
int kn_proc_stdin_write(kn_proc_t *p, const char *data, size_t len); /* into the served pipe */
bool kn_proc_stdin_served(const kn_proc_t *p);
unsigned long kn_proc_stdin_inode(const kn_proc_t *p); /* the served pipe's inode */
int kn_proc_stdin_pending(const kn_proc_t *p);         /* bytes unread in the pipe, or -1 */
kn_proc_t *kn_proc_next(const kn_proc_t *p);
void kn_proc_detach(kn_proc_t *p); /* on_exit will not be called */

/* stdin.c */
void kn_stdin_start(kn_kernel_t *k); /* when a cell starts */
void kn_stdin_stop(kn_kernel_t *k);  /* when it ends */

#endif
