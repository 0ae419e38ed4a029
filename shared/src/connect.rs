//! Connecting to NATS with the same credentials the `nats` CLI and nats.go accept.
//!
//! Every command and service connects through [`connect`], so a deployment secured with
//! users, tokens, nkeys, JWT credentials or TLS needs nothing but the usual variables:
//!
//! | variable | what |
//! |---|---|
//! | `NATS_URL` | `nats://user:password@host:4222` or `nats://token@host:4222` (userinfo is taken out of the URL and sent as credentials) |
//! | `NATS_USER`, `NATS_PASSWORD` | user and password |
//! | `NATS_TOKEN` | a token |
//! | `NATS_CREDS` | a credentials file (JWT + nkey seed, as made by `nsc`) |
//! | `NATS_NKEY` | a file holding an nkey seed (`SU…`) |
//! | `NATS_CA` | a PEM file of root certificates to trust (turns TLS on) |
//! | `NATS_CERT`, `NATS_KEY` | a client certificate and its key, PEM (mutual TLS) |
//!
//! One kind of login at a time: a URL's userinfo, user/password, a token, a creds file or
//! an nkey. A failed login says which one was tried, never the secret itself.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use async_nats::{Client, ConnectOptions};

use crate::settings::{Settings, server_urls};
use crate::subject::Inboxes;

/// How a process logs in to NATS: read once from [`Settings`], applied by [`connect`].
#[derive(Clone, Default)]
pub struct Credentials {
    login: Option<Login>,
    ca: Option<PathBuf>,
    client_cert: Option<(PathBuf, PathBuf)>,
}

/// The one kind of login in force.
#[derive(Clone)]
enum Login {
    UserPassword {
        user: String,
        password: String,
        from: &'static str,
    },
    Token {
        token: String,
        from: &'static str,
    },
    CredsFile(PathBuf),
    NkeyFile(PathBuf),
}

/// Why a connection could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The settings name credentials that cannot be used.
    #[error("NATS credentials: {0}")]
    Settings(String),
    /// The server could not be reached or refused the login.
    #[error("cannot connect to NATS at {url} ({tried}): {source}")]
    Connect {
        /// The servers, without any userinfo.
        url: String,
        /// The login that was tried, without its secret.
        tried: String,
        /// What the client said.
        source: async_nats::ConnectError,
    },
}

impl Credentials {
    /// The credentials named by `settings` and by the userinfo of `nats_url`.
    pub fn from_settings(settings: &Settings, nats_url: &str) -> Result<Self, ConnectError> {
        let mut logins = Vec::new();
        if let Some(login) = userinfo_login(nats_url)? {
            logins.push(login);
        }
        match (settings.var("NATS_USER"), settings.var("NATS_PASSWORD")) {
            (Some(user), password) => logins.push(Login::UserPassword {
                user: user.to_owned(),
                password: password.unwrap_or_default().to_owned(),
                from: "NATS_USER/NATS_PASSWORD",
            }),
            (None, Some(_)) => {
                return Err(ConnectError::Settings(
                    "NATS_PASSWORD is set without NATS_USER".into(),
                ));
            }
            (None, None) => {}
        }
        if let Some(token) = settings.var("NATS_TOKEN") {
            logins.push(Login::Token {
                token: token.to_owned(),
                from: "NATS_TOKEN",
            });
        }
        if let Some(path) = settings.var("NATS_CREDS") {
            logins.push(Login::CredsFile(PathBuf::from(path)));
        }
        if let Some(path) = settings.var("NATS_NKEY") {
            logins.push(Login::NkeyFile(PathBuf::from(path)));
        }
        if logins.len() > 1 {
            let named: Vec<String> = logins.iter().map(Login::to_string).collect();
            return Err(ConnectError::Settings(format!(
                "more than one login is set ({}): keep one",
                named.join("; ")
            )));
        }
        let client_cert = match (settings.var("NATS_CERT"), settings.var("NATS_KEY")) {
            (Some(cert), Some(key)) => Some((PathBuf::from(cert), PathBuf::from(key))),
            (None, None) => None,
            _ => {
                return Err(ConnectError::Settings(
                    "NATS_CERT and NATS_KEY go together".into(),
                ));
            }
        };
        Ok(Self {
            login: logins.pop(),
            ca: settings.var("NATS_CA").map(PathBuf::from),
            client_cert,
        })
    }

