"""serve.py: start and stop `cellblock serve` for the HTTP tests.

    from serve import Serve
    with Serve(cellblock_bin) as srv:          # random port, a fresh token and state dir
        status, headers, body = srv.request("GET", "/api/kernels")
        srv.url, srv.token, srv.port, srv.stderr_text()

Serve waits (with a deadline) for the "listening on http://..." line, keeps the server's stderr
in a file (a pipe nobody reads could fill and stall the server; dump() prints it when a check
failed), and on exit sends SIGTERM, waits, and kills
the process group if it lingers. Every request helper has a timeout.
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


class Serve:
    def __init__(self, binary, args=(), env=None, token=None, ready_timeout=30):
        self.tmp = tempfile.mkdtemp(prefix="cb-http-")
        self.token = token if token is not None else secrets.token_hex(24)
        e = dict(os.environ)
        e.setdefault("CELLBLOCK_LOG_LEVEL", "info")
        e["CELLBLOCK_STATE_DIR"] = os.path.join(self.tmp, "state")
        e["XDG_RUNTIME_DIR"] = self.tmp
        if self.token:
            e["CELLBLOCK_TOKEN"] = self.token
        e.update(env or {})
        self.err_path = os.path.join(self.tmp, "stderr.log")
        with open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen([binary, "serve", "--listen", "127.0.0.1:0", *args], env=e,
                                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=err, start_new_session=True)
        self.url = None
        deadline = time.monotonic() + ready_timeout
        while self.url is None and time.monotonic() < deadline and self.proc.poll() is None:
            m = READY_RE.search(self.stderr_text())
            if m:
                self.url = m.group(1)
            else:
                time.sleep(0.05)  # polling a file for a line, with the deadline above
        if self.url is None:
            self.close()
            raise RuntimeError("cellblock serve did not start:\n" + self.stderr_text())
        self.host, port = self.url[len("http://"):].rsplit(":", 1)
        self.port = int(port)

    def stderr_text(self):
        """Everything the server wrote to stderr so far (after close(): all of it)."""
        if getattr(self, "final_stderr", None) is not None:
            return self.final_stderr
        try:
            with open(self.err_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def auth(self):
        return {"Authorization": f"token {self.token}"} if self.token else {}

    def request(self, method, path, body=None, headers=None, timeout=30, auth=True):
        """One request on a fresh connection: (status, headers dict lowercased, body bytes or
        parsed JSON when the answer is JSON)."""
        h = dict(self.auth() if auth else {})
        h.update(headers or {})
        data = body
        if isinstance(body, (dict, list)):
            data = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            conn.request(method, path, body=data, headers=h)
            resp = conn.getresponse()
            raw = resp.read()
            hdrs = {k.lower(): v for k, v in resp.getheaders()}
        finally:
            conn.close()
        if hdrs.get("content-type", "").startswith("application/json") and raw:
            try:
                return resp.status, hdrs, json.loads(raw)
            except ValueError:
                pass
        return resp.status, hdrs, raw

    def ws_url(self, path):
        return "ws://%s:%d%s" % (self.host, self.port, path)

    def close(self, timeout=20):
        """SIGTERM, wait up to timeout, then SIGKILL the group. Returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + timeout
            try:
                self.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
        self.final_stderr = self.stderr_text()
        shutil.rmtree(self.tmp, ignore_errors=True)
        return self.proc.returncode

    def dump(self):
        print("---- cellblock serve stderr ----\n" + self.stderr_text() + "\n--------", flush=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
