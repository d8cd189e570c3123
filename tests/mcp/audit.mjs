// The audit trail (docs/audit.md) through the MCP SDK over stdio: code, a failing cell, a
// command given a secret in its environment, a file upload, all in a persistent sandbox; then
// sandbox_history shows them in order with their fields, another id is answered as unknown,
// `cellblock audit --json` reads the same records from the state dir, neither the secret nor
// the file's content is anywhere in the logs, and after a restart (the sandbox reopened) the
// records are still there, followed by the new ones.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BIN, brief, check, run, runProgram, safeJson, sc, section, startServer, tempDir, textOf, waitUntil } from './lib.mjs';

const SECRET = 'sekrit-' + Math.random().toString(36).slice(2) + '-value';
const CONTENT = 'file-body-' + Math.random().toString(36).slice(2) + '-not-logged';

function logText(state) {
    const dir = join(state, 'audit');
    let all = '';
    for (const tenant of readdirSync(dir))
        for (const f of readdirSync(join(dir, tenant))) all += readFileSync(join(dir, tenant, f), 'utf8');
    return all;
}

async function history(srv, args) {
    const r = await srv.callOk('sandbox_history', args);
    return { r, records: sc(r).records ?? [] };
}

await run(async () => {
    const state = tempDir('cb-state-');
    const env = { CELLBLOCK_STATE_DIR: state };
    let srv = await startServer({ label: 'first server', env });
    let id = null;

    await section('what ran is recorded, in order', async () => {
        let r = await srv.callOk('sandbox_create', { persist: true, network: { allow: ['allowed.invalid'] } });
        id = sc(r).sandbox_id;
        await srv.callOk('code_execute', { sandbox_id: id, code: 'x = 6 * 7\nprint(x)' });
        r = await srv.call('code_execute', { sandbox_id: id, code: '1 / 0' });
        await srv.callOk('command_execute', { sandbox_id: id, command: 'printf %s "$AUDIT_SECRET" | wc -c', env: { AUDIT_SECRET: SECRET } });
        await srv.callOk('file_upload', { sandbox_id: id, path: 'notes/plan.txt', content: CONTENT });
        const { r: h, records } = await history(srv, { sandbox_id: id });
        const events = records.map((x) => x.event);
        const at = (e, from = 0) => events.indexOf(e, from);
        check(at('sandbox_open') === 0, 'the first record is the sandbox being opened', safeJson(events));
        const open = records[0];
        check(open.persistent === true && open.template === 'python' && open.tenant === 'local' && open.sandbox_id === id,
            'sandbox_open: persistent, its template, the tenant, the sandbox id', safeJson(open));
        const x1 = at('execution'), x2 = at('execution', x1 + 1), c = at('command'), f = at('file_write');
        check(x1 > 0 && x2 > x1 && c > x2 && f > c, 'executions, then the command, then the upload, in the order they happened', safeJson(events));
        const ok = records[x1], bad = records[x2], cmd = records[c], fw = records[f];
        check(ok.code === 'x = 6 * 7\nprint(x)' && ok.status === 'ok' && ok.origin === 'mcp' && ok.kernel === 'python3' &&
              typeof ok.duration_ms === 'number' && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/.test(ok.started ?? '') &&
              /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/.test(ok.time ?? ''),
            'the execution: its code, status ok, route mcp, kernel, start time and duration', safeJson(ok));
        check(bad.status === 'error' && bad.ename === 'ZeroDivisionError', 'the failing cell: status error, its error name', safeJson(bad));
        check(cmd.command === 'printf %s "$AUDIT_SECRET" | wc -c' && cmd.exit_code === 0 && cmd.status === 'exited' &&
              Array.isArray(cmd.env_keys) && cmd.env_keys.includes('AUDIT_SECRET'),
            "the command: its line, exit code 0, its environment's keys", safeJson(cmd));
        check(fw.path === 'notes/plan.txt' && fw.size === CONTENT.length && !('content' in fw),
            'the upload: path and size, no content', safeJson(fw));
        check(textOf(h).includes('execution') && textOf(h).includes('notes/plan.txt'), 'the text lists the records', textOf(h).slice(0, 500));
        const since = await history(srv, { sandbox_id: id, since: '2100-01-01T00:00:00Z' });
        check(since.records.length === 0, 'since in 2100: no records', brief(since.r));
        const last = await history(srv, { sandbox_id: id, limit: 1 });
        check(last.records.length === 1 && last.records[0].event === 'file_write', 'limit 1: the latest record only', brief(last.r));
        r = await srv.call('sandbox_history', { sandbox_id: id, since: 'last tuesday' });
        check(r.isError === true && /since/.test(textOf(r)), 'a since that is not a time is refused', brief(r));
    });

    await section('network connections', async () => {
        // Refused by name at the proxy (not in the allow list): nothing leaves the host.
        await srv.callOk('command_execute', { sandbox_id: id, command: 'curl -s -m 5 -o /dev/null http://denied.invalid/ ; true' });
        let rec = null;
        await waitUntil(async () => {
            const { records } = await history(srv, { sandbox_id: id });
            rec = records.find((x) => x.event === 'network_connection');
            return rec;
        }, 10000, 'a network_connection record');
        check(rec && rec.host === 'denied.invalid' && rec.allowed === false && typeof rec.reason === 'string',
            'the refused connection is recorded: host, allowed false, the reason', safeJson(rec));
    });

    await section('an unknown id', async () => {
        const fake = '00000000-0000-4000-8000-000000000000';
        const a = await srv.call('sandbox_history', { sandbox_id: fake });
        const b = await srv.call('sandbox_logs', { sandbox_id: fake });
        check(a.isError === true && textOf(a) === textOf(b), 'answered exactly as other tools answer an unknown id', `${textOf(a)} | ${textOf(b)}`);
    });

    await section('cellblock audit on the same state dir, while the server runs', async () => {
        const p = await runProgram(BIN, ['audit', '--json', '--sandbox', id], { env: { ...process.env, ...env } });
        const lines = p.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
        check(p.code === 0 && lines.some((l) => l.event === 'execution' && l.ename === 'ZeroDivisionError') && lines.some((l) => l.event === 'file_write'),
            'cellblock audit --json prints the same records', p.stdout.slice(0, 800) + p.stderr);
        const t = await runProgram(BIN, ['audit', '--since', '1h'], { env: { ...process.env, ...env } });
        check(t.code === 0 && /execution\s+x = 6 \* 7 \.\.\. \[ok/.test(t.stdout), 'its human form: one line per record', t.stdout.slice(0, 800));
        const bad = await runProgram(BIN, ['audit', '--since', 'soon'], { env: { ...process.env, ...env } });
        check(bad.code === 2, 'a bad --since is a usage error (2)', bad.stderr);
    });

    await section('secrets and contents are not in the logs', async () => {
        await srv.callOk('sandbox_delete', { sandbox_id: id });
        await srv.close();
        const text = logText(state);
        check(text.includes('AUDIT_SECRET') && !text.includes(SECRET), "the env var's key is logged, its value nowhere");
        check(text.includes('notes/plan.txt') && !text.includes(CONTENT), "the file's path is logged, its content nowhere");
        check(/"event":"sandbox_end".*"reason":"deleted"/.test(text), 'the deletion is recorded with its reason');
    });

    await section('after a restart, the reopened sandbox keeps its history', async () => {
        srv = await startServer({ label: 'second server', env });
        const r = await srv.callOk('sandbox_create', { sandbox_id: id });
        check(sc(r).sandbox_id === id, 'reopened under its id', brief(r));
        await srv.callOk('code_execute', { sandbox_id: id, code: 'print("again")' });
        const { records } = await history(srv, { sandbox_id: id });
        const events = records.map((x) => x.event);
        const reopen = events.indexOf('sandbox_reopen');
        check(events[0] === 'sandbox_open' && events.includes('file_write') && reopen > events.indexOf('sandbox_end') &&
              records.slice(reopen).some((x) => x.event === 'execution' && x.code === 'print("again")'),
            'the first server\'s records, its end, the reopening and the new execution', safeJson(events));
        await srv.close();
    });
});
