#!/usr/bin/env node
// Builds pbx-guardian_<version>_<arch>.deb from the compiled tree.
//
//   node packaging/build-deb.mjs [--out DIR] [--no-tsc] [--version V]
//                                [--node-dep auto|hard|soft] [--allow-incomplete]
//                                [--keep-staging]
//
// Steps: compile (tsc, unless --no-tsc) -> stage /usr/lib/pbx-guardian (dist/src, package.json,
// rules/, build/Release/nftables.node, production node_modules) -> smoke-test the staged native
// addons with this node -> /usr/bin launcher, unit, conffile, man page, copyright -> DEBIAN/ ->
// `dpkg-deb --build --root-owner-group`.
//
// Every child process is spawned with an argument array (no shell). Needs: node, npm, dpkg-deb,
// dpkg (for --print-architecture). The native addons are not compiled here: they must already be
// built in the repo (npm ci / node-gyp), for the same Node major as the target host.

import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..');
const PKG = 'pbx-guardian';
const LIBDIR = `usr/lib/${PKG}`;

function fail(msg) {
  process.stderr.write(`build-deb: ${msg}\n`);
  process.exit(1);
}

function parseArgs(argv) {
  const opts = { out: repo, tsc: true, version: null, nodeDep: 'auto', allowIncomplete: false, keep: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) fail(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--out') opts.out = resolve(val());
    else if (a === '--no-tsc') opts.tsc = false;
    else if (a === '--version') opts.version = val();
    else if (a === '--node-dep') opts.nodeDep = val();
    else if (a === '--allow-incomplete') opts.allowIncomplete = true;
    else if (a === '--keep-staging') opts.keep = true;
    else if (a === '-h' || a === '--help') {
      process.stdout.write(
        readFileSync(fileURLToPath(import.meta.url), 'utf8')
          .split('\n')
          .slice(1, 8)
          .join('\n') + '\n',
      );
      process.exit(0);
    } else fail(`unknown argument ${JSON.stringify(a)} (see --help)`);
  }
  if (!['auto', 'hard', 'soft'].includes(opts.nodeDep)) fail('--node-dep must be auto, hard or soft');
  return opts;
}

/** Runs a command (argument array, no shell); returns stdout; fails loudly on error. */
function run(cmd, args, { cwd = repo, allowFail = false, env = process.env } = {}) {
  const r = spawnSync(cmd, args, { cwd, env, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (r.error) {
    if (allowFail) return null;
    fail(`cannot run ${cmd}: ${r.error.message}`);
  }
  if (r.status !== 0) {
    if (allowFail) return null;
    fail(`${cmd} ${args.join(' ')} exited with ${r.status ?? r.signal}\n${r.stdout ?? ''}${r.stderr ?? ''}`);
  }
  return r.stdout;
}

/** Debian version from the npm version: a prerelease "1.2.0-rc.1" sorts before "1.2.0" as "1.2.0~rc.1". */
function debianVersion(v) {
  if (!/^[0-9][A-Za-z0-9.+~-]*$/.test(v)) fail(`version ${JSON.stringify(v)} is not usable as a Debian version`);
  return v.replace('-', '~');
}

/** Depth-first; `fn` may delete the entry it is given. */
function walk(dir, fn) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const st = lstatSync(p);
    fn(p, st);
    if (st.isDirectory() && existsSync(p)) walk(p, fn);
  }
}

function dirSizeKiB(dir) {
  let bytes = 0;
  walk(dir, (p, st) => {
    if (st.isFile()) bytes += st.size;
  });
  return Math.ceil(bytes / 1024);
}

/** dirs 0755, files 0644, symlinks untouched. Executables are set explicitly afterwards (node
 *  runs every .js file itself, and .node addons are loaded with dlopen: none needs +x). */
function normalizeModes(dir) {
  chmodSync(dir, 0o755);
  walk(dir, (p, st) => {
    if (st.isSymbolicLink()) return;
    chmodSync(p, st.isDirectory() ? 0o755 : 0o644);
  });
}

function copyDir(src, dst, filter) {
  cpSync(src, dst, { recursive: true, verbatimSymlinks: true, filter });
}

