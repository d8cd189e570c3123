#!/usr/bin/python3
"""test_kernel_suite.py: Debian's jupyter_kernel_test against every kernel cellblock ships, each
kernel running inside a cellblock sandbox.

    /usr/bin/python3 test_kernel_suite.py PATH/TO/cellblock KERNEL     (e.g. python3, ir, go)

jupyter_kernel_test's KernelTests normally starts the kernel itself through jupyter_client's
KernelManager. Here cellblock starts it instead: `cellblock kernel --kernel NAME
--connection-file FILE` runs the kernel in a fresh sandbox and writes an attach connection file
(loopback ports that cellblock proxies to the kernel, with a key of their own). setUpClass waits
for that file's path on cellblock's stdout, connects a jupyter_client BlockingKernelClient to it
(cls.kc, what every test uses) and gives the suite a stand-in for the manager (cls.km) whose
shutdown_kernel() stops cellblock, which stops the kernel and its sandbox. cellblock's debug log
must say the kernel was started "sandboxed", so a kernel that ran outside a sandbox fails.

One KernelTests subclass per kernel holds that language's samples; adding a language is one small
class in KERNELS. A kernel whose kernelspec is not installed is a SKIP (exit 77) naming it, unless
CELLBLOCK_KERNEL_SUITE_REQUIRE=all, when it fails.

Every wait has a deadline.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

from jupyter_client import BlockingKernelClient
from jupyter_kernel_test import KernelTests

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from checks import read_line  # noqa: E402

START_DEADLINE_S = 120.0  # a cold JVM or R on a busy machine
STOP_DEADLINE_S = 30.0
SKIP = 77


def die_with_parent():
    """In the child before exec: SIGTERM when the test dies (ctest's timeout kills it with
    SIGKILL, and no tearDown runs then), so cellblock still stops its kernel and sandbox."""
    import ctypes
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class SandboxedKernel:
    """`cellblock kernel` serving one kernel in a sandbox; the suite's cls.km."""

    def __init__(self, cellblock, kernel_name):
        self.tmp = tempfile.mkdtemp(prefix=f"cb-suite-{kernel_name}-")
        self.conn = os.path.join(self.tmp, "attach.json")
        self.log_path = os.path.join(self.tmp, "cellblock.log")
        env = dict(os.environ, CELLBLOCK_LOG_LEVEL="debug")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [cellblock, "kernel", "--kernel", kernel_name, "--connection-file", self.conn],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, env=env,
                preexec_fn=die_with_parent)
        self.started = time.monotonic()
        line = read_line(self.proc.stdout, START_DEADLINE_S)
        self.ready_s = time.monotonic() - self.started
        if line != self.conn + "\n":
            log = self.log()
            self.shutdown_kernel()
            raise RuntimeError(f"cellblock kernel --kernel {kernel_name} gave no connection file "
                               f"(printed {line!r}, exit {self.proc.poll()}):\n{log}")

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def sandboxed(self):
        return re.search(r"kernel \S+: started \S+ \(pid \d+, sandboxed\)", self.log()) is not None

    def shutdown_kernel(self, now=False, restart=False):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_DEADLINE_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_DEADLINE_S)
        self.proc.stdout.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


class SandboxedKernelTests(KernelTests):
    """KernelTests on a kernel that cellblock started in a sandbox."""

    cellblock = None  # set by main()

    @classmethod
    def setUpClass(cls):
        cls.km = SandboxedKernel(cls.cellblock, cls.kernel_name)
        cls.kc = BlockingKernelClient()
        try:
            cls.kc.load_connection_file(cls.km.conn)
            cls.kc.start_channels()
            cls.kc.wait_for_ready(timeout=START_DEADLINE_S)
        except BaseException:
            cls.kc.stop_channels()
            cls.km.shutdown_kernel()
            raise
        print(f"\n{cls.kernel_name}: connection file after {cls.km.ready_s:.2f} s", file=sys.stderr)

    def test_sandboxed(self):
        self.assertTrue(self.km.sandboxed(), "cellblock's log says the kernel started sandboxed:\n"
                        + self.km.log())


