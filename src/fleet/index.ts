/**
 * The fleet stage (docs/fleet.md): the guardian as a CrowdSec Local API machine (it pushes its
 * bans) and bouncer (it enforces the fleet's decisions in sets of its own).
 */
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { Database } from 'better-sqlite3';
import { createBackend, groupFirewallConfig, RemoteSet, type FirewallBackend, type FirewallConfig, type FirewallTarget } from '../firewall/index.js';
import type { Subscriber } from '../guard/index.js';
import { parseDuration } from '../common/duration.js';
import { FleetBouncer } from './bouncer.js';
import type { CrowdsecConfig } from './config-schema.js';
import type { FleetJudge } from './decision.js';
import { LapiClient } from './lapi.js';
import { startFleetMachine, type FleetMachine } from './machine.js';
import type { FleetHealth } from './types.js';

export { CrowdsecConfigSchema, crowdsecConfigErrors, type CrowdsecConfig } from './config-schema.js';
export type { FleetHealth, MachineHealth } from './types.js';
export type { BouncerHealth } from './bouncer.js';

/** the set group of the fleet's decisions: table inet pbx_guardian_fleet, ipsets pbxg-fleet-* */
export const FLEET_GROUP = 'fleet';

/** The machine side as the fleet holds it (src/fleet/machine.ts builds it). */
export type MachineHandle = FleetMachine;

export interface FleetDeps {
  config: CrowdsecConfig;
  firewall: FirewallConfig;
  watchdogIntervalMs: number;
  judge: FleetJudge;
  /** the guard's allow-list now (the fleet's sets get it at their start) */
  allow: () => FirewallTarget[];
  /** the state database (the machine's durable queue) */
  db: Database;
  /** the machine to use instead of building one (tests) */
  machine?: MachineHandle | null;
  logger: Logger;
  registry?: Registry;
  fetch?: typeof fetch;
  /** the fleet set's backend (tests) */
  backend?: FirewallBackend;
  now?: () => number;
}

export class Fleet {
  readonly set: RemoteSet | null;
  readonly bouncer: FleetBouncer | null;
  private readonly machine: MachineHandle | null;

  constructor(private readonly deps: FleetDeps) {
    const { config, logger } = deps;
    this.machine =
      deps.machine !== undefined
        ? deps.machine
        : config.machine.enabled
          ? startFleetMachine({
              config,
              db: deps.db,
              logger: logger.child({ stage: 'fleet-machine' }),
              registry: deps.registry,
              now: deps.now,
              fetch: deps.fetch,
            })
          : null;
    if (!config.bouncer.enabled) {
      this.set = this.bouncer = null;
      return;
    }
    const set = (this.set = new RemoteSet({
      group: FLEET_GROUP,
      firewall: deps.firewall,
      watchdogIntervalMs: deps.watchdogIntervalMs,
      logger: logger.child({ stage: 'fleet-set' }),
      backend: deps.backend,
      now: deps.now,
    }));
    const client = new LapiClient({ url: config.url, timeoutMs: config.timeoutMs, apiKey: config.bouncer.apiKey, fetch: deps.fetch });
    this.bouncer = new FleetBouncer({
      stream: (startup) => client.stream(startup, config.bouncer.maxResponseBytes),
      set,
      judge: deps.judge,
      intervalMs: (parseDuration(config.bouncer.interval) ?? 0.5) * 1000,
      maxDecisions: config.bouncer.maxDecisions,
      maxBackoffMs: config.maxBackoffMs,
      logger: logger.child({ stage: 'fleet-bouncer' }),
      registry: deps.registry,
      now: deps.now,
      // the kernel sets are made once the first full answer is in: one restore, in chunks
      onFirstSync: () => set.start(deps.allow()),
    });
  }

  /** the machine's subscriber (it receives the guard's ban decisions), or null */
  get subscriber(): Subscriber | null {
    return this.machine?.subscriber ?? null;
  }

  /** Starts polling; `localBackend` is the local backend's name (the fleet's sets are of the same kind). */
  async start(localBackend: string): Promise<void> {
    if (!this.set || !this.bouncer) return;
    await this.set.open(localBackend);
    this.bouncer.start();
  }

  /** the allow-list changed: the fleet's kernel allow set follows, and held decisions are judged again */
  async setAllow(targets: FirewallTarget[]): Promise<void> {
    this.bouncer?.rejudge();
    await this.set?.setAllow(targets);
  }

  async pause(reason: string): Promise<void> {
    await this.set?.pause(reason);
  }

  async resume(): Promise<void> {
    await this.set?.resume();
  }

  health(): FleetHealth {
    return {
      url: this.deps.config.url,
      machine: this.machine?.health() ?? null,
      bouncer: this.bouncer && this.set ? { ...this.bouncer.health(), set: this.set.health() } : null,
    };
  }

  async stop(): Promise<void> {
    await this.bouncer?.stop();
    await this.set?.stop();
    await this.machine?.stop();
  }
}

/** null when neither the machine nor the bouncer is enabled */
export function createFleet(deps: FleetDeps): Fleet | null {
  return deps.config.machine.enabled || deps.config.bouncer.enabled ? new Fleet(deps) : null;
}

/** pbx-guardian flush with no daemon running: the fleet's table / sets go too. */
export async function flushFleetSets(firewall: FirewallConfig, logger: Logger): Promise<void> {
  if (firewall.backend === 'memory') return;
  const backend = await createBackend(groupFirewallConfig(firewall, FLEET_GROUP), logger);
  await backend.flush();
  await backend.close();
}
