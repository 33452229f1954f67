/** JSON answers of this app's Route Handlers, and what a hookline failure becomes. */
import "server-only";

import { HooklineError, HooklineNetworkError, HooklinePayloadError } from "@/lib/hookline/client";

export function jsonError(status: number, error: string, detail: string, headers?: HeadersInit): Response {
  return Response.json({ error, detail }, { status, headers });
}

/**
 * hookline down or overloaded → 503 with `Retry-After` (the browser may try again);
 * an error about this request's input → its status and code; anything else (a wrong API
 * key, a job hookline does not know) is this app's misconfiguration → 502.
 */
export function hooklineFailure(error: unknown): Response {
  if (error instanceof HooklineNetworkError) {
    return jsonError(503, "hookline_unavailable", "hookline did not answer; try again", { "Retry-After": "1" });
  }
  if (!(error instanceof HooklineError)) throw error;
  if (error.status === 503 || error.status === 429) {
    const seconds = Math.max(1, Math.ceil((error.retryAfterMs ?? 1000) / 1000));
    return jsonError(503, "hookline_unavailable", error.detail, { "Retry-After": String(seconds) });
  }
  if (error instanceof HooklinePayloadError) {
    return Response.json({ error: error.code, detail: error.detail, errors: error.errors }, { status: 422 });
  }
  if ([400, 404, 413, 422].includes(error.status) && error.code !== "unknown_job") {
    return jsonError(error.status, error.code, error.detail);
  }
  console.error(JSON.stringify({ msg: "hookline refused the request", status: error.status, code: error.code }));
  return jsonError(502, "hookline_error", `hookline answered ${error.status} ${error.code}`);
}
