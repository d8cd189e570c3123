"""http/test_http_client.py: the client half of test_http.c.

Run by test_http as: python3 test_http_client.py SCENARIO URL TOKEN [EXTRA]. Each scenario
drives the test server with real clients (http.client, raw sockets, the websocket package)
and prints one TAP-style line per check: "ok - what" or "not ok - what # detail". Every
socket has a timeout, so nothing here waits forever. test_http.c counts the lines, and checks
what only the server can see (on_close calls) itself.
"""
import http.client
import json
import socket
import sys
import threading
import time
import urllib.parse

import websocket

SCENARIO, URL, TOKEN = sys.argv[1], sys.argv[2], sys.argv[3]
EXTRA = sys.argv[4] if len(sys.argv) > 4 else ""
U = urllib.parse.urlsplit(URL)
HOST, PORT = U.hostname, U.port
WS = "ws://%s:%d" % (HOST, PORT)
AUTH = {"Authorization": "Bearer " + TOKEN}
TIMEOUT = 10


def check(cond, what, detail=""):
    if cond:
        print("ok - " + what)
    else:
        print("not ok - %s # %s" % (what, detail))
    sys.stdout.flush()
    return cond


def request(method, path, headers=None, body=None, conn=None):
    """One request; returns (status, headers dict (lowercase), body bytes)."""
    own = conn is None
    if own:
        conn = http.client.HTTPConnection(HOST, PORT, timeout=TIMEOUT)
    conn.request(method, path, body=body, headers=headers or {})
    r = conn.getresponse()
    data = r.read()
    hdrs = {k.lower(): v for k, v in r.getheaders()}
    if own:
        conn.close()
    return r.status, hdrs, data


def error_json(data):
    try:
        j = json.loads(data)
        return isinstance(j.get("reason"), str) and isinstance(j.get("message"), str)
    except ValueError:
        return False


def ws_connect(path, headers=None, **kw):
    return websocket.create_connection(WS + path, timeout=TIMEOUT, header=headers or [], **kw)


def ws_status(path, headers=None, **kw):
    """The HTTP status an upgrade gets (101 when it opens)."""
    try:
        ws = ws_connect(path, headers, **kw)
    except websocket.WebSocketBadStatusException as e:
        return e.status_code
    except Exception as e:  # closed without an answer
        return repr(e)
    ws.close()
    return 101


def raw_exchange(data, read_timeout=5, until_close=False):
    """Send raw bytes, return what comes back: one whole answer (its head, and its body when it
    has a Content-Length), or with until_close everything until the server closes; either way
    no more than until the server goes quiet for read_timeout ("<timeout>" then ends it)."""
    s = socket.create_connection((HOST, PORT), timeout=TIMEOUT)
    try:
        s.sendall(data)
    except OSError:
        pass
    s.settimeout(read_timeout)
    got = b""
    try:
        while until_close or not answered(got):
            b = s.recv(65536)
            if not b:
                break
            got += b
    except socket.timeout:
        got += b"<timeout>"
    except OSError:
        got += b"<reset>"
    s.close()
    return got


def answered(got):
    """Whether got holds a whole answer with a known end (a 101's head is one)."""
    head, sep, body = got.partition(b"\r\n\r\n")
    if not sep:
        return False
    if head[9:12] == b"101":
        return True
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length" and value.strip().isdigit():
            return len(body) >= int(value.strip())
    return False


def still_serving(what):
    st, _, data = request("GET", "/echo?x=alive", AUTH)
    check(st == 200 and b'"x":"alive"' in data, "server still serves after " + what, st)


# ---- scenarios -------------------------------------------------------------------------------


