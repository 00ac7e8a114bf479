/** What a job function is given and how it reports a failure. */
import type { Logger } from 'pino';
import type { AmiPort } from '../ami/types.js';
import type { ActionPolicy } from '../ami/policy.js';
import type { BanControl } from '../guard/types.js';
import type { Reservation } from './byte-budget.js';
import type { OdooConfig } from './config.js';
import type { OdooCaller } from './rpc.js';

export type { AmiPort };

export { JobError } from './job-error.js';

export interface JobContext {
  ami: AmiPort;
  bans: BanControl;
  config: OdooConfig;
  /** the one AMI action policy (src/ami/policy.ts), shared with REST and the console */
  actionPolicy: ActionPolicy;
  log: Logger;
  reloadConfig: () => Promise<unknown> | unknown;
  reloadEvents: () => Promise<unknown>;
  /** calls into Odoo (sip.get_peers reads the server's security token) */
  rpc: OdooCaller;
  /** config sync, to apply what Odoo sends (null: asteriskConfig.enabled is false) */
  configSync: ConfigSyncPort | null;
  timeoutMs: number;
  /**
   * Reserves memory the job is about to buffer from the jobs' budget (odoo.jobMemoryMaxBytes);
   * waits in turn, rejects with a JobError. Released by the runner once the result is delivered.
   */
  hold(bytes: number, what: string): Promise<Reservation>;
}

/** The part of config sync this job uses (AsteriskConfigFiles; null when asteriskConfig is off). */
export interface ConfigSyncPort {
  write(
    name: string,
    content: string,
  ): Promise<{ name: string; bytes: number; changed: boolean; backup: string | null; include: { base: string; action: string } | null }>;
  reload(module?: string): Promise<{ module: string | null; response: string; message: string }>;
}

export type JobFunction = (args: unknown, kwargs: Record<string, unknown>, ctx: JobContext) => Promise<unknown>;

/** A kwargs flag as Odoo sends it (true, 1, 'true', 'True', 'yes'). */
export function truthyKw(v: unknown): boolean {
  return v === true || v === 1 || v === 'true' || v === 'True' || v === 'yes';
}

/**
 * A job's result with the notice its user reads instead of "<fun>: OK" (see notify.ts), for an
 * outcome that is not an error but not what was asked either.
 */
export class JobNotice {
  constructor(
    readonly result: unknown,
    readonly notice: string,
  ) {}
}
