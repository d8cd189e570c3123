// bench_e2b.mjs: E2B's own SDK against `cellblock serve`, and cellblock's own APIs doing the same
// work on the same server in the same run. Prints one JSON object on stdout; progress on stderr.
//
//   node bench/bench_e2b.mjs --cellblock build/bin/cellblock [--n 300] [--creates 10] [--blocks B]
//                            [--settle-ms 2000]
//
// Three clients, each the real one:
//   e2b      @e2b/code-interpreter (tests/e2b/node_modules), exactly as its README shows:
//            Sandbox.create(), sbx.runCode('1+1'), sbx.kill();
//   mcp      MCP over Streamable HTTP with the MCP SDK (tests/mcp/node_modules): sandbox_create
//            (the template the code interpreter's sandboxes open, python-data), code_execute,
//            sandbox_delete;
//   jupyter  the Jupyter API: POST /api/kernels (the default kernelspec, in the Jupyter API's
//            own sandbox template, which is not python-data), an execute_request on
//            the channels WebSocket (`ws` from tests/mcp/node_modules) until its execute_reply
//            and the idle status, DELETE /api/kernels/{id}.
// Figures:
//   create_first_ms  sandbox (or kernel) create to the first result of `1+1`, --creates times
//                    each, the clients taking turns (the delete after each is not timed): e2b
//                    and mcp on python-data (what Sandbox.create() opens), e2b_base
//                    (Sandbox.create('base')), mcp_python and jupyter on python; after each, an
//                    untimed pause (--settle-ms, 2000) so the warm pool refills and every
//                    create starts from the same state;
//   e2b_http the same /execute request as runCode's with node:http on one keep-alive connection
//            (no SDK, no fetch): the server's E2B layer with a client as thin as the `ws` one;
//   roundtrip_ms     the round trip of `1+1` on a sandbox (kernel) made beforehand, --n times
//                    each, the three taking turns (one call each by default; --blocks B: B
//                    blocks of n/B calls) so drift on a busy machine touches all three alike;
//                    every answer is checked to be 2.
// Goal (issue 17): the E2B layer adds under 0.5 ms per call at p50 over cellblock's own API
// (the faster of MCP and the Jupyter API). Reported, never a failure. Exit status 1 only when a
// client could not be measured at all (its error is in the JSON too).
import { spawn } from 'node:child_process';
import http from 'node:http';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const GOAL_ADDED_P50_MS = 0.5;
const CODE = '1+1';

const { values: opt } = parseArgs({
    options: {
        cellblock: { type: 'string', default: 'build/bin/cellblock' },
        n: { type: 'string', default: process.env.BENCH_E2B_N ?? '300' },
        creates: { type: 'string', default: process.env.BENCH_E2B_CREATES ?? '10' },
        blocks: { type: 'string' },
        warmup: { type: 'string', default: '20' },
        'settle-ms': { type: 'string', default: process.env.BENCH_E2B_SETTLE_MS ?? '2000' },
    },
});
const N = Number(opt.n), CREATES = Number(opt.creates);
const BLOCKS = Math.max(1, Math.min(N, Number(opt.blocks ?? N))); // by default, one call each in turn
const WARMUP = Number(opt.warmup), SETTLE_MS = Number(opt['settle-ms']);
const log = (m) => process.stderr.write(`bench_e2b: ${m}\n`);

const mod = (p) => import(pathToFileURL(join(ROOT, p)).href);
let ci, McpClient, McpHttp, WebSocket;
try {
    ci = await mod('tests/e2b/node_modules/@e2b/code-interpreter/dist/index.mjs');
    ({ Client: McpClient } = await mod('tests/mcp/node_modules/@modelcontextprotocol/sdk/dist/esm/client/index.js'));
    ({ StreamableHTTPClientTransport: McpHttp } = await mod('tests/mcp/node_modules/@modelcontextprotocol/sdk/dist/esm/client/streamableHttp.js'));
    ({ default: WebSocket } = await mod('tests/mcp/node_modules/ws/wrapper.mjs'));
} catch (e) {
    log(`the SDKs are missing (scripts/install-deps.sh --test installs tests/e2b and tests/mcp): ${e.message}`);
    process.exit(1);
}

// ---- figures ---------------------------------------------------------------------------------

