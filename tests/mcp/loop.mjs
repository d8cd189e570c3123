// loop.mjs: the gateway loop's lifetime rule, through the real server and the SDK client.
//
// Two sequences that crashed `cellblock serve` and `cellblock mcp` while czmq's zloop timers were
// used directly:
// - a cell that ignores SIGINT, keeps printing, runs with a progressToken and times out: the
//   interrupt's grace timer restarts the kernel and finishes the call (freeing it), and the call's
//   progress timer, stopped by that free, still ran later in the same timer pass, on freed memory
//   (ASan: heap-use-after-free). Repeated with the server paused now and then, as a busy machine
//   pauses it, so that the two timers come due together; then the server must still answer.
// - a sandbox whose /tmp fills its memory: the kernel is OOM-killed, and every restart dies again
//   before it is ready, until the restart limit; each restart armed a new startup deadline without
//   ending the old one, and the stale deadlines fired on the kernel after sandbox_delete had freed
//   it (SIGSEGV). With a short CELLBLOCK_KERNEL_STARTUP_TIMEOUT, the server must still be alive
//   and answering two of those timeouts after the delete (the absence of a crash cannot be waited
//   for, so time passes there: a multiple of the configured timeout).
import {
    brief, check, mainResult, note, run, safeJson, sc, section, startServer, textOf, timePasses, waitUntil, withDeadline,
} from './lib.mjs';

const STARTUP_S = 8;
const REPEATS = 4;

// Ignores SIGINT and prints without pause: the grace timer has to restart the kernel, and the
// progress timer is armed almost all the time.
const STUBBORN = [
    'import signal, sys',
    'signal.signal(signal.SIGINT, signal.SIG_IGN)',
    'line = "y" * 200 + "\\n"',
    'while True:',
    '    sys.stdout.write(line * 20)',
    '    sys.stdout.flush()',
].join('\n');

// Starts a writer that fills /tmp beyond the sandbox's memory, then waits to be killed.
const FILL_TMP = [
    'import subprocess, time',
    "subprocess.Popen('head -c 300M /dev/zero > /tmp/fill', shell=True)",
    'time.sleep(60)',
].join('\n');

// A busy machine, made on purpose: the server is paused (SIGSTOP) for 300 ms out of every 400
// while fn runs, so the timers that come due meanwhile all run in one pass when it resumes. On
// the idle machine of a test run, the grace timer and the progress timer would rarely share a pass.
async function whilePausing(pid, fn) {
    let done = false;
    const signal = (sig) => {
        try {
            process.kill(pid, sig);
        } catch {} // gone: the checks say so
    };
    const pauser = (async () => {
        await timePasses(300);
        while (!done) {
            signal('SIGSTOP');
            await timePasses(300);
            signal('SIGCONT');
            await timePasses(100);
        }
    })();
    try {
        return await fn();
    } finally {
        done = true;
        await pauser;
        signal('SIGCONT');
    }
}

async function alive(srv, what) {
    check(srv.exit === null, `${what}: the server process is alive`, safeJson(srv.exit));
    const r = await withDeadline(srv.call('code_execute', { code: '6 * 7' }), 60000, `${what}: a cell`);
    check(mainResult(r) === '42', `${what}: the server still runs code`, brief(r));
}

await run(async () => {
    const srv = await startServer({
        env: { CELLBLOCK_POOL: 'python=0', CELLBLOCK_KERNEL_STARTUP_TIMEOUT: String(STARTUP_S) },
    });

    await section('a timed-out cell that ignores SIGINT and prints, with progress', async () => {
        for (let i = 1; i <= REPEATS; i++) {
            let progress = 0;
            const r = await whilePausing(srv.pid, () => withDeadline(
                srv.call('code_execute', { code: STUBBORN, timeout_s: 1 }, { onprogress: () => progress++ }),
                60000, `stubborn cell ${i}`));
            check(sc(r).status === 'timeout' && sc(r).kernel_restarted === true,
                `run ${i}: status timeout, the kernel restarted after the grace`, brief(r));
            check(progress > 0, `run ${i}: progress notifications arrived`, `${progress}`);
            check(srv.exit === null, `run ${i}: the server is alive after it`, safeJson(srv.exit));
            if (srv.exit) break;
        }
        await alive(srv, 'after the stubborn cells');
    });

    await section('an OOM restart loop, then sandbox_delete', async () => {
        // Sometimes the OOM killer takes the sandbox's init as well, and the sandbox ends with it
        // (its kernel freed just the same): then the loop is tried again in a new sandbox.
        let restarts = 0;
        for (let attempt = 1; attempt <= 3 && restarts < 2; attempt++) {
            const id = sc(await srv.callOk('sandbox_create', { memory_mb: 256 })).sandbox_id;
            // A process in the sandbox fills /tmp (tmpfs, charged to the sandbox's memory) past the
            // limit: the OOM killer takes the kernel, the biggest process, and then every restart.
            const r = await withDeadline(srv.call('code_execute', { sandbox_id: id, code: FILL_TMP }), 120000, 'the cell that fills /tmp');
            check(sc(r).status === 'kernel_died', `attempt ${attempt}: the kernel dies when /tmp fills the sandbox's memory`, brief(r));
            let logs = [], gone = false;
            try {
                await waitUntil(async () => {
                    const l = await srv.call('sandbox_logs', { sandbox_id: id, lines: 200 });
                    if (l.isError) return (gone = true);
                    logs = sc(l).entries ?? [];
                    return logs.some((e) => /^kernel/.test(e.source) && /^dead/.test(e.text));
                }, 120000, 'the kernel dead after its restart limit', 250);
            } catch (e) {
                check(false, `attempt ${attempt}: the kernel reaches its restart limit`, `${e.message}: ${safeJson(logs.slice(-10))}`);
            }
            restarts = logs.filter((e) => /^kernel/.test(e.source) && /^restarting/.test(e.text)).length;
            note(`attempt ${attempt}: ${restarts} restart(s)${gone ? '; the sandbox died (its init was killed too)' : ''}`);
            check(srv.exit === null, `attempt ${attempt}: the server is alive at the restart limit`, safeJson(srv.exit));
            const d = gone ? null : await srv.call('sandbox_delete', { sandbox_id: id });
            check(!d?.isError || /is gone/.test(textOf(d)), `attempt ${attempt}: sandbox_delete (or it had died)`, brief(d));
        }
        check(restarts >= 2, 'a kernel was restarted several times before giving up, then deleted', `${restarts}`);
        // Every startup deadline armed during the loop is due within STARTUP_S of its restart.
        await timePasses(2 * STARTUP_S * 1000);
        await alive(srv, `${2 * STARTUP_S} s after sandbox_delete`);
    });
});
