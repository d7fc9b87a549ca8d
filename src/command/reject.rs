//! Why a request is refused before it reaches any backend, in two forms: [`RejectKind`], a `Copy`
//! value that keeps [`Plan`](super::Plan) cheap on the hot path, and [`Rejection`], the owned,
//! displayable error built from it (only when a request is actually refused).
//!
//! The texts copy Redis 7.0 byte for byte where Redis itself would have refused the request, so a
//! client cannot tell the proxy's check from the server's.

use crate::protocol::Request;

/// Why slotgate refuses a command that Redis would accept. Each one names what the client can do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// A blocked command would hold a backend connection that other clients' requests share.
    Blocking,
    /// A pub/sub command learned from the cluster, which slotgate does not handle.
    PubSub,
    /// MONITOR streams one node's traffic forever.
    Monitor,
    /// `SCRIPT DEBUG` turns the client's connection into a Lua debugging session.
    ScriptDebug,
    /// KEYS, SCAN, RANDOMKEY, FLUSHALL or FLUSHDB queued in a transaction, which runs on one
    /// master: it would see or flush that master's keys alone.
    KeyspaceInTransaction,
    /// Per-node administration: which node would it be? Use the node directly.
    Admin,
    /// slotgate has no users of its own to authenticate.
    Auth,
    /// ASKING/READONLY/READWRITE change a shared backend connection that slotgate manages itself.
    ClusterState,
    /// A cluster has only database 0.
    SingleDatabase,
    /// Other CLIENT subcommands act on one backend connection (TRACKING, CACHING, UNBLOCK, ...).
    ClientSubcommand,
    /// CLIENT PAUSE stops one node's clients, and slotgate is one client of many nodes.
    ClientPause,
    /// MIGRATE moves keys between nodes itself; across nodes that is resharding, which the
    /// cluster's own tools do slot by slot.
    Migrate,
    /// A learned command whose key positions depend on its arguments in a way the table does not know.
    MovableKeys,
    /// A learned command without keys that may change server state: no node is the right one.
    NoKeys,
    /// CONFIG SET, REWRITE and RESETSTAT would have to change every node alike, and a proxy
    /// cannot make that happen consistently (a node may fail half way, or join later).
    NodeConfig,
}

impl Reason {
    /// The explanation inside the parentheses of the error line.
    pub fn text(self) -> &'static str {
        match self {
            Reason::Blocking => {
                "blocking commands would stall a backend connection shared with other clients"
            }
            Reason::PubSub => "a pub/sub command slotgate does not know",
            Reason::Monitor => "it streams a single node's traffic; connect to that node",
            Reason::ScriptDebug => {
                "the Lua debugger needs a connection of its own; connect to the node itself"
            }
            Reason::KeyspaceInTransaction => {
                "inside MULTI it would reach one master only; send it outside the transaction"
            }
            Reason::Admin => "server administration; connect to the node itself",
            Reason::Auth => "authentication is not supported",
            Reason::ClusterState => "slotgate manages cluster connection state itself",
            Reason::SingleDatabase => "a cluster has only database 0",
            Reason::ClientSubcommand => {
                "supported: CLIENT SETNAME, GETNAME, SETINFO, ID, INFO, LIST, KILL, REPLY, NO-EVICT and NO-TOUCH"
            }
            Reason::Migrate => {
                "moving keys between nodes is resharding; use redis-cli --cluster reshard"
            }
            Reason::ClientPause => {
                "it would pause only one node's clients; pause every node directly, or stop the proxy"
            }
            Reason::MovableKeys => "its key positions depend on its arguments",
            Reason::NoKeys => "it has no keys, so no node is the right one to run it",
            Reason::NodeConfig => {
                "a proxy cannot change every node consistently; configure the nodes directly"
            }
        }
    }

    /// A stable label for metrics (never the error text).
    pub fn label(self) -> &'static str {
        match self {
            Reason::Blocking => "blocking",
            Reason::PubSub => "pubsub",
            Reason::Monitor => "monitor",
            Reason::ScriptDebug => "script_debug",
            Reason::KeyspaceInTransaction => "keyspace_in_transaction",
            Reason::Admin => "admin",
            Reason::Auth => "auth",
            Reason::ClusterState => "cluster_state",
            Reason::SingleDatabase => "single_database",
            Reason::ClientSubcommand => "client_subcommand",
            Reason::ClientPause => "client_pause",
            Reason::Migrate => "migrate",
            Reason::MovableKeys => "movable_keys",
            Reason::NoKeys => "no_keys",
            Reason::NodeConfig => "node_config",
        }
    }
}

