/**
 * Files a user gives the page — dropped (files and whole folders) or picked — as a flat
 * list of files with their path relative to what was dropped, so a dropped folder keeps its
 * structure on the board. Uses the DataTransfer entry API where there is one (Chromium,
 * Firefox, Safari all have webkitGetAsEntry), else the plain file list.
 */
export interface PickedFile {
  file: File;
  /** Path below the drop target, `/`-separated, without a leading slash: "lib/util.py". */
  relativePath: string;
}

interface EntryLike {
  isFile: boolean;
  isDirectory: boolean;
  name: string;
  fullPath: string;
  file?: (success: (file: File) => void, failure: (error: unknown) => void) => void;
  createReader?: () => { readEntries(success: (entries: EntryLike[]) => void, failure: (error: unknown) => void): void };
}

/** Files inside a dropped directory entry, depth first; at most `limit` files. */
async function walk(entry: EntryLike, prefix: string, out: PickedFile[], limit: number): Promise<void> {
  if (out.length >= limit) return;
  if (entry.isFile && entry.file) {
    const file = await new Promise<File>((resolve, reject) => entry.file!(resolve, reject));
    out.push({ file, relativePath: prefix + entry.name });
    return;
  }
  if (!entry.isDirectory || !entry.createReader) return;
  const reader = entry.createReader();
  // readEntries hands out a directory in batches until it returns an empty one.
  for (;;) {
    const batch = await new Promise<EntryLike[]>((resolve, reject) => reader.readEntries(resolve, reject));
    if (batch.length === 0) break;
    for (const child of batch) await walk(child, `${prefix}${entry.name}/`, out, limit);
  }
}

export async function filesFromDataTransfer(transfer: DataTransfer, limit = 1000): Promise<PickedFile[]> {
  const out: PickedFile[] = [];
  const entries: EntryLike[] = [];
  const loose: File[] = [];
  for (const item of Array.from(transfer.items ?? [])) {
    if (item.kind !== 'file') continue;
    const entry = (item as DataTransferItem & { webkitGetAsEntry?: () => EntryLike | null }).webkitGetAsEntry?.();
    if (entry) entries.push(entry);
    else {
      const file = item.getAsFile();
      if (file) loose.push(file);
    }
  }
  // Entries must be taken from the items synchronously (above), then read.
  for (const entry of entries) await walk(entry, '', out, limit);
  if (entries.length === 0 && loose.length === 0) loose.push(...Array.from(transfer.files ?? []));
  for (const file of loose) if (out.length < limit) out.push({ file, relativePath: file.name });
  return out;
}

/** Files from an <input type=file> (with `webkitdirectory`, paths keep the folder). */
export function filesFromInput(list: FileList | null): PickedFile[] {
  return Array.from(list ?? []).map((file) => ({ file, relativePath: file.webkitRelativePath || file.name }));
}

/** True when a drag carries files (not text or a link). */
export function dragHasFiles(event: DragEvent): boolean {
  return Array.from(event.dataTransfer?.types ?? []).includes('Files');
}

/** The board path of a picked file under `folder` ("/" or "/lib"). */
export function boardPathFor(folder: string, relativePath: string): string {
  const base = folder === '/' ? '' : folder.replace(/\/+$/, '');
  const clean = relativePath
    .split('/')
    .filter((part) => part !== '' && part !== '.' && part !== '..')
    .join('/');
  return `${base}/${clean}`;
}

/** Checks a folder typed by the user: absolute, no `.`/`..`, returns it normalised or an error. */
export function checkBoardFolder(folder: string): { ok: true; folder: string } | { ok: false; error: string } {
  const trimmed = folder.trim();
  if (!trimmed.startsWith('/')) return { ok: false, error: 'A folder on the board starts with / (for example /lib).' };
  const parts = trimmed.split('/').filter(Boolean);
  if (parts.some((part) => part === '.' || part === '..')) return { ok: false, error: 'Use a plain path without . or .. in it.' };
  if (trimmed.length > 200) return { ok: false, error: 'That path is too long for a board.' };
  return { ok: true, folder: '/' + parts.join('/') };
}
