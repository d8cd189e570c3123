#!/usr/bin/env python3
"""test_deb.py: the Debian package installs, runs from its installed files alone, and purges clean.

Why: an installed cellblock must find its kernelspecs, templates and sandbox init under its own
prefix and nowhere else (cb/paths.h), its service must come up with the token the package made,
and a purge must leave nothing behind. None of that shows in a build tree.

How (as root, with apt-get; SKIP otherwise):
  1. cpack builds the .deb from this build tree (into a temporary directory);
  2. `apt-get install ./cellblock_*.deb`;
  3. in a private mount namespace where the source and build trees are hidden under an empty
     tmpfs, from a bare environment: `cellblock doctor`, `cellblock run --template python-data`
     on a cell that plots (a PNG must come out), and the service: with systemctl when systemd is
     PID 1; otherwise the unit's own ExecStart line, read from the installed unit file with its
     Environment= and EnvironmentFile= (said so in the output); then GET /api/kernelspecs with
     the token from /etc/cellblock/cellblock.env;
  4. `apt-get purge`, then: no file of the package's list, no /etc/cellblock, /var/lib/cellblock
     or /run/cellblock, no unit, no enablement link or deb-systemd-helper record is left.
A cellblock package installed before the test started is never touched: the test skips.

usage: test_deb.py BUILD_DIR SOURCE_DIR
"""
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

SKIP = 77
UNIT = "/usr/lib/systemd/system/cellblock.service"
ENV_FILE = "/etc/cellblock/cellblock.env"
# Everything the package or its scripts may create outside its file list.
LEFTOVERS = [
    "/etc/cellblock",
    "/var/lib/cellblock",
    "/run/cellblock",
    UNIT,
    "/lib/systemd/system/cellblock.service",
    "/etc/systemd/system/cellblock.service",
    "/etc/systemd/system/multi-user.target.wants/cellblock.service",
    "/var/lib/systemd/deb-systemd-helper-enabled/cellblock.service.dsh-also",
    "/var/lib/systemd/deb-systemd-helper-enabled/multi-user.target.wants/cellblock.service",
    "/var/lib/systemd/deb-systemd-helper-masked/cellblock.service",
]

failures = 0


START = time.monotonic()


def ok(cond, what, detail=""):
    global failures
    print(("ok - " if cond else "FAIL - ") + what + " [%.0f s]" % (time.monotonic() - START))
    if not cond:
        failures += 1
        if detail:
            for line in str(detail).rstrip().splitlines()[-40:]:
                print("#   " + line)
    sys.stdout.flush()
    return cond


def run(argv, timeout=300, **kw):
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=timeout, **kw)


def package_installed():
    r = run(["dpkg-query", "-W", "-f=${Status}", "cellblock"])
    return r.returncode == 0 and "installed" in r.stdout and "not-installed" not in r.stdout


def bare_env(extra=None):
    """A service-like environment: no HOME, no CELLBLOCK_*, no JUPYTER_PATH from the caller."""
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
    env.update(extra or {})
    return env


def hidden(argv, trees):
    """argv run in a private mount namespace where every directory of trees is an empty tmpfs,
    so nothing in the source or build tree can be found, by any path."""
    script = 'for d in "$@"; do [ "$d" = -- ] && break; mount -t tmpfs -o ro cb-hidden "$d" || exit 125; done\n' \
             'while [ "$1" != -- ]; do shift; done; shift; exec "$@"'
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
            *trees, "--", *argv]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_env_file(path):
    env = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#") or "=" not in line:
                continue
            k, v = line.split("=", 1)
            env[k.strip()] = v.strip().strip('"')
    return env


def set_env_value(path, key, value):
    with open(path) as f:
        lines = [l for l in f.read().splitlines() if not l.startswith(key + "=")]
    lines.append(f"{key}={value}")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def unit_command(unit_path):
    """The unit's ExecStart, with its Environment= and EnvironmentFile= applied as systemd does
    (the file's values win), and ${VAR} / $VAR expanded. Returns (argv, env)."""
    env, files, exec_start = {}, [], None
    with open(unit_path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("Environment="):
                for item in line[len("Environment="):].split():
                    k, v = item.split("=", 1)
                    env[k] = v
            elif line.startswith("EnvironmentFile="):
                files.append(line[len("EnvironmentFile="):].lstrip("-"))
            elif line.startswith("ExecStart="):
                exec_start = line[len("ExecStart="):]
    for path in files:
        env.update(read_env_file(path))
    expand = lambda w: re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: env.get(m.group(1) or m.group(2), ""), w)
    return [expand(w) for w in exec_start.split()], env


