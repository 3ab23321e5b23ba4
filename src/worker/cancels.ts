import type { Slots } from "./slots.js";

/**
 * Stops attempt `attempt` of task `id` if it runs in one of `slots` (cancelTask asked for it, through Redis or the
 * heartbeat). An attempt not running here, or not yet started (in the prefetch buffer), is left alone: the heartbeat
 * names it again at every beat until it is running, then stopped. Asking twice is harmless.
 */
export function cancelRunning(slots: Slots, id: string, attempt: number): boolean {
  for (const exec of slots.all()) {
    if (exec.row.id === id && exec.row.attempt === attempt) {
      exec.cancel();
      return true;
    }
  }
  return false;
}
