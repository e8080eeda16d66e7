import { describe, expect, it } from 'vitest';
import { RedisBinaryNotFoundError, RedisConfiguredBinaryError, RedisVersionUnsupportedError } from '../../electron/manager/redis/redis-binary.js';

// What a user reads when the service finds no usable redis-server: advice that fits their
// system. Windows has no Redis package to install, so it gets its own options.
describe('advice when no redis-server can be used', () => {
  const searched = ['C:\\Program Files\\Cloudmanager Desktop\\resources\\build\\redis\\win32-x64\\redis-server.exe', 'PATH'];

  it('tells a Windows user the app is broken (reinstall), or how to use a Redis of their own', () => {
    const message = new RedisBinaryNotFoundError(searched, 'win32').message;
    expect(message).toContain(searched[0]);
    expect(message).toMatch(/reinstall/i);
    expect(message).toContain('--redis-url redis://');
    expect(message).toContain("app's settings");
    expect(message).toContain('Memurai');
    expect(message).toContain('WSL');
    expect(message).toContain('--redis-binary PATH');
    expect(message).not.toContain('brew install');
    expect(message).not.toContain('Debian/Ubuntu');
  });

  it('tells a Linux user which package to install, a macOS user the Homebrew formula', () => {
    const linux = new RedisBinaryNotFoundError(['PATH'], 'linux').message;
    expect(linux).toContain('sudo apt-get install redis-server');
    expect(linux).toContain('--redis-binary PATH');
    expect(linux).toContain('--redis-url');
    expect(linux).not.toContain('brew install');
    const mac = new RedisBinaryNotFoundError(['PATH'], 'darwin').message;
    expect(mac).toContain('brew install redis');
    expect(mac).not.toContain('apt-get');
  });

  it('gives the same platform advice for a bad configured path and a too old Redis', () => {
    const configured = new RedisConfiguredBinaryError('C:\\redis\\redis-server.exe', 'does not exist', undefined, 'win32').message;
    expect(configured).toContain('--redis-binary');
    expect(configured).toMatch(/comes with the app/);
    expect(configured).not.toContain('apt-get install redis-server');
    const old = new RedisVersionUnsupportedError('/usr/bin/redis-server', '6.2.14', 'linux').message;
    expect(old).toContain('7.0 or newer');
    expect(old).toContain('sudo apt-get install redis-server');
  });
});
