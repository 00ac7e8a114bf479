/**
 * The health judges on synthetic snapshots: each state a part can be in, and what an administrator
 * reads for it (summary, problems that say what to do).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AmiHealth } from '../src/ami/index.js';
import type { FirewallHealth } from '../src/firewall/index.js';
import type { OdooHealthSnapshot } from '../src/odoo/index.js';
import type { WebhookHealth } from '../src/webhooks/index.js';
import {
  formatHealth,
  judgeAmi,
  judgeFirewall,
  judgeGuard,
  judgeHealth,
  judgeOdoo,
  judgeStore,
  judgeWebhooks,
  type GuardSnapshot,
  type HealthInputs,
  type StoreSnapshot,
} from '../src/health/index.js';

const NOW = Date.parse('2026-12-02T13:00:00Z');
const MIN = 60_000;

function ami(over: Partial<AmiHealth> = {}): AmiHealth {
  return {
    state: 'connected',
    host: '127.0.0.1',
    port: 5038,
    username: 'guardian',
    since: NOW - 10 * MIN,
    lastLoginError: null,
    security: 'verified',
    classesSeen: ['security', 'system'],
    lastEventAt: NOW - 5000,
    lastSecurityEventAt: NOW - 5000,
    advice: null,
    ...over,
  };
}

function fw(over: Partial<FirewallHealth> = {}): FirewallHealth {
  return {
    backend: 'nftables',
    dryRun: false,
    state: 'enforcing',
    pausedReason: null,
    tablePresent: true,
    kernelElements: 3,
    kernelCountedAt: NOW - 2000,
    storeActive: 3,
    queued: 0,
    lastSuccessAt: NOW - 60_000,
    lastError: null,
    repairs: 0,
    ...over,
  };
}

const guard = (over: Partial<GuardSnapshot> = {}): GuardSnapshot => ({ rules: 12, tracked: 4, maxTracked: 1_000_000, activeBans: 3, ...over });
const store = (over: Partial<StoreSnapshot> = {}): StoreSnapshot => ({
  onDisk: true,
  path: '/var/lib/pbx-guardian/guardian.sqlite',
  stateDir: '/var/lib/pbx-guardian',
  openError: null,
  lastWriteError: null,
  lastWriteOkAt: NOW - 1000,
  ...over,
});

function odoo(over: Partial<OdooHealthSnapshot> = {}): OdooHealthSnapshot {
  return {
    url: 'https://odoo.example.com',
    db: 'prod',
    user: 'agent',
    outboxDepth: 0,
    outboxMaxRows: 100_000,
    oldestUndeliveredAt: null,
    mode: 'direct',
    jobEndpoint: 'listening',
    rpc: { transport: 'jsonrpc', loggedIn: true, authError: null, failingSince: null, lastError: null, lastOkAt: NOW - 1000 },
    ...over,
  };
}

const hook = (over: Partial<WebhookHealth> = {}): WebhookHealth => ({
  name: 'crm',
  depth: 0,
  maxRows: 10_000,
  oldestUndeliveredAt: null,
  failingSince: null,
  lastError: null,
  delivered: 7,
  ...over,
});

test('ami: connected and verified is healthy, and the summary names host, user, classes and the last security event', () => {
  const p = judgeAmi(ami(), NOW);
  assert.equal(p.healthy, true);
  assert.deepEqual(p.problems, []);
  assert.match(
    p.summary,
    /connected to 127\.0\.0\.1:5038 as "guardian" for 10m; classes received: security,system; security verified; last security event 5s ago/,
  );
  assert.equal(p.detail.lastSecurityEventAt, new Date(NOW - 5000).toISOString());
});

test('ami: a refused login (wrong secret) is unhealthy and says what to fix, without the stale retry plan', () => {
  const message =
    'AMI login to 127.0.0.1:5038 as "guardian" was refused ("Authentication failed"): wrong username or secret, or this host is not permitted by the user\'s deny/permit (check manager.conf); retrying in 4.2s';
  const p = judgeAmi(
    ami({ state: 'connecting', since: NOW - 2000, security: 'unknown', classesSeen: [], lastLoginError: { kind: 'auth', message, at: NOW - 3000 } }),
    NOW,
  );
  assert.equal(p.healthy, false);
  assert.equal(p.problems.length, 1);
  assert.match(p.problems[0]!, /was refused .*wrong username or secret/);
  assert.match(p.problems[0]!, /Fix ami\.username \/ ami\.secret/);
  assert.doesNotMatch(p.problems[0]!, /retrying in 4\.2s/);
  assert.match(p.summary, /not connected to 127\.0\.0\.1:5038 as "guardian"/);
});

test("ami: unreachable host is unhealthy with the client's own advice; before any error it still says it is not logged in", () => {
  const message =
    'AMI at 127.0.0.1:5038 is unreachable (ECONNREFUSED: connect ECONNREFUSED 127.0.0.1:5038); check that Asterisk runs and that manager.conf has enabled = yes on this address and port; retrying in 1.1s';
  const p = judgeAmi(ami({ state: 'disconnected', security: 'unknown', lastLoginError: { kind: 'unreachable', message, at: NOW - 500 } }), NOW);
  assert.equal(p.healthy, false);
  assert.match(p.problems[0]!, /is unreachable .*check that Asterisk runs/);
  const fresh = judgeAmi(ami({ state: 'connecting', since: NOW - 1000, security: 'unknown' }), NOW);
  assert.equal(fresh.healthy, false);
  assert.match(fresh.problems[0]!, /not logged in to AMI at 127\.0\.0\.1:5038 \(connecting for 1s\)/);
});

test('ami: disabled is not a failure', () => {
  const p = judgeAmi(null, NOW);
  assert.equal(p.enabled, false);
  assert.equal(p.healthy, true);
});

test('guard: verified AMI → healthy; blind (security missing) → unhealthy with the manager.conf advice', () => {
  assert.equal(judgeGuard(guard(), ami(), NOW).healthy, true);
  const advice = 'add "security" to read= of [guardian] in manager.conf, then manager reload';
  const blind = judgeGuard(guard(), ami({ security: 'missing', classesSeen: ['system'], advice }), NOW);
  assert.equal(blind.healthy, false);
  assert.match(blind.summary, /BLIND/);
  assert.match(blind.problems[0]!, /blind: the AMI user "guardian" does not receive security events/);
  assert.ok(
    blind.problems[0]!.endsWith('nothing is banned. Add "security" to read= of [guardian] in manager.conf, then manager reload'),
    "the client's advice is passed on",
  );
  const noAdvice = judgeGuard(guard(), ami({ security: 'missing', advice: null }), NOW);
  assert.match(noAdvice.problems[0]!, /read = security/);
});

test('guard: still checking, or AMI not logged in, is blind too; AMI disabled is not', () => {
  const checking = judgeGuard(guard(), ami({ security: 'checking', since: NOW - 3000 }), NOW);
  assert.equal(checking.healthy, false);
  assert.match(checking.problems[0]!, /not yet verified .*logged in 3s ago/);
  const down = judgeGuard(guard(), ami({ state: 'disconnected', security: 'unknown' }), NOW);
  assert.equal(down.healthy, false);
  assert.match(down.problems[0]!, /blind: not logged in to AMI/);
  const noAmi = judgeGuard(guard(), null, NOW);
  assert.equal(noAmi.healthy, true);
  assert.match(noAmi.summary, /AMI disabled/);
});

test('guard: no rules loaded is unhealthy; a full tracking table is said, not failed', () => {
  const none = judgeGuard(guard({ rules: 0 }), ami(), NOW);
  assert.equal(none.healthy, false);
  assert.match(none.problems[0]!, /no detection rules are loaded.*guard\.rulesDir/);
  const full = judgeGuard(guard({ tracked: 1000, maxTracked: 1000 }), ami(), NOW);
  assert.equal(full.healthy, true);
  assert.match(full.summary, /at guard\.maxTracked/);
});

test('firewall: enforcing is healthy and counts kernel elements against the store', () => {
  const p = judgeFirewall({ configured: 'auto', health: fw() }, NOW);
  assert.equal(p.healthy, true);
  assert.match(p.summary, /enforcing with nftables: 3 elements in the kernel, 3 active bans in the store; last transaction 1m ago/);
});

test('firewall: failing says the error, the queue, and that detection goes on', () => {
  const p = judgeFirewall(
    { configured: 'nftables', health: fw({ state: 'failing', queued: 5, lastError: { message: 'Operation not permitted', at: NOW - 4000 } }) },
    NOW,
  );
  assert.equal(p.healthy, false);
  assert.match(p.problems[0]!, /enforcement is failing \(backend nftables\): Operation not permitted \(4s ago\)\. New bans are queued \(5\)/);
});

test('firewall: paused on purpose is unhealthy and names why', () => {
  const p = judgeFirewall(
    { configured: 'auto', health: fw({ state: 'paused', pausedReason: 'pbx-guardian flush at 2026-12-02T12:59:00Z', tablePresent: false }) },
    NOW,
  );
  assert.equal(p.healthy, false);
  assert.equal(p.problems.length, 1, 'the table is gone on purpose: not also reported as removed by someone');
  assert.match(p.problems[0]!, /paused on purpose \(pbx-guardian flush at 2026-12-02T12:59:00Z\): no ban reaches the kernel.*"pbx-guardian resume"/);
});

test('firewall: table missing, or an empty kernel while the store has bans, is unhealthy', () => {
  const gone = judgeFirewall({ configured: 'auto', health: fw({ tablePresent: false, kernelElements: 0 }) }, NOW);
  assert.equal(gone.healthy, false);
  assert.match(gone.problems[0]!, /table \/ sets are missing from the kernel/);
  const empty = judgeFirewall({ configured: 'auto', health: fw({ tablePresent: null, kernelElements: 0, storeActive: 40 }) }, NOW);
  assert.equal(empty.healthy, false);
  assert.match(empty.problems[0]!, /no ban element but the store has 40 active bans/);
  const uncounted = judgeFirewall({ configured: 'auto', health: fw({ tablePresent: null, kernelElements: null, kernelCountedAt: null }) }, NOW);
  assert.equal(uncounted.healthy, true, 'not counted is not a failure');
});

test('firewall: memory as configured is a healthy dry run that says so; memory in place of a real backend is not', () => {
  const dry = judgeFirewall({ configured: 'memory', health: fw({ backend: 'memory', dryRun: true, tablePresent: null, kernelElements: null }) }, NOW);
  assert.equal(dry.healthy, true);
  assert.match(dry.summary, /^DRY RUN \(backend memory\): 3 active bans are recorded but nothing reaches the kernel/);
  const fellBack = judgeFirewall({ configured: 'auto', health: fw({ backend: 'memory', dryRun: true, tablePresent: null, kernelElements: null }) }, NOW);
  assert.equal(fellBack.healthy, false);
  assert.match(fellBack.problems[0]!, /firewall\.backend is "auto" but the enforcer runs the memory backend/);
  // auto with no usable backend: the DeferredBackend ("unavailable") retries, the enforcer fails
  const unavailable = judgeFirewall(
    { configured: 'auto', health: fw({ backend: 'unavailable', state: 'failing', lastError: { message: 'no usable firewall backend: ...', at: NOW } }) },
    NOW,
  );
  assert.equal(unavailable.healthy, false);
  assert.match(unavailable.problems[0]!, /backend unavailable/);
});

test('store: on disk is healthy; the in-memory fallback is not and says what is lost', () => {
  assert.equal(judgeStore(store(), NOW).healthy, true);
  const mem = judgeStore(store({ onDisk: false, path: ':memory:', openError: 'EROFS: read-only file system' }), NOW);
  assert.equal(mem.healthy, false);
  assert.match(mem.summary, /IN MEMORY ONLY/);
  assert.match(
    mem.problems[0]!,
    /in-memory state: the state database in \/var\/lib\/pbx-guardian could not be opened \(EROFS: read-only file system\)\. Bans are enforced but are lost at the next restart/,
  );
});

test('store: write errors count while they last and for 5 minutes after', () => {
  const failing = judgeStore(store({ lastWriteError: { message: 'SQLITE_FULL', at: NOW - 20 * MIN, lost: 4 }, lastWriteOkAt: NOW - 30 * MIN }), NOW);
  assert.equal(failing.healthy, false, 'still failing: no write succeeded since');
  assert.match(failing.problems[0]!, /4 state writes failed 20m ago \(SQLITE_FULL\)/);
  const recent = judgeStore(store({ lastWriteError: { message: 'SQLITE_FULL', at: NOW - 2 * MIN, lost: 1 }, lastWriteOkAt: NOW - MIN }), NOW);
  assert.equal(recent.healthy, false);
  assert.match(recent.problems[0]!, /writes succeed again since/);
  const old = judgeStore(store({ lastWriteError: { message: 'SQLITE_FULL', at: NOW - 10 * MIN, lost: 1 }, lastWriteOkAt: NOW - MIN }), NOW);
  assert.equal(old.healthy, true);
});

test('odoo: logged in with an empty outbox is healthy', () => {
  const p = judgeOdoo(odoo(), NOW);
  assert.equal(p.healthy, true);
  assert.match(p.summary, /https:\/\/odoo\.example\.com db prod: logged in as agent; outbox empty; delivering directly; job endpoint listening/);
});

test('odoo: refused login, a long outage, an old undelivered event, a full outbox, no job endpoint', () => {
  const refused = judgeOdoo(
    odoo({
      rpc: {
        transport: 'jsonrpc',
        loggedIn: false,
        authError: 'Odoo rejected login for user agent on db prod: check odoo.user/odoo.password',
        failingSince: NOW - 1000,
        lastError: null,
        lastOkAt: null,
      },
    }),
    NOW,
  );
  assert.equal(refused.healthy, false);
  assert.match(refused.problems[0]!, /Odoo refuses our login: .*check odoo\.user\/odoo\.password/);
  assert.match(refused.summary, /login REFUSED/);

  const blip = judgeOdoo(
    odoo({
      rpc: {
        transport: 'jsonrpc',
        loggedIn: true,
        authError: null,
        failingSince: NOW - 20_000,
        lastError: { message: 'cannot reach Odoo', at: NOW },
        lastOkAt: NOW - 21_000,
      },
    }),
    NOW,
  );
  assert.equal(blip.healthy, true, 'a 20 s blip is absorbed by retries');
  const down = judgeOdoo(
    odoo({
      outboxDepth: 12,
      rpc: {
        transport: 'jsonrpc',
        loggedIn: true,
        authError: null,
        failingSince: NOW - 3 * MIN,
        lastError: { message: 'cannot reach Odoo at https://odoo.example.com: ECONNREFUSED', at: NOW },
        lastOkAt: NOW - 3 * MIN,
      },
    }),
    NOW,
  );
  assert.equal(down.healthy, false);
  assert.match(down.problems[0]!, /fail since 3m ago \(cannot reach Odoo .*ECONNREFUSED\): events wait in the outbox \(12\)/);

  const old = judgeOdoo(odoo({ outboxDepth: 40, oldestUndeliveredAt: NOW - 6 * MIN, mode: 'outbox' }), NOW);
  assert.equal(old.healthy, false);
  assert.match(old.problems[0]!, /the oldest undelivered event was queued 6m ago \(40 in the outbox\)/);
  assert.equal(judgeOdoo(odoo({ outboxDepth: 40, oldestUndeliveredAt: NOW - 4 * MIN, mode: 'outbox' }), NOW).healthy, true, '4 minutes is within bounds');

  const full = judgeOdoo(odoo({ outboxDepth: 95_000, oldestUndeliveredAt: NOW - MIN }), NOW);
  assert.equal(full.healthy, false);
  assert.match(full.problems[0]!, /nearly full \(95000 of odoo\.outboxMaxRows 100000\)/);

  const noToken = judgeOdoo(odoo({ jobEndpoint: 'no-token' }), NOW);
  assert.equal(noToken.healthy, false);
  assert.match(noToken.problems[0]!, /odoo\.agentToken is empty/);
  assert.equal(judgeOdoo(null, NOW).enabled, false);
});

test('webhooks: delivering is healthy; failing past 5 minutes, or a full outbox, is not', () => {
  assert.equal(judgeWebhooks([hook()], NOW).healthy, true);
  const short = judgeWebhooks([hook({ failingSince: NOW - MIN, depth: 3 })], NOW);
  assert.equal(short.healthy, true);
  assert.match(short.summary, /crm FAILING since 1m ago \(3 waiting\)/);
  const long = judgeWebhooks([hook(), hook({ name: 'erp', failingSince: NOW - 7 * MIN, depth: 9, lastError: 'answered HTTP 503' })], NOW);
  assert.equal(long.healthy, false);
  assert.equal(long.problems.length, 1);
  assert.match(long.problems[0]!, /webhook erp fails since 7m ago \(answered HTTP 503\): 9 events wait/);
  const full = judgeWebhooks([hook({ depth: 9500 })], NOW);
  assert.equal(full.healthy, false);
  assert.equal(judgeWebhooks(null, NOW).enabled, false);
});

function inputs(over: Partial<HealthInputs> = {}): HealthInputs {
  return { ami: ami(), guard: guard(), firewall: { configured: 'auto', health: fw() }, store: store(), odoo: null, webhooks: null, fleet: null, ...over };
}

test('report: healthy only when every enabled part is; disabled parts do not count; the text has one line per enabled part', () => {
  const ok = judgeHealth(inputs(), NOW);
  assert.equal(ok.healthy, true);
  assert.deepEqual(
    ok.parts.map((p) => p.part),
    ['ami', 'guard', 'firewall', 'store', 'odoo', 'webhooks', 'fleet', 'feeds'],
  );
  assert.equal(ok.checkedAt, '2026-12-02T13:00:00.000Z');
  const text = formatHealth(ok);
  assert.equal(text.split('\n')[0], 'Health: OK (4 parts)');
  assert.equal(text.split('\n').length, 5, 'head + 4 enabled parts');
  assert.doesNotMatch(text, /odoo|webhooks/);

  const bad = judgeHealth(
    inputs({ ami: ami({ state: 'disconnected', security: 'unknown', lastLoginError: { kind: 'auth', message: 'refused', at: NOW } }) }),
    NOW,
  );
  assert.equal(bad.healthy, false);
  const lines = formatHealth(bad).split('\n');
  assert.equal(lines[0], 'Health: FAIL (ami, guard: 2 problems)');
  assert.match(lines[1]!, /^ {2}FAIL {2}ami {7}not connected/);
  assert.match(lines[2]!, /^ {18}- refused/);
  assert.ok(lines.some((l) => /^ {2}OK {4}firewall/.test(l)));
});

test('fleet: off is disabled; a stream failing over a minute, a push queue nearly full or failing sets are problems that say what to check', async () => {
  const { judgeFleet } = await import('../src/health/fleet.js');
  assert.equal(judgeFleet(null, NOW).enabled, false);
  const bouncer = (over: Record<string, unknown> = {}) => ({
    enabled: true as const,
    state: 'ok' as const,
    decisions: 12,
    lastPollAt: NOW,
    lastSuccessAt: NOW,
    failingSince: null,
    lastError: null,
    skipped: { type: 0, scope: 0, value: 0, allowed: 1, refused: 0, own: 2, cap: 0, malformed: 0 },
    set: { group: 'fleet', names: 'inet pbx_guardian_fleet', entries: 12, firewall: fw() },
    ...over,
  });
  const machine = (over: Record<string, unknown> = {}) => ({
    enabled: true,
    state: 'ok' as const,
    queued: 0,
    maxRows: 1000,
    lastPushAt: NOW,
    failingSince: null,
    lastError: null,
    pushed: 5,
    dropped: { expired: 0, refused: 0, cap: 0 },
    ...over,
  });
  const ok = judgeFleet({ url: 'http://lapi:8080', machine: machine(), bouncer: bouncer() }, NOW);
  assert.equal(ok.healthy, true);
  assert.match(ok.summary, /machine pushing \(5 pushed, 0 queued\); bouncer following \(12 decisions in inet pbx_guardian_fleet/);
  const short = judgeFleet({ url: 'http://lapi:8080', machine: null, bouncer: bouncer({ failingSince: NOW - 30_000, lastError: 'ECONNREFUSED' }) }, NOW);
  assert.equal(short.healthy, true, 'a LAPI restart of 30 s is not a problem');
  const long = judgeFleet({ url: 'http://lapi:8080', machine: null, bouncer: bouncer({ failingSince: NOW - 2 * MIN, lastError: 'ECONNREFUSED' }) }, NOW);
  assert.equal(long.healthy, false);
  assert.match(long.problems[0]!, /decisions stream fails since 2m ago \(ECONNREFUSED\): the fleet's 12 decisions stay enforced.*apiKey/);
  const full = judgeFleet({ url: 'http://lapi:8080', machine: machine({ queued: 950 }), bouncer: null }, NOW);
  assert.match(full.problems.join(' '), /push queue is nearly full \(950 of crowdsec.machine.maxRows 1000\)/);
  const pushing = judgeFleet(
    { url: 'http://lapi:8080', machine: machine({ failingSince: NOW - 6 * MIN, lastError: 'HTTP 401', queued: 3 }), bouncer: null },
    NOW,
  );
  assert.match(pushing.problems.join(' '), /pushing bans to the Local API fails since 6m ago \(HTTP 401\): 3 wait/);
  const sets = judgeFleet(
    {
      url: 'http://lapi:8080',
      machine: null,
      bouncer: bouncer({
        set: {
          group: 'fleet',
          names: 'inet pbx_guardian_fleet',
          entries: 1,
          firewall: fw({ state: 'failing', lastError: { message: 'nft: Operation not permitted', at: NOW } }),
        },
      }),
    },
    NOW,
  );
  assert.match(sets.problems.join(' '), /fleet's kernel sets \(inet pbx_guardian_fleet\) are failing: nft: Operation not permitted/);
});
