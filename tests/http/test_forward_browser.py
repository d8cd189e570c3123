"""test_forward_browser.py: a real browser through a port forward. Headless Chromium (Debian's)
opens a page served by a Python web app inside a sandbox through its signed link, by path and
by host ({port}-{id}.localhost, which Chromium resolves to loopback itself); the page's script
opens a WebSocket back through the same forward (the link's cookie goes with it) and writes the
echo into the DOM, which --dump-dom returns. Chromium is kept to loopback: every other
destination goes to a proxy address where nothing listens, and background networking is off.

    /usr/bin/python3 tests/http/test_forward_browser.py PATH/TO/cellblock
Exits 77 (SKIP) without chromium.
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from checks import check, finish  # noqa: E402
from fwd_lib import Mcp, app_code  # noqa: E402
from serve import Serve, http_call  # noqa: E402

BIN = sys.argv[1]
APP_PORT = 8000
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-domain-reliability", "--disable-breakpad",
    # loopback (and *.localhost) bypasses a proxy; anything else would go to this dead port
    "--proxy-server=http://127.0.0.1:9",
]
DEADLINE_S = 45


def browse(url, seen_fn, want):
    """Chromium opens url; wait (deadline) until the app has seen the page report `want`."""
    profile = tempfile.mkdtemp(prefix="cb-chromium-")
    log = open(os.path.join(profile, "chromium.log"), "wb")
    proc = subprocess.Popen(["chromium", *CHROMIUM_FLAGS, "--user-data-dir=" + profile, url],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                            env=dict(os.environ, HOME=profile), start_new_session=True)
    try:
        end = time.monotonic() + DEADLINE_S
        while time.monotonic() < end:
            if any(want in r["path"] for r in seen_fn()):
                return True, ""
            if proc.poll() is not None:
                break
            time.sleep(0.2)  # polling the app's record, bounded by the deadline
        return False, open(log.name, "rb").read().decode(errors="replace")[-800:]
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        log.close()
        shutil.rmtree(profile, ignore_errors=True)


def main():
    if not shutil.which("chromium"):
        print("SKIP: chromium is not installed (scripts/install-deps.sh --test)")
        return 77
    with Serve(BIN) as srv:
        mcp = Mcp(srv.port, srv.token)
        sid = mcp.call("sandbox_create", {})["sandbox_id"]
        mcp.call("code_execute", {"sandbox_id": sid, "code": app_code(APP_PORT)})
        exp = mcp.call("sandbox_expose_port", {"sandbox_id": sid, "port": APP_PORT})
        base = f"/sandboxes/{sid}/ports/{APP_PORT}"

        def seen():
            st, _, body = http_call(srv.port, "GET", base + "/seen", srv.token)
            return body if st == 200 and isinstance(body, list) else []

        for form, key in (("path", "signed_url"), ("host", "signed_host_url")):
            url = exp[key].replace("/?cb_sig=", "/page?cb_sig=")
            want = f"result?got=echo%3Afrom-browser-{form}"
            ok, log = browse(url + "&form=" + form, seen, want)
            check(ok, f"{form} form: Chromium loads the page by its signed link and the page's "
                  "WebSocket echo comes back",
                  log + "\nthe app saw: " + " ".join(r["path"] for r in seen()))
    return finish()


if __name__ == "__main__":
    sys.exit(main())
