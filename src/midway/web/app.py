"""The dashboard's web application: pages, JSON endpoints and actions over one store.

Every request opens the store, reads it through the library (:mod:`midway.ops`, the calls of
the Python API: the same objects ``midway status --json`` and ``midway show --json`` print) and
closes it again, so the dashboard works on every store kind and never holds a lock between
requests. A distributed job is one job here: one row, one page with its partitions inside.

    /                          the jobs, polling /api/jobs every second
    /jobs/<job>                one job, polling /api/jobs/<job>/summary every second
    /jobs/<job>/<action>       GET: a confirmation page; POST: do it (see actions.py)
    /jobs/<job>/report.html    `midway report --format html`, as a download (.md: Markdown)
    /api/jobs                  what `midway status --json` prints
    /api/jobs/<job>            what `midway show --json` prints
    /api/jobs/<job>/summary    one job's row of /api/jobs
    /api/jobs/<job>/chart      the job page's throughput chart (SVG), for its refreshes
    /metrics                   what `midway metrics` prints (Prometheus text format)
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from midway._model.jsonutil import JSONValue
from midway._model.owner import describe_age
from midway._model.redaction import redact_url
from midway.errors import JobNotFound, MidwayError, RefusedError, StoreNotFound
from midway.ops.actions import user_name
from midway.ops.models import JobStatus
from midway.ops.status import all_statuses, detail_json, status_of
from midway.stores import Store, open_store
from midway.views import metrics, report, whole
from midway.views.models import JobDetail, ThroughputPoint
from midway.web import formatting
from midway.web.actions import (
    ACTIONS,
    Action,
    ActionInputError,
    Target,
    concerned,
    notice,
    offered,
    target_unavailable,
)
from midway.web.security import Gatekeeper, Guard

HERE = Path(__file__).resolve().parent
MAX_FORM_BYTES = 16 * 1024
MAX_ITEMS_SHOWN = 200
MAX_CHART_POINTS = 300
REPORTS = {"html": "text/html; charset=utf-8", "md": "text/markdown; charset=utf-8"}
JOB_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+-]{0,199}(@[0-9a-f]{8})?")


def job_url(job: str, action: str | None = None) -> str:
    """The page of ``job`` (keys hold ``@`` and ``:``, so they are quoted)."""
    url = "/jobs/" + quote(job, safe="")
    return f"{url}/{action}" if action else url


def item_url(job: str, action: str, key: JSONValue) -> str:
    """The confirmation page of ``action`` for one item (its key travels as JSON)."""
    return job_url(job, action) + "?key=" + quote(json.dumps(key, ensure_ascii=False), safe="")


def default_author() -> str:
    """Who wrote a note left without a name: the user the dashboard runs as."""
    return f"{user_name()} via dashboard"


def chart(store: Store, job: whole.Target) -> Markup | None:
    """The throughput chart as inline SVG (``midway report``'s), or None while the job's
    history holds too few checkpoints to draw one."""
    points = _thin(report.job_throughput(store, job), MAX_CHART_POINTS)
    if len(points) < 2:
        return None
    return Markup(report.svg_chart(points))  # built here, its text escaped


def _thin(points: list[ThroughputPoint], limit: int) -> list[ThroughputPoint]:
    """At most ``limit`` points, each the mean rate of a run of neighbours: a job that ran
    for days draws a line of a few hundred points, not of every checkpoint sampled."""
    if len(points) <= limit:
        return points
    size = -(-len(points) // limit)
    thinned = []
    for start in range(0, len(points), size):
        group = points[start : start + size]
        last = group[-1]
        rate = sum(p["rate"] for p in group) / len(group)
        thinned.append(ThroughputPoint(at=last["at"], processed=last["processed"], rate=rate))
    return thinned


def _count_of(text: str) -> int:
    """The ``n`` of a notice link (digits only: a link cannot put prose on the page)."""
    return int(text) if text.isdigit() and len(text) <= 12 else 0


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        count=formatting.count,
        duration=formatting.duration,
        rate=formatting.rate,
        percent=formatting.percent,
        progress_text=formatting.progress_text,
        as_json=formatting.as_json,
        code_spans=formatting.code_spans,
        age=lambda seconds: "" if seconds is None else describe_age(seconds),
    )
    env.globals.update(
        job_url=job_url, item_url=item_url, api_url=lambda job: "/api" + job_url(job)
    )
    return env


class Dashboard:
    """The routes of one dashboard: its store URL, its guard, its templates."""

    def __init__(self, store_url: str, guard: Guard) -> None:
        self.store_url = store_url
        self.store_shown = redact_url(store_url)
        self.guard = guard
        self.env = _environment()
        self.default_author = default_author()

    # -- plumbing -------------------------------------------------------------------------

    @contextmanager
    def store(self) -> Iterator[Store]:
        store = open_store(self.store_url, create=False)
        try:
            yield store
        finally:
            store.close()

    def render(
        self, request: Request, template: str, status: int = 200, **context: Any
    ) -> Response:
        session, new = self.guard.session_of(request)
        html = self.env.get_template(template).render(
            store_url=self.store_shown, csrf=self.guard.csrf_token(session), **context
        )
        response = HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})
        if new:
            self.guard.remember(response, session)
        return response

    def message(self, request: Request, title: str, text: str, status: int) -> Response:
        return self.render(request, "message.html", status, title=title, text=text)

    def rows(self) -> list[JobStatus]:
        with self.store() as store:
            return all_statuses(store)

    def detail(self, job: str) -> JobDetail:
        with self.store() as store:
            return whole.detail(store, whole.find(store, job))

    def page_data(self, job: str) -> tuple[JobDetail, JobStatus, Markup | None]:
        with self.store() as store:
            target = whole.find(store, job)
            detail = whole.detail(store, target)
            return detail, status_of(store, target), chart(store, target)

    def chart_of(self, job: str) -> dict[str, Any]:
        with self.store() as store:
            svg = chart(store, whole.find(store, job))
        return {"svg": None if svg is None else str(svg)}

    def summary(self, job: str) -> JobStatus:
        with self.store() as store:
            return status_of(store, whole.find(store, job))

    def detail_json(self, job: str) -> dict[str, Any]:
        with self.store() as store:
            target = whole.find(store, job)
            return detail_json(status_of(store, target), whole.detail(store, target))

    # -- pages ----------------------------------------------------------------------------

    def jobs_page(self, request: Request) -> Response:
        notice = None
        done = ACTIONS.get(request.query_params.get("done", ""))
        job = request.query_params.get("job", "")
        if done is not None and JOB_KEY.fullmatch(job):  # a link cannot put prose on the page
            notice = _notice(done, job, request)
        try:
            rows = self.rows()
            missing = None
        except StoreNotFound:
            rows = []
            missing = f"There is no store at {self.store_shown} yet: no job has run with it."
        except MidwayError as exc:
            return self.message(request, "The store cannot be read", str(exc), 503)
        return self.render(request, "jobs.html", rows=rows, missing=missing, notice=notice)

    def job_page(self, request: Request) -> Response:
        job = request.path_params["job"]
        try:
            detail, status, svg = self.page_data(job)
        except (JobNotFound, StoreNotFound) as exc:
            return self.message(request, "No such job", str(exc), 404)
        except MidwayError as exc:
            return self.message(request, "The store cannot be read", str(exc), 503)
        done = ACTIONS.get(request.query_params.get("done", ""))
        actions = [(action, action.unavailable(detail)) for action in ACTIONS.values()]
        return self.render(
            request,
            "job.html",
            job=detail,
            whole=status,
            items=detail.items[:MAX_ITEMS_SHOWN],
            actions=[(a, why) for a, why in actions if offered(a, detail)],
            # Per status, the actions offered on an item's row (none while a runner works).
            row_actions={
                status: [a for a, why in actions if status in a.statuses and why is None]
                for status in {s for a in ACTIONS.values() for s in a.statuses}
            },
            chart=svg,
            default_author=self.default_author,
            resume=detail.resume_command,
            notice=_notice(done, detail.job, request) if done else None,
        )

    def confirm_page(self, request: Request) -> Response:
        action = ACTIONS.get(request.path_params["action"])
        if action is None:
            return self.message(request, "No such action", "The dashboard has no such action.", 404)
        query = request.query_params
        try:
            target = self._target(action, dict(query), query.getlist("key"))
        except ActionInputError as exc:
            return self.message(request, "Unclear request", f"Nothing to confirm: {exc}.", 400)
        try:
            detail = self.detail(request.path_params["job"])
        except (JobNotFound, StoreNotFound) as exc:
            return self.message(request, "No such job", str(exc), 404)
        except MidwayError as exc:
            return self.message(request, "The store cannot be read", str(exc), 503)
        return self.render(
            request,
            "confirm.html",
            status=200,
            action=action,
            job=detail,
            target=target,
            what=action.describe(detail, target),
            items=concerned(action, detail, target)[:MAX_ITEMS_SHOWN],
            unavailable=target_unavailable(action, detail, target),
        )

    def _target(self, action: Action, params: dict[str, str], keys: list[str]) -> Target:
        return action.parse(params, keys, self.default_author)

    async def perform(self, request: Request) -> Response:
        action = ACTIONS.get(request.path_params["action"])
        if action is None:
            return self.message(request, "No such action", "The dashboard has no such action.", 404)
        pairs = await _read_form(request)
        form = dict(pairs or [])
        if pairs is None:
            refusal: str | None = "the request is not a small url-encoded form"
        else:
            refusal = self.guard.refuse_post(request, form)
        if refusal is not None:
            return self.message(request, "Refused", f"Nothing was done: {refusal}.", 403)
        try:
            target = self._target(action, form, [v for k, v in pairs or [] if k == "key"])
        except ActionInputError as exc:
            return self.message(request, "Unclear request", f"Nothing was done: {exc}.", 400)
        try:
            job, count = await run_in_threadpool(
                self._perform, action, request.path_params["job"], target
            )
        except (JobNotFound, StoreNotFound) as exc:
            return self.message(request, "No such job", str(exc), 404)
        except MidwayError as exc:
            return self.message(request, f"{action.label.rstrip('…')} refused", str(exc), 409)
        query = f"?done={action.name}&job={quote(job, safe='')}"
        if action.statuses:
            query += f"&n={count}"
        back = "/" if action.back_to == "jobs" else job_url(job)
        return RedirectResponse(back + query, status_code=303)

    def _perform(self, action: Action, job: str, target: Target) -> tuple[str, int]:
        with self.store() as store:
            found = whole.find(store, job)
            # Asked again here: the page that offered the action may be minutes old.
            reason = target_unavailable(action, whole.detail(store, found), target)
            if reason is not None:
                raise RefusedError(f"not now: {reason}")
            return found.key, action.perform(store, found, target)

    # -- downloads ------------------------------------------------------------------------

    def report(self, request: Request) -> Response:
        """``midway report`` as a file to keep or hand over (HTML or Markdown)."""
        fmt = request.path_params["fmt"]
        if fmt not in REPORTS:
            return self.message(request, "No such report", "Reports are .html or .md.", 404)
        try:
            with self.store() as store:
                data = report.gather(store, whole.find(store, request.path_params["job"]))
        except (JobNotFound, StoreNotFound) as exc:
            return self.message(request, "No such job", str(exc), 404)
        except MidwayError as exc:
            return self.message(request, "The store cannot be read", str(exc), 503)
        text = report.html_page(data) if fmt == "html" else report.markdown(data)
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", data.job).strip("._") or "job"
        headers = {
            "Cache-Control": "no-store",
            "Content-Disposition": f'attachment; filename="midway-report-{name}.{fmt}"',
        }
        return Response(text, media_type=REPORTS[fmt], headers=headers)

    # -- JSON -----------------------------------------------------------------------------

    def api_jobs(self, request: Request) -> Response:
        try:
            return _json([row.to_json() for row in self.rows()])
        except StoreNotFound:
            return _json([])
        except MidwayError as exc:
            return _json({"error": str(exc)}, 503)

    def api_job(self, request: Request) -> Response:
        return self._api_one(request, self.detail_json)

    def api_summary(self, request: Request) -> Response:
        return self._api_one(request, lambda job: self.summary(job).to_json())

    def api_chart(self, request: Request) -> Response:
        return self._api_one(request, self.chart_of)

    def metrics(self, request: Request) -> Response:
        """Every job in the Prometheus text format, read from the store at each scrape."""
        try:
            text = self.metrics_text()
        except MidwayError as exc:
            return Response(f"# {exc}\n", status_code=503, media_type="text/plain")
        headers = {"Cache-Control": "no-store"}
        return Response(text, headers=headers, media_type=metrics.CONTENT_TYPE)

    def metrics_text(self) -> str:
        try:
            with self.store() as store:
                return metrics.metrics_text(store)
        except StoreNotFound:
            return metrics.metrics_text(None)

    @staticmethod
    def _api_one(request: Request, read: Callable[[str], dict[str, Any]]) -> Response:
        try:
            return _json(read(request.path_params["job"]))
        except (JobNotFound, StoreNotFound) as exc:
            return _json({"error": str(exc)}, 404)
        except MidwayError as exc:
            return _json({"error": str(exc)}, 503)


def _json(data: Any, status: int = 200) -> Response:
    return JSONResponse(data, status_code=status, headers={"Cache-Control": "no-store"})


def _notice(action: Action, job: str, request: Request) -> str:
    return notice(action, job, _count_of(request.query_params.get("n", "")))


async def _read_form(request: Request) -> list[tuple[str, str]] | None:
    """A small url-encoded form (no multipart: the dashboard's forms are a few fields)."""
    if request.headers.get("content-type", "").split(";")[0].strip() != (
        "application/x-www-form-urlencoded"
    ):
        return None
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    try:
        return parse_qsl(body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        return None


def create_app(store_url: str, guard: Guard) -> Starlette:
    """The dashboard over ``store_url``, admitting requests by ``guard``'s rules."""
    board = Dashboard(store_url, guard)
    routes = [
        Route("/", board.jobs_page, methods=["GET"]),
        Route("/api/jobs", board.api_jobs, methods=["GET"]),
        Route("/api/jobs/{job}", board.api_job, methods=["GET"]),
        Route("/api/jobs/{job}/summary", board.api_summary, methods=["GET"]),
        Route("/api/jobs/{job}/chart", board.api_chart, methods=["GET"]),
        Route("/metrics", board.metrics, methods=["GET"]),
        Route("/jobs/{job}", board.job_page, methods=["GET"]),
        Route("/jobs/{job}/report.{fmt}", board.report, methods=["GET"]),
        Route("/jobs/{job}/{action}", board.confirm_page, methods=["GET"]),
        Route("/jobs/{job}/{action}", board.perform, methods=["POST"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    return Starlette(routes=routes, middleware=[Middleware(Gatekeeper, guard=guard)])
