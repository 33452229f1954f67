"""Example handlers, loaded by the demo config (``[pipeline] handlers``).

They show the shape of real continuation code: every side effect sits in a
named step, so a retry, a crash or a ``resume`` redelivery never repeats one
that already succeeded. The "external systems" here are local files so the
demo runs with nothing else installed; swap in your real API calls.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from hookline import Context, Event, NonRetryableError, handler

OUTBOX = Path(os.environ.get("HOOKLINE_DEMO_OUTBOX", "demo-outbox"))


def _write(kind: str, record: dict[str, Any]) -> None:
    OUTBOX.mkdir(parents=True, exist_ok=True)
    with (OUTBOX / f"{kind}.jsonl").open("a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


# -- Stripe: fulfil a paid checkout ------------------------------------------------------------


def create_order(session: dict[str, Any]) -> dict[str, Any]:
    """Your database insert. Returns what later steps need (stored as the step's result)."""
    details = session.get("customer_details") or {}
    email = details.get("email") or session.get("customer_email")
    if not email:
        raise NonRetryableError("checkout session has no customer email; cannot fulfil")
    order = {
        "id": f"ord_{session['id'][-12:]}",
        "email": email,
        "amount": session.get("amount_total"),
        "currency": session.get("currency"),
        "created": time.time(),
    }
    _write("orders", order)
    return order


def send_receipt(email: str, order_id: str, *, idempotency_key: str) -> dict[str, Any]:
    """Your email provider's API call; pass the key so a provider-side retry is deduped."""
    _write("emails", {"to": email, "order": order_id, "idempotency_key": idempotency_key})
    return {"sent_to": email}


@handler("stripe", "checkout.session.completed", max_attempts=5)
async def fulfil_order(event: Event, ctx: Context) -> dict[str, Any]:
    session = event.data["data"]["object"]
    if session.get("payment_status") not in ("paid", "no_payment_required"):
        return {"skipped": f"payment_status={session.get('payment_status')}"}
    order = await ctx.step("create-order", create_order, session)
    await ctx.step(
        "email-receipt",
        send_receipt,
        order["email"],
        order["id"],
        idempotency_key=ctx.idempotency_key("email-receipt"),
    )
    if ctx.notify_enabled:
        await ctx.step("notify-app", ctx.notify, {"type": "order.created", "order": order["id"]})
    return {"order": order["id"]}


@handler(
    "stripe",
    "customer.subscription.*",
    concurrency_key=lambda e: e.data["data"]["object"].get("customer"),
)
async def sync_subscription(event: Event, ctx: Context) -> dict[str, Any]:
    """Subscription changes of one customer apply one at a time, in arrival order."""
    sub = event.data["data"]["object"]
    record = {"customer": sub.get("customer"), "subscription": sub["id"], "status": sub["status"]}
    await ctx.step("store-subscription", _write, "subscriptions", record)
    return record


# -- GitHub: review a pull request --------------------------------------------------------------


def summarize_changes(pr: dict[str, Any]) -> dict[str, Any]:
    return {
        "additions": pr.get("additions", 0),
        "deletions": pr.get("deletions", 0),
        "files": pr.get("changed_files", 0),
    }


def post_comment(repo: str, number: int, body: str) -> dict[str, Any]:
    """Your GitHub API call (POST /repos/{repo}/issues/{number}/comments)."""
    _write("github-comments", {"repo": repo, "pr": number, "body": body})
    return {"posted": True}


def add_label(repo: str, number: int, label: str) -> str:
    _write("github-labels", {"repo": repo, "pr": number, "label": label})
    return label


@handler("github", "pull_request.opened")
async def review_pull_request(event: Event, ctx: Context) -> dict[str, Any]:
    pr = event.data["pull_request"]
    repo = event.data["repository"]["full_name"]
    stats = await ctx.step("summarize", summarize_changes, pr)
    size = "size/L" if stats["additions"] + stats["deletions"] > 500 else "size/S"
    # Independent side effects run concurrently; each is memoized on its own.
    await ctx.gather(
        ctx.step("label-size", add_label, repo, pr["number"], size),
        ctx.step("label-triage", add_label, repo, pr["number"], "needs-review"),
    )
    await ctx.step(
        "welcome-comment",
        post_comment,
        repo,
        pr["number"],
        f"Thanks! {stats['files']} files changed (+{stats['additions']}/-{stats['deletions']}).",
    )
    return {"pr": pr["number"], "label": size}


# -- A job your app enqueues: POST /jobs/generate-report ----------------------------------------


class ReportRequest(BaseModel):
    """The payload of ``generate-report``; the gateway answers 422 when a request breaks it."""

    model_config = ConfigDict(extra="ignore")  # e.g. a schedule's "scheduledFor"

    kind: Literal["daily", "weekly", "custom"] = "custom"
    report_id: str | None = Field(None, min_length=1, max_length=100, pattern=r"^[\w.-]+$")
    email: str | None = Field(None, max_length=320, description="Where to send the link")
    notify: bool = Field(
        False, description="POST a signed callback to the app ([pipeline] notify_url) when done"
    )


# Rendering is the slow part, which is why it is a job: the demo takes this long (seconds).
RENDER_SECONDS = float(os.environ.get("HOOKLINE_DEMO_RENDER_SECONDS", "2"))


def render_pdf(report_id: str, kind: str, *, api_key: str) -> dict[str, Any]:
    """Your PDF service's API call (authenticated with a secret from [secrets])."""
    time.sleep(RENDER_SECONDS)
    body = f"%PDF-1.7 demo {kind} report {report_id}\n".encode()
    folder = OUTBOX / "reports"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{report_id}.pdf").write_bytes(body)
    # The demo records only *that* a key was used, never the key itself.
    signed_with = hashlib.sha256(api_key.encode()).hexdigest()[:8]
    return {"file": f"reports/{report_id}.pdf", "bytes": len(body), "key": signed_with}


def publish_report(report_id: str, pdf: dict[str, Any], email: str | None) -> dict[str, Any]:
    """Your storage upload and e-mail; returns where the report now lives."""
    url = f"https://reports.example.com/{report_id}.pdf"
    _write("reports", {"report": report_id, "url": url, "bytes": pdf["bytes"], "to": email})
    return {"url": url}


@handler(job="generate-report", payload=ReportRequest)
async def generate_report(event: Event, ctx: Context) -> dict[str, Any]:
    req = ReportRequest.model_validate(event.data)
    report_id = req.report_id or f"{req.kind}-{event.id}"
    pdf = await ctx.step("render", render_pdf, report_id, req.kind, api_key=ctx.secrets["pdf_api"])
    published = await ctx.step("publish", publish_report, report_id, pdf, req.email)
    if req.notify and ctx.notify_enabled:  # tell the app, signed per Standard Webhooks
        ready = {"type": "report.ready", "jobId": event.id, "reportId": report_id}
        await ctx.step("notify-app", ctx.notify, {**ready, "url": published["url"]})
    return {"reportId": report_id, "url": published["url"]}
