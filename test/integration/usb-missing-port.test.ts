/** A serial port that does not exist is said so at once, by every USB action of the service. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiRequestError } from '../../electron/manager/api/client.js';
import { startManager } from '../helpers/lab.js';

describe('a serial port that is not there', () => {
  let service: Awaited<ReturnType<typeof startManager>>;
  beforeAll(async () => {
    service = await startManager({ heartbeatS: 1 });
  });
  afterAll(async () => {
    await service?.close();
  });

  it('is named as missing, with where to find the ports, not blamed on the board', async () => {
    const port = '/dev/ttyCM-NOT-PLUGGED';
    const attempts = [
      service.api.call('usb.put', { port, dest: '/main.py', dataBase64: Buffer.from('print(1)').toString('base64') }),
      service.api.call('usb.flash', { port, imageBase64: Buffer.alloc(4096).toString('base64') }),
    ];
    for (const attempt of attempts) {
      const error = await attempt.then(
        () => null,
        (failure: unknown) => failure,
      );
      expect(error).toBeInstanceOf(ApiRequestError);
      expect(error).toMatchObject({ code: 'not_found' });
      expect((error as Error).message).toMatch(/there is no serial port \/dev\/ttyCM-NOT-PLUGGED .*mbm usb-ports/);
    }
  });
});
