/**
 * Board discovery, the board's side (firmware/cm_find.py; PROTOCOL.md, "Finding the service
 * again"), with the real firmware on MicroPython lab boards: after three failed connects to
 * its stored server, a board with a discovery key broadcasts `cm-find` and moves only for
 * an answer signed with its key that carries the nonce of its current round.
 *
 * The service side is stood in for by a responder in the test (test/helpers/discovery-lab.ts)
 * that answers what each test needs, forged answers included. A board without a service to
 * reach stores a server that is a counting TCP listener closing every connection, so the
 * test can follow its connects.
 */
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MicroPythonBoard } from '../../electron/manager/virtual/micropython-board.js';
import { LAB_WIFI, provisionFolder } from '../../electron/manager/virtual/micropython-fleet.js';
import {
  CountingListener,
  TestResponder,
  fakeCredentials,
  freeUdpPort,
  newDiscoveryKey,
  provisionForDiscovery,
  readBoardConfig,
  signedAnswer,
} from '../helpers/discovery-lab.js';
import { freePort } from '../helpers/free-port.js';
import { startManager, waitFor } from '../helpers/lab.js';

const cleanups: Array<() => Promise<unknown>> = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function tempFolder(): Promise<string> {
  const folder = await mkdtemp(path.join(os.tmpdir(), 'cm-discovery-'));
  cleanups.push(() => rm(folder, { recursive: true, force: true }));
  return folder;
}

async function responder(): Promise<TestResponder> {
  const started = await TestResponder.start(await freeUdpPort());
  cleanups.push(() => started.close());
  return started;
}

async function listener(host: string): Promise<CountingListener> {
  const started = await CountingListener.start(host);
  cleanups.push(() => started.close());
  return started;
}

async function boot(folder: string): Promise<MicroPythonBoard> {
  const board = new MicroPythonBoard({ folder, wifi: LAB_WIFI, timing: 'fast' });
  cleanups.push(() => board.powerOff());
  await board.start();
  return board;
}

async function exists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    () => false,
  );
}

