#!/usr/bin/python3
"""test_ws_many.py: many WebSocket clients, bad WebSocket input and malformed HTTP against
`cellblock serve`.

    /usr/bin/python3 test_ws_many.py PATH/TO/cellblock

 1. 50 WebSocket clients at once on one kernel (POST /api/kernels), each with its own
    session_id, each sending an execute_request with its own code (print(<its number>)): each
    gets its own execute_reply (and no other client's), and its own stream output on iopub.
 2. 50 clients on 5 kernels (10 each): the same, and each cell ran on the client's kernel (every
    kernel was given its own variable first).
 3. Bad input on the channels WebSocket: a text frame that is not JSON, JSON with an unknown
    channel, a message with no header, a binary frame of garbage (default protocol and
    v1.kernel.websocket.jupyter.org), an execute_request and then an abrupt disconnect (no
    close frame) while the cell still prints: after each, a fresh client still executes.
 4. Raw malformed HTTP over a socket: garbage bytes, a request line with no version (no token), a 100 KB
    header, Content-Length: 100000000 with no body: each refused with an HTTP error status or a
    close (never a 2xx, never a hang), and the next proper request is answered.
 Along the way: a request without the token or with a wrong one is 401; ?token= opens a
 WebSocket.

Every wait has a deadline. The server runs in its own process group and is stopped at the end
(SIGTERM; it must exit 0). Exits 0 when every check held, 1 otherwise.
"""
import datetime
import json
import os
import socket
import struct
import sys
import threading
import time
import traceback
import urllib.parse
import uuid
import http.client

import websocket

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checks import check, finish  # noqa: E402
from serve import Serve, http_call  # noqa: E402

START_DEADLINE_S = 60.0
KERNEL_DEADLINE_S = 60.0
MANY_DEADLINE_S = 45.0   # all 50 clients' cells
CELL_DEADLINE_S = 30.0
FRESH_DEADLINE_S = 15.0  # a fresh client's cell after bad input
RAW_DEADLINE_S = 10.0    # a malformed request to be refused
STOP_DEADLINE_S = 20.0
CLIENTS = 50
KERNELS = 5
V1 = "v1.kernel.websocket.jupyter.org"


def log(msg):
    print(f"# {msg}", flush=True)


class Wedged(Exception):
    """The server stopped answering: the remaining cases would only wait out their deadlines."""


def ensure_answering(cb, after):
    try:
        st, _ = cb.call("GET", "/api", timeout=5)
    except Exception as e:
        st = repr(e)
    if st != 200:
        raise Wedged(f"after {after}, GET /api gets {st} (server alive: {cb.alive()})")


# ---- the server -----------------------------------------------------------------------------

class Cellblock(Serve):
    """`cellblock serve` (serve.py) with this test's HTTP and channels helpers."""

    # -- HTTP
    def call(self, method, path, body=None, token=True, timeout=KERNEL_DEADLINE_S):
        """(status, parsed body); token True: ours, False: none, a string: that one."""
        st, _, parsed = http_call(self.port, method, path, self.token if token is True else token or None,
                                  body, timeout=timeout)
        return st, parsed

    def channels_url(self, kid, session, token_in_query=False):
        q = {"session_id": session}
        if token_in_query:
            q["token"] = self.token
        return (f"ws://127.0.0.1:{self.port}/api/kernels/{kid}/channels?"
                + urllib.parse.urlencode(q))

    def connect(self, kid, session=None, query_token=False, subprotocols=None):
        session = session or uuid.uuid4().hex
        headers = [] if query_token else [f"Authorization: token {self.token}"]
        ws = websocket.create_connection(self.channels_url(kid, session, query_token), header=headers,
                                         timeout=FRESH_DEADLINE_S, subprotocols=subprotocols)
        return Client(ws, session)


# ---- a channels client ----------------------------------------------------------------------

