/**
 * The simulated chip's UART0 and the host at the other end of the line: the rate the chip
 * sends and receives at, the rate the host's port is set to, and what crosses when the two
 * differ. A UART receiver set to another rate than the sender's does not read "nothing":
 * it syncs on every falling edge and samples mid-bit at its own rate, so the bytes arrive
 * as other bytes — mostly NULs with framing errors (resampleUart computes them bit by bit).
 *
 * The host's rate: an RFC 2217 link reports it (`hostBaud`, from the host's SET-BAUDRATE);
 * a pty cannot tell, so there the host is assumed to be where a host following the
 * protocol would be — 115200 after every reset (so the ROM's 74880-baud boot lines arrive
 * as a 115200 receiver reads them, as before), the rate asked for once the stub's
 * CHANGE_BAUDRATE was answered — and what the host sends is taken as sent at the chip's
 * rate. Rates within RATE_TOLERANCE of each other read fine (a UART samples mid-bit, so a
 * few percent over a 10-bit frame is harmless; the stub's divider arithmetic is off by
 * less than 1 %).
 *
 * On a pty, the ROM's own output (at 74880) is the exception: the host's rate is read from
 * the pty itself then (PtyLink.queryHostBaud: `stty -F`), so a host listening at 74880 —
 * the flasher waiting for the ROM's boot banner — reads those lines cleanly. Only then:
 * asking takes a process (~3 ms), and the ROM's lines are few and far between.
 *
 * Shortcuts: the rate is compared when the simulator writes, not while the bytes travel
 * (a host that changes its rate mid-line garbles from the next write on); garbage is paced
 * as bytes at the chip's rate, though there are more or fewer of them than were sent.
 */
import type { SerialLink } from '../pty-link.js';
import { resampleUart } from './boot-console.js';

export const RATE_TOLERANCE = 0.025;

export function ratesMatch(a: number, b: number): boolean {
  return Math.abs(a - b) <= RATE_TOLERANCE * Math.min(a, b);
}

/** A link that knows the host's rate (Rfc2217Link), or can ask for it (PtyLink). */
interface ReportsHostBaud {
  readonly hostBaud?: number;
  queryHostBaud?(): number | undefined;
}

/** The ESP8266 ROM's rate (26 MHz crystal, UART not configured yet). */
const ROM_RATE = 74_880;

export class SimUart {
  private chipRate: number;
  /** Where a host following the protocol would be (used when the link cannot tell). */
  private assumed = 115_200;

  constructor(
    private readonly link: () => SerialLink | undefined,
    initialRate: number,
  ) {
    this.chipRate = initialRate;
  }

  /** The chip's rate now. */
  get rate(): number {
    return this.chipRate;
  }

  /** The host's rate: reported by the link, or assumed (a pty). */
  get hostRate(): number {
    return this.reportedHostRate ?? this.assumed;
  }

  /** The link tells the host's rate (RFC 2217, once the host set one). */
  get reportedHostRate(): number | undefined {
    return (this.link() as (SerialLink & ReportsHostBaud) | undefined)?.hostBaud;
  }

  /** The chip sets its UART (the link paces at this rate from now on). */
  setRate(baud: number): void {
    this.chipRate = baud;
    this.link()?.setBaud(Math.round(baud));
  }

  /** What a protocol-following host has set its port to (used on a pty). */
  assumeHostRate(baud: number): void {
    this.assumed = baud;
  }

  /** What the host receives for `data` the chip sends now. */
  toHost(data: Uint8Array): Buffer {
    const link = this.link() as (SerialLink & ReportsHostBaud) | undefined;
    const asked = ratesMatch(this.chipRate, ROM_RATE) && this.reportedHostRate === undefined ? link?.queryHostBaud?.() : undefined;
    const host = asked ?? this.hostRate;
    return ratesMatch(this.chipRate, host) ? Buffer.from(data) : resampleUart(data, this.chipRate, host);
  }

  /** What the chip receives for `data` the host sent (garbled only when the link tells the host's rate). */
  fromHost(data: Buffer): Buffer {
    const host = this.reportedHostRate;
    return host === undefined || ratesMatch(this.chipRate, host) ? data : resampleUart(data, host, this.chipRate);
  }

  /** Sends to the host, paced at the chip's rate. */
  send(data: Uint8Array): void {
    const link = this.link();
    if (link && data.length > 0) link.write(this.toHost(data));
  }
}
