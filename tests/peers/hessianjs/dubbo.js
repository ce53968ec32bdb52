// An independent Dubbo 2 peer for libtrace's tests: hessian.js (someone else's hessian2
// encoder and decoder) writes and reads the bodies; only the 16-byte frame header, which the
// Dubbo 2 protocol defines, is written here.
//
//   node dubbo.js client HOST PORT   send requests to a Dubbo server, print one JSON object:
//                                    {"sent": hex, "received": hex, "requests": [...],
//                                     "responses": [...]} as hessian.js encoded and read them
//   node dubbo.js decode             read JSON lines {"body": hex, "request": bool,
//                                    "status": n, "event": bool}; print one JSON line each:
//                                    what hessian.js reads in that body
'use strict';

const net = require('net');
const readline = require('readline');
const hessian = require('hessian.js');

const MAGIC = Buffer.from([0xda, 0xbb]);
const FLAG_REQUEST = 0x80;
const FLAG_TWO_WAY = 0x40;
const FLAG_EVENT = 0x20;
const HESSIAN2 = 2;
const STATUS_OK = 20;
// Response body flags (org.apache.dubbo.rpc.protocol.dubbo.DubboCodec)
const RESULT = { 0: 'exception', 1: 'value', 2: 'null', 3: 'exception', 4: 'value', 5: 'null' };

function frame(flags, status, id, body) {
  const header = Buffer.alloc(16);
  MAGIC.copy(header, 0);
  header[2] = flags;
  header[3] = status;
  header.writeBigUInt64BE(BigInt(id), 4);
  header.writeUInt32BE(body.length, 12);
  return Buffer.concat([header, body]);
}

function encode(values) {
  const encoder = new hessian.EncoderV2();
  for (const value of values) encoder.write(value);
  return encoder.get();
}

function readAll(body) {
  const decoder = new hessian.DecoderV2(body);
  const values = [];
  while (decoder.byteBuffer.position() < body.length) values.push(decoder.read());
  return values;
}

// The calls the client makes: several argument types, attachments, one-way, a heartbeat.
const CALLS = [
  { service: 'org.demo.GreetingService', version: '1.0.0', method: 'sayHello',
    types: 'Ljava/lang/String;', args: ['world'] },
  { service: 'org.demo.OrderService', version: '2.1.0', method: 'place',
    types: 'Ljava/lang/String;ILjava/util/List;Ljava/util/Map;',
    args: ['order-7', 42, [1, 2, 3], { $class: 'java.util.HashMap', $: { sku: 'A-1', qty: 2 } }] },
  { service: 'missing.Service', version: '1.0.0', method: 'sayHello',
    types: 'Ljava/lang/String;', args: ['nobody'] },
  { service: 'org.demo.GreetingService', version: '1.0.0', method: 'fail',
    types: '', args: [] },
  { service: 'org.demo.GreetingService', version: '1.0.0', method: 'notify',
    types: 'J', args: [{ $class: 'long', $: 1234567890123 }], oneWay: true },
  { heartbeat: true },
];

function requestFrame(call, id) {
  if (call.heartbeat) {
    return frame(FLAG_REQUEST | FLAG_TWO_WAY | FLAG_EVENT | HESSIAN2, 0, id, encode([null]));
  }
  const attachments = { path: call.service, interface: call.service, version: call.version };
  const body = encode(['2.0.2', call.service, call.version, call.method, call.types,
    ...call.args, attachments]);
  const flags = FLAG_REQUEST | (call.oneWay ? 0 : FLAG_TWO_WAY) | HESSIAN2;
  return frame(flags, 0, id, body);
}

function decodeBody(body, request, status, event) {
  if (event) return { event: true, values: readAll(body) };
  if (request) {
    const [dubboVersion, service, version, method, types, ...rest] = readAll(body);
    return { dubbo_version: dubboVersion, service, version, method, types,
      attachments: rest[rest.length - 1] };
  }
  const values = readAll(body);
  if (status !== STATUS_OK) return { status, error_message: values[0] };
  return { status, result: RESULT[values[0]], value: values[1] === undefined ? null : values[1] };
}

function splitFrames(bytes) {
  const frames = [];
  let at = 0;
  while (at + 16 <= bytes.length) {
    const length = bytes.readUInt32BE(at + 12);
    frames.push({ flags: bytes[at + 2], status: bytes[at + 3],
      id: Number(bytes.readBigUInt64BE(at + 4)), body: bytes.subarray(at + 16, at + 16 + length) });
    at += 16 + length;
  }
  return frames;
}

function client(host, port) {
  const frames = CALLS.map((call, i) => requestFrame(call, i + 1));
  const sent = Buffer.concat(frames);
  const expected = CALLS.filter((call) => !call.oneWay).length;
  const chunks = [];
  const socket = net.connect(port, host, () => socket.write(sent));
  const finish = () => {
    const received = Buffer.concat(chunks);
    const requests = splitFrames(sent).map((f) => ({ id: f.id, two_way: !!(f.flags & FLAG_TWO_WAY),
      ...decodeBody(f.body, true, 0, !!(f.flags & FLAG_EVENT)) }));
    const responses = splitFrames(received).map((f) => ({ id: f.id,
      ...decodeBody(f.body, false, f.status, !!(f.flags & FLAG_EVENT)) }));
    process.stdout.write(JSON.stringify({ sent: sent.toString('hex'),
      received: received.toString('hex'), requests, responses }) + '\n');
    socket.destroy();
  };
  socket.on('data', (data) => {
    chunks.push(data);
    if (splitFrames(Buffer.concat(chunks)).length >= expected) finish();
  });
  socket.setTimeout(5000, () => { finish(); process.exitCode = 1; });
  socket.on('error', (err) => { process.stderr.write(`dubbo.js: ${err.message}\n`); process.exit(2); });
}

function decodeLines() {
  const lines = readline.createInterface({ input: process.stdin });
  lines.on('line', (line) => {
    const item = JSON.parse(line);
    let out;
    try {
      out = decodeBody(Buffer.from(item.body, 'hex'), item.request, item.status, item.event);
    } catch (err) {
      out = { error: String(err.message || err) };
    }
    process.stdout.write(JSON.stringify(out) + '\n');
  });
}

const [mode, host, port] = process.argv.slice(2);
if (mode === 'client') client(host, Number(port));
else if (mode === 'decode') decodeLines();
else {
  process.stderr.write('usage: node dubbo.js client HOST PORT | node dubbo.js decode\n');
  process.exit(2);
}
