/**
 * The esptool flasher stub, device side, as it behaves on an ESP8266 once a host has loaded
 * it into RAM with MEM_BEGIN/MEM_DATA/MEM_END (behaviour read from esptool's
 * flasher_stub/stub_flasher.c and stub_write_flash.c; no code taken from it):
 * - greets with the unsolicited frame "OHAI";
 * - every response: value 0 (READ_REG: the register), 2 status bytes (error, status);
 *   error 0xC0-0xC9 for its own failures, 0xFF for a command it does not implement;
 * - FLASH_DATA / FLASH_DEFL_DATA are acknowledged *before* they are written (the host sends
 *   the next block while the chip writes this one); a write error shows up in the answer to
 *   the next block or to FLASH_END;
 * - erases as it writes (4 KB sectors, 64 KB blocks where aligned), inflates zlib data;
 * - SPI_FLASH_MD5 answers 16 raw bytes (the ROM would send 32 hex characters);
 * - CHANGE_BAUDRATE carries the new rate and the rate the line runs at now: the ESP8266
 *   has no crystal detection, so the stub derives the new UART divider from the current
 *   one (stub_io_set_baudrate / get_new_uart_divider: divider × old ÷ new). A host that
 *   sends a wrong old rate (0, as the ROM protocol has it) gets a chip at a wrong rate, or
 *   mute. It switches after its answer has left; RUN_USER_CODE never answers.
 * - Timing (flash-chip.ts FlashTiming): 64 KB block erases where a whole aligned block is
 *   erased ahead, sector erases otherwise, page programs, a chip erase per MB.
 */
import { constants as zlibConstants, createInflate, type Inflate } from 'node:zlib';
import { eraseCostMs, FlashRangeError, programCostMs, SECTOR_SIZE } from './flash-chip.js';
import { UART0_CLKDIV_REG } from './chip-registers.js';
import {
  buildResponse,
  dataChecksum,
  linkShouldFail,
  Op,
  parseCommand,
  parseDataBlock,
  words,
  type Loader,
  type LoaderContext,
  type LoaderResult,
} from './rom-protocol.js';

export const StubError = {
  OK: 0x00,
  BAD_DATA_LEN: 0xc0,
  BAD_DATA_CHECKSUM: 0xc1,
  BAD_BLOCKSIZE: 0xc2,
  INVALID_COMMAND: 0xc3,
  FAILED_SPI_OP: 0xc4,
  FAILED_SPI_UNLOCK: 0xc5,
  NOT_IN_FLASH_MODE: 0xc6,
  INFLATE_ERROR: 0xc7,
  NOT_ENOUGH_DATA: 0xc8,
  TOO_MUCH_DATA: 0xc9,
  CMD_NOT_IMPLEMENTED: 0xff,
} as const;

export const OHAI = Buffer.from('OHAI', 'ascii');
const MAX_WRITE_BLOCK = 0x4000;
const SECTORS_PER_BLOCK = 16;
const FLASH_MAX_SIZE = 16 * 1024 * 1024;

interface WriteSession {
  nextWrite: number;
  remaining: number;
  nextEraseSector: number;
  remainingEraseSectors: number;
  lastError: number;
  inflater: Inflate | null;
  inflated: Buffer[];
  corruptNextWrite: boolean;
  /** Chip time the current block costs (erase + program). */
  workMs: number;
}

interface ReadSession {
  offset: number;
  length: number;
  packetSize: number;
  maxInFlight: number;
  sent: number;
  acked: number;
}

export class FlasherStub implements Loader {
  readonly kind = 'stub';
  private write: WriteSession | null = null;
  private read: ReadSession | null = null;
  /** Flash size set by SPI_SET_PARAMS (the stub starts with the 16 MB maximum). */
  private configuredSize = FLASH_MAX_SIZE;

  constructor(private readonly ctx: LoaderContext) {}

  /** The frame the stub sends once it runs. */
  greeting(): Buffer {
    return OHAI;
  }

