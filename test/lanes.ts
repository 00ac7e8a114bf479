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
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export type Lane = 'unit' | 'full';

/** in-process, no root or system program, a second or two each */
export const UNIT: readonly string[] = [
  'accounts.test.ts',
  'action-policy-config.test.ts',
  'action-policy.test.ts',
  'ami-client.test.ts',
  'ami-framer.test.ts',
  'ami-simulator.test.ts',
  'asterisk-config-guardian.test.ts',
  'asterisk-config-sync.test.ts',
  'backoff.test.ts',
  'bounded-queue.test.ts',
  'call-traffic.test.ts',
  'check-fraud.test.ts',
  'check-imports.test.ts',
  'fleet-decision.test.ts',
  'config-addresses.test.ts',
  'config-generate.test.ts',
  'config-secrets.test.ts',
  'config.test.ts',
  'console-commands.test.ts',
  'daemon-lifecycle.test.ts',
  'daemon-fraud.test.ts',
  'daemon-odoo.test.ts',
  'daemon-security-log.test.ts',
  'error-model.test.ts',
  'firewall-deferred.test.ts',
  'fraud.test.ts',
  'firewall-enforcer.test.ts',
  'firewall-health.test.ts',
  'firewall-nft-watch.test.ts',
  'fraud-destinations.test.ts',
  'fuzz-action-policy.test.ts',
  'fuzz-address.test.ts',
  'fuzz-ami.test.ts',
  'fuzz-attempts.test.ts',
  'fuzz-condition.test.ts',
  'guard-accounts.test.ts',
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
  'firewall-refused.test.ts': 'root: elements the kernel refuses, in a private network namespace',
  'firewall-watchdog-ipset.test.ts': 'root: tampering with ipset / iptables in a private network namespace',
  'firewall-watchdog.test.ts': 'root: tampering with nftables in a private network namespace',
  'packaging.test.ts': 'root: builds the .deb, installs it (PBXG_PACKAGE_TEST) and runs it in a network namespace',
  'asterisk-config-confine.test.ts': 'root: owners and modes kept across writes (chown, a child as another user)',
  'startup.test.ts': 'root: daemon starts and fail-fast exits as a child, kernel backend in a private network namespace',
  'cli-check.test.ts': 'system program: compares `check` with fail2ban-regex',
  'odoo-mp3.test.ts': 'system program: converts recordings with the real lame',
  'health-daemon.test.ts': 'system program: promtool on the scrape and the alert rules; CLI children against a daemon',
  'systemd.test.ts': 'system program: systemd-analyze verify / security on the unit',
  'ami-blind.test.ts': 'whole daemon: AMI blind to security events, waits for the re-checks',
  'ban-scope.test.ts': 'whole daemon and CLI children',
  'cli-odoo-init.test.ts': 'CLI children against a fake Odoo',
  'odoo-replay.test.ts': 'whole daemon replaying the recorded Odoo 17 run (mp3 through lame when installed)',
  'daemon-odoo-settings.test.ts': 'whole daemon with settings from a fake Odoo; pbx-guardian status children',
  'daemon.test.ts': 'whole daemon and CLI children on its admin socket',
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

function runUnitLane(): void {
  const here = dirname(fileURLToPath(import.meta.url));
  const files = UNIT.map((f) => join(here, f.replace(/\.ts$/, '.js')));
  // two at a time: the files are independent (own temp dirs, port 0), and the lane is CPU-bound
  const child = spawn(process.execPath, ['--test', '--test-concurrency=2', ...files], { stdio: 'inherit' });
  child.on('close', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
}

// `npm test` (node --test dist/test/) runs every .js file there, this one too: nothing to do then
const underTestRunner = process.env.NODE_TEST_CONTEXT !== undefined;
if (!underTestRunner && process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const lane = process.argv[2];
  if (lane !== 'unit') {
    console.error('usage: node dist/test/lanes.js unit   (the full lane is `npm test`: node --test dist/test/)');
    process.exit(2);
  }
  runUnitLane();
}
