/**
 * Terminals (@xterm/xterm) for the Console tab and the USB console, loaded only when one
 * opens. Colours follow the page's light or dark theme.
 */
import { Terminal } from '@xterm/xterm';
import { FitAddon } from '@xterm/addon-fit';
import '@xterm/xterm/css/xterm.css';

export interface PageTerminal {
  terminal: Terminal;
  fit(): void;
  destroy(): void;
}

function cssVar(name: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

export function createTerminal(parent: HTMLElement, label: string): PageTerminal {
  const terminal = new Terminal({
    convertEol: true,
    cursorBlink: true,
    fontFamily: cssVar('--mono') || 'monospace',
    fontSize: 13,
    scrollback: 5000,
    theme: {
      background: cssVar('--surface'),
      foreground: cssVar('--text'),
      cursor: cssVar('--accent'),
      selectionBackground: 'rgba(91, 156, 255, 0.3)',
    },
  });
  const fit = new FitAddon();
  terminal.loadAddon(fit);
  terminal.open(parent);
  terminal.textarea?.setAttribute('aria-label', label);
  const resize = new ResizeObserver(() => fit.fit());
  resize.observe(parent);
  fit.fit();
  return {
    terminal,
    fit: () => fit.fit(),
    destroy: () => {
      resize.disconnect();
      terminal.dispose();
    },
  };
}
