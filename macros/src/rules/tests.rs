//! Each forbidden item in each syntactic form, each site's message, and the
//! legitimate code that must pass.

use super::{Site, check_body, check_event, check_impl};
use crate::ctxt::Ctxt;

/// The messages `check_body` reports for `body`, in order.
fn errors(body: &syn::Block, site: Site) -> Vec<String> {
    let cx = Ctxt::new();
    check_body(body, site, &cx);
    match cx.check() {
        Ok(()) => Vec::new(),
        Err(err) => err.into_iter().map(|e| e.to_string()).collect(),
    }
}

fn errors_in(body: &str, site: Site) -> Vec<String> {
    let block: syn::Block = syn::parse_str(&format!("{{ {body} }}")).expect("test body parses");
    errors(&block, site)
}

/// The messages `check_impl` reports for `item`, with the methods named in
/// `roots` as handlers of their sites.
fn impl_errors(item: &syn::ItemImpl, roots: &[(&str, Site)]) -> Vec<String> {
    let roots: Vec<(&syn::ImplItemFn, Site)> = roots
        .iter()
        .map(|(name, site)| {
            let method = item
                .items
                .iter()
                .find_map(|i| match i {
                    syn::ImplItem::Fn(f) if f.sig.ident == name => Some(f),
                    _ => None,
                })
                .expect("root is a method of the block");
            (method, *site)
        })
        .collect();
    let cx = Ctxt::new();
    check_impl(item, &roots, &cx);
    match cx.check() {
        Ok(()) => Vec::new(),
        Err(err) => err.into_iter().map(|e| e.to_string()).collect(),
    }
}

/// The head of each message: what was seen, where, through which chain.
fn heads(messages: &[String]) -> Vec<&str> {
    messages
        .iter()
        .map(|m| m.split(';').next().unwrap_or_default())
        .collect()
}

fn event_errors(input: syn::DeriveInput, fact: Option<&str>) -> Vec<String> {
    let fact = fact.map(|f| syn::LitStr::new(f, proc_macro2::Span::call_site()));
    let cx = Ctxt::new();
    check_event(&input, fact.as_ref(), &cx);
    match cx.check() {
        Ok(()) => Vec::new(),
        Err(err) => err.into_iter().map(|e| e.to_string()).collect(),
    }
}

/// The forms every forbidden path is tried in: `PATH` is the path.
const FORMS: &[&str] = &[
    "let _x = PATH();",                                       // short or full, called
    "let _f = PATH;",                                         // as a value
    "let _v = (0..3).map(|_| PATH()).count();",               // in a closure
    "let _s = format!(\"{:?}\", PATH());",                    // in a macro argument that parses
    "let _v = vec![PATH(); 3];",                              // in macro tokens that do not parse
    "match 1 { 1 => { let _ = async { PATH() }; } _ => {} }", // match arm, async block
    "let _x = Some(1).map(|_| { { PATH() } });",              // nested blocks in a closure argument
];

/// Asserts that `path` in every form gives exactly one error, starting with `starts`.
fn assert_flagged_in_every_form(path: &str, site: Site, starts: &str, contains: &[&str]) {
    for form in FORMS {
        let body = form.replace("PATH", path);
        let found = errors_in(&body, site);
        assert_eq!(found.len(), 1, "`{body}` in {site:?}: {found:#?}");
        assert!(found[0].starts_with(starts), "`{body}` in {site:?}: {}", found[0]);
        for part in contains {
            assert!(
                found[0].contains(part),
                "`{body}` in {site:?}: {} lacks {part}",
                found[0]
            );
        }
    }
}

// ---- wall clock ------------------------------------------------------------

