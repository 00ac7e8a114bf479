/**
 * Jobs Odoo sends to the agent (POST /app/asterisk_plus/agent), run in the background with a
 * bounded queue, a concurrency cap and a per-job timeout. Each result goes back to
 * res_model.res_method(result, **pass_back); job errors are also notified to res_notify_uid.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import { constants as fsc } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import type { AmiActionFields, AmiMessage, AmiResponse } from '../ami/types.js';
import { AllowListedError, InvalidTargetError, type BanControl, type BanRecord } from '../guard/types.js';
import type { OdooConfig } from './config.js';
import type { OdooMetrics } from './metrics.js';

/** The AMI client as the bridge needs it (implemented by src/ami). */
export interface AmiPort {
  action(fields: AmiActionFields, opts?: { timeoutMs?: number }): Promise<AmiResponse>;
}

export interface JobRequest {
  fun: string;
  args?: unknown;
  kwargs?: Record<string, unknown> | null;
  res_model?: string | null;
  res_method?: string | null;
  res_notify_uid?: number | boolean | null;
  res_notify_title?: string | null;
  pass_back?: Record<string, unknown> | null;
}

export interface Job extends JobRequest {
  id: string;
  acceptedAt: number;
}

/** A job function failed in a way Odoo should be told about (the message is shown to a person). */
export class JobError extends Error {
  readonly code = 'JOB_ERROR';
}

export interface JobContext {
  ami: AmiPort;
  bans: BanControl;
  config: OdooConfig;
  log: Logger;
  reloadConfig: () => Promise<unknown> | unknown;
  reloadEvents: () => Promise<unknown>;
  timeoutMs: number;
}

export type JobFunction = (args: unknown, kwargs: Record<string, unknown>, ctx: JobContext) => Promise<unknown>;

export interface JobResultSink {
  /** deliver res_model.res_method(result, **kwargs) */
  result(job: Job, model: string, method: string, result: unknown, kwargs: Record<string, unknown>): void;
  /** a notice to a user (job errors) */
  notify(job: Job, uid: number, title: string, message: string): void;
}

// ------------------------------------------------------------------ AMI helpers

