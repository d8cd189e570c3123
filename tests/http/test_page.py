"""test_page.py: the page at `/` (docs/page.md), in a real browser and by plain HTTP.

One `cellblock serve --tokens` with two tenants, alice and bob, and one sandbox, created over
MCP by alice (so it is hers). Plain HTTP first: the assets are public and carry the CSP, nosniff and
no-referrer headers; every other path under `/` is a JSON 404; the API answers 401 without a
credential and with a tampered cookie; bob is answered for alice's sandbox and kernel exactly
as for unknown ids, and does not see it listed.

Then headless Chromium (Debian's), driven over the DevTools protocol, kept on loopback: it loads
`/`, logs in with alice's token, sees the sandbox listed, opens it and watches a cell started
over MCP print lines while it still runs (one of them an <img onerror> that must stay text),
clicks Interrupt and sees KeyboardInterrupt; then logs out, logs in as bob, does not see the
sandbox and gets "Not found." for it.

    /usr/bin/python3 tests/http/test_page.py PATH/TO/cellblock [--no-browser]
Exits 77 (SKIP) without chromium (unless --no-browser: the plain HTTP part alone).
"""
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import websocket  # python3-websocket

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from checks import check, finish  # noqa: E402
from fwd_lib import Mcp  # noqa: E402
from serve import Serve, http_call  # noqa: E402

BIN = sys.argv[1]
# --no-browser: the plain HTTP part alone (integration.http.page_api, which the sanitizer half
# runs: the browser's part is left out there to keep CI's time)
NO_BROWSER = "--no-browser" in sys.argv[2:]
CSP = "default-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-domain-reliability", "--disable-breakpad",
    "--proxy-server=http://127.0.0.1:9",  # anything but loopback goes to a dead port
    "--remote-debugging-port=0", "--remote-allow-origins=*",
]
DEADLINE_S = 20
# Prints a line every 0.1 s for up to a minute, one of them markup that must stay text.
CELL = ("import time, sys\n"
        "print('<img src=x onerror=\"window.__pwned=1\">page-markup', flush=True)\n"
        "for i in range(600):\n"
        "    print('tick', i, flush=True)\n"
        "    time.sleep(0.1)\n")


def wait_until(fn, deadline_s=DEADLINE_S, step_s=0.1):
    """fn() until it is truthy, at most deadline_s: its last value."""
    end = time.monotonic() + deadline_s
    while True:
        v = fn()
        if v or time.monotonic() >= end:
            return v
        time.sleep(step_s)


def api(port, method, path, token=None, cookie=None):
    """(status, headers, body) of one request to the page's API with a token or a cookie."""
    h = {"Authorization": "Bearer " + token} if token else {}
    if cookie:
        h["Cookie"] = cookie
    return http_call(port, method, "/ui/api" + path, headers=h)


def cookie_of(headers):
    """name=value of a Set-Cookie header, or None."""
    v = headers.get("set-cookie")
    return v.split(";", 1)[0] if v else None


class Browser:
    """Headless Chromium with one page, driven over the DevTools protocol."""

    def __init__(self):
        self.profile = tempfile.mkdtemp(prefix="cb-page-chromium-")
        self.log = open(os.path.join(self.profile, "chromium.log"), "wb")
        self.proc = subprocess.Popen(
            ["chromium", *CHROMIUM_FLAGS, "--user-data-dir=" + self.profile, "about:blank"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
            env=dict(os.environ, HOME=self.profile), start_new_session=True)
        port_file = os.path.join(self.profile, "DevToolsActivePort")
        if not wait_until(lambda: os.path.exists(port_file) and open(port_file).read().count("\n")):
            raise RuntimeError("chromium wrote no DevToolsActivePort:\n" + self.tail())
        port = int(open(port_file).read().split()[0])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/json/list")
        pages = [t for t in json.loads(conn.getresponse().read()) if t["type"] == "page"]
        conn.close()
        self.ws = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], timeout=10,
                                              suppress_origin=True)
        self.next_id = 1
        self.send("Runtime.enable")

    def send(self, method, params=None):
        i = self.next_id
        self.next_id += 1
        self.ws.send(json.dumps({"id": i, "method": method, "params": params or {}}))
        while True:  # events in between are not needed
            m = json.loads(self.ws.recv())
            if m.get("id") == i:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})

    def js(self, expr):
        """The value of a JavaScript expression in the page (None when it throws)."""
        r = self.send("Runtime.evaluate", {"expression": expr, "returnByValue": True})
        if "exceptionDetails" in r:
            return None
        return r.get("result", {}).get("value")

    def wait(self, expr, deadline_s=DEADLINE_S):
        return wait_until(lambda: self.js(expr), deadline_s)

    def tail(self):
        self.log.flush()
        return open(self.log.name, "rb").read().decode(errors="replace")[-800:]

    def close(self):
        try:
            self.ws.close()
        except Exception:
            pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        self.log.close()
        shutil.rmtree(self.profile, ignore_errors=True)


