"""The committed contract artifacts in contracts/abi/ must match the sources.

Rebuilds them with scripts/build-contracts into a temporary directory and
compares byte for byte. Needs the npm toolchain (`npm ci`); without it the test
fails on purpose instead of skipping, so a stale ABI cannot slip through.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ABI_DIR = ROOT / "contracts" / "abi"
BUILD = ROOT / "scripts" / "build-contracts"
CONTRACTS = (
    "INFTPackage",
    "GenerationNFT",
    "SignatureCheck",
    "DevSmartAccount",
    "DevSmartAccountFactory",
)


def _require_toolchain() -> None:
    missing = [
        p
        for p in (
            ROOT / "node_modules" / "solc" / "solc.js",
            ROOT / "node_modules" / "@openzeppelin" / "contracts",
        )
        if not p.exists()
    ]
    probe = subprocess.run(
        [str(ROOT / "scripts" / "foundry-bin"), "forge"],
        capture_output=True,
        text=True,
        check=False,
    )
    if missing or probe.returncode != 0:
        raise AssertionError(
            "contract toolchain missing: run `npm ci` in "
            f"{ROOT} (missing: {[str(p) for p in missing]}; "
            f"foundry-bin: {probe.stderr.strip() or 'ok'})"
        )


def test_committed_artifacts_match_sources() -> None:
    _require_toolchain()
    with tempfile.TemporaryDirectory(prefix="inftd-abi-") as tmp:
        proc = subprocess.run(
            [str(BUILD), tmp],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert proc.returncode == 0, (
            f"scripts/build-contracts failed (exit {proc.returncode}):\n"
            f"{proc.stdout}\n{proc.stderr}"
        )
        for name in CONTRACTS:
            built = Path(tmp) / f"{name}.json"
            committed = ABI_DIR / f"{name}.json"
            assert built.is_file(), f"scripts/build-contracts did not write {name}.json"
            assert committed.is_file(), (
                f"{committed.relative_to(ROOT)} is missing: run scripts/build-contracts "
                "and commit contracts/abi/"
            )
            assert built.read_bytes() == committed.read_bytes(), (
                f"{committed.relative_to(ROOT)} is stale (differs from the sources): "
                "run scripts/build-contracts and commit contracts/abi/"
            )


def test_committed_artifacts_shape() -> None:
    import json

    for name in CONTRACTS:
        path = ABI_DIR / f"{name}.json"
        doc = json.loads(path.read_text(encoding="utf-8"))
        assert sorted(doc) == ["abi", "bytecode", "contractName", "deployedBytecode"], path
        assert doc["contractName"] == name
        assert isinstance(doc["abi"], list), path
        assert doc["abi"], path
        for key in ("bytecode", "deployedBytecode"):
            assert doc[key].startswith("0x"), (path, key)
            assert len(doc[key]) > 2, (path, key)
            int(doc[key], 16)
