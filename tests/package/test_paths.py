#!/usr/bin/env python3
"""test_paths.py: cellblock finds its own files beside its binary, never in a build or source tree.

Why: a binary that prefers paths baked in from its build lets whoever can create those paths on a
shared machine choose the sandbox's PID 1 and the kernelspecs (docs/security.md). The rule is
cb/paths.h: <prefix> is the directory above the one holding the executable's real file; kernels
and templates are in <prefix>/share/cellblock, the init in <prefix>/libexec/cellblock; only
CELLBLOCK_DATA_DIR, CELLBLOCK_LIBEXEC_DIR and CELLBLOCK_INIT override it.

How: the built `cellblock` is copied into a fresh prefix under /tmp and run from a bare
environment (no HOME, no JUPYTER_PATH). Its doctor, kernels and templates must name only that
prefix (and the system's Jupyter directories), never the build tree, whose share/ and libexec/
hold a working kernelspec, templates and init, nor the source tree; a kernelspec planted in the
copy's prefix must be found, also when the binary is reached through a symlink elsewhere; and
each override must win.

usage: test_paths.py CELLBLOCK BUILD_DIR SOURCE_DIR
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

failures = 0


def ok(cond, what, detail=""):
    global failures
    print(("ok - " if cond else "FAIL - ") + what)
    if not cond:
        failures += 1
        for line in str(detail).rstrip().splitlines()[-30:]:
            print("#   " + line)
    return cond


def run(argv, extra_env=None):
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    env.update(extra_env or {})
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                       timeout=120)
    return r.stdout


def main():
    cellblock, build, source = (os.path.realpath(p) for p in sys.argv[1:4])
    # The build tree is a working prefix: the binary there finds its files beside itself.
    out = run([cellblock, "kernels"])
    ok(os.path.join(build, "share/cellblock/kernels/python3") in out,
       "the build tree's cellblock finds build/share/cellblock/kernels", out)

    with tempfile.TemporaryDirectory(prefix="cb-paths-") as tmp:
        prefix = os.path.join(tmp, "prefix")
        os.makedirs(os.path.join(prefix, "bin"))
        copy = os.path.join(prefix, "bin", "cellblock")
        shutil.copy2(cellblock, copy)

        def clean(text):
            return build not in text and source not in text

        out = run([copy, "doctor"])
        want_init = os.path.join(prefix, "libexec/cellblock/cellblock-init")
        ok(f"init: {want_init} (MISSING" in out and clean(out),
           "a copied binary's init is <its prefix>/libexec/cellblock/cellblock-init (missing), not "
           "the build tree's", out)
        ok(f"data: {prefix}/share/cellblock (MISSING" in out,
           "a copied binary's data dir is <its prefix>/share/cellblock (missing)", out)

        out = run([copy, "kernels"])
        ok(clean(out), "a copied binary lists no kernelspec from the build or source tree", out)
        out = run([copy, "templates"])
        ok(clean(out) and os.path.join(prefix, "share/cellblock/templates") in out,
           "a copied binary searches <its prefix>/share/cellblock/templates and no tree for "
           "templates", out)

        # Planted in the copy's own prefix: found, through a symlink from elsewhere too.
        spec_dir = os.path.join(prefix, "share/cellblock/kernels/planted")
        os.makedirs(spec_dir)
        with open(os.path.join(spec_dir, "kernel.json"), "w") as f:
            json.dump({"argv": ["/bin/true", "{connection_file}"], "display_name": "Planted",
                       "language": "none"}, f)
        out = run([copy, "kernels"])
        ok("planted" in out and spec_dir in out, "a kernelspec in <prefix>/share/cellblock is found", out)
        link_dir = os.path.join(tmp, "elsewhere", "bin")
        os.makedirs(link_dir)
        os.symlink(copy, os.path.join(link_dir, "cellblock"))
        out = run([os.path.join(link_dir, "cellblock"), "kernels"])
        ok(spec_dir in out, "through a symlink, the prefix is the real file's", out)

        # The explicit settings, and only they, move it.
        other = os.path.join(tmp, "other")
        os.makedirs(os.path.join(other, "kernels/other"))
        with open(os.path.join(other, "kernels/other/kernel.json"), "w") as f:
            json.dump({"argv": ["/bin/true"], "display_name": "Other", "language": "none"}, f)
        out = run([copy, "kernels"], {"CELLBLOCK_DATA_DIR": other})
        ok(os.path.join(other, "kernels/other") in out and "planted" not in out,
           "CELLBLOCK_DATA_DIR replaces <prefix>/share/cellblock", out)
        out = run([copy, "doctor"], {"CELLBLOCK_LIBEXEC_DIR": "/nonexistent/libexec"})
        ok("init: /nonexistent/libexec/cellblock-init" in out,
           "CELLBLOCK_LIBEXEC_DIR replaces <prefix>/libexec/cellblock", out)
        out = run([copy, "doctor"], {"CELLBLOCK_INIT": "/nonexistent/init"})
        ok("init: /nonexistent/init" in out, "CELLBLOCK_INIT names the init itself", out)

    print("# %s" % ("all passed" if failures == 0 else f"{failures} failed"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
