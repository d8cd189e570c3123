#!/usr/bin/python3
"""attach_client.py: a real jupyter_client joins a cellblock kernel through the attach proxy.

Run by test_attach (the C side holds the gateway) with the attach connection file:

    /usr/bin/python3 attach_client.py ATTACH_JSON

What it checks, through the proxy:
  - state the gateway set (`secret = 6 * 7`) is visible: print(secret) -> "42"
  - it can set state (`from_client`) that the gateway checks afterwards
  - input() works: the input_request reaches the stdin channel and the reply reaches the kernel
  - bad frames sent straight to the proxy's shell port on a raw DEALER never reach the kernel:
      (a) one garbage frame               (b) a multipart without <IDS|MSG>
      (c) an execute_request signed with a wrong key
      (d) an execute_request with a truncated signature
      (e) a valid signature over a content frame that is not JSON
      (f) a correctly signed execute_request sent twice: the copy is a replay
    A kernel_info_request sent last on the same socket fences them: its reply means the proxy
    has handled everything before it (one DEALER -> ROUTER path keeps order).

Prints `SENT_BAD=N` (frames the proxy must drop) and exits 0 only if every check passed.
Every wait has a deadline; nothing sleeps.
"""
import hashlib
import hmac
import json
import sys
import time
import traceback
import uuid

import zmq
from jupyter_client import BlockingKernelClient
from jupyter_client.session import Session

from checks import check, finish

DEADLINE_S = 30.0


def remaining(deadline):
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("deadline passed")
    return left


def collect(kc, msg_id, deadline):
    """The shell reply of msg_id and its stdout, once iopub said idle for it."""
    reply = None
    while reply is None:
        msg = kc.get_shell_msg(timeout=remaining(deadline))
        if msg["parent_header"].get("msg_id") == msg_id:
            reply = msg
    stdout = []
    while True:
        msg = kc.get_iopub_msg(timeout=remaining(deadline))
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream" and content.get("name") == "stdout":
            stdout.append(content["text"])
        elif kind == "status" and content.get("execution_state") == "idle":
            break
    return reply["content"], "".join(stdout)


def run(kc, code):
    msg_id = kc.execute(code)
    return collect(kc, msg_id, time.monotonic() + DEADLINE_S)


def check_run(kc, code, want_stdout, what):
    content, stdout = run(kc, code)
    check(content.get("status") == "ok" and stdout == want_stdout, what,
          f"status {content.get('status')} {content.get('ename', '')} {content.get('evalue', '')}, "
          f"stdout {stdout!r}, want {want_stdout!r}")


def check_input(kc):
    deadline = time.monotonic() + DEADLINE_S
    msg_id = kc.execute('name = input("who? ")', allow_stdin=True)
    request = kc.get_stdin_msg(timeout=remaining(deadline))
    got = check(request["msg_type"] == "input_request"
                and request["content"].get("prompt") == "who? "
                and request["parent_header"].get("msg_id") == msg_id,
                "input_request reaches the stdin channel through the proxy",
                f"{request['msg_type']} {request['content']!r}")
    if not got:
        return
    kc.input("ada")
    content, _ = collect(kc, msg_id, deadline)
    check(content.get("status") == "ok", "input() returns after the input_reply",
          f"status {content.get('status')} {content.get('evalue', '')}")
    check_run(kc, "print(name)", "ada\n", "the answer typed on stdin is the value input() returned")


def sign(key, parts):
    mac = hmac.new(key, digestmod=hashlib.sha256)
    for part in parts:
        mac.update(part)
    return mac.hexdigest().encode()


