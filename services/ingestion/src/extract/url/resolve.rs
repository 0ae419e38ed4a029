//! The fetch client's DNS resolver: it resolves a host name and hands the HTTP client only
//! the addresses [`Allowlist::permits`], so the address checked is the address connected
//! to. Resolving once to check and again to connect would let a name answer with a public
//! address first and a private one second (DNS rebinding).

use std::net::SocketAddr;
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::guard::Allowlist;

/// A host name resolved to no address a fetch may connect to (or to none at all).
#[derive(Debug, thiserror::Error)]
#[error("{host} resolves to no permitted address")]
pub(super) struct NoPermittedAddress {
    host: String,
}

/// Resolves with the system resolver, then keeps only permitted addresses.
#[derive(Debug, Clone)]
pub(super) struct VettingResolver {
    allow: Arc<Allowlist>,
}

impl VettingResolver {
    /// A resolver judging addresses by `allow`.
    pub(super) fn new(allow: Arc<Allowlist>) -> Self {
        Self { allow }
    }
}

impl Resolve for VettingResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow = self.allow.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            // Port 0: the client puts in the URL's port (or the scheme's).
            let resolved = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let permitted = vet(&allow, &host, resolved);
            if permitted.is_empty() {
                return Err(NoPermittedAddress { host }.into());
            }
            Ok(Box::new(permitted.into_iter()) as Addrs)
        })
    }
}

/// The addresses of `resolved` that `allow` permits for `host`, logging the others.
fn vet(
    allow: &Allowlist,
    host: &str,
    resolved: impl IntoIterator<Item = SocketAddr>,
) -> Vec<SocketAddr> {
    let host_listed = allow.lists_host(host);
    resolved
        .into_iter()
        .filter(|address| match allow.permits(address.ip(), host_listed) {
            Ok(()) => true,
            Err(refusal) => {
                tracing::warn!(
                    host,
                    address = %address.ip(),
                    %refusal,
                    "URL fetch: refused to connect (DA_INGEST_URL_ALLOW lists exceptions)"
                );
                false
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addresses(list: &[&str]) -> Vec<SocketAddr> {
        list.iter()
            .map(|a| SocketAddr::new(a.parse().expect("test address"), 0))
            .collect()
    }

    #[test]
    fn only_permitted_addresses_are_kept() {
        let allow: Allowlist = "10.0.0.0/8".parse().expect("allowlist");
        let kept = vet(
            &allow,
            "mixed.example",
            addresses(&["127.0.0.1", "8.8.8.8", "10.1.1.1", "169.254.169.254"]),
        );
        assert_eq!(kept, addresses(&["8.8.8.8", "10.1.1.1"]));
    }

    #[test]
    fn a_listed_name_keeps_its_private_addresses_but_not_metadata() {
        let allow: Allowlist = "intranet.example".parse().expect("allowlist");
        let kept = vet(
            &allow,
            "Intranet.Example",
            addresses(&["10.1.1.1", "::1", "169.254.169.254"]),
        );
        assert_eq!(kept, addresses(&["10.1.1.1", "::1"]));
    }

    #[tokio::test]
    async fn localhost_resolves_to_nothing_permitted() {
        let resolver = VettingResolver::new(Arc::new(Allowlist::default()));
        let name: Name = "localhost".parse().expect("name");
        let result = resolver.resolve(name).await;
        assert!(result.is_err(), "localhost was permitted");
    }
}
