/**
 * `GET /api/reports/{jobId}` → the job's live status, for the page's status view, and
 * whether hookline's signed completion callback for it has arrived.
 */
import { callbackFor } from "@/server/callbacks";
import { hooklineFailure } from "@/server/http";
import { getReportJob } from "@/server/reports";

export async function GET(_request: Request, context: { params: Promise<{ jobId: string }> }): Promise<Response> {
  const { jobId } = await context.params;
  try {
    const job = await getReportJob(jobId);
    return Response.json(
      {
        jobId: job.jobId,
        status: job.status,
        attempts: job.attempts,
        result: job.result,
        error: job.error,
        updatedAt: job.updatedAt,
        callback: callbackFor(job.jobId),
      },
      { headers: { "Cache-Control": "no-store" } },
    );
  } catch (error) {
    return hooklineFailure(error);
  }
}
