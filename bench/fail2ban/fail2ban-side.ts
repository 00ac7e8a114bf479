/**
 * The fail2ban side of bench/fail2ban.ts: a throwaway fail2ban-server (its own config dir, socket,
 * pid file and db under a temp dir) reading the attack as an Asterisk security log.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import Database from 'better-sqlite3';
import { PACKAGE_ROOT } from '../../src/config/index.js';
import { listSet, SetMonitor } from '../set-monitor.js';
import {
  assertPrivateNetns,
  attack,
  attemptsPhase,
  BURST_BOUND_MS,
  M,
  procCpu,
  attackReport,
  cpuBetween,
  restoreAddr,
  sleep,
  type Plan,
  type SideResult,
  type Sink,
} from './schedule.js';

export const F2B_SERVER = '/usr/bin/fail2ban-server';
export const F2B_CLIENT = '/usr/bin/fail2ban-client';
const pexec = promisify(execFile);
const FIXTURES = join(PACKAGE_ROOT, 'test', 'fixtures');

// ------------------------------------------------------------------ log lines (fail2ban's input)

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

export interface LogTemplates {
  challenge: string;
  invalidPassword: string;
  successChallenge: string;
  success: string;
}

/** Real lines of the recorded security log: a chan_sip wrong password (ChallengeSent +
 *  InvalidPassword) and a successful registration (ChallengeSent + SuccessfulAuth). */
export function logTemplates(): LogTemplates {
  const lines = readFileSync(join(FIXTURES, 'asterisk-security.log'), 'utf8').split('\n');
  const sip = lines.filter((l) => l.includes('Service="SIP"') && l.includes('IPV4/UDP'));
  const ip = sip.find((l) => l.includes('SecurityEvent="InvalidPassword"'))!;
  const session = /SessionID="([^"]+)"/.exec(ip)![1]!;
  const challenge = sip.find((l) => l.includes('SecurityEvent="ChallengeSent"') && l.includes(session))!;
  const success = sip.find((l) => l.includes('SecurityEvent="SuccessfulAuth"'))!;
  const sSession = /SessionID="([^"]+)"/.exec(success)![1]!;
  const successChallenge = sip.find((l) => l.includes('SecurityEvent="ChallengeSent"') && l.includes(sSession))!;
  return { challenge, invalidPassword: ip, successChallenge, success };
}

/** The template line, stamped with `at` (the log prefix in local time as Asterisk writes it,
 *  EventTV in UTC) and coming from `address`. */
function stamp(line: string, at: Date, address: string): string {
  const p2 = (n: number) => String(n).padStart(2, '0');
  const prefix = `[${MONTHS[at.getMonth()]} ${String(at.getDate()).padStart(2, ' ')} ${p2(at.getHours())}:${p2(at.getMinutes())}:${p2(at.getSeconds())}]`;
  const tv = at.toISOString().replace('Z', '+0000');
  return line
    .replace(/^\[[^\]]+\]/, prefix)
    .replace(/EventTV="[^"]+"/, `EventTV="${tv}"`)
    .replace(/RemoteAddress="IPV4\/(\w+)\/[^/]+\/(\d+)"/, `RemoteAddress="IPV4/$1/${address}/$2"`);
}

export function failureLines(t: LogTemplates, address: string, at = new Date()): string {
  return stamp(t.challenge, at, address) + '\n' + stamp(t.invalidPassword, at, address) + '\n';
}

export function legitLines(t: LogTemplates, address: string, at = new Date()): string {
  return stamp(t.successChallenge, at, address) + '\n' + stamp(t.success, at, address) + '\n';
}

/** The attack as Asterisk's security log: each failure a ChallengeSent + InvalidPassword pair,
 *  legitimate logins interleaved, appended to `file` in one write per round. */
export function securityLogSink(t: LogTemplates, file: string): Sink<Buffer> {
  return {
    prepare: (as, ls) => {
      const at = new Date();
      const parts: string[] = [];
      const n = Math.max(as.length, ls.length);
      for (let i = 0; i < n; i++) {
        if (i < as.length) parts.push(failureLines(t, as[i]!, at));
        if (i < ls.length) parts.push(legitLines(t, ls[i]!, at));
      }
      return Buffer.from(parts.join(''), 'latin1');
    },
    deliver: (bytes) => appendFileSync(file, bytes),
  };
}

class Fail2ban {
  readonly dir: string;
  readonly conf: string;
  readonly log: string;
  readonly sock: string;
  readonly db: string;
  proc: ChildProcess | null = null;

