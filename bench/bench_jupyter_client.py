#!/usr/bin/python3
"""bench_jupyter_client.py: the reference the gateway is measured against.

Drives python3 ipykernels with jupyter_client (KernelManager + BlockingKernelClient) over ipc://
sockets, as the gateway does, and measures:

  start_ms   start_kernel() until wait_for_ready() returns, over --kernels kernels started one
             after another. wait_for_ready() ends with 0.2 s of iopub silence, a cost of
             jupyter_client itself, so the time of the kernel_info reply it accepted is also
             reported as ready_ms (closer to what the gateway's KG_EVENT_READY means).
  exec_ms    for --n executions of a trivial cell (after --warmup), execute() until both the
             execute_reply on shell and the status idle on iopub for that msg_id have arrived:
             the moment an execution is done, for the gateway too.
  client_cpu_us_per_exec   this process's user+sys CPU over the timed loop, per execution;
             client_user_cpu_us_per_exec and client_sys_cpu_us_per_exec split it into user-space
             CPU (Python, jupyter_client, pyzmq) and kernel-space CPU (system calls, wakeups).

With --mode start (bench_pool's reference: starting a kernel from nothing to a first result),
it instead runs --rounds rounds, each a fresh kernel, after --warmup untimed ones (default 1 in
this mode), and measures per round:

  start_to_result_ms   start_kernel() + start_channels() + wait_for_ready(), then execute() of
             --code until its execute_reply and status idle: what a caller of jupyter_client waits
             from "I want a kernel" to its first result.
  kernel_info_reply_ms   start_kernel() until the kernel_info reply wait_for_ready() accepted.
  flush_ms   wait_for_ready()'s closing wait for 0.2 s of iopub silence, part of the above.
  start_to_result_minus_flush_ms   start_to_result_ms minus flush_ms, round by round: the same
             path without that fixed cost of jupyter_client's.

Each kernel is shut down (untimed) before the next round starts.

Count-bounded and time-bounded (--max-seconds for the execution loop or the rounds, --timeout
per message). Prints one JSON object on stdout; progress goes to stderr. Needs Debian's python3
(/usr/bin/python3) with python3-jupyter-client and python3-ipykernel; uses only the standard
library besides those.
"""
import argparse
import json
import math
import os
import resource
import sys
import tempfile
import time

# Extra kernel environment, the same in bench_gateway.c. It only silences debugpy's warning about
# frozen modules, printed by every ipykernel at start and by this process too (jupyter_client's
# kernelspec lookup imports ipykernel), so it is set here before that import.
KERNEL_ENV = {"PYDEVD_DISABLE_FILE_VALIDATION": "1"}
os.environ.update(KERNEL_ENV)

from jupyter_client import KernelManager  # noqa: E402
from jupyter_client import __version__ as jupyter_client_version  # noqa: E402


def summary(values_ms):
    """Nearest-rank percentiles, the same definition bench_gateway.c uses."""
    xs = sorted(values_ms)
    n = len(xs)
    if n == 0:
        return {"n": 0}

    def pct(p):
        return xs[max(0, math.ceil(p / 100.0 * n) - 1)]

    return {
        "p50": round(pct(50), 4),
        "p90": round(pct(90), 4),
        "p99": round(pct(99), 4),
        "mean": round(sum(xs) / n, 4),
        "min": round(xs[0], 4),
        "max": round(xs[-1], 4),
        "n": n,
    }


