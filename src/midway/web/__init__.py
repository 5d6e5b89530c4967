"""``midway ui``: a small dashboard over a store, read through the library.

Only :mod:`midway.web.command` may be imported without the ``ui`` extra installed; the rest
needs Starlette, Jinja2 and uvicorn (``pip install 'midway[ui]'``).
"""
