// network.mjs: network policies end to end, through the MCP SDK client over stdio.
//
// The test serves HTTP on the HOST at 127.0.0.2:PORT (127.0.0.2, not 127.0.0.1: inside a sandbox
// 127.0.0.1 is the sandbox's own loopback, and it is in NO_PROXY) and allow-lists exactly
// "127.0.0.2:PORT" (loopback is refused unless an entry names the address). Every byte stays on
// loopback. Checked from inside (command_execute):
// - with an allow list: the proxy settings are in the environment; curl (plain HTTP, and a
//   CONNECT tunnel) and Python's urllib get the page through the proxy; a port not allowed gets
//   the proxy's 403 naming the policy, and so does a name (the proxy refuses it before resolving);
//   sandbox_info shows the policy, sandbox_metrics' totals match what was done, sandbox_logs has
//   the refusal;
// - always: no direct socket reaches the host (connect to 127.0.0.2:PORT from inside fails), no
//   DNS (getaddrinfo of a name not in /etc/hosts fails at once);
// - pip, npm, git, cargo and wget inside use the proxy without being told (the environment);
// - with none (the default): no proxy (127.0.0.1:3128 refused), no proxy variables;
// - one sandbox cannot reach another's server through the proxy (loopback refused, even with
//   "all");
// - ask: a client that handles elicitation: decline -> 403; accept (remember) -> the page; a
//   client without elicitation -> refused at once;
// - bad network specs: isError naming the problem, no sandbox made; a bad CELLBLOCK_NETWORK
//   stops the server at start with the reason.
import { createServer } from 'node:http';

import {
    BIN, brief, check, run, runProgram, safeJson, sandboxLogs, sc, section, serverEnv, startServer,
    withDeadline,
} from './lib.mjs';

const types = await import('@modelcontextprotocol/sdk/types.js');
const { ElicitRequestSchema } = types;

const PAGE = 'hello from the host, through the proxy';

// The host's HTTP server on 127.0.0.2, and a second port that no policy allows.
async function serve(host) {
    const hits = [];
    const server = createServer((req, res) => {
        hits.push(req.url);
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end(PAGE);
    });
    await new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, host, resolve);
    });
    return { server, port: server.address().port, hits };
}

const sh = async (srv, sandbox_id, command, timeout_s = 20) => {
    const r = await srv.call('command_execute', { sandbox_id, command, timeout_s });
    return { r, out: sc(r).stdout ?? '', err: sc(r).stderr ?? '', code: sc(r).exit_code };
};

// Python one-liners run inside.
const pyGet = (url) =>
    `python3 -c "import urllib.request,sys
try:
    print(urllib.request.urlopen('${url}', timeout=10).read().decode())
except urllib.error.HTTPError as e:
    print('HTTP', e.code, e.read().decode()); sys.exit(3)
except Exception as e:
    print('ERR', e); sys.exit(4)"`;
const pyConnect = (host, port) =>
    `python3 -c "import socket,sys
s=socket.socket(); s.settimeout(5)
try:
    s.connect(('${host}', ${port})); print('CONNECTED')
except OSError as e:
    print('REFUSED', e.errno, e)"`;