const CLOCK_READS: &[(&str, &str)] = &[
    ("SystemTime::now", "SystemTime::now"),
    ("::std::time::SystemTime::now", "std::time::SystemTime::now"),
    ("Instant::now", "Instant::now"),
    ("std::time::Instant::now", "std::time::Instant::now"),
    ("tokio::time::Instant::now", "tokio::time::Instant::now"),
    ("std::time::SystemTime::elapsed", "std::time::SystemTime::elapsed"),
    ("Instant::elapsed", "Instant::elapsed"),
    ("Utc::now", "Utc::now"),
    ("chrono::Utc::now", "chrono::Utc::now"),
    ("Local::now", "Local::now"),
    ("chrono::Local::now", "chrono::Local::now"),
    ("OffsetDateTime::now_utc", "OffsetDateTime::now_utc"),
    (
        "time::OffsetDateTime::now_local",
        "time::OffsetDateTime::now_local",
    ),
    ("Timestamp::now", "Timestamp::now"),
    ("jiff::Timestamp::now", "jiff::Timestamp::now"),
    ("factum::Timestamp::wall_clock", "factum::Timestamp::wall_clock"),
    ("Zoned::now", "Zoned::now"),
    ("jiff::Zoned::now", "jiff::Zoned::now"),
];

#[test]
fn clock_reads_are_flagged_in_every_form_and_site() {
    for (path, shown) in CLOCK_READS {
        assert_flagged_in_every_form(
            path,
            Site::Handle,
            &format!("`{shown}` reads the wall clock in a #[handle] body"),
            &["(rule: never read the wall clock)", "Use `ctx.now()` instead."],
        );
        assert_flagged_in_every_form(
            path,
            Site::Apply,
            &format!("`{shown}` reads the wall clock in an #[apply] body"),
            &["The time must come from the event"],
        );
        assert_flagged_in_every_form(
            path,
            Site::ViewOn,
            &format!("`{shown}` reads the wall clock in a view's #[on] body"),
            &["`meta.recorded_at`"],
        );
        assert_flagged_in_every_form(
            path,
            Site::WorkflowDecision,
            &format!("`{shown}` reads the wall clock in a workflow decision"),
            &["`ctx.now()`"],
        );
    }
}

#[test]
fn the_clock_message_names_rule_reason_and_alternative() {
    let body: syn::Block = syn::parse_quote!({
        let at = std::time::SystemTime::now();
    });
    assert_eq!(
        errors(&body, Site::Handle),
        [
            "`std::time::SystemTime::now` reads the wall clock in a #[handle] body; event-sourced state \
          must not depend on when it is replayed (rule: never read the wall clock). Use `ctx.now()` instead."
        ]
    );
    assert_eq!(
        errors(&body, Site::Apply),
        [
            "`std::time::SystemTime::now` reads the wall clock in an #[apply] body; event-sourced state \
          must not depend on when it is replayed (rule: never read the wall clock). The time must come \
          from the event: record `ctx.now()` in it in #[handle]."
        ]
    );
}

#[test]
fn sleeping_is_flagged_as_waiting_on_the_clock() {
    for path in [
        "std::thread::sleep",
        "thread::sleep",
        "tokio::time::sleep",
        "time::sleep_until",
    ] {
        for site in [Site::Handle, Site::Apply] {
            let found = errors_in(&format!("{path}(d);"), site);
            assert_eq!(found.len(), 1, "{path}: {found:?}");
            assert!(found[0].contains("waits on the wall clock"), "{}", found[0]);
            assert!(found[0].contains("when the time comes"), "{}", found[0]);
        }
    }
}

#[test]
fn unix_epoch_elapsed_is_flagged_as_a_method_and_inside_macro_tokens() {
    for body in [
        "let _ = UNIX_EPOCH.elapsed();",
        "let _ = std::time::UNIX_EPOCH.elapsed();",
        "let _ = SystemTime::UNIX_EPOCH.elapsed().unwrap();",
        "let _ = (0..1).map(|_| UNIX_EPOCH.elapsed());",
        "let _ = vec![UNIX_EPOCH.elapsed(); 2];",
        "assert!(UNIX_EPOCH.elapsed().is_ok(), \"x\");",
    ] {
        let found = errors_in(body, Site::Apply);
        assert_eq!(found.len(), 1, "{body}: {found:?}");
        assert!(
            found[0].contains("UNIX_EPOCH.elapsed()` reads the wall clock"),
            "{}",
            found[0]
        );
    }
    // `elapsed` on a value the user holds is not the wall clock the check can name.
    assert!(errors_in("let _ = started.elapsed();", Site::Handle).is_empty());
    // Subtracting from the epoch is arithmetic, not a clock read.
    assert!(errors_in("let _ = UNIX_EPOCH + d;", Site::Handle).is_empty());
}

