/**
 * The two test lanes. `npm test` runs every test file (dist/test/, serial); `npm run test:unit`
 * runs the UNIT lane only: the files that need no root, no kernel, no network namespace, no
 * system program and no whole daemon waiting through outages, reconnects or a soak — the lane a
 * contributor runs after every change (under 20 s on a 2-CPU machine).
 *
 * Every test file is listed in exactly one lane, and test/lanes.test.ts (in the unit lane) fails
 * when a file is in neither or both, when a listed file is gone, or when a unit-lane file uses
 * what only the full lane may (a network namespace, root, a system program): a new test cannot
 * drift into the wrong lane unnoticed. A file goes in UNIT when it also runs in a second or two.
 *
 *   node dist/test/lanes.js unit    run the unit lane (what `npm run test:unit` does after tsc)
 */
import { spawn } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export type Lane = 'unit' | 'full';

/** in-process, no root or system program, a second or two each */
export const UNIT: readonly string[] = [
  'accounts.test.ts',
  'action-policy-config.test.ts',
  'action-policy.test.ts',
  'ami-burst-read.test.ts',
  'ami-client.test.ts',
  'ami-decode-paths.test.ts',
  'ami-framer.test.ts',
  'ami-simulator.test.ts',
  'asterisk-config-guardian.test.ts',
  'asterisk-config-sync.test.ts',
  'backoff.test.ts',
  'bounded-queue.test.ts',
  'call-traffic.test.ts',
  'check-fraud.test.ts',
  'check-imports.test.ts',
  'cli-help.test.ts',
  'feeds.test.ts',
  'fleet-bouncer.test.ts',
  'fleet-decision.test.ts',
  'fleet-machine.test.ts',
  'fleet-stream-split.test.ts',
  'config-addresses.test.ts',
  'config-generate.test.ts',
  'config-secrets.test.ts',
  'config.test.ts',
  'console-commands.test.ts',
  'daemon-lifecycle.test.ts',
  'dashboards.test.ts',
  'daemon-fraud.test.ts',
  'daemon-odoo.test.ts',
  'daemon-security-log.test.ts',
  'engines.test.ts',
  'error-model.test.ts',
  'firewall-deferred.test.ts',
  'fraud.test.ts',
  'fraud-blocks.test.ts',
  'fraud-budget.test.ts',
  'fraud-dialstring.test.ts',
  'firewall-enforcer.test.ts',
  'firewall-restore-live.test.ts',
  'firewall-health.test.ts',
  'firewall-nft-elems.test.ts',
  'firewall-nft-netlink-records.test.ts',
  'firewall-nft-watch.test.ts',
  'fraud-destinations.test.ts',
  'fuzz-action-policy.test.ts',
  'fuzz-address.test.ts',
  'fuzz-ami.test.ts',
  'fuzz-attempts.test.ts',
  'fuzz-condition.test.ts',
  'guard-accounts.test.ts',
  'guard-expiry.test.ts',
  'guard-key-table.test.ts',
  'guard-packed.test.ts',
  'guard-state-pool.test.ts',
  'guard.test.ts',
  'health-judge.test.ts',
  'health-metrics.test.ts',
  'health-snapshots.test.ts',
  'http-auth-policy.test.ts',
  'http-auth-reload.test.ts',
  'ip.test.ts',
  'lanes.test.ts',
  'lifecycle.test.ts',
  'metrics.test.ts',
  'metrics-series.test.ts',
  'odoo-condition.test.ts',
  'odoo-fagi.test.ts',
  'odoo-jobs.test.ts',
  'odoo-settings.test.ts',
  'response-bounds.test.ts',
  'rest-api.test.ts',
  'sources-security-log.test.ts',
  'sources-tail.test.ts',
  'state-lock.test.ts',
  'subscribers.test.ts',
  'webhooks-delivery.test.ts',
];

