/**
 * `mbm`: the command line of Cloudmanager. Every verb except `server-start --foreground`
 * and `sim` is a client of the running service's API.
 */
import { ApiRequestError } from '../manager/api/client.js';
import { CliError, EXIT, parseVerbArgs, usage, verbHelp, write, type VerbSpec } from './cli-framework.js';
import { didYouMean } from './suggest.js';
import { serverStart, serverStatus, serverStop, sim, ui } from './server-verbs.js';
import {
  boardDownload,
  boardEnroll,
  boardExecute,
  boardHistory,
  boardList,
  boardLs,
  boardReboot,
  boardRemove,
  boardRename,
  boardRm,
  boardTag,
  boardUpload,
} from './board-verbs.js';
import { boardMacro } from './board-macro-verb.js';
import { boardEnable, boardRevoke } from './board-access-verbs.js';
import { boardInstall, boardPackages, boardUninstall } from './package-verbs.js';
import { boardFlash, boardProvision, firmwareDownload, firmwareList, usbPorts, usbPut } from './usb-verbs.js';

export const VERBS: VerbSpec[] = [
  serverStart,
  serverStop,
  serverStatus,
  ui,
  boardList,
  boardEnroll,
  boardExecute,
  boardUpload,
  boardDownload,
  boardLs,
  boardRm,
  boardRename,
  boardReboot,
  boardMacro,
  boardInstall,
  boardPackages,
  boardUninstall,
  boardTag,
  boardRemove,
  boardRevoke,
  boardEnable,
  boardHistory,
  usbPorts,
  boardFlash,
  boardProvision,
  usbPut,
  firmwareList,
  firmwareDownload,
  sim,
];

export async function main(argv: string[], io = { out: process.stdout, err: process.stderr, stdin: process.stdin }): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    io.out.write(usage(VERBS));
    return name ? 0 : 2;
  }
  if (name === '--version') {
    const { packageVersion } = await import('../manager/package-info.js');
    io.out.write(`${await packageVersion()}\n`);
    return 0;
  }
  const verb = VERBS.find((candidate) => candidate.name === name);
  if (!verb) {
    const hint = didYouMean(
      name,
      VERBS.map((candidate) => candidate.name),
    );
    write(io.err, `mbm: unknown verb ${JSON.stringify(name)}${hint}\n${hint ? 'Run `mbm --help` for the list of verbs.\n' : `\n${usage(VERBS)}`}`);
    return EXIT.usage;
  }
  try {
    const { values, positionals, help } = parseVerbArgs(verb, rest);
    if (help) {
      io.out.write(verbHelp(verb));
      return 0;
    }
    return await verb.run({ values, positionals, ...io });
  } catch (error) {
    if (error instanceof CliError) {
      write(io.err, `mbm ${verb.name}: ${error.message}\n`);
      return error.exitCode;
    }
    if (error instanceof ApiRequestError) {
      write(io.err, `mbm ${verb.name}: ${error.message}\n`);
      return error.code === 'unreachable' ? EXIT.noService : EXIT.failed;
    }
    write(io.err, `mbm ${verb.name}: unexpected error: ${(error as Error)?.stack ?? error}\n`);
    return 1;
  }
}
