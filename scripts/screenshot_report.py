"""Render a report.html in headless Chromium to a PNG and check the picture is not blank.

    .venv/bin/python scripts/screenshot_report.py reports/latest/report.html [--out shot.png]

Exit 0 when the screenshot shows a page (enough non-background pixels), 1 when it is blank, 2 on usage errors
(no chromium on PATH, no such file). Chromium runs offline: every network feature it has is switched off.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from matplotlib.image import imread

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
)  # fmt: skip
MIN_INK_FRACTION = 0.01  # a rendered report has text, tables and plots: far more than 1 % non-white pixels


def find_chromium() -> str | None:
    """Path of a Chromium binary on PATH, or None."""
    return next((p for p in map(shutil.which, CHROMIUM_NAMES) if p), None)


def screenshot(html: Path, png: Path, width: int = 1280, height: int = 2000, timeout_s: float = 60.0) -> Path:
    """Render html to png with headless Chromium; raise RuntimeError when it fails."""
    binary = find_chromium()
    if binary is None:
        raise RuntimeError("chromium is not on PATH (apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        cmd = [binary, *FLAGS, f"--user-data-dir={profile}", f"--screenshot={png}",
               f"--window-size={width},{height}", html.resolve().as_uri()]  # fmt: skip
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            output, _ = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise RuntimeError(f"chromium did not finish within {timeout_s:g} s") from None
    if proc.returncode != 0 or not png.is_file():
        raise RuntimeError(f"chromium exited {proc.returncode}: {output.strip().splitlines()[-1:]}")
    return png


def ink_fraction(png: Path) -> float:
    """Fraction of pixels that differ clearly from the most common (background) colour."""
    img = imread(str(png))[..., :3]
    flat = (img.reshape(-1, 3) * 255).round().astype(np.int32)
    colours, counts = np.unique(flat, axis=0, return_counts=True)
    background = colours[counts.argmax()]
    return float(np.mean(np.abs(flat - background).sum(axis=1) > 30))


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: screenshot, then check."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("html", type=Path)
    parser.add_argument("--out", type=Path, default=None, help="PNG path (default: next to the HTML)")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=2000)
    args = parser.parse_args(argv)
    if not args.html.is_file():
        print(f"error: {args.html} not found", file=sys.stderr)  # noqa: T201
        return 2
    out = args.out or args.html.with_suffix(".png")
    try:
        screenshot(args.html, out, args.width, args.height)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    ink = ink_fraction(out)
    blank = ink < MIN_INK_FRACTION
    print(f"{out}: {ink:.1%} of pixels drawn -> {'BLANK' if blank else 'ok'}")  # noqa: T201
    return 1 if blank else 0


if __name__ == "__main__":
    sys.exit(main())
