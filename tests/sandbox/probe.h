/* probe.h: the in-sandbox probe (sbx-probe) shares its TAP output and options between files.
 * The probe runs as an ordinary process inside a sandbox and tries to break each promise in
 * docs/security.md; every check prints one TAP line through CB_OK (cb/tap.h).
 */
#ifndef PROBE_H
#define PROBE_H

#include <stdbool.h>

#include "cb/tap.h"

typedef struct {
    bool seccomp;              /* the sandbox was made with the filter on (default true) */
    int host_port;             /* a TCP port listening on the host's 127.0.0.1; 0: skip */
    int host_pid;              /* a pid on the host (the test driver); 0: skip */
    const char *host_paths[8]; /* host paths that must not be visible (NULL-terminated) */
} probe_opts_t;

/* Syscall classes the filter forbids, each tried with bad arguments (probe_syscalls.c). */
void probe_syscalls(const probe_opts_t *opts);

#endif
