/**
 * Finding, starting and stopping the service from the CLI. A running service publishes
 * `service.json` (API address, pid) in its data folder and keeps the API token there
 * (0600); any shell of the same user can reach it with `--data-dir` (or the default).
 */
import { spawn } from 'node:child_process';
import { openSync, closeSync, fchmodSync, readFileSync, existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ApiClient, ApiRequestError } from '../manager/api/client.js';
import { dataPaths, defaultDataDir, readApiToken, readServiceInfo, ensureDataDirs, type ServiceInfo } from '../manager/data-dir.js';
import { CliError, type VerbContext } from './cli-framework.js';

export function dataDirOf(values: VerbContext['values']): string {
  return typeof values['data-dir'] === 'string' ? values['data-dir'] : defaultDataDir();
}

export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
  // A background service's parent is init; until init reaps it, a finished service is a
  // zombie that still answers kill(0). On Linux, read its state instead of waiting.
  if (process.platform === 'linux') {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
    } catch {
      return false;
    }
  }
  return true;
}

/** The running service of a data folder, or null when none answers. */
export async function findService(dataDir: string): Promise<{ client: ApiClient; info: ServiceInfo } | null> {
  const paths = dataPaths(dataDir);
  const info = await readServiceInfo(paths);
  const token = await readApiToken(paths);
  if (!info || !token || !processAlive(info.pid)) return null;
  const client = new ApiClient(info.apiUrl, token);
  try {
    await client.call('status', {}, { signal: AbortSignal.timeout(5_000) });
  } catch (error) {
    if (error instanceof ApiRequestError && error.code === 'unreachable') return null;
    throw error;
  }
  return { client, info };
}

export async function connectService(values: VerbContext['values']): Promise<ApiClient> {
  const dataDir = dataDirOf(values);
  const service = await findService(dataDir);
  if (!service) {
    throw new CliError(
      `the Cloudmanager service is not running for ${dataDir}\nStart it with: mbm server-start${values['data-dir'] ? ` --data-dir ${dataDir}` : ''}`,
      3,
    );
  }
  return service.client;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The last lines of the service log, to explain a failed start. */
function logTail(file: string, lines = 15): string {
  if (!existsSync(file)) return '';
  return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
}

/**
 * Starts `mbm server-start --foreground …` detached, with its output appended to the log
 * file, and returns once the new service answers (like the original `server-start`).
 */
export async function startInBackground(dataDir: string, foregroundArgs: string[], timeoutMs = 60_000): Promise<{ info: ServiceInfo; client: ApiClient }> {
  const paths = dataPaths(dataDir);
  await ensureDataDirs(paths);
  const logFd = openSync(paths.managerLog, 'a', 0o600);
  // The mode above applies only to a new file: one left by an older version is tightened too.
  if (process.platform !== 'win32') fchmodSync(logFd, 0o600);
  const cli = fileURLToPath(new URL('./mbm.js', import.meta.url));
  const child = spawn(process.execPath, [cli, 'server-start', '--foreground', '--data-dir', dataDir, ...foregroundArgs], {
    detached: true,
    stdio: ['ignore', logFd, logFd],
    env: process.env,
  });
  closeSync(logFd);
  let exited: number | null = null;
  child.on('exit', (code) => (exited = code ?? 1));
  child.unref();
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (exited !== null) {
      throw new CliError(`the service failed to start (exit code ${exited}). Last lines of ${paths.managerLog}:\n${logTail(paths.managerLog)}`);
    }
    const info = await readServiceInfo(paths);
    if (info?.pid === child.pid) {
      const found = await findService(dataDir);
      if (found) return found;
    }
    await sleep(100);
  }
  child.kill('SIGTERM');
  throw new CliError(`the service did not become ready within ${timeoutMs / 1000} s. Last lines of ${paths.managerLog}:\n${logTail(paths.managerLog)}`);
}

/** Asks the service to stop and waits for its process to end. */
export async function stopService(dataDir: string, timeoutMs = 30_000): Promise<'stopped' | 'not-running'> {
  const paths = dataPaths(dataDir);
  const info = await readServiceInfo(paths);
  if (!info || !processAlive(info.pid)) return 'not-running';
  const token = await readApiToken(paths);
  try {
    if (!token) throw new Error('no token');
    await new ApiClient(info.apiUrl, token).call('service.shutdown', {}, { signal: AbortSignal.timeout(5_000) });
  } catch {
    // The API does not answer: fall back to a signal (the service stops cleanly on SIGTERM).
    process.kill(info.pid, 'SIGTERM');
  }
  const deadline = Date.now() + timeoutMs;
  while (processAlive(info.pid)) {
    if (Date.now() > deadline) throw new CliError(`the service (pid ${info.pid}) did not stop within ${timeoutMs / 1000} s`);
    await sleep(100);
  }
  return 'stopped';
}
