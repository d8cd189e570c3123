"""test_driver_ruby.py: the Ruby driver (kernels/drivers/ruby/driver.rb) against the protocol.

Runs the driver as cellblock-kernel would (driver_harness.py: fds 0-4 as pipes, own process group)
and checks each promise of the driver: state across cells, the last value, errors with cell lines,
syntax errors, exit and raise leaving it alive, SIGINT in and between cells, stdin read with a
blocking read(2) on fd 0 (what the kernel's core detects), display helpers, complete / inspect /
is_complete, huge output, malformed requests. Prints the startup time and a cell's round trip.

    /usr/bin/python3 tests/kernels/test_driver_ruby.py
"""
import base64
import os
import statistics
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from driver_harness import Driver, run_tests  # noqa: E402

DRIVER = os.path.join(HERE, "..", "..", "kernels", "drivers", "ruby", "driver.rb")
RUBY = "/usr/bin/ruby"
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")


def start():
    return Driver([RUBY, os.path.abspath(DRIVER)], cwd="/tmp")


def run(d, code, count=1):
    events, out, err = d.execute(code, count=count)
    assert events[-1] == {"ev": "done"}, events
    return events[:-1], out, err


def result(events):
    res = [e for e in events if e["ev"] == "result"]
    return res[0]["data"]["text/plain"] if res else None


def error(events):
    errs = [e for e in events if e["ev"] == "error"]
    assert len(errs) == 1, events
    return errs[0]


def after(seconds, fn):
    t = threading.Timer(seconds, fn)
    t.start()
    return t


def test_ready_and_startup():
    times = []
    for _ in range(5):
        t0 = time.monotonic()
        with start() as d:
            times.append(time.monotonic() - t0)
            assert d.ready["ev"] == "ready"
            version = d.ready["version"]
    import subprocess
    real = subprocess.run([RUBY, "-e", "print RUBY_VERSION"], capture_output=True, text=True).stdout
    assert version == real, (version, real)
    print("# startup to ready: median %.0f ms, min %.0f ms (target 150 ms)"
          % (statistics.median(times) * 1000, min(times) * 1000))
    # Generous: the machine is shared; the number above is what to look at.


def test_round_trip():
    with start() as d:
        times = []
        for i in range(20):
            t0 = time.monotonic()
            d.send({"op": "execute", "code": "1", "silent": False, "allow_stdin": False,
                    "execution_count": i + 1})
            assert d.next_event()["ev"] == "result"
            assert d.next_event() == {"ev": "done"}
            times.append(time.monotonic() - t0)
        print("# trivial cell round trip: median %.2f ms" % (statistics.median(times) * 1000))


def test_state_across_cells():
    with start() as d:
        assert result(run(d, "x = 41\ndef twice(n) = n * 2\nclass Box; def initialize(v) = @v = v; attr_reader :v; end", 1)[0]) == "[:v]"
        assert result(run(d, "require 'set'\ns = Set[x + 1]\nDir.chdir('/')\nENV['CB_T'] = 'yes'\nnil", 2)[0]) is None
        assert result(run(d, "[x, twice(x), Box.new(3).v, s.to_a, Dir.pwd, ENV['CB_T']]", 3)[0]) == \
            '[41, 82, 3, [42], "/", "yes"]'
        # nothing of the driver shows in the cells' binding
        assert result(run(d, "local_variables.sort")[0]) == "[:s, :x]"


def test_last_value_and_output_order():
    with start() as d:
        events, out, err = run(d, "print 'a'\n$stderr.puts 'e'\nputs 'b'\n{k: [1, 'two']}")
        assert out == "ab\n" and err == "e\n", (out, err)
        assert events == [{"ev": "result", "data": {"text/plain": '{:k=>[1, "two"]}'}, "metadata": {}}]
        assert run(d, "puts 'only output'")[0] == []        # puts returns nil: no result
        assert run(d, "nil")[0] == []
        d.send({"op": "execute", "code": "42", "silent": True, "allow_stdin": False, "execution_count": 3})
        assert d.next_event() == {"ev": "done"}             # silent: no result
        assert result(run(d, '"caf\\xC3".b')[0]) == '"caf\\xC3"'
        events, out, _ = run(d, "print \"\\xff\\xfe ok\"; 'x'.force_encoding('BINARY') + \"\\xff\".b")
        assert "ok" in out and result(events) == '"x\\xFF"'


