// tenants.mjs: MCP over Streamable HTTP with tenants (serve --tokens), MCP resources, and the
// protocol revisions a client may negotiate. One server, three SDK clients (tenants alice and
// bob from a 0600 tokens file, and the admin's CELLBLOCK_TOKEN), two sandboxes.
//
//   - another tenant's sandbox, session, execution and MCP session are answered exactly as
//     unknown ones (the same text with the id swapped; the same 404 for Mcp-Session-Id), on
//     every tool that takes one, and on resources/read; lists show only the tenant's; the admin
//     reaches everything; nothing bob tried changed alice's sandbox.
//   - resources/list, resources/templates/list, resources/read: a file written by file_upload
//     (its result's resource_link), a long output's saved file (the note's URI and link, read
//     whole), a rich result's embedded resource, a session notebook, the audit URIs; unknown
//     URIs: -32002 with the uri in data.
//   - 2024-11-05, 2025-03-26, 2025-06-18 and 2025-11-25 negotiated and accepted in the
//     MCP-Protocol-Version header; before 2025-06-18 no outputSchema, no structuredContent, no
//     resource_link (text instead); before 2025-03-26 no annotations.
import { chmodSync, writeFileSync } from 'node:fs';
import { randomBytes, randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { McpError, TRANSPORT, brief, check, run, safeJson, sc, section, startServe, tempDir, textOf } from './lib.mjs';

if (TRANSPORT !== 'http') {
    console.log('SKIP: tenants.mjs runs over Streamable HTTP only (CB_MCP_TRANSPORT=http)');
    process.exit(77);
}

const INIT = (version, id = 1) => ({
    jsonrpc: '2.0', id, method: 'initialize',
    params: { protocolVersion: version, capabilities: {}, clientInfo: { name: 'cellblock-tenants-test', version: '1.0.0' } },
});

// A raw POST's JSON-RPC answer (JSON, or the response event of an SSE stream).
async function answerOf(res, id) {
    const text = await res.text();
    if ((res.headers.get('content-type') ?? '').startsWith('application/json')) return JSON.parse(text);
    for (const block of text.split('\n\n')) {
        const data = block.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trim()).join('\n');
        if (!data) continue;
        const m = JSON.parse(data);
        if (m.id === id && ('result' in m || 'error' in m)) return m;
    }
    return null;
}

// The same text once each id is replaced by a placeholder.
const sameShape = (a, idA, b, idB) => a.split(idA).join('<id>') === b.split(idB).join('<id>');

async function readError(conn, uri) {
    try {
        await conn.client.readResource({ uri });
        return null;
    } catch (e) {
        return e instanceof McpError ? { code: e.code, message: e.message, data: e.data } : { message: String(e) };
    }
}

