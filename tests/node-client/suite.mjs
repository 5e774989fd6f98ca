// End-to-end suite with the official OpenAI Node client (npm `openai`), run by NodeClientTests against real servers:
//   node suite.mjs <completions-server-url> <chat-server-url>
// The first server runs the default model (completions), the second the default model with a chat template added.
// Prints one line per check and exits 1 if any failed.
import OpenAI from 'openai';

const [completionsUrl, chatUrl] = process.argv.slice(2);
if (!completionsUrl || !chatUrl) {
  console.error('usage: node suite.mjs <completions-server-url> <chat-server-url>');
  process.exit(2);
}

const model = 'tiny-pycoder';
const completions = new OpenAI({ baseURL: new URL('/v1', completionsUrl).href, apiKey: 'unused', maxRetries: 0, timeout: 120_000 });
const chat = new OpenAI({ baseURL: new URL('/v1', chatUrl).href, apiKey: 'unused', maxRetries: 0, timeout: 120_000 });
const prompt = 'def fibonacci(n):';
const messages = [{ role: 'system', content: 'You write Python.' }, { role: 'user', content: 'def fibonacci(n):' }];

let failures = 0;
function assert(condition, message) {
  if (!condition) {
    throw new Error(message);
  }
}

async function check(name, body) {
  try {
    await body();
    console.log(`ok   ${name}`);
  } catch (error) {
    failures++;
    console.log(`FAIL ${name}: ${error?.stack ?? error}`);
  }
}

async function expect400(promise, param) {
  try {
    await promise;
  } catch (error) {
    assert(error instanceof OpenAI.APIError, `expected an APIError, got ${error}`);
    assert(error.status === 400, `expected 400, got ${error.status}`);
    assert(error.param === param, `expected param ${param}, got ${error.param} (${error.message})`);
    return;
  }
  throw new Error('expected a 400');
}

async function collect(stream) {
  const chunks = [];
  for await (const chunk of stream) {
    chunks.push(chunk);
  }
  return chunks;
}

// ---- /v1/completions on the default model ----

await check('completions: greedy, usage, finish_reason', async () => {
  const r = await completions.completions.create({ model, prompt, max_tokens: 8, temperature: 0 });
  assert(r.object === 'text_completion', r.object);
  assert(r.choices[0].finish_reason === 'length', r.choices[0].finish_reason);
  assert(r.usage.completion_tokens === 8, JSON.stringify(r.usage));
  assert(r.usage.total_tokens === r.usage.prompt_tokens + 8, JSON.stringify(r.usage));
  assert(typeof r.usage.prompt_tokens_details?.cached_tokens === 'number', 'cached_tokens');
});

await check('completions: streamed text equals non-streamed, usage chunk last', async () => {
  const whole = await completions.completions.create({ model, prompt, max_tokens: 16, temperature: 0 });
  const chunks = await collect(await completions.completions.create({ model, prompt, max_tokens: 16, temperature: 0, stream: true, stream_options: { include_usage: true } }));
  const text = chunks.filter(c => c.choices.length > 0).map(c => c.choices[0].text).join('');
  assert(text === whole.choices[0].text, `${JSON.stringify(text)} vs ${JSON.stringify(whole.choices[0].text)}`);
  assert(chunks.at(-1).usage?.completion_tokens === 16, JSON.stringify(chunks.at(-1)));
});

await check('completions: n, seed, temperature, top_p reproducible', async () => {
  const body = { model, prompt, max_tokens: 10, temperature: 0.9, top_p: 0.95, n: 3, seed: 11 };
  const a = await completions.completions.create(body);
  const b = await completions.completions.create(body);
  assert(a.choices.length === 3, 'n');
  assert(JSON.stringify(a.choices.map(c => c.text)) === JSON.stringify(b.choices.map(c => c.text)), 'seeded output differs');
});

await check('completions: vLLM extensions top_k, min_p, repetition_penalty, min_tokens, ignore_eos, stop_token_ids', async () => {
  const r = await completions.completions.create({ model, prompt, max_tokens: 12, temperature: 0.7, seed: 3, top_k: 20, min_p: 0.05, repetition_penalty: 1.2, min_tokens: 12, ignore_eos: true, stop_token_ids: [0] });
  assert(r.usage.completion_tokens === 12, JSON.stringify(r.usage));
});

await check('completions: stop string ends the text', async () => {
  const r = await completions.completions.create({ model, prompt, max_tokens: 48, temperature: 0, stop: ['fibonacci function'] });
  assert(r.choices[0].finish_reason === 'stop', r.choices[0].finish_reason);
  assert(!r.choices[0].text.includes('fibonacci function'), r.choices[0].text);
});

