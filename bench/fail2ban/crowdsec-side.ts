/**
 * The CrowdSec side of bench/fail2ban.ts: Debian's crowdsec 1.4.6 (agent + LAPI in one process,
 * SQLite) reading the same Asterisk security log fail2ban reads, with the crowdsecurity/asterisk
 * collection of the hub the package ships, and crowdsec-firewall-bouncer 0.0.25 in nftables mode
 * (update_frequency 1s) on its own table. Everything under a temp dir: never the system service,
 * /etc/crowdsec only read.
 *
 * Offline, `cscli -c CFG collections install crowdsecurity/asterisk` fails (1.4.6 asks
 * version.crowdsec.net for the hub branch, then downloads each item from the hub CDN even when the
 * local hub has it), so the collection is installed the way cscli and the package's postinst do
 * it: symlinks from the temp config to the hub files; `cscli collections list` then shows it
 * enabled. The hub lacks the s00-raw parser for a plain (non-syslog) file, so a local one hands the
 * raw line on as `message` with `program` = the acquisition label (asterisk).
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { accessSync, closeSync, constants, cpSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { listSet, SetMonitor } from '../set-monitor.js';
import { logTemplates, securityLogSink } from './fail2ban-side.js';
import {
  assertPrivateNetns,
  attack,
  attemptsPhase,
  BURST_BOUND_MS,
  attackReport,
  cpuBetween,
  procCpu,
  restoreAddr,
  sleep,
  type Plan,
  type SideResult,
  type Sink,
} from './schedule.js';

export const CROWDSEC = '/usr/bin/crowdsec';
export const CSCLI = '/usr/bin/cscli';
export const BOUNCER = '/usr/bin/crowdsec-firewall-bouncer';
const HUB = '/var/lib/crowdsec/hub';
const NFT = '/usr/sbin/nft';
const PORT = 18_091;
const PROM_PORT = 16_061; // inside the private namespace
const TABLE = 'pbxg-crowdsec';
const SET = 'pbxg-cs-blacklist';
/** asterisk_bf: leaky bucket, capacity 5, leakspeed 10s → the 6th failure overflows it */
export const CS_M = 6;

export function crowdsecSkipReason(): string | null {
  for (const p of [CROWDSEC, CSCLI, BOUNCER, join(HUB, 'collections', 'crowdsecurity', 'asterisk.yaml')]) {
    try {
      accessSync(p, constants.R_OK);
    } catch {
      return `${p} is missing (apt-get install crowdsec crowdsec-firewall-bouncer)`;
    }
  }
  return null;
}

const HUB_ITEMS: Array<[string, string]> = [
  ['collections/crowdsecurity/asterisk.yaml', 'collections/asterisk.yaml'],
  ['parsers/s01-parse/crowdsecurity/asterisk-logs.yaml', 'parsers/s01-parse/asterisk-logs.yaml'],
  ['scenarios/crowdsecurity/asterisk_bf.yaml', 'scenarios/asterisk_bf.yaml'],
  ['scenarios/crowdsecurity/asterisk_user_enum.yaml', 'scenarios/asterisk_user_enum.yaml'],
  // the package's defaults that the asterisk events pass through
  ['parsers/s02-enrich/crowdsecurity/dateparse-enrich.yaml', 'parsers/s02-enrich/dateparse-enrich.yaml'],
  ['parsers/s02-enrich/crowdsecurity/whitelists.yaml', 'parsers/s02-enrich/whitelists.yaml'],
];

const NON_SYSLOG = `name: pbxg/non-syslog
description: "a plain log file: the raw line is the message, the acquisition label type the program"
filter: "evt.Line.Labels.type != 'syslog'"
onsuccess: next_stage
statics:
  - parsed: message
    expression: evt.Line.Raw
  - parsed: program
    expression: evt.Line.Labels.type
  - meta: datasource_path
    expression: evt.Line.Src
`;

class CrowdSec {
  readonly dir = mkdtempSync(join(tmpdir(), 'pbxg-cs-'));
  readonly cfg = join(this.dir, 'config.yaml');
  readonly log = join(this.dir, 'security.log');
  agent: ChildProcess | null = null;
  bouncer: ChildProcess | null = null;

