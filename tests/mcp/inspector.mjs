// inspector.mjs: a smoke run of the MCP Inspector's CLI mode (@modelcontextprotocol/inspector-cli)
// against cellblock mcp: tools/list, then tools/call run_code print(6*7) -> 42.
//
//   mcp-inspector-cli --cli CELLBLOCK mcp --method tools/list
//   mcp-inspector-cli --cli CELLBLOCK mcp --method tools/call --tool-name run_code --tool-arg 'code=print(6*7)'
//
// Two quirks of inspector-cli 1.0.3: its launcher spawns `node` from PATH (so the directory of
// the node running this test goes first on PATH), and it finds its own package.json through
// "../package.json" relative to the *working directory*, so it runs from its build/ directory.
// Node 18.20 or newer is enough (it uses import attributes); it does not need Node 22.
import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ALL_TOOLS, BIN, HERE, alive, check, processTable, run, runProgram, safeJson, tempDir, waitUntil } from './lib.mjs';

const INSPECTOR = join(HERE, 'node_modules', '.bin', 'mcp-inspector-cli');
const CWD = join(HERE, 'node_modules', '@modelcontextprotocol', 'inspector-cli', 'build');
const [maj, min] = process.versions.node.split('.').map(Number);
if (maj < 18 || (maj === 18 && min < 20)) {
    console.log(`SKIP: the MCP Inspector CLI needs node >= 18.20 (import attributes); this is ${process.version}`);
    process.exit(77);
}

// Processes (not zombies) whose environment carries our tag: the servers the inspector started.
function tagged(tag) {
    const out = [];
    const table = processTable();
    for (const e of readdirSync('/proc')) {
        if (!/^\d+$/.test(e)) continue;
        try {
            if (readFileSync(`/proc/${e}/environ`, 'latin1').includes(`CB_MCP_INSPECTOR_TAG=${tag}`)) out.push([Number(e), table.get(Number(e))?.start]);
        } catch {}
    }
    return out.filter(([p, s]) => s && alive(p, s));
}

async function inspector(args, what) {
    const tag = randomUUID();
    const env = { ...process.env, PATH: `${dirname(process.execPath)}:${process.env.PATH ?? '/usr/bin:/bin'}`, CB_MCP_INSPECTOR_TAG: tag,
        CELLBLOCK_STATE_DIR: tempDir('cb-state-') };
    const p = await runProgram(process.execPath, [INSPECTOR, '--cli', BIN, 'mcp', ...args], { env, cwd: CWD, ms: 90000 });
    let json = null;
    try {
        json = JSON.parse(p.stdout);
    } catch {}
    check(p.code === 0 && json !== null, `inspector ${what}: exits 0 and prints JSON`, safeJson({ code: p.code, stdout: p.stdout.slice(0, 1500), stderr: p.stderr.slice(-1500) }));
    try {
        await waitUntil(() => tagged(tag).length === 0, 10000, 'servers gone');
        check(true, `inspector ${what}: the server it started is gone`);
    } catch {
        const left = tagged(tag);
        check(false, `inspector ${what}: the server it started is gone`, safeJson(left));
        for (const [pid] of left) {
            try {
                process.kill(pid, 'SIGKILL');
            } catch {}
        }
    }
    return json;
}

await run(async () => {
    const list = await inspector(['--method', 'tools/list'], 'tools/list');
    const names = (list?.tools ?? []).map((t) => t.name);
    const missing = ALL_TOOLS.filter((n) => !names.includes(n));
    check(names.length > 0 && missing.length === 0, 'inspector tools/list shows every tool', `missing: ${missing.join(', ')}`);

    const call = await inspector(['--method', 'tools/call', '--tool-name', 'run_code', '--tool-arg', 'code=print(6*7)'], 'tools/call run_code');
    const text = (call?.content ?? []).map((b) => b.text ?? '').join('\n');
    check(call && call.isError !== true && /\b42\b/.test(text), 'inspector tools/call run_code print(6*7) shows 42', safeJson(call));
    check(/\b42\b/.test(call?.structuredContent?.stdout ?? ''), 'its structuredContent.stdout has 42', safeJson(call?.structuredContent));
});
