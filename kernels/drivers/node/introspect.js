'use strict';
/* introspect.js: complete and inspect for the node driver, from the live global state.
 *
 * Only a chain of identifiers and dots before the cursor is looked up (`foo.bar.ba|`): its first
 * name on the global object, then each property in turn. Nothing is called (no function, no
 * expression is evaluated); property reads may run a getter, as reading a property does.
 * Positions are in Unicode code points, as the protocol counts them.
 */
const util = require('util');

const KEYWORDS = ['await', 'break', 'case', 'catch', 'class', 'const', 'continue', 'debugger',
  'default', 'delete', 'do', 'else', 'export', 'extends', 'false', 'finally', 'for', 'function',
  'if', 'import', 'in', 'instanceof', 'let', 'new', 'null', 'return', 'super', 'switch', 'this',
  'throw', 'true', 'try', 'typeof', 'undefined', 'var', 'void', 'while', 'with', 'yield'];
const TS_KEYWORDS = ['interface', 'type', 'enum', 'namespace', 'declare', 'readonly', 'keyof', 'as'];
const ID_CHAR = /[\p{ID_Continue}$\u200C\u200D]/u;
const ID_RE = /^[\p{ID_Start}$_][\p{ID_Continue}$\u200C\u200D]*$/u;
let typescript = false;

function init(opts) { typescript = !!(opts && opts.frontEnd); }

/* code as code points, and the cursor clamped into it */
function points(code, cursor) {
  const cps = Array.from(code);
  let c = Number.isInteger(cursor) ? cursor : cps.length;
  c = Math.max(0, Math.min(c, cps.length));
  return { cps, c };
}

/* The identifier chain that ends at code point c: {names, start} where the last name may be a
 * partial one (''), or null when what precedes is not a plain chain. */
function chainBefore(cps, c) {
  let i = c;
  const names = [];
  for (;;) {
    let j = i;
    while (j > 0 && ID_CHAR.test(cps[j - 1])) j--;
    const name = cps.slice(j, i).join('');
    if (name !== '' && !ID_RE.test(name)) return null;
    names.unshift(name);
    if (j > 0 && cps[j - 1] === '.' && !(j > 1 && cps[j - 2] === '.')) {
      if (j > 1 && cps[j - 2] === '?') return null; /* ?. — keep it simple */
      i = j - 1;
      if (i === 0 || !ID_CHAR.test(cps[i - 1])) return null; /* `).x`, `].x`, `'s'.x` */
      continue;
    }
    return { names, start: j };
  }
}

/* Follow names[0].names[1]... on the global object. {ok, value}. */
function lookup(names) {
  let v = globalThis;
  for (const n of names) {
    if (n === '' || !ID_RE.test(n)) return { ok: false };
    if (v === null || v === undefined) return { ok: false };
    try {
      if (!(n in Object(v))) return { ok: false };
      v = v[n];
    } catch (_) {
      return { ok: false };
    }
  }
  return { ok: true, value: v };
}

function propertyNames(v) {
  const out = new Set();
  if (v === null || v === undefined) return out;
  let o = Object(v);
  for (let depth = 0; o && depth < 32; depth++) {
    let keys;
    try { keys = Object.getOwnPropertyNames(o); } catch (_) { break; }
    for (const k of keys) if (ID_RE.test(k)) out.add(k);
    try { o = Object.getPrototypeOf(o); } catch (_) { break; }
  }
  return out;
}

function complete(code, cursor) {
  const { cps, c } = points(code, cursor);
  const chain = chainBefore(cps, c);
  if (!chain) return { matches: [], cursor_start: c, cursor_end: c, metadata: {} };
  const prefix = chain.names[chain.names.length - 1];
  const objectNames = chain.names.slice(0, -1);
  let candidates;
  if (objectNames.length === 0) {
    candidates = propertyNames(globalThis);
    for (const k of KEYWORDS) candidates.add(k);
    if (typescript) for (const k of TS_KEYWORDS) candidates.add(k);
  } else {
    const r = lookup(objectNames);
    candidates = r.ok ? propertyNames(r.value) : new Set();
  }
  const matches = [...candidates].filter((k) => k.startsWith(prefix) && !k.startsWith('__cellblock')).sort((a, b) => {
    const pa = a.startsWith('_'), pb = b.startsWith('_');
    return pa === pb ? (a < b ? -1 : a > b ? 1 : 0) : pa ? 1 : -1;
  });
  return { matches, cursor_start: c - Array.from(prefix).length, cursor_end: c, metadata: {} };
}

function describeType(v) {
  if (v === null) return 'null';
  if (typeof v === 'function') {
    const src = Function.prototype.toString.call(v);
    if (/^class[\s{]/.test(src)) return 'class';
    return util.types.isAsyncFunction(v) ? 'async function' : 'function';
  }
  if (typeof v !== 'object') return typeof v;
  try {
    const proto = Object.getPrototypeOf(v);
    const name = proto && proto.constructor && proto.constructor.name;
    return name ? `object (${name})` : 'object';
  } catch (_) {
    return 'object';
  }
}

function inspect(code, cursor, detail) {
  const { cps, c } = points(code, cursor);
  let end = c;
  while (end < cps.length && ID_CHAR.test(cps[end])) end++;
  const chain = chainBefore(cps, end);
  if (!chain || chain.names[chain.names.length - 1] === '') return { found: false, data: {}, metadata: {} };
  const r = lookup(chain.names);
  if (!r.ok) return { found: false, data: {}, metadata: {} };
  const v = r.value;
  let shown;
  try {
    shown = util.inspect(v, { colors: false, depth: detail > 0 ? 3 : 1, maxArrayLength: 50, maxStringLength: 2000, breakLength: 100 });
  } catch (e) {
    shown = `(cannot be shown: ${e && e.message})`;
  }
  if (shown.length > 8000) shown = shown.slice(0, 8000) + '…';
  let text = `${chain.names.join('.')}: ${describeType(v)}\n${shown}`;
  if (typeof v === 'function') {
    let src = '';
    try { src = Function.prototype.toString.call(v); } catch (_) { /* a proxy */ }
    const lines = src.split('\n');
    text += '\n' + (detail > 0 ? lines.slice(0, 60).join('\n') : lines[0].slice(0, 300));
  }
  return { found: true, data: { 'text/plain': text }, metadata: {} };
}

module.exports = { init, complete, inspect };
