"""serve.py: processes and HTTP for the HTTP tests (and bench/bench_http.py's style of use).

    from serve import Child, Serve, http_call
    with Serve(cellblock_bin) as srv:          # `cellblock serve`: random port, fresh token and state
        status, headers, body = srv.request("GET", "/api/kernels")
        srv.url, srv.port, srv.token, srv.stderr_text()
    js = Child("jupyter_server", argv, env, log_path)   # any server: its own process group
    js.wait_for_log(fn, deadline_s); js.stop(); js.tail()

A Child writes stdout and stderr to a file (a pipe nobody reads could fill and stall it), dies
with the test (PR_SET_PDEATHSIG: ctest's timeout kills the test with SIGKILL, and no `finally`
runs then), and stop() sends SIGTERM to its group, waits, then SIGKILLs what is left. Every
wait has a deadline; polling a log file for a line is the one poll, bounded by it.
"""
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time

READY_RE = re.compile(r"listening on (http://\S+)")
STOP_DEADLINE_S = 20.0


def _die_with_parent(sig):
    def preexec():
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, sig)  # PR_SET_PDEATHSIG
    return preexec


class Child:
    """A server process in its own process group, its output in log_path."""

    def __init__(self, name, argv, env, log_path, death_signal=signal.SIGTERM):
        self.name = name
        self.log_path = log_path
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True,
                                         preexec_fn=_die_with_parent(death_signal))
        self.final_text = None

    def text(self):
        """Everything it wrote so far (after stop(): all of it)."""
        if self.final_text is not None:
            return self.final_text
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def alive(self):
        return self.proc.poll() is None

    def wait_for_log(self, needle_fn, deadline_s):
        """Poll the log until needle_fn(text) gives something; None at the deadline or exit."""
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            found = needle_fn(self.text())
            if found or not self.alive():
                return found or needle_fn(self.text())
            time.sleep(0.05)  # polling a file for a line, bounded by the deadline
        return None

    def stop(self, deadline_s=STOP_DEADLINE_S):
        """SIGTERM to the group, SIGKILL after deadline_s, then SIGKILL to whatever is left in
        the group. The leader's exit status, or None when it had to be killed."""
        rc = self.proc.poll()
        if rc is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                rc = self.proc.wait(timeout=deadline_s)
            except subprocess.TimeoutExpired:
                rc = None
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self.proc.poll() is None:
            self.proc.wait(timeout=deadline_s)
        if self.final_text is None:
            self.final_text = self.text()
        return rc

    def tail(self, n=int(os.environ.get("CB_TEST_LOG_LINES", "60"))):
        lines = self.text().splitlines()
        return "\n".join(f"  {self.name}| {line}" for line in lines[-n:])


def http_call(port, method, path, token=None, body=None, headers=None, timeout=60.0):
    """One request on a fresh connection to 127.0.0.1:port: (status, headers dict lowercased,
    parsed JSON, or the text when it is not JSON, or None when empty). body: bytes, or an
    object sent as JSON."""
    h = {"Authorization": f"token {token}"} if token else {}
    h.update(headers or {})
    data = body
    if body is not None and not isinstance(body, (bytes, str)):
        data = json.dumps(body).encode()
        h.setdefault("Content-Type", "application/json")
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=data, headers=h)
        resp = conn.getresponse()
        raw = resp.read()
        hdrs = {k.lower(): v for k, v in resp.getheaders()}
    finally:
        conn.close()
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = raw.decode(errors="replace")
    return resp.status, hdrs, parsed


class Serve(Child):
    """`cellblock serve --listen 127.0.0.1:0 [args]` with a fresh token (token="" for none, as
    with --no-auth or a generated one), state dir and runtime dir; ready once it printed where it
    listens (RuntimeError otherwise)."""

    def __init__(self, binary, args=(), env=None, token=None, ready_timeout=30):
        self.tmp = tempfile.mkdtemp(prefix="cb-http-")
        self.token = token if token is not None else "cb-" + secrets.token_hex(24)
        e = dict(os.environ)
        e.setdefault("CELLBLOCK_LOG_LEVEL", "info")
        e["CELLBLOCK_STATE_DIR"] = os.path.join(self.tmp, "state")
        e["XDG_RUNTIME_DIR"] = self.tmp
        e.pop("CELLBLOCK_TOKEN", None)
        if self.token:
            e["CELLBLOCK_TOKEN"] = self.token
        e.update(env or {})
        super().__init__("cellblock", [binary, "serve", "--listen", "127.0.0.1:0", *args], e,
                         os.path.join(self.tmp, "serve.log"))
        m = self.wait_for_log(READY_RE.search, ready_timeout)
        if not m:
            self.close()
            raise RuntimeError("cellblock serve did not start:\n" + self.text())
        self.url = m.group(1)
        self.host, port = self.url[len("http://"):].rsplit(":", 1)
        self.port = int(port)

    stderr_text = Child.text

    def request(self, method, path, body=None, headers=None, timeout=30, auth=True):
        """(status, headers, body) of one request, with the token unless auth is False."""
        return http_call(self.port, method, path, self.token if auth else None, body, headers, timeout)

    def ws_url(self, path):
        return "ws://%s:%d%s" % (self.host, self.port, path)

    def close(self, timeout=STOP_DEADLINE_S):
        """stop(), then remove the scratch directory. Returns the exit status."""
        rc = self.stop(timeout)
        shutil.rmtree(self.tmp, ignore_errors=True)
        return rc

    def dump(self):
        print("---- cellblock serve output ----\n" + self.text() + "\n--------", flush=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