describe('a MicroPython board whose service moved', () => {
  it('finds the new address, comes online there, and keeps it in its configuration with every other key', { timeout: 60_000 }, async () => {
    const service = await startManager();
    cleanups.push(() => service.close());
    const [credentials] = await service.api.call('boards.enrollMany', { names: ['moved-1'], rotate: true });
    const folder = path.join(await tempFolder(), 'moved-1');
    const finder = await responder();
    const dk = newDiscoveryKey();
    // Its stored server is the old address: nothing listens on 127.0.0.3 any more.
    const before = await provisionForDiscovery(folder, credentials!, { host: '127.0.0.3', port: credentials!.port }, { dk, dp: finder.port });
    finder.reply = (request) => [signedAnswer(request.id, request.nonce, '127.0.0.1', credentials!.port, dk)];

    const board = await boot(folder);
    await waitFor(async () => (await service.api.call('boards.get', { board: 'moved-1' })).online, 30_000, 'the board online at the new address');

    expect(finder.requests).toHaveLength(1);
    expect(finder.requests[0]!.id).toBe(credentials!.id);
    expect(await readBoardConfig(folder)).toEqual({ ...before, server: '127.0.0.1' });
    expect(await exists(path.join(folder, 'cm_config.json.tmp'))).toBe(false);
    expect(await exists(path.join(folder, 'cm_journal'))).toBe(false);
    // The round's module is gone from the board's memory, as cm_ops is between operations.
    expect((await board.run("import sys\nprint('cm_find' in sys.modules, 'cm_ops' in sys.modules)")).stdout).toBe('False False\n');
    // The key never leaves the board: its settings (cfg_get, §7.5) hide it like a password.
    const shown = await board.run("import cm_ops\nprint(cm_ops._board(client, b'cfg_get', {}))\nsys.modules.pop('cm_ops')\ndel cm_ops");
    expect(JSON.parse(shown.stdout)).toMatchObject({ dk: '********', dp: finder.port, server: '127.0.0.1' });
  });

  it('ignores forged answers (another key, a host changed under a good signature) and never connects there', { timeout: 60_000 }, async () => {
    const folder = await tempFolder();
    const finder = await responder();
    const old = await listener('127.0.0.3');
    const forged = await listener('127.0.0.4');
    const honest = await listener('127.0.0.5');
    const dk = newDiscoveryKey();
    const before = await provisionForDiscovery(folder, fakeCredentials('forge-me'), { host: old.host, port: old.port }, { dk, dp: finder.port });
    finder.reply = ({ id, nonce }, index) => {
      if (index < 2) {
        const good = signedAnswer(id, nonce, '127.0.0.5', forged.port, dk).toString();
        return [
          signedAnswer(id, nonce, '127.0.0.4', forged.port, newDiscoveryKey()),
          Buffer.from(good.replace('127.0.0.5', '127.0.0.4')),
          signedAnswer(
            id,
            nonce.replace(/.$/, (c) => (c === '0' ? '1' : '0')),
            '127.0.0.4',
            forged.port,
            dk,
          ),
        ];
      }
      // The third request gets the honest answer: the round was live all along.
      return [signedAnswer(id, nonce, '127.0.0.5', honest.port, dk)];
    };

    await boot(folder);
    await waitFor(() => honest.connections > 0, 30_000, 'a connect to the honest answer');
    expect(forged.connections).toBe(0);
    expect(forged.bytes).toBe(0);
    expect(finder.requests).toHaveLength(3);
    expect(finder.nonces()).toHaveLength(1);
    expect(old.connections).toBe(3);
    expect(await readBoardConfig(folder)).toEqual({ ...before, server: '127.0.0.5', port: honest.port });
  });

  it("ignores an answer replayed from an earlier round, valid as it was for that round's nonce", { timeout: 60_000 }, async () => {
    const folder = await tempFolder();
    const finder = await responder();
    const old = await listener('127.0.0.3');
    const replayTarget = await listener('127.0.0.4');
    const honest = await listener('127.0.0.5');
    const dk = newDiscoveryKey();
    const before = await provisionForDiscovery(folder, fakeCredentials('replay-me'), { host: old.host, port: old.port }, { dk, dp: finder.port });
    let recorded: Buffer | undefined;
    const firstRound = new Promise<void>((resolve) => {
      finder.reply = ({ id, nonce }) => {
        // What an eavesdropper would have kept of the first round: a valid answer to it.
        recorded = signedAnswer(id, nonce, '127.0.0.4', replayTarget.port, dk);
        resolve();
        return [];
      };
    });

    const board = await boot(folder);
    await firstRound;
    // The board restarts (power, a reset): its next round has a new nonce. The replay goes
    // to each of its requests but the last, which gets a fresh answer.
    await board.reset();
    finder.reply = ({ id, nonce }) =>
      finder.requests.filter((request) => request.nonce === nonce).length < 3 ? [recorded!] : [signedAnswer(id, nonce, '127.0.0.5', honest.port, dk)];
    await waitFor(() => honest.connections > 0, 30_000, 'a connect to the fresh answer');

    const nonces = finder.nonces();
    expect(nonces).toHaveLength(2);
    expect(finder.requests.filter((request) => request.nonce === nonces[1])).toHaveLength(3);
    expect(replayTarget.connections).toBe(0);
    expect(await readBoardConfig(folder)).toEqual({ ...before, server: '127.0.0.5', port: honest.port });
  });

  it('comes back by itself when the service restarts on a new address (the real service and its responder)', { timeout: 90_000 }, async () => {
    const dataDir = await tempFolder();
    const redisPort = await freePort();
    const discoveryPort = await freeUdpPort();
    // The computer's "old LAN address" is 127.0.0.3: boards are given it.
    const before = await startManager({ dataDir, redisPort, discoveryPort, bind: ['127.0.0.1', '127.0.0.3'], advertiseHost: '127.0.0.3' });
    let service = before;
    cleanups.push(() => service.close());
    const [credentials] = await before.api.call('boards.enrollMany', { names: ['dhcp-1'], rotate: true });
    expect(credentials!.server).toBe('127.0.0.3');
    expect(credentials!.dk).toMatch(/^[0-9a-f]{64}$/);
    const folder = path.join(dataDir, 'boards', 'dhcp-1');
    await provisionFolder(folder, credentials!, { host: credentials!.server, port: credentials!.port });
    // Provisioning leaves `dp` out (18268 is the default); the lab's service listens on another port.
    await writeFile(path.join(folder, 'cm_config.json'), JSON.stringify({ ...(await readBoardConfig(folder)), dp: discoveryPort }));
    const provisioned = await readBoardConfig(folder);
    expect(provisioned).toMatchObject({ server: '127.0.0.3', dk: credentials!.dk });
    await boot(folder);
    await waitFor(async () => (await before.api.call('boards.get', { board: 'dhcp-1' })).online, 30_000, 'the board online at the old address');

    // DHCP gave the computer a new address: the service starts again there, same data folder.
    await before.close();
    service = await startManager({ dataDir, redisPort, discoveryPort, bind: ['127.0.0.1', '127.0.0.2'], advertiseHost: '127.0.0.2' });
    await waitFor(async () => (await service.api.call('boards.get', { board: 'dhcp-1' })).online, 60_000, 'the board online at the new address');
    expect(await readBoardConfig(folder)).toEqual({ ...provisioned, server: '127.0.0.2' });
  });

  it('never asks when it has no discovery key: it keeps trying its stored server', { timeout: 60_000 }, async () => {
    const folder = await tempFolder();
    const finder = await responder();
    const old = await listener('127.0.0.3');
    const before = await provisionForDiscovery(folder, fakeCredentials('no-key'), { host: old.host, port: old.port }, { dk: null, dp: finder.port });

    await boot(folder);
    // A board with a key asks right after its third failed connect, before its fourth.
    await waitFor(() => old.connections >= 4, 30_000, 'four connects to the stored server');
    expect(finder.requests).toHaveLength(0);
    expect(finder.other).toHaveLength(0);
    expect(await readBoardConfig(folder)).toEqual(before);
  });
});
