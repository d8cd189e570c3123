#!/usr/bin/python3
"""test_driver_node.py: kernels/drivers/node/driver.js, for JavaScript and TypeScript, through the
driver protocol (kernels/drivers/PROTOCOL.md) as cellblock-kernel speaks it (driver_harness.py).

    /usr/bin/python3 tests/kernels/test_driver_node.py [-v]

CB_TEST_NODE picks another node binary (e.g. Debian 12's node 18). TypeScript tests are skipped
when /usr/share/nodejs/typescript (Debian's node-typescript) is missing.
"""
import base64
import os
import select
import struct
import subprocess
import sys
import tempfile
import time
import unittest
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from driver_harness import Driver  # noqa: E402

DRIVER = os.path.join(HERE, "..", "..", "kernels", "drivers", "node", "driver.js")
NODE = os.environ.get("CB_TEST_NODE", "/usr/bin/node")
HAVE_TS = os.path.isdir("/usr/share/nodejs/typescript")


def tiny_png():
    """A valid 2x1 RGB PNG, built by hand."""
    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)
    raw = b"\x00" + b"\xff\x00\x00" + b"\x00\x00\xff"
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 1, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


class Base:
    LANG = None

    def setUp(self):
        self.home = tempfile.TemporaryDirectory(prefix="cb-node-test-")
        env = {"PATH": "/usr/bin:/bin", "HOME": self.home.name, "TMPDIR": "/tmp", "LANG": "C.UTF-8"}
        self.d = Driver([NODE, DRIVER, self.LANG], env=env, cwd=self.home.name, deadline=60)
        self.count = 0

    def tearDown(self):
        self.d.close()
        self.home.cleanup()

    # -- helpers ---------------------------------------------------------------------------------
    def run_cell(self, code, **kw):
        self.count += 1
        return self.d.execute(code, count=self.count, **kw)

    def result(self, code):
        """Run a cell that must succeed; its text/plain result (None when it has none)."""
        events, out, err = self.run_cell(code)
        errors = [e for e in events if e["ev"] == "error"]
        self.assertEqual(errors, [], "cell %r failed; stderr: %s" % (code, err))
        results = [e for e in events if e["ev"] == "result"]
        self.assertLessEqual(len(results), 1)
        return results[0]["data"]["text/plain"] if results else None

    def error(self, code):
        events, out, err = self.run_cell(code)
        errors = [e for e in events if e["ev"] == "error"]
        self.assertEqual(len(errors), 1, "cell %r: %r" % (code, events))
        self.assertEqual(events[-1], {"ev": "done"})
        self.assertFalse([e for e in events if e["ev"] == "result"])
        return errors[0]

    def start_cell(self, code):
        self.count += 1
        self.d.out = self.d.err = b""
        self.d.send({"op": "execute", "code": code, "silent": False, "allow_stdin": False,
                     "execution_count": self.count})

    def wait_output(self, marker, deadline=30):
        end = time.monotonic() + deadline
        while marker.encode() not in self.d.out:
            left = end - time.monotonic()
            if left <= 0:
                self.fail("no %r on stdout within %d s; stderr: %s" % (marker, deadline, self.d.err))
            self.d._pump(left)

    def events_until_done(self):
        events = []
        while not events or events[-1]["ev"] != "done":
            events.append(self.d.next_event())
        return events

    def interrupt_cell(self, code):
        """Run code that prints 'started' then never ends; SIGINT it as the kernel does (again
        every 0.5 s while the cell runs: a SIGINT that lands while Node swaps its handlers around
        a breakOnSigint run is lost, PROTOCOL.md); the events."""
        self.start_cell(code)
        self.wait_output("started")
        events = []
        end = time.monotonic() + 30
        while not events or events[-1]["ev"] != "done":
            self.assertLess(time.monotonic(), end, "the cell did not stop")
            if not events:
                self.d.interrupt()
            r, _, _ = select.select([self.d._ev_r], [], [], 0.5)
            if r or b"\n" in self.d._buf.get(self.d._ev_r, b""):
                events.append(self.d.next_event())
        return events

    # -- tests shared by both languages ---------------------------------------------------------
    def test_ready(self):
        self.assertEqual(self.d.ready["ev"], "ready")
        self.assertRegex(self.d.ready["version"], r"^\d+\.\d+\.\d+")

    def test_last_value_and_no_value(self):
        self.assertEqual(self.result("1 + 1"), "2")
        self.assertEqual(self.result("'a' + 'b'"), "'ab'")
        self.assertIsNone(self.result("undefined"))
        self.assertEqual(self.result("({a: 1, b: [1, 2]})"), "{ a: 1, b: [ 1, 2 ] }")

    def test_top_level_await_persists(self):
        self.assertEqual(self.result("async function five() { await new Promise(res => setTimeout(res, 10)); return 5 }\n"
                                     "const r = await five(); r"), "5")
        self.assertEqual(self.result("r + 1"), "6")
        self.assertEqual(self.result("Promise.resolve(7)"), "7")

    def test_output_belongs_to_cell(self):
        events, out, err = self.run_cell(
            "console.log('one'); console.error('two');\n"
            "setTimeout(() => console.log('three'), 5);\n"
            "await new Promise(res => setTimeout(res, 30));")
        self.assertEqual(events, [{"ev": "done"}])
        self.assertEqual(out, "one\nthree\n")
        self.assertEqual(err, "two\n")

    def test_display(self):
        png = tiny_png()
        b64 = base64.b64encode(png).decode()
        events, out, err = self.run_cell(
            "display.html('<b>x</b>');\n"
            "display.png(Buffer.from('%s', 'base64'));\n"
            "display.png('%s');\n"
            "display({'text/markdown': '# hi'});\n"
            "display.json({a: 1});\n"
            "display([1, 2]);\n"
            "display.svg('<svg/>');" % (b64, b64))
        shown = [e["data"] for e in events if e["ev"] == "display"]
        self.assertEqual(shown, [
            {"text/html": "<b>x</b>"}, {"image/png": b64}, {"image/png": b64},
            {"text/markdown": "# hi"}, {"application/json": {"a": 1}}, {"text/plain": "[ 1, 2 ]"},
            {"image/svg+xml": "<svg/>"}])
        self.assertEqual(base64.b64decode(shown[1]["image/png"]), png)
        self.assertEqual(events[-1], {"ev": "done"})

    def test_lone_surrogates_become_replacement_characters(self):
        events, out, err = self.run_cell("display.html('a\\ud800\\udc00\\ud800\\ud800b\\\\ud800')")
        self.assertEqual(events[0]["data"]["text/html"], "a\U00010000\ufffd\ufffdb\\ud800")

    def test_runtime_error_has_cell_lines(self):
        e = self.error("const a1 = 1;\n\nthrow new RangeError('boom');")
        self.assertEqual(e["ename"], "RangeError")
        self.assertEqual(e["evalue"], "boom")
        tb = "\n".join(e["traceback"])
        self.assertIn("cell[%d]:3:7" % self.count, tb)
        self.assertNotIn("driver.js", tb)
        self.assertNotIn("node:vm", tb)
        # the variable declared before the throw is kept
        self.assertEqual(self.result("a1"), "1")

    def test_error_in_function_of_earlier_cell(self):
        self.result("function thrower() {\n  throw new Error('deep');\n}")
        e = self.error("\nthrower()")
        tb = "\n".join(e["traceback"])
        self.assertIn("cell[1]:2:9", tb)
        self.assertIn("cell[2]:2:1", tb)

    def test_thrown_non_error(self):
        e = self.error("throw 42")
        self.assertEqual(e["ename"], "Error")
        self.assertIn("42", e["evalue"])

    def test_interrupt_busy_loop_keeps_state(self):
        self.result("let kept = 40")
        events = self.interrupt_cell("kept = 41; console.log('started'); while (true) {}")
        errors = [e for e in events if e["ev"] == "error"]
        self.assertEqual([e["ename"] for e in errors], ["Interrupted"])
        self.assertEqual(self.result("kept + 1"), "42")

    def test_interrupt_pending_await_keeps_state(self):
        self.result("let kept2 = 1")
        events = self.interrupt_cell(
            "kept2 = 2; console.log('started'); await new Promise(() => {});")
        self.assertEqual([e["ename"] for e in events if e["ev"] == "error"], ["Interrupted"])
        self.assertEqual(self.result("kept2"), "2")

    def test_sigint_between_cells_is_ignored(self):
        self.d.interrupt()
        self.d.interrupt()
        self.assertEqual(self.result("3"), "3")
        self.assertIsNone(self.d.proc.poll())

    def test_input(self):
        events, out, err = self.run_cell("const nm = input('Name? '); 'hi ' + nm", allow_stdin=True,
                                         on_input=lambda ev: "Bob")
        self.assertEqual(events[0], {"ev": "input_request", "prompt": "Name? ", "password": False})
        self.assertEqual(events[1]["data"]["text/plain"], "'hi Bob'")
        events, out, err = self.run_cell("input('x')", on_input=lambda ev: None)
        errors = [e for e in events if e["ev"] == "error"]
        self.assertEqual(len(errors), 1)
        self.assertIn("stdin is not available", errors[0]["evalue"])

    def test_readline_promise(self):
        events, out, err = self.run_cell("await readline('>> ')", allow_stdin=True, on_input=lambda ev: "typed")
        self.assertEqual(events[-2]["data"]["text/plain"], "'typed'")

    def test_complete_and_inspect(self):
        self.result("const someVariable = 12; const objForTest = {alpha: 1, alpine: 2}")
        r = self.d.request({"op": "complete", "code": "someVar", "cursor_pos": 7})
        self.assertEqual(r["ev"], "complete_reply")
        self.assertIn("someVariable", r["matches"])
        self.assertEqual((r["cursor_start"], r["cursor_end"]), (0, 7))
        code = "'\U0001F600'; objForTest.alp"
        n = len(code)  # Python counts code points, as the protocol does
        r = self.d.request({"op": "complete", "code": code, "cursor_pos": n})
        self.assertEqual(r["matches"], ["alpha", "alpine"])
        self.assertEqual((r["cursor_start"], r["cursor_end"]), (n - 3, n))
        r = self.d.request({"op": "complete", "code": "Math.flo", "cursor_pos": 8})
        self.assertIn("floor", r["matches"])
        r = self.d.request({"op": "complete", "code": "f().x", "cursor_pos": 5})
        self.assertEqual(r["matches"], [])
        r = self.d.request({"op": "inspect", "code": "someVariable + 1", "cursor_pos": 3, "detail_level": 0})
        self.assertTrue(r["found"])
        self.assertIn("number", r["data"]["text/plain"])
        self.assertIn("12", r["data"]["text/plain"])
        r = self.d.request({"op": "inspect", "code": "nothingHere", "cursor_pos": 3, "detail_level": 0})
        self.assertFalse(r["found"])

    def test_is_complete(self):
        def status(code):
            r = self.d.request({"op": "is_complete", "code": code})
            self.assertEqual(r["ev"], "is_complete_reply")
            return r["status"]
        self.assertEqual(status("1 + 1"), "complete")
        self.assertEqual(status("function f() {"), "incomplete")
        self.assertEqual(status("const s = `abc"), "incomplete")
        self.assertEqual(status("foo(1,"), "incomplete")
        self.assertEqual(status("x = )"), "invalid")

    def test_uncaught_async_errors_do_not_kill(self):
        events, out, err = self.run_cell(
            "setTimeout(() => { throw new Error('later') }, 5);\n"
            "Promise.reject(new Error('rejected'));\n"
            "await new Promise(res => setTimeout(res, 50));\n"
            "'alive'")
        self.assertEqual(events[0]["data"]["text/plain"], "'alive'")
        self.assertIn("later", err)
        self.assertIn("rejected", err)
        self.assertEqual(self.result("1"), "1")
        self.assertIsNone(self.d.proc.poll())

    def test_big_output(self):
        events, out, err = self.run_cell("console.log('x'.repeat(20 * 1024 * 1024)); 7")
        self.assertEqual(events[0]["data"]["text/plain"], "7")
        self.assertEqual(len(out), 20 * 1024 * 1024 + 1)

    def test_cwd_and_env_persist(self):
        self.result("process.chdir('/tmp'); process.env.CB_X = 'y'")
        self.assertEqual(self.result("process.cwd() + ' ' + process.env.CB_X"), "'/tmp y'")

    def test_require_from_cwd_node_modules(self):
        pkg = os.path.join(self.home.name, "node_modules", "cbpkg")
        os.makedirs(pkg)
        with open(os.path.join(pkg, "index.js"), "w") as f:
            f.write("module.exports = { answer: 42 };\n")
        self.assertEqual(self.result("require('cbpkg').answer"), "42")
        self.assertEqual(self.result("(await import('cbpkg')).default.answer"), "42")

    def test_bad_requests_are_survived(self):
        os.write(self.d._req_w, b"this is not json\n{\"op\": \"nonsense\"}\n[1]\n")
        self.assertEqual(self.result("2 + 2"), "4")

    def test_timing(self):
        """Round trip of a trivial cell (send to done), after warm-up; reported, loosely bounded."""
        for _ in range(5):
            self.result("1")
        times = []
        for _ in range(20):
            self.count += 1
            t = time.monotonic()
            self.d.send({"op": "execute", "code": "1", "silent": False, "allow_stdin": False,
                         "execution_count": self.count})
            while self.d.next_event()["ev"] != "done":
                pass
            times.append(time.monotonic() - t)
        times.sort()
        p50 = times[len(times) // 2] * 1000
        sys.stderr.write("\n# %s trivial cell round trip p50 %.2f ms\n" % (self.LANG, p50))
        self.assertLess(p50, 2000)


class JavaScript(Base, unittest.TestCase):
    LANG = "javascript"

    def test_state_across_three_cells(self):
        self.assertIsNone(self.result("let a = 1; const b = 2"))
        self.assertIsNone(self.result("function add(x, y) { return x + y }\nclass K { v() { return 10 } }"))
        self.assertEqual(self.result("add(a, b) + new K().v()"), "13")

    def test_redeclare(self):
        self.result("const c = 1")
        self.assertEqual(self.result("const c = 2; c"), "2")
        self.result("class C {}")
        self.assertEqual(self.result("class C { x() { return 3 } }; new C().x()"), "3")
        self.result("let l = 5")
        self.assertEqual(self.result("let l; l"), None)

    def test_require_builtin_and_import(self):
        self.assertEqual(self.result("require('path').join('a', 'b')"), "'a/b'")
        self.assertEqual(self.result("import os from 'os'; import { join } from 'path'; typeof os.cpus + join('c', 'd')"),
                         "'functionc/d'")
        self.assertEqual(self.result("typeof os.hostname"), "'function'")
        self.assertEqual(self.result("const { readFileSync } = await import('fs'); typeof readFileSync"), "'function'")

    def test_syntax_error_names_line(self):
        e = self.error("let ok = 1;\nlet = = 2;")
        self.assertEqual(e["ename"], "SyntaxError")
        self.assertIn("line 2", e["evalue"])
        self.assertIn("cell[%d]:2" % self.count, e["traceback"][0])

    def test_globals_present(self):
        self.assertEqual(self.result("[typeof process, typeof Buffer, typeof setTimeout, typeof fetch, typeof console].join()"),
                         "'object,function,function,function,object'")


@unittest.skipUnless(HAVE_TS, "node-typescript (/usr/share/nodejs/typescript) is not installed")
class TypeScript(Base, unittest.TestCase):
    LANG = "typescript"

    def test_state_across_three_cells(self):
        self.assertIsNone(self.result("type Pt = { x: number }\nlet n: number = 1"))
        self.assertIsNone(self.result("const pt: Pt = { x: 2 }\nfunction twice(v: number): number { return 2 * v }"))
        self.assertEqual(self.result("twice(pt.x) + n"), "5")
        self.assertEqual(self.result("n = 10; n"), "10")
        self.assertIn("TS2322", self.error("n = 'ten'")["evalue"])  # assignments across cells are checked

    def test_type_error_not_run(self):
        e = self.error("(globalThis as any).ranTs = 1;\nconst bad: number = 'text';")
        self.assertEqual(e["ename"], "TSError")
        self.assertIn("cell[%d]:2:7 - error TS2322: Type 'string' is not assignable to type 'number'." % self.count,
                      e["evalue"])
        self.assertIsNone(self.result("(globalThis as any).ranTs"))

    def test_type_error_uses_earlier_cells(self):
        self.result("interface User { name: string }\nconst u: User = { name: 'a' }")
        e = self.error("const age: number = u.name")
        self.assertIn("TS2322", e["evalue"])
        self.assertEqual(self.result("u.name"), "'a'")

    def test_redeclare(self):
        self.result("const c: number = 1")
        self.assertEqual(self.result("const c: string = 'two'; c"), "'two'")
        self.assertEqual(self.result("c.length"), "3")

    def test_require_builtin_and_import(self):
        self.assertEqual(self.result("import * as path from 'path';\npath.join('a', 'b')"), "'a/b'")
        self.assertEqual(self.result("path.join('c', 'd')"), "'c/d'")
        self.assertEqual(self.result("const fs = require('fs'); typeof fs.readFileSync"), "'function'")

    def test_ts_features(self):
        self.assertEqual(self.result("enum Color { Red, Green }\nColor.Green"), "1")
        self.assertEqual(self.result("class P { constructor(public x: number) {} }\nnew P(3).x"), "3")
        self.assertEqual(self.result("const g = <T,>(v: T): T => v; g<string>('s')"), "'s'")

    def test_syntax_error_names_line(self):
        e = self.error("let ok = 1;\nlet = = 2;")
        self.assertEqual(e["ename"], "TSError")
        self.assertIn("cell[%d]:2:" % self.count, e["evalue"])

    def test_is_complete_ts(self):
        r = self.d.request({"op": "is_complete", "code": "interface A {"})
        self.assertEqual(r["status"], "incomplete")
        r = self.d.request({"op": "is_complete", "code": "let x: number = 1"})
        self.assertEqual(r["status"], "complete")


class Startup(unittest.TestCase):
    def test_javascript_ready_time(self):
        times = []
        for _ in range(5):
            t = time.monotonic()
            with Driver([NODE, DRIVER, "javascript"], cwd="/tmp") as d:
                times.append(time.monotonic() - t)
                self.assertEqual(d.ready["ev"], "ready")
        times.sort()
        sys.stderr.write("\n# javascript ready median %.1f ms (best %.1f)\n" % (times[2] * 1000, times[0] * 1000))

    @unittest.skipUnless(HAVE_TS, "no node-typescript")
    def test_typescript_ready_time(self):
        t = time.monotonic()
        with Driver([NODE, DRIVER, "typescript"], cwd="/tmp") as d:
            ready = time.monotonic() - t
            t = time.monotonic()
            d.send({"op": "execute", "code": "1", "silent": False, "allow_stdin": False, "execution_count": 1})
            while d.next_event()["ev"] != "done":
                pass
            first = time.monotonic() - t
        sys.stderr.write("\n# typescript ready %.1f ms, first cell %.1f ms\n" % (ready * 1000, first * 1000))

    @unittest.skipUnless(os.geteuid() == 0 and os.path.exists("/usr/bin/unshare") and HAVE_TS
                         and "CB_TEST_NODE" not in os.environ,
                         "needs root and unshare to hide /usr/share/nodejs/typescript (and /usr/bin/node: "
                         "a CB_TEST_NODE wrapper may mount its own /usr/share/nodejs)")
    def test_typescript_missing(self):
        with tempfile.TemporaryDirectory() as empty:
            script = ('mount --bind "$1" /usr/share/nodejs/typescript && cd /tmp && '
                      'exec "$2" "$3" typescript 3</dev/null 4>/dev/null')
            p = subprocess.run(["/usr/bin/unshare", "-m", "sh", "-c", script, "sh", empty, NODE, DRIVER],
                               capture_output=True, timeout=60)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(b"node-typescript", p.stderr)

    def test_unknown_language(self):
        with self.assertRaises(EOFError):
            Driver([NODE, DRIVER, "cobol"], cwd="/tmp")


if __name__ == "__main__":
    unittest.main()