await run(async () => {
    const dir = tempDir('cb-tenants-');
    const tokA = randomBytes(20).toString('hex'), tokB = randomBytes(20).toString('hex');
    const tokens = join(dir, 'tokens');
    writeFileSync(tokens, `# two tenants\nalice ${tokA}\nbob ${tokB}\n`);
    chmodSync(tokens, 0o600);
    const srv = await startServe({ args: ['--tokens', tokens], env: { CELLBLOCK_OUTPUT_LIMIT: '2000' } });
    const a = await srv.connect({ label: 'alice', token: tokA });
    const b = await srv.connect({ label: 'bob', token: tokB });
    const admin = await srv.connect({ label: 'admin' });
    const unknown = randomUUID();

    // alice's sandbox: a variable, a file, an execution kept, a session.
    const created = sc(await a.callOk('sandbox_create', {}));
    const idA = created.sandbox_id;
    const sessA = created.session_id;
    await a.callOk('code_execute', { sandbox_id: idA, code: 'x = 41' });
    const up = await a.callOk('file_upload', { sandbox_id: idA, path: 'notes/secret.txt', content: 'alice only\n' });
    const asyncRun = sc(await a.callOk('code_execute_async', { sandbox_id: idA, code: 'print("done")' }));
    const xidA = asyncRun.execution_id;
    const bg = sc(await a.callOk('command_execute', { sandbox_id: idA, command: 'sleep 600', background: true }));
    const cmdA = bg.command_id;

    await section('tenants: lists and ids', async () => {
        const listB = sc(await b.callOk('sandbox_list', {}));
        check(!safeJson(listB).includes(idA), "bob's sandbox_list does not show alice's sandbox", safeJson(listB).slice(0, 400));
        const listAdmin = sc(await admin.callOk('sandbox_list', {}));
        check(listAdmin.sandboxes?.some((s) => s.sandbox_id === idA), "the admin's sandbox_list shows alice's sandbox", safeJson(listAdmin).slice(0, 400));
        const listA = sc(await a.callOk('sandbox_list', {}));
        check(listA.sandboxes?.length === 1 && listA.sandboxes[0].sandbox_id === idA, 'alice lists her one sandbox', safeJson(listA).slice(0, 400));

        const probes = [
            ['code_execute', (id) => ({ sandbox_id: id, code: 'print(x)' })],
            ['command_execute', (id) => ({ sandbox_id: id, command: 'cat notes/secret.txt' })],
            ['file_download', (id) => ({ sandbox_id: id, path: 'notes/secret.txt' })],
            ['file_list', (id) => ({ sandbox_id: id })],
            ['file_upload', (id) => ({ sandbox_id: id, path: 'planted.txt', content: 'bob was here' })],
            ['file_delete', (id) => ({ sandbox_id: id, path: 'notes/secret.txt' })],
            ['sandbox_info', (id) => ({ sandbox_id: id })],
            ['sandbox_logs', (id) => ({ sandbox_id: id })],
            ['sandbox_history', (id) => ({ sandbox_id: id })],
            ['sandbox_metrics', (id) => ({ sandbox_id: id })],
            ['sandbox_set_timeout', (id) => ({ sandbox_id: id, timeout_s: 5 })],
            ['process_list', (id) => ({ sandbox_id: id })],
            ['session_create', (id) => ({ sandbox_id: id })],
            ['sandbox_expose_port', (id) => ({ sandbox_id: id, port: 8000 })],
            ['sandbox_delete', (id) => ({ sandbox_id: id })],
        ];
        for (const [tool, args] of probes) {
            const theirs = await b.call(tool, args(idA));
            const none = await b.call(tool, args(unknown));
            check(theirs.isError && none.isError && sameShape(textOf(theirs), idA, textOf(none), unknown),
                `bob's ${tool} on alice's sandbox is answered as on an unknown one`, `${brief(theirs)} vs ${brief(none)}`);
        }
        for (const [tool, args, id] of [
            ['session_execute', (s) => ({ session_id: s, code: 'print(x)' }), sessA],
            ['session_close', (s) => ({ session_id: s }), sessA],
            ['kernel_restart', (s) => ({ session_id: s }), sessA],
            ['execution_status', (x) => ({ execution_id: x }), xidA],
            ['execution_cancel', (x) => ({ execution_id: x }), xidA],
            ['process_output', (c) => ({ command_id: c }), cmdA],
            ['process_kill', (c) => ({ command_id: c }), cmdA],
        ]) {
            const theirs = await b.call(tool, args(id));
            const none = await b.call(tool, args(unknown));
            check(theirs.isError && none.isError && sameShape(textOf(theirs), id, textOf(none), unknown),
                `bob's ${tool} on alice's id is answered as on an unknown one`, `${brief(theirs)} vs ${brief(none)}`);
        }
        const del = await b.call('sandbox_delete', { sandbox_id: idA, discard_workspace: true });
        check(del.isError, "bob's sandbox_delete with discard_workspace fails on alice's sandbox", brief(del));

        // Nothing bob tried reached alice's sandbox.
        const still = await a.callOk('code_execute', { sandbox_id: idA, code: 'print(x)' });
        check(textOf(still).includes('41'), "alice's variable is still 41", brief(still));
        const file = await a.callOk('file_download', { sandbox_id: idA, path: 'notes/secret.txt' });
        check(sc(file).content === 'alice only\n', "alice's file is unchanged", brief(file));
        const mine = await a.callOk('process_output', { command_id: cmdA });
        check(sc(mine).running === true, "alice's background command still runs", brief(mine));
        const planted = await a.call('file_download', { sandbox_id: idA, path: 'planted.txt' });
        check(planted.isError, "bob's upload did not land in alice's sandbox", brief(planted));
        // The admin reaches it.
        const adm = await admin.callOk('code_execute', { sandbox_id: idA, code: 'print(x + 1)' });
        check(textOf(adm).includes('42'), "the admin runs code in alice's sandbox", brief(adm));
        const st = await admin.callOk('execution_status', { execution_id: xidA, wait_s: 10 });
        check(!st.isError, "the admin reads alice's execution", brief(st));
        // bob's own default sandbox is his.
        const own = await b.callOk('code_execute', { code: 'y = 1; print("bob")' });
        const idB = sc(own).sandbox_id;
        const listA2 = sc(await a.callOk('sandbox_list', {}));
        check(idB && !safeJson(listA2).includes(idB), "bob's default sandbox is not in alice's list", safeJson(listA2).slice(0, 300));
        const reach = await a.call('code_execute', { sandbox_id: idB, code: 'print(y)' });
        check(reach.isError, "alice cannot use bob's default sandbox by id", brief(reach));
        // Once gone, why it went is told to bob alone.
        await b.callOk('sandbox_delete', { sandbox_id: idB });
        const bobs = await b.call('sandbox_info', { sandbox_id: idB });
        check(bobs.isError && /gone/.test(textOf(bobs)), 'bob hears his deleted sandbox is gone', brief(bobs));
        const gone = await a.call('sandbox_info', { sandbox_id: idB });
        const none = await a.call('sandbox_info', { sandbox_id: unknown });
        check(gone.isError && sameShape(textOf(gone), idB, textOf(none), unknown),
            "alice's sandbox_info on bob's deleted sandbox is answered as on an unknown one", `${brief(gone)} vs ${brief(none)}`);
        // The audit trail: each tenant's records in its own log; another's, even gone, unknown.
        const histB = sc(await b.callOk('sandbox_history', { sandbox_id: idB })).records ?? [];
        check(histB.some((r) => r.event === 'execution' && r.tenant === 'bob') && histB.some((r) => r.event === 'sandbox_end') &&
              histB.every((r) => r.tenant === 'bob'),
            "bob's history of his deleted sandbox: his execution and its end, all his", safeJson(histB).slice(0, 600));
        const histGone = await a.call('sandbox_history', { sandbox_id: idB });
        const histNone = await a.call('sandbox_history', { sandbox_id: unknown });
        check(histGone.isError && sameShape(textOf(histGone), idB, textOf(histNone), unknown),
            "alice's sandbox_history on bob's deleted sandbox is answered as on an unknown one", `${brief(histGone)} vs ${brief(histNone)}`);
        const histAdmin = sc(await admin.callOk('sandbox_history', { sandbox_id: idA })).records ?? [];
        check(histAdmin.some((r) => r.event === 'execution' && r.tenant === 'alice' && r.code === 'x = 41'),
            "the admin reads alice's history, her records under her tenant", safeJson(histAdmin).slice(0, 600));
    });

    await section("tenants: another tenant's Mcp-Session-Id is unknown", async () => {
        const sidA = a.sessionId();
        const asB = (o) => srv.fetch({ ...o, auth: false, headers: { Authorization: `Bearer ${tokB}` } });
        for (const [what, o] of [
            ['POST', { sid: sidA, version: '2025-11-25', body: { jsonrpc: '2.0', id: 9, method: 'tools/list' } }],
            ['GET', { method: 'GET', sid: sidA }],
            ['DELETE', { method: 'DELETE', sid: sidA }],
        ]) {
            const theirs = await asB(o);
            const tb = await theirs.text();
            const none = await asB({ ...o, sid: '0123456789abcdef0123456789abcdef' });
            const nb = await none.text();
            check(theirs.status === 404 && none.status === 404 && tb === nb,
                `bob's ${what} with alice's Mcp-Session-Id: 404, as an unknown one`, `${theirs.status} ${tb} vs ${none.status} ${nb}`);
        }
        const alive = await a.callOk('sandbox_list', {});
        check(!alive.isError, "alice's MCP session still works", brief(alive));
    });

    await section('resources', async () => {
        const caps = a.client.getServerCapabilities();
        check(caps?.resources && caps.resources.subscribe === false, 'initialize declares resources', safeJson(caps));
        const link = up.content.find((c) => c.type === 'resource_link');
        const fileUri = `cellblock://sandbox/${idA}/files/notes/secret.txt`;
        check(link?.uri === fileUri && link.name === 'secret.txt' && link.mimeType === 'text/plain',
            "file_upload's result carries a resource_link to the file", safeJson(up.content));
        let r = await a.client.readResource({ uri: fileUri });
        check(r.contents?.[0]?.text === 'alice only\n' && r.contents[0].uri === fileUri, 'resources/read reads the uploaded file', safeJson(r));
        const theirs = await readError(b, fileUri);
        const none = await readError(b, `cellblock://sandbox/${unknown}/files/notes/secret.txt`);
        check(theirs?.code === -32002 && theirs.data?.uri === fileUri && none?.code === -32002 &&
            sameShape(theirs.message, idA, none.message, unknown),
            "bob's resources/read of alice's file: -32002 as an unknown sandbox", `${safeJson(theirs)} vs ${safeJson(none)}`);
        const adminRead = await admin.client.readResource({ uri: fileUri });
        check(adminRead.contents?.[0]?.text === 'alice only\n', "the admin reads alice's file", safeJson(adminRead));
        for (const bad of [`cellblock://sandbox/${idA}/files/nothing-here`, `cellblock://sandbox/${idA}/files/../../etc/passwd`,
            `cellblock://sandbox/${idA}/files/%2e%2e/%2e%2e/etc/passwd`, `cellblock://sandbox/${idA}/files/a%00b`, 'cellblock://nothing', 'file:///etc/passwd']) {
            const e = await readError(a, bad);
            check(e?.code === -32002 && e.data?.uri === bad, `resources/read ${bad}: -32002 with the uri`, safeJson(e));
        }

        // A long output: cut, saved, its URI in the note and as a link, read whole.
        const long = await a.callOk('code_execute', { sandbox_id: idA, code: 'print("y" * 5000)' });
        const saved = long.content.find((c) => c.type === 'resource_link');
        check(saved?.uri?.startsWith(`cellblock://sandbox/${idA}/files/.cellblock/outputs/`) && textOf(long).includes(saved.uri),
            "a long output's note names its saved file's URI, and a resource_link carries it", safeJson(long.content).slice(0, 800));
        if (saved) {
            r = await a.client.readResource({ uri: saved.uri });
            check(r.contents?.[0]?.text === `${'y'.repeat(5000)}\n`, "the saved output's URI reads the whole output", safeJson(r).slice(0, 200));
        }
        // A rich result's embedded resource.
        const html = await a.callOk('code_execute', { sandbox_id: idA, code: 'from IPython.display import HTML\nHTML("<b>bold</b>")' });
        const emb = html.content.find((c) => c.type === 'resource');
        if (check(emb?.resource?.uri?.includes('/execution/'), 'an HTML result is an embedded resource', safeJson(html.content))) {
            r = await a.client.readResource({ uri: emb.resource.uri });
            check(r.contents?.[0]?.text === emb.resource.text && r.contents[0].mimeType === 'text/html', "the rich result's URI reads it", safeJson(r));
            const eb = await readError(b, emb.resource.uri);
            check(eb?.code === -32002, "bob cannot read alice's rich result", safeJson(eb));
        }

        const list = await a.client.listResources();
        const uris = list.resources.map((x) => x.uri);
        check(uris.includes(fileUri) === false && uris.some((u) => u.startsWith(`cellblock://sandbox/${idA}/files/`)),
            'resources/list names top-level workspace files (not nested ones)', safeJson(uris));
        check(saved && uris.includes(saved.uri), 'resources/list names the saved outputs', safeJson(uris));
        const nb = `cellblock://sandbox/${idA}/session/${sessA}/notebook.ipynb`;
        check(uris.includes(nb) && uris.includes(`cellblock://sandbox/${idA}/audit`) && uris.includes('cellblock://audit'),
            "resources/list names the session's notebook and the audit URIs", safeJson(uris));
        r = await a.client.readResource({ uri: nb });
        const parsed = JSON.parse(r.contents?.[0]?.text ?? 'null');
        check(parsed?.nbformat === 4 && r.contents[0].mimeType === 'application/x-ipynb+json' && JSON.stringify(parsed.cells).includes('x = 41'),
            "a session notebook reads as nbformat 4 with the session's cells", safeJson(r).slice(0, 300));
        const nbB = await readError(b, nb);
        check(nbB?.code === -32002, "bob cannot read alice's session notebook", safeJson(nbB));
        r = await a.client.readResource({ uri: 'cellblock://audit' });
        check(Array.isArray(JSON.parse(r.contents?.[0]?.text ?? 'null')), 'cellblock://audit reads as a JSON array', safeJson(r).slice(0, 300));
        r = await b.client.readResource({ uri: `cellblock://sandbox/${idA}/audit` });
        const records = JSON.parse(r.contents?.[0]?.text ?? 'null');
        check(Array.isArray(records) && records.every((x) => x.tenant === 'bob'), "bob reads no audit record of alice's sandbox", safeJson(r).slice(0, 300));
        const listB = await b.client.listResources();
        check(!safeJson(listB).includes(idA), "bob's resources/list names nothing of alice's", safeJson(listB).slice(0, 300));
        const t = await a.client.listResourceTemplates();
        const tu = t.resourceTemplates.map((x) => x.uriTemplate);
        check(tu.length === 5 && tu.some((u) => u.includes('/files/')) && tu.some((u) => u.includes('/notebook.ipynb')),
            'resources/templates/list gives the five URI forms', safeJson(tu));
    });

    await section('protocol revisions', async () => {
        for (const v of ['2024-11-05', '2025-03-26', '2025-06-18', '2025-11-25']) {
            let res = await srv.fetch({ body: INIT(v) });
            const init = await answerOf(res, 1);
            const sid = res.headers.get('mcp-session-id');
            check(init?.result?.protocolVersion === v && sid, `initialize negotiates ${v}`, safeJson(init));
            res = await srv.fetch({ sid, version: v, body: { jsonrpc: '2.0', method: 'notifications/initialized' } });
            check(res.status === 202, `MCP-Protocol-Version: ${v} is accepted`, `${res.status}`);
            await res.arrayBuffer();
            res = await srv.fetch({ sid, version: v, body: { jsonrpc: '2.0', id: 2, method: 'tools/list' } });
            const tools = (await answerOf(res, 2))?.result?.tools ?? [];
            const modern = v >= '2025-06-18';
            check(tools.length > 0 && tools.some((x) => 'outputSchema' in x) === modern && tools.some((x) => 'title' in x) === modern,
                `${v}: outputSchema and title ${modern ? 'listed' : 'left out'}`, safeJson(tools[0]));
            check(tools.some((x) => 'annotations' in x) === (v >= '2025-03-26'), `${v}: annotations ${v >= '2025-03-26' ? 'listed' : 'left out'}`, safeJson(tools[0]));
            res = await srv.fetch({ sid, version: v, body: { jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'file_upload', arguments: { sandbox_id: idA, path: 'v.txt', content: v } } } });
            const call = (await answerOf(res, 3))?.result;
            check(call && ('structuredContent' in call) === modern, `${v}: structuredContent ${modern ? 'sent' : 'left out'}`, safeJson(call));
            const kinds = (call?.content ?? []).map((c) => c.type);
            check(kinds.includes('resource_link') === modern && (modern || textOf(call).includes('/files/v.txt')),
                `${v}: the file ${modern ? 'as a resource_link' : 'named in text'}`, safeJson(call?.content));
            await (await srv.fetch({ method: 'DELETE', sid, version: v })).arrayBuffer();
        }
        const res = await srv.fetch({ sid: admin.sessionId(), version: '2099-01-01', body: { jsonrpc: '2.0', id: 4, method: 'ping' } });
        check(res.status === 400, 'an unknown MCP-Protocol-Version: 400', `${res.status}`);
        await res.arrayBuffer();
    });

    await srv.close();
});
