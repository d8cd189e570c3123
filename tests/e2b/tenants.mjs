// tenants.mjs: E2B's API and tenants (docs/security.md, "Tenants"), with E2B's own SDK (npm
// e2b) and raw requests against one `cellblock serve --tokens FILE` (a tokens file written
// 0600 in a temporary directory: alice and bob, each a tenant, plus the server's own token,
// the admin's).
//
// E2B_API_KEY = a tenant's token works for that tenant: what alice creates is hers. Alice's
// list shows only hers (and X-Total-Running counts only hers); the admin's shows all. Every
// route on one of bob's sandboxes (info, kill, timeout, connect, resume, metrics, logs, the
// metrics of many, the sandbox plane's envd and code interpreter) answers alice exactly as an
// unknown id does: same status, same body with the id swapped, also once bob's sandbox is gone
// (no "it is gone" for her). Bob's sandbox survives her tries. Port forwards: alice's key on
// bob's sandbox's port is answered as an unknown sandbox's; bob's traffic token (a capability)
// still opens it.
//
//   node tests/e2b/tenants.mjs build/bin/cellblock
//
// One server, two "base" sandboxes.
import http from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Sandbox, e2b, check, run, safeJson, section, startE2B, withDeadline } from './lib.mjs';

const MS = 60000; // bounds a hang; times nothing
const ALICE = `alice-${randomBytes(16).toString('hex')}`;
const BOB = `bob-${randomBytes(16).toString('hex')}`;
const UNKNOWN = 'e2b00000-0000-4000-8000-000000000000';

async function thrown(promise) {
    try {
        await promise;
        return null;
    } catch (e) {
        return e;
    }
}

// One raw request as a tenant: { status, text } with the id replaced by "ID".
async function as(srv, key, method, path, id, o = {}) {
    const r = await srv.raw(path, { method, auth: false, headers: { 'X-API-Key': key, ...(o.headers ?? {}) }, body: o.body });
    const text = await r.text();
    return { status: r.status, text: id ? text.split(id).join('ID') : text };
}

// GET with this Host on a fresh connection (Node's fetch cannot resolve *.localhost).
function forward(srv, host, path, headers) {
    const { port } = new URL(srv.url);
    return withDeadline(new Promise((resolve, reject) => {
        const req = http.request({ host: '127.0.0.1', port: Number(port), path, headers: { Host: host, Connection: 'close', ...headers } }, (res) => {
            let data = '';
            res.setEncoding('utf8');
            res.on('data', (c) => { data += c; });
            res.on('end', () => resolve({ status: res.statusCode, text: data }));
            res.on('error', reject);
        });
        req.on('error', reject);
        req.end();
    }), MS, `GET ${host}${path}`);
}

const dir = mkdtempSync(join(tmpdir(), 'cb-tenants-'));
const tokens = join(dir, 'tokens');
writeFileSync(tokens, `# tenants.mjs\nalice ${ALICE}\nbob ${BOB}\n`, { mode: 0o600 });
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

