import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function findRepoRoot(): string {
  // compiled tests run from dist/test/helpers/, sources from test/helpers/: walk up to package.json
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'test', 'fixtures'))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error(`repository root (a directory with package.json and test/fixtures) not found above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}

/** Absolute path of the repository root. */
export const REPO_ROOT = findRepoRoot();

/** Absolute path inside the repository, e.g. repoPath('rules', 'default.yaml'). */
export function repoPath(...parts: string[]): string {
  return join(REPO_ROOT, ...parts);
}

/** Absolute path of the fixtures directory, or of a file in it: fixturePath('ami/greeting.raw'). */
export function fixturePath(name = ''): string {
  return join(REPO_ROOT, 'test', 'fixtures', name);
}

/** Bytes of a fixture, e.g. readFixture('ami/session-recorder-full.raw'). */
export function readFixture(name: string): Buffer {
  return readFileSync(fixturePath(name));
}

/** Text (UTF-8) of a fixture. */
export function readFixtureText(name: string): string {
  return readFixture(name).toString('utf8');
}
