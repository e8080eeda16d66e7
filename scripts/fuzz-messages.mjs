// The messages of `npm run fuzz` (scripts/fuzz.mjs): what a malicious or broken board can
// send with its own credentials, drawn from a seeded random source. A message is either
// commands sent on the board's authenticated connection (`commands`, each an argument
// list) or bytes written as they are after AUTH on a connection of their own (`raw`, with
// what Redis does with them: answer, close, or wait for the rest). Aimed at every key the
// board may write (firmware/PROTOCOL.md §3: its uplink, its state hash, its command queue
// through cm_claim, and its queue itself), at what it may not, and at the wire itself.
// Pure: no I/O.

const KINDS = ['hello', 'hb', 'start', 'out', 'dat', 'res', 'bye', 'init'];
const CONTROL = ['\x1b[2J', '\x1b[31m', '\x07', '\x1b]0;title\x07', '\r', '\0', '\x9b1m', '\u202e'];
const BAD_CURSORS = [
  '',
  'abc',
  '0-0',
  '-1',
  '1-',
  '-',
  '+',
  '$',
  '>',
  '1-2-3',
  '99999999999999999999-0',
  '18446744073709551615-18446744073709551615',
  '18446744073709551615-18446744073709551614',
  '0x10-1',
  ' 1-1',
  '1.5-0',
];
const FORBIDDEN = [
  ['KEYS', '*'],
  ['SCAN', '0'],
  ['CONFIG', 'SET', 'maxmemory', '1'],
  ['CONFIG', 'GET', '*'],
  ['FLUSHALL'],
  ['ACL', 'LIST'],
  ['ACL', 'SETUSER', 'default', 'on', 'nopass', '+@all'],
  ['CLIENT', 'LIST'],
  ['CLIENT', 'KILL', 'TYPE', 'normal'],
  ['EVAL', "return redis.call('keys', '*')", '0'],
  ['SCRIPT', 'FLUSH'],
  ['FUNCTION', 'DELETE', 'cloudmanager'],
  ['FUNCTION', 'LOAD', 'REPLACE', "#!lua name=cloudmanager\nredis.register_function('cm_claim', function() return 1 end)"],
  ['DEBUG', 'SLEEP', '5'],
  ['SHUTDOWN', 'NOSAVE'],
  ['SET', 'x', 'y'],
  ['DEL', 'cm:{mgr}:boards'],
  ['HGETALL', 'cm:{mgr}:boards'],
  ['HGET', 'cm:{mgr}:dk', 'x'],
  ['SUBSCRIBE', '__keyspace@0__:*'],
  ['PUBLISH', 'x', 'y'],
  ['MULTI'],
  ['SELECT', '1'],
  ['SWAPDB', '0', '1'],
  ['BGREWRITEAOF'],
  ['SAVE'],
  ['INFO'],
  ['DBSIZE'],
  ['OBJECT', 'ENCODING', 'x'],
  ['MIGRATE', '127.0.0.1', '1', 'x', '0', '1'],
  ['REPLICAOF', '127.0.0.1', '1'],
];

/** A size: mostly small, sometimes near the protocol's limits, rarely past Redis's (1 MiB). */
function size(rng) {
  const roll = rng.next();
  if (roll < 0.6) return rng.below(64);
  if (roll < 0.85) return 64 + rng.below(4096);
  if (roll < 0.97) return rng.pick([1024, 16 * 1024, 16 * 1024 + 1, 32 * 1024, 32 * 1024 + 1, 40 * 1024]) + rng.below(3) - 1;
  if (roll < 0.995) return 64 * 1024 + rng.below(960 * 1024);
  return 1024 * 1024 + rng.below(1024 * 1024); // past proto-max-bulk-len: Redis refuses the request
}

function bytes(rng, length) {
  const out = Buffer.alloc(length);
  for (let index = 0; index < length; index++) out[index] = (rng.next() * 256) | 0;
  return out;
}

