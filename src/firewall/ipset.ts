import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import type { Logger } from 'pino';
import type { FirewallConfig } from './enforcer.js';
import { canonicalTarget, checkTarget } from './target.js';
import type { FirewallBackend, FirewallBatch, FirewallEntry, FirewallTarget, Inspection } from './types.js';
import { CANARY4, CANARY6, isCanary } from './canary.js';

/** ipset's largest per-element timeout, in seconds (the kernel refuses more). */
export const IPSET_MAX_TIMEOUT_S = 2147483;
/** longest prefix: set names (prefix + "-allow4-new") stay within ipset's 31 characters */
export const IPSET_PREFIX_MAX = 20;

/** our chain, e.g. PBXG-INPUT (prefix pbxg) or PBXG-FLEET-INPUT (the fleet's sets) */
export const chainOf = (prefix: string): string => `${prefix.toUpperCase()}-INPUT`;
const LINES_PER_RESTORE = 50_000;

function findTool(name: string): string | null {
  for (const dir of ['/usr/sbin', '/sbin', '/usr/bin', '/bin']) {
    try {
      accessSync(`${dir}/${name}`, constants.X_OK);
      return `${dir}/${name}`;
    } catch {
      /* next */
    }
  }
  return null;
}

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], input?: string): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on('data', (b: Buffer) => out.push(b));
    child.stderr!.on('data', (b: Buffer) => err.length < 64 && err.push(b));
    child.on('error', (e) => reject(new Error(`${cmd}: ${e.message}`)));
    child.on('close', (code) => resolve({ code: code ?? -1, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() }));
    if (input !== undefined) {
      child.stdin!.on('error', () => undefined);
      child.stdin!.end(input);
    }
  });
}

function toolError(tool: string, r: RunResult): Error {
  const text = r.stderr.trim().split('\n').slice(0, 4).join(' | ').slice(0, 500);
  if (/not permitted|Permission denied|must be root/i.test(r.stderr)) {
    return new Error(`${tool}: Operation not permitted — pbx-guardian needs CAP_NET_ADMIN; run it as root or via the systemd unit (${text})`);
  }
  if (/Kernel error received: Protocol not supported|Cannot open session to kernel/i.test(r.stderr)) {
    return new Error(`${tool}: the kernel has no ip_set support (modprobe ip_set) (${text})`);
  }
  return new Error(`${tool} failed (rc ${r.code}): ${text}`);
}

/** our chain's lines in `iptables -S` output */
const ourRules = (listing: string, chain: string): string =>
  listing
    .split('\n')
    .filter((l) => l === `-N ${chain}` || l.startsWith(`-A ${chain} `))
    .join('\n');

export interface IpsetOptions {
  prefix: string;
  maxElem: number;
  verdict: 'drop' | 'reject';
  ports: number[];
  ipset?: string;
  iptables?: string;
  ip6tables?: string;
  now?: () => number;
}

/**
 * ipset + iptables backend for hosts without nftables: hash:ip sets for single addresses and
 * hash:net sets for CIDRs (IPv4 and IPv6), all with `timeout` (0 = permanent) and an explicit
 * maxelem; allow sets (hash:net) are matched first. One iptables/ip6tables rule per set in our
 * own chain (PBXG-INPUT for prefix pbxg), jumped to from INPUT position 1. Elements are loaded with
 * `ipset restore -exist` (argument arrays, lines on stdin).
 */
export class IpsetBackend implements FirewallBackend {
  readonly name = 'ipset';
  readonly maxTimeoutMs = IPSET_MAX_TIMEOUT_S * 1000;
  private readonly ipset: string;
  private readonly iptables: string;
  private readonly ip6tables: string;
  private readonly now: () => number;
  private readonly chain: string;
  readonly sets: { v4: string; v6: string; net4: string; net6: string; allow4: string; allow6: string };
  /** our chain in `iptables -S` / `ip6tables -S` as setup() left them (the watchdog compares) */
  private expectedRules: [string, string] | null = null;

