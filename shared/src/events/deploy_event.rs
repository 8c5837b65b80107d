//! What the `deploy` function is sent, once parsed: one variant per source.

use super::tags::TagChanged;
use crate::domain::codedeploy::CodeDeployEvent;
use crate::domain::deploy::{DeploymentEvent, Push};
use crate::domain::promotion::KnownGood;
use crate::domain::scan::ScanEvent;
use crate::domain::strategy::HookAwaiting;

/// What reaches the `deploy` function.
#[derive(Debug, Clone, PartialEq)]
pub enum DeployEvent {
    Push(Push),
    Deployment(DeploymentEvent),
    /// `ECR Image Scan`: decides the pushes the scan gate holds.
    Scan(ScanEvent),
    /// `CodeDeploy Deployment State-change Notification`: closes the loop of a deployment of a
    /// `CODE_DEPLOY` service.
    CodeDeploy(CodeDeployEvent),
    /// `ECS Hook State Change`, `HOOK_AWAITING_ACTION`: a deployment waits for an approval.
    HookAwaiting(HookAwaiting),
    /// `Tag Change on Resource` of an ECS service whose `deckhand:deploy` changed: the
    /// repository index learns of it before any push or reconcile.
    Tagged(TagChanged),
    /// `Deckhand Known-Good`: an upstream service proved a revision; the services promoted
    /// from it deploy its digests.
    KnownGood(KnownGood),
    /// `Calendar State Change`: a change calendar opened (its held pushes deploy) or closed.
    CalendarChanged(super::calendar::CalendarChanged),
    /// The deploy function's schedule: the held pushes that may go deploy.
    ReleaseHeld,
    /// Well-formed, but not something deckhand acts on.
    NotForDeckhand(String),
}
