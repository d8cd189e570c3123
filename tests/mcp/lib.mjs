// lib.mjs: what the MCP test scripts share.
//
//   node <script>.mjs PATH/TO/cellblock          (ctest passes $<TARGET_FILE:cellblock>)
//
// - SKIP (exit 77) when node is older than 18 or tests/mcp/node_modules is missing
//   (scripts/install-deps.sh runs `npm ci` here).
// - tempDir(prefix): a fresh directory (mkdtemp) removed when the script exits. Every server
//   started here gets its own CELLBLOCK_STATE_DIR from it (persistent workspaces never land in
//   ~/.local/state) unless the caller's env sets one.
// - startServer(): `cellblock mcp` through the official SDK client (StdioClientTransport), its
//   stderr kept in a buffer that finish() prints when a check failed, every message it sends
//   recorded, its process tree followed so close() can prove nothing is left behind;
//   srv.kill(signal) for the ends that are not a closed stdin, srv.metrics() for server_metrics.
// - startRaw(): the same binary on plain pipes, for the protocol edges the SDK never produces.
// - CB_MCP_TRANSPORT=http: startServer() starts `cellblock serve --listen 127.0.0.1:0` instead
//   (CELLBLOCK_TOKEN set, the URL read from its "listening on" line) and connects the SDK client
//   with StreamableHTTPClientTransport; close() ends the MCP session (DELETE), then stops the
//   server with SIGTERM and checks it exits with status 0. startServe() starts such a server
//   without a client (srv.url, srv.token, srv.connect() for SDK clients, srv.fetch for raw HTTP),
//   for tests/mcp/http.mjs. startRaw() stays stdio: its scripts run on stdio only.
// - check(cond, what, detail) / finish(): "ok - what" / "FAIL - what: detail", as
//   tests/integration/checks.py does; finish() returns the exit status.
// - withDeadline(promise, ms, what): wait for an event, fail when it does not come in time;
//   waitUntil(fn, ms, what) polls for what has no event; timePasses(ms) only where time passing
//   is the thing under test.
// - sandboxes: waitGone (poll until a sandbox is gone), sandboxProcesses (its init and what runs
//   under it, from sandbox_info's init_pid), processesGone, sandboxLogs.
//
// Every wait has a deadline; nothing sleeps on hope. A watchdog ends the script (and the servers
// it started, by pid) before ctest's own TIMEOUT would, so failures come with their details.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const HERE = dirname(fileURLToPath(import.meta.url));

function skip(reason) {
    console.log(`SKIP: ${reason}`);
    process.exit(77);
}

const NODE_MAJOR = Number(process.versions.node.split('.')[0]);
if (NODE_MAJOR < 18) skip(`node ${process.version} is older than 18`);
if (!existsSync(join(HERE, 'node_modules', '@modelcontextprotocol', 'sdk', 'package.json')))
    skip('tests/mcp/node_modules is missing: run scripts/install-deps.sh (npm ci in tests/mcp)');

export const BIN = process.argv[2];
if (!BIN) {
    console.log(`usage: node ${process.argv[1]} PATH/TO/cellblock`);
    process.exit(2);
}
if (!existsSync(BIN)) {
    console.log(`FAIL - the cellblock binary exists: ${BIN} not found`);
    process.exit(1);
}

const { Client } = await import('@modelcontextprotocol/sdk/client/index.js');
const { StdioClientTransport } = await import('@modelcontextprotocol/sdk/client/stdio.js');
const { StreamableHTTPClientTransport } = await import('@modelcontextprotocol/sdk/client/streamableHttp.js');
const types = await import('@modelcontextprotocol/sdk/types.js');
export const { McpError, LoggingMessageNotificationSchema } = types;
export { Client, StdioClientTransport, StreamableHTTPClientTransport };

// The transport startServer() uses: stdio (default) or http (CB_MCP_TRANSPORT=http).
export const TRANSPORT = process.env.CB_MCP_TRANSPORT === 'http' ? 'http' : 'stdio';
if (TRANSPORT === 'http') console.log('# transport: Streamable HTTP (cellblock serve)');

export const ALL_TOOLS = [
    'sandbox_create', 'sandbox_list', 'sandbox_info', 'sandbox_delete', 'code_execute',
    'code_execute_async', 'execution_status', 'execution_cancel', 'command_execute',
    'file_upload', 'file_download', 'file_list', 'file_delete', 'session_create',
    'session_execute', 'session_close', 'session_connect', 'sandbox_logs', 'sandbox_metrics',
    'run_code', 'sandbox_set_timeout', 'server_metrics', 'kernel_restart',
    'process_list', 'process_kill', 'process_output', 'terminal_send', 'terminal_read', 'terminal_resize',
    'sandbox_expose_port', 'sandbox_unexpose_port', 'notebook_run', 'session_export', 'sandbox_history',
];

