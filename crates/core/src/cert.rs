//! Parsing and validation of an uploaded certificate bundle: the leaf certificate, its
//! intermediates and the private key, checked to belong together before anything is
//! stored.
//!
//! Private key material never appears in an error, in a log line or in `Debug` output:
//! error reasons only ever name PEM labels, algorithms, sizes and certificate positions.

use crate::model::KeyAlgorithm;
use rustls::sign::SigningKey;
use rustls::SignatureScheme;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate, X509Error};
use x509_parser::x509::SubjectPublicKeyInfo;
use zeroize::Zeroizing;

/// Largest accepted `certificate_pem` plus `chain_pem`, in bytes.
pub const MAX_CERTIFICATE_PEM_BYTES: usize = 64 * 1024;
/// Most certificates (leaf included) one bundle may hold.
pub const MAX_CERTIFICATES: usize = 10;
/// Largest accepted `private_key_pem`, in bytes. An RSA-4096 key in PEM is about 3.3 KiB.
pub const MAX_PRIVATE_KEY_PEM_BYTES: usize = 16 * 1024;

/// Why an uploaded certificate bundle was refused.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// The text is not PEM, or holds a block that does not belong where it was given.
    #[error("malformed PEM: {reason}")]
    MalformedPem { reason: String },

    #[error("no certificate found: expected a PEM block starting with -----BEGIN CERTIFICATE-----")]
    NoCertificate,

    /// A CERTIFICATE block decoded, but its content is not a valid X.509 certificate.
    #[error("invalid certificate: {reason}")]
    InvalidCertificate { reason: String },

    #[error("no private key found: expected a PEM block of type PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY")]
    NoPrivateKey,

    #[error("more than one private key given: upload exactly the one key of the certificate")]
    MultiplePrivateKeys,

    #[error(
        "the private key is encrypted with a passphrase, which is not supported: upload it unencrypted (for example `openssl pkey -in key.pem -out plain.pem`)"
    )]
    EncryptedKeyUnsupported,

    #[error("unsupported key: {reason}; supported are RSA with 2048 to 4096 bits, ECDSA P-256 and ECDSA P-384")]
    UnsupportedKey { reason: String },

    #[error("the private key does not belong to the certificate: its public key differs from the certificate's")]
    KeyMismatch,

    /// The certificates are not leaf first, each followed by its issuer. `position` is the
    /// index, in upload order with the leaf at 0, of the certificate that should have
    /// issued the one before it: 1 is the first certificate after the leaf.
    #[error("certificate chain out of order at position {position}: {reason}")]
    ChainOutOfOrder { position: usize, reason: String },

    #[error("upload too large: {reason}")]
    TooLarge { reason: String },
}

impl CertError {
    /// A stable, specific code for the native API and for logs.
    pub fn code(&self) -> &'static str {
        match self {
            CertError::MalformedPem { .. } => "CertificateMalformed",
            CertError::NoCertificate => "CertificateMissing",
            CertError::InvalidCertificate { .. } => "CertificateInvalid",
            CertError::NoPrivateKey => "PrivateKeyMissing",
            CertError::MultiplePrivateKeys => "PrivateKeyMultiple",
            CertError::EncryptedKeyUnsupported => "PrivateKeyEncrypted",
            CertError::UnsupportedKey { .. } => "KeyAlgorithmUnsupported",
            CertError::KeyMismatch => "CertificateKeyMismatch",
            CertError::ChainOutOfOrder { .. } => "CertificateChainInvalid",
            CertError::TooLarge { .. } => "CertificateTooLarge",
        }
    }
}

fn malformed(reason: impl Into<String>) -> CertError {
    CertError::MalformedPem { reason: reason.into() }
}

/// Everything certbind keeps from a validated upload.
#[derive(Clone)]
pub struct ParsedCertificate {
    pub common_name: Option<String>,
    /// DNS SANs lowercased, then IP SANs as text, each once, in certificate order.
    pub sans: Vec<String>,
    /// RFC 4514-like rendering, e.g. `CN=www.example.com, O=Example`.
    pub subject: String,
    pub issuer: String,
    /// Lowercase hex of the serial number's magnitude (DER sign byte dropped), no colons.
    pub serial: String,
    /// Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
    /// Lowercase hex SHA-256 of the leaf's DER.
    pub fingerprint_sha256: String,
    pub key_algorithm: KeyAlgorithm,
    /// RSA modulus bits; 256 or 384 for ECDSA.
    pub key_bits: u32,
    /// Leaf then intermediates, re-encoded as PEM (public material only).
    pub chain_pem: String,
    /// Leaf first.
    pub chain_der: Vec<Vec<u8>>,
    /// The uploaded private key's PEM block, exactly one block, loadable by
    /// [`load_signing_key`]. Accompanying blocks (EC PARAMETERS, certificates) are dropped.
    pub private_key_pem: Zeroizing<String>,
}

impl std::fmt::Debug for ParsedCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParsedCertificate")
            .field("common_name", &self.common_name)
            .field("sans", &self.sans)
            .field("subject", &self.subject)
            .field("issuer", &self.issuer)
            .field("serial", &self.serial)
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .field("fingerprint_sha256", &self.fingerprint_sha256)
            .field("key_algorithm", &self.key_algorithm)
            .field("key_bits", &self.key_bits)
            .field("chain_len", &self.chain_der.len())
            .finish_non_exhaustive()
    }
}

