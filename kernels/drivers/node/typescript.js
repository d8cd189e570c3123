'use strict';
/* typescript.js: the node driver's TypeScript front end: type-check a cell in the context of the
 * cells that ran before it, then transpile it to JavaScript for the driver to run.
 *
 * Checking: every cell is a virtual module file (<cwd>/.cellblock-ts/__cellN.ts, never written);
 * the program for a cell holds the lib files, that cell and the earlier cells it reaches through
 * its prelude; createProgram is given the previous program so nothing is parsed twice. A cell's file is the cell's text, then
 *   declare let a: (typeof import("./__cell3"))["a"];   variables earlier cells declared
 *   import { B, f } from "./__cell2";                    their other names (types, functions...)
 * (the latest declaration of a name wins; only names that occur in the cell's text; names this
 * cell declares itself are left out)
 *   export { x, y };                         what this cell declares
 * Declarations and imports are hoisted, so they sit after the cell and the cell's positions stay
 * its own. An imported binding cannot be assigned in TypeScript; the driver's globals can, so that
 * diagnostic (TS2632) is dropped (for functions and classes; variables are `declare let`, whose
 * assignments are type-checked). Diagnostics of the cell's own text are reported as an error
 * with ename TSError and the cell does not run.
 *
 * Running: ts.transpileModule (ES2022, ES module syntax kept, value imports kept) and a source
 * map back to the cell's lines; rewrite.js then turns imports into require()s and declarations into
 * globals as for JavaScript. Type-only imports are dropped first (the checker knows which).
 * Without @types/node (Debian ships none) a small declaration file stands in for Node's globals
 * and every module is `any` (declare module "*").
 */
const fs = require('fs');
const path = require('path');

/* TS2632: Cannot assign to 'x' because it is an import (the driver's globals can be assigned).
 * TS7016: Could not find a declaration file for module 'm' (an untyped package is any). */
const IGNORED = new Set([2632, 7016]);

const DISPLAY_DTS = `
declare function display(value: unknown, metadata?: object): void;
declare namespace display {
  function html(s: string): void;
  function markdown(s: string): void;
  function svg(s: string): void;
  function png(data: Uint8Array | ArrayBuffer | string): void;
  function jpeg(data: Uint8Array | ArrayBuffer | string): void;
  function json(value: unknown): void;
  function text(s: string): void;
}
declare function input(prompt?: string, options?: { password?: boolean }): string;
declare function readline(prompt?: string, options?: { password?: boolean }): Promise<string>;
`;

const NODE_DTS = `
declare var console: { log(...data: any[]): void; error(...data: any[]): void; warn(...data: any[]): void;
  info(...data: any[]): void; debug(...data: any[]): void; trace(...data: any[]): void; dir(item?: any, options?: any): void;
  table(data: any, columns?: string[]): void; time(label?: string): void; timeEnd(label?: string): void;
  assert(condition?: boolean, ...data: any[]): void; [key: string]: any };
declare var process: any;
declare var require: { (id: string): any; resolve(id: string, options?: any): string; cache: any; [key: string]: any };
declare var module: any;
declare var exports: any;
declare var global: typeof globalThis;
declare var Buffer: any;
type Buffer = Uint8Array & { [key: string]: any };
declare function setTimeout(callback: (...args: any[]) => void, ms?: number, ...args: any[]): any;
declare function clearTimeout(handle: any): void;
declare function setInterval(callback: (...args: any[]) => void, ms?: number, ...args: any[]): any;
declare function clearInterval(handle: any): void;
declare function setImmediate(callback: (...args: any[]) => void, ...args: any[]): any;
declare function clearImmediate(handle: any): void;
declare function queueMicrotask(callback: () => void): void;
declare function structuredClone<T>(value: T, options?: any): T;
declare function fetch(input: any, init?: any): Promise<any>;
declare function atob(data: string): string;
declare function btoa(data: string): string;
declare var URL: any; type URL = any;
declare var URLSearchParams: any; type URLSearchParams = any;
declare var TextEncoder: any; type TextEncoder = any;
declare var TextDecoder: any; type TextDecoder = any;
declare var AbortController: any; type AbortController = any;
declare var AbortSignal: any; type AbortSignal = any;
declare var Blob: any; type Blob = any;
declare var Headers: any; type Headers = any;
declare var Request: any; type Request = any;
declare var Response: any; type Response = any;
declare var FormData: any; type FormData = any;
declare var EventTarget: any; type EventTarget = any;
declare var Event: any; type Event = any;
declare var performance: any;
declare var crypto: any;
declare var WebAssembly: any;
declare module "*";
`;

