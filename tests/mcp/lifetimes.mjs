// lifetimes.mjs: how long sandboxes live and how many there are.
//
// - templates: sandbox_create's template enum is filled at start (python, python-data); an
//   unknown template is refused.
// - lifetimes: CELLBLOCK_SANDBOX_TIMEOUT for the default sandbox, which expires; the next
//   code_execute makes a new one and says (once) that the old one and its state are gone;
//   sandbox_create lifetime_s; sandbox_set_timeout extends, removes and shortens a lifetime;
//   tools on an expired sandbox say "is gone: it expired"; its processes leave the host.
// - idle culling (CELLBLOCK_IDLE_TIMEOUT): an idle sandbox goes, one running a long cell stays
//   while it runs and for the idle limit after, one whose kernel is slow to start is not culled
//   while it starts.
// - the warm pool (CELLBLOCK_POOL): sandbox_create {template} is served from it (pooled: true,
//   hits and misses counted), never hands one sandbox out twice (concurrent creates), refills in
//   the background; python-data comes with numpy, pandas and matplotlib imported and a README.
// - the cap (CELLBLOCK_MAX_SANDBOXES): pooled sandboxes count and are given up (other templates
//   first) to make room; past the cap sandbox_create is refused; deleting one makes room again.
// - metrics that move (memory peak, CPU time and share, executions, commands) and logs.
//
// Lifetimes here are 2-3 s: waiting them out is the thing under test, always polled with a
// deadline. A fixed lifetime (lifetime_s, sandbox_set_timeout) runs from the moment a sandbox
// is opened, kernel start included, and a kernel can take seconds to start on a busy host: so
// the short-lived sandboxes come from a warm pool, whose sandboxes are ready when handed out.
// (A lifetime not asked for runs from the last use instead: sandbox_use.mjs tests that.) Each server gets
// its own runtime dir (and, from lib.mjs, its own state dir).
import {
    LoggingMessageNotificationSchema, brief, check, mainResult, note, processesGone, run, safeJson, sandboxLogs, sandboxProcesses, sc, section, startServer,
    tempDir, textOf, timePasses, waitGone, waitUntil, withDeadline,
} from './lib.mjs';

const MB = 1024 * 1024;

// A server with its own runtime dir.
function server(label, env) {
    return startServer({ label, env: { XDG_RUNTIME_DIR: tempDir('cb-rt-'), ...env } });
}

// sandbox_create that must work: its structuredContent (an exception, ending the section, if not).
async function create(srv, args = {}) {
    const r = await srv.call('sandbox_create', args);
    if (r.isError) throw new Error(`sandbox_create ${safeJson(args)} failed: ${brief(r)}`);
    return sc(r);
}

// Wait until the pool of each template holds `ready` sandboxes ready: the last server_metrics.
async function poolReady(srv, want, ms = 90000) {
    let m;
    await waitUntil(async () => {
        m = await srv.metrics();
        return Object.entries(want).every(([t, n]) => m.pool?.templates?.[t]?.ready === n);
    }, ms, `pools ready ${safeJson(want)}`, 250);
    return m;
}

// Wait for sandbox id to be gone, checking the reason, how long it lived at least (from t0), and
// that its processes left the host. each() runs every polling round.
async function checkGone(srv, id, { t0, atLeastMs, reason, ms = 15000, procs, each, what }) {
    let gone;
    try {
        gone = await waitGone(srv, id, ms, each);
    } catch (e) {
        check(false, `${what}: the sandbox is gone within ${ms / 1000} s`, e.message);
        return null;
    }
    const lived = gone.at - t0;
    check(lived >= atLeastMs, `${what}: it was not torn down early (gone after ${lived} ms, not before ${atLeastMs})`, `${lived} ms`);
    check(new RegExp(`is gone: ${reason}`).test(textOf(gone.result)), `${what}: sandbox_info on it says "is gone: ${reason}"`, brief(gone.result));
    if (procs) {
        const left = await processesGone(procs);
        check(procs.size >= 2 && left.length === 0, `${what}: its ${procs.size} host processes are gone`, safeJson(left));
    }
    return gone;
}

