/**
 * The `fraud:` config section (src/common/config-schema.ts, docs/fraud.md): the call tracker's
 * bounds, the dialing plan, the policies and their actions. Lists of policies are checked here
 * (fraudConfigErrors: each error names fraud.<key>[i].<key>) because the schema builders leave list
 * entries to the stage.
 */
import { join } from 'node:path';
import { Type } from '@sinclair/typebox';
import { Bool, Duration, Int, Num, Section, Str, StrList, type Static } from '../common/config-schema.js';
import { parseDuration } from '../common/duration.js';
import { PACKAGE_ROOT } from '../paths.js';

/** What a policy does when it is crossed; an alert (log line + GuardianFraud event) always goes out. */
export const FRAUD_ACTIONS = ['alert', 'hangup', 'block', 'ban'] as const;
export type FraudAction = (typeof FRAUD_ACTIONS)[number];

const Actions = (def: FraudAction[], what: string) =>
  StrList(
    def,
    { description: `what is done when ${what}: alert, hangup (the offending calls), block (the account), ban (its address)` },
    { checkedBy: 'fraudConfigErrors' },
  );

/** The default destination classes of the burst policy: everything that leaves the country. */
const RISKY = ['international', 'premium', 'satellite', 'high-risk'];

const WindowSchema = Type.Object(
  {
    name: Type.String(),
    calls: Type.Integer({ minimum: 1, maximum: 100_000 }),
    within: Type.String(),
    classes: Type.Optional(Type.Array(Type.String())),
    actions: Type.Array(Type.String()),
  },
  { additionalProperties: false },
);
export type FraudWindow = Static<typeof WindowSchema>;

const HoursSchema = Type.Object(
  {
    name: Type.String(),
    accounts: Type.Array(Type.String()),
    days: Type.Optional(Type.Array(Type.String())),
    from: Type.String(),
    to: Type.String(),
    actions: Type.Array(Type.String()),
  },
  { additionalProperties: false },
);
export type FraudHours = Static<typeof HoursSchema>;

export const DEFAULT_WINDOWS: FraudWindow[] = [
  // the clear attack (the fixtures' burst: 10 international / premium calls in 2.3 s from one account)
  { name: 'burst', calls: 5, within: '30s', classes: RISKY, actions: ['hangup', 'block'] },
  { name: 'calls-per-minute', calls: 10, within: '1m', actions: ['alert'] },
  { name: 'calls-per-hour', calls: 60, within: '1h', actions: ['alert'] },
  { name: 'calls-per-day', calls: 300, within: '1d', actions: ['alert'] },
];