/// Parses and validates an upload.
///
/// `certificate_pem` holds the leaf, optionally followed by its intermediates;
/// `chain_pem` holds further intermediates appended after those. Both may hold only
/// CERTIFICATE blocks (text outside PEM blocks is ignored); a certificate repeated
/// verbatim is kept once. The root may be included but is not required. The private key
/// may be PKCS#1, PKCS#8 or SEC1 (an `EC PARAMETERS` block next to it is ignored).
///
/// Expiry is not checked here: callers judge `not_before` / `not_after`.
pub fn parse_bundle(
    certificate_pem: &str,
    chain_pem: Option<&str>,
    private_key_pem: &str,
) -> Result<ParsedCertificate, CertError> {
    let chain_pem = chain_pem.filter(|c| !c.trim().is_empty());
    let total = certificate_pem.len() + chain_pem.map_or(0, str::len);
    if total > MAX_CERTIFICATE_PEM_BYTES {
        return Err(CertError::TooLarge {
            reason: format!(
                "the certificate and chain PEM are {total} bytes, over the limit of {MAX_CERTIFICATE_PEM_BYTES}"
            ),
        });
    }
    if private_key_pem.len() > MAX_PRIVATE_KEY_PEM_BYTES {
        return Err(CertError::TooLarge {
            reason: format!(
                "the private key PEM is {} bytes, over the limit of {MAX_PRIVATE_KEY_PEM_BYTES}",
                private_key_pem.len()
            ),
        });
    }

    // Certificates: leaf first, then the bundle's own intermediates, then chain_pem.
    let mut ders: Vec<CertificateDer<'static>> = Vec::new();
    if certificate_pem.trim().is_empty() {
        return Err(CertError::NoCertificate);
    }
    collect_certificates(certificate_pem, "certificate", &mut ders)?;
    if let Some(chain) = chain_pem {
        collect_certificates(chain, "certificate chain", &mut ders)?;
    }
    if ders.is_empty() {
        return Err(CertError::NoCertificate);
    }
    if ders.len() > MAX_CERTIFICATES {
        return Err(CertError::TooLarge {
            reason: format!("{} certificates given, at most {MAX_CERTIFICATES} are accepted", ders.len()),
        });
    }

    let mut certs = Vec::with_capacity(ders.len());
    for (i, der) in ders.iter().enumerate() {
        match X509Certificate::from_der(der.as_ref()) {
            Ok(([], cert)) => certs.push(cert),
            Ok(_) => {
                return Err(CertError::InvalidCertificate {
                    reason: format!("{} has trailing data after the certificate", describe_position(i)),
                })
            }
            Err(e) => {
                return Err(CertError::InvalidCertificate {
                    reason: format!("{} could not be parsed: {e}", describe_position(i)),
                })
            }
        }
    }

    check_chain_order(&certs)?;

    let leaf = &certs[0];
    let leaf_spki = leaf.public_key();
    let (key_algorithm, key_bits) = match spki_kind(leaf_spki.raw) {
        Some(kind) => kind.supported().map_err(|given| CertError::UnsupportedKey {
            reason: format!("the certificate's public key is {given}"),
        })?,
        None => {
            return Err(CertError::InvalidCertificate {
                reason: "the leaf certificate's public key could not be parsed".into(),
            })
        }
    };

    let key = extract_private_key(private_key_pem)?;
    let signing_key = load_checked(&key)?;
    if !key_matches(signing_key.as_ref(), leaf_spki) {
        return Err(CertError::KeyMismatch);
    }

    let common_name = leaf.subject().iter_common_name().next().and_then(|cn| cn.as_str().ok()).map(str::to_string);
    let sans = subject_alt_names(leaf)?;
    let serial = serial_hex(leaf.raw_serial());
    let fingerprint_sha256 = hex::encode(ring::digest::digest(&ring::digest::SHA256, ders[0].as_ref()));
    let chain_pem = ders.iter().map(|der| certificate_to_pem(der.as_ref())).collect::<String>();

    Ok(ParsedCertificate {
        common_name,
        sans,
        subject: leaf.subject().to_string(),
        issuer: leaf.issuer().to_string(),
        serial,
        not_before: leaf.validity().not_before.timestamp(),
        not_after: leaf.validity().not_after.timestamp(),
        fingerprint_sha256,
        key_algorithm,
        key_bits,
        chain_pem,
        chain_der: ders.iter().map(|der| der.as_ref().to_vec()).collect(),
        private_key_pem: key.pem,
    })
}

/// Loads a private key (PKCS#1, PKCS#8 or SEC1 PEM; exactly one key) for serving with
/// rustls' ring provider. The same algorithm rules as [`parse_bundle`] apply.
pub fn load_signing_key(private_key_pem: &str) -> Result<Arc<dyn SigningKey>, CertError> {
    if private_key_pem.len() > MAX_PRIVATE_KEY_PEM_BYTES {
        return Err(CertError::TooLarge {
            reason: format!(
                "the private key PEM is {} bytes, over the limit of {MAX_PRIVATE_KEY_PEM_BYTES}",
                private_key_pem.len()
            ),
        });
    }
    let key = extract_private_key(private_key_pem)?;
    load_checked(&key)
}

// ---------------------------------------------------------------------------------------
// PEM scanning

/// One `-----BEGIN X----- ... -----END X-----` block, its lines trimmed and joined with
/// `\n` so that the PEM parser accepts indented or CRLF input.
struct PemBlock {
    label: String,
    text: Zeroizing<String>,
    /// Whether the block carries RFC 1421 headers (`Proc-Type: ...`).
    has_headers: bool,
    /// Whether those headers declare it encrypted.
    encrypted: bool,
}

/// A label fit to quote in an error: PEM labels are short uppercase words; anything else
/// is not repeated back.
fn printable_label(label: &str) -> String {
    if !label.is_empty()
        && label.len() <= 40
        && label.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b' ' || b == b'-')
    {
        label.to_string()
    } else {
        "unrecognised".to_string()
    }
}

/// Splits `input` into its PEM blocks; text between blocks is ignored.
fn pem_blocks(input: &str, what: &str) -> Result<Vec<PemBlock>, CertError> {
    let input = input.strip_prefix('\u{feff}').unwrap_or(input);
    let mut blocks = Vec::new();
    let mut current: Option<PemBlock> = None;
    for line in input.lines() {
        let line = line.trim();
        if let Some(label) = line.strip_prefix("-----BEGIN ").and_then(|l| l.strip_suffix("-----")) {
            if let Some(open) = &current {
                return Err(malformed(format!(
                    "the {what} has a {} block inside the unterminated {} block",
                    printable_label(label),
                    printable_label(&open.label)
                )));
            }
            // Capacity for the whole input, so the buffer never reallocates and leaves an
            // unzeroised copy of key material behind.
            let mut text = Zeroizing::new(String::with_capacity(input.len() + 1));
            text.push_str(line);
            text.push('\n');
            current = Some(PemBlock { label: label.to_string(), text, has_headers: false, encrypted: false });
        } else if let Some(label) = line.strip_prefix("-----END ").and_then(|l| l.strip_suffix("-----")) {
            let Some(mut block) = current.take() else {
                return Err(malformed(format!(
                    "the {what} has an END {} line without a matching BEGIN line",
                    printable_label(label)
                )));
            };
            if label != block.label {
                return Err(malformed(format!(
                    "the {what} has a {} block ended by an END {} line",
                    printable_label(&block.label),
                    printable_label(label)
                )));
            }
            block.text.push_str(line);
            block.text.push('\n');
            blocks.push(block);
        } else if let Some(block) = current.as_mut() {
            if line.is_empty() {
                continue;
            }
            if let Some((name, value)) = line.split_once(':') {
                block.has_headers = true;
                if name.trim().eq_ignore_ascii_case("Proc-Type") && value.to_ascii_uppercase().contains("ENCRYPTED") {
                    block.encrypted = true;
                }
                continue;
            }
            block.text.push_str(line);
            block.text.push('\n');
        }
    }
    if let Some(open) = current {
        return Err(malformed(format!("the {what} has a {} block without its END line", printable_label(&open.label))));
    }
    Ok(blocks)
}

fn is_private_key_label(label: &str) -> bool {
    label.ends_with("PRIVATE KEY")
}

/// Appends the certificates of `input` to `out`, skipping verbatim repeats.
fn collect_certificates(input: &str, what: &str, out: &mut Vec<CertificateDer<'static>>) -> Result<(), CertError> {
    let blocks = pem_blocks(input, what)?;
    if blocks.is_empty() {
        return Err(malformed(format!("the {what} holds no PEM block; expected -----BEGIN CERTIFICATE----- blocks")));
    }
    for (n, block) in blocks.iter().enumerate() {
        if block.label != "CERTIFICATE" {
            let hint =
                if is_private_key_label(&block.label) { "; the private key must be given separately" } else { "" };
            return Err(malformed(format!(
                "the {what} may only hold CERTIFICATE blocks, block {} is {}{hint}",
                n + 1,
                printable_label(&block.label)
            )));
        }
        if block.has_headers {
            return Err(malformed(format!("CERTIFICATE block {} of the {what} carries PEM headers", n + 1)));
        }
        let der = CertificateDer::from_pem_slice(block.text.as_bytes())
            .map_err(|e| malformed(format!("CERTIFICATE block {} of the {what} could not be decoded: {e}", n + 1)))?;
        if der.as_ref().is_empty() {
            return Err(malformed(format!("CERTIFICATE block {} of the {what} is empty", n + 1)));
        }
        if !out.iter().any(|seen| seen.as_ref() == der.as_ref()) {
            out.push(der);
        }
    }
    Ok(())
}