const HEADER_KEY_RE = /^[A-Za-z0-9_\-]{1,64}$/;
const SHELL_IN_DATA_RE = /\b(?:try)?system\s*\(|\bshell\s*\(/i;

/** AMI message → dict; duplicate keys become lists (like the Salt agent's panoramisk messages). */
export function messageToDict(m: AmiMessage): Record<string, unknown> {
  const o: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  for (const [k, v] of m.headers) {
    const cur = o[k];
    if (cur === undefined) o[k] = v;
    else if (Array.isArray(cur)) cur.push(v);
    else o[k] = [cur, v];
  }
  return { ...o };
}

/** Validate and convert an action dict from Odoo; throws JobError with a clear message. */
export function toActionFields(action: unknown, cfg: Pick<OdooConfig, 'deniedActions' | 'deniedApplications'>): AmiActionFields {
  if (action === null || typeof action !== 'object' || Array.isArray(action)) {
    throw new JobError('asterisk.manager_action expects the action as a dict in args, e.g. {"Action": "Ping"}');
  }
  const out: AmiActionFields = {};
  const check = (k: string, v: string): string => {
    if (/[\r\n\0]/.test(v)) throw new JobError(`refused: the value of ${k} contains CR, LF or NUL (AMI header injection)`);
    if (v.length > 8192) throw new JobError(`refused: the value of ${k} is longer than 8192 characters`);
    return v;
  };
  for (const [k, raw] of Object.entries(action as Record<string, unknown>)) {
    if (!HEADER_KEY_RE.test(k)) throw new JobError(`refused: action key ${JSON.stringify(k.slice(0, 80))} is not a valid AMI header name`);
    if (k.toLowerCase() === 'actionid') continue; // the AMI client owns ActionID
    if (typeof raw === 'string') out[k] = check(k, raw);
    else if (typeof raw === 'number' && Number.isFinite(raw)) out[k] = raw;
    else if (typeof raw === 'boolean') out[k] = raw ? 'true' : 'false';
    else if (Array.isArray(raw)) {
      if (raw.length > 256) throw new JobError(`refused: ${k} has more than 256 values`);
      out[k] = raw.map((x) => {
        if (typeof x === 'string') return check(k, x);
        if (typeof x === 'number' && Number.isFinite(x)) return x;
        throw new JobError(`refused: ${k} must be a list of strings or numbers`);
      });
    } else if (raw !== null && typeof raw === 'object' && k.toLowerCase() === 'variable') {
      // {"VAR": "value"} → Variable: VAR=value (once per pair)
      out[k] = Object.entries(raw as Record<string, unknown>).map(([vk, vv]) => check(k, `${vk}=${String(vv)}`));
    } else if (raw === null) continue;
    else throw new JobError(`refused: ${k} must be a string, a number or a list`);
  }
  const actionName = typeof out.Action === 'string' ? out.Action : Object.entries(out).find(([k]) => k.toLowerCase() === 'action')?.[1];
  if (typeof actionName !== 'string' || !actionName) throw new JobError('asterisk.manager_action: the action dict has no "Action" key');
  const lower = actionName.toLowerCase();
  if (cfg.deniedActions.some((a) => a.toLowerCase() === lower)) {
    throw new JobError(`refused: the AMI action ${actionName} is denied by odoo.deniedActions on this agent`);
  }
  if (lower === 'originate') {
    const get = (key: string): string | undefined => {
      const e = Object.entries(out).find(([k]) => k.toLowerCase() === key);
      if (!e) return undefined;
      return Array.isArray(e[1]) ? e[1].join(',') : String(e[1]);
    };
    const app = (get('application') ?? '').trim();
    const data = get('data') ?? '';
    const appLower = app.toLowerCase();
    if (app && cfg.deniedApplications.some((a) => a.toLowerCase() === appLower)) {
      throw new JobError(`refused: Originate with Application ${app} is denied on this agent (it would run a shell command)`);
    }
    // Exec/ExecIf/Set/Gosub... can reach System() or ${SHELL()} through their Data
    if (SHELL_IN_DATA_RE.test(data)) {
      throw new JobError(`refused: Originate Data runs a shell command (System/TrySystem/SHELL) through ${app || 'the dialplan'}`);
    }
  }
  return out;
}

function responseToResult(resp: AmiResponse, asList: boolean): unknown {
  const head = messageToDict(resp.response);
  if (resp.output && resp.output.length) head.Output = resp.output;
  const isList = resp.events.length > 0 || resp.complete !== undefined || /^start$/i.test(resp.response.get('EventList') ?? '');
  if (!isList) return asList ? [head] : head;
  const out = [head, ...resp.events.map(messageToDict)];
  if (resp.complete) out.push(messageToDict(resp.complete));
  return out;
}

function truthyKw(v: unknown): boolean {
  return v === true || v === 1 || v === 'true' || v === 'True' || v === 'yes';
}

function errorResult(fun: string, message: string, asList: boolean): unknown {
  if (fun === 'asterisk.manager_action') {
    const r = { Response: 'Error', Message: message };
    return asList ? [r] : r;
  }
  return { error: message };
}

// ------------------------------------------------------------------ file helpers

/** Resolve `p` inside one of `dirs` (realpath: no ../, no symlink escape). Throws JobError. */
export async function confinePath(p: unknown, dirs: string[]): Promise<string> {
  if (typeof p !== 'string' || !p) throw new JobError('a file path is required');
  if (p.includes('\0')) throw new JobError('refused: the file path contains NUL');
  if (p.length > 4096) throw new JobError('refused: the file path is too long');
  const roots: string[] = [];
  for (const d of dirs) {
    try { roots.push(await fs.realpath(d)); } catch { /* a missing dir confines nothing */ }
  }
  if (roots.length === 0) throw new JobError(`no recording directory exists on this agent (odoo.recordingDirs: ${dirs.join(', ')})`);
  const candidate = path.isAbsolute(p) ? p : path.join(roots[0]!, p);
  let real: string;
  try {
    real = await fs.realpath(candidate);
  } catch {
    throw new JobError(`file not found: ${p}`);
  }
  for (const r of roots) {
    if (real.startsWith(r.endsWith(path.sep) ? r : r + path.sep)) return real;
  }
  throw new JobError(`refused: ${p} is outside the recording directories (odoo.recordingDirs)`);
}

async function findExecutable(name: string, explicit?: string): Promise<string | null> {
  if (explicit) {
    try { await fs.access(explicit, fsc.X_OK); return explicit; } catch { return null; }
  }
  for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(':')) {
    if (!dir) continue;
    const f = path.join(dir, name);
    try { await fs.access(f, fsc.X_OK); return f; } catch { /* next */ }
  }
  return null;
}

function runToBuffer(cmd: string, args: string[], maxBytes: number, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], shell: false });
    const chunks: Buffer[] = [];
    let size = 0;
    let err = '';
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new JobError(`${path.basename(cmd)} did not finish within ${timeoutMs} ms`)); }, timeoutMs);
    child.stdout.on('data', (c: Buffer) => {
      size += c.length;
      if (size > maxBytes) { child.kill('SIGKILL'); clearTimeout(timer); reject(new JobError(`converted file is larger than ${maxBytes} bytes (odoo.recordingMaxBytes)`)); return; }
      chunks.push(c);
    });
    child.stderr.on('data', (c: Buffer) => { if (err.length < 2000) err += c.toString(); });
    child.on('error', (e) => { clearTimeout(timer); reject(new JobError(`cannot run ${cmd}: ${e.message}`)); });
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(Buffer.concat(chunks));
      else reject(new JobError(`${path.basename(cmd)} failed (exit ${code}): ${err.trim().slice(-300)}`));
    });
  });
}

