//! Commands slotgate answers itself.

/// A command about the client's own connection. Backend connections are shared by many clients,
/// so connection state (name, protocol, selected database) cannot live there: the session keeps
/// it and answers these without a round trip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LocalCommand {
    /// `PING [message]`; at most one argument (checked by classify, as Redis does).
    Ping,
    /// `ECHO message`.
    Echo,
    /// `QUIT`: reply +OK, then close.
    Quit,
    /// `SELECT index`: a cluster has only database 0.
    Select,
    /// `CLIENT SETNAME name`.
    ClientSetName,
    /// `CLIENT GETNAME`.
    ClientGetName,
    /// `CLIENT SETINFO LIB-NAME|LIB-VER value` (Redis 7.2; clients send it on connect).
    ClientSetInfo,
    /// `CLIENT ID`.
    ClientId,
    /// `CLIENT INFO`: optional for the session; it may answer with its own line.
    ClientInfo,
    /// `CLIENT LIST [TYPE type | ID id ...]`: slotgate's clients, over every worker.
    ClientList,
    /// `CLIENT KILL addr | <filter> <value> ...`: ends slotgate's own clients' sessions.
    ClientKill,
    /// `CLIENT NO-EVICT ON|OFF`: slotgate evicts no client for memory; accepted.
    ClientNoEvict,
    /// `CLIENT NO-TOUCH ON|OFF` (Redis 7.2): accepted; see the README for what it cannot do.
    ClientNoTouch,
    /// `CLIENT REPLY ON|OFF|SKIP`: the session withholds replies.
    ClientReply,
    /// `HELLO [protover [AUTH user pass] [SETNAME name]]`.
    Hello,
    /// `INFO [section ...]`.
    Info,
    /// `RESET`: optional for the session.
    Reset,
    /// `READONLY`: the client's reads may go to replicas again, when `backend.read_from` allows.
    ReadOnly,
    /// `READWRITE`: the client's reads go to masters.
    ReadWrite,
    /// `CLUSTER KEYSLOT key`: the one CLUSTER subcommand that needs no cluster state, so tools
    /// that compute slots keep working although every other one is refused as on a standalone
    /// server.
    ClusterKeyslot,
    /// `SLOWLOG GET [count]`: slotgate's own slow requests, newest first.
    SlowlogGet,
    /// `SLOWLOG LEN`.
    SlowlogLen,
    /// `SLOWLOG RESET`.
    SlowlogReset,
    /// `SLOWLOG HELP`.
    SlowlogHelp,
}
