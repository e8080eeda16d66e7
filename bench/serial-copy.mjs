// npm run bench:serial-copy
//
// Copies a 64 KB random file and 64 KB of Python source to a simulated ESP8266 running
// MicroPython (REPL on a pty paced at 115200 baud) with the fast serial copy, and prints
// {"baud":115200,"random_kBps":…,"python_kBps":…} (KiB of file per second, sha256 checked
// on the board). mpremote manages 3–4.5 KB/s on such a line.
import { randomBytes } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = (file) => import(path.join(root, 'dist', file));
const { makeReplLab } = await dist('test/lab/micropython-repl/repl-lab.js');
const { RawRepl } = await dist('electron/manager/usb/raw-repl.js');
const { putFile } = await dist('electron/manager/usb/serial-copy.js');
const { closeNodeSerialPort, openNodeSerialPort } = await dist('electron/manager/usb/web-serial-port.js');

// Real Python source: our own code, repeated to 64 KB.
const sources = ['firmware', 'electron/manager/virtual/lab-python'].flatMap((dir) =>
  readdirSync(path.join(root, dir))
    .filter((name) => name.endsWith('.py'))
    .map((name) => readFileSync(path.join(root, dir, name))),
);
let python = Buffer.concat(sources);
while (python.length < 64 * 1024) python = Buffer.concat([python, python]);
python = python.subarray(0, 64 * 1024);
const random = randomBytes(64 * 1024);

const lab = await makeReplLab();
await lab.repl.start();
const port = await openNodeSerialPort(lab.link.path, { baudRate: 115_200 });
const repl = new RawRepl({ port, exitOnError: true });
try {
  await repl.enter({ timeoutMs: 15_000 });
  const rate = async (data, dest) => {
    const result = await putFile(repl, data, dest);
    return Number((data.length / 1024 / (result.ms / 1000)).toFixed(2));
  };
  const random_kBps = await rate(random, '/random.bin');
  const python_kBps = await rate(python, '/source.py');
  console.log(JSON.stringify({ baud: 115_200, random_kBps, python_kBps, file_bytes: 64 * 1024 }));
  await repl.exit();
} finally {
  repl.dispose();
  await closeNodeSerialPort(port);
  await lab.close();
}
