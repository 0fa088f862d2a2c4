//! Who the server trusts and how much it allows: the proxies whose `X-Forwarded-*` headers count,
//! when the session cookie is `Secure`, which other origins may talk to it, and the rate limits.
//! Built once from configuration (`server::config`); every request reads it through `AppState`.

use std::net::IpAddr;
use std::time::Duration;

use axum::http::HeaderMap;

/// An address or a CIDR block (`10.0.0.0/8`, `::1/128`, `127.0.0.1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpBlock {
    network: IpAddr,
    prefix: u8,
}

impl IpBlock {
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix.parse::<u8>().ok()?)),
            None => (text, None),
        };
        let network: IpAddr = addr.parse().ok()?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Self { network, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 client seen through an IPv6 socket (`::ffff:a.b.c.d`) is that IPv4 client.
        let ip = canonical(ip);
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// When the session cookie carries `Secure`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CookieSecure {
    /// When the request came over https: directly, or per `X-Forwarded-Proto` from a trusted proxy.
    #[default]
    Auto,
    Always,
    Never,
}

/// A sliding-window limit: at most `max` events per `window`. `max == 0` turns it off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub max: usize,
    pub window: Duration,
}

impl Limit {
    pub const fn new(max: usize, window_secs: u64) -> Self {
        Self { max, window: Duration::from_secs(window_secs) }
    }
}

/// The request-level rate limits. Defaults in [`Limits::default`]; each is configurable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Sign-in attempts per account (successful ones are given back).
    pub sign_ins_per_account: Limit,
    /// Sign-in attempts per client address (successful ones are given back).
    pub sign_ins_per_address: Limit,
    /// New accounts per client address.
    pub sign_ups_per_address: Limit,
    /// Messages per user.
    pub sends_per_user: Limit,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            sign_ins_per_account: Limit::new(5, 15 * 60),
            sign_ins_per_address: Limit::new(20, 15 * 60),
            sign_ups_per_address: Limit::new(10, 60 * 60),
            sends_per_user: Limit::new(20, 10),
        }
    }
}

/// Everything above, as configured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecurityPolicy {
    /// Peers whose `X-Forwarded-For` / `X-Forwarded-Proto` are believed. Empty: nobody's.
    pub trusted_proxies: Vec<IpBlock>,
    pub cookie_secure: CookieSecure,
    /// Origins besides the server's own (`https://chat.example.com`) allowed to post and to open
    /// the WebSocket, lower-case, without a trailing slash.
    pub allowed_origins: Vec<String>,
    pub limits: Limits,
}

impl SecurityPolicy {
    fn trusts(&self, peer: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|block| block.contains(peer))
    }

    /// The client's address: the socket's peer, or, when that peer is a trusted proxy, the
    /// right-most address in `X-Forwarded-For` that is not itself a trusted proxy (the left part
    /// of the header is whatever the client claimed, so it never counts).
    pub fn client_address(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        let forwarded: Vec<IpAddr> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map_while(|part| part.trim().parse::<IpAddr>().ok())
            .map(canonical)
            .collect();
        forwarded.into_iter().rev().find(|ip| !self.trusts(*ip)).unwrap_or(peer)
    }

    /// Whether the request reached us over https: directly (`direct_https`), or per
    /// `X-Forwarded-Proto` when the peer is a trusted proxy.
    pub fn came_over_https(&self, peer: Option<IpAddr>, headers: &HeaderMap, direct_https: bool) -> bool {
        if direct_https {
            return true;
        }
        peer.is_some_and(|peer| self.trusts(canonical(peer)))
            && headers
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
    }

    /// Whether the session cookie gets `Secure` on a request that came over https or not.
    pub fn secure_cookie(&self, over_https: bool) -> bool {
        match self.cookie_secure {
            CookieSecure::Auto => over_https,
            CookieSecure::Always => true,
            CookieSecure::Never => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn blocks_match_their_addresses_only() {
        let block = IpBlock::parse("10.1.0.0/16").unwrap();
        assert!(block.contains(ip("10.1.200.3")));
        assert!(!block.contains(ip("10.2.0.1")));
        assert!(IpBlock::parse("127.0.0.1").unwrap().contains(ip("::ffff:127.0.0.1")));
        assert!(IpBlock::parse("::1").unwrap().contains(ip("::1")));
        assert!(IpBlock::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(!IpBlock::parse("::/0").unwrap().contains(ip("8.8.8.8")), "families never mix");
        assert_eq!(IpBlock::parse("10.0.0.0/33"), None);
        assert_eq!(IpBlock::parse("example.com"), None);
    }

    #[test]
    fn forwarded_for_counts_only_from_a_trusted_proxy() {
        let forwarded = headers(&[("x-forwarded-for", "6.6.6.6, 203.0.113.9")]);
        let open = SecurityPolicy::default();
        assert_eq!(open.client_address(ip("10.0.0.2"), &forwarded), ip("10.0.0.2"), "nobody is trusted by default");

        let behind_proxy =
            SecurityPolicy { trusted_proxies: vec![IpBlock::parse("10.0.0.0/8").unwrap()], ..Default::default() };
        assert_eq!(behind_proxy.client_address(ip("10.0.0.2"), &forwarded), ip("203.0.113.9"));
        assert_eq!(
            behind_proxy.client_address(ip("198.51.100.1"), &forwarded),
            ip("198.51.100.1"),
            "a client that is not the proxy cannot pick its own address"
        );
        // Two proxies in a row: the right-most untrusted hop is the client.
        let chain = headers(&[("x-forwarded-for", "203.0.113.9, 10.0.0.7")]);
        assert_eq!(behind_proxy.client_address(ip("10.0.0.2"), &chain), ip("203.0.113.9"));
        assert_eq!(behind_proxy.client_address(ip("10.0.0.2"), &HeaderMap::new()), ip("10.0.0.2"));
    }

    #[test]
    fn https_and_the_secure_flag() {
        let proto = headers(&[("x-forwarded-proto", "https")]);
        let open = SecurityPolicy::default();
        assert!(!open.came_over_https(Some(ip("10.0.0.2")), &proto, false), "an untrusted peer's header is ignored");
        assert!(open.came_over_https(None, &HeaderMap::new(), true));
        let behind_proxy =
            SecurityPolicy { trusted_proxies: vec![IpBlock::parse("10.0.0.2").unwrap()], ..Default::default() };
        assert!(behind_proxy.came_over_https(Some(ip("10.0.0.2")), &proto, false));
        assert!(behind_proxy.secure_cookie(true) && !behind_proxy.secure_cookie(false));
        let always = SecurityPolicy { cookie_secure: CookieSecure::Always, ..Default::default() };
        assert!(always.secure_cookie(false));
        let never = SecurityPolicy { cookie_secure: CookieSecure::Never, ..Default::default() };
        assert!(!never.secure_cookie(true));
    }
}
