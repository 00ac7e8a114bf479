/**
 * `pbx-guardian console`: an interactive line reader over the admin socket, or one command:
 * `pbx-guardian console -- "core show channels"`. Exit codes: 0 ok, 1 refused by the console
 * policy, 4 Asterisk answered Error (e.g. no such command).
 */
import { createInterface } from 'node:readline';
import { callDaemon, DaemonError } from '../admin/client.js';
import type { ConsoleResult } from './index.js';

export interface ConsoleIo {
  input: NodeJS.ReadableStream;
  output: NodeJS.WritableStream;
  error: NodeJS.WritableStream;
  interactive: boolean;
}

async function runOne(socket: string, command: string, io: ConsoleIo): Promise<number> {
  try {
    const r = await callDaemon<ConsoleResult>(socket, 'POST', '/console', { command });
    for (const l of r.output) io.output.write(l + '\n');
    return /^success$/i.test(r.response) ? 0 : 4;
  } catch (e) {
    if (e instanceof DaemonError && e.status < 500) {
      io.error.write(`pbx-guardian: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}

export async function consoleCommand(
  socket: string,
  words: string[],
  io: ConsoleIo = { input: process.stdin, output: process.stdout, error: process.stderr, interactive: Boolean(process.stdin.isTTY) },
): Promise<number> {
  if (words.length > 0) return runOne(socket, words.join(' '), io);
  const rl = createInterface({ input: io.input, output: io.interactive ? io.output : undefined, terminal: io.interactive });
  if (io.interactive) {
    io.output.write('Asterisk CLI through pbx-guardian (AMI Command). No "!" shell escapes. "exit" or Ctrl-D leaves.\n');
    rl.setPrompt('pbx*CLI> ');
    rl.prompt();
  }
  let last = 0;
  for await (const line of rl) {
    const cmd = line.trim();
    if (cmd === 'exit' || cmd === 'quit') break;
    if (cmd) last = await runOne(socket, cmd, io);
    if (io.interactive) rl.prompt();
  }
  rl.close();
  return last;
}
