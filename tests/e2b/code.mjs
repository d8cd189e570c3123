// code.mjs: the code interpreter (@e2b/code-interpreter's runCode and contexts) against
// `cellblock serve`: /execute and /contexts on port 49999 (e2b/interp.c).
//
// One server, one sandbox of the interpreter's template (python-data), used as the SDK's README
// shows: state kept across runCode calls, a matplotlib chart as a PNG result, an exception as
// execution.error, stdout streamed while a cell runs (proved by an event: the cell waits for a
// file that a second context writes only after the first line arrived), a timeout that
// interrupts and leaves the context usable, a second context (separate state, listed,
// restarted, removed), JavaScript, env_vars for one execution, and the errors the SDK reports
// for an unknown context, language and cwd.
import { CodeInterpreter, ci, e2b, check, note, run, section, startE2B, withDeadline, deferred } from './lib.mjs';

const MS = 60000;

run(async () => {
    const srv = await startE2B({ label: 'serve' });

    // Sandbox.create() sends a chunked body; until the server takes those, open the sandbox with
    // one plain POST and hand its answer to the SDK's constructor, as connect() would.
    let sbx;
    try {
        sbx = await withDeadline(CodeInterpreter.create(), MS, 'Sandbox.create()');
    } catch (e) {
        if (e?.statusCode !== 411) throw e;
        note('Sandbox.create() sends a chunked body this server does not take yet: opening with one POST');
        const res = await srv.raw('/e2b/v2/sandboxes', { body: { templateID: 'code-interpreter-v1' } });
        check(res.status === 201, 'POST /v2/sandboxes answers 201', res.status);
        const j = await res.json();
        sbx = new CodeInterpreter({ sandboxId: j.sandboxID, envdVersion: j.envdVersion, envdAccessToken: j.envdAccessToken,
            trafficAccessToken: j.trafficAccessToken, sandboxDomain: 'localhost' });
        sbx.trafficAccessToken = j.trafficAccessToken;
    }
    check(Boolean(sbx?.sandboxId), 'a code interpreter sandbox is open', sbx?.sandboxId);
    const runCode = (code, opts = {}, ms = MS) => withDeadline(sbx.runCode(code, opts), ms, `runCode(${JSON.stringify(code).slice(0, 60)})`);

    await section('state is kept across runCode calls', async () => {
        const a = await runCode('x = 1');
        check(!a.error && a.results.length === 0, 'an assignment runs without a result', a.toJSON());
        const b = await runCode('x += 1; print("x is", x)');
        check(b.logs.stdout.join('') === 'x is 2\n', 'stdout is in execution.logs', b.logs);
        const c = await runCode('x');
        check(c.text === '2', 'the third call sees the state of the first two', c.toJSON());
        check(c.results.length === 1 && c.results[0].isMainResult, 'the value is the main result', c.results);
        check(Number.isInteger(c.executionCount) && c.executionCount > b.executionCount, 'executionCount counts up', [b.executionCount, c.executionCount]);
        const s = await runCode('"hello"');
        check(s.text === 'hello', 'a string result loses the quotes of its repr, as on E2B', s.text);
    });

    await section('a matplotlib chart is a PNG result', async () => {
        const seen = [];
        const x = await runCode('import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [3, 1, 2])\nplt.title("chart")\nplt.show()',
            { onResult: (r) => seen.push(r) });
        const r = x.results.find((r) => r.png);
        check(Boolean(r), 'a result has png', x.toJSON());
        if (r) {
            const png = Buffer.from(r.png, 'base64');
            check(png.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])), 'result.png decodes to the PNG signature', png.subarray(0, 8));
            check(png.subarray(12, 16).toString('latin1') === 'IHDR' && png.readUInt32BE(16) > 0 && png.readUInt32BE(20) > 0,
                'the PNG starts with an IHDR of a real size', [png.subarray(12, 16).toString('latin1'), png.length > 24 && png.readUInt32BE(16)]);
            check(r.isMainResult === false, 'a displayed chart is not the main result', r.isMainResult);
            check(r.formats().includes('png'), 'formats() lists png', r.formats());
        }
        check(seen.length === x.results.length && seen.length > 0, 'onResult heard each result', seen.length);
        const h = await runCode('from IPython.display import HTML, display\ndisplay({"application/x-cellblock-test": "v", "text/plain": "t"}, raw=True)\nHTML("<b>hi</b>")');
        const main = h.results.find((r) => r.isMainResult);
        check(main?.html === '<b>hi</b>', 'text/html is result.html', h.toJSON());
        const other = h.results.find((r) => !r.isMainResult);
        check(other?.extra?.['application/x-cellblock-test'] === 'v' && other?.text === 't', 'another MIME type is kept in result.extra', other);
    });

    await section('an exception is execution.error', async () => {
        const heard = [];
        const x = await runCode('def f():\n    raise ValueError("boom")\nprint("before")\nf()', { onError: (e) => heard.push(e) });
        check(x.error?.name === 'ValueError' && x.error?.value === 'boom', 'error name and value', x.error);
        check(typeof x.error?.traceback === 'string' && x.error.traceback.includes('ValueError') && x.error.traceback.includes('boom') && x.error.traceback.includes('line 2'),
            'the traceback is one string naming the error and the frame', x.error?.traceback);
        check(x.logs.stdout.join('') === 'before\n', 'what it printed before is kept', x.logs);
        check(heard.length === 1 && heard[0].name === 'ValueError', 'onError was called once', heard);
        const y = await runCode('x');
        check(y.text === '2' && !y.error, 'the context runs the next cell after an error', y.toJSON());
    });

    let ctx;
    await section('a second context has its own state', async () => {
        ctx = await withDeadline(sbx.createCodeContext({ language: 'python' }), MS, 'createCodeContext');
        check(typeof ctx?.id === 'string' && ctx.language === 'python' && ctx.cwd === '/home/user', 'createCodeContext answers id, language, cwd', ctx);
        await runCode('y = 5', { context: ctx });
        const y = await runCode('y', { context: ctx });
        check(y.text === '5', 'the context keeps its own state', y.toJSON());
        const d = await runCode('y');
        check(d.error?.name === 'NameError', 'the default context does not see it', d.toJSON());
        const z = await runCode('x', { context: ctx });
        check(z.error?.name === 'NameError', 'nor does the context see the default one\'s', z.toJSON());
        const list = await withDeadline(sbx.listCodeContexts(), MS, 'listCodeContexts');
        check(Array.isArray(list) && list.some((c) => c.id === ctx.id) && list.some((c) => c.id !== ctx.id && c.language === 'python'),
            'listCodeContexts lists the default context and the new one', list);
    });

    await section('stdout streams while the cell runs; two contexts run independently', async () => {
        // The cell prints, then waits for a file that the other context writes only once the
        // first line has reached us: it can end only if onStdout fired while it ran.
        await runCode('import os\nif os.path.exists("/home/user/.cb_go"): os.remove("/home/user/.cb_go")');
        const first = deferred();
        const lines = [];
        const slow = runCode('import os, time\nprint("first", flush=True)\nt = time.time()\n' +
            'while not os.path.exists("/home/user/.cb_go") and time.time() - t < 30: time.sleep(0.05)\n' +
            'print("done" if os.path.exists("/home/user/.cb_go") else "gave up")',
            { onStdout: (m) => { lines.push(m.line); if (m.line.includes('first')) first.resolve(); } });
        await withDeadline(first.promise, 30000, 'the first onStdout callback while the cell runs');
        check(true, 'onStdout fired while the cell was still running');
        const w = await runCode('open("/home/user/.cb_go", "w").close()', { context: ctx });
        check(!w.error, 'the second context runs while the first is busy', w.toJSON());
        const x = await slow;
        check(lines.join('') === 'first\ndone\n', 'the cell saw the file and ended', lines);
    });

    await section('timeoutMs interrupts the cell; the context stays usable', async () => {
        let err;
        const t0 = Date.now();
        try {
            await runCode('while True: pass', { timeoutMs: 1500 });
        } catch (e) {
            err = e;
        }
        check(err instanceof e2b.TimeoutError, 'runCode throws TimeoutError', String(err));
        const t1 = Date.now();
        const x = await runCode('x', {}, 20000);
        check(x.text === '2' && !x.error, 'the next runCode works and the state is kept (interrupted, not restarted)', x.toJSON());
        note(`timeout after ${t1 - t0} ms; the next cell took ${Date.now() - t1} ms`);
    });

    await section('restartCodeContext clears state; removeCodeContext removes it', async () => {
        await withDeadline(sbx.restartCodeContext(ctx), MS, 'restartCodeContext');
        const y = await runCode('y', { context: ctx });
        check(y.error?.name === 'NameError', 'after a restart the state is gone', y.toJSON());
        const ok = await runCode('1 + 1', { context: ctx });
        check(ok.text === '2', 'the restarted context runs code', ok.toJSON());
        await withDeadline(sbx.removeCodeContext(ctx.id), MS, 'removeCodeContext');
        const list = await withDeadline(sbx.listCodeContexts(), MS, 'listCodeContexts');
        check(!list.some((c) => c.id === ctx.id), 'a removed context is not listed', list);
        let err;
        try {
            await runCode('1', { context: ctx });
        } catch (e) {
            err = e;
        }
        check(err instanceof e2b.NotFoundError && /not found/.test(err.message), 'runCode in a removed context: NotFoundError', String(err));
        err = undefined;
        try {
            await sbx.removeCodeContext('no-such-context');
        } catch (e) {
            err = e;
        }
        check(err instanceof e2b.NotFoundError, 'removing an unknown context: NotFoundError', String(err));
    });

    await section('a context with a cwd', async () => {
        await runCode('import os\nos.makedirs("/home/user/sub", exist_ok=True)');
        const c = await withDeadline(sbx.createCodeContext({ cwd: '/home/user/sub' }), MS, 'createCodeContext(cwd)');
        check(c.cwd === '/home/user/sub', 'the context reports its cwd', c);
        const w = await runCode('import os\nos.getcwd()', { context: c });
        check(w.text === '/home/user/sub', 'its kernel works there', w.toJSON());
        await sbx.removeCodeContext(c);
        let err;
        try {
            await sbx.createCodeContext({ cwd: '/etc' });
        } catch (e) {
            err = e;
        }
        check(err instanceof e2b.SandboxError && /400/.test(err.message), 'a cwd outside the workspace is refused', String(err));
    });

    await section('JavaScript', async () => {
        const a = await runCode('const a = 40; console.log("js says", a); a + 2', { language: 'js' });
        check(a.text === '42' && a.logs.stdout.join('') === 'js says 40\n', 'runCode with language js', a.toJSON());
        const b = await runCode('a - 1', { language: 'javascript' });
        check(b.text === '39', 'the javascript context keeps its state', b.toJSON());
        const e = await runCode('null.x', { language: 'js' });
        check(e.error?.name === 'TypeError', 'a JavaScript exception is execution.error', e.toJSON());
        let err;
        try {
            await runCode('while (true) {}', { language: 'js', timeoutMs: 1500 });
        } catch (e) {
            err = e;
        }
        check(err instanceof e2b.TimeoutError, 'a JavaScript cell past timeoutMs: TimeoutError', String(err));
        const c = await runCode('a', { language: 'js' }, 20000);
        check(c.text === '40', 'the interrupted JavaScript context keeps its state', c.toJSON());
        const u = await runCode('x', { language: 'cobol' });
        check(u.error?.name === 'LanguageNotAvailable' && /python/.test(u.error?.value), 'an unknown language: an error naming the known ones', u.error);
    });

    await section('env_vars hold for one execution', async () => {
        const value = 'it\'s "quoted" \\ $HOME `x` ünïcode';
        const a = await runCode('import os\nprint(os.environ.get("CB_E2B_VAR"))', { envs: { CB_E2B_VAR: value } });
        check(a.logs.stdout.join('') === value + '\n', 'python sees the variable, byte for byte', a.toJSON());
        const b = await runCode('import os\nos.environ.get("CB_E2B_VAR") is None');
        check(b.text === 'True', 'the next execution does not', b.toJSON());
        await runCode('import os\nos.environ["CB_E2B_KEEP"] = "before"');
        const c = await runCode('import os\nos.environ["CB_E2B_KEEP"]', { envs: { CB_E2B_KEEP: 'during' } });
        const d = await runCode('import os\nos.environ["CB_E2B_KEEP"]');
        check(c.text === 'during' && d.text === 'before', 'a variable that was set gets its value back', [c.text, d.text]);
        const j = await runCode('process.env.CB_E2B_VAR', { language: 'js', envs: { CB_E2B_VAR: 'from js' } });
        const k = await runCode('process.env.CB_E2B_VAR === undefined', { language: 'js' });
        check(j.text?.includes('from js') && k.text === 'true', 'javascript too', [j.text, k.text]);
        const sh = await runCode('echo "[$CB_E2B_VAR]"', { language: 'bash', envs: { CB_E2B_VAR: value } });
        const sh2 = await runCode('echo "[${CB_E2B_VAR-unset}]"', { language: 'bash' });
        check(sh.logs.stdout.join('') === `[${value}]\n` && sh2.logs.stdout.join('') === '[unset]\n', 'and bash', [sh.logs, sh2.logs]);
        const bad = await withDeadline(srv.raw('/e2b/sandbox/execute', {
            headers: { 'E2b-Sandbox-Id': sbx.sandboxId, 'E2b-Sandbox-Port': '49999' },
            body: { code: '1', env_vars: { 'A=B': 'x' } } }), MS, 'execute with a bad name');
        check(bad.status === 400, 'a bad variable name is refused', bad.status);
    });

    await section('requests the SDK never sends', async () => {
        const at = (path, o = {}) => withDeadline(srv.raw(`/e2b/sandbox${path}`, {
            ...o, headers: { 'E2b-Sandbox-Id': sbx.sandboxId, 'E2b-Sandbox-Port': '49999', ...(o.headers ?? {}) } }), MS, path);
        const bodies = [['not json', '{"code":'], ['no code', { language: 'python' }], ['code not a string', { code: 5 }],
            ['context and language', { code: '1', context_id: 'x', language: 'python' }], ['env_vars not strings', { code: '1', env_vars: { A: 1 } }]];
        for (const [what, body] of bodies) {
            const r = await at('/execute', { body });
            check(r.status === 400, `/execute, ${what}: 400`, r.status);
        }
        const long = 'x' + 'é'.repeat(60); // messages quote at most 80 bytes of it: a cut through a character
        const nf = await at('/execute', { body: { code: '1', context_id: long } });
        const nfBody = await nf.json().catch(() => null);
        check(nf.status === 404 && nfBody?.code === 404 && /not found/.test(nfBody?.message), 'an unknown context with a long name: 404 in E2B\'s shape', [nf.status, nfBody]);
        const nl = await runCode('1', { language: long });
        check(nl.error?.name === 'LanguageNotAvailable', 'an unknown language with a long name: execution.error', nl.error);
        const g = await at('/execute');
        check(g.status === 405, 'GET /execute: 405', g.status);
        const list = await withDeadline(sbx.listCodeContexts(), MS, 'listCodeContexts');
        const main = list.find((c) => c.language === 'python');
        const d = await at(`/contexts/${main?.id}`, { method: 'DELETE' });
        check(d.status === 400 && /main kernel/.test(await d.text()), 'the default python context cannot be removed', d.status);
        const x = await runCode('x');
        check(x.text === '2', 'after all that the default context is as it was', x.toJSON());
    });

    await section('an unknown context', async () => {
        let err;
        try {
            await runCode('1', { context: { id: 'no-such-context', language: 'python', cwd: '/home/user' } });
        } catch (e) {
            err = e;
        }
        check(err instanceof e2b.NotFoundError, 'runCode in an unknown context: NotFoundError', String(err));
    });

    await section('the sandbox ends while a cell runs', async () => {
        // The cell waits for a file (at most 60 s); the sandbox is killed while it waits. Were
        // kill not served, another context writes the file and the cell ends on its own.
        const started = deferred();
        const pending = sbx.runCode('import os, time\nprint("waiting", flush=True)\nt = time.time()\n' +
            'while not os.path.exists("/home/user/.cb_end") and time.time() - t < 60: time.sleep(0.05)',
            { onStdout: () => started.resolve(), timeoutMs: 90000 }).then((x) => ({ x }), (e) => ({ e }));
        await withDeadline(started.promise, 30000, 'the cell started');
        const killed = await withDeadline(sbx.kill(), MS, 'kill()').catch((e) => e);
        if (killed !== true) {
            note(`kill() is not served here yet (${killed}): the sandbox-end path is not tested`);
            const other = await withDeadline(sbx.createCodeContext(), MS, 'createCodeContext');
            await runCode('open("/home/user/.cb_end", "w").close()', { context: other });
            await withDeadline(pending, 30000, 'the cell ends');
            return;
        }
        const r = await withDeadline(pending, 30000, 'runCode ends once the sandbox is gone');
        check(r.x?.error?.name === 'SandboxEnded', 'the open runCode ends with an error saying the sandbox ended', r.x?.toJSON?.() ?? String(r.e));
    });
});
