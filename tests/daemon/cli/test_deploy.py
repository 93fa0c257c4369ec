from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from web3 import Web3
from web3.logs import DISCARD

from inftd.daemon.cli.devnet import BUYER, DEPLOYER, FRIEND, MINTER, Anvil
from inftd.daemon.config import DEFAULT_PACKAGES
from inftd.indexer.abi import abi_version, load_artifact
from inftd.indexer.deployment import Deployment
from tests.conftest import CREDIT_PRICE_WEI


def contracts(url: str, deployment: Deployment) -> tuple:
    w3 = Web3(Web3.HTTPProvider(url))
    package = w3.eth.contract(deployment.package_address, abi=load_artifact("INFTPackage").abi)
    generation = w3.eth.contract(
        deployment.generation_address, abi=load_artifact("GenerationNFT").abi
    )
    return w3, package, generation


def test_deployment_is_configured_on_chain(chain: Anvil, deployment: Deployment) -> None:
    w3, package, generation = contracts(chain.url, deployment)
    assert deployment.chain_id == 31337
    assert deployment.abi_version == abi_version()
    block = w3.eth.get_block(deployment.deploy_block)
    assert block["hash"].to_0x_hex() == deployment.deploy_block_hash
    for p in DEFAULT_PACKAGES:
        assert tuple(package.functions.packageTypes(p.id).call()) == (p.price_wei, p.credits, True)
    assert package.functions.creditPrice().call() == CREDIT_PRICE_WEI
    assert package.functions.owner().call() == DEPLOYER.address
    operator_role = package.functions.OPERATOR_ROLE().call()
    assert package.functions.hasRole(operator_role, DEPLOYER.address).call()
    minter_role = generation.functions.MINTER_ROLE().call()
    assert generation.functions.hasRole(minter_role, MINTER.address).call()
    assert not generation.functions.hasRole(minter_role, BUYER.address).call()


def test_a_purchase_on_the_deployment_emits_package_purchased(
    chain: Anvil, deployment: Deployment
) -> None:
    w3, package, _ = contracts(chain.url, deployment)
    starter = DEFAULT_PACKAGES[0]
    tx = package.functions.purchasePackage(starter.id).transact(
        {"from": BUYER.address, "value": starter.price_wei}
    )
    receipt = w3.eth.wait_for_transaction_receipt(tx)
    (event,) = package.events.PackagePurchased().process_receipt(receipt, errors=DISCARD)
    assert event["args"]["buyer"] == BUYER.address
    assert event["args"]["credits"] == starter.credits
    assert package.functions.ownerOf(event["args"]["tokenId"]).call() == BUYER.address


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("INFTD_")}
    return subprocess.run(
        [sys.executable, "-m", "inftd.daemon.cli.main", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_deploy_takes_the_key_from_the_environment_only(chain: Anvil, tmp_path: Path) -> None:
    out = tmp_path / "deployment.json"
    result = run_cli(
        "deploy", "--rpc-url", chain.url, "--out", str(out), "--minter", FRIEND.address,
        env={"INFTD_DEPLOYER_KEY": FRIEND.key, "INFTD_LOG_LEVEL": "DEBUG"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert FRIEND.key not in result.stdout + result.stderr
    assert FRIEND.key[2:] not in result.stdout + result.stderr
    written = Deployment.read(out)
    assert written.deployer == FRIEND.address
    assert written.minter == FRIEND.address
    assert set(json.loads(out.read_text())) >= {
        "chainId", "packageAddress", "generationAddress", "deployBlock", "abiVersion",
    }  # fmt: skip
    _w3, package, _ = contracts(chain.url, written)
    assert package.functions.owner().call() == FRIEND.address


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "set INFTD_DEPLOYER_KEY"),
        (
            {"INFTD_DEPLOYER_KEY": "0x1234-not-a-key"},
            "INFTD_DEPLOYER_KEY is not a valid private key",
        ),
    ],
)
def test_cli_deploy_without_a_usable_key_fails_in_one_line(
    chain: Anvil, tmp_path: Path, env: dict[str, str], message: str
) -> None:
    result = run_cli("deploy", "--rpc-url", chain.url, "--data-dir", str(tmp_path), env=env)
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0
    assert message in result.stderr
    assert "0x1234-not-a-key" not in result.stderr
    assert not (tmp_path / "deployment.json").exists()


def test_cli_deploy_to_an_unreachable_chain(tmp_path: Path) -> None:
    result = run_cli(
        "deploy", "--rpc-url", "http://127.0.0.1:9", "--data-dir", str(tmp_path),
        env={"INFTD_DEPLOYER_KEY": FRIEND.key},
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.startswith("inftd: error: cannot reach the chain at http://127.0.0.1:9")
    assert FRIEND.key not in result.stderr