#[test]
fn qualified_self_paths_are_read_through() {
    let found = errors_in("let _ = <SystemTime>::now();", Site::Handle);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("`SystemTime::now` reads the wall clock"));
}

// ---- randomness ------------------------------------------------------------

const RANDOM_SOURCES: &[(&str, &str)] = &[
    ("rand::random", "rand::random"),
    ("::rand::random::<u64>", "rand::random"),
    ("thread_rng", "thread_rng"),
    ("rand::thread_rng", "rand::thread_rng"),
    ("rand::rng", "rand::rng"),
    ("OsRng::default", "OsRng::default"),
    ("rand::rngs::OsRng::default", "rand::rngs::OsRng::default"),
    ("ThreadRng::default", "ThreadRng::default"),
    ("StdRng::from_entropy", "StdRng::from_entropy"),
    ("SmallRng::from_os_rng", "SmallRng::from_os_rng"),
    ("getrandom::u64", "getrandom::u64"),
    ("getrandom", "getrandom"),
    ("fastrand::u64", "fastrand::u64"),
    ("::fastrand::bool", "fastrand::bool"),
    ("Uuid::new_v4", "Uuid::new_v4"),
    ("uuid::Uuid::new_v4", "uuid::Uuid::new_v4"),
    ("Uuid::now_v1", "Uuid::now_v1"),
    ("Uuid::now_v6", "Uuid::now_v6"),
    ("Uuid::now_v7", "Uuid::now_v7"),
    ("Uuid::new_v7", "Uuid::new_v7"),
    ("Ulid::new", "Ulid::new"),
    ("ulid::Ulid::generate", "ulid::Ulid::generate"),
];

#[test]
fn random_sources_are_flagged_in_every_form_and_site() {
    for (path, shown) in RANDOM_SOURCES {
        assert_flagged_in_every_form(
            path,
            Site::Handle,
            &format!("`{shown}` draws random numbers in a #[handle] body"),
            &[
                "(rule: never use random numbers to produce state)",
                "Use `ctx.random_u64()` or `ctx.uuid()` instead",
            ],
        );
        assert_flagged_in_every_form(
            path,
            Site::Apply,
            &format!("`{shown}` draws random numbers in an #[apply] body"),
            &["The value must come from the event"],
        );
    }
}

#[test]
fn an_rng_type_used_as_a_value_is_flagged() {
    for body in [
        "let n = OsRng.next_u64();",
        "let n = rand::rngs::OsRng.next_u64();",
        "let n = (0..1).map(|_| OsRng.next_u32()).sum::<u32>();",
    ] {
        let found = errors_in(body, Site::Handle);
        assert_eq!(found.len(), 1, "{body}: {found:?}");
        assert!(found[0].contains("OsRng` draws random numbers"), "{}", found[0]);
    }
}

// ---- side effects ----------------------------------------------------------

#[test]
fn environment_process_and_spawning_are_flagged_in_every_site() {
    for (path, does) in [
        ("std::env::var", "reads the process environment"),
        ("::std::env::args", "reads the process environment"),
        ("std::process::exit", "controls processes"),
        ("std::process::Command::new", "controls processes"),
        ("tokio::process::Command::new", "controls processes"),
        ("std::thread::spawn", "spawns a thread"),
        ("thread::spawn", "spawns a thread"),
        ("tokio::spawn", "spawns a task"),
        ("tokio::task::spawn", "spawns a task"),
        ("tokio::task::spawn_blocking", "spawns a task"),
        ("spawn_blocking", "spawns a task"),
    ] {
        for site in [Site::Handle, Site::Apply, Site::ViewOn, Site::WorkflowDecision] {
            assert_flagged_in_every_form(
                path,
                site,
                &format!("`{}` {does} in {}", path.trim_start_matches("::"), site.body()),
                &[
                    "(rule: never produce side effects when processing events)",
                    if site == Site::WorkflowDecision {
                        "Side effects belong in a `#[step]`"
                    } else {
                        "Side effects belong in the code that sends the command"
                    },
                ],
            );
        }
    }
}

