import { ReportForm } from "./report-form";

export default function Home() {
  return (
    <main>
      <h1>Reports</h1>
      <p>
        The form calls a Server Action, which enqueues hookline&apos;s <code>generate-report</code> job and returns
        as soon as hookline has stored it. hookline&apos;s workers render the report; this page follows the job until it
        has succeeded.
      </p>
      <ReportForm />
    </main>
  );
}
