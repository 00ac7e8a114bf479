/** createBackend: which path 'auto' picks, and the error a person sees without CAP_NET_ADMIN. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { accessSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { assertPrivateNetns, netnsSkipReason, runInNetns, UNSHARE } from './helpers/netns.js';
import { createBackend, defaultFirewallConfig } from '../src/firewall/index.js';
import { spawnSync } from 'node:child_process';
import { readlinkSync } from 'node:fs';

const SELF = fileURLToPath(import.meta.url);
const log = pino({ level: 'silent' });

async function scenario(mode: string) {
  assertPrivateNetns();
  const out: Record<string, string> = {};
  for (const nftMode of ['auto', 'command'] as const) {
    const be = await createBackend({ ...defaultFirewallConfig, backend: mode as 'auto', nftMode }, log);
    out[nftMode] = `${be.name}/${(be as { runner?: { kind: string } }).runner?.kind ?? '-'}`;
    await be.flush();
    await be.close();
  }
  return out;
}

if (process.env.PBXG_SCENARIO) {
  scenario(process.env.PBXG_SCENARIO).then(
    (r) => console.log(JSON.stringify(r)),
    (err) => {
      console.log(JSON.stringify({ error: (err as Error).message }));
    },
  );
} else {
  test('createBackend: memory', async () => {
    const be = await createBackend({ ...defaultFirewallConfig, backend: 'memory' }, log);
    assert.equal(be.name, 'memory');
  });

  const skip = netnsSkipReason();
  test('createBackend: auto picks nftables (addon when built, else the command)', { skip: skip ?? false }, async () => {
    const r = await runInNetns<Record<string, string>>(SELF, { PBXG_SCENARIO: 'auto' });
    assert.match(r.auto!, /^nftables\/(addon|command)$/);
    assert.equal(r.command, 'nftables/command');
  });

  test('createBackend: without CAP_NET_ADMIN the error says what is wrong and what to do', async (t) => {
    if (skip) return t.skip(skip);
    try {
      accessSync('/usr/bin/setpriv');
    } catch {
      return t.skip('setpriv missing');
    }
    const r = spawnSync(UNSHARE, ['-n', '/usr/bin/setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all', process.execPath, SELF], {
      env: { ...process.env, PBXG_SCENARIO: 'auto', PBXG_PARENT_NETNS: readlinkSync('/proc/self/ns/net') },
      encoding: 'utf8',
      timeout: 60_000,
    });
    const last = JSON.parse(r.stdout.trim().split('\n').pop()!) as { error?: string };
    assert.match(last.error ?? '', /Operation not permitted — pbx-guardian needs CAP_NET_ADMIN; run it as root or via the systemd unit/);
    assert.match(last.error ?? '', /no usable firewall backend/);
  });
}
