// kernels.mjs: every language's kernel through the official SDK client (issue 15).
//
// For each language, in a sandbox made from that language's template: state kept across three
// calls, an error with a useful message, an infinite loop stopped by the timeout with the kernel
// still answering and its state kept, stdin, and a rich result where the language has one (a PNG
// from R and from JavaScript). Then what a careless or hostile caller sends: an unknown language
// (the error names the available ones), a cell that prints 100 MB (capped like Python's), a
// compile that never ends (the timeout stops it), a kernel that crashes (restarted; the next
// result says its state was lost); and in the default sandbox, one kernel per language, started
// on first use and kept.
//
// CELLBLOCK_LANGUAGES=js,go limits the run to some languages (for working on one).
import { brief, check, imagesOf, mainResult, note, run, sc, section, startServer, textOf, withDeadline } from './lib.mjs';

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

// A 1x1 PNG built here (zlib from node's standard library; CRCs computed), for JavaScript's
// display.png: the test knows the exact bytes it expects back.
import { deflateSync } from 'node:zlib';
function crc32(buf) {
    let c = ~0;
    for (const b of buf) {
        c ^= b;
        for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
    }
    return ~c >>> 0;
}
function chunk(type, data) {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(td));
    return Buffer.concat([len, td, crc]);
}
const IHDR = Buffer.from([0, 0, 0, 1, 0, 0, 0, 1, 8, 2, 0, 0, 0]); // 1x1, 8-bit RGB
const TINY_PNG = Buffer.concat([PNG_SIGNATURE, chunk('IHDR', IHDR), chunk('IDAT', deflateSync(Buffer.from([0, 255, 0, 0]))), chunk('IEND', Buffer.alloc(0))]);

// What each language is asked. state: three cells, the third's output must match `expect`
// (the main result's text/plain, else stdout). error: a cell that fails, and what the error must
// say. loop: a cell that never ends. after: a cell run after the loop that shows the state kept.
// stdin: a cell that reads a line and greets it.
const LANGS = {
    javascript: {
        template: 'node', alias: 'JS',
        state: ['let x = 40', 'function add(a) { return a + 2 }', 'add(x)'], expect: /^42$/,
        error: ['null.foo', /TypeError/], loop: 'while (true) {}', after: ['x + 1', /^41$/],
        stdin: 'const who = input("who? ")\nconsole.log("hello " + who)',
        rich: { code: `display.png("${TINY_PNG.toString('base64')}")`, png: TINY_PNG },
    },
    typescript: {
        template: 'typescript', alias: 'ts',
        state: ['let x: number = 40', 'function add(a: number): number { return a + 2 }', 'add(x)'], expect: /^42$/,
        error: ['let s: number = "text"', /TS2322|not assignable/], loop: 'while (true) {}', after: ['x + 1', /^41$/],
        stdin: 'const who: string = input("who? ")\nconsole.log("hello " + who)',
    },
    bash: {
        template: 'bash', alias: 'sh',
        state: ['x=40', 'add() { echo $(( $1 + 2 )); }', 'add $x'], expect: /^42\n?$/,
        error: ['if then fi', /syntax error/], loop: 'while :; do :; done', after: ['echo $((x + 1))', /^41\n?$/],
        stdin: 'read who\necho "hello $who"',
    },
    r: {
        template: 'r', alias: 'R',
        state: ['x <- 40', 'add <- function(a) a + 2', 'add(x)'], expect: /42/,
        error: ['stop("boom here")', /boom here/], loop: 'while (TRUE) {}', after: ['x + 1', /41/],
        stdin: 'who <- readline("who? ")\ncat("hello", who, "\\n")',
        rich: { code: 'plot(1:10)' },
    },
    java: {
        template: 'java', alias: 'Java',
        state: ['int x = 40;', 'int add(int a) { return a + 2; }', 'add(x)'], expect: /^42$/,
        error: ['Integer.parseInt("nope")', /NumberFormatException/], loop: 'while (true) {}', after: ['x + 1', /^41$/],
        stdin: 'var in = new java.util.Scanner(System.in);\nSystem.out.println("hello " + in.nextLine());',
    },
    ruby: {
        template: 'ruby', alias: 'rb',
        state: ['x = 40', 'def add(a) = a + 2', 'add(x)'], expect: /^42$/,
        error: ['raise ArgumentError, "boom here"', /ArgumentError[\s\S]*boom here|boom here/], loop: 'loop {}', after: ['x + 1', /^41$/],
        stdin: 'who = gets.chomp\nputs "hello #{who}"',
    },
    c: {
        template: 'c', alias: 'C',
        state: ['#include <stdio.h>\nint x = 40;', 'int add(int a) { return a + 2; }', 'printf("%d\\n", add(x));'], expect: /^42\n$/,
        error: ['int y = ;', /cell\[\d+\]:1/], loop: 'while (1) {}', after: ['printf("%d\\n", add(x) - 1);', /^41\n$/],
        stdin: 'char who[64];\nif (fgets(who, sizeof who, stdin)) printf("hello %s", who);',
    },
    cpp: {
        template: 'cpp', alias: 'c++',
        state: ['#include <iostream>\nint x = 40;', 'int add(int a) { return a + 2; }', 'std::cout << add(x) << std::endl;'], expect: /^42\n$/,
        error: ['int y = ;', /cell\[\d+\]:1/], loop: 'while (true) {}', after: ['std::cout << add(x) - 1 << std::endl;', /^41\n$/],
        stdin: '#include <string>\nstd::string who;\nstd::getline(std::cin, who);\nstd::cout << "hello " << who << std::endl;',
    },
    rust: {
        template: 'rust', alias: 'rs',
        state: ['const X: i32 = 40;', 'fn add(a: i32) -> i32 { a + 2 }', 'println!("{}", add(X));'], expect: /^42\n$/,
        error: ['let y: i32 = "text";', /cell\[\d+\]:1/], loop: 'loop {}', after: ['println!("{}", add(X) - 1);', /^41\n$/],
        stdin: 'let mut who = String::new();\nstd::io::stdin().read_line(&mut who).unwrap();\nprint!("hello {}", who);',
    },
    go: {
        template: 'go', alias: 'golang',
        state: ['import "fmt"\nvar x = 40', 'func add(a int) int { return a + 2 }', 'fmt.Println(add(x))'], expect: /^42\n$/,
        error: ['var y int = "text"\n_ = y', /cell\[\d+\]:1/], loop: 'for {}', after: ['fmt.Println(add(x) - 1)', /^41\n$/],
        stdin: 'import ("bufio"; "os")\nwho, _ := bufio.NewReader(os.Stdin).ReadString(\'\\n\')\nfmt.Print("hello " + who)',
    },
};

