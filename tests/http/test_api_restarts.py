#!/usr/bin/python3
"""test_api_restarts.py: restarts through the Jupyter API leave no startup deadline behind.

    /usr/bin/python3 test_api_restarts.py PATH/TO/cellblock

`cellblock serve` with a short startup deadline (CELLBLOCK_KERNEL_STARTUP_TIMEOUT). A kernel is
restarted with POST /api/kernels/{id}/restart while it is still starting, then several times
once healthy. A stale deadline of an earlier process generation would kill the healthy kernel
later ("did not become ready"), so the test lets twice the deadline pass (the absence of an event
can only be shown by time passing) and then asks: the server's log names no death, the kernel's
model is idle, and it runs code over its WebSocket.

Every other wait is on an event, with a deadline.
"""
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from checks import check, finish  # noqa: E402
from test_jupyter_api import TOKEN, Client, Server, execute, rest, stdout_of, wait_model  # noqa: E402

STARTUP_S = 6
RESTARTS = 3


def whole_log(srv):
    with open(srv.log_path, "r", errors="replace") as f:
        return f.read()


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    state_dir = tempfile.mkdtemp(prefix="cb-api-restarts-")
    env = dict(os.environ, CELLBLOCK_TOKEN=TOKEN, CELLBLOCK_STATE_DIR=state_dir, CELLBLOCK_POOL="python=0",
               CELLBLOCK_KERNEL_STARTUP_TIMEOUT=str(STARTUP_S))
    srv = Server([sys.argv[1], "serve", "--listen", "127.0.0.1:0"], state_dir, env)
    try:
        if not check(srv.start() is not None, "cellblock serve says where it listens", srv.tail()):
            return finish()
        status, _, model = rest(srv, "POST", "/api/kernels", body={"name": "python3"})
        kid = model.get("id") if isinstance(model, dict) else None
        check(status == 201 and kid, "POST /api/kernels starts a kernel", f"{status} {model}")
        # At once, while it starts: the answer waits for the restarted kernel to be ready.
        status, _, model = rest(srv, "POST", f"/api/kernels/{kid}/restart", body={})
        check(status == 200, "a restart while the kernel starts is answered once it is ready", f"{status} {model}")
        for i in range(RESTARTS):
            model = wait_model(srv, kid, ["idle"])
            status, _, model = rest(srv, "POST", f"/api/kernels/{kid}/restart", body={})
            check(status == 200, f"restart {i + 1} of the healthy kernel is 200", f"{status} {model}")
        model = wait_model(srv, kid, ["idle"])
        check(model and model.get("execution_state") == "idle", "the kernel is idle after the restarts", str(model))
        # Only what the server logs from here on counts: on a loaded machine a restart above may
        # rightly miss its own deadline (and be retried); a stale one fires after the kernel is idle.
        seen = len(whole_log(srv))
        time.sleep(2 * STARTUP_S)  # every stale deadline would have fired by now
        log = whole_log(srv)[seen:]
        check("did not become ready" not in log and " died" not in log and srv.proc.poll() is None,
              f"nothing killed the kernel in the {2 * STARTUP_S} s after, and the server is alive", log)
        status, _, model = rest(srv, "GET", f"/api/kernels/{kid}")
        check(status == 200 and model.get("execution_state") == "idle", "its model is still idle", f"{status} {model}")
        c = Client(srv, kid)
        try:
            reply, iopub, _ = execute(c, "print(6 * 7)")
            check(reply is not None and stdout_of(iopub) == "42\n", "it runs code over its WebSocket",
                  repr(stdout_of(iopub)))
        finally:
            c.close()
    except Exception as e:  # a deadline that raised (socket timeout, closed connection)
        import traceback
        check(False, "the test ran to its end", "".join(traceback.format_exception(e))[-2000:] + srv.tail())
    finally:
        rc = srv.stop()
        check(rc == 0, "cellblock serve exits 0 on SIGTERM", f"rc={rc}\n{srv.tail()}")
    return finish()


if __name__ == "__main__":
    sys.exit(main())
