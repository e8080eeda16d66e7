/**
 * The service's default ports, apart from manager.ts so that the command line can name them
 * in its help without loading the whole service (mbm answers --help and its API verbs faster).
 */
export const DEFAULT_REDIS_PORT = 18266;
/** Port of the API and the UI, when free (a stable address for bookmarks and the window). */
export const DEFAULT_API_PORT = 18267;
