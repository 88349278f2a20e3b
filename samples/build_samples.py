"""Regenerate the sample corpus ``libs/datatorag/samples/acme-hr/`` from its Markdown in ``_src/``.

Northwind Robotics is a fictional company; every policy was written for this project. Each
source names its output file in the front matter (``output:``), and the extension picks the
format: PDF (fpdf2, running header and page-numbered footer, tables drawn with ruled cells),
DOCX (python-docx, heading styles, grid tables), HTML (with nav/footer boilerplate that the parser
must drop), Markdown, plain text and a Workday-style JSON export. Output is byte-for-byte
deterministic (fixed dates, fixed zip timestamps), so the generated files are committed and
``make run`` needs no build step.

    .venv/bin/python -m samples.build_samples           # rewrite the generated files
    .venv/bin/python -m samples.build_samples --check   # exit 1 if any file is stale
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import textwrap
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import yaml
from markdown_it import MarkdownIt
from markdown_it.token import Token

REPO = Path(__file__).resolve().parent.parent
# package data: an installed wheel ships the corpus (``datatorag up`` finds it there)
ROOT = REPO / "libs" / "datatorag" / "samples" / "acme-hr"
SRC = ROOT / "_src"
COMPANY = "Northwind Robotics"
BUILD_DATE = datetime(2025, 1, 2, 9, 0, tzinfo=UTC)
_MD = MarkdownIt("commonmark").enable("table")


@dataclass
class Element:
    kind: str  # "h" | "p" | "ul" | "ol" | "table"
    text: str = ""
    level: int = 0
    items: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)


@dataclass
class Source:
    path: Path
    meta: dict
    body: str
    elements: list[Element]

    @property
    def title(self) -> str:
        return str(self.meta["title"])

    @property
    def output(self) -> Path:
        return ROOT / str(self.meta["output"])


def load(path: Path) -> Source:
    raw = path.read_text(encoding="utf-8")
    _, front, body = raw.split("---\n", 2)
    meta = yaml.safe_load(front)
    return Source(path, meta, body.lstrip("\n"), _elements(_MD.parse(body)))


def _inline(tok: Token) -> str:
    """Plain text of an inline token (emphasis markers dropped)."""
    out = []
    for child in tok.children or []:
        if child.type in ("text", "code_inline"):
            out.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            out.append(" ")
    return "".join(out)


def _elements(tokens: list[Token]) -> list[Element]:
    out: list[Element] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.type == "heading_open":
            out.append(Element("h", _inline(tokens[i + 1]), level=int(tok.tag[1])))
            i += 3
        elif tok.type in ("bullet_list_open", "ordered_list_open"):
            kind = "ul" if tok.type == "bullet_list_open" else "ol"
            close = tok.type.replace("_open", "_close")
            items = []
            i += 1
            while tokens[i].type != close:
                if tokens[i].type == "inline":
                    items.append(_inline(tokens[i]))
                i += 1
            out.append(Element(kind, items=items))
            i += 1
        elif tok.type == "table_open":
            rows: list[list[str]] = []
            i += 1
            while tokens[i].type != "table_close":
                if tokens[i].type == "tr_open":
                    rows.append([])
                elif tokens[i].type == "inline":
                    rows[-1].append(_inline(tokens[i]))
                i += 1
            out.append(Element("table", rows=rows))
            i += 1
        elif tok.type == "paragraph_open":
            out.append(Element("p", _inline(tokens[i + 1])))
            i += 3
        else:
            i += 1
    return out


# --- PDF ---------------------------------------------------------------------------------


def _latin1(text: str) -> str:
    """fpdf2's core fonts are Latin-1; sources are plain ASCII, and this keeps it so."""
    text.encode("latin-1")
    return text


