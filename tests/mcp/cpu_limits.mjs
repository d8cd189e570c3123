// cpu_limits.mjs: a sandbox's CPU limit holds for the whole sandbox, on every way a sandbox is
// made: `cellblock run --cpus`, sandbox_create {cpu}, a template's limits.cpu, a sandbox of that
// template handed out by the warm pool, and the server's CELLBLOCK_CPU_LIMIT for the default
// sandbox (itself from the pool).
//
// Each case checks two things:
// - the structure, which does not depend on the machine's load: every process of the sandbox
//   (its init, the kernel, what it forks) sits in one cpu cgroup whose quota is the limit
//   (cgroup v1: cpu.cfs_quota_us / cpu.cfs_period_us; v2: cpu.max), read from the host through
//   /proc/<pid>/cgroup;
// - the effect: three processes forked inside spin for 2 s of wall time each; the CPU they used
//   over the wall time they took (their own CPU times, from inside) must stay within the limit
//   plus a margin (0.5 cores: at most 0.7). Only an upper bound is checked, so a busy machine
//   cannot fail it; without the quota three spinners on two cores use far more.
// And what sandbox_metrics reports: its cpu_share is measured over windows of a second at
// least, so a quota's burst within one 100 ms period never reads as more cores than the limit
// (the sandbox is frozen with SIGSTOP for a second, so the next window starts at 0, then
// thawed and polled at once). A --cpus too small for the kernel's quota (under 1 ms per 100 ms)
// fails to start rather than run without a limit.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
    BIN, brief, check, note, run, runProgram, safeJson, sc, section, startServer, tempDir,
    timePasses, treeOf, waitUntil,
} from './lib.mjs';

const LIMIT = 0.5;
const MARGIN = 0.2;

// Three processes spinning for 2 s of wall time; prints the cores they used together.
const BUSY = [
    'import os, time',
    't0 = time.time()',
    'c0 = os.times()',
    'pids = []',
    'for i in range(3):',
    '    p = os.fork()',
    '    if p == 0:',
    '        end = time.time() + 2',
    '        while time.time() < end:',
    '            pass',
    '        os._exit(0)',
    '    pids.append(p)',
    'for p in pids:',
    '    os.waitpid(p, 0)',
    'c1 = os.times()',
    'used = (c1.children_user + c1.children_system) - (c0.children_user + c0.children_system)',
    'print("cores %.3f" % (used / (time.time() - t0)))',
].join('\n');

function coresOf(text) {
    const m = /cores ([0-9.]+)/.exec(text ?? '');
    return m ? Number(m[1]) : NaN;
}

// The cpu cgroup of a host pid and its quota in cores (null: no quota; undefined: unreadable).
function cpuCgroup(pid) {
    let lines;
    try {
        lines = readFileSync(`/proc/${pid}/cgroup`, 'utf8').trim().split('\n');
    } catch {
        return { path: undefined, cores: undefined };
    }
    const v1 = lines.map((l) => l.split(':')).find(([, ctl]) => ctl.split(',').includes('cpu'));
    if (v1) {
        const mount = ['/sys/fs/cgroup/cpu', '/sys/fs/cgroup/cpu,cpuacct'].find((m) => existsSync(m));
        const dir = join(mount ?? '/sys/fs/cgroup/cpu', v1[2]);
        try {
            const quota = Number(readFileSync(join(dir, 'cpu.cfs_quota_us'), 'utf8'));
            const period = Number(readFileSync(join(dir, 'cpu.cfs_period_us'), 'utf8'));
            return { path: v1[2], cores: quota < 0 ? null : quota / period };
        } catch {
            return { path: v1[2], cores: undefined };
        }
    }
    const v2 = lines.find((l) => l.startsWith('0::'));
    if (!v2) return { path: undefined, cores: undefined };
    const path = v2.slice(3);
    try {
        const [quota, period] = readFileSync(join('/sys/fs/cgroup', path, 'cpu.max'), 'utf8').trim().split(' ');
        return { path, cores: quota === 'max' ? null : Number(quota) / Number(period) };
    } catch {
        return { path, cores: undefined };
    }
}

