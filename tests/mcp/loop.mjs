// loop.mjs: the gateway loop's lifetime rule, through the real server and the SDK client.
//
// Two sequences that crashed `cellblock serve` and `cellblock mcp` while czmq's zloop timers were
// used directly:
// - a cell that ignores SIGINT, keeps printing, runs with a progressToken and times out: the
//   interrupt's grace timer restarts the kernel and finishes the call (freeing it), and the call's
//   progress timer, stopped by that free, still ran later in the same timer pass, on freed memory
//   (ASan: heap-use-after-free). Repeated with the server paused around the end of the grace, as
//   a busy machine pauses it, so that the two timers come due together; then the server must
//   still answer.
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

// Ignores SIGINT and prints a line every 10 ms: the grace timer has to restart the kernel, the
// progress timer is armed almost all the time, and the server, which keeps up with this output,
// waits in its poll most of the time (where a pause finds it, timers run first on resuming).
const STUBBORN = [
    'import signal, time',
    'signal.signal(signal.SIGINT, signal.SIG_IGN)',
    'while True:',
    '    print("y" * 100, flush=True)',
    '    time.sleep(0.01)',
].join('\n');

// Starts a writer that keeps /tmp filled beyond the sandbox's memory (a new head whenever the
// OOM killer takes the last one), then waits to be killed.
// The filler runs in a session of its own, so that it outlives the kernel (whose process group
// goes with it) and keeps /tmp at its limit: every restart then finds too little memory left.
const FILL_TMP = [
    'import subprocess, time',
    "subprocess.Popen('while :; do head -c 300M /dev/zero >> /tmp/fill; done', shell=True, start_new_session=True)",
    'time.sleep(60)',
].join('\n');

// A busy machine, made on purpose: the server is stopped (SIGSTOP) from fromMs to toMs after fn
// starts, as a loaded machine deschedules it, so that every timer that comes due meanwhile runs
// in the one pass after it resumes. The window is wide around the moment the interrupt's grace
// ends (the cell's 1 s timeout plus the 3 s grace); on an idle machine the grace timer and the
// progress timer (due every 50 ms while output flows) would rarely share a pass.
async function whilePaused(pid, fromMs, toMs, fn) {
    const signal = (sig) => {
        try {
            process.kill(pid, sig);
        } catch {} // gone: the checks say so
    };
    const stop = setTimeout(() => signal('SIGSTOP'), fromMs);
    const cont = setTimeout(() => signal('SIGCONT'), toMs);
    try {
        return await fn();
    } finally {
        clearTimeout(stop);
        clearTimeout(cont);
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
            // The kernel is ready (restarted after the previous run), so the cell starts at once.
            await withDeadline(srv.call('code_execute', { code: '1' }), 60000, `the cell before stubborn cell ${i}`);
            const r = await whilePaused(srv.pid, 2500, 6500, () => withDeadline(
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
        // /tmp holds at most the limit less a reserve, and the sandbox's processes go before its
        // init, so the init should live; if the OOM killer takes it all the same, the sandbox ends
        // with it (its kernel freed just the same), and the loop is tried again in a new sandbox.
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
                    const events = logs.filter((e) => /^kernel/.test(e.source));
                    const last = events[events.length - 1]?.text ?? '';
                    // Dead at its limit; or ready again, when the OOM killer freed enough at once.
                    return /^dead/.test(last) || (/^ready/.test(last) && events.some((e) => /^restarting/.test(e.text)));
                }, 120000, 'the kernel dead after its restart limit (or ready again)', 250);
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
