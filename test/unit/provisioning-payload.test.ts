import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadMicroPython } from '@micropython/micropython-webassembly-pyscript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BoardCredentials } from '../../electron/manager/fleet/fleet.js';
import {
  buildProvisioningPayload,
  FirmwareFolderError,
  ProvisioningInputError,
  type ProvisioningInput,
  type ProvisioningPayload,
} from '../../electron/manager/fleet/provisioning-payload.js';
import { MpyCompileError } from '../../electron/manager/packages/mpy-cross.js';

const FIXTURE: Record<string, string> = {
  'cm_greet.py': 'def greet(name):\n    return "hello " + name\n',
  'cm_math.py': 'def add(a, b):\n    return a + b\n',
  'main.py': 'import cm_greet\nprint(cm_greet.greet("board"))\n',
  // Not part of the board client:
  '_scratch.py': 'x = 1\n',
  'test_cm_math.py': 'import cm_math\nassert cm_math.add(1, 2) == 3\n',
  'README.md': '# notes\n',
};

const credentials: BoardCredentials = {
  v: 1,
  id: 'b7k2m9x4q1',
  name: 'kitchen-1',
  user: 'cmb-b7k2m9x4q1',
  password: 'Qx4-2b_H7kLm9pR0sT1uV3wX5yZ6aB8cD9eF0gH1iJ2',
  server: '10.0.0.1',
  port: 18266,
  hb: 5,
};

let root: string;
let firmwareDir: string;

function input(overrides: Partial<ProvisioningInput> = {}): ProvisioningInput {
  return {
    wifi: { ssid: 'Home Wifi', password: 'correct horse' },
    server: { host: '192.168.1.10', port: 18300 },
    credentials,
    firmwareDir,
    ...overrides,
  };
}

const paths = (payload: ProvisioningPayload) => payload.files.map((file) => file.path);
const fileAt = (payload: ProvisioningPayload, boardPath: string) => {
  const file = payload.files.find((f) => f.path === boardPath);
  if (!file) throw new Error(`${boardPath} is not in the payload`);
  return file;
};

beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'cm-provisioning-'));
  firmwareDir = path.join(root, 'firmware');
  await mkdir(path.join(firmwareDir, 'lib'), { recursive: true });
  await writeFile(path.join(firmwareDir, 'lib', 'cm_nested.py'), 'y = 2\n'); // folders are not modules
  for (const [name, text] of Object.entries(FIXTURE)) await writeFile(path.join(firmwareDir, name), text);
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('buildProvisioningPayload', () => {
  it('sends compiled modules, the config and main.py (last) to an ABI-6 board', async () => {
    const payload = await buildProvisioningPayload(input({ mpy: 774 }));
    expect(payload.format).toBe('mpy');
    expect(paths(payload)).toEqual(['/cm_greet.mpy', '/cm_math.mpy', '/cm_config.json', '/main.py']);
    expect(payload.remove).toEqual(['/cm_greet.py', '/cm_math.py']);
    expect(fileAt(payload, '/main.py').data.toString('utf8')).toBe(FIXTURE['main.py']);
    for (const boardPath of ['/cm_greet.mpy', '/cm_math.mpy']) {
      expect([...fileAt(payload, boardPath).data.subarray(0, 2)]).toEqual([0x4d, 6]);
    }
    expect(payload.totalBytes).toBe(payload.files.reduce((sum, f) => sum + f.data.length, 0));
  });

  it('produces files a MicroPython board runs: the .mpy modules import and main.py uses them', async () => {
    const payload = await buildProvisioningPayload(input({ mpy: 774 }));
    const stdout: string[] = [];
    const mp = await loadMicroPython({ stdout: (line) => stdout.push(String(line)), heapsize: 64 * 1024 });
    mp.FS.mkdir('/lib');
    // The port imports from /lib (its sys.path has no root entry): install the modules there.
    for (const file of payload.files) if (file.path.endsWith('.mpy')) mp.FS.writeFile(`/lib${file.path}`, file.data);
    mp.runPython(fileAt(payload, '/main.py').data.toString('utf8'));
    mp.runPython('import cm_math\nprint(cm_math.add(40, 2))');
    expect(stdout).toEqual(['hello board', '42']);
  });

  it.each([
    ['unknown (null)', null],
    ['unknown (undefined)', undefined],
    ['ABI 5 (MicroPython 1.12-1.18)', 5],
  ])('sends plain source when the board ABI is %s', async (_label, mpy) => {
    const payload = await buildProvisioningPayload(input({ mpy }));
    expect(payload.format).toBe('py');
    expect(paths(payload)).toEqual(['/cm_greet.py', '/cm_math.py', '/cm_config.json', '/main.py']);
    expect(payload.remove).toEqual(['/cm_greet.mpy', '/cm_math.mpy']);
    expect(fileAt(payload, '/cm_greet.py').data.toString('utf8')).toBe(FIXTURE['cm_greet.py']);
    expect(fileAt(payload, '/cm_math.py').data.toString('utf8')).toBe(FIXTURE['cm_math.py']);
  });

  it('writes a compact config with exactly the protocol keys, server from the input', async () => {
    const payload = await buildProvisioningPayload(input({ mpy: 774, name: 'garage_2' }));
    const text = fileAt(payload, '/cm_config.json').data.toString('utf8');
    const expected = {
      id: 'b7k2m9x4q1',
      name: 'garage_2',
      user: 'cmb-b7k2m9x4q1',
      password: credentials.password,
      server: '192.168.1.10',
      port: 18300,
      hb: 5,
      wifi_ssid: 'Home Wifi',
      wifi_password: 'correct horse',
    };
    expect(JSON.parse(text)).toStrictEqual(expected);
    expect(Object.keys(JSON.parse(text) as object)).toEqual(Object.keys(expected));
    expect(text).toBe(JSON.stringify(expected)); // no whitespace: every byte costs on the board
  });

  it("writes the board's discovery key (dk) after hb; credentials from before discovery give a config without it", async () => {
    const dk = '0123456789abcdef'.repeat(4);
    const config = (payload: ProvisioningPayload) => JSON.parse(fileAt(payload, '/cm_config.json').data.toString('utf8')) as Record<string, unknown>;
    const withKey = config(await buildProvisioningPayload(input({ credentials: { ...credentials, dk } })));
    expect(withKey.dk).toBe(dk);
    expect(Object.keys(withKey)).toEqual(['id', 'name', 'user', 'password', 'server', 'port', 'hb', 'dk', 'wifi_ssid', 'wifi_password']);
    expect(config(await buildProvisioningPayload(input()))).not.toHaveProperty('dk');
    // A service on another discovery port than 18268 tells the board which one (dp).
    expect(config(await buildProvisioningPayload(input({ credentials: { ...credentials, dk, dp: 40000 } })))).toMatchObject({ dk, dp: 40000 });
    expect(config(await buildProvisioningPayload(input()))).not.toHaveProperty('dp');
  });

  it('names the board after the credentials by default', async () => {
    const payload = await buildProvisioningPayload(input());
    expect(JSON.parse(fileAt(payload, '/cm_config.json').data.toString('utf8'))).toMatchObject({ name: 'kitchen-1' });
  });

  it('gives every file its sha256', async () => {
    for (const mpy of [774, null]) {
      const payload = await buildProvisioningPayload(input({ mpy }));
      for (const file of payload.files) {
        expect(file.sha256).toBe(createHash('sha256').update(file.data).digest('hex'));
      }
    }
  });

  it('accepts the limits: open network, 32-byte SSID, 8- and 63-character passwords', async () => {
    for (const wifi of [
      { ssid: 'x'.repeat(32), password: '' },
      { ssid: 'é'.repeat(16), password: '12345678' },
      { ssid: 'cafe', password: 'p'.repeat(63) },
    ]) {
      await expect(buildProvisioningPayload(input({ wifi }))).resolves.toMatchObject({ format: 'py' });
    }
  });

  it.each([
    ['an SSID of 33 bytes', { wifi: { ssid: 's'.repeat(33), password: 'correct horse' } }, 'wifi.ssid'],
    ['an SSID of 17 characters but 34 bytes', { wifi: { ssid: 'é'.repeat(17), password: 'correct horse' } }, 'wifi.ssid'],
    ['an empty SSID', { wifi: { ssid: '', password: 'correct horse' } }, 'wifi.ssid'],
    ['a wifi password of 5 characters', { wifi: { ssid: 'Home', password: 'abcde' } }, 'wifi.password'],
    ['a wifi password of 64 characters', { wifi: { ssid: 'Home', password: 'p'.repeat(64) } }, 'wifi.password'],
    ['port 0', { server: { host: '192.168.1.10', port: 0 } }, 'server.port'],
    ['port 65536', { server: { host: '192.168.1.10', port: 65536 } }, 'server.port'],
    ['an empty host', { server: { host: '', port: 18266 } }, 'server.host'],
    ['a host with a space', { server: { host: 'my host', port: 18266 } }, 'server.host'],
    ['a name with a space', { name: 'living room' }, 'name'],
    ['a bad board id', { credentials: { ...credentials, id: 'UP', user: 'cmb-UP' } }, 'credentials.id'],
    ['credentials of another board', { credentials: { ...credentials, user: 'cmb-other' } }, 'credentials.user'],
    ['a heartbeat of 0 s', { credentials: { ...credentials, hb: 0 } }, 'credentials.hb'],
    ['a discovery key in upper case', { credentials: { ...credentials, dk: 'ABCDEF0123456789'.repeat(4) } }, 'credentials.dk'],
    ['a discovery key of 63 characters', { credentials: { ...credentials, dk: 'a'.repeat(63) } }, 'credentials.dk'],
    ['a discovery port of 0', { credentials: { ...credentials, dp: 0 } }, 'credentials.dp'],
    ['a discovery port of 70000', { credentials: { ...credentials, dp: 70000 } }, 'credentials.dp'],
    ['a negative _mpy', { mpy: -6 }, 'mpy'],
  ] as Array<[string, Partial<ProvisioningInput>, string]>)('refuses %s', async (_label, overrides, field) => {
    const error = await buildProvisioningPayload(input(overrides)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ProvisioningInputError);
    expect(error).toMatchObject({ name: 'ProvisioningInputError', field });
  });

  it('explains a refused value in the message', async () => {
    await expect(buildProvisioningPayload(input({ wifi: { ssid: 's'.repeat(33), password: '' } }))).rejects.toThrow(
      'the wifi name (SSID) is 33 bytes long; at most 32 bytes are allowed',
    );
    await expect(buildProvisioningPayload(input({ name: 'living room' }))).rejects.toThrow(/invalid board name "living room"/);
  });

  it('stops on a module that does not compile, naming file and line', async () => {
    const dir = path.join(root, 'broken');
    await mkdir(dir);
    await writeFile(path.join(dir, 'main.py'), 'import cm_bad\n');
    await writeFile(path.join(dir, 'cm_bad.py'), 'x = 1\ndef oops(:\n');
    await expect(buildProvisioningPayload(input({ firmwareDir: dir, mpy: 774 }))).rejects.toMatchObject({
      name: 'MpyCompileError',
      fileName: 'cm_bad.py',
      line: 2,
    });
    await expect(buildProvisioningPayload(input({ firmwareDir: dir, mpy: 774 }))).rejects.toBeInstanceOf(MpyCompileError);
  });

  it('refuses a firmware folder without main.py, or none at all', async () => {
    const dir = path.join(root, 'no-main');
    await mkdir(dir);
    await writeFile(path.join(dir, 'cm_x.py'), 'pass\n');
    await expect(buildProvisioningPayload(input({ firmwareDir: dir }))).rejects.toBeInstanceOf(FirmwareFolderError);
    await expect(buildProvisioningPayload(input({ firmwareDir: path.join(root, 'missing') }))).rejects.toBeInstanceOf(FirmwareFolderError);
  });
});

const REAL_FIRMWARE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../firmware');
describe('the real firmware folder', () => {
  it('compiles every firmware module for an ABI-6 board (default firmware folder)', async () => {
    const { firmwareDir: _unused, ...withoutDir } = input({ mpy: 774 });
    const payload = await buildProvisioningPayload(withoutDir);
    expect(paths(payload)).toContain('/cm.mpy');
    expect(paths(payload)).toContain('/cm_ops.mpy');
    expect(paths(payload).at(-1)).toBe('/main.py');
    expect(paths(payload)).toContain('/cm_config.json');
    expect(fileAt(payload, '/main.py').data).toEqual(await readFile(path.join(REAL_FIRMWARE, 'main.py')));
    expect(paths(payload).filter((p) => p.endsWith('.py'))).toEqual(['/main.py']);
  });
});
