//! Processes of this machine, for telling what a killed run left from what a live one is
//! using (scratch databases, squash staging folders).

/// Whether a process of this machine is alive. Unknown (no `/proc`) counts as alive, so
/// nothing is removed on a guess.
pub fn alive(pid: u32) -> bool {
    let proc_root = std::path::Path::new("/proc");
    !proc_root.is_dir() || proc_root.join(pid.to_string()).exists()
}
