// sandboxes.mjs: sandbox_create with limits, env and metadata; sandbox_list and sandbox_info;
// unknown ids; sandbox_metrics (memory, pids, disk); sandbox_logs; sandbox_delete leaving no
// process on the host; configuration from the environment (bad values stop the start;
// E2B_TIMEOUT sets the default time limit).
import {
    brief, check, cmdline, descendants, mainResult, run, runProgram, safeJson, section, sc, startServer,
    textOf, treeOf, waitUntil, withDeadline, alive, BIN, serverEnv,
} from './lib.mjs';

const MB = 1024 * 1024;

await run(async () => {
    const srv = await startServer({ label: 'sandboxes server', env: { CELLBLOCK_TEST_HOST_SECRET: 'leaked' } });
    let r, id, mine;

    await section('no default sandbox from read-only tools', async () => {
        // The default sandbox is not made by the read-only tools.
        r = await srv.callOk('sandbox_list', {});
        check(Array.isArray(sc(r).sandboxes) && sc(r).sandboxes.length === 0, 'sandbox_list starts empty (pooled sandboxes are not listed)', brief(r));
        check(Array.isArray(sc(r).closed_persistent) && sc(r).closed_persistent.length === 0,
            'sandbox_list has closed_persistent, empty in a fresh state dir', brief(r));
        r = await srv.call('sandbox_info', {});
        check(r.isError === true, 'sandbox_info without a default sandbox is isError (it never creates one)', brief(r));
        r = await srv.call('sandbox_metrics', {});
        check(r.isError === true, 'sandbox_metrics without a default sandbox is isError', brief(r));
        r = await srv.call('sandbox_logs', {});
        check(r.isError === true, 'sandbox_logs without a default sandbox is isError', brief(r));
        r = await srv.callOk('sandbox_list', {});
        check(sc(r).sandboxes?.length === 0, 'sandbox_info and sandbox_metrics did not create a sandbox', brief(r));
    });

    await section('sandbox_create with everything', async () => {
        // Create with everything set.
        r = await srv.callOk('sandbox_create', {
            memory_mb: 640, cpu: 1.5, disk_mb: 64, timeout_s: 120,
            env: { GREETING: 'hello from env', OTHER: 'x=y' }, metadata: { owner: 'mcp-tests', purpose: 'limits' },
        });
        const made = sc(r);
        id = made.sandbox_id;
        check(typeof id === 'string' && typeof made.session_id === 'string' && made.template === 'python', 'sandbox_create returns sandbox_id, session_id, template python', brief(r));
        check(made.limits?.memory_mb === 640 && made.limits?.cpu === 1.5 && made.limits?.disk_mb === 64 && made.limits?.timeout_s === 120,
            'sandbox_create returns the limits asked', safeJson(made.limits));
        check(safeJson([...(made.env_keys ?? [])].sort()) === safeJson(['GREETING', 'OTHER']), 'env_keys lists the env keys (not values)', safeJson(made));
        check(made.metadata?.owner === 'mcp-tests' && made.metadata?.purpose === 'limits' && typeof made.created_at === 'string', 'metadata and created_at are returned', safeJson(made));

        // Its own processes: its init and what runs under it (the server also keeps a warm pool,
        // whose sandboxes start in the background).
        r = await srv.callOk('sandbox_info', { sandbox_id: id });
        const info = sc(r);
        check(Number.isInteger(info.init_pid) && descendants(srv.pid).has(info.init_pid), 'sandbox_info gives init_pid, a host process of the server', brief(r));
        mine = treeOf(info.init_pid);
        const myKernels = [...mine.keys()].filter((p) => (cmdline(p) ?? '').includes('ipykernel'));
        check(myKernels.length === 1, 'one ipykernel process on the host belongs to the new sandbox', safeJson(myKernels.map((p) => `${p} ${cmdline(p)}`)));
        check(info.sandbox_id === id && info.limits?.memory_mb === 640 && info.limits?.disk_mb === 64 && info.limits?.cpu === 1.5, 'sandbox_info shows the limits', brief(r));
        check(info.metadata?.owner === 'mcp-tests', 'sandbox_info shows the metadata', brief(r));
        const sessionList = [info.sessions, info.session_list].find(Array.isArray) ?? [];
        check(sessionList.some((x) => x.session_id === made.session_id && typeof x.state === 'string'), 'sandbox_info lists the sessions with their states (the main one included)', brief(r));
        check(info.usage && typeof info.usage === 'object' && info.layers && typeof info.layers === 'object', 'sandbox_info shows usage and the isolation layers', brief(r));
        check(info.default === false, 'a sandbox from sandbox_create is not the default one', brief(r));

        r = await srv.callOk('sandbox_list', {});
        const listed = (sc(r).sandboxes ?? []).find((s) => s.sandbox_id === id);
        check(listed && listed.metadata?.purpose === 'limits' && listed.template === 'python' && listed.default === false, 'sandbox_list shows it with its metadata', brief(r));

        r = await srv.callOk('code_execute', { sandbox_id: id, code: 'import os\nos.environ.get("GREETING"), os.environ.get("OTHER")' });
        check(mainResult(r) === "('hello from env', 'x=y')", 'the env is visible to code', brief(r));
        r = await srv.callOk('command_execute', { sandbox_id: id, command: 'echo "$GREETING"' });
        check(sc(r).stdout === 'hello from env\n', 'the env is visible to commands', brief(r));
        r = await srv.callOk('code_execute', { sandbox_id: id, code: 'import os\nstr(os.environ.get("CELLBLOCK_TEST_HOST_SECRET"))' });
        check(mainResult(r) === "'None'", 'a host variable of the server does not reach the sandbox', brief(r));
    });

    await section('unknown sandbox ids', async () => {
        // Unknown sandbox ids.
        for (const tool of ['code_execute', 'sandbox_info', 'sandbox_metrics', 'sandbox_logs', 'file_list', 'sandbox_delete']) {
            r = await srv.call(tool, tool === 'code_execute' ? { sandbox_id: 'sb-does-not-exist', code: '1' } : { sandbox_id: 'sb-does-not-exist' });
            check(r.isError === true && /sb-does-not-exist/.test(textOf(r)) && /sandbox/i.test(textOf(r)), `${tool} with an unknown sandbox_id is isError naming it`, brief(r));
        }
        r = await srv.callOk('sandbox_list', {});
        check(sc(r).sandboxes?.length === 1, 'code_execute with an unknown sandbox_id created nothing', brief(r));
    });

    await section('metrics', async () => {
        // Metrics: memory, pids, disk.
        r = await srv.callOk('sandbox_metrics', { sandbox_id: id });
        const m0 = sc(r);
        check(m0.memory_limit_bytes === 640 * MB, 'sandbox_metrics: memory_limit_bytes is 640 MB', brief(r));
        check(m0.pids >= 1 && m0.memory_bytes > 0, 'sandbox_metrics: pids >= 1 and some memory in use', brief(r));
        check(m0.disk_limit_bytes === 64 * MB, 'sandbox_metrics: disk_limit_bytes is 64 MB', brief(r));
        await srv.callOk('code_execute', { sandbox_id: id, code: 'b = bytearray(b"\\x01") * (200 * 1024 * 1024)\nlen(b)' });
        r = await srv.callOk('sandbox_metrics', { sandbox_id: id });
        const m1 = sc(r);
        check(m1.memory_bytes - m0.memory_bytes > 150 * MB, 'memory_bytes grows by more than 150 MB after a 200 MB allocation',
            `${m0.memory_bytes} -> ${m1.memory_bytes}`);
        check(m1.memory_peak_bytes >= m1.memory_bytes || m1.memory_peak_bytes === null, 'memory_peak_bytes >= memory_bytes', brief(r));
        await srv.callOk('command_execute', { sandbox_id: id, command: 'head -c 8000000 /dev/urandom > blob.bin' });
        r = await srv.callOk('sandbox_metrics', { sandbox_id: id });
        const m2 = sc(r);
        check(m2.disk_used_bytes - m1.disk_used_bytes > 7 * MB, 'disk_used_bytes grows by the 8 MB file written', `${m1.disk_used_bytes} -> ${m2.disk_used_bytes}`);
        check(m2.executions >= 2 && m2.uptime_s >= 0 && m2.cpu_time_s > 0, 'sandbox_metrics counts executions, uptime and CPU time', brief(r));
        r = await srv.call('command_execute', { sandbox_id: id, command: 'head -c 80000000 /dev/zero > too-big.bin' });
        check(r.isError === true && /space|quota|limit|large/i.test(safeJson(r)), 'writing past disk_mb fails (isError, says why)', brief(r));
    });

    await section('out of memory', async () => {
        r = await srv.callOk('sandbox_create', { memory_mb: 200 });
        const small = sc(r).sandbox_id;
        r = await withDeadline(srv.call('code_execute', { sandbox_id: small, code: 'keep = 1\nb = bytearray(b"\\x01") * (400 * 1024 * 1024)' }), 60000, 'a cell allocating 400 MB in 200 MB');
        check(r.isError === true && ['kernel_died', 'error'].includes(sc(r).status), 'allocating 400 MB in a 200 MB sandbox fails (kernel_died, or MemoryError)', brief(r));
        if (sc(r).status === 'kernel_died')
            check(/memory|OOM/i.test(textOf(r)), 'the text says the kernel ran out of memory', brief(r));
        const died = sc(r).status === 'kernel_died';
        r = await srv.callOk('sandbox_metrics', { sandbox_id: small });
        check(Number.isInteger(sc(r).oom_kills) && (!died || sc(r).oom_kills >= 1), 'sandbox_metrics counts the OOM kill (oom_kills >= 1)', brief(r));
        const oom = sc(r).oom_kills;
        r = await withDeadline(srv.call('code_execute', { sandbox_id: small, code: '6 * 7' }), 60000, 'the cell after the OOM');
        check(mainResult(r) === '42', 'the sandbox runs code again after running out of memory', brief(r));
        r = await srv.callOk('sandbox_info', { sandbox_id: small });
        check(typeof oom === 'number' && (sc(r).usage?.oom_kills ?? oom) === oom, 'sandbox_info usage agrees on oom_kills', brief(r));
        await srv.callOk('sandbox_delete', { sandbox_id: small });
    });

    await section('logs', async () => {
        // Logs.
        r = await srv.callOk('sandbox_logs', { sandbox_id: id, lines: 50 });
        const logs = Object.values(sc(r)).find(Array.isArray) ?? [];
        check(logs.length >= 1 && logs.every((e) => typeof e.text === 'string' && typeof e.source === 'string' && e.time !== undefined), 'sandbox_logs returns {time, source, text} entries', brief(r));
        check(logs.some((e) => /creat|start/i.test(e.text)), 'sandbox_logs includes a lifecycle event (created / kernel started)', brief(r));
    });

    await section('sandbox_delete', async () => {
        // Delete frees everything.
        r = await srv.callOk('sandbox_delete', { sandbox_id: id });
        const left = () => [...mine].filter(([p, s]) => alive(p, s)).map(([p]) => p);
        const leftAtReturn = left();
        check(mine.size >= 2, 'the sandbox had its own host processes (init, kernel, ...)', safeJson([...mine.keys()]));
        try {
            await waitUntil(() => left().length === 0, 10000, 'the sandbox processes gone');
            check(true, `after sandbox_delete no process of the sandbox is left on the host (${leftAtReturn.length} still there when it returned)`);
        } catch {
            check(false, 'after sandbox_delete no process of the sandbox is left on the host', left().map((p) => `${p}: ${cmdline(p)}`).join('; '));
        }
        r = await srv.call('sandbox_info', { sandbox_id: id });
        check(r.isError === true, 'sandbox_info of a deleted sandbox is isError', brief(r));
        r = await srv.call('code_execute', { sandbox_id: id, code: '1' });
        check(r.isError === true, 'code_execute in a deleted sandbox is isError', brief(r));
        r = await srv.callOk('sandbox_list', {});
        check(!(sc(r).sandboxes ?? []).some((s) => s.sandbox_id === id), 'sandbox_list no longer shows it', brief(r));
    });

    await section('delete while a cell runs', async () => {
        // Delete while a cell runs: the execution ends cancelled.
        r = await srv.callOk('sandbox_create', {});
        const id2 = sc(r).sandbox_id;
        const running = srv.call('code_execute', { sandbox_id: id2, code: 'import time\ntime.sleep(60)' });
        r = await srv.callOk('sandbox_delete', { sandbox_id: id2 });
        try {
            r = await withDeadline(running, 15000, 'the cell of a deleted sandbox');
            check(sc(r).status === 'cancelled' && r.isError === true, 'a running execution of a deleted sandbox ends as cancelled', brief(r));
        } catch (e) {
            check(false, 'a running execution of a deleted sandbox ends as cancelled', e?.message ?? String(e));
        }
    });

    await section('the default sandbox', async () => {
        // The default sandbox is marked default.
        r = await srv.callOk('code_execute', { code: '1' });
        const dflt = sc(r).sandbox_id;
        r = await srv.callOk('sandbox_list', {});
        check((sc(r).sandboxes ?? []).find((s) => s.sandbox_id === dflt)?.default === true, 'sandbox_list marks the default sandbox default: true', brief(r));
        r = await srv.callOk('sandbox_info', {});
        check(sc(r).sandbox_id === dflt && sc(r).limits?.memory_mb === 512 && sc(r).limits?.timeout_s === 300, 'sandbox_info without an id describes the default sandbox with the default limits', brief(r));
        await srv.callOk('sandbox_delete', { sandbox_id: dflt });
        r = await srv.call('code_execute', { code: '2 + 2' });
        check(!r.isError && mainResult(r) === '4' && sc(r).sandbox_id !== dflt, 'after the default sandbox is deleted, the next call gets a new default sandbox', brief(r));
        await srv.close();
    });

    await section('configuration from the environment', async () => {
        // Configuration from the environment.
        for (const [name, value] of [['CELLBLOCK_TIMEOUT', '0'], ['E2B_MEMORY_LIMIT', '99999'], ['CELLBLOCK_OUTPUT_LIMIT', 'lots']]) {
            const p = await runProgram(BIN, ['mcp'], { env: serverEnv({ [name]: value }), ms: 15000 });
            check(p.code === 2 && p.stdout === '' && p.stderr.includes(name), `${name}=${value}: exits with status 2 at once, stderr names ${name}, stdout empty`,
                safeJson({ code: p.code, signal: p.signal, stdout: p.stdout.slice(0, 200), stderr: p.stderr.slice(0, 500) }));
        }
        const t = await startServer({ label: 'E2B_TIMEOUT=2 server', env: { E2B_TIMEOUT: '2' } });
        r = await withDeadline(t.call('code_execute', { code: 'import time\ntime.sleep(10)\nprint("slept")' }), 30000, 'the 10 s cell under E2B_TIMEOUT=2');
        check(sc(r).status === 'timeout' && r.isError === true && !/slept/.test(sc(r).stdout ?? ''), 'E2B_TIMEOUT=2 makes time.sleep(10) end as timeout', brief(r));
        r = await t.callOk('sandbox_info', {});
        check(sc(r).limits?.timeout_s === 2, 'E2B_TIMEOUT=2: the default sandbox has timeout_s 2', brief(r));
        await t.close();
        const w = await startServer({ label: 'CELLBLOCK_ wins server', env: { CELLBLOCK_MEMORY_LIMIT: '300', E2B_MEMORY_LIMIT: '200' } });
        r = await w.callOk('sandbox_create', {});
        check(sc(r).limits?.memory_mb === 300, 'CELLBLOCK_MEMORY_LIMIT wins over E2B_MEMORY_LIMIT', brief(r));
        await w.close();
    });
});