#[test]
fn files_and_network_are_flagged_where_events_are_folded_only() {
    for (path, does) in [
        ("std::fs::read_to_string", "touches the file system"),
        ("::std::fs::File::open", "touches the file system"),
        ("tokio::fs::read", "touches the file system"),
        ("std::net::TcpStream::connect", "uses the network"),
        ("tokio::net::TcpStream::connect", "uses the network"),
        ("std::io::stdout", "writes to the terminal"),
    ] {
        for site in [Site::Apply, Site::ViewOn, Site::WorkflowDecision] {
            assert_flagged_in_every_form(
                path,
                site,
                &format!("`{}` {does} in {}", path.trim_start_matches("::"), site.body()),
                &["so the effect would repeat"],
            );
        }
        assert!(
            errors_in(&format!("let _ = {path}(x);"), Site::Handle).is_empty(),
            "{path}"
        );
    }
}

#[test]
fn printing_is_flagged_where_events_are_folded_only() {
    for mac in ["println", "print", "eprintln", "eprint", "dbg", "std::println"] {
        for body in [
            format!("{mac}!(\"{{}}\", self.balance);"),
            format!("let _ = {mac}!(\"x\");"),
            format!("let f = || {{ {mac}!(\"x\") }};"),
            format!("let _ = vec![{mac}!(\"x\"); 1];"),
        ] {
            let found = errors_in(&body, Site::Apply);
            assert_eq!(found.len(), 1, "{body}: {found:?}");
            assert!(
                found[0].starts_with(&format!("`{mac}!` prints in an #[apply] body")),
                "{}",
                found[0]
            );
            assert!(errors_in(&body, Site::Handle).is_empty(), "{body}");
        }
    }
}

#[test]
fn unsafe_blocks_are_flagged_where_events_are_folded_only() {
    for body in [
        "let n = unsafe { COUNTER };",
        "let f = || unsafe { COUNTER += 1 };",
        "let _ = vec![unsafe { COUNTER }; 2];",
    ] {
        let found = errors_in(body, Site::ViewOn);
        assert_eq!(found.len(), 1, "{body}: {found:?}");
        assert!(
            found[0].starts_with("`unsafe` block (which can reach `static mut` state, FFI and raw memory) in a view's #[on] body;"),
            "{}",
            found[0]
        );
        assert!(errors_in(body, Site::Handle).is_empty(), "{body}");
    }
}

// ---- the walk --------------------------------------------------------------

#[test]
fn every_violation_is_reported_not_only_the_first() {
    let body: syn::Block = syn::parse_quote!({
        let at = SystemTime::now();
        let id = Uuid::new_v4();
        println!("{:?} {:?}", at, id);
        if std::env::var("X").is_ok() {
            let _ = std::fs::read("f");
        }
    });
    let found = errors(&body, Site::Apply);
    let starts: Vec<&str> = found
        .iter()
        .map(|m| m.split(" in ").next().unwrap_or_default())
        .collect();
    assert_eq!(
        starts,
        [
            "`SystemTime::now` reads the wall clock",
            "`Uuid::new_v4` draws random numbers",
            "`println!` prints",
            "`std::env::var` reads the process environment",
            "`std::fs::read` touches the file system",
        ]
    );
}

#[test]
fn macro_arguments_are_walked_in_every_common_macro() {
    for body in [
        "assert!(SystemTime::now() > x, \"late\");",
        "assert_eq!(x, SystemTime::now());",
        "write!(f, \"{}\", SystemTime::now()).unwrap();",
        "let _ = format!(\"{t:?}\", t = SystemTime::now());",
        "let _ = vec![1, 2].iter().map(|_| format!(\"{:?}\", SystemTime::now()));",
        "let _ = matches!(SystemTime::now(), _);",
        "let _ = vec![SystemTime::now()];",
        "let _ = some_crate::custom!(SystemTime::now() => 1; 2);",
        "let _ = outer!(inner!(SystemTime::now()));",
    ] {
        let found = errors_in(body, Site::Handle);
        assert_eq!(found.len(), 1, "{body}: {found:?}");
        assert!(
            found[0].starts_with("`SystemTime::now` reads the wall clock"),
            "{}",
            found[0]
        );
    }
}

