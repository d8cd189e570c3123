"""test_forward.py: servers you can open. A web app started inside a sandbox (through its
Python kernel) is fetched through `cellblock serve`'s port forwards, by path
(/sandboxes/{id}/ports/{port}/) and by host ({port}-{id}.localhost), with the token and with a
signed link; a streamed response arrives in pieces; a POST body and a WebSocket echo round-trip.
The security half tries to break each promise: a private port, a signed link used for another
port or sandbox, a forged or expired signature, the token, cookie or query token reaching the
app (also on a keep-alive and a pipelined second request), a port nobody listens on, bad port
numbers, a deleted sandbox (and its open WebSocket), and a slow or garbage request head while
the API keeps answering. All traffic is to loopback.

    /usr/bin/python3 tests/http/test_forward.py PATH/TO/cellblock
"""
import json
import os
import shutil
import socket
import sys
import tempfile
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from checks import check, finish  # noqa: E402
from fwd_lib import Mcp, StdioMcp, WsClient, app_code, raw_request, split_response  # noqa: E402
from serve import Serve  # noqa: E402

BIN = sys.argv[1]
APP_PORT = 8000
HEAD_TIMEOUT_MS = 1500


def get(port, path, host=None, headers=None, method="GET", body=b""):
    """One request on a fresh connection: (status, headers, body)."""
    h = {"Host": host or f"127.0.0.1:{port}", "Connection": "close"}
    h.update(headers or {})
    if body:
        h["Content-Length"] = str(len(body))
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items())
    return split_response(raw_request(port, head.encode() + b"\r\n" + body))


def no_secrets(records, secrets_, what):
    text = json.dumps(records)
    leaked = [s for s in secrets_ if s and s in text]
    check(not leaked, f"{what}: the app never saw the token, the signature or our cookie",
          f"leaked {leaked} in {text[:600]}")


# A tenant (docs/security.md, "Tenants"): its token reaches only its own sandboxes' ports.
ALICE = "alice-" + os.urandom(12).hex()


def main():
    tokens_dir = tempfile.mkdtemp(prefix="cb-fwd-tokens-")
    tokens = os.path.join(tokens_dir, "tokens")
    fd = os.open(tokens, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, f"alice {ALICE}\n".encode())
    os.close(fd)
    with Serve(BIN, args=["--tokens", tokens],
               env={"CELLBLOCK_HTTP_HEAD_TIMEOUT_MS": str(HEAD_TIMEOUT_MS)}) as srv:
        try:
            run(srv)
        except Exception:
            srv.dump()
            raise
        if not finish_ok():
            srv.dump()
    shutil.rmtree(tokens_dir, ignore_errors=True)
    run_stdio()
    return finish()


def run_stdio():
    """`cellblock mcp` (stdio) has no HTTP server: the first expose starts one on loopback,
    and its signed link (the way in: its token is never shown) opens the app."""
    tmp = tempfile.mkdtemp(prefix="cb-fwd-")
    env = dict(os.environ, CELLBLOCK_STATE_DIR=os.path.join(tmp, "state"), XDG_RUNTIME_DIR=tmp)
    env.pop("CELLBLOCK_TOKEN", None)
    mcp = StdioMcp(BIN, env)
    try:
        sid = mcp.call("sandbox_create", {})["sandbox_id"]
        mcp.call("code_execute", {"sandbox_id": sid, "code": app_code(APP_PORT)})
        exp = mcp.call("sandbox_expose_port", {"sandbox_id": sid, "port": APP_PORT})
        u = urllib.parse.urlsplit(exp["signed_url"])
        check(u.hostname == "127.0.0.1" and u.port, "stdio: ports are exposed on a loopback "
              "listener of its own", exp["signed_url"])
        st, hdrs, _ = get(u.port, f"{u.path}?{u.query}")
        cookie = hdrs.get("set-cookie", "").split(";")[0]
        st2, _, body = get(u.port, hdrs.get("location", "/"), headers={"Cookie": cookie})
        check(st == 302 and st2 == 200 and b'"path": "/"' in body,
              "stdio: the signed link opens the app", f"{st} {st2} {body[:200]}")
        st, _, _ = get(u.port, u.path)
        check(st == 401, "stdio: without the link, 401", str(st))
    finally:
        mcp.close()
        with open(os.path.join(tmp, "mcp.log"), "rb") as f:
            log = f.read().decode(errors="replace")
        if not finish_ok():
            print(log[-3000:])
        shutil.rmtree(tmp, ignore_errors=True)


