/**
 * The report use case, shared by the Server Action and the Route Handler: validate the
 * browser's input, then enqueue hookline's `generate-report` job and return at once.
 *
 * The browser speaks camelCase (`{"reportId": "..."}`); the job's pydantic model is
 * `ReportRequest` (`report_id`, plus `kind`, `email` and `notify`, which have defaults), so
 * the mapping happens here, in one place, typed by the generated
 * `JobPayload<"generate-report">`: `{"reportId": id}` → `{"report_id": id, "notify": true}`
 * (the app wants hookline's completion callback on `/api/hookline`).
 */
import "server-only";

import { createHooklineClient, type Enqueued, type HooklineClient, type JobPayload } from "@/lib/hookline/client";

import { hooklineSettings } from "./config";

/**
 * The job model's rules for `report_id` (at most 100 characters of `[\w.-]`), in ASCII:
 * pydantic's `\w` also takes non-ASCII letters, so whatever passes here passes there too,
 * and a request the job would refuse is a 400 here rather than hookline's 422.
 */
export const MAX_REPORT_ID_CHARS = 100;
const REPORT_ID = /^[A-Za-z0-9_.-]+$/;
export const MAX_IDEMPOTENCY_KEY_CHARS = 255;

export interface ReportInput {
  reportId: string;
}

export type Invalid = { ok: false; error: "invalid_input"; detail: string };
export type Parsed<T> = { ok: true; value: T } | Invalid;

function invalid(detail: string): Invalid {
  return { ok: false, error: "invalid_input", detail };
}

/** `{"reportId": "<non-empty string>"}`: surrounding spaces trimmed, then the job's rules. */
export function parseReportInput(value: unknown): Parsed<ReportInput> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return invalid('send a JSON object: {"reportId": "<non-empty string>"}');
  }
  const reportId = (value as Record<string, unknown>).reportId;
  if (typeof reportId !== "string") return invalid("reportId must be a string");
  const trimmed = reportId.trim();
  if (trimmed === "") return invalid("reportId must not be empty");
  if (trimmed.length > MAX_REPORT_ID_CHARS) {
    return invalid(`reportId must be at most ${MAX_REPORT_ID_CHARS} characters`);
  }
  if (!REPORT_ID.test(trimmed)) {
    return invalid("reportId may contain only letters, digits, '_', '.' and '-'");
  }
  return { ok: true, value: { reportId: trimmed } };
}

/** An optional caller-chosen key: 1-255 printable ASCII characters (what hookline accepts). */
export function parseIdempotencyKey(value: string | null | undefined): Parsed<string | undefined> {
  if (value === null || value === undefined || value === "") return { ok: true, value: undefined };
  if (value.length > MAX_IDEMPOTENCY_KEY_CHARS || !/^[\x20-\x7e]+$/.test(value)) {
    return invalid(`Idempotency-Key must be 1-${MAX_IDEMPOTENCY_KEY_CHARS} printable ASCII characters`);
  }
  return { ok: true, value };
}

let client: HooklineClient | null = null;
let clientFor = "";

function hookline(): HooklineClient {
  const { url, apiKey } = hooklineSettings();
  const identity = `${url}\n${apiKey}`;
  if (client === null || clientFor !== identity) {
    client = createHooklineClient({
      baseUrl: url,
      apiKey,
      onRetry: (notice) => console.warn(JSON.stringify({ msg: "hookline call retried", ...notice })),
    });
    clientFor = identity;
  }
  return client;
}

export function toJobPayload(input: ReportInput): JobPayload<"generate-report"> {
  return { report_id: input.reportId, notify: true };
}

export function enqueueReport(input: ReportInput, idempotencyKey?: string): Promise<Enqueued> {
  return hookline().enqueue("generate-report", toJobPayload(input), { idempotencyKey });
}

export function getReportJob(jobId: string) {
  return hookline().getJob(jobId);
}
