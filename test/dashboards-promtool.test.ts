/**
 * `promtool check rules dashboards/alert-rules.yaml` (promtool: Debian's prometheus package,
 * installed by .ci/run). Full lane: it runs a system program. Which metrics the rules read is
 * checked against a real daemon in test/dashboards.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { repoPath } from './helpers/fixtures.js';

const PROMTOOL = '/usr/bin/promtool';

test('dashboards/alert-rules.yaml passes promtool check rules', { skip: !existsSync(PROMTOOL) && 'no promtool (apt-get install prometheus)' }, () => {
  const r = spawnSync(PROMTOOL, ['check', 'rules', repoPath('dashboards/alert-rules.yaml')], { encoding: 'utf8', timeout: 20_000 });
  assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
  const m = /SUCCESS: (\d+) rules found/.exec(r.stdout);
  assert.ok(m && Number(m[1]) >= 10, r.stdout);
});
