//! The call state machine of DESIGN §4, as pure functions: which transitions are allowed,
//! which skipped states must be recorded as inferred, and which reports are idempotent
//! repeats. The store applies a plan; nothing else decides transitions.

pub use pushdial_protocol::CallStatus;

/// The forward chain of a call that goes well.
const CHAIN: [CallStatus; 7] = [
    CallStatus::Queued,
    CallStatus::Offered,
    CallStatus::Delivered,
    CallStatus::Accepted,
    CallStatus::Dialing,
    CallStatus::Connected,
    CallStatus::Completed,
];

fn rank(status: CallStatus) -> Option<usize> {
    CHAIN.iter().position(|s| *s == status)
}

/// Where a status lies on the forward chain, for the rules that depend on it.
pub trait Progress {
    /// Before the phone opens the call: it may still be canceled, and it expires.
    fn is_before_dialing(&self) -> bool;
}

impl Progress for CallStatus {
    fn is_before_dialing(&self) -> bool {
        matches!(rank(*self), Some(r) if r < 4)
    }
}

/// What applying a reported status to a call means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// The call is already in that state: answer as before, write nothing.
    Unchanged,
    /// Move to the target; `inferred` lists the skipped states, in order, to record as
    /// inferred events before the target's own event.
    Advance { inferred: Vec<CallStatus> },
}

/// Why a transition is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The call has ended; only a repeat of its final state is accepted.
    AfterTerminal(CallStatus),
    /// The target lies behind the current state.
    Backward,
}

/// Decides how `current` moves to `target`.
pub fn plan(current: CallStatus, target: CallStatus) -> Result<Plan, Refusal> {
    if current == target {
        return Ok(Plan::Unchanged);
    }
    if current.is_terminal() {
        return Err(Refusal::AfterTerminal(current));
    }
    let Some(from) = rank(current) else {
        return Err(Refusal::Backward);
    };
    // The last chain state a target implies, and the chain states it implies were passed.
    let through = match target {
        CallStatus::Failed | CallStatus::Canceled | CallStatus::Expired => {
            return Ok(Plan::Advance { inferred: vec![] })
        }
        // Declining is an answer to a delivered offer, so it implies delivery.
        CallStatus::Declined => {
            if from >= 3 {
                return Err(Refusal::Backward);
            }
            3
        }
        other => match rank(other) {
            Some(to) if to > from => to,
            _ => return Err(Refusal::Backward),
        },
    };
    Ok(Plan::Advance {
        inferred: CHAIN[from + 1..through].to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::CallStatus::*;
    use super::*;

    #[test]
    fn forward_moves_infer_skipped_states() {
        assert_eq!(
            plan(Queued, Offered),
            Ok(Plan::Advance { inferred: vec![] })
        );
        assert_eq!(
            plan(Delivered, Dialing),
            Ok(Plan::Advance {
                inferred: vec![Accepted]
            })
        );
        assert_eq!(
            plan(Delivered, Completed),
            Ok(Plan::Advance {
                inferred: vec![Accepted, Dialing, Connected]
            })
        );
        assert_eq!(
            plan(Offered, Declined),
            Ok(Plan::Advance {
                inferred: vec![Delivered]
            })
        );
    }

    #[test]
    fn repeats_are_unchanged_even_after_the_end() {
        assert_eq!(plan(Dialing, Dialing), Ok(Plan::Unchanged));
        assert_eq!(plan(Completed, Completed), Ok(Plan::Unchanged));
    }

    #[test]
    fn nothing_leaves_a_terminal_state_or_goes_back() {
        assert_eq!(
            plan(Completed, Dialing),
            Err(Refusal::AfterTerminal(Completed))
        );
        assert_eq!(
            plan(Canceled, Failed),
            Err(Refusal::AfterTerminal(Canceled))
        );
        assert_eq!(plan(Dialing, Accepted), Err(Refusal::Backward));
        assert_eq!(plan(Dialing, Declined), Err(Refusal::Backward));
        assert_eq!(
            plan(Connected, Failed),
            Ok(Plan::Advance { inferred: vec![] })
        );
    }

    #[test]
    fn statuses_round_trip() {
        for s in CallStatus::ALL {
            assert_eq!(s.as_str().parse(), Ok(s));
        }
    }
}
