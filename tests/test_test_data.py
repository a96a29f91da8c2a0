"""The suite carries its own data: the samples match their checksums and no test reads outside the repository."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from conftest import SAMPLES, TESTS


def test_every_sample_matches_its_checksum() -> None:
    sums = (SAMPLES / "SHA256SUMS").read_text().splitlines()
    listed = {}
    for line in sums:
        digest, name = line.split(maxsplit=1)
        listed[name.lstrip("*")] = digest
    on_disk = {p.relative_to(SAMPLES).as_posix() for p in SAMPLES.rglob("*") if p.is_file()}
    assert on_disk - {"README.md", "SHA256SUMS"} == set(listed)
    for name, digest in listed.items():
        assert hashlib.sha256((SAMPLES / name).read_bytes()).hexdigest() == digest, name


def test_samples_live_inside_the_repository() -> None:
    if "FABRIC_SAMPLES" not in os.environ:
        assert SAMPLES.resolve().is_relative_to(TESTS.parent)


def test_no_test_reads_a_directory_beside_the_checkout() -> None:
    pattern = re.compile(r"\.\./shared|parents\[\d\]\s*/\s*\"shared\"|\.parent\s*/\s*\"shared\"")
    offenders = [f"{p.relative_to(TESTS)}:{n}" for p in TESTS.rglob("*.py") if p.name != Path(__file__).name
                 for n, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert offenders == []
