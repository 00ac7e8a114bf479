/**
 * Configuration of the Odoo bridge (Asterisk Plus 4.x agent compatibility).
 * Every bound is explicit here; `resolveOdooConfig` fills in the defaults.
 */
import os from 'node:os';

export type OdooTransport = 'jsonrpc' | 'json2';

/** How long an undeliverable call is kept in the outbox, and what is dropped first at the cap. */
export interface OutboxPolicy {
  /** seconds the row stays deliverable */
  ttlSec: number;
  /** 0 = dropped first when the outbox is full; higher survives longer */
  priority: number;
}

export interface OdooConfig {
  /** Odoo base URL, e.g. https://odoo.example.com */
  url: string;
  db: string;
  /** the agent's Odoo user (asterisk1) */
  user: string;
  /** password or API key of `user` (jsonrpc transport) */
  password: string;
  /** API key for the Odoo 19 JSON-2 transport (falls back to `password`) */
  apiKey: string;
  transport: OdooTransport;
  /** the x-token Odoo sends with every job */
  agentToken: string;
  listen: { enabled: boolean; host: string; port: number; certFile?: string; keyFile?: string };
  /** job endpoint body limit; 413 beyond */
  bodyLimitBytes: number;
  /** jobs waiting to run; 503 when full */
  jobQueueMax: number;
  jobTimeoutMs: number;
  jobConcurrency: number;
  /** request bytes of the jobs queued or running, at most; 503 beyond */
  jobQueueMaxBytes: number;
  /** memory running jobs may buffer (mp3 conversions, files being sent), at most */
  jobMemoryMaxBytes: number;
  /** recording.get_file / file.delete are confined to these directories (realpath) */
  recordingDirs: string[];
  recordingMaxBytes: number;
  /** AMI action names refused from Odoo (case-insensitive) */
  deniedActions: string[];
  /** Originate applications refused from Odoo (case-insensitive) */
  deniedApplications: string[];
  /** events map refresh period */
  eventsRefreshMs: number;
  outboxMaxRows: number;
  /** largest call payload kept in the outbox (bigger ones are only retried in memory) */
  outboxMaxPayloadBytes: number;
  /** per event name; `default` applies to the rest */
  outboxPolicy: Record<string, OutboxPolicy>;
  /** concurrent event deliveries (one lane per call, order kept per lane) */
  eventConcurrency: number;
  /** events held in memory while waiting for a lane, before spilling into the outbox */
  eventMemoryMax: number;
  /** events waiting for their handler delay, at most */
  delayedMax: number;
  /** HTTP connections to Odoo, at most (keep-alive) */
  rpcConcurrency: number;
  rpcTimeoutMs: number;
  /** largest answer read from Odoo (JSON-RPC results, the events map); larger ones are aborted */
  responseMaxBytes: number;
  /** retries of one call on transport errors before the event goes to the outbox */
  rpcRetries: number;
  /** JSON-2 parameter name of the first positional argument, by "model.method" or "method" */
  json2ParamNames: Record<string, string>;
  /** where job error notices go: model.method(message, title=, notify_uid=, warning=True) */
  notifyModel: string;
  notifyMethod: string;
  fagi: { enabled: boolean; host: string; port: number };
  /** added to every forwarded event as SystemName */
  systemName: string;
  /** explicit paths of converters for mp3 (found on PATH when empty) */
  lamePath?: string;
  ffmpegPath?: string;
}

const MIN = 60;
const HOUR = 3600;
const DAY = 86400;

export const defaultOutboxPolicy: Record<string, OutboxPolicy> = {
  default: { ttlSec: HOUR, priority: 1 },
  Cdr: { ttlSec: 7 * DAY, priority: 3 },
  Hangup: { ttlSec: 7 * DAY, priority: 3 },
  GuardianBan: { ttlSec: 7 * DAY, priority: 3 },
  GuardianUnban: { ttlSec: 7 * DAY, priority: 3 },
  OriginateResponse: { ttlSec: DAY, priority: 2 },
  Newchannel: { ttlSec: DAY, priority: 2 },
  VarSet: { ttlSec: DAY, priority: 2 },
  UserEvent: { ttlSec: DAY, priority: 2 },
  JobResult: { ttlSec: HOUR, priority: 2 },
  Newstate: { ttlSec: MIN, priority: 0 },
  ExtensionStatus: { ttlSec: MIN, priority: 0 },
  PeerStatus: { ttlSec: MIN, priority: 0 },
  DeviceStateChange: { ttlSec: MIN, priority: 0 },
  PresenceStateChange: { ttlSec: MIN, priority: 0 },
  ContactStatus: { ttlSec: MIN, priority: 0 },
};

