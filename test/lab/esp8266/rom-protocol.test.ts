import { createHash } from 'node:crypto';
import path from 'node:path';
import { deflateSync } from 'node:zlib';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { ChipRegisters, type SimulatedChip } from './chip-registers.js';
import { FlasherStub, OHAI, StubError } from './flasher-stub.js';
import { FAST_FLASH_TIMING, FlashChip } from './flash-chip.js';
import { removeTempDirs, tempDir } from './host-tools.js';
import { buildCommand, dataChecksum, Op, ROM_SYNC_VALUE, RomLoader, SYNC_PAYLOAD, type LoaderContext, type LoaderResult } from './rom-protocol.js';

afterAll(removeTempDirs);

const chips: FlashChip[] = [];
afterEach(() => chips.splice(0).forEach((chip) => chip.close()));

async function context(chip: SimulatedChip = 'ESP8266', flashSizeBytes = 4 << 20): Promise<LoaderContext> {
  const flash = new FlashChip({ path: path.join(await tempDir(), 'flash.bin'), sizeBytes: flashSizeBytes });
  chips.push(flash);
  return {
    chip,
    flash,
    registers: new ChipRegisters({ chip, flash, uartBaud: () => 115200 }),
    timing: { ...FAST_FLASH_TIMING },
    faults: { flashDataBytes: 0 },
  };
}

const u32 = (...values: number[]) => {
  const out = Buffer.alloc(values.length * 4);
  values.forEach((value, i) => out.writeUInt32LE(value >>> 0, i * 4));
  return out;
};
const dataBlock = (seq: number, payload: Buffer) => Buffer.concat([u32(payload.length, seq, 0, 0), payload]);
const response = (packet: Buffer) => ({
  direction: packet[0],
  op: packet[1],
  size: packet.readUInt16LE(2),
  value: packet.readUInt32LE(4),
  data: packet.subarray(8),
});
const only = (result: LoaderResult) => {
  expect(result.replies).toHaveLength(1);
  return response(result.replies[0]!);
};

describe('packets', () => {
  it('checksum: seed 0xEF XOR each payload byte', () => {
    expect(dataChecksum(Buffer.alloc(0))).toBe(0xef);
    expect(dataChecksum(Buffer.from([0xef]))).toBe(0);
    expect(dataChecksum(Buffer.from([1, 2, 4]))).toBe(0xef ^ 7);
  });
});

