/**
 * electron-builder.json, the one packaging configuration: electron-builder itself loads and
 * accepts it (its own loader and schema validation, no packaging), every path it names is
 * there after `npm run build`, and nothing else claims to package the app (no Forge).
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const require = createRequire(import.meta.url);

interface FileSet {
  from: string;
  to: string;
  filter?: string[];
}
interface BuilderConfig {
  appId: string;
  productName: string;
  directories: { output: string; buildResources: string };
  files: string[];
  asarUnpack: string[];
  extraResources: FileSet[];
  npmRebuild: boolean;
  publish: { provider: string; owner: string; repo: string };
  win: { icon: string; target: Array<{ target: string; arch: string[] }> };
  mac: { icon: string; entitlements: string; entitlementsInherit: string; hardenedRuntime: boolean; target: Array<{ target: string; arch: string[] }> };
  linux: { icon: string; category: string; maintainer: string; target: Array<{ target: string; arch: string[] }> };
}

const config = JSON.parse(readFileSync(path.join(root, 'electron-builder.json'), 'utf8')) as BuilderConfig;
const packageJson = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as Record<string, unknown> & { main: string };

// app-builder-lib has no exports map: its loader and validator are reachable by file.
const builderConfig = require('app-builder-lib/out/util/config/config.js') as {
  getConfig(projectDir: string, configPath: string | null, configFromOptions: unknown): Promise<Record<string, unknown>>;
  validateConfiguration(config: unknown, debugLogger: { isEnabled: boolean; add(key: string, value: unknown): void }): Promise<void>;
};
const quietLogger = { isEnabled: false, add: () => undefined };
// The glob matcher electron-builder matches `files` and `asarUnpack` with (its own copy).
const { minimatch } = createRequire(require.resolve('app-builder-lib/package.json'))('minimatch') as {
  minimatch: (file: string, pattern: string, options?: { dot?: boolean }) => boolean;
};

/** Every file under `dir`, relative to the project root with forward slashes. */
function walk(dir: string, skip: (relative: string) => boolean = () => false): string[] {
  const out: string[] = [];
  const visit = (folder: string) => {
    for (const entry of readdirSync(folder, { withFileTypes: true })) {
      const full = path.join(folder, entry.name);
      const relative = path.relative(root, full).split(path.sep).join('/');
      if (skip(relative)) continue;
      if (entry.isDirectory()) visit(full);
      else out.push(relative);
    }
  };
  visit(dir);
  return out;
}

const projectFiles = walk(root, (relative) => /^(node_modules|\.git|\.tmp|release|coverage)(\/|$)/.test(relative));
const productionModules = Object.keys(packageJson.dependencies as Record<string, string>);

describe('electron-builder.json', () => {
  it('is the configuration electron-builder loads, and passes its own schema validation', async () => {
    const loaded = await builderConfig.getConfig(root, null, null);
    expect(loaded.appId).toBe(config.appId);
    await expect(builderConfig.validateConfiguration(loaded, quietLogger)).resolves.toBeUndefined();
  });

  it('is really checked: a misspelt option fails the same validation', async () => {
    const misspelt = { ...config, linux: { ...config.linux, maintaner: 'x' } };
    await expect(builderConfig.validateConfiguration(misspelt, quietLogger)).rejects.toThrow(/does not match the API schema/);
  });

  it('names the app, the targets of each platform, and where installers go', () => {
    expect(config.productName).toBe('Cloudmanager');
    expect(config.directories.output).toBe('release');
    expect(readFileSync(path.join(root, '.gitignore'), 'utf8')).toMatch(/^release\/$/m);
    expect(config.win.target).toEqual([{ target: 'nsis', arch: ['x64'] }]);
    expect(config.mac.target).toEqual([
      { target: 'dmg', arch: ['x64', 'arm64'] },
      { target: 'zip', arch: ['x64', 'arm64'] },
    ]);
    expect(config.mac.hardenedRuntime).toBe(true);
    expect(config.linux.target).toEqual([
      { target: 'AppImage', arch: ['x64'] },
      { target: 'deb', arch: ['x64'] },
    ]);
    expect(config.linux.category).toBe('Development');
    expect(config.linux.maintainer).toMatch(/<.+@.+>/);
    expect(config.npmRebuild).toBe(true);
    expect(config.publish).toEqual({ provider: 'github', owner: 'cloudmanager', repo: 'cloudmanager-desktop' });
  });
});

