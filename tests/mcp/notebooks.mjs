// notebooks.mjs: notebook_run and session_export through the SDK client (stdio). A session's
// deterministic cells are exported as a notebook that Debian's nbformat validates and that
// nbclient (against Debian's ipykernel, locally) runs again to the same outputs; notebook_run
// runs a workspace notebook (stopping at its error), an inline one with allow_errors, and
// refuses malformed ones with a clear error. One server, one sandbox.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { brief, check, run, runProgram, safeJson, sc, section, startServer, tempDir, textOf, waitUntil, withDeadline } from './lib.mjs';

const PY = '/usr/bin/python3';
const dir = tempDir('cb-nb-');

// Validate a notebook with nbformat and print its cells' outputs, compactly, as JSON; with
// rerun, run it again with nbclient first (allow_errors) and print those outputs too.
const VALIDATE = `
import json, sys, nbformat
nb = nbformat.read(sys.argv[1], as_version=4)
nbformat.validate(nb)
def shape(nb):
    out = []
    for c in nb.cells:
        if c.cell_type != 'code':
            out.append(None); continue
        cell = []
        for o in c.outputs:
            t = o.output_type
            if t == 'stream': cell.append([t, o.name, o.text])
            elif t == 'error': cell.append([t, o.ename, o.evalue])
            else: cell.append([t, o.data.get('text/plain')])
        out.append({'count': c.execution_count, 'outputs': cell})
    return out
res = {'cells': shape(nb)}
if len(sys.argv) > 2:
    import nbclient
    again = nbformat.read(sys.argv[1], as_version=4)
    nbclient.NotebookClient(again, timeout=60, allow_errors=True, kernel_name='python3').execute()
    res['rerun'] = shape(again)
print(json.dumps(res))
`;

async function inspect(text, rerun = false) {
    const path = join(dir, `nb-${Math.random().toString(36).slice(2)}.ipynb`);
    writeFileSync(path, text);
    const r = await runProgram(PY, ['-c', VALIDATE, path, ...(rerun ? ['rerun'] : [])], { ms: 90000 });
    check(r.code === 0, `nbformat validates the notebook${rerun ? ' and nbclient runs it' : ''}`, r.stderr.slice(-1500));
    try {
        return JSON.parse(r.stdout);
    } catch {
        return { cells: [] };
    }
}

const NOTEBOOK = {
    nbformat: 4, nbformat_minor: 5,
    metadata: { kernelspec: { name: 'python3', display_name: 'Python 3', language: 'python' } },
    cells: [
        { id: 'md1', cell_type: 'markdown', metadata: {}, source: ['# Title\n', 'kept as is'] },
        { id: 'c1', cell_type: 'code', metadata: {}, execution_count: 9, outputs: [{ output_type: 'stream', name: 'stdout', text: 'stale' }],
          source: ['print("one")\n', 'print("two")\n', '21 * 2'] },
        { id: 'c2', cell_type: 'code', metadata: {}, execution_count: null, outputs: [], source: 'raise KeyError("nb-boom")' },
        { id: 'c3', cell_type: 'code', metadata: {}, execution_count: null, outputs: [], source: 'print("after")' },
    ],
};