def wait_http(url, token, deadline):
    last = None
    while time.monotonic() < deadline:
        try:
            req = urllib.request.Request(url, headers={"Authorization": "token " + token})
            with urllib.request.urlopen(req, timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(errors="replace")
        except OSError as e:
            last = e
            time.sleep(0.3)
    return None, str(last)


def check_installed(trees, work):
    # doctor: the init and the data directory are the installed ones, and a sandbox runs.
    r = run(hidden(["/usr/bin/cellblock", "doctor"], trees), env=bare_env(), timeout=120)
    ok(r.returncode == 0, "cellblock doctor exits 0 from the installed files", r.stdout)
    ok("init: /usr/libexec/cellblock/cellblock-init\n" in r.stdout,
       "doctor's init is /usr/libexec/cellblock/cellblock-init", r.stdout)
    ok("data: /usr/share/cellblock\n" in r.stdout, "doctor's data dir is /usr/share/cellblock",
       r.stdout)

    r = run(hidden(["/usr/bin/cellblock", "kernels"], trees), env=bare_env())
    ok(r.returncode == 0 and "/usr/share/cellblock/kernels/python3" in r.stdout,
       "cellblock kernels finds the installed python3 kernelspec", r.stdout)

    # A cell that makes a PNG, in the python-data template (numpy, pandas, matplotlib).
    outputs = os.path.join(work, "out")
    cell = os.path.join(work, "plot.py")
    with open(cell, "w") as f:
        f.write("plt.plot(np.arange(10), np.arange(10) ** 2)\nplt.show()\nprint('plotted')\n")
    r = run(hidden(["/usr/bin/cellblock", "run", "--template", "python-data", "--timeout", "90",
                    "--outputs", outputs, cell], trees), env=bare_env(), timeout=150)
    pngs = sorted(p for p in os.listdir(outputs) if p.endswith(".png")) if os.path.isdir(outputs) else []
    ok(r.returncode == 0 and "plotted" in r.stdout, "cellblock run --template python-data runs the cell",
       r.stdout)
    magic = b""
    if pngs:
        with open(os.path.join(outputs, pngs[0]), "rb") as f:
            magic = f.read(8)
    ok(magic == b"\x89PNG\r\n\x1a\n", f"the cell's chart is a PNG ({pngs})", r.stdout)


def check_service(trees):
    port = free_port()
    # The listen address is a setting of the environment file; a free port keeps the test off
    # any server already on 8888.
    set_env_value(ENV_FILE, "CELLBLOCK_LISTEN", f"127.0.0.1:{port}")
    st = os.stat(ENV_FILE)
    ok(st.st_uid == 0 and (st.st_mode & 0o777) == 0o600, f"{ENV_FILE} is root's, mode 0600",
       oct(st.st_mode))
    token = read_env_file(ENV_FILE).get("CELLBLOCK_TOKEN", "")
    ok(len(token) >= 32, "postinst put a token in the environment file")

    systemd = os.path.isdir("/run/systemd/system") and shutil.which("systemctl")
    proc = None
    if systemd:
        print("# systemd is running: starting cellblock.service with systemctl")
        r = run(["systemctl", "restart", "cellblock.service"])
        ok(r.returncode == 0, "systemctl restart cellblock.service", r.stdout)
    else:
        argv, env = unit_command(UNIT)
        print("# systemd is not PID 1 here (no /run/systemd/system): running the unit's ExecStart "
              "with its Environment= and EnvironmentFile= instead:")
        print("#   " + " ".join(argv))
        ok(argv[:2] == ["/usr/bin/cellblock", "serve"] and f"127.0.0.1:{port}" in argv,
           "the unit runs /usr/bin/cellblock serve on the environment file's address", argv)
        log = tempfile.TemporaryFile(mode="w+")
        proc = subprocess.Popen(hidden(argv, trees), env=bare_env(env), stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        code, body = wait_http(f"http://127.0.0.1:{port}/api/kernelspecs", token,
                               time.monotonic() + 60)
        specs = {}
        try:
            specs = json.loads(body).get("kernelspecs", {}) if code == 200 else {}
        except ValueError:
            pass
        detail = body
        if proc and code != 200:
            log.seek(0)
            detail += "\n" + log.read()
        ok(code == 200 and "python3" in specs,
           "the service answers GET /api/kernelspecs with the installed python3", detail)
        code, _ = wait_http(f"http://127.0.0.1:{port}/api/kernelspecs", "wrong-token-0123456789",
                            time.monotonic() + 10)
        ok(code in (401, 403), f"a wrong token is refused ({code})")
    finally:
        if systemd:
            run(["systemctl", "stop", "cellblock.service"])
        elif proc:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            ok(proc.returncode == 0, f"the service stops cleanly on SIGTERM ({proc.returncode})")


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    build, source = (os.path.realpath(p) for p in sys.argv[1:3])
    if os.geteuid() != 0:
        print("SKIP: installing a package needs root")
        return SKIP
    for tool in ("apt-get", "dpkg-query", "cpack", "unshare"):
        if not shutil.which(tool):
            print(f"SKIP: {tool} is not on PATH")
            return SKIP
    # One package test at a time on this machine (another tree may run its own).
    lock = open("/run/lock/cellblock-package-test.lock", "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    if package_installed():
        print("SKIP: a cellblock package is already installed here; the test installs and purges "
              "its own and will not touch that one")
        return SKIP

    # The trees to hide; one inside another is hidden with it (and its mount point with it).
    trees = [t for t in {source, build}
             if not any(t != o and t.startswith(o + "/") for o in {source, build})]
    with tempfile.TemporaryDirectory(prefix="cb-package-") as work:
        os.chmod(work, 0o755)
        r = run(["cpack", "--config", os.path.join(build, "CPackConfig.cmake"), "-G", "DEB",
                 "-B", work], cwd=build, timeout=600)
        debs = [f for f in os.listdir(work) if re.fullmatch(r"cellblock_.*\.deb", f)]
        if not ok(r.returncode == 0 and len(debs) == 1, "cpack builds cellblock_*.deb", r.stdout):
            return 1
        deb = os.path.join(work, debs[0])
        r = run(["dpkg-deb", "-f", deb, "Depends"])
        print("# Depends: " + r.stdout.strip())
        # libzmq5 comes with libczmq4: the binary itself calls czmq only (dpkg-shlibdeps lists
        # what it links, and the linker keeps only libraries whose symbols it uses).
        ok(all(p in r.stdout for p in ("libczmq4", "libjansson4", "libssl3", "libseccomp2",
                                        "libwebsockets17", "python3-ipykernel", "python3-matplotlib")),
           "the package depends on its libraries and the kernels' python packages", r.stdout)

        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        r = run(["apt-get", "install", "-y", "-q", deb], env=env, timeout=600)
        installed = r.returncode == 0 and package_installed()
        files = []
        try:
            if not ok(installed, "apt-get install ./" + debs[0], r.stdout):
                return 1
            files = run(["dpkg-query", "-L", "cellblock"]).stdout.split()
            check_installed(trees, work)
            check_service(trees)
        finally:
            r = run(["apt-get", "purge", "-y", "-q", "cellblock"], env=env, timeout=300)
            ok(r.returncode == 0 and not package_installed(), "apt-get purge cellblock", r.stdout)
            left = [f for f in files if os.path.isfile(f) or os.path.islink(f)]
            left += [f for f in files if f.startswith(("/usr/share/cellblock", "/usr/libexec/cellblock",
                                                       "/usr/share/doc/cellblock")) and os.path.exists(f)]
            left += [p for p in LEFTOVERS if os.path.lexists(p)]
            ok(not left, "the purge left nothing behind", "\n".join(sorted(set(left))))
    print("# %s" % ("all passed" if failures == 0 else f"{failures} failed"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
