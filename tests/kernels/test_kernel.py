"""test_kernel.py: cellblock-kernel (bash) on the host, driven by a real jupyter_client.

    test_kernel.py KERNEL_BINARY core|bash

core: the protocol side shared by every language: kernel_info, execution_count, status busy/idle,
      the queue and stop_on_error (aborted), interrupt and shutdown on control, a forged and a
      replayed message ignored, a 50 MB output with the kernel's memory bounded, ipc and tcp.
bash: the Bash driver: state across cells (variable, function, cd, export), a syntax error, the
      image helper, interrupts of `sleep 100` and of a busy loop with state kept, stdin through
      `read` and python's input() with and without allow_stdin, complete and is_complete, and
      Debian's jupyter_kernel_test against a temporary kernelspec.

Every wait has a deadline; a failure names what was expected and what came.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest

from jupyter_client import BlockingKernelClient
from jupyter_client.connect import write_connection_file
from jupyter_client.session import Session

BINARY = os.path.abspath(sys.argv[1])
GROUP = sys.argv[2]
FAILED = []


def check(cond, what, detail=""):
    print(("ok   " if cond else "FAIL ") + what + ("" if cond else f": {detail}"), flush=True)
    if not cond:
        FAILED.append(what)
    return cond


class Kernel:
    """A cellblock-kernel process and a BlockingKernelClient on it."""

    def __init__(self, transport="ipc", lang="bash", signed=True):
        self.dir = tempfile.mkdtemp(prefix="cb-kernel-test-")
        ip = os.path.join(self.dir, "k") if transport == "ipc" else "127.0.0.1"
        self.cf, _ = write_connection_file(os.path.join(self.dir, "conn.json"),
                                           transport=transport, ip=ip,
                                           key=os.urandom(16 if transport == "ipc" else 64).hex().encode()
                                           if signed else b"")  # tcp: a 128-char key
        self.proc = subprocess.Popen([BINARY, lang, "-f", self.cf])
        self.client = BlockingKernelClient()
        self.client.load_connection_file(self.cf)
        self.client.start_channels()
        self.client.wait_for_ready(timeout=30)
        self.stash = {"iopub": [], "shell": []}

    def close(self):
        self.client.stop_channels()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _next(self, kind, timeout):
        """The next message of kind ("iopub"/"shell"), from the stash first."""
        if self.stash[kind]:
            return self.stash[kind].pop(0)
        get = self.client.get_iopub_msg if kind == "iopub" else self.client.get_shell_msg
        try:
            return get(timeout=timeout)
        except Exception:
            return None

    def collect(self, msg_id, deadline=30.0, stdin_answer=None):
        """iopub messages of msg_id until its idle, then its reply; messages of other requests
        are kept for their own collect. stdin_answer: the line sent for each input_request."""
        c = self.client
        outs, end, other = [], time.monotonic() + deadline, []
        prompts = 0
        try:
            while time.monotonic() < end:
                if stdin_answer is not None:
                    try:
                        m = c.get_stdin_msg(timeout=0.01)
                        if m["msg_type"] == "input_request":
                            prompts += 1
                            c.input(stdin_answer)
                    except Exception:
                        pass
                m = self._next("iopub", 0.05)
                if m is None:
                    continue
                if m["parent_header"].get("msg_id") != msg_id:
                    other.append(m)
                    continue
                outs.append(m)
                if m["msg_type"] == "status" and m["content"]["execution_state"] == "idle":
                    reply = self.reply(msg_id, max(1.0, end - time.monotonic()))
                    return reply, outs, prompts
        finally:
            self.stash["iopub"][:0] = other
        raise TimeoutError(f"no idle for {msg_id} within {deadline}s: {[o['msg_type'] for o in outs]}")

    def reply(self, msg_id, deadline=30.0):
        end, other = time.monotonic() + deadline, []
        try:
            while time.monotonic() < end:
                r = self._next("shell", 0.1)
                if r is None:
                    continue
                if r["parent_header"].get("msg_id") == msg_id:
                    return r
                other.append(r)
        finally:
            self.stash["shell"][:0] = other
        raise TimeoutError(f"no reply to {msg_id}")

    def run(self, code, deadline=30.0, stdin_answer=None, **kw):
        msg_id = self.client.execute(code, **kw)
        reply, outs, prompts = self.collect(msg_id, deadline, stdin_answer)
        return reply["content"], outs, prompts

    def control(self, msg_type, content=None):
        msg = self.client.session.msg(msg_type, content or {})
        self.client.control_channel.send(msg)
        end = time.monotonic() + 10
        while time.monotonic() < end:
            try:
                r = self.client.get_control_msg(timeout=0.1)
            except Exception:
                continue
            if r["parent_header"].get("msg_id") == msg["header"]["msg_id"]:
                return r
        raise TimeoutError(f"no {msg_type} reply")

    def rss_kb(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0


def stdout_of(outs):
    return "".join(m["content"]["text"] for m in outs
                   if m["msg_type"] == "stream" and m["content"]["name"] == "stdout")


def stderr_of(outs):
    return "".join(m["content"]["text"] for m in outs
                   if m["msg_type"] == "stream" and m["content"]["name"] == "stderr")


def types_of(outs):
    return [m["msg_type"] for m in outs]


# ---- core ------------------------------------------------------------------------------------

def core_basics(k):
    info = k.client.kernel_info(reply=True, timeout=10)["content"]
    li = info.get("language_info", {})
    check(info.get("status") == "ok" and info.get("protocol_version") == "5.3"
          and info.get("implementation") == "cellblock" and info.get("help_links") == [],
          "kernel_info: status, protocol_version 5.3, implementation, help_links", info)
    check(li.get("name") == "bash" and li.get("file_extension") == ".sh"
          and li.get("version", "").startswith(("4", "5")), "kernel_info: language_info", li)
    check("banner" in info, "kernel_info: a banner", info)

    r1, outs, _ = k.run("echo one")
    check(types_of(outs) == ["status", "execute_input", "stream", "status"]
          and outs[0]["content"]["execution_state"] == "busy",
          "execute: busy, execute_input, stream, idle", types_of(outs))
    r2, _, _ = k.run("echo two")
    check(r2["execution_count"] == r1["execution_count"] + 1, "execution_count increments",
          (r1, r2))
    r3, outs3, _ = k.run("echo quiet", silent=True)
    r4, _, _ = k.run("echo three")
    check(r4["execution_count"] == r2["execution_count"] + 1
          and "execute_input" not in types_of(outs3),
          "silent: no execute_input, no new execution_count", (r3, r4, types_of(outs3)))
    check(r1.get("user_expressions") == {} and r1.get("status") == "ok",
          "execute_reply: ok with user_expressions {}", r1)

    c = k.client
    for msg_type, key, want in (("comm_info_request", "comms", {}),
                                ("history_request", "history", [])):
        msg = c.session.msg(msg_type, {"hist_access_type": "tail", "n": 10, "output": False,
                                       "raw": True} if "history" in msg_type else {})
        c.shell_channel.send(msg)
        rep = k.reply(msg["header"]["msg_id"], 10)["content"]
        check(rep.get(key) == want and rep.get("status") == "ok", f"{msg_type} answered", rep)


def core_queue(k):
    """stop_on_error: a request queued behind a cell that fails is aborted; and kernel_info is
    answered while a cell runs."""
    c = k.client
    first = c.execute("sleep 100")
    time.sleep(0.3)
    second = c.execute("echo second")
    t0 = time.monotonic()
    info = c.kernel_info(reply=True, timeout=5)
    check(info["content"].get("status") == "ok" and time.monotonic() - t0 < 5,
          "kernel_info answered while a cell runs", info["content"])
    k.control("interrupt_request")
    r1, _, _ = k.collect(first, 20)
    r2, outs2, _ = k.collect(second, 20)
    check(r1["content"]["status"] == "error", "the interrupted cell ends with an error",
          r1["content"])
    check(r2["content"]["status"] == "aborted" and "second" not in stdout_of(outs2),
          "stop_on_error: the queued execute is aborted", (r2["content"], stdout_of(outs2)))

    first = c.execute("sleep 100", stop_on_error=False)
    time.sleep(0.3)
    second = c.execute("echo second")
    k.control("interrupt_request")
    k.collect(first, 20)
    r2, outs2, _ = k.collect(second, 20)
    check(r2["content"]["status"] == "ok" and stdout_of(outs2) == "second\n",
          "stop_on_error false: the queued execute runs", (r2["content"], stdout_of(outs2)))


def core_bad_messages(k):
    c = k.client
    forged = Session(key=b"not-the-key", session=c.session.session, username="x")
    msg = forged.msg("kernel_info_request", {})
    forged.send(c.shell_channel.socket, msg)
    got = None
    end = time.monotonic() + 1.5
    while time.monotonic() < end:
        try:
            r = c.get_shell_msg(timeout=0.1)
        except Exception:
            continue
        if r["parent_header"].get("msg_id") == msg["header"]["msg_id"]:
            got = r
    check(got is None, "a message with a bad signature is not answered", got)

    # The same signed frames twice: only the first is answered (the replay guard).
    msg = c.session.msg("kernel_info_request", {})
    frames = c.session.serialize(msg)
    c.shell_channel.socket.send_multipart(frames)
    c.shell_channel.socket.send_multipart(frames)
    answers = 0
    end = time.monotonic() + 2
    while time.monotonic() < end:
        try:
            r = c.get_shell_msg(timeout=0.1)
        except Exception:
            continue
        if r["parent_header"].get("msg_id") == msg["header"]["msg_id"]:
            answers += 1
    check(answers == 1, "a replayed message is answered once", answers)

    # Garbage frames and a truncated message.
    c.shell_channel.socket.send_multipart([b"<IDS|MSG>", b"x" * 64, b"{", b"{}", b"{}", b"{}"])
    c.shell_channel.socket.send_multipart([b"nonsense"])
    r, outs, _ = k.run("echo alive")
    check(stdout_of(outs) == "alive\n", "the kernel keeps answering after bad messages",
          stdout_of(outs))


def core_huge_output(k):
    """50 MB of output flows through; the kernel's memory stays bounded."""
    c = k.client
    msg_id = c.execute("head -c 50000000 /dev/zero | tr '\\0' x; echo; echo end")
    total, peak, done = 0, 0, False
    end = time.monotonic() + 120
    while time.monotonic() < end and not done:
        try:
            m = c.get_iopub_msg(timeout=0.2)
        except Exception:
            m = None
        if k.proc.poll() is None:
            peak = max(peak, k.rss_kb())
        if not m or m["parent_header"].get("msg_id") != msg_id:
            continue
        if m["msg_type"] == "stream":
            total += len(m["content"]["text"])
            check_len = len(m["content"]["text"]) <= 64 * 1024 + 8
            if not check_len:
                check(False, "each stream message holds at most 64 KiB", len(m["content"]["text"]))
        if m["msg_type"] == "status" and m["content"]["execution_state"] == "idle":
            done = True
    check(done and total >= 50_000_000, "50 MB of output arrives whole", (done, total))
    check(peak < 300 * 1024, "the kernel's VmRSS stays under 300 MB during it", f"{peak} kB")