def new_message(session, channel, msg_type, content):
    msg_id = uuid.uuid4().hex
    return msg_id, {
        "header": {"msg_id": msg_id, "msg_type": msg_type, "session": session,
                   "username": "test", "date": datetime.datetime.now(datetime.timezone.utc)
                   .isoformat(), "version": "5.3"},
        "parent_header": {}, "metadata": {}, "content": content, "channel": channel,
        "buffers": []}


def encode_v1(msg):
    """v1.kernel.websocket.jupyter.org: uint64 LE count of offsets, the offsets (uint64 LE, from
    the frame's start; the last is the frame's end), then channel, header, parent_header,
    metadata, content (and buffers)."""
    parts = [msg["channel"].encode()] + [json.dumps(msg[k]).encode() for k in
                                         ("header", "parent_header", "metadata", "content")]
    offsets = [8 * (1 + len(parts) + 1)]
    for part in parts:
        offsets.append(offsets[-1] + len(part))
    return struct.pack(f"<Q{len(offsets)}Q", len(offsets), *offsets) + b"".join(parts)


def decode_v1(data):
    n = struct.unpack("<Q", data[:8])[0]
    offsets = struct.unpack(f"<{n}Q", data[8:8 + 8 * n])
    parts = [data[offsets[i]:offsets[i + 1]] for i in range(n - 1)]
    msg = {"channel": parts[0].decode(), "buffers": parts[5:]}
    for k, part in zip(("header", "parent_header", "metadata", "content"), parts[1:5]):
        msg[k] = json.loads(part)
    msg["msg_type"] = msg["header"].get("msg_type")
    return msg


def decode_frame(opcode, data, v1=False):
    if opcode == websocket.ABNF.OPCODE_TEXT:
        return json.loads(data.decode() if isinstance(data, bytes) else data)
    if v1:
        return decode_v1(data)
    n = struct.unpack("!I", data[:4])[0]
    offsets = list(struct.unpack(f"!{n}I", data[4:4 + 4 * n])) + [len(data)]
    msg = json.loads(data[offsets[0]:offsets[1]].decode())
    msg["buffers"] = [data[offsets[i]:offsets[i + 1]] for i in range(1, n)]
    return msg


class Client:
    def __init__(self, ws, session):
        self.ws = ws
        self.session = session
        self.v1 = ws.getsubprotocol() == V1

    def send_execute(self, code):
        msg_id, msg = new_message(self.session, "shell", "execute_request", {
            "code": code, "silent": False, "store_history": True, "user_expressions": {},
            "allow_stdin": False, "stop_on_error": True})
        if self.v1:
            self.ws.send_binary(encode_v1(msg))
        else:
            self.ws.send(json.dumps(msg))
        return msg_id

    def recv(self, end):
        """The next message, None at the deadline; raises ConnectionError when closed."""
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return None
            self.ws.settimeout(left)
            try:
                # control_frame=True: pings come back here too, so the deadline is checked again
                opcode, data = self.ws.recv_data(control_frame=True)
            except websocket.WebSocketTimeoutException:
                return None
            except websocket.WebSocketConnectionClosedException as e:
                raise ConnectionError(f"closed: {e}")
            if opcode not in (websocket.ABNF.OPCODE_PING, websocket.ABNF.OPCODE_PONG):
                break
        if opcode not in (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY):
            raise ConnectionError(f"closed by the server: {data[:2]!r} {data[2:]!r}")
        return decode_frame(opcode, data, self.v1)

    def collect(self, msg_id, end):
        """Messages until the execute_reply and status idle for msg_id. Returns a dict with
        reply, idle, stdout, foreign_replies (shell replies to other requests), error."""
        out = {"reply": None, "idle": False, "stdout": "", "foreign_replies": [], "error": None,
               "messages": 0}
        try:
            while out["reply"] is None or not out["idle"]:
                msg = self.recv(end)
                if msg is None:
                    out["error"] = "deadline"
                    break
                out["messages"] += 1
                parent = msg.get("parent_header", {}).get("msg_id")
                mt = msg.get("msg_type")
                if msg.get("channel") == "shell" and parent != msg_id:
                    out["foreign_replies"].append((mt, parent))
                if parent != msg_id:
                    continue
                c = msg.get("content", {})
                if mt == "execute_reply":
                    out["reply"] = c
                elif mt == "status" and c.get("execution_state") == "idle":
                    out["idle"] = True
                elif mt == "stream" and c.get("name") == "stdout":
                    out["stdout"] += c.get("text", "")
        except (ConnectionError, OSError, ValueError, struct.error) as e:
            out["error"] = repr(e)
        return out

    def execute(self, code, deadline_s=CELL_DEADLINE_S):
        return self.collect(self.send_execute(code), time.monotonic() + deadline_s)

    def close(self):
        try:
            self.ws.close(timeout=2)
        except Exception:
            pass


