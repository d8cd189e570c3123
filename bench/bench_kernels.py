#!/usr/bin/python3
"""bench_kernels.py: every language's kernel against the language's own command line, one run.

For each language whose kernel and toolchain are installed, with jupyter_client driving the
kernel directly on the host (no sandbox: this measures the kernel, not the sandbox, which
bench_sandbox and bench_pool measure):

  ready_ms   start_kernel() until the kernel_info reply, over --kernels starts
  cell_ms    a trivial cell's round trip (execute until execute_reply and status idle), over --n
             cells after --warmup. Interpreted languages: an expression (`1`); compiled languages:
             a cell that prints a line, which is compiled and run each time
  python3    Debian's ipykernel measured the same way: the reference for what jupyter_client
             itself costs in each round trip
  cli_ms     the same work through the language's own command line in a fresh process, --cli-n
             times: node -e, bash -c, ruby -e, Rscript -e, jshell with a script; for compiled
             languages the compiler building the same program and the program running
             (gcc/g++/rustc/go build, then ./prog)

and the ratios cell/cli and, for compiled languages, cell minus cli (what the kernel adds to its
compiler's time). Goals (issue 15), reported, never a failure: interpreted cell p50 under 2 ms;
interpreted ready under 150 ms (JVM and R excepted); compiled cell within cli + 10 ms.

Prints one JSON object on stdout; progress goes to stderr. Needs Debian's python3 with
python3-jupyter-client. --build is the cellblock build directory (cellblock-kernel in
<build>/libexec/cellblock).
"""
import argparse
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

from jupyter_client import KernelManager
from jupyter_client.kernelspec import KernelSpecManager

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(HERE)

# language: (kernelspec dir name, trivial cell, CLI reference as a function of a scratch dir)
HELLO = {
    "c": ('#include <stdio.h>\nint main(void) { printf("hi\\n"); return 0; }\n', "hello.c",
          ["/usr/bin/gcc", "-std=gnu17", "-O0", "-w", "-o", "prog", "hello.c", "-lm"]),
    "cpp": ('#include <cstdio>\nint main() { std::printf("hi\\n"); return 0; }\n', "hello.cpp",
            ["/usr/bin/g++", "-std=gnu++17", "-O0", "-w", "-o", "prog", "hello.cpp"]),
    "rust": ('fn main() { println!("hi"); }\n', "main.rs",
             ["/usr/bin/rustc", "--edition", "2021", "-C", "opt-level=0", "-C", "debuginfo=0",
              "-o", "prog", "main.rs"]),
    "go": ('package main\nimport "fmt"\nfunc main() { fmt.Println("hi") }\n', "main.go",
           ["/usr/bin/go", "build", "-o", "prog", "main.go"]),
}
LANGS = {
    # the reference: Debian's ipykernel, through the same client in the same run
    "python3": {"cell": "1", "cli": ["/usr/bin/python3", "-c", "1"]},
    "javascript": {"cell": "1", "cli": ["/usr/bin/node", "-e", "1"]},
    "typescript": {"cell": "1", "cli": None},  # no standalone CLI in Debian beyond tsc + node
    "bash": {"cell": "true", "cli": ["/bin/bash", "-c", ":"]},
    "ruby": {"cell": "1", "cli": ["/usr/bin/ruby", "-e", "1"]},
    "java": {"cell": "1", "cli": "jshell"},
    "ir": {"cell": "1", "cli": ["/usr/bin/Rscript", "-e", "1"]},
    "c": {"cell": 'printf("hi\\n");', "cli": "build:c"},
    "cpp": {"cell": 'std::printf("hi\\n");', "prelude": "#include <cstdio>", "cli": "build:cpp"},
    "rust": {"cell": 'println!("hi");', "cli": "build:rust"},
    "go": {"cell": 'fmt.Println("hi")', "prelude": 'import "fmt"', "cli": "build:go"},
}
INTERPRETED = {"python3", "javascript", "typescript", "bash", "ruby", "java", "ir"}


