// sessions.mjs: session_create (jupyter and terminal), session_execute, session_close,
// session_connect with a real jupyter_client (the Debian one, /usr/bin/python3) joining the very
// kernel the MCP client uses.
import { existsSync } from 'node:fs';
import { brief, check, mainResult, run, runProgram, safeJson, section, sc, startServer, textOf, withDeadline } from './lib.mjs';

const PY = '/usr/bin/python3';
const JUPYTER_CLIENT = `
import sys
from jupyter_client import BlockingKernelClient
kc = BlockingKernelClient()
kc.load_connection_file(sys.argv[1])
kc.start_channels()
try:
    kc.wait_for_ready(timeout=30)
    out = []
    def hook(msg):
        t, c = msg["msg_type"], msg["content"]
        if t == "execute_result":
            out.append(c["data"]["text/plain"])
        elif t == "stream":
            out.append(c["text"])
    reply = kc.execute_interactive("shared_value", timeout=30, output_hook=hook)
    print("STATUS", reply["content"]["status"])
    print("VALUE", "".join(out).strip())
    reply = kc.execute_interactive("from_console = shared_value + 1", timeout=30, output_hook=hook)
    print("SET", reply["content"]["status"])
finally:
    kc.stop_channels()
`;

await run(async () => {
    const srv = await startServer({ label: 'sessions server' });
    let r, sandboxId, mainSession, js, ts;

    await section('jupyter sessions', async () => {
        // The main session and a second jupyter session have separate state.
        r = await srv.callOk('code_execute', { code: 'where = "main"' });
        sandboxId = sc(r).sandbox_id;
        mainSession = sc(r).session_id;
        r = await srv.callOk('session_create', { type: 'jupyter' });
        js = sc(r).session_id;
        check(typeof js === 'string' && js !== mainSession && sc(r).type === 'jupyter' && sc(r).sandbox_id === sandboxId,
            'session_create jupyter: a new session in the default sandbox', brief(r));
        r = await srv.callOk('session_execute', { session_id: js, input: 'where = "second"\nonly_here = 1\nwhere' });
        check(mainResult(r) === "'second'", 'session_execute runs in the new session', brief(r));
        r = await srv.callOk('code_execute', { code: 'where' });
        check(mainResult(r) === "'main'", 'the main session keeps its own variable', brief(r));
        r = await srv.call('code_execute', { code: 'only_here' });
        check(r.isError === true && sc(r).error?.ename === 'NameError', 'a variable of the second session is not in the main one', brief(r));
        r = await srv.callOk('session_execute', { session_id: js, input: 'print(only_here + 1)' });
        check(sc(r).stdout === '2\n', 'the second session keeps its state across calls', brief(r));
    });

    await section('terminal sessions', async () => {
        // A terminal session keeps cwd and variables.
        r = await srv.callOk('session_create', { type: 'terminal' });
        ts = sc(r).session_id;
        check(typeof ts === 'string' && sc(r).type === 'terminal', 'session_create terminal', brief(r));
        r = await srv.callOk('session_execute', { session_id: ts, input: 'cd /tmp' });
        check(sc(r).exit_code === 0, 'cd /tmp: exit_code 0', brief(r));
        r = await srv.callOk('session_execute', { session_id: ts, input: 'pwd' });
        check(sc(r).stdout === '/tmp\n' && sc(r).type === 'terminal', 'the terminal keeps its cwd (pwd -> /tmp)', brief(r));
        await srv.callOk('session_execute', { session_id: ts, input: 'export A=1; B=two; greet() { echo "hi $1"; }' });
        r = await srv.callOk('session_execute', { session_id: ts, input: 'echo "$A $B"; greet you' });
        check(sc(r).stdout === '1 two\nhi you\n', 'the terminal keeps variables and functions', brief(r));
        r = await srv.call('session_execute', { session_id: ts, input: 'ls /no/such/path' });
        check(sc(r).exit_code === 2 && /no\/such\/path/.test(sc(r).stdout ?? ''), 'a failing command: exit_code 2 and its error on the terminal (stdout: a terminal has one screen)', brief(r));
        r = await srv.call('session_execute', { session_id: ts, input: 'false' });
        check(sc(r).exit_code === 1, 'false: exit_code 1', brief(r));
        r = await srv.callOk('session_execute', { session_id: ts, input: 'echo still here; pwd' });
        check(sc(r).stdout === 'still here\n/tmp\n', 'the terminal lives on after failures', brief(r));
        r = await srv.callOk('session_execute', { session_id: ts, input: 'printf "no newline"' });
        check(sc(r).stdout === 'no newline', 'output without a final newline is kept exact', brief(r));
    });

    await section('terminal output that is not clean text', async () => {
        r = await srv.callOk('session_create', { type: 'terminal' });
        const t3 = sc(r).session_id;
        r = await withDeadline(srv.call('session_execute', { session_id: t3, input: "printf 'x\\377z\\n'" }), 15000, 'a terminal printing invalid UTF-8');
        check(!r.isError && /^x[\s\S]*z\n$/.test(sc(r).stdout ?? ''), 'a terminal input printing invalid UTF-8 returns its stdout (x...z)', brief(r));
        r = await srv.call('session_execute', { session_id: t3, input: "printf 'p\\0q\\n'" }, { timeout: 15000 })
            .catch((e) => ({ content: [{ type: 'text', text: e.message }] }));
        check(!r.isError && /^p[\s\S]*q\n$/.test(sc(r).stdout ?? ''), 'a terminal input printing a NUL byte answers (within 15 s) with its stdout (p...q)', brief(r));
        r = await withDeadline(srv.call('session_execute', { session_id: t3, input: 'echo fine' }), 15000, 'the terminal after odd output');
        check(sc(r).stdout === 'fine\n', 'the terminal works after odd output', brief(r));
    });

    await section('terminal timeout', async () => {
        r = await srv.callOk('session_create', { type: 'terminal' });
        const t2 = sc(r).session_id;
        r = await withDeadline(srv.call('session_execute', { session_id: t2, input: 'sleep 30; echo never', timeout_s: 1 }), 20000, 'a terminal input with timeout_s 1');
        check(r.isError === true && sc(r).status === 'timeout' && !/never/.test(sc(r).stdout ?? ''), 'sleep 30 with timeout_s 1 in a terminal: status timeout, isError', brief(r));
        r = await srv.call('session_execute', { session_id: t2, input: 'echo hi' });
        check(!r.isError && sc(r).stdout === 'hi\n', 'a timeout interrupts the input; the terminal session goes on (terminal.mjs has more)', brief(r));
    });

    await section('closing', async () => {
        // Closing.
        r = await srv.callOk('session_close', { session_id: ts });
        r = await srv.call('session_execute', { session_id: ts, input: 'pwd' });
        check(r.isError === true, 'session_execute on a closed terminal session is isError', brief(r));
        r = await srv.callOk('session_close', { session_id: js });
        r = await srv.call('session_execute', { session_id: js, input: '1' });
        check(r.isError === true, 'session_execute on a closed jupyter session is isError', brief(r));
        r = await srv.call('session_close', { session_id: mainSession });
        check(r.isError === true, 'the main session cannot be closed', brief(r));
        r = await srv.call('session_execute', { session_id: 'no-such-session', input: '1' });
        check(r.isError === true && /no-such-session|session/i.test(textOf(r)), 'session_execute on an unknown session is isError', brief(r));
    });

    await section('session_connect', async () => {
        // session_connect: a real jupyter_client in the kernel the MCP client uses.
        await srv.callOk('code_execute', { code: 'shared_value = 4242' });
        r = await srv.callOk('session_connect', { sandbox_id: sandboxId });
        const file = sc(r).connection_file;
        check(typeof file === 'string' && existsSync(file), 'session_connect returns a connection file that exists on the host', brief(r));
        check(sc(r).session_id === mainSession && /jupyter console --existing/.test(sc(r).command ?? ''), 'session_connect names the main session and a jupyter console command', brief(r));
        if (file && existsSync(file)) {
            const p = await runProgram(PY, ['-c', JUPYTER_CLIENT, file], { ms: 90000 });
            check(p.code === 0 && /STATUS ok/.test(p.stdout) && /VALUE 4242/.test(p.stdout), 'a BlockingKernelClient on the connection file reads shared_value (4242) set over MCP',
                safeJson({ code: p.code, stdout: p.stdout, stderr: p.stderr.slice(-1500) }));
            r = await withDeadline(srv.callOk('code_execute', { code: 'from_console' }), 20000, 'code_execute after the console');
            check(mainResult(r) === '4243', 'MCP sees what the jupyter client set (from_console == 4243)', brief(r));
        }
        check(srv.clientErrors.length === 0, 'the SDK client saw no protocol error from the server', safeJson(srv.clientErrors));
    });
});
