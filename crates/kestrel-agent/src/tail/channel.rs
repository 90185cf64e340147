//! A channel of chunks bounded in bytes: the tailer blocks when the consumer falls behind.
//!
//! Written by hand because std's and crossbeam's bounded channels count messages, and chunks
//! range from a few bytes to `max_chunk_bytes`: a bound in bytes is the memory bound the agent
//! promises. A chunk larger than the whole capacity is still let in when the queue is empty.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::Chunk;

struct State {
    queue: VecDeque<Chunk>,
    queued_bytes: usize,
    /// Set when the sender is closed or dropped.
    sender_closed: bool,
    /// Set when the receiver is dropped.
    receiver_closed: bool,
}

struct Shared {
    state: Mutex<State>,
    capacity_bytes: usize,
    /// Signalled when a chunk is added or the sender closes.
    not_empty: Condvar,
    /// Signalled when room is made or the receiver closes.
    not_full: Condvar,
}

/// Why [`ChunkReceiver::recv_timeout`] returned no chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecvError {
    /// No chunk arrived in time.
    #[error("no chunk within the timeout")]
    Timeout,
    /// The tailer has stopped and every chunk has been received.
    #[error("the tailer has stopped")]
    Closed,
}

/// Why a send did not happen.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SendError {
    /// The receiver is gone.
    Disconnected,
    /// The sender was closed (shutdown) while waiting for room.
    Closed,
}

/// The tailer's end.
pub(crate) struct ChunkSender {
    shared: Arc<Shared>,
}

/// The consumer's end: chunks in the order the tailer read them (per file, in file order).
pub struct ChunkReceiver {
    shared: Arc<Shared>,
}

pub(crate) fn chunk_channel(capacity_bytes: usize) -> (ChunkSender, ChunkReceiver) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            queue: VecDeque::new(),
            queued_bytes: 0,
            sender_closed: false,
            receiver_closed: false,
        }),
        capacity_bytes: capacity_bytes.max(1),
        not_empty: Condvar::new(),
        not_full: Condvar::new(),
    });
    (
        ChunkSender {
            shared: shared.clone(),
        },
        ChunkReceiver { shared },
    )
}

impl ChunkSender {
    /// Sends, waiting for room; gives the chunk back if the channel closes meanwhile.
    pub(crate) fn send(&self, chunk: Chunk) -> Result<(), (Chunk, SendError)> {
        let size = chunk.data.len();
        let mut state = self.shared.state.lock().unwrap();
        loop {
            if state.receiver_closed {
                return Err((chunk, SendError::Disconnected));
            }
            if state.sender_closed {
                return Err((chunk, SendError::Closed));
            }
            if state.queue.is_empty() || state.queued_bytes + size <= self.shared.capacity_bytes {
                break;
            }
            state = self.shared.not_full.wait(state).unwrap();
        }
        state.queued_bytes += size;
        state.queue.push_back(chunk);
        drop(state);
        self.shared.not_empty.notify_one();
        Ok(())
    }

    /// Closes the channel from the sending side: a waiting `send` returns, the receiver drains
    /// what is queued and then sees [`RecvError::Closed`].
    pub(crate) fn close(&self) {
        self.closer().close();
    }

    /// A handle that can close the channel from another thread.
    pub(crate) fn closer(&self) -> Closer {
        Closer {
            shared: self.shared.clone(),
        }
    }
}

/// Closes the channel from the sending side (used by shutdown to wake a blocked sender).
pub(crate) struct Closer {
    shared: Arc<Shared>,
}

impl Closer {
    pub(crate) fn close(&self) {
        self.shared.state.lock().unwrap().sender_closed = true;
        self.shared.not_full.notify_all();
        self.shared.not_empty.notify_all();
    }
}

impl Drop for ChunkSender {
    fn drop(&mut self) {
        self.close();
    }
}

