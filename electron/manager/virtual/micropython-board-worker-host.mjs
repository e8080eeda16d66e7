// @ts-check
// `_cm_lab_host`: the JavaScript module the lab's Python shims (lab-python/*.py) call.
// Part of the board lab's worker (micropython-board-worker.mjs).
//
// Everything crosses the Python/JS boundary as ints and short strings: Python passes the
// address of its buffer (uctypes.addressof) and a length, and the data is read from or
// written to the wasm memory directly. Passing a bytes object instead would create a JS
// proxy that pins the object in the GC heap until JavaScript's own GC runs.
//
// Sockets: the main thread owns the real TCP connections. Receiving asks it through the
// synchronous bridge (post a `call`, Atomics.wait until it answered in the shared buffer);
// what it answers (up to 64 KB) is kept here and served to later reads without another
// round trip — the equivalent of lwIP's receive queue, which lives outside the
// MicroPython heap on a real board too. Sending is posted without waiting, as lwIP queues
// it; a connection error reported by the main thread surfaces on the next send or receive.
// UDP sockets: micropython-board-worker-udp.mjs.
import { randomFillSync } from 'node:crypto';
import {
  CTL_STATE,
  CTL_RESULT,
  CTL_FEED,
  CTL_PARK,
  STATE_PENDING,
  STATE_DONE,
  STATE_IDLE,
  SOCK_SLOTS,
  ERRNO,
  POLLIN,
  POLLOUT,
  OP_CONNECT,
  OP_RECV,
  OP_POLL,
  OP_DNS,
  OP_SEND,
  OP_CLOSE,
  OP_UDP_POLL,
  sharedViews,
} from './micropython-board-protocol.mjs';
import { heapU8 } from './micropython-board-worker-memory.mjs';
import { createUdp } from './micropython-board-worker-udp.mjs';

