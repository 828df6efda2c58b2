//! A library loan domain, written by a newcomer from the README and the API docs only.
//!
//! A `Book` is added to the catalogue, lent to a member for 21 days, returned by
//! its borrower (with a fine when late), and may be reserved by one member, to
//! whom alone it can then be lent.

use std::time::Duration;

use factum::prelude::*;
use factum::testkit::{given, given_nothing};
use factum::{Committed, ManualClock, Recorded, SqliteStore};
use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------- the domain

const LOAN_PERIOD: Duration = Duration::from_secs(21 * 24 * 60 * 60);
const DAY: Duration = Duration::from_secs(24 * 60 * 60);
/// The fine for each started day a book comes back late, in cents.
const FINE_PER_DAY_CENTS: u64 = 50;

// Commands

#[derive(Clone, Debug)]
struct AddToCatalogue {
    title: String,
}
#[derive(Clone, Debug)]
struct Lend {
    member: String,
}
#[derive(Clone, Debug)]
struct Return {
    member: String,
}
#[derive(Clone, Debug)]
struct Reserve {
    member: String,
}

// Events

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "library.book_added_to_catalogue")]
struct AddedToCatalogue {
    title: String,
}
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "library.book_lent")]
struct Lent {
    member: String,
    due: Timestamp,
}
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "library.book_returned")]
struct Returned {
    member: String,
}
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "library.late_return_fined")]
struct Fined {
    member: String,
    days_late: u64,
    amount_cents: u64,
}
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "library.book_reserved")]
struct Reserved {
    member: String,
}

// Rejections

#[derive(Debug, PartialEq, thiserror::Error)]
enum LoanError {
    #[error("the book is not in the catalogue")]
    NotInCatalogue,
    #[error("the book is already in the catalogue")]
    AlreadyInCatalogue,
    #[error("the book is already lent to {borrower}")]
    AlreadyLent { borrower: String },
    #[error("the book is not lent")]
    NotLent,
    #[error("only the borrower, {borrower}, can return the book")]
    NotTheBorrower { borrower: String },
    #[error("the book is reserved for {reserver}")]
    ReservedForSomeoneElse { reserver: String },
    #[error("the book is already reserved for {reserver}")]
    AlreadyReserved { reserver: String },
    #[error("{member} already has the book")]
    BorrowerCannotReserve { member: String },
}

// The entity

#[derive(Default, Clone, Debug, PartialEq)]
struct Book {
    title: Option<String>,
    loan: Option<Loan>,
    reserved_for: Option<String>,
    fines_cents: u64,
}

#[derive(Clone, Debug, PartialEq)]
struct Loan {
    borrower: String,
    due: Timestamp,
}

#[entity(name = "book", vis = "pub(crate)")]
impl Book {
    #[handle]
    fn add_to_catalogue(&self, cmd: AddToCatalogue) -> Result<AddedToCatalogue, LoanError> {
        if self.title.is_some() {
            return Err(LoanError::AlreadyInCatalogue);
        }
        Ok(AddedToCatalogue { title: cmd.title })
    }

    #[handle]
    fn lend(&self, cmd: Lend, ctx: &Context) -> Result<Lent, LoanError> {
        if self.title.is_none() {
            return Err(LoanError::NotInCatalogue);
        }
        if let Some(loan) = &self.loan {
            return Err(LoanError::AlreadyLent {
                borrower: loan.borrower.clone(),
            });
        }
        if let Some(reserver) = &self.reserved_for
            && *reserver != cmd.member
        {
            return Err(LoanError::ReservedForSomeoneElse {
                reserver: reserver.clone(),
            });
        }
        Ok(Lent {
            member: cmd.member,
            due: ctx.now() + LOAN_PERIOD,
        })
    }

    #[handle]
    fn give_back(&self, cmd: Return, ctx: &Context) -> Result<(Returned, Option<Fined>), LoanError> {
        let Some(loan) = &self.loan else {
            return Err(LoanError::NotLent);
        };
        if loan.borrower != cmd.member {
            return Err(LoanError::NotTheBorrower {
                borrower: loan.borrower.clone(),
            });
        }
        let late = ctx.now().since(loan.due);
        let fine = (!late.is_zero()).then(|| {
            let days_late = late.as_micros().div_ceil(DAY.as_micros()) as u64;
            Fined {
                member: cmd.member.clone(),
                days_late,
                amount_cents: days_late * FINE_PER_DAY_CENTS,
            }
        });
        Ok((Returned { member: cmd.member }, fine))
    }