/** Removes what a compiled native module leaves behind that is not needed at run time. */
function pruneNativeBuildLeftovers(nodeModules) {
  const stack = [nodeModules];
  while (stack.length) {
    const dir = stack.pop();
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      if (!lstatSync(p).isDirectory()) continue;
      if (name === 'build' && existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'binding.gyp'))) {
        // keep build/Release/*.node only (what `bindings`/`node-gyp-build` load)
        for (const entry of readdirSync(p)) {
          if (entry !== 'Release') rmSync(join(p, entry), { recursive: true, force: true });
        }
        const rel = join(p, 'Release');
        if (existsSync(rel)) {
          for (const entry of readdirSync(rel)) {
            if (!entry.endsWith('.node') || entry === 'test_extension.node') {
              rmSync(join(rel, entry), { recursive: true, force: true });
            }
          }
        }
        continue;
      }
      stack.push(p);
    }
  }
  // better-sqlite3 ships the SQLite amalgamation and its C++ sources (~10 MB): not loaded at run time.
  const bs = join(nodeModules, 'better-sqlite3');
  for (const d of ['deps', 'src']) rmSync(join(bs, d), { recursive: true, force: true });
  // npm's link farm and VCS / CI files: nothing loads them at run time.
  rmSync(join(nodeModules, '.bin'), { recursive: true, force: true });
  walk(nodeModules, (p) => {
    const base = p.slice(p.lastIndexOf('/') + 1);
    if (['.gitattributes', '.github', '.travis.yml', '.npmignore'].includes(base) || base.startsWith('.eslintrc')) {
      rmSync(p, { recursive: true, force: true });
    }
  });
}

/** Strips debug symbols from the native addons (about 1/3 of their size), when `strip` exists. */
function stripAddons(dir) {
  const addons = [];
  walk(dir, (p, st) => {
    if (st.isFile() && p.endsWith('.node')) addons.push(p);
  });
  for (const a of addons) run('strip', ['--strip-unneeded', a], { allowFail: true });
}

