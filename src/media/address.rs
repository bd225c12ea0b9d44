//! Which addresses a media download may connect to. A message's URL is
//! chosen by the service (or by whoever wrote into a chat): it must not
//! make chatkeep fetch from the host's own network (a cloud metadata
//! endpoint, a router's admin page, a local daemon). Only public unicast
//! addresses are allowed, except those of the configured service's own
//! host, which is where tests and the demo run (on 127.0.0.1).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why an address is not fetched from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Forbidden {
    #[error("a loopback address")]
    Loopback,
    #[error("a private network address")]
    Private,
    #[error("a link-local address")]
    LinkLocal,
    #[error("the unspecified address")]
    Unspecified,
    #[error("a multicast or broadcast address")]
    Multicast,
    #[error("a reserved or documentation address")]
    Reserved,
}

/// The rule for one run: public addresses, plus every address of the
/// configured service's own host.
#[derive(Debug, Clone, Default)]
pub struct AddressPolicy {
    /// `base_url`'s host, lower case (an IP literal, or a name).
    service_host: Option<String>,
}

impl AddressPolicy {
    /// The policy for a service at `base_url`.
    pub fn for_service(base_url: &str) -> AddressPolicy {
        let service_host = reqwest::Url::parse(base_url)
            .ok()
            .and_then(|url| url.host_str().map(str::to_ascii_lowercase));
        AddressPolicy { service_host }
    }

    /// `Ok` when a download from `host` (as the URL names it) may connect
    /// to `ip`, one of the addresses it resolved to. The service's own host
    /// is trusted whatever it resolves to: chatkeep already talks to it.
    pub fn check(&self, host: &str, ip: IpAddr) -> Result<(), Forbidden> {
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let service = self
            .service_host
            .as_deref()
            .map(|h| h.trim_start_matches('[').trim_end_matches(']'));
        if service == Some(host.as_str()) {
            return Ok(());
        }
        check_ip(ip)
    }
}

/// `Ok` when a download may connect to `ip`; else what kind of address it is.
pub fn check_ip(ip: IpAddr) -> Result<(), Forbidden> {
    match ip {
        IpAddr::V4(v4) => check_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            // `::ffff:10.0.0.1` reaches 10.0.0.1.
            Some(v4) => check_v4(v4),
            None => check_v6(v6),
        },
    }
}

fn check_v4(ip: Ipv4Addr) -> Result<(), Forbidden> {
    let [a, b, ..] = ip.octets();
    if ip.is_unspecified() || a == 0 {
        Err(Forbidden::Unspecified)
    } else if ip.is_loopback() {
        Err(Forbidden::Loopback)
    } else if ip.is_private() || (a == 100 && (64..128).contains(&b)) {
        // 100.64/10 is carrier-grade NAT: someone's private network too.
        Err(Forbidden::Private)
    } else if ip.is_link_local() {
        Err(Forbidden::LinkLocal)
    } else if ip.is_multicast() || ip.is_broadcast() {
        Err(Forbidden::Multicast)
    } else if ip.is_documentation()
        || a >= 240
        || (a == 192 && b == 0 && ip.octets()[2] == 0)
        || (a == 198 && (18..20).contains(&b))
    {
        Err(Forbidden::Reserved)
    } else {
        Ok(())
    }
}

fn check_v6(ip: Ipv6Addr) -> Result<(), Forbidden> {
    let first = ip.segments()[0];
    if ip.is_unspecified() {
        Err(Forbidden::Unspecified)
    } else if ip.is_loopback() {
        Err(Forbidden::Loopback)
    } else if ip.is_multicast() {
        Err(Forbidden::Multicast)
    } else if first & 0xffc0 == 0xfe80 {
        Err(Forbidden::LinkLocal)
    } else if first & 0xfe00 == 0xfc00 || first & 0xffc0 == 0xfec0 {
        // Unique local (fc00::/7) and the old site-local (fec0::/10).
        Err(Forbidden::Private)
    } else if first == 0x2001 && ip.segments()[1] == 0x0db8 {
        Err(Forbidden::Reserved)
    } else if let Some(v4) = ip.to_ipv4() {
        // IPv4-compatible `::a.b.c.d` (deprecated) and NAT64 aside, an
        // embedded IPv4 address is judged as itself.
        check_v4(v4)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_loopback_link_local_and_unspecified_addresses_are_refused() {
        for (text, why) in [
            ("10.1.2.3", Forbidden::Private),
            ("172.16.0.1", Forbidden::Private),
            ("192.168.1.1", Forbidden::Private),
            ("100.64.0.1", Forbidden::Private),
            ("127.0.0.1", Forbidden::Loopback),
            ("127.8.9.10", Forbidden::Loopback),
            ("169.254.169.254", Forbidden::LinkLocal),
            ("0.0.0.0", Forbidden::Unspecified),
            ("224.0.0.1", Forbidden::Multicast),
            ("255.255.255.255", Forbidden::Multicast),
            ("::1", Forbidden::Loopback),
            ("::", Forbidden::Unspecified),
            ("fe80::1", Forbidden::LinkLocal),
            ("fd00::1", Forbidden::Private),
            ("fc00::1", Forbidden::Private),
            ("ff02::1", Forbidden::Multicast),
            ("::ffff:10.0.0.1", Forbidden::Private),
            ("::ffff:169.254.169.254", Forbidden::LinkLocal),
            ("::ffff:127.0.0.1", Forbidden::Loopback),
        ] {
            let ip: IpAddr = text.parse().unwrap();
            assert_eq!(check_ip(ip), Err(why), "{text}");
        }
    }

    #[test]
    fn the_service_host_is_allowed_and_nothing_else_near_it() {
        let policy = AddressPolicy::for_service("http://127.0.0.1:8080");
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(policy.check("127.0.0.1", loopback), Ok(()));
        assert_eq!(policy.check("localhost", loopback), Err(Forbidden::Loopback));
        let metadata: IpAddr = "169.254.169.254".parse().unwrap();
        assert_eq!(
            policy.check("169.254.169.254", metadata),
            Err(Forbidden::LinkLocal)
        );
        let elsewhere = AddressPolicy::for_service("https://shapes.inc");
        assert_eq!(elsewhere.check("127.0.0.1", loopback), Err(Forbidden::Loopback));
        let v6 = AddressPolicy::for_service("http://[::1]:9000");
        assert_eq!(v6.check("[::1]", "::1".parse().unwrap()), Ok(()));
    }

    #[test]
    fn public_addresses_are_allowed() {
        for text in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            let ip: IpAddr = text.parse().unwrap();
            assert_eq!(check_ip(ip), Ok(()), "{text}");
        }
    }
}
