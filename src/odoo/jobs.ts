/**
 * Jobs Odoo sends to the agent (POST /app/asterisk_plus/agent), run in the background with a
 * bounded queue, a concurrency cap and a per-job timeout. Each result goes back to
 * res_model.res_method(result, **pass_back); job errors are also notified to res_notify_uid.
 */
import { randomUUID } from 'node:crypto';
import { toJobFailure } from '../common/errors.js';
import { BoundedQueue } from '../common/bounded-queue.js';
import { ByteBudget, type Reservation } from './byte-budget.js';
import { managerAction } from './job-ami.js';
import { getSipPeers } from './job-sip-peers.js';
import { deleteFile, getFile } from './job-files.js';
import { JobError, JobNotice, truthyKw, type JobContext, type JobFunction } from './job-function.js';
import { ban, getBanned, unban, updateAccessRules } from './job-security.js';
import { blobsOf } from './json-body.js';
import { bound, successNotice } from './notify.js';
import type { OdooMetrics } from './metrics.js';

export { JobError, type AmiPort, type JobContext, type JobFunction } from './job-function.js';
export { messageToDict } from './job-ami.js';

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
  /** about what the request holds in memory (its JSON size), counted against odoo.jobQueueMaxBytes */
  bytes: number;
}

export interface JobResultSink {
  /**
   * deliver res_model.res_method(result, **kwargs); a promise when the result holds a file
   * (Base64Blob): the file and the job's memory reservation are released once it settles
   */
  result(job: Job, model: string, method: string, result: unknown, kwargs: Record<string, unknown>): unknown;
  /** a notice to the user who started the job (`res_notify_uid`): its outcome, a warning when it failed */
  notify(job: Job, uid: number, title: string, message: string, warning: boolean): void;
}

function errorResult(fun: string, message: string, code: string, asList: boolean): unknown {
  // an AMI action's failure keeps the shape of an AMI response (what the module reads of it)
  if (fun === 'asterisk.manager_action') {
    const r = { Response: 'Error', Message: message };
    return asList ? [r] : r;
  }
  return { error: message, code };
}

// ------------------------------------------------------------------ the registry

const ping: JobFunction = async () => true;

/** The file and the settings from Odoo again; the user who pressed Reload Config reads what applied and what waits for a restart. */
const reloadConfig: JobFunction = async (_a, _k, ctx) => {
  const r = (await ctx.reloadConfig()) as { rules?: unknown; applied?: unknown; restartNeeded?: unknown } | undefined;
  if (!r || typeof r !== 'object' || !Array.isArray(r.applied) || !Array.isArray(r.restartNeeded)) return true;
  return {
    ...(typeof r.rules === 'number' ? { rules: r.rules } : {}),
    applied: r.applied.length > 0 ? r.applied.join(', ') : 'nothing changed',
    restart_needed: r.restartNeeded.length > 0 ? r.restartNeeded.join('; ') : 'none',
  };
};

/**
 * The module's transcription (OpenAI) is not done here: a recording of a phone call is not sent to
 * an outside service by the PBX's guard, and no local engine is shipped. A clear notice, not an
 * error toast; the API key the job carries is neither kept nor logged.
 */
const getTranscript: JobFunction = async (args) => {
  const file = typeof args === 'string' ? args : Array.isArray(args) && typeof args[0] === 'string' ? args[0] : '';
  const name = file.split('/').pop()?.slice(0, 120) ?? '';
  return new JobNotice(
    { transcript: null, available: false },
    `call transcription is not available on this agent (pbx-guardian sends no recording to an outside service)${name ? `; ${name} was not transcribed` : ''}`,
  );
};

/** The built-in job functions: every bridge's registry starts with these. */
export const JOB_FUNCTIONS: ReadonlyMap<string, JobFunction> = new Map<string, JobFunction>([
  ['test.ping', ping],
  ['recording.get_transcript', getTranscript],
  ['agent.reload_config', reloadConfig],
  ['agent_reload_config', reloadConfig],
  ['asterisk.manager_action', managerAction],
  ['recording.get_file', getFile],
  ['file.delete', deleteFile],
  ['sip.get_peers', getSipPeers],
  ['security.ban', ban],
  ['security.unban', unban],
  ['security.get_banned', getBanned],
  ['security.update_access_rules', updateAccessRules],
  ['get_banned', getBanned],
  ['asterisk.get_banned', getBanned],
  ['remove_banned_addresses', unban],
  ['asterisk.remove_banned_addresses', unban],
  ['update_access_rules', updateAccessRules],
  ['asterisk.update_access_rules', updateAccessRules],
]);

