#!/usr/bin/python3
"""bench_http.py: cellblock's Jupyter HTTP/WebSocket API against Jupyter Server's own.

    bench/bench_http.py --cellblock build/bin/cellblock [--n 500] [--warmup 20] [--kernels 5]

Starts each server under test and measures it with the same client code (websocket-client,
synchronous, JSON text frames, no subprotocol; http.client for REST):

  cellblock              `cellblock serve --listen 127.0.0.1:0`: kernels in sandboxes, the
                         default warm pool (CELLBLOCK_POOL python=1)
  cellblock-no-sandbox   the same with --no-sandbox (BENCH_HTTP_NO_SANDBOX=0 leaves it out)
  cellblock-no-pool      the same with CELLBLOCK_POOL=python=0, kernel create only: a kernel
                         (and sandbox) made on demand (BENCH_HTTP_NO_POOL=0 leaves it out)
  jupyter_server         Debian's jupyter_server run standalone (not in gateway mode) with its
                         own local python3 ipykernel (tcp)
  jupyter_client         the floor, no HTTP at all: bench_jupyter_client.py's own start_kernel
                         and execute_once, straight to a local ipykernel over ipc://
                         (BENCH_HTTP_JUPYTER_CLIENT=0 leaves it out)

Per server, one after another (each server alone on the machine while it is measured):
  create_post_ms POST /api/kernels until its 201 response, over --kernels kernels (after one
                 untimed), each followed by --settle s of pause after its DELETE (untimed), so
                 every round starts alike (cellblock's pool refilled, the last kernel gone).
  create_to_first_reply_ms   POST /api/kernels, open the channels WebSocket, execute --code,
                 until its execute_reply: a new kernel until it is usable.
  get_kernel_ms  GET /api/kernels/{id}, --gets times on one keep-alive connection.
  delete_ms      DELETE /api/kernels/{id} until its 204.
Then the execute round trip, all servers running, one kernel and one WebSocket each: --warmup
untimed on each, then blocks of --block round trips, target after target, until --n each, so
every target sees the same machine load over the run:
  exec_ms        send execute_request, wait for its execute_reply and its status idle.
  server_cpu_us_per_exec   the server process's utime+stime (/proc, clock ticks) over its
                 blocks, per execution (the kernel is another process, not counted).

Prints one JSON object on stdout (progress on stderr). Settings: the flags, whose defaults come
from BENCH_N, BENCH_WARMUP, BENCH_KERNELS, BENCH_CODE, BENCH_MAX_SECONDS, BENCH_HTTP_GETS (200),
BENCH_HTTP_BLOCK (50), BENCH_HTTP_SETTLE_S (3), BENCH_HTTP_NO_SANDBOX (1), BENCH_HTTP_NO_POOL (1),
BENCH_HTTP_JUPYTER_CLIENT (1), CB_BUILD_DIR (build; for the default --cellblock). Needs
Debian's /usr/bin/python3 with python3-jupyter-server, python3-websocket, python3-ipykernel and
python3-jupyter-client. When a server could not be measured, what was measured is still printed,
with "failed" in that target and at the top level (bench/report.py then reports a failure); the
exit status is 0 whenever the JSON was printed, 1 when nothing could run.
"""

import argparse
import datetime
import json
import math
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
import http.client

import websocket

HERE = os.path.dirname(os.path.abspath(__file__))
PY = "/usr/bin/python3"
START_DEADLINE_S = 60.0
STOP_DEADLINE_S = 20.0
KERNEL_ENV = {"PYDEVD_DISABLE_FILE_VALIDATION": "1"}  # as bench_jupyter_client.py
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg):
    print(f"bench_http: {msg}", file=sys.stderr, flush=True)


def summary(values_ms):
    """Nearest-rank percentiles, the definition bench_jupyter_client.py and stats.c use."""
    xs = sorted(values_ms)
    n = len(xs)
    if n == 0:
        return {"n": 0}

    def pct(p):
        return xs[max(0, math.ceil(p / 100.0 * n) - 1)]

    return {"p50": round(pct(50), 4), "p90": round(pct(90), 4), "p99": round(pct(99), 4),
            "mean": round(sum(xs) / n, 4), "min": round(xs[0], 4), "max": round(xs[-1], 4),
            "n": n}


