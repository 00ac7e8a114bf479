/**
 * Blindness detection: after every login the client verifies that its session receives the
 * security class (Asterisk sends the session its own SuccessfulAuth when it may read security),
 * reports it in health(), says what to add to manager.conf, and picks up a `manager reload` that
 * grants it without a restart. The AMI peer is the simulator honouring manager.conf `read`; the
 * attack is the real Asterisk 22 capture pjsip-udp-wrong-password.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { AmiClient, AmiFrame, type AmiClientOptions, type AmiMessage } from '../src/ami/index.js';
import { SecurityWatch } from '../src/ami/security-check.js';
import { AmiSimulator, type SimulatedUser } from '../src/demo/ami-simulator.js';
import { buildConfig, ConfigError } from '../src/config/index.js';
import { LogCapture, startTestDaemon, waitFor } from './helpers/daemon.js';
import { fixturePath, readFixture } from './helpers/fixtures.js';

const SECRET = 'guardian-secret';

/** The capture's event frames (its greeting line and the recorder's login answer left out). */
function attack(): string {
  const text = readFixture('ami-asterisk22-pjsip/pjsip-udp-wrong-password.raw').toString('latin1');
  return text
    .split('\r\n\r\n')
    .filter((f) => f.startsWith('Event:') || f.includes('\r\nEvent:'))
    .map((f) => f.replace(/^Asterisk Call Manager\/[^\r\n]*\r\n/, '') + '\r\n\r\n')
    .join('');
}

async function setup(t: TestContext, users: Record<string, SimulatedUser>, extra: Partial<AmiClientOptions> = {}) {
  const sim = new AmiSimulator({ fixturesDir: fixturePath('ami'), users, loginFailDelayMs: 20 });
  await sim.listen();
  const log = new LogCapture('debug');
  const c = new AmiClient({
    host: '127.0.0.1',
    port: sim.port,
    username: 'guardian',
    secret: SECRET,
    events: 'on',
    reconnectInitialMs: 20,
    reconnectMaxMs: 200,
    securityCheckTimeoutMs: 300,
    securityRecheckIntervalMs: 300,
    logger: log.logger,
    ...extra,
  });
  const events: AmiMessage[] = [];
  c.on('event', (m) => events.push(m));
  t.after(async () => {
    await c.stop();
    await sim.close();
  });
  return { sim, c, log, events };
}

const names = (events: AmiMessage[]) => events.map((e) => e.get('Event'));

test('a user without read=security: security missing, advice names the user and read, the attack is not seen', async (t) => {
  const { sim, c, log, events } = await setup(t, { guardian: { secret: SECRET, read: 'system,call' } }, { securityRecheckIntervalMs: 0 });
  c.start();
  await waitFor('connected', () => c.state === 'connected');
  assert.equal(c.health().security, 'checking');
  await waitFor('security missing', () => c.health().security === 'missing');
  const h = c.health();
  assert.equal(h.state, 'connected');
  assert.equal(h.username, 'guardian');
  assert.match(h.advice ?? '', /section \[guardian\], add security to read/);
  assert.match(h.advice ?? '', /read = system,call,security/);
  assert.match(h.advice ?? '', /manager reload/);
  assert.equal(h.lastSecurityEventAt, null);
  await waitFor('the error line', () => log.errors().length > 0);
  const errors = log.errors().map((l) => String(l.msg));
  assert.equal(errors.length, 1, 'one error line');
  assert.match(errors[0]!, /^AMI user "guardian" at 127\.0\.0\.1:\d+ does not receive security events/);
  assert.match(errors[0]!, /The guard is blind until then/);
  // the real Asterisk 22 attack: only its FullyBooted (class system) reaches the session
  sim.broadcast(attack());
  await waitFor('the replay delivered', () => names(events).filter((n) => n === 'FullyBooted').length === 2);
  assert.deepEqual(
    names(events).filter((n) => n !== 'FullyBooted'),
    [],
    'no ChallengeSent, ChallengeResponseFailed or SuccessfulAuth',
  );
  assert.deepEqual(c.health().classesSeen, ['system']);
  assert.equal(c.health().security, 'missing');
});

