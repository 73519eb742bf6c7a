"""Every security citation in code and docs leads to an entry of docs/security.md.

Comments, docstrings and docs cite requirements and catalogue rows by number: ``R12``,
``SECURITY R46``, ``SECURITY §3.5``, ``catalogue C6``, ``(R45, V3–V5)``, ``(M5)``. These tests
read those citations from ``oauthconn/**/*.py``, ``tests/*.py`` (comments and strings only, so
names like ``K1`` in code are not citations), ``docs/*.md`` and ``README.md``, and check that
each one resolves to an anchor (``<a id="r12"></a>``) in docs/security.md. They also check that
the page's own links, and the modules and tests it names, exist.

What counts as a citation:

- ``R<n>`` anywhere in prose, and ranges such as ``R22-R25``;
- after ``SECURITY``, ``SECURITY.md`` or ``catalogue``: a run of items separated by commas,
  slashes, "and" or spaces: ``R<n>``, ``§2.2`` (a section of the page), a catalogue row
  (``C6``, ``T1-T29``), a requirement group letter (``SECURITY C``) or a bare section number
  (``SECURITY 3.5``);
- a catalogue row (``C``, ``T``, ``F``, ``I``, ``M``, ``V``, ``P``, ``N`` and a number) in a run
  that also holds an ``R<n>``, or alone in parentheses (``(M5)``, ``(T28: ...)``);
- ``T<n> in the threat model``, which names an attacker, not a catalogue row.

A bare ``§4.1.2`` is left alone: next to an RFC it is the RFC's section.
"""

from __future__ import annotations

import io
import re
import tokenize
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECURITY_MD = ROOT / "docs" / "security.md"

_ROW = r"[CTFIMVPN]\d{1,2}"
_ONE = rf"(?:R\d{{1,2}}|{_ROW})(?:\s?[-–]\s?[A-Z]?\d{{1,2}})?"
_SECTION = r"§\d+(?:\.\d+)*"
_PREFIXED_ONE = rf"(?:{_ONE}|{_SECTION}|\d+\.\d+|[A-L](?![\w§-]))"
_SEP = r"(?:\s*[,/]\s*|\s+and\s+|\s+)"
# A run of items not glued to a word or a dotted number on the left (RS256, E001, 0.R1).
_RUN = re.compile(rf"(?<![\w.§-])(?:{_ONE}|{_SECTION})(?:{_SEP}(?:{_ONE}|{_SECTION}))*(?![\w])")
_PREFIXED_RUN = re.compile(
    rf"\b(?:SECURITY(?:\.md)?|catalogue)\s+"
    rf"({_PREFIXED_ONE}(?:{_SEP}{_PREFIXED_ONE})*)(?![\w])"
)
_ITEM = re.compile(rf"{_ONE}|{_SECTION}|\d+\.\d+|\b[A-L]\b")
_THREAT = re.compile(r"\bT(\d{1,2}) in the threat model")
_ANCHOR = re.compile(r'<a id="([^"]+)"></a>')


@dataclass(frozen=True)
class Citation:
    """One reference as written, where it was written, and the anchor it must resolve to."""

    path: str
    line: int
    text: str
    anchors: tuple[str, ...]

    def __str__(self) -> str:
        wanted = ", ".join(f"#{anchor}" for anchor in self.anchors)
        return f"{self.path}:{self.line}: {self.text!r} (needs {wanted})"


def anchors_for(item: str, *, prefixed: bool) -> tuple[str, ...]:
    """The docs/security.md anchors one citation item needs; () when it is not a citation."""
    if item.startswith("§"):
        return ("s" + item[1:].replace(".", "-"),) if prefixed else ()
    if item[0].isdigit():
        return ("s" + item.replace(".", "-"),)
    if len(item) == 1:
        return (f"group-{item.lower()}",)
    letter = item[0]
    numbers = [int(n) for n in re.findall(r"\d+", item)]
    span = range(numbers[0], numbers[-1] + 1)
    return tuple(f"{letter.lower()}{n}" for n in span)


