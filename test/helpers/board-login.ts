/** Logging in to Redis as a board would, to see whether the service still lets it in. */
import { RespConnection } from '../../electron/manager/redis/resp-connection.js';
import { RespError } from '../../electron/manager/redis/resp-codec.js';
import type { BoardCredentials } from '../../electron/manager/fleet/fleet.js';

/** 'ACCEPTED', or the error code Redis answers the board's AUTH with (e.g. WRONGPASS). */
export async function loginRefusal(redisPort: number, credentials: Pick<BoardCredentials, 'user' | 'password'>): Promise<string> {
  const connection = await RespConnection.connect({ host: '127.0.0.1', port: redisPort });
  try {
    await connection.call('AUTH', credentials.user, credentials.password);
    return 'ACCEPTED';
  } catch (error) {
    if (error instanceof RespError) return error.code;
    throw error;
  } finally {
    connection.destroy();
  }
}
