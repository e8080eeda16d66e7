/**
 * Handlers of the API routes, one per entry of `routeInputs` in the contract. Inputs
 * arrive here already validated by the route's schema.
 */
import { z } from 'zod';
import type { Fleet } from '../fleet/fleet.js';
import { validateBoardPath, validateCommandRequest, type CommandRequest } from '../fleet/command-ops.js';
import { summarizeBoard } from '../fleet/board-registry.js';
import { sha256 } from '../transfer/upload-blob.js';
import type { UsbService } from '../usb/usb-service.js';
import { provisionRequest } from '../fleet/usb-job.js';
import type { JobService } from '../fleet/job-service.js';
import { listBoardPackages } from '../fleet/package-install-job.js';
import { BUILTIN_FIRMWARE } from '../usb/builtin-firmware.js';
import type { StagedFiles } from '../transfer/staged-files.js';
import type { SimService } from '../virtual/sim-service.js';
import {
  routeInputs,
  type BoardTelemetry,
  type NetworkAccess,
  type ApiCommandRequest,
  type RouteName,
  type RouteOutputs,
  type ServiceStatus,
} from './contract.js';
import { ManagerError, type ErrorKind } from '../errors.js';

export interface ApiContext {
  fleet: Fleet;
  usb: UsbService;
  jobs: JobService;
  staged: StagedFiles;
  sim: SimService;
  status(): Promise<ServiceStatus>;
  /** Stops the service (after the reply has been sent). */
  shutdown(): void;
  /** A one-time sign-in URL for the UI. */
  signinUrl(): { url: string; expiresAt: number };
  network(): NetworkAccess;
  setLanAccess(address: string | null): Promise<NetworkAccess>;
  telemetry(boardId: string): Promise<BoardTelemetry>;
}

export class NotFoundError extends ManagerError {
  override name = 'NotFoundError';
  readonly kind: ErrorKind = 'not_found';
}

type Handler<R extends RouteName> = (context: ApiContext, input: z.output<(typeof routeInputs)[R]>) => Promise<RouteOutputs[R]>;
type HandlerTable = { [R in RouteName]: Handler<R> };

function toCommandRequest(request: ApiCommandRequest): CommandRequest {
  if (request.op === 'put') return { op: 'put', path: request.path, data: Buffer.from(request.dataBase64, 'base64') };
  return request as CommandRequest;
}

export const handlers: HandlerTable = {
  status: (context) => context.status(),
  'boards.list': async ({ fleet }) => fleet.list(),
  'boards.get': async ({ fleet }, { board }) => summarizeBoard(fleet.board(board)),
  'boards.enroll': ({ fleet }, input) => fleet.enroll(input.name, { rotate: input.rotate, server: input.server }),
  'boards.enrollMany': ({ fleet }, input) => fleet.enrollMany(input.names, { rotate: input.rotate, server: input.server, virtual: input.virtual }),
  'boards.rename': ({ fleet }, { board, name }) => fleet.rename(board, name),
  'boards.remove': async ({ fleet }, { board }) => {
    await fleet.remove(board);
    return { removed: board };
  },
  'boards.revoke': ({ fleet }, { board }) => fleet.revoke(board),
  'boards.enable': ({ fleet }, { board }) => fleet.enable(board),
  'boards.history': ({ fleet }, { board, count }) => fleet.history(board, count),
  'boards.tag': ({ fleet }, { boards, add, remove }) => fleet.tag(boards, add, remove),
  'boards.telemetry': (context, { board }) => context.telemetry(context.fleet.board(board).id),
  'commands.send': async ({ fleet }, input) => {
    const request = toCommandRequest(input.request);
    // One bad request fails the whole call: nothing is queued for any board.
    validateCommandRequest(request);
    const boards = fleet.select(input.boards);
    const options = { expireMs: input.expireMs, timeoutMs: input.timeoutMs };
    const views = await Promise.all(boards.map((board) => fleet.send(board, request, options)));
    return { commands: views.map((view, index) => ({ ...view, boardOnline: boards[index]!.online })) };
  },
  'jobs.start': ({ jobs }, input) => jobs.launch(input),
  'jobs.list': async ({ jobs }) => jobs.list(),
  'jobs.get': async ({ jobs }, { id }) => jobs.get(id),
  'jobs.cancel': ({ jobs }, { id }) => jobs.cancel(id),
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
  'ui.signinUrl': async (context) => context.signinUrl(),
  'service.network': async (context) => context.network(),
  'service.setLanAccess': (context, { address }) => context.setLanAccess(address),
  'sim.start': ({ sim }, { count }) => sim.start(count),
  'sim.stop': ({ sim }) => sim.stop(),
  'usb.ports': ({ usb }) => usb.ports(),
  'usb.flash': ({ usb }, input) =>
    usb.flash({
      port: input.port,
      firmware: input.firmware,
      image: input.imageBase64 ? Buffer.from(input.imageBase64, 'base64') : undefined,
      baud: input.baud,
      erase: input.erase,
      flashMode: input.flashMode,
      provision: input.provision ? provisionRequest(input.provision) : undefined,
    }),
  'usb.provision': ({ usb }, input) => usb.provision(input.port, provisionRequest(input)),
  'usb.put': ({ usb }, input) => {
    validateBoardPath(input.dest, 'DEST');
    return usb.copy(input.port, Buffer.from(input.dataBase64, 'base64'), input.dest);
  },
  'firmware.list': ({ usb }) => usb.catalogue.list(),
  'firmware.builtins': async ({ usb }) => {
    const entries = await usb.catalogue.list();
    return BUILTIN_FIRMWARE.map((firmware) => ({
      id: firmware.id,
      title: firmware.title,
      version: firmware.version,
      approxBytes: firmware.approxBytes,
      downloaded: entries.find((entry) => entry.builtin === firmware.id)?.name ?? null,
    }));
  },
  'firmware.add': ({ usb }, input) => usb.catalogue.add(input.name, Buffer.from(input.dataBase64, 'base64'), null),
  'firmware.download': ({ usb }, input) => usb.catalogue.download({ url: input.url, sha256: input.sha256, name: input.name }),
  'packages.list': async ({ fleet }, { board, timeoutMs }) => {
    const state = fleet.board(board);
    return { board: state.name, packages: await listBoardPackages(fleet, state, timeoutMs ?? PACKAGES_LIST_WAIT_MS) };
  },
};

/** How long packages.list waits for an offline board by default. */
const PACKAGES_LIST_WAIT_MS = 30_000;

/** Runs a route's handler on its input, validated by `routeInputs[name]` (the server's, or a standby manager's forwarded request). */
export function runRoute(context: ApiContext, name: RouteName, input: unknown): Promise<unknown> {
  return (handlers[name] as (context: ApiContext, input: unknown) => Promise<unknown>)(context, input);
}
