import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { COMMANDS, commandNames } from '../src/cli/help.js';
import { cli } from './helpers/cli.js';
import { repoPath } from './helpers/fixtures.js';

/** "config show", "odoo init": two words; every other command one */
const nameOf = (words: string[]) => (words[0] === 'config' || words[0] === 'odoo' ? words.slice(0, 2).join(' ') : words[0]!);

/** The command of each .TP entry of the man page's COMMANDS section, roff taken out. */
function manCommands(): string[] {
  const man = readFileSync(repoPath('packaging/pbx-guardian.1'), 'utf8');
  const section = man.slice(man.indexOf('.SH COMMANDS'), man.indexOf('.SH', man.indexOf('.SH COMMANDS') + 4));
  const lines = section.split('\n');
  const out: string[] = [];
  lines.forEach((l, i) => {
    if (l !== '.TP') return;
    const tag = lines[i + 1]!.replace(/^\.(B|BR|BI|I|IR)\s+/, '')
      .replace(/\\f[BIRP]/g, '')
      .replace(/\\-/g, '-')
      .replace(/"/g, ' ');
    out.push(nameOf(tag.trim().split(/\s+/)));
  });
  return out;
}

/** The commands of the README's CLI reference block. */
function readmeCommands(): string[] {
  const readme = readFileSync(repoPath('README.md'), 'utf8');
  const start = readme.indexOf('```\n', readme.indexOf('## CLI reference')) + 4;
  const block = readme.slice(start, readme.indexOf('```', start));
  return block
    .split('\n')
    .filter((l) => l.startsWith('pbx-guardian '))
    .map((l) => nameOf(l.split(/\s+/).slice(1)));
}

test('--help, the man page and the README list the same commands, in the same order', async () => {
  const names = commandNames();
  assert.ok(names.includes('odoo init') && names.includes('why') && names.includes('config show'), names.join(', '));
  assert.deepEqual(manCommands(), names, 'packaging/pbx-guardian.1 COMMANDS (.TP entries)');
  assert.deepEqual(readmeCommands(), names, 'README.md CLI reference');
  const help = await cli('--help');
  assert.equal(help.status, 0);
  for (const [usage] of COMMANDS) assert.ok(help.stdout.includes(`  ${usage}`), `--help shows "${usage}"`);
});

test('every command of --help is one the CLI dispatches', () => {
  const main = readFileSync(repoPath('src/cli/main.ts'), 'utf8');
  for (const name of commandNames()) assert.ok(main.includes(`case '${name.split(' ')[0]}':`), `src/cli/main.ts handles "${name}"`);
});
