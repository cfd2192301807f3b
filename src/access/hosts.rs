//! The `Host` allowlist: the defence against DNS rebinding.
//!
//! A web page on `evil.example` can make its own name resolve to 127.0.0.1 and then read
//! `http://evil.example:8080/` with the browser of a developer whose timebucket listens there:
//! the browser thinks it talks to the page's own origin. What gives it away is the `Host`
//! header, which still says `evil.example`. So only the names an operator lists are served, and
//! the loopback names (`localhost`, `127.0.0.1`, `::1`), which a rebinding page cannot send as
//! its own. A request without `Host` (HTTP/1.0, health checks) is no browser's and passes.
//!
//! Names are compared without the port, case-insensitively, without a trailing dot.

use std::collections::BTreeSet;

/// Names that are always allowed.
const LOOPBACK: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// The host names requests may name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHosts {
    /// `*` was given: every name.
    any: bool,
    /// The names (lowercase, no port, no brackets, no trailing dot).
    names: BTreeSet<String>,
}

impl Default for AllowedHosts {
    /// The loopback names only.
    fn default() -> Self {
        Self {
            any: false,
            names: LOOPBACK.iter().map(|s| (*s).to_owned()).collect(),
        }
    }
}

impl AllowedHosts {
    /// The loopback names and `names` (`*`: every name). A name with a port, a scheme or a path
    /// is refused: the list holds names only.
    pub fn parse(names: &[String]) -> Result<Self, String> {
        let mut hosts = Self::default();
        for name in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
            if name == "*" {
                hosts.any = true;
                continue;
            }
            let bare = name.strip_prefix('[').and_then(|n| n.strip_suffix(']'));
            let host = bare.unwrap_or(name);
            let is_ipv6 = host.contains(':') && host.parse::<std::net::Ipv6Addr>().is_ok();
            let plain = host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.'));
            if !(plain || is_ipv6) {
                return Err(format!(
                    "takes host names or addresses without port or scheme (or `*`), got `{name}`"
                ));
            }
            hosts.names.insert(normalise(host));
        }
        Ok(hosts)
    }

    /// True when every name is allowed.
    pub fn any(&self) -> bool {
        self.any
    }

    /// True when a request with this `Host` header may be served.
    pub fn allows(&self, host: Option<&str>) -> bool {
        let Some(host) = host else {
            return true;
        };
        self.any || self.names.contains(&normalise(strip_port(host)))
    }
}

/// The host of a `Host` header: `[::1]:8080` → `::1`, `example.com:8080` → `example.com`.
fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        // One colon: a name and a port. More: an IPv6 address without brackets.
        Some((name, _)) if !name.contains(':') => name,
        _ => host,
    }
}

fn normalise(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_names_always_pass_and_others_only_when_listed() {
        let default = AllowedHosts::default();
        for host in [
            "localhost:8080",
            "LOCALHOST",
            "127.0.0.1:8080",
            "[::1]:8080",
            "localhost.",
        ] {
            assert!(default.allows(Some(host)), "{host}");
        }
        assert!(default.allows(None));
        for host in [
            "evil.example:8080",
            "127.0.0.1.evil.example",
            "10.0.0.5:8080",
            "",
        ] {
            assert!(!default.allows(Some(host)), "{host}");
        }
        let listed = AllowedHosts::parse(&["metrics.internal".into(), "[fd00::1]".into()]).unwrap();
        assert!(listed.allows(Some("Metrics.Internal:443")));
        assert!(listed.allows(Some("[fd00::1]:8080")));
        assert!(listed.allows(Some("localhost:8080")));
        assert!(!listed.allows(Some("other.internal")));
        assert!(AllowedHosts::parse(&["*".into()])
            .unwrap()
            .allows(Some("anything")));
    }

    #[test]
    fn entries_with_ports_or_schemes_are_refused() {
        for bad in ["example.com:8080", "http://example.com", "example.com/x"] {
            assert!(AllowedHosts::parse(&[bad.into()]).is_err(), "{bad}");
        }
    }
}
