//! The `nameserver` lines of `/etc/resolv.conf` (resolv.conf(5)): the
//! servers asked when no `--dns-server` is given.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use crate::cli::MAX_DNS_SERVERS;

/// Where the C library's resolver reads its servers.
pub(crate) const RESOLV_CONF: &str = "/etc/resolv.conf";

/// Largest resolv.conf read: 64 KiB, far above any real one.
const MAX_RESOLV_CONF_BYTES: u64 = 64 * 1024;

/// The servers of the resolv.conf text `text`, port 53, in order, at most
/// [`MAX_DNS_SERVERS`]. Comments (`#`, `;`) and other keywords are
/// skipped; so is an address that does not parse, and a link-local IPv6
/// address with a zone (`fe80::1%eth0`), whose interface this client does
/// not look up.
pub(crate) fn parse(text: &str) -> Vec<SocketAddr> {
    let mut servers = Vec::new();
    for line in text.lines() {
        let line = line.split(['#', ';']).next().unwrap_or("");
        let mut words = line.split_whitespace();
        if words.next() != Some("nameserver") {
            continue;
        }
        let Some(Ok(ip)) = words.next().map(str::parse::<IpAddr>) else {
            continue;
        };
        let server = SocketAddr::new(ip, 53);
        if servers.len() < MAX_DNS_SERVERS && !servers.contains(&server) {
            servers.push(server);
        }
    }
    servers
}

/// Read the servers of the resolv.conf at `path`. The error is the reason,
/// with the file.
pub(crate) fn read(path: &Path) -> Result<Vec<SocketAddr>, String> {
    let text = crate::policy_file::read_text(path, MAX_RESOLV_CONF_BYTES, "64 KiB")
        .map_err(|reason| format!("cannot read {}: {reason}", path.display()))?;
    let servers = parse(&text);
    if servers.is_empty() {
        return Err(format!("{} has no usable nameserver line", path.display()));
    }
    Ok(servers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nameserver_lines_in_order() {
        let text = "# generated\nsearch example.net\nnameserver 192.0.2.53\n\
                    nameserver   2001:db8::53  # the v6 one\n; nameserver 192.0.2.99\n\
                    options edns0 timeout:1\nnameserver fe80::1%eth0\nnameserver bogus\n\
                    nameserver\nnameserver 192.0.2.53\n\tnameserver 198.51.100.1\n";
        let servers: Vec<String> = parse(text).iter().map(ToString::to_string).collect();
        assert_eq!(
            servers,
            ["192.0.2.53:53", "[2001:db8::53]:53", "198.51.100.1:53"]
        );
        assert!(parse("").is_empty());
        let many: String = (1..20)
            .map(|n| format!("nameserver 192.0.2.{n}\n"))
            .collect();
        assert_eq!(parse(&many).len(), MAX_DNS_SERVERS);
    }

    #[test]
    fn read_names_the_file() {
        let err = read(Path::new("/nonexistent/resolv.conf")).unwrap_err();
        assert_eq!(
            err,
            "cannot read /nonexistent/resolv.conf: no such file or directory"
        );
        let dir = std::env::temp_dir().join(format!("policyd-unit-{}-resolv", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("resolv.conf");
        std::fs::write(&path, "search x\n").unwrap();
        assert_eq!(
            read(&path).unwrap_err(),
            format!("{} has no usable nameserver line", path.display())
        );
        std::fs::write(&path, "nameserver 127.0.0.53\n").unwrap();
        assert_eq!(read(&path).unwrap(), ["127.0.0.53:53".parse().unwrap()]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
