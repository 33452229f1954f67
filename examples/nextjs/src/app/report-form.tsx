"use client";

import { useActionState, useEffect, useState } from "react";

import { generateReport, type GenerateReportState } from "./actions";
import { JobStatusView } from "./job-status";

/** A random key for one form submission (works outside secure contexts too). */
function newKey(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return "form-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

const IDLE: GenerateReportState = { kind: "idle" };

export function ReportForm() {
  const [state, formAction, pending] = useActionState(generateReport, IDLE);
  // Set after hydration (a key rendered on the server would differ from the client's); a
  // submit before that sends none and the server makes one.
  const [key, setKey] = useState("");
  // Controlled, so React does not reset it after the action: a refused value stays to fix.
  const [reportId, setReportId] = useState("q3-revenue");
  useEffect(() => {
    // A new key once a submission is answered; after a failure ("try again") the same
    // key goes again, so a retry cannot enqueue a second job.
    if (state.kind !== "failed") setKey(newKey());
  }, [state]);

  return (
    <>
      <form action={formAction} noValidate>
        <label>
          Report ID
          <input
            name="reportId"
            value={reportId}
            onChange={(event) => setReportId(event.target.value)}
            maxLength={100}
            autoComplete="off"
          />
        </label>
        <input type="hidden" name="idempotencyKey" value={key} />
        <button type="submit" disabled={pending}>
          {pending ? "Enqueueing…" : "Generate report"}
        </button>
      </form>
      {state.kind === "invalid" || state.kind === "failed" ? (
        <p role="alert" className="error" data-testid="form-error">
          <code>{state.error}</code>: {state.detail}
        </p>
      ) : null}
      {state.kind === "accepted" ? (
        <JobStatusView
          key={state.jobId}
          jobId={state.jobId}
          reportId={state.reportId}
          acceptedStatus={state.status}
        />
      ) : null}
    </>
  );
}
