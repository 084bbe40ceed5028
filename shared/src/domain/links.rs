//! Links partners send us, and where they may point.

/// The `host[:port]` part of an http(s) URL; `None` for anything else, and for a URL
/// with user info (`https://bank.tj@evil.example/` is not at `bank.tj`).
pub fn host_of(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"))?;
    let host = rest.split(['/', '?', '#']).next()?;
    (!host.is_empty() && !host.contains('@')).then_some(host)
}

/// Whether a link we pass on to a customer is acceptable: https, and at one of `hosts`
/// (any host when none is configured).
pub fn is_trusted_https(url: &str, hosts: &[String]) -> bool {
    url.starts_with("https://")
        && host_of(url).is_some_and(|host| hosts.is_empty() || hosts.iter().any(|h| h == host))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_of_reads_host_and_port_and_refuses_userinfo_tricks() {
        assert_eq!(host_of("https://print.bima.tj/p/1.pdf"), Some("print.bima.tj"));
        assert_eq!(host_of("http://127.0.0.1:4020/print/1"), Some("127.0.0.1:4020"));
        assert_eq!(host_of("https://bima.tj@evil.example/x"), None);
        assert_eq!(host_of("ftp://x/y"), None);
    }

    #[test]
    fn a_customer_link_is_https_at_a_configured_host() {
        let hosts = ["pay.must.example".to_owned()];
        assert!(is_trusted_https("https://pay.must.example/pay/1", &hosts));
        assert!(!is_trusted_https("http://pay.must.example/pay/1", &hosts), "not over plain http");
        assert!(!is_trusted_https("https://evil.example/pay/1", &hosts));
        assert!(!is_trusted_https("https://pay.must.example@evil.example/", &hosts));
        assert!(is_trusted_https("https://any.example/", &[]), "any host when none is configured");
        assert!(!is_trusted_https("http://any.example/", &[]));
    }
}
