import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AppError } from '../src/common/errors.js';
import { loadRulesDir } from '../src/guard/rules.js';
import {
  FraudRulesError,
  loadDestinationPlan,
  loadRateTable,
  parseDestinationPlan,
  parseRateTable,
  validateDialingPlan,
  type DialingPlan,
  type Destination,
} from '../src/fraud/destinations.js';
import { readFixtureText, repoPath } from './helpers/fixtures.js';

const SHIPPED = repoPath('rules', 'fraud-destinations.yaml');
const RATES = repoPath('rules', 'fraud-rates.yaml');
const plan = loadDestinationPlan(SHIPPED);

/** The fixtures' PBX: a German office (its trunk calls +49 30 numbers as 004930...). */
const DE: DialingPlan = { country: '49', nationalPrefix: '0', internationalPrefixes: ['00', '+'], internalMaxDigits: 6 };
const NANP: DialingPlan = { country: '1', nationalPrefix: '1', internationalPrefixes: ['011', '+'], internalMaxDigits: 4 };
const UK: DialingPlan = { country: '44', nationalPrefix: '0', internationalPrefixes: ['00', '+'], internalMaxDigits: 4 };
const IT: DialingPlan = { country: '39', nationalPrefix: '', internationalPrefixes: ['00', '+'], internalMaxDigits: 3 };

/** The dialled number of every call in a transcript: the Exten of each caller channel's Newchannel (a channel Dial() creates has Exten s). */
function dialledIn(fixture: string): string[] {
  const out: string[] = [];
  for (const frame of readFixtureText(`ami-asterisk22-calls/${fixture}`).split('\r\n\r\n')) {
    const h = new Map(frame.split('\r\n').map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 2)] as const));
    if (h.get('Event') !== 'Newchannel' || h.get('Exten') === 's') continue;
    out.push(h.get('Exten')!);
  }
  return out;
}

const brief = (d: Destination) => ({ kind: d.kind, e164: d.e164, classes: d.classes, prefix: d.prefix });

test('the fixtures burst: ten numbers, each international or premium, classified as the README says', () => {
  const dialled = dialledIn('call-pjsip-burst-international.raw');
  assert.deepEqual(dialled, [
    '00881612345001',
    '00881612345002',
    '0088213540003',
    '+88213540004',
    '+5352540005',
    '0025261234006',
    '00992370000007',
    '09001234560008',
    '+37259120009',
    '0023767100010',
  ]);
  const got = dialled.map((n) => brief(plan.classify(n, DE)));
  const intl = (e164: string, cls: string | null, prefix: string | null) => ({
    kind: 'international',
    e164,
    classes: cls ? [cls, 'international'] : ['international'],
    prefix,
  });
  assert.deepEqual(got, [
    intl('+881612345001', 'satellite', '+881'), // Iridium (+8816)
    intl('+881612345002', 'satellite', '+881'),
    intl('+88213540003', 'satellite', '+882'), // International Networks
    intl('+88213540004', 'satellite', '+882'),
    intl('+5352540005', 'high-risk', '+53'), // Cuba
    intl('+25261234006', 'high-risk', '+252'), // Somalia
    intl('+992370000007', null, null), // Tajikistan: international only
    { kind: 'national', e164: '+499001234560008', classes: ['premium'], prefix: '+49900' }, // the README's premium pattern _0900X.
    intl('+37259120009', null, null), // Estonia
    intl('+23767100010', null, null), // Cameroon
  ]);
  // the attack: every one of the ten calls is international or premium
  assert.ok(got.every((d) => d.classes.includes('international') || d.classes.includes('premium')));
});

test('the fixtures ordinary calls: internal extensions, national trunk calls, satellite numbers', () => {
  const cases: Array<[string, Partial<Destination>]> = [
    ['call-pjsip-internal-extension.raw', { kind: 'internal', e164: null, classes: [] }], // 101
    ['call-pjsip-internal-echo.raw', { kind: 'internal', e164: null, classes: [] }], // 600
    ['call-pjsip-trunk-busy.raw', { kind: 'national', e164: '+4930123486', classes: [] }],
    ['call-pjsip-trunk-no-answer.raw', { kind: 'national', e164: '+4930123180', classes: [] }],
    ['call-pjsip-international-trunk.raw', { kind: 'international', e164: '+881234567', classes: ['satellite', 'international'] }],
    ['call-pjsip-international-trunk-remote-hangup.raw', { kind: 'international', e164: '+88213541234', classes: ['satellite', 'international'] }],
    ['call-pjsip-new-network-international.raw', { kind: 'international', e164: '+88216123456', classes: ['satellite', 'international'] }], // Thuraya
  ];
  for (const [fixture, want] of cases) {
    const dialled = dialledIn(fixture);
    assert.equal(dialled.length, 1, fixture);
    const d = plan.classify(dialled[0]!, DE);
    assert.deepEqual({ kind: d.kind, e164: d.e164, classes: d.classes }, want, `${fixture}: ${dialled[0]}`);
  }
});