// ---- scratch directories -------------------------------------------------------------------

const tempDirs = [];
process.on('exit', () => {
    for (const d of tempDirs) {
        try {
            rmSync(d, { recursive: true, force: true });
        } catch {}
    }
});

// A new empty directory (short path: sockets live under a runtime dir made here), removed with
// everything in it when the script exits.
export function tempDir(prefix = 'cb-mcp-') {
    const d = mkdtempSync(join(tmpdir(), prefix));
    tempDirs.push(d);
    return d;
}

// The environment overrides a server starts with: opts.env, plus an isolated state dir unless
// opts.env names CELLBLOCK_STATE_DIR (set it to undefined to get the server's own default).
function withStateDir(env = {}) {
    if ('CELLBLOCK_STATE_DIR' in env) return { ...env };
    return { ...env, CELLBLOCK_STATE_DIR: tempDir('cb-state-') };
}

// ---- checks --------------------------------------------------------------------------------

const failures = [];
const servers = []; // everything started, for stderr on failure and the watchdog

export function check(cond, what, detail = '') {
    if (cond) {
        console.log(`ok - ${what}`);
    } else {
        let d = typeof detail === 'string' ? detail : safeJson(detail);
        if (d.length > 4000) d = d.slice(0, 4000) + `... (${d.length} chars)`;
        console.log(`FAIL - ${what}${d ? ': ' + d : ''}`);
        failures.push(what);
    }
    return Boolean(cond);
}

export function note(text) {
    console.log(`# ${text}`);
}

export function finish() {
    if (failures.length) {
        for (const s of servers) s.printStderr();
        console.log(`${failures.length} check(s) failed: ${JSON.stringify(failures)}`);
        return 1;
    }
    console.log('all checks passed');
    return 0;
}

export function safeJson(v) {
    try {
        return JSON.stringify(v, (k, x) => (typeof x === 'string' && x.length > 600 ? x.slice(0, 600) + `...(${x.length})` : x));
    } catch {
        return String(v);
    }
}

// Run fn (an async test body); an exception is a failed check, not a crash. Always runs cleanup.
export async function run(fn) {
    try {
        await fn();
    } catch (e) {
        check(false, 'the test body ran without an unexpected exception', e?.stack || String(e));
    } finally {
        for (const s of servers.slice().reverse()) {
            if (!s.closed) {
                try {
                    await s.close();
                } catch (e) {
                    check(false, `${s.label}: closed cleanly`, e?.stack || String(e));
                }
            }
        }
    }
    process.exit(finish());
}

// One part of a script: an exception (a missing answer, a JSON-RPC error where a result was
// expected) is a failed check, and the script goes on with the next part.
export async function section(name, fn) {
    console.log(`# -- ${name}`);
    try {
        return await fn();
    } catch (e) {
        check(false, `${name}: ran without an unexpected exception`, e?.stack || String(e));
        return undefined;
    }
}

// A watchdog under ctest's TIMEOUT (300 s): report, kill our own servers by pid, exit.
const WATCHDOG_MS = Number(process.env.CB_MCP_WATCHDOG_MS || 270000);
setTimeout(() => {
    check(false, `the script finished within its ${WATCHDOG_MS / 1000} s watchdog`);
    for (const s of servers) {
        if (s.pid && !s.exit) {
            try {
                process.kill(s.pid, 'SIGKILL');
            } catch {}
        }
    }
    process.exit(finish());
}, WATCHDOG_MS).unref();

export class DeadlineError extends Error {}

export function withDeadline(promise, ms, what) {
    let timer;
    const deadline = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new DeadlineError(`${what}: nothing within ${ms} ms`)), ms);
    });
    return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

// Poll a condition (for things with no event to wait on, like a process leaving /proc).
export async function waitUntil(fn, ms, what, everyMs = 50) {
    const end = Date.now() + ms;
    for (;;) {
        const v = await fn();
        if (v) return v;
        if (Date.now() > end) throw new DeadlineError(`${what}: not within ${ms} ms`);
        await new Promise((r) => setTimeout(r, everyMs));
    }
}

// A promise plus its resolve, for events.
export function deferred() {
    let resolve, reject;
    const promise = new Promise((a, b) => {
        resolve = a;
        reject = b;
    });
    return { promise, resolve, reject };
}

// ---- results -------------------------------------------------------------------------------

