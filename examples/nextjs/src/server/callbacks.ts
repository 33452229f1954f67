/**
 * What the app does with a verified completion callback. A real app marks the report
 * ready in its database, revalidates a page or emails the user, keyed by `webhook-id` so
 * a redelivered callback changes nothing. This demo keeps them in this process's memory
 * (on globalThis: Route Handlers are bundled separately), which is enough for
 * `next dev`/`next start`; on serverless hosts each instance has its own memory.
 */
import "server-only";

export interface Callback {
  webhookId: string;
  type: string | null;
  receivedAt: string;
}

const MAX_REMEMBERED = 10_000;
const STORE = Symbol.for("hookline-example.callbacks");

interface Memory {
  byWebhookId: Map<string, Callback>;
  byJobId: Map<string, Callback>;
}

function memory(): Memory {
  const global = globalThis as typeof globalThis & { [STORE]?: Memory };
  global[STORE] ??= { byWebhookId: new Map(), byJobId: new Map() };
  return global[STORE];
}

function remember<V>(map: Map<string, V>, key: string, value: V): void {
  if (map.size >= MAX_REMEMBERED) {
    const oldest = map.keys().next().value;
    if (oldest !== undefined) map.delete(oldest);
  }
  map.set(key, value);
}

/** Records a verified callback; false when this `webhook-id` was seen before (a redelivery). */
export function recordCallback(webhookId: string, payload: unknown): boolean {
  const { byWebhookId, byJobId } = memory();
  if (byWebhookId.has(webhookId)) return false;
  const fields = typeof payload === "object" && payload !== null ? (payload as Record<string, unknown>) : {};
  const callback: Callback = {
    webhookId,
    type: typeof fields.type === "string" ? fields.type : null,
    receivedAt: new Date().toISOString(),
  };
  remember(byWebhookId, webhookId, callback);
  if (typeof fields.jobId === "string") remember(byJobId, fields.jobId, callback);
  return true;
}

/** The verified callback about this job, if one arrived. */
export function callbackFor(jobId: string): Callback | null {
  return memory().byJobId.get(jobId) ?? null;
}
