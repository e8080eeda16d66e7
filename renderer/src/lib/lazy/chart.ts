/**
 * The Telemetry tab's chart (uPlot, loaded with the tab): free memory over time as a line,
 * and the share of each period the board was online as bars on a 0-100 % axis.
 */
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

export interface ChartPoint {
  t: number;
  memFree: number | null;
  onlinePct: number | null;
}

function cssVar(name: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || '#888';
}

function kb(value: number | null): string {
  if (value === null) return '–';
  return value >= 1024 * 1024 ? `${(value / 1024 / 1024).toFixed(1)} MB` : `${Math.round(value / 1024)} KB`;
}

const DAY_S = 24 * 3600;

export function createChart(parent: HTMLElement, points: ChartPoint[]): { update(points: ChartPoint[]): void; resize(): void; destroy(): void } {
  const data = (list: ChartPoint[]): uPlot.AlignedData => [
    list.map((point) => point.t / 1000),
    list.map((point) => point.memFree),
    list.map((point) => point.onlinePct),
  ];
  const text = cssVar('--muted');
  const grid = cssVar('--border');
  const axis = { stroke: text, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
  const options: uPlot.Options = {
    width: parent.clientWidth || 600,
    height: Math.max(220, parent.clientHeight || 260),
    // Always the last 24 hours, so a new board's first points sit at the right end.
    scales: {
      x: { time: true, range: () => [Date.now() / 1000 - DAY_S, Date.now() / 1000 + 60] },
      mem: { auto: true, range: (_u, min, max) => [0, Math.max(max * 1.1, min + 1)] },
      pct: { range: [0, 100] },
    },
    series: [
      {},
      { label: 'Free memory', scale: 'mem', stroke: cssVar('--accent'), width: 2, points: { show: true, size: 5 }, value: (_u, v) => kb(v), spanGaps: true },
      {
        label: 'Online',
        scale: 'pct',
        stroke: cssVar('--ok'),
        fill: `${cssVar('--ok')}22`,
        width: 1,
        paths: uPlot.paths.bars!({ size: [0.9, 24] }),
        value: (_u, v) => (v === null ? '–' : `${Math.round(v)} %`),
      },
    ],
    axes: [
      { ...axis },
      { ...axis, scale: 'mem', values: (_u, values) => values.map((v) => kb(v)), size: 72 },
      { ...axis, scale: 'pct', side: 1, values: (_u, values) => values.map((v) => `${v} %`), grid: { show: false }, size: 52 },
    ],
    legend: { live: true },
  };
  const plot = new uPlot(options, data(points), parent);
  return {
    update: (list) => plot.setData(data(list)),
    resize: () => plot.setSize({ width: parent.clientWidth, height: Math.max(220, parent.clientHeight) }),
    destroy: () => plot.destroy(),
  };
}