def core_shutdown(k):
    rep = k.control("shutdown_request", {"restart": False})
    check(rep["content"].get("status") == "ok", "shutdown_reply ok", rep["content"])
    try:
        rc = k.proc.wait(10)
    except subprocess.TimeoutExpired:
        rc = None
    check(rc == 0, "shutdown_request ends the process with status 0", rc)


def core_sigterm():
    k = Kernel("ipc", signed=False)  # an empty key: unsigned messages
    try:
        k.run("echo hi")
        k.proc.terminate()
        try:
            rc = k.proc.wait(10)
        except subprocess.TimeoutExpired:
            rc = None
        check(rc == 0, "unsigned (empty key) works; SIGTERM ends the kernel cleanly", rc)
    finally:
        k.close()


def core_sigint():
    k = Kernel("ipc")
    try:
        msg_id = k.client.execute("sleep 100")
        time.sleep(0.5)
        os.kill(k.proc.pid, 2)
        r, _, _ = k.collect(msg_id, 20)
        check(r["content"]["status"] == "error", "SIGINT to the kernel interrupts the cell",
              r["content"])
    finally:
        k.close()


def group_core():
    for transport in ("ipc", "tcp"):
        print(f"# transport {transport}")
        k = Kernel(transport)
        try:
            core_basics(k)
            core_queue(k)
            core_bad_messages(k)
            if transport == "ipc":
                core_huge_output(k)
            core_shutdown(k)
        finally:
            k.close()
    core_sigterm()
    core_sigint()


