//! Commands slotgate answers itself: connection handshake and per-connection state that a
//! cluster-unaware client expects from "its" server.

use bytes::Bytes;

use crate::command::LocalCommand;
use crate::protocol::{Proto, Reply};

/// Version reported to clients. Client libraries gate features on `redis_version`; slotgate speaks
/// the command set of Redis 7.0, the oldest server it is tested against.
pub const REDIS_VERSION: &str = "7.0.0";

/// Per-client state that local commands read and change.
#[derive(Debug, Default)]
pub struct ClientState {
    pub id: u64,
    pub name: Option<Bytes>,
    pub lib_name: Option<Bytes>,
    pub lib_ver: Option<Bytes>,
    /// RESP2 until `HELLO 3`; RESET and `HELLO 2` switch back.
    pub proto: Proto,
    /// READWRITE: this client's reads stay on masters whatever `backend.read_from` says.
    pub masters_only: bool,
}

/// What the session must do besides sending the reply.
#[derive(Debug, PartialEq, Eq)]
pub enum After {
    Continue,
    /// Send the reply, then close (QUIT).
    Close,
    /// INFO needs the cluster's keyspace: the session answers it asynchronously.
    Info,
    /// It is about other clients, the session's replies or the proxy's slow log (CLIENT LIST,
    /// KILL, REPLY, SLOWLOG): the session answers it.
    Session,
}

/// Answers a local command. Arity was already checked by the command table.
pub fn answer(cmd: LocalCommand, args: &[Bytes], client: &mut ClientState) -> (Reply, After) {
    let reply = match cmd {
        LocalCommand::Ping => match args.get(1) {
            Some(msg) => Reply::bulk(msg),
            None => Reply::simple("PONG"),
        },
        LocalCommand::Echo => Reply::bulk(&args[1]),
        LocalCommand::Quit => return (Reply::ok(), After::Close),
        LocalCommand::Select => select(&args[1]),
        LocalCommand::ClientSetName => match valid_name(&args[2]) {
            true => {
                client.name = (!args[2].is_empty()).then(|| args[2].clone());
                Reply::ok()
            }
            false => Reply::error_line(
                "ERR Client names cannot contain spaces, newlines or special characters.",
            ),
        },
        LocalCommand::ClientGetName => match &client.name {
            Some(n) => Reply::bulk(n),
            None => Reply::null(client.proto),
        },
        LocalCommand::ClientSetInfo => set_info(args, client),
        LocalCommand::ClientId => Reply::integer_reply(client.id as i64),
        LocalCommand::Hello => hello(args, client),
        LocalCommand::Reset => {
            client.name = None;
            client.proto = Proto::Resp2;
            client.masters_only = false;
            Reply::simple("RESET")
        }
        LocalCommand::ReadOnly => {
            client.masters_only = false;
            Reply::ok()
        }
        LocalCommand::ReadWrite => {
            client.masters_only = true;
            Reply::ok()
        }
        LocalCommand::Info => return (Reply::ok(), After::Info),
        LocalCommand::ClientInfo
        | LocalCommand::ClientList
        | LocalCommand::ClientKill
        | LocalCommand::ClientReply
        | LocalCommand::SlowlogGet
        | LocalCommand::SlowlogLen
        | LocalCommand::SlowlogReset
        | LocalCommand::SlowlogHelp => return (Reply::ok(), After::Session),
        // Accepted as Redis accepts them; slotgate evicts no client for memory, and its requests
        // share connections, so the nodes still touch the keys they read (see the README).
        LocalCommand::ClientNoEvict | LocalCommand::ClientNoTouch => on_off(&args[2]),
        LocalCommand::ClusterKeyslot => {
            Reply::integer_reply(i64::from(crate::cluster::Slot::for_key(&args[2]).get()))
        }
    };
    (reply, After::Continue)
}

fn on_off(arg: &[u8]) -> Reply {
    match arg.eq_ignore_ascii_case(b"on") || arg.eq_ignore_ascii_case(b"off") {
        true => Reply::ok(),
        false => Reply::error_line("ERR syntax error"),
    }
}

/// The cluster has only database 0; saying so beats silently writing to the wrong place.
fn select(db: &[u8]) -> Reply {
    match std::str::from_utf8(db)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
    {
        Some(0) => Reply::ok(),
        Some(_) => Reply::error_line("ERR SELECT is not allowed in cluster mode"),
        None => Reply::error_line("ERR value is not an integer or out of range"),
    }
}

