import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Pool } from '../../src/db/pool.js';
import { repoRoot } from '../helpers/cli.js';
import type { TestDatabase } from '../helpers/database.js';
import type { Producer } from '../helpers/engines.js';
import { useEngineFixture } from '../helpers/fixture.js';
import { addLegacyJobs } from '../helpers/jobs.js';
import { startCli } from '../helpers/process.js';
import { pollUntil } from '../helpers/wait.js';

// A worker killed with SIGKILL runs no shutdown: the job processes it started must notice on
// their own that it is gone and stop, or they keep working unowned while the job runs again
// elsewhere (pg-boss hands it out once it expires; the legacy runner's stale recovery resets it).

const heartbeatRegistry = join(repoRoot, 'test', 'isolation', 'heartbeat-registry.mjs');
const fixture = useEngineFixture({ percent: 100, registry: heartbeatRegistry });
let database: TestDatabase;
let pool: Pool;
let producer: Producer;
let dir: string;
beforeEach(async () => {
  ({ database, pool, producer } = fixture);
  dir = await mkdtemp(join(tmpdir(), 'cutover-parent-death-'));
});
afterEach(async () => {
  for (const pid of started.splice(0)) if (running(pid)) process.kill(pid, 'SIGKILL');
  await rm(dir, { recursive: true, force: true });
});

/** Job processes a test saw, killed afterwards should a test fail with them still running. */
const started: number[] = [];

/** Whether `pid` is a process still running: an exited one that nobody reaped yet (a zombie under a container's init) is not. */
function running(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0] !== 'Z';
  } catch {
    return false;
  }
}

describe('a job process whose worker is killed with SIGKILL', () => {
  it.each(['pgboss', 'legacy'] as const)('exits at once on %s, reporting nothing', async (engine) => {
    const file = join(dir, `${engine}.heartbeat`);
    if (engine === 'pgboss') await producer.manager.enqueue('iso.heartbeat', { file });
    else await addLegacyJobs(pool, 'iso.heartbeat', [{ file }]);
    const worker = startCli(['worker', '--engine', engine, '--registry', heartbeatRegistry, '--database-url', database.url, ...(engine === 'legacy' ? ['--poll-ms', '100'] : [])]);
    try {
      const beats = async () => (await readFile(file, 'utf8').catch(() => '')).split('\n').filter((line) => line === 'beat').length;
      const pid = await pollUntil('the job process to beat', async () => (await beats()) >= 2 && Number((await readFile(file, 'utf8')).split('\n')[0]));
      started.push(pid);
      expect(running(pid)).toBe(true);

      worker.kill('SIGKILL');
      expect((await worker.exited).signal).toBe('SIGKILL');
      await pollUntil(`job process ${pid} to exit after its worker died`, async () => !running(pid), { timeoutMs: 5000 });
    } finally {
      worker.kill('SIGKILL');
      await worker.exited;
    }
  });
});
