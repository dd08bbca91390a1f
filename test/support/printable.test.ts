import { describe, expect, it } from 'vitest';
import { assertPrintable } from '../../src/cli/parse.js';
import { setPercentAction, type ActionContext } from '../../src/dashboard/actions.js';
import { planSchema } from '../../src/plans/plan.js';
import { UsageError } from '../../src/support/errors.js';
import { isPrintable, unprintableIn } from '../../src/support/printable.js';

// Text shown back to operators (a flag's reason, a plan's name, a payload) must display as it
// is stored: a bidi override reorders what follows it, a C0 or C1 control can be a terminal
// escape. One rule decides, wherever the text comes in.
const BIDI = [0x202a, 0x202b, 0x202c, 0x202d, 0x202e, 0x2066, 0x2067, 0x2068, 0x2069];
const C0 = [...Array.from({ length: 0x20 }, (_, i) => i).filter((code) => code !== 0x09 && code !== 0x0a && code !== 0x0d), 0x7f];
const C1 = Array.from({ length: 0x20 }, (_, i) => 0x80 + i);
const LINE_BREAKS = [0x09, 0x0a, 0x0d];
const hex = (code: number) => `U+${code.toString(16).toUpperCase().padStart(4, '0')}`;

describe('the printable-text rule', () => {
  it.each([...BIDI, ...C0, ...C1].map((code) => [hex(code), code]))('refuses %s on one line and across lines', (_name, code) => {
    const text = `pay invoice ${String.fromCodePoint(code)}42`;
    expect(isPrintable(text, { multiline: false })).toBe(false);
    expect(isPrintable(text, { multiline: true })).toBe(false);
    expect(unprintableIn(text, { multiline: true })).toEqual({ index: 12, codePoint: hex(code) });
  });

  it('allows tab, line feed and carriage return only in multi-line text', () => {
    for (const code of LINE_BREAKS) {
      const text = `a${String.fromCodePoint(code)}b`;
      expect(isPrintable(text, { multiline: true })).toBe(true);
      expect(unprintableIn(text, { multiline: false })).toEqual({ index: 1, codePoint: hex(code) });
    }
  });

  it('passes ordinary text in any script, emoji sequences included', () => {
    for (const text of ['ramp to 25 %', 'Überweisung für Müller', 'مرحبا بالعالم', 'שלום', '日本語のテキスト', 'family 👨‍👩‍👧 done', '']) {
      expect(isPrintable(text, { multiline: false })).toBe(true);
    }
  });

  it('is the rule of the CLI, of plan files and of the dashboard alike', async () => {
    const override = 'ramp \u202eevil\u202c';
    expect(() => assertPrintable('--reason', override, { multiline: false })).toThrow(/--reason must be one line of printable text: it contains the control character U\+202E at position 6/);
    expect(() => assertPrintable('--reason', 'escape \u009b31m', { multiline: true })).toThrow(/U\+009B at position 8/);

    const plan = (name: string) => planSchema.safeParse({ name, steps: [{ setWeight: 10 }] });
    expect(plan('ramp to ten').success).toBe(true);
    expect(plan(override).success).toBe(false);
    expect(plan('bell\u0007').success).toBe(false);

    // The reason is judged before anything touches the database: no pool is needed to see it refused.
    const context = { registry: { require: () => undefined } } as unknown as ActionContext;
    for (const reason of [override, 'tab\there', 'csi \u001b[2J']) {
      await expect(setPercentAction(context, { type: '*', percent: 10, reason })).rejects.toBeInstanceOf(UsageError);
    }
  });
});
