/**
 * The USB console over a WebSocket (`/api/usb/console?port=PATH`): binary frames carry the
 * bytes both ways between the page's terminal and the board's serial port. Text frames
 * from the service are JSON notices: `{"type":"open"}` once the port is open, and
 * `{"type":"closed","reason":…}` (the board was unplugged, the port is busy, …) just
 * before the socket closes. The port belongs to the console while the socket is open: a
 * flash on it is refused, and the console is refused while a flash runs.
 */
import type { WebSocket } from 'ws';
import type { UsbService } from '../usb/usb-service.js';
import type { Logger } from '../log.js';

/** Bytes waiting for a slow page beyond this are dropped (a terminal shows the newest). */
const MAX_BUFFERED_BYTES = 1024 * 1024;

export type UsbConsoleNotice = { type: 'open'; port: string } | { type: 'closed'; reason: string };

export async function bridgeUsbConsole(ws: WebSocket, usb: UsbService, port: string, log: Logger): Promise<void> {
  const notice = (message: UsbConsoleNotice) => {
    if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(message));
  };
  let console;
  try {
    // Only a port the service lists: never an arbitrary device path from a request.
    if (!(await usb.ports()).some((listed) => listed.path === port)) {
      notice({ type: 'closed', reason: `there is no serial port ${port} (is the board plugged in?)` });
      ws.close(4004, 'no such port');
      return;
    }
    console = await usb.openConsole(port);
  } catch (error) {
    notice({ type: 'closed', reason: (error as Error).message });
    ws.close(4000, 'console refused');
    return;
  }
  if (ws.readyState !== ws.OPEN) {
    await console.close();
    return;
  }
  let dropped = 0;
  console.on('data', (bytes) => {
    if (ws.readyState !== ws.OPEN) return;
    if (ws.bufferedAmount > MAX_BUFFERED_BYTES) {
      dropped += bytes.length;
      return;
    }
    if (dropped > 0) {
      log('warn', `USB console of ${port}: the page could not keep up; ${dropped} bytes were not shown`);
      dropped = 0;
    }
    ws.send(bytes, { binary: true });
  });
  console.once('closed', (reason) => {
    notice({ type: 'closed', reason });
    ws.close(1000, 'console closed');
  });
  ws.on('message', (data, isBinary) => {
    if (!isBinary) return;
    console.write(Buffer.isBuffer(data) ? data : Buffer.concat(data as Buffer[]));
  });
  ws.on('close', () => void console.close());
  ws.on('error', () => void console.close());
  notice({ type: 'open', port });
}
