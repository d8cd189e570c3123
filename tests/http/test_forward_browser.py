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
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from checks import check, finish  # noqa: E402
from fwd_lib import Mcp, app_code  # noqa: E402
from serve import Serve  # noqa: E402

BIN = sys.argv[1]
APP_PORT = 8000
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-domain-reliability", "--disable-breakpad",
    # loopback (and *.localhost) bypasses a proxy; anything else would go to this dead port
    "--proxy-server=http://127.0.0.1:9",
    # the page's WebSocket answers within this much virtual time, or the DOM says "waiting"
    "--virtual-time-budget=10000",
]


def dump_dom(url):
    profile = tempfile.mkdtemp(prefix="cb-chromium-")
    try:
        r = subprocess.run(["chromium", *CHROMIUM_FLAGS, "--user-data-dir=" + profile,
                            "--dump-dom", url], capture_output=True, timeout=60,
                           env=dict(os.environ, HOME=profile))
        return r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")
    finally:
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
        for form, key in (("path", "signed_url"), ("host", "signed_host_url")):
            url = exp[key].replace("/?cb_sig=", "/page?cb_sig=")
            rc, dom, err = dump_dom(url)
            check(rc == 0 and '<div id="result">got echo:from-browser</div>' in dom,
                  f"{form} form: Chromium loads the page by its signed link and its WebSocket "
                  "echo comes back", f"rc {rc}\n{dom[:400]}\n{err[-600:]}")
    return finish()


if __name__ == "__main__":
    sys.exit(main())
