// sandbox_use.mjs: state is not lost while it is in use, and memory-backed files are named.
//
// 1. With a lifetime of a few seconds (CELLBLOCK_SANDBOX_TIMEOUT), the default sandbox is used
//    past its first expires_at and lives on with its variables: each use moves expires_at, a cell
//    that runs longer than the lifetime does not end it; once nothing uses it, it ends, and the
//    next call says so. sandbox_create without lifetime_s behaves the same; with lifetime_s, and
//    after sandbox_set_timeout, the deadline is fixed and use does not move it.
// 2. Files in /tmp count against the memory limit: sandbox_metrics shows /tmp's use, and the
//    note of an OOM kill while /tmp holds most of the memory names /tmp.
//
// Waiting out a lifetime is the thing under test here, always with deadlines; everything else
// waits on results.
import {
    brief, check, mainResult, run, safeJson, sandboxLogs, sc, section, startServer, textOf, timePasses, waitGone,
    withDeadline,
} from './lib.mjs';

const LIFETIME_S = 4;
const MiB = 1024 * 1024;
const at = (r) => Date.parse(sc(r).expires_at ?? '');

await run(async () => {
    const srv = await startServer({
        label: 'sandbox use', env: { CELLBLOCK_SANDBOX_TIMEOUT: String(LIFETIME_S), CELLBLOCK_POOL: 'python=0' },
    });

    await section('the default sandbox lives on while it is used', async () => {
        let r = await srv.callOk('code_execute', { code: 'n = 0' });
        const id = sc(r).sandbox_id;
        check(Number.isFinite(at(r)), 'code_execute\'s result has expires_at', brief(r));
        const first = Number.isFinite(at(r)) ? at(r) : Date.now() + LIFETIME_S * 1000;
        // Use it, one short cell after another, until well past the first deadline.
        let uses = 0, last = first, moved = true, same = true;
        while (Date.now() < first + 2000 * LIFETIME_S / 2) {
            r = await srv.call('code_execute', { code: 'import time; time.sleep(0.5); n += 1; n' });
            uses++;
            same &&= !r.isError && sc(r).sandbox_id === id && mainResult(r) === String(uses);
            moved &&= at(r) >= last;
            if (r.isError) break;
            last = at(r);
        }
        check(same, `used for ${uses} cells past its first expires_at, the same sandbox keeps its variables`, brief(r));
        check(moved && last > first + 1000, 'each use moves expires_at later', `${new Date(first).toISOString()} -> ${sc(r).expires_at}`);
        const f = await srv.callOk('file_upload', { path: 'kept.txt', content: 'kept' });
        check(Date.parse(sc(f).expires_at ?? '') >= last, 'a file call\'s result names the sandbox\'s expires_at too, and moves it', brief(f));
        const c = await srv.callOk('command_execute', { command: 'echo hi' });
        check(Number.isFinite(at(c)), 'command_execute\'s result has expires_at', brief(c));
        // A cell longer than the lifetime: it runs to its end in the same sandbox.
        const long = await srv.call('code_execute', { code: `import time; time.sleep(${LIFETIME_S + 2}); n` });
        check(!long.isError && sc(long).sandbox_id === id && mainResult(long) === String(uses),
            `a cell of ${LIFETIME_S + 2} s (longer than the lifetime) runs to its end in the same sandbox`, brief(long));
        // Then nothing uses it (a thread in it printing for ever is not use): it ends after its
        // lifetime, and the next call says so.
        await srv.callOk('code_execute', {
            code: "import threading, time\ndef chatter():\n    while True:\n        print('.', end='', flush=True)\n        time.sleep(0.1)\nthreading.Thread(target=chatter, daemon=True).start()",
        });
        const t0 = Date.now();
        const gone = await waitGone(srv, id, (LIFETIME_S + 30) * 1000);
        check(/nothing used it/.test(textOf(gone.result)), 'unused (a thread in it printing all along), it ends; tools naming it hear "it expired: nothing used it for ..."', brief(gone.result));
        check(gone.at - t0 >= (LIFETIME_S - 1) * 1000, `it ended no sooner than its lifetime after its last use (${gone.at - t0} ms)`);
        r = await srv.call('code_execute', { code: "'n' in globals()" });
        check(!r.isError && mainResult(r) === 'False' && (sc(r).notes ?? []).some((n) => /previous default sandbox/.test(n) && n.includes(id)),
            'the next code_execute makes a new default sandbox and its note names the old one', brief(r));
    });

    await section('explicit sandboxes: no lifetime_s slides, lifetime_s and sandbox_set_timeout are fixed', async () => {
        // The fixed one first: the other's lifetime (a few seconds) runs from its creation.
        const fixed = await srv.callOk('sandbox_create', { lifetime_s: 60 });
        const fixedId = sc(fixed).sandbox_id;
        const slides = sc(await srv.callOk('sandbox_create', {})).sandbox_id;
        const a0 = at(await srv.callOk('sandbox_info', { sandbox_id: slides }));
        let r = await srv.callOk('code_execute', { sandbox_id: slides, code: 'import time; time.sleep(1.2)' });
        check(at(r) > a0, 'sandbox_create without lifetime_s: use moves expires_at', `${a0} -> ${at(r)}`);
        const f0 = at(fixed);
        r = await srv.callOk('code_execute', { sandbox_id: fixedId, code: 'import time; time.sleep(1.2)' });
        check(Math.abs(at(r) - f0) < 1500, 'sandbox_create {lifetime_s: 60}: use does not move expires_at', `${sc(fixed).expires_at} -> ${sc(r).expires_at}`);
        const set = await srv.callOk('sandbox_set_timeout', { sandbox_id: slides, lifetime_s: 60 });
        r = await srv.callOk('code_execute', { sandbox_id: slides, code: 'import time; time.sleep(1.2)' });
        check(Math.abs(at(r) - at(set)) < 1500, 'after sandbox_set_timeout, use does not move expires_at', `${sc(set).expires_at} -> ${sc(r).expires_at}`);
        await srv.callOk('sandbox_delete', { sandbox_id: slides });
        await srv.callOk('sandbox_delete', { sandbox_id: fixedId });
    });

    await section('files in /tmp count against the memory limit, and an OOM kill says so', async () => {
        const id = sc(await srv.callOk('sandbox_create', { memory_mb: 256, lifetime_s: 600 })).sandbox_id;
        const fill = await srv.call('command_execute', { sandbox_id: id, command: 'head -c 180M /dev/zero > /tmp/fill && echo filled' });
        check(!fill.isError && /filled/.test(sc(fill).stdout ?? ''), 'a command writes 180 MiB to /tmp', brief(fill));
        const m = sc(await srv.callOk('sandbox_metrics', { sandbox_id: id }));
        check(m.tmp_used_bytes >= 170 * MiB && m.tmp_limit_bytes > 0 && Number.isInteger(m.shm_used_bytes),
            'sandbox_metrics shows /tmp\'s use (tmp_used_bytes), /dev/shm\'s and their size', safeJson(m));
        check(m.memory_bytes >= 170 * MiB, 'and the sandbox\'s memory use includes it (memory_bytes)', safeJson(m));
        const r = await withDeadline(srv.call('code_execute', { sandbox_id: id, code: 'b = bytearray(b"\\x01") * (512 * 1024 * 1024)' }), 90000, 'the 512 MiB cell');
        check(r.isError === true && sc(r).status === 'kernel_died', 'allocating 512 MiB beside it ends kernel_died', brief(r));
        const named = (sc(r).notes ?? []).concat(textOf(r)).some((n) => /\/tmp holds \d+ MiB, which counts against its 256 MiB memory limit/.test(n));
        check(named, 'the note names /tmp: "the sandbox\'s /tmp holds N MiB, which counts against its 256 MiB memory limit"', brief(r));
        const logs = await sandboxLogs(srv, id);
        check(logs.some((e) => /^OOM/.test(e.text) && /\/tmp holds/.test(e.text)), 'sandbox_logs\' OOM entry names /tmp', safeJson(logs.filter((e) => /OOM/.test(e.text))));
        const after = await srv.call('code_execute', { sandbox_id: id, code: '1 + 1' });
        check(!after.isError && mainResult(after) === '2', 'the restarted kernel runs code', brief(after));
        check((sc(after).notes ?? []).some((n) => /\/tmp holds/.test(n)), 'and its state-lost note names /tmp too', brief(after));
        await srv.callOk('sandbox_delete', { sandbox_id: id });
    });
    await srv.close();
});
