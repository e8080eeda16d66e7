/**
 * The desktop app's own settings (start at login, automatic update checks, an external
 * Redis), kept in <data>/desktop.json beside the manager's files, readable by the user only.
 * A missing file or field means the default; a file that cannot be read as settings is moved
 * aside to desktop.json.bad (so nothing the user wrote is lost) and the defaults are used.
 * Plain Node: no Electron import, so the rules are tested under vitest.
 */
import { readFile, rename } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { writeFileAtomic } from '../manager/data-dir.js';

export interface DesktopSettings {
  startAtLogin: boolean; // default false
  updatesEnabled: boolean; // default false
  closeToTrayNoticeShown: boolean; // default false
  redisUrl: string | null; // external Redis; default null (embedded)
}

export const DESKTOP_SETTINGS_FILE = 'desktop.json';

export const DEFAULT_DESKTOP_SETTINGS: Readonly<DesktopSettings> = Object.freeze({
  startAtLogin: false,
  updatesEnabled: false,
  closeToTrayNoticeShown: false,
  redisUrl: null,
});

/** A redis:// or rediss:// URL with a host, or a Cluster's / Sentinel's (what the manager's --redis-url takes; it checks the rest). */
const redisUrlSchema = z
  .string()
  .max(2_048)
  .refine(
    (value) => {
      try {
        if (/^rediss?\+(cluster|sentinel):\/\/[^/?#]*[A-Za-z0-9\]]/.test(value)) return true;
        const url = new URL(value);
        return (url.protocol === 'redis:' || url.protocol === 'rediss:') && url.hostname !== '';
      } catch {
        return false;
      }
    },
    // Never echo the value: it may carry a password.
    {
      message:
        'redisUrl must be a redis:// or rediss:// URL with a host, e.g. redis://user:password@host:6379, or redis+cluster://h1:p1,h2:p2 or redis+sentinel://s1:p1,s2:p2/mastername',
    },
  );

const fields = {
  startAtLogin: z.boolean(),
  updatesEnabled: z.boolean(),
  closeToTrayNoticeShown: z.boolean(),
  redisUrl: redisUrlSchema.nullable(),
};

/** The file: every field optional (an older file lacks newer ones), unknown fields dropped. */
const fileSchema = z.object({
  startAtLogin: fields.startAtLogin.default(false),
  updatesEnabled: fields.updatesEnabled.default(false),
  closeToTrayNoticeShown: fields.closeToTrayNoticeShown.default(false),
  redisUrl: fields.redisUrl.default(null),
});

/** A change: only known fields, each valid. */
const changeSchema = z.object(fields).partial().strict();

/** A change the settings cannot take; the message names the field and what it accepts. */
export class DesktopSettingsError extends Error {
  override name = 'DesktopSettingsError';
}

export function desktopSettingsFile(dataDir: string): string {
  return path.join(dataDir, DESKTOP_SETTINGS_FILE);
}

/** The settings, or the defaults when the file is missing; an unreadable file is moved to desktop.json.bad. */
export async function readDesktopSettings(dataDir: string): Promise<DesktopSettings> {
  const file = desktopSettingsFile(dataDir);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { ...DEFAULT_DESKTOP_SETTINGS };
    throw error;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  const parsed = fileSchema.safeParse(json);
  if (parsed.success) return parsed.data;
  // Kept, not overwritten: the next write would replace it with the defaults.
  try {
    await rename(file, `${file}.bad`);
  } catch (error) {
    // Another read moved it aside a moment ago.
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  return { ...DEFAULT_DESKTOP_SETTINGS };
}

/** Writes are queued per file, so two quick toggles do not lose one another (read, change, write). */
const writeQueues = new Map<string, Promise<unknown>>();

/** Applies a change (validated: DesktopSettingsError names what is wrong) and saves atomically, 0600. */
export function writeDesktopSettings(dataDir: string, change: Partial<DesktopSettings>): Promise<DesktopSettings> {
  const checked = changeSchema.safeParse(change);
  if (!checked.success) {
    const issues = checked.error.issues.map((issue) => (issue.path.length > 0 ? `${issue.path.join('.')}: ${issue.message}` : issue.message));
    return Promise.reject(new DesktopSettingsError(`invalid desktop settings: ${issues.join('; ')}`));
  }
  const file = desktopSettingsFile(dataDir);
  const write = async () => {
    const settings: DesktopSettings = { ...(await readDesktopSettings(dataDir)), ...checked.data };
    await writeFileAtomic(file, JSON.stringify(settings, null, 2) + '\n', 0o600);
    return settings;
  };
  const previous = writeQueues.get(file) ?? Promise.resolve();
  const next = previous.then(write, write);
  const tail = next.catch(() => undefined);
  writeQueues.set(file, tail);
  void tail.then(() => {
    if (writeQueues.get(file) === tail) writeQueues.delete(file);
  });
  return next;
}