export const sc = (r) => r?.structuredContent ?? {};
export const textOf = (r) => (r?.content ?? []).filter((b) => b.type === 'text').map((b) => b.text).join('\n');
export const imagesOf = (r) => (r?.content ?? []).filter((b) => b.type === 'image');
export function mainResult(r, mime = 'text/plain') {
    const res = sc(r).results ?? [];
    const main = res.find((x) => x.is_main_result) ?? null;
    return main?.data?.[mime];
}
export const brief = (r) => safeJson({ isError: r?.isError, text: textOf(r).slice(0, 1500), structuredContent: r?.structuredContent });

// ---- sandboxes -----------------------------------------------------------------------------

// Poll sandbox_info on id until it is isError (the sandbox is gone): {result, at}. each(), when
// given, runs every round: a check on something that must hold meanwhile.
export async function waitGone(srv, id, ms, each) {
    let result;
    await waitUntil(async () => {
        result = await srv.call('sandbox_info', { sandbox_id: id });
        if (each) await each();
        return result.isError === true;
    }, ms, `sandbox ${id} gone`, 200);
    return { result, at: Date.now() };
}

// The host processes of one sandbox (its init and everything under it): Map pid -> start time.
export async function sandboxProcesses(srv, id) {
    const pid = sc(await srv.callOk('sandbox_info', { sandbox_id: id })).init_pid;
    return Number.isInteger(pid) ? treeOf(pid) : new Map();
}

// Wait (ms) until none of procs (Map pid -> start time) is alive: the pids left (empty: all gone).
export async function processesGone(procs, ms = 10000) {
    const left = () => [...procs].filter(([p, s]) => alive(p, s)).map(([p]) => p);
    try {
        await waitUntil(() => left().length === 0, ms, 'processes gone');
    } catch {}
    return left();
}

// sandbox_logs entries of a sandbox: [{time, source, text}].
export async function sandboxLogs(srv, id, lines = 200) {
    return sc(await srv.callOk('sandbox_logs', { sandbox_id: id, lines })).entries ?? [];
}

// Let ms pass, for checks where time passing is the thing under test (a lifetime running out, a
// CPU share measured over a second). Not for waiting on events: those have waitUntil.
export function timePasses(ms) {
    return new Promise((r) => setTimeout(r, ms));
}

// ---- processes -----------------------------------------------------------------------------

// {pid: {ppid, start, cmd}} for every process on the host.
export function processTable() {
    const table = new Map();
    for (const e of readdirSync('/proc')) {
        if (!/^\d+$/.test(e)) continue;
        try {
            const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
            const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
            // rest[0] is field 3 (state): ppid is field 4, starttime field 22
            table.set(Number(e), { ppid: Number(rest[1]), start: rest[19], state: rest[0] });
        } catch {}
    }
    return table;
}

export function cmdline(pid) {
    try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
    } catch {
        return null;
    }
}

// Descendants of pid (not pid itself): Map pid -> start time.
export function descendants(pid, table = processTable()) {
    const kids = new Map();
    for (const [p, info] of table) {
        if (!kids.has(info.ppid)) kids.set(info.ppid, []);
        kids.get(info.ppid).push(p);
    }
    const out = new Map();
    const todo = [...(kids.get(pid) ?? [])];
    while (todo.length) {
        const p = todo.pop();
        if (out.has(p)) continue;
        out.set(p, table.get(p).start);
        todo.push(...(kids.get(p) ?? []));
    }
    return out;
}

// pid and its descendants: Map pid -> start time (empty when pid is gone). With a sandbox's
// init_pid (sandbox_info), the processes of that one sandbox, whatever else the server runs.
export function treeOf(pid, table = processTable()) {
    const out = new Map();
    if (!table.has(pid)) return out;
    out.set(pid, table.get(pid).start);
    for (const [p, s] of descendants(pid, table)) out.set(p, s);
    return out;
}

// Is the process pid with this start time still there (not a zombie, not a reused pid)?
export function alive(pid, start) {
    try {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        return rest[19] === start && rest[0] !== 'Z' && rest[0] !== 'X';
    } catch {
        return false;
    }
}

function stderrBuffer(label) {
    const chunks = [];
    let size = 0;
    return {
        push(chunk) {
            chunks.push(chunk);
            size += chunk.length;
            while (size > 256 * 1024 && chunks.length > 1) size -= chunks.shift().length;
        },
        text: () => Buffer.concat(chunks).toString('utf8'),
        print() {
            const t = Buffer.concat(chunks).toString('utf8');
            if (!t) return;
            const tail = t.length > 12000 ? t.slice(-12000) : t;
            console.log(`# ---- stderr of ${label}${tail.length < t.length ? ' (last 12000 chars)' : ''} ----`);
            for (const line of tail.split('\n')) console.log(`# ${line}`);
        },
    };
}