#[test]
fn nested_items_are_not_walked() {
    let body: syn::Block = syn::parse_quote!({
        fn helper() -> std::time::SystemTime {
            std::time::SystemTime::now()
        }
        struct Local;
        impl Local {
            fn now() {}
        }
        mod inner {
            pub fn f() {
                println!("{:?}", std::env::var("X"));
            }
        }
        let _ = helper();
    });
    assert_eq!(errors(&body, Site::Apply), Vec::<String>::new());
}

#[test]
fn legitimate_code_is_not_flagged() {
    let body: syn::Block = syn::parse_quote!({
        let at = ctx.now();
        let id = ctx.uuid();
        let n = ctx.random_u64();
        let stamp = self.now;
        let now = 3;
        let random = now + 1;
        let t = clock.now();
        let r = rng.random();
        let s = "SystemTime::now() and rand::random() and std::fs::read";
        let formatted = format!("{now} {random} SystemTime::now {}", s);
        // SystemTime::now() in a comment
        let later = || 5;
        let now = || later();
        let v = now();
        let random = |x: u64| x;
        let w = random(1);
        let elapsed = at.since(e.at);
        let epoch = UNIX_EPOCH;
        let d = std::time::Duration::from_secs(1);
        let id = uuid::Uuid::from_u128(n as u128);
        let m = Instant::from(e.at);
        let ts = Timestamp::parse("2020-01-01T00:00:00Z");
        let fs = self.fs.clone();
        let envs = e.env.process;
        let o = my::timestamp::now();
        let x = vec![now(); 2];
        self.handle(e.now);
    });
    for site in [Site::Handle, Site::Apply, Site::ViewOn, Site::WorkflowDecision] {
        assert_eq!(errors(&body, site), Vec::<String>::new(), "{site:?}");
    }
}

#[test]
fn method_names_in_macro_tokens_are_not_paths() {
    for body in [
        "let _ = vec![ctx.now(); 2];",
        "let _ = vec![self.thread_rng; 2];",
        "let _ = vec![x.getrandom(); 2];",
    ] {
        assert_eq!(errors_in(body, Site::Apply), Vec::<String>::new(), "{body}");
    }
}

// ---- helpers of the same impl block ----------------------------------------

#[test]
fn a_helper_a_handler_calls_is_judged_at_the_call_with_the_chain() {
    let item: syn::ItemImpl = syn::parse_quote! {
        impl Account {
            fn deposit(&self, cmd: Deposit) -> Deposited {
                Deposited { at: self.stamp() }
            }
            fn stamp(&self) -> u64 {
                SystemTime::now().elapsed()
            }
        }
    };
    assert_eq!(
        impl_errors(&item, &[("deposit", Site::Handle)]),
        [
            "`SystemTime::now` reads the wall clock in a helper of a #[handle] body \
             (`deposit → self.stamp() → SystemTime::now()`); event-sourced state must not depend on \
             when it is replayed (rule: never read the wall clock). Use `ctx.now()` instead."
        ]
    );
}

#[test]
fn every_way_of_calling_an_own_method_is_followed() {
    let item: syn::ItemImpl = syn::parse_quote! {
        impl Account {
            fn deposit(&self, cmd: Deposit) -> Deposited {
                let a = self.stamp();
                let b = Self::roll();
                let c = <Self>::env_home();
                let d = Account::spawn_it(self);
                let f = Self::roll;
                Deposited {}
            }
            fn stamp(&self) -> u64 { Instant::now() }
            fn roll() -> u64 { rand::random() }
            fn env_home() -> String { std::env::var("HOME") }
            fn spawn_it(&self) { std::thread::spawn(|| {}); }
        }
    };
    assert_eq!(
        heads(&impl_errors(&item, &[("deposit", Site::Handle)])),
        [
            "`Instant::now` reads the wall clock in a helper of a #[handle] body (`deposit → self.stamp() → Instant::now()`)",
            "`rand::random` draws random numbers in a helper of a #[handle] body (`deposit → Self::roll() → rand::random()`)",
            "`std::env::var` reads the process environment in a helper of a #[handle] body (`deposit → <Self>::env_home() → std::env::var()`)",
            "`std::thread::spawn` spawns a thread in a helper of a #[handle] body (`deposit → Account::spawn_it() → std::thread::spawn()`)",
        ]
    );
}