def start_server(tokens):
    """serve --tokens with alice's and bob's tokens (the admin's is CELLBLOCK_TOKEN)."""
    tmp = tempfile.mkdtemp(prefix="cb-page-tokens-")
    path = os.path.join(tmp, "tokens")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        for tenant, token in tokens.items():
            f.write(f"{tenant} {token}\n")
    try:
        return Serve(BIN, ["--tokens", path])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # read at start


def plain_http(srv, alice, bob, sid, kid):
    port = srv.port
    st, h, body = http_call(port, "GET", "/")
    check(st == 200 and "<title>cellblock</title>" in str(body), "GET / without credentials: the page",
          f"{st} {body!r:.200}")
    check(h.get("content-security-policy") == CSP, "/ carries the CSP", str(h))
    check(h.get("x-content-type-options") == "nosniff" and h.get("referrer-policy") == "no-referrer",
          "/ carries nosniff and no-referrer", str(h))
    st, h, _ = http_call(port, "GET", "/app.js")
    check(st == 200 and h.get("content-type", "").startswith("text/javascript") and
          h.get("content-security-policy") == CSP, "/app.js: JavaScript, with the CSP", f"{st} {h}")
    st, _, body = http_call(port, "GET", "/secret.txt")
    check(st == 404 and isinstance(body, dict) and body.get("reason") == "Not Found",
          "any other path under / is a JSON 404", f"{st} {body}")
    st, _, body = http_call(port, "POST", "/app.js", body=b"x")
    check(st == 405 and isinstance(body, dict), "POST to an asset: a JSON 405", f"{st} {body}")
    st, h, _ = http_call(port, "POST", "/ui/api/logout")
    check(st == 200 and "Max-Age=0" in h.get("set-cookie", ""),
          "logout needs no credential and clears the cookie", f"{st} {h}")
    st, _, _ = http_call(port, "GET", "/ui/api/sandboxes")
    check(st == 401, "the API without a credential: 401", str(st))
    for method, path, want in (("GET", "/login", 405), ("POST", "/sandboxes", 405),
                               ("GET", "/nope", 404), ("GET", "/sandboxes/a/b", 404),
                               ("GET", f"/kernels/{kid}/interrupt", 405)):
        st, _, body = api(port, method, path, token=alice)
        check(st == want and isinstance(body, dict) and "message" in body,
              f"{method} /ui/api{path}: a JSON {want}", f"{st} {body}")
    st, _, _ = http_call(port, "GET", "/api/kernels")
    check(st == 401, "the public / does not open /api", str(st))
    forged = "cellblock_login=v1.a.9999999999.admin." + "0" * 64
    st, _, _ = api(port, "GET", "/sandboxes", cookie=forged)
    check(st == 401, "the API with a forged cookie: 401", str(st))
    st, h, body = api(port, "GET", "/sandboxes", token=alice)
    check(st == 200 and h.get("cache-control") == "no-store" and
          h.get("content-security-policy") == CSP, "the API's answers: no-store, the CSP", str(h))
    check(any(s["id"] == sid for s in body.get("sandboxes", [])), "alice's sandbox is listed for alice",
          json.dumps(body)[:300])
    st, h, body = api(port, "POST", "/login", token=alice)
    cookie = cookie_of(h)
    check(st == 200 and body.get("tenant") == "alice" and cookie and
          "HttpOnly" in h.get("set-cookie", ""), "login as alice: a HttpOnly cookie", f"{st} {h} {body}")
    st, _, body = api(port, "GET", "/me", cookie=cookie)
    check(st == 200 and body.get("tenant") == "alice", "the cookie alone acts for alice", f"{st} {body}")
    name, value = cookie.split("=", 1)
    tampered = name + "=" + value.replace(".alice.", ".bob..")[:len(value)]
    st, _, _ = api(port, "GET", "/me", cookie=tampered)
    check(st == 401, "a tampered cookie: 401", str(st))
    st, _, body = api(port, "GET", "/sandboxes", token=bob)
    check(st == 200 and all(s["id"] != sid for s in body.get("sandboxes", [])),
          "bob's list does not show alice's sandbox", json.dumps(body)[:300])
    st1, _, b1 = api(port, "GET", "/sandboxes/" + sid, token=bob)
    st2, _, b2 = api(port, "GET", "/sandboxes/" + uuid.uuid4().hex, token=bob)
    check(st1 == 404 and (st1, b1) == (st2, b2), "bob: alice's sandbox answered as an unknown id",
          f"{st1} {b1} / {st2} {b2}")
    st1, _, b1 = api(port, "POST", f"/kernels/{kid}/interrupt", token=bob)
    st2, _, b2 = api(port, "POST", f"/kernels/{uuid.uuid4()}/interrupt", token=bob)
    check(st1 == 404 and (st1, b1) == (st2, b2), "bob: alice's kernel answered as an unknown id",
          f"{st1} {b1} / {st2} {b2}")


