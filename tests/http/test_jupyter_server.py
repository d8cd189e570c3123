#!/usr/bin/python3
"""test_jupyter_server.py: Debian's real jupyter_server (1.23) in gateway mode on `cellblock serve`.

    /usr/bin/python3 test_jupyter_server.py PATH/TO/cellblock

JupyterLab talks to jupyter_server; with --gateway-url, jupyter_server forwards kernelspecs,
kernels and the kernel WebSocket to a Kernel Gateway, here cellblock. This test plays JupyterLab:
after starting both servers it talks ONLY to jupyter_server, except to look at cellblock's own
GET /api/kernels to see the same kernels there.

 1. `cellblock serve --listen 127.0.0.1:0` (token from CELLBLOCK_TOKEN, its own
    CELLBLOCK_STATE_DIR), then `cellblock lab --url ... --server-only -- ...` (jupyter_server
    with the token in its environment) with its own HOME and JUPYTER_* directories.
 2. GET /api/kernelspecs through jupyter_server: the same names and default as cellblock's.
 3. POST /api/kernels through jupyter_server: 201, Location; cellblock lists the same id.
 4. WebSocket /api/kernels/{id}/channels on jupyter_server: a cell prints (stream stdout,
    execute_reply ok); a matplotlib cell gives display_data with a real PNG.
 5. A `time.sleep(60)` cell, then POST .../interrupt through jupyter_server: 204, the cell ends
    with KeyboardInterrupt well before 60 s, and the kernel runs the next cell.
 6. POST .../restart through jupyter_server: 200 with the model; a variable defined before is a
    NameError after, on the same WebSocket (as JupyterLab keeps it).
 7. DELETE through jupyter_server: 204; the kernel is gone from cellblock's list (and 404 there).
 8. The assistant's kernel: a sandbox opened over MCP (x = 41 in its kernel). Through
    jupyter_server only: GET /api/kernels lists it, GET /api/kernels/{id} describes it,
    GET /cellblock/open/{id} (cellblock's extension) makes a valid notebook and a session on it,
    a cell over jupyter_server's WebSocket prints x + 1 == 42; DELETE is refused with
    cellblock's reason and MCP still runs code in it with x still 41.
 9. SIGTERM to both; cellblock exits 0.

jupyter_server is started by `cellblock lab --server-only` (cli/cmd_lab.c), which loads
cellblock's extension (lab/cellblock_lab.py); steps 2-7 are what it does for kernels it starts.

Every wait has a deadline. Both servers run in their own process groups and are killed at the
end whatever happened. Exits 0 when every check held, 1 otherwise, 77 (SKIP) only when
jupyter_server or websocket-client cannot be imported here.
"""
import base64
import datetime
import json
import os
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.parse
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from checks import check, finish  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve import Child, http_call  # noqa: E402

PY = "/usr/bin/python3"
START_DEADLINE_S = 60.0   # a server to listen
KERNEL_DEADLINE_S = 60.0  # a kernel to start and answer its first cell
CELL_DEADLINE_S = 30.0    # an ordinary cell
HTTP_TIMEOUT_S = 60.0     # one HTTP request (POST /api/kernels waits for the kernel)
STOP_DEADLINE_S = 20.0    # a server to exit after SIGTERM


def log(msg):
    print(f"# {msg}", flush=True)


class Abort(Exception):
    """A step timed out: the kernel no longer answers, so the later steps would only wait out
    their deadlines one after another. The shutdown and the cleanup still run."""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- HTTP -----------------------------------------------------------------------------------

def wait_http_ok(server, port, path, token, deadline_s):
    """Poll GET path until 200; returns the JSON or None at the deadline / when the server died."""
    end = time.monotonic() + deadline_s
    last = None
    while time.monotonic() < end:
        if server.proc.poll() is not None:
            return None, f"{server.name} exited with {server.proc.returncode}"
        try:
            status, _, body = http_call(port, "GET", path, token, timeout=5)
            if status == 200:
                return body, None
            last = f"status {status}: {body}"
        except OSError as e:
            last = repr(e)
        time.sleep(0.1)
    return None, f"no 200 from {path} within {deadline_s} s (last: {last})"


# ---- the kernel WebSocket (jupyter_server's JSON message format) -----------------------------

def decode_binary(data):
    """jupyter_server's default binary frame: uint32 BE count, offsets; part 0 is the JSON."""
    n = struct.unpack("!I", data[:4])[0]
    offsets = list(struct.unpack(f"!{n}I", data[4:4 + 4 * n]))
    offsets.append(len(data))
    msg = json.loads(data[offsets[0]:offsets[1]].decode())
    msg["buffers"] = [data[offsets[i]:offsets[i + 1]] for i in range(1, n)]
    return msg


