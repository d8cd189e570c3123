'use strict';
/* driver.js: the JavaScript and TypeScript driver of cellblock-kernel.
 *
 *   /usr/bin/node driver.js javascript|typescript
 *
 * Speaks kernels/drivers/PROTOCOL.md: JSON-line requests on fd 3, JSON-line events on fd 4,
 * stdout/stderr are the user's (pipes: Node writes them synchronously on Linux, so whatever a
 * cell printed is in the pipe before the event that follows it).
 *
 * Cells run in Node's main context (vm.Script#runInThisContext), as Node's own REPL does by
 * default: Buffers, errors and arrays made by Node's built-ins are of the same realm as the
 * cell's (instanceof works), and every global Node has (process, fetch, timers...) is simply
 * there. rewrite.js turns top-level declarations into globals so they persist and may be
 * declared again; a cell with top-level await runs as an async function whose promise the driver
 * awaits (and so is a promise a cell's last expression yields).
 *
 * Requests are read with fs.read (a thread-pool read) only while no cell runs; during a cell,
 * input() reads fd 3 with fs.readSync for its input_reply. SIGINT: during the synchronous part of
 * a cell V8 stops the script (breakOnSigint); while the driver awaits the cell's promise, the
 * SIGINT listener rejects that wait; between cells the listener ignores it.
 */
const fs = require('fs');
const path = require('path');
const util = require('util');
const vm = require('vm');
const Module = require('module');
const { rewrite, tokenState } = require('./rewrite');
const introspect = require('./introspect');

const LANGUAGE = process.argv[2] || 'javascript';
const REQ_FD = 3;
const EV_FD = 4;
const DRIVER_DIR = __dirname;
const jsonStringify = JSON.stringify;
const jsonParse = JSON.parse;

if (LANGUAGE !== 'javascript' && LANGUAGE !== 'typescript') {
  fs.writeSync(2, `cellblock node driver: unknown language '${LANGUAGE}' (javascript or typescript)\n`);
  process.exit(2);
}

/* ---- output ---------------------------------------------------------------------------------- */

const sleepCell = new Int32Array(new SharedArrayBuffer(4));
function sleepMs(ms) { Atomics.wait(sleepCell, 0, 0, ms); }

function writeAll(fd, buf) {
  let off = 0;
  while (off < buf.length) {
    try {
      off += fs.writeSync(fd, buf, off, buf.length - off);
    } catch (e) {
      if (e.code === 'EAGAIN' || e.code === 'EINTR') { sleepMs(1); continue; }
      if (fd === EV_FD) {
        try { fs.writeSync(2, `cellblock node driver: events pipe: ${e.message}\n`); } catch (_) { /* gone */ }
        process.exit(1);
      }
      throw e;
    }
  }
}

/* JSON.stringify writes a lone surrogate as a \udxxx escape, which strict JSON readers reject:
 * make it U+FFFD. */
function wellFormed(line) {
  if (!line.includes('\\ud')) return line;
  return line.replace(/(?<!\\)((?:\\\\)*)\\ud[89a-f][0-9a-f]{2}/g, '$1\\ufffd');
}

function emit(ev) { writeAll(EV_FD, Buffer.from(wellFormed(jsonStringify(ev)) + '\n')); }
function logErr(msg) { try { writeAll(2, Buffer.from(msg.endsWith('\n') ? msg : msg + '\n')); } catch (_) { /* nowhere to say it */ } }

/* ---- requests -------------------------------------------------------------------------------- */

let pending = Buffer.alloc(0);
const readBuf = Buffer.allocUnsafe(1 << 16);

function takeLine() {
  const i = pending.indexOf(10);
  if (i < 0) return null;
  const line = pending.subarray(0, i).toString('utf8');
  pending = pending.subarray(i + 1);
  return line;
}

function eofExit() {
  process.exit(0); /* the kernel closed our requests: it is gone */
}

/* The next line of fd 3, blocking (input() during a cell). */
function readLineSync() {
  for (;;) {
    const line = takeLine();
    if (line !== null) return line;
    let n;
    try {
      n = fs.readSync(REQ_FD, readBuf, 0, readBuf.length, null);
    } catch (e) {
      if (e.code === 'EAGAIN' || e.code === 'EINTR') { sleepMs(2); continue; }
      throw e;
    }
    if (n === 0) eofExit();
    pending = Buffer.concat([pending, readBuf.subarray(0, n)]);
  }
}

