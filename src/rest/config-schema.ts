/** The `rest:` config section (src/common/config-schema.ts, docs/config.md). */
import { Type } from '@sinclair/typebox';
import { Bool, Enum, Int, ObjList, Port, Section, Str, StrList, type Static } from '../common/config-schema.js';

export type Scope = 'read' | 'call' | 'admin';
export const SCOPES: readonly Scope[] = ['read', 'call', 'admin'];

/** Dialplan context names. */
export const CONTEXT_PATTERN = '^[A-Za-z0-9_.-]{1,80}$';
const CONTEXT_RE = new RegExp(CONTEXT_PATTERN);

const RestTokenSchema = Type.Object(
  {
    token: Type.String(),
    scopes: Type.Array(Type.Union(SCOPES.map((s) => Type.Literal(s)))),
    name: Type.String(),
  },
  { additionalProperties: false },
);

export const RestConfigSchema = Section(
  {
    enabled: Bool(false, { description: 'the /v1 REST API for any CRM (salara-compatible); plain HTTP, put TLS in front for remote use' }),
    host: Str('127.0.0.1', { description: 'listen address' }, { unit: 'address' }),
    port: Port(48010, { description: 'listen port' }),
    tokens: ObjList(
      RestTokenSchema,
      {
        description: 'bearer tokens {name, token (16+ characters), scopes: read | call | admin}',
        reload: 'live',
        example: ['- { name: crm, token: "change-me-to-a-long-random-string", scopes: [read, call] }'],
      },
      'validateRestConfig',
    ),
    bodyLimitBytes: Int(65536, 1024, 16 * 1024 * 1024, { description: 'request body limit; 413 beyond' }, 'bytes'),
    actionTimeoutMs: Int(10000, 100, 600_000, { description: 'how long an AMI action of a request waits' }, 'ms'),
    defaultContext: Str('default', { description: 'dialplan context of a call that names none' }),
    callContexts: StrList([], { description: 'contexts a call may be placed in; [] = any' }, { checkedBy: 'validateRestConfig' }),
    operatorChannel: Str('PJSIP/{operator}', { description: 'the channel that rings the operator first: TECH/...{operator}...' }),
    originateTimeoutMs: Int(30000, 100, 600_000, { description: "how long the operator's phone rings" }, 'ms'),
    messageTo: Str('pjsip:{operator}', { description: 'MessageSend destination; must contain {operator}' }),
    messageFrom: Str('"{phone}" <sip:{phone}>', { description: 'MessageSend sender' }),
    peerDriver: Enum(['auto', 'pjsip', 'sip'] as const, 'auto', { description: 'peer status from: auto | pjsip | sip' }),
  },
  { description: 'REST API for any CRM (salara-compatible calls, messages, status), its own listener' },
);

export type RestConfig = Static<typeof RestConfigSchema>;

/** Problems in a `rest:` section the schema cannot see (tokens, names, templates), each naming its key. */
export function validateRestConfig(c: RestConfig): string[] {
  const errors: string[] = [];
  const names = new Set<string>();
  c.tokens.forEach((t: unknown, i) => {
    const at = `rest.tokens[${i}]`;
    if (t === null || typeof t !== 'object' || Array.isArray(t)) {
      errors.push(`${at}: expected a mapping {token, scopes, name}`);
      return;
    }
    const o = t as Record<string, unknown>;
    for (const k of Object.keys(o)) if (!['token', 'scopes', 'name'].includes(k)) errors.push(`${at}.${k}: unknown key (known keys here: token, scopes, name)`);
    if (typeof o.token !== 'string' || o.token.length < 16)
      errors.push(`${at}.token: a string of at least 16 characters is required (e.g. from: openssl rand -hex 24)`);
    if (!Array.isArray(o.scopes) || o.scopes.length === 0 || o.scopes.some((s) => !SCOPES.includes(s as Scope)))
      errors.push(`${at}.scopes: a non-empty list of ${SCOPES.join(', ')}`);
    if (typeof o.name !== 'string' || !/^[A-Za-z0-9_.@-]{1,64}$/.test(o.name))
      errors.push(`${at}.name: 1-64 letters, digits, "_", ".", "@" or "-" (shown in logs)`);
    else if (names.has(o.name)) errors.push(`${at}.name: "${o.name}" is used twice`);
    else names.add(o.name);
  });
  if (c.enabled && c.tokens.length === 0) errors.push('rest.tokens: rest.enabled is true but no token is configured: every request would be refused');
  if (!CONTEXT_RE.test(c.defaultContext)) errors.push(`rest.defaultContext: "${c.defaultContext}" is not a dialplan context name`);
  c.callContexts.forEach((x, i) => {
    if (!CONTEXT_RE.test(x)) errors.push(`rest.callContexts[${i}]: "${x}" is not a dialplan context name`);
  });
  if (!/^[A-Za-z0-9_]+\/[^\r\n\0]*\{operator\}/.test(c.operatorChannel))
    errors.push('rest.operatorChannel: must look like TECH/...{operator}..., e.g. PJSIP/{operator}');
  if (!c.messageTo.includes('{operator}') || /[\r\n\0]/.test(c.messageTo)) errors.push('rest.messageTo: must contain {operator}, e.g. pjsip:{operator}');
  if (/[\r\n\0]/.test(c.messageFrom)) errors.push('rest.messageFrom: must not contain line breaks');
  return errors;
}
