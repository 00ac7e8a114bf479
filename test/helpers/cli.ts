import { spawn } from 'node:child_process';
import { repoPath } from './fixtures.js';

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI as a child (async: a daemon under test may live in this process's event loop). */
export function cli(...args: string[]): Promise<CliResult> {
  return new Promise((resolvePromise) => {
    const child = spawn(process.execPath, [repoPath('dist/src/cli/main.js'), ...args]);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('close', (status) => resolvePromise({ status, stdout, stderr }));
  });
}

/** cli() talking to the daemon on the admin socket `socket`. */
export function cliOnSocket(socket: string, ...args: string[]): Promise<CliResult> {
  return cli(...args, '--socket', socket);
}
