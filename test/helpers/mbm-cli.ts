/**
 * Runs the built `mbm` CLI (bin/mbm.js → dist) as a user would, against one data folder,
 * and collects what it printed. The tests that drive the CLI share this runner.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The CLI's entry point. */
export const MBM = fileURLToPath(new URL('../../bin/mbm.js', import.meta.url));

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

export interface MbmRunOptions {
  dataDir: string;
  /** Working directory (files the command names are relative to it). */
  cwd: string;
  /** Written to the CLI's stdin, which is then closed. */
  input?: string;
}

/** `mbm ARGS --data-dir DIR`, with no data folder from the environment. */
export function runMbm(args: string[], options: MbmRunOptions): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MBM, ...args, '--data-dir', options.dataDir], {
      cwd: options.cwd,
      env: { ...process.env, CLOUDMANAGER_DATA_DIR: '' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(options.input ?? '');
  });
}
