/**
 * The flash wizard's view of a flash job: which step it is on, in plain words, from the
 * phases the service reports ("flash.write", "provision.enroll", …). Pure functions.
 */
export type FlashStepId = 'download' | 'connect' | 'erase' | 'write' | 'verify' | 'start' | 'setup' | 'online';

export interface FlashStep {
  id: FlashStepId;
  label: string;
}

/**
 * `erase`: the user asked to erase the whole flash; `clearOldData`: the flasher found
 * another firmware's data where MicroPython keeps its files and clears it (no request).
 */
export function flashSteps(options: { download: boolean; erase: boolean; clearOldData?: boolean; provision: boolean; flash: boolean }): FlashStep[] {
  const steps: FlashStep[] = [];
  if (options.download) steps.push({ id: 'download', label: 'Download MicroPython' });
  if (options.flash) {
    steps.push({ id: 'connect', label: 'Connect to the board' });
    if (options.erase) steps.push({ id: 'erase', label: 'Erase the flash' });
    else if (options.clearOldData) steps.push({ id: 'erase', label: "Clear the old firmware's data" });
    steps.push({ id: 'write', label: 'Write MicroPython' }, { id: 'verify', label: 'Verify' }, { id: 'start', label: 'Start MicroPython' });
  }
  if (options.provision) steps.push({ id: 'setup', label: 'Install the Cloudmanager client' }, { id: 'online', label: 'Wait for the board to come online' });
  return steps;
}

/** The wizard step a reported phase belongs to. */
export function stepOfPhase(phase: string): FlashStepId | null {
  const [part, detail] = phase.split('.') as [string, string | undefined];
  if (part === 'download') return 'download';
  if (part === 'provision') return detail === 'online' || detail === 'done' ? 'online' : 'setup';
  if (part !== 'flash') return null;
  switch (detail) {
    case 'check-image':
    case 'connect':
    case 'bootloader':
    case 'detect':
      return 'connect';
    case 'erase':
      return 'erase';
    case 'write':
      return 'write';
    case 'verify':
      return 'verify';
    case 'reset':
    case 'boot-check':
    case 'reflash':
    case 'press-reset':
    case 'done':
      return 'start';
    default:
      return null;
  }
}

/** Which part of the job failed, for the Retry that resumes there. */
export function failedPart(phase: string | undefined): 'download' | 'flash' | 'provision' {
  if (phase?.startsWith('provision.')) return 'provision';
  if (phase?.startsWith('download.')) return 'download';
  return 'flash';
}

/** Write speed from successive (time, bytes) samples: bytes per second over the last few seconds. */
export class SpeedMeter {
  private samples: Array<{ t: number; bytes: number }> = [];

  add(t: number, bytes: number): number | null {
    if (this.samples.length > 0 && bytes < this.samples[this.samples.length - 1]!.bytes) this.samples = [];
    this.samples.push({ t, bytes });
    while (this.samples.length > 2 && t - this.samples[0]!.t > 3000) this.samples.shift();
    const first = this.samples[0]!;
    const seconds = (t - first.t) / 1000;
    return seconds > 0.2 ? (bytes - first.bytes) / seconds : null;
  }
}

/** A name for a new board: `esp8266-N` with the first N not taken. */
export function suggestBoardName(taken: Iterable<string>, prefix = 'esp8266'): string {
  const names = new Set(taken);
  for (let n = 1; ; n++) if (!names.has(`${prefix}-${n}`)) return `${prefix}-${n}`;
}

export const BOARD_NAME_RULE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$/;

/** An error (the name cannot be used) or a warning (it replaces a board of that name). */
export function checkNewBoardName(name: string, taken: Iterable<string>): { error: string | null; warning: string | null } {
  if (name === '') return { error: 'Give the board a name.', warning: null };
  if (!BOARD_NAME_RULE.test(name)) return { error: 'Use up to 32 letters, digits, _ . or -, starting with a letter or digit.', warning: null };
  if (new Set(taken).has(name)) {
    return {
      error: null,
      warning: `A board named ${name} is already in the fleet. Setting this board up as ${name} gives it new credentials: the old ones stop working.`,
    };
  }
  return { error: null, warning: null };
}

/** A catalogue name for a picked .bin file: safe characters, ends in .bin. */
export function catalogueName(fileName: string): string {
  const base = fileName
    .replace(/\.bin$/i, '')
    .replace(/[^A-Za-z0-9._+-]+/g, '-')
    .replace(/^[^A-Za-z0-9]+/, '')
    .slice(0, 90);
  return `${base || 'firmware'}.bin`;
}
