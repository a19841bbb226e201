'use strict';
// index.d.ts: test/types/check.ts, which uses the documented API and marks
// misuse with @ts-expect-error, compiles under tsc --strict.

const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const path = require('node:path');
const { test } = require('node:test');
const { PACKAGE_DIR } = require('./support');

test('the TypeScript types accept the API and reject misuse', () => {
  const tsc = path.join(PACKAGE_DIR, 'node_modules', '.bin', 'tsc');
  const r = spawnSync(tsc, ['-p', path.join(__dirname, 'types')], { encoding: 'utf8', timeout: 120000 });
  assert.equal(r.status, 0, `tsc failed:\n${r.stdout}${r.stderr}`);
});