/** Maintainer: $DEBFULLNAME <$DEBEMAIL>, else package.json "author", else a placeholder. */
function maintainer(pkg) {
  if (process.env.DEBEMAIL) return `${process.env.DEBFULLNAME ?? 'pbx-guardian maintainers'} <${process.env.DEBEMAIL}>`;
  const a = pkg.author;
  if (typeof a === 'string' && /<[^>]+@[^>]+>/.test(a)) return a;
  if (a && typeof a === 'object' && a.email) return `${a.name ?? 'pbx-guardian maintainers'} <${a.email}>`;
  return 'pbx-guardian maintainers <pbx-guardian@localhost>';
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  const pkg = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8'));
  const version = opts.version ?? debianVersion(pkg.version);
  const arch = run('dpkg', ['--print-architecture']).trim();

  if (opts.tsc) {
    const tsc = join(repo, 'node_modules', 'typescript', 'bin', 'tsc');
    if (!existsSync(tsc)) fail('typescript is not installed: run `npm ci` first');
    process.stdout.write('build-deb: compiling (tsc -p tsconfig.json)\n');
    run(process.execPath, [tsc, '-p', 'tsconfig.json']);
  }

  const distSrc = join(repo, 'dist', 'src');
  const cliMain = join(distSrc, 'cli', 'main.js');
  if (!existsSync(cliMain)) {
    if (!opts.allowIncomplete)
      fail(`${relative(repo, cliMain)} is missing: the package would have no command (build first, or pass --allow-incomplete for a test build)`);
    process.stderr.write(`build-deb: WARNING ${relative(repo, cliMain)} is missing; building an incomplete package\n`);
  }
  if (!existsSync(join(repo, 'node_modules'))) fail('node_modules is missing: run `npm ci` first');

  const staging = mkdtempSync(join(tmpdir(), 'pbxg-deb-'));
  const root = join(staging, 'root');
  const lib = join(root, LIBDIR);
  try {
    mkdirSync(lib, { recursive: true });

    // --- application ---------------------------------------------------------------------------
    if (existsSync(distSrc)) {
      copyDir(distSrc, join(lib, 'dist', 'src'), (src) => !src.endsWith('.map') && !src.endsWith('.d.ts'));
    }
    for (const f of ['package.json', 'package-lock.json']) {
      if (existsSync(join(repo, f))) cpSync(join(repo, f), join(lib, f));
    }
    if (existsSync(join(repo, 'rules'))) copyDir(join(repo, 'rules'), join(lib, 'rules'));
    // `pbx-guardian demo` replays the real Asterisk transcripts (only the .raw files, no tests).
    const transcripts = join(repo, 'test', 'fixtures', 'ami');
    if (existsSync(transcripts)) copyDir(transcripts, join(lib, 'test', 'fixtures', 'ami'), (src) => !src.endsWith('.md'));
    const addon = join(repo, 'build', 'Release', 'nftables.node');
    if (existsSync(addon)) {
      mkdirSync(join(lib, 'build', 'Release'), { recursive: true });
      cpSync(addon, join(lib, 'build', 'Release', 'nftables.node'));
    } else if (existsSync(join(repo, 'binding.gyp'))) {
      process.stderr.write(
        'build-deb: WARNING binding.gyp exists but build/Release/nftables.node is not built: the nftables backend will fall back (run `npx node-gyp rebuild`)\n',
      );
    }

    // --- production node_modules: a copy of the repo's (native addons already compiled), pruned --
    process.stdout.write('build-deb: copying node_modules and pruning devDependencies\n');
    // realpath: a worktree's node_modules may be a symlink to another checkout's; copied as a
    // symlink, npm prune would replace it with a fresh tree whose native modules are not built
    copyDir(realpathSync(join(repo, 'node_modules')), join(lib, 'node_modules'));
    run('npm', ['prune', '--omit=dev', '--offline', '--ignore-scripts', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: lib });
    pruneNativeBuildLeftovers(join(lib, 'node_modules'));
    rmSync(join(lib, 'node_modules', '.package-lock.json'), { force: true });
    for (const dev of Object.keys(pkg.devDependencies ?? {})) {
      if (existsSync(join(lib, 'node_modules', dev))) fail(`devDependency ${dev} is still in the staged node_modules after npm prune`);
    }

    // The staged native modules must load with this node (same ABI as the Depends we write).
    if (pkg.dependencies?.['better-sqlite3']) {
      run(process.execPath, ['-e', "const D=require('better-sqlite3');const d=new D(':memory:');d.prepare('select 1').get();d.close()"], { cwd: lib });
    }

    // --- launcher ------------------------------------------------------------------------------
    // A tiny launcher rather than a symlink: it does not depend on main.js's shebang or mode, and
    // finds `node` on PATH (Debian's, NodeSource's, or /usr/local/bin).
    mkdirSync(join(root, 'usr', 'bin'), { recursive: true });
    writeFileSync(join(root, 'usr', 'bin', PKG), `#!/bin/sh\n# pbx-guardian launcher (Debian package)\nexec node /${LIBDIR}/dist/src/cli/main.js "$@"\n`);

    // --- unit, conffile, man page, copyright ---------------------------------------------------
    mkdirSync(join(root, 'lib', 'systemd', 'system'), { recursive: true });
    cpSync(join(repo, 'systemd', `${PKG}.service`), join(root, 'lib', 'systemd', 'system', `${PKG}.service`));

    mkdirSync(join(root, 'etc', PKG), { recursive: true });
    const example = join(repo, 'config', 'guardian.example.yaml');
    if (existsSync(example)) {
      cpSync(example, join(root, 'etc', PKG, 'guardian.yaml'));
    } else {
      process.stderr.write('build-deb: WARNING config/guardian.example.yaml is missing; shipping a placeholder config\n');
      writeFileSync(
        join(root, 'etc', PKG, 'guardian.yaml'),
        '# pbx-guardian configuration. See pbx-guardian(1).\n# (placeholder: config/guardian.example.yaml was not present when this package was built)\n',
      );
    }

    const man = readFileSync(join(repo, 'packaging', `${PKG}.1`));
    mkdirSync(join(root, 'usr', 'share', 'man', 'man1'), { recursive: true });
    writeFileSync(join(root, 'usr', 'share', 'man', 'man1', `${PKG}.1.gz`), gzipSync(man, { level: 9 }));

    const docdir = join(root, 'usr', 'share', 'doc', PKG);
    mkdirSync(docdir, { recursive: true });
    // the Grafana dashboard and the Prometheus alert rules (docs/metrics.md)
    cpSync(join(repo, 'dashboards'), join(docdir, 'dashboards'), { recursive: true });
    const license = ['LICENSE', 'LICENSE.md'].map((f) => join(repo, f)).find((f) => existsSync(f));
    writeFileSync(
      join(docdir, 'copyright'),
      'Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n' +
        `Upstream-Name: ${PKG}\n\nFiles: *\nCopyright: the ${PKG} authors\nLicense: ${pkg.license ?? 'UNKNOWN'}\n` +
        (license
          ? ' ' +
            readFileSync(license, 'utf8')
              .trim()
              .split('\n')
              .map((l) => (l.trim() === '' ? '.' : l))
              .join('\n ') +
            '\n'
          : '') +
        "\nFiles: usr/lib/pbx-guardian/node_modules/*\nCopyright: their respective authors\nLicense: see each module's own LICENSE file\n",
    );

    stripAddons(lib);
    normalizeModes(root);
    chmodSync(join(root, 'usr', 'bin', PKG), 0o755);
    if (existsSync(cliMain)) chmodSync(join(lib, 'dist', 'src', 'cli', 'main.js'), 0o755);

    // --- DEBIAN/ -------------------------------------------------------------------------------
    const debian = join(root, 'DEBIAN');
    mkdirSync(debian);
    const nodeMajor = Number(process.versions.node.split('.')[0]);
    let nodeDep = opts.nodeDep;
    if (nodeDep === 'auto') {
      // Hard Depends when this machine's node is itself a dpkg package (Debian's or NodeSource's
      // `nodejs`), otherwise a Recommends and a postinst check.
      const owner = run('dpkg', ['-S', realpathSync(process.execPath)], { allowFail: true });
      nodeDep = owner && owner.startsWith('nodejs:') ? 'hard' : 'soft';
    }
    // No upper bound: Node 22 or a NodeSource build must install. better-sqlite3 is compiled against
    // this node's ABI (NODE_MODULE_VERSION), which changes with each major: the postinst warns when
    // the installed node has another ABI, and the daemon stops at start naming both ABIs
    // (NATIVE_MODULE_ABI, src/common/native-abi.ts); the nftables addon is N-API (any node).
    const nodeRel = `nodejs (>= ${nodeMajor})`;
    // libc6/libstdc++6: what the compiled addons link (nodejs pulls them too, but it may be soft).
    const depends = ['adduser', 'libc6', 'libstdc++6', 'libnftables1', ...(nodeDep === 'hard' ? [nodeRel] : [])];
    // lame: the Odoo bridge converts recordings to mp3 as the module asks by default (without it they go unconverted)
    const recommends = ['nftables | ipset', 'lame', ...(nodeDep === 'soft' ? [`nodejs (>= ${nodeMajor})`] : [])];

    const subst = {
      '@PACKAGE@': PKG,
      '@VERSION@': version,
      '@ARCH@': arch,
      '@INSTALLED_SIZE@': String(dirSizeKiB(root)),
      '@DEPENDS@': depends.join(', '),
      '@RECOMMENDS@': recommends.join(', '),
      '@MAINTAINER@': maintainer(pkg),
    };
    let control = readFileSync(join(here, 'debian', 'control.in'), 'utf8');
    for (const [k, v] of Object.entries(subst)) control = control.split(k).join(v);
    if (/@[A-Z_]+@/.test(control)) fail(`control.in has an unknown placeholder: ${control.match(/@[A-Z_]+@/)[0]}`);
    writeFileSync(join(debian, 'control'), control, { mode: 0o644 });

    const scriptSubst = { '@NODE_MAJOR@': String(nodeMajor), '@NODE_MODULES_ABI@': process.versions.modules };
    for (const s of ['postinst', 'prerm', 'postrm']) {
      let text = readFileSync(join(here, 'debian', s), 'utf8');
      for (const [k, v] of Object.entries(scriptSubst)) text = text.split(k).join(v);
      writeFileSync(join(debian, s), text);
      chmodSync(join(debian, s), 0o755);
    }
    cpSync(join(here, 'debian', 'conffiles'), join(debian, 'conffiles'));
    chmodSync(join(debian, 'conffiles'), 0o644);
    for (const cf of readFileSync(join(debian, 'conffiles'), 'utf8').split('\n').filter(Boolean)) {
      if (!existsSync(join(root, cf))) fail(`conffile ${cf} is not in the package`);
    }

    // --- build ---------------------------------------------------------------------------------
    mkdirSync(opts.out, { recursive: true });
    const deb = join(opts.out, `${PKG}_${version}_${arch}.deb`);
    process.stdout.write(`build-deb: dpkg-deb --build (${subst['@INSTALLED_SIZE@']} KiB installed)\n`);
    run('dpkg-deb', ['--build', '--root-owner-group', '-Zxz', '-z6', root, deb]);
    process.stdout.write(`build-deb: wrote ${deb} (${Math.round(statSync(deb).size / 1024)} KiB; node dependency: ${nodeDep})\n`);
  } finally {
    if (opts.keep) process.stdout.write(`build-deb: staging kept at ${staging}\n`);
    else rmSync(staging, { recursive: true, force: true });
  }
}

main();
