#!/usr/bin/python3
"""test_console.py: `cellblock kernel` end to end with the real jupyter console.

    /usr/bin/python3 test_console.py PATH/TO/cellblock

1. `cellblock kernel --run "x = 21" --connection-file DIR/attach.json` prints the file's path.
2. `jupyter console --existing FILE --simple-prompt` runs print(x * 2) and shows 42; it leaves
   on end of input (Ctrl-D), which keeps an --existing kernel alive.
3. A BlockingKernelClient on the same file sees the same live state (x == 21) and learns the
   kernel's pid.
4. SIGTERM: cellblock exits 0, the copied connection file is gone and so is the kernel process.

Every wait is on an event with a deadline; nothing sleeps on hope.
"""
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import unittest

from jupyter_client import BlockingKernelClient

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checks import read_line  # noqa: E402

CONSOLE = "/usr/bin/jupyter-console"
START_DEADLINE_S = 90.0
DEADLINE_S = 30.0


def run_code(kc, code):
    """Execute code; return (reply content, stdout) once iopub said idle for it."""
    end = time.monotonic() + DEADLINE_S
    msg_id = kc.execute(code)
    reply = None
    while reply is None:
        msg = kc.get_shell_msg(timeout=max(0.01, end - time.monotonic()))
        if msg["parent_header"].get("msg_id") == msg_id:
            reply = msg["content"]
    out = []
    while True:
        msg = kc.get_iopub_msg(timeout=max(0.01, end - time.monotonic()))
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "stream" and msg["content"]["name"] == "stdout":
            out.append(msg["content"]["text"])
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return reply, "".join(out)


def host_pid_with_arg(arg):
    """The pid of the host process whose argv holds arg exactly, or None."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if arg.encode() in argv:
            return int(entry)
    return None


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class ConsoleTest(unittest.TestCase):
    cellblock = None

    def setUp(self):
        if not os.access(CONSOLE, os.X_OK):
            self.skipTest(f"{CONSOLE} not installed")
        self.tmp = tempfile.mkdtemp(prefix="cb-console-")
        self.conn = os.path.join(self.tmp, "attach.json")
        self.proc = subprocess.Popen(
            [self.cellblock, "kernel", "--run", "x = 21", "--connection-file", self.conn],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)  # stderr: into the test log
        self.kernel_pid = None

    def tearDown(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=DEADLINE_S)
        self.proc.stdout.close()
        if self.kernel_pid and pid_alive(self.kernel_pid):
            os.kill(self.kernel_pid, signal.SIGKILL)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_console_and_client_share_live_kernel(self):
        line = read_line(self.proc.stdout, START_DEADLINE_S)
        self.assertIsNotNone(line, "cellblock kernel printed no path within the deadline "
                                   f"(exit code {self.proc.poll()})")
        self.assertEqual(line, self.conn + "\n", "the printed path is the --connection-file")
        mode = stat.S_IMODE(os.stat(self.conn).st_mode)
        self.assertEqual(mode, 0o600, f"connection file mode {mode:o}")
        with open(self.conn) as f:
            info = json.load(f)
        self.assertEqual(info["transport"], "tcp")
        self.assertEqual(info["ip"], "127.0.0.1")
        self.assertGreaterEqual(len(info["key"]), 32)

        # The real console; --simple-prompt reads plain lines, end of input leaves it.
        console = subprocess.run(
            [CONSOLE, "--existing", self.conn, "--simple-prompt"],
            input="print(x * 2)\n", capture_output=True, text=True, timeout=120)
        self.assertEqual(console.returncode, 0,
                         f"jupyter console failed:\n{console.stdout}\n{console.stderr}")
        self.assertRegex(console.stdout, r"In \[\d+\]: 42\n",
                         f"console output lacks 42:\n{console.stdout}\n{console.stderr}")
        self.assertIn("keeping kernel alive", console.stdout)

        # A second client on the same file sees the same live state.
        kc = BlockingKernelClient()
        kc.load_connection_file(self.conn)
        kc.start_channels()
        try:
            kc.wait_for_ready(timeout=DEADLINE_S)
            reply, out = run_code(kc, "print(x)")
            self.assertEqual((reply["status"], out), ("ok", "21\n"))
            # The kernel runs in a sandbox: its own pid is a small number there, so find it on
            # the host by the connection file path it was given (unique per kernel).
            reply, out = run_code(kc, "import os, sys; print(os.getuid(), sys.argv[-1])")
            self.assertEqual(reply["status"], "ok")
            uid, inside_conn = out.split()
            self.assertEqual(uid, "1000", "the kernel runs as the sandbox user")
            self.kernel_pid = host_pid_with_arg(inside_conn)
            self.assertIsNotNone(self.kernel_pid, f"no host process has {inside_conn} in its argv")
        finally:
            kc.stop_channels()
        self.assertTrue(pid_alive(self.kernel_pid), "the kernel runs while cellblock serves it")
        self.assertIsNone(self.proc.poll(), "cellblock still serving after the clients left")

        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=DEADLINE_S)
        except subprocess.TimeoutExpired:
            self.fail(f"cellblock did not exit within {DEADLINE_S} s of SIGTERM")
        self.assertEqual(rc, 0, "cellblock kernel exit code after SIGTERM")
        self.assertFalse(os.path.exists(self.conn), "the connection file is removed")

        # cellblock reaps its kernel before it exits, so the pid is free by now.
        self.assertFalse(pid_alive(self.kernel_pid), f"kernel pid {self.kernel_pid} still exists")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: test_console.py PATH/TO/cellblock", file=sys.stderr)
        sys.exit(2)
    ConsoleTest.cellblock = os.path.abspath(sys.argv[1])
    unittest.main(argv=sys.argv[:1], verbosity=2)