await check('completions: logprobs, echo', async () => {
  const r = await completions.completions.create({ model, prompt, max_tokens: 4, temperature: 0, logprobs: 2, echo: true });
  const lp = r.choices[0].logprobs;
  assert(r.choices[0].text.startsWith(prompt), 'echo');
  assert(lp.tokens.length === r.usage.prompt_tokens + 4, `${lp.tokens.length}`);
  assert(lp.token_logprobs[0] === null, 'first prompt token has no logprob');
  assert(lp.token_logprobs.slice(1).every(v => v <= 0), 'logprobs <= 0');
  assert(lp.top_logprobs.at(-1) && Object.keys(lp.top_logprobs.at(-1)).length >= 2, 'top_logprobs');
  assert(lp.text_offset.length === lp.tokens.length, 'text_offset');
});

await check('completions: logit_bias, presence_penalty, frequency_penalty, user', async () => {
  const forced = await completions.completions.create({ model, prompt, max_tokens: 2, temperature: 0, logit_bias: { '500': 100 }, user: 'node-suite' });
  const again = await completions.completions.create({ model, prompt, max_tokens: 2, temperature: 0, logit_bias: { '500': 100 } });
  assert(forced.choices[0].text === again.choices[0].text, 'bias deterministic');
  const plain = await completions.completions.create({ model, prompt, max_tokens: 30, temperature: 0 });
  const penalized = await completions.completions.create({ model, prompt, max_tokens: 30, temperature: 0, presence_penalty: 2, frequency_penalty: 2 });
  assert(plain.choices[0].text !== penalized.choices[0].text, 'penalties changed nothing');
});

await check('completions: invalid values are 400s naming the parameter', async () => {
  await expect400(completions.completions.create({ model, prompt, max_tokens: 0 }), 'max_tokens');
  await expect400(completions.completions.create({ model, prompt, temperature: 3 }), 'temperature');
  await expect400(completions.completions.create({ model, prompt, logprobs: 50 }), 'logprobs');
  await expect400(completions.completions.create({ model, prompt, logit_bias: { 'x': 1 } }), 'logit_bias');
  await expect400(completions.completions.create({ model, prompt, n: 0 }), 'n');
  await expect400(completions.completions.create({ model, prompt, top_p: 0 }), 'top_p');
  await expect400(completions.completions.create({ model, prompt, presence_penalty: 5 }), 'presence_penalty');
});

// ---- /v1/chat/completions on the default model with a chat template ----

await check('chat: shape, usage, finish_reason', async () => {
  const r = await chat.chat.completions.create({ model, messages, max_completion_tokens: 8, temperature: 0 });
  assert(r.object === 'chat.completion', r.object);
  assert(r.choices[0].message.role === 'assistant', 'role');
  assert(r.choices[0].message.content.length > 0, 'content');
  assert(r.choices[0].finish_reason === 'length', r.choices[0].finish_reason);
  assert(r.usage.completion_tokens === 8, JSON.stringify(r.usage));
});

await check('chat: streamed equals non-streamed, role first, usage last', async () => {
  const whole = await chat.chat.completions.create({ model, messages, max_tokens: 12, temperature: 0 });
  const chunks = await collect(await chat.chat.completions.create({ model, messages, max_tokens: 12, temperature: 0, stream: true, stream_options: { include_usage: true } }));
  assert(chunks[0].choices[0].delta.role === 'assistant', 'role first');
  const text = chunks.filter(c => c.choices.length > 0).map(c => c.choices[0].delta.content ?? '').join('');
  assert(text === whole.choices[0].message.content, `${JSON.stringify(text)} vs ${JSON.stringify(whole.choices[0].message.content)}`);
  assert(chunks.at(-1).usage?.completion_tokens === 12, 'usage');
});

await check('chat: logprobs and top_logprobs', async () => {
  const r = await chat.chat.completions.create({ model, messages, max_tokens: 5, temperature: 0, logprobs: true, top_logprobs: 4 });
  const content = r.choices[0].logprobs.content;
  assert(content.length === 5, `${content.length}`);
  for (const t of content) {
    assert(t.top_logprobs.length === 4, 'top count');
    assert(Math.abs(t.top_logprobs[0].logprob - t.logprob) < 1e-5, 'greedy picks the top');
    assert(Array.isArray(t.bytes), 'bytes');
  }
});

