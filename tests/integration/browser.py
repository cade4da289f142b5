"""Neo4j Browser in headless Chromium: run a parameterised Cypher query and screenshot the result.

Used by acceptance tests that keep a picture of a query result as a CI artifact. Drives
headless Chromium (tests/integration/chromium.py) through selenium.

What the page is driven by (Neo4j Browser 5.24, as served by deploy/services.sh):

* ``/browser/?dbms=neo4j://<user>@<host>:7687`` pre-fills the connect form (URL and user, never
  the password); the password is typed and ``Connect`` clicked.
* parameters are set with one ``:params [{a, b}] => { RETURN <literal> AS a, <literal> AS b }``:
  the Browser evaluates the literals on the server, so integers stay integers (``:params
  {json}`` would turn them into floats, which ``LIMIT $k`` rejects).
* text goes into the Monaco editor as a synthetic paste event (verbatim: typing, even CDP
  ``Input.insertText``, auto-closes brackets and quotes) and runs with Ctrl+Enter.
* ``?cmd=edit&arg=<query>`` pre-fills the editor without running it (see :func:`query_url`).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from tests.integration.browser_urls import (
    BOLT_URL,
    BROWSER_URL,
    browser_url_of,
    check_params,
    cypher_literal,
    squash,
)
from tests.integration.chromium import headless_chromium

T = TypeVar("T")

_FRAME = '[data-testid="frame"]'
_FRAME_COMMAND = '[data-testid="frameCommand"]'
_EDITOR = '[data-testid="activeEditor"]'
_EDITOR_TEXTAREA = '[data-testid="activeEditor"] textarea'
_DISPLAYING = re.compile(r"Displaying ([\d,]+) nodes?, ([\d,]+) relationships?")
_STREAMED = re.compile(r"streaming ([\d,]+) records?", re.IGNORECASE)
_CONNECT_ERROR = re.compile(r"Neo\.\w+Error\.\S+|ServiceUnavailable|WebSocket connection failure")
_PASTE = """
const [textarea, text] = arguments;
const data = new DataTransfer();
data.setData('text/plain', text);
textarea.dispatchEvent(
    new ClipboardEvent('paste', {clipboardData: data, bubbles: true, cancelable: true}));
