//! What the kernel says about a process: CPU time and memory, from /proc.

use std::process::Command;

/// CPU time of every thread of a process, in clock ticks. Kept apart because on loopback the
/// kernel side is large (a `write` also runs the receiver's TCP stack), and only the user side
/// is slotgate's own code.
#[derive(Clone, Copy, Debug, Default)]
pub struct Ticks {
    pub user: u64,
    pub system: u64,
}

impl Ticks {
    pub fn total(self) -> u64 {
        self.user + self.system
    }

    pub fn since(self, earlier: Ticks) -> Ticks {
        Ticks {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }

    pub fn plus(self, other: Ticks) -> Ticks {
        Ticks {
            user: self.user + other.user,
            system: self.system + other.system,
        }
    }
}

/// The bench's own CPU, to show whether the client, not the target, was the bottleneck.
pub fn self_cpu_ticks() -> Option<Ticks> {
    cpu_ticks_at("/proc/self/stat")
}

pub fn cpu_ticks(pid: u32) -> Option<Ticks> {
    cpu_ticks_at(&format!("/proc/{pid}/stat"))
}

fn cpu_ticks_at(path: &str) -> Option<Ticks> {
    let stat = std::fs::read_to_string(path).ok()?;
    // The command name may hold spaces and parentheses; the fields after its last ')' do not.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // Fields 14 and 15 of proc(5), counted from the state field (3).
    Some(Ticks {
        user: fields.get(11)?.parse().ok()?,
        system: fields.get(12)?.parse().ok()?,
    })
}

/// Ticks per second of /proc's CPU times; 100 on every Linux we run on, hence the fallback.
pub fn clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

/// A KiB field of /proc/PID/status, such as `VmRSS` or `VmHWM`.
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
