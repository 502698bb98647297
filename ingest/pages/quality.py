"""Data quality: the banner on every page when the numbers may be incomplete, the list behind
it, and an admin's button that queues failed rows again (logged with who pressed it)."""

from __future__ import annotations

import logging

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from ingest.auth import admin_only, current_user
from ingest.pages.common import now
from ingest.services import services
from ledger.reporting.quality import Quality, troubled_rows
from ledger.reporting.quality import quality as measure
from ledger.storage import inbox
from ledger.storage.schema import InboxStatus
from workers.queue import enqueue_batches

log = logging.getLogger(__name__)
quality = Blueprint("quality", __name__)


def banner() -> Quality:
    with services().engine.connect() as conn:
        return measure(conn, now())


@quality.get("/data-quality")
def quality_page() -> str:
    with services().engine.connect() as conn:
        rows = troubled_rows(conn, now())
    return render_template("workspace/quality.html", rows=rows, failed=InboxStatus.FAILED)


@quality.post("/data-quality/requeue")
@admin_only
def requeue() -> BaseResponse:
    chosen = request.form.getlist("inbox_id")
    if not chosen or not all(value.isdigit() and len(value) < 19 for value in chosen):
        abort(400, "choose the failed rows to queue again")
    found = services()
    with found.engine.begin() as conn:
        changed = inbox.reset_for_retry(conn, [int(value) for value in chosen])
    enqueue_batches(found.queue, changed)
    user = current_user()
    log.info(
        "user %s queued %d failed inbox rows again: %s",
        None if user is None else user.id,
        len(changed),
        ",".join(map(str, changed)),
    )
    flash(f"Queued {len(changed)} failed rows again.")
    return redirect(url_for("quality.quality_page"))