    #[handle]
    fn reserve(&self, cmd: Reserve) -> Result<Reserved, LoanError> {
        if self.title.is_none() {
            return Err(LoanError::NotInCatalogue);
        }
        if let Some(reserver) = &self.reserved_for {
            return Err(LoanError::AlreadyReserved {
                reserver: reserver.clone(),
            });
        }
        if self.loan.as_ref().is_some_and(|loan| loan.borrower == cmd.member) {
            return Err(LoanError::BorrowerCannotReserve { member: cmd.member });
        }
        Ok(Reserved { member: cmd.member })
    }

    #[apply]
    fn added_to_catalogue(&mut self, e: &AddedToCatalogue) {
        self.title = Some(e.title.clone());
    }
    #[apply]
    fn lent(&mut self, e: &Lent) {
        self.loan = Some(Loan {
            borrower: e.member.clone(),
            due: e.due,
        });
        if self.reserved_for.as_deref() == Some(e.member.as_str()) {
            self.reserved_for = None;
        }
    }
    #[apply]
    fn returned(&mut self, _e: &Returned) {
        self.loan = None;
    }
    #[apply]
    fn fined(&mut self, e: &Fined) {
        self.fines_cents += e.amount_cents;
    }
    #[apply]
    fn reserved(&mut self, e: &Reserved) {
        self.reserved_for = Some(e.member.clone());
    }
}

impl Book {
    fn borrower(&self) -> Option<&str> {
        self.loan.as_ref().map(|loan| loan.borrower.as_str())
    }
    fn due(&self) -> Option<Timestamp> {
        self.loan.as_ref().map(|loan| loan.due)
    }
}

// ---------------------------------------------------------------- domain words for tests

fn ts(text: &str) -> Timestamp {
    Timestamp::parse(text).unwrap()
}

fn catalogued(title: &str) -> BookEvent {
    AddedToCatalogue { title: title.into() }.into()
}
fn lent_to(member: &str, due: Timestamp) -> BookEvent {
    Lent {
        member: member.into(),
        due,
    }
    .into()
}
fn returned_by(member: &str) -> BookEvent {
    Returned {
        member: member.into(),
    }
    .into()
}
fn reserved_for(member: &str) -> BookEvent {
    Reserved {
        member: member.into(),
    }
    .into()
}
fn fined(member: &str, days_late: u64) -> BookEvent {
    Fined {
        member: member.into(),
        days_late,
        amount_cents: days_late * FINE_PER_DAY_CENTS,
    }
    .into()
}
fn lend(member: &str) -> Lend {
    Lend {
        member: member.into(),
    }
}
fn give_back(member: &str) -> Return {
    Return {
        member: member.into(),
    }
}
fn reserve(member: &str) -> Reserve {
    Reserve {
        member: member.into(),
    }
}

const DUNE: &str = "Dune";
/// Lent on 2026-01-01 (the test kit's default time), so due on 2026-01-22.
const DUE: &str = "2026-01-22T00:00:00Z";

// ---------------------------------------------------------------- given / when / then

#[test]
fn a_new_book_is_added_to_the_catalogue() {
    given_nothing::<Book>()
        .when(AddToCatalogue { title: DUNE.into() })
        .then([catalogued(DUNE)])
        .then_state(|book| assert_eq!(book.title.as_deref(), Some(DUNE)));
}

#[test]
fn a_book_cannot_be_added_to_the_catalogue_twice() {
    given::<Book>([catalogued(DUNE)])
        .when(AddToCatalogue { title: DUNE.into() })
        .then_rejected(LoanError::AlreadyInCatalogue);
}

#[test]
fn a_book_not_in_the_catalogue_cannot_be_lent() {
    given_nothing::<Book>()
        .when(lend("ada"))
        .then_rejected(LoanError::NotInCatalogue);
}

#[test]
fn a_loan_is_due_21_days_after_it_was_made() {
    given::<Book>([catalogued(DUNE)])
        .at(ts("2026-03-10T14:30:00Z"))
        .when(lend("ada"))
        .then([lent_to("ada", ts("2026-03-31T14:30:00Z"))])
        .then_state(|book| {
            assert_eq!(book.borrower(), Some("ada"));
            assert_eq!(book.due(), Some(ts("2026-03-31T14:30:00Z")));
        });
}

