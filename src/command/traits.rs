//! What a command does, beyond where its keys are: whether it only reads, whether sending it a
//! second time is harmless, whether it needs a backend connection of its own. These are facts of
//! the command table's entries, so a command learned from the cluster's `COMMAND` reply carries
//! them as a builtin does, and no list elsewhere can drift from the table.

use bytes::Bytes;

/// When a write may be sent again after its first attempt's fate is unknown (written to a
/// connection that then died, or never answered). Sending a write twice can apply it twice, so only
/// writes whose effect AND reply are the same however often they run qualify. (DEL or SADD would
/// leave the same state, but their reply counts what changed, and a repeat would lie.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Repeat {
    Never,
    Always,
    /// Unless one of these options (any case) is among the arguments: SET's NX, XX and GET make
    /// its reply depend on what was there before.
    UnlessOption(&'static [&'static [u8]]),
}

/// When a command may block: wait on the node until data arrives or its own timeout passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Blocks {
    Never,
    Always,
    /// When `option` (any case) comes before `until`: XREAD's BLOCK, before its STREAMS keys.
    WithOption {
        option: &'static [u8],
        until: &'static [u8],
    },
}

impl Blocks {
    fn resolve(self, args: &[Bytes]) -> bool {
        match self {
            Blocks::Never => false,
            Blocks::Always => true,
            Blocks::WithOption { option, until } => args
                .iter()
                .skip(1)
                .take_while(|a| !a.eq_ignore_ascii_case(until))
                .any(|a| a.eq_ignore_ascii_case(option)),
        }
    }
}

/// What an `EVAL`-family command's first argument is to slotgate, which remembers scripts so that
/// a master that lost one (NOSCRIPT) can be given it again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ScriptArg {
    None,
    /// A script body, which Redis caches under its SHA1 (EVAL, EVAL_RO).
    Body,
    /// A script's sha (EVALSHA, EVALSHA_RO): its NOSCRIPT may be healed.
    Sha,
}

/// The table's word on one command, fixed per entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct EntryTraits {
    /// Redis' `readonly` flag: it changes nothing, so it may also run on a replica, and running it
    /// twice is harmless.
    pub(crate) readonly: bool,
    pub(crate) repeat: Repeat,
    /// It keeps state on the connection it runs on (MULTI, WATCH, SUBSCRIBE), so it cannot share
    /// a multiplexed connection with other clients.
    pub(crate) reserved: bool,
    /// It may hold the connection it runs on for as long as it waits.
    pub(crate) blocks: Blocks,
    pub(crate) script: ScriptArg,
}

impl EntryTraits {
    pub(crate) const NONE: EntryTraits = EntryTraits {
        readonly: false,
        repeat: Repeat::Never,
        reserved: false,
        blocks: Blocks::Never,
        script: ScriptArg::None,
    };

    /// The traits of one request of this command; only the repeat rule looks at the arguments.
    pub(crate) fn resolve(self, args: &[Bytes]) -> Traits {
        let repeatable = self.readonly
            || match self.repeat {
                Repeat::Never => false,
                Repeat::Always => true,
                Repeat::UnlessOption(options) => !args
                    .iter()
                    .skip(1)
                    .any(|a| options.iter().any(|o| a.eq_ignore_ascii_case(o))),
            };
        let mut bits = 0;
        if self.readonly {
            bits |= Traits::READONLY;
        }
        if repeatable {
            bits |= Traits::REPLAY_SAFE;
        }
        if self.reserved {
            bits |= Traits::RESERVED;
        }
        if self.blocks.resolve(args) {
            bits |= Traits::BLOCKING;
        }
        bits |= match self.script {
            ScriptArg::None => 0,
            ScriptArg::Body => Traits::SCRIPT_BODY,
            ScriptArg::Sha => Traits::SCRIPT_SHA,
        };
        Traits { bits }
    }
}

/// The traits of one classified request, carried in its [`Plan`](super::Plan): one byte, so the
/// plan stays `Copy` and small, and routing never looks at the arguments again to decide.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Traits {
    bits: u8,
}

impl Traits {
    const READONLY: u8 = 1;
    const REPLAY_SAFE: u8 = 2;
    const RESERVED: u8 = 4;
    const BLOCKING: u8 = 8;
    const SCRIPT_BODY: u8 = 16;
    const SCRIPT_SHA: u8 = 32;

    /// Changes nothing: may run on a replica.
    pub fn readonly(self) -> bool {
        self.bits & Self::READONLY != 0
    }

    /// May be sent again when the first attempt's outcome is unknown: the same state and the same
    /// reply however often it runs.
    pub fn replay_safe(self) -> bool {
        self.bits & Self::REPLAY_SAFE != 0
    }

    /// Keeps state on its connection: needs a backend connection reserved for this client.
    pub fn reserved(self) -> bool {
        self.bits & Self::RESERVED != 0
    }

    /// May wait on the node (this request: XREAD only with BLOCK): needs a connection of its own,
    /// exempt from the operation timeout, and the client waits for it as on one Redis server.
    pub fn blocking(self) -> bool {
        self.bits & Self::BLOCKING != 0
    }

    /// Its first argument is a Lua script (EVAL, EVAL_RO) that slotgate remembers, so that a
    /// later EVALSHA of it can be healed.
    pub fn script_body(self) -> bool {
        self.bits & Self::SCRIPT_BODY != 0
    }

    /// Its first argument names a script by sha (EVALSHA, EVALSHA_RO): a NOSCRIPT from the node
    /// is healed by loading the script there and sending it again.
    pub fn script_sha(self) -> bool {
        self.bits & Self::SCRIPT_SHA != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::test_args as args;

    const SET: EntryTraits = EntryTraits {
        repeat: Repeat::UnlessOption(&[b"NX", b"XX", b"GET"]),
        ..EntryTraits::NONE
    };

    #[test]
    fn readonly_implies_replay_safe() {
        let read = EntryTraits {
            readonly: true,
            ..EntryTraits::NONE
        }
        .resolve(&args(&["GET", "k"]));
        assert!(read.readonly() && read.replay_safe() && !read.reserved());
        let write = EntryTraits::NONE.resolve(&args(&["INCR", "k"]));
        assert!(!write.readonly() && !write.replay_safe());
    }

    #[test]
    fn xread_blocks_only_with_block_before_its_streams() {
        let xread = EntryTraits {
            blocks: Blocks::WithOption {
                option: b"BLOCK",
                until: b"STREAMS",
            },
            ..EntryTraits::NONE
        };
        let blocks = |w: &[&str]| xread.resolve(&args(w)).blocking();
        assert!(blocks(&["XREAD", "block", "0", "STREAMS", "s", "$"]));
        assert!(!blocks(&["XREAD", "COUNT", "1", "STREAMS", "s", "0"]));
        // A stream named BLOCK is a key, not the option.
        assert!(!blocks(&["XREAD", "STREAMS", "BLOCK", "0"]));
    }

    #[test]
    fn options_that_make_a_reply_depend_on_the_past_forbid_a_repeat() {
        assert!(SET
            .resolve(&args(&["SET", "k", "v", "EX", "5"]))
            .replay_safe());
        assert!(!SET.resolve(&args(&["SET", "k", "v", "nx"])).replay_safe());
        assert!(!SET.resolve(&args(&["set", "k", "v", "Get"])).replay_safe());
    }
}