/* Wait (without blocking the loop) for the next request and handle it. Called only when idle. */
function nextRequest() {
  const line = takeLine();
  if (line !== null) { setImmediate(handleLine, line); return; }
  fs.read(REQ_FD, readBuf, 0, readBuf.length, null, (err, n) => {
    if (err) {
      if (err.code === 'EAGAIN' || err.code === 'EINTR') { setTimeout(nextRequest, 2); return; }
      logErr(`cellblock node driver: reading requests: ${err.message}`);
      process.exit(1);
    }
    if (n === 0) eofExit();
    pending = Buffer.concat([pending, readBuf.subarray(0, n)]);
    nextRequest();
  });
}

function handleLine(line) {
  let req;
  try {
    req = jsonParse(line);
  } catch (e) {
    logErr(`cellblock node driver: a request that is not JSON (${e.message})`);
    nextRequest();
    return;
  }
  if (req === null || typeof req !== 'object') { nextRequest(); return; }
  switch (req.op) {
    case 'execute':
      runCell(req).then(nextRequest, (e) => { logErr(`cellblock node driver: ${e && e.stack}`); nextRequest(); });
      return;
    case 'complete':
      reply('complete_reply', () => introspect.complete(String(req.code || ''), req.cursor_pos),
        { matches: [], cursor_start: 0, cursor_end: 0, metadata: {} });
      break;
    case 'inspect':
      reply('inspect_reply', () => introspect.inspect(String(req.code || ''), req.cursor_pos, req.detail_level | 0),
        { found: false, data: {}, metadata: {} });
      break;
    case 'is_complete':
      reply('is_complete_reply', () => isComplete(String(req.code || '')), { status: 'unknown' });
      break;
    case 'input_reply':
      break; /* late: the input() it answered is gone */
    default:
      logErr(`cellblock node driver: unknown request '${String(req.op)}'`);
  }
  nextRequest();
}

function reply(ev, fn, fallback) {
  let body;
  try {
    body = fn();
  } catch (e) {
    logErr(`cellblock node driver: ${ev}: ${e && e.stack}`);
    body = fallback;
  }
  emit(Object.assign({ ev }, body));
}

/* ---- the running cell ------------------------------------------------------------------------ */

let current = null; /* {count, silent, onInterrupt} while a cell runs */
const INTERRUPTED = Symbol('interrupted');
const positionMaps = new Map(); /* execution count -> (line, col) -> [line, col] in the cell */
let frontEnd = null; /* TypeScript's, when LANGUAGE is typescript */

process.on('SIGINT', () => {
  if (current && current.onInterrupt) current.onInterrupt();
});

/* A throw from these listeners would end the process: they must not throw. */
process.on('uncaughtException', (e) => {
  logErr(`Uncaught ${formatThrown(e)}`);
});
process.on('unhandledRejection', (reason) => {
  logErr(`Unhandled promise rejection: ${formatThrown(reason)}`);
});

function isError(e) {
  return e instanceof Error || util.types.isNativeError(e);
}

function formatThrown(e) {
  try {
    if (isError(e)) return cleanStack(String(e.stack || `${e.name}: ${e.message}`)).join('\n');
    return util.inspect(e, { colors: false });
  } catch (_) {
    return '(a value that cannot be shown)';
  }
}

function mapPositions(text) {
  return text.replace(/cell\[(\d+)\]:(\d+):(\d+)/g, (m, n, line, col) => {
    const map = positionMaps.get(Number(n));
    if (!map) return m;
    const p = map(Number(line), Number(col));
    return p ? `cell[${n}]:${p[0]}:${p[1]}` : `cell[${n}]`;
  });
}

const FRAME_RE = /^\s+at /;
function isDriverFrame(l) {
  return l.includes(DRIVER_DIR + path.sep) || l.includes('(node:vm:') || l.includes('at node:vm:') ||
    l.includes('node:internal/vm');
}

/* A stack as lines: the driver's frames removed, and the frames of Node's internals that follow
 * the last frame of user code; cell positions mapped to the cell's own lines. */
