#!/usr/bin/python3
"""scripts/check-layers can fail: small trees with one violation each are refused, naming it,
and a tree that keeps the graph passes. Prints TAP."""
import os
import subprocess
import sys
import tempfile

CHECK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts", "check-layers")
n = failed = 0


def ok(cond, name, detail=""):
    global n, failed
    n += 1
    print(f"{'' if cond else 'not '}ok {n} - {name}")
    if not cond:
        failed += 1
        for line in detail.splitlines():
            print(f"#   {line}")


def tree(files):
    root = tempfile.mkdtemp(prefix="cb-layers-")
    for path, text in files.items():
        full = os.path.join(root, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w") as f:
            f.write(text)
    return root


# A clean miniature: the engine on common, mcp on the engine and common.
BASE = {
    "common/CMakeLists.txt": "add_library(cb_common STATIC util.c)\n",
    "common/include/cb/util.h": "",
    "common/util.c": '#include "cb/util.h"\n',
    "kernel-gateway/CMakeLists.txt": "add_library(kg STATIC kernel.c)\ntarget_link_libraries(kg PUBLIC cb_common PkgConfig::CZMQ)\n",
    "kernel-gateway/include/kg/kernel.h": '#include "cb/util.h"\n',
    "kernel-gateway/kernel.c": '#include "kg/kernel.h"\n#include <czmq.h>\n',
    "http/CMakeLists.txt": "add_library(cb_http STATIC server.c)\ntarget_link_libraries(cb_http PUBLIC cb_common)\n",
    "http/include/http/http.h": "",
    "http/server.c": '#include "http/http.h"\n#include "cb/util.h"\n',
    "mcp/CMakeLists.txt": "add_library(mcp STATIC tools.c)\ntarget_link_libraries(mcp PUBLIC kg cb_common)\n"
                          "if(BUILD_TESTING)\n  add_executable(test_mcp test_mcp.c)\n  target_link_libraries(test_mcp PRIVATE mcp cb_http)\nendif()\n",
    "mcp/include/mcp/mcp.h": "",
    "mcp/tools.c": '#include "mcp/mcp.h"\n#include "kg/kernel.h"\n#include "cb/util.h"\n',
    "mcp/test_mcp.c": '#include "http/http.h"\n',
}


def run(files):
    root = tree(files)
    p = subprocess.run([CHECK, "--root", root], capture_output=True, text=True)
    return p.returncode, p.stdout + p.stderr


rc, out = run(BASE)
ok(rc == 0, "a tree that keeps the graph passes (a test file may reach further)", out)

rc, out = run({**BASE, "kernel-gateway/include/kg/kernel.h": '#include "http/http.h"\n'})
ok(rc == 1 and "kernel-gateway/include/kg/kernel.h: includes http/ of http" in out,
   "the engine including an HTTP header is refused, naming the file", out)

rc, out = run({**BASE, "kernel-gateway/CMakeLists.txt":
               "add_library(kg STATIC kernel.c)\ntarget_link_libraries(kg PUBLIC cb_common mcp)\n"})
ok(rc == 1 and "kg links mcp of mcp" in out, "the engine linking a module above it is refused", out)

rc, out = run({**BASE, "mcp/tools.c": '#include "mcp/mcp.h"\n#include "kg/kernel.h"\n#include "http/http.h"\n'})
ok(rc == 1 and "include http's headers, but no target of mcp links http directly" in out,
   "a header used without its library declared is refused (nothing arrives transitively)", out)

rc, out = run({**BASE, "common/util.c": '#include "cb/util.h"\n#include "kg/kernel.h"\n'})
ok(rc == 1 and "common/util.c: includes kg/ of kernel-gateway" in out,
   "common reaching up into the engine is refused", out)

print(f"1..{n}")
sys.exit(1 if failed else 0)
