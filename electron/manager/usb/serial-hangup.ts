/**
 * Unplug detection for serialport on Linux and macOS (see readEndOfFileAsUnplugged):
 * openNodeSerialPort applies it to every device port, so the flasher, the provisioner,
 * the copy and the console all see an unplugged adapter as a closed port.
 */
import { read as fsRead } from 'node:fs';
import { promisify } from 'node:util';
import type { NodeSerialPort } from './web-serial-port.js';

const readAsync = promisify(fsRead);

/** The part of serialport's Linux/macOS port binding (bindings-cpp) the read loop below uses. */
interface UnixPortBinding {
  readonly isOpen: boolean;
  fd: number | null;
  poller: { once(event: 'readable', listener: (error?: Error | null) => void): unknown };
  read(buffer: Buffer, offset: number, length: number): Promise<{ bytesRead: number; buffer: Buffer }>;
}

function unixBindingOf(port: NodeSerialPort): UnixPortBinding | undefined {
  const binding = (port as { port?: Partial<UnixPortBinding> }).port;
  return binding && typeof binding.fd === 'number' && typeof binding.read === 'function' && typeof binding.poller?.once === 'function'
    ? (binding as UnixPortBinding)
    : undefined;
}

/** Shaped like bindings-cpp's errors: `canceled` (our own close) is not a disconnect. */
function bindingError(message: string, flags: { canceled?: boolean; disconnect?: boolean }): Error {
  return Object.assign(new Error(message), flags);
}

/**
 * serialport 13's read on Linux and macOS (bindings-cpp `unixRead`) takes a read of 0 bytes
 * for "nothing yet" and reads again at once. A tty that was hung up (a USB adapter
 * unplugged, a pty whose other side closed) returns 0 bytes forever: unless the hang-up
 * happened while a read was parked on the poller, the port spins a CPU core and never
 * reports 'close' (bindings-cpp issue #162). This replaces the port's read with the same
 * loop in which 0 bytes means the device is gone: serialport then closes the port and
 * emits 'close' with a DisconnectedError. Other bindings (Windows, mocks) are left alone.
 */
export function readEndOfFileAsUnplugged(port: NodeSerialPort): void {
  const binding = unixBindingOf(port);
  if (!binding) return;
  binding.read = async (buffer, offset, length) => {
    for (;;) {
      const fd = binding.fd;
      if (fd === null || !binding.isOpen) throw bindingError('Port is not open', { canceled: true });
      try {
        const { bytesRead } = await readAsync(fd, buffer, offset, length, null);
        if (bytesRead > 0) return { bytesRead, buffer };
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code !== 'EAGAIN' && code !== 'EWOULDBLOCK' && code !== 'EINTR') throw error;
        if (!binding.isOpen) throw bindingError('Port is not open', { canceled: true });
        await new Promise<void>((resolve, reject) => binding.poller.once('readable', (failure) => (failure ? reject(failure) : resolve())));
        continue;
      }
      throw bindingError('the device hung up (end of file)', { disconnect: true });
    }
  };
}