/** only in `npm test`: why each file is not a unit test */
export const FULL: Readonly<Record<string, string>> = {
  'fault-firewall.test.ts': 'root: kernel firewall faults in a private network namespace',
  'fault-sigkill.test.ts': 'root: a daemon killed with SIGKILL, kernel sets in a private network namespace',
  'fault-store.test.ts': 'root: store faults with the kernel backend in a private network namespace',
  'firewall-backend.test.ts': 'root: nftables through the addon and the command in a private network namespace',
  'firewall-ipset.test.ts': 'root: ipset + iptables in a private network namespace',
  'firewall-nftables.test.ts': 'root: nftables in a private network namespace',
  'firewall-nft-netlink.test.ts': 'root: address-set elements over raw netlink in a private network namespace',
  'firewall-restore-netns.test.ts': 'root: 100k stored bans restored into nftables in a private network namespace',
  'firewall-pfx6.test.ts': 'root: IPv6 /64 bans and real datagrams in a private network namespace',
  'firewall-refused.test.ts': 'root: elements the kernel refuses, in a private network namespace',
  'firewall-watchdog-ipset.test.ts': 'root: tampering with ipset / iptables in a private network namespace',
  'firewall-watchdog.test.ts': 'root: tampering with nftables in a private network namespace',
  'packaging.test.ts': 'root: builds the .deb, installs it (PBXG_PACKAGE_TEST) and runs it in a network namespace',
  'asterisk-config-confine.test.ts': 'root: owners and modes kept across writes (chown, a child as another user)',
  'startup.test.ts': 'root: daemon starts and fail-fast exits as a child, kernel backend in a private network namespace',
  'cli-check.test.ts': 'system program: compares `check` with fail2ban-regex (security log, messages log)',
  'dashboards-promtool.test.ts': 'system program: promtool check rules on dashboards/alert-rules.yaml',
  'native-abi.test.ts': 'root: modules built for another Node.js ABI (cc), the daemon on the nft command in a private network namespace',
  'state-ownership.test.ts': 'root: run as root in the service user’s state directory (chown, a child as another user)',
  'feeds-netns.test.ts': 'root: a daemon with a feed and real nftables in a private network namespace',
  'cli-bans.test.ts': 'CLI child processes against a daemon (a node start each): several seconds, not one or two',
  'cli-habits.test.ts': 'CLI child processes against a daemon (a node start each): several seconds, not one or two',
  'cli-why.test.ts': 'CLI child processes against a daemon (a node start each): several seconds, not one or two',
  'cli-check-formats.test.ts': 'CLI child processes against a daemon (a node start each): several seconds, not one or two',
  'fleet-lapi.test.ts': 'system program: a real CrowdSec Local API (crowdsec, cscli) on loopback',
  'fleet-machine-lapi.test.ts': 'system program: a real CrowdSec Local API (crowdsec, cscli) stopped 10 s under the machine',
  'fleet-two-guardians.test.ts':
    'root, two network namespaces joined by a veth pair, a real CrowdSec Local API, two whole daemons (and a minute of LAPI outage)',
  'odoo-mp3.test.ts': 'system program: converts recordings with the real lame',
  'health-daemon.test.ts': 'system program: promtool on the scrape and the alert rules; CLI children against a daemon',
  'systemd.test.ts': 'system program: systemd-analyze verify / security on the unit',
  'ami-blind.test.ts': 'whole daemon: AMI blind to security events, waits for the re-checks',
  'ban-scope.test.ts': 'whole daemon and CLI children',
  'cli-odoo-init.test.ts': 'CLI children against a fake Odoo',
  'odoo-replay.test.ts': 'whole daemon replaying the recorded Odoo 17 run (mp3 through lame when installed)',
  'daemon-odoo-settings.test.ts': 'whole daemon with settings from a fake Odoo; pbx-guardian status children',
  'daemon.test.ts': 'whole daemon and CLI children on its admin socket',
  'daemon-fraud-accounts.test.ts': 'whole daemon with a webhook and a fake Odoo; CLI children (fraud, accounts, acknowledge) on its admin socket',
  'store-migrations.test.ts': 'a `run` child on a database from a newer version (exit 11); timers of the prune',
  'demo.test.ts': 'the demo: a daemon under a simulated attack for seconds',
  'fault-ami.test.ts': 'whole daemon: the AMI peer killed and restarted (outages of seconds)',
  'fault-odoo.test.ts': 'whole daemon: Odoo slow and down for seconds',
  'fuzz-guard.test.ts': 'slow: ~5 s of guard properties',
  'fuzz-http.test.ts': 'slow: ~9 s of HTTP fuzzing against every listener',
  'guard-allow.test.ts': 'whole daemon: the automatic allow-list with host lookups',
  'guard-attempts.test.ts': 'slow: ~5 s of attempt-window scenarios',
  'guard-host-allow.test.ts': 'whole daemon: host files and resolver followed as they change',
  'http-auth-failures.test.ts': 'whole daemon: authentication failures on every listener',
  'http-auth-routes.test.ts': 'slow: ~14 s, every route of every listener',
  'odoo-file-race.test.ts': 'child processes racing the recording directory',
  'odoo-forwarder.test.ts': 'slow: a 3 s Odoo latency and outbox drains',
  'odoo-job-memory.test.ts': 'child processes with a bounded heap and 60 MB recordings',
  'soak-short.test.ts': 'slow: a 20 s soak through the whole daemon',
  'startup-listeners.test.ts': 'whole daemon: listener binding and fail-fast, several starts',
};