#[test]
fn chains_of_helpers_are_followed_once_through_cycles_and_diamonds() {
    let item: syn::ItemImpl = syn::parse_quote! {
        impl Account {
            fn opened(&mut self, e: &Opened) {
                self.a();
                self.b();
            }
            fn a(&self) { self.c(); self.a(); }
            fn b(&self) { self.c(); }
            fn c(&self) { self.d(); }
            fn d(&self) { println!("{}", 1); self.a(); }
        }
    };
    assert_eq!(
        heads(&impl_errors(&item, &[("opened", Site::Apply)])),
        [
            "`println!` prints in a helper of an #[apply] body (`opened → self.a() → self.c() → self.d() → println!`)"
        ]
    );
}

#[test]
fn a_violation_in_a_helper_is_reported_for_each_handler_that_reaches_it() {
    let item: syn::ItemImpl = syn::parse_quote! {
        impl Account {
            fn deposit(&self, cmd: Deposit) -> Deposited { self.stamp() }
            fn deposited(&mut self, e: &Deposited) { let _ = self.stamp(); }
            fn stamp(&self) -> u64 { Utc::now() }
        }
    };
    let found = impl_errors(&item, &[("deposit", Site::Handle), ("deposited", Site::Apply)]);
    assert_eq!(
        heads(&found),
        [
            "`Utc::now` reads the wall clock in a helper of a #[handle] body (`deposit → self.stamp() → Utc::now()`)",
            "`Utc::now` reads the wall clock in a helper of an #[apply] body (`deposited → self.stamp() → Utc::now()`)",
        ]
    );
    assert!(found[1].ends_with("The time must come from the event: record `ctx.now()` in it in #[handle]."));
}

#[test]
fn a_helper_is_judged_by_the_site_of_the_handler_that_reaches_it() {
    // Files are allowed in a #[handle] (it decides, it does not fold), not in an #[apply].
    let item: syn::ItemImpl = syn::parse_quote! {
        impl Account {
            fn deposit(&self, cmd: Deposit) -> Deposited { self.load() }
            fn deposited(&mut self, e: &Deposited) { self.load(); }
            fn load(&self) -> Vec<u8> { std::fs::read("f") }
        }
    };
    assert_eq!(
        heads(&impl_errors(
            &item,
            &[("deposit", Site::Handle), ("deposited", Site::Apply)]
        )),
        [
            "`std::fs::read` touches the file system in a helper of an #[apply] body (`deposited → self.load() → std::fs::read()`)"
        ]
    );
}

#[test]
fn a_handler_called_by_a_handler_of_its_own_site_is_reported_once_in_its_own_body() {
    let item: syn::ItemImpl = syn::parse_quote! {
        impl Account {
            fn opened(&mut self, e: &Opened) { self.deposited(&e.first); }
            fn deposited(&mut self, e: &Deposited) { dbg!(e); }
        }
    };
    assert_eq!(
        heads(&impl_errors(
            &item,
            &[("opened", Site::Apply), ("deposited", Site::Apply)]
        )),
        ["`dbg!` prints in an #[apply] body"]
    );
}

#[test]
fn helpers_no_handler_reaches_and_methods_of_other_values_are_not_judged() {
    let item: syn::ItemImpl = syn::parse_quote! {
        impl Account {
            fn deposit(&self, cmd: Deposit, ctx: &Context) -> Deposited {
                let at = self.stamp(ctx);
                let n = self.inner.roll();
                let m = Other::roll();
                Deposited { at, n, m }
            }
            fn stamp(&self, ctx: &Context) -> Timestamp { ctx.now() }
            fn roll(&self) -> u64 { rand::random() }
            fn unreached(&self) -> SystemTime { SystemTime::now() }
        }
    };
    assert_eq!(
        impl_errors(&item, &[("deposit", Site::Handle)]),
        Vec::<String>::new()
    );
}

