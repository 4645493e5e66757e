"""The QC pages in a real browser: headless Chromium (Debian's `chromium`) over the DevTools protocol.

Every image must load, nothing may throw or log an error, and the tables must sort and filter.
CI installs chromium (`apt-get install -y chromium`); without it these tests are skipped.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from test_qc_report import build_section, run_qc
from test_qc_summary import big_stack

from cytopaint.qc.summary import write_stack_summary

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium); "
                                                          "the QC pages are not checked in a browser")


class Chromium:
    """Headless Chromium driven over --remote-debugging-pipe (NUL-separated JSON on fds 3 and 4)."""

    def __init__(self) -> None:
        self.profile = tempfile.mkdtemp(prefix="cytopaint-chromium-")
        cmd_r, self.cmd_w = os.pipe()
        self.res_r, res_w = os.pipe()

        def child() -> None:
            os.dup2(cmd_r, 3)
            os.dup2(res_w, 4)

        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe", "--no-first-run",
             f"--user-data-dir={self.profile}", "--window-size=1400,1000", "about:blank"],
            pass_fds=(3, 4), preexec_fn=child, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(cmd_r)
        os.close(res_w)
        self.buf, self.next_id, self.events = b"", 0, []
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Runtime", "Log", "Page"):
            self.send(f"{domain}.enable", session=True)

    def _read(self, timeout: float) -> dict[str, Any]:
        while b"\0" not in self.buf:
            ready, _, _ = select.select([self.res_r], [], [], max(timeout, 0.01))
            if not ready:
                raise TimeoutError("chromium did not answer")
            chunk = os.read(self.res_r, 1 << 20)
            if not chunk:
                raise EOFError("chromium closed its pipe")
            self.buf += chunk
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)

    def send(self, method: str, params: dict[str, Any] | None = None, session: bool = False,
             timeout: float = 60) -> dict[str, Any]:
        self.next_id += 1
        msg: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = self.session
        os.write(self.cmd_w, json.dumps(msg).encode() + b"\0")
        end = time.monotonic() + timeout
        while True:
            answer = self._read(end - time.monotonic())
            if answer.get("id") == self.next_id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer["result"]
            self.events.append(answer)

    def open(self, path: Path, timeout: float = 60) -> None:
        """Navigate to a file and wait for its load event."""
        self.events.clear()
        self.send("Page.navigate", {"url": path.resolve().as_uri()}, session=True)
        end = time.monotonic() + timeout
        while not any(e.get("method") == "Page.loadEventFired" for e in self.events):
            self.events.append(self._read(end - time.monotonic()))

    def js(self, expression: str) -> Any:
        out = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True},
                        session=True)
        if "exceptionDetails" in out:
            raise RuntimeError(f"{expression}: {out['exceptionDetails']}")
        return out["result"].get("value")

    def errors(self) -> list[str]:
        """Uncaught exceptions, console errors and browser log errors (e.g. a failed load) so far."""
        self.js("0")  # flush pending events
        out = []
        for e in self.events:
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.exceptionThrown":
                details = p["exceptionDetails"]
                out.append(details.get("exception", {}).get("description") or details["text"])
            elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append(" ".join(str(a.get("value", a.get("description"))) for a in p.get("args", [])))
            elif m == "Log.entryAdded" and p["entry"]["level"] == "error":
                out.append(f'{p["entry"]["text"]} {p["entry"].get("url", "")}')
        return out

    def images(self) -> list[list[Any]]:
        """[src prefix, complete, natural width] of every image."""
        return self.js("Array.from(document.images).map(i => [i.src.slice(0, 30), i.complete, i.naturalWidth])")

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=10)
        except (OSError, TimeoutError, EOFError, RuntimeError):
            self.proc.kill()
        self.proc.wait(20)
        for fd in (self.cmd_w, self.res_r):
            os.close(fd)
        shutil.rmtree(self.profile, ignore_errors=True)


@pytest.fixture(scope="module")
def browser():
    b = Chromium()
    yield b
    b.close()


def test_the_harness_sees_broken_images_and_errors(browser: Chromium, tmp_path: Path) -> None:
    page = tmp_path / "bad.html"
    page.write_text('<!DOCTYPE html><html><body><img src="data:image/png;base64,AAAA"><img src="missing.png">'
                    '<script>console.error("boom"); undefined_function();</script></body></html>')
    browser.open(page)
    assert [ok and width > 0 for _, ok, width in browser.images()] == [False, False]
    errors = " ".join(browser.errors())
    assert "boom" in errors and "undefined_function" in errors and "missing.png" in errors


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    b = build_section(tmp_path_factory.mktemp("browser"))
    run_qc(b)
    return b["out"] / "qc" / "report.html"


def test_the_section_report_loads_every_image_without_errors(browser: Chromium, report: Path) -> None:
    browser.open(report)
    images = browser.images()
    assert len(images) > 10 and all(ok and width > 0 for _, ok, width in images), images
    assert browser.errors() == []
    # the input/repaired switch of the overview
    assert browser.js("getComputedStyle(document.querySelector('.img-before')).display") == "none"
    browser.js("document.querySelector('label[for=show-before]').click()")
    assert browser.js("getComputedStyle(document.querySelector('.img-after')).display") == "none"
    # sort the tile table by seam score, largest first
    browser.js("var th = [...document.querySelectorAll('table.sortable th')].find(h => h.textContent === 'seam');"
               "th.click(); th.click()")
    seams = browser.js("[...document.querySelectorAll('table.sortable tbody tr')].map(r => r.cells[10].dataset.v)")
    values = [float(v) for v in seams if v]
    assert values == sorted(values, reverse=True) and len(values) > 3
    assert browser.errors() == []


def test_the_stack_index_stays_fast_with_7404_sections(browser: Chromium, tmp_path: Path) -> None:
    results = tmp_path / "results"
    write_stack_summary(big_stack(results), results / "qc", progress=False)
    browser.open(results / "qc" / "index.html")
    assert all(ok and width > 0 for _, ok, width in browser.images()) and len(browser.images()) == 7
    assert browser.js("document.querySelectorAll('#stack tbody tr').length") == 100
    assert browser.js("document.getElementById('count').textContent") == "rows 1–100 of 7,404"
    took = browser.js("""(() => { const t = performance.now();
        const th = [...document.querySelectorAll('#stack th')].find(h => h.textContent === 'worst seam');
        th.click(); return performance.now() - t; })()""")
    seams = browser.js("[...document.querySelectorAll('#stack tbody tr')].map(r => parseFloat(r.cells[9].textContent))")
    assert seams == sorted(seams, reverse=True) and took < 500
    browser.js("const q = document.getElementById('q'); q.value = 'B1'; q.dispatchEvent(new Event('input'))")
    assert browser.js("document.getElementById('count').textContent") == "rows 1–100 of 1,000 (filtered from 7,404)"
    browser.js("document.getElementById('flagged').click()")
    shown = browser.js("[...document.querySelectorAll('#stack tbody tr')].map(r => r.cells[0].textContent)")
    assert shown and all(s.startswith("B1") and int(s[1:]) % 7 == 0 for s in shown)
    browser.js("document.getElementById('next').click()")
    assert browser.errors() == []