def login(b, token):
    b.js("document.getElementById('token').value = %s;"
         "document.getElementById('login-form').requestSubmit(); true" % json.dumps(token))


def in_browser(srv, alice, bob, sid, kid):
    b = Browser()
    try:
        b.send("Page.navigate", {"url": srv.url + "/"})
        check(b.wait("!document.getElementById('login').hidden"), "the browser shows the login form",
              b.tail())
        login(b, alice)
        row = f"document.querySelector('tr[data-sandbox=\"{sid}\"]') !== null"
        check(b.wait(row), "logged in, the browser lists the sandbox created over MCP",
              str(b.js("document.body.innerText")))
        check(b.js("localStorage.length === 0 && sessionStorage.length === 0"),
              "the page stored nothing (no token in storage)")
        b.js(f"location.hash = '#/sandbox/{sid}'; true")
        check(b.wait(f"document.body.dataset.watching === '{kid}'"),
              "the sandbox's page watches its kernel", str(b.js("document.body.innerText")))

        done = {}

        def run():
            try:
                done["result"] = mcp.call("code_execute", {"sandbox_id": sid, "code": CELL})
            except Exception as e:  # an interrupted cell is an error result
                done["error"] = str(e)

        mcp = Mcp(srv.port, alice)
        t = threading.Thread(target=run, daemon=True)
        t.start()
        out = "document.getElementById('d-output').textContent"
        seen = b.wait(f"{out}.includes('tick 3')")
        check(seen and t.is_alive() and not done, "output lines appear while the cell still runs",
              str(b.js(out))[-300:])
        check(b.js(f"{out}.includes('<img src=x onerror')") and
              b.js("document.querySelector('#d-output img') === null && window.__pwned === undefined"),
              "printed markup stays text: no <img>, its onerror never ran")
        b.js(f"document.querySelector('li[data-kernel=\"{kid}\"] button.interrupt').click(); true")
        check(b.wait(f"{out}.includes('KeyboardInterrupt')"), "Interrupt ends the cell with "
              "KeyboardInterrupt, seen live", str(b.js(out))[-300:])
        t.join(DEADLINE_S)
        check(not t.is_alive() and "KeyboardInterrupt" in json.dumps(done),
              "the MCP call ends with KeyboardInterrupt too", json.dumps(done)[:300])

        b.js("document.getElementById('logout').click(); true")
        check(b.wait("!document.getElementById('login').hidden"), "Log out shows the form again")
        login(b, bob)
        check(b.wait("document.getElementById('who').textContent.startsWith('bob')"),
              "logged in as bob", str(b.js("document.body.innerText")))
        b.js("location.hash = '#/'; true")
        check(b.wait("!document.getElementById('list').hidden && "
                     "document.getElementById('count').textContent !== ''"),
              "bob's list is shown")
        check(b.js(f"document.querySelector('tr[data-sandbox=\"{sid}\"]') === null"),
              "bob's list does not show alice's sandbox")
        b.js(f"location.hash = '#/sandbox/{sid}'; true")
        check(b.wait("!document.getElementById('d-missing').hidden && "
                     "document.getElementById('d-missing').textContent === 'Not found.'"),
              "bob's browser: alice's sandbox is Not found.",
              str(b.js("document.body.innerText")))
    finally:
        b.close()


def main():
    if not NO_BROWSER and not shutil.which("chromium"):
        print("SKIP: chromium is not installed (scripts/install-deps.sh --test)")
        return 77
    tokens = {"alice": "alice-" + uuid.uuid4().hex, "bob": "bob-" + uuid.uuid4().hex}
    with start_server(tokens) as srv:
        alice, bob = tokens["alice"], tokens["bob"]
        check("page: " + srv.url + "/" in srv.text(), "the start banner names the page")
        sid = Mcp(srv.port, alice).call("sandbox_create", {})["sandbox_id"]
        st, _, body = api(srv.port, "GET", "/sandboxes/" + sid, token=alice)
        kernels = body.get("kernels", []) if st == 200 else []
        if not check(st == 200 and kernels, "alice's MCP sandbox is hers on the page, with its "
                     "kernel", f"{st} {body}"):
            return finish()
        kid = kernels[0]["id"]
        plain_http(srv, alice, bob, sid, kid)
        if not NO_BROWSER:
            in_browser(srv, alice, bob, sid, kid)
    return finish()


if __name__ == "__main__":
    sys.exit(main())
