/**
 * One benchmark command: runs every benchmark module in bench/, prints one table (figure, target,
 * ok or not, and the ratio to an anchor measured in the same run where there is one), and writes
 * bench/results/latest.json and bench/results/latest.md.
 *
 *   node dist/bench/run.js [--only name,name] [--quick] [--soak-seconds N]
 *
 * Modules: ami-decode, guard-memory (in a child `node --expose-gc`), odoo, firewall, ban-latency, firewall-repair,
 * fail2ban, soak, health, ami-blind-recovery, worst-case, store-prune, destinations-classify, fraud, call-tracker, fleet, fleet-machine, scale, feeds, burst, soak-daemon. A module that throws becomes an error row; the others go on. Modules that need root and
 * network namespaces say so in a row and skip.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { PACKAGE_ROOT } from '../src/config/index.js';
import type { BenchResult } from './types.js';

const HERE = dirname(fileURLToPath(import.meta.url));

export interface Row extends BenchResult {
  module: string;
  /** what the ratio compares against, measured in the same run */
  anchor?: string;
  ratio?: number;
  seconds?: number;
  error?: boolean;
}

interface Flags {
  only: string[] | null;
  quick: boolean;
  soakSeconds?: number;
}

function parseFlags(argv: string[]): Flags {
  const f: Flags = { only: null, quick: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--quick') f.quick = true;
    else if (a === '--only') f.only = (argv[++i] ?? '').split(',').filter(Boolean);
    else if (a.startsWith('--only=')) f.only = a.slice(7).split(',').filter(Boolean);
    else if (a === '--soak-seconds') f.soakSeconds = Number(argv[++i]);
    else if (a === '--help' || a === '-h') {
      console.log(
        'usage: node dist/bench/run.js [--only ami-decode,guard-memory,odoo,firewall,ban-latency,firewall-repair,fail2ban,soak,health,ami-blind-recovery,worst-case,store-prune,destinations-classify,fraud,call-tracker,fleet,fleet-machine,scale,feeds,burst,soak-daemon] [--quick] [--soak-seconds N]',
      );
      process.exit(0);
    } else throw new Error(`unknown flag ${a} (see --help)`);
  }
  return f;
}

/** guard-memory needs --expose-gc for a settled RSS figure: run its run() in a child node. */
function guardMemoryChild(addresses: number): Promise<BenchResult[]> {
  const url = pathToFileURL(join(HERE, 'guard-memory.js')).href;
  const code = `const m = await import(${JSON.stringify(url)}); const r = await m.run({ addresses: ${addresses} }); console.log(JSON.stringify(r));`;
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, ['--expose-gc', '--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    c.stdout.on('data', (b: Buffer) => (out += b.toString()));
    c.stderr.on('data', (b: Buffer) => (err += b.toString()));
    const timer = setTimeout(() => c.kill('SIGKILL'), 600_000);
    c.on('error', reject);
    c.on('close', (code) => {
      clearTimeout(timer);
      if (code !== 0) return reject(new Error(`guard-memory child exited ${code}: ${err.slice(-1000)}`));
      try {
        resolve(JSON.parse(out.trim().split('\n').pop() ?? '') as BenchResult[]);
      } catch {
        reject(new Error(`guard-memory child printed no JSON: ${out.slice(-300)} ${err.slice(-300)}`));
      }
    });
  });
}

type Runner = (f: Flags) => Promise<BenchResult[]>;

const MODULES: Array<[string, Runner]> = [
  ['ami-decode', async (f) => (await import('./ami-decode.js')).run(f.quick ? { events: 100_000, runs: 1 } : {})],
  ['guard-memory', (f) => guardMemoryChild(f.quick ? 100_000 : 1_000_000)],
  ['odoo', async () => (await import('./odoo.js')).run()],
  ['firewall', async () => (await import('./firewall.js')).run()],
  ['ban-latency', async () => (await import('./ban-latency.js')).run()],
  ['firewall-repair', async (f) => (await import('./firewall-repair.js')).run({ runs: f.quick ? 2 : 5 })],
  ['fail2ban', async (f) => (await import('./fail2ban.js')).run({ quick: f.quick })],
  ['soak', async (f) => (await import('./soak.js')).run({ quick: f.quick, seconds: f.soakSeconds })],
  ['health', async (f) => (await import('./health.js')).run(f.quick ? { bans: 10_000, runs: 10 } : {})],
  ['ami-blind-recovery', async (f) => (await import('./ami-blind-recovery.js')).run({ runs: f.quick ? 2 : 6 })],
  ['worst-case', async (f) => (await import('./worst-case.js')).run({ runs: f.quick ? 3 : 7 })],
  ['store-prune', async (f) => (await import('./store-prune.js')).run(f.quick ? { rows: 100_000 } : {})],
  ['destinations-classify', async (f) => (await import('./destinations-classify.js')).run(f.quick ? { calls: 200_000 } : {})],
  ['fraud', async (f) => (await import('./fraud.js')).run({ quick: f.quick })],
  ['call-tracker', async (f) => (await import('./call-tracker.js')).run(f.quick ? { calls: 500, runs: 2 } : {})],
  ['fleet', async (f) => (await import('./fleet.js')).run({ quick: f.quick })],
  ['fleet-machine', async (f) => (await import('./fleet-machine.js')).run(f.quick ? { bans: 50, backlog: 1000 } : {})],
  ['scale', async (f) => (await import('./scale.js')).run({ quick: f.quick })],
  ['feeds', async (f) => (await import('./feeds.js')).run({ quick: f.quick })],
  ['burst', async (f) => (await import('./burst.js')).run({ quick: f.quick })],
  ['soak-daemon', async (f) => (await import('./soak-daemon.js')).run({ quick: f.quick })],
];