  constructor() {
    this.dir = mkdtempSync(join(tmpdir(), 'pbxg-f2b-'));
    this.conf = join(this.dir, 'conf');
    this.log = join(this.dir, 'security.log');
    this.sock = join(this.dir, 'f2b.sock');
    this.db = join(this.dir, 'f2b.sqlite3');
    cpSync('/etc/fail2ban', this.conf, { recursive: true });
    for (const f of readdirSync(join(this.conf, 'jail.d'))) rmSync(join(this.conf, 'jail.d', f), { force: true, recursive: true });
    writeFileSync(
      join(this.conf, 'fail2ban.local'),
      `[Definition]\nloglevel = INFO\nlogtarget = ${join(this.dir, 'fail2ban.log')}\nsocket = ${this.sock}\npidfile = ${join(this.dir, 'f2b.pid')}\ndbfile = ${this.db}\ndbpurgeage = 1d\n`,
    );
    writeFileSync(
      join(this.conf, 'jail.local'),
      [
        '[DEFAULT]',
        'backend = polling',
        'ignoreip = 127.0.0.1/8 ::1',
        '',
        '[asterisk]',
        'enabled = true',
        'filter = asterisk',
        `logpath = ${this.log}`,
        `maxretry = ${M}`,
        'findtime = 600',
        'bantime = 3600',
        'action = nftables[type=allports]',
        '',
      ].join('\n'),
    );
    writeFileSync(this.log, '');
  }

  async start(): Promise<void> {
    this.proc = spawn(F2B_SERVER, ['-f', '-x', '-c', this.conf, '-s', this.sock, '-p', join(this.dir, 'f2b.pid')], { stdio: 'ignore' });
    const end = Date.now() + 30_000;
    while (Date.now() < end) {
      try {
        await pexec(F2B_CLIENT, ['-c', this.conf, '-s', this.sock, 'status', 'asterisk'], { timeout: 5000 });
        return;
      } catch {
        await sleep(100);
      }
    }
    throw new Error('fail2ban-server did not answer within 30 s');
  }

  async stop(): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null) return;
    const exited = new Promise<void>((r) => p.once('exit', () => r()));
    await pexec(F2B_CLIENT, ['-c', this.conf, '-s', this.sock, 'stop'], { timeout: 30_000 }).catch(() => undefined);
    const killed = await Promise.race([exited.then(() => false), sleep(30_000).then(() => true)]);
    if (killed) {
      p.kill('SIGKILL');
      await exited;
    }
    this.proc = null;
  }

  cleanup(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export async function fail2banChild(plan: Plan): Promise<SideResult> {
  assertPrivateNetns();
  const t = logTemplates();
  const f2b = new Fail2ban();
  const mon = await SetMonitor.start('addr-set-asterisk');
  try {
    await f2b.start();
    const pid = f2b.proc!.pid!;
    const sink = securityLogSink(t, f2b.log);
    const cpu0 = procCpu(pid);
    const out = await attack(plan, sink, mon, BURST_BOUND_MS, 2500);
    const cpu1 = procCpu(pid);
    const report = attackReport(out, await listSet('inet', 'f2b-table', 'addr-set-asterisk'), mon);
    const cpu = cpuBetween(cpu0, cpu1);
    const attempts = await attemptsPhase(sink, mon);
    await f2b.stop();

    // restore: N rows in bips (what fail2ban keeps for current bans), then a fresh start
    const restore: SideResult['restore'] = [];
    for (const size of plan.restoreSizes) {
      const db = new Database(f2b.db);
      const now = Math.floor(Date.now() / 1000);
      db.prepare('DELETE FROM bips').run();
      db.prepare('DELETE FROM bans').run();
      const ins = db.prepare('INSERT INTO bips (ip, jail, timeofban, bantime, bancount, data) VALUES (?, ?, ?, ?, 1, ?)');
      const insB = db.prepare('INSERT INTO bans (jail, ip, timeofban, bantime, bancount, data) VALUES (?, ?, ?, ?, 1, ?)');
      db.transaction(() => {
        for (let i = 0; i < size; i++) {
          const ip = restoreAddr(i);
          const data = JSON.stringify({ failures: M, ip4: ip });
          ins.run(ip, 'asterisk', now, 3600, data);
          insB.run('asterisk', ip, now, 3600, data);
        }
      })();
      db.close();
      const want = Array.from({ length: size }, (_, i) => restoreAddr(i));
      mon.seen.clear();
      const t0 = performance.now();
      await f2b.start();
      const all = await mon.waitFor(want, plan.restoreBoundS * 1000 - (performance.now() - t0));
      const present = want.filter((a) => mon.seen.has(a)).length;
      const last = all ? Math.max(...want.map((a) => mon.seen.get(a)!)) : NaN;
      restore.push({ size, seconds: all ? (last - t0) / 1000 : null, present, bounded: !all });
      // a bounded stop: fail2ban unbans everything on stop (set flush with the nftables action)
      await f2b.stop();
    }
    return {
      side: 'fail2ban',
      mode: 'fail2ban 1.0.2, backend polling, action nftables[type=allports]',
      ...report,
      attempts,
      cpuSeconds: cpu.total,
      cpuNote: `fail2ban-server ${cpu.own.toFixed(2)} s + its nft children ${cpu.children.toFixed(2)} s`,
      restore,
    };
  } finally {
    mon.stop();
    await f2b.stop().catch(() => undefined);
    f2b.cleanup();
  }
}