  constructor() {
    const d = this.dir;
    for (const sub of ['data', 'parsers/s00-raw', 'parsers/s01-parse', 'parsers/s02-enrich', 'scenarios', 'collections', 'postoverflows'])
      mkdirSync(join(d, sub), { recursive: true });
    cpSync('/etc/crowdsec/patterns', join(d, 'patterns'), { recursive: true });
    cpSync('/etc/crowdsec/profiles.yaml', join(d, 'profiles.yaml'));
    cpSync('/etc/crowdsec/simulation.yaml', join(d, 'simulation.yaml'));
    for (const [from, to] of HUB_ITEMS) symlinkSync(join(HUB, from), join(d, to));
    writeFileSync(join(d, 'parsers/s00-raw/non-syslog.yaml'), NON_SYSLOG);
    writeFileSync(this.log, '');
    writeFileSync(join(d, 'acquis.yaml'), `filenames:\n  - ${this.log}\nlabels:\n  type: asterisk\n`);
    const url = `http://127.0.0.1:${PORT}`;
    writeFileSync(
      this.cfg,
      [
        `common: { daemonize: false, log_media: file, log_level: info, log_dir: ${d}/, working_dir: . }`,
        'config_paths:',
        `  config_dir: ${d}/`,
        `  data_dir: ${d}/data/`,
        `  simulation_path: ${d}/simulation.yaml`,
        `  hub_dir: ${HUB}/`,
        `  index_path: ${HUB}/.index.json`,
        `  notification_dir: ${d}/notifications/`,
        '  plugin_dir: /usr/lib/crowdsec/plugins/',
        'crowdsec_service:',
        `  acquisition_path: ${d}/acquis.yaml`,
        '  parser_routines: 1',
        'cscli: { hub_branch: master }',
        // as the package ships it (config.yaml.local, README.Debian)
        `db_config: { type: sqlite, db_path: ${d}/data/crowdsec.db, use_wal: true }`,
        'plugin_config: { user: nobody, group: nogroup }',
        'api:',
        '  client:',
        `    credentials_path: ${d}/local_api_credentials.yaml`,
        '  server:',
        `    listen_uri: 127.0.0.1:${PORT}`,
        `    profiles_path: ${d}/profiles.yaml`,
        '    trusted_ips: [127.0.0.1, "::1"]',
        // its own counters (cscli metrics): lines read, parsed, poured, overflowed, expired buckets
        `prometheus: { enabled: true, level: full, listen_addr: 127.0.0.1, listen_port: ${PROM_PORT} }`,
        '',
      ].join('\n'),
    );
    this.cscli(['machines', 'add', 'bench', '--auto', '-f', join(d, 'local_api_credentials.yaml'), '--url', url]);
    const key = `pbxg-bench-${Math.random().toString(36).slice(2, 14)}`;
    this.cscli(['bouncers', 'add', 'pbxg-bench-fw', '-k', key]);
    writeFileSync(
      join(d, 'bouncer.yaml'),
      [
        'mode: nftables',
        `pid_dir: ${d}/`,
        'update_frequency: 1s',
        'daemonize: false',
        'log_mode: file',
        `log_dir: ${d}/`,
        'log_level: info',
        `api_url: ${url}/`,
        `api_key: ${key}`,
        'disable_ipv6: true',
        'deny_action: DROP',
        'deny_log: false',
        'supported_decisions_types: [ban]',
        `blacklists_ipv4: ${SET}`,
        'blacklists_ipv6: pbxg-cs6-blacklist',
        'nftables:',
        `  ipv4: { enabled: true, set-only: false, table: ${TABLE}, chain: pbxg-crowdsec-chain }`,
        '  ipv6: { enabled: false, set-only: false, table: pbxg-crowdsec6, chain: pbxg-crowdsec6-chain }',
        'prometheus: { enabled: false, listen_addr: 127.0.0.1, listen_port: 60601 }',
        '',
      ].join('\n'),
    );
  }

  cscli(args: string[]): string {
    return execFileSync(CSCLI, ['-c', this.cfg, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 });
  }

  private spawnLogged(bin: string, args: string[], name: string): ChildProcess {
    const err = openSync(join(this.dir, `${name}.stderr`), 'a');
    const p = spawn(bin, args, { stdio: ['ignore', 'ignore', err] });
    closeSync(err);
    return p;
  }

