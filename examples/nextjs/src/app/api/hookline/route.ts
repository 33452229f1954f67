/**
 * `POST /api/hookline`: hookline's completion callbacks (`ctx.notify` in the handler),
 * signed per Standard Webhooks with `[pipeline] notify_secret`.
 *
 * Verified over the raw body with the `standardwebhooks` package (signature, and a
 * timestamp within 5 minutes); anything else is 401 and is not acted on. hookline retries
 * a callback that did not get a 2xx with the same `webhook-id`, so the id is the dedupe key.
 */
import { Webhook, WebhookVerificationError } from "standardwebhooks";

import { recordCallback } from "@/server/callbacks";
import { hooklineSettings } from "@/server/config";
import { jsonError } from "@/server/http";

const MAX_BODY_BYTES = 1_048_576;

export async function POST(request: Request): Promise<Response> {
  if (Number(request.headers.get("content-length") ?? "0") > MAX_BODY_BYTES) {
    return jsonError(413, "payload_too_large", `at most ${MAX_BODY_BYTES} bytes`);
  }
  const body = await request.text();
  const headers = {
    "webhook-id": request.headers.get("webhook-id") ?? "",
    "webhook-timestamp": request.headers.get("webhook-timestamp") ?? "",
    "webhook-signature": request.headers.get("webhook-signature") ?? "",
  };
  let payload: unknown;
  try {
    payload = new Webhook(hooklineSettings().notifySecret).verify(body, headers);
  } catch (error) {
    if (!(error instanceof WebhookVerificationError)) throw error;
    console.warn(JSON.stringify({ msg: "hookline callback rejected", reason: error.message }));
    return jsonError(401, "invalid_signature", "the callback's signature does not verify");
  }
  const fresh = recordCallback(headers["webhook-id"], payload);
  const fields = typeof payload === "object" && payload !== null ? (payload as Record<string, unknown>) : {};
  // Ids and the type only: a callback's payload may hold what a log should not.
  console.log(
    JSON.stringify({
      msg: fresh ? "hookline callback verified" : "hookline callback verified (duplicate)",
      webhookId: headers["webhook-id"],
      type: fields.type ?? null,
      jobId: fields.jobId ?? null,
    }),
  );
  return new Response(null, { status: 204 });
}
