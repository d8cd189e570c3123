// files.mjs: the e2b SDK's sandbox.files against `cellblock serve` (docs/e2b.md, "Files"):
// write (a string, bytes, several files at once) and read (text, bytes, blob), list (depth 1 and
// 2), exists, getInfo, rename, remove, makeDir, watchDir (an event seen, then stop()), and the
// workspace rules (docs/security.md): paths outside /home/user refused, a symlink planted inside
// that points out not followed, an upload over the body limit refused with the server still
// serving.
//
// One server, one sandbox (Sandbox.create, or, on a server that does not take chunked request
// bodies yet, the REST create and the SDK's object built from its answer). Symlinks and the
// flood of events are made by code inside, with the SDK's commands.run.
import { readFileSync, readdirSync } from 'node:fs';
import {
    check, deferred, e2b, note, run, safeJson, section, startE2B, waitUntil, withDeadline, Sandbox,
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

// Whether the HTTP server takes chunked request bodies ("http: chunked request bodies" on
// main), which the SDK sends for Sandbox.create and every upload.
async function takesChunked(srv) {
    const probe = await fetch(`${srv.url}/e2b/sandbox/health`, {
        method: 'POST', duplex: 'half', headers: { 'X-API-Key': srv.token, 'Content-Type': 'application/octet-stream' },
        body: new ReadableStream({ start(c) { c.enqueue(new Uint8Array([1])); c.close(); } }),
    }).catch((e) => ({ status: 0, e }));
    return probe.status !== 411;
}

// Until then, this sends the SDK's POST /files itself, with the same query, headers and body
// (its FormData serialized, with its boundary) and a Content-Length, and hands the SDK the
// answer as its client would; so the rest of /files is still tested.
function bufferUploads(srv, sbx, created) {
    sbx.envdApi.api.POST = async (path, o) => {
        let body = o.bodySerializer?.();
        const headers = { ...(o.headers ?? {}), 'X-Access-Token': created.envdAccessToken,
            'E2b-Sandbox-Id': created.sandboxID, 'E2b-Sandbox-Port': '49983' };
        if (body instanceof FormData) {
            const r = new Response(body);
            headers['Content-Type'] = r.headers.get('content-type');
            body = new Uint8Array(await r.arrayBuffer());
        } else if (body && typeof body.getReader === 'function') {
            body = new Uint8Array(await new Response(body).arrayBuffer());
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
    let sbx, created;
    if (await takesChunked(srv)) {
        sbx = await Sandbox.create();
        created = { sandboxID: sbx.sandboxId, envdAccessToken: sbx.envdAccessToken };
        check(Boolean(sbx.sandboxId), 'Sandbox.create() makes a sandbox', sbx.sandboxId);
    } else {
        // Without chunked bodies: created through the REST call directly, the SDK's object built
        // from its answer, and uploads given a Content-Length (bufferUploads).
        note('this build answers chunked request bodies with 411: the SDK\'s uploads are sent with a Content-Length here');
        const res = await srv.raw('/e2b/v2/sandboxes', { body: { templateID: 'base' } });
        created = await res.json();
        check(res.status === 201 && created.sandboxID, 'a sandbox is created', safeJson(created));
        sbx = new Sandbox({
            sandboxId: created.sandboxID, envdVersion: created.envdVersion,
            envdAccessToken: created.envdAccessToken, sandboxDomain: 'localhost',
        });
        bufferUploads(srv, sbx, created);
    }
    const files = sbx.files;

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
        const stream = await files.read('bin/all.bin', { format: 'stream' });
        const streamed = new Uint8Array(await new Response(stream).arrayBuffer());
        check(streamed.length === 256 && streamed[255] === 255, 'read as a stream', String(streamed.length));
        const raw = await files.write('raw.bin', new Uint8Array([1, 2, 3]), { useOctetStream: true });
        const rawBack = await files.read('raw.bin', { format: 'bytes' });
        check(raw.path === '/home/user/raw.bin' && rawBack.join() === '1,2,3',
            'files.write with useOctetStream (a raw body, envd >= 0.5.7)', safeJson(raw));
        await rejects(files.write('gz.txt', 'zipped', { gzip: true }),
            'a gzip upload is refused with a sentence (415: no zlib here)', /Content-Encoding is not supported/);
        check(await files.exists('gz.txt') === false, '... and writes nothing');
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
        // A sandbox holds at most 32 watches: 40 started and stopped one after another all
        // start, so a stopped watch is let go (its client's going ends it on the server).
        let started = 0;
        for (let i = 0; i < 40; i++) {
            const h = await files.watchDir('watched', () => {}).catch((e) => e);
            if (h instanceof Error) {
                check(false, 'watch and stop, 40 times', `#${i}: ${h.message}`);
                break;
            }
            started++;
            await h.stop();
        }
        check(started === 40, 'a stopped watch is let go: 40 watches in turn on a sandbox that holds 32', String(started));
        const open = [];
        for (let i = 0; i < 32; i++) open.push(await files.watchDir('watched', () => {}));
        await rejects(files.watchDir('watched', () => {}), 'a 33rd watch at once is refused', /32 watches/);
        for (const h of open) await h.stop();
        // Their clients' going reaches the server a moment later: until a watch starts again.
        await waitUntil(async () => {
            const h = await files.watchDir('watched', () => {}).catch(() => null);
            await h?.stop();
            return Boolean(h);
        }, 15000, 'a watch starting again after 32 were stopped', 100);
        check(true, 'stopping them makes room again');
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
        const planted = await sbx.commands.run(
            'ln -s /etc/passwd evil && ln -s / up && ln -s ../../../etc multi/climb', { cwd: '/home/user' });
        check(planted.exitCode === 0, 'code inside plants evil -> /etc/passwd, up -> /, multi/climb -> ../../../etc', safeJson(planted));
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
        const fifo = await sbx.commands.run('mkfifo /home/user/fifo');
        check(fifo.exitCode === 0, 'code inside makes a FIFO', safeJson(fifo));
        await rejects(files.read('fifo'), 'reading a FIFO is refused at once, never waits for a writer', /not a regular file/);
        await rejects(files.write('fifo', 'x'), 'writing onto a FIFO is refused', /not a regular file/);
        await rejects(files.watchDir('fifo', () => {}), 'watching a FIFO is refused', /not a directory/);
        await files.remove('up');
        check(await files.exists('up') === false && readdirSync('/').length > 3, 'remove takes the link, not what it points to');
    });

    await section('a flood of events', async () => {
        const rpc = async (method, msg) => {
            const r = await srv.raw(`/e2b/sandbox/filesystem.Filesystem/${method}`, {
                body: msg, headers: { 'E2b-Sandbox-Id': created.sandboxID, 'E2b-Sandbox-Port': '49983' },
            });
            return { status: r.status, body: await r.json() };
        };
        await files.makeDir('flood');
        const id = (await rpc('CreateWatcher', { path: 'flood' })).body.watcherId;
        // 2500 files made by code inside, faster than anyone polls.
        const made = await sbx.commands.run('for i in $(seq 2500); do : > flood/f$i; done', { cwd: '/home/user' });
        check(made.exitCode === 0, 'code inside makes 2500 files', safeJson(made));
        const lost = await rpc('GetWatcherEvents', { watcherId: id });
        check(lost.status === 429 && lost.body.code === 'resource_exhausted' && /lost/.test(lost.body.message),
            'a polling watcher that overflows says events were lost', safeJson(lost));
        await files.write('flood/after.txt', 'a');
        const next = await rpc('GetWatcherEvents', { watcherId: id });
        check(next.status === 200 && next.body.events?.some((e) => e.name === 'after.txt'),
            '... and goes on with the events after that', safeJson(next).slice(0, 400));
        await rpc('RemoveWatcher', { watcherId: id });
        await files.remove('flood');
    });

    await section('an upload over the limit', async () => {
        const big = new Uint8Array(17 * 1024 * 1024);
        await rejects(files.write('big.bin', big), 'an upload over the server\'s body limit is refused', /413|too large|limit|fetch failed/i);
        check(await files.exists('big.bin') === false, 'nothing of it was written');
        check(await files.read('multi/a.txt') === 'A', 'the server still serves');
    });

    await section('the sandbox ends under an open watch', async () => {
        const exited = deferred();
        await files.watchDir('watched', () => {}, { onExit: (err) => exited.resolve(err ?? null) });
        // A polling watcher too, to be freed with it.
        await srv.raw('/e2b/sandbox/filesystem.Filesystem/CreateWatcher', {
            body: { path: 'watched' }, headers: { 'E2b-Sandbox-Id': created.sandboxID, 'E2b-Sandbox-Port': '49983' },
        });
        await sbx.kill();
        const err = await withDeadline(exited.promise, 20000, 'the watch\'s end');
        check(err !== null, 'an open watchDir stream ends, with an error, when its sandbox ends', String(err));
        const after = await files.read('multi/a.txt').then(() => 'read', (e) => e);
        check(after !== 'read', 'the sandbox is gone for files.read', String(after));
    });
});