test('manager reload granting security: verified without restarting the client, the attack now arrives', async (t) => {
  const { sim, c, log, events } = await setup(t, { guardian: { secret: SECRET, read: 'system,call' } });
  c.start();
  await waitFor('security missing', () => c.health().security === 'missing');
  const loginsBefore = sim.logins;
  // a probe re-checks while missing; it logs in beside the main session and finds nothing either
  await waitFor('a probe login', () => sim.logins > loginsBefore);
  assert.equal(c.health().security, 'missing');
  assert.equal(c.state, 'connected', 'a probe is not the main connection');
  sim.managerReload({ guardian: { secret: SECRET, read: 'system,call,security' } });
  await waitFor('security verified', () => c.health().security === 'verified', 5000);
  const h = c.health();
  assert.equal(h.state, 'connected');
  assert.equal(h.advice, null);
  assert.ok(h.lastSecurityEventAt !== null);
  assert.deepEqual(h.classesSeen, ['security', 'system']);
  assert.ok(log.messages().some((m) => /may now read security events .*logging the main session in again/.test(m)));
  assert.ok(log.messages().some((m) => /now receives security events: the guard sees attacks again/.test(m)));
  assert.ok(!log.lines.some((l) => /connection to .* lost/.test(String(l.msg))), 'a deliberate re-login is not reported as a lost connection');
  const before = events.length;
  sim.broadcast(attack());
  await waitFor('the attack delivered', () => events.slice(before).filter((e) => e.get('Event') === 'ChallengeResponseFailed').length === 5);
});