function pathArg(args: unknown): unknown {
  if (Array.isArray(args)) return args[0];
  if (args && typeof args === 'object') {
    const o = args as Record<string, unknown>;
    return o.file_path ?? o.path ?? o.file;
  }
  return args;
}

// ------------------------------------------------------------------ ban helpers

function banToDict(b: BanRecord): Record<string, unknown> {
  const now = Date.now();
  return {
    address: b.target,
    family: b.family,
    is_network: b.isNetwork,
    timeout: b.expiresAt === null ? 0 : Math.max(0, Math.round((b.expiresAt - now) / 1000)),
    expires_at: b.expiresAt === null ? false : new Date(b.expiresAt).toISOString(),
    created_at: new Date(b.createdAt).toISOString(),
    packets: 0,
    bytes: 0,
    rule: b.rule,
    source: b.source,
    count: b.count,
    comment: b.reason,
  };
}

function targetsOf(args: unknown): string[] {
  const list = Array.isArray(args) ? (args as unknown[]).flat(2) : [args];
  const out: string[] = [];
  for (const x of list) {
    if (typeof x === 'string') out.push(...x.split(/[\s,]+/).filter(Boolean));
    else if (x && typeof x === 'object') {
      const o = x as Record<string, unknown>;
      const t = o.address ?? o.target ?? o.ip;
      if (typeof t === 'string') out.push(t);
    }
  }
  if (out.length === 0) throw new JobError('no address given');
  if (out.length > 10_000) throw new JobError('too many addresses in one job (max 10000)');
  return out;
}

function banErrorText(e: unknown): string {
  if (e instanceof AllowListedError || e instanceof InvalidTargetError) return e.message;
  return `ban failed: ${(e as Error).message}`;
}

