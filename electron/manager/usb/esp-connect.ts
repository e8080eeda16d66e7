/**
 * Connecting esptool-js to an ESP8266's bootloader for the flasher (esp-flasher.ts): the
 * chip and its flash size read, the stub running, at the rate asked for. When the
 * bootloader does not answer, the user is asked (`onNeedBootloader`) to hold BOOT while
 * pressing RESET, and attempts go on for a minute. The resets esptool-js makes are ours
 * (reset-sequences.ts).
 */
import { ESPLoader, Transport, type IEspLoaderTerminal, type ResetConstructors } from 'esptool-js';
import type { Logger } from '../log.js';
import { WebSerialPort } from './web-serial-port.js';
import { enterBootloader, hardReset, usbJtagSerialReset } from './reset-sequences.js';
import { FlashError, UnsupportedChipError } from './flash-errors.js';
import type { FlashOptions, FlashProgress } from './esp-flasher.js';

const FLASH_SIZES: Record<string, number> = {
  '256KB': 256 * 1024,
  '512KB': 512 * 1024,
  '1MB': 1 << 20,
  '2MB': 2 << 20,
  '4MB': 4 << 20,
  '8MB': 8 << 20,
  '16MB': 16 << 20,
};

/** One esptool-js session on the port: connected, stub running, at `baud`. */
export interface Session {
  port: WebSerialPort;
  transport: Transport;
  loader: ESPLoader;
  chip: string;
  flashSizeBytes: number;
  /** esptool's name of the detected size, e.g. '4MB'. */
  flashSizeName: string;
  /** The bootloader answered after the adapter reset the chip: its lines are wired. */
  linesWork: boolean;
}

/** How long to keep trying once the user was asked to put the board in download mode. */
const BOOTLOADER_WAIT_MS = 60_000;
/** Between attempts while waiting for the buttons: the line empties of earlier answers. */
const RETRY_PAUSE_MS = 400;

export async function connect(options: FlashOptions, baud: number, log: Logger, progress: (p: FlashProgress) => void): Promise<Session> {
  progress({ phase: 'connect', message: `connecting to ${options.portPath}` });
  let asked = 0;
  for (;;) {
    const port = new WebSerialPort({ path: options.portPath, vendorId: options.vendorId, productId: options.productId, logger: log });
    const transport = new Transport(port as unknown as ConstructorParameters<typeof Transport>[0], false);
    // esptool-js traces through console.log even with tracing off: keep it in our log.
    transport.trace = (message: string) => log('debug', `esptool: ${message}`);
    const loader = new ESPLoader({ transport, baudrate: baud, romBaudrate: 115_200, terminal: terminalFor(log), resetConstructors: resetsThrough(port) });
    try {
      // A few attempts only: a board whose adapter cannot reset it never answers by itself.
      // Once the user was asked for the buttons, the chip is not reset again.
      await loader.detectChip(asked ? 'no_reset' : 'default_reset', asked ? 2 : 3);
      progress({ phase: 'detect', message: 'reading the chip and its flash' });
      const chip = await loader.chip.getChipDescription(loader);
      if (!/^ESP82(66|85)/.test(chip)) {
        throw new UnsupportedChipError(`the board is an ${chip}: Cloudmanager flashes ESP8266 and ESP8285 boards`);
      }
      await loader.runStub();
      if (baud !== 115_200) await loader.changeBaud();
      const size = await loader.detectFlashSize();
      const flashSizeBytes = FLASH_SIZES[size ?? ''];
      if (!flashSizeBytes) throw new FlashError(`could not detect the flash size (${size ?? 'no answer'})`);
      return { port, transport, loader, chip, flashSizeBytes, flashSizeName: size!, linesWork: !asked && port.hasResetLines === true };
    } catch (error) {
      await transport.disconnect().catch(() => undefined);
      if (error instanceof UnsupportedChipError || error instanceof FlashError) throw error;
      log('debug', `no answer from the bootloader: ${(error as Error).message}`);
      // The bootloader did not answer: no reset lines, lines wired to nothing, or a board
      // busy elsewhere. Ask for the buttons, then keep trying for a while.
      if (!asked) {
        progress({ phase: 'bootloader', message: 'hold BOOT (GPIO0) and press RESET on the board to enter download mode' });
        asked = Date.now();
        await options.onNeedBootloader?.();
        continue;
      }
      if (Date.now() - asked < BOOTLOADER_WAIT_MS) {
        // A running firmware answers SYNC with its echo at once, so attempts would follow
        // each other every few ms, each leaving answers on the line that garble the next
        // one's — and the chip, once in its bootloader, would never be heard cleanly.
        await new Promise((resolve) => setTimeout(resolve, RETRY_PAUSE_MS));
        continue;
      }
      throw new FlashError(`no answer from an ESP bootloader on ${options.portPath}: ${(error as Error).message}`);
    }
  }
}

/** Our reset sequences, in the shape esptool-js calls them (its own are not used). */
function resetsThrough(port: WebSerialPort): ResetConstructors {
  const strategy = (transport: Transport, reset: () => Promise<void>) => ({ transport, reset });
  return {
    classicReset: ((transport: Transport, resetDelay: number) =>
      strategy(transport, () => enterBootloader(port, { resetDelayMs: resetDelay }))) as unknown as ResetConstructors['classicReset'],
    hardReset: ((transport: Transport) => strategy(transport, () => hardReset(port))) as unknown as ResetConstructors['hardReset'],
    usbJTAGSerialReset: ((transport: Transport) => strategy(transport, () => usbJtagSerialReset(port))) as unknown as ResetConstructors['usbJTAGSerialReset'],
  };
}

function terminalFor(log: Logger): IEspLoaderTerminal {
  let line = '';
  return {
    clean: () => undefined,
    write: (text: string) => {
      line += text;
    },
    writeLine: (text: string) => {
      log('debug', `esptool: ${line}${text}`);
      line = '';
    },
  };
}
