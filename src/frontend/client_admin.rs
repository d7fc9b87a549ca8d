//! `CLIENT LIST` and `CLIENT KILL` over slotgate's own clients, parsed and answered as Redis 7.0
//! does (`clientCommand` in its networking.c), errors word for word.

use bytes::Bytes;

use super::clients::{ClientEntry, Registry};
use crate::protocol::{Proto, Reply};

/// Redis' client types; slotgate's clients are never masters or replicas.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Type {
    Normal,
    PubSub,
    Master,
    Replica,
}

fn client_type(name: &[u8]) -> Result<Type, Reply> {
    match name.to_ascii_lowercase().as_slice() {
        b"normal" => Ok(Type::Normal),
        b"pubsub" => Ok(Type::PubSub),
        b"master" => Ok(Type::Master),
        b"slave" | b"replica" => Ok(Type::Replica),
        _ => Err(Reply::error_line(&format!(
            "ERR Unknown client type '{}'",
            String::from_utf8_lossy(name)
        ))),
    }
}

fn is(entry: &ClientEntry, ty: Type) -> bool {
    match ty {
        Type::Normal => !entry.is_pubsub(),
        Type::PubSub => entry.is_pubsub(),
        Type::Master | Type::Replica => false,
    }
}

fn parse_id(arg: &[u8]) -> Option<u64> {
    std::str::from_utf8(arg)
        .ok()?
        .parse::<i64>()
        .ok()?
        .try_into()
        .ok()
}

fn syntax() -> Reply {
    Reply::error_line("ERR syntax error")
}

/// `CLIENT LIST [TYPE type | ID id [id ...]]`.
pub fn list(args: &[Bytes], registry: &Registry, proto: Proto) -> Reply {
    let is_word = |i: usize, w: &[u8]| args.get(i).is_some_and(|a| a.eq_ignore_ascii_case(w));
    let mut text = String::new();
    if args.len() == 4 && is_word(2, b"TYPE") {
        let ty = match client_type(&args[3]) {
            Ok(ty) => ty,
            Err(reply) => return reply,
        };
        for entry in registry.select(|c| is(c, ty)) {
            text.push_str(&registry.line(&entry));
        }
    } else if args.len() > 3 && is_word(2, b"ID") {
        for arg in &args[3..] {
            let Some(id) = parse_id(arg) else {
                return Reply::error_line("ERR Invalid client ID");
            };
            for entry in registry.select(|c| c.id == id) {
                text.push_str(&registry.line(&entry));
            }
        }
    } else if args.len() != 2 {
        return syntax();
    } else {
        for entry in registry.select(|_| true) {
            text.push_str(&registry.line(&entry));
        }
    }
    Reply::text(proto, text.as_bytes())
}

/// Which clients a `CLIENT KILL` names.
#[derive(Default)]
struct Filter {
    id: Option<u64>,
    ty: Option<Type>,
    addr: Option<Bytes>,
    laddr: Option<Bytes>,
    skip_me: bool,
}

impl Filter {
    fn parse(args: &[Bytes]) -> Result<Filter, Reply> {
        if args.len() == 3 {
            // The old form, `CLIENT KILL addr`, may kill the caller itself.
            return Ok(Filter {
                addr: Some(args[2].clone()),
                ..Filter::default()
            });
        }
        let mut filter = Filter {
            skip_me: true,
            ..Filter::default()
        };
        for pair in args[2..].chunks(2) {
            let [option, value] = pair else {
                return Err(syntax());
            };
            match option.to_ascii_uppercase().as_slice() {
                b"ID" => match parse_id(value).filter(|&id| id > 0) {
                    Some(id) => filter.id = Some(id),
                    None => {
                        return Err(Reply::error_line("ERR client-id should be greater than 0"))
                    }
                },
                b"TYPE" => filter.ty = Some(client_type(value)?),
                b"ADDR" => filter.addr = Some(value.clone()),
                b"LADDR" => filter.laddr = Some(value.clone()),
                // slotgate has one user, as a server without ACL rules does.
                b"USER" if value.as_ref() == b"default" => {}
                b"USER" => {
                    return Err(Reply::error_line(&format!(
                        "ERR No such user '{}'",
                        String::from_utf8_lossy(value)
                    )))
                }
                b"SKIPME" => match value.to_ascii_lowercase().as_slice() {
                    b"yes" => filter.skip_me = true,
                    b"no" => filter.skip_me = false,
                    _ => return Err(syntax()),
                },
                _ => return Err(syntax()),
            }
        }
        Ok(filter)
    }

    fn matches(&self, entry: &ClientEntry, me: u64) -> bool {
        self.addr
            .as_ref()
            .is_none_or(|a| a.as_ref() == entry.addr().as_bytes())
            && self
                .laddr
                .as_ref()
                .is_none_or(|a| a.as_ref() == entry.laddr().as_bytes())
            && self.ty.is_none_or(|ty| is(entry, ty))
            && self.id.is_none_or(|id| entry.id == id)
            && !(self.skip_me && entry.id == me)
    }
}

/// What a `CLIENT KILL` did.
pub struct Killed {
    pub reply: Reply,
    /// The caller was among them: it is closed once this reply is written, as on Redis.
    pub me: bool,
}

