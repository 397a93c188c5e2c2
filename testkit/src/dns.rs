//! A DNS server on loopback UDP that answers A queries for one name with a list of IPv4
//! addresses the test changes while it runs (a headless Service whose pods come and go), and
//! an empty answer for anything else. Records carry a TTL of zero, so nothing caches them.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use hickory_proto::op::{Message, MessageType, OpCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};
use tokio::net::UdpSocket;

/// The server's address and the addresses it answers with.
pub struct DnsServer {
    pub address: SocketAddr,
    answers: Arc<Mutex<Vec<Ipv4Addr>>>,
    task: tokio::task::JoinHandle<()>,
}

impl DnsServer {
    /// Answers A queries for `name` with `addresses`.
    pub async fn start(name: &str, addresses: &[Ipv4Addr]) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind a UDP port for DNS");
        let address = socket.local_addr().expect("DNS address");
        let answers = Arc::new(Mutex::new(addresses.to_vec()));
        let task = tokio::spawn(serve(socket, name.trim_end_matches('.').to_owned(), answers.clone()));
        Self { address, answers, task }
    }

    /// From now on, answers with `addresses`.
    pub fn set(&self, addresses: &[Ipv4Addr]) {
        *self.answers.lock().expect("answers") = addresses.to_vec();
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(socket: UdpSocket, name: String, answers: Arc<Mutex<Vec<Ipv4Addr>>>) {
    let mut buffer = vec![0u8; 4096];
    loop {
        let Ok((length, peer)) = socket.recv_from(&mut buffer).await else { return };
        let Ok(query) = Message::from_vec(&buffer[..length]) else { continue };
        let mut response = Message::new(query.metadata.id, MessageType::Response, OpCode::Query);
        response.metadata.recursion_desired = query.metadata.recursion_desired;
        response.metadata.recursion_available = true;
        response.metadata.authoritative = true;
        for question in &query.queries {
            response.add_query(question.clone());
            let asked = question.name().to_ascii();
            if question.query_type() == RecordType::A
                && asked.trim_end_matches('.').eq_ignore_ascii_case(&name)
            {
                let addresses = answers.lock().map(|answers| answers.clone()).unwrap_or_default();
                for address in addresses {
                    response.add_answer(Record::from_rdata(question.name().clone(), 0, RData::A(A(address))));
                }
            }
        }
        if let Ok(bytes) = response.to_vec() {
            let _ = socket.send_to(&bytes, peer).await;
        }
    }
}