/** A value of the wrong shape: text, numbers out of range, binary, control characters, deep JSON, or just big. */
function junk(rng) {
  switch (rng.below(12)) {
    case 0:
      return '';
    case 1:
      return rng.pick(['-1', '0', '1.5', '1e9', 'NaN', '99999999999999999999999', '-0', ' 7', '0x1f', '١٢']);
    case 2:
      return bytes(rng, size(rng));
    case 3:
      return Buffer.from([0xff, 0xfe, 0xc3, 0x28, 0xed, 0xa0, 0x80]); // not UTF-8
    case 4:
      return `x${rng.pick(CONTROL)}${rng.pick(CONTROL)}y`;
    case 5: {
      const depth = 1 + rng.below(8000);
      return rng.next() < 0.5 ? '['.repeat(depth) + ']'.repeat(depth) : '{"a":'.repeat(depth) + '1' + '}'.repeat(depth);
    }
    case 6:
      return JSON.stringify({ __proto__: { polluted: 1 }, constructor: { prototype: { x: 1 } } });
    case 7:
      return 'A'.repeat(size(rng));
    case 8:
      return rng.pick(BAD_CURSORS);
    case 9:
      return `c${rng.below(1e9).toString(36)}`; // a well-formed CID nobody sent
    case 10:
      return 'é'.repeat(1 + rng.below(20_000));
    default:
      return String(rng.below(1e6));
  }
}

/** Junk of at most 4 KiB: for keys whose values stay (the queue), so a run's leftovers stay small. */
function smallJunk(rng) {
  const value = junk(rng);
  return value.length > 4096 ? (value.subarray?.(0, 4096) ?? value.slice(0, 4096)) : value;
}

/** The fields of a well-formed entry of `kind` (so that one mutation hits one check). */
function template(rng, kind, cid) {
  switch (kind) {
    case 'hello':
      return { v: '1', boot: 'fuzz', p: 'virtual', mv: '1.27.0', cv: 'fuzz', mf: '30000', ip: '127.0.0.1', hb: '5', c: '0-0' };
    case 'hb':
      return { mf: String(rng.below(40_000)) };
    case 'start':
      return { i: cid, e: `${Date.now()}-0` };
    case 'out':
      return { i: cid, n: String(rng.below(10)), s: '1', d: 'hello\n' };
    case 'dat':
      return { i: cid, n: String(rng.below(10)), o: String(rng.below(10) * 1024), d: 'x'.repeat(1024) };
    case 'res':
      return { i: cid, ok: '1', n: '0', r: '{}' };
    case 'bye':
      return { why: 'reboot' };
    default:
      return {};
  }
}

function mutate(rng, fields) {
  const names = Object.keys(fields);
  switch (rng.below(6)) {
    case 0:
      if (names.length) delete fields[rng.pick(names)];
      return 'missing field';
    case 1:
      fields[rng.pick([...names, 'zz', 'toolongfieldname', '', 'k'])] = junk(rng);
      return 'bad field';
    case 2:
      if (names.length) fields[rng.pick(names)] = junk(rng);
      return 'wrong value';
    case 3:
      fields[rng.pick(['d', 'r', 'e', 'cv', 'nm', 'ip'])] = 'x'.repeat(size(rng));
      return 'oversized';
    case 4:
      fields[rng.pick(names.length ? names : ['d'])] = bytes(rng, size(rng));
      return 'binary';
    default:
      for (const name of names) if (rng.next() < 0.5) fields[name] = junk(rng);
      return 'many wrong';
  }
}

function uplinkEntry(rng, keys) {
  const roll = rng.next();
  const kind = roll < 0.85 ? rng.pick(KINDS) : roll < 0.95 ? rng.pick(['', 'HELLO', 'res ', 'x', '\x1b[2J', 'k'.repeat(100)]) : null;
  const fields = kind === null ? {} : { ...template(rng, kind, junk(rng).toString().slice(0, 40) || 'c1'), k: kind };
  const mutation = rng.next() < 0.9 ? mutate(rng, fields) : 'unmutated';
  const flat = Object.entries(fields).flat();
  if (rng.next() < 0.05) flat.push('odd'); // an odd field list: Redis refuses it
  if (rng.next() < 0.03) flat.push('k', 'hb'); // a field twice
  const head = rng.pick([
    ['MAXLEN', '~', '1000', '*'],
    ['MAXLEN', '~', '1000', '*'],
    ['MAXLEN', '~', '1000', '*'],
    ['*'],
    ['NOMKSTREAM', '*'],
    ['MAXLEN', '0', '*'],
    ['0-1'],
    [`${Date.now()}-*`],
    ['MAXLEN', '-5', '*'],
    ['MINID', '~', '0', 'LIMIT', '1000000', '*'],
  ]);
  return { category: `uplink ${kind === null ? 'no kind' : kind.slice(0, 10)}: ${mutation}`, commands: [['XADD', keys.up, ...head, ...flat]] };
}

