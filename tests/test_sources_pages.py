"""``sources.pages``: a paged API, resumed by fetching the saved page once, tested with a
plain function and with a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit
from urllib.request import urlopen

import pytest

import midway
from midway import ConfigError, SourceError, sources
from test_sources import assert_resumes_everywhere, items_of, walk

# -- a function ----------------------------------------------------------------------------


def numbered_pages(sizes: list[int]) -> Any:
    """Pages of the given sizes; tokens are "p1", "p2", ...; items {"id": n}."""
    starts = [sum(sizes[:i]) for i in range(len(sizes))]

    def fetch_page(token: str | None) -> tuple[list[dict[str, int]], str | None]:
        page = 0 if token is None else int(token[1:])
        items = [{"id": starts[page] + i} for i in range(sizes[page])]
        return items, (f"p{page + 1}" if page + 1 < len(sizes) else None)

    return fetch_page


def test_items_keys_and_positions() -> None:
    src = sources.pages(numbered_pages([3, 2, 4]))
    assert src.seekable
    walked, end, sizes = walk(src)
    assert [w[0]["id"] for w in walked] == list(range(9))
    assert [w[1] for w in walked] == list(range(9))  # default key: the item's number
    assert [w[2] for w in walked] == [
        {"token": None, "offset": 0, "count": 0},
        {"token": None, "offset": 1, "count": 1},
        {"token": None, "offset": 2, "count": 2},
        {"token": "p1", "offset": 0, "count": 3},
        {"token": "p1", "offset": 1, "count": 4},
        {"token": "p2", "offset": 0, "count": 5},
        {"token": "p2", "offset": 1, "count": 6},
        {"token": "p2", "offset": 2, "count": 7},
        {"token": "p2", "offset": 3, "count": 8},
    ]
    assert end == {"token": "p2", "offset": 4, "count": 9}
    assert sizes == [3, 2, 4]
    assert_resumes_everywhere(src)
    assert_resumes_everywhere(sources.pages(numbered_pages([1, 5, 1, 1]), key="id"))


def test_empty_pages_are_passed_over() -> None:
    src = sources.pages(numbered_pages([0, 2, 0, 0, 3, 0]), key="id")
    assert [i["id"] for i in items_of(src)] == [0, 1, 2, 3, 4]
    assert_resumes_everywhere(src)
    assert items_of(sources.pages(numbered_pages([0]))) == []


def test_a_page_that_shrank_is_skipped_past() -> None:
    src = sources.pages(numbered_pages([2, 2, 2]))
    assert [i["id"] for i in items_of(src, {"token": "p1", "offset": 5, "count": 7})] == [4, 5]


def test_fetch_errors_say_where() -> None:
    def broken(token: Any) -> Any:
        if token == "p1":
            raise TimeoutError("the API is down")
        return [1, 2], "p1"

    with pytest.raises(TimeoutError) as info:
        items_of(sources.pages(broken))
    assert "fetching the page at token 'p1'" in "".join(info.value.__notes__)

    with pytest.raises(SourceError, match="must return a pair"):
        items_of(sources.pages(lambda token: [1, 2, 3]))
    with pytest.raises(SourceError, match="cannot be saved in a checkpoint"):
        items_of(sources.pages(lambda token: ([1], object())))
    with pytest.raises(SourceError, match="forever"):
        items_of(sources.pages(lambda token: ([1], "same")))
    with pytest.raises(SourceError, match="not a page position"):
        items_of(sources.pages(numbered_pages([1])), {"offset": 2})
    with pytest.raises(ConfigError):
        sources.pages("not a function")  # type: ignore[arg-type]


def test_fingerprint_is_the_version_and_positions_read_well() -> None:
    fetch = numbered_pages([2])
    assert sources.pages(fetch, version="2024-05").fingerprint() == {
        "kind": "pages",
        "version": "2024-05",
    }
    assert sources.pages(fetch, version=1).fingerprint() != sources.pages(fetch).fingerprint()
    src = sources.pages(fetch, total=2)
    assert src.total() == 2
    assert src.describe() == "pages of fetch_page"
    assert src.describe_position(None) == "the first page"
    assert (
        src.describe_position({"token": "c9", "offset": 2, "count": 202})
        == "item 203 (item 3 of the page at token 'c9')"
    )


# -- a real HTTP API -----------------------------------------------------------------------


class Api:
    """GET /contacts?cursor=C&limit=N: {"data": [...], "next": cursor or null}. Cursors are
    opaque strings; every request is logged."""

    def __init__(self, n: int) -> None:
        self.contacts = [{"email": f"user{i}@example.com", "n": i} for i in range(n)]
        self.requests: list[str | None] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = parse_qs(urlsplit(self.path).query)
                cursor = query.get("cursor", [None])[0]
                limit = int(query.get("limit", ["10"])[0])
                api.requests.append(cursor)
                start = 0 if cursor is None else int(cursor.removeprefix("after-"))
                data = api.contacts[start : start + limit]
                more = start + limit < len(api.contacts)
                body = json.dumps(
                    {"data": data, "next": f"after-{start + limit}" if more else None}
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/contacts"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def fetch_page(self, token: str | None) -> tuple[list[dict[str, Any]], str | None]:
        query = {"limit": 25} | ({} if token is None else {"cursor": token})
        with urlopen(f"{self.url}?{urlencode(query)}", timeout=10) as response:
            page = json.load(response)
        return page["data"], page["next"]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def api() -> Iterator[Api]:
    server = Api(110)
    try:
        yield server
    finally:
        server.close()


def test_http_api_pages(api: Api) -> None:
    src = sources.pages(api.fetch_page, key="email")
    walked, end, sizes = walk(src)
    assert [w[0] for w in walked] == api.contacts
    assert [w[1] for w in walked] == [c["email"] for c in api.contacts]
    assert sizes == [25, 25, 25, 25, 10]
    assert api.requests == [None, "after-25", "after-50", "after-75", "after-100"]
    assert end == {"token": "after-100", "offset": 10, "count": 110}


def test_http_api_resume_fetches_the_saved_page_once(api: Api) -> None:
    src = sources.pages(api.fetch_page, key="email")
    position = walk(src)[0][63][2]
    assert position == {"token": "after-50", "offset": 13, "count": 63}
    api.requests.clear()
    rest = items_of(src, json.loads(json.dumps(position)))
    assert rest == api.contacts[63:]
    assert api.requests == ["after-50", "after-75", "after-100"], "no page before it again"


def test_http_api_job_stops_on_a_failure_and_resumes(api: Api, tmp_path: Path) -> None:
    job = midway.Job("api", store=f"sqlite:///{tmp_path / 'state.db'}", every=10, quiet=True)
    handled: list[int] = []

    def handle(contact: dict[str, Any], ctx: Any) -> None:
        if contact["n"] == 80 and not handled.count(80):
            handled.append(80)
            raise ConnectionError("CRM unreachable")
        handled.append(contact["n"])

    with pytest.raises(ConnectionError):
        job.run(sources.pages(api.fetch_page, key="email"), handle)
    api.requests.clear()
    result = job.run(sources.pages(api.fetch_page, key="email"), handle)
    assert result.status == "completed"
    assert result.resumed_from is not None
    assert result.resumed_from["position"] == {"token": "after-75", "offset": 5, "count": 80}
    assert api.requests == ["after-75", "after-100"]
    assert [n for n in handled if n != 80] == [n for n in range(110) if n != 80]
    assert handled.count(80) == 2  # the failed attempt, then the resumed run
