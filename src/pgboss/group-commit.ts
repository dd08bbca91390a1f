/**
 * Group commit: items submitted while a commit is under way wait for the next one, which takes
 * them all. An item submitted to an idle committer is committed at once, so a lone job pays no
 * wait, and a slow job never holds a group back: only what is ready is committed together.
 */
export class GroupCommit<Item, Result> {
  private waiting: { item: Item; resolve: (result: Result) => void; reject: (error: unknown) => void }[] = [];
  private running = false;

  /** `commit` gets the group and answers one result per item, in order, or throws for all. */
  constructor(private readonly commit: (items: Item[]) => Promise<Result[]>) {}

  submit(item: Item): Promise<Result> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ item, resolve, reject });
      void this.drain();
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