function stateWrite(rng, keys) {
  const field = rng.pick(['cur', 'cur', 'stop', 'ack', 'ack', 'x', '', 'junk1', 'junk2']);
  const value = field === 'ack' && rng.next() < 0.5 ? `${junk(rng)} ${rng.pick(['-1', '99999999999', 'x', '0'])}` : junk(rng);
  const commands = [['HSET', keys.state, field, value]];
  if (rng.next() < 0.3) commands.push(['FCALL', 'cm_claim', '2', keys.cmd, keys.state, rng.pick(BAD_CURSORS)]);
  return { category: `state ${field || '(empty)'}`, commands };
}

function claim(rng, keys, other) {
  const after = rng.next() < 0.7 ? rng.pick(BAD_CURSORS) : junk(rng);
  const variants = [
    ['FCALL', 'cm_claim', '2', keys.cmd, keys.state, after],
    ['FCALL', 'cm_claim', '2', keys.state, keys.cmd, after],
    ['FCALL', 'cm_claim', rng.pick(['0', '1', '3', '-1', 'x', '99999']), keys.cmd, keys.state, after],
    ['FCALL', 'cm_claim', '2', other.cmd, other.state, after],
    ['FCALL', 'cm_claim', '2', keys.cmd, keys.state],
    ['FCALL', 'cm_enqueue', '3', keys.cmd, keys.state, keys.state, 'cfuzz', String(Date.now()), '10', '{}', 'i', 'cfuzz', 'o', 'exec'],
    ['FCALL', 'cm_cancel', '3', keys.cmd, keys.state, keys.state, 'c1', after],
    ['FCALL', rng.pick(['nosuch', 'CM_CLAIM', '']), '0'],
    ['FCALL_RO', 'cm_claim', '2', keys.cmd, keys.state, after],
  ];
  return { category: 'cm_claim', commands: [rng.pick(variants)] };
}

function ownKeys(rng, keys) {
  const variants = [
    ['XADD', keys.cmd, 'MAXLEN', '~', '16', '*', 'i', smallJunk(rng), 'o', rng.pick(['exec', 'put', 'x', '']), 'c', smallJunk(rng)],
    ['XADD', keys.cmd, 'MAXLEN', '16', '*', ...Object.entries({ i: 'c1', o: 'exec' }).flat()],
    ['XTRIM', keys.cmd, 'MAXLEN', rng.pick(['0', '1', '-1', 'x'])],
    ['XTRIM', keys.up, 'MAXLEN', '0'],
    ['XRANGE', keys.cmd, '-', '+', 'COUNT', rng.pick(['1', '100000', '-1'])],
    ['XRANGE', keys.up, '-', '+'],
    ['XREAD', 'COUNT', '1000', 'BLOCK', '1', 'STREAMS', keys.cmd, rng.pick(BAD_CURSORS)],
    ['XREAD', 'STREAMS', keys.cmd, keys.state, '0', '0'],
    ['HGET', keys.state, rng.pick(['cur', 'stop', 'ack', ''])],
    ['GETRANGE', `${keys.blobPrefix}c1:0`, '0', rng.pick(['-1', '99999999999', 'x'])],
    ['GETRANGE', keys.cmd, '0', '10'],
    ['HSET', keys.cmd, 'a', 'b'],
    ['XADD', keys.state, '*', 'a', 'b'],
    ['PING', junk(rng)],
    ['TIME'],
  ];
  return { category: 'own keys', commands: [rng.pick(variants)] };
}

function forbidden(rng, keys, other) {
  const variants = [
    ...FORBIDDEN,
    ['XADD', other.up, '*', 'k', 'res', 'i', 'c1', 'ok', '1', 'n', '0'],
    ['XADD', 'cm:{mgr}:up', '*', 'k', 'hb'],
    ['HSET', other.state, 'cur', '0-0'],
    ['XRANGE', other.cmd, '-', '+'],
    ['GETRANGE', `${other.blobPrefix}c1:0`, '0', '-1'],
    ['XREAD', 'STREAMS', keys.up, '0'],
    ['HSET', keys.up, 'a', 'b'],
  ];
  return { category: 'forbidden', commands: [rng.pick(variants)] };
}

/**
 * Bytes outside RESP's rules, or frames cut short. `expect`: `close` (Redis answers with a
 * Protocol error and closes), `reply` (it answers or ignores them and reads on), `hang`
 * (it waits for the rest of the frame).
 */
