#!/usr/bin/python3
"""test_compiled.py: cellblock-kernel's compiled languages (C, C++, Rust, Go) end to end.

    /usr/bin/python3 test_compiled.py PATH/TO/cellblock-kernel [LANG...]

For each language, a kernel is started on the host (no sandbox) with a connection file and
driven with jupyter_client: hello world; a function and a global defined in one cell and used in
the next, then the function redefined in a later cell; a compile error whose message names the
cell's own line (cell[N]:LINE); a runtime crash; an infinite loop interrupted (after it printed,
so the program itself is killed), after which a cell using the earlier definitions still runs; a
program reading stdin, its input_request answered (C and C++: only once its prompt was shown). A
language whose compiler is missing is skipped with the reason. The kernel's log must hold no
sanitizer report (for builds with -DCB_SANITIZE).

Every wait is on a message, with a deadline.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from checks import check, finish  # noqa: E402

from jupyter_client import BlockingKernelClient  # noqa: E402
from jupyter_client.connect import write_connection_file  # noqa: E402

CELL_S = 120  # a cell's deadline: a cold Go build on a loaded machine is slow
PROMPT_S = 5  # how long an answer waits for the prompt printed before the read

# Per language: the cells (code, and what must be seen).
SAMPLES = {
    "c": {
        "compiler": "/usr/bin/gcc",
        "hello": '#include <stdio.h>\nprintf("hello %d\\n", 6 * 7);',
        "defs": "int counter = 41;\nint next(int x) { return x + 1; }",
        "use": 'printf("%d\\n", next(counter));',
        "redef": 'int next(int x) { return x + 2; }\nprintf("%d\\n", next(counter));',
        "bad": 'int fine = 1;\nprintf("%d\\n", undefined_thing);',
        "bad_line": 2,
        "crash": "volatile int *volatile nowhere = 0;\n*nowhere = 1;",
        "crash_ename": "Signal",
        "loop": 'printf("looping\\n");\nwhile (1) { }',
        "prompt": "name? ",
        "stdin": 'char line[64];\nprintf("name? ");\nif (fgets(line, sizeof line, stdin))\n'
                 '    printf("hi %s", line);',
    },
    "cpp": {
        "compiler": "/usr/bin/g++",
        "hello": '#include <iostream>\n#include <string>\nstd::cout << "hello " << 6 * 7 << std::endl;',
        "defs": "int counter = 41;\nint next(int x) { return x + 1; }",
        "use": "std::cout << next(counter) << std::endl;",
        "redef": "int next(int x) { return x + 2; }\nstd::cout << next(counter) << std::endl;",
        "bad": "int fine = 1;\nstd::cout << undefined_thing;",
        "bad_line": 2,
        "crash": "volatile int *volatile nowhere = nullptr;\n*nowhere = 1;",
        "crash_ename": "Signal",
        "loop": 'std::cout << "looping" << std::endl;\nwhile (true) { }',
        "prompt": "name? ",
        "stdin": 'std::string name;\nstd::cout << "name? ";\nstd::cin >> name;\n'
                 'std::cout << "hi " << name << std::endl;',
    },
    "rust": {
        "compiler": "/usr/bin/rustc",
        "hello": 'println!("hello {}", 6 * 7);',
        "defs": "static COUNTER: i32 = 41;\nfn next(x: i32) -> i32 { x + 1 }",
        "use": 'println!("{}", next(COUNTER));',
        "redef": 'fn next(x: i32) -> i32 { x + 2 }\nprintln!("{}", next(COUNTER));',
        "bad": 'let fine = 1;\nprintln!("{}", undefined_thing);',
        "bad_line": 2,
        "crash": 'panic!("boom");',
        "crash_ename": "ExitCode",
        "loop": 'println!("looping");\nloop { }',
        "stdin": 'let mut line = String::new();\nstd::io::stdin().read_line(&mut line).unwrap();\n'
                 'println!("hi {}", line.trim());',
    },
    "go": {
        "compiler": "/usr/bin/go",
        "hello": 'import "fmt"\nfmt.Println("hello", 6*7)',
        "defs": "var counter = 41\nfunc next(x int) int { return x + 1 }",
        "use": "fmt.Println(next(counter))",
        "redef": "func next(x int) int { return x + 2 }\nfmt.Println(next(counter))",
        "bad": "fine := 1\nfmt.Println(fine, undefinedThing)",
        "bad_line": 2,
        "crash": "var nowhere *int\n*nowhere = 1",
        "crash_ename": "ExitCode",
        "loop": 'fmt.Println("looping")\nfor {\n}',
        "stdin": 'import (\n\t"bufio"\n\t"os"\n)\nr := bufio.NewReader(os.Stdin)\n'
                 'line, _ := r.ReadString(\'\\n\')\nfmt.Print("hi ", line)',
    },
}


class Run:
    """One execute_request: what came back for it."""

    def __init__(self):
        self.stdout = ""
        self.stderr = ""
        self.error = None  # (ename, evalue, traceback)
        self.reply = None
        self.input_requests = []
        self.timed_out = False


def execute(kc, code, answer=None, on_output=None, prompt=None):
    """Run code; answer input_requests with answer (None: allow_stdin false). With prompt, an
    answer waits until prompt was printed (at most PROMPT_S); run.prompt_seen says whether it was
    (a program that did not flush it before reading never prints it while it waits). on_output(run)
    is called after each stream message (it may send an interrupt)."""
    run = Run()
    run.prompt_seen = None
    pending_since = None
    msg_id = kc.execute(code, allow_stdin=answer is not None)
    deadline = time.monotonic() + CELL_S
    idle = False
    while not idle:
        left = deadline - time.monotonic()
        if left <= 0:
            run.timed_out = True
            return run
        if answer is not None:
            try:
                req = kc.get_stdin_msg(timeout=0.05)
                if req["header"]["msg_type"] == "input_request":
                    run.input_requests.append(req["content"])
                    pending_since = time.monotonic()
            except Exception:  # queue.Empty
                pass
            if pending_since is not None:
                seen = prompt is None or prompt in run.stdout
                if seen or time.monotonic() - pending_since > PROMPT_S:
                    if prompt is not None and run.prompt_seen is None:
                        run.prompt_seen = seen
                    kc.input(answer)
                    pending_since = None
        try:
            msg = kc.get_iopub_msg(timeout=0.05 if answer is not None else min(left, 1.0))
        except Exception:
            continue
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = msg["header"]["msg_type"], msg["content"]
        if kind == "stream":
            if content["name"] == "stdout":
                run.stdout += content["text"]
            else:
                run.stderr += content["text"]
            if on_output:
                on_output(run)
        elif kind == "error":
            run.error = (content["ename"], content["evalue"], content["traceback"])
        elif kind == "status" and content["execution_state"] == "idle":
            idle = True
    try:
        reply = kc.get_shell_msg(timeout=max(1, deadline - time.monotonic()))
        while reply["parent_header"].get("msg_id") != msg_id:
            reply = kc.get_shell_msg(timeout=max(1, deadline - time.monotonic()))
        run.reply = reply["content"]
    except Exception:
        run.timed_out = True
    return run


def interrupt(kc):
    msg = kc.session.msg("interrupt_request", {})
    kc.control_channel.send(msg)


def test_language(kernel, lang, sample):
    if not os.access(sample["compiler"], os.X_OK):
        print(f"SKIP {lang}: {sample['compiler']} is missing")
        return
    work = tempfile.mkdtemp(prefix=f"cb-compiled-{lang}-")
    conn = os.path.join(work, "kernel.json")
    write_connection_file(conn, ip="127.0.0.1", key=os.urandom(16).hex().encode())
    log = open(os.path.join(work, "kernel.log"), "w+")
    env = dict(os.environ, TMPDIR=work)
    proc = subprocess.Popen([kernel, lang, "-f", conn], stdout=log, stderr=subprocess.STDOUT, env=env,
                            cwd=work)
    kc = BlockingKernelClient(connection_file=conn)
    kc.load_connection_file()
    kc.start_channels()
    try:
        try:
            kc.wait_for_ready(timeout=30)
        except RuntimeError as e:
            log.seek(0)
            check(False, f"{lang}: the kernel is ready", f"{e}: {log.read()[-2000:]}")
            return
        info = kc.kernel_info(reply=True, timeout=10)["content"]
        check(info["language_info"]["name"] == {"cpp": "c++"}.get(lang, lang),
              f"{lang}: language_info names the language", str(info["language_info"]))
        check(info["language_info"].get("version"), f"{lang}: language_info has the compiler's version",
              str(info["language_info"]))

        r = execute(kc, sample["hello"])
        check(r.reply and r.reply["status"] == "ok" and "hello 42" in r.stdout, f"{lang}: hello world",
              f"{r.reply} {r.stdout!r} {r.error}")

        r = execute(kc, sample["defs"])
        check(r.reply and r.reply["status"] == "ok", f"{lang}: a cell of definitions compiles", f"{r.error}")
        r = execute(kc, sample["use"])
        check(r.reply and r.reply["status"] == "ok" and r.stdout.strip() == "42",
              f"{lang}: the next cell uses the function and the global", f"{r.stdout!r} {r.error}")

        r = execute(kc, sample["bad"])
        n = r.reply and r.reply.get("execution_count")
        where = f"cell[{n}]:{sample['bad_line']}"
        text = r.error and (r.error[1] + "\n" + "\n".join(r.error[2]))
        check(r.error and r.error[0] == "CompileError" and where in text,
              f"{lang}: a compile error names {where}", f"{r.error}")

        r = execute(kc, sample["crash"])
        check(r.error and r.error[0] == sample["crash_ename"], f"{lang}: a crash is an error {sample['crash_ename']}",
              f"{r.error} {r.stderr[-500:]!r}")
        if lang in ("c", "cpp"):
            check(r.error and "SIGSEGV" in r.error[1], f"{lang}: the signal is named", f"{r.error}")

        sent = []

        def on_output(run):
            if "looping" in run.stdout and not sent:
                interrupt(kc)
                sent.append(time.monotonic())

        r = execute(kc, sample["loop"], on_output=on_output)
        check(sent and r.error and r.error[0] == "Interrupted" and not r.timed_out,
              f"{lang}: an infinite loop is interrupted once it printed", f"{r.error} {r.stdout!r} {r.timed_out}")
        r = execute(kc, sample["use"])
        check(r.reply and r.reply["status"] == "ok" and r.stdout.strip() == "42",
              f"{lang}: after the interrupt the definitions are still there", f"{r.stdout!r} {r.error}")

        r = execute(kc, sample["redef"])
        check(r.reply and r.reply["status"] == "ok" and r.stdout.strip() == "43",
              f"{lang}: a function redefined in a later cell replaces the earlier one", f"{r.stdout!r} {r.error}")

        r = execute(kc, sample["stdin"], answer="world", prompt=sample.get("prompt"))
        check(r.input_requests and "hi world" in r.stdout and r.reply and r.reply["status"] == "ok",
              f"{lang}: a program reads stdin through input_request", f"{r.input_requests} {r.stdout!r} {r.error}")
        if sample.get("prompt"):
            # C's prelude makes stdin line-buffered so glibc flushes stdout before a read; C++'s
            # cin is tied to cout. Without that, the prompt stays in the buffer while it waits.
            check(r.prompt_seen, f"{lang}: the prompt is shown before the program waits for input",
                  f"{r.stdout!r}")
            if r.input_requests and not r.input_requests[0].get("prompt"):
                # kn.h promises the input_request's prompt is the cell's last unfinished output
                # line; the core sends "" so far.
                print(f"# {lang}: note: the input_request's prompt is empty (the core does not fill it yet)")
    finally:
        kc.stop_channels()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.seek(0)
        text = log.read()
        log.close()
        bad = [line for line in text.splitlines() if "Sanitizer" in line or "runtime error" in line]
        check(not bad, f"{lang}: the kernel's log has no sanitizer report", "\n".join(bad[:20]))
        shutil.rmtree(work, ignore_errors=True)


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    kernel = os.path.abspath(sys.argv[1])
    langs = sys.argv[2:] or list(SAMPLES)
    for lang in langs:
        test_language(kernel, lang, SAMPLES[lang])
    return finish()


if __name__ == "__main__":
    sys.exit(main())
