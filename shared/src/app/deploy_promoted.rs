//! `Deckhand Known-Good`: an upstream service proved a revision. Checked first (who put the
//! announcement, about which service), then each of its images goes the way of a push, by
//! digest and marked as promoted, so that every gate a push meets applies (ECR's word on the
//! image, quarantine, scan, pause, locks) and only the services promoted from that upstream
//! take it (`domain::promotion`).

use serde_json::Value;
use tracing::{Instrument, info_span, warn};

use super::{DeployError, DeployFunction};
use crate::domain::promotion::{KnownGood, check_announcement, promoted_pushes};
use crate::events::DeployEvent;
use crate::report::Summary;

impl DeployFunction {
    pub(super) async fn on_known_good(
        &self,
        known_good: &KnownGood,
        event: &Value,
    ) -> Result<Summary, DeployError> {
        let home = self.config.home().map(|h| h.account).unwrap_or_default();
        if let Some(reason) =
            check_announcement(known_good, &home, &self.config.promote_from_accounts)
        {
            warn!(%reason, "an announcement that does not count changes nothing");
            return Ok(Summary::ignored(reason));
        }
        // Kept, for an operator's `deckhand promote` and `deckhand status`.
        let upstream = format!("{}/{}", known_good.account, known_good.service);
        if let Err(e) = self
            .ports
            .store
            .remember_announcement(&upstream, event, known_good.at)
            .await
        {
            warn!(error = %e, "could not keep the announcement; it is deployed all the same");
        }
        self.promote(known_good).await
    }

    /// An announcement kept earlier (checked when it came), deployed again by an operator: its
    /// pushes get an id of their own, since the first delivery was handled already.
    pub async fn promote_kept(&self, event: &Value, id: &str) -> Result<Summary, DeployError> {
        let mut event = event.clone();
        event["id"] = Value::String(id.to_owned());
        match crate::events::parse_deploy_event(&event)? {
            DeployEvent::KnownGood(known_good) => self.promote(&known_good).await,
            _ => Ok(Summary::ignored(
                "the kept event is not a known-good announcement",
            )),
        }
    }

    async fn promote(&self, known_good: &KnownGood) -> Result<Summary, DeployError> {
        let mut summaries = Vec::new();
        for push in promoted_pushes(known_good) {
            let span =
                info_span!("promoted", repository = %push.repository.name, digest = %push.digest);
            summaries.push(self.on_push(&push).instrument(span).await?);
        }
        Ok(merged(summaries))
    }
}

/// One summary of the pushes of one announcement: the services each reached, or, when none
/// reached any, the first one's reason.
fn merged(summaries: Vec<Summary>) -> Summary {
    let mut summaries = summaries.into_iter();
    let Some(first) = summaries.next() else {
        return Summary::ignored("the announcement names no image");
    };
    summaries.fold(first, |all, next| {
        if all.services.is_empty() && !next.services.is_empty() {
            next
        } else {
            all.with(next.services)
        }
    })
}