/// Redis' rule: printable ASCII without spaces.
fn valid_name(name: &[u8]) -> bool {
    name.iter().all(|&b| (b'!'..=b'~').contains(&b))
}

fn set_info(args: &[Bytes], client: &mut ClientState) -> Reply {
    let attr = args[2].to_ascii_lowercase();
    let value = args[3].clone();
    if !valid_name(&value) && !value.is_empty() {
        return Reply::error_line(
            "ERR lib-name or lib-ver cannot contain spaces, newlines or special characters.",
        );
    }
    match attr.as_slice() {
        b"lib-name" => client.lib_name = Some(value),
        b"lib-ver" => client.lib_ver = Some(value),
        _ => {
            return Reply::error_line(&format!(
                "ERR Unrecognized option '{}'",
                String::from_utf8_lossy(&args[2])
            ))
        }
    }
    Reply::ok()
}

/// `HELLO [protover [AUTH user pass] [SETNAME name]]`: switches the client to RESP2 or RESP3
/// (the session moves it to backend connections of that protocol), as Redis 7 answers it.
/// slotgate has no users of its own, so `AUTH` is answered as by a Redis server without a
/// password: the `default` user gets in with any password, any other user is refused.
fn hello(args: &[Bytes], client: &mut ClientState) -> Reply {
    let mut rest = args[1..].iter();
    let mut proto = client.proto;
    if let Some(ver) = rest.next() {
        match std::str::from_utf8(ver)
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
        {
            Some(2) => proto = Proto::Resp2,
            Some(3) => proto = Proto::Resp3,
            Some(_) => return Reply::error_line("NOPROTO unsupported protocol version"),
            None => {
                return Reply::error_line("ERR Protocol version is not an integer or out of range")
            }
        }
    }
    let mut name = None;
    while let Some(opt) = rest.next() {
        match opt.to_ascii_uppercase().as_slice() {
            b"AUTH" => match (rest.next(), rest.next()) {
                (Some(user), Some(_)) if user.as_ref() == b"default" => {}
                (Some(_), Some(_)) => return Reply::error_line(WRONGPASS),
                _ => return Reply::error_line("ERR Syntax error in HELLO option 'AUTH'"),
            },
            b"SETNAME" => {
                match rest.next() {
                    Some(n) if valid_name(n) => name = Some(n.clone()),
                    Some(_) => return Reply::error_line(
                        "ERR Client names cannot contain spaces, newlines or special characters.",
                    ),
                    None => return Reply::error_line("ERR Syntax error in HELLO option 'SETNAME'"),
                }
            }
            _ => {
                return Reply::error_line(&format!(
                    "ERR Syntax error in HELLO option '{}'",
                    String::from_utf8_lossy(opt)
                ))
            }
        }
    }
    if name.is_some() {
        client.name = name;
    }
    client.proto = proto;
    Reply::map(
        proto,
        &[
            Reply::bulk(b"server"),
            Reply::bulk(b"redis"),
            Reply::bulk(b"version"),
            Reply::bulk(REDIS_VERSION.as_bytes()),
            Reply::bulk(b"proto"),
            Reply::integer_reply(proto.version()),
            Reply::bulk(b"id"),
            Reply::integer_reply(client.id as i64),
            Reply::bulk(b"mode"),
            Reply::bulk(b"standalone"),
            Reply::bulk(b"role"),
            Reply::bulk(b"master"),
            Reply::bulk(b"modules"),
            Reply::array(&[]),
        ],
    )
}