# ---- bash ------------------------------------------------------------------------------------

PNG_1x1 = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")


def bash_state(k):
    k.run("v=kept; f() { echo \"f says $1\"; }; cd /tmp; export CB_TEST_ENV=yes")
    r, outs, _ = k.run("echo $v; f hi; pwd; bash -c 'echo $CB_TEST_ENV'")
    check(stdout_of(outs) == "kept\nf says hi\n/tmp\nyes\n",
          "state persists: variable, function, cwd, environment", stdout_of(outs))
    k.run("declare -A m=([a]=1); declare -i n=41")
    r, outs, _ = k.run("echo ${m[a]} $((n + 1))")
    check(stdout_of(outs) == "1 42\n", "declare at a cell's top level stays global",
          stdout_of(outs))
    r, outs, _ = k.run("echo out; echo err >&2; false")
    check(r["status"] == "error" and r.get("ename") == "ExitCode" and r.get("evalue") == "exit status 1"
          and stdout_of(outs) == "out\n" and stderr_of(outs) == "err\n",
          "stdout and stderr streams; a failing last command makes the cell an ExitCode error", (r, outs))
    r, outs, _ = k.run("false; echo fine")
    check(r["status"] == "ok", "a failing command before the last is no error", r)
    r, outs, _ = k.run("echo 'é ü 日本'")
    check(stdout_of(outs) == "é ü 日本\n", "UTF-8 output", stdout_of(outs))
    r, outs, _ = k.run(r"printf 'a\"b\\c\t\x01\n'")
    check(stdout_of(outs) == 'a"b\\c\t\x01\n', "quotes, backslashes, controls in code",
          repr(stdout_of(outs)))