/**
 * The job functions one bridge runs: the built-in ones plus those other stages (console, Asterisk
 * config sync) added to it. Owned by the bridge, so two daemons in one process never run each
 * other's functions.
 */
export class JobRegistry {
  private readonly fns = new Map(JOB_FUNCTIONS);

  /** Adds (or replaces a previously added) job function; a built-in name cannot be replaced. */
  register(name: string, fn: JobFunction): void {
    if (JOB_FUNCTIONS.has(name)) throw new Error(`job function ${name} is built in and cannot be replaced`);
    this.fns.set(name, fn);
  }

  get(name: string): JobFunction | undefined {
    return this.fns.get(name);
  }

  names(): string[] {
    return [...this.fns.keys()];
  }
}

// ------------------------------------------------------------------ the runner

function disposeResult(result: unknown): void {
  for (const b of blobsOf(result)) void b.close();
}

function requestBytes(req: JobRequest): number {
  return JSON.stringify([req.fun, req.args, req.kwargs, req.pass_back, req.res_model, req.res_method, req.res_notify_title])?.length ?? 0;
}

export interface JobRunnerOptions {
  ctx: Omit<JobContext, 'timeoutMs' | 'hold'>;
  sink: JobResultSink;
  metrics?: OdooMetrics | null;
  /** what jobs may call (default: the built-in functions only) */
  functions?: JobRegistry;
}

export type SubmitResult = { ok: true; id: string } | { ok: false; reason: 'queue_full' | 'closed' };

export class JobRunner {
  /** odoo.jobQueueMax: a full queue answers 503 */
  private readonly queue: BoundedQueue<Job>;
  private running = 0;
  private closed = false;
  private readonly idle: Array<() => void> = [];
  /** request bytes of the jobs queued or running */
  private requestBytes = 0;
  /** what running jobs buffer and results hold until delivered (odoo.jobMemoryMaxBytes) */
  readonly memory: ByteBudget;
  readonly counters = { accepted: 0, completed: 0, failed: 0 };
  readonly functions: JobRegistry;

  constructor(private readonly opts: JobRunnerOptions) {
    this.memory = new ByteBudget(opts.ctx.config.jobMemoryMaxBytes);
    this.queue = new BoundedQueue<Job>(opts.ctx.config.jobQueueMax);
    this.functions = opts.functions ?? new JobRegistry();
  }

  queued(): number {
    return this.queue.length;
  }
  active(): number {
    return this.running;
  }

  submit(req: JobRequest): SubmitResult {
    if (this.closed) return { ok: false, reason: 'closed' };
    if (this.queue.isFull) {
      this.opts.metrics?.jobsRejected.inc({ reason: 'queue_full' });
      return { ok: false, reason: 'queue_full' };
    }
    const bytes = requestBytes(req);
    if (this.requestBytes + bytes > this.opts.ctx.config.jobQueueMaxBytes) {
      this.opts.metrics?.jobsRejected.inc({ reason: 'queue_bytes' });
      return { ok: false, reason: 'queue_full' };
    }
    const job: Job = { ...req, id: randomUUID(), acceptedAt: Date.now(), bytes };
    this.requestBytes += bytes;
    this.queue.push(job);
    this.counters.accepted++;
    this.opts.metrics?.jobsAccepted.inc();
    if (this.running < this.opts.ctx.config.jobConcurrency) setImmediate(() => this.pump());
    return { ok: true, id: job.id };
  }

  private pump(): void {
    while (this.running < this.opts.ctx.config.jobConcurrency) {
      const job = this.queue.shift();
      if (!job) break;
      this.running++;
      void this.run(job).finally(() => {
        this.running--;
        this.requestBytes -= job.bytes;
        if (this.queued() > 0) this.pump();
        else if (this.running === 0) for (const f of this.idle.splice(0)) f();
      });
    }
  }

