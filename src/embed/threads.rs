//! The threads that run the model, and their scheduling priority.
//!
//! The forward pass is the only long CPU work of a request, and it runs on rayon's global
//! pool (the served path's batcher runs there too). When the service is saturated, those threads
//! would otherwise take the cores from the async threads that parse requests, answer cache
//! hits, `/health` and `/metrics`, and refuse with 429: a refusal then waits for a time slice
//! behind the model. Giving the model threads a higher nice value (a lower priority) lets the
//! short work preempt them; the model still gets every cycle nobody else wants, so
//! throughput is unchanged on an otherwise idle machine. But when clients retry every 429 at
//! once, refusing takes most of the cores and the model gets only what is left, so the
//! service's `--model-nice` is 0 (off) unless an operator asks for it.

#![cfg_attr(
    target_os = "linux",
    expect(
        unsafe_code,
        reason = "gettid, getpriority and setpriority are libc calls"
    )
)]

/// Why the pool could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ThreadsError {
    #[error("the model's thread pool was already started: {0}")]
    PoolStarted(#[from] rayon::ThreadPoolBuildError),
}

/// Builds rayon's global pool (one thread a core) with its threads at `nice`. Call once,
/// before anything runs the model; later calls fail. A `nice` of 0 changes nothing.
pub fn start_model_pool(nice: i32) -> Result<(), ThreadsError> {
    let nice = nice.clamp(0, 19);
    rayon::ThreadPoolBuilder::new()
        .thread_name(|i| format!("router-model-{i}"))
        .start_handler(move |_| lower_current_thread(nice))
        .build_global()?;
    Ok(())
}

/// The calling thread's nice value (Linux only; elsewhere `None`).
pub fn current_thread_nice() -> Option<i32> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid and getpriority take plain integers and touch no memory of ours.
        let tid = unsafe { libc::gettid() };
        // getpriority may legitimately return -1; errno tells an error apart. Reading the
        // value of a thread of this process cannot fail.
        let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, tid as libc::id_t) };
        Some(nice)
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

/// On Linux a nice value belongs to a thread, not the process: this lowers only the
/// calling thread, to `nice` unless it already runs lower (raising a nice value needs no
/// privilege; lowering one would). Elsewhere it does nothing.
fn lower_current_thread(nice: i32) {
    #[cfg(target_os = "linux")]
    {
        if current_thread_nice().is_some_and(|now| now >= nice) {
            return;
        }
        // SAFETY: as above, plain integers only.
        let tid = unsafe { libc::gettid() };
        let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice) };
        if rc != 0 {
            tracing::warn!(
                nice,
                error = %std::io::Error::last_os_error(),
                "could not lower a model thread's priority"
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn a_thread_lowered_to_the_model_priority_has_that_nice_value_and_others_keep_theirs() {
        let before = current_thread_nice().unwrap();
        let lowered = std::thread::spawn(|| {
            lower_current_thread(7);
            current_thread_nice()
        })
        .join()
        .unwrap();
        assert_eq!(lowered, Some(before.max(7)));
        assert_eq!(current_thread_nice(), Some(before));
    }
}
