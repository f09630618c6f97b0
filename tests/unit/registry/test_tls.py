"""Generated TLS material: a CA clients can pin, a server certificate that passes strict checks.

Handshakes run in memory (``ssl.MemoryBIO``): no sockets.
"""

from __future__ import annotations

import ssl
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509

from common.errors import ConfigError
from registry.tls import SERVER_LIFETIME, check_supplied, ensure_certificates, parse_san


def handshake(ca: Path, cert: Path, key: Path, hostname: str) -> None:
    """Complete a TLS handshake in memory; raises ssl.SSLCertVerificationError on failure."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context(cafile=str(ca))
    client_ctx.verify_flags |= ssl.VERIFY_X509_STRICT  # Python 3.13's default
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname=hostname)
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(10):
        for name, side in (("client", client), ("server", server)):
            if not done[name]:
                try:
                    side.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            return
    raise AssertionError("handshake did not finish")


def test_first_start_creates_a_ca_and_a_server_certificate(tmp_path: Path) -> None:
    files = ensure_certificates(tmp_path / "tls", ["registry.example", "10.1.2.3"])
    assert files.generated and files.ca is not None
    for name in ("localhost", "127.0.0.1", "::1", "registry.example", "10.1.2.3"):
        handshake(files.ca, files.cert, files.key, name)
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(files.ca, files.cert, files.key, "elsewhere.example")
    for private in ("ca-key.pem", "server-key.pem"):
        assert stat.S_IMODE((tmp_path / "tls" / private).stat().st_mode) == 0o600
    assert stat.S_IMODE(files.ca.stat().st_mode) == 0o644


def test_another_ca_is_not_trusted(tmp_path: Path) -> None:
    ours = ensure_certificates(tmp_path / "a")
    theirs = ensure_certificates(tmp_path / "b")
    assert theirs.ca is not None
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(theirs.ca, ours.cert, ours.key, "localhost")


def test_restart_reuses_everything(tmp_path: Path) -> None:
    first = ensure_certificates(tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.glob("*.pem")}
    second = ensure_certificates(tmp_path)
    assert not second.generated
    assert {p.name: p.read_bytes() for p in tmp_path.glob("*.pem")} == before
    assert second == first.__class__(first.cert, first.key, first.ca, generated=False)


def test_new_name_or_near_expiry_reissues_the_server_cert_under_the_same_ca(
    tmp_path: Path,
) -> None:
    first = ensure_certificates(tmp_path)
    assert first.ca is not None
    ca_before = first.ca.read_bytes()
    cert_before = first.cert.read_bytes()

    with_name = ensure_certificates(tmp_path, ["central.lan"])
    assert with_name.generated and first.ca.read_bytes() == ca_before
    assert with_name.cert.read_bytes() != cert_before
    handshake(first.ca, with_name.cert, with_name.key, "central.lan")

    later = datetime.now(UTC) + SERVER_LIFETIME - timedelta(days=10)
    renewed = ensure_certificates(tmp_path, ["central.lan"], now=later)
    assert renewed.generated and first.ca.read_bytes() == ca_before
    cert = x509.load_pem_x509_certificate(renewed.cert.read_bytes())
    assert cert.not_valid_after_utc > later + timedelta(days=300)


def test_a_server_key_that_does_not_match_is_replaced(tmp_path: Path) -> None:
    files = ensure_certificates(tmp_path)
    other = ensure_certificates(tmp_path / "other")
    files.key.write_bytes(other.key.read_bytes())
    again = ensure_certificates(tmp_path)
    assert again.generated
    assert files.ca is not None
    handshake(files.ca, again.cert, again.key, "localhost")


def test_unwritable_directory_is_a_config_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ConfigError, match="cannot write TLS files"):
        ensure_certificates(blocker / "tls")


def test_supplied_certificate_must_match_its_key(tmp_path: Path) -> None:
    one = ensure_certificates(tmp_path / "one")
    two = ensure_certificates(tmp_path / "two")
    assert check_supplied(one.cert, one.key).ca is None
    with pytest.raises(ConfigError, match="cannot load"):
        check_supplied(one.cert, two.key)
    with pytest.raises(ConfigError, match="no such file"):
        check_supplied(tmp_path / "missing.pem", one.key)


def test_san_list_parsing() -> None:
    assert parse_san("a.example, 10.0.0.1,,[::1]") == ("a.example", "10.0.0.1", "[::1]")
    assert parse_san("") == ()
    for bad in ("bad name", "-x.example", "a..b", "http://x"):
        with pytest.raises(ValueError, match="neither a host name nor an IP"):
            parse_san(bad)
