#!/usr/bin/python3
"""test_r.py: R (Debian's IRkernel, kernelspec "ir") in a cellblock sandbox, the way JupyterLab
reaches it: `cellblock serve`, POST /api/kernels, the channels WebSocket, POST .../interrupt.

    /usr/bin/python3 test_r.py PATH/TO/cellblock

Checks: the kernel starts (time reported) and runs as the sandbox's user; state across three
cells; errors carry R's message; an infinite loop is interrupted and the kernel keeps its state;
readline() asks for input with input_request; plot(1:10) comes back as an image/png that is a PNG.

The WebSocket client and the request helpers are tests/http/test_jupyter_api.py's, the server
process is tests/http/serve.py's. Every wait has a deadline.
"""
import base64
import os
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "http"))
from serve import Serve  # noqa: E402
from test_jupyter_api import Client, execute, request, stdout_of, wait_ready  # noqa: E402

START_DEADLINE_S = 120.0
DEADLINE_S = 30.0
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def outputs(iopub, msg_type):
    return [m["content"] for m in iopub if m["msg_type"] == msg_type]


def start_ir(cellblock):
    """`cellblock serve` with one ir kernel, answering: (server, kernel id, WebSocket client,
    seconds from POST to the first kernel_info_reply, that reply's content)."""
    srv = Serve(cellblock)
    try:
        started = time.monotonic()
        status, _, model = srv.request("POST", "/api/kernels", {"name": "ir"})
        if status != 201:
            raise RuntimeError(f"POST /api/kernels {{name: ir}}: {status} {model}")
        client = Client(srv, model["id"])
        info = wait_ready(client, START_DEADLINE_S)
        if info is None:
            raise RuntimeError("the R kernel never answered kernel_info")
        return srv, model["id"], client, time.monotonic() - started, info["content"]
    except BaseException:
        srv.dump()
        srv.close()
        raise


class IrKernelCase(unittest.TestCase):
    """One ir kernel for the class's tests, in a `cellblock serve` of its own."""
    cellblock = None

    @classmethod
    def setUpClass(cls):
        cls.srv, cls.kid, cls.client, cls.ready_s, cls.info = start_ir(cls.cellblock)
        print(f"\nir: POST /api/kernels to the first kernel_info_reply: {cls.ready_s:.2f} s",
              file=sys.stderr)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.srv.request("DELETE", f"/api/kernels/{cls.kid}")
        cls.srv.close()

    def run_cell(self, code, **kw):
        reply, iopub, stdin = execute(self.client, code, **kw)
        self.assertIsNotNone(reply, f"no execute_reply for {code!r} within the deadline")
        return reply["content"], iopub, stdin