/** Access rules as the old Odoo access_list rows or {allow: [], deny: []}. */
function parseAccessRules(args: unknown): { allow: string[]; deny: string[] } {
  const a = Array.isArray(args) && args.length === 1 && Array.isArray(args[0]) ? args[0] : args;
  if (a && typeof a === 'object' && !Array.isArray(a)) {
    const o = a as Record<string, unknown>;
    const strs = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);
    return { allow: strs(o.allow), deny: strs(o.deny) };
  }
  if (!Array.isArray(a)) throw new JobError('update_access_rules expects a list of rules or {allow: [...], deny: [...]}');
  const allow: string[] = [];
  const deny: string[] = [];
  for (const r of a) {
    if (!r || typeof r !== 'object') continue;
    const o = r as Record<string, unknown>;
    if (o.is_enabled === false) continue;
    const addr = typeof o.address === 'string' ? o.address.trim() : '';
    if (!addr) continue;
    let target = addr;
    if (!addr.includes('/') && o.address_type === 'net' && typeof o.netmask === 'string' && o.netmask) {
      const nm = o.netmask.trim();
      target = /^\d+$/.test(nm) ? `${addr}/${nm}` : `${addr}/${maskToPrefix(nm)}`;
    }
    if (o.access_type === 'deny') deny.push(target); else if (o.access_type === 'allow') allow.push(target);
  }
  return { allow, deny };
}

function maskToPrefix(mask: string): number {
  const parts = mask.split('.').map(Number);
  if (parts.length !== 4 || parts.some((x) => !Number.isInteger(x) || x < 0 || x > 255)) throw new JobError(`bad netmask ${mask}`);
  const bits = parts.reduce((acc, x) => acc * 256 + x, 0).toString(2).padStart(32, '0');
  if (!/^1*0*$/.test(bits)) throw new JobError(`bad netmask ${mask}`);
  return bits.indexOf('0') === -1 ? 32 : bits.indexOf('0');
}

// ------------------------------------------------------------------ the functions

const ping: JobFunction = async () => true;

const reloadConfig: JobFunction = async (_a, _k, ctx) => {
  await ctx.reloadConfig();
  return true;
};

const managerAction: JobFunction = async (args, kwargs, ctx) => {
  const asList = truthyKw(kwargs.as_list);
  const action = Array.isArray(args) && args.length === 1 ? args[0] : args;
  if (action && typeof action === 'object' && !Array.isArray(action)) {
    const a = (action as Record<string, unknown>).Action ?? (action as Record<string, unknown>).action;
    if (typeof a === 'string' && a.toLowerCase() === 'reloadevents') {
      await ctx.reloadEvents();
      return asList ? [{ Response: true }] : { Response: true };
    }
  }
  const fields = toActionFields(action, ctx.config);
  const kwTimeout = typeof kwargs.timeout === 'number' && kwargs.timeout > 0 ? kwargs.timeout * 1000 : undefined;
  const resp = await ctx.ami.action(fields, { timeoutMs: Math.min(kwTimeout ?? ctx.timeoutMs, ctx.timeoutMs) });
  return responseToResult(resp, asList);
};

