/** The action policy's config: the operator's own denials, the explicit widenings, and their validation. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ActionRefusedError, buildAction, callerAction, resolveActionPolicy, validateActionPolicyAllow } from '../src/ami/index.js';
import { buildConfig, ConfigError } from '../src/config/index.js';

const ORIG = { Action: 'Originate', Channel: 'PJSIP/101' };

test('actionPolicy.allow is validated: every entry names one thing the built-in lists deny', () => {
  assert.deepEqual(
    validateActionPolicyAllow(['application:AGI', 'function:ODBC_CUSTOMER', 'action:UpdateConfig', 'variable:MONITOR_EXEC', 'agi', 'expressions']),
    [],
  );
  const errors = validateActionPolicyAllow(['application:Playback', 'System', 42, 'action:Ping', 'function:A B']);
  assert.equal(errors.length, 5);
  assert.match(errors[0]!, /actionPolicy\.allow\[0\]: "application:Playback" widens nothing/);
  assert.match(errors[1]!, /actionPolicy\.allow\[1\]: "System" is not "action:NAME"/);
  assert.match(errors[2]!, /actionPolicy\.allow\[2\]: expected a string/);
  assert.throws(
    () => buildConfig({ actionPolicy: { allow: ['application:Playback'] } }),
    (e: Error) => e instanceof ConfigError && /actionPolicy\.allow\[0\]/.test(e.message),
  );
  assert.throws(() => buildConfig({ actionPolicy: { widen: [] } }), /actionPolicy\.widen: unknown key/);
  assert.deepEqual(buildConfig({}).actionPolicy, { allow: [] });
});

test('each widening lets exactly its own thing through; odoo.denied* add denials', () => {
  const strict = resolveActionPolicy({ deniedApplications: ['System', 'TrySystem'] });
  const cases: Array<[string, Record<string, unknown>]> = [
    ['application:AGI', { ...ORIG, Application: 'AGI', Data: '/usr/share/asterisk/agi-bin/crm.agi' }],
    ['agi', { ...ORIG, Application: 'AGI', Data: 'agi://crm.example/route' }],
    ['expressions', { ...ORIG, Application: 'Playback', Data: '${SOUND}' }],
    ['function:ODBC_CUSTOMER', { Action: 'Getvar', Variable: 'ODBC_CUSTOMER(42)' }],
    ['action:UpdateConfig', { Action: 'UpdateConfig', SrcFilename: 'x.conf', DstFilename: 'x.conf' }],
    ['variable:MONITOR_EXEC', { Action: 'Setvar', Channel: 'PJSIP/1-1', Variable: 'MONITOR_EXEC', Value: '/usr/local/bin/post-rec' }],
    ['application:System', { ...ORIG, Application: 'System', Data: '/usr/local/bin/notify' }],
  ];
  for (const [allow, action] of cases) {
    assert.throws(() => callerAction(action, strict), ActionRefusedError, allow);
    const wide = resolveActionPolicy({ deniedApplications: ['System', 'TrySystem'], allow: [allow] });
    assert.doesNotThrow(() => callerAction(action, wide), allow);
  }
  // a widening is one name only: application:AGI does not let Exec through
  assert.throws(
    () => callerAction({ ...ORIG, Application: 'Exec', Data: 'Playback(x)' }, resolveActionPolicy({ allow: ['application:AGI'] })),
    /Exec is denied/,
  );
  // the operator's own list still narrows
  assert.throws(
    () => callerAction({ ...ORIG, Application: 'Playback', Data: 'x' }, resolveActionPolicy({ deniedApplications: ['Playback'] })),
    /Playback is denied/,
  );
  assert.throws(() => callerAction({ Action: 'Hangup', Channel: 'x' }, resolveActionPolicy({ deniedActions: ['hangup'] })), /Hangup is denied/);
});

test('build: ambiguity and what Asterisk would refuse are refused with the reason; the fields are frozen', () => {
  const p = resolveActionPolicy();
  assert.throws(() => callerAction({ Action: 'Ping', action: 'Originate' }, p), /"Action" and "action" name the same AMI header/);
  assert.throws(() => callerAction({ ...ORIG, Application: ['Playback', 'System'] }, p), /Application has 2 values, but Asterisk reads only the first/);
  assert.throws(() => callerAction({ Action: 'Ping', Foo: 'x'.repeat(1020) }, p), /longer than Asterisk reads \(1024 bytes per line\)/);
  const many: Record<string, unknown> = { Action: 'Ping' };
  for (let i = 0; i < 127; i++) many[`H${i}`] = 'x';
  assert.throws(() => callerAction(many, p), /Asterisk refuses more than 128/);
  assert.throws(() => callerAction(['Ping'], p), /must be a dict/);
  assert.throws(() => callerAction({ Action: 'Ping Originate' }, p), /must name one AMI action/);
  const f = callerAction({ action: 'Originate', Channel: 'PJSIP/1', ActionID: 'mine', Variable: { A: '1', B: 2 } }, p);
  assert.ok(Object.isFrozen(f));
  assert.equal(buildAction(f, 'id-1'), 'Action: Originate\r\nActionID: id-1\r\nChannel: PJSIP/1\r\nVariable: A=1\r\nVariable: B=2\r\n\r\n');
  // a Command without a console policy is refused, not sent unchecked
  assert.throws(() => callerAction({ Action: 'Command', Command: 'core show version' }, p), /console policy/);
});
