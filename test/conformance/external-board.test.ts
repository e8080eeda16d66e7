/**
 * The protocol conformance suite against any board process: `npm run conformance --
 * --board-cmd "CMD {creds} {fs}"` runs this file with the command in CM_BOARD_CMD.
 * Not part of `npm test` (vitest.config.ts leaves test/conformance out).
 */
import { describeBoardConformance } from '../helpers/board-conformance.js';
import { startExternalBoardLab } from '../helpers/external-board-lab.js';

const command = process.env.CM_BOARD_CMD;
if (!command) throw new Error('CM_BOARD_CMD is not set: run this file with npm run conformance -- --board-cmd "CMD {creds} {fs}"');

describeBoardConformance(`board command: ${command}`, () => startExternalBoardLab({ command, logDir: process.env.CM_BOARD_LOG_DIR || undefined }), {
  command: 20_000,
});
