/**
 * The typed contract of the local API: one table of routes (name → input schema), the
 * shapes of their results, and the events pushed over the WebSocket. The CLI and the
 * renderer are clients of exactly this; the renderer imports types only.
 *
 * Transport: `POST /api/<route>` with a JSON body, `Authorization: Bearer <token>`;
 * answers `{ ok: true, result }` or `{ ok: false, error: { code, message } }`.
 * Events: WebSocket at `/api/events` (token in the Authorization header, or as the
 * subprotocol `cloudmanager.<token>` where headers cannot be set). Each text frame is one
 * event (a JSON object); a client that connects with `?batch=1` may also get frames that
 * are a JSON array of events, in order (see ApiEvent).
 */
import { z } from 'zod';
import { JOB_ID_PATTERN } from '../redis/keys.js';
import { STAGED_ID_PATTERN } from '../transfer/staged-files.js';
import type { BoardActivity, BoardSummary } from '../fleet/board-registry.js';
import type { ConnectionsRefusedAlarm } from '../redis/connection-guard.js';
import type { CommandView, OutputChunk, OutputEvent, CommandStatus } from '../fleet/command-dispatcher.js';
import type { BoardCredentials, BoardEvent } from '../fleet/fleet.js';
import type { BoardSuspendedAlarm } from '../fleet/board-access.js';

import type { SerialPortChange, SerialPortInfo } from '../usb/serial-ports.js';
import type { FlashResult } from '../usb/esp-flasher.js';
import type { ProvisionResult } from '../usb/board-provisioner.js';
import type { PutFileResult } from '../usb/serial-copy.js';
import type { CatalogueEntry } from '../usb/firmware-catalogue.js';
import type { UsbProgressEvent } from '../usb/usb-service.js';
import type { JobSummary, JobTarget, JobView, JobKind, TargetStatus, JobProgress } from '../fleet/job-model.js';
import type { JobEvent } from '../fleet/job-service.js';
import type { InstalledPackage } from '../fleet/package-record.js';
import type { StagedFile } from '../transfer/staged-files.js';
import type { LanInterface, NetworkAccess } from '../network-access.js';
import type { BoardTelemetry, TelemetryPoint } from '../fleet/telemetry.js';

export type { JobSummary, JobTarget, JobView, JobKind, TargetStatus, JobProgress, JobEvent, StagedFile };
export type { OutputChunk, CommandStatus, NetworkAccess, LanInterface, BoardTelemetry, TelemetryPoint, InstalledPackage };
export type {
  BoardActivity,
  BoardSummary,
  CommandView,
  OutputEvent,
  BoardCredentials,
  BoardEvent,
  SerialPortInfo,
  SerialPortChange,
  FlashResult,
  ProvisionResult,
  CatalogueEntry,
  UsbProgressEvent,
};

const boardPath = z.string().min(1).max(255);
const boardsPattern = z.string().min(1).max(4096).describe('BOARDS: names, ranges like esp-[1-3], globs like sim-*');

/** Base64 of at most 16 MiB of data. */
const base64Data = z
  .string()
  .max(Math.ceil((16 * 1024 * 1024) / 3) * 4 + 4)
  .regex(/^[A-Za-z0-9+/]*={0,2}$/, 'must be base64');

export const commandRequestSchema = z.discriminatedUnion('op', [
  z.object({ op: z.literal('exec'), code: z.string().max(64 * 1024), timeoutMs: z.number().int().min(100).max(3_600_000).optional() }),
  z.object({ op: z.literal('put'), path: boardPath, dataBase64: base64Data }),
  z.object({ op: z.literal('get'), path: boardPath }),
  z.object({ op: z.literal('ls'), path: boardPath }),
  z.object({ op: z.literal('stat'), path: boardPath }),
  z.object({ op: z.literal('rm'), path: boardPath, recursive: z.boolean().optional() }),
  z.object({ op: z.literal('mkdir'), path: boardPath }),
  z.object({ op: z.literal('mv'), path: boardPath, to: boardPath }),
  /** SHA-256 of up to 32 files (null for a missing path or a directory), e.g. to skip files a board already has. */
  z.object({ op: z.literal('hash'), paths: z.array(boardPath).min(1).max(32) }),
  z.object({ op: z.literal('reboot') }),
  z.object({ op: z.literal('cfg_get') }),
  z.object({ op: z.literal('cfg_set'), key: z.string().min(1).max(32), value: z.json() }),
  z.object({ op: z.literal('info') }),
]);
export type ApiCommandRequest = z.infer<typeof commandRequestSchema>;

