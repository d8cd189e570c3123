// languages.mjs: `language` on code_execute and session_create, through the one alias table
// (jupyter/catalog.c): aliases in any case reach the same kernel and keep its state; an unknown
// language is refused with the list of what runs here; a language whose toolchain is missing
// (a kernelspec whose metadata.cellblock.requires names an absent path) is refused naming the
// Debian package, by code_execute and by sandbox_create {template} alike. The real language
// kernels are not needed: Python serves for the state checks, and the unavailable kernel is a
// spec of this test's own, in a data directory that holds only it, python3 and two templates.
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { HERE, brief, check, mainResult, run, safeJson, section, sc, startServer, tempDir, textOf } from './lib.mjs';

const NAMES = ['python', 'javascript', 'typescript', 'bash', 'java', 'ruby', 'rust', 'golang', 'cpp'];

await run(async () => {
    const srv = await startServer({ label: 'languages server' });
    await section('the tools say which languages there are', async () => {
        const { tools } = await srv.client.listTools();
        const desc = tools.find((t) => t.name === 'code_execute')?.inputSchema?.properties?.language?.description ?? '';
        check(NAMES.every((n) => desc.includes(n)), 'code_execute\'s language lists every language and alias', desc);
        const sessionLang = tools.find((t) => t.name === 'session_create')?.inputSchema?.properties?.language;
        check(sessionLang?.type === 'string', 'session_create takes a language', safeJson(sessionLang));
    });

    await section('aliases reach one kernel, which keeps its state', async () => {
        let r = await srv.callOk('code_execute', { language: 'PY', code: 'kept = 41' });
        const session = sc(r).session_id;
        r = await srv.callOk('code_execute', { language: 'python3', code: 'kept + 1' });
        check(mainResult(r) === '42' && sc(r).session_id === session,
            '"PY" and "python3" run in the same kernel, whose state is kept', brief(r));
        r = await srv.callOk('code_execute', { code: 'kept' });
        check(mainResult(r) === '41' && sc(r).session_id === session,
            'which is the sandbox\'s main kernel', brief(r));
        r = await srv.callOk('session_create', { type: 'jupyter', language: 'Python' });
        const other = sc(r).session_id;
        check(other && other !== session && sc(r).kernel === 'python3',
            'session_create {language} opens a new session of that language\'s kernel', brief(r));
    });

    await section('an unknown language', async () => {
        const r = await srv.call('code_execute', { language: 'cobol', code: '1' });
        const text = textOf(r);
        check(r.isError === true && text.includes("unknown language 'cobol'") &&
            /languages that run here: .*python/.test(text) && text.includes('golang'),
            'is refused with the languages that run here and every name', brief(r));
    });
    await srv.close();

    // A data directory with python3, and a go kernel whose toolchain is not there.
    const data = tempDir('cb-mcp-lang-');
    mkdirSync(join(data, 'kernels', 'python3'), { recursive: true });
    mkdirSync(join(data, 'kernels', 'go'), { recursive: true });
    mkdirSync(join(data, 'templates'), { recursive: true });
    copyFileSync(join(HERE, '..', '..', 'kernels', 'python3', 'kernel.json'), join(data, 'kernels', 'python3', 'kernel.json'));
    writeFileSync(join(data, 'kernels', 'go', 'kernel.json'), JSON.stringify({
        argv: ['{cellblock_libexec}/cellblock-kernel', 'go', '-f', '{connection_file}'],
        display_name: 'Go (test)', language: 'go', interrupt_mode: 'message',
        metadata: { cellblock: { requires: [{ path: '/nonexistent/cellblock-test/go', package: 'golang-go' }] } },
    }));
    writeFileSync(join(data, 'templates', 'python.json'), JSON.stringify({ description: 'python', kernel: 'python3' }));
    writeFileSync(join(data, 'templates', 'go.json'), JSON.stringify({ description: 'go', kernel: 'go' }));
    const bare = await startServer({
        label: 'server without go',
        env: { CELLBLOCK_DATA_DIR: data, JUPYTER_PATH: join(data, 'none'), JUPYTER_DATA_DIR: join(data, 'none'), CELLBLOCK_POOL: 'python=0' },
    });
    await section('a language whose toolchain is missing', async () => {
        let r = await bare.call('code_execute', { language: 'golang', code: 'fmt.Println(1)' });
        let text = textOf(r);
        check(r.isError === true && text.includes('/nonexistent/cellblock-test/go') && text.includes('golang-go') &&
            text.includes('scripts/install-deps.sh') && /languages that run here: .*python/.test(text),
            'code_execute names the missing path, its package, and what runs here', brief(r));
        r = await bare.call('sandbox_create', { template: 'go' });
        text = textOf(r);
        check(r.isError === true && text.includes('the go kernel needs /nonexistent/cellblock-test/go from the Debian package golang-go'),
            'sandbox_create {template: "go"} is refused naming the package', brief(r));
        r = await bare.callOk('code_execute', { language: 'python', code: '6 * 7' });
        check(mainResult(r) === '42', 'python still runs there', brief(r));
    });
    await bare.close();
});