/** Anchors measured in the same run by other modules: attach the ratio to our figure's row. */
function attachAnchors(rows: Row[]): void {
  const find = (module: string, re: RegExp) => rows.find((r) => r.module === module && re.test(r.name) && Number.isFinite(r.value));
  const own = find('ami-decode', /AmiClient end to end/);
  const am = find('ami-decode', /asterisk-manager 0\.2\.0/);
  if (own && am && own.ratio === undefined) {
    own.anchor = `asterisk-manager ${am.value.toLocaleString('en-US')} events/s`;
    own.ratio = Math.round((own.value / am.value) * 10) / 10;
  }
  const perProc = find('firewall', /one nft process per ban/);
  if (perProc) {
    const procRate = 1000 / perProc.value;
    for (const r of rows.filter((x) => x.module === 'firewall' && /bulk ban throughput/.test(x.name) && x.unit === 'bans/s')) {
      r.anchor = `one nft process per ban ${Math.round(procRate)} bans/s`;
      r.ratio = Math.round((r.value / procRate) * 10) / 10;
    }
  }
}

const fmt = (v: number) => (Number.isFinite(v) ? v.toLocaleString('en-US') : '—');
const status = (r: Row) => (r.error ? 'ERROR' : r.ok === undefined ? '' : r.ok ? 'ok' : 'MISS');

function table(rows: Row[]): string[][] {
  return rows.map((r) => [
    r.module,
    r.name,
    fmt(r.value),
    r.unit,
    r.target ?? '',
    status(r),
    r.ratio !== undefined ? `${r.ratio}x` : '',
    r.anchor ?? '',
    r.note ?? '',
  ]);
}

const HEAD = ['module', 'figure', 'value', 'unit', 'target', 'ok', 'ratio', 'anchor (same run)', 'note'];

function printTable(rows: Row[]): void {
  const cells = table(rows).map((c) => c.map((x, i) => (i === 8 && x.length > 110 ? x.slice(0, 107) + '...' : x)));
  const w = HEAD.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) =>
    c
      .map((x, i) => (i === 2 || i === 6 ? x.padStart(w[i]!) : x.padEnd(w[i]!)))
      .join('  ')
      .trimEnd();
  console.log(line(HEAD));
  console.log(w.map((n) => '-'.repeat(n)).join('  '));
  for (const c of cells) console.log(line(c));
}

function markdown(rows: Row[], meta: Record<string, string>): string {
  const esc = (s: string) => s.replace(/\|/g, '\\|');
  const out = [
    '# pbx-guardian benchmarks',
    '',
    ...Object.entries(meta).map(([k, v]) => `- ${k}: ${v}`),
    '',
    `| ${HEAD.join(' | ')} |`,
    `|${HEAD.map(() => '---').join('|')}|`,
  ];
  for (const c of table(rows)) out.push(`| ${c.map(esc).join(' | ')} |`);
  return out.join('\n') + '\n';
}

export async function main(argv: string[]): Promise<Row[]> {
  const flags = parseFlags(argv);
  const known = MODULES.map(([n]) => n);
  for (const n of flags.only ?? []) if (!known.includes(n)) throw new Error(`unknown benchmark ${n}: one of ${known.join(', ')}`);
  const rows: Row[] = [];
  const started = new Date();
  for (const [name, runner] of MODULES) {
    if (flags.only && !flags.only.includes(name)) continue;
    const t0 = performance.now();
    process.stderr.write(`bench: ${name}...\n`);
    try {
      const res = await runner(flags);
      const secs = Math.round((performance.now() - t0) / 100) / 10;
      for (const r of res) rows.push({ ...r, module: name, seconds: secs });
    } catch (err) {
      const e = err instanceof Error ? err : new Error(String(err));
      rows.push({
        module: name,
        name: `${name}: failed`,
        value: NaN,
        unit: '-',
        ok: false,
        error: true,
        note: e.message.split('\n').slice(0, 3).join(' ').slice(0, 400),
      });
    }
    process.stderr.write(`bench: ${name} done in ${Math.round((performance.now() - t0) / 1000)} s\n`);
  }
  attachAnchors(rows);
  printTable(rows);
  const meta = {
    date: started.toISOString(),
    mode: flags.quick ? 'quick (smaller sizes, smoke run)' : 'full',
    node: process.version,
    host: `${(await import('node:os')).cpus().length} CPUs, load ${(await import('node:os'))
      .loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')} at the end (shared machine: figures are noisy)`,
  };
  const dir = join(PACKAGE_ROOT, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, 'latest.json'),
    JSON.stringify({ ...meta, rows: rows.map((r) => ({ ...r, value: Number.isFinite(r.value) ? r.value : null })) }, null, 2) + '\n',
  );
  writeFileSync(join(dir, 'latest.md'), markdown(rows, meta));
  console.log(`\nwritten: bench/results/latest.json, bench/results/latest.md`);
  return rows;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main(process.argv.slice(2)).then(
    (rows) => {
      process.exitCode = rows.some((r) => r.error) ? 1 : 0;
      // benchmark modules may leave handles (servers, workers) behind: do not hang
      setTimeout(() => process.exit(process.exitCode ?? 0), 500).unref();
    },
    (err: unknown) => {
      console.error(err instanceof Error ? err.message : err);
      process.exit(2);
    },
  );
}