class KernelSocket:
    def __init__(self, url, headers, session):
        import websocket
        self.websocket = websocket
        self.session = session
        self.ws = websocket.create_connection(url, header=headers, timeout=HTTP_TIMEOUT_S)
        self.seen = []  # every message received, in order

    def greet(self, deadline_s, every_s=1.0):
        """kernel_info_request, repeated every every_s until a reply comes (what jupyter_client
        does on connecting): jupyter_server 1.23's gateway client loses a message that arrives
        before its own WebSocket to the gateway is being set up (GatewayWebSocketClient.on_message
        waits on a placeholder Future that _connect then replaces), so the first request through
        a new connection may vanish there, before cellblock ever sees it. True once answered."""
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            if self.request("shell", "kernel_info_request", {}, "kernel_info_reply",
                            min(every_s, end - time.monotonic())) is not None:
                return True
        return False

    def send(self, channel, msg_type, content):
        msg_id = uuid.uuid4().hex
        now = datetime.datetime.now(datetime.timezone.utc).isoformat()
        self.ws.send(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": msg_type, "session": self.session,
                       "username": "test", "date": now, "version": "5.3"},
            "parent_header": {}, "metadata": {}, "content": content, "channel": channel,
            "buffers": []}))
        return msg_id

    def recv(self, end):
        """The next message, or None when `end` (monotonic) passes first."""
        abnf = self.websocket.ABNF
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return None
            self.ws.settimeout(left)
            try:
                # control_frame=True: a ping (jupyter_server sends them) comes back here too, so
                # the deadline is checked again (recv_data would wait anew after each).
                opcode, data = self.ws.recv_data(control_frame=True)
            except self.websocket.WebSocketTimeoutException:
                return None
            if opcode not in (abnf.OPCODE_PING, abnf.OPCODE_PONG):
                break
        if opcode == self.websocket.ABNF.OPCODE_BINARY:
            msg = decode_binary(data)
        elif opcode == self.websocket.ABNF.OPCODE_TEXT:
            msg = json.loads(data.decode() if isinstance(data, bytes) else data)
        else:
            raise ConnectionError(f"WebSocket closed (opcode {opcode}, {data[:2]!r})")
        self.seen.append(msg)
        return msg

    def execute(self, code, deadline_s, on_message=None):
        """Run code; collect what belongs to it until execute_reply and status idle, or the
        deadline. Returns a dict: reply (content or None), idle, stdout, stderr, displays
        (data dicts), errors (content dicts), timed_out."""
        end = time.monotonic() + deadline_s
        msg_id = self.send("shell", "execute_request", {
            "code": code, "silent": False, "store_history": True, "user_expressions": {},
            "allow_stdin": False, "stop_on_error": True})
        out = {"msg_id": msg_id, "reply": None, "idle": False, "stdout": "", "stderr": "",
               "displays": [], "errors": [], "timed_out": False, "busy": False}
        while out["reply"] is None or not out["idle"]:
            msg = self.recv(end)
            if msg is None:
                out["timed_out"] = True
                break
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            mt = msg.get("msg_type") or msg.get("header", {}).get("msg_type")
            c = msg.get("content", {})
            if on_message:
                on_message(msg)
            if mt == "execute_reply":
                out["reply"] = c
            elif mt == "status":
                if c.get("execution_state") == "idle":
                    out["idle"] = True
                elif c.get("execution_state") == "busy":
                    out["busy"] = True
            elif mt == "stream":
                out[c.get("name", "stdout")] = out.get(c.get("name", "stdout"), "") + c.get("text", "")
            elif mt in ("display_data", "execute_result"):
                out["displays"].append(c.get("data", {}))
            elif mt == "error":
                out["errors"].append(c)
        return out

    def request(self, channel, msg_type, content, reply_type, deadline_s):
        """Send one request; the reply's content, or None at the deadline."""
        end = time.monotonic() + deadline_s
        msg_id = self.send(channel, msg_type, content)
        while True:
            msg = self.recv(end)
            if msg is None:
                return None
            if (msg.get("parent_header", {}).get("msg_id") == msg_id
                    and msg.get("msg_type") == reply_type):
                return msg.get("content")

    def close(self):
        try:
            self.ws.close(timeout=2)
        except Exception:
            pass