impl ChunkReceiver {
    /// Waits for the next chunk; `None` once the tailer has stopped and the queue is drained.
    pub fn recv(&self) -> Option<Chunk> {
        let mut state = self.shared.state.lock().unwrap();
        loop {
            if let Some(chunk) = self.take(&mut state) {
                return Some(chunk);
            }
            if state.sender_closed {
                return None;
            }
            state = self.shared.not_empty.wait(state).unwrap();
        }
    }

    /// Waits up to `timeout` for the next chunk.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Chunk, RecvError> {
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.state.lock().unwrap();
        loop {
            if let Some(chunk) = self.take(&mut state) {
                return Ok(chunk);
            }
            if state.sender_closed {
                return Err(RecvError::Closed);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(RecvError::Timeout);
            }
            state = self
                .shared
                .not_empty
                .wait_timeout(state, deadline - now)
                .unwrap()
                .0;
        }
    }

    /// The next chunk if one is waiting.
    pub fn try_recv(&self) -> Result<Chunk, RecvError> {
        let mut state = self.shared.state.lock().unwrap();
        match self.take(&mut state) {
            Some(chunk) => Ok(chunk),
            None if state.sender_closed => Err(RecvError::Closed),
            None => Err(RecvError::Timeout),
        }
    }

    /// Bytes of chunk data waiting in the channel.
    pub fn queued_bytes(&self) -> usize {
        self.shared.state.lock().unwrap().queued_bytes
    }

    fn take(&self, state: &mut State) -> Option<Chunk> {
        let chunk = state.queue.pop_front()?;
        state.queued_bytes -= chunk.data.len();
        self.shared.not_full.notify_one();
        Some(chunk)
    }
}

impl Drop for ChunkReceiver {
    fn drop(&mut self) {
        self.shared.state.lock().unwrap().receiver_closed = true;
        self.shared.not_full.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tail::FileKey;
    use std::path::Path;

    fn chunk(len: usize) -> Chunk {
        Chunk {
            file: FileKey {
                dev: 1,
                ino: 2,
                fingerprint: 3,
            },
            path: Arc::from(Path::new("/x")),
            start: 0,
            end: len as u64,
            data: vec![b'\n'; len],
            lines: len as u32,
            truncated: Vec::new(),
            appended_newline: false,
            finished: false,
        }
    }

    #[test]
    fn sender_blocks_when_full_and_resumes_when_drained() {
        let (tx, rx) = chunk_channel(10);
        tx.send(chunk(6)).unwrap();
        let sent = std::thread::scope(|s| {
            let h = s.spawn(|| tx.send(chunk(6)).is_ok());
            // The second chunk does not fit until the first is received.
            assert_eq!(rx.recv().unwrap().data.len(), 6);
            h.join().unwrap()
        });
        assert!(sent);
        assert_eq!(rx.recv().unwrap().data.len(), 6);
        assert_eq!(rx.try_recv().unwrap_err(), RecvError::Timeout);
    }

    #[test]
    fn oversized_chunk_fits_an_empty_queue() {
        let (tx, rx) = chunk_channel(4);
        tx.send(chunk(100)).unwrap();
        assert_eq!(rx.queued_bytes(), 100);
        assert_eq!(rx.recv().unwrap().data.len(), 100);
    }

    #[test]
    fn close_wakes_a_blocked_sender_and_receiver_drains() {
        let (tx, rx) = chunk_channel(4);
        tx.send(chunk(4)).unwrap();
        std::thread::scope(|s| {
            // Whether close comes before or during the wait, the send ends with `Closed`.
            let h = s.spawn(|| tx.send(chunk(4)));
            tx.close();
            assert_eq!(h.join().unwrap().unwrap_err().1, SendError::Closed);
        });
        assert!(rx.recv().is_some());
        assert!(rx.recv().is_none());
        assert_eq!(
            rx.recv_timeout(Duration::from_millis(1)).unwrap_err(),
            RecvError::Closed
        );
    }

    #[test]
    fn dropped_receiver_disconnects() {
        let (tx, rx) = chunk_channel(4);
        drop(rx);
        assert_eq!(tx.send(chunk(1)).unwrap_err().1, SendError::Disconnected);
    }
}
