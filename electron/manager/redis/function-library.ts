/**
 * The cloudmanager function library (cloudmanager.lua) and its version. Managers of different
 * versions may share a Redis for a while (an upgrade of one computer, an old standby): each
 * replacing the library with its own on connect (FUNCTION LOAD REPLACE, as before) would make
 * the other's calls fail whenever a function's keys or arguments changed. So the library says
 * which version it is (cm_library_version, a hash of its source), and only the active manager
 * (the lease holder) replaces another version's library; a standby, or a manager still starting,
 * loads it only where it is missing. The lease functions and cm_mgr_publish keep their keys and
 * arguments from version to version: they are what managers of different versions share.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import { isFunctionNotFound } from './function-call.js';

const SOURCE = readFileSync(new URL('./cloudmanager.lua', import.meta.url), 'utf8');
const PLACEHOLDER = '@CM_LIBRARY_VERSION@';

/** A hash of the library's source: different whenever a function changed. */
export const LIBRARY_VERSION = createHash('sha256').update(SOURCE).digest('hex').slice(0, 16);
/** What FUNCTION LOAD gets: the source with its version filled in. */
export const FUNCTION_LIBRARY = SOURCE.replace(PLACEHOLDER, LIBRARY_VERSION);

/**
 * Makes sure `primary` has this version's library: loads it where there is none, and where
 * another version's is loaded replaces it only with `replaceOtherVersion` (the active manager).
 * A library without cm_library_version (from before versions were stamped) is another version.
 * Returns true when it left another version's library in place.
 */
export async function ensureLibrary(primary: Redis, replaceOtherVersion: boolean): Promise<boolean> {
  let loaded: string | null;
  try {
    loaded = String(await primary.call('FCALL', 'cm_library_version', '0'));
  } catch (error) {
    if (!isFunctionNotFound(error)) throw error;
    const libraries = (await primary.call('FUNCTION', 'LIST', 'LIBRARYNAME', 'cloudmanager')) as unknown[];
    // LIBRARYNAME matches by pattern: only an exact name counts.
    loaded = libraries.some((library) => Array.isArray(library) && String(library[1]) === 'cloudmanager') ? '' : null;
  }
  if (loaded === LIBRARY_VERSION) return false;
  if (loaded !== null && !replaceOtherVersion) return true;
  await primary.call('FUNCTION', 'LOAD', 'REPLACE', FUNCTION_LIBRARY);
  return false;
}
