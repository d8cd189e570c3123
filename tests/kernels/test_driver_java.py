"""test_driver_java.py: the Java driver (kernels/drivers/java, cellblock-jshell.jar) against the protocol.

Runs the jar as cellblock-kernel would (driver_harness.py: fds 0-4 as pipes, own process group) and
checks each promise of the driver: state across cells, the last value, errors and compile errors
with cell lines, unresolved references, SIGINT in and between cells (an infinite loop stopped, state
kept), stdin read by user code with a blocking read(2) on fd 0 (what the kernel's core detects),
display helpers, complete / inspect / is_complete, huge output, malformed requests. Prints JVM start
to ready and a trivial cell's round trip.

    /usr/bin/python3 tests/kernels/test_driver_java.py <build dir>   (or the jar's path)
"""
import base64
import os
import statistics
import subprocess
import sys
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from driver_harness import Driver, run_tests  # noqa: E402

JAVA = "/usr/bin/java"
JAR = None
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")


def start():
    d = Driver([JAVA, "-Xshare:auto", "-XX:TieredStopAtLevel=1", "-cp", JAR, "CellblockJShell"],
               cwd="/tmp", deadline=60.0)
    assert d.ready["ev"] == "ready", d.ready
    return d


def run(d, code, count=1, silent=False):
    d.out = d.err = b""
    if silent:
        d.send({"op": "execute", "code": code, "silent": True, "allow_stdin": False, "execution_count": count})
        events = []
        while not events or events[-1].get("ev") != "done":
            events.append(d.next_event())
        return events[:-1], None, None
    events, out, err = d.execute(code, count=count)
    assert events[-1] == {"ev": "done"}, events
    return events[:-1], out, err


def result(events):
    res = [e for e in events if e["ev"] == "result"]
    assert len(res) <= 1, events
    return res[0]["data"]["text/plain"] if res else None


def error(events):
    errs = [e for e in events if e["ev"] == "error"]
    assert len(errs) == 1, events
    return errs[0]


def no_machinery(tb):
    """No frame of JShell's or the driver's own in a traceback."""
    for line in tb:
        assert "jdk.jshell" not in line and "CellblockJShell" not in line and "jdk.internal" not in line, tb


def test_ready_and_startup():
    times = []
    for _ in range(3):
        t0 = time.monotonic()
        with start() as d:
            times.append(time.monotonic() - t0)
            version = d.ready["version"]
    real = subprocess.run([JAVA, "-version"], capture_output=True, text=True).stderr
    assert version.split("+")[0] in real, (version, real)
    print("# JVM start to ready: median %.0f ms, min %.0f ms" % (statistics.median(times) * 1000, min(times) * 1000))


def test_round_trip():
    with start() as d:
        times = []
        for i in range(10):
            t0 = time.monotonic()
            d.send({"op": "execute", "code": "1", "silent": False, "allow_stdin": False, "execution_count": i + 1})
            assert d.next_event()["ev"] == "result"
            assert d.next_event() == {"ev": "done"}
            times.append(time.monotonic() - t0)
        print("# trivial cell round trip: median %.0f ms, min %.0f ms"
              % (statistics.median(times) * 1000, min(times) * 1000))


def test_state_across_cells():
    with start() as d:
        events, _, _ = run(d, "import java.util.*;\nint x = 41;\nint twice(int n) { return 2 * n; }\n"
                              "class Box { final int v; Box(int v) { this.v = v; } }", 1)
        assert events == [], events                 # declarations show nothing
        assert run(d, "List<Integer> xs = new ArrayList<>(List.of(x));\nxs.add(twice(x));", 2)[0] == []
        assert result(run(d, "xs.add(new Box(3).v);\nxs", 3)[0]) == "[41, 82, 3]"


