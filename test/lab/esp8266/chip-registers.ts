/**
 * The few memory-mapped registers esptool-style flashers read or write on an ESP8266 over
 * READ_REG / WRITE_REG: the chip-magic word, the efuse words that hold the MAC and tell an
 * ESP8266EX from an ESP8285, the UART clock divider (crystal detection) and the SPI
 * peripheral's "user command" registers (used to send RDID 0x9F and read the flash id).
 * Every other address is plain storage: it reads back what was written, 0 otherwise.
 */
import type { FlashChip } from './flash-chip.js';

export type SimulatedChip = 'ESP8266' | 'ESP8285' | 'ESP32';

export const CHIP_DETECT_MAGIC_REG = 0x40001000;
export const ESP8266_MAGIC = 0xfff0c101;
export const ESP32_MAGIC = 0x00f01d83;

export const ESP8266_EFUSE_BASE = 0x3ff00050;
export const ESP32_EFUSE_BASE = 0x3ff5a000;
export const UART0_CLKDIV_REG = 0x60000014;

/** ESP8266 SPI0 (flash) controller and the offsets esptool uses. */
export const SPI_BASE = 0x60000200;
export const SPI_CMD = SPI_BASE + 0x00;
export const SPI_USR2 = SPI_BASE + 0x24;
export const SPI_W0 = SPI_BASE + 0x40;
export const SPI_CMD_USR = 1 << 18;

export const SPIFLASH_RDID = 0x9f;
export const SPIFLASH_RDSR = 0x05;

/** UART clock on an ESP8266 with a 26 MHz crystal (esptool divides by 2 × 26 MHz). */
export const UART_CLOCK_HZ = 52_000_000;

export interface ChipRegistersOptions {
  chip: SimulatedChip;
  flash: FlashChip;
  /** MAC address, "aa:bb:cc:dd:ee:ff" (default 5c:cf:7f:…, an Espressif OUI). */
  mac?: string;
  /** The UART's current rate, for the clock divider register. */
  uartBaud: () => number;
}

export class ChipRegisters {
  private readonly stored = new Map<number, number>();
  private readonly efuses: number[];

  constructor(private readonly options: ChipRegistersOptions) {
    const mac = parseMac(options.mac ?? '5c:cf:7f:3a:4b:5c');
    if (options.chip === 'ESP32') {
      // ESP32 efuse block 0: word 1 holds MAC bytes 2-5, word 2 bytes 0-1 (esptool's layout).
      this.efuses = [0, ((mac[2]! << 24) | (mac[3]! << 16) | (mac[4]! << 8) | mac[5]!) >>> 0, (mac[0]! << 8) | mac[1]!, 0];
    } else {
      // ESP8266 efuse words 0-3 (0x3ff00050…5c) as esptool decodes them: word 3 holds the OUI,
      // word 1 MAC bytes 3-4, the top byte of word 0 MAC byte 5. An ESP8285 sets bit 16 of
      // word 2 (bit 80) and/or bit 4 of word 0; esptool reads its embedded flash size from
      // bit 4 and bits 121-123 (word 3, bits 25-27): bit 4 alone is 1 MB ("ESP8285N08"),
      // bit 4 and bit 122 are 2 MB ("ESP8285N16").
      const esp8285 = options.chip === 'ESP8285';
      const size = options.flash.size;
      const word0 = ((mac[5]! << 24) | (esp8285 && size <= 2 << 20 ? 1 << 4 : 0)) >>> 0;
      const word2 = 0xf200b000 | (esp8285 ? 1 << 16 : 0);
      const word3 = (mac[0]! << 16) | (mac[1]! << 8) | mac[2]! | (esp8285 && size === 2 << 20 ? 1 << 26 : 0);
      this.efuses = [word0, 0x02000000 | (mac[3]! << 8) | mac[4]!, word2 >>> 0, word3 >>> 0];
    }
  }

  read(address: number): number {
    const addr = address >>> 0;
    if (addr === CHIP_DETECT_MAGIC_REG) return this.options.chip === 'ESP32' ? ESP32_MAGIC : ESP8266_MAGIC;
    const efuseBase = this.options.chip === 'ESP32' ? ESP32_EFUSE_BASE : ESP8266_EFUSE_BASE;
    if (addr >= efuseBase && addr < efuseBase + 16 && addr % 4 === 0) return this.efuses[(addr - efuseBase) / 4]!;
    if (addr === UART0_CLKDIV_REG && this.options.chip !== 'ESP32') {
      return Math.round(UART_CLOCK_HZ / this.options.uartBaud()) & 0xfffff;
    }
    return this.stored.get(addr) ?? 0;
  }

  /** WRITE_REG semantics: only the bits set in `mask` change. */
  write(address: number, value: number, mask = 0xffffffff): void {
    const addr = address >>> 0;
    const next = ((this.read(addr) & ~mask) | (value & mask)) >>> 0;
    this.stored.set(addr, next);
    if (addr === SPI_CMD && this.options.chip !== 'ESP32' && next & SPI_CMD_USR) this.runSpiUserCommand();
  }

  /**
   * The SPI controller runs a "user" command when the host sets SPI_CMD_USR: the command
   * byte is the low byte of USR2; a read result lands in W0; the busy bit clears at once.
   */
  private runSpiUserCommand(): void {
    const command = this.read(SPI_USR2) & 0xff;
    if (command === SPIFLASH_RDID) this.stored.set(SPI_W0, this.options.flash.jedecId);
    else if (command === SPIFLASH_RDSR) this.stored.set(SPI_W0, 0); // not busy, not protected
    this.stored.set(SPI_CMD, 0);
  }
}

function parseMac(text: string): number[] {
  const bytes = text.split(':').map((part) => Number.parseInt(part, 16));
  if (bytes.length !== 6 || bytes.some((b) => !Number.isInteger(b) || b < 0 || b > 255)) {
    throw new RangeError(`not a MAC address: ${text}`);
  }
  return bytes;
}
