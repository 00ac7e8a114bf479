/**
 * Property: any action dict the policy accepts, once built to bytes and read back the way
 * Asterisk's manager.c reads them (the FIRST header of a name, case-insensitive, leading blanks
 * skipped; Variable items split on commas with quotes and backslashes removed), names no denied
 * action, application, function or variable and holds no expression. The oracle below is written
 * independently of src/ami/policy.ts: plain string searches over what Asterisk would see.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { buildAction, callerAction, resolveActionPolicy, ActionRefusedError } from '../src/ami/index.js';
import { checkCommand, defaultConsoleConfig } from '../src/console/index.js';

const SEED = 0x5eed12;
const base = resolveActionPolicy({ deniedActions: [], deniedApplications: ['System', 'TrySystem'] });
const policy = { ...base, checkCommand: (c: string) => checkCommand(c, { ...defaultConsoleConfig(), dialplan: base }) };

/** Asterisk's side: the frame as manager.c get_input/astman_get_header see it. */
function asteriskReads(bytes: string) {
  assert.ok(bytes.endsWith('\r\n\r\n'));
  const lines = bytes.slice(0, -4).split('\r\n');
  assert.ok(lines.length <= 128, 'AST_MAX_MANHEADERS');
  for (const l of lines) assert.ok(Buffer.byteLength(l) + 2 <= 1024, 'a line Asterisk refuses as too long');
  // eslint-disable-next-line no-control-regex -- what Asterisk skips before a value
  const skip = (v: string) => v.replace(/^[\x00-\x20]+/, '');
  const first = (k: string) => {
    const l = lines.find((x) => x.toLowerCase().startsWith(`${k.toLowerCase()}:`));
    return l === undefined ? '' : skip(l.slice(k.length + 1));
  };
  const all = (k: string) => lines.filter((x) => x.toLowerCase().startsWith(`${k.toLowerCase()}:`)).map((l) => skip(l.slice(k.length + 1)));
  return { lines, first, all };
}

