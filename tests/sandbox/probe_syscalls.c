/* probe_syscalls.c: the syscall part of sbx-probe, run inside a real sandbox.
 *
 * It tries every class of syscall the filter forbids (docs/security.md) and prints one TAP line
 * each. The probes are the table in sandbox/seccomp_probes.h, the same ones the filter's unit
 * test (sandbox/test_seccomp.c) runs outside a sandbox, so both hold the filter to one list:
 * each call carries arguments the kernel would reject anyway, and the ones that cannot be made
 * harmless by arguments (nested user namespaces through unshare and clone, personality,
 * vhangup, i386 and x32 calls) run in throwaway children. Besides the forbidden classes it
 * checks that what the argument rules must allow (plain clone, AF_UNIX/AF_INET/AF_NETLINK
 * sockets, ordinary ioctls, the personality query) still works. That a filter is in force at
 * all is checked with the identity promises (probe.c).
 *
 * The unlisted-syscall probe is reported as a diagnostic only: its answer depends on whether
 * the sandbox runs the filter in deny or log mode, which the probe is not told.
 */
#include "probe.h"

/* The table lives beside the filter it describes; the path keeps sbx-probe free of the sandbox
 * library's include directory. */
#include "seccomp_probes.h"

void probe_syscalls(const probe_opts_t *opts)
{
    if (!opts->seccomp) {
        CB_DIAG("seccomp off: syscall probes skipped");
        return;
    }
    for (size_t i = 0; i < SBX_PROBE_COUNT; i++) {
        const sbx_probe_t *p = &sbx_probes[i];
        char have[64], want[64];
        fflush(stdout); /* the fork-based probes must not duplicate buffered output */
        int result = p->call(p->arg);
        sbx_probe_describe(result, have, sizeof have);
        sbx_probe_describe(p->expect, want, sizeof want);
        switch (p->kind) {
        case SBX_PROBE_DENIED:
        case SBX_PROBE_PASSES:
            CB_OK(result == p->expect, "syscalls: %s -> %s (got %s)", p->name, want, have);
            break;
        case SBX_PROBE_KILLS:
            /* A kernel without an i386 entry kills int $0x80 with SIGSEGV before the filter
             * sees it; the call still never runs. */
            CB_OK(result < 0, "syscalls: %s kills the process (got %s)", p->name, have);
            if (result < 0 && result != p->expect)
                CB_DIAG("%s: killed by the kernel, not by the filter (%s)", p->name, have);
            break;
        case SBX_PROBE_UNLISTED:
            CB_DIAG("%s: %s (ENOSYS in deny mode; anything else in log mode)", p->name, have);
            break;
        }
    }
}
