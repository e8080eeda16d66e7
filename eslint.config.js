// Lint rules, and the layer directions of docs/ARCHITECTURE.md as import restrictions:
// a layer that imports against the arrow fails `npm run lint` (and CI).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/** An import of any of these folders (relative, from inside electron/manager/<layer>). */
const layers = (...names) => names.map((name) => `../${name}/*`);

/**
 * One rule per folder (a later rule for the same files would replace an earlier one):
 * each entry of `groups` is [patterns, why, type imports allowed?].
 */
function restrict(files, groups, paths = []) {
  return {
    files,
    rules: {
      '@typescript-eslint/no-restricted-imports': ['error', {
        paths: paths.map(([name, message]) => ({ name, message })),
        patterns: groups.map(([group, message, allowTypeImports = false]) => ({ group, message, allowTypeImports })),
      }],
    },
  };
}

const noElectron = ['electron', 'only electron/app imports Electron: the manager also runs headless and in tests'];
const noClients = [['../../cli/*', '../../app/*', '../../../renderer/*'], 'the manager knows nothing of its clients (cli, app, renderer)'];
/** The rules of one manager folder, plus those of every manager folder. */
const managerLayer = (folder, ...groups) => restrict([`electron/manager/${folder}/**`], [noClients, ...groups], [noElectron]);

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', '.tmp/**', 'renderer/**/*.svelte', 'docs/**', 'build/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: {
        process: 'readonly', console: 'readonly', Buffer: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly',
        setInterval: 'readonly', clearInterval: 'readonly', setImmediate: 'readonly', URL: 'readonly', TextDecoder: 'readonly',
        TextEncoder: 'readonly', structuredClone: 'readonly', queueMicrotask: 'readonly', AbortController: 'readonly',
        performance: 'readonly', fetch: 'readonly', WebSocket: 'readonly', window: 'readonly', document: 'readonly',
        navigator: 'readonly', localStorage: 'readonly', requestAnimationFrame: 'readonly', cancelAnimationFrame: 'readonly',
        ResizeObserver: 'readonly', DataTransfer: 'readonly', File: 'readonly', Blob: 'readonly', FormData: 'readonly',
        Headers: 'readonly', Response: 'readonly', Request: 'readonly', location: 'readonly', getComputedStyle: 'readonly',
        HTMLElement: 'readonly', clearImmediate: 'readonly', AbortSignal: 'readonly', Event: 'readonly', CustomEvent: 'readonly', KeyboardEvent: 'readonly', MouseEvent: 'readonly',
      },
    },
    rules: {
      // Unused names are errors, except a leading underscore (deliberately ignored values).
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      // The MicroPython worker bridge and a few wire decoders carry untyped values on purpose.
      '@typescript-eslint/no-explicit-any': 'off',
      'no-empty': ['error', { allowEmptyCatch: true }],
      'no-constant-condition': ['error', { checkLoops: false }],
      'no-control-regex': 'off',
      // Typed events: an interface beside an EventEmitter subclass declares its listeners.
      '@typescript-eslint/no-unsafe-declaration-merging': 'off',
    },
  },
  // --- layers (docs/ARCHITECTURE.md "Layers and owners") -------------------------------
  restrict(['electron/manager/*.ts'], [noClients], [noElectron]),
  managerLayer('redis', [layers('fleet', 'transfer', 'usb', 'virtual', 'api', 'packages'), 'redis/ is the bottom layer: it stores, it does not call the layers above it']),
  managerLayer('transfer', [layers('fleet', 'usb', 'virtual', 'api'), 'transfer/ sits below fleet/: fleet uses transfers, not the other way round']),
  managerLayer('packages', [layers('fleet', 'usb', 'virtual', 'api', 'transfer'), 'packages/ is a tool of the layers above it']),
  managerLayer('fleet',
    [layers('api', 'virtual'), 'fleet/ does not know the API or the virtual boards'],
    [layers('usb'), 'fleet/ sees usb/ only through types (the UsbService is handed to it)', true]),
  managerLayer('usb', [layers('api', 'virtual'), 'usb/ does not know the API or the virtual boards']),
  managerLayer('virtual',
    [layers('usb'), 'virtual/ boards speak the wire protocol, not USB'],
    [layers('api'), 'virtual/ boards use the API only as its clients do, through types', true]),
  managerLayer('discovery',
    [layers('transfer', 'usb', 'virtual', 'api', 'packages'), 'discovery/ answers boards from what it is handed (addresses, keys): it uses no other layer'],
    [layers('fleet', 'redis'), 'discovery/ sees fleet/ and redis/ only through types (the key lookup is handed to it)', true]),
  managerLayer('api', [['../../../renderer/*'], 'the API serves the built UI as files, it does not import it']),
  restrict(['electron/cli/**'], [[['../../renderer/*', '../app/*'], 'the CLI is a client of the API']], [noElectron]),
  restrict(['renderer/src/**'], [[['**/electron/**'], 'the renderer imports the API contract as types only', true]]),
  // Inside the shell, Electron stays in the three files that must have it; the rest is plain Node, tested without Electron.
  {
    ...restrict(['electron/app/**'], [], [
      ['electron', 'in electron/app only main.ts and preload.cts import Electron: put logic in a plain module main.ts calls'],
      ['electron-updater', 'in electron/app only updater.ts imports electron-updater'],
    ]),
    ignores: ['electron/app/main.ts', 'electron/app/preload.cts', 'electron/app/updater.ts'],
  },
  // Tests and scripts: the rules above are about the product's layers.
  {
    files: ['test/**', 'bench/**', 'scripts/**'],
    rules: { '@typescript-eslint/no-unused-expressions': 'off', '@typescript-eslint/no-require-imports': 'off' },
  },
);