def env_default(name, default, kind=str):
    v = os.environ.get(name)
    return kind(v) if v not in (None, "") else default


# ---- servers --------------------------------------------------------------------------------

def die_with_parent():
    """preexec_fn: the server gets SIGTERM if this benchmark dies first."""
    import ctypes
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Server:
    """A server in its own process group, its output in a log file; stop() ends the group."""

    def __init__(self, name, argv, env, tmp):
        self.name = name
        self.log_path = os.path.join(tmp, f"{name}.log")
        self.log_file = open(self.log_path, "wb")
        self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                                     stdout=self.log_file, stderr=subprocess.STDOUT,
                                     start_new_session=True, preexec_fn=die_with_parent)
        self.port = None
        self.token = None

    def text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def tail(self, n=30):
        return "\n".join(self.text().splitlines()[-n:])

    def cpu_s(self):
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=STOP_DEADLINE_S)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self.proc.poll() is None:
            self.proc.wait(timeout=STOP_DEADLINE_S)
        self.log_file.close()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_cellblock(binary, tmp, name, extra, more_env=None):
    token = "cb-" + secrets.token_hex(16)
    state = os.path.join(tmp, f"{name}-state")
    os.mkdir(state)
    env = dict(os.environ, CELLBLOCK_TOKEN=token, CELLBLOCK_STATE_DIR=state, **KERNEL_ENV,
               **(more_env or {}))
    srv = Server(name, [binary, "serve", "--listen", "127.0.0.1:0", *extra], env, tmp)
    srv.token = token
    prefix = "cellblock serve: listening on http://127.0.0.1:"
    end = time.monotonic() + START_DEADLINE_S
    while time.monotonic() < end and srv.port is None:
        for line in srv.text().splitlines():
            if line.startswith(prefix):
                srv.port = int(line[len(prefix):].strip().rstrip("/"))
        if srv.port is None:
            if srv.proc.poll() is not None:
                break
            time.sleep(0.05)
    if srv.port is None:
        srv.stop()
        raise RuntimeError(f"{name} did not start listening (exit {srv.proc.returncode}):\n"
                           f"{srv.tail()}")
    wait_api(srv)
    return srv


def start_jupyter_server(tmp):
    """Standalone jupyter_server with its own local kernels; nothing of the machine's Jupyter
    setup (own HOME, config, data, runtime directories)."""
    token = "js-" + secrets.token_hex(16)
    base = os.path.join(tmp, "jupyter")
    dirs = {k: os.path.join(base, k.lower()) for k in
            ("HOME", "JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR")}
    for d in dirs.values():
        os.makedirs(d)
    root = os.path.join(base, "root")
    os.makedirs(root)
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "JUPYTER_PLATFORM_DIRS": "1",
           "PYTHONNOUSERSITE": "1", **KERNEL_ENV, **dirs}
    port = free_port()
    argv = [PY, "-m", "jupyter_server", "--no-browser", "--ServerApp.ip=127.0.0.1",
            f"--port={port}", "--ServerApp.port_retries=0", f"--ServerApp.token={token}",
            f"--ServerApp.root_dir={root}", "--log-level=WARN"]
    if os.geteuid() == 0:
        argv.append("--allow-root")
    srv = Server("jupyter_server", argv, env, tmp)
    srv.port, srv.token = port, token
    wait_api(srv)
    return srv


def wait_api(srv):
    end = time.monotonic() + START_DEADLINE_S
    last = None
    while time.monotonic() < end:
        if srv.proc.poll() is not None:
            break
        try:
            st, body = rest(srv, "GET", "/api", timeout=5)
            if st == 200:
                srv.version = body.get("version") if isinstance(body, dict) else None
                return
            last = st
        except OSError as e:
            last = repr(e)
        time.sleep(0.1)
    srv.stop()
    raise RuntimeError(f"{srv.name}: GET /api did not answer 200 (last: {last}):\n{srv.tail()}")


