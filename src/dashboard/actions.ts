/** The task actions, one task at a time or in bulk. Each is one compare-and-set in the database (the client's). */
export const TASK_ACTIONS = ["retry", "cancel", "run-now", "delete"] as const;
export type TaskAction = (typeof TASK_ACTIONS)[number];

/** Most ids one bulk request acts on. */
export const MAX_BULK_IDS = 1000;
