// The BullMQ side of bench/pipeline_e2e.py (started and stopped by it).
//
//   node bench.js receiver   Express: verify the Stripe signature over the raw body
//                            (stripe.webhooks.constructEvent, the documented way), then
//                            queue.add() with jobId = the Stripe event id (dedupe), 200.
//   node bench.js worker     a BullMQ Worker running the same two trivial steps as
//                            bench/handlers_bench.py `trivial`, each step's result kept
//                            with job.updateData() (BullMQ's documented "step job"
//                            pattern, so a retried job skips the finished steps).
//
// Settings come from the environment: PORT, STRIPE_SECRET, REDIS_PORT, REDIS_DB,
// PREFIX, QUEUE, CONCURRENCY. Redis keeps everything in memory; nothing here is
// durable across a Redis crash, unlike hookline's fsynced SQLite commits.
"use strict";

const express = require("express");
const Stripe = require("stripe");
const { Queue, Worker } = require("bullmq");

const env = process.env;
const connection = {
  host: "127.0.0.1",
  port: Number(env.REDIS_PORT || 6379),
  db: Number(env.REDIS_DB || 0),
  maxRetriesPerRequest: null,
};
const prefix = env.PREFIX || "hlbench";
const queueName = env.QUEUE || "webhooks";

function receiver() {
  const stripe = new Stripe("sk_test_unused");
  const secret = env.STRIPE_SECRET;
  const queue = new Queue(queueName, { connection, prefix });
  const app = express();
  app.post("/webhooks/stripe", express.raw({ type: "*/*", limit: "1mb" }), async (req, res) => {
    let event;
    try {
      event = stripe.webhooks.constructEvent(req.body, req.headers["stripe-signature"], secret);
    } catch (err) {
      res.status(400).json({ error: "invalid_signature" });
      return;
    }
    try {
      await queue.add(event.type, event, { jobId: event.id, removeOnComplete: false });
    } catch (err) {
      res.status(503).json({ error: "queue_unavailable" });
      return;
    }
    res.json({ id: event.id, duplicate: false });
  });
  const server = app.listen(Number(env.PORT), "127.0.0.1", () => {
    console.log(`receiver listening on ${env.PORT}`);
  });
  server.keepAliveTimeout = 60_000;
  const stop = () => server.close(() => queue.close().then(() => process.exit(0)));
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

async function first(eventId) {
  return { seen: eventId };
}

// a plain function, as hookline's bench handler's second step is (hookline runs it in a thread)
function second(firstResult) {
  return firstResult.seen.length;
}

async function trivial(job) {
  let data = job.data;
  if (data.first === undefined) {
    data = { ...data, first: await first(data.id) };
    await job.updateData(data);
  }
  if (data.second === undefined) {
    data = { ...data, second: second(data.first) };
    await job.updateData(data);
  }
  return { n: data.second };
}

function worker() {
  const w = new Worker(queueName, trivial, {
    connection,
    prefix,
    concurrency: Number(env.CONCURRENCY || 32),
  });
  w.on("failed", (job, err) => console.error(`job ${job && job.id} failed: ${err}`));
  const stop = () => w.close().then(() => process.exit(0));
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  console.log("worker started");
}

const mode = process.argv[2];
if (mode === "receiver") receiver();
else if (mode === "worker") worker();
else {
  console.error("usage: node bench.js receiver|worker");
  process.exit(2);
}
