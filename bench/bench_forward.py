#!/usr/bin/python3
"""bench_forward.py: request latency through a port forward against the same server reached
directly, in the same run. Prints one JSON object.

    /usr/bin/python3 bench/bench_forward.py --cellblock build/bin/cellblock [--n 500]

A Python web app (tests/http/fwd_lib.py's, the stdlib ThreadingHTTPServer) runs inside a
sandbox of `cellblock serve`. The same client program, in a process of its own, times N
requests, each on a fresh connection (a forward carries one request per connection, so the
direct side does the same): connect, GET /echo, read to the close.
  - direct:  the client runs inside the sandbox (started by the kernel with subprocess) and
             reaches 127.0.0.1:8000 on the sandbox's own loopback;
  - forward: the client runs on the host and goes through serve's front door, by path
             (/sandboxes/{id}/ports/8000/echo) with the token.
The two alternate in blocks, so drift on a busy machine touches both. Goal: the forward adds
under 0.5 ms at p50 (reported, never a failure).
"""
import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "http"))
from fwd_lib import Mcp, app_code  # noqa: E402
from serve import Serve  # noqa: E402

APP_PORT = 8000
GOAL_ADDED_P50_MS = 0.5

CLIENT = r'''
import json, socket, sys, time
port, path, host, n, auth = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
req = ("GET %s HTTP/1.1\r\nHost: %s\r\n%sConnection: close\r\n\r\n" %
       (path, host, ("Authorization: Bearer %s\r\n" % auth) if auth else "")).encode()
out = []
for _ in range(n):
    t0 = time.perf_counter()
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(req)
    got = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        got += b
    s.close()
    out.append((time.perf_counter() - t0) * 1000)
    if not got.startswith(b"HTTP/1.0 200") and not got.startswith(b"HTTP/1.1 200"):
        raise SystemExit("bad answer: %r" % got[:200])
print(json.dumps(out))
'''


def pct(xs, p):
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))] if s else None


def summary(xs):
    return {"n": len(xs), "p50": pct(xs, 50), "p90": pct(xs, 90), "p99": pct(xs, 99),
            "min": min(xs) if xs else None}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cellblock", default="build/bin/cellblock")
    ap.add_argument("--n", type=int, default=int(os.environ.get("BENCH_FORWARD_N", "500")))
    ap.add_argument("--blocks", type=int, default=5)
    args = ap.parse_args()
    per = max(1, args.n // args.blocks)
    with Serve(os.path.abspath(args.cellblock)) as srv:
        mcp = Mcp(srv.port, srv.token)
        sid = mcp.call("sandbox_create", {})["sandbox_id"]
        mcp.call("code_execute", {"sandbox_id": sid, "code": app_code(APP_PORT)})
        mcp.call("code_execute", {"sandbox_id": sid, "code": "CLIENT = %r" % CLIENT})
        mcp.call("sandbox_expose_port", {"sandbox_id": sid, "port": APP_PORT})
        path = f"/sandboxes/{sid}/ports/{APP_PORT}/echo"

        def direct(n):
            code = ("import subprocess, sys\n"
                    f"r = subprocess.run([sys.executable, '-c', CLIENT, '{APP_PORT}', '/echo', "
                    f"'127.0.0.1:{APP_PORT}', '{n}', ''], capture_output=True, text=True)\n"
                    "print(r.stdout if r.returncode == 0 else 'ERR ' + r.stderr[-500:])")
            out = mcp.call("code_execute", {"sandbox_id": sid, "code": code, "timeout_s": 600})
            if out["stdout"].startswith("ERR") or out["status"] != "ok":
                raise SystemExit("direct client failed: " + json.dumps(out)[:600])
            return json.loads(out["stdout"])

        def forward(n):
            r = subprocess.run([sys.executable, "-c", CLIENT, str(srv.port), path,
                                f"127.0.0.1:{srv.port}", str(n), srv.token],
                               capture_output=True, text=True, timeout=600)
            if r.returncode != 0:
                raise SystemExit("forward client failed: " + r.stderr[-600:])
            return json.loads(r.stdout)

        direct(20)
        forward(20)  # warm-up
        d, f = [], []
        t0 = time.monotonic()
        for _ in range(args.blocks):
            d += direct(per)
            f += forward(per)
        wall = time.monotonic() - t0
    ds, fs = summary(d), summary(f)
    added = fs["p50"] - ds["p50"]
    print(json.dumps({
        "name": "forward",
        "what": "GET on a fresh connection, the sandbox's web app reached directly (a client "
                "inside the sandbox) and through serve's port forward (path form, token)",
        "direct_ms": ds, "forward_ms": fs,
        "added_p50_ms": added, "ratio_p50": fs["p50"] / ds["p50"] if ds["p50"] else None,
        "goal": f"forward adds < {GOAL_ADDED_P50_MS} ms at p50",
        "goal_met": added < GOAL_ADDED_P50_MS, "wall_s": wall,
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