describe('ESP8266 ROM loader', () => {
  it('answers SYNC eight times with the sync word and 2 status bytes; ignores a garbled sync', async () => {
    const rom = new RomLoader(await context());
    const result = rom.handle(buildCommand(Op.SYNC, SYNC_PAYLOAD));
    expect(result.replies).toHaveLength(8);
    for (const reply of result.replies)
      expect(response(reply)).toEqual({ direction: 1, op: Op.SYNC, size: 2, value: ROM_SYNC_VALUE, data: Buffer.from([0, 0]) });
    const garbled = Buffer.from(SYNC_PAYLOAD);
    garbled[10] = 0x54;
    expect(rom.handle(buildCommand(Op.SYNC, garbled)).replies).toEqual([]);
  });

  it('READ_REG: chip magic, efuses (MAC, ESP8266EX vs ESP8285), UART divider; value field, 2 status bytes', async () => {
    const rom = new RomLoader(await context());
    const read = (address: number) => only(rom.handle(buildCommand(Op.READ_REG, u32(address))));
    expect(read(0x40001000)).toEqual({ direction: 1, op: Op.READ_REG, size: 2, value: 0xfff0c101, data: Buffer.from([0, 0]) });
    expect(read(0x3ff0005c).value).toBe(0x5ccf7f); // OUI
    expect(read(0x3ff00054).value & 0xffff).toBe(0x3a4b);
    expect(read(0x3ff00050).value >>> 24).toBe(0x5c);
    expect(read(0x3ff00058).value & (1 << 16)).toBe(0);
    expect(read(0x60000014).value).toBe(451); // 52 MHz / 115200: esptool infers a 26 MHz crystal
    const esp8285 = new RomLoader(await context('ESP8285'));
    expect(only(esp8285.handle(buildCommand(Op.READ_REG, u32(0x3ff00058)))).value & (1 << 16)).not.toBe(0);
    const esp32 = new RomLoader(await context('ESP32'));
    expect(only(esp32.handle(buildCommand(Op.READ_REG, u32(0x40001000))))).toMatchObject({ value: 0x00f01d83, size: 4, data: Buffer.from([0, 0, 0, 0]) });
  });

  it('answers an unknown command with error 0x05 in the previous command record (esptool: unsupported)', async () => {
    const rom = new RomLoader(await context());
    rom.handle(buildCommand(Op.SYNC, SYNC_PAYLOAD));
    for (const op of [Op.GET_SECURITY_INFO, Op.FLASH_DEFL_BEGIN, Op.SPI_FLASH_MD5, Op.CHANGE_BAUDRATE, Op.ERASE_FLASH]) {
      expect(only(rom.handle(buildCommand(op, u32(0, 0, 0, 0))))).toMatchObject({ op: Op.SYNC, data: Buffer.from([1, 0x05]) });
    }
  });

  it('loads code with MEM_BEGIN/MEM_DATA (checksummed) and runs it with MEM_END', async () => {
    const rom = new RomLoader(await context());
    const code = Buffer.from('stub code, stub code, stub code!');
    expect(only(rom.handle(buildCommand(Op.MEM_BEGIN, u32(code.length, 2, 16, 0x4010e000)))).data).toEqual(Buffer.from([0, 0]));
    expect(only(rom.handle(buildCommand(Op.MEM_DATA, dataBlock(0, code.subarray(0, 16)), 0)))).toMatchObject({ data: Buffer.from([1, 0x07]) });
    for (const seq of [0, 1]) {
      const part = code.subarray(seq * 16, seq * 16 + 16);
      expect(only(rom.handle(buildCommand(Op.MEM_DATA, dataBlock(seq, part), dataChecksum(part)))).data).toEqual(Buffer.from([0, 0]));
    }
    const end = rom.handle(buildCommand(Op.MEM_END, u32(0, 0x4010e004)));
    expect(response(end.replies[0]!).data).toEqual(Buffer.from([0, 0]));
    expect(end.then).toEqual({ kind: 'run-stub', entry: 0x4010e004 });
    expect(rom.handle(buildCommand(Op.MEM_END, u32(0, 0x40200000))).then).toEqual({ kind: 'hang' });
  });

  it('FLASH_BEGIN erases up front, with the ROM erase-size bug esptool works around', async () => {
    const ctx = await context();
    ctx.flash.program(0, Buffer.alloc(64 * 1024, 0));
    const rom = new RomLoader(ctx);
    // Asking for 2 sectors at 0 erases 2 + min(16, 2) = 4 sectors.
    const begin = rom.handle(buildCommand(Op.FLASH_BEGIN, u32(0x2000, 1, 0x400, 0)));
    expect(begin.delayMs).toBe(4 * 2);
    expect(ctx.flash.read(0x3fff, 2)).toEqual(Buffer.from([0xff, 0x00]));
    const payload = Buffer.alloc(0x400, 0x42);
    expect(only(rom.handle(buildCommand(Op.FLASH_DATA, dataBlock(0, payload), dataChecksum(payload)))).data).toEqual(Buffer.from([0, 0]));
    expect(ctx.flash.read(0, 0x400)).toEqual(payload);
    expect(rom.handle(buildCommand(Op.FLASH_END, u32(1))).then).toEqual({ kind: 'run-user-code' });
  });
});