#[test]
fn helper_calls_inside_macro_arguments_are_followed() {
    let item: syn::ItemImpl = syn::parse_quote! {
        impl Account {
            fn deposit(&self, cmd: Deposit) -> Deposited {
                let s = format!("{}", self.stamp());
                let v = vec![Self::stamp_of(self); 2];
                Deposited {}
            }
            fn stamp(&self) -> u64 { Instant::now() }
            fn stamp_of(me: &Self) -> u64 { Instant::now() }
        }
    };
    assert_eq!(
        heads(&impl_errors(&item, &[("deposit", Site::Handle)])),
        [
            "`Instant::now` reads the wall clock in a helper of a #[handle] body (`deposit → self.stamp() → Instant::now()`)",
            "`Instant::now` reads the wall clock in a helper of a #[handle] body (`deposit → Self::stamp_of() → Instant::now()`)",
        ]
    );
}

// ---- `use` inside a body ---------------------------------------------------

#[test]
fn use_items_in_a_body_are_read_through() {
    for (body, head) in [
        (
            "use std::time::SystemTime as T; let _ = T::now();",
            "`T::now` (`std::time::SystemTime::now`) reads the wall clock in an #[apply] body",
        ),
        (
            "use std::fs; let _ = fs::write(p, b);",
            "`fs::write` (`std::fs::write`) touches the file system in an #[apply] body",
        ),
        (
            "use rand::random; let n: u64 = random();",
            "`random` (`rand::random`) draws random numbers in an #[apply] body",
        ),
        (
            "use std::{fs::{self as files}, time::Instant}; let _ = files::read(p);",
            "`files::read` (`std::fs::read`) touches the file system in an #[apply] body",
        ),
        (
            "use std::time::UNIX_EPOCH as E; let _ = E.elapsed();",
            "`E.elapsed()` (`std::time::UNIX_EPOCH.elapsed()`) reads the wall clock in an #[apply] body",
        ),
        (
            "use std::println as say; say!(\"x\");",
            "`say!` (`std::println!`) prints in an #[apply] body",
        ),
        (
            "extern crate fastrand as fr; let _ = fr::u64(..);",
            "`fr::u64` (`fastrand::u64`) draws random numbers in an #[apply] body",
        ),
        (
            "let _ = { use std::fs; fs::read(p) };",
            "`fs::read` (`std::fs::read`) touches the file system in an #[apply] body",
        ),
        (
            "use std::fs; let _ = vec![fs::read(p); 2];",
            "`fs::read` (`std::fs::read`) touches the file system in an #[apply] body",
        ),
    ] {
        let found = errors_in(body, Site::Apply);
        assert_eq!(heads(&found), [head], "{body}");
    }
}

#[test]
fn use_items_in_a_helper_are_read_through_for_the_helper() {
    let item: syn::ItemImpl = syn::parse_quote! {
        impl Account {
            fn deposit(&self, cmd: Deposit) -> Deposited { self.stamp() }
            fn stamp(&self) -> u64 {
                use std::time::SystemTime as Clock;
                Clock::now()
            }
        }
    };
    assert_eq!(
        heads(&impl_errors(&item, &[("deposit", Site::Handle)])),
        [
            "`Clock::now` (`std::time::SystemTime::now`) reads the wall clock in a helper of a #[handle] body (`deposit → self.stamp() → Clock::now()`)"
        ]
    );
}

#[test]
fn the_users_own_names_are_not_read_as_the_forbidden_ones() {
    for body in [
        // No `use`: the user's own module and function, declared elsewhere.
        "let _ = fs::write(p, b); let n = random();",
        // Declared in the body, hiding nothing forbidden.
        "mod fs { pub fn write() {} } fs::write();",
        "fn random() -> u64 { 4 } let n = random();",
        // A `use` of an outer block, hidden by an item or a `let` of an inner one.
        "use std::fs; { mod fs { pub fn write() {} } fs::write(); }",
        "use rand::random; { fn random() -> u64 { 4 } let n = random(); }",
        "use rand::random; let random = |x: u64| x; let n = random(1);",
        // A `use` scoped to a block does not reach past it.
        "{ use std::fs; } let _ = fs::write(p, b);",
        // A leading `::` is the crate root, never a `use`.
        "use my::thing as fs; let _ = ::fs::write(p, b);",
        // Globs bring in names the body does not write.
        "use my::stuff::*; let _ = random();",
    ] {
        assert_eq!(errors_in(body, Site::Apply), Vec::<String>::new(), "{body}");
    }
}

