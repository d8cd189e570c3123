// kernel_life.mjs: the assistant's kernel belongs to the server, and a revived kernel serves
// every route.
//
// 1. A person in the real `jupyter console`, attached through session_connect, types `exit` (and
//    in a second console `quit()`): the console leaves, the kernel and the assistant's variables
//    stay. The assistant's own `exit()` keeps them too.
// 2. Code that ends the kernel process anyway (os._exit(0): status 0, unasked) is a death like
//    any other: the kernel is restarted and the next result says its state is gone.
// 3. A kernel killed until the restart limit is dead: code_execute says so and names
//    kernel_restart; kernel_restart brings it back (its result says the state was lost), and
//    code_execute runs again.
// 4. Over `cellblock serve`: a kernel dead at its restart limit is revived through the Jupyter
//    API (POST /api/kernels/ID/restart) and MCP's code_execute runs in it; a kernel restarted
//    through MCP's kernel_restart is idle in GET /api/kernels/ID.
import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';

import {
    brief, check, deferred, mainResult, note, run, safeJson, sc, section, startServe, startServer, textOf,
    withDeadline,
} from './lib.mjs';

const CONSOLE = '/usr/bin/jupyter-console';
const RESTART_LIMIT = 5;
// ipykernel ends itself 0.1 s after `exit` (ask_exit schedules its loop's stop), once the cell
// that is running then is done. A cell that lasts longer than that, sent after the exit, has the
// stop (if it comes) happen before the cell after it, so that one shows whether the kernel ended.
const SETTLE = 'import time; time.sleep(0.3)'; // the gateway's default: automatic restarts per kernel in 5 minutes