def need(res, what):
    """Abort when the cell timed out (its failure is checked by the caller first)."""
    if res["timed_out"]:
        raise Abort(f"{what}: no execute_reply and idle within the deadline")


def describe(res):
    return (f"reply={res['reply']} idle={res['idle']} timed_out={res['timed_out']} "
            f"stdout={res['stdout']!r} stderr={res['stderr'][-300:]!r} errors="
            f"{[(e.get('ename'), e.get('evalue')) for e in res['errors']]}")


# ---- the test -------------------------------------------------------------------------------

def run(cellblock, tmp):
    cb_token = "cb-" + secrets.token_hex(16)
    js_token = "js-" + secrets.token_hex(16)
    servers = []
    try:
        # -- cellblock serve
        state = os.path.join(tmp, "cb-state")
        os.mkdir(state)
        env = dict(os.environ, CELLBLOCK_TOKEN=cb_token, CELLBLOCK_STATE_DIR=state)
        cb = Child("cellblock", [cellblock, "serve", "--listen", "127.0.0.1:0"], env,
                   os.path.join(tmp, "cellblock.log"))
        servers.append(cb)

        def cb_port_of(text):
            for line in text.splitlines():
                if line.startswith("cellblock serve: listening on http://127.0.0.1:"):
                    return int(line.rsplit(":", 1)[1].strip().rstrip("/"))
            return None

        cb_port = cb.wait_for_log(cb_port_of, START_DEADLINE_S)
        if not check(cb_port is not None, "cellblock serve prints where it listens",
                     f"exit code {cb.proc.poll()}"):
            return servers
        log(f"cellblock on port {cb_port}")
        api, why = wait_http_ok(cb, cb_port, "/api", cb_token, START_DEADLINE_S)
        if not check(isinstance(api, dict) and "version" in api, "cellblock GET /api gives a version",
                     why or repr(api)):
            return servers

        # -- jupyter_server, gateway mode, with nothing of the machine's Jupyter setup
        js_port = free_port()
        jdirs = {k: os.path.join(tmp, "jupyter", k.lower()) for k in
                 ("HOME", "JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR")}
        for d in jdirs.values():
            os.makedirs(d)
        root = os.path.join(tmp, "jupyter", "root")
        os.makedirs(root)
        js_env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "JUPYTER_PLATFORM_DIRS": "1",
                  "PYTHONNOUSERSITE": "1", **jdirs}
        # Through `cellblock lab` (cli/cmd_lab.c): jupyter_server with cellblock's extension
        # (lab/cellblock_lab.py), the token passed in the environment.
        js_env["CELLBLOCK_TOKEN"] = cb_token
        argv = [cellblock, "lab", "--url", f"http://127.0.0.1:{cb_port}",
                "--listen", f"127.0.0.1:{js_port}", "--root", root, "--server-only", "--",
                "--no-browser", "--ServerApp.port_retries=0", f"--ServerApp.token={js_token}",
                "--GatewayClient.request_timeout=90", "--GatewayClient.connect_timeout=30"]
        # SIGKILL if the test dies: in gateway mode it has no kernels of its own to stop, and on
        # SIGTERM it would try the (gone) gateway for a while.
        js = Child("jupyter_server", argv, js_env, os.path.join(tmp, "jupyter_server.log"),
                   death_signal=signal.SIGKILL)
        servers.append(js)
        ver, why = wait_http_ok(js, js_port, "/api", js_token, START_DEADLINE_S)
        if not check(isinstance(ver, dict) and "version" in ver,
                     "jupyter_server (gateway mode) answers GET /api", why or repr(ver)):
            return servers
        log(f"jupyter_server {ver['version']} on port {js_port}")

        # -- kernelspecs come from cellblock
        st, _, cb_specs = http_call(cb_port, "GET", "/api/kernelspecs", cb_token)
        check(st == 200 and isinstance(cb_specs, dict) and cb_specs.get("kernelspecs"),
              "cellblock GET /api/kernelspecs lists kernelspecs", f"{st} {cb_specs!r:.300}")
        st, _, js_specs = http_call(js_port, "GET", "/api/kernelspecs", js_token)
        ok = check(st == 200 and isinstance(js_specs, dict) and js_specs.get("kernelspecs"),
                   "jupyter_server GET /api/kernelspecs lists kernelspecs", f"{st} {js_specs!r:.300}")
        if not ok:
            return servers
        cb_names = sorted((cb_specs or {}).get("kernelspecs", {}))
        js_names = sorted(js_specs["kernelspecs"])
        check(js_names == cb_names, "jupyter_server's kernelspecs are cellblock's",
              f"jupyter_server {js_names}, cellblock {cb_names}")
        default = js_specs.get("default")
        check(default in js_specs["kernelspecs"] and default == (cb_specs or {}).get("default"),
              "the default kernelspec is cellblock's and is listed",
              f"jupyter_server default {default!r}, cellblock {(cb_specs or {}).get('default')!r}")
        spec = js_specs["kernelspecs"].get(default, {}).get("spec", {})
        check(spec.get("language") == "python" and spec.get("display_name"),
              "the default kernelspec is a python one with a display_name", repr(spec)[:300])
        st, _, one = http_call(js_port, "GET", f"/api/kernelspecs/{urllib.parse.quote(default)}",
                               js_token)
        check(st == 200 and isinstance(one, dict) and one.get("name") == default,
              "GET /api/kernelspecs/{default} through jupyter_server", f"{st} {one!r:.300}")

        # -- a kernel, made through jupyter_server
        t0 = time.monotonic()
        st, hdrs, model = http_call(js_port, "POST", "/api/kernels", js_token,
                                    body={"name": default})
        log(f"POST /api/kernels took {time.monotonic() - t0:.2f} s")
        if not check(st == 201 and isinstance(model, dict) and model.get("id"),
                     "POST /api/kernels through jupyter_server: 201 with a model",
                     f"{st} {model!r:.500}"):
            return servers
        kid = model["id"]
        check(model.get("name") == default, "the model names the kernelspec asked for",
              repr(model))
        check(hdrs.get("location", "").endswith(f"/api/kernels/{kid}"),
              "jupyter_server's 201 has Location /api/kernels/{id}", repr(hdrs.get("location")))
        st, _, cb_list = http_call(cb_port, "GET", "/api/kernels", cb_token)
        cb_ids = [k.get("id") for k in cb_list] if isinstance(cb_list, list) else []
        check(st == 200 and kid in cb_ids, "cellblock's own GET /api/kernels lists the same id",
              f"{st} id {kid}, cellblock has {cb_list!r:.500}")
        st, _, js_list = http_call(js_port, "GET", "/api/kernels", js_token)
        check(st == 200 and isinstance(js_list, list) and kid in [k.get("id") for k in js_list],
              "jupyter_server's GET /api/kernels lists it", f"{st} {js_list!r:.300}")
        st, _, km = http_call(js_port, "GET", f"/api/kernels/{kid}", js_token)
        check(st == 200 and isinstance(km, dict) and km.get("id") == kid
              and "execution_state" in km and "last_activity" in km,
              "GET /api/kernels/{id} through jupyter_server: the model", f"{st} {km!r:.300}")

        # -- the kernel's WebSocket through jupyter_server
        session = uuid.uuid4().hex
        ws_url = (f"ws://127.0.0.1:{js_port}/api/kernels/{kid}/channels?"
                  + urllib.parse.urlencode({"session_id": session}))
        try:
            ks = KernelSocket(ws_url, [f"Authorization: token {js_token}"], session)
        except Exception as e:
            check(False, "WebSocket /api/kernels/{id}/channels on jupyter_server opens", repr(e))
            return servers
        check(True, "WebSocket /api/kernels/{id}/channels on jupyter_server opens")
        check(ks.greet(KERNEL_DEADLINE_S), "kernel_info through jupyter_server is answered")
        try:
            run_cells(ks, js_port, js_token, kid)
        except Abort as e:
            check(False, "the kernel keeps answering; the remaining cells were not run", str(e))
        finally:
            ks.close()

        # -- shut down through jupyter_server; gone from cellblock
        st, _, body = http_call(js_port, "DELETE", f"/api/kernels/{kid}", js_token)
        check(st == 204, "DELETE /api/kernels/{id} through jupyter_server: 204", f"{st} {body!r:.300}")
        st, _, cb_list = http_call(cb_port, "GET", "/api/kernels", cb_token)
        cb_ids = [k.get("id") for k in cb_list] if isinstance(cb_list, list) else None
        check(st == 200 and cb_ids is not None and kid not in cb_ids,
              "the kernel is gone from cellblock's GET /api/kernels", f"{st} {cb_list!r:.300}")
        st, _, body = http_call(cb_port, "GET", f"/api/kernels/{kid}", cb_token)
        check(st == 404, "cellblock GET /api/kernels/{id} of the deleted kernel: 404",
              f"{st} {body!r:.300}")
        st, _, js_list = http_call(js_port, "GET", "/api/kernels", js_token)
        check(st == 200 and isinstance(js_list, list) and kid not in [k.get("id") for k in js_list],
              "and from jupyter_server's", f"{st} {js_list!r:.300}")

        # -- another language's kernel, as JupyterLab's launcher starts it (issue 15): every
        # kernelspec cellblock lists is one jupyter_server can start through the gateway.
        if "javascript" in js_specs["kernelspecs"]:
            st, _, jsk = http_call(js_port, "POST", "/api/kernels", js_token,
                                   body={"name": "javascript"})
            jkid = jsk.get("id") if st == 201 and isinstance(jsk, dict) else None
            if check(jkid, "POST /api/kernels {name: javascript} through jupyter_server: 201",
                     f"{st} {jsk!r:.300}"):
                ks = KernelSocket(f"ws://127.0.0.1:{js_port}/api/kernels/{jkid}/channels?"
                                  + urllib.parse.urlencode({"session_id": uuid.uuid4().hex}),
                                  [f"Authorization: token {js_token}"], uuid.uuid4().hex)
                try:
                    check(ks.greet(KERNEL_DEADLINE_S), "the JavaScript kernel answers kernel_info")
                    res = ks.execute("const n = 6 * 7\nconsole.log('from node', n)\nn", CELL_DEADLINE_S)
                    check(res["stdout"] == "from node 42\n"
                          and any(d.get("text/plain") == "42" for d in res["displays"]),
                          "a JavaScript cell through jupyter_server: stdout and its result",
                          describe(res))
                finally:
                    ks.close()
                st, _, _ = http_call(js_port, "DELETE", f"/api/kernels/{jkid}", js_token)
                check(st == 204, "the JavaScript kernel is deleted through jupyter_server", str(st))
        else:
            check(False, "cellblock lists a javascript kernelspec", repr(sorted(js_specs["kernelspecs"])))

        # -- what JupyterLab does when it opens a notebook: POST /api/sessions. jupyter_server
        # then asks the gateway for a kernel with env KERNEL_WORKING_DIR (the notebook's folder on
        # jupyter_server's side, a path that means nothing to cellblock).
        os.makedirs(os.path.join(root, "work"))
        st, _, sess = http_call(js_port, "POST", "/api/sessions", js_token, body={
            "path": "work/notebook.ipynb", "name": "notebook.ipynb", "type": "notebook",
            "kernel": {"name": default}})
        skid = (sess or {}).get("kernel", {}).get("id") if isinstance(sess, dict) else None
        if check(st == 201 and skid, "POST /api/sessions (a notebook opened) through jupyter_server",
                 f"{st} {sess!r:.300}"):
            st, _, cb_list = http_call(cb_port, "GET", "/api/kernels", cb_token)
            check(st == 200 and isinstance(cb_list, list)
                  and skid in [k.get("id") for k in cb_list],
                  "the session's kernel is one of cellblock's", f"{st} {cb_list!r:.300}")
            session = uuid.uuid4().hex
            ks = KernelSocket(f"ws://127.0.0.1:{js_port}/api/kernels/{skid}/channels?session_id="
                              f"{session}", [f"Authorization: token {js_token}"], session)
            try:
                check(ks.greet(KERNEL_DEADLINE_S), "the notebook kernel's kernel_info is answered")
                res = ks.execute("print('notebook', 6 * 7)", KERNEL_DEADLINE_S)
            finally:
                ks.close()
            check(res["reply"] is not None and res["stdout"] == "notebook 42\n",
                  "the notebook's kernel runs a cell", describe(res))
            st, _, body = http_call(js_port, "DELETE", f"/api/sessions/{sess['id']}", js_token)
            check(st == 204, "DELETE /api/sessions/{id}: 204", f"{st} {body!r:.300}")
            st, _, cb_list = http_call(cb_port, "GET", "/api/kernels", cb_token)
            check(st == 200 and isinstance(cb_list, list)
                  and skid not in [k.get("id") for k in cb_list],
                  "closing the session shut its kernel down on cellblock", f"{st} {cb_list!r:.300}")

        run_assistant(cb_port, cb_token, js_port, js_token, root)
        return servers
    except Exception:
        check(False, "the test ran without an exception", traceback.format_exc())
        return servers