# ---- client code, the same for every server -------------------------------------------------

def rest(srv, method, path, body=None, conn=None, timeout=60.0):
    own = conn is None
    if own:
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=timeout)
    try:
        headers = {"Authorization": f"token {srv.token}"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
        try:
            return resp.status, (json.loads(raw) if raw else None)
        except ValueError:
            return resp.status, raw.decode(errors="replace")
    finally:
        if own:
            conn.close()


class Channels:
    def __init__(self, srv, kid, timeout):
        self.session = uuid.uuid4().hex
        self.timeout = timeout
        url = (f"ws://127.0.0.1:{srv.port}/api/kernels/{kid}/channels?"
               + urllib.parse.urlencode({"session_id": self.session}))
        self.ws = websocket.create_connection(url, header=[f"Authorization: token {srv.token}"],
                                              timeout=timeout)

    def send_execute(self, code):
        msg_id = uuid.uuid4().hex
        self.ws.send(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": "execute_request", "session": self.session,
                       "username": "bench", "version": "5.3",
                       "date": datetime.datetime.now(datetime.timezone.utc).isoformat()},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": True,
                        "user_expressions": {}, "allow_stdin": False, "stop_on_error": True}}))
        return msg_id

    def wait(self, msg_id, want_idle=True):
        """Until execute_reply (and status idle) for msg_id; returns the reply's status."""
        end = time.monotonic() + self.timeout
        status, idle = None, not want_idle
        while status is None or not idle:
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no execute_reply/idle for {msg_id} in {self.timeout} s")
            self.ws.settimeout(left)
            opcode, data = self.ws.recv_data(control_frame=True)  # pings too: deadline rechecked
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                raise ConnectionError(f"the server closed the WebSocket: {data[:120]!r}")
            if opcode != websocket.ABNF.OPCODE_TEXT:
                continue  # pings; binary frames carry buffers, none expected for these cells
            msg = json.loads(data)
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            mt = msg.get("msg_type")
            if mt == "execute_reply":
                status = msg["content"].get("status")
            elif mt == "status" and msg["content"].get("execution_state") == "idle":
                idle = True
        return status

    def execute(self, code, want_idle=True):
        status = self.wait(self.send_execute(code), want_idle)
        if status != "ok":
            raise RuntimeError(f"execution of {code!r} ended with status {status!r}")

    def close(self):
        try:
            self.ws.close(timeout=2)
        except Exception:
            pass