"""


@dataclass(frozen=True)
class BrowserResult:
    """What the result frame showed. ``nodes``/``relationships`` are None without a graph view."""

    screenshot: Path
    records: int | None  # "Started streaming N records" in the table view's status bar
    nodes: int | None  # "Displaying N nodes, M relationships." in the graph view's overview
    relationships: int | None
    status: str  # the table view's status bar, verbatim
    url: str  # the page that was opened
    elapsed_s: float


class BrowserError(RuntimeError):
    """The page did not get where it should; ``screenshot`` shows where it was instead."""

    def __init__(self, message: str, screenshot: Path | None) -> None:
        super().__init__(f"{message} (screenshot of the page: {screenshot})")
        self.screenshot = screenshot


class _Page:
    """Neo4j Browser in one driver; every wait fails with a screenshot of the page."""

    def __init__(self, driver: Any, failure_png: Path, deadline: float) -> None:
        self.d = driver
        self.failure_png = failure_png
        self.deadline = deadline

    def fail(self, message: str) -> BrowserError:
        shot: Path | None = self.failure_png
        try:
            self.failure_png.parent.mkdir(parents=True, exist_ok=True)
            self.d.save_screenshot(str(self.failure_png))
        except Exception:
            shot = None
        frames = " | ".join(self.frame_texts()[:4])
        return BrowserError(f"{message}; frames on the page: {frames or '(none)'}", shot)

    def frame_texts(self) -> list[str]:
        try:
            return [" ".join(f.text.split())[:600] for f in self.frames()]
        except Exception:
            return []

    def frames(self) -> list[Any]:
        from selenium.webdriver.common.by import By

        return list(self.d.find_elements(By.CSS_SELECTOR, _FRAME))

    def wait(self, what: str, probe: Callable[[], T | None], timeout_s: float | None = None) -> T:
        """Poll ``probe`` until it returns something truthy; exceptions count as not yet."""
        end = self.deadline
        if timeout_s is not None:
            end = min(end, time.monotonic() + timeout_s)
        while True:
            try:
                got = probe()
            except BrowserError:
                raise
            except Exception:
                got = None
            if got:
                return got
            if time.monotonic() > end:
                raise self.fail(f"timed out waiting for {what}")
            time.sleep(0.1)

    # -- steps

    def connect(self, password: str) -> None:
        from selenium.webdriver.common.by import By

        def form() -> Any:
            field = self.d.find_element(By.CSS_SELECTOR, 'input[data-testid="password"]')
            return field if field.is_displayed() and field.is_enabled() else None

        self.wait("the connect form", form).send_keys(password)
        self.d.find_element(By.CSS_SELECTOR, 'button[data-testid="connect"]').click()

        def connected() -> bool:
            texts = self.frame_texts()
            if any("You are connected" in t for t in texts):
                return True
            for text in texts:
                if text.startswith(":server connect") and (error := _CONNECT_ERROR.search(text)):
                    raise self.fail(f"connecting failed: {text[error.start() :]}")
            return False

        self.wait("the connection", connected)

    def dismiss_banners(self) -> None:
        """Best effort: the product-usage consent banner would sit in every screenshot."""
        from selenium.webdriver.common.by import By

        xpath = "//span[contains(., 'information on product usage')]/following-sibling::*"
        clicked = False
        for button in self.d.find_elements(By.XPATH, xpath):
            try:
                button.click()
                clicked = True
            except Exception:
                pass
        if clicked:
            time.sleep(0.3)  # the stream moves up

    def _titled(self, want: str) -> list[Any]:
        """Frames (newest first) showing the command ``want`` (whitespace removed). Compared as
        substrings either way: Monaco wraps long lines and renders only the lines in view, both in
        a frame's title and in the main editor (where ``want`` may come from)."""
        from selenium.webdriver.common.by import By

        frames = []
        for frame in self.frames():
            titles = frame.find_elements(By.CSS_SELECTOR, _FRAME_COMMAND)
            title = squash(titles[0].text) if titles else ""
            if title and (title in want or want in title):
                frames.append(frame)
        return frames

    def _editor(self) -> Any:
        """The main editor's textarea, focused."""
        from selenium.webdriver.common.by import By

        editor = self.wait("the editor", lambda: self.d.find_element(By.CSS_SELECTOR, _EDITOR))
        editor.click()
        return self.d.find_element(By.CSS_SELECTOR, _EDITOR_TEXTAREA)

    def type(self, command: str) -> None:
        """Replace the main editor's content with ``command``, verbatim.

        A synthetic paste event: typed text (even CDP ``Input.insertText``) goes through Monaco's
        auto-closing of brackets and quotes, so an unbalanced query would be silently "fixed".
        """
        from selenium.webdriver.common.keys import Keys

        textarea = self._editor()
        textarea.send_keys(Keys.CONTROL, "a")
        textarea.send_keys(Keys.DELETE)
        self.d.execute_script(_PASTE, textarea, command)
        want = squash(command)
        got = squash(self.wait("the text", lambda: editor_text(self.d), timeout_s=5))
        if not (got == want or (len(got) >= 100 and got in want)):  # long: lines out of view
            raise self.fail(f"the editor holds {got!r} instead of {want!r} (whitespace removed)")

    def run(self, command: str | None = None) -> Any:
        """Run ``command`` (default: what the editor holds); return its new frame."""
        from selenium.webdriver.common.keys import Keys

        if command is None:
            command = editor_text(self.d)
        else:
            self.type(command)
        want = squash(command)
        if not want:
            raise self.fail("nothing to run: the editor is empty")
        seen = len(self._titled(want))
        self._editor().send_keys(Keys.CONTROL, Keys.ENTER)

        def new_frame() -> Any:
            frames = self._titled(want)  # newest first; other frames may arrive meanwhile
            return frames[0] if len(frames) > seen else None

        return self.wait(f"a frame for {command[:80]!r}", new_frame)

    def clear(self) -> None:
        """``:clear`` (it leaves no frame of its own)."""
        from selenium.webdriver.common.keys import Keys

        self.type(":clear")
        self._editor().send_keys(Keys.CONTROL, Keys.ENTER)
        self.wait("the stream to clear", lambda: not self.frames() or None, timeout_s=10)

    def set_params(self, params: dict[str, object]) -> None:
        """All of ``params`` in one ``:params [{a, b}] => { RETURN <lit> AS a, <lit> AS b }``.

        The Browser runs the RETURN on the server, so values keep their Cypher types (with
        ``:params {json}`` integers would arrive as floats, which ``LIMIT $k`` rejects).
        """
        from selenium.webdriver.common.by import By

        if not params:
            return
        check_params(params)
        names = ", ".join(params)
        values = ", ".join(f"{cypher_literal(v)} AS {k}" for k, v in params.items())
        frame = self.run(f":params [{{{names}}}] => {{ RETURN {values} }}")

        def done() -> bool:
            title = frame.find_element(By.CSS_SELECTOR, _FRAME_COMMAND).text
            body = frame.text.replace(title, "", 1)
            if "Successfully set your parameters" in body:
                return True
            if "Something went wrong" in body or "ERROR" in body:
                raise self.fail(f"setting the parameters failed: {' '.join(body.split())}")
            return False

        self.wait("the parameters to be set", done)

    def result(self, frame: Any, timeout_s: float | None = None) -> tuple[int | None, int | None]:
        """Wait for the query's result to render; (nodes, relationships) if a graph is shown."""
        from selenium.webdriver.common.by import By

        def loaded() -> str | None:
            errors = frame.find_elements(By.CSS_SELECTOR, '[data-testid="cypherFrameErrorMessage"]')
            if errors and errors[0].text.strip():
                raise self.fail(f"the query failed: {' '.join(errors[0].text.split())}")
            if not frame.find_elements(By.CSS_SELECTOR, '[data-testid="frame-loaded-contents"]'):
                return None
            if frame.find_elements(By.CSS_SELECTOR, "svg g.node"):
                return "graph" if _DISPLAYING.search(frame.text) else None
            status = frame.find_elements(By.CSS_SELECTOR, '[data-testid="frameStatusbar"]')
            return "table" if status and status[0].text.strip() else None

        kind = self.wait("the result to render", loaded, timeout_s)
        if kind != "graph":
            return None, None
        self.settle(frame)
        m = _DISPLAYING.search(frame.text)
        assert m is not None
        return int(m.group(1).replace(",", "")), int(m.group(2).replace(",", ""))

    def settle(self, frame: Any, quiet_s: float = 0.6, max_s: float = 10.0) -> None:
        """Let the force layout come to rest: node positions unchanged for ``quiet_s``."""
        script = (
            "return Array.from(arguments[0].querySelectorAll('svg g.node'))"
            ".map(n => n.getAttribute('transform')).join(';')"
        )
        end = time.monotonic() + max_s
        last, since = None, time.monotonic()
        while time.monotonic() < end:
            now = self.d.execute_script(script, frame)
            if now != last:
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= quiet_s:
                return
            time.sleep(0.1)

    def record_count(self, frame: Any) -> tuple[int | None, str]:
        """Switch the frame to its table view and read "Started streaming N records"."""
        from selenium.webdriver.common.by import By

        buttons = frame.find_elements(By.CSS_SELECTOR, '[data-testid="cypherFrameSidebarTable"]')
        if buttons:
            buttons[0].click()

        def status() -> str | None:
            bar = frame.find_element(By.CSS_SELECTOR, '[data-testid="frameStatusbar"]')
            text = " ".join(bar.text.split())
            return text if "completed" in text.lower() else None

        text = self.wait("the table view's status bar", status, timeout_s=10)
        m = _STREAMED.search(text)
        return (int(m.group(1).replace(",", "")) if m else 0), text