/// Argument errors found while looking for keys, or in the arguments slotgate must understand
/// (WAIT's). Redis would answer these itself, but only after the request reached some node: with
/// no valid keys there is no right node, so slotgate answers with the node's exact words instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgError {
    /// "ERR value is not an integer or out of range"
    NotAnInteger,
    /// "ERR syntax error"
    Syntax,
    /// "ERR Number of keys can't be negative" (EVAL, FCALL)
    NegativeNumkeys,
    /// "ERR Number of keys can't be greater than number of args" (EVAL, FCALL, SINTERCARD)
    NumkeysExceedArgs,
    /// "ERR Bad number of keys provided" (FCALL)
    BadNumberOfKeys,
    /// "ERR numkeys should be greater than 0" (SINTERCARD, LMPOP, ZMPOP)
    NumkeysNotPositive,
    /// `ERR at least 1 input key is needed for '<command>' command` (ZUNION family)
    NoInputKey,
    /// "ERR Unbalanced XREAD list of streams: ..." (XREAD and XREADGROUP alike)
    UnbalancedStreams,
    /// "ERR The GROUP option is only supported by XREADGROUP. You called XREAD instead."
    GroupOutsideXreadgroup,
    /// "ERR The NOACK option is only supported by XREADGROUP. You called XREAD instead."
    NoackOutsideXreadgroup,
    /// "ERR timeout is not an integer or out of range" (WAIT)
    TimeoutNotAnInteger,
    /// "ERR timeout is negative" (WAIT)
    NegativeTimeout,
}

/// What [`classify`](super::CommandTable::classify) decided to refuse. `Copy` and small; turn it into
/// the client's error line with [`RejectKind::rejection`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RejectKind {
    /// Wrong argument count; `subcommand` says the name is `container|sub`, as Redis prints it.
    WrongArity {
        subcommand: bool,
    },
    UnknownCommand,
    /// A known container (OBJECT, XINFO, ...) with a subcommand nobody knows.
    UnknownSubcommand,
    /// Refused by design or not built yet; `subcommand` says the name includes `args[1]`.
    Unsupported {
        reason: Reason,
        subcommand: bool,
    },
    /// The arguments that locate the keys are malformed.
    BadArguments(ArgError),
    /// A CLUSTER subcommand: slotgate shows clients a server without cluster support, so that
    /// they never try cluster discovery through it.
    ClusterDisabled,
}

impl RejectKind {
    /// Builds the error line for `req` (the request this kind was classified from). Allocates; only
    /// called on the refusal path.
    pub fn rejection(self, req: &Request) -> Rejection {
        let args = req.args();
        let name = args.first().map(|b| &b[..]).unwrap_or_default();
        let sub = args.get(1).map(|b| &b[..]).unwrap_or_default();
        match self {
            RejectKind::WrongArity { subcommand } => {
                let mut command = lossy(name).to_ascii_lowercase();
                if subcommand {
                    command.push('|');
                    command.push_str(&lossy(sub).to_ascii_lowercase());
                }
                Rejection::WrongArity { command }
            }
            RejectKind::UnknownCommand => Rejection::UnknownCommand {
                command: lossy(c_str(name, REDIS_ARG_PREVIEW)),
                args: args_preview(args.get(1..).unwrap_or_default()),
            },
            RejectKind::UnknownSubcommand => Rejection::UnknownSubcommand {
                container: lossy(name).to_ascii_uppercase(),
                subcommand: lossy(c_str(sub, REDIS_ARG_PREVIEW)),
            },
            RejectKind::Unsupported { reason, subcommand } => {
                let mut command = lossy(name).to_ascii_uppercase();
                if subcommand {
                    command.push(' ');
                    command.push_str(&lossy(c_str(sub, REDIS_ARG_PREVIEW)).to_ascii_uppercase());
                }
                Rejection::Unsupported { command, reason }
            }
            RejectKind::BadArguments(ArgError::NoInputKey) => Rejection::NoInputKey {
                command: lossy(name).to_ascii_lowercase(),
            },
            RejectKind::BadArguments(error) => Rejection::BadArguments(error),
            RejectKind::ClusterDisabled => Rejection::ClusterDisabled,
        }
    }