describe('every path electron-builder.json names exists (after npm run build)', () => {
  it('the icons and the macOS entitlements', () => {
    for (const file of [config.win.icon, config.mac.icon, config.mac.entitlements, config.mac.entitlementsInherit]) {
      expect(statSync(path.join(root, file)).isFile(), file).toBe(true);
    }
    expect(statSync(path.join(root, config.linux.icon)).isDirectory()).toBe(true);
    expect(readdirSync(path.join(root, config.linux.icon)).filter((name) => /^\d+x\d+\.png$/.test(name)).length).toBeGreaterThan(3);
  });

  it("package.json's main entry (the Electron shell) is built, and the packaged files include it", () => {
    expect(existsSync(path.join(root, packageJson.main)), `${packageJson.main}: run npm run build`).toBe(true);
    expect(config.files.some((pattern) => !pattern.startsWith('!') && minimatch(packageJson.main, pattern))).toBe(true);
  });

  it.each(config.files.filter((pattern) => !pattern.startsWith('!')))('files pattern %s matches at least one file', (pattern) => {
    expect(projectFiles.filter((file) => minimatch(file, pattern, { dot: true })).length).toBeGreaterThan(0);
  });

  it('the files the manager reads at run time are packaged: the built UI, the board firmware and the tray icons', () => {
    const included = (file: string) => {
      let verdict = false;
      for (const pattern of config.files) {
        if (pattern.startsWith('!')) {
          if (minimatch(file, pattern.slice(1), { dot: true })) verdict = false;
        } else if (minimatch(file, pattern, { dot: true })) verdict = true;
      }
      return verdict;
    };
    for (const file of [
      'dist/renderer/index.html',
      'firmware/cm.py',
      'firmware/main.py',
      'build/icons/tray-online.png',
      'dist/electron/manager/redis/cloudmanager.lua',
    ]) {
      expect(existsSync(path.join(root, file)), file).toBe(true);
      expect(included(file), file).toBe(true);
    }
    expect(included('dist/electron/app/main.js.map')).toBe(false);
  });

  it.each(config.asarUnpack)('asarUnpack pattern %s matches something that is packaged', (pattern) => {
    if (pattern.includes('node_modules/')) {
      const moduleName = /node_modules\/((?:@[^/]+\/)?[^/*]+)/.exec(pattern)?.[1] ?? '';
      // A production dependency (electron-builder copies only those), with files on disk.
      const direct = productionModules.includes(moduleName);
      const requiredBy = productionModules.some((name) => {
        const pkg = JSON.parse(readFileSync(path.join(root, 'node_modules', name, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };
        return Object.keys(pkg.dependencies ?? {}).includes(moduleName);
      });
      expect(direct || requiredBy, `${moduleName} is a production dependency`).toBe(true);
      expect(walk(path.join(root, 'node_modules', moduleName)).length).toBeGreaterThan(0);
    } else {
      expect(projectFiles.filter((file) => minimatch(file, pattern, { dot: true })).length).toBeGreaterThan(0);
    }
  });

  it('the worker entry points the manager starts are among the unpacked files', () => {
    const unpacked = (file: string) => config.asarUnpack.some((pattern) => minimatch(file, pattern, { dot: true }));
    for (const worker of ['micropython-worker.mjs', 'micropython-board-worker.mjs', 'lab-python/network.py']) {
      const file = `dist/electron/manager/virtual/${worker}`;
      expect(existsSync(path.join(root, file)), file).toBe(true);
      expect(unpacked(file), file).toBe(true);
    }
  });

  it('the bundled redis-server comes from exactly the folder scripts/build-redis.sh writes', () => {
    const script = readFileSync(path.join(root, 'scripts', 'build-redis.sh'), 'utf8');
    // The script writes build/redis/<platform>-<arch>/ with Node's names for both.
    expect(script).toMatch(/out_root="\$repo_root\/build\/redis"/);
    expect(script).toMatch(/dest="\$out_root\/\$platform-\$arch"/);
    expect(config.extraResources).toEqual([{ from: 'build/redis/${platform}-${arch}', to: 'redis/${platform}-${arch}', filter: ['**/*'] }]);
  });
});

describe('one packager', () => {
  it('electron-builder is the only packaging configuration: no Electron Forge anywhere', () => {
    expect(packageJson.build, 'package.json has no "build" key (electron-builder.json is the config)').toBeUndefined();
    expect((packageJson.config as Record<string, unknown> | undefined)?.forge).toBeUndefined();
    const dependencies = { ...(packageJson.dependencies as object), ...(packageJson.devDependencies as object) };
    expect(Object.keys(dependencies).filter((name) => name.startsWith('@electron-forge/'))).toEqual([]);
    expect(projectFiles.filter((file) => /(^|\/)forge\.config\.[cm]?[jt]s$/.test(file))).toEqual([]);
    expect(projectFiles.filter((file) => /(^|\/)electron-builder\.(ya?ml|json5|toml|[cm]?[jt]s)$/.test(file))).toEqual([]);
  });
});