await run(async () => {
    const srv = await startE2B({ label: 'e2b tenants server', args: ['--tokens', tokens] });
    const serverPort = new URL(srv.url).port;
    const admin = srv.e2b.apiKey;
    let a, b;

    await section("a tenant's token is its E2B_API_KEY", async () => {
        a = await withDeadline(Sandbox.create('base', { apiKey: ALICE, timeoutMs: 120_000 }), MS, 'Sandbox.create as alice');
        b = await withDeadline(Sandbox.create('base', { apiKey: BOB, timeoutMs: 120_000 }), MS, 'Sandbox.create as bob');
        check(a.sandboxId && b.sandboxId && a.sandboxId !== b.sandboxId, 'alice and bob each create a sandbox with their own token');
        const out = await withDeadline(a.commands.run('echo hers'), MS, "alice's command");
        check(out.stdout.trim() === 'hers', 'alice runs a command in hers', safeJson(out));
        const info = await Sandbox.getInfo(a.sandboxId, { apiKey: ALICE });
        check(info.sandboxId === a.sandboxId, 'alice reads her own info');
    });
    if (!a || !b) return;

    await section('lists', async () => {
        const mine = await Sandbox.list({ apiKey: ALICE }).nextItems();
        check(mine.length === 1 && mine[0].sandboxId === a.sandboxId, "alice's list: hers alone", safeJson(mine.map((s) => s.sandboxId)));
        const all = (await Sandbox.list({ apiKey: admin }).nextItems()).map((s) => s.sandboxId);
        check(all.includes(a.sandboxId) && all.includes(b.sandboxId), "the admin's list: both", safeJson(all));
        const r = await srv.raw('/e2b/v2/sandboxes', { auth: false, headers: { 'X-API-Key': ALICE } });
        await r.arrayBuffer();
        check(r.headers.get('x-total-running') === '1', 'X-Total-Running counts only hers', r.headers.get('x-total-running'));
        const many = await as(srv, ALICE, 'GET', `/e2b/sandboxes/metrics?sandbox_ids=${a.sandboxId},${b.sandboxId}`);
        const m = JSON.parse(many.text);
        check(many.status === 200 && m.sandboxes?.[a.sandboxId] && !m.sandboxes?.[b.sandboxId],
            "the metrics of many: hers, not bob's", many.text.slice(0, 300));
    });

    // Each route on bob's sandbox as alice, and on an unknown id: the same answer.
    const routes = (id) => [
        ['GET', `/e2b/sandboxes/${id}`], ['POST', `/e2b/sandboxes/${id}/timeout`, { timeout: 5 }],
        ['POST', `/e2b/v2/sandboxes/${id}/connect`, { timeout: 5 }], ['POST', `/e2b/sandboxes/${id}/connect`, { timeout: 5 }],
        ['POST', `/e2b/sandboxes/${id}/resume`, { timeout: 5 }], ['GET', `/e2b/sandboxes/${id}/metrics`],
        ['GET', `/e2b/sandboxes/${id}/logs`], ['GET', `/e2b/v2/sandboxes/${id}/logs`], ['DELETE', `/e2b/sandboxes/${id}`],
    ];
    const plane = [['49983', '/health'], ['49983', '/files?path=x'], ['49999', '/contexts'], ['49983', '/process.Process/List']];
    async function sameAsUnknown(what) {
        const differ = [];
        const theirs = routes(b.sandboxId), unknown = routes(UNKNOWN);
        for (let i = 0; i < theirs.length; i++) {
            const [method, path, body] = theirs[i];
            const got = await as(srv, ALICE, method, path, b.sandboxId, { body });
            const want = await as(srv, ALICE, unknown[i][0], unknown[i][1], UNKNOWN, { body });
            if (got.status !== want.status || got.text !== want.text || got.status !== 404)
                differ.push({ route: `${method} ${path}`, got, want });
        }
        for (const [port, path] of plane) {
            const h = (id) => ({ headers: { 'E2b-Sandbox-Id': id, 'E2b-Sandbox-Port': port, 'Content-Type': 'application/json' }, body: path.startsWith('/process') ? {} : undefined });
            const got = await as(srv, ALICE, path.startsWith('/process') ? 'POST' : 'GET', `/e2b/sandbox${path}`, b.sandboxId, h(b.sandboxId));
            const want = await as(srv, ALICE, path.startsWith('/process') ? 'POST' : 'GET', `/e2b/sandbox${path}`, UNKNOWN, h(UNKNOWN));
            if (got.status !== want.status || got.text !== want.text)
                differ.push({ route: `sandbox plane ${port} ${path}`, got, want });
        }
        check(differ.length === 0, `${what}: every route answers alice exactly as for an unknown id (${routes('x').length} control routes, ${plane.length} sandbox-plane ones)`, safeJson(differ));
    }

    await section("bob's sandbox, asked for by alice", async () => {
        await sameAsUnknown("bob's running sandbox");
        for (const [what, p] of [
            ['getInfo', () => Sandbox.getInfo(b.sandboxId, { apiKey: ALICE })],
            ['setTimeout', () => Sandbox.setTimeout(b.sandboxId, 10_000, { apiKey: ALICE })],
            ['connect', () => Sandbox.connect(b.sandboxId, { apiKey: ALICE })],
            ['getMetrics', () => Sandbox.getMetrics(b.sandboxId, { apiKey: ALICE })],
        ]) {
            const e = await thrown(p());
            check(e instanceof e2b.SandboxNotFoundError, `the SDK's ${what} of bob's sandbox as alice: SandboxNotFoundError`, `${e?.constructor?.name}: ${e?.message}`);
        }
        check((await Sandbox.kill(b.sandboxId, { apiKey: ALICE })) === false, "Sandbox.kill of bob's sandbox as alice: false");
        const still = await Sandbox.getInfo(b.sandboxId, { apiKey: BOB });
        check(still.sandboxId === b.sandboxId && still.state === 'running', "bob's sandbox still runs after alice's tries", safeJson(still));
        const out = await withDeadline(b.commands.run('echo his'), MS, "bob's command");
        check(out.stdout.trim() === 'his', 'bob still runs commands in his', safeJson(out));
        const theAdmin = await Sandbox.getInfo(b.sandboxId, { apiKey: admin });
        check(theAdmin.sandboxId === b.sandboxId, "the admin reads bob's info");
    });

    await section('port forwards', async () => {
        const host = (id) => `8000-${id}.localhost:${serverPort}`;
        const strip = (r, id) => ({ status: r.status, text: r.text.split(id).join('ID') });
        const hers = strip(await forward(srv, host(b.sandboxId), '/x', { 'X-API-Key': ALICE }), b.sandboxId);
        const none = strip(await forward(srv, host(UNKNOWN), '/x', { 'X-API-Key': ALICE }), UNKNOWN);
        check(hers.status === 404 && hers.status === none.status && hers.text === none.text,
            "alice's key on bob's port (host form): as an unknown sandbox", safeJson({ hers, none }));
        const path = (id) => `/sandboxes/${id}/ports/8000/x`;
        const p1 = strip(await forward(srv, `127.0.0.1:${serverPort}`, path(b.sandboxId), { Authorization: `Bearer ${ALICE}` }), b.sandboxId);
        const p2 = strip(await forward(srv, `127.0.0.1:${serverPort}`, path(UNKNOWN), { Authorization: `Bearer ${ALICE}` }), UNKNOWN);
        check(p1.status === 404 && p1.text === p2.text, "alice's token on bob's port (path form): as an unknown sandbox", safeJson({ p1, p2 }));
        const his = await forward(srv, host(b.sandboxId), '/x', { 'X-API-Key': BOB });
        check(his.status === 502, "bob's key reaches his port (nothing listens: 502)", safeJson(his));
        const cap = await forward(srv, host(b.sandboxId), '/x', { 'E2B-Traffic-Access-Token': b.trafficAccessToken });
        check(cap.status === 502, "bob's traffic token is a capability: it opens the port too (502: nothing listens)", safeJson(cap));
    });

    await section("bob's sandbox, gone", async () => {
        check((await Sandbox.kill(b.sandboxId, { apiKey: BOB })) === true, 'bob kills his sandbox');
        await sameAsUnknown("bob's killed sandbox");
        const his = await as(srv, BOB, 'GET', `/e2b/sandboxes/${b.sandboxId}`);
        check(his.status === 404 && /gone/.test(his.text), 'bob is told his sandbox is gone', his.text);
        check((await Sandbox.kill(a.sandboxId, { apiKey: ALICE })) === true, 'alice kills hers');
    });
});