// process.env (or base) with overrides; an override of undefined or null removes the variable.
export function serverEnv(overrides = {}, base = process.env) {
    const env = { ...base, ...overrides };
    for (const [k, v] of Object.entries(env)) if (v === undefined || v === null) delete env[k];
    return env;
}

// ---- the SDK client ------------------------------------------------------------------------

let serial = 0;

// srv.track() (follow the server's process tree) and srv.checkNoneLeft(after), for any server
// object with pid, exit and seen.
function processHelpers(srv, label) {
    // Follow the server's process tree so close() can check every process of it is gone.
    srv.track = () => {
        if (!srv.pid || srv.exit) return new Map();
        const d = descendants(srv.pid);
        for (const [p, s] of d) srv.seen.set(p, s);
        return d;
    };

    // Check (waiting up to 10 s) that no process the server ever had is left; kill any that is.
    srv.checkNoneLeft = async (after) => {
        const left = () => [...srv.seen].filter(([p, s]) => alive(p, s)).map(([p]) => p);
        const what = `${label}: none of its ${srv.seen.size} descendant processes is left${after ? ' ' + after : ''}`;
        try {
            await waitUntil(() => left().length === 0, 10000, 'processes gone');
            return check(true, what);
        } catch {
            const l = left();
            check(false, what, l.map((p) => `${p}: ${cmdline(p)}`).join('; '));
            for (const p of l) {
                try {
                    process.kill(p, 'SIGKILL');
                } catch {}
            }
            return false;
        }
    };
}

// What every SDK-client server object has, whatever the transport: track, checkNoneLeft, call,
// callOk, metrics, kill. srv.pid and srv.exited come from the transport's start.
function clientHelpers(srv, client, label) {
    processHelpers(srv, label);

    srv.call = async (name, args = {}, o = {}) => {
        const p = client.callTool({ name, arguments: args }, undefined, {
            timeout: o.timeout ?? 120000,
            signal: o.signal,
            onprogress: o.onprogress,
        });
        const r = await withDeadline(p, (o.timeout ?? 120000) + 5000, `tools/call ${name}`);
        srv.track();
        return r;
    };
    // A call that must succeed: a failed check (with the result) when isError is set.
    srv.callOk = async (name, args = {}, o = {}) => {
        const r = await srv.call(name, args, o);
        if (r.isError) check(false, `${name} ${safeJson(args).slice(0, 200)} succeeds`, brief(r));
        return r;
    };
    // server_metrics' structuredContent.
    srv.metrics = async () => sc(await srv.callOk('server_metrics', {}));

    // Send the server a signal and wait (ms) for it to exit: its exit {code, signal, at}, or null
    // (a failed check; it is then killed). Afterwards close() does nothing; use checkNoneLeft.
    srv.kill = async (signal, ms = 15000) => {
        srv.track();
        srv.closed = true;
        const t0 = Date.now();
        process.kill(srv.pid, signal);
        let ex = null;
        try {
            ex = await withDeadline(srv.exited.promise, ms, `${label}: exit after ${signal}`);
            check(true, `${label}: exits within ${ms / 1000} s of ${signal} (${ex.at - t0} ms)`);
        } catch (e) {
            check(false, `${label}: exits within ${ms / 1000} s of ${signal}`, e.message);
            process.kill(srv.pid, 'SIGKILL');
            await srv.exited.promise;
        }
        await client.close().catch(() => {});
        return ex;
    };
}