def bad_frames(info):
    """Send the bad frames to the proxy's shell port; returns how many must be dropped."""
    key = info["key"].encode()
    session = Session(key=key, signature_scheme=info.get("signature_scheme", "hmac-sha256"),
                      username="attach-test")
    forger = Session(key=b"not-the-key-" + uuid.uuid4().hex.encode(), username="attach-test")

    def execute(s, code):
        msg = s.msg("execute_request", {"code": code, "silent": False, "store_history": False,
                                        "user_expressions": {}, "allow_stdin": False,
                                        "stop_on_error": False})
        return msg["header"]["msg_id"], s.serialize(msg)  # [DELIM, sig, h, p, m, c]

    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(f"tcp://{info['ip']}:{info['shell_port']}")
    try:
        sent = 0
        # (a) one garbage frame
        sock.send(b"garbage")
        sent += 1
        # (b) a real, well-signed message with its delimiter frame removed
        _, frames = execute(session, "pwned = 1")
        sock.send_multipart(frames[1:])
        sent += 1
        # (c) a well-formed execute_request signed with a wrong key
        _, frames = execute(forger, "pwned = 1")
        check(len(frames[1]) == 64, "the forged signature has the right length")
        sock.send_multipart(frames)
        sent += 1
        # (d) the right key, but the signature cut in half
        _, frames = execute(session, "pwned = 1")
        frames[1] = frames[1][:32]
        sock.send_multipart(frames)
        sent += 1
        # (e) a valid signature over a content frame that is not JSON
        _, frames = execute(session, "pwned = 1")
        frames[5] = b"pwned = 1 {not json"
        frames[1] = sign(key, frames[2:6])
        sock.send_multipart(frames)
        sent += 1
        # (f) a legitimate execute_request, then the very same frames again
        replay_id, frames = execute(session, 'counter = globals().get("counter", 0) + 1')
        sock.send_multipart(frames)
        sock.send_multipart(frames)
        sent += 1
        # The fence: a legitimate kernel_info_request on the same socket.
        info_msg = session.msg("kernel_info_request", {})
        sock.send_multipart(session.serialize(info_msg))

        replies = {}
        deadline = time.monotonic() + DEADLINE_S
        while info_msg["header"]["msg_id"] not in replies:
            if not sock.poll(int(remaining(deadline) * 1000)):
                continue
            raw = sock.recv_multipart()
            idents, rest = session.feed_identities(raw)
            msg = session.deserialize(rest)  # checks the proxy's signature with our key
            parent = msg["parent_header"].get("msg_id")
            replies.setdefault(parent, []).append(msg["msg_type"])
        check(set(replies) == {replay_id, info_msg["header"]["msg_id"]},
              "the raw socket got replies only to the two legitimate requests", repr(replies))
        check(replies.get(replay_id) == ["execute_reply"],
              "the replayed execute_request was answered exactly once", repr(replies))
    finally:
        sock.close()
        ctx.term()
    return sent


def check_shutdown_refused(kc):
    """An attached client may use the kernel but not end it: the proxy answers itself."""
    msg_id = kc.shutdown()
    deadline = time.monotonic() + DEADLINE_S
    reply = None
    while reply is None and remaining(deadline) > 0:
        msg = kc.get_control_msg(timeout=remaining(deadline))
        if msg["parent_header"].get("msg_id") == msg_id:
            reply = msg
    content = reply["content"] if reply else {}
    check(reply is not None and reply["msg_type"] == "shutdown_reply"
          and content.get("status") == "error" and content.get("ename") == "ShutdownRefused",
          "a client's shutdown_request is refused with a reason", repr(content))
    check_run(kc, "print(secret)", "42\n", "the kernel kept running and kept its state")


def main():
    if len(sys.argv) != 2:
        print("usage: attach_client.py ATTACH_JSON", file=sys.stderr)
        return 2
    path = sys.argv[1]
    with open(path) as f:
        info = json.load(f)
    check(info.get("transport") == "tcp" and info.get("ip") == "127.0.0.1"
          and len(info.get("key", "")) >= 32,
          "the attach file names loopback TCP ports and a key", repr({k: info.get(k) for k in ("transport", "ip")}))

    kc = BlockingKernelClient()
    kc.load_connection_file(path)
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=DEADLINE_S)
        check(True, "wait_for_ready through the proxy")
        check_run(kc, "print(secret)", "42\n", "the gateway's secret is visible through the proxy")
        check_run(kc, 'from_client = "set via attach"', "", "a client-side assignment runs")
        check_input(kc)

        sent_bad = bad_frames(info)
        print(f"SENT_BAD={sent_bad}", flush=True)
        check_run(kc, 'print("pwned" in globals())', "False\n",
                  "no forged, truncated, non-JSON or delimiter-less request ran")
        check_run(kc, "print(counter)", "1\n", "the replayed request ran once")
        check_run(kc, "print(secret + 0)", "42\n", "the kernel still works after the bad frames")
        check_shutdown_refused(kc)
    except Exception:
        traceback.print_exc(file=sys.stdout)
        check(False, "no exception (timeouts included)")
    finally:
        kc.stop_channels()

    return finish()


if __name__ == "__main__":
    sys.exit(main())
