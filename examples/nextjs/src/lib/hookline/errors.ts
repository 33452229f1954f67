/**
 * Typed errors of the hookline client. Every error answer of the gateway is
 * `{"error": "<code>", "detail": "<text>"}`; a 422 `invalid_payload` adds pydantic's
 * `errors`. Nothing here holds the API key or a request's headers.
 */
import type { components } from "./schema";

export type PayloadError = components["schemas"]["PayloadError"];

/** The codes the jobs gateway answers with; another code (a proxy's, a newer server's) is still a string. */
export type HooklineErrorCode =
  | "unauthorized"
  | "unknown_job"
  | "not_found"
  | "invalid_json"
  | "invalid_header"
  | "invalid_payload"
  | "idempotency_key_reused"
  | "payload_too_large"
  | "job_finished"
  | "method_not_allowed"
  | "storage_unavailable"
  | "unexpected_response"
  | (string & {});

/** hookline answered with an error status (after the client's own retries, where they apply). */
export class HooklineError extends Error {
  override readonly name: string = "HooklineError";
  readonly status: number;
  readonly code: HooklineErrorCode;
  readonly detail: string;
  /** The server's `Retry-After`, in milliseconds, when it sent one. */
  readonly retryAfterMs: number | null;

  constructor(init: { status: number; code: string; detail: string; retryAfterMs?: number | null }) {
    super(`hookline answered ${init.status} ${init.code}: ${init.detail}`);
    this.status = init.status;
    this.code = init.code;
    this.detail = init.detail;
    this.retryAfterMs = init.retryAfterMs ?? null;
  }
}

/** 422 `invalid_payload`: the payload does not match the job's pydantic model. */
export class HooklinePayloadError extends HooklineError {
  override readonly name = "HooklinePayloadError";
  override readonly code = "invalid_payload" as const;
  /** pydantic's errors: where (`loc`), what (`msg`), and its error `type`. */
  readonly errors: readonly PayloadError[];

  constructor(init: { detail: string; errors: readonly PayloadError[] }) {
    super({ status: 422, code: "invalid_payload", detail: init.detail });
    this.errors = init.errors;
  }
}

/** No answer from hookline after every attempt (connection refused or reset, timeouts). */
export class HooklineNetworkError extends Error {
  override readonly name = "HooklineNetworkError";
  readonly attempts: number;

  constructor(attempts: number, cause: unknown) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    super(`hookline unreachable after ${attempts} attempt(s): ${reason}`, { cause });
    this.attempts = attempts;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isPayloadError(value: unknown): value is PayloadError {
  return (
    isRecord(value) &&
    Array.isArray(value.loc) &&
    typeof value.msg === "string" &&
    typeof value.type === "string"
  );
}

/** The typed error for an error answer; `body` is its parsed JSON (or text, or undefined). */
export function errorFromResponse(response: Response, body: unknown, retryAfterMs: number | null): HooklineError {
  if (isRecord(body) && typeof body.error === "string") {
    const detail = typeof body.detail === "string" ? body.detail : "";
    if (
      response.status === 422 &&
      body.error === "invalid_payload" &&
      Array.isArray(body.errors) &&
      body.errors.every(isPayloadError)
    ) {
      return new HooklinePayloadError({ detail, errors: body.errors });
    }
    return new HooklineError({ status: response.status, code: body.error, detail, retryAfterMs });
  }
  // Not hookline's shape: a proxy or load balancer answered.
  const text = typeof body === "string" ? body.slice(0, 200) : "";
  return new HooklineError({
    status: response.status,
    code: "unexpected_response",
    detail: text || `HTTP ${response.status}`,
    retryAfterMs,
  });
}
