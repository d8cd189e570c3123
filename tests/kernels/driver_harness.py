"""driver_harness.py: run one interpreter driver script as cellblock-kernel would, for tests.

The driver gets fd 0 (a pipe we write), fd 1 and fd 2 (pipes we read), fd 3 (requests) and fd 4
(events), in a process group of its own (kernels/drivers/PROTOCOL.md). Every wait has a deadline.

    with Driver(["/usr/bin/node", "kernels/drivers/node/driver.js", "javascript"]) as d:
        events, out, err = d.execute("1 + 1")
        assert events[-1] == {"ev": "done"}
"""
import glob
import json
import os
import select
import signal
import subprocess
import sys
import time
import traceback


class Driver:
    def __init__(self, argv, env=None, cwd=None, deadline=30.0):
        self.deadline = deadline
        req_r, self._req_w = os.pipe()
        self._ev_r, ev_w = os.pipe()
        self._in_r, self.stdin_w = os.pipe()
        self._out_r, out_w = os.pipe()
        self._err_r, err_w = os.pipe()

        def child():
            hi_req, hi_ev = os.dup(req_r), os.dup(ev_w)  # neither may be 3 or 4 by chance
            while hi_req in (3, 4) or hi_ev in (3, 4):
                hi_req, hi_ev = os.dup(hi_req), os.dup(hi_ev)
            os.dup2(hi_req, 3)
            os.dup2(hi_ev, 4)
            os.set_inheritable(3, True)
            os.set_inheritable(4, True)

        self.proc = subprocess.Popen(argv, stdin=self._in_r, stdout=out_w, stderr=err_w,
                                     preexec_fn=child,
                                     close_fds=False, env=env, cwd=cwd, start_new_session=True)
        for fd in (req_r, ev_w, self._in_r, out_w, err_w):
            os.close(fd)
        self._buf = {self._ev_r: b"", self._out_r: b"", self._err_r: b""}
        self.out = b""
        self.err = b""
        self.ready = self.next_event()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        for fd in (self._req_w, self.stdin_w):
            try:
                os.close(fd)
            except OSError:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:
            pass
        self.proc.wait(10)

    def send(self, obj):
        os.write(self._req_w, (json.dumps(obj) + "\n").encode())

    def _pump(self, timeout):
        fds = [fd for fd in self._buf]
        ready, _, _ = select.select(fds, [], [], timeout)
        for fd in ready:
            data = os.read(fd, 65536)
            if not data:
                self._buf.pop(fd)
                if fd == self._ev_r:
                    raise EOFError("driver closed fd 4; stderr: " + self.err.decode(errors="replace"))
                continue
            if fd == self._out_r:
                self.out += data
            elif fd == self._err_r:
                self.err += data
            else:
                self._buf[fd] += data

    def next_event(self):
        end = time.monotonic() + self.deadline
        while b"\n" not in self._buf.get(self._ev_r, b""):
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError("no event within %.0f s; stderr: %s" % (self.deadline, self.err))
            self._pump(left)
        line, _, rest = self._buf[self._ev_r].partition(b"\n")
        self._buf[self._ev_r] = rest
        return json.loads(line)

    def execute(self, code, allow_stdin=False, on_input=None, count=1):
        """Run code; returns (events up to and including done, stdout, stderr) of this cell."""
        self.out = self.err = b""
        self.send({"op": "execute", "code": code, "silent": False, "allow_stdin": allow_stdin,
                   "execution_count": count})
        events = []
        while True:
            ev = self.next_event()
            events.append(ev)
            if ev.get("ev") == "input_request" and on_input:
                self.send({"op": "input_reply", "value": on_input(ev)})
            if ev.get("ev") == "done":
                # what the driver wrote before done is in the pipes already
                while True:
                    r, _, _ = select.select([fd for fd in (self._out_r, self._err_r) if fd in self._buf], [], [], 0.05)
                    if not r:
                        break
                    self._pump(0)
                return events, self.out.decode(errors="replace"), self.err.decode(errors="replace")

    def request(self, obj):
        """complete/inspect/is_complete: returns the reply event."""
        self.send(obj)
        return self.next_event()

    def interrupt(self):
        os.killpg(self.proc.pid, signal.SIGINT)

    def wait_read_on_fd0(self, deadline=20.0):
        """Until some thread of the driver sits in read(2) (syscall 0) on fd 0: what the kernel's
        core sees before it asks the client for a line (kernels/kernel/stdin.c)."""
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            for path in glob.glob("/proc/%d/task/*/syscall" % self.proc.pid):
                try:
                    fields = open(path).read().split()
                except OSError:
                    continue
                if len(fields) > 1 and fields[0] == "0" and int(fields[1], 16) == 0:
                    return
            time.sleep(0.01)
        raise AssertionError("no thread of the driver blocked in read(2) on fd 0")


def run_tests(namespace):
    """Run every function named test_* in namespace (a module's globals()), sorted by name, as TAP;
    CB_TEST_ONLY=part runs those whose name holds it. Returns the exit status."""
    tests = [(n, f) for n, f in sorted(namespace.items()) if n.startswith("test_") and callable(f)]
    only = os.environ.get("CB_TEST_ONLY")
    if only:
        tests = [(n, f) for n, f in tests if only in n]
    failed = 0
    print("1..%d" % len(tests))
    for i, (name, fn) in enumerate(tests, 1):
        try:
            fn()
            print("ok %d - %s" % (i, name))
        except Exception:
            failed += 1
            print("not ok %d - %s" % (i, name))
            traceback.print_exc()
        sys.stdout.flush()
    return 1 if failed else 0
