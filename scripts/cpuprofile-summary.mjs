// Where a Node process spent its CPU, from a V8 .cpuprofile (node --cpu-prof):
//   node scripts/cpuprofile-summary.mjs <file.cpuprofile | dir> [--top 25] [--window broadcast] [--json]
// A directory means its .cpuprofile files; when it holds bench/fleet.mjs's fleet-profile.json, only the
// samples inside the windows whose label starts with --window (default: every window) count.
// Sums self time per function and per file (node_modules collapsed to their package), and per area:
// the groups below, which say what each file is for in this product.
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { top: { type: 'string', default: '25' }, window: { type: 'string' }, json: { type: 'boolean', default: false } },
});
if (positionals.length !== 1) {
  process.stderr.write('usage: node scripts/cpuprofile-summary.mjs <file.cpuprofile | dir> [--top 25] [--window LABEL-PREFIX] [--json]\n');
  process.exit(2);
}
const top = Number(values.top);

// First match wins; a frame's file (url) or, for native frames, its function name is tested.
const AREAS = [
  ['gc', (file, name) => name === '(garbage collector)'],
  ['idle', (file, name) => name === '(idle)' || name === '(program)'],
  ['zod (validation)', (file) => file.includes('node_modules/zod/')],
  [
    'ioredis (command encoding, reply parsing)',
    (file) => /node_modules\/(ioredis|redis-parser|@ioredis|denque|standard-as-callback|cluster-key-slot)\//.test(file),
  ],
  ['ws (event socket)', (file) => file.includes('node_modules/ws/')],
  ['JSON parse/stringify', (file, name) => /^(parse|stringify)$/.test(name) && file === ''],
  ['uplink reading (uplink-reader, uplink-messages)', (file) => /fleet\/uplink-(reader|messages)/.test(file)],
  ['command dispatch (dispatcher, ops, fleet)', (file) => /fleet\/(command-dispatcher|command-ops|fleet|board-selector)\.js/.test(file)],
  ['redis stores (fleet-store, keys)', (file) => /redis\/(fleet-store|keys|job-store|telemetry-store)\.js/.test(file)],
  ['registry, liveness, access', (file) => /fleet\/(board-registry|board-access|telemetry)\.js/.test(file)],
  ['jobs', (file) => /fleet\/job-/.test(file)],
  ['API, events', (file) => /manager\/api\//.test(file)],
  ['logging', (file) => /manager\/(log|file-log)\.js/.test(file)],
  ['other manager code', (file) => /dist\/electron\//.test(file)],
  ['node internals (streams, net, timers, events)', (file) => file.startsWith('node:')],
  ['other node_modules', (file) => file.includes('node_modules/')],
  ['native / V8 builtins', () => true],
];

/** The file relative to the project (`package` true: a node_modules file as its package only). */
const shortFile = (url, packageOnly = true) => {
  if (!url) return '(native)';
  const file = url.replace(/^file:\/\//, '');
  const modules = file.lastIndexOf('node_modules/');
  if (modules >= 0 && packageOnly)
    return file
      .slice(modules)
      .split('/')
      .slice(0, file.slice(modules).startsWith('node_modules/@') ? 3 : 2)
      .join('/');
  if (modules >= 0) return file.slice(modules);
  const dist = file.indexOf('/dist/');
  return dist >= 0 ? file.slice(dist + 1) : file;
};
const areaOf = (url, functionName) => AREAS.find(([, test]) => test(url.replace(/^file:\/\//, ''), functionName))[0];
/** Product code or a library: what native and node: frames below it work for. */
const isOwner = (url) => /dist\/electron\/|node_modules\//.test(url);

async function inputs(target) {
  if (target.endsWith('.cpuprofile')) return { files: [target], windows: null };
  const names = await readdir(target);
  const files = names.filter((name) => name.endsWith('.cpuprofile')).map((name) => path.join(target, name));
  let windows = null;
  if (names.includes('fleet-profile.json')) {
    windows = JSON.parse(await readFile(path.join(target, 'fleet-profile.json'), 'utf8')).windows.filter(
      (window) => !values.window || window.label.startsWith(values.window),
    );
  }
  return { files, windows };
}

function summarize(profile, windows) {
  const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
  const parents = new Map();
  for (const node of profile.nodes) for (const child of node.children ?? []) parents.set(child, node.id);
  const selfUs = new Map(); // node id → microseconds
  let at = profile.startTime;
  let totalUs = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    at += profile.timeDeltas[i];
    // A sample's time is the gap to the next one (the last one gets the previous gap).
    const span = i + 1 < profile.timeDeltas.length ? profile.timeDeltas[i + 1] : profile.timeDeltas[i];
    if (windows && !windows.some((window) => at >= window.start_us && at <= window.end_us)) continue;
    selfUs.set(profile.samples[i], (selfUs.get(profile.samples[i]) ?? 0) + span);
    totalUs += span;
  }
  const byFunction = new Map();
  const byFile = new Map();
  const byArea = new Map();
  const byOwnerArea = new Map();
  const inclusive = new Map();
  const add = (map, key, us) => map.set(key, (map.get(key) ?? 0) + us);
  const label = ({ functionName, url, lineNumber }) => `${functionName || '(anonymous)'} ${shortFile(url, false)}${url ? `:${lineNumber + 1}` : ''}`;
  for (const [id, us] of selfUs) {
    const { functionName, url } = nodes.get(id).callFrame;
    add(byFunction, label(nodes.get(id).callFrame), us);
    add(byFile, shortFile(url), us);
    const area = areaOf(url, functionName);
    add(byArea, area, us);
    // Native and node: frames charged to the nearest product or library frame above them (writev → ioredis or ws).
    let owner = id;
    while (owner !== undefined && !isOwner(nodes.get(owner).callFrame.url)) owner = parents.get(owner);
    add(
      byOwnerArea,
      owner === undefined || area === 'gc' || area === 'idle' ? area : areaOf(nodes.get(owner).callFrame.url, nodes.get(owner).callFrame.functionName),
      us,
    );
    const seen = new Set();
    for (let frame = id; frame !== undefined; frame = parents.get(frame)) {
      const name = label(nodes.get(frame).callFrame);
      if (!seen.has(name) && nodes.get(frame).callFrame.url) add(inclusive, name, us);
      seen.add(name);
    }
  }
  return { totalUs, byFunction, byFile, byArea, byOwnerArea, inclusive };
}

const { files, windows } = await inputs(positionals[0]);
if (files.length === 0) throw new Error(`no .cpuprofile in ${positionals[0]}`);
const merged = { totalUs: 0, byFunction: new Map(), byFile: new Map(), byArea: new Map(), byOwnerArea: new Map(), inclusive: new Map() };
for (const file of files) {
  const part = summarize(JSON.parse(await readFile(file, 'utf8')), windows);
  merged.totalUs += part.totalUs;
  for (const key of ['byFunction', 'byFile', 'byArea', 'byOwnerArea', 'inclusive'])
    for (const [name, us] of part[key]) merged[key].set(name, (merged[key].get(name) ?? 0) + us);
}

const ranked = (map, count) =>
  [...map]
    .sort((a, b) => b[1] - a[1])
    .slice(0, count)
    .map(([name, us]) => ({ name, ms: Math.round(us / 1000), share: Number(((us / merged.totalUs) * 100).toFixed(1)) }));
const result = {
  profiles: files.length,
  windows: windows?.map((window) => window.label) ?? 'whole run',
  sampled_ms: Math.round(merged.totalUs / 1000),
  areas: ranked(merged.byArea, Infinity),
  areas_with_native_charged_to_caller: ranked(merged.byOwnerArea, Infinity),
  files: ranked(merged.byFile, top),
  functions: ranked(merged.byFunction, top),
  functions_inclusive: ranked(merged.inclusive, top),
};
if (values.json) {
  console.log(JSON.stringify(result, null, 1));
} else {
  console.log(`${result.profiles} profile(s), ${Array.isArray(result.windows) ? result.windows.join(', ') : result.windows}: ${result.sampled_ms} ms sampled`);
  for (const section of ['areas', 'areas_with_native_charged_to_caller', 'files', 'functions', 'functions_inclusive']) {
    console.log(`\n${section}`);
    for (const row of result[section]) console.log(`${String(row.ms).padStart(8)} ms ${String(row.share).padStart(5)} %  ${row.name}`);
  }
}