await run(async () => {
    // ---- lifetimes, templates, metrics, logs: one server, default lifetime 3 s ---------------
    const srv = await server('lifetimes server', { CELLBLOCK_SANDBOX_TIMEOUT: '3', CELLBLOCK_POOL: 'python=2' });
    const logLines = [];
    srv.client.setNotificationHandler(LoggingMessageNotificationSchema, (n) =>
        logLines.push(typeof n.params.data === 'string' ? n.params.data : safeJson(n.params.data)));
    await srv.client.setLoggingLevel('info');

    await section('templates', async () => {
        const create = srv.tools.find((t) => t.name === 'sandbox_create');
        const names = create?.inputSchema?.properties?.template?.enum;
        check(Array.isArray(names) && names.includes('python') && names.includes('python-data') && names.every((n) => typeof n === 'string'),
            'sandbox_create inputSchema.properties.template.enum lists the templates found at start (python, python-data)', safeJson(create?.inputSchema?.properties?.template));
        const r = await srv.call('sandbox_create', { template: 'no-such-template' });
        check(r.isError === true && /template/.test(textOf(r)) && /python-data/.test(textOf(r)), 'sandbox_create with an unknown template is refused (isError, lists the templates)', brief(r));
        const m = await srv.metrics();
        check(m.sandboxes?.in_use === 0 && m.sandboxes?.opened === 0 && m.pool?.templates?.python?.size === 2 && !m.pool?.templates?.['python-data'],
            'the refused create opened nothing; CELLBLOCK_POOL=python=2 made only a python pool of 2', safeJson(m));
    });

    await section('the default sandbox expires (CELLBLOCK_SANDBOX_TIMEOUT=3)', async () => {
        await poolReady(srv, { python: 2 });
        const t0 = Date.now();
        let r = await srv.callOk('code_execute', { code: 'x = 41\nx + 1' });
        const old = sc(r).sandbox_id;
        check(mainResult(r) === '42', 'code_execute makes the default sandbox and runs', brief(r));
        r = await srv.callOk('sandbox_info', {});
        const expires = Date.parse(sc(r).expires_at);
        check(Math.abs(expires - (t0 + 3000)) < 2500, 'its expires_at is about 3 s from its creation', `${sc(r).expires_at} vs created ~${new Date(t0).toISOString()}`);
        const procs = await sandboxProcesses(srv, old);
        const expiredBefore = (await srv.metrics()).sandboxes?.expired;
        await checkGone(srv, old, { t0, atLeastMs: 2900, reason: 'it expired', procs, what: 'the default sandbox' });
        r = await srv.call('sandbox_info', {});
        check(r.isError === true, 'after it expired, sandbox_info without an id is isError (no default sandbox, none made)', brief(r));
        r = await srv.call('code_execute', { sandbox_id: old, code: '1' });
        check(r.isError === true && /is gone: it expired/.test(textOf(r)), 'code_execute on the expired sandbox: isError, "is gone: it expired"', brief(r));
        const m = await srv.metrics();
        check(m.sandboxes?.expired === expiredBefore + 1, 'server_metrics sandboxes.expired counts it', `${expiredBefore} -> ${m.sandboxes?.expired}`);
        check(logLines.some((l) => l.includes(old.slice(0, 8)) && /expired/.test(l)), 'a log notification says the sandbox expired', safeJson(logLines.slice(-10)));

        await poolReady(srv, { python: 2 });
        r = await srv.callOk('code_execute', { code: "'x' in globals()" });
        const notes = sc(r).notes ?? [];
        const fresh = sc(r).sandbox_id;
        check(sc(r).sandbox_id !== old && mainResult(r) === 'False', 'the next code_execute without sandbox_id runs in a new default sandbox, without the old variables', brief(r));
        check(/previous default sandbox/.test(notes[0] ?? '') && /gone/.test(notes[0] ?? '') && (notes[0] ?? '').includes(old),
            "its notes[0] says the previous default sandbox ended and its state is gone", safeJson(notes));
        // Three more seconds are too few on a busy host: sandbox_set_timeout without an id extends
        // the default sandbox.
        r = await srv.callOk('sandbox_set_timeout', { lifetime_s: 60 });
        check(sc(r).sandbox_id === fresh && Date.parse(sc(r).expires_at) > Date.now() + 50000, 'sandbox_set_timeout without sandbox_id extends the default sandbox', brief(r));
        r = await srv.callOk('code_execute', { code: '1' });
        check(!(sc(r).notes ?? []).some((n) => /previous default sandbox/.test(n)), 'the notice comes once: the call after has no such note', brief(r));
        await srv.callOk('sandbox_delete', { sandbox_id: fresh });
    });

    await section('lifetime_s and sandbox_set_timeout', async () => {
        await poolReady(srv, { python: 2 });
        const t0 = Date.now();
        const [a, b] = await Promise.all([create(srv, { lifetime_s: 2 }), create(srv, { lifetime_s: 2 })]);
        check(a.pooled && b.pooled, 'sandbox_create with only lifetime_s is served from the pool', safeJson([a, b]));
        const procsA = await sandboxProcesses(srv, a.sandbox_id);
        let r = await srv.callOk('sandbox_set_timeout', { sandbox_id: b.sandbox_id, lifetime_s: 60 });
        const extended = Date.parse(sc(r).expires_at);
        check(extended - Date.parse(a.expires_at) > 50000, 'sandbox_set_timeout 60 moves expires_at ~58 s past the 2 s one', `${a.expires_at} / ${sc(r).expires_at}`);
        check((await sandboxLogs(srv, b.sandbox_id)).some((e) => /^lifetime set/.test(e.text)), 'sandbox_logs has a "lifetime set" entry', '');
        // A goes after ~2 s; B, extended, stays (checked at every round, and until 1.5 s after its
        // first deadline).
        let bAlive = true;
        const bCheck = async () => {
            bAlive &&= !(await srv.call('sandbox_info', { sandbox_id: b.sandbox_id })).isError;
        };
        await checkGone(srv, a.sandbox_id, { t0, atLeastMs: 1900, reason: 'it expired', procs: procsA, each: bCheck, what: 'a sandbox with lifetime_s 2' });
        await waitUntil(async () => {
            await bCheck();
            return !bAlive || Date.now() > t0 + 3500;
        }, 10000, 'B past its first deadline', 200);
        check(bAlive, 'the extended sandbox outlives its first deadline by 1.5 s');
        r = await srv.call('code_execute', { sandbox_id: b.sandbox_id, code: '6 * 7' });
        check(mainResult(r) === '42', 'the extended sandbox still runs code', brief(r));
        for (const [tool, args] of [['sandbox_set_timeout', { lifetime_s: 30 }], ['sandbox_logs', {}], ['file_list', {}]]) {
            r = await srv.call(tool, { sandbox_id: a.sandbox_id, ...args });
            check(r.isError === true && /is gone: it expired/.test(textOf(r)), `${tool} on the expired sandbox: isError, "is gone: it expired"`, brief(r));
        }
        r = await srv.call('sandbox_set_timeout', { sandbox_id: b.sandbox_id, lifetime_s: 0 });
        check(r.isError === true, 'sandbox_set_timeout lifetime_s 0 is refused', brief(r));
        r = await srv.callOk('sandbox_set_timeout', { sandbox_id: b.sandbox_id, lifetime_s: -1 });
        check(sc(r).expires_at === null, 'sandbox_set_timeout -1: expires_at is null (no limit)', brief(r));
        r = await srv.callOk('sandbox_info', { sandbox_id: b.sandbox_id });
        check(sc(r).expires_at === null, 'sandbox_info agrees: expires_at null', brief(r));
        // Shorten it: gone about a second later.
        const procsB = await sandboxProcesses(srv, b.sandbox_id);
        const t1 = Date.now();
        await srv.callOk('sandbox_set_timeout', { sandbox_id: b.sandbox_id, lifetime_s: 1 });
        await checkGone(srv, b.sandbox_id, { t0: t1, atLeastMs: 900, reason: 'it expired', procs: procsB, ms: 10000, what: 'a lifetime shortened to 1 s' });
    });

    await section('metrics move', async () => {
        const id = (await create(srv, { lifetime_s: 120 })).sandbox_id;
        let r = await srv.callOk('sandbox_metrics', { sandbox_id: id });
        const m0 = sc(r);
        const fields = ['cpu_time_s', 'cpu_share', 'cpu_share_avg', 'memory_bytes', 'memory_peak_bytes', 'pids', 'disk_used_bytes', 'executions', 'commands', 'uptime_s', 'idle_s'];
        const missing = fields.filter((f) => typeof m0[f] !== 'number');
        check(missing.length === 0 && typeof m0.expires_at === 'string', 'sandbox_metrics has every field (numbers; expires_at a time)', `missing: ${missing}; ${brief(r)}`);

        await srv.callOk('code_execute', { sandbox_id: id, code: 'b = bytearray(b"\\x01") * (200 * 1024 * 1024)\nlen(b)' });
        const m1 = sc(await srv.callOk('sandbox_metrics', { sandbox_id: id }));
        check(m1.memory_peak_bytes - m0.memory_peak_bytes > 150 * MB, 'memory_peak_bytes grows by more than 150 MB after a 200 MB allocation',
            `${m0.memory_peak_bytes} -> ${m1.memory_peak_bytes}`);

        // Burn 2.5 s of CPU (process time, so a busy host cannot make it less), sampling the share
        // every 1.1 s while it runs (a share covers the time since the last sample a second old).
        r = await srv.callOk('code_execute_async', { sandbox_id: id, code: 'import time\nt = time.process_time()\nwhile time.process_time() - t < 2.5:\n    pass\n"burnt"' });
        const xid = sc(r).execution_id;
        // What the share should be is what the sandbox's CPU time grew by between two samples,
        // over the time between them, as this client measures it: the same figure on an idle
        // machine and on a loaded one (where the burn may get a small part of a core).
        const samples = [];
        for (;;) {
            await timePasses(1100);
            const t0 = Date.now();
            const m = sc(await srv.callOk('sandbox_metrics', { sandbox_id: id }));
            const t = (t0 + Date.now()) / 2;
            const st = sc(await srv.callOk('execution_status', { execution_id: xid }));
            samples.push({ t, cpu: m.cpu_time_s, share: m.cpu_share });
            if (st.state === 'done' || samples.length >= 60) {
                r = st;
                break;
            }
        }
        check(r.state === 'done' && r.result?.status === 'ok', 'the CPU-burning cell finishes', safeJson(r));
        const pairs = samples.slice(1).map((m, i) => {
            const used = (m.cpu - samples[i].cpu) / ((m.t - samples[i].t) / 1000);
            return { share: m.share, used: Math.round(used * 1000) / 1000 };
        });
        note(`cpu_share against the CPU time used per window: ${safeJson(pairs)}`);
        check(pairs.some((p) => p.used > 0.05 && Math.abs(p.share - p.used) <= 0.05 + 0.15 * p.used),
            'cpu_share sampled during the burn, a second or more apart, is the CPU time used over that window', safeJson(pairs));
        await srv.callOk('command_execute', { sandbox_id: id, command: 'true' });
        const m3 = sc(await srv.callOk('sandbox_metrics', { sandbox_id: id }));
        check(m3.cpu_time_s - m1.cpu_time_s > 1, 'cpu_time_s grows by more than 1 s after burning 2.5 s', `${m1.cpu_time_s} -> ${m3.cpu_time_s}`);
        check(m3.cpu_share_avg > 0, 'cpu_share_avg (over the sandbox\'s life) is above 0', `${m0.cpu_share_avg} -> ${m3.cpu_share_avg}`);
        check(m3.executions >= m0.executions + 2, 'executions count goes up with each cell', `${m0.executions} -> ${m3.executions}`);
        check(m3.commands === m0.commands + 1, 'commands count goes up with a command', `${m0.commands} -> ${m3.commands}`);
        check(m3.uptime_s > m0.uptime_s + 1 && m3.idle_s < 5, 'uptime_s grows; idle_s is small right after work', `${m0.uptime_s} -> ${m3.uptime_s}, idle ${m3.idle_s}`);

        const s = await srv.metrics();
        const groups = { sandboxes: ['live', 'in_use', 'pooled', 'starting', 'max', 'created', 'opened', 'refused', 'expired', 'culled', 'died'],
            kernels: ['live', 'started', 'died', 'restarted', 'oom'], executions: ['total', 'failed'] };
        const absent = Object.entries(groups).flatMap(([g, ks]) => ks.filter((k) => typeof s[g]?.[k] !== 'number').map((k) => `${g}.${k}`));
        check(absent.length === 0 && typeof s.commands === 'number' && typeof s.messages === 'object' && typeof s.pool === 'object',
            'server_metrics has sandboxes{...}, pool, kernels{...}, executions{...}, commands, messages', `missing: ${absent}; ${safeJson(s)}`);
        check(s.sandboxes.in_use === 1 && s.sandboxes.live === s.sandboxes.in_use + s.sandboxes.pooled && s.sandboxes.opened >= 5 && s.sandboxes.max === 100,
            'server_metrics: 1 sandbox in use, live = in use + pooled, every open counted, the default cap 100', safeJson(s.sandboxes));
        check(s.executions.total >= 6 && s.commands >= 1 && s.kernels.started >= s.sandboxes.created, 'server_metrics counts executions, commands and kernels', safeJson(s));

        const logs = await sandboxLogs(srv, id);
        check(logs.every((e) => !Number.isNaN(Date.parse(e.time)) && typeof e.source === 'string' && typeof e.text === 'string'),
            'sandbox_logs entries are {time (a timestamp), source, text}', safeJson(logs.slice(0, 3)));
        check(logs.some((e) => e.source === 'sandbox' && /^opened/.test(e.text)), 'sandbox_logs has the "opened" entry', safeJson(logs));
        check(logs.some((e) => /^kernel/.test(e.source) && /^ready/.test(e.text)), 'sandbox_logs has the kernel\'s "ready" entry', safeJson(logs));
        const times = logs.map((e) => Date.parse(e.time));
        check(times.every((t, i) => i === 0 || t >= times[i - 1]), 'sandbox_logs entries are in time order', safeJson(logs.map((e) => e.time)));
        await srv.callOk('sandbox_delete', { sandbox_id: id });
    });
    await srv.close();

    // ---- idle culling --------------------------------------------------------------------------
    await section('idle culling (CELLBLOCK_IDLE_TIMEOUT=2)', async () => {
        const idle = await server('idle server', { CELLBLOCK_IDLE_TIMEOUT: '2', CELLBLOCK_POOL: 'python=2' });
        await poolReady(idle, { python: 2 });
        // C starts fresh on a tenth of a core: its kernel takes longer than the idle limit to be
        // ready, and a sandbox still starting is not idle.
        const tC = Date.now();
        const slow = idle.call('sandbox_create', { cpu: 0.1 }).then((r) => ({ r, at: Date.now() }));
        const t0 = Date.now();
        const [a, b] = await Promise.all([create(idle), create(idle)]);
        const procsA = await sandboxProcesses(idle, a.sandbox_id);
        let cellDone = null;
        const cell = idle.call('code_execute', { sandbox_id: b.sandbox_id, code: 'import time\ntime.sleep(6)\n"slept"' })
            .then((r) => ((cellDone = Date.now()), r));
        let bAlive = true;
        const bCheck = async () => {
            bAlive &&= !(await idle.call('sandbox_info', { sandbox_id: b.sandbox_id })).isError;
        };
        await checkGone(idle, a.sandbox_id, { t0, atLeastMs: 1900, reason: 'it was idle', procs: procsA, each: bCheck, what: 'an idle sandbox' });
        await waitUntil(async () => {
            await bCheck();
            return !bAlive || cellDone;
        }, 20000, 'the long cell', 250);
        check(bAlive, 'a sandbox running a 6 s cell is not culled while it runs');
        const r = await cell;
        check(mainResult(r) === "'slept'", 'the long cell finishes', brief(r));
        await checkGone(idle, b.sandbox_id, { t0: cellDone, atLeastMs: 1500, reason: 'it was idle', ms: 10000, what: 'the sandbox after its cell' });
        const c = await withDeadline(slow, 120000, 'the slow sandbox_create');
        check(!c.r.isError && c.at - tC > 2000, `a sandbox whose kernel takes longer than the idle limit to start (${c.at - tC} ms) is not culled while starting`, brief(c.r));
        if (!c.r.isError)
            await checkGone(idle, sc(c.r).sandbox_id, { t0: c.at, atLeastMs: 1500, reason: 'it was idle', ms: 10000, what: 'the slow starter, once ready' });
        const m = await idle.metrics();
        check(m.sandboxes?.culled === 3 && m.sandboxes?.in_use === 0, 'server_metrics sandboxes.culled is 3 (pooled ones are never culled), none in use', safeJson(m.sandboxes));
        await idle.close();
    });

    // ---- the warm pool -------------------------------------------------------------------------
    await section('the warm pool (CELLBLOCK_POOL=python=2,python-data=1)', async () => {
        const pool = await server('pool server', { CELLBLOCK_POOL: 'python=2,python-data=1' });
        const m0 = await poolReady(pool, { python: 2, 'python-data': 1 });
        check(m0.pool.templates.python.size === 2 && m0.pool.templates['python-data'].size === 1 && m0.pool.templates.python.starting === 0,
            'server_metrics pool.templates gives each pool its size, ready and starting', safeJson(m0.pool));
        check(m0.sandboxes.pooled === 3 && m0.sandboxes.live === 3 && m0.sandboxes.in_use === 0, 'pooled sandboxes are live, not in use', safeJson(m0.sandboxes));
        let r = await pool.callOk('sandbox_list', {});
        check(sc(r).sandboxes?.length === 0, 'sandbox_list does not show pooled sandboxes', brief(r));

        // Three at once from a pool of two: two handed out, one started fresh, none twice.
        const made = await Promise.all([0, 1, 2].map(() => create(pool, { template: 'python' })));
        const ids = made.map((m) => m.sandbox_id);
        check(new Set(ids).size === 3 && ids.every((x) => typeof x === 'string'), 'three concurrent sandbox_create: three distinct sandbox_ids', safeJson(ids));
        check(made.filter((m) => m.pooled === true).length === 2 && made.filter((m) => m.pooled === false).length === 1,
            'two came from the pool (pooled: true), one was started fresh', safeJson(made.map((m) => m.pooled)));
        const m1 = await pool.metrics();
        check(m1.pool.hits - m0.pool.hits === 2 && m1.pool.misses - m0.pool.misses === 1, 'server_metrics counts 2 pool hits and 1 miss', safeJson(m1.pool));
        const inits = await Promise.all(ids.map(async (id) => sc(await pool.callOk('sandbox_info', { sandbox_id: id })).init_pid));
        check(new Set(inits).size === 3, 'each has its own init process', safeJson(inits));
        await Promise.all(ids.map((id, i) => pool.callOk('code_execute', { sandbox_id: id, code: `mark = ${i}` + (i === 0 ? "\nsecret = 'only in 0'" : '') })));
        const seen = await Promise.all(ids.map(async (id) => mainResult(await pool.callOk('code_execute', { sandbox_id: id, code: "(mark, globals().get('secret'))" }))));
        check(safeJson(seen) === safeJson(["(0, 'only in 0')", '(1, None)', '(2, None)']), 'a variable set in one is not visible in another', safeJson(seen));

        try {
            const m2 = await poolReady(pool, { python: 2, 'python-data': 1 }, 60000);
            check(m2.pool.templates.python.ready === 2, 'the python pool refills in the background (ready back to 2)', safeJson(m2.pool));
        } catch (e) {
            check(false, 'the python pool refills in the background (ready back to 2)', e.message);
        }

        const d = await create(pool, { template: 'python-data' });
        check(d.pooled === true && d.template === 'python-data', 'sandbox_create python-data is served from its pool', safeJson(d));
        r = await pool.callOk('code_execute', { sandbox_id: d.sandbox_id, code: '(np.__name__, pd.__name__, plt.__name__)' });
        check(mainResult(r) === "('numpy', 'pandas', 'matplotlib.pyplot')", 'python-data: np, pd and plt are imported already', brief(r));
        r = await pool.callOk('file_list', { sandbox_id: d.sandbox_id });
        check((sc(r).entries ?? []).some((e) => e.name === 'README.md' && e.type === 'file'), 'python-data: README.md is seeded in /home/user', brief(r));
        r = await pool.callOk('file_download', { sandbox_id: d.sandbox_id, path: 'README.md' });
        check(/python-data/.test(sc(r).content ?? ''), 'the README says it comes from the python-data template', brief(r));

        const before = (await pool.metrics()).pool;
        const own = await create(pool, { template: 'python', memory_mb: 300 });
        const after = (await pool.metrics()).pool;
        check(own.pooled === false && after.hits === before.hits, 'sandbox_create with limits is not served from the pool', safeJson({ own, before, after }));
        r = await pool.callOk('sandbox_list', {});
        check(sc(r).sandboxes?.length === 5, 'sandbox_list shows the 5 sandboxes handed out', brief(r));
        await pool.close();
    });

    // ---- the cap -------------------------------------------------------------------------------
    await section('the cap (CELLBLOCK_MAX_SANDBOXES=2)', async () => {
        const cap = await server('cap server', { CELLBLOCK_MAX_SANDBOXES: '2', CELLBLOCK_POOL: 'python=1,python-data=1' });
        let m = await poolReady(cap, { python: 1, 'python-data': 1 });
        check(m.sandboxes.live === 2 && m.sandboxes.max === 2, 'two pooled sandboxes fill the cap of 2 (pooled ones count)', safeJson(m.sandboxes));
        // A python sandbox that the pool cannot serve: the python-data pooled one is given up.
        // Asked at once after it, server_metrics sees it starting, and counts it.
        const starting = create(cap, { template: 'python', memory_mb: 256 });
        m = await cap.metrics();
        check(m.sandboxes.starting >= 1 && m.sandboxes.live === 2, 'a sandbox still starting counts as live', safeJson(m.sandboxes));
        const x = await starting;
        m = await cap.metrics();
        const t = m.pool.templates;
        check(x.pooled === false && t['python-data'].ready + t['python-data'].starting === 0 && t.python.ready === 1 && m.sandboxes.live === 2,
            'making room, the pooled sandbox of the other template (python-data) is given up first', safeJson(m));
        const y = await create(cap, { template: 'python' });
        check(y.pooled === true, 'the python pool still serves the next python sandbox', safeJson(y));
        const refusedBefore = (await cap.metrics()).sandboxes.refused;
        let r = await cap.call('sandbox_create', {});
        check(r.isError === true && /limit of 2 live sandboxes/.test(textOf(r)), 'past the cap sandbox_create is refused: isError, "limit of 2 live sandboxes"', brief(r));
        r = await cap.call('code_execute', { code: '1' });
        check(r.isError === true && /limit of 2/.test(textOf(r)), 'so is a new default sandbox', brief(r));
        m = await cap.metrics();
        check(m.sandboxes.refused === refusedBefore + 2 && m.sandboxes.live === 2, 'server_metrics counts the refusals; still 2 live', safeJson(m.sandboxes));
        await cap.callOk('sandbox_delete', { sandbox_id: x.sandbox_id });
        r = await cap.call('sandbox_create', {});
        check(!r.isError && typeof sc(r).sandbox_id === 'string', 'after a sandbox_delete, sandbox_create works again', brief(r));
        m = await cap.metrics();
        check(m.sandboxes.live <= 2, 'the cap holds: at most 2 live', safeJson(m.sandboxes));
        await cap.close();
    });
});
