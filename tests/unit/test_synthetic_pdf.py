"""``scripts.sdk_suite.synthetic_pdf``: the PDF the SDK suite's upload and
download tests read is well formed (every cross-reference points at its
object, the trailer at the table)."""

from __future__ import annotations

import re

from scripts.sdk_suite import synthetic_pdf


def test_cross_references_point_at_their_objects() -> None:
    pdf = synthetic_pdf(pages=3, lines=5)
    assert pdf.startswith(b"%PDF-1.4\n") and pdf.endswith(b"%%EOF\n")
    startxref = int(re.search(rb"startxref\n(\d+)\n", pdf).group(1))  # type: ignore[union-attr]
    assert pdf[startxref:].startswith(b"xref\n0 ")
    table = pdf[startxref:].split(b"\n")
    count = int(table[1].split()[1])
    entries = table[3 : 2 + count]
    # the catalog, the page tree, the font, and a content and a page per page
    assert len(entries) == count - 1 == 3 + 2 * 3
    for number, entry in enumerate(entries, start=1):
        offset = int(entry.split()[0])
        assert pdf[offset:].startswith(b"%d 0 obj\n" % number)
    assert b"/Count 3" in pdf and b"/Size %d" % count in pdf
    for match in re.finditer(rb"<< /Length (\d+) >>\nstream\n", pdf):
        end = match.end() + int(match.group(1))
        assert pdf[end:].startswith(b"\nendstream")


def test_default_size_spans_several_channel_frames() -> None:
    assert len(synthetic_pdf()) > 64 * 1024