def ok_run(res, stdout):
    return (res["reply"] is not None and res["reply"].get("status") == "ok" and res["idle"]
            and res["stdout"] == stdout)


def brief(res):
    return (f"reply={res['reply'] and res['reply'].get('status')} idle={res['idle']} "
            f"stdout={res['stdout']!r} error={res['error']} foreign={res['foreign_replies'][:3]}")


def new_kernel(cb, name):
    st, model = cb.call("POST", "/api/kernels", body={"name": name})
    if st != 201 or not isinstance(model, dict) or "id" not in model:
        raise AssertionError(f"POST /api/kernels: {st} {model!r:.300}")
    return model["id"]


# ---- 1 and 2: many clients ------------------------------------------------------------------

def many_clients(cb, kernel_ids, label):
    """CLIENTS clients spread over kernel_ids, all connected, then all executing at once."""
    clients = []
    try:
        for i in range(CLIENTS):
            kid = kernel_ids[i % len(kernel_ids)]
            clients.append((i, kid, cb.connect(kid)))
    except Exception as e:
        check(False, f"{label}: {CLIENTS} WebSocket clients connect",
              f"{len(clients)} connected, then {e!r}")
        for _, _, c in clients:
            c.close()
        return
    check(True, f"{label}: {CLIENTS} WebSocket clients connect, each with its own session_id")
    results = [None] * CLIENTS
    barrier = threading.Barrier(CLIENTS)
    end = time.monotonic() + MANY_DEADLINE_S

    def worker(i, kid, client):
        try:
            barrier.wait(timeout=CELL_DEADLINE_S)
            k = kernel_ids.index(kid)
            msg_id = client.send_execute(f"print({1000 + i}, kernel_no)")
            results[i] = client.collect(msg_id, end)
            results[i]["expect"] = f"{1000 + i} {k}\n"
        except Exception as e:
            results[i] = {"reply": None, "idle": False, "stdout": "", "foreign_replies": [],
                          "error": repr(e), "expect": None}

    threads = [threading.Thread(target=worker, args=c, daemon=True) for c in clients]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=max(0.1, end + 5 - time.monotonic()))
    took = time.monotonic() - t0
    for _, _, c in clients:
        c.close()
    missing = [i for i, r in enumerate(results) if r is None]
    check(not missing, f"{label}: every client's thread finished within the deadline",
          f"missing {missing}")
    bad = [(i, brief(r)) for i, r in enumerate(results)
           if r is not None and not (r["reply"] and r["reply"].get("status") == "ok" and r["idle"])]
    check(not bad, f"{label}: each of {CLIENTS} clients got its own execute_reply ok and idle",
          f"{len(bad)} did not, e.g. {bad[:3]}")
    wrong = [(i, r["stdout"], r["expect"]) for i, r in enumerate(results)
             if r is not None and r["stdout"] != r["expect"]]
    check(not wrong, f"{label}: each client's own stream output (its number, its kernel)",
          f"{len(wrong)} wrong, e.g. {wrong[:3]}")
    foreign = [(i, r["foreign_replies"][:2]) for i, r in enumerate(results)
               if r is not None and r["foreign_replies"]]
    check(not foreign, f"{label}: no client got another client's shell reply",
          f"{len(foreign)} did, e.g. {foreign[:3]}")
    log(f"{label}: {CLIENTS} executions in {took:.2f} s")


