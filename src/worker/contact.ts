/**
 * Whether this worker's contact with Postgres has been unbroken, and since when. The claim loop and the heartbeat
 * report failures and recoveries; the sweeper judges other workers' tasks only after staleAfter of unbroken contact
 * (see docs/architecture.md, "Heartbeats and the sweep").
 */
export class Contact {
  /** Epoch ms since which contact has been unbroken (0: never broken). */
  #since = 0;
  #broken = false;

  lost(): void {
    this.#broken = true;
  }

  restored(): void {
    if (!this.#broken) return;
    this.#broken = false;
    this.#since = Date.now();
  }

  /** Epoch ms since which contact has been unbroken; now, while it is broken. */
  since(): number {
    return this.#broken ? Date.now() : this.#since;
  }
}