test('dialing plans: 00 and + (national prefix 0), 011 and + (national prefix 1), no national prefix', () => {
  const c = (n: string, p: DialingPlan) => brief(plan.classify(n, p));
  // NANP: 011 international, 1 national prefix, 10-digit dialling without it
  assert.deepEqual(c('011881612345001', NANP), { kind: 'international', e164: '+881612345001', classes: ['satellite', 'international'], prefix: '+881' });
  assert.deepEqual(c('19005551234', NANP), { kind: 'national', e164: '+19005551234', classes: ['premium'], prefix: '+1900' });
  assert.deepEqual(c('9005551234', NANP), { kind: 'national', e164: '+19005551234', classes: ['premium'], prefix: '+1900' });
  assert.deepEqual(c('12125551234', NANP), { kind: 'national', e164: '+12125551234', classes: [], prefix: null });
  // Jamaica shares country code 1: national by the plan, high-risk by its prefix
  assert.deepEqual(c('18765551234', NANP), { kind: 'national', e164: '+18765551234', classes: ['high-risk'], prefix: '+1876' });
  assert.deepEqual(c('01149301234567', NANP).kind, 'international');
  assert.deepEqual(c('+4930123456', NANP), { kind: 'international', e164: '+4930123456', classes: ['international'], prefix: null });
  assert.equal(c('1234', NANP).kind, 'internal');
  // with 011 as the international prefix, 00 is not one: 0088... is a national number there
  assert.equal(c('0088161234567', NANP).kind, 'national');
  // UK: 09 premium from inside, 00 and + from outside
  assert.deepEqual(c('09098790000', UK), { kind: 'national', e164: '+449098790000', classes: ['premium'], prefix: '+449' });
  assert.deepEqual(c('00449098790000', DE), { kind: 'international', e164: '+449098790000', classes: ['premium', 'international'], prefix: '+449' });
  assert.deepEqual(c('+449098790000', DE).classes, ['premium', 'international']);
  assert.deepEqual(c('02079460000', UK), { kind: 'national', e164: '+442079460000', classes: [], prefix: null });
  // a call home dialled in international form is national
  assert.deepEqual(c('004930123180', DE), { kind: 'national', e164: '+4930123180', classes: [], prefix: null });
  assert.deepEqual(c('+4930123180', DE).kind, 'national');
  // no national prefix (Italy keeps the 0 inside the number)
  assert.deepEqual(c('0612345678', IT), { kind: 'national', e164: '+390612345678', classes: [], prefix: null });
  assert.deepEqual(c('0053123456', IT).classes, ['high-risk', 'international']);
});

test('internal extensions are told by length; "+" numbers never are', () => {
  for (const n of ['1', '101', '600', '555', '123456', '*97', '#', 's', 'alice', '']) assert.equal(plan.classify(n, DE).kind, 'internal', n);
  assert.equal(plan.classify('1234567', DE).kind, 'national'); // one digit more than internalMaxDigits
  assert.equal(plan.classify('+53', DE).kind, 'international');
  assert.deepEqual(plan.classify('+53', DE).classes, ['high-risk', 'international']);
  assert.equal(plan.classify('12345', { ...DE, internalMaxDigits: 4 }).kind, 'national');
  // every result is the caller's own object
  plan.classify('101', DE).classes.push('tampered');
  assert.deepEqual(plan.classify('101', DE).classes, []);
});

