import { describe, expect, it } from 'vitest';
import { ApiCallError, UiApi, errorMessage } from '../../renderer/src/lib/api.js';

function fakeFetch(status: number, body: unknown) {
  const calls: Array<{ url: string; init: RequestInit }> = [];
  const fetchImpl = async (url: string, init: RequestInit) => {
    calls.push({ url, init });
    return new Response(typeof body === 'string' ? body : JSON.stringify(body), { status });
  };
  return { calls, fetchImpl };
}

describe('UI API client', () => {
  it("posts JSON to /api/<route> with the page's own credentials and returns the result", async () => {
    const { calls, fetchImpl } = fakeFetch(200, { ok: true, result: [] });
    const api = new UiApi(fetchImpl);
    expect(await api.call('boards.list', {})).toEqual([]);
    expect(calls[0]!.url).toBe('/api/boards.list');
    expect(calls[0]!.init).toMatchObject({ method: 'POST', credentials: 'same-origin', body: '{}' });
  });

  it("turns service errors into ApiCallError with the service's code and message", async () => {
    const api = new UiApi(fakeFetch(404, { ok: false, error: { code: 'not_found', message: 'no board named "x"' } }).fetchImpl);
    const error = await api.call('boards.get', { board: 'x' }).catch((failure: unknown) => failure);
    expect(error).toBeInstanceOf(ApiCallError);
    expect(error).toMatchObject({ code: 'not_found', status: 404 });
    expect(errorMessage(error)).toBe('no board named "x"');
  });

  it('reports a 401 as signed out, and an unreachable service plainly', async () => {
    let signedOut = 0;
    const api = new UiApi(fakeFetch(401, { ok: false, error: { code: 'unauthorized', message: 'x' } }).fetchImpl);
    api.onSignedOut = () => signedOut++;
    await expect(api.call('status', {})).rejects.toMatchObject({ code: 'signed-out' });
    expect(signedOut).toBe(1);
    const down = new UiApi(async () => {
      throw new TypeError('fetch failed');
    });
    await expect(down.call('status', {})).rejects.toMatchObject({ code: 'unreachable' });
    const garbled = new UiApi(fakeFetch(502, '<html>').fetchImpl);
    await expect(garbled.call('status', {})).rejects.toMatchObject({ code: 'internal', status: 502 });
  });
});