function pct(xs, p) {
    const s = [...xs].sort((a, b) => a - b);
    return s.length ? s[Math.min(s.length - 1, Math.round((p / 100) * (s.length - 1)))] : null;
}
const r3 = (x) => (x == null ? null : Math.round(x * 1000) / 1000);
function summary(xs) {
    if (!xs.length) return { n: 0 };
    return { n: xs.length, p50: r3(pct(xs, 50)), p90: r3(pct(xs, 90)), p99: r3(pct(xs, 99)),
        min: r3(Math.min(...xs)), mean: r3(xs.reduce((a, b) => a + b, 0) / xs.length) };
}

function deadline(promise, ms, what) {
    let t;
    return Promise.race([promise, new Promise((_, rej) => { t = setTimeout(() => rej(new Error(`${what}: nothing within ${ms} ms`)), ms); })])
        .finally(() => clearTimeout(t));
}

// ---- the server ------------------------------------------------------------------------------

async function startServe(bin) {
    const state = mkdtempSync(join(tmpdir(), 'cb-bench-e2b-'));
    const token = randomBytes(24).toString('hex');
    const proc = spawn(bin, ['serve', '--listen', '127.0.0.1:0'], {
        env: { ...process.env, CELLBLOCK_TOKEN: token, CELLBLOCK_STATE_DIR: state },
        stdio: ['ignore', 'ignore', 'pipe'],
    });
    let head = '', tail = '';
    const url = await deadline(new Promise((res, rej) => {
        proc.stderr.on('data', (c) => {
            const s = c.toString('utf8');
            tail = (tail + s).slice(-8000);
            if (head !== null) {
                head += s;
                const m = /listening on (http:\/\/[^\s/]+)/.exec(head);
                if (m) { head = null; res(m[1]); }
            }
        });
        proc.on('exit', (code, sig) => rej(new Error(`cellblock serve exited (${code}, ${sig}) before it listened: ${tail}`)));
    }), 60000, 'cellblock serve: "listening on"');
    const exited = new Promise((res) => proc.on('exit', res));
    return {
        url, token, tail: () => tail,
        async stop() {
            proc.kill('SIGTERM');
            await deadline(exited, 20000, 'cellblock serve: exit').catch(() => proc.kill('SIGKILL'));
            rmSync(state, { recursive: true, force: true });
        },
    };
}

// ---- the three clients -----------------------------------------------------------------------

// E2B: the code interpreter's Sandbox, as its README shows.
// template: undefined for the SDK's own (code-interpreter-v1, which opens python-data), or an
// alias ('base' opens python).
function e2bClient(template) {
    return {
        async create() {
            return template ? ci.Sandbox.create(template) : ci.Sandbox.create();
        },
        async run(sbx) {
            const ex = await sbx.runCode(CODE);
            if (ex.error || ex.text !== '2') throw new Error(`runCode(${CODE}): ${JSON.stringify(ex.error ?? ex.text)}`);
        },
        async destroy(sbx) {
            await sbx.kill();
        },
    };
}

// The same /execute call as runCode's, with node:http on one keep-alive connection instead of
// the SDK and fetch: the E2B layer's own cost, with a client as thin as the Jupyter line's.
function e2bHttpClient(srv) {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const { port } = new URL(srv.url);
    const body = JSON.stringify({ code: CODE });
    return {
        create: () => ci.Sandbox.create(),
        run: (sbx) => new Promise((resolve, reject) => {
            const headers = {
                'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body),
                'E2b-Sandbox-Id': sbx.sandboxId, 'E2b-Sandbox-Port': '49999',
                'X-Access-Token': sbx.envdAccessToken ?? sbx.trafficAccessToken,
            };
            const req = http.request({ host: '127.0.0.1', port, path: '/e2b/sandbox/execute', method: 'POST', headers, agent }, (res) => {
                let text = '';
                res.setEncoding('utf8');
                res.on('data', (c) => { text += c; });
                res.on('end', () => {
                    const lines = text.split('\n').filter(Boolean).map((l) => JSON.parse(l));
                    if (res.statusCode === 200 && lines.some((l) => l.type === 'result' && l.text === '2') && !lines.some((l) => l.type === 'error')) resolve();
                    else reject(new Error(`POST /execute: ${res.statusCode} ${text.slice(0, 300)}`));
                });
                res.on('error', reject);
            });
            req.on('error', reject);
            req.end(body);
        }),
        destroy: (sbx) => sbx.kill(),
    };
}

