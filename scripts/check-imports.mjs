#!/usr/bin/env node
// The import rule of src/, checked: a module imports only modules of a lower layer (docs/layers.md).
// Fails (exit 1) on a wrong-way import (up a layer, or sideways into another module of the same
// layer), on an import cycle between files, on an allow-list entry that no longer matches, and on a
// second copy of a helper that exists once (ONE_DEFINITION).
//   node scripts/check-imports.mjs            the check (npm run lint)
//   node scripts/check-imports.mjs --all      the same, ignoring the allow-list (to count what is left)
//   node scripts/check-imports.mjs --root DIR another checkout's src/ (to compare before and after)
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import ts from 'typescript';

/**
 * Bottom to top. A name is a folder under src/ (its files are one module) or a top-level file; a
 * file in a folder may also be named, to place it apart from its folder (the longest name wins).
 */
export const LAYERS = [
  // the error model: every module, net/ included, raises its errors
  ['common/errors.ts'],
  ['net', 'common', 'paths.ts'],
  ['version.ts'],
  ['ami', 'firewall'],
  ['guard'],
  ['fraud'],
  ['store', 'sources'],
  ['odoo', 'webhooks', 'asterisk-config', 'accounts', 'fleet', 'feeds'],
  ['health'],
  ['admin'],
  ['rest', 'metrics', 'console'],
  // Assembles the stages' config sections from their schema files (src/<stage>/config-schema.ts).
  ['config'],
  ['guard-options.ts', 'listeners.ts', 'reload.ts', 'daemon-parts.ts'],
  ['main.ts'],
  ['demo'],
  ['cli'],
];

/** Today's exceptions, each an edge (from -> to, paths under src/) and why it is still there. */
export const ALLOWED = [];

/**
 * Helpers that exist once: a name declared (interface, type, class, function, const) or a pattern
 * written anywhere else under src/ than `in` fails the check.
 */
export const ONE_DEFINITION = [
  { name: 'AmiPort', in: 'ami/types.ts' },
  { name: 'backoffMs', in: 'net/backoff.ts' },
  { name: 'parseDuration', in: 'common/duration.ts' },
  { name: 'escapeRegExp', in: 'asterisk-config/names.ts' },
  { name: 'messageToDict', in: 'ami/to-dict.ts' },
  { pattern: /\* 2 \*\* |backoff \* 2\b/i, what: 'an exponential backoff formula (use backoffMs)', in: 'net/backoff.ts' },
  { pattern: /'\\\\\$&'/, what: 'a RegExp escape (use escapeRegExp)', in: 'asterisk-config/names.ts' },
];

/** Where a ONE_DEFINITION entry is defined again: [{ file, what }]. */
export function duplicateDefinitions(root, rules = ONE_DEFINITION) {
  const out = [];
  for (const file of sourceFiles(root)) {
    const rel = toRel(root, file);
    const text = fs.readFileSync(file, 'utf8');
    for (const r of rules) {
      if (rel === r.in) continue;
      const re = r.pattern ?? new RegExp(`^\\s*(?:export\\s+)?(?:declare\\s+)?(?:interface|type|class|function|const|let)\\s+${r.name}\\b`, 'm');
      if (re.test(text)) out.push({ file: rel, what: r.what ?? `${r.name} (defined in src/${r.in})` });
    }
  }
  return out;
}

/** Which module (a LAYERS name) a path under src/ belongs to, and its layer; undefined when unplaced. */
export function placeOf(rel, layers = LAYERS) {
  let best;
  layers.forEach((names, layer) => {
    for (const name of names) {
      const hit = name.endsWith('.ts') ? rel === name : rel.startsWith(name + '/');
      if (hit && (best === undefined || name.length > best.module.length)) best = { module: name, layer };
    }
  });
  return best;
}

function sourceFiles(dir) {
  const out = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...sourceFiles(p));
    else if (p.endsWith('.ts') && !p.endsWith('.d.ts')) out.push(p);
  }
  return out.sort();
}