await check('chat: n, seed, penalties, min_p, top_k reproducible', async () => {
  const body = { model, messages, max_tokens: 10, temperature: 1, seed: 5, n: 2, presence_penalty: 0.5, frequency_penalty: 0.5, min_p: 0.02, top_k: 40 };
  const a = await chat.chat.completions.create(body);
  const b = await chat.chat.completions.create(body);
  assert(a.choices.length === 2, 'n');
  assert(JSON.stringify(a.choices.map(c => c.message.content)) === JSON.stringify(b.choices.map(c => c.message.content)), 'seeded output differs');
});

await check('chat: response_format json_schema', async () => {
  const r = await chat.chat.completions.create({
    model, messages, max_tokens: 60, temperature: 0,
    response_format: { type: 'json_schema', json_schema: { name: 'r', strict: true, schema: { type: 'object', properties: { ok: { type: 'boolean' }, kind: { enum: ['a', 'b'] } }, required: ['ok', 'kind'], additionalProperties: false } } },
  });
  const value = JSON.parse(r.choices[0].message.content);
  assert(typeof value.ok === 'boolean' && ['a', 'b'].includes(value.kind), r.choices[0].message.content);
});

await check('chat: response_format json_object', async () => {
  const r = await chat.chat.completions.create({ model, messages, max_tokens: 120, temperature: 0, response_format: { type: 'json_object' } });
  const text = r.choices[0].message.content;
  assert(text.trimStart().startsWith('{'), text);
  if (r.choices[0].finish_reason === 'stop') {
    assert(typeof JSON.parse(text) === 'object', text);
  }
});

await check('chat: tools with a named tool_choice', async () => {
  const tools = [{ type: 'function', function: { name: 'set_mode', description: 'Sets the mode', parameters: { type: 'object', properties: { mode: { enum: ['fast', 'safe'] } }, required: ['mode'] } } }];
  const r = await chat.chat.completions.create({ model, messages, max_tokens: 40, temperature: 0, tools, tool_choice: { type: 'function', function: { name: 'set_mode' } } });
  const call = r.choices[0].message.tool_calls[0];
  assert(call.type === 'function' && call.function.name === 'set_mode', JSON.stringify(call));
  assert(['fast', 'safe'].includes(JSON.parse(call.function.arguments).mode), call.function.arguments);
});

await check('chat: tools with tool_choice required, streamed', async () => {
  const tools = [{ type: 'function', function: { name: 'ping', parameters: { type: 'object', properties: { ok: { type: 'boolean' } }, required: ['ok'] } } }];
  const chunks = await collect(await chat.chat.completions.create({ model, messages, max_tokens: 40, temperature: 0, tools, tool_choice: 'required', stream: true }));
  const calls = chunks.flatMap(c => c.choices[0]?.delta?.tool_calls ?? []);
  assert(calls.length === 1 && calls[0].function.name === 'ping', JSON.stringify(calls));
  assert(chunks.at(-1).choices[0].finish_reason === 'tool_calls', chunks.at(-1).choices[0].finish_reason);
});

await check('chat: stop, logit_bias, user, stop_token_ids, ignore_eos, min_tokens', async () => {
  const r = await chat.chat.completions.create({ model, messages, max_tokens: 6, temperature: 0, stop: ['\n\n\n'], logit_bias: { '300': 100 }, user: 'u', stop_token_ids: [1], ignore_eos: true, min_tokens: 6 });
  assert(r.usage.completion_tokens === 6, JSON.stringify(r.usage));
});

await check('chat: invalid values are 400s naming the parameter', async () => {
  await expect400(chat.chat.completions.create({ model, messages: [] }), 'messages');
  await expect400(chat.chat.completions.create({ model, messages: [{ role: 'wizard', content: 'x' }] }), 'messages[0].role');
  await expect400(chat.chat.completions.create({ model, messages, top_logprobs: 3 }), 'top_logprobs');
  await expect400(chat.chat.completions.create({ model, messages, tools: [{ type: 'function', function: { name: 'a b' } }] }), 'tools[0].function.name');
  await expect400(chat.chat.completions.create({ model, messages, frequency_penalty: -3 }), 'frequency_penalty');
  await expect400(chat.chat.completions.create({ model, messages, response_format: { type: 'yaml' } }), 'response_format.type');
});

// ---- /v1/responses (the Responses API) on the chat server ----