def lab_usage(cellblock):
    """`cellblock lab`'s bad settings are refused before anything starts (exit 2, a reason)."""
    for args, word in ((["--listen", "127.0.0.1"], "--listen"), (["--url", "ftp://x"], "--url"),
                       (["--root", "/nonexistent-cb-lab"], "--root")):
        r = subprocess.run([cellblock, "lab", *args], capture_output=True, text=True, timeout=30,
                           env={"PATH": "/usr/bin:/bin"})
        check(r.returncode == 2 and word in r.stderr,
              f"cellblock lab {' '.join(args)}: exit 2 naming {word}",
              f"{r.returncode} {r.stderr[-300:]!r}")


def run_assistant(cb_port, cb_token, js_port, js_token, root):
    """The kernel an assistant uses (opened over MCP) opened through jupyter_server: listed,
    described, adopted into a notebook session by /cellblock/open/{id}, driven over
    jupyter_server's WebSocket; its DELETE refused, the assistant's state untouched."""
    from fwd_lib import Mcp
    st, _, before = http_call(cb_port, "GET", "/api/kernels", cb_token)
    before = {k.get("id") for k in before} if isinstance(before, list) else set()
    mcp = Mcp(cb_port, cb_token)
    sid = mcp.call("sandbox_create", {})["sandbox_id"]
    out = mcp.call("code_execute", {"sandbox_id": sid, "code": "x = 41"})
    check(out.get("status") == "ok", "over MCP: x = 41 in a new sandbox", repr(out)[:300])
    st, _, after = http_call(cb_port, "GET", "/api/kernels", cb_token)
    new = [k.get("id") for k in after if k.get("id") not in before] if isinstance(after, list) else []
    if not check(len(new) == 1, "cellblock lists the MCP sandbox's kernel", f"{st} {after!r:.300}"):
        return
    kid = new[0]
    st, _, js_list = http_call(js_port, "GET", "/api/kernels", js_token)
    check(st == 200 and isinstance(js_list, list) and kid in [k.get("id") for k in js_list],
          "jupyter_server's GET /api/kernels lists the assistant's kernel", f"{st} {js_list!r:.300}")
    st, _, km = http_call(js_port, "GET", f"/api/kernels/{kid}", js_token)
    check(st == 200 and isinstance(km, dict) and km.get("id") == kid
          and km.get("execution_state") in ("idle", "busy") and "last_activity" in km
          and "connections" in km,
          "jupyter_server's GET /api/kernels/{id} of the assistant's kernel: 200, its model",
          f"{st} {km!r:.300}")
    st, _, sess = http_call(js_port, "GET", f"/cellblock/open/{kid}", js_token)
    ok = check(st == 200 and isinstance(sess, dict) and sess.get("kernel", {}).get("id") == kid
               and sess.get("type") == "notebook",
               "GET /cellblock/open/{id}: a notebook session on the assistant's kernel",
               f"{st} {sess!r:.400}")
    if ok:
        nb_path = os.path.join(root, sess.get("path", "?"))
        try:
            import nbformat
            nb = nbformat.read(nb_path, as_version=4)
            nbformat.validate(nb)
            spec_ok = nb.metadata.get("kernelspec", {}).get("name") == km.get("name")
        except Exception as e:
            spec_ok = repr(e)
        check(spec_ok is True, "the notebook it made is valid (nbformat) and names the kernelspec",
              f"{nb_path}: {spec_ok}")
        st, _, again = http_call(js_port, "GET", f"/cellblock/open/{kid}", js_token)
        check(st == 200 and isinstance(again, dict) and again.get("id") == sess.get("id"),
              "opening it again reuses the session", f"{st} {again!r:.300}")
        st, _, sessions = http_call(js_port, "GET", "/api/sessions", js_token)
        check(st == 200 and isinstance(sessions, list)
              and any(s.get("kernel", {}).get("id") == kid for s in sessions),
              "jupyter_server's GET /api/sessions has it", f"{st} {sessions!r:.300}")
    st, _, body = http_call(js_port, "GET", "/cellblock/open/0000aaaa-0000-4000-8000-000000000000",
                            js_token)
    check(st == 404, "GET /cellblock/open/{unknown id}: 404", f"{st} {body!r:.200}")
    st, hdrs, body = http_call(js_port, "GET", f"/cellblock/open/{kid}", None)
    check(st in (401, 403) or (st == 302 and "/login" in hdrs.get("location", "")),
          "GET /cellblock/open/{id} without jupyter_server's token is refused",
          f"{st} {hdrs.get('location')} {body!r:.200}")

    session = uuid.uuid4().hex
    ks = KernelSocket(f"ws://127.0.0.1:{js_port}/api/kernels/{kid}/channels?session_id={session}",
                      [f"Authorization: token {js_token}"], session)
    try:
        check(ks.greet(KERNEL_DEADLINE_S), "the assistant's kernel answers kernel_info through "
              "jupyter_server")
        res = ks.execute("print(x + 1)", CELL_DEADLINE_S)
        check(res["reply"] is not None and res["stdout"] == "42\n",
              "a cell through jupyter_server sees the assistant's x: x + 1 == 42", describe(res))
    finally:
        ks.close()
    st, _, body = http_call(js_port, "POST", f"/api/kernels/{kid}/interrupt", js_token)
    check(st == 204, "POST /api/kernels/{id}/interrupt of the assistant's kernel through "
          "jupyter_server: 204", f"{st} {body!r:.300}")
    if isinstance(sess, dict) and sess.get("id"):
        st, _, body = http_call(js_port, "DELETE", f"/api/sessions/{sess['id']}", js_token)
        check(st == 403 and "not started through this API" in json.dumps(body),
              "DELETE of its notebook session through jupyter_server: 403 (it would end the "
              "kernel)", f"{st} {body!r:.300}")
    st, _, body = http_call(js_port, "DELETE", f"/api/kernels/{kid}", js_token)
    check(st == 403 and "not started through this API" in json.dumps(body),
          "DELETE of the assistant's kernel through jupyter_server: 403 with cellblock's reason",
          f"{st} {body!r:.300}")
    out = mcp.call("code_execute", {"sandbox_id": sid, "code": "print(x)"})
    check(out.get("status") == "ok" and out.get("stdout") == "41\n",
          "the assistant's kernel still runs code over MCP, x still 41", repr(out)[:300])
    st, _, js_list = http_call(js_port, "GET", "/api/kernels", js_token)
    check(st == 200 and isinstance(js_list, list) and kid in [k.get("id") for k in js_list],
          "and jupyter_server still lists it", f"{st} {js_list!r:.300}")