// MCP over Streamable HTTP: one session for the whole run.
async function mcpClient(srv) {
    const transport = new McpHttp(new URL(`${srv.url}/mcp`), { requestInit: { headers: { Authorization: `Bearer ${srv.token}` } } });
    const client = new McpClient({ name: 'bench-e2b', version: '1.0.0' }, { capabilities: {} });
    await deadline(client.connect(transport), 30000, 'MCP initialize');
    const call = async (name, args) => {
        const r = await client.callTool({ name, arguments: args }, undefined, { timeout: 120000 });
        if (r.isError) throw new Error(`${name}: ${JSON.stringify(r.content).slice(0, 400)}`);
        return r;
    };
    const client_ = (template) => ({
        async create() {
            const r = await call('sandbox_create', { template });
            return r.structuredContent.sandbox_id;
        },
        async run(id) {
            const r = await call('code_execute', { sandbox_id: id, code: CODE });
            const text = (r.content ?? []).filter((b) => b.type === 'text').map((b) => b.text).join('\n');
            if (r.structuredContent?.status !== 'ok' || !/\b2\b/.test(text)) throw new Error(`code_execute: ${JSON.stringify(r).slice(0, 400)}`);
        },
        async destroy(id) {
            await call('sandbox_delete', { sandbox_id: id });
        },
        close: () => client.close(),
    });
    return { pythonData: client_('python-data'), python: client_('python') };
}

