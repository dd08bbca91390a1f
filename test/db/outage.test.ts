import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { backoffMs, isConnectionError, OutageLog } from '../../src/db/outage.js';

function recordingLog(): { log: pino.Logger; lines: { level: number; msg: string }[] } {
  const lines: { level: number; msg: string }[] = [];
  const log = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  return { log, lines };
}

const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });

describe('outage log', () => {
  it('tells a lost connection from a bad statement', () => {
    expect(isConnectionError(refused)).toBe(true);
    expect(isConnectionError(Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' }))).toBe(true);
    expect(isConnectionError(new Error('Connection terminated unexpectedly'))).toBe(true);
    expect(isConnectionError(Object.assign(new Error('the database system is starting up'), { code: '57P03' }))).toBe(true);
    expect(isConnectionError(Object.assign(new Error('syntax error at or near "SELEC"'), { code: '42601' }))).toBe(false);
    expect(isConnectionError(Object.assign(new Error('duplicate key'), { code: '23505' }))).toBe(false);
  });

  it('writes one line when an outage starts and one when it ends, however many polls fail', () => {
    const { log, lines } = recordingLog();
    let now = 0;
    const outage = new OutageLog(log, 'legacy runner', { now: () => now });
    for (let poll = 0; poll < 50; poll += 1) {
      now += 1000;
      expect(outage.failed(refused, 'claim failed')).toBe(true);
    }
    expect(outage.down).toBe(true);
    outage.recovered();
    outage.recovered();
    expect(lines.map((line) => line.msg)).toEqual(['legacy runner: database unreachable; retrying with backoff', 'legacy runner: database reachable again']);
    expect(lines[1]).toMatchObject({ failedAttempts: 50, seconds: 49 });
  });

  it('logs every error that is not about the connection', () => {
    const { log, lines } = recordingLog();
    const outage = new OutageLog(log, 'pg-boss');
    expect(outage.failed(new Error('relation "x" does not exist'), 'pg-boss error')).toBe(false);
    expect(outage.failed(new Error('relation "x" does not exist'), 'pg-boss error')).toBe(false);
    expect(lines.map((line) => line.msg)).toEqual(['pg-boss: pg-boss error', 'pg-boss: pg-boss error']);
  });

  it('without reported successes, a failure after a quiet spell starts a new outage', () => {
    const { log, lines } = recordingLog();
    let now = 0;
    const outage = new OutageLog(log, 'pg-boss', { quietMs: 10_000, now: () => now });
    outage.failed(refused, 'poll');
    now += 1000;
    outage.failed(refused, 'poll');
    now += 60_000;
    outage.failed(refused, 'poll');
    expect(lines.map((line) => line.msg)).toEqual(['pg-boss: database unreachable; retrying with backoff', 'pg-boss: database unreachable; retrying with backoff']);
  });

  it('backs off by doubling, up to a ceiling', () => {
    expect([1, 2, 3, 4, 10].map((failures) => backoffMs(1000, failures))).toEqual([1000, 2000, 4000, 8000, 30_000]);
    expect(backoffMs(20, 1)).toBe(20);
  });
});
