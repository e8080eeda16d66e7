/** "Did you mean …?": the known word nearest to a mistyped one, for verbs, options and macros. */

/** Edit distance with adjacent transpositions (optimal string alignment). */
export function editDistance(a: string, b: string): number {
  const rows = a.length + 1;
  const cols = b.length + 1;
  const d: number[][] = Array.from({ length: rows }, (_, i) => Array.from({ length: cols }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1);
    }
  }
  return d[a.length]![b.length]!;
}

/**
 * The candidate a user most likely meant, or null when none is close: a typo (about one
 * edit per three letters) or a unique abbreviation (`board-exec` → `board-execute`).
 */
export function nearest(word: string, candidates: readonly string[]): string | null {
  const typed = word.toLowerCase();
  if (typed === '') return null;
  const prefixed = typed.length >= 3 ? candidates.filter((candidate) => candidate.startsWith(typed)) : [];
  if (prefixed.length === 1) return prefixed[0]!;
  let best: string | null = null;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const distance = editDistance(typed, candidate.toLowerCase());
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return bestDistance <= Math.max(1, Math.floor(typed.length / 3)) ? best : null;
}

/** "; did you mean X?" or nothing, to append to an error message. */
export function didYouMean(word: string, candidates: readonly string[], show: (candidate: string) => string = (candidate) => candidate): string {
  const match = nearest(word, candidates);
  return match === null ? '' : `; did you mean ${show(match)}?`;
}
