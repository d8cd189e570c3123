// rpc_ids.mjs: every request whose id can be read gets its answer with that id, even when the
// rest of the message is something the server's JSON parser refuses: a string holding \u0000, a
// lone UTF-16 surrogate, an integer beyond 64 bits. Over a raw stdio pipe and over raw HTTP
// POSTs to `cellblock serve`. An id that cannot be read (itself holding a lone surrogate, or a
// message that is not JSON at all) is still answered, with id null, as JSON-RPC says.
import { brief, check, run, safeJson, section, startRaw, startServe, textOf } from './lib.mjs';

// Lines written by hand: JSON.stringify would never produce most of them.
const CASES = [
    { what: 'a string holding \\u0000 in params', line: '{"jsonrpc":"2.0","id":41,"method":"tools/call","params":{"name":"code_execute","arguments":{"code":"a\\u0000b"}}}', id: 41 },
    { what: 'a lone high surrogate \\ud800 in params', line: '{"jsonrpc":"2.0","id":"s-42","method":"ping","params":{"x":"\\ud800"}}', id: 's-42' },
    { what: 'a lone low surrogate \\udc00 before a proper pair', line: '{"jsonrpc":"2.0","method":"ping","params":{"x":"\\udc00\\ud83d\\ude00"},"id":43}', id: 43 },
    { what: 'an id holding \\u0000', line: '{"jsonrpc":"2.0","id":"a\\u0000b","method":"ping","params":{"x":"\\u0000"}}', id: 'a\u0000b' },
    { what: 'an id holding a proper surrogate pair, with \\ud800 elsewhere', line: '{"jsonrpc":"2.0","id":"p\\ud83d\\ude00","method":"ping","params":{"x":"\\ud800"}}', id: 'p\u{1F600}' },
    { what: 'an integer beyond 64 bits in params', line: '{"jsonrpc":"2.0","id":44,"method":"ping","params":{"n":123456789012345678901234567890}}', id: 44 },
    { what: 'an integer id of 2^64 (exact as a double)', line: '{"jsonrpc":"2.0","id":18446744073709551616,"method":"ping"}', id: 18446744073709551616 },
    { what: 'an integer id beyond 64 bits that a double only approximates', line: '{"jsonrpc":"2.0","id":123456789012345678901234567891,"method":"ping"}', id: 123456789012345678901234567891 },
    { what: 'a negative integer id beyond 64 bits', line: '{"jsonrpc":"2.0","id":-98765432109876543210,"method":"ping"}', id: -98765432109876543210 },
    // Not readable: answered with id null.
    { what: 'an id that itself holds a lone surrogate', line: '{"jsonrpc":"2.0","id":"x\\ud800","method":"ping"}', id: null },
    { what: 'an escaped backslash before "ud800" (no surrogate at all) with \\u0000 elsewhere', line: '{"jsonrpc":"2.0","id":"q\\\\ud800","method":"ping","params":{"x":"\\u0000"}}', id: 'q\\ud800' },
    { what: 'a line that is not JSON', line: '{"jsonrpc":"2.0","id":45,"method":', id: null },
];

await run(async () => {
    await section('stdio', async () => {
        const raw = startRaw({ label: 'raw server (ids)' });
        const init = await raw.initialize();
        check(init.result?.protocolVersion, 'initialize works', safeJson(init));
        for (const c of CASES) {
            const from = raw.messages.length;
            await raw.send(c.line);
            // Each answer is awaited in turn: the one after `from` is this line's.
            const m = await raw.waitFor((x) => 'error' in x || 'result' in x, 15000, `an answer to ${c.what}`, from).catch((e) => ({ none: e.message }));
            check(m.error && m.id === c.id, `stdio: ${c.what} is answered with an error and id ${safeJson(c.id)}`, safeJson(m));
            if (c.line.includes('\\u0000'))
                check(/\\u0000 \(NUL\)/.test(m.error?.message ?? '') && !/JSON_ALLOW_NUL/.test(m.error?.message ?? ''),
                    `stdio: ${c.what}: the message says a string holds \\u0000, in the client's terms`, safeJson(m));
        }
        // The session goes on serving.
        const pong = await raw.request('ping', {});
        check(pong.result && pong.id !== null, 'stdio: ping still answers afterwards', safeJson(pong));
        check(raw.badLines.length === 0, 'stdio: every stdout line is a JSON-RPC message', safeJson(raw.badLines.slice(0, 3)));
        await raw.close({ expectStatus: 0 });
    });

    await section('http', async () => {
        const srv = await startServe({ label: 'serve (ids)' });
        const V = '2025-11-25';
        const res = await srv.fetch({ body: { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: V, capabilities: {}, clientInfo: { name: 'ids', version: '1' } } } });
        const sid = res.headers.get('mcp-session-id');
        await res.arrayBuffer();
        check(res.status === 200 && sid, 'http: initialize gives a session', String(res.status));
        await (await srv.fetch({ sid, version: V, body: { jsonrpc: '2.0', method: 'notifications/initialized' } })).arrayBuffer();
        for (const c of CASES) {
            const r = await srv.fetch({ sid, version: V, body: c.line });
            const text = await r.text();
            let m;
            try {
                m = JSON.parse(text);
            } catch {
                m = { notJson: text.slice(0, 300) };
            }
            check(m.error && m.id === c.id, `http: ${c.what} is answered with an error and id ${safeJson(c.id)}`, `${r.status} ${safeJson(m)}`);
        }
        const r = await srv.fetch({ sid, version: V, body: { jsonrpc: '2.0', id: 99, method: 'ping' } });
        const pong = JSON.parse(await r.text());
        check(pong.id === 99 && pong.result, 'http: ping still answers afterwards', safeJson(pong));
        await (await srv.fetch({ method: 'DELETE', sid })).arrayBuffer();
        // And its kernels still run code (an SDK client on a new session).
        const conn = await srv.connect();
        const ran = await conn.call('code_execute', { code: 'print(6 * 7)' });
        check(!ran.isError && /42/.test(textOf(ran)), 'http: code_execute works afterwards', brief(ran));
        await srv.close();
    });
});
