/**
 * The esptool serial protocol, device side: packet layout, command numbers and the
 * ESP8266 ROM loader's behaviour (what it answers, with which status bytes, and what it
 * does not support). The flasher stub that esptool uploads lives in flasher-stub.ts and
 * shares the packet helpers and the LoaderContext/LoaderResult shapes defined here.
 *
 * Packets (inside SLIP frames, little-endian):
 *   request  = 0x00, op, size:u16, checksum:u32, data[size]
 *   response = 0x01, op, size:u16, value:u32,    data[size]  (data ends with status bytes)
 * The ESP8266 ROM and every stub end a response with 2 status bytes (status, error); the
 * ESP32 ROM with 4. Only the *_DATA commands carry a checksum: 0xEF XOR each payload byte.
 *
 * Pure logic: packets in, response packets and follow-up actions out. Timing (how long the
 * chip is busy) is reported, not slept; the simulator applies it.
 */
import type { ChipRegisters, SimulatedChip } from './chip-registers.js';
import { eraseCostMs, FlashRangeError, programCostMs, SECTOR_SIZE, type FlashChip, type FlashTiming } from './flash-chip.js';

export const Op = {
  FLASH_BEGIN: 0x02,
  FLASH_DATA: 0x03,
  FLASH_END: 0x04,
  MEM_BEGIN: 0x05,
  MEM_END: 0x06,
  MEM_DATA: 0x07,
  SYNC: 0x08,
  WRITE_REG: 0x09,
  READ_REG: 0x0a,
  SPI_SET_PARAMS: 0x0b,
  SPI_ATTACH: 0x0d,
  CHANGE_BAUDRATE: 0x0f,
  FLASH_DEFL_BEGIN: 0x10,
  FLASH_DEFL_DATA: 0x11,
  FLASH_DEFL_END: 0x12,
  SPI_FLASH_MD5: 0x13,
  GET_SECURITY_INFO: 0x14,
  ERASE_FLASH: 0xd0,
  ERASE_REGION: 0xd1,
  READ_FLASH: 0xd2,
  RUN_USER_CODE: 0xd3,
} as const;

const OP_NAMES = new Map<number, string>(Object.entries(Op).map(([name, op]) => [op, name]));

export function opName(op: number): string {
  return OP_NAMES.get(op) ?? `0x${op.toString(16).padStart(2, '0')}`;
}

/** ROM loader error codes (second status byte when the first is 1). */
export const RomError = {
  INVALID_MESSAGE: 0x05,
  FAILED_TO_ACT: 0x06,
  INVALID_CRC: 0x07,
  FLASH_WRITE: 0x08,
} as const;

export const CHECKSUM_SEED = 0xef;
export const SYNC_PAYLOAD = Buffer.concat([Buffer.from([0x07, 0x07, 0x12, 0x20]), Buffer.alloc(32, 0x55)]);
/** What the ESP8266 ROM puts in the value field of its SYNC responses (the sync word). */
export const ROM_SYNC_VALUE = 0x20120707;

export interface CommandPacket {
  op: number;
  checksum: number;
  data: Buffer;
}

/** Parses a request; null if it is not one (wrong direction byte, too short, size mismatch). */
export function parseCommand(frame: Buffer): CommandPacket | null {
  if (frame.length < 8 || frame[0] !== 0x00) return null;
  const size = frame.readUInt16LE(2);
  if (frame.length !== 8 + size) return null;
  return { op: frame[1]!, checksum: frame.readUInt32LE(4), data: frame.subarray(8) };
}

/** An 8-byte header (direction, op, length, 32-bit word) and the data after it. */
function buildFrame(direction: 0x00 | 0x01, op: number, word: number, data: Uint8Array): Buffer {
  const head = Buffer.alloc(8);
  head[0] = direction;
  head[1] = op;
  head.writeUInt16LE(data.length, 2);
  head.writeUInt32LE(word >>> 0, 4);
  return Buffer.concat([head, data]);
}

