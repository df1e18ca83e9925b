//! A worker's connection: reconnected when lost, with its prepared
//! statements, TLS when the URL asks for it, and errors sorted into "the
//! database is out of reach" and faults.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow};
use postgres::config::SslMode;
use postgres::types::ToSql;
use postgres::{Client, NoTls, Row, Statement};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::storage::Unavailable;

/// A connection that reconnects when it was lost, with its prepared
/// statements (each is prepared once per connection: a statement sent as
/// text costs a second round trip every time).
pub(crate) struct Conn {
    config: postgres::Config,
    tls: Option<MakeRustlsConnect>,
    client: Option<Client>,
    statements: HashMap<&'static str, Statement>,
}

impl Conn {
    pub(super) fn new(config: postgres::Config, tls: Option<MakeRustlsConnect>) -> Self {
        Self {
            config,
            tls,
            client: None,
            statements: HashMap::new(),
        }
    }

    /// The client, connecting first if there is none or it was lost.
    pub(super) fn client(&mut self) -> Result<&mut Client> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.statements.clear();
            let connected = match &self.tls {
                Some(tls) => self.config.connect(tls.clone()),
                None => self.config.connect(NoTls),
            };
            let client = connected
                .map_err(|e| anyhow::Error::new(Unavailable(Box::new(e))))
                .context("connecting to PostgreSQL")?;
            self.client = Some(client);
        }
        Ok(self.client.as_mut().expect("just connected"))
    }

    /// Runs statements with no parameters and no rows (BEGIN, COMMIT).
    pub(super) fn batch(&mut self, sql: &str) -> Result<()> {
        self.client()?.batch_execute(sql).map_err(failure)
    }

    pub(super) fn rollback(&mut self) {
        if let Some(client) = self.client.as_mut()
            && client.batch_execute("ROLLBACK").is_err()
        {
            // A connection that can't roll back is of no further use.
            self.client = None;
        }
    }

    fn statement(&mut self, sql: &'static str) -> Result<Statement> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client()?.prepare(sql).map_err(failure)?;
        self.statements.insert(sql, statement.clone());
        Ok(statement)
    }

    pub(super) fn query(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>> {
        let statement = self.statement(sql)?;
        self.client()?.query(&statement, params).map_err(failure)
    }

    pub(super) fn query_opt(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    pub(super) fn execute(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64> {
        let statement = self.statement(sql)?;
        self.client()?.execute(&statement, params).map_err(failure)
    }
}

/// A PostgreSQL error as the host reports it: a lost connection or a server
/// that is shutting down or out of connections is [`Unavailable`] (the
/// caller answers 503); anything else is a fault.
fn failure(e: postgres::Error) -> anyhow::Error {
    let io = std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>());
    // SQLSTATE classes 08 (connection exception), 53 (insufficient
    // resources) and 57 (operator intervention: admin shutdown).
    let class = e.code().map(|c| &c.code()[..2]);
    if e.is_closed() || io || matches!(class, Some("08" | "53" | "57")) {
        anyhow::Error::new(Unavailable(Box::new(e)))
    } else {
        e.into()
    }
}

/// The same failure again, as text, still marked [`Unavailable`] if it was.
pub(super) fn copy_error(e: &anyhow::Error) -> anyhow::Error {
    let text = format!("{e:#}");
    if crate::storage::is_unavailable(e) {
        anyhow::Error::new(Unavailable(text.into()))
    } else {
        anyhow!(text)
    }
}

/// TLS for `sslmode=require`, verifying the server's certificate and name
/// (stricter than libpq's `require`, which checks neither: an unverified
/// channel to the database that holds every credential is not worth
/// having). `prefer`, the URL default, stays plain: a fallback an attacker
/// can force is no protection.
pub(super) fn tls(
    config: &postgres::Config,
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
