'use strict';
/* rewrite.js: turns one JavaScript cell into a script the driver runs in Node's main context, so
 * that what a cell declares outlives it and a later cell may declare it again.
 *
 * V8 keeps top-level `let`/`const`/`class` of a script in the global lexical scope, where a second
 * declaration of the same name is a SyntaxError: re-running a cell with `const x = 1` would fail.
 * So the top-level declarations of a cell are rewritten; nothing below the top level is touched:
 *
 *   sync cell (no top-level await; the script's completion value is the result):
 *     let/const a = 1      ->  var   a = 1        (same columns; `let x;` gets `= void 0`)
 *     class C {...}        ->  var C = class C {...};
 *   async cell (top-level await): the cell becomes `var <names>; (async (g) => { ... })(globalThis)`
 *     let/const/var a = 1  ->  ;0,   a = 1        (an assignment to the hoisted global var)
 *     class C {...}        ->  C = class C {...};
 *     function f() {}      ->  kept, and copied to the global object at the wrapper's start
 *     last expression      ->  return (expression)
 *   both:
 *     import X, {a as b} from "m"  ->  var {default: X, a: b} = __cellblock.esm("m")  (require()d)
 *     import * as ns from "m"      ->  var ns = __cellblock.require("m")
 *     export <declaration>         ->  <declaration>;  export {..} / export * are dropped
 *     import("m")                  ->  __cellblock.import("m")  (resolved against the cwd)
 *
 * The scanner is a tokenizer, not a parser: it knows strings, templates (with nested `${}`),
 * comments, regular expressions (by the previous token) and bracket depth, which is all the
 * top-level analysis needs. Statement boundaries come from `;`, `}` and newlines where automatic
 * semicolon insertion applies. Lines are kept: every edit stays on its line, so a position in the
 * rewritten code is a position in the cell (line 1 of an async cell is shifted by the prefix).
 * When the analysis cannot follow (malformed code), the cell is left as it is and V8 reports it.
 */

