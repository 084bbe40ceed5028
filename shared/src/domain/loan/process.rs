//! One loan's credit-life insurance with BIMA: token → calc → sale (with the
//! payment status) → print link (BIMA sends it to the customer) → the print
//! form archived → the bank told. A small total state machine with an outbox.
//!
//! Once BIMA has saved the sale, nothing turns the loan's insurance into
//! `failed`: a print link or print form that cannot be had is noted beside the
//! issued policy. A sale whose outcome is unknown holds the loan for review.

use serde::{Deserialize, Serialize};

use super::bank::LoanIssued;
use crate::domain::bank::{ArchivedFile, ErrorReport};
use crate::domain::bima::api::{Calculation, SaleAccepted};
use crate::domain::outcome::Outcome;
use crate::domain::validation::FieldError;
use crate::domain::workflow::{self, EffectSpec, History, Outbox, Received, Resolution, Workflow};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LoanStage {
    Calculating,
    Selling,
    Linking,
    Archiving,
    /// Done: the policy exists and the bank has its id (and the print link, when there is one).
    Issued,
    /// Done: BIMA saved the sale but its answer named no policy (the seed's bare `200 OK`):
    /// the policy's id and number are pending, and BIMA sends the print link itself.
    Sold,
    /// Done: no policy (a step before the sale was refused).
    Failed,
}

/// What we tell the bank about a loan's insurance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all_fields = "camelCase")]
pub enum LoanNotice {
    /// The policy is issued. Sent again when a print form pending at first is archived later.
    #[serde(rename = "bima.policy-issued")]
    PolicyIssued {
        policy_id: String,
        policy_number: Option<String>,
        premium: String,
        sum_insured: String,
        risks: Vec<String>,
        /// The link BIMA sent the customer, when we asked for it and BIMA answered with it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        print_link: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        print_form: Option<ArchivedFile>,
        /// Why the print link or form is missing, when it is.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        print_form_pending: Option<String>,
    },
    /// BIMA saved the sale; its answer named no policy, so its id and number are pending.
    #[serde(rename = "bima.policy-sold")]
    PolicySold { premium: String, sum_insured: String, risks: Vec<String> },
    #[serde(rename = "bima.failed")]
    Failed {
        error: ErrorReport,
        /// For a refused event: every invalid field.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        problems: Vec<FieldError>,
    },
    /// A call that changes something at BIMA ended without a known outcome; the loan waits
    /// for an operator to say whether it happened.
    #[serde(rename = "bima.needs-review")]
    NeedsReview { effect: String, since_ms: u64, detail: String },
}

