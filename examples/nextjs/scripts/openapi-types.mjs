#!/usr/bin/env node
// Generates src/lib/hookline/schema.d.ts from hookline's jobs OpenAPI document, or with
// --check fails (exit 1) when the committed file differs from what the document gives.
//
//   node scripts/openapi-types.mjs [--check] [--url URL | --openapi FILE] [--types PATH]
//
// The document comes from a live server (--url: GET URL/jobs/openapi.json with
// $HOOKLINE_API_KEY, default the demo key), from a file (--openapi, e.g. written by
// `hookline jobs openapi --out F`), or by default from `hookline jobs openapi` with the
// repository's demo config (hookline from $HOOKLINE_BIN, else ../../.venv/bin/hookline,
// else PATH) — the config whose generate-report job this app enqueues.
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

import openapiTS, { COMMENT_HEADER, astToString } from "openapi-typescript";

const APP = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const REPO = resolve(APP, "..", "..");
const DEFAULT_TYPES = join(APP, "src", "lib", "hookline", "schema.d.ts");

const { values } = parseArgs({
  options: {
    check: { type: "boolean", default: false },
    url: { type: "string" },
    openapi: { type: "string" },
    types: { type: "string", default: DEFAULT_TYPES },
  },
});

async function loadDocument() {
  if (values.openapi) return JSON.parse(readFileSync(values.openapi, "utf8"));
  if (values.url) {
    const key = process.env.HOOKLINE_API_KEY || "demo-api-key";
    const response = await fetch(new URL("/jobs/openapi.json", values.url), {
      headers: { Authorization: `Bearer ${key}` },
    });
    if (!response.ok) throw new Error(`GET /jobs/openapi.json answered ${response.status}`);
    return response.json();
  }
  const venv = join(REPO, ".venv", "bin", "hookline");
  const hookline = process.env.HOOKLINE_BIN || (existsSync(venv) ? venv : "hookline");
  const config = join(REPO, "hookline.example.toml");
  const text = execFileSync(hookline, ["jobs", "openapi", "--config", config], {
    cwd: REPO, // the demo config's handlers are the module examples.handlers
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  });
  return JSON.parse(text);
}

function firstDifference(expected, actual) {
  const a = expected.split("\n");
  const b = actual.split("\n");
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if (a[i] !== b[i]) {
      return `line ${i + 1}:\n  committed: ${JSON.stringify(b[i] ?? "<end of file>")}\n  generated: ${JSON.stringify(a[i] ?? "<end of file>")}`;
    }
  }
  return "";
}

const document = await loadDocument();
// defaultNonNullable: false — a field with a default may be left out of a payload (the
// gateway's pydantic model fills it in), so it is optional in the request type.
const generated = COMMENT_HEADER + astToString(await openapiTS(document, { defaultNonNullable: false }));
const target = resolve(values.types);
const shown = relative(process.cwd(), target) || target;

if (values.check) {
  const committed = existsSync(target) ? readFileSync(target, "utf8") : "";
  if (committed !== generated) {
    console.error(
      `${shown} has drifted from hookline's jobs OpenAPI document (first difference at ${firstDifference(generated, committed)})\n` +
        "Regenerate it with `npm run types:generate` and commit it.",
    );
    process.exit(1);
  }
  console.log(`${shown} matches hookline's jobs OpenAPI document`);
} else {
  writeFileSync(target, generated);
  console.log(`wrote ${shown}`);
}
