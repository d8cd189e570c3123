// files.mjs: the e2b SDK's sandbox.files against `cellblock serve` (docs/e2b.md, "Files"):
// write (a string, bytes, several files at once) and read (text, bytes, blob), list (depth 1 and
// 2), exists, getInfo, rename, remove, makeDir, watchDir (an event seen, then stop()), and the
// workspace rules (docs/security.md): paths outside /home/user refused, a symlink planted inside
// that points out not followed, an upload over the body limit refused with the server still
// serving.
//
// One server, one sandbox. The symlinks are planted from the host as code inside would plant
// them: through /proc/<init>/root/home/user of the sandbox's init (found by the sandbox's
// cgroup name under the server's pid), as root, which this suite runs as.
import { closeSync, openSync, readFileSync, readdirSync, statSync, symlinkSync } from 'node:fs';
import {
    check, deferred, e2b, note, run, safeJson, section, startE2B, withDeadline, Sandbox,
} from './lib.mjs';

async function rejects(promise, what, want = /outside the workspace/) {
    try {
        const v = await withDeadline(promise, 30000, what);
        check(false, what, `it succeeded: ${safeJson(v)}`);
        return null;
    } catch (e) {
        check(want.test(String(e?.message ?? e)), what, `${e?.name}: ${e?.message}`);
        return e;
    }
}

// The host pid of the sandbox's init: a child of the server in the sandbox's cgroup.
function initPid(srv, id) {
    const tag = `-s-${id.slice(0, 8)}`;
    for (const d of readdirSync('/proc')) {
        if (!/^\d+$/.test(d)) continue;
        try {
            const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
            const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
            if (ppid === srv.pid && readFileSync(`/proc/${d}/cgroup`, 'utf8').includes(tag)) return Number(d);
        } catch {}
    }
    return null;
}

// Plant a symlink in the workspace as the sandbox user (its host ids: the tmpfs refuses an
// owner its user namespace cannot map). The directory is opened as root, since only root may
// walk /proc/<pid>/root; the link is made through our own /proc/self/fd after the switch.
function plant(ws, target, name) {
    const { uid, gid } = statSync(ws);
    const fd = openSync(ws, 'r');
    process.setegid(gid);
    process.seteuid(uid);
    try {
        symlinkSync(target, `/proc/self/fd/${fd}/${name}`);
    } finally {
        process.seteuid(0);
        process.setegid(0);
        closeSync(fd);
    }
}

// Until the HTTP server takes chunked request bodies ("http: chunked request bodies" on main),
// every upload of the SDK (its fetch sends request bodies chunked) gets 411. Then, and only
// then, this sends the SDK's POST /files itself, with the same query, headers and body (its
// FormData serialized, with its boundary) and a Content-Length, and hands the SDK the answer
// as its client would; so the rest of /files is still tested, and the script says so.
async function bufferUploadsIfNeeded(srv, sbx, created) {
    const probe = await fetch(`${srv.url}/e2b/sandbox/health`, {
        method: 'POST', duplex: 'half', headers: { 'X-API-Key': srv.token, 'Content-Type': 'application/octet-stream' },
        body: new ReadableStream({ start(c) { c.enqueue(new Uint8Array([1])); c.close(); } }),
    }).catch((e) => ({ status: 0, e }));
    if (probe.status !== 411) return;
    note('this build answers chunked request bodies with 411: the SDK\'s uploads are sent with a Content-Length here');
    sbx.envdApi.api.POST = async (path, o) => {
        let body = o.bodySerializer?.();
        const headers = { ...(o.headers ?? {}), 'X-Access-Token': created.envdAccessToken,
            'E2b-Sandbox-Id': created.sandboxID, 'E2b-Sandbox-Port': '49983' };
        if (body instanceof FormData) {
            const r = new Response(body);
            headers['Content-Type'] = r.headers.get('content-type');
            body = new Uint8Array(await r.arrayBuffer());
        }
        const url = new URL(`${srv.e2b.sandboxUrl}${path}`);
        for (const [k, v] of Object.entries(o.params?.query ?? {})) if (v !== undefined) url.searchParams.set(k, v);
        const response = await fetch(url, { method: 'POST', headers, body, signal: o.signal });
        const text = await response.text();
        let parsed = text;
        try { parsed = JSON.parse(text); } catch {}
        return response.ok ? { data: parsed, response } : { error: parsed, response };
    };
}

