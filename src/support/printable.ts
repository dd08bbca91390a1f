/**
 * One rule for text an operator's terminal or page shows back (a flag's reason, a plan's name, a
 * payload): no character that makes it display other than it is stored. Those are the C0
 * controls (a terminal escape starts with ESC), DEL, the C1 controls (U+0080-U+009F, which some
 * terminals read as escapes) and the bidirectional embeddings, overrides and isolates
 * (U+202A-U+202E, U+2066-U+2069), which reorder what follows them. Tab, line feed and carriage
 * return are allowed only where the text may span lines.
 */
// eslint-disable-next-line no-control-regex -- finding control characters is the point
const UNPRINTABLE = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/u;
const LINE_BREAK = /[\t\n\r]/;

export interface PrintableRule {
  /** Tabs and line breaks allowed (a pretty-printed payload); otherwise the text is one line. */
  multiline: boolean;
}

/** The first character of `text` the rule refuses: where it is, and its code point as `U+001B`. */
export function unprintableIn(text: string, rule: PrintableRule): { index: number; codePoint: string } | undefined {
  const match = UNPRINTABLE.exec(text) ?? (rule.multiline ? null : LINE_BREAK.exec(text));
  if (!match) return undefined;
  return { index: match.index, codePoint: `U+${match[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}` };
}

/** True when `text` displays as it is stored. */
export function isPrintable(text: string, rule: PrintableRule): boolean {
  return unprintableIn(text, rule) === undefined;
}