struct ExtractedKey {
    /// The key's PEM block, normalised.
    pem: Zeroizing<String>,
    der: PrivateKeyDer<'static>,
}

fn extract_private_key(input: &str) -> Result<ExtractedKey, CertError> {
    if input.trim().is_empty() {
        return Err(CertError::NoPrivateKey);
    }
    let blocks = pem_blocks(input, "private key")?;
    if blocks.is_empty() {
        return Err(malformed(
            "the private key holds no PEM block; expected -----BEGIN PRIVATE KEY----- (or RSA / EC PRIVATE KEY)",
        ));
    }
    let mut keys = Vec::new();
    for block in blocks {
        match block.label.as_str() {
            // Harmless company: `openssl ecparam -genkey` output, combined cert+key files.
            "EC PARAMETERS" | "CERTIFICATE" | "PUBLIC KEY" => {}
            label if is_private_key_label(label) => keys.push(block),
            other => {
                return Err(malformed(format!("the private key holds an unexpected {} block", printable_label(other))))
            }
        }
    }
    if keys.len() > 1 {
        return Err(CertError::MultiplePrivateKeys);
    }
    let Some(block) = keys.pop() else {
        return Err(CertError::NoPrivateKey);
    };
    match block.label.as_str() {
        "ENCRYPTED PRIVATE KEY" => return Err(CertError::EncryptedKeyUnsupported),
        "PRIVATE KEY" | "RSA PRIVATE KEY" | "EC PRIVATE KEY" => {}
        other => {
            return Err(CertError::UnsupportedKey {
                reason: format!("the private key is a {} block", printable_label(other)),
            })
        }
    }
    if block.encrypted {
        return Err(CertError::EncryptedKeyUnsupported);
    }
    if block.has_headers {
        return Err(malformed(format!("the {} block carries PEM headers", block.label)));
    }
    // The PEM parser's own errors are not repeated: they could quote the block.
    let der = PrivateKeyDer::from_pem_slice(block.text.as_bytes())
        .map_err(|_| malformed(format!("the {} block is not valid base64", block.label)))?;
    Ok(ExtractedKey { pem: block.text, der })
}

/// Checks the key's algorithm and loads it with the ring provider.
fn load_checked(key: &ExtractedKey) -> Result<Arc<dyn SigningKey>, CertError> {
    let (format, kind) = match &key.der {
        PrivateKeyDer::Pkcs1(k) => ("PKCS#1 RSA", pkcs1_kind(k.secret_pkcs1_der())),
        PrivateKeyDer::Sec1(k) => ("SEC1 EC", sec1_kind(k.secret_sec1_der())),
        PrivateKeyDer::Pkcs8(k) => ("PKCS#8", pkcs8_kind(k.secret_pkcs8_der())),
        _ => ("unknown", None),
    };
    let Some(kind) = kind else {
        return Err(malformed(format!("the private key is not a valid {format} key")));
    };
    kind.supported().map_err(|given| CertError::UnsupportedKey { reason: format!("the private key is {given}") })?;
    rustls::crypto::ring::sign::any_supported_type(&key.der)
        .map_err(|_| malformed(format!("the {} private key could not be loaded: it is corrupt", kind.describe())))
}

// ---------------------------------------------------------------------------------------
// Key algorithms

#[derive(Debug, Clone, PartialEq, Eq)]
enum KeyKind {
    Rsa { bits: u32 },
    RsaPss,
    Ec(Curve),
    Ed25519,
    Ed448,
    Dsa,
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Curve {
    P256,
    P384,
    P521,
    Other(String),
}

impl KeyKind {
    fn describe(&self) -> String {
        match self {
            KeyKind::Rsa { bits } => format!("RSA {bits}-bit"),
            KeyKind::RsaPss => "RSASSA-PSS (an RSA key restricted to PSS)".into(),
            KeyKind::Ec(Curve::P256) => "ECDSA P-256".into(),
            KeyKind::Ec(Curve::P384) => "ECDSA P-384".into(),
            KeyKind::Ec(Curve::P521) => "ECDSA P-521".into(),
            KeyKind::Ec(Curve::Other(oid)) => format!("EC on curve {oid}"),
            KeyKind::Ed25519 => "Ed25519".into(),
            KeyKind::Ed448 => "Ed448".into(),
            KeyKind::Dsa => "DSA".into(),
            KeyKind::Other(oid) => format!("of algorithm {oid}"),
        }
    }

    /// The stored algorithm and size, or a description of what was given.
    fn supported(&self) -> Result<(KeyAlgorithm, u32), String> {
        match self {
            KeyKind::Rsa { bits } if (2048..=4096).contains(bits) => Ok((KeyAlgorithm::Rsa, *bits)),
            KeyKind::Ec(Curve::P256) => Ok((KeyAlgorithm::EcdsaP256, 256)),
            KeyKind::Ec(Curve::P384) => Ok((KeyAlgorithm::EcdsaP384, 384)),
            other => Err(other.describe()),
        }
    }
}

// Object identifiers, DER content bytes.
const OID_RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01]; // 1.2.840.113549.1.1.1
const OID_RSASSA_PSS: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a]; // 1.2.840.113549.1.1.10
const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01]; // 1.2.840.10045.2.1
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07]; // 1.2.840.10045.3.1.7
const OID_P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22]; // 1.3.132.0.34
const OID_P521: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x23]; // 1.3.132.0.35
const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70]; // 1.3.101.112
const OID_ED448: &[u8] = &[0x2b, 0x65, 0x71]; // 1.3.101.113
const OID_DSA: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x38, 0x04, 0x01]; // 1.2.840.10040.4.1

const TAG_INTEGER: u8 = 0x02;
const TAG_BIT_STRING: u8 = 0x03;
const TAG_OCTET_STRING: u8 = 0x04;
const TAG_OID: u8 = 0x06;
const TAG_SEQUENCE: u8 = 0x30;
const TAG_CONTEXT_0: u8 = 0xa0;

