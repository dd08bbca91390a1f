import { describe, expect, it } from 'vitest';
import { notificationOf, type AuditRow } from '../../src/notify/text.js';

const aborted = (after: object, reason: string): AuditRow => ({
  id: '1', at: '2026-12-07T00:00:00Z', actor: 'ops', action: 'plan.aborted', jobType: 'evaluation.process', before: { step: 1 }, after, reason,
});

describe('the notification of an aborted plan', () => {
  it('says GATE FAILED on the recorded cause, not on the words of the reason', () => {
    expect(notificationOf(aborted({ state: 'aborted', cause: 'gate' }, 'gate failed: maxDeadLetters (3 dead letters)'))?.text).toMatch(/^GATE FAILED: /);
    // An operator's reason may begin with the same words; it is still an operator's abort.
    expect(notificationOf(aborted({ state: 'aborted', cause: 'operator' }, 'gate failed earlier, aborting by hand'))?.text).not.toMatch(/GATE FAILED/);
  });

  it('reads a row written before causes were recorded by its reason, as it always did', () => {
    expect(notificationOf(aborted({ state: 'aborted' }, 'gate failed: minSamples'))?.text).toMatch(/^GATE FAILED: /);
    expect(notificationOf(aborted({ state: 'aborted' }, 'operator abort'))?.text).not.toMatch(/GATE FAILED/);
  });
});
