// tokens.mjs: the E2B surface's credentials (docs/security.md, "The E2B surface's credentials"),
// tried from outside with raw requests against one `cellblock serve`, then a second one.
//
// A sandbox's token (what POST /e2b/v2/sandboxes answers as envdAccessToken and
// trafficAccessToken: HMAC-SHA256 of the sandbox id under a key made when the server started)
// is a capability for that sandbox's plane alone: it reaches its own envd (GET /health on
// E2B_SANDBOX_URL with E2b-Sandbox-Id and port 49983: 204), in either header the SDKs send it
// in, and nothing else: not another sandbox, not the control plane, not /mcp or /api, not the
// sandbox plane without the E2b-Sandbox-Id header naming its sandbox. A token of the right
// length with one byte changed, a token for an id that is no sandbox, an empty header, a NUL or
// a newline inside the value (sent over a raw socket: fetch refuses to) are all refused, and the
// server keeps serving. The server's token in X-API-Key is the one token of every surface; a
// wrong X-API-Key is 401 everywhere. After a restart a token of the previous run is refused
// (401, not the 'not found' of a valid token naming a sandbox that is gone), though the server token
// and the state directory are the same.
import net from 'node:net';
import { check, note, run, section, startE2B, withDeadline } from './lib.mjs';

const ENVD = '49983';
// What a request that passed the credential check gets for a sandbox that is not there: 502 on
// envd's /health (as E2B's proxy answers it), 404 elsewhere. Never 401.
const NOT_THERE = [404, 502];

// Status of a request with exactly these headers (no server token unless given).
async function status(srv, path, headers, o = {}) {
    const r = await srv.raw(path, { auth: false, headers, method: o.method, body: o.body });
    await r.arrayBuffer();
    return r.status;
}

// The envd health check of sandbox id with these headers.
const envdHealth = (srv, id, headers) =>
    status(srv, '/e2b/sandbox/health', { ...(id === undefined ? {} : { 'E2b-Sandbox-Id': id }), 'E2b-Sandbox-Port': ENVD, ...headers });

// Bytes the client writes as they are (a NUL or a newline inside a header); the status line of
// the answer, or 0 when the server closed without one.
function rawStatus(url, bytes) {
    const { hostname, port } = new URL(url);
    return withDeadline(new Promise((resolve, reject) => {
        const sock = net.connect(Number(port), hostname);
        let got = '';
        sock.on('connect', () => sock.write(bytes));
        sock.on('data', (c) => {
            got += c.toString('latin1');
            const m = /^HTTP\/1\.[01] (\d{3})/.exec(got);
            if (m) {
                sock.destroy();
                resolve(Number(m[1]));
            }
        });
        sock.on('error', reject);
        sock.on('close', () => resolve(0));
    }), 15000, 'a raw request');
}

function rawRequest(srv, id, tokenBytes) {
    const host = new URL(srv.url).host;
    return Buffer.concat([
        Buffer.from(`GET /e2b/sandbox/health HTTP/1.1\r\nHost: ${host}\r\nE2b-Sandbox-Id: ${id}\r\nE2b-Sandbox-Port: ${ENVD}\r\nX-Access-Token: `),
        tokenBytes,
        Buffer.from('\r\nConnection: close\r\n\r\n'),
    ]);
}

async function createSandbox(srv) {
    const r = await srv.raw('/e2b/v2/sandboxes', { body: { templateID: 'base' } });
    const j = await r.json();
    check(r.status === 201 && typeof j.sandboxID === 'string' && /^[0-9a-f]{64}$/.test(j.envdAccessToken ?? ''),
        `POST /e2b/v2/sandboxes: 201 with a sandbox id and a 64-hex-digit envdAccessToken`, { status: r.status, j });
    check(j.trafficAccessToken === j.envdAccessToken, 'trafficAccessToken is the same token', j);
    return { id: j.sandboxID, token: j.envdAccessToken };
}