// Every process of the sandbox whose init is initPid is in one cpu cgroup with the limit.
function checkStructure(what, initPid) {
    const pids = [...treeOf(initPid).keys()];
    const groups = pids.map((p) => ({ pid: p, ...cpuCgroup(p) })).filter((g) => g.path !== undefined);
    const paths = new Set(groups.map((g) => g.path));
    check(groups.length >= 2 && paths.size === 1 && groups.every((g) => g.cores === LIMIT),
          `${what}: all ${groups.length} processes of the sandbox share one cpu cgroup with a quota of ${LIMIT} cores`,
          safeJson(groups));
}

function checkEffect(what, cores, detail) {
    check(Number.isFinite(cores) && cores <= LIMIT + MARGIN,
          `${what}: three busy processes used ${cores} cores together (limit ${LIMIT}, at most ${LIMIT + MARGIN})`, detail);
}

// code_execute BUSY in sandbox id (null: the default sandbox) while the structure is checked
// from the host. Returns nothing; the checks say.
async function busyInKernel(srv, what, id) {
    const args = id ? { sandbox_id: id } : {};
    const info = sc(await srv.callOk('sandbox_info', args));
    const running = srv.call('code_execute', { ...args, code: BUSY, timeout_s: 120 });
    // The structure while the three spinners run: they are forked by the kernel.
    // The init, the kernel, its three spinners at least.
    await waitUntil(() => treeOf(info.init_pid).size >= 5, 60000, `${what}: the spinners start`, 100)
        .catch((e) => check(false, `${what}: the spinners start`, e.message));
    checkStructure(what, info.init_pid);
    const r = await running;
    checkEffect(what, coresOf(sc(r).stdout), brief(r));
    return info;
}

// sandbox_metrics polled as fast as it answers while the sandbox's spinners run right after a
// second frozen: every cpu_share is within the limit.
async function checkReportedShare(srv, id) {
    const args = { sandbox_id: id };
    const info = sc(await srv.callOk('sandbox_info', args));
    const running = srv.call('code_execute', { ...args, code: BUSY.replace('time.time() + 2', 'time.time() + 4'), timeout_s: 120 });
    await waitUntil(() => treeOf(info.init_pid).size >= 5, 60000, 'the spinners start', 100);
    const pids = [...treeOf(info.init_pid).keys()];
    const signal = (sig) => pids.forEach((p) => { try { process.kill(p, sig); } catch {} });
    const shares = [];
    let frozenAt = 0; // when the call that read the frozen window was sent
    signal('SIGSTOP');
    try {
        // Two windows of over a second: the first ends the one in which the spinners ran, the
        // second has nothing running. The wait is the thing under test.
        for (let i = 0; i < 2; i++) {
            await timePasses(1100);
            frozenAt = Date.now();
            shares.push(sc(await srv.callOk('sandbox_metrics', args)).cpu_share);
        }
    } finally {
        signal('SIGCONT');
    }
    const frozen = shares[1];
    const early = []; // answers that came less than a second after the frozen reading was asked
    for (let i = 0; i < 30; i++) {
        const share = sc(await srv.callOk('sandbox_metrics', args)).cpu_share;
        shares.push(share);
        if (Date.now() - frozenAt < 1000) early.push(share);
    }
    await running;
    check(frozen === 0, 'a second with every process of the sandbox stopped reads as cpu_share 0', safeJson(shares));
    // Within that second the spinners ran again at once, bursting on every core until the quota
    // of the period was spent: a share over that short a window says nothing of the limit.
    check(early.every((x) => x === frozen), `polls less than a second later report the last full window (${early.length} of them)`,
          safeJson({ frozen, early }));
    check(shares.every((x) => typeof x === 'number' && x >= 0 && x <= LIMIT + MARGIN),
          `sandbox_metrics' cpu_share stays within ${LIMIT + MARGIN} cores right after a frozen second (${shares.length} polls)`,
          safeJson(shares));
}

