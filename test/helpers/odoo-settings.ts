/**
 * The settings an Asterisk Plus 4.2 installation keeps for its agent, served by a FakeOdoo the way
 * the module's models hold them: the server record (models/server.py: ami_host 'localhost',
 * ami_port 5038, ami_user 'asterisk_plus_agent', ami_password a uuid, ami_trace False) and the rows
 * of asterisk_plus.agent_options that data/agent_options.xml creates for the default server.
 * The responders check the domains the agent sends and record a violation otherwise.
 */
import { readFileSync } from 'node:fs';
import type { FakeOdoo } from './fake-odoo.js';

/** data/agent_options.xml of asterisk_plus 4.2.0, key and value as the module creates them (test/fixtures/odoo17-asterisk-plus/agent-options.json) */
export const MODULE_AGENT_OPTIONS: ReadonlyArray<[string, string]> = (
  JSON.parse(readFileSync(new URL('../../../test/fixtures/odoo17-asterisk-plus/agent-options.json', import.meta.url), 'utf8')) as Array<{
    key: string;
    value: string;
  }>
).map((r) => [r.key, r.value]);

export interface ServedSettings {
  server: Record<string, unknown>;
  /** key -> value; changed by a test to play an admin editing the options in Odoo */
  options: Map<string, string>;
}

/** Serves `asterisk_plus.server` and `asterisk_plus.agent_options` search_read on `odoo`; returns what it serves (mutable). */
export function serveModuleSettings(odoo: FakeOdoo, over: { server?: Record<string, unknown>; options?: Record<string, string> } = {}): ServedSettings {
  const served: ServedSettings = {
    server: {
      id: 1,
      ami_host: 'localhost',
      ami_port: 5038,
      ami_user: 'asterisk_plus_agent',
      ami_password: '3f0f7a3e-5b1e-4a55-9a39-0d6c1a2b7c11',
      ami_trace: false,
      ...over.server,
    },
    options: new Map([...MODULE_AGENT_OPTIONS, ...Object.entries(over.options ?? {})]),
  };
  odoo.responders.set('asterisk_plus.server.search_read', (c) => {
    if (JSON.stringify(c.args) !== JSON.stringify([[['user', '=', odoo.uid]]])) odoo.violations.push(`server search_read: domain ${JSON.stringify(c.args)}`);
    const fields = c.kwargs.fields;
    if (!Array.isArray(fields) || !['ami_host', 'ami_port', 'ami_user', 'ami_password'].every((f) => fields.includes(f)))
      odoo.violations.push(`server search_read: fields ${JSON.stringify(fields)}`);
    return [{ ...served.server }];
  });
  odoo.responders.set('asterisk_plus.agent_options.search_read', (c) => {
    if (JSON.stringify(c.args) !== JSON.stringify([[['server', '=', served.server.id]]]))
      odoo.violations.push(`agent_options search_read: domain ${JSON.stringify(c.args)}`);
    return [...served.options].map(([key, value], i) => ({ id: i + 1, key, value }));
  });
  return served;
}