test('write = command: `manager show user` gives the read perm, and the advice keeps it', async (t) => {
  const { c, log } = await setup(t, { guardian: { secret: SECRET, read: 'system,call,cdr', write: 'call,command' } }, { securityRecheckIntervalMs: 0 });
  c.start();
  await waitFor('the error line', () => log.errors().length > 0);
  assert.match(c.health().advice ?? '', /section \[guardian\], add security to read, keeping what it has \(read = system,call,cdr,security\)/);
  assert.match(String(log.errors()[0]!.msg), /the user's read perm is "system,call,cdr": it lacks the security class/);
  assert.equal(log.errors().length, 1);
});

test('no write = command: no Command is tried (ListCommands says so), the advice stays general', async (t) => {
  const { sim, c, log } = await setup(t, { guardian: { secret: SECRET, read: 'system', write: 'call' } }, { securityRecheckIntervalMs: 0 });
  c.start();
  await waitFor('the error line', () => log.errors().length > 0);
  assert.match(c.health().advice ?? '', /\(e\.g\. read = system,call,security\)/);
  assert.ok(sim.requests.some((r) => r.action === 'ListCommands'));
  assert.ok(!sim.requests.some((r) => r.action === 'Command'), 'a refused Command would be a RequestNotAllowed security event');
});

test('SecurityWatch: a read perm that has security means an eventfilter drops the events', async () => {
  const log = new LogCapture();
  const w = new SecurityWatch({
    host: 'pbx',
    port: 5038,
    username: 'guardian',
    secret: 'x',
    events: 'on',
    checkTimeoutMs: 50,
    recheckIntervalMs: 0,
    loginTimeoutMs: 100,
    log: log.logger,
    relogin: () => {},
    action: async (f) =>
      f.Action === 'ListCommands'
        ? { response: new AmiFrame('Response: Success\r\nCommand: Execute Asterisk CLI Command. (Priv: command,all)'), events: [] }
        : { response: new AmiFrame('Response: Success'), events: [], output: ['', '         read perm: system,call,security', '        write perm: command'] },
  });
  w.onLogin();
  await waitFor('the error line', () => log.errors().length > 0);
  assert.equal(w.security, 'missing');
  assert.match(w.advice ?? '', /let SuccessfulAuth and the other security events through its eventfilter lines/);
  w.onEventFrame('Event: FullyBooted\r\nPrivilege: system,all', Date.now());
  assert.equal(w.security, 'missing');
  w.onEventFrame('Event: SuccessfulAuth\r\nPrivilege: security,all\r\nService: AMI', Date.now());
  assert.equal(w.security, 'verified');
  assert.equal(w.advice, null);
  assert.ok(log.messages().some((m) => /now receives security events/.test(m)));
  w.onLogout();
});

test('a user with read=security: verified by its own SuccessfulAuth, no probe', async (t) => {
  const { sim, c, events } = await setup(t, { guardian: { secret: SECRET, read: 'system,call,security' } });
  c.start();
  await waitFor('security verified', () => c.health().security === 'verified');
  const own = events.find((e) => e.get('Event') === 'SuccessfulAuth')!;
  assert.equal(own.get('Service'), 'AMI');
  assert.equal(own.get('AccountID'), 'guardian');
  assert.match(own.get('RemoteAddress') ?? '', /^IPV4\/TCP\/127\.0\.0\.1\/\d+$/);
  await new Promise((r) => setTimeout(r, 700));
  assert.equal(sim.logins, 1, 'no probe, no re-login');
  assert.equal(c.health().security, 'verified');
});

test('a login Events mask without security: missing, and the advice is about ami.events, not manager.conf', async (t) => {
  const { sim, c } = await setup(t, { guardian: { secret: SECRET, read: 'all' } }, { events: 'system,call' });
  c.start();
  await waitFor('connected', () => c.state === 'connected');
  assert.equal(c.health().security, 'missing', 'known at once');
  assert.match(c.health().advice ?? '', /login Events mask is "system,call" \(ami\.events/);
  await new Promise((r) => setTimeout(r, 700));
  assert.equal(sim.logins, 1, 'no probe: a manager reload cannot fix our own mask');
});

test('allowmultiplelogin = no: the probe is refused, the main session logs in again instead', async (t) => {
  const { sim, c, log } = await setup(t, { guardian: { secret: SECRET, read: 'system', allowMultipleLogin: false } });
  c.start();
  await waitFor('security missing', () => c.health().security === 'missing');
  await waitFor('the probe refused', () => log.messages().some((m) => /allowmultiplelogin = no/.test(m)), 5000);
  sim.managerReload({ guardian: { secret: SECRET, read: 'system,security', allowMultipleLogin: false } });
  await waitFor('security verified', () => c.health().security === 'verified', 5000);
  assert.equal(c.state, 'connected');
  assert.equal(sim.loggedIn, 1);
});

test('wrong secret: not connected, lastLoginError kind auth, advice, security unknown', async (t) => {
  const { c } = await setup(t, { guardian: { secret: 'another-secret', read: 'all' } });
  const t0 = Date.now();
  c.start();
  await waitFor('a login error', () => c.health().lastLoginError !== null);
  const h = c.health();
  assert.notEqual(h.state, 'connected');
  assert.equal(h.security, 'unknown');
  assert.equal(h.lastLoginError!.kind, 'auth');
  assert.ok(h.lastLoginError!.at >= t0);
  assert.match(h.lastLoginError!.message, /as "guardian" was refused/);
  assert.match(h.advice ?? '', /wrong username or secret/);
  assert.ok(!JSON.stringify(h).includes(SECRET), 'the secret is never shown');
});

test('unreachable AMI host: lastLoginError kind unreachable', async (t) => {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  const c = new AmiClient({ host: '127.0.0.1', port, username: 'guardian', secret: SECRET, reconnectInitialMs: 20, reconnectMaxMs: 100 });
  t.after(() => c.stop());
  c.start();
  await waitFor('a login error', () => c.health().lastLoginError !== null);
  const h = c.health();
  assert.equal(h.lastLoginError!.kind, 'unreachable');
  assert.match(h.advice ?? '', /unreachable/);
  assert.notEqual(h.state, 'connected');
  assert.equal(h.port, port);
});

test('daemon: a blind AMI user bans nothing; after manager reload the same attack is banned, no restart', async (t) => {
  const td = await startTestDaemon({ amiRead: 'system,call', config: { ami: { securityCheckTimeout: '1s', securityRecheckInterval: '2s' } } });
  t.after(() => td.close());
  const ami = td.daemon.ami!;
  await waitFor('security missing', () => ami.health().security === 'missing', 5000);
  await waitFor('the error line', () => td.log.errors().some((l) => /AMI user "guardian" .*does not receive security events/.test(String(l.msg))));
  // the config reached the client (main.ts): its own timeout and interval are quoted
  assert.ok(td.log.errors().some((l) => /within 1000 ms of the login/.test(String(l.msg))));
  assert.match(ami.health().advice ?? '', /re-checks every 2s/);
  td.sim!.broadcast(attack());
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(td.daemon.guardian.status().totalFailed, 0, 'the guard saw no failure');
  assert.deepEqual(await td.backend.list(), [], 'nothing banned');
  td.sim!.managerReload({ guardian: { secret: 's3cret', read: 'system,call,security' } });
  await waitFor('security verified', () => ami.health().security === 'verified', 10_000);
  assert.equal(td.daemon.ami, ami, 'the same client');
  td.sim!.broadcast(attack());
  await waitFor('192.0.2.11 banned', async () => (await td.backend.list()).some((e) => e.target === '192.0.2.11'));
});

test('config: ami.securityCheckTimeout and ami.securityRecheckInterval are validated durations', () => {
  const d = buildConfig({});
  assert.equal(d.ami.securityCheckTimeout, '5s');
  assert.equal(d.ami.securityRecheckInterval, '10s');
  assert.equal(buildConfig({ ami: { securityRecheckInterval: '0' } }).ami.securityRecheckInterval, '0');
  for (const [key, value, re] of [
    ['securityCheckTimeout', 'soon', /ami\.securityCheckTimeout: "soon" is not a duration/],
    ['securityCheckTimeout', '100ms', /ami\.securityCheckTimeout: "100ms" must be from 500ms to 60s/],
    ['securityRecheckInterval', '1s', /ami\.securityRecheckInterval: "1s" must be 0 \(never\) or from 2s to 1h/],
  ] as const) {
    assert.throws(
      () => buildConfig({ ami: { [key]: value } }),
      (e: Error) => e instanceof ConfigError && re.test(e.message),
    );
  }
});

test('a probe that AMI refuses (secret changed by the reload) backs off and never touches the main connection', async (t) => {
  const { sim, c, log } = await setup(t, { guardian: { secret: SECRET, read: 'system' } }, { securityRecheckIntervalMs: 200 });
  c.start();
  await waitFor('security missing', () => c.health().security === 'missing');
  sim.managerReload({ guardian: { secret: 'rotated', read: 'system,security' } });
  await waitFor('two refused probes', () => log.lines.filter((l) => /security probe failed; backing off/.test(String(l.msg))).length >= 2, 5000);
  const refused = sim.requests.filter((r) => r.action === 'Login').length;
  const h = c.health();
  assert.equal(h.state, 'connected', 'the main session, logged in before the reload, stays');
  assert.equal(h.security, 'missing');
  assert.equal(h.lastLoginError, null, 'a probe is not the main connection');
  // backoff: 200, 400, 800 ms ... so within the next 500 ms at most one more probe
  await new Promise((r) => setTimeout(r, 500));
  assert.ok(sim.requests.filter((r) => r.action === 'Login').length <= refused + 1);
});