# ---- 3: bad WebSocket input -----------------------------------------------------------------

def fresh_client_runs(cb, kid, tag):
    try:
        c = cb.connect(kid)
    except Exception as e:
        return False, f"connect: {e!r}"
    try:
        res = c.execute(f"print('fresh after {tag}')", FRESH_DEADLINE_S)
        return ok_run(res, f"fresh after {tag}\n"), brief(res)
    finally:
        c.close()


def what_happened(client, deadline_s=2.0):
    """After bad input: 'closed (...)' if the server closed the connection, 'error reply' if it
    said something, 'open, silent' otherwise. Information only."""
    end = time.monotonic() + deadline_s
    try:
        msg = client.recv(end)
    except (ConnectionError, OSError) as e:
        return f"closed ({e})"
    except (ValueError, struct.error) as e:
        return f"open, sent something undecodable: {e!r}"
    return "open, silent" if msg is None else f"open, sent {msg.get('msg_type')!r}"


def bad_ws_input(cb, kid):
    sid = uuid.uuid4().hex
    _, no_header = new_message(sid, "shell", "execute_request", {"code": "print('no header')"})
    del no_header["header"]
    _, bad_channel = new_message(sid, "bogus", "execute_request", {"code": "print(1)"})
    _, header_not_dict = new_message(sid, "shell", "execute_request", {"code": "print(2)"})
    header_not_dict["header"] = "not a dict"
    cases = [
        ("a text frame that is not JSON", None, ("text", "this is {not json")),
        ("JSON with an unknown channel", None, ("text", json.dumps(bad_channel))),
        ("a message with no header", None, ("text", json.dumps(no_header))),
        ("a header that is a string", None, ("text", json.dumps(header_not_dict))),
        ("JSON that is an array", None, ("text", "[1, 2, 3]")),
        ("a binary frame of garbage", None, ("binary", os.urandom(64))),
        ("a binary frame claiming 2^32-1 buffers", None,
         ("binary", b"\xff\xff\xff\xff" + os.urandom(32))),
        ("v1 protocol: a binary frame of garbage", [V1], ("binary", os.urandom(64))),
        ("v1 protocol: offsets past the end", [V1],
         ("binary", struct.pack("<QQQ", 2, 24, 10**12) + b"shell")),
        ("v1 protocol: a text frame", [V1], ("text", json.dumps(bad_channel))),
    ]
    # The v1 protocol works at all (else the v1 cases below would prove nothing).
    try:
        c = cb.connect(kid, subprotocols=[V1])
        agreed = c.ws.getsubprotocol()
        res = c.execute("print('over v1')")
        c.close()
        check(agreed == V1 and ok_run(res, "over v1\n"),
              f"a client offering {V1} gets it and executes in binary v1 frames",
              f"agreed {agreed!r}; {brief(res)}")
    except Exception as e:
        check(False, f"a client offering {V1} executes", repr(e))
    for label, subprotocols, (kind, payload) in cases:
        try:
            # Each its own session_id: one that had a WebSocket keeps the kernel's messages for
            # a while and replays them to the next WebSocket with that session_id.
            c = cb.connect(kid, subprotocols=subprotocols)
        except Exception as e:
            check(False, f"bad input '{label}': the client connects", repr(e))
            continue
        try:
            if kind == "text":
                c.ws.send(payload)
            else:
                c.ws.send_binary(payload)
            happened = what_happened(c, 1.0)
            if happened.startswith("open"):
                # Left open, it must still work: the bad message dropped, not the connection.
                res = c.execute(f"print('same connection after {label}')", FRESH_DEADLINE_S)
                check(ok_run(res, f"same connection after {label}\n"),
                      f"the connection left open after {label} still executes", brief(res))
        except Exception as e:
            happened = f"send failed: {e!r}"
        finally:
            c.close()
        ok, detail = fresh_client_runs(cb, kid, label)
        if not check(ok and cb.alive(), f"after {label} ({happened}), a fresh client still executes",
                     f"{detail}; server alive: {cb.alive()}"):
            ensure_answering(cb, label)

    # An execution in flight, then the client vanishes without a close frame while the cell
    # still prints and its reply is still to come.
    try:
        c = cb.connect(kid)
        c.send_execute("import time\nfor i in range(5):\n    print('to nobody', i, flush=True)\n"
                       "    time.sleep(0.1)")
        c.ws.sock.shutdown(socket.SHUT_RDWR)
        c.ws.sock.close()
    except Exception as e:
        check(False, "an execute_request, then an abrupt disconnect", repr(e))
    ok, detail = fresh_client_runs(cb, kid, "an abrupt disconnect")
    if not check(ok and cb.alive(), "after an abrupt disconnect mid-execution, a fresh client "
                 "executes", detail):
        ensure_answering(cb, "an abrupt disconnect")
    # Half a frame: a frame header announcing 1000 bytes, 10 sent, then gone.
    try:
        s = socket.create_connection(("127.0.0.1", cb.port), timeout=RAW_DEADLINE_S)
        key = "dGhlIHNhbXBsZSBub25jZQ=="
        s.sendall((f"GET /api/kernels/{kid}/channels?session_id={uuid.uuid4().hex} HTTP/1.1\r\n"
                   f"Host: 127.0.0.1:{cb.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                   f"Authorization: token {cb.token}\r\n\r\n").encode())
        head = read_head(s, time.monotonic() + RAW_DEADLINE_S)
        check(head.startswith(b"HTTP/1.1 101"), "a raw WebSocket upgrade is accepted (101)",
              repr(head[:200]))
        # masked text frame, length 1000 (16-bit extended), only 10 bytes of it
        s.sendall(b"\x81\xfe\x03\xe8" + b"\x01\x02\x03\x04" + b"x" * 10)
        s.close()
    except Exception as e:
        check(False, "a raw WebSocket with half a frame", repr(e))
    ok, detail = fresh_client_runs(cb, kid, "half a frame")
    check(ok and cb.alive(), "after half a frame and a disconnect, a fresh client executes",
          detail)


# ---- 4: malformed HTTP ----------------------------------------------------------------------

def read_head(sock, end):
    """Bytes until the end of the response head, the peer's close, or the deadline."""
    data = b""
    while b"\r\n\r\n" not in data:
        left = end - time.monotonic()
        if left <= 0:
            break
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        data += chunk
    return data


def raw_exchange(port, payload):
    """Send payload; returns (status or None, 'closed' | 'reset' | 'open', first bytes)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=RAW_DEADLINE_S)
    end = time.monotonic() + RAW_DEADLINE_S
    try:
        try:
            s.sendall(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused while we were still sending: look at what came back
        try:
            head = read_head(s, end)
        except ConnectionResetError:
            return None, "reset", b""
        status = None
        if head.startswith(b"HTTP/1."):
            try:
                status = int(head.split(b" ", 2)[1])
            except (IndexError, ValueError):
                pass
        # After an error answer the server may keep the connection or close it; after no answer
        # it must have closed it, not be waiting.
        state = "open"
        if status is None:
            s.settimeout(max(0.01, end - time.monotonic()))
            try:
                state = "closed" if s.recv(1) == b"" else "open"
            except socket.timeout:
                state = "open"
            except ConnectionResetError:
                state = "reset"
        return status, state, head[:200]
    finally:
        s.close()


def malformed_http(cb):
    host = f"Host: 127.0.0.1:{cb.port}\r\n"
    auth = f"Authorization: token {cb.token}\r\n"
    cases = [
        ("garbage bytes", os.urandom(512) + b"\r\n\r\n"),
        ("a TLS ClientHello", bytes.fromhex("16030100a5010000a10303") + os.urandom(160)),
        # libwebsockets reads a request line with no version leniently, as HTTP/1.0; what must
        # hold is that it gets no further than a proper request would: without the token, 401.
        ("a request line with no version (and no token)", ("GET /api\r\n" + host + "\r\n").encode()),
        ("a 100 KB header", ("GET /api HTTP/1.1\r\n" + host + auth + "X-Big: " + "a" * 100_000
                             + "\r\n\r\n").encode()),
        ("Content-Length: 100000000 with no body",
         ("POST /api/kernels HTTP/1.1\r\n" + host + auth + "Content-Type: application/json\r\n"
          "Content-Length: 100000000\r\n\r\n").encode()),
        ("a negative Content-Length", ("POST /api/kernels HTTP/1.1\r\n" + host + auth +
                                       "Content-Length: -5\r\n\r\n{}").encode()),
    ]
    for label, payload in cases:
        try:
            status, state, head = raw_exchange(cb.port, payload)
        except Exception as e:
            status, state, head = None, f"exception {e!r}", b""
        log(f"{label}: status {status}, connection {state}")
        refused = (status is not None and 400 <= status < 600) or (
            status is None and state in ("closed", "reset"))
        check(refused, f"{label}: refused with an HTTP error status or a close",
              f"status {status}, connection {state}, answer {head!r}")
        try:
            st, body = cb.call("GET", "/api", timeout=RAW_DEADLINE_S)
        except Exception as e:
            st, body = None, repr(e)
        if not check(st == 200 and cb.alive(), f"after {label}, GET /api still answers 200",
                     f"{st} {body!r:.200}"):
            ensure_answering(cb, label)
    # The body limit with a body that really is too large, sent as far as the server lets us.
    st = None
    try:
        conn = http.client.HTTPConnection("127.0.0.1", cb.port, timeout=RAW_DEADLINE_S * 3)
        big = b"[" + b"0," * (9 * 1024 * 1024) + b"0]"  # 18 MiB of JSON
        conn.request("POST", "/api/kernels", body=big,
                     headers={"Authorization": f"token {cb.token}",
                              "Content-Type": "application/json"})
        st = conn.getresponse().status
    except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
        st = "closed"
    except Exception as e:
        st = repr(e)
    finally:
        conn.close()
    check(st == 413 or st == "closed", "an 18 MiB body: 413 (or a close)", repr(st))
    st, _ = cb.call("GET", "/api", timeout=RAW_DEADLINE_S)
    check(st == 200, "after the 18 MiB body, GET /api answers 200", repr(st))


def auth_checks(cb, kid):
    st, body = cb.call("GET", "/api/kernels", token=False)
    check(st == 401, "GET /api/kernels without a token: 401", f"{st} {body!r:.200}")
    st, body = cb.call("GET", "/api/kernels", token="x" * 32)
    check(st == 401, "GET /api/kernels with a wrong token: 401", f"{st} {body!r:.200}")
    try:
        websocket.create_connection(cb.channels_url(kid, uuid.uuid4().hex), timeout=CELL_DEADLINE_S)
        check(False, "a WebSocket without a token is refused", "it opened")
    except websocket.WebSocketBadStatusException as e:
        check(e.status_code == 401, "a WebSocket without a token is refused with 401",
              repr(e))
    except Exception as e:
        check(False, "a WebSocket without a token is refused with 401", repr(e))
    try:
        c = cb.connect(kid, query_token=True)
        res = c.execute("print('token in query')")
        c.close()
        check(ok_run(res, "token in query\n"), "a WebSocket with ?token= executes", brief(res))
    except Exception as e:
        check(False, "a WebSocket with ?token= executes", repr(e))
    # An unknown kernel: 404 on the handshake (as Jupyter Server does), or accepted and closed at
    # once with a code and a reason (http.h's way for a handler that wants nothing of it).
    try:
        ws = websocket.create_connection(cb.channels_url("no-such-kernel", uuid.uuid4().hex),
                                         header=[f"Authorization: token {cb.token}"],
                                         timeout=CELL_DEADLINE_S)
    except websocket.WebSocketBadStatusException as e:
        check(e.status_code == 404, "a WebSocket to an unknown kernel: 404", repr(e))
    except Exception as e:
        check(False, "a WebSocket to an unknown kernel is refused", repr(e))
    else:
        got = None
        try:
            ws.settimeout(5)
            frame = ws.recv_frame()
            if frame.opcode == websocket.ABNF.OPCODE_CLOSE:
                code = struct.unpack("!H", frame.data[:2])[0] if len(frame.data) >= 2 else None
                got = ("close", code, frame.data[2:].decode(errors="replace"))
            else:
                got = ("frame", frame.opcode, frame.data[:100])
        except Exception as e:
            got = ("error", repr(e))
        finally:
            ws.close()
        check(got[0] == "close" and got[1] is not None and got[1] != 1000,
              "a WebSocket to an unknown kernel is closed at once with an error code",
              repr(got))
        log(f"unknown kernel: accepted, then {got}")


def run(cb):
    st, specs = cb.call("GET", "/api/kernelspecs")
    if not check(st == 200 and isinstance(specs, dict) and specs.get("default"),
                 "GET /api/kernelspecs has a default", f"{st} {specs!r:.300}"):
        return
    name = specs["default"]
    kid = new_kernel(cb, name)
    first = cb.connect(kid)
    res = first.execute("kernel_no = 0\nprint('ready')", KERNEL_DEADLINE_S)
    first.close()
    if not check(ok_run(res, "ready\n"), "the first kernel runs a cell", brief(res)):
        return
    auth_checks(cb, kid)
    many_clients(cb, [kid], f"{CLIENTS} clients on 1 kernel")

    kernels = [kid]
    for k in range(1, KERNELS):
        kernels.append(new_kernel(cb, name))
    for k, other in enumerate(kernels):
        c = cb.connect(other)
        res = c.execute(f"kernel_no = {k}\nprint('kernel', kernel_no)", KERNEL_DEADLINE_S)
        c.close()
        check(ok_run(res, f"kernel {k}\n"), f"kernel {k} of {KERNELS} runs a cell", brief(res))
    many_clients(cb, kernels, f"{CLIENTS} clients on {KERNELS} kernels")
    for other in kernels[1:]:
        st, body = cb.call("DELETE", f"/api/kernels/{other}")
        check(st == 204, "DELETE /api/kernels/{id}: 204", f"{st} {body!r:.200}")

    bad_ws_input(cb, kid)
    malformed_http(cb)
    st, lst = cb.call("GET", "/api/kernels")
    check(st == 200 and isinstance(lst, list) and [k.get("id") for k in lst] == [kid],
          "at the end, GET /api/kernels lists just the first kernel", f"{st} {lst!r:.300}")


def main():
    if len(sys.argv) != 2:
        print("usage: test_ws_many.py PATH/TO/cellblock", file=sys.stderr)
        return 2
    try:
        cb = Cellblock(os.path.abspath(sys.argv[1]), ready_timeout=START_DEADLINE_S)
    except RuntimeError as e:
        check(False, "cellblock serve prints where it listens", str(e))
        return finish()
    try:
        run(cb)
    except Wedged as e:
        check(False, "the server keeps answering; the remaining cases were not run", str(e))
    except Exception:
        check(False, "the test ran without an exception", traceback.format_exc())
    finally:
        rc = cb.close(STOP_DEADLINE_S)
        check(rc == 0, "cellblock serve exits 0 after SIGTERM",
              f"exit status {rc} (None: killed after {STOP_DEADLINE_S} s)")
        status = finish()
        if status != 0:
            print("--- last lines of cellblock's log ---\n" + cb.tail(80))
    return status


if __name__ == "__main__":
    sys.exit(main())
