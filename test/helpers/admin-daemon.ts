import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { createAdminApp, type AdminPort } from '../../src/admin/admin.js';
import { RuntimeAllow } from '../../src/admin/runtime-allow.js';
import { Guardian, type GuardOptions } from '../../src/guard/index.js';
import { Store } from '../../src/store/index.js';
import { DirectEnforcement, guardOptions } from './guard.js';

/**
 * The admin API of a real Guardian (real clock, in-memory store, memory kernel backend) on a unix
 * socket in a temporary directory: what CLI children talk to in the unit lane.
 */
export async function adminDaemon(
  over: Partial<GuardOptions> = {},
  port: (g: Guardian) => Partial<AdminPort> = () => ({}),
  dir = mkdtempSync(join(tmpdir(), 'pbxg-admin-')),
) {
  const socket = join(dir, 'admin.socket');
  const enforcement = new DirectEnforcement();
  const store = new Store(join(dir, 'guardian.sqlite'));
  const guardian = new Guardian(guardOptions(over), store, enforcement, pino({ level: 'silent' }));
  const allow = new RuntimeAllow(guardian, dir);
  await allow.load();
  const app = createAdminApp({
    control: guardian,
    lookup: guardian,
    status: () => guardian.status(),
    reload: async () => ({ rules: guardian.rules.length }),
    version: 'test',
    history: (q) => store.history(q),
    allow,
    rules: () => guardian.rules,
    ...port(guardian),
  });
  await app.listen({ path: socket });
  return {
    socket,
    dir,
    guardian,
    store,
    enforcement,
    app,
    /** closes everything; `keep`: the directory stays (a second daemon on the same state) */
    async close(keep = false) {
      guardian.stop();
      await app.close();
      store.close();
      if (!keep) rmSync(dir, { recursive: true, force: true });
    },
  };
}