def citations_in(text: str, path: str, first_line: int = 1) -> list[Citation]:
    """All citations in a piece of prose (a comment, a docstring, a Markdown file)."""
    found: list[Citation] = []

    def add(start: int, item: str, anchors: tuple[str, ...]) -> None:
        if anchors:
            line = first_line + text.count("\n", 0, start)
            found.append(Citation(path, line, item, anchors))

    prefixed_spans = []
    for run in _PREFIXED_RUN.finditer(text):
        prefixed_spans.append(run.span(1))
        for item in _ITEM.finditer(run.group(1)):
            add(run.start(1) + item.start(), item.group(), anchors_for(item.group(), prefixed=True))
    for threat in _THREAT.finditer(text):
        add(threat.start(), threat.group(), (f"threat-t{threat.group(1)}",))
    for run in _RUN.finditer(text):
        if any(start <= run.start() < end for start, end in prefixed_spans):
            continue
        rows_count = _rows_are_citations(text, run)
        for item in _ITEM.finditer(run.group()):
            value = item.group()
            if value.startswith("R") or (rows_count and not value.startswith("§")):
                add(run.start() + item.start(), value, anchors_for(value, prefixed=False))
    return found


def _rows_are_citations(text: str, run: re.Match[str]) -> bool:
    """Catalogue rows outside a SECURITY/catalogue run count next to an R<n> or in parentheses."""
    if re.search(r"(?<![\w-])R\d", run.group()):
        return True
    after = text[run.end() : run.end() + 24]
    if after.startswith(" in the threat model"):
        return False
    return text[: run.start()].endswith("(") and after[:1] in (")", ":")


def python_prose(source: str) -> list[tuple[int, str]]:
    """(first line, text) of every comment and string literal: identifiers are not citations."""
    kinds = {tokenize.COMMENT, tokenize.STRING}
    kinds.add(getattr(tokenize, "FSTRING_MIDDLE", tokenize.STRING))
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    return [(tok.start[0], tok.string) for tok in tokens if tok.type in kinds]


def scanned_files() -> list[Path]:
    """The files whose citations must resolve (docs/security.md itself is checked apart)."""
    files = sorted((ROOT / "oauthconn").rglob("*.py"))
    files += sorted(p for p in (ROOT / "tests").glob("*.py") if p.name != Path(__file__).name)
    files += sorted(p for p in (ROOT / "docs").glob("*.md") if p != SECURITY_MD)
    files.append(ROOT / "README.md")
    return files


def all_citations() -> list[Citation]:
    citations: list[Citation] = []
    for path in scanned_files():
        name = str(path.relative_to(ROOT))
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".py":
            for line, prose in python_prose(text):
                citations += citations_in(prose, name, line)
        else:
            citations += citations_in(text, name)
    return citations


def security_anchors() -> set[str]:
    return set(_ANCHOR.findall(SECURITY_MD.read_text(encoding="utf-8")))


def test_every_citation_resolves_to_an_entry_of_docs_security_md():
    anchors = security_anchors()
    citations = all_citations()
    unresolved = [c for c in citations if not set(c.anchors) <= anchors]
    assert citations, "no citations found at all: the scanner is broken"
    assert not unresolved, (
        f"{len(unresolved)} security citation(s) lead nowhere: add the entry to "
        "docs/security.md or fix the citation:\n" + "\n".join(f"  {c}" for c in unresolved)
    )


def test_the_page_links_only_to_its_own_anchors():
    text = SECURITY_MD.read_text(encoding="utf-8")
    anchors = security_anchors()
    broken = sorted(set(re.findall(r"\]\(#([^)]+)\)", text)) - anchors)
    assert not broken, f"docs/security.md links to missing anchors: {broken}"


def test_every_requirement_and_catalogue_row_has_one_anchor():
    text = SECURITY_MD.read_text(encoding="utf-8")
    ids = _ANCHOR.findall(text)
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    expected = {f"r{n}" for n in range(1, 52)} | {"fc", "s1", "s2", "s3"}
    missing = sorted(expected - set(ids), key=lambda a: (len(a), a))
    assert not duplicates, f"anchors defined twice in docs/security.md: {duplicates}"
    assert not missing, f"docs/security.md has no entry for: {missing}"