const DANGEROUS_APP = /system|exec|externalivr|originate|ices|mp3player|nbscat|festival|dbdeltree|reload/i; // manager.c's strcasestr list and more
const DANGEROUS_FN = /\b(SHELL|EVAL|FILE|ENV|DB|DB_DELETE|ODBC|CURL|REALTIME|STAT)\s*\(/i;
const DENIED_ACTIONS = new Set([
  'updateconfig',
  'createconfig',
  'getconfig',
  'getconfigjson',
  'moduleload',
  'dialplanextensionadd',
  'dialplanextensionremove',
  'dbput',
  'dbdel',
  'dbdeltree',
  'agi',
  'events',
  'filter',
  'logoff',
  'login',
]);

/** The oracle: what must never be in an accepted action as Asterisk reads it. */
function violations(bytes: string): string[] {
  const m = asteriskReads(bytes);
  const out: string[] = [];
  const action = m.first('Action').trim().toLowerCase();
  if (DENIED_ACTIONS.has(action)) out.push(`action ${action}`);
  for (const l of m.lines.slice(1)) {
    const unescaped = l.replace(/["'\\]/g, '');
    if (/\$[{[]/.test(unescaped)) out.push(`expression in ${l}`);
  }
  if (action === 'originate') {
    const app = m.first('Application');
    const data = m.first('Data').replace(/["\\]/g, '');
    if (DANGEROUS_APP.test(app)) out.push(`application ${app}`);
    if (/agi/i.test(app) && !/^agis?:\/\/(127\.|localhost|\[?::1)/i.test(data.trim())) out.push(`AGI ${data}`);
    if (/mixmonitor/i.test(app) && (data.split(',')[2] ?? '').trim()) out.push(`MixMonitor command ${data}`);
    if (/^set$|^mset$/i.test(app.trim()) && DANGEROUS_FN.test(data)) out.push(`Set ${data}`);
  }
  for (const v of m.all('Variable')) {
    for (const item of v.replace(/["\\]/g, '').split(',')) {
      const name = item.split('=')[0]!;
      if (action !== 'getvar' && !item.includes('=')) continue;
      if (DANGEROUS_FN.test(name) || /MONITOR_EXEC/i.test(name)) out.push(`variable ${name}`);
    }
  }
  if (action === 'status' && DANGEROUS_FN.test(m.first('Variables'))) out.push('Status Variables');
  if (action === 'command') {
    const words = m
      .first('Command')
      .replace(/["\\]/g, '')
      .toLowerCase()
      .split(/[ \t]+/)
      .filter(Boolean);
    const head = words.slice(0, 2).join(' ');
    if (
      /^(core stop|core restart|module load|module unload|stop|restart)/.test(head) ||
      words.some((w) => /^(system|trysystem|agi|eagi|exec|shell|eval|file)(\(|$)/.test(w) || DANGEROUS_FN.test(w))
    )
      out.push(`command ${m.first('Command')}`);
  }
  if (action === 'mixmonitor' && m.first('Command')) out.push('MixMonitor Command');
  return out;
}

const caseOf = (s: string) => fc.constantFrom(s, s.toLowerCase(), s.toUpperCase(), ` ${s}`, `${s} `, `\t${s}`);
const key = fc.oneof(
  ...['Action', 'Application', 'Data', 'Variable', 'Channel', 'Context', 'Exten', 'Command', 'Variables', 'Value', 'ActionID'].map((k) =>
    fc.constantFrom(k, k.toLowerCase(), k.toUpperCase()),
  ),
  fc.constantFrom('Priority', 'Async', 'CallerID', 'File', 'Queue', 'Interface', 'Foo'),
);
const app = fc.oneof(
  fc
    .constantFrom(
      'System',
      'TrySystem',
      'AGI',
      'EAGI',
      'DeadAGI',
      'Exec',
      'ExecIf',
      'TryExec',
      'ExternalIVR',
      'MixMonitor',
      'Monitor',
      'Originate',
      'Set',
      'MSet',
      'Queue',
      'Ices',
    )
    .chain(caseOf),
  fc.constantFrom('Playback', 'Dial', 'Wait', 'Echo', 'Sys tem', 'Sys\\tem', ''),
);
const fragment = fc.constantFrom(
  'touch /tmp/pwn',
  '${SHELL(id)}',
  '${SH${EMPTY}ELL(id)}',
  '$\\{SHELL(id)}',
  '$"{"SHELL(id)}',
  '$[1+1]',
  '${EVAL(${X})}',
  'System(id)',
  'FILE(/etc/x)=y',
  'A=1,FILE(/etc/x)=y',
  'A=1,"FILE(/etc/x)"=y',
  'F\\ILE(/etc/x)=y',
  'SHELL(id)',
  'EVAL(x)',
  'ENV(LD_PRELOAD)=/tmp/x.so',
  '__MONITOR_EXEC=/bin/sh',
  'CALLERID(name)=Bob',
  'A=1',
  'hello-world',
  'PJSIP/101,30',
  'agi:///bin/sh',
  'agi://127.0.0.1/route',
  'agi://203.0.113.9/x',
  '/bin/sh',
  'x.wav,,rm -rf /',
  'x.wav,b',
  '/etc/asterisk/x.wav',
  'q,,,,,agi://x',
  'core stop now',
  '"core" "stop"',
  'core show channels',
  'pjsip show endpoints',
  'channel originate Local/1@x application AGI /bin/sh',
  'dialplan set chanvar PJSIP/1 FILE(/x) y',
  'Local/1@default',
  'Local/${X}@default',
  'PJSIP/101',
);
const value = fc.oneof(
  { weight: 3, arbitrary: fc.oneof(fragment, app) },
  { weight: 1, arbitrary: fc.tuple(fragment, fragment).map(([a, b]) => `${a},${b}`) },
  { weight: 1, arbitrary: fc.array(fc.oneof(fragment, app), { minLength: 1, maxLength: 3 }) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 99 }) },
);
const actionName = fc.oneof(
  fc.constantFrom('Originate', 'Setvar', 'Getvar', 'Status', 'Command', 'MixMonitor', 'UpdateConfig', 'ModuleLoad', 'Events', 'AGI', 'GetConfig').chain(caseOf),
  fc.constantFrom('Ping', 'QueueAdd', 'Redirect', 'Hangup', 'MessageSend'),
);
const actionDict = fc.tuple(actionName, fc.array(fc.tuple(key, value), { maxLength: 8 }), fc.boolean()).map(([name, pairs, actionLast]) => {
  const o: Record<string, unknown> = {};
  if (!actionLast) o.Action = name;
  for (const [k, v] of pairs) o[k] = v;
  if (actionLast) o.action = name;
  return o;
});

test('property: an accepted action, as Asterisk reads its bytes, names nothing denied and holds no expression', () => {
  let accepted = 0;
  let refused = 0;
  fc.assert(
    fc.property(actionDict, (dict) => {
      let fields;
      try {
        fields = callerAction(dict, policy);
      } catch (e) {
        if (!(e instanceof ActionRefusedError)) throw e;
        refused++;
        return;
      }
      accepted++;
      const bytes = buildAction(fields, 'pbxg-1');
      assert.deepEqual(violations(bytes), [], `${JSON.stringify(dict)}\n→ ${JSON.stringify(bytes)}`);
    }),
    { seed: SEED, numRuns: 20_000 },
  );
  console.log(`action policy property: 20000 cases, ${accepted} accepted, ${refused} refused`);
  assert.ok(accepted > 1000, `the property must see accepted actions (${accepted})`);
});

test('property: the oracle itself flags what the policy refuses (it is not vacuous)', () => {
  for (const d of [
    { Action: 'Originate', Channel: 'PJSIP/1', Application: 'System', Data: 'id' },
    { Action: 'Originate', Channel: 'PJSIP/1', Variable: 'A=1,FILE(/etc/x)=y' },
    { Action: 'Getvar', Variable: '${SH${EMPTY}ELL(id)}' },
    { Action: 'UpdateConfig' },
    { Action: 'Command', Command: '"core" "stop" now' },
  ]) {
    assert.notDeepEqual(violations(buildAction(d as never, 'x')), [], JSON.stringify(d));
    assert.throws(() => callerAction(d, policy), ActionRefusedError);
  }
});
