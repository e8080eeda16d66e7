/** Process entry of `mbm` (bin/mbm.js loads the compiled form of this file). */
import { main } from './main.js';

const code = await main(process.argv.slice(2));
// Exit once output is flushed, even if an idle keep-alive socket would hold the process.
process.stdout.write('', () => process.exit(code));
