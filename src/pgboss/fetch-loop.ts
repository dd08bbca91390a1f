import { setTimeout as sleep } from 'node:timers/promises';

/** What one take brought: how many jobs were fetched, and a promise per slot they hold, settled when the slot is free again. */
export interface Taken {
  fetched: number;
  running: readonly Promise<unknown>[];
}

export interface FetchLoopOptions {
  /** Jobs running at once. */
  slots: number;
  /** Fetches up to `limit` jobs and starts them. Never called with more than the free slots, nor twice at once. */
  take: (limit: number) => Promise<Taken>;
  /** After a fetch that came back short (the queue looked empty), the next one waits for a wake or this long. */
  pollMs: number;
  /** Aborted: no fetch after this; jobs already running are not touched (see `drained`). */
  signal: AbortSignal;
  /** A take that threw, the `failures`-th in a row; answers how long to wait before the next (backoff). */
  onError: (error: unknown, failures: number) => number;
  /** The first take that worked after failures. */
  onRecovered?: () => void;
}

/**
 * Keeps `slots` jobs running, the way graphile-worker's local queue keeps its workers fed: as
 * soon as a slot is free the loop fetches as many jobs as there are free slots, so one slow job
 * holds its own slot only, never a batch. Slots freed in the same turn of the event loop (a group
 * commit settles several jobs at once) and while a fetch is under way are fetched together, so a
 * busy loop fetches in batches and an idle one sends nothing. A fetch that comes back short means
 * the queue is (for now) empty: the loop then waits for `wake` (a NOTIFY) or the backstop poll.
 * A failing fetch backs off as `onError` says, through an outage included.
 */
export class FetchLoop {
  private running = 0;
  private readonly inFlight = new Set<Promise<unknown>>();
  private woken = false;
  private resume: (() => void) | undefined;
  /** Settles when the loop has stopped fetching (after the signal), a fetch in flight included. */
  readonly stopped: Promise<void>;

  constructor(private readonly options: FetchLoopOptions) {
    if (!Number.isInteger(options.slots) || options.slots < 1) throw new RangeError(`slots must be a positive integer, got ${options.slots}`);
    this.stopped = this.run();
  }

  /** Jobs running now. */
  get active(): number {
    return this.running;
  }

  /** New jobs may be there: fetch now (or as soon as a slot is free) rather than at the next poll. */
  wake(): void {
    this.woken = true;
    this.resume?.();
  }

  /** Settles once every job taken so far has settled. */
  async drained(): Promise<void> {
    while (this.inFlight.size) await Promise.allSettled([...this.inFlight]);
  }

  private async run(): Promise<void> {
    const { slots, signal, pollMs } = this.options;
    let failures = 0;
    /** After a short fetch: no fetch before this time unless woken. */
    let idleUntil = 0;
    while (!signal.aborted) {
      const free = slots - this.running;
      if (free <= 0) {
        await this.pause();
        continue;
      }
      const now = Date.now();
      if (!this.woken && now < idleUntil) {
        await this.pause(idleUntil - now);
        continue;
      }
      this.woken = false;
      let taken: Taken;
      try {
        taken = await this.options.take(free);
      } catch (error) {
        failures += 1;
        idleUntil = 0;
        // Not cut short by a wake: a NOTIFY during an outage must not turn backoff into a spin.
        await sleep(this.options.onError(error, failures), undefined, { signal }).catch(() => undefined);
        continue;
      }
      if (failures) {
        failures = 0;
        this.options.onRecovered?.();
      }
      for (const slot of taken.running) this.hold(slot);
      idleUntil = taken.fetched < free ? Date.now() + pollMs : 0;
    }
  }

  private hold(slot: Promise<unknown>): void {
    this.running += 1;
    this.inFlight.add(slot);
    const free = () => {
      this.running -= 1;
      this.inFlight.delete(slot);
      this.resume?.();
    };
    slot.then(free, free);
  }

  /**
   * Waits for a slot to free, a wake, the signal or `ms`. The wake-up is deferred to the next
   * turn (setImmediate), so jobs that settle together free their slots for one fetch.
   */
  private pause(ms?: number): Promise<void> {
    const { signal } = this.options;
    return new Promise((resolve) => {
      let over = false;
      const done = () => {
        if (over) return;
        over = true;
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        if (this.resume === resume) this.resume = undefined;
        resolve();
      };
      const resume = () => void setImmediate(done);
      const timer = ms === undefined ? undefined : setTimeout(done, ms);
      this.resume = resume;
      signal.addEventListener('abort', done, { once: true });
      if (signal.aborted) done();
    });
  }
}