describe('flasher stub', () => {
  it('answers SYNC with value 0, registers with 2 status bytes, unknown commands with 0xFF', async () => {
    const stub = new FlasherStub(await context());
    expect(stub.greeting()).toEqual(OHAI);
    const sync = await stub.handle(buildCommand(Op.SYNC, SYNC_PAYLOAD));
    expect(sync.replies).toHaveLength(8);
    expect(response(sync.replies[0]!)).toMatchObject({ value: 0, data: Buffer.from([0, 0]) });
    expect(only(await stub.handle(buildCommand(Op.READ_REG, u32(0x40001000))))).toMatchObject({ value: 0xfff0c101, data: Buffer.from([0, 0]) });
    expect(only(await stub.handle(buildCommand(Op.GET_SECURITY_INFO)))).toMatchObject({
      op: Op.GET_SECURITY_INFO,
      data: Buffer.from([StubError.CMD_NOT_IMPLEMENTED, 0]),
    });
    // The new UART divider comes from the current one (52 MHz / 115200 = 451) × old ÷ new.
    const baud = await stub.handle(buildCommand(Op.CHANGE_BAUDRATE, u32(460800, 115200)));
    expect(baud.then).toEqual({ kind: 'set-baud', baud: 460800, divider: 112 });
    // The stub believes the old rate it is told: 74880 (wrong here) gives another divider.
    const wrong = await stub.handle(buildCommand(Op.CHANGE_BAUDRATE, u32(460800, 74880)));
    expect(wrong.then).toEqual({ kind: 'set-baud', baud: 460800, divider: 73 });
    expect((await stub.handle(buildCommand(Op.RUN_USER_CODE))).replies).toEqual([]);
  });

  it('reads the flash id through the SPI user-command registers (RDID 0x9F)', async () => {
    const stub = new FlasherStub(await context('ESP8266', 2 << 20));
    const write = (address: number, value: number) => stub.handle(buildCommand(Op.WRITE_REG, u32(address, value, 0xffffffff, 0)));
    await write(0x60000224, (7 << 28) | 0x9f);
    await write(0x60000240, 0);
    await write(0x60000200, 1 << 18);
    expect(only(await stub.handle(buildCommand(Op.READ_REG, u32(0x60000200)))).value).toBe(0);
    expect(only(await stub.handle(buildCommand(Op.READ_REG, u32(0x60000240)))).value).toBe(0x1540ef);
  });

  it('writes deflated data block by block (acked before written), then MD5 answers 16 raw bytes', async () => {
    const ctx = await context();
    const stub = new FlasherStub(ctx);
    const data = Buffer.alloc(100_000);
    for (let i = 0; i < data.length; i++) data[i] = (i * 31) % 251;
    const compressed = deflateSync(data, { level: 9 });
    const blockSize = 0x400;
    const blocks = Math.ceil(compressed.length / blockSize);
    expect(only(await stub.handle(buildCommand(Op.FLASH_DEFL_BEGIN, u32(data.length, blocks, blockSize, 0x10000)))).data).toEqual(Buffer.from([0, 0]));
    for (let seq = 0; seq < blocks; seq++) {
      const part = compressed.subarray(seq * blockSize, (seq + 1) * blockSize);
      const result = await stub.handle(buildCommand(Op.FLASH_DEFL_DATA, dataBlock(seq, part), dataChecksum(part)));
      expect(response(result.replies[0]!).data).toEqual(Buffer.from([0, 0]));
      await result.work;
    }
    expect(only(await stub.handle(buildCommand(Op.FLASH_DEFL_END, u32(1)))).data).toEqual(Buffer.from([0, 0]));
    expect(ctx.flash.read(0x10000, data.length)).toEqual(data);
    const md5 = only(await stub.handle(buildCommand(Op.SPI_FLASH_MD5, u32(0x10000, data.length, 0, 0))));
    expect(md5.size).toBe(18);
    expect(md5.data).toEqual(Buffer.concat([createHash('md5').update(data).digest(), Buffer.from([0, 0])]));
  });

  it('reports a write past the end of the flash in the next answer; a bad checksum at once; data outside a write session', async () => {
    const ctx = await context('ESP8266', 1 << 20);
    const stub = new FlasherStub(ctx);
    const payload = Buffer.alloc(0x1000, 0x11);
    await stub.handle(buildCommand(Op.FLASH_BEGIN, u32(0x2000, 2, 0x1000, (1 << 20) - 0x1000)));
    const first = await stub.handle(buildCommand(Op.FLASH_DATA, dataBlock(0, payload), dataChecksum(payload)));
    expect(response(first.replies[0]!).data).toEqual(Buffer.from([0, 0]));
    await first.work;
    // Writing block 0 erased ahead into the sector past the end: the error comes with the
    // answer to block 1, which is then not written, so FLASH_END finds data missing.
    const second = await stub.handle(buildCommand(Op.FLASH_DATA, dataBlock(1, payload), dataChecksum(payload)));
    expect(response(second.replies[0]!).data).toEqual(Buffer.from([StubError.FAILED_SPI_OP, 0]));
    expect(second.work).toBeUndefined();
    expect(only(await stub.handle(buildCommand(Op.FLASH_END, u32(1)))).data).toEqual(Buffer.from([StubError.NOT_ENOUGH_DATA, 0]));
    await stub.handle(buildCommand(Op.FLASH_BEGIN, u32(0x1000, 1, 0x1000, 0)));
    expect(only(await stub.handle(buildCommand(Op.FLASH_DATA, dataBlock(0, payload), 0)))).toMatchObject({
      data: Buffer.from([StubError.BAD_DATA_CHECKSUM, 0]),
    });
    const fresh = new FlasherStub(ctx);
    expect(only(await fresh.handle(buildCommand(Op.FLASH_DATA, dataBlock(0, payload), dataChecksum(payload))))).toMatchObject({
      data: Buffer.from([StubError.NOT_IN_FLASH_MODE, 0]),
    });
  });

  it('READ_FLASH streams packets, waits for acks, ends with the MD5', async () => {
    const ctx = await context();
    ctx.flash.program(0x3000, Buffer.from('0123456789abcdef'.repeat(64)));
    const stub = new FlasherStub(ctx);
    const start = await stub.handle(buildCommand(Op.READ_FLASH, u32(0x3000, 1024, 256, 2)));
    expect(response(start.replies[0]!).data).toEqual(Buffer.from([0, 0]));
    const received = start.replies.slice(1);
    expect(received).toHaveLength(2); // two in flight
    let total = 512;
    while (total < 1024) {
      const more = await stub.handle(u32(total));
      received.push(...more.replies);
      total = received.reduce((sum, packet) => sum + packet.length, 0);
    }
    const digest = await stub.handle(u32(1024));
    expect(Buffer.concat(received)).toEqual(ctx.flash.read(0x3000, 1024));
    expect(digest.replies).toEqual([ctx.flash.md5(0x3000, 1024)]);
  });
});
