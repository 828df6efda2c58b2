//! `std::net` in an #[apply] body, in every form: short path, full path, in a closure,
//! inside a macro argument, as a function value. (#[handle] may use it.)

use serde::{Deserialize, Serialize};

#[derive(factum::Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Opened {
    pub n: u64,
}

#[derive(Clone, Debug)]
pub struct Open;

#[derive(Default, Clone, Debug)]
pub struct Account {
    n: u64,
}

#[factum::entity]
impl Account {
    #[handle]
    fn open(&self, _cmd: Open) -> Opened {
        Opened { n: self.n }
    }

    #[apply]
    fn opened(&mut self, e: &Opened) {
        let _short = std::net::TcpStream::connect("127.0.0.1:1");
        let _full = ::std::net::UdpSocket::bind("127.0.0.1:0");
        let _in_closure = (0..1).map(|_| std::net::TcpStream::connect("127.0.0.1:1")).count();
        let _in_macro = format!("{:?}", std::net::TcpStream::connect("127.0.0.1:1"));
        let _as_value = std::net::TcpListener::bind::<&str>;
        self.n = e.n;
    }
}

fn main() {}