test('garbage dialled strings: separators and control characters cannot hide a number, nothing throws', () => {
  const sat = [
    '00 881-612 (345) 001',
    '0088\r\n1612345001',
    '  +881612345001',
    '(+881) 612345001',
    'tel:+881612345001',
    '00881612345*001',
    'sip:00881612345001@203.0.113.50',
  ];
  for (const n of sat) {
    const d = plan.classify(n, DE);
    assert.equal(d.kind, 'international', JSON.stringify(n));
    assert.deepEqual(d.classes, ['satellite', 'international'], JSON.stringify(n));
  }
  // a bare prefix is not an extension
  assert.deepEqual(brief(plan.classify('+', DE)), { kind: 'international', e164: null, classes: ['international'], prefix: null });
  assert.deepEqual(brief(plan.classify('00', { ...DE, internalMaxDigits: 1 })), {
    kind: 'international',
    e164: null,
    classes: ['international'],
    prefix: null,
  });
  assert.deepEqual(brief(plan.classify('0049', { ...DE, internalMaxDigits: 1 })), { kind: 'national', e164: null, classes: [], prefix: null });
  // a feature-code prefix in front of a long number does not make it internal
  assert.notEqual(plan.classify('*6700881612345', DE).kind, 'internal');
  // huge and non-string input: bounded output
  const huge = plan.classify('0'.repeat(100_000) + '53', DE);
  assert.ok(huge.e164 === null || huge.e164.length <= 33);
  assert.equal(plan.classify(null as unknown as string, DE).kind, 'internal');
  assert.equal(plan.classify(12345678 as unknown as string, DE).kind, 'internal');
  // random strings over every character class
  const alphabet = '0123456789+*#-. ()\r\n\t\0abcXYZ@:;/\\${}|ü';
  let seed = 7;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 0.999999;
  const names = new Set(plan.classNames());
  for (let i = 0; i < 3000; i++) {
    let s = '';
    const len = Math.floor(rnd() * 40);
    for (let j = 0; j < len; j++) s += alphabet[Math.floor(rnd() * alphabet.length)];
    const d = plan.classify(s, DE);
    assert.ok(d.e164 === null || /^\+[0-9]{1,32}$/.test(d.e164), JSON.stringify(s));
    assert.ok(
      d.classes.every((c) => names.has(c)),
      JSON.stringify(s),
    );
    assert.equal(d.classes.includes('international'), d.kind === 'international', JSON.stringify(s));
  }
});

test('the longest class prefix wins', () => {
  const p = parseDestinationPlan(
    `classes:
  satellite: { description: s, sources: [ITU], prefixes: ["+881"] }
  premium: { description: p, sources: [test], prefixes: ["+8816", "+881612345"] }
`,
    'test.yaml',
  );
  assert.deepEqual(brief(p.classify('+881612345001', DE)), {
    kind: 'international',
    e164: '+881612345001',
    classes: ['premium', 'international'],
    prefix: '+881612345',
  });
  assert.equal(p.classify('+88161', DE).prefix, '+8816');
  assert.deepEqual(p.classify('+8819123', DE).classes, ['satellite', 'international']);
  assert.deepEqual(p.classNames(), ['satellite', 'premium', 'international']);
});

test('an invalid dialing plan is refused with the key named', () => {
  assert.deepEqual(validateDialingPlan(DE), []);
  assert.deepEqual(validateDialingPlan(NANP), []);
  const bad = validateDialingPlan({ country: '+49', nationalPrefix: 'O', internationalPrefixes: ['00', 'x'], internalMaxDigits: 0 });
  assert.equal(bad.length, 4);
  assert.match(bad.join('\n'), /dialingPlan\.country/);
  assert.match(bad.join('\n'), /internationalPrefixes\[1\]/);
  assert.throws(
    () => plan.classify('0088', { ...DE, country: '4x' }),
    (e: unknown) => e instanceof AppError && e.code === 'CONFIG_INVALID',
  );
});

test('with the country not configured (the default), international prefixes still classify and national numbers are national', () => {
  const unknown: DialingPlan = { ...DE, country: '' };
  assert.deepEqual(validateDialingPlan(unknown), []);
  // the fixtures' burst as dialled: satellite, high-risk, international by their international prefix
  assert.deepEqual(plan.classify('00881612345001', unknown).classes, ['satellite', 'international']);
  assert.equal(plan.classify('+5352540005', unknown).kind, 'international');
  assert.ok(plan.classify('+5352540005', unknown).classes.includes('high-risk'));
  // a national number: national, its ranges not known without the country
  assert.deepEqual(plan.classify('0694606329', unknown), { kind: 'national', e164: null, classes: [], prefix: null });
  assert.deepEqual(plan.classify('09001234560008', unknown), { kind: 'national', e164: null, classes: [], prefix: null });
  assert.equal(plan.classify('101', unknown).kind, 'internal');
});

