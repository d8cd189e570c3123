// protocol.mjs: MCP and JSON-RPC as cellblock mcp speaks them.
//
// 1. The official SDK client: initialize (server info, 2025-11-25, capabilities), tools/list
//    (every tool, names, schemas that compile), ping, logging/setLevel then notifications/message.
// 2. A raw pipe: version negotiation, then every edge the SDK never produces: malformed lines,
//    unknown methods, invalid requests, unknown tools, bad arguments, a 50 MB line, requests
//    before initialize, notifications; stdout carries only JSON-RPC; end of stdin ends it (0).
import {
    ALL_TOOLS, LoggingMessageNotificationSchema, McpError, brief, check, deferred, note, run, safeJson, sc, section,
    startRaw, startServer, textOf, withDeadline,
} from './lib.mjs';

// Not a static import: lib.mjs must run first, to SKIP when node_modules is missing.
const { default: Ajv } = await import('ajv');

// A wait that may go unanswered: the failed check says so and the script goes on.
const soft = (p) => p.catch((e) => ({ noAnswer: e.message }));

const LEVELS = ['debug', 'info', 'notice', 'warning', 'error', 'critical', 'alert', 'emergency'];

await run(async () => {
    // ---- the SDK client --------------------------------------------------------------------
    await section('the SDK client', async () => {
    const srv = await startServer({ label: 'sdk server' });
    const { client } = srv;
    const info = client.getServerVersion();
    check(info?.name === 'cellblock', 'serverInfo.name is "cellblock"', safeJson(info));
    check(typeof info?.version === 'string' && /^\d+\.\d+/.test(info.version), 'serverInfo.version is a version string', safeJson(info));
    const initAnswer = srv.incoming.find((x) => x.msg.result?.protocolVersion)?.msg;
    check(initAnswer?.result?.protocolVersion === '2025-11-25', 'the SDK client (asking 2025-11-25) gets protocolVersion 2025-11-25',
        safeJson(initAnswer));
    const caps = client.getServerCapabilities() ?? {};
    check(caps.tools && typeof caps.tools === 'object', 'capabilities include tools', safeJson(caps));
    check(caps.logging && typeof caps.logging === 'object', 'capabilities include logging', safeJson(caps));

    const tools = srv.tools;
    const names = tools.map((t) => t.name);
    const missing = ALL_TOOLS.filter((n) => !names.includes(n));
    check(missing.length === 0, `tools/list has all ${ALL_TOOLS.length} tools`, `missing: ${missing.join(', ')}; got: ${names.join(', ')}`);
    check(new Set(names).size === names.length, 'tool names are unique', names.join(', '));
    const badNames = names.filter((n) => !/^[A-Za-z0-9_.-]{1,64}$/.test(n));
    check(badNames.length === 0, 'tool names match ^[A-Za-z0-9_.-]{1,64}$', badNames.join(', '));
    const ajv = new Ajv({ strict: false, allErrors: true });
    const schemaProblems = [];
    for (const t of tools) {
        if (typeof t.description !== 'string' || !t.description) schemaProblems.push(`${t.name}: no description`);
        for (const key of ['inputSchema', 'outputSchema']) {
            const s = t[key];
            if (!s) {
                schemaProblems.push(`${t.name}: no ${key}`);
                continue;
            }
            if (s.type !== 'object') schemaProblems.push(`${t.name}.${key}.type is ${safeJson(s.type)}, not "object"`);
            try {
                ajv.compile(s);
            } catch (e) {
                schemaProblems.push(`${t.name}.${key} does not compile: ${e.message}`);
            }
        }
    }
    check(schemaProblems.length === 0, 'every tool has a description and an inputSchema and outputSchema of type object that compile with ajv',
        schemaProblems.join('; '));
    const unvalidated = names.filter((n) => typeof client.getToolOutputValidator(n) !== 'function');
    check(unvalidated.length === 0, 'the SDK client holds an outputSchema validator for every tool (every structuredContent in these tests is checked)', unvalidated.join(', '));
    const codeExec = tools.find((t) => t.name === 'code_execute');
    check(codeExec?.inputSchema?.required?.includes('code') && codeExec?.inputSchema?.properties?.code?.type === 'string',
        'code_execute inputSchema requires code, a string', safeJson(codeExec?.inputSchema));

    const pong = await withDeadline(client.ping(), 10000, 'ping');
    check(pong && typeof pong === 'object', 'ping answers with an empty result', safeJson(pong));

    // Logging: nothing before logging/setLevel, messages after it.
    const logs = [];
    const firstLog = deferred();
    client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => {
        logs.push(n.params);
        firstLog.resolve(n.params);
    });
    const pre = await srv.call('code_execute', { code: '1 + 1' });
    check(!pre.isError && /2/.test(textOf(pre)), 'code_execute 1 + 1 works (default sandbox created)', brief(pre));
    const logsBefore = srv.incoming.filter((x) => x.msg.method === 'notifications/message').length;
    check(logsBefore === 0, 'no notifications/message before logging/setLevel', `${logsBefore} arrived`);
    await withDeadline(client.setLoggingLevel('debug'), 10000, 'logging/setLevel');
    check(true, 'logging/setLevel debug is accepted');
    const made = await srv.call('sandbox_create', {});
    check(!made.isError && typeof made.structuredContent?.sandbox_id === 'string', 'sandbox_create works after setLevel', brief(made));
    try {
        await withDeadline(firstLog.promise, 10000, 'a notifications/message');
        check(logs.length >= 1, 'notifications/message arrive after logging/setLevel debug and a sandbox_create', `${logs.length}`);
    } catch (e) {
        check(false, 'notifications/message arrive after logging/setLevel debug and a sandbox_create', e.message);
    }
    const badLogs = logs.filter((p) => !LEVELS.includes(p.level) || !('data' in p));
    check(logs.length > 0 && badLogs.length === 0, 'every notifications/message has an RFC 5424 level and data', safeJson(badLogs.slice(0, 3)));
    // setLevel error: debug and info messages stop.
    await withDeadline(client.setLoggingLevel('error'), 10000, 'logging/setLevel error');
    const n0 = logs.length;
    const made2 = await srv.call('sandbox_create', {});
    await srv.call('sandbox_delete', { sandbox_id: sc(made2).sandbox_id });
    await withDeadline(client.ping(), 10000, 'ping');
    const quiet = logs.slice(n0).filter((p) => ['debug', 'info', 'notice', 'warning'].includes(p.level));
    check(quiet.length === 0, 'after logging/setLevel error no debug/info/notice/warning messages arrive', safeJson(quiet.slice(0, 3)));
    try {
        await client.setLoggingLevel('loud');
        check(false, 'logging/setLevel with an unknown level is a JSON-RPC error');
    } catch (e) {
        check(e instanceof McpError && e.code === -32602, 'logging/setLevel with an unknown level is JSON-RPC error -32602', `${e.code} ${e.message}`);
    }

    // Unknown tool through the SDK: a JSON-RPC error, -32602.
    try {
        const r = await client.callTool({ name: 'no_such_tool', arguments: {} });
        check(false, 'tools/call of an unknown tool is a JSON-RPC error (SDK)', `got a result: ${brief(r)}`);
    } catch (e) {
        check(e instanceof McpError && e.code === -32602, 'tools/call of an unknown tool is JSON-RPC error -32602 (SDK)', `${e.code} ${e.message}`);
    }
    check(srv.clientErrors.length === 0, 'the SDK client saw no protocol error from the server', safeJson(srv.clientErrors));
    await srv.close();
    });

    // ---- the environment an MCP client gives by default ----------------------------------
    await section('the SDK default environment', async () => {
        const bare = await startServer({ label: 'bare-env server', bareEnv: true });
        const r = await bare.call('run_code', { code: 'print(6 * 7)' });
        check(!r.isError && /42/.test(textOf(r)), 'with only the SDK default environment (HOME, LOGNAME, PATH, SHELL, TERM, USER) run_code works', brief(r));
        await bare.close();
    });

    // ---- raw pipes: version negotiation ----------------------------------------------------
    for (const [asked, want] of [['2025-06-18', '2025-06-18'], ['2025-03-26', '2025-03-26'], ['2024-11-05', '2024-11-05'], ['1999-01-01', '2025-11-25']]) await section(`negotiation asking ${asked}`, async () => {
        const raw = startRaw({ label: `raw server (asks ${asked})` });
        try {
            const r = await raw.initialize(asked);
            check(r.result?.protocolVersion === want, `initialize asking ${asked} gets ${want}`, safeJson(r));
            check(r.result?.serverInfo?.name === 'cellblock', `initialize asking ${asked}: serverInfo.name cellblock`, safeJson(r));
            const p = await raw.request('ping', {});
            check(p.result && !p.error, `ping answers after initialize with ${asked}`, safeJson(p));
        } finally {
            await raw.close({ expectStatus: 0 });
        }
        check(raw.badLines.length === 0, `raw server (asks ${asked}): every stdout line is a JSON-RPC message`, safeJson(raw.badLines.slice(0, 3)));
    });

    // ---- raw pipes: the edges --------------------------------------------------------------
    await section('raw edges', async () => {
    const raw = startRaw({ label: 'raw server (edges)' });
    const errorOf = (m) => m?.error?.code;
    // Before initialize: a request is refused.
    const early = await soft(raw.request('tools/list', {}));
    check(early.error && !early.result, 'tools/list before initialize is a JSON-RPC error', safeJson(early));
    const init = await raw.initialize();
    check(init.result?.protocolVersion === '2025-11-25', 'initialize after a refused request works', safeJson(init));

    // Malformed JSON: -32700 with id null.
    let from = raw.messages.length;
    await raw.send('{"jsonrpc": "2.0", "id": 7, "method": "ping"');
    let m = await soft(raw.waitFor((x) => 'error' in x, 10000, 'an answer to a malformed line', from));
    check(errorOf(m) === -32700 && m.id === null, 'a malformed line gets error -32700 with id null', safeJson(m));

    // Unknown method: -32601.
    m = await soft(raw.request('no/such/method', {}));
    check(errorOf(m) === -32601, 'an unknown method gets error -32601', safeJson(m));

    // Not an object, or no jsonrpc "2.0": -32600.
    from = raw.messages.length;
    await raw.send('42');
    m = await soft(raw.waitFor((x) => 'error' in x, 10000, 'an answer to 42', from));
    check(errorOf(m) === -32600 && m.id === null, 'a line that is not an object (42) gets -32600 with id null', safeJson(m));
    from = raw.messages.length;
    await raw.send('[{"jsonrpc": "2.0", "id": 8, "method": "ping"}]');
    m = await soft(raw.waitFor((x) => 'error' in x || x.id === 8, 10000, 'an answer to a batch', from));
    check(errorOf(m) === -32600, 'a JSON array (batches are gone since 2025-06-18) gets -32600', safeJson(m));
    from = raw.messages.length;
    await raw.send({ id: 9, method: 'ping' });
    m = await soft(raw.waitFor((x) => x.id === 9 || ('error' in x && x.id === null), 10000, 'an answer to a request without jsonrpc', from));
    check(errorOf(m) === -32600, 'a request without jsonrpc "2.0" gets -32600', safeJson(m));
    from = raw.messages.length;
    await raw.send({ jsonrpc: '1.0', id: 10, method: 'ping' });
    m = await soft(raw.waitFor((x) => x.id === 10 || ('error' in x && x.id === null), 10000, 'an answer to jsonrpc 1.0', from));
    check(errorOf(m) === -32600, 'a request with jsonrpc "1.0" gets -32600', safeJson(m));
    from = raw.messages.length;
    await raw.send({ jsonrpc: '2.0', id: 11, method: 5 });
    m = await soft(raw.waitFor((x) => x.id === 11 || ('error' in x && x.id === null), 10000, 'an answer to a numeric method', from));
    check(errorOf(m) === -32600, 'a request whose method is a number gets -32600', safeJson(m));

    // tools/call: an unknown tool is a protocol error; bad arguments are a tool error.
    m = await soft(raw.request('tools/call', { name: 'no_such_tool', arguments: {} }));
    check(errorOf(m) === -32602, 'tools/call of an unknown tool gets JSON-RPC error -32602', safeJson(m));
    m = await soft(raw.request('tools/call', { name: 'code_execute', arguments: { code: 5 } }));
    const badText = (m.result?.content ?? []).map((b) => b.text ?? '').join(' ');
    check(m.result?.isError === true && /\bcode\b/.test(badText), 'code_execute with code: 5 is a result with isError and a message naming "code"', safeJson(m));
    m = await soft(raw.request('tools/call', { name: 'code_execute', arguments: {} }));
    const missText = (m.result?.content ?? []).map((b) => b.text ?? '').join(' ');
    check(m.result?.isError === true && /\bcode\b/.test(missText), 'code_execute without code is a result with isError naming "code"', safeJson(m));
    m = await soft(raw.request('tools/call', { name: 'file_download', arguments: { path: 'x', max_bytes: 'lots' } }));
    const mbText = (m.result?.content ?? []).map((b) => b.text ?? '').join(' ');
    check(m.result?.isError === true && /max_bytes/.test(mbText), 'file_download with max_bytes: "lots" is isError naming max_bytes', safeJson(m));
    m = await soft(raw.request('tools/call', { arguments: {} }));
    check(Boolean(m.error), 'tools/call without a name is a JSON-RPC error', safeJson(m));

    // A notification gets no reply (known and unknown ones); a ping after them fences.
    from = raw.messages.length;
    await raw.send({ jsonrpc: '2.0', method: 'notifications/initialized' });
    await raw.send({ jsonrpc: '2.0', method: 'notifications/no_such_thing', params: {} });
    await raw.send({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 123456, reason: 'nothing' } });
    const fence = await soft(raw.request('ping', {}, { id: 'fence-1' }));
    check(fence.result !== undefined, 'ping after notifications answers', safeJson(fence));
    const replies = raw.messages.slice(from).map((x) => x.msg).filter((x) => 'id' in x && x.id !== 'fence-1');
    check(replies.length === 0, 'notifications (known, unknown, cancel of an unknown id) get no reply', safeJson(replies));

    // A 50 MB line: refused (larger than CELLBLOCK_MAX_MESSAGE_MB, 32 by default), then ping answers.
    from = raw.messages.length;
    const big = JSON.stringify({ jsonrpc: '2.0', id: 'big-1', method: 'tools/call',
        params: { name: 'run_code', arguments: { code: '#' + 'x'.repeat(50 * 1024 * 1024) } } });
    await withDeadline(raw.send(big), 60000, 'writing a 50 MB line');
    m = await soft(raw.waitFor((x) => 'error' in x && (x.id === 'big-1' || x.id === null), 30000, 'an error for the 50 MB line', from));
    check(Boolean(m.error), 'a 50 MB line gets a JSON-RPC error', `${safeJson(m)}; all since: ${safeJson(raw.messages.slice(from).map((x) => x.msg))}`);
    if (m.error) note(`the 50 MB line was answered with ${safeJson(m)}`);
    const afterBig = await soft(raw.request('ping', {}, { ms: 30000 }));
    check(afterBig.result !== undefined, 'ping answers after the 50 MB line', safeJson(afterBig));

    // Duplicate initialize is refused, but the session survives.
    m = await soft(raw.request('initialize', { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'again', version: '1' } }));
    note(`a second initialize got ${safeJson(m).slice(0, 300)}`);

    // Ids come back exactly; CRLF line ends and messages split across writes are read.
    for (const id of [0, -1, 'str-id', 9007199254740991, 'ünïcode id']) {
        m = await soft(raw.request('ping', {}, { id }));
        check(m.id === id && m.result !== undefined, `ping with id ${JSON.stringify(id)} is answered with that id`, safeJson(m));
    }
    from = raw.messages.length;
    await raw.send('{"jsonrpc": "2.0", "id": "crlf", "method": "ping"}\r\n');
    m = await soft(raw.waitFor((x) => x.id === 'crlf', 10000, 'an answer to a CRLF line', from));
    check(m.result !== undefined, 'a line ending in CRLF is read', safeJson(m));
    await new Promise((resolve) => raw.proc.stdin.write('{"jsonrpc": "2.0", "id": "sp', resolve));
    await new Promise((resolve) => setTimeout(resolve, 100)); // the halves arrive apart
    await raw.send('lit", "method": "ping"}\n{"jsonrpc": "2.0", "id": "second", "method": "ping"}');
    m = await soft(raw.waitFor((x) => x.id === 'split', 10000, 'an answer to a split line', from));
    check(m.result !== undefined, 'a message split across writes is read', safeJson(m));
    m = await soft(raw.waitFor((x) => x.id === 'second', 10000, 'an answer to the second message of a write', from));
    check(m.result !== undefined, 'two messages in one write are both read', safeJson(m));
    from = raw.messages.length;
    await raw.send({ jsonrpc: '2.0', id: 'unsolicited', result: {} });
    await raw.send({ jsonrpc: '2.0', id: 'unsolicited-err', error: { code: -1, message: 'x' } });
    await raw.send('');
    const fence2 = await soft(raw.request('ping', {}, { id: 'fence-2' }));
    const replies2 = raw.messages.slice(from).map((x) => x.msg).filter((x) => x.id !== 'fence-2');
    check(fence2.result !== undefined && replies2.length === 0, 'responses the server never asked for, and an empty line, get no reply', safeJson(replies2));

    // Still alive and answering after all of it.
    const last = await soft(raw.request('ping', {}));
    check(last.result !== undefined && raw.exit === null, 'after every edge case ping still answers and the process is alive', safeJson({ last, exit: raw.exit }));
    const listed = await soft(raw.request('tools/list', {}));
    check(Array.isArray(listed.result?.tools) && listed.result.tools.length >= ALL_TOOLS.length, 'tools/list still works', safeJson(listed).slice(0, 300));

    raw.track();
    const ex = await raw.close({ expectStatus: 0, ms: 15000 });
    check(ex && ex.code === 0, 'closing stdin makes the server exit with status 0 within 15 s', safeJson(ex));
    check(raw.stdoutEnded, 'stdout ends with the process');
    check(raw.badLines.length === 0, 'every stdout line was a JSON-RPC 2.0 message (stdout carries nothing else)', safeJson(raw.badLines.slice(0, 5)));
    const nonResponses = raw.messages.map((x) => x.msg).filter((x) => typeof x.method === 'string' && x.method !== 'notifications/message' && x.method !== 'notifications/progress');
    check(nonResponses.length === 0, 'the server sent no unexpected requests or notifications', safeJson(nonResponses.slice(0, 3)));
    });
});
