import { spawn } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NftError, nftError, type NftRunner } from './nft-runner.js';

const NFT_PATHS = ['/usr/sbin/nft', '/sbin/nft', '/usr/bin/nft', '/bin/nft'];

/** Absolute path of the nft binary, or null. Never searches $PATH (no surprises as root). */
export function findNft(paths: string[] = NFT_PATHS): string | null {
  for (const p of paths) {
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  return null;
}

/** Bound on what we read back from nft (a 1M-element list is ~60 MB of JSON). */
const MAX_OUTPUT = 512 * 1024 * 1024;

/**
 * The fallback runner: one `nft -j -f <file>` process per transaction, argument array, no shell.
 * Why a file and not stdin: nft 1.0.6 with -j first tries to parse the input as JSON and then
 * re-reads it as text; from a pipe the second read finds nothing and nft exits 0 having done
 * NOTHING (measured). The script goes to a 0600 file in a private 0700 directory instead.
 */
export class NftCommandRunner implements NftRunner {
  readonly kind = 'command' as const;
  private dir: string | null = null;
  private seq = 0;
  private closed = false;

  constructor(private readonly nftPath: string) {}

  run(script: string): Promise<string> {
    if (!this.dir) this.dir = mkdtempSync(join(tmpdir(), 'pbxg-nft-'));
    const file = join(this.dir, `batch-${process.pid}-${++this.seq}.nft`);
    writeFileSync(file, script, { mode: 0o600 });
    const cleanup = () => {
      try {
        unlinkSync(file);
      } catch {
        /* gone */
      }
      if (this.closed) void this.close(); // used after close(): leave nothing behind
    };
    return this.exec(['-j', '-f', file]).finally(cleanup);
  }

  listTerse(): Promise<string> {
    return this.exec(['-j', '-t', 'list', 'ruleset', 'inet']);
  }

  private exec(args: string[]): Promise<string> {
    return new Promise<string>((resolve, reject) => {
      const child = spawn(this.nftPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      let outLen = 0;
      child.stdout.on('data', (b: Buffer) => {
        outLen += b.length;
        if (outLen <= MAX_OUTPUT) out.push(b);
      });
      child.stderr.on('data', (b: Buffer) => {
        if (err.length < 64) err.push(b);
      });
      child.on('error', (e: NodeJS.ErrnoException) =>
        reject(
          e.code === 'ENOENT'
            ? new NftError(
                `nft binary not found at ${this.nftPath}: install the nftables package (apt-get install nftables), or set firewall.backend: ipset`,
                e.message,
                false,
              )
            : nftError('command', `${this.nftPath}: ${e.message}`, 'spawn'),
        ),
      );
      child.on('close', (code, signal) => {
        const errText = Buffer.concat(err).toString('utf8');
        if (code !== 0) return reject(nftError('command', errText, code ?? String(signal)));
        if (outLen > MAX_OUTPUT) return reject(new Error(`nft output larger than ${MAX_OUTPUT} bytes`));
        resolve(Buffer.concat(out).toString('utf8'));
      });
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
    this.dir = null;
  }
}
