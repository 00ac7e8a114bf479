import { spawn } from 'node:child_process';
import { accessSync, constants, readlinkSync } from 'node:fs';

/** Why kernel firewall tests cannot run here, or null when they can (root + unshare + tools). */
export function netnsSkipReason(tools: string[] = ['/usr/sbin/nft']): string | null {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return 'needs root (creates a private network namespace)';
  for (const p of ['/usr/bin/unshare', ...tools]) {
    try {
      accessSync(p, constants.X_OK);
    } catch {
      return `${p} is missing`;
    }
  }
  return null;
}

export const UNSHARE = '/usr/bin/unshare';

/**
 * Runs `node <script> ...args` in a new, private network namespace (`unshare -n`): the host's
 * ruleset is never visible to it, and the namespace disappears with the process. The child prints
 * one JSON document on stdout (its last line); that is the result.
 */
export function runInNetns<T = unknown>(script: string, env: Record<string, string>, args: string[] = [], timeoutMs = 120_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const child = spawn(UNSHARE, ['-n', process.execPath, script, ...args], {
      env: { ...process.env, ...env, PBXG_PARENT_NETNS: readlinkSync('/proc/self/ns/net') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      const last = out.trim().split('\n').pop() ?? '';
      if (code !== 0) return reject(new Error(`netns child exited ${code}: ${err.slice(-2000)} ${out.slice(-500)}`));
      try {
        resolve(JSON.parse(last) as T);
      } catch {
        reject(new Error(`netns child printed no JSON: ${out.slice(-1000)} ${err.slice(-1000)}`));
      }
    });
  });
}

/** In the child: throws unless this process runs in a network namespace other than its parent's
 *  (belt and braces: a scenario never touches nft/ipset/iptables in the host's namespace). */
export function assertPrivateNetns(): void {
  const parent = process.env.PBXG_PARENT_NETNS;
  const mine = readlinkSync('/proc/self/ns/net');
  if (!parent || parent === mine) throw new Error(`refusing to run: not in a private network namespace (${mine})`);
}

/** In a scenario child: run it, print its report as one JSON line, exit 1 on failure. */
export function reportScenario(run: () => Promise<unknown>): void {
  run().then(
    (r) => console.log(JSON.stringify(r)),
    (err) => {
      console.error(err);
      process.exit(1);
    },
  );
}
