#!/usr/bin/env node
// Makes examples/nextjs ready to run and test, doing only the work that is due:
//   npm ci              when package-lock.json changed since the last install here
//   next build, tsc     when a source, a config or the lockfile changed since the last build
// A stamp holds the SHA-256 of the inputs: node_modules/.hookline-lock.sha256 and
// .next/.hookline-build.sha256 (deleting either directory starts over). `make test` and
// the Python tests run this; on a clean clone (CI) it is exactly `npm ci && npm run build
// && npm run typecheck`. Only Node's standard library is used: it runs before npm ci.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const APP = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const LOCK_STAMP = join(APP, "node_modules", ".hookline-lock.sha256");
const BUILD_STAMP = join(APP, ".next", ".hookline-build.sha256");
const BUILD_INPUTS = ["package.json", "package-lock.json", "next.config.ts", "tsconfig.json", "src", "test", "public"];
const env = { ...process.env, NEXT_TELEMETRY_DISABLED: "1" };

function files(path) {
  if (!existsSync(path)) return [];
  if (!statSync(path).isDirectory()) return [path];
  return readdirSync(path)
    .sort()
    .flatMap((name) => files(join(path, name)));
}

function digest(paths) {
  const hash = createHash("sha256");
  for (const file of paths.flatMap((p) => files(join(APP, p)))) {
    hash.update(relative(APP, file)).update("\0").update(readFileSync(file)).update("\0");
  }
  return hash.digest("hex");
}

function stale(stamp, sha) {
  return !existsSync(stamp) || readFileSync(stamp, "utf8").trim() !== sha;
}

function run(command, args) {
  const started = Date.now();
  console.log(`examples/nextjs: ${command} ${args.join(" ")}`);
  execFileSync(command, args, { cwd: APP, env, stdio: "inherit" });
  console.log(`examples/nextjs: ${command} ${args.join(" ")} took ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

const lockSha = digest(["package-lock.json"]);
if (stale(LOCK_STAMP, lockSha)) {
  run("npm", ["ci", "--no-audit", "--no-fund"]);
  writeFileSync(LOCK_STAMP, lockSha + "\n");
} else {
  console.log("examples/nextjs: node_modules is current (package-lock.json unchanged)");
}

const buildSha = digest(BUILD_INPUTS);
if (stale(BUILD_STAMP, buildSha)) {
  run("npm", ["run", "build"]);
  run("npm", ["run", "typecheck"]);
  writeFileSync(BUILD_STAMP, buildSha + "\n");
} else {
  console.log("examples/nextjs: .next is current (no source changed since the last build)");
}
