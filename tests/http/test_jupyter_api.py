#!/usr/bin/python3
"""test_jupyter_api.py: the Jupyter Kernel Gateway API end to end, with real clients.

    /usr/bin/python3 test_jupyter_api.py PATH/TO/cellblock PATH/TO/api_harness

Part 1 runs `cellblock serve --listen 127.0.0.1:0` (token and state dir from the environment)
and drives /api with http.client and python3-websocket, decoding binary frames with
jupyter_server's own functions: kernelspecs; POST (201 + Location), list, get; executions over a
JSON WebSocket and over the v1.kernel.websocket.jupyter.org subprotocol; a matplotlib PNG;
input_request/input_reply; interrupt; restart (status restarting, state lost); a session_id that
reconnects and gets what came meanwhile; a second WebSocket replacing the first; malformed
bodies and WebSocket messages (refused, the connection keeps working); unknown ids; DELETE (204,
then 404, its WebSockets closed).

Part 2 runs api_harness, which serves the same API beside a kernel opened the way an MCP session
opens one: it is listed and usable, but DELETE is 403 and a shutdown_request is refused.

Part 3 (tenants) runs `cellblock serve --tokens FILE` with two tenants, alice and bob, beside
the admin's CELLBLOCK_TOKEN: each lists only its own kernels (the admin all); another tenant's
kernel is answered exactly as an unknown id (GET, DELETE, interrupt, restart, the WebSocket),
even after it is gone; a kernel started through the API belongs to whoever started it. SKIPs
(says so, passes) when this cellblock has no --tokens yet.

Every wait has a deadline; nothing sleeps on hope.
"""
import base64
import datetime
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid

import websocket
from jupyter_server.base.zmqhandlers import (deserialize_binary_message, deserialize_msg_from_ws_v1,
                                             serialize_binary_message, serialize_msg_to_ws_v1)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from checks import check, finish  # noqa: E402

V1 = "v1.kernel.websocket.jupyter.org"
START_DEADLINE_S = 120.0
DEADLINE_S = 30.0
TOKEN = "jupyter-api-test-token-" + uuid.uuid4().hex[:8]


# ---- the server ---------------------------------------------------------------------------

class Server:
    """A server process whose stderr goes to a file we read lines from."""

    def __init__(self, argv, state_dir, env=None):
        self.argv, self.state_dir = argv, state_dir
        self.log_path = os.path.join(state_dir, "server.log")
        self.log = open(self.log_path, "wb")
        env = env or dict(os.environ, CELLBLOCK_TOKEN=TOKEN, CELLBLOCK_STATE_DIR=state_dir)
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=self.log, env=env)
        self.url = None
        self.token = TOKEN

    def wait_for(self, pattern, deadline_s):
        """The first match of pattern in the log, waiting for it; None on timeout or exit."""
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            with open(self.log_path, "r", errors="replace") as f:
                m = re.search(pattern, f.read())
            if m:
                return m
            if self.proc.poll() is not None:
                return None
            time.sleep(0.05)
        return None

    def start(self):
        m = self.wait_for(r"listening on (http://127\.0\.0\.1:\d+)", 60)
        self.url = m.group(1) if m else None
        return self.url

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode

    def tail(self):
        with open(self.log_path, "r", errors="replace") as f:
            return f.read()[-3000:]


# ---- REST ---------------------------------------------------------------------------------

