import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { TalliedCounter } from '../src/metrics/index.js';

const line = (text: string, series: string) => text.split('\n').find((l) => l.startsWith(series + ' '));

test('TalliedCounter: hot-path increments reach every scrape, cumulatively, one and two labels', async () => {
  const registry = new Registry();
  const two = new TalliedCounter({ name: 't_two_total', help: 'h', labelNames: ['event', 'service'], registers: [registry] });
  const one = new TalliedCounter({ name: 't_one_total', help: 'h', labelNames: ['event'], registers: [registry] });
  for (let i = 0; i < 5; i++) two.inc('InvalidPassword', 'SIP');
  two.inc('InvalidPassword', 'AMI');
  one.inc('InvalidPassword', undefined, 3);
  let text = await registry.metrics();
  assert.equal(line(text, 't_two_total{event="InvalidPassword",service="SIP"}'), 't_two_total{event="InvalidPassword",service="SIP"} 5');
  assert.equal(line(text, 't_two_total{event="InvalidPassword",service="AMI"}'), 't_two_total{event="InvalidPassword",service="AMI"} 1');
  assert.equal(line(text, 't_one_total{event="InvalidPassword"}'), 't_one_total{event="InvalidPassword"} 3');
  two.inc('InvalidPassword', 'SIP');
  text = await registry.metrics();
  assert.equal(
    line(text, 't_two_total{event="InvalidPassword",service="SIP"}'),
    't_two_total{event="InvalidPassword",service="SIP"} 6',
    'only the new increment is added',
  );
  text = await registry.metrics();
  assert.equal(line(text, 't_one_total{event="InvalidPassword"}'), 't_one_total{event="InvalidPassword"} 3', 'a scrape adds nothing by itself');
});

test('TalliedCounter: past maxKeys distinct label values, increments go straight to prom-client', async () => {
  const registry = new Registry();
  const c = new TalliedCounter({ name: 't_bounded_total', help: 'h', labelNames: ['event'], registers: [registry] }, 2);
  for (const e of ['a', 'b', 'c', 'd', 'c']) c.inc(e);
  const text = await registry.metrics();
  for (const [e, n] of [
    ['a', 1],
    ['b', 1],
    ['c', 2],
    ['d', 1],
  ] as const)
    assert.equal(line(text, `t_bounded_total{event="${e}"}`), `t_bounded_total{event="${e}"} ${n}`);
});