// ---- event declarations ----------------------------------------------------

#[test]
fn failure_names_are_flagged_unless_stated_as_a_fact() {
    for (name, pattern) in [
        ("FailedToCreateAccount", "FailedTo…"),
        ("FailedTo", "FailedTo…"),
        ("AccountCreationFailed", "…CreationFailed"),
        ("CommandRejected", "…Rejected"),
        ("Rejected", "…Rejected"),
    ] {
        let ident = syn::Ident::new(name, proc_macro2::Span::call_site());
        let input: syn::DeriveInput = syn::parse_quote!(struct #ident { reason: String });
        assert_eq!(
            event_errors(input.clone(), None),
            [format!(
                "`{name}` is named like a failed command (`{pattern}`); an event records what happened, \
                 and a rejected command is an `Err` from #[handle], never stored (rule: do not model \
                 failed-to-create as events). If this name records a real fact (e.g. a payment the bank \
                 declined), say so with `#[event(fact = \"…\")]`."
            )]
        );
        assert_eq!(
            event_errors(input, Some("the underwriter turned the loan down")),
            Vec::<String>::new()
        );
    }
}

#[test]
fn ordinary_names_are_facts() {
    for name in [
        "BookLent",
        "PaymentDeclined",
        "AccountCreated",
        "FailedTorque",
        "Failed",
        "RejectedItemsCounted",
    ] {
        let ident = syn::Ident::new(name, proc_macro2::Span::call_site());
        let input: syn::DeriveInput = syn::parse_quote!(struct #ident;);
        assert_eq!(event_errors(input, None), Vec::<String>::new(), "{name}");
    }
}

#[test]
fn an_empty_fact_is_not_a_reason() {
    let input: syn::DeriveInput = syn::parse_quote!(
        struct PaymentRejected;
    );
    assert_eq!(
        event_errors(input, Some(" ")),
        ["`fact` must say what real fact this event records (rule: do not model failed-to-create as events)"]
    );
}

#[test]
fn interior_mutability_is_flagged_per_field_and_nested() {
    let input: syn::DeriveInput = syn::parse_quote!(
        struct Deposited {
            amount: u64,
            hits: std::cell::Cell<u32>,
            log: Vec<RefCell<String>>,
            shared: Arc<Mutex<u8>>,
            table: std::sync::RwLock<Vec<u8>>,
            once: OnceCell<u8>,
            count: AtomicU64,
            flag: std::sync::atomic::AtomicBool,
            pair: (u8, Cell<u8>),
        }
    );
    let found = event_errors(input, None);
    let heads: Vec<&str> = found
        .iter()
        .map(|m| m.split(", which").next().unwrap_or_default())
        .collect();
    assert_eq!(
        heads,
        [
            "field `hits` holds `Cell`",
            "field `log` holds `RefCell`",
            "field `shared` holds `Mutex`",
            "field `table` holds `RwLock`",
            "field `once` holds `OnceCell`",
            "field `count` holds `AtomicU64`",
            "field `flag` holds `AtomicBool`",
            "field `pair` holds `Cell`",
        ]
    );
    assert!(found[0].ends_with(
        "can change after the event is recorded; events are immutable facts (rule: never modify an \
         event). Store the plain value instead."
    ));
}

#[test]
fn interior_mutability_in_tuple_structs_and_enum_variants_names_the_field() {
    let tuple: syn::DeriveInput = syn::parse_quote!(
        struct Counted(u8, Cell<u8>);
    );
    assert!(event_errors(tuple, None)[0].starts_with("field `1` holds `Cell`"));
    let variants: syn::DeriveInput = syn::parse_quote!(
        enum Changed {
            Name { to: Mutex<String> },
        }
    );
    assert!(event_errors(variants, None)[0].starts_with("field `to` of variant `Name` holds `Mutex`"));
}

#[test]
fn plain_fields_pass() {
    let input: syn::DeriveInput = syn::parse_quote!(
        struct Deposited {
            amount: u64,
            at: factum::Timestamp,
            tags: Vec<String>,
            cells_counted: u32,
            shared: Arc<str>,
            atomicity: Atomicity,
        }
    );
    assert_eq!(event_errors(input, None), Vec::<String>::new());
}
