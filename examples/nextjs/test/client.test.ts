/**
 * The hookline client against a live hookline (see test/support.ts), with a small proxy in
 * front where a test needs hookline to answer 503/429 or to lose an answer.
 */
import assert from "node:assert/strict";
import { before, describe, test } from "node:test";

import {
  createHooklineClient,
  HooklineError,
  HooklineNetworkError,
  HooklinePayloadError,
  type JobPayload,
} from "../src/lib/hookline/client";
import { API_KEY, HOOKLINE_URL, type Plan, closedPort, requireHookline, uniqueId, withProxy } from "./support";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const FAST = { baseDelayMs: 10, maxDelayMs: 50 };

function client(baseUrl = HOOKLINE_URL, apiKey = API_KEY, retry = {}) {
  return createHooklineClient({ baseUrl, apiKey, retry: { ...FAST, ...retry } });
}

function report(prefix = "r"): JobPayload<"generate-report"> {
  return { report_id: uniqueId(prefix) };
}

before(requireHookline);

describe("Idempotency-Key", () => {
  test("replaying the same key and payload returns the same jobId and enqueues nothing new", async () => {
    const hookline = client();
    const payload = report("replay");
    const key = uniqueId("key");
    const first = await hookline.enqueue("generate-report", payload, { idempotencyKey: key });
    const second = await hookline.enqueue("generate-report", payload, { idempotencyKey: key });
    assert.match(first.jobId, /^job_/);
    assert.equal(first.status, "queued");
    assert.equal(first.replayed, false);
    assert.equal(second.jobId, first.jobId);
    assert.equal(second.replayed, true);
    assert.equal(second.idempotencyKey, key);
    const job = await hookline.getJob(first.jobId);
    assert.equal(job.name, "generate-report");
  });

  test("without a key, each call sends a fresh random one", async () => {
    const hookline = client();
    const a = await hookline.enqueue("generate-report", report("fresh"));
    const b = await hookline.enqueue("generate-report", report("fresh"));
    assert.match(a.idempotencyKey, UUID);
    assert.notEqual(a.idempotencyKey, b.idempotencyKey);
    assert.notEqual(a.jobId, b.jobId);
  });

  test("a lost answer is retried with the same key and finds the job the first attempt stored", async () => {
    const dropFirst = (n: number): Plan => (n === 0 ? { kind: "forward-then-drop" } : { kind: "forward" });
    await withProxy(dropFirst, async (proxy) => {
      const enqueued = await client(proxy.url).enqueue("generate-report", report("lost"));
      assert.equal(proxy.seen.length, 2);
      const [first, second] = proxy.seen;
      assert.match(first!.idempotencyKey ?? "", UUID);
      assert.equal(second!.idempotencyKey, first!.idempotencyKey);
      assert.equal(second!.body, first!.body);
      const stored = proxy.answered[0] as { jobId: string };
      assert.equal(enqueued.jobId, stored.jobId); // one job, not two
      assert.equal(enqueued.replayed, true);
    });
  });

  test("the same key with another payload is a typed idempotency_key_reused error", async () => {
    const hookline = client();
    const key = uniqueId("key");
    await hookline.enqueue("generate-report", report("a"), { idempotencyKey: key });
    await assert.rejects(hookline.enqueue("generate-report", report("b"), { idempotencyKey: key }), (error) => {
      assert.ok(error instanceof HooklineError);
      assert.ok(!(error instanceof HooklinePayloadError));
      assert.equal(error.status, 422);
      assert.equal(error.code, "idempotency_key_reused");
      return true;
    });
  });
});

