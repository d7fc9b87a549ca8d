//! The Lua scripts clients loaded through slotgate, by sha, so that a master that answers an
//! `EVALSHA` with `NOSCRIPT` (a replica just promoted, a restarted node, a `SCRIPT FLUSH` run on
//! that node alone) can be given the script again instead of the client seeing the error.
//!
//! Redis keeps its script cache per node and does not replicate `SCRIPT LOAD`, so only slotgate
//! knows which scripts its clients count on. Shared by every worker behind one mutex: it is
//! touched by `EVAL`, `SCRIPT LOAD` and `NOSCRIPT` only, never by other requests, and never held
//! across an await. Bounded by count and by bytes of script bodies; the least recently used
//! script goes first.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use bytes::Bytes;

/// A script's SHA1 in lowercase hex, as Redis names it. Redis reads the sha of `EVALSHA` in any
/// case, so a key is always lowercased first.
type Sha = [u8; 40];

/// How much the cache may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScriptLimits {
    /// Scripts remembered at most; 0 remembers none, and NOSCRIPT reaches clients as it is.
    pub max_scripts: usize,
    /// Bytes of script bodies remembered at most; a body larger than this is never remembered.
    pub max_bytes: usize,
}

pub struct ScriptCache {
    limits: ScriptLimits,
    inner: Mutex<Lru>,
}

/// The scripts, and their order of last use: `used` maps a tick to the sha used at that tick, so
/// the first entry is the one to evict.
#[derive(Default)]
struct Lru {
    scripts: HashMap<Sha, Script>,
    used: BTreeMap<u64, Sha>,
    bytes: usize,
    clock: u64,
}

struct Script {
    body: Bytes,
    used: u64,
}

impl ScriptCache {
    pub fn new(limits: ScriptLimits) -> ScriptCache {
        ScriptCache {
            limits,
            inner: Mutex::new(Lru::default()),
        }
    }

    /// An `EVAL`'s script: Redis caches it under its SHA1, and so may a later `EVALSHA` call it.
    pub fn remember_body(&self, body: &[u8]) {
        if self.fits(body) {
            self.insert(sha1_hex(body), body);
        }
    }

    /// A script `SCRIPT LOAD` loaded, under the sha the masters answered; a sha that is not 40 hex
    /// digits is not one Redis would give, and is ignored.
    pub fn remember(&self, sha: &[u8], body: &[u8]) {
        if let (Some(sha), true) = (key(sha), self.fits(body)) {
            self.insert(sha, body);
        }
    }

    /// The body of the script named `sha` (any case), if remembered; it becomes the most recently
    /// used.
    pub fn body(&self, sha: &[u8]) -> Option<Bytes> {
        let sha = key(sha)?;
        let mut lru = self.lock();
        let tick = lru.tick();
        let script = lru.scripts.get_mut(&sha)?;
        let before = std::mem::replace(&mut script.used, tick);
        let body = script.body.clone();
        lru.used.remove(&before);
        lru.used.insert(tick, sha);
        Some(body)
    }

    /// `SCRIPT FLUSH`: the client wants every script gone, so none may come back by healing.
    pub fn clear(&self) {
        *self.lock() = Lru::default();
    }