    /// Whether the process logs in at all: a server that asks for a login has tenants that
    /// log in too, so their reply inboxes are their own (see [`crate::subject::Inboxes`]).
    pub fn authenticates(&self) -> bool {
        self.login.is_some() || self.client_cert.is_some()
    }

    /// The options for these credentials.
    async fn options(&self) -> Result<ConnectOptions, ConnectError> {
        let mut options = match &self.login {
            None => ConnectOptions::new(),
            Some(Login::UserPassword { user, password, .. }) => {
                ConnectOptions::with_user_and_password(user.clone(), password.clone())
            }
            Some(Login::Token { token, .. }) => ConnectOptions::with_token(token.clone()),
            Some(Login::CredsFile(path)) => ConnectOptions::with_credentials_file(path)
                .await
                .map_err(|err| {
                    ConnectError::Settings(format!("NATS_CREDS {}: {err}", path.display()))
                })?,
            Some(Login::NkeyFile(path)) => {
                let seed = std::fs::read_to_string(path).map_err(|err| {
                    ConnectError::Settings(format!("NATS_NKEY {}: {err}", path.display()))
                })?;
                let seed = seed
                    .lines()
                    .map(str::trim)
                    .find(|line| line.starts_with('S'))
                    .ok_or_else(|| {
                        ConnectError::Settings(format!(
                            "NATS_NKEY {}: no nkey seed (a line starting with S) in the file",
                            path.display()
                        ))
                    })?;
                ConnectOptions::with_nkey(seed.to_owned())
            }
        };
        if let Some(ca) = &self.ca {
            options = options.add_root_certificates(ca.clone()).require_tls(true);
        }
        if let Some((cert, key)) = &self.client_cert {
            options = options
                .add_client_certificate(cert.clone(), key.clone())
                .require_tls(true);
        }
        Ok(options)
    }

    /// Which reply inboxes results may go to: `DA_INBOXES` if set, else
    /// [`Inboxes::Tenant`] when this process logs in (its server has logins, so tenants log
    /// in too and read only their own `_INBOX_<tenant>.` inboxes), [`Inboxes::Shared`] when
    /// it does not (a server without logins, where `nats req` works with no inbox prefix).
    pub fn inboxes(&self, settings: &Settings) -> Inboxes {
        settings.inboxes.unwrap_or(if self.authenticates() {
            Inboxes::Tenant
        } else {
            Inboxes::Shared
        })
    }

    /// What a failed login reports as tried: the kind and its source, never a secret.
    fn tried(&self) -> String {
        let login = self
            .login
            .as_ref()
            .map_or_else(|| "no credentials".to_owned(), Login::to_string);
        match (&self.ca, &self.client_cert) {
            (None, None) => login,
            (Some(ca), None) => format!("{login}, TLS trusting {}", ca.display()),
            (_, Some((cert, _))) => format!("{login}, TLS client certificate {}", cert.display()),
        }
    }
}

impl fmt::Display for Login {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Login::UserPassword { user, from, .. } => write!(f, "user {user:?} from {from}"),
            Login::Token { from, .. } => write!(f, "a token from {from}"),
            Login::CredsFile(path) => write!(f, "credentials file {} (NATS_CREDS)", path.display()),
            Login::NkeyFile(path) => write!(f, "nkey seed file {} (NATS_NKEY)", path.display()),
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.tried())
    }
}

/// The login in a URL's userinfo: `user:password@` or `token@`. Several servers may carry
/// it; they must agree.
fn userinfo_login(nats_url: &str) -> Result<Option<Login>, ConnectError> {
    let mut found: Option<(String, Option<String>)> = None;
    for server in server_urls(nats_url) {
        let Some(info) = userinfo(server)? else {
            continue;
        };
        match &found {
            Some(seen) if *seen != info => {
                return Err(ConnectError::Settings(
                    "the servers in NATS_URL carry different credentials".into(),
                ));
            }
            _ => found = Some(info),
        }
    }
    Ok(found.map(|(user, password)| match password {
        Some(password) => Login::UserPassword {
            user,
            password,
            from: "NATS_URL",
        },
        None => Login::Token {
            token: user,
            from: "NATS_URL",
        },
    }))
}

