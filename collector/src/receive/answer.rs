//! The answer a receiver waits for when the export queue is on disk: whether its request (or
//! its part of one) is stored. A request routed to several trace endpoints is stored in one
//! part per endpoint; the receiver hears once, when every part has answered.

use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use super::Refusal;

/// One stored part's way of answering; the receiver hears when the last part answers or is
/// dropped. A part dropped without answering makes the whole answer a refusal (the receiver
/// reads a closed channel as shutting down).
#[derive(Debug)]
pub struct StoreAnswer(Arc<Shared>);

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    sender: Option<oneshot::Sender<Result<(), Refusal>>>,
    /// Parts that have not answered yet.
    waiting: usize,
    refusal: Option<Refusal>,
}

/// What the receiver awaits.
pub type StoreWait = oneshot::Receiver<Result<(), Refusal>>;

impl StoreAnswer {
    /// An answer for one whole request, and what its receiver awaits.
    pub fn channel() -> (Self, StoreWait) {
        let (sender, wait) = oneshot::channel();
        let state = State { sender: Some(sender), waiting: 1, refusal: None };
        (Self(Arc::new(Shared { state: Mutex::new(state) })), wait)
    }

    /// This answer as `parts` answers (at least one), each owed by one stored part.
    pub fn split(self, parts: usize) -> Vec<Self> {
        if let Ok(mut state) = self.0.state.lock() {
            state.waiting += parts.saturating_sub(1);
        }
        let mut answers: Vec<Self> = (1..parts).map(|_| Self(self.0.clone())).collect();
        answers.push(self);
        answers
    }

    /// Answers for this part; the receiver hears once the last part has.
    pub fn send(self, outcome: Result<(), Refusal>) {
        let Ok(mut state) = self.0.state.lock() else { return };
        if let Err(refusal) = outcome {
            state.refusal.get_or_insert(refusal);
        }
        state.waiting = state.waiting.saturating_sub(1);
        if state.waiting == 0 {
            if let Some(sender) = state.sender.take() {
                let _ = sender.send(state.refusal.map_or(Ok(()), Err));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_split_answer_is_heard_once_every_part_is_stored() {
        let (answer, mut wait) = StoreAnswer::channel();
        let mut parts = answer.split(3);
        parts.pop().expect("a part").send(Ok(()));
        parts.pop().expect("a part").send(Ok(()));
        assert!(wait.try_recv().is_err(), "one part is still being stored");
        parts.pop().expect("a part").send(Ok(()));
        assert_eq!(wait.await.expect("answered"), Ok(()));
    }

    #[tokio::test]
    async fn one_refused_part_refuses_the_request_and_a_lost_one_closes_it() {
        let (answer, wait) = StoreAnswer::channel();
        let mut parts = answer.split(2);
        parts.pop().expect("a part").send(Err(Refusal::StoreFailed));
        parts.pop().expect("a part").send(Ok(()));
        assert_eq!(wait.await.expect("answered"), Err(Refusal::StoreFailed));

        let (answer, wait) = StoreAnswer::channel();
        drop(answer.split(2));
        assert!(wait.await.is_err(), "parts dropped unanswered close the channel");
    }
}
