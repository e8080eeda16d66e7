import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';

// .github/workflows/release.yml cannot run here; what can be checked is that it parses and
// keeps the promises RELEASING.md makes: three systems, no secret reaching a step unless it
// is set, exactly one packaging step per system whatever secrets exist, never publishing
// from electron-builder, and the files electron-updater needs uploaded.
// js-yaml comes with electron-builder and electron-updater (no types of its own).
const { load } = createRequire(import.meta.url)('js-yaml') as { load(text: string): unknown };
const WORKFLOW = fileURLToPath(new URL('../../.github/workflows/release.yml', import.meta.url));

interface Step {
  name?: string;
  uses?: string;
  if?: string;
  run?: string;
  env?: Record<string, string>;
  with?: Record<string, unknown>;
}
interface Job {
  if?: string;
  env?: Record<string, string>;
  needs?: string | string[];
  strategy?: { matrix: { include: Array<Record<string, string>> } };
  steps: Step[];
}
interface Workflow {
  on: { push?: { tags?: string[] }; workflow_dispatch?: unknown };
  jobs: Record<string, Job>;
}

let workflow: Workflow;
beforeAll(async () => {
  workflow = load(await readFile(WORKFLOW, 'utf8')) as Workflow;
});

const secretsIn = (value: unknown): string[] => [...JSON.stringify(value ?? '').matchAll(/secrets\.([A-Z0-9_]+)/g)].map((m) => m[1]!);

/**
 * Evaluates a step's `if:` the way Actions would, for the forms this workflow uses:
 * terms `runner.os == 'X'`, `env.NAME == 'true'`, `env.NAME != 'true'` joined by `&&`.
 */
function runsWhen(condition: string | undefined, os: string, env: Record<string, string>): boolean {
  if (condition === undefined) return true;
  return condition.split('&&').every((raw) => {
    const term = raw.trim();
    const m = /^(runner\.os|env\.([A-Z_]+)) (==|!=) '([^']*)'$/.exec(term);
    if (!m) throw new Error(`unexpected term in if: ${term}`);
    const actual = m[1] === 'runner.os' ? os : (env[m[2]!] ?? '');
    return m[3] === '==' ? actual === m[4] : actual !== m[4];
  });
}

describe('release workflow', () => {
  it('runs on v* tags and by hand', () => {
    expect(workflow.on.push?.tags).toContain('v*');
    expect(workflow.on).toHaveProperty('workflow_dispatch');
  });

  it('builds on Windows, macOS and Linux', () => {
    const oses = workflow.jobs.package!.strategy!.matrix.include.map((entry) => entry.os!);
    expect(oses.some((os) => os.startsWith('windows-'))).toBe(true);
    expect(oses.some((os) => os.startsWith('macos-'))).toBe(true);
    expect(oses.some((os) => os.startsWith('ubuntu-'))).toBe(true);
  });

  it('lets a secret into a step only behind an if: on that secret being set', () => {
    for (const [jobName, job] of Object.entries(workflow.jobs)) {
      // HAS_* flags: job variables saying whether a secret is set (steps cannot read secrets in if:).
      const flagsFor = (secret: string) =>
        Object.entries(job.env ?? {})
          .filter(([, expression]) => expression.includes(`secrets.${secret} != ''`))
          .map(([flag]) => flag);
      for (const step of job.steps) {
        expect(step.if ?? '', `${jobName}: ${step.name}`).not.toContain('secrets.');
        for (const secret of secretsIn([step.env, step.with, step.run])) {
          const flags = flagsFor(secret);
          expect(flags, `${jobName}: no HAS_* flag for secret ${secret}`).not.toEqual([]);
          expect(
            flags.some((flag) => (step.if ?? '').includes(`env.${flag} == 'true'`)),
            `${jobName}: step "${step.name}" uses ${secret} without if: on ${flags.join(' or ')}`,
          ).toBe(true);
        }
      }
    }
  });

  it('never lets electron-builder publish, and packages exactly once per system whatever secrets are set', () => {
    const job = workflow.jobs.package!;
    const packaging = job.steps.filter((step) => step.run?.includes('electron-builder'));
    expect(packaging.length).toBeGreaterThan(0);
    for (const step of packaging) expect(step.run, step.name).toContain('--publish never');

    const flags = Object.keys(job.env ?? {}).filter((name) => name.startsWith('HAS_'));
    for (const os of ['Windows', 'macOS', 'Linux']) {
      for (let combo = 0; combo < 2 ** flags.length; combo++) {
        const env = Object.fromEntries(flags.map((flag, i) => [flag, combo & (1 << i) ? 'true' : 'false']));
        const running = packaging.filter((step) => runsWhen(step.if, os, env)).map((step) => step.name);
        expect(running, `${os} with ${JSON.stringify(env)}`).toHaveLength(1);
      }
    }
    const unsignedMac = packaging.find((step) => runsWhen(step.if, 'macOS', { HAS_MAC_CSC: 'false' }));
    expect(unsignedMac?.env?.CSC_IDENTITY_AUTO_DISCOVERY).toBe('false');
  });

  it('uploads the installers with the files electron-updater reads, and drafts a release only for tags', () => {
    const upload = workflow.jobs.package!.steps.find((step) => step.uses?.startsWith('actions/upload-artifact@'));
    const paths = String(upload?.with?.path ?? '');
    for (const pattern of ['release/latest*.yml', 'release/*.blockmap', 'release/*.exe', 'release/*.dmg', 'release/*.zip', 'release/*.AppImage']) {
      expect(paths).toContain(pattern);
    }
    const draft = workflow.jobs['draft-release']!;
    expect(draft.if).toContain("startsWith(github.ref, 'refs/tags/v')");
    expect(draft.needs).toBe('package');
    expect(draft.steps.map((step) => step.run ?? '').join('\n')).toMatch(/gh release create .*--draft/);
  });

  it('pins every action to a major version at least', () => {
    for (const job of Object.values(workflow.jobs)) {
      for (const step of job.steps) if (step.uses) expect(step.uses).toMatch(/@v\d+/);
    }
  });
});