const CRC_TABLE = Uint32Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
/** Value of each base64 character, -1 for others. */
const BASE64 = new Int8Array(256).fill(-1);
for (const [i, ch] of [...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'].entries()) BASE64[ch.charCodeAt(0)] = i;

/**
 * binascii.a2b_base64 as MicroPython's C version behaves: characters outside the alphabet
 * are skipped (an error with `strict`), `=` pads, and bits left over mean bad padding (-1).
 * @param {Uint8Array} heap @param {number} addr @param {number} n @param {number} out
 * @param {number} room @param {boolean} strict
 */
function decodeBase64(heap, addr, n, out, room, strict) {
  let bits = 0;
  let nbits = 0;
  let length = 0;
  let padded = false;
  for (let i = addr; i < addr + n; i++) {
    const c = heap[i] ?? 0;
    if (c === 61) {
      // '='
      if (nbits >= 2) {
        nbits -= 2;
        padded = true;
      }
      continue;
    }
    const v = BASE64[c] ?? -1;
    if (v < 0 || (strict && padded)) {
      if (strict) return -4;
      continue;
    }
    bits = ((bits << 6) | v) & 0xffffff;
    nbits += 6;
    if (nbits >= 8) {
      nbits -= 8;
      if (length >= room) return -5;
      heap[out + length++] = (bits >> nbits) & 0xff;
    }
  }
  return nbits ? -1 : length;
}

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;
const NEWLINE = 10;

/**
 * @typedef {{ rx: Uint8Array, off: number, eof: boolean, error: number, connected: boolean }} Sock
 * @typedef {{
 *   port: import('node:worker_threads').MessagePort,
 *   shared: SharedArrayBuffer,
 *   scratch: number,
 *   scratchBytes: number,
 *   wifi: { ssid: string, password: string },
 *   timing: { wifiJoinMs: number, wifiWrongPasswordMs: number, wifiNoApMs: number },
 *   accessPoint: { apActive: boolean, apSsid: string, apKey: string, apAuthmode: number },
 *   uniqueId: string,
 *   resetCause: number,
 *   beforeWait: () => void,
 *   beforeSend: () => void,
 *   beforeReset: () => void,
 *   takeInterrupt: () => boolean,
 * }} HostOptions
 */

/** @param {HostOptions} options */
export function createHost(options) {
  const { port, shared, scratch, scratchBytes, wifi, timing, uniqueId, resetCause, beforeWait, beforeSend, beforeReset, takeInterrupt } = options;
  /** The SDK's access-point settings (in the board's flash: every change is sent to be saved). */
  let ap = { ...options.accessPoint };
  const saveAccessPoint = (/** @type {typeof ap} */ settings) => {
    ap = { ...settings };
    port.postMessage({ type: 'flash', op: 'wifi', settings: { ...ap } });
  };
  const { ctl, sockErr, data } = sharedViews(shared);
  /** @type {Map<number, Sock>} */
  const socks = new Map();
  let nextSid = 1;
  /** Set by the worker before calling the Python side of run(). */
  let code = new Uint8Array(0);
  /** Latest raw GC figures reported by _cm_lab: [mem_alloc(), mem_free(), threshold()]. */
  /** @type {[alloc: number, free: number, threshold: number]} */
  const mem = [0, 0, -1];

  /**
   * Blocks until the main thread answered; returns its result. A pending Ctrl-C (taken
   * before the call, or answered as EINTR by the main thread during it) returns -EINTR,
   * which the Python side raises as KeyboardInterrupt.
   */
  function call(/** @type {Record<string, unknown>} */ request) {
    if (request.op !== OP_POLL && request.op !== OP_UDP_POLL && takeInterrupt()) return -ERRNO.EINTR;
    beforeWait();
    Atomics.store(ctl, CTL_STATE, STATE_PENDING);
    port.postMessage({ type: 'call', ...request });
    while (Atomics.load(ctl, CTL_STATE) !== STATE_DONE) Atomics.wait(ctl, CTL_STATE, STATE_PENDING);
    Atomics.store(ctl, CTL_STATE, STATE_IDLE);
    Atomics.add(ctl, CTL_FEED, 1);
    const result = Atomics.load(ctl, CTL_RESULT);
    if (result === -ERRNO.EINTR) takeInterrupt(); // this Ctrl-C is answered
    return result;
  }

  /** @param {number} sid */
  function pendingError(sid) {
    return Atomics.load(sockErr, sid % SOCK_SLOTS);
  }

  /**
   * Makes sure `s.rx` holds unread bytes, asking the main thread if needed.
   * Returns 1 (data), 0 (end of stream) or a negative errno.
   * @param {number} sid @param {Sock} s @param {number} timeoutMs
   */
  function fill(sid, s, timeoutMs) {
    if (s.off < s.rx.length) return 1;
    if (s.eof) return 0;
    const n = call({ op: OP_RECV, sid, timeoutMs });
    if (n < 0) {
      if (n !== -ERRNO.EAGAIN && n !== -ERRNO.ETIMEDOUT && n !== -ERRNO.EINTR) s.error = -n;
      return n;
    }
    if (n === 0) {
      s.eof = true;
      return 0;
    }
    s.rx = data.slice(0, n);
    s.off = 0;
    return 1;
  }

  const module = {
    // --- memory and run() --------------------------------------------------------
    mem(/** @type {number} */ alloc, /** @type {number} */ free, /** @type {number} */ threshold) {
      mem[0] = alloc;
      mem[1] = free;
      mem[2] = threshold ?? -1;
    },
    code_len() {
      return code.length;
    },
    code_read(/** @type {number} */ addr, /** @type {number} */ n) {
      heapU8().set(code.subarray(0, n), addr);
    },
    scratch() {
      return scratch;
    },
    scratch_bytes() {
      return scratchBytes;
    },

    // --- binascii (see lab-python/binascii.py) ----------------------------------------
    // Each reads `n` bytes at `addr`, writes its result at `out` (room for `room` bytes) and
    // returns the result's length, or a negative error code the Python side raises.
    a2b_base64(/** @type {number} */ addr, /** @type {number} */ n, /** @type {number} */ out, /** @type {number} */ room, /** @type {number} */ strict) {
      return decodeBase64(heapU8(), addr, n, out, room, strict !== 0);
    },
    b2a_base64(/** @type {number} */ addr, /** @type {number} */ n, /** @type {number} */ out, /** @type {number} */ room, /** @type {number} */ newline) {
      const heap = heapU8();
      const text = Buffer.from(heap.buffer, heap.byteOffset + addr, n).toString('base64') + (newline ? '\n' : '');
      if (text.length > room) return -5;
      heap.set(Buffer.from(text, 'latin1'), out);
      return text.length;
    },
    hexlify(/** @type {number} */ addr, /** @type {number} */ n, /** @type {number} */ out, /** @type {number} */ room, /** @type {number} */ sep) {
      const heap = heapU8();
      const hex = Buffer.from(heap.buffer, heap.byteOffset + addr, n).toString('hex');
      const text = sep >= 0 ? (hex.match(/../g) ?? []).join(String.fromCharCode(sep)) : hex;
      if (text.length > room) return -5;
      heap.set(Buffer.from(text, 'latin1'), out);
      return text.length;
    },
    unhexlify(/** @type {number} */ addr, /** @type {number} */ n, /** @type {number} */ out, /** @type {number} */ room) {
      const heap = heapU8();
      if (n % 2) return -2;
      const text = Buffer.from(heap.buffer, heap.byteOffset + addr, n).toString('latin1');
      if (!/^[0-9a-fA-F]*$/.test(text)) return -3;
      if (n / 2 > room) return -5;
      heap.set(Buffer.from(text, 'hex'), out);
      return n / 2;
    },
    /** Writes the CRC at `scratch`, big-endian. */
    crc32(/** @type {number} */ addr, /** @type {number} */ n, /** @type {number} */ high, /** @type {number} */ low) {
      const heap = heapU8();
      let crc = ~((high << 16) | low) >>> 0;
      for (let i = addr; i < addr + n; i++) crc = (CRC_TABLE[(crc ^ (heap[i] ?? 0)) & 0xff] ?? 0) ^ (crc >>> 8);
      new DataView(heap.buffer).setUint32(scratch, ~crc >>> 0);
    },

    // --- socket --------------------------------------------------------------------
    sock_open() {
      const sid = nextSid++;
      Atomics.store(sockErr, sid % SOCK_SLOTS, 0);
      socks.set(sid, { rx: new Uint8Array(0), off: 0, eof: false, error: 0, connected: false });
      return sid;
    },
    sock_connect(/** @type {number} */ sid, /** @type {string} */ host, /** @type {number} */ port_, /** @type {number} */ timeoutMs) {
      const s = socks.get(sid);
      if (!s) return -ERRNO.EBADF;
      if (s.connected) return -ERRNO.EINVAL;
      const r = call({ op: OP_CONNECT, sid, host, port: port_, timeoutMs });
      if (r === 0 || r === -ERRNO.EINPROGRESS) s.connected = true;
      return r;
    },
    sock_send(/** @type {number} */ sid, /** @type {number} */ addr, /** @type {number} */ n) {
      const s = socks.get(sid);
      if (!s) return -ERRNO.EBADF;
      if (!s.connected) return -ERRNO.ENOTCONN;
      const error = s.error || pendingError(sid);
      if (error) return -error;
      beforeSend();
      const bytes = heapU8().slice(addr, addr + n);
      port.postMessage({ type: 'net', op: OP_SEND, sid, data: bytes }, [bytes.buffer]);
      return n;
    },
    /**
     * Copies up to `n` received bytes to `addr`; with `line`, stops after a newline (and
     * keeps reading until one arrives, the stream ends or the timeout passes).
     * Returns the count, 0 at the end of the stream, or a negative errno.
     */
    sock_recv(/** @type {number} */ sid, /** @type {number} */ addr, /** @type {number} */ n, /** @type {number} */ timeoutMs, /** @type {number} */ line) {
      const s = socks.get(sid);
      if (!s) return -ERRNO.EBADF;
      if (!s.connected) return -ERRNO.ENOTCONN;
      if (s.error) return -s.error;
      if (addr === scratch) n = Math.min(n, scratchBytes); // recv(n) lands in the scratch buffer
      let got = 0;
      const heap = heapU8(); // nothing here can grow the memory, so the view stays valid
      while (got < n) {
        const r = fill(sid, s, timeoutMs);
        if (r <= 0) return got > 0 ? got : r; // what was read so far is not lost
        let k = Math.min(n - got, s.rx.length - s.off);
        if (line) {
          const nl = s.rx.indexOf(NEWLINE, s.off);
          if (nl >= 0 && nl < s.off + k) k = nl - s.off + 1;
        }
        heap.set(s.rx.subarray(s.off, s.off + k), addr + got);
        s.off += k;
        got += k;
        if (!line || heap[addr + got - 1] === NEWLINE) break;
      }
      return got;
    },
    sock_poll(/** @type {number} */ sid, /** @type {number} */ events) {
      const s = socks.get(sid);
      if (!s) return 0;
      let ready = s.off < s.rx.length || s.eof || s.error ? POLLIN : 0;
      if (!ready && events & POLLIN) ready = call({ op: OP_POLL, sid }) & POLLIN;
      if (s.connected) ready |= POLLOUT;
      return ready & events;
    },
    sock_close(/** @type {number} */ sid) {
      if (socks.delete(sid)) port.postMessage({ type: 'net', op: OP_CLOSE, sid });
    },
    /** Resolves `host` to an IPv4 address written at `scratch`; returns its length, -1 or -EINTR. */
    dns(/** @type {string} */ host) {
      let ip = IPV4.test(host) ? host : '';
      if (!ip) {
        const n = call({ op: OP_DNS, host });
        if (n === -ERRNO.EINTR) return n;
        if (n <= 0) return -1;
        ip = Buffer.from(data.subarray(0, n)).toString('latin1');
      }
      const bytes = Buffer.from(ip, 'latin1');
      heapU8().set(bytes, scratch);
      return bytes.length;
    },

    // --- network ---------------------------------------------------------------------
    /** 0: this is the lab's access point; 2: wrong password; 3: no such network. */
    wifi_check(/** @type {string} */ ssid, /** @type {string} */ password) {
      if (ssid !== wifi.ssid) return 3;
      return password === wifi.password ? 0 : 2;
    },
    /** How long a join with that outcome takes (ms): see BoardTiming. */
    wifi_delay(/** @type {number} */ outcome) {
      return outcome === 0 ? timing.wifiJoinMs : outcome === 2 ? timing.wifiWrongPasswordMs : timing.wifiNoApMs;
    },
    ap_active() {
      return ap.apActive ? 1 : 0;
    },
    ap_ssid() {
      return ap.apSsid;
    },
    ap_key() {
      return ap.apKey;
    },
    ap_auth() {
      return ap.apAuthmode;
    },
    ap_set(/** @type {number} */ active, /** @type {string} */ ssid, /** @type {string} */ key, /** @type {number} */ auth) {
      saveAccessPoint({ apActive: active !== 0, apSsid: String(ssid), apKey: String(key), apAuthmode: auth });
    },

    // --- os ---------------------------------------------------------------------------
    /** os.urandom(): fills `n` bytes at `addr` (the ESP8266's hardware random numbers; the host's CSPRNG here). */
    urandom(/** @type {number} */ addr, /** @type {number} */ n) {
      randomFillSync(heapU8(), addr, n);
    },

    // --- machine ----------------------------------------------------------------------
    uid() {
      return uniqueId;
    },
    cause() {
      return resetCause;
    },
    /** machine.reset(): saves the files, asks for a fresh interpreter and never returns. */
    reset() {
      beforeReset();
      port.postMessage({ type: 'machine-reset' });
      for (;;) Atomics.wait(ctl, CTL_PARK, 0);
    },
  };

  Object.assign(module, createUdp({ call, post: (notice) => port.postMessage({ type: 'net', ...notice }), data }));

  return {
    /** Registered as `_cm_lab_host` in the interpreter. */
    module,
    /** The source the next `_cm_lab.run()` reads (see code_len/code_read). */
    setCode(/** @type {string} */ source) {
      code = Buffer.from(source, 'utf8');
    },
    /** The raw GC figures last reported: [gc.mem_alloc(), gc.mem_free(), gc.threshold()]. */
    lastMem() {
      return mem;
    },
    /** The access point's settings, now. */
    accessPoint() {
      return { ...ap };
    },
    /** Changes (and saves) the access point's settings, as the SDK does for network.WLAN(AP_IF). */
    setAccessPoint(/** @type {typeof ap} */ settings) {
      saveAccessPoint(settings);
    },
  };
}
