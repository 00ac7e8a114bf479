import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runDemo } from '../src/demo/index.js';
import { fixturePath } from './helpers/fixtures.js';

test('the demo runs the real pipeline: attackers are banned, the allow-listed office never is', async () => {
  const lines: string[] = [];
  const code = await runDemo({ durationSec: 5, metricsPort: 0, write: (l) => lines.push(l), fixturesDir: fixturePath('ami') });
  assert.equal(code, 0);
  const out = lines.join('\n');
  assert.match(out, /metrics: http:\/\/127\.0\.0\.1:\d+\/metrics/);
  assert.match(out, /BAN {4}203\.0\.113\.5 .*rule auth-failure: 5 × InvalidPassword within 10m/);
  assert.match(out, /BAN {4}2001:db8:bad:1::\/64 /, 'IPv6 attackers banned by their /64');
  assert.doesNotMatch(out, /BAN {4}192\.0\.2\./, 'neither the office nor the phones are banned');
  assert.match(out, /allow-listed 192\.0\.2\.10 never banned: true/);
  assert.match(out, /\d+s +\d+ ev\/s +banned \d+ +allow-listed passed [1-9]\d*/);
});