// Start `cellblock mcp` with the SDK client, initialize, and list the tools (which makes the
// SDK check every later structuredContent against the tool's outputSchema).
// opts: {env: overrides (plus an isolated CELLBLOCK_STATE_DIR, see withStateDir), label,
//        args: extra args after "mcp", listTools: true, bareEnv}
export async function startServer(opts = {}) {
    if (TRANSPORT === 'http') return startHttpServer(opts);
    const label = opts.label ?? `server ${++serial}`;
    const env = withStateDir(opts.env);
    const transport = new StdioClientTransport({
        command: BIN,
        args: ['mcp', ...(opts.args ?? [])],
        // bareEnv: what an MCP client gives by default (the SDK: HOME, LOGNAME, PATH, SHELL, TERM,
        // USER only), plus opts.env.
        env: opts.bareEnv ? serverEnv(env, {}) : serverEnv(env),
        stderr: 'pipe',
    });
    const err = stderrBuffer(label);
    transport.stderr.on('data', (c) => err.push(c));
    const srv = {
        label,
        env, // the overrides it started with (CELLBLOCK_STATE_DIR among them)
        transport,
        client: null,
        pid: null,
        exit: null, // {code, signal, at}
        exited: deferred(),
        closed: false,
        incoming: [], // {at, msg}: every message the server sent
        outgoing: [], // {at, msg}
        clientErrors: [], // what the SDK reported through onerror (e.g. responses to unknown ids)
        seen: new Map(), // descendant pid -> start time, every one ever seen
        stderr: () => err.text(),
        printStderr: () => err.print(),
    };
    const origStart = transport.start.bind(transport);
    transport.start = async () => {
        const r = await origStart();
        const proc = transport._process;
        srv.pid = proc.pid;
        proc.once('exit', (code, signal) => {
            srv.exit = { code, signal, at: Date.now() };
            srv.exited.resolve(srv.exit);
        });
        const onmessage = transport.onmessage;
        transport.onmessage = (msg, extra) => {
            srv.incoming.push({ at: Date.now(), msg });
            onmessage?.(msg, extra);
        };
        return r;
    };
    const origSend = transport.send.bind(transport);
    transport.send = (msg, o) => {
        srv.outgoing.push({ at: Date.now(), msg });
        return origSend(msg, o);
    };
    // opts.capabilities: what the client declares (elicitation, ...); opts.setup(client): request
    // handlers for what the server asks the client.
    const client = new Client({ name: 'cellblock-mcp-tests', version: '1.0.0' }, { capabilities: opts.capabilities ?? {} });
    client.onerror = (e) => srv.clientErrors.push({ at: Date.now(), message: e?.message ?? String(e) });
    opts.setup?.(client);
    srv.client = client;
    servers.push(srv);

    clientHelpers(srv, client, label);

    // Close stdin (what every MCP client does), wait for the server to exit by itself, then
    // check it exited with status 0 and left no process behind.
    srv.close = async () => {
        if (srv.closed) return;
        srv.closed = true;
        srv.track();
        const t0 = Date.now();
        try {
            transport._process?.stdin?.end();
        } catch {}
        let ex = null;
        try {
            ex = await withDeadline(srv.exited.promise, 20000, `${label}: exit after stdin closed`);
        } catch (e) {
            check(false, `${label}: exits within 20 s of stdin closing`, e.message);
        }
        await client.close().catch(() => {}); // kills it (TERM, then KILL) if it is still there
        if (ex) {
            check(ex.code === 0 && ex.signal === null, `${label}: exits with status 0 when stdin closes`, safeJson(ex));
            const took = ex.at - t0;
            if (took > 2000)
                note(`${label} took ${took} ms to exit; the SDK's StdioClientTransport.close() sends SIGTERM after 2 s`);
        }
        await srv.checkNoneLeft('');
    };

    await withDeadline(client.connect(transport), 30000, `${label}: initialize`);
    srv.track();
    if (opts.listTools !== false) srv.tools = (await withDeadline(client.listTools(), 30000, 'tools/list')).tools;
    return srv;
}

// ---- over HTTP (cellblock serve) -----------------------------------------------------------

