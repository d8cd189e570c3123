// shared_kernel.mjs: one kernel, driven by an assistant over MCP (the official SDK client over
// Streamable HTTP) and watched and driven by a person over the Jupyter Kernel Gateway API's
// channels WebSocket (what JupyterLab uses through --gateway-url), both on one `cellblock serve`.
//
// - session_connect gives the kernel id of the assistant's sandbox, and GET /api/kernels lists it;
// - what the assistant runs shows up on the WebSocket's iopub (execute_input with its code, its
//   output), and what the person defines there the assistant sees;
// - the person can interrupt the assistant's runaway cell (POST .../interrupt) and the state
//   stays; deleting the assistant's kernel from the API is refused (403) and changes nothing;
// - when the assistant deletes its sandbox, the WebSocket is closed and the kernel is gone (404).
import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';

import { check, deferred, run, safeJson, sc, section, startServe, withDeadline } from './lib.mjs';

const require = createRequire(import.meta.url);
const WebSocket = require('ws');

// A Jupyter channels client over one WebSocket (the default JSON format).
function channels(url, token, kernelId) {
    const ws = new WebSocket(`${url.replace('http:', 'ws:')}/api/kernels/${kernelId}/channels?session_id=${randomUUID()}&token=${token}`);
    const msgs = [];
    const waiters = [];
    const closed = deferred();
    const opened = deferred();
    ws.on('open', () => opened.resolve());
    ws.on('error', (e) => opened.reject(e));
    ws.on('close', (code, reason) => closed.resolve({ code, reason: reason.toString() }));
    ws.on('message', (data, isBinary) => {
        if (isBinary) return;
        const m = JSON.parse(data.toString());
        msgs.push(m);
        for (const w of [...waiters])
            if (w.pred(m)) {
                waiters.splice(waiters.indexOf(w), 1);
                w.d.resolve(m);
            }
    });
    const session = randomUUID();
    return {
        ws, msgs, closed: closed.promise, opened: opened.promise,
        // The first message (already received or to come) that matches pred.
        wait(pred, ms, what) {
            const have = msgs.find(pred);
            if (have) return Promise.resolve(have);
            const d = deferred();
            waiters.push({ pred, d });
            return withDeadline(d.promise, ms, what);
        },
        execute(code) {
            const msgId = randomUUID();
            ws.send(JSON.stringify({
                channel: 'shell',
                header: { msg_id: msgId, msg_type: 'execute_request', session, username: 'person', date: new Date().toISOString(), version: '5.3' },
                parent_header: {}, metadata: {},
                content: { code, silent: false, store_history: true, user_expressions: {}, allow_stdin: false, stop_on_error: true },
                buffers: [],
            }));
            return msgId;
        },
    };
}

const api = (srv, method, path) =>
    withDeadline(fetch(`${srv.url}${path}`, { method, headers: { Authorization: `token ${srv.token}` } }), 30000, `${method} ${path}`);

await run(async () => {
    const srv = await startServe({ label: 'serve' });
    const a = await srv.connect({ label: 'assistant' });

    let kernelId, sandboxId, lab;
    await section('the assistant\'s kernel is visible to Jupyter clients', async () => {
        const r = await a.callOk('code_execute', { code: 'x = 21' });
        sandboxId = sc(r).sandbox_id;
        const c = sc(await a.callOk('session_connect', { sandbox_id: sandboxId }));
        kernelId = c.kernel_id;
        check(/^[0-9a-f-]{36}$/.test(kernelId ?? ''), 'session_connect gives the kernel id', safeJson(c));
        const res = await api(srv, 'GET', '/api/kernels');
        const list = await res.json();
        check(res.status === 200 && list.some((k) => k.id === kernelId), 'GET /api/kernels lists the assistant\'s kernel', safeJson(list).slice(0, 500));
        lab = channels(srv.url, srv.token, kernelId);
        await withDeadline(lab.opened, 15000, 'WebSocket open');
        check(true, 'a Jupyter client opens the channels WebSocket of that kernel');
    });

    await section('the person sees what the assistant runs, and the assistant what the person defines', async () => {
        const r = await a.callOk('code_execute', { code: 'print(x * 2)' });
        check(sc(r).stdout?.trim() === '42', 'the assistant\'s cell runs', sc(r).stdout);
        const input = await lab.wait((m) => m.msg_type === 'execute_input' && m.content?.code === 'print(x * 2)', 15000, 'execute_input on iopub');
        check(input.channel === 'iopub', 'the WebSocket sees the assistant\'s code as execute_input on iopub', safeJson(input).slice(0, 300));
        const out = await lab.wait((m) => m.msg_type === 'stream' && m.parent_header?.msg_id === input.parent_header?.msg_id, 15000, 'stream');
        check(out.content?.text?.trim() === '42', 'and its output', safeJson(out.content));

        const id = lab.execute('y = x + 1');
        const reply = await lab.wait((m) => m.msg_type === 'execute_reply' && m.parent_header?.msg_id === id, 15000, 'execute_reply');
        check(reply.channel === 'shell' && reply.content?.status === 'ok', 'the person runs a cell in the same kernel', safeJson(reply.content));
        const r2 = await a.callOk('code_execute', { code: 'print(y)' });
        check(sc(r2).stdout?.trim() === '22', 'the assistant sees the person\'s variable', sc(r2).stdout);
    });

    await section('the person can stop a runaway cell but not end the assistant\'s kernel', async () => {
        const call = a.call('code_execute', { code: 'import time\nfor i in range(600): time.sleep(0.1)' });
        await lab.wait((m) => m.msg_type === 'execute_input' && /range\(600\)/.test(m.content?.code ?? ''), 15000, 'the long cell starts');
        const res = await api(srv, 'POST', `/api/kernels/${kernelId}/interrupt`);
        check(res.status === 204, 'POST /api/kernels/ID/interrupt: 204', `${res.status}`);
        const r = await call;
        check(sc(r).error?.ename === 'KeyboardInterrupt', 'the assistant\'s cell ends with KeyboardInterrupt', safeJson(sc(r).error));
        const del = await api(srv, 'DELETE', `/api/kernels/${kernelId}`);
        const body = await del.json().catch(() => null);
        check(del.status === 403 && body?.reason && body?.message, 'DELETE of the assistant\'s kernel: 403 with reason and message', `${del.status} ${safeJson(body)}`);
        const r3 = await a.callOk('code_execute', { code: 'print(x, y)' });
        check(sc(r3).stdout?.trim() === '21 22', 'and its state is still there', sc(r3).stdout);
    });

    await section('when the assistant deletes its sandbox, the Jupyter side sees the kernel go', async () => {
        await a.callOk('sandbox_delete', { sandbox_id: sandboxId });
        const c = await withDeadline(lab.closed, 15000, 'WebSocket closed');
        check(c.code === 1001 || c.code === 1000, 'the channels WebSocket is closed', safeJson(c));
        const res = await api(srv, 'GET', `/api/kernels/${kernelId}`);
        await res.arrayBuffer();
        check(res.status === 404, 'GET /api/kernels/ID: 404', `${res.status}`);
    });
    await srv.close();
});