/// `CLIENT KILL addr` or `CLIENT KILL <filter value> ...`, asked by client `me`.
pub fn kill(args: &[Bytes], registry: &Registry, me: u64) -> Killed {
    let filter = match Filter::parse(args) {
        Ok(filter) => filter,
        Err(reply) => return Killed { reply, me: false },
    };
    let victims = registry.select(|c| filter.matches(c, me));
    let mut killed_me = false;
    for victim in &victims {
        match victim.id == me {
            true => killed_me = true,
            false => victim.kill(),
        }
    }
    let reply = match (args.len() == 3, victims.len()) {
        (true, 0) => Reply::error_line("ERR No such client"),
        (true, _) => Reply::ok(),
        (false, n) => Reply::integer_reply(n as i64),
    };
    Killed {
        reply,
        me: killed_me,
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::budget::{Budget, OutputLimits};
    use crate::frontend::clients::{Listed, Peer};
    use crate::protocol::test_args as args;

    fn enter(registry: &Arc<Registry>, id: u64, port: u16) -> Listed {
        let budget = Arc::new(Budget::new(OutputLimits {
            hard: 1 << 20,
            soft: 0,
            soft_for: Duration::ZERO,
        }));
        let peer = Peer {
            addr: Some(SocketAddr::from(([127, 0, 0, 1], port))),
            laddr: Some(SocketAddr::from(([127, 0, 0, 1], 6380))),
            fd: 1,
        };
        registry.enter(id, peer, budget)
    }

    fn ids(reply: &Reply) -> Vec<String> {
        String::from_utf8_lossy(reply.bytes())
            .lines()
            .filter_map(|l| l.split(' ').next()?.strip_prefix("id=").map(String::from))
            .collect()
    }

    #[test]
    fn list_filters_as_redis() {
        let registry = Registry::new();
        let (_a, b) = (enter(&registry, 1, 5001), enter(&registry, 2, 5002));
        b.show(|s| s.sub = 1);
        let list = |words: &[&str]| list(&args(words), &registry, Proto::Resp2);
        assert_eq!(ids(&list(&["CLIENT", "LIST"])), ["1", "2"]);
        assert_eq!(ids(&list(&["CLIENT", "LIST", "TYPE", "pubsub"])), ["2"]);
        assert_eq!(ids(&list(&["CLIENT", "LIST", "TYPE", "NORMAL"])), ["1"]);
        assert_eq!(
            list(&["CLIENT", "LIST", "TYPE", "master"]),
            Reply::bulk(b"")
        );
        assert_eq!(
            ids(&list(&["CLIENT", "LIST", "ID", "2", "9", "1"])),
            ["2", "1"]
        );
        assert_eq!(
            list(&["CLIENT", "LIST", "TYPE", "bogus"]),
            Reply::error_line("ERR Unknown client type 'bogus'")
        );
        assert_eq!(
            list(&["CLIENT", "LIST", "ID", "x"]),
            Reply::error_line("ERR Invalid client ID")
        );
        assert_eq!(list(&["CLIENT", "LIST", "x"]), syntax());
    }

    #[test]
    fn kill_parses_and_replies_as_redis() {
        let registry = Registry::new();
        let _clients = [enter(&registry, 1, 5001), enter(&registry, 2, 5002)];
        let kill = |words: &[&str], me| kill(&args(words), &registry, me);
        let err = |text: &str| Reply::error_line(text);
        assert_eq!(
            kill(&["CLIENT", "KILL", "1.2.3.4:5"], 1).reply,
            err("ERR No such client")
        );
        assert_eq!(
            kill(&["CLIENT", "KILL", "ID"], 1).reply,
            err("ERR No such client")
        );
        assert_eq!(
            kill(&["CLIENT", "KILL", "ID", "x"], 1).reply,
            err("ERR client-id should be greater than 0")
        );
        assert_eq!(kill(&["CLIENT", "KILL", "FOO", "bar"], 1).reply, syntax());
        assert_eq!(
            kill(&["CLIENT", "KILL", "ID", "1", "SKIPME"], 1).reply,
            syntax()
        );
        assert_eq!(
            kill(&["CLIENT", "KILL", "ID", "1", "SKIPME", "maybe"], 1).reply,
            syntax()
        );
        assert_eq!(
            kill(&["CLIENT", "KILL", "USER", "nobody"], 1).reply,
            err("ERR No such user 'nobody'")
        );
        assert_eq!(
            kill(&["CLIENT", "KILL", "TYPE", "bogus"], 1).reply,
            err("ERR Unknown client type 'bogus'")
        );
        // The new form skips the caller unless told otherwise.
        let me = kill(&["CLIENT", "KILL", "ID", "1"], 1);
        assert_eq!((me.reply, me.me), (Reply::integer_reply(0), false));
        let me = kill(&["CLIENT", "KILL", "ID", "1", "SKIPME", "no"], 1);
        assert_eq!((me.reply, me.me), (Reply::integer_reply(1), true));
        // The old form by address, of another client.
        let other = kill(&["CLIENT", "KILL", "127.0.0.1:5002"], 1);
        assert_eq!((other.reply, other.me), (Reply::ok(), false));
        let all = kill(
            &[
                "CLIENT",
                "KILL",
                "USER",
                "default",
                "LADDR",
                "127.0.0.1:6380",
            ],
            1,
        );
        assert_eq!(all.reply, Reply::integer_reply(1));
    }
}