// The Jupyter API: REST for the kernel, the channels WebSocket for execute_request.
async function jupyterClient(srv) {
    const rest = async (method, path, body) => {
        const r = await fetch(`${srv.url}${path}`, {
            method, headers: { Authorization: `token ${srv.token}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
            body: body ? JSON.stringify(body) : undefined,
        });
        const text = await r.text();
        return { status: r.status, json: text ? JSON.parse(text) : null };
    };
    const specs = await rest('GET', '/api/kernelspecs');
    const name = specs.json?.default;
    if (specs.status !== 200 || !name) throw new Error(`GET /api/kernelspecs: ${specs.status}`);

    // One open channels WebSocket: execute(code) resolves at execute_reply + idle.
    async function channels(kid) {
        const session = randomUUID();
        const ws = new WebSocket(`${srv.url.replace('http', 'ws')}/api/kernels/${kid}/channels?session_id=${session}`,
            { headers: { Authorization: `token ${srv.token}` } });
        await deadline(new Promise((res, rej) => { ws.once('open', res); ws.once('error', rej); }), 30000, 'channels WebSocket');
        const waiting = new Map(); // msg_id -> {reply, idle, resolve, reject}
        ws.on('message', (data, binary) => {
            if (binary) return;
            const m = JSON.parse(data.toString());
            const w = waiting.get(m.parent_header?.msg_id);
            if (!w) return;
            if (m.msg_type === 'execute_result') w.text = m.content?.data?.['text/plain'];
            if (m.msg_type === 'execute_reply') w.reply = m.content?.status;
            if (m.msg_type === 'status' && m.content?.execution_state === 'idle') w.idle = true;
            if (w.reply && w.idle) {
                waiting.delete(m.parent_header.msg_id);
                if (w.reply === 'ok' && w.text === '2') w.resolve();
                else w.reject(new Error(`execute_request: ${w.reply}, ${w.text}`));
            }
        });
        ws.on('close', () => { for (const w of waiting.values()) w.reject(new Error('the channels WebSocket closed')); });
        return {
            execute(code) {
                const msgId = randomUUID();
                const p = new Promise((resolve, reject) => waiting.set(msgId, { resolve, reject }));
                ws.send(JSON.stringify({
                    header: { msg_id: msgId, msg_type: 'execute_request', session, username: 'bench', version: '5.3', date: new Date().toISOString() },
                    parent_header: {}, metadata: {}, channel: 'shell', buffers: [],
                    content: { code, silent: false, store_history: true, user_expressions: {}, allow_stdin: false, stop_on_error: true },
                }));
                return deadline(p, 60000, 'execute_reply');
            },
            close: () => ws.close(),
        };
    }
    return {
        kernel: name,
        async create() {
            const r = await rest('POST', '/api/kernels', { name });
            if (r.status !== 201 || !r.json?.id) throw new Error(`POST /api/kernels: ${r.status} ${JSON.stringify(r.json)}`);
            const ch = await channels(r.json.id);
            return { id: r.json.id, ch };
        },
        run: (k) => k.ch.execute(CODE),
        async destroy(k) {
            k.ch.close();
            await rest('DELETE', `/api/kernels/${k.id}`);
        },
    };
}

// ---- the measurements ------------------------------------------------------------------------

async function timed(fn) {
    const t0 = performance.now();
    await fn();
    return performance.now() - t0;
}

async function main() {
    const srv = await startServe(resolve(opt.cellblock));
    process.env.E2B_API_URL = `${srv.url}/e2b`;
    process.env.E2B_SANDBOX_URL = `${srv.url}/e2b/sandbox`;
    process.env.E2B_API_KEY = srv.token;
    const names = ['e2b', 'e2b_http', 'mcp', 'jupyter'];
    const clients = {}, errors = {};
    const out = { name: 'e2b', code: CODE, n: N, creates: CREATES, blocks: BLOCKS, create_first_ms: {}, roundtrip_ms: {} };
    try {
        clients.e2b = e2bClient();
        clients.e2b_base = e2bClient('base');
        clients.e2b_http = e2bHttpClient(srv);
        try {
            const m = await mcpClient(srv);
            clients.mcp = m.pythonData;
            clients.mcp_python = m.python;
        } catch (e) {
            errors.mcp = errors.mcp_python = e.message;
        }
        try {
            clients.jupyter = await jupyterClient(srv);
        } catch (e) {
            errors.jupyter = e.message;
        }
        out.jupyter_kernel = clients.jupyter?.kernel ?? null;
        const live = () => names.filter((k) => clients[k] && !errors[k]);

        // Round trips on one sandbox (kernel) each, the clients taking turns. These sandboxes
        // are made first, while every connection is new (see the create loop below).
        const handles = {};
        for (const k of live()) {
            try {
                handles[k] = await clients[k].create();
                for (let i = 0; i < WARMUP; i++) await clients[k].run(handles[k]);
            } catch (e) {
                errors[k] = `round trips: ${e.message}`;
            }
        }
        const trips = Object.fromEntries(names.map((k) => [k, []]));
        const per = Math.max(1, Math.ceil(N / BLOCKS));
        log(`round trips of ${CODE}: ${N} each in ${BLOCKS} blocks`);
        for (let b = 0; b < BLOCKS; b++) {
            for (const k of live()) {
                if (!handles[k]) continue;
                try {
                    for (let i = 0; i < per && trips[k].length < N; i++) trips[k].push(await timed(() => clients[k].run(handles[k])));
                } catch (e) {
                    errors[k] = `round trips: ${e.message}`;
                    log(`${k}: ${errors[k]}`);
                }
            }
        }
        for (const k of names) out.roundtrip_ms[k] = summary(trips[k]);

        // Create to first result, the clients taking turns (the delete after each untimed). A
        // failed create is counted and the loop goes on: the figures are of those that worked.
        // python-data (what Sandbox.create() opens) for e2b and mcp; python (a warm pool's, and
        // the Jupyter API's template) for e2b_base, mcp_python and jupyter.
        const createNames = ['e2b', 'mcp', 'e2b_base', 'mcp_python', 'jupyter'];
        const creates = Object.fromEntries(createNames.map((k) => [k, []]));
        const failed = {};
        log(`create + first ${CODE}: ${CREATES} each`);
        for (let i = 0; i < CREATES; i++) {
            for (const k of createNames.filter((x) => clients[x] && !(errors[x] ?? '').startsWith('round trips'))) {
                const c = clients[k];
                let h = null;
                try {
                    const ms = await timed(async () => { h = await c.create(); await c.run(h); });
                    creates[k].push(ms);
                } catch (e) {
                    failed[k] = (failed[k] ?? 0) + 1;
                    errors[k] ??= `create + first ${CODE}: ${e.message}`;
                    if (process.env.BENCH_E2B_DEBUG) log(e.stack);
                    log(`${k}: create + first ${CODE}: ${e.message}`);
                }
                if (h) await c.destroy(h).catch((e) => log(`${k}: delete: ${e.message}`));
                // Untimed: the warm pool refills, so each create starts from the same state.
                await new Promise((r) => setTimeout(r, SETTLE_MS));
            }
        }
        for (const k of createNames) out.create_first_ms[k] = { ...summary(creates[k]), ...(failed[k] ? { failed: failed[k] } : {}) };
        out.create_templates = { e2b: 'python-data (Sandbox.create())', mcp: 'python-data', e2b_base: "python (Sandbox.create('base'))", mcp_python: 'python', jupyter: 'python (the Jupyter API\'s)' };

        for (const k of Object.keys(handles)) await clients[k].destroy(handles[k]).catch(() => {});
        await clients.mcp?.close?.().catch?.(() => {});
    } finally {
        await srv.stop();
    }

    // What the E2B layer adds over cellblock's own API (the faster of the two).
    const p50 = (k, what) => out[what][k]?.p50 ?? null;
    const ownBest = (what) => {
        const xs = ['mcp', 'jupyter'].map((k) => p50(k, what)).filter((x) => x != null);
        return xs.length ? Math.min(...xs) : null;
    };
    const added = (what) => (p50('e2b', what) != null && ownBest(what) != null ? r3(p50('e2b', what) - ownBest(what)) : null);
    const ratio = (a, b) => (a != null && b ? r3(a / b) : null);
    const diff = (a, b) => (a != null && b != null ? r3(a - b) : null);
    const cp = (k) => p50(k, 'create_first_ms');
    out.added_p50_ms = {
        roundtrip: added('roundtrip_ms'),
        roundtrip_over_mcp: diff(p50('e2b', 'roundtrip_ms'), p50('mcp', 'roundtrip_ms')),
        roundtrip_over_jupyter: diff(p50('e2b', 'roundtrip_ms'), p50('jupyter', 'roundtrip_ms')),
        roundtrip_http: p50('e2b_http', 'roundtrip_ms') != null && ownBest('roundtrip_ms') != null ? r3(p50('e2b_http', 'roundtrip_ms') - ownBest('roundtrip_ms')) : null,
        roundtrip_http_over_jupyter: diff(p50('e2b_http', 'roundtrip_ms'), p50('jupyter', 'roundtrip_ms')),
        sdk_and_fetch: diff(p50('e2b', 'roundtrip_ms'), p50('e2b_http', 'roundtrip_ms')),
        create_first_python_data_over_mcp: diff(cp('e2b'), cp('mcp')),
        create_first_python_over_mcp: diff(cp('e2b_base'), cp('mcp_python')),
        create_first_python_over_jupyter: diff(cp('e2b_base'), cp('jupyter')),
    };
    out.ratio_p50 = {
        roundtrip_e2b_mcp: ratio(p50('e2b', 'roundtrip_ms'), p50('mcp', 'roundtrip_ms')),
        roundtrip_e2b_jupyter: ratio(p50('e2b', 'roundtrip_ms'), p50('jupyter', 'roundtrip_ms')),
        create_first_python_data_e2b_mcp: ratio(cp('e2b'), cp('mcp')),
        create_first_python_e2b_mcp: ratio(cp('e2b_base'), cp('mcp_python')),
        create_first_python_e2b_jupyter: ratio(cp('e2b_base'), cp('jupyter')),
    };
    out.goal = `the E2B layer adds < ${GOAL_ADDED_P50_MS} ms per call at p50 over cellblock's own API (the faster of MCP and the Jupyter API), on the ${CODE} round trip`;
    out.goal_met = out.added_p50_ms.roundtrip == null ? null : out.added_p50_ms.roundtrip < GOAL_ADDED_P50_MS;
    // The same with the thin client (no SDK, no fetch): what the server's E2B layer itself adds.
    out.goal_met_http = out.added_p50_ms.roundtrip_http == null ? null : out.added_p50_ms.roundtrip_http < GOAL_ADDED_P50_MS;
    if (Object.keys(errors).length) out.errors = errors;
    out.versions = { node: process.version };
    process.stdout.write(JSON.stringify(out, null, 2) + '\n');
    const all = [...new Set([...names, ...Object.keys(out.create_first_ms)])];
    const measured = all.filter((k) => (!names.includes(k) || out.roundtrip_ms[k]?.n > 0) && (!(k in out.create_first_ms) || out.create_first_ms[k].n > 0));
    if (measured.length < all.length) {
        log(`not measured: ${all.filter((k) => !measured.includes(k)).map((k) => `${k} (${errors[k] ?? 'no figures'})`).join('; ')}`);
        log(`serve's last messages:\n${srv.tail()}`);
        return 1;
    }
    return 0;
}

main().then((rc) => process.exit(rc), (e) => { log(e.stack || String(e)); process.exit(1); });