export const FraudConfigSchema = Section(
  {
    enabled: Bool(true, { description: 'follow outbound calls on the AMI connection and apply the fraud policies (docs/fraud.md)' }),
    destinations: Str(
      join(PACKAGE_ROOT, 'rules', 'fraud-destinations.yaml'),
      { description: 'the destination classes (premium, satellite, high-risk) by E.164 prefix', defaultText: "the package's rules/fraud-destinations.yaml" },
      { unit: 'path' },
    ),
    rates: Str('', { description: 'a rate table (rules/fraud-rates.yaml format) for the cost estimate; empty: no cost estimate' }, { unit: 'path' }),
    trunks: StrList([], {
      description: 'PJSIP endpoints that are trunks (calls from them are not counted); a channel dialled as NUMBER@endpoint is a trunk call anyway',
    }),
    dialingPlan: Section(
      {
        country: Str('', {
          description: 'E.164 country code of the PBX ("49", "1"); empty: every number dialled with an international prefix is international',
        }),
        nationalPrefix: Str('0', { description: 'the trunk prefix of national numbers ("0"; "1" in the NANP; "" for none)' }),
        internationalPrefixes: StrList(['00', '+'], { description: 'how numbers abroad are dialled ("00", "+", "011")' }),
        internalMaxDigits: Int(6, 1, 15, { description: 'numbers of at most this many digits are extensions (internal calls)' }, 'digits'),
      },
      { description: 'how numbers are dialled on this PBX' },
    ),
    maxCalls: Int(10000, 10, 1_000_000, { description: 'live calls tracked at most (the oldest forgotten first, counted)' }, 'count'),
    maxAccounts: Int(10000, 10, 1_000_000, { description: 'accounts whose recent calls and address are remembered at most' }, 'count'),
    callTimeout: Duration(
      '4h',
      { description: 'a call whose Hangup never arrives is forgotten after this long (counted in pbx_guardian_fraud_calls_expired_total)' },
      { minSeconds: 60, maxSeconds: 7 * 86400 },
    ),
    recentDecisions: Int(200, 1, 10_000, { description: 'decisions kept for pbx-guardian fraud' }, 'count'),
    hangupBlocked: Bool(true, { description: 'hang up any outbound call that a blocked account still gets through (dialplan include missing)' }),
    concurrentPerAccount: Section(
      { limit: Int(6, 1, 100_000, { description: 'live outbound calls of one account, at most' }, 'calls'), actions: Actions(['alert'], 'it is crossed') },
      { description: 'concurrent outbound calls per account' },
    ),
    concurrentPerTrunk: Section(
      { limit: Int(60, 1, 1_000_000, { description: 'live calls through one trunk, at most' }, 'calls'), actions: Actions(['alert'], 'it is crossed') },
      { description: 'concurrent calls per trunk' },
    ),
    windows: Type.Array(WindowSchema, {
      default: structuredClone(DEFAULT_WINDOWS),
      description:
        'calls per window per account, like the guard rules: [{name, calls, within, classes, actions}]; classes (international, premium, satellite, high-risk) limit which calls count, none: every outbound call',
      checkedBy: 'fraudConfigErrors',
    }),
    destinationClasses: Section(
      {
        classes: StrList(['premium', 'satellite', 'high-risk'], { description: 'one call to a number of these classes is a decision' }),
        actions: Actions(['alert'], 'a call goes to one of them'),
      },
      { description: 'single calls to risky destinations' },
    ),
    hours: Type.Array(HoursSchema, {
      default: [],
      description:
        'allowed hours per account group: [{name, accounts: ["1*", "reception"], days: [mon, tue, ...], from: "07:00", to: "20:00", actions}]; an outbound call outside them is a decision',
      checkedBy: 'fraudConfigErrors',
      example: ['- name: office', '  accounts: ["1*"]', '  days: [mon, tue, wed, thu, fri]', '  from: "07:00"', '  to: "20:00"', '  actions: [alert]'],
    } as object),
    budget: Section(
      {
        amount: Num(0, 0, 1e9, { description: 'estimated cost (in the rate table currency) per account and window; 0: off' }),
        within: Duration('1h', { description: 'the window' }, { minSeconds: 60 }),
        actions: Actions(['alert'], 'it is crossed'),
      },
      { description: 'a cost budget from the rate table (fraud.rates)' },
    ),
    hangup: Section(
      {
        attempts: Int(5, 1, 50, { description: "AMI Hangup of one channel is sent at most this often, until the channel's Hangup event arrives" }, 'count'),
        retryMs: Int(250, 10, 60_000, { description: 'first retry delay (doubling)' }, 'ms'),
        maxRetryMs: Int(4000, 10, 600_000, { description: 'longest retry delay' }, 'ms'),
      },
      { description: 'hanging up offending calls' },
    ),
    block: Section(
      {
        attempts: Int(10, 1, 1000, { description: 'AMI DBPut / DBDel of a block is tried at most this often (again at each AMI reconnect)' }, 'count'),
        retryMs: Int(500, 10, 600_000, { description: 'first retry delay (doubling)' }, 'ms'),
        maxRetryMs: Int(30000, 10, 3_600_000, { description: 'longest retry delay' }, 'ms'),
        banDuration: Duration('1d', { description: 'how long the ban action bans the address the account registered from' }, { minSeconds: 60 }),
      },
      { description: 'blocking accounts (AstDB family guardian-blocked) and banning their address' },
    ),
  },
  { description: 'toll-fraud guard: outbound calls per account and trunk (docs/fraud.md)' },
);

export type FraudConfig = Static<typeof FraudConfigSchema>;

const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];
const CLASS_RE = /^[a-z][a-z0-9-]{0,39}$/;
const HHMM = /^([01]\d|2[0-3]):[0-5]\d$/;
const NAME_RE = /^[A-Za-z0-9_.-]{1,60}$/;

function actionErrors(key: string, actions: unknown): string[] {
  if (!Array.isArray(actions)) return [`${key}: expected a list of actions (${FRAUD_ACTIONS.join(', ')})`];
  return actions
    .filter((a) => !(FRAUD_ACTIONS as readonly unknown[]).includes(a))
    .map((a) => `${key}: "${String(a)}" is not one of ${FRAUD_ACTIONS.join(', ')}`);
}

