/**
 * Handlers of the API routes, one per entry of `routeInputs` in the contract. Inputs
 * arrive here already validated by the route's schema.
 */
import { z } from 'zod';
import type { Fleet } from '../fleet/fleet.js';
import { validateBoardPath, validateCommandRequest, type CommandRequest } from '../fleet/command-ops.js';
import { summarizeBoard } from '../fleet/board-registry.js';
import { sha256 } from '../transfer/upload-blob.js';
import type { UsbService, ProvisionRequestBase } from '../usb/usb-service.js';
import { routeInputs, type ApiCommandRequest, type RouteName, type RouteOutputs, type ServiceStatus } from './contract.js';

export interface ApiContext {
  fleet: Fleet;
  usb: UsbService;
  status(): Promise<ServiceStatus>;
  /** Stops the service (after the reply has been sent). */
  shutdown(): void;
}

export class NotFoundError extends Error {
  override name = 'NotFoundError';
}

type Handler<R extends RouteName> = (context: ApiContext, input: z.output<(typeof routeInputs)[R]>) => Promise<RouteOutputs[R]>;
type HandlerTable = { [R in RouteName]: Handler<R> };

function toCommandRequest(request: ApiCommandRequest): CommandRequest {
  if (request.op === 'put') return { op: 'put', path: request.path, data: Buffer.from(request.dataBase64, 'base64') };
  return request as CommandRequest;
}

export const handlers: HandlerTable = {
  'status': (context) => context.status(),
  'boards.list': async ({ fleet }) => fleet.list(),
  'boards.get': async ({ fleet }, { board }) => summarizeBoard(fleet.board(board)),
  'boards.enroll': ({ fleet }, input) => fleet.enroll(input.name, { rotate: input.rotate, server: input.server }),
  'boards.enrollMany': ({ fleet }, input) => fleet.enrollMany(input.names, { rotate: input.rotate, server: input.server }),
  'boards.rename': ({ fleet }, { board, name }) => fleet.rename(board, name),
  'boards.remove': async ({ fleet }, { board }) => {
    await fleet.remove(board);
    return { removed: board };
  },
  'boards.history': ({ fleet }, { board, count }) => fleet.history(board, count),
  'commands.send': async ({ fleet }, input) => {
    const request = toCommandRequest(input.request);
    // One bad request fails the whole call: nothing is queued for any board.
    validateCommandRequest(request);
    const boards = fleet.select(input.boards);
    const options = { expireMs: input.expireMs, timeoutMs: input.timeoutMs };
    const views = await Promise.all(boards.map((board) => fleet.send(board, request, options)));
    return { commands: views.map((view, index) => ({ ...view, boardOnline: boards[index]!.online })) };
  },
  'commands.get': async ({ fleet }, { cid }) => {
    const view = fleet.dispatcher.get(cid);
    if (!view) throw new NotFoundError(`no command ${cid} (finished commands are kept for a limited time)`);
    return view;
  },
  'commands.wait': ({ fleet }, { cids, timeoutMs }) => fleet.dispatcher.wait(cids, timeoutMs),
  'commands.cancel': ({ fleet }, { cid }) => fleet.dispatcher.cancel(cid),
  'commands.file': async ({ fleet }, { cid }) => {
    const file = fleet.dispatcher.file(cid);
    if (!file) throw new NotFoundError(`command ${cid} has no downloaded file (not a finished get, or expired)`);
    return { size: file.length, sha256: sha256(file), dataBase64: file.toString('base64') };
  },
  'service.shutdown': async (context) => {
    context.shutdown();
    return { stopping: true };
  },
  'usb.ports': ({ usb }) => usb.ports(),
  'usb.flash': ({ usb }, input) => usb.flash({
    port: input.port, firmware: input.firmware, image: input.imageBase64 ? Buffer.from(input.imageBase64, 'base64') : undefined,
    baud: input.baud, erase: input.erase, flashMode: input.flashMode,
    provision: input.provision ? provisionRequest(input.provision) : undefined,
  }),
  'usb.provision': ({ usb }, input) => usb.provision(input.port, provisionRequest(input)),
  'usb.put': ({ usb }, input) => {
    validateBoardPath(input.dest, 'DEST');
    return usb.copy(input.port, Buffer.from(input.dataBase64, 'base64'), input.dest);
  },
  'firmware.list': ({ usb }) => usb.catalogue.list(),
  'firmware.add': ({ usb }, input) => usb.catalogue.add(input.name, Buffer.from(input.dataBase64, 'base64'), null),
  'firmware.download': ({ usb }, input) => usb.catalogue.download({ url: input.url, sha256: input.sha256, name: input.name }),
};

function provisionRequest(input: { name: string; wifiSsid: string; wifiPassword: string; server?: { host: string; port: number } }): ProvisionRequestBase {
  return { name: input.name, wifi: { ssid: input.wifiSsid, password: input.wifiPassword }, server: input.server };
}