const getFile: JobFunction = async (args, kwargs, ctx) => {
  const p = pathArg(args);
  const real = await confinePath(p, ctx.config.recordingDirs);
  const st = await fs.stat(real);
  if (!st.isFile()) throw new JobError(`${String(p)} is not a regular file`);
  if (st.size > ctx.config.recordingMaxBytes) {
    throw new JobError(`${String(p)} is ${st.size} bytes, more than odoo.recordingMaxBytes (${ctx.config.recordingMaxBytes})`);
  }
  const base: Record<string, unknown> = { file_path: p };
  if (kwargs.recordings_access !== undefined) base.recording_access = kwargs.recordings_access;
  if (kwargs.recordings_access_url !== undefined) base.recording_access_url = kwargs.recordings_access_url;
  if (kwargs.file_format === 'mp3' && !real.toLowerCase().endsWith('.mp3')) {
    const bitrate = Number(kwargs.mp3_bitrate ?? 96);
    const quality = Number(kwargs.mp3_quality ?? 4);
    const br = Number.isFinite(bitrate) && bitrate >= 8 && bitrate <= 320 ? Math.round(bitrate) : 96;
    const q = Number.isFinite(quality) && quality >= 0 && quality <= 9 ? Math.round(quality) : 4;
    const lame = await findExecutable('lame', ctx.config.lamePath);
    const ffmpeg = lame ? null : await findExecutable('ffmpeg', ctx.config.ffmpegPath);
    let data: Buffer;
    if (lame) data = await runToBuffer(lame, ['--quiet', '-b', String(br), '-q', String(q), real, '-'], ctx.config.recordingMaxBytes, ctx.timeoutMs);
    else if (ffmpeg) data = await runToBuffer(ffmpeg, ['-nostdin', '-loglevel', 'error', '-i', real, '-codec:a', 'libmp3lame', '-b:a', `${br}k`, '-q:a', String(q), '-f', 'mp3', 'pipe:1'], ctx.config.recordingMaxBytes, ctx.timeoutMs);
    else throw new JobError('mp3 conversion was requested but neither lame nor ffmpeg is installed on the agent host: install one (apt install lame) or turn off mp3 conversion in Odoo');
    return { ...base, file_data: data.toString('base64'), file_name: path.basename(real).replace(/\.[^.]*$/, '') + '.mp3' };
  }
  const data = await fs.readFile(real);
  return { ...base, file_data: data.toString('base64'), file_name: path.basename(real) };
};

const deleteFile: JobFunction = async (args, _k, ctx) => {
  const real = await confinePath(pathArg(args), ctx.config.recordingDirs);
  const st = await fs.lstat(real);
  if (!st.isFile()) throw new JobError(`${String(pathArg(args))} is not a regular file`);
  await fs.unlink(real);
  return true;
};

const sipPeers: JobFunction = async (_a, _k, ctx) => {
  const timeoutMs = Math.min(10_000, ctx.timeoutMs);
  const [pj, sip] = await Promise.allSettled([
    ctx.ami.action({ Action: 'PJSIPShowEndpoints' }, { timeoutMs }),
    ctx.ami.action({ Action: 'SIPpeers' }, { timeoutMs }),
  ]);
  const peers: Record<string, unknown>[] = [];
  let any = false;
  for (const r of [pj, sip]) {
    if (r.status !== 'fulfilled') continue;
    if (!/^success$/i.test(r.value.response.get('Response') ?? '')) continue;
    any = true;
    peers.push(...r.value.events.map(messageToDict));
  }
  if (!any) {
    const why = [pj, sip].map((r) => (r.status === 'rejected' ? String((r.reason as Error)?.message ?? r.reason) : r.value.response.get('Message') ?? 'error'));
    throw new JobError(`neither PJSIPShowEndpoints nor SIPpeers worked: ${why.join('; ')}`);
  }
  return peers;
};

const banFn: JobFunction = async (args, kwargs, ctx) => {
  const list = Array.isArray(args) ? args : [args];
  const results: Record<string, unknown>[] = [];
  for (const x of list) {
    let target: unknown = x;
    let duration: unknown = kwargs.duration ?? kwargs.timeout;
    let reason: unknown = kwargs.reason ?? kwargs.comment;
    if (x && typeof x === 'object') {
      const o = x as Record<string, unknown>;
      target = o.address ?? o.target ?? o.ip;
      duration = o.duration ?? o.timeout ?? duration;
      reason = o.reason ?? o.comment ?? reason;
    }
    if (typeof target !== 'string' || !target) { results.push({ address: target ?? null, error: 'no address given' }); continue; }
    const durationSec = typeof duration === 'number' && duration > 0 ? duration : typeof duration === 'string' && /^\d+$/.test(duration) && Number(duration) > 0 ? Number(duration) : null;
    try {
      const rec = await ctx.bans.ban({ target, durationSec, reason: typeof reason === 'string' ? reason.slice(0, 200) : 'banned from Odoo', source: 'odoo' });
      results.push({ ...banToDict(rec), banned: true });
    } catch (e) {
      results.push({ address: target, banned: false, error: banErrorText(e) });
    }
  }
  return results;
};

