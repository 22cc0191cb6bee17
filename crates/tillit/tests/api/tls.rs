//! TLS: 1.2 and 1.3 with strong suites only; older versions and weak suites are refused.

use crate::helpers::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

fn ext(kind: u16, body: &[u8]) -> Vec<u8> {
    let mut v = kind.to_be_bytes().to_vec();
    v.extend((body.len() as u16).to_be_bytes());
    v.extend(body);
    v
}

/// A hand-built ClientHello, so we can offer what no modern library will.
fn client_hello(version: u16, suites: &[u16]) -> Vec<u8> {
    let mut body = version.to_be_bytes().to_vec();
    body.extend([0x42u8; 32]); // random
    body.push(0); // session id
    body.extend(((suites.len() * 2) as u16).to_be_bytes());
    for s in suites {
        body.extend(s.to_be_bytes());
    }
    body.extend([1, 0]); // compression: null
    let mut exts = Vec::new();
    exts.extend(ext(0x000a, &[0, 4, 0x00, 0x1d, 0x00, 0x17])); // groups: x25519, P-256
    exts.extend(ext(0x000b, &[1, 0])); // point formats: uncompressed
    exts.extend(ext(0x000d, &[0, 6, 0x04, 0x03, 0x08, 0x04, 0x04, 0x01])); // signature algorithms
    exts.extend(ext(0xff01, &[0])); // renegotiation info
    exts.extend(ext(0x0017, &[])); // extended master secret
    body.extend((exts.len() as u16).to_be_bytes());
    body.extend(exts);
    let mut hs = vec![1u8];
    hs.extend(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend(body);
    let mut rec = vec![0x16, 0x03, 0x01];
    rec.extend((hs.len() as u16).to_be_bytes());
    rec.extend(hs);
    rec
}

/// Sends the hello and returns the first record's content type (0x16 handshake, 0x15 alert)
/// and, for an alert, its description; `None` if the server just closed.
fn probe(port: u16, hello: &[u8]) -> Option<(u8, Option<u8>)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(hello).unwrap();
    let mut buf = [0u8; 7];
    let n = s.read(&mut buf).unwrap_or(0);
    if n == 0 {
        return None;
    }
    if n < 7 {
        let _ = s.read(&mut buf[n..]);
    }
    Some((buf[0], (buf[0] == 0x15).then_some(buf[6])))
}

const STRONG_TLS12: &[u16] = &[0xc02b, 0xc02f]; // ECDHE-ECDSA/RSA-AES128-GCM-SHA256
const WEAK: &[u16] = &[0xc013, 0xc014, 0x002f, 0x0035, 0x000a]; // CBC and RSA key exchange

#[tokio::test]
async fn tls_1_1_and_1_0_handshakes_are_refused() {
    let app = spawn_demo();
    // Control: the hand-built hello is good enough to get a ServerHello when it offers 1.2.
    assert_eq!(
        probe(app.port, &client_hello(0x0303, STRONG_TLS12)).map(|r| r.0),
        Some(0x16)
    );
    for version in [0x0302u16, 0x0301] {
        let r = probe(app.port, &client_hello(version, STRONG_TLS12));
        assert_ne!(
            r.map(|r| r.0),
            Some(0x16),
            "version {version:#x} got a ServerHello"
        );
        // protocol_version (70) when the server says why.
        if let Some((0x15, Some(desc))) = r {
            assert_eq!(desc, 70, "alert for {version:#x}");
        }
    }
}

#[tokio::test]
async fn weak_tls_1_2_suites_are_refused() {
    let app = spawn_demo();
    let r = probe(app.port, &client_hello(0x0303, WEAK));
    assert_eq!(
        r,
        Some((0x15, Some(40))),
        "expected a handshake_failure alert"
    );
}

async fn handshake(
    port: u16,
    ca: &str,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> rustls::ProtocolVersion {
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(ca).unwrap();
    use rustls::pki_types::pem::PemObject;
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
        roots.add(c.unwrap()).unwrap();
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_protocol_versions(versions)
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, tcp).await.unwrap();
    tls.get_ref().1.protocol_version().unwrap()
}

#[tokio::test]
async fn tls_1_2_and_1_3_work_and_the_certificate_names_localhost() {
    let app = spawn_demo();
    let ca = app.creds["ca_cert"].as_str().unwrap();
    assert_eq!(
        handshake(app.port, ca, &[&rustls::version::TLS13]).await,
        rustls::ProtocolVersion::TLSv1_3
    );
    assert_eq!(
        handshake(app.port, ca, &[&rustls::version::TLS12]).await,
        rustls::ProtocolVersion::TLSv1_2
    );
    // And via 127.0.0.1 (the certificate carries the IP too).
    let c = client_for(std::path::Path::new(ca));
    let r = c
        .get(format!("https://127.0.0.1:{}/healthz", app.port))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn plain_http_on_the_tls_port_gets_no_data() {
    let app = spawn_demo();
    let mut s = TcpStream::connect(("127.0.0.1", app.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    assert!(
        !String::from_utf8_lossy(&buf).contains("ok"),
        "served plaintext: {buf:?}"
    );
}
