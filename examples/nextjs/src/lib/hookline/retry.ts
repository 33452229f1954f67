/**
 * Retries for the hookline client, as a `fetch` wrapper: fetch-only (no Node APIs), so it
 * runs on the Edge runtime too.
 *
 * One logical call is one `Request`; every attempt re-sends the same method, URL, headers
 * (so the same `Idempotency-Key`) and body bytes. Retried: network errors (including a
 * per-attempt timeout), 429 and 503. A `Retry-After` (seconds or an HTTP date) sets the
 * wait; without one the wait is exponential backoff with jitter. Other answers return at once.
 */
import { HooklineNetworkError } from "./errors";

export interface RetryPolicy {
  /** Attempts in all, the first included (1 = no retries). */
  maxAttempts: number;
  /** Backoff before the first retry; doubles each time, up to `maxDelayMs`. */
  baseDelayMs: number;
  maxDelayMs: number;
  /** A `Retry-After` longer than this is not waited for: the answer is returned as it is. */
  maxRetryAfterMs: number;
  /** Per attempt; an attempt that takes longer is aborted and counts as a network error. */
  timeoutMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = {
  maxAttempts: 4,
  baseDelayMs: 200,
  maxDelayMs: 5_000,
  maxRetryAfterMs: 30_000,
  timeoutMs: 10_000,
};

const RETRY_STATUSES = new Set([429, 503]);

/** `Retry-After` as milliseconds from `now`: delta-seconds or an HTTP date; null when absent or unreadable. */
export function parseRetryAfter(value: string | null, now: number = Date.now()): number | null {
  if (value === null) return null;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  // An HTTP date starts with the day's name ("Sun, 06 Nov 1994 08:49:37 GMT"); Date.parse
  // alone would also take "-1" or "2026".
  if (!/^[A-Za-z]{3}/.test(text)) return null;
  const date = Date.parse(text);
  if (Number.isNaN(date)) return null;
  return Math.max(0, date - now);
}

/** The wait before retry number `retry` (1-based): exponential, capped, "equal jitter" (half fixed, half random). */
export function backoffDelay(retry: number, policy: RetryPolicy, random: () => number = Math.random): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (retry - 1));
  return ceiling / 2 + random() * (ceiling / 2);
}

const now = (): number => (typeof performance === "undefined" ? Date.now() : performance.now());

/** At least `ms` (timers may fire a little early; a `Retry-After` is a lower bound). */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  const end = now() + ms;
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    let timer: ReturnType<typeof setTimeout>;
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const wait = (left: number) => {
      timer = setTimeout(() => {
        const remaining = end - now();
        if (remaining > 0) return wait(Math.ceil(remaining));
        signal.removeEventListener("abort", onAbort);
        resolve();
      }, left);
    };
    signal.addEventListener("abort", onAbort, { once: true });
    wait(ms);
  });
}

/** What a retrying fetch reports before each retry (for logs and tests). */
export interface RetryNotice {
  attempt: number;
  delayMs: number;
  reason: string;
}

export type FetchLike = (request: Request) => Promise<Response>;

export function retryingFetch(
  fetchImpl: FetchLike,
  policy: RetryPolicy,
  onRetry?: (notice: RetryNotice) => void,
): FetchLike {
  return async (request: Request): Promise<Response> => {
    // Read the body once; each attempt sends the same bytes in a fresh Request.
    const body = request.body === null ? null : await request.arrayBuffer();
    const callerSignal = request.signal;
    for (let attempt = 1; ; attempt++) {
      const controller = new AbortController();
      const abort = () => controller.abort(callerSignal.reason);
      callerSignal.addEventListener("abort", abort, { once: true });
      const timer = setTimeout(
        () => controller.abort(new Error(`no answer within ${policy.timeoutMs} ms`)),
        policy.timeoutMs,
      );
      let response: Response | null = null;
      let failure: unknown = null;
      try {
        response = await fetchImpl(
          new Request(request.url, {
            method: request.method,
            headers: request.headers,
            body,
            signal: controller.signal,
          }),
        );
      } catch (error) {
        if (callerSignal.aborted) throw callerSignal.reason;
        failure = controller.signal.aborted ? controller.signal.reason : error;
      } finally {
        clearTimeout(timer);
        callerSignal.removeEventListener("abort", abort);
      }

      if (response !== null && !RETRY_STATUSES.has(response.status)) return response;
      if (attempt >= policy.maxAttempts) {
        if (response !== null) return response;
        throw new HooklineNetworkError(attempt, failure);
      }
      let delayMs = backoffDelay(attempt, policy);
      let reason = failure instanceof Error ? failure.message : String(failure);
      if (response !== null) {
        const retryAfter = parseRetryAfter(response.headers.get("retry-after"));
        if (retryAfter !== null) {
          if (retryAfter > policy.maxRetryAfterMs) return response;
          delayMs = retryAfter;
        }
        reason = `HTTP ${response.status}`;
        await response.body?.cancel(); // free the connection; this answer is not used
      }
      onRetry?.({ attempt, delayMs, reason });
      await sleep(delayMs, callerSignal);
    }
  };
}
