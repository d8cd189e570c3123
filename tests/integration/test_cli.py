#!/usr/bin/env python3
"""test_cli.py: the cellblock CLI end to end with a real ipykernel.

`cellblock run`: exit 0 when the code ran cleanly, 1 when it raised or timed out, 2 on a usage
error; streams printed; images written to --outputs DIR; --stdin answers input().
`cellblock kernels`: lists the project's python3 kernelspec, and says which kernels cannot run
here and which package they need; a kernel whose requirement is missing is refused by name.
`cellblock run FILE` picks the kernel from FILE's extension.

usage: test_cli.py PATH_TO_CELLBLOCK
"""
import os
import subprocess
import sys
import tempfile

from checks import check, finish

CELLBLOCK = sys.argv[1] if len(sys.argv) > 1 else "build/bin/cellblock"
DEADLINE_S = 120


def cellblock(*args, stdin=None, env=None):
    return subprocess.run([CELLBLOCK, *args], input=stdin, capture_output=True, text=True,
                          timeout=DEADLINE_S, env=None if env is None else {**os.environ, **env})


def requirements(tmp):
    """A kernelspec whose toolchain is missing, and one whose language has nothing else."""
    specs = os.path.join(tmp, "jupyter")
    for name, language in (("needs-missing", "python"), ("cobol-ish", "fortran")):
        os.makedirs(os.path.join(specs, "kernels", name))
        with open(os.path.join(specs, "kernels", name, "kernel.json"), "w") as f:
            f.write('{"argv": ["/nonexistent/cellblock-test/tool", "{connection_file}"], '
                    '"display_name": "Needs", "language": "%s", "metadata": {"cellblock": '
                    '{"requires": [{"path": "/nonexistent/cellblock-test/tool", '
                    '"package": "cellblock-test-pkg"}]}}}' % language)
    env = {"JUPYTER_PATH": specs}
    listed = cellblock("kernels", env=env)
    row = next((line for line in listed.stdout.splitlines() if line.startswith("needs-missing ")), "")
    check(listed.returncode == 0 and "unavailable: needs cellblock-test-pkg" in row,
          "kernels says a kernel whose requirement is missing is unavailable, naming the package",
          repr(listed.stdout))
    check("python3 " in listed.stdout and "available" in listed.stdout.split("python3 ", 1)[1].split("\n")[0],
          "and python3 stays available", repr(listed.stdout))
    refused = cellblock("run", "--kernel", "needs-missing", "-", stdin="1\n", env=env)
    check(refused.returncode == 1 and "the needs-missing kernel needs /nonexistent/cellblock-test/tool "
          "from the Debian package cellblock-test-pkg" in refused.stderr,
          "starting it is refused with the path and the package", refused.stderr.strip()[-300:])
    # A .py file still goes to python3, not to the unavailable spec that also says python.
    code = os.path.join(tmp, "hello.py")
    with open(code, "w") as f:
        f.write("print('py by extension')\n")
    py = cellblock("run", code, env=env)
    check(py.returncode == 0 and "py by extension" in py.stdout, "run FILE.py runs in python3",
          py.stderr.strip()[-300:])
    doctor = cellblock("doctor", env=env)
    check(any(line.split()[2:4] == ["python", "available"] for line in doctor.stdout.splitlines()
              if len(line.split()) > 3),
          "doctor has a line for python saying it is available", repr(doctor.stdout[-800:]))


def main():
    with tempfile.TemporaryDirectory(prefix="cb-cli-") as tmp:
        ok = cellblock("run", "-", stdin="import sys\nprint('to out')\nprint('to err', file=sys.stderr)\n6 * 7\n")
        check(ok.returncode == 0, "run exits 0 when the code succeeds", ok.stderr)
        check(ok.stdout == "to out\n42\n", "stdout and the result's text go to stdout", repr(ok.stdout))
        check("to err" in ok.stderr and "to err" not in ok.stdout, "stderr goes to stderr", repr(ok.stderr))

        raised = cellblock("run", "-", stdin="raise ValueError('bad input 17')\n")
        check(raised.returncode == 1, "run exits 1 when the code raises", str(raised.returncode))
        check("ValueError" in raised.stderr and "bad input 17" in raised.stderr,
              "the traceback is printed on stderr", repr(raised.stderr[-300:]))

        slow = cellblock("run", "--timeout", "1", "-", stdin="while True: pass\n")
        check(slow.returncode == 1 and "timed out" in slow.stderr, "run exits 1 on a timeout, saying so",
              repr(slow.stderr[-300:]))

        asked = cellblock("run", "--stdin", "ada", "-", stdin="print('hi', input('name? '))\n")
        check(asked.returncode == 0 and "hi ada" in asked.stdout, "--stdin answers input()", repr(asked.stdout))

        code = os.path.join(tmp, "plot.py")
        with open(code, "w") as f:
            f.write("import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.show()\n")
        outputs = os.path.join(tmp, "out")
        plot = cellblock("run", "--outputs", outputs, code)
        png = os.path.join(outputs, "output-1.png")
        check(plot.returncode == 0 and os.path.exists(png), "an image is written to --outputs DIR", plot.stderr)
        if os.path.exists(png):
            with open(png, "rb") as f:
                check(f.read(8) == b"\x89PNG\r\n\x1a\n", "the file is a PNG")
        check(png in plot.stdout, "and its path is printed", repr(plot.stdout))

        for args, what in ((("run",), "no FILE"), (("run", "--timeout", "soon", "-"), "a bad --timeout"),
                           (("run", "--kernel", "no-such-kernel", "-"), "an unknown kernel"),
                           (("run", os.path.join(tmp, "missing.py")), "a missing file"),
                           (("run", "--memory-mb", "lots", "-"), "a bad --memory-mb"),
                           (("run", "--cpus", "0", "-"), "a bad --cpus"),
                           (("frobnicate",), "an unknown command")):
            r = cellblock(*args, stdin="")
            check(r.returncode == 2 and r.stderr.strip() != "", f"{what} is a usage error (exit 2)",
                  f"{r.returncode}: {r.stderr.strip()[:200]}")

        # The sandbox flags reach the sandbox: the kernel sees its own workspace size, and an
        # allocation past --memory-mb is an OOM kill that run reports.
        sized = cellblock("run", "--workspace-mb", "64", "-",
                          stdin="import os, shutil; print(os.getuid(), shutil.disk_usage('/home/user').total >> 20)")
        check(sized.returncode == 0 and sized.stdout == "1000 64\n",
              "run executes as the sandbox user, in a workspace of --workspace-mb", repr(sized.stdout) + sized.stderr)
        oom = cellblock("run", "--memory-mb", "300", "-", stdin="b = b'x' * (2 * 1024**3)")
        check(oom.returncode == 1 and "out of memory" in oom.stderr,
              "an allocation past --memory-mb is reported as out of memory (exit 1)",
              f"{oom.returncode}: {oom.stderr.strip()[-300:]}")

        requirements(tmp)

        kernels = cellblock("kernels")
        rows = [line.split() for line in kernels.stdout.splitlines()[1:]]
        check(kernels.returncode == 0 and any(r[:2] == ["python3", "python"] for r in rows),
              "kernels lists python3 with its language", repr(kernels.stdout))

    return finish()


if __name__ == "__main__":
    sys.exit(main())
