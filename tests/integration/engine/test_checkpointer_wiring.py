"""The engine role writes checkpoints at start, every interval and at clean stop, with the right key."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from tradesignals.config import ConfigError, load_settings
from tradesignals.domain.checkpoints import verify_chain
from tradesignals.signing import Ed25519Signer, check_signature
from tradesignals.wiring import build_services, build_signer, start_roles


def run_engine(home: Path, seconds: float, **settings: object) -> list[int]:
    """Start the engine role (memory bus, no feed), let it run, stop cleanly; checkpoint numbers seen."""

    async def go() -> list[int]:
        services = await build_services(load_settings(home=home, model="rule", **settings))
        seen: list[int] = []
        try:
            start_roles(services, {"engine"})
            await asyncio.sleep(seconds)
            latest = services.checkpoints.latest()
            seen.append(latest.number if latest is not None else 0)
        finally:
            await services.close()
        return seen

    return asyncio.run(go())


def test_checkpoints_at_start_every_interval_and_at_stop(tmp_path: Path) -> None:
    [while_running] = run_engine(tmp_path, 1.0, checkpoint_interval_s=0.3)
    assert while_running >= 3  # start + at least two intervals
    key = tmp_path / "ledger-key.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    signer = build_signer(load_settings(home=tmp_path))
    assert signer is not None

    from tradesignals.storage.checkpoints import SqlCheckpointRepository
    from tradesignals.storage.db import make_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'tradesignals.db'}")
    try:
        stored = SqlCheckpointRepository(engine).page()
    finally:
        engine.dispose()
    assert len(stored) == while_running + 1  # the clean stop's
    assert verify_chain(stored, check_signature).ok
    assert {cp.public_key for cp in stored} == {signer.public_key}
    assert all(cp.seq == 0 for cp in stored)  # nothing traded: the empty ledger's head

    # A restart keeps the key and continues the chain.
    run_engine(tmp_path, 0.1)
    engine = make_engine(f"sqlite:///{tmp_path / 'tradesignals.db'}")
    try:
        after = SqlCheckpointRepository(engine).page()
    finally:
        engine.dispose()
    assert after[: len(stored)] == stored and len(after) == len(stored) + 2
    assert verify_chain(after, check_signature).ok


def test_a_replaced_key_stops_the_engine_from_starting(tmp_path: Path) -> None:
    run_engine(tmp_path, 0.05)
    key = tmp_path / "ledger-key.pem"
    key.unlink()
    key.write_bytes(Ed25519Signer.generate().pem())
    with pytest.raises(ConfigError, match="not the key in force") as info:
        run_engine(tmp_path, 0.05)
    assert "\n" not in str(info.value) and "rotate" in str(info.value)


def test_server_mode_reads_the_key_and_never_creates_one(tmp_path: Path) -> None:
    signer = Ed25519Signer.generate()
    path = tmp_path / "secret.pem"
    path.write_bytes(signer.pem())
    server = {"mode": "server", "home": tmp_path / "home"}
    from_file = build_signer(load_settings(**server, ledger_key_file=path))
    assert from_file is not None and from_file.public_key == signer.public_key
    seed = serialization.load_pem_private_key(signer.pem(), None).private_bytes(  # type: ignore[union-attr]
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    from_env = build_signer(load_settings(**server, ledger_key=seed.hex()))
    assert from_env is not None and from_env.public_key == signer.public_key
    from_pem_env = build_signer(load_settings(**server, ledger_key=signer.pem().decode()))
    assert from_pem_env is not None and from_pem_env.public_key == signer.public_key
    assert build_signer(load_settings(**server)) is None
    assert not (tmp_path / "home").exists()


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"s3cr3t-not-a-key-4242", "not a key"),
        (b"-----BEGIN PRIVATE KEY-----\ns3cr3t4242\n-----END PRIVATE KEY-----\n", "unreadable key"),
    ],
)
def test_a_bad_key_is_one_line_that_never_shows_it(tmp_path: Path, content: bytes, why: str) -> None:
    path = tmp_path / "bad.pem"
    path.write_bytes(content)
    for settings in (
        load_settings(mode="server", ledger_key_file=path),
        load_settings(home=tmp_path, ledger_key_file=path),
        load_settings(mode="server", ledger_key=content.decode()),
    ):
        with pytest.raises(ConfigError, match=why) as info:
            build_signer(settings)
        assert "s3cr3t" not in str(info.value) and "4242" not in str(info.value)
        assert "\n" not in str(info.value)
    assert "s3cr3t" not in repr(load_settings(mode="server", ledger_key=content.decode()))
    missing = load_settings(mode="server", ledger_key_file=tmp_path / "nope.pem")
    with pytest.raises(ConfigError, match=r"nope\.pem"):
        build_signer(missing)


def test_the_engine_role_without_a_key_is_refused(tmp_path: Path) -> None:
    async def go() -> None:
        services = await build_services(load_settings(home=tmp_path, model="rule"))
        services.signer = None  # as on a server-mode node without TS_LEDGER_KEY_FILE
        try:
            with pytest.raises(ConfigError, match="TS_LEDGER_KEY_FILE"):
                start_roles(services, {"engine"})
            assert services.tasks == []  # nothing half-started
        finally:
            await services.close()

    asyncio.run(go())


def test_a_key_file_readable_by_others_is_used_with_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    signer = Ed25519Signer.generate()
    path = tmp_path / "ledger-key.pem"
    path.write_bytes(signer.pem())
    os.chmod(path, 0o644)
    loaded = build_signer(load_settings(home=tmp_path))
    assert loaded is not None and loaded.public_key == signer.public_key
    assert "ledger.key_readable_by_others" in capsys.readouterr().out


def test_a_rotation_hands_over_to_the_new_key_and_the_chain_still_verifies(tmp_path: Path) -> None:
    from tradesignals.ledger_cli import rotate_command, verify_command

    run_engine(tmp_path, 0.05)  # checkpoints 1, 2 with the first key
    old = build_signer(load_settings(home=tmp_path))
    assert old is not None
    lines: list[str] = []
    new_file = tmp_path / "next-key.pem"
    assert rotate_command(new_file, load_settings(home=tmp_path), echo=lines.append) == 0, lines
    new = build_signer(load_settings(home=tmp_path))
    assert new is not None and new.public_key != old.public_key
    assert lines[0].startswith("rotated: checkpoint 3 ") and "ledger-key.retired-3.pem" in lines[0]
    assert stat.S_IMODE((tmp_path / "ledger-key.pem").stat().st_mode) == 0o600
    run_engine(tmp_path, 0.05)  # the engine starts with the new key and continues the chain

    lines.clear()
    assert verify_command(load_settings(home=tmp_path), echo=lines.append) == 0, lines
    assert "5 checkpoints verified" in lines[0]
    # The retired key can no longer start the engine: it is not the key in force.
    (tmp_path / "ledger-key.pem").write_bytes((tmp_path / "ledger-key.retired-3.pem").read_bytes())
    with pytest.raises(ConfigError, match="not the key in force"):
        run_engine(tmp_path, 0.05)
    lines.clear()
    assert rotate_command(new_file, load_settings(home=tmp_path), echo=lines.append) == 2
    assert lines[0].startswith("ledger rotate-key failed: ") and "not the key in force" in lines[0]
