/** The titles jobs are listed under ("Upload main.py to 3 boards"), from their requests. */
import type { JobRequest } from './job-service.js';

/** "1 board", "3 boards". */
export function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}

export function titleOf(request: JobRequest, boards = 1): string {
  switch (request.kind) {
    case 'exec': {
      const line = request.code.trim().split('\n', 1)[0] ?? '';
      return `Run code on ${count(boards, 'board')}: ${line.length > 40 ? `${line.slice(0, 37)}…` : line}`;
    }
    case 'upload':
      return `Upload ${request.files.length === 1 ? request.files[0]!.path : count(request.files.length, 'file')} to ${count(boards, 'board')}`;
    case 'reboot':
      return `Reboot ${count(boards, 'board')}`;
    case 'tag':
      return `Tag ${count(boards, 'board')} ${[...request.add.map((tag) => `+${tag}`), ...request.remove.map((tag) => `-${tag}`)].join(' ')}`;
    case 'remove':
      return `Remove ${count(boards, 'board')}`;
    case 'flash':
      return `Flash ${request.provision?.name ?? 'a board'} on ${request.port}`;
    case 'provision':
      return `Set up ${request.name} on ${request.port}`;
    case 'install':
    case 'uninstall': {
      const names = request.packages.length <= 2 ? request.packages.join(', ') : `${request.packages[0]} and ${request.packages.length - 1} more`;
      return `${request.kind === 'install' ? 'Install' : 'Uninstall'} ${names} ${request.kind === 'install' ? 'on' : 'from'} ${count(boards, 'board')}`;
    }
  }
}
