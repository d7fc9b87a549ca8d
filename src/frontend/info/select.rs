//! Which sections `INFO [section ...]` prints, decided as redis-server 7.0 decides it
//! (`genInfoSectionDict`), so a client gets the same sections from slotgate as from one server.

use bytes::Bytes;

/// Redis 7.0's own INFO sections, in the order it prints them. Sections that modules add are not
/// here: the masters print them, and slotgate passes them on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    Server,
    Clients,
    Memory,
    Persistence,
    Stats,
    Replication,
    Cpu,
    Modules,
    Commandstats,
    Errorstats,
    Latencystats,
    Cluster,
    Keyspace,
}

impl Section {
    pub const ALL: [Section; 13] = [
        Section::Server,
        Section::Clients,
        Section::Memory,
        Section::Persistence,
        Section::Stats,
        Section::Replication,
        Section::Cpu,
        Section::Modules,
        Section::Commandstats,
        Section::Errorstats,
        Section::Latencystats,
        Section::Cluster,
        Section::Keyspace,
    ];

    /// The heading Redis prints after `# `.
    pub fn title(self) -> &'static str {
        match self {
            Section::Server => "Server",
            Section::Clients => "Clients",
            Section::Memory => "Memory",
            Section::Persistence => "Persistence",
            Section::Stats => "Stats",
            Section::Replication => "Replication",
            Section::Cpu => "CPU",
            Section::Modules => "Modules",
            Section::Commandstats => "Commandstats",
            Section::Errorstats => "Errorstats",
            Section::Latencystats => "Latencystats",
            Section::Cluster => "Cluster",
            Section::Keyspace => "Keyspace",
        }
    }

    /// The section a client names, in any case. Redis calls the module list `module_list`
    /// inside and accepts both names.
    fn named(name: &[u8]) -> Option<Section> {
        let name = name.to_ascii_lowercase();
        let found = match name.as_slice() {
            b"module_list" | b"modules" => Section::Modules,
            _ => *Section::ALL
                .iter()
                .find(|s| s.title().as_bytes().eq_ignore_ascii_case(&name))?,
        };
        Some(found)
    }

    /// What plain `INFO` (and `INFO default`) prints: everything but the per-command tables,
    /// which are long.
    fn in_default(self) -> bool {
        !matches!(self, Section::Commandstats | Section::Latencystats)
    }

    fn bit(self) -> u16 {
        1 << self as u16
    }
}

/// The sections a request selects. Names slotgate does not know select nothing here, as on
/// Redis (`INFO bogus` is an empty reply); a module's section is the masters' to print.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Selection(u16);

impl Selection {
    /// `args` is the whole request, `INFO` included.
    pub fn parse(args: &[Bytes]) -> Selection {
        let wanted = args.get(1..).unwrap_or_default();
        if wanted.is_empty() {
            return Selection::default_sections();
        }
        let mut bits = 0;
        for name in wanted {
            bits |= match name.to_ascii_lowercase().as_slice() {
                b"default" => Selection::default_sections().0,
                b"all" | b"everything" => Selection::everything().0,
                other => Section::named(other).map_or(0, Section::bit),
            };
        }
        Selection(bits)
    }

    pub fn has(self, section: Section) -> bool {
        self.0 & section.bit() != 0
    }

    fn default_sections() -> Selection {
        Selection(
            Section::ALL
                .iter()
                .filter(|s| s.in_default())
                .fold(0, |bits, s| bits | s.bit()),
        )
    }

    fn everything() -> Selection {
        Selection(Section::ALL.iter().fold(0, |bits, s| bits | s.bit()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::test_args as args;

    fn selected(words: &[&str]) -> Vec<&'static str> {
        let selection = Selection::parse(&args(words));
        Section::ALL
            .iter()
            .filter(|s| selection.has(**s))
            .map(|s| s.title())
            .collect()
    }

    /// The headings redis-server 7.0.15 prints for each form.
    #[test]
    fn selects_what_redis_selects() {
        let default = vec![
            "Server",
            "Clients",
            "Memory",
            "Persistence",
            "Stats",
            "Replication",
            "CPU",
            "Modules",
            "Errorstats",
            "Cluster",
            "Keyspace",
        ];
        assert_eq!(selected(&["INFO"]), default);
        assert_eq!(selected(&["info", "DEFAULT"]), default);
        let all: Vec<&str> = Section::ALL.iter().map(|s| s.title()).collect();
        assert_eq!(selected(&["INFO", "all"]), all);
        assert_eq!(selected(&["INFO", "everything"]), all);
        assert_eq!(selected(&["INFO", "all", "modules"]), all);
        let mut with_commands = default.clone();
        with_commands.insert(8, "Commandstats");
        assert_eq!(
            selected(&["INFO", "default", "commandstats"]),
            with_commands
        );
    }

    #[test]
    fn names_select_their_section_in_any_case_and_redis_order() {
        assert_eq!(
            selected(&["INFO", "KEYSPACE", "Server"]),
            ["Server", "Keyspace"]
        );
        assert_eq!(selected(&["INFO", "cpu"]), ["CPU"]);
        assert_eq!(selected(&["INFO", "module_list"]), ["Modules"]);
        assert_eq!(selected(&["INFO", "latencystats"]), ["Latencystats"]);
    }

    #[test]
    fn unknown_names_select_nothing() {
        assert!(selected(&["INFO", "bogus"]).is_empty());
        assert_eq!(selected(&["INFO", "server", "bogus"]), ["Server"]);
    }
}