def test_errors_name_cell_lines():
    with start() as d:
        run(d, "def boom(n)\n  raise ArgumentError, \"bad #{n}\"\nend", 4)
        e = error(run(d, "a = 1\n\nboom(a)", 5)[0])
        assert e["ename"] == "ArgumentError" and e["evalue"] == "bad 1", e
        assert e["traceback"][0] == "cell[4]:2:in `boom': bad 1 (ArgumentError)", e["traceback"]
        assert e["traceback"][1] == "\tfrom cell[5]:3:in `<main>'", e["traceback"]
        assert not any("driver.rb" in line for line in e["traceback"]), e["traceback"]
        e = error(run(d, "[1].fetch(10)", 6)[0])
        assert e["ename"] == "IndexError" and "cell[6]:1" in e["traceback"][0], e
        # library frames the cell called stay, the driver's go
        e = error(run(d, "require 'json'\nJSON.parse('{')", 7)[0])
        assert e["ename"] == "JSON::ParserError", e
        assert any(line.endswith("cell[7]:2:in `<main>'") for line in e["traceback"]), e["traceback"]
        assert not any("driver.rb" in line for line in e["traceback"]), e["traceback"]
        assert result(run(d, "a")[0]) == "1"                   # state before the error kept


def test_traceback_with_relative_driver_path():
    # backtraces name the driver as ruby was given it; its frames go either way
    root = os.path.join(HERE, "..", "..")
    with Driver([RUBY, os.path.join("kernels", "drivers", "ruby", "driver.rb")], cwd=root) as d:
        e = error(run(d, "return 5")[0])
        assert e["traceback"] == ["cell[1]:1:in `<main>': unexpected return (LocalJumpError)"], e


def test_syntax_errors():
    with start() as d:
        e = error(run(d, "x = 1\ny = (2 +\n3)\n) oops", 8)[0])
        assert e["ename"] == "SyntaxError", e
        assert "cell[8]:4" in e["evalue"], e
        e = error(run(d, "def f\n  1", 9)[0])
        assert e["ename"] == "SyntaxError" and "cell[9]:2" in e["evalue"], e
        assert result(run(d, "1 + 1")[0]) == "2"


def test_exit_and_raise_keep_driver():
    with start() as d:
        run(d, "kept = :yes")
        for code, ename in (("exit", "SystemExit"), ("exit 3", "SystemExit"), ("abort 'no'", "SystemExit"),
                            ("raise Exception, 'top'", "Exception"), ("raise NoMemoryError", "NoMemoryError"),
                            ("class MyErr < StandardError; def message = raise('m'); end; raise MyErr", "MyErr"),
                            ("throw :nowhere", "UncaughtThrowError"), ("raise Interrupt", "Interrupt")):
            e = error(run(d, code)[0])
            assert e["ename"] == ename, (code, e)
        assert result(run(d, "kept")[0]) == ":yes"
        assert d.proc.poll() is None


def test_interrupt():
    with start() as d:
        run(d, "before = 1")
        for code in ("during = 2\nloop {}", "during = 2\nwhile true; end", "during = 2\nsleep 1000",
                     "during = 2\ngets"):
            t0 = time.monotonic()
            timer = after(0.3, d.interrupt)
            events, _, _ = d.execute(code)
            timer.join()
            e = error(events[:-1])
            assert e["ename"] == "Interrupt", e
            assert not any("driver.rb" in line for line in e["traceback"]), e
            assert time.monotonic() - t0 < 10
        assert result(run(d, "[before, during]")[0]) == "[1, 2]"
        # between cells SIGINT is ignored
        for _ in range(3):
            d.interrupt()
        time.sleep(0.2)
        assert d.proc.poll() is None
        assert result(run(d, "before + 1")[0]) == "2"


def test_stdin_is_read_from_fd0():
    with start() as d:
        d.send({"op": "execute", "code": "a = gets\nb = $stdin.readline\nc = STDIN.read(3)\n[a, b, c]",
                "silent": False, "allow_stdin": True, "execution_count": 1})
        for line in (b"one\n", b"two\n", b"abc"):
            d.wait_read_on_fd0()         # blocked in read(2): the core would ask the client
            os.write(d.stdin_w, line)
        assert d.next_event() == {"ev": "result", "data": {"text/plain": '["one\\n", "two\\n", "abc"]'},
                                  "metadata": {}}
        assert d.next_event() == {"ev": "done"}


def test_display():
    path = "/tmp/cb_test_ruby_%d.png" % os.getpid()
    with open(path, "wb") as f:
        f.write(PNG)
    try:
        with start() as d:
            events, out, _ = run(d, "puts 'first'\ndef show = display_html('<b>hi</b>')\nshow\n"
                                    "display_svg('<svg/>')\ndisplay_markdown('# t')\n"
                                    "display_json({a: [1, nil]})\ndisplay_png(%r)\ndisplay_png(File.binread(%r))\n"
                                    "display_data({'text/plain' => 'p', 'text/latex' => '$x$'})" % (path, path))
            assert out == "first\n"
            kinds = [e["data"] for e in events if e["ev"] == "display"]
            b64 = base64.b64encode(PNG).decode()
            assert kinds == [{"text/html": "<b>hi</b>"}, {"image/svg+xml": "<svg/>"}, {"text/markdown": "# t"},
                             {"application/json": {"a": [1, None]}}, {"image/png": b64}, {"image/png": b64},
                             {"text/plain": "p", "text/latex": "$x$"}], kinds
            assert result(events) is None                    # the helpers return nil
            e = error(run(d, "display_png('/nonexistent.png')")[0])
            assert e["ename"] == "Errno::ENOENT", e
    finally:
        os.unlink(path)


