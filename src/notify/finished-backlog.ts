/** Most finished ids kept while the publisher is down; beyond them, waiters rely on their safety-net read. */
const MAX_KEPT = 100_000;
/** Ids per "finished" message when sending the kept ones. */
const IDS_PER_MESSAGE = 10_000;

/**
 * Finished ids published while the publisher was down, kept to be sent once every connection is back: a waiter
 * elsewhere would otherwise learn of them only from its safety-net read.
 */
export class FinishedBacklog {
  #ids: string[] = [];

  /** Keeps `ids`, as many as the bound leaves room for. */
  keep(ids: readonly string[]): void {
    for (const id of ids) {
      if (this.#ids.length >= MAX_KEPT) break;
      this.#ids.push(id);
    }
  }

  /** Empties the backlog into the messages that carry it. */
  takeMessages(): string[][] {
    const ids = this.#ids;
    this.#ids = [];
    const messages: string[][] = [];
    for (let i = 0; i < ids.length; i += IDS_PER_MESSAGE) messages.push(ids.slice(i, i + IDS_PER_MESSAGE));
    return messages;
  }
}
