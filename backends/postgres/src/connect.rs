//! Opening a connection: TLS when the URL asks for it (verified against
//! the public roots and the configured CA), and the blocking client for
//! what runs once at start.

use std::sync::Arc;

use anyhow::{Context, Result};
use postgres::config::SslMode;
use tokio_postgres::{Config, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::storage::Unavailable;

/// TLS for `sslmode=require`, verifying the server's certificate and name
/// (stricter than libpq's `require`, which checks neither: an unverified
/// channel to the database that holds every credential is not worth
/// having). `prefer`, the URL default, stays plain: a fallback an attacker
/// can force is no protection.
pub(super) fn tls(
    config: &Config,
    ca: Option<&std::path::Path>,
) -> Result<Option<MakeRustlsConnect>> {
    if config.get_ssl_mode() != SslMode::Require {
        return Ok(None);
    }
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(ca) = ca {
        use rustls::pki_types::{CertificateDer, pem::PemObject};
        for cert in CertificateDer::pem_file_iter(ca)
            .with_context(|| format!("reading {}", ca.display()))?
        {
            roots.add(cert.with_context(|| format!("a certificate in {}", ca.display()))?)?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Some(MakeRustlsConnect::new(client)))
}

/// A blocking client for what runs once at start (migrations, checking the
/// platform's queries).
pub(super) fn connect_once(
    config: &Config,
    tls: Option<&MakeRustlsConnect>,
) -> Result<postgres::Client> {
    let config = postgres::Config::from(config.clone());
    let connected = match tls {
        Some(tls) => config.connect(tls.clone()),
        None => config.connect(NoTls),
    };
    connected
        .map_err(|e| anyhow::Error::new(Unavailable(Box::new(e))))
        .context("connecting to PostgreSQL")
}
