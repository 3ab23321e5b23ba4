import { validateInteger } from "./config.js";
import { InvalidOptionError, TaskStateError } from "./errors.js";
import { assertKnownKeys } from "./options.js";
import { TASK_STATUSES, type TaskStatus } from "./task.js";

/*
 * What a caller saw of a task before acting on it (a dashboard page, a script that listed FAILED tasks). Given, the
 * action's compare-and-set also requires it, so a task that changed meanwhile (retried and completed, claimed by a
 * worker) is refused with a TaskStateError naming where it is now, never acted on in its new state.
 */
export interface TaskActionOptions {
  /** Act only if the task is in this status now; otherwise TaskStateError and nothing changes. */
  expectStatus?: TaskStatus;
  /** And only if this is its attempt now (a task retried and failed again has a higher one). */
  expectAttempt?: number;
}

/** The expectation as the admin statements take it: null where nothing is expected. */
export interface Expectation {
  status: TaskStatus | null;
  attempt: number | null;
}

export const NO_EXPECTATION: Expectation = { status: null, attempt: null };

/** Checks a TaskActionOptions argument (absent: no expectation) and names a wrong field. */
export function checkExpectation(options: TaskActionOptions | undefined): Expectation {
  if (options === undefined) return NO_EXPECTATION;
  assertKnownKeys("task action options", options, ["expectStatus", "expectAttempt"]);
  const { expectStatus, expectAttempt } = options;
  if (expectStatus !== undefined && !(TASK_STATUSES as readonly unknown[]).includes(expectStatus)) {
    throw new InvalidOptionError("expectStatus", `expected one of ${TASK_STATUSES.join(", ")}`);
  }
  return {
    status: expectStatus ?? null,
    attempt: expectAttempt === undefined ? null : validateInteger("expectAttempt", expectAttempt, 0, 2_147_483_647),
  };
}

/**
 * The refusal when a task is not as expected (its status and attempt now); null when it is, and the action was
 * refused for another reason.
 */
export function unexpectedState(
  id: string,
  action: string,
  now: { status: TaskStatus; attempt: number },
  e: Expectation,
): TaskStateError | null {
  if (e.status !== null && now.status !== e.status) {
    return new TaskStateError(id, action, now.status, [e.status], "it changed since it was shown; nothing was done");
  }
  if (e.attempt !== null && now.attempt !== e.attempt) {
    return new TaskStateError(
      id,
      action,
      now.status,
      [now.status],
      `it ran again since it was shown: attempt ${now.attempt}, not ${e.attempt}; nothing was done`,
    );
  }
  return null;
}