await run(async () => {
    const srv = await startE2B({ label: 'e2b files' });
    // Created through the REST call directly, and the SDK's object built from its answer (the
    // SDK's own create sends a chunked body).
    const res = await srv.raw('/e2b/v2/sandboxes', { body: { templateID: 'base' } });
    const created = await res.json();
    check(res.status === 201 && created.sandboxID, 'a sandbox is created', safeJson(created));
    const sbx = new Sandbox({
        sandboxId: created.sandboxID, envdVersion: created.envdVersion,
        envdAccessToken: created.envdAccessToken, sandboxDomain: 'localhost',
    });
    const files = sbx.files;
    await bufferUploadsIfNeeded(srv, sbx, created);

    await section('write and read', async () => {
        const info = await files.write('hello.txt', 'hello, world\n');
        check(info.path === '/home/user/hello.txt' && info.name === 'hello.txt' && info.type === 'file',
            'files.write(path, string) answers the entry written', safeJson(info));
        check(await files.read('hello.txt') === 'hello, world\n', 'files.read reads the text back');
        check(await files.read('/home/user/hello.txt') === 'hello, world\n', 'an absolute path names the same file');
        const bytes = new Uint8Array(256).map((_, i) => i);
        await files.write('/home/user/bin/all.bin', bytes);
        const back = await files.read('bin/all.bin', { format: 'bytes' });
        check(back instanceof Uint8Array && back.length === 256 && back.every((b, i) => b === i),
            'bytes written (into a new directory) read back as bytes, all 256 values', String(back?.length));
        const blob = await files.read('bin/all.bin', { format: 'blob' });
        check(blob.size === 256, 'read as a blob', String(blob.size));
        check(await files.read('empty.txt').catch((e) => e) instanceof e2b.FileNotFoundError,
            'reading a missing file is a FileNotFoundError');
        await files.write('empty.txt', '');
        check(await files.read('empty.txt') === '', 'an empty file reads as ""');
        const many = await files.write([
            { path: 'multi/a.txt', data: 'A' },
            { path: '/home/user/multi/b.txt', data: 'BB' },
            { path: 'multi/deep/c.txt', data: new Uint8Array([67]) },
        ]);
        check(Array.isArray(many) && many.length === 3 && many.map((f) => f.path).join() ===
            '/home/user/multi/a.txt,/home/user/multi/b.txt,/home/user/multi/deep/c.txt',
            'files.write of three files at once answers each', safeJson(many));
        check(await files.read('multi/b.txt') === 'BB' && await files.read('multi/deep/c.txt') === 'C',
            'each of them reads back');
    });

    await section('list, exists, getInfo', async () => {
        const one = await files.list('multi');
        check(one.map((e) => `${e.name}:${e.type}`).join() === 'a.txt:file,b.txt:file,deep:dir',
            'list at depth 1 shows the entries with their types', safeJson(one));
        const two = await files.list('/home/user/multi', { depth: 2 });
        check(two.some((e) => e.path === '/home/user/multi/deep/c.txt') && two.length === 4,
            'list at depth 2 goes one level down', safeJson(two.map((e) => e.path)));
        check(await files.exists('hello.txt') === true && await files.exists('nope.txt') === false,
            'exists: true for a file, false for a missing one');
        const info = await files.getInfo('multi/b.txt');
        check(info.type === 'file' && info.size === 2 && info.permissions === '-rw-r--r--' &&
            info.mode === 0o644 && info.owner === 'user' && info.modifiedTime instanceof Date &&
            Math.abs(info.modifiedTime.getTime() - Date.now()) < 600000 && info.path === '/home/user/multi/b.txt',
            'getInfo: type, size, mode, permissions, owner, modifiedTime, path', safeJson(info));
        const dir = await files.getInfo('multi');
        check(dir.type === 'dir' && dir.permissions.startsWith('d'), 'getInfo of a directory', safeJson(dir));
    });

    await section('makeDir, rename, remove', async () => {
        check(await files.makeDir('made/inner') === true, 'makeDir makes a directory and its parents');
        check(await files.makeDir('made/inner') === false, 'makeDir of an existing directory answers false');
        const moved = await files.rename('hello.txt', 'made/inner/moved.txt');
        check(moved.path === '/home/user/made/inner/moved.txt' && moved.type === 'file',
            'rename answers the entry at its new path', safeJson(moved));
        check(await files.exists('hello.txt') === false && await files.read('made/inner/moved.txt') === 'hello, world\n',
            'the file is gone from its old path and readable at the new one');
        await files.remove('made');
        check(await files.exists('made') === false, 'remove takes a directory with what is in it');
        await files.remove('made'); // envd's RemoveAll: already gone is fine
        check(true, 'removing what is not there is not an error (as envd)');
    });

    await section('watchDir', async () => {
        await files.makeDir('watched');
        // One promise per create event awaited, by name.
        const creates = { 'new.txt': deferred(), sub: deferred(), 'sub/deep.txt': deferred() };
        const seen = [];
        const handle = await files.watchDir('watched', (ev) => {
            seen.push(ev);
            if (ev.type === 'create') creates[ev.name]?.resolve(ev);
        }, { recursive: true, includeEntry: true });
        await files.write('watched/new.txt', 'x');
        const ev = await withDeadline(creates['new.txt'].promise, 15000, 'the create event');
        check(ev.entry?.path === '/home/user/watched/new.txt' && ev.entry?.type === 'file',
            'watchDir sees a file appear, with its entry', safeJson(seen));
        check(!seen.some((e) => e.name.includes('.cellblock-write-')), 'the gateway\'s temp names are not reported', safeJson(seen));
        await files.makeDir('watched/sub');
        // The server watches a new directory before it reports its creation.
        await withDeadline(creates.sub.promise, 15000, 'the create event of watched/sub');
        await files.write('watched/sub/deep.txt', 'y');
        await withDeadline(creates['sub/deep.txt'].promise, 15000, 'the event in a new subdirectory');
        check(true, 'a recursive watch follows a directory made after it started');
        await handle.stop();
        const before = seen.length;
        await files.write('watched/after.txt', 'z');
        await files.list('watched'); // one round trip after the write
        check(!seen.slice(before).some((e) => e.name === 'after.txt'), 'nothing arrives after stop()', safeJson(seen.slice(before)));
        await rejects(files.watchDir('no-such-dir', () => {}), 'watching a missing directory fails', /not found/);
    });

    await section('polling watchers (CreateWatcher, GetWatcherEvents, RemoveWatcher)', async () => {
        // The JS SDK streams (watchDir); the polling RPCs are the Python SDK's. Called as Connect
        // unary calls, with the sandbox's headers.
        const rpc = async (method, msg) => {
            const r = await srv.raw(`/e2b/sandbox/filesystem.Filesystem/${method}`, {
                body: msg, headers: { 'E2b-Sandbox-Id': created.sandboxID, 'E2b-Sandbox-Port': '49983' },
            });
            return { status: r.status, body: await r.json() };
        };
        const made = await rpc('CreateWatcher', { path: 'watched', recursive: false });
        const id = made.body.watcherId;
        check(made.status === 200 && typeof id === 'string', 'CreateWatcher answers a watcherId', safeJson(made));
        await files.write('watched/polled.txt', 'p');
        await files.remove('watched/polled.txt');
        const got = await rpc('GetWatcherEvents', { watcherId: id });
        const kinds = (got.body.events ?? []).filter((e) => e.name === 'polled.txt').map((e) => e.type);
        check(got.status === 200 && kinds[0] === 'EVENT_TYPE_CREATE' && kinds.at(-1) === 'EVENT_TYPE_REMOVE',
            'GetWatcherEvents answers the create and the remove, in order', safeJson(got));
        const again = await rpc('GetWatcherEvents', { watcherId: id });
        check(again.status === 200 && (again.body.events ?? []).length === 0, 'events are answered once', safeJson(again));
        const gone = await rpc('RemoveWatcher', { watcherId: id });
        check(gone.status === 200, 'RemoveWatcher', safeJson(gone));
        const after = await rpc('GetWatcherEvents', { watcherId: id });
        check(after.status === 404 && after.body.code === 'not_found', 'a removed watcher is not found', safeJson(after));
    });

    await section('outside the workspace', async () => {
        const passwd = readFileSync('/etc/passwd', 'utf8');
        await rejects(files.write('/etc/passwd', 'pwned'), 'writing /etc/passwd is refused');
        await rejects(files.read('/etc/passwd'), 'reading /etc/passwd is refused');
        await rejects(files.read('../../etc/passwd'), 'reading ../../etc/passwd is refused');
        await rejects(files.write('../escape.txt', 'x'), 'writing ../escape.txt is refused');
        await rejects(files.list('/'), 'listing / is refused');
        await rejects(files.rename('multi/a.txt', '/tmp/a.txt'), 'renaming out to /tmp is refused');
        await rejects(files.makeDir('/home/other'), 'makeDir beside the workspace is refused');
        await rejects(files.watchDir('/etc', () => {}), 'watching /etc is refused');
        check(readFileSync('/etc/passwd', 'utf8') === passwd, 'the host\'s /etc/passwd is unchanged');
    });

    await section('planted symlinks', async () => {
        const pid = process.getuid?.() === 0 ? initPid(srv, created.sandboxID) : null;
        if (!pid) {
            note('SKIP symlink checks: not root, or the sandbox\'s init was not found');
            return;
        }
        const ws = `/proc/${pid}/root/home/user`;
        plant(ws, '/etc/passwd', 'evil');
        plant(ws, '/', 'up');
        plant(ws, '../../../etc', 'multi/climb');
        const info = await files.getInfo('evil');
        check(info.type === 'symlink' && info.symlinkTarget === '/etc/passwd',
            'getInfo shows the link itself, not what it points to', safeJson(info));
        await rejects(files.read('evil'), 'reading a symlink to /etc/passwd is refused');
        await rejects(files.write('evil', 'pwned'), 'writing through it is refused', /symlink|outside/);
        await rejects(files.read('up/etc/passwd'), 'reading through a link to / is refused');
        await rejects(files.list('up'), 'listing a link to / is refused');
        await rejects(files.list('multi/climb'), 'listing a relative link that climbs out is refused');
        await rejects(files.watchDir('up', () => {}), 'watching a link to / is refused');
        await rejects(files.write('up/tmp/x.txt', 'x'), 'writing through a link to / is refused');
        const listed = await files.list('multi');
        check(listed.some((e) => e.name === 'climb' && e.type === 'symlink'),
            'list shows a planted link as a symlink', safeJson(listed));
        await files.rename('evil', 'evil2');
        check((await files.getInfo('evil2')).symlinkTarget === '/etc/passwd' &&
            readFileSync('/etc/passwd', 'utf8').includes('root:'),
            'rename moves the link itself');
        await files.remove('up');
        check(await files.exists('up') === false && readdirSync('/').length > 3, 'remove takes the link, not what it points to');
    });

    await section('an upload over the limit', async () => {
        const big = new Uint8Array(17 * 1024 * 1024);
        await rejects(files.write('big.bin', big), 'an upload over the server\'s body limit is refused', /413|too large|limit|fetch failed/i);
        check(await files.exists('big.bin') === false, 'nothing of it was written');
        check(await files.read('multi/a.txt') === 'A', 'the server still serves');
    });
});
