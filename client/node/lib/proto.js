'use strict';
// Loads corral.v1 from the .proto files shipped in this package (proto/).
//
// keepCase: true is load-bearing. Without it proto-loader renames fields to
// camelCase and silently drops the snake_case ones this client writes, so
// `lock_token` would vanish and a fenced Set would become an unfenced one.
// longs: String: uint64 fields (fencing tokens, counters) arrive as decimal
// strings, never as a lossy Number. enums: String gives enum names.
// oneofs: true sets `msg` to the name of the oneof member that is present.

const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const PROTO_DIR = path.join(__dirname, '..', 'proto');
const PROTO_FILE = 'corral/v1/corral.proto';

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