  async handle(frame: Buffer): Promise<LoaderResult> {
    if (this.read) return this.readAck(frame);
    const command = parseCommand(frame);
    if (!command) return { replies: [] };
    const { op, data } = command;
    const args = words(data);
    const reply = (error: number = StubError.OK, body: Uint8Array = Buffer.alloc(0), value = 0): Buffer =>
      buildResponse(op, value, Buffer.concat([body, Buffer.from([error, 0])]));
    const lengthIs = (n: number) => data.length === n;

    switch (op) {
      case Op.SYNC: {
        if (!lengthIs(36)) return { replies: [reply(StubError.BAD_DATA_LEN)] };
        const answer = reply();
        return { replies: Array.from({ length: 8 }, () => answer) };
      }
      case Op.READ_REG:
        if (!lengthIs(4)) return { replies: [reply(StubError.BAD_DATA_LEN)] };
        return { replies: [reply(StubError.OK, undefined, this.ctx.registers.read(args[0]!))] };
      case Op.WRITE_REG: {
        if (data.length === 0 || data.length % 16 !== 0) return { replies: [reply(StubError.BAD_DATA_LEN)] };
        let delayUs = 0;
        for (let at = 0; at < args.length; at += 4) {
          this.ctx.registers.write(args[at]!, args[at + 1]!, args[at + 2]!);
          delayUs += args[at + 3]!;
        }
        return { replies: [reply()], delayMs: delayUs / 1000 };
      }
      case Op.SPI_ATTACH:
        return { replies: [reply(lengthIs(4) ? StubError.OK : StubError.BAD_DATA_LEN)] };
      case Op.SPI_SET_PARAMS:
        if (!lengthIs(24)) return { replies: [reply(StubError.BAD_DATA_LEN)] };
        this.configuredSize = args[1]!;
        return { replies: [reply()] };
      case Op.CHANGE_BAUDRATE: {
        if (!lengthIs(8)) return { replies: [reply(StubError.BAD_DATA_LEN)] };
        const [newBaud, oldBaud] = args as [number, number];
        const divider = this.ctx.registers.read(UART0_CLKDIV_REG) & 0xfffff;
        const newDivider = newBaud > 0 ? Math.floor((divider * oldBaud) / newBaud) : 0;
        return { replies: [reply()], then: { kind: 'set-baud', baud: newBaud, divider: newDivider } };
      }
      case Op.FLASH_BEGIN:
      case Op.FLASH_DEFL_BEGIN:
        return { replies: [reply(this.flashBegin(op, data, args))] };
      case Op.FLASH_DATA:
      case Op.FLASH_DEFL_DATA:
        return this.flashData(op, command.checksum, data, reply);
      case Op.FLASH_END:
      case Op.FLASH_DEFL_END:
        return this.flashEnd(data, reply);
      case Op.SPI_FLASH_MD5:
        return this.md5(args, lengthIs(16), reply);
      case Op.ERASE_FLASH: {
        if (!lengthIs(0)) return { replies: [reply(StubError.BAD_DATA_LEN)] };
        this.ctx.flash.eraseChip();
        return { replies: [reply()], delayMs: (this.ctx.flash.size / (1024 * 1024)) * this.ctx.timing.chipEraseMsPerMb };
      }
      case Op.ERASE_REGION:
        return this.eraseRegion(args, lengthIs(8), reply);
      case Op.READ_FLASH:
        return this.startRead(args, lengthIs(16), reply);
      case Op.MEM_BEGIN:
      case Op.MEM_DATA:
        return { replies: [reply()] };
      case Op.MEM_END:
        if (!lengthIs(8)) return { replies: [reply(StubError.BAD_DATA_LEN)] };
        return { replies: [reply()], then: args[0] === 0 ? { kind: 'run-stub', entry: args[1]! } : undefined };
      case Op.RUN_USER_CODE:
        return { replies: [], then: { kind: 'run-user-code' } };
      default:
        return { replies: [reply(StubError.CMD_NOT_IMPLEMENTED)] };
    }
  }

