/**
 * Self-signed TLS certificate for the Odoo job endpoint, generated in-process (node:crypto +
 * a minimal DER encoder: ECDSA P-256 / SHA-256, X.509 v3 with subjectAltName). No openssl
 * shell-out. The pair is stored in the state directory with mode 0600.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';

function len(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  while (n > 0) {
    bytes.unshift(n & 0xff);
    n >>>= 8;
  }
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}
function tlv(tag: number, content: Buffer): Buffer {
  return Buffer.concat([Buffer.from([tag]), len(content.length), content]);
}
const seq = (...parts: Buffer[]): Buffer => tlv(0x30, Buffer.concat(parts));
const set = (...parts: Buffer[]): Buffer => tlv(0x31, Buffer.concat(parts));
function int(b: Buffer): Buffer {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0 && (b[i + 1]! & 0x80) === 0) i++;
  b = b.subarray(i);
  if (b[0]! & 0x80) b = Buffer.concat([Buffer.from([0]), b]);
  return tlv(0x02, b);
}
function oid(s: string): Buffer {
  const p = s.split('.').map(Number);
  const out: number[] = [40 * p[0]! + p[1]!];
  for (const v of p.slice(2)) {
    const stack: number[] = [v & 0x7f];
    let x = Math.floor(v / 128);
    while (x > 0) {
      stack.unshift((x & 0x7f) | 0x80);
      x = Math.floor(x / 128);
    }
    out.push(...stack);
  }
  return tlv(0x06, Buffer.from(out));
}
const utf8 = (s: string): Buffer => tlv(0x0c, Buffer.from(s, 'utf8'));
function time(d: Date): Buffer {
  const z = (n: number, w = 2): string => String(n).padStart(w, '0');
  const y = d.getUTCFullYear();
  const rest = `${z(d.getUTCMonth() + 1)}${z(d.getUTCDate())}${z(d.getUTCHours())}${z(d.getUTCMinutes())}${z(d.getUTCSeconds())}Z`;
  return y < 2050 ? tlv(0x17, Buffer.from(`${z(y % 100)}${rest}`)) : tlv(0x18, Buffer.from(`${z(y, 4)}${rest}`));
}
const explicit = (n: number, c: Buffer): Buffer => tlv(0xa0 + n, c);
const octets = (b: Buffer): Buffer => tlv(0x04, b);
const bits = (b: Buffer): Buffer => tlv(0x03, Buffer.concat([Buffer.from([0]), b]));

export interface CertPair {
  cert: string;
  key: string;
}

/** Generate a self-signed ECDSA P-256 certificate for `names` (DNS names and IP addresses). */
export function generateSelfSigned(commonName: string, names: string[], days = 3650): CertPair {
  const { publicKey, privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const ecdsaSha256 = seq(oid('1.2.840.10045.4.3.2'));
  const name = seq(set(seq(oid('2.5.4.3'), utf8(commonName))), set(seq(oid('2.5.4.10'), utf8('pbx-guardian'))));
  const now = new Date(Date.now() - 60_000);
  const until = new Date(now.getTime() + days * 86400_000);
  const serial = crypto.randomBytes(16);
  serial[0] = serial[0]! & 0x7f;
  const san = names.map((n) => {
    const ip = net.isIP(n);
    if (ip === 4) return tlv(0x87, Buffer.from(n.split('.').map(Number)));
    if (ip === 6) return tlv(0x87, ipv6Bytes(n));
    return tlv(0x82, Buffer.from(n, 'ascii'));
  });
  const extensions = seq(
    seq(oid('2.5.29.19'), tlv(0x01, Buffer.from([0xff])), octets(seq())), // basicConstraints critical, cA false
    seq(oid('2.5.29.15'), tlv(0x01, Buffer.from([0xff])), octets(tlv(0x03, Buffer.from([0x05, 0xa0])))), // keyUsage: digitalSignature, keyEncipherment
    seq(oid('2.5.29.37'), octets(seq(oid('1.3.6.1.5.5.7.3.1')))), // extKeyUsage serverAuth
    seq(oid('2.5.29.17'), octets(seq(...san))),
  );
  const tbs = seq(explicit(0, int(Buffer.from([2]))), int(serial), ecdsaSha256, name, seq(time(now), time(until)), name, spki, explicit(3, extensions));
  const sig = crypto.sign('sha256', tbs, privateKey);
  const der = seq(tbs, ecdsaSha256, bits(sig));
  const b64 = der
    .toString('base64')
    .replace(/(.{64})/g, '$1\n')
    .trim();
  return {
    cert: `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`,
    key: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
  };
}

function ipv6Bytes(a: string): Buffer {
  const [head, tail] = a.includes('::') ? (a.split('::') as [string, string]) : [a, undefined];
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail ? tail.split(':') : [];
  const fill = tail !== undefined ? 8 - h.length - t.length : 0;
  const groups = [...h, ...Array(fill).fill('0'), ...t];
  const b = Buffer.alloc(16);
  groups.forEach((g, i) => b.writeUInt16BE(parseInt(g, 16) || 0, i * 2));
  return b;
}

/**
 * Load the configured cert/key, or the pair in stateDir, or generate one there (mode 0600).
 * Returns the PEM texts and where they came from.
 */
export function ensureTlsPair(opts: {
  certFile?: string;
  keyFile?: string;
  stateDir: string;
  hostNames?: string[];
}): CertPair & { certFile: string; keyFile: string; generated: boolean } {
  if (opts.certFile || opts.keyFile) {
    if (!opts.certFile || !opts.keyFile) throw new Error('odoo.listen.certFile and odoo.listen.keyFile must be set together');
    return {
      cert: fs.readFileSync(opts.certFile, 'utf8'),
      key: fs.readFileSync(opts.keyFile, 'utf8'),
      certFile: opts.certFile,
      keyFile: opts.keyFile,
      generated: false,
    };
  }
  const certFile = path.join(opts.stateDir, 'agent-cert.pem');
  const keyFile = path.join(opts.stateDir, 'agent-key.pem');
  if (fs.existsSync(certFile) && fs.existsSync(keyFile)) {
    const cert = fs.readFileSync(certFile, 'utf8');
    const key = fs.readFileSync(keyFile, 'utf8');
    try {
      const x = new crypto.X509Certificate(cert);
      if (new Date(x.validTo).getTime() > Date.now() + 7 * 86400_000) return { cert, key, certFile, keyFile, generated: false };
    } catch {
      /* regenerate below */
    }
  }
  fs.mkdirSync(opts.stateDir, { recursive: true, mode: 0o700 });
  const names = [...new Set(['localhost', '127.0.0.1', '::1', os.hostname(), ...(opts.hostNames ?? [])])].filter((n) => n && /^[A-Za-z0-9.:-]+$/.test(n));
  const pair = generateSelfSigned(os.hostname() || 'pbx-guardian', names);
  writePrivate(keyFile, pair.key);
  writePrivate(certFile, pair.cert);
  return { ...pair, certFile, keyFile, generated: true };
}

function writePrivate(file: string, text: string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, text, { mode: 0o600 });
  fs.chmodSync(tmp, 0o600);
  fs.renameSync(tmp, file);
}