def rest(srv, method, path, body=None, raw=None, token=None):
    """(status, headers, parsed JSON body or None)."""
    host = srv.url[len("http://"):]
    conn = http.client.HTTPConnection(host, timeout=DEADLINE_S)
    headers = {"Authorization": f"token {token or srv.token}"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if raw is not None:
        data = raw
        headers["Content-Type"] = "application/json"
    conn.request(method, path, body=data, headers=headers)
    resp = conn.getresponse()
    text = resp.read()
    conn.close()
    parsed = None
    if text:
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
    return resp.status, dict(resp.getheaders()), parsed


def is_error_body(body):
    return isinstance(body, dict) and isinstance(body.get("reason"), str) and isinstance(body.get("message"), str)


# ---- WebSockets ---------------------------------------------------------------------------

class Client:
    """One WebSocket on a kernel's channels, in the default (JSON) format or v1."""

    def __init__(self, srv, kernel_id, session_id=None, v1=False, token_in_query=False):
        url = srv.url.replace("http://", "ws://") + f"/api/kernels/{kernel_id}/channels"
        query = []
        if session_id:
            query.append(f"session_id={session_id}")
        headers = []
        if token_in_query:
            query.append(f"token={srv.token}")
        else:
            headers.append(f"Authorization: token {srv.token}")
        if query:
            url += "?" + "&".join(query)
        options = {"header": headers, "timeout": DEADLINE_S}
        if v1:
            options["subprotocols"] = [V1]
        self.ws = websocket.create_connection(url, **options)
        self.v1 = v1
        self.session = session_id or uuid.uuid4().hex
        self.closed = None  # (code, reason) once a close frame came

    def subprotocol(self):
        return self.ws.getsubprotocol() if hasattr(self.ws, "getsubprotocol") else None

    def message(self, channel, msg_type, content, parent=None):
        return {"header": {"msg_id": uuid.uuid4().hex, "msg_type": msg_type, "session": self.session,
                           "username": "test", "date": datetime.datetime.utcnow().isoformat() + "Z",
                           "version": "5.3"},
                "parent_header": parent or {}, "metadata": {}, "content": content, "channel": channel,
                "buffers": []}

    def send(self, msg):
        if self.v1:
            parts = [json.dumps(msg[k]).encode() for k in ("header", "parent_header", "metadata", "content")]
            self.ws.send_binary(serialize_msg_to_ws_v1(parts + list(msg["buffers"]), msg["channel"]))
        elif msg["buffers"]:
            self.ws.send_binary(serialize_binary_message(msg))
        else:
            self.ws.send(json.dumps(msg))
        return msg["header"]["msg_id"]

    def send_raw(self, data, binary=False):
        if binary:
            self.ws.send_binary(data)
        else:
            self.ws.send(data)

    def recv(self, deadline):
        """The next message as a dict (with channel and buffers), None at the deadline or close."""
        left = deadline - time.monotonic()
        if left <= 0 or self.closed:
            return None
        self.ws.settimeout(left)
        try:
            opcode, data = self.ws.recv_data(control_frame=True)
        except websocket.WebSocketTimeoutException:
            return None
        except websocket.WebSocketConnectionClosedException:
            self.closed = self.closed or (None, "")
            return None
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            code = int.from_bytes(data[:2], "big") if len(data) >= 2 else None
            self.closed = (code, data[2:].decode(errors="replace"))
            return None
        if opcode in (websocket.ABNF.OPCODE_PING, websocket.ABNF.OPCODE_PONG):
            return self.recv(deadline)
        if self.v1:
            if opcode != websocket.ABNF.OPCODE_BINARY:
                raise AssertionError("a v1 WebSocket got a text frame")
            channel, parts = deserialize_msg_from_ws_v1(data)
            msg = {"channel": channel, "header": json.loads(parts[0]), "parent_header": json.loads(parts[1]),
                   "metadata": json.loads(parts[2]), "content": json.loads(parts[3]), "buffers": parts[4:]}
        elif opcode == websocket.ABNF.OPCODE_BINARY:
            msg = deserialize_binary_message(data)
        else:
            msg = json.loads(data)
        msg["msg_type"] = msg["header"]["msg_type"]
        return msg

    def wait_close(self, deadline_s=DEADLINE_S):
        end = time.monotonic() + deadline_s
        while not self.closed and time.monotonic() < end:
            self.recv(end)
        return self.closed

    def close(self):
        try:
            self.ws.close(timeout=2)
        except Exception:
            pass


def request(client, channel, msg_type, content, deadline_s=DEADLINE_S, stdin_value=None):
    """Send a request; collect what answers it until its reply AND status idle arrived.
    Returns (reply, [iopub messages], [stdin requests]); reply None on timeout."""
    msg_id = client.send(client.message(channel, msg_type, content))
    end = time.monotonic() + deadline_s
    reply, iopub, stdin, idle = None, [], [], False
    while (reply is None or not idle) and time.monotonic() < end:
        msg = client.recv(end)
        if msg is None:
            if client.closed:
                break
            continue
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["channel"] == "iopub":
            iopub.append(msg)
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                idle = True
        elif msg["channel"] == "stdin":
            stdin.append(msg)
            if stdin_value is not None:
                client.send(client.message("stdin", "input_reply", {"value": stdin_value}, parent=msg["header"]))
        elif msg["msg_type"].endswith("_reply"):
            reply = msg
    return reply, iopub, stdin


def execute(client, code, **kw):
    content = {"code": code, "silent": False, "store_history": True, "user_expressions": {},
               "allow_stdin": kw.pop("allow_stdin", False), "stop_on_error": False}
    return request(client, "shell", "execute_request", content, **kw)


def stdout_of(iopub):
    return "".join(m["content"]["text"] for m in iopub
                   if m["msg_type"] == "stream" and m["content"]["name"] == "stdout")


def wait_ready(client, deadline_s=START_DEADLINE_S):
    """kernel_info until the kernel answers (it may still be starting)."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        reply, _, _ = request(client, "shell", "kernel_info_request", {}, deadline_s=min(10, end - time.monotonic()))
        if reply is not None:
            return reply
    return None


def wait_model(srv, kernel_id, states, deadline_s=START_DEADLINE_S):
    end = time.monotonic() + deadline_s
    model = None
    while time.monotonic() < end:
        status, _, model = rest(srv, "GET", f"/api/kernels/{kernel_id}")
        if status == 200 and model["execution_state"] in states:
            return model
        time.sleep(0.1)
    return model


# ---- part 1: cellblock serve ---------------------------------------------------------------

def part_serve(cellblock):
    state_dir = tempfile.mkdtemp(prefix="cb-jupyter-api-")
    srv = Server([cellblock, "serve", "--listen", "127.0.0.1:0"], state_dir)
    try:
        if not check(srv.start() is not None, "cellblock serve says where it listens", srv.tail()):
            return
        checks_serve(srv)
    finally:
        rc = srv.stop()
        check(rc == 0, "cellblock serve exits 0 on SIGTERM", f"rc={rc}\n{srv.tail()}")


def checks_serve(srv):
    # /api and kernelspecs
    status, _, body = rest(srv, "GET", "/api")
    check(status == 200 and isinstance(body, dict) and "version" in body, "GET /api answers a version", str(body))
    status, _, _ = rest(srv, "GET", "/api", token="wrong-token-wrong-token")
    check(status == 401, "a wrong token is refused with 401", str(status))
    status, _, specs = rest(srv, "GET", "/api/kernelspecs")
    ok = status == 200 and specs.get("default") == "python3" and "python3" in specs.get("kernelspecs", {})
    check(ok, "GET /api/kernelspecs: default python3 and its spec", str(specs)[:300])
    if ok:
        py = specs["kernelspecs"]["python3"]
        check(py["name"] == "python3" and isinstance(py["spec"]["argv"], list) and py["spec"]["language"] == "python"
              and py["spec"]["interrupt_mode"] in ("signal", "message") and "resources" in py
              and isinstance(py["spec"]["display_name"], str), "a kernelspec model as jupyter_server expects", str(py))
    status, _, one = rest(srv, "GET", "/api/kernelspecs/python3")
    check(status == 200 and one.get("name") == "python3" and "spec" in one, "GET /api/kernelspecs/python3", str(one))
    status, _, err = rest(srv, "GET", "/api/kernelspecs/no-such-spec")
    check(status == 404 and is_error_body(err), "an unknown kernelspec is 404 with reason and message", str(err))

    # malformed bodies
    for raw, what in ((b"{not json", "invalid JSON"), (b"[1,2]", "a JSON array"), (b'{"name": 5}', "a numeric name"),
                      (b'{"env": "x"}', "a string env")):
        status, _, err = rest(srv, "POST", "/api/kernels", raw=raw)
        check(status == 400 and is_error_body(err), f"POST /api/kernels with {what} is 400", f"{status} {err}")
    status, _, err = rest(srv, "POST", "/api/kernels", body={"name": "no-such-kernel"})
    check(status in (400, 404) and is_error_body(err) and "no-such-kernel" in err["message"],
          "POST with an unknown kernel name is refused with a clear message", f"{status} {err}")
    status, hdrs, err = rest(srv, "PUT", "/api/kernels")
    check(status == 405 and is_error_body(err), "PUT /api/kernels is 405", f"{status} {err}")

    # unknown ids
    for method, path in (("GET", "/api/kernels/nope"), ("DELETE", "/api/kernels/nope"),
                         ("POST", "/api/kernels/nope/interrupt"), ("POST", "/api/kernels/nope/restart")):
        status, _, err = rest(srv, method, path, body={} if method == "POST" else None)
        check(status == 404 and is_error_body(err), f"{method} {path} is 404", f"{status} {err}")
    ghost = Client(srv, "no-such-kernel")
    closed = ghost.wait_close()
    check(closed is not None and closed[0] in (4004, 1008), "a WebSocket on an unknown kernel is closed 4004/1008",
          str(closed))
    ghost.close()

    # create, list, get
    env = {"KERNEL_FOO": "bar", "OTHER": "no", "KERNEL_BAD-NAME": "no", "KERNEL_NUM": 5}
    status, hdrs, model = rest(srv, "POST", "/api/kernels", body={"name": "python3", "env": env})
    if not check(status == 201 and isinstance(model, dict) and "id" in model, "POST /api/kernels is 201 with a model",
                 f"{status} {model}"):
        return
    kid = model["id"]
    check(hdrs.get("Location") == f"/api/kernels/{kid}", "Location names the new kernel", str(hdrs))
    check(model["name"] == "python3" and model["execution_state"] in ("starting", "idle")
          and model["connections"] == 0, "the new kernel's model", str(model))
    try:
        datetime.datetime.strptime(model["last_activity"], "%Y-%m-%dT%H:%M:%S.%fZ")
        check(True, "last_activity parses as jupyter_server parses it")
    except (ValueError, KeyError) as e:
        check(False, "last_activity parses as jupyter_server parses it", str(e))

    # A WebSocket at once, while the kernel may still be starting.
    c = Client(srv, kid)
    status, _, listing = rest(srv, "GET", "/api/kernels")
    check(status == 200 and any(k["id"] == kid for k in listing), "GET /api/kernels lists it", str(listing))
    info = wait_ready(c)
    check(info is not None and info["content"].get("status") == "ok",
          "kernel_info over a WebSocket opened before the kernel was ready", str(info)[:200])
    model = wait_model(srv, kid, ("idle",))
    check(model and model["execution_state"] == "idle" and model["connections"] == 1,
          "GET /api/kernels/{id}: idle, one connection", str(model))

    reply, iopub, _ = execute(c, "print(1+1)")
    check(reply is not None and reply["content"]["status"] == "ok" and reply["channel"] == "shell",
          "JSON WebSocket: execute_reply ok", str(reply)[:300])
    check(stdout_of(iopub) == "2\n", "JSON WebSocket: the stream says 2", repr(stdout_of(iopub)))
    check(any(m["msg_type"] == "status" and m["content"]["execution_state"] == "idle" for m in iopub),
          "JSON WebSocket: status idle for the request")
    reply, iopub, _ = execute(c, "import os; print(os.environ.get('KERNEL_FOO'), os.environ.get('OTHER'), "
                                 "os.environ.get('KERNEL_NUM'))")
    check(stdout_of(iopub) == "bar None None\n", "only KERNEL_* string env entries reach the kernel",
          repr(stdout_of(iopub)))

    # v1
    c1 = Client(srv, kid, v1=True)
    check(c1.subprotocol() in (V1, None), "the v1 WebSocket opened")
    check(c1.subprotocol() == V1, "the server agreed to v1.kernel.websocket.jupyter.org", str(c1.subprotocol()))
    reply, iopub, _ = execute(c1, "print(40 + 2)")
    check(reply is not None and reply["content"]["status"] == "ok", "v1 WebSocket: execute_reply ok", str(reply)[:300])
    check(stdout_of(iopub) == "42\n", "v1 WebSocket: the stream says 42", repr(stdout_of(iopub)))
    check(any(m["msg_type"] == "execute_input" for m in iopub), "v1 WebSocket: execute_input on iopub")
    # every WebSocket of the kernel sees its iopub: the JSON client saw the v1 client's output
    end = time.monotonic() + DEADLINE_S
    seen = False
    while not seen and time.monotonic() < end:
        m = c.recv(end)
        seen = m is not None and m["msg_type"] == "stream" and m["content"].get("text") == "42\n"
    check(seen, "iopub is fanned out to every WebSocket of the kernel")

    # matplotlib
    reply, iopub, _ = execute(c1, "import matplotlib\nmatplotlib.use('module://matplotlib_inline.backend_inline')\n"
                                  "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [3, 1, 2])\nplt.show()",
                              deadline_s=90)
    pngs = [m["content"]["data"]["image/png"] for m in iopub
            if m["msg_type"] == "display_data" and "image/png" in m["content"].get("data", {})]
    check(len(pngs) == 1 and base64.b64decode(pngs[0])[:8] == b"\x89PNG\r\n\x1a\n",
          "a matplotlib figure arrives as display_data image/png", str(reply)[:300])

    # binary buffers both ways (comm messages), in both formats
    code = ("from ipykernel.comm import Comm\n"
            "comm = Comm(target_name='cb-test', data={'hello': 1}, buffers=[b'\\x00\\x01binary'])\n"
            "comm.on_msg(lambda m: print('got', [bytes(b) for b in m['buffers']]))")
    for client, fmt in ((c, "JSON"), (c1, "v1")):
        reply, iopub, _ = execute(client, code)
        opens = [m for m in iopub if m["msg_type"] == "comm_open"]
        check(len(opens) == 1 and [bytes(b) for b in opens[0]["buffers"]] == [b"\x00\x01binary"]
              and opens[0]["content"]["data"] == {"hello": 1},
              f"{fmt} WebSocket: a kernel message with buffers arrives with its buffers", str(opens)[:300])
        comm_id = opens[0]["content"]["comm_id"] if opens else ""
        msg = client.message("shell", "comm_msg", {"comm_id": comm_id, "data": {}})
        msg["buffers"] = [b"\xffup", b"two"]
        msg_id = client.send(msg)
        end = time.monotonic() + DEADLINE_S
        text = ""
        while "got" not in text and time.monotonic() < end:
            m = client.recv(end)
            if m and m["msg_type"] == "stream" and m["parent_header"].get("msg_id") == msg_id:
                text += m["content"]["text"]
        check(text == "got [b'\\xffup', b'two']\n", f"{fmt} WebSocket: a client message with buffers reaches the kernel",
              repr(text))

    # stdin
    reply, iopub, stdin = execute(c, "name = input('who? ')\nprint('hello', name)", allow_stdin=True,
                                  stdin_value="bob")
    check(len(stdin) == 1 and stdin[0]["msg_type"] == "input_request" and stdin[0]["content"]["prompt"] == "who? ",
          "input_request arrives on the stdin channel", str(stdin)[:300])
    check(stdout_of(iopub) == "hello bob\n", "input_reply reached the kernel", repr(stdout_of(iopub)))

    # malformed WebSocket messages: dropped, the connection keeps working
    good = c.message("shell", "kernel_info_request", {})
    no_header = dict(good)
    del no_header["header"]
    iopub_channel = dict(good, channel="iopub")
    hb_channel = dict(good, channel="hb")
    bad_content = dict(good, content=[1])
    for data, binary in (("this is not JSON", False), ("[1, 2, 3]", False), (json.dumps(no_header), False),
                         (json.dumps(iopub_channel), False), (json.dumps(hb_channel), False),
                         (json.dumps(bad_content), False), (b"\x00\x00\x00\x09garbage", True)):
        c.send_raw(data, binary)
    c1.send_raw(b"\x01" + b"\x00" * 7 + b"junk", True)
    c1.send_raw(b"\x06" + b"\x00" * 7 + b"\xff" * 48, True)
    reply, iopub, _ = execute(c, "print('still here')")
    check(reply is not None and stdout_of(iopub) == "still here\n",
          "malformed JSON-format messages are dropped and the WebSocket keeps working", str(reply)[:200])
    reply, iopub, _ = execute(c1, "print('v1 still here')")
    check(reply is not None and stdout_of(iopub) == "v1 still here\n",
          "malformed v1 messages are dropped and the WebSocket keeps working", str(reply)[:200])

    # interrupt
    msg_id = c.send(c.message("shell", "execute_request", {"code": "import time\ntime.sleep(60)", "silent": False,
                                                            "store_history": True, "user_expressions": {},
                                                            "allow_stdin": False, "stop_on_error": True}))
    end = time.monotonic() + DEADLINE_S
    started = False
    while not started and time.monotonic() < end:
        m = c.recv(end)
        started = m is not None and m["msg_type"] == "execute_input" and m["parent_header"].get("msg_id") == msg_id
    time.sleep(0.5)  # let the cell reach its sleep
    status, _, _ = rest(srv, "POST", f"/api/kernels/{kid}/interrupt", body={})
    check(status == 204, "POST interrupt is 204", str(status))
    end = time.monotonic() + DEADLINE_S
    ename, reply = None, None
    while (ename is None or reply is None) and time.monotonic() < end:
        m = c.recv(end)
        if m is None or m["parent_header"].get("msg_id") != msg_id:
            continue
        if m["msg_type"] == "error":
            ename = m["content"]["ename"]
        if m["msg_type"] == "execute_reply":
            reply = m
    check(ename == "KeyboardInterrupt" and reply is not None and reply["content"]["status"] == "error",
          "the interrupted cell ends with KeyboardInterrupt", f"{ename} {str(reply)[:200]}")

    # restart
    execute(c, "y = 42")
    status, _, model = rest(srv, "POST", f"/api/kernels/{kid}/restart", body={})
    check(status == 200 and model.get("id") == kid, "POST restart is 200 with the model", f"{status} {model}")
    end = time.monotonic() + DEADLINE_S
    restarting = False
    while not restarting and time.monotonic() < end:
        m = c.recv(end)
        restarting = m is not None and m["msg_type"] == "status" and m["content"]["execution_state"] == "restarting"
    check(restarting, "status restarting arrives on the WebSocket")
    reply, iopub, _ = execute(c, "print(y)")
    errors = [m["content"]["ename"] for m in iopub if m["msg_type"] == "error"]
    check(errors == ["NameError"], "after the restart the kernel's state is gone", str(errors))
    reply, iopub, _ = execute(c, "print(3)")
    check(stdout_of(iopub) == "3\n", "after the restart the kernel works", repr(stdout_of(iopub)))

    # The audit trail has how this client's own cells ended (they went through the WebSocket,
    # not through an execution of the gateway's): the NameError one and the one that printed 3.
    def ends():
        out = subprocess.run([srv.argv[0], "audit", "--json"], capture_output=True, text=True,
                             env=dict(os.environ, CELLBLOCK_STATE_DIR=srv.state_dir), timeout=30)
        recs = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
        return [r for r in recs if r.get("event") == "execution_end" and r.get("kernel_id") == kid
                and r.get("origin") == "jupyter"]
    def last_two(recs):
        return [(r.get("status"), r.get("ename")) for r in recs[-2:]]
    end = time.monotonic() + DEADLINE_S
    got = ends()
    while last_two(got) != [("error", "NameError"), ("ok", None)] and time.monotonic() < end:
        time.sleep(0.2)  # the log reaches the disk in batches, at least once a second
        got = ends()
    check(last_two(got) == [("error", "NameError"), ("ok", None)]
          and all(isinstance(r.get("duration_ms"), (int, float)) for r in got[-2:]),
          "the audit trail says how the WebSocket's own cells ended (status, ename, duration)",
          str([(r.get("status"), r.get("ename"), r.get("msg_id")) for r in got]))

    # a session_id that reconnects gets what came while it was away
    sid = uuid.uuid4().hex
    s1 = Client(srv, kid, session_id=sid)
    msg_id = s1.send(s1.message("shell", "execute_request", {"code": "import time\ntime.sleep(1)\nprint('late')",
                                                              "silent": False, "store_history": True,
                                                              "user_expressions": {}, "allow_stdin": False,
                                                              "stop_on_error": True}))
    s1.close()
    time.sleep(2.5)  # the cell finishes while nobody is connected
    s2 = Client(srv, kid, session_id=sid)
    end = time.monotonic() + DEADLINE_S
    got_reply, got_late, got_idle = False, False, False
    while not (got_reply and got_late and got_idle) and time.monotonic() < end:
        m = s2.recv(end)
        if m is None or m["parent_header"].get("msg_id") != msg_id:
            continue
        got_reply |= m["msg_type"] == "execute_reply"
        got_late |= m["msg_type"] == "stream" and m["content"]["text"] == "late\n"
        got_idle |= m["msg_type"] == "status" and m["content"]["execution_state"] == "idle"
    check(got_reply and got_late and got_idle,
          "a reconnect with the same session_id gets the reply and output produced while away",
          f"reply={got_reply} late={got_late} idle={got_idle}")
    reply, iopub, _ = execute(s2, "print('live')")
    check(stdout_of(iopub) == "live\n", "then live messages follow on the reconnected session")

    # two at once: the newer replaces the older
    s3 = Client(srv, kid, session_id=sid)
    closed = s2.wait_close()
    check(closed is not None and closed[0] is not None, "the older WebSocket with the same session_id is closed",
          str(closed))
    reply, iopub, _ = execute(s3, "print('newest')")
    check(stdout_of(iopub) == "newest\n", "the newer WebSocket works")
    s2.close()

    # DELETE: 204, then 404, its WebSockets closed
    status, _, _ = rest(srv, "DELETE", f"/api/kernels/{kid}")
    check(status == 204, "DELETE a kernel the API started is 204", str(status))
    status, _, err = rest(srv, "GET", f"/api/kernels/{kid}")
    check(status == 404 and is_error_body(err) and "deleted" in err["message"],
          "then GET is 404 and says it was deleted", f"{status} {err}")
    closed = c.wait_close()
    check(closed is not None, "its WebSockets are closed", str(closed))
    status, _, listing = rest(srv, "GET", "/api/kernels")
    check(status == 200 and all(k["id"] != kid for k in listing), "it is no longer listed", str(listing))
    status, _, _ = rest(srv, "DELETE", f"/api/kernels/{kid}")
    check(status == 404, "a second DELETE is 404", str(status))
    for cl in (c, c1, s3):
        cl.close()

    # The server is still fine: a second kernel, token in the query string.
    status, _, model = rest(srv, "POST", "/api/kernels", body={})
    if check(status == 201, "a second kernel starts (no name: the default)", f"{status} {model}"):
        c = Client(srv, model["id"], token_in_query=True)
        check(wait_ready(c) is not None, "its WebSocket works with ?token=")
        # a client's shutdown_request on a kernel the API started deletes it
        reply, _, _ = request(c, "control", "shutdown_request", {"restart": False})
        check(reply is not None and reply["content"].get("status") == "ok", "shutdown_request is answered ok",
              str(reply)[:200])
        closed = c.wait_close()
        check(closed is not None, "then its WebSocket closes", str(closed))
        status, _, _ = rest(srv, "GET", f"/api/kernels/{model['id']}")
        check(status == 404, "and the kernel is gone", str(status))
        c.close()


# ---- part 2: a kernel the API did not start -------------------------------------------------

def part_foreign(harness):
    state_dir = tempfile.mkdtemp(prefix="cb-jupyter-api-h-")
    srv = Server([harness], state_dir)
    try:
        if not check(srv.start() is not None, "the harness says where it listens", srv.tail()):
            return
        m = srv.wait_for(r"foreign kernel: ([0-9a-f-]{36})", 5)
        if not check(m is not None, "the harness names its foreign kernel", srv.tail()):
            return
        fid = m.group(1)
        status, _, listing = rest(srv, "GET", "/api/kernels")
        check(status == 200 and any(k["id"] == fid for k in listing), "a kernel someone else started is listed",
              str(listing))
        c = Client(srv, fid)
        check(wait_ready(c) is not None, "a person can connect to it")
        reply, iopub, _ = execute(c, "print('watching')")
        check(stdout_of(iopub) == "watching\n", "and use it")
        status, _, err = rest(srv, "DELETE", f"/api/kernels/{fid}")
        check(status == 403 and is_error_body(err) and "not started through this API" in err["message"],
              "DELETE of a kernel the API did not start is 403 with a reason", f"{status} {err}")
        reply, _, _ = request(c, "control", "shutdown_request", {"restart": False})
        check(reply is not None and reply["content"].get("status") == "error"
              and reply["content"].get("ename") == "ShutdownRefused", "its shutdown_request is refused",
              str(reply)[:300])
        reply, iopub, _ = execute(c, "print('alive')")
        check(stdout_of(iopub) == "alive\n", "the kernel lives on")
        c.close()
    finally:
        rc = srv.stop()
        check(rc == 0, "the harness exits 0 on SIGTERM", f"rc={rc}\n{srv.tail()}")


# ---- part 3: tenants --------------------------------------------------------------------------

class As:
    """The same server seen with another token (what rest() and Client read)."""

    def __init__(self, srv, token):
        self.url, self.token = srv.url, token


def unknown_shape(body, kernel_id):
    """An error body with the kernel id taken out: what two 404s must share."""
    return json.dumps(body, sort_keys=True).replace(kernel_id, "<ID>") if body is not None else None


def part_tenants(cellblock):
    state_dir = tempfile.mkdtemp(prefix="cb-jupyter-api-t-")
    tokens = {"alice": "alice-" + uuid.uuid4().hex, "bob": "bob-" + uuid.uuid4().hex}
    path = os.path.join(state_dir, "tokens")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("# tenants of test_jupyter_api.py\n")
        for tenant, token in tokens.items():
            f.write(f"{tenant} {token}\n")
    srv = Server([cellblock, "serve", "--listen", "127.0.0.1:0", "--tokens", path], state_dir)
    skipped = False
    try:
        if srv.start() is None:
            if re.search(r"unrecognized option|unknown option|invalid option", srv.tail()):
                print("# SKIP part tenants: this cellblock serve has no --tokens yet", flush=True)
                skipped = True
                return
            check(False, "cellblock serve --tokens FILE starts", srv.tail())
            return
        alice, bob = As(srv, tokens["alice"]), As(srv, tokens["bob"])
        kernels = {}
        for name, who in (("alice", alice), ("bob", bob)):
            status, _, model = rest(who, "POST", "/api/kernels", body={}, token=who.token)
            check(status == 201 and isinstance(model, dict) and model.get("id"),
                  f"{name} starts a kernel through the API", f"{status} {model}")
            kernels[name] = (model or {}).get("id")
        ka, kb = kernels["alice"], kernels["bob"]
        if not (ka and kb):
            return

        def ids(token):
            status, _, listing = rest(srv, "GET", "/api/kernels", token=token)
            return {k.get("id") for k in listing} if status == 200 and isinstance(listing, list) else None

        check(ids(alice.token) == {ka}, "alice's GET /api/kernels lists her kernel only",
              str(ids(alice.token)))
        check(ids(bob.token) == {kb}, "bob's lists his only", str(ids(bob.token)))
        check({ka, kb} <= (ids(srv.token) or set()), "the admin's lists both", str(ids(srv.token)))
        status, _, model = rest(srv, "GET", f"/api/kernels/{kb}")
        check(status == 200 and model.get("id") == kb, "the admin reaches bob's kernel", f"{status}")

        ghost = str(uuid.uuid4())
        g_status, _, g_body = rest(bob, "GET", f"/api/kernels/{ghost}", token=bob.token)
        check(g_status == 404 and is_error_body(g_body), "an unknown id is 404", f"{g_status} {g_body}")
        for method, suffix in (("GET", ""), ("DELETE", ""), ("POST", "/interrupt"),
                               ("POST", "/restart")):
            status, _, body = rest(bob, method, f"/api/kernels/{ka}{suffix}", token=bob.token)
            u_status, _, u_body = rest(bob, method, f"/api/kernels/{ghost}{suffix}", token=bob.token)
            check(status == u_status == 404 and unknown_shape(body, ka) == unknown_shape(u_body, ghost),
                  f"bob's {method} /api/kernels/{{alice's id}}{suffix} is answered as an unknown id",
                  f"{status} {body} vs {u_status} {u_body}")
        c = Client(bob, ka)
        closed = c.wait_close()
        u = Client(bob, ghost)
        u_closed = u.wait_close()
        check(closed is not None and u_closed is not None and closed[0] == u_closed[0]
              and str(closed[1]).replace(ka, "<ID>") == str(u_closed[1]).replace(ghost, "<ID>"),
              "bob's WebSocket on alice's kernel is closed as on an unknown id",
              f"{closed} vs {u_closed}")
        c.close()
        u.close()
        # alice's kernel still there and hers; then deleted: bob still hears "unknown", she "gone"
        c = Client(alice, ka)
        check(wait_ready(c) is not None, "alice's kernel was not touched by bob's attempts")
        c.close()
        status, _, _ = rest(alice, "DELETE", f"/api/kernels/{ka}", token=alice.token)
        check(status == 204, "alice deletes her kernel", str(status))
        status, _, mine = rest(alice, "GET", f"/api/kernels/{ka}", token=alice.token)
        check(status == 404 and "gone" in json.dumps(mine), "alice hears it is gone", f"{status} {mine}")
        status, _, body = rest(bob, "GET", f"/api/kernels/{ka}", token=bob.token)
        check(status == 404 and unknown_shape(body, ka) == unknown_shape(g_body, ghost),
              "bob still hears only 'unknown id' for it", f"{status} {body}")
        rest(bob, "DELETE", f"/api/kernels/{kb}", token=bob.token)
    finally:
        rc = srv.stop()
        if not skipped:
            check(rc == 0, "cellblock serve --tokens exits 0 on SIGTERM", f"rc={rc}\n{srv.tail()}")


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    only = os.environ.get("JUPYTER_API_TEST_ONLY")  # serve or foreign, while developing
    parts = (("serve", part_serve, sys.argv[1]), ("foreign", part_foreign, sys.argv[2]),
             ("tenants", part_tenants, sys.argv[1]))
    for name, part, binary in parts:
        if only in (None, "", name):
            try:
                part(binary)
            except Exception as e:  # a deadline that raised (socket timeout, closed connection)
                import traceback
                check(False, f"part {name} ran to its end", "".join(traceback.format_exception(e))[-2000:])
    return finish()


if __name__ == "__main__":
    sys.exit(main())
