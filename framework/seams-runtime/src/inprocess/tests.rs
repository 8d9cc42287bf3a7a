//! In process, a call hands the typed value across, or, checking the wire,
//! sends it through JSON and fails where the network would.

use std::time::Duration;

use seams_core::decl::*;
use seams_core::{CallContext, CallError, ContractError};
use serde::{Deserialize, Serialize};

use super::*;
use crate::component::Served;

static ECHO: Operation = Operation {
    capability: "test",
    name: "echo",
    summary: "",
    kind: Kind::Query,
    timeout: Duration::from_secs(1),
    retries: Retries::Nobody,
    idempotency: Idempotency::ReadOnly,
    ordering: Ordering::Unordered,
    when_down: WhenDown::FailFast {
        problem: "down",
        retry_after: Duration::from_secs(1),
    },
    versioning: Versioning {
        current: 1,
        accepts: &[1],
    },
    request: seams_core::decl::no_body,
    response: seams_core::decl::no_body,
};

/// A request whose JSON loses a field it cannot be read back without:
/// it only works while nothing serializes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Lossy {
    kept: String,
    #[serde(skip_serializing)]
    dropped: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "error")]
enum EchoError {
    #[error("refused")]
    Refused,
    #[error(transparent)]
    #[serde(skip)]
    Call(#[from] CallError),
}

impl ContractError for EchoError {
    fn call_error(&self) -> Option<&CallError> {
        match self {
            EchoError::Call(e) => Some(e),
            EchoError::Refused => None,
        }
    }
}

async fn echo(req: Lossy, _ctx: CallContext) -> Result<Lossy, EchoError> {
    Ok(req)
}

fn request() -> Lossy {
    Lossy {
        kept: "a".into(),
        dropped: "b".into(),
    }
}

#[tokio::test]
async fn typed_calls_hand_the_value_across() {
    let t = InProcess::new();
    t.register(&Served::new(&ECHO, echo));
    let got: Result<Lossy, EchoError> =
        seams_core::call(&t, &ECHO, request(), &CallContext::new_root()).await;
    assert_eq!(got.unwrap(), request());
}

#[tokio::test]
async fn checking_the_wire_fails_a_type_that_does_not_round_trip() {
    let t = InProcess::checking_the_wire();
    t.register(&Served::new(&ECHO, echo));
    let got: Result<Lossy, EchoError> =
        seams_core::call(&t, &ECHO, request(), &CallContext::new_root()).await;
    match got {
        Err(EchoError::Call(CallError::Protocol { reason, .. })) => {
            assert!(reason.contains("dropped"), "{reason}")
        }
        other => panic!("expected a protocol error, got {other:?}"),
    }
}

#[tokio::test]
async fn declared_errors_come_back_in_both_modes() {
    async fn refuse(_req: String, _ctx: CallContext) -> Result<String, EchoError> {
        Err(EchoError::Refused)
    }
    for t in [InProcess::new(), InProcess::checking_the_wire()] {
        t.register(&Served::new(&ECHO, refuse));
        let got: Result<String, EchoError> =
            seams_core::call(&t, &ECHO, "a".to_owned(), &CallContext::new_root()).await;
        assert_eq!(
            got,
            Err(EchoError::Refused),
            "wire: {}",
            t.checks_the_wire()
        );
    }
}