  private flashBegin(op: number, data: Buffer, args: number[]): number {
    if (data.length !== 16) return StubError.BAD_DATA_LEN;
    const [size, , blockSize, offset] = args as [number, number, number, number];
    if (blockSize > MAX_WRITE_BLOCK) return StubError.BAD_BLOCKSIZE;
    this.write?.inflater?.destroy();
    this.write = {
      nextWrite: offset,
      remaining: size,
      nextEraseSector: Math.floor(offset / SECTOR_SIZE),
      remainingEraseSectors: Math.ceil(((offset % SECTOR_SIZE) + size) / SECTOR_SIZE),
      lastError: StubError.OK,
      inflater: null,
      inflated: [],
      corruptNextWrite: false,
      workMs: 0,
    };
    if (op === Op.FLASH_DEFL_BEGIN) this.startInflater(this.write);
    return StubError.OK;
  }

  private flashData(op: number, checksum: number, data: Buffer, reply: (error?: number) => Buffer): LoaderResult {
    const session = this.write;
    if (!session) return { replies: [reply(StubError.NOT_IN_FLASH_MODE)] };
    const block = parseDataBlock(data);
    let error = session.lastError;
    if (!block || block.length !== block.payload.length) error = StubError.BAD_DATA_LEN;
    else if (dataChecksum(block.payload) !== (checksum & 0xff)) error = StubError.BAD_DATA_CHECKSUM;
    if (block && linkShouldFail(this.ctx.faults, block.payload.length)) return { replies: [], then: { kind: 'disconnect' } };
    // The answer goes out first; the block is written while the next one arrives.
    const answer = reply(error);
    if (error !== StubError.OK || !block) return { replies: [answer] };
    if (block.seq === this.ctx.faults.corruptBlock) session.corruptNextWrite = true;
    const work = (async () => {
      session.workMs = 0;
      if (op === Op.FLASH_DATA) this.writeFlash(session, block.payload);
      else await this.inflateBlock(session, block.payload);
      return session.workMs;
    })();
    return { replies: [answer], work };
  }

  private flashEnd(data: Buffer, reply: (error?: number) => Buffer): LoaderResult {
    const session = this.write;
    if (!session) return { replies: [reply(StubError.NOT_IN_FLASH_MODE)] };
    if (session.remaining > 0) return { replies: [reply(StubError.NOT_ENOUGH_DATA)] };
    this.write = null;
    session.inflater?.destroy();
    const rebootNow = data.length >= 4 && data.readUInt32LE(0) === 0;
    const error = session.lastError;
    return { replies: [reply(error)], then: error === StubError.OK && rebootNow ? { kind: 'reboot' } : undefined };
  }

  /** Writes freshly received (or inflated) data, erasing ahead of it as needed. */
  private writeFlash(session: WriteSession, chunk: Buffer): void {
    let data = chunk.subarray(0, Math.min(chunk.length, session.remaining));
    if (data.length === 0) return;
    const lastSector = Math.floor((session.nextWrite + data.length) / SECTOR_SIZE);
    const { flash, timing } = this.ctx;
    try {
      while (session.remainingEraseSectors > 0 && session.nextEraseSector <= lastSector) {
        const whole = session.remainingEraseSectors >= SECTORS_PER_BLOCK && session.nextEraseSector % SECTORS_PER_BLOCK === 0;
        const sectors = whole ? SECTORS_PER_BLOCK : 1;
        flash.erase(session.nextEraseSector * SECTOR_SIZE, sectors * SECTOR_SIZE);
        session.workMs += eraseCostMs(session.nextEraseSector, sectors, timing);
        session.nextEraseSector += sectors;
        session.remainingEraseSectors -= sectors;
      }
      if (session.corruptNextWrite) {
        data = Buffer.from(data);
        data[0] = data[0]! ^ 0x01;
        session.corruptNextWrite = false;
      }
      if (session.nextWrite + data.length > this.configuredSize) throw new FlashRangeError('past the configured flash size');
      flash.program(session.nextWrite, data);
      session.workMs += programCostMs(data.length, timing);
    } catch (error) {
      if (!(error instanceof FlashRangeError)) throw error;
      session.lastError = StubError.FAILED_SPI_OP;
    }
    session.nextWrite += data.length;
    session.remaining -= data.length;
  }

  private startInflater(session: WriteSession): void {
    const inflater = createInflate();
    inflater.on('data', (chunk: Buffer) => session.inflated.push(chunk));
    inflater.on('error', () => {
      session.lastError = StubError.INFLATE_ERROR;
    });
    session.inflater = inflater;
  }

