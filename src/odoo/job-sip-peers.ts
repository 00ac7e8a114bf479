/**
 * sip.get_peers as Asterisk Plus means it: the module's "Apply SIP peers" button sends it with the
 * server id as `args`, for the agent to download the SIP configuration that Odoo generates from
 * its PBX users (`GET <odoo.url>/asterisk_plus/sip_peers`, header `x-security-token`: the server
 * record's `security_token`) and apply it. Applied through config sync (src/asterisk-config/:
 * confined to its own `<base>_odoo.conf` files, atomic, a .bak, the #include line), then
 * `res_pjsip.so` is reloaded. What Odoo sends is checked first: it may not make Asterisk read
 * another file or run a program (`#include`, `#tryinclude`, `#exec`).
 */
import { readLimited } from '../net/http-body.js';
import { JobError, type JobFunction } from './job-function.js';

export type { ConfigSyncPort } from './job-function.js';

/** Odoo generates a few lines per PBX user: a megabyte is tens of thousands of users */
export const SIP_PEERS_MAX_BYTES = 1024 * 1024;
const DIRECTIVE = /^[ \t]*#[ \t]*(include|tryinclude|exec)\b/im;

/**
 * The file the configuration goes to. The module's templates (server.py) are all `type = wizard`
 * and its peers inherit them (`[101](udp-user)`), and wizard sections are read only from
 * pjsip_wizard.conf; plain PJSIP objects (endpoint, aor, auth...) without a wizard go to pjsip.conf's.
 */
export function sipPeersFile(text: string): string {
  const wizard = /^[ \t]*type[ \t]*=[ \t]*wizard[ \t]*(;.*)?$/im.test(text);
  const plain = /^[ \t]*type[ \t]*=[ \t]*(endpoint|aor|auth|identify|transport|registration|domain_alias|contact)[ \t]*(;.*)?$/im.test(text);
  return plain && !wizard ? 'pjsip_odoo.conf' : 'pjsip_wizard_odoo.conf';
}

/** Refuses what must not reach an Asterisk config file; returns the text to write. */
export function checkSipPeers(text: string): string {
  if (text.includes('\0')) throw new JobError('sip.get_peers: the SIP configuration from Odoo contains NUL bytes: not applied');
  const d = DIRECTIVE.exec(text);
  if (d)
    throw new JobError(
      `sip.get_peers: the SIP configuration from Odoo has a #${d[1]!.toLowerCase()} line: not applied (it would make Asterisk read another file or run a program)`,
    );
  if (!/^[ \t]*\[[^\]\r\n]+\]/m.test(text)) throw new JobError('sip.get_peers: the answer from Odoo holds no configuration section ([name]): not applied');
  return text.endsWith('\n') ? text : `${text}\n`;
}

function serverId(args: unknown): number {
  const v = Array.isArray(args) ? args[0] : args;
  const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1) throw new JobError('sip.get_peers: args must be the Asterisk Plus server id (e.g. 1)');
  return n;
}

export const getSipPeers: JobFunction = async (args, _kwargs, ctx) => {
  const id = serverId(args);
  if (!ctx.configSync)
    throw new JobError('sip.get_peers: config sync is off on this agent (asteriskConfig.enabled: false), so the SIP configuration from Odoo cannot be applied');
  if (!/^https?:\/\//.test(ctx.config.url)) throw new JobError('sip.get_peers: odoo.url is not set');
  let token: unknown;
  try {
    const rows = await ctx.rpc.executeKw('asterisk_plus.server', 'read', [[id], ['security_token']]);
    token = Array.isArray(rows) ? (rows[0] as Record<string, unknown> | undefined)?.security_token : undefined;
  } catch (e) {
    throw new JobError(`sip.get_peers: cannot read the security token of server ${id} from Odoo: ${(e as Error).message}`);
  }
  if (typeof token !== 'string' || token === '')
    throw new JobError(`sip.get_peers: server ${id} in Odoo has no security token (Asterisk Plus → Servers → the server's security token)`);
  const url = new URL('asterisk_plus/sip_peers', ctx.config.url.endsWith('/') ? ctx.config.url : `${ctx.config.url}/`);
  let res: Response;
  try {
    res = await fetch(url, {
      method: 'GET',
      headers: { 'x-security-token': token, accept: 'text/plain' },
      redirect: 'error',
      signal: AbortSignal.timeout(Math.min(ctx.timeoutMs, 30_000)),
    });
  } catch (e) {
    throw new JobError(`sip.get_peers: cannot download the SIP configuration from ${url.origin}: ${(e as Error).message}`);
  }
  const body = await readLimited(res, SIP_PEERS_MAX_BYTES);
  if (body.truncated) throw new JobError(`sip.get_peers: the SIP configuration from Odoo is larger than ${SIP_PEERS_MAX_BYTES} bytes: not applied`);
  const text = body.bytes.toString('utf8');
  // the module answers its refusals as 400 with a config comment: "; Bad token!"
  if (!res.ok)
    throw new JobError(
      `sip.get_peers: Odoo answered HTTP ${res.status}: ${
        text
          .replace(/^[;\s]+/, '')
          .trim()
          .slice(0, 200) || '(no text)'
      }`,
    );
  const content = checkSipPeers(text);
  const file = sipPeersFile(content);
  const w = await ctx.configSync.write(file, content);
  const reload = w.changed ? await ctx.configSync.reload('res_pjsip.so') : null;
  return {
    file: w.name,
    bytes: w.bytes,
    changed: w.changed,
    backup: w.backup,
    include: w.include ? `${w.include.base}: ${w.include.action}` : null,
    reload: reload ? `${reload.module}: ${reload.response}${reload.message ? ` (${reload.message})` : ''}` : 'not needed (unchanged)',
  };
};
