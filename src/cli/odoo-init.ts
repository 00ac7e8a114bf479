import { mkdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseDocument } from 'yaml';
import { buildConfig } from '../config/index.js';
import { attributesOf, writeFileAtomic, type FileAttributes } from '../common/atomic-write.js';
import { odooInit } from '../odoo/index.js';

/**
 * The config now holds the Odoo password and the agent token: execute bits and every bit for
 * others are dropped; the owner and the group keep what they had (0640 root:pbx-guardian stays).
 */
const CONFIG_MODE_MASK = 0o660;
/** a config file created by init: only its owner reads it (see the message for the service's group) */
const NEW_CONFIG_MODE = 0o600;

/**
 * `pbx-guardian odoo init --url URL --db DB`: asks Odoo for the agent's credentials (works once,
 * see OdooInitError's messages) and stores them in the config file, keeping its comments, its
 * owner, group and mode (never widened), written atomically (a symlinked config path stays a
 * symlink: the file it points to is replaced).
 */
export async function odooInitCommand(url: string, db: string, configPath: string): Promise<string> {
  const creds = await odooInit({ url, db });
  const target = realTarget(configPath);
  const st = statSync(target, { throwIfNoEntry: false });
  const doc = parseDocument(st ? readFileSync(target, 'utf8') : '', { prettyErrors: false });
  if (doc.errors.length > 0)
    throw new Error(
      `${configPath} is not valid YAML (${doc.errors[0]!.code} at line ${doc.errors[0]!.linePos?.[0].line ?? '?'}): fix it by hand, then run init again`,
    );
  if (!doc.contents) doc.contents = doc.createNode({}) as unknown as typeof doc.contents;
  doc.setIn(['odoo', 'enabled'], true);
  doc.setIn(['odoo', 'url'], url.replace(/\/+$/, ''));
  doc.setIn(['odoo', 'db'], creds.odoo_db || db);
  doc.setIn(['odoo', 'user'], creds.odoo_user);
  doc.setIn(['odoo', 'password'], creds.odoo_password);
  doc.setIn(['odoo', 'agentToken'], creds.agent_token);
  const text = doc.toString();
  buildConfig(doc.toJS(), {}, configPath); // refuse to write a config the daemon would reject
  let attrs: FileAttributes;
  let rights: string;
  if (st) {
    const was = attributesOf(st);
    attrs = { ...was, mode: was.mode & CONFIG_MODE_MASK };
    rights =
      attrs.mode === was.mode
        ? `mode ${octal(attrs.mode)}, owner ${attrs.uid}:${attrs.gid} kept`
        : `mode narrowed from ${octal(was.mode)} to ${octal(attrs.mode)}: it now holds the Odoo password and the agent token; owner ${attrs.uid}:${attrs.gid} kept`;
  } else {
    mkdirSync(dirname(target), { recursive: true });
    attrs = { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0, mode: NEW_CONFIG_MODE };
    rights = `new file, mode ${octal(NEW_CONFIG_MODE)}; the service reads it as pbx-guardian: chown root:pbx-guardian ${configPath} && chmod 0640 ${configPath}`;
  }
  await writeFileAtomic(target, text, attrs);
  return `Odoo agent initialised for database "${creds.odoo_db || db}" as user "${creds.odoo_user}"; credentials saved to ${configPath} (${rights}).\nRestart the daemon to connect: systemctl restart pbx-guardian`;
}

/** The file a (possibly symlinked) config path names; the path itself when it does not exist yet. */
function realTarget(configPath: string): string {
  try {
    return realpathSync(configPath);
  } catch {
    return configPath;
  }
}

const octal = (mode: number): string => `0${mode.toString(8).padStart(3, '0')}`;