def cpu_seconds():
    """(user, sys) CPU seconds of this process so far."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime, ru.ru_stime


def log(msg):
    print(f"bench_jupyter_client: {msg}", file=sys.stderr, flush=True)


def start_kernel(args, run_dir, index):
    """Start one kernel; return (km, kc, start_ms, ready_ms), from the moment of the call."""
    km = KernelManager(
        kernel_name=args.kernel_name,
        transport="ipc",
        connection_file=os.path.join(run_dir, f"kernel-{index}.json"),
    )
    ready_at = []
    t0 = time.perf_counter()
    # The kernel's stdout goes to our stderr: our stdout carries only the JSON result.
    km.start_kernel(env=dict(os.environ, **KERNEL_ENV), stdout=sys.stderr)
    kc = km.client()
    # Timestamp the kernel_info reply wait_for_ready accepts, before its final iopub flush.
    handle = kc._handle_kernel_info_reply

    def timed_handle(msg):
        ready_at.append(time.perf_counter())
        return handle(msg)

    kc._handle_kernel_info_reply = timed_handle
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=args.timeout)
    except BaseException:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
        raise
    t1 = time.perf_counter()
    ready = (ready_at[0] if ready_at else t1) - t0
    return km, kc, (t1 - t0) * 1000.0, ready * 1000.0


def execute_once(kc, code, timeout):
    """One round trip: execute() until execute_reply and status idle for its msg_id."""
    t0 = time.perf_counter()
    msg_id = kc.execute(code)
    deadline = time.monotonic() + timeout
    reply = None
    idle = False
    while reply is None:
        msg = kc.get_shell_msg(timeout=max(0.001, deadline - time.monotonic()))
        if msg["parent_header"].get("msg_id") == msg_id:
            reply = msg
    while not idle:
        msg = kc.get_iopub_msg(timeout=max(0.001, deadline - time.monotonic()))
        if (
            msg["parent_header"].get("msg_id") == msg_id
            and msg["msg_type"] == "status"
            and msg["content"]["execution_state"] == "idle"
        ):
            idle = True
    t1 = time.perf_counter()
    status = reply["content"]["status"]
    if status != "ok":
        raise RuntimeError(f"execution of {code!r} ended with status {status!r}")
    return (t1 - t0) * 1000.0


def start_rounds(args, run_dir):
    """--mode start: args.warmup untimed rounds, then up to args.rounds timed ones. Each round
    starts a kernel, runs args.code to its end, and shuts the kernel down (untimed). Returns
    (lists of ms per round: start_to_result, kernel_info_reply, flush; a note or None)."""
    to_result, info_reply, flush = [], [], []
    t_end = time.monotonic() + args.max_seconds
    for i in range(args.warmup + args.rounds):
        if i >= args.warmup and time.monotonic() > t_end:
            note = f"time limit of {args.max_seconds:g} s reached"
            log(note)
            return to_result, info_reply, flush, note
        t0 = time.perf_counter()
        km, kc, start_ms, ready_ms = start_kernel(args, run_dir, i)
        try:
            exec_ms = execute_once(kc, args.code, args.timeout)
            total = (time.perf_counter() - t0) * 1000.0
        finally:
            kc.stop_channels()
            km.shutdown_kernel(now=True)
        if i < args.warmup:
            log(f"warm-up round {i + 1}/{args.warmup}: {total:.1f} ms")
            continue
        to_result.append(total)
        info_reply.append(ready_ms)
        flush.append(start_ms - ready_ms)
        log(f"round {i + 1 - args.warmup}/{args.rounds}: first result after {total:.1f} ms "
            f"(kernel_info reply {ready_ms:.1f} ms, iopub flush {start_ms - ready_ms:.1f} ms, "
            f"execute {exec_ms:.1f} ms)")
    return to_result, info_reply, flush, None


def main_start(args):
    """--mode start: print its JSON object."""
    with tempfile.TemporaryDirectory(prefix="cb-bench-jc-") as run_dir:
        to_result, info_reply, flush, note = start_rounds(args, run_dir)
    result = {
        "name": "jupyter_client-start",
        "version": jupyter_client_version,
        "transport": "ipc",
        "kernel_name": args.kernel_name,
        "code": args.code,
        "warmup": args.warmup,
        "start_to_result_ms": summary(to_result),
        "kernel_info_reply_ms": summary(info_reply),
        "flush_ms": summary(flush),
        "start_to_result_minus_flush_ms": summary([t - f for t, f in zip(to_result, flush)]),
    }
    if note:
        result["note"] = note
    json.dump(result, sys.stdout, indent=2)
    print()
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mode", choices=("execute", "start"), default="execute",
                    help="execute: round trips on running kernels (default); start: a fresh "
                    "kernel to its first result, --rounds times")
    ap.add_argument("--kernels", type=int, default=5, help="kernels to start (default 5)")
    ap.add_argument("--n", type=int, default=500, help="timed executions (default 500)")
    ap.add_argument("--rounds", type=int, default=20,
                    help="--mode start: timed rounds (default 20)")
    ap.add_argument("--warmup", type=int, default=None,
                    help="untimed executions first (default 20); --mode start: untimed rounds "
                    "(default 1)")
    ap.add_argument("--code", default=None,
                    help="the cell to run (default 'pass'; --mode start: '1+1')")
    ap.add_argument("--kernel-name", default="python3", help="kernelspec (default python3)")
    ap.add_argument("--max-seconds", type=float, default=120.0,
                    help="stop the timed loop (or the rounds) after this long (default 120)")
    ap.add_argument("--timeout", type=float, default=60.0,
                    help="seconds to wait for a kernel or a message (default 60)")
    args = ap.parse_args()
    start = args.mode == "start"
    if args.warmup is None:
        args.warmup = 1 if start else 20
    if args.code is None:
        args.code = "1+1" if start else "pass"
    if args.kernels < 1 or args.n < 1 or args.rounds < 1 or args.warmup < 0:
        ap.error("--kernels, --n and --rounds must be at least 1, --warmup at least 0")
    if start:
        return main_start(args)

    kernels = []
    start_ms, ready_ms = [], []
    exec_ms = []
    cpu_us_per_exec = user_us_per_exec = sys_us_per_exec = None
    stopped_early = None
    with tempfile.TemporaryDirectory(prefix="cb-bench-jc-") as run_dir:
        try:
            for i in range(args.kernels):
                km, kc, s, r = start_kernel(args, run_dir, i)
                kernels.append((km, kc))
                start_ms.append(s)
                ready_ms.append(r)
                log(f"kernel {i + 1}/{args.kernels}: ready in {r:.1f} ms, "
                    f"wait_for_ready returned after {s:.1f} ms")

            kc = kernels[0][1]
            for _ in range(args.warmup):
                execute_once(kc, args.code, args.timeout)
            log(f"{args.warmup} warm-up executions done; timing {args.n}")

            cpu0 = cpu_seconds()
            t_end = time.monotonic() + args.max_seconds
            for _ in range(args.n):
                if time.monotonic() > t_end:
                    stopped_early = f"time limit of {args.max_seconds:g} s reached"
                    log(stopped_early)
                    break
                exec_ms.append(execute_once(kc, args.code, args.timeout))
            cpu1 = cpu_seconds()
            if exec_ms:
                user_us = (cpu1[0] - cpu0[0]) * 1e6 / len(exec_ms)
                sys_us = (cpu1[1] - cpu0[1]) * 1e6 / len(exec_ms)
                cpu_us_per_exec = round(user_us + sys_us, 1)
                user_us_per_exec = round(user_us, 1)
                sys_us_per_exec = round(sys_us, 1)
        finally:
            for km, kc in kernels:
                kc.stop_channels()
            for km, kc in kernels:
                try:
                    km.shutdown_kernel(now=True)
                except Exception as e:  # report, keep shutting the others down
                    log(f"shutdown: {e}")
            del kc, km
            kernels.clear()

    result = {
        "name": "jupyter_client",
        "version": jupyter_client_version,
        "transport": "ipc",
        "kernel_name": args.kernel_name,
        "code": args.code,
        "warmup": args.warmup,
        "start_ms": summary(start_ms),
        "ready_ms": summary(ready_ms),
        "exec_ms": summary(exec_ms),
        "client_cpu_us_per_exec": cpu_us_per_exec,
        "client_user_cpu_us_per_exec": user_us_per_exec,
        "client_sys_cpu_us_per_exec": sys_us_per_exec,
    }
    if stopped_early:
        result["note"] = stopped_early
    json.dump(result, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
