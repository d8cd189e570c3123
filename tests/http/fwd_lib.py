"""fwd_lib.py: what the port-forward tests and bench share: an MCP client over Streamable HTTP
(stdlib only), the web app started inside a sandbox, and a minimal WebSocket client.

    mcp = Mcp(port, token); mcp.call("sandbox_create", {}) -> structuredContent
    mcp.call("code_execute", {"sandbox_id": sid, "code": app_code(8000)})
    ws = WsClient(sock); ws.handshake(path, host, headers); ws.send_text("x"); ws.recv()

The app (APP) is a ThreadingHTTPServer on 127.0.0.1:PORT inside the sandbox, written with the
standard library only:
    GET /echo...          {"method", "path", "headers": [[name, value]...]} of what it got
    POST /echo...         the same, with "body"
    GET /stream           "piece0\\n", then waits for GET /release, then "piece1\\n" (chunked)
    GET /seen             every request it got so far ([{path, headers}])
    GET /page             an HTML page whose script opens a WebSocket to /ws, writes the echo
                          into the DOM (#result) and reports it with GET /result?got=ECHO
    GET /ws (Upgrade)     a WebSocket that answers each text message with "echo:" + message
"""
import base64
import http.client
import json
import os
import socket
import struct

APP = r'''
import base64, hashlib, http.server, json, socketserver, threading
_seen = []
_release = threading.Event()
PAGE = b"""<!doctype html><html><body><div id="result">waiting</div><script>
var p = location.pathname.replace(/page$/, "ws");
var ws = new WebSocket((location.protocol == "https:" ? "wss://" : "ws://") + location.host + p);
var form = new URLSearchParams(location.search).get("form") || "";
ws.onopen = function () { ws.send("from-browser-" + form); };
ws.onmessage = function (e) {
  document.getElementById("result").textContent = "got " + e.data;
  fetch(location.pathname.replace(/page$/, "result") + "?got=" + encodeURIComponent(e.data));
};
ws.onerror = function () { document.getElementById("result").textContent = "ws error"; };
</script></body></html>"""
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def _record(self, body=None):
        rec = {"method": self.command, "path": self.path,
               "headers": [[k, v] for k, v in self.headers.items()]}
        if body is not None:
            rec["body"] = body.decode(errors="replace")
        _seen.append(rec)
        return rec
    def _send(self, code, ctype, data):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def do_GET(self):
        rec = self._record()
        if self.headers.get("Upgrade", "").lower() == "websocket":
            return self._ws()
        if self.path.startswith("/stream"):
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i, piece in enumerate((b"piece0\n", b"piece1\n")):
                if i == 1:
                    _release.wait(30)
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            return
        if self.path.startswith("/release"):
            _release.set()
            return self._send(200, "text/plain", b"released")
        if self.path.startswith("/seen"):
            return self._send(200, "application/json", json.dumps(_seen).encode())
        if self.path.startswith("/page"):
            return self._send(200, "text/html", PAGE)
        self._send(200, "application/json", json.dumps(rec).encode())
    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        rec = self._record(self.rfile.read(n))
        self._send(200, "application/json", json.dumps(rec).encode())
    def _ws(self):
        key = self.headers["Sec-WebSocket-Key"]
        acc = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", acc.decode())
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        r = self.rfile
        while True:
            h = r.read(2)
            if len(h) < 2:
                return
            op, n = h[0] & 15, h[1] & 127
            if n == 126: n = int.from_bytes(r.read(2), "big")
            elif n == 127: n = int.from_bytes(r.read(8), "big")
            mask = r.read(4) if h[1] & 128 else b"\0\0\0\0"
            data = bytes(b ^ mask[i % 4] for i, b in enumerate(r.read(n)))
            if op == 8:
                self.wfile.write(b"\x88\x00"); self.wfile.flush(); return
            if op == 1:
                _seen.append({"method": "WS", "path": "ws-message " + data.decode(errors="replace"),
                              "headers": []})
                out = b"echo:" + data
                self.wfile.write(bytes([0x81, len(out)]) + out if len(out) < 126 else
                                 bytes([0x81, 126]) + len(out).to_bytes(2, "big") + out)
                self.wfile.flush()
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
_srv = S(("127.0.0.1", APP_PORT), H)
threading.Thread(target=_srv.serve_forever, daemon=True).start()
print("serving on", APP_PORT)
'''


def app_code(port):
    """The app's source, listening on port."""
    return APP.replace("APP_PORT", str(int(port)))


