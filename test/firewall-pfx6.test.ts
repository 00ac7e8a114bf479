/**
 * IPv6 /64 bans in the pfx6 hash set (matched on the source masked to its /64) against real
 * kernel sets in a private network namespace, through the addon's netlink path and the nft
 * command's text path: where the element goes, what list() reports, unban, the move of /64s an
 * older version left in net6, and real packets: a datagram from inside a banned /64 is dropped,
 * one from the next /64 arrives. The test re-runs this file under `unshare -n`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { fileURLToPath } from 'node:url';
import { assertPrivateNetns, netnsSkipReason, runInNetns, reportScenario } from './helpers/netns.js';
import { entryFactory } from './helpers/entries.js';
import { NftablesBackend } from '../src/firewall/nftables.js';
import { createAddonRunner } from '../src/firewall/nft-addon.js';
import { NftCommandRunner } from '../src/firewall/nft-command.js';
import { isCanary } from '../src/firewall/canary.js';
import type { NftRunner } from '../src/firewall/nft-runner.js';

const SELF = fileURLToPath(import.meta.url);
const NFT = '/usr/sbin/nft';
const TABLE = 'pbxg_pfx6';
const IP = '/usr/sbin/ip';

function nftVals(set: string): string[] {
  const out = JSON.parse(execFileSync(NFT, ['-j', 'list', 'set', 'inet', TABLE, set], { encoding: 'utf8' }));
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const s = out.nftables.find((x: any) => x.set)?.set;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const vals: string[] = (s?.elem ?? []).map((e: any) => {
    const v = e.elem ? e.elem.val : e;
    return typeof v === 'string' ? v : `${v.prefix.addr}/${v.prefix.len}`;
  });
  return vals.filter((v) => !isCanary(v)).sort();
}

/** Does a UDP datagram from `from` to `to` (both on lo) arrive? */
async function arrives(from: string, to: string, port: number): Promise<boolean> {
  const rx = createSocket('udp6');
  const tx = createSocket('udp6');
  try {
    const got = new Promise<boolean>((resolve) => {
      rx.once('message', () => resolve(true));
      setTimeout(() => resolve(false), 400);
    });
    await new Promise<void>((resolve) => rx.bind(port, to, resolve));
    await new Promise<void>((resolve) => tx.bind(0, from, resolve));
    tx.send('probe', port, to);
    return await got;
  } finally {
    rx.close();
    tx.close();
  }
}

interface Report {
  kind: string;
  pfx6: string[];
  net6: string[];
  listed: Array<{ target: string; isNetwork: boolean; ttlS: number | null }>;
  packets: { banned: boolean; neighbour: boolean };
  afterUnban: { pfx6: string[]; listed: string[] };
  moved: { net6: string[]; pfx6: string[]; listed: string[] };
}

async function scenario(kind: 'addon' | 'command'): Promise<Report> {
  assertPrivateNetns();
  execFileSync(IP, ['link', 'set', 'lo', 'up']);
  for (const a of ['2001:db8:1:2::5/128', '2001:db8:1:3::5/128', '2001:db8:9::1/128']) execFileSync(IP, ['-6', 'addr', 'add', a, 'dev', 'lo', 'nodad']);
  const runner: NftRunner = kind === 'addon' ? createAddonRunner()! : new NftCommandRunner(NFT);
  const be = new NftablesBackend(runner, { table: TABLE, verdict: 'drop', ports: [], size: 65536 });
  const entry = entryFactory(Date.now());
  await be.setup();
  await be.apply({ add: [entry('2001:db8:1:2::/64', 3_600_000), entry('2001:db8:7::/48', 3_600_000), entry('2001:db8::9', 3_600_000)], remove: [] });
  const listed = (await be.list())
    .filter((e) => e.family === 6)
    .map((e) => ({ target: e.target, isNetwork: e.isNetwork, ttlS: e.expiresAt === null ? null : Math.round((e.expiresAt - Date.now()) / 1000) }))
    .sort((a, b) => a.target.localeCompare(b.target));
  const report: Partial<Report> = { kind, pfx6: nftVals('pfx6'), net6: nftVals('net6'), listed };
  report.packets = {
    banned: await arrives('2001:db8:1:2::5', '2001:db8:9::1', 40001),
    neighbour: await arrives('2001:db8:1:3::5', '2001:db8:9::1', 40002),
  };
  await be.apply({ add: [], remove: [{ target: '2001:db8:1:2::/64', family: 6, isNetwork: true }] });
  report.afterUnban = { pfx6: nftVals('pfx6'), listed: (await be.list()).map((e) => e.target).sort() };
  // a /64 that a version before pfx6 left in the net6 interval set: the next setup() moves it
  execFileSync(NFT, ['add', 'element', 'inet', TABLE, 'net6', '{ 2001:db8:5:6::/64 timeout 2h }']);
  await be.setup();
  report.moved = { net6: nftVals('net6'), pfx6: nftVals('pfx6'), listed: (await be.list()).map((e) => e.target).sort() };
  await be.flush();
  await be.close();
  return report as Report;
}

if (process.env.PBXG_SCENARIO) {
  reportScenario(() => scenario(process.env.PBXG_SCENARIO as 'addon' | 'command'));
} else {
  for (const kind of ['addon', 'command'] as const) {
    test(`IPv6 /64 bans in the pfx6 hash set, matched on the masked source (${kind})`, async (t) => {
      const skip = netnsSkipReason([NFT, IP]);
      if (skip) return t.skip(skip);
      if (kind === 'addon') {
        const runner = createAddonRunner();
        if (!runner) return t.skip('build/Release/nftables.node not built (node-gyp rebuild with libnftables-dev)');
        await runner.close();
      }
      const r = await runInNetns<Report>(SELF, { PBXG_SCENARIO: kind });
      assert.deepEqual(r.pfx6, ['2001:db8:1:2::'], 'the /64 is one key of pfx6: its network address');
      assert.deepEqual(r.net6, ['2001:db8:7::/48'], 'other IPv6 networks stay in the interval set');
      assert.deepEqual(
        r.listed.map((e) => [e.target, e.isNetwork]),
        [
          ['2001:db8::9', false],
          ['2001:db8:1:2::/64', true],
          ['2001:db8:7::/48', true],
        ],
        'list() reports the pfx6 element as the /64 network the store holds',
      );
      const ttl = r.listed.find((e) => e.target === '2001:db8:1:2::/64')!.ttlS!;
      assert.ok(ttl >= 3590 && ttl <= 3600, `its end read back (${ttl} s left)`);
      assert.equal(r.packets.banned, false, 'a datagram from inside the banned /64 is dropped by the kernel');
      assert.equal(r.packets.neighbour, true, 'one from the next /64 arrives');
      assert.deepEqual(r.afterUnban.pfx6, [], 'unban removes the key');
      assert.deepEqual(r.afterUnban.listed, ['2001:db8:7::/48', '2001:db8::9']);
      assert.deepEqual(r.moved.net6, ['2001:db8:7::/48'], 'setup() took the old /64 out of net6');
      assert.deepEqual(r.moved.pfx6, ['2001:db8:5:6::'], 'and put it into pfx6');
      assert.ok(r.moved.listed.includes('2001:db8:5:6::/64'));
    });
  }
}
