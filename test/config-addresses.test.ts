/**
 * Every address, host and listener in the config is checked at load time (ConfigError, exit 2),
 * so that no typo fails after the daemon has touched the kernel; and what only `run` needs (an AMI
 * secret) is checked when a daemon starts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assertRunnable, buildConfig, ConfigError } from '../src/config/index.js';

function errorsOf(doc: unknown, env: NodeJS.ProcessEnv = {}): string {
  try {
    buildConfig(doc, env);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `a ConfigError, got ${(err as Error).name}`);
    return (err as Error).message;
  }
  assert.fail('the config was accepted');
}

const rest = (extra: Record<string, unknown>) => ({ rest: { enabled: true, tokens: [{ token: 'x'.repeat(24), scopes: ['read'], name: 'crm' }], ...extra } });

test('guard.allow: every entry must be an address or CIDR; the error names the index and the entry', () => {
  const msg = errorsOf({ guard: { allow: ['192.0.2.10', '192.0.2.300', '198.51.100.0/24', '2001:db8::/200', 'office'] } });
  assert.match(msg, /guard\.allow\[1\]: "192\.0\.2\.300" is not an IPv4\/IPv6 address or CIDR/);
  assert.match(msg, /guard\.allow\[3\]: "2001:db8::\/200"/);
  assert.match(msg, /guard\.allow\[4\]: "office"/);
  assert.doesNotMatch(msg, /guard\.allow\[0\]|guard\.allow\[2\]/);
  assert.deepEqual(buildConfig({ guard: { allow: ['192.0.2.10', '198.51.100.0/24', '2001:db8::/48', 'fe80::1%eth0'] } }).guard.allow.length, 4);
});

test('listener hosts and the AMI host: an address literal must parse, a name must be a host name', () => {
  assert.match(errorsOf({ metrics: { host: '127.0.0.300' } }), /metrics\.host: "127\.0\.0\.300" is not an IPv4\/IPv6 address/);
  assert.match(errorsOf({ metrics: { host: 'local host' } }), /metrics\.host: "local host" is neither an IP address nor a host name/);
  assert.match(errorsOf({ metrics: { host: '10.0.0.0/8' } }), /metrics\.host: "10\.0\.0\.0\/8" is not an IPv4\/IPv6 address/);
  assert.match(errorsOf({ ami: { host: '999.1.1.1' } }), /ami\.host: "999\.1\.1\.1" is not an IPv4\/IPv6 address/);
  assert.match(errorsOf(rest({ host: '' })), /rest\.host: empty/);
  assert.match(
    errorsOf({ odoo: { enabled: true, url: 'https://odoo.example.com', db: 'd', fagi: { enabled: true, host: 'bad_host!', port: 4573 } } }),
    /odoo\.fagi\.host: "bad_host!"/,
  );
  // valid: names, IPv4, IPv6, the wildcard
  for (const host of ['localhost', 'pbx.example.com', '::1', '0.0.0.0', '::']) buildConfig({ metrics: { host } });
  // a disabled listener's host is not checked
  buildConfig({ metrics: { enabled: false, host: 'x y' } });
});

test('two enabled listeners on one port: refused at load time, not at bind time', () => {
  assert.match(errorsOf(rest({ port: 9470 })), /rest\.port: 9470 is also metrics\.port \(127\.0\.0\.1 and 127\.0\.0\.1 overlap\)/);
  assert.match(errorsOf({ ...rest({ port: 9470, host: '127.0.0.1' }), metrics: { host: '0.0.0.0' } }), /rest\.port: 9470 is also metrics\.port/);
  assert.match(
    errorsOf({ odoo: { enabled: true, url: 'https://odoo.example.com', db: 'd', listen: { port: 9470 } } }),
    /odoo\.listen\.port: 9470 is also metrics\.port \(127\.0\.0\.1 and 0\.0\.0\.0 overlap\)/,
  );
  assert.match(
    errorsOf({ odoo: { enabled: true, url: 'https://odoo.example.com', db: 'd', listen: { port: 70000 } } }),
    /odoo\.listen\.port: 70000 is not a TCP port/,
  );
  // distinct addresses of one family, other family with 0.0.0.0, and port 0: fine
  buildConfig(rest({ port: 9470, host: '127.0.0.2' }));
  buildConfig({ ...rest({ port: 9470, host: '::1' }), metrics: { host: '0.0.0.0' } });
  buildConfig({ ...rest({ port: 0 }), metrics: { port: 0 } });
});

test('stateDir and admin.socket must be absolute paths (the service runs from /)', () => {
  assert.match(errorsOf({ stateDir: 'state' }), /stateDir: "state" must be an absolute path/);
  assert.match(errorsOf({ admin: { socket: 'run/admin.sock' } }), /admin\.socket: "run\/admin\.sock" must be an absolute path/);
});

test('an empty AMI secret: the CLI can still read the config, a daemon refuses to start and says where to set it', () => {
  const cfg = buildConfig({ ami: { secret: '' } }); // status/ban/unban only need admin.socket
  assert.throws(
    () => assertRunnable(cfg),
    (err: Error) =>
      err instanceof ConfigError &&
      /ami\.secret: empty/.test(err.message) &&
      /ASTERISK_AMI_PASSWORD/.test(err.message) &&
      /ami\.enabled: false/.test(err.message),
  );
  assertRunnable(buildConfig({ ami: { secret: '' } }, { ASTERISK_AMI_PASSWORD: 'from-env' }));
  assertRunnable(buildConfig({ ami: { enabled: false } }));
});

test('sizes and intervals that would fail only at run time (some in the kernel) are refused at load time', () => {
  assert.match(errorsOf({ firewall: { ipsetMaxElem: 0 } }), /firewall\.ipsetMaxElem: 0 must be a whole number from 1 to/);
  assert.match(errorsOf({ firewall: { batchMaxSize: -1 } }), /firewall\.batchMaxSize: -1 must be a whole number/);
  assert.match(errorsOf({ ami: { maxFrameBytes: 10 } }), /ami\.maxFrameBytes: 10 must be a whole number from 1024/);
  assert.match(errorsOf({ ami: { connectTimeoutMs: 1.5 } }), /ami\.connectTimeoutMs: 1\.5 must be a whole number/);
  buildConfig({ firewall: { reconcileIntervalMs: 0, batchWindowMs: 0 }, ami: { pingIntervalMs: 0 } }); // 0 = off
});

test('odoo.url must parse (an address like 999.1.1.1 is not a URL host)', () => {
  assert.match(errorsOf({ odoo: { enabled: true, url: 'https://999.1.1.1:8069', db: 'd' } }), /odoo\.url: "https:\/\/999\.1\.1\.1:8069" is not a valid URL/);
});
