/**
 * Finding executables: whether a file can be run, and a command's location on PATH
 * (redis-server for the embedded Redis, udevadm for the serial port lister).
 */
import { constants as fsConstants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import path from 'node:path';

export const isWindows = process.platform === 'win32';

/** Returns why `file` is unusable as an executable, or undefined when it is fine. */
export async function executableProblem(file: string): Promise<string | undefined> {
  try {
    const info = await stat(file);
    if (!info.isFile()) return 'is not a file';
  } catch {
    return 'does not exist';
  }
  try {
    // On Windows X_OK degrades to an existence check, which is what Windows offers.
    await access(file, fsConstants.X_OK);
  } catch {
    return 'is not executable';
  }
  return undefined;
}

export async function isExecutable(file: string): Promise<boolean> {
  return (await executableProblem(file)) === undefined;
}

/** Environment lookup that is case-insensitive on Windows (PATH is often spelt `Path`). */
function envValue(env: NodeJS.ProcessEnv, name: string): string | undefined {
  if (!isWindows) return env[name];
  const key = Object.keys(env).find((k) => k.toUpperCase() === name.toUpperCase());
  return key === undefined ? undefined : env[key];
}

/** Candidate file names for `command` in one PATH folder. */
function pathCandidates(dir: string, command: string, env: NodeJS.ProcessEnv): string[] {
  if (!isWindows) return [path.join(dir, command)];
  const exts = (envValue(env, 'PATHEXT') ?? '.COM;.EXE;.BAT;.CMD').split(';').filter((e) => e.length > 0);
  return exts.map((ext) => path.join(dir, `${command}${ext.toLowerCase()}`));
}

/** The first executable `command` in the PATH folders, or undefined. */
export async function findOnPath(command: string, env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  const dirs = (envValue(env, 'PATH') ?? '').split(path.delimiter);
  for (const dir of dirs) {
    // An empty PATH entry means "current directory" to a shell; running whatever binary
    // happens to sit in the cwd is not something a service should do, so skip it.
    if (dir.length === 0 || !path.isAbsolute(dir)) continue;
    for (const candidate of pathCandidates(dir, command, env)) {
      if (await isExecutable(candidate)) return candidate;
    }
  }
  return undefined;
}
