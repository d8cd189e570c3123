// commands.mjs: command_execute through the SDK client: exit codes, stdout/stderr, cwd, env,
// stdin, timeouts, background commands followed with execution_status, and their cancel.
import { brief, check, run, safeJson, section, sc, startServer, textOf, waitUntil, withDeadline } from './lib.mjs';

await run(async () => {
    const srv = await startServer({ label: 'commands server' });
    let r;

    await section('basics', async () => {
        r = await srv.call('command_execute', { command: 'echo hello' });
        check(!r.isError && sc(r).status === 'exited' && sc(r).exit_code === 0, 'echo hello: status exited, exit_code 0, not isError', brief(r));
        check(sc(r).stdout === 'hello\n' && textOf(r).includes('hello'), 'echo hello: stdout "hello\\n", also as text', brief(r));
        check(typeof sc(r).command_id === 'string' && typeof sc(r).sandbox_id === 'string', 'the result names the command and the (default) sandbox', brief(r));

        const pids = [];
        for (let i = 0; i < 10; i++) pids.push(sc(await srv.call('command_execute', { command: 'true' })).pid);
        // kg.h: pid is the host pid, or null when the command ended before the gateway learned it.
        check(pids.every((p) => p === null || (Number.isInteger(p) && p > 0)),
              'a finished command reports its pid, or null when it ended first (10 quick `true` runs)', JSON.stringify(pids));
        // On a busy host every `true` may end first; a command that lasts must have its pid.
        r = await srv.call('command_execute', { command: 'sleep 0.5' });
        check(Number.isInteger(sc(r).pid) && sc(r).pid > 0, 'a command still running when it is started (sleep 0.5) reports its host pid', brief(r));
        r = await srv.call('command_execute', { command: 'echo before; exit 3' });
        check(r.isError === true && sc(r).exit_code === 3 && sc(r).status === 'exited', 'exit 3: isError, exit_code 3, status exited', brief(r));
        check(sc(r).stdout === 'before\n', 'the output of a failing command is kept', brief(r));

        r = await srv.call('command_execute', { command: 'echo out; echo err >&2' });
        check(sc(r).stdout === 'out\n' && sc(r).stderr === 'err\n', 'stdout and stderr come apart', brief(r));

        r = await srv.call('command_execute', { command: 'pwd' });
        check(sc(r).stdout === '/home/user\n', 'the default cwd is /home/user', brief(r));
        await srv.callOk('command_execute', { command: 'mkdir -p sub/dir' });
        r = await srv.call('command_execute', { command: 'pwd', cwd: '/home/user/sub/dir' });
        check(sc(r).stdout === '/home/user/sub/dir\n', 'cwd /home/user/sub/dir is used', brief(r));
        r = await srv.call('command_execute', { command: 'pwd', cwd: 'sub' });
        check(sc(r).stdout === '/home/user/sub\n', 'a relative cwd is relative to /home/user', brief(r));
        r = await srv.call('command_execute', { command: 'pwd', cwd: '/tmp' });
        check(!r.isError && sc(r).stdout === '/tmp\n', 'cwd /tmp (inside the sandbox) is used', brief(r));
        r = await srv.call('command_execute', { command: 'pwd', cwd: '/home/user/no/such/dir' });
        check(r.isError === true, 'a missing cwd is isError', brief(r));

        r = await srv.call('command_execute', { command: 'echo "$FOO-$BAR"', env: { FOO: 'foo value', BAR: 'b=2' } });
        check(sc(r).stdout === 'foo value-b=2\n', 'env is added to the environment', brief(r));
        r = await srv.call('command_execute', { command: 'echo "[$FOO]"' });
        check(sc(r).stdout === '[]\n', 'env of one command does not leak into the next', brief(r));

        r = await srv.call('command_execute', { command: "tr a-z A-Z; echo ' done'", stdin: 'hello stdin' });
        check(sc(r).stdout === 'HELLO STDIN done\n', 'stdin is written to the command, then closed', brief(r));
        r = await withDeadline(srv.call('command_execute', { command: 'cat' }), 20000, 'cat without stdin');
        check(!r.isError && sc(r).stdout === '', 'without stdin the command reads end of file at once', brief(r));
    });

    await section('timeout', async () => {
        // A timeout kills the process group promptly.
        const t0 = Date.now();
        r = await withDeadline(srv.call('command_execute', { command: 'sleep 30 & sleep 30; echo never', timeout_s: 1 }), 60000, 'sleep 30 with timeout_s 1');
        check(sc(r).status === 'timeout' && r.isError === true, 'timeout_s 1 on sleep 30: status timeout, isError', brief(r));
        // "never" is printed only if the 30 s sleep ran out: its absence is the proof, not a timing.
        check(!/never/.test(sc(r).stdout ?? ''), 'the timeout ends the command before its 30 s sleep', `${Date.now() - t0} ms`);
        // (a killed process may take a moment to be reaped by the sandbox's init)
        r = await waitUntil(async () => {
            const x = await srv.call('command_execute', { command: 'ps -eo stat=,comm= | grep -v "^Z" | grep -c " sleep$" || true' });
            return (sc(x).stdout ?? '').trim() === '0' ? x : null;
        }, 5000, 'no sleep left').catch(() => null);
        check(r !== null, 'no sleep of the timed-out process group is left in the sandbox', brief(r));
    });

    await section('background', async () => {
        // A background command, followed with execution_status.
        r = await srv.callOk('command_execute', { command: 'read line; sleep 1; echo "bg-done $line"; echo bg-err >&2; exit 4', background: true, stdin: 'xyz\n' });
        const bgId = sc(r).execution_id ?? sc(r).command_id;
        check(sc(r).status === 'running' && typeof bgId === 'string', 'background: returns at once with status running and an id', brief(r));
        r = await srv.callOk('execution_status', { execution_id: bgId });
        check(sc(r).kind === 'command' && ['queued', 'running'].includes(sc(r).state), 'execution_status of the background command: kind command, running', brief(r));
        r = await withDeadline(srv.callOk('execution_status', { execution_id: bgId, wait_s: 20 }), 30000, 'execution_status wait_s 20');
        const fin = sc(r).result ?? {};
        check(sc(r).state === 'done' && fin.stdout === 'bg-done xyz\n' && fin.stderr === 'bg-err\n' && fin.exit_code === 4,
            'the background command ends done with its output and exit code', brief(r));
    });

    await section('cancel a background command', async () => {
        // Cancelling a background command kills its process group.
        r = await srv.callOk('command_execute', { command: 'sleep 30; echo never', background: true });
        const killId = sc(r).execution_id ?? sc(r).command_id;
        r = await srv.callOk('execution_cancel', { execution_id: killId });
        r = await withDeadline(srv.callOk('execution_status', { execution_id: killId, wait_s: 10 }), 20000, 'execution_status after cancel');
        check(sc(r).state === 'done' && ['killed', 'cancelled'].includes(sc(r).result?.status) && !/never/.test(sc(r).result?.stdout ?? ''),
            'execution_cancel of a background command: done, killed', brief(r));
    });

    await section('bytes that are not UTF-8', async () => {
        r = await srv.call('command_execute', { command: "printf 'a\\377\\376b\\n'; printf 'c\\0d' >&2" });
        check(!r.isError && /^a[\s\S]*b\n$/.test(sc(r).stdout ?? ''), 'stdout with invalid UTF-8 bytes comes back (a...b)', brief(r));
        check(/^c[\s\S]*d$/.test(sc(r).stderr ?? ''), 'stderr with a NUL byte comes back whole (c...d: nothing after the NUL is dropped)', brief(r));
        r = await srv.callOk('command_execute', { command: 'echo after' });
        check(sc(r).stdout === 'after\n', 'the server goes on after non-UTF-8 output', brief(r));
    });

    await section('output limit and unknown sandbox', async () => {
        // Output limit on commands too.
        r = await srv.callOk('command_execute', { command: 'head -c 100000 /dev/zero | tr "\\0" y' });
        check(sc(r).truncated === true && (sc(r).stdout ?? '').length < 60000, 'a 100000-byte stdout is cut and marked truncated', `${(sc(r).stdout ?? '').length} chars; ${safeJson(sc(r).notes)}`);

        r = await srv.call('command_execute', { command: 'exit 0', sandbox_id: 'no-such-sandbox' });
        check(r.isError === true && /no-such-sandbox|sandbox/i.test(textOf(r)), 'command_execute in an unknown sandbox is isError', brief(r));
        check(srv.clientErrors.length === 0, 'the SDK client saw no protocol error from the server', safeJson(srv.clientErrors));
    });
});