/// The decoded user and password of one server URL, if it has any.
fn userinfo(server: &str) -> Result<Option<(String, Option<String>)>, ConnectError> {
    let with_scheme = if server.contains("://") {
        server.to_owned()
    } else {
        format!("nats://{server}")
    };
    let url = url::Url::parse(&with_scheme)
        .map_err(|err| ConnectError::Settings(format!("{}: {err}", redact(server))))?;
    if url.username().is_empty() {
        return Ok(None);
    }
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    Ok(Some((decode(url.username()), url.password().map(decode))))
}

/// `server` without its userinfo, for messages and for the client (which gets the
/// credentials through its options).
pub fn redact(server: &str) -> String {
    match (server.find("://"), server.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}{}", &server[..scheme + 3], &server[at + 1..])
        }
        (None, Some(at)) => server[at + 1..].to_owned(),
        _ => server.to_owned(),
    }
}

/// Connects to the servers of `nats_url` with `credentials`, naming the connection `name`
/// (as `nats server report connections` shows it).
pub async fn connect(
    nats_url: &str,
    credentials: &Credentials,
    name: &str,
    timeout: Duration,
) -> Result<Client, ConnectError> {
    let servers: Vec<String> = server_urls(nats_url).into_iter().map(redact).collect();
    let options = credentials
        .options()
        .await?
        .name(name)
        .connection_timeout(timeout);
    options
        .connect(servers.as_slice())
        .await
        .map_err(|source| ConnectError::Connect {
            url: servers.join(","),
            tried: credentials.tried(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Settings {
        Settings::from_pairs(pairs).expect("settings")
    }

    #[test]
    fn userinfo_becomes_a_login_and_leaves_the_url() {
        let url = "nats://services:p%40ss@127.0.0.1:4222";
        let creds = Credentials::from_settings(&settings(&[]), url).unwrap();
        assert_eq!(creds.tried(), "user \"services\" from NATS_URL");
        match creds.login {
            Some(Login::UserPassword { password, .. }) => assert_eq!(password, "p@ss"),
            _ => panic!("user and password"),
        }
        assert_eq!(redact(url), "nats://127.0.0.1:4222");
        assert_eq!(redact("s3cret@host:4222"), "host:4222");
        let token = Credentials::from_settings(&settings(&[]), "nats://s3cret@h:1").unwrap();
        assert_eq!(token.tried(), "a token from NATS_URL");
        assert!(!format!("{token:?}").contains("s3cret"));
    }

    #[test]
    fn one_login_at_a_time() {
        let err = Credentials::from_settings(
            &settings(&[("NATS_USER", "a"), ("NATS_TOKEN", "t")]),
            "nats://127.0.0.1:4222",
        )
        .unwrap_err();
        assert!(err.to_string().contains("more than one login"), "{err}");
        let err =
            Credentials::from_settings(&settings(&[("NATS_CERT", "c")]), "nats://h:1").unwrap_err();
        assert!(err.to_string().contains("NATS_KEY"), "{err}");
        let none = Credentials::from_settings(&settings(&[]), "nats://h:1").unwrap();
        assert!(!none.authenticates());
        let creds =
            Credentials::from_settings(&settings(&[("NATS_CREDS", "/x/u.creds")]), "nats://h:1")
                .unwrap();
        assert!(creds.authenticates());
        assert_eq!(creds.tried(), "credentials file /x/u.creds (NATS_CREDS)");
    }

    #[test]
    fn cluster_urls_must_agree() {
        let url = "nats://a:1@n1:4222,nats://b:2@n2:4222";
        assert!(Credentials::from_settings(&settings(&[]), url).is_err());
        let url = "nats://a:1@n1:4222,nats://n2:4222";
        assert!(Credentials::from_settings(&settings(&[]), url).is_ok());
    }
}
