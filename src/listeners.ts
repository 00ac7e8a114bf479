/**
 * The daemon's listeners, bound in one step before the firewall is touched (see startDaemon): the
 * admin socket, metrics, REST, and the Odoo bridge's job endpoint and FastAGI server. A listener
 * that cannot bind throws a ListenError naming it, its address and its config keys; each one bound
 * is a component of the daemon's lifecycle (closed, in reverse, by its stop()).
 */
import type { Server as HttpServer } from 'node:http';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { listenAdminSocket } from './admin/admin.js';
import { isClientError } from './common/errors.js';
import type { Lifecycle } from './common/lifecycle.js';
import { bindListener, hostPort, type ListenerSpec, type StartingGate } from './admin/listen.js';
import { odooBridgeConfig, type GuardianConfig } from './config/index.js';
import { createMetricsApp } from './metrics/index.js';
import { JobError, startOdooBridge, type JobFunction, type OdooBridge, type OdooBridgeDeps } from './odoo/index.js';
import type { RestServer } from './rest/index.js';
import { consoleJobFunctions, type AsteriskConsole } from './console/index.js';
import { configJobFunctions, type AsteriskConfigFiles } from './asterisk-config/index.js';
import { fraudJobFunctions, type FraudEngine } from './fraud/index.js';

/** What is listening (null: off, or not bound yet). */
export interface OpenListeners {
  admin: FastifyInstance | null;
  metrics: FastifyInstance | null;
  metricsUrl: string | null;
  rest: RestServer | null;
  odoo: OdooBridge | null;
}

export const noListeners = (): OpenListeners => ({ admin: null, metrics: null, metricsUrl: null, rest: null, odoo: null });

export interface ListenerFactories {
  /** null: no admin socket (tests) */
  admin: (() => FastifyInstance) | null;
  metrics: Registry;
  rest: () => FastifyInstance;
  odoo: (beforeListen: (server: HttpServer) => void) => Promise<OdooBridge>;
}

/** Binds every enabled listener in `config`, each held by `gate` until the firewall is ready. */
export async function bindListeners(config: GuardianConfig, gate: StartingGate, make: ListenerFactories, open: OpenListeners, life: Lifecycle): Promise<void> {
  const bind = async (spec: ListenerSpec, app: FastifyInstance, listen: () => Promise<unknown>) => {
    gate.hold(app.server as HttpServer);
    try {
      await bindListener(spec, listen);
    } catch (err) {
      await app.close().catch(() => undefined);
      throw err;
    }
    await life.start({ name: spec.name, stop: () => app.close() });
  };
  const tcp = async (spec: ListenerSpec, app: FastifyInstance, host: string, port: number) => {
    await bind(spec, app, () => app.listen({ host, port }));
    const a = app.server.address();
    return a && typeof a === 'object' ? { host: a.address, port: a.port } : { host, port };
  };
  if (make.admin) {
    const app = make.admin();
    const spec = { name: 'admin socket', keys: 'admin.socket', address: config.admin.socket, disable: null };
    await bind(spec, app, () => listenAdminSocket(app, config.admin.socket, parseInt(config.admin.socketMode, 8)));
    open.admin = app;
  }
  if (config.metrics.enabled) {
    const { host, port } = config.metrics;
    const app = createMetricsApp(make.metrics);
    const a = await tcp(
      { name: 'metrics endpoint', keys: 'metrics.host / metrics.port', address: hostPort(host, port), disable: 'metrics.enabled: false' },
      app,
      host,
      port,
    );
    open.metrics = app;
    open.metricsUrl = `http://${hostPort(host, a.port)}/metrics`;
  }
  if (config.rest.enabled) {
    const { host, port } = config.rest;
    const app = make.rest();
    const address = await tcp(
      { name: 'REST API', keys: 'rest.host / rest.port', address: hostPort(host, port), disable: 'rest.enabled: false' },
      app,
      host,
      port,
    );
    open.rest = { app, address, close: () => app.close() };
  }
  if (config.odoo.enabled) {
    const bridge = await make.odoo((server) => gate.hold(server)).catch((err: unknown) => odooBindFailed(config, err));
    open.odoo = bridge;
    await life.start({ name: 'Odoo bridge', stop: () => bridge.close() });
  }
}

/** startOdooBridge closed its own parts: say which of its two listeners failed to bind. */
async function odooBindFailed(config: GuardianConfig, err: unknown): Promise<never> {
  const { listen, fagi } = config.odoo;
  const { port, syscall } = err as { port?: number; syscall?: string };
  if (syscall !== 'listen' && syscall !== 'bind') throw err;
  const spec: ListenerSpec =
    fagi.enabled && port === fagi.port && port !== listen.port
      ? { name: 'FastAGI server', keys: 'odoo.fagi.host / odoo.fagi.port', address: hostPort(fagi.host, fagi.port), disable: 'odoo.fagi.enabled: false' }
      : {
          name: 'Odoo job endpoint',
          keys: 'odoo.listen.host / odoo.listen.port',
          address: hostPort(listen.host, listen.port),
          disable: 'odoo.listen.enabled: false',
        };
  return bindListener(spec, () => Promise.reject(err));
}

export interface OdooWiring extends Omit<OdooBridgeDeps, 'config' | 'stateDir'> {
  asteriskConsole: AsteriskConsole;
  configFiles: AsteriskConfigFiles | null;
  /** security.unblock_account, security.get_blocked_accounts (null: fraud off) */
  fraud?: FraudEngine | null;
}

/** A console or config-sync function as an Odoo job: its refusals (4xx) reach Odoo as job errors with their own message and code. */
export function asJobFunction(fn: (args: unknown, kwargs: Record<string, unknown>) => Promise<unknown>): JobFunction {
  return async (args, kwargs) => {
    try {
      return await fn(args, kwargs);
    } catch (e) {
      if (isClientError(e)) throw new JobError(e.message, { cause: e });
      throw e;
    }
  };
}

/** The Odoo bridge with the console and config-sync jobs (asJobFunction). */
export function startOdoo(config: GuardianConfig, w: OdooWiring): Promise<OdooBridge> {
  const extra = new Map([
    ...consoleJobFunctions(w.asteriskConsole),
    ...(w.configFiles ? configJobFunctions(w.configFiles) : []),
    ...(w.fraud ? fraudJobFunctions(w.fraud) : []),
  ]);
  const jobFunctions = [...extra].map(([name, fn]): [string, JobFunction] => [name, asJobFunction(fn)]);
  const { asteriskConsole: _c, configFiles, fraud: _f, ...deps } = w;
  return startOdooBridge({ ...deps, jobFunctions, configSync: configFiles, config: odooBridgeConfig(config), stateDir: config.stateDir });
}

/** One line per listener, as before the split. */
export function logListeners(logger: Logger, open: OpenListeners, config: GuardianConfig): void {
  if (open.admin) logger.info({ socket: config.admin.socket }, 'admin socket listening');
  if (open.metricsUrl) logger.info({ url: open.metricsUrl }, `metrics at ${open.metricsUrl}`);
  if (open.rest)
    logger.info(
      { ...open.rest.address },
      `REST API listening on http://${hostPort(open.rest.address.host, open.rest.address.port)}/v1/ (OpenAPI at /v1/openapi.json)`,
    );
}