def bash_big_cell(k):
    code = "echo start\n# " + "a\"b\\c é " * 100000 + "\necho \"end\""
    t0 = time.monotonic()
    r, outs, _ = k.run(code, deadline=60)
    took = time.monotonic() - t0
    # The deadline guards against a hang; how long it took is reported, never judged (a busy
    # machine took 22 s where a quiet one takes 8).
    check(stdout_of(outs) == "start\nend\n",
          f"a 1 MB cell with quotes and backslashes runs ({took:.1f} s)", (stdout_of(outs), took))


def bash_errors(k):
    r, outs, _ = k.run("echo before\nif then")
    err = [m for m in outs if m["msg_type"] == "error"]
    check(r["status"] == "error" and r.get("ename") == "SyntaxError" and err
          and "before" not in stdout_of(outs),
          "a cell that does not parse is an error and does not run", (r, types_of(outs)))
    r, outs, _ = k.run("nosuchcommand_xyz")
    check(r["status"] == "error" and r.get("evalue") == "exit status 127" and "not found" in stderr_of(outs),
          "an unknown command prints to stderr and fails the cell (status 127)", (r, stderr_of(outs)))


def bash_display(k):
    d = tempfile.mkdtemp()
    try:
        with open(os.path.join(d, "p.png"), "wb") as f:
            f.write(PNG_1x1)
        with open(os.path.join(d, "s.svg"), "w") as f:
            f.write('<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"/>')
        r, outs, _ = k.run(f"display_image {d}/p.png; show_image {d}/s.svg")
        disp = [m["content"]["data"] for m in outs if m["msg_type"] == "display_data"]
        import base64
        check(len(disp) == 2 and base64.b64decode(disp[0].get("image/png", "")) == PNG_1x1
              and disp[1].get("image/svg+xml", "").startswith("<svg"),
              "display_image: a PNG and an SVG as display_data", disp)
        r, outs, _ = k.run(f"display_image {d}/missing.png")
        check("cannot read" in stderr_of(outs), "display_image of a missing file says so",
              stderr_of(outs))
    finally:
        shutil.rmtree(d)