def test_last_value_and_output():
    with start() as d:
        events, out, err = run(d, "System.out.print(\"a\");\nSystem.err.println(\"e\");\nSystem.out.println(\"b\");\n"
                                  "\"str\" + 1")
        assert out == "ab\n" and err == "e\n", (out, err)
        assert events == [{"ev": "result", "data": {"text/plain": '"str1"'}, "metadata": {}}], events
        assert run(d, "int y = 5;")[0] == []        # a declaration: no result
        assert run(d, "System.out.println(y);")[0] == []
        assert result(run(d, "y = 6")[0]) == "6"    # an assignment is an expression
        assert run(d, "y = 7;")[0] == []            # ... ended with ';' by the user: shown nothing
        assert result(run(d, "y")[0]) == "7"
        assert result(run(d, "y + 1 // a comment")[0]) == "8"
        assert result(run(d, "String n = null;\nn")[0]) == "null"
        assert run(d, "y + 1", silent=True)[0] == []
        events, out, _ = run(d, "System.out.println(\"h\u00e9 \u2603 \U0001F600\");\n\"\u00fc\"")
        assert out == "h\u00e9 \u2603 \U0001F600\n" and result(events) == '"\u00fc"', (out, events)
        # output and displays arrive in the order the cell made them
        events, out, _ = run(d, "for (int i = 0; i < 3; i++) { System.out.print(i); displayHtml(\"<i>\" + i + \"</i>\"); }")
        assert out == "012" and [e["data"]["text/html"] for e in events] == ["<i>0</i>", "<i>1</i>", "<i>2</i>"]


def test_output_order_with_events():
    with start() as d:
        # stdout is written before each event: read both streams in arrival order
        d.send({"op": "execute", "code": "System.out.print(\"before\");\ndisplay(\"mid\");\nSystem.out.print(\"after\");",
                "silent": False, "allow_stdin": False, "execution_count": 1})
        d.out = b""
        ev = d.next_event()
        assert ev["ev"] == "display" and ev["data"] == {"text/plain": "mid"}, ev
        assert d.out == b"before", d.out            # drained before the event was read
        assert d.next_event() == {"ev": "done"}


def test_errors_name_cell_lines():
    with start() as d:
        run(d, "import java.util.*;\n\nvoid boom(int n) {\n  int[] a = new int[1];\n  a[n] = 1;\n}", 4)
        e = error(run(d, "int k = 2;\n\n  boom(k);", 5)[0])
        assert e["ename"] == "java.lang.ArrayIndexOutOfBoundsException", e
        assert e["evalue"] == "Index 2 out of bounds for length 1", e
        assert e["traceback"] == ["java.lang.ArrayIndexOutOfBoundsException: Index 2 out of bounds for length 1",
                                  "\tat boom(cell[4]:5)", "\tat <cell>(cell[5]:3)"], e["traceback"]
        e = error(run(d, "class Thrower {\n  void go() { throw new IllegalStateException(\"no\"); }\n}\nnew Thrower().go();", 6)[0])
        assert e["ename"] == "java.lang.IllegalStateException" and e["evalue"] == "no", e
        assert "\tat Thrower.go(cell[6]:2)" in e["traceback"], e["traceback"]
        no_machinery(e["traceback"])
        # library frames the cell called stay
        e = error(run(d, "Integer.parseInt(\"zz\")", 7)[0])
        assert e["ename"] == "java.lang.NumberFormatException", e
        assert any("java.lang.Integer.parseInt" in f for f in e["traceback"]), e
        assert e["traceback"][-1] == "\tat <cell>(cell[7]:1)", e["traceback"]
        no_machinery(e["traceback"])
        # a cause chain
        e = error(run(d, "throw new RuntimeException(\"outer\", new java.io.IOException(\"inner\"));", 8)[0])
        assert any(line.startswith("Caused by: java.io.IOException: inner") for line in e["traceback"]), e
        assert result(run(d, "k")[0]) == "2"          # state before the errors kept


def test_compile_errors():
    with start() as d:
        e = error(run(d, "int a = 1;\n\nint b = \"s\";\nint c = 3;", 9)[0])
        assert e["ename"] == "CompilationError", e
        assert e["evalue"].startswith("cell[9]:3: error: incompatible types"), e
        assert e["traceback"][1:] == ['int b = "s";', "        ^"], e["traceback"]
        # stopped at the first failure: a ran, c did not
        assert result(run(d, "a")[0]) == "1"
        e = error(run(d, "c")[0])
        assert e["ename"] == "CompilationError" and "cannot find symbol" in e["evalue"], e
        e = error(run(d, "int q = 1;\nvoid f() {\n  return 1;\n}", 10)[0])
        assert e["evalue"].startswith("cell[10]:3: error:"), e
        e = error(run(d, "int z = (1 + ;", 11)[0])
        assert e["ename"] == "CompilationError" and e["evalue"].startswith("cell[11]:1: error:"), e
        e = error(run(d, "class Open {", 12)[0])
        assert e["ename"] == "CompilationError", e