run(async () => {
    const templates = tempDir('cb-tpl-');
    writeFileSync(join(templates, 'halfcore.json'),
                  JSON.stringify({ description: 'half a core', kernel: 'python3', limits: { cpu: LIMIT } }));

    await section('cellblock run --cpus', async () => {
        const file = join(tempDir('cb-run-'), 'busy.py');
        writeFileSync(file, BUSY + '\n');
        const r = await runProgram(BIN, ['run', '--cpus', String(LIMIT), file], { ms: 120000 });
        check(r.code === 0, 'cellblock run --cpus 0.5 runs the busy script', safeJson(r));
        checkEffect('cellblock run --cpus 0.5', coresOf(r.stdout), r.stdout + r.stderr.slice(-2000));
        // 0.005 cores is 500 us per 100 ms period, under the kernel's 1 ms minimum.
        const tiny = await runProgram(BIN, ['run', '--cpus', '0.005', file], { ms: 120000 });
        check(tiny.code !== 0 && /cpu/.test(tiny.stderr) && !/cores/.test(tiny.stdout),
              'cellblock run --cpus 0.005: refused with a word about the cpu quota, nothing runs without it',
              safeJson(tiny).slice(0, 1500));
    });

    await section('sandbox_create {cpu}, a template, the warm pool', async () => {
        const srv = await startServer({
            label: 'pool',
            env: { XDG_RUNTIME_DIR: tempDir('cb-rt-'), CELLBLOCK_TEMPLATES_PATH: templates, CELLBLOCK_POOL: 'halfcore=1' },
        });
        // sandbox_create {cpu}: never from a pool (a pool serves only the template as it is).
        const a = sc(await srv.callOk('sandbox_create', { cpu: LIMIT }));
        const ia = await busyInKernel(srv, 'sandbox_create {cpu: 0.5}', a.sandbox_id);
        check(ia.limits?.cpu === LIMIT, 'sandbox_info shows the limit', safeJson(ia.limits));
        // A command (bash, not the kernel) forking the spinners is held the same.
        const c = await srv.call('command_execute', { sandbox_id: a.sandbox_id, command: `python3 -c '${BUSY}'`, timeout_s: 120 });
        checkEffect('sandbox_create {cpu: 0.5}, spinners forked by a command', coresOf(sc(c).stdout), brief(c));
        await checkReportedShare(srv, a.sandbox_id);
        // The warm pool of the template: wait until it holds a ready sandbox, then take it.
        await waitUntil(async () => (await srv.metrics()).pool?.templates?.halfcore?.ready === 1, 90000,
                        'the halfcore pool holds a ready sandbox', 250);
        const p = sc(await srv.callOk('sandbox_create', { template: 'halfcore' }));
        check(p.pooled === true, 'sandbox_create {template: halfcore} is served from the warm pool', safeJson(p));
        await busyInKernel(srv, 'a pooled sandbox of a template with limits.cpu 0.5', p.sandbox_id);
        // The same template with the pool empty (the refill has not finished): a fresh sandbox.
        const t = sc(await srv.callOk('sandbox_create', { template: 'halfcore' }));
        note(`second halfcore sandbox pooled: ${t.pooled}`);
        await busyInKernel(srv, `a ${t.pooled ? 'pooled' : 'fresh'} sandbox of a template with limits.cpu 0.5`, t.sandbox_id);
    });

    await section('CELLBLOCK_CPU_LIMIT for the default sandbox (from the python pool)', async () => {
        const srv = await startServer({
            label: 'server-wide',
            env: { XDG_RUNTIME_DIR: tempDir('cb-rt-'), CELLBLOCK_CPU_LIMIT: String(LIMIT), CELLBLOCK_POOL: 'python=1' },
        });
        await waitUntil(async () => (await srv.metrics()).pool?.templates?.python?.ready === 1, 90000,
                        'the python pool holds a ready sandbox', 250);
        await srv.callOk('code_execute', { code: 'pass' }); // makes the session's default sandbox
        const info = await busyInKernel(srv, 'the default sandbox under CELLBLOCK_CPU_LIMIT=0.5', null);
        check(info.pooled === true, 'the default sandbox came from the warm pool', safeJson(info));
    });
});