  async start(): Promise<void> {
    this.agent = this.spawnLogged(CROWDSEC, ['-c', this.cfg], 'crowdsec');
    await this.until(async () => {
      const r = await fetch(`http://127.0.0.1:${PORT}/v1/decisions/stream?startup=false`, {
        headers: { 'x-api-key': 'none' },
        signal: AbortSignal.timeout(2000),
      });
      await r.body?.cancel();
      return true;
    }, 'the crowdsec LAPI to answer');
    this.startBouncer();
    // ready when its table and set exist (it creates them before its first poll)
    await this.until(async () => (await listSet('ip', TABLE, SET), true), 'the bouncer to create its set');
  }

  startBouncer(): void {
    this.bouncer = this.spawnLogged(BOUNCER, ['-c', join(this.dir, 'bouncer.yaml')], 'bouncer');
  }

  async stopBouncer(): Promise<void> {
    const p = this.bouncer;
    this.bouncer = null;
    if (!p || p.exitCode !== null) return;
    const exited = new Promise<void>((r) => p.once('exit', () => r()));
    p.kill('SIGTERM');
    if (await Promise.race([exited.then(() => false), sleep(15_000).then(() => true)])) {
      p.kill('SIGKILL');
      await exited;
    }
    execFile(NFT, ['delete', 'table', 'ip', TABLE], () => undefined);
    await sleep(200);
  }

  /** The agent opens the log at its end some time after the LAPI answers; lines written before are
   *  never read. So one probe address (TEST-NET-3, outside the attack's ranges) goes through the
   *  whole chain, log → bucket → LAPI → bouncer → set, before the clock starts. */
  async probe(sink: Sink<Buffer>, mon: SetMonitor): Promise<void> {
    const probe = '203.0.113.7';
    for (const end = Date.now() + 60_000; Date.now() < end;) {
      for (let k = 0; k < CS_M; k++) sink.deliver(sink.prepare([probe], []));
      if (await mon.waitFor([probe], 3000)) return;
    }
    throw new Error(`the probe address was not banned within 60 s (see ${this.dir})`);
  }

  /** the agent's own counters (`cscli metrics -o json` prints one JSON object per table, back to
   *  back): the rows for the log file (acquisition) and the asterisk scenarios (buckets) */
  metrics(): string {
    try {
      const text = this.cscli(['metrics', '-o', 'json']);
      const rows: string[] = [];
      let depth = 0;
      let from = -1;
      let inStr = false;
      for (let i = 0; i < text.length; i++) {
        const ch = text[i];
        if (inStr) {
          if (ch === '\\') i++;
          else if (ch === '"') inStr = false;
        } else if (ch === '"') inStr = true;
        else if (ch === '{' && depth++ === 0) from = i;
        else if (ch === '}' && --depth === 0) {
          const doc = JSON.parse(text.slice(from, i + 1)) as Record<string, unknown>;
          for (const [k, v] of Object.entries(doc))
            if ((k.includes('asterisk') || k.includes('security.log')) && v && typeof v === 'object' && Object.values(v).every((n) => typeof n === 'number'))
              rows.push(
                `${k.replace(/^.*\//, '')} {${Object.entries(v as Record<string, unknown>)
                  .map(([f, n]) => `${f} ${String(n)}`)
                  .join(', ')}}`,
              );
        }
      }
      return rows.join('; ') || 'no rows for the log or the asterisk scenarios';
    } catch (e) {
      return `cscli metrics failed: ${String((e as Error).message).slice(0, 200)}`;
    }
  }

  /** overflows the agent logged per scenario ("Ip X performed 'S' …") */
  overflows(): Record<string, number> {
    const n: Record<string, number> = {};
    for (const m of readFileSync(join(this.dir, 'crowdsec.log'), 'latin1').matchAll(/performed '([^']+)'/g)) n[m[1]!] = (n[m[1]!] ?? 0) + 1;
    return n;
  }

  private async until(ok: () => Promise<boolean>, what: string): Promise<void> {
    const end = Date.now() + 30_000;
    let last = '';
    while (Date.now() < end) {
      for (const p of [this.agent, this.bouncer]) if (p && p.exitCode !== null) throw new Error(`${what}: a process exited ${p.exitCode} (see ${this.dir})`);
      try {
        if (await ok()) return;
      } catch (e) {
        last = String((e as Error).message);
      }
      await sleep(100);
    }
    throw new Error(`timed out waiting for ${what} (last: ${last.slice(0, 200)})`);
  }

