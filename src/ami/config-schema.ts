/** The `ami:` and `actionPolicy:` config sections (src/common/config-schema.ts, docs/config.md). */
import { Bool, Duration, Int, Port, Section, Str, StrList, type Static } from '../common/config-schema.js';
import { validateActionPolicyAllow } from './policy.js';

export const AmiConfigSchema = Section(
  {
    enabled: Bool(true, { description: "connect to Asterisk's AMI (off: no detection from AMI events)" }),
    host: Str('127.0.0.1', { description: 'the AMI host (an address or a name; it is always allow-listed)' }, { unit: 'host' }),
    port: Port(5038, { description: 'the AMI port' }),
    username: Str('guardian', { description: 'a manager.conf user whose read includes security (README: Configuring Asterisk)' }),
    secret: Str('', { description: "that user's secret (or ASTERISK_AMI_PASSWORD)" }),
    events: Str('auto', {
      description:
        'the login Events mask: auto = only security when nothing forwards events (no Odoo, no webhooks), plus call,cdr when fraud.enabled, else on (everything the user may read); or on, off, security,call, ...',
    }),
    connectTimeoutMs: Int(5000, 1, 600_000, { description: 'TCP connect and login timeout' }, 'ms'),
    actionTimeoutMs: Int(10000, 1, 600_000, { description: 'how long an AMI action waits for its response' }, 'ms'),
    pingIntervalMs: Int(
      15000,
      0,
      3_600_000,
      {
        description:
          'keepalive Ping period; no answer and no other byte from Asterisk within pongTimeoutMs: reconnect (a Pong queued behind a burst is not a dead link)',
      },
      'ms',
    ),
    pongTimeoutMs: Int(5000, 1, 600_000, { description: 'how long a keepalive Ping waits for its answer' }, 'ms'),
    maxFrameBytes: Int(
      1048576,
      1024,
      64 * 1024 * 1024,
      { description: 'frames larger than this are dropped (logged once, counted) and parsing resumes' },
      'bytes',
    ),
    maxHeaders: Int(4096, 16, 100_000, { description: 'headers per frame, at most' }, 'count'),
    reconnectInitialMs: Int(500, 1, 3_600_000, { description: 'login retry: first delay of the capped exponential backoff (with jitter)' }, 'ms'),
    reconnectMaxMs: Int(30000, 1, 86_400_000, { description: 'login retry: longest delay' }, 'ms'),
    securityCheckTimeout: Duration(
      '5s',
      { description: 'after each login, how long to wait for proof that the session reads security events (its own SuccessfulAuth)' },
      { minSeconds: 0.5, maxSeconds: 60, shape: 'from 500ms to 60s' },
    ),
    securityRecheckInterval: Duration(
      '10s',
      { description: 'while it does not, how often to re-check with a short probe login; 0 = never' },
      { minSeconds: 2, maxSeconds: 3600, zeroOff: true, shape: '0 (never) or from 2s to 1h' },
    ),
  },
  { description: 'the Asterisk Manager Interface connection' },
);

export type AmiConfig = Static<typeof AmiConfigSchema>;

/** Cross-key and format checks of the `ami:` section, each naming its key. */
export function amiConfigErrors(a: AmiConfig): string[] {
  const errors: string[] = [];
  if (a.enabled && /[\r\n]/.test(a.username + a.secret + a.events)) errors.push('ami: username, secret and events must not contain line breaks');
  if (!/^(auto|on|off|[a-z]+(,[a-z]+)*)$/i.test(a.events.replace(/\s/g, '')))
    errors.push(`ami.events: "${a.events}" is not auto, on, off or a comma list of event classes (security,system,call,...)`);
  return errors;
}

export const ActionPolicyConfigSchema = Section(
  {
    allow: StrList(
      [],
      {
        description:
          'what an operator widens on purpose in the one policy for AMI actions, FastAGI answers and console words (docs/security/action-policy.md): "application:AGI", "function:ODBC_CUSTOMER", "action:UpdateConfig", "variable:MONITOR_EXEC", "agi", "expressions"',
      },
      { checkedBy: 'validateActionPolicyAllow' },
    ),
  },
  { description: 'the AMI action policy (src/ami/policy.ts)' },
);

export const actionPolicyConfigErrors = (p: Static<typeof ActionPolicyConfigSchema>): string[] => validateActionPolicyAllow(p.allow);