def bash_interrupt(k):
    k.run("keep=still-here")
    for code, what in (("sleep 100; echo not-reached", "sleep 100"),
                       ("while :; do :; done; echo not-reached", "a busy loop"),
                       ("g() { sleep 100; echo not-reached; }; g; echo not-reached", "a function")):
        msg_id = k.client.execute(code)
        time.sleep(0.5)
        t0 = time.monotonic()
        k.control("interrupt_request")
        r, outs, _ = k.collect(msg_id, 20)
        check(r["content"]["status"] == "error" and r["content"].get("ename") == "Interrupted"
              and "not-reached" not in stdout_of(outs) and time.monotonic() - t0 < 10,
              f"interrupt ends {what} with an error", (r["content"], stdout_of(outs)))
        r, outs, _ = k.run("echo $keep")
        check(stdout_of(outs) == "still-here\n", f"state kept after interrupting {what}",
              stdout_of(outs))


def bash_stdin(k):
    r, outs, prompts = k.run("read x; echo \"got $x\"", stdin_answer="hello")
    check(prompts == 1 and stdout_of(outs) == "got hello\n",
          "read: input_request answered", (prompts, stdout_of(outs)))
    r, outs, prompts = k.run("python3 -c 'print(\"py:\" + input())'", stdin_answer="there")
    check(prompts == 1 and stdout_of(outs) == "py:there\n",
          "python's input() from bash: input_request answered", (prompts, stdout_of(outs)))
    for code in ("read x; echo \"got $x\"", "python3 -c 'print(input())'"):
        r, outs, _ = k.run(code, allow_stdin=False, deadline=20)
        check(r["status"] == "error" and r.get("ename") == "StdinNotImplementedError",
              f"allow_stdin false: {code.split()[0]} gives StdinNotImplementedError", r)
    r, outs, _ = k.run("echo fine")
    check(stdout_of(outs) == "fine\n", "the kernel answers after refused stdin", stdout_of(outs))


def bash_interrupt_input(k):
    """An interrupt while `read` waits for an answer that never comes ends the cell."""
    c = k.client
    msg_id = c.execute("read x; echo \"not-reached $x\"")
    try:
        m = c.get_stdin_msg(timeout=10)
        asked = m["msg_type"] == "input_request"
    except Exception:
        asked = False
    check(asked, "read asks for input", "no input_request")
    k.control("interrupt_request")
    r, outs, _ = k.collect(msg_id, 20)
    check(r["content"]["status"] == "error" and "not-reached" not in stdout_of(outs),
          "interrupt while waiting for input ends the cell", (r["content"], stdout_of(outs)))
    r, outs, _ = k.run("echo after")
    check(stdout_of(outs) == "after\n", "the kernel answers after that", stdout_of(outs))


def bash_driver_death():
    """The interpreter dying ends the kernel (status 1), even when a job it left holds its
    pipes; an unknown language is refused with a message."""
    k = Kernel("ipc")
    try:
        k.client.execute("sleep 1000 & kill -9 $$")
        try:
            rc = k.proc.wait(15)
        except subprocess.TimeoutExpired:
            rc = None
        check(rc == 1, "the interpreter killed: the kernel exits with status 1", rc)
    finally:
        k.close()
    d = tempfile.mkdtemp()
    try:
        cf, _ = write_connection_file(os.path.join(d, "c.json"), transport="tcp", ip="127.0.0.1")
        p = subprocess.run([BINARY, "cobol", "-f", cf], capture_output=True, text=True, timeout=10)
        check(p.returncode != 0 and "unknown language" in p.stderr,
              "an unknown language is refused", (p.returncode, p.stderr))
        p = subprocess.run([BINARY, "bash", "-f", os.path.join(d, "missing.json")],
                           capture_output=True, text=True, timeout=10)
        check(p.returncode != 0 and "connection file" in p.stderr,
              "a missing connection file is refused", (p.returncode, p.stderr))
    finally:
        shutil.rmtree(d)


