import { request } from 'node:https';

/** POST one Odoo job to the agent endpoint on 127.0.0.1 (TLS not verified, as Odoo does). */
export function postJob(port: number, body: unknown, token: string): Promise<{ status: number; body: string }> {
  const payload = JSON.stringify(body);
  return new Promise((resolvePromise, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: '/app/asterisk_plus/agent',
        rejectUnauthorized: false,
        headers: { 'content-type': 'application/json', 'x-token': token, 'content-length': Buffer.byteLength(payload) },
      },
      (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolvePromise({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}
