"""checks.py: the small helpers the Python integration scripts share.

    from checks import check, finish
    check(cond, "what must hold", "detail shown when it fails")
    sys.exit(finish())     # prints a summary; 0 when every check held, 1 otherwise

    from checks import read_line
    line = read_line(proc.stdout, 30.0)   # one line of a child's output, with a deadline
"""
import os
import selectors
import time

failures = []


def check(cond, what, detail=""):
    """Print "ok - what" or "FAIL - what: detail"; remember failures. Returns cond."""
    if cond:
        print(f"ok - {what}", flush=True)
    else:
        print(f"FAIL - {what}{': ' + detail if detail else ''}", flush=True)
        failures.append(what)
    return cond


def finish():
    """Print the summary line and return the exit status."""
    if failures:
        print(f"{len(failures)} check(s) failed: {failures}", flush=True)
        return 1
    print("all checks passed", flush=True)
    return 0


def read_line(stream, deadline_s):
    """One line from a pipe, waiting at most deadline_s; None on timeout or end of file. Reads
    byte by byte, so nothing after the line is left buffered where no one sees it."""
    sel = selectors.DefaultSelector()
    sel.register(stream, selectors.EVENT_READ)
    data = b""
    end = time.monotonic() + deadline_s
    try:
        while not data.endswith(b"\n"):
            left = end - time.monotonic()
            if left <= 0 or not sel.select(left):
                return None
            chunk = os.read(stream.fileno(), 1)
            if not chunk:
                return None
            data += chunk
    finally:
        sel.close()
    return data.decode()
