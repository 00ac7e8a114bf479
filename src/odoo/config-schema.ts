/**
 * The `odoo:` config section (src/common/config-schema.ts, docs/config.md). The defaults are the
 * bridge's own (defaultOdooConfig), so the two cannot differ; optional paths are "" when unset.
 */
import { Type } from '@sinclair/typebox';
import { Bool, Enum, Int, OpenMap, Port, Positive, Section, Str, StrList, type Static } from '../common/config-schema.js';
import { redactUrl } from '../common/redact.js';
import { defaultOdooConfig, resolveOdooConfig, type OdooConfigInput } from './config.js';

const d = defaultOdooConfig();
const live = 'live' as const;

export const OdooConfigSchema = Section(
  {
    enabled: Bool(false, { description: 'the Asterisk Plus agent (Odoo bridge); `pbx-guardian odoo init --url URL --db DB` fills in this section' }),
    url: Str(d.url, { description: 'the Odoo base URL (http:// or https://), e.g. https://odoo.example.com' }, { unit: 'url' }),
    db: Str(d.db, { description: 'the Odoo database' }),
    user: Str(d.user, { description: "the agent's Odoo user (asterisk1)" }),
    password: Str(d.password, { description: 'password or API key of user (jsonrpc transport)' }),
    apiKey: Str(d.apiKey, { description: 'Odoo 19 JSON-2 API key (transport json2; falls back to password)' }),
    transport: Enum(['jsonrpc', 'json2'] as const, d.transport, { description: 'jsonrpc | json2' }),
    settingsFromOdoo: Bool(true, {
      description:
        "read the server's AMI fields and the agent options from Odoo at start and on agent.reload_config; they fill only keys this file leaves unset (README, Settings kept in Odoo)",
    }),
    agentToken: Str(d.agentToken, { description: 'the x-token Odoo sends with every job; no token, no job endpoint', reload: live }),
    listen: Section(
      {
        enabled: Bool(d.listen.enabled, { description: 'serve the HTTPS job endpoint Odoo posts to' }),
        host: Str(d.listen.host, { description: 'listen address' }, { unit: 'address' }),
        port: Port(d.listen.port, { description: 'listen port' }),
        certFile: Str('', { description: 'TLS certificate; "" = a self-signed pair made at first start' }, { unit: 'path' }),
        keyFile: Str('', { description: 'TLS key' }, { unit: 'path' }),
      },
      { description: 'the HTTPS job endpoint Odoo posts to' },
    ),
    bodyLimitBytes: Positive(d.bodyLimitBytes, { description: 'job request body limit; 413 beyond' }, 'bytes'),
    jobQueueMax: Positive(d.jobQueueMax, { description: 'jobs waiting to run; 503 when full' }, 'count'),
    jobTimeoutMs: Positive(d.jobTimeoutMs, { description: "one job's time limit" }, 'ms'),
    jobConcurrency: Positive(d.jobConcurrency, { description: 'jobs running at once' }, 'count'),
    jobQueueMaxBytes: Positive(d.jobQueueMaxBytes, { description: 'job requests held (queued or running), by JSON size; 503 beyond' }, 'bytes'),
    jobMemoryMaxBytes: Positive(
      d.jobMemoryMaxBytes,
      { description: 'memory running jobs may hold at once (mp3 conversions, files being sent to Odoo)' },
      'bytes',
    ),
    recordingDirs: StrList(
      d.recordingDirs,
      { description: 'recording.get_file and file.delete are confined to these directories', reload: live },
      { unit: 'paths' },
    ),
    recordingMaxBytes: Positive(d.recordingMaxBytes, { description: 'largest recording sent to Odoo' }, 'bytes'),
    deniedActions: StrList(d.deniedActions, {
      description: "AMI actions refused from Odoo, FastAGI answers and the REST API, in addition to the action policy's built-in list",
    }),
    deniedApplications: StrList(d.deniedApplications, { description: 'dialplan applications refused likewise' }),
    eventsRefreshMs: Positive(d.eventsRefreshMs, { description: 'how often the events map is read again from Odoo' }, 'ms'),
    outboxMaxRows: Positive(
      d.outboxMaxRows,
      { description: 'durable outbox rows while Odoo is unreachable, at most (lowest priority dropped first)' },
      'count',
    ),
    outboxMaxPayloadBytes: Positive(
      d.outboxMaxPayloadBytes,
      { description: 'largest call kept in the outbox (bigger ones are only retried in memory)' },
      'bytes',
    ),
    outboxPolicy: OpenMap(Type.Object({ ttlSec: Type.Number(), priority: Type.Number() }, { additionalProperties: false }), d.outboxPolicy, {
      description:
        'outbox retention per event name ({ttlSec, priority}; 0 = dropped first at the cap), merged over the built-in table; default applies to the rest',
      example: ['Cdr: { ttlSec: 604800, priority: 3 }'],
    }),
    eventConcurrency: Positive(d.eventConcurrency, { description: 'concurrent event deliveries (one lane per call, order kept per lane)' }, 'count'),
    eventMemoryMax: Positive(d.eventMemoryMax, { description: 'events held in memory while waiting for a lane, before spilling into the outbox' }, 'count'),
    delayedMax: Positive(d.delayedMax, { description: 'events waiting for their handler delay, at most' }, 'count'),
    rpcConcurrency: Positive(d.rpcConcurrency, { description: 'HTTP connections to Odoo, at most (keep-alive)' }, 'count'),
    rpcTimeoutMs: Positive(d.rpcTimeoutMs, { description: "one call to Odoo's time limit" }, 'ms'),
    responseMaxBytes: Positive(
      d.responseMaxBytes,
      { description: 'largest answer read from Odoo (JSON-RPC results, the events map); larger ones are aborted' },
      'bytes',
    ),
    rpcRetries: Int(d.rpcRetries, 0, 10, { description: 'retries of one call on transport errors before the event goes to the outbox' }, 'count'),
    json2ParamNames: OpenMap(Type.String(), d.json2ParamNames, {
      description: 'JSON-2 parameter name of the first positional argument, by "model.method" or "method"',
    }),
    notifyModel: Str(d.notifyModel, { description: 'where job error notices go: model.method(message, title=, notify_uid=, warning=True)' }),
    notifyMethod: Str(d.notifyMethod, { description: 'the method of notifyModel' }),
    fagi: Section(
      {
        enabled: Bool(d.fagi.enabled, { description: "the FastAGI server for the events map's FAGI rows", reload: live }),
        host: Str(d.fagi.host, { description: 'listen address', reload: live }, { unit: 'address' }),
        port: Port(d.fagi.port, { description: 'listen port', reload: live }),
      },
      { description: 'FastAGI server' },
    ),
    systemName: Str(d.systemName, { description: 'added to every forwarded event as SystemName', defaultText: 'the host name' }),
    lamePath: Str('', { description: 'the lame converter for mp3; "" = found on PATH' }, { unit: 'path' }),
    ffmpegPath: Str('', { description: 'the ffmpeg converter for mp3; "" = found on PATH' }, { unit: 'path' }),
  },
  { description: 'the Odoo bridge (Asterisk Plus 4.x agent)' },
);

