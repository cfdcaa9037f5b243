"""A local CA and a server certificate for 127.0.0.1/localhost, created once and reused."""

from __future__ import annotations

import datetime as dt
import fcntl
import ipaddress
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class TlsFiles:
    ca_path: Path
    cert_path: Path
    key_path: Path


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _valid(cert_path: Path, ca_path: Path, key_path: Path) -> bool:
    if not (cert_path.exists() and ca_path.exists() and key_path.exists()):
        return False
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        ca = x509.load_pem_x509_certificate(ca_path.read_bytes())
    except ValueError:
        return False
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    return cert.issuer == ca.subject and cert.not_valid_after_utc > soon and ca.not_valid_after_utc > soon


def ensure_certificates(ca_path: str | Path, directory: str | Path | None = None) -> TlsFiles:
    """Reuse the CA and server certificate next to `ca_path` if valid, else create them."""
    ca_file = Path(ca_path).absolute()
    folder = Path(directory).absolute() if directory else ca_file.parent
    cert_file = folder / "server.pem"
    key_file = folder / "server-key.pem"
    if _valid(cert_file, ca_file, key_file):
        return TlsFiles(ca_file, cert_file, key_file)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".graph-sim-tls.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # several test processes may start at once
        if not _valid(cert_file, ca_file, key_file):
            _create(ca_file, cert_file, key_file)
    return TlsFiles(ca_file, cert_file, key_file)


def _create(ca_file: Path, cert_file: Path, key_file: Path) -> None:
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "graph-sim"),
            x509.NameAttribute(NameOID.COMMON_NAME, "graph-sim local CA"),
        ]
    )
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=825))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    # The simulator's service name in docker-compose.yml.
                    x509.DNSName("graph-sim"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    _write(key_file, key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    _write(cert_file, cert.public_bytes(pem) + ca.public_bytes(pem))
    _write(ca_file, ca.public_bytes(pem))
