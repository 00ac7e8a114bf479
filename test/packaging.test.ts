// The Debian package, end to end: build it with packaging/build-deb.mjs, install it with dpkg,
// run the installed command, remove it (only the conffile may stay), purge it (nothing may stay,
// and our nftables table / ipsets are gone from the kernel).
//
// It changes the host (dpkg database, a system user, /etc, /usr), so it runs only when asked:
// as root, with dpkg-deb present, and PBXG_PACKAGE_TEST=1. The purge runs inside a private
// network namespace so that postrm's kernel cleanup never touches the host's ruleset.
// Takes about 20 s (mostly the node_modules copy and the xz compression).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const PKG = 'pbx-guardian';
const CONFFILE = '/etc/pbx-guardian/guardian.yaml';
const fixture = join(repo, 'test', 'fixtures', 'asterisk-security.log');

function which(cmd: string): string | null {
  for (const dir of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':')) {
    if (dir && existsSync(join(dir, cmd))) return join(dir, cmd);
  }
  return null;
}

interface Result {
  status: number | null;
  out: string;
  stdout: string;
}
function run(cmd: string, args: string[], timeout = 180_000): Result {
  const r = spawnSync(cmd, args, { cwd: repo, encoding: 'utf8', timeout, maxBuffer: 64 * 1024 * 1024 });
  if (r.error) throw new Error(`${cmd} ${args.join(' ')}: ${r.error.message}`);
  return { status: r.status, stdout: r.stdout ?? '', out: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}
function ok(cmd: string, args: string[], timeout?: number): string {
  const r = run(cmd, args, timeout);
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')} exited ${r.status}:\n${r.out}`);
  return r.stdout;
}
function dpkgStatus(): string {
  const r = run('dpkg-query', ['-W', '-f=${Status}', PKG]);
  return r.status === 0 ? r.stdout.trim() : 'not-installed';
}
function getent(db: string, key: string): string[] | null {
  const r = run('getent', [db, key]);
  return r.status === 0 ? r.stdout.trim().split(':') : null;
}

function skipReason(): string | false {
  if (process.env.PBXG_PACKAGE_TEST !== '1') return 'set PBXG_PACKAGE_TEST=1 to build, install and purge the .deb on this host';
  if (process.getuid?.() !== 0) return 'needs root (dpkg -i / -P)';
  for (const tool of ['dpkg-deb', 'dpkg', 'dpkg-query', 'getent', 'unshare']) {
    if (!which(tool)) return `${tool} is not installed`;
  }
  const st = spawnSync('dpkg-query', ['-W', '-f=${Status}', PKG], { encoding: 'utf8' });
  if (st.status === 0 && st.stdout.trim() !== '' && !st.stdout.includes('not-installed')) {
    return `${PKG} is already known to dpkg on this host (${st.stdout.trim()}): not replacing it`;
  }
  return false;
}

const skip = skipReason();

test('Debian package: build, install, run, remove, purge', { skip, timeout: 300_000 }, async (t) => {
  const out = mkdtempSync(join(tmpdir(), 'pbxg-pkgtest-'));
  const netns = `pbxg-pkgtest-${process.pid}`;
  const haveIp = which('ip') !== null;
  const cliBuilt = existsSync(join(repo, 'dist', 'src', 'cli', 'main.js'));
  const pkgVersion: string = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')).version;
  const asteriskGroupBefore = getent('group', 'asterisk') !== null;
  t.after(() => {
    // leave the host as we found it, whatever failed
    if (dpkgStatus() !== 'not-installed') spawnSync('unshare', ['-n', 'dpkg', '-P', PKG], { encoding: 'utf8' });
    if (!asteriskGroupBefore && getent('group', 'asterisk')) spawnSync('delgroup', ['--quiet', 'asterisk'], { encoding: 'utf8' });
    if (haveIp) spawnSync('ip', ['netns', 'del', netns]);
    rmSync(out, { recursive: true, force: true });
  });

  let deb = '';
  let files: string[] = [];

  await t.test('build-deb.mjs builds the .deb', () => {
    const started = Date.now();
    // dist/ is fresh: `npm test` compiles before it runs the tests.
    ok(process.execPath, [join(repo, 'packaging', 'build-deb.mjs'), '--no-tsc', '--out', out, ...(cliBuilt ? [] : ['--allow-incomplete'])], 240_000);
    const debs = readdirSync(out).filter((f) => f.endsWith('.deb'));
    assert.equal(debs.length, 1, `expected one .deb in ${out}, found ${debs.join(', ')}`);
    deb = join(out, debs[0]!);
    assert.match(debs[0]!, /^pbx-guardian_[0-9][^_]*_[a-z0-9]+\.deb$/);
    t.diagnostic(`${debs[0]}: ${Math.round(statSync(deb).size / 1024)} KiB, built in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  });

  await t.test('the .deb holds the program, unit, conffile and man page, and no devDependencies', () => {
    const listing = ok('dpkg-deb', ['-c', deb]);
    // "-rw-r--r-- root/root 141 2025-01-01 00:00 ./etc/x" or "... ./usr/bin/x -> target"
    files = listing
      .split('\n')
      .filter(Boolean)
      .map((l) => {
        const p = l
          .split(/\s+/)
          .slice(5)
          .join(' ')
          .replace(/ -> .*$/, '')
          .replace(/^\./, '');
        return l.startsWith('d') ? '' : p;
      })
      .filter(Boolean);
    for (const owner of listing
      .split('\n')
      .filter(Boolean)
      .map((l) => l.split(/\s+/)[1])) {
      assert.equal(owner, 'root/root');
    }
    for (const want of [
      '/usr/bin/pbx-guardian',
      '/lib/systemd/system/pbx-guardian.service',
      CONFFILE,
      '/usr/share/man/man1/pbx-guardian.1.gz',
      '/usr/lib/pbx-guardian/package.json',
      '/usr/lib/pbx-guardian/node_modules/better-sqlite3/build/Release/better_sqlite3.node',
      // the fraud stage's data and its dialplan subroutine (docs/fraud-destinations.md, docs/fraud-dialplan.md)
      '/usr/lib/pbx-guardian/rules/fraud-destinations.yaml',
      '/usr/lib/pbx-guardian/rules/fraud-rates.yaml',
      '/usr/lib/pbx-guardian/rules/extensions_guardian.conf',
      // the Grafana dashboard and the alert rules (docs/metrics.md)
      '/usr/share/doc/pbx-guardian/dashboards/pbx-guardian.json',
      '/usr/share/doc/pbx-guardian/dashboards/alert-rules.yaml',
    ]) {
      assert.ok(files.includes(want), `${want} is not in the package`);
    }
    if (cliBuilt) assert.ok(files.includes('/usr/lib/pbx-guardian/dist/src/cli/main.js'));
    if (existsSync(join(repo, 'build', 'Release', 'nftables.node'))) {
      assert.ok(files.includes('/usr/lib/pbx-guardian/build/Release/nftables.node'));
    }
    for (const dev of ['typescript', 'fast-check', 'asterisk-manager', '@types/node']) {
      assert.ok(!files.some((f) => f.startsWith(`/usr/lib/pbx-guardian/node_modules/${dev}/`)), `devDependency ${dev} is in the package`);
    }
    assert.equal(ok('dpkg-deb', ['-f', deb, 'Package']).trim(), PKG);
    // recordings for Odoo are mp3 by the module's default: the encoder comes with a default install
    assert.match(ok('dpkg-deb', ['-f', deb, 'Recommends']), /(^|, )lame(,|$)/m);
    // any Node.js >= 20 installs it (Node 22, NodeSource): no upper bound on nodejs
    const relations = ok('dpkg-deb', ['-f', deb, 'Depends', 'Recommends']);
    assert.match(relations, /nodejs \(>= 2\d\)/);
    assert.doesNotMatch(relations, /nodejs \(<</);
    assert.equal(ok('dpkg-deb', ['--ctrl-tarfile', deb]).length > 0, true);
  });

  await t.test('dpkg -i installs it: user, state directory, conffile permissions, enabled unit', () => {
    const r = run('dpkg', ['-i', deb]);
    t.diagnostic(r.out.trim());
    assert.equal(r.status, 0, `dpkg -i failed:\n${r.out}`);
    assert.equal(dpkgStatus(), 'install ok installed');
    // the unit's SupplementaryGroups=asterisk: without the group it would fail with 216/GROUP
    const asterisk = getent('group', 'asterisk');
    assert.ok(asterisk, 'no asterisk group after install');
    if (!asteriskGroupBefore) {
      assert.match(r.out, /created the system group 'asterisk'/);
      assert.ok(Number(asterisk[2]) < 1000, `asterisk is a system group (gid ${asterisk[2]})`);
    }
    const user = getent('passwd', PKG);
    assert.ok(user, 'no pbx-guardian user');
    assert.equal(user[5], '/var/lib/pbx-guardian');
    assert.match(user[6] ?? '', /nologin|false/);
    const group = getent('group', PKG);
    assert.ok(group, 'no pbx-guardian group');
    const state = statSync('/var/lib/pbx-guardian');
    assert.equal(state.mode & 0o7777, 0o750);
    assert.equal(state.uid, Number(user[2]));
    const conf = statSync(CONFFILE);
    assert.equal(conf.mode & 0o7777, 0o640);
    assert.equal(conf.uid, 0);
    assert.equal(conf.gid, Number(group[2]));
    // enabled (by deb-systemd-helper, with or without a running systemd), never started here
    assert.ok(existsSync('/etc/systemd/system/multi-user.target.wants/pbx-guardian.service'), 'unit not enabled');
  });

  await t.test('the installed unit passes systemd-analyze verify and security', (st) => {
    if (!which('systemd-analyze')) {
      st.skip('systemd-analyze is not installed');
      return;
    }
    const v = run('systemd-analyze', ['verify', ...(which('man') ? [] : ['--man=no']), '/lib/systemd/system/pbx-guardian.service']);
    assert.equal(v.out.trim(), '', `verify printed:\n${v.out}`);
    assert.equal(v.status, 0);
    const s = run('systemd-analyze', ['security', '--offline=yes', '--no-pager', '/lib/systemd/system/pbx-guardian.service']);
    const m = /Overall exposure level for pbx-guardian\.service:\s*([0-9.]+)/.exec(s.out);
    assert.ok(m, s.out);
    st.diagnostic(`exposure ${m[1]}`);
    assert.ok(Number(m[1]) <= 2.0);
  });

  await t.test('the installed command runs: version, check <security log>, demo', (st) => {
    if (!cliBuilt) {
      st.skip('dist/src/cli/main.js is not built yet (the CLI has not landed): only the launcher was installed');
      return;
    }
    const v = run('/usr/bin/pbx-guardian', ['version'], 30_000);
    assert.equal(v.status, 0, `pbx-guardian version exited ${v.status}:\n${v.out}`);
    assert.ok(v.out.includes(pkgVersion), `version output does not mention ${pkgVersion}:\n${v.out}`);
    // --rules-only: the fixture's attacker is 127.0.0.2, which the automatic allow-list keeps from a ban
    const c = run('/usr/bin/pbx-guardian', ['check', fixture, '--rules-only'], 60_000);
    st.diagnostic(`pbx-guardian check: exit ${c.status}, ${c.out.split('\n').length} lines`);
    assert.equal(c.status, 0, `pbx-guardian check ${fixture} exited ${c.status}:\n${c.out}`);
    assert.notEqual(c.stdout.trim(), '', 'pbx-guardian check printed nothing');
    assert.match(c.stdout, /Would be banned: [1-9]/);
    const demo = run('/usr/bin/pbx-guardian', ['demo', '--duration', '4'], 60_000);
    assert.equal(demo.status, 0, `pbx-guardian demo exited ${demo.status}:\n${demo.out}`);
    assert.match(demo.stdout, /BAN {4}203\.0\.113\.5 /, 'the installed demo replays the shipped transcripts and bans');
  });

  await t.test('dpkg -r removes every file but the conffile', () => {
    const r = run('dpkg', ['-r', PKG]);
    assert.equal(r.status, 0, `dpkg -r failed:\n${r.out}`);
    assert.equal(dpkgStatus(), 'deinstall ok config-files');
    const left = files.filter((f) => {
      try {
        lstatSync(f);
        return true;
      } catch {
        return false;
      }
    });
    assert.deepEqual(left, [CONFFILE]);
    assert.equal(existsSync('/usr/lib/pbx-guardian'), false, '/usr/lib/pbx-guardian is still there');
    // state (bans) is kept until purge, as Debian does for a removed package
    assert.ok(existsSync('/var/lib/pbx-guardian'));
  });

  await t.test('dpkg -P (in a private network namespace) leaves nothing, in /etc, /var or the kernel', (st) => {
    let prefix: string[];
    if (haveIp) {
      ok('ip', ['netns', 'add', netns]);
      prefix = ['ip', 'netns', 'exec', netns];
      // what the daemon leaves in the kernel when it stops: our table and our sets
      if (which('nft')) {
        ok('ip', ['netns', 'exec', netns, 'nft', 'add', 'table', 'inet', 'pbx_guardian']);
        ok('ip', ['netns', 'exec', netns, 'nft', 'add', 'table', 'inet', 'pbx_guardian_fleet']);
        // a feed's table goes too; a table that only starts like ours stays
        ok('ip', ['netns', 'exec', netns, 'nft', 'add', 'table', 'inet', 'pbx_guardian_apiban']);
        ok('ip', ['netns', 'exec', netns, 'nft', 'add', 'table', 'inet', 'pbx_guardianx']);
        ok('ip', ['netns', 'exec', netns, 'nft', 'add', 'set', 'inet', 'pbx_guardian', 'ban4', '{ type ipv4_addr; flags timeout; }']);
      }
      if (which('ipset')) {
        ok('ip', ['netns', 'exec', netns, 'ipset', 'create', 'pbxg-ban4', 'hash:ip', 'timeout', '0', 'maxelem', '100000']);
        ok('ip', ['netns', 'exec', netns, 'ipset', 'create', 'not-ours', 'hash:ip']);
        if (which('iptables')) {
          ok('ip', ['netns', 'exec', netns, 'iptables', '-w', '-I', 'INPUT', '-m', 'set', '--match-set', 'pbxg-ban4', 'src', '-j', 'DROP']);
          ok('ip', ['netns', 'exec', netns, 'iptables', '-w', '-A', 'INPUT', '-p', 'tcp', '--dport', '22', '-j', 'ACCEPT']);
        }
      }
    } else {
      prefix = ['unshare', '-n'];
      st.diagnostic('no `ip`: purging under unshare -n without kernel state to clean');
    }
    const r = run(prefix[0]!, [...prefix.slice(1), 'dpkg', '-P', PKG]);
    assert.equal(r.status, 0, `dpkg -P failed:\n${r.out}`);
    assert.equal(dpkgStatus(), 'not-installed');
    for (const f of [
      ...files,
      '/etc/pbx-guardian',
      '/var/lib/pbx-guardian',
      '/run/pbx-guardian',
      '/etc/systemd/system/pbx-guardian.service',
      '/etc/systemd/system/multi-user.target.wants/pbx-guardian.service',
    ]) {
      assert.equal(existsSync(f) || isLink(f), false, `${f} is still there after purge`);
    }
    assert.equal(getent('passwd', PKG), null, 'user pbx-guardian is still there');
    assert.equal(getent('group', PKG), null, 'group pbx-guardian is still there');
    if (haveIp && which('nft')) {
      assert.notEqual(run('ip', ['netns', 'exec', netns, 'nft', 'list', 'table', 'inet', 'pbx_guardian']).status, 0, 'table inet pbx_guardian survived');
      assert.notEqual(
        run('ip', ['netns', 'exec', netns, 'nft', 'list', 'table', 'inet', 'pbx_guardian_fleet']).status,
        0,
        'table inet pbx_guardian_fleet survived',
      );
      assert.notEqual(run('ip', ['netns', 'exec', netns, 'nft', 'list', 'table', 'inet', 'pbx_guardian_apiban']).status, 0, "a feed's table survived");
      assert.equal(run('ip', ['netns', 'exec', netns, 'nft', 'list', 'table', 'inet', 'pbx_guardianx']).status, 0, 'a table not ours was deleted');
    }
    if (haveIp && which('ipset')) {
      const sets = ok('ip', ['netns', 'exec', netns, 'ipset', 'list', '-n']).split('\n').filter(Boolean);
      assert.deepEqual(sets, ['not-ours'], 'our ipsets must go, others stay');
      if (which('iptables')) {
        const rules = ok('ip', ['netns', 'exec', netns, 'iptables', '-w', '-S', 'INPUT']);
        assert.doesNotMatch(rules, /pbxg-/);
        assert.match(rules, /--dport 22 -j ACCEPT/, 'a rule that is not ours was removed');
      }
    }
  });
});

function isLink(p: string): boolean {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}