const MCP_INIT = {
    jsonrpc: '2.0', id: 1, method: 'initialize',
    params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'tokens', version: '1' } },
};
const MCP_HEADERS = { 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream' };

await run(async () => {
    const srv = await startE2B({ label: 'serve' });
    let A, B;
    await section('two sandboxes, two tokens', async () => {
        A = await createSandbox(srv);
        B = await createSandbox(srv);
        check(A.id !== B.id && A.token !== B.token, 'two sandboxes have different ids and tokens', { A: A.id, B: B.id });
        check(A.token !== srv.token && B.token !== srv.token, 'a sandbox token is not the server token');
    });
    if (!A || !B) return;

    await section("a sandbox token reaches its own sandbox's envd", async () => {
        check(await envdHealth(srv, A.id, { 'X-Access-Token': A.token }) === 204, "A's token in X-Access-Token: A's envd /health is 204");
        check(await envdHealth(srv, A.id, { 'E2B-Traffic-Access-Token': A.token }) === 204, "A's token in E2B-Traffic-Access-Token: 204 too");
        check(await envdHealth(srv, B.id, { 'X-Access-Token': B.token }) === 204, "B's token: B's envd /health is 204");
        const interp = (id, tok) => status(srv, '/e2b/sandbox/health', { 'E2b-Sandbox-Id': id, 'E2b-Sandbox-Port': '49999', 'X-Access-Token': tok });
        let s = await interp(A.id, A.token);
        check(s === 200, "A's token: A's code interpreter /health (port 49999) is 200", s);
        s = await interp(B.id, A.token);
        check(s === 401, "A's token: B's code interpreter /health is 401", s);
    });

    await section('and nothing else', async () => {
        let s = await envdHealth(srv, B.id, { 'X-Access-Token': A.token });
        check(s === 401, "A's token naming B (E2b-Sandbox-Id: B): 401", s);
        s = await envdHealth(srv, B.id, { 'E2B-Traffic-Access-Token': A.token });
        check(s === 401, "A's token naming B, as the traffic token: 401", s);
        s = await envdHealth(srv, undefined, { 'X-Access-Token': A.token });
        check(s === 401, "A's token without E2b-Sandbox-Id on /e2b/sandbox: 401", s);
        s = await envdHealth(srv, '', { 'X-Access-Token': A.token });
        check(s === 401, "A's token with an empty E2b-Sandbox-Id: 401", s);
        const sb = { 'E2b-Sandbox-Id': A.id, 'X-Access-Token': A.token };
        s = await status(srv, '/e2b/v2/sandboxes', { ...sb, 'Content-Type': 'application/json' }, { method: 'POST', body: '{"templateID":"base"}' });
        check(s === 401, "A's token on the control plane (POST /e2b/v2/sandboxes): 401", s);
        s = await status(srv, '/e2b/sandboxes', sb);
        check(s === 401, "A's token on the control plane (GET /e2b/sandboxes): 401", s);
        s = await status(srv, `/e2b/sandboxes/${A.id}`, sb, { method: 'DELETE' });
        check(s === 401, "A's token on the control plane (DELETE /e2b/sandboxes/A): 401", s);
        s = await status(srv, '/mcp', { ...sb, ...MCP_HEADERS }, { method: 'POST', body: JSON.stringify(MCP_INIT) });
        check(s === 401, "A's token on /mcp: 401", s);
        s = await status(srv, '/api/kernels', sb);
        check(s === 401, "A's token on /api/kernels: 401", s);
        s = await envdHealth(srv, A.id, { 'X-API-Key': A.token });
        check(s === 401, "A's token as X-API-Key (the server token's header): 401", s);
        s = await envdHealth(srv, A.id, { Authorization: `Bearer ${A.token}` });
        check(s === 401, "A's token as Authorization: Bearer: 401", s);
        s = await status(srv, '/api/kernels', { 'X-API-Key': A.token });
        check(s === 401, "A's token as X-API-Key on /api/kernels: 401", s);
    });

    await section('tokens that are not quite right', async () => {
        const last = A.token.at(-1) === '0' ? '1' : '0';
        let s = await envdHealth(srv, A.id, { 'X-Access-Token': A.token.slice(0, -1) + last });
        check(s === 401, 'the right length, the last digit changed: 401', s);
        const first = A.token[0] === '0' ? '1' : '0';
        s = await envdHealth(srv, A.id, { 'X-Access-Token': first + A.token.slice(1) });
        check(s === 401, 'the right length, the first digit changed: 401', s);
        s = await envdHealth(srv, A.id, { 'X-Access-Token': A.token.toUpperCase() });
        check(s === 401 || A.token === A.token.toUpperCase(), 'the token in upper case: 401', s);
        s = await envdHealth(srv, A.id, { 'X-Access-Token': A.token.slice(0, 63) });
        check(s === 401, 'one digit short: 401', s);
        s = await envdHealth(srv, A.id, { 'X-Access-Token': A.token + '0' });
        check(s === 401, 'one digit more: 401', s);
        s = await envdHealth(srv, A.id, { 'X-Access-Token': '' });
        check(s === 401, 'an empty X-Access-Token: 401', s);
        s = await envdHealth(srv, A.id, { 'E2B-Traffic-Access-Token': '' });
        check(s === 401, 'an empty E2B-Traffic-Access-Token: 401', s);
        s = await envdHealth(srv, 'not-a-sandbox', { 'X-Access-Token': A.token });
        check(s === 401, "A's token naming an id that is no sandbox: 401", s);
        s = await envdHealth(srv, 'not-a-sandbox', { 'X-API-Key': srv.token });
        check(NOT_THERE.includes(s), "the server token naming an id that is no sandbox: 'not found' (it passed; the sandbox is not there)", s);
        s = await envdHealth(srv, '../' + A.id, { 'X-Access-Token': A.token });
        check(s === 401, "A's token naming '../A': 401", s);

        // Bytes fetch will not send.
        const tok = Buffer.from(A.token);
        const cases = [
            ['a NUL in place of a digit', Buffer.concat([tok.subarray(0, 32), Buffer.from([0]), tok.subarray(33)])],
            ['the token then a NUL', Buffer.concat([tok, Buffer.from([0])])],
            ['the token cut by a NUL, then the rest', Buffer.concat([tok.subarray(0, 40), Buffer.from([0]), tok.subarray(40)])],
            ['a newline inside the token', Buffer.concat([tok.subarray(0, 32), Buffer.from('\n'), tok.subarray(32)])],
            ['a CR LF and a header inside the token', Buffer.concat([tok.subarray(0, 32), Buffer.from('\r\nX-Access-Token: '), tok])],
        ];
        for (const [what, bytes] of cases) {
            const st = await rawStatus(srv.url, rawRequest(srv, A.id, bytes));
            check(st !== 204 && (st === 0 || st >= 400), `${what}: refused (${st || 'closed'})`, st);
        }
        const st = await rawStatus(srv.url, rawRequest(srv, A.id, tok));
        check(st === 204, 'the same raw request with the token as it is: 204', st);
    });

    await section('the server token in X-API-Key is the one token of every surface', async () => {
        const key = { 'X-API-Key': srv.token };
        let s = await status(srv, '/api/kernels', key);
        check(s === 200, 'the server token in X-API-Key on /api/kernels: 200', s);
        s = await status(srv, '/mcp', { ...key, ...MCP_HEADERS }, { method: 'POST', body: JSON.stringify(MCP_INIT) });
        check(s === 200, 'the server token in X-API-Key on /mcp (initialize): 200', s);
        // POST /e2b/v2/sandboxes with it is how createSandbox made A and B.
        s = await status(srv, '/e2b/sandboxes', key);
        check(s !== 401 && s !== 403, 'the server token in X-API-Key on GET /e2b/sandboxes passes the check', s);
        s = await envdHealth(srv, A.id, key);
        check(s === 204, "the server token in X-API-Key on A's envd: 204", s);

        const wrong = srv.token.slice(0, -1) + (srv.token.at(-1) === '0' ? '1' : '0');
        for (const [what, path, headers, o] of [
            ['/api/kernels', '/api/kernels', {}, {}],
            ['/mcp', '/mcp', MCP_HEADERS, { method: 'POST', body: JSON.stringify(MCP_INIT) }],
            ['GET /e2b/sandboxes', '/e2b/sandboxes', {}, {}],
            ['POST /e2b/v2/sandboxes', '/e2b/v2/sandboxes', { 'Content-Type': 'application/json' }, { method: 'POST', body: '{"templateID":"base"}' }],
            ["A's envd /health", '/e2b/sandbox/health', { 'E2b-Sandbox-Id': A.id, 'E2b-Sandbox-Port': ENVD }, {}],
        ]) {
            s = await status(srv, path, { ...headers, 'X-API-Key': wrong }, o);
            check(s === 401, `X-API-Key with a wrong token on ${what}: 401`, s);
        }
        s = await status(srv, '/api/kernels', { 'X-API-Key': '' });
        check(s === 401, 'an empty X-API-Key: 401', s);
    });

    await section('a token of a previous run', async () => {
        await srv.close();
        // The same server token and state directory: only the run differs.
        const again = await startE2B({ label: 'serve again', token: srv.token, env: { CELLBLOCK_STATE_DIR: srv.env.CELLBLOCK_STATE_DIR } });
        let s = await envdHealth(again, A.id, { 'X-Access-Token': A.token });
        check(s === 401, "A's token from the previous run, naming A: 401", s);
        s = await envdHealth(again, A.id, { 'X-API-Key': again.token });
        check(NOT_THERE.includes(s), "the server token naming A: 'not found' (so the 401 was the token, not the sandbox)", s);
        const C = await createSandbox(again);
        s = await envdHealth(again, C.id, { 'X-Access-Token': C.token });
        check(s === 204, 'a token of this run works', s);
        if (C.id === A.id) {
            s = await envdHealth(again, C.id, { 'X-Access-Token': A.token });
            check(s === 401, 'the old token for the same id: 401', s);
        } else {
            note(`the new sandbox has a new id (${C.id}); the old token was checked against the old id`);
        }
    });
});
