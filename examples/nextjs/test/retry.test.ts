/** The retry policy's arithmetic (no server needed). */
import assert from "node:assert/strict";
import { test } from "node:test";

import { DEFAULT_RETRY, backoffDelay, parseRetryAfter } from "../src/lib/hookline/retry";

test("Retry-After: delta-seconds, an HTTP date, or nothing usable", () => {
  const now = Date.parse("2026-01-01T00:00:00Z");
  assert.equal(parseRetryAfter("1", now), 1000);
  assert.equal(parseRetryAfter(" 120 ", now), 120_000);
  assert.equal(parseRetryAfter("Thu, 01 Jan 2026 00:00:05 GMT", now), 5000);
  assert.equal(parseRetryAfter("Wed, 31 Dec 2025 23:59:00 GMT", now), 0); // in the past: now
  assert.equal(parseRetryAfter(null, now), null);
  assert.equal(parseRetryAfter("soon", now), null);
  assert.equal(parseRetryAfter("-1", now), null);
});

test("backoff doubles up to the cap, with half of it random", () => {
  const policy = { ...DEFAULT_RETRY, baseDelayMs: 100, maxDelayMs: 1000 };
  assert.deepEqual(
    [1, 2, 3, 4, 5, 6].map((retry) => backoffDelay(retry, policy, () => 0)),
    [50, 100, 200, 400, 500, 500],
  );
  assert.deepEqual(
    [1, 2, 3, 4, 5, 6].map((retry) => backoffDelay(retry, policy, () => 1)),
    [100, 200, 400, 800, 1000, 1000],
  );
});