def _screenshot(
    url: str,
    out: Path,
    password: str,
    timeout_s: float,
    run: Callable[[_Page], Any],
) -> BrowserResult:
    """Open ``url``, connect, get the result frame from ``run``, wait for it, screenshot it."""
    start = time.monotonic()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    failure_png = out.with_name(f"{out.stem}-failure.png")
    failure_png.unlink(missing_ok=True)
    with headless_chromium() as driver:
        page = _Page(driver, failure_png, deadline=start + timeout_s)
        driver.set_page_load_timeout(timeout_s)
        driver.get(url)
        page.connect(password)
        page.dismiss_banners()
        frame = run(page)
        nodes, relationships = page.result(frame)
        page.dismiss_banners()
        if not driver.save_screenshot(str(out)):
            raise page.fail(f"could not write {out}")
        records, status = page.record_count(frame)
    return BrowserResult(
        screenshot=out,
        records=records,
        nodes=nodes,
        relationships=relationships,
        status=status,
        url=url,
        elapsed_s=time.monotonic() - start,
    )


def screenshot_query(
    cypher: str,
    params: dict[str, object],
    out: Path,
    *,
    browser_url: str = BROWSER_URL,
    bolt_url: str = BOLT_URL,
    user: str = "neo4j",
    password: str,
    database: str | None = None,
    timeout_s: float = 60,
) -> BrowserResult:
    """Open Neo4j Browser, connect, set ``params``, run ``cypher``, screenshot the result.

    The screenshot (PNG, 1400×1000, only the query's frame in the stream) is taken once the result
    has rendered and, for a graph, once the layout has come to rest. Raises BrowserError (with
    ``<stem>-failure.png`` beside ``out`` showing the page) when a step does not complete within
    ``timeout_s`` overall, the connection is refused or the query fails.
    """

    check_params(params)  # before starting a browser

    def run(page: _Page) -> Any:
        page.set_params(params)
        page.clear()  # parameters stay set; only the query's frame in the picture
        return page.run(cypher)

    url = browser_url_of(browser_url, bolt_url, user, database)
    return _screenshot(url, out, password, timeout_s, run)


def screenshot_url(url: str, out: Path, *, password: str, timeout_s: float = 60) -> BrowserResult:
    """Open a Browser URL that pre-fills the editor (:func:`query_url`), connect, run the editor's
    query as it stands (Ctrl+Enter) and screenshot the result like :func:`screenshot_query`."""

    def run(page: _Page) -> Any:
        page.wait("the query in the editor", lambda: editor_text(page.d).strip(), timeout_s=10)
        return page.run()

    return _screenshot(url, out, password, timeout_s, run)


def editor_text(driver: Any) -> str:
    """The main editor's lines in view, as displayed (Monaco renders spaces as NBSP)."""
    script = (
        "return Array.from(document.querySelectorAll("
        f"{json.dumps(_EDITOR + ' .view-line')})).map(l => l.textContent).join('\\n')"
    )
    return str(driver.execute_script(script)).replace("\u00a0", " ")
