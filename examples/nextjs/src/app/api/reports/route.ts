/**
 * `POST /api/reports` `{"reportId": "<non-empty string>"}` → 202 `{"jobId", "status": "queued"}`.
 *
 * Validates first (400 `{"error", "detail"}`, hookline is not called), enqueues hookline's
 * `generate-report` job and answers as soon as hookline has stored it — the report itself
 * is rendered later by hookline's workers. An `Idempotency-Key` header from the caller is
 * passed on, so a retried request enqueues one job.
 */
import { hooklineFailure, jsonError } from "@/server/http";
import { parseIdempotencyKey, parseReportInput, enqueueReport } from "@/server/reports";

const MAX_BODY_BYTES = 16_384;

export async function POST(request: Request): Promise<Response> {
  const declared = Number(request.headers.get("content-length") ?? "0");
  if (declared > MAX_BODY_BYTES) return jsonError(413, "payload_too_large", `at most ${MAX_BODY_BYTES} bytes`);
  const text = await request.text();
  if (text.length > MAX_BODY_BYTES) return jsonError(413, "payload_too_large", `at most ${MAX_BODY_BYTES} bytes`);
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return jsonError(400, "invalid_json", "the body is not JSON");
  }
  const input = parseReportInput(body);
  if (!input.ok) return jsonError(400, input.error, input.detail);
  const key = parseIdempotencyKey(request.headers.get("idempotency-key"));
  if (!key.ok) return jsonError(400, "invalid_header", key.detail);

  try {
    const job = await enqueueReport(input.value, key.value);
    return Response.json(
      { jobId: job.jobId, status: job.status },
      { status: 202, headers: { Location: `/api/reports/${encodeURIComponent(job.jobId)}` } },
    );
  } catch (error) {
    return hooklineFailure(error);
  }
}
