/**
 * Group commit: items submitted while a commit is under way wait for the next one, which takes
 * them all. An idle committer starts on the next turn of the event loop (setImmediate), so the
 * jobs of a batch that finish together (their handlers resolve in the same turn) share the
 * first commit too; a lone job waits no longer than that turn, and a slow job never holds a
 * group back: only what is ready is committed together.
 */
export class GroupCommit<Item, Result> {
  private waiting: { item: Item; resolve: (result: Result) => void; reject: (error: unknown) => void }[] = [];
  private running = false;
  private scheduled = false;

  /** `commit` gets the group and answers one result per item, in order, or throws for all. */
  constructor(private readonly commit: (items: Item[]) => Promise<Result[]>) {}

  submit(item: Item): Promise<Result> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ item, resolve, reject });
      if (this.running || this.scheduled) return;
      this.scheduled = true;
      setImmediate(() => {
        this.scheduled = false;
        void this.drain();
      });
    });
  }

  private async drain(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      while (this.waiting.length) {
        const group = this.waiting;
        this.waiting = [];
        try {
          const results = await this.commit(group.map((entry) => entry.item));
          group.forEach((entry, index) => entry.resolve(results[index]!));
        } catch (error) {
          for (const entry of group) entry.reject(error);
        }
      }
    } finally {
      this.running = false;
    }
  }
}