export function buildCommand(op: number, data: Uint8Array = Buffer.alloc(0), checksum = 0): Buffer {
  return buildFrame(0x00, op, checksum, data);
}

export function buildResponse(op: number, value: number, data: Uint8Array): Buffer {
  return buildFrame(0x01, op, value, data);
}

export function dataChecksum(payload: Uint8Array, seed = CHECKSUM_SEED): number {
  let state = seed;
  for (const byte of payload) state ^= byte;
  return state;
}

/** The 16-byte header of MEM_DATA / FLASH_DATA / FLASH_DEFL_DATA, then the payload. */
export interface DataBlock {
  length: number;
  seq: number;
  payload: Buffer;
}

export function parseDataBlock(data: Buffer): DataBlock | null {
  if (data.length < 16) return null;
  return { length: data.readUInt32LE(0), seq: data.readUInt32LE(4), payload: data.subarray(16) };
}

export function words(data: Buffer): number[] {
  const out: number[] = [];
  for (let at = 0; at + 4 <= data.length; at += 4) out.push(data.readUInt32LE(at));
  return out;
}

/** Switches shared by ROM and stub: test faults and a counter for them. */
export interface LoaderFaults {
  /** Sequence number of the flash data block the stub writes wrongly (once per write). */
  corruptBlock?: number;
  /** Flash data bytes (as sent over the wire) after which the serial link dies, once. */
  failAfterBytes?: number;
  /** Flash data bytes received since the faults were set. */
  flashDataBytes: number;
}

export interface LoaderContext {
  chip: SimulatedChip;
  flash: FlashChip;
  registers: ChipRegisters;
  timing: FlashTiming;
  faults: LoaderFaults;
}

export type LoaderAction =
  /** MEM_END jumped into uploaded code: the flasher stub takes over. */
  | { kind: 'run-stub'; entry: number }
  /** MEM_END jumped to an address where nothing was loaded: the chip is lost until reset. */
  | { kind: 'hang' }
  /**
   * The stub's CHANGE_BAUDRATE: `baud` is the rate asked for, `divider` the UART clock
   * divider the stub computed from it (the chip's real rate is the UART clock ÷ divider).
   */
  | { kind: 'set-baud'; baud: number; divider: number }
  /** Software reset: the latched boot mode (download) brings the ROM loader back. */
  | { kind: 'reboot' }
  /** Leave the loader and boot the firmware in flash. */
  | { kind: 'run-user-code' }
  /** The USB link dies (failAfterBytes). */
  | { kind: 'disconnect' };

export interface LoaderResult {
  /** Packets to send, in order (each goes in its own SLIP frame). */
  replies: Buffer[];
  /** Chip time spent before the first reply (the ROM erases or writes, then answers). */
  delayMs?: number;
  /** Chip time spent after replying, before the next packet is read (the stub's writes). */
  busyMs?: number;
  /**
   * Work the chip does after the replies have been sent (the stub writing a block while the
   * host sends the next one); resolves with the chip time it costs, counted from the reply.
   */
  work?: Promise<number>;
  then?: LoaderAction;
}

export interface Loader {
  readonly kind: 'rom' | 'stub';
  handle(frame: Buffer): LoaderResult | Promise<LoaderResult>;
}

/** Counts flash data toward failAfterBytes; true when the link should die now. */
export function linkShouldFail(faults: LoaderFaults, bytes: number): boolean {
  faults.flashDataBytes += bytes;
  if (faults.failAfterBytes === undefined || faults.flashDataBytes < faults.failAfterBytes) return false;
  faults.failAfterBytes = undefined;
  return true;
}

interface Download {
  offset: number;
  blockSize: number;
  blocks: number;
  nextSeq: number;
}

/**
 * The ESP8266 ROM loader ("boot mode (1,x)": UART download). It answers SYNC, READ_REG,
 * WRITE_REG, MEM_* (load code into RAM and run it) and FLASH_BEGIN/DATA/END (uncompressed
 * writes, erased up front by FLASH_BEGIN). Everything else — compressed writes, MD5, baud
 * changes, SPI_ATTACH — it does not know. With chip 'ESP32' it answers with the ESP32 magic
 * and 4 status bytes, enough for a flasher to recognise (and refuse) the chip.
 */
