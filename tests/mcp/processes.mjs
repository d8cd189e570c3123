// processes.mjs: processes that outlive a call (issue 16): background commands started, listed,
// their output read later and killed; a `nohup ... &` daemon left by a foreground command lives
// on (and the command still returns at once); a `&` daemon that keeps writing to its command's
// pipes after the return is not killed by EPIPE/SIGPIPE and its late output is read under the
// command's id (a shell loop, a flood, python's http.server logging each request); process_kill
// refuses pids outside the sandbox and its init; a flooding background command keeps bounded
// output; sandbox_delete ends them all (checked from the host).
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import {
    alive, brief, check, processTable, processesGone, run, safeJson, sandboxProcesses, sc, section, startServer, textOf, waitUntil,
    withDeadline,
} from './lib.mjs';

const listed = async (srv, id) => sc(await srv.callOk('process_list', { sandbox_id: id })).processes ?? [];

await run(async () => {
    const srv = await startServer({ label: 'processes server' });
    const sb = sc(await srv.callOk('sandbox_create', {})).sandbox_id;
    let r;

    await section('a background server: started, listed, read, killed', async () => {
        r = await srv.callOk('command_execute', {
            sandbox_id: sb, background: true,
            command: 'echo serving; echo to-err >&2; while read -r line; do echo "got $line"; done < <(while :; do echo tick; sleep 0.2; done)',
        });
        const id = sc(r).command_id;
        const pid = sc(r).inside_pid;
        check(sc(r).status === 'running' && typeof id === 'string' && Number.isInteger(pid) && pid > 1,
            'command_execute background: returns at once with status running, its command_id and its pid inside', brief(r));
        let out;
        await waitUntil(async () => {
            out = sc(await srv.callOk('process_output', { command_id: id }));
            return /got tick\ngot tick/.test(out.stdout ?? '');
        }, 15000, 'background output');
        check(out.running === true && /^serving\n/.test(out.stdout) && out.stderr === 'to-err\n' && out.stdout_offset === 0,
            'process_output: what it printed so far, stderr apart, still running', brief({ structuredContent: out }));
        const next = out.stdout_next;
        const more = sc(await srv.callOk('process_output', { command_id: id, stdout_offset: next, stderr_offset: out.stderr_next }));
        check(more.stdout_offset === next && !/serving/.test(more.stdout) && more.stderr === '',
            'process_output from stdout_next gives only what is new', brief({ structuredContent: more }));
        const procs = await listed(srv, sb);
        const me = procs.find((p) => p.pid === pid);
        check(me && me.command_id === id && /bash/.test(me.command) && me.ppid === 1 && typeof me.started_at === 'string',
            'process_list shows the command (pid, ppid 1, its command_id, started_at)', safeJson(me ?? procs));
        check(procs.some((p) => p.pid === 1) && procs.some((p) => p.name === 'sleep' || /sleep/.test(p.command)),
            'process_list shows the init (pid 1) and the command\'s children', safeJson(procs.map((p) => [p.pid, p.ppid, p.command])));
        r = await srv.callOk('process_kill', { command_id: id });
        check(sc(r).sent === true && sc(r).signal === 'SIGKILL', 'process_kill by command_id: SIGKILL sent', brief(r));
        await waitUntil(async () => sc(await srv.callOk('process_output', { command_id: id })).running === false, 10000, 'killed');
        out = sc(await srv.callOk('process_output', { command_id: id }));
        check(out.running === false && out.status === 'killed', 'after process_kill it is no longer running (status killed)', brief({ structuredContent: out }));
        await waitUntil(async () => !(await listed(srv, sb)).some((p) => /sleep 0.2|tick/.test(p.command) || p.name === 'sleep'), 10000, 'its group gone');
        check(true, 'its whole group (the ticking loop) is gone from process_list');
    });

    await section('a nohup daemon outlives its foreground command', async () => {
        const t0 = Date.now();
        r = await withDeadline(srv.callOk('command_execute', { sandbox_id: sb, command: 'nohup sleep 1000 >/dev/null 2>&1 & echo started $!' }), 15000, 'nohup command');
        const daemon = Number((sc(r).stdout ?? '').match(/started (\d+)/)?.[1]);
        check(sc(r).status === 'exited' && sc(r).exit_code === 0 && daemon > 1, 'the foreground command returns (exit 0) with the daemon\'s pid', brief(r));
        note(`returned in ${Date.now() - t0} ms`);
        r = await withDeadline(srv.callOk('command_execute', { sandbox_id: sb, command: 'sleep 1000 & echo $!' }), 15000, 'plain & with the pipes held');
        const held = Number((sc(r).stdout ?? '').trim());
        check(sc(r).status === 'exited' && held > 1, 'a `sleep 1000 &` holding stdout does not keep the command from returning', brief(r));
        const procs = await listed(srv, sb);
        check(procs.some((p) => p.pid === daemon && /sleep 1000/.test(p.command)) && procs.some((p) => p.pid === held),
            'both daemons are alive and listed after their commands returned', safeJson(procs.map((p) => [p.pid, p.command])));
        r = await srv.callOk('process_kill', { sandbox_id: sb, pid: daemon, signal: 'SIGTERM' });
        check(sc(r).sent === true && sc(r).signal === 'SIGTERM', 'process_kill by pid with SIGTERM', brief(r));
        await waitUntil(async () => !(await listed(srv, sb)).some((p) => p.pid === daemon), 10000, 'daemon gone');
        check(true, 'the daemon killed by pid is gone');
    });

    await section('process_kill by the id of an ended command reaches its background jobs', async () => {
        r = await srv.callOk('command_execute', { sandbox_id: sb, background: true, command: 'sleep 1000 & echo $!' });
        const id = sc(r).command_id;
        let out;
        await waitUntil(async () => (out = sc(await srv.callOk('process_output', { command_id: id }))).running === false, 10000, 'ended');
        const job = Number(out.stdout.trim());
        check(out.status === 'exited' && (await listed(srv, sb)).some((p) => p.pid === job), 'the command ended; its job lives on', safeJson(out));
        r = await srv.callOk('process_kill', { command_id: id, signal: 'TERM' });
        await waitUntil(async () => !(await listed(srv, sb)).some((p) => p.pid === job), 10000, 'job gone');
        check(true, 'process_kill by command_id after its end kills the job left in its group');
        r = await srv.call('process_kill', { command_id: id });
        check(r.isError === true && /no process/.test(textOf(r)), 'again: nothing is left to signal, refused', brief(r));
    });

    await section('process_kill never reaches outside the sandbox', async () => {
        r = await srv.call('process_kill', { sandbox_id: sb, pid: 1 });
        check(r.isError === true && /init/.test(textOf(r)), 'pid 1 (the init) is refused', brief(r));
        const serverPid = srv.pid;
        r = await srv.call('process_kill', { sandbox_id: sb, pid: serverPid, signal: 'SIGTERM' });
        check(r.isError === true, 'the server\'s own host pid is refused (not a process of the sandbox)', brief(r));
        check(alive(serverPid, processTable().get(serverPid)?.start), 'and the server is still alive');
        r = await srv.call('process_kill', { sandbox_id: sb, pid: 4000000 });
        check(r.isError === true, 'a pid nobody has is refused', brief(r));
        r = await srv.call('process_kill', { sandbox_id: sb, pid: 5, signal: 'SIGBOGUS' });
        check(r.isError === true && /unknown signal/.test(textOf(r)), 'an unknown signal name is refused', brief(r));
        r = await srv.call('process_kill', { sandbox_id: sb });
        check(r.isError === true, 'neither command_id nor pid: refused', brief(r));
    });

    await section('a flooding background command keeps bounded output', async () => {
        r = await srv.callOk('command_execute', { sandbox_id: sb, background: true, command: 'head -c 20000000 /dev/zero | tr "\\0" x; echo; echo end' });
        const id = sc(r).command_id;
        let out;
        await waitUntil(async () => {
            out = sc(await srv.callOk('process_output', { command_id: id, max_bytes: 16 }));
            return out.running === false;
        }, 60000, 'flood done');
        check(out.stdout_next === 16 + out.stdout_offset && out.stdout_offset > 19000000 && out.stdout_skipped > 19000000,
            'reading from 0 after 20 MB starts at the oldest byte kept (skipped > 19 MB)', brief({ structuredContent: out }));
        const tail = sc(await srv.callOk('process_output', { command_id: id, stdout_offset: 19999990, max_bytes: 100 }));
        check(tail.stdout === 'xxxxxxxxxx\nend\n' && tail.stdout_next === 20000005, 'the latest output is kept (ends with end)', brief({ structuredContent: tail }));
        const rss = Number(readFileSync(`/proc/${srv.pid}/status`, 'utf8').match(/VmHWM:\s+(\d+)/)?.[1]);
        check(rss > 0 && rss < 200 * 1024, `the server's peak memory stays small (${rss} kB < 200 MB)`);
    });

    // The gateway's pipe fds (the server is the gateway): a daemon's held pipes are read until
    // its end, then closed.
    const serverPipes = () => {
        let n = 0;
        for (const fd of readdirSync(`/proc/${srv.pid}/fd`)) {
            try {
                if (readlinkSync(`/proc/${srv.pid}/fd/${fd}`).startsWith('pipe:')) n++;
            } catch { /* closed meanwhile */ }
        }
        return n;
    };

    await section('a `&` daemon that keeps writing to its command\'s pipes lives on', async () => {
        const pipesBefore = serverPipes();
        // No redirection: the subshell holds the command's stdout and stderr, and bash's echo
        // dies of SIGPIPE (or fails with EPIPE) if the gateway closed their read ends.
        r = await withDeadline(srv.callOk('command_execute', {
            sandbox_id: sb,
            command: 'rm -f /tmp/survived; (for i in $(seq 1 40); do echo tick $i; echo err $i >&2; sleep 0.05; done; echo done > /tmp/survived) & echo started',
        }), 15000, 'daemon command');
        const id = sc(r).command_id;
        check(sc(r).status === 'exited' && sc(r).exit_code === 0 && /^started\n/m.test(sc(r).stdout ?? ''),
            'the foreground command returns at its main process\'s exit', brief(r));
        await waitUntil(async () => sc(await srv.callOk('command_execute', { sandbox_id: sb, command: 'cat /tmp/survived 2>/dev/null; true' })).stdout === 'done\n',
            20000, 'the daemon\'s file');
        check(true, 'the daemon wrote all its lines after its command returned and created its file');
        const out = sc(await srv.callOk('process_output', { command_id: id }));
        const ticks = (out.stdout ?? '').match(/^tick \d+$/mg) ?? [];
        const errs = (out.stderr ?? '').match(/^err \d+$/mg) ?? [];
        check(out.running === false && out.status === 'exited' && ticks.length === 40 && ticks[39] === 'tick 40' &&
            ticks.every((t, i) => t === `tick ${i + 1}`) && errs.length === 40 && errs[39] === 'err 40',
            'process_output under the command\'s id has every late line, in order, stdout and stderr apart', brief({ structuredContent: out }));
        check(/started\n/.test(out.stdout), 'and the command\'s own output before them');
        await waitUntil(() => serverPipes() <= pipesBefore, 10000, 'the gateway closes the pipes at their end of file');
        check(true, `once the daemon is gone the gateway holds no more pipes than before (${serverPipes()} <= ${pipesBefore})`);
        const again = sc(await srv.callOk('process_output', { command_id: id, stdout_offset: out.stdout_next }));
        check(again.stdout === '' && again.stdout_offset === out.stdout_next, 'read from stdout_next after its end: nothing new', brief({ structuredContent: again }));
    });

    await section('a daemon flooding its command\'s pipes after the return keeps bounded output', async () => {
        r = await withDeadline(srv.callOk('command_execute', {
            sandbox_id: sb,
            command: 'rm -f /tmp/go /tmp/flooded; (while [ ! -e /tmp/go ]; do sleep 0.05; done; head -c 6000000 /dev/zero | tr "\\0" y; echo; echo flood-end; echo flooded > /tmp/flooded) & echo waiting',
        }), 15000, 'flood command');
        const id = sc(r).command_id;
        check(sc(r).status === 'exited' && sc(r).stdout === 'waiting\n', 'the command returns before its daemon writes', brief(r));
        await srv.callOk('command_execute', { sandbox_id: sb, command: 'touch /tmp/go' });
        await waitUntil(async () => sc(await srv.callOk('command_execute', { sandbox_id: sb, command: 'cat /tmp/flooded 2>/dev/null; true' })).stdout === 'flooded\n',
            60000, 'the flood ends');
        check(true, 'the daemon wrote 6 MB to its held stdout after its command returned, then went on');
        const out = sc(await srv.callOk('process_output', { command_id: id, max_bytes: 16 }));
        check(out.stdout_offset > 5000000 && out.stdout_skipped > 5000000 && /^y+$/.test(out.stdout),
            'only the latest output is kept (reading from 0 skips > 5 MB)', brief({ structuredContent: out }));
        const tail = sc(await srv.callOk('process_output', { command_id: id, stdout_offset: 6000000 + 'waiting\n'.length - 4, max_bytes: 100 }));
        check(tail.stdout === 'yyyy\nflood-end\n', 'and its last bytes are there', brief({ structuredContent: tail }));
        const rss = Number(readFileSync(`/proc/${srv.pid}/status`, 'utf8').match(/VmHWM:\s+(\d+)/)?.[1]);
        check(rss > 0 && rss < 200 * 1024, `the server's peak memory stays small (${rss} kB < 200 MB)`);
    });

    await section('python3 -m http.server started with & answers request after request', async () => {
        r = await withDeadline(srv.callOk('command_execute', { sandbox_id: sb, command: 'cd /tmp && python3 -m http.server 8000 --bind 127.0.0.1 &' }), 15000, 'http.server command');
        const id = sc(r).command_id;
        check(sc(r).status === 'exited' && sc(r).exit_code === 0, 'the command that started it returns', brief(r));
        const get = 'python3 -c "import urllib.request as u; print(u.urlopen(\'http://127.0.0.1:8000/\', timeout=10).status)"';
        await waitUntil(async () => sc(await srv.callOk('command_execute', { sandbox_id: sb, command: `${get} 2>/dev/null; true` })).stdout === '200\n',
            20000, 'the server listens');
        for (let i = 1; i <= 3; i++) {
            r = await withDeadline(srv.callOk('command_execute', { sandbox_id: sb, command: get }), 20000, `request ${i}`);
            check(sc(r).exit_code === 0 && sc(r).stdout === '200\n', `request ${i} from a later command: 200`, brief(r));
        }
        let out;
        await waitUntil(async () => {
            out = sc(await srv.callOk('process_output', { command_id: id }));
            return ((out.stderr ?? '').match(/"GET \/ HTTP\/1\.1" 200/g) ?? []).length >= 4;
        }, 10000, 'the request log');
        check(true, 'its request log (stderr, written after its command returned) is read under the command\'s id');
        check((await listed(srv, sb)).some((p) => /http\.server/.test(p.command)), 'and the server is still alive');
    });

    await section('ended commands whose jobs hold their pipes are bounded per sandbox', async () => {
        const before = serverPipes();
        for (let i = 0; i < 70; i++)
            await srv.callOk('command_execute', { sandbox_id: sb, command: 'sleep 1000 & echo $!' });
        const held = serverPipes() - before;
        check(held > 100 && held <= 2 * 64, `the gateway keeps at most 64 such commands' pipes (2 each): ${held} more pipe fds after 70`);
    });

    await section('sandbox_delete ends every process', async () => {
        await srv.callOk('command_execute', { sandbox_id: sb, command: 'setsid sleep 1000 & nohup sleep 1001 & sleep 1002 &' });
        await srv.callOk('command_execute', { sandbox_id: sb, background: true, command: 'sleep 1003' });
        const procs = await sandboxProcesses(srv, sb);
        check(procs.size >= 5, 'the host sees the sandbox\'s processes', safeJson([...procs.keys()]));
        await srv.callOk('sandbox_delete', { sandbox_id: sb });
        const left = await processesGone(procs, 10000);
        check(left.length === 0, 'after sandbox_delete none of its host processes is left', safeJson(left));
    });
    check(srv.clientErrors.length === 0, 'the SDK client saw no protocol error', safeJson(srv.clientErrors));
    await srv.close();
});

function note(t) {
    console.log(`# ${t}`);
}