  async stop(): Promise<void> {
    for (const p of [this.bouncer, this.agent]) {
      if (!p || p.exitCode !== null) continue;
      const exited = new Promise<void>((r) => p.once('exit', () => r()));
      p.kill('SIGTERM');
      if (await Promise.race([exited.then(() => false), sleep(15_000).then(() => true)])) {
        p.kill('SIGKILL');
        await exited;
      }
    }
    this.agent = this.bouncer = null;
  }

  cleanup(): void {
    if (process.env.PBXG_BENCH_KEEP_CROWDSEC) return void console.error(`crowdsec dir kept: ${this.dir}`);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Restore after a restart: N ban decisions in the LAPI (`cscli decisions import`, not timed),
 *  then a fresh bouncer (its table deleted first), timed from its start until the kernel announced
 *  the last element: the bouncer takes every decision in its first (startup) stream. */
async function restorePhase(cs: CrowdSec, mon: SetMonitor, plan: Plan): Promise<SideResult['restore']> {
  const out: SideResult['restore'] = [];
  for (const size of plan.restoreSizes) {
    await cs.stopBouncer();
    cs.cscli(['decisions', 'delete', '--all']);
    const want = Array.from({ length: size }, (_, i) => restoreAddr(i));
    const csv = join(cs.dir, 'restore.csv');
    writeFileSync(csv, 'duration,scope,value\n' + want.map((a) => `4h,ip,${a}\n`).join(''));
    execFileSync(CSCLI, ['-c', cs.cfg, 'decisions', 'import', '-i', csv, '--type', 'ban', '--reason', 'bench-restore'], { stdio: 'ignore', timeout: 300_000 });
    mon.seen.clear();
    const t0 = performance.now();
    cs.startBouncer();
    const all = await mon.waitFor(want, plan.restoreBoundS * 1000);
    const present = want.filter((a) => mon.seen.has(a)).length;
    const last = all ? Math.max(...want.map((a) => mon.seen.get(a)!)) : NaN;
    out.push({ size, seconds: all ? (last - t0) / 1000 : null, present, bounded: !all });
  }
  return out;
}

export async function crowdsecChild(plan: Plan): Promise<SideResult> {
  assertPrivateNetns();
  execFileSync('/usr/sbin/ip', ['link', 'set', 'lo', 'up']);
  const cs = new CrowdSec();
  const mon = await SetMonitor.start(SET);
  try {
    await cs.start();
    const pids = [cs.agent!.pid!, cs.bouncer!.pid!];
    const sink = securityLogSink(logTemplates(), cs.log);
    await cs.probe(sink, mon);
    const cpu0 = pids.map(procCpu);
    // lead 2.5 s: the first 5 failures of each latency address stay in its bucket (leak 1 / 10 s)
    const out = await attack(plan, sink, mon, BURST_BOUND_MS, 2500, { m: CS_M, leadMs: 2500 });
    const cpu1 = pids.map(procCpu);
    const report = attackReport(out, await listSet('ip', TABLE, SET), mon);
    const [agent, bouncer] = pids.map((_, i) => cpuBetween(cpu0[i]!, cpu1[i]!));
    const attempts = await attemptsPhase(sink, mon);
    const metrics = cs.metrics();
    const overflows = Object.entries(cs.overflows())
      .map(([k, v]) => `${v} ${k}`)
      .join(', ');
    const restore = await restorePhase(cs, mon, plan);
    return {
      side: 'crowdsec',
      mode: `crowdsec 1.4.6 (agent + LAPI, SQLite) with crowdsecurity/asterisk, crowdsec-firewall-bouncer nftables, update_frequency 1s; threshold = the ${CS_M}th failure (asterisk_bf capacity 5)`,
      ...report,
      attempts,
      cpuSeconds: agent!.total + bouncer!.total,
      cpuNote: `crowdsec ${agent!.total.toFixed(2)} s + crowdsec-firewall-bouncer ${bouncer!.total.toFixed(2)} s (/proc/<pid>/stat, children included); overflows in the agent's log (probe included): ${overflows}; cscli metrics: ${metrics}`,
      restore,
    };
  } finally {
    mon.stop();
    await cs.stop().catch(() => undefined);
    cs.cleanup();
  }
}
