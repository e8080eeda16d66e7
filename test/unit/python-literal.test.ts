/**
 * pythonLiteral(): the one way serial-copy puts values into board code. Every literal is
 * plain ASCII without quotes or backslashes of its own, and real MicroPython reads back
 * exactly the value it was built from.
 */
import { describe, expect, it } from 'vitest';
import { loadMicroPython } from '@micropython/micropython-webassembly-pyscript';
import { pythonLiteral } from '../../electron/manager/usb/serial-copy.js';

const STRINGS = [
  '',
  'main.py',
  'lib/x y.py',
  "it's",
  'a"b',
  'back\\slash',
  'new\nline\r\t',
  'nul\0byte',
  '\x7f\x80\xff',
  'ünïcödé',
  '日本語',
  '🐍 emoji',
  "'); import os; os.remove('x')#",
  '${x}',
  '\u2028',
];

describe('pythonLiteral', () => {
  it('spells str, bytes, numbers, booleans and None as ASCII literals with no raw quote or backslash inside', () => {
    expect(pythonLiteral('main.py')).toBe("'main.py'");
    expect(pythonLiteral("it's")).toBe("'it\\x27s'");
    expect(pythonLiteral('é')).toBe("'\\xe9'");
    expect(pythonLiteral('日')).toBe("'\\u65e5'");
    expect(pythonLiteral('🐍')).toBe("'\\U0001f40d'");
    expect(pythonLiteral(Buffer.from('QUJD+/=='))).toBe("b'QUJD+/=='");
    expect(pythonLiteral(Buffer.from([0, 39, 92, 255]))).toBe("b'\\x00\\x27\\x5c\\xff'");
    expect(pythonLiteral(42)).toBe('42');
    expect(pythonLiteral(-7)).toBe('-7');
    expect(pythonLiteral(true)).toBe('True');
    expect(pythonLiteral(null)).toBe('None');
    expect(() => pythonLiteral(Number.NaN)).toThrow(RangeError);
    for (const value of STRINGS) {
      const literal = pythonLiteral(value);
      expect(literal).toMatch(/^'[\x20-\x7e]*'$/);
      expect(literal.slice(1, -1)).not.toMatch(/'|\\(?![xuU])/);
    }
  });

  it('reads back exactly in MicroPython', async () => {
    let out = '';
    const mp = await loadMicroPython({
      heapsize: 256 * 1024,
      linebuffer: false,
      stdout: (b: string | Uint8Array) => {
        out += typeof b === 'string' ? b : Buffer.from(b).toString('utf8');
      },
      stderr: (b: string | Uint8Array) => {
        out += typeof b === 'string' ? b : Buffer.from(b).toString('utf8');
      },
    });
    const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const checks = [
      ...STRINGS.map((value) => `print(${pythonLiteral(value)}.encode() == bytes.fromhex(${pythonLiteral(Buffer.from(value, 'utf8').toString('hex'))}))`),
      `print(${pythonLiteral(bytes)} == bytes(range(256)))`,
      `print(${pythonLiteral(123456789)} + 1 == 123456790)`,
    ];
    mp.runPython(checks.join('\n'));
    expect(out.trim().split('\n')).toEqual(checks.map(() => 'True'));
  });
});