/// Takes one DER element off `input`: (tag, content, rest).
fn der_take(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    if tag & 0x1f == 0x1f {
        return None; // high tag numbers do not occur in key structures
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |len, &b| (len << 8) | b as usize);
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

fn der_expect(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (found, content, rest) = der_take(input)?;
    (found == tag).then_some((content, rest))
}

fn oid_text(oid: &[u8]) -> String {
    x509_parser::der_parser::oid::Oid::new(oid.into()).to_id_string()
}

/// Bits of an unsigned big-endian INTEGER's content.
fn integer_bits(content: &[u8]) -> u32 {
    let first = content.iter().position(|&b| b != 0);
    match first {
        None => 0,
        Some(i) => (content.len() - i) as u32 * 8 - content[i].leading_zeros(),
    }
}

fn curve(oid: Option<&[u8]>) -> Curve {
    match oid {
        Some(OID_P256) => Curve::P256,
        Some(OID_P384) => Curve::P384,
        Some(OID_P521) => Curve::P521,
        Some(other) => Curve::Other(oid_text(other)),
        None => Curve::Other("(unspecified)".into()),
    }
}

/// AlgorithmIdentifier content: (algorithm, parameters when they are an OID).
fn algorithm_identifier(content: &[u8]) -> Option<(&[u8], Option<&[u8]>)> {
    let (oid, rest) = der_expect(content, TAG_OID)?;
    let param = der_expect(rest, TAG_OID).map(|(p, _)| p);
    Some((oid, param))
}

/// Classifies an algorithm; `rsa_bits` is consulted for RSA only.
fn classify(alg: &[u8], param: Option<&[u8]>, rsa_bits: impl FnOnce() -> Option<u32>) -> Option<KeyKind> {
    Some(match alg {
        OID_RSA_ENCRYPTION => KeyKind::Rsa { bits: rsa_bits()? },
        OID_RSASSA_PSS => KeyKind::RsaPss,
        OID_EC_PUBLIC_KEY => KeyKind::Ec(curve(param)),
        OID_ED25519 => KeyKind::Ed25519,
        OID_ED448 => KeyKind::Ed448,
        OID_DSA => KeyKind::Dsa,
        other => KeyKind::Other(oid_text(other)),
    })
}

/// SubjectPublicKeyInfo ::= SEQUENCE { algorithm AlgorithmIdentifier, subjectPublicKey BIT STRING }
fn spki_kind(spki: &[u8]) -> Option<KeyKind> {
    let (seq, _) = der_expect(spki, TAG_SEQUENCE)?;
    let (alg, rest) = der_expect(seq, TAG_SEQUENCE)?;
    let (bits, _) = der_expect(rest, TAG_BIT_STRING)?;
    let (alg, param) = algorithm_identifier(alg)?;
    classify(alg, param, || {
        // RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }
        let key = bits.get(1..)?;
        let (seq, _) = der_expect(key, TAG_SEQUENCE)?;
        let (modulus, _) = der_expect(seq, TAG_INTEGER)?;
        Some(integer_bits(modulus))
    })
}

/// RSAPrivateKey ::= SEQUENCE { version INTEGER, modulus INTEGER, ... }
fn pkcs1_kind(der: &[u8]) -> Option<KeyKind> {
    let (seq, _) = der_expect(der, TAG_SEQUENCE)?;
    let (_, rest) = der_expect(seq, TAG_INTEGER)?;
    let (modulus, _) = der_expect(rest, TAG_INTEGER)?;
    Some(KeyKind::Rsa { bits: integer_bits(modulus) })
}

/// ECPrivateKey ::= SEQUENCE { version INTEGER, privateKey OCTET STRING,
///     parameters [0] ECParameters OPTIONAL, publicKey [1] BIT STRING OPTIONAL }
fn sec1_kind(der: &[u8]) -> Option<KeyKind> {
    let (seq, _) = der_expect(der, TAG_SEQUENCE)?;
    let (_, rest) = der_expect(seq, TAG_INTEGER)?;
    let (private, rest) = der_expect(rest, TAG_OCTET_STRING)?;
    let named = der_expect(rest, TAG_CONTEXT_0).and_then(|(params, _)| der_expect(params, TAG_OID)).map(|(oid, _)| oid);
    Some(KeyKind::Ec(match named {
        Some(oid) => curve(Some(oid)),
        // Without parameters the scalar's length tells the curve.
        None => match private.len() {
            32 => Curve::P256,
            48 => Curve::P384,
            66 => Curve::P521,
            n => Curve::Other(format!("with a {n}-byte private scalar")),
        },
    }))
}

/// PrivateKeyInfo ::= SEQUENCE { version INTEGER, privateKeyAlgorithm AlgorithmIdentifier,
///     privateKey OCTET STRING, ... }
fn pkcs8_kind(der: &[u8]) -> Option<KeyKind> {
    let (seq, _) = der_expect(der, TAG_SEQUENCE)?;
    let (_, rest) = der_expect(seq, TAG_INTEGER)?;
    let (alg, rest) = der_expect(rest, TAG_SEQUENCE)?;
    let (private, _) = der_expect(rest, TAG_OCTET_STRING)?;
    let (alg, param) = algorithm_identifier(alg)?;
    let kind = classify(alg, param, || match pkcs1_kind(private)? {
        KeyKind::Rsa { bits } => Some(bits),
        _ => None,
    })?;
    // An EC key without curve parameters in the AlgorithmIdentifier may name it inside.
    if let KeyKind::Ec(Curve::Other(_)) = kind {
        if param.is_none() {
            return sec1_kind(private);
        }
    }
    Some(kind)
}

// ---------------------------------------------------------------------------------------
// Certificate checks

fn describe_position(i: usize) -> String {
    if i == 0 {
        "the leaf certificate (position 0)".to_string()
    } else {
        format!("the chain certificate at position {i}")
    }
}

/// Each certificate must be issued, by name and signature, by the one after it.
fn check_chain_order(certs: &[X509Certificate<'_>]) -> Result<(), CertError> {
    for (i, pair) in certs.windows(2).enumerate() {
        let (issued, issuer) = (&pair[0], &pair[1]);
        let position = i + 1;
        if issued.issuer().as_raw() != issuer.subject().as_raw() {
            return Err(CertError::ChainOutOfOrder {
                position,
                reason: format!(
                    "certificate {position} (subject \"{}\") did not issue certificate {i}, which was issued by \"{}\"; \
                     order the certificates leaf first, each followed by its issuer",
                    issuer.subject(),
                    issued.issuer()
                ),
            });
        }
        match issued.verify_signature(Some(issuer.public_key())) {
            Ok(()) => {}
            // An algorithm ring cannot verify (a P-521 issuer, say): the names matched,
            // which is all the ordering check needs; clients verify the chain anyway.
            Err(X509Error::SignatureUnsupportedAlgorithm) => {}
            Err(_) => {
                return Err(CertError::ChainOutOfOrder {
                    position,
                    reason: format!(
                        "certificate {position} (subject \"{}\") has the name of certificate {i}'s issuer, \
                         but its key did not sign certificate {i}",
                        issuer.subject()
                    ),
                })
            }
        }
    }
    Ok(())
}

fn subject_alt_names(cert: &X509Certificate<'_>) -> Result<Vec<String>, CertError> {
    let ext = cert.subject_alternative_name().map_err(|e| CertError::InvalidCertificate {
        reason: format!("the subject alternative name extension of the leaf certificate is invalid: {e}"),
    })?;
    let mut dns: Vec<String> = Vec::new();
    let mut ips: Vec<String> = Vec::new();
    if let Some(ext) = ext {
        for name in &ext.value.general_names {
            match name {
                GeneralName::DNSName(host) => {
                    let host = host.to_ascii_lowercase();
                    if !dns.contains(&host) {
                        dns.push(host);
                    }
                }
                GeneralName::IPAddress(bytes) => {
                    let ip = match bytes.len() {
                        4 => IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(*bytes).expect("length checked"))),
                        16 => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(*bytes).expect("length checked"))),
                        _ => continue,
                    };
                    let ip = ip.to_string();
                    if !ips.contains(&ip) {
                        ips.push(ip);
                    }
                }
                _ => {}
            }
        }
    }
    dns.extend(ips);
    Ok(dns)
}

