// files.mjs: file_upload, file_download, file_list, file_delete through the SDK client; paths
// that leave the workspace (.., absolute host paths, planted symlinks) are refused and host files
// stay as they were. Writes and deletes are aimed at a decoy file of our own, never at /etc.
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { brief, check, imagesOf, mainResult, run, safeJson, section, sc, startServer, textOf, withDeadline } from './lib.mjs';

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
// A 1x1 PNG.
const TINY_PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=';
const sha = (p) => createHash('sha256').update(readFileSync(p)).digest('hex');

const decoyDir = mkdtempSync(join(tmpdir(), 'cellblock-mcp-decoy-'));
const decoy = join(decoyDir, 'secret.txt');
const DECOY_TEXT = 'host secret, must not change\n';
writeFileSync(decoy, DECOY_TEXT);
process.on('exit', () => rmSync(decoyDir, { recursive: true, force: true }));

await run(async () => {
    const srv = await startServer({ label: 'files server' });
    const passwdBefore = sha('/etc/passwd');
    let r, blob, plotSize;

    await section('upload', async () => {
        // Upload: text, base64, nested directories.
        r = await srv.callOk('file_upload', { path: 'data.csv', content: 'a,b\n1,2\n' });
        check(sc(r).bytes === 8 && /(^|\/)data\.csv$/.test(sc(r).path ?? ''), 'file_upload text: {path, bytes: 8}', brief(r));
        blob = Buffer.from([0, 1, 2, 255, 254, 10, 13]);
        r = await srv.callOk('file_upload', { path: '/home/user/bin/deep/blob.bin', content: blob.toString('base64'), encoding: 'base64' });
        check(sc(r).bytes === blob.length, 'file_upload base64 into a new nested directory: bytes 7', brief(r));
        r = await srv.call('file_upload', { path: 'bad.bin', content: '***not base64***', encoding: 'base64' });
        check(r.isError === true, 'file_upload with invalid base64 is isError', brief(r));
    });

    await section('download', async () => {
        // Download: text, base64, auto.
        r = await srv.callOk('file_download', { path: 'data.csv', encoding: 'text' });
        check(sc(r).content === 'a,b\n1,2\n' && sc(r).encoding === 'text' && sc(r).size === 8, 'file_download text returns the content', brief(r));
        check(textOf(r).includes('a,b'), 'file_download text: the content is in a text block', brief(r));
        r = await srv.callOk('file_download', { path: 'data.csv', encoding: 'base64' });
        check(sc(r).encoding === 'base64' && sc(r).content === Buffer.from('a,b\n1,2\n').toString('base64'), 'file_download base64 of a text file', brief(r));
        r = await srv.callOk('file_download', { path: 'data.csv' });
        check(sc(r).encoding === 'text' && sc(r).content === 'a,b\n1,2\n', 'file_download auto picks text for UTF-8', brief(r));
        r = await srv.callOk('file_download', { path: 'bin/deep/blob.bin' });
        check(sc(r).encoding === 'base64' && Buffer.from(sc(r).content ?? '', 'base64').equals(blob), 'file_download auto picks base64 for binary bytes, exact bytes back', brief(r));
        r = await srv.callOk('file_download', { path: 'bin/deep/blob.bin', encoding: 'base64', offset: 3, max_bytes: 2 });
        check(sc(r).offset === 3 && sc(r).bytes === 2 && sc(r).truncated === true && Buffer.from(sc(r).content ?? '', 'base64').equals(blob.subarray(3, 5)),
            'file_download offset 3 max_bytes 2: two bytes, truncated', brief(r));
        r = await srv.call('file_download', { path: 'no-such-file.txt' });
        check(r.isError === true && /no-such-file/.test(textOf(r)), 'file_download of a missing file is isError naming it', brief(r));
    });

    await section('replace', async () => {
        // Replace: the second upload wins.
        await srv.callOk('file_upload', { path: 'data2.csv', content: 'first' });
        await srv.callOk('file_upload', { path: 'data2.csv', content: 'second' });
        r = await srv.callOk('file_download', { path: 'data2.csv' });
        check(sc(r).content === 'second', 'file_upload replaces an existing file', brief(r));
    });

    await section('images', async () => {
        // Images: an uploaded PNG and one the kernel saved come back as image blocks too.
        await srv.callOk('file_upload', { path: 'tiny.png', content: TINY_PNG, encoding: 'base64' });
        r = await srv.callOk('file_download', { path: 'tiny.png' });
        let imgs = imagesOf(r);
        check(imgs.length === 1 && imgs[0].mimeType === 'image/png' && imgs[0].data === TINY_PNG, 'file_download of a PNG also yields an image block with its bytes', brief(r));
        check(sc(r).mime_type === 'image/png' && sc(r).encoding === 'base64', 'file_download of a PNG: mime_type image/png, encoding base64', brief(r));
        r = await srv.callOk('code_execute', { code: 'import matplotlib\nmatplotlib.use("agg")\nimport matplotlib.pyplot as plt\nplt.figure()\nplt.plot([3, 1, 2])\nplt.savefig("plot.png")\nimport os\nos.path.getsize("plot.png")' });
        plotSize = Number(mainResult(r));
        r = await srv.callOk('file_download', { path: '/home/user/plot.png' });
        imgs = imagesOf(r);
        const plot = imgs.length ? Buffer.from(imgs[0].data, 'base64') : Buffer.alloc(0);
        check(plot.subarray(0, 8).equals(PNG_SIGNATURE) && plot.length === plotSize && sc(r).size === plotSize, 'a PNG the kernel saved downloads as an image block, whole', `${plot.length} vs ${plotSize}; ${brief(r).slice(0, 300)}`);
    });

    await section('the kernel sees uploads', async () => {
        // The kernel sees uploaded files (its working directory is the workspace).
        r = await srv.callOk('code_execute', { code: "open('data.csv').read()" });
        check(mainResult(r) === "'a,b\\n1,2\\n'", "code_execute sees the uploaded file: open('data.csv').read()", brief(r));
        r = await srv.callOk('code_execute', { code: "open('bin/deep/blob.bin', 'rb').read()" });
        check(mainResult(r) === "b'\\x00\\x01\\x02\\xff\\xfe\\n\\r'", 'the kernel reads the exact bytes uploaded as base64', brief(r));
    });

    await section('listing', async () => {
        // Listing.
        r = await srv.callOk('file_list', {});
        const entries = sc(r).entries ?? [];
        const byName = Object.fromEntries(entries.map((e) => [e.name, e]));
        check(byName['data.csv']?.type === 'file' && byName['data.csv']?.size === 8, 'file_list shows data.csv as a file of 8 bytes', safeJson(entries));
        check(byName.bin?.type === 'dir', 'file_list shows bin as a dir', safeJson(entries));
        check(byName['plot.png']?.size === plotSize && typeof byName['plot.png']?.mtime_ms === 'number', 'file_list gives sizes and mtime_ms', safeJson(entries));
        r = await srv.callOk('file_list', { path: 'bin/deep' });
        check((sc(r).entries ?? []).some((e) => e.name === 'blob.bin' && e.size === blob.length), 'file_list of a subdirectory shows blob.bin with its size', brief(r));
    });

    await section('deleting', async () => {
        // Deleting.
        r = await srv.callOk('file_delete', { path: 'data2.csv' });
        check(sc(r).deleted === true, 'file_delete a file: deleted true', brief(r));
        r = await srv.call('file_download', { path: 'data2.csv' });
        check(r.isError === true, 'a deleted file is gone', brief(r));
        r = await srv.call('file_delete', { path: 'bin' });
        check(r.isError === true, 'file_delete of a non-empty directory without recursive is isError', brief(r));
        r = await srv.callOk('file_delete', { path: 'bin', recursive: true });
        r = await srv.callOk('file_list', {});
        check(!(sc(r).entries ?? []).some((e) => e.name === 'bin'), 'file_delete recursive removes the directory', brief(r));
    });

    await section('files of another sandbox', async () => {
        r = await srv.callOk('sandbox_create', {});
        const other = sc(r).sandbox_id;
        await srv.callOk('file_upload', { sandbox_id: other, path: 'only-there.txt', content: 'there' });
        r = await srv.call('file_download', { path: 'only-there.txt' });
        check(r.isError === true, 'a file uploaded to another sandbox is not in the default one', brief(r));
        r = await srv.callOk('file_download', { sandbox_id: other, path: 'only-there.txt' });
        check(sc(r).content === 'there', 'file_download with sandbox_id reads it there', brief(r));
        r = await srv.callOk('file_list', { sandbox_id: other });
        check((sc(r).entries ?? []).some((e) => e.name === 'only-there.txt') && !(sc(r).entries ?? []).some((e) => e.name === 'data.csv'), 'file_list with sandbox_id lists that workspace only', brief(r));
        await srv.callOk('sandbox_delete', { sandbox_id: other });
    });

    await section('odd names', async () => {
        r = await srv.callOk('command_execute', { command: "touch \"$(printf 'bad\\377name')\" 'sp ace.txt' 'caf\u00e9.txt'" });
        r = await srv.call('file_list', {});
        const names = (sc(r).entries ?? []).map((e) => e.name);
        check(!r.isError && names.includes('sp ace.txt') && names.includes('caf\u00e9.txt') && names.some((n) => n.startsWith('bad')), 'file_list answers with a non-UTF-8 name among the files', brief(r));
        r = await srv.callOk('file_upload', { path: 'caf\u00e9 dir/\u00fcber.txt', content: '\u00fc' });
        r = await srv.callOk('file_download', { path: 'caf\u00e9 dir/\u00fcber.txt' });
        check(sc(r).content === '\u00fc' && sc(r).size === 2, 'non-ASCII paths upload and download', brief(r));
    });

    await section('outside the workspace', async () => {
        // Outside the workspace: refused. Reads aim at /etc/passwd, writes and deletes at our decoy.
        const c = await srv.callOk('command_execute', { command: `ln -s /etc/passwd evil && ln -s ${decoy} evil2 && ln -s ../../.. up && ln -s / root && ls -l` });
        check(sc(c).exit_code === 0, 'command_execute plants symlinks (evil -> /etc/passwd, up -> ../../.., root -> /)', brief(c));
        for (const path of ['../../etc/passwd', '/etc/passwd', '/home/user/../../etc/passwd', 'evil', 'up/etc/passwd', 'root/etc/passwd', '/proc/self/root/etc/passwd', '/proc/1/root/etc/passwd']) {
            r = await srv.call('file_download', { path });
            check(r.isError === true && !/root:x:0:0/.test(safeJson(r)), `file_download ${path} is refused`, brief(r));
        }
        for (const path of ['/etc', '..', 'up', '/']) {
            r = await srv.call('file_list', { path });
            check(r.isError === true, `file_list ${path} is refused`, brief(r));
        }
        const up = '../../../../../../../..' + decoy;
        for (const path of [up, decoy, `up${decoy}`]) {
            r = await srv.call('file_upload', { path, content: 'pwned' });
            check(r.isError === true, `file_upload ${path} is refused`, brief(r));
            r = await srv.call('file_delete', { path });
            check(r.isError === true, `file_delete ${path} is refused`, brief(r));
        }
        // Writing to a planted symlink must not write through it (refused, or the link replaced).
        r = await srv.call('file_upload', { path: 'evil2', content: 'pwned' });
        const linkCheck = await srv.callOk('command_execute', { command: 'if [ -L evil2 ]; then echo link; else cat evil2; fi' });
        check(r.isError === true || (sc(linkCheck).stdout ?? '').trim() === 'pwned', 'file_upload onto a symlink is refused or replaces the link itself', `${brief(r)} / ${brief(linkCheck)}`);
        check(existsSync(decoy) && readFileSync(decoy, 'utf8') === DECOY_TEXT, 'the host decoy file is untouched');
        check(sha('/etc/passwd') === passwdBefore, 'the host /etc/passwd is untouched');
        check(srv.clientErrors.length === 0, 'the SDK client saw no protocol error from the server', safeJson(srv.clientErrors));
    });

    await section('downloads within the SDK client\'s 10 MiB message limit', async () => {
        // StdioClientTransport's ReadBuffer refuses a message over 10 MiB and drops the
        // connection; file_download's documented max_bytes (16 MiB) must not produce one.
        await srv.callOk('command_execute', { command: 'head -c 12000000 /dev/zero | tr "\\0" a > big.txt' });
        let got = null;
        try {
            got = await srv.call('file_download', { path: 'big.txt', max_bytes: 16 * 1024 * 1024 }, { timeout: 60000 });
        } catch (e) {
            got = { error: e.message };
        }
        const pong = await withDeadline(srv.client.ping(), 10000, 'ping').then(() => true, () => false);
        check(!got.error && pong, 'file_download of a 12 MB file with max_bytes 16 MiB reaches the SDK client (perhaps truncated) and the connection lives',
            `${safeJson(got).slice(0, 300)}; client errors: ${safeJson(srv.clientErrors.map((e) => e.message.slice(0, 120)))}`);
    });
});
