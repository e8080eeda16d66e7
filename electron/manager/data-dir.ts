/**
 * The manager's data folder: where the embedded Redis keeps its files, where secrets and
 * the running service's address live, and how another process (the CLI in another shell)
 * finds the running service. Secrets are files readable only by the user (0600).
 */
import { mkdir, readFile, writeFile, rename, chmod, rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';

export const APP_FOLDER_NAME = 'Cloudmanager';

/** The per-user app data folder, as Electron's `userData` would be, or CLOUDMANAGER_DATA_DIR. */
export function defaultDataDir(env: NodeJS.ProcessEnv = process.env, platform = process.platform): string {
  if (env.CLOUDMANAGER_DATA_DIR) return path.resolve(env.CLOUDMANAGER_DATA_DIR);
  const home = os.homedir();
  if (platform === 'win32') return path.join(env.APPDATA ?? path.join(home, 'AppData', 'Roaming'), APP_FOLDER_NAME);
  if (platform === 'darwin') return path.join(home, 'Library', 'Application Support', APP_FOLDER_NAME);
  return path.join(env.XDG_CONFIG_HOME ?? path.join(home, '.config'), APP_FOLDER_NAME);
}

export function dataPaths(dataDir: string) {
  return {
    root: dataDir,
    redisDir: path.join(dataDir, 'redis'),
    aclFile: path.join(dataDir, 'redis', 'users.acl'),
    secretsDir: path.join(dataDir, 'secrets'),
    managerPassword: path.join(dataDir, 'secrets', 'redis-manager.password'),
    apiToken: path.join(dataDir, 'secrets', 'api.token'),
    serviceFile: path.join(dataDir, 'service.json'),
    firmwareDir: path.join(dataDir, 'firmware'),
    logsDir: path.join(dataDir, 'logs'),
    managerLog: path.join(dataDir, 'logs', 'manager.log'),
  };
}
export type DataPaths = ReturnType<typeof dataPaths>;

export async function ensureDataDirs(paths: DataPaths): Promise<void> {
  for (const dir of [paths.root, paths.redisDir, paths.secretsDir, paths.logsDir]) {
    await mkdir(dir, { recursive: true, mode: 0o700 });
  }
  await chmod(paths.secretsDir, 0o700);
}

/** Writes a file atomically (temp name + rename) with the given mode. */
export async function writeFileAtomic(file: string, content: string | Uint8Array, mode = 0o600): Promise<void> {
  const temp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await writeFile(temp, content, { mode });
    await chmod(temp, mode);
    await rename(temp, file);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}

/** Reads a secret file, creating it with a fresh random value (0600) the first time. */
export async function readOrCreateSecret(file: string): Promise<string> {
  try {
    const value = (await readFile(file, 'utf8')).trim();
    if (value.length >= 16) return value;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const value = randomBytes(32).toString('base64url');
  await writeFileAtomic(file, value + '\n');
  return value;
}

/** What a running service publishes about itself in service.json. */
export interface ServiceInfo {
  pid: number;
  apiUrl: string;
  redis: { host: string; port: number; external: boolean };
  startedAt: number;
  version: string;
}

export async function readServiceInfo(paths: DataPaths): Promise<ServiceInfo | null> {
  try {
    return JSON.parse(await readFile(paths.serviceFile, 'utf8')) as ServiceInfo;
  } catch {
    return null;
  }
}

export async function readApiToken(paths: DataPaths): Promise<string | null> {
  try {
    return (await readFile(paths.apiToken, 'utf8')).trim();
  } catch {
    return null;
  }
}
