"""test_serve.py: `cellblock serve` as a person starts it: the banner, the token (generated or
from CELLBLOCK_TOKEN), --no-auth only on loopback, bad settings refused, a tokens file (--tokens,
CELLBLOCK_TOKENS_FILE) refused at start when others may read it, when it is a symlink or has a
malformed line, and used when it is good, and a clean SIGTERM that leaves no sandbox process
behind.

    /usr/bin/python3 tests/http/test_serve.py PATH/TO/cellblock
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from checks import check, finish  # noqa: E402
from serve import Serve  # noqa: E402

BIN = sys.argv[1]


def refused(args, env_extra, what, expect):
    """The command must exit non-zero at once, saying expect on stderr."""
    env = dict(os.environ)
    env.pop("CELLBLOCK_TOKEN", None)
    env.update(env_extra)
    try:
        p = subprocess.run([BIN, "serve", *args], env=env, stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return check(False, what, "still running after 30 s")
    check(p.returncode != 0 and expect in p.stderr, what, f"rc {p.returncode}, stderr {p.stderr!r}")


def descendants(root):
    """Every process below root, from /proc's parent links."""
    parent = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    parent[int(d)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    found, todo = [], [root]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parent.items() if pp == p]
        found += kids
        todo += kids
    return found


def pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def main():
    refused(["--no-auth", "--listen", "0.0.0.0:0"], {}, "--no-auth is refused on a non-loopback address",
            "loopback")
    refused(["--listen", "127.0.0.1:0"], {"CELLBLOCK_TOKEN": "short"}, "a token under 16 characters is refused",
            "CELLBLOCK_TOKEN")
    refused(["--listen", "nonsense"], {}, "a malformed --listen is refused", "nonsense")
    refused(["extra"], {}, "a stray argument is a usage error", "takes no arguments")

    tokens_file()

    # A generated token: printed once, required, and working.
    srv = Serve(BIN, token="")
    try:
        banner = srv.stderr_text()
        m = re.search(r"token: (\S+)", banner)
        check(m is not None and len(m.group(1)) >= 32, "a token is generated and printed", banner)
        token = m.group(1) if m else ""
        check(f"{srv.url}/mcp" in banner, "the banner gives the MCP endpoint", banner)
        check(f"jupyter lab --gateway-url={srv.url} --GatewayClient.auth_token={token}" in banner,
              "the banner gives the JupyterLab command with the token", banner)
        status, _, _ = srv.request("GET", "/api", auth=False)
        check(status == 401, "without the token: 401", f"got {status}")
        status, _, body = srv.request("GET", "/api", headers={"Authorization": f"Bearer {token}"}, auth=False)
        check(status == 200 and isinstance(body, dict), "with the printed token: 200", f"got {status} {body!r}")
        status, _, _ = srv.request("GET", "/api", headers={"Authorization": f"Bearer {token}x"}, auth=False)
        check(status == 401, "a token with one character more: 401", f"got {status}")
        # A kernel, so SIGTERM has something to clean up.
        status, _, model = srv.request("POST", "/api/kernels", body={},
                                       headers={"Authorization": f"token {token}"}, auth=False)
        check(status == 201, "a kernel is created", f"got {status} {model!r}")
        deadline = time.monotonic() + 60
        state = None
        while status == 201 and time.monotonic() < deadline:
            _, _, m2 = srv.request("GET", f"/api/kernels/{model['id']}",
                                   headers={"Authorization": f"token {token}"}, auth=False)
            state = m2.get("execution_state") if isinstance(m2, dict) else None
            if state in ("idle", "busy", "dead"):
                break
            time.sleep(0.1)  # polling the model for a state, with the deadline above
        check(state == "idle", "the kernel becomes idle", f"state {state}")
        others = descendants(srv.proc.pid)
        check(len(others) > 0, "the kernel's sandbox runs below the server", f"{others}")
        rc = srv.close()
        check(rc == 0, "SIGTERM stops the server with status 0", f"rc {rc}")
        deadline = time.monotonic() + 10
        while any(pid_alive(p) for p in others) and time.monotonic() < deadline:
            time.sleep(0.05)  # polling for exits of processes that are not our children
        check(not any(pid_alive(p) for p in others), "no sandbox process outlives the server",
              f"alive: {[p for p in others if pid_alive(p)]}")
    finally:
        srv.close()
        if finish_failed():
            srv.dump()

    # --no-auth on loopback: no token needed, and the banner says so.
    with Serve(BIN, args=["--no-auth"], token="") as srv:
        status, _, _ = srv.request("GET", "/api", auth=False)
        check(status == 200, "--no-auth on loopback serves without a token", f"got {status}")
        check("no token" in srv.stderr_text(), "the banner says there is no token", srv.stderr_text())
        status, _, _ = srv.request("GET", "/api", auth=False, headers={"Origin": "http://evil.example"})
        check(status == 403, "--no-auth still refuses a foreign Origin", f"got {status}")
    return finish()


def tokens_file():
    """docs/security.md, "Tenants": the tokens file's rules at start, then its tokens at work."""
    d = tempfile.mkdtemp(prefix="cb-tokens-")
    try:
        alice = "alice-" + os.urandom(12).hex()

        def write(name, text, mode):
            path = os.path.join(d, name)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.write(fd, text.encode())
            os.close(fd)
            os.chmod(path, mode)
            return path

        loose = write("loose", f"alice {alice}\n", 0o644)
        refused(["--listen", "127.0.0.1:0", "--tokens", loose], {},
                "a tokens file with mode 0644 is refused at start, with the reason",
                f"tokens file '{loose}' has mode 0644: group or others may read or write it")
        refused(["--listen", "127.0.0.1:0"], {"CELLBLOCK_TOKENS_FILE": loose},
                "… also through CELLBLOCK_TOKENS_FILE", "has mode 0644")
        good = write("good", f"# a comment\nalice {alice}\n", 0o600)
        link = os.path.join(d, "link")
        os.symlink(good, link)
        refused(["--listen", "127.0.0.1:0", "--tokens", link], {}, "a symlink is refused",
                "is a symlink")
        bad = write("bad", f"alice {alice}\nbob\n", 0o600)
        refused(["--listen", "127.0.0.1:0", "--tokens", bad], {},
                "a malformed line is refused, naming file:line", f"{bad}:2: expected")
        with Serve(BIN, args=["--tokens", good]) as srv:
            check("tenants: 1 token from " + good in srv.stderr_text(),
                  "the banner says how many tenants' tokens it read", srv.stderr_text())
            status, _, _ = srv.request("GET", "/api", auth=False,
                                       headers={"Authorization": f"Bearer {alice}"})
            check(status == 200, "a tenant's token is let in", f"got {status}")
            status, _, _ = srv.request("GET", "/api", auth=False,
                                       headers={"Authorization": f"Bearer {alice}x"})
            check(status == 401, "a tenant's token with one character more: 401", f"got {status}")
            status, _, _ = srv.request("GET", "/api")
            check(status == 200, "CELLBLOCK_TOKEN still works beside the file", f"got {status}")
    finally:
        shutil.rmtree(d, ignore_errors=True)


def finish_failed():
    from checks import failures
    return bool(failures)


if __name__ == "__main__":
    sys.exit(main())
