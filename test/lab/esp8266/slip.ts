/**
 * SLIP framing as the ESP ROM loader and the esptool flasher stub use it (RFC 1055 with a
 * frame delimiter at both ends): every frame starts and ends with 0xC0; inside a frame
 * 0xC0 is sent as 0xDB 0xDC and 0xDB as 0xDB 0xDD.
 */
export const SLIP_END = 0xc0;
export const SLIP_ESC = 0xdb;
export const SLIP_ESC_END = 0xdc;
export const SLIP_ESC_ESC = 0xdd;

/** Frames one packet: 0xC0, the escaped bytes, 0xC0. */
export function slipEncode(packet: Uint8Array): Buffer {
  let escapes = 0;
  for (const byte of packet) if (byte === SLIP_END || byte === SLIP_ESC) escapes++;
  const out = Buffer.allocUnsafe(packet.length + escapes + 2);
  let at = 0;
  out[at++] = SLIP_END;
  for (const byte of packet) {
    if (byte === SLIP_END) {
      out[at++] = SLIP_ESC;
      out[at++] = SLIP_ESC_END;
    } else if (byte === SLIP_ESC) {
      out[at++] = SLIP_ESC;
      out[at++] = SLIP_ESC_ESC;
    } else {
      out[at++] = byte;
    }
  }
  out[at] = SLIP_END;
  return out;
}

/**
 * Turns a byte stream into frames. Bytes outside a frame (line noise, a boot message) are
 * dropped; back-to-back delimiters (an empty frame) are ignored; a frame with a bad escape
 * sequence is dropped whole, as the ROM does with a frame it cannot parse.
 */
export class SlipDecoder {
  private buffer = Buffer.allocUnsafe(1024);
  private length = 0;
  private inFrame = false;
  private escaping = false;
  private broken = false;
  /** Bytes seen outside any frame since the decoder was created or reset. */
  noiseBytes = 0;
  /** Frames dropped because of a bad escape sequence. */
  droppedFrames = 0;

  /** Feeds bytes; returns the frames they completed, in order. */
  push(bytes: Uint8Array): Buffer[] {
    const frames: Buffer[] = [];
    for (const byte of bytes) {
      if (!this.inFrame) {
        if (byte === SLIP_END) this.startFrame();
        else this.noiseBytes++;
        continue;
      }
      if (byte === SLIP_END) {
        if (this.broken) this.droppedFrames++;
        else if (this.length > 0) frames.push(Buffer.from(this.buffer.subarray(0, this.length)));
        // The delimiter that ends a frame may also start the next one.
        this.startFrame();
        continue;
      }
      if (this.broken) continue;
      if (this.escaping) {
        this.escaping = false;
        if (byte === SLIP_ESC_END) this.append(SLIP_END);
        else if (byte === SLIP_ESC_ESC) this.append(SLIP_ESC);
        else this.broken = true;
      } else if (byte === SLIP_ESC) {
        this.escaping = true;
      } else {
        this.append(byte);
      }
    }
    return frames;
  }

  /** Forgets a partly received frame (e.g. on a chip reset). */
  reset(): void {
    this.inFrame = false;
    this.length = 0;
    this.escaping = false;
    this.broken = false;
  }

  private startFrame(): void {
    this.inFrame = true;
    this.length = 0;
    this.escaping = false;
    this.broken = false;
  }

  private append(byte: number): void {
    if (this.length === this.buffer.length) {
      const bigger = Buffer.allocUnsafe(this.buffer.length * 2);
      this.buffer.copy(bigger, 0, 0, this.length);
      this.buffer = bigger;
    }
    this.buffer[this.length++] = byte;
  }
}
