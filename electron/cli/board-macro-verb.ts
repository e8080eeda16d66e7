/**
 * `mbm board BOARDS MACRO [ARG]`: the original tool's shortcuts. Each macro is one protocol
 * operation; those that need Python send fixed code, with a user argument only ever passed
 * as a JSON string literal (valid Python), never spliced into code unquoted.
 */
import type { ApiCommandRequest, CommandView } from '../manager/api/contract.js';
import { CliError, type VerbSpec } from './cli-framework.js';
import { boardPath, runAndReport, WAIT_OPTIONS } from './board-verbs.js';
import { didYouMean } from './suggest.js';

interface Macro {
  help: string;
  arg: 'none' | 'optional' | 'required';
  request(arg: string | undefined): ApiCommandRequest;
  /** How to show a board's result; exec macros print their output. */
  show(view: CommandView): string;
}

const output = (view: CommandView) => view.output.map((chunk) => chunk.text).join('');
const path = (arg: string | undefined, fallback?: string) => boardPath(arg ?? fallback ?? '', 'PATH');

export const MACROS: Record<string, Macro> = {
  echo: { help: 'print ARG on the board', arg: 'required', request: (arg) => ({ op: 'exec', code: `print(${JSON.stringify(arg)})` }), show: output },
  ls: {
    help: 'list directory ARG (default /)',
    arg: 'optional',
    request: (arg) => ({ op: 'ls', path: path(arg, '/') }),
    show: (view) => ((view.result as Array<[string, string, number]>) ?? []).map(([name, type]) => (type === 'd' ? `${name}/` : name)).join('\n'),
  },
  mkdir: { help: 'create directory ARG', arg: 'required', request: (arg) => ({ op: 'mkdir', path: path(arg) }), show: () => 'ok' },
  rmdir: { help: 'remove the empty directory ARG', arg: 'required', request: (arg) => ({ op: 'rm', path: path(arg) }), show: () => 'ok' },
  sha256: {
    help: 'SHA-256 of file ARG, as the board reads it',
    arg: 'required',
    request: (arg) => ({ op: 'hash', paths: [path(arg)] }),
    show: (view) => Object.values((view.result as Record<string, string | null>) ?? {})[0] ?? 'none: no such file, or a directory',
  },
  mem_free: {
    help: 'free heap after a collection',
    arg: 'none',
    request: () => ({ op: 'exec', code: 'import gc\ngc.collect()\nprint(gc.mem_free())' }),
    show: output,
  },
  uname: { help: 'os.uname() of the board', arg: 'none', request: () => ({ op: 'exec', code: 'import os\nprint(os.uname())' }), show: output },
  info: { help: 'platform, versions, memory, address', arg: 'none', request: () => ({ op: 'info' }), show: (view) => JSON.stringify(view.result) },
  settings: {
    help: "the board's configuration (passwords shown as ********)",
    arg: 'none',
    request: () => ({ op: 'cfg_get' }),
    show: (view) =>
      Object.entries((view.result as Record<string, unknown>) ?? {})
        .map(([key, value]) => `${key} = ${JSON.stringify(value)}`)
        .join('\n'),
  },
  set: {
    help: 'set a configuration value: KEY=VALUE (VALUE as JSON, else as text)',
    arg: 'required',
    request: (arg) => {
      const match = /^([a-z][a-z0-9_]*)=(.*)$/s.exec(arg ?? '');
      if (!match) throw new CliError('set needs KEY=VALUE, e.g. set hb=10 or set wifi_ssid=home', 2);
      let value: unknown = match[2];
      try {
        value = JSON.parse(match[2]!);
      } catch {
        // plain text
      }
      return { op: 'cfg_set', key: match[1]!, value: value as never };
    },
    show: () => 'ok',
  },
  reset: { help: 'reboot the board', arg: 'none', request: () => ({ op: 'reboot' }), show: () => 'rebooting' },
};

export const boardMacro: VerbSpec = {
  name: 'board',
  summary: 'run a macro on boards: ' + Object.keys(MACROS).join(', '),
  args: ['BOARDS', 'MACRO', 'ARG?'],
  options: WAIT_OPTIONS,
  details:
    'Macros:\n' +
    Object.entries(MACROS)
      .map(([name, macro]) => `  ${name.padEnd(10)} ${macro.help}`)
      .join('\n'),
  async run(context) {
    const [boards, name, arg] = context.positionals as [string, string, string | undefined];
    const macro = MACROS[name];
    if (!macro)
      throw new CliError(`unknown macro ${JSON.stringify(name)}${didYouMean(name, Object.keys(MACROS))} (macros: ${Object.keys(MACROS).join(', ')})`, 2);
    if (macro.arg === 'required' && arg === undefined) throw new CliError(`macro ${name} needs an argument: ${macro.help}`, 2);
    if (macro.arg === 'none' && arg !== undefined) throw new CliError(`macro ${name} takes no argument`, 2);
    return runAndReport(context, boards, macro.request(arg), macro.show, (view) =>
      name === 'rmdir' && view.errorCode === 'ENOTEMPTY' ? `to remove it and everything in it: mbm board-rm ${view.board} ${arg} -r` : undefined,
    );
  },
};
