"use client";

import { useEffect, useState } from "react";

import type { JobStatus } from "@/lib/hookline/client"; // a type only: nothing of the client ships to the browser

interface JobView {
  status: JobStatus;
  attempts: number;
  result: unknown;
  error: string | null;
  callback: { webhookId: string; type: string | null; receivedAt: string } | null;
}

const FINISHED: ReadonlySet<string> = new Set(["succeeded", "failed", "cancelled"]);
const FIRST_POLL_MS = 250;
const MAX_POLL_MS = 3_000;

/**
 * Follows a job through `GET /api/reports/{jobId}` until it has finished: polls with
 * backoff (250 ms growing ×1.5 to 3 s, back to 250 ms whenever the status changes), and
 * keeps polling through this app's or hookline's brief outages.
 */
export function JobStatusView({
  jobId,
  reportId,
  acceptedStatus,
}: {
  jobId: string;
  reportId: string;
  acceptedStatus: string;
}) {
  const [job, setJob] = useState<JobView>({
    status: acceptedStatus as JobStatus,
    attempts: 0,
    result: null,
    error: null,
    callback: null,
  });
  const [problem, setProblem] = useState<string | null>(null);

  useEffect(() => {
    const controller = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    let delay = FIRST_POLL_MS;
    let last: string = acceptedStatus;

    async function poll() {
      try {
        const response = await fetch(`/api/reports/${encodeURIComponent(jobId)}`, {
          cache: "no-store",
          signal: controller.signal,
        });
        if (response.ok) {
          const view = (await response.json()) as JobView;
          setJob(view);
          setProblem(null);
          if (FINISHED.has(view.status)) return;
          delay = view.status === last ? Math.min(delay * 1.5, MAX_POLL_MS) : FIRST_POLL_MS;
          last = view.status;
        } else if (response.status === 404) {
          setProblem("hookline does not know this job");
          return;
        } else {
          setProblem(`status unavailable (HTTP ${response.status}); retrying`);
          delay = Math.min(delay * 2, MAX_POLL_MS);
        }
      } catch {
        if (controller.signal.aborted) return;
        setProblem("status unavailable; retrying");
        delay = Math.min(delay * 2, MAX_POLL_MS);
      }
      timer = setTimeout(poll, delay);
    }

    timer = setTimeout(poll, delay);
    return () => {
      controller.abort();
      clearTimeout(timer);
    };
  }, [jobId, acceptedStatus]);

  return (
    <section aria-live="polite" aria-label="Report job">
      <h2>Report {reportId}</h2>
      <dl>
        <dt>Job</dt>
        <dd>
          <code data-testid="job-id">{jobId}</code>
        </dd>
        <dt>Enqueued</dt>
        <dd data-testid="accepted-status">{acceptedStatus}</dd>
        <dt>Status</dt>
        <dd>
          <span className="status" data-testid="live-status" data-status={job.status}>
            {job.status}
          </span>
        </dd>
        <dt>Attempts</dt>
        <dd data-testid="attempts">{job.attempts}</dd>
        <dt>Callback</dt>
        <dd data-testid="callback">
          {job.callback ? (
            <>
              verified <code>{job.callback.type}</code> ({job.callback.webhookId})
            </>
          ) : (
            "not yet"
          )}
        </dd>
      </dl>
      {job.error ? (
        <p className="error" data-testid="job-error">
          {job.error}
        </p>
      ) : null}
      {problem ? <p className="error">{problem}</p> : null}
      {job.status === "succeeded" ? (
        <>
          <h3>Result</h3>
          <pre data-testid="result">{JSON.stringify(job.result, null, 2)}</pre>
        </>
      ) : null}
    </section>
  );
}
