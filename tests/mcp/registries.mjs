// registries.mjs: a PyPI "simple" index and an npm registry, served by the test itself on host
// loopback, with packages the test builds: for the package tests (packages.mjs). Nothing here
// touches any other network.
//
//   const reg = await startRegistries({ dir, host: '127.0.0.2', python: [{ name, version, module, source }],
//                                       npm: [{ name, version, main }] });
//   reg.url          http://HOST:PORT
//   reg.pipIndex     http://HOST:PORT/simple/            (PIP_INDEX_URL)
//   reg.npmRegistry  http://HOST:PORT/npm/               (npm_config_registry)
//   reg.requests     every request path served, in order
//   stall            paths answered never (until close), for time limits
//   reg.files        { name: Buffer } of what was built (wheels and tarballs), to upload elsewhere
//   await reg.close()
//
// Wheels: a zip with the module, and METADATA, WHEEL and RECORD in NAME-VERSION.dist-info (PEP
// 427), built by Debian's python3 with zipfile. The index pages follow PEP 503 (normalised
// project names, links carrying #sha256=). npm: a packument per package (the JSON npm reads)
// and a tarball of package/package.json and package/index.js made with tarfile; dist carries
// shasum and integrity, which npm checks.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';

const BUILD = String.raw`
import base64, hashlib, io, json, sys, tarfile, zipfile
spec = json.load(sys.stdin)
out = spec["dir"]
def b64(d): return base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b"=").decode()
for p in spec["python"]:
    dist = p["name"].replace("-", "_")
    info = f"{dist}-{p['version']}.dist-info"
    files = {
        f"{p['module']}/__init__.py": p["source"].encode(),
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {p['name']}\nVersion: {p['version']}\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: cellblock-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(f"{n},sha256={b64(d)},{len(d)}\n" for n, d in files.items()) + f"{info}/RECORD,,\n"
    files[f"{info}/RECORD"] = record.encode()
    with zipfile.ZipFile(f"{out}/{dist}-{p['version']}-py3-none-any.whl", "w", zipfile.ZIP_DEFLATED) as z:
        for n, d in files.items():
            z.writestr(n, d)
for p in spec["npm"]:
    members = {
        "package/package.json": json.dumps({"name": p["name"], "version": p["version"], "main": "index.js"}).encode(),
        "package/index.js": p["main"].encode(),
    }
    with tarfile.open(f"{out}/{p['name']}-{p['version']}.tgz", "w:gz") as t:
        for n, d in members.items():
            ti = tarfile.TarInfo(n)
            ti.size = len(d)
            ti.mode = 0o644
            t.addfile(ti, io.BytesIO(d))
`;

const normalise = (name) => name.toLowerCase().replace(/[-_.]+/g, '-');

export async function startRegistries({ dir, host = '127.0.0.2', python = [], npm = [], stall = [] }) {
    const built = spawnSync('/usr/bin/python3', ['-c', BUILD], { input: JSON.stringify({ dir, python, npm }), encoding: 'utf8' });
    if (built.status !== 0) throw new Error(`building the test packages failed: ${built.stderr}`);
    const files = {};
    const wheels = python.map((p) => {
        const file = `${p.name.replace(/-/g, '_')}-${p.version}-py3-none-any.whl`;
        files[file] = readFileSync(join(dir, file));
        return { project: normalise(p.name), file, sha256: createHash('sha256').update(files[file]).digest('hex') };
    });
    const tarballs = npm.map((p) => {
        const file = `${p.name}-${p.version}.tgz`;
        files[file] = readFileSync(join(dir, file));
        return { ...p, file };
    });

    const requests = [];
    let base = '';
    const server = createServer((req, res) => {
        const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
        requests.push(path);
        const send = (status, type, body) => {
            res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
            res.end(body);
        };
        let m;
        if (stall.includes(path)) return; // never answered: until close()
        if ((m = path.match(/^\/simple\/([^/]+)\/?$/))) {
            const links = wheels.filter((w) => w.project === normalise(m[1]));
            if (!links.length) return send(404, 'text/plain', 'no such project\n');
            const body = '<!DOCTYPE html><html><body>\n' +
                links.map((w) => `<a href="${base}/files/${w.file}#sha256=${w.sha256}">${w.file}</a><br/>`).join('\n') +
                '\n</body></html>\n';
            return send(200, 'text/html', body);
        }
        if ((m = path.match(/^\/files\/([^/]+)$/)) && files[m[1]]) return send(200, 'application/octet-stream', files[m[1]]);
        if ((m = path.match(/^\/npm\/(.+)\/-\/([^/]+\.tgz)$/)) && files[m[2]]) return send(200, 'application/octet-stream', files[m[2]]);
        if ((m = path.match(/^\/npm\/([^/]+)$/))) {
            const pkgs = tarballs.filter((t) => t.name === m[1]);
            if (!pkgs.length) return send(404, 'application/json', JSON.stringify({ error: 'Not found' }));
            const versions = {};
            for (const t of pkgs) {
                const data = files[t.file];
                versions[t.version] = {
                    name: t.name, version: t.version, main: 'index.js',
                    dist: {
                        tarball: `${base}/npm/${t.name}/-/${t.file}`,
                        shasum: createHash('sha1').update(data).digest('hex'),
                        integrity: 'sha512-' + createHash('sha512').update(data).digest('base64'),
                    },
                };
            }
            const latest = pkgs[pkgs.length - 1].version;
            return send(200, 'application/json', JSON.stringify({ name: m[1], 'dist-tags': { latest }, versions }));
        }
        send(404, 'text/plain', 'not found\n');
    });
    await new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, host, resolve);
    });
    const port = server.address().port;
    base = `http://${host}:${port}`;
    return {
        host, port, url: base, pipIndex: `${base}/simple/`, npmRegistry: `${base}/npm/`, requests, files,
        close: () => new Promise((resolve) => { server.closeAllConnections?.(); server.close(resolve); }),
    };
}