class RKernel(IrKernelCase):
    def test_kernel_info(self):
        self.assertEqual(self.info["language_info"]["name"], "R")
        self.assertTrue(self.info["language_info"]["version"].startswith("4."))

    def test_sandbox_user(self):
        reply, iopub, _ = self.run_cell('cat(Sys.info()[["effective_user"]], getwd(), "\\n")')
        self.assertEqual(reply["status"], "ok", reply)
        user, cwd = stdout_of(iopub).split()
        self.assertEqual(user, "user", "R runs as the sandbox's user, not the host's")
        self.assertFalse(cwd.startswith(os.path.dirname(self.srv.tmp)),
                         f"R's working directory {cwd} is not the host's")

    def test_state_across_three_cells(self):
        self.assertEqual(self.run_cell("s3 <- 20")[0]["status"], "ok")
        self.assertEqual(self.run_cell("s3 <- s3 + 1; twice <- function(v) v * 2")[0]["status"],
                         "ok")
        reply, iopub, _ = self.run_cell("cat(twice(s3), '\\n')")
        self.assertEqual((reply["status"], stdout_of(iopub)), ("ok", "42 \n"))

    def test_error_message(self):
        reply, iopub, _ = self.run_cell('stop("the answer is not ", 41)')
        self.assertEqual(reply["status"], "error")
        errors = outputs(iopub, "error")
        self.assertEqual(len(errors), 1, iopub)
        self.assertIn("the answer is not 41", errors[0]["evalue"])
        reply, iopub, _ = self.run_cell("no_such_variable + 1")
        self.assertEqual(reply["status"], "error")
        self.assertIn("object 'no_such_variable' not found", outputs(iopub, "error")[0]["evalue"])
        # The kernel goes on after an error.
        reply, iopub, _ = self.run_cell("cat('after\\n')")
        self.assertEqual((reply["status"], stdout_of(iopub)), ("ok", "after\n"))

    def test_interrupt_keeps_state(self):
        self.assertEqual(self.run_cell("kept <- 'still here'")[0]["status"], "ok")
        c = self.client
        msg_id = c.send(c.message("shell", "execute_request",
                                  {"code": "cat('looping\\n'); while (TRUE) {}", "silent": False,
                                   "store_history": True, "user_expressions": {},
                                   "allow_stdin": False, "stop_on_error": True}))
        end = time.monotonic() + DEADLINE_S
        running = False
        while not running and time.monotonic() < end:
            m = c.recv(end)
            # Not execute_input: IRkernel sends that before it sets up its interrupt handler,
            # and a SIGINT that comes before is lost. The cell's own output comes after.
            running = (m is not None and m["msg_type"] == "stream"
                       and m["parent_header"].get("msg_id") == msg_id
                       and m["content"]["text"] == "looping\n")
        self.assertTrue(running, "the cell never said it was looping")
        status, _, _ = self.srv.request("POST", f"/api/kernels/{self.kid}/interrupt", {})
        self.assertEqual(status, 204)
        end = time.monotonic() + DEADLINE_S
        reply, idle = None, False
        while not (reply and idle) and time.monotonic() < end:
            m = c.recv(end)
            if m is None or m["parent_header"].get("msg_id") != msg_id:
                continue
            if m["msg_type"] == "execute_reply":
                reply = m["content"]
            idle = idle or (m["msg_type"] == "status"
                            and m["content"]["execution_state"] == "idle")
        self.assertIsNotNone(reply, "the interrupted loop never replied")
        self.assertTrue(idle, "the kernel never went idle after the interrupt")
        # IRkernel's word for an interrupted cell (the protocol's would be "aborted" or "error").
        self.assertEqual(reply["status"], "abort", reply)
        reply, iopub, _ = self.run_cell("cat(kept, '\\n')")
        self.assertEqual((reply["status"], stdout_of(iopub)), ("ok", "still here \n"))
        status, _, model = self.srv.request("GET", f"/api/kernels/{self.kid}")
        self.assertEqual((status, model["execution_state"]), (200, "idle"))

    def test_readline_asks_for_input(self):
        reply, iopub, stdin = self.run_cell('who <- readline("who? "); cat("hello", who, "\\n")',
                                            allow_stdin=True, stdin_value="bob")
        self.assertEqual(reply["status"], "ok", reply)
        self.assertEqual([(m["msg_type"], m["content"]["prompt"]) for m in stdin],
                         [("input_request", "who? ")])
        self.assertEqual(stdout_of(iopub), "hello bob \n")

    def test_plot_is_png(self):
        reply, iopub, _ = self.run_cell("plot(1:10)")
        self.assertEqual(reply["status"], "ok", reply)
        shown = outputs(iopub, "display_data")
        self.assertEqual(len(shown), 1, iopub)
        png = base64.b64decode(shown[0]["data"]["image/png"])
        self.assertTrue(png.startswith(PNG_SIGNATURE), png[:16])
        self.assertGreater(len(png), 1000, "a plot of ten points is more than a blank image")

    def test_complete(self):
        reply, _, _ = request(self.client, "shell", "complete_request",
                              {"code": "print.data.fr", "cursor_pos": 13})
        self.assertIsNotNone(reply)
        self.assertEqual(reply["content"]["matches"], ["print.data.frame"])


class RLongCell(IrKernelCase):
    """A cell that computes for longer than the gateway's heartbeat allowance (3 misses of
    3000 ms). IRkernel answers heartbeats from its main loop only (Kernel$run polls hb with shell
    and control), so while a cell runs it answers none. The gateway does not count heartbeats
    missed while a kernel is busy; before it did, this cell never replied and the kernel was
    killed as hung after 9 s with its state lost."""

    def test_cell_longer_than_heartbeat_allowance(self):
        reply, iopub, _ = execute(self.client, "Sys.sleep(12); cat('done\\n')", deadline_s=25)
        self.assertIsNotNone(reply, "the 12 s cell never replied within 25 s")
        self.assertEqual((reply["content"]["status"], stdout_of(iopub)), ("ok", "done\n"))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: test_r.py PATH/TO/cellblock", file=sys.stderr)
        sys.exit(2)
    IrKernelCase.cellblock = os.path.abspath(sys.argv[1])
    unittest.main(argv=sys.argv[:1], verbosity=2)