const unbanFn: JobFunction = async (args, _k, ctx) => {
  const results: Record<string, unknown>[] = [];
  for (const t of targetsOf(args)) {
    try {
      results.push({ address: t, unbanned: await ctx.bans.unban(t) });
    } catch (e) {
      results.push({ address: t, unbanned: false, error: banErrorText(e) });
    }
  }
  return results;
};

const getBanned: JobFunction = async (_a, _k, ctx) => ctx.bans.listBans().map(banToDict);

const updateAccessRules: JobFunction = async (args, _k, ctx) => {
  const rules = parseAccessRules(args);
  await ctx.bans.replaceAccessRules(rules);
  return { allow: rules.allow.length, deny: rules.deny.length };
};

const FUNCTIONS = new Map<string, JobFunction>([
  ['test.ping', ping],
  ['agent.reload_config', reloadConfig],
  ['agent_reload_config', reloadConfig],
  ['asterisk.manager_action', managerAction],
  ['recording.get_file', getFile],
  ['file.delete', deleteFile],
  ['sip.get_peers', sipPeers],
  ['security.ban', banFn],
  ['security.unban', unbanFn],
  ['security.get_banned', getBanned],
  ['security.update_access_rules', updateAccessRules],
  ['get_banned', getBanned],
  ['asterisk.get_banned', getBanned],
  ['remove_banned_addresses', unbanFn],
  ['asterisk.remove_banned_addresses', unbanFn],
  ['update_access_rules', updateAccessRules],
  ['asterisk.update_access_rules', updateAccessRules],
]);
const BUILT_IN = new Set(FUNCTIONS.keys());

/** Every job function: the built-in ones above plus those other stages registered. */
export const JOB_FUNCTIONS: ReadonlyMap<string, JobFunction> = FUNCTIONS;

/**
 * Extension point for other stages (console, Asterisk config sync): adds (or replaces a
 * previously registered) job function. Built-in names cannot be replaced.
 */
export function registerJobFunction(name: string, fn: JobFunction): void {
  if (BUILT_IN.has(name)) throw new Error(`job function ${name} is built in and cannot be replaced`);
  FUNCTIONS.set(name, fn);
}

// ------------------------------------------------------------------ the runner

export interface JobRunnerOptions {
  ctx: Omit<JobContext, 'timeoutMs'>;
  sink: JobResultSink;
  metrics?: OdooMetrics | null;
}

export type SubmitResult = { ok: true; id: string } | { ok: false; reason: 'queue_full' | 'closed' };

export class JobRunner {
  private readonly queue: Job[] = [];
  private qHead = 0;
  private running = 0;
  private closed = false;
  private readonly idle: Array<() => void> = [];
  readonly counters = { accepted: 0, completed: 0, failed: 0 };

  constructor(private readonly opts: JobRunnerOptions) {}

  queued(): number { return this.queue.length - this.qHead; }
  active(): number { return this.running; }

  submit(req: JobRequest): SubmitResult {
    if (this.closed) return { ok: false, reason: 'closed' };
    if (this.queued() >= this.opts.ctx.config.jobQueueMax) {
      this.opts.metrics?.jobsRejected.inc({ reason: 'queue_full' });
      return { ok: false, reason: 'queue_full' };
    }
    const job: Job = { ...req, id: randomUUID(), acceptedAt: Date.now() };
    this.queue.push(job);
    this.counters.accepted++;
    this.opts.metrics?.jobsAccepted.inc();
    if (this.running < this.opts.ctx.config.jobConcurrency) setImmediate(() => this.pump());
    return { ok: true, id: job.id };
  }

