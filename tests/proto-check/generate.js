// Licensed under the MIT License. See LICENSE in the repository root.
// A Node.js gRPC client (@grpc/grpc-js over the proto as @grpc/proto-loader loads it) that calls
// inference.v1.Inference/Generate COUNT times at ADDRESS (plaintext h2c) and prints one JSON line per call:
// {"ok": true, "text": "...", "finish": "..."} or {"ok": false, "code": N, "details": "..."}. Exit code 1 if any failed.
//   node generate.js <address> <count> [prompt]
'use strict';

const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const [address, countText, prompt = 'def add(a, b):'] = process.argv.slice(2);
if (!address || !countText) {
  console.error('usage: node generate.js <address> <count> [prompt]');
  process.exit(2);
}

const definition = protoLoader.loadSync(path.resolve(__dirname, '../../proto/inference/v1/inference.proto'), { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true });
const { Inference } = grpc.loadPackageDefinition(definition).inference.v1;
const client = new Inference(address, grpc.credentials.createInsecure());

function generate() {
  return new Promise((resolve) => {
    let text = '';
    let finish = null;
    const call = client.Generate({ text: prompt, sampling: { temperature: 0 }, stop: { max_tokens: 8 } }, { deadline: Date.now() + 60000 });
    call.on('data', (message) => {
      if (message.chunk) {
        text += message.chunk.text;
      }
      if (message.complete) {
        finish = message.complete.finish_reason;
      }
    });
    call.on('error', (error) => resolve({ ok: false, code: error.code, details: error.details }));
    call.on('end', () => resolve({ ok: finish !== null, text, finish }));
  });
}

(async () => {
  let failed = 0;
  for (let i = 0; i < Number(countText); i++) {
    const result = await generate();
    failed += result.ok ? 0 : 1;
    console.log(JSON.stringify(result));
  }
  client.close();
  process.exit(failed === 0 ? 0 : 1);
})();
