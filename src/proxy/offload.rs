//! Work that need not hold the proxy thread: in observe and advisory modes the request's facts
//! and the policies' verdict cannot change what happens to it, so they are worked out on a
//! thread of their own (`server.inspection_threads`) while the vendor answers; the audit row
//! waits for them. When the queue is full, or there is no such thread, the work runs inline.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send>;

/// Jobs waiting at most; past it a job runs inline.
const QUEUE: usize = 1024;

pub(crate) struct Offload {
    tx: Option<SyncSender<Job>>,
}

impl Offload {
    /// Starts `threads` worker threads (0: everything runs inline).
    pub(crate) fn start(threads: usize) -> Offload {
        if threads == 0 {
            return Offload { tx: None };
        }
        let (tx, rx) = sync_channel::<Job>(QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        let mut started = 0;
        for i in 0..threads {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("yori-inspect-{i}"))
                .spawn(move || work(&rx));
            match spawned {
                Ok(_) => started += 1,
                Err(e) => log::error!("cannot start an inspection thread, work runs inline: {e}"),
            }
        }
        Offload {
            tx: (started > 0).then_some(tx),
        }
    }

    /// Runs `f` on a worker (inline when the queue is full or there is none); its result
    /// arrives on the receiver. A job that panics drops its sender: the receiver sees an error.
    pub(crate) fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> oneshot::Receiver<T> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        match &self.tx {
            Some(queue) => match queue.try_send(job) {
                Ok(()) => {}
                Err(TrySendError::Full(job) | TrySendError::Disconnected(job)) => job(),
            },
            None => job(),
        }
        rx
    }
}

/// Marks the calling thread as batch work: it never preempts the proxy thread when woken
/// (Linux `SCHED_BATCH`), so the device's answer is not held up by the inspection of its request.
fn yield_to_the_proxy() {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: a plain syscall on the calling thread (pid 0) with a valid, local parameter.
        #[allow(unsafe_code)]
        let r = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) };
        if r != 0 {
            log::debug!("inspection thread keeps the default scheduling policy");
        }
    }
}

fn work(rx: &Mutex<Receiver<Job>>) {
    yield_to_the_proxy();
    loop {
        let job = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else {
            return; // the proxy is gone
        };
        if std::panic::catch_unwind(AssertUnwindSafe(job)).is_err() {
            log::error!("an inspection job panicked; its exchange is recorded without facts");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn results_come_back_from_a_worker_inline_or_not_at_all() {
        let off = Offload::start(1);
        let on = off.run(|| std::thread::current().name().map(str::to_string));
        assert_eq!(on.await.unwrap().as_deref(), Some("yori-inspect-0"));
        let inline = Offload::start(0).run(|| 41 + 1);
        assert_eq!(inline.await.unwrap(), 42);
        #[allow(clippy::panic)]
        let failed = off.run(|| -> u8 { panic!("a bad job") });
        assert!(failed.await.is_err(), "a panicked job reports an error");
        let after = off.run(|| 7);
        assert_eq!(
            after.await.unwrap(),
            7,
            "the worker survives a panicked job"
        );
    }
}