function findNodeTypes() {
  for (const dir of ['/usr/share/nodejs/@types/node', path.join(process.cwd(), 'node_modules/@types/node')]) {
    const f = path.join(dir, 'index.d.ts');
    if (fs.existsSync(f)) return f;
  }
  return null;
}

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/* A source map's mappings: for each generated line, [genCol, srcLine, srcCol] (0-based). */
function decodeMappings(mappings) {
  const lines = [];
  let srcLine = 0, srcCol = 0;
  for (const lineText of mappings.split(';')) {
    const segs = [];
    let genCol = 0;
    for (const seg of lineText.split(',')) {
      if (!seg) continue;
      const vals = [];
      let value = 0, shift = 0;
      for (const ch of seg) {
        const digit = B64.indexOf(ch);
        if (digit < 0) break;
        value += (digit & 31) << shift;
        if (digit & 32) { shift += 5; continue; }
        vals.push(value & 1 ? -(value >>> 1) : value >>> 1);
        value = 0;
        shift = 0;
      }
      genCol += vals[0] || 0;
      if (vals.length >= 4) {
        srcLine += vals[2];
        srcCol += vals[3];
        segs.push([genCol, srcLine, srcCol]);
      }
    }
    lines.push(segs);
  }
  return lines;
}

/* (line, col) in the transpiled JavaScript, 1-based -> [line, col] in the cell */
function positionMap(lines) {
  return (line, col) => {
    let l = line - 1;
    while (l >= 0 && (!lines[l] || lines[l].length === 0)) l--;
    if (l < 0) return [line, col];
    const segs = lines[l];
    if (l !== line - 1) return [segs[segs.length - 1][1] + 1, 1];
    let best = segs[0];
    for (const s of segs) if (s[0] <= col - 1) best = s;
    const delta = col - 1 >= best[0] ? col - 1 - best[0] : 0;
    return [best[1] + 1, best[2] + delta + 1];
  };
}

