// packages.mjs: packages installed at run time (issue 16, "Packages at run time"), through the
// SDK client, with no internet: the test serves its own PyPI "simple" index and npm registry on
// host loopback (registries.mjs, 127.0.0.2: inside a sandbox 127.0.0.1 is the sandbox's own
// loopback) and allow-lists exactly that address:port in sandbox_create's network.
//
// - The Python environment: pip's user scheme in the workspace (no PEP 668 refusal), the user
//   site-packages on the kernel's sys.path from the start, so `!pip install` makes a package
//   importable in the running kernel at once; a persistent sandbox keeps it after reopening.
// - code_execute's `packages`: installed with pip (python) or npm (javascript, typescript), then the code runs
//   with none of the installer's output in its stdout; names that are options or hold whitespace
//   are refused before anything starts; other languages are refused naming what is supported.
// - A registry the policy does not allow: the install fails clearly (the proxy's 403, the
//   sandbox's network log line), and the code does not run.
import { brief, check, deferred, mainResult, note, run, safeJson, section, sc, startServer, tempDir, textOf, waitUntil, withDeadline } from './lib.mjs';
import { startRegistries } from './registries.mjs';

const PY = [
    { name: 'cb-demo', version: '1.0', module: 'cb_demo', source: 'VALUE = 42\n' },
    { name: 'cb-second', version: '2.0', module: 'cb_second', source: 'VALUE = 43\n' },
    { name: 'cb-offline', version: '1.0', module: 'cb_offline', source: 'VALUE = 7\n' },
    { name: 'cb-magic', version: '1.0', module: 'cb_magic', source: 'VALUE = 8\n' },
];
const NPM = [
    { name: 'cb-npm-demo', version: '1.0.0', main: 'module.exports = { answer: 42 };\n' },
    { name: 'cb-npm-two', version: '2.0.0', main: 'module.exports = { answer: 44 };\n' },
];

