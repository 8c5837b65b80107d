//! A check function in memory: answers as it was told, per function, and keeps each question.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use super::guard;
use crate::ports::{CheckFunctions, Invoked, PortError, PortErrorKind, PortResult};

#[derive(Default)]
pub struct MemoryChecks {
    answers: Mutex<BTreeMap<String, Invoked>>,
    questions: Mutex<Vec<(String, Value)>>,
}

impl MemoryChecks {
    /// `function` answers `payload` (with `function_error` when it failed) from now on.
    pub fn answer(&self, function: &str, function_error: Option<&str>, payload: &str) {
        guard(&self.answers).insert(
            function.to_owned(),
            Invoked {
                function_error: function_error.map(str::to_owned),
                payload: payload.as_bytes().to_vec(),
            },
        );
    }

    /// Every question asked, in order: function and payload.
    pub fn questions(&self) -> Vec<(String, Value)> {
        guard(&self.questions).clone()
    }
}

#[async_trait]
impl CheckFunctions for MemoryChecks {
    async fn invoke(
        &self,
        function: &str,
        question: &Value,
        _timeout: Duration,
    ) -> PortResult<Invoked> {
        guard(&self.questions).push((function.to_owned(), question.clone()));
        guard(&self.answers).get(function).cloned().ok_or_else(|| {
            PortError::new(
                "Invoke",
                PortErrorKind::NotFound,
                format!("Function not found: {function}"),
            )
        })
    }
}
