/**
 * A typed client for hookline's jobs gateway.
 *
 * The types come from the server's own `GET /jobs/openapi.json` (`schema.d.ts`, generated
 * by openapi-typescript; `npm run types:check` fails when it drifts). Calls go through
 * openapi-fetch over `retryingFetch`. Only `fetch`, `Request`, `Response`, `AbortController`,
 * `setTimeout` and `crypto.randomUUID` are used: the module runs on the Edge runtime, in
 * Node and in workers alike. It takes the API key as an argument and never reads the
 * environment, so it is the caller's job to keep the key on the server.
 */
import createClient from "openapi-fetch";

import { errorFromResponse } from "./errors";
import { DEFAULT_RETRY, type FetchLike, type RetryNotice, type RetryPolicy, parseRetryAfter, retryingFetch } from "./retry";
import type { components, paths } from "./schema";

export { HooklineError, HooklineNetworkError, HooklinePayloadError } from "./errors";
export type { HooklineErrorCode, PayloadError } from "./errors";
export { DEFAULT_RETRY, parseRetryAfter } from "./retry";
export type { RetryNotice, RetryPolicy } from "./retry";

export type Job = components["schemas"]["Job"];
export type JobStatus = Job["status"];
export type JobAccepted = components["schemas"]["JobAccepted"];

/** A path that enqueues a job: `POST` with a JSON request body. */
type EnqueuePath = {
  [P in keyof paths]: paths[P] extends { post: { requestBody: { content: { "application/json": unknown } } } }
    ? P
    : never;
}[keyof paths];

/** The names of the configured jobs, e.g. `"generate-report"`. */
export type JobName = EnqueuePath extends `/jobs/${infer Name}` ? Name : never;

/** The payload a job's model accepts (its JSON Schema, as a TypeScript type). */
export type JobPayload<Name extends JobName> =
  paths[`/jobs/${Name}`]["post"]["requestBody"]["content"]["application/json"];

export interface HooklineClientOptions {
  /** hookline's base URL, e.g. `http://127.0.0.1:8400`. */
  baseUrl: string;
  /** A key of hookline's `[api] keys`. Server-side only. */
  apiKey: string;
  retry?: Partial<RetryPolicy>;
  /** Defaults to the global `fetch` (looked up at call time, so framework patches apply). */
  fetch?: FetchLike;
  onRetry?: (notice: RetryNotice) => void;
}

export interface EnqueueOptions {
  /**
   * Names this logical call: sent on every attempt, so a retry after a lost answer finds the
   * job the first attempt stored. A new random key when omitted; pass your own (e.g. from
   * the form submission) to make a user's repeated submit enqueue one job.
   */
  idempotencyKey?: string;
  /** Do not run before this delay: `30` (seconds), `30s`, `5m`, `2h`, `1d`. */
  delay?: string;
  signal?: AbortSignal;
}

export interface Enqueued extends JobAccepted {
  /** The key that was sent (the one given, or the generated one). */
  idempotencyKey: string;
  /** True when the key named an existing job (`Idempotent-Replayed: true`): nothing new was enqueued. */
  replayed: boolean;
}

export interface HooklineClient {
  enqueue<Name extends JobName>(name: Name, payload: JobPayload<Name>, options?: EnqueueOptions): Promise<Enqueued>;
  getJob(jobId: string, options?: { signal?: AbortSignal }): Promise<Job>;
  cancelJob(jobId: string, options?: { signal?: AbortSignal }): Promise<JobAccepted>;
}

async function fail(response: Response, body: unknown): Promise<never> {
  throw errorFromResponse(response, body, parseRetryAfter(response.headers.get("retry-after")));
}

export function createHooklineClient(options: HooklineClientOptions): HooklineClient {
  const policy: RetryPolicy = { ...DEFAULT_RETRY, ...options.retry };
  const transport: FetchLike = options.fetch ?? ((request) => globalThis.fetch(request));
  const api = createClient<paths>({
    baseUrl: options.baseUrl.replace(/\/+$/, ""),
    headers: { Authorization: `Bearer ${options.apiKey}` },
    fetch: retryingFetch(transport, policy, options.onRetry),
  });

  return {
    async enqueue(name, payload, { idempotencyKey, delay, signal } = {}) {
      const key = idempotencyKey ?? crypto.randomUUID();
      const header: Record<string, string> = { "Idempotency-Key": key };
      if (delay !== undefined) header["Hookline-Delay"] = delay;
      // openapi-fetch cannot relate a generic job name to its path's body type; the
      // signature of `enqueue` already did (payload: JobPayload<Name>).
      const path = `/jobs/${name}` as EnqueuePath;
      const { data, error, response } = await api.POST(path, {
        body: payload as JobPayload<JobName>,
        params: { header },
        signal,
      });
      if (data === undefined) return fail(response, error);
      return {
        jobId: data.jobId,
        status: data.status,
        idempotencyKey: key,
        replayed: response.headers.get("idempotent-replayed") === "true",
      };
    },

    async getJob(jobId, { signal } = {}) {
      const { data, error, response } = await api.GET("/jobs/{jobId}", {
        params: { path: { jobId } },
        signal,
      });
      if (data === undefined) return fail(response, error);
      return data;
    },

    async cancelJob(jobId, { signal } = {}) {
      const { data, error, response } = await api.POST("/jobs/{jobId}/cancel", {
        params: { path: { jobId } },
        signal,
      });
      if (data === undefined) return fail(response, error);
      return data;
    },
  };
}