def measure_rest(srv, args, settle_s):
    """Kernel create, GET and DELETE figures for one server. settle_s: an untimed pause after
    each DELETE, so every round starts from the same state (cellblock's warm pool refilled,
    Jupyter Server's previous kernel gone)."""
    out = {"version": getattr(srv, "version", None)}
    st, specs = rest(srv, "GET", "/api/kernelspecs")
    if st != 200 or not isinstance(specs, dict):
        raise RuntimeError(f"GET /api/kernelspecs: {st} {specs!r:.300}")
    kernel_name = args.kernel_name or specs.get("default")
    out["kernel_name"] = kernel_name
    srv.kernel_name = kernel_name
    post_ms, ready_ms, get_ms, delete_ms = [], [], [], []
    for i in range(args.kernels + 1):  # the first round is a warm-up, untimed
        t0 = time.perf_counter()
        st, model = rest(srv, "POST", "/api/kernels", body={"name": kernel_name})
        t1 = time.perf_counter()
        if st != 201 or not isinstance(model, dict) or "id" not in model:
            raise RuntimeError(f"POST /api/kernels: {st} {model!r:.300}")
        ch = Channels(srv, model["id"], args.timeout)
        try:
            ch.execute(args.code, want_idle=False)
        finally:
            ch.close()
        t2 = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=args.timeout)
        try:
            for _ in range(args.gets if i == 1 else 0):  # one kernel's worth of GETs
                g0 = time.perf_counter()
                st, _ = rest(srv, "GET", f"/api/kernels/{model['id']}", conn=conn)
                if st != 200:
                    raise RuntimeError(f"GET /api/kernels/{{id}}: {st}")
                get_ms.append((time.perf_counter() - g0) * 1000.0)
        finally:
            conn.close()
        d0 = time.perf_counter()
        st, body = rest(srv, "DELETE", f"/api/kernels/{model['id']}")
        d1 = time.perf_counter()
        if st != 204:
            raise RuntimeError(f"DELETE /api/kernels/{{id}}: {st} {body!r:.200}")
        if i > 0:
            post_ms.append((t1 - t0) * 1000.0)
            ready_ms.append((t2 - t0) * 1000.0)
            delete_ms.append((d1 - d0) * 1000.0)
        log(f"{srv.name}: kernel {i}/{args.kernels}{' (warm-up)' if i == 0 else ''}: 201 after "
            f"{(t1 - t0) * 1000:.1f} ms, first execute_reply after {(t2 - t0) * 1000:.1f} ms, "
            f"DELETE {(d1 - d0) * 1000:.1f} ms")
        time.sleep(settle_s)
    out["create_post_ms"] = summary(post_ms)
    out["create_to_first_reply_ms"] = summary(ready_ms)
    if get_ms:
        out["get_kernel_ms"] = summary(get_ms)
    out["delete_ms"] = summary(delete_ms)
    out["settle_s"] = settle_s
    return out


class HttpExec:
    """The execute round trip through one server: one kernel, one WebSocket."""

    def __init__(self, srv, args):
        self.name, self.srv, self.args = srv.name, srv, args
        st, model = rest(srv, "POST", "/api/kernels", body={"name": srv.kernel_name})
        if st != 201:
            raise RuntimeError(f"POST /api/kernels: {st} {model!r:.300}")
        self.kid = model["id"]
        self.ch = Channels(srv, self.kid, args.timeout)
        self.cpu_s = 0.0

    def round_trip(self):
        t0 = time.perf_counter()
        self.ch.execute(self.args.code)
        return (time.perf_counter() - t0) * 1000.0

    def block(self, count):
        c0 = self.srv.cpu_s()
        times = [self.round_trip() for _ in range(count)]
        self.cpu_s += self.srv.cpu_s() - c0
        return times

    def close(self):
        self.ch.close()
        try:
            rest(self.srv, "DELETE", f"/api/kernels/{self.kid}", timeout=10)
        except OSError:
            pass


class ZmqExec:
    """The floor: jupyter_client straight to a local ipykernel over ipc://, with
    bench_jupyter_client.py's own start_kernel and execute_once."""

    def __init__(self, args, run_dir):
        sys.path.insert(0, HERE)
        import bench_jupyter_client as bjc
        self.bjc, self.args, self.name = bjc, args, "jupyter_client"
        self.version = bjc.jupyter_client_version
        ns = argparse.Namespace(kernel_name="python3", timeout=args.timeout)
        self.km, self.kc, _, _ = bjc.start_kernel(ns, run_dir, 0)
        self.cpu_s = None

    def block(self, count):
        return [self.bjc.execute_once(self.kc, self.args.code, self.args.timeout)
                for _ in range(count)]

    def close(self):
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


def interleaved_exec(targets, args):
    """Warm-up on each, then blocks of --block round trips, target after target, until --n
    each (or --max-seconds): every target sees the same machine load over the run."""
    for t in targets:
        t.block(args.warmup)
    times = {t.name: [] for t in targets}
    note = None
    t_end = time.monotonic() + args.max_seconds
    done = 0
    while done < args.n:
        if time.monotonic() > t_end:
            note = f"time limit of {args.max_seconds:g} s reached after {done} per target"
            log(note)
            break
        count = min(args.block, args.n - done)
        for t in targets:
            times[t.name] += t.block(count)
        done += count
    return times, note

def ratio(a, b):
    return round(a / b, 2) if a is not None and b else None


