//! The cluster's keyspace as one server's: each master's `db0` line added up.

/// Keys in db0 summed over the masters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Keyspace {
    pub keys: u64,
    pub expires: u64,
    /// Sum of `avg_ttl * expires` over masters, to compute the combined average.
    ttl_weight: u128,
}

impl Keyspace {
    /// Adds one master's `db0` value (`keys=1,expires=0,avg_ttl=0`).
    pub fn add(&mut self, fields: &str) {
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

    /// The average TTL over every master's keys that have one, each master's average weighted
    /// by how many it has.
    pub fn avg_ttl(&self) -> u64 {
        match self.expires {
            0 => 0,
            n => (self.ttl_weight / u128::from(n)) as u64,
        }
    }
}

impl std::fmt::Display for Keyspace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "keys={},expires={},avg_ttl={}",
            self.keys,
            self.expires,
            self.avg_ttl()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyspace_sums_masters() {
        let mut ks = Keyspace::default();
        ks.add("keys=10,expires=2,avg_ttl=100");
        ks.add("keys=5,expires=2,avg_ttl=300");
        assert_eq!((ks.keys, ks.expires, ks.avg_ttl()), (15, 4, 200));
        assert_eq!(ks.to_string(), "keys=15,expires=4,avg_ttl=200");
    }
}