function cleanStack(stack) {
  const lines = stack.split('\n').filter((l) => !(FRAME_RE.test(l) && isDriverFrame(l)));
  while (lines.length > 1 && FRAME_RE.test(lines[lines.length - 1]) && /\(?node:internal\//.test(lines[lines.length - 1])) lines.pop();
  return lines.map(mapPositions);
}

function errorEvent(e) {
  if (e === INTERRUPTED || (e && e.code === 'ERR_SCRIPT_EXECUTION_INTERRUPTED')) {
    return { ev: 'error', ename: 'Interrupted', evalue: 'the cell was interrupted (SIGINT)', traceback: ['Interrupted: the cell was interrupted (SIGINT)'] };
  }
  if (isError(e)) {
    let ename, evalue, stack;
    try {
      ename = String(e.name || 'Error');
      evalue = String(e.message === undefined ? '' : e.message);
      stack = String(e.stack || `${ename}: ${evalue}`);
    } catch (_) {
      ename = 'Error'; evalue = '(an error whose properties throw)'; stack = `${ename}: ${evalue}`;
    }
    return { ev: 'error', ename, evalue, traceback: cleanStack(stack) };
  }
  let shown;
  try { shown = util.inspect(e, { colors: false }); } catch (_) { shown = String(typeof e); }
  return { ev: 'error', ename: 'Error', evalue: `Uncaught ${shown}`, traceback: [`Uncaught ${shown}`] };
}

/* A SyntaxError from compiling cell[N]: Node's stack opens with "cell[N]:LINE", the line and a
 * caret. The event names the line, shows the cell's own text of it. */
function syntaxErrorEvent(e, count, source, map) {
  const stack = String(e.stack || '');
  const m = /^cell\[\d+\]:(\d+)\n[^\n]*\n([^\n]*\^[^\n]*)\n/.exec(stack);
  const msg = `${e.name}: ${e.message}`;
  if (!m) return { ev: 'error', ename: e.name, evalue: e.message, traceback: [msg] };
  const mapped = map ? map(Number(m[1]), 1) : [Number(m[1]), 1];
  const line = mapped ? mapped[0] : Number(m[1]);
  const text = source.split(/\r\n|\n|\r/)[line - 1];
  const tb = [`cell[${count}]:${line}`];
  if (text !== undefined) tb.push(text, m[2]);
  tb.push(msg);
  return { ev: 'error', ename: e.name, evalue: `${e.message} (cell[${count}], line ${line})`, traceback: tb };
}

const inspectOptions = { colors: false, showProxy: true };

async function runCell(req) {
  const count = Number.isInteger(req.execution_count) ? req.execution_count : 0;
  const cell = { count, silent: !!req.silent, onInterrupt: null };
  const code = typeof req.code === 'string' ? req.code : '';
  current = cell;
  try {
    let js = code;
    let map = null;
    let after = null;
    if (frontEnd) {
      const r = frontEnd.prepare(code, count);
      if (r.error) { emit(r.error); return; }
      js = r.js;
      map = r.map;
      after = r.after;
    }
    const compiled = compileCell(js, count);
    if (compiled.error) {
      emit(syntaxErrorEvent(compiled.error, count, code, map));
      return;
    }
    const prefix = compiled.prefix;
    const lineMap = (line, col) => {
      if (line === 1) col = Math.max(1, col - prefix);
      return map ? map(line, col) : [line, col];
    };
    positionMaps.set(count, lineMap);
    if (positionMaps.size > 1000) positionMaps.delete(positionMaps.keys().next().value);
    if (after) after();

    let value = compiled.script.runInThisContext({ breakOnSigint: true, displayErrors: false });
    if (util.types.isPromise(value)) {
      const interrupted = new Promise((resolve, reject) => { cell.onInterrupt = () => reject(INTERRUPTED); });
      /* a promise nothing will settle leaves the loop empty: keep it alive for SIGINT to come */
      const keepAlive = setInterval(() => {}, 1 << 30);
      try {
        value = await Promise.race([value, interrupted]);
      } finally {
        clearInterval(keepAlive);
        cell.onInterrupt = null;
      }
    }
    if (value !== undefined && !cell.silent) {
      emit({ ev: 'result', data: { 'text/plain': util.inspect(value, inspectOptions) }, metadata: {} });
    }
  } catch (e) {
    let ev;
    try {
      ev = errorEvent(e);
    } catch (_) { /* a revoked proxy, a throwing getter... */
      ev = { ev: 'error', ename: 'Error', evalue: '(a thrown value that cannot be shown)', traceback: [] };
    }
    emit(ev);
  } finally {
    cell.onInterrupt = null;
    current = null;
    emit({ ev: 'done' });
  }
}

/* {script, prefix} or {error}: the cell as a sync script, or (top-level await) as an async one. */
function compileCell(js, count) {
  const filename = `cell[${count}]`;
  const trimmed = js.trim();
  /* `{a: 1}` alone is an object, as in Node's REPL */
  if (trimmed.startsWith('{') && trimmed.endsWith('}')) {
    try { return { script: new vm.Script(`(${js}\n)`, { filename }), prefix: 1 }; } catch (_) { /* a block */ }
  }
  const sync = safeRewrite(js, 'sync');
  try {
    return { script: new vm.Script(sync ? sync.code : js, { filename }), prefix: 0 };
  } catch (e) {
    if (!(e instanceof SyntaxError)) return { error: e };
    const ts = tokenState(js);
    if (ts.sawAwait) {
      const asyncCell = safeRewrite(js, 'async');
      if (asyncCell) {
        try { return { script: new vm.Script(asyncCell.code, { filename }), prefix: asyncCell.prefix }; } catch (_) { /* report the first */ }
      }
    }
    return { error: e };
  }
}

function safeRewrite(js, mode) {
  try {
    return rewrite(js, mode);
  } catch (e) { /* deep nesting and the like: run the code as it is */
    return null;
  }
}

function isComplete(code) {
  if (frontEnd) return frontEnd.isComplete(code, tokenState);
  if (code.trim() === '') return { status: 'complete' };
  const st = tokenState(code);
  if (st.status === 'incomplete') return { status: 'incomplete', indent: '  '.repeat(Math.min(st.depth, 8)) };
  if (st.status === 'invalid') return { status: 'invalid' };
  const c = compileCell(code, 0);
  if (!c.error) return { status: 'complete' };
  if (/end of input|Unterminated template/.test(String(c.error.message))) return { status: 'incomplete', indent: '' };
  return { status: 'invalid' };
}

/* ---- what cells get ------------------------------------------------------------------------- */

const requireCache = new Map();
function requireFor(dir) {
  let r = requireCache.get(dir);
  if (!r) {
    r = Module.createRequire(path.join(dir, '<cell>'));
    requireCache.set(dir, r);
  }
  return r;
}
function cellRequire(id) { return requireFor(process.cwd())(id); }
cellRequire.resolve = (id, opts) => requireFor(process.cwd()).resolve(id, opts);
cellRequire.cache = Module._cache;
Object.defineProperty(cellRequire, 'main', { get: () => require.main });

/* import(): resolved against the cwd, imported by the driver (vm scripts have no loader of their
 * own without --experimental-vm-modules) */
function resolveForImport(spec) {
  spec = String(spec);
  const builtin = Module.isBuiltin ? Module.isBuiltin(spec) : Module.builtinModules.includes(spec.replace(/^node:/, ''));
  if (builtin) return spec;
  if (/^[a-z][a-z0-9+.-]*:/i.test(spec)) return spec; /* file:, data: */
  if (spec.startsWith('.') || spec.startsWith('/')) return require('url').pathToFileURL(path.resolve(process.cwd(), spec)).href;
  try {
    return require('url').pathToFileURL(cellRequire.resolve(spec)).href;
  } catch (_) {
    return esmEntry(spec) || spec;
  }
}

/* An ES-module-only package (exports with an "import" condition only), found in node_modules. */
function esmEntry(spec) {
  const parts = spec.split('/');
  const name = spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
  const sub = '.' + spec.slice(name.length);
  for (let dir = process.cwd(); ; dir = path.dirname(dir)) {
    const pkgDir = path.join(dir, 'node_modules', name);
    try {
      const pkg = jsonParse(fs.readFileSync(path.join(pkgDir, 'package.json'), 'utf8'));
      let entry = pkg.exports;
      if (entry && typeof entry === 'object' && !Array.isArray(entry) && Object.keys(entry).some((k) => k.startsWith('.'))) entry = entry[sub];
      else if (sub !== '.') entry = undefined;
      for (let i = 0; i < 8 && entry && typeof entry === 'object'; i++) entry = entry.import || entry.node || entry.default;
      if (typeof entry !== 'string' && sub === '.') entry = pkg.module || pkg.main || 'index.js';
      if (typeof entry === 'string') return require('url').pathToFileURL(path.join(pkgDir, entry)).href;
    } catch (_) { /* not here */ }
    if (path.dirname(dir) === dir) return null;
  }
}

function esmInterop(m) {
  if (m && m.__esModule) return m;
  if (m !== null && (typeof m === 'object' || typeof m === 'function')) return Object.setPrototypeOf({ default: m }, m);
  return { default: m };
}

function requireEsm(spec) {
  try {
    return esmInterop(cellRequire(spec));
  } catch (e) {
    if (e && e.code === 'ERR_REQUIRE_ESM') {
      e.message = `${spec} is an ES module: import it with \`const m = await import(${jsonStringify(spec)})\``;
    }
    throw e;
  }
}

const helpers = {
  require: cellRequire,
  esm: requireEsm,
  import: (spec, options) => import(resolveForImport(spec)),
};
Object.defineProperty(globalThis, '__cellblock', { value: helpers, enumerable: false, writable: false, configurable: false });

function toBase64(data) {
  if (typeof data === 'string') return data.replace(/^data:[^,]*;base64,/, '').replace(/\s+/g, '');
  if (data instanceof ArrayBuffer) return Buffer.from(data).toString('base64');
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('base64');
  throw new TypeError('expected a Buffer, a Uint8Array or a base64 string');
}

const MIME_RE = /^[a-z]+\/[a-z0-9.+_-]+$/i;
function publish(data, metadata) {
  if (!current) return; /* between cells there is no one to show it to */
  emit({ ev: 'display', data, metadata: metadata || {} });
}
function isBundle(v) {
  if (v === null || typeof v !== 'object') return false;
  const proto = Object.getPrototypeOf(v);
  if (proto !== Object.prototype && proto !== null) return false;
  const keys = Object.keys(v);
  return keys.length > 0 && keys.every((k) => MIME_RE.test(k));
}
function display(value, metadata) {
  if (isBundle(value)) {
    const data = {};
    for (const [k, v] of Object.entries(value)) {
      if (k.startsWith('image/') && k !== 'image/svg+xml') data[k] = toBase64(v);
      else if (k === 'application/json' || k.endsWith('+json')) data[k] = jsonParse(jsonStringify(v));
      else data[k] = typeof v === 'string' ? v : String(v);
    }
    publish(data, metadata);
  } else {
    publish({ 'text/plain': util.inspect(value, inspectOptions) }, metadata);
  }
}
display.html = (s) => publish({ 'text/html': String(s) });
display.markdown = (s) => publish({ 'text/markdown': String(s) });
display.svg = (s) => publish({ 'image/svg+xml': String(s) });
display.png = (d) => publish({ 'image/png': toBase64(d) });
display.jpeg = (d) => publish({ 'image/jpeg': toBase64(d) });
display.json = (v) => publish({ 'application/json': jsonParse(jsonStringify(v === undefined ? null : v)) });
display.text = (s) => publish({ 'text/plain': String(s) });

function input(prompt, options) {
  if (!current) throw new Error('input() works only while a cell runs');
  emit({ ev: 'input_request', prompt: prompt === undefined ? '' : String(prompt), password: !!(options && options.password) });
  for (;;) {
    const line = readLineSync();
    let msg;
    try { msg = jsonParse(line); } catch (_) { continue; }
    if (msg && msg.op === 'input_reply') {
      if (msg.value === null || msg.value === undefined) {
        const e = new Error('stdin is not available for this request');
        e.code = 'ERR_STDIN_NOT_AVAILABLE';
        throw e;
      }
      return String(msg.value);
    }
    logErr(`cellblock node driver: '${msg && msg.op}' while waiting for input_reply; ignored`);
  }
}
function readline(prompt, options) {
  try {
    return Promise.resolve(input(prompt, options));
  } catch (e) {
    return Promise.reject(e);
  }
}

function defineGlobal(name, value) {
  Object.defineProperty(globalThis, name, { value, writable: true, configurable: true, enumerable: false });
}
defineGlobal('display', display);
defineGlobal('input', input);
defineGlobal('readline', readline);
defineGlobal('require', cellRequire);
const cellModule = new Module('<cell>');
cellModule.paths = Module._nodeModulePaths(process.cwd());
defineGlobal('module', cellModule);
defineGlobal('exports', cellModule.exports);

/* ---- start ---------------------------------------------------------------------------------- */

let version = process.versions.node;
if (LANGUAGE === 'typescript') {
  /* Debian's node-typescript, else one Node finds (NODE_PATH, global folders), else the cwd's */
  const loaders = [() => require('/usr/share/nodejs/typescript'), () => require('typescript'),
    () => requireFor(process.cwd())('typescript')];
  let ts = null;
  for (const load of loaders) {
    try { ts = load(); break; } catch (_) { /* the next */ }
  }
  if (!ts) {
    logErr('cellblock node driver: TypeScript is not installed: install the Debian package node-typescript ' +
      '(it provides /usr/share/nodejs/typescript)');
    process.exit(3);
  }
  frontEnd = require('./typescript').create(ts, { isError });
  version = ts.version;
}

introspect.init({ frontEnd });
emit({ ev: 'ready', version });
if (frontEnd) setImmediate(() => frontEnd.warmUp());
nextRequest();
