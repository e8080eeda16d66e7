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

/**
 * A folder only this user can enter (0700): made so if missing, and tightened if it was
 * there already (a folder made by hand, an older version, a umask of 022). For every
 * folder that holds a secret, whatever the umask.
 */
export async function ensurePrivateDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  // Windows has no mode bits; the folder is under the user's profile, private by its ACL.
  if (process.platform !== 'win32') await chmod(dir, 0o700);
}

/**
 * The data folder and its folders are the user's alone: redis/ holds the ACL file and the
 * append-only files (discovery keys), secrets/ the passwords and the API token, logs/ what
 * a board sent, and the folder itself desktop.json and network.json.
 */
export async function ensureDataDirs(paths: DataPaths): Promise<void> {
  for (const dir of [paths.root, paths.redisDir, paths.secretsDir, paths.logsDir]) await ensurePrivateDir(dir);
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
