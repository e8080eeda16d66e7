/**
 * The renderer reaches the service only through the API: from the service's code it may
 * import types (erased at build), never a value.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../renderer/src', import.meta.url));

async function sources(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const nested = await Promise.all(
    entries.map((entry) => {
      const file = path.join(dir, entry.name);
      if (entry.isDirectory()) return sources(file);
      return /\.(ts|svelte)$/.test(entry.name) ? [file] : [];
    }),
  );
  return nested.flat();
}

describe('renderer imports', () => {
  it('imports only types from electron/', async () => {
    const offending: string[] = [];
    for (const file of await sources(root)) {
      const text = await readFile(file, 'utf8');
      for (const match of text.matchAll(/^\s*(import|export)\s+(type\s+)?[^;]*?from\s+['"]([^'"]+)['"]/gm)) {
        if (match[3]!.includes('/electron/') && !match[2]) offending.push(`${path.relative(root, file)}: ${match[0].trim()}`);
      }
    }
    expect(offending).toEqual([]);
  });
});
