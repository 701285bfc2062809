"""The headless-browser harness itself, on hand-written pages: it passes a clean page, catches each fault."""

from __future__ import annotations

import base64
import struct
import zlib
from pathlib import Path

import pytest
from browser import ARTIFACTS, BrowserError, PageResult, open_page, require_chromium


def tiny_png(size: int = 16) -> bytes:
    """A ``size`` x ``size`` RGB PNG: a diagonal gradient."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\0" + bytes(c for x in range(size) for c in (16 * x, 16 * y, 128)) for y in range(size))
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def render(tmp_path: Path, name: str, body: str) -> PageResult:
    """Write ``body`` into a minimal HTML page and open it; the screenshot goes to test-artifacts/browser/."""
    require_chromium()
    page = tmp_path / f"{name}.html"
    head = f'<!doctype html><html><head><meta charset="utf-8"><title>{name}</title></head>'
    page.write_text(f"{head}\n{body}\n")
    return open_page(page, ARTIFACTS / "browser" / f"{name}.png", height=800, timeout=60)


def test_clean_page(tmp_path: Path) -> None:
    png = base64.b64encode(tiny_png()).decode()
    body = f"""<body><h1>Report</h1>
<section id="results"><h2>Results</h2><p>Accuracy 0.91 &plusmn; 0.02</p></section>
<section id="figures"><h2>Figures</h2>
<img id="fig1" width="240" height="240" src="data:image/png;base64,{png}"></section>
<script>console.log("rendered"); console.warn("just a warning");</script></body>"""
    result = render(tmp_path, "clean", body)
    assert result.console_errors == []
    assert 'id="results"' in result.dom and 'id="figures"' in result.dom and 'id="fig1"' in result.dom
    data = result.screenshot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1024


def test_dom_is_after_scripts(tmp_path: Path) -> None:
    script = 'document.body.insertAdjacentHTML("beforeend", "<section id=late></section>")'
    body = f"<body><script>{script}</script>"
    assert '<section id="late">' in render(tmp_path, "scripted", body).dom


FAULTS = {  # name: (page body, text expected in one of the reported errors)
    "console-error": ('<body><script>console.error("boom")</script></body>', "console.error: boom"),
    "uncaught": ('<body><script>throw new Error("kaput")</script></body>', "Uncaught Error: kaput"),
    "rejection": (
        '<body><script>Promise.reject(new Error("nope"))</script></body>',
        "Uncaught (in promise) Error: nope",
    ),
    "missing-image": ('<body><img src="missing.png"></body>', "net::ERR_FILE_NOT_FOUND"),
    "network": ('<body><script src="https://example.com/x.js"></script></body>', "https://example.com/x.js"),
}


@pytest.mark.parametrize("name", FAULTS)
def test_faults_are_reported(tmp_path: Path, name: str) -> None:
    body, expected = FAULTS[name]
    errors = render(tmp_path, name, body).console_errors
    assert any(expected in error for error in errors), errors


def test_network_request_is_reported_even_if_handled(tmp_path: Path) -> None:
    body = '<body><script>fetch("https://example.com/api").catch(() => {})</script></body>'
    assert "network request: https://example.com/api" in render(tmp_path, "fetch", body).console_errors


def test_missing_page_raises(tmp_path: Path) -> None:
    require_chromium()
    with pytest.raises(BrowserError, match="ERR_FILE_NOT_FOUND"):
        open_page(tmp_path / "absent.html", tmp_path / "absent.png", timeout=60)