// The real jupyter console on a connection file: lines in, its exit and output out.
function console_(file) {
    const proc = spawn(CONSOLE, ['--existing', file, '--simple-prompt'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    const waiters = [];
    const exited = deferred();
    const onData = (c) => {
        out += c.toString('utf8');
        for (const w of [...waiters])
            if (w.re.test(out)) {
                waiters.splice(waiters.indexOf(w), 1);
                w.d.resolve(out);
            }
    };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', onData);
    proc.on('exit', (code, signal) => exited.resolve({ code, signal }));
    proc.stdin.on('error', () => {});
    return {
        proc,
        out: () => out,
        exited: exited.promise,
        send: (line) => proc.stdin.write(line + '\n'),
        wait(re, ms, what) {
            if (re.test(out)) return Promise.resolve(out);
            const d = deferred();
            waiters.push({ re, d });
            return withDeadline(d.promise, ms, what);
        },
    };
}

async function consoleSays(file, input, what) {
    const c = console_(file);
    try {
        c.send('print("ready", 6 * 7)');
        await c.wait(/ready 42/, 60000, `${what}: the console runs a line`);
        c.send(input);
        const ex = await withDeadline(c.exited, 60000, `${what}: the console leaves`);
        check(ex.code === 0, `${what}: the console leaves (status 0)`, `${safeJson(ex)}\n${c.out().slice(-800)}`);
        check(/keeping kernel alive/.test(c.out()), `${what}: the console says "keeping kernel alive"`, c.out().slice(-800));
    } finally {
        if (c.proc.exitCode === null) c.proc.kill('SIGKILL');
    }
}

// Kill the sandbox's main kernel from inside until the gateway gives up restarting it.
async function killToDeath(srv, sandboxId) {
    let r;
    for (let i = 0; i <= RESTART_LIMIT; i++) {
        r = await srv.call('code_execute', { sandbox_id: sandboxId, code: 'import os; os.kill(os.getpid(), 9)' });
        if (r.isError && sc(r).status !== 'kernel_died') break; // dead already: refused
    }
    r = await srv.call('code_execute', { sandbox_id: sandboxId, code: '1' });
    return r;
}

await run(async () => {
    const srv = await startServer({ label: 'kernel life', env: { CELLBLOCK_POOL: 'python=0' } });

    let sbx;
    await section('exit and quit() in an attached console leave the kernel running', async () => {
        try {
            accessSync(CONSOLE, constants.X_OK);
        } catch {
            note(`${CONSOLE} is not installed: the console part is skipped`);
            return;
        }
        const r = await srv.callOk('code_execute', { code: 'x = 21' });
        sbx = sc(r).sandbox_id;
        const c = sc(await srv.callOk('session_connect', { sandbox_id: sbx }));
        await consoleSays(c.connection_file, 'exit', '`exit`');
        await srv.call('code_execute', { sandbox_id: sbx, code: SETTLE });
        let after = await srv.call('code_execute', { sandbox_id: sbx, code: 'x * 2' });
        check(!after.isError && mainResult(after) === '42' && sc(after).kernel_restarted === false,
            'after `exit` in the console the assistant\'s variable is still there (no restart)', brief(after));
        await consoleSays(c.connection_file, 'quit()', '`quit()`');
        await srv.call('code_execute', { sandbox_id: sbx, code: SETTLE });
        after = await srv.call('code_execute', { sandbox_id: sbx, code: 'x * 3' });
        check(!after.isError && mainResult(after) === '63' && sc(after).kernel_restarted === false,
            'after `quit()` in the console the variable is still there (no restart)', brief(after));
    });

    await section('the assistant\'s own exit() keeps the kernel', async () => {
        const r = await srv.callOk('code_execute', { code: 'y = 5\nexit()' });
        sbx = sbx ?? sc(r).sandbox_id;
        const mid = await srv.call('code_execute', { code: SETTLE });
        check(!mid.isError && sc(mid).kernel_restarted === false, 'the cell after exit() runs in the same kernel', brief(mid));
        const after = await srv.call('code_execute', { code: 'y + 1' });
        check(!after.isError && mainResult(after) === '6' && sc(after).kernel_restarted === false, 'after exit() in code_execute, y is still there', brief(after));
    });

    await section('a kernel that ends itself with status 0 is restarted, and the next result says so', async () => {
        await srv.callOk('code_execute', { code: 'z = 1' });
        const r = await srv.call('code_execute', { code: 'import os; os._exit(0)' });
        check(r.isError === true && sc(r).status === 'kernel_died', 'os._exit(0) ends the cell kernel_died', brief(r));
        const after = await srv.call('code_execute', { code: "'z' in globals()" });
        check(!after.isError && mainResult(after) === 'False' && sc(after).kernel_restarted === true,
            'the next code_execute runs in a restarted kernel (kernel_restarted: true, z is gone)', brief(after));
        check((sc(after).notes ?? []).some((n) => /(code|status) 0/.test(n) && /gone/.test(n)), 'its notes say the kernel exited with status 0 and state is gone', brief(after));
    });

    await section('kernel_restart brings back a kernel dead at its restart limit', async () => {
        const id = sc(await srv.callOk('sandbox_create', {})).sandbox_id;
        await srv.callOk('code_execute', { sandbox_id: id, code: 'w = 1' });
        const dead = await killToDeath(srv, id);
        check(dead.isError === true && /not restarted/.test(textOf(dead)) && /kernel_restart/.test(textOf(dead)),
            'past the restart limit code_execute says the kernel was not restarted and names kernel_restart', brief(dead));
        const rr = await srv.call('kernel_restart', { sandbox_id: id });
        check(!rr.isError && sc(rr).state_lost === true && sc(rr).sandbox_id === id && /state is lost/i.test(textOf(rr)),
            'kernel_restart: ok, state_lost true, the text says the state is lost', brief(rr));
        const again = await srv.call('code_execute', { sandbox_id: id, code: "print('w' in globals(), 6 * 7)" });
        check(!again.isError && sc(again).stdout?.trim() === 'False 42', 'code_execute runs in the revived kernel (w is gone)', brief(again));
        // A fresh budget: the revived kernel is restarted automatically after a death again.
        const once = await srv.call('code_execute', { sandbox_id: id, code: 'import os; os.kill(os.getpid(), 9)' });
        check(sc(once).status === 'kernel_died', 'a death after the revival ends that cell kernel_died', brief(once));
        const next = await srv.call('code_execute', { sandbox_id: id, code: '2 + 2' });
        check(!next.isError && mainResult(next) === '4' && sc(next).kernel_restarted === true,
            'and the kernel is restarted automatically (a revival gives a fresh restart budget)', brief(next));
        const info = sc(await srv.callOk('sandbox_info', { sandbox_id: id }));
        check((info.session_list ?? []).every((s) => s.state !== 'dead'), 'sandbox_info shows no dead session', safeJson(info.session_list));
        const t = await srv.call('kernel_restart', { sandbox_id: 'no-such-sandbox' });
        check(t.isError === true, 'kernel_restart of an unknown sandbox is a tool error', brief(t));
        await srv.callOk('sandbox_delete', { sandbox_id: id });
    });
    await srv.close();

    await section('over serve: a kernel revived through the Jupyter API serves MCP, and one restarted through MCP serves the API', async () => {
        const http = await startServe({ label: 'serve (kernel life)', env: { CELLBLOCK_POOL: 'python=0' } });
        const a = await http.connect({ label: 'assistant' });
        const api = (method, path) =>
            withDeadline(fetch(`${http.url}${path}`, { method, headers: { Authorization: `token ${http.token}` } }), 60000, `${method} ${path}`);
        const id = sc(await a.callOk('sandbox_create', {})).sandbox_id;
        const kernelId = sc(await a.callOk('session_connect', { sandbox_id: id })).kernel_id;
        const dead = await killToDeath(a, id);
        check(dead.isError === true && /not restarted/.test(textOf(dead)), 'the kernel is dead at its restart limit', brief(dead));
        let res = await api('GET', `/api/kernels/${kernelId}`);
        let model = await res.json().catch(() => null);
        check(model?.execution_state === 'dead', 'GET /api/kernels/ID says dead', safeJson(model));
        res = await api('POST', `/api/kernels/${kernelId}/restart`);
        model = await res.json().catch(() => null);
        check(res.status === 200, 'POST /api/kernels/ID/restart: 200', `${res.status} ${safeJson(model)}`);
        const r = await a.call('code_execute', { sandbox_id: id, code: 'print(6 * 7)' });
        check(!r.isError && sc(r).stdout?.trim() === '42', 'MCP code_execute runs in the kernel revived through the Jupyter API', brief(r));
        check(sc(r).kernel_restarted === true, 'and says the kernel was restarted', brief(r));
        const rr = await a.call('kernel_restart', { sandbox_id: id });
        check(!rr.isError && sc(rr).kernel_id === kernelId, 'kernel_restart over HTTP: ok, the same kernel id', brief(rr));
        res = await api('GET', `/api/kernels/${kernelId}`);
        model = await res.json().catch(() => null);
        check(res.status === 200 && model?.execution_state === 'idle', 'GET /api/kernels/ID: idle after kernel_restart', safeJson(model));
        await a.callOk('sandbox_delete', { sandbox_id: id });
        await http.close();
    });
});