await check('responses: shape, output_text, usage, incomplete at max_output_tokens', async () => {
  const r = await chat.responses.create({ model, instructions: 'You write Python.', input: 'def fibonacci(n):', max_output_tokens: 8, temperature: 0 });
  assert(r.object === 'response', r.object);
  assert(r.id.startsWith('resp_'), r.id);
  assert(r.status === 'incomplete' && r.incomplete_details?.reason === 'max_output_tokens', JSON.stringify(r.incomplete_details));
  assert(r.output.length === 1 && r.output[0].type === 'message' && r.output[0].role === 'assistant', JSON.stringify(r.output));
  assert(r.output_text.length > 0, 'empty output_text');
  assert(r.usage.output_tokens === 8 && r.usage.total_tokens === r.usage.input_tokens + 8, JSON.stringify(r.usage));
  const c = await chat.chat.completions.create({ model, messages, max_tokens: 8, temperature: 0 });
  assert(c.choices[0].message.content === r.output_text, 'differs from the chat completion of the same conversation');
});

await check('responses: streamed events in order, text equals non-streamed', async () => {
  const body = { model, input: [{ role: 'user', content: [{ type: 'input_text', text: 'def fibonacci(n):' }] }], max_output_tokens: 12, temperature: 0 };
  const whole = await chat.responses.create(body);
  const events = await collect(await chat.responses.create({ ...body, stream: true }));
  assert(events.every((e, i) => e.sequence_number === i), 'sequence numbers');
  const types = events.map((e) => e.type);
  assert(types[0] === 'response.created' && types[1] === 'response.in_progress', types.join());
  assert(types.includes('response.output_item.added') && types.includes('response.content_part.added') && types.includes('response.output_text.done'), types.join());
  const text = events.filter((e) => e.type === 'response.output_text.delta').map((e) => e.delta).join('');
  assert(text === whole.output_text, `streamed ${JSON.stringify(text)} vs ${JSON.stringify(whole.output_text)}`);
  const last = events[events.length - 1];
  assert(last.type === `response.${whole.status}`, `${last.type} vs ${whole.status}`);
  assert(last.response.usage.output_tokens === whole.usage.output_tokens, 'usage in the last event');
});

await check('responses: function tool with a named tool_choice, and its output sent back', async () => {
  const tools = [{ type: 'function', name: 'set_mode', parameters: { type: 'object', properties: { mode: { enum: ['fast', 'safe'] } }, required: ['mode'] }, strict: true }];
  const r = await chat.responses.create({ model, input: 'go', max_output_tokens: 40, temperature: 0, tools, tool_choice: { type: 'function', name: 'set_mode' } });
  const call = r.output.find((o) => o.type === 'function_call');
  assert(call && call.name === 'set_mode' && call.call_id.startsWith('call_'), JSON.stringify(r.output));
  assert(['fast', 'safe'].includes(JSON.parse(call.arguments).mode), call.arguments);
  const next = await chat.responses.create({ model, input: [{ role: 'user', content: 'go' }, call, { type: 'function_call_output', call_id: call.call_id, output: 'done' }], tools, max_output_tokens: 4, temperature: 0 });
  assert(next.usage.input_tokens > r.usage.input_tokens, 'the call and its output are in the prompt');
});

await check('responses: text.format json_schema', async () => {
  const r = await chat.responses.create({
    model, input: 'A point.', max_output_tokens: 120, temperature: 0,
    text: { format: { type: 'json_schema', name: 'point', strict: true, schema: { type: 'object', properties: { x: { type: 'integer' } }, required: ['x'], additionalProperties: false } } },
  });
  if (r.status === 'completed') {
    assert(Number.isInteger(JSON.parse(r.output_text).x), r.output_text);
  } else {
    assert(r.output_text.trimStart().startsWith('{'), r.output_text);
  }
});

await check('responses: invalid values are 400s naming the parameter', async () => {
  await expect400(chat.responses.create({ model, input: 'x', previous_response_id: 'resp_1' }), 'previous_response_id');
  await expect400(chat.responses.create({ model, input: '' }), 'input');
  await expect400(chat.responses.create({ model, input: 'x', max_output_tokens: 0 }), 'max_output_tokens');
  await expect400(chat.responses.create({ model, input: 'x', tools: [{ type: 'web_search' }] }), 'tools[0].type');
});

// ---- the default model's own chat template: chat works on a fresh server ----

await check('default model: chat.completions and responses work out of the box', async () => {
  const c = await completions.chat.completions.create({ model, messages: [{ role: 'user', content: 'Sort a list of numbers.' }], max_tokens: 8, temperature: 0 });
  assert(c.choices[0].message.content.length > 0 && c.usage.completion_tokens === 8, JSON.stringify(c));
  const r = await completions.responses.create({ model, input: 'Sort a list of numbers.', max_output_tokens: 8, temperature: 0 });
  assert(r.output_text === c.choices[0].message.content, 'responses and chat differ');
});

console.log(failures === 0 ? 'all checks passed' : `${failures} check(s) failed`);
process.exit(failures === 0 ? 0 : 1);
