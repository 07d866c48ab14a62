/**
 * @contacthub/browser: track a web page's activities into a contacthub hub, consent first,
 * without losing any.
 */

import { type Options, Tracker } from "./tracker.js";

export type { BackoffOptions } from "./backoff.js";
export type { QueuedActivity } from "./queue.js";
export type { StorageLike } from "./storage.js";
export { MemoryStorage } from "./storage.js";
export type { ConsentState, ContactFields, FlushResult, Options, TrackerEvent } from "./tracker.js";
export { Tracker } from "./tracker.js";

/** The package's version: the hub API version it is made for. */
export const version = "0.1.0";

/** Start tracking: validates the options, reads the consent state, and answers the tracker. */
export function init(options: Options): Tracker {
  return new Tracker(options);
}

export default { init, version };