  constructor(
    private readonly opts: IpsetOptions,
    private readonly logger?: Logger,
  ) {
    if (!new RegExp(`^[A-Za-z0-9_-]{1,${IPSET_PREFIX_MAX}}$`).test(opts.prefix)) throw new Error(`invalid ipset prefix ${JSON.stringify(opts.prefix)}`);
    if (!Number.isInteger(opts.maxElem) || opts.maxElem < 1) throw new Error(`invalid ipset maxelem ${String(opts.maxElem)}`);
    for (const p of opts.ports) if (!Number.isInteger(p) || p < 1 || p > 65535) throw new Error(`invalid port ${String(p)}`);
    const ipset = opts.ipset ?? findTool('ipset');
    const ipt = opts.iptables ?? findTool('iptables');
    const ip6t = opts.ip6tables ?? findTool('ip6tables');
    if (!ipset) throw new Error('ipset not found in /usr/sbin or /sbin: install the ipset package');
    if (!ipt || !ip6t) throw new Error('iptables/ip6tables not found in /usr/sbin or /sbin: install the iptables package');
    this.ipset = ipset;
    this.iptables = ipt;
    this.ip6tables = ip6t;
    this.now = opts.now ?? Date.now;
    const p = opts.prefix;
    this.chain = chainOf(p);
    this.sets = { v4: `${p}-v4`, v6: `${p}-v6`, net4: `${p}-net4`, net6: `${p}-net6`, allow4: `${p}-allow4`, allow6: `${p}-allow6` };
  }

  private setFor(t: FirewallTarget): string {
    return t.isNetwork ? (t.family === 4 ? this.sets.net4 : this.sets.net6) : t.family === 4 ? this.sets.v4 : this.sets.v6;
  }

  private async restore(lines: string[]): Promise<void> {
    for (let i = 0; i < lines.length; i += LINES_PER_RESTORE) {
      const r = await run(this.ipset, ['restore', '-exist'], lines.slice(i, i + LINES_PER_RESTORE).join('\n') + '\nCOMMIT\n');
      if (r.code !== 0) throw toolError('ipset restore', r);
    }
  }

  private async ipt(bin: string, args: string[]): Promise<RunResult> {
    return run(bin, ['-w', '5', ...args]);
  }

  async setup(): Promise<void> {
    const s = this.sets;
    const m = this.opts.maxElem;
    await this.restore([
      `create ${s.v4} hash:ip family inet timeout 0 maxelem ${m}`,
      `create ${s.v6} hash:ip family inet6 timeout 0 maxelem ${m}`,
      `create ${s.net4} hash:net family inet timeout 0 maxelem ${m}`,
      `create ${s.net6} hash:net family inet6 timeout 0 maxelem ${m}`,
      `create ${s.allow4} hash:net family inet maxelem 65536`,
      `create ${s.allow6} hash:net family inet6 maxelem 65536`,
      // canaries (canary.ts): the watchdog sees an emptied set in `ipset list -t`
      `add ${s.v4} ${CANARY4} timeout 0`,
      `add ${s.v6} ${CANARY6} timeout 0`,
      `add ${s.net4} ${CANARY4} timeout 0`,
      `add ${s.net6} ${CANARY6} timeout 0`,
    ]);
    const ports = [...new Set(this.opts.ports)].sort((a, b) => a - b);
    for (const [bin, fam] of [
      [this.iptables, 4],
      [this.ip6tables, 6],
    ] as const) {
      const tool = fam === 4 ? 'iptables' : 'ip6tables';
      const exists = await this.ipt(bin, ['-n', '-L', this.chain]);
      if (exists.code !== 0) {
        const r = await this.ipt(bin, ['-N', this.chain]);
        if (r.code !== 0) throw toolError(tool, r);
      } else {
        const r = await this.ipt(bin, ['-F', this.chain]);
        if (r.code !== 0) throw toolError(tool, r);
      }
      const allow = fam === 4 ? s.allow4 : s.allow6;
      const rules: string[][] = [['-A', this.chain, '-m', 'set', '--match-set', allow, 'src', '-j', 'RETURN']];
      const target =
        this.opts.verdict === 'drop' ? ['-j', 'DROP'] : ['-j', 'REJECT', '--reject-with', fam === 4 ? 'icmp-port-unreachable' : 'icmp6-port-unreachable'];
      for (const set of fam === 4 ? [s.v4, s.net4] : [s.v6, s.net6]) {
        const match = ['-m', 'set', '--match-set', set, 'src'];
        if (ports.length === 0) rules.push(['-A', this.chain, ...match, ...target]);
        else
          for (const proto of ['tcp', 'udp']) rules.push(['-A', this.chain, '-p', proto, '-m', 'multiport', '--dports', ports.join(','), ...match, ...target]);
      }
      for (const rule of rules) {
        const r = await this.ipt(bin, rule);
        if (r.code !== 0) throw toolError(tool, r);
      }
      const jump = await this.ipt(bin, ['-C', 'INPUT', '-j', this.chain]);
      if (jump.code !== 0) {
        const r = await this.ipt(bin, ['-I', 'INPUT', '1', '-j', this.chain]);
        if (r.code !== 0) throw toolError(tool, r);
      }
    }
    this.expectedRules = [
      ourRules((await this.ipt(this.iptables, ['-S'])).stdout, this.chain),
      ourRules((await this.ipt(this.ip6tables, ['-S'])).stdout, this.chain),
    ];
  }