export type OdooSection = Static<typeof OdooConfigSchema>;

/** The bridge's config from ours: "" means unset for the optional paths. */
export function odooBridgeConfig(o: OdooSection): OdooConfigInput {
  const { enabled: _enabled, settingsFromOdoo: _fromOdoo, lamePath, ffmpegPath, listen, ...rest } = o;
  return {
    ...rest,
    listen: { ...listen, certFile: listen.certFile || undefined, keyFile: listen.keyFile || undefined },
    lamePath: lamePath || undefined,
    ffmpegPath: ffmpegPath || undefined,
  };
}

/** URL checks and the bridge's own, when the bridge is on. */
export function odooConfigErrors(o: OdooSection): string[] {
  if (!o.enabled) return [];
  const errors: string[] = [];
  if (/^[^:/?#]*:\/\/[^/?#]*@/.test(o.url))
    errors.push('odoo.url: a user or password in the URL is not supported (and would be logged): set odoo.user and odoo.password');
  if (/^https?:\/\//.test(o.url) && !URL.canParse(o.url)) errors.push(`odoo.url: "${redactUrl(o.url)}" is not a valid URL (check the host name or address)`);
  if (!/^https?:\/\//.test(o.url)) errors.push(`odoo.url: "${redactUrl(o.url)}" must start with http:// or https:// when odoo.enabled is true`);
  try {
    resolveOdooConfig(odooBridgeConfig(o));
  } catch (err) {
    errors.push((err as Error).message);
  }
  return errors;
}