    /// Scripts remembered now.
    pub fn len(&self) -> usize {
        self.lock().scripts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn fits(&self, body: &[u8]) -> bool {
        self.limits.max_scripts > 0 && body.len() <= self.limits.max_bytes
    }

    fn insert(&self, sha: Sha, body: &[u8]) {
        let mut lru = self.lock();
        let tick = lru.tick();
        if let Some(script) = lru.scripts.get_mut(&sha) {
            let before = std::mem::replace(&mut script.used, tick);
            lru.used.remove(&before);
            lru.used.insert(tick, sha);
            return;
        }
        // A copy: the argument is a slice of the client's read buffer, which must not be kept
        // alive (and miscounted) by a long-lived cache entry.
        let body = Bytes::copy_from_slice(body);
        lru.bytes += body.len();
        lru.scripts.insert(sha, Script { body, used: tick });
        lru.used.insert(tick, sha);
        while lru.scripts.len() > self.limits.max_scripts || lru.bytes > self.limits.max_bytes {
            lru.evict_oldest();
        }
    }

    fn lock(&self) -> MutexGuard<'_, Lru> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Lru {
    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    fn evict_oldest(&mut self) {
        if let Some((_, sha)) = self.used.pop_first() {
            if let Some(script) = self.scripts.remove(&sha) {
                self.bytes -= script.body.len();
            }
        }
    }
}

/// The name Redis gives a script: the SHA1 of its body in lowercase hex.
pub fn sha1_hex(body: &[u8]) -> Sha {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = sha1_smol::Sha1::from(body).digest().bytes();
    let mut sha = [0u8; 40];
    for (i, byte) in digest.iter().enumerate() {
        sha[2 * i] = HEX[usize::from(byte >> 4)];
        sha[2 * i + 1] = HEX[usize::from(byte & 0xf)];
    }
    sha
}

/// `sha` lowercased, if it is 40 hex digits.
fn key(sha: &[u8]) -> Option<Sha> {
    let sha: Sha = sha.try_into().ok()?;
    sha.iter()
        .all(u8::is_ascii_hexdigit)
        .then(|| sha.map(|b| b.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(max_scripts: usize, max_bytes: usize) -> ScriptCache {
        ScriptCache::new(ScriptLimits {
            max_scripts,
            max_bytes,
        })
    }

    fn sha(body: &str) -> String {
        String::from_utf8(sha1_hex(body.as_bytes()).to_vec()).unwrap()
    }

    #[test]
    fn sha1_is_the_name_redis_gives_a_script() {
        // `SCRIPT LOAD "return 1"` on redis-server 7.0.15.
        assert_eq!(sha("return 1"), "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
        assert_eq!(sha(""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    }

    #[test]
    fn an_evald_body_is_found_by_its_sha_in_any_case() {
        let c = cache(10, 1024);
        c.remember_body(b"return 1");
        let body = Bytes::from_static(b"return 1");
        assert_eq!(c.body(sha("return 1").as_bytes()), Some(body.clone()));
        let upper = sha("return 1").to_ascii_uppercase();
        assert_eq!(c.body(upper.as_bytes()), Some(body));
        assert_eq!(c.body(sha("return 2").as_bytes()), None);
        assert_eq!(c.body(b"not a sha"), None);
    }

    #[test]
    fn a_loaded_script_is_kept_under_the_masters_sha() {
        let c = cache(10, 1024);
        c.remember(b"E0E1F9FABFC9D4800C877A703B823AC0578FF8DB", b"return 1");
        assert!(c.body(sha("return 1").as_bytes()).is_some());
        // Not what Redis answers to SCRIPT LOAD: nothing to remember.
        c.remember(b"e0e1f9", b"return 1");
        c.remember(&[b'z'; 40], b"return 1");
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn the_least_recently_used_goes_first_past_the_count() {
        let c = cache(2, 1024);
        c.remember_body(b"return 1");
        c.remember_body(b"return 2");
        // Using the first makes the second the oldest.
        assert!(c.body(sha("return 1").as_bytes()).is_some());
        c.remember_body(b"return 3");
        assert_eq!(c.len(), 2);
        assert!(c.body(sha("return 2").as_bytes()).is_none());
        assert!(c.body(sha("return 1").as_bytes()).is_some());
        assert!(c.body(sha("return 3").as_bytes()).is_some());
    }

    #[test]
    fn bytes_are_bounded_too() {
        let c = cache(100, 20);
        c.remember_body(b"return 'aaaa'"); // 13 bytes
        c.remember_body(b"return 1"); // 8 bytes: 21 in all, the oldest goes
        assert_eq!(c.len(), 1);
        assert!(c.body(sha("return 1").as_bytes()).is_some());
        // Larger than the whole cache: never remembered, and evicts nothing.
        c.remember_body(&[b' '; 21]);
        assert_eq!(c.len(), 1);
        assert_eq!(c.lock().bytes, 8);
    }

    #[test]
    fn remembering_again_refreshes_without_counting_twice() {
        let c = cache(2, 1024);
        c.remember_body(b"return 1");
        c.remember_body(b"return 2");
        c.remember_body(b"return 1");
        assert_eq!(c.lock().bytes, 16);
        c.remember_body(b"return 3");
        assert!(c.body(sha("return 2").as_bytes()).is_none());
        assert!(c.body(sha("return 1").as_bytes()).is_some());
        let lru = c.lock();
        assert_eq!(lru.used.len(), lru.scripts.len());
    }

    #[test]
    fn clear_forgets_everything_and_zero_remembers_nothing() {
        let c = cache(10, 1024);
        c.remember_body(b"return 1");
        c.clear();
        assert!(c.is_empty());
        assert_eq!(c.lock().bytes, 0);
        let off = cache(0, 1024);
        off.remember_body(b"return 1");
        assert!(off.is_empty());
    }
}
