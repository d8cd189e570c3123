// sandboxes.mjs: E2B's control plane (e2b/api.c) through npm `e2b` as its README shows it:
// Sandbox.create with a template, metadata, envs and a timeout; Sandbox.list with a metadata
// filter and pages; getInfo; getMetrics; setTimeout and the sandbox really ending; kill;
// Sandbox.connect from a second client; pause refused with our sentence; and bad input: a wrong
// API key (401 on every control route and the sandbox routes), an unknown sandbox id
// (SandboxNotFoundError), malformed bodies (400, nothing created), and the server still serving.
//
//   node tests/e2b/sandboxes.mjs build/bin/cellblock
//
// One server, three short-lived python sandboxes.
import { startE2B, Sandbox, e2b, run, check, section, safeJson, waitUntil, withDeadline } from './lib.mjs';

const RUN = `sandboxes-${process.pid}`; // this run's metadata, so lists see only ours

async function thrown(promise) {
    try {
        await promise;
        return null;
    } catch (e) {
        return e;
    }
}

// Whether the server reads chunked request bodies: the SDK's control-plane calls (create,
// setTimeout, connect, pause) all send them. A POST to a route that takes none answers 404 when
// the body was read, 411 when it was refused.
async function takesChunkedBodies(srv) {
    const r = await fetch(`${srv.url}/e2b/health`, {
        method: 'POST', duplex: 'half', headers: { 'X-API-Key': srv.token, 'Content-Type': 'application/json' },
        body: new ReadableStream({ start(c) { c.enqueue(new TextEncoder().encode('{}')); c.close(); } }),
    });
    await r.arrayBuffer();
    return r.status !== 411;
}