await run(async () => {
    const srv = await startServer({ label: 'notebooks server' });
    let r;

    await section('session_export', async () => {
        const cells = ['x = 6 * 7', "print('hello'); print('world')\nx", "import sys; print('to err', file=sys.stderr)",
            "from IPython.display import display\ndisplay('shown')", "raise ValueError('deliberate')", 'x + 1'];
        for (const code of cells) await srv.call('code_execute', { code });
        r = await srv.callOk('session_export', {});
        const s = sc(r);
        check(s.cells === cells.length && /^notebooks\/session-.*\.ipynb$/.test(s.path ?? ''), 'session_export: every cell, written to notebooks/session-ID.ipynb', brief(r));
        const embedded = (r.content ?? []).find((b) => b.type === 'resource');
        check(embedded?.resource?.uri === `cellblock://sandbox/${s.sandbox_id}/session/${s.session_id}/notebook.ipynb` &&
              embedded?.resource?.mimeType === 'application/x-ipynb+json', 'session_export returns the notebook as an embedded resource with the agreed URI', safeJson(embedded).slice(0, 300));
        const link = (r.content ?? []).find((b) => b.type === 'resource_link');
        check(link?.uri === `cellblock://sandbox/${s.sandbox_id}/files/${s.path}`, 'session_export links the workspace file', safeJson(link));
        const file = await srv.callOk('file_download', { path: s.path, encoding: 'text' });
        check(sc(file).content === embedded?.resource?.text, 'the workspace file is the embedded notebook', brief(file));
        const got = await inspect(embedded?.resource?.text ?? '', true);
        const want = [
            { count: 1, outputs: [] },
            { count: 2, outputs: [['stream', 'stdout', 'hello\nworld\n'], ['execute_result', '42']] },
            { count: 3, outputs: [['stream', 'stderr', 'to err\n']] },
            { count: 4, outputs: [['display_data', "'shown'"]] },
            { count: 5, outputs: [['error', 'ValueError', 'deliberate']] },
            { count: 6, outputs: [['execute_result', '43']] },
        ];
        check(JSON.stringify(got.cells) === JSON.stringify(want), 'the exported cells hold their code\'s outputs and counts, in order', safeJson(got.cells));
        check(JSON.stringify(got.rerun) === JSON.stringify(got.cells), 'nbclient runs the exported notebook again to the same outputs', safeJson(got.rerun));

        const term = await srv.callOk('session_create', { type: 'terminal' });
        r = await srv.call('session_export', { session_id: sc(term).session_id });
        check(r.isError === true && /terminal/.test(textOf(r)), 'session_export of a terminal session is refused', brief(r));
        r = await srv.call('session_export', { session_id: 'no-such-session' });
        check(r.isError === true && /no session/.test(textOf(r)), 'session_export of an unknown session: not found', brief(r));
        r = await srv.call('session_export', { path: '../../etc/escape.ipynb' });
        check(r.isError === true, 'session_export outside the workspace is refused', brief(r));
    });

    await section('notebook_run', async () => {
        await srv.callOk('file_upload', { path: 'work/analysis.ipynb', content: JSON.stringify(NOTEBOOK) });
        r = await srv.call('notebook_run', { path: 'work/analysis.ipynb' });
        const s = sc(r);
        check(r.isError === true && s.failed_cell === 2 && s.cells === 2 && s.errors === 1 && s.error?.ename === 'KeyError',
            'notebook_run stops at the failing cell and names it (isError)', brief(r));
        check(s.output_path === 'work/analysis.nbconvert.ipynb' && /cell 3/.test(textOf(r)), 'the executed notebook goes next to the input; the text names the cell', brief(r));
        const link = (r.content ?? []).find((b) => b.type === 'resource_link');
        check(link?.uri === `cellblock://sandbox/${s.sandbox_id}/files/work/analysis.nbconvert.ipynb`, 'notebook_run links the executed notebook', safeJson(link));
        let file = await srv.callOk('file_download', { path: 'work/analysis.nbconvert.ipynb', encoding: 'text' });
        let got = await inspect(sc(file).content ?? '');
        check(JSON.stringify(got.cells) === JSON.stringify([null, { count: 1, outputs: [['stream', 'stdout', 'one\ntwo\n'], ['execute_result', '42']] },
            { count: 2, outputs: [['error', 'KeyError', "'nb-boom'"]] }, { count: null, outputs: [] }]),
            'outputs replace stale ones, streams merge, the cell after the error keeps nothing', safeJson(got.cells));
        const md = JSON.parse(sc(file).content ?? '{}').cells?.[0];
        check(JSON.stringify(md?.source) === JSON.stringify(NOTEBOOK.cells[0].source), 'a markdown cell is kept untouched', safeJson(md));

        const progress = [];
        r = await srv.callOk('notebook_run', { notebook: NOTEBOOK, allow_errors: true, output_path: 'out/all.ipynb' },
            { onprogress: (p) => progress.push(p.message ?? '') });
        const said = progress.join('');
        // Progress: the first code cell's number comes at once; then cells' numbers in order and
        // their streams' text, nothing else. Not all of it: the SDK hands a notification to its
        // handler a turn later than the result it came just before, and drops it if the result
        // came first, so the last chunk may be cut (a fast run may send little before the end).
        const pieces = said.split('\n').filter((x) => x);
        const numbers = pieces.filter((x) => /^\[cell \d+\]$/.test(x)).map((x) => Number(x.slice(6, -1)));
        check(progress[0] === '[cell 2]\n' && pieces.every((x) => /^\[cell \d+\]$/.test(x) || ['one', 'two', 'after'].includes(x))
            && numbers.every((n, i) => i === 0 || n > numbers[i - 1]),
            'progress notifications: the first cell\'s number at once, then cells\' numbers in order and their streams', safeJson(progress).slice(0, 400));
        check(sc(r).cells === 3 && sc(r).errors === 1 && sc(r).failed_cell === null && sc(r).status === 'ok', 'inline with allow_errors: every cell runs', brief(r));
        file = await srv.callOk('file_download', { path: 'out/all.ipynb', encoding: 'text' });
        got = await inspect(sc(file).content ?? '');
        check(JSON.stringify(got.cells[3]) === JSON.stringify({ count: 3, outputs: [['stream', 'stdout', 'after\n']] }), 'the cell after the error ran', safeJson(got.cells));

        for (const [notebook, what, re] of [['{"nbformat": 4, "cells": [', 'truncated JSON text', /invalid JSON/],
            [{ nbformat: 3, nbformat_minor: 0, worksheets: [] }, 'nbformat 3', /nbformat 3 is not supported/],
            [{ nbformat: 4, nbformat_minor: 5, metadata: {}, cells: [{ cell_type: 'code', source: 5 }] }, 'a cell without a string source', /cell 1: source/],
            [[1, 2], 'an array', /must be an object/]]) {
            r = await srv.call('notebook_run', { notebook });
            check(r.isError === true && re.test(textOf(r)), `notebook_run refuses ${what} clearly`, brief(r));
        }
        r = await srv.call('notebook_run', {});
        check(r.isError === true && /either path/.test(textOf(r)), 'notebook_run without a notebook says what it takes', brief(r));
        r = await srv.call('notebook_run', { path: 'missing.ipynb' });
        check(r.isError === true && /missing\.ipynb/.test(textOf(r)), 'notebook_run of a missing file names it', brief(r));
        r = await srv.callOk('sandbox_info', {});
        check(sc(r).sessions === 2 && (sc(r).session_list ?? []).length === 2, 'notebook_run closes the kernel it started (the main and the terminal session remain)', brief(r));
    });
    await section('a notebook whose sandbox goes, or whose client gives up', async () => {
        // The sandbox is deleted while a cell sleeps: the call ends with an error saying so, and
        // nothing is written into a sandbox that is gone (the server stays up: the next call works).
        const slow = (marker) => ({ nbformat: 4, nbformat_minor: 5, metadata: {}, cells: [
            { cell_type: 'code', metadata: {}, source: 'import time' },
            { cell_type: 'code', metadata: {}, source: `open('${marker}', 'w').write('x')\nfor i in range(600): time.sleep(0.1)` },
            { cell_type: 'code', metadata: {}, source: 'print("never")' }] });
        const other = sc(await srv.callOk('sandbox_create', {})).sandbox_id;
        const running = srv.call('notebook_run', { sandbox_id: other, notebook: slow('started.txt') });
        await waitUntil(async () => !(await srv.call('file_download', { sandbox_id: other, path: 'started.txt' })).isError, 30000, 'the first cell to run');
        await srv.callOk('sandbox_delete', { sandbox_id: other });
        r = await withDeadline(running, 30000, 'notebook_run to end with its sandbox');
        check(r.isError === true && /ended while the notebook ran/.test(textOf(r)), 'sandbox_delete during notebook_run: the call fails saying so', brief(r));

        // The client cancels: the cell is interrupted, the call settles, the server goes on.
        const ac = new AbortController();
        const cancelled = srv.call('notebook_run', { notebook: slow('started2.txt'), output_path: 'cancelled.ipynb' }, { signal: ac.signal });
        cancelled.catch(() => {});
        await waitUntil(async () => !(await srv.call('file_download', { path: 'started2.txt' })).isError, 30000, 'the first cell to run');
        ac.abort('the test gives up');
        await withDeadline(cancelled.then(() => {}, () => {}), 5000, 'the cancelled call to settle');
        await waitUntil(async () => sc(await srv.callOk('sandbox_info', {})).sessions === 2, 15000, 'the notebook\'s kernel to close');
        const file = await srv.call('file_download', { path: 'cancelled.ipynb', encoding: 'text' });
        const nb = JSON.parse(sc(file).content ?? '{}');
        const stopped = nb.cells?.[1]?.outputs?.at(-1);
        check(stopped?.output_type === 'error' && /KeyboardInterrupt|CellExecutionCancelled/.test(stopped?.ename) && nb.cells?.[2]?.outputs?.length === 0 &&
              nb.cells?.[2]?.execution_count === null,
            'a cancelled run still writes what ran, the interrupted cell ending in an error, the next one not run', safeJson(nb.cells ?? file).slice(0, 600));
        r = await srv.callOk('code_execute', { code: '1 + 1' });
        check(/2/.test(textOf(r)), 'the server keeps serving after both', brief(r));

        // SIGTERM while a notebook runs (stdin closing would let the call finish, up to 30 s):
        // the session ends at once, the run with it; the server exits and leaves no process.
        srv.call('notebook_run', { notebook: slow('started3.txt') }).catch(() => {});
        await waitUntil(async () => !(await srv.call('file_download', { path: 'started3.txt' })).isError, 30000, 'the slow cell to run');
        const ex = await srv.kill('SIGTERM');
        check(ex?.code === 0, 'SIGTERM during notebook_run: the server exits with status 0', safeJson(ex));
        await srv.checkNoneLeft('after SIGTERM during notebook_run');
    });
});