await run(async () => {
    const reg = await startRegistries({ dir: tempDir('cb-reg-'), python: PY, npm: NPM, stall: ['/simple/cb-stalled/'] });
    // A second registry on another port, which no sandbox here allows.
    const blocked = await startRegistries({ dir: tempDir('cb-reg-'), python: PY.slice(0, 1), npm: [] });
    const srv = await startServer({ label: 'packages server' });
    const allow = `${reg.host}:${reg.port}`;
    const env = { PIP_INDEX_URL: reg.pipIndex, npm_config_registry: reg.npmRegistry };
    let r;

    // ---- the environment, with no network at all: installs from files in the workspace ------
    let plain;
    await section('the Python environment: user scheme in the workspace, seen by a running kernel', async () => {
        r = await srv.callOk('sandbox_create', {});
        plain = sc(r).sandbox_id;
        r = await srv.callOk('code_execute', { sandbox_id: plain, code:
            'import os, site, sys\nprint(site.getusersitepackages() in sys.path, os.environ.get("PIP_BREAK_SYSTEM_PACKAGES"), os.environ.get("PYTHONUSERBASE"))' });
        check(sc(r).stdout === 'True 1 /home/user/.local\n', 'the kernel starts with the user site-packages on sys.path, PIP_BREAK_SYSTEM_PACKAGES=1, PYTHONUSERBASE=/home/user/.local', brief(r));
        r = await srv.call('code_execute', { sandbox_id: plain, code: 'import cb_offline' });
        check(sc(r).error?.ename === 'ModuleNotFoundError', 'before the install the kernel cannot import it', brief(r));
        await srv.callOk('file_upload', { sandbox_id: plain, path: 'cb_offline-1.0-py3-none-any.whl',
            content: reg.files['cb_offline-1.0-py3-none-any.whl'].toString('base64'), encoding: 'base64' });
        r = await withDeadline(srv.call('command_execute', { sandbox_id: plain, command: 'pip install --no-index ./cb_offline-1.0-py3-none-any.whl' }), 60000, 'pip install of a wheel');
        check(!r.isError && !/externally-managed/.test(sc(r).stderr ?? ''), 'pip install in a command works (no PEP 668 refusal)', brief(r));
        r = await srv.call('code_execute', { sandbox_id: plain, code: 'import cb_offline\nprint(cb_offline.VALUE, cb_offline.__file__)' });
        check(/^7 \/home\/user\/\.local\/lib\/python3\.\d+\/site-packages\/cb_offline\/__init__\.py\n$/.test(sc(r).stdout ?? ''),
            'the running kernel imports it at once, from the workspace', brief(r));
    });

    await section('packages: names that could be options, or more than one name, are refused', async () => {
        const before = reg.requests.length;
        const bad = [
            [['--index-url=http://127.0.0.2:1/simple/'], /starts with '-'/],
            [['-e', 'x'], /starts with '-'/],
            [['cb-demo --pre'], /whitespace or a control character/],
            [['cb-demo\n--pre'], /whitespace or a control character/],
            [['cb\tdemo'], /whitespace or a control character/],
            [[''], /1 to 256 bytes/],
            [[42], /must be a string/],
        ];
        for (const [packages, why] of bad) {
            r = await srv.call('code_execute', { sandbox_id: plain, packages, code: 'open("/home/user/ran", "w").write("ran")' });
            check(r.isError === true && why.test(textOf(r)), `packages ${JSON.stringify(packages)} is refused: ${why}`, brief(r));
        }
        r = await srv.call('run_code', { packages: ['--user'], code: 'print(1)' });
        check(r.isError === true && /starts with '-'/.test(textOf(r)), 'run_code refuses the same', brief(r));
        r = await srv.call('command_execute', { sandbox_id: plain, command: 'test -e /home/user/ran && echo ran || echo no' });
        check(sc(r).stdout === 'no\n', 'none of that code ran', brief(r));
        check(reg.requests.length === before, 'nothing reached the registry', safeJson(reg.requests.slice(before)));
        r = await srv.call('code_execute', { sandbox_id: plain, language: 'bash', packages: ['jq'], code: 'echo ran' });
        check(r.isError === true && /python \(pip\)/.test(textOf(r)) && !/^ran/m.test(textOf(r)),
            'packages for another language (bash) is refused, naming what is supported', brief(r));
    });

    // ---- through the proxy, from the test's registries --------------------------------------
    let net;
    await section('a sandbox allowed to reach the test registry', async () => {
        r = await srv.call('sandbox_create', { network: { allow: [allow] }, env, persist: true });
        check(!r.isError && sc(r).sandbox_id, `sandbox_create {network: {allow: ["${allow}"]}, env: PIP_INDEX_URL, npm_config_registry, persist}`, brief(r));
        net = sc(r).sandbox_id;
    });

    await section('!pip install in the kernel, then import in the same kernel', async () => {
        if (!net) return check(false, 'needs the sandbox with network access above');
        r = await srv.call('code_execute', { sandbox_id: net, code: 'import cb_demo' });
        check(sc(r).error?.ename === 'ModuleNotFoundError', 'cb_demo is not there yet', brief(r));
        r = await withDeadline(srv.call('code_execute', { sandbox_id: net, code: '!pip install cb-demo' }), 60000, '!pip install');
        check(/Successfully installed cb-demo-1\.0/.test(sc(r).stdout ?? ''), '!pip install cb-demo installs it from the test index through the proxy', brief(r));
        check(reg.requests.includes('/simple/cb-demo/') && reg.requests.includes('/files/cb_demo-1.0-py3-none-any.whl'),
            'pip fetched the index page and the wheel from the test registry', safeJson(reg.requests));
        r = await srv.call('code_execute', { sandbox_id: net, code: 'import cb_demo\ncb_demo.VALUE' });
        check(!r.isError && mainResult(r) === '42', 'the running kernel imports it at once', brief(r));
        r = await withDeadline(srv.call('code_execute', { sandbox_id: net, code: '%pip install cb-magic\nimport cb_magic\nprint(cb_magic.VALUE)' }), 60000, '%pip install');
        check(!r.isError && /\n8\n$/.test(sc(r).stdout ?? ''), '%pip install cb-magic, then import in the same cell', brief(r));
    });

    await section('code_execute packages: install, then run', async () => {
        if (!net) return check(false, 'needs the sandbox with network access above');
        const progress = [];
        r = await withDeadline(srv.call('code_execute', { sandbox_id: net, packages: ['cb-second==2.0'], code: 'import cb_second\nprint(cb_second.VALUE)' },
            { onprogress: (p) => progress.push(p.message ?? '') }), 60000, 'code_execute with packages');
        check(!r.isError && sc(r).status === 'ok' && sc(r).stdout === '43\n', 'the package is installed, then the code runs; its stdout holds only the code\'s output', brief(r));
        check(reg.requests.includes('/simple/cb-second/'), 'pip asked the test index for cb-second', safeJson(reg.requests));
        check(/^installed with pip first \(.*\): cb-second==2\.0$/.test(sc(r).notes?.[0] ?? '') && /\[note\] installed with pip first/.test(textOf(r)),
            'a note in the result says what was installed first', brief(r));
        check(progress.some((m) => m.includes('[pip install cb-second==2.0]')) && progress.some((m) => /Successfully installed cb-second-2\.0/.test(m)),
            'the install\'s output went to progress notifications instead', safeJson(progress));

        r = await withDeadline(srv.call('code_execute', { sandbox_id: net, language: 'javascript', packages: ['cb-npm-demo'], code: "require('cb-npm-demo').answer" }), 60000, 'npm packages');
        check(!r.isError && mainResult(r) === '42', 'javascript: npm installs cb-npm-demo, and require finds it in the JS kernel', brief(r));
        check(reg.requests.includes('/npm/cb-npm-demo') && reg.requests.includes('/npm/cb-npm-demo/-/cb-npm-demo-1.0.0.tgz'),
            'npm fetched the packument and the tarball from the test registry', safeJson(reg.requests));
        // npm install in a command; the JS kernel, running already, requires it at once.
        r = await withDeadline(srv.call('command_execute', { sandbox_id: net, command: 'npm install cb-npm-two' }), 60000, 'npm install');
        check(!r.isError, 'npm install cb-npm-two in a command (from /home/user) works', brief(r));
        r = await srv.call('code_execute', { sandbox_id: net, language: 'javascript', code: "require('cb-npm-two').answer" });
        check(!r.isError && mainResult(r) === '44', 'the running JS kernel requires it at once', brief(r));
        r = await withDeadline(srv.call('code_execute', { sandbox_id: net, language: 'typescript', packages: ['cb-npm-demo@1.0.0'],
            code: "const m: { answer: number } = require('cb-npm-demo'); m.answer + 1" }), 60000, 'npm packages for typescript');
        if (r.isError && /not available here/.test(textOf(r))) note(`no TypeScript kernel here, that check is left out: ${textOf(r).slice(0, 200)}`);
        else check(!r.isError && mainResult(r) === '43', 'typescript: npm installs (a version spec) and the TS kernel requires it', brief(r));
        r = await srv.call('command_execute', { sandbox_id: net, command: 'test -f /home/user/node_modules/cb-npm-demo/index.js && grep -q cb-npm-demo /home/user/package.json && echo yes' });
        check(sc(r).stdout === 'yes\n', 'it went into /home/user/node_modules, saved in /home/user/package.json', brief(r));

        r = await withDeadline(srv.call('code_execute', { sandbox_id: net, packages: ['cb-missing'], code: 'open("/home/user/ran", "w").write("ran")' }), 60000, 'a missing package');
        check(r.isError === true && sc(r).error?.ename === 'PackageInstallError' && /cb-missing/.test(sc(r).error?.evalue ?? '') &&
              /No matching distribution/.test((sc(r).error?.traceback ?? []).join('\n')),
            'a package the index does not have: isError, error PackageInstallError with pip\'s output', brief(r));
        r = await srv.call('command_execute', { sandbox_id: net, command: 'test -e /home/user/ran && echo ran || echo no' });
        check(sc(r).stdout === 'no\n', 'and the code did not run', brief(r));

        // The index never answers for cb-stalled: the install uses up the call's time limit
        // (whether pip is still starting or already waiting on the index when it runs out).
        r = await withDeadline(srv.call('code_execute', { sandbox_id: net, packages: ['cb-stalled'], timeout_s: 2, code: 'open("/home/user/ran", "w").write("ran")' }), 30000, 'a stalled install');
        check(r.isError === true && sc(r).status === 'timeout' && sc(r).error?.ename === 'PackageInstallError' && /time limit/.test(sc(r).error?.evalue ?? ''),
            'an install that outlasts timeout_s: status timeout, PackageInstallError', brief(r));
        r = await srv.call('command_execute', { sandbox_id: net, command: 'test -e /home/user/ran && echo ran || echo no; pgrep -f "[p]ip install" || true' });
        check(sc(r).stdout === 'no\n', 'the code did not run, and the installer was killed', brief(r));

        // A client that gives up (notifications/cancelled) stops the install.
        const abort = new AbortController();
        const started = deferred();
        const call = srv.call('code_execute', { sandbox_id: net, packages: ['cb-stalled'], code: 'open("/home/user/ran", "w").write("ran")' },
            { signal: abort.signal, onprogress: (p) => { if ((p.message ?? '').includes('[pip install cb-stalled]')) started.resolve(); } }).catch((e) => e);
        await withDeadline(started.promise, 20000, 'the install\'s first progress notification');
        abort.abort();
        await call;
        const gone = await waitUntil(async () => {
            const x = await srv.call('command_execute', { sandbox_id: net, command: 'pgrep -f "[p]ip install" || echo none' });
            return sc(x).stdout === 'none\n' ? x : null;
        }, 10000, 'no pip left').catch(() => null);
        check(gone !== null, 'a cancelled call kills its install', brief(gone));
        r = await srv.call('command_execute', { sandbox_id: net, command: 'test -e /home/user/ran && echo ran || echo no' });
        check(sc(r).stdout === 'no\n', 'and its code never runs', brief(r));
    });

    await section('a registry the policy does not allow', async () => {
        if (!net) return check(false, 'needs sandbox_create {network}');
        // The packages preset as well: the usual registries, and still not this one.
        r = await srv.callOk('sandbox_create', { network: { presets: ['packages'], allow: [allow] }, env: { PIP_INDEX_URL: blocked.pipIndex } });
        const other = sc(r).sandbox_id;
        r = await srv.callOk('sandbox_info', { sandbox_id: other });
        const policy = safeJson(sc(r).network);
        check(['pypi.org', 'files.pythonhosted.org', 'registry.npmjs.org'].every((h) => policy.includes(h)) && policy.includes(allow),
            'sandbox_info shows the packages preset expanded (pypi.org, files.pythonhosted.org, registry.npmjs.org) and the test registry', policy);
        r = await withDeadline(srv.call('code_execute', { sandbox_id: other, packages: ['cb-demo'], code: 'open("/home/user/ran", "w").write("ran")' }), 60000, 'blocked registry');
        const all = `${sc(r).error?.evalue ?? ''}\n${(sc(r).error?.traceback ?? []).join('\n')}`;
        check(r.isError === true && sc(r).error?.ename === 'PackageInstallError', 'the install fails: isError, PackageInstallError', brief(r));
        note(`the error: ${sc(r).error?.evalue}`);
        check(/403|refused|network policy/i.test(all) && all.includes(`${blocked.port}`), 'the error says the network policy refused the registry', all);
        check(blocked.requests.length === 0, 'nothing reached the registry that is not allowed', safeJson(blocked.requests));
        r = await srv.call('command_execute', { sandbox_id: other, command: 'test -e /home/user/ran && echo ran || echo no' });
        check(sc(r).stdout === 'no\n', 'and the code did not run', brief(r));
        await srv.callOk('sandbox_delete', { sandbox_id: other });
    });

    await section('a persistent sandbox keeps its packages', async () => {
        if (!net) return check(false, 'needs the sandbox with network access above');
        r = await srv.callOk('sandbox_delete', { sandbox_id: net });
        check(sc(r).workspace_kept === true, 'sandbox_delete keeps the workspace', brief(r));
        r = await srv.callOk('sandbox_create', { sandbox_id: net });
        r = await srv.call('code_execute', { sandbox_id: net, code: 'import cb_demo, cb_second\nprint(cb_demo.VALUE + cb_second.VALUE)' });
        check(!r.isError && sc(r).stdout === '85\n', 'reopened, its kernel imports what was installed before', brief(r));
        r = await srv.callOk('sandbox_info', { sandbox_id: net });
        const policy = sc(r).network ?? {};
        check(policy.mode === 'allow' && (policy.allow ?? []).includes(allow), `reopened without a network argument, it keeps its policy (allow ["${allow}"])`, safeJson(policy));
        r = await srv.call('command_execute', { sandbox_id: net, command: `python3 -m pip download --no-deps --index-url '${reg.pipIndex}' -d /tmp/dl cb_demo >/dev/null 2>&1 && ls /tmp/dl` });
        check(!r.isError && /cb_demo/.test(sc(r).stdout ?? ''), 'and reaches the allowed registry through its proxy again', brief(r));
        await srv.callOk('sandbox_delete', { sandbox_id: net, discard_workspace: true });
    });

    await reg.close();
    await blocked.close();
});
