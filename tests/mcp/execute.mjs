// execute.mjs: code_execute, run_code, code_execute_async, execution_status, execution_cancel
// through the official SDK client: state across calls, rich output, errors, stdin, timeouts,
// cancellation (AbortSignal -> notifications/cancelled), progress, large outputs.
import {
    DeadlineError, brief, check, imagesOf, mainResult, note, run, safeJson, sc, section, startServer, textOf, waitUntil, withDeadline,
} from './lib.mjs';

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

await run(async () => {
    const srv = await startServer({ label: 'execute server' });
    let sandboxId = null;
    let r;

    await section('state across code_execute and run_code', async () => {
        // State persists in the default sandbox, across code_execute and run_code.
        r = await srv.callOk('code_execute', { code: 'x = 41' });
        sandboxId = sc(r).sandbox_id;
        check(typeof sandboxId === 'string' && sc(r).status === 'ok', 'code_execute without sandbox_id works (status ok, a sandbox_id)', brief(r));
        r = await srv.callOk('code_execute', { code: 'x + 1' });
        check(mainResult(r) === '42', 'code_execute keeps state: x + 1 -> main result text/plain "42"', brief(r));
        check(sc(r).sandbox_id === sandboxId, 'the same default sandbox answers both calls', brief(r));
        check(/42/.test(textOf(r)), 'the main result is also in a text block', brief(r));
        check(Number.isInteger(sc(r).execution_count) && typeof sc(r).execution_id === 'string', 'structuredContent has execution_count and execution_id', brief(r));
        r = await srv.callOk('run_code', { code: 'x * 2' });
        check(mainResult(r) === '82' || /82/.test(textOf(r)), 'run_code shares the default sandbox state (x * 2 -> 82)', brief(r));
    });

    await section('stdout and stderr', async () => {
        // stdout and stderr.
        r = await srv.callOk('code_execute', { code: 'import sys\nprint("to out")\nprint("to err", file=sys.stderr)' });
        check(sc(r).stdout === 'to out\n' && sc(r).stderr === 'to err\n', 'stdout and stderr are split in structuredContent', brief(r));
        check(/\[stderr\][\s\S]*to err/.test(textOf(r)), 'stderr comes as text headed [stderr]', brief(r));
        r = await srv.callOk('code_execute', { code: "print('a\\x00b')" });
        check(/^a[\s\S]b\n$/.test(sc(r).stdout ?? ''), 'a printed NUL character does not cut the output (a\\x00b)', brief(r));
    });

    await section('rich output', async () => {
        // A matplotlib figure: an image block holding a PNG.
        r = await srv.callOk('code_execute', { code: 'import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.show()' });
        const imgs = imagesOf(r);
        const png = imgs.length ? Buffer.from(imgs[0].data, 'base64') : Buffer.alloc(0);
        check(imgs.length === 1 && imgs[0].mimeType === 'image/png', 'plt.show() gives one image block of type image/png', brief(r));
        check(png.subarray(0, 8).equals(PNG_SIGNATURE) && png.length > 1000, 'the image block base64-decodes to a PNG', `first bytes ${png.subarray(0, 8).toString('hex')}, ${png.length} bytes`);
        check((sc(r).results ?? []).some((x) => typeof x.data?.['image/png'] === 'string'), 'structuredContent.results has the image/png', brief(r));

        // Rich results: HTML comes as an embedded resource, not dropped.
        r = await srv.callOk('code_execute', { code: 'from IPython.display import HTML\nHTML("<b>bold</b>")' });
        const res = (r.content ?? []).find((b) => b.type === 'resource');
        check(res && res.resource?.mimeType === 'text/html' && /<b>bold<\/b>/.test(res.resource?.text ?? ''), 'an HTML result is an embedded resource block of type text/html', brief(r));
        r = await srv.callOk('code_execute', { code: 'from IPython.display import Markdown, JSON, SVG, display\ndisplay(Markdown("# Title"))\ndisplay(JSON({"k": [1, 2]}))\ndisplay(SVG(\'<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"><rect width="4" height="4"/></svg>\'))' });
        const mimes = (r.content ?? []).filter((b) => b.type === 'resource').map((b) => b.resource?.mimeType);
        check(['text/markdown', 'application/json', 'image/svg+xml'].every((m) => mimes.includes(m)), 'Markdown, JSON and SVG displays come as resource blocks with their MIME types', brief(r));
        check((sc(r).results ?? []).length === 3 && (sc(r).results ?? []).every((x) => x.is_main_result === false), 'display() outputs are results that are not the main result', brief(r));
    });

    await section('errors', async () => {
        // An exception.
        r = await srv.call('code_execute', { code: '1/0' });
        check(r.isError === true, '1/0 sets isError', brief(r));
        check(sc(r).status === 'error' && sc(r).error?.ename === 'ZeroDivisionError', '1/0: status error, error.ename ZeroDivisionError', brief(r));
        check(/ZeroDivisionError/.test(textOf(r)), 'the error text names ZeroDivisionError', brief(r));
        check(!textOf(r).includes('\x1b[') && !safeJson(sc(r).error ?? {}).includes('\\u001b['), 'the traceback has no ANSI escapes (text and structuredContent)', brief(r));
    });

    await section('stdin', async () => {
        // stdin answers input(); without it input() fails at once.
        r = await srv.callOk('code_execute', { code: 'name = input("who? ")\nprint("hello", name)', stdin: 'world' });
        check(/hello world/.test(sc(r).stdout ?? ''), 'stdin is answered to input()', brief(r));
        r = await srv.callOk('code_execute', { code: 'a = input()\nb = input()\nprint(a + "+" + b)', stdin: 'one\ntwo\n' });
        check(/one\+two/.test(sc(r).stdout ?? ''), 'stdin lines are answered to successive input() calls', brief(r));
        r = await withDeadline(srv.call('code_execute', { code: 'input("nothing: ")' }), 20000, 'input() without stdin');
        check(r.isError === true && sc(r).status === 'error', 'input() without stdin fails at once (isError, status error)', brief(r));
    });

    await section('timeout', async () => {
        // A timeout interrupts the cell; the kernel (and its state) answers afterwards.
        r = await withDeadline(srv.call('code_execute', { code: 'while True: pass', timeout_s: 1 }), 30000, 'a cell with timeout_s 1');
        check(sc(r).status === 'timeout' && r.isError === true, 'timeout_s 1 on while True: status timeout, isError', brief(r));
        check(/timeout/i.test(textOf(r)), 'the timeout is said in the text', brief(r));
        r = await withDeadline(srv.callOk('code_execute', { code: 'x' }), 20000, 'the cell after a timeout');
        check(mainResult(r) === '41' && !sc(r).kernel_restarted, 'after the timeout the kernel answers with its state kept (x == 41)', brief(r));
    });

    await section('cancel through the SDK', async () => {
        // Cancellation: an AbortSignal makes the SDK send notifications/cancelled; the kernel is
        // interrupted, not restarted; ping is answered while the cell runs.
        await srv.callOk('code_execute', { code: 'kept = "before"' });
        const ac = new AbortController();
        const long = srv.call('code_execute', { code: 'import time\nfor i in range(600): time.sleep(0.1)' }, { signal: ac.signal });
        let longSettled = false;
        long.then(() => (longSettled = true), () => (longSettled = true));
        const pong = await withDeadline(srv.client.ping(), 10000, 'ping while a cell runs');
        check(pong && !longSettled, 'ping is answered while a cell runs', safeJson({ pong, longSettled }));
        const listed = await withDeadline(srv.call('sandbox_list', {}), 10000, 'sandbox_list while a cell runs');
        check(!listed.isError && !longSettled, 'another tool (sandbox_list) is answered while a cell runs', brief(listed));
        const other = await withDeadline(srv.call('sandbox_create', {}), 30000, 'sandbox_create while a cell runs');
        const otherRun = await withDeadline(srv.call('code_execute', { sandbox_id: sc(other).sandbox_id, code: '6 * 7' }), 30000, 'a cell in another sandbox');
        check(mainResult(otherRun) === '42' && !longSettled, 'a cell in another sandbox runs while the default sandbox is busy', brief(otherRun));
        await srv.call('sandbox_delete', { sandbox_id: sc(other).sandbox_id });
        await new Promise((r2) => setTimeout(r2, 1000)); // let the cell run a while, then abort it
        const cancelledId = [...srv.outgoing].reverse().find((x) => x.msg.method === 'tools/call' && /range\(600\)/.test(x.msg.params?.arguments?.code ?? ''))?.msg.id;
        const abortedAt = Date.now();
        ac.abort('test aborts the cell'); // the SDK sends notifications/cancelled and rejects at once
        let rejected = false;
        try {
            await withDeadline(long, 5000, 'the aborted call to settle');
        } catch (e) {
            rejected = !(e instanceof DeadlineError);
        }
        check(rejected, 'the aborted call rejects (deadline 5 s)', `${Date.now() - abortedAt} ms`);
        const sentCancel = srv.outgoing.find((x) => x.msg.method === 'notifications/cancelled');
        check(sentCancel && sentCancel.msg.params.requestId === cancelledId, 'the SDK sent notifications/cancelled with the requestId', safeJson(sentCancel?.msg));
        const t1 = Date.now();
        r = await withDeadline(srv.call('code_execute', { code: 'kept' }), 60000, 'the cell after the cancel');
        check(mainResult(r) === "'before'" && sc(r).status === 'ok', 'after the cancel the next cell runs and sees the old state (kernel interrupted, not restarted)', brief(r));
        check(!sc(r).kernel_restarted, 'kernel_restarted is false after a cancel', brief(r));
        note(`the cell after the cancel returned in ${Date.now() - t1} ms`);
        const late = srv.incoming.filter((x) => x.msg.id === cancelledId && ('result' in x.msg || 'error' in x.msg));
        check(late.length === 0, 'no response is sent for the cancelled request (spec: SHOULD NOT)', safeJson(late.map((x) => x.msg)));
    });

    await section('progress', async () => {
        // Progress: notifications/progress carry the output as it arrives.
        const progress = [];
        let resultAt = 0;
        r = await srv.call('code_execute', { code: 'import time\nfor i in range(15):\n    print("tick", i, flush=True)\n    time.sleep(0.1)' }, {
            onprogress: (p) => progress.push({ at: Date.now(), ...p }),
        });
        resultAt = Date.now();
        check(!r.isError && /tick 14/.test(sc(r).stdout ?? ''), 'the cell with progress runs to its end', brief(r));
        const before = progress.filter((p) => p.at <= resultAt);
        check(before.length >= 3, 'at least 3 progress notifications arrive before the result', `${before.length}: ${safeJson(progress)}`);
        const msgs = progress.map((p) => p.message ?? '').join('');
        const ticks = new Set([...msgs.matchAll(/tick (\d+)/g)].map((x) => x[1]));
        check(ticks.size >= 3 && ticks.has('0'), 'progress messages carry the printed text', safeJson(progress.slice(0, 5)));
        const values = progress.map((p) => p.progress);
        check(values.every((v, i) => typeof v === 'number' && (i === 0 || v > values[i - 1])), 'progress values strictly increase', safeJson(values));
        const unknownToken = srv.clientErrors.filter((e) => /progress notification for an unknown token/.test(e.message));
        check(unknownToken.length === 0, 'no progress notification arrives after its result', safeJson(unknownToken));
        const tokenless = srv.incoming.filter((x) => x.msg.method === 'notifications/progress' && x.msg.params?.progressToken === undefined);
        check(tokenless.length === 0, 'every progress notification carries a progressToken', safeJson(tokenless.slice(0, 2)));
    });

    await section('concurrent calls in one sandbox', async () => {
        // Calls to one kernel queue up and each gets its own result.
        const calls = [
            srv.call('code_execute', { code: 'import time\ntime.sleep(0.5)\nq1 = 1\n"first"' }),
            srv.call('code_execute', { code: 'q2 = q1 + 1\n"second"' }),
            srv.call('run_code', { code: 'print(q2 + 1)' }),
        ];
        const [a, b, c] = await withDeadline(Promise.all(calls), 30000, 'three concurrent calls');
        check(mainResult(a) === "'first'" && mainResult(b) === "'second'" && sc(c).stdout === '3\n', 'three concurrent calls run in order, each with its own result', `${brief(a)} / ${brief(b)} / ${brief(c)}`);

        // A call cancelled while it waits behind another never runs.
        const first = srv.call('code_execute', { code: 'import time\ntime.sleep(1.5)\n"slow"' });
        const ac = new AbortController();
        const queued = srv.call('code_execute', { code: 'ran_queued = True' }, { signal: ac.signal });
        queued.catch(() => {});
        await withDeadline(srv.client.ping(), 10000, 'ping'); // the server has read both calls
        ac.abort('cancel the queued call');
        r = await withDeadline(first, 20000, 'the slow call');
        check(mainResult(r) === "'slow'", 'the call ahead of a cancelled one completes', brief(r));
        r = await srv.callOk('code_execute', { code: '"ran_queued" in globals()' });
        check(mainResult(r) === 'False', 'a call cancelled while queued never runs', brief(r));
    });

    await section('code_execute_async', async () => {
        // code_execute_async returns at once; execution_status follows it to the end.
        r = await srv.callOk('code_execute_async', { code: 'import time\ntime.sleep(2)\nz = 7\nprint("async done")' });
        const execId = sc(r).execution_id;
        check(typeof execId === 'string' && sc(r).sandbox_id === sandboxId, 'code_execute_async returns an execution_id (default sandbox)', brief(r));
        r = await srv.callOk('execution_status', { execution_id: execId });
        check(['queued', 'running'].includes(sc(r).state), 'execution_status right after is queued or running (the async call returned before the cell ended)', brief(r));
        check(sc(r).kind === 'code' && sc(r).execution_id === execId, 'execution_status names the execution and kind code', brief(r));
        r = await withDeadline(srv.callOk('execution_status', { execution_id: execId, wait_s: 20 }), 30000, 'execution_status wait_s 20');
        check(sc(r).state === 'done' && sc(r).result?.status === 'ok' && /async done/.test(sc(r).result?.stdout ?? ''), 'execution_status with wait_s ends done with the final result', brief(r));
        r = await srv.callOk('code_execute', { code: 'z' });
        check(mainResult(r) === '7', 'the async cell ran in the default sandbox (z == 7)', brief(r));
    });

    await section('execution_cancel', async () => {
        // execution_cancel of an async run whose code is running (its first output seen):
        // interrupted, state kept.
        r = await srv.callOk('code_execute_async', { code: 'import time\nprint("started", flush=True)\nfor i in range(600): time.sleep(0.1)' });
        const cancelId = sc(r).execution_id;
        r = await waitUntil(async () => {
            const st = await srv.callOk('execution_status', { execution_id: cancelId });
            return /started/.test(sc(st).result?.stdout ?? '') || sc(st).state === 'done' ? st : null;
        }, 20000, 'the async cell printing "started"');
        check(sc(r).state === 'running' && /started/.test(sc(r).result?.stdout ?? ''), 'execution_status of a running cell: state running, its output so far', brief(r));
        r = await srv.callOk('execution_cancel', { execution_id: cancelId });
        check(!r.isError, 'execution_cancel answers', brief(r));
        r = await withDeadline(srv.callOk('execution_status', { execution_id: cancelId, wait_s: 10 }), 20000, 'execution_status after the cancel');
        check(sc(r).state === 'done' && sc(r).result?.status === 'cancelled', 'the cancelled async run ends done with status cancelled', brief(r));
        check(sc(r).result?.kernel_restarted === false, 'the cancel interrupted the kernel without restarting it', brief(r));
        r = await withDeadline(srv.callOk('code_execute', { code: 'z + x' }), 10000, 'a cell after execution_cancel');
        check(mainResult(r) === '48', 'after execution_cancel the kernel answers with its state kept', brief(r));
        r = await srv.call('execution_status', { execution_id: 'no-such-execution' });
        check(r.isError === true, 'execution_status of an unknown id is isError', brief(r));
    });

    await section('execution_cancel before the cell has started', async () => {
        // The cancel comes before the kernel's execute handler runs (ipykernel ignores SIGINT
        // until then); the gateway holds the interrupt until execute_input. The state is kept.
        r = await srv.callOk('sandbox_create', {});
        const sb = sc(r).sandbox_id;
        await srv.callOk('code_execute', { sandbox_id: sb, code: 'keep = 1' });
        r = await srv.callOk('code_execute_async', { sandbox_id: sb, code: 'import time\nfor i in range(600): time.sleep(0.1)' });
        const early = sc(r).execution_id;
        await srv.callOk('execution_cancel', { execution_id: early });
        r = await withDeadline(srv.callOk('execution_status', { execution_id: early, wait_s: 20 }), 30000, 'execution_status after an early cancel');
        check(sc(r).state === 'done' && sc(r).result?.status === 'cancelled', 'an early-cancelled async run ends done with status cancelled', brief(r));
        r = await withDeadline(srv.call('code_execute', { sandbox_id: sb, code: 'keep' }), 30000, 'a cell after an early cancel');
        check(mainResult(r) === '1' && !sc(r).kernel_restarted, 'execution_cancel right after code_execute_async keeps the state (no restart)', brief(r));
    });

    await section('an interrupt ipykernel catches in its own code', async () => {
        // A SIGINT that lands in ipykernel's code around the cell (here: an input transformer,
        // which runs after execute_input and before the cell) is caught there ("KeyboardInterrupt
        // caught in kernel"): the request ends idle with no execute_reply, the state intact. The
        // cancel must end as cancelled without restarting the kernel (it used to wait for a reply
        // that never came, then restart: the early-cancel flake).
        r = await srv.callOk('sandbox_create', {});
        const sb = sc(r).sandbox_id;
        await srv.callOk('code_execute', { sandbox_id: sb, code:
            'keep = 1\nimport time\ndef _slow(lines):\n    if any("SLOW" in l for l in lines):\n' +
            '        print("transforming", flush=True)\n        time.sleep(60)\n    return lines\n' +
            'get_ipython().input_transformers_post.append(_slow)' });
        r = await srv.callOk('code_execute_async', { sandbox_id: sb, code: '# SLOW\nkeep = 2' });
        const id = sc(r).execution_id;
        r = await waitUntil(async () => {
            const st = await srv.callOk('execution_status', { execution_id: id });
            return /transforming/.test(sc(st).result?.stdout ?? '') || sc(st).state === 'done' ? st : null;
        }, 20000, 'the transformer printing "transforming"');
        check(sc(r).state === 'running', 'the cell is held in the input transformer', brief(r));
        await srv.callOk('execution_cancel', { execution_id: id });
        r = await withDeadline(srv.callOk('execution_status', { execution_id: id, wait_s: 20 }), 30000, 'execution_status after the cancel');
        check(sc(r).state === 'done' && sc(r).result?.status === 'cancelled' && sc(r).result?.kernel_restarted === false,
            'a request the kernel dropped on the interrupt ends cancelled, without a restart', brief(r));
        await srv.callOk('code_execute', { sandbox_id: sb, code: 'get_ipython().input_transformers_post.remove(_slow)' });
        r = await withDeadline(srv.call('code_execute', { sandbox_id: sb, code: 'keep' }), 30000, 'a cell after the dropped request');
        check(mainResult(r) === '1' && !sc(r).kernel_restarted, 'the state is kept (the dropped cell never ran)', brief(r));
        await srv.callOk('sandbox_delete', { sandbox_id: sb });
    });

    await section('large output', async () => {
        // A huge output is cut; the rest is in a file that file_download reads with offset.
        r = await srv.callOk('code_execute', { code: "print('x' * 200000)" });
        const allText = (r.content ?? []).map((b) => b.text ?? '').join('');
        check(allText.length < 60000, 'the content of a 200000-char print is cut well under 200000 chars', `${allText.length} chars`);
        check((sc(r).stdout ?? '').length < 60000, 'structuredContent.stdout is cut too', `${(sc(r).stdout ?? '').length} chars`);
        check(sc(r).truncated === true, 'structuredContent.truncated is true', brief(r));
        const where = `${safeJson(sc(r).notes)} ${allText.slice(-2000)}`;
        const file = where.match(/\/home\/user\/\.cellblock\/outputs\/[A-Za-z0-9._\/-]+/)?.[0]?.replace(/[.,;:]+$/, '');
        check(Boolean(file), 'a note names the full output file under /home/user/.cellblock/outputs/', where.slice(0, 500));
        if (file) {
            const shown = (sc(r).stdout ?? '').match(/^x*/)[0].length;
            const d = await srv.callOk('file_download', { path: file, offset: shown });
            const rest = sc(d).content ?? '';
            check(/^x+\n?$/.test(rest) && shown + rest.replace(/\n$/, '').length === 200000,
                'file_download with offset (the part shown) returns the rest of the output', `shown ${shown}, rest ${rest.length} chars, ${safeJson(sc(d)).slice(0, 300)}`);
            check(sc(d).offset === shown && sc(d).encoding === 'text', 'file_download reports the offset and text encoding', safeJson({ ...sc(d), content: undefined }));
        }
    });

    await section('cutting multi-byte text', async () => {
        r = await srv.callOk('code_execute', { code: "print('\u00e9' * 30000)\nprint('\u4e2d\U0001F600' * 15000)" });
        const out = sc(r).stdout ?? '';
        check(sc(r).truncated === true && out.length < 30000, 'a 60000-character multi-byte print is cut', `${out.length} chars`);
        check(!out.includes('\ufffd') && out.startsWith('\u00e9'.repeat(1000)), 'the cut does not split a UTF-8 character (no U+FFFD)', JSON.stringify(out.slice(-200)));
    });

    await section('argument ranges', async () => {
        r = await srv.call('execution_status', { execution_id: 'whatever', wait_s: 61 });
        check(r.isError === true && /wait_s/.test(textOf(r)), 'execution_status wait_s 61 (over 60) is isError naming wait_s', brief(r));
        r = await srv.call('code_execute', { code: '1', timeout_s: 'soon' });
        check(r.isError === true && /timeout_s/.test(textOf(r)), 'code_execute timeout_s "soon" is isError naming timeout_s', brief(r));
    });

    await section('kernel death', async () => {
        r = await withDeadline(srv.call('code_execute', { code: 'import os\nos._exit(1)' }), 60000, 'a cell that kills its kernel');
        check(r.isError === true && sc(r).status === 'kernel_died', 'os._exit(1): status kernel_died, isError', brief(r));
        check(/died/.test(textOf(r)) && /lost/.test(textOf(r)), 'the text says the kernel died and its state is lost', brief(r));
        r = await withDeadline(srv.call('code_execute', { code: 'x' }), 60000, 'the cell after the kernel died');
        check(sc(r).status === 'error' && sc(r).error?.ename === 'NameError', 'after the kernel died, its state is gone (x is a NameError)', brief(r));
        check(sc(r).kernel_restarted === true, 'the first cell on the restarted kernel reports kernel_restarted (docs)', brief(r));
        r = await srv.callOk('code_execute', { code: 'y = 5\ny * 2' });
        check(mainResult(r) === '10', 'the restarted kernel works', brief(r));
        const otherErrors = srv.clientErrors.filter((e) => !/unknown message ID|unknown token/.test(e.message));
        check(otherErrors.length === 0, 'the SDK client saw no other protocol error from the server', safeJson(otherErrors));
        await srv.close();
    });

    await section('results within the SDK client\'s 10 MiB message limit', async () => {
        // StdioClientTransport's ReadBuffer refuses a message over 10 MiB and drops the
        // connection; the largest documented CELLBLOCK_OUTPUT_LIMIT must not produce one.
        const big = await startServer({ label: 'CELLBLOCK_OUTPUT_LIMIT=10000000 server', env: { CELLBLOCK_OUTPUT_LIMIT: '10000000' } });
        let got = null;
        try {
            got = await big.call('code_execute', { code: "print('x' * 6000000)" }, { timeout: 60000 });
        } catch (e) {
            got = { error: e.message };
        }
        const pong = await withDeadline(big.client.ping(), 10000, 'ping').then(() => true, () => false);
        check(!got.error && pong, 'a 6,000,000-char output (CELLBLOCK_OUTPUT_LIMIT=10000000) reaches the SDK client and the connection lives',
            `${safeJson(got).slice(0, 300)}; client errors: ${safeJson(big.clientErrors.map((e) => e.message.slice(0, 120)))}`);
        await big.close();
    });
});