def pct(xs, p):
    xs = sorted(xs)
    if not xs:
        return None
    k = max(0, min(len(xs) - 1, int(round(p / 100.0 * len(xs) + 0.5)) - 1))
    return round(xs[k], 3)


def summary(xs):
    return {"n": len(xs), "p50": pct(xs, 50), "p90": pct(xs, 90), "min": round(min(xs), 3) if xs else None}


def log(*a):
    print("bench_kernels:", *a, file=sys.stderr, flush=True)


def make_specs(build, workdir):
    """A kernels directory whose specs are the project's with {cellblock_libexec} pointing at the
    build tree, and IRkernel's as installed; returns the names found."""
    libexec = os.path.join(os.path.abspath(build), "libexec", "cellblock")
    out = os.path.join(workdir, "kernels")
    os.makedirs(out)
    names = []
    for name in LANGS:
        src = os.path.join(SOURCE, "kernels", name, "kernel.json")
        if not os.path.exists(src):
            continue
        with open(src) as f:
            spec = json.load(f)
        spec["argv"] = [a.replace("{cellblock_libexec}", libexec) for a in spec["argv"]]
        missing = [r for r in spec.get("metadata", {}).get("cellblock", {}).get("requires", [])
                   if not os.path.exists(r["path"])]
        if missing:
            log(f"{name}: skipped, needs {missing[0]['package']}")
            continue
        os.makedirs(os.path.join(out, name))
        with open(os.path.join(out, name, "kernel.json"), "w") as f:
            json.dump(spec, f)
        names.append(name)
    return out, names


def recv(get, deadline):
    """The next message from get (kc.get_shell_msg or kc.get_iopub_msg) before the deadline.
    jupyter_client's blocking calls can raise Empty before their timeout has passed (seen with
    nest_asyncio under load), so they are asked again until the deadline itself has passed."""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no message before the deadline")
        try:
            return get(timeout=left)
        except queue.Empty:
            continue


def run_cell(kc, code, timeout):
    deadline = time.monotonic() + timeout
    t0 = time.perf_counter()
    msg_id = kc.execute(code)
    reply = recv(kc.get_shell_msg, deadline)
    while reply["parent_header"].get("msg_id") != msg_id:
        reply = recv(kc.get_shell_msg, deadline)
    while True:
        m = recv(kc.get_iopub_msg, deadline)
        if (m["parent_header"].get("msg_id") == msg_id and m["msg_type"] == "status"
                and m["content"]["execution_state"] == "idle"):
            break
    dt = (time.perf_counter() - t0) * 1000.0
    if reply["content"]["status"] != "ok":
        raise RuntimeError(f"cell {code!r} failed: {reply['content']}")
    return dt


def bench_kernel(name, ksm, args):
    ready, cells = [], []
    L = LANGS[name]
    for i in range(args.kernels):
        km = KernelManager(kernel_name=name, kernel_spec_manager=ksm, transport="ipc")
        t0 = time.perf_counter()
        km.start_kernel()
        kc = km.client()
        kc.start_channels()
        try:
            kc.kernel_info()
            recv(kc.get_shell_msg, time.monotonic() + args.timeout)
            ready.append((time.perf_counter() - t0) * 1000.0)
            # The kernel_info reply says the kernel is up, not that our iopub subscription is:
            # what a kernel publishes before it joins is lost (PUB/SUB), so wait_for_ready
            # (kernel_info until iopub speaks) before timing cells. Not timed.
            kc.wait_for_ready(timeout=args.timeout)
            if i == args.kernels - 1:  # the cells in the last kernel
                if L.get("prelude"):
                    run_cell(kc, L["prelude"], args.timeout)
                for j in range(args.warmup + args.n):
                    dt = run_cell(kc, L["cell"], args.timeout)
                    if j >= args.warmup:
                        cells.append(dt)
        finally:
            kc.stop_channels()
            km.shutdown_kernel(now=True)
    return ready, cells


def time_cmd(argv, n, cwd=None, stdin=None):
    xs = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run(argv, cwd=cwd, input=stdin, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=True)
        xs.append((time.perf_counter() - t0) * 1000.0)
    return xs


