/**
 * Bootstrap against Asterisk Plus: GET <url>/asterisk_plus/agent?db=DB (works once) returns
 * {agent_token, odoo_user, odoo_password, odoo_db}. The CLI writes them into the config file.
 */
import { readLimited } from '../net/http-body.js';
import { StartupError } from '../common/errors.js';

export interface OdooInitResult {
  agent_token: string;
  odoo_user: string;
  odoo_password: string;
  odoo_db: string;
}

/** the initialization answer is a few hundred bytes; more is a proxy page or a wrong URL */
const INIT_RESPONSE_MAX_BYTES = 64 * 1024;

/** `pbx-guardian odoo init` failed: the message says what Odoo answered and what to do. */
export class OdooInitError extends StartupError {
  constructor(message: string) {
    super(message, 'ODOO_INIT');
  }
}

export async function odooInit(opts: { url: string; db: string; timeoutMs?: number; fetchImpl?: typeof fetch }): Promise<OdooInitResult> {
  const f = opts.fetchImpl ?? fetch;
  if (!opts.url) throw new OdooInitError('the Odoo URL is required, e.g. https://odoo.example.com');
  if (!opts.db) throw new OdooInitError('the Odoo database name is required (--db)');
  let base: URL;
  try {
    base = new URL(opts.url.endsWith('/') ? opts.url : opts.url + '/');
  } catch {
    throw new OdooInitError(`not a URL: ${opts.url}`);
  }
  if (base.protocol !== 'https:' && base.protocol !== 'http:') throw new OdooInitError(`the Odoo URL must be http(s): ${opts.url}`);
  const url = new URL('asterisk_plus/agent', base);
  url.searchParams.set('db', opts.db);
  let res: Response;
  try {
    res = await f(url, { method: 'GET', headers: { accept: 'application/json' }, signal: AbortSignal.timeout(opts.timeoutMs ?? 15_000) });
  } catch (e) {
    throw new OdooInitError(`cannot reach Odoo at ${base.origin}: ${(e as Error).message}. Check the URL and that this host can reach Odoo.`);
  }
  let text: string;
  try {
    const body = await readLimited(res, INIT_RESPONSE_MAX_BYTES);
    if (body.truncated)
      throw new OdooInitError(
        `Odoo's answer to the initialization (HTTP ${res.status}) is longer than ${INIT_RESPONSE_MAX_BYTES} bytes: aborted. Is ${base.origin} the Odoo base URL, without a proxy page in between?`,
      );
    text = body.bytes.toString('utf8').slice(0, 4096);
  } catch (e) {
    if (e instanceof OdooInitError) throw e;
    throw new OdooInitError(`cannot read Odoo's answer to the initialization from ${base.origin}: ${(e as Error).message}`);
  }
  if (res.status === 400) {
    const t = text.trim();
    if (/already initialized/i.test(t)) {
      throw new OdooInitError(
        'Odoo says: "Agent is already initialized." The one-time initialization was used already. In Odoo, open ' +
          'Asterisk Plus → Servers → your server, enable "Permit agent initialization" (this resets the agent user\'s password) and run init again; ' +
          "or copy the agent token and the agent user's credentials from the server form into the config (odoo.agentToken, odoo.user, odoo.password) by hand.",
      );
    }
    if (/not permitted/i.test(t)) {
      throw new OdooInitError(
        'Odoo says: "Agent initialization is not permitted!" In Odoo, open Asterisk Plus → Servers → your server, enable "Permit agent initialization", save, and run init again.',
      );
    }
    if (/specify db/i.test(t))
      throw new OdooInitError(`Odoo says the database parameter is missing: pass --db with the Odoo database name (sent: ${opts.db}).`);
    throw new OdooInitError(`Odoo refused the initialization (HTTP 400): ${t.slice(0, 300)}`);
  }
  if (res.status === 404) {
    throw new OdooInitError(
      `Odoo has no /asterisk_plus/agent route (HTTP 404): is the Asterisk Plus module (4.x) installed on database ${opts.db}? Is the URL the Odoo base URL?`,
    );
  }
  if (!res.ok) throw new OdooInitError(`Odoo answered HTTP ${res.status} to the initialization: ${text.slice(0, 300)}`);
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new OdooInitError(`Odoo's answer to the initialization is not JSON (a login page or a proxy?): ${text.slice(0, 200)}`);
  }
  const fields = ['agent_token', 'odoo_user', 'odoo_password', 'odoo_db'] as const;
  for (const k of fields) {
    // the answer carries the agent token and a password: name the fields, never echo their values
    if (typeof body[k] !== 'string' || !(body[k] as string))
      throw new OdooInitError(
        `Odoo's initialization answer has no ${k} (fields in the answer: ${Object.keys(body).slice(0, 20).join(', ').slice(0, 300) || 'none'})`,
      );
  }
  return {
    agent_token: body.agent_token as string,
    odoo_user: body.odoo_user as string,
    odoo_password: body.odoo_password as string,
    odoo_db: body.odoo_db as string,
  };
}