await run(async () => {
    const web = await serve('127.0.0.2');
    const other = await serve('127.0.0.2'); // never allowed
    const URL = `http://127.0.0.2:${web.port}/page`;

    await section('a bad CELLBLOCK_NETWORK stops the server at start', async () => {
        const r = await runProgram(BIN, ['mcp'], { env: serverEnv({ CELLBLOCK_NETWORK: 'allow=;nonsense' }), ms: 20000 });
        check(r.code === 2 && /CELLBLOCK_NETWORK/.test(r.stderr) && /nonsense/.test(r.stderr),
            'exit status 2, and stderr names the variable and the bad part', safeJson({ code: r.code, stderr: r.stderr.slice(0, 300) }));
    });

    const srv = await startServer({ label: 'network', env: { CELLBLOCK_POOL: 'python=0' } });

    await section('bad network specs are refused and make nothing', async () => {
        const before = sc(await srv.callOk('sandbox_list', {})).sandboxes.length;
        for (const [spec, why] of [
            ['bogus-preset', /bogus-preset/],
            [{ allow: ['exa mple.com'] }, /exa mple\.com/],
            [{ allow: 'pypi.org' }, /allow/],
            [{ alow: ['pypi.org'] }, /alow/],
            [5, /network must be/],
        ]) {
            const r = await srv.call('sandbox_create', { network: spec });
            check(r.isError === true && why.test(JSON.stringify(r.content)),
                `network ${safeJson(spec)} -> isError naming the problem`, brief(r));
        }
        const after = sc(await srv.callOk('sandbox_list', {})).sandboxes.length;
        check(after === before, 'no sandbox was made by them', `${before} -> ${after}`);
    });

    // The sandboxes of the sections below, made at once (their kernels start in parallel).
    const [allowId, noneId, allId, askId] = (await Promise.all([
        srv.callOk('sandbox_create', { network: { allow: [`127.0.0.2:${web.port}`] } }),
        srv.callOk('sandbox_create', {}),
        srv.callOk('sandbox_create', { network: 'all' }),
        srv.callOk('sandbox_create', { network: 'ask' }),
    ])).map((r) => sc(r).sandbox_id);

    await section('an allow list: the page through the proxy, nothing else', async () => {
        const info = sc(await srv.callOk('sandbox_info', { sandbox_id: allowId }));
        check(info.network?.mode === 'allow' && JSON.stringify(info.network.allow).includes(`127.0.0.2:${web.port}`),
            'sandbox_info shows the policy', safeJson(info.network));

        const env = await sh(srv, allowId, 'env | grep -i -E "proxy|^GIT_CONFIG|^CARGO" | sort');
        for (const line of ['HTTP_PROXY=http://127.0.0.1:3128', 'http_proxy=http://127.0.0.1:3128',
            'HTTPS_PROXY=http://127.0.0.1:3128', 'ALL_PROXY=socks5h://127.0.0.1:3128',
            'NO_PROXY=localhost,127.0.0.1,::1', 'npm_config_https_proxy=http://127.0.0.1:3128',
            'CARGO_HTTP_PROXY=http://127.0.0.1:3128', 'GIT_CONFIG_KEY_0=http.proxy'])
            check(env.out.split('\n').includes(line), `the environment inside has ${line}`, env.out);

        const hitsBefore = web.hits.length;
        const curl = await sh(srv, allowId, `curl -sS --max-time 10 ${URL}`);
        check(curl.code === 0 && curl.out === PAGE, 'curl gets the page (plain HTTP through the proxy)', brief(curl.r));
        const tunnel = await sh(srv, allowId, `curl -sS --max-time 10 -p ${URL}`);
        check(tunnel.code === 0 && tunnel.out === PAGE, 'curl -p gets the page (a CONNECT tunnel)', brief(tunnel.r));
        const py = await sh(srv, allowId, pyGet(URL));
        check(py.code === 0 && py.out.trim() === PAGE, 'Python urllib gets the page', brief(py.r));
        check(web.hits.length === hitsBefore + 3, 'the host server saw the three requests', `${hitsBefore} -> ${web.hits.length}`);

        const denied = await sh(srv, allowId, pyGet(`http://127.0.0.2:${other.port}/`));
        check(denied.code === 3 && /HTTP 403/.test(denied.out) && /polic|allow/i.test(denied.out),
            'a port not allowed gets the 403 naming the policy', brief(denied.r));
        const name = await sh(srv, allowId, `curl -sS -o body -w '%{http_code}\\n' --max-time 10 http://not-allowed.example/; cat body`);
        check(/^403\n/.test(name.out) && /not-allowed\.example/.test(name.out), 'a name not allowed gets the 403 naming it', brief(name.r));
        check(other.hits.length === 0, 'nothing reached the port not allowed');

        const m = sc(await srv.callOk('sandbox_metrics', { sandbox_id: allowId })).network ?? {};
        check(m.connections === 5 && m.allowed === 3 && m.denied === 2 && m.open === 0,
            'sandbox_metrics: 5 connections, 3 allowed, 2 denied, none open', safeJson({ ...m, records: undefined }));
        check(m.bytes_in >= 3 * PAGE.length && m.bytes_out > 0, 'sandbox_metrics: bytes both ways', safeJson({ in: m.bytes_in, out: m.bytes_out }));
        check(Array.isArray(m.records) && m.records.length === 5 && m.records.filter((x) => x.allowed).length === 3,
            'sandbox_metrics lists the connection records', safeJson(m.records).slice(0, 600));
        const logs = await sandboxLogs(srv, allowId);
        check(logs.some((e) => e.source === 'network' && e.text.includes(String(other.port))),
            'the refusal shows in sandbox_logs (source network)', safeJson(logs.slice(-5)));
    });

    await section('no way around the proxy: no direct sockets, no DNS', async () => {
        const direct = await sh(srv, allowId, pyConnect('127.0.0.2', web.port));
        check(/^REFUSED/.test(direct.out), 'a direct connect to the host server from inside fails', brief(direct.r));
        const t0 = Date.now();
        const dns = await sh(srv, allowId, `python3 -c "import socket
try:
    print(socket.getaddrinfo('pypi.org', 443))
except socket.gaierror as e:
    print('NODNS', e)"`);
        check(/^NODNS/.test(dns.out), 'getaddrinfo of a name fails inside', brief(dns.r));
        check(Date.now() - t0 < 15000, 'and at once, not after a resolver timeout', `${Date.now() - t0} ms`);
    });

    await section('package tools inside go through the proxy', async () => {
        // Each fetches from the host server (which answers every path with the page, so each
        // then fails on what it got): the request reaching it proves the tool used the proxy, as
        // nothing else leads out. Go is not here: it never proxies a loopback address such as
        // 127.0.0.2 (net/http's rule), and only loopback is used by tests.
        const base = `http://127.0.0.2:${web.port}`;
        const tools = {
            git: [`git ls-remote ${base}/git/repo.git`, '/git/repo.git/info/refs'],
            npm: [`npm view --registry=${base}/npm/ left-pad --fetch-retries=0`, '/npm/left-pad'],
            pip: [`python3 -m pip download --no-deps --retries 0 --index-url ${base}/pip/simple/ foo -d /tmp/pip`, '/pip/simple/foo/'],
            wget: [`wget -q -O /dev/null --tries=1 ${base}/wget`, '/wget'],
            // A registry whose index is a git repository: cargo fetches it with libgit2 (cargo's
            // own HTTP, which reads CARGO_HTTP_PROXY).
            cargo: [`cd /tmp && rm -rf pkg && cargo new -q pkg && cd pkg && mkdir -p .cargo && printf '[registries.x]\\nindex = "${base}/cargo/index.git"\\n' > .cargo/config.toml && printf 'x1 = { version = "1", registry = "x" }\\n' >> Cargo.toml && CARGO_NET_RETRY=0 cargo fetch`, '/cargo/index.git/info/refs'],
        };
        // All at once (each in a subshell, its output to a file of its own), to keep the test short.
        const present = (await sh(srv, allowId, `for t in git npm python3 wget cargo; do command -v $t >/dev/null && echo $t; done`)).out.split('\n');
        const run = Object.entries(tools).filter(([tool]) => present.includes(tool === 'pip' ? 'python3' : tool));
        for (const [tool] of Object.entries(tools))
            if (!run.some(([t]) => t === tool)) check(true, `# SKIP ${tool}: not installed here`);
        const all = run.map(([tool, [cmd]]) => `( ${cmd} ) >/tmp/${tool}.log 2>&1 &`).join('\n') + '\nwait';
        await sh(srv, allowId, all, 60);
        for (const [tool, [, path]] of run) {
            const ok = web.hits.some((h) => h.startsWith(path));
            const log = ok ? '' : (await sh(srv, allowId, `tail -c 1500 /tmp/${tool}.log`)).out;
            check(ok, `${tool} reaches the host server through the proxy`, log);
        }
    });

    await section('none (the default): no proxy at all', async () => {
        const id = noneId;
        const info = sc(await srv.callOk('sandbox_info', { sandbox_id: id }));
        check(info.network?.mode === 'none', 'sandbox_info: mode none', safeJson(info.network));
        const env = await sh(srv, id, 'env | grep -ic proxy');
        check(env.out.trim() === '0', 'no proxy variables inside', brief(env.r));
        const proxy = await sh(srv, id, pyConnect('127.0.0.1', 3128));
        check(/^REFUSED/.test(proxy.out), 'connect to 127.0.0.1:3128 is refused', brief(proxy.r));
        const direct = await sh(srv, id, pyConnect('127.0.0.2', web.port));
        check(/^REFUSED/.test(direct.out), 'the host server is not reachable', brief(direct.r));
        const m = sc(await srv.callOk('sandbox_metrics', { sandbox_id: id })).network ?? {};
        check(m.connections === 0, 'sandbox_metrics: no connections', safeJson(m));
    });

    await section('one sandbox cannot reach another\'s server through the proxy', async () => {
        const [a, b] = [allId, noneId];
        await srv.callOk('command_execute', {
            sandbox_id: b, background: true,
            command: 'python3 -m http.server 8765 --bind 127.0.0.1 >/dev/null 2>&1',
        });
        const up = await sh(srv, b, `for i in $(seq 50); do curl -s -o /dev/null http://127.0.0.1:8765/ && echo UP && break; sleep 0.1; done`);
        check(up.out.trim() === 'UP', 'sandbox B serves on its own 127.0.0.1:8765', brief(up.r));
        for (const host of ['127.0.0.1', 'localhost']) {
            const r = await sh(srv, a, `curl -sS -o /dev/null -w '%{http_code}' --noproxy '' -x http://127.0.0.1:3128 http://${host}:8765/`);
            check(r.out === '403', `sandbox A ("all") through the proxy to ${host}:8765 gets 403`, brief(r.r));
        }
        const host = await sh(srv, a, pyGet(URL));
        check(host.code === 3 && /HTTP 403/.test(host.out), 'and "all" does not reach the host\'s loopback either', brief(host.r));
    });

    await section('ask, with a client that cannot be asked: refused', async () => {
        const id = askId;
        const t0 = Date.now();
        const r = await sh(srv, id, pyGet(URL));
        check(r.code === 3 && /HTTP 403/.test(r.out), 'the connection gets a 403', brief(r.r));
        check(Date.now() - t0 < 15000, 'at once (no waiting for an answer that cannot come)', `${Date.now() - t0} ms`);
        const logs = await sandboxLogs(srv, id);
        check(logs.some((e) => e.source === 'network' && /elicitation/.test(e.text)),
            'the log says the client could not be asked', safeJson(logs.slice(-4)));
    });
    for (const id of [allowId, noneId, allId, askId]) await srv.callOk('sandbox_delete', { sandbox_id: id });
    await srv.close();

    await section('ask, with a client that handles elicitation', async () => {
        const asked = [];
        let answer = { action: 'decline' };
        const asker = await startServer({
            label: 'network ask', env: { CELLBLOCK_POOL: 'python=0' },
            capabilities: { elicitation: {} },
            setup: (client) => client.setRequestHandler(ElicitRequestSchema, async (req) => {
                asked.push(req.params);
                return answer;
            }),
        });
        const id = sc(await asker.callOk('sandbox_create', { network: 'ask' })).sandbox_id;
        const no = await sh(asker, id, pyGet(URL));
        check(asked.length === 1 && asked[0].message.includes(`127.0.0.2 port ${web.port}`),
            'the client is asked, naming host and port', safeJson(asked));
        check(no.code === 3 && /HTTP 403/.test(no.out), 'declined: 403', brief(no.r));
        answer = { action: 'accept', content: { decision: 'allow', remember: true } };
        const yes = await sh(asker, id, pyGet(URL));
        check(yes.code === 0 && yes.out.trim() === PAGE, 'accepted: the page', brief(yes.r));
        const again = await sh(asker, id, pyGet(URL));
        check(again.code === 0 && asked.length === 2, 'remembered: the next connection is not asked about', `asked ${asked.length} times`);
        const logs = await sandboxLogs(asker, id);
        check(logs.some((e) => e.source === 'network' && /allowed by the client/.test(e.text)),
            'the log records the answer', safeJson(logs.slice(-4)));
        await asker.close();
    });

    web.server.close();
    other.server.close();
});
