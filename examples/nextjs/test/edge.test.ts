/**
 * The client is fetch-only, so it runs on the Edge runtime (and Workers, Deno, browsers):
 * bundled for the browser platform (a Node built-in cannot even be resolved) and run in a
 * fresh V8 context that has the Web APIs the Edge runtime offers and none of Node's
 * (`process`, `Buffer`, `require`), against the live hookline.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { createContext, runInContext } from "node:vm";
import { before, test } from "node:test";

import { build } from "esbuild";

import type * as Client from "../src/lib/hookline/client";
import { API_KEY, HOOKLINE_URL, requireHookline, uniqueId } from "./support";

const ENTRY = fileURLToPath(new URL("../src/lib/hookline/client.ts", import.meta.url));

/** Web APIs the Edge runtime offers (https://nextjs.org/docs/app/api-reference/edge), and nothing of Node's. */
const EDGE_GLOBALS = [
  "fetch", "Request", "Response", "Headers", "FormData", "Blob", "File", "URL", "URLSearchParams",
  "AbortController", "AbortSignal", "ReadableStream", "WritableStream", "TransformStream",
  "TextEncoder", "TextDecoder", "crypto", "performance", "setTimeout", "clearTimeout",
  "setInterval", "clearInterval", "queueMicrotask", "structuredClone", "atob", "btoa",
  "Event", "EventTarget", "DOMException", "console",
] as const;

function edgeGlobals(): Record<string, unknown> {
  return Object.fromEntries(EDGE_GLOBALS.map((name) => [name, globalThis[name]]));
}

before(requireHookline);

test("the client bundles for the browser platform and runs without Node's globals", async () => {
  const output = await build({
    entryPoints: [ENTRY],
    bundle: true,
    format: "iife",
    globalName: "hooklineClient",
    platform: "browser",
    target: "es2022",
    write: false,
    metafile: true,
    logLevel: "silent",
  });
  const inputs = Object.keys(output.metafile.inputs).map((path) => path.replace(/^.*node_modules\//, ""));
  assert.deepEqual(
    inputs.filter((path) => !path.startsWith("src/lib/hookline/")),
    ["openapi-fetch/dist/index.mjs"],
  );

  const context = createContext(edgeGlobals());
  for (const name of ["process", "Buffer", "require", "setImmediate", "module"]) {
    assert.equal(runInContext(`typeof ${name}`, context), "undefined");
  }
  runInContext(output.outputFiles[0]!.text, context);
  const edge = (context as { hooklineClient: typeof Client }).hooklineClient;

  const hookline = edge.createHooklineClient({ baseUrl: HOOKLINE_URL, apiKey: API_KEY });
  const key = uniqueId("edge");
  const payload = { report_id: uniqueId("edge") };
  const first = await hookline.enqueue("generate-report", payload, { idempotencyKey: key });
  const again = await hookline.enqueue("generate-report", payload, { idempotencyKey: key });
  assert.equal(again.jobId, first.jobId);
  assert.equal(again.replayed, true);
  assert.equal((await hookline.getJob(first.jobId)).name, "generate-report");
  const invalid = { kind: "yearly" } as unknown as typeof payload;
  await assert.rejects(hookline.enqueue("generate-report", invalid), (error: unknown) => {
    assert.ok(error instanceof edge.HooklinePayloadError);
    assert.equal(JSON.stringify(error.errors[0]?.loc), '["kind"]'); // an array of the other realm
    return true;
  });
});