  /**
   * The watchdog's check, three short processes (run at once) whatever the set sizes: `ipset list
   * -t` (headers only: names, element counts) and `iptables -S` for both families (our chain
   * compared with what setup() left, and the INPUT rule that jumps to it).
   */
  async inspect(): Promise<Inspection> {
    const [r, ...rules] = await Promise.all([run(this.ipset, ['list', '-t']), this.ipt(this.iptables, ['-S']), this.ipt(this.ip6tables, ['-S'])]);
    if (r!.code !== 0) throw toolError('ipset list', r!);
    const entries = new Map<string, number>();
    for (const block of r!.stdout.split(/\n(?=Name: )/)) {
      const name = /^Name: (\S+)/m.exec(block)?.[1];
      const n = /^Number of entries: (\d+)/m.exec(block)?.[1];
      if (name) entries.set(name, n === undefined ? 0 : Number(n));
    }
    const problems: string[] = [];
    let elements = 0;
    for (const [key, set] of Object.entries(this.sets)) {
      const n = entries.get(set);
      if (n === undefined) problems.push(`ipset ${set} missing`);
      else if (!key.startsWith('allow')) {
        if (n === 0) problems.push(`elements of ipset ${set} (its canary element is gone: the set was flushed)`);
        elements += Math.max(0, n - 1);
      }
    }
    for (const [i, listed] of rules.entries()) {
      const tool = i === 0 ? 'iptables' : 'ip6tables';
      if (listed.code !== 0) throw toolError(tool, listed);
      const lines = listed.stdout.split('\n');
      const ours = ourRules(listed.stdout, this.chain);
      if (!lines.includes(`-N ${this.chain}`)) problems.push(`${tool} chain ${this.chain} missing`);
      else if (this.expectedRules && ours !== this.expectedRules[i]) problems.push(`${tool} rules of chain ${this.chain} changed`);
      if (!lines.includes(`-A INPUT -j ${this.chain}`)) problems.push(`${tool} INPUT rule -j ${this.chain} missing`);
    }
    return { tablePresent: Object.values(this.sets).some((set) => entries.has(set)), problems, elements };
  }

  async apply(batch: FirewallBatch): Promise<void> {
    const now = this.now();
    const lines: string[] = [];
    const adding = new Set<string>();
    const adds: string[] = [];
    for (const e of batch.add) {
      const c = checkTarget(e);
      if (e.expiresAt !== null && e.expiresAt <= now) continue;
      adding.add(c.target);
      const t = e.expiresAt === null ? 0 : Math.min(IPSET_MAX_TIMEOUT_S, Math.max(1, Math.ceil((e.expiresAt - now) / 1000)));
      // -exist: adding a present element refreshes its timeout
      adds.push(`add ${this.setFor(c)} ${c.target} timeout ${t}`);
    }
    for (const r of batch.remove) {
      const c = checkTarget(r);
      if (!adding.has(c.target)) lines.push(`del ${this.setFor(c)} ${c.target}`); // -exist: absent is fine
    }
    lines.push(...adds);
    if (lines.length) await this.restore(lines);
  }