function refused(text: string, where: RegExp): void {
  assert.throws(
    () => parseDestinationPlan(text, 'rules/x.yaml'),
    (e: unknown) => {
      assert.ok(e instanceof FraudRulesError, String(e));
      assert.equal(e.code, 'RULES_INVALID');
      assert.match(e.message, /^rules\/x\.yaml/);
      assert.match(e.message, where);
      return true;
    },
  );
}

const cls = (name: string, prefixes: string) => `  ${name}: { description: d, sources: [ITU-T E.164], prefixes: [${prefixes}] }\n`;

test('the destination loader is strict: unknown keys, bad prefixes, duplicates, missing sources', () => {
  refused('classes:\n' + cls('premium', '"+49900"') + 'extra: 1\n', /x\.yaml\.extra: unknown key/);
  refused('classes:\n  premium: { description: d, sources: [a], prefixes: ["+49900"], prefix: ["+1"] }\n', /classes\.premium\.prefix: unknown key/);
  refused('classes:\n' + cls('premium', '"+49900", "+49 137"'), /classes\.premium\.prefixes\[1\]: "\+49 137" is not an E\.164 prefix/);
  refused('classes:\n' + cls('premium', '"49900"'), /prefixes\[0\]: "49900" is not an E\.164 prefix/);
  refused('classes:\n' + cls('premium', '"+1234567890123456"'), /prefixes\[0\]/);
  refused('classes:\n' + cls('premium', '+49900'), /prefixes\[0\]: write it quoted, like "\+49900"/);
  refused(
    'classes:\n' + cls('premium', '"+49900"') + cls('satellite', '"+870", "+49900"'),
    /classes\.satellite\.prefixes\[1\]: "\+49900" is already in class "premium"/,
  );
  refused('classes:\n' + cls('premium', '"+49900", "+49900"'), /prefixes\[1\]: "\+49900" is listed twice/);
  refused('classes:\n' + cls('international', '"+53"'), /classes\.international: "international" is reserved/);
  refused('classes:\n' + cls('Premium Rate', '"+53"'), /classes\.Premium Rate: a class name/);
  refused('classes:\n  premium: { description: d, prefixes: ["+49900"] }\n', /classes\.premium\.sources: must be a non-empty list/);
  refused('classes:\n  premium: { description: d, sources: [], prefixes: ["+49900"] }\n', /classes\.premium\.sources/);
  refused('classes:\n  premium: { description: d, sources: [a], prefixes: [] }\n', /classes\.premium\.prefixes: must be a non-empty list/);
  refused('classes:\n  premium: [ "+49900" ]\n', /classes\.premium: must be a mapping/);
  refused('classes: {}\n', /classes: must be a mapping/);
  refused('', /expected a mapping/);
  refused('classes:\n  premium: { description: d\n', /not valid YAML/);
  refused('classes:\n' + cls('premium', '"+1"') + cls('premium', '"+2"'), /not valid YAML/); // a class twice (duplicate key)
});

