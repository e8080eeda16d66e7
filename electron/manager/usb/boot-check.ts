/**
 * After flashing: what the board prints while it boots tells whether the new firmware
 * runs (MicroPython's banner or prompt), crashes ("Fatal exception", a reset loop), or
 * neither could be told.
 */

export type BootVerdict = 'ok' | 'crash' | 'unknown';

/** Judges boot output read at 115200 baud (the ROM's 74880-baud lines read as noise). */
export function judgeBootOutput(text: string): BootVerdict {
  if (/Fatal exception|exception \(\d+\):/i.test(text)) return 'crash';
  if (/MicroPython v\d|(^|\n)>>> /.test(text)) return 'ok';
  return 'unknown';
}

/** Polls what has arrived on the port until a verdict, or `watchMs`. */
export async function watchBoot(received: () => Uint8Array, watchMs: number): Promise<BootVerdict> {
  const deadline = Date.now() + watchMs;
  for (;;) {
    const verdict = judgeBootOutput(Buffer.from(received()).toString('latin1'));
    if (verdict !== 'unknown' || Date.now() >= deadline) return verdict;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