// `cellblock serve --listen 127.0.0.1:0` with a token (CELLBLOCK_TOKEN), once it has printed
// "listening on URL". No client yet: srv.connect() adds SDK clients (each its own MCP session),
// srv.fetch() sends raw HTTP to the MCP endpoint. close() ends every client's session, then
// stops the server with SIGTERM, checking it exits with status 0 and leaves no process.
// opts: {env, label, args: extra args after "serve", token, bareEnv}
export async function startServe(opts = {}) {
    const label = opts.label ?? `server ${++serial}`;
    const env = withStateDir(opts.env);
    const token = opts.token ?? randomBytes(24).toString('hex');
    const full = { ...env, CELLBLOCK_TOKEN: token };
    const bare = {};
    for (const k of ['HOME', 'LOGNAME', 'PATH', 'SHELL', 'TERM', 'USER']) if (process.env[k]) bare[k] = process.env[k];
    const proc = spawn(BIN, ['serve', '--listen', '127.0.0.1:0', ...(opts.args ?? [])], {
        env: opts.bareEnv ? serverEnv(full, bare) : serverEnv(full),
        stdio: ['ignore', 'pipe', 'pipe'],
    });
    const err = stderrBuffer(label);
    const srv = {
        label,
        env, // the overrides it started with (CELLBLOCK_STATE_DIR among them)
        token,
        proc,
        pid: proc.pid,
        url: null, // http://127.0.0.1:PORT
        mcpUrl: null, // ${url}/mcp
        exit: null,
        exited: deferred(),
        closed: false,
        seen: new Map(),
        conns: [], // SDK clients connected, ended by close()
        stderr: () => err.text(),
        printStderr: () => err.print(),
    };
    servers.push(srv);
    processHelpers(srv, label);
    const listening = deferred();
    let head = '';
    proc.stdout.on('data', () => {});
    proc.stderr.on('data', (c) => {
        err.push(c);
        if (srv.url) return;
        head += c.toString('utf8');
        const m = /listening on (http:\/\/[^\s/]+)/.exec(head);
        if (m) {
            srv.url = m[1];
            srv.mcpUrl = `${m[1]}/mcp`;
            listening.resolve();
        }
    });
    proc.on('error', (e) => err.push(Buffer.from(`spawn error: ${e.message}\n`)));
    proc.on('exit', (code, signal) => {
        srv.exit = { code, signal, at: Date.now() };
        srv.exited.resolve(srv.exit);
        listening.reject(new Error(`${label} exited (${code}, ${signal}) before it listened`));
    });
    try {
        await withDeadline(listening.promise, 60000, `${label}: "listening on" on stderr`);
    } catch (e) {
        srv.closed = true;
        if (!srv.exit) proc.kill('SIGKILL');
        throw e;
    }
    srv.track();

    // Raw HTTP to the MCP endpoint. o: {method: POST, body (object or string), sid, version
    // (MCP-Protocol-Version), accept, contentType, headers, auth: true, signal}.
    srv.fetch = (o = {}) => {
        const method = o.method ?? 'POST';
        const headers = {};
        if (o.auth !== false) headers.Authorization = `Bearer ${token}`;
        if (method === 'POST') {
            headers['Content-Type'] = o.contentType ?? 'application/json';
            headers.Accept = o.accept ?? 'application/json, text/event-stream';
        } else if (method === 'GET') {
            headers.Accept = o.accept ?? 'text/event-stream';
        }
        if (o.sid) headers['Mcp-Session-Id'] = o.sid;
        if (o.version) headers['MCP-Protocol-Version'] = o.version;
        Object.assign(headers, o.headers ?? {});
        const body = o.body === undefined ? undefined : typeof o.body === 'string' ? o.body : JSON.stringify(o.body);
        return withDeadline(fetch(srv.mcpUrl, { method, headers, body, signal: o.signal }), o.ms ?? 60000, `${method} ${srv.mcpUrl}`);
    };

    // A new SDK client on its own MCP session: an object with client, transport, incoming,
    // outgoing, clientErrors, call, callOk, metrics, sessionId(), end() (DELETE, then close).
    srv.connect = async (o = {}) => {
        const conn = { label: o.label ?? `${label} client ${srv.conns.length + 1}`, pid: srv.pid, seen: srv.seen, exited: srv.exited };
        await connectHttpClient(conn, srv, o);
        return conn;
    };

    srv.stop = async () => {
        srv.closed = true;
        srv.track();
        const t0 = Date.now();
        if (!srv.exit) process.kill(srv.pid, 'SIGTERM');
        let ex = null;
        try {
            ex = await withDeadline(srv.exited.promise, 20000, `${label}: exit after SIGTERM`);
        } catch (e) {
            check(false, `${label}: exits within 20 s of SIGTERM`, e.message);
            process.kill(srv.pid, 'SIGKILL');
            await srv.exited.promise;
        }
        if (ex) {
            check(ex.code === 0 && ex.signal === null, `${label}: exits with status 0 on SIGTERM`, safeJson(ex));
            if (ex.at - t0 > 5000) note(`${label} took ${ex.at - t0} ms to exit after SIGTERM`);
        }
        await srv.checkNoneLeft('');
    };
    srv.close = async () => {
        if (srv.closed) return;
        srv.closed = true;
        srv.track();
        for (const c of srv.conns) await c.end();
        await srv.stop();
    };
    return srv;
}

