/** The protocol conformance suite against our MicroPython firmware, run in the board lab. */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describeBoardConformance } from '../helpers/board-conformance.js';
import { startManager, waitFor } from '../helpers/lab.js';
import { RedisFaultProxy } from '../lab/redis-fault-proxy.js';
import { startMicroPythonFleet } from '../../electron/manager/virtual/micropython-fleet.js';

describeBoardConformance(
  'MicroPython firmware (36 KB lab board)',
  async () => {
    const service = await startManager({ heartbeatS: 1 });
    const proxy = await RedisFaultProxy.start({ port: service.redisPort });
    const fleet = await startMicroPythonFleet({
      api: service.api,
      count: 3,
      prefix: 'mpy',
      root: path.join(service.dataDir, 'boards'),
      server: { host: '127.0.0.1', port: proxy.port },
    });
    await waitFor(async () => (await service.api.call('status', {})).boards.online === 3, 20_000, 'boards online');
    const byName = (name: string) => fleet.byName(name)!;
    return {
      api: service.api,
      redisPort: service.redisPort,
      proxy,
      names: fleet.boards.map((board) => board.name),
      credentials: (name) => byName(name).credentials,
      powerOff: (name) => byName(name).board.powerOff(),
      powerOn: (name) => byName(name).board.start(),
      readFile: (name, file) => readFile(path.join(byName(name).folder, file)),
      close: async () => {
        await fleet.close();
        await proxy.close();
        await service.close();
      },
    };
  },
  { command: 20_000 },
);
