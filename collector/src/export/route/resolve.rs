//! The addresses of a `dns:` trace endpoint: every A and AAAA record of its name (a headless
//! Service answers with one per ready pod), asked of the system's resolver configuration or of
//! the server the endpoint names. Answers are not cached past the lookup interval, so a new
//! gateway is seen within one interval.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::config::{ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::TokioResolver;

use crate::export::args::DnsName;

pub struct Resolver {
    resolver: Result<TokioResolver, String>,
    host: String,
    port: u16,
}

impl Resolver {
    pub fn new(name: &DnsName) -> Self {
        let builder = match name.server {
            Some(server) => {
                let mut udp = ConnectionConfig::udp();
                udp.port = server.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = server.port();
                let servers = vec![NameServerConfig::new(server.ip(), true, vec![udp, tcp])];
                let config = ResolverConfig::from_parts(None, Vec::new(), servers);
                Ok(TokioResolver::builder_with_config(config, TokioRuntimeProvider::default()))
            }
            None => TokioResolver::builder_tokio().map_err(|error| error.to_string()),
        };
        let resolver = builder.and_then(|mut builder| {
            let options = builder.options_mut();
            options.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
            options.positive_max_ttl = Some(name.every.min(Duration::from_secs(30)));
            options.negative_max_ttl = Some(name.every);
            builder.build().map_err(|error| error.to_string())
        });
        Self { resolver, host: name.host.clone(), port: name.port }
    }

    /// The endpoints the name stands for now: `address:port` → its gRPC URL.
    pub async fn addresses(&self) -> Result<BTreeMap<String, String>, String> {
        let resolver = self.resolver.as_ref().map_err(Clone::clone)?;
        let found = resolver.lookup_ip(self.host.as_str()).await.map_err(|error| error.to_string())?;
        Ok(found
            .iter()
            .map(|ip| {
                let address = SocketAddr::new(ip, self.port);
                (address.to_string(), format!("http://{address}"))
            })
            .collect())
    }
}