// Connect an SDK client (StreamableHTTPClientTransport with the bearer token) to serve's MCP
// endpoint, filling target with what startServer's objects have; initialize and list the tools.
async function connectHttpClient(target, serve, o = {}) {
    const transport = new StreamableHTTPClientTransport(new URL(serve.mcpUrl), {
        requestInit: { headers: { Authorization: `Bearer ${o.token ?? serve.token}` } }, // o.token: a tenant's
    });
    const client = new Client({ name: 'cellblock-mcp-tests', version: '1.0.0' }, { capabilities: o.capabilities ?? {} });
    o.setup?.(client); // as startServer's opts.setup
    Object.assign(target, { transport, client, incoming: [], outgoing: [], clientErrors: [] });
    client.onerror = (e) => target.clientErrors.push({ at: Date.now(), message: e?.message ?? String(e) });
    const origStart = transport.start.bind(transport);
    transport.start = async () => {
        const r = await origStart();
        const onmessage = transport.onmessage;
        transport.onmessage = (msg, extra) => {
            target.incoming.push({ at: Date.now(), msg });
            onmessage?.(msg, extra);
        };
        return r;
    };
    const origSend = transport.send.bind(transport);
    transport.send = (msg, so) => {
        target.outgoing.push({ at: Date.now(), msg });
        return origSend(msg, so);
    };
    clientHelpers(target, client, target.label);
    target.sessionId = () => transport.sessionId;
    let ended = false;
    // End the MCP session (DELETE; a session the test ended already is fine), then the client.
    target.end = async () => {
        if (ended) return;
        ended = true;
        try {
            await withDeadline(transport.terminateSession(), 10000, `${target.label}: DELETE`);
        } catch {}
        await client.close().catch(() => {});
    };
    serve.conns.push(target);
    await withDeadline(client.connect(transport), 30000, `${target.label}: initialize`);
    target.track();
    if (o.listTools !== false) target.tools = (await withDeadline(client.listTools(), 30000, 'tools/list')).tools;
}

// startServer() over HTTP: startServe() plus one SDK client on the same object.
// The stdio scenarios over HTTP: one client per server, so the server's log lines are
// forwarded as over stdio (CELLBLOCK_MCP_HTTP_SERVER_LOG=1; off by default over HTTP).
async function startHttpServer(opts) {
    const srv = await startServe({ ...opts, env: { CELLBLOCK_MCP_HTTP_SERVER_LOG: '1', ...(opts.env ?? {}) } });
    await connectHttpClient(srv, srv, opts);
    return srv;
}

// ---- the raw client ------------------------------------------------------------------------

// A JSON-RPC 2.0 message as MCP allows it: a request, a notification, or a response.
export function jsonRpcShape(m) {
    if (!m || typeof m !== 'object' || Array.isArray(m)) return 'not an object';
    if (m.jsonrpc !== '2.0') return 'jsonrpc is not "2.0"';
    if (typeof m.method === 'string') {
        if ('result' in m || 'error' in m) return 'a request with result or error';
        if ('id' in m && typeof m.id !== 'string' && typeof m.id !== 'number') return 'a request id that is not a string or number';
        if ('params' in m && (typeof m.params !== 'object' || m.params === null)) return 'params not an object';
        return null;
    }
    if (!('id' in m)) return 'neither a method nor an id';
    if (m.id !== null && typeof m.id !== 'string' && typeof m.id !== 'number') return 'a response id of a bad type';
    if ('result' in m === 'error' in m) return 'a response needs exactly one of result and error';
    if ('result' in m && (typeof m.result !== 'object' || m.result === null)) return 'result is not an object';
    if ('error' in m) {
        const e = m.error;
        if (!e || !Number.isInteger(e.code) || typeof e.message !== 'string') return 'error lacks an integer code or a message';
    }
    return null;
}