export function defaultOdooConfig(): OdooConfig {
  return {
    url: '',
    db: '',
    user: '',
    password: '',
    apiKey: '',
    transport: 'jsonrpc',
    agentToken: '',
    listen: { enabled: true, host: '0.0.0.0', port: 48000 },
    bodyLimitBytes: 1024 * 1024,
    jobQueueMax: 1000,
    jobTimeoutMs: 30_000,
    jobConcurrency: 16,
    jobQueueMaxBytes: 32 * 1024 * 1024,
    jobMemoryMaxBytes: 160 * 1024 * 1024,
    recordingDirs: ['/var/spool/asterisk/monitor'],
    recordingMaxBytes: 64 * 1024 * 1024,
    deniedActions: [],
    deniedApplications: ['System', 'TrySystem'],
    eventsRefreshMs: 5 * 60_000,
    outboxMaxRows: 100_000,
    outboxMaxPayloadBytes: 256 * 1024,
    outboxPolicy: { ...defaultOutboxPolicy },
    eventConcurrency: 64,
    eventMemoryMax: 10_000,
    delayedMax: 20_000,
    rpcConcurrency: 96,
    rpcTimeoutMs: 30_000,
    responseMaxBytes: 8 * 1024 * 1024,
    rpcRetries: 2,
    json2ParamNames: {},
    notifyModel: 'asterisk_plus.settings',
    notifyMethod: 'asterisk_plus_notify',
    fagi: { enabled: false, host: '127.0.0.1', port: 44574 },
    systemName: os.hostname(),
  };
}

export type OdooConfigInput = Partial<Omit<OdooConfig, 'listen' | 'fagi' | 'outboxPolicy'>> & {
  listen?: Partial<OdooConfig['listen']>;
  fagi?: Partial<OdooConfig['fagi']>;
  outboxPolicy?: Record<string, OutboxPolicy>;
};

/** Defaults + overrides, with the bounds checked. Throws an Error naming the bad key. */
export function resolveOdooConfig(input: OdooConfigInput = {}): OdooConfig {
  const d = defaultOdooConfig();
  const c: OdooConfig = {
    ...d,
    ...stripUndefined(input),
    listen: { ...d.listen, ...stripUndefined(input.listen ?? {}) },
    fagi: { ...d.fagi, ...stripUndefined(input.fagi ?? {}) },
    outboxPolicy: { ...d.outboxPolicy, ...(input.outboxPolicy ?? {}) },
  } as OdooConfig;
  c.url = c.url.replace(/\/+$/, '');
  if (c.transport !== 'jsonrpc' && c.transport !== 'json2') {
    throw new Error(`odoo.transport must be "jsonrpc" or "json2", got ${JSON.stringify(c.transport)}`);
  }
  const positive: Array<keyof OdooConfig> = [
    'bodyLimitBytes',
    'jobQueueMax',
    'jobTimeoutMs',
    'jobConcurrency',
    'recordingMaxBytes',
    'eventsRefreshMs',
    'outboxMaxRows',
    'eventConcurrency',
    'eventMemoryMax',
    'delayedMax',
    'rpcConcurrency',
    'rpcTimeoutMs',
    'outboxMaxPayloadBytes',
    'jobQueueMaxBytes',
    'jobMemoryMaxBytes',
    'responseMaxBytes',
  ];
  for (const k of positive) {
    const v = c[k];
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
      throw new Error(`odoo.${k} must be a positive number, got ${JSON.stringify(v)}`);
    }
  }
  if (!Number.isInteger(c.rpcRetries) || c.rpcRetries < 0 || c.rpcRetries > 10) {
    throw new Error(`odoo.rpcRetries must be an integer 0..10, got ${JSON.stringify(c.rpcRetries)}`);
  }
  return c;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}