# ---- one class per kernel: its samples -----------------------------------------------------

class Python3(SandboxedKernelTests):
    kernel_name = "python3"
    language_name = "python"
    file_extension = ".py"
    code_hello_world = 'print("hello, world")'
    code_stderr = 'import sys; print("oops", file=sys.stderr)'
    completion_samples = [{"text": "import collections; collections.OrderedD",
                           "matches": ["OrderedDict"]}]
    complete_code_samples = ["x = 1", "print('a')"]
    incomplete_code_samples = ["def f(x):", "for i in range(3):"]
    invalid_code_samples = ["x = )"]
    code_generate_error = 'raise ValueError("boom")'
    code_execute_result = [{"code": "6 * 7", "result": "42"}]
    code_display_data = [{"code": "from IPython.display import HTML, display\n"
                                  "display(HTML('<b>hi</b>'))", "mime": "text/html"}]
    code_inspect_sample = "zip"
    code_page_something = "zip?"
    code_history_pattern = "6 *"
    # Not "range": the sandbox's fresh home makes IPython number its session 0 in a tail reply
    # and 1 in a range reply, which the suite's range check compares.
    supported_history_operations = ("tail", "search")


class R(SandboxedKernelTests):
    """Debian's IRkernel. It publishes a cell's value as display_data, never execute_result."""
    kernel_name = "ir"
    language_name = "R"
    file_extension = ".r"
    code_hello_world = 'cat("hello, world\\n")'
    code_stderr = 'message("oops")'
    completion_samples = [{"text": "print.data.fr", "matches": ["print.data.frame"]}]
    complete_code_samples = ["x <- 1", "f <- function(x) x + 1"]
    incomplete_code_samples = ["f <- function(x) {", "1 +"]
    invalid_code_samples = ["x <- )"]
    code_generate_error = 'stop("boom")'
    code_display_data = [{"code": "plot(1:10)", "mime": "image/png"},
                         {"code": "6 * 7", "mime": "text/plain"}]
    code_inspect_sample = "print"


# The kernels of cellblock-kernel (kernels/kernel/kn.h), from the semantics issue 15 asks for.

class JavaScript(SandboxedKernelTests):
    kernel_name = "javascript"
    file_extension = ".js"
    code_hello_world = 'console.log("hello, world")'
    code_stderr = 'console.error("oops")'
    complete_code_samples = ["let x = 1;", "console.log(2)"]
    incomplete_code_samples = ["function f(x) {", "let a = ["]
    code_generate_error = 'throw new Error("boom")'
    code_execute_result = [{"code": "6 * 7", "result": "42"}]
    code_display_data = [{"code": 'display.html("<b>hi</b>")', "mime": "text/html"}]


class TypeScript(SandboxedKernelTests):
    kernel_name = "typescript"
    file_extension = ".ts"
    code_hello_world = 'console.log("hello, world")'
    code_stderr = 'console.error("oops")'
    complete_code_samples = ["let x: number = 1;"]
    incomplete_code_samples = ["function f(x: number) {"]
    code_generate_error = 'const n: number = "not a number";'
    code_execute_result = [{"code": "6 * 7", "result": "42"}]
    code_display_data = [{"code": 'display.html("<b>hi</b>")', "mime": "text/html"}]


class Bash(SandboxedKernelTests):
    kernel_name = "bash"
    file_extension = ".sh"
    code_hello_world = "echo hello, world"
    code_stderr = "echo oops >&2"
    complete_code_samples = ["echo hi", "x=1"]
    incomplete_code_samples = ["if true; then", "for i in 1 2; do"]
    code_generate_error = "false"  # a failing status with no output: the error is the only output
    # A 1x1 red PNG, then shown. The helper's name is not final (issue 15: show_image or
    # display_image FILE).
    code_display_data = [{"code": "echo iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4"
                                  "nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC | base64 -d > dot.png\n"
                                  "show_image dot.png", "mime": "image/png"}]