  async list(): Promise<FirewallEntry[]> {
    const now = this.now();
    const out: FirewallEntry[] = [];
    const s = this.sets;
    for (const set of [s.v4, s.v6, s.net4, s.net6]) {
      for (const { target, timeout } of await this.save(set)) {
        if (isCanary(target)) continue;
        const c = canonicalTarget(target);
        if (!c) continue;
        out.push({ target: c.target, family: c.family, isNetwork: c.isNetwork, expiresAt: timeout ? now + timeout * 1000 : null });
      }
    }
    return out;
  }

  /** The allow sets' elements. */
  async listAllow(): Promise<string[]> {
    const out: string[] = [];
    for (const set of [this.sets.allow4, this.sets.allow6])
      for (const e of await this.save(set)) if (!isCanary(e.target)) out.push(canonicalTarget(e.target)?.target ?? e.target);
    return out;
  }

  private async save(set: string): Promise<{ target: string; timeout: number | null }[]> {
    const r = await run(this.ipset, ['save', set]);
    if (r.code !== 0) throw toolError('ipset save', r);
    const out: { target: string; timeout: number | null }[] = [];
    for (const line of r.stdout.split('\n')) {
      const m = /^add \S+ (\S+)(?: timeout (\d+))?/.exec(line);
      if (m) out.push({ target: m[1]!, timeout: m[2] ? Number(m[2]) : null });
    }
    return out;
  }

  async setAllow(targets: FirewallTarget[]): Promise<void> {
    const s = this.sets;
    const tmp4 = `${this.opts.prefix}-allow4-new`;
    const tmp6 = `${this.opts.prefix}-allow6-new`;
    const lines = [`create ${tmp4} hash:net family inet maxelem 65536`, `create ${tmp6} hash:net family inet6 maxelem 65536`, `flush ${tmp4}`, `flush ${tmp6}`];
    for (const t of targets) {
      const c = checkTarget(t);
      lines.push(`add ${c.family === 4 ? tmp4 : tmp6} ${c.target}`);
    }
    lines.push(`swap ${tmp4} ${s.allow4}`, `swap ${tmp6} ${s.allow6}`, `destroy ${tmp4}`, `destroy ${tmp6}`);
    await this.restore(lines);
  }

  async flush(): Promise<void> {
    for (const bin of [this.iptables, this.ip6tables]) {
      for (let i = 0; i < 16; i++) if ((await this.ipt(bin, ['-D', 'INPUT', '-j', this.chain])).code !== 0) break;
      await this.ipt(bin, ['-F', this.chain]);
      await this.ipt(bin, ['-X', this.chain]);
    }
    for (const set of Object.values(this.sets)) await this.destroySet(set);
  }

  /**
   * The kernel drops an iptables rule's reference to its set after an RCU grace period, so a
   * destroy right after `-X` can find the set still "in use by a kernel component" (seen under
   * load in bench/firewall.ts): retried for up to a second before it counts as a failure.
   */
  private async destroySet(set: string): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const r = await run(this.ipset, ['destroy', set]);
      if (r.code === 0 || /does not exist/i.test(r.stderr)) return;
      if (!/in use by a kernel component/i.test(r.stderr) || attempt >= 20) throw toolError('ipset destroy', r);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  async close(): Promise<void> {}
}

/** Builds the ipset backend and checks it can work (creates the sets and rules). */
export async function createIpsetBackend(config: FirewallConfig, logger: Logger): Promise<IpsetBackend> {
  const be = new IpsetBackend({ prefix: config.ipsetPrefix, maxElem: config.ipsetMaxElem, verdict: config.verdict, ports: config.ports }, logger);
  await be.setup();
  logger.info({ backend: 'ipset', prefix: config.ipsetPrefix, maxelem: config.ipsetMaxElem }, 'firewall backend: ipset + iptables');
  return be;
}