await run(async () => {
    const srv = await startE2B();
    const port = new URL(srv.url).port;
    if (!(await takesChunkedBodies(srv))) {
        await srv.close();
        console.log('SKIP: this build answers chunked request bodies with 411, and every control-plane call of the SDK sends one ("http: chunked request bodies" lands them)');
        process.exit(77);
    }
    const json = async (r) => ({ status: r.status, body: await r.json().catch(() => null), headers: r.headers });

    let a, b; // two sandboxes of this run
    await section('create', async () => {
        a = await withDeadline(Sandbox.create({ metadata: { run: RUN, n: '1', 'k y': 'a&b=c+d é%20' }, envs: { GREETING: 'hello from envs' }, timeoutMs: 120_000, allowInternetAccess: true }), 60000, 'Sandbox.create()');
        check(typeof a.sandboxId === 'string' && a.sandboxId.length > 8, 'Sandbox.create() gives a sandbox id', a.sandboxId);
        check(a.getHost(8080) === `8080-${a.sandboxId}.localhost:${port}`, "getHost(port) is the port forward's host form PORT-ID.localhost:SERVERPORT", a.getHost(8080));
        b = await withDeadline(Sandbox.create('python', { metadata: { run: RUN, n: '2' }, timeoutMs: 60_000, network: { allowOut: ['pypi.org'], denyOut: ['0.0.0.0/0'] } }), 60000, "Sandbox.create('python')");
        check(b.sandboxId !== a.sandboxId, 'a second sandbox has its own id');
    });

    await section('getInfo', async () => {
        const info = await a.getInfo();
        check(info.sandboxId === a.sandboxId && info.templateId === 'python' && info.name === 'base', "getInfo: E2B's base template opens our python, its alias kept", safeJson(info));
        check(info.metadata?.run === RUN && info.metadata?.n === '1' && info.metadata?.['k y'] === 'a&b=c+d é%20', 'getInfo: the metadata given', safeJson(info.metadata));
        check(info.state === 'running' && info.envdVersion && info.cpuCount >= 1 && info.memoryMB > 0, 'getInfo: running, with envdVersion, cpuCount and memoryMB', safeJson(info));
        const life = info.endAt - info.startedAt;
        check(life >= 119_000 && life <= 121_000, 'getInfo: endAt is startedAt + the timeout asked (120 s)', `${life} ms`);
        const infoB = await Sandbox.getInfo(b.sandboxId);
        check(infoB.templateId === 'python' && infoB.metadata?.n === '2', "Sandbox.getInfo(id) of one created with our template's name", safeJson(infoB));
        check(info.allowInternetAccess === true && info.network?.allowOut?.includes('*'), 'allowInternetAccess true: the sandbox may reach public addresses', safeJson(info.network));
        check(infoB.allowInternetAccess !== true && infoB.network?.allowOut?.join() === 'pypi.org', "network allowOut with E2B's denyOut 0.0.0.0/0: only what allowOut names", safeJson({ allow: infoB.allowInternetAccess, network: infoB.network }));
    });

    await section('envs', async () => {
        const out = await a.commands.run('echo "$GREETING"');
        check(out.stdout.trim() === 'hello from envs', 'envs reach the sandbox\'s commands', safeJson(out));
    });

    await section('list', async () => {
        const ids = [];
        const pager = Sandbox.list({ query: { metadata: { run: RUN } }, limit: 1 });
        const first = await pager.nextItems();
        check(first.length === 1 && pager.hasNext, 'list with limit 1: one sandbox, and another page', safeJson({ first, hasNext: pager.hasNext }));
        ids.push(...first.map((s) => s.sandboxId));
        const second = await pager.nextItems();
        check(second.length === 1 && !pager.hasNext, 'list: the second page holds the other one, and it is the last', safeJson({ second, hasNext: pager.hasNext }));
        ids.push(...second.map((s) => s.sandboxId));
        check(ids.sort().join() === [a.sandboxId, b.sandboxId].sort().join(), 'list: the two pages together are both sandboxes of this run', safeJson(ids));
        check(first[0].sandboxId === b.sandboxId, 'list: newest first by default', safeJson(first));
        const one = await Sandbox.list({ query: { metadata: { run: RUN, n: '2' } } }).nextItems();
        check(one.length === 1 && one[0].sandboxId === b.sandboxId && one[0].state === 'running', 'list: a metadata filter of two keys finds only the one that has both', safeJson(one));
        const odd = await Sandbox.list({ query: { metadata: { 'k y': 'a&b=c+d é%20' } } }).nextItems();
        check(odd.length === 1 && odd[0].sandboxId === a.sandboxId, 'list: a metadata filter with a space, &, =, +, % and UTF-8 in it', safeJson(odd));
        const none = await Sandbox.list({ query: { metadata: { run: RUN, n: '3' } } }).nextItems();
        check(none.length === 0, 'list: a filter nothing matches gives an empty page', safeJson(none));
        const paused = await Sandbox.list({ query: { metadata: { run: RUN }, state: ['paused'] } }).nextItems();
        check(paused.length === 0, 'list: state paused gives none (cellblock never pauses)', safeJson(paused));
        const asc = await Sandbox.list({ query: { metadata: { run: RUN }, state: ['paused', 'running'] }, order: 'asc' }).nextItems();
        check(asc.length === 2 && asc[0].sandboxId === a.sandboxId, 'list: states paused and running, oldest first', safeJson(asc));
    });

    await section('connect from a second client, metrics, logs', async () => {
        const client = new e2b.E2B({ apiKey: srv.e2b.apiKey, apiUrl: srv.e2b.apiUrl, sandboxUrl: srv.e2b.sandboxUrl });
        const before = await a.getInfo();
        const same = await client.Sandbox.connect(a.sandboxId, { timeoutMs: 600_000 });
        check(same.sandboxId === a.sandboxId && (await same.isRunning()) === true, 'Sandbox.connect(id) from a second client: isRunning() is true');
        const after = await same.getInfo();
        check(after.endAt - before.endAt > 400_000, 'connect with a longer timeout extends the lifetime', `${before.endAt.toISOString()} -> ${after.endAt.toISOString()}`);
        const metrics = await same.getMetrics();
        const m = metrics[0];
        check(metrics.length === 1 && m.cpuCount >= 1 && m.memTotal > 0 && m.memUsed > 0 && m.diskTotal > 0 && m.timestamp instanceof Date && !isNaN(m.timestamp), 'getMetrics: one sample with CPU, memory and disk', safeJson(metrics));
        const logs = await json(await srv.raw(`/e2b/sandboxes/${a.sandboxId}/logs`));
        check(logs.status === 200 && logs.body?.logs?.some((l) => /created through E2B's API/.test(l.line)), "logs: the sandbox's log, E2B's shape", safeJson(logs.body));
        const v2 = await json(await srv.raw(`/e2b/v2/sandboxes/${a.sandboxId}/logs?direction=backward&limit=1`));
        check(v2.status === 200 && v2.body?.logs?.length === 1 && v2.body.logs[0].level === 'info', 'v2 logs: backward, limit 1', safeJson(v2.body));
    });

    await section('what cellblock cannot do', async () => {
        const e = await thrown(a.pause());
        check(e instanceof e2b.SandboxError && /cannot pause/.test(e.message), 'pause() throws a SandboxError saying cellblock cannot pause', `${e?.constructor?.name}: ${e?.message}`);
        const n = await thrown(a.updateNetwork({ allowOut: ['pypi.org'] }));
        check(n instanceof e2b.SandboxError && /network policy/.test(n.message), 'updateNetwork() throws saying the policy is given at creation', `${n?.constructor?.name}: ${n?.message}`);
        const t = await thrown(Sandbox.create('no-such-template'));
        check(t && /no-such-template/.test(t.message) && /python/.test(t.message), 'an unknown template: the error names it and lists ours', `${t?.constructor?.name}: ${t?.message}`);
        const v = await thrown(Sandbox.create({ volumeMounts: { '/data': 'vol' } }));
        check(v && /volumeMounts/.test(v.message), 'volumeMounts: refused, naming the field', `${v?.constructor?.name}: ${v?.message}`);
        const p = await thrown(Sandbox.create({ lifecycle: { onTimeout: 'pause' } }));
        check(p && /autoPause/.test(p.message), 'onTimeout pause: refused, naming autoPause', `${p?.constructor?.name}: ${p?.message}`);
    });

    await section('bad input', async () => {
        const count = async () => (await Sandbox.list({ query: { metadata: { run: RUN } } }).nextItems()).length;
        const n0 = await count();
        const bodies = [
            ['not JSON', 'nope'],
            ['an array', '[]'],
            ['deep nesting', '['.repeat(100000)],
            ['a timeout of the wrong type', { timeout: '300' }],
            ['a negative timeout', { timeout: -1 }],
            ['metadata that is not strings', { metadata: { a: 1 } }],
            ['envVars with a bad name', { envVars: { 'A=B': 'x' } }],
            ['a network that is not an object', { network: 'all' }],
            ['a bad allowOut entry', { network: { allowOut: ['a..b'] } }],
            ['templateID a number', { templateID: 7 }],
        ];
        for (const [what, body] of bodies) {
            const r = await json(await srv.raw('/e2b/v2/sandboxes', { body }));
            check(r.status === 400 && r.body?.code === 400 && typeof r.body?.message === 'string', `create with ${what}: 400 with a sentence`, safeJson(r.body));
        }
        check((await count()) === n0, 'no bad create made a sandbox', `${n0} before`);
        const t = await json(await srv.raw(`/e2b/sandboxes/${b.sandboxId}/timeout`, { body: '{"timeout":' }));
        check(t.status === 400, 'setTimeout with malformed JSON: 400', safeJson(t.body));
        for (const body of [{}, { timeout: null }, { timeout: 0 }, { timeout: 1.5 }, { timeout: 1e12 }]) {
            const r = await json(await srv.raw(`/e2b/sandboxes/${b.sandboxId}/timeout`, { body }));
            check(r.status === 400 && /timeout/.test(r.body?.message), `setTimeout with ${JSON.stringify(body)}: 400 naming timeout`, safeJson(r.body));
        }
        const c = await json(await srv.raw(`/e2b/v2/sandboxes/${b.sandboxId}/connect`, { body: { memory: 'yes' } }));
        check(c.status === 400, 'connect with memory not a boolean: 400', safeJson(c.body));
        const q = await json(await srv.raw('/e2b/v2/sandboxes?limit=0'));
        const tok = await json(await srv.raw('/e2b/v2/sandboxes?nextToken=garbage'));
        const md = await json(await srv.raw('/e2b/v2/sandboxes?metadata=' + encodeURIComponent('a=%zz')));
        const notUtf8 = await json(await srv.raw('/e2b/v2/sandboxes?metadata=' + encodeURIComponent('run=%ff')));
        check(notUtf8.status === 400, 'list with a metadata filter that is not UTF-8: 400, not a filter that matches everything', safeJson(notUtf8.body));
        check(q.status === 400 && tok.status === 400 && md.status === 400, 'list with limit 0, a nextToken not ours, a malformed metadata filter: 400', safeJson([q.body, tok.body, md.body]));
        const unknown = await json(await srv.raw('/e2b/v2/sandboxes/x/y/z'));
        check(unknown.status === 404 && /GET \/e2b\/v2\/sandboxes\/x\/y\/z/.test(unknown.body?.message), 'an unknown route: 404 naming the method and route', safeJson(unknown.body));

        // An unknown sandbox id, through the SDK.
        const id = 'no-such-sandbox';
        for (const [what, p] of [
            ['getInfo', () => Sandbox.getInfo(id)],
            ['setTimeout', () => Sandbox.setTimeout(id, 10_000)],
            ['connect', () => Sandbox.connect(id)],
            ['getMetrics', () => Sandbox.getMetrics(id)],
        ]) {
            const e = await thrown(p());
            check(e instanceof e2b.SandboxNotFoundError, `${what} of an unknown sandbox: SandboxNotFoundError`, `${e?.constructor?.name}: ${e?.message}`);
        }
        check((await Sandbox.kill(id)) === false, 'kill of an unknown sandbox: false');

        // A wrong API key: the SDK's AuthenticationError, and 401 from every route.
        const wrong = { apiKey: 'not-the-key' };
        const e = await thrown(Sandbox.list(wrong).nextItems());
        check(e instanceof e2b.AuthenticationError, 'Sandbox.list with a wrong key: AuthenticationError', `${e?.constructor?.name}: ${e?.message}`);
        const e2 = await thrown(Sandbox.getInfo(a.sandboxId, wrong));
        check(e2 instanceof e2b.AuthenticationError, 'getInfo with a wrong key: AuthenticationError', `${e2?.constructor?.name}: ${e2?.message}`);
        const id1 = a.sandboxId;
        const routes = [
            ['GET', '/e2b/health'], ['POST', '/e2b/v2/sandboxes'], ['GET', '/e2b/v2/sandboxes'], ['GET', '/e2b/sandboxes'],
            ['GET', `/e2b/sandboxes/${id1}`], ['DELETE', `/e2b/sandboxes/${id1}`], ['POST', `/e2b/sandboxes/${id1}/timeout`],
            ['POST', `/e2b/v2/sandboxes/${id1}/connect`], ['POST', `/e2b/sandboxes/${id1}/resume`], ['POST', `/e2b/sandboxes/${id1}/pause`],
            ['PUT', `/e2b/sandboxes/${id1}/network`], ['GET', `/e2b/sandboxes/${id1}/metrics`], ['GET', `/e2b/sandboxes/metrics?sandbox_ids=${id1}`],
            ['GET', `/e2b/sandboxes/${id1}/logs`], ['GET', `/e2b/v2/sandboxes/${id1}/logs`], ['GET', '/e2b/templates'], ['GET', '/e2b/no/such/route'],
        ];
        const statuses = [];
        for (const [method, path] of routes) {
            for (const headers of [{ 'X-API-Key': 'not-the-key' }, {}]) {
                const r = await srv.raw(path, { method, auth: false, headers, body: method === 'GET' || method === 'DELETE' ? undefined : { timeout: 5 } });
                await r.arrayBuffer();
                if (r.status !== 401) statuses.push(`${method} ${path} (${headers['X-API-Key'] ? 'wrong key' : 'no key'}): ${r.status}`);
            }
        }
        check(statuses.length === 0, `a wrong or missing key: 401 from all ${routes.length} control routes`, safeJson(statuses));
        const sandboxPlane = [];
        for (const [port, path] of [[49983, '/health'], [49983, '/files?path=x'], [49999, '/contexts'], [49983, '/process.Process/List']]) {
            const r = await srv.raw(`/e2b/sandbox${path}`, { auth: false, headers: { 'X-API-Key': 'not-the-key', 'X-Access-Token': 'not-a-token', 'E2b-Sandbox-Id': id1, 'E2b-Sandbox-Port': String(port) } });
            await r.arrayBuffer();
            if (r.status !== 401) sandboxPlane.push(`${path}: ${r.status}`);
        }
        check(sandboxPlane.length === 0, 'a wrong key or sandbox token: 401 from the sandbox routes too', safeJson(sandboxPlane));
        check((await a.getInfo()).state === 'running', 'the sandbox the refused calls named is untouched');
    });

    await section('setTimeout, then the sandbox ends', async () => {
        await b.setTimeout(2000);
        const info = await b.getInfo();
        check(info.endAt - Date.now() <= 2500, 'setTimeout(2 s): endAt within 2 s', info.endAt.toISOString());
        await waitUntil(async () => !(await Sandbox.list({ query: { metadata: { run: RUN, n: '2' } } }).nextItems()).length, 15000, 'the expired sandbox leaves the list');
        check(true, 'after its timeout the sandbox leaves Sandbox.list');
        check((await b.isRunning()) === false, 'isRunning() is false once it ended');
        const gone = await json(await srv.raw(`/e2b/sandboxes/${b.sandboxId}`));
        check(gone.status === 404 && /expired|lifetime/.test(gone.body?.message), 'getInfo of the expired sandbox: 404 saying why it went', safeJson(gone.body));
    });

    await section('kill', async () => {
        check((await a.kill()) === true, 'kill(): true');
        check((await a.kill()) === false, 'kill() again: false');
        const e = await thrown(a.getInfo());
        check(e instanceof e2b.SandboxNotFoundError, 'getInfo after kill: SandboxNotFoundError', `${e?.constructor?.name}: ${e?.message}`);
        const left = await Sandbox.list({ query: { metadata: { run: RUN } } }).nextItems();
        check(left.length === 0, 'none of this run is left in the list', safeJson(left));
    });

    await section('the server still serves', async () => {
        const h = await json(await srv.raw('/e2b/health'));
        check(h.status === 200, 'GET /e2b/health: 200', safeJson(h.body));
        const t = await json(await srv.raw('/e2b/templates'));
        const python = t.body?.find?.((x) => x.templateID === 'python');
        check(t.status === 200 && python?.aliases?.includes('base'), 'GET /e2b/templates: ours, python with the alias base', safeJson(t.body?.slice?.(0, 3)));
    });

    await srv.close();
});