const ID_RE = /(?:[\p{ID_Start}$_]|\\u[0-9a-fA-F]{4}|\\u\{[0-9a-fA-F]+\})(?:[\p{ID_Continue}$\u200C\u200D]|\\u[0-9a-fA-F]{4}|\\u\{[0-9a-fA-F]+\})*/uy;
const NUM_RE = /(?:0[xXoObB][0-9a-fA-F_]+|(?:\d[\d_]*(?:\.[\d_]*)?|\.\d[\d_]*)(?:[eE][+-]?\d[\d_]*)?)n?/y;
const PUNCT_RE = />>>=|\.\.\.|===|!==|\*\*=|<<=|>>=|>>>|&&=|\|\|=|\?\?=|=>|==|!=|<=|>=|&&|\|\||\?\?|\?\.(?!\d)|\+\+|--|\+=|-=|\*=|\/=|%=|&=|\|=|\^=|<<|>>|\*\*|[{}()[\];,<>+\-*/%&|^!~?:=.@#]/y;
const REGEX_FLAGS_RE = /[\p{ID_Continue}$]*/uy;
const SPACE_RE = /[\t\v\f \u00a0\u1680\u2000-\u200a\u202f\u205f\u3000\ufeff]/;
const NEWLINES = '\n\r\u2028\u2029';
const BEFORE_EXPR = new Set(['return', 'typeof', 'instanceof', 'in', 'of', 'new', 'delete', 'void',
  'throw', 'case', 'do', 'else', 'yield', 'await', 'extends']);
const NO_END = new Set(['typeof', 'new', 'delete', 'void', 'in', 'instanceof', 'await', 'yield',
  'extends', 'case', 'else', 'do', 'if', 'for', 'while', 'with', 'switch', 'var', 'let', 'const']);
const STATEMENT_WORDS = new Set(['var', 'let', 'const', 'function', 'class', 'if', 'for', 'while',
  'do', 'try', 'switch', 'return', 'throw', 'break', 'continue', 'import', 'export', 'debugger',
  'with', 'else', 'catch', 'finally', 'case', 'default']);
const OPEN = { '{': '}', '(': ')', '[': ']' };

/* Tokens of the cell's own level (template contents are one 'tmpl' token). Each token:
 * {t: 'name'|'num'|'str'|'tmpl'|'regex'|'punct', v, s, e, nl (newline before it), d (bracket depth;
 * a closer has its opener's depth), m (index of the matching bracket)}. Also: open (brackets still
 * open at the end), eofIn ('string'|'template'|'comment'|'regex'|null), bad (a stray closer or an
 * unknown character), sawAwait, dynImports (token ranges of `import(` at any depth). */
function scan(src) {
  const tokens = [];
  const stack = []; /* '{' '(' '[' or '${' (inside a template's substitution) */
  const idx = []; /* token index of each opener on the stack, -1 inside templates */
  const dynImports = [];
  let inTmpl = 0, tmplStart = -1, prev = null, prev2 = null, nl = false, i = 0;
  let eofIn = null, bad = false, sawAwait = false;
  const n = src.length;

  function add(t, v, s, e) {
    const tok = { t, v, s, e, nl, d: stack.length - inTmpl, m: -1 };
    if (inTmpl === 0) tokens.push(tok);
    prev2 = prev;
    prev = tok;
    nl = false;
    return tok;
  }
  function regexAllowed() {
    if (!prev) return true;
    if (prev.t === 'name') return BEFORE_EXPR.has(prev.v);
    if (prev.t === 'punct') return !(prev.v === ')' || prev.v === ']' || prev.v === '}' || prev.v === '++' || prev.v === '--');
    return false;
  }
  /* Template characters from i; 'end', 'expr' (a `${` was entered) or 'eof'. */
  function templateChars() {
    while (i < n) {
      const c = src[i];
      if (c === '\\') i += 2;
      else if (c === '`') { i++; return 'end'; }
      else if (c === '$' && src[i + 1] === '{') { i += 2; return 'expr'; }
      else i++;
    }
    return 'eof';
  }
  function afterTemplate(r) {
    if (r === 'eof') { eofIn = 'template'; return false; }
    if (r === 'expr') { stack.push('${'); idx.push(-1); inTmpl++; prev = null; return true; }
    if (inTmpl === 0) add('tmpl', '`', tmplStart, i);
    else { prev2 = prev; prev = { t: 'tmpl', v: '`' }; }
    return true;
  }

  while (i < n) {
    const c = src[i];
    if (NEWLINES.includes(c)) { nl = true; i++; continue; }
    if (SPACE_RE.test(c)) { i++; continue; }
    if (c === '/' && src[i + 1] === '/') {
      while (i < n && !NEWLINES.includes(src[i])) i++;
      continue;
    }
    if (c === '/' && src[i + 1] === '*') {
      const j = src.indexOf('*/', i + 2);
      if (j < 0) { eofIn = 'comment'; break; }
      if (/[\n\r\u2028\u2029]/.test(src.slice(i, j))) nl = true;
      i = j + 2;
      continue;
    }
    if (c === '#' && i === 0 && src[1] === '!') {
      while (i < n && !NEWLINES.includes(src[i])) i++;
      continue;
    }
    if (c === '"' || c === "'") {
      let j = i + 1;
      while (j < n && src[j] !== c) {
        if (src[j] === '\\') j += src[j + 1] === '\r' && src[j + 2] === '\n' ? 3 : 2;
        else if (NEWLINES.includes(src[j])) { bad = true; break; }
        else j++;
      }
      if (j >= n) { eofIn = 'string'; break; }
      add('str', null, i, j + 1);
      i = j + 1;
      continue;
    }
    if (c === '`') {
      if (inTmpl === 0) tmplStart = i;
      i++;
      if (!afterTemplate(templateChars())) break;
      continue;
    }
    if (c === '}' && stack.length && stack[stack.length - 1] === '${') {
      stack.pop();
      idx.pop();
      inTmpl--;
      i++;
      if (!afterTemplate(templateChars())) break;
      continue;
    }
    ID_RE.lastIndex = i;
    let m = ID_RE.exec(src);
    if (m || (c === '#' && (ID_RE.lastIndex = i + 1, m = ID_RE.exec(src)))) {
      const s = i;
      i = ID_RE.lastIndex;
      const tok = add('name', src.slice(s, i), s, i);
      if (tok.v === 'await') sawAwait = true;
      continue;
    }
    NUM_RE.lastIndex = i;
    if (/[0-9.]/.test(c) && (m = NUM_RE.exec(src)) && m[0] !== '.') {
      add('num', m[0], i, i + m[0].length);
      i += m[0].length;
      continue;
    }
    if (c === '/' && regexAllowed()) {
      let j = i + 1, inClass = false;
      while (j < n) {
        const ch = src[j];
        if (ch === '\\') j += 2;
        else if (NEWLINES.includes(ch)) { bad = true; break; }
        else if (ch === '[') { inClass = true; j++; }
        else if (ch === ']') { inClass = false; j++; }
        else if (ch === '/' && !inClass) break;
        else j++;
      }
      if (j >= n) { eofIn = 'regex'; break; }
      REGEX_FLAGS_RE.lastIndex = j + 1;
      REGEX_FLAGS_RE.exec(src);
      add('regex', null, i, REGEX_FLAGS_RE.lastIndex);
      i = REGEX_FLAGS_RE.lastIndex;
      continue;
    }
    PUNCT_RE.lastIndex = i;
    m = PUNCT_RE.exec(src);
    if (!m) { bad = true; i++; continue; }
    const v = m[0];
    if (v === '(' && prev && prev.t === 'name' && prev.v === 'import' &&
        !(prev2 && prev2.t === 'punct' && (prev2.v === '.' || prev2.v === '?.'))) {
      dynImports.push({ s: prev.s, e: prev.e });
    }
    if (OPEN[v]) {
      add('punct', v, i, i + 1);
      stack.push(v);
      idx.push(inTmpl === 0 ? tokens.length - 1 : -1);
    } else if (v === '}' || v === ')' || v === ']') {
      const top = stack[stack.length - 1];
      if (top === undefined || top === '${' || OPEN[top] !== v) { bad = true; i++; continue; }
      stack.pop();
      const open = idx.pop();
      const tok = add('punct', v, i, i + 1);
      if (open >= 0 && inTmpl === 0) { tok.m = open; tokens[open].m = tokens.length - 1; }
    } else {
      add('punct', v, i, i + v.length);
    }
    i += v.length;
  }
  return { tokens, open: stack.length, eofIn, bad, sawAwait, dynImports };
}

function isPunct(t, v) { return t !== undefined && t.t === 'punct' && t.v === v; }
function isName(t, v) { return t !== undefined && t.t === 'name' && (v === undefined || t.v === v); }

function canEnd(p) {
  if (p.t === 'name') return !NO_END.has(p.v);
  if (p.t === 'punct') return p.v === ')' || p.v === ']' || p.v === '}' || p.v === '++' || p.v === '--';
  return true;
}
function canStart(t) {
  if (t.t === 'name') return t.v !== 'in' && t.v !== 'instanceof';
  if (t.t === 'punct') return t.v === '{' || t.v === '!' || t.v === '~' || t.v === '++' || t.v === '--';
  return t.t !== 'tmpl';
}
/* Would automatic semicolon insertion end a statement between p and t (t on a new line)? */
function asiBreak(p, t) { return t.nl && canEnd(p) && canStart(t); }

/* Analyse and rewrite. Returns {code, async, prefix (characters added before line 1)} or null
 * when the cell is left alone. mode: 'sync' or 'async'. */
function rewrite(src, mode) {
  const sc = scan(src);
  if (sc.bad || sc.eofIn || sc.open) return null;
  const toks = sc.tokens;
  const edits = []; /* {s, e, text, order} */
  const hoisted = new Set();
  const funcs = [];
  const isAsync = mode === 'async';

  const edit = (s, e, text, order = 1) => edits.push({ s, e, text, order });
  const blank = (s, e) => edit(s, e, src.slice(s, e).replace(/[^\n\r\u2028\u2029]/g, ' '));

  function stmtStart(k) {
    if (k === 0) return true;
    const p = toks[k - 1];
    return toks[k].nl || isPunct(p, ';') || isPunct(p, '}');
  }
  /* Names bound by the pattern between brackets o and toks[o].m. */
  function patternNames(o, names) {
    const close = toks[o].m, d = toks[o].d + 1, isObj = toks[o].v === '{';
    let j = o + 1;
    while (j < close) {
      let e = j;
      while (e < close && !(toks[e].d === d && isPunct(toks[e], ','))) e++;
      if (e > j) {
        if (isPunct(toks[j], '...')) target(j + 1, names);
        else if (isObj) {
          let c = j;
          while (c < e && !(toks[c].d === d && isPunct(toks[c], ':'))) c++;
          if (c < e) target(c + 1, names);
          else if (isName(toks[j])) names.push(toks[j].v);
        } else target(j, names);
      }
      j = e + 1;
    }
  }
  function target(j, names) {
    const t = toks[j];
    if (isName(t)) names.push(t.v);
    else if (t && t.m > j && (isPunct(t, '{') || isPunct(t, '['))) patternNames(j, names);
  }
  /* let/const/var at k: returns the index after the declaration, or -1. */
  function declaration(k) {
    const kw = toks[k];
    const names = [];
    let j = k + 1;
    for (;;) {
      const t = toks[j];
      if (isName(t)) { names.push(t.v); j++; }
      else if (t && t.m > j && (isPunct(t, '[') || isPunct(t, '{'))) { patternNames(j, names); j = t.m + 1; }
      else return -1;
      if (isPunct(toks[j], '=') && toks[j].d === 0) {
        j++;
        const first = j;
        while (j < toks.length) {
          const u = toks[j];
          if (u.d === 0 && (isPunct(u, ',') || isPunct(u, ';'))) break;
          if (j > first && u.d === 0 && asiBreak(toks[j - 1], u)) break;
          j++;
        }
      } else if (t.t === 'name') {
        if (kw.v === 'let' || kw.v === 'const') edit(t.e, t.e, ' = void 0');
      } else return -1;
      if (isPunct(toks[j], ',') && toks[j].d === 0) { j++; continue; }
      break;
    }
    if (isAsync) {
      names.forEach((x) => hoisted.add(x));
      edit(kw.s, kw.e, ';0,'.padEnd(kw.v.length, ' '));
    } else if (kw.v !== 'var') {
      edit(kw.s, kw.e, 'var'.padEnd(kw.v.length, ' '));
    }
    return j;
  }
  function classDeclaration(k) {
    const name = toks[k + 1].v;
    let j = k + 2;
    while (j < toks.length && !(toks[j].d === 0 && isPunct(toks[j], '{'))) j++;
    if (j >= toks.length || toks[j].m < 0) return -1;
    if (isAsync) hoisted.add(name);
    edit(toks[k].s, toks[k].s, isAsync ? `${name} = ` : `var ${name} = `, 0);
    edit(toks[toks[j].m].e, toks[toks[j].m].e, ';');
    return toks[j].m + 1;
  }
  function importDeclaration(k) {
    let j = k + 1, def = null, ns = null;
    const named = [];
    if (toks[j] && toks[j].t === 'str') {
      /* import "m" */
    } else {
      if (isName(toks[j]) && !isName(toks[j], 'from')) { def = toks[j].v; j++; if (isPunct(toks[j], ',')) j++; }
      else if (isName(toks[j], 'from') && isName(toks[j + 1], 'from')) { def = 'from'; j++; }
      if (isPunct(toks[j], '*')) {
        if (!isName(toks[j + 1], 'as') || !isName(toks[j + 2])) return -1;
        ns = toks[j + 2].v;
        j += 3;
      } else if (isPunct(toks[j], '{')) {
        const close = toks[j].m;
        if (close < 0) return -1;
        j++;
        while (j < close) {
          const t = toks[j];
          if (t.t !== 'name' && t.t !== 'str') return -1;
          const imported = t.t === 'str' ? src.slice(t.s, t.e) : t.v;
          let local = t.v;
          j++;
          if (isName(toks[j], 'as')) { local = toks[j + 1].v; j += 2; }
          named.push(`${imported}: ${local}`);
          if (isPunct(toks[j], ',')) j++;
        }
        j = close + 1;
      }
      if (!isName(toks[j], 'from')) return -1;
      j++;
    }
    const spec = toks[j];
    if (!spec || spec.t !== 'str') return -1;
    j++;
    if ((isName(toks[j], 'assert') || isName(toks[j], 'with')) && !toks[j].nl && isPunct(toks[j + 1], '{')) j = toks[j + 1].m + 1;
    const end = toks[j - 1].e;
    const specText = src.slice(spec.s, spec.e);
    const parts = [];
    const bind = (lhs, rhs) => {
      if (isAsync) parts.push(`;(${lhs} = ${rhs})`);
      else parts.push(`var ${lhs} = ${rhs};`);
    };
    if (def !== null) named.unshift(`default: ${def}`);
    if (named.length) bind(`{ ${named.join(', ')} }`, `__cellblock.esm(${specText})`);
    if (ns !== null) bind(ns, `__cellblock.require(${specText})`);
    if (!named.length && ns === null) parts.push(`;__cellblock.require(${specText});`);
    if (isAsync) {
      if (def !== null) hoisted.add(def);
      if (ns !== null) hoisted.add(ns);
      named.forEach((x) => hoisted.add(x.slice(x.lastIndexOf(': ') + 2)));
    }
    const newlines = src.slice(toks[k].s, end).replace(/[^\n]/g, '');
    edit(toks[k].s, end, parts.join(' ') + newlines);
    return j;
  }
  /* export ...: returns the index of the declaration that follows (to handle it), or after it. */
  function exportDeclaration(k) {
    const next = toks[k + 1];
    if (!next) return -1;
    if (isPunct(next, '{') || isPunct(next, '*')) {
      let j = isPunct(next, '{') ? next.m + 1 : k + 2;
      if (j <= 0) return -1;
      while (j < toks.length && toks[j].d === 0 && !isPunct(toks[j], ';') && !(j > k + 1 && toks[j].nl && asiBreak(toks[j - 1], toks[j]))) j++;
      const end = j < toks.length && isPunct(toks[j], ';') ? toks[j].e : toks[j - 1].e;
      blank(toks[k].s, end);
      return { skip: j };
    }
    if (isName(next, 'default')) { blank(toks[k].s, next.e); return { handle: k + 2 }; }
    blank(toks[k].s, toks[k].e);
    return { handle: k + 1 };
  }

  function statementAt(k) {
    const t = toks[k];
    const n1 = toks[k + 1];
    switch (t.v) {
      case 'let':
        if (n1 && (isName(n1) && n1.v !== 'in' && n1.v !== 'instanceof' || isPunct(n1, '[') || isPunct(n1, '{'))) return declaration(k);
        return k + 1;
      case 'const':
        return declaration(k);
      case 'var':
        return isAsync ? declaration(k) : k + 1;
      case 'class':
        return isName(n1) && n1.v !== 'extends' ? classDeclaration(k) : k + 1;
      case 'async':
        if (isName(n1, 'function') && !n1.nl) return statementAt(k + 1);
        return k + 1;
      case 'function': {
        const nm = isPunct(n1, '*') ? toks[k + 2] : n1;
        if (isAsync && isName(nm)) { hoisted.add(nm.v); funcs.push(nm.v); }
        return k + 1;
      }
      case 'import':
        if (n1 && !isPunct(n1, '(') && !isPunct(n1, '.')) return importDeclaration(k);
        return k + 1;
      case 'export': {
        const r = exportDeclaration(k);
        if (r === -1) return -1;
        if (r.skip !== undefined) return r.skip;
        if (r.handle < toks.length && isName(toks[r.handle])) return statementAt(r.handle);
        return r.handle;
      }
      default:
        return k + 1;
    }
  }

  for (let k = 0; k < toks.length;) {
    const t = toks[k];
    if (t.d !== 0 || t.t !== 'name' || !stmtStart(k)) { k++; continue; }
    const next = statementAt(k);
    if (next < 0) return null;
    k = Math.max(next, k + 1);
  }
  for (const di of sc.dynImports) edit(di.s, di.e, '__cellblock.import');

  let prefix = '';
  let suffix = '';
  if (isAsync) {
    /* the last statement, when it is an expression, is the cell's value */
    let end = toks.length;
    while (end > 0 && isPunct(toks[end - 1], ';') && toks[end - 1].d === 0) end--;
    let last = -1;
    for (let k = 0; k < end; k++) {
      const t = toks[k];
      if (t.d !== 0 || (t.t === 'punct' && (t.v === '}' || t.v === ')' || t.v === ']'))) continue;
      if (k === 0) { last = 0; continue; }
      const p = toks[k - 1];
      if (isPunct(p, ';') || (isPunct(p, '}') && canStart(t)) || asiBreak(p, t)) last = k;
    }
    if (last >= 0) {
      const t = toks[last];
      const n1 = toks[last + 1];
      let statement = t.t === 'punct' && t.v === '{';
      if (t.t === 'name') {
        if (STATEMENT_WORDS.has(t.v)) statement = !(t.v === 'import' && n1 && (isPunct(n1, '(') || isPunct(n1, '.')));
        if (t.v === 'async' && isName(n1, 'function')) statement = true;
        if (isPunct(n1, ':') && n1.d === 0) statement = true;
      }
      if (!statement) {
        edit(t.s, t.s, 'return (', 0);
        edit(toks[end - 1].e, toks[end - 1].e, ')', 2);
      }
    }
    const names = [...hoisted];
    prefix = (names.length ? `var ${names.join(', ')}; ` : '') + '(async (__cellblock_global) => { ' +
      funcs.map((f) => `__cellblock_global.${f} = ${f}; `).join('');
    suffix = '\n})(globalThis)';
  }
  edits.sort((a, b) => a.s - b.s || a.order - b.order);
  let out = prefix;
  let at = 0;
  for (const e of edits) {
    if (e.s < at) return null; /* overlapping edits: the analysis went wrong */
    out += src.slice(at, e.s) + e.text;
    at = e.e;
  }
  out += src.slice(at) + suffix;
  return { code: out, async: isAsync, prefix: prefix.length };
}

/* "complete", "incomplete" or "invalid", as far as the tokenizer can tell (the driver also asks
 * V8). */
function tokenState(src) {
  const sc = scan(src);
  if (sc.bad || sc.eofIn === 'string' || sc.eofIn === 'regex') return { status: 'invalid', depth: 0 };
  if (sc.eofIn || sc.open) return { status: 'incomplete', depth: sc.open };
  return { status: 'complete', depth: 0, sawAwait: sc.sawAwait };
}

module.exports = { scan, rewrite, tokenState };