def finish_ok():
    from checks import failures
    return not failures


def run(srv):
    port, token = srv.port, srv.token
    auth = {"Authorization": "Bearer " + token}
    mcp = Mcp(port, token)
    sid = mcp.call("sandbox_create", {})["sandbox_id"]
    out = mcp.call("code_execute", {"sandbox_id": sid, "code": app_code(APP_PORT)})
    check(out["status"] == "ok" and "serving" in out["stdout"], "the app starts in the sandbox",
          json.dumps(out)[:500])
    base = f"/sandboxes/{sid}/ports/{APP_PORT}"
    host = f"{APP_PORT}-{sid}.localhost:{port}"

    # A private port.
    st, _, body = get(port, base + "/echo", headers=auth)
    check(st == 404 and str(APP_PORT).encode() in body and b"not exposed" in body,
          "a port not exposed answers 404 naming it", f"{st} {body[:200]}")

    exp = mcp.call("sandbox_expose_port", {"sandbox_id": sid, "port": APP_PORT})
    check(exp["url"] == f"{srv.url}{base}/" and exp["host_url"] == f"http://{host}/",
          "sandbox_expose_port returns the path and host URLs", json.dumps(exp))
    check(exp["host"] == host and exp["signed_url"].startswith(exp["url"] + "?cb_sig=")
          and exp["expires_at"].endswith("Z"), "… the host, a signed link and its expiry",
          json.dumps(exp))
    sig = urllib.parse.parse_qs(urllib.parse.urlsplit(exp["signed_url"]).query)["cb_sig"][0]
    info = mcp.call("sandbox_info", {"sandbox_id": sid})
    check([p["port"] for p in info.get("ports", [])] == [APP_PORT], "sandbox_info lists the port",
          json.dumps(info.get("ports")))

    # Path form with the token (header, then query), host form.
    st, _, body = get(port, base + "/echo?x=1", headers=auth)
    rec = json.loads(body) if st == 200 else {}
    check(st == 200 and rec.get("path") == "/echo?x=1",
          "path form: the prefix is stripped, the query kept", f"{st} {body[:300]}")
    st, _, body = get(port, f"{base}/echo?a=1&token={token}&b=2")
    rec = json.loads(body) if st == 200 else {}
    check(st == 200 and rec.get("path") == "/echo?a=1&b=2", "?token= works and is stripped",
          f"{st} {body[:300]}")
    st, _, body = get(port, "/echo?y=2", host=host, headers=auth)
    rec = json.loads(body) if st == 200 else {}
    check(st == 200 and rec.get("path") == "/echo?y=2", "host form reaches the app",
          f"{st} {body[:300]}")
    st, _, body = get(port, base + "/echo")
    check(st == 401, "no token, no link: 401", f"{st} {body[:200]}")
    # Another tenant's token: this sandbox (the admin's) is answered as an unknown one.
    unknown = "00000000-0000-4000-8000-000000000000"
    for what, h in (("path form", None), ("host form", f"{APP_PORT}-{{}}.localhost:{port}")):
        for cred in ({"Authorization": "Bearer " + ALICE}, {"X-API-Key": ALICE}):
            st, _, body = get(port, base + "/echo" if not h else "/echo",
                              host=h.format(sid) if h else None, headers=cred)
            st2, _, body2 = get(port, f"/sandboxes/{unknown}/ports/{APP_PORT}/echo" if not h else "/echo",
                                host=h.format(unknown) if h else None, headers=cred)
            check(st == 404 and st2 == 404 and
                  body.replace(sid.encode(), b"ID") == body2.replace(unknown.encode(), b"ID"),
                  f"{what}, {list(cred)[0]}: another tenant's token is answered as for an unknown "
                  "sandbox", f"{st} {body[:200]} / {st2} {body2[:200]}")

    # The signed link: a redirect that sets the port's cookie, then the cookie opens it.
    st, hdrs, _ = get(port, f"{base}/echo?q=1&cb_sig={sig}")
    cookie = hdrs.get("set-cookie", "").split(";")[0]
    check(st == 302 and hdrs.get("location") == f"{base}/echo?q=1" and
          cookie.startswith("cellblock_port=") and f"Path={base}" in hdrs.get("set-cookie", ""),
          "a signed link redirects to the clean URL with a cookie scoped to the port",
          f"{st} {hdrs}")
    st, _, body = get(port, f"{base}/echo?q=1", headers={"Cookie": f"theirs=1; {cookie}"})
    rec = json.loads(body) if st == 200 else {}
    cookies = [v for k, v in rec.get("headers", []) if k.lower() == "cookie"]
    check(st == 200 and cookies == ["theirs=1"],
          "the cookie opens the port; the app's own cookies pass, ours does not",
          f"{st} {body[:300]}")
    st, hdrs, _ = get(port, f"/echo?cb_sig={sig}", host=host)
    hcookie = hdrs.get("set-cookie", "")
    check(st == 302 and "Path=/;" in hcookie and "Domain" not in hcookie,
          "host form: the signed link sets a host-only cookie", f"{st} {hdrs}")
    st, _, _ = get(port, "/echo", host=host, headers={"Cookie": cookie})
    check(st == 200, "host form: the cookie opens it", str(st))

    # Signed links do not stretch.
    other = f"/sandboxes/{sid}/ports/{APP_PORT + 1}"
    st, _, _ = get(port, f"{other}/?cb_sig={sig}")
    check(st == 401, "a signed link for one port does not open another", str(st))
    st, _, _ = get(port, f"{other}/", headers={"Cookie": cookie})
    check(st == 401, "nor does its cookie", str(st))
    fake = "00000000-0000-0000-0000-000000000000"
    st, _, _ = get(port, f"/sandboxes/{fake}/ports/{APP_PORT}/?cb_sig={sig}")
    check(st == 401, "nor another sandbox", str(st))
    bad = sig[:-1] + ("0" if sig[-1] != "0" else "1")
    st, _, _ = get(port, f"{base}/?cb_sig={bad}")
    check(st == 401, "a forged signature is refused", str(st))
    expired = "1000000000" + sig[sig.index("."):]
    st, _, _ = get(port, f"{base}/?cb_sig={expired}")
    check(st == 401, "an expired (or re-dated) signature is refused", str(st))
    exp2 = mcp.call("sandbox_expose_port", {"sandbox_id": sid, "port": APP_PORT,
                                            "link_lifetime_s": 1})
    sig2 = exp2["signed_url"].split("cb_sig=")[1]
    deadline = time.monotonic() + 5
    st = 302
    while st == 302 and time.monotonic() < deadline:  # the link outlives its second, then not
        time.sleep(0.5)
        st, _, _ = get(port, f"{base}/?cb_sig={sig2}")
    check(st == 401, "a signed link past its expiry is refused", str(st))

    # POST body round trip; a chunked body is refused.
    payload = b"hello body " * 1000
    st, _, body = get(port, base + "/echo", headers=auth, method="POST", body=payload)
    rec = json.loads(body) if st == 200 else {}
    check(st == 200 and rec.get("body") == payload.decode(), "a POST body round-trips",
          f"{st} {body[:200]}")
    st, _, _ = split_response(raw_request(port, (
        f"POST {base}/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
        "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n").encode()))
    check(st == 411, "a chunked request body is refused (411)", str(st))

    # A streamed response arrives in pieces: the second piece waits for /release.
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    s.sendall(f"GET {base}/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}"
              "\r\n\r\n".encode())
    got = b""
    while b"piece0" not in got:
        b = s.recv(4096)
        if not b:
            break
        got += b
    check(b"piece0" in got and b"piece1" not in got, "the first piece arrives on its own",
          repr(got[:300]))
    get(port, base + "/release", headers=auth)
    while True:
        b = s.recv(4096)
        if not b:
            break
        got += b
    s.close()
    check(b"piece1" in got and got.endswith(b"0\r\n\r\n"), "… then the rest, and the end",
          repr(got[-200:]))

    # Keep-alive and pipelining: one request per client connection reaches the app.
    marker = "pipelined-second"
    raw = raw_request(port, (
        f"GET {base}/echo?first HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
        f"Connection: keep-alive\r\n\r\n"
        f"GET {base}/echo?{marker} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {token}\r\nCookie: {cookie}\r\n\r\n").encode())
    check(raw.count(b"HTTP/1.") == 1 and b"first" in raw,
          "a pipelined second request gets no answer through the forward", repr(raw[:300]))
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    s.sendall(f"GET {base}/echo?ka1 HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}"
              "\r\n\r\n".encode())
    first = b""
    while b"ka1" not in first:
        b = s.recv(65536)
        if not b:
            break
        first += b
    try:
        s.sendall(f"GET {base}/echo?ka2-{marker} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  f"Authorization: Bearer {token}\r\n\r\n".encode())
    except OSError:
        pass
    rest = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            rest += b
    except OSError:
        pass
    s.close()
    check(b"ka1" in first and b"HTTP/1." not in rest,
          "a keep-alive second request is not forwarded", repr(rest[:200]))

    # A keep-alive API connection (held by libwebsockets) asked for a forward: closed without
    # an answer, as an idle keep-alive connection is, so the client retries on a new one.
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    s.sendall(f"GET /api/kernels HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}"
              "\r\n\r\n".encode())
    got = b""
    while b"\r\n\r\n" not in got:
        got += s.recv(65536)
    clen = int(split_response(got.split(b"\r\n\r\n")[0] + b"\r\n\r\n")[1]["content-length"])
    while len(got.split(b"\r\n\r\n", 1)[1]) < clen:
        got += s.recv(65536)
    s.sendall(f"GET {base}/echo?reused HTTP/1.1\r\nHost: 127.0.0.1\r\n"
              f"Authorization: Bearer {token}\r\n\r\n".encode())
    try:
        after = s.recv(65536)
    except OSError:
        after = b""
    s.close()
    check(got.startswith(b"HTTP/1.1 200") and after == b"",
          "a forward asked on a keep-alive API connection: closed without an answer", repr(after))

    # WebSocket echo through the forward (path form with the token, host form with the cookie).
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    ws = WsClient(s)
    st = ws.handshake(f"{base}/ws", "127.0.0.1", {"Authorization": "Bearer " + token})
    check(st == 101, "a WebSocket upgrade goes through", str(st))
    ws.send_text("hello")
    op, data = ws.recv()
    check((op, data) == (1, b"echo:hello"), "a WebSocket echo round-trips", repr((op, data)))
    ws.send_text("again")
    op, data = ws.recv()
    check(data == b"echo:again", "… and again on the same connection", repr(data))
    s2 = socket.create_connection(("127.0.0.1", port), timeout=20)
    ws2 = WsClient(s2)
    st = ws2.handshake("/ws", host, {"Cookie": cookie})
    ws2.send_text("by-host")
    op, data = ws2.recv()
    check(st == 101 and data == b"echo:by-host", "host form WebSocket with the cookie",
          repr((st, data)))
    s2.close()

    st, _, body = get(port, base + "/seen", headers=auth)
    seen = json.loads(body) if st == 200 else []
    no_secrets(seen, [token, sig, cookie.split("=", 1)[1]], "every request")
    check(not any(marker in r["path"] for r in seen), "no pipelined or keep-alive second "
          "request ever reached the app", json.dumps([r["path"] for r in seen]))
    check(all(any(k.lower() == "connection" and v.lower() in ("close", "upgrade")
                  for k, v in r["headers"]) for r in seen if r["method"] != "WS"),
          "Connection: close upstream (Upgrade for WebSockets)", json.dumps(seen)[:400])

    # Nobody listens; bad ports.
    mcp.call("sandbox_expose_port", {"sandbox_id": sid, "port": 8001})
    st, _, body = get(port, f"/sandboxes/{sid}/ports/8001/", headers=auth)
    check(st == 502 and b"8001" in body, "a port nobody listens on: 502 naming it",
          f"{st} {body[:200]}")
    for bad_port in ("0", "70000", "abc", "-1", "8000x"):
        st, _, _ = get(port, f"/sandboxes/{sid}/ports/{bad_port}/", headers=auth)
        check(st == 400, f"port {bad_port!r}: 400", str(st))
    st, _, _ = get(port, "/", host=f"0-{sid}.localhost", headers=auth)
    check(st == 400, "host form port 0: 400", str(st))

    # Slow and garbage heads at the front door, while the API keeps answering.
    slow = socket.create_connection(("127.0.0.1", port), timeout=20)
    slow.sendall(b"GET /api/kernels HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    st, _, _ = srv.request("GET", "/api/kernels")
    check(st == 200, "the API answers while a head is slow", str(st))
    t0 = time.monotonic()
    try:
        closed = slow.recv(100) == b""
    except OSError:
        closed = True
    check(closed and time.monotonic() - t0 < 15, "the slow head is closed after its deadline")
    slow.close()
    garbage = raw_request(port, b"\x16\x03\x01\x02\x00garbage\r\n\r\n")
    check(not garbage.startswith(b"HTTP/1.1 200"), "a garbage head gets no 200",
          repr(garbage[:100]))
    st, _, _ = srv.request("GET", "/api/kernels")
    check(st == 200, "the API answers after garbage", str(st))

    # Unexpose: its open WebSocket closes, the URL answers 404, the link no longer opens it.
    s4 = socket.create_connection(("127.0.0.1", port), timeout=20)
    ws4 = WsClient(s4)
    ws4.handshake(f"{base}/ws", "127.0.0.1", {"Authorization": "Bearer " + token})
    ws4.send_text("before-unexpose")
    check(ws4.recv()[1] == b"echo:before-unexpose", "a WebSocket is open before the unexpose")
    un = mcp.call("sandbox_unexpose_port", {"sandbox_id": sid, "port": APP_PORT})
    try:
        ws4.recv()
        ended = False
    except (EOFError, OSError):
        ended = True
    s4.close()
    check(un.get("was_exposed") is True and ended,
          "sandbox_unexpose_port closes an open forwarded WebSocket", json.dumps(un))
    st, _, _ = get(port, base + "/echo", headers={"Cookie": cookie})
    check(st == 404, "after unexpose the port's cookie finds 404", str(st))
    mcp.call("sandbox_expose_port", {"sandbox_id": sid, "port": APP_PORT})

    # Delete: open WebSockets close; the URL answers 404.
    s3 = socket.create_connection(("127.0.0.1", port), timeout=20)
    ws3 = WsClient(s3)
    ws3.handshake(f"{base}/ws", "127.0.0.1", {"Authorization": "Bearer " + token})
    ws3.send_text("before-delete")
    check(ws3.recv()[1] == b"echo:before-delete", "a WebSocket is open before the delete")
    mcp.call("sandbox_delete", {"sandbox_id": sid})
    try:
        ws3.recv()
        ended = False
    except (EOFError, OSError):
        ended = True
    check(ended, "sandbox_delete closes an open forwarded WebSocket")
    s3.close()
    st, _, body = get(port, base + "/echo", headers=auth)
    check(st == 404, "after sandbox_delete the URL answers 404", f"{st} {body[:200]}")
    try:
        op, data = ws.recv()
        closed = False
    except (EOFError, OSError):
        closed = True
    check(closed, "… and so is the first WebSocket")
    s.close()


if __name__ == "__main__":
    sys.exit(main())