    /// A stable label for metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            RejectKind::WrongArity { .. } => "wrong_arity",
            RejectKind::UnknownCommand => "unknown_command",
            RejectKind::UnknownSubcommand => "unknown_subcommand",
            RejectKind::Unsupported { reason, .. } => reason.label(),
            RejectKind::BadArguments(_) => "bad_arguments",
            RejectKind::ClusterDisabled => "cluster_disabled",
        }
    }
}

/// A refused request, ready to send. `Display` is the whole error line without the leading '-'.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("ERR wrong number of arguments for '{command}' command")]
    WrongArity { command: String },
    #[error("ERR unknown command '{command}', with args beginning with: {args}")]
    UnknownCommand { command: String, args: String },
    #[error("ERR unknown subcommand '{subcommand}'. Try {container} HELP.")]
    UnknownSubcommand {
        container: String,
        subcommand: String,
    },
    #[error("ERR '{command}' is not supported by slotgate ({})", reason.text())]
    Unsupported { command: String, reason: Reason },
    #[error("ERR at least 1 input key is needed for '{command}' command")]
    NoInputKey { command: String },
    #[error("ERR {}", arg_error_text(*.0))]
    BadArguments(ArgError),
    /// Byte for byte what redis-server 7.0 answers every CLUSTER subcommand when it runs without
    /// `cluster-enabled`.
    #[error("ERR This instance has cluster support disabled")]
    ClusterDisabled,
}

fn arg_error_text(error: ArgError) -> &'static str {
    match error {
        ArgError::NotAnInteger => "value is not an integer or out of range",
        ArgError::Syntax => "syntax error",
        ArgError::NegativeNumkeys => "Number of keys can't be negative",
        ArgError::NumkeysExceedArgs => "Number of keys can't be greater than number of args",
        ArgError::BadNumberOfKeys => "Bad number of keys provided",
        ArgError::NumkeysNotPositive => "numkeys should be greater than 0",
        // Rendered by Rejection::NoInputKey, which carries the command name.
        ArgError::NoInputKey => "at least 1 input key is needed",
        ArgError::UnbalancedStreams => {
            "Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified."
        }
        ArgError::GroupOutsideXreadgroup => {
            "The GROUP option is only supported by XREADGROUP. You called XREAD instead."
        }
        ArgError::NoackOutsideXreadgroup => {
            "The NOACK option is only supported by XREADGROUP. You called XREAD instead."
        }
        ArgError::TimeoutNotAnInteger => "timeout is not an integer or out of range",
        ArgError::NegativeTimeout => "timeout is negative",
    }
}

/// Redis quotes at most this many bytes of client text in an error (`%.128s`), and stops adding
/// arguments to the "args beginning with" preview once it is this long.
const REDIS_ARG_PREVIEW: usize = 128;

/// Redis formats arguments with `%s`, which stops at a NUL byte; then `%.128s` truncates.
fn c_str(bytes: &[u8], max: usize) -> &[u8] {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    &bytes[..end.min(max)]
}

/// Error lines cannot carry CR or LF (Redis maps both to spaces); invalid UTF-8 becomes U+FFFD
/// because `Rejection` displays as a `String`.
fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).replace(['\r', '\n'], " ")
}

/// Redis' "'a' 'b' " preview: quoted args while the preview is under 128 bytes, the last one cut so
/// that the quoted text stays within 128 bytes.
fn args_preview(args: &[bytes::Bytes]) -> String {
    let mut preview: Vec<u8> = Vec::new();
    for arg in args {
        if preview.len() >= REDIS_ARG_PREVIEW {
            break;
        }
        let room = REDIS_ARG_PREVIEW - preview.len();
        preview.push(b'\'');
        preview.extend_from_slice(c_str(arg, room));
        preview.extend_from_slice(b"' ");
    }
    lossy(&preview)
}
