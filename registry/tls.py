"""The registry's TLS material: a private CA and a server certificate it signs.

On first start :func:`ensure_certificates` writes, under ``<data dir>/registry-tls/``::

    ca.pem            the CA certificate: give it to clients (EV_REGISTRY_CA)
    ca-key.pem        the CA private key (mode 0600)
    server.pem        the server certificate, signed by the CA
    server-key.pem    the server private key (mode 0600)

Later starts reuse them. The server certificate (never the CA) is issued again when it
is missing, expires within :data:`RENEW_BEFORE`, or lacks a requested subject name, so
clients that pinned ``ca.pem`` keep working. Keys are ECDSA P-256.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import socket
import ssl
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from common.config import make_private_dir
from common.errors import ConfigError

__all__ = [
    "DEFAULT_NAMES",
    "RENEW_BEFORE",
    "TlsFiles",
    "check_supplied",
    "ensure_certificates",
    "parse_san",
]

DEFAULT_NAMES = ("localhost", "127.0.0.1", "::1")
CA_LIFETIME = timedelta(days=3650)
SERVER_LIFETIME = timedelta(days=397)
RENEW_BEFORE = timedelta(days=30)
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"(?:\*\.)?(?:{_LABEL}\.)*{_LABEL}")

SubjectName = x509.DNSName | x509.IPAddress


@dataclass(frozen=True)
class TlsFiles:
    """Where the server's certificate and key are, and the CA file clients should trust.

    ``ca`` is None when the operator supplied the certificate (its CA is theirs).
    """

    cert: Path
    key: Path
    ca: Path | None
    generated: bool = False


def parse_san(text: str) -> tuple[str, ...]:
    """Parse ``--tls-san``: comma-separated host names and IP addresses. Raises ValueError."""
    names = []
    for raw in text.split(","):
        name = raw.strip()
        if not name:
            continue
        _subject_name(name)  # validates
        names.append(name)
    return tuple(names)


def _subject_name(name: str) -> SubjectName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name.strip("[]")))
    except ValueError:
        pass
    if len(name) > 253 or not _HOSTNAME.fullmatch(name):
        raise ValueError(f"{name!r} is neither a host name nor an IP address")
    return x509.DNSName(name.lower())


def _names(extra: Iterable[str]) -> list[SubjectName]:
    seen: list[SubjectName] = []
    for name in (*DEFAULT_NAMES, *extra):
        subject = _subject_name(name)
        if subject not in seen:
            seen.append(subject)
    return seen


def check_supplied(cert: Path, key: Path) -> TlsFiles:
    """Check an operator-supplied certificate and key load as a pair. Raises ConfigError."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(str(cert), str(key))
    except FileNotFoundError as exc:
        raise ConfigError("--tls-cert/--tls-key", f"{exc.filename}: no such file") from None
    except (ssl.SSLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or str(exc)
        raise ConfigError(
            "--tls-cert/--tls-key", f"cannot load {cert} with {key}: {reason}"
        ) from None
    return TlsFiles(cert=cert, key=key, ca=None)


def ensure_certificates(
    directory: Path, extra_names: Sequence[str] = (), now: datetime | None = None
) -> TlsFiles:
    """Create (or reuse) the CA and server certificate in ``directory``.

    Args:
        directory: usually ``<data dir>/registry-tls``; created if missing.
        extra_names: host names and IP addresses besides localhost, 127.0.0.1 and ::1.
        now: the current time (tests pass one).

    Raises:
        ConfigError: the directory cannot be written or holds unreadable files.
    """
    now = now or datetime.now(UTC)
    names = _names(extra_names)
    ca_path, ca_key_path = directory / "ca.pem", directory / "ca-key.pem"
    cert_path, key_path = directory / "server.pem", directory / "server-key.pem"
    try:
        make_private_dir(directory)  # the keys live here; ca.pem is copied out to clients
        with _locked(directory / ".lock"):
            if ca_path.exists() and ca_key_path.exists():
                ca_cert = x509.load_pem_x509_certificate(ca_path.read_bytes())
                ca_key = serialization.load_pem_private_key(ca_key_path.read_bytes(), None)
                if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
                    raise ConfigError(str(ca_key_path), "not an EC private key")
            else:
                ca_cert, ca_key = _new_ca(now)
                _write(ca_key_path, _key_pem(ca_key), private=True)
                _write(ca_path, ca_cert.public_bytes(serialization.Encoding.PEM), private=False)
            if _server_cert_usable(cert_path, key_path, ca_cert, names, now):
                return TlsFiles(cert_path, key_path, ca_path, generated=False)
            server_cert, server_key = _new_server_cert(ca_cert, ca_key, names, now)
            _write(key_path, _key_pem(server_key), private=True)
            _write(cert_path, server_cert.public_bytes(serialization.Encoding.PEM), private=False)
    except OSError as exc:
        raise ConfigError(
            "--data-dir", f"cannot write TLS files in {directory}: {exc.strerror}"
        ) from None
    except ValueError as exc:
        raise ConfigError(str(directory), f"unreadable TLS file: {exc}") from None
    return TlsFiles(cert_path, key_path, ca_path, generated=True)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path``, so two registries starting at once agree on one CA."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if sys.platform != "win32":  # Windows has no flock; starting twice at once is on you
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _server_cert_usable(
    cert_path: Path,
    key_path: Path,
    ca_cert: x509.Certificate,
    names: list[SubjectName],
    now: datetime,
) -> bool:
    """True if the existing server certificate is ours, current, complete and matches its key."""
    if not cert_path.exists() or not key_path.exists():
        return False
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), None)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
        return False
    if cert.public_key() != key.public_key():
        return False
    if cert.not_valid_after_utc - RENEW_BEFORE < now:
        return False
    return all(name in san for name in names)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _new_ca(now: datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _new_key()
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "EVCharging"),
            x509.NameAttribute(
                NameOID.COMMON_NAME, f"EVCharging registry CA ({socket.gethostname()[:20]})"
            ),
        ]
    )
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _new_server_cert(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    names: list[SubjectName],
    now: datetime,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _new_key()
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "EVCharging registry")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(min(now + SERVER_LIFETIME, ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def _write(path: Path, data: bytes, *, private: bool) -> None:
    """Write atomically: a temporary file with the final mode, then rename over ``path``."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(tmp, 0o600 if private else 0o644)  # the umask may have narrowed it
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
