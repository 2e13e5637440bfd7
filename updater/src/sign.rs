//! CMS signatures of sw-description, as `openssl cms -sign -binary -nosmimecap -outform DER`
//! makes them and SWUpdate (built with CMS signing, as Debian's is) checks with `-k CERT`.
//! OpenSSL through the `openssl` crate: the same library SWUpdate verifies with, maintained
//! with OpenSSL itself, linked against Debian's libssl. Host side only (feature `pack`).

use openssl::cms::{CMSOptions, CmsContentInfo};
use openssl::pkey::{PKey, Private};
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::X509;
use std::path::{Path, PathBuf};

/// A key and the certificate it belongs to.
pub struct Signer {
    key: PKey<Private>,
    cert: X509,
}

/// Why signing or verifying failed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file is not a PEM key or certificate.
    #[error("{path} is not a PEM {what}: {source}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// Key or certificate.
        what: &'static str,
        /// OpenSSL's errors.
        source: openssl::error::ErrorStack,
    },
    /// The key does not belong to the certificate.
    #[error("the key {key} does not match the certificate {cert} (its public key differs): SWUpdate would refuse every package signed with it")]
    Mismatch {
        /// Key file.
        key: PathBuf,
        /// Certificate file.
        cert: PathBuf,
    },
    /// OpenSSL failed.
    #[error("CMS {what}: {source}")]
    Cms {
        /// Sign or verify.
        what: &'static str,
        /// OpenSSL's errors.
        source: openssl::error::ErrorStack,
    },
}

fn read(path: &Path) -> Result<Vec<u8>, SignError> {
    std::fs::read(path).map_err(|source| SignError::Read {
        path: path.into(),
        source,
    })
}

/// Load a PEM certificate.
pub fn load_cert(path: &Path) -> Result<X509, SignError> {
    X509::from_pem(&read(path)?).map_err(|source| SignError::Pem {
        path: path.into(),
        what: "certificate",
        source,
    })
}

impl Signer {
    /// Load a PEM private key and certificate and check that they belong together.
    pub fn load(key: &Path, cert: &Path) -> Result<Signer, SignError> {
        let k = PKey::private_key_from_pem(&read(key)?).map_err(|source| SignError::Pem {
            path: key.into(),
            what: "private key",
            source,
        })?;
        let c = load_cert(cert)?;
        let matches = c.public_key().map(|p| p.public_eq(&k)).unwrap_or(false);
        if !matches {
            return Err(SignError::Mismatch {
                key: key.into(),
                cert: cert.into(),
            });
        }
        Ok(Signer { key: k, cert: c })
    }

    /// The detached DER CMS signature of `data`.
    pub fn sign(&self, data: &[u8]) -> Result<Vec<u8>, SignError> {
        let flags = CMSOptions::DETACHED | CMSOptions::BINARY | CMSOptions::NOSMIMECAP;
        CmsContentInfo::sign(Some(&self.cert), Some(&self.key), None, Some(data), flags)
            .and_then(|c| c.to_der())
            .map_err(|source| SignError::Cms {
                what: "signing",
                source,
            })
    }
}

/// Verify a detached DER CMS signature of `data` against `cert` as the trust anchor (what
/// SWUpdate's `-k CERT` does).
pub fn verify(cert: &X509, data: &[u8], sig: &[u8]) -> Result<(), SignError> {
    let e = |source| SignError::Cms {
        what: "verification",
        source,
    };
    let mut cms = CmsContentInfo::from_der(sig).map_err(e)?;
    let mut store = X509StoreBuilder::new().map_err(e)?;
    store.add_cert(cert.clone()).map_err(e)?;
    let store = store.build();
    cms.verify(None, Some(&store), Some(data), None, CMSOptions::BINARY)
        .map_err(e)
}