def test_unresolved_reference():
    with start() as d:
        events, _, err = run(d, "void g() { h(); }")
        assert events == [] and "method h() is declared" in err, (events, err)
        e = error(run(d, "g();", 2)[0])
        assert e["ename"] == "UnresolvedReferenceException", e
        assert "method h()" in e["evalue"], e
        run(d, "void h() { System.out.println(\"h ran\"); }")
        assert run(d, "g();")[1] == "h ran\n"


def test_interrupt():
    with start() as d:
        run(d, "int before = 1;")
        for code in ("int during = 2;\nwhile (true) {}", "during = 3;\nwhile (true) { during += 0; }",
                     "during = 4;\nThread.sleep(100000);"):
            t0 = time.monotonic()
            d.send({"op": "execute", "code": code, "silent": False, "allow_stdin": False, "execution_count": 1})
            # the kernel resends SIGINT while a cell runs; so do we, until the cell ends
            events = []
            stop = threading.Event()

            def resend():
                time.sleep(0.5)
                while not stop.is_set():
                    d.interrupt()
                    stop.wait(1.0)
            t = threading.Thread(target=resend)
            t.start()
            try:
                while not events or events[-1]["ev"] != "done":
                    events.append(d.next_event())
            finally:
                stop.set()
                t.join()
            e = error(events[:-1])
            assert e["ename"] == "Interrupted", e
            assert time.monotonic() - t0 < 30
        assert result(run(d, "before + \",\" + during")[0]) == '"1,4"'
        # between cells SIGINT is ignored
        for _ in range(3):
            d.interrupt()
        time.sleep(0.3)
        assert d.proc.poll() is None
        assert result(run(d, "before + 1")[0]) == "2"


def test_stdin_is_read_from_fd0():
    with start() as d:
        d.send({"op": "execute", "code": "var sc = new java.util.Scanner(System.in);\nString l1 = sc.nextLine();\n"
                                         "String l2 = sc.nextLine();\nl1 + \"|\" + l2",
                "silent": False, "allow_stdin": True, "execution_count": 1})
        for line in (b"first line\n", b"second\n"):
            d.wait_read_on_fd0()          # blocked in read(2): the core would ask the client
            os.write(d.stdin_w, line)
        assert d.next_event() == {"ev": "result", "data": {"text/plain": '"first line|second"'}, "metadata": {}}
        assert d.next_event() == {"ev": "done"}


def test_display():
    path = "/tmp/cb_test_java_%d.png" % os.getpid()
    with open(path, "wb") as f:
        f.write(PNG)
    try:
        with start() as d:
            png_literal = ", ".join(str(b if b < 128 else b - 256) for b in PNG)
            events, _, _ = run(d, "display(42);\ndisplayHtml(\"<b>hi</b>\");\ndisplayMarkdown(\"# t\");\n"
                                  "displaySvg(\"<svg/>\");\ndisplayLatex(\"$x$\");\n"
                                  "displayJson(\"{\\\"a\\\": [1, null, true]}\");\n"
                                  "displayPng(new byte[] {%s});\ndisplayPng(\"%s\");\n"
                                  "displayData(java.util.Map.of(\"text/plain\", \"p\"));" % (png_literal, path))
            b64 = base64.b64encode(PNG).decode()
            kinds = [e["data"] for e in events if e["ev"] == "display"]
            assert kinds == [{"text/plain": "42"}, {"text/html": "<b>hi</b>"}, {"text/markdown": "# t"},
                             {"image/svg+xml": "<svg/>"}, {"text/latex": "$x$"},
                             {"application/json": {"a": [1, None, True]}}, {"image/png": b64},
                             {"image/png": b64}, {"text/plain": "p"}], kinds
            assert result(events) is None
            e = error(run(d, "displayJson(\"{not json\");")[0])
            assert e["ename"] == "java.lang.IllegalArgumentException", e
            e = error(run(d, "displayPng(\"/nonexistent.png\");")[0])
            assert e["ename"] == "java.nio.file.NoSuchFileException", e
    finally:
        os.unlink(path)


