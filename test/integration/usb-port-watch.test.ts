/**
 * Plug and unplug: the service notices a serial port appearing and going away (a pty link
 * stands in for a USB adapter), pushes it as an event, and `mbm usb-ports --watch` prints it.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiEvent } from '../../electron/manager/api/contract.js';
import { PtyLink } from '../lab/pty-link.js';
import { startManager, waitFor } from '../helpers/lab.js';

const MBM = fileURLToPath(new URL('../../bin/mbm.js', import.meta.url));

describe('serial port plug and unplug', () => {
  let service: Awaited<ReturnType<typeof startManager>>;
  let folder: string;
  let link: string;

  beforeAll(async () => {
    folder = await mkdtemp(path.join(os.tmpdir(), 'cm-ports-'));
    link = path.join(folder, 'ttyUSB-sim');
    service = await startManager({ extraSerialPorts: [link], serialPortPollMs: 200 });
  });
  afterAll(async () => {
    await service?.close();
    await rm(folder, { recursive: true, force: true });
  });

  it('pushes usb.port events when a port appears and goes away', { timeout: 60_000 }, async () => {
    const events: Array<ApiEvent & { type: 'usb.port' }> = [];
    const subscription = await service.api.events((event) => {
      if (event.type === 'usb.port') events.push(event as ApiEvent & { type: 'usb.port' });
    });
    try {
      expect((await service.api.call('usb.ports', {})).map((port) => port.path)).not.toContain(link);
      const pty = await PtyLink.open({ link });
      // The watch looks once a second; how soon it tells is not a busy machine's to keep.
      await waitFor(() => events.some((event) => event.kind === 'added' && event.port.path === link), 15_000);
      expect((await service.api.call('usb.ports', {})).map((port) => port.path)).toContain(link);
      await pty.close();
      await waitFor(() => events.some((event) => event.kind === 'removed' && event.port.path === link), 15_000);
      expect(events.map((event) => event.kind)).toEqual(['added', 'removed']);
      expect(service.logs.some((entry) => entry.message.includes(`serial port added: ${link}`))).toBe(true);
    } finally {
      subscription.close();
    }
  });

  it('`mbm usb-ports --watch` lists the ports, then prints plug and unplug until Ctrl-C', { timeout: 30_000 }, async () => {
    const child = spawn(process.execPath, [MBM, 'usb-ports', '--watch', '--data-dir', service.dataDir], { env: { ...process.env, CLOUDMANAGER_DATA_DIR: '' } });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    await waitFor(() => output.includes('Watching for boards'), 10_000);
    const pty = await PtyLink.open({ link });
    await waitFor(() => output.includes(`plugged in: ${link}`), 3_000);
    await pty.close();
    await waitFor(() => output.includes(`unplugged: ${link}`), 3_000);
    child.kill('SIGINT');
    expect(await exited).toBe(0);
  });
});
