/**
 * What the client tests need: a live hookline (HOOKLINE_URL / HOOKLINE_API_KEY, default
 * the demo server `make run` starts) and a small proxy in front of it that can answer
 * 503/429 or drop a connection on chosen requests, recording what the client sent.
 */
import { once } from "node:events";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export const HOOKLINE_URL = process.env.HOOKLINE_URL || "http://127.0.0.1:8400";
export const API_KEY = process.env.HOOKLINE_API_KEY || "demo-api-key";

export async function requireHookline(): Promise<void> {
  try {
    const response = await fetch(new URL("/readyz", HOOKLINE_URL));
    if (response.ok) return;
    throw new Error(`readyz answered ${response.status}`);
  } catch (error) {
    throw new Error(
      `these tests need a live hookline at ${HOOKLINE_URL} (\`make run\` in the repository, ` +
        `or set HOOKLINE_URL and HOOKLINE_API_KEY): ${String(error)}`,
    );
  }
}

export function uniqueId(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
}

export interface Seen {
  method: string;
  path: string;
  idempotencyKey: string | null;
  authorization: string | null;
  body: string;
  /** performance.now() when the proxy had the whole request */
  at: number;
}

/** What the proxy does with request number n (0-based). */
export type Plan =
  | { kind: "forward" }
  | { kind: "answer"; status: number; headers?: Record<string, string>; body?: unknown }
  /** forward to hookline (it acts on the request), then cut the connection: the answer is lost */
  | { kind: "forward-then-drop" };

export interface Proxy {
  url: string;
  seen: Seen[];
  /** The bodies hookline answered to forwarded requests, in order. */
  answered: unknown[];
  close(): Promise<void>;
}

async function readBody(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

export async function startProxy(plan: (n: number) => Plan): Promise<Proxy> {
  const seen: Seen[] = [];
  const answered: unknown[] = [];
  const server = createServer(async (request: IncomingMessage, response: ServerResponse) => {
    const body = await readBody(request);
    const n = seen.length;
    seen.push({
      method: request.method ?? "",
      path: request.url ?? "",
      idempotencyKey: request.headers["idempotency-key"]?.toString() ?? null,
      authorization: request.headers.authorization ?? null,
      body,
      at: performance.now(),
    });
    const step = plan(n);
    if (step.kind === "answer") {
      response.writeHead(step.status, { "content-type": "application/json", ...step.headers });
      response.end(step.body === undefined ? "" : JSON.stringify(step.body));
      return;
    }
    const headers = new Headers();
    for (const name of ["authorization", "content-type", "idempotency-key", "hookline-delay"]) {
      const value = request.headers[name];
      if (typeof value === "string") headers.set(name, value);
    }
    const upstream = await fetch(new URL(request.url ?? "/", HOOKLINE_URL), {
      method: request.method,
      headers,
      body: request.method === "GET" ? undefined : body,
    });
    const text = await upstream.text();
    answered.push(text ? JSON.parse(text) : null);
    if (step.kind === "forward-then-drop") {
      request.socket.destroy();
      return;
    }
    const replayed = upstream.headers.get("idempotent-replayed");
    response.writeHead(upstream.status, {
      "content-type": "application/json",
      ...(replayed ? { "idempotent-replayed": replayed } : {}),
    });
    response.end(text);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    answered,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Runs `use` with a proxy that is closed afterwards, whatever happens. */
export async function withProxy<T>(plan: (n: number) => Plan, use: (proxy: Proxy) => Promise<T>): Promise<T> {
  const proxy = await startProxy(plan);
  try {
    return await use(proxy);
  } finally {
    await proxy.close();
  }
}

/** A port nothing listens on (bound, then released). */
export async function closedPort(): Promise<number> {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