def run_cells(ks, js_port, js_token, kid):
    # A first cell: the kernel may still be starting, so the longer deadline.
    res = ks.execute("x = 6 * 7\nprint('hello from cellblock', x)", KERNEL_DEADLINE_S)
    check(res["reply"] is not None and res["reply"].get("status") == "ok" and res["idle"],
          "a cell through jupyter_server: execute_reply ok, then status idle", describe(res))
    check(res["stdout"] == "hello from cellblock 42\n", "its stdout arrives as a stream message",
          describe(res))
    need(res, "the first cell")
    res = ks.execute("import sys; print('to stderr', file=sys.stderr); 40 + 2", CELL_DEADLINE_S)
    check(res["reply"] is not None and "to stderr" in res["stderr"]
          and any(d.get("text/plain") == "42" for d in res["displays"]),
          "stderr stream and execute_result", describe(res))
    need(res, "the stderr cell")
    info = ks.request("shell", "kernel_info_request", {}, "kernel_info_reply", CELL_DEADLINE_S)
    if not check(isinstance(info, dict) and info.get("language_info", {}).get("name") == "python",
                 "kernel_info_reply through jupyter_server", repr(info)[:300]) and info is None:
        raise Abort("no kernel_info_reply")

    # matplotlib: display_data with image/png
    res = ks.execute("%matplotlib inline\nimport matplotlib.pyplot as plt\n"
                     "plt.plot([1, 2, 3], [1, 4, 9])\nplt.show()", 60.0)
    pngs = [d["image/png"] for d in res["displays"] if "image/png" in d]
    check(res["reply"] is not None and res["reply"].get("status") == "ok",
          "the matplotlib cell runs", describe(res))
    png_ok = False
    if pngs:
        try:
            png_ok = base64.b64decode(pngs[0]).startswith(b"\x89PNG\r\n\x1a\n")
        except ValueError:
            pass
    check(png_ok, "display_data carries image/png, a real PNG",
          f"{len(pngs)} png(s); displays {[list(d) for d in res['displays']]}")
    need(res, "the matplotlib cell")

    # interrupt through jupyter_server
    started = {}

    def on_msg(msg):
        if msg.get("msg_type") == "execute_input" and "t" not in started:
            started["t"] = time.monotonic()
            # The cell is running: interrupt it through jupyter_server, as JupyterLab's ■ does.
            st, _, body = http_call(js_port, "POST", f"/api/kernels/{kid}/interrupt", js_token)
            started["status"] = (st, body)

    t0 = time.monotonic()
    res = ks.execute("import time\nprint('sleeping', flush=True)\ntime.sleep(60)\nprint('woke')",
                     CELL_DEADLINE_S, on_message=on_msg)
    took = time.monotonic() - t0
    check(started.get("status", (None,))[0] == 204,
          "POST /api/kernels/{id}/interrupt through jupyter_server: 204",
          repr(started.get("status", "the cell never started (no execute_input)")))
    check(res["reply"] is not None and res["reply"].get("status") == "error"
          and res["reply"].get("ename") == "KeyboardInterrupt",
          "the sleeping cell ends with KeyboardInterrupt", describe(res))
    check(any(e.get("ename") == "KeyboardInterrupt" for e in res["errors"]),
          "the error message on iopub is KeyboardInterrupt", describe(res))
    check("woke" not in res["stdout"], "before the 60 s sleep ended (it never printed 'woke')",
          f"{took:.1f} s, stdout {res['stdout']!r}")
    need(res, "the interrupted cell")
    res = ks.execute("print(x + 1)", CELL_DEADLINE_S)
    check(res["reply"] is not None and res["reply"].get("status") == "ok" and res["stdout"] == "43\n",
          "the kernel stays usable after the interrupt, state kept", describe(res))
    need(res, "the cell after the interrupt")

    # restart through jupyter_server: state is lost
    res = ks.execute("y = 'before restart'", CELL_DEADLINE_S)
    check(res["reply"] is not None and res["reply"].get("status") == "ok", "y is defined",
          describe(res))
    need(res, "y = ...")
    st, _, model = http_call(js_port, "POST", f"/api/kernels/{kid}/restart", js_token)
    check(st == 200 and isinstance(model, dict) and model.get("id") == kid,
          "POST /api/kernels/{id}/restart through jupyter_server: 200 with the model",
          f"{st} {model!r:.300}")
    # As JupyterLab does after a restart: kernel_info_request until one is answered, on the same
    # WebSocket.
    end = time.monotonic() + KERNEL_DEADLINE_S
    info = None
    while info is None and time.monotonic() < end:
        info = ks.request("shell", "kernel_info_request", {}, "kernel_info_reply",
                          min(2.0, max(0.01, end - time.monotonic())))
    check(info is not None, "after the restart the same WebSocket gets a kernel_info_reply",
          f"nothing within {KERNEL_DEADLINE_S} s; last messages: "
          f"{[(m.get('channel'), m.get('msg_type')) for m in ks.seen[-8:]]}")
    if info is None:
        raise Abort("no kernel_info_reply after the restart")
    res = ks.execute("print(y)", CELL_DEADLINE_S)
    check(res["reply"] is not None and res["reply"].get("status") == "error"
          and res["reply"].get("ename") == "NameError",
          "after the restart y is a NameError (state lost)", describe(res))
    need(res, "print(y) after the restart")
    res = ks.execute("print('fresh', 1 + 1)", CELL_DEADLINE_S)
    if res["reply"] is not None and res["reply"].get("status") == "aborted":
        # ipykernel aborts what reaches it while it still clears its queue after an error
        # (stop_on_error): on a loaded machine the next cell can land in that window. Again:
        res = ks.execute("print('fresh', 1 + 1)", CELL_DEADLINE_S)
    check(res["reply"] is not None and res["stdout"] == "fresh 2\n",
          "the restarted kernel runs cells", describe(res))


