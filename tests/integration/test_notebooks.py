#!/usr/bin/env python3
"""test_notebooks.py: `cellblock run NOTEBOOK.ipynb` end to end, checked with Debian's nbformat.

A notebook's code cells run in order in a sandbox; the executed notebook (default
NAME.nbconvert.ipynb, or -o) validates with nbformat and holds outputs, execution counts and
errors; the first error stops the run (exit 1, naming the cell; later cells keep nothing)
unless --allow-errors or the cell is tagged raises-exception; a display update replaces the output
it updates; markdown cells stay as they were;
a notebook whose kernelspec or language_info names bash runs in the bash kernel; malformed
notebooks (bad JSON, nbformat 3, a bad cell, too large) are refused with a clear error (exit 2)
and no output file.

usage: test_notebooks.py PATH_TO_CELLBLOCK
"""
import json
import os
import subprocess
import sys
import tempfile

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from checks import check, finish

CELLBLOCK = sys.argv[1] if len(sys.argv) > 1 else "build/bin/cellblock"
DEADLINE_S = 120


def cellblock(*args):
    return subprocess.run([CELLBLOCK, *args], capture_output=True, text=True, timeout=DEADLINE_S)


def write(path, nb):
    with open(path, "w") as f:
        if isinstance(nb, str):
            f.write(nb)
        else:
            nbformat.write(nb, f)
    return path


def read_valid(path, what):
    """The notebook at path, validated by nbformat (None when it does not validate)."""
    try:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
    except Exception as e:  # the check below says what went wrong
        check(False, f"{what}: the executed notebook validates with nbformat", repr(e))
        return None
    check(True, f"{what}: the executed notebook validates with nbformat")
    return nb


def shape(cell):
    out = []
    for o in cell.get("outputs", []):
        t = o["output_type"]
        if t == "stream":
            out.append([t, o["name"], o["text"]])
        elif t == "error":
            out.append([t, o["ename"], o["evalue"]])
        else:
            out.append([t, o["data"].get("text/plain")])
    return [cell.get("execution_count"), out]


def python_notebook(tagged=False):
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    bad = new_code_cell("raise KeyError('cli-boom')")
    if tagged:
        bad.metadata["tags"] = ["raises-exception"]
    nb.cells = [new_markdown_cell("# Title\n\nkept *as is*"),
                new_code_cell("import sys\nprint('a')\nprint('b')\nprint('e', file=sys.stderr)\n6 * 7"),
                new_code_cell("   \n"),
                bad,
                new_code_cell("print('after')")]
    if tagged:  # display updates, as nbclient applies them: to the output shown, in its cell
        nb.cells += [new_code_cell("h = display('first', display_id=True)"), new_code_cell("h.update('second')")]
    return nb


