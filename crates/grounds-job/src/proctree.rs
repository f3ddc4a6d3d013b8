//! The processes below a pid, read from `/proc`, and how to end them all.
//!
//! SageMaker ends a job when the entry's main process exits; whatever the job started in the background
//! (`sleep 300 &`, a daemon that called `setsid`) goes with it. The entry is a child subreaper, so every
//! orphan of the job stays below it, and this module finds and ends them: SIGTERM, a short grace, SIGKILL.
//!
//! A process is found by its pid *and* its start time, and signalled through a pidfd opened on it and
//! checked to be that same process: a pid that was freed and reused between the scan and the signal
//! (a grandchild reaped by its own parent meanwhile) is never hit.

use std::collections::HashMap;
use std::time::Duration;

/// The start time of a process (clock ticks after boot), from `/proc/<pid>/stat`; None when it is gone.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold anything: the fields after it are fixed.
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the name: state (field 3), ..., starttime (field 22).
    if fields.first() == Some(&"Z") || fields.first() == Some(&"X") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

/// Makes this process the reaper of its orphaned descendants (`PR_SET_CHILD_SUBREAPER`), so that a job's
/// background processes stay in its tree however they detach.
pub fn become_subreaper() -> std::io::Result<()> {
    // SAFETY: prctl(2) with integer arguments only.
    let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// A process as it was found: its pid, and when it started (pids are reused; the pair is not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    pub pid: i32,
    start: u64,
}

/// (pid, parent pid, state, start time) of every process, from `/proc/<pid>/stat`.
fn processes() -> Vec<(i32, i32, char, u64)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let mut fields = stat[close + 1..].split_whitespace();
        let state = fields.next().and_then(|s| s.chars().next()).unwrap_or('?');
        let Some(ppid) = fields.next().and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        // After the state and the parent: pgrp, session, tty, tpgid, flags, 4 fault counts, 4 times,
        // priority, nice, threads, itrealvalue, then the start time (field 22 of the line).
        let Some(start) = fields.nth(17).and_then(|t| t.parse::<u64>().ok()) else {
            continue;
        };
        found.push((pid, ppid, state, start));
    }
    found
}

/// Every living (not zombie) descendant of `root`, parents before children.
pub fn descendants(root: i32) -> Vec<Found> {
    let all = processes();
    let mut children: HashMap<i32, Vec<(i32, char, u64)>> = HashMap::new();
    for (pid, ppid, state, start) in all {
        children.entry(ppid).or_default().push((pid, state, start));
    }
    let mut found: Vec<Found> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut queue = vec![root];
    while let Some(parent) = queue.pop() {
        for (pid, state, start) in children.get(&parent).into_iter().flatten() {
            if *pid == root || !seen.insert(*pid) {
                continue;
            }
            if !matches!(state, 'Z' | 'X') {
                found.push(Found {
                    pid: *pid,
                    start: *start,
                });
            }
            queue.push(*pid);
        }
    }
    found
}

/// Sends `signal` to the process `found`, and only to it: through a pidfd, which is checked (by the start
/// time) to refer to the process that was found before the signal is sent through it. Without pidfds (an
/// old kernel, a seccomp filter), the start time is checked just before kill(2).
pub fn send(found: Found, signal: i32) {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    // SAFETY: pidfd_open(2) with a pid and no flags; a descriptor it returns is owned from here on.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, found.pid, 0) };
    let Ok(fd) = i32::try_from(fd) else { return };
    if fd < 0 {
        if start_time(found.pid as u32) == Some(found.start) {
            // SAFETY: kill(2) on a process just seen to be the one found.
            unsafe {
                libc::kill(found.pid, signal);
            }
        }
        return;
    }
    // SAFETY: fd is a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // The pidfd refers to whoever had the pid when it was opened; if the pid still shows the start time
    // found, that process has had the pid all along, so it is the one the pidfd refers to.
    if start_time(found.pid as u32) == Some(found.start) {
        // SAFETY: pidfd_send_signal(2) on our descriptor, without siginfo or flags.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                fd.as_raw_fd(),
                signal,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            );
        }
    }
}

fn signal(found: &[Found], signal: i32) {
    for one in found {
        send(*one, signal);
    }
}

/// Reaps every child of this process that has ended (only for a process whose own child is already
/// waited for: it would otherwise take that child's status away from its waiter).
pub fn reap_children() {
    loop {
        let mut status = 0;
        // SAFETY: waitpid(2) with WNOHANG on any child.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            break;
        }
    }
}

/// Ends every descendant of `root`: SIGTERM, then SIGKILL to what is left after `grace`. With `reap`, the
/// caller is the subreaper of these processes and reaps them as they end. Returns how many were found.
pub async fn end_descendants(root: i32, grace: Duration, reap: bool) -> usize {
    let first = descendants(root);
    if first.is_empty() {
        return 0;
    }
    signal(&first, libc::SIGTERM);
    let deadline = tokio::time::Instant::now() + grace;
    loop {
        if reap {
            reap_children();
        }
        let left = descendants(root);
        if left.is_empty() {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            kill_descendants(root);
            break;
        }
        // A process started during the grace gets SIGTERM too.
        signal(
            &left
                .iter()
                .copied()
                .filter(|p| !first.contains(p))
                .collect::<Vec<_>>(),
            libc::SIGTERM,
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if reap {
        for _ in 0..20 {
            reap_children();
            if descendants(root).is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    first.len()
}

/// SIGKILL to every descendant of `root`, again until none is found (a process may fork between the
/// scan and the signal; a killed one cannot).
pub fn kill_descendants(root: i32) {
    for _ in 0..20 {
        let left = descendants(root);
        if left.is_empty() {
            return;
        }
        signal(&left, libc::SIGKILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reused_pid_is_never_signalled() {
        let mut child = std::process::Command::new("sleep")
            .arg("300")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let start = start_time(pid as u32).unwrap();
        // Another start time at the same pid: a process that is not the one found. Nothing is sent.
        send(
            Found {
                pid,
                start: start + 1,
            },
            libc::SIGKILL,
        );
        std::thread::sleep(Duration::from_millis(100));
        assert!(
            child.try_wait().unwrap().is_none(),
            "the process at a reused pid was hit"
        );
        send(Found { pid, start }, libc::SIGKILL);
        let status = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL));
    }

    #[tokio::test]
    async fn descendants_are_found_and_ended() {
        // A shell whose child ignores SIGTERM: it must be killed after the grace.
        let mut child = std::process::Command::new("sh")
            .args(["-c", "trap '' TERM; sleep 300 & sleep 300 & wait"])
            .spawn()
            .unwrap();
        let shell = child.id() as i32;
        let mut below = Vec::new();
        for _ in 0..100 {
            below = descendants(shell);
            if below.len() == 2 {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(below.len(), 2, "two sleeps below the shell");
        let me = std::process::id() as i32;
        assert!(descendants(me).iter().any(|f| f.pid == shell));
        let ended = end_descendants(shell, Duration::from_millis(300), false).await;
        assert_eq!(ended, 2);
        let below: Vec<i32> = below.iter().map(|f| f.pid).collect();
        // The sleeps were children of the shell, which reaps them once it is itself ended.
        child.kill().unwrap();
        child.wait().unwrap();
        for pid in below {
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            assert!(
                state.is_empty() || state.contains(") Z"),
                "{pid} still runs: {state}"
            );
        }
    }
}