  private async run(job: Job): Promise<void> {
    const { config, log } = this.opts.ctx;
    const fn = this.functions.get(job.fun);
    const funLabel = fn ? job.fun : 'unknown';
    const kwargs = job.kwargs && typeof job.kwargs === 'object' && !Array.isArray(job.kwargs) ? job.kwargs : {};
    const asList = truthyKw(kwargs.as_list);
    let result: unknown;
    let error: string | null = null;
    let code = 'INTERNAL';
    const holds: Reservation[] = [];
    // settles when the job function is done with the memory it reserved
    let fnDone: Promise<unknown> = Promise.resolve();
    if (!fn) {
      error = `unknown function ${JSON.stringify(String(job.fun).slice(0, 80))} (this agent supports: ${this.functions.names().join(', ')})`;
      code = 'UNKNOWN_FUNCTION';
    } else {
      let timer: NodeJS.Timeout | undefined;
      const started = Date.now();
      const hold = async (bytes: number, what: string) => {
        const r = await this.memory.acquire(bytes, Math.max(1, config.jobTimeoutMs - (Date.now() - started)), what);
        holds.push(r);
        return r;
      };
      const work = Promise.resolve().then(() => fn(job.args, kwargs, { ...this.opts.ctx, timeoutMs: config.jobTimeoutMs, hold }));
      // a job that timed out may still return an open file later: close it then
      let timedOut = false;
      fnDone = work.then(
        (late) => {
          if (timedOut) disposeResult(late);
        },
        () => undefined,
      );
      try {
        result = await Promise.race([
          work,
          new Promise((_, reject) => {
            timer = setTimeout(() => {
              timedOut = true;
              reject(new JobError(`job ${job.fun} timed out after ${config.jobTimeoutMs} ms`));
            }, config.jobTimeoutMs);
          }),
        ]);
      } catch (e) {
        ({ error, code } = toJobFailure(e, String(job.fun)));
      } finally {
        if (timer) clearTimeout(timer);
      }
    }
    const uid = typeof job.res_notify_uid === 'number' ? job.res_notify_uid : null;
    const title = job.res_notify_title || 'PBX';
    if (error !== null) {
      this.counters.failed++;
      this.opts.metrics?.jobsCompleted.inc({ fun: funLabel, outcome: 'error' });
      log.warn({ jobId: job.id, fun: String(job.fun).slice(0, 80), err: error }, 'Odoo job failed');
      result = errorResult(job.fun, error, code, asList);
      if (uid !== null) this.opts.sink.notify(job, uid, title, bound(error), true);
    } else {
      this.counters.completed++;
      this.opts.metrics?.jobsCompleted.inc({ fun: funLabel, outcome: 'ok' });
      // as the earlier agents did: the outcome reaches the user whether or not res_model takes it too
      let notice: string | null = null;
      if (result instanceof JobNotice) ({ result, notice } = result);
      if (uid !== null)
        this.opts.sink.notify(job, uid, title, notice === null ? successNotice(String(job.fun), result) : bound(`${job.fun}: ${notice}`), false);
    }
    let delivered: unknown;
    if (job.res_model && job.res_method) {
      const pb = job.pass_back && typeof job.pass_back === 'object' && !Array.isArray(job.pass_back) ? job.pass_back : {};
      delivered = this.opts.sink.result(job, job.res_model, job.res_method, result, pb);
    }
    const ok = error === null;
    const finished = ok
      ? Promise.resolve(delivered)
          .catch(() => undefined)
          .then(() => disposeResult(result))
      : fnDone;
    void finished.finally(() => {
      for (const h of holds) h.release();
    });
  }

  /** resolves when no job is queued or running */
  whenIdle(): Promise<void> {
    if (this.running === 0 && this.queued() === 0) return Promise.resolve();
    return new Promise((r) => this.idle.push(r));
  }

  async close(graceMs = 5000): Promise<void> {
    this.closed = true;
    const dropped = this.queue.clear();
    if (dropped) this.opts.ctx.log.warn({ dropped }, 'agent stopping: queued Odoo jobs dropped');
    if (this.running > 0) await Promise.race([this.whenIdle(), new Promise((r) => setTimeout(r, graceMs).unref())]);
  }
}
