"""The dashboard's web application: pages, JSON endpoints and actions over one store.

Every request opens the store, reads it through the library (:mod:`midway.overview`, the same
objects ``midway status --json`` and ``midway show --json`` print) and closes it again, so the
dashboard works on every store kind and never holds a lock between requests.

    /                          the jobs, polling /api/jobs every second
    /jobs/<job>                one job, polling /api/jobs/<job>/summary every second
    /jobs/<job>/<action>       GET: a confirmation page; POST: do it (see actions.py)
    /api/jobs                  what `midway status --json` prints
    /api/jobs/<job>            what `midway show --json` prints
    /api/jobs/<job>/summary    one job's row of /api/jobs
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from midway import overview
from midway.errors import JobNotFound, MidwayError, RefusedError, StoreNotFound
from midway.owner import describe_age
from midway.stores import Store, open_store
from midway.web import formatting
from midway.web.actions import ACTIONS, Action
from midway.web.security import Gatekeeper, Guard

HERE = Path(__file__).resolve().parent
MAX_FORM_BYTES = 16 * 1024
MAX_ITEMS_SHOWN = 200
JOB_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+-]{0,199}(@[0-9a-f]{8})?")


def job_url(job: str, action: str | None = None) -> str:
    """The page of ``job`` (keys hold ``@`` and ``:``, so they are quoted)."""
    url = "/jobs/" + quote(job, safe="")
    return f"{url}/{action}" if action else url


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
        age=lambda seconds: "" if seconds is None else describe_age(seconds),
    )
    env.globals.update(job_url=job_url, api_url=lambda job: "/api" + job_url(job))
    return env


class Dashboard:
    """The routes of one dashboard: its store URL, its guard, its templates."""

    def __init__(self, store_url: str, guard: Guard) -> None:
        self.store_url = store_url
        self.guard = guard
        self.env = _environment()

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
            store_url=self.store_url, csrf=self.guard.csrf_token(session), **context
        )
        response = HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})
        if new:
            self.guard.remember(response, session)
        return response

    def message(self, request: Request, title: str, text: str, status: int) -> Response:
        return self.render(request, "message.html", status, title=title, text=text)

    def rows(self) -> list[dict[str, Any]]:
        with self.store() as store:
            return [overview.job_summary(store, record) for record in store.list_jobs()]

    def detail(self, job: str) -> dict[str, Any]:
        with self.store() as store:
            return overview.job_detail(store, overview.resolve(store, job))

    def summary(self, job: str) -> dict[str, Any]:
        with self.store() as store:
            return overview.job_summary(store, overview.resolve(store, job))

    # -- pages ----------------------------------------------------------------------------

    def jobs_page(self, request: Request) -> Response:
        notice = None
        done = ACTIONS.get(request.query_params.get("done", ""))
        job = request.query_params.get("job", "")
        if done is not None and JOB_KEY.fullmatch(job):  # a link cannot put prose on the page
            notice = done.done.format(job=job)
        try:
            rows = self.rows()
            missing = None
        except StoreNotFound:
            rows = []
            missing = f"There is no store at {self.store_url} yet: no job has run with it."
        except MidwayError as exc:
            return self.message(request, "The store cannot be read", str(exc), 503)
        return self.render(request, "jobs.html", rows=rows, missing=missing, notice=notice)

    def job_page(self, request: Request) -> Response:
        job = request.path_params["job"]
        try:
            detail = self.detail(job)
        except (JobNotFound, StoreNotFound) as exc:
            return self.message(request, "No such job", str(exc), 404)
        except MidwayError as exc:
            return self.message(request, "The store cannot be read", str(exc), 503)
        done = ACTIONS.get(request.query_params.get("done", ""))
        return self.render(
            request,
            "job.html",
            job=detail,
            items=detail["items"][:MAX_ITEMS_SHOWN],
            actions=self._actions_for(detail),
            resume=next((r["command"] for r in detail["runs"] if r.get("command")), None),
            notice=done.done.format(job=detail["job"]) if done else None,
        )

    @staticmethod
    def _actions_for(detail: dict[str, Any]) -> list[tuple[Action, str | None]]:
        return [(action, action.unavailable(detail)) for action in ACTIONS.values()]

    def confirm_page(self, request: Request) -> Response:
        action = ACTIONS.get(request.path_params["action"])
        if action is None:
            return self.message(request, "No such action", "The dashboard has no such action.", 404)
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
            unavailable=action.unavailable(detail),
        )

    async def perform(self, request: Request) -> Response:
        action = ACTIONS.get(request.path_params["action"])
        if action is None:
            return self.message(request, "No such action", "The dashboard has no such action.", 404)
        form = await _read_form(request)
        if form is None:
            refusal: str | None = "the request is not a small url-encoded form"
        else:
            refusal = self.guard.refuse_post(request, form)
        if refusal is not None:
            return self.message(request, "Refused", f"Nothing was done: {refusal}.", 403)
        try:
            job = await run_in_threadpool(self._perform, action, request.path_params["job"])
        except (JobNotFound, StoreNotFound) as exc:
            return self.message(request, "No such job", str(exc), 404)
        except MidwayError as exc:
            return self.message(request, f"{action.label.rstrip('…')} refused", str(exc), 409)
        query = f"?done={action.name}&job={quote(job, safe='')}"
        target = "/" if action.back_to == "jobs" else job_url(job)
        return RedirectResponse(target + query, status_code=303)

    def _perform(self, action: Action, job: str) -> str:
        with self.store() as store:
            record = overview.resolve(store, job)
            # Asked again here: the page that offered the action may be minutes old.
            reason = action.unavailable(overview.job_summary(store, record))
            if reason is not None:
                raise RefusedError(f"not now: {reason}")
            action.perform(store, record)
            return record.job

    # -- JSON -----------------------------------------------------------------------------

    def api_jobs(self, request: Request) -> Response:
        try:
            return _json(self.rows())
        except StoreNotFound:
            return _json([])
        except MidwayError as exc:
            return _json({"error": str(exc)}, 503)

    def api_job(self, request: Request) -> Response:
        return self._api_one(request, self.detail)

    def api_summary(self, request: Request) -> Response:
        return self._api_one(request, self.summary)

    @staticmethod
    def _api_one(request: Request, read: Any) -> Response:
        try:
            return _json(read(request.path_params["job"]))
        except (JobNotFound, StoreNotFound) as exc:
            return _json({"error": str(exc)}, 404)
        except MidwayError as exc:
            return _json({"error": str(exc)}, 503)


def _json(data: Any, status: int = 200) -> Response:
    return JSONResponse(data, status_code=status, headers={"Cache-Control": "no-store"})


async def _read_form(request: Request) -> dict[str, str] | None:
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
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
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
        Route("/jobs/{job}", board.job_page, methods=["GET"]),
        Route("/jobs/{job}/{action}", board.confirm_page, methods=["GET"]),
        Route("/jobs/{job}/{action}", board.perform, methods=["POST"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    return Starlette(routes=routes, middleware=[Middleware(Gatekeeper, guard=guard)])