// `cellblock mcp` on plain pipes. Every stdout line is parsed and its shape checked.
export function startRaw(opts = {}) {
    const label = opts.label ?? `raw server ${++serial}`;
    const env = withStateDir(opts.env);
    const proc = spawn(BIN, ['mcp', ...(opts.args ?? [])], { env: serverEnv(env), stdio: ['pipe', 'pipe', 'pipe'] });
    const err = stderrBuffer(label);
    proc.stderr.on('data', (c) => err.push(c));
    const raw = {
        label,
        proc,
        pid: proc.pid,
        env, // the overrides it started with (CELLBLOCK_STATE_DIR among them)
        messages: [], // {at, msg}
        badLines: [], // {line, why}
        exit: null,
        exited: deferred(),
        closed: false,
        seen: new Map(),
        stdoutEnded: false,
        waiters: [],
        stderr: () => err.text(),
        printStderr: () => err.print(),
    };
    servers.push(raw);
    proc.on('error', (e) => err.push(Buffer.from(`spawn error: ${e.message}\n`)));
    proc.stdin.on('error', () => {}); // EPIPE after an exit is reported through the exit checks
    proc.on('exit', (code, signal) => {
        raw.exit = { code, signal, at: Date.now() };
        raw.exited.resolve(raw.exit);
    });
    let pending = [];
    proc.stdout.on('data', (chunk) => {
        let start = 0;
        for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, start)) {
            pending.push(chunk.subarray(start, i));
            const line = Buffer.concat(pending).toString('utf8');
            pending = [];
            start = i + 1;
            onLine(line);
        }
        if (start < chunk.length) pending.push(chunk.subarray(start));
    });
    proc.stdout.on('end', () => {
        raw.stdoutEnded = true;
        if (pending.length) raw.badLines.push({ line: Buffer.concat(pending).toString('utf8').slice(0, 300), why: 'no newline at the end' });
    });
    function onLine(line) {
        let msg;
        try {
            msg = JSON.parse(line);
        } catch {
            raw.badLines.push({ line: line.slice(0, 300), why: 'not JSON' });
            return;
        }
        const why = jsonRpcShape(msg);
        if (why) raw.badLines.push({ line: line.slice(0, 300), why });
        const item = { at: Date.now(), msg };
        raw.messages.push(item);
        for (const w of raw.waiters.slice()) {
            if (w.pred(msg)) {
                raw.waiters.splice(raw.waiters.indexOf(w), 1);
                w.resolve(msg);
            }
        }
    }
    raw.send = (data) =>
        new Promise((resolve) => {
            const text = typeof data === 'string' ? data : JSON.stringify(data);
            if (proc.stdin.write(text.endsWith('\n') ? text : text + '\n')) resolve();
            else proc.stdin.once('drain', resolve);
        });
    // The first message (from index `from` on) matching pred.
    raw.waitFor = (pred, ms, what, from = 0) => {
        const hit = raw.messages.slice(from).find((x) => pred(x.msg));
        if (hit) return Promise.resolve(hit.msg);
        const d = deferred();
        const w = { pred, resolve: d.resolve };
        raw.waiters.push(w);
        return withDeadline(d.promise, ms, what).finally(() => {
            const i = raw.waiters.indexOf(w);
            if (i >= 0) raw.waiters.splice(i, 1);
        });
    };
    let nextId = 1000;
    raw.request = async (method, params, o = {}) => {
        const id = o.id ?? nextId++;
        const msg = { jsonrpc: '2.0', id, method };
        if (params !== undefined) msg.params = params;
        await raw.send(msg);
        return raw.waitFor((m) => m.id === id && ('result' in m || 'error' in m), o.ms ?? 30000, `${label}: answer to ${method} (id ${id})`);
    };
    raw.initialize = async (version = '2025-11-25') => {
        const r = await raw.request('initialize', {
            protocolVersion: version,
            capabilities: {},
            clientInfo: { name: 'cellblock-raw-test', version: '1.0.0' },
        });
        await raw.send({ jsonrpc: '2.0', method: 'notifications/initialized' });
        return r;
    };
    raw.track = () => {
        if (raw.exit) return;
        for (const [p, s] of descendants(raw.pid)) raw.seen.set(p, s);
    };
    raw.close = async (o = {}) => {
        if (raw.closed) return raw.exit;
        raw.closed = true;
        raw.track();
        proc.stdin.end();
        let ex = null;
        try {
            ex = await withDeadline(raw.exited.promise, o.ms ?? 20000, `${label}: exit after stdin closed`);
        } catch (e) {
            check(false, `${label}: exits within ${(o.ms ?? 20000) / 1000} s of stdin closing`, e.message);
            proc.kill('SIGKILL');
            await raw.exited.promise;
        }
        if (ex && o.expectStatus !== undefined)
            check(ex.code === o.expectStatus && ex.signal === null, `${label}: exits with status ${o.expectStatus} when stdin closes`, safeJson(ex));
        const left = () => [...raw.seen].filter(([p, s]) => alive(p, s)).map(([p]) => p);
        try {
            await waitUntil(() => left().length === 0, 10000, 'processes gone');
        } catch {
            check(false, `${label}: no descendant process is left`, left().map((p) => `${p}: ${cmdline(p)}`).join('; '));
        }
        return ex;
    };
    return raw;
}

// Run a program to its end with a deadline: {code, signal, stdout, stderr}. Killed at the deadline.
export function runProgram(cmd, args, o = {}) {
    let child = null;
    const done = new Promise((resolve) => {
        child = spawn(cmd, args, { env: o.env ?? process.env, cwd: o.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
        const out = [], errs = [];
        child.stdout.on('data', (c) => out.push(c));
        child.stderr.on('data', (c) => errs.push(c));
        child.on('error', (e) => errs.push(Buffer.from(String(e))));
        child.on('close', (code, signal) =>
            resolve({ code, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(errs).toString('utf8') }));
        child.stdin.on('error', () => {});
        child.stdin.end(o.input ?? '');
    });
    return withDeadline(done, o.ms ?? 60000, `${cmd} ${args.join(' ').slice(0, 80)}`).catch((e) => {
        try {
            child?.kill('SIGKILL');
        } catch {}
        throw e;
    });
}