/** What the schema alone cannot say, each naming its key. */
export function fraudConfigErrors(f: FraudConfig): string[] {
  const errors: string[] = [];
  if (!/^\d{0,3}$/.test(f.dialingPlan.country))
    errors.push(`fraud.dialingPlan.country: "${f.dialingPlan.country}" is not an E.164 country code (1 to 3 digits)`);
  if (!/^\d{0,3}$/.test(f.dialingPlan.nationalPrefix)) errors.push(`fraud.dialingPlan.nationalPrefix: "${f.dialingPlan.nationalPrefix}" must be digits`);
  for (const p of f.dialingPlan.internationalPrefixes)
    if (!/^(\+|\d{2,4})$/.test(p)) errors.push(`fraud.dialingPlan.internationalPrefixes: "${p}" must be + or 2 to 4 digits`);
  for (const t of f.trunks) if (!NAME_RE.test(t)) errors.push(`fraud.trunks: "${t}" is not an endpoint name`);
  errors.push(...actionErrors('fraud.concurrentPerAccount.actions', f.concurrentPerAccount.actions));
  errors.push(...actionErrors('fraud.concurrentPerTrunk.actions', f.concurrentPerTrunk.actions));
  errors.push(...actionErrors('fraud.destinationClasses.actions', f.destinationClasses.actions));
  errors.push(...actionErrors('fraud.budget.actions', f.budget.actions));
  for (const c of f.destinationClasses.classes) if (!CLASS_RE.test(c)) errors.push(`fraud.destinationClasses.classes: "${c}" is not a class name`);
  const names = new Set<string>();
  if (!Array.isArray(f.windows)) errors.push('fraud.windows: expected a list of {name, calls, within, classes, actions}');
  else
    f.windows.forEach((w, i) => {
      const k = `fraud.windows[${i}]`;
      if (!w || typeof w !== 'object') return errors.push(`${k}: expected {name, calls, within, classes, actions}`);
      if (typeof w.name !== 'string' || !NAME_RE.test(w.name)) errors.push(`${k}.name: a name of letters, digits, . _ - is needed`);
      else if (names.has(w.name)) errors.push(`${k}.name: "${w.name}" is used twice`);
      else names.add(w.name);
      if (!Number.isInteger(w.calls) || w.calls < 1 || w.calls > 100_000) errors.push(`${k}.calls: a whole number from 1 to 100000`);
      const s = parseDuration(w.within);
      if (s === null || s < 1 || s > 30 * 86400) errors.push(`${k}.within: "${String(w.within)}" is not a duration from 1s to 30d`);
      for (const c of w.classes ?? []) if (typeof c !== 'string' || !CLASS_RE.test(c)) errors.push(`${k}.classes: "${String(c)}" is not a class name`);
      errors.push(...actionErrors(`${k}.actions`, w.actions));
    });
  if (!Array.isArray(f.hours)) errors.push('fraud.hours: expected a list of {name, accounts, days, from, to, actions}');
  else
    f.hours.forEach((h, i) => {
      const k = `fraud.hours[${i}]`;
      if (!h || typeof h !== 'object') return errors.push(`${k}: expected {name, accounts, days, from, to, actions}`);
      if (typeof h.name !== 'string' || !NAME_RE.test(h.name)) errors.push(`${k}.name: a name of letters, digits, . _ - is needed`);
      if (!Array.isArray(h.accounts) || h.accounts.length === 0) errors.push(`${k}.accounts: a list of account names or prefixes ending in *`);
      else
        for (const a of h.accounts)
          if (typeof a !== 'string' || !/^[A-Za-z0-9_.-]{0,80}\*?$/.test(a) || a === '')
            errors.push(`${k}.accounts: "${String(a)}" is not an account or a prefix*`);
      for (const d of h.days ?? []) if (!DAYS.includes(String(d).toLowerCase())) errors.push(`${k}.days: "${String(d)}" is not one of ${DAYS.join(', ')}`);
      for (const key of ['from', 'to'] as const)
        if (typeof h[key] !== 'string' || !HHMM.test(h[key])) errors.push(`${k}.${key}: "${String(h[key])}" is not HH:MM`);
      errors.push(...actionErrors(`${k}.actions`, h.actions));
    });
  if (f.budget.amount > 0 && f.rates === '') errors.push('fraud.budget.amount: a budget needs a rate table (fraud.rates)');
  if (f.hangup.retryMs > f.hangup.maxRetryMs) errors.push('fraud.hangup.retryMs: longer than fraud.hangup.maxRetryMs');
  if (f.block.retryMs > f.block.maxRetryMs) errors.push('fraud.block.retryMs: longer than fraud.block.maxRetryMs');
  return errors;
}

/** the weekday names hours entries use, index = Date.getDay() */
export const WEEKDAYS = DAYS;
