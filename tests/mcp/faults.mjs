// faults.mjs: what goes wrong, and what is left after.
//
// - a kernel killed (SIGKILL from inside): kernel_died, then a restart that says state is gone;
// - out of memory: kernel_died with a note, an "OOM" log entry, counted in server_metrics;
// - a sandbox's init killed from the host: the server removes the sandbox ("is gone: it died"),
//   counts it, and keeps serving;
// - persistence: a persist sandbox's files outlive sandbox_delete (closed_persistent), reopen by
//   id, and go with discard_workspace;
// - SIGTERM to the server: it exits in time, leaves no process and no run dir, keeps the
//   persistent workspace;
// - SIGKILL to the server: its run dirs and cgroups stay behind; the next server with the same
//   environment sweeps them and reopens the persistent workspace with its files.
//
// Every server has its own runtime dir (XDG_RUNTIME_DIR, so $XDG_RUNTIME_DIR/cellblock) and state
// dir (CELLBLOCK_STATE_DIR), made here and removed when the script ends.
import { existsSync, readdirSync, readFileSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import {
    brief, check, mainResult, note, processesGone, run, safeJson, sandboxLogs, sandboxProcesses, sc, section, startServer,
    tempDir, textOf, waitUntil, withDeadline,
} from './lib.mjs';

const env = (rt, state) => ({ XDG_RUNTIME_DIR: rt, CELLBLOCK_STATE_DIR: state, CELLBLOCK_POOL: 'python=0' });
const runDir = (rt, id) => join(rt, 'cellblock', `s-${id.slice(0, 8)}`);
const runDirs = (rt) => (existsSync(join(rt, 'cellblock')) ? readdirSync(join(rt, 'cellblock')).filter((n) => n.startsWith('s-')) : []);
const workspace = (state, id) => join(state, 'sandboxes', id, 'workspace');
const readOr = (path, other = null) => {
    try {
        return readFileSync(path, 'utf8');
    } catch {
        return other;
    }
};

async function create(srv, args = {}) {
    const r = await srv.call('sandbox_create', args);
    if (r.isError) throw new Error(`sandbox_create ${safeJson(args)} failed: ${brief(r)}`);
    return sc(r).sandbox_id;
}

async function closedPersistent(srv) {
    return (sc(await srv.callOk('sandbox_list', {})).closed_persistent ?? []).map((p) => p.sandbox_id);
}

// A file uploaded and one written by code in a sandbox's workspace.
async function seedFiles(srv, id) {
    await srv.callOk('file_upload', { sandbox_id: id, path: 'uploaded.txt', content: `uploaded to ${id}\n` });
    await srv.callOk('code_execute', { sandbox_id: id, code: `open('written.txt', 'w').write('written by code in ${id}')` });
}

// Both files, read back through the sandbox.
async function checkFiles(srv, id, what) {
    const up = sc(await srv.callOk('file_download', { sandbox_id: id, path: 'uploaded.txt' })).content;
    const wr = mainResult(await srv.callOk('code_execute', { sandbox_id: id, code: "open('written.txt').read()" }));
    check(up === `uploaded to ${id}\n` && wr === `'written by code in ${id}'`, `${what}: the uploaded file and the one written by code are there`, safeJson({ up, wr }));
}

// The cgroup directories of a process (from /proc/PID/cgroup), those of cellblock's sandboxes,
// as host paths under /sys/fs/cgroup (v1: one per hierarchy; v2: the unified one).
function sandboxCgroups(pid) {
    const out = new Set();
    for (const line of readOr(`/proc/${pid}/cgroup`, '').split('\n')) {
        const m = /^\d+:([^:]*):(.*)$/.exec(line);
        if (!m || !m[2].includes('cellblock-')) continue;
        const roots = m[1] === '' ? ['/sys/fs/cgroup/unified', '/sys/fs/cgroup']
            : [m[1], ...m[1].split(',')].map((c) => `/sys/fs/cgroup/${c.replace(/^name=/, '')}`);
        for (const r of roots) if (existsSync(r + m[2])) out.add(realpathSync(r + m[2]));
    }
    return [...out];
}

await run(async () => {
    const rt = tempDir('cb-rt-'), state = tempDir('cb-state-');
    const srv = await startServer({ label: 'faults server', env: env(rt, state) });

    await section('a kernel killed', async () => {
        const id = await create(srv);
        await srv.callOk('code_execute', { sandbox_id: id, code: 'x = 1' });
        let r = await srv.call('code_execute', { sandbox_id: id, code: 'import os; os.kill(os.getpid(), 9)' });
        check(r.isError === true && sc(r).status === 'kernel_died', 'a cell that kills its kernel ends kernel_died', brief(r));
        r = await srv.call('code_execute', { sandbox_id: id, code: "'x' in globals()" });
        check(!r.isError && sc(r).kernel_restarted === true && mainResult(r) === 'False', 'the next code_execute runs in a restarted kernel (kernel_restarted: true, x is gone)', brief(r));
        check((sc(r).notes ?? []).some((n) => /State from earlier executions is gone/.test(n)), 'its notes say "State from earlier executions is gone"', brief(r));
        r = await srv.callOk('code_execute', { sandbox_id: id, code: '1' });
        check(sc(r).kernel_restarted === false, 'the one after is not kernel_restarted', brief(r));
        const logs = await sandboxLogs(srv, id);
        check(logs.some((e) => /^kernel/.test(e.source) && /^died/.test(e.text)) && logs.some((e) => /^kernel/.test(e.source) && /^restarting/.test(e.text)),
            'sandbox_logs has the kernel\'s "died" and "restarting" entries', safeJson(logs));
        const m = await srv.metrics();
        check(m.kernels?.died === 1 && m.kernels?.restarted === 1 && m.sandboxes?.died === 0, 'server_metrics: kernels.died 1, kernels.restarted 1, no sandbox died', safeJson(m.kernels));
        await srv.callOk('sandbox_delete', { sandbox_id: id });
    });

    await section('out of memory', async () => {
        const id = await create(srv, { memory_mb: 256 });
        const r = await withDeadline(srv.call('code_execute', { sandbox_id: id, code: 'b = bytearray(b"\\x01") * (1024 * 1024 * 1024)' }), 60000, 'the 1 GB cell');
        check(r.isError === true && sc(r).status === 'kernel_died', 'allocating 1 GB in a 256 MB sandbox ends kernel_died', brief(r));
        check((sc(r).notes ?? []).some((n) => /out of memory/i.test(n)), 'a note says it ran out of memory', brief(r));
        const logs = await sandboxLogs(srv, id);
        check(logs.some((e) => /^OOM/.test(e.text)), 'sandbox_logs has an "OOM" entry', safeJson(logs));
        const m = await srv.metrics();
        check(m.kernels?.oom === 1, 'server_metrics kernels.oom is 1', safeJson(m.kernels));
        await srv.callOk('sandbox_delete', { sandbox_id: id });
    });

    await section('a sandbox whose init dies', async () => {
        const [victim, bystander] = await Promise.all([create(srv), create(srv)]);
        const init = sc(await srv.callOk('sandbox_info', { sandbox_id: victim })).init_pid;
        const procs = await sandboxProcesses(srv, victim);
        check(Number.isInteger(init) && procs.size >= 2, 'sandbox_info gives init_pid, a host process with the kernel under it', safeJson({ init, procs: [...procs.keys()] }));
        // A cell is running when the init dies: it ends as kernel_died (not "cancelled", as if
        // someone had shut the kernel down), its note naming the sandbox's end or, when the
        // kernel's exit is seen before the init's, the kernel's death.
        let started;
        const printed = new Promise((resolve) => { started = resolve; });
        const running = srv.call('code_execute', { sandbox_id: victim, code: "print('started', flush=True)\nimport time\ntime.sleep(60)" },
            { onprogress: () => started() });
        await withDeadline(printed, 30000, 'the cell printing before the init is killed');
        process.kill(init, 'SIGKILL');
        const cell = await withDeadline(running, 30000, 'the cell running when the init died');
        check(sc(cell).status === 'kernel_died' && (sc(cell).notes ?? []).some((n) => /sandbox ended \(it died|kernel died/.test(n)),
            'the running cell ends kernel_died, its note naming the death', brief(cell));
        try {
            await waitUntil(async () => !(sc(await srv.callOk('sandbox_list', {})).sandboxes ?? []).some((s) => s.sandbox_id === victim), 10000, 'the sandbox gone from sandbox_list');
            check(true, 'the server removes the sandbox whose init was killed (sandbox_list no longer has it)');
        } catch (e) {
            check(false, 'the server removes the sandbox whose init was killed (sandbox_list no longer has it)', e.message);
        }
        const left = await processesGone(procs);
        check(left.length === 0, 'none of its processes is left', safeJson(left));
        for (const [tool, args] of [['code_execute', { code: '1' }], ['sandbox_info', {}], ['sandbox_metrics', {}]]) {
            const r = await srv.call(tool, { sandbox_id: victim, ...args });
            check(r.isError === true && /is gone: it died/.test(textOf(r)), `${tool} on it: isError, "is gone: it died"`, brief(r));
        }
        const m = await srv.metrics();
        check(m.sandboxes?.died === 1, 'server_metrics sandboxes.died is 1', safeJson(m.sandboxes));
        let r = await srv.call('code_execute', { sandbox_id: bystander, code: '6 * 7' });
        check(mainResult(r) === '42', 'another sandbox is untouched', brief(r));
        r = await srv.call('code_execute', { code: '6 * 7' });
        check(mainResult(r) === '42', 'the server keeps serving: a new default sandbox runs code', brief(r));
        await srv.callOk('sandbox_delete', { sandbox_id: bystander });
    });

    await section('a persistent sandbox', async () => {
        const id = await create(srv, { persist: true });
        await seedFiles(srv, id);
        let r = await srv.callOk('sandbox_list', {});
        check((sc(r).sandboxes ?? []).find((s) => s.sandbox_id === id)?.persistent === true && !(await closedPersistent(srv)).includes(id),
            'sandbox_list shows it live and persistent, not among closed_persistent', brief(r));
        r = await srv.callOk('sandbox_delete', { sandbox_id: id });
        check(sc(r).deleted === true && sc(r).workspace_kept === true, 'sandbox_delete keeps its workspace (workspace_kept: true)', brief(r));
        check(readOr(join(workspace(state, id), 'uploaded.txt')) === `uploaded to ${id}\n` && existsSync(join(workspace(state, id), 'written.txt')),
            `its files stay in $CELLBLOCK_STATE_DIR/sandboxes/${id}/workspace`, safeJson(readdirSync(join(state, 'sandboxes'))));
        check((await closedPersistent(srv)).includes(id), 'sandbox_list shows it under closed_persistent');
        r = await srv.callOk('sandbox_create', { sandbox_id: id });
        check(sc(r).sandbox_id === id && sc(r).persistent === true, 'sandbox_create {sandbox_id} reopens it, persistent', brief(r));
        await checkFiles(srv, id, 'reopened');
        r = await srv.callOk('sandbox_delete', { sandbox_id: id, discard_workspace: true });
        check(sc(r).workspace_kept === false, 'sandbox_delete discard_workspace: workspace_kept false', brief(r));
        check(!existsSync(join(state, 'sandboxes', id)), 'its directory is gone from the state dir');
        check(!(await closedPersistent(srv)).includes(id), 'and from closed_persistent');
        r = await srv.call('sandbox_create', { sandbox_id: id });
        check(r.isError === true, 'it can no longer be reopened', brief(r));
    });

    await section('SIGTERM to the server', async () => {
        const kept = await create(srv, { persist: true });
        const plain = await create(srv);
        await seedFiles(srv, kept);
        const dirs = [kept, plain].map((id) => runDir(rt, id));
        check(dirs.every((d) => existsSync(d)), 'each sandbox has its run dir under $XDG_RUNTIME_DIR/cellblock', safeJson(runDirs(rt)));
        const ex = await srv.kill('SIGTERM', 15000);
        check(ex && ex.code === 0, 'the server exits with status 0 on SIGTERM', safeJson(ex));
        await srv.checkNoneLeft('after SIGTERM');
        check(runDirs(rt).length === 0, 'no run dir of its sandboxes is left', safeJson(runDirs(rt)));
        check(readOr(join(workspace(state, kept), 'uploaded.txt')) === `uploaded to ${kept}\n`, 'the persistent workspace is still there with its files');
        const saved = JSON.parse(readOr(join(state, 'sandboxes', kept, 'sandbox.json'), '{}'));
        check(typeof saved.closed_at === 'string', 'its sandbox.json records when it was closed', safeJson(saved));
    });

    await section('SIGKILL to the server, and the next start', async () => {
        const rt2 = tempDir('cb-rt-'), state2 = tempDir('cb-state-');
        const g = await startServer({ label: 'killed server', env: env(rt2, state2) });
        const kept = await create(g, { persist: true });
        const plain = await create(g);
        await seedFiles(g, kept);
        const inits = await Promise.all([kept, plain].map(async (id) => sc(await g.callOk('sandbox_info', { sandbox_id: id })).init_pid));
        const cgroups = inits.flatMap(sandboxCgroups);
        check(cgroups.length >= 2 && cgroups.every((c) => c.includes(`cellblock-${g.pid}-`)), "its sandboxes' cgroups, named after the server's pid, are found", safeJson(cgroups));
        const dirs = [kept, plain].map((id) => runDir(rt2, id));
        const ex = await g.kill('SIGKILL', 10000);
        check(ex?.signal === 'SIGKILL', 'the server is killed', safeJson(ex));
        await g.checkNoneLeft('(its sandboxes die with it)');
        check(dirs.every((d) => existsSync(d)), 'its run dirs are left behind', safeJson(runDirs(rt2)));
        // Cgroups are host-wide: any cellblock starting meanwhile (another test) may sweep them.
        const cgroupsLeft = cgroups.filter((c) => existsSync(c));
        if (cgroupsLeft.length === cgroups.length) check(true, `its ${cgroups.length} cgroup directories are left behind`);
        else note(`${cgroups.length - cgroupsLeft.length} of its cgroup directories were swept already, by another cellblock starting on this host`);

        const h = await startServer({ label: 'next server', env: env(rt2, state2) });
        const leftovers = () => [...dirs, ...cgroups].filter((p) => existsSync(p));
        try {
            await waitUntil(() => leftovers().length === 0, 15000, 'the leftovers swept');
            check(true, 'the next server with the same environment removes the run dirs and cgroups left behind');
        } catch {
            check(false, 'the next server with the same environment removes the run dirs and cgroups left behind', safeJson(leftovers()));
        }
        check(readOr(join(workspace(state2, kept), 'uploaded.txt')) === `uploaded to ${kept}\n`, 'the persistent workspace survives the kill and the sweep');
        check((await closedPersistent(h)).includes(kept), 'the next server lists it under closed_persistent');
        const r = await h.callOk('sandbox_create', { sandbox_id: kept });
        check(sc(r).sandbox_id === kept, 'sandbox_create {sandbox_id} reopens it', brief(r));
        await checkFiles(h, kept, 'reopened after the kill');
        await h.callOk('sandbox_delete', { sandbox_id: kept, discard_workspace: true });
        check(!existsSync(join(state2, 'sandboxes', kept)), 'discard_workspace removes it');
        await h.close();
    });
});