function raw(rng) {
  switch (rng.below(9)) {
    case 0:
      if (rng.next() < 0.25) return { category: 'raw: huge multibulk length', bytes: Buffer.from('*1048577\r\n'), expect: 'hang' }; // waits for the items
      return { category: 'raw: bad multibulk length', bytes: Buffer.from(`*${rng.pick(['abc', '99999999999', '-', ''])}\r\n`), expect: 'close' };
    case 1:
      return { category: 'raw: bad bulk length', bytes: Buffer.from(`*1\r\n$${rng.pick(['-5', 'x', '2147483648', '1048577'])}\r\n`), expect: 'close' };
    case 2:
      return { category: 'raw: unbalanced quotes', bytes: Buffer.from('SET "a b\r\n'), expect: 'close' };
    case 3:
      return { category: 'raw: inline too big', bytes: Buffer.concat([Buffer.from('PING '), Buffer.alloc(70 * 1024, 'a')]), expect: 'close' };
    case 4: {
      // One inline command of junk without quotes, line breaks or NUL (Redis would look for the line's end past it): one error reply.
      const text = bytes(rng, 1 + rng.below(200))
        .toString('latin1')
        .replace(/[\0\r\n"'\\*$]/g, '.');
      return { category: 'raw: inline junk', bytes: Buffer.from(`X${text}\r\n`, 'latin1'), expect: 'reply' };
    }
    case 5: {
      const declared = 16 + rng.below(1000);
      return { category: 'raw: frame cut short', bytes: Buffer.from(`*3\r\n$4\r\nXADD\r\n$${declared}\r\nabc`), expect: 'hang' };
    }
    case 6:
      // Redis skips the two bytes after a bulk without looking at them.
      return { category: 'raw: wrong terminator', bytes: Buffer.from('*1\r\n$4\r\nPINGxx'), expect: 'reply' };
    case 7:
      return { category: 'raw: empty or negative array', bytes: Buffer.from(`*${rng.pick(['0', '-1', '-5'])}\r\n`), expect: 'reply' };
    default:
      return { category: 'raw: nested arrays', bytes: Buffer.from('*1\r\n*1\r\n$4\r\nPING\r\n'), expect: 'close' };
  }
}

/** Sign-in abuse on a fresh connection (wrong passwords, other users, wrong arity). */
function auth(rng, user, otherUser) {
  const variants = [
    ['AUTH', user, 'wrong-password'],
    ['AUTH', otherUser, 'wrong-password'],
    ['AUTH', 'default', ''],
    ['AUTH', 'cm-manager', 'guess'],
    ['AUTH', user],
    ['AUTH', user, 'x', 'y'],
    ['AUTH', 'x'.repeat(size(rng) % 65_536), 'y'],
    ['HELLO', '2', 'AUTH', user, 'wrong'],
  ];
  return { category: 'auth', auth: rng.pick(variants) };
}

/**
 * A runaway board: `entries` uplink entries of about 1 MB (just under Redis's limit, far
 * over the protocol's 32 KiB) in one pipeline, the way a board stuck in a loop would send them.
 */
export function floodMessage(keys, entries = 128) {
  const value = Buffer.alloc(1_000_000, 'x');
  const commands = Array.from({ length: entries }, (_, index) => [
    'XADD',
    keys.up,
    'MAXLEN',
    '~',
    '1000',
    '*',
    'k',
    'out',
    'i',
    'c1',
    'n',
    String(index),
    's',
    '1',
    'd',
    value,
  ]);
  return { category: 'flood', commands };
}

/** One message for the board whose keys are `keys`; `other` are another board's keys. */
export function fuzzMessage(rng, { keys, other, user, otherUser }) {
  const roll = rng.next();
  if (roll < 0.45) return uplinkEntry(rng, keys);
  if (roll < 0.57) return stateWrite(rng, keys);
  if (roll < 0.69) return claim(rng, keys, other);
  if (roll < 0.77) return ownKeys(rng, keys);
  if (roll < 0.85) return forbidden(rng, keys, other);
  if (roll < 0.94) return raw(rng);
  if (roll < 0.97) return auth(rng, user, otherUser);
  // Well-formed, so the board also looks alive between the junk.
  return { category: 'valid hb', commands: [['XADD', keys.up, 'MAXLEN', '~', '1000', '*', 'k', 'hb', 'mf', String(20_000 + rng.below(10_000))]] };
}
