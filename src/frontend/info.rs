//! `INFO` as a client of one Redis server expects it: slotgate's own server, clients and stats
//! sections, and the keyspace summed over every master.

use std::fmt::Write;

use super::local::REDIS_VERSION;

/// Keys in db0 summed over the masters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Keyspace {
    pub keys: u64,
    pub expires: u64,
    /// Sum of `avg_ttl * expires` over masters, to compute the combined average.
    ttl_weight: u128,
}

impl Keyspace {
    /// Adds one master's `INFO keyspace` text (`db0:keys=1,expires=0,avg_ttl=0`).
    pub fn add(&mut self, info: &[u8]) {
        let text = String::from_utf8_lossy(info);
        for line in text.lines() {
            let Some(fields) = line.strip_prefix("db0:") else {
                continue;
            };
            let mut avg_ttl = 0u64;
            let mut expires = 0u64;
            for kv in fields.split(',') {
                let Some((k, v)) = kv.split_once('=') else {
                    continue;
                };
                let v: u64 = v.trim().parse().unwrap_or(0);
                match k {
                    "keys" => self.keys += v,
                    "expires" => expires = v,
                    "avg_ttl" => avg_ttl = v,
                    _ => {}
                }
            }
            self.expires += expires;
            self.ttl_weight += u128::from(avg_ttl) * u128::from(expires);
        }
    }

    pub fn avg_ttl(&self) -> u64 {
        match self.expires {
            0 => 0,
            n => (self.ttl_weight / u128::from(n)) as u64,
        }
    }
}

pub struct Stats {
    pub uptime_secs: u64,
    pub tcp_port: u16,
    pub connected_clients: i64,
    pub maxclients: usize,
    pub total_connections: u64,
    pub total_commands: u64,
}

/// Which sections `INFO [section ...]` asked for.
pub struct Sections {
    server: bool,
    clients: bool,
    stats: bool,
    keyspace: bool,
}

impl Sections {
    pub fn parse(args: &[bytes::Bytes]) -> Sections {
        if args.len() < 2 {
            return Sections::all();
        }
        let mut s = Sections {
            server: false,
            clients: false,
            stats: false,
            keyspace: false,
        };
        for a in &args[1..] {
            match a.to_ascii_lowercase().as_slice() {
                b"all" | b"everything" | b"default" => s = Sections::all(),
                b"server" => s.server = true,
                b"clients" => s.clients = true,
                b"stats" => s.stats = true,
                b"keyspace" => s.keyspace = true,
                _ => {}
            }
        }
        s
    }

    fn all() -> Sections {
        Sections {
            server: true,
            clients: true,
            stats: true,
            keyspace: true,
        }
    }

    pub fn needs_keyspace(&self) -> bool {
        self.keyspace
    }
}

pub fn render(sections: &Sections, stats: &Stats, keyspace: Option<&Keyspace>) -> String {
    let mut out = String::new();
    if sections.server {
        // redis_mode is standalone on purpose: the client must not try cluster discovery here.
        let _ = write!(
            out,
            "# Server\r\nredis_version:{REDIS_VERSION}\r\nslotgate_version:{}\r\nredis_mode:standalone\r\n\
             process_id:{}\r\ntcp_port:{}\r\nuptime_in_seconds:{}\r\nuptime_in_days:{}\r\n\r\n",
            env!("CARGO_PKG_VERSION"),
            std::process::id(),
            stats.tcp_port,
            stats.uptime_secs,
            stats.uptime_secs / 86400
        );
    }
    if sections.clients {
        let _ = write!(
            out,
            "# Clients\r\nconnected_clients:{}\r\nmaxclients:{}\r\n\r\n",
            stats.connected_clients, stats.maxclients
        );
    }
    if sections.stats {
        let _ = write!(
            out,
            "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\n\r\n",
            stats.total_connections, stats.total_commands
        );
    }
    if sections.keyspace {
        out.push_str("# Keyspace\r\n");
        if let Some(ks) = keyspace.filter(|k| k.keys > 0) {
            let _ = write!(
                out,
                "db0:keys={},expires={},avg_ttl={}\r\n",
                ks.keys,
                ks.expires,
                ks.avg_ttl()
            );
        }
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn keyspace_sums_masters() {
        let mut ks = Keyspace::default();
        ks.add(b"# Keyspace\r\ndb0:keys=10,expires=2,avg_ttl=100\r\n");
        ks.add(b"# Keyspace\r\ndb0:keys=5,expires=2,avg_ttl=300\r\n");
        ks.add(b"# Keyspace\r\n");
        assert_eq!((ks.keys, ks.expires, ks.avg_ttl()), (15, 4, 200));
    }

    #[test]
    fn sections_select_output() {
        let stats = Stats {
            uptime_secs: 1,
            tcp_port: 6380,
            connected_clients: 3,
            maxclients: 10,
            total_connections: 4,
            total_commands: 5,
        };
        let only_ks =
            Sections::parse(&[Bytes::from_static(b"INFO"), Bytes::from_static(b"KEYSPACE")]);
        let ks = Keyspace {
            keys: 2,
            ..Default::default()
        };
        let text = render(&only_ks, &stats, Some(&ks));
        assert_eq!(text, "# Keyspace\r\ndb0:keys=2,expires=0,avg_ttl=0\r\n\r\n");
        let all = render(
            &Sections::parse(&[Bytes::from_static(b"INFO")]),
            &stats,
            None,
        );
        assert!(all.contains("connected_clients:3\r\n"));
        assert!(all.contains("total_commands_processed:5\r\n"));
        assert!(all.contains("redis_mode:standalone\r\n"));
    }
}
