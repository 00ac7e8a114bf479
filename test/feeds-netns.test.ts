/**
 * A whole daemon with a block-list feed and the real nftables backend, in a private network
 * namespace (`unshare -n`): the feed's entries land in `inet pbx_guardian_<name>`, never in the
 * local bans' table; the allow-list keeps its entry out; the health names the feed; a flush
 * pauses the feed's table too; pbx-guardian flush's cleanup deletes it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { createBackend, defaultFirewallConfig } from '../src/firewall/index.js';
import { flushFeedSets } from '../src/feeds/index.js';
import { assertPrivateNetns, netnsSkipReason, reportScenario, runInNetns } from './helpers/netns.js';
import { startTestDaemon, waitFor } from './helpers/daemon.js';
import { banElements } from './helpers/nft-set.js';

const SELF = fileURLToPath(import.meta.url);
const NFT = '/usr/sbin/nft';
const IP = '/usr/sbin/ip';

/** the ban elements of one table in this namespace ([] when the table is missing) */
function kernelSet(table: string): string[] {
  try {
    return banElements(table);
  } catch {
    return [];
  }
}

const tableExists = (table: string) => {
  try {
    execFileSync(NFT, ['list', 'table', 'inet', table], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};

interface Report {
  feedSet: string[];
  localSet: string[];
  healthSummary: string;
  healthyFeeds: boolean;
  pausedFeedSet: string[];
  resumedFeedSet: string[];
  tableAfterFlush: boolean;
}

async function scenario(): Promise<Report> {
  assertPrivateNetns();
  execFileSync(IP, ['link', 'set', 'lo', 'up']);
  const list = ['# test feed', '198.51.100.7', '203.0.113.0/24 ; a range', '192.0.2.9', '2001:db8:77::1'].join('\n');
  const srv = http.createServer((_req, res) => res.end(list));
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(srv.address() as { port: number }).port}/list.txt`;
  const logger = pino({ level: 'warn' });
  const backend = await createBackend({ ...defaultFirewallConfig, backend: 'nftables' }, logger);
  const d = await startTestDaemon({
    ami: false,
    backend,
    config: {
      firewall: { backend: 'nftables' },
      guard: { allow: ['192.0.2.0/24'] },
      feeds: [{ name: 'voipbl', kind: 'list', url, interval: '1m' }],
    },
  });
  try {
    await waitFor('the feed in its table', () => kernelSet('pbx_guardian_voipbl').length >= 3, 20_000);
    const feedSet = kernelSet('pbx_guardian_voipbl');
    const localSet = kernelSet('pbx_guardian');
    const part = d.daemon.health().parts.find((p) => p.part === 'feeds')!;
    const admin = d.daemon as unknown as { feeds: { pause(r: string): Promise<void>; resume(): Promise<void> } };
    await admin.feeds.pause('test flush');
    const pausedFeedSet = kernelSet('pbx_guardian_voipbl');
    await admin.feeds.resume();
    await waitFor('the feed back after resume', () => kernelSet('pbx_guardian_voipbl').length >= 3, 20_000);
    const resumedFeedSet = kernelSet('pbx_guardian_voipbl');
    await d.close();
    await flushFeedSets({ ...defaultFirewallConfig, backend: 'nftables' }, d.config.feeds, logger);
    return {
      feedSet,
      localSet,
      healthSummary: part.summary,
      healthyFeeds: part.enabled && part.healthy,
      pausedFeedSet,
      resumedFeedSet,
      tableAfterFlush: tableExists('pbx_guardian_voipbl'),
    };
  } finally {
    await d.close();
    srv.close();
  }
}

if (process.env.PBXG_SCENARIO === 'feeds') reportScenario(scenario);
else {
  const skip = netnsSkipReason([NFT, IP]);
  test(
    "a feed's entries are in inet pbx_guardian_<name> (real nftables, private netns); the allow-list wins; pause, resume and flush reach it",
    { skip: skip || false },
    async () => {
      const r = await runInNetns<Report>(SELF, { PBXG_SCENARIO: 'feeds' }, [], 120_000);
      assert.deepEqual(r.feedSet, ['198.51.100.7', '2001:db8:77::1', '203.0.113.0/24']);
      assert.deepEqual(r.localSet, [], "the local bans' table holds none of the feed's entries");
      assert.equal(r.healthyFeeds, true);
      assert.match(r.healthSummary, /voipbl \(list\) ok: 3 entries in inet pbx_guardian_voipbl/);
      assert.deepEqual(r.pausedFeedSet, [], "a flush (pause) empties the feed's table too");
      assert.deepEqual(r.resumedFeedSet, r.feedSet);
      assert.equal(r.tableAfterFlush, false, "flushFeedSets deletes the feed's table");
    },
  );
}
