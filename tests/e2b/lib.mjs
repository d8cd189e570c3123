// lib.mjs: what the E2B SDK test scripts share.
//
//   node <script>.mjs PATH/TO/cellblock          (ctest passes $<TARGET_FILE:cellblock>)
//
// The harness is tests/mcp/lib.mjs's (checks, deadlines, `cellblock serve` started and stopped
// with its process tree followed): everything it exports is exported here too. What this adds:
// - SKIP (exit 77) when tests/e2b/node_modules is missing (scripts/install-deps.sh --test runs
//   `npm ci` here, from package-lock.json: e2b and @e2b/code-interpreter, pinned).
// - startE2B(opts): startServe(opts), then the three environment variables E2B's SDKs read set
//   in this process (E2B_API_URL=<url>/e2b, E2B_SANDBOX_URL=<url>/e2b/sandbox, E2B_API_KEY=the
//   token), so the scripts call the SDKs exactly as their READMEs show. Returns the server
//   object of startServe plus srv.e2b: {apiUrl, sandboxUrl, apiKey}, and srv.raw(path, o):
//   fetch on the server's URL with the token (o.auth false: without), for the edges the SDKs
//   never produce.
// - Sandbox (from `e2b`) and CodeInterpreter (the Sandbox of `@e2b/code-interpreter`), and the
//   SDKs' modules as e2b and ci, for their error classes.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE_E2B = dirname(fileURLToPath(import.meta.url));
if (!existsSync(join(HERE_E2B, 'node_modules', 'e2b', 'package.json')) ||
    !existsSync(join(HERE_E2B, 'node_modules', '@e2b', 'code-interpreter', 'package.json'))) {
    console.log('SKIP: tests/e2b/node_modules is missing: run scripts/install-deps.sh --test (npm ci in tests/e2b)');
    process.exit(77);
}

export * from '../mcp/lib.mjs';
import { startServe, withDeadline } from '../mcp/lib.mjs';

export const e2b = await import('e2b');
export const ci = await import('@e2b/code-interpreter');
export const Sandbox = e2b.Sandbox;
export const CodeInterpreter = ci.Sandbox;

export async function startE2B(opts = {}) {
    const srv = await startServe(opts);
    srv.e2b = { apiUrl: `${srv.url}/e2b`, sandboxUrl: `${srv.url}/e2b/sandbox`, apiKey: srv.token };
    process.env.E2B_API_URL = srv.e2b.apiUrl;
    process.env.E2B_SANDBOX_URL = srv.e2b.sandboxUrl;
    process.env.E2B_API_KEY = srv.e2b.apiKey;
    srv.raw = (path, o = {}) => {
        const headers = { ...(o.headers ?? {}) };
        if (o.auth !== false) headers['X-API-Key'] = srv.token;
        const body = o.body === undefined || typeof o.body === 'string' || o.body instanceof Uint8Array ? o.body : JSON.stringify(o.body);
        if (body !== undefined && !headers['Content-Type']) headers['Content-Type'] = 'application/json';
        return withDeadline(fetch(`${srv.url}${path}`, { method: o.method ?? (body === undefined ? 'GET' : 'POST'), headers, body, signal: o.signal }),
            o.ms ?? 60000, `${o.method ?? 'request'} ${path}`);
    };
    return srv;
}