export class RomLoader implements Loader {
  readonly kind = 'rom';
  /**
   * The ROM answers from one static response record: commands that do not set the value
   * field leave the previous one there, and an unknown command leaves the previous command
   * byte too (which is why esptool sees "op mismatch + error 0x05" as UnsupportedCommandError).
   */
  private lastOp = 0;
  private lastValue = 0;
  private mem: Download | null = null;
  private readonly ram: { start: number; bytes: Buffer }[] = [];
  private flashDownload: Download | null = null;

  constructor(private readonly ctx: LoaderContext) {}

  private get statusLength(): number {
    return this.ctx.chip === 'ESP32' ? 4 : 2;
  }

  handle(frame: Buffer): LoaderResult {
    const command = parseCommand(frame);
    if (!command) return frame.length >= 2 && frame[0] === 0x00 ? this.fail(frame[1]!, RomError.INVALID_MESSAGE) : { replies: [] };
    const { op, data } = command;
    switch (op) {
      case Op.SYNC: {
        // A garbled sync pattern does not lock the auto-baud detector: no answer at all.
        if (!data.equals(SYNC_PAYLOAD)) return { replies: [] };
        this.lastValue = ROM_SYNC_VALUE;
        const reply = this.ok(op);
        return { replies: Array.from({ length: 8 }, () => reply) };
      }
      case Op.READ_REG:
        if (data.length !== 4) return this.fail(op, RomError.INVALID_MESSAGE);
        this.lastValue = this.ctx.registers.read(data.readUInt32LE(0));
        return { replies: [this.ok(op)] };
      case Op.WRITE_REG: {
        if (data.length !== 16) return this.fail(op, RomError.INVALID_MESSAGE);
        const [address, value, mask, delayUs] = words(data) as [number, number, number, number];
        this.ctx.registers.write(address, value, mask);
        return { replies: [this.ok(op)], delayMs: delayUs / 1000 };
      }
      case Op.MEM_BEGIN:
        return this.memBegin(op, data);
      case Op.MEM_DATA:
        return this.memData(op, command.checksum, data);
      case Op.MEM_END:
        return this.memEnd(op, data);
      case Op.FLASH_BEGIN:
        return this.flashBegin(op, data);
      case Op.FLASH_DATA:
        return this.flashData(op, command.checksum, data);
      case Op.FLASH_END: {
        if (data.length !== 4) return this.fail(op, RomError.INVALID_MESSAGE);
        this.flashDownload = null;
        return { replies: [this.ok(op)], then: data.readUInt32LE(0) === 0 ? { kind: 'reboot' } : { kind: 'run-user-code' } };
      }
      default:
        return this.unsupported();
    }
  }

  private memBegin(op: number, data: Buffer): LoaderResult {
    if (data.length !== 16) return this.fail(op, RomError.INVALID_MESSAGE);
    const [size, blocks, blockSize, offset] = words(data) as [number, number, number, number];
    if (blockSize === 0 || blocks * blockSize < size) return this.fail(op, RomError.INVALID_MESSAGE);
    this.mem = { offset, blockSize, blocks, nextSeq: 0 };
    this.ram.push({ start: offset, bytes: Buffer.alloc(size) });
    return { replies: [this.ok(op)] };
  }

  private memData(op: number, checksum: number, data: Buffer): LoaderResult {
    const block = parseDataBlock(data);
    if (!this.mem || !block || block.length !== block.payload.length || block.seq !== this.mem.nextSeq) {
      return this.fail(op, RomError.INVALID_MESSAGE);
    }
    if (dataChecksum(block.payload) !== (checksum & 0xff)) return this.fail(op, RomError.INVALID_CRC);
    const region = this.ram[this.ram.length - 1]!;
    block.payload.copy(region.bytes, block.seq * this.mem.blockSize);
    this.mem.nextSeq++;
    return { replies: [this.ok(op)] };
  }

