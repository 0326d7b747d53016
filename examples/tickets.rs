//! The support desk of [`otpsim::systems::tickets`], run for real: tickets opened, taken by
//! agents and resolved; a ticket worker killed and brought back with its last state; the
//! queue killed and rebuilt from the store; notifications; and the chat room.
//!
//! ```sh
//! cargo run-native --example tickets
//! ```

use otpsim::rt::{self, Duration};
use otpsim::systems::tickets::{Desk, Tickets, QUEUE};
use otpsim::{ExitReason, Node};

fn main() {
    println!(
        "tickets ({})",
        if rt::SIMULATED { "simulated" } else { "native" }
    );
    let done = rt::block_on(0, async {
        let node = Node::new();
        let main = node.spawn(|p| async move {
            let tickets = Tickets::new(Desk::default());
            tickets.start_link(&p).await.expect("the desk starts");
            let printer = tickets.open(&p, "printer on fire").await.unwrap();
            let vpn = tickets.open(&p, "vpn down").await.unwrap();
            let mail = tickets.open(&p, "mail bounces").await.unwrap();
            println!("opened tickets {printer}, {vpn}, {mail}");
            let taken = tickets.take_next(&p, "ana").await.unwrap();
            println!(
                "ana takes the next one: {taken:?} -> {:?}",
                tickets.status(&p, printer).await.unwrap()
            );

            println!("\nkill ticket {printer}'s worker");
            let worker = tickets.ticket(&p, printer).await.unwrap();
            p.exit(worker, ExitReason::Kill);
            p.sleep(Duration::from_millis(10)).await;
            let again = tickets.ticket(&p, printer).await.unwrap();
            println!(
                "  worker {worker} -> {again}, still {:?}",
                tickets.status(&p, printer).await.unwrap()
            );

            println!("\nkill the queue");
            p.exit(p.whereis(QUEUE).unwrap(), ExitReason::Kill);
            p.sleep(Duration::from_millis(10)).await;
            println!(
                "  rebuilt from the store: bo takes {:?}",
                tickets.take_next(&p, "bo").await.unwrap()
            );
            println!("  then {:?}", tickets.take_next(&p, "bo").await.unwrap());
            println!(
                "  then {:?} (none left)",
                tickets.take_next(&p, "bo").await.unwrap()
            );

            println!(
                "\nresolve {printer}: {:?}",
                tickets.resolve(&p, printer).await.unwrap()
            );
            println!("resolve it again: {:?}", tickets.resolve(&p, printer).await);
            p.sleep(Duration::from_millis(10)).await;
            println!("notifications sent:");
            for (id, status) in tickets.desk().outbox() {
                println!("  ticket {id}: {status:?}");
            }

            println!("\nchat: ana and bo join the lobby");
            tickets.join(&p, "ana").await.unwrap();
            let bo = tickets.join(&p, "bo").await.unwrap();
            println!(
                "  ana says hi to {} member(s)",
                tickets.say(&p, "ana", "hi")
            );
            p.exit(bo, ExitReason::Kill);
            p.sleep(Duration::from_millis(10)).await;
            println!(
                "  bo's handler crashed; members now {:?}",
                tickets.members()
            );
            tickets.join(&p, "bo").await.unwrap();
            println!(
                "  bo joins again; ana says 'welcome back' to {}",
                tickets.say(&p, "ana", "welcome back")
            );
            p.sleep(Duration::from_millis(10)).await;
            println!("  ana heard {:?}", tickets.heard(&p, "ana").await.unwrap());
        });
        node.wait_exit(main).await
    });
    match done {
        Some(ExitReason::Normal) => println!("\ndone"),
        other => {
            eprintln!("the demo failed: {other:?}");
            std::process::exit(1);
        }
    }
}