def sc_auth():
    st, h, data = request("GET", "/echo")
    check(st == 401 and h.get("www-authenticate", "").startswith("Bearer") and error_json(data),
          "no token: 401 with WWW-Authenticate: Bearer and a JSON error", (st, h, data))
    st, _, _ = request("GET", "/echo", {"Authorization": "Bearer " + TOKEN[:-1] + "x"})
    check(st == 401, "wrong token: 401", st)
    st, _, _ = request("GET", "/echo", {"Authorization": "Bearer " + TOKEN + "0"})
    check(st == 401, "token with an extra character: 401", st)
    st, _, _ = request("GET", "/echo", {"Authorization": "Basic " + TOKEN})
    check(st == 401, "an unknown scheme: 401", st)
    st, _, _ = request("GET", "/echo", {"Authorization": "Bearer " + TOKEN})
    check(st == 200, "Bearer accepted", st)
    st, _, _ = request("GET", "/echo", {"Authorization": "token " + TOKEN})
    check(st == 200, "'token' scheme accepted", st)
    st, _, _ = request("GET", "/echo?token=" + TOKEN)
    check(st == 401, "?token= not accepted on plain HTTP", st)
    check(ws_status("/ws?token=" + TOKEN) == 101, "?token= accepted for a WebSocket")
    check(ws_status("/ws?token=bad") == 401, "wrong ?token= on a WebSocket: 401")
    check(ws_status("/ws") == 401, "WebSocket without a token: 401")
    check(ws_status("/ws", ["Authorization: token " + TOKEN]) == 101, "WebSocket with Authorization: token")
    # The token is every byte of the header's value: a NUL does not end it. (A NUL at the very
    # end is invisible: libwebsockets 4.1 does not count NUL bytes in a header's length.)
    for what, value in [("the token, a NUL and more", TOKEN + "\x00junk"), ("a NUL inside the token", TOKEN[:8] + "\x00" + TOKEN[8:])]:
        got = raw_exchange(("GET /echo HTTP/1.1\r\nHost: %s:%d\r\nAuthorization: Bearer %s\r\n\r\n"
                            % (HOST, PORT, value)).encode(), read_timeout=TIMEOUT)
        check(got.startswith(b"HTTP/1.1 401"), "Authorization with %s: 401" % what, got[:80])
        got = raw_exchange(("GET /ws HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                            "Authorization: Bearer %s\r\n\r\n" % (HOST, PORT, value)).encode(), read_timeout=TIMEOUT)
        check(got[:12] in (b"HTTP/1.1 401", b"HTTP/1.0 401"),
              "a WebSocket upgrade with %s in Authorization: 401" % what, got[:80])
    got = raw_exchange(("GET /ws?token=%s%%00junk HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                        "Sec-WebSocket-Version: 13\r\n\r\n" % (TOKEN, HOST, PORT)).encode(), read_timeout=TIMEOUT)
    check(not got.startswith(b"HTTP/1.1 101"), "?token= with %00 and more: no upgrade", got[:80])
    got = raw_exchange(("GET /echo HTTP/1.1\r\nHost: 127.0.0.1:%d\x00.evil.example\r\nAuthorization: Bearer %s\r\n\r\n"
                        % (PORT, TOKEN)).encode(), read_timeout=TIMEOUT)
    check(got.startswith(b"HTTP/1.1 400"), "a Host with a NUL inside: 400", got[:80])
    still_serving("tokens and headers with a NUL")


ALICE, BOB = "alice-token-0123456789", "bob-token-0123456789abc"


def who(headers=None, path="/echo"):
    st, h, data = request("GET", path, headers)
    if st != 200:
        return st, None
    j = json.loads(data)
    return st, (j.get("tenant"), j.get("admin"))


def ws_whoami(path, headers=None):
    ws = ws_connect(path, headers)
    try:
        ws.recv()  # the hello
        ws.send("whoami")
        return ws.recv()
    finally:
        ws.close()


def sc_tenants():
    """Every credential names its principal; login cookies are tenant + role + expiry, MACed."""
    check(who({"Authorization": "Bearer " + TOKEN}) == (200, ("admin", True)),
          "the server's token acts for the admin")
    check(who({"Authorization": "Bearer " + ALICE}) == (200, ("alice", False)),
          "alice's Bearer token acts for alice")
    check(who({"Authorization": "token " + BOB}) == (200, ("bob", True)),
          "bob's 'token' acts for bob, an admin")
    check(who({"X-API-Key": ALICE}) == (200, ("alice", False)), "alice's X-API-Key acts for alice")
    check(who({"Authorization": "Bearer " + ALICE + "x"})[0] == 401, "alice's token and more: 401")
    check(who({"Authorization": "Bearer " + ALICE[:-1]})[0] == 401, "a prefix of alice's: 401")
    check(ws_whoami("/ws?token=" + ALICE) == "alice tenant", "?token= on a WebSocket: alice")
    check(ws_whoami("/ws", ["Authorization: Bearer " + BOB]) == "bob admin",
          "Authorization on a WebSocket: bob")
    # Public routes: no credentials needed, and they act for nobody unless some are given.
    check(who(None, "/pub") == (200, ("", False)), "a public route without credentials: nobody")
    check(who({"Authorization": "Bearer " + ALICE}, "/pub") == (200, ("alice", False)),
          "a public route with alice's token: alice")
    # Login cookies.
    st, h, _ = request("POST", "/login", {"Authorization": "Bearer " + ALICE})
    sc = h.get("set-cookie", "")
    check(st == 204 and sc.startswith("cellblock_login=") and "HttpOnly" in sc and
          "SameSite=Strict" in sc and "Path=/" in sc, "login: a cookie, HttpOnly, SameSite=Strict", (st, sc))
    cookie = sc.split(";")[0]
    check(who({"Cookie": "x=1; " + cookie}) == (200, ("alice", False)), "the cookie acts for alice")
    check(ws_whoami("/ws", ["Cookie: " + cookie]) == "alice tenant", "… on a WebSocket too")
    name, value = cookie.split("=", 1)
    forged = value.replace(".t.", ".a.", 1)
    check(who({"Cookie": name + "=" + forged})[0] == 401, "the role changed in the cookie: 401")
    forged = value.replace(".alice.", ".bobby.", 1)
    check(who({"Cookie": name + "=" + forged})[0] == 401, "the tenant changed in the cookie: 401")
    check(who({"Cookie": name + "=" + value[:-1] + ("0" if value[-1] != "0" else "1")})[0] == 401,
          "the MAC changed in the cookie: 401")
    check(who({"Cookie": cookie}, "/sbx")[0] == 401, "a sandbox-token route does not take the cookie")
    check(who({"Authorization": "Bearer " + ALICE}, "/sbx") == (200, ("alice", False)),
          "… but takes alice's token")
    st, _, _ = request("POST", "/login")
    check(st == 401, "no login without credentials", st)
    still_serving("tenants' credentials")


def sc_origin():
    own = "http://%s:%d" % (HOST, PORT)
    cases = [
        ({"Origin": "http://evil.example"}, 403, "foreign Origin"),
        ({"Origin": "null"}, 403, "Origin null"),
        ({"Origin": own}, 200, "our own Origin"),
        ({"Origin": "http://localhost:%d" % PORT}, 200, "Origin localhost with our port"),
        ({"Origin": "http://127.0.0.1:%d" % (PORT + 1 if PORT < 65535 else 1)}, 403, "Origin with another port"),
        ({"Origin": "http://127.0.0.1"}, 403, "Origin without a port (80) when we are elsewhere"),
        ({"Origin": "https://%s:%d" % (HOST, PORT)}, 403, "Origin https with our host and port (we serve http)"),
        ({"Origin": "https://localhost:%d" % PORT}, 403, "Origin https://localhost with our port"),
        ({"Host": "evil.example:%d" % PORT}, 403, "foreign Host"),
        ({"Host": "localhost:%d" % PORT}, 200, "Host localhost"),
        ({"Host": "[::1]:%d" % PORT}, 200, "Host IPv6 literal"),
        ({"Host": "allowed.example"}, 200, "Host in allowed_hosts"),
        ({"Host": "127.0.0.1:99999"}, 403, "Host with a bad port"),
    ]
    for extra, want, what in cases:
        h = dict(AUTH)
        h.update(extra)
        conn = http.client.HTTPConnection(HOST, PORT, timeout=TIMEOUT)
        conn.putrequest("GET", "/echo", skip_host="Host" in extra)
        for k, v in h.items():
            conn.putheader(k, v)
        conn.endheaders()
        r = conn.getresponse()
        data = r.read()
        conn.close()
        check(r.status == want and (want == 200 or error_json(data)), "%s: %d" % (what, want), (r.status, data))
    check(ws_status("/ws", ["Authorization: Bearer " + TOKEN], origin="http://evil.example") == 403,
          "WebSocket with a foreign Origin: 403")
    check(ws_status("/ws", ["Authorization: Bearer " + TOKEN], origin=own) == 101,
          "WebSocket with our own Origin")
    check(ws_status("/ws", ["Authorization: Bearer " + TOKEN], origin="https://%s:%d" % (HOST, PORT)) == 403,
          "WebSocket with Origin https and our port: 403")


def sc_notfound():
    st, h, data = request("GET", "/nothing/here", AUTH)
    j = json.loads(data) if error_json(data) else {}
    check(st == 404 and h.get("content-type") == "application/json" and j.get("reason") == "Not Found"
          and j.get("message"), "unknown path: 404 JSON with reason and message", (st, h, data))
    st, _, _ = request("GET", "/echox", AUTH)
    check(st == 404, "a prefix matches whole segments only (/echox: 404)", st)
    st, _, _ = request("GET", "/echo/deeper/path", AUTH)
    check(st == 200, "a path under a prefix is routed", st)
    check(ws_status("/nows", ["Authorization: Bearer " + TOKEN]) == 404, "WebSocket on a route without on_ws: 404")
    check(ws_status("/nothing", ["Authorization: Bearer " + TOKEN]) == 404, "WebSocket on an unknown path: 404")
    st, _, _ = request("DELETE", "/echo", AUTH)
    check(st == 200, "DELETE is passed on", st)
    st, h, data = request("HEAD", "/echo", AUTH)
    check(st == 200 and data == b"" and int(h.get("content-length", "0")) > 0,
          "HEAD: headers with Content-Length, no body", (st, h, data))
    still_serving("HEAD")


def sc_body():
    limit = int(EXTRA)
    st, _, data = request("POST", "/echo", AUTH, b"a" * (limit - 10))
    check(st == 200 and json.loads(data).get("body_len") == limit - 10, "a body just under the limit", st)
    st, h, data = request("POST", "/echo", AUTH, b"a" * (limit + 1))
    check(st == 413 and error_json(data), "Content-Length over the limit: 413", (st, data[:200]))
    still_serving("a 413 by Content-Length")

    conn = http.client.HTTPConnection(HOST, PORT, timeout=TIMEOUT)
    conn.request("POST", "/echo", body=iter([b"abc", b"defg"]), headers=dict(AUTH), encode_chunked=True)
    r = conn.getresponse()
    data = r.read()
    check(r.status == 200 and json.loads(data).get("body") == "abcdefg" and r.will_close,
          "a chunked request body (http.client): decoded, answered with Connection: close",
          (r.status, r.getheaders(), data[:200]))
    conn.close()
    still_serving("a chunked body")


def chunked_head(path="/echo", extra=b"", auth=True):
    return (b"POST " + path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            + (b"Authorization: Bearer " + TOKEN.encode() + b"\r\n" if auth else b"")
            + b"Transfer-Encoding: chunked\r\n" + extra + b"\r\n")


def status_of(got):
    try:
        return int(got.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return got[:80]


def echoed(got):
    """The echo route's JSON body out of a raw answer, or None."""
    try:
        return json.loads(got.split(b"\r\n\r\n", 1)[1].split(b"<", 1)[0])
    except (IndexError, ValueError):
        return None


def sc_chunked():
    limit = int(EXTRA)
    # Extensions, trailers, an uppercase size.
    body = b"3;name=value\r\nabc\r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n"
    got = raw_exchange(chunked_head(extra=b"X-Keep: k\r\n") + body)
    j = echoed(got)
    check(got.startswith(b"HTTP/1.1 200") and j and j.get("body") == "abc0123456789",
          "chunk extensions, trailers: decoded", got[:300])

    # Keep-alive: a chunked body on a connection that already served a request.
    conn = http.client.HTTPConnection(HOST, PORT, timeout=TIMEOUT)
    st, _, _ = request("GET", "/echo?x=first", AUTH, conn=conn)
    conn.request("POST", "/echo", body=iter([b"second", b" one"]), headers=dict(AUTH), encode_chunked=True)
    r = conn.getresponse()
    data = r.read()
    check(st == 200 and r.status == 200 and json.loads(data).get("body") == "second one" and r.will_close,
          "a chunked body as the second request of a keep-alive connection", (st, r.status, data[:200]))
    conn.close()

    # A client sending one byte at a time, while other requests are served.
    s = socket.create_connection((HOST, PORT), timeout=TIMEOUT)
    data = chunked_head() + b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    half = len(data) // 2
    for i in range(half):
        s.sendall(data[i:i + 1])
        time.sleep(0.005)
    st, _, d2 = request("GET", "/echo?x=meanwhile", AUTH)
    check(st == 200 and b'"x":"meanwhile"' in d2, "a slow chunked client does not hold up others", st)
    for i in range(half, len(data)):
        s.sendall(data[i:i + 1])
        time.sleep(0.005)
    s.settimeout(TIMEOUT)
    got = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            got += b
    except OSError as e:
        got += repr(e).encode()
    s.close()
    j = echoed(got)
    check(j is not None and j.get("body") == "hello world", "a chunked body sent one byte at a time",
          got[:300])

    # Limits: a chunk announcing more than the limit is refused at its size line, before its
    # bytes; many chunks adding up to more, too; a size that overflows; broken framing.
    got = raw_exchange(chunked_head() + b"%x\r\nabc" % (limit + 1))
    check(status_of(got) == 413, "a chunk larger than max_body: 413 at once", got[:200])
    piece = b"1000\r\n" + b"x" * 0x1000 + b"\r\n"
    got = raw_exchange(chunked_head() + piece * (limit // 0x1000 + 1) + b"0\r\n\r\n")
    check(status_of(got) == 413, "chunks adding up to more than max_body: 413", got[:200])
    got = raw_exchange(chunked_head() + piece * (limit // 0x1000) + b"0\r\n\r\n")
    j = echoed(got)
    check(j is not None and j.get("body_len") == limit, "chunks adding up to max_body exactly: taken",
          got[:200])
    got = raw_exchange(chunked_head() + b"3\r\nabcdef\r\n0\r\n\r\n", read_timeout=TIMEOUT)
    check(not got.startswith(b"HTTP/1.1 2"), "a chunk longer than its size: not taken", got[:200])
    got = raw_exchange(chunked_head() + b"fffffffffffffffffffff\r\nabc")
    check(status_of(got) in (400, 413), "a chunk size that overflows: refused", got[:200])
    got = raw_exchange(chunked_head() + b"zz\r\nabc\r\n0\r\n\r\n")
    check(status_of(got) == 400, "a malformed chunk size: 400", got[:200])
    still_serving("refused chunked bodies")

    # Other framings stay refused: no credential (401 before anything is held), another coding,
    # both Content-Length and Transfer-Encoding.
    got = raw_exchange(chunked_head(auth=False) + b"3\r\nabc\r\n0\r\n\r\n")
    check(status_of(got) == 401, "a chunked body without a credential: 401", got[:200])
    got = raw_exchange(chunked_head().replace(b"chunked", b"gzip, chunked") + b"3\r\nabc\r\n0\r\n\r\n")
    check(status_of(got) == 411, "Transfer-Encoding: gzip, chunked: 411", got[:200])
    got = raw_exchange(chunked_head(extra=b"Content-Length: 3\r\n") + b"3\r\nabc\r\n0\r\n\r\n")
    check(status_of(got) in (400, 411), "Content-Length and Transfer-Encoding: refused", got[:200])

    # Pipelining: the chunked request is answered, then the connection closes; the request
    # behind it is not read as part of anything.
    got = raw_exchange(chunked_head() + b"2\r\nhi\r\n0\r\n\r\n"
                       + b"GET /echo?x=second HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
                       + TOKEN.encode() + b"\r\n\r\n", until_close=True)
    check(got.count(b"HTTP/1.1 ") == 1 and b'"body":"hi"' in got and b"second" not in got
          and not got.endswith(b"<timeout>"),
          "a request pipelined behind a chunked one: the first answered, then closed", got[:300])

    # A client that leaves mid-body, and one whose body never ends (closed after the idle
    # deadline with a 408).
    s = socket.create_connection((HOST, PORT), timeout=TIMEOUT)
    s.sendall(chunked_head() + b"10\r\nabc")
    s.close()
    still_serving("a client leaving mid-body")
    got = raw_exchange(chunked_head() + b"10\r\nabc", read_timeout=TIMEOUT + 5, until_close=True)
    check(not got.startswith(b"HTTP/1.1 2") and not got.endswith(b"<timeout>"),
          "a chunked body that never ends: closed after the idle deadline", got[:200])
    still_serving("a body that never ended")

def sc_keepalive():
    conn = http.client.HTTPConnection(HOST, PORT, timeout=TIMEOUT)
    conn.connect()
    port = conn.sock.getsockname()[1]
    ok = True
    for i in range(6):
        method, path, body = [("GET", "/echo?x=%d" % i, None), ("POST", "/echo", b"body%d" % i),
                              ("GET", "/late", None)][i % 3]
        st, _, data = request(method, path, AUTH, body, conn=conn)
        ok = ok and st == 200 and conn.sock is not None and conn.sock.getsockname()[1] == port
    check(ok, "six requests (GET, POST, a late answer) on one connection")
    st, _, _ = request("GET", "/nothing", AUTH, conn=conn)
    st2, _, _ = request("GET", "/echo", AUTH, conn=conn)
    check(st == 404 and st2 == 200 and conn.sock.getsockname()[1] == port,
          "a 404 keeps the connection too", (st, st2))
    conn.close()


def read_event(resp):
    """Read one SSE event (up to a blank line) from a streamed response."""
    lines = []
    while True:
        line = resp.fp.readline()
        if not line:
            return None
        if line in (b"\n", b"\r\n"):
            return b"".join(lines).decode()
        lines.append(line)


def sc_sse():
    # A raw socket so chunk boundaries can be seen as they arrive.
    conn = http.client.HTTPConnection(HOST, PORT, timeout=TIMEOUT)
    conn.request("GET", "/sse", headers=dict(AUTH, Accept="text/event-stream"))
    r = conn.getresponse()
    check(r.status == 200 and r.getheader("Content-Type") == "text/event-stream"
          and r.getheader("Transfer-Encoding") == "chunked", "SSE: 200, text/event-stream, chunked",
          r.getheaders())
    got = []
    for i in range(3):
        ev = r.read1(65536) if hasattr(r, "read1") else None
        got.append(ev)
        check(ev is not None and ("data: event %d" % i).encode() in ev,
              "SSE: event %d arrives before the next is written" % i, ev)
        st, _, _ = request("GET", "/sse/ack", AUTH)  # the server writes the next only now
    rest = r.read()
    check(rest == b"", "SSE: the stream ends cleanly after the last ack", rest)
    st, _, data = request("GET", "/echo?x=after", AUTH, conn=conn)
    check(st == 200 and b'"x":"after"' in data, "SSE: the connection is reused after the stream ended", st)
    conn.close()


def sc_disconnect():
    s = socket.create_connection((HOST, PORT), timeout=TIMEOUT)
    s.sendall(("GET /hold HTTP/1.1\r\nHost: %s:%d\r\nAuthorization: Bearer %s\r\n\r\n" % (HOST, PORT, TOKEN))
              .encode())
    got = b""
    while b"held" not in got:
        b = s.recv(4096)
        if not b:
            break
        got += b
    check(b"held" in got, "held stream started", got)
    s.close()


def sc_linger():
    """Open a /hold stream and a WebSocket, then wait until the server closes both."""
    s = socket.create_connection((HOST, PORT), timeout=20)
    s.sendall(("GET /hold HTTP/1.1\r\nHost: %s:%d\r\nAuthorization: Bearer %s\r\n\r\n" % (HOST, PORT, TOKEN))
              .encode())
    got = b""
    while b"held" not in got:
        b = s.recv(4096)
        if not b:
            break
        got += b
    ws = ws_connect("/ws/linger", ["Authorization: Bearer " + TOKEN])
    hello = ws.recv()
    check(b"held" in got and hello.startswith("hello"), "linger: stream and WebSocket open")
    print("READY")
    sys.stdout.flush()
    ws.settimeout(20)
    try:
        while True:
            op, frame = ws.recv_data_frame(True)
            if op == websocket.ABNF.OPCODE_CLOSE:
                break
        ws_closed = True
    except Exception:
        ws_closed = True
    s.settimeout(20)
    try:
        while s.recv(4096):
            pass
        s_closed = True
    except OSError:
        s_closed = True
    check(ws_closed and s_closed, "linger: the server closed both")


def close_code(ws):
    """Read until a close frame; returns (code, reason)."""
    while True:
        op, frame = ws.recv_data_frame(True)
        if op == websocket.ABNF.OPCODE_CLOSE:
            data = frame.data
            if len(data) >= 2:
                return int.from_bytes(data[:2], "big"), data[2:].decode(errors="replace")
            return None, ""


def sc_ws():
    limit = int(EXTRA)
    h = ["Authorization: Bearer " + TOKEN]
    ws = ws_connect("/ws/k1?x=1", h)
    check(ws.recv() == "hello - /ws/k1", "WS: open, no subprotocol, handler sees the path")
    ws.send("text message é")
    check(ws.recv() == "text message é", "WS: text echo")
    ws.send_binary(b"\x00\x01\x02binary")
    op, data = ws.recv_data()
    check(op == websocket.ABNF.OPCODE_BINARY and data == b"\x00\x01\x02binary", "WS: binary echo", (op, data))
    ws.send_frame(websocket.ABNF.create_frame("frag", websocket.ABNF.OPCODE_TEXT, 0))
    ws.send_frame(websocket.ABNF.create_frame("ment", websocket.ABNF.OPCODE_CONT, 0))
    ws.send_frame(websocket.ABNF.create_frame("ed", websocket.ABNF.OPCODE_CONT, 1))
    check(ws.recv() == "fragmented", "WS: fragments joined into one message")
    big = bytes(range(256)) * 1000  # 256000 bytes, under the limit
    ws.send_binary(big)
    op, data = ws.recv_data()
    check(data == big, "WS: a 250 KB message both ways", len(data))
    ws.send("")
    check(ws.recv() == "", "WS: an empty message")
    ws.send("close-me")
    code, reason = close_code(ws)
    check(code == 4001 and reason == "bye", "WS: http_ws_close sends its code and reason", (code, reason))
    ws.close()

    ws = ws_connect("/ws", h, subprotocols=["v2.test.example"])
    check(ws.recv() == "hello v2.test.example /ws" and ws.subprotocol == "v2.test.example",
          "WS: subprotocol agreed when offered", ws.subprotocol)
    ws.close()
    ws = ws_connect("/ws", h, subprotocols=["unknown.example", "v1.test.example"])
    check(ws.recv() == "hello v1.test.example /ws", "WS: the known one of several offered")
    ws.close()
    st = ws_status("/ws", h, subprotocols=["unknown.example"])
    check(st == 400, "WS: only unknown subprotocols offered: 400 (lws cannot accept without one)", st)

    ws = ws_connect("/ws", h)
    ws.recv()
    ws.send_binary(b"x" * (limit + 1))
    try:
        code, _ = close_code(ws)
    except Exception as e:
        code = repr(e)
    check(code == 1009, "WS: a message over the limit is closed with 1009", code)
    ws = ws_connect("/ws", h)
    ws.recv()
    try:
        for i in range(limit // 16384 + 2):
            ws.send_frame(websocket.ABNF.create_frame("y" * 16384, websocket.ABNF.OPCODE_TEXT if i == 0
                                                      else websocket.ABNF.OPCODE_CONT, 0))
        code, _ = close_code(ws)
    except Exception as e:
        code = repr(e)
    check(code == 1009, "WS: fragments adding up over the limit: 1009", code)


def raw_ws():
    """A WebSocket opened by hand on a raw socket; returns (socket, bytes after the 101 head)."""
    s = socket.create_connection((HOST, PORT), timeout=TIMEOUT)
    s.sendall(("GET /ws HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
               "Authorization: Bearer %s\r\n\r\n" % (HOST, PORT, TOKEN)).encode())
    got = b""
    while b"\r\n\r\n" not in got:
        b = s.recv(4096)
        if not b:
            raise ConnectionError("closed during the handshake: %r" % got[:80])
        got += b
    head, rest = got.split(b"\r\n\r\n", 1)
    if not head.startswith(b"HTTP/1.1 101"):
        raise ConnectionError("no upgrade: %r" % head[:80])
    return s, rest


def frame(opcode, payload, fin=True, masked=True):
    """One client frame; masked as RFC 6455 requires unless masked is False."""
    first = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    bit = 0x80 if masked else 0
    size = bytes([bit | n]) if n < 126 else bytes([bit | 126]) + n.to_bytes(2, "big")
    if not masked:
        return first + size + payload
    key = b"\x5a\xa5\x0f\xf0"
    return first + size + key + bytes(c ^ key[i % 4] for i, c in enumerate(payload))


def server_frames(s, rest, count=None):
    """Server frames (opcode, payload) after the greeting, until a close frame, count frames,
    the peer's close, or the timeout."""
    buf, frames = rest, []
    while True:
        while len(buf) >= 2:
            n = buf[1] & 0x7f
            off = 2
            if n == 126:
                if len(buf) < 4:
                    break
                n, off = int.from_bytes(buf[2:4], "big"), 4
            if len(buf) < off + n:
                break
            op, payload = buf[0] & 0x0f, buf[off:off + n]
            buf = buf[off + n:]
            if op == 1 and payload.startswith(b"hello "):
                continue  # the test route greets every new WebSocket
            frames.append((op, payload))
            if op == 8 or (count and len(frames) >= count):
                return frames
        try:
            b = s.recv(65536)
        except OSError:
            return frames
        if not b:
            return frames
        buf += b


def sc_ws_rules():
    """RFC 6455 rules on what a client sends: text must be UTF-8 (close 1007, the message never
    reaches the handler), in one frame, across fragments, or cut at the end."""
    cases = [
        ("a text frame that is not UTF-8", [frame(1, b"ok \xff\xfe")]),
        ("an overlong encoding of '/'", [frame(1, b"\xc0\xaf")]),
        ("a UTF-16 surrogate encoded in UTF-8", [frame(1, b"\xed\xa0\x80")]),
        ("invalid UTF-8 in a later fragment", [frame(1, b"fine ", fin=False), frame(0, b"\x80\x80")]),
        ("a text message cut inside a character", [frame(1, b"caf\xc3")]),
        ("a character cut at the message's end after fragments",
         [frame(1, b"ab", fin=False), frame(0, b"\xe2\x82")]),
    ]
    for what, frames in cases:
        s, rest = raw_ws()
        s.sendall(b"".join(frames))
        got = server_frames(s, rest)
        s.close()
        texts = [p for op, p in got if op == 1]
        close = [p for op, p in got if op == 8]
        code = int.from_bytes(close[0][:2], "big") if close and len(close[0]) >= 2 else None
        check(code == 1007 and not texts, "WS: %s: closed with 1007, nothing delivered" % what, got)
    # Valid UTF-8 split inside a character across fragments is one good message.
    s, rest = raw_ws()
    s.sendall(frame(1, "caf".encode() + b"\xc3", fin=False) + frame(0, b"\xa9 \xe2\x82", fin=False)
              + frame(0, b"\xac"))
    got = server_frames(s, rest, count=1)
    s.close()
    check(got and got[0] == (1, "café €".encode()), "WS: UTF-8 split across fragments arrives whole", got)
    # Binary frames are not text: any bytes pass.
    s, rest = raw_ws()
    s.sendall(frame(2, b"\xff\xfe\x00"))
    got = server_frames(s, rest, count=1)
    s.close()
    check(got and got[0] == (2, b"\xff\xfe\x00"), "WS: a binary frame of non-UTF-8 bytes is delivered", got)
    # An unmasked client frame: libwebsockets 4.1 accepts it and does not say (docs/security.md,
    # "not promised"). What must hold is that the server goes on serving everyone else.
    s, rest = raw_ws()
    s.sendall(frame(1, b"unmasked", masked=False))
    got = server_frames(s, rest, count=1)
    s.close()
    print("# an unmasked client frame: the server answered %r" % (got[:2],))
    still_serving("an unmasked client frame")


def sc_many():
    n = int(EXTRA or "50")
    h = ["Authorization: Bearer " + TOKEN]
    results = [None] * n
    barrier = threading.Barrier(n, timeout=TIMEOUT)

    def one(i):
        try:
            ws = ws_connect("/ws/many%d" % i, h)
            ok = ws.recv() == "hello - /ws/many%d" % i
            barrier.wait()  # all open at once
            for k in range(5):
                msg = "client %d message %d" % (i, k)
                ws.send(msg)
                ok = ok and ws.recv() == msg
            ws.close()
            results[i] = ok
        except Exception as e:
            results[i] = repr(e)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT * 2)
    good = sum(1 for r in results if r is True)
    check(good == n, "%d WebSocket clients at once, each echoing 5 messages" % n,
          [r for r in results if r is not True][:3])


def sc_malformed():
    got = raw_exchange(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\x00\xff\r\n\r\n")
    check(not got.startswith(b"HTTP/1.1 2"), "garbage bytes: an error or a close", got[:80])
    still_serving("garbage bytes")
    got = raw_exchange(b"GET\r\n\r\n")
    check(not got.startswith(b"HTTP/1.1 2"), "a bad request line: an error or a close", got[:80])
    still_serving("a bad request line")
    got = raw_exchange(b"BREW /echo HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    check(not got.startswith(b"HTTP/1.1 2"), "an unknown method: an error or a close", got[:80])
    still_serving("an unknown method")
    req = ("GET /echo HTTP/1.1\r\nHost: %s:%d\r\nAuthorization: Bearer %s\r\nX-Big: %s\r\n\r\n"
           % (HOST, PORT, TOKEN, "z" * 20000)).encode()
    got = raw_exchange(req)
    check(not got.startswith(b"HTTP/1.1 2"), "a 20 KB header: an error or a close", got[:80])
    still_serving("a huge header")
    got = raw_exchange(b"GET /echo/%00x HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + TOKEN.encode()
                       + b"\r\n\r\n")
    check(not got.startswith(b"HTTP/1.1 2"), "a path with %00: refused", got[:80])
    got = raw_exchange(b"GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: abc\r\nAuthorization: Bearer "
                       + TOKEN.encode() + b"\r\n\r\n")
    check(not got.startswith(b"HTTP/1.1 2"), "a malformed Content-Length: refused", got[:80])
    still_serving("malformed requests")


SCENARIOS = {name[3:]: fn for name, fn in globals().items() if name.startswith("sc_")}

if __name__ == "__main__":
    try:
        SCENARIOS[SCENARIO]()
    except Exception as e:  # a crash is a failure, with its reason
        import traceback
        traceback.print_exc(file=sys.stdout)
        check(False, "scenario %s ran to the end" % SCENARIO, repr(e))
        sys.exit(1)