class Java(SandboxedKernelTests):
    kernel_name = "java"
    file_extension = ".java"
    code_hello_world = 'System.out.println("hello, world");'
    code_stderr = 'System.err.println("oops");'
    complete_code_samples = ["int x = 1;"]
    incomplete_code_samples = ["void f() {"]
    code_generate_error = 'throw new RuntimeException("boom");'
    code_execute_result = [{"code": "6 * 7"}]  # JShell's own display ("$1 ==> 42") may differ


class Ruby(SandboxedKernelTests):
    kernel_name = "ruby"
    file_extension = ".rb"
    code_hello_world = 'puts "hello, world"'
    code_stderr = 'warn "oops"'
    complete_code_samples = ["x = 1", "puts 2"]
    incomplete_code_samples = ["def f(x)", "[1, 2].each do |i|"]
    code_generate_error = 'raise "boom"'
    code_execute_result = [{"code": "6 * 7", "result": "42"}]
    code_display_data = [{"code": 'display_html "<b>hi</b>"', "mime": "text/html"}]


class C(SandboxedKernelTests):
    kernel_name = "c"
    file_extension = ".c"
    code_hello_world = '#include <stdio.h>\nprintf("hello, world\\n");'
    code_stderr = '#include <stdio.h>\nfprintf(stderr, "oops\\n");'
    incomplete_code_samples = ["int f(int x) {"]
    code_generate_error = "int x = ;"


class Cpp(SandboxedKernelTests):
    kernel_name = "cpp"
    file_extension = ".cpp"
    code_hello_world = '#include <iostream>\nstd::cout << "hello, world" << std::endl;'
    code_stderr = '#include <iostream>\nstd::cerr << "oops" << std::endl;'
    incomplete_code_samples = ["int f(int x) {"]
    code_generate_error = "int x = ;"


class Rust(SandboxedKernelTests):
    kernel_name = "rust"
    file_extension = ".rs"
    code_hello_world = 'println!("hello, world");'
    code_stderr = 'eprintln!("oops");'
    incomplete_code_samples = ["fn f(x: i32) -> i32 {"]
    code_generate_error = "let x: i32 = ;"


class Go(SandboxedKernelTests):
    kernel_name = "go"
    file_extension = ".go"
    code_hello_world = 'import "fmt"\nfmt.Println("hello, world")'
    code_stderr = 'import "os"\nos.Stderr.WriteString("oops\\n")'
    incomplete_code_samples = ["func f(x int) int {"]
    code_generate_error = "x := "


KERNELS = {cls.kernel_name: cls for cls in
           (Python3, R, JavaScript, TypeScript, Bash, Java, Ruby, C, Cpp, Rust, Go)}


def installed_kernels(cellblock):
    """The kernelspec names `cellblock kernels` lists (first column, after the header)."""
    out = subprocess.run([cellblock, "kernels"], capture_output=True, text=True,
                         timeout=STOP_DEADLINE_S, check=True).stdout
    return {line.split()[0] for line in out.splitlines()[1:] if line.strip()}


def main():
    if len(sys.argv) != 3 or sys.argv[2] not in KERNELS:
        print(f"usage: test_kernel_suite.py PATH/TO/cellblock {{{','.join(KERNELS)}}}",
              file=sys.stderr)
        return 2
    cellblock, name = os.path.abspath(sys.argv[1]), sys.argv[2]
    if name not in installed_kernels(cellblock):
        if os.environ.get("CELLBLOCK_KERNEL_SUITE_REQUIRE") == "all":
            print(f"FAIL: kernel '{name}' is not installed (no kernelspec named {name}), and "
                  "CELLBLOCK_KERNEL_SUITE_REQUIRE=all", flush=True)
            return 1
        print(f"SKIP: kernel '{name}' is not installed (no kernelspec named {name})", flush=True)
        return SKIP
    SandboxedKernelTests.cellblock = cellblock
    suite = unittest.defaultTestLoader.loadTestsFromTestCase(KERNELS[name])
    result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
