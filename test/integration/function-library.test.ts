/**
 * Managers of different versions on one Redis (an upgrade of one computer, an old standby):
 * only the active manager replaces another version's function library; a standby leaves it,
 * so the active manager's calls keep working (redis/function-library.ts). Real redis-server.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FleetStore } from '../../electron/manager/redis/fleet-store.js';
import { FUNCTION_LIBRARY, LIBRARY_VERSION } from '../../electron/manager/redis/function-library.js';
import { startStoreLab, type StoreLab } from '../helpers/store-lab.js';

describe('the function library of another version', () => {
  let lab: StoreLab;
  const loadedVersion = async () => String(await lab.redis.call('FCALL', 'cm_library_version', '0'));
  const load = (source: string) => lab.redis.call('FUNCTION', 'LOAD', 'REPLACE', source);
  const standby = () => {
    const store = new FleetStore(lab.redis);
    const warnings: number[] = [];
    store.on('otherLibrary', () => warnings.push(1));
    return { store, warnings };
  };
  const active = () => Object.assign(new FleetStore(lab.redis), { epoch: 7 });

  beforeAll(async () => {
    lab = await startStoreLab();
  });
  afterAll(async () => {
    await lab?.close();
  });

  it('is left in place by a standby (which says so) and replaced by the active manager', async () => {
    expect(await loadedVersion()).toBe(LIBRARY_VERSION);
    await load(FUNCTION_LIBRARY.replace(LIBRARY_VERSION, 'another-version'));
    const { store, warnings } = standby();
    await store.loadFunctions();
    expect([await loadedVersion(), warnings.length]).toEqual(['another-version', 1]);
    await active().loadFunctions();
    expect(await loadedVersion()).toBe(LIBRARY_VERSION);
  });

  it('counts a library from before versions were stamped as another version', async () => {
    await load("#!lua name=cloudmanager\nredis.register_function('cm_claim', function() return 'old' end)");
    await standby().store.loadFunctions();
    expect(await lab.redis.call('FCALL', 'cm_claim', '0')).toBe('old');
    await active().loadFunctions();
    expect(await loadedVersion()).toBe(LIBRARY_VERSION);
  });

  it('is loaded by any manager where there is none, and a current one is left alone', async () => {
    await lab.redis.call('FUNCTION', 'DELETE', 'cloudmanager');
    const { store, warnings } = standby();
    await store.loadFunctions();
    expect([await loadedVersion(), warnings.length]).toEqual([LIBRARY_VERSION, 0]);
    await store.loadFunctions();
    expect(warnings).toEqual([]);
  });
});