def test_complete():
    with start() as d:
        run(d, "String greeting = \"hi\";\nint counterOne = 1;")
        r = d.request({"op": "complete", "code": "greeting.toUpp", "cursor_pos": 14})
        assert r["ev"] == "complete_reply" and "toUpperCase(" in r["matches"], r
        assert r["cursor_start"] == 9 and r["cursor_end"] == 14, r
        r = d.request({"op": "complete", "code": "int z = 1;\ncounterO", "cursor_pos": 19})
        assert r["matches"] == ["counterOne"] and r["cursor_start"] == 11, r
        r = d.request({"op": "complete", "code": "\u00e9t\u00e9(); Syste", "cursor_pos": 12})  # code points
        assert "System" in r["matches"] and r["cursor_start"] == 7, r
        r = d.request({"op": "complete", "code": "zzzNothing", "cursor_pos": 10})
        assert r["matches"] == [], r
        r = d.request({"op": "complete", "code": "abc", "cursor_pos": 999})
        assert r["ev"] == "complete_reply", r


def test_inspect():
    with start() as d:
        run(d, "int answer = 42;")
        r = d.request({"op": "inspect", "code": "answer + 1", "cursor_pos": 3, "detail_level": 0})
        assert r["found"] and r["data"]["text/plain"].startswith("int answer = 42"), r
        r = d.request({"op": "inspect", "code": "Math.max(1, 2)", "cursor_pos": 7, "detail_level": 0})
        assert r["found"] and "int Math.max(int a, int b)" in r["data"]["text/plain"], r
        r = d.request({"op": "inspect", "code": "noSuchThing", "cursor_pos": 3, "detail_level": 0})
        assert r == {"ev": "inspect_reply", "found": False, "data": {}, "metadata": {}}, r


def test_is_complete():
    with start() as d:
        cases = {"1 + 1": "complete", "int x = 1;": "complete", "int x = 1": "complete", "": "complete",
                 "class A {": "incomplete", "void f() {\n": "incomplete", "int x = ": "incomplete",
                 "foo(1,": "incomplete", "int a = 1;\nfor (int i = 0; i < 3; i++) {": "incomplete",
                 "int a = 1; )": "invalid"}
        for code, status in cases.items():
            r = d.request({"op": "is_complete", "code": code})
            assert r["ev"] == "is_complete_reply" and r["status"] == status, (code, r)
        r = d.request({"op": "is_complete", "code": "System.exit(0);"})
        assert r["status"] == "complete" and d.proc.poll() is None


def test_huge_output():
    with start() as d:
        n = 20 * 1024 * 1024
        events, out, _ = run(d, "String big = \"y\".repeat(%d);\nSystem.out.print(big);\nSystem.out.print(\"\\nend\\n\");\n"
                                "big.length()" % n)
        assert len(out) == n + 5 and out.endswith("y\nend\n"), len(out)
        assert result(events) == str(n)
        events, _, _ = run(d, "java.util.stream.IntStream.range(0, 300000).boxed().collect(java.util.stream.Collectors.toList())")
        assert len(result(events)) > 1_000_000


def test_malformed_requests():
    with start() as d:
        for junk in (b"not json\n", b"[1,2]\n", b"{}\n", b'{"op": 5}\n', b'{"op":"bogus"}\n', b"\xff\xfe\n",
                     b'{"op":"execute","code":7}\n'):
            os.write(d._req_w, junk)
        assert d.next_event() == {"ev": "done"}      # the last one: an execute of no code
        assert result(run(d, "\"still here\"")[0]) == '"still here"'


def main():
    global JAR
    if len(sys.argv) != 2:
        print("usage: test_driver_java.py <build dir or cellblock-jshell.jar>", file=sys.stderr)
        return 2
    arg = sys.argv[1]
    JAR = arg if arg.endswith(".jar") else os.path.join(arg, "libexec", "cellblock", "drivers", "java",
                                                        "cellblock-jshell.jar")
    if not os.path.isfile(JAR):
        print("Bail out! no %s: build the Java driver first (kernels/drivers/java needs a JDK)" % JAR)
        return 1
    return run_tests(globals())


if __name__ == "__main__":
    sys.exit(main())
