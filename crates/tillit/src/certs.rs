//! Demo TLS material: a local CA and a certificate for localhost/127.0.0.1/::1, created in the
//! data dir on first start and reused afterwards.

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use time::{Duration, OffsetDateTime};

pub struct DemoTls {
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// SHA-256 of the CA certificate (DER), as colon-separated hex.
    pub ca_fingerprint: String,
    pub created: bool,
}

/// Writes `contents` to a new file readable only by its owner.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot create {}", tmp.display()))?;
    f.write_all(contents)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

pub fn ensure_demo_tls(data_dir: &Path, now: OffsetDateTime) -> Result<DemoTls> {
    let dir = data_dir.join("tls");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let ca_cert = dir.join("ca.pem");
    let server_cert = dir.join("server.pem");
    let server_key = dir.join("server.key");
    let created = !(ca_cert.is_file() && server_cert.is_file() && server_key.is_file());
    if created {
        let ca_key = KeyPair::generate().context("generating the CA key")?;
        let mut ca = CertificateParams::default();
        ca.distinguished_name = DistinguishedName::new();
        ca.distinguished_name
            .push(DnType::CommonName, "Tillit demo CA (local only)");
        ca.distinguished_name
            .push(DnType::OrganizationName, "Tillit demo");
        ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        ca.not_before = now - Duration::days(1);
        ca.not_after = now + Duration::days(5 * 365);
        let ca_pem = ca.self_signed(&ca_key).context("signing the CA")?.pem();

        let key = KeyPair::generate().context("generating the server key")?;
        let mut leaf =
            CertificateParams::new(vec!["localhost".to_string()]).context("server certificate")?;
        leaf.subject_alt_names
            .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        leaf.subject_alt_names
            .push(SanType::IpAddress(IpAddr::V6(Ipv6Addr::LOCALHOST)));
        leaf.distinguished_name = DistinguishedName::new();
        leaf.distinguished_name
            .push(DnType::CommonName, "localhost");
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        leaf.not_before = now - Duration::days(1);
        leaf.not_after = now + Duration::days(365);
        let issuer = Issuer::new(ca, ca_key);
        let leaf_pem = leaf
            .signed_by(&key, &issuer)
            .context("signing the server certificate")?
            .pem();

        // The CA key is not kept: nothing else will ever be signed by this demo CA.
        write_private(&server_key, key.serialize_pem().as_bytes())?;
        std::fs::write(&server_cert, format!("{leaf_pem}{ca_pem}"))?;
        std::fs::write(&ca_cert, &ca_pem)?;
    }
    let ca_fingerprint = fingerprint(&ca_cert)?;
    Ok(DemoTls {
        ca_cert,
        server_cert,
        server_key,
        ca_fingerprint,
        created,
    })
}

fn fingerprint(pem: &Path) -> Result<String> {
    use rustls_pki_types::pem::PemObject;
    let der = rustls_pki_types::CertificateDer::from_pem_file(pem)
        .with_context(|| format!("cannot read {}", pem.display()))?;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der.as_ref());
    Ok(digest
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":"))
}
