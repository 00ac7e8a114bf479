/**
 * `pbx-guardian run` by hand as root in the service user's state directory (the package makes
 * /var/lib/pbx-guardian pbx-guardian:pbx-guardian 0750): the state it creates is given to that
 * user, so the service opens its store afterwards; a link planted there by that user to a file of
 * root's is never given away. Full lane: root (chown, a child as another user).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, linkSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { buildConfig } from '../src/config/index.js';
import { MemoryBackend } from '../src/firewall/index.js';
import { startDaemon } from '../src/main.js';
import { StateOwnership } from '../src/store/index.js';
import { repoPath } from './helpers/fixtures.js';

const SERVICE = 65534; // nobody / nogroup: a user that is not root, present on every Debian
const isRoot = process.getuid?.() === 0;

/** Store.open as the service user, in a child: the number of active bans, or the error. */
function openAsService(stateDir: string): { status: number | null; out: string } {
  const store = repoPath('dist/src/store/index.js');
  const r = spawnSync(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `import { Store } from ${JSON.stringify(store)}; const s = Store.open(process.argv[1]); console.log(s.activeBans(Date.now()).length); s.close();`,
      stateDir,
    ],
    { uid: SERVICE, gid: SERVICE, encoding: 'utf8', timeout: 30_000 },
  );
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

test(
  'run as root in the service user’s state directory: what it creates is the service user’s, and the service opens it',
  { skip: !isRoot && 'needs root' },
  async () => {
    const base = mkdtempSync(join(tmpdir(), 'pbxg-owner-'));
    chmodSync(base, 0o755);
    const stateDir = join(base, 'state');
    mkdirSync(stateDir, { mode: 0o750 });
    chownSync(stateDir, SERVICE, SERVICE);
    // what a compromised service user could plant: a hard link and a symlink to files of root's
    writeFileSync(join(base, 'root-secret'), 'x', { mode: 0o600 });
    writeFileSync(join(base, 'root-other'), 'y', { mode: 0o600 });
    linkSync(join(base, 'root-secret'), join(stateDir, 'planted-hardlink'));
    symlinkSync(join(base, 'root-other'), join(stateDir, 'planted-symlink'));
    try {
      const config = buildConfig({
        stateDir,
        logLevel: 'silent',
        ami: { enabled: false },
        firewall: { backend: 'memory' },
        metrics: { enabled: false },
        admin: { socket: join(base, 'admin.sock') },
      });
      const daemon = await startDaemon({ config, backend: new MemoryBackend(), logger: pino({ level: 'silent' }), adminSocket: false });
      let created: string[];
      try {
        await daemon.guardian.ban({ target: '203.0.113.50', durationSec: 3600, reason: 'by hand', source: 'manual' });
        created = readdirSync(stateDir).filter((n) => !n.startsWith('planted-'));
        assert.ok(created.includes('guardian.sqlite'), created.join(' '));
        for (const n of created) assert.equal(statSync(join(stateDir, n)).uid, SERVICE, `${n} while running`);
      } finally {
        await daemon.stop();
      }
      for (const n of readdirSync(stateDir).filter((n) => !n.startsWith('planted-'))) {
        const st = statSync(join(stateDir, n));
        assert.deepEqual([n, st.uid, st.gid], [n, SERVICE, SERVICE], `${n} after stop`);
      }
      assert.equal(statSync(join(base, 'root-secret')).uid, 0, 'a hard link to a file of root’s is not given away');
      assert.equal(statSync(join(base, 'root-other')).uid, 0, 'a symlink is not followed');

      const opened = openAsService(stateDir);
      assert.equal(opened.status, 0, opened.out);
      assert.equal(opened.out.trim(), '1', 'the service user reads the ban root made');

      // the control: the same database left root-owned is what the service could not open
      const control = join(base, 'control');
      mkdirSync(control, { mode: 0o750 });
      chownSync(control, SERVICE, SERVICE);
      copyFileSync(join(stateDir, 'guardian.sqlite'), join(control, 'guardian.sqlite'));
      chmodSync(join(control, 'guardian.sqlite'), 0o640);
      const refused = openAsService(control);
      assert.notEqual(refused.status, 0, `a root-owned store opened as the service user: ${refused.out}`);
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  },
);

test('not root, or a state directory root owns: nothing is changed', { skip: !isRoot && 'needs root' }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'pbxg-owner-'));
  try {
    assert.equal(StateOwnership.of(dir), null, 'root’s own directory');
    assert.equal(StateOwnership.of(join(dir, 'missing')), null);
    chownSync(dir, SERVICE, SERVICE);
    const o = StateOwnership.of(dir);
    assert.ok(o);
    assert.deepEqual([o.uid, o.gid], [SERVICE, SERVICE]);
    writeFileSync(join(dir, 'a'), '');
    assert.equal(o.adopt(), 1);
    assert.equal(o.adopt(), 0, 'already given');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