/** Every relative import of every .ts file under root (static, re-export, type-only and import()). */
export function importEdges(root) {
  const edges = [];
  for (const file of sourceFiles(root)) {
    const info = ts.preProcessFile(fs.readFileSync(file, 'utf8'), true, true);
    for (const { fileName } of info.importedFiles) {
      if (!fileName.startsWith('.')) continue;
      const target = path.join(path.dirname(file), fileName).replace(/\.js$/, '.ts');
      edges.push({ from: toRel(root, file), to: toRel(root, target) });
    }
  }
  return edges;
}

const toRel = (root, p) => path.relative(root, p).split(path.sep).join('/');

/** Cycles between files: each strongly connected component of more than one file (Tarjan). */
export function fileCycles(edges) {
  const next = new Map();
  for (const { from, to } of edges) {
    if (!next.has(from)) next.set(from, new Set());
    if (!next.has(to)) next.set(to, new Set());
    next.get(from).add(to);
  }
  let index = 0;
  const idx = new Map(),
    low = new Map(),
    stack = [],
    on = new Set(),
    out = [];
  const visit = (v) => {
    idx.set(v, index);
    low.set(v, index);
    index++;
    stack.push(v);
    on.add(v);
    for (const w of next.get(v)) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v), low.get(w)));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v), idx.get(w)));
    }
    if (low.get(v) === idx.get(v)) {
      const scc = [];
      let w;
      do {
        w = stack.pop();
        on.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1 || next.get(v).has(v)) out.push(scc.sort());
    }
  };
  for (const v of [...next.keys()].sort()) if (!idx.has(v)) visit(v);
  return out;
}

/** The whole check on one tree: wrong-way arrows, file cycles, unplaced files, stale allowances. */
export function checkImports(root, { layers = LAYERS, allowed = ALLOWED, once = ONE_DEFINITION } = {}) {
  const edges = importEdges(root);
  const key = (e) => `${e.from} -> ${e.to}`;
  const allowSet = new Set(allowed.map(key));
  const used = new Set();
  const wrongWay = [];
  const unplaced = new Set();
  for (const e of edges) {
    const a = placeOf(e.from, layers),
      b = placeOf(e.to, layers);
    if (!a) unplaced.add(e.from);
    if (!b) unplaced.add(e.to);
    if (!a || !b || a.module === b.module || b.layer < a.layer) continue;
    if (allowSet.has(key(e))) {
      used.add(key(e));
      continue;
    }
    wrongWay.push({ ...e, why: b.layer === a.layer ? 'sideways' : 'upward' });
  }
  const cycles = fileCycles(edges.filter((e) => !allowSet.has(key(e))));
  const stale = allowed.filter((e) => !used.has(key(e)));
  return { edges: edges.length, wrongWay, cycles, unplaced: [...unplaced].sort(), stale, duplicates: duplicateDefinitions(root, once) };
}

function main() {
  const all = process.argv.includes('--all');
  const at = process.argv.indexOf('--root');
  const root = at > 0 ? path.resolve(process.argv[at + 1]) : fileURLToPath(new URL('../src/', import.meta.url));
  const r = checkImports(root, { allowed: all ? [] : ALLOWED });
  for (const e of r.wrongWay) console.log(`wrong-way (${e.why}): src/${e.from} -> src/${e.to}`);
  for (const c of r.cycles) console.log(`cycle: ${c.map((f) => 'src/' + f).join(' <-> ')}`);
  for (const f of r.unplaced) console.log(`not in a layer: src/${f} (add it to LAYERS in scripts/check-imports.mjs)`);
  for (const e of r.stale) console.log(`allowed but no longer there: src/${e.from} -> src/${e.to} (remove it from ALLOWED)`);
  for (const d of r.duplicates) console.log(`defined twice: src/${d.file} has ${d.what}`);
  const failed = r.wrongWay.length + r.cycles.length + r.unplaced.length + r.stale.length + r.duplicates.length;
  console.log(
    `imports: ${r.edges} arrows, ${r.wrongWay.length} wrong-way, ${r.cycles.length} cycles, ${r.duplicates.length} duplicated helpers` +
      (all ? '' : `, ${ALLOWED.length - r.stale.length} allowed exceptions`),
  );
  if (failed > 0) process.exitCode = 1;
}

if (process.argv[1] && pathToFileURL(path.resolve(process.argv[1])).href === import.meta.url) main();
