/** Retry delays: exponential backoff with jitter, and what is worth retrying. */

/** How retries are spaced: `base * 2^attempt`, capped, then jittered into its upper half. */
export interface BackoffOptions {
  /** First delay in milliseconds (default 1000). */
  base?: number;
  /** Longest delay in milliseconds (default 60000). */
  max?: number;
}

/**
 * The delay before retry number `attempt` (0 for the first retry). "Equal jitter": half the
 * exponential delay plus a random part of the other half, so that many tabs that failed together
 * do not come back together, yet none retries at once.
 */
export function backoffDelay(
  attempt: number,
  options: BackoffOptions = {},
  random: () => number = Math.random,
): number {
  const base = options.base ?? 1000;
  const max = options.max ?? 60_000;
  const ceiling = Math.min(max, base * 2 ** Math.min(attempt, 30));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

/**
 * Whether a whole-request HTTP status is worth sending again: the hub was busy or unreachable
 * (5xx, 408), asked to slow down (429), or an Idempotency-Key request was still running (409).
 * Any other 4xx would be refused again.
 */
export function isRetryable(status: number): boolean {
  return status >= 500 || status === 408 || status === 409 || status === 429;
}
