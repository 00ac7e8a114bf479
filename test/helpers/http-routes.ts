/** One sample request per route of the agent, REST and admin listeners, and path variants. */

export type ListenerName = 'agent' | 'rest' | 'admin';

export interface Sample {
  listener: ListenerName;
  method: string;
  /** the route as registered, to match against the listener's route list */
  route: string;
  path: string;
  body?: unknown;
}

/** One request per route, with a body a handler accepts. test/http-auth-policy.test checks this covers every route. */
export const SAMPLES: Sample[] = [
  {
    listener: 'agent',
    method: 'POST',
    route: '/app/asterisk_plus/agent',
    path: '/app/asterisk_plus/agent',
    body: { fun: 'security.ban', args: ['203.0.113.77'] },
  },
  { listener: 'rest', method: 'POST', route: '/v1/calls', path: '/v1/calls', body: { operator: '8003', phone: '100' } },
  { listener: 'rest', method: 'POST', route: '/v1/messages', path: '/v1/messages', body: { operator: '8003', phone: '100', msg: 'hi' } },
  { listener: 'rest', method: 'GET', route: '/v1/status/extension/:exten', path: '/v1/status/extension/100' },
  { listener: 'rest', method: 'GET', route: '/v1/status/peer/:peer', path: '/v1/status/peer/8003' },
  { listener: 'rest', method: 'GET', route: '/v1/status/channel/*', path: '/v1/status/channel/SIP/8003-1' },
  { listener: 'rest', method: 'POST', route: '/v1/actions', path: '/v1/actions', body: { Action: 'Ping' } },
  { listener: 'rest', method: 'GET', route: '/v1/bans', path: '/v1/bans' },
  { listener: 'rest', method: 'POST', route: '/v1/bans', path: '/v1/bans', body: { target: '203.0.113.78', duration: '1h' } },
  { listener: 'rest', method: 'DELETE', route: '/v1/bans/*', path: '/v1/bans/203.0.113.79' },
  { listener: 'rest', method: 'POST', route: '/v1/console', path: '/v1/console', body: { command: 'core show channels' } },
  { listener: 'rest', method: 'GET', route: '/v1/configs', path: '/v1/configs' },
  { listener: 'rest', method: 'GET', route: '/v1/configs/*', path: '/v1/configs/extensions_odoo.conf' },
  { listener: 'rest', method: 'PUT', route: '/v1/configs/*', path: '/v1/configs/extensions_odoo.conf', body: { content: '[odoo]\nexten => 1,1,NoOp()\n' } },
  { listener: 'rest', method: 'DELETE', route: '/v1/configs/*', path: '/v1/configs/extensions_odoo.conf' },
  { listener: 'rest', method: 'POST', route: '/v1/reload', path: '/v1/reload', body: { module: 'pbx_config' } },
  { listener: 'admin', method: 'GET', route: '/version', path: '/version' },
  { listener: 'admin', method: 'GET', route: '/status', path: '/status' },
  { listener: 'admin', method: 'GET', route: '/health', path: '/health' },
  { listener: 'admin', method: 'GET', route: '/bans', path: '/bans' },
  { listener: 'admin', method: 'POST', route: '/bans', path: '/bans', body: { target: '203.0.113.80' } },
  { listener: 'admin', method: 'DELETE', route: '/bans/:target', path: '/bans/203.0.113.81' },
  { listener: 'admin', method: 'DELETE', route: '/bans', path: '/bans' },
  { listener: 'admin', method: 'GET', route: '/why/:address', path: '/why/203.0.113.82' },
  { listener: 'admin', method: 'GET', route: '/history', path: '/history?address=203.0.113.82' },
  { listener: 'admin', method: 'GET', route: '/allow', path: '/allow' },
  { listener: 'admin', method: 'POST', route: '/allow', path: '/allow', body: { entry: '203.0.113.83' } },
  { listener: 'admin', method: 'DELETE', route: '/allow/:entry', path: '/allow/203.0.113.83' },
  { listener: 'admin', method: 'GET', route: '/rules', path: '/rules' },
  { listener: 'admin', method: 'GET', route: '/metrics', path: '/metrics' },
  { listener: 'admin', method: 'POST', route: '/reload', path: '/reload', body: {} },
  { listener: 'admin', method: 'POST', route: '/firewall/flush', path: '/firewall/flush', body: {} },
  { listener: 'admin', method: 'POST', route: '/firewall/resume', path: '/firewall/resume', body: {} },
  { listener: 'admin', method: 'GET', route: '/fraud', path: '/fraud' },
  { listener: 'admin', method: 'DELETE', route: '/fraud/blocks/:account', path: '/fraud/blocks/101' },
  { listener: 'admin', method: 'POST', route: '/console', path: '/console', body: { command: 'core show channels' } },
  { listener: 'admin', method: 'GET', route: '/accounts', path: '/accounts' },
  { listener: 'admin', method: 'POST', route: '/accounts/:account/acknowledge', path: '/accounts/102/acknowledge', body: {} },
];

/** Public routes: no credential needed, and they change nothing. */
export const PUBLIC_SAMPLES = [{ listener: 'rest', method: 'GET', route: '/v1/openapi.json', path: '/v1/openapi.json' }];

const hex = (c: string) => '%' + c.charCodeAt(0).toString(16).toUpperCase();

/** Spellings of one path a router might take for the same route (or not). */
export function pathVariants(path: string): string[] {
  const out = new Set<string>([path]);
  const letters = [...path].map((c, i) => (/[A-Za-z]/.test(c) ? i : -1)).filter((i) => i >= 0);
  for (const i of letters) out.add(path.slice(0, i) + hex(path[i]!) + path.slice(i + 1));
  if (letters.length > 0) out.add(path.slice(0, letters[0]) + hex(path[letters[0]!]!).toLowerCase() + path.slice(letters[0]! + 1));
  out.add(path.replace(/[A-Za-z]/g, hex));
  out.add(path.replace(/[A-Za-z]/g, (c) => '%25' + c.charCodeAt(0).toString(16)));
  [...path].forEach((c, i) => {
    if (c === '/') out.add(path.slice(0, i) + '/' + path.slice(i));
  });
  out.add(path.replace(/\//g, '//'));
  out.add(path + '/');
  out.add(path.toUpperCase());
  out.add(path.replace(/\/([a-z])/g, (_m, c: string) => '/' + c.toUpperCase()));
  out.add(path + ';x=1');
  out.add(path + ';');
  out.add(path.replace(/\/([^/]+)$/, '/$1;jsessionid=1'));
  out.add(path.replace(/^\/([^/]+)/, '/$1;p=1'));
  out.add(path + '?x=1');
  out.add(path + '?');
  out.add(path + '%3Fx=1');
  out.add(path.replace(/\//g, '%2F'));
  out.add(path.replace(/\/([^/]*)$/, '%2F$1'));
  out.add('/.' + path);
  out.add('/x/..' + path);
  out.add(path + '/.');
  out.add(path + '%00');
  out.add(path + '%20');
  out.add(path + '.');
  return [...out];
}