def main():
    if len(sys.argv) != 2:
        print("usage: test_jupyter_server.py PATH/TO/cellblock", file=sys.stderr)
        return 2
    cellblock = os.path.abspath(sys.argv[1])
    for mod in ("jupyter_server", "websocket"):
        r = subprocess.run([PY, "-c", f"import {mod}"], capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            print(f"SKIP: {PY} cannot import {mod}: {r.stderr.strip().splitlines()[-1:]}")
            return 77
    if not os.access(cellblock, os.X_OK):
        print(f"FAIL - {cellblock} is not an executable", flush=True)
        return 1
    tmp = tempfile.mkdtemp(prefix="cb-jsrv-")
    servers = []
    try:
        lab_usage(cellblock)
        servers = run(cellblock, tmp)
    finally:
        # jupyter_server first: it would otherwise try the gateway again while it goes.
        rcs = {}
        for s in reversed(servers):
            rcs[s.name] = s.stop(STOP_DEADLINE_S)
        if "cellblock" in rcs:
            check(rcs["cellblock"] == 0, "cellblock serve exits 0 after SIGTERM",
                  f"exit status {rcs['cellblock']} (None: killed after {STOP_DEADLINE_S} s)")
        rc = finish()
        if rc != 0:
            for s in servers:
                print(f"--- last lines of {s.name}'s log ---\n{s.tail()}", flush=True)
        shutil.rmtree(tmp, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
