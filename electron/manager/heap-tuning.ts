/**
 * How the manager's JavaScript heap grows. A broadcast to thousands of boards keeps every
 * command's Redis calls, replies and records alive for seconds, so they outlive the young
 * generation and die in the old one; V8 then lets the old generation grow up to four times
 * what is live before collecting it. Measured with 10,000 boards (`npm run bench:fleet`): the
 * manager's RSS peaked at 420–590 MB with 50–70 MB live. Growing by at most 2× (collect once
 * the old generation doubled) held the peak at 270–360 MB for no more CPU per broadcast
 * (2.6–3.1 s against 3.0–3.5 s, within this machine's noise), where a fixed
 * `--max-old-space-size=256` cost 35 % more CPU and would end the service with an
 * out-of-memory error on a fleet that truly needs more.
 *
 * V8 reads the flag at each collection, so setting it once the process runs takes effect; it
 * applies to the whole process (the Electron main process too), which is what is wanted.
 */
import v8 from 'node:v8';

const HEAP_GROWING_PERCENT = 100;

let tuned = false;

export function tuneHeapGrowth(): void {
  if (tuned) return;
  tuned = true;
  v8.setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
}
