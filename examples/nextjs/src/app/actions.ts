"use server";
/**
 * The Server Action behind the "Generate report" form: the same validation and enqueue as
 * `POST /api/reports`, answered as form state instead of HTTP statuses.
 */
import { HooklineError, HooklineNetworkError, HooklinePayloadError } from "@/lib/hookline/client";
import { enqueueReport, parseIdempotencyKey, parseReportInput } from "@/server/reports";

export type GenerateReportState =
  | { kind: "idle" }
  | { kind: "accepted"; jobId: string; status: string; reportId: string; replayed: boolean }
  | { kind: "invalid"; error: string; detail: string }
  | { kind: "failed"; error: string; detail: string };

export async function generateReport(
  _previous: GenerateReportState,
  form: FormData,
): Promise<GenerateReportState> {
  const reportId = form.get("reportId");
  const input = parseReportInput({ reportId: typeof reportId === "string" ? reportId : undefined });
  if (!input.ok) return { kind: "invalid", error: input.error, detail: input.detail };
  // One key per form submission (a hidden field the page renews after each accepted
  // submit): a resubmit of the same form, or a retry, enqueues one job.
  const rawKey = form.get("idempotencyKey");
  const key = parseIdempotencyKey(typeof rawKey === "string" ? rawKey : undefined);
  if (!key.ok) return { kind: "invalid", error: key.error, detail: key.detail };

  try {
    const job = await enqueueReport(input.value, key.value);
    return { kind: "accepted", jobId: job.jobId, status: job.status, reportId: input.value.reportId, replayed: job.replayed };
  } catch (error) {
    if (error instanceof HooklinePayloadError) {
      return { kind: "invalid", error: error.code, detail: error.errors.map((e) => `${e.loc.join(".")}: ${e.msg}`).join("; ") };
    }
    if (error instanceof HooklineNetworkError) {
      return { kind: "failed", error: "hookline_unavailable", detail: "hookline did not answer; try again" };
    }
    if (error instanceof HooklineError) {
      console.error(JSON.stringify({ msg: "hookline refused the request", status: error.status, code: error.code }));
      return { kind: "failed", error: error.code, detail: error.detail };
    }
    throw error;
  }
}