  /** Feeds one compressed block through the stream and writes what it yields. */
  private async inflateBlock(session: WriteSession, payload: Buffer): Promise<void> {
    const inflater = session.inflater;
    if (!inflater || inflater.destroyed) {
      if (session.remaining === 0 && payload.length <= 4) return; // the Adler-32 tail
      session.lastError = session.remaining === 0 ? StubError.TOO_MUCH_DATA : StubError.INFLATE_ERROR;
      return;
    }
    await new Promise<void>((resolve) => {
      const done = () => {
        inflater.off('error', done);
        resolve();
      };
      inflater.on('error', done);
      inflater.write(payload);
      inflater.flush(zlibConstants.Z_SYNC_FLUSH, done);
    });
    await new Promise((resolve) => setImmediate(resolve));
    const output = session.inflated.splice(0);
    for (const chunk of output) this.writeFlash(session, chunk);
  }

  private md5(args: number[], lengthOk: boolean, reply: (error?: number, body?: Uint8Array) => Buffer): LoaderResult {
    if (!lengthOk) return { replies: [reply(StubError.BAD_DATA_LEN)] };
    const [address, size] = args as [number, number];
    try {
      const digest = this.ctx.flash.md5(address, size);
      const delayMs = Math.ceil(size / SECTOR_SIZE) * this.ctx.timing.md5SectorMs;
      return { replies: [reply(StubError.OK, digest)], delayMs };
    } catch (error) {
      if (error instanceof FlashRangeError) return { replies: [reply(StubError.FAILED_SPI_OP)] };
      throw error;
    }
  }

  private eraseRegion(args: number[], lengthOk: boolean, reply: (error?: number) => Buffer): LoaderResult {
    if (!lengthOk) return { replies: [reply(StubError.BAD_DATA_LEN)] };
    const [address, size] = args as [number, number];
    if (address % SECTOR_SIZE !== 0 || size % SECTOR_SIZE !== 0) return { replies: [reply(StubError.BAD_DATA_LEN)] };
    try {
      const sectors = this.ctx.flash.erase(address, size);
      return { replies: [reply()], delayMs: eraseCostMs(address / SECTOR_SIZE, sectors, this.ctx.timing) };
    } catch (error) {
      if (error instanceof FlashRangeError) return { replies: [reply(StubError.FAILED_SPI_OP)] };
      throw error;
    }
  }

  /**
   * READ_FLASH: after the answer, raw data frames of `packetSize` bytes; the host acks each
   * with a 4-byte frame holding the total it has received; at most `maxInFlight` frames may
   * be unacknowledged. When all is acked the stub sends the region's MD5 (16 raw bytes).
   */
  private startRead(args: number[], lengthOk: boolean, reply: (error?: number) => Buffer): LoaderResult {
    if (!lengthOk) return { replies: [reply(StubError.BAD_DATA_LEN)] };
    const [offset, length, packetSize, maxInFlight] = args as [number, number, number, number];
    if (packetSize === 0 || offset + length > this.ctx.flash.size) return { replies: [reply(StubError.FAILED_SPI_OP)] };
    this.read = { offset, length, packetSize, maxInFlight: Math.max(1, maxInFlight), sent: 0, acked: 0 };
    return { replies: [reply(), ...this.pumpRead()] };
  }

  private readAck(frame: Buffer): LoaderResult {
    const session = this.read!;
    if (frame.length === 4) session.acked = frame.readUInt32LE(0);
    if (session.acked >= session.length) {
      this.read = null;
      return { replies: [this.ctx.flash.md5(session.offset, session.length)] };
    }
    return { replies: this.pumpRead() };
  }

  private pumpRead(): Buffer[] {
    const session = this.read!;
    const frames: Buffer[] = [];
    while (session.sent < session.length && session.sent - session.acked < session.maxInFlight * session.packetSize) {
      const size = Math.min(session.packetSize, session.length - session.sent);
      frames.push(this.ctx.flash.read(session.offset + session.sent, size));
      session.sent += size;
    }
    return frames;
  }
}