const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::test_args as args;

    fn run(cmd: LocalCommand, v: &[&str], c: &mut ClientState) -> Reply {
        answer(cmd, &args(v), c).0
    }

    #[test]
    fn ping_echo_select() {
        let c = &mut ClientState::default();
        assert_eq!(run(LocalCommand::Ping, &["PING"], c), Reply::simple("PONG"));
        assert_eq!(
            run(LocalCommand::Ping, &["PING", "hi"], c),
            Reply::bulk(b"hi")
        );
        assert_eq!(
            run(LocalCommand::Echo, &["ECHO", "x"], c),
            Reply::bulk(b"x")
        );
        assert_eq!(run(LocalCommand::Select, &["SELECT", "0"], c), Reply::ok());
        assert_eq!(
            run(LocalCommand::Select, &["SELECT", "1"], c),
            Reply::error_line("ERR SELECT is not allowed in cluster mode")
        );
        assert_eq!(
            run(LocalCommand::Select, &["SELECT", "x"], c),
            Reply::error_line("ERR value is not an integer or out of range")
        );
    }

    #[test]
    fn client_name_round_trip() {
        let c = &mut ClientState {
            id: 7,
            ..Default::default()
        };
        assert_eq!(
            run(LocalCommand::ClientGetName, &["CLIENT", "GETNAME"], c),
            Reply::null_bulk()
        );
        assert_eq!(
            run(
                LocalCommand::ClientSetName,
                &["CLIENT", "SETNAME", "app1"],
                c
            ),
            Reply::ok()
        );
        assert_eq!(
            run(LocalCommand::ClientGetName, &["CLIENT", "GETNAME"], c),
            Reply::bulk(b"app1")
        );
        assert!(run(
            LocalCommand::ClientSetName,
            &["CLIENT", "SETNAME", "a b"],
            c
        )
        .error()
        .is_some());
        assert_eq!(
            run(LocalCommand::ClientId, &["CLIENT", "ID"], c),
            Reply::integer_reply(7)
        );
        assert_eq!(
            run(
                LocalCommand::ClientSetInfo,
                &["CLIENT", "SETINFO", "LIB-NAME", "redis-py"],
                c
            ),
            Reply::ok()
        );
    }

    #[test]
    fn hello_versions() {
        let c = &mut ClientState::default();
        assert!(run(LocalCommand::Hello, &["HELLO"], c)
            .array_elements()
            .is_some());
        assert!(run(LocalCommand::Hello, &["HELLO", "2", "SETNAME", "n"], c)
            .array_elements()
            .is_some());
        assert_eq!(c.name.as_deref(), Some(&b"n"[..]));
        assert_eq!(
            run(LocalCommand::Hello, &["HELLO", "4"], c),
            Reply::error_line("NOPROTO unsupported protocol version")
        );
        assert_eq!(c.proto, Proto::Resp2);
    }

    /// Byte for byte what redis-server 7.0.15 sends (only the version differs).
    #[test]
    fn hello_3_switches_to_resp3_and_back() {
        let c = &mut ClientState {
            id: 5,
            ..Default::default()
        };
        let hello3 = run(LocalCommand::Hello, &["HELLO", "3"], c);
        let wire = "%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$5\r\n7.0.0\r\n\
                    $5\r\nproto\r\n:3\r\n$2\r\nid\r\n:5\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n\
                    $4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n";
        assert_eq!(hello3.bytes(), wire.as_bytes());
        assert_eq!(c.proto, Proto::Resp3);
        // No version keeps the protocol.
        assert!(run(LocalCommand::Hello, &["HELLO"], c)
            .bytes()
            .starts_with(b"%7"));
        assert_eq!(
            run(LocalCommand::ClientGetName, &["CLIENT", "GETNAME"], c),
            Reply::null(Proto::Resp3)
        );
        assert!(run(LocalCommand::Hello, &["HELLO", "2"], c)
            .bytes()
            .starts_with(b"*14"));
        assert_eq!(c.proto, Proto::Resp2);
        run(LocalCommand::Hello, &["HELLO", "3"], c);
        run(LocalCommand::Reset, &["RESET"], c);
        assert_eq!(c.proto, Proto::Resp2);
    }

    #[test]
    fn hello_auth_is_answered_as_by_a_server_without_a_password() {
        let c = &mut ClientState::default();
        let ok = run(
            LocalCommand::Hello,
            &["HELLO", "3", "AUTH", "default", "x"],
            c,
        );
        assert!(ok.bytes().starts_with(b"%7"));
        assert_eq!(
            run(LocalCommand::Hello, &["HELLO", "3", "AUTH", "bob", "x"], c),
            Reply::error_line(WRONGPASS)
        );
        assert_eq!(
            run(LocalCommand::Hello, &["HELLO", "2", "AUTH", "default"], c),
            Reply::error_line("ERR Syntax error in HELLO option 'AUTH'")
        );
        assert_eq!(c.proto, Proto::Resp3, "a refused HELLO changes nothing");
    }

    #[test]
    fn quit_closes() {
        let (r, after) = answer(
            LocalCommand::Quit,
            &args(&["QUIT"]),
            &mut ClientState::default(),
        );
        assert_eq!((r, after), (Reply::ok(), After::Close));
    }
}
