"""A report as a list of blocks, rendered to markdown (figures as files) and self-contained HTML
(figures embedded as base64 PNG), plus atomic file writes."""
from __future__ import annotations

import base64
import html
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd


def atomic_write(path: Path, data: bytes) -> None:
    """Write to a temp file in the same directory, fsync, then os.replace (readers never see half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _cell(value: Any, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


@dataclass
class Document:
    """Blocks are (kind, payload): heading (level, text), text, warning, table (DataFrame, digits),
    image (file name, caption). Files (CSVs, PNGs) are written beside report.md."""

    title: str
    blocks: list[tuple[str, Any]] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # shown at the top of both renderings

    def heading(self, text: str, level: int = 2) -> None:
        self.blocks.append(("heading", (level, text)))

    def text(self, text: str) -> None:
        self.blocks.append(("text", text))

    def warn(self, text: str) -> None:
        self.warnings.append(text)

    def table(self, frame: pd.DataFrame, digits: int = 3) -> None:
        self.blocks.append(("table", (frame, digits)))

    def csv(self, name: str, frame: pd.DataFrame) -> None:
        self.files[name] = frame.to_csv(index=False).encode()

    def image(self, name: str, png: bytes, caption: str) -> None:
        self.files[name] = png
        self.blocks.append(("image", (name, caption)))

    def markdown(self) -> str:
        out = [f"# {self.title}", ""]
        for warning in self.warnings:
            out += [f"> **WARNING:** {warning}", ">"]
        if self.warnings:
            out[-1] = ""
        for kind, payload in self.blocks:
            if kind == "heading":
                out += ["#" * payload[0] + " " + payload[1], ""]
            elif kind == "text":
                out += [payload, ""]
            elif kind == "table":
                frame, digits = payload
                out.append("| " + " | ".join(map(str, frame.columns)) + " |")
                out.append("|" + "---|" * len(frame.columns))
                for row in frame.itertuples(index=False):
                    out.append("| " + " | ".join(_cell(v, digits).replace("|", "\\|") for v in row) + " |")
                out.append("")
            elif kind == "image":
                out += [f"![{payload[1]}]({payload[0]})", "", f"*{payload[1]}*", ""]
        return "\n".join(out)

    def html(self) -> str:
        out = ["<!DOCTYPE html><html><head><meta charset='utf-8'>", f"<title>{html.escape(self.title)}</title>",
               "<style>body{font-family:sans-serif;max-width:1200px;margin:2em auto}"
               "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:2px 6px}"
               ".warning{background:#fee;border:2px solid #c00;padding:8px;margin:8px 0;font-weight:bold}"
               "img{max-width:100%}</style></head><body>", f"<h1>{html.escape(self.title)}</h1>"]
        for warning in self.warnings:
            out.append(f"<div class='warning'>WARNING: {html.escape(warning)}</div>")
        for kind, payload in self.blocks:
            if kind == "heading":
                out.append(f"<h{payload[0]}>{html.escape(payload[1])}</h{payload[0]}>")
            elif kind == "text":
                out.append(f"<p>{html.escape(payload)}</p>")
            elif kind == "table":
                frame, digits = payload
                head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
                body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(v, digits))}</td>" for v in row) + "</tr>"
                               for row in frame.itertuples(index=False))
                out.append(f"<table><tr>{head}</tr>{body}</table>")
            elif kind == "image":
                data = base64.b64encode(self.files[payload[0]]).decode()
                out.append(f"<figure><img alt='{html.escape(payload[1])}' src='data:image/png;base64,{data}'>"
                           f"<figcaption>{html.escape(payload[1])}</figcaption></figure>")
        out.append("</body></html>")
        return "\n".join(out)

    def write(self, out_dir: Path) -> None:
        for name, data in self.files.items():
            atomic_write(out_dir / name, data)
        atomic_write(out_dir / "report.md", self.markdown().encode())
        atomic_write(out_dir / "report.html", self.html().encode())