#[test]
fn a_lent_book_cannot_be_lent_again() {
    given::<Book>([catalogued(DUNE), lent_to("ada", ts(DUE))])
        .when(lend("bob"))
        .then_rejected(LoanError::AlreadyLent {
            borrower: "ada".into(),
        })
        .then_state(|book| assert_eq!(book.borrower(), Some("ada")));
}

#[test]
fn a_lent_book_cannot_be_lent_again_even_to_its_borrower() {
    given::<Book>([catalogued(DUNE), lent_to("ada", ts(DUE))])
        .when(lend("ada"))
        .then_rejected(LoanError::AlreadyLent {
            borrower: "ada".into(),
        });
}

#[test]
fn only_the_borrower_can_return_a_book() {
    given::<Book>([catalogued(DUNE), lent_to("ada", ts(DUE))])
        .when(give_back("bob"))
        .then_rejected(LoanError::NotTheBorrower {
            borrower: "ada".into(),
        })
        .then_state(|book| assert_eq!(book.borrower(), Some("ada")));
}

#[test]
fn a_book_on_the_shelf_cannot_be_returned() {
    given::<Book>([catalogued(DUNE)])
        .when(give_back("ada"))
        .then_rejected(LoanError::NotLent);
}

#[test]
fn a_book_returned_on_time_is_back_on_the_shelf_without_a_fine() {
    given::<Book>([catalogued(DUNE), lent_to("ada", ts(DUE))])
        .at(ts("2026-01-15T10:00:00Z"))
        .when(give_back("ada"))
        .then([returned_by("ada")])
        .then_state(|book| {
            assert_eq!(book.borrower(), None);
            assert_eq!(book.fines_cents, 0);
        });
}

#[test]
fn a_book_returned_on_its_due_date_is_not_late() {
    given::<Book>([catalogued(DUNE), lent_to("ada", ts(DUE))])
        .at(ts(DUE))
        .when(give_back("ada"))
        .then([returned_by("ada")]);
}

#[test]
fn a_book_returned_late_is_returned_and_the_borrower_fined_per_started_day() {
    // Three days and one hour late: four started days.
    given::<Book>([catalogued(DUNE), lent_to("ada", ts(DUE))])
        .at(ts("2026-01-25T01:00:00Z"))
        .when(give_back("ada"))
        .then([returned_by("ada"), fined("ada", 4)])
        .then_state(|book| {
            assert_eq!(book.borrower(), None);
            assert_eq!(book.fines_cents, 4 * FINE_PER_DAY_CENTS);
        });
}

#[test]
fn a_book_can_be_reserved_while_it_is_lent() {
    given::<Book>([catalogued(DUNE), lent_to("ada", ts(DUE))])
        .when(reserve("bob"))
        .then([reserved_for("bob")])
        .then_state(|book| assert_eq!(book.reserved_for.as_deref(), Some("bob")));
}

#[test]
fn a_borrower_cannot_reserve_the_book_they_have() {
    given::<Book>([catalogued(DUNE), lent_to("ada", ts(DUE))])
        .when(reserve("ada"))
        .then_rejected(LoanError::BorrowerCannotReserve { member: "ada".into() });
}

#[test]
fn a_reserved_book_cannot_be_reserved_by_another_member() {
    given::<Book>([catalogued(DUNE), reserved_for("bob")])
        .when(reserve("cyd"))
        .then_rejected(LoanError::AlreadyReserved {
            reserver: "bob".into(),
        });
}

#[test]
fn a_reserved_book_cannot_be_lent_to_anyone_but_the_reserver() {
    given::<Book>([catalogued(DUNE), lent_to("ada", ts(DUE)), returned_by("ada")])
        .and(reserved_for("bob"))
        .when(lend("cyd"))
        .then_rejected(LoanError::ReservedForSomeoneElse {
            reserver: "bob".into(),
        });
}

#[test]
fn a_reserved_book_is_lent_to_the_reserver_and_the_reservation_is_fulfilled() {
    given::<Book>([catalogued(DUNE), lent_to("ada", ts(DUE)), reserved_for("bob")])
        .and(returned_by("ada"))
        .at(ts("2026-02-01T09:00:00Z"))
        .when(lend("bob"))
        .then([lent_to("bob", ts("2026-02-22T09:00:00Z"))])
        .then_state(|book| {
            assert_eq!(book.borrower(), Some("bob"));
            assert_eq!(book.reserved_for, None);
        });
}

