//! Which Host headers the console answers. A page of another site can point a name it
//! controls at this listener's address (DNS rebinding) and read the answers as its own
//! origin; such a request carries that name as Host, so only known names are served.

/// The accepted names: loopback names, the listener's own host, and `console.allowed.hosts`
/// (an entry with a port matches that port only; without one, any port).
#[derive(Debug, Clone)]
pub struct AllowedHosts {
    entries: Vec<(String, Option<u16>)>,
}

/// Splits `host[:port]` (IPv6 in brackets), lowercased; None when malformed.
fn split(value: &str) -> Option<(String, Option<u16>)> {
    let value = value.trim().to_ascii_lowercase();
    if value.is_empty() || value.contains(|c: char| c.is_whitespace() || c == '/' || c == '@') {
        return None;
    }
    if let Some(rest) = value.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?.parse().ok()?),
        };
        return Some((format!("[{host}]"), port));
    }
    match value.rsplit_once(':') {
        Some((host, _)) if host.contains(':') => None,
        Some((host, port)) => Some((host.to_string(), Some(port.parse().ok()?))),
        None => Some((value, None)),
    }
}

impl AllowedHosts {
    /// `listener` is `console.listener` as configured (`host:port`).
    pub fn new(listener: &str, extra: &[String]) -> AllowedHosts {
        let mut entries: Vec<(String, Option<u16>)> = ["localhost", "127.0.0.1", "[::1]"]
            .iter()
            .map(|h| (h.to_string(), None))
            .collect();
        if let Some((host, port)) = split(listener) {
            // A wildcard bind is reached by whatever address the machine has; those are
            // named in console.allowed.hosts.
            if host != "0.0.0.0" && host != "[::]" {
                entries.push((host, port.filter(|p| *p != 0)));
            }
        }
        entries.extend(extra.iter().filter_map(|e| split(e)));
        AllowedHosts { entries }
    }

    pub fn allows(&self, host_header: Option<&str>) -> bool {
        let Some((host, port)) = host_header.and_then(split) else {
            return false;
        };
        self.entries
            .iter()
            .any(|(h, p)| *h == host && (p.is_none() || *p == port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_the_listener_are_allowed_others_are_not() {
        let hosts = AllowedHosts::new("10.1.2.3:9097", &[]);
        for ok in [
            "localhost:9097",
            "LOCALHOST",
            "127.0.0.1:1",
            "[::1]:9097",
            "10.1.2.3:9097",
        ] {
            assert!(hosts.allows(Some(ok)), "{ok}");
        }
        for refused in [
            "evil.example:9097",
            "10.1.2.3:9098",
            "10.1.2.3",
            "",
            "localhost:notaport",
            "a b",
            "localhost@evil",
        ] {
            assert!(!hosts.allows(Some(refused)), "{refused}");
        }
        assert!(!hosts.allows(None));
    }

    #[test]
    fn configured_names_match_with_or_without_a_port() {
        let hosts = AllowedHosts::new(
            "0.0.0.0:9097",
            &["demo-kafka.ns.svc".into(), "console.example:443".into()],
        );
        assert!(hosts.allows(Some("demo-kafka.ns.svc:9097")));
        assert!(hosts.allows(Some("demo-kafka.ns.svc")));
        assert!(hosts.allows(Some("console.example:443")));
        assert!(!hosts.allows(Some("console.example:80")));
        assert!(!hosts.allows(Some("0.0.0.0:9097")));
    }
}
