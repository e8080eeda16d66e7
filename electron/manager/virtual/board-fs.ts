/**
 * File systems of virtual boards: in memory (default), or mapped onto a host folder so a
 * user or a test can look at what landed on the board. Errors carry the protocol's error
 * codes (PROTOCOL.md §7) so the board can report them as they are.
 */
import { mkdir, readFile, readdir, rename, rm, rmdir, stat, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { boardHostPath, boardPathSegments } from './board-host-path.mjs';

export type FsErrorCode = 'ENOENT' | 'EEXIST' | 'EISDIR' | 'ENOTDIR' | 'ENOTEMPTY' | 'EINVAL' | 'ENOSPC';

export class BoardFsError extends Error {
  override name = 'BoardFsError';
  constructor(
    readonly code: FsErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export type DirEntry = [name: string, type: 'f' | 'd', size: number];

export interface BoardFs {
  readFile(path: string): Promise<Buffer>;
  writeFile(path: string, data: Buffer): Promise<void>;
  stat(path: string): Promise<{ type: 'f' | 'd'; size: number }>;
  list(path: string): Promise<DirEntry[]>;
  /** Creates the directory and missing parents; an existing directory is fine. */
  mkdir(path: string): Promise<void>;
  remove(path: string, recursive: boolean): Promise<void>;
  /** Moves a file, replacing an existing destination file. */
  rename(from: string, to: string): Promise<void>;
}

/** Splits a board path ("/a/b") into segments, refusing anything the protocol forbids (a backslash too: see board-host-path.mjs). */
export function pathSegments(boardPath: string): string[] {
  const split = boardPathSegments(boardPath);
  if (split.problem !== undefined) throw new BoardFsError('EINVAL', split.problem);
  return split.segments;
}

export function parentPath(boardPath: string): string {
  const segments = pathSegments(boardPath);
  return '/' + segments.slice(0, -1).join('/');
}

type Node = { type: 'f'; data: Buffer } | { type: 'd'; children: Map<string, Node> };

export class MemoryFs implements BoardFs {
  private readonly root: Node = { type: 'd', children: new Map() };

  constructor(private readonly capacityBytes = 64 * 1024 * 1024) {}

  private lookup(boardPath: string): Node | undefined {
    let node: Node | undefined = this.root;
    for (const segment of pathSegments(boardPath)) {
      if (node?.type !== 'd') return undefined;
      node = node.children.get(segment);
    }
    return node;
  }

  private directory(boardPath: string): Map<string, Node> {
    const node = this.lookup(boardPath);
    if (!node) throw new BoardFsError('ENOENT', `no such directory ${boardPath}`);
    if (node.type !== 'd') throw new BoardFsError('ENOTDIR', `${boardPath} is not a directory`);
    return node.children;
  }

  private used(node: Node = this.root): number {
    if (node.type === 'f') return node.data.length;
    let total = 0;
    for (const child of node.children.values()) total += this.used(child);
    return total;
  }

  async readFile(boardPath: string): Promise<Buffer> {
    const node = this.lookup(boardPath);
    if (!node) throw new BoardFsError('ENOENT', `no such file ${boardPath}`);
    if (node.type === 'd') throw new BoardFsError('EISDIR', `${boardPath} is a directory`);
    return node.data;
  }

  /** Where a file named `boardPath` goes: its parent directory (which must exist) and its name, never a directory's place. */
  private fileSlot(boardPath: string): { parent: Map<string, Node>; name: string } {
    const segments = pathSegments(boardPath);
    const name = segments.pop();
    if (!name) throw new BoardFsError('EISDIR', 'cannot write to /');
    const parent = this.directory('/' + segments.join('/'));
    if (parent.get(name)?.type === 'd') throw new BoardFsError('EISDIR', `${boardPath} is a directory`);
    return { parent, name };
  }

  async writeFile(boardPath: string, data: Buffer): Promise<void> {
    const { parent, name } = this.fileSlot(boardPath);
    if (this.used() + data.length > this.capacityBytes) throw new BoardFsError('ENOSPC', 'no space left on the board');
    parent.set(name, { type: 'f', data: Buffer.from(data) });
  }

  async stat(boardPath: string): Promise<{ type: 'f' | 'd'; size: number }> {
    const node = this.lookup(boardPath);
    if (!node) throw new BoardFsError('ENOENT', `no such file or directory ${boardPath}`);
    return node.type === 'f' ? { type: 'f', size: node.data.length } : { type: 'd', size: 0 };
  }

  async list(boardPath: string): Promise<DirEntry[]> {
    return [...this.directory(boardPath)].map(([name, node]): DirEntry => (node.type === 'f' ? [name, 'f', node.data.length] : [name, 'd', 0]));
  }

  async mkdir(boardPath: string): Promise<void> {
    let node: Node = this.root;
    for (const segment of pathSegments(boardPath)) {
      if (node.type !== 'd') throw new BoardFsError('ENOTDIR', `a parent of ${boardPath} is a file`);
      let child = node.children.get(segment);
      if (!child) node.children.set(segment, (child = { type: 'd', children: new Map() }));
      node = child;
    }
    if (node.type !== 'd') throw new BoardFsError('EEXIST', `${boardPath} is a file`);
  }

  async remove(boardPath: string, recursive: boolean): Promise<void> {
    const segments = pathSegments(boardPath);
    const name = segments.pop();
    if (!name) throw new BoardFsError('EINVAL', 'cannot remove /');
    const parent = this.directory('/' + segments.join('/'));
    const node = parent.get(name);
    if (!node) throw new BoardFsError('ENOENT', `no such file or directory ${boardPath}`);
    if (node.type === 'd' && node.children.size > 0 && !recursive) throw new BoardFsError('ENOTEMPTY', `${boardPath} is not empty`);
    parent.delete(name);
  }

  async rename(from: string, to: string): Promise<void> {
    // Both ends are checked before anything changes: a move that cannot happen leaves
    // both names as they were, and one that can happens in one step.
    const data = await this.readFile(from);
    const { parent, name } = this.fileSlot(to);
    await this.remove(from, false);
    parent.set(name, { type: 'f', data });
  }
}

/** The host's file errors in the words the in-memory file system uses. */
const HOST_ERROR_TEXT = {
  ENOENT: 'no such file or directory',
  EEXIST: 'already exists:',
  EISDIR: 'is a directory:',
  ENOTDIR: 'a parent is not a directory:',
  ENOTEMPTY: 'the directory is not empty:',
  ENOSPC: 'no space left on the board for',
} as const;

/**
 * The host file of a board path in a folder mapped as the board's "/", by the host's path
 * rules (`hostPath`: node's `path`, or `path.win32`/`path.posix` in tests): never outside
 * `root`, and on Windows never a drive, a stream or a device (board-host-path.mjs).
 */
export function hostPathOf(root: string, boardPath: string, hostPath: path.PlatformPath = path): string {
  const result = boardHostPath(root, boardPath, hostPath);
  if (result.problem !== undefined) throw new BoardFsError('EINVAL', result.problem);
  return result.host;
}

/** Maps the board's "/" onto a host folder. Paths are validated before they touch the host, and never lead outside it. */
export class HostFolderFs implements BoardFs {
  constructor(
    readonly root: string,
    private readonly hostPath: path.PlatformPath = path,
  ) {}

  private host(boardPath: string): string {
    return hostPathOf(this.root, boardPath, this.hostPath);
  }

  private async wrap<T>(boardPath: string, action: () => Promise<T>): Promise<T> {
    try {
      return await action();
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== undefined && code in HOST_ERROR_TEXT) {
        throw new BoardFsError(code as FsErrorCode, `${HOST_ERROR_TEXT[code as keyof typeof HOST_ERROR_TEXT]} ${boardPath}`);
      }
      throw error;
    }
  }

  async readFile(boardPath: string): Promise<Buffer> {
    return this.wrap(boardPath, () => readFile(this.host(boardPath)));
  }

  async writeFile(boardPath: string, data: Buffer): Promise<void> {
    await this.wrap(boardPath, () => writeFile(this.host(boardPath), data));
  }

  async stat(boardPath: string): Promise<{ type: 'f' | 'd'; size: number }> {
    const info = await this.wrap(boardPath, () => stat(this.host(boardPath)));
    return info.isDirectory() ? { type: 'd', size: 0 } : { type: 'f', size: info.size };
  }

  async list(boardPath: string): Promise<DirEntry[]> {
    const entries = await this.wrap(boardPath, () => readdir(this.host(boardPath), { withFileTypes: true }));
    return Promise.all(
      entries.map(async (entry): Promise<DirEntry> =>
        entry.isDirectory() ? [entry.name, 'd', 0] : [entry.name, 'f', (await stat(this.hostPath.join(this.host(boardPath), entry.name))).size],
      ),
    );
  }

  async mkdir(boardPath: string): Promise<void> {
    await this.wrap(boardPath, () => mkdir(this.host(boardPath), { recursive: true }));
  }

  async remove(boardPath: string, recursive: boolean): Promise<void> {
    if (pathSegments(boardPath).length === 0) throw new BoardFsError('EINVAL', 'cannot remove /');
    const info = await this.stat(boardPath);
    const target = this.host(boardPath);
    if (info.type === 'f') await this.wrap(boardPath, () => unlink(target));
    else if (recursive) await this.wrap(boardPath, () => rm(target, { recursive: true }));
    else await this.wrap(boardPath, () => rmdir(target));
  }

  async rename(from: string, to: string): Promise<void> {
    if ((await this.stat(from)).type === 'd') throw new BoardFsError('EISDIR', `${from} is a directory`);
    await this.wrap(from, () => rename(this.host(from), this.host(to)));
  }
}
