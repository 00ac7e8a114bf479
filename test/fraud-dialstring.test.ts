/**
 * The dialled number from DialBegin's DialString: every dial string of the real Asterisk 22
 * captures, SIP and tel URI forms (endpoint/sip:..., sip:..., tel:...), and what cannot be read:
 * the call falls back to the caller's Exten, or (no Exten, a configured trunk) is followed as an
 * international call of unknown number, or is not followed; each fallback is counted in
 * pbx_guardian_fraud_dialstrings_unparsed_total{fallback}.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { parseFrame } from '../src/ami/index.js';
import { MemoryBlockStore, parseDialString, type TrackedCall } from '../src/fraud/index.js';
import { bindFraudMetrics } from '../src/metrics/bind.js';
import { createMetrics } from '../src/metrics/index.js';
import { fixturePath } from './helpers/fixtures.js';
import { CALLS, fixtureValues, fraudConfig, rig, settle, type Rig } from './helpers/fraud.js';

test('every DialString of the real captures gives its number and endpoint', () => {
  const files = readdirSync(fixturePath(CALLS)).filter((f) => f.startsWith('call-') && f.endsWith('.raw'));
  let n = 0;
  for (const file of files) {
    const strings = fixtureValues(file, 'DialBegin', 'DialString');
    const extens = fixtureValues(file, 'DialBegin', 'Exten');
    strings.forEach((ds, i) => {
      const p = parseDialString(ds);
      assert.ok(p, `${file}: ${ds}`);
      const [num, endpoint] = ds.split('@');
      assert.deepEqual(p, { number: num, endpoint: endpoint ?? null }, `${file}: ${ds}`);
      // the captures dial ${EXTEN}: the fallback would have given the same number
      if (ds.includes('@')) assert.equal(p.number, extens[i], `${file}: ${ds}`);
      n++;
    });
  }
  assert.ok(n >= 20, `${n} dial strings read`);
});

test('SIP and tel URI forms give the number; what is no number gives null', () => {
  const ok: Array<[string, string, string | null]> = [
    ['sip:+442079460000@sip.example.net', '+442079460000', null],
    ['sip:+442079460000@198.51.100.9:5060;transport=udp', '+442079460000', null],
    ['sips:00442079460000@carrier.example', '00442079460000', null],
    ['trunk/sip:00442079460000@x.example', '00442079460000', 'trunk'],
    ['PJSIP/trunk/sip:00442079460000@x.example', '00442079460000', 'trunk'],
    ['trunk/sip:%2B442079460000@x.example;user=phone', '+442079460000', 'trunk'],
    ['tel:+44-20-7946-0000', '+442079460000', null],
    ['tel:+44(20)7946.0000;phone-context=+44', '+442079460000', null],
    ['PJSIP/0088123@trunk', '0088123', 'trunk'],
    ['0088123@trunk', '0088123', 'trunk'],
    ['101', '101', null],
    ['*97', '*97', null],
  ];
  for (const [ds, number, endpoint] of ok) assert.deepEqual(parseDialString(ds), { number, endpoint }, ds);
  const bad = [
    '',
    'sip:alice@example.com',
    'trunk/sip:@x',
    'trunk/0044123', // PJSIP needs a URI after the endpoint
    '0044-123@trunk', // separators only inside a URI
    '0044123;x=1',
    '/^PJSIP\\/.*/@trunk',
    'sip:sip:+44123@x',
    'sip:+44' + '1'.repeat(40) + '@x',
    'trunk/sip:+44123\r\nAction: Originate@x',
    'x'.repeat(301),
    'a/b/sip:+44123@x',
  ];
  for (const ds of bad) assert.equal(parseDialString(ds), null, JSON.stringify(ds));
});

function dialBegin(r: Rig, channel: string, dialString: string, exten: string | null, dest = 'PJSIP/trunk-00000099'): void {
  const f = ['Event: DialBegin', 'Privilege: call,all', `Channel: ${channel}`, `DestChannel: ${dest}`, `DialString: ${dialString}`];
  if (exten !== null) f.push(`Exten: ${exten}`);
  r.engine.handleAmiEvent(parseFrame(f.join('\r\n')));
}

test('through the engine: URI calls are followed with their number; unreadable ones fall back, each counted by fallback', async () => {
  const r = rig(new MemoryBlockStore(), fraudConfig({ trunks: ['trunk'] }));
  const metrics = createMetrics();
  bindFraudMetrics(metrics, r.engine);
  const watched: TrackedCall[] = [];
  r.engine.on({ watched: (c) => watched.push(c) });
  dialBegin(r, 'PJSIP/101-00000001', 'trunk/sip:+88213541234@carrier.example', '+88213541234');
  dialBegin(r, 'PJSIP/101-00000002', 'tel:+49-30-123486', null);
  dialBegin(r, 'PJSIP/101-00000003', 'trunk/sip:sales@carrier.example', '0088216123456'); // fallback exten
  dialBegin(r, 'PJSIP/101-00000004', 'trunk/sip:sales@carrier.example', null); // unknown via the trunk
  dialBegin(r, 'PJSIP/101-00000005', 'weird', 's', 'PJSIP/102-00000098'); // to a phone, nothing readable: none
  await settle();
  assert.deepEqual(
    watched.map((c) => [c.channel, c.number, c.trunk, c.destination.kind, c.outbound]),
    [
      ['PJSIP/101-00000001', '+88213541234', 'trunk', 'international', true],
      ['PJSIP/101-00000002', '+4930123486', 'trunk', 'national', true],
      ['PJSIP/101-00000003', '0088216123456', 'trunk', 'international', true],
      ['PJSIP/101-00000004', '?', 'trunk', 'international', true],
    ],
  );
  assert.ok(watched[0]!.destination.classes.includes('satellite'), '+882 13 is a satellite range in the shipped classes');
  const text = await metrics.registry.getSingleMetricAsString('pbx_guardian_fraud_dialstrings_unparsed_total');
  assert.match(text, /\{fallback="exten"\} 1$/m);
  assert.match(text, /\{fallback="unknown"\} 1$/m);
  assert.match(text, /\{fallback="none"\} 1$/m);
  assert.equal(r.engine.tracker.size, 4);
});
