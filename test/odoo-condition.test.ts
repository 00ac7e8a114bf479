import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { compileCondition, ConditionError } from '../src/odoo/condition.js';

const ev = (o: Record<string, string>) => o;

test('every condition form shipped by Asterisk Plus (E and D)', () => {
  const cases: Array<[string, Record<string, string>, boolean]> = [
    ["event['Response'] == 'Failure'", { Response: 'Failure' }, true],
    ["event['Response'] == 'Failure'", { Response: 'Success' }, false],
    ["not event['Channel'].startswith('Local/')", { Channel: 'PJSIP/100-0001' }, true],
    ["not event['Channel'].startswith('Local/')", { Channel: 'Local/100@ctx-0001;1' }, false],
    ["not (event['Channel'].startswith('Local/') or event['ChannelStateDesc'] not in ['Up'])", { Channel: 'SIP/1-1', ChannelStateDesc: 'Up' }, true],
    ["not (event['Channel'].startswith('Local/') or event['ChannelStateDesc'] not in ['Up'])", { Channel: 'SIP/1-1', ChannelStateDesc: 'Ringing' }, false],
    ["not (event['Channel'].startswith('Local/') or event['ChannelStateDesc'] not in ['Up'])", { Channel: 'Local/1', ChannelStateDesc: 'Up' }, false],
    ["event.get('Variable') == 'MIXMONITOR_FILENAME'", { Variable: 'MIXMONITOR_FILENAME' }, true],
    ["event.get('Variable') == 'MIXMONITOR_FILENAME'", {}, false],
    ["event.get('Variable') == 'MVM_FILENAME'", { Variable: 'MVM_FILENAME' }, true],
    ["event.get('Variable') == 'MVM_DURATION'", { Variable: 'MVM_FILENAME' }, false],
    ["event.get('UserEvent') == 'CallAnswered'", { UserEvent: 'CallAnswered' }, true],
    ["event.get('UserEvent') == 'SetTransfer'", { UserEvent: 'SetTransfer' }, true],
    ["not event['Channel'].startswith('Local/') and event['Uniqueid'] == event['Linkedid']", { Channel: 'SIP/1', Uniqueid: '1.1', Linkedid: '1.1' }, true],
    ["not event['Channel'].startswith('Local/') and event['Uniqueid'] != event['Linkedid']", { Channel: 'SIP/1', Uniqueid: '1.2', Linkedid: '1.1' }, true],
    ["not event['Channel'].startswith('Local/') and event['Uniqueid'] != event['Linkedid']", { Channel: 'SIP/1', Uniqueid: '1.1', Linkedid: '1.1' }, false],
    // other supported forms
    ["event.get('X', 'dflt') == 'dflt'", {}, true],
    ["event['A'] in ('1', '2')", { A: '2' }, true],
    ["event['A'] not in ['1', \"2\"]", { A: '3' }, true],
    ["event['Channel'].endswith('-0001')", { Channel: 'SIP/1-0001' }, true],
    ["event['Channel'].startswith(('SIP/', 'PJSIP/'))", { Channel: 'PJSIP/1' }, true],
    ["event.get('Missing') == None", {}, true],
    ["event.get('Missing') is None".replace(' is ', ' == '), {}, true],
    ['True', {}, true],
    ['not False and (True or False)', {}, true],
    ["event.get('N', 0) == 0", {}, true],
    ["'abc' in event['S']", { S: 'xxabcxx' }, true],
    // missing key via event['X'] → false (Python KeyError → handler skipped)
    ["event['Nope'] == 'x'", {}, false],
    ["not event['Nope'].startswith('x')", {}, false],
    // type error (None.startswith) → false
    ["event.get('Nope').startswith('x')", {}, false],
  ];
  for (const [src, e, want] of cases) {
    assert.equal(compileCondition(src).test(ev(e)), want, `${src} over ${JSON.stringify(e)}`);
  }
});

test('rejects everything outside the safe subset', () => {
  const bad = [
    "__import__('os').system('id')",
    'event.__class__',
    "event['Channel'].lower() == 'x'",
    'event.keys()',
    "open('/etc/passwd')",
    "os.system('x')",
    '[x for x in event]',
    'lambda: 1',
    "event['A'] + 'b'",
    "event['A'] is None",
    "event['A'] < 3",
    "event['A'",
    "'unterminated",
    'event.get()',
    "event.get('a','b','c')",
    "'x'.startswith('a', 'b')",
    "event['A'][0]",
    "event['A'];1",
    "f'{event}'",
    '',
  ];
  for (const src of bad) {
    assert.throws(() => compileCondition(src), ConditionError, src);
  }
  // bounds
  assert.throws(() => compileCondition('not '.repeat(100) + 'True'), ConditionError);
  assert.throws(() => compileCondition('('.repeat(60) + 'True' + ')'.repeat(60)), ConditionError);
  assert.throws(() => compileCondition("event['A'] == 'x' or ".repeat(200) + 'True'), ConditionError);
});

test('never throws at evaluation time on arbitrary events (property)', () => {
  const c = compileCondition("not (event['Channel'].startswith('Local/') or event['ChannelStateDesc'] not in ['Up']) and event.get('X', 'y') != 'z'");
  fc.assert(
    fc.property(fc.dictionary(fc.constantFrom('Channel', 'ChannelStateDesc', 'X', 'Other'), fc.string()), (e) => {
      const r = c.test(e);
      return typeof r === 'boolean';
    }),
  );
  // the parser never throws anything but ConditionError on random input
  fc.assert(
    fc.property(fc.string({ maxLength: 80 }), (s) => {
      try {
        compileCondition(s);
      } catch (e) {
        if (!(e instanceof ConditionError)) return false;
      }
      return true;
    }),
  );
});