def main():
    with tempfile.TemporaryDirectory(prefix="cb-nb-") as tmp:
        src = write(os.path.join(tmp, "analysis.ipynb"), python_notebook())
        stops = cellblock("run", src)
        check(stops.returncode == 1 and "cell 4 failed" in stops.stderr and "KeyError" in stops.stderr,
              "an error stops the run: exit 1, naming the cell and the error", f"{stops.returncode}: {stops.stderr[-600:]}")
        check("a\nb\n" in stops.stdout and "after" not in stops.stdout, "streams print as they arrive; the cell after the error did not run",
              repr(stops.stdout))
        nb = read_valid(os.path.join(tmp, "analysis.nbconvert.ipynb"), "default output NAME.nbconvert.ipynb")
        if nb:
            got = [shape(c) for c in nb.cells if c.cell_type == "code"]
            want = [[1, [["stream", "stdout", "a\nb\n"], ["stream", "stderr", "e\n"], ["execute_result", "42"]]],
                    [None, []], [2, [["error", "KeyError", "'cli-boom'"]]], [None, []]]
            check(got == want, "outputs in order, streams merged, the blank cell skipped, nothing after the error", json.dumps(got))
            with open(src) as f:
                before = json.load(f)["cells"][0]
            with open(os.path.join(tmp, "analysis.nbconvert.ipynb")) as f:
                after = json.load(f)["cells"][0]
            check(after == before, "the markdown cell is kept as it was (id, source, metadata)", json.dumps([before, after]))
            check(nb.metadata.get("language_info", {}).get("name") == "python" and nb.metadata["kernelspec"]["name"] == "python3",
                  "metadata names the kernel and its language", json.dumps(nb.metadata))
            check("shell.execute_reply" in nb.cells[1].metadata.get("execution", {}), "cells carry execution timing",
                  json.dumps(nb.cells[1].metadata))

        out = os.path.join(tmp, "all.ipynb")
        allowed = cellblock("run", "--allow-errors", "-o", out, src)
        check(allowed.returncode == 0 and "after" in allowed.stdout, "--allow-errors runs every cell (exit 0)",
              f"{allowed.returncode}: {allowed.stderr[-400:]}")
        nb = read_valid(out, "-o with --allow-errors")
        if nb:
            check(shape(nb.cells[4]) == [3, [["stream", "stdout", "after\n"]]], "the cell after the error ran", json.dumps(nb.cells[4]))

        tagged = write(os.path.join(tmp, "tagged.ipynb"), python_notebook(tagged=True))
        tag = cellblock("run", "-o", os.path.join(tmp, "tagged.out.ipynb"), tagged)
        check(tag.returncode == 0 and "after" in tag.stdout, "a cell tagged raises-exception may raise (exit 0)",
              f"{tag.returncode}: {tag.stderr[-400:]}")
        nb = read_valid(os.path.join(tmp, "tagged.out.ipynb"), "raises-exception and display updates")
        if nb:
            got = [shape(c) for c in nb.cells[5:]]
            check(got == [[4, [["display_data", "'second'"]]], [5, []]],
                  "update_display_data replaces the shown output and adds none", json.dumps(got))

        bash = new_notebook()
        bash.metadata["language_info"] = {"name": "bash"}
        bash.cells = [new_code_cell("echo from-$((40 + 2))")]
        by_lang = cellblock("run", write(os.path.join(tmp, "shell.ipynb"), bash))
        check(by_lang.returncode == 0 and "from-42" in by_lang.stdout, "a notebook whose language_info is bash runs in the bash kernel",
              f"{by_lang.returncode}: {by_lang.stdout!r} {by_lang.stderr[-400:]}")
        nb = read_valid(os.path.join(tmp, "shell.nbconvert.ipynb"), "bash notebook")
        if nb:
            check(nb.metadata["kernelspec"]["name"] == "bash" and "from-42" in json.dumps(nb.cells[0].outputs),
                  "its executed notebook names the bash kernel and holds the output", json.dumps(nb.metadata))

        for name, text, expect in (
                ("badjson", '{"nbformat": 4, "cells": [', "invalid JSON"),
                ("v3", json.dumps({"nbformat": 3, "nbformat_minor": 0, "worksheets": []}), "nbformat 3 is not supported"),
                ("badcell", json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {},
                                        "cells": [{"cell_type": "code", "source": 7}]}), "cell 1: source"),
                ("nocells", json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}}), "no \"cells\" array"),
                ("unknown", json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {"kernelspec": {"name": "no-such-kernel"}},
                                        "cells": []}), "no-such-kernel is not installed"),
                ("unknownlang", json.dumps({"nbformat": 4, "nbformat_minor": 5, "cells": [],
                                            "metadata": {"kernelspec": {"name": "no-such-kernel", "language": "cobol"}}}),
                 "no-such-kernel is not installed here, and")):
            path = write(os.path.join(tmp, name + ".ipynb"), text)
            r = cellblock("run", path)
            check(r.returncode == 2 and expect in r.stderr and not os.path.exists(os.path.join(tmp, name + ".nbconvert.ipynb")),
                  f"a malformed notebook ({name}) is refused clearly (exit 2, no output)", f"{r.returncode}: {r.stderr[-300:]}")
        huge = os.path.join(tmp, "huge.ipynb")
        with open(huge, "wb") as f:
            f.truncate((64 << 20) + 1)
        r = cellblock("run", huge)
        check(r.returncode == 2 and "huge.ipynb" in r.stderr, "a notebook over 64 MiB is refused", f"{r.returncode}: {r.stderr[-300:]}")
        r = cellblock("run", "--outputs", tmp, src)
        check(r.returncode == 2 and "--outputs" in r.stderr, "--outputs is refused for a notebook", r.stderr[-300:])
    return finish()


if __name__ == "__main__":
    sys.exit(main())
