/** The protocol conformance suite against the TypeScript reference board. */
import type { BoardCredentials } from '../../electron/manager/fleet/fleet.js';
import { describeBoardConformance } from '../helpers/board-conformance.js';
import { startLab } from '../helpers/lab.js';

describeBoardConformance('TypeScript reference board', async () => {
  const lab = await startLab({ boards: 3, prefix: 'ref', heartbeatS: 1, proxy: true });
  // Keyed by the names the boards were enrolled under (the suite renames one later).
  const boards = new Map(lab.fleet.boards.map((board) => [String(board.config.name), board]));
  const credentials = new Map([...boards].map(([name, board]) => [name, { ...board.config } as unknown as BoardCredentials]));
  return {
    api: lab.api,
    redisPort: lab.redisPort,
    proxy: lab.proxy as never,
    names: [...boards.keys()],
    credentials: (name) => credentials.get(name)!,
    powerOff: (name) => boards.get(name)!.powerOff(),
    powerOn: async (name) => boards.get(name)!.start(),
    readFile: (name, path) => boards.get(name)!.fs.readFile(path),
    close: () => lab.close(),
  };
});
