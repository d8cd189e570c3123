// ports.mjs: E2B's ports (e2b/ports.c) through E2B's own SDK (npm e2b): a server started in a
// sandbox with commands.run, reached at sandbox.getHost(port) (the host form of our forwards,
// PORT-ID.localhost:SERVERPORT; Node's fetch cannot resolve *.localhost, so node:http sends to
// 127.0.0.1 with that Host) with the sandbox's traffic token, and by the path form with the
// API key. What must not pass: no token (401), another sandbox's token (401), a token with one
// byte changed (401), a wrong API key (401); the credentials never reach the app. A port nobody
// listens on answers 502; after the sandbox is killed its host answers 404. One server, two
// "base" sandboxes (the second only for its token).
import http from 'node:http';
import { Sandbox, check, run, safeJson, section, startE2B, waitUntil, withDeadline } from './lib.mjs';

// These bound a hang; they time nothing.
const MS = 30000;

// An app that answers every GET with what it received.
const APP = `
import http.server, json
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"path": self.path,
                           "headers": {k.lower(): v for k, v in self.headers.items()}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", 8000), H).serve_forever()
`;

// GET path on the server with this Host and these headers: { status, json }.
function get(srv, host, path, headers = {}) {
    const { port } = new URL(srv.url);
    return withDeadline(new Promise((resolve, reject) => {
        const req = http.request({ host: '127.0.0.1', port: Number(port), path, headers: { Host: host, Connection: 'close', ...headers } }, (res) => {
            let data = '';
            res.setEncoding('utf8');
            res.on('data', (c) => { data += c; });
            res.on('end', () => {
                let json = null;
                try { json = JSON.parse(data); } catch { /* not JSON */ }
                resolve({ status: res.statusCode, json, text: data.slice(0, 300) });
            });
            res.on('error', reject);
        });
        req.on('error', reject);
        req.end();
    }), MS, `GET ${host}${path}`);
}

const noCredentials = (j) => j && j.headers && !('e2b-traffic-access-token' in j.headers) &&
    !('x-api-key' in j.headers) && !('authorization' in j.headers);

await run(async () => {
    const srv = await startE2B({ label: 'e2b ports server' });
    const serverPort = new URL(srv.url).port;
    const a = await withDeadline(Sandbox.create('base'), MS, 'Sandbox.create A');
    const b = await withDeadline(Sandbox.create('base'), MS, 'Sandbox.create B');
    const host = a.getHost(8000);
    const tokenA = a.trafficAccessToken;
    const traffic = { 'E2B-Traffic-Access-Token': tokenA };

    await section('getHost', async () => {
        check(host === `8000-${a.sandboxId}.localhost:${serverPort}`, 'getHost(8000) is PORT-ID.localhost:SERVERPORT', host);
        check(typeof tokenA === 'string' && tokenA.length === 64 && tokenA !== b.trafficAccessToken,
            'each sandbox has its own traffic token', safeJson({ tokenA, tokenB: b.trafficAccessToken }));
        await withDeadline(a.commands.run('python3 -c "$APP"', { background: true, envs: { APP } }), MS, 'start the app');
        let last = null;
        await waitUntil(async () => {
            last = await get(srv, host, '/ready', traffic);
            return last.status === 200;
        }, MS, 'the app answers through getHost');
        const r = await get(srv, host, '/x?y=1', { ...traffic, 'X-Other': 'kept' });
        check(r.status === 200 && r.json?.path === '/x?y=1' && r.json?.headers?.['x-other'] === 'kept',
            'the host form with the traffic token reaches the app, path and headers as sent', safeJson(r));
        check(noCredentials(r.json), 'the traffic token is not passed to the app', safeJson(r.json?.headers));
    });

    await section('what does not pass', async () => {
        const none = await get(srv, host, '/x');
        check(none.status === 401, 'no token: 401', safeJson(none));
        const other = await get(srv, host, '/x', { 'E2B-Traffic-Access-Token': b.trafficAccessToken });
        check(other.status === 401, "another sandbox's traffic token: 401", safeJson(other));
        const flipped = tokenA.slice(0, -1) + (tokenA.endsWith('0') ? '1' : '0');
        const bad = await get(srv, host, '/x', { 'E2B-Traffic-Access-Token': flipped });
        check(bad.status === 401, 'a traffic token with one byte changed: 401', safeJson(bad));
        const key = await get(srv, host, '/x', { 'X-API-Key': srv.e2b.apiKey.slice(0, -1) + 'x' });
        check(key.status === 401, 'a wrong X-API-Key: 401', safeJson(key));
        const closed = await get(srv, a.getHost(8001), '/x', traffic);
        check(closed.status === 502, 'a port nobody listens on: 502', safeJson(closed));
    });

    await section('the path form with the API key', async () => {
        const r = await get(srv, `127.0.0.1:${serverPort}`, `/sandboxes/${a.sandboxId}/ports/8000/p?q=2`, { 'X-API-Key': srv.e2b.apiKey });
        check(r.status === 200 && r.json?.path === '/p?q=2', 'the path form with X-API-Key reaches the app', safeJson(r));
        check(noCredentials(r.json), 'the API key is not passed to the app', safeJson(r.json?.headers));
        const hostKey = await get(srv, host, '/k', { 'X-API-Key': srv.e2b.apiKey });
        check(hostKey.status === 200 && noCredentials(hostKey.json), 'the host form takes X-API-Key too', safeJson(hostKey));
    });

    await section('a killed sandbox', async () => {
        await withDeadline(a.kill(), MS, 'kill A');
        const r = await get(srv, host, '/x', traffic);
        check(r.status === 404, "a killed sandbox's port: 404", safeJson(r));
        await withDeadline(b.kill(), MS, 'kill B');
    });
});