def test_complete():
    with start() as d:
        run(d, "alpha_one = 1\nalpha_two = 'x'\ndef alpha_m = 3\nAlphaConst = 4")
        r = d.request({"op": "complete", "code": "y = alpha", "cursor_pos": 9})
        assert r["ev"] == "complete_reply" and r["cursor_start"] == 4 and r["cursor_end"] == 9, r
        assert {"alpha_one", "alpha_two", "alpha_m"} <= set(r["matches"]), r
        r = d.request({"op": "complete", "code": "alpha_two.upc + 1", "cursor_pos": 13})
        assert r["matches"] == ["upcase", "upcase!"] and r["cursor_start"] == 10, r
        r = d.request({"op": "complete", "code": "Alph", "cursor_pos": 4})
        assert "AlphaConst" in r["matches"], r
        r = d.request({"op": "complete", "code": "File::SEP", "cursor_pos": 9})
        assert "SEPARATOR" in r["matches"], r
        r = d.request({"op": "complete", "code": "é = 1; pu", "cursor_pos": 9})  # code points
        assert "puts" in r["matches"] and r["cursor_start"] == 7, r
        r = d.request({"op": "complete", "code": "nothing_like_this_", "cursor_pos": 18})
        assert r["matches"] == [], r
        # no method call to complete: the receiver is not evaluated
        r = d.request({"op": "complete", "code": "exit.x", "cursor_pos": 6})
        assert r["matches"] == [] and d.proc.poll() is None, r
        r = d.request({"op": "complete", "code": "abc", "cursor_pos": 999})
        assert r["ev"] == "complete_reply", r


def test_inspect():
    with start() as d:
        run(d, "answer = [4, 2]\ndef helper(a, b = 1) = a")
        r = d.request({"op": "inspect", "code": "answer.size", "cursor_pos": 3, "detail_level": 0})
        assert r["found"] and r["data"]["text/plain"] == "answer: Array\n[4, 2]", r
        r = d.request({"op": "inspect", "code": "helper(1)", "cursor_pos": 6, "detail_level": 0})
        assert r["found"] and "helper" in r["data"]["text/plain"], r
        r = d.request({"op": "inspect", "code": "String", "cursor_pos": 2, "detail_level": 0})
        assert r["found"] and r["data"]["text/plain"].startswith("String: Class"), r
        r = d.request({"op": "inspect", "code": "no_such_thing", "cursor_pos": 3, "detail_level": 0})
        assert r == {"ev": "inspect_reply", "found": False, "data": {}, "metadata": {}}, r


def test_is_complete():
    with start() as d:
        cases = {"1 + 1": "complete", "def f": "incomplete", "foo(1,": "incomplete",
                 "class A\n  def b\n  end": "incomplete", "\"abc": "incomplete", "x = [1,\n2": "incomplete",
                 "<<~EOS\ntext": "incomplete", "x = 1 \\": "incomplete", "1 )": "invalid", "end": "invalid",
                 "": "complete", "def f; end": "complete"}
        for code, status in cases.items():
            r = d.request({"op": "is_complete", "code": code})
            assert r["ev"] == "is_complete_reply" and r["status"] == status, (code, r)
        # is_complete runs nothing
        r = d.request({"op": "is_complete", "code": "exit!"})
        assert r["status"] == "complete" and d.proc.poll() is None


def test_huge_output():
    with start() as d:
        n = 20 * 1024 * 1024
        events, out, _ = run(d, "s = 'y' * %d\n$stdout.write(s)\n$stdout.write(\"\\nend\\n\")\ns.size" % n)
        assert len(out) == n + 5 and out.endswith("y\nend\n"), len(out)
        assert result(events) == str(n)
        events, _, _ = run(d, "(1..200_000).to_a")
        assert len(result(events)) > 1_000_000


def test_malformed_requests():
    with start() as d:
        for junk in (b"not json\n", b"[1,2]\n", b"{}\n", b'{"op": 5}\n', b'{"op":"bogus"}\n', b"\xff\xfe\n",
                     b'{"op":"execute","code":7}\n'):
            os.write(d._req_w, junk)
        # the last one is an execute of no code: an empty cell
        assert d.next_event() == {"ev": "done"}
        assert result(run(d, "'still here'")[0]) == '"still here"'


def main():
    return run_tests(globals())


if __name__ == "__main__":
    sys.exit(main())