  private memEnd(op: number, data: Buffer): LoaderResult {
    if (data.length !== 8) return this.fail(op, RomError.INVALID_MESSAGE);
    const [noEntry, entry] = words(data) as [number, number];
    this.mem = null;
    if (noEntry !== 0) return { replies: [this.ok(op)] };
    const loaded = this.ram.some((region) => entry >= region.start && entry < region.start + region.bytes.length);
    return { replies: [this.ok(op)], then: loaded ? { kind: 'run-stub', entry } : { kind: 'hang' } };
  }

  /**
   * FLASH_BEGIN erases before it answers. The ESP8266 ROM has a known bug in how it reads
   * the erase size (esptool's get_erase_size() works around it): it erases the requested
   * sectors plus as many again up to the next 64 KB boundary. Modelled as such, so a host
   * that sends the raw size over-erases just as on hardware.
   */
  private flashBegin(op: number, data: Buffer): LoaderResult {
    // esptool.py sends 4 words to these ROMs; esptool-js adds a 5th ("encrypted") to every
    // ROM. The ROM reads the words it knows, so both lengths work.
    if (data.length !== 16 && data.length !== 20) return this.fail(op, RomError.INVALID_MESSAGE);
    const [eraseSize, blocks, blockSize, offset] = words(data) as [number, number, number, number];
    if (blockSize === 0 || blockSize > 0x4000 || offset >= this.ctx.flash.size) return this.fail(op, RomError.FAILED_TO_ACT);
    const requested = Math.ceil(eraseSize / SECTOR_SIZE);
    const startSector = Math.floor(offset / SECTOR_SIZE);
    const head = 16 - (startSector % 16);
    const lastSector = Math.min(startSector + requested + Math.min(head, requested), this.ctx.flash.size / SECTOR_SIZE);
    const sectors = lastSector - startSector;
    if (sectors > 0) this.ctx.flash.erase(startSector * SECTOR_SIZE, sectors * SECTOR_SIZE);
    this.flashDownload = { offset, blockSize, blocks, nextSeq: 0 };
    return { replies: [this.ok(op)], delayMs: eraseCostMs(startSector, sectors, this.ctx.timing) };
  }

  /** The ROM writes the whole (padded) block, then answers. */
  private flashData(op: number, checksum: number, data: Buffer): LoaderResult {
    const block = parseDataBlock(data);
    const download = this.flashDownload;
    if (!download || !block || block.length !== block.payload.length || block.seq !== download.nextSeq) {
      return this.fail(op, RomError.INVALID_MESSAGE);
    }
    if (dataChecksum(block.payload) !== (checksum & 0xff)) return this.fail(op, RomError.INVALID_CRC);
    if (linkShouldFail(this.ctx.faults, block.payload.length)) return { replies: [], then: { kind: 'disconnect' } };
    try {
      this.ctx.flash.program(download.offset + block.seq * download.blockSize, block.payload);
    } catch (error) {
      if (error instanceof FlashRangeError) return this.fail(op, RomError.FAILED_TO_ACT);
      throw error;
    }
    download.nextSeq++;
    return { replies: [this.ok(op)], delayMs: programCostMs(block.payload.length, this.ctx.timing) };
  }

  private ok(op: number): Buffer {
    this.lastOp = op;
    return buildResponse(op, this.lastValue, Buffer.alloc(this.statusLength));
  }

  private fail(op: number, error: number): LoaderResult {
    this.lastOp = op;
    const status = Buffer.alloc(this.statusLength);
    status[0] = 1;
    status[1] = error;
    return { replies: [buildResponse(op, this.lastValue, status)] };
  }

  /** Unknown command: error 0x05 in the record left over from the previous command. */
  private unsupported(): LoaderResult {
    return this.fail(this.lastOp, RomError.INVALID_MESSAGE);
  }
}