def bench_cli(name, args, workdir):
    cli = LANGS[name]["cli"]
    if cli is None:
        return None
    if cli == "jshell":
        return time_cmd(["/usr/bin/jshell", "-q", "-"], args.cli_n, stdin=b"1\n/exit\n")
    if isinstance(cli, str) and cli.startswith("build:"):
        src, fname, build = HELLO[cli[6:]]
        d = os.path.join(workdir, "cli-" + name)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, fname), "w") as f:
            f.write(src)
        env = dict(os.environ, GOCACHE=os.path.join(d, "gocache"), GO111MODULE="off",
                   GOPROXY="off", GOPATH=os.path.join(d, "gopath"))
        xs = []
        for i in range(args.cli_n):
            # A new program each time, as every cell is: go's build cache would otherwise skip
            # the compile of an unchanged file (the kernel's cells differ, if only in the line
            # directives naming the cell).
            with open(os.path.join(d, fname), "w") as f:
                f.write(src + f"// run {i}\n")
            t0 = time.perf_counter()
            subprocess.run(build, cwd=d, env=env, check=True, stdout=subprocess.DEVNULL)
            subprocess.run(["./prog"], cwd=d, check=True, stdout=subprocess.DEVNULL)
            xs.append((time.perf_counter() - t0) * 1000.0)
        return xs
    return time_cmd(cli, args.cli_n)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.environ.get("CB_BUILD_DIR", "build"))
    ap.add_argument("--kernels", type=int, default=int(os.environ.get("BENCH_KERNELS", 5)))
    ap.add_argument("--n", type=int, default=int(os.environ.get("BENCH_KERNEL_CELLS", 100)))
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--cli-n", type=int, default=int(os.environ.get("BENCH_CLI_N", 10)))
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--only", default="", help="comma-separated kernel names")
    args = ap.parse_args()
    if not os.path.exists(os.path.join(args.build, "libexec", "cellblock", "cellblock-kernel")):
        print(json.dumps({"name": "kernels", "skipped": f"{args.build}/libexec/cellblock/cellblock-kernel not built"}))
        return 0
    out = {"name": "kernels", "languages": {}}
    with tempfile.TemporaryDirectory(prefix="cb-bench-kernels-") as workdir:
        kdir, names = make_specs(args.build, workdir)
        ksm = KernelSpecManager(kernel_dirs=[kdir])
        only = [x for x in args.only.split(",") if x]
        for name in names:
            if only and name not in only:
                continue
            compiled = name not in INTERPRETED
            n = args.n if not compiled else max(5, args.n // 10)
            log(f"{name}: {args.kernels} starts, {n} cells")
            a = argparse.Namespace(**vars(args))
            a.n = n
            try:
                ready, cells = bench_kernel(name, ksm, a)
                cli = bench_cli(name, args, workdir)
            except Exception as e:  # a broken kernel is a finding to report, not a crash
                out["languages"][name] = {"error": f"{type(e).__name__}: {e}"}
                log(f"{name}: {traceback.format_exc()}")
                continue
            r = {"ready_ms": summary(ready), "cell_ms": summary(cells)}
            if cli:
                r["cli_ms"] = summary(cli)
                r["cell_over_cli"] = round(pct(cells, 50) / pct(cli, 50), 3)
                if compiled:
                    r["cell_minus_cli_ms"] = round(pct(cells, 50) - pct(cli, 50), 3)
            if name == "python3":
                r["goal"] = "reference (ipykernel)"
                r["goal_met"] = None
            elif compiled:
                r["goal"] = "cell within cli + 10 ms"
                r["goal_met"] = r.get("cell_minus_cli_ms", 1e9) < 10
            else:
                excepted = name in ("java", "ir")
                r["goal"] = "cell p50 < 2 ms" + ("" if excepted else "; ready p50 < 150 ms")
                r["goal_met"] = pct(cells, 50) < 2 and (excepted or pct(ready, 50) < 150)
            out["languages"][name] = r
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
