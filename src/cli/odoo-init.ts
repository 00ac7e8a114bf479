import { existsSync, readFileSync, renameSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseDocument } from 'yaml';
import { buildConfig } from '../config/index.js';
import { odooInit } from '../odoo/index.js';

/**
 * `pbx-guardian odoo init --url URL --db DB`: asks Odoo for the agent's credentials (works once,
 * see OdooInitError's messages) and stores them in the config file, keeping its comments.
 * The file is written 0600 (it holds a password and the agent token), atomically.
 */
export async function odooInitCommand(url: string, db: string, configPath: string): Promise<string> {
  const creds = await odooInit({ url, db });
  const doc = parseDocument(existsSync(configPath) ? readFileSync(configPath, 'utf8') : '');
  if (doc.errors.length > 0) throw new Error(`${configPath} is not valid YAML: ${doc.errors[0]!.message}`);
  if (!doc.contents) doc.contents = doc.createNode({}) as unknown as typeof doc.contents;
  doc.setIn(['odoo', 'enabled'], true);
  doc.setIn(['odoo', 'url'], url.replace(/\/+$/, ''));
  doc.setIn(['odoo', 'db'], creds.odoo_db || db);
  doc.setIn(['odoo', 'user'], creds.odoo_user);
  doc.setIn(['odoo', 'password'], creds.odoo_password);
  doc.setIn(['odoo', 'agentToken'], creds.agent_token);
  const text = doc.toString();
  buildConfig(doc.toJS(), {}, configPath); // refuse to write a config the daemon would reject
  mkdirSync(dirname(configPath), { recursive: true });
  const tmp = `${configPath}.tmp-${process.pid}`;
  writeFileSync(tmp, text, { mode: 0o600 });
  renameSync(tmp, configPath);
  return `Odoo agent initialised for database "${creds.odoo_db || db}" as user "${creds.odoo_user}"; credentials saved to ${configPath} (mode 0600).\nRestart the daemon to connect: systemctl restart pbx-guardian`;
}
