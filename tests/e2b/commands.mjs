// commands.mjs: envd's process.Process (e2b/process.c) through E2B's own SDK (npm e2b): run with
// exit 0 and non-zero, envs and cwd, output callbacks while a command runs, stdin, a background
// command killed, a command followed from a second client (connect), a pty, a timeout,
// many at once, a flood nobody reads, the sandbox killed under open streams, and malformed
// calls answered with Connect errors while the server keeps serving. One server, one
// "base" sandbox.
import { Sandbox, check, deferred, e2b, run, safeJson, section, startE2B, waitUntil, withDeadline } from './lib.mjs';

// Start events and single answers come at once; these bound a hang, they time nothing.
const MS = 30000;

await run(async () => {
    const srv = await startE2B({ label: 'e2b commands server' });

    const sbx = await withDeadline(Sandbox.create(), MS, 'Sandbox.create'); // the "base" template
    check(typeof sbx.sandboxId === 'string' && sbx.sandboxId.length > 0, 'Sandbox.create() makes a base sandbox', sbx.sandboxId);
    const info = { sandboxID: sbx.sandboxId };
    // A second client of the same sandbox, as another program would get it.
    const open = () => withDeadline(Sandbox.connect(sbx.sandboxId), MS, 'Sandbox.connect');
    const running = async () => (await withDeadline(sbx.commands.list(), MS, 'commands.list')).map((p) => p.pid);

    await section('run', async () => {
        const r = await withDeadline(sbx.commands.run('echo hello; echo oops >&2'), MS, 'run echo');
        check(r.exitCode === 0 && r.stdout === 'hello\n' && r.stderr === 'oops\n' && !r.error,
              'run: exitCode 0, stdout and stderr apart', safeJson(r));

        let err;
        try {
            await withDeadline(sbx.commands.run('echo out; echo err >&2; exit 3'), MS, 'run exit 3');
        } catch (e) {
            err = e;
        }
        check(err instanceof e2b.CommandExitError && err.exitCode === 3 && err.stdout === 'out\n' &&
              err.stderr === 'err\n' && /exit status 3/.test(err.error),
              'a non-zero exit throws CommandExitError with exitCode 3, stdout, stderr', safeJson({ name: err?.name, exitCode: err?.exitCode, stdout: err?.stdout, stderr: err?.stderr, error: err?.error }));

        const e = await withDeadline(sbx.commands.run('echo "[$GREETING]"; pwd', { envs: { GREETING: "it's a b=c" }, cwd: '/tmp' }), MS, 'run envs cwd');
        check(e.stdout === "[it's a b=c]\n/tmp\n", 'envs and cwd are used (quotes and = kept)', safeJson(e));
        const d = await withDeadline(sbx.commands.run('pwd', { user: 'root' }), MS, 'run pwd as root');
        check(d.stdout === '/home/user\n', 'the default cwd is /home/user (user "root" is accepted)', safeJson(d));
    });

    await section('output callbacks and stdin', async () => {
        // The command prints, then waits for a line on stdin: the callbacks must fire while it
        // still runs, since it cannot end before we answer.
        const sawOut = deferred();
        const sawErr = deferred();
        const h = await withDeadline(sbx.commands.start('echo first; echo warn >&2; read line; echo "got $line"', {
            stdin: true,
            onStdout: (s) => s.includes('first') && sawOut.resolve(),
            onStderr: (s) => s.includes('warn') && sawErr.resolve(),
        }), MS, 'start read');
        await withDeadline(Promise.all([sawOut.promise, sawErr.promise]), MS, 'onStdout and onStderr');
        check(h.exitCode === undefined, 'onStdout and onStderr fire while the command still runs');
        await withDeadline(h.sendStdin('go\n'), MS, 'sendStdin');
        const r = await withDeadline(h.wait(), MS, 'wait read');
        check(r.stdout === 'first\ngot go\n' && r.stderr === 'warn\n', 'sendStdin reaches the command', safeJson(r));

        const cat = await withDeadline(sbx.commands.start('cat; echo end', { stdin: true }), MS, 'start cat');
        await withDeadline(sbx.commands.sendStdin(cat.pid, 'abc'), MS, 'sendStdin cat');
        await withDeadline(cat.closeStdin(), MS, 'closeStdin');
        const c = await withDeadline(cat.wait(), MS, 'cat ends after closeStdin');
        check(c.stdout === 'abcend\n', 'closeStdin ends cat (EOF)', safeJson(c));

        let noStdin;
        const plain = await withDeadline(sbx.commands.start('sleep 300', { background: true }), MS, 'start sleep');
        try {
            await sbx.commands.sendStdin(plain.pid, 'x');
        } catch (e) {
            noStdin = e;
        }
        check(noStdin instanceof e2b.SandboxError, 'sendStdin to a command started without stdin is refused', String(noStdin));
        await sbx.commands.kill(plain.pid);
    });

    await section('background, list, kill', async () => {
        const h = await withDeadline(sbx.commands.run('sleep 300', { background: true }), MS, 'background sleep');
        check(Number.isInteger(h.pid) && h.pid > 1, 'a background command has a pid', String(h.pid));
        const list = await withDeadline(sbx.commands.list(), MS, 'list');
        const mine = list.find((p) => p.pid === h.pid);
        check(mine && mine.cmd === '/bin/bash' && safeJson(mine.args) === safeJson(['-l', '-c', 'sleep 300']),
              'commands.list shows it, with cmd and args as sent', safeJson(list));
        check(await withDeadline(h.kill(), MS, 'kill') === true, 'kill() answers true');
        let err;
        try {
            await withDeadline(h.wait(), MS, 'wait killed');
        } catch (e) {
            err = e;
        }
        check(err instanceof e2b.CommandExitError && err.exitCode === -1 && /killed/.test(err.error),
              'the killed command ends (CommandExitError, exitCode -1, "signal: killed")', safeJson({ name: err?.name, exitCode: err?.exitCode, error: err?.error }));
        check(!(await running()).includes(h.pid), 'it is gone from commands.list');
        check(await withDeadline(sbx.commands.kill(h.pid), MS, 'kill again') === false, 'killing it again answers false (not found)');
    });

    await section('connect from a second client', async () => {
        const early = deferred();
        const h = await withDeadline(sbx.commands.start('echo early; read x; echo "after $x"; exit 4', {
            stdin: true,
            onStdout: (s) => s.includes('early') && early.resolve(),
        }), MS, 'start for connect');
        await withDeadline(early.promise, MS, 'the first output, before connect');
        await h.disconnect(); // this client stops listening; the process runs on
        check((await running()).includes(h.pid), 'after disconnect() the process runs on');
        const other = await open();
        const seen = deferred();
        const c = await withDeadline(other.commands.connect(h.pid, { onStdout: (s) => s.includes('after') && seen.resolve() }), MS, 'connect');
        check(c.pid === h.pid, 'commands.connect(pid) from a second client follows the same process', `${c.pid} vs ${h.pid}`);
        await withDeadline(other.commands.sendStdin(h.pid, 'z\n'), MS, 'sendStdin from the second client');
        await withDeadline(seen.promise, MS, 'onStdout on the connected handle');
        let err;
        try {
            await withDeadline(c.wait(), MS, 'wait connected');
        } catch (e) {
            err = e;
        }
        check(err instanceof e2b.CommandExitError && err.exitCode === 4 && err.stdout === 'after z\n',
              'the connected handle gets the output from then on, not "early" from before, and the end (exit 4)', safeJson({ exitCode: err?.exitCode, stdout: err?.stdout }));
        let missing;
        try {
            await withDeadline(other.commands.connect(999999), MS, 'connect to no process');
        } catch (e) {
            missing = e;
        }
        check(missing instanceof e2b.NotFoundError, 'connect to a pid that is not running: NotFoundError', String(missing));
    });

    await section('pty', async () => {
        let text = '';
        let waiter = null;
        const onData = (bytes) => {
            text += Buffer.from(bytes).toString('utf8');
            if (waiter && waiter.re.test(text)) waiter.d.resolve();
        };
        const until = (re, what) => {
            waiter = { re, d: deferred() };
            if (re.test(text)) waiter.d.resolve();
            return withDeadline(waiter.d.promise, MS, what).then(() => true, () => false);
        };
        const term = await withDeadline(sbx.pty.create({ cols: 80, rows: 24, onData }), MS, 'pty.create');
        check(Number.isInteger(term.pid) && (await running()).includes(term.pid), 'pty.create starts a terminal, listed by commands.list');
        await sbx.pty.sendInput(term.pid, new TextEncoder().encode('stty size; tty\n'));
        check(await until(/24 80\r?\n[^]*\/dev\/pts\/\d+/, 'stty size 24 80, then tty'),
              'the shell runs on a terminal of the given size (stty size 24 80; tty names /dev/pts/N)', text.slice(-400));
        await withDeadline(sbx.pty.resize(term.pid, { cols: 100, rows: 30 }), MS, 'pty.resize');
        await sbx.pty.sendInput(term.pid, new TextEncoder().encode('stty size\n'));
        check(await until(/30 100\r?\n/, 'stty size 30 100 after resize'),
              'pty.resize changes the terminal size (stty size shows 30 100)', text.slice(-400));
        check(await withDeadline(sbx.pty.kill(term.pid), MS, 'pty.kill') === true, 'pty.kill answers true');
        let err;
        try {
            await withDeadline(term.wait(), MS, 'pty wait');
        } catch (e) {
            err = e;
        }
        check(err instanceof e2b.CommandExitError && err.exitCode === -1, 'the killed terminal ends', safeJson({ exitCode: err?.exitCode, error: err?.error }));
        check(!(await running()).includes(term.pid), 'it is gone from commands.list');
    });

    await section('timeout', async () => {
        const h = await withDeadline(sbx.commands.start('sleep 300', { timeoutMs: 1000 }), MS, 'start with timeoutMs');
        let err;
        try {
            await withDeadline(h.wait(), MS, 'wait past timeoutMs');
        } catch (e) {
            err = e;
        }
        check(err instanceof e2b.TimeoutError, 'past timeoutMs, wait() throws TimeoutError', String(err));
        // The server kills it too (not only the client giving up): it leaves the list and the
        // sandbox's process table.
        await waitUntil(async () => !(await running()).includes(h.pid), MS, 'timed-out process leaves the list');
        const k = await withDeadline(sbx.commands.run(`kill -0 ${h.pid} 2>/dev/null && echo alive || echo gone`), MS, 'kill -0');
        check(k.stdout === 'gone\n', 'the timed-out process was killed in the sandbox', safeJson(k));
    });

    await section('big output', async () => {
        const r = await withDeadline(sbx.commands.run('head -c 3000000 /dev/zero | tr "\\0" x'), MS, 'run 3 MB');
        check(r.stdout.length === 3000000 && /^x+$/.test(r.stdout), '3 MB of stdout arrive whole', `${r.stdout.length} bytes`);
    });

    await section('many processes, and a flood nobody reads', async () => {
        const hs = await withDeadline(Promise.all(Array.from({ length: 12 }, (_, i) =>
            sbx.commands.run(`sleep 300; echo ${i}`, { background: true }))), MS, '12 background commands');
        const pids = new Set(hs.map((h) => h.pid));
        const listed = await running();
        check(pids.size === 12 && hs.every((h) => listed.includes(h.pid)), '12 background commands run at once, each with its own pid, all listed', safeJson(listed));

        // A Start whose client reads the first event and then nothing: `yes` writes as fast as it
        // can; the server must go on answering (the engine reads in bounded slices, and what
        // waits for this client is bounded by the HTTP server's queue limit).
        const msg = Buffer.from(JSON.stringify({ process: { cmd: 'yes', args: ['flood'] } }));
        const env = Buffer.concat([Buffer.from([0, 0, 0, 0, 0]), msg]);
        env.writeUInt32BE(msg.length, 1);
        const ac = new AbortController();
        const res = await srv.raw('/e2b/sandbox/process.Process/Start', {
            headers: { 'E2b-Sandbox-Id': info.sandboxID, 'E2b-Sandbox-Port': '49983', 'Content-Type': 'application/connect+json' },
            body: new Uint8Array(env), signal: ac.signal,
        });
        const reader = res.body.getReader();
        let head = Buffer.alloc(0);
        while (head.length < 5 || head.length < 5 + head.readUInt32BE(1)) {
            const { value, done } = await withDeadline(reader.read(), MS, 'the flood\'s start event');
            if (done) break;
            head = Buffer.concat([head, Buffer.from(value)]);
        }
        const pid = JSON.parse(head.subarray(5, 5 + head.readUInt32BE(1)).toString()).event?.start?.pid;
        check(Number.isInteger(pid), 'the flood started', head.subarray(0, 200).toString());
        const r = await withDeadline(sbx.commands.run('echo alive'), MS, 'run during the flood');
        check(r.stdout === 'alive\n', 'while it floods an unread stream, other commands are answered', safeJson(r));
        check(await withDeadline(sbx.commands.kill(pid), MS, 'kill the flood') === true, 'the flood is killed by its pid');
        ac.abort();

        await withDeadline(Promise.all(hs.map((h) => h.kill())), MS, 'kill the 12');
        const gone = await waitUntil(async () => !(await running()).some((p) => pids.has(p) || p === pid), MS, 'all gone from the list')
            .then(() => true, () => false);
        check(gone, 'the 12 and the flood leave commands.list once killed', safeJson(await running()));
    });

    await section('malformed calls', async () => {
        const headers = { 'E2b-Sandbox-Id': info.sandboxID, 'E2b-Sandbox-Port': '49983' };
        const path = '/e2b/sandbox/process.Process/';
        // A streaming call whose envelope says 1000 bytes and holds 3.
        let res = await srv.raw(path + 'Start', { headers: { ...headers, 'Content-Type': 'application/connect+json' }, body: new Uint8Array([0, 0, 0, 3, 232, 123, 125, 10]) });
        let body = Buffer.from(await res.arrayBuffer());
        check(res.status === 200 && body[0] === 2 && /invalid_argument/.test(body.subarray(5).toString()),
              'a malformed envelope: the end of stream carries invalid_argument', `${res.status} ${body.toString()}`);
        // A whole envelope of bad JSON.
        const bad = Buffer.from('{"process": ');
        res = await srv.raw(path + 'Start', { headers: { ...headers, 'Content-Type': 'application/connect+json' }, body: new Uint8Array([0, 0, 0, 0, bad.length, ...bad]) });
        body = Buffer.from(await res.arrayBuffer());
        check(res.status === 200 && /invalid_argument/.test(body.toString()), 'bad JSON in the envelope: invalid_argument', body.toString());
        res = await srv.raw(path + 'List', { headers, body: '{"a":' });
        const j = await res.json().catch(() => ({}));
        check(res.status === 400 && j.code === 'invalid_argument', 'a unary call with bad JSON: 400 invalid_argument', safeJson(j));
        res = await srv.raw(path + 'SendSignal', { headers, body: { process: { pid: 1 }, signal: 'SIGNAL_SIGKILL' } });
        check(res.status === 404, 'SendSignal to a pid not started here (the init): not_found', String(res.status));
        res = await srv.raw(path + 'StreamInput', { headers, body: {} });
        check(res.status === 501, 'StreamInput (client-streaming): unimplemented', String(res.status));
        const r = await withDeadline(sbx.commands.run('echo still serving'), MS, 'run after malformed calls');
        check(r.stdout === 'still serving\n', 'the server keeps serving after malformed calls', safeJson(r));
    });
    await section('the sandbox ends under open streams', async () => {
        // One stream from start, one from connect; killing the sandbox ends both with an error
        // the SDK shows, at once (not at the commands' own end, 300 s away).
        const h = await withDeadline(sbx.commands.start('sleep 300'), MS, 'start before kill');
        const c = await withDeadline((await open()).commands.connect(h.pid), MS, 'connect before kill');
        const ended = (handle) => handle.wait().then(() => 'no error', (e) => e);
        const both = Promise.all([ended(h), ended(c)]);
        await withDeadline(sbx.kill(), MS, 'Sandbox.kill');
        const [e1, e2] = await withDeadline(both, MS, 'both streams end when the sandbox goes');
        check(e1 instanceof e2b.SandboxError && e2 instanceof e2b.SandboxError,
              'both the started and the connected handle end with an error', `${e1?.name}: ${e1?.message} / ${e2?.name}: ${e2?.message}`);
        check(e1 instanceof e2b.TimeoutError && /the sandbox ended/.test(String(e1?.message)),
              'it is the server\'s "unavailable: the sandbox ended" (TimeoutError), not a dropped connection', String(e1?.message));
        const res = await srv.raw('/e2b/health');
        check(res.status === 200, 'the server keeps serving (GET /e2b/health)', String(res.status));
    });
});