def test_the_modules_and_tests_the_page_names_exist():
    text = SECURITY_MD.read_text(encoding="utf-8")
    missing = [name for name in re.findall(r"`([^`\s]+)`", text) if not _names_something(name)]
    assert not missing, f"docs/security.md names files or tests that do not exist: {missing}"


def _names_something(name: str) -> bool:
    """True unless ``name`` looks like a module, a test file or a test and does not exist."""
    tests_dir = ROOT / "tests"
    file_part, _, test_name = name.partition("::")
    if re.fullmatch(r"test_\w+\.py", file_part):
        path = tests_dir / file_part
        return path.exists() and (not test_name or f"def {test_name}(" in path.read_text())
    if re.fullmatch(r"test_\w+", name):
        return any(f"def {name}(" in p.read_text() for p in tests_dir.glob("test_*.py"))
    if re.fullmatch(r"[\w/]+\.py|[\w/]+/", name):
        return (ROOT / "oauthconn" / name).exists() or (ROOT / name).exists()
    return True


# --- the scanner itself, on the forms the code uses today ---------------------------------------


def _anchors(text: str) -> list[tuple[str, ...]]:
    return [c.anchors for c in citations_in(text, "x")]


def test_the_scanner_reads_every_citation_form_in_use():
    assert _anchors("redirect_uri must match (R12).") == [("r12",)]
    assert _anchors("(SECURITY R22-R25, R39, §2.2)") == [
        ("r22", "r23", "r24", "r25"),
        ("r39",),
        ("s2-2",),
    ]
    assert _anchors("SECURITY.md §2.2, §2.3 and §2.8") == [("s2-2",), ("s2-3",), ("s2-8",)]
    assert _anchors("(SECURITY §2.2 T1-T3, R26)") == [("s2-2",), ("t1", "t2", "t3"), ("r26",)]
    assert _anchors("documented as SECURITY R28/§2.2 ask") == [("r28",), ("s2-2",)]
    assert _anchors("(catalogue I1-I3)") == [("i1", "i2", "i3")]
    assert _anchors("(RFC 6749 §5.2; R29, T20)") == [("r29",), ("t20",)]
    assert _anchors("(R45, V3–V5)") == [("r45",), ("v3", "v4", "v5")]
    assert _anchors("must be there (M5). Also (T28: odd charsets)") == [("m5",), ("t28",)]
    assert _anchors("(T2 in the threat model)") == [("threat-t2",)]
    assert _anchors("(RFC 9207; SECURITY C, §2.1)") == [("group-c",), ("s2-1",)]
    assert _anchors("no response oracle (SECURITY 3.5)") == [("s3-5",)]
    assert _anchors("SECURITY\n    R26). Next") == [("r26",)]


def test_the_scanner_leaves_rfc_sections_and_lookalikes_alone():
    assert _anchors("RFC 7009 §2.2 answers 200; see §2.2.1") == []
    assert _anchors("RS256, HS256, oauthconn.E001, S256, K1 = key(), noqa: F401") == []
    assert _anchors('{"name": "P2"} and (P95 latency)') == []
    assert _anchors("SECURITY_RELEVANT_FIELDS") == []


def test_python_citations_come_from_comments_and_strings_only():
    source = 'K1 = sign()  # (R33)\n"""Checks (catalogue I13)."""\nT2 = 3\n'
    prose = python_prose(source)
    found = [c.anchors for line, text in prose for c in citations_in(text, "x.py", line)]
    assert found == [("r33",), ("i13",)]


def test_an_unresolved_citation_is_reported_with_its_place():
    (citation,) = citations_in("first line\nsee R99 here", "oauthconn/x.py", 10)
    assert str(citation) == "oauthconn/x.py:11: 'R99' (needs #r99)"
    assert "r99" not in security_anchors()
