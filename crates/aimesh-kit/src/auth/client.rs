//! The address of the client behind a request.
//!
//! Behind the edge, every request's TCP peer is the edge itself: limits keyed on the peer
//! would lump every client together. When the peer is a trusted proxy
//! (`AIMESH_TRUSTED_PROXIES`), the client is the address the proxy reports: Envoy's
//! `x-envoy-external-address`, else the nearest untrusted hop of `x-forwarded-for`. A peer
//! that is not trusted is the client, whatever headers it sends.

use std::net::IpAddr;

use ipnet::IpNet;

/// The client address of a request, put into its extensions by the auth layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientAddress(pub IpAddr);

/// Returns the client address the auth layer found for `request`, if any.
pub fn client_address<T>(request: &tonic::Request<T>) -> Option<IpAddr> {
    request
        .extensions()
        .get::<ClientAddress>()
        .map(|client| client.0)
}

/// The proxies whose reports of the client address are believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses a comma-separated list of addresses and CIDR ranges (`127.0.0.1,10.0.0.0/8`);
    /// empty or `none` trusts no proxy.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut nets = Vec::new();
        for item in list.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            if item.eq_ignore_ascii_case("none") {
                continue;
            }
            let net = item
                .parse::<IpNet>()
                .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{item:?} is not an address or CIDR range"))?;
            nets.push(net);
        }
        Ok(Self(nets))
    }

    /// Returns whether `address` is a trusted proxy.
    pub fn contains(&self, address: IpAddr) -> bool {
        let address = canonical(address);
        self.0.iter().any(|net| net.contains(&address))
    }

    /// Returns the client of a request from `peer` carrying `headers`.
    pub fn client(&self, peer: Option<IpAddr>, headers: &http::HeaderMap) -> Option<IpAddr> {
        let peer = canonical(peer?);
        if !self.contains(peer) {
            return Some(peer);
        }
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        if let Some(external) =
            header("x-envoy-external-address").and_then(|value| value.trim().parse::<IpAddr>().ok())
        {
            return Some(canonical(external));
        }
        // The nearest hop a trusted proxy did not add, reading from the right.
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .collect::<Vec<_>>();
        for hop in forwarded.iter().rev() {
            match hop.parse::<IpAddr>() {
                Ok(address) if self.contains(address) => continue,
                Ok(address) => return Some(canonical(address)),
                Err(_) => break,
            }
        }
        Some(peer)
    }
}

/// An IPv4 address mapped into IPv6 (`::ffff:1.2.3.4`) as the IPv4 address it is.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> http::HeaderMap {
        let mut map = http::HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn a_trusted_proxy_reports_the_client_and_others_are_the_client() {
        let trusted = TrustedProxies::parse("127.0.0.0/8, ::1, 10.1.2.3").unwrap();
        let edge: IpAddr = "127.0.0.1".parse().unwrap();
        let stranger: IpAddr = "203.0.113.9".parse().unwrap();
        let reported = headers(&[("x-envoy-external-address", "198.51.100.7")]);
        assert_eq!(
            trusted.client(Some(edge), &reported),
            Some("198.51.100.7".parse().unwrap())
        );
        // An untrusted peer cannot claim another address.
        assert_eq!(trusted.client(Some(stranger), &reported), Some(stranger));
        // x-forwarded-for: the nearest hop no trusted proxy added.
        let forwarded = headers(&[("x-forwarded-for", "1.1.1.1, 198.51.100.8, 10.1.2.3")]);
        assert_eq!(
            trusted.client(Some(edge), &forwarded),
            Some("198.51.100.8".parse().unwrap())
        );
        // Nothing reported: the proxy itself.
        assert_eq!(trusted.client(Some(edge), &headers(&[])), Some(edge));
        // A mapped IPv4 peer is matched as IPv4.
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert_eq!(
            trusted.client(Some(mapped), &reported),
            Some("198.51.100.7".parse().unwrap())
        );
    }

    #[test]
    fn lists_are_parsed_strictly() {
        assert!(TrustedProxies::parse("").unwrap().0.is_empty());
        assert!(TrustedProxies::parse("none").unwrap().0.is_empty());
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
        assert!(TrustedProxies::parse("example.com").is_err());
    }
}