/** The lane of a test file (its name under test/), or null when it is in none. */
export function laneOf(file: string): Lane | null {
  if (UNIT.includes(file)) return 'unit';
  if (Object.hasOwn(FULL, file)) return 'full';
  return null;
}

/**
 * The unit lane runs its files in one process per CPU rather than one per file: a node process
 * costs ~0.2 s of CPU to start, and 60 of them were a third of the lane. A file in this lane
 * therefore shares its process with others: no hook at its top level (it would reach their tests),
 * nothing left listening, nothing global changed (test/lanes.test.ts checks the first).
 * The files are dealt to the processes by their last measured time (dist/.unit-lane-times.json,
 * written by the lane-times reporter), slowest first, each to the least loaded process.
 */
function runUnitLane(): void {
  const here = dirname(fileURLToPath(import.meta.url));
  const timesFile = join(here, '..', '.unit-lane-times.json');
  const shares = deal(UNIT, readTimes(timesFile), Math.max(1, Math.min(4, availableParallelism())));
  const started = Date.now();
  let failed = false;
  let left = shares.length;
  shares.forEach((files, i) => {
    const args = [
      '--test-reporter=spec',
      '--test-reporter-destination=stdout',
      `--test-reporter=${join(here, 'helpers', 'lane-times.js')}`,
      `--test-reporter-destination=${timesFile}.${i}`,
      fileURLToPath(import.meta.url),
      'share',
      ...files.map((f) => join(here, f.replace(/\.ts$/, '.js'))),
    ];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    const out: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.on('close', (code, signal) => {
      // one process's report at a time: two interleaved spec trees cannot be read
      process.stdout.write(`\n# unit lane, process ${i + 1}/${shares.length}: ${files.length} files\n`);
      process.stdout.write(Buffer.concat(out));
      if (code !== 0 || signal) failed = true;
      if (--left > 0) return;
      mergeTimes(timesFile, shares.length);
      const secs = ((Date.now() - started) / 1000).toFixed(1);
      console.log(`\n# unit lane: ${UNIT.length} files in ${shares.length} processes, ${secs} s, ${failed ? 'FAILED' : 'passed'}`);
      process.exit(failed ? 1 : 0);
    });
  });
}

/** Longest first, each to the least loaded share (a file never measured counts as a second). */
export function deal(files: readonly string[], times: Readonly<Record<string, number>>, n: number): string[][] {
  const cost = (f: string) => times[f] ?? 1000;
  const shares = Array.from({ length: n }, () => ({ files: [] as string[], load: 0 }));
  for (const f of [...files].sort((a, b) => cost(b) - cost(a) || a.localeCompare(b))) {
    const least = shares.reduce((a, b) => (b.load < a.load ? b : a));
    least.files.push(f);
    least.load += cost(f);
  }
  return shares.map((s) => s.files).filter((f) => f.length > 0);
}

function readTimes(file: string): Record<string, number> {
  try {
    const parsed: unknown = JSON.parse(readFileSync(file, 'utf8'));
    return parsed && typeof parsed === 'object' ? (parsed as Record<string, number>) : {};
  } catch {
    return {}; // first run, or a damaged file: deal evenly, measure again
  }
}

function mergeTimes(file: string, n: number): void {
  const merged: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    Object.assign(merged, readTimes(`${file}.${i}`));
    rmSync(`${file}.${i}`, { force: true });
  }
  if (Object.keys(merged).length > 0) writeFileSync(file, JSON.stringify(merged, null, 1) + '\n');
}

/** One share: import the files; node:test runs their tests in this process, one after another. */
async function runShare(files: string[]): Promise<void> {
  for (const f of files) await import(pathToFileURL(f).href);
}

// `npm test` (node --test dist/test/) runs every .js file there, this one too: nothing to do then
const underTestRunner = process.env.NODE_TEST_CONTEXT !== undefined;
if (!underTestRunner && process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const lane = process.argv[2];
  if (lane === 'share') void runShare(process.argv.slice(3));
  else if (lane === 'unit') runUnitLane();
  else {
    console.error('usage: node dist/test/lanes.js unit   (the full lane is `npm test`: node --test dist/test/)');
    process.exit(2);
  }
}
