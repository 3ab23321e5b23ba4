// The demo's task handlers: each export is a task, named after the export.
import { defineTask, taskContext } from "skiplock";

/** @param {number} a @param {number} b */
export function multiply(a, b) {
  return a * b;
}

/**
 * Fails on its first attempt; the worker's --retry 1 gives it a second one.
 * @param {string} label
 */
export function flaky(label) {
  const { attempt } = taskContext();
  if (attempt === 1) throw new Error(`${label}: first attempt fails on purpose`);
  return `${label} succeeded on attempt ${attempt}`;
}

/** @param {string} name @param {number} ms */
export async function slowHello(name, ms) {
  await new Promise((resolve) => setTimeout(resolve, ms));
  return `hello, ${name}`;
}

/** A task with its own name and default options. */
export const wordCount = defineTask(
  "text.wordCount",
  (/** @type {string} */ text) => text.split(/\s+/).filter(Boolean).length,
  {
    priority: 5,
  },
);