  private next(): Job | undefined {
    if (this.qHead >= this.queue.length) return undefined;
    const j = this.queue[this.qHead++];
    if (this.qHead > 1024 && this.qHead * 2 > this.queue.length) { this.queue.splice(0, this.qHead); this.qHead = 0; }
    return j;
  }

  private pump(): void {
    while (this.running < this.opts.ctx.config.jobConcurrency) {
      const job = this.next();
      if (!job) break;
      this.running++;
      void this.run(job).finally(() => {
        this.running--;
        if (this.queued() > 0) this.pump();
        else if (this.running === 0) for (const f of this.idle.splice(0)) f();
      });
    }
  }

  private async run(job: Job): Promise<void> {
    const { config, log } = this.opts.ctx;
    const fn = JOB_FUNCTIONS.get(job.fun);
    const funLabel = fn ? job.fun : 'unknown';
    const kwargs = job.kwargs && typeof job.kwargs === 'object' && !Array.isArray(job.kwargs) ? job.kwargs : {};
    const asList = truthyKw(kwargs.as_list);
    let result: unknown;
    let error: string | null = null;
    if (!fn) {
      error = `unknown function ${JSON.stringify(String(job.fun).slice(0, 80))} (this agent supports: ${[...JOB_FUNCTIONS.keys()].join(', ')})`;
    } else {
      let timer: NodeJS.Timeout | undefined;
      try {
        result = await Promise.race([
          fn(job.args, kwargs, { ...this.opts.ctx, timeoutMs: config.jobTimeoutMs }),
          new Promise((_, reject) => { timer = setTimeout(() => reject(new JobError(`job ${job.fun} timed out after ${config.jobTimeoutMs} ms`)), config.jobTimeoutMs); }),
        ]);
      } catch (e) {
        error = e instanceof JobError ? e.message : `${job.fun} failed: ${(e as Error)?.message ?? String(e)}`;
      } finally {
        if (timer) clearTimeout(timer);
      }
    }
    if (error !== null) {
      this.counters.failed++;
      this.opts.metrics?.jobsCompleted.inc({ fun: funLabel, outcome: 'error' });
      log.warn({ jobId: job.id, fun: String(job.fun).slice(0, 80), err: error }, 'Odoo job failed');
      result = errorResult(job.fun, error, asList);
      const uid = typeof job.res_notify_uid === 'number' ? job.res_notify_uid : null;
      if (uid !== null) this.opts.sink.notify(job, uid, job.res_notify_title || 'PBX', error);
    } else {
      this.counters.completed++;
      this.opts.metrics?.jobsCompleted.inc({ fun: funLabel, outcome: 'ok' });
    }
    if (job.res_model && job.res_method) {
      const pb = job.pass_back && typeof job.pass_back === 'object' && !Array.isArray(job.pass_back) ? job.pass_back : {};
      this.opts.sink.result(job, job.res_model, job.res_method, result, pb);
    }
  }

  /** resolves when no job is queued or running */
  whenIdle(): Promise<void> {
    if (this.running === 0 && this.queued() === 0) return Promise.resolve();
    return new Promise((r) => this.idle.push(r));
  }

  async close(graceMs = 5000): Promise<void> {
    this.closed = true;
    const dropped = this.queued();
    this.queue.length = 0;
    this.qHead = 0;
    if (dropped) this.opts.ctx.log.warn({ dropped }, 'agent stopping: queued Odoo jobs dropped');
    if (this.running > 0) await Promise.race([this.whenIdle(), new Promise((r) => setTimeout(r, graceMs).unref())]);
  }
}