// ---------------------------------------------------------------- through the runtime

type Rejection = CommandError<LoanError>;

fn rejection(result: Result<Committed<Book>, Rejection>) -> LoanError {
    match result {
        Err(CommandError::Rejected(e)) => e,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

fn events_of(history: &[Recorded<BookEvent>]) -> Vec<BookEvent> {
    history.iter().map(|r| r.event.clone()).collect()
}

#[tokio::test]
async fn in_memory_a_lent_book_is_refused_to_another_member_and_nothing_is_stored() {
    let app = App::in_memory();
    let book = app.entity::<Book>("isbn-0441013597");
    book.send(AddToCatalogue { title: DUNE.into() }).await.unwrap();
    book.send(lend("ada")).await.unwrap();
    assert_eq!(book.version().await.unwrap(), 2);

    let refused = book.send(lend("bob")).await;
    assert_eq!(
        rejection(refused),
        LoanError::AlreadyLent {
            borrower: "ada".into()
        }
    );

    assert_eq!(book.version().await.unwrap(), 2, "a rejection is never stored");
    assert_eq!(book.state().await.unwrap().borrower(), Some("ada"));
}

#[tokio::test]
async fn in_memory_only_the_borrower_can_return_and_the_book_goes_back_on_the_shelf() {
    let app = App::in_memory();
    let book = app.entity::<Book>("isbn-0441013597");
    book.send(AddToCatalogue { title: DUNE.into() }).await.unwrap();
    book.send(lend("ada")).await.unwrap();

    let refused = book.send(give_back("bob")).await;
    assert_eq!(
        rejection(refused),
        LoanError::NotTheBorrower {
            borrower: "ada".into()
        }
    );
    assert_eq!(book.state().await.unwrap().borrower(), Some("ada"));

    let committed = book.send(give_back("ada")).await.unwrap();
    assert_eq!(
        committed.events,
        vec![returned_by("ada")],
        "returned on time: no fine"
    );
    assert_eq!(committed.version, 3);
    assert_eq!(book.state().await.unwrap().borrower(), None);
}

#[tokio::test]
async fn in_memory_a_reserved_book_goes_only_to_the_reserver() {
    let app = App::in_memory();
    let book = app.entity::<Book>("isbn-0441013597");
    book.send(AddToCatalogue { title: DUNE.into() }).await.unwrap();
    book.send(lend("ada")).await.unwrap();
    book.send(reserve("bob")).await.unwrap();
    book.send(give_back("ada")).await.unwrap();

    let refused = book.send(lend("cyd")).await;
    assert_eq!(
        rejection(refused),
        LoanError::ReservedForSomeoneElse {
            reserver: "bob".into()
        }
    );

    book.send(lend("bob")).await.unwrap();
    let state = book.state().await.unwrap();
    assert_eq!(state.borrower(), Some("bob"));
    assert_eq!(state.reserved_for, None);
}

#[tokio::test]
async fn a_late_return_records_the_return_and_the_fine_in_the_audit_trail() {
    let lent_at = ts("2026-05-01T12:00:00Z");
    let clock = ManualClock::new(lent_at);
    let app = App::builder().clock(clock.clone()).build();
    let book = app.entity::<Book>("isbn-0441013597");

    book.send(AddToCatalogue { title: DUNE.into() }).await.unwrap();
    let lent = book.send(lend("ada")).await.unwrap();
    let due = lent_at + LOAN_PERIOD;
    assert_eq!(lent.events, vec![lent_to("ada", due)]);
    assert_eq!(due, ts("2026-05-22T12:00:00Z"));

    clock.set(due + DAY * 2 + Duration::from_secs(60));
    let returned = book.send(give_back("ada")).await.unwrap();
    assert_eq!(returned.events, vec![returned_by("ada"), fined("ada", 3)]);
    assert_eq!(returned.version, 4);

    let history = book.history().await.unwrap();
    assert_eq!(
        events_of(&history),
        vec![
            catalogued(DUNE),
            lent_to("ada", due),
            returned_by("ada"),
            fined("ada", 3)
        ]
    );
    assert_eq!(
        history.iter().map(|r| r.version).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    // The return and its fine come from one command, at one time.
    let (ret, fine) = (&history[2].metadata, &history[3].metadata);
    assert_eq!(ret.command_id, fine.command_id);
    assert_eq!(ret.recorded_at, due + DAY * 2 + Duration::from_secs(60));
    assert_eq!(fine.recorded_at, ret.recorded_at);
    assert_eq!(history[1].metadata.recorded_at, lent_at);
    assert_ne!(history[1].metadata.command_id, ret.command_id);
    assert_eq!(book.state().await.unwrap().fines_cents, 3 * FINE_PER_DAY_CENTS);
}

#[tokio::test]
async fn sqlite_a_second_app_on_the_same_file_sees_the_loans_of_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("library.db");

    {
        let app = App::open(&path).await.unwrap();
        let book = app.entity::<Book>("isbn-0441013597");
        book.send(AddToCatalogue { title: DUNE.into() }).await.unwrap();
        book.send(lend("ada")).await.unwrap();
        book.send(reserve("bob")).await.unwrap();
    }

    let reopened = App::open(&path).await.unwrap();
    let book = reopened.entity::<Book>("isbn-0441013597");
    let state = book.state().await.unwrap();
    assert_eq!(state.title.as_deref(), Some(DUNE));
    assert_eq!(state.borrower(), Some("ada"));
    assert_eq!(state.reserved_for.as_deref(), Some("bob"));
    assert_eq!(book.version().await.unwrap(), 3);
    // The rules hold on the reloaded state.
    assert_eq!(
        rejection(book.send(lend("cyd")).await),
        LoanError::AlreadyLent {
            borrower: "ada".into()
        }
    );
}

#[tokio::test]
async fn sqlite_two_open_apps_on_one_file_see_each_others_commands() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("library.db");
    let front_desk = App::open(&path).await.unwrap();
    let self_service = App::open(&path).await.unwrap();

    let at_desk = front_desk.entity::<Book>("isbn-0441013597");
    let at_kiosk = self_service.entity::<Book>("isbn-0441013597");

    at_desk.send(AddToCatalogue { title: DUNE.into() }).await.unwrap();
    // The kiosk loads the book only now, after the desk catalogued it.
    at_kiosk.send(lend("ada")).await.unwrap();

    // The desk had the book cached; it must still see the kiosk's loan.
    assert_eq!(at_desk.state().await.unwrap().borrower(), Some("ada"));
    assert_eq!(
        rejection(at_desk.send(lend("bob")).await),
        LoanError::AlreadyLent {
            borrower: "ada".into()
        }
    );

    at_desk.send(give_back("ada")).await.unwrap();
    assert_eq!(at_kiosk.state().await.unwrap().borrower(), None);
    assert_eq!(
        events_of(&at_kiosk.history().await.unwrap()),
        events_of(&at_desk.history().await.unwrap())
    );
    assert_eq!(at_kiosk.version().await.unwrap(), 3);
}

#[tokio::test]
async fn sqlite_a_late_return_and_its_fine_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("library.db");
    let lent_at = ts("2026-05-01T12:00:00Z");
    let due = lent_at + LOAN_PERIOD;

    {
        // App::open has the wall clock; a chosen clock needs the builder.
        let clock = ManualClock::new(lent_at);
        let store = SqliteStore::open(&path).unwrap();
        let app = App::builder().store(store).clock(clock.clone()).build();
        let book = app.entity::<Book>("isbn-0441013597");
        book.send(AddToCatalogue { title: DUNE.into() }).await.unwrap();
        book.send(lend("ada")).await.unwrap();
        clock.set(due + DAY * 10);
        let returned = book.send(give_back("ada")).await.unwrap();
        assert_eq!(returned.events, vec![returned_by("ada"), fined("ada", 10)]);
    }

    let app = App::open(&path).await.unwrap();
    let book = app.entity::<Book>("isbn-0441013597");
    let history = book.history().await.unwrap();
    assert_eq!(
        events_of(&history),
        vec![
            catalogued(DUNE),
            lent_to("ada", due),
            returned_by("ada"),
            fined("ada", 10)
        ]
    );
    assert_eq!(history[3].metadata.recorded_at, due + DAY * 10);
    let state = book.state().await.unwrap();
    assert_eq!(state.borrower(), None);
    assert_eq!(state.fines_cents, 10 * FINE_PER_DAY_CENTS);
}
