/**
 * FCALLs of the cloudmanager library (cloudmanager.lua) from every caller: a Redis that lost
 * the library (flushed, restarted without persistence, a fresh external server) answers
 * "Function not found"; the library is loaded and the call sent once more. And how a fenced
 * function's refusal reads.
 */

/** How the library's fenced functions refuse a superseded manager's epoch (cloudmanager.lua). */
export function isStaleReply(error: unknown): boolean {
  return /^STALE /.test((error as Error)?.message ?? '');
}

/** Redis has no function of that name: the library is missing, or is another version's. */
export function isFunctionNotFound(error: unknown): boolean {
  return /Function not found/i.test((error as Error)?.message ?? '');
}

export async function callLoadingFunctions<T>(send: () => Promise<T>, loadFunctions: () => Promise<void>): Promise<T> {
  try {
    return await send();
  } catch (error) {
    if (!isFunctionNotFound(error)) throw error;
    await loadFunctions();
    return send();
  }
}