test('files: a missing or oversized file is RULES_INVALID naming it', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pbxg-fraud-dest-'));
  try {
    const missing = path.join(dir, 'none.yaml');
    assert.throws(
      () => loadDestinationPlan(missing),
      (e: unknown) => e instanceof FraudRulesError && e.code === 'RULES_INVALID' && e.message.startsWith(missing),
    );
    const big = path.join(dir, 'big.yaml');
    fs.writeFileSync(big, '#'.repeat(4 * 1024 * 1024 + 1));
    assert.throws(
      () => loadRateTable(big),
      (e: unknown) => e instanceof FraudRulesError && e.code === 'RULES_INVALID' && /more than/.test(e.message),
    );
    assert.throws(
      () => loadDestinationPlan(dir),
      (e: unknown) => e instanceof FraudRulesError && e.code === 'RULES_INVALID' && /not a regular file/.test(e.message),
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the shipped destination file: three sourced classes, the ranges the docs name', () => {
  assert.deepEqual(plan.classNames(), ['premium', 'satellite', 'high-risk', 'international']);
  const raw = fs.readFileSync(SHIPPED, 'utf8');
  for (const c of ['premium', 'satellite', 'high-risk']) assert.match(raw, new RegExp(`\\n  ${c}:\\n    description: .+\\n    sources:\\n      - "`), c);
  const cases: Array<[string, string | null]> = [
    ['+979123456789', 'premium'],
    ['+19005551234', 'premium'],
    ['+19765551234', null], // 976 is an exchange, not an area code
    ['+449098790000', 'premium'],
    ['+441181234567', null], // Reading, not directory enquiries
    ['+49137123456', 'premium'],
    ['+33899123456', 'premium'],
    ['+41900123456', 'premium'],
    ['+870772123456', 'satellite'],
    ['+8818123456', 'satellite'],
    ['+883510001234', 'satellite'],
    ['+6821234', 'high-risk'],
    ['+18095551234', 'high-risk'],
    ['+4930123456', null],
    ['+12125551234', null],
  ];
  for (const [n, want] of cases)
    assert.deepEqual(
      plan.classify(n, DE).classes.filter((c) => c !== 'international'),
      want ? [want] : [],
      n,
    );
});

test('the detection rules loader skips the fraud data files in rules/', () => {
  const rules = loadRulesDir(repoPath('rules'));
  assert.ok(rules.length > 0);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pbxg-fraud-rules-'));
  try {
    fs.copyFileSync(SHIPPED, path.join(dir, 'fraud-destinations.yaml'));
    fs.copyFileSync(RATES, path.join(dir, 'fraud-rates.yaml'));
    fs.writeFileSync(path.join(dir, 'fraudulent.yaml'), 'classes: {}\n'); // only fraud-*.yaml is data: a typo still fails
    assert.throws(() => loadRulesDir(dir), /fraudulent\.yaml: expected a top-level "rules:" list/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('rate table: the shipped example loads, longest prefix wins, unknown numbers have no price', () => {
  const rates = loadRateTable(RATES);
  assert.equal(rates.currency, 'EUR');
  assert.equal(rates.perMinute('+499001234560008'), 2.99);
  assert.equal(rates.perMinute('+4930123456'), 0.01);
  assert.equal(rates.perMinute('+4917012345678'), 0.05);
  assert.equal(rates.perMinute('+881612345001'), 9.0);
  assert.equal(rates.perMinute('+881812345'), 8.0);
  assert.equal(rates.perMinute('+88216123456'), 5.0);
  assert.equal(rates.perMinute('+992370000007'), null);
  for (const bad of ['', '+', '4930123', '+49 30', '+49\r\n', 'x'.repeat(1000), null as unknown as string])
    assert.equal(rates.perMinute(bad), null, String(bad));
  assert.match(fs.readFileSync(RATES, 'utf8'), /^# EXAMPLE DATA, NOT REAL PRICES/);
});

test('the rate loader is strict', () => {
  const bad = (text: string, where: RegExp) =>
    assert.throws(
      () => parseRateTable(text, 'rates.yaml'),
      (e: unknown) => e instanceof FraudRulesError && e.code === 'RULES_INVALID' && e.message.startsWith('rates.yaml') && where.test(e.message),
    );
  const ok = 'currency: EUR\nrates:\n  - { prefix: "+44", perMinute: 0.02 }\n';
  assert.equal(parseRateTable(ok, 'rates.yaml').perMinute('+442079460000'), 0.02);
  bad(ok + 'note: x\n', /rates\.yaml\.note: unknown key/);
  bad('currency: euro\nrates:\n  - { prefix: "+44", perMinute: 0.02 }\n', /currency: an ISO 4217 code/);
  bad(ok + '  - { prefix: "+44", perMinute: 0.03 }\n', /rates\[1\]\.prefix: "\+44" is already priced in rates\[0\]/);
  bad(ok + '  - { prefix: "+1", perMinute: -1 }\n', /rates\[1\]\.perMinute/);
  bad(ok + '  - { prefix: "+1", perMinute: "0.1" }\n', /rates\[1\]\.perMinute/);
  bad(ok + '  - { prefix: +1, perMinute: 0.1 }\n', /rates\[1\]\.prefix: write it quoted/);
  bad(ok + '  - { prefix: "+1", perMinute: 0.1, per: 1 }\n', /rates\[1\]\.per: unknown key/);
  bad('currency: EUR\nrates: []\n', /rates: must be a non-empty list/);
});
