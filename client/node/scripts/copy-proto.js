'use strict';
// `npm pack` / `npm publish` (prepack): the package carries the .proto files
// it loads, copied from the repository's proto/ (the one source of truth),
// so a packed or installed corral-client needs no checkout. `--remove`
// (postpack) deletes the copy again, so that a checkout never loads a stale
// one.

const fs = require('node:fs');
const path = require('node:path');

const FILES = ['corral/v1/corral.proto', 'corral/v1/config.proto'];
const from = path.join(__dirname, '..', '..', '..', 'proto');
const to = path.join(__dirname, '..', 'proto');

if (process.argv.includes('--remove')) {
  fs.rmSync(to, { recursive: true, force: true });
  process.exit(0);
}
for (const file of FILES) {
  fs.mkdirSync(path.dirname(path.join(to, file)), { recursive: true });
  fs.copyFileSync(path.join(from, file), path.join(to, file));
}
