// Licensed under the MIT License. See LICENSE in the repository root.
// Loads the proto with @grpc/proto-loader exactly as a Node.js gRPC client would, and prints the service's methods
// as JSON: [{"name", "requestType", "responseType", "requestStream", "responseStream"}]. Exit code 1 on any failure.
'use strict';

const path = require('path');
const protoLoader = require('@grpc/proto-loader');

const file = process.argv[2];
if (!file) {
  console.error('usage: node check.js <path/to/inference.proto>');
  process.exit(2);
}

try {
  const definition = protoLoader.loadSync(path.resolve(file), { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true });
  const service = definition['inference.v1.Inference'];
  if (!service) {
    throw new Error('service inference.v1.Inference not found; loaded: ' + Object.keys(definition).join(', '));
  }

  const methods = Object.keys(service).map((name) => ({
    name,
    requestType: service[name].requestType.type.name,
    responseType: service[name].responseType.type.name,
    requestStream: service[name].requestStream,
    responseStream: service[name].responseStream,
  }));
  console.log(JSON.stringify(methods));
} catch (error) {
  console.error(error && error.stack ? error.stack : String(error));
  process.exit(1);
}
