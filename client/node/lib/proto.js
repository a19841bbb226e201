'use strict';
// Loads corral.v1 from the .proto files: the package's own proto/ (copied
// there when it is packed, scripts/copy-proto.js), else, in a checkout, the
// repository's proto/.
//
// keepCase: true is load-bearing. Without it proto-loader renames fields to
// camelCase and silently drops the snake_case ones this client writes, so
// `lock_token` would vanish and a fenced Set would become an unfenced one.
// longs: String: uint64 fields (fencing tokens, counters) arrive as decimal
// strings, never as a lossy Number. enums: String gives enum names.
// oneofs: true sets `msg` to the name of the oneof member that is present.

const fs = require('node:fs');
const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const PROTO_FILE = 'corral/v1/corral.proto';
const PACKED_PROTO_DIR = path.join(__dirname, '..', 'proto');
const PROTO_DIR = fs.existsSync(path.join(PACKED_PROTO_DIR, PROTO_FILE))
  ? PACKED_PROTO_DIR
  : path.join(__dirname, '..', '..', '..', 'proto');

const LOADER_OPTIONS = Object.freeze({
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
  includeDirs: [PROTO_DIR],
});

let loaded = null;

// The generated service constructor (corral.v1.Corral), loaded once.
function corralService() {
  if (loaded === null) {
    const definition = protoLoader.loadSync(PROTO_FILE, LOADER_OPTIONS);
    loaded = grpc.loadPackageDefinition(definition).corral.v1.Corral;
  }
  return loaded;
}

module.exports = { corralService, LOADER_OPTIONS, PROTO_DIR, PROTO_FILE };