const only = (process.env.CELLBLOCK_LANGUAGES ?? '').split(',').filter(Boolean);
const chosen = Object.keys(LANGS).filter((l) => only.length === 0 || only.includes(l));

// What a cell showed: the main result's text, else the text of its displays (IRkernel shows a
// value as display_data), else its stdout.
const shown = (r) => mainResult(r) ?? ((sc(r).results ?? []).map((x) => x.data?.['text/plain'] ?? '').join('') || (sc(r).stdout ?? ''));

await run(async () => {
    const srv = await startServer({ label: 'languages server' });

    for (const lang of chosen) {
        const L = LANGS[lang];
        await section(`${lang}: state, errors, a stopped loop, stdin${L.rich ? ', a rich result' : ''}`, async () => {
            const made = await withDeadline(srv.call('sandbox_create', { template: L.template }), 120000, `sandbox_create ${L.template}`);
            check(!made.isError, `sandbox_create {template: "${L.template}"} works`, brief(made));
            const sid = sc(made).sandbox_id;
            // The alias (another case, another name) reaches the same kernel as the template's.
            const exec = (code, extra = {}) => withDeadline(srv.call('code_execute', { sandbox_id: sid, language: L.alias, code, timeout_s: 60, ...extra }), 120000, `${lang}: ${code.slice(0, 40)}`);
            const t0 = Date.now();
            let r;
            for (const code of L.state) r = await exec(code);
            check(!r.isError && L.expect.test(shown(r)), `${lang}: state kept across three calls (${L.state.join(' | ')} -> 42)`, brief(r));
            note(`${lang}: three cells (kernel start included) in ${Date.now() - t0} ms`);

            r = await exec(L.error[0]);
            const said = `${sc(r).error?.ename ?? ''}: ${sc(r).error?.evalue ?? ''}\n${(sc(r).error?.traceback ?? []).join('\n')}\n${textOf(r)}`;
            check(r.isError === true && sc(r).status === 'error' && L.error[1].test(said), `${lang}: an error comes back with a useful message (${L.error[1]})`, brief(r));

            r = await withDeadline(srv.call('code_execute', { sandbox_id: sid, language: lang, code: L.loop, timeout_s: 2 }), 60000, `${lang}: the loop`);
            check(sc(r).status === 'timeout' && r.isError === true, `${lang}: an infinite loop is stopped by timeout_s 2 (status timeout)`, brief(r));
            r = await exec(L.after[0]);
            check(!r.isError && L.after[1].test(shown(r)) && !sc(r).kernel_restarted, `${lang}: after the loop the kernel answers with its state kept, not restarted`, brief(r));

            r = await exec(L.stdin, { stdin: 'world\n' });
            check(!r.isError && /hello world/.test(sc(r).stdout ?? ''), `${lang}: a line of stdin reaches the code`, brief(r));
            const t1 = Date.now();
            r = await exec(L.stdin);
            check(sc(r).status !== 'timeout' && !/hello world/.test(sc(r).stdout ?? '') && Date.now() - t1 < 30000,
                `${lang}: without stdin, reading it ends at once (no hang until the timeout)`, `${Date.now() - t1} ms; ${brief(r)}`);

            if (L.rich) {
                r = await exec(L.rich.code);
                const img = imagesOf(r)[0];
                const png = img ? Buffer.from(img.data, 'base64') : Buffer.alloc(0);
                const good = L.rich.png ? png.equals(L.rich.png) : png.subarray(0, 8).equals(PNG_SIGNATURE) && png.length > 1000;
                check(!r.isError && img?.mimeType === 'image/png' && good, `${lang}: a PNG comes back as an image block`, brief(r));
            }
            await srv.call('sandbox_delete', { sandbox_id: sid });
        });
    }

    await section('the default sandbox: one kernel per language, started on first use and kept', async () => {
        const two = chosen.filter((l) => l === 'javascript' || l === 'bash');
        if (two.length < 2) return note('needs javascript and bash');
        let r = await srv.callOk('code_execute', { language: 'javascript', code: 'var kept = "js"' });
        const sid = sc(r).sandbox_id;
        r = await srv.callOk('code_execute', { language: 'bash', code: 'kept=bash' });
        check(sc(r).sandbox_id === sid, 'bash runs in the same default sandbox', brief(r));
        r = await srv.callOk('code_execute', { language: 'node', code: 'kept' });
        check(mainResult(r) === "'js'", 'javascript (as "node") comes back to its own kernel: kept is "js"', brief(r));
        r = await srv.callOk('code_execute', { language: 'shell', code: 'echo $kept' });
        check(sc(r).stdout === 'bash\n', 'bash (as "shell") keeps its own variable', brief(r));
        r = await srv.callOk('code_execute', { code: 'kept = "py"\nkept' });
        check(mainResult(r) === "'py'", 'python, the default, is a third kernel', brief(r));
    });

    await section('an unknown language names the available ones', async () => {
        const r = await srv.call('code_execute', { language: 'cobol', code: 'DISPLAY "HI".' });
        check(r.isError === true && /cobol/.test(textOf(r)) && /javascript/.test(textOf(r)) && /python/.test(textOf(r)),
            'language "cobol" is refused with the list of languages', brief(r));
    });

    if (chosen.includes('javascript')) {
        await section('javascript: 100 MB of output is capped, the kernel keeps answering', async () => {
            const r = await withDeadline(srv.call('code_execute', { language: 'javascript', code: 'const line = "x".repeat(1023) + "\\n"; for (let i = 0; i < 100 * 1024; i++) process.stdout.write(line); "done"', timeout_s: 120 }), 180000, 'the 100 MB cell');
            const out = sc(r).stdout ?? '';
            check(!r.isError && mainResult(r) === "'done'", 'the cell ends normally', brief(r).slice(0, 600));
            check(out.length < 1024 * 1024 && sc(r).truncated === true, 'the output is capped (structuredContent.truncated, under 1 MiB shown)', `${out.length} chars of stdout; ${brief(r).slice(0, 600)}`);
            const after = await srv.call('code_execute', { language: 'javascript', code: '6 * 7' });
            check(mainResult(after) === '42', 'the kernel answers after it', brief(after));
        });
        await section('javascript: a kernel that crashes is restarted and the next result says so', async () => {
            await srv.callOk('code_execute', { language: 'javascript', code: 'var before = 1' });
            await srv.call('code_execute', { language: 'javascript', code: 'process.kill(process.pid, "SIGKILL")' });
            const r = await withDeadline(srv.call('code_execute', { language: 'javascript', code: 'typeof before' }), 120000, 'the cell after the crash');
            check(sc(r).kernel_restarted === true && mainResult(r) === "'undefined'", 'the next cell runs in a restarted kernel (kernel_restarted, before is gone)', brief(r));
        });
    }

    if (chosen.includes('cpp')) {
        await section('c++: a compile that never ends is stopped by the timeout', async () => {
            // 4e10 steps of constant evaluation: g++ works on it for minutes in 130 MB.
            const spin = 'constexpr long spin() { long s = 0; for (int i = 0; i < 200000; i++) for (int j = 0; j < 200000; j++) s += i ^ j; return s; }\nconstexpr long v = spin();';
            const r = await withDeadline(srv.call('code_execute', { language: 'cpp', code: spin, timeout_s: 3 }), 60000, 'the endless compile');
            check(sc(r).status === 'timeout', 'status timeout', brief(r));
            const after = await withDeadline(srv.call('code_execute', { language: 'cpp', code: '#include <cstdio>\nstd::printf("still here\\n");' }), 60000, 'the cell after');
            check(!after.isError && sc(after).stdout === 'still here\n', 'the next cell compiles and runs', brief(after));
        });
    }
});