def to_pdf(src: Source) -> bytes:
    from fpdf import FPDF
    from fpdf.enums import XPos, YPos
    from fpdf.fonts import FontFace

    title = src.title

    class _Pdf(FPDF):
        def header(self) -> None:
            self.set_font("Helvetica", "", 8)
            self.set_text_color(110)
            self.cell(0, 5, _latin1(f"{COMPANY} | {title}"), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            self.set_text_color(0)
            self.ln(4)

        def footer(self) -> None:
            self.set_y(-15)
            self.set_font("Helvetica", "", 8)
            self.set_text_color(110)
            self.cell(0, 8, f"Page {self.page_no()} of {{nb}}", align="C")
            self.set_text_color(0)

    pdf = _Pdf(format="letter")
    pdf.set_creation_date(BUILD_DATE)
    pdf.set_title(title)
    pdf.set_author(f"{COMPANY} {src.meta.get('owner', '')}".strip())
    pdf.set_subject("Human resources policy")
    pdf.set_creator("samples/build_samples.py")
    pdf.set_producer("fpdf2")
    pdf.set_margins(22, 18, 22)
    pdf.set_auto_page_break(True, margin=22)
    pdf.add_page()
    for el in src.elements:
        if el.kind == "h":
            size = {1: 20, 2: 14, 3: 11.5}.get(el.level, 11)
            if el.level > 1:
                pdf.ln(3 if el.level == 3 else 5)
            pdf.set_font("Helvetica", "B", size)
            pdf.multi_cell(0, size * 0.5, _latin1(el.text), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            if el.level == 1:
                pdf.set_font("Helvetica", "", 9)
                pdf.set_text_color(90)
                line = f"Owner: {src.meta.get('owner')}    Effective: {src.meta.get('effective')}"
                pdf.cell(0, 6, _latin1(line), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
                pdf.set_text_color(0)
            pdf.ln(2)
        elif el.kind == "p":
            pdf.set_font("Helvetica", "", 10.5)
            pdf.multi_cell(0, 5.4, _latin1(el.text), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            pdf.ln(3)
        elif el.kind in ("ul", "ol"):
            pdf.set_font("Helvetica", "", 10.5)
            for n, item in enumerate(el.items, 1):
                mark = "-" if el.kind == "ul" else f"{n}."
                pdf.set_x(pdf.l_margin + 4)
                pdf.cell(6, 5.4, mark)
                pdf.multi_cell(0, 5.4, _latin1(item), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
                pdf.ln(1)
            pdf.ln(2)
        elif el.kind == "table":
            pdf.set_font("Helvetica", "", 9.5)
            with pdf.table(
                line_height=5.5,
                text_align="LEFT",
                first_row_as_headings=True,
                headings_style=FontFace(emphasis="BOLD", fill_color=(225, 230, 240)),
            ) as table:
                for row in el.rows:
                    r = table.row()
                    for cell in row:
                        r.cell(_latin1(cell))
            pdf.ln(4)
    return bytes(pdf.output())


# --- DOCX --------------------------------------------------------------------------------


def to_docx(src: Source) -> bytes:
    import docx

    doc = docx.Document()
    props = doc.core_properties
    props.title = src.title
    props.author = props.last_modified_by = COMPANY
    props.subject = "Human resources policy"
    props.created = props.modified = BUILD_DATE.replace(tzinfo=None)
    props.revision = 1
    for el in src.elements:
        if el.kind == "h":
            doc.add_heading(el.text, level=0 if el.level == 1 else el.level - 1)
        elif el.kind == "p":
            doc.add_paragraph(el.text)
        elif el.kind in ("ul", "ol"):
            style = "List Bullet" if el.kind == "ul" else "List Number"
            for item in el.items:
                doc.add_paragraph(item, style=style)
        elif el.kind == "table":
            table = doc.add_table(rows=len(el.rows), cols=len(el.rows[0]))
            table.style = "Table Grid"
            for r, row in enumerate(el.rows):
                for c, text in enumerate(row):
                    cell = table.cell(r, c)
                    cell.text = text
                    if r == 0:
                        for run in cell.paragraphs[0].runs:
                            run.bold = True
    buf = io.BytesIO()
    doc.save(buf)
    return _normalise_zip(buf.getvalue())


def _normalise_zip(data: bytes) -> bytes:
    """Same members, fixed timestamps and order: python-docx stamps the current time."""
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for name in sorted(src.namelist(), key=lambda n: (n != "[Content_Types].xml", n)):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            dst.writestr(info, src.read(name))
    return out.getvalue()


# --- HTML, Markdown, text, JSON ----------------------------------------------------------

_HTML = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title} | {company}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;line-height:1.5}}
table{{border-collapse:collapse}}td,th{{border:1px solid #bbb;padding:.3rem .6rem}}</style>
<script>window.analytics = window.analytics || [];</script>
</head>
<body>
<header><nav><a href="/">Intranet home</a> | <a href="/hr">HR policies</a> | \
<a href="/it">IT help</a></nav></header>
<main>
<p class="meta">Owner: {owner} | Effective: {effective}</p>
{body}</main>
<footer>{company} intranet. Internal use only.</footer>
</body>
</html>
"""


def to_html(src: Source) -> bytes:
    body = _MD.render(src.body)
    return _HTML.format(
        title=src.title,
        company=COMPANY,
        owner=src.meta.get("owner"),
        effective=src.meta.get("effective"),
        body=body,
    ).encode()


def to_markdown(src: Source) -> bytes:
    meta = {k: src.meta[k] for k in ("title", "owner", "effective") if k in src.meta}
    front = yaml.safe_dump(meta, sort_keys=False, default_flow_style=False)
    return f"---\n{front}---\n\n{src.body}".encode()


def to_text(src: Source) -> bytes:
    out: list[str] = []
    for el in src.elements:
        if el.kind == "h":
            text = el.text
            under = "=" if el.level == 1 else "-"
            out.append(f"{text}\n{under * len(text)}")
            if el.level == 1:
                out.append(
                    f"Owner: {src.meta.get('owner')}. Effective: {src.meta.get('effective')}."
                )
        elif el.kind == "p":
            out.append(textwrap.fill(el.text, 78))
        elif el.kind in ("ul", "ol"):
            lines = []
            for n, item in enumerate(el.items, 1):
                mark = "- " if el.kind == "ul" else f"{n}. "
                lines.append(
                    textwrap.fill(item, 78, initial_indent=mark, subsequent_indent=" " * len(mark))
                )
            out.append("\n".join(lines))
        elif el.kind == "table":
            widths = [max(len(r[c]) for r in el.rows) for c in range(len(el.rows[0]))]
            out.append(
                "\n".join(
                    " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
                    for row in el.rows
                )
            )
    return ("\n\n".join(out) + "\n").encode()


def to_json(src: Source) -> bytes:
    """Each level-2 section becomes one record of a Workday-style report."""
    records = []
    current: dict | None = None
    for el in src.elements:
        if el.kind == "h" and el.level == 2:
            current = {
                "Reference_ID": f"POL-{1000 + len(records) + 1}",
                "Document_Title": el.text,
                "Category": "Policy",
                "Effective_Date": str(src.meta.get("effective")),
                "Owner": {
                    "Team": src.meta.get("owner"),
                    "Email": "people@northwind-robotics.example",
                },
                "Body": "",
                "Applies_To": ["Regular full-time", "Regular part-time"],
            }
            records.append(current)
        elif current is not None and el.kind == "p":
            current["Body"] = (current["Body"] + "\n\n" + el.text).strip()
    return (json.dumps({"Report_Entry": records}, indent=2, ensure_ascii=False) + "\n").encode()


RENDERERS = {
    ".pdf": to_pdf,
    ".docx": to_docx,
    ".html": to_html,
    ".md": to_markdown,
    ".txt": to_text,
    ".json": to_json,
}


def build() -> dict[Path, bytes]:
    outputs: dict[Path, bytes] = {}
    for path in sorted(SRC.glob("*.md")):
        src = load(path)
        outputs[src.output] = RENDERERS[src.output.suffix](src)
    return outputs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a generated file is stale")
    args = parser.parse_args(argv)
    outputs = build()
    stale = [p for p, data in outputs.items() if not p.is_file() or p.read_bytes() != data]
    known = set(outputs)
    extra = [p for p in ROOT.iterdir() if p.is_file() and p not in known]
    if args.check:
        for p in stale:
            print(f"stale: {p.relative_to(REPO)}")
        for p in extra:
            print(f"not generated by any source: {p.relative_to(REPO)}")
        return 1 if stale or extra else 0
    for path in stale:
        path.write_bytes(outputs[path])
        print(f"wrote {path.relative_to(REPO)} ({len(outputs[path]):,} bytes)")
    print(f"{len(outputs)} documents, {len(stale)} rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