function create(ts, opts) {
  const dir = path.join(process.cwd(), '.cellblock-ts');
  const nodeTypes = findNodeTypes();
  const options = {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.ES2022,
    moduleResolution: ts.ModuleResolutionKind.NodeJs,
    esModuleInterop: true,
    allowSyntheticDefaultImports: true,
    resolveJsonModule: true,
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    lib: ['lib.es2022.d.ts'],
    types: [],
  };
  const major = Number(String(ts.versionMajorMinor || ts.version).split('.')[0]);
  const emitOptions = {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.ESNext,
    sourceMap: true,
    esModuleInterop: true,
  };
  if (major >= 5) emitOptions.verbatimModuleSyntax = true;
  else emitOptions.preserveValueImports = true;

  const GLOBALS = path.join(dir, '__cellblock_globals.d.ts');
  const virtual = new Map([[GLOBALS, DISPLAY_DTS + (nodeTypes ? '' : NODE_DTS)]]);
  const sourceFiles = new Map();
  const host = {
    getSourceFile(fileName, languageVersion) {
      const text = virtual.has(fileName) ? virtual.get(fileName) : ts.sys.readFile(fileName);
      if (text === undefined) return undefined;
      const cached = sourceFiles.get(fileName);
      if (cached && cached.text === text) return cached;
      const sf = ts.createSourceFile(fileName, text, languageVersion);
      sourceFiles.set(fileName, sf);
      return sf;
    },
    getDefaultLibFileName: (o) => ts.getDefaultLibFilePath(o),
    writeFile: () => {},
    getCurrentDirectory: () => dir,
    getDirectories: (d) => ts.sys.getDirectories(d),
    getCanonicalFileName: (f) => f,
    useCaseSensitiveFileNames: () => true,
    getNewLine: () => '\n',
    fileExists: (f) => virtual.has(f) || ts.sys.fileExists(f),
    readFile: (f) => (virtual.has(f) ? virtual.get(f) : ts.sys.readFile(f)),
    directoryExists: (d) => d === dir || ts.sys.directoryExists(d),
    realpath: (f) => (virtual.has(f) ? f : ts.sys.realpath ? ts.sys.realpath(f) : f),
  };
  const baseRoots = nodeTypes ? [GLOBALS, nodeTypes] : [GLOBALS];
  const globalCells = []; /* cells that ran and augment the global scope (declare global) */
  const owner = new Map(); /* name -> "./__cellN" that declared it last */
  let program;
  let seq = 0;

  function bindingNames(name, out) {
    if (ts.isIdentifier(name)) out.push(name.text);
    else for (const el of name.elements) if (!ts.isOmittedExpression(el)) bindingNames(el.name, out);
  }
  function hasExport(st) {
    return !!(st.modifiers && st.modifiers.some((m) => m.kind === ts.SyntaxKind.ExportKeyword));
  }
  /* top-level names a cell declares, those it already exports itself, and those that are only
   * variables (they come to later cells as `declare let`, so that assigning them is checked) */
  function declaredNames(sf) {
    const names = new Set();
    const exported = new Set();
    const variables = new Set();
    const others = new Set();
    for (const st of sf.statements) {
      const found = [];
      const isVar = ts.isVariableStatement(st);
      if (isVar) for (const d of st.declarationList.declarations) bindingNames(d.name, found);
      else if ((ts.isFunctionDeclaration(st) || ts.isClassDeclaration(st) || ts.isInterfaceDeclaration(st) ||
                ts.isTypeAliasDeclaration(st) || ts.isEnumDeclaration(st)) && st.name) found.push(st.name.text);
      else if (ts.isModuleDeclaration(st) && ts.isIdentifier(st.name)) found.push(st.name.text);
      else if (ts.isImportEqualsDeclaration(st)) found.push(st.name.text);
      else if (ts.isImportDeclaration(st) && st.importClause) {
        const c = st.importClause;
        if (c.name) found.push(c.name.text);
        if (c.namedBindings && ts.isNamespaceImport(c.namedBindings)) found.push(c.namedBindings.name.text);
        else if (c.namedBindings) for (const el of c.namedBindings.elements) found.push(el.name.text);
      }
      for (const n of found) {
        names.add(n);
        (isVar ? variables : others).add(n);
        if (hasExport(st)) exported.add(n);
      }
    }
    for (const n of others) variables.delete(n);
    return { names, exported, variables };
  }

  function cellText(code, own) {
    const bySpec = new Map();
    let text = code + '\n';
    /* only the names the cell may use (any word of its text): the prelude stays small however
     * many cells ran */
    const words = new Set(code.match(/[\p{ID_Start}$_][\p{ID_Continue}$\u200C\u200D]*/gu));
    for (const [name, o] of owner) {
      if (own.names.has(name) || !words.has(name)) continue;
      if (o.variable) {
        text += `declare let ${name}: (typeof import(${JSON.stringify(o.spec)}))[${JSON.stringify(name)}];\n`;
        continue;
      }
      if (!bySpec.has(o.spec)) bySpec.set(o.spec, []);
      bySpec.get(o.spec).push(name);
    }
    for (const [spec, names] of bySpec) text += `import { ${names.join(', ')} } from ${JSON.stringify(spec)};\n`;
    const exports = [...own.names].filter((n) => !own.exported.has(n));
    text += exports.length ? `export { ${exports.join(', ')} };\n` : 'export {};\n';
    return text;
  }

  function check(file, text) {
    virtual.set(file, text);
    program = ts.createProgram({ rootNames: [...baseRoots, ...globalCells, file], options, host, oldProgram: program });
    const sf = program.getSourceFile(file);
    let diags = program.getSyntacticDiagnostics(sf);
    if (diags.length === 0) diags = program.getSemanticDiagnostics(sf);
    return { sf, diags };
  }

  function formatDiagnostics(diags, sf, count, code) {
    const lines = [];
    const tb = [];
    const srcLines = code.split(/\r\n|\n|\r/);
    for (const d of diags) {
      const msg = ts.flattenDiagnosticMessageText(d.messageText, '\n');
      let where = `cell[${count}]`;
      let lc = null;
      if (d.start !== undefined) {
        lc = sf.getLineAndCharacterOfPosition(d.start);
        where += `:${lc.line + 1}:${lc.character + 1}`;
      }
      const cat = d.category === ts.DiagnosticCategory.Warning ? 'warning' : 'error';
      const line = `${where} - ${cat} TS${d.code}: ${msg}`;
      lines.push(line);
      tb.push(line);
      if (lc && srcLines[lc.line] !== undefined) {
        const text = srcLines[lc.line];
        const len = Math.max(1, Math.min(d.length || 1, text.length - lc.character));
        tb.push(text, ' '.repeat(lc.character) + '~'.repeat(len));
      }
    }
    return { ev: 'error', ename: 'TSError', evalue: lines.join('\n'), traceback: tb };
  }

  /* The cell's text with its type-only imports removed (the rest of each import kept). */
  function dropTypeOnlyImports(sf, code) {
    const checker = program.getTypeChecker();
    const isValue = (id) => {
      try {
        let sym = checker.getSymbolAtLocation(id);
        if (!sym) return true;
        if (sym.flags & ts.SymbolFlags.Alias) sym = checker.getAliasedSymbol(sym);
        if (!sym || sym.flags & ts.SymbolFlags.Unknown || !sym.declarations || sym.declarations.length === 0) return true;
        return (sym.flags & ts.SymbolFlags.Value) !== 0;
      } catch (_) {
        return true;
      }
    };
    let out = '';
    let at = 0;
    for (const st of sf.statements) {
      if (!ts.isImportDeclaration(st) || !st.importClause || st.end > code.length) continue;
      const c = st.importClause;
      const start = st.getStart(sf);
      const spec = code.slice(st.moduleSpecifier.getStart(sf), st.moduleSpecifier.end);
      let parts = [];
      let keep = !c.isTypeOnly;
      if (keep) {
        const def = c.name && isValue(c.name) ? c.name.text : null;
        let ns = null;
        const named = [];
        if (c.namedBindings && ts.isNamespaceImport(c.namedBindings)) ns = c.namedBindings.name.text;
        else if (c.namedBindings) {
          for (const el of c.namedBindings.elements) {
            if (el.isTypeOnly || !isValue(el.name)) continue;
            named.push(el.propertyName ? `${el.propertyName.text} as ${el.name.text}` : el.name.text);
          }
        }
        if (def) parts.push(def);
        if (ns) parts.push(`* as ${ns}`);
        if (named.length) parts.push(`{ ${named.join(', ')} }`);
        keep = parts.length > 0;
      }
      const newlines = code.slice(start, st.end).replace(/[^\n]/g, '');
      out += code.slice(at, start) + (keep ? `import ${parts.join(', ')} from ${spec};` : '') + newlines;
      at = st.end;
    }
    return out + code.slice(at);
  }

  function prepare(code, count) {
    const cellSeq = ++seq;
    const file = path.join(dir, `__cell${cellSeq}.ts`);
    const own = declaredNames(ts.createSourceFile(file, code, ts.ScriptTarget.ES2022));
    const { sf, diags } = check(file, cellText(code, own));
    const shown = diags.filter((d) => !IGNORED.has(d.code) && (d.start === undefined ? d.file === undefined : d.start < code.length));
    const errors = shown.filter((d) => d.category === ts.DiagnosticCategory.Error);
    if (errors.length) {
      virtual.delete(file);
      return { error: formatDiagnostics(errors, sf, count, code) };
    }
    const source = dropTypeOnlyImports(sf, code);
    const out = ts.transpileModule(source, { compilerOptions: emitOptions, fileName: `cell${count}.ts`, reportDiagnostics: false });
    const js = out.outputText.replace(/\n?\/\/# sourceMappingURL=\S*\s*$/, '\n');
    let map = null;
    try { map = positionMap(decodeMappings(JSON.parse(out.sourceMapText).mappings)); } catch (_) { /* lines as they are */ }
    const after = () => {
      if (/\bdeclare\s+global\b/.test(code)) globalCells.push(file);
      for (const n of own.names) owner.set(n, { spec: `./__cell${cellSeq}`, variable: own.variables.has(n) });
    };
    return { js, map, after };
  }

  function isComplete(code, tokenState) {
    if (code.trim() === '') return { status: 'complete' };
    const st = tokenState(code);
    if (st.status === 'incomplete') return { status: 'incomplete', indent: '  '.repeat(Math.min(st.depth, 8)) };
    const sf = ts.createSourceFile('is_complete.ts', code, ts.ScriptTarget.ES2022, false, ts.ScriptKind.TS);
    const diags = sf.parseDiagnostics || [];
    if (diags.length === 0) return { status: 'complete' };
    const end = code.trimEnd().length;
    if (diags.some((d) => d.start >= end)) return { status: 'incomplete', indent: '' };
    return { status: 'invalid' };
  }

  function warmUp() {
    try {
      check(path.join(dir, '__warmup.ts'), 'const __warmup: number = 1;\nexport {};\n');
      virtual.delete(path.join(dir, '__warmup.ts'));
    } catch (e) {
      process.stderr.write(`cellblock node driver: TypeScript warm-up: ${e && e.message}\n`);
    }
  }

  return { prepare, isComplete, warmUp };
}

module.exports = { create, decodeMappings, positionMap };