class Mcp:
    """An MCP client over Streamable HTTP on 127.0.0.1:port."""

    def __init__(self, port, token):
        self.port, self.token, self.sid, self.next_id = port, token, None, 1
        res = self.rpc("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                      "clientInfo": {"name": "fwd-test", "version": "1"}})
        assert "serverInfo" in res, res
        self.post({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def post(self, msg, timeout=120):
        h = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
             "Authorization": "Bearer " + self.token}
        if self.sid:
            h["Mcp-Session-Id"] = self.sid
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request("POST", "/mcp", body=json.dumps(msg).encode(), headers=h)
            r = c.getresponse()
            raw = r.read()
            self.sid = r.getheader("Mcp-Session-Id") or self.sid
            ctype = r.getheader("Content-Type") or ""
        finally:
            c.close()
        if not raw:
            return None
        if ctype.startswith("text/event-stream"):
            last = None
            for line in raw.decode().splitlines():
                if line.startswith("data:") and line[5:].strip():
                    m = json.loads(line[5:])
                    if "id" in m and m.get("id") == msg.get("id"):
                        last = m
            return last
        return json.loads(raw)

    def rpc(self, method, params):
        i = self.next_id
        self.next_id += 1
        reply = self.post({"jsonrpc": "2.0", "id": i, "method": method, "params": params})
        if reply is None or "error" in reply:
            raise RuntimeError(f"{method}: {reply}")
        return reply["result"]

    def call(self, tool, args):
        res = self.rpc("tools/call", {"name": tool, "arguments": args})
        if res.get("isError"):
            raise RuntimeError(f"{tool}: {res}")
        return res.get("structuredContent")


def raw_request(port, data, timeout=20):
    """Send raw bytes on a fresh connection and read until the server closes: the bytes."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        out = b""
        while True:
            b = s.recv(65536)
            if not b:
                return out
            out += b
    finally:
        s.close()


def split_response(raw):
    """(status, headers dict lowercased, body bytes) of one HTTP/1.x response (body de-chunked)."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode(errors="replace").split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    if hdrs.get("transfer-encoding", "").lower() == "chunked":
        out, rest = b"", body
        while rest:
            size, _, rest = rest.partition(b"\r\n")
            n = int(size, 16)
            if n == 0:
                break
            out, rest = out + rest[:n], rest[n + 2:]
        body = out
    return status, hdrs, body


class WsClient:
    """A minimal WebSocket client on a connected socket."""

    def __init__(self, sock):
        self.s, self.buf = sock, b""

    def handshake(self, path, host, headers=None):
        key = base64.b64encode(os.urandom(16)).decode()
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self.s.sendall((f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
                        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                        f"Sec-WebSocket-Version: 13\r\n{extra}\r\n").encode())
        while b"\r\n\r\n" not in self.buf:
            b = self.s.recv(4096)
            if not b:
                break
            self.buf += b
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        return int(head.split()[1]) if head else 0

    def send_text(self, text):
        data, mask = text.encode(), os.urandom(4)
        hdr = bytes([0x81, 0x80 | len(data)]) if len(data) < 126 else \
            bytes([0x81, 0x80 | 126]) + struct.pack(">H", len(data))
        self.s.sendall(hdr + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def _need(self, n):
        while len(self.buf) < n:
            b = self.s.recv(65536)
            if not b:
                raise EOFError("closed")
            self.buf += b
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv(self):
        """(opcode, payload); EOFError when the connection closed."""
        h = self._need(2)
        n = h[1] & 127
        if n == 126:
            n = struct.unpack(">H", self._need(2))[0]
        elif n == 127:
            n = struct.unpack(">Q", self._need(8))[0]
        return h[0] & 15, self._need(n)


class StdioMcp:
    """`cellblock mcp` (stdio) as a child: JSON-RPC lines on its stdin and stdout."""

    def __init__(self, binary, env):
        import subprocess
        self.p = subprocess.Popen([binary, "mcp"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=open(os.path.join(env["XDG_RUNTIME_DIR"], "mcp.log"), "wb"),
                                  env=env, start_new_session=True)
        self.next_id = 1
        self.rpc("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                "clientInfo": {"name": "fwd-test", "version": "1"}})
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def send(self, msg):
        self.p.stdin.write(json.dumps(msg).encode() + b"\n")
        self.p.stdin.flush()

    def rpc(self, method, params, timeout=120):
        import select
        import time
        i = self.next_id
        self.next_id += 1
        self.send({"jsonrpc": "2.0", "id": i, "method": method, "params": params})
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            r, _, _ = select.select([self.p.stdout], [], [], end - time.monotonic())
            if not r:
                break
            line = self.p.stdout.readline()
            if not line:
                raise RuntimeError(f"{method}: cellblock mcp exited")
            m = json.loads(line)
            if m.get("id") == i:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m}")
                return m["result"]
        raise RuntimeError(f"{method}: no answer in {timeout} s")

    def call(self, tool, args):
        res = self.rpc("tools/call", {"name": tool, "arguments": args})
        if res.get("isError"):
            raise RuntimeError(f"{tool}: {res}")
        return res.get("structuredContent")

    def close(self):
        import subprocess
        self.p.stdin.close()
        try:
            self.p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