def bash_complete(k):
    c = k.client
    k.run("cb_test_fn() { :; }; cb_test_var=1")
    for code, want in (("cb_test_f", "cb_test_fn"), ("echo $cb_test_v", "$cb_test_var"),
                       ("ech", "echo")):
        msg_id = c.complete(code, len(code))
        rep = k.reply(msg_id, 10)["content"]
        check(want in rep.get("matches", []) and rep.get("cursor_end") == len(code)
              and rep.get("cursor_start") == len(code) - len(code.split()[-1]),
              f"complete {code!r}", rep)
    for code, want in (("echo hi", "complete"), ("if true; then", "incomplete"),
                       ("echo \"abc", "incomplete"), ("fi fi )", "invalid")):
        msg_id = c.is_complete(code)
        rep = k.reply(msg_id, 10)["content"]
        check(rep.get("status") == want, f"is_complete {code!r} is {want}", rep)
    msg_id = c.inspect("cb_test_fn", 3)
    rep = k.reply(msg_id, 10)["content"]
    check(rep.get("found") is True and "cb_test_fn" in rep["data"].get("text/plain", ""),
          "inspect a function", rep)


def bash_kernel_test():
    """Debian's jupyter_kernel_test against a temporary kernelspec for the binary."""
    try:
        import jupyter_kernel_test
    except ImportError:
        print("SKIP jupyter_kernel_test: python3-jupyter-kernel-test is not installed")
        return
    spec_root = tempfile.mkdtemp(prefix="cb-kernelspec-")
    os.makedirs(os.path.join(spec_root, "kernels", "cb-test-bash"))
    with open(os.path.join(spec_root, "kernels", "cb-test-bash", "kernel.json"), "w") as f:
        json.dump({"argv": [BINARY, "bash", "-f", "{connection_file}"], "language": "bash",
                   "display_name": "Bash (cellblock test)", "interrupt_mode": "message"}, f)
    os.environ["JUPYTER_PATH"] = spec_root

    class BashKernelTests(jupyter_kernel_test.KernelTests):
        kernel_name = "cb-test-bash"
        language_name = "bash"
        file_extension = ".sh"
        code_hello_world = "echo 'hello, world'"
        code_stderr = "echo oops >&2"
        completion_samples = [{"text": "cb_kt_", "matches": {"cb_kt_fn"}}]
        complete_code_samples = ["echo hi", "for i in 1 2; do echo $i; done"]
        incomplete_code_samples = ["if true; then", "echo \"abc"]
        invalid_code_samples = ["fi fi )"]
        code_generate_error = "if then"
        code_inspect_sample = "echo"

        @classmethod
        def setUpClass(cls):
            super().setUpClass()
            cls.kc.execute_interactive("cb_kt_fn() { :; }", timeout=10)

    suite = unittest.defaultTestLoader.loadTestsFromTestCase(BashKernelTests)
    result = unittest.TextTestRunner(stream=sys.stdout, verbosity=2).run(suite)
    check(result.wasSuccessful() and result.testsRun > 0, "jupyter_kernel_test passes",
          f"{len(result.failures)} failures, {len(result.errors)} errors")
    shutil.rmtree(spec_root, ignore_errors=True)


def group_bash():
    k = Kernel("ipc")
    try:
        bash_state(k)
        bash_errors(k)
        bash_big_cell(k)
        bash_display(k)
        bash_interrupt(k)
        bash_stdin(k)
        bash_interrupt_input(k)
        bash_complete(k)
    finally:
        k.close()
    bash_driver_death()
    bash_kernel_test()


if __name__ == "__main__":
    {"core": group_core, "bash": group_bash}[GROUP]()
    print(f"{'FAILED: ' + ', '.join(FAILED) if FAILED else 'all passed'}")
    sys.exit(1 if FAILED else 0)