impl LoanNotice {
    pub fn kind(&self) -> &'static str {
        match self {
            LoanNotice::PolicyIssued { .. } => "bima.policy-issued",
            LoanNotice::PolicySold { .. } => "bima.policy-sold",
            LoanNotice::Failed { .. } => "bima.failed",
            LoanNotice::NeedsReview { .. } => "bima.needs-review",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoanNotification {
    pub event_id: String,
    /// As the bank sent it (possibly invalid, for a refused event).
    pub loan_number: String,
    #[serde(flatten)]
    pub notice: LoanNotice,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum LoanEffect {
    Calculate,
    Sell,
    RequestPrintLink,
    ArchivePrintForm { url: String },
    Notify(Box<LoanNotification>),
}

impl EffectSpec for LoanEffect {
    fn key(&self) -> String {
        match self {
            LoanEffect::Calculate => "calc".into(),
            LoanEffect::Sell => "sale".into(),
            LoanEffect::RequestPrintLink => "print-link".into(),
            LoanEffect::ArchivePrintForm { .. } => "print-form".into(),
            LoanEffect::Notify(n) => format!("notify-{}", n.event_id),
        }
    }

    /// Only the sale changes something at BIMA that must not happen twice. The premium
    /// calculation changes nothing, the print form is found in S3, the bank de-duplicates
    /// notices by `eventId`; the print link, asked again after an unknown outcome, sends the
    /// customer the link a second time: a nuisance, not money, so it is retried.
    fn changing_call(&self) -> Option<&'static str> {
        match self {
            LoanEffect::Sell => Some("sale"),
            _ => None,
        }
    }

    fn notice(&self) -> Option<(&'static str, &str)> {
        match self {
            LoanEffect::Notify(n) => Some((n.notice.kind(), &n.event_id)),
            _ => None,
        }
    }

    fn moves_money(&self) -> bool {
        matches!(self, LoanEffect::Sell)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum LoanEvent {
    Calculated {
        calculation: Calculation,
    },
    Sold {
        policy: SaleAccepted,
    },
    PrintLinkReady {
        url: String,
    },
    /// BIMA's API asks its print-link service itself (configured so): we do not call it.
    PrintLinkByBima,
    /// `file` is `None` when there was nothing to archive; `problem` says why, if it failed.
    PrintFormArchived {
        file: Option<ArchivedFile>,
        #[serde(default)]
        problem: Option<String>,
    },
    /// An effect failed permanently.
    EffectFailed {
        effect: String,
        error: ErrorReport,
    },
    /// A call that changes something at BIMA ended without a known outcome.
    CallUncertain {
        effect: String,
        at_ms: u64,
        detail: String,
    },
    /// An operator resolved the review of a call whose outcome was unknown.
    ReviewResolved {
        id: String,
        /// The held call and attempt the answer is about: an answer that meets another
        /// hold (the first was lifted meanwhile, and a new attempt held) is not applied to it.
        effect: String,
        #[serde(default)]
        attempt: u32,
        resolution: Resolution,
    },
    /// An operator asks for a print form not archived yet to be tried again.
    RetryArchive {
        id: String,
    },
}

impl LoanEvent {
    pub fn external_id(&self) -> Option<&str> {
        match self {
            LoanEvent::ReviewResolved { id, .. } | LoanEvent::RetryArchive { id } => Some(id),
            _ => None,
        }
    }

    fn cause(&self) -> String {
        match self {
            LoanEvent::Calculated { .. } => "calculated".into(),
            LoanEvent::Sold { .. } => "sold".into(),
            LoanEvent::PrintLinkReady { .. } => "print-link".into(),
            LoanEvent::PrintLinkByBima => "print-link-by-bima".into(),
            LoanEvent::PrintFormArchived { file, problem } => format!(
                "print-form-{}-{}",
                file.as_ref().map_or("", |f| f.sha256.as_str()),
                problem.as_deref().unwrap_or_default()
            ),
            LoanEvent::EffectFailed { effect, .. } => format!("failed-{effect}"),
            LoanEvent::CallUncertain { effect, at_ms, .. } => format!("uncertain-{effect}-{at_ms}"),
            LoanEvent::ReviewResolved { id, .. } | LoanEvent::RetryArchive { id } => id.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoanProcess {
    pub loan: LoanIssued,
    pub stage: LoanStage,
    pub calculation: Option<Calculation>,
    pub policy: Option<SaleAccepted>,
    pub print_link: Option<String>,
    pub print_form: Option<ArchivedFile>,
    /// Why the print link or form is missing from an issued policy.
    #[serde(default)]
    pub print_form_pending: Option<String>,
    pub error: Option<ErrorReport>,
    /// Errors after the sale: kept, never turning the policy into `failed`.
    #[serde(default)]
    pub late_errors: Vec<ErrorReport>,
    pub outbox: Outbox<LoanEffect>,
    /// Ids of operator events already applied.
    #[serde(default)]
    pub applied: Vec<String>,
    #[serde(default)]
    pub history: History,
    #[serde(skip)]
    cause: (String, Vec<&'static str>),
}

impl LoanProcess {
    pub fn start(loan: LoanIssued) -> LoanProcess {
        LoanProcess {
            loan,
            stage: LoanStage::Calculating,
            calculation: None,
            policy: None,
            print_link: None,
            print_form: None,
            print_form_pending: None,
            error: None,
            late_errors: Vec::new(),
            outbox: Outbox::new(vec![LoanEffect::Calculate]),
            applied: Vec::new(),
            history: History::default(),
            cause: Default::default(),
        }
    }

    pub fn is_terminal(&self) -> bool {
        matches!(self.stage, LoanStage::Issued | LoanStage::Sold | LoanStage::Failed)
    }

    fn notify(&mut self, notice: LoanNotice) {
        let kind = notice.kind();
        let nth = self.cause.1.iter().filter(|k| **k == kind).count();
        self.cause.1.push(kind);
        let event_id =
            workflow::notice_id(&format!("loan-{}", self.loan.loan_number), &self.cause.0, kind, nth);
        self.outbox.push(LoanEffect::Notify(Box::new(LoanNotification {
            event_id,
            loan_number: self.loan.loan_number.clone(),
            notice,
        })));
    }

    /// Applies one event; on anything but `Advanced` the process is unchanged.
    pub fn apply(&mut self, event: LoanEvent) -> Outcome {
        if let Some(id) = event.external_id() {
            if self.applied.iter().any(|a| a == id) {
                return Outcome::Duplicate;
            }
        }
        let mut next = self.clone();
        next.cause = (event.cause(), Vec::new());
        let external = event.external_id().map(str::to_owned);
        let outcome = next.transition(event);
        if outcome == Outcome::Advanced {
            next.cause = Default::default();
            next.applied.extend(external);
            *self = next;
        }
        outcome
    }

    fn transition(&mut self, event: LoanEvent) -> Outcome {
        let after_end = matches!(
            (&self.stage, &event),
            (LoanStage::Issued, LoanEvent::PrintFormArchived { .. } | LoanEvent::RetryArchive { .. })
        );
        if self.is_terminal() && !after_end {
            let why = format!("the loan's insurance has ended ({:?})", self.stage);
            return match event {
                // An answer that crossed the end: moot.
                LoanEvent::ReviewResolved { .. } => Outcome::Ignored(format!("{why}: nothing is held")),
                event if event.external_id().is_some() => Outcome::Rejected(why),
                _ => Outcome::Ignored(why),
            };
        }
        match (self.stage, event) {
            (LoanStage::Calculating, LoanEvent::Calculated { calculation }) => {
                self.calculation = Some(calculation);
                self.stage = LoanStage::Selling;
                self.outbox.push(LoanEffect::Sell);
            }
            (LoanStage::Selling, LoanEvent::Sold { policy }) => self.sold(policy),
            (LoanStage::Linking, LoanEvent::PrintLinkReady { url }) => {
                self.print_link = Some(url.clone());
                self.stage = LoanStage::Archiving;
                self.outbox.push(LoanEffect::ArchivePrintForm { url });
            }
            (LoanStage::Linking, LoanEvent::PrintLinkByBima) => self.issue(None),
            (LoanStage::Archiving | LoanStage::Issued, LoanEvent::PrintFormArchived { file, problem }) => {
                self.print_form = file.or(self.print_form.take());
                self.issue(problem);
            }
            (LoanStage::Issued, LoanEvent::RetryArchive { .. }) => match (&self.print_link, &self.print_form)
            {
                (Some(url), None) => {
                    let url = url.clone();
                    self.outbox.push(LoanEffect::ArchivePrintForm { url });
                }
                _ => return Outcome::Ignored("no print form is pending".into()),
            },
            (_, LoanEvent::EffectFailed { error, .. }) if self.policy.is_some() => {
                // BIMA has sold: a print link it refuses, or anything after, leaves the policy issued.
                let problem = format!("{}: {}", error.code, error.message);
                self.late_errors.push(error);
                if self.stage == LoanStage::Linking {
                    self.issue(Some(problem));
                }
            }
            (_, LoanEvent::EffectFailed { error, .. }) => {
                self.stage = LoanStage::Failed;
                self.outbox.drop_work();
                self.error = Some(error.clone());
                self.notify(LoanNotice::Failed { error, problems: Vec::new() });
            }
            (_, LoanEvent::CallUncertain { effect, at_ms, detail }) => {
                if !self.outbox.hold(&effect, at_ms, detail.clone()) {
                    return Outcome::Ignored(format!("{effect} is not pending or a review is open"));
                }
                self.notify(LoanNotice::NeedsReview { effect, since_ms: at_ms, detail });
            }
            (_, LoanEvent::ReviewResolved { effect, attempt, resolution, .. }) => {
                if !self.outbox.holds(&effect, attempt) {
                    return Outcome::Ignored(format!(
                        "the answer is about {effect} attempt {attempt}, which is not held"
                    ));
                }
                return self.resolve(resolution);
            }
            (stage, event) => {
                let name =
                    serde_json::to_value(&event).ok().and_then(|v| v["event"].as_str().map(str::to_owned));
                return Outcome::Ignored(format!(
                    "{} does not apply in stage {stage:?}",
                    name.unwrap_or_default()
                ));
            }
        }
        Outcome::Advanced
    }

    fn sold(&mut self, policy: SaleAccepted) {
        let named = policy.policy_id.is_some();
        self.policy = Some(policy);
        if named {
            self.stage = LoanStage::Linking;
            self.outbox.push(LoanEffect::RequestPrintLink);
            return;
        }
        self.stage = LoanStage::Sold;
        let calc = self.calculation.clone().unwrap_or_default();
        self.notify(LoanNotice::PolicySold {
            premium: calc.premium,
            sum_insured: calc.sum_insured,
            risks: calc.risks,
        });
    }

    /// The policy is issued, with what is known of its print link and form.
    fn issue(&mut self, pending: Option<String>) {
        self.stage = LoanStage::Issued;
        self.print_form_pending = if self.print_form.is_some() { None } else { pending };
        let calc = self.calculation.clone().unwrap_or_default();
        let policy = self.policy.clone().unwrap_or_default();
        self.notify(LoanNotice::PolicyIssued {
            policy_id: policy.policy_id.unwrap_or_default(),
            policy_number: policy.policy_number,
            premium: calc.premium,
            sum_insured: calc.sum_insured,
            risks: calc.risks,
            print_link: self.print_link.clone(),
            print_form: self.print_form.clone(),
            print_form_pending: self.print_form_pending.clone(),
        });
    }

    fn resolve(&mut self, resolution: Resolution) -> Outcome {
        let Some(held) = self.outbox.held().cloned() else {
            // Answered already (a later hook proved it, or another answer came first).
            return Outcome::Ignored("no call is held for review".into());
        };
        let (reference, number) = match resolution {
            Resolution::DidNotHappen => {
                self.outbox.record_resolution(false, "an operator");
                self.outbox.release();
                return Outcome::Advanced;
            }
            Resolution::Happened { reference, number } => (reference, number),
        };
        let LoanEffect::Sell = held else {
            return Outcome::Rejected("only the sale is held for review".into());
        };
        let result = LoanEvent::Sold { policy: SaleAccepted { policy_id: reference, policy_number: number } };
        self.outbox.record_resolution(true, "an operator");
        self.outbox.complete(&held.key(), true);
        match self.transition(result) {
            Outcome::Rejected(why) => Outcome::Rejected(why),
            _ => Outcome::Advanced,
        }
    }
}

impl Workflow for LoanProcess {
    type Event = LoanEvent;
    type Effect = LoanEffect;

    fn apply(&mut self, event: LoanEvent) -> Outcome {
        LoanProcess::apply(self, event)
    }
    fn outbox(&self) -> &Outbox<LoanEffect> {
        &self.outbox
    }
    fn outbox_mut(&mut self) -> &mut Outbox<LoanEffect> {
        &mut self.outbox
    }
    fn history(&self) -> &History {
        &self.history
    }
    fn history_mut(&mut self) -> &mut History {
        &mut self.history
    }
    fn stage_name(&self) -> String {
        workflow::stage_name(&self.stage, self.outbox.review().is_some())
    }
    fn is_terminal(&self) -> bool {
        LoanProcess::is_terminal(self)
    }
    fn received(event: &LoanEvent) -> Option<Received<'_>> {
        let kind = match event {
            LoanEvent::ReviewResolved { .. } => "review-resolved",
            LoanEvent::RetryArchive { .. } => "retry-archive",
            _ => return None,
        };
        Some(Received { from: "operator", kind, id: event.external_id()?, at_ms: 0 })
    }
    /// The sale follows the premium's calculation by itself.
    fn work_ahead(&self) -> Vec<(String, bool)> {
        let mut work = workflow::pending_work(&self.outbox);
        let sale = LoanEffect::Sell.key();
        let calculating = work.iter().any(|(k, _)| *k == LoanEffect::Calculate.key());
        if calculating && !work.iter().any(|(k, _)| *k == sale) {
            work.push((sale, LoanEffect::Sell.moves_money()));
        }
        work
    }
    fn effect_failed(effect: &LoanEffect, error: ErrorReport) -> LoanEvent {
        LoanEvent::EffectFailed { effect: effect.key(), error }
    }
    fn effect_uncertain(effect: &str, at_ms: u64, detail: String) -> LoanEvent {
        LoanEvent::CallUncertain { effect: effect.to_owned(), at_ms, detail }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::loan::bank::LoanBankEvent;

    pub(crate) fn loan() -> LoanIssued {
        let json = include_str!("../../../examples/bank/loan.issued.json");
        let LoanBankEvent::Issued(loan) = serde_json::from_str(json).unwrap();
        *loan
    }

    fn calc() -> Calculation {
        Calculation { premium: "3000".into(), sum_insured: "500000".into(), risks: vec!["death".into()] }
    }

    fn sale(id: Option<&str>) -> SaleAccepted {
        SaleAccepted { policy_id: id.map(str::to_owned), policy_number: id.map(|i| format!("N-{i}")) }
    }

    /// Performs `effect` (completing it) and applies its result.
    fn done(p: &mut LoanProcess, effect: &str, result: LoanEvent) -> Outcome {
        p.outbox.complete(effect, true);
        p.apply(result)
    }

    fn notices(p: &LoanProcess) -> Vec<&LoanNotification> {
        p.outbox
            .pending()
            .iter()
            .filter_map(|e| match e {
                LoanEffect::Notify(n) => Some(n.as_ref()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn the_happy_path_issues_and_tells_the_bank_once() {
        let mut p = LoanProcess::start(loan());
        assert_eq!(p.outbox.pending(), [LoanEffect::Calculate]);
        for (effect, event) in [
            ("calc", LoanEvent::Calculated { calculation: calc() }),
            ("sale", LoanEvent::Sold { policy: sale(Some("77")) }),
            ("print-link", LoanEvent::PrintLinkReady { url: "https://print/77.pdf".into() }),
            ("print-form", LoanEvent::PrintFormArchived { file: None, problem: None }),
        ] {
            assert_eq!(done(&mut p, effect, event), Outcome::Advanced);
        }
        assert_eq!(p.stage, LoanStage::Issued);
        let [n] = notices(&p)[..] else { panic!("{:?}", p.outbox) };
        assert!(n.event_id.starts_with("loan-1234567890-"));
        let LoanNotice::PolicyIssued { policy_id, print_link, premium, .. } = &n.notice else { panic!() };
        assert_eq!(
            (policy_id.as_str(), print_link.as_deref(), premium.as_str()),
            ("77", Some("https://print/77.pdf"), "3000")
        );
    }

    #[test]
    fn a_bare_sale_answer_leaves_the_policy_sold_with_its_number_pending() {
        let mut p = LoanProcess::start(loan());
        done(&mut p, "calc", LoanEvent::Calculated { calculation: calc() });
        done(&mut p, "sale", LoanEvent::Sold { policy: sale(None) });
        assert_eq!(p.stage, LoanStage::Sold);
        assert!(p.is_terminal(), "nothing more to ask BIMA: no print-link call without a policy id");
        let [n] = notices(&p)[..] else { panic!("{:?}", p.outbox) };
        assert_eq!(n.notice.kind(), "bima.policy-sold");
    }

    #[test]
    fn events_out_of_order_are_ignored_and_change_nothing() {
        let mut p = LoanProcess::start(loan());
        let before = p.clone();
        assert!(matches!(p.apply(LoanEvent::PrintLinkReady { url: "x".into() }), Outcome::Ignored(_)));
        assert_eq!(p, before);
    }

    #[test]
    fn a_failure_before_the_sale_ends_the_process_and_later_events_are_ignored() {
        let mut p = LoanProcess::start(loan());
        let error = ErrorReport::integration("bima-http-422", "program unknown");
        p.apply(LoanEvent::EffectFailed { effect: "calc".into(), error });
        assert_eq!(p.stage, LoanStage::Failed);
        assert!(matches!(p.outbox.pending(), [LoanEffect::Notify(_)]), "Calculate dropped, the notice kept");
        assert!(matches!(p.apply(LoanEvent::Calculated { calculation: calc() }), Outcome::Ignored(_)));
    }

    #[test]
    fn after_the_sale_a_refused_print_link_leaves_the_policy_issued() {
        let mut p = LoanProcess::start(loan());
        done(&mut p, "calc", LoanEvent::Calculated { calculation: calc() });
        done(&mut p, "sale", LoanEvent::Sold { policy: sale(Some("77")) });
        p.outbox.complete("print-link", false);
        let error = ErrorReport::integration("bima-http-404", "no such policy");
        p.apply(LoanEvent::EffectFailed { effect: "print-link".into(), error });
        assert_eq!(p.stage, LoanStage::Issued);
        assert!(p.print_form_pending.as_deref().unwrap().contains("no such policy"));
        let [n] = notices(&p)[..] else { panic!() };
        assert_eq!(n.notice.kind(), "bima.policy-issued");
    }

    #[test]
    fn a_sale_with_an_unknown_outcome_is_held_and_an_operator_says_what_happened() {
        let mut p = LoanProcess::start(loan());
        done(&mut p, "calc", LoanEvent::Calculated { calculation: calc() });
        let uncertain =
            LoanEvent::CallUncertain { effect: "sale".into(), at_ms: 5, detail: "timed out".into() };
        assert_eq!(p.apply(uncertain), Outcome::Advanced);
        assert_eq!(p.stage_name(), "needs-review");
        assert_eq!(notices(&p)[0].notice.kind(), "bima.needs-review");
        assert!(p.outbox.next().is_some_and(|e| e.is_notice()), "only the notice goes; the sale waits");
        let mut resent = p.clone();
        resent.apply(LoanEvent::ReviewResolved {
            id: "r".into(),
            effect: "sale".into(),
            attempt: 0,
            resolution: Resolution::DidNotHappen,
        });
        assert!(resent.outbox.pending().contains(&LoanEffect::Sell) && resent.outbox.review().is_none());
        let happened = Resolution::Happened { reference: Some("100234".into()), number: Some("CL-9".into()) };
        assert_eq!(
            p.apply(LoanEvent::ReviewResolved {
                id: "r".into(),
                effect: "sale".into(),
                attempt: 0,
                resolution: happened
            }),
            Outcome::Advanced
        );
        assert_eq!(
            p.policy,
            Some(SaleAccepted { policy_id: Some("100234".into()), policy_number: Some("CL-9".into()) })
        );
        assert_eq!(p.stage, LoanStage::Linking, "the sale is not made again");
    }
}