describe("retries", () => {
  test("a 503 with Retry-After: 1 is retried after at least one second, with the same key", async () => {
    const unavailableOnce = (n: number): Plan =>
      n === 0
        ? {
            kind: "answer",
            status: 503,
            headers: { "retry-after": "1" },
            body: { error: "storage_unavailable", detail: "try again later" },
          }
        : { kind: "forward" };
    await withProxy(unavailableOnce, async (proxy) => {
      const enqueued = await client(proxy.url).enqueue("generate-report", report("retry-after"));
      assert.equal(proxy.seen.length, 2);
      const [first, second] = proxy.seen;
      assert.ok(second!.at - first!.at >= 1000, `retried after ${second!.at - first!.at} ms`);
      assert.equal(second!.idempotencyKey, first!.idempotencyKey);
      assert.equal(enqueued.replayed, false);
      assert.equal((await client().getJob(enqueued.jobId)).jobId, enqueued.jobId);
    });
  });

  test("429 is retried too; an HTTP-date Retry-After is honoured", async () => {
    const past = new Date(Date.now() - 5000).toUTCString();
    const limitedOnce = (n: number): Plan =>
      n === 0 ? { kind: "answer", status: 429, headers: { "retry-after": past } } : { kind: "forward" };
    await withProxy(limitedOnce, async (proxy) => {
      const enqueued = await client(proxy.url).enqueue("generate-report", report("429"));
      assert.equal(proxy.seen.length, 2);
      assert.match(enqueued.jobId, /^job_/);
    });
  });

  test("after the last attempt the typed error carries hookline's code and Retry-After", async () => {
    const unavailable = { error: "storage_unavailable", detail: "try again later" };
    const always = (): Plan => ({ kind: "answer", status: 503, headers: { "retry-after": "0" }, body: unavailable });
    await withProxy(always, async (proxy) => {
      await assert.rejects(client(proxy.url, API_KEY, { maxAttempts: 3 }).getJob("job_x"), (error) => {
        assert.ok(error instanceof HooklineError);
        assert.equal(error.status, 503);
        assert.equal(error.code, "storage_unavailable");
        assert.equal(error.detail, "try again later");
        assert.equal(error.retryAfterMs, 0);
        return true;
      });
      assert.equal(proxy.seen.length, 3);
    });
  });

  test("a Retry-After longer than the policy allows is not waited for", async () => {
    const always = (): Plan => ({ kind: "answer", status: 429, headers: { "retry-after": "120" } });
    await withProxy(always, async (proxy) => {
      await assert.rejects(client(proxy.url).enqueue("generate-report", report("long")), (error) => {
        assert.ok(error instanceof HooklineError);
        assert.equal(error.status, 429);
        assert.equal(error.code, "unexpected_response"); // the proxy's answer is not hookline's shape
        assert.equal(error.retryAfterMs, 120_000);
        return true;
      });
      assert.equal(proxy.seen.length, 1);
    });
  });

  test("other errors are not retried: a wrong API key is a typed unauthorized error", async () => {
    await withProxy(() => ({ kind: "forward" }), async (proxy) => {
      await assert.rejects(client(proxy.url, "not-the-key").enqueue("generate-report", report("401")), (error) => {
        assert.ok(error instanceof HooklineError);
        assert.equal(error.status, 401);
        assert.equal(error.code, "unauthorized");
        assert.ok(!error.message.includes("not-the-key"));
        return true;
      });
      assert.equal(proxy.seen.length, 1);
    });
  });

  test("connection errors are retried, then surface as HooklineNetworkError", async () => {
    const port = await closedPort();
    await assert.rejects(client(`http://127.0.0.1:${port}`, API_KEY, { maxAttempts: 2 }).getJob("job_x"), (error) => {
      assert.ok(error instanceof HooklineNetworkError);
      assert.equal(error.attempts, 2);
      return true;
    });
  });
});

describe("typed errors", () => {
  test("a 422 carries pydantic's field errors", async () => {
    const hookline = client();
    // What the generated types would not let through.
    const invalid = { kind: "yearly", report_id: "no spaces allowed" } as unknown as JobPayload<"generate-report">;
    await assert.rejects(hookline.enqueue("generate-report", invalid), (error) => {
      assert.ok(error instanceof HooklinePayloadError);
      assert.ok(error instanceof HooklineError);
      assert.equal(error.status, 422);
      assert.equal(error.code, "invalid_payload");
      assert.deepEqual(
        error.errors.map((e) => [e.loc, e.type]),
        [
          [["kind"], "literal_error"],
          [["report_id"], "string_pattern_mismatch"],
        ],
      );
      assert.ok(error.errors.every((e) => e.msg.length > 0));
      return true;
    });
    const wrongType = { report_id: 42 } as unknown as JobPayload<"generate-report">;
    await assert.rejects(hookline.enqueue("generate-report", wrongType), (error) => {
      assert.ok(error instanceof HooklinePayloadError);
      assert.deepEqual(error.errors[0]!.loc, ["report_id"]);
      assert.equal(error.errors[0]!.type, "string_type");
      return true;
    });
  });

  test("an unknown job id is not_found", async () => {
    await assert.rejects(client().getJob("job_does_not_exist"), (error) => {
      assert.ok(error instanceof HooklineError);
      assert.equal(error.status, 404);
      assert.equal(error.code, "not_found");
      return true;
    });
  });

  test("cancelling a queued job answers cancelled; again is job_finished", async () => {
    const hookline = client();
    const { jobId } = await hookline.enqueue("generate-report", report("cancel"), { delay: "1h" });
    assert.equal((await hookline.cancelJob(jobId)).status, "cancelled");
    await assert.rejects(hookline.cancelJob(jobId), (error) => {
      assert.ok(error instanceof HooklineError);
      assert.equal(error.status, 409);
      assert.equal(error.code, "job_finished");
      return true;
    });
  });
});
