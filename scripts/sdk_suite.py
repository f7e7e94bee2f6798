"""Run the iii-sdk 0.25.0 integration suite (from its published sdist) against
iiilog, and print a pass/fail tally per file.

    python scripts/sdk_suite.py [--files test_state.py ...] [--json OUT]

The sdist is fetched with pip (``pip download --no-binary :all:``) into
``.venv/sdk-suite`` once. The engine runs with ``tests/sdk_suite/config.yaml``
on free ports and a temp data dir; the suite reads ``III_URL`` and
``III_HTTP_URL``. The upload and download tests of ``test_api_triggers.py``
read ``test-assets/handbook.pdf`` beside the sdist, which it does not ship: a
small PDF of our own (``synthetic_pdf``) is written there. Exit status 0 when
every selected file passed and none was skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.engine_process import EngineProcess  # noqa: E402

VERSION = "0.25.0"
# The files of the SDK's suite that talk to an engine.
ENGINE_FILES = [
    "test_state.py",
    "test_streams.py",
    "test_api_triggers.py",
    "test_middleware.py",
    "test_healthcheck.py",
    "test_pubsub.py",
    "test_bridge.py",
    "test_data_channels.py",
    "test_rbac_workers.py",
    "test_http_external_functions_integration.py",
    "test_trigger_type_lifecycle.py",
    "test_observe_e2e_local.py",
    "test_observe_e2e_routed.py",
]


def synthetic_pdf(pages: int = 30, lines: int = 60) -> bytes:
    """A valid PDF 1.4 of plain text pages (about 90 KB, so a download spans
    more than one 64 KiB channel frame), with an exact cross-reference table."""
    objects: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"",  # the page tree, filled in below
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    kids = []
    for page in range(1, pages + 1):
        text = [b"BT /F1 9 Tf 40 800 Td 11 TL"]
        for line in range(1, lines + 1):
            text.append(
                f"(iiilog SDK suite fixture: page {page}, line {line}) '".encode()
            )
        text.append(b"ET")
        stream = b"\n".join(text)
        objects.append(
            b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream)
        )
        content = len(objects)
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842]"
            b" /Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % content
        )
        kids.append(b"%d 0 R" % len(objects))
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(kids), pages)
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def suite_dir() -> Path:
    """The sdist, unpacked so that ``test-assets`` (five levels above its test
    files, where the upload tests look) lands inside the cache too."""
    cache = ROOT / ".venv" / "sdk-suite"
    unpacked = cache / VERSION / "sdist"
    target = unpacked / f"iii_sdk-{VERSION}"
    if not (target / "tests").exists():
        unpacked.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--no-binary",
                ":all:",
                f"iii-sdk=={VERSION}",
                "-d",
                str(cache),
            ],
            check=True,
        )
        with tarfile.open(cache / f"iii_sdk-{VERSION}.tar.gz") as tar:
            tar.extractall(unpacked, filter="data")
    assets = (target / "tests" / "test_api_triggers.py").parents[4] / "test-assets"
    assets.mkdir(exist_ok=True)
    (assets / "handbook.pdf").write_bytes(synthetic_pdf())
    return target


def run(files: list[str]) -> dict[str, dict[str, int]]:
    suite = suite_dir()
    with tempfile.TemporaryDirectory() as tmp:
        engine = EngineProcess(
            Path(tmp) / "data",
            config=ROOT / "tests" / "sdk_suite" / "config.yaml",
            env={"IIILOG_RBAC_PORT": "0"},
        )
        engine.start()
        report = Path(tmp) / "report.xml"
        try:
            env = {
                **os.environ,
                "III_URL": engine.worker_url,
                "III_RBAC_WORKER_URL": engine.info.get("rbac_url", ""),
                "III_HTTP_URL": engine.http_url,
                "OTEL_ENABLED": "false",
            }
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pytest",
                    "-q",
                    "-p",
                    "no:cacheprovider",
                    "-c",
                    str(suite / "pyproject.toml"),
                    "-o",
                    "addopts=",
                    "-o",
                    "asyncio_mode=auto",
                    "--timeout=120",
                    f"--junitxml={report}",
                    *[f"tests/{f}" for f in files],
                ],
                cwd=suite,
                env=env,
                check=False,
            )
        finally:
            engine.stop()
        tally: dict[str, dict[str, int]] = {}
        for case in ET.parse(report).getroot().iter("testcase"):
            parts = case.get("classname", "").split(".")
            name = next((p for p in parts if p.startswith("test_")), parts[-1]) + ".py"
            row = tally.setdefault(name, {"passed": 0, "failed": 0, "skipped": 0})
            if case.find("failure") is not None or case.find("error") is not None:
                row["failed"] += 1
            elif case.find("skipped") is not None:
                row["skipped"] += 1
            else:
                row["passed"] += 1
        return tally


def main() -> int:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").replace("``", ""),  # plain text, not RST
        formatter_class=argparse.RawTextHelpFormatter,
    )
    parser.add_argument(
        "--files",
        nargs="*",
        default=ENGINE_FILES,
        help="the suite's files to run (default: those that talk to an engine)",
    )
    parser.add_argument("--json", help="also write the tally here")
    args = parser.parse_args()
    tally = run(args.files)
    print(f"{'file':<48}{'passed':>8}{'failed':>8}{'skipped':>9}")
    for name in sorted(tally):
        row = tally[name]
        print(f"{name:<48}{row['passed']:>8}{row['failed']:>8}{row['skipped']:>9}")
    total = {
        k: sum(r[k] for r in tally.values()) for k in ("passed", "failed", "skipped")
    }
    print(f"{'total':<48}{total['passed']:>8}{total['failed']:>8}{total['skipped']:>9}")
    if args.json:
        Path(args.json).write_text(json.dumps(tally, indent=2))
    return 1 if total["failed"] or total["skipped"] else 0


if __name__ == "__main__":
    sys.exit(main())
