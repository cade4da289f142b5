"""Neo4j Browser addresses and Cypher literals: what the Browser tests put in a URL or in the
editor (tests/integration/browser.py drives the page itself)."""

from __future__ import annotations

import math
import re
import urllib.parse

BROWSER_URL = "http://127.0.0.1:7474/browser/"
BOLT_URL = "neo4j://127.0.0.1:7687"
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _with_user(bolt_url: str, user: str) -> str:
    scheme, sep, rest = bolt_url.partition("://")
    rest = rest.rsplit("@", 1)[-1]
    return f"{scheme}{sep}{user}@{rest}" if sep else f"{user}@{rest}"


def query_url(
    cypher: str,
    *,
    browser_url: str = BROWSER_URL,
    bolt_url: str = BOLT_URL,
    user: str = "neo4j",
    database: str | None = None,
) -> str:
    """A Browser URL that pre-fills the connect form and puts ``cypher`` in the editor (not run).

    ``<browser_url>?dbms=neo4j%3A%2F%2Fneo4j%40127.0.0.1%3A7687[&db=<db>]&cmd=edit&arg=<query>``,
    the query percent-encoded (newlines as ``%0A``, ``+`` as ``%2B``). The Browser URL-decodes the
    whole address before it looks for ``&`` and ``#``, so a query holding either cannot be
    carried at all (``%26`` or ``%2526`` do not help): ValueError. It carries no parameters
    either (one ``cmd`` per URL): inline them as literals (:func:`cypher_literal`).
    """
    if "&" in cypher or "#" in cypher:
        raise ValueError("Neo4j Browser's cmd=edit URL cannot carry '&' or '#' in the query")
    base = browser_url_of(browser_url, bolt_url, user, database)
    return f"{base}&cmd=edit&arg={urllib.parse.quote(cypher, safe='')}"


def cypher_literal(value: object) -> str:
    """``value`` as a Cypher literal (str, int, float, bool, None, lists and str-keyed dicts)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "0.0/0.0"
        if math.isinf(value):
            return "1.0/0.0" if value > 0 else "-1.0/0.0"
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(cypher_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        items = ", ".join(
            f"`{str(k).replace('`', '``')}`: {cypher_literal(v)}" for k, v in value.items()
        )
        return "{" + items + "}"
    raise TypeError(f"no Cypher literal for {type(value).__name__}: {value!r}")


def squash(text: str) -> str:
    """``text`` without whitespace (the Browser re-wraps what it shows)."""
    return "".join(text.split())


def check_params(params: dict[str, object]) -> None:
    """ValueError for a name that is not an identifier, TypeError for a value with no literal."""
    for name, value in params.items():
        if not _IDENT.fullmatch(name):
            raise ValueError(f"parameter name {name!r} is not a plain identifier")
        cypher_literal(value)  # TypeError for what has no literal


def browser_url_of(browser_url: str, bolt_url: str, user: str, database: str | None) -> str:
    """The Browser address that pre-fills the connect form (URL and user, no password)."""
    query = [("dbms", _with_user(bolt_url, user))]
    if database:
        query.append(("db", database))
    return f"{browser_url}?{urllib.parse.urlencode(query, quote_via=urllib.parse.quote)}"