const empty = z.object({}).strict();
const devicePath = z.string().min(1).max(255).describe('serial device, e.g. /dev/ttyUSB0 or COM3');
const provisionInput = z.object({
  name: z.string().min(1).max(32),
  wifiSsid: z.string().min(1).max(32),
  wifiPassword: z.string().max(63),
  server: z.object({ host: z.string().min(1).max(253), port: z.number().int().min(1).max(65535) }).optional(),
  /** Leave the board's own wifi access point on (default: turned off). */
  keepAccessPoint: z.boolean().optional(),
});
const boardRef = z.string().min(1).max(64);
const cid = z.string().min(1).max(40);
const jobId = z.string().regex(JOB_ID_PATTERN, 'not a job id');
const stagedFileId = z.string().regex(STAGED_ID_PATTERN, 'not a staged file id (send the file to files.stage first)');
/** Tags to add or remove (each checked by the fleet: fleet.ts normalizeTag). */
const tagList = z.array(z.string().min(1).max(32)).max(16).default([]);
const expireMs = z
  .number()
  .int()
  .min(1_000)
  .max(7 * 24 * 3_600_000)
  .optional();
/** Packages to install (what the user typed) or uninstall (names). */
const packageList = z.array(z.string().min(1).max(500)).min(1).max(20);
const indexUrl = z
  .string()
  .max(2000)
  .url()
  .refine((url) => /^https?:\/\//i.test(url), 'the package index must be an http:// or https:// URL');
const baudRate = z.union([z.literal(115_200), z.literal(230_400), z.literal(460_800), z.literal(921_600)]);
const flashMode = z.enum(['qio', 'qout', 'dio', 'dout']);

export const jobRequestSchema = z
  .discriminatedUnion('kind', [
    z
      .object({
        kind: z.literal('exec'),
        boards: boardsPattern,
        code: z
          .string()
          .min(1)
          .max(64 * 1024),
        timeoutMs: z.number().int().min(100).max(3_600_000).optional(),
        expireMs,
      })
      .strict(),
    z
      .object({
        kind: z.literal('upload'),
        boards: boardsPattern,
        expireMs,
        files: z
          .array(z.object({ file: stagedFileId, path: boardPath }).strict())
          .min(1)
          .max(1_000),
      })
      .strict(),
    z.object({ kind: z.literal('reboot'), boards: boardsPattern, expireMs }).strict(),
    z
      .object({
        kind: z.literal('tag'),
        boards: boardsPattern,
        add: tagList,
        remove: tagList,
      })
      .strict(),
    z.object({ kind: z.literal('remove'), boards: boardsPattern }).strict(),
    z
      .object({
        kind: z.literal('flash'),
        port: devicePath,
        firmware: z.string().min(1).max(100).optional(),
        builtin: z.string().min(1).max(64).optional(),
        baud: baudRate.optional(),
        erase: z.boolean().optional(),
        flashMode: flashMode.optional(),
        provision: provisionInput.optional(),
      })
      .strict(),
    provisionInput.extend({ kind: z.literal('provision'), port: devicePath }).strict(),
    z
      .object({
        kind: z.literal('install'),
        boards: boardsPattern,
        /** What the user typed: index names with pins (logging@0.6), github:/gitlab:, URLs, local paths. */
        packages: packageList,
        /** A micropython-lib index v2 (default https://micropython.org/pi/v2). */
        index: indexUrl.optional(),
        /** Folder on the board the packages go into (default /lib). */
        target: boardPath.optional(),
        /** Send .py as they are, never compiled to .mpy. */
        source: z.boolean().optional(),
        expireMs,
      })
      .strict(),
    z.object({ kind: z.literal('uninstall'), boards: boardsPattern, packages: packageList, expireMs }).strict(),
  ])
  .refine(
    (input) => input.kind !== 'flash' || Boolean(input.firmware) !== Boolean(input.builtin),
    'a flash job needs exactly one of firmware (a catalogue name) or builtin',
  );

export const routeInputs = {
  status: empty,
  'boards.list': empty,
  'boards.get': z.object({ board: boardRef }).strict(),
  'boards.enroll': z.object({ name: z.string().min(1).max(32), rotate: z.boolean().optional(), server: z.string().min(1).max(253).optional() }).strict(),
  'boards.enrollMany': z
    .object({
      names: z.array(z.string().min(1).max(32)).min(1).max(20_000),
      rotate: z.boolean().optional(),
      server: z.string().min(1).max(253).optional(),
      /** Virtual boards (mbm sim): marked so, and refused for any name a non-virtual board has. */
      virtual: z.boolean().optional(),
    })
    .strict(),
  'boards.rename': z.object({ board: boardRef, name: z.string().min(1).max(32) }).strict(),
  'boards.remove': z.object({ board: boardRef }).strict(),
  'boards.revoke': z.object({ board: boardRef }).strict(),
  'boards.enable': z.object({ board: boardRef }).strict(),
  'boards.history': z.object({ board: boardRef, count: z.number().int().min(1).max(200).optional() }).strict(),
  'boards.telemetry': z.object({ board: boardRef }).strict(),
  'boards.tag': z
    .object({
      boards: boardsPattern,
      add: tagList,
      remove: tagList,
    })
    .strict(),
  'commands.send': z
    .object({
      boards: boardsPattern,
      request: commandRequestSchema,
      expireMs: z
        .number()
        .int()
        .min(1_000)
        .max(7 * 24 * 3_600_000)
        .optional(),
      timeoutMs: z.number().int().min(100).max(3_600_000).optional(),
    })
    .strict(),
  'jobs.start': jobRequestSchema,
  'jobs.list': empty,
  'jobs.get': z.object({ id: jobId }).strict(),
  'jobs.cancel': z.object({ id: jobId }).strict(),
  'commands.get': z.object({ cid }).strict(),
  'commands.wait': z.object({ cids: z.array(cid).min(1).max(20_000), timeoutMs: z.number().int().min(0).max(600_000) }).strict(),
  'commands.cancel': z.object({ cid }).strict(),
  'commands.file': z.object({ cid }).strict(),
  'service.shutdown': empty,
  'ui.signinUrl': empty,
  'service.network': empty,
  'service.setLanAccess': z.object({ address: z.string().min(1).max(64).nullable() }).strict(),
  'sim.start': z.object({ count: z.number().int().min(1).max(50) }).strict(),
  'sim.stop': empty,
  'usb.ports': empty,
  'usb.flash': z
    .object({
      port: devicePath,
      firmware: z.string().min(1).max(100).optional(),
      imageBase64: base64Data.optional(),
      baud: baudRate.optional(),
      erase: z.boolean().optional(),
      flashMode: flashMode.optional(),
      provision: provisionInput.optional(),
    })
    .strict()
    .refine((input) => Boolean(input.firmware) !== Boolean(input.imageBase64), 'give exactly one of firmware (a catalogue name) or imageBase64'),
  'usb.provision': provisionInput.extend({ port: devicePath }).strict(),
  'usb.put': z.object({ port: devicePath, dest: boardPath, dataBase64: base64Data }).strict(),
  'firmware.list': empty,
  'firmware.builtins': empty,
  'firmware.add': z.object({ name: z.string().min(1).max(100), dataBase64: base64Data }).strict(),
  'firmware.download': z
    .object({ url: z.string().url().max(2048), sha256: z.string().regex(/^[0-9a-fA-F]{64}$/), name: z.string().min(1).max(100).optional() })
    .strict(),
  /** The packages board-install recorded on a board (its /.cm_packages.json); waits up to timeoutMs for an offline board. */
  'packages.list': z.object({ board: boardRef, timeoutMs: z.number().int().min(0).max(600_000).optional() }).strict(),
} as const;

export type RouteName = keyof typeof routeInputs;
export type RouteInput<R extends RouteName> = z.input<(typeof routeInputs)[R]>;

export interface ServiceStatus {
  version: string;
  pid: number;
  uptimeS: number;
  apiUrl: string;
  redis: { pid: number | null; host: string; port: number; version: string; external: boolean; restarts: number; memoryBytes: number };
  boards: { online: number; total: number };
  commandsActive: number;
  /** Virtual boards running inside the service (sim.start). */
  virtualBoards: number;
  /** Where boards that lost the service are answered (UDP `address:port`); null when off. */
  discovery: { port: number; addresses: string[] } | null;
  /** Uplink entries the manager refused since it started (malformed, oversized, for commands it did not send). */
  uplinkRefused: number;
  /** What needs the user: boards suspended for going over their budget (until enabled), … */
  alarms: ServiceAlarm[];
  /**
   * Several managers on one Redis (docs/ARCHITECTURE.md "Several managers"): the one holding
   * the lease is active (`epoch`: its fencing token), the others stand by; `active` is the
   * active one (null while none holds the lease). A standby's boards and commands are empty.
   */
  manager: ManagerRoleStatus;
}

export interface ManagerRoleStatus {
  role: 'active' | 'standby';
  id: string;
  /** This manager's computer; the same as `active.host` when the active manager runs on this computer too. */
  host: string;
  epoch?: number;
  active: { id: string; host: string; pid: number; apiUrl: string; since: number } | null;
}

/** A condition the user should see (status, UI, tray) until it is dealt with. */
export type ServiceAlarm = BoardSuspendedAlarm | ConnectionsRefusedAlarm;

export interface SentCommand extends CommandView {
  boardOnline: boolean;
}

export interface RouteOutputs {
  status: ServiceStatus;
  'boards.list': BoardSummary[];
  'boards.get': BoardSummary;
  'boards.enroll': BoardCredentials;
  'boards.enrollMany': BoardCredentials[];
  'boards.rename': BoardSummary;
  'boards.remove': { removed: string };
  'boards.revoke': { board: BoardSummary; closed: number };
  'boards.enable': BoardSummary;
  'boards.history': Array<Record<string, string>>;
  'boards.tag': BoardSummary[];
  'boards.telemetry': BoardTelemetry;
  'commands.send': { commands: SentCommand[] };
  'jobs.start': JobSummary;
  'jobs.list': JobSummary[];
  'jobs.get': JobView;
  'jobs.cancel': JobSummary;
  'commands.get': CommandView;
  'commands.wait': CommandView[];
  'commands.cancel': CommandView;
  'commands.file': { size: number; sha256: string; dataBase64: string };
  'service.shutdown': { stopping: true };
  'ui.signinUrl': { url: string; expiresAt: number };
  'service.network': NetworkAccess;
  'service.setLanAccess': NetworkAccess;
  'sim.start': { names: string[] };
  'sim.stop': { stopped: number };
  'usb.ports': SerialPortInfo[];
  'usb.flash': { flash: FlashResult; provision: ProvisionResult | null };
  'usb.provision': ProvisionResult;
  'usb.put': PutFileResult;
  'firmware.list': CatalogueEntry[];
  'firmware.builtins': BuiltinFirmwareView[];
  'firmware.add': CatalogueEntry;
  'firmware.download': CatalogueEntry;
  'packages.list': { board: string; packages: InstalledPackage[] };
}
export type RouteOutput<R extends RouteName> = RouteOutputs[R];

/** A firmware the app can download by itself, and whether it already has. */
export interface BuiltinFirmwareView {
  id: string;
  title: string;
  version: string;
  approxBytes: number;
  /** The catalogue entry once downloaded (and still matching its recorded sha256). */
  downloaded: string | null;
}

export type ApiErrorCode = 'bad_request' | 'unauthorized' | 'not_found' | 'conflict' | 'unavailable' | 'device' | 'internal';

export interface ApiError {
  code: ApiErrorCode;
  message: string;
}

export type ApiResponse<T> = { ok: true; result: T } | { ok: false; error: ApiError };

/**
 * Everything pushed over the events WebSocket. `hello` comes first, once connected. With
 * `?batch=1` the events of one turn of the service's event loop share a frame (a JSON
 * array); within such a batch only the latest `command` event of each command is kept (a
 * view is the command's whole state); all other events, `output` included, arrive, in order.
 * A batching client that does not read fast enough gets `resync` where events were dropped:
 * it should re-read the state, as after a reconnect. A client without `?batch=1` gets one
 * event per frame and is disconnected instead.
 */
export type ApiEvent =
  | BoardEvent
  | { type: 'command'; command: CommandView }
  | ({ type: 'job' } & JobEvent)
  | ({ type: 'output' } & OutputEvent)
  | ({ type: 'usb.progress' } & UsbProgressEvent)
  | ({ type: 'usb.port' } & SerialPortChange)
  /** The whole list of alarms (as in `status`), sent whenever it changes. */
  | { type: 'service.alarms'; alarms: ServiceAlarm[] }
  | { type: 'hello'; version: string }
  | { type: 'resync' };

export const API_EVENTS_PATH = '/api/events';
/** `?batch=1` on the events WebSocket: frames may carry a JSON array of events, and `resync` markers. */
export const API_EVENTS_BATCH_PARAM = 'batch';
/** WebSocket of the USB console: `?port=PATH`; binary frames both ways, JSON notices as text. */
export const USB_CONSOLE_WS_PATH = '/api/usb/console';
export type { UsbConsoleNotice } from './usb-console-socket.js';
/** `POST` raw bytes (application/octet-stream, at most 16 MiB) here to stage a file for an upload job; answers a StagedFile. */
export const FILES_STAGE_PATH = '/api/files.stage';
export const API_TOKEN_SUBPROTOCOL_PREFIX = 'cloudmanager.';