def pick(d, *path):
    for k in path:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d if isinstance(d, (int, float)) else None


def main():
    default_cb = os.path.join(HERE, "..", os.environ.get("CB_BUILD_DIR", "build"), "bin",
                              "cellblock")
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cellblock", default=default_cb, help="the cellblock binary")
    ap.add_argument("--n", type=int, default=env_default("BENCH_N", 500, int))
    ap.add_argument("--warmup", type=int, default=env_default("BENCH_WARMUP", 20, int))
    ap.add_argument("--kernels", type=int, default=env_default("BENCH_KERNELS", 5, int),
                    help="kernels created (timed) per server, after one untimed")
    ap.add_argument("--code", default=env_default("BENCH_CODE", "pass"))
    ap.add_argument("--max-seconds", type=float,
                    default=env_default("BENCH_MAX_SECONDS", 120.0, float))
    ap.add_argument("--gets", type=int, default=env_default("BENCH_HTTP_GETS", 200, int))
    ap.add_argument("--no-sandbox-line", type=int,
                    default=env_default("BENCH_HTTP_NO_SANDBOX", 1, int),
                    help="1: also measure cellblock serve --no-sandbox")
    ap.add_argument("--jupyter-client", type=int,
                    default=env_default("BENCH_HTTP_JUPYTER_CLIENT", 1, int),
                    help="1: also run bench_jupyter_client.py for the ZMQ floor")
    ap.add_argument("--block", type=int, default=env_default("BENCH_HTTP_BLOCK", 50, int),
                    help="round trips per target before moving to the next (interleaving)")
    ap.add_argument("--settle", type=float, default=env_default("BENCH_HTTP_SETTLE_S", 3.0, float),
                    help="seconds of pause after each kernel's DELETE (pool refill)")
    ap.add_argument("--cold", type=int, default=env_default("BENCH_HTTP_NO_POOL", 1, int),
                    help="1: also time kernel create on cellblock with CELLBLOCK_POOL=python=0")
    ap.add_argument("--kernel-name", default=None,
                    help="kernelspec (default: each server's default)")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per message")
    args = ap.parse_args()
    if args.n < 1 or args.kernels < 1 or args.warmup < 0 or args.block < 1:
        ap.error("--n and --kernels must be at least 1, --warmup at least 0")
    if not os.access(args.cellblock, os.X_OK):
        log(f"{args.cellblock} is not built")
        return 1

    plan = [("cellblock", lambda tmp: start_cellblock(args.cellblock, tmp, "cellblock", []))]
    if args.no_sandbox_line:
        plan.append(("cellblock-no-sandbox", lambda tmp: start_cellblock(
            args.cellblock, tmp, "cellblock-no-sandbox", ["--no-sandbox"])))
    plan.append(("jupyter_server", start_jupyter_server))
    result = {
        "name": "http", "code": args.code, "warmup": args.warmup, "n": args.n,
        "block": args.block, "kernels": args.kernels, "gets": args.gets,
        "client": f"websocket-client {websocket.__version__}, synchronous, JSON text frames "
                  "(no subprotocol); http.client for REST",
        "targets": {},
    }
    t = result["targets"]
    tmp = tempfile.mkdtemp(prefix="cb-bench-http-")
    servers, execs = [], []
    try:
        # 1. Start every server; kernel create / GET / DELETE, one server after another.
        for name, start in plan:
            srv = None
            try:
                log(f"starting {name}")
                srv = start(tmp)
                t[name] = measure_rest(srv, args, args.settle)
                servers.append(srv)
            except Exception as e:
                log(f"{name} failed: {e!r}")
                t[name] = {"failed": f"{type(e).__name__}: {e}"[:500]}
                if srv:
                    log(f"{name}'s log:\n{srv.tail()}")
                    srv.stop()
        # cellblock without its warm pool (CELLBLOCK_POOL=python=0): kernel create only.
        if args.cold:
            srv = None
            try:
                log("starting cellblock-no-pool")
                srv = start_cellblock(args.cellblock, tmp, "cellblock-no-pool", [],
                                      {"CELLBLOCK_POOL": "python=0"})
                t["cellblock-no-pool"] = measure_rest(srv, args, 0.0)
            except Exception as e:
                log(f"cellblock-no-pool failed: {e!r}")
                t["cellblock-no-pool"] = {"failed": f"{type(e).__name__}: {e}"[:500]}
            finally:
                if srv:
                    srv.stop()
        # 2. The execute round trip, interleaved across the servers (and the ZMQ floor).
        for srv in servers:
            try:
                execs.append(HttpExec(srv, args))
            except Exception as e:
                log(f"{srv.name}: no kernel for the round trips: {e!r}")
                t[srv.name]["failed"] = f"execute setup: {e!r}"[:500]
        if args.jupyter_client:
            try:
                execs.append(ZmqExec(args, tmp))
            except Exception as e:
                result["jupyter_client"] = {"failed": repr(e)}
        if execs:
            log(f"timing {args.n} round trips on each of {[e.name for e in execs]}, "
                f"interleaved in blocks of {args.block}")
            try:
                times, note = interleaved_exec(execs, args)
            except Exception as e:
                log(f"execute round trips failed: {e!r}")
                times, note = {}, None
                for e_ in execs:
                    dst = (t[e_.name] if isinstance(e_, HttpExec)
                           else result.setdefault("jupyter_client", {}))
                    dst["failed"] = f"execute round trips: {type(e).__name__}: {e}"[:500]
            for e_ in execs:
                xs = times.get(e_.name, [])
                fig = {"exec_ms": summary(xs)}
                if note:
                    fig["note"] = note
                if isinstance(e_, HttpExec):
                    fig["server_cpu_us_per_exec"] = (round(e_.cpu_s * 1e6 / len(xs), 1)
                                                     if xs else None)
                    t[e_.name].update(fig)
                else:
                    fig.update(version=e_.version, transport="ipc")
                    result.setdefault("jupyter_client", {}).update(fig)
                log(f"{e_.name}: execute round trip p50 {fig['exec_ms'].get('p50')} ms")
    finally:
        for e_ in execs:
            try:
                e_.close()
            except Exception as e:
                log(f"{e_.name}: close: {e!r}")
        for srv in servers:
            srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    failed = [n for n, v in t.items() if "failed" in v]
    cb, js = t.get("cellblock"), t.get("jupyter_server")
    result["ratios"] = {
        "ratio_means": "jupyter_server figure / cellblock figure: above 1, cellblock is faster",
        **{f"exec_{s}": ratio(pick(js, "exec_ms", s), pick(cb, "exec_ms", s))
           for s in ("p50", "p90", "p99", "mean")},
        "create_to_first_reply_p50": ratio(pick(js, "create_to_first_reply_ms", "p50"),
                                           pick(cb, "create_to_first_reply_ms", "p50")),
        "create_to_first_reply_p50_no_pool": ratio(
            pick(js, "create_to_first_reply_ms", "p50"),
            pick(t.get("cellblock-no-pool"), "create_to_first_reply_ms", "p50")),
        "get_kernel_p50": ratio(pick(js, "get_kernel_ms", "p50"),
                                pick(cb, "get_kernel_ms", "p50")),
        "exec_p50_no_sandbox": ratio(pick(js, "exec_ms", "p50"),
                                     pick(t.get("cellblock-no-sandbox"), "exec_ms", "p50")),
    }
    goal = result["ratios"]["exec_p50"]
    result["goal"] = {"exec_p50_ratio_wanted": 20, "met": None if goal is None else goal >= 20}
    if failed:
        # The figures measured are kept; report.py counts a bench with "failed" as a failure.
        result["failed"] = "; ".join(f"{n}: {t[n]['failed']}" for n in failed)
    if "failed" in result.get("jupyter_client", {}):
        result["failed"] = "; ".join(filter(None, [
            result.get("failed"), f"jupyter_client: {result['jupyter_client']['failed']}"]))
    json.dump(result, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