/// The serial's magnitude as lowercase hex: DER's leading zero sign bytes dropped, one
/// byte kept for zero.
fn serial_hex(raw: &[u8]) -> String {
    let start = raw.iter().position(|&b| b != 0).unwrap_or(raw.len().saturating_sub(1));
    hex::encode(&raw[start..])
}

fn certificate_to_pem(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::with_capacity(b64.len() + b64.len() / 64 + 64);
    pem.push_str("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

/// Whether `key` is the private half of `leaf`'s public key: compared by SPKI bytes, and
/// when those differ (an encoding variant) or are unavailable, by signing with the key
/// and verifying with the certificate's public key.
fn key_matches(key: &dyn SigningKey, leaf: &SubjectPublicKeyInfo<'_>) -> bool {
    if key.public_key().is_some_and(|spki| spki.as_ref() == leaf.raw) {
        return true;
    }
    const MESSAGE: &[u8] = b"certbind: does this private key belong to the certificate?";
    let offered = [
        SignatureScheme::ECDSA_NISTP256_SHA256,
        SignatureScheme::ECDSA_NISTP384_SHA384,
        SignatureScheme::RSA_PKCS1_SHA256,
    ];
    let Some(signer) = key.choose_scheme(&offered) else {
        return false;
    };
    let algorithm: &dyn ring::signature::VerificationAlgorithm = match signer.scheme() {
        SignatureScheme::ECDSA_NISTP256_SHA256 => &ring::signature::ECDSA_P256_SHA256_ASN1,
        SignatureScheme::ECDSA_NISTP384_SHA384 => &ring::signature::ECDSA_P384_SHA384_ASN1,
        SignatureScheme::RSA_PKCS1_SHA256 => &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        _ => return false,
    };
    let Ok(signature) = signer.sign(MESSAGE) else {
        return false;
    };
    ring::signature::UnparsedPublicKey::new(algorithm, &leaf.subject_public_key.data)
        .verify(MESSAGE, &signature)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SerialNumber,
        SignatureAlgorithm, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PKCS_ED25519,
    };

    const RSA2048_CRT: &str = include_str!("../tests/fixtures/rsa2048.crt");
    const RSA2048_PKCS1: &str = include_str!("../tests/fixtures/rsa2048.pkcs1.key");
    const RSA2048_PKCS8: &str = include_str!("../tests/fixtures/rsa2048.pkcs8.key");
    const RSA2048_ENCRYPTED: &str = include_str!("../tests/fixtures/rsa2048.encrypted.key");
    const RSA2048_LEGACY_ENCRYPTED: &str = include_str!("../tests/fixtures/rsa2048.legacy-encrypted.key");
    const RSA1024_CRT: &str = include_str!("../tests/fixtures/rsa1024.crt");
    const RSA1024_KEY: &str = include_str!("../tests/fixtures/rsa1024.key");
    const EC_P256_CRT: &str = include_str!("../tests/fixtures/ec-p256.crt");
    const EC_P256_SEC1: &str = include_str!("../tests/fixtures/ec-p256.sec1.key");
    const EC_P521_CRT: &str = include_str!("../tests/fixtures/ec-p521.crt");
    const EC_P521_KEY: &str = include_str!("../tests/fixtures/ec-p521.key");

    /// A self-signed leaf and its PKCS#8 key.
    struct Leaf {
        cert_pem: String,
        cert_der: Vec<u8>,
        key_pem: String,
    }

    fn self_signed(alg: &'static SignatureAlgorithm, names: &[&str], cn: Option<&str>) -> Leaf {
        let key = KeyPair::generate_for(alg).unwrap();
        let mut params = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        if let Some(cn) = cn {
            params.distinguished_name.push(DnType::CommonName, cn);
        }
        let cert = params.self_signed(&key).unwrap();
        Leaf { cert_pem: cert.pem(), cert_der: cert.der().to_vec(), key_pem: key.serialize_pem() }
    }

    struct Chain {
        root: String,
        intermediate: String,
        leaf: String,
        leaf_key: String,
    }

    fn ca_params(cn: &str) -> CertificateParams {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.distinguished_name.push(DnType::CommonName, cn);
        params
    }

    /// root -> intermediate -> leaf, the intermediate named `intermediate_cn`.
    fn chain(intermediate_cn: &str) -> Chain {
        let root_key = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).unwrap();
        let root_params = ca_params("Test Root");
        let root = root_params.self_signed(&root_key).unwrap();
        let root_issuer = Issuer::new(root_params, root_key);

        let int_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let int_params = ca_params(intermediate_cn);
        let intermediate = int_params.signed_by(&int_key, &root_issuer).unwrap();
        let int_issuer = Issuer::new(int_params, int_key);

        let leaf_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let mut leaf_params = CertificateParams::new(vec!["www.example.com".to_string()]).unwrap();
        leaf_params.distinguished_name.push(DnType::CommonName, "www.example.com");
        let leaf = leaf_params.signed_by(&leaf_key, &int_issuer).unwrap();
        Chain {
            root: root.pem(),
            intermediate: intermediate.pem(),
            leaf: leaf.pem(),
            leaf_key: leaf_key.serialize_pem(),
        }
    }

    fn lf(pem: &str) -> String {
        pem.replace("\r\n", "\n")
    }

    fn body_lines(pem: &str) -> Vec<&str> {
        pem.lines().filter(|l| !l.starts_with("-----") && !l.contains(':') && l.len() > 16).collect()
    }

    #[test]
    fn rsa2048_pkcs8_and_pkcs1() {
        for key in [RSA2048_PKCS8, RSA2048_PKCS1] {
            let parsed = parse_bundle(RSA2048_CRT, None, key).unwrap();
            assert_eq!(parsed.key_algorithm, KeyAlgorithm::Rsa);
            assert_eq!(parsed.key_bits, 2048);
            assert_eq!(parsed.common_name.as_deref(), Some("rsa.example.com"));
            assert_eq!(parsed.sans, vec!["rsa.example.com", "*.rsa.example.com", "192.0.2.10", "2001:db8::1"]);
            assert_eq!(parsed.subject, "CN=rsa.example.com, O=Certbind Test");
            assert_eq!(parsed.issuer, parsed.subject);
            // `openssl x509 -serial` prints 8BADF00D01 for this fixture.
            assert_eq!(parsed.serial, "8badf00d01");
            assert_eq!(parsed.fingerprint_sha256, "b97a560458ea614dfc9ae76a91a2e5a7839a3d542f7f3941ffae03a2359a9bf6");
            assert_eq!(parsed.chain_der.len(), 1);
            assert_eq!(parsed.private_key_pem.as_str(), key);
            load_signing_key(&parsed.private_key_pem).unwrap();
        }
    }

    #[test]
    fn ecdsa_p256_pkcs8_and_p384() {
        for (alg, expected, bits) in [
            (&PKCS_ECDSA_P256_SHA256, KeyAlgorithm::EcdsaP256, 256),
            (&PKCS_ECDSA_P384_SHA384, KeyAlgorithm::EcdsaP384, 384),
        ] {
            let leaf = self_signed(alg, &["a.example.com", "B.Example.com"], Some("a.example.com"));
            let parsed = parse_bundle(&leaf.cert_pem, None, &leaf.key_pem).unwrap();
            assert_eq!(parsed.key_algorithm, expected);
            assert_eq!(parsed.key_bits, bits);
            assert_eq!(parsed.sans, vec!["a.example.com", "b.example.com"]);
            assert_eq!(parsed.chain_der, vec![leaf.cert_der.clone()]);
            assert_eq!(parsed.private_key_pem.as_str(), lf(&leaf.key_pem));
            let key = load_signing_key(&parsed.private_key_pem).unwrap();
            assert_eq!(key.algorithm(), rustls::SignatureAlgorithm::ECDSA);
        }
    }

    #[test]
    fn ecdsa_p256_sec1_with_ec_parameters_block() {
        let parsed = parse_bundle(EC_P256_CRT, None, EC_P256_SEC1).unwrap();
        assert_eq!(parsed.key_algorithm, KeyAlgorithm::EcdsaP256);
        assert_eq!(parsed.key_bits, 256);
        assert_eq!(parsed.common_name.as_deref(), Some("ec.example.com"));
        assert_eq!(parsed.serial, "0100");
        // Only the key block is kept, and it loads again.
        assert!(parsed.private_key_pem.starts_with("-----BEGIN EC PRIVATE KEY-----\n"));
        assert!(!parsed.private_key_pem.contains("EC PARAMETERS"));
        assert!(EC_P256_SEC1.contains(parsed.private_key_pem.as_str()));
        load_signing_key(&parsed.private_key_pem).unwrap();
    }

    #[test]
    fn crlf_and_indented_input_is_accepted() {
        let leaf = self_signed(&PKCS_ECDSA_P256_SHA256, &["crlf.example.com"], None);
        let cert = leaf.cert_pem.replace('\n', "\r\n");
        let key = leaf.key_pem.lines().map(|l| format!("   {l}  \r\n")).collect::<String>();
        let parsed = parse_bundle(&format!("\u{feff}{cert}"), None, &key).unwrap();
        assert_eq!(parsed.private_key_pem.as_str(), lf(&leaf.key_pem));
    }

    #[test]
    fn fingerprint_is_sha256_of_der_and_chain_pem_round_trips() {
        let leaf = self_signed(&PKCS_ECDSA_P256_SHA256, &["fp.example.com"], None);
        let parsed = parse_bundle(&leaf.cert_pem, None, &leaf.key_pem).unwrap();
        let digest = ring::digest::digest(&ring::digest::SHA256, &leaf.cert_der);
        assert_eq!(parsed.fingerprint_sha256, hex::encode(digest.as_ref()));
        assert_eq!(parsed.fingerprint_sha256.len(), 64);
        assert_eq!(parsed.chain_pem, lf(&leaf.cert_pem));
    }

    #[test]
    fn names_serial_and_validity_are_extracted() {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::new(vec![
            "WWW.Example.com".to_string(),
            "example.com".to_string(),
            "10.1.2.3".to_string(),
            "www.example.com".to_string(),
        ])
        .unwrap();
        params.distinguished_name.push(DnType::CommonName, "Example Site");
        params.distinguished_name.push(DnType::OrganizationName, "Example Org");
        params.serial_number = Some(SerialNumber::from_slice(&[0x00, 0xab, 0xcd, 0x01]));
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        let cert = params.self_signed(&key).unwrap();
        // Expired certificates are the caller's concern, not an error.
        let parsed = parse_bundle(&cert.pem(), None, &key.serialize_pem()).unwrap();
        assert_eq!(parsed.common_name.as_deref(), Some("Example Site"));
        assert_eq!(parsed.sans, vec!["www.example.com", "example.com", "10.1.2.3"]);
        assert_eq!(parsed.subject, "CN=Example Site, O=Example Org");
        assert_eq!(parsed.serial, "abcd01");
        assert_eq!(parsed.not_before, 1_577_836_800);
        assert_eq!(parsed.not_after, 1_609_459_200);
    }

    #[test]
    fn serial_hex_drops_sign_bytes_only() {
        assert_eq!(serial_hex(&[0x00, 0x8b, 0xad]), "8bad");
        assert_eq!(serial_hex(&[0x01, 0x00]), "0100");
        assert_eq!(serial_hex(&[0x00]), "00");
        assert_eq!(serial_hex(&[0x7f]), "7f");
    }

    #[test]
    fn chain_in_order_is_accepted() {
        let c = chain("Test Intermediate");
        // As one bundle, via chain_pem, and with the root appended.
        let bundle = format!("{}{}", c.leaf, c.intermediate);
        let a = parse_bundle(&bundle, None, &c.leaf_key).unwrap();
        let b = parse_bundle(&c.leaf, Some(&c.intermediate), &c.leaf_key).unwrap();
        assert_eq!(a.chain_der.len(), 2);
        assert_eq!(a.chain_pem, b.chain_pem);
        assert_eq!(a.chain_pem, lf(&bundle));
        assert_eq!(a.issuer, "CN=Test Intermediate");
        let full = parse_bundle(&bundle, Some(&c.root), &c.leaf_key).unwrap();
        assert_eq!(full.chain_der.len(), 3);
        // An intermediate repeated in chain_pem is kept once.
        let repeated = parse_bundle(&bundle, Some(&c.intermediate), &c.leaf_key).unwrap();
        assert_eq!(repeated.chain_der.len(), 2);
    }

    #[test]
    fn chain_out_of_order_is_refused() {
        let c = chain("Test Intermediate");
        // Intermediate first.
        let err = parse_bundle(&format!("{}{}", c.intermediate, c.leaf), None, &c.leaf_key).unwrap_err();
        assert!(matches!(err, CertError::ChainOutOfOrder { position: 1, .. }), "{err}");
        assert_eq!(err.code(), "CertificateChainInvalid");
        // Root before intermediate.
        let err = parse_bundle(&c.leaf, Some(&format!("{}{}", c.root, c.intermediate)), &c.leaf_key).unwrap_err();
        assert!(matches!(err, CertError::ChainOutOfOrder { position: 1, .. }), "{err}");
        // Intermediate then an unrelated certificate.
        let unrelated = self_signed(&PKCS_ECDSA_P256_SHA256, &["other.example.com"], Some("Other"));
        let err = parse_bundle(&format!("{}{}{}", c.leaf, c.intermediate, unrelated.cert_pem), None, &c.leaf_key)
            .unwrap_err();
        assert!(matches!(err, CertError::ChainOutOfOrder { position: 2, .. }), "{err}");
        assert!(err.to_string().contains("certificate 2"), "{err}");
        // A different intermediate bearing the right name but another key.
        let impostor = chain("Test Intermediate");
        let err = parse_bundle(&c.leaf, Some(&impostor.intermediate), &c.leaf_key).unwrap_err();
        assert!(matches!(err, CertError::ChainOutOfOrder { position: 1, .. }), "{err}");
        assert!(err.to_string().contains("did not sign"), "{err}");
        // A self-signed leaf followed by anything.
        let leaf = self_signed(&PKCS_ECDSA_P256_SHA256, &["a.example.com"], Some("A"));
        let err = parse_bundle(&leaf.cert_pem, Some(&c.intermediate), &leaf.key_pem).unwrap_err();
        assert!(matches!(err, CertError::ChainOutOfOrder { position: 1, .. }), "{err}");
    }

    #[test]
    fn key_mismatch_is_refused() {
        let a = self_signed(&PKCS_ECDSA_P256_SHA256, &["a.example.com"], None);
        let b = self_signed(&PKCS_ECDSA_P256_SHA256, &["b.example.com"], None);
        let err = parse_bundle(&a.cert_pem, None, &b.key_pem).unwrap_err();
        assert!(matches!(err, CertError::KeyMismatch), "{err}");
        assert_eq!(err.code(), "CertificateKeyMismatch");
        // Different algorithms altogether.
        let err = parse_bundle(RSA2048_CRT, None, &a.key_pem).unwrap_err();
        assert!(matches!(err, CertError::KeyMismatch), "{err}");
        let err = parse_bundle(&a.cert_pem, None, RSA2048_PKCS1).unwrap_err();
        assert!(matches!(err, CertError::KeyMismatch), "{err}");
        let p384 = self_signed(&PKCS_ECDSA_P384_SHA384, &["c.example.com"], None);
        let err = parse_bundle(&a.cert_pem, None, &p384.key_pem).unwrap_err();
        assert!(matches!(err, CertError::KeyMismatch), "{err}");
    }

    #[test]
    fn key_matching_falls_back_to_a_signature() {
        let leaf = self_signed(&PKCS_ECDSA_P256_SHA256, &["a.example.com"], None);
        let other = self_signed(&PKCS_ECDSA_P256_SHA256, &["b.example.com"], None);
        let key = load_signing_key(&leaf.key_pem).unwrap();
        let (_, cert) = X509Certificate::from_der(&leaf.cert_der).unwrap();
        let (_, other_cert) = X509Certificate::from_der(&other.cert_der).unwrap();
        // An SPKI whose bytes differ (here: truncated) still matches by signature.
        let mut spki = cert.public_key().clone();
        spki.raw = &spki.raw[..10];
        assert!(key_matches(key.as_ref(), &spki));
        let mut other_spki = other_cert.public_key().clone();
        other_spki.raw = &other_spki.raw[..10];
        assert!(!key_matches(key.as_ref(), &other_spki));

        let rsa = load_signing_key(RSA2048_PKCS8).unwrap();
        let rsa_cert_der = CertificateDer::from_pem_slice(RSA2048_CRT.as_bytes()).unwrap();
        let (_, rsa_cert) = X509Certificate::from_der(rsa_cert_der.as_ref()).unwrap();
        let mut rsa_spki = rsa_cert.public_key().clone();
        rsa_spki.raw = &[];
        assert!(key_matches(rsa.as_ref(), &rsa_spki));
        assert!(!key_matches(rsa.as_ref(), &other_spki));
    }

    #[test]
    fn garbage_and_empty_input_are_refused() {
        let leaf = self_signed(&PKCS_ECDSA_P256_SHA256, &["a.example.com"], None);
        let cases: Vec<(&str, Option<&str>, &str, &str)> = vec![
            ("", None, &leaf.key_pem, "CertificateMissing"),
            ("  \n ", None, &leaf.key_pem, "CertificateMissing"),
            ("hello world", None, &leaf.key_pem, "CertificateMalformed"),
            ("-----BEGIN CERTIFICATE-----\nAAAA\n", None, &leaf.key_pem, "CertificateMalformed"),
            (
                "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
                None,
                &leaf.key_pem,
                "CertificateMalformed",
            ),
            ("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n", None, &leaf.key_pem, "CertificateMalformed"),
            (
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END X509 CRL-----\n",
                None,
                &leaf.key_pem,
                "CertificateMalformed",
            ),
            (
                "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n",
                None,
                &leaf.key_pem,
                "CertificateInvalid",
            ),
            (&leaf.cert_pem, Some("garbage"), &leaf.key_pem, "CertificateMalformed"),
            (&leaf.cert_pem, None, "", "PrivateKeyMissing"),
            (&leaf.cert_pem, None, "not a key", "CertificateMalformed"),
            (&leaf.cert_pem, None, &leaf.cert_pem, "PrivateKeyMissing"),
            (
                &leaf.cert_pem,
                None,
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
                "CertificateMalformed",
            ),
            (
                &leaf.cert_pem,
                None,
                "-----BEGIN PRIVATE KEY-----\n%%%%\n-----END PRIVATE KEY-----\n",
                "CertificateMalformed",
            ),
        ];
        for (cert, chain, key, code) in cases {
            let err = parse_bundle(cert, chain, key).unwrap_err();
            assert_eq!(err.code(), code, "{cert:?} / {key:?}: {err}");
        }
        // Empty chain_pem is no chain.
        parse_bundle(&leaf.cert_pem, Some(" \n"), &leaf.key_pem).unwrap();
    }

    #[test]
    fn certificate_pem_may_hold_only_certificates() {
        let leaf = self_signed(&PKCS_ECDSA_P256_SHA256, &["a.example.com"], None);
        let combined = format!("{}{}", leaf.cert_pem, leaf.key_pem);
        let err = parse_bundle(&combined, None, &leaf.key_pem).unwrap_err();
        assert!(matches!(err, CertError::MalformedPem { .. }), "{err}");
        assert!(err.to_string().contains("PRIVATE KEY"), "{err}");
        let err = parse_bundle(&leaf.cert_pem, Some(&leaf.key_pem), &leaf.key_pem).unwrap_err();
        assert!(matches!(err, CertError::MalformedPem { .. }), "{err}");
        // The other way round, a certificate next to the key is fine.
        parse_bundle(&leaf.cert_pem, None, &combined).unwrap();
    }

    #[test]
    fn encrypted_keys_are_refused() {
        for key in [RSA2048_ENCRYPTED, RSA2048_LEGACY_ENCRYPTED] {
            let err = parse_bundle(RSA2048_CRT, None, key).unwrap_err();
            assert!(matches!(err, CertError::EncryptedKeyUnsupported), "{err}");
            assert_eq!(err.code(), "PrivateKeyEncrypted");
            assert!(matches!(load_signing_key(key), Err(CertError::EncryptedKeyUnsupported)));
        }
    }

    #[test]
    fn multiple_keys_are_refused() {
        let err = parse_bundle(RSA2048_CRT, None, &format!("{RSA2048_PKCS8}{RSA2048_PKCS1}")).unwrap_err();
        assert!(matches!(err, CertError::MultiplePrivateKeys), "{err}");
        let err = parse_bundle(RSA2048_CRT, None, &format!("{RSA2048_PKCS8}{RSA2048_ENCRYPTED}")).unwrap_err();
        assert!(matches!(err, CertError::MultiplePrivateKeys), "{err}");
        assert_eq!(err.code(), "PrivateKeyMultiple");
    }

    #[test]
    fn unsupported_algorithms_are_refused_by_name() {
        let err = parse_bundle(RSA1024_CRT, None, RSA1024_KEY).unwrap_err();
        assert!(matches!(err, CertError::UnsupportedKey { .. }), "{err}");
        assert!(err.to_string().contains("RSA 1024-bit"), "{err}");
        assert_eq!(err.code(), "KeyAlgorithmUnsupported");

        let err = parse_bundle(EC_P521_CRT, None, EC_P521_KEY).unwrap_err();
        assert!(err.to_string().contains("ECDSA P-521"), "{err}");

        let ed = self_signed(&PKCS_ED25519, &["ed.example.com"], None);
        let err = parse_bundle(&ed.cert_pem, None, &ed.key_pem).unwrap_err();
        assert!(matches!(err, CertError::UnsupportedKey { .. }), "{err}");
        assert!(err.to_string().contains("Ed25519"), "{err}");

        // A supported certificate with an unsupported key names the key.
        let err = parse_bundle(RSA2048_CRT, None, RSA1024_KEY).unwrap_err();
        assert!(err.to_string().contains("the private key is RSA 1024-bit"), "{err}");
        let err = parse_bundle(EC_P256_CRT, None, &ed.key_pem).unwrap_err();
        assert!(err.to_string().contains("the private key is Ed25519"), "{err}");

        for key in [RSA1024_KEY, EC_P521_KEY, ed.key_pem.as_str()] {
            assert!(matches!(load_signing_key(key), Err(CertError::UnsupportedKey { .. })));
        }
        let err = load_signing_key("-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n")
            .err()
            .unwrap();
        assert!(matches!(err, CertError::UnsupportedKey { .. }), "{err}");
    }

    #[test]
    fn key_classification() {
        let p256 = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let p384 = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).unwrap();
        assert_eq!(pkcs8_kind(p256.serialized_der()), Some(KeyKind::Ec(Curve::P256)));
        assert_eq!(pkcs8_kind(p384.serialized_der()), Some(KeyKind::Ec(Curve::P384)));
        assert_eq!(spki_kind(&rcgen::PublicKeyData::subject_public_key_info(&p384)), Some(KeyKind::Ec(Curve::P384)));
        let rsa = PrivateKeyDer::from_pem_slice(RSA2048_PKCS8.as_bytes()).unwrap();
        assert_eq!(pkcs8_kind(rsa.secret_der()), Some(KeyKind::Rsa { bits: 2048 }));
        assert_eq!(integer_bits(&[0x00, 0x80, 0x00]), 16);
        assert_eq!(integer_bits(&[0x01, 0x00]), 9);
        assert_eq!(integer_bits(&[]), 0);
        assert_eq!(pkcs8_kind(b"\x30\x03\x02\x01"), None);
        assert_eq!(der_take(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
    }

    #[test]
    fn size_limits() {
        let leaf = self_signed(&PKCS_ECDSA_P256_SHA256, &["a.example.com"], None);
        let padding = "x".repeat(MAX_CERTIFICATE_PEM_BYTES);
        let err = parse_bundle(&format!("{}{padding}", leaf.cert_pem), None, &leaf.key_pem).unwrap_err();
        assert!(matches!(err, CertError::TooLarge { .. }), "{err}");
        assert_eq!(err.code(), "CertificateTooLarge");
        let err = parse_bundle(&leaf.cert_pem, Some(&padding), &leaf.key_pem).unwrap_err();
        assert!(matches!(err, CertError::TooLarge { .. }), "{err}");

        // Eleven distinct certificates, however well ordered, are too many.
        let extra: String = (0..10)
            .map(|i| self_signed(&PKCS_ECDSA_P256_SHA256, &[&format!("n{i}.example.com")], None).cert_pem)
            .collect();
        let err = parse_bundle(&leaf.cert_pem, Some(&extra), &leaf.key_pem).unwrap_err();
        assert!(matches!(err, CertError::TooLarge { .. }), "{err}");

        let big_key = format!("{}{}", leaf.key_pem, "y".repeat(MAX_PRIVATE_KEY_PEM_BYTES));
        let err = parse_bundle(&leaf.cert_pem, None, &big_key).unwrap_err();
        assert!(matches!(err, CertError::TooLarge { .. }), "{err}");
    }

    #[test]
    fn every_error_code_is_distinct() {
        let errors = [
            CertError::MalformedPem { reason: "r".into() },
            CertError::NoCertificate,
            CertError::InvalidCertificate { reason: "r".into() },
            CertError::NoPrivateKey,
            CertError::MultiplePrivateKeys,
            CertError::EncryptedKeyUnsupported,
            CertError::UnsupportedKey { reason: "r".into() },
            CertError::KeyMismatch,
            CertError::ChainOutOfOrder { position: 1, reason: "r".into() },
            CertError::TooLarge { reason: "r".into() },
        ];
        let codes: Vec<&str> = errors.iter().map(CertError::code).collect();
        assert_eq!(
            codes,
            [
                "CertificateMalformed",
                "CertificateMissing",
                "CertificateInvalid",
                "PrivateKeyMissing",
                "PrivateKeyMultiple",
                "PrivateKeyEncrypted",
                "KeyAlgorithmUnsupported",
                "CertificateKeyMismatch",
                "CertificateChainInvalid",
                "CertificateTooLarge",
            ]
        );
        for e in &errors {
            assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn key_material_never_appears_in_errors_or_debug() {
        let leaf = self_signed(&PKCS_ECDSA_P256_SHA256, &["a.example.com"], None);
        let other = self_signed(&PKCS_ECDSA_P256_SHA256, &["b.example.com"], None);
        let c = chain("Test Intermediate");
        let keys = [
            leaf.key_pem.clone(),
            other.key_pem.clone(),
            RSA2048_PKCS1.to_string(),
            RSA2048_PKCS8.to_string(),
            RSA1024_KEY.to_string(),
            EC_P521_KEY.to_string(),
            EC_P256_SEC1.to_string(),
            RSA2048_ENCRYPTED.to_string(),
            RSA2048_LEGACY_ENCRYPTED.to_string(),
        ];
        let mut attempts: Vec<Result<ParsedCertificate, CertError>> = Vec::new();
        for key in &keys {
            attempts.push(parse_bundle(&leaf.cert_pem, None, key));
            attempts.push(parse_bundle(RSA2048_CRT, None, key));
            attempts.push(parse_bundle(&format!("{}{key}", leaf.cert_pem), None, key));
            attempts.push(parse_bundle(&leaf.cert_pem, Some(key), key));
            attempts.push(parse_bundle(key, None, key));
            attempts.push(parse_bundle(&leaf.cert_pem, None, &format!("{key}{key}")));
            attempts.push(parse_bundle(&leaf.cert_pem, None, &key.replace("-----END", "-----BEGIN")));
            attempts.push(parse_bundle(&leaf.cert_pem, None, &key.replacen('M', "%", 3)));
            attempts.push(parse_bundle(&leaf.cert_pem, None, &key.replace("PRIVATE KEY", "FOO")));
            attempts.push(parse_bundle(&format!("{}{}", c.intermediate, c.leaf), None, key));
            if let Err(e) = load_signing_key(key) {
                attempts.push(Err(e));
            }
        }
        attempts.push(parse_bundle(&leaf.cert_pem, None, &leaf.key_pem));
        attempts.push(parse_bundle(RSA2048_CRT, None, RSA2048_PKCS1));

        let secrets: Vec<&str> = keys.iter().flat_map(|k| body_lines(k)).collect();
        assert!(secrets.len() > 20);
        let mut errors = 0;
        for attempt in &attempts {
            let rendered = match attempt {
                Ok(parsed) => {
                    let rendered = format!("{parsed:?} {parsed:#?}");
                    assert!(!rendered.contains("PRIVATE KEY"), "{rendered}");
                    rendered
                }
                Err(e) => {
                    errors += 1;
                    format!("{e} {e:?} {e:#?}")
                }
            };
            for secret in &secrets {
                assert!(!rendered.contains(secret), "{rendered}");
            }
        }
        assert!(errors > 50);
    }
}
