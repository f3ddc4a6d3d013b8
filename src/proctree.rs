//! The processes below a pid, read from `/proc`, and how to end them all.
//!
//! SageMaker ends a job when the entry's main process exits; whatever the job started in the background
//! (`sleep 300 &`, a daemon that called `setsid`) goes with it. The entry is a child subreaper, so every
//! orphan of the job stays below it, and this module finds and ends them: SIGTERM, a short grace, SIGKILL.

use std::collections::HashMap;
use std::time::Duration;

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

/// (pid, parent pid, state) of every process, from `/proc/<pid>/stat`.
fn processes() -> Vec<(i32, i32, char)> {
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
        found.push((pid, ppid, state));
    }
    found
}

/// Every living (not zombie) descendant of `root`, parents before children.
pub fn descendants(root: i32) -> Vec<i32> {
    let all = processes();
    let mut children: HashMap<i32, Vec<(i32, char)>> = HashMap::new();
    for (pid, ppid, state) in all {
        children.entry(ppid).or_default().push((pid, state));
    }
    let mut found = Vec::new();
    let mut queue = vec![root];
    while let Some(parent) = queue.pop() {
        for (pid, state) in children.get(&parent).into_iter().flatten() {
            if *pid == root || found.contains(pid) {
                continue;
            }
            if !matches!(state, 'Z' | 'X') {
                found.push(*pid);
            }
            queue.push(*pid);
        }
    }
    found
}

fn signal(pids: &[i32], signal: i32) {
    for pid in pids {
        // SAFETY: kill(2) on processes below one of ours.
        unsafe {
            libc::kill(*pid, signal);
        }
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
        assert!(descendants(me).contains(&shell));
        let ended = end_descendants(shell, Duration::from_millis(300), false).await;
        assert_eq!(ended, 2);
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
